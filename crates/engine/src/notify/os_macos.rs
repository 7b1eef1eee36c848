//! macOS: the notification centre through notify-rust, links through `/usr/bin/open`.
//!
//! Written to the same signatures as `os_linux.rs` but never compiled on the Linux build
//! machine: untested (docs/PLATFORMS.md). notify-rust's default macOS backend
//! (NSUserNotification) cannot replace or close a delivered notification and wires no buttons
//! to this process: an update arrives as a new banner.

use tokio::sync::mpsc::UnboundedSender;

use super::{Capabilities, Notifier, NotifierEvent, NotifyError, Popup};

/// The application name notifications are sent under.
pub const APP_NAME: &str = "CallPop";

/// Shows notifications in the macOS notification centre.
pub struct DesktopNotifier {
    capabilities: Capabilities,
    /// Banners have no id this process can use again; each shown one gets the next number.
    next_id: u32,
}

impl DesktopNotifier {
    /// Always succeeds: macOS has one notification centre.
    pub fn connect(
        _events: UnboundedSender<NotifierEvent>,
    ) -> Result<DesktopNotifier, NotifyError> {
        Ok(DesktopNotifier {
            capabilities: Capabilities {
                actions: false,
                body_markup: false,
                persistence: false,
                server: "macOS notification centre".into(),
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

/// Hands a link to LaunchServices (`/usr/bin/open`), which picks the handler for `tel:` and
/// `https:`; the URL is one argument, never parsed by a shell.
pub fn open_link(url: &str) -> Result<(), NotifyError> {
    std::process::Command::new("/usr/bin/open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| NotifyError::Failed(format!("cannot open {url}: {e}")))
        .and_then(|status| {
            status
                .success()
                .then_some(())
                .ok_or_else(|| NotifyError::Failed(format!("cannot open {url}: {status}")))
        })
}
