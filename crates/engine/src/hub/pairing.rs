//! The desk API's pairing routes: a desk proves it knows a code issued here, the hub proves the
//! same and that it holds the key the desk saw, and the desk gets its token (scheme and threat
//! model: `callpop_hub::pairing`, docs/HUB.md). Attempts are limited per code (in the history,
//! so the CLI and the hub agree), per client address and in all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::Utc;

use callpop_hub::pairing::{self, Code, PairingError, ATTEMPTS_PER_CODE};
use callpop_hub::wire::{PairChallenge, PairDone, PairFinish, PairStart};
use callpop_store::hub::CodeCheck;

use super::api::{error_reply, reply, ApiError, Shared};
use super::directory::token_hash;
use crate::receiver::PeerAddr;

/// How long a desk has between the two pairing steps.
const FINISH_WITHIN: Duration = Duration::from_secs(60);

/// Pairing attempts allowed per client address, and in all, per [`WINDOW`].
const PER_ADDRESS: u32 = 10;
const IN_ALL: u32 = 30;
const WINDOW: Duration = Duration::from_secs(60);

/// Longest desk name kept.
const MAX_NAME: usize = 60;

/// A first step answered, waiting for the desk's proof.
struct Waiting {
    code_id: String,
    desk_name: String,
    expected: Vec<u8>,
    at: Instant,
}

/// The pairing routes' own state.
#[derive(Default)]
pub struct Pairings {
    waiting: Mutex<HashMap<String, Waiting>>,
    limiter: Mutex<Limiter>,
}

#[derive(Default)]
struct Limiter {
    window_start: Option<Instant>,
    in_all: u32,
    per_address: HashMap<IpAddr, u32>,
}

impl Limiter {
    /// Counts an attempt from `ip`; false when over a limit.
    fn admit(&mut self, ip: IpAddr) -> bool {
        let now = Instant::now();
        if self
            .window_start
            .is_none_or(|s| now.duration_since(s) >= WINDOW)
        {
            self.window_start = Some(now);
            self.in_all = 0;
            self.per_address.clear();
        }
        let mine = self.per_address.entry(ip).or_default();
        if *mine >= PER_ADDRESS || self.in_all >= IN_ALL {
            return false;
        }
        *mine += 1;
        self.in_all += 1;
        true
    }
}

fn code_error(check: CodeCheck) -> PairingError {
    match check {
        CodeCheck::Usable(_) | CodeCheck::Unknown => PairingError::Unknown,
        CodeCheck::Expired => PairingError::Expired,
        CodeCheck::Used => PairingError::Used,
        CodeCheck::TooManyAttempts => PairingError::TooManyAttempts,
    }
}

fn pairing_error(e: PairingError) -> ApiError {
    let status = match e {
        PairingError::Malformed | PairingError::BadMessage(_) => 400,
        PairingError::Expired | PairingError::Used | PairingError::TooManyAttempts => 410,
        PairingError::Unknown => 404,
        PairingError::WrongCode => 401,
    };
    ApiError::new(status, e.code(), e.to_string())
}

fn clean_name(name: &str) -> Result<String, ApiError> {
    let name = callpop_core::text::sanitize(name, MAX_NAME)
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::new(
            400,
            "bad_name",
            "the desk needs a name (for example \"Sales 3\")",
        ));
    }
    Ok(name)
}

/// `POST /v1/pair/start`.
pub async fn start(
    State(shared): State<Shared>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    Json(start): Json<PairStart>,
) -> Response {
    match start_inner(&shared, peer.ip(), start).await {
        Ok(challenge) => reply(200, &challenge),
        Err(e) => error_reply(e),
    }
}

async fn start_inner(
    shared: &Shared,
    ip: IpAddr,
    start: PairStart,
) -> Result<PairChallenge, ApiError> {
    let allowed = shared
        .pairings
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(ip);
    if !allowed {
        tracing::warn!(target: "callpop::security", %ip, "pairing attempts over the limit");
        return Err(ApiError::new(
            429,
            "too_many_attempts",
            "too many pairing attempts: wait a minute and try again",
        ));
    }
    let desk_name = clean_name(&start.desk_name)?;
    let message = hex::decode(&start.message)
        .map_err(|_| pairing_error(PairingError::BadMessage("not hex".into())))?;
    let check = shared
        .writer
        .hub_check_code(&start.code_id, Utc::now(), ATTEMPTS_PER_CODE)
        .await
        .map_err(ApiError::store)?;
    let pending = match check {
        CodeCheck::Usable(p) => p,
        other => {
            tracing::info!(code = %start.code_id, ?other, "a pairing attempt with an unusable code");
            return Err(pairing_error(code_error(other)));
        }
    };
    let code = Code::parse(&pending.code).map_err(pairing_error)?;
    // The name the IT person gave when making the code wins over the desk's own.
    let desk_name = pending.desk_name.clone().unwrap_or(desk_name);
    let answer = pairing::hub_answer(&code, shared.fingerprint, &desk_name, &message)
        .map_err(pairing_error)?;
    let attempt = hex::encode(random_bytes::<16>().map_err(ApiError::internal)?);
    let mut waiting = shared
        .pairings
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    waiting.retain(|_, w| w.at.elapsed() < FINISH_WITHIN);
    waiting.insert(
        attempt.clone(),
        Waiting {
            code_id: pending.id,
            desk_name: desk_name.clone(),
            expected: answer.expected_desk_proof,
            at: Instant::now(),
        },
    );
    Ok(PairChallenge {
        attempt,
        message: hex::encode(answer.message),
        proof: hex::encode(answer.proof),
        hub_name: shared.name.clone(),
        desk_name,
    })
}

/// `POST /v1/pair/finish`.
pub async fn finish(State(shared): State<Shared>, Json(finish): Json<PairFinish>) -> Response {
    match finish_inner(&shared, finish).await {
        Ok(done) => reply(200, &done),
        Err(e) => error_reply(e),
    }
}

async fn finish_inner(shared: &Shared, finish: PairFinish) -> Result<PairDone, ApiError> {
    let waiting = shared
        .pairings
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&finish.attempt);
    let Some(waiting) = waiting.filter(|w| w.at.elapsed() < FINISH_WITHIN) else {
        return Err(ApiError::new(
            410,
            "attempt_expired",
            "this pairing attempt is over: start again with the code",
        ));
    };
    let proof = hex::decode(&finish.proof).unwrap_or_default();
    if !pairing::desk_proof_matches(&waiting.expected, &proof) {
        tracing::warn!(target: "callpop::security", desk = %waiting.desk_name, "a pairing proof did not match");
        return Err(pairing_error(PairingError::WrongCode));
    }
    let token = base64_url(&random_bytes::<32>().map_err(ApiError::internal)?);
    let hash = token_hash(&token);
    let added = shared
        .writer
        .hub_add_desk(&waiting.code_id, &waiting.desk_name, &hash, Utc::now())
        .await
        .map_err(ApiError::store)?;
    let desk_name = added.map_err(|check| pairing_error(code_error(check)))?;
    shared.directory.add(hash, desk_name.clone());
    tracing::info!(desk = %desk_name, "a desk paired with this hub");
    Ok(PairDone {
        token,
        desk_name,
        hub_name: shared.name.clone(),
    })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// URL-safe base64 without padding: a token that survives a header and a config file.
fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_per_address_and_in_all() {
        let mut limiter = Limiter::default();
        let a: IpAddr = [192, 168, 1, 10].into();
        for _ in 0..PER_ADDRESS {
            assert!(limiter.admit(a));
        }
        assert!(!limiter.admit(a), "this address is over its share");
        for n in 0..(IN_ALL - PER_ADDRESS) {
            assert!(limiter.admit([10, 0, 0, n as u8].into()));
        }
        assert!(
            !limiter.admit([10, 0, 1, 1].into()),
            "over the limit in all"
        );
    }

    #[test]
    fn tokens_are_url_safe_and_as_long_as_their_bytes_say() {
        assert_eq!(base64_url(b"\xff\xff\xff"), "____");
        assert_eq!(base64_url(b"Ma"), "TWE");
        assert_eq!(base64_url(&[0u8; 32]).len(), 43);
    }
}
