//! macOS: the notification centre through notify-rust (shown by [`super::banners`]), links
//! through `/usr/bin/open`.
//!
//! The same signatures as `os_windows.rs` (`SERVICE`, `show_banner`, `open_link`), but never
//! compiled on the Linux build machine: untested (docs/PLATFORMS.md). notify-rust's default
//! macOS backend (NSUserNotification) cannot replace or close a delivered notification and
//! wires no buttons to this process: an update arrives as a new banner.

use super::{NotifyError, Popup, APP_NAME};

/// What the health page calls the notification service.
pub const SERVICE: &str = "macOS notification centre";

/// Shows `popup` as a new banner.
pub fn show_banner(popup: &Popup) -> Result<(), NotifyError> {
    notify_rust::Notification::new()
        .appname(APP_NAME)
        .summary(&popup.summary)
        .body(&popup.body)
        .show()
        .map(|_| ())
        .map_err(|e| NotifyError::Failed(e.to_string()))
}

/// Hands a link to LaunchServices (`/usr/bin/open`), which picks the handler for `tel:` and
/// `https:`.
pub fn open_link(url: &str) -> Result<super::Opening, NotifyError> {
    super::run_opener("/usr/bin/open", url)
}
