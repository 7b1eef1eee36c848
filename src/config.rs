//! Settings, layered: built-in defaults → config file (TOML) → `CALLPOP_…` environment →
//! command-line flags. Secrets never live in the config file; they come from the environment
//! or the secret store (see [`crate::secrets`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::numbers::Country;

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

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for comparison or sending to its one legitimate recipient.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
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
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
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

fn parse_extensions(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Config {
    /// Loads settings from the real environment.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load_with(overrides, &|k| std::env::var(k).ok())
    }

    /// Loads settings with an explicit environment (for tests).
    pub fn load_with(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let named = overrides
            .config_file
            .clone()
            .or_else(|| env("CALLPOP_CONFIG").map(PathBuf::from));
        let (file, config_file) = match named {
            Some(path) => (read_file(&path)?, Some(path)),
            None => match default_config_file().filter(|p| p.exists()) {
                Some(path) => (read_file(&path)?, Some(path)),
                None => (FileConfig::default(), None),
            },
        };

        let mut listen = parse_listen("listen", file.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let mut data_dir = file.data_dir.unwrap_or_else(default_data_dir);
        let mut watch_extensions = file.watch_extensions.unwrap_or_default();
        let mut default_country = parse_country(
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

        if let Some(v) = env("CALLPOP_LISTEN") {
            listen = parse_listen("CALLPOP_LISTEN", &v)?;
        }
        if let Some(v) = env("CALLPOP_DATA_DIR").filter(|v| !v.trim().is_empty()) {
            data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("CALLPOP_WATCH_EXTENSIONS") {
            watch_extensions = parse_extensions(&v);
        }
        if let Some(v) = env("CALLPOP_DEFAULT_COUNTRY") {
            default_country = parse_country("CALLPOP_DEFAULT_COUNTRY", &v)?;
        }
        let ringcentral_verification_token =
            env("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN").map(Secret::new);
        let ringotel_api_token = env("CALLPOP_RINGOTEL_API_TOKEN").map(Secret::new);

        if let Some(v) = &overrides.listen {
            listen = parse_listen("--listen", v)?;
        }
        if let Some(v) = &overrides.data_dir {
            data_dir = v.clone();
        }
        watch_extensions.retain(|e| !e.trim().is_empty());

        Ok(Config {
            listen,
            data_dir,
            watch_extensions,
            default_country,
            max_body_bytes,
            ringcentral_verification_token,
            ringotel_api_token,
            config_file,
        })
    }

    /// The history database inside the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(crate::store::DB_FILE)
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
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
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
            config_file: Some(file.clone()),
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
