//! Desktop notifications behind one trait, so the popup logic never touches a platform API.
//!
//! [`DesktopNotifier`] is the real implementation, chosen here and nowhere else: on Linux and
//! the BSDs the freedesktop D-Bus notifier of `os_linux.rs`; on Windows and macOS, whose
//! notifications notify-rust cannot update or close, `banners.rs` over the system's
//! `show_banner` in `os_windows.rs` (toasts) or `os_macos.rs` (the notification centre). Each
//! `os_*.rs` also has `open_link` for "Call back" and CRM links. Only the Linux one is built
//! and tested here; docs/PLATFORMS.md says what the others cannot do and what is untested.
//! Tests of the popup logic use a recording implementation. Starting at login is the desktop shell's
//! (tauri-plugin-autostart), not the engine's.

#[cfg_attr(target_os = "windows", path = "os_windows.rs")]
#[cfg_attr(target_os = "macos", path = "os_macos.rs")]
#[cfg_attr(
    not(any(target_os = "windows", target_os = "macos")),
    path = "os_linux.rs"
)]
mod os;

/// Where notifications cannot be updated or closed, one notifier serves: each popup a banner.
#[cfg(any(target_os = "windows", target_os = "macos"))]
mod banners;
#[cfg(any(target_os = "windows", target_os = "macos"))]
pub use banners::DesktopNotifier;
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
pub use os::DesktopNotifier;

pub use os::open_link;

/// The application name notifications are sent under.
pub const APP_NAME: &str = "CallPop";

/// Runs `program url` detached, for the desktop to open the link (the URL is one argument,
/// never parsed by a shell). The returned [`Opening`] reaps it, so it never lingers as a zombie.
#[cfg_attr(target_os = "windows", allow(dead_code))]
fn run_opener(program: &str, url: &str) -> Result<Opening, NotifyError> {
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|child| Opening {
            child: Some(child),
            url: url.to_string(),
        })
        .map_err(|e| NotifyError::Opener(format!("cannot open {url}: {e}")))
}

/// A link handed to the desktop's opener. Dropping it lets the opener finish on its own;
/// [`Opening::verdict`] waits to learn whether anything on this computer took the link.
#[derive(Debug)]
pub struct Opening {
    child: Option<std::process::Child>,
    url: String,
}

impl Opening {
    /// A link the system opened synchronously (Windows' shell answers at once).
    #[cfg_attr(not(target_os = "windows"), allow(dead_code))]
    fn done(url: &str) -> Opening {
        Opening {
            child: None,
            url: url.to_string(),
        }
    }

    /// Waits up to `within` for the opener's answer. An opener that exits with a failure
    /// (`xdg-open` exits 3 or 4, `open` 1) found nothing that handles the link; one still
    /// running then has started a handler in the foreground, which counts as opened.
    pub fn verdict(mut self, within: Duration) -> Result<(), NotifyError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + within;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(_)) => return Err(NotifyError::NoHandler(kind_of(&self.url))),
                Ok(None) if std::time::Instant::now() >= deadline => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    return Err(NotifyError::Opener(format!(
                        "cannot open {}: {e}",
                        self.url
                    )))
                }
            }
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            std::thread::spawn(move || child.wait());
        }
    }
}

/// What picks the handler, in words: "tel: links", ".csv files", "this file".
fn kind_of(target: &str) -> String {
    let scheme = target.split_once(':').map(|(s, _)| s).filter(|s| {
        // Not a Windows drive letter (C:\…) or a path.
        s.len() > 1
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    if let Some(scheme) = scheme {
        return format!("{}: links", scheme.to_ascii_lowercase());
    }
    std::path::Path::new(target)
        .extension()
        .map(|e| format!(".{} files", e.to_string_lossy().to_ascii_lowercase()))
        .unwrap_or_else(|| "this file".into())
}

use std::path::PathBuf;
use std::time::Duration;

/// What the notification server supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Buttons on notifications ("Open", "Call back", …).
    pub actions: bool,
    /// The body is interpreted as markup (so text must be escaped).
    pub body_markup: bool,
    /// Notifications stay until dismissed.
    pub persistence: bool,
    /// The server's own name and version, for the health view.
    pub server: String,
}

/// How loudly a notification asks for attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Informational (answered calls).
    Normal,
    /// Needs someone now (ringing, missed).
    Critical,
}

/// One notification as the popup logic wants it shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popup {
    /// The title line (plain text).
    pub summary: String,
    /// The body (already escaped when the server interprets markup).
    pub body: String,
    /// Buttons as (key, label); only sent when the server supports actions.
    pub actions: Vec<(String, String)>,
    /// Attention level.
    pub urgency: Urgency,
    /// `None`: stays until dismissed; `Some(d)`: the server may expire it after `d`.
    pub timeout: Option<Duration>,
    /// The app icon.
    pub icon: Option<PathBuf>,
}

/// Something the user did to a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierEvent {
    /// A button (or the body, as `"default"`) was clicked.
    Action {
        /// Notification id.
        id: u32,
        /// The action key.
        action: String,
    },
    /// The notification is gone (expired, dismissed or closed by us).
    Closed {
        /// Notification id.
        id: u32,
    },
}

/// Why a notification could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No notification server answers on the session bus.
    #[error("no notification server is available: {0}")]
    Unavailable(String),
    /// The server refused or failed.
    #[error("the notification server failed: {0}")]
    Failed(String),
    /// Nothing on this computer opens links or files of this kind (`tel:` with no softphone
    /// installed, `.csv` with no spreadsheet).
    #[error("nothing on this computer opens {0}")]
    NoHandler(String),
    /// The desktop's opener could not be run.
    #[error("{0}")]
    Opener(String),
}

/// A notification backend. Calls are blocking and made from one thread at a time.
pub trait Notifier: Send + 'static {
    /// What the server supports.
    fn capabilities(&self) -> &Capabilities;
    /// Shows a notification, or replaces notification `replaces` in place; returns its id.
    fn show(&mut self, popup: &Popup, replaces: Option<u32>) -> Result<u32, NotifyError>;
    /// Closes a notification.
    fn close(&mut self, id: u32) -> Result<(), NotifyError>;
    /// Opens a link for the user (`tel:` for "Call back", the CRM URL).
    fn open(&mut self, url: &str) -> Result<(), NotifyError>;
}

/// Escapes text for a body the server interprets as markup (freedesktop markup is a small
/// XML subset: `<b>`, `<i>`, `<u>`, `<a>`, `<img>`).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod recording {
    //! A notifier that records what it was asked to do (unit tests only).

    use std::sync::{Arc, Mutex};

    use super::*;

    /// One recorded call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Show {
            id: u32,
            replaces: Option<u32>,
            popup: Popup,
        },
        Close {
            id: u32,
        },
        Open {
            url: String,
        },
    }

    /// Records calls; ids are handed out like a notification server does.
    pub struct RecordingNotifier {
        pub calls: Arc<Mutex<Vec<Call>>>,
        capabilities: Capabilities,
        next_id: u32,
    }

    impl RecordingNotifier {
        pub fn new(actions: bool, body_markup: bool) -> (RecordingNotifier, Arc<Mutex<Vec<Call>>>) {
            let calls = Arc::new(Mutex::new(Vec::new()));
            (
                RecordingNotifier {
                    calls: calls.clone(),
                    capabilities: Capabilities {
                        actions,
                        body_markup,
                        persistence: true,
                        server: "recording".into(),
                    },
                    next_id: 1,
                },
                calls,
            )
        }
    }

    impl Notifier for RecordingNotifier {
        fn capabilities(&self) -> &Capabilities {
            &self.capabilities
        }

        fn show(&mut self, popup: &Popup, replaces: Option<u32>) -> Result<u32, NotifyError> {
            let id = replaces.unwrap_or_else(|| {
                self.next_id += 1;
                self.next_id
            });
            self.calls.lock().expect("lock").push(Call::Show {
                id,
                replaces,
                popup: popup.clone(),
            });
            Ok(id)
        }

        fn close(&mut self, id: u32) -> Result<(), NotifyError> {
            self.calls.lock().expect("lock").push(Call::Close { id });
            Ok(())
        }

        fn open(&mut self, url: &str) -> Result<(), NotifyError> {
            self.calls
                .lock()
                .expect("lock")
                .push(Call::Open { url: url.into() });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpop_core::text::sanitize;

    #[test]
    fn names_cannot_hide_or_reorder_text_or_inject_markup() {
        let evil = "Bob\u{202E}evil\u{202C} <b>Boss</b>\n\u{200B}&co";
        let clean = sanitize(evil, 100);
        assert_eq!(clean, "Bobevil <b>Boss</b> &co");
        assert_eq!(
            escape_markup(&clean),
            "Bobevil &lt;b&gt;Boss&lt;/b&gt; &amp;co"
        );
        assert_eq!(sanitize(&"x".repeat(300), 10).chars().count(), 10);
        assert_eq!(sanitize("  \u{7}  ", 10), "");
    }

    #[test]
    fn an_opener_that_gives_up_means_nothing_handles_the_link() {
        let within = Duration::from_secs(5);
        let none = run_opener("false", "tel:+14155550123").expect("spawn");
        assert_eq!(
            none.verdict(within).map_err(|e| e.to_string()),
            Err("nothing on this computer opens tel: links".into())
        );
        assert_eq!(kind_of("/home/u/Documents/calls.csv"), ".csv files");
        assert_eq!(kind_of("C:\\Users\\u\\calls.CSV"), ".csv files");
        assert_eq!(kind_of("/home/u/Documents"), "this file");
        assert_eq!(kind_of("HTTPS://x"), "https: links");
        let taken = run_opener("true", "tel:+14155550123").expect("spawn");
        assert!(taken.verdict(within).is_ok());
        // A handler started in the foreground (xdg-open waits for it) counts as opened.
        let started = std::time::Instant::now();
        let busy = run_opener("sleep", "30").expect("spawn");
        assert!(busy.verdict(Duration::from_millis(300)).is_ok());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(run_opener("/nonexistent/opener", "tel:1").is_err());
    }
}
