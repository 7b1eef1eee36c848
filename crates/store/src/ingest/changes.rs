//! Recording changes in the change feed (schema 9): every write of a call row, from any writer,
//! gives the call the next sequence number inside the same transaction.

use rusqlite::{params, Connection};

use crate::{to_ms, StoreError};
use callpop_core::model::{Call, Provider};

/// The feed's kind for call rows.
pub(crate) const CALL: &str = "call";

/// A call's key in the feed: `provider/call_key`. A provider's name has no `/`, so the first
/// one splits it again.
pub(crate) fn call_key(provider: Provider, call_key: &str) -> String {
    format!("{}/{call_key}", provider.as_str())
}

/// The call row `id` now holds `call`.
pub(crate) fn note_call(conn: &Connection, id: i64, call: &Call) -> Result<(), StoreError> {
    note(conn, &call_key(call.provider, &call.call_key), Some(id))
}

/// The call was deleted: a tombstone takes its place in the feed.
pub(crate) fn note_call_removed(
    conn: &Connection,
    provider: Provider,
    key: &str,
) -> Result<(), StoreError> {
    note(conn, &call_key(provider, key), None)
}

fn note(conn: &Connection, key: &str, record_id: Option<i64>) -> Result<(), StoreError> {
    // AUTOINCREMENT numbers the row above every number ever handed out: a sequence is never
    // reused, even after the newest row was compacted away or a tombstone pruned. The
    // record's earlier rows stay until this one is on disk (`feed::compact`).
    conn.prepare_cached("INSERT INTO changes (kind, key, record_id, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![CALL, key, record_id, to_ms(chrono::Utc::now())])?;
    Ok(())
}
