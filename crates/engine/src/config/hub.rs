//! `[hub]` and `[desk]`: hub mode's settings (docs/HUB.md). Whether this CallPop is a desk, its
//! hub's address and the hub's pinned key are not settings: joining writes them into the data
//! dir (`desk.json`), so a config file copied between PCs cannot make a desk of a hub.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{parse_listen, ConfigError};

/// Where a hub serves its desks by default: every interface, since desks are other PCs.
pub const DEFAULT_HUB_LISTEN: &str = "0.0.0.0:8788";

/// How many days of calls a desk keeps of its hub's history by default.
pub const DEFAULT_WINDOW_DAYS: u32 = 90;

/// `[hub]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHub {
    enabled: Option<bool>,
    listen: Option<String>,
    name: Option<String>,
}

/// `[desk]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDesk {
    window_days: Option<toml::Value>,
}

/// The hub role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// This CallPop serves desks (`--hub`, `CALLPOP_HUB`).
    pub enabled: bool,
    /// Where the desk API listens (`--hub-listen`, `CALLPOP_HUB_LISTEN`).
    pub listen: SocketAddr,
    /// The name desks show for this hub (`CALLPOP_HUB_NAME`; default: the computer's name).
    pub name: String,
}

/// What a desk keeps of its hub's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeskConfig {
    /// Days of calls kept (`CALLPOP_DESK_WINDOW_DAYS`); None keeps all of them.
    pub window_days: Option<u32>,
}

impl DeskConfig {
    /// The oldest start a desk keeps at `now`, if it keeps a window.
    pub fn window_start(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.window_days
            .map(|days| now - chrono::Duration::days(i64::from(days)))
    }
}

/// `[hub]` from the file, then `CALLPOP_HUB*`.
pub(super) fn hub_config(
    file: Option<FileHub>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HubConfig, ConfigError> {
    let file = file.unwrap_or_default();
    let mut hub = HubConfig {
        enabled: file.enabled.unwrap_or(false),
        listen: parse_listen(
            "hub.listen",
            file.listen.as_deref().unwrap_or(DEFAULT_HUB_LISTEN),
        )?,
        name: file
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(computer_name),
    };
    if let Some(v) = env("CALLPOP_HUB") {
        hub.enabled = parse_switch("CALLPOP_HUB", &v)?;
    }
    if let Some(v) = env("CALLPOP_HUB_LISTEN") {
        hub.listen = parse_listen("CALLPOP_HUB_LISTEN", &v)?;
    }
    if let Some(v) = env("CALLPOP_HUB_NAME").filter(|v| !v.trim().is_empty()) {
        hub.name = v.trim().to_string();
    }
    Ok(hub)
}

/// `[desk]` from the file, then `CALLPOP_DESK_WINDOW_DAYS`.
pub(super) fn desk_config(
    file: Option<FileDesk>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DeskConfig, ConfigError> {
    let mut window_days = Some(DEFAULT_WINDOW_DAYS);
    if let Some(v) = file.and_then(|f| f.window_days) {
        window_days = match v {
            toml::Value::Integer(n) => Some(days("desk.window_days", &n.to_string())?),
            toml::Value::String(s) => parse_window("desk.window_days", &s)?,
            other => {
                return Err(ConfigError::Value {
                    setting: "desk.window_days".into(),
                    message: format!("{other} is not a number of days or \"all\""),
                })
            }
        };
    }
    if let Some(v) = env("CALLPOP_DESK_WINDOW_DAYS") {
        window_days = parse_window("CALLPOP_DESK_WINDOW_DAYS", &v)?;
    }
    Ok(DeskConfig { window_days })
}

fn parse_window(setting: &str, value: &str) -> Result<Option<u32>, ConfigError> {
    if value.trim().eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    days(setting, value).map(Some)
}

fn days(setting: &str, value: &str) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=36_500).contains(&n) => Ok(n),
        _ => Err(ConfigError::Value {
            setting: setting.into(),
            message: format!("{value:?} is not a number of days (1 to 36500) or \"all\""),
        }),
    }
}

fn parse_switch(setting: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" | "" => Ok(false),
        _ => Err(ConfigError::Value {
            setting: setting.into(),
            message: format!("{value:?} is not on or off"),
        }),
    }
}

/// The computer's name, as the hub's default name.
fn computer_name() -> String {
    let from_os = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok());
    from_os
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "CallPop hub".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_hub_is_off_by_default_and_listens_on_the_lan_when_on() {
        let hub = hub_config(None, &none).expect("defaults");
        assert!(!hub.enabled);
        assert_eq!(hub.listen.to_string(), DEFAULT_HUB_LISTEN);
        assert!(!hub.name.is_empty());
        let env = |k: &str| match k {
            "CALLPOP_HUB" => Some("on".to_string()),
            "CALLPOP_HUB_LISTEN" => Some("127.0.0.1:9788".to_string()),
            "CALLPOP_HUB_NAME" => Some(" Reception ".to_string()),
            _ => None,
        };
        let hub = hub_config(None, &env).expect("env");
        assert!(hub.enabled);
        assert_eq!(hub.listen.to_string(), "127.0.0.1:9788");
        assert_eq!(hub.name, "Reception");
        let bad = |k: &str| (k == "CALLPOP_HUB").then(|| "maybe".to_string());
        let err = hub_config(None, &bad).expect_err("refused");
        assert!(err.to_string().contains("CALLPOP_HUB"), "{err}");
    }

    #[test]
    fn a_desk_window_is_days_or_all() {
        assert_eq!(
            desk_config(None, &none).expect("default").window_days,
            Some(DEFAULT_WINDOW_DAYS)
        );
        let file: FileDesk = toml::from_str("window_days = \"all\"").expect("toml");
        assert_eq!(
            desk_config(Some(file), &none).expect("all").window_days,
            None
        );
        let file: FileDesk = toml::from_str("window_days = 30").expect("toml");
        assert_eq!(
            desk_config(Some(file), &none).expect("30").window_days,
            Some(30)
        );
        let env = |k: &str| (k == "CALLPOP_DESK_WINDOW_DAYS").then(|| "0".to_string());
        assert!(desk_config(None, &env).is_err());
    }
}
