//! Saving: the values the window owns go into the config file in place (comments, order and
//! other settings kept), secrets into the secret store.

use std::path::Path;

use callpop_engine::config::{validate_public_url, Config};
use callpop_engine::secrets::names;
use callpop_ringcentral::servers::credentials_carry_over;

use super::toml_file::{set, set_in, value};
use super::*;

impl SettingsUpdate {
    /// Writes the non-secret settings to `config_file` and the secrets to the secret store.
    /// Only the values the window owns change: everything else in the file (settings the
    /// window does not show, comments, order, layout) stays as written.
    /// Call [`SettingsUpdate::validate`] first.
    pub fn save(&self, config: &Config, config_file: &Path) -> Result<(), SettingsError> {
        let (mut doc, blank) = read_document(config_file)?;
        let root = doc.as_table_mut();
        // In the order a new file has always been written in: keys added to a file go last.
        self.write_general(root);
        self.write_ringcentral(root);
        self.write_tunnel(root);
        self.write_popups(root);
        self.write_line_labels(root);
        self.write_desktop(root);
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
        self.store_secrets(config)
    }

    /// `listen` and `data_dir` are not the window's to write: they may come from the command
    /// line, and saving must not turn a one-off override into a permanent setting.
    fn write_general(&self, root: &mut toml_edit::Table) {
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
    }

    fn write_desktop(&self, root: &mut toml_edit::Table) {
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
    }

    fn write_ringcentral(&self, root: &mut toml_edit::Table) {
        let server = self.ringcentral.server.trim().trim_end_matches('/');
        set_in(root, "ringcentral", "server", Some(value(server)));
        set_in(
            root,
            "ringcentral",
            "client_id",
            text(&self.ringcentral.client_id),
        );
        set_in(
            root,
            "ringcentral",
            "transport",
            Some(value(self.ringcentral.transport.as_str())),
        );
    }

    fn write_tunnel(&self, root: &mut toml_edit::Table) {
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
    }

    fn write_popups(&self, root: &mut toml_edit::Table) {
        let p = &self.popups;
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
    }

    fn write_line_labels(&self, root: &mut toml_edit::Table) {
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
    }

    /// Secrets the window sent: `None` keeps the stored one, empty removes it.
    /// Stores the secrets given. The RingCentral client secret and JWT belong to the server
    /// they were entered for: a move to a server that is not also RingCentral's clears them
    /// (unless new ones come with it), so a changed server never receives them.
    fn store_secrets(&self, config: &Config) -> Result<(), SettingsError> {
        let server = self.ringcentral.server.trim().trim_end_matches('/');
        // Compared with the server the credentials belong to, not the one configured: after a
        // hand edit of the file the two differ, and only the first may have them.
        let bound = callpop_engine::secrets::bound_server(config)?
            .unwrap_or_else(|| config.ringcentral.server.clone());
        let moved_away = !credentials_carry_over(&bound, server);
        // An empty value clears a stored secret.
        let platform = |given: &Option<String>| match given {
            None if moved_away => Some(String::new()),
            given => given.clone(),
        };
        for (name, value) in [
            (
                names::RINGCENTRAL_CLIENT_SECRET,
                platform(&self.ringcentral.client_secret),
            ),
            (names::RINGCENTRAL_JWT, platform(&self.ringcentral.jwt)),
            (names::RINGOTEL_API_TOKEN, self.ringotel.api_token.clone()),
            (names::NGROK_AUTHTOKEN, self.tunnel.ngrok_authtoken.clone()),
        ] {
            if let Some(v) = value {
                callpop_engine::secrets::store(
                    config,
                    name,
                    Some(v.trim()).filter(|v| !v.is_empty()),
                )?;
            }
        }
        if moved_away {
            tracing::warn!(
                target: "callpop::security",
                from = %bound,
                to = %server,
                "RingCentral server changed in Settings; the stored client secret and JWT were \
                 cleared unless new ones were entered with it"
            );
        }
        let entered = self.ringcentral.client_secret.is_some() || self.ringcentral.jwt.is_some();
        if entered || moved_away {
            callpop_engine::secrets::bind_credentials(config, server)?;
        }
        Ok(())
    }
}

/// Turns the hub role on or off in `config_file` (`[hub] enabled`), leaving the rest as written.
pub fn save_hub_enabled(config_file: &Path, on: bool) -> Result<(), SettingsError> {
    let (mut doc, _) = read_document(config_file)?;
    let root = doc.as_table_mut();
    let hub = root
        .entry("hub")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    if let Some(table) = hub.as_table_like_mut() {
        set(table, "enabled", Some(value(on)));
    }
    write_atomically(config_file, &doc.to_string())
}

/// A text setting: trimmed, and removed from the file when empty.
fn text(v: &str) -> Option<toml_edit::Item> {
    Some(value(v.trim())).filter(|_| !v.trim().is_empty())
}

/// The config file as it stands, and whether it is blank. A file that does not parse is
/// refused rather than replaced: it may be a half-finished hand edit whose settings would
/// otherwise be lost.
fn read_document(config_file: &Path) -> Result<(toml_edit::Document, bool), SettingsError> {
    match std::fs::read_to_string(config_file) {
        Ok(text) => Ok((
            text.parse::<toml_edit::Document>()
                .map_err(|source| SettingsError::Damaged {
                    path: config_file.to_path_buf(),
                    source,
                })?,
            text.trim().is_empty(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((toml_edit::Document::new(), true))
        }
        Err(source) => Err(SettingsError::Read {
            path: config_file.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the settings file: a power cut right after saving leaves the old file or the new
/// one, never an empty one.
fn write_atomically(path: &Path, text: &str) -> Result<(), SettingsError> {
    callpop_files::write_atomically(path, text.as_bytes(), callpop_files::Access::Private).map_err(
        |source| SettingsError::Write {
            path: path.to_path_buf(),
            source,
        },
    )
}
