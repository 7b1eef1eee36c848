//! The engine: opens the store, resolves the webhook tokens, starts the single writer and the
//! background parts, and serves the receiver. `callpop serve` and the desktop app both run
//! exactly this.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, NotificationsMode};
use crate::health::Health;
use crate::model::RenewalReminder;
use crate::notify::desktop::DesktopNotifier;
use crate::notify::{Notifier, NotifierEvent};
use crate::popups::{PopupHandle, PopupManager, PopupRequest, PopupSettings};
use crate::receiver::{Receiver, ReceiverSettings};
use crate::secrets::{SecretsError, WebhookTokens};
use crate::store::writer::{CommittedChange, StoreWriter};
use crate::store::{Store, StoreError, StoreOptions};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The call history could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The webhook tokens could not be resolved.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// A thread could not be started.
    #[error("cannot start the store writer: {0}")]
    Thread(std::io::Error),
}

/// How the embedding application runs the engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// A CallPop window can show a call (popups then offer "Open").
    pub window_available: bool,
}

/// The notification icon, written next to the history so every notifier can point at a file.
const ICON_PNG: &[u8] = include_bytes!("../icons/128x128.png");

/// A running engine (store writer + background parts), ready to serve.
pub struct Engine {
    config: Config,
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
}

impl Engine {
    /// Opens the history and starts the writer; must run inside a Tokio runtime.
    pub fn start(config: Config) -> Result<Engine, EngineError> {
        Engine::start_with(config, EngineOptions::default())
    }

    /// Like [`Engine::start`], for an embedding application with its own options.
    pub fn start_with(config: Config, options: EngineOptions) -> Result<Engine, EngineError> {
        let tokens = crate::secrets::webhook_tokens(&config)?;
        let store = Store::open(
            &config.db_path(),
            StoreOptions {
                country: config.default_country,
            },
        )?;
        // What the popup manager needs to remember from before a restart.
        let remembered_popups =
            store.popups_since(chrono::Utc::now() - chrono::Duration::hours(24))?;
        let pause = store.state_get(crate::popups::PAUSE_KEY)?;
        let (changes, _) = broadcast::channel(4096);
        let (writer, writer_thread) =
            StoreWriter::spawn(store, changes.clone()).map_err(EngineError::Thread)?;
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let (reminders_tx, reminders_rx) = mpsc::channel(16);
        let (popup_requests, _) = broadcast::channel(16);
        let mut engine = Engine {
            config,
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
        };
        engine.start_subscription_part(reminders_rx);
        engine.start_popups(&options, remembered_popups, pause);
        Ok(engine)
    }

    /// The popup settings the configuration asks for.
    pub fn popup_settings(&self, options: &EngineOptions) -> PopupSettings {
        let p = &self.config.popups;
        PopupSettings {
            watch_extensions: self.config.watch_extensions.clone(),
            stale_after: p.stale_after,
            answered_close_after: p.answered_close_after,
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
        remembered: Vec<crate::store::PopupRecord>,
        pause: Option<String>,
    ) {
        let mode = self.config.popups.notifications;
        if mode == NotificationsMode::Off {
            self.health.set_part(
                "notifications",
                "off",
                "desktop notifications are turned off",
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
                    NotificationsMode::On => ("error", e.to_string()),
                    _ => (
                        "off",
                        "no notification server on this session; popups are off".to_string(),
                    ),
                };
                tracing::info!("desktop notifications: {detail}");
                self.health.set_part("notifications", state, detail);
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
        );
        match manager {
            Ok(manager) => {
                let (handle, task) = manager.start(self.changes.subscribe(), self.shutdown.clone());
                self.popups = Some(handle);
                self.tasks.push(task);
            }
            Err(e) => self.health.set_part(
                "notifications",
                "error",
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

    /// Until the RingCentral platform client lands, reminders can only be reported: the
    /// subscription is managed outside CallPop.
    fn start_subscription_part(&mut self, mut reminders: mpsc::Receiver<RenewalReminder>) {
        self.health.set_part(
            "subscription",
            "off",
            "subscription management is off: no RingCentral credentials are configured",
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
            },
        )
    }

    /// Serves the receiver on `listener` until shutdown, then stops every part and waits for
    /// the writer to finish its last commit.
    pub async fn run(self, listener: tokio::net::TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            self.health.set_listen(addr);
        }
        let router = self.receiver().router();
        crate::server::serve(listener, router, self.shutdown.clone()).await;
        let Engine {
            writer,
            writer_thread,
            tasks,
            shutdown,
            reminders_tx,
            ..
        } = self;
        shutdown.cancel();
        for task in tasks {
            let _ = task.await;
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
