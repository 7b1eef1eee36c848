//! Writing deliveries: raw event (de-duplicated) + normalized events + derived call row, all
//! inside the caller's transaction, so a delivery is stored completely or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{to_ms, StoreError, StoreOptions};
use callpop_core::calls;
use callpop_core::model::{Call, CallEvent, CallResult, CallState, Delivery, Payload, Provider};

mod cache;
pub(crate) mod changes;
mod quarantine;
pub(crate) mod replica;
mod rows;
mod search;
mod voicemail;

use cache::CachedCall;
pub(crate) use cache::CallCache;
pub(crate) use quarantine::{quarantine, requarantine, resolve_quarantine};
pub(crate) use rows::load_call;

/// Row writes the store's own tests drive directly.
#[cfg(test)]
pub(crate) mod rows_for_tests {
    pub(crate) fn delete_call(
        conn: &rusqlite::Connection,
        id: i64,
    ) -> Result<(), crate::StoreError> {
        super::rows::delete_call(conn, id)
    }
}
use rows::*;
use search::*;
pub(crate) use search::{flush_search, requeue_all, search_text};
use voicemail::*;

/// How a delivery changed one call: the row before and after (None = did not exist / removed).
#[derive(Debug, Clone, PartialEq)]
pub struct CallChange {
    /// The call's row id.
    pub id: i64,
    /// The row before this delivery.
    pub before: Option<Call>,
    /// The row after this delivery.
    pub after: Option<Call>,
}

/// What storing a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    /// Stored for the first time.
    Stored {
        /// The raw event's row id.
        raw_event_id: i64,
        /// Calls it created or changed, shared with the broadcast of the same changes.
        changes: Vec<Arc<CallChange>>,
    },
    /// Already stored earlier: nothing changed.
    Duplicate {
        /// The earlier raw event's row id.
        raw_event_id: i64,
        /// False when the re-delivery had the same id but a different body (the same event
        /// recognised by its content key counts as the same).
        same_body: bool,
        /// False when the history could not be written: the re-delivery was recognised from
        /// the stored copy, and not counted.
        counted: bool,
    },
}

/// An authenticated body that could not be used, kept for inspection and later replay.
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    /// The phone system it claimed to come from.
    pub provider: Provider,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Why it could not be used.
    pub reason: String,
    /// Headers worth keeping.
    pub headers: Vec<(String, String)>,
    /// The body (secrets redacted).
    pub body: Vec<u8>,
    /// SHA-256 of the body as received.
    pub body_sha256: String,
}

/// The kept headers as one JSON object: names in first-seen order, a repeated name with its
/// last value. Written directly: building a `serde_json::Map` first cost ~3 % of the writer.
pub(crate) fn headers_json(headers: &[(String, String)]) -> String {
    let mut out = Vec::with_capacity(
        32 + headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push(b'{');
    for (i, (name, _)) in headers.iter().enumerate() {
        if headers[..i].iter().any(|(earlier, _)| earlier == name) {
            continue;
        }
        let value = headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v);
        if out.len() > 1 {
            out.push(b',');
        }
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, name);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Stores one delivery; a repeated dedup key changes nothing but the re-delivery counter.
pub(crate) fn apply_delivery(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    delivery: &Delivery,
) -> Result<IngestOutcome, StoreError> {
    let p = &delivery.parsed;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO raw_events
                (provider, dedup_key, kind, received_at, event_time, body_sha256, headers, body,
                 content_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            p.provider.as_str(),
            p.dedup_key,
            p.kind,
            to_ms(delivery.received_at),
            p.event_time.map(to_ms),
            delivery.body_sha256,
            headers_json(&delivery.headers),
            delivery.body,
            p.content_key,
        ])?;
    if inserted == 0 {
        let Some((raw_event_id, same_body)) = stored_copy(conn, delivery)? else {
            return Err(StoreError::Corrupt(format!(
                "delivery {:?} conflicts with a stored one that cannot be found",
                p.dedup_key
            )));
        };
        conn.prepare_cached(
            "UPDATE raw_events SET redeliveries = redeliveries + 1, last_redelivered_at = ?2
             WHERE id = ?1",
        )?
        .execute(params![raw_event_id, to_ms(delivery.received_at)])?;
        return Ok(IngestOutcome::Duplicate {
            raw_event_id,
            same_body,
            counted: true,
        });
    }
    let raw_event_id = conn.last_insert_rowid();
    let changes = apply_payload(conn, opts, cache, raw_event_id, &p.payload)?;
    Ok(IngestOutcome::Stored {
        raw_event_id,
        changes: changes.into_iter().map(Arc::new).collect(),
    })
}

/// The stored delivery with this one's id or, failing that, its content key (the same event
/// through another subscription), if any: its raw event id and whether the bodies are the
/// same. It only reads, so it still answers when the history cannot be written.
pub(crate) fn stored_copy(
    conn: &Connection,
    delivery: &Delivery,
) -> Result<Option<(i64, bool)>, StoreError> {
    let p = &delivery.parsed;
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, body_sha256 FROM raw_events WHERE provider = ?1 AND dedup_key = ?2",
        )?
        .query_row(params![p.provider.as_str(), p.dedup_key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((raw_event_id, sha)) = found {
        return Ok(Some((raw_event_id, sha == delivery.body_sha256)));
    }
    let Some(content_key) = &p.content_key else {
        return Ok(None);
    };
    // The same event through another subscription: its envelope differs, what it says not.
    let same_event: Option<i64> = conn
        .prepare_cached("SELECT id FROM raw_events WHERE provider = ?1 AND content_key = ?2")?
        .query_row(params![p.provider.as_str(), content_key], |r| r.get(0))
        .optional()?;
    Ok(same_event.map(|raw_event_id| (raw_event_id, true)))
}

/// Applies what a stored raw event means to calls and voicemails.
pub(crate) fn apply_payload(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    raw_event_id: i64,
    payload: &Payload,
) -> Result<Vec<CallChange>, StoreError> {
    match payload {
        Payload::Calls(events) => {
            let mut groups: BTreeMap<(Provider, &str), Vec<(usize, &CallEvent)>> = BTreeMap::new();
            for (ordinal, e) in events.iter().enumerate() {
                groups
                    .entry((e.provider, e.call_key.as_str()))
                    .or_default()
                    .push((ordinal, e));
            }
            let mut changes = Vec::new();
            for ((provider, key), group) in groups {
                let new_events: Vec<CallEvent> = group.iter().map(|(_, e)| (*e).clone()).collect();
                changes.push(add_events(
                    conn,
                    opts,
                    cache,
                    raw_event_id,
                    provider,
                    key,
                    &group,
                    new_events,
                )?);
            }
            cache.trim();
            Ok(changes)
        }
        Payload::Voicemail(msg) => {
            let json =
                serde_json::to_string(msg).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO voicemails
                        (provider, message_id, raw_event_id, extension_id, extension_number,
                         from_e164, created_at, message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (provider, message_id) DO NOTHING",
                )?
                .execute(params![
                    msg.provider.as_str(),
                    msg.message_id,
                    raw_event_id,
                    msg.extension_id,
                    msg.extension_number,
                    msg.from.number.as_ref().and_then(|n| n.e164.clone()),
                    to_ms(msg.created_at),
                    json,
                ])?;
            if inserted == 0 {
                return Ok(Vec::new());
            }
            let voicemail_row = conn.last_insert_rowid();
            match call_for_voicemail(conn, msg)? {
                Some(call_id) => {
                    let before = load_call(conn, call_id)?;
                    conn.prepare_cached("UPDATE voicemails SET call_id = ?1 WHERE id = ?2")?
                        .execute(params![call_id, voicemail_row])?;
                    cache.forget(call_id);
                    Ok(vec![recompute(conn, opts, call_id, before)?])
                }
                None => Ok(Vec::new()),
            }
        }
        Payload::Reminder(_) | Payload::Other => Ok(Vec::new()),
    }
}

/// Reads a call's events back from its stored deliveries with the engine's parser.
fn stored_events(
    conn: &Connection,
    opts: &StoreOptions,
    call_id: i64,
) -> Result<(Vec<CallEvent>, i64), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.provider, r.kind, r.body, r.body_sha256, r.received_at,
                group_concat(ce.ordinal)
         FROM call_events ce JOIN raw_events r ON r.id = ce.raw_event_id
         WHERE ce.call_id = ?1
         GROUP BY r.id",
    )?;
    let mut rows = stmt.query([call_id])?;
    let mut events = Vec::new();
    let mut deliveries = 0i64;
    while let Some(row) = rows.next()? {
        deliveries += 1;
        let raw_id: i64 = row.get(0)?;
        let provider: String = row.get(1)?;
        let provider = callpop_core::model::Provider::parse(&provider)
            .ok_or_else(|| StoreError::Corrupt(format!("provider {provider:?}")))?;
        let kind: String = row.get(2)?;
        let body: Vec<u8> = row.get(3)?;
        let sha: String = row.get(4)?;
        let ordinals: String = row.get(6)?;
        let stored = callpop_core::reparse::StoredBody {
            provider,
            kind: &kind,
            body: &body,
            body_sha256: &sha,
            received_at: super::from_ms(row.get(5)?),
        };
        let parsed = (opts.reparse)(&stored, &opts.country).map_err(|e| {
            StoreError::Corrupt(format!(
                "stored delivery {raw_id} can no longer be read: {e}"
            ))
        })?;
        let wanted: Vec<usize> = ordinals
            .split(',')
            .filter_map(|o| o.trim().parse().ok())
            .collect();
        events.extend(
            parsed
                .into_iter()
                .enumerate()
                .filter(|(i, _)| wanted.contains(i))
                .map(|(_, e)| e),
        );
    }
    Ok((events, deliveries))
}

/// A call row that exists, with its stored events (a cache miss). A replay of the call's only
/// delivery has just taken that delivery's events away: the row stays, with no events under
/// it until the replayed ones are added, and counts as it was (`new_events` only stand in
/// when the row itself cannot be read).
fn load_existing(
    conn: &Connection,
    opts: &StoreOptions,
    call_id: i64,
    new_events: &[CallEvent],
) -> Result<CachedCall, StoreError> {
    let (events, deliveries) = stored_events(conn, opts, call_id)?;
    if !events.is_empty() {
        return load_cached(conn, opts, call_id);
    }
    let call = match load_call(conn, call_id)? {
        Some(call) => call,
        None => calls::derive(new_events, 1, None)
            .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?,
    };
    Ok(CachedCall {
        events,
        deliveries,
        voicemail: linked_voicemail(conn, call_id)?,
        call,
        last_used: 0,
    })
}

/// The stored row of a call ended by the rule for calls whose end never came, if it is one.
fn unheard_row(conn: &Connection, call_id: i64) -> Result<Option<Call>, StoreError> {
    let result: Option<String> = conn
        .prepare_cached("SELECT result FROM calls WHERE id = ?1")?
        .query_row([call_id], |r| r.get(0))
        .optional()?
        .flatten();
    if result.as_deref() == Some(CallResult::NoEndReported.as_str()) {
        load_call(conn, call_id)
    } else {
        Ok(None)
    }
}

/// Reads a call's stored events, delivery count and voicemail (a cache miss).
fn load_cached(
    conn: &Connection,
    opts: &StoreOptions,
    call_id: i64,
) -> Result<CachedCall, StoreError> {
    let (events, deliveries) = stored_events(conn, opts, call_id)?;
    let voicemail = linked_voicemail(conn, call_id)?;
    let call = calls::derive(&events, deliveries, voicemail.as_ref())
        .ok_or_else(|| StoreError::Corrupt(format!("call {call_id} has no events")))?;
    Ok(CachedCall {
        events,
        deliveries,
        voicemail,
        call,
        last_used: 0,
    })
}

/// The most events one call may collect. A real call has a few dozen (a long transfer chain
/// about a hundred); deriving a call reads all of its events, so without a bound one sender
/// could make every further event of one call cost seconds. Past it, a delivery for that call
/// is refused and kept in quarantine.
pub const MAX_EVENTS_PER_CALL: usize = 1000;

/// Adds one delivery's events to their call (creating it), re-derives and writes the row.
#[allow(clippy::too_many_arguments)]
fn add_events(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    raw_event_id: i64,
    provider: Provider,
    key: &str,
    group: &[(usize, &CallEvent)],
    new_events: Vec<CallEvent>,
) -> Result<CallChange, StoreError> {
    let cache_key = (provider, key.to_string());
    let known = match cache.ids.get(&cache_key) {
        Some(id) => Some(*id),
        None => conn
            .prepare_cached("SELECT id FROM calls WHERE provider = ?1 AND call_key = ?2")?
            .query_row(params![provider.as_str(), key], |r| r.get(0))
            .optional()?,
    };
    // `entry.call` is the call as it was until the new events are in.
    let (call_id, mut entry, existed) = match known {
        Some(id) => {
            let entry = match cache.calls.remove(&id) {
                Some(e) => e,
                None => {
                    let mut entry = load_existing(conn, opts, id, &new_events)?;
                    // Changes are written as the difference from `entry.call`. A row ended
                    // as `no_end_reported` holds what its events do not say, so the
                    // difference is taken from the row itself: the real end must overwrite
                    // every column the rule changed.
                    if let Some(row) = unheard_row(conn, id)? {
                        entry.call = row;
                    }
                    entry
                }
            };
            (id, entry, true)
        }
        None => {
            let call = calls::derive(&new_events, 1, None)
                .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
            let id = insert_call(conn, opts, &call)?;
            let entry = CachedCall {
                events: Vec::new(),
                deliveries: 0,
                voicemail: None,
                call,
                last_used: 0,
            };
            (id, entry, false)
        }
    };
    if entry.events.len() + new_events.len() > MAX_EVENTS_PER_CALL {
        return Err(StoreError::Refused {
            reason: format!(
                "call {key} already has {} events, and CallPop keeps at most \
                 {MAX_EVENTS_PER_CALL} per call",
                entry.events.len()
            ),
            quarantine_id: None,
        });
    }
    cache.ids.insert(cache_key, call_id);
    {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO call_events (raw_event_id, ordinal, call_id) VALUES (?1, ?2, ?3)",
        )?;
        for (ordinal, _) in group {
            stmt.execute(params![raw_event_id, *ordinal as i64, call_id])?;
        }
    }
    entry.events.extend(new_events);
    entry.deliveries += 1;
    // A call-log record names its voicemail exactly: that link wins over time-window matching.
    if let Some(message_id) = group
        .iter()
        .find_map(|(_, e)| e.voicemail_message_id.clone())
    {
        let linked = conn
            .prepare_cached(
                "UPDATE voicemails SET call_id = ?1 WHERE provider = ?2 AND message_id = ?3",
            )?
            .execute(params![call_id, provider.as_str(), message_id])?;
        if linked > 0 {
            entry.voicemail = linked_voicemail(conn, call_id)?;
        }
    }
    let mut call = calls::derive(&entry.events, entry.deliveries, entry.voicemail.as_ref())
        .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
    // Look for a waiting voicemail when the call first becomes one that can have it.
    let newly_eligible = !existed || entry.call.result != call.result;
    if entry.voicemail.is_none() && wants_voicemail(&call) && newly_eligible {
        if let Some((row, msg)) = voicemail_for_call(conn, &call)? {
            conn.prepare_cached("UPDATE voicemails SET call_id = ?1 WHERE id = ?2")?
                .execute(params![call_id, row])?;
            entry.voicemail = Some(msg);
            call = calls::derive(&entry.events, entry.deliveries, entry.voicemail.as_ref())
                .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
        }
    }
    // A new call was inserted from its first events already; write only what changed.
    if entry.call != call {
        update_call(conn, opts, call_id, &call, Some(&entry.call))?;
    }
    let previous = std::mem::replace(&mut entry.call, call.clone());
    let before = existed.then_some(previous);
    cache.keep(call_id, entry);
    Ok(CallChange {
        id: call_id,
        before,
        after: Some(call),
    })
}

/// Ends the calls nothing has been heard of since the bounds (ringing: last event before
/// `ringing_before`; connected: before `connected_before`) with [`CallResult::NoEndReported`],
/// as ended at their last event. A Ringotel call counts as connected: Ringotel says whether a
/// call was answered only when it ends, so one still "ringing" may be an hour's conversation.
/// Their events stay as they are, so a real end that arrives later recomputes the row from
/// them and wins.
pub(crate) fn end_unheard(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    ringing_before: DateTime<Utc>,
    connected_before: DateTime<Utc>,
) -> Result<Vec<CallChange>, StoreError> {
    // The states are written out (not bound) and the range given once plainly, so SQLite
    // walks the partial index `calls_unended` (schema 6) instead of every call.
    let sql = format!(
        "SELECT {} FROM calls
         WHERE state IN ('ringing', 'connected') AND last_event_at < ?3
           AND last_event_at < CASE WHEN state = 'ringing' AND provider != 'ringotel'
                                    THEN ?1 ELSE ?2 END",
        crate::query::CALL_COLUMNS
    );
    debug_assert_eq!(CallState::Ringing.as_str(), "ringing");
    debug_assert_eq!(CallState::Connected.as_str(), "connected");
    let mut stmt = conn.prepare_cached(&sql)?;
    let unheard: Vec<crate::query::CallRecord> = stmt
        .query_map(
            params![
                to_ms(ringing_before),
                to_ms(connected_before),
                to_ms(ringing_before.max(connected_before))
            ],
            crate::query::call_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        // A damaged row is left alone; `callpop events replay` rebuilds it.
        .filter_map(Result::ok)
        .collect();
    let mut changes = Vec::with_capacity(unheard.len());
    for record in unheard {
        let before = record.call;
        let mut after = before.clone();
        after.state = CallState::Ended;
        after.result = Some(CallResult::NoEndReported);
        after.ended_at = Some(before.last_event_at.max(before.started_at));
        for part in &mut after.extensions {
            part.outcome = Some(if part.answered {
                CallResult::Answered
            } else {
                CallResult::NoEndReported
            });
        }
        update_call(conn, opts, record.id, &after, Some(&before))?;
        cache.forget(record.id);
        changes.push(CallChange {
            id: record.id,
            before: Some(before),
            after: Some(after),
        });
    }
    Ok(changes)
}

/// Recomputes a call from all of its stored events and writes the row (the slow path, for
/// voicemail matches and replays).
pub(crate) fn recompute(
    conn: &Connection,
    opts: &StoreOptions,
    call_id: i64,
    before: Option<Call>,
) -> Result<CallChange, StoreError> {
    let (events, _) = stored_events(conn, opts, call_id)?;
    if events.is_empty() {
        delete_call(conn, call_id)?;
        return Ok(CallChange {
            id: call_id,
            before,
            after: None,
        });
    }
    let entry = load_cached(conn, opts, call_id)?;
    let mut call = entry.call;
    let mut voicemail = entry.voicemail;
    if let Some(message_id) = events.iter().find_map(|e| e.voicemail_message_id.clone()) {
        conn.prepare_cached(
            "UPDATE voicemails SET call_id = ?1 WHERE provider = ?2 AND message_id = ?3",
        )?
        .execute(params![call_id, events[0].provider.as_str(), message_id])?;
        voicemail = linked_voicemail(conn, call_id)?;
        call = calls::derive(&events, entry.deliveries, voicemail.as_ref())
            .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
    }
    if voicemail.is_none() && wants_voicemail(&call) {
        if let Some((row, msg)) = voicemail_for_call(conn, &call)? {
            conn.prepare_cached("UPDATE voicemails SET call_id = ?1 WHERE id = ?2")?
                .execute(params![call_id, row])?;
            voicemail = Some(msg);
            call = calls::derive(&events, entry.deliveries, voicemail.as_ref())
                .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
        }
    }
    update_call(conn, opts, call_id, &call, before.as_ref())?;
    Ok(CallChange {
        id: call_id,
        before,
        after: Some(call),
    })
}

/// Re-applies a stored raw event with a new reading of its body (after a parser upgrade).
pub(crate) fn replace_payload(
    conn: &Connection,
    opts: &StoreOptions,
    cache: &mut CallCache,
    raw_event_id: i64,
    kind: &str,
    payload: &Payload,
) -> Result<Vec<CallChange>, StoreError> {
    // Replays rewrite history under the cache: start from what is on disk.
    cache.clear();
    let mut affected: Vec<i64> = conn
        .prepare("SELECT DISTINCT call_id FROM call_events WHERE raw_event_id = ?1")?
        .query_map([raw_event_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let vm_calls: Vec<Option<i64>> = conn
        .prepare("SELECT call_id FROM voicemails WHERE raw_event_id = ?1")?
        .query_map([raw_event_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    affected.extend(vm_calls.into_iter().flatten());
    affected.sort_unstable();
    affected.dedup();
    let mut befores: BTreeMap<i64, Option<Call>> = BTreeMap::new();
    for id in &affected {
        befores.insert(*id, load_call(conn, *id)?);
    }
    conn.execute(
        "DELETE FROM call_events WHERE raw_event_id = ?1",
        [raw_event_id],
    )?;
    conn.execute(
        "DELETE FROM voicemails WHERE raw_event_id = ?1",
        [raw_event_id],
    )?;
    conn.execute(
        "UPDATE raw_events SET kind = ?2 WHERE id = ?1",
        params![raw_event_id, kind],
    )?;
    let mut changes = apply_payload(conn, opts, cache, raw_event_id, payload)?;
    for change in &mut changes {
        if let Some(before) = befores.remove(&change.id) {
            change.before = before;
        }
    }
    for (id, before) in befores {
        changes.push(recompute(conn, opts, id, before)?);
    }
    cache.clear();
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_become_one_json_object_with_the_last_value_of_a_repeated_name() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(headers_json(&[]), "{}");
        assert_eq!(
            headers_json(&h(&[
                ("user-agent", "RC \"Webhook\"\n"),
                ("peer", "127.0.0.1:5"),
                ("user-agent", "second ü")
            ])),
            r#"{"user-agent":"second ü","peer":"127.0.0.1:5"}"#
        );
        let odd = h(&[("x-forwarded-for", "\u{0}\u{1f}\\"), ("content-type", "")]);
        let parsed: serde_json::Value =
            serde_json::from_str(&headers_json(&odd)).expect("valid JSON");
        assert_eq!(parsed["x-forwarded-for"], "\u{0}\u{1f}\\");
        assert_eq!(parsed["content-type"], "");
    }
}
