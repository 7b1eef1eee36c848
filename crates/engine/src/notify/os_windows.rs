//! Windows: toasts through notify-rust (shown by [`super::banners`]), links through the shell
//! (`ShellExecuteW`).
//!
//! Written to the same signatures as the other systems' files but never compiled on the Linux
//! build machine: untested (docs/PLATFORMS.md). Toasts cannot be replaced or closed through
//! notify-rust and carry no buttons wired to this process. They need the AppUserModelID the
//! installer registers; without it Windows drops them silently.

use super::{NotifyError, Popup, APP_NAME};

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
        .show()
        .map(|_| ())
        .map_err(|e| NotifyError::Failed(e.to_string()))
}

/// Hands a link to the shell (`ShellExecuteW`, through the `open` crate's
/// `shellexecute-on-windows`). Never `cmd /C start`: an `&` in a CRM link would end the URL
/// there and run the rest as a command.
pub fn open_link(url: &str) -> Result<(), NotifyError> {
    open::that_detached(url).map_err(|e| NotifyError::Failed(format!("cannot open {url}: {e}")))
}
