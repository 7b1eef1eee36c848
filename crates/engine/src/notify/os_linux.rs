//! Linux and the BSDs: the freedesktop Notifications D-Bus service, spoken directly over one
//! zbus connection; links through `xdg-open`.
//!
//! **One connection for everything.** A notification server sends `NotificationClosed` and
//! `ActionInvoked` to the connection that created the notification (dunst does only that;
//! GNOME and KDE broadcast as well). Creating each popup from a new connection, as notify-rust
//! does, and listening on another one meant a dismissed popup was never seen as closed and its
//! buttons never reached CallPop. So one thread owns one connection for the life of the
//! notifier: it sends `Notify` and `CloseNotification` and reads the signals, on the very
//! connection the server answers to.
//!
//! Updating in place uses `replaces_id`; buttons need the server's "actions" capability
//! (GNOME, KDE, XFCE, dunst have it; notify-osd and some minimal daemons do not — then the
//! popup has no buttons and the call is still one click away in the CallPop window). Tested
//! end to end with dunst (tests/it/notifications.rs); docs/PLATFORMS.md has the other systems.

use std::collections::HashMap;
use std::sync::mpsc as sync_mpsc;

use futures_util::StreamExt;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use zbus::Variant;

use super::{Capabilities, Notifier, NotifierEvent, NotifyError, Popup, Urgency, APP_NAME};

const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// How long a call to the notification server may take.
const METHOD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Shows notifications through the session's freedesktop notification server.
pub struct DesktopNotifier {
    capabilities: Capabilities,
    jobs: UnboundedSender<Job>,
}

/// Work for the D-Bus thread; each carries where its answer goes.
enum Job {
    Show {
        popup: Popup,
        replaces: Option<u32>,
        actions: bool,
        reply: sync_mpsc::SyncSender<Result<u32, NotifyError>>,
    },
    Close(u32),
}

/// What the D-Bus thread's one loop reacts to.
enum Input {
    Job(Job),
    Signal(zbus::Message),
    /// The notifier was dropped: the thread ends and the connection with it.
    Stop,
}

impl DesktopNotifier {
    /// Connects to the notification server and starts listening for what the user does to
    /// the notifications; fails when no server answers.
    pub fn connect(events: UnboundedSender<NotifierEvent>) -> Result<DesktopNotifier, NotifyError> {
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = sync_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("callpop-dbus".into())
            .spawn(move || zbus::block_on(run(jobs_rx, events, ready_tx)))
            .map_err(|e| NotifyError::Unavailable(format!("cannot start a thread: {e}")))?;
        let capabilities = ready_rx.recv().map_err(|_| {
            NotifyError::Unavailable("the notification connection ended at once".into())
        })??;
        Ok(DesktopNotifier { capabilities, jobs })
    }
}

impl Notifier for DesktopNotifier {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn show(&mut self, popup: &Popup, replaces: Option<u32>) -> Result<u32, NotifyError> {
        let (reply, answer) = sync_mpsc::sync_channel(1);
        self.jobs
            .send(Job::Show {
                popup: popup.clone(),
                replaces,
                actions: self.capabilities.actions,
                reply,
            })
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    fn close(&mut self, id: u32) -> Result<(), NotifyError> {
        self.jobs.send(Job::Close(id)).map_err(|_| gone())
    }

    fn open(&mut self, url: &str) -> Result<(), NotifyError> {
        open_link(url).map(drop)
    }
}

fn gone() -> NotifyError {
    NotifyError::Failed("the connection to the notification server ended".into())
}

fn failed(e: zbus::Error) -> NotifyError {
    NotifyError::Failed(e.to_string())
}

/// The D-Bus thread: connects, reports what the server supports, then serves jobs and
/// forwards the server's signals until the notifier is dropped.
async fn run(
    jobs: UnboundedReceiver<Job>,
    events: UnboundedSender<NotifierEvent>,
    ready: sync_mpsc::SyncSender<Result<Capabilities, NotifyError>>,
) {
    let started = async {
        // A server that hangs must not hold the popups up for good.
        let connection = zbus::connection::Builder::session()
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .await
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        let capabilities = capabilities(&connection)
            .await
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        // Listen before the first popup exists, so no early dismissal is missed.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(SERVICE)
            .path(PATH)
            .build()
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        let signals = zbus::MessageStream::for_match_rule(rule, &connection, None)
            .await
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        let owner = server_owner(&connection).await;
        Ok::<_, NotifyError>((connection, capabilities, signals, owner))
    };
    let (connection, capabilities, signals, mut owner) = match started.await {
        Ok(started) => started,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(capabilities)).is_err() {
        return;
    }
    let mut jobs = jobs;
    let jobs = futures_util::stream::poll_fn(move |cx| jobs.poll_recv(cx))
        .map(Input::Job)
        .chain(futures_util::stream::once(async { Input::Stop }));
    let signals = signals.filter_map(|m| async move { m.ok().map(Input::Signal) });
    let mut inputs = std::pin::pin!(futures_util::stream::select(jobs, signals));
    while let Some(input) = inputs.next().await {
        match input {
            Input::Job(Job::Show {
                popup,
                replaces,
                actions,
                reply,
            }) => {
                let shown = notify(&connection, &popup, replaces, actions).await;
                let _ = reply.send(shown);
            }
            Input::Job(Job::Close(id)) => {
                if let Err(e) = connection
                    .call_method(Some(SERVICE), PATH, Some(SERVICE), "CloseNotification", &id)
                    .await
                {
                    tracing::warn!(id, error = %e, "cannot close a notification");
                }
            }
            Input::Signal(message) => {
                // Any program on the session bus can send a signal that looks like the
                // server's; only the server's own count ("Call back" opens a link).
                let sender = message.header().sender().map(|s| s.to_string());
                if sender.is_none() || sender != owner {
                    // The server may have been replaced since: ask once who it is now.
                    owner = server_owner(&connection).await;
                    if sender.is_none() || sender != owner {
                        continue;
                    }
                }
                if let Some(event) = user_event(&message) {
                    if events.send(event).is_err() {
                        return;
                    }
                }
            }
            Input::Stop => return,
        }
    }
}

/// The unique bus name of the notification server now, if one runs.
async fn server_owner(connection: &zbus::Connection) -> Option<String> {
    connection
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "GetNameOwner",
            &SERVICE,
        )
        .await
        .ok()?
        .body()
        .deserialize::<String>()
        .ok()
}

async fn capabilities(connection: &zbus::Connection) -> Result<Capabilities, zbus::Error> {
    let (name, vendor, version, _spec): (String, String, String, String) = connection
        .call_method(
            Some(SERVICE),
            PATH,
            Some(SERVICE),
            "GetServerInformation",
            &(),
        )
        .await?
        .body()
        .deserialize()?;
    let caps: Vec<String> = connection
        .call_method(Some(SERVICE), PATH, Some(SERVICE), "GetCapabilities", &())
        .await?
        .body()
        .deserialize()?;
    let has = |c: &str| caps.iter().any(|x| x == c);
    Ok(Capabilities {
        actions: has("actions"),
        body_markup: has("body-markup"),
        persistence: has("persistence"),
        server: format!("{name} {version} ({vendor})"),
    })
}

/// Sends one `Notify`: a new notification, or notification `replaces` updated in place.
async fn notify(
    connection: &zbus::Connection,
    popup: &Popup,
    replaces: Option<u32>,
    with_actions: bool,
) -> Result<u32, NotifyError> {
    let icon = popup
        .icon
        .as_ref()
        .and_then(|p| p.to_str())
        .unwrap_or_default();
    // Actions go as a flat list: key, label, key, label, …
    let actions: Vec<&str> = if with_actions {
        popup
            .actions
            .iter()
            .flat_map(|(key, label)| [key.as_str(), label.as_str()])
            .collect()
    } else {
        Vec::new()
    };
    let mut hints: HashMap<&str, Variant<'_>> = HashMap::new();
    let urgency: u8 = match popup.urgency {
        Urgency::Normal => 1,
        Urgency::Critical => 2,
    };
    hints.insert("urgency", Variant::U8(urgency));
    hints.insert("desktop-entry", Variant::from("callpop"));
    // -1 lets the server choose; 0 keeps the notification until it is dismissed.
    let timeout: i32 = match popup.timeout {
        None => 0,
        Some(d) => i32::try_from(d.as_millis()).unwrap_or(i32::MAX),
    };
    connection
        .call_method(
            Some(SERVICE),
            PATH,
            Some(SERVICE),
            "Notify",
            &(
                APP_NAME,
                replaces.unwrap_or(0),
                icon,
                popup.summary.as_str(),
                popup.body.as_str(),
                actions,
                hints,
                timeout,
            ),
        )
        .await
        .map_err(failed)?
        .body()
        .deserialize::<u32>()
        .map_err(failed)
}

/// What a signal of the notification server says the user did, if it is one of ours to know.
fn user_event(message: &zbus::Message) -> Option<NotifierEvent> {
    let header = message.header();
    match header.member()?.as_str() {
        "NotificationClosed" => {
            let (id, _reason): (u32, u32) = message.body().deserialize().ok()?;
            Some(NotifierEvent::Closed { id })
        }
        "ActionInvoked" => {
            let (id, action): (u32, String) = message.body().deserialize().ok()?;
            Some(NotifierEvent::Action { id, action })
        }
        _ => None,
    }
}

/// Hands a link to the desktop's handler for it (`xdg-open`).
pub fn open_link(url: &str) -> Result<super::Opening, NotifyError> {
    super::run_opener("xdg-open", url)
}
