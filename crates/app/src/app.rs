//! The desktop app's backend: runs the engine (restarting it when settings are saved), answers
//! the window's requests and turns engine changes into window events. It knows nothing of
//! Tauri: the shell forwards commands to it and events from it, so everything here is tested
//! without a GUI.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

mod hub;
pub use hub::{DeskRow, FoundHubRow, HubPanel, JoinRequest, PairingCode};

use crate::error::AppError;
use crate::export::{ExportFolder, ExportRequest, ExportResult};
use crate::settings::{Confirmation, FieldError, SettingsUpdate, SettingsView};
use crate::window::{CallDetail, CallPage, CallQuery, CallView};
use callpop_engine::backfill::BackfillRequest;
use callpop_engine::config::{Config, Overrides};
use callpop_engine::engine::{Engine, EngineOptions};
use callpop_engine::health::{Health, Part, Snapshot, Status};
use callpop_engine::instance::{InstanceError, InstanceLock};
use callpop_engine::popups::{PauseState, PopupHandle, PopupRequest};
use callpop_engine::port_holder::{port_holder, port_taken_text};
use callpop_engine::subscriptions::KeeperHandle;
use callpop_engine::tunnel::TunnelHandle;
use callpop_store::{Store, StoreOptions};

/// The outcome of an action button ("Test connection", "Backfill now", …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ActionResult {
    /// It worked.
    pub ok: bool,
    /// What happened, for people.
    pub message: String,
}

impl ActionResult {
    fn ok(message: impl Into<String>) -> ActionResult {
        ActionResult {
            ok: true,
            message: message.into(),
        }
    }

    fn failed(message: impl Into<String>) -> ActionResult {
        ActionResult {
            ok: false,
            message: message.into(),
        }
    }
}

/// What saving settings did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum SaveResult {
    /// Saved, and the engine restarted with them.
    Saved {
        /// Always true.
        #[ts(type = "true")]
        ok: bool,
        /// The settings now in force.
        settings: Box<SettingsView>,
    },
    /// Nothing was saved: these fields need fixing.
    Invalid {
        /// Always false.
        #[ts(type = "false")]
        ok: bool,
        /// One message per bad field.
        errors: Vec<FieldError>,
    },
    /// Nothing was saved yet: these changes must be confirmed (send the update again with
    /// `confirmed` set).
    Confirm {
        /// Always false.
        #[ts(type = "false")]
        ok: bool,
        /// What to ask.
        confirmations: Vec<Confirmation>,
    },
}

/// The fixes the health page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum HealthAction {
    /// Drop and re-open the tunnel.
    ReconnectTunnel,
    /// Delete and create the RingCentral subscription.
    RecreateSubscription,
    /// Fetch the last day of the call log now.
    BackfillNow,
    /// Connect to RingCentral's WebSocket now instead of at the next try.
    ReconnectWebsocket,
}

/// What the window hears about without asking.
#[derive(Debug, Clone, PartialEq)]
pub enum AppEvent {
    /// A call was stored or changed (coalesced: at most one per call every 100 ms).
    CallChanged(Box<CallView>),
    /// The health board changed.
    HealthChanged(Box<Snapshot>),
    /// A popup's "Open" was clicked: show this call.
    OpenCall(i64),
    /// Popups were paused or resumed (from the window or the tray).
    PauseChanged(PauseState),
}

/// Handles to a running engine.
struct Running {
    config: Config,
    health: Arc<Health>,
    popups: Option<PopupHandle>,
    keeper: Option<KeeperHandle>,
    websocket: Option<callpop_engine::websocket::WsHandle>,
    tunnel: Option<TunnelHandle>,
    platform: Option<Arc<callpop_ringcentral::api::Platform>>,
    backfill: Option<tokio::sync::mpsc::Sender<BackfillRequest>>,
    /// The hub's identity as people compare it, when this CallPop serves desks.
    hub_identity: Option<String>,
    shutdown: CancellationToken,
    /// The engine's serve loop; finished once the engine has shut down.
    serve: JoinHandle<()>,
    /// Tasks that forward engine changes to window events.
    forwarders: Vec<JoinHandle<()>>,
}

/// Why the engine is not running.
#[derive(Debug, Clone)]
struct Stopped {
    config: Option<Config>,
    reason: String,
    /// The history is at fault ("Calls cannot be saved"); otherwise only receiving stopped
    /// (a port taken, unreadable settings) and the calls on disk can still be read.
    history: bool,
}

enum State {
    Running(Box<Running>),
    Stopped(Box<Stopped>),
}

impl State {
    fn stopped(config: Option<Config>, reason: impl Into<String>) -> State {
        State::Stopped(Box::new(Stopped {
            config,
            reason: reason.into(),
            history: false,
        }))
    }

    fn history_failed(config: Option<Config>, reason: impl Into<String>) -> State {
        State::Stopped(Box::new(Stopped {
            config,
            reason: reason.into(),
            history: true,
        }))
    }
}

/// The desktop backend.
pub struct App {
    overrides: Overrides,
    options: EngineOptions,
    /// The data dir's lock, held for the app's whole life: a restart must not race the
    /// previous engine's shutdown (which may outlast [`STOP_GRACE`]) for it.
    instance: Mutex<Option<(PathBuf, Arc<InstanceLock>)>>,
    state: tokio::sync::Mutex<State>,
    reader: Arc<Mutex<Option<Store>>>,
    events: broadcast::Sender<AppEvent>,
    /// Files exported from the window this session, the only files it may open.
    exported: Mutex<Vec<PathBuf>>,
    /// The "still running in the tray" notice is being (or was) shown this session.
    tray_notice_claimed: std::sync::atomic::AtomicBool,
    /// Held while this CallPop changes role (joins or leaves a hub, becomes one): one change
    /// at a time, never two half-done.
    role_change: tokio::sync::Mutex<()>,
}

/// Voicemail fetched for playing, in the data dir.
const VOICEMAIL_DIR: &str = "voicemail";

/// Present once the "still running in the tray" notice has been shown.
const TRAY_NOTICE_MARKER: &str = "tray-notice-shown";

/// How many exports "Open" and "Show in folder" still work for.
const MAX_REMEMBERED_EXPORTS: usize = 50;

/// How long "Backfill now" waits for the call log to be read before saying it is slow.
const BACKFILL_VERDICT: Duration = Duration::from_secs(120);

/// How long the desktop's opener gets to say it found nothing for a link.
const OPENER_VERDICT: Duration = Duration::from_secs(3);

/// The Ringotel webhook token as the settings page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RingotelToken {
    /// The token; `null` when the check is turned off (an empty environment value).
    pub token: Option<String>,
    /// Set by `CALLPOP_RINGOTEL_API_TOKEN`, so the window cannot change it.
    pub from_environment: bool,
}

/// What became of a link the window asked the desktop to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LinkOutcome {
    /// A program took it.
    Opened,
    /// Nothing on this computer handles links of this kind.
    NoHandler,
}

/// The extension id in a RingCentral message-store link
/// (`…/account/{a}/extension/{id}/message-store/{m}/content/{c}`).
fn mailbox_in_link(url: &str) -> Option<String> {
    let mut parts = url.split('/');
    parts.by_ref().find(|p| *p == "extension")?;
    let id = parts.next()?;
    (parts.next() == Some("message-store")
        && !id.is_empty()
        && id.chars().all(|c| c.is_ascii_alphanumeric()))
    .then(|| id.to_string())
}

/// Opens `target` (a link or a path) with the desktop's handler and waits for its verdict.
async fn open_with_desktop(target: String) -> Result<(), AppError> {
    tokio::task::spawn_blocking(move || {
        callpop_engine::notify::open_link(&target)?.verdict(OPENER_VERDICT)
    })
    .await?
    .map_err(|e| match e {
        callpop_engine::notify::NotifyError::NoHandler(kind) => AppError::NoHandler(kind),
        other => AppError::Open(other.to_string()),
    })
}

/// How long a running engine gets to finish its last commit when restarted or quit.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `reason` as a sentence: its first letter capitalised.
fn sentence(reason: &str) -> String {
    let mut chars = reason.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The health board of an engine that is not running: a history at fault is "Calls cannot be
/// saved"; anything else stops calls from arriving but loses nothing ("Not receiving calls").
fn stopped_snapshot(s: &Stopped) -> Snapshot {
    let base = Snapshot {
        version: env!("CARGO_PKG_VERSION").into(),
        ..Snapshot::default()
    };
    if s.history {
        Snapshot {
            status: Status::Error,
            storage_error: Some(s.reason.clone()),
            ..base
        }
    } else {
        Snapshot {
            status: Status::NotReceiving,
            attention: Some(callpop_engine::health::Attention {
                text: sentence(&s.reason),
                fix: None,
            }),
            ..base
        }
    }
}

impl App {
    /// Loads the configuration and starts the engine. Never fails: an engine that cannot start
    /// is reported on the health page (and `start_error`), and the window still opens.
    pub async fn start(overrides: Overrides, options: EngineOptions) -> App {
        let (events, _) = broadcast::channel(1024);
        let app = App {
            overrides,
            options,
            instance: Mutex::new(None),
            state: tokio::sync::Mutex::new(State::stopped(None, "starting")),
            reader: Arc::new(Mutex::new(None)),
            events,
            exported: Mutex::new(Vec::new()),
            tray_notice_claimed: std::sync::atomic::AtomicBool::new(false),
            role_change: tokio::sync::Mutex::new(()),
        };
        let state = app.launch().await;
        *app.state.lock().await = state;
        app
    }

    /// The lock on `data_dir`, taken the first time (or when the data dir changed).
    fn instance_for(&self, data_dir: &std::path::Path) -> Result<Arc<InstanceLock>, InstanceError> {
        let mut held = self.instance.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, lock)) = held.as_ref().filter(|(dir, _)| dir == data_dir) {
            return Ok(lock.clone());
        }
        let lock = Arc::new(InstanceLock::acquire(data_dir, "the CallPop app")?);
        *held = Some((data_dir.to_path_buf(), lock.clone()));
        Ok(lock)
    }

    /// Window events.
    pub fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.events.subscribe()
    }

    /// Why the engine is not running, if it is not.
    pub async fn start_error(&self) -> Option<String> {
        match &*self.state.lock().await {
            State::Running(_) => None,
            State::Stopped(s) => Some(s.reason.clone()),
        }
    }

    async fn launch(&self) -> State {
        let config = match Config::load(&self.overrides) {
            Ok(c) => c,
            Err(e) => return State::stopped(None, format!("the settings cannot be read: {e}")),
        };
        let stopped = |reason: String| {
            tracing::error!("{reason}");
            State::stopped(Some(config.clone()), reason)
        };
        // The history is readable even when the engine cannot run (port taken, …), so the
        // window still shows the calls already on disk.
        if let Ok(store) =
            Store::open_existing(&config.db_path(), StoreOptions::new(config.default_country))
        {
            *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
        }
        let instance = match self.instance_for(&config.data_dir) {
            Ok(lock) => lock,
            Err(e) => return stopped(e.to_string()),
        };
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let holder = port_holder(config.listen).await;
                return stopped(port_taken_text(config.listen, holder));
            }
            Err(e) => {
                return stopped(format!(
                    "CallPop cannot receive calls on {}: {e}",
                    config.listen
                ))
            }
        };
        let options = EngineOptions {
            instance: Some(instance),
            ..self.options.clone()
        };
        let engine = match Engine::start_with(config.clone(), options) {
            Ok(e) => e,
            // Only the history at fault means calls cannot be saved; a locked keyring or a
            // RingCentral setting stops receiving, with the reason.
            Err(e @ callpop_engine::engine::EngineError::Store(_)) => {
                let reason = format!("the engine cannot start: {e}");
                tracing::error!("{reason}");
                return State::history_failed(Some(config.clone()), reason);
            }
            Err(e) => return stopped(format!("CallPop cannot start: {e}")),
        };
        let first_run = self
            .reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        if first_run {
            // The engine has just created the history: open it for reading now.
            match Store::open_existing(&config.db_path(), StoreOptions::new(config.default_country))
            {
                Ok(store) => {
                    *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
                }
                Err(e) => {
                    // Stop the engine that did start rather than leak it.
                    engine.shutdown_token().cancel();
                    drop(engine);
                    let reason = format!("the call history cannot be read: {e}");
                    tracing::error!("{reason}");
                    return State::history_failed(Some(config.clone()), reason);
                }
            }
        }
        let mut running = Running {
            config: engine.config().clone(),
            health: engine.health(),
            popups: engine.popups(),
            keeper: engine.keeper(),
            websocket: engine.websocket(),
            tunnel: engine.tunnel(),
            platform: engine.platform(),
            backfill: engine.backfill_requests(),
            hub_identity: engine.hub().map(|h| h.fingerprint.short()),
            shutdown: engine.shutdown_token(),
            forwarders: Vec::new(),
            serve: tokio::spawn(async {}),
        };
        running.forwarders.push(forward_calls(
            engine.subscribe(),
            self.events.clone(),
            running.config.line_labels.clone(),
            running.shutdown.clone(),
        ));
        running.forwarders.push(forward_open_requests(
            engine.popup_requests(),
            self.events.clone(),
            running.shutdown.clone(),
        ));
        running.forwarders.push(forward_health(
            running.health.clone(),
            self.events.clone(),
            running.shutdown.clone(),
        ));
        // Known before the serve task first runs, so a window asking right after a restart
        // already sees where the engine listens.
        if let Ok(addr) = listener.local_addr() {
            running.health.set_listen(addr);
        }
        running.serve = tokio::spawn(engine.run(listener));
        tracing::info!(listen = %running.config.listen, "engine running");
        State::Running(Box::new(running))
    }

    /// Stops the engine gracefully (last commit finished, popups closed).
    pub async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        let previous = std::mem::replace(
            &mut *state,
            State::stopped(None, "CallPop is shutting down"),
        );
        if let State::Running(r) = previous {
            *state = State::stopped(Some(r.config.clone()), "CallPop is shutting down");
            stop(*r).await;
        }
        *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Restarts the engine with the settings on disk.
    pub async fn restart(&self) {
        let mut state = self.state.lock().await;
        let previous = std::mem::replace(&mut *state, State::stopped(None, "restarting"));
        if let State::Running(r) = previous {
            stop(*r).await;
        }
        *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *state = self.launch().await;
        let health = match &*state {
            State::Running(r) => r.health.snapshot(),
            State::Stopped(s) => stopped_snapshot(s),
        };
        let _ = self.events.send(AppEvent::HealthChanged(Box::new(health)));
    }

    /// The settings in force (the last loaded configuration).
    async fn config(&self) -> Result<Config, AppError> {
        match &*self.state.lock().await {
            State::Running(r) => Ok(r.config.clone()),
            State::Stopped(s) => s
                .config
                .clone()
                .ok_or_else(|| AppError::EngineStopped(s.reason.clone())),
        }
    }

    /// Runs a read against the history on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let guard = reader.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(store) => f(store),
                None => Err(AppError::HistoryClosed),
            }
        })
        .await?
    }

    /// A page of the call log.
    pub async fn list_calls(&self, query: CallQuery) -> Result<CallPage, AppError> {
        let config = self.config().await?;
        let db = config.db_path();
        let page = self
            .read(move |store| {
                crate::window::list_calls(
                    store,
                    &query,
                    &config.watch_extensions,
                    &config.line_labels,
                )
                .map_err(AppError::from)
            })
            .await;
        match page {
            // No history yet (a first start that could not listen): an empty log, not an error;
            // Health says why no call comes.
            Err(AppError::HistoryClosed) if !db.exists() => Ok(CallPage {
                calls: Vec::new(),
                next_cursor: None,
                total: Some(0),
                total_at_least: None,
            }),
            other => other,
        }
    }

    /// One call with its timeline and deliveries (on a desk, read from the hub when the call
    /// came from it).
    pub async fn get_call(&self, id: i64) -> Result<CallDetail, AppError> {
        let detail = self.local_call(id).await?;
        if !detail.deliveries.is_empty() {
            return Ok(detail);
        }
        self.with_hub_deliveries(id, detail).await
    }

    async fn local_call(&self, id: i64) -> Result<CallDetail, AppError> {
        let config = self.config().await?;
        self.read(move |store| {
            crate::window::call_detail(
                store,
                id,
                &config.default_country,
                &config.line_labels,
                config.popups.crm_url_template.as_deref(),
            )
            .map_err(AppError::from)
        })
        .await
    }

    /// The folders the export dialog offers, the default first.
    pub async fn export_folders(&self) -> Result<Vec<ExportFolder>, AppError> {
        Ok(crate::export::folders(&self.config().await?.data_dir))
    }

    /// Writes the calls of `request` to a new CSV file (in Downloads unless another folder is
    /// chosen); only files exported this way can then be opened or shown from the window.
    pub async fn export_csv(&self, request: ExportRequest) -> Result<ExportResult, AppError> {
        let config = self.config().await?;
        let dir = crate::export::target_folder(&request, &config.data_dir)?;
        let result = self
            .read(move |store| {
                let desk = crate::export::Desk {
                    watched: &config.watch_extensions,
                    labels: &config.line_labels,
                    country: &config.default_country,
                };
                crate::export::export_csv(store, &request, desk, &dir, Utc::now())
                    .map_err(AppError::from)
            })
            .await?;
        let mut exported = self.exported.lock().unwrap_or_else(|p| p.into_inner());
        exported.push(PathBuf::from(&result.path));
        let excess = exported.len().saturating_sub(MAX_REMEMBERED_EXPORTS);
        exported.drain(..excess);
        Ok(result)
    }

    /// Opens an exported file in the program the desktop uses for CSV (a spreadsheet).
    pub async fn open_export(&self, path: String) -> Result<(), AppError> {
        let file = self.exported_file(&path)?;
        open_with_desktop(file.display().to_string()).await
    }

    /// Shows the folder holding an exported file in the file manager.
    pub async fn show_export(&self, path: String) -> Result<(), AppError> {
        let file = self.exported_file(&path)?;
        let folder = file.parent().map(Path::to_path_buf).unwrap_or(file);
        open_with_desktop(folder.display().to_string()).await
    }

    /// The window may open only what it exported: a compromised page must not be able to
    /// make the desktop run arbitrary files.
    fn exported_file(&self, path: &str) -> Result<PathBuf, AppError> {
        let wanted = PathBuf::from(path);
        if self
            .exported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&wanted)
        {
            Ok(wanted)
        } else {
            Err(AppError::NotAnExport)
        }
    }

    /// Plays a RingCentral voicemail: its audio is fetched with CallPop's sign-in (RingCentral
    /// serves it only to a signed-in app, so the link itself opens nothing in a browser), kept
    /// in the data dir (the owner's alone), and opened in the desktop's audio player. Returns
    /// the file, which is also what a desk without a player is told.
    pub async fn play_voicemail(&self, call_id: i64) -> Result<String, AppError> {
        let file = self.fetch_voicemail(call_id).await?;
        match open_with_desktop(file.display().to_string()).await {
            Ok(()) => Ok(file.display().to_string()),
            Err(AppError::NoHandler(_)) => Err(AppError::Open(format!(
                "no program on this computer plays audio; the message is saved as {}",
                file.display()
            ))),
            Err(e) => Err(e),
        }
    }

    /// The voicemail of `call_id` as a file in the data dir, fetched once.
    pub async fn fetch_voicemail(&self, call_id: i64) -> Result<PathBuf, AppError> {
        let (platform, data_dir) = match &*self.state.lock().await {
            State::Running(r) => (r.platform.clone(), r.config.data_dir.clone()),
            State::Stopped(s) => return Err(AppError::EngineStopped(s.reason.clone())),
        };
        let call = self
            .read(move |store| {
                store
                    .call(call_id)
                    .map_err(|e| AppError::Window(e.into()))?
                    .ok_or(AppError::Window(crate::window::WindowError::NoSuchCall(
                        call_id,
                    )))
            })
            .await?
            .call;
        let message_id = call
            .voicemail
            .as_ref()
            .and_then(|v| v.message_id.clone())
            .filter(|_| call.provider == callpop_core::model::Provider::RingCentral)
            .ok_or_else(|| AppError::Open("this call has no RingCentral voicemail".into()))?;
        let dir = data_dir.join(VOICEMAIL_DIR);
        let safe_id: String = message_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        if let Some(cached) = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.file_stem().is_some_and(|s| s == safe_id.as_str()))
        }) {
            return Ok(cached);
        }
        let platform = platform.ok_or_else(|| {
            AppError::Open(
                "playing voicemail needs the RingCentral credentials: set them in Settings".into(),
            )
        })?;
        // The mailbox named in the message's own link (`…/extension/{id}/message-store/…`);
        // else the one desk that went to voicemail; else the signed-in user's own. (Every
        // desk of a ring group that did not answer has the outcome "voicemail".)
        let from_link = call
            .voicemail
            .as_ref()
            .and_then(|v| v.url.as_deref())
            .and_then(mailbox_in_link);
        let to_voicemail: Vec<&str> = call
            .extensions
            .iter()
            .filter(|p| p.outcome == Some(callpop_core::model::CallResult::Voicemail))
            .filter_map(|p| p.extension_id.as_deref())
            .collect();
        let mailbox = from_link.or_else(|| match to_voicemail.as_slice() {
            [only] => Some(only.to_string()),
            _ => None,
        });
        let media = platform
            .voicemail_audio(mailbox.as_deref(), &message_id)
            .await
            .map_err(|e| AppError::Open(format!("the voicemail cannot be fetched: {e}")))?;
        let extension = match media.content_type.split(';').next().unwrap_or("").trim() {
            "audio/mpeg" | "audio/mp3" => "mp3",
            "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
            "audio/ogg" => "ogg",
            "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
            _ => "audio",
        };
        let file = dir.join(format!("{safe_id}.{extension}"));
        let written = file.clone();
        tokio::task::spawn_blocking(move || {
            callpop_files::write_atomically(&written, &media.bytes, callpop_files::Access::Private)
        })
        .await?
        .map_err(|e| AppError::Open(format!("the voicemail cannot be saved: {e}")))?;
        Ok(file)
    }

    /// Hands a web, phone or e-mail link to the desktop ("Call back", "Open in CRM") and says
    /// whether anything took it: with no softphone installed a `tel:` link goes nowhere, and
    /// the window then offers the number to dial by hand.
    pub async fn open_link(&self, url: String) -> Result<LinkOutcome, AppError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https" | "tel" | "mailto")) {
            return Err(AppError::LinkRefused);
        }
        match open_with_desktop(url).await {
            Ok(()) => Ok(LinkOutcome::Opened),
            Err(AppError::NoHandler(_)) => Ok(LinkOutcome::NoHandler),
            Err(e) => Err(e),
        }
    }

    /// The settings page.
    pub async fn get_settings(&self) -> Result<SettingsView, AppError> {
        Ok(SettingsView::from_config(&self.config().await?))
    }

    /// Validates and saves settings, then restarts the engine with them.
    pub async fn save_settings(&self, update: SettingsUpdate) -> Result<SaveResult, AppError> {
        let config = self.config().await?;
        let current = SettingsView::from_config(&config);
        if let Err(errors) = update.validate(&current) {
            return Ok(SaveResult::Invalid { ok: false, errors });
        }
        let confirmations = update.confirmations(&current);
        if !confirmations.is_empty() {
            return Ok(SaveResult::Confirm {
                ok: false,
                confirmations,
            });
        }
        let file = self.config_file(&config);
        update.save(&config, &file)?;
        if let Some((from, to)) = update.public_url_change(&current) {
            tracing::warn!(
                target: "callpop::security",
                from = from.as_deref().unwrap_or("-"),
                %to,
                "public URL changed in Settings (confirmed); the RingCentral subscription moves there"
            );
        }
        self.restart().await;
        let config = self.config().await?;
        Ok(SaveResult::Saved {
            ok: true,
            settings: Box::new(SettingsView::from_config(&config)),
        })
    }

    /// The file settings are saved to: the one read, else the default location.
    fn config_file(&self, config: &Config) -> PathBuf {
        config
            .config_file
            .clone()
            .or_else(|| self.overrides.config_file.clone())
            .or_else(callpop_engine::config::default_config_file)
            .unwrap_or_else(|| config.data_dir.join("config.toml"))
    }

    /// The token Ringotel must send with every webhook, for the person setting up the Ringotel
    /// portal to copy. The only secret the window shows (docs/SECURITY.md says why): it is
    /// CallPop's own, made here to be pasted elsewhere, and useless without this desk's URL.
    pub async fn ringotel_token(&self) -> Result<RingotelToken, AppError> {
        let config = self.config().await?;
        let tokens =
            tokio::task::spawn_blocking(move || callpop_engine::secrets::webhook_tokens(&config))
                .await?
                .map_err(|e| AppError::Open(format!("the Ringotel token cannot be read: {e}")))?;
        Ok(RingotelToken {
            token: tokens.ringotel.map(|t| t.expose().to_string()),
            from_environment: tokens.ringotel_source
                == callpop_engine::secrets::TokenSource::Environment,
        })
    }

    /// Signs in to RingCentral with the saved credentials.
    pub async fn test_ringcentral(&self) -> ActionResult {
        let platform = match &*self.state.lock().await {
            State::Running(r) => r.platform.clone(),
            State::Stopped(s) => return ActionResult::failed(s.reason.clone()),
        };
        let Some(platform) = platform else {
            return ActionResult::failed(
                "Set the client id, client secret and JWT, and save, to connect to RingCentral.",
            );
        };
        match platform.list_subscriptions().await {
            Ok(subs) => ActionResult::ok(format!(
                "Connected to {}: signed in, {} webhook subscription{} on the account.",
                platform.server(),
                subs.len(),
                if subs.len() == 1 { "" } else { "s" }
            )),
            Err(e) => ActionResult::failed(format!("{e}.")),
        }
    }

    /// The health board.
    pub async fn get_health(&self) -> Snapshot {
        match &*self.state.lock().await {
            State::Running(r) => r.health.snapshot(),
            State::Stopped(s) => stopped_snapshot(s),
        }
    }

    /// Runs one of the health page's fixes.
    pub async fn run_health_action(&self, action: HealthAction) -> ActionResult {
        let handles = match &*self.state.lock().await {
            State::Running(r) => Some((
                r.keeper.clone(),
                r.tunnel.clone(),
                r.backfill.clone(),
                r.websocket.clone(),
            )),
            State::Stopped(_) => None,
        };
        // With the engine down, every fix starts with starting it again.
        let Some((keeper, tunnel, backfill, websocket)) = handles else {
            self.restart().await;
            return match self.start_error().await {
                None => ActionResult::ok("CallPop restarted."),
                Some(reason) => ActionResult::failed(reason),
            };
        };
        match action {
            HealthAction::ReconnectWebsocket => match websocket {
                Some(ws) => {
                    ws.nudge();
                    ActionResult::ok("Connecting to RingCentral…")
                }
                None => ActionResult::failed(
                    "RingCentral's WebSocket is not in use: check the RingCentral settings.",
                ),
            },
            HealthAction::ReconnectTunnel => match tunnel {
                Some(t) if t.reconnect().await => ActionResult::ok("Reconnecting the tunnel…"),
                _ => ActionResult::failed("No tunnel is configured: choose one in Settings."),
            },
            HealthAction::RecreateSubscription => match keeper {
                Some(k) => match k.recreate().await {
                    Ok(msg) => ActionResult::ok(msg),
                    Err(e) => ActionResult::failed(e.to_string()),
                },
                None => ActionResult::failed(
                    "Subscription management is off: set the RingCentral credentials in Settings.",
                ),
            },
            HealthAction::BackfillNow => match backfill {
                Some(tx) => {
                    let (reply, verdict) = tokio::sync::oneshot::channel();
                    let request = BackfillRequest {
                        since: Utc::now() - chrono::Duration::hours(24),
                        reason: "asked for in the window".into(),
                        reply: Some(reply),
                    };
                    if tx.send(request).await.is_err() {
                        return ActionResult::failed("The backfill is not running.");
                    }
                    // Success is reported once the call log was read, not when it was asked.
                    match tokio::time::timeout(BACKFILL_VERDICT, verdict).await {
                        Ok(Ok(Ok(report))) => ActionResult::ok(format!(
                            "Checked the last 24 hours of the call log: {}.",
                            callpop_engine::backfill::added(report.new_calls)
                        )),
                        Ok(Ok(Err(why))) => ActionResult::failed(format!(
                            "The call log could not be read: {why}. CallPop tries again by itself."
                        )),
                        Ok(Err(_)) => ActionResult::failed("The backfill stopped."),
                        Err(_) => ActionResult::failed(
                            "The call log is taking long to read; Health shows when it is done.",
                        ),
                    }
                }
                None => ActionResult::failed(
                    "Backfill needs the RingCentral credentials: set them in Settings.",
                ),
            },
        }
    }

    async fn popups(&self) -> Result<PopupHandle, AppError> {
        match &*self.state.lock().await {
            State::Running(r) => r.popups.clone().ok_or_else(|| {
                let parts = r.health.snapshot().parts;
                AppError::PopupsOff(
                    parts
                        .get(&Part::Notifications)
                        .map(|p| p.detail.clone())
                        .unwrap_or_else(|| "desktop notifications are off".into()),
                )
            }),
            State::Stopped(s) => Err(AppError::EngineStopped(s.reason.clone())),
        }
    }

    /// Whether popups are paused.
    pub async fn get_pause(&self) -> PauseState {
        let unpaused = PauseState {
            paused: false,
            until: None,
        };
        match self.popups().await {
            Ok(p) => p.pause_state().await.unwrap_or(unpaused),
            Err(_) => unpaused,
        }
    }

    /// The window was closed into the tray. The first time ever, a notification says that
    /// CallPop keeps running there (people who close a window expect the program to end, and
    /// would otherwise quit it from the task manager or wonder where their popups come from).
    /// Returns whether the notice was shown now.
    pub async fn closed_to_tray(&self) -> bool {
        let Ok(config) = self.config().await else {
            return false;
        };
        let marker = config.data_dir.join(TRAY_NOTICE_MARKER);
        // Claimed before the notice is awaited: a quick close, reopen, close shows it once.
        if marker.exists()
            || self
                .tray_notice_claimed
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return false;
        }
        let Ok(popups) = self.popups().await else {
            return false;
        };
        let shown = popups
            .notice(
                "CallPop is still running",
                "It keeps receiving calls in the tray. To quit, use Quit CallPop in the tray menu.",
            )
            .await;
        if shown {
            if let Err(e) = std::fs::write(&marker, b"") {
                tracing::warn!(error = %e, "cannot remember that the tray notice was shown");
            }
        } else {
            self.tray_notice_claimed
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        shown
    }

    /// Pauses popups for `minutes` (`None` = until resumed).
    pub async fn set_pause(&self, minutes: Option<u32>) -> Result<PauseState, AppError> {
        if minutes == Some(0) {
            return Err(AppError::PauseTooShort);
        }
        let popups = self.popups().await?;
        let state = popups
            .pause(minutes.map(|m| Duration::from_secs(u64::from(m) * 60)))
            .await
            .ok_or(AppError::PopupsStopped)?;
        let _ = self.events.send(AppEvent::PauseChanged(state));
        Ok(state)
    }

    /// Resumes popups.
    pub async fn resume(&self) -> Result<PauseState, AppError> {
        let popups = self.popups().await?;
        let state = popups.resume().await.ok_or(AppError::PopupsStopped)?;
        let _ = self.events.send(AppEvent::PauseChanged(state));
        Ok(state)
    }
}

/// Where CSV exports go: the Downloads folder, else the data directory.
async fn stop(r: Running) {
    r.shutdown.cancel();
    if tokio::time::timeout(STOP_GRACE, r.serve).await.is_err() {
        tracing::warn!("the engine did not stop in time");
    }
    for f in r.forwarders {
        f.abort();
    }
}

/// Sends committed call changes to the window, at most one per call per 100 ms: under a
/// burst the window gets the latest state of each call, not every step.
fn forward_calls(
    mut changes: broadcast::Receiver<callpop_store::writer::CommittedChange>,
    events: broadcast::Sender<AppEvent>,
    labels: Vec<callpop_core::lines::LineLabel>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: std::collections::BTreeMap<i64, CallView> = Default::default();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                change = changes.recv() => match change {
                    Ok(c) => {
                        if let Some(call) = &c.change.after {
                            let view = CallView::of_call(c.change.id, call, Utc::now(), &labels);
                            pending.insert(c.change.id, view);
                        }
                    }
                    // Missed changes: the window re-reads on the next change it hears of.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick(), if !pending.is_empty() => {
                    for (_, view) in std::mem::take(&mut pending) {
                        let _ = events.send(AppEvent::CallChanged(Box::new(view)));
                    }
                }
            }
        }
    })
}

fn forward_open_requests(
    mut requests: broadcast::Receiver<PopupRequest>,
    events: broadcast::Sender<AppEvent>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = requests.recv() => match r {
                    Ok(PopupRequest::OpenCall(id)) => {
                        let _ = events.send(AppEvent::OpenCall(id));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    })
}

/// Reports the health board when it changes (checked twice a second; the counters move with
/// every delivery, so this also bounds how often the window redraws them).
fn forward_health(
    health: Arc<Health>,
    events: broadcast::Sender<AppEvent>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Snapshot> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let now = health.snapshot();
                    if last.as_ref() != Some(&now) {
                        let _ = events.send(AppEvent::HealthChanged(Box::new(now.clone())));
                        last = Some(now);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpop_engine::health::PartState;

    /// What the window would show for a command's result.
    fn shown<T>(result: Result<T, AppError>) -> Result<T, String> {
        result.map_err(|e| e.to_string())
    }
    use crate::settings::NotificationsView;
    use callpop_core::lines::LineLabel;
    use std::net::SocketAddr;
    use std::path::Path;

    /// Popups off: no test may reach the developer's notification server.
    pub(super) const QUIET: &str = "[popups]\nnotifications = \"off\"\n";

    /// A data directory and config file of its own, listening on a free port (or `listen`).
    pub(super) fn overrides(dir: &Path, config: &str, listen: &str) -> Overrides {
        let file = dir.join("config.toml");
        std::fs::write(&file, config).expect("write config");
        Overrides {
            listen: Some(listen.into()),
            data_dir: Some(dir.join("data")),
            config_file: Some(file),
            // Nothing from the developer's environment; secrets in the data directory.
            environment: Some(callpop_engine::config::Environment::only(&[(
                "CALLPOP_SECRET_STORE",
                "file",
            )])),
            ..Default::default()
        }
    }

    async fn start(dir: &Path, config: &str) -> App {
        App::start(
            overrides(dir, config, "127.0.0.1:0"),
            EngineOptions::default(),
        )
        .await
    }

    fn page(limit: u32) -> CallQuery {
        CallQuery {
            limit,
            ..Default::default()
        }
    }

    /// Where the running engine listens, once it does.
    pub(super) async fn listening(app: &App) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(addr) = app.get_health().await.listen {
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the engine never listened: {:?}",
                app.get_health().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next event `pick` accepts (others are skipped), within ten seconds.
    async fn next_event<T>(
        events: &mut broadcast::Receiver<AppEvent>,
        mut pick: impl FnMut(AppEvent) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if let Some(t) = pick(e) {
                            return t;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => panic!("events ended: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("no such event within 10 s")
    }

    /// Posts `body` to the local receiver; returns the status line.
    async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body).await.expect("write");
        let mut response = String::new();
        s.read_to_string(&mut response).await.expect("read");
        response.lines().next().unwrap_or_default().to_string()
    }

    fn scenario_file(name: &str) -> Vec<u8> {
        std::fs::read(callpop_testkit::scenarios_dir().join(name)).expect("scenario file")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_started_app_answers_with_an_empty_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = start(dir.path(), QUIET).await;
        assert_eq!(app.start_error().await, None);
        let addr = listening(&app).await;
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        let mut health = app.get_health().await;
        for _ in 0..100 {
            // Once the public-URL part has reported: before that nothing can be concluded.
            if health.parts.contains_key(&Part::Tunnel) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            health = app.get_health().await;
        }
        // A fresh install with no public address and no phone system: no call can come.
        assert_eq!(health.status, Status::NotReceiving, "{health:?}");
        assert_eq!(
            health.attention.as_ref().and_then(|a| a.fix.as_deref()),
            Some("tunnel")
        );
        assert_eq!(health.parts[&Part::Notifications].state, PartState::Off);
        assert_eq!(health.storage_error, None);

        assert_eq!(
            shown(app.list_calls(page(50)).await),
            Ok(CallPage {
                calls: Vec::new(),
                next_cursor: None,
                total: Some(0),
                total_at_least: None,
            })
        );
        assert_eq!(
            shown(app.list_calls(page(0)).await),
            Err("a page needs a size".to_string())
        );
        assert_eq!(
            shown(app.get_call(7).await),
            Err("call 7 is not in the history".to_string())
        );
        let settings = app.get_settings().await.expect("settings");
        assert_eq!(
            settings.general.data_dir,
            dir.path().join("data").display().to_string()
        );
        assert_eq!(settings.popups.notifications, NotificationsView::Off);

        // Without popups there is nothing to pause, and the window is told why.
        let unpaused = PauseState {
            paused: false,
            until: None,
        };
        assert_eq!(app.get_pause().await, unpaused);
        assert_eq!(
            shown(app.set_pause(Some(60)).await),
            Err("Popups are turned off in Settings.".to_string())
        );
        assert_eq!(
            shown(app.resume().await),
            Err("Popups are turned off in Settings.".to_string())
        );
        assert_eq!(
            shown(app.set_pause(Some(0)).await),
            Err("pause for at least a minute".to_string())
        );
        assert_eq!(
            app.test_ringcentral().await,
            ActionResult::failed(
                "Set the client id, client secret and JWT, and save, to connect to RingCentral."
            )
        );
        assert_eq!(
            app.run_health_action(HealthAction::BackfillNow).await,
            ActionResult::failed(
                "Backfill needs the RingCentral credentials: set them in Settings."
            )
        );

        // The window opens only links, and only files it exported itself.
        assert_eq!(
            shown(app.open_link("file:///etc/passwd".into()).await),
            Err("CallPop opens only web, phone and e-mail links".to_string())
        );
        assert_eq!(
            shown(app.open_export("/etc/passwd".into()).await),
            Err("CallPop opens only the files it exported".to_string())
        );
        let folder = dir.path().join("exports");
        std::fs::create_dir(&folder).expect("mkdir");
        let exported = app
            .export_csv(ExportRequest {
                folder: Some(folder.display().to_string()),
                ..ExportRequest::default()
            })
            .await
            .expect("export");
        assert_eq!(exported.rows, 0);
        assert_eq!(exported.folder, folder.display().to_string());
        assert_eq!(
            std::fs::read_to_string(&exported.path).expect("file"),
            format!("{}\n", crate::export::HEADER)
        );
        assert_eq!(
            app.exported_file(&exported.path).ok(),
            Some(PathBuf::from(&exported.path))
        );

        app.shutdown().await;
        assert_eq!(
            app.start_error().await.as_deref(),
            Some("CallPop is shutting down")
        );
        assert_eq!(
            shown(app.list_calls(page(50)).await),
            Err("the call history is not open (see Health)".to_string())
        );
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the receiver stopped listening"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_settings_are_not_saved_and_the_engine_keeps_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = start(dir.path(), QUIET).await;
        let file = dir.path().join("config.toml");
        let before = std::fs::read(&file).expect("read");
        let started = app.get_health().await.started_at;
        let view = app.get_settings().await.expect("settings");

        let mut update = view.unchanged();
        update.popups.max_on_screen = 0;
        update.watch_extensions = vec!["desk one".into()];
        update.ringotel.api_token = Some("never-stored".into());
        let result = app.save_settings(update).await.expect("answered");
        assert_eq!(
            result,
            SaveResult::Invalid {
                ok: false,
                errors: vec![
                    FieldError {
                        field: "watch_extensions.0".into(),
                        message: "an extension number or id is digits only".into(),
                    },
                    FieldError {
                        field: "popups.max_on_screen".into(),
                        message: "between 1 and 20".into(),
                    },
                ],
            }
        );
        assert_eq!(
            std::fs::read(&file).expect("read"),
            before,
            "file untouched"
        );
        let secrets = std::fs::read_to_string(
            dir.path()
                .join("data")
                .join(callpop_engine::secrets::SECRETS_FILE),
        )
        .expect("secrets");
        assert!(!secrets.contains("never-stored"), "no secret stored");
        assert_eq!(app.get_settings().await.expect("settings"), view);
        assert_eq!(app.get_health().await.started_at, started, "not restarted");
        assert_eq!(app.start_error().await, None);
        // The window sees the result as JSON with `ok: false`.
        let json = serde_json::to_value(&result).expect("json");
        assert_eq!(json["ok"], serde_json::json!(false));
        assert_eq!(json["errors"][1]["field"], "popups.max_on_screen");
        app.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saved_settings_restart_the_engine_with_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = start(dir.path(), QUIET).await;
        let old_addr = listening(&app).await;
        let old_start = app.get_health().await.started_at.expect("started");
        let mut events = app.subscribe();
        let view = app.get_settings().await.expect("settings");

        let mut update = view.unchanged();
        update.watch_extensions = vec!["500".into()];
        update.line_labels = vec![LineLabel {
            number: "+61398765432".into(),
            label: "Sales".into(),
        }];
        update.popups.max_on_screen = 5;
        // The token the Ringotel scenario payloads carry.
        update.ringotel.api_token = Some("ringotel-test-token".into());
        let result = app.save_settings(update).await.expect("saved");
        let SaveResult::Saved { ok, settings } = result else {
            panic!("not saved: {result:?}");
        };
        assert!(ok);
        assert_eq!(settings.watch_extensions, vec!["500"]);
        assert_eq!(settings.popups.max_on_screen, 5);
        assert!(settings.ringotel.api_token_set);
        assert_eq!(app.get_settings().await.expect("settings"), *settings);
        let text = std::fs::read_to_string(dir.path().join("config.toml")).expect("read");
        assert!(text.contains("max_on_screen = 5"), "{text}");
        assert!(!text.contains("ringotel-test-token"), "{text}");

        // A new engine: running, listening, and it said so.
        assert_eq!(app.start_error().await, None);
        // (The old engine may still report on its way down: skip what it says.)
        // Once its public-URL part has reported: before that nothing can be concluded.
        let health = next_event(&mut events, |e| match e {
            AppEvent::HealthChanged(h)
                if h.started_at.is_some_and(|t| t > old_start)
                    && h.parts.contains_key(&Part::Tunnel) =>
            {
                Some(h)
            }
            _ => None,
        })
        .await;
        assert_eq!(health.status, Status::NotReceiving, "{health:?}");
        assert_eq!(health.parts[&Part::Notifications].state, PartState::Off);
        let addr = listening(&app).await;

        // The new engine checks the new token, and what it stores reaches the window.
        let status = post(
            addr,
            callpop_core::routes::RINGOTEL_PATH,
            br#"{"method":"StartCallActivity","api_token":"wrong","params":{}}"#,
        )
        .await;
        assert!(status.starts_with("HTTP/1.1 401"), "{status}");
        let start = scenario_file("ro-missed/01-start.json");
        let status = post(addr, callpop_core::routes::RINGOTEL_PATH, &start).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let changed = next_event(&mut events, |e| match e {
            AppEvent::CallChanged(c) => Some(c),
            _ => None,
        })
        .await;
        assert_eq!(changed.call_key, "1763651200000-0f1e2d3c4b5a697887");
        assert_eq!(changed.provider, callpop_core::model::Provider::Ringotel);
        let stop = scenario_file("ro-missed/02-stop.json");
        assert_eq!(
            post(addr, callpop_core::routes::RINGOTEL_PATH, &stop).await,
            "HTTP/1.1 200 OK"
        );

        let mine = CallQuery {
            mine: Some(true),
            ..page(10)
        };
        let listed = app.list_calls(mine).await.expect("list");
        assert_eq!(listed.total, Some(1), "watched extension 500 took it");
        let call = &listed.calls[0];
        assert_eq!(call.id, changed.id);
        assert_eq!(call.result, Some(callpop_core::model::CallResult::Missed));
        let detail = app.get_call(call.id).await.expect("detail");
        let sources: Vec<&str> = detail.timeline.iter().map(|t| t.source.as_str()).collect();
        assert_eq!(sources, vec!["ringotel_start", "ringotel_stop"]);
        assert_eq!(detail.deliveries.len(), 2);
        assert!(
            !detail
                .deliveries
                .iter()
                .any(|d| d.body.contains("ringotel-test-token")),
            "the stored bodies never hold the token"
        );
        app.shutdown().await;
        assert!(tokio::net::TcpStream::connect(old_addr).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_taken_port_stops_the_engine_with_a_reason_until_it_is_free() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let listen = format!("127.0.0.1:{port}");
        let app = App::start(
            overrides(dir.path(), QUIET, &listen),
            EngineOptions::default(),
        )
        .await;
        let reason = app.start_error().await.expect("stopped");
        assert!(
            reason.starts_with(&format!(
                "Another program is using port {port}, so CallPop cannot receive calls."
            )),
            "{reason}"
        );

        // Everything still answers, and nothing says the history is at fault.
        let health = app.get_health().await;
        assert_eq!(health.status, Status::NotReceiving);
        assert_eq!(health.storage_error, None);
        assert_eq!(
            health.attention.map(|a| a.text).as_deref(),
            Some(reason.as_str())
        );
        assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(health.listen, None);
        assert_eq!(
            app.list_calls(page(10)).await.expect("an empty log").total,
            Some(0),
            "a first start with no history shows an empty log"
        );
        assert_eq!(
            shown(app.get_call(1).await),
            Err("the call history is not open (see Health)".to_string())
        );
        let view = app
            .get_settings()
            .await
            .expect("the settings page still works");
        assert_eq!(view.popups.notifications, NotificationsView::Off);
        assert_eq!(
            app.get_pause().await,
            PauseState {
                paused: false,
                until: None
            }
        );
        assert_eq!(shown(app.set_pause(Some(5)).await), Err(reason.clone()));
        assert_eq!(
            app.test_ringcentral().await,
            ActionResult::failed(reason.clone())
        );

        // Any fix on the health page starts the engine again; once the port is free it runs.
        assert_eq!(
            app.run_health_action(HealthAction::ReconnectTunnel).await,
            ActionResult::failed(reason.clone())
        );
        drop(taken);
        assert_eq!(
            app.run_health_action(HealthAction::BackfillNow).await,
            ActionResult::ok("CallPop restarted.")
        );
        assert_eq!(app.start_error().await, None);
        assert_eq!(listening(&app).await.port(), port);
        assert_eq!(app.list_calls(page(10)).await.expect("list").total, Some(0));
        app.shutdown().await;
    }

    #[test]
    fn the_mailbox_is_read_from_the_message_link() {
        assert_eq!(
            mailbox_in_link("https://platform.ringcentral.com/restapi/v1.0/account/1/extension/62264425016/message-store/82/content/82")
                .as_deref(),
            Some("62264425016")
        );
        assert_eq!(
            mailbox_in_link(
                "https://media.ringcentral.com/restapi/v1.0/account/1/recording/5/content"
            ),
            None
        );
        assert_eq!(
            mailbox_in_link("https://x/extension/../message-store/1"),
            None
        );
    }

    /// A history in `data` holding `deliveries`, as an earlier run left it.
    fn history_with(data: &Path, deliveries: Vec<callpop_core::model::Delivery>) {
        std::fs::create_dir_all(data).expect("mkdir");
        let mut store = Store::open(
            &data.join(callpop_store::DB_FILE),
            StoreOptions::new(callpop_testkit::us()),
        )
        .expect("store");
        for d in deliveries {
            store.ingest(&d).expect("ingest");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_taken_port_leaves_the_calls_on_disk_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let record = callpop_testkit::call_log_record(1);
        history_with(&data, vec![callpop_testkit::call_log_delivery(&record)]);
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let listen = taken.local_addr().expect("addr").to_string();
        let app = App::start(
            overrides(dir.path(), QUIET, &listen),
            EngineOptions::default(),
        )
        .await;
        assert!(app.start_error().await.is_some());
        let page = app.list_calls(page(10)).await.expect("the log still reads");
        assert_eq!(page.total, Some(1));
        let detail = app
            .get_call(page.calls[0].id)
            .await
            .expect("and its detail");
        assert_eq!(detail.call.call_key, "s-00001");
        app.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_voicemail_is_fetched_with_the_sign_in_once_and_kept_privately() {
        let fake = fake_ringcentral::FakePlatform::start(fake_ringcentral::FakeConfig::new(
            callpop_clock::Clock::real(),
        ))
        .await
        .expect("fake RingCentral");
        let audio = fake_ringcentral::silent_wav(1);
        fake.add_voicemail("62264425016", "82063400004", audio.clone(), 22);
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut deliveries = callpop_testkit::scenario("rc-inbound-voicemail");
        let answered = callpop_testkit::call_log_record(1);
        deliveries.push(callpop_testkit::call_log_delivery(&answered));
        history_with(&data, deliveries);
        let (id, secret, jwt) = fake.credentials();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, QUIET).expect("config");
        let app = App::start(
            Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some(data.clone()),
                config_file: Some(file),
                environment: Some(callpop_engine::config::Environment::only(&[
                    ("CALLPOP_SECRET_STORE", "file"),
                    ("CALLPOP_RINGCENTRAL_SERVER", fake.url()),
                    ("CALLPOP_RINGCENTRAL_CLIENT_ID", &id),
                    ("CALLPOP_RINGCENTRAL_CLIENT_SECRET", &secret),
                    ("CALLPOP_RINGCENTRAL_JWT", &jwt),
                ])),
                ..Default::default()
            },
            EngineOptions::default(),
        )
        .await;
        assert_eq!(app.start_error().await, None);
        let calls = app.list_calls(page(10)).await.expect("calls").calls;
        let call = calls
            .iter()
            .find(|c| c.voicemail_id.as_deref() == Some("82063400004"))
            .expect("the voicemail call");
        let path = app.fetch_voicemail(call.id).await.expect("fetched");
        assert_eq!(path, data.join("voicemail").join("82063400004.wav"));
        assert_eq!(std::fs::read(&path).expect("file"), audio);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a customer's message is the desk user's alone");
        assert_eq!(app.fetch_voicemail(call.id).await.expect("again"), path);
        assert_eq!(
            fake.stats().media_downloads,
            1,
            "fetched once, then played from disk"
        );
        let other = calls
            .iter()
            .find(|c| c.voicemail_id.is_none())
            .expect("a call without voicemail");
        assert_eq!(
            shown(app.fetch_voicemail(other.id).await),
            Err("this call has no RingCentral voicemail".to_string())
        );

        // "Backfill now" answers once the call log was read, not when it was asked.
        fake.schedule(fake_ringcentral::ScriptedCall::to_owner(
            Utc::now() - chrono::Duration::hours(2),
            "+14155550199",
            fake_ringcentral::CallOutcome::Missed { ring: 20 },
        ));
        let done = app.run_health_action(HealthAction::BackfillNow).await;
        assert!(done.ok, "{done:?}");
        assert!(
            done.message
                .starts_with("Checked the last 24 hours of the call log: "),
            "{done:?}"
        );
        let calls = app.list_calls(page(10)).await.expect("calls").calls;
        assert!(
            calls
                .iter()
                .any(|c| c.from_e164.as_deref() == Some("+14155550199")),
            "the call the log had is in the history once the answer came"
        );
        app.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreadable_settings_stop_the_engine_but_the_window_gets_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = start(dir.path(), "lisen = \"typo\"\n").await;
        let reason = app.start_error().await.expect("stopped");
        assert!(
            reason.starts_with("the settings cannot be read: "),
            "{reason}"
        );
        assert!(reason.contains("lisen"), "{reason}");
        // Nothing is wrong with the history: calls stop arriving, none is lost.
        let health = app.get_health().await;
        assert_eq!(health.status, Status::NotReceiving);
        assert_eq!(health.storage_error, None);
        let said = health.attention.map(|a| a.text).unwrap_or_default();
        assert!(said.starts_with("The settings cannot be read: "), "{said}");
        assert_eq!(shown(app.get_settings().await), Err(reason.clone()));
        assert_eq!(shown(app.list_calls(page(10)).await), Err(reason.clone()));
        assert_eq!(shown(app.get_call(1).await), Err(reason.clone()));
        assert_eq!(
            shown(app.export_csv(ExportRequest::default()).await),
            Err(reason.clone())
        );
        app.shutdown().await;
    }

    /// Set (by the parent test) in the child process that runs inside a private desktop session.
    const PAUSE_CHILD: &str = "CALLPOP_APP_TEST_PAUSE_CHILD";

    /// Popups need a notification server. The test starts a private one (D-Bus, Xvfb and dunst,
    /// as the notification integration tests do) and runs itself again in a child process
    /// pointed at it, so that no other test and no real desktop is touched.
    #[test]
    fn pausing_popups_is_broadcast_and_survives_a_restart() {
        if std::env::var_os(PAUSE_CHILD).is_some() {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(pause_in_a_desktop_session());
            return;
        }
        let desktop = desktop_session::DesktopSession::start();
        let name = "app::tests::pausing_popups_is_broadcast_and_survives_a_restart";
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(PAUSE_CHILD, "1")
            .envs(desktop.env())
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "the child failed:\n{stdout}\n{stderr}"
        );
    }

    async fn pause_in_a_desktop_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = start(dir.path(), "[popups]\nnotifications = \"on\"\n").await;
        assert_eq!(app.start_error().await, None);
        let health = app.get_health().await;
        assert_ne!(
            health.parts.get(&Part::Notifications).map(|p| p.state),
            Some(PartState::Error),
            "{health:?}"
        );
        let unpaused = PauseState {
            paused: false,
            until: None,
        };
        assert_eq!(app.get_pause().await, unpaused);
        let mut events = app.subscribe();
        let pause_event = |e| match e {
            AppEvent::PauseChanged(p) => Some(p),
            _ => None,
        };

        let before = Utc::now();
        let paused = app.set_pause(Some(60)).await.expect("pause");
        let after = Utc::now();
        assert!(paused.paused);
        let until = paused.until.expect("until");
        let hour = chrono::Duration::minutes(60);
        assert!(
            until >= before + hour && until <= after + hour,
            "{until} not an hour after {before}"
        );
        assert_eq!(next_event(&mut events, pause_event).await, paused);
        assert_eq!(app.get_pause().await, paused);

        // Saving settings restarts the engine; the pause is remembered.
        let view = app.get_settings().await.expect("settings");
        let mut update = view.unchanged();
        update.popups.max_on_screen = 4;
        assert!(matches!(
            app.save_settings(update).await,
            Ok(SaveResult::Saved { .. })
        ));
        assert_eq!(app.get_pause().await, paused);

        let resumed = app.resume().await.expect("resume");
        assert_eq!(resumed, unpaused);
        assert_eq!(next_event(&mut events, pause_event).await, unpaused);
        assert_eq!(app.get_pause().await, unpaused);

        let forever = app.set_pause(None).await.expect("pause");
        assert_eq!(
            forever,
            PauseState {
                paused: true,
                until: None
            }
        );
        assert_eq!(next_event(&mut events, pause_event).await, forever);
        assert_eq!(app.get_pause().await, forever);
        app.shutdown().await;
    }
}
