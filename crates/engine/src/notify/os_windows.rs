//! Windows: toasts through notify-rust (shown by [`super::banners`]), links through the shell
//! (`ShellExecuteW`).
//!
//! The same signatures as `os_macos.rs` (`SERVICE`, `show_banner`, `open_link`), but never
//! compiled on the Linux build machine: untested (docs/PLATFORMS.md). Toasts cannot be
//! replaced or closed through notify-rust and carry no buttons wired to this process. They
//! need the AppUserModelID the installer registers; without it Windows drops them silently.

use super::{NotifyError, Popup, Urgency, APP_NAME};

/// What the health page calls the notification service.
pub const SERVICE: &str = "Windows notifications";

/// The AppUserModelID the installer registers for CallPop's shortcut.
const APP_ID: &str = "app.callpop.desktop";

/// Shows `popup` as a new toast.
pub fn show_banner(popup: &Popup) -> Result<(), NotifyError> {
    notify_rust::Notification::new()
        .appname(APP_NAME)
        .app_id(APP_ID)
        .summary(&popup.summary)
        .body(&popup.body)
        .urgency(match popup.urgency {
            Urgency::Normal => notify_rust::Urgency::Normal,
            Urgency::Critical => notify_rust::Urgency::Critical,
        })
        // A ringing or missed call stays until dismissed, as on Linux.
        .timeout(match popup.timeout {
            None => notify_rust::Timeout::Never,
            Some(d) => {
                notify_rust::Timeout::Milliseconds(d.as_millis().min(u128::from(u32::MAX)) as u32)
            }
        })
        .show()
        .map(|_| ())
        .map_err(|e| NotifyError::Failed(e.to_string()))
}

/// Hands a link to the shell (`ShellExecuteW`, through the `open` crate's
/// `shellexecute-on-windows`). Never `cmd /C start`: an `&` in a CRM link would end the URL
/// there and run the rest as a command.
pub fn open_link(url: &str) -> Result<super::Opening, NotifyError> {
    // ERROR_NO_ASSOCIATION (1155): nothing is registered for the scheme or file type.
    const NO_ASSOCIATION: i32 = 1155;
    open::that_detached(url)
        .map(|()| super::Opening::done(url))
        .map_err(|e| match e.raw_os_error() {
            Some(NO_ASSOCIATION) => NotifyError::NoHandler(super::kind_of(url)),
            _ => NotifyError::Opener(format!("cannot open {url}: {e}")),
        })
}
