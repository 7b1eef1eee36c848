//! Issuing a pairing code for a new desk ("Add a desk", `callpop hub pair`): one function for
//! the window and the command line, run beside the hub or without it (the code waits in the
//! history for the hub to see it).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};

use callpop_hub::pairing::{Code, CODE_LIFETIME};
use callpop_hub::{Fingerprint, HubIdentity};
use callpop_store::hub::PendingCode;
use callpop_store::{Store, StoreOptions};

use crate::config::Config;

/// A code ready to be typed on the new desk.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The code.
    pub code: String,
    /// The name the desk will get, if one was given.
    pub desk_name: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The hub's key.
    pub fingerprint: Fingerprint,
    /// Where desks reach the hub, the likeliest first.
    pub addresses: Vec<SocketAddr>,
}

/// Why no code could be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The hub's key could not be loaded or made.
    #[error(transparent)]
    Identity(#[from] callpop_hub::HubError),
    /// The history could not be written.
    #[error(transparent)]
    Store(#[from] callpop_store::StoreError),
    /// No random numbers.
    #[error("no random numbers from the operating system: {0}")]
    Random(getrandom::Error),
    /// Every short name is taken by a pending code.
    #[error("too many pairing codes are pending: wait ten minutes for them to expire")]
    TooMany,
}

/// Where desks reach the hub on this data dir: where the running hub listens (it may have been
/// started with another address), else where the configuration says.
pub fn hub_addresses(config: &Config) -> Vec<SocketAddr> {
    let running = crate::instance::running(&config.data_dir).and_then(|h| h.hub_listen);
    super::desk_addresses(running.unwrap_or(config.hub.listen))
}

/// Issues a code (blocking: it writes the history).
pub fn issue(config: &Config, desk_name: Option<&str>) -> Result<Issued, IssueError> {
    let identity = HubIdentity::load_or_create(&config.data_dir)?;
    let mut store = Store::open(&config.db_path(), StoreOptions::new(config.default_country))?;
    let desk_name = desk_name
        .map(|n| callpop_core::text::sanitize(n, 60).trim().to_string())
        .filter(|n| !n.is_empty());
    let now = Utc::now();
    // Two characters name a pending code; a clash with another live one draws again.
    for _ in 0..20 {
        let code = Code::random().map_err(IssueError::Random)?;
        let pending = PendingCode {
            id: code.id(),
            code: code.to_string(),
            desk_name: desk_name.clone(),
            expires_at: now + CODE_LIFETIME,
        };
        if store.hub_issue_code(&pending, now)? {
            return Ok(Issued {
                code: pending.code,
                desk_name,
                expires_at: pending.expires_at,
                fingerprint: identity.fingerprint(),
                addresses: hub_addresses(config),
            });
        }
    }
    Err(IssueError::TooMany)
}
