//! Authenticated bodies that could not be read: kept for inspection and a later replay.

use chrono::Utc;
use rusqlite::{params, Connection};

use super::*;
use crate::{to_ms, StoreError};

/// Keeps an unusable authenticated body; the same body again only bumps its counter.
pub(crate) fn quarantine(conn: &Connection, entry: &QuarantineEntry) -> Result<i64, StoreError> {
    let id: i64 = conn.query_row(
        "INSERT INTO quarantine
            (provider, received_at, last_received_at, reason, body_sha256, headers, body)
         VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (provider, body_sha256) WHERE resolved_at IS NULL
         DO UPDATE SET occurrences = occurrences + 1,
                       last_received_at = excluded.received_at,
                       reason = excluded.reason
         RETURNING id",
        params![
            entry.provider.as_str(),
            to_ms(entry.received_at),
            entry.reason,
            entry.body_sha256,
            headers_json(&entry.headers),
            entry.body,
        ],
        |r| r.get(0),
    )?;
    Ok(id)
}

/// Marks a quarantined body as resolved by the raw event it became.
pub(crate) fn resolve_quarantine(
    conn: &Connection,
    quarantine_id: i64,
    raw_event_id: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE quarantine SET resolved_at = ?2, resolved_raw_event_id = ?3 WHERE id = ?1",
        params![quarantine_id, to_ms(Utc::now()), raw_event_id],
    )?;
    Ok(())
}

/// Records a new reason for a body that still cannot be used.
pub(crate) fn requarantine(
    conn: &Connection,
    quarantine_id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE quarantine SET reason = ?2 WHERE id = ?1",
        params![quarantine_id, reason],
    )?;
    Ok(())
}
