//! The notification API blocks (D-Bus round trips), so it runs on a thread of its own and the
//! manager talks to it through a channel.

use tokio::sync::oneshot;

use crate::notify::{Capabilities, Notifier, NotifyError, Popup};

/// Runs a blocking [`Notifier`] on its own thread.
pub(super) struct NotifierThread {
    tx: std::sync::mpsc::Sender<NotifierJob>,
    pub(super) capabilities: Capabilities,
}

enum NotifierJob {
    Show(
        Popup,
        Option<u32>,
        oneshot::Sender<Result<u32, NotifyError>>,
    ),
    Close(u32),
    Open(String),
}

impl NotifierThread {
    pub(super) fn spawn(mut notifier: Box<dyn Notifier>) -> std::io::Result<NotifierThread> {
        let capabilities = notifier.capabilities().clone();
        let (tx, rx) = std::sync::mpsc::channel::<NotifierJob>();
        std::thread::Builder::new()
            .name("callpop-notifier".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        NotifierJob::Show(popup, replaces, reply) => {
                            let _ = reply.send(notifier.show(&popup, replaces));
                        }
                        NotifierJob::Close(id) => {
                            if let Err(e) = notifier.close(id) {
                                tracing::warn!(error = %e, "cannot close a notification");
                            }
                        }
                        NotifierJob::Open(url) => {
                            if let Err(e) = notifier.open(&url) {
                                tracing::warn!(error = %e, "cannot open a link");
                            }
                        }
                    }
                }
            })?;
        Ok(NotifierThread { tx, capabilities })
    }

    pub(super) async fn show(
        &self,
        popup: Popup,
        replaces: Option<u32>,
    ) -> Result<u32, NotifyError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NotifierJob::Show(popup, replaces, reply))
            .map_err(|_| NotifyError::Failed("the notifier thread stopped".into()))?;
        rx.await
            .map_err(|_| NotifyError::Failed("the notifier thread stopped".into()))?
    }

    pub(super) fn close(&self, id: u32) {
        let _ = self.tx.send(NotifierJob::Close(id));
    }

    pub(super) fn open(&self, url: String) {
        let _ = self.tx.send(NotifierJob::Open(url));
    }
}
