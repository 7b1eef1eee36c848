//! A notifier for systems whose notifications, as notify-rust offers them there, cannot be
//! updated, closed or given buttons wired back to this process: each popup is a new banner
//! (Windows toasts, the macOS notification centre). The system itself is in `os_*.rs`.
//!
//! Never compiled on the Linux build machine: untested (docs/PLATFORMS.md).

use tokio::sync::mpsc::UnboundedSender;

use super::os;
use super::{Capabilities, Notifier, NotifierEvent, NotifyError, Popup};

/// Shows each popup as a new banner of the system's notification service.
pub struct DesktopNotifier {
    capabilities: Capabilities,
    /// Banners have no id this process can use again; each shown one gets the next number.
    next_id: u32,
}

impl DesktopNotifier {
    /// Always succeeds: these systems have one notification service, which takes banners even
    /// where the person turned them off.
    pub fn connect(
        _events: UnboundedSender<NotifierEvent>,
    ) -> Result<DesktopNotifier, NotifyError> {
        Ok(DesktopNotifier {
            capabilities: Capabilities {
                actions: false,
                body_markup: false,
                persistence: false,
                server: os::SERVICE.into(),
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
        os::show_banner(popup)?;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        Ok(self.next_id)
    }

    fn close(&mut self, _id: u32) -> Result<(), NotifyError> {
        Ok(())
    }

    fn open(&mut self, url: &str) -> Result<(), NotifyError> {
        os::open_link(url).map(drop)
    }
}
