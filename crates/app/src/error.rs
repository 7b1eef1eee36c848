//! Why a window command failed. The window shows the text as it is, so every message is written
//! for the person using CallPop; over IPC the error travels as that text.

use serde::{Serialize, Serializer};

use crate::settings::SettingsError;
use crate::window::WindowError;

/// Why a command from the window could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine is not running; the reason is what Health shows.
    #[error("{0}")]
    EngineStopped(String),
    /// The history could not be opened (Health says why).
    #[error("the call history is not open (see Health)")]
    HistoryClosed,
    /// The thread reading the history stopped before answering.
    #[error("the history read failed: {0}")]
    ReadStopped(#[from] tokio::task::JoinError),
    /// The window's request against the history failed.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// Settings could not be saved.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Desktop notifications are off; the text says why (the notifications health part).
    #[error("{0}")]
    PopupsOff(String),
    /// The popup manager has stopped.
    #[error("popups are not running")]
    PopupsStopped,
    /// Hub mode: pairing, joining or leaving failed; the text says why in plain words.
    #[error("{0}")]
    Hub(String),
    /// The window asked to open a file it did not export.
    #[error("CallPop opens only the files it exported")]
    NotAnExport,
    /// The window asked to open a link of a kind CallPop never opens.
    #[error("CallPop opens only web, phone and e-mail links")]
    LinkRefused,
    /// Nothing on this computer opens this kind of link or file.
    #[error("nothing on this computer opens {0}")]
    NoHandler(String),
    /// The desktop could not open it.
    #[error("{0}")]
    Open(String),
    /// A pause must last a minute or more.
    #[error("pause for at least a minute")]
    PauseTooShort,
}

/// Sent to the window as its message, which is what it shows.
impl Serialize for AppError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}
