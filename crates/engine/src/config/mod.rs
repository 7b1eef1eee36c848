//! Settings, layered: built-in defaults → config file (TOML) → `CALLPOP_…` environment →
//! command-line flags. Secrets never live in the config file; they come from the environment
//! or the secret store (see [`crate::secrets`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use callpop_core::lines::LineLabel;
use callpop_core::numbers::Country;
use callpop_core::Secret;

mod hub;
pub use hub::{DeskConfig, HubConfig, DEFAULT_HUB_LISTEN, DEFAULT_WINDOW_DAYS};

/// The address the receiver listens on when nothing else is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Largest webhook body accepted by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("config file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{setting}: {message}")]
    Value {
        /// Which setting (file key or environment variable).
        setting: String,
        /// What is wrong.
        message: String,
    },
}

/// Hours (local time) during which no popups are shown; may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// First quiet minute.
    pub start: NaiveTime,
    /// First minute after the quiet hours.
    pub end: NaiveTime,
}

impl QuietHours {
    /// True when `t` falls inside the quiet hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// Desktop-only preferences kept in the config file's `[desktop]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DesktopPrefs {
    /// Start at login.
    pub autostart: bool,
    /// Close hides to tray.
    pub close_to_tray: bool,
}

impl Default for DesktopPrefs {
    fn default() -> DesktopPrefs {
        DesktopPrefs {
            autostart: false,
            close_to_tray: true,
        }
    }
}

/// The config file's shape; unknown keys are errors so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    watch_extensions: Option<Vec<String>>,
    default_country: Option<String>,
    max_body_bytes: Option<usize>,
    popups: Option<FilePopups>,
    line_labels: Option<Vec<LineLabel>>,
    ringcentral: Option<FileRingCentral>,
    public_url: Option<String>,
    tunnel: Option<FileTunnel>,
    desktop: Option<DesktopPrefs>,
    hub: Option<hub::FileHub>,
    desk: Option<hub::FileDesk>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTunnel {
    mode: Option<String>,
    ngrok_domain: Option<String>,
}

/// Which public URL source the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelChoice {
    /// ngrok when an authtoken is set, else the provided URL, else off.
    Auto,
    /// No public URL.
    Off,
    /// An ngrok tunnel.
    Ngrok,
    /// The provided `public_url`.
    Provided,
    /// A loopback tunnel that changes its URL (test builds only: `test-hooks`).
    #[cfg(any(test, feature = "test-hooks"))]
    Loopback,
}

impl TunnelChoice {
    fn parse(setting: &str, value: &str) -> Result<TunnelChoice, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(TunnelChoice::Auto),
            "off" | "none" => Ok(TunnelChoice::Off),
            "ngrok" => Ok(TunnelChoice::Ngrok),
            "provided" | "url" => Ok(TunnelChoice::Provided),
            #[cfg(any(test, feature = "test-hooks"))]
            "loopback" => Ok(TunnelChoice::Loopback),
            _ => Err(ConfigError::Value {
                setting: setting.into(),
                message: format!("{value:?} is not auto, off, ngrok or provided"),
            }),
        }
    }
}

/// Tunnel settings.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// The chosen source.
    pub choice: TunnelChoice,
    /// ngrok authtoken (environment or secret store).
    pub ngrok_authtoken: Option<Secret>,
    /// Reserved or dev domain.
    pub ngrok_domain: Option<String>,
    /// ngrok server address override (tests: an unreachable one).
    pub ngrok_server: Option<String>,
    /// Loopback tunnel URL change period (test builds only).
    #[cfg(any(test, feature = "test-hooks"))]
    pub loopback_rotate: Option<chrono::Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRingCentral {
    server: Option<String>,
    client_id: Option<String>,
    event_filters: Option<Vec<String>>,
    subscription_expires_in: Option<i64>,
    check_interval_seconds: Option<i64>,
    transport: Option<String>,
}

/// How RingCentral sends its events to CallPop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The WebSocket when the app may use it (no public URL needed), else the webhook
    /// subscription to the public URL.
    #[default]
    Auto,
    /// A webhook subscription to the public URL (a tunnel or the dealership's own address).
    Webhook,
    /// RingCentral's WebSocket, opened by CallPop: no public URL, no tunnel.
    Websocket,
}

impl Transport {
    /// The name the config file, the environment and the window use.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Auto => "auto",
            Transport::Webhook => "webhook",
            Transport::Websocket => "websocket",
        }
    }

    fn parse(setting: &str, value: &str) -> Result<Transport, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Transport::Auto),
            "webhook" | "webhooks" => Ok(Transport::Webhook),
            "websocket" | "websockets" | "ws" => Ok(Transport::Websocket),
            _ => Err(ConfigError::Value {
                setting: setting.into(),
                message: format!("{value:?} is not auto, webhook or websocket"),
            }),
        }
    }
}

/// The RingCentral platform connection (subscriptions, backfill).
#[derive(Debug, Clone)]
pub struct RingCentralConfig {
    /// API server (production by default).
    pub server: String,
    /// App client id.
    pub client_id: Option<String>,
    /// App client secret (environment or secret store).
    pub client_secret: Option<Secret>,
    /// User JWT credential (environment or secret store).
    pub jwt: Option<Secret>,
    /// Event filters to subscribe to.
    pub event_filters: Vec<String>,
    /// Subscription lifetime to ask for, seconds.
    pub subscription_expires_in: i64,
    /// How often the subscription is checked.
    pub check_interval: chrono::Duration,
    /// How events come: `auto`, `webhook` or `websocket`.
    pub transport: Transport,
}

impl RingCentralConfig {
    /// True when client id, secret and JWT are all known.
    pub fn has_credentials(&self) -> bool {
        self.client_id.is_some() && self.client_secret.is_some() && self.jwt.is_some()
    }
}

/// Why a public URL is not usable; the text completes "the public URL …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicUrlError {
    /// Not https (plain http only to this machine, for a test server).
    #[error("must start with https:// (RingCentral requires TLS; http:// only for a test server on this machine)")]
    NotHttps,
    /// A path-less base URL is needed: no query, fragment or spaces, and a host.
    #[error("must be a plain base URL such as https://desk.example.com")]
    NotPlain,
}

/// Checks a public base URL: https (plain http only to this machine), no query or fragment,
/// no user name. Returns it without a trailing slash.
pub fn validate_public_url(url: &str) -> Result<String, PublicUrlError> {
    let u = url.trim().trim_end_matches('/');
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(PublicUrlError::NotHttps);
    }
    if u.contains(['?', '#', ' ']) {
        return Err(PublicUrlError::NotPlain);
    }
    let target = callpop_core::links::http_target(u).ok_or(PublicUrlError::NotPlain)?;
    if !target.fit_for_secrets() {
        return Err(PublicUrlError::NotHttps);
    }
    Ok(u.to_string())
}

/// Checks the RingCentral server URL: it receives the client secret and the JWT, so https
/// only (plain http to this machine, for a test server such as tools/fake-ringcentral).
pub fn validate_ringcentral_server(url: &str) -> Result<String, PublicUrlError> {
    validate_public_url(url)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePopups {
    notifications: Option<String>,
    stale_after_seconds: Option<u64>,
    answered_close_seconds: Option<u64>,
    max_on_screen: Option<usize>,
    quiet_hours: Option<FileQuietHours>,
    crm_url_template: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuietHours {
    start: String,
    end: String,
}

/// Whether CallPop shows desktop notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationsMode {
    /// On when the session has a notification server.
    Auto,
    /// Always; an error is reported when no server answers.
    On,
    /// Never.
    Off,
}

impl NotificationsMode {
    fn parse(setting: &str, value: &str) -> Result<NotificationsMode, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(NotificationsMode::Auto),
            "on" | "true" | "yes" | "1" => Ok(NotificationsMode::On),
            "off" | "false" | "no" | "0" => Ok(NotificationsMode::Off),
            _ => Err(ConfigError::Value {
                setting: setting.into(),
                message: format!("{value:?} is not auto, on or off"),
            }),
        }
    }
}

/// Popup policy from the config file (the engine turns it into live popup settings).
#[derive(Debug, Clone)]
pub struct PopupConfig {
    /// auto / on / off.
    pub notifications: NotificationsMode,
    /// RingCentral events older than this on arrival never pop up.
    pub stale_after: Duration,
    /// How long an "answered" popup stays.
    pub answered_close_after: Duration,
    /// Most popups on screen at once.
    pub max_on_screen: usize,
    /// No popups during these local hours.
    pub quiet_hours: Option<QuietHours>,
    /// "Open in CRM" link template.
    pub crm_url_template: Option<String>,
}

/// RingCentral events older than this when they arrive are stored but never announced.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);
/// How long an "answered" popup stays before it is closed.
pub const DEFAULT_ANSWERED_CLOSE_AFTER: Duration = Duration::from_secs(8);
/// Most popups on screen at once; more calls share one summary popup.
pub const DEFAULT_MAX_ON_SCREEN: usize = 3;

impl Default for PopupConfig {
    fn default() -> PopupConfig {
        PopupConfig {
            notifications: NotificationsMode::Auto,
            stale_after: DEFAULT_STALE_AFTER,
            answered_close_after: DEFAULT_ANSWERED_CLOSE_AFTER,
            max_on_screen: DEFAULT_MAX_ON_SCREEN,
            quiet_hours: None,
            crm_url_template: None,
        }
    }
}

fn parse_hhmm(setting: &str, value: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M").map_err(|_| ConfigError::Value {
        setting: setting.into(),
        message: format!("{value:?} is not a time like 19:30"),
    })
}

pub use callpop_core::crm::{CrmTemplateError, CrmTransport};

/// Checks a CRM link template (`callpop_core::crm`, the one definition the popup and the
/// window share): an http(s) link using only the known placeholders, https unless it points
/// into the dealership's network.
pub fn validate_crm_template(template: &str) -> Result<CrmTransport, CrmTemplateError> {
    callpop_core::crm::check_template(template)
}

/// Everything the engine needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the local receiver listens.
    pub listen: SocketAddr,
    /// Where the history and secrets live.
    pub data_dir: PathBuf,
    /// Extension ids or numbers whose calls are "mine"; empty = the whole account.
    pub watch_extensions: Vec<String>,
    /// Country for reading national numbers.
    pub default_country: Country,
    /// Largest accepted webhook body.
    pub max_body_bytes: usize,
    /// RingCentral verification token from the environment (else the secret store).
    pub ringcentral_verification_token: Option<Secret>,
    /// Ringotel API token from the environment (else the secret store).
    pub ringotel_api_token: Option<Secret>,
    /// Popup policy.
    pub popups: PopupConfig,
    /// Names of the dealership's lines.
    pub line_labels: Vec<LineLabel>,
    /// RingCentral platform connection.
    pub ringcentral: RingCentralConfig,
    /// Public base URL when no tunnel is used (`CALLPOP_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// The public tunnel.
    pub tunnel: TunnelConfig,
    /// The clock (simulated only in tests).
    pub clock: callpop_clock::Clock,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Preferences only the desktop app uses (autostart, close to tray).
    pub desktop: DesktopPrefs,
    /// Where typed-in credentials are kept (`CALLPOP_SECRET_STORE`).
    pub secret_store: SecretStoreChoice,
    /// The hub role: serving desks on the LAN.
    pub hub: HubConfig,
    /// What a desk keeps of its hub's history (used only when the data dir is a desk's).
    pub desk: DeskConfig,
}

/// Where the credentials typed into Settings (client secret, JWT, ngrok authtoken) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretStoreChoice {
    /// The OS keyring when one answers, else the private file.
    Auto,
    /// The OS keyring only (an error when there is none).
    Keyring,
    /// The private file in the data directory (`secrets.json`, 0600).
    File,
}

impl SecretStoreChoice {
    fn parse(setting: &str, value: &str) -> Result<SecretStoreChoice, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(SecretStoreChoice::Auto),
            "keyring" => Ok(SecretStoreChoice::Keyring),
            "file" => Ok(SecretStoreChoice::File),
            _ => Err(ConfigError::Value {
                setting: setting.into(),
                message: format!("{value:?} is not auto, keyring or file"),
            }),
        }
    }
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--hub`: serve desks.
    pub hub: bool,
    /// `--hub-listen`.
    pub hub_listen: Option<String>,
    /// Where `CALLPOP_*` settings are read from; None: the process environment. Tests give
    /// their own, so a developer's variables cannot change what they check.
    pub environment: Option<Environment>,
}

/// Reads one environment variable.
type ReadVar = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A source of environment variables.
#[derive(Clone)]
pub struct Environment(std::sync::Arc<ReadVar>);

impl Environment {
    /// Exactly these variables, nothing from the process.
    pub fn only(vars: &[(&str, &str)]) -> Environment {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment(std::sync::Arc::new(move |k| vars.get(k).cloned()))
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Environment(..)")
    }
}

/// The platform's data directory for CallPop (`~/.local/share/callpop` on Linux).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("callpop"))
        .unwrap_or_else(|| PathBuf::from("callpop-data"))
}

/// The config file read when none is named (`~/.config/callpop/config.toml` on Linux).
pub fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("callpop").join("config.toml"))
}

fn parse_listen(setting: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Value {
        setting: setting.into(),
        message: format!("{value:?} is not an address like 127.0.0.1:8787"),
    })
}

fn parse_country(setting: &str, value: &str) -> Result<Country, ConfigError> {
    Country::from_iso(value).ok_or_else(|| ConfigError::Value {
        setting: setting.into(),
        message: format!(
            "{value:?} is not a supported country; use one of {}",
            Country::supported().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Watched extensions from `values` (list items, or the one environment string): split on
/// commas, semicolons and spaces as well, each 1 to 20 digits (an extension number such as
/// 101, or RingCentral's extension id). Anything else is an error naming it: a value that
/// matches no extension would silently turn every popup off.
fn parse_extensions<'a>(
    setting: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for item in values
        .into_iter()
        .flat_map(|v| v.split([',', ';', ' ', '\t']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if item.len() > 20 || !item.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Value {
                setting: setting.into(),
                message: format!(
                    "{item:?} is not an extension: use digits only, such as 101 or an extension id"
                ),
            });
        }
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

impl Config {
    /// Loads settings from the real environment.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        match &overrides.environment {
            Some(Environment(env)) => Config::load_with(overrides, &|k| env(k)),
            None => Config::load_with(overrides, &|k| std::env::var(k).ok()),
        }
    }

    /// Loads settings with an explicit environment (for tests). Each section is read from the
    /// file first, then the environment overrides it, then the command line; a bad value is
    /// reported with the setting that holds it.
    pub fn load_with(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (file, config_file) = read_named_file(overrides, env)?;
        let mut general = General::from_file(&file)?;
        let mut popups = popups_from_file(file.popups)?;
        let line_labels = line_labels_from_file(file.line_labels)?;
        let ringcentral = ringcentral_config(file.ringcentral, env)?;
        let public_url = public_url(file.public_url, env)?;
        let tunnel = tunnel_config(file.tunnel, env)?;
        let clock = clock(env)?;
        let mut hub = hub::hub_config(file.hub, env)?;
        let desk = hub::desk_config(file.desk, env)?;
        if overrides.hub {
            hub.enabled = true;
        }
        if let Some(v) = &overrides.hub_listen {
            hub.listen = parse_listen("--hub-listen", v)?;
            hub.enabled = true;
        }
        if let Some(v) = env("CALLPOP_NOTIFICATIONS") {
            popups.notifications = NotificationsMode::parse("CALLPOP_NOTIFICATIONS", &v)?;
        }
        general.apply_env(env)?;
        let ringcentral_verification_token =
            env("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN").map(Secret::new);
        let ringotel_api_token = env("CALLPOP_RINGOTEL_API_TOKEN").map(Secret::new);
        let secret_store = match env("CALLPOP_SECRET_STORE") {
            Some(v) => SecretStoreChoice::parse("CALLPOP_SECRET_STORE", &v)?,
            None => SecretStoreChoice::Auto,
        };
        general.apply_overrides(overrides)?;

        Ok(Config {
            listen: general.listen,
            data_dir: general.data_dir,
            watch_extensions: general.watch_extensions,
            default_country: general.default_country,
            max_body_bytes: general.max_body_bytes,
            ringcentral_verification_token,
            ringotel_api_token,
            popups,
            line_labels,
            ringcentral,
            public_url,
            tunnel,
            clock,
            config_file,
            desktop: file.desktop.unwrap_or_default(),
            secret_store,
            hub,
            desk,
        })
    }

    /// The history database inside the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(callpop_store::DB_FILE)
    }
}

/// The config file named on the command line or in `CALLPOP_CONFIG`, else the default one
/// when it exists, else none (built-in defaults).
fn read_named_file(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let named = overrides
        .config_file
        .clone()
        .or_else(|| env("CALLPOP_CONFIG").map(PathBuf::from));
    Ok(match named {
        Some(path) => (read_file(&path)?, Some(path)),
        None => match default_config_file().filter(|p| p.exists()) {
            Some(path) => (read_file(&path)?, Some(path)),
            None => (FileConfig::default(), None),
        },
    })
}

/// The top-level settings, which the environment and the command line can override.
struct General {
    listen: SocketAddr,
    data_dir: PathBuf,
    watch_extensions: Vec<String>,
    default_country: Country,
    max_body_bytes: usize,
}

impl General {
    fn from_file(file: &FileConfig) -> Result<General, ConfigError> {
        let listen = parse_listen("listen", file.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let data_dir = file.data_dir.clone().unwrap_or_else(default_data_dir);
        let watch_extensions = parse_extensions(
            "watch_extensions",
            file.watch_extensions.iter().flatten().map(String::as_str),
        )?;
        let default_country = parse_country(
            "default_country",
            file.default_country.as_deref().unwrap_or("US"),
        )?;
        let max_body_bytes = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(ConfigError::Value {
                setting: "max_body_bytes".into(),
                message: "must be at least 1024".into(),
            });
        }
        Ok(General {
            listen,
            data_dir,
            watch_extensions,
            default_country,
            max_body_bytes,
        })
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("CALLPOP_LISTEN") {
            self.listen = parse_listen("CALLPOP_LISTEN", &v)?;
        }
        if let Some(v) = env("CALLPOP_DATA_DIR").filter(|v| !v.trim().is_empty()) {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("CALLPOP_WATCH_EXTENSIONS") {
            self.watch_extensions = parse_extensions("CALLPOP_WATCH_EXTENSIONS", [v.as_str()])?;
        }
        if let Some(v) = env("CALLPOP_DEFAULT_COUNTRY") {
            self.default_country = parse_country("CALLPOP_DEFAULT_COUNTRY", &v)?;
        }
        Ok(())
    }

    fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        if let Some(v) = &overrides.listen {
            self.listen = parse_listen("--listen", v)?;
        }
        if let Some(v) = &overrides.data_dir {
            self.data_dir = v.clone();
        }
        Ok(())
    }
}

/// `[popups]` from the file (`CALLPOP_NOTIFICATIONS` is applied by the caller).
fn popups_from_file(file: Option<FilePopups>) -> Result<PopupConfig, ConfigError> {
    let mut popups = PopupConfig::default();
    let Some(p) = file else {
        return Ok(popups);
    };
    if let Some(v) = p.notifications {
        popups.notifications = NotificationsMode::parse("popups.notifications", &v)?;
    }
    if let Some(v) = p.stale_after_seconds {
        popups.stale_after = Duration::from_secs(v);
    }
    if let Some(v) = p.answered_close_seconds {
        popups.answered_close_after = Duration::from_secs(v);
    }
    if let Some(v) = p.max_on_screen {
        if !(1..=20).contains(&v) {
            return Err(ConfigError::Value {
                setting: "popups.max_on_screen".into(),
                message: "must be between 1 and 20".into(),
            });
        }
        popups.max_on_screen = v;
    }
    if let Some(q) = p.quiet_hours {
        popups.quiet_hours = Some(QuietHours {
            start: parse_hhmm("popups.quiet_hours.start", &q.start)?,
            end: parse_hhmm("popups.quiet_hours.end", &q.end)?,
        });
    }
    if let Some(t) = p.crm_url_template.filter(|t| !t.trim().is_empty()) {
        let transport = validate_crm_template(&t).map_err(|e| ConfigError::Value {
            setting: "popups.crm_url_template".into(),
            message: e.to_string(),
        })?;
        if transport == CrmTransport::LanHttp {
            tracing::warn!(
                "popups.crm_url_template uses plain http: the caller's number and name cross the \
                 dealership's network unencrypted"
            );
        }
        popups.crm_url_template = Some(t.trim().to_string());
    }
    Ok(popups)
}

/// `[[line_labels]]`: each needs a number and a label.
fn line_labels_from_file(file: Option<Vec<LineLabel>>) -> Result<Vec<LineLabel>, ConfigError> {
    let line_labels = file.unwrap_or_default();
    for (i, l) in line_labels.iter().enumerate() {
        if !l.number.chars().any(|c| c.is_ascii_digit()) || l.label.trim().is_empty() {
            return Err(ConfigError::Value {
                setting: format!("line_labels[{i}]"),
                message: "needs a number and a label".into(),
            });
        }
    }
    Ok(line_labels)
}

/// `[ringcentral]` from the file, then `CALLPOP_RINGCENTRAL_*`.
fn ringcentral_config(
    file: Option<FileRingCentral>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RingCentralConfig, ConfigError> {
    let file_rc = file.unwrap_or_default();
    let mut ringcentral = RingCentralConfig {
        server: file_rc
            .server
            .unwrap_or_else(|| callpop_ringcentral::api::PRODUCTION_SERVER.to_string()),
        client_id: file_rc.client_id,
        client_secret: None,
        jwt: None,
        event_filters: file_rc
            .event_filters
            .unwrap_or_else(callpop_ringcentral::filters::default_event_filters),
        subscription_expires_in: file_rc.subscription_expires_in.unwrap_or(315_360_000),
        check_interval: chrono::Duration::seconds(file_rc.check_interval_seconds.unwrap_or(900)),
        transport: match &file_rc.transport {
            Some(t) => Transport::parse("ringcentral.transport", t)?,
            None => Transport::Auto,
        },
    };
    if let Some(v) = env("CALLPOP_RINGCENTRAL_TRANSPORT") {
        ringcentral.transport = Transport::parse("CALLPOP_RINGCENTRAL_TRANSPORT", &v)?;
    }
    if ringcentral.subscription_expires_in < 60 {
        return Err(ConfigError::Value {
            setting: "ringcentral.subscription_expires_in".into(),
            message: "must be at least 60 seconds".into(),
        });
    }
    if let Some(v) = env("CALLPOP_RINGCENTRAL_SERVER").filter(|v| !v.trim().is_empty()) {
        ringcentral.server = v.trim().trim_end_matches('/').to_string();
    }
    if let Some(v) = env("CALLPOP_RINGCENTRAL_CLIENT_ID").filter(|v| !v.trim().is_empty()) {
        ringcentral.client_id = Some(v.trim().to_string());
    }
    ringcentral.client_secret = env("CALLPOP_RINGCENTRAL_CLIENT_SECRET")
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.trim()));
    ringcentral.jwt = env("CALLPOP_RINGCENTRAL_JWT")
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.trim()));
    ringcentral.server =
        validate_ringcentral_server(&ringcentral.server).map_err(|e| ConfigError::Value {
            setting: "ringcentral.server".into(),
            message: format!("{:?} {e}", ringcentral.server),
        })?;
    Ok(ringcentral)
}

/// `public_url` from the file, then `CALLPOP_PUBLIC_URL`; empty means none.
fn public_url(
    file: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let url = env("CALLPOP_PUBLIC_URL").or(file);
    match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => Ok(Some(validate_public_url(&u).map_err(|e| {
            ConfigError::Value {
                setting: "public_url".into(),
                message: e.to_string(),
            }
        })?)),
        None => Ok(None),
    }
}

/// `[tunnel]` from the file, then `CALLPOP_TUNNEL`, `CALLPOP_NGROK_*` and `NGROK_AUTHTOKEN`.
fn tunnel_config(
    file: Option<FileTunnel>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TunnelConfig, ConfigError> {
    let file_tunnel = file.unwrap_or_default();
    let mut tunnel = TunnelConfig {
        choice: match file_tunnel.mode {
            Some(m) => TunnelChoice::parse("tunnel.mode", &m)?,
            None => TunnelChoice::Auto,
        },
        ngrok_authtoken: None,
        ngrok_domain: file_tunnel.ngrok_domain.filter(|d| !d.trim().is_empty()),
        ngrok_server: None,
        #[cfg(any(test, feature = "test-hooks"))]
        loopback_rotate: None,
    };
    if let Some(v) = env("CALLPOP_TUNNEL") {
        tunnel.choice = TunnelChoice::parse("CALLPOP_TUNNEL", &v)?;
    }
    if let Some(v) = env("CALLPOP_NGROK_DOMAIN") {
        tunnel.ngrok_domain = Some(v.trim().to_string()).filter(|d| !d.is_empty());
    }
    tunnel.ngrok_authtoken = env("CALLPOP_NGROK_AUTHTOKEN")
        .or_else(|| env("NGROK_AUTHTOKEN"))
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.trim()));
    tunnel.ngrok_server = env("CALLPOP_NGROK_SERVER").filter(|v| !v.trim().is_empty());
    #[cfg(any(test, feature = "test-hooks"))]
    if let Some(v) = env("CALLPOP_LOOPBACK_TUNNEL_ROTATE_SECONDS") {
        let secs: i64 = v.trim().parse().map_err(|_| ConfigError::Value {
            setting: "CALLPOP_LOOPBACK_TUNNEL_ROTATE_SECONDS".into(),
            message: format!("{v:?} is not a number of seconds"),
        })?;
        tunnel.loopback_rotate = Some(chrono::Duration::seconds(secs.max(1)));
    }
    Ok(tunnel)
}

/// The real clock, or the simulated one `CALLPOP_SIMULATED_CLOCK` describes.
fn clock(env: &dyn Fn(&str) -> Option<String>) -> Result<callpop_clock::Clock, ConfigError> {
    match env(callpop_clock::SIMULATED_CLOCK_ENV).filter(|v| !v.trim().is_empty()) {
        Some(v) => callpop_clock::Clock::parse(&v).map_err(|e| ConfigError::Value {
            setting: callpop_clock::SIMULATED_CLOCK_ENV.into(),
            message: e.to_string(),
        }),
        None => Ok(callpop_clock::Clock::real()),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_may_wrap_midnight() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        let night = QuietHours {
            start: t(19, 0),
            end: t(7, 0),
        };
        assert!(night.contains(t(23, 0)));
        assert!(night.contains(t(6, 59)));
        assert!(!night.contains(t(7, 0)));
        assert!(!night.contains(t(12, 0)));
        let lunch = QuietHours {
            start: t(12, 0),
            end: t(13, 0),
        };
        assert!(lunch.contains(t(12, 30)));
        assert!(!lunch.contains(t(13, 30)));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let Environment(read) = Environment::only(pairs);
        move |k| read(k)
    }

    #[test]
    fn a_given_environment_replaces_the_processs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "").expect("write");
        let o = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            environment: Some(Environment::only(&[
                ("CALLPOP_CONFIG", file.to_str().expect("utf-8 path")),
                ("CALLPOP_LISTEN", "127.0.0.1:9321"),
            ])),
            ..Default::default()
        };
        let c = Config::load(&o).expect("config");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9321");
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nwatch_extensions = [\"101\"]\ndefault_country = \"AU\"\n",
        )
        .expect("write");
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let c = Config::load_with(&o, &env(&[])).expect("file");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.watch_extensions, vec!["101"]);
        assert_eq!(c.default_country.iso, "AU");

        let c = Config::load_with(
            &o,
            &env(&[
                ("CALLPOP_LISTEN", "127.0.0.1:9100"),
                ("CALLPOP_WATCH_EXTENSIONS", "101, 102,,"),
                ("CALLPOP_RINGOTEL_API_TOKEN", "tok"),
            ]),
        )
        .expect("env");
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.watch_extensions, vec!["101", "102"]);
        assert_eq!(
            c.ringotel_api_token.as_ref().map(Secret::expose),
            Some("tok")
        );
        assert_eq!(
            format!("{:?}", c.ringotel_api_token),
            "Some(Secret([redacted]))"
        );

        let o = Overrides {
            listen: Some("127.0.0.1:9200".into()),
            ..o
        };
        let c =
            Config::load_with(&o, &env(&[("CALLPOP_LISTEN", "127.0.0.1:9100")])).expect("flags");
        assert_eq!(c.listen.port(), 9200);
    }

    #[test]
    fn popup_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[popups]\nnotifications = \"off\"\nmax_on_screen = 5\n\
             quiet_hours = { start = \"19:00\", end = \"07:30\" }\n\
             crm_url_template = \"https://crm.example/find?p={e164}\"\n\
             [[line_labels]]\nnumber = \"+16505550100\"\nlabel = \"Sales\"\n",
        )
        .expect("write");
        let o = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load_with(&o, &env(&[])).expect("popups");
        assert_eq!(c.popups.notifications, NotificationsMode::Off);
        assert_eq!(c.popups.max_on_screen, 5);
        assert!(c.popups.quiet_hours.is_some());
        assert_eq!(c.line_labels[0].label, "Sales");
        let c = Config::load_with(&o, &env(&[("CALLPOP_NOTIFICATIONS", "on")])).expect("env");
        assert_eq!(c.popups.notifications, NotificationsMode::On);
        for bad in [
            "[popups]\nquiet_hours = { start = \"7pm\", end = \"07:00\" }\n",
            "[popups]\ncrm_url_template = \"https://crm/{phone}\"\n",
            "[popups]\ncrm_url_template = \"javascript:alert(1)\"\n",
            "[popups]\ncrm_url_template = \"http://crm.example.com/{e164}\"\n",
            "[popups]\nmax_on_screen = 0\n",
            "[popups]\nnotifications = \"sometimes\"\n",
        ] {
            std::fs::write(&file, bad).expect("write");
            assert!(Config::load_with(&o, &env(&[])).is_err(), "{bad}");
        }
    }

    #[test]
    fn watched_extensions_take_the_obvious_separators_and_refuse_what_matches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        let o = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        std::fs::write(&file, "watch_extensions = [\"201,202\", \"203 201\"]\n").expect("write");
        let c = Config::load_with(&o, &env(&[])).expect("separators in the file");
        assert_eq!(c.watch_extensions, vec!["201", "202", "203"]);
        let c = Config::load_with(&o, &env(&[("CALLPOP_WATCH_EXTENSIONS", "201;202")]))
            .expect("semicolons in the environment");
        assert_eq!(c.watch_extensions, vec!["201", "202"]);
        for bad in ["[\"ext 201\"]", "[\"*\"]", "[\"201a\"]"] {
            std::fs::write(&file, format!("watch_extensions = {bad}\n")).expect("write");
            let e = Config::load_with(&o, &env(&[])).expect_err(bad).to_string();
            assert!(
                e.contains("watch_extensions") && e.contains("digits only"),
                "{bad}: {e}"
            );
        }
        std::fs::write(&file, "").expect("write");
        let e = Config::load_with(&o, &env(&[("CALLPOP_WATCH_EXTENSIONS", "all")]))
            .expect_err("all")
            .to_string();
        assert!(e.contains("CALLPOP_WATCH_EXTENSIONS"), "{e}");
    }

    #[test]
    fn mistakes_are_reported_with_the_setting_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").expect("write");
        let o = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let err = Config::load_with(&o, &env(&[])).expect_err("typo");
        assert!(err.to_string().contains("lisen"), "{err}");

        std::fs::write(&file, "verification_token = \"secret\"\n").expect("write");
        let err = Config::load_with(&o, &env(&[])).expect_err("secrets do not belong in the file");
        assert!(err.to_string().contains("verification_token"), "{err}");

        let err = Config::load_with(
            &Overrides::default(),
            &env(&[("CALLPOP_LISTEN", "localhost")]),
        )
        .expect_err("bad address");
        assert!(err.to_string().contains("CALLPOP_LISTEN"), "{err}");

        let err = Config::load_with(
            &Overrides::default(),
            &env(&[("CALLPOP_DEFAULT_COUNTRY", "XX")]),
        )
        .expect_err("bad country");
        assert!(err.to_string().contains("AU"), "{err}");

        let missing = Overrides {
            config_file: Some(dir.path().join("nope.toml")),
            ..Default::default()
        };
        assert!(matches!(
            Config::load_with(&missing, &env(&[])),
            Err(ConfigError::Read { .. })
        ));
    }
}
