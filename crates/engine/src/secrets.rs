//! Secrets. Webhook tokens are taken from the environment when set, otherwise generated on
//! first run and kept in a file only the owner can read (`secrets.json`, 0600, in the data
//! directory): the headless receiver needs them without a desktop session. Credentials typed
//! into Settings (RingCentral client secret and JWT, ngrok authtoken) go to the OS keyring
//! (Secret Service on Linux) when one answers, else to the same private file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, SecretStoreChoice};
use crate::health::PartState;
use callpop_core::Secret;

/// File holding generated secrets inside the data directory.
pub const SECRETS_FILE: &str = "secrets.json";

/// Why secrets could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Reading or writing the file failed.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what CallPop wrote.
    #[error("secret file {path} is damaged ({message}); fix or remove it to generate new tokens")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The system's random source failed.
    #[error("cannot generate a token: {0}")]
    Random(String),
    /// The OS keyring refused or failed.
    #[error("OS keyring: {0}")]
    Keyring(String),
}

/// Names of the secrets CallPop keeps.
pub mod names {
    /// Expected RingCentral verification token.
    pub const RINGCENTRAL_VERIFICATION_TOKEN: &str = "ringcentral_verification_token";
    /// Expected Ringotel api token.
    pub const RINGOTEL_API_TOKEN: &str = "ringotel_api_token";
    /// RingCentral app client secret.
    pub const RINGCENTRAL_CLIENT_SECRET: &str = "ringcentral_client_secret";
    /// RingCentral user JWT.
    pub const RINGCENTRAL_JWT: &str = "ringcentral_jwt";
    /// ngrok authtoken.
    pub const NGROK_AUTHTOKEN: &str = "ngrok_authtoken";
    /// The RingCentral server the client secret and JWT were entered for (not a secret, kept
    /// with them so the two never part).
    pub const RINGCENTRAL_CREDENTIALS_SERVER: &str = "ringcentral_credentials_server";
    /// Every name, for validation.
    pub const ALL: &[&str] = &[
        RINGCENTRAL_VERIFICATION_TOKEN,
        RINGOTEL_API_TOKEN,
        RINGCENTRAL_CLIENT_SECRET,
        RINGCENTRAL_JWT,
        NGROK_AUTHTOKEN,
    ];
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
struct SecretsFile {
    values: std::collections::BTreeMap<String, String>,
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Environment,
    /// The secrets file, from an earlier run.
    File,
    /// Generated during this start (and saved to the file).
    Generated,
}

/// The tokens that authenticate webhook deliveries.
#[derive(Debug, Clone)]
pub struct WebhookTokens {
    /// Expected RingCentral verification token (`None`: check disabled).
    pub ringcentral: Option<Secret>,
    /// Where it came from.
    pub ringcentral_source: TokenSource,
    /// Expected Ringotel `api_token` (`None`: check disabled).
    pub ringotel: Option<Secret>,
    /// Where it came from.
    pub ringotel_source: TokenSource,
    /// The secrets file.
    pub file: PathBuf,
}

/// Generates a random token of 32 hexadecimal characters (128 bits).
pub fn generate_token() -> Result<String, SecretsError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| SecretsError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Resolves both webhook tokens: environment first (an empty value disables the check), then
/// the secrets file; a missing token is generated and saved.
pub fn webhook_tokens(config: &Config) -> Result<WebhookTokens, SecretsError> {
    let path = config.data_dir.join(SECRETS_FILE);
    let mut file = read(&path)?;
    let mut changed = false;
    let mut resolve = |env: &Option<Secret>,
                       stored: &mut Option<String>|
     -> Result<(Option<Secret>, TokenSource), SecretsError> {
        if let Some(secret) = env {
            let value = secret.expose().trim();
            return Ok((
                (!value.is_empty()).then(|| Secret::new(value)),
                TokenSource::Environment,
            ));
        }
        if let Some(existing) = stored.as_deref().filter(|s| !s.is_empty()) {
            return Ok((Some(Secret::new(existing)), TokenSource::File));
        }
        let fresh = generate_token()?;
        *stored = Some(fresh.clone());
        changed = true;
        Ok((Some(Secret::new(fresh)), TokenSource::Generated))
    };
    let mut rc_stored = file.values.remove(names::RINGCENTRAL_VERIFICATION_TOKEN);
    let mut ro_stored = file.values.remove(names::RINGOTEL_API_TOKEN);
    let (ringcentral, ringcentral_source) =
        resolve(&config.ringcentral_verification_token, &mut rc_stored)?;
    let (ringotel, ringotel_source) = resolve(&config.ringotel_api_token, &mut ro_stored)?;
    if let Some(v) = rc_stored {
        file.values
            .insert(names::RINGCENTRAL_VERIFICATION_TOKEN.into(), v);
    }
    if let Some(v) = ro_stored {
        file.values.insert(names::RINGOTEL_API_TOKEN.into(), v);
    }
    if changed {
        write(&path, &file)?;
    }
    Ok(WebhookTokens {
        ringcentral,
        ringcentral_source,
        ringotel,
        ringotel_source,
        file: path,
    })
}

/// The keyring's service name; the entry's user is `<secret>@<data dir>`, so two data
/// directories (two dealership desks on one login, or tests) never share a credential.
const KEYRING_SERVICE: &str = "CallPop";

/// The secrets that belong in the OS keyring (typed in by a person; the webhook tokens stay
/// in the file the headless receiver reads).
const KEYRING_SECRETS: &[&str] = &[
    names::RINGCENTRAL_CLIENT_SECRET,
    names::RINGCENTRAL_JWT,
    names::NGROK_AUTHTOKEN,
];

fn keyring_entry(config: &Config, name: &str) -> Result<keyring::Entry, SecretsError> {
    let user = format!("{name}@{}", config.data_dir.display());
    keyring::Entry::new(KEYRING_SERVICE, &user).map_err(|e| SecretsError::Keyring(e.to_string()))
}

/// How long start-up waits for the OS keyring to say whether it is there.
const KEYRING_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a usable OS keyring answers (asked once per process; a Secret Service that is
/// absent or locked means no).
fn keyring_answers() -> bool {
    static ANSWERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWERS.get_or_init(|| {
        // A Secret Service started on demand by D-Bus can take a minute to fail (seen with a
        // locked gnome-keyring); start-up must not wait for it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let probe = keyring::Entry::new(KEYRING_SERVICE, "availability-probe")
                .and_then(|entry| entry.get_password());
            let _ = tx.send(probe);
        });
        match rx.recv_timeout(KEYRING_PROBE_TIMEOUT) {
            Ok(Ok(_) | Err(keyring::Error::NoEntry)) => true,
            Ok(Err(e)) => {
                tracing::info!("no OS keyring ({e}); credentials are kept in the private secrets file");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "the OS keyring did not answer within {} s; credentials are kept in the private secrets file",
                    KEYRING_PROBE_TIMEOUT.as_secs()
                );
                false
            }
        }
    })
}

/// Whether `name` is kept in the OS keyring under this configuration.
fn in_keyring(config: &Config, name: &str) -> bool {
    KEYRING_SECRETS.contains(&name)
        && match config.secret_store {
            SecretStoreChoice::File => false,
            SecretStoreChoice::Keyring => true,
            SecretStoreChoice::Auto => keyring_answers(),
        }
}

/// Where typed-in credentials are kept, as a health part: `(state, detail)`. A file chosen
/// in the configuration is "file"; a file because no keyring answered is "fallback", which the
/// health view flags.
pub fn credential_health(config: &Config) -> (PartState, String) {
    let file = config.data_dir.join(SECRETS_FILE);
    if in_keyring(config, names::RINGCENTRAL_JWT) {
        (
            PartState::Keyring,
            "RingCentral client secret, JWT and ngrok authtoken are kept in the OS keyring".into(),
        )
    } else if config.secret_store == SecretStoreChoice::File {
        (
            PartState::File,
            format!(
                "credentials are kept in {} (readable only by you), as configured",
                file.display()
            ),
        )
    } else {
        (
            PartState::Fallback,
            format!(
                "no OS keyring answered, so credentials are kept in {} (readable only by you); \
                 unlock or install a keyring (GNOME Keyring, KWallet) and restart CallPop to use it",
                file.display()
            ),
        )
    }
}

/// Where credentials are kept under this configuration, for people.
pub fn credential_store(config: &Config) -> &'static str {
    if in_keyring(config, names::RINGCENTRAL_JWT) {
        "the OS keyring"
    } else {
        "a private file in the data folder"
    }
}

/// Reads one stored secret (`None` when it was never set).
pub fn stored(config: &Config, name: &str) -> Result<Option<Secret>, SecretsError> {
    if in_keyring(config, name) {
        match keyring_entry(config, name)?.get_password() {
            Ok(v) if !v.is_empty() => return Ok(Some(Secret::new(v))),
            // Not there: it may predate the keyring, in the file.
            Ok(_) | Err(keyring::Error::NoEntry) => {}
            Err(e) => return Err(SecretsError::Keyring(e.to_string())),
        }
    }
    let file = read(&config.data_dir.join(SECRETS_FILE))?;
    Ok(file
        .values
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.clone())))
}

/// Stores (or with `None`, removes) one secret.
pub fn store(config: &Config, name: &str, value: Option<&str>) -> Result<(), SecretsError> {
    let path = config.data_dir.join(SECRETS_FILE);
    let mut file = read(&path)?;
    let value = value.filter(|v| !v.is_empty());
    if in_keyring(config, name) {
        let entry = keyring_entry(config, name)?;
        let done = match value {
            Some(v) => entry.set_password(v),
            None => match entry.delete_credential() {
                Err(keyring::Error::NoEntry) => Ok(()),
                other => other,
            },
        };
        done.map_err(|e| SecretsError::Keyring(e.to_string()))?;
        // Never leave an older copy behind in the file.
        if file.values.remove(name).is_some() {
            write(&path, &file)?;
        }
        return Ok(());
    }
    match value {
        Some(v) => {
            file.values.insert(name.to_string(), v.to_string());
        }
        None => {
            file.values.remove(name);
        }
    }
    write(&path, &file)
}

/// Fills RingCentral platform credentials the environment did not give from the secret store.
///
/// Stored RingCentral credentials belong to the server they were entered for: with another
/// server configured (one that is not also RingCentral's, `callpop_ringcentral::servers`) they
/// are not used, so editing the server in the config file cannot send them to another host.
pub fn complete_platform_credentials(config: &mut Config) -> Result<(), SecretsError> {
    let from_store = config.ringcentral.client_secret.is_none() || config.ringcentral.jwt.is_none();
    if from_store && credentials_bound_elsewhere(config)? {
        tracing::warn!(
            target: "callpop::security",
            server = %config.ringcentral.server,
            "the stored RingCentral client secret and JWT were entered for another server; \
             they are not sent to this one: enter them again in Settings"
        );
    } else {
        if config.ringcentral.client_secret.is_none() {
            config.ringcentral.client_secret = stored(config, names::RINGCENTRAL_CLIENT_SECRET)?;
        }
        if config.ringcentral.jwt.is_none() {
            config.ringcentral.jwt = stored(config, names::RINGCENTRAL_JWT)?;
        }
    }
    if config.tunnel.ngrok_authtoken.is_none() {
        config.tunnel.ngrok_authtoken = stored(config, names::NGROK_AUTHTOKEN)?;
    }
    Ok(())
}

/// Whether the stored RingCentral credentials were entered for a server they must not be sent
/// from `config`'s. Credentials stored before servers were recorded are bound to the server
/// configured now.
pub fn credentials_bound_elsewhere(config: &Config) -> Result<bool, SecretsError> {
    let path = config.data_dir.join(SECRETS_FILE);
    let file = read(&path)?;
    let server = &config.ringcentral.server;
    match file.values.get(names::RINGCENTRAL_CREDENTIALS_SERVER) {
        Some(bound) => Ok(!callpop_ringcentral::servers::credentials_carry_over(
            bound, server,
        )),
        None => {
            let any_stored = stored(config, names::RINGCENTRAL_CLIENT_SECRET)?.is_some()
                || stored(config, names::RINGCENTRAL_JWT)?.is_some();
            if any_stored {
                bind_credentials(config, server)?;
            }
            Ok(false)
        }
    }
}

/// The server the stored RingCentral credentials were entered for, once recorded.
pub fn bound_server(config: &Config) -> Result<Option<String>, SecretsError> {
    let file = read(&config.data_dir.join(SECRETS_FILE))?;
    Ok(file
        .values
        .get(names::RINGCENTRAL_CREDENTIALS_SERVER)
        .cloned())
}

/// Records that the stored RingCentral credentials belong to `server`.
pub fn bind_credentials(config: &Config, server: &str) -> Result<(), SecretsError> {
    let path = config.data_dir.join(SECRETS_FILE);
    let mut file = read(&path)?;
    let server = server.trim().trim_end_matches('/').to_string();
    if file.values.get(names::RINGCENTRAL_CREDENTIALS_SERVER) == Some(&server) {
        return Ok(());
    }
    file.values
        .insert(names::RINGCENTRAL_CREDENTIALS_SERVER.to_string(), server);
    write(&path, &file)
}

fn read(path: &Path) -> Result<SecretsFile, SecretsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SecretsFile::default()),
        Err(source) => {
            return Err(SecretsError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_str(&text).map_err(|e| SecretsError::Damaged {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes the file atomically with owner-only permissions (the folder synced too, so the
/// rename survives a power cut).
fn write(path: &Path, file: &SecretsFile) -> Result<(), SecretsError> {
    let text = serde_json::to_string_pretty(file).map_err(|e| SecretsError::Damaged {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    callpop_files::write_atomically(path, text.as_bytes(), callpop_files::Access::Private).map_err(
        |source| SecretsError::Io {
            path: path.to_path_buf(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config(dir: &Path, env: &[(&str, &str)]) -> Config {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let overrides = Overrides {
            data_dir: Some(dir.to_path_buf()),
            config_file: Some(dir.join("absent-is-fine.toml")),
            ..Default::default()
        };
        std::fs::write(dir.join("absent-is-fine.toml"), "").expect("write");
        Config::load_with(&overrides, &move |k| {
            env.iter()
                .find(|(ek, _)| ek == k)
                .map(|(_, v)| v.clone())
                // Never a developer's real keyring (tests/keyring.rs covers the keyring).
                .or_else(|| (k == "CALLPOP_SECRET_STORE").then(|| "file".to_string()))
        })
        .expect("config")
    }

    #[test]
    fn tokens_are_generated_once_saved_privately_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = webhook_tokens(&config(dir.path(), &[])).expect("first");
        assert_eq!(first.ringcentral_source, TokenSource::Generated);
        let token = first.ringcentral.clone().expect("token");
        assert_eq!(token.expose().len(), 32);
        let second = webhook_tokens(&config(dir.path(), &[])).expect("second");
        assert_eq!(second.ringcentral_source, TokenSource::File);
        assert_eq!(second.ringcentral, Some(token));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.file)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn environment_wins_and_empty_disables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = webhook_tokens(&config(
            dir.path(),
            &[
                ("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", "from-env"),
                ("CALLPOP_RINGOTEL_API_TOKEN", ""),
            ],
        ))
        .expect("tokens");
        assert_eq!(t.ringcentral.as_ref().map(Secret::expose), Some("from-env"));
        assert_eq!(t.ringotel, None);
        assert_eq!(t.ringotel_source, TokenSource::Environment);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_silent_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(SECRETS_FILE), "{not json").expect("write");
        let err = webhook_tokens(&config(dir.path(), &[])).expect_err("damaged");
        assert!(matches!(err, SecretsError::Damaged { .. }));
    }
}
