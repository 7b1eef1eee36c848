//! Writing deliveries: raw event (de-duplicated) + normalized events + derived call row, all
//! inside the caller's transaction, so a delivery is stored completely or not at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rusqlite::types::ToSqlOutput;
use rusqlite::{params, Connection, OptionalExtension};

use super::{to_ms, StoreError, StoreOptions};
use callpop_core::calls;
use callpop_core::model::{
    Call, CallDirection, CallEvent, CallResult, Delivery, ExtensionPart, Payload, Provider,
    VoicemailMessage,
};
use callpop_core::numbers::PhoneNumber;

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
        /// False when the re-delivery had the same id but a different body.
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

/// How far apart a voicemail's creation and its call's start may be.
const VOICEMAIL_WINDOW_BEFORE: i64 = 60;
const VOICEMAIL_WINDOW_AFTER: i64 = 2 * 3600;

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

/// Recently touched calls, kept by the writer so that an event does not re-read and re-parse
/// every earlier event of its call. It is only a cache of what is committed plus the current
/// transaction: the writer drops it when a transaction rolls back or when another connection
/// changed the file (`PRAGMA data_version`), e.g. a CLI replay or backfill.
#[derive(Default)]
pub(crate) struct CallCache {
    ids: HashMap<(Provider, String), i64>,
    calls: HashMap<i64, CachedCall>,
    /// `PRAGMA data_version` when the cache last looked: it moves only when another
    /// connection commits.
    data_version: Option<i64>,
    /// Counts the calls put back after use, so the least recently used can be told apart.
    uses: u64,
}

struct CachedCall {
    events: Vec<CallEvent>,
    deliveries: i64,
    voicemail: Option<VoicemailMessage>,
    call: Call,
    /// [`CallCache::uses`] when the call was last put back.
    last_used: u64,
}

/// Calls kept in memory at most; past that ended calls are dropped and, if that is not
/// enough, the least recently used of the rest.
const CACHED_CALLS: usize = 2_000;

impl CallCache {
    /// Forgets every call.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
        self.calls.clear();
    }

    /// Forgets every call if another connection committed since the last look. Called inside
    /// an IMMEDIATE transaction: its lock keeps other writers out until the commit, so what the
    /// cache holds stays true for the whole group.
    pub(crate) fn follow(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version != Some(version) {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    fn forget(&mut self, call_id: i64) {
        self.calls.remove(&call_id);
    }

    /// Puts a call back after use.
    fn keep(&mut self, call_id: i64, mut entry: CachedCall) {
        self.uses += 1;
        entry.last_used = self.uses;
        self.calls.insert(call_id, entry);
    }

    fn trim(&mut self) {
        if self.calls.len() <= CACHED_CALLS && self.ids.len() <= CACHED_CALLS * 2 {
            return;
        }
        // Starting over made every call still ringing re-read and re-parse its deliveries
        // (~3 % of the writer's time under load); an ended call rarely hears more.
        self.calls.retain(|_, c| c.call.ended_at.is_none());
        let keep = CACHED_CALLS / 2;
        if self.calls.len() > keep {
            // More calls going on than that (a burst of traffic, or calls whose end never
            // arrived): keep the most recently used. Dropping them all made every call of a
            // burst re-read its deliveries after each trim: a third of the writer's time with
            // 2,000 calls going on at once.
            let mut uses: Vec<u64> = self.calls.values().map(|c| c.last_used).collect();
            let first_kept = uses.len() - keep;
            let (_, oldest_kept, _) = uses.select_nth_unstable(first_kept);
            let oldest_kept = *oldest_kept;
            self.calls.retain(|_, c| c.last_used >= oldest_kept);
        }
        let calls = &self.calls;
        self.ids.retain(|_, id| calls.contains_key(id));
    }
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
                (provider, dedup_key, kind, received_at, event_time, body_sha256, headers, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (provider, dedup_key) DO NOTHING",
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

/// The stored delivery with this one's id, if any: its raw event id and whether the bodies
/// are the same. It only reads, so it still answers when the history cannot be written.
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
    Ok(found.map(|(raw_event_id, sha)| (raw_event_id, sha == delivery.body_sha256)))
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
                None => load_cached(conn, opts, id)?,
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
        .prepare_cached(
            "SELECT message FROM voicemails WHERE call_id = ?1 ORDER BY created_at, id LIMIT 1",
        )?
        .query_row([call_id], |r| r.get(0))
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
    // Almost always every voicemail is matched already; this probe has no parameters, so
    // SQLite need not re-plan it for each call the way it does the time-window query.
    let waiting: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM voicemails WHERE call_id IS NULL)")?
        .query_row([], |r| r.get(0))?;
    if !waiting {
        return Ok(None);
    }
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
         ORDER BY sort_key DESC",
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
        .prepare_cached(&sql)?
        .query_row([id], super::query::call_from_row)
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

/// One `calls` column of a call (index into [`CALL_COLUMN_NAMES`]), borrowed where it can be:
/// an update compares every column of the old and new call and binds only the changed ones.
fn call_column(call: &Call, column: usize) -> Result<ToSqlOutput<'_>, StoreError> {
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
fn column_changed(old: &Call, new: &Call, column: usize) -> Result<bool, StoreError> {
    Ok(match column {
        // Compared as data: serializing both lists to compare the text cost more than the
        // rest of the row together.
        EXTENSIONS_COLUMN => old.extensions != new.extensions,
        UPDATED_AT_COLUMN => true,
        _ => call_column(old, column)? != call_column(new, column)?,
    })
}

fn insert_call(conn: &Connection, opts: &StoreOptions, call: &Call) -> Result<i64, StoreError> {
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
    index_call(
        conn,
        id,
        None,
        sort_key,
        &search_text(call, opts),
        &extension_keys(call),
    )?;
    Ok(id)
}

/// The next unused sort key for a call starting at `started_at`: calls starting in the same
/// millisecond are listed in arrival order.
fn free_sort_key(conn: &Connection, started_at: DateTime<Utc>) -> Result<i64, StoreError> {
    let mut floor = super::sort_key_floor(started_at);
    // Only a flood of calls in one instant (a hostile sender) fills this many slots; the
    // probe stays bounded and the rest go to the top of the list rather than being refused.
    for _ in 0..64 {
        let top: Option<i64> = conn
            .prepare_cached(
                "SELECT max(sort_key) FROM calls WHERE sort_key >= ?1 AND sort_key < ?2",
            )?
            .query_row(params![floor, floor + super::SORT_TIEBREAK], |r| r.get(0))?;
        match top {
            None => return Ok(floor),
            Some(k) if k + 1 < floor + super::SORT_TIEBREAK => return Ok(k + 1),
            Some(_) => floor += super::SORT_TIEBREAK,
        }
    }
    let top: Option<i64> = conn
        .prepare_cached("SELECT max(sort_key) FROM calls")?
        .query_row([], |r| r.get(0))?;
    Ok(top.map_or(floor, |k| k.max(floor) + 1))
}

/// Writes a call's extensions and queues its search text under its sort key; `indexed_key`
/// is the key the search index holds for it now (None for a new call).
fn index_call(
    conn: &Connection,
    id: i64,
    indexed_key: Option<i64>,
    sort_key: i64,
    text: &str,
    extensions: &[String],
) -> Result<(), StoreError> {
    queue_search(conn, id, indexed_key, Some((sort_key, text)))?;
    let mut ext = conn.prepare_cached(
        "INSERT OR IGNORE INTO call_extensions (extension, sort_key, call_id) VALUES (?1, ?2, ?3)",
    )?;
    for key in extensions {
        ext.execute(params![key, sort_key, id])?;
    }
    Ok(())
}

/// Records what the search index should hold for a call: `target` is its sort key and text,
/// None when the call is gone. The first queued `indexed_key` is kept, because until the
/// queue is applied that is what the index really holds.
fn queue_search(
    conn: &Connection,
    id: i64,
    indexed_key: Option<i64>,
    target: Option<(i64, &str)>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO search_pending (call_id, indexed_key, sort_key, text)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (call_id) DO UPDATE SET sort_key = excluded.sort_key, text = excluded.text",
    )?
    .execute(params![
        id,
        indexed_key,
        target.map(|t| t.0),
        target.map(|t| t.1)
    ])?;
    Ok(())
}

/// Applies the queued search-index work: every old entry out, then every call's latest text
/// in (all deletions first, so a sort key handed from one call to another is never doubled).
/// Returns how many calls were re-indexed.
pub(crate) fn flush_search(conn: &Connection) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "DELETE FROM calls_search WHERE rowid IN
            (SELECT indexed_key FROM search_pending WHERE indexed_key IS NOT NULL)",
    )?
    .execute([])?;
    conn.prepare_cached(
        "INSERT INTO calls_search (rowid, text)
         SELECT sort_key, text FROM search_pending WHERE text IS NOT NULL ORDER BY sort_key",
    )?
    .execute([])?;
    Ok(conn
        .prepare_cached("DELETE FROM search_pending")?
        .execute([])?)
}

/// Removes a call's extensions and queues the removal of its search text.
fn unindex_call(conn: &Connection, id: i64, sort_key: i64) -> Result<(), StoreError> {
    queue_search(conn, id, Some(sort_key), None)?;
    conn.prepare_cached("DELETE FROM call_extensions WHERE call_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The `calls` columns an insert or update writes, as [`call_column`] numbers them.
const CALL_COLUMN_NAMES: [&str; 24] = [
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
const EXTENSIONS_COLUMN: usize = 11;
const UPDATED_AT_COLUMN: usize = 23;

/// True when the text the search index holds for a call may differ between two versions.
/// Whether what the search text and the extension keys are built from differs: the parties
/// and who the extensions are, not how their legs went (which changes with nearly every event
/// and made every event rebuild and compare two search texts).
fn searchable_changed(a: &Call, b: &Call) -> bool {
    fn who(p: &ExtensionPart) -> (&Option<String>, &Option<String>, &Option<String>) {
        (&p.extension_id, &p.extension_number, &p.name)
    }
    a.from != b.from
        || a.to != b.to
        || !a
            .extensions
            .iter()
            .map(who)
            .eq(b.extensions.iter().map(who))
}

/// Appends `name = ?n` to an UPDATE's SET list.
fn set_column(sets: &mut String, name: &str, n: usize) {
    use std::fmt::Write;
    if !sets.is_empty() {
        sets.push_str(", ");
    }
    let _ = write!(sets, "{name} = ?{n}");
}

fn update_call(
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
    if let Some((old_key, key)) = new_key {
        let (text, keys) =
            index.get_or_insert_with(|| (search_text(call, opts), extension_keys(call)));
        index_call(conn, id, Some(old_key), key, text, keys)?;
    }
    Ok(())
}

fn delete_call(conn: &Connection, id: i64) -> Result<(), StoreError> {
    let key: Option<i64> = conn
        .query_row("SELECT sort_key FROM calls WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(key) = key {
        unindex_call(conn, id, key)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, DB_FILE};

    fn search(conn: &Connection, term: &str) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT rowid FROM calls_search WHERE calls_search MATCH ?1 ORDER BY rowid")
            .expect("prepare");
        let rows = stmt
            .query_map([format!("\"{term}\"")], |r| r.get(0))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    fn pending(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM search_pending", [], |r| r.get(0))
            .expect("count")
    }

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

    #[test]
    fn queued_search_work_lands_once_and_a_handed_over_sort_key_is_not_doubled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join(DB_FILE), crate::tests::options()).expect("open");
        let conn = &store.conn;
        queue_search(conn, 1, None, Some((100, "alpha one"))).expect("queue");
        queue_search(conn, 1, None, Some((100, "alpha two"))).expect("requeue");
        assert_eq!(
            search(conn, "alpha"),
            Vec::<i64>::new(),
            "nothing before the flush"
        );
        assert_eq!(flush_search(conn).expect("flush"), 1);
        assert_eq!(search(conn, "alpha two"), vec![100]);
        assert_eq!(
            search(conn, "alpha one"),
            Vec::<i64>::new(),
            "only the latest text"
        );

        // Call 1 moves from key 100 to 200 and call 2 takes 100, in one queue.
        queue_search(conn, 1, Some(100), Some((200, "alpha three"))).expect("move");
        queue_search(conn, 2, None, Some((100, "bravo"))).expect("new");
        flush_search(conn).expect("flush");
        assert_eq!(search(conn, "alpha"), vec![200]);
        assert_eq!(search(conn, "bravo"), vec![100]);
        assert_eq!(pending(conn), 0);

        // A call that moves twice before a flush still loses its indexed entry.
        queue_search(conn, 2, Some(100), Some((300, "bravo"))).expect("move");
        queue_search(conn, 2, Some(300), Some((400, "bravo"))).expect("move again");
        queue_search(conn, 1, Some(200), None).expect("gone");
        flush_search(conn).expect("flush");
        assert_eq!(search(conn, "bravo"), vec![400]);
        assert_eq!(search(conn, "alpha"), Vec::<i64>::new());
    }

    #[test]
    fn search_work_left_by_a_crash_is_applied_when_the_history_is_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let store = Store::open(&path, crate::tests::options()).expect("open");
        queue_search(&store.conn, 7, None, Some((700, "charlie"))).expect("queue");
        drop(store);
        let store = Store::open(&path, crate::tests::options()).expect("reopen");
        assert_eq!(search(&store.conn, "charlie"), vec![700]);
        assert_eq!(pending(&store.conn), 0);
    }

    fn ended_call() -> Call {
        let record = serde_json::json!({
            "id": "L1", "telephonySessionId": "s-1", "startTime": "2026-11-02T09:00:00Z",
            "duration": 60, "type": "Voice", "direction": "Inbound", "action": "Phone Call",
            "result": "Accepted",
            "from": {"phoneNumber": "+14155550123"},
            "to": {"phoneNumber": "+16505550100", "extensionNumber": "101"},
        });
        let delivery = callpop_core::ringcentral::calllog::record_to_delivery(
            &record,
            &callpop_core::numbers::Country::from_iso("US").expect("US"),
            Utc::now(),
        )
        .expect("record");
        let Payload::Calls(events) = delivery.parsed.payload else {
            panic!("a call-log record holds call events");
        };
        calls::derive(&events, 1, None).expect("a call")
    }

    /// A cache one call past full; `call_for(id)` is each call, put back in id order.
    fn overfull_cache(call_for: impl Fn(i64) -> Call) -> CallCache {
        let mut cache = CallCache::default();
        for id in 0..=CACHED_CALLS as i64 {
            cache
                .ids
                .insert((Provider::RingCentral, format!("k{id}")), id);
            let entry = CachedCall {
                events: Vec::new(),
                deliveries: 1,
                voicemail: None,
                call: call_for(id),
                last_used: 0,
            };
            cache.keep(id, entry);
        }
        cache
    }

    fn going_call() -> Call {
        let mut going = ended_call();
        going.ended_at = None;
        going
    }

    #[test]
    fn a_full_cache_drops_ended_calls_and_keeps_the_ones_still_going() {
        let ended = ended_call();
        assert!(ended.ended_at.is_some());
        let going = going_call();
        let mut cache = overfull_cache(|id| {
            if id % 10 == 0 {
                going.clone()
            } else {
                ended.clone()
            }
        });
        cache.trim();
        assert_eq!(cache.calls.len(), CACHED_CALLS / 10 + 1);
        assert!(cache.calls.values().all(|c| c.call.ended_at.is_none()));
        assert_eq!(
            cache.ids.len(),
            cache.calls.len(),
            "ids of dropped calls go too"
        );
    }

    #[test]
    fn a_cache_full_of_calls_still_going_keeps_the_most_recently_used_half() {
        let going = going_call();
        let mut cache = overfull_cache(|_| going.clone());
        cache.trim();
        let kept = CACHED_CALLS / 2;
        assert_eq!(
            cache.calls.len(),
            kept,
            "half stays: a burst's calls are not all re-read"
        );
        let newest = CACHED_CALLS as i64;
        let oldest_kept = newest - kept as i64 + 1;
        assert!(
            (oldest_kept..=newest).all(|id| cache.calls.contains_key(&id)),
            "the calls used last are the ones kept"
        );
        assert_eq!(cache.ids.len(), kept, "ids of dropped calls go too");
    }
}
