//! What the desktop window reads, as plain serializable data: pages of calls, one call's
//! detail (timeline and raw deliveries). It knows nothing of Tauri, so all of it is
//! tested here; the shell only forwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use callpop_core::lines::{dialled_line_label, LineLabel};
use callpop_core::model::{
    Call, CallDirection, CallResult, CallState, ExtensionPart, LegState, Payload, Provider,
};
use callpop_core::numbers::Country;
use callpop_store::{CallFilter, CallRecord, EventFilter, RawEventRecord, Store, StoreError};

/// Most calls one page may ask for.
pub const MAX_PAGE: u32 = 500;

/// Counting stops here: beyond it the window says "1,000+ calls", and a count never costs
/// more than walking this many matches.
pub const COUNT_CAP: u64 = 1_000;

/// Raw deliveries shown with a call (newest first); a call has a few dozen at most.
const MAX_DELIVERIES: usize = 200;

/// Longest raw body shown in the window.
const MAX_BODY_SHOWN: usize = 64 * 1024;

/// One call as a row of the call log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CallView {
    /// Row id.
    pub id: i64,
    /// Phone system.
    pub provider: Provider,
    /// The provider's call id.
    pub call_key: String,
    /// From the dealership's side.
    pub direction: CallDirection,
    /// Where the call is now.
    pub state: CallState,
    /// How it turned out, once known.
    pub result: Option<CallResult>,
    /// Calling number as sent.
    pub from: Option<String>,
    /// Calling number, E.164.
    pub from_e164: Option<String>,
    /// Caller ID name.
    pub from_name: Option<String>,
    /// Called number as sent.
    pub to: Option<String>,
    /// Called number, E.164.
    pub to_e164: Option<String>,
    /// Called party's name.
    pub to_name: Option<String>,
    /// The dealership's name for the dialled line ("Sales"), when one is configured.
    pub line_label: Option<String>,
    /// Extensions that rang, answered or placed the call.
    pub extensions: Vec<ExtensionPart>,
    /// First sign of the call.
    pub started_at: DateTime<Utc>,
    /// First answer.
    pub answered_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds ringing.
    pub ring_seconds: i64,
    /// Seconds talking.
    pub talk_seconds: i64,
    /// Recording location.
    pub recording_url: Option<String>,
    /// Voicemail message id.
    pub voicemail_id: Option<String>,
    /// Voicemail length.
    pub voicemail_seconds: Option<i64>,
    /// Voicemail audio location.
    pub voicemail_url: Option<String>,
    /// Deliveries that made this call.
    pub event_count: i64,
    /// Newest event.
    pub last_event_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

impl CallView {
    /// The row for `record`, with the dialled line's label from `labels`.
    pub fn new(record: &CallRecord, labels: &[LineLabel]) -> CallView {
        CallView::of_call(record.id, &record.call, record.updated_at, labels)
    }

    /// The row for a call that just changed (broadcast before it is read back).
    pub fn of_call(id: i64, c: &Call, updated_at: DateTime<Utc>, labels: &[LineLabel]) -> CallView {
        let vm = c.voicemail.clone().unwrap_or_default();
        CallView {
            id,
            provider: c.provider,
            call_key: c.call_key.clone(),
            direction: c.direction,
            state: c.state,
            result: c.result,
            from: c.from.raw.clone(),
            from_e164: c.from.e164.clone(),
            from_name: c.from.name.clone(),
            to: c.to.raw.clone(),
            to_e164: c.to.e164.clone(),
            to_name: c.to.name.clone(),
            line_label: dialled_line_label(c, labels),
            extensions: c.extensions.clone(),
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            ring_seconds: c.ring_seconds,
            talk_seconds: c.talk_seconds,
            recording_url: c.recording_url.clone(),
            voicemail_id: vm.message_id,
            voicemail_seconds: vm.seconds,
            voicemail_url: vm.url,
            event_count: c.event_count,
            last_event_at: c.last_event_at,
            updated_at,
        }
    }
}

/// Which calls the log shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CallQuery {
    /// A number fragment in any format, a name or an extension.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub search: Option<String>,
    /// Calls that started at or after this time (RFC 3339).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub since: Option<String>,
    /// Calls that started before this time (RFC 3339).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub until: Option<String>,
    /// Only this outcome.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub result: Option<CallResult>,
    /// Only this direction.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub direction: Option<CallDirection>,
    /// Only calls this extension took part in.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub extension: Option<String>,
    /// Only calls of the watched extensions.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub mine: Option<bool>,
    /// Page size (0 = every call, for export).
    pub limit: u32,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub cursor: Option<String>,
}

/// A page of the call log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CallPage {
    /// Newest first.
    pub calls: Vec<CallView>,
    /// Pass back for the next page; `null` after the last one.
    pub next_cursor: Option<String>,
    /// How many calls match, when at most [`COUNT_CAP`] do (first page only).
    pub total: Option<u64>,
    /// Set instead of `total` when more than this many match.
    pub total_at_least: Option<u64>,
}

/// One step in a call's life, read from one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TimelineEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The leg (party) it is about.
    pub leg: String,
    /// The leg's extension number (or id).
    pub extension: Option<String>,
    /// Which kind of event said so (`telephony_session`, `presence`, `call_log`,
    /// `ringotel_start`, …, `voicemail`).
    pub source: String,
    /// Normalized leg state.
    pub state: Option<LegState>,
    /// The provider's status code as sent.
    pub code: Option<String>,
    /// The provider's reason (`BlindTransfer`, …).
    pub reason: Option<String>,
    /// The raw delivery it came from.
    pub delivery_id: i64,
}

/// A raw delivery as received (credentials were never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DeliveryView {
    /// Row id (`callpop events replay ID`).
    pub id: i64,
    /// Phone system.
    pub provider: Provider,
    /// Event type.
    pub kind: String,
    /// De-duplication key.
    pub dedup_key: String,
    /// When CallPop received it.
    pub received_at: DateTime<Utc>,
    /// Times it was delivered again.
    pub redeliveries: i64,
    /// Kept request headers.
    pub headers: BTreeMap<String, String>,
    /// The body as text (cut at 64 KiB).
    pub body: String,
}

/// A call with its timeline and raw deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CallDetail {
    /// The call.
    pub call: CallView,
    /// The "Open in CRM" link, filled exactly as the popup's button fills it
    /// (`callpop_core::crm`); none without a template.
    pub crm_url: Option<String>,
    /// Its events, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Its deliveries, newest first.
    pub deliveries: Vec<DeliveryView>,
    /// Why the timeline and deliveries are missing, when they are (on a desk, they are kept
    /// at the hub, which may be out of reach).
    pub remote_note: Option<String>,
}

/// Why the window's request failed, in words for the person using it.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No such call.
    #[error("call {0} is not in the history")]
    NoSuchCall(i64),
    /// The history could not be read.
    #[error("the call history cannot be read: {0}")]
    Store(#[from] StoreError),
    /// The export file could not be written.
    #[error("cannot write {0}: {1}")]
    Export(String, std::io::Error),
}

fn parse_time(field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, WindowError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    WindowError::Invalid(format!("{field} must be a date and time, got {v:?}"))
                })
        })
        .transpose()
}

impl CallQuery {
    /// The store filter for this query; `watched` are the extensions "mine" stands for.
    pub fn filter(&self, watched: &[String]) -> Result<CallFilter, WindowError> {
        let since = parse_time("since", &self.since)?;
        let until = parse_time("until", &self.until)?;
        if let (Some(s), Some(u)) = (since, until) {
            if u <= s {
                return Err(WindowError::Invalid(
                    "the end of the date range must be after its start".into(),
                ));
            }
        }
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(
                c.parse::<i64>()
                    .map_err(|_| WindowError::Invalid(format!("not a page cursor: {c:?}")))?,
            ),
            None => None,
        };
        if self.limit > MAX_PAGE {
            return Err(WindowError::Invalid(format!(
                "a page holds at most {MAX_PAGE} calls"
            )));
        }
        let mine = self.mine.unwrap_or(false);
        if mine && watched.is_empty() {
            return Err(WindowError::Invalid(
                "\"my calls\" needs watched extensions: add yours in Settings".into(),
            ));
        }
        Ok(CallFilter {
            search: self
                .search
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(100).collect()),
            since,
            until,
            result: self.result,
            state: None,
            direction: self.direction,
            extension: self
                .extension
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from),
            any_extension: if mine { watched.to_vec() } else { Vec::new() },
            provider: None,
            limit: self.limit as usize,
            after,
        })
    }
}

/// A page of the call log; the first page also says how many calls match.
pub fn list_calls(
    store: &Store,
    query: &CallQuery,
    watched: &[String],
    labels: &[LineLabel],
) -> Result<CallPage, WindowError> {
    if query.limit == 0 {
        return Err(WindowError::Invalid("a page needs a size".into()));
    }
    let filter = query.filter(watched)?;
    let records = store.calls(&filter)?;
    let next_cursor = (records.len() == filter.limit)
        .then(|| records.last().map(|r| r.sort_key.to_string()))
        .flatten();
    let (total, total_at_least) = if filter.after.is_none() {
        let n = store.count_calls(&filter, Some(COUNT_CAP + 1))?;
        if n > COUNT_CAP {
            (None, Some(COUNT_CAP))
        } else {
            (Some(n), None)
        }
    } else {
        (None, None)
    };
    Ok(CallPage {
        calls: records.iter().map(|r| CallView::new(r, labels)).collect(),
        next_cursor,
        total,
        total_at_least,
    })
}

/// One call with its timeline (every event re-read from its stored delivery) and deliveries.
pub fn call_detail(
    store: &Store,
    id: i64,
    country: &Country,
    labels: &[LineLabel],
    crm_template: Option<&str>,
) -> Result<CallDetail, WindowError> {
    let record = store.call(id)?.ok_or(WindowError::NoSuchCall(id))?;
    let raw = store.events(&EventFilter {
        call_id: Some(id),
        limit: 0,
    })?;
    Ok(detail_of(&record, &raw, country, labels, crm_template))
}

/// A call's detail from its row and its stored deliveries (the desk's own, or the hub's).
pub fn detail_of(
    record: &CallRecord,
    raw: &[RawEventRecord],
    country: &Country,
    labels: &[LineLabel],
    crm_template: Option<&str>,
) -> CallDetail {
    let mut timeline = Vec::new();
    for r in raw {
        let stored = callpop_core::reparse::StoredBody {
            provider: r.provider,
            kind: &r.kind,
            body: &r.body,
            body_sha256: &r.body_sha256,
            received_at: r.received_at,
        };
        // A delivery today's parser cannot read still shows under deliveries.
        let Ok(parsed) = callpop_core::reparse::reparse_stored(&stored, country) else {
            continue;
        };
        match parsed.payload {
            Payload::Calls(events) => {
                timeline.extend(
                    events
                        .into_iter()
                        .filter(|e| e.call_key == record.call.call_key)
                        .map(|e| TimelineEntry {
                            at: e.event_time,
                            extension: e.leg.extension_number.or(e.leg.extension_id),
                            leg: e.leg.id,
                            source: serde_json::to_value(e.source)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default(),
                            state: e.status.as_ref().map(|s| s.state),
                            code: e.status.as_ref().map(|s| s.code.clone()),
                            reason: e.status.and_then(|s| s.reason),
                            delivery_id: r.id,
                        }),
                );
            }
            Payload::Voicemail(msg) => timeline.push(TimelineEntry {
                at: msg.created_at,
                leg: String::new(),
                extension: msg.extension_number.or(msg.extension_id),
                source: "voicemail".into(),
                state: Some(LegState::Voicemail),
                code: None,
                reason: None,
                delivery_id: r.id,
            }),
            Payload::Reminder(_) | Payload::Other => {}
        }
    }
    timeline.sort_by_key(|e| (e.at, e.delivery_id));
    let deliveries = raw
        .iter()
        .take(MAX_DELIVERIES)
        .map(|r| DeliveryView {
            id: r.id,
            provider: r.provider,
            kind: r.kind.clone(),
            dedup_key: r.dedup_key.clone(),
            received_at: r.received_at,
            redeliveries: r.redeliveries,
            headers: callpop_core::wire::stored_headers(&r.headers),
            body: shown_body(&r.body),
        })
        .collect();
    CallDetail {
        call: CallView::new(record, labels),
        crm_url: crm_template.and_then(|t| callpop_core::crm::link(t, &record.call)),
        timeline,
        deliveries,
        remote_note: None,
    }
}

fn shown_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_BODY_SHOWN {
        return text.into_owned();
    }
    let mut cut = MAX_BODY_SHOWN;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n… ({} bytes in all)", &text[..cut], body.len())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    use callpop_store::writer::StoreWriter;

    use callpop_store::StoreOptions;
    use callpop_testkit::{at, call_log_delivery as delivery, call_log_record as record, us};

    fn open(dir: &std::path::Path) -> Store {
        Store::open(&dir.join(callpop_store::DB_FILE), StoreOptions::new(us())).expect("store")
    }

    /// A history of `n` call-log calls (`callpop_testkit::call_log_record`).
    pub(crate) fn store_with(dir: &std::path::Path, n: usize) -> Store {
        let mut store = open(dir);
        for i in 0..n {
            store.ingest(&delivery(&record(i))).expect("ingest");
        }
        store
    }

    fn page(limit: u32) -> CallQuery {
        CallQuery {
            limit,
            ..Default::default()
        }
    }

    fn invalid(result: Result<CallFilter, WindowError>) -> String {
        match result {
            Err(WindowError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn sales() -> Vec<LineLabel> {
        vec![LineLabel {
            number: "(650) 555-0100".into(),
            label: "Sales".into(),
        }]
    }

    #[test]
    fn a_query_becomes_the_store_filter() {
        let q = CallQuery {
            search: Some("  jane roe  ".into()),
            since: Some("2026-11-02T10:00:00+02:00".into()),
            until: Some(" 2026-11-03T00:00:00Z ".into()),
            result: Some(CallResult::Missed),
            direction: Some(CallDirection::Inbound),
            extension: Some(" 101 ".into()),
            mine: Some(true),
            limit: 50,
            cursor: Some("123456".into()),
        };
        let f = q.filter(&["101".into(), "102".into()]).expect("filter");
        assert_eq!(f.search.as_deref(), Some("jane roe"));
        assert_eq!(
            f.since,
            Some(Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap())
        );
        assert_eq!(
            f.until,
            Some(Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap())
        );
        assert_eq!(f.result, Some(CallResult::Missed));
        assert_eq!(f.direction, Some(CallDirection::Inbound));
        assert_eq!(f.extension.as_deref(), Some("101"));
        assert_eq!(f.any_extension, vec!["101", "102"]);
        assert_eq!(f.provider, None);
        assert_eq!(f.limit, 50);
        assert_eq!(f.after, Some(123456));

        // Empty values mean "no filter"; "mine" off ignores the watch list.
        let q = CallQuery {
            search: Some("   ".into()),
            since: Some("".into()),
            until: Some(" ".into()),
            extension: Some("".into()),
            mine: Some(false),
            cursor: Some("".into()),
            limit: MAX_PAGE,
            ..Default::default()
        };
        let f = q.filter(&["101".into()]).expect("filter");
        assert_eq!(f.search, None);
        assert_eq!(f.since, None);
        assert_eq!(f.until, None);
        assert_eq!(f.extension, None);
        assert!(f.any_extension.is_empty());
        assert_eq!(f.after, None);
        assert_eq!(f.limit, 500);

        // A pasted essay is cut to 100 characters (not bytes).
        let q = CallQuery {
            search: Some("é".repeat(150)),
            ..page(10)
        };
        assert_eq!(q.filter(&[]).expect("filter").search, Some("é".repeat(100)));
    }

    #[test]
    fn bad_queries_are_refused_with_a_clear_reason() {
        let bad_since = CallQuery {
            since: Some("yesterday".into()),
            ..page(10)
        };
        assert_eq!(
            invalid(bad_since.filter(&[])),
            "since must be a date and time, got \"yesterday\""
        );
        let bad_until = CallQuery {
            until: Some("2026-11-02 25:00".into()),
            ..page(10)
        };
        assert_eq!(
            invalid(bad_until.filter(&[])),
            "until must be a date and time, got \"2026-11-02 25:00\""
        );
        let backwards = CallQuery {
            since: Some("2026-11-02T10:00:00Z".into()),
            until: Some("2026-11-02T10:00:00Z".into()),
            ..page(10)
        };
        assert_eq!(
            invalid(backwards.filter(&[])),
            "the end of the date range must be after its start"
        );
        let cursor = CallQuery {
            cursor: Some("abc".into()),
            ..page(10)
        };
        assert_eq!(invalid(cursor.filter(&[])), "not a page cursor: \"abc\"");
        assert_eq!(
            invalid(page(MAX_PAGE + 1).filter(&[])),
            "a page holds at most 500 calls"
        );
        let mine = CallQuery {
            mine: Some(true),
            ..page(10)
        };
        assert_eq!(
            invalid(mine.filter(&[])),
            "\"my calls\" needs watched extensions: add yours in Settings"
        );
        // The message is what the window shows.
        let err = CallQuery {
            since: Some("x".into()),
            ..page(1)
        }
        .filter(&[])
        .expect_err("bad");
        assert_eq!(err.to_string(), "since must be a date and time, got \"x\"");
    }

    #[test]
    fn paging_with_the_cursor_returns_every_call_once_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 7);
        let mut seen = Vec::new();
        let mut query = page(3);
        let mut pages = Vec::new();
        loop {
            let p = list_calls(&store, &query, &[], &[]).expect("page");
            seen.extend(p.calls.iter().map(|c| c.call_key.clone()));
            pages.push((p.calls.len(), p.total, p.total_at_least));
            match p.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<String> = (0..7).rev().map(|i| format!("s-{i:05}")).collect();
        assert_eq!(seen, expected);
        // Only the first page counts.
        assert_eq!(
            pages,
            vec![(3, Some(7), None), (3, None, None), (1, None, None)]
        );
    }

    #[test]
    fn a_last_page_that_is_exactly_full_is_followed_by_an_empty_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 4);
        let first = list_calls(&store, &page(2), &[], &[]).expect("page");
        let second = list_calls(
            &store,
            &CallQuery {
                cursor: first.next_cursor,
                ..page(2)
            },
            &[],
            &[],
        )
        .expect("page");
        assert_eq!(second.calls.len(), 2);
        let third = list_calls(
            &store,
            &CallQuery {
                cursor: second.next_cursor,
                ..page(2)
            },
            &[],
            &[],
        )
        .expect("page");
        assert_eq!(
            third,
            CallPage {
                calls: Vec::new(),
                next_cursor: None,
                total: None,
                total_at_least: None,
            }
        );
        // A page bigger than what matches has no cursor.
        let all = list_calls(&store, &page(5), &[], &[]).expect("page");
        assert_eq!(all.calls.len(), 4);
        assert_eq!(all.next_cursor, None);
        assert_eq!(all.total, Some(4));
    }

    #[test]
    fn filters_apply_to_the_page_and_the_total() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 10);
        // Missed: 0, 3, 6, 9.
        let missed = CallQuery {
            result: Some(CallResult::Missed),
            ..page(2)
        };
        let p = list_calls(&store, &missed, &[], &[]).expect("page");
        assert_eq!(p.total, Some(4));
        let keys: Vec<&str> = p.calls.iter().map(|c| c.call_key.as_str()).collect();
        assert_eq!(keys, vec!["s-00009", "s-00006"]);
        assert!(p.next_cursor.is_some());
        // "Mine" with desk 102 (odd calls).
        let mine = CallQuery {
            mine: Some(true),
            ..page(100)
        };
        let p = list_calls(&store, &mine, &["102".into()], &[]).expect("page");
        assert_eq!(p.total, Some(5));
        let keys: Vec<&str> = p.calls.iter().map(|c| c.call_key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["s-00009", "s-00007", "s-00005", "s-00003", "s-00001"]
        );
        // Started in [09:02, 09:05).
        let range = CallQuery {
            since: Some(at(2).to_rfc3339()),
            until: Some(at(5).to_rfc3339()),
            ..page(100)
        };
        let p = list_calls(&store, &range, &[], &[]).expect("page");
        let keys: Vec<&str> = p.calls.iter().map(|c| c.call_key.as_str()).collect();
        assert_eq!(keys, vec!["s-00004", "s-00003", "s-00002"]);
        assert_eq!(p.total, Some(3));
        // A search that matches nothing.
        let nobody = CallQuery {
            search: Some("zebediah".into()),
            ..page(100)
        };
        let p = list_calls(&store, &nobody, &[], &[]).expect("page");
        assert_eq!(p.total, Some(0));
        assert!(p.calls.is_empty());
        assert_eq!(p.next_cursor, None);
    }

    #[test]
    fn a_page_needs_a_size_and_a_valid_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 1);
        let err = list_calls(&store, &page(0), &[], &[]).expect_err("no size");
        assert!(matches!(err, WindowError::Invalid(ref m) if m == "a page needs a size"));
        let err = list_calls(&store, &page(MAX_PAGE + 1), &[], &[]).expect_err("too big");
        assert_eq!(err.to_string(), "a page holds at most 500 calls");
    }

    #[test]
    fn a_row_shows_the_call_and_the_dialled_lines_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 2);
        let p = list_calls(&store, &page(10), &[], &sales()).expect("page");
        let c = &p.calls[0];
        assert_eq!(c.call_key, "s-00001");
        assert_eq!(c.provider, Provider::RingCentral);
        assert_eq!(c.direction, CallDirection::Inbound);
        assert_eq!(c.state, CallState::Ended);
        assert_eq!(c.result, Some(CallResult::Answered));
        assert_eq!(c.from_e164.as_deref(), Some("+14155550001"));
        assert_eq!(c.from_name.as_deref(), Some("JANE ROE"));
        assert_eq!(c.to_e164.as_deref(), Some("+16505550100"));
        assert_eq!(c.line_label.as_deref(), Some("Sales"));
        assert_eq!(c.started_at, at(1));
        assert_eq!(c.ended_at, Some(at(1) + chrono::Duration::seconds(60)));
        assert_eq!(c.talk_seconds, 60);
        assert_eq!(c.event_count, 1);
        assert_eq!(c.extensions.len(), 1);
        assert_eq!(c.extensions[0].extension_number.as_deref(), Some("102"));
        assert_eq!(p.calls[1].result, Some(CallResult::Missed));
        // Without labels there is no line name.
        let p = list_calls(&store, &page(10), &[], &[]).expect("page");
        assert_eq!(p.calls[0].line_label, None);
    }

    #[test]
    fn an_outbound_call_gets_no_line_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let mut r = record(1);
        r["direction"] = serde_json::json!("Outbound");
        r["from"] = serde_json::json!({"phoneNumber": "+16505550100", "extensionNumber": "101", "extensionId": "901"});
        r["to"] = serde_json::json!({"phoneNumber": "+16505550100"});
        store.ingest(&delivery(&r)).expect("ingest");
        let p = list_calls(&store, &page(10), &[], &sales()).expect("page");
        assert_eq!(p.calls[0].direction, CallDirection::Outbound);
        assert_eq!(p.calls[0].to_e164.as_deref(), Some("+16505550100"));
        assert_eq!(p.calls[0].line_label, None);
    }

    /// Stores `n` calls through the writer, which commits them in groups (fast enough for
    /// ten thousand calls).
    async fn bulk_store(dir: &std::path::Path, from: usize, n: usize) {
        let (changes, _) = tokio::sync::broadcast::channel(16);
        let (writer, thread) = StoreWriter::spawn(open(dir), changes).expect("writer");
        let mut tasks = tokio::task::JoinSet::new();
        for i in from..from + n {
            let writer = writer.clone();
            let d = delivery(&record(i));
            tasks.spawn(async move { writer.ingest(d).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task").expect("ingest");
        }
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join")
            .expect("writer thread");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_total_stops_at_the_count_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = COUNT_CAP as usize;
        bulk_store(dir.path(), 0, n).await;
        let store = open(dir.path());
        let p = list_calls(&store, &page(MAX_PAGE), &[], &[]).expect("page");
        assert_eq!(p.total, Some(COUNT_CAP), "exactly the cap is still counted");
        assert_eq!(p.total_at_least, None);
        assert_eq!(p.calls.len(), MAX_PAGE as usize);
        drop(store);

        bulk_store(dir.path(), n, 1).await;
        let store = open(dir.path());
        let p = list_calls(&store, &page(MAX_PAGE), &[], &[]).expect("page");
        assert_eq!(p.total, None);
        assert_eq!(p.total_at_least, Some(COUNT_CAP));
        assert_eq!(p.calls.len(), MAX_PAGE as usize);
        assert_eq!(p.calls[0].call_key, format!("s-{n:05}"));
        // A filter matching fewer calls is counted exactly (missed: every third call).
        let missed = CallQuery {
            result: Some(CallResult::Missed),
            ..page(1)
        };
        let p = list_calls(&store, &missed, &[], &[]).expect("page");
        assert_eq!(p.total, Some(((n + 1) as u64).div_ceil(3)));
        assert_eq!(p.total_at_least, None);
    }

    /// A timeline entry as (source, code, reason, extension, state).
    type Step<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<LegState>,
    );

    #[test]
    fn a_calls_detail_has_its_timeline_oldest_first_and_deliveries_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path());
        let deliveries = callpop_testkit::scenario("rc-inbound-voicemail");
        for d in &deliveries {
            store.ingest(d).expect("ingest");
        }
        let id = store.calls(&CallFilter::default()).expect("calls")[0].id;
        let detail = call_detail(
            &store,
            id,
            &us(),
            &sales(),
            Some("https://crm.example/c?n={number}&id={call_id}"),
        )
        .expect("detail");

        assert_eq!(detail.call.id, id);
        assert_eq!(detail.call.call_key, "s-b1e8d6f2a3c45d9fae1b2c3d4e5f6a7b");
        assert_eq!(detail.call.result, Some(CallResult::Voicemail));
        assert_eq!(detail.call.voicemail_id.as_deref(), Some("82063400004"));
        assert_eq!(detail.call.voicemail_seconds, Some(22));
        assert_eq!(detail.call.line_label.as_deref(), Some("Sales"));
        let crm = detail.crm_url.as_deref().unwrap_or_default();
        assert!(
            crm.ends_with("&id=s-b1e8d6f2a3c45d9fae1b2c3d4e5f6a7b"),
            "the phone system's call id, as on the popup: {crm}"
        );

        let steps: Vec<Step<'_>> = detail
            .timeline
            .iter()
            .map(|e| {
                (
                    e.source.as_str(),
                    e.code.as_deref().unwrap_or(""),
                    e.reason.as_deref(),
                    e.extension.as_deref(),
                    e.state,
                )
            })
            .collect();
        // Webhooks name the extension by number, the voicemail message only by id.
        let party = Some("101");
        assert_eq!(
            steps,
            vec![
                (
                    "telephony_session",
                    "Setup",
                    None,
                    None,
                    Some(LegState::Ringing)
                ),
                (
                    "telephony_session",
                    "Setup",
                    None,
                    party,
                    Some(LegState::Ringing)
                ),
                (
                    "telephony_session",
                    "Proceeding",
                    None,
                    party,
                    Some(LegState::Ringing)
                ),
                (
                    "telephony_session",
                    "Voicemail",
                    None,
                    party,
                    Some(LegState::Voicemail)
                ),
                (
                    "telephony_session",
                    "Answered",
                    None,
                    None,
                    Some(LegState::Connected)
                ),
                (
                    "telephony_session",
                    "Disconnected",
                    Some("Voicemail"),
                    party,
                    Some(LegState::Ended)
                ),
                (
                    "telephony_session",
                    "Disconnected",
                    Some("CallFinished"),
                    None,
                    Some(LegState::Ended)
                ),
                (
                    "voicemail",
                    "",
                    None,
                    Some("62264425016"),
                    Some(LegState::Voicemail)
                ),
            ]
        );
        assert!(detail.timeline.windows(2).all(|w| w[0].at <= w[1].at));
        let voicemail = detail.timeline.last().expect("voicemail");
        assert_eq!(
            voicemail.at,
            Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 46).unwrap()
        );
        assert_eq!(voicemail.leg, "");

        assert_eq!(detail.deliveries.len(), deliveries.len());
        let ids: Vec<i64> = detail.deliveries.iter().map(|d| d.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, sorted, "newest first");
        // Each timeline step points at the delivery it was read from.
        for step in &detail.timeline {
            assert!(ids.contains(&step.delivery_id), "{step:?}");
        }
        let newest = &detail.deliveries[0];
        let last = deliveries.last().expect("last");
        assert_eq!(newest.dedup_key, last.parsed.dedup_key);
        assert_eq!(
            newest.body,
            String::from_utf8(last.body.clone()).expect("utf8")
        );
        assert_eq!(newest.provider, Provider::RingCentral);
        assert_eq!(newest.redeliveries, 0);
        assert_eq!(
            newest.headers,
            BTreeMap::from([(
                "user-agent".to_string(),
                "RingCentral-Webhook/1.0".to_string()
            )])
        );
        assert_eq!(newest.received_at, last.received_at);
    }

    #[test]
    fn an_unknown_call_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 1);
        let err = call_detail(&store, 4242, &us(), &[], None).expect_err("unknown");
        assert!(matches!(err, WindowError::NoSuchCall(4242)), "{err:?}");
        assert_eq!(err.to_string(), "call 4242 is not in the history");
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        assert_eq!(shown_body(b"{\"a\":1}"), "{\"a\":1}");
        let exact = vec![b'a'; MAX_BODY_SHOWN];
        assert_eq!(shown_body(&exact).len(), MAX_BODY_SHOWN);
        let long = vec![b'a'; MAX_BODY_SHOWN + 10];
        assert_eq!(
            shown_body(&long),
            format!(
                "{}\n… ({} bytes in all)",
                "a".repeat(MAX_BODY_SHOWN),
                MAX_BODY_SHOWN + 10
            )
        );
        // A two-byte character straddling the cut is left out whole.
        let mut straddling = vec![b'a'; MAX_BODY_SHOWN - 1];
        straddling.extend("é".as_bytes());
        straddling.extend(b"tail");
        assert_eq!(
            shown_body(&straddling),
            format!(
                "{}\n… ({} bytes in all)",
                "a".repeat(MAX_BODY_SHOWN - 1),
                MAX_BODY_SHOWN + 5
            )
        );
    }
}
