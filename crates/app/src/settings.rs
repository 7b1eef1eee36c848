//! Settings as the desktop window edits them: what it shows (secrets only as "set"), what it
//! sends back, validation with a message per field, and saving (the config file for everything
//! but secrets, the secret store for secrets). The engine re-reads them by restarting.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use callpop_core::lines::LineLabel;
use callpop_core::numbers::{Country, PhoneNumber};
use callpop_engine::config::{
    validate_crm_template, validate_public_url, Config, NotificationsMode, TunnelChoice,
};
use callpop_engine::secrets::names;

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
}

/// Ringotel section as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RingotelView {
    /// An api token is stored.
    pub api_token_set: bool,
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

fn hhmm(t: chrono::NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn secret_set(config: &Config, env: Option<&callpop_core::Secret>, name: &str) -> bool {
    env.is_some()
        || callpop_engine::secrets::stored(config, name)
            .ok()
            .flatten()
            .is_some()
}

impl SettingsView {
    /// The update that changes nothing: what the window sends back untouched.
    pub fn unchanged(&self) -> SettingsUpdate {
        let view = self;
        SettingsUpdate {
            ringcentral: RingCentralUpdate {
                server: view.ringcentral.server.clone(),
                client_id: view.ringcentral.client_id.clone(),
                client_secret: None,
                jwt: None,
            },
            ringotel: RingotelUpdate { api_token: None },
            tunnel: TunnelUpdate {
                mode: view.tunnel.mode,
                ngrok_authtoken: None,
                ngrok_domain: view.tunnel.ngrok_domain.clone(),
                public_url: view.tunnel.public_url.clone(),
            },
            watch_extensions: view.watch_extensions.clone(),
            line_labels: view.line_labels.clone(),
            popups: view.popups.clone(),
            general: GeneralUpdate {
                autostart: view.general.autostart,
                close_to_tray: view.general.close_to_tray,
                default_country: view.general.default_country.clone(),
            },
        }
    }
    /// The settings in force.
    pub fn from_config(config: &Config) -> SettingsView {
        let prefs = config.desktop;
        let p = &config.popups;
        SettingsView {
            ringcentral: RingCentralView {
                server: config.ringcentral.server.clone(),
                client_id: config.ringcentral.client_id.clone().unwrap_or_default(),
                client_secret_set: secret_set(
                    config,
                    config.ringcentral.client_secret.as_ref(),
                    names::RINGCENTRAL_CLIENT_SECRET,
                ),
                jwt_set: secret_set(
                    config,
                    config.ringcentral.jwt.as_ref(),
                    names::RINGCENTRAL_JWT,
                ),
            },
            ringotel: RingotelView {
                api_token_set: secret_set(
                    config,
                    config.ringotel_api_token.as_ref(),
                    names::RINGOTEL_API_TOKEN,
                ),
            },
            tunnel: TunnelView {
                mode: match config.tunnel.choice {
                    TunnelChoice::Ngrok => TunnelModeView::Ngrok,
                    TunnelChoice::Provided => TunnelModeView::Provided,
                    TunnelChoice::Off | TunnelChoice::Loopback => TunnelModeView::Off,
                    TunnelChoice::Auto => {
                        if secret_set(
                            config,
                            config.tunnel.ngrok_authtoken.as_ref(),
                            names::NGROK_AUTHTOKEN,
                        ) {
                            TunnelModeView::Ngrok
                        } else if config.public_url.is_some() {
                            TunnelModeView::Provided
                        } else {
                            TunnelModeView::Off
                        }
                    }
                },
                ngrok_authtoken_set: secret_set(
                    config,
                    config.tunnel.ngrok_authtoken.as_ref(),
                    names::NGROK_AUTHTOKEN,
                ),
                ngrok_domain: config.tunnel.ngrok_domain.clone().unwrap_or_default(),
                public_url: config.public_url.clone().unwrap_or_default(),
            },
            watch_extensions: config.watch_extensions.clone(),
            line_labels: config.line_labels.clone(),
            popups: PopupsView {
                notifications: match p.notifications {
                    NotificationsMode::Auto => NotificationsView::Auto,
                    NotificationsMode::On => NotificationsView::On,
                    NotificationsMode::Off => NotificationsView::Off,
                },
                quiet_hours: p.quiet_hours.map(|q| QuietHoursView {
                    start: hhmm(q.start),
                    end: hhmm(q.end),
                }),
                max_on_screen: p.max_on_screen as u32,
                crm_url_template: p.crm_url_template.clone().unwrap_or_default(),
                answered_close_seconds: p.answered_close_after.as_secs() as u32,
            },
            general: GeneralView {
                autostart: prefs.autostart,
                close_to_tray: prefs.close_to_tray,
                data_dir: config.data_dir.display().to_string(),
                default_country: config.default_country.iso.to_string(),
            },
        }
    }
}

fn valid_server(server: &str) -> bool {
    let s = server.trim().trim_end_matches('/');
    if s.starts_with("https://") && s.len() > "https://".len() {
        return true;
    }
    // Plain http only to this machine (a local test platform).
    ["http://127.0.0.1:", "http://localhost:"].iter().any(|p| {
        s.strip_prefix(p)
            .is_some_and(|port| port.parse::<u16>().is_ok())
    })
}

fn valid_domain(d: &str) -> bool {
    let d = d.trim();
    !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl SettingsUpdate {
    /// Checks every field; returns one message per bad field.
    pub fn validate(&self, current: &SettingsView) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !valid_server(&self.ringcentral.server) {
            errors.push(FieldError::new(
                "ringcentral.server",
                "use https://platform.ringcentral.com (or http://127.0.0.1:PORT for a local test platform)",
            ));
        }
        let id = self.ringcentral.client_id.trim();
        if !id.is_empty() && (id.len() > 128 || id.chars().any(char::is_whitespace)) {
            errors.push(FieldError::new(
                "ringcentral.client_id",
                "a client id has no spaces",
            ));
        }
        let secret_given = |new: &Option<String>, set: bool| match new {
            Some(v) => !v.trim().is_empty(),
            None => set,
        };
        let has_secret = secret_given(
            &self.ringcentral.client_secret,
            current.ringcentral.client_secret_set,
        );
        let has_jwt = secret_given(&self.ringcentral.jwt, current.ringcentral.jwt_set);
        if (has_secret || has_jwt) && id.is_empty() {
            errors.push(FieldError::new(
                "ringcentral.client_id",
                "the client id is needed with a secret or JWT",
            ));
        }
        if let Some(jwt) = self
            .ringcentral
            .jwt
            .as_deref()
            .filter(|j| !j.trim().is_empty())
        {
            if jwt.trim().split('.').count() != 3 {
                errors.push(FieldError::new(
                    "ringcentral.jwt",
                    "a JWT has three parts separated by dots",
                ));
            }
        }
        match self.tunnel.mode {
            TunnelModeView::Ngrok => {
                if !secret_given(
                    &self.tunnel.ngrok_authtoken,
                    current.tunnel.ngrok_authtoken_set,
                ) {
                    errors.push(FieldError::new(
                        "tunnel.ngrok_authtoken",
                        "paste the ngrok authtoken from the ngrok dashboard",
                    ));
                }
                if !self.tunnel.ngrok_domain.trim().is_empty()
                    && !valid_domain(&self.tunnel.ngrok_domain)
                {
                    errors.push(FieldError::new(
                        "tunnel.ngrok_domain",
                        "a domain such as desk-42.ngrok.app (leave empty for a random one)",
                    ));
                }
            }
            TunnelModeView::Provided => {
                if let Err(m) = validate_public_url(&self.tunnel.public_url) {
                    errors.push(FieldError::new("tunnel.public_url", m));
                }
            }
            TunnelModeView::Off => {}
        }
        for (i, ext) in self.watch_extensions.iter().enumerate() {
            let e = ext.trim();
            if e.is_empty() || e.len() > 20 || !e.chars().all(|c| c.is_ascii_digit()) {
                errors.push(FieldError::new(
                    format!("watch_extensions.{i}"),
                    "an extension number or id is digits only",
                ));
            }
        }
        let country = Country::from_iso(&self.general.default_country);
        if country.is_none() {
            errors.push(FieldError::new(
                "general.default_country",
                format!(
                    "choose one of {}",
                    Country::supported().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        // With the country itself wrong, numbers are read as the current country reads them,
        // so that only the country is reported.
        let numbers_country =
            country.or_else(|| Country::from_iso(&current.general.default_country));
        let mut seen = Vec::new();
        for (i, l) in self.line_labels.iter().enumerate() {
            let n = numbers_country.map(|c| PhoneNumber::parse(&l.number, &c));
            let key = n
                .as_ref()
                .and_then(|n| n.e164.clone().or(n.extension.clone()));
            match key {
                None => errors.push(FieldError::new(
                    format!("line_labels.{i}.number"),
                    "a phone number such as +1 650 555 0100",
                )),
                Some(k) if seen.contains(&k) => errors.push(FieldError::new(
                    format!("line_labels.{i}.number"),
                    "this number already has a label",
                )),
                Some(k) => seen.push(k),
            }
            let label = l.label.trim();
            if label.is_empty() || label.chars().count() > 40 {
                errors.push(FieldError::new(
                    format!("line_labels.{i}.label"),
                    "a short name such as Sales (up to 40 characters)",
                ));
            }
        }
        let p = &self.popups;
        if let Some(q) = &p.quiet_hours {
            let mut times = Vec::new();
            for (part, v) in [("start", &q.start), ("end", &q.end)] {
                match chrono::NaiveTime::parse_from_str(v.trim(), "%H:%M") {
                    Ok(t) => times.push(t),
                    Err(_) => errors.push(FieldError::new(
                        format!("popups.quiet_hours.{part}"),
                        "a time like 19:30",
                    )),
                }
            }
            // "7:00" and "07:00" are the same time: quiet hours that would never apply.
            if times.len() == 2 && times[0] == times[1] {
                errors.push(FieldError::new(
                    "popups.quiet_hours.end",
                    "the end must differ from the start",
                ));
            }
        }
        if !(1..=20).contains(&p.max_on_screen) {
            errors.push(FieldError::new("popups.max_on_screen", "between 1 and 20"));
        }
        if p.answered_close_seconds > 600 {
            errors.push(FieldError::new(
                "popups.answered_close_seconds",
                "at most 600 seconds",
            ));
        }
        if !p.crm_url_template.trim().is_empty() {
            if let Err(m) = validate_crm_template(&p.crm_url_template) {
                errors.push(FieldError::new("popups.crm_url_template", m));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Writes the non-secret settings to `config_file` and the secrets to the secret store.
    /// Only the values the window owns change: everything else in the file (settings the
    /// window does not show, comments, order, layout) stays as written.
    /// Call [`SettingsUpdate::validate`] first.
    pub fn save(&self, config: &Config, config_file: &Path) -> Result<(), SettingsError> {
        let unwritable = |e: String| SettingsError::Write(config_file.to_path_buf(), e);
        // A file that does not parse is refused rather than replaced: it may be a
        // half-finished hand edit whose settings would otherwise be lost.
        let (mut doc, blank) = match std::fs::read_to_string(config_file) {
            Ok(text) => (
                text.parse::<toml_edit::Document>()
                    .map_err(|e| unwritable(e.to_string()))?,
                text.trim().is_empty(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (toml_edit::Document::new(), true)
            }
            Err(e) => return Err(unwritable(e.to_string())),
        };
        let text = |v: &str| Some(value(v.trim())).filter(|_| !v.trim().is_empty());
        let p = &self.popups;
        let root = doc.as_table_mut();
        // `listen` and `data_dir` are not the window's to write: they may come from the command
        // line, and saving must not turn a one-off override into a permanent setting.
        set(
            root,
            "default_country",
            Some(value(
                self.general.default_country.trim().to_ascii_uppercase(),
            )),
        );
        let extensions: toml_edit::Array = self
            .watch_extensions
            .iter()
            .map(|e| e.trim().to_string())
            .collect();
        set(root, "watch_extensions", Some(value(extensions)));
        set(
            root,
            "public_url",
            validate_public_url(&self.tunnel.public_url).ok().map(value),
        );
        let server = self.ringcentral.server.trim().trim_end_matches('/');
        set_in(root, "ringcentral", "server", Some(value(server)));
        set_in(
            root,
            "ringcentral",
            "client_id",
            text(&self.ringcentral.client_id),
        );
        let mode = match self.tunnel.mode {
            TunnelModeView::Off => "off",
            TunnelModeView::Ngrok => "ngrok",
            TunnelModeView::Provided => "provided",
        };
        set_in(root, "tunnel", "mode", Some(value(mode)));
        set_in(
            root,
            "tunnel",
            "ngrok_domain",
            text(&self.tunnel.ngrok_domain),
        );
        let notifications = match p.notifications {
            NotificationsView::Auto => "auto",
            NotificationsView::On => "on",
            NotificationsView::Off => "off",
        };
        set_in(root, "popups", "notifications", Some(value(notifications)));
        set_in(
            root,
            "popups",
            "max_on_screen",
            Some(value(i64::from(p.max_on_screen))),
        );
        set_in(
            root,
            "popups",
            "answered_close_seconds",
            Some(value(i64::from(p.answered_close_seconds))),
        );
        let quiet = p.quiet_hours.as_ref().map(|q| {
            let mut t = toml_edit::Table::new();
            t.insert("start", value(q.start.trim()));
            t.insert("end", value(q.end.trim()));
            toml_edit::Item::Table(t)
        });
        set_in(root, "popups", "quiet_hours", quiet);
        set_in(
            root,
            "popups",
            "crm_url_template",
            text(&p.crm_url_template),
        );
        let mut labels = toml_edit::ArrayOfTables::new();
        for l in &self.line_labels {
            let mut t = toml_edit::Table::new();
            t.insert("number", value(l.number.trim()));
            t.insert("label", value(l.label.trim()));
            labels.push(t);
        }
        set(
            root,
            "line_labels",
            Some(toml_edit::Item::ArrayOfTables(labels)),
        );
        set_in(
            root,
            "desktop",
            "autostart",
            Some(value(self.general.autostart)),
        );
        set_in(
            root,
            "desktop",
            "close_to_tray",
            Some(value(self.general.close_to_tray)),
        );

        let body = doc.to_string();
        // Only a file CallPop starts gets the header; a hand-written one stays the admin's.
        let text = if !blank {
            body
        } else {
            format!(
                "# Written by CallPop's settings window; secrets are kept in the secret store, \
                 not here.\n{body}"
            )
        };
        write_atomically(config_file, &text)?;
        for (name, value) in [
            (
                names::RINGCENTRAL_CLIENT_SECRET,
                &self.ringcentral.client_secret,
            ),
            (names::RINGCENTRAL_JWT, &self.ringcentral.jwt),
            (names::RINGOTEL_API_TOKEN, &self.ringotel.api_token),
            (names::NGROK_AUTHTOKEN, &self.tunnel.ngrok_authtoken),
        ] {
            if let Some(v) = value {
                callpop_engine::secrets::store(
                    config,
                    name,
                    Some(v.trim()).filter(|v| !v.is_empty()),
                )
                .map_err(|e| SettingsError::Secrets(e.to_string()))?;
            }
        }
        Ok(())
    }
}

fn value(v: impl Into<toml_edit::Value>) -> toml_edit::Item {
    toml_edit::value(v)
}

/// Sets (or, with `None`, removes) a key. A key that already holds the same data is left
/// alone, comments inside it included; a changed one is replaced in place, keeping the
/// comment lines above it, a comment after its value, and how it is written (inline, dotted,
/// where its `[table]` sits).
fn set(table: &mut dyn toml_edit::TableLike, key: &str, item: Option<toml_edit::Item>) {
    use toml_edit::Item;
    let Some(mut item) = item else {
        remove_keeping_comments(table, key);
        return;
    };
    let Some(old) = table.get_mut(key) else {
        table.insert(key, item);
        return;
    };
    if old.is_value() {
        item.make_value();
    }
    if same_data(old, &item) {
        return;
    }
    match (&*old, &mut item) {
        (Item::Value(before), Item::Value(after)) => {
            *after.decor_mut() = before.decor().clone();
        }
        (Item::Table(before), Item::Table(after)) => {
            *after.decor_mut() = before.decor().clone();
            after.set_dotted(before.is_dotted());
            if let Some(position) = before.position() {
                after.set_position(position);
            }
        }
        (Item::ArrayOfTables(before), Item::ArrayOfTables(after)) => {
            let old_tables: Vec<_> = before.iter().collect();
            for (i, table) in after.iter_mut().enumerate() {
                let Some(model) = old_tables.get(i).or(old_tables.last()) else {
                    break;
                };
                if let Some(position) = model.position() {
                    table.set_position(position);
                }
                if i < old_tables.len() {
                    *table.decor_mut() = model.decor().clone();
                }
            }
        }
        _ => {}
    }
    *old = item;
}

/// Removes a key, handing the comment lines above it to the key (or `[table]`) that follows,
/// so clearing a setting does not delete a comment that was about the file or the section.
fn remove_keeping_comments(table: &mut dyn toml_edit::TableLike, key: &str) {
    let comments = table
        .key_decor(key)
        .and_then(|d| d.prefix())
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('#'))
        .map(str::to_owned);
    let next = table
        .iter()
        .map(|(k, _)| k.to_owned())
        .skip_while(|k| k != key)
        .nth(1);
    table.remove(key);
    let (Some(comments), Some(next)) = (comments, next) else {
        return;
    };
    let decor = match table.get_mut(&next) {
        Some(toml_edit::Item::Table(t)) => Some(t.decor_mut()),
        Some(toml_edit::Item::ArrayOfTables(a)) => a.iter_mut().next().map(|t| t.decor_mut()),
        Some(_) => table.key_decor_mut(&next),
        None => None,
    };
    if let Some(decor) = decor {
        let after = decor
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned();
        decor.set_prefix(format!("{comments}{after}"));
    }
}

/// Whether two items hold the same data, whatever their comments and layout.
fn same_data(a: &toml_edit::Item, b: &toml_edit::Item) -> bool {
    use toml_edit::Item;
    if let (Some(x), Some(y)) = (a.as_table_like(), b.as_table_like()) {
        return same_table(x, y);
    }
    match (a, b) {
        (Item::ArrayOfTables(x), Item::ArrayOfTables(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(t, u)| same_table(t, u))
        }
        (Item::Value(x), Item::Value(y)) => same_value(x, y),
        _ => false,
    }
}

fn same_table(x: &dyn toml_edit::TableLike, y: &dyn toml_edit::TableLike) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| same_data(v, w)))
}

fn same_value(x: &toml_edit::Value, y: &toml_edit::Value) -> bool {
    use toml_edit::Value;
    match (x, y) {
        (Value::String(a), Value::String(b)) => a.value() == b.value(),
        (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
        (Value::Float(a), Value::Float(b)) => a.value() == b.value(),
        (Value::Boolean(a), Value::Boolean(b)) => a.value() == b.value(),
        (Value::Datetime(a), Value::Datetime(b)) => a.value() == b.value(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(p, q)| same_value(p, q))
        }
        (Value::InlineTable(a), Value::InlineTable(b)) => same_table(a, b),
        _ => false,
    }
}

/// Sets (or removes) a key of a `[section]` (or an inline `section = { … }`), creating the
/// section when it is missing or is not a table.
fn set_in(root: &mut toml_edit::Table, section: &str, key: &str, item: Option<toml_edit::Item>) {
    let entry = root
        .entry(section)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    if !entry.is_table_like() {
        *entry = toml_edit::Item::Table(toml_edit::Table::new());
    }
    if let Some(table) = entry.as_table_like_mut() {
        set(table, key, item);
    }
}

/// Why settings could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be written.
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, String),
    /// A secret could not be stored.
    #[error("cannot store a secret: {0}")]
    Secrets(String),
}

/// Replaces the settings file: a power cut right after saving leaves the old file or the new
/// one, never an empty one.
fn write_atomically(path: &Path, text: &str) -> Result<(), SettingsError> {
    callpop_files::write_atomically(path, text.as_bytes(), callpop_files::Access::Default)
        .map_err(|e| SettingsError::Write(path.to_path_buf(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpop_engine::config::Overrides;
    use callpop_engine::secrets::names;

    /// Loads the configuration from `file` (written with `toml` first) with an empty
    /// environment, the data directory in `dir`: secrets go to `dir/secrets.json`.
    fn load(dir: &Path, file: &Path) -> Config {
        let overrides = Overrides {
            data_dir: Some(dir.to_path_buf()),
            config_file: Some(file.to_path_buf()),
            ..Default::default()
        };
        // The file store: never a developer's real keyring (tests/keyring.rs covers it).
        Config::load_with(&overrides, &|k| {
            (k == "CALLPOP_SECRET_STORE").then(|| "file".to_string())
        })
        .expect("config")
    }

    fn config_with(dir: &Path, toml: &str) -> (Config, PathBuf) {
        let file = dir.join("config.toml");
        std::fs::write(&file, toml).expect("write config");
        (load(dir, &file), file)
    }

    fn label(number: &str, name: &str) -> LineLabel {
        LineLabel {
            number: number.into(),
            label: name.into(),
        }
    }

    /// Defaults, as a fresh install shows them.
    fn fresh() -> (tempfile::TempDir, Config, SettingsView) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, _) = config_with(dir.path(), "");
        let view = SettingsView::from_config(&config);
        (dir, config, view)
    }

    /// The fields of the errors, in order.
    fn fields(update: &SettingsUpdate, current: &SettingsView) -> Vec<String> {
        update
            .validate(current)
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn one_error(update: &SettingsUpdate, current: &SettingsView) -> FieldError {
        let mut errors = update.validate(current).expect_err("invalid");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn a_fresh_install_shows_the_defaults_and_no_secrets() {
        let (dir, _config, view) = fresh();
        assert_eq!(
            view,
            SettingsView {
                ringcentral: RingCentralView {
                    server: "https://platform.ringcentral.com".into(),
                    client_id: String::new(),
                    client_secret_set: false,
                    jwt_set: false,
                },
                ringotel: RingotelView {
                    api_token_set: false,
                },
                tunnel: TunnelView {
                    mode: TunnelModeView::Off,
                    ngrok_authtoken_set: false,
                    ngrok_domain: String::new(),
                    public_url: String::new(),
                },
                watch_extensions: Vec::new(),
                line_labels: Vec::new(),
                popups: PopupsView {
                    notifications: NotificationsView::Auto,
                    quiet_hours: None,
                    max_on_screen: 3,
                    crm_url_template: String::new(),
                    answered_close_seconds: 8,
                },
                general: GeneralView {
                    autostart: false,
                    close_to_tray: true,
                    data_dir: dir.path().display().to_string(),
                    default_country: "US".into(),
                },
            }
        );
        // What the window sends back unchanged is valid.
        assert_eq!(view.unchanged().validate(&view), Ok(()));
    }

    #[test]
    fn the_view_reads_every_section_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, _) = config_with(
            dir.path(),
            "default_country = \"AU\"\nwatch_extensions = [\"101\", \"102\"]\n\
             public_url = \"https://desk.example.com/\"\n\
             [[line_labels]]\nnumber = \"+61398765432\"\nlabel = \"Sales\"\n\
             [ringcentral]\nserver = \"https://platform.devtest.ringcentral.com\"\nclient_id = \"abc\"\n\
             [tunnel]\nmode = \"provided\"\nngrok_domain = \"desk.ngrok.app\"\n\
             [popups]\nnotifications = \"off\"\nmax_on_screen = 7\nanswered_close_seconds = 30\n\
             quiet_hours = { start = \"19:00\", end = \"7:30\" }\n\
             crm_url_template = \"https://crm.example/find?p={e164}\"\n\
             [desktop]\nautostart = true\nclose_to_tray = false\n",
        );
        let view = SettingsView::from_config(&config);
        assert_eq!(
            view.ringcentral.server,
            "https://platform.devtest.ringcentral.com"
        );
        assert_eq!(view.ringcentral.client_id, "abc");
        assert_eq!(view.tunnel.mode, TunnelModeView::Provided);
        assert_eq!(view.tunnel.ngrok_domain, "desk.ngrok.app");
        assert_eq!(view.tunnel.public_url, "https://desk.example.com");
        assert_eq!(view.watch_extensions, vec!["101", "102"]);
        assert_eq!(view.line_labels, vec![label("+61398765432", "Sales")]);
        assert_eq!(
            view.popups,
            PopupsView {
                notifications: NotificationsView::Off,
                quiet_hours: Some(QuietHoursView {
                    start: "19:00".into(),
                    end: "07:30".into(),
                }),
                max_on_screen: 7,
                crm_url_template: "https://crm.example/find?p={e164}".into(),
                answered_close_seconds: 30,
            }
        );
        assert!(view.general.autostart);
        assert!(!view.general.close_to_tray);
        assert_eq!(view.general.default_country, "AU");
        assert_eq!(view.unchanged().validate(&view), Ok(()));
    }

    #[test]
    fn the_tunnel_mode_auto_is_shown_as_what_it_picks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, _) = config_with(dir.path(), "");
        assert_eq!(
            SettingsView::from_config(&config).tunnel.mode,
            TunnelModeView::Off
        );
        let (config, _) = config_with(dir.path(), "public_url = \"https://desk.example.com\"\n");
        assert_eq!(
            SettingsView::from_config(&config).tunnel.mode,
            TunnelModeView::Provided
        );
        // A stored ngrok authtoken wins over a provided URL.
        callpop_engine::secrets::store(&config, names::NGROK_AUTHTOKEN, Some("tok"))
            .expect("store");
        let view = SettingsView::from_config(&config);
        assert_eq!(view.tunnel.mode, TunnelModeView::Ngrok);
        assert!(view.tunnel.ngrok_authtoken_set);
        let (config, _) = config_with(dir.path(), "[tunnel]\nmode = \"loopback\"\n");
        assert_eq!(
            SettingsView::from_config(&config).tunnel.mode,
            TunnelModeView::Off
        );
        let (config, _) = config_with(dir.path(), "[tunnel]\nmode = \"off\"\n");
        assert_eq!(
            SettingsView::from_config(&config).tunnel.mode,
            TunnelModeView::Off
        );
    }

    #[test]
    fn secrets_from_the_environment_or_the_store_show_only_as_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "").expect("write");
        let overrides = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            config_file: Some(file),
            ..Default::default()
        };
        let config = Config::load_with(&overrides, &|k| match k {
            "CALLPOP_RINGCENTRAL_JWT" => Some("env.jwt.value".to_string()),
            "CALLPOP_SECRET_STORE" => Some("file".to_string()),
            _ => None,
        })
        .expect("config");
        callpop_engine::secrets::store(
            &config,
            names::RINGCENTRAL_CLIENT_SECRET,
            Some("stored-client-secret"),
        )
        .expect("store");
        let view = SettingsView::from_config(&config);
        assert!(view.ringcentral.jwt_set, "from the environment");
        assert!(view.ringcentral.client_secret_set, "from the store");
        assert!(!view.ringotel.api_token_set);
        assert!(!view.tunnel.ngrok_authtoken_set);
        let json = serde_json::to_string(&view).expect("json");
        assert!(!json.contains("env.jwt.value"), "{json}");
        assert!(!json.contains("stored-client-secret"), "{json}");
    }

    #[test]
    fn a_bad_server_is_reported_on_its_field() {
        let (_dir, _config, view) = fresh();
        for bad in [
            "",
            "platform.ringcentral.com",
            "https://",
            "ftp://platform.ringcentral.com",
            "http://platform.ringcentral.com",
            "http://127.0.0.1",
            "http://127.0.0.1:notaport",
            "http://localhost:99999",
        ] {
            let mut u = view.unchanged();
            u.ringcentral.server = bad.into();
            let e = one_error(&u, &view);
            assert_eq!(e.field, "ringcentral.server", "{bad:?}");
            assert!(
                e.message.contains("https://platform.ringcentral.com"),
                "{e:?}"
            );
        }
        for good in [
            "https://platform.ringcentral.com",
            "https://platform.devtest.ringcentral.com/",
            " https://platform.ringcentral.com ",
            "http://127.0.0.1:8080",
            "http://localhost:9000/",
        ] {
            let mut u = view.unchanged();
            u.ringcentral.server = good.into();
            assert_eq!(u.validate(&view), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn credentials_need_a_client_id_and_a_jwt_has_three_parts() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.ringcentral.client_id = "has space".into();
        assert_eq!(
            one_error(&u, &view),
            FieldError::new("ringcentral.client_id", "a client id has no spaces")
        );
        u.ringcentral.client_id = "x".repeat(129);
        assert_eq!(one_error(&u, &view).field, "ringcentral.client_id");

        let mut u = view.unchanged();
        u.ringcentral.client_secret = Some("secret".into());
        assert_eq!(
            one_error(&u, &view),
            FieldError::new(
                "ringcentral.client_id",
                "the client id is needed with a secret or JWT"
            )
        );
        u.ringcentral.client_id = "abc".into();
        assert_eq!(u.validate(&view), Ok(()));

        u.ringcentral.jwt = Some("only.two".into());
        assert_eq!(
            one_error(&u, &view),
            FieldError::new("ringcentral.jwt", "a JWT has three parts separated by dots")
        );
        u.ringcentral.jwt = Some(" a.b.c ".into());
        assert_eq!(u.validate(&view), Ok(()));

        // A secret already stored needs the client id too; clearing it does not.
        let mut stored = view;
        stored.ringcentral.jwt_set = true;
        let u = stored.unchanged();
        assert_eq!(one_error(&u, &stored).field, "ringcentral.client_id");
        let mut u = stored.unchanged();
        u.ringcentral.jwt = Some("  ".into());
        assert_eq!(u.validate(&stored), Ok(()));
    }

    #[test]
    fn tunnel_fields_are_checked_for_the_chosen_mode_only() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.tunnel.mode = TunnelModeView::Ngrok;
        assert_eq!(
            one_error(&u, &view),
            FieldError::new(
                "tunnel.ngrok_authtoken",
                "paste the ngrok authtoken from the ngrok dashboard"
            )
        );
        u.tunnel.ngrok_authtoken = Some("tok".into());
        assert_eq!(u.validate(&view), Ok(()));
        for bad in [
            "bad_domain.ngrok.app",
            "nodots",
            "-desk.ngrok.app",
            "desk..app",
        ] {
            u.tunnel.ngrok_domain = bad.into();
            assert_eq!(one_error(&u, &view).field, "tunnel.ngrok_domain", "{bad:?}");
        }
        u.tunnel.ngrok_domain = "desk-42.ngrok.app".into();
        assert_eq!(u.validate(&view), Ok(()));
        // An authtoken stored earlier is enough.
        let mut stored = view.clone();
        stored.tunnel.ngrok_authtoken_set = true;
        let mut u2 = stored.unchanged();
        u2.tunnel.mode = TunnelModeView::Ngrok;
        assert_eq!(u2.validate(&stored), Ok(()));

        let mut u = view.unchanged();
        u.tunnel.mode = TunnelModeView::Provided;
        for bad in ["", "desk.example.com", "https://desk.example.com/?x=1"] {
            u.tunnel.public_url = bad.into();
            assert_eq!(one_error(&u, &view).field, "tunnel.public_url", "{bad:?}");
        }
        u.tunnel.public_url = "https://desk.example.com/".into();
        assert_eq!(u.validate(&view), Ok(()));
        // With the tunnel off, a leftover URL or domain is not checked.
        u.tunnel.mode = TunnelModeView::Off;
        u.tunnel.public_url = "junk".into();
        u.tunnel.ngrok_domain = "junk".into();
        assert_eq!(u.validate(&view), Ok(()));
    }

    #[test]
    fn each_bad_extension_is_reported_by_its_index() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.watch_extensions = vec![
            "101".into(),
            "".into(),
            "12a".into(),
            " 62264425016 ".into(),
            "1".repeat(21),
        ];
        let errors = u.validate(&view).expect_err("invalid");
        assert_eq!(
            errors,
            vec![
                FieldError::new(
                    "watch_extensions.1",
                    "an extension number or id is digits only"
                ),
                FieldError::new(
                    "watch_extensions.2",
                    "an extension number or id is digits only"
                ),
                FieldError::new(
                    "watch_extensions.4",
                    "an extension number or id is digits only"
                ),
            ]
        );
    }

    #[test]
    fn an_unsupported_country_is_reported_with_the_choices() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.general.default_country = "XX".into();
        let e = one_error(&u, &view);
        assert_eq!(e.field, "general.default_country");
        assert_eq!(e.message, "choose one of US, CA, AU, NZ, GB, IE");
        u.general.default_country = " au ".into();
        assert_eq!(u.validate(&view), Ok(()));
    }

    #[test]
    fn a_bad_country_does_not_make_good_line_labels_look_bad() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.general.default_country = "XX".into();
        u.line_labels = vec![
            label("+16505550100", "Sales"),
            label("(650) 555-0101", "Service"),
        ];
        assert_eq!(fields(&u, &view), vec!["general.default_country"]);
    }

    #[test]
    fn line_labels_need_a_number_once_and_a_short_name() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.line_labels = vec![
            label("+16505550100", "Sales"),
            label("(650) 555-0100", "Service"),
            label("abc", "Parts"),
            label("+16505550101", "  "),
            label("101", "Desk"),
            label("101", "Desk again"),
            label("+16505550102", &"x".repeat(41)),
            label("+16505550103", &"é".repeat(40)),
        ];
        let errors = u.validate(&view).expect_err("invalid");
        assert_eq!(
            errors,
            vec![
                FieldError::new("line_labels.1.number", "this number already has a label"),
                FieldError::new(
                    "line_labels.2.number",
                    "a phone number such as +1 650 555 0100"
                ),
                FieldError::new(
                    "line_labels.3.label",
                    "a short name such as Sales (up to 40 characters)"
                ),
                FieldError::new("line_labels.5.number", "this number already has a label"),
                FieldError::new(
                    "line_labels.6.label",
                    "a short name such as Sales (up to 40 characters)"
                ),
            ]
        );
    }

    #[test]
    fn quiet_hours_need_two_different_times() {
        let (_dir, _config, view) = fresh();
        let quiet = |start: &str, end: &str| {
            let mut u = view.unchanged();
            u.popups.quiet_hours = Some(QuietHoursView {
                start: start.into(),
                end: end.into(),
            });
            u
        };
        assert_eq!(quiet("19:00", "07:30").validate(&view), Ok(()));
        assert_eq!(
            one_error(&quiet("7pm", "07:00"), &view),
            FieldError::new("popups.quiet_hours.start", "a time like 19:30")
        );
        assert_eq!(
            one_error(&quiet("19:00", "24:00"), &view),
            FieldError::new("popups.quiet_hours.end", "a time like 19:30")
        );
        assert_eq!(
            fields(&quiet("", "x"), &view),
            vec!["popups.quiet_hours.start", "popups.quiet_hours.end"]
        );
        assert_eq!(
            one_error(&quiet("19:00", " 19:00 "), &view),
            FieldError::new(
                "popups.quiet_hours.end",
                "the end must differ from the start"
            )
        );
        // The same time written differently is still the same time.
        assert_eq!(
            one_error(&quiet("7:00", "07:00"), &view),
            FieldError::new(
                "popups.quiet_hours.end",
                "the end must differ from the start"
            )
        );
    }

    #[test]
    fn popup_numbers_and_the_crm_link_are_checked() {
        let (_dir, _config, view) = fresh();
        for (n, ok) in [(0, false), (1, true), (20, true), (21, false)] {
            let mut u = view.unchanged();
            u.popups.max_on_screen = n;
            if ok {
                assert_eq!(u.validate(&view), Ok(()), "{n}");
            } else {
                assert_eq!(
                    one_error(&u, &view),
                    FieldError::new("popups.max_on_screen", "between 1 and 20"),
                    "{n}"
                );
            }
        }
        let mut u = view.unchanged();
        u.popups.answered_close_seconds = 600;
        assert_eq!(u.validate(&view), Ok(()));
        u.popups.answered_close_seconds = 601;
        assert_eq!(
            one_error(&u, &view),
            FieldError::new("popups.answered_close_seconds", "at most 600 seconds")
        );

        let mut u = view.unchanged();
        u.popups.crm_url_template = "https://crm/{phone}".into();
        let e = one_error(&u, &view);
        assert_eq!(e.field, "popups.crm_url_template");
        assert!(e.message.contains("{phone}"), "{e:?}");
        u.popups.crm_url_template = "javascript:alert(1)".into();
        assert_eq!(one_error(&u, &view).field, "popups.crm_url_template");
        u.popups.crm_url_template = "https://crm.example/find?p={e164}&n={name}".into();
        assert_eq!(u.validate(&view), Ok(()));
        u.popups.crm_url_template = "   ".into();
        assert_eq!(u.validate(&view), Ok(()));
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let (_dir, _config, view) = fresh();
        let mut u = view.unchanged();
        u.ringcentral.server = "nope".into();
        u.watch_extensions = vec!["x".into()];
        u.general.default_country = "ZZ".into();
        u.popups.max_on_screen = 0;
        u.popups.quiet_hours = Some(QuietHoursView {
            start: "1".into(),
            end: "2".into(),
        });
        assert_eq!(
            fields(&u, &view),
            vec![
                "ringcentral.server",
                "watch_extensions.0",
                "general.default_country",
                "popups.quiet_hours.start",
                "popups.quiet_hours.end",
                "popups.max_on_screen",
            ]
        );
    }

    /// An update touching every field, with all four secrets.
    fn everything(view: &SettingsView) -> SettingsUpdate {
        let mut u = view.unchanged();
        u.ringcentral = RingCentralUpdate {
            server: " https://platform.devtest.ringcentral.com/ ".into(),
            client_id: " client-123 ".into(),
            client_secret: Some(" the-client-secret ".into()),
            jwt: Some("jwt.header.signature".into()),
        };
        u.ringotel.api_token = Some("the-ringotel-token".into());
        u.tunnel = TunnelUpdate {
            mode: TunnelModeView::Ngrok,
            ngrok_authtoken: Some("the-ngrok-token".into()),
            ngrok_domain: "desk-42.ngrok.app".into(),
            public_url: "https://desk.example.com/".into(),
        };
        u.watch_extensions = vec![" 101 ".into(), "62264425016".into()];
        u.line_labels = vec![
            label(" +16505550100 ", " Sales "),
            label("101", "Front desk"),
        ];
        u.popups = PopupsView {
            notifications: NotificationsView::Off,
            quiet_hours: Some(QuietHoursView {
                start: "19:00".into(),
                end: "07:30".into(),
            }),
            max_on_screen: 5,
            crm_url_template: "https://crm.example/find?p={e164}".into(),
            answered_close_seconds: 20,
        };
        u.general = GeneralUpdate {
            autostart: true,
            close_to_tray: false,
            default_country: "ca".into(),
        };
        u
    }

    const SECRET_VALUES: [&str; 4] = [
        "the-client-secret",
        "jwt.header.signature",
        "the-ringotel-token",
        "the-ngrok-token",
    ];

    #[test]
    fn saved_settings_read_back_as_saved_and_secrets_stay_out_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, file) = config_with(dir.path(), "");
        let view = SettingsView::from_config(&config);
        let update = everything(&view);
        assert_eq!(update.validate(&view), Ok(()));
        update.save(&config, &file).expect("save");

        let reloaded = load(dir.path(), &file);
        let shown = SettingsView::from_config(&reloaded);
        assert_eq!(
            shown,
            SettingsView {
                ringcentral: RingCentralView {
                    server: "https://platform.devtest.ringcentral.com".into(),
                    client_id: "client-123".into(),
                    client_secret_set: true,
                    jwt_set: true,
                },
                ringotel: RingotelView {
                    api_token_set: true,
                },
                tunnel: TunnelView {
                    mode: TunnelModeView::Ngrok,
                    ngrok_authtoken_set: true,
                    ngrok_domain: "desk-42.ngrok.app".into(),
                    public_url: "https://desk.example.com".into(),
                },
                watch_extensions: vec!["101".into(), "62264425016".into()],
                line_labels: vec![label("+16505550100", "Sales"), label("101", "Front desk")],
                popups: PopupsView {
                    notifications: NotificationsView::Off,
                    quiet_hours: Some(QuietHoursView {
                        start: "19:00".into(),
                        end: "07:30".into(),
                    }),
                    max_on_screen: 5,
                    crm_url_template: "https://crm.example/find?p={e164}".into(),
                    answered_close_seconds: 20,
                },
                general: GeneralView {
                    autostart: true,
                    close_to_tray: false,
                    data_dir: dir.path().display().to_string(),
                    default_country: "CA".into(),
                },
            }
        );
        // The secrets are in the secret store, trimmed, and nowhere in the file or the view.
        let stored = |name: &str| {
            callpop_engine::secrets::stored(&reloaded, name)
                .expect("stored")
                .map(|s| s.expose().to_string())
        };
        assert_eq!(
            stored(names::RINGCENTRAL_CLIENT_SECRET).as_deref(),
            Some("the-client-secret")
        );
        assert_eq!(
            stored(names::RINGCENTRAL_JWT).as_deref(),
            Some("jwt.header.signature")
        );
        assert_eq!(
            stored(names::RINGOTEL_API_TOKEN).as_deref(),
            Some("the-ringotel-token")
        );
        assert_eq!(
            stored(names::NGROK_AUTHTOKEN).as_deref(),
            Some("the-ngrok-token")
        );
        let text = std::fs::read_to_string(&file).expect("read");
        let json = serde_json::to_string(&shown).expect("json");
        for secret in SECRET_VALUES {
            assert!(!text.contains(secret), "{secret} in the file:\n{text}");
            assert!(!json.contains(secret), "{secret} in the view: {json}");
        }
        assert!(
            text.starts_with("# Written by CallPop's settings window"),
            "{text}"
        );
        // The secrets reach the engine's configuration.
        let mut engine_config = reloaded.clone();
        callpop_engine::secrets::complete_platform_credentials(&mut engine_config)
            .expect("complete");
        assert!(engine_config.ringcentral.has_credentials());
        // Saving what is shown again changes nothing.
        shown
            .unchanged()
            .save(&reloaded, &file)
            .expect("save again");
        assert_eq!(SettingsView::from_config(&load(dir.path(), &file)), shown);
        assert_eq!(
            stored(names::RINGCENTRAL_JWT).as_deref(),
            Some("jwt.header.signature"),
            "a secret not sent back is kept"
        );
        assert!(!dir.path().join("config.toml.tmp").exists());
    }

    #[test]
    fn saving_keeps_the_settings_the_window_does_not_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, file) = config_with(
            dir.path(),
            "# my notes about this desk\nmax_body_bytes = 4096\n\
             watch_extensions = [\"101\"]\n\
             [ringcentral]\nevent_filters = [\"/restapi/v1.0/account/~/telephony/sessions\"]\n\
             subscription_expires_in = 3600\ncheck_interval_seconds = 300\n\
             [popups]\nstale_after_seconds = 30\nmax_on_screen = 4\n",
        );
        let view = SettingsView::from_config(&config);
        let mut u = view.unchanged();
        u.watch_extensions = vec!["102".into()];
        u.popups.max_on_screen = 6;
        u.save(&config, &file).expect("save");

        let c = load(dir.path(), &file);
        assert_eq!(c.watch_extensions, vec!["102"]);
        assert_eq!(c.popups.max_on_screen, 6);
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(
            c.ringcentral.event_filters,
            vec!["/restapi/v1.0/account/~/telephony/sessions"]
        );
        assert_eq!(c.ringcentral.subscription_expires_in, 3600);
        assert_eq!(c.ringcentral.check_interval, chrono::Duration::seconds(300));
        assert_eq!(c.popups.stale_after, std::time::Duration::from_secs(30));
    }

    /// Writes `written` as the settings file, saves the settings shown with `change` made to
    /// them, and returns the file's text afterwards and its path.
    fn save_over(
        dir: &Path,
        written: &str,
        change: impl FnOnce(&mut SettingsUpdate),
    ) -> (String, PathBuf) {
        let (config, file) = config_with(dir, written);
        let view = SettingsView::from_config(&config);
        let mut update = view.unchanged();
        change(&mut update);
        assert_eq!(update.validate(&view), Ok(()));
        update.save(&config, &file).expect("save");
        (std::fs::read_to_string(&file).expect("read"), file)
    }

    fn assert_kept(saved: &str, kept: &[&str]) {
        for k in kept {
            assert!(saved.contains(k), "lost {k:?} in:\n{saved}");
        }
    }

    fn evening_quiet_hours() -> Option<QuietHoursView> {
        Some(QuietHoursView {
            start: "20:00".into(),
            end: "07:30".into(),
        })
    }

    #[test]
    fn saving_keeps_the_files_comments_layout_and_the_settings_the_window_does_not_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = r#"# Dealership phones. Ask Sam before changing anything here.

# Fourteen-digit bodies from the old PBX bridge need more room.
max_body_bytes = 131072
default_country = "US" # most callers are local

[ringcentral]
# The sandbox until go-live on the 1st.
server = "https://platform.devtest.ringcentral.com"
check_interval_seconds = 600 # RingCentral asked us not to poll faster

[popups]
notifications = "auto"
stale_after_seconds = 900
quiet_hours = { start = "19:00", end = "07:30" } # the showroom closes at seven
"#;
        let (saved, file) = save_over(dir.path(), written, |update| {
            update.general.default_country = "ca".into();
            update.ringcentral.server = "https://platform.ringcentral.com/".into();
            update.popups.notifications = NotificationsView::Off;
            update.popups.quiet_hours = evening_quiet_hours();
        });
        assert_kept(
            &saved,
            &[
                "# Dealership phones. Ask Sam before changing anything here.\n",
                "# Fourteen-digit bodies from the old PBX bridge need more room.\nmax_body_bytes = 131072\n",
                "default_country = \"CA\" # most callers are local\n",
                "[ringcentral]\n# The sandbox until go-live on the 1st.\nserver = \"https://platform.ringcentral.com\"\n",
                "check_interval_seconds = 600 # RingCentral asked us not to poll faster\n",
                "notifications = \"off\"\nstale_after_seconds = 900\n",
                "quiet_hours = { start = \"20:00\", end = \"07:30\" } # the showroom closes at seven\n",
            ],
        );
        assert!(
            !saved.contains("Written by CallPop"),
            "a hand-written file gets no header:\n{saved}"
        );
        let reloaded = load(dir.path(), &file);
        assert_eq!(reloaded.max_body_bytes, 131_072);
        assert_eq!(
            reloaded.ringcentral.server,
            "https://platform.ringcentral.com"
        );
        assert_eq!(
            reloaded.ringcentral.check_interval,
            chrono::Duration::seconds(600)
        );

        // Saving again changes nothing: the file settles.
        let view = SettingsView::from_config(&reloaded);
        view.unchanged().save(&reloaded, &file).expect("save again");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), saved);
    }

    #[test]
    fn unchanged_lists_keep_their_comments_and_a_cleared_key_leaves_its_comment_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = r#"# Showroom PC. Ask Sam before changing anything here.
public_url = "https://calls.dealer.example"
watch_extensions = [
  "101", # front desk
  "102",
]

[popups]
quiet_hours.start = "19:00"
quiet_hours.end = "07:30"

# Our main lines.
[[line_labels]]
number = "+14155550100" # the number on the sign
label = "Sales"
"#;
        let (saved, file) = save_over(dir.path(), written, |update| {
            update.tunnel.mode = TunnelModeView::Off;
            update.tunnel.public_url = String::new();
            update.popups.quiet_hours = evening_quiet_hours();
        });
        assert!(!saved.contains("public_url"), "{saved}");
        assert_kept(
            &saved,
            &[
                "# Showroom PC. Ask Sam before changing anything here.\n",
                "watch_extensions = [\n  \"101\", # front desk\n  \"102\",\n]\n",
                "quiet_hours.start = \"20:00\"\nquiet_hours.end = \"07:30\"\n",
                "# Our main lines.\n[[line_labels]]\nnumber = \"+14155550100\" # the number on the sign\n",
            ],
        );
        let reloaded = load(dir.path(), &file);
        let shown = SettingsView::from_config(&reloaded);
        assert_eq!(shown.watch_extensions, vec!["101", "102"]);
        assert_eq!(shown.line_labels, vec![label("+14155550100", "Sales")]);
        assert_eq!(shown.tunnel.public_url, "");
    }

    #[test]
    fn clearing_a_value_removes_its_key_and_an_empty_secret_removes_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, file) = config_with(dir.path(), "");
        let view = SettingsView::from_config(&config);
        everything(&view).save(&config, &file).expect("save");
        let config = load(dir.path(), &file);
        let view = SettingsView::from_config(&config);

        let mut u = view.unchanged();
        u.ringcentral.client_id = " ".into();
        u.ringcentral.client_secret = Some(String::new());
        u.ringcentral.jwt = Some("  ".into());
        u.ringotel.api_token = Some(String::new());
        u.tunnel = TunnelUpdate {
            mode: TunnelModeView::Off,
            ngrok_authtoken: Some(String::new()),
            ngrok_domain: String::new(),
            public_url: String::new(),
        };
        u.line_labels.clear();
        u.watch_extensions.clear();
        u.popups.quiet_hours = None;
        u.popups.crm_url_template = String::new();
        assert_eq!(u.validate(&view), Ok(()));
        u.save(&config, &file).expect("save");

        let doc: toml::Table =
            toml::from_str(&std::fs::read_to_string(&file).expect("read")).expect("toml");
        let table = |name: &str| doc[name].as_table().expect("table").clone();
        assert!(!table("ringcentral").contains_key("client_id"), "{doc}");
        assert!(!table("tunnel").contains_key("ngrok_domain"), "{doc}");
        assert!(!table("popups").contains_key("quiet_hours"), "{doc}");
        assert!(!table("popups").contains_key("crm_url_template"), "{doc}");
        assert!(!doc.contains_key("public_url"), "{doc}");
        assert_eq!(doc["tunnel"]["mode"].as_str(), Some("off"));

        let c = load(dir.path(), &file);
        for name in names::ALL {
            assert!(
                callpop_engine::secrets::stored(&c, name)
                    .expect("stored")
                    .is_none(),
                "{name} still stored"
            );
        }
        let shown = SettingsView::from_config(&c);
        assert_eq!(shown.ringcentral.client_id, "");
        assert!(!shown.ringcentral.client_secret_set);
        assert!(!shown.ringcentral.jwt_set);
        assert!(!shown.ringotel.api_token_set);
        assert!(!shown.tunnel.ngrok_authtoken_set);
        assert_eq!(shown.tunnel.mode, TunnelModeView::Off);
        assert_eq!(shown.tunnel.public_url, "");
        assert_eq!(shown.tunnel.ngrok_domain, "");
        assert!(shown.line_labels.is_empty());
        assert!(shown.watch_extensions.is_empty());
        assert_eq!(shown.popups.quiet_hours, None);
        assert_eq!(shown.popups.crm_url_template, "");
    }

    #[test]
    fn saving_creates_a_missing_file_and_refuses_to_overwrite_a_damaged_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, _) = config_with(dir.path(), "");
        let view = SettingsView::from_config(&config);
        let file = dir.path().join("new").join("sub").join("config.toml");
        let mut u = view.unchanged();
        u.general.default_country = "GB".into();
        u.save(&config, &file).expect("save to a new file");
        assert_eq!(load(dir.path(), &file).default_country.iso, "GB");

        let damaged = dir.path().join("damaged.toml");
        std::fs::write(&damaged, "this is [not toml").expect("write");
        let err = u.save(&config, &damaged).expect_err("damaged");
        assert!(
            matches!(err, SettingsError::Write(ref p, _) if *p == damaged),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("cannot write {}", damaged.display())));
        assert_eq!(
            std::fs::read_to_string(&damaged).expect("read"),
            "this is [not toml"
        );
    }

    #[test]
    fn a_damaged_secret_store_fails_the_save_with_a_secrets_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, file) = config_with(dir.path(), "");
        let view = SettingsView::from_config(&config);
        std::fs::write(
            dir.path().join(callpop_engine::secrets::SECRETS_FILE),
            "{not json",
        )
        .expect("write");
        let mut u = view.unchanged();
        u.ringotel.api_token = Some("tok".into());
        let err = u.save(&config, &file).expect_err("secrets");
        assert!(matches!(err, SettingsError::Secrets(_)), "{err}");
        assert!(
            err.to_string().starts_with("cannot store a secret: "),
            "{err}"
        );
    }
}
