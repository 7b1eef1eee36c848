//! Call rows: inserting, updating only the columns that changed, deleting, reading back.

use chrono::{DateTime, Utc};
use rusqlite::types::ToSqlOutput;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::{to_ms, StoreError, StoreOptions};
use callpop_core::model::{Call, Provider};

pub(crate) fn load_call(conn: &Connection, id: i64) -> Result<Option<Call>, StoreError> {
    let sql = format!(
        "SELECT {} FROM calls WHERE id = ?1",
        crate::query::CALL_COLUMNS
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row([id], crate::query::call_from_row)
        .optional()?;
    Ok(row.transpose()?.map(|r| r.call))
}

/// One `calls` column of a call (index into [`CALL_COLUMN_NAMES`]), borrowed where it can be:
/// an update compares every column of the old and new call and binds only the changed ones.
pub(super) fn call_column(call: &Call, column: usize) -> Result<ToSqlOutput<'_>, StoreError> {
    use rusqlite::types::{Value, ValueRef};
    fn text(s: &str) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
    }
    fn opt_text(s: Option<&str>) -> ToSqlOutput<'_> {
        s.map_or(ToSqlOutput::Borrowed(ValueRef::Null), text)
    }
    fn int(i: i64) -> ToSqlOutput<'static> {
        ToSqlOutput::Owned(Value::Integer(i))
    }
    fn opt_int(i: Option<i64>) -> ToSqlOutput<'static> {
        i.map_or(ToSqlOutput::Borrowed(ValueRef::Null), int)
    }
    let vm = call.voicemail.as_ref();
    Ok(match column {
        0 => text(call.provider.as_str()),
        1 => text(&call.call_key),
        2 => text(call.direction.as_str()),
        3 => text(call.state.as_str()),
        4 => opt_text(call.result.map(|r| r.as_str())),
        5 => opt_text(call.from.raw.as_deref()),
        6 => opt_text(call.from.e164.as_deref()),
        7 => opt_text(call.from.name.as_deref()),
        8 => opt_text(call.to.raw.as_deref()),
        9 => opt_text(call.to.e164.as_deref()),
        10 => opt_text(call.to.name.as_deref()),
        EXTENSIONS_COLUMN => ToSqlOutput::Owned(Value::Text(
            serde_json::to_string(&call.extensions)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )),
        12 => int(to_ms(call.started_at)),
        13 => opt_int(call.answered_at.map(to_ms)),
        14 => opt_int(call.ended_at.map(to_ms)),
        15 => int(call.ring_seconds),
        16 => int(call.talk_seconds),
        17 => opt_text(call.recording_url.as_deref()),
        18 => opt_text(vm.and_then(|v| v.message_id.as_deref())),
        19 => opt_int(vm.and_then(|v| v.seconds)),
        20 => opt_text(vm.and_then(|v| v.url.as_deref())),
        21 => int(call.event_count),
        22 => int(to_ms(call.last_event_at)),
        UPDATED_AT_COLUMN => int(to_ms(Utc::now())),
        _ => return Err(StoreError::Corrupt(format!("no calls column {column}"))),
    })
}

/// Whether a column differs between two versions of a call; `updated_at` always does.
pub(super) fn column_changed(old: &Call, new: &Call, column: usize) -> Result<bool, StoreError> {
    Ok(match column {
        // Compared as data: serializing both lists to compare the text cost more than the
        // rest of the row together.
        EXTENSIONS_COLUMN => old.extensions != new.extensions,
        UPDATED_AT_COLUMN => true,
        _ => call_column(old, column)? != call_column(new, column)?,
    })
}

pub(super) fn insert_call(
    conn: &Connection,
    opts: &StoreOptions,
    call: &Call,
) -> Result<i64, StoreError> {
    let mut values = (0..CALL_COLUMN_NAMES.len())
        .map(|column| call_column(call, column))
        .collect::<Result<Vec<_>, _>>()?;
    let sort_key = free_sort_key(conn, call.started_at)?;
    values.push(ToSqlOutput::Owned(rusqlite::types::Value::Integer(
        sort_key,
    )));
    conn.prepare_cached(
        "INSERT INTO calls (provider, call_key, direction, state, result,
            from_raw, from_e164, from_name, to_raw, to_e164, to_name, extensions,
            started_at, answered_at, ended_at, ring_seconds, talk_seconds, recording_url,
            voicemail_id, voicemail_seconds, voicemail_url, event_count, last_event_at, updated_at,
            sort_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?
    .execute(rusqlite::params_from_iter(values))?;
    let id = conn.last_insert_rowid();
    super::changes::note_call(conn, id, call)?;
    index_call(
        conn,
        id,
        None,
        sort_key,
        &search_text(call, opts),
        &extension_keys(call),
    )?;
    // A new call is usually live, its rows' NULL already right.
    if extension_outcomes(call).iter().any(|(_, o)| o.is_some()) {
        set_outcomes(conn, id, call)?;
    }
    Ok(id)
}

/// The next unused sort key for a call starting at `started_at`: calls starting in the same
/// millisecond are listed in arrival order.
pub(super) fn free_sort_key(
    conn: &Connection,
    started_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let mut floor = crate::sort_key_floor(started_at);
    // Only a flood of calls in one instant (a hostile sender) fills this many slots; the
    // probe stays bounded and the rest go to the top of the list rather than being refused.
    for _ in 0..64 {
        let top: Option<i64> = conn
            .prepare_cached(
                "SELECT max(sort_key) FROM calls WHERE sort_key >= ?1 AND sort_key < ?2",
            )?
            .query_row(params![floor, floor + crate::SORT_TIEBREAK], |r| r.get(0))?;
        match top {
            None => return Ok(floor),
            Some(k) if k + 1 < floor + crate::SORT_TIEBREAK => return Ok(k + 1),
            Some(_) => floor += crate::SORT_TIEBREAK,
        }
    }
    let top: Option<i64> = conn
        .prepare_cached("SELECT max(sort_key) FROM calls")?
        .query_row([], |r| r.get(0))?;
    Ok(top.map_or(floor, |k| k.max(floor) + 1))
}

/// The `calls` columns an insert or update writes, as [`call_column`] numbers them.
pub(super) const CALL_COLUMN_NAMES: [&str; 24] = [
    "provider",
    "call_key",
    "direction",
    "state",
    "result",
    "from_raw",
    "from_e164",
    "from_name",
    "to_raw",
    "to_e164",
    "to_name",
    "extensions",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "recording_url",
    "voicemail_id",
    "voicemail_seconds",
    "voicemail_url",
    "event_count",
    "last_event_at",
    "updated_at",
];
pub(super) const EXTENSIONS_COLUMN: usize = 11;
pub(super) const UPDATED_AT_COLUMN: usize = 23;

/// Appends `name = ?n` to an UPDATE's SET list.
pub(super) fn set_column(sets: &mut String, name: &str, n: usize) {
    use std::fmt::Write;
    if !sets.is_empty() {
        sets.push_str(", ");
    }
    let _ = write!(sets, "{name} = ?{n}");
}

pub(super) fn update_call(
    conn: &Connection,
    opts: &StoreOptions,
    id: i64,
    call: &Call,
    before: Option<&Call>,
) -> Result<(), StoreError> {
    // Only the columns that changed: an untouched indexed column then costs no index update.
    let mut sets = String::with_capacity(256);
    let mut args = Vec::new();
    for (column, name) in CALL_COLUMN_NAMES.iter().enumerate() {
        let changed = match before {
            Some(old) => column_changed(old, call, column)?,
            None => true,
        };
        if changed {
            args.push(call_column(call, column)?);
            set_column(&mut sets, name, args.len());
        }
    }
    // Search text, extensions and list position change rarely (a name arrives, a transfer, an
    // earlier event shows up late); only then are the indexes rewritten. The new text and keys
    // are built once, for the comparison and the index alike.
    let searchable = before.is_none_or(|b| searchable_changed(b, call));
    let mut index = searchable.then(|| (search_text(call, opts), extension_keys(call)));
    let reindex = before.is_none_or(|b| {
        b.started_at != call.started_at
            || index.as_ref().is_some_and(|(text, keys)| {
                search_text(b, opts) != *text || extension_keys(b) != *keys
            })
    });
    let mut new_key = None;
    if reindex {
        let (old_key, old_started): (i64, i64) = conn
            .prepare_cached("SELECT sort_key, started_at FROM calls WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let key = if old_started == to_ms(call.started_at) {
            old_key
        } else {
            let key = free_sort_key(conn, call.started_at)?;
            args.push(ToSqlOutput::Owned(rusqlite::types::Value::Integer(key)));
            set_column(&mut sets, "sort_key", args.len());
            key
        };
        conn.prepare_cached("DELETE FROM call_extensions WHERE call_id = ?1")?
            .execute([id])?;
        new_key = Some((old_key, key));
    }
    args.push(ToSqlOutput::Owned(rusqlite::types::Value::Integer(id)));
    let sql = format!("UPDATE calls SET {sets} WHERE id = ?{}", args.len());
    conn.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(args))?;
    super::changes::note_call(conn, id, call)?;
    if let Some((old_key, key)) = new_key {
        let (text, keys) =
            index.get_or_insert_with(|| (search_text(call, opts), extension_keys(call)));
        index_call(conn, id, Some(old_key), key, text, keys)?;
        set_outcomes(conn, id, call)?;
    } else if before.is_some_and(|b| extension_outcomes(b) != extension_outcomes(call)) {
        set_outcomes(conn, id, call)?;
    }
    Ok(())
}

pub(super) fn delete_call(conn: &Connection, id: i64) -> Result<(), StoreError> {
    let row: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT sort_key, provider, call_key FROM calls WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((key, provider, call_key)) = row {
        unindex_call(conn, id, key)?;
        let provider = Provider::parse(&provider)
            .ok_or_else(|| StoreError::Corrupt(format!("provider {provider:?}")))?;
        super::changes::note_call_removed(conn, provider, &call_key)?;
    }
    conn.execute(
        "UPDATE voicemails SET call_id = NULL WHERE call_id = ?1",
        [id],
    )?;
    conn.execute("DELETE FROM calls WHERE id = ?1", [id])?;
    Ok(())
}
