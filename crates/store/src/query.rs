//! Reading the history: filtered, searchable, newest-first pages of calls; raw deliveries;
//! quarantine; counters for health.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Row};

use super::{from_ms, to_ms, Store, StoreError};
use callpop_core::model::{
    Call, CallDirection, CallResult, CallState, CallVoicemail, ExtensionPart, PartySummary,
    Provider,
};

/// Columns read by [`call_from_row`], in order.
pub(crate) const CALL_COLUMNS: &str = "id, provider, call_key, direction, state, result, \
    from_raw, from_e164, from_name, to_raw, to_e164, to_name, extensions, started_at, \
    answered_at, ended_at, ring_seconds, talk_seconds, recording_url, voicemail_id, \
    voicemail_seconds, voicemail_url, event_count, last_event_at, updated_at, sort_key";

/// A stored call with its row id.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Row id (stable; used by `callpop events --call`).
    pub id: i64,
    /// The call.
    pub call: Call,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// Position in the newest-first list; the cursor for the next page.
    pub sort_key: i64,
}

/// Reads one `calls` row selected with [`CALL_COLUMNS`].
pub(crate) fn call_from_row(r: &Row<'_>) -> rusqlite::Result<Result<CallRecord, StoreError>> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("{what} {v:?}"));
    let provider: String = r.get(1)?;
    let direction: String = r.get(3)?;
    let state: String = r.get(4)?;
    let result: Option<String> = r.get(5)?;
    let extensions: String = r.get(12)?;
    let voicemail_id: Option<String> = r.get(19)?;
    let voicemail_seconds: Option<i64> = r.get(20)?;
    let voicemail_url: Option<String> = r.get(21)?;
    let record = (|| {
        let extensions: Vec<ExtensionPart> = serde_json::from_str(&extensions)
            .map_err(|e| StoreError::Corrupt(format!("extensions: {e}")))?;
        Ok(CallRecord {
            id: r.get(0)?,
            updated_at: from_ms(r.get(24)?),
            sort_key: r.get(25)?,
            call: Call {
                provider: Provider::parse(&provider)
                    .ok_or_else(|| corrupt("provider", &provider))?,
                call_key: r.get(2)?,
                direction: CallDirection::parse(&direction)
                    .ok_or_else(|| corrupt("direction", &direction))?,
                state: CallState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
                result: match result {
                    Some(r) => Some(CallResult::parse(&r).ok_or_else(|| corrupt("result", &r))?),
                    None => None,
                },
                from: PartySummary {
                    raw: r.get(6)?,
                    e164: r.get(7)?,
                    name: r.get(8)?,
                },
                to: PartySummary {
                    raw: r.get(9)?,
                    e164: r.get(10)?,
                    name: r.get(11)?,
                },
                extensions,
                started_at: from_ms(r.get(13)?),
                answered_at: r.get::<_, Option<i64>>(14)?.map(from_ms),
                ended_at: r.get::<_, Option<i64>>(15)?.map(from_ms),
                ring_seconds: r.get(16)?,
                talk_seconds: r.get(17)?,
                recording_url: r.get(18)?,
                voicemail: (voicemail_id.is_some()
                    || voicemail_seconds.is_some()
                    || voicemail_url.is_some())
                .then_some(CallVoicemail {
                    message_id: voicemail_id,
                    seconds: voicemail_seconds,
                    url: voicemail_url,
                }),
                event_count: r.get(22)?,
                last_event_at: from_ms(r.get(23)?),
            },
        })
    })();
    Ok(record)
}

const RAW_EVENT_COLUMNS: &str = "id, provider, dedup_key, kind, received_at, event_time, \
    body_sha256, headers, body, redeliveries";

/// Reads one `raw_events` row selected with [`RAW_EVENT_COLUMNS`] (call ids filled in later).
fn raw_event_from_row(r: &Row<'_>) -> rusqlite::Result<Result<RawEventRecord, StoreError>> {
    let provider: String = r.get(1)?;
    let headers: String = r.get(7)?;
    let Some(provider) = Provider::parse(&provider) else {
        return Ok(Err(StoreError::Corrupt(format!("provider {provider:?}"))));
    };
    Ok(Ok(RawEventRecord {
        id: r.get(0)?,
        provider,
        dedup_key: r.get(2)?,
        kind: r.get(3)?,
        received_at: from_ms(r.get(4)?),
        event_time: r.get::<_, Option<i64>>(5)?.map(from_ms),
        body_sha256: r.get(6)?,
        headers: serde_json::from_str(&headers).unwrap_or(serde_json::Value::Null),
        body: r.get(8)?,
        redeliveries: r.get(9)?,
        call_ids: Vec::new(),
    }))
}

/// Which calls to list.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Free text: a number fragment in any format, a name or an extension.
    pub search: Option<String>,
    /// Calls that started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Calls that started before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only this outcome: the call's, or with `extension` / `any_extension` that desk's own
    /// ([`callpop_core::model::ExtensionPart::outcome`]).
    pub result: Option<CallResult>,
    /// Only calls in this state (`Ringing`: still ringing now).
    pub state: Option<CallState>,
    /// Only this direction.
    pub direction: Option<CallDirection>,
    /// Only calls an extension (id or number) took part in.
    pub extension: Option<String>,
    /// Only calls at least one of these extensions took part in (the watch list).
    pub any_extension: Vec<String>,
    /// Only this phone system.
    pub provider: Option<Provider>,
    /// Page size (0 = no limit).
    pub limit: usize,
    /// Keyset cursor: only calls listed after this one ([`CallRecord::sort_key`]).
    pub after: Option<i64>,
}

/// A stored raw delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEventRecord {
    /// Row id.
    pub id: i64,
    /// Phone system.
    pub provider: Provider,
    /// De-duplication key.
    pub dedup_key: String,
    /// Event kind label.
    pub kind: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// When the provider says it happened.
    pub event_time: Option<DateTime<Utc>>,
    /// SHA-256 of the body as received.
    pub body_sha256: String,
    /// Kept request headers (JSON object).
    pub headers: serde_json::Value,
    /// The stored body.
    pub body: Vec<u8>,
    /// How many times it was delivered again.
    pub redeliveries: i64,
    /// Calls it contributed to.
    pub call_ids: Vec<i64>,
}

/// Which raw deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only deliveries that contributed to this call.
    pub call_id: Option<i64>,
    /// Page size (0 = no limit).
    pub limit: usize,
}

/// A quarantined body.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    /// Row id.
    pub id: i64,
    /// Phone system it claimed to come from.
    pub provider: Provider,
    /// First arrival.
    pub received_at: DateTime<Utc>,
    /// Latest arrival.
    pub last_received_at: DateTime<Utc>,
    /// How many times this exact body arrived.
    pub occurrences: i64,
    /// Why it could not be used.
    pub reason: String,
    /// SHA-256 of the body as received.
    pub body_sha256: String,
    /// Kept request headers.
    pub headers: serde_json::Value,
    /// The body.
    pub body: Vec<u8>,
    /// When a replay resolved it.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A call's desktop popup, as remembered across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopupRecord {
    /// The call.
    pub call_id: i64,
    /// `ringing`, `answered` or `missed`.
    pub phase: String,
    /// The id the notification server gave the popup.
    pub notification_id: Option<u32>,
    /// The popup is no longer on screen.
    pub closed: bool,
    /// When it was first shown.
    pub shown_at: DateTime<Utc>,
}

/// Counters for health views.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Calls in the history.
    pub calls: i64,
    /// Raw deliveries stored.
    pub raw_events: i64,
    /// Quarantined bodies not yet resolved.
    pub quarantined: i64,
    /// Arrival time of the newest delivery.
    pub last_received_at: Option<DateTime<Utc>>,
}

/// Splits a search into index terms: phone-looking input becomes one digit string so that
/// `(415) 555-01`, `415 555 01` and `41555501` all find the same numbers.
fn search_terms(q: &str) -> Vec<String> {
    let is_phoneish = |s: &str| {
        s.chars().any(|c| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_digit() || " +-().\u{a0}/".contains(c))
    };
    let q = q.trim();
    if is_phoneish(q) {
        return vec![q.chars().filter(char::is_ascii_digit).collect()];
    }
    q.split_whitespace()
        .flat_map(|t| {
            if is_phoneish(t) {
                vec![t.chars().filter(char::is_ascii_digit).collect()]
            } else {
                // Folded as the index holds names: `José` finds Jose, `o'brien` O'Brien. A
                // term folding apart into pieces too short for the index (`AT&T`) is looked
                // up as typed: the index holds names as given too.
                let folded = callpop_core::text::fold_for_search(t);
                let raw = t.to_lowercase();
                if folded.split(' ').any(|p| p.chars().count() < 3) && raw.chars().count() >= 3 {
                    vec![raw]
                } else {
                    folded.split(' ').map(str::to_string).collect()
                }
            }
        })
        .filter(|t: &String| !t.is_empty())
        .collect()
}

/// How a listing is read: which index walks the calls newest first, and the checks every
/// candidate must pass. Walking an index already in list order means a page costs about
/// (page size ÷ share of calls that match) steps, however many calls match in all.
struct ListPlan {
    /// FROM … WHERE …, with the calls row aliased `c`.
    from_where: String,
    /// The sort-key column of the walked index.
    key: &'static str,
    args: Vec<Value>,
}

/// A LIKE pattern for a word starting with `t`, matched against `' ' || name`.
fn like_word_prefix(t: &str) -> String {
    format!(
        "% {}%",
        t.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

fn list_plan(filter: &CallFilter) -> ListPlan {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let (mut long, mut short) = (Vec::new(), Vec::new());
    if let Some(q) = filter.search.as_deref().filter(|q| !q.trim().is_empty()) {
        (long, short) = search_terms(q)
            .into_iter()
            .partition(|t| t.chars().count() >= 3);
    }
    let extension = filter
        .extension
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let watched: Vec<&str> = filter
        .any_extension
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    // The trigram index finds text fastest; else one extension's own list; else the calls in
    // time order. CROSS JOIN keeps SQLite from reordering the walk.
    // With no explicit extension, a watch list of one is walked like an extension filter.
    let single_watched = match (extension, watched.as_slice()) {
        (None, [only]) => Some(*only),
        _ => None,
    };
    // A result asked together with an extension (or "mine") is that desk's own outcome: the
    // transfer 202 did not pick up is 202's missed call, though the call was answered.
    let desk_result = filter
        .result
        .filter(|_| extension.is_some() || !watched.is_empty());
    let walked_extension = if long.is_empty() {
        extension.or(single_watched)
    } else {
        None
    };
    let (from, key) = if !long.is_empty() {
        let expr = long
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" AND ");
        conds.push("calls_search MATCH ?".into());
        args.push(Value::Text(expr));
        (
            "calls_search CROSS JOIN calls c ON c.sort_key = calls_search.rowid",
            "calls_search.rowid",
        )
    } else if let Some(ext) = walked_extension {
        conds.push("e.extension = ?".into());
        args.push(Value::Text(ext.to_string()));
        if let Some(r) = desk_result {
            conds.push("e.result = ?".into());
            args.push(Value::Text(r.as_str().into()));
        }
        (
            "call_extensions e CROSS JOIN calls c ON c.id = e.call_id",
            "e.sort_key",
        )
    } else {
        ("calls c", "c.sort_key")
    };
    if let Some(ext) = extension.filter(|_| walked_extension.is_none()) {
        let own = if desk_result.is_some() {
            " AND x.result = ?"
        } else {
            ""
        };
        conds.push(format!(
            "EXISTS (SELECT 1 FROM call_extensions x WHERE x.call_id = c.id AND x.extension = ?{own})"
        ));
        args.push(Value::Text(ext.to_string()));
        args.extend(desk_result.map(|r| Value::Text(r.as_str().into())));
    }
    let watch_walked = single_watched.is_some() && walked_extension.is_some();
    if !watched.is_empty() && !watch_walked {
        let marks = vec!["?"; watched.len()].join(", ");
        // With an extension filter too, that one's outcome decides; else a watched desk's.
        let own = if desk_result.is_some() && extension.is_none() {
            " AND x.result = ?"
        } else {
            ""
        };
        conds.push(format!(
            "EXISTS (SELECT 1 FROM call_extensions x WHERE x.call_id = c.id AND x.extension IN ({marks}){own})"
        ));
        args.extend(watched.iter().map(|e| Value::Text(e.to_string())));
        if !own.is_empty() {
            args.extend(desk_result.map(|r| Value::Text(r.as_str().into())));
        }
    }
    // The trigram index cannot look up one- or two-character terms: match them against
    // extensions exactly and against the start of any word of a name.
    for t in short {
        conds.push(
            "(EXISTS (SELECT 1 FROM call_extensions x WHERE x.call_id = c.id AND x.extension = ?) \
              OR ' ' || c.from_name LIKE ? ESCAPE '\\' OR ' ' || c.to_name LIKE ? ESCAPE '\\')"
                .into(),
        );
        let like = like_word_prefix(&t);
        args.push(Value::Text(t));
        args.push(Value::Text(like.clone()));
        args.push(Value::Text(like));
    }
    if let Some(t) = filter.since {
        conds.push(format!("{key} >= ?"));
        args.push(Value::Integer(super::sort_key_floor(t)));
    }
    if let Some(t) = filter.until {
        conds.push(format!("{key} < ?"));
        args.push(Value::Integer(super::sort_key_floor(t)));
    }
    if let Some(after) = filter.after {
        conds.push(format!("{key} < ?"));
        args.push(Value::Integer(after));
    }
    if let Some(r) = filter.result.filter(|_| desk_result.is_none()) {
        conds.push("c.result = ?".into());
        args.push(Value::Text(r.as_str().into()));
    }
    if let Some(st) = filter.state {
        conds.push("c.state = ?".into());
        args.push(Value::Text(st.as_str().into()));
    }
    if let Some(d) = filter.direction {
        conds.push("c.direction = ?".into());
        args.push(Value::Text(d.as_str().into()));
    }
    if let Some(p) = filter.provider {
        conds.push("c.provider = ?".into());
        args.push(Value::Text(p.as_str().into()));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    ListPlan {
        from_where: format!("{from}{clause}"),
        key,
        args,
    }
}

impl Store {
    /// Lists calls newest first.
    pub fn calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let mut out = Vec::new();
        self.for_each_call(filter, |record| {
            out.push(record.clone());
            Ok(())
        })?;
        Ok(out)
    }

    /// Visits every matching call newest first without holding them all in memory (CSV export).
    pub fn for_each_call(
        &self,
        filter: &CallFilter,
        mut visit: impl FnMut(&CallRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let plan = list_plan(filter);
        let mut args = plan.args;
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        args.push(Value::Integer(limit));
        let columns = CALL_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM {} ORDER BY {} DESC LIMIT ?",
            plan.from_where, plan.key
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            visit(&call_from_row(row)??)?;
        }
        Ok(())
    }

    /// Counts matching calls, stopping at `cap` (a count costs a walk over every match).
    pub fn count_calls(&self, filter: &CallFilter, cap: Option<u64>) -> Result<u64, StoreError> {
        let plan = list_plan(filter);
        let mut args = plan.args;
        args.push(Value::Integer(
            cap.map_or(-1, |c| c.min(i64::MAX as u64) as i64),
        ));
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT ?)",
            plan.from_where
        );
        let n: i64 = self
            .conn
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
        Ok(n as u64)
    }

    /// One call by row id.
    pub fn call(&self, id: i64) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = ?1");
        let row = self.conn.query_row(&sql, [id], call_from_row).optional()?;
        row.transpose()
    }

    /// One call by provider and key.
    pub fn call_by_key(
        &self,
        provider: Provider,
        call_key: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE provider = ?1 AND call_key = ?2");
        let row = self
            .conn
            .query_row(&sql, params![provider.as_str(), call_key], call_from_row)
            .optional()?;
        row.transpose()
    }

    /// Raw deliveries newest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<RawEventRecord>, StoreError> {
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        let (clause, args): (&str, Vec<Value>) = match filter.call_id {
            Some(id) => (
                "WHERE id IN (SELECT raw_event_id FROM call_events WHERE call_id = ?1 \
                 UNION SELECT raw_event_id FROM voicemails WHERE call_id = ?1)",
                vec![Value::Integer(id), Value::Integer(limit)],
            ),
            None => ("", vec![Value::Integer(limit)]),
        };
        let limit_param = if filter.call_id.is_some() { "?2" } else { "?1" };
        let sql = format!(
            "SELECT {RAW_EVENT_COLUMNS} FROM raw_events {clause}
             ORDER BY id DESC LIMIT {limit_param}"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), raw_event_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            let mut record = row??;
            record.call_ids = self.calls_of_raw_event(record.id)?;
            out.push(record);
        }
        Ok(out)
    }

    /// One raw delivery by row id.
    pub fn raw_event(&self, id: i64) -> Result<Option<RawEventRecord>, StoreError> {
        let sql = format!("SELECT {RAW_EVENT_COLUMNS} FROM raw_events WHERE id = ?1");
        let row = self
            .conn
            .query_row(&sql, [id], raw_event_from_row)
            .optional()?;
        let Some(mut record) = row.transpose()? else {
            return Ok(None);
        };
        record.call_ids = self.calls_of_raw_event(record.id)?;
        Ok(Some(record))
    }

    /// Ids of every raw delivery, oldest first (for replaying the whole history).
    pub fn raw_event_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id FROM raw_events ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    fn calls_of_raw_event(&self, raw_event_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT call_id FROM call_events WHERE raw_event_id = ?1
             UNION SELECT call_id FROM voicemails WHERE raw_event_id = ?1 AND call_id IS NOT NULL
             ORDER BY 1",
        )?;
        let ids = stmt
            .query_map([raw_event_id], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    /// Quarantined bodies newest first; `open_only` hides resolved ones.
    pub fn quarantined(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<QuarantineRecord>, StoreError> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        let sql =
            format!(
            "SELECT id, provider, received_at, last_received_at, occurrences, reason, body_sha256,
                    headers, body, resolved_at
             FROM quarantine {} ORDER BY last_received_at DESC, id DESC LIMIT ?1",
            if open_only { "WHERE resolved_at IS NULL" } else { "" }
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Vec<u8>>(8)?,
                r.get::<_, Option<i64>>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, provider, received, last, occurrences, reason, sha, headers, body, resolved) =
                row?;
            out.push(QuarantineRecord {
                id,
                provider: Provider::parse(&provider)
                    .ok_or_else(|| StoreError::Corrupt(format!("provider {provider:?}")))?,
                received_at: from_ms(received),
                last_received_at: from_ms(last),
                occurrences,
                reason,
                body_sha256: sha,
                headers: serde_json::from_str(&headers).unwrap_or(serde_json::Value::Null),
                body,
                resolved_at: resolved.map(from_ms),
            });
        }
        Ok(out)
    }

    /// Popups shown since `since` (the popup manager's memory after a restart).
    pub fn popups_since(&self, since: DateTime<Utc>) -> Result<Vec<PopupRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT call_id, phase, notification_id, closed, shown_at FROM popups
             WHERE updated_at >= ?1 ORDER BY call_id",
        )?;
        let rows = stmt.query_map([to_ms(since)], |r| {
            Ok(PopupRecord {
                call_id: r.get(0)?,
                phase: r.get(1)?,
                notification_id: r
                    .get::<_, Option<i64>>(2)?
                    .and_then(|n| u32::try_from(n).ok()),
                closed: r.get::<_, i64>(3)? != 0,
                shown_at: from_ms(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Arrival time of the newest live webhook delivery (not backfill or replay).
    pub fn last_live_delivery_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // Rows are appended in arrival order: the newest live one is the last of its kind.
        let ms: Option<i64> = self
            .conn
            .query_row(
                "SELECT received_at FROM raw_events WHERE kind != 'call_log' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(ms.map(from_ms))
    }

    /// Counters for the health view.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let calls: i64 = self
            .conn
            .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))?;
        let (raw_events, last): (i64, Option<i64>) = self.conn.query_row(
            "SELECT count(*), (SELECT received_at FROM raw_events ORDER BY id DESC LIMIT 1)
             FROM raw_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let quarantined: i64 = self.conn.query_row(
            "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(StoreStats {
            calls,
            raw_events,
            quarantined,
            last_received_at: last.map(from_ms),
        })
    }
}

/// Start of the oldest RingCentral call that started at or after `since` and is still ringing
/// or connected, or was ended as `no_end_reported`. Such a call may have lost its end in a gap
/// (a crash, a dead tunnel), and only its call-log record, filed under its start, can
/// complete it: the rule ending unheard calls runs at start, before the gap is filled.
pub(crate) fn oldest_open_call(
    conn: &rusqlite::Connection,
    since: DateTime<Utc>,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let ms: Option<i64> = conn
        .prepare_cached(
            "SELECT min(started_at) FROM calls
             WHERE sort_key >= ?1 AND provider = ?2
               AND (state IN (?3, ?4) OR result = 'no_end_reported')",
        )?
        .query_row(
            params![
                super::sort_key_floor(since),
                Provider::RingCentral.as_str(),
                CallState::Ringing.as_str(),
                CallState::Connected.as_str()
            ],
            |r| r.get(0),
        )?;
    Ok(ms.map(from_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history holding an answered call whose hang-up has not arrived; returns the hang-up.
    fn answered_but_not_hung_up(dir: &std::path::Path) -> (Store, callpop_core::model::Delivery) {
        let path = dir.join(crate::DB_FILE);
        let mut store = Store::open(&path, crate::tests::options()).expect("open");
        let mut deliveries = crate::tests::scenario("rc-inbound-answered");
        let hang_up = deliveries.pop().expect("events");
        for d in &deliveries {
            store.ingest(d).expect("ingest");
        }
        (store, hang_up)
    }

    #[test]
    fn a_call_stays_open_to_the_catch_up_until_its_end_arrives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, hang_up) = answered_but_not_hung_up(dir.path());
        let hang_up = &hang_up;
        let (started, state): (i64, String) = store
            .conn
            .query_row("SELECT started_at, state FROM calls", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("the call");
        assert_eq!(state, "connected");
        let started = from_ms(started);
        let day = chrono::Duration::hours(24);
        let open = |store: &Store, since| oldest_open_call(&store.conn, since).expect("query");
        assert_eq!(open(&store, started - day), Some(started));
        assert_eq!(
            open(&store, started + chrono::Duration::milliseconds(1)),
            None,
            "it started before the cut-off"
        );
        store.ingest(hang_up).expect("ingest");
        assert_eq!(open(&store, started - day), None, "it ended");
    }

    /// Issue 25 #3b: a call whose end never comes gets `no_end_reported` after the bound,
    /// through the partial index; a real end arriving later still wins.
    #[test]
    fn a_call_whose_end_never_comes_is_ended_as_such_until_its_end_arrives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, hang_up) = answered_but_not_hung_up(dir.path());
        let hang_up = &hang_up;
        let call = |store: &Store| {
            store.calls(&CallFilter::default()).expect("calls")[0]
                .call
                .clone()
        };
        let connected = call(&store);
        assert_eq!(connected.state, CallState::Connected);
        let heard = connected.last_event_at;
        let plan: String = store
            .conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM calls WHERE state IN ('ringing', 'connected') \
                 AND last_event_at < 0",
                [],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(plan.contains("calls_unended"), "{plan}");

        // Within the bound for connected calls (only ringing ones are past theirs): untouched.
        let second = chrono::Duration::seconds(1);
        let none = store
            .end_unheard_calls(heard + second, heard - second)
            .expect("sweep");
        assert!(none.is_empty());
        let ended = store
            .end_unheard_calls(heard + second, heard + second)
            .expect("sweep");
        assert_eq!(ended.len(), 1);
        let swept = call(&store);
        assert_eq!(swept.state, CallState::Ended);
        assert_eq!(swept.result, Some(CallResult::NoEndReported));
        assert_eq!(swept.ended_at, Some(heard));
        let filtered = store
            .calls(&CallFilter {
                result: Some(CallResult::NoEndReported),
                ..Default::default()
            })
            .expect("filter");
        assert_eq!(filtered.len(), 1);
        // The backfill still reaches back for it: its call-log record can complete it.
        let day = chrono::Duration::hours(24);
        assert_eq!(
            oldest_open_call(&store.conn, swept.started_at - day).expect("query"),
            Some(swept.started_at)
        );

        // The hang-up arrives after all: the real end replaces the guess.
        store.ingest(hang_up).expect("ingest");
        let real = call(&store);
        assert_eq!(real.result, Some(CallResult::Answered));
        assert_ne!(real.ended_at, Some(heard));
    }

    /// Issue 25 #8: names are found as people type them, also in a history indexed before
    /// names were folded.
    #[test]
    fn names_are_found_without_their_accents_and_apostrophes_after_an_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::DB_FILE);
        let mut store = Store::open(&path, crate::tests::options()).expect("open");
        for d in crate::tests::scenario("rc-inbound-answered") {
            store.ingest(&d).expect("ingest");
        }
        let name = "José Müller-O'Brien";
        // The history as an older CallPop left it: the name, indexed unfolded, at version 4.
        store
            .conn
            .execute_batch(&format!(
                "{}
                 UPDATE calls SET from_name = '{}';
                 DELETE FROM calls_search;
                 INSERT INTO calls_search (rowid, text) SELECT sort_key, '{}' FROM calls;
                 DROP INDEX calls_unended;
                 ALTER TABLE call_extensions DROP COLUMN result;
                 DROP INDEX raw_events_content;
                 ALTER TABLE raw_events DROP COLUMN content_key;
                 PRAGMA user_version = 4;",
                crate::schema::UNDO_FEED,
                name.replace('\'', "''"),
                name.replace('\'', "''")
            ))
            .expect("downgrade");
        drop(store);
        let store = Store::open(&path, crate::tests::options()).expect("reopen");
        let found = |q: &str| {
            store
                .calls(&CallFilter {
                    search: Some(q.into()),
                    ..Default::default()
                })
                .expect("search")
                .len()
        };
        for q in [
            "jose",
            "muller",
            "obrien",
            "o'brien",
            "MÜLLER-O'BRIEN",
            "José",
        ] {
            assert_eq!(found(q), 1, "{q:?} finds the call");
        }
        assert_eq!(found("josef"), 0);
        // The desks' own outcomes were filled in for the stored call too.
        let desk_answered = store
            .calls(&CallFilter {
                extension: Some("101".into()),
                result: Some(CallResult::Answered),
                ..Default::default()
            })
            .expect("filter");
        assert_eq!(desk_answered.len(), 1);
    }

    #[test]
    fn phone_looking_searches_become_digit_strings() {
        assert_eq!(search_terms("(415) 555-01"), vec!["41555501"]);
        assert_eq!(search_terms("AT&T Mobility"), vec!["at&t", "mobility"]);
        assert_eq!(
            search_terms("José O'Brien-Smith"),
            vec!["jose", "obrien", "smith"]
        );
        assert_eq!(search_terms("+61 412 345"), vec!["61412345"]);
        assert_eq!(search_terms("Jane 0412"), vec!["jane", "0412"]);
        assert_eq!(search_terms("  "), Vec::<String>::new());
    }
}
