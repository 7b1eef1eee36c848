//! The engine: opens the store, resolves the webhook tokens, starts the single writer and the
//! background parts, and serves the receiver. `callpop serve` and the desktop app both run
//! exactly this.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::Health;
use crate::model::RenewalReminder;
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
}

impl Engine {
    /// Opens the history and starts the writer; must run inside a Tokio runtime.
    pub fn start(config: Config) -> Result<Engine, EngineError> {
        let tokens = crate::secrets::webhook_tokens(&config)?;
        let store = Store::open(
            &config.db_path(),
            StoreOptions {
                country: config.default_country,
            },
        )?;
        let (changes, _) = broadcast::channel(1024);
        let (writer, writer_thread) =
            StoreWriter::spawn(store, changes.clone()).map_err(EngineError::Thread)?;
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let (reminders_tx, reminders_rx) = mpsc::channel(16);
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
        };
        engine.start_subscription_part(reminders_rx);
        Ok(engine)
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
