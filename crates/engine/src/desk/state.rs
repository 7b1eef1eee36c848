//! What makes a data dir a desk's: `desk.json` (the hub's address, its pinned key, the names)
//! written by joining, and the desk's token in the secret store. Not in the config file: a
//! config copied between PCs must not turn a hub into a desk or carry a desk's pairing.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use callpop_hub::Fingerprint;

/// File name of a desk's pairing inside its data dir.
pub const DESK_FILE: &str = "desk.json";

/// The secret store's name for the desk's token.
pub const TOKEN_SECRET: &str = "hub_desk_token";

/// A desk's pairing with its hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskState {
    /// Where the hub was found (`host:port`); updated when mDNS finds it elsewhere.
    pub hub_address: String,
    /// The hub's key, pinned at pairing (hex SHA-256 of its public key).
    pub hub_fingerprint: String,
    /// The hub's name.
    pub hub_name: String,
    /// This desk's name at the hub.
    pub desk_name: String,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
}

/// Why the pairing file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeskStateError {
    /// Reading or writing failed.
    #[error("cannot use the desk's pairing file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a pairing file CallPop wrote.
    #[error("the desk's pairing file {path} is damaged ({detail}): join the hub again")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

impl DeskState {
    /// The pinned key.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        Fingerprint::parse(&self.hub_fingerprint)
    }

    /// The pairing of the desk whose data dir is `dir`, if it is one.
    pub fn load(dir: &Path) -> Result<Option<DeskState>, DeskStateError> {
        let path = dir.join(DESK_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DeskStateError::Io { path, source }),
        };
        let state: DeskState =
            serde_json::from_slice(&text).map_err(|e| DeskStateError::Damaged {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if state.fingerprint().is_none() {
            return Err(DeskStateError::Damaged {
                path,
                detail: "the hub's fingerprint is not 64 hex digits".into(),
            });
        }
        Ok(Some(state))
    }

    /// Writes the pairing (private, replaced atomically).
    pub fn save(&self, dir: &Path) -> Result<(), DeskStateError> {
        let path = dir.join(DESK_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| DeskStateError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        callpop_files::write_atomically(&path, &json, callpop_files::Access::Private)
            .map_err(|source| DeskStateError::Io { path, source })
    }

    /// Forgets the pairing: the data dir is a standalone desk's again.
    pub fn remove(dir: &Path) -> Result<(), DeskStateError> {
        let path = dir.join(DESK_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DeskStateError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairing_reads_back_and_a_damaged_one_says_to_join_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(DeskState::load(dir.path()).expect("none"), None);
        let state = DeskState {
            hub_address: "192.168.1.10:8788".into(),
            hub_fingerprint: "ab".repeat(32),
            hub_name: "Reception".into(),
            desk_name: "Sales 3".into(),
            joined_at: Utc::now(),
        };
        state.save(dir.path()).expect("save");
        assert_eq!(DeskState::load(dir.path()).expect("load"), Some(state));
        std::fs::write(dir.path().join(DESK_FILE), "{").expect("write");
        let err = DeskState::load(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains("join the hub again"), "{err}");
        DeskState::remove(dir.path()).expect("remove");
        assert_eq!(DeskState::load(dir.path()).expect("gone"), None);
    }
}
