//! Writing deliveries: raw event (de-duplicated) + normalized events + derived call row, all
//! inside the caller's transaction, so a delivery is stored completely or not at all.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{to_ms, StoreError, StoreOptions};
use crate::calls;
use crate::model::{
    Call, CallDirection, CallEvent, CallResult, Delivery, Payload, Provider, VoicemailMessage,
};
use crate::numbers::PhoneNumber;

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
        /// Calls it created or changed.
        changes: Vec<CallChange>,
    },
    /// Already stored earlier: nothing changed.
    Duplicate {
        /// The earlier raw event's row id.
        raw_event_id: i64,
        /// False when the re-delivery had the same id but a different body.
        same_body: bool,
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

/// How far apart a voicemail's creation and its call's start may be.
const VOICEMAIL_WINDOW_BEFORE: i64 = 60;
const VOICEMAIL_WINDOW_AFTER: i64 = 2 * 3600;

pub(crate) fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Stores one delivery; a repeated dedup key changes nothing but the re-delivery counter.
pub(crate) fn apply_delivery(
    conn: &Connection,
    opts: &StoreOptions,
    delivery: &Delivery,
) -> Result<IngestOutcome, StoreError> {
    let p = &delivery.parsed;
    let inserted = conn.execute(
        "INSERT INTO raw_events
            (provider, dedup_key, kind, received_at, event_time, body_sha256, headers, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (provider, dedup_key) DO NOTHING",
        params![
            p.provider.as_str(),
            p.dedup_key,
            p.kind,
            to_ms(delivery.received_at),
            p.event_time.map(to_ms),
            delivery.body_sha256,
            headers_json(&delivery.headers),
            delivery.body,
        ],
    )?;
    if inserted == 0 {
        let (raw_event_id, sha): (i64, String) = conn.query_row(
            "SELECT id, body_sha256 FROM raw_events WHERE provider = ?1 AND dedup_key = ?2",
            params![p.provider.as_str(), p.dedup_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        conn.execute(
            "UPDATE raw_events SET redeliveries = redeliveries + 1, last_redelivered_at = ?2
             WHERE id = ?1",
            params![raw_event_id, to_ms(delivery.received_at)],
        )?;
        return Ok(IngestOutcome::Duplicate {
            raw_event_id,
            same_body: sha == delivery.body_sha256,
        });
    }
    let raw_event_id = conn.last_insert_rowid();
    let changes = apply_payload(conn, opts, raw_event_id, &p.payload)?;
    Ok(IngestOutcome::Stored {
        raw_event_id,
        changes,
    })
}

/// Applies what a stored raw event means to calls and voicemails.
pub(crate) fn apply_payload(
    conn: &Connection,
    opts: &StoreOptions,
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
                let (call_id, before) = ensure_call(conn, opts, provider, key, &new_events)?;
                let mut stmt = conn.prepare_cached(
                    "INSERT OR REPLACE INTO call_events (raw_event_id, ordinal, call_id, event)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (ordinal, e) in &group {
                    let json = serde_json::to_string(e)
                        .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                    stmt.execute(params![raw_event_id, *ordinal as i64, call_id, json])?;
                }
                changes.push(recompute(conn, opts, call_id, before)?);
            }
            Ok(changes)
        }
        Payload::Voicemail(msg) => {
            let json =
                serde_json::to_string(msg).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let inserted = conn.execute(
                "INSERT INTO voicemails
                    (provider, message_id, raw_event_id, extension_id, extension_number,
                     from_e164, created_at, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (provider, message_id) DO NOTHING",
                params![
                    msg.provider.as_str(),
                    msg.message_id,
                    raw_event_id,
                    msg.extension_id,
                    msg.extension_number,
                    msg.from.number.as_ref().and_then(|n| n.e164.clone()),
                    to_ms(msg.created_at),
                    json,
                ],
            )?;
            if inserted == 0 {
                return Ok(Vec::new());
            }
            let voicemail_row = conn.last_insert_rowid();
            match call_for_voicemail(conn, msg)? {
                Some(call_id) => {
                    let before = load_call(conn, call_id)?;
                    conn.execute(
                        "UPDATE voicemails SET call_id = ?1 WHERE id = ?2",
                        params![call_id, voicemail_row],
                    )?;
                    Ok(vec![recompute(conn, opts, call_id, before)?])
                }
                None => Ok(Vec::new()),
            }
        }
        Payload::Reminder(_) | Payload::Other => Ok(Vec::new()),
    }
}

/// Finds or creates the call row for a key; returns its id and the row as it was.
fn ensure_call(
    conn: &Connection,
    opts: &StoreOptions,
    provider: Provider,
    key: &str,
    new_events: &[CallEvent],
) -> Result<(i64, Option<Call>), StoreError> {
    let existing: Option<i64> = conn
        .query_row(
            "SELECT id FROM calls WHERE provider = ?1 AND call_key = ?2",
            params![provider.as_str(), key],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, load_call(conn, id)?));
    }
    let initial = calls::derive(new_events, 1, None)
        .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
    let id = insert_call(conn, opts, &initial)?;
    Ok((id, None))
}

/// Recomputes a call from all of its stored events and writes the row.
pub(crate) fn recompute(
    conn: &Connection,
    opts: &StoreOptions,
    call_id: i64,
    before: Option<Call>,
) -> Result<CallChange, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT event FROM call_events WHERE call_id = ?1")?;
    let events: Vec<CallEvent> = stmt
        .query_map([call_id], |r| r.get::<_, String>(0))?
        .map(|json| {
            let json = json?;
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect::<Result<_, StoreError>>()?;
    if events.is_empty() {
        delete_call(conn, call_id)?;
        return Ok(CallChange {
            id: call_id,
            before,
            after: None,
        });
    }
    let deliveries: i64 = conn.query_row(
        "SELECT count(DISTINCT raw_event_id) FROM call_events WHERE call_id = ?1",
        [call_id],
        |r| r.get(0),
    )?;
    // A call-log record names its voicemail exactly: that link wins over time-window matching.
    if let Some(message_id) = events.iter().find_map(|e| e.voicemail_message_id.clone()) {
        conn.execute(
            "UPDATE voicemails SET call_id = ?1 WHERE provider = ?2 AND message_id = ?3",
            params![call_id, events[0].provider.as_str(), message_id],
        )?;
    }
    let mut voicemail = linked_voicemail(conn, call_id)?;
    let mut call = calls::derive(&events, deliveries, voicemail.as_ref())
        .ok_or_else(|| StoreError::Corrupt("a call without events".into()))?;
    if voicemail.is_none() && wants_voicemail(&call) {
        if let Some((row, msg)) = voicemail_for_call(conn, &call)? {
            conn.execute(
                "UPDATE voicemails SET call_id = ?1 WHERE id = ?2",
                params![call_id, row],
            )?;
            voicemail = Some(msg);
            call = calls::derive(&events, deliveries, voicemail.as_ref())
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

fn wants_voicemail(call: &Call) -> bool {
    call.answered_at.is_none()
        && call.direction != CallDirection::Outbound
        && matches!(
            call.result,
            Some(CallResult::Voicemail) | Some(CallResult::Missed)
        )
}

fn linked_voicemail(
    conn: &Connection,
    call_id: i64,
) -> Result<Option<VoicemailMessage>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT message FROM voicemails WHERE call_id = ?1 ORDER BY created_at, id LIMIT 1",
            [call_id],
            |r| r.get(0),
        )
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn voicemail_matches_extensions(msg: &VoicemailMessage, call: &Call) -> bool {
    let wanted: Vec<String> = [msg.extension_id.clone(), msg.extension_number.clone()]
        .into_iter()
        .flatten()
        .collect();
    wanted.is_empty() || call.extensions.iter().any(|p| p.matches_extension(&wanted))
}

/// An unmatched voicemail left by this call's caller at one of its extensions, shortly after
/// it started; the closest in time wins.
fn voicemail_for_call(
    conn: &Connection,
    call: &Call,
) -> Result<Option<(i64, VoicemailMessage)>, StoreError> {
    let start = call.started_at;
    let mut stmt = conn.prepare_cached(
        "SELECT id, message FROM voicemails
         WHERE call_id IS NULL AND provider = ?1 AND from_e164 IS ?2
           AND created_at BETWEEN ?3 AND ?4
         ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map(
        params![
            call.provider.as_str(),
            call.from.e164,
            to_ms(start - Duration::seconds(VOICEMAIL_WINDOW_BEFORE)),
            to_ms(start + Duration::seconds(VOICEMAIL_WINDOW_AFTER)),
        ],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )?;
    for row in rows {
        let (id, json) = row?;
        let msg: VoicemailMessage =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if voicemail_matches_extensions(&msg, call) {
            return Ok(Some((id, msg)));
        }
    }
    Ok(None)
}

/// The call a newly arrived voicemail belongs to: same caller, an extension of the mailbox,
/// unanswered, started shortly before; calls that reached voicemail are preferred.
fn call_for_voicemail(
    conn: &Connection,
    msg: &VoicemailMessage,
) -> Result<Option<i64>, StoreError> {
    let from_e164 = msg.from.number.as_ref().and_then(|n| n.e164.clone());
    let created = msg.created_at;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM calls
         WHERE provider = ?1 AND from_e164 IS ?2 AND started_at BETWEEN ?3 AND ?4
           AND answered_at IS NULL AND direction != 'outbound'
           AND NOT EXISTS (SELECT 1 FROM voicemails v WHERE v.call_id = calls.id)
         ORDER BY started_at DESC, id DESC",
        super::query::CALL_COLUMNS
    ))?;
    let rows = stmt.query_map(
        params![
            msg.provider.as_str(),
            from_e164,
            to_ms(created - Duration::seconds(VOICEMAIL_WINDOW_AFTER)),
            to_ms(created + Duration::seconds(VOICEMAIL_WINDOW_BEFORE)),
        ],
        super::query::call_from_row,
    )?;
    let mut fallback = None;
    for row in rows {
        let record = row??;
        if !voicemail_matches_extensions(msg, &record.call) {
            continue;
        }
        if record.call.result == Some(CallResult::Voicemail) {
            return Ok(Some(record.id));
        }
        if fallback.is_none() && wants_voicemail(&record.call) {
            fallback = Some(record.id);
        }
    }
    Ok(fallback)
}

pub(crate) fn load_call(conn: &Connection, id: i64) -> Result<Option<Call>, StoreError> {
    let sql = format!(
        "SELECT {} FROM calls WHERE id = ?1",
        super::query::CALL_COLUMNS
    );
    let row = conn
        .query_row(&sql, [id], super::query::call_from_row)
        .optional()?;
    Ok(row.transpose()?.map(|r| r.call))
}

/// Everything a person might type to find this call, for the trigram index.
pub(crate) fn search_text(call: &Call, opts: &StoreOptions) -> String {
    let mut parts: Vec<String> = Vec::new();
    for side in [&call.from, &call.to] {
        if let Some(name) = &side.name {
            parts.push(name.clone());
        }
        if let Some(raw) = &side.raw {
            let n = PhoneNumber::parse(raw, &opts.country);
            parts.extend(n.search_digits(&opts.country));
        }
        if let Some(e164) = &side.e164 {
            parts.push(e164.trim_start_matches('+').to_string());
            if let Some(national) = opts.country.national_digits(e164) {
                parts.push(national);
            }
        }
    }
    for ext in &call.extensions {
        parts.extend(ext.extension_number.clone());
        parts.extend(ext.extension_id.clone());
        parts.extend(ext.name.clone());
    }
    let mut seen = std::collections::BTreeSet::new();
    parts.retain(|p| !p.is_empty() && seen.insert(p.clone()));
    parts.join(" | ")
}

fn extension_keys(call: &Call) -> Vec<String> {
    let mut keys: Vec<String> = call
        .extensions
        .iter()
        .flat_map(|p| [p.extension_id.clone(), p.extension_number.clone()])
        .flatten()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn call_params(call: &Call) -> Result<Vec<rusqlite::types::Value>, StoreError> {
    use rusqlite::types::Value as V;
    let text = |s: &Option<String>| s.clone().map_or(V::Null, V::Text);
    let time = |t: Option<DateTime<Utc>>| t.map_or(V::Null, |t| V::Integer(to_ms(t)));
    let vm = call.voicemail.clone().unwrap_or_default();
    Ok(vec![
        V::Text(call.provider.as_str().into()),
        V::Text(call.call_key.clone()),
        V::Text(call.direction.as_str().into()),
        V::Text(call.state.as_str().into()),
        call.result.map_or(V::Null, |r| V::Text(r.as_str().into())),
        text(&call.from.raw),
        text(&call.from.e164),
        text(&call.from.name),
        text(&call.to.raw),
        text(&call.to.e164),
        text(&call.to.name),
        V::Text(
            serde_json::to_string(&call.extensions)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
        V::Integer(to_ms(call.started_at)),
        time(call.answered_at),
        time(call.ended_at),
        V::Integer(call.ring_seconds),
        V::Integer(call.talk_seconds),
        text(&call.recording_url),
        text(&vm.message_id),
        vm.seconds.map_or(V::Null, V::Integer),
        text(&vm.url),
        V::Integer(call.event_count),
        V::Integer(to_ms(call.last_event_at)),
        V::Integer(to_ms(Utc::now())),
    ])
}

fn insert_call(conn: &Connection, opts: &StoreOptions, call: &Call) -> Result<i64, StoreError> {
    let values = call_params(call)?;
    conn.prepare_cached(
        "INSERT INTO calls (provider, call_key, direction, state, result,
            from_raw, from_e164, from_name, to_raw, to_e164, to_name, extensions,
            started_at, answered_at, ended_at, ring_seconds, talk_seconds, recording_url,
            voicemail_id, voicemail_seconds, voicemail_url, event_count, last_event_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
    )?
    .execute(rusqlite::params_from_iter(values))?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO calls_search (rowid, text) VALUES (?1, ?2)")?
        .execute(params![id, search_text(call, opts)])?;
    let mut ext = conn.prepare_cached(
        "INSERT OR IGNORE INTO call_extensions (extension, call_id) VALUES (?1, ?2)",
    )?;
    for key in extension_keys(call) {
        ext.execute(params![key, id])?;
    }
    Ok(id)
}

fn update_call(
    conn: &Connection,
    opts: &StoreOptions,
    id: i64,
    call: &Call,
    before: Option<&Call>,
) -> Result<(), StoreError> {
    let mut values = call_params(call)?;
    values.push(rusqlite::types::Value::Integer(id));
    conn.prepare_cached(
        "UPDATE calls SET provider = ?1, call_key = ?2, direction = ?3, state = ?4, result = ?5,
            from_raw = ?6, from_e164 = ?7, from_name = ?8, to_raw = ?9, to_e164 = ?10,
            to_name = ?11, extensions = ?12, started_at = ?13, answered_at = ?14,
            ended_at = ?15, ring_seconds = ?16, talk_seconds = ?17, recording_url = ?18,
            voicemail_id = ?19, voicemail_seconds = ?20, voicemail_url = ?21,
            event_count = ?22, last_event_at = ?23, updated_at = ?24
         WHERE id = ?25",
    )?
    .execute(rusqlite::params_from_iter(values))?;
    let new_text = search_text(call, opts);
    if before.map(|b| search_text(b, opts)) != Some(new_text.clone()) {
        conn.prepare_cached("DELETE FROM calls_search WHERE rowid = ?1")?
            .execute([id])?;
        conn.prepare_cached("INSERT INTO calls_search (rowid, text) VALUES (?1, ?2)")?
            .execute(params![id, new_text])?;
    }
    let new_keys = extension_keys(call);
    if before.map(extension_keys) != Some(new_keys.clone()) {
        conn.prepare_cached("DELETE FROM call_extensions WHERE call_id = ?1")?
            .execute([id])?;
        let mut ext = conn.prepare_cached(
            "INSERT OR IGNORE INTO call_extensions (extension, call_id) VALUES (?1, ?2)",
        )?;
        for key in new_keys {
            ext.execute(params![key, id])?;
        }
    }
    Ok(())
}

fn delete_call(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM calls_search WHERE rowid = ?1", [id])?;
    conn.execute(
        "UPDATE voicemails SET call_id = NULL WHERE call_id = ?1",
        [id],
    )?;
    conn.execute("DELETE FROM calls WHERE id = ?1", [id])?;
    Ok(())
}

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

/// Re-applies a stored raw event with a new reading of its body (after a parser upgrade).
pub(crate) fn replace_payload(
    conn: &Connection,
    opts: &StoreOptions,
    raw_event_id: i64,
    kind: &str,
    payload: &Payload,
) -> Result<Vec<CallChange>, StoreError> {
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
    let mut changes = apply_payload(conn, opts, raw_event_id, payload)?;
    for change in &mut changes {
        if let Some(before) = befores.remove(&change.id) {
            change.before = before;
        }
    }
    for (id, before) in befores {
        changes.push(recompute(conn, opts, id, before)?);
    }
    Ok(changes)
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
