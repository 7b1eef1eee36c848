//! Linux and the BSDs: the freedesktop Notifications D-Bus service through notify-rust, links
//! through `xdg-open`.
//!
//! Updating in place uses `replaces_id`; buttons need the server's "actions" capability
//! (GNOME, KDE, XFCE, dunst have it; notify-osd and some minimal daemons do not — then the
//! popup has no buttons and the call is still one click away in the CallPop window). Tested
//! end to end with dunst (tests/it/notifications.rs); docs/PLATFORMS.md has the other systems.

use std::collections::{HashMap, HashSet};

use notify_rust::{Hint, Notification, NotificationHandle, Timeout};
use tokio::sync::mpsc::UnboundedSender;

use super::{Capabilities, Notifier, NotifierEvent, NotifyError, Popup, Urgency, APP_NAME};

/// Shows notifications through the platform's notification service.
pub struct DesktopNotifier {
    capabilities: Capabilities,
    events: UnboundedSender<NotifierEvent>,
    /// The latest handle of each notification we show, to update or close it in place.
    handles: HashMap<u32, NotificationHandle>,
    /// Notifications whose actions and closing we already listen for.
    watched: HashSet<u32>,
}

impl DesktopNotifier {
    /// Connects to the notification server; fails when none is available.
    pub fn connect(events: UnboundedSender<NotifierEvent>) -> Result<DesktopNotifier, NotifyError> {
        let info = notify_rust::get_server_information()
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        let caps = notify_rust::get_capabilities().unwrap_or_default();
        let has = |c: &str| caps.iter().any(|x| x == c);
        Ok(DesktopNotifier {
            capabilities: Capabilities {
                actions: has("actions"),
                body_markup: has("body-markup"),
                persistence: has("persistence"),
                server: format!("{} {} ({})", info.name, info.version, info.vendor),
            },
            events,
            handles: HashMap::new(),
            watched: HashSet::new(),
        })
    }

    fn fill(&self, n: &mut Notification, popup: &Popup) {
        n.appname(APP_NAME)
            .summary(&popup.summary)
            .body(&popup.body);
        if let Some(icon) = popup.icon.as_ref().and_then(|p| p.to_str()) {
            n.icon(icon);
        }
        n.actions.clear();
        if self.capabilities.actions {
            for (key, label) in &popup.actions {
                n.action(key, label);
            }
        }
        n.urgency(match popup.urgency {
            Urgency::Normal => notify_rust::Urgency::Normal,
            Urgency::Critical => notify_rust::Urgency::Critical,
        });
        n.hint(Hint::DesktopEntry("callpop".into()));
        n.timeout(match popup.timeout {
            None => Timeout::Never,
            Some(d) => Timeout::Milliseconds(d.as_millis().min(u32::MAX as u128) as u32),
        });
    }

    /// Listens, on its own thread, for the user's clicks on notification `id` and its closing.
    fn watch(&mut self, id: u32) {
        if !self.watched.insert(id) {
            return;
        }
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("callpop-notification-{id}"))
            .spawn(move || loop {
                // Each wait ends at the first action or the closing; keep listening after an
                // action, because the notification may stay on screen.
                let mut closed = false;
                let waited =
                    notify_rust::handle_action(id, |response: &notify_rust::ActionResponse| {
                        let event = match response {
                            notify_rust::ActionResponse::Custom(action) => NotifierEvent::Action {
                                id,
                                action: action.to_string(),
                            },
                            notify_rust::ActionResponse::Closed(_) => {
                                closed = true;
                                NotifierEvent::Closed { id }
                            }
                        };
                        let _ = events.send(event);
                    });
                if waited.is_err() || closed || events.is_closed() {
                    break;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot listen for notification actions");
            self.watched.remove(&id);
        }
    }
}

impl Notifier for DesktopNotifier {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn show(&mut self, popup: &Popup, replaces: Option<u32>) -> Result<u32, NotifyError> {
        if let Some(id) = replaces {
            if let Some(mut handle) = self.handles.remove(&id) {
                self.fill(&mut handle, popup);
                handle
                    .update()
                    .map_err(|e| NotifyError::Failed(e.to_string()))?;
                let id = handle.id();
                self.handles.insert(id, handle);
                return Ok(id);
            }
        }
        let mut n = Notification::new();
        self.fill(&mut n, popup);
        if let Some(id) = replaces {
            // After a restart we hold no handle, only the id the server gave us before.
            n.id(id);
        }
        let handle = n.show().map_err(|e| NotifyError::Failed(e.to_string()))?;
        let id = handle.id();
        self.handles.insert(id, handle);
        self.watch(id);
        Ok(id)
    }

    fn close(&mut self, id: u32) -> Result<(), NotifyError> {
        match self.handles.remove(&id) {
            Some(handle) => {
                handle.close();
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn open(&mut self, url: &str) -> Result<(), NotifyError> {
        open_link(url)
    }
}

/// Hands a link to the desktop's handler for it (`xdg-open`).
pub fn open_link(url: &str) -> Result<(), NotifyError> {
    super::run_opener("xdg-open", url)
}
