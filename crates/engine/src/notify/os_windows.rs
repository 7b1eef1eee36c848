//! Windows: toasts through notify-rust, links through the shell (`ShellExecuteW`).
//!
//! Written to the same signatures as `os_linux.rs` but never compiled on the Linux build
//! machine: untested (docs/PLATFORMS.md). What Windows does not offer, or notify-rust does not
//! expose there: replacing or closing a shown toast (an update is a new toast, which the
//! manager's own closing and "answered" timer cannot take back), buttons wired to this process,
//! and the close event. Toasts need the AppUserModelID the installer registers; without it
//! Windows drops them silently.

use tokio::sync::mpsc::UnboundedSender;

use super::{Capabilities, Notifier, NotifierEvent, NotifyError, Popup};

/// The application name notifications are sent under.
pub const APP_NAME: &str = "CallPop";

/// The AppUserModelID the installer registers for CallPop's shortcut.
const APP_ID: &str = "app.callpop.desktop";

/// Shows notifications as Windows toasts.
pub struct DesktopNotifier {
    capabilities: Capabilities,
    /// Toasts have no id this process can use again; each shown one gets the next number.
    next_id: u32,
}

impl DesktopNotifier {
    /// Always succeeds: Windows has one notification service, and it accepts toasts even
    /// where the person turned them off.
    pub fn connect(
        _events: UnboundedSender<NotifierEvent>,
    ) -> Result<DesktopNotifier, NotifyError> {
        Ok(DesktopNotifier {
            capabilities: Capabilities {
                actions: false,
                body_markup: false,
                persistence: false,
                server: "Windows notifications".into(),
            },
            next_id: 0,
        })
    }
}

impl Notifier for DesktopNotifier {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn show(&mut self, popup: &Popup, _replaces: Option<u32>) -> Result<u32, NotifyError> {
        notify_rust::Notification::new()
            .appname(APP_NAME)
            .app_id(APP_ID)
            .summary(&popup.summary)
            .body(&popup.body)
            .show()
            .map_err(|e| NotifyError::Failed(e.to_string()))?;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        Ok(self.next_id)
    }

    fn close(&mut self, _id: u32) -> Result<(), NotifyError> {
        Ok(())
    }

    fn open(&mut self, url: &str) -> Result<(), NotifyError> {
        open_link(url)
    }
}

/// Hands a link to the shell (`ShellExecuteW`, through the `open` crate's
/// `shellexecute-on-windows`). Never `cmd /C start`: an `&` in a CRM link would end the URL
/// there and run the rest as a command.
pub fn open_link(url: &str) -> Result<(), NotifyError> {
    open::that_detached(url).map_err(|e| NotifyError::Failed(format!("cannot open {url}: {e}")))
}
