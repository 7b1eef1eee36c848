//! Running stored deliveries through today's parsers again, after an upgrade fixed one.
//! Replaying is idempotent: a raw event's old reading is replaced, never added to.

use callpop_core::model::{Delivery, Origin};
use callpop_core::numbers::Country;
use callpop_core::reparse::{reparse, reparse_stored};
use callpop_core::wire::ParseError;
use callpop_store::{CallChange, IngestOutcome, RawEventRecord, Store, StoreError};

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No raw event has this id.
    #[error("no stored delivery with id {0}")]
    NotFound(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What replaying one quarantined body did.
#[derive(Debug)]
pub enum QuarantineReplay {
    /// It parses now and was stored (or was already stored) as a delivery.
    Resolved {
        /// Quarantine row id.
        quarantine_id: i64,
        /// What storing it did.
        outcome: IngestOutcome,
    },
    /// It still cannot be used.
    StillInvalid {
        /// Quarantine row id.
        quarantine_id: i64,
        /// Today's reason.
        reason: String,
    },
}

/// Replays one stored delivery; returns the calls it changed.
pub fn replay_raw_event(
    store: &mut Store,
    raw_event_id: i64,
    country: &Country,
) -> Result<Result<Vec<CallChange>, ParseError>, ReplayError> {
    let raw: RawEventRecord = store
        .raw_event(raw_event_id)?
        .ok_or(ReplayError::NotFound(raw_event_id))?;
    let stored = callpop_core::reparse::StoredBody {
        provider: raw.provider,
        kind: &raw.kind,
        body: &raw.body,
        body_sha256: &raw.body_sha256,
        received_at: raw.received_at,
    };
    let parsed = match reparse_stored(&stored, country) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(store.replace_payload(
        raw_event_id,
        &parsed.kind,
        &parsed.payload,
    )?))
}

/// Replays every open quarantine entry.
pub fn replay_quarantine(
    store: &mut Store,
    country: &Country,
) -> Result<Vec<QuarantineReplay>, ReplayError> {
    let mut out = Vec::new();
    for q in store.quarantined(true, 0)? {
        match reparse(q.provider, &q.body, &q.body_sha256, q.received_at, country) {
            Ok(parsed) => {
                let headers = callpop_core::wire::stored_headers(&q.headers);
                let delivery = Delivery {
                    parsed,
                    origin: Origin::Replay,
                    received_at: q.received_at,
                    headers,
                    body: q.body.clone(),
                    body_sha256: q.body_sha256.clone(),
                };
                let outcome = store.resolve_quarantined(q.id, &delivery)?;
                out.push(QuarantineReplay::Resolved {
                    quarantine_id: q.id,
                    outcome,
                });
            }
            Err(e) => {
                store.requarantine(q.id, &e.to_string())?;
                out.push(QuarantineReplay::StillInvalid {
                    quarantine_id: q.id,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}
