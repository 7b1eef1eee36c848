//! The engine: opens the store, resolves the webhook tokens, starts the single writer and the
//! background parts, and serves the receiver. `callpop serve` and the desktop app both run
//! exactly this.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backfill::{BackfillRequest, BackfillState, Backfiller};
use crate::config::Transport;
use crate::config::{Config, NotificationsMode};
use crate::deliveries::DeliverySink;
use crate::health::{Health, Part, PartState};
use crate::instance::InstanceLock;
use crate::notify::DesktopNotifier;
use crate::notify::{Notifier, NotifierEvent};
use crate::popups::{PopupHandle, PopupManager, PopupRequest, PopupSettings};
use crate::receiver::{Receiver, ReceiverSettings};
use crate::secrets::{SecretsError, WebhookTokens};
use crate::subscriptions::{Keeper, KeeperHandle, KeeperSettings, KeeperState, KeeperTask};
use crate::tunnel::{NgrokSettings, TunnelHandle, TunnelMode, TunnelPart};
use crate::websocket::WebSocketTask;
use callpop_core::model::RenewalReminder;
use callpop_ringcentral::api::{Credentials, Platform};
use callpop_store::writer::{CommittedChange, StoreWriter};
use callpop_store::{Store, StoreError, StoreOptions};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another engine runs on the data dir.
    #[error(transparent)]
    Instance(#[from] crate::instance::InstanceError),
    /// The call history could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The webhook tokens could not be resolved.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// A thread could not be started.
    #[error("cannot start the store writer: {0}")]
    Thread(std::io::Error),
    /// The RingCentral client could not be set up.
    #[error("RingCentral client: {0}")]
    Platform(#[from] callpop_ringcentral::api::ApiError),
    /// The desk's pairing file could not be read.
    #[error(transparent)]
    Desk(#[from] crate::desk::state::DeskStateError),
}

/// What the engine read from the store before handing it to the writer.
struct Remembered {
    popups: Vec<callpop_store::PopupRecord>,
    pause: Option<String>,
    keeper: KeeperState,
    backfill: BackfillState,
    last_live_delivery: Option<chrono::DateTime<chrono::Utc>>,
    /// On a desk: what its link to the hub remembers.
    hub_link: crate::desk::link::Remembered,
}

/// How long background parts (keeper, backfill, popups, tunnel) get to stop at shutdown.
const PARTS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How the embedding application runs the engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// A CallPop window can show a call (popups then offer "Open").
    pub window_available: bool,
    /// The data dir's lock, when the embedding program already holds it (it takes it before
    /// binding the port, and the desktop app keeps it across engine restarts); without it the
    /// engine takes the lock itself.
    pub instance: Option<Arc<InstanceLock>>,
}

/// The notification icon, written next to the history so every notifier can point at a file.
const ICON_PNG: &[u8] = include_bytes!("../../../icons/128x128.png");

/// A running engine (store writer + background parts), ready to serve.
pub struct Engine {
    config: Config,
    /// The data dir is this engine's while it runs.
    instance: Arc<InstanceLock>,
    tokens: WebhookTokens,
    health: Arc<Health>,
    writer: StoreWriter,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    changes: broadcast::Sender<CommittedChange>,
    shutdown: CancellationToken,
    reminders_tx: mpsc::Sender<RenewalReminder>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    popups: Option<PopupHandle>,
    popup_requests: broadcast::Sender<PopupRequest>,
    keeper: Option<KeeperHandle>,
    websocket: Option<crate::websocket::WsHandle>,
    backfill: Option<mpsc::Sender<BackfillRequest>>,
    platform: Option<Arc<Platform>>,
    tunnel: Option<TunnelHandle>,
    hub: Option<Arc<crate::hub::api::HubState>>,
    desk: Option<crate::desk::DeskState>,
}

impl Engine {
    /// Opens the history and starts the writer; must run inside a Tokio runtime.
    pub fn start(config: Config) -> Result<Engine, EngineError> {
        Engine::start_with(config, EngineOptions::default())
    }

    /// Like [`Engine::start`], for an embedding application with its own options.
    pub fn start_with(mut config: Config, options: EngineOptions) -> Result<Engine, EngineError> {
        // First of all: a second engine on this data dir must not touch its secrets, history
        // or RingCentral subscription.
        let program = if options.window_available {
            "the CallPop app"
        } else {
            "callpop serve"
        };
        let instance = match &options.instance {
            Some(held) => held.clone(),
            None => Arc::new(InstanceLock::acquire(&config.data_dir, program)?),
        };
        let desk = crate::desk::DeskState::load(&config.data_dir)?;
        let tokens = crate::secrets::webhook_tokens(&config)?;
        crate::secrets::complete_platform_credentials(&mut config)?;
        let store = Store::open(&config.db_path(), StoreOptions::new(config.default_country))?;
        let now = config.clock.now();
        let state = |key: &str| -> Result<Option<String>, StoreError> { store.state_get(key) };
        let remembered = Remembered {
            popups: store.popups_since(now - chrono::Duration::hours(24))?,
            pause: state(crate::popups::PAUSE_KEY)?,
            keeper: state(crate::subscriptions::STATE_KEY)?
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
            backfill: state(crate::backfill::STATE_KEY)?
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
            last_live_delivery: store.last_live_delivery_at()?,
            hub_link: crate::desk::link::remembered(&store)?,
        };
        let (changes, _) = broadcast::channel(4096);
        let (writer, writer_thread) =
            StoreWriter::spawn(store, changes.clone()).map_err(EngineError::Thread)?;
        let health = Health::new();
        let (state, detail) = crate::secrets::credential_health(&config);
        health.set_part(Part::Credentials, state, detail);
        let shutdown = CancellationToken::new();
        let (reminders_tx, reminders_rx) = mpsc::channel(16);
        let (popup_requests, _) = broadcast::channel(16);
        let mut engine = Engine {
            config,
            instance,
            tokens,
            health,
            writer,
            writer_thread: Some(writer_thread),
            changes,
            shutdown,
            reminders_tx,
            tasks: Vec::new(),
            popups: None,
            popup_requests,
            keeper: None,
            websocket: None,
            backfill: None,
            platform: None,
            tunnel: None,
            hub: None,
            desk: desk.clone(),
        };
        if let Some(desk) = desk {
            // A desk: calls come from the hub, never from a phone system or a tunnel.
            engine.start_reminder_reporter(reminders_rx);
            engine.health.set_part(
                Part::Tunnel,
                PartState::Off,
                format!(
                    "Not needed: this desk gets its calls from the hub \"{}\".",
                    desk.hub_name
                ),
            );
            engine.start_popups(&options, remembered.popups, remembered.pause);
            engine.start_desk_link(desk, remembered.hub_link);
            engine.tasks.push(tokio::spawn(compact_feed(
                engine.writer.clone(),
                None,
                engine.shutdown.clone(),
            )));
            engine.tasks.push(tokio::spawn(recheck_storage(
                engine.health.clone(),
                engine.writer.clone(),
                engine.shutdown.clone(),
            )));
            if engine.config.hub.enabled {
                tracing::warn!(
                    "this CallPop is a desk of a hub, so it does not serve desks itself"
                );
            }
            engine.tasks.push(tokio::spawn(follow_writer_restarts(
                engine.health.clone(),
                engine.writer.restarts(),
                engine.shutdown.clone(),
            )));
            return Ok(engine);
        }
        let mode = engine.tunnel_mode();
        engine.start_platform_parts(reminders_rx, &remembered, &mode)?;
        engine.start_tunnel(mode);
        engine.start_popups(&options, remembered.popups, remembered.pause);
        if engine.config.hub.enabled {
            engine.start_hub();
        }
        engine.tasks.push(tokio::spawn(compact_feed(
            engine.writer.clone(),
            engine.hub.as_ref().map(|h| h.durable.clone()),
            engine.shutdown.clone(),
        )));
        engine.tasks.push(tokio::spawn(recheck_storage(
            engine.health.clone(),
            engine.writer.clone(),
            engine.shutdown.clone(),
        )));
        engine.tasks.push(tokio::spawn(end_unheard_calls(
            engine.writer.clone(),
            engine.config.clock,
            engine.shutdown.clone(),
        )));
        engine.tasks.push(tokio::spawn(follow_writer_restarts(
            engine.health.clone(),
            engine.writer.restarts(),
            engine.shutdown.clone(),
        )));
        Ok(engine)
    }

    /// The public URL source the settings ask for.
    pub fn tunnel_mode(&self) -> TunnelMode {
        use crate::config::TunnelChoice as C;
        let t = &self.config.tunnel;
        let ngrok = t.ngrok_authtoken.clone().map(|authtoken| {
            TunnelMode::Ngrok(NgrokSettings {
                authtoken,
                domain: t.ngrok_domain.clone(),
                server_addr: t.ngrok_server.clone(),
            })
        });
        let provided = self.config.public_url.clone().map(TunnelMode::Provided);
        match t.choice {
            C::Off => TunnelMode::Off,
            #[cfg(any(test, feature = "test-hooks"))]
            C::Loopback => TunnelMode::Loopback {
                rotate_every: t.loopback_rotate,
            },
            C::Ngrok => ngrok.unwrap_or(TunnelMode::Off),
            C::Provided => provided.unwrap_or(TunnelMode::Off),
            C::Auto => ngrok.or(provided).unwrap_or(TunnelMode::Off),
        }
    }

    fn start_tunnel(&mut self, mode: TunnelMode) {
        use crate::config::TunnelChoice as C;
        let missing = match (self.config.tunnel.choice, &mode) {
            (C::Ngrok, TunnelMode::Off) => Some("ngrok is selected but no authtoken is set"),
            (C::Provided, TunnelMode::Off) => {
                Some("a provided public URL is selected but none is set")
            }
            _ => None,
        };
        let (handle, task) = TunnelPart {
            mode,
            router: self.receiver().public_router(),
            health: self.health.clone(),
            clock: self.config.clock,
            backfill: self.backfill.clone(),
        }
        .start(self.shutdown.clone());
        if let Some(problem) = missing {
            self.health
                .set_part(Part::Tunnel, PartState::Error, problem);
        }
        self.tasks.push(task);
        if let Some(keeper) = self.keeper.clone() {
            // The subscription follows the public URL wherever it goes.
            let mut urls = handle.watch_url();
            let shutdown = self.shutdown.clone();
            self.tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        changed = urls.changed() => {
                            if changed.is_err() { break; }
                            let url = urls.borrow_and_update().clone();
                            if url.is_some() {
                                keeper.public_url_changed(url).await;
                            }
                        }
                    }
                }
            }));
        }
        self.tunnel = Some(handle);
    }

    /// The desk API, when this CallPop is a hub. A listener that cannot open is reported on
    /// the health page; calls are still received.
    fn start_hub(&mut self) {
        let parts = crate::hub::HubParts {
            writer: self.writer.clone(),
            changes: self.changes.clone(),
            health: self.health.clone(),
            shutdown: self.shutdown.clone(),
        };
        match crate::hub::HubServer::start(&self.config, parts) {
            Ok((server, tasks)) => {
                self.instance.record_hub_listen(server.addr);
                self.tasks.extend(tasks);
                self.hub = Some(server.state);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serve desks");
                self.health
                    .set_part(Part::Hub, PartState::Error, e.to_string());
            }
        }
    }

    /// The link to the hub, when this CallPop is a desk.
    fn start_desk_link(
        &mut self,
        state: crate::desk::DeskState,
        remembered: crate::desk::link::Remembered,
    ) {
        let token = match crate::desk::join::token(&self.config) {
            Ok(Some(token)) => token,
            Ok(None) => {
                let why = "This desk has no token for its hub (its pairing is incomplete): join the hub again.";
                self.health.set_part(Part::HubLink, PartState::Error, why);
                return;
            }
            Err(e) => {
                let why = format!("Cannot read this desk's token for its hub: {e}");
                self.health.set_part(Part::HubLink, PartState::Error, why);
                return;
            }
        };
        let link = crate::desk::link::DeskLink {
            state,
            token,
            writer: self.writer.clone(),
            health: self.health.clone(),
            popups: self.popups.clone(),
            watch_extensions: self.config.watch_extensions.clone(),
            window: self.config.desk,
            remembered,
            data_dir: self.config.data_dir.clone(),
        };
        self.tasks.push(link.start(self.shutdown.clone()));
    }

    /// The hub this CallPop is a desk of, if it is one.
    pub fn desk(&self) -> Option<&crate::desk::DeskState> {
        self.desk.as_ref()
    }

    /// The desk API's state, when this CallPop is a hub serving desks.
    pub fn hub(&self) -> Option<Arc<crate::hub::api::HubState>> {
        self.hub.clone()
    }

    /// The tunnel part.
    pub fn tunnel(&self) -> Option<TunnelHandle> {
        self.tunnel.clone()
    }

    /// With RingCentral credentials: the subscription keeper and backfill. Without: reminders
    /// can only be reported, and the health view says subscription management is off.
    fn start_platform_parts(
        &mut self,
        reminders: mpsc::Receiver<RenewalReminder>,
        remembered: &Remembered,
        mode: &TunnelMode,
    ) -> Result<(), EngineError> {
        let rc = &self.config.ringcentral;
        let (Some(client_id), Some(client_secret), Some(jwt)) = (
            rc.client_id.clone(),
            rc.client_secret.clone(),
            rc.jwt.clone(),
        ) else {
            self.start_reminder_reporter(reminders);
            return Ok(());
        };
        let clock = self.config.clock;
        let platform = Arc::new(Platform::new(
            &rc.server,
            Credentials {
                client_id,
                client_secret,
                jwt,
            },
            clock,
        )?);
        self.platform = Some(platform.clone());
        let (backfill_tx, backfill_task) = Backfiller {
            platform: platform.clone(),
            writer: self.writer.clone(),
            health: self.health.clone(),
            country: self.config.default_country,
            clock,
            settle: chrono::Duration::seconds(45),
            state: remembered.backfill.clone(),
        }
        .start(self.shutdown.clone());
        self.tasks.push(backfill_task);
        // Whatever happened while CallPop was not running is only in the call log.
        let now = clock.now();
        let since = [remembered.backfill.last_to, remembered.last_live_delivery]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now - chrono::Duration::hours(24));
        if backfill_tx
            .try_send(BackfillRequest {
                since,
                reason: "CallPop started".into(),
                reply: None,
            })
            .is_err()
        {
            tracing::warn!("cannot queue the start-up backfill");
        }
        self.health.set_part(
            Part::Backfill,
            PartState::Pending,
            "Looking in the RingCentral call log for calls that did not arrive live…",
        );
        let keeper = Keeper::new(
            platform.clone(),
            KeeperSettings {
                // A tunnel publishes its URL once it is online; a provided one is known now.
                public_url: match mode {
                    TunnelMode::Provided(url) => Some(url.clone()),
                    _ => None,
                },
                event_filters: rc.event_filters.clone(),
                expires_in: rc.subscription_expires_in,
                verification_token: self.tokens.ringcentral.clone(),
                check_interval: rc.check_interval,
            },
            clock,
            remembered.keeper.clone(),
        );
        self.health.set_part(
            Part::Subscription,
            PartState::Renewing,
            "Checking the RingCentral subscription…",
        );
        let transport = rc.transport;
        let (handle, task) = KeeperTask {
            keeper,
            health: self.health.clone(),
            writer: self.writer.clone(),
            backfill: backfill_tx.clone(),
            reminders,
            clock,
            role: crate::transport::initial_role(transport),
        }
        .start(self.shutdown.clone());
        self.tasks.push(task);
        let websocket = if transport == Transport::Webhook {
            self.health.set_ringcentral_transport(Some("webhook"));
            self.health.set_part(
                Part::Websocket,
                PartState::Off,
                "Off: RingCentral sends calls to the public address (webhook), as set.",
            );
            None
        } else {
            let (ws, ws_task) = WebSocketTask {
                platform,
                sink: DeliverySink::new(self.writer.clone(), self.health.clone(), None, clock),
                health: self.health.clone(),
                backfill: backfill_tx.clone(),
                event_filters: self.config.ringcentral.event_filters.clone(),
                country: self.config.default_country,
                clock,
            }
            .start(self.shutdown.clone());
            self.tasks.push(ws_task);
            self.tasks.push(tokio::spawn(crate::transport::follow(
                transport,
                ws.watch(),
                handle.clone(),
                self.health.clone(),
                self.shutdown.clone(),
            )));
            Some(ws)
        };
        let websocket_handle = websocket.clone();
        self.tasks.push(tokio::spawn(
            crate::wake::WakeWatcher {
                clock,
                keeper: handle.clone(),
                websocket,
                backfill: backfill_tx.clone(),
            }
            .run(self.shutdown.clone()),
        ));
        self.keeper = Some(handle);
        self.websocket = websocket_handle;
        self.backfill = Some(backfill_tx);
        Ok(())
    }

    /// The subscription keeper, when RingCentral credentials are configured.
    pub fn keeper(&self) -> Option<KeeperHandle> {
        self.keeper.clone()
    }

    /// The RingCentral WebSocket, when credentials are configured and the transport may use it.
    pub fn websocket(&self) -> Option<crate::websocket::WsHandle> {
        self.websocket.clone()
    }

    /// Asks for a backfill from `since` (e.g. after the tunnel was down).
    pub async fn request_backfill(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        reason: &str,
    ) -> bool {
        match &self.backfill {
            Some(tx) => tx
                .send(BackfillRequest {
                    since,
                    reason: reason.into(),
                    reply: None,
                })
                .await
                .is_ok(),
            None => false,
        }
    }

    /// Where backfill requests go, when RingCentral credentials are configured.
    pub fn backfill_requests(&self) -> Option<mpsc::Sender<BackfillRequest>> {
        self.backfill.clone()
    }

    /// The RingCentral client, when credentials are configured.
    pub fn platform(&self) -> Option<Arc<Platform>> {
        self.platform.clone()
    }

    /// The popup settings the configuration asks for.
    pub fn popup_settings(&self, options: &EngineOptions) -> PopupSettings {
        let p = &self.config.popups;
        PopupSettings {
            watch_extensions: self.config.watch_extensions.clone(),
            stale_after: p.stale_after,
            answered_close_after: p.answered_close_after,
            stuck_ringing_after: crate::popups::STUCK_RINGING,
            max_on_screen: p.max_on_screen,
            quiet_hours: p.quiet_hours,
            line_labels: self.config.line_labels.clone(),
            crm_url_template: p.crm_url_template.clone(),
            window_available: options.window_available,
            icon: self.icon_file(),
        }
    }

    fn icon_file(&self) -> Option<std::path::PathBuf> {
        let path = self.config.data_dir.join("callpop-icon.png");
        let current = std::fs::read(&path).ok();
        if current.as_deref() != Some(ICON_PNG) {
            if let Err(e) = std::fs::write(&path, ICON_PNG) {
                tracing::debug!(error = %e, "no notification icon");
                return None;
            }
        }
        Some(path)
    }

    fn start_popups(
        &mut self,
        options: &EngineOptions,
        remembered: Vec<callpop_store::PopupRecord>,
        pause: Option<String>,
    ) {
        let mode = self.config.popups.notifications;
        if mode == NotificationsMode::Off {
            self.health.set_part(
                Part::Notifications,
                PartState::Off,
                "Popups are turned off in Settings.",
            );
            return;
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel::<NotifierEvent>();
        // Connecting talks D-Bus synchronously; keep it off the async worker threads.
        let connected = std::thread::spawn(move || DesktopNotifier::connect(events_tx))
            .join()
            .unwrap_or_else(|_| {
                Err(crate::notify::NotifyError::Unavailable(
                    "the notification check crashed".into(),
                ))
            });
        let notifier: Box<dyn Notifier> = match connected {
            Ok(n) => Box::new(n),
            Err(e) => {
                let (state, detail) = match mode {
                    NotificationsMode::On => (PartState::Error, e.to_string()),
                    _ => (
                        PartState::Off,
                        "This desktop has no notification service, so CallPop cannot show popups."
                            .to_string(),
                    ),
                };
                tracing::info!("desktop notifications: {detail}");
                self.health.set_part(Part::Notifications, state, detail);
                return;
            }
        };
        let settings = self.popup_settings(options);
        let manager = PopupManager::new(
            settings,
            notifier,
            events_rx,
            self.writer.clone(),
            self.health.clone(),
            self.popup_requests.clone(),
            remembered,
            pause,
            self.config.clock,
        );
        match manager {
            Ok(manager) => {
                let (handle, task) = manager.start(self.changes.subscribe(), self.shutdown.clone());
                self.popups = Some(handle);
                self.tasks.push(task);
            }
            Err(e) => self.health.set_part(
                Part::Notifications,
                PartState::Error,
                format!("cannot start popups: {e}"),
            ),
        }
    }

    /// Controls popups (pause, settings), when notifications are on.
    pub fn popups(&self) -> Option<PopupHandle> {
        self.popups.clone()
    }

    /// Requests from popup buttons ("Open" a call) for the embedding application.
    pub fn popup_requests(&self) -> broadcast::Receiver<PopupRequest> {
        self.popup_requests.subscribe()
    }

    /// Without credentials, reminders can only be reported: the subscription is managed
    /// outside CallPop.
    fn start_reminder_reporter(&mut self, mut reminders: mpsc::Receiver<RenewalReminder>) {
        self.health.set_part(
            Part::Subscription,
            PartState::Off,
            "Off: with the RingCentral client ID, client secret and JWT in Settings, CallPop \
             keeps RingCentral sending calls here.",
        );
        let shutdown = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    reminder = reminders.recv() => match reminder {
                        Some(r) => tracing::warn!(
                            subscription = r.subscription_id.as_deref().unwrap_or("?"),
                            expires_in = r.expires_in,
                            "RingCentral says a subscription expires soon, but subscription \
                             management is off; renew it where it was created"
                        ),
                        None => break,
                    },
                }
            }
        }));
    }

    /// The settings the engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The webhook tokens in force.
    pub fn tokens(&self) -> &WebhookTokens {
        &self.tokens
    }

    /// The health board.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Committed call changes, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<CommittedChange> {
        self.changes.subscribe()
    }

    /// Cancelling this token stops the engine gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The HTTP receiver wired to this engine.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(
            self.writer.clone(),
            self.health.clone(),
            ReceiverSettings {
                ringcentral_token: self.tokens.ringcentral.clone(),
                ringotel_token: self.tokens.ringotel.clone(),
                country: self.config.default_country,
                max_body_bytes: self.config.max_body_bytes,
                reminders: Some(self.reminders_tx.clone()),
                clock: self.config.clock,
                desk_of: self.desk.as_ref().map(|d| d.hub_name.clone()),
            },
        )
    }

    /// Serves the receiver on `listener` until shutdown, then stops every part and waits for
    /// the writer to finish its last commit.
    pub async fn run(self, listener: tokio::net::TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            self.health.set_listen(addr);
            self.instance.record_listen(addr);
        }
        let router = self.receiver().router();
        crate::server::serve(listener, router, self.shutdown.clone()).await;
        let Engine {
            writer,
            writer_thread,
            mut tasks,
            shutdown,
            reminders_tx,
            ..
        } = self;
        shutdown.cancel();
        let parts_stopped = async {
            for task in tasks.iter_mut() {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(PARTS_GRACE, parts_stopped)
            .await
            .is_err()
        {
            // A part in the middle of a RingCentral request (a 30 s timeout, retries, a
            // Retry-After of up to an hour) must not keep CallPop from stopping: whatever it
            // was doing is redone at the next start (listing finds any subscription it made).
            tracing::warn!(
                "a background part was still waiting on RingCentral after {} s; stopped it",
                PARTS_GRACE.as_secs()
            );
            // Those already awaited are finished (a JoinHandle must not be polled again).
            let stuck: Vec<_> = tasks.into_iter().filter(|t| !t.is_finished()).collect();
            for task in &stuck {
                task.abort();
            }
            for task in stuck {
                let _ = task.await;
            }
        }
        // The writer thread exits when its last sender is gone; it finishes the batch in hand.
        drop(writer);
        drop(reminders_tx);
        if let Some(handle) = writer_thread {
            let joined = tokio::time::timeout(
                crate::server::SHUTDOWN_GRACE,
                tokio::task::spawn_blocking(move || handle.join()),
            )
            .await;
            if joined.is_err() {
                tracing::warn!("the store writer did not stop in time");
            }
        }
        tracing::info!("call history closed");
    }
}

/// How often a history that could not be written is tried again while no delivery arrives.
const STORAGE_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Engine-state key written to find out whether the history takes writes again.
const STORAGE_PROBE_KEY: &str = "storage.probe";

/// How often the change feed's superseded rows are compacted.
const COMPACT_FEED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Compacts the change feed up to what is on disk, every [`COMPACT_FEED_EVERY`]: each call
/// keeps one row there, however often it changed (schema 9). A hub compacts only up to the
/// position it publishes to its desks (`published`), which may trail the writer's: a desk
/// reading up to it must still find each record's change there.
async fn compact_feed(
    writer: StoreWriter,
    published: Option<tokio::sync::watch::Receiver<i64>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(COMPACT_FEED_EVERY) => {}
        }
        let upto = match &published {
            Some(position) => Ok(*position.borrow()),
            None => writer.durable_feed_position().await,
        };
        let compacted = match upto {
            Ok(upto) if upto > 0 => writer.compact_feed(upto).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = compacted {
            tracing::debug!(error = %e, "cannot compact the change feed now");
        }
    }
}

/// Tells health when the history's writer died and was restarted (`StoreWriter::spawn`).
async fn follow_writer_restarts(
    health: Arc<Health>,
    mut restarts: tokio::sync::watch::Receiver<callpop_store::writer::WriterRestarts>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = restarts.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let now = restarts.borrow_and_update().clone();
        health.writer_restarted(now.count, now.last_failure, now.restarting);
    }
}

/// Clears a storage error once the history takes writes again. Deliveries clear it too, but at
/// a quiet desk the next one may be an hour away, and until then the tray and the window would
/// go on saying that calls cannot be stored after the disk was freed.
async fn recheck_storage(health: Arc<Health>, writer: StoreWriter, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(STORAGE_RECHECK) => {}
        }
        if !health.storage_failing() {
            continue;
        }
        let now = chrono::Utc::now().to_rfc3339();
        // A delivery failing while the probe runs keeps the error up: its write was
        // submitted later.
        let ticket = health.storage_ticket();
        match writer.set_state(STORAGE_PROBE_KEY, &now).await {
            Ok(()) => {
                tracing::info!("the call history takes writes again");
                health.storage_succeeded(ticket);
            }
            Err(e) => tracing::debug!(error = %e, "the call history still refuses writes"),
        }
    }
}

/// How often calls whose end never came are looked for.
const UNHEARD_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Ends, once a minute and at start, the calls whose end the phone system never reported
/// (`callpop_core::calls::UNHEARD_RINGING`, `UNHEARD_CONNECTED`): the log stops ticking
/// "Ringing 6:32" for good, the popup and the summary let go of them, and they can be found
/// as `no_end_reported`.
async fn end_unheard_calls(
    writer: StoreWriter,
    clock: callpop_clock::Clock,
    shutdown: CancellationToken,
) {
    use callpop_core::calls::{UNHEARD_CONNECTED, UNHEARD_RINGING};
    let before = |bound: std::time::Duration| {
        clock.now() - chrono::Duration::from_std(bound).unwrap_or_default()
    };
    loop {
        match writer
            .end_unheard_calls(before(UNHEARD_RINGING), before(UNHEARD_CONNECTED))
            .await
        {
            Ok(ended) if !ended.is_empty() => {
                tracing::info!(
                    calls = ended.len(),
                    "calls whose end was never reported were ended"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "calls without an end were not checked"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UNHEARD_CHECK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use axum::body::Body;
    use tower::ServiceExt;

    const TOKEN: &str = "the-verification-token";

    /// An engine on a fresh data folder: no tunnel, no popups, no RingCentral platform.
    fn engine_in(dir: &std::path::Path) -> Engine {
        let file = dir.join("config.toml");
        std::fs::write(&file, "").expect("config");
        let overrides = Overrides {
            data_dir: Some(dir.to_path_buf()),
            config_file: Some(file),
            ..Default::default()
        };
        let env = |name: &str| {
            match name {
                "CALLPOP_TUNNEL" => Some("off"),
                "CALLPOP_NOTIFICATIONS" => Some("off"),
                "CALLPOP_SECRET_STORE" => Some("file"),
                "CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN" => Some(TOKEN),
                _ => None,
            }
            .map(str::to_string)
        };
        Engine::start(Config::load_with(&overrides, &env).expect("config")).expect("engine")
    }

    async fn deliver(router: &axum::Router, uuid: &str) -> u16 {
        let now = chrono::Utc::now();
        let body = callpop_testkit::payloads::rc_notification(
            uuid,
            callpop_testkit::payloads::TELEPHONY_EVENT,
            now,
            "sub-1",
            "1",
            callpop_testkit::payloads::rc_desk_call_body("s-restart", 1, "Setup", "Ann", now),
        );
        let body = body.to_string();
        // As on the wire: HTTP/1.1 frames a body with its length (without, there is none).
        let request = axum::http::Request::post(callpop_core::routes::RINGCENTRAL_PATH)
            .header("content-length", body.len())
            .header("content-type", "application/json")
            .header("verification-token", TOKEN)
            .body(Body::from(body))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("response");
        response.status().as_u16()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_dies_is_restarted_and_health_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine_in(dir.path());
        let router = engine.receiver().router();
        assert_eq!(deliver(&router, "before").await, 200);

        let died = engine.writer.simulate_writer_death().await;
        assert!(matches!(died, Err(StoreError::WriterGone)), "{died:?}");
        let health = engine.health();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let s = health.snapshot();
            if s.writer_restarts == 1 && s.storage_error.is_none() {
                assert_eq!(
                    s.writer_last_failure.as_deref(),
                    Some("stopped by a test hook")
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not restarted: {s:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            deliver(&router, "after").await,
            200,
            "deliveries are stored again"
        );
        engine.shutdown_token().cancel();
    }
}
