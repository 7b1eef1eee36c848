//! A desk's replica of its hub's calls: rows applied from the hub's change feed, pruned past
//! the desk's window, swept after a resynchronization. Only rows the hub sent are ever pruned
//! or swept; the desk's own earlier history stays (schema 9, `replica_calls`).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{delete_call, insert_call, load_call, update_call};
use super::{CallCache, CallChange};
use crate::{to_ms, StoreError, StoreOptions};
use callpop_core::model::{Call, Origin, Provider};

/// One change from the hub, as the desk applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaChange {
    /// The call's row as the hub holds it now (inserted or replaced whole).
    Upsert(Box<Call>),
    /// The hub deleted the call.
    Remove {
        /// The call's phone system.
        provider: Provider,
        /// The provider's key of the call.
        call_key: String,
    },
}

/// Changes from the hub applied in one transaction, with the feed position they bring the desk
/// to: the rows and the cursor commit together, so a restart neither skips nor repeats one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaBatch {
    /// The changes, in the hub's order.
    pub changes: Vec<ReplicaChange>,
    /// The hub's sequence number the desk has applied up to (stored under [`HUB_CURSOR`]).
    pub cursor: Option<i64>,
    /// The desk's resynchronization round the rows belong to (see [`sweep`]).
    pub generation: i64,
    /// `Hub` while live, `HubCatchUp` while catching up: decides, downstream, whether a change
    /// may pop up.
    pub origin: Origin,
}

/// `engine_state` key of the last hub sequence number a desk applied. Every key of a desk's
/// link to its hub starts with `hub.`.
pub const HUB_CURSOR: &str = "hub.cursor";

/// Applies a batch; the calls that changed (a row that already held the hub's values is no
/// change, so a change applied twice pops nothing up twice).
pub(crate) fn apply(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    batch: &ReplicaBatch,
) -> Result<Vec<CallChange>, StoreError> {
    let mut changes = Vec::new();
    for change in &batch.changes {
        let changed = match change {
            ReplicaChange::Upsert(call) => upsert(conn, opts, cache, call, batch.generation)?,
            ReplicaChange::Remove { provider, call_key } => {
                remove(conn, cache, *provider, call_key)?
            }
        };
        changes.extend(changed);
    }
    if let Some(cursor) = batch.cursor {
        crate::put_state(conn, HUB_CURSOR, &cursor.to_string())?;
    }
    Ok(changes)
}

fn row_id(
    conn: &Connection,
    provider: Provider,
    call_key: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM calls WHERE provider = ?1 AND call_key = ?2")?
        .query_row(params![provider.as_str(), call_key], |r| r.get(0))
        .optional()?)
}

fn upsert(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    call: &Call,
    generation: i64,
) -> Result<Option<CallChange>, StoreError> {
    let (id, before) = match row_id(conn, call.provider, &call.call_key)? {
        Some(id) => {
            let before = load_call(conn, id)?;
            if before.as_ref() != Some(call) {
                update_call(conn, opts, id, call, before.as_ref())?;
            }
            // The desk's own events no longer make this row: the hub's copy does.
            cache.forget(id);
            (id, before)
        }
        None => (insert_call(conn, opts, call)?, None),
    };
    // A row the desk had before the hub sent it is the desk's own history: `local` keeps it
    // from being pruned or swept.
    conn.prepare_cached(
        "INSERT INTO replica_calls (call_id, started_at, local, generation)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (call_id) DO UPDATE SET started_at = excluded.started_at,
                                             generation = excluded.generation",
    )?
    .execute(params![
        id,
        to_ms(call.started_at),
        before.is_some() as i64,
        generation
    ])?;
    if before.as_ref() == Some(call) {
        return Ok(None);
    }
    Ok(Some(CallChange {
        id,
        before,
        after: Some(call.clone()),
    }))
}

fn remove(
    conn: &Connection,
    cache: &mut CallCache,
    provider: Provider,
    call_key: &str,
) -> Result<Option<CallChange>, StoreError> {
    let Some(id) = row_id(conn, provider, call_key)? else {
        return Ok(None);
    };
    let replica: Option<i64> = conn
        .prepare_cached("SELECT local FROM replica_calls WHERE call_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    // The desk's own row (never sent by the hub, or had before it was) keeps its own events.
    if replica != Some(0) {
        return Ok(None);
    }
    let before = load_call(conn, id)?;
    delete_call(conn, id)?;
    cache.forget(id);
    Ok(Some(CallChange {
        id,
        before,
        after: None,
    }))
}

/// Deletes the hub's rows of calls that started before `before` (the desk's window).
pub(crate) fn prune(
    conn: &Connection,
    cache: &mut CallCache,
    before: DateTime<Utc>,
) -> Result<Vec<CallChange>, StoreError> {
    delete_where(
        conn,
        cache,
        "SELECT call_id FROM replica_calls WHERE local = 0 AND started_at < ?1",
        params![to_ms(before)],
    )
}

/// After a resynchronization of round `generation` that covered calls since `since`: deletes
/// the hub's rows in that range the round did not send (the hub deleted them while the desk
/// was away for longer than it keeps tombstones).
pub(crate) fn sweep(
    conn: &Connection,
    cache: &mut CallCache,
    generation: i64,
    since: DateTime<Utc>,
) -> Result<Vec<CallChange>, StoreError> {
    delete_where(
        conn,
        cache,
        "SELECT call_id FROM replica_calls
         WHERE local = 0 AND generation < ?1 AND started_at >= ?2",
        params![generation, to_ms(since)],
    )
}

fn delete_where(
    conn: &Connection,
    cache: &mut CallCache,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<CallChange>, StoreError> {
    let ids: Vec<i64> = conn
        .prepare(sql)?
        .query_map(args, |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut changes = Vec::with_capacity(ids.len());
    for id in ids {
        let before = load_call(conn, id)?;
        delete_call(conn, id)?;
        cache.forget(id);
        changes.push(CallChange {
            id,
            before,
            after: None,
        });
    }
    Ok(changes)
}
