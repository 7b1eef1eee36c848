//! What the settings page shows, read from the configuration; secrets only as "set".

use callpop_engine::config::{Config, NotificationsMode, TunnelChoice};
use callpop_engine::secrets::names;

use super::*;

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
                transport: view.ringcentral.transport,
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
            confirmed: false,
        }
    }
    /// The settings in force.
    pub fn from_config(config: &Config) -> SettingsView {
        let prefs = config.desktop;
        let p = &config.popups;
        // Credentials entered for another server are not this server's: shown as not set.
        let withheld =
            callpop_engine::secrets::credentials_bound_elsewhere(config).unwrap_or(false);
        let platform_secret_set = |env: Option<&callpop_core::Secret>, name: &str| {
            env.is_some() || (!withheld && secret_set(config, None, name))
        };
        SettingsView {
            ringcentral: RingCentralView {
                server: config.ringcentral.server.clone(),
                client_id: config.ringcentral.client_id.clone().unwrap_or_default(),
                client_secret_set: platform_secret_set(
                    config.ringcentral.client_secret.as_ref(),
                    names::RINGCENTRAL_CLIENT_SECRET,
                ),
                jwt_set: platform_secret_set(
                    config.ringcentral.jwt.as_ref(),
                    names::RINGCENTRAL_JWT,
                ),
                transport: config.ringcentral.transport,
            },
            ringotel: RingotelView {
                api_token_set: secret_set(
                    config,
                    config.ringotel_api_token.as_ref(),
                    names::RINGOTEL_API_TOKEN,
                ),
                api_token_from_environment: config.ringotel_api_token.is_some(),
            },
            tunnel: TunnelView {
                mode: match config.tunnel.choice {
                    TunnelChoice::Ngrok => TunnelModeView::Ngrok,
                    TunnelChoice::Provided => TunnelModeView::Provided,
                    TunnelChoice::Off => TunnelModeView::Off,
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
                    // The loopback tunnel of test builds (`test-hooks`) is no choice of the
                    // window's: it shows as off.
                    #[allow(unreachable_patterns)]
                    _ => TunnelModeView::Off,
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
            managed_by_hub: callpop_engine::desk::DeskState::load(&config.data_dir)
                .ok()
                .flatten()
                .map(|d| d.hub_name),
        }
    }
}
