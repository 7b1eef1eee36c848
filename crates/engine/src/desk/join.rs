//! Joining a hub (`callpop desk join`, the window's "Join a hub") and leaving it.

use chrono::Utc;

use callpop_core::Secret;
use callpop_hub::pairing::{Code, DeskPairing};
use callpop_hub::wire::{routes, PairChallenge, PairDone, PairFinish, PairStart};

use super::client::{HubClient, LinkError};
use super::state::{DeskState, DeskStateError, TOKEN_SECRET};
use crate::config::Config;
use crate::secrets::SecretsError;

/// Why joining or leaving could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Talking to the hub failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The pairing could not be kept.
    #[error(transparent)]
    State(#[from] DeskStateError),
    /// The token could not be kept.
    #[error("cannot keep the desk's token: {0}")]
    Secrets(#[from] SecretsError),
    /// The history could not be prepared for the new hub.
    #[error(transparent)]
    Store(#[from] callpop_store::StoreError),
}

/// A finished pairing, not yet saved.
#[derive(Debug)]
pub struct Joined {
    /// What the data dir will hold.
    pub state: DeskState,
    /// The desk's token.
    pub token: Secret,
}

fn unhex(text: &str) -> Result<Vec<u8>, LinkError> {
    hex::decode(text).map_err(|_| LinkError::Garbled("a pairing message that is not hex".into()))
}

/// Pairs with the hub at `address` using `code` (scheme: `callpop_hub::pairing`).
pub async fn pair(address: &str, code: &str, desk_name: &str) -> Result<Joined, LinkError> {
    let code = Code::parse(code)?;
    let client = HubClient::first_sight(address)?;
    let (desk, message) = DeskPairing::start(&code);
    let challenge: PairChallenge = client
        .post(
            routes::PAIR_START,
            &PairStart {
                code_id: code.id(),
                desk_name: desk_name.to_string(),
                message: hex::encode(message),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
        )
        .await?;
    let seen = client
        .seen()
        .ok_or_else(|| LinkError::Garbled("the hub showed no key".into()))?;
    let proof = desk.finish(
        seen,
        &challenge.desk_name,
        &unhex(&challenge.message)?,
        &unhex(&challenge.proof)?,
    )?;
    let done: PairDone = client
        .post(
            routes::PAIR_FINISH,
            &PairFinish {
                attempt: challenge.attempt,
                proof: hex::encode(proof),
            },
        )
        .await?;
    Ok(Joined {
        state: DeskState {
            hub_address: client.address().trim().to_string(),
            hub_fingerprint: seen.to_string(),
            hub_name: done.hub_name,
            // The hub may have numbered the name to keep it unique ("Sales (2)"); it comes
            // inside the channel whose key the proofs just checked.
            desk_name: done.desk_name,
            joined_at: Utc::now(),
        },
        token: Secret::new(done.token),
    })
}

/// Keeps a pairing in the data dir: the token first, so a pairing file never names a hub
/// without the token to reach it.
pub fn save(config: &Config, joined: &Joined) -> Result<(), JoinError> {
    forget_link(config)?;
    crate::secrets::store(config, TOKEN_SECRET, Some(joined.token.expose()))?;
    joined.state.save(&config.data_dir)?;
    Ok(())
}

/// A new hub starts from nothing: no feed position of another hub, and the rows an earlier
/// hub sent become the desk's own history.
fn forget_link(config: &Config) -> Result<(), JoinError> {
    let mut store = callpop_store::Store::open(
        &config.db_path(),
        callpop_store::StoreOptions::new(config.default_country),
    )?;
    store.forget_hub_link()?;
    Ok(())
}

/// The desk's token, if it has one.
pub fn token(config: &Config) -> Result<Option<Secret>, SecretsError> {
    crate::secrets::stored(config, TOKEN_SECRET)
}

/// Leaves the hub: tells it (when it answers), then forgets the pairing and the token. The
/// calls the desk copied stay in its history.
pub async fn leave(config: &Config) -> Result<Option<LinkError>, JoinError> {
    let told = match (DeskState::load(&config.data_dir)?, token(config)?) {
        (Some(state), Some(token)) => match state.fingerprint() {
            Some(fp) => match HubClient::pinned(&state.hub_address, fp, token) {
                Ok(client) => client.leave().await.err(),
                Err(e) => Some(e),
            },
            None => None,
        },
        _ => None,
    };
    forget_link(config)?;
    DeskState::remove(&config.data_dir)?;
    crate::secrets::store(config, TOKEN_SECRET, None)?;
    Ok(told)
}
