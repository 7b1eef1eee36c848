//! Settings as the desktop window edits them: what it shows (secrets only as "set"), what it
//! sends back, validation with a message per field, and saving (the config file for everything
//! but secrets, the secret store for secrets). The engine re-reads them by restarting.
//!
//! Files: this one holds the types the window sees; [`SettingsView::from_config`] is in
//! `view.rs`, [`SettingsUpdate::validate`] in `validate.rs`, [`SettingsUpdate::save`] in
//! `save.rs`, and the comment-preserving TOML editing it uses in `toml_file.rs`.

mod save;
mod toml_file;
mod validate;
mod view;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use callpop_core::lines::LineLabel;
pub use callpop_engine::config::Transport;
pub use save::save_hub_enabled;

/// RingCentral section as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RingCentralView {
    /// API server.
    pub server: String,
    /// App client id.
    pub client_id: String,
    /// A client secret is stored.
    pub client_secret_set: bool,
    /// A JWT is stored.
    pub jwt_set: bool,
    /// How RingCentral sends calls (`auto` prefers the WebSocket).
    pub transport: Transport,
}

/// Ringotel section as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RingotelView {
    /// An api token is stored.
    pub api_token_set: bool,
    /// The token comes from `CALLPOP_RINGOTEL_API_TOKEN`, which wins over Settings.
    pub api_token_from_environment: bool,
}

/// Public URL source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TunnelModeView {
    /// No public URL.
    Off,
    /// ngrok tunnel.
    Ngrok,
    /// The dealership's own URL.
    Provided,
}

/// Public URL section as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TunnelView {
    /// Source.
    pub mode: TunnelModeView,
    /// An ngrok authtoken is stored.
    pub ngrok_authtoken_set: bool,
    /// ngrok domain.
    pub ngrok_domain: String,
    /// Provided public URL.
    pub public_url: String,
}

/// Notifications setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum NotificationsView {
    /// On when the session has a notification server.
    Auto,
    /// Always on.
    On,
    /// Off.
    Off,
}

/// Quiet hours, local "HH:MM".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct QuietHoursView {
    /// First quiet minute.
    pub start: String,
    /// First minute after.
    pub end: String,
}

/// Popups section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PopupsView {
    /// auto / on / off.
    pub notifications: NotificationsView,
    /// No popups in these hours.
    pub quiet_hours: Option<QuietHoursView>,
    /// Most call popups on screen.
    pub max_on_screen: u32,
    /// "Open in CRM" link template ("" = none).
    pub crm_url_template: String,
    /// How long an answered popup stays.
    pub answered_close_seconds: u32,
}

/// General section as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GeneralView {
    /// Start at login (hidden in the tray).
    pub autostart: bool,
    /// The window's close button hides it to the tray.
    pub close_to_tray: bool,
    /// Where the history lives (read-only).
    pub data_dir: String,
    /// Country for national numbers.
    pub default_country: String,
}

/// Everything the settings page shows; secrets appear only as `*_set` flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SettingsView {
    /// RingCentral.
    pub ringcentral: RingCentralView,
    /// Ringotel.
    pub ringotel: RingotelView,
    /// Public URL.
    pub tunnel: TunnelView,
    /// Watched extensions.
    pub watch_extensions: Vec<String>,
    /// Dealership line names.
    pub line_labels: Vec<LineLabel>,
    /// Popups.
    pub popups: PopupsView,
    /// General.
    pub general: GeneralView,
    /// On a desk: the name of the hub whose settings RingCentral, Ringotel and the public URL
    /// are (shown read-only here).
    pub managed_by_hub: Option<String>,
}

/// RingCentral section as sent back; secrets: `None` keeps, `""` clears, text replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RingCentralUpdate {
    /// API server.
    pub server: String,
    /// App client id.
    pub client_id: String,
    /// New client secret.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub client_secret: Option<String>,
    /// New JWT.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub jwt: Option<String>,
    /// How RingCentral sends calls.
    #[serde(default)]
    pub transport: Transport,
}

/// Ringotel section as sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RingotelUpdate {
    /// New api token.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub api_token: Option<String>,
}

/// Public URL section as sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TunnelUpdate {
    /// Source.
    pub mode: TunnelModeView,
    /// New ngrok authtoken.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub ngrok_authtoken: Option<String>,
    /// ngrok domain.
    pub ngrok_domain: String,
    /// Provided public URL.
    pub public_url: String,
}

/// General section as sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GeneralUpdate {
    /// Start at login.
    pub autostart: bool,
    /// Close hides to tray.
    pub close_to_tray: bool,
    /// Country for national numbers.
    pub default_country: String,
}

/// What the settings page saves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SettingsUpdate {
    /// RingCentral.
    pub ringcentral: RingCentralUpdate,
    /// Ringotel.
    pub ringotel: RingotelUpdate,
    /// Public URL.
    pub tunnel: TunnelUpdate,
    /// Watched extensions.
    pub watch_extensions: Vec<String>,
    /// Dealership line names.
    pub line_labels: Vec<LineLabel>,
    /// Popups.
    pub popups: PopupsView,
    /// General.
    pub general: GeneralUpdate,
    /// The person has confirmed the changes [`SettingsUpdate::confirmations`] asked about
    /// (a new public URL, credentials cleared by a server change).
    #[serde(default)]
    pub confirmed: bool,
}

/// A change that must be confirmed before it is saved, and how to ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Confirmation {
    /// The field it is about.
    pub field: String,
    /// The question, in plain words.
    pub question: String,
}

/// A field that failed validation, by dotted path (`ringcentral.server`, `line_labels.2.number`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct FieldError {
    /// Dotted path.
    pub field: String,
    /// What to fix.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why settings could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("cannot write {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// The config file is not valid TOML; it is left as it is (it may be a half-finished
    /// hand edit whose settings would otherwise be lost).
    #[error("cannot write {path}: {source}")]
    Damaged {
        /// The config file.
        path: PathBuf,
        /// Where and why it does not parse.
        source: toml_edit::TomlError,
    },
    /// The config file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The config file.
        path: PathBuf,
        /// What writing it said.
        source: std::io::Error,
    },
    /// A secret could not be stored.
    #[error("cannot store a secret: {0}")]
    Secrets(#[from] callpop_engine::secrets::SecretsError),
}

#[cfg(test)]
mod tests;
