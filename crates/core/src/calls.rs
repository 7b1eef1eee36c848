//! Call semantics: every event known for a call, in any arrival order → one history row.
//!
//! The row is a pure function of the *set* of events: events are put in a canonical order
//! (per leg by `sequence`, then time, then content) before they are folded, so every
//! permutation and every duplicate of a call's events yields the identical row. A late
//! lower-sequence event therefore lands where it belongs and cannot resurrect an ended leg.
//! `docs/CALLS.md` explains the rules with a diagram.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::model::{
    Call, CallDirection, CallEvent, CallResult, CallState, CallVoicemail, Endpoint, EventSource,
    ExtensionPart, Leg, LegDirection, LegState, LegStatus, PartySummary, VoicemailMessage,
};
use crate::numbers::NumberKind;

/// A ringing call nothing is heard of for this long gets the result
/// [`CallResult::NoEndReported`](crate::model::CallResult::NoEndReported): no phone rings that
/// long, and a call moved to another session (a pickup, a park) is never heard of again in
/// this one. Its popup closes then too.
pub const UNHEARD_RINGING: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The same for a connected call: a real call can talk for hours, and no event comes while
/// it does.
pub const UNHEARD_CONNECTED: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Orders events canonically: by leg, then by provider sequence, phase, time and content.
fn canonical_cmp(a: &CallEvent, b: &CallEvent) -> Ordering {
    (leg_group(a), &a.leg.id)
        .cmp(&(leg_group(b), &b.leg.id))
        .then_with(|| timeline_cmp(a, b))
}

/// Orders two events of the same leg along its timeline.
fn timeline_cmp(a: &CallEvent, b: &CallEvent) -> Ordering {
    a.sequence
        .cmp(&b.sequence)
        .then_with(|| phase(a).cmp(&phase(b)))
        .then_with(|| a.event_time.cmp(&b.event_time))
        .then_with(|| content_key(a).cmp(&content_key(b)))
}

/// Legs are grouped by the kind of source that reported them.
fn leg_group(e: &CallEvent) -> u8 {
    match e.source {
        EventSource::TelephonySession => 0,
        EventSource::Presence => 1,
        EventSource::CallLog => 2,
        EventSource::RingotelStart | EventSource::RingotelStop | EventSource::RingotelRecording => {
            3
        }
    }
}

/// Ringotel sends no sequence numbers: a start precedes a recording precedes a stop.
fn phase(e: &CallEvent) -> u8 {
    match e.source {
        EventSource::RingotelStart => 0,
        EventSource::RingotelRecording => 1,
        EventSource::RingotelStop => 2,
        _ => 0,
    }
}

/// The last tie-breaker: the event's own content, so equal-looking events still order stably.
fn content_key(e: &CallEvent) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

/// What one leg did over the call, folded from its events in timeline order.
#[derive(Debug, Clone)]
struct LegSummary<'a> {
    leg: Leg,
    source: EventSource,
    events: Vec<&'a CallEvent>,
    first_seen: DateTime<Utc>,
    rang: bool,
    first_connected: Option<DateTime<Utc>>,
    first_voicemail: Option<DateTime<Utc>>,
    /// The last event that carried a status.
    last_status: Option<(&'a LegStatus, &'a CallEvent)>,
    talk_seconds: i64,
    missed_flag: bool,
    /// Provider-stated talk time (Ringotel stop, call log).
    stated_talk: Option<i64>,
}

impl<'a> LegSummary<'a> {
    fn fold(mut events: Vec<&'a CallEvent>) -> Option<LegSummary<'a>> {
        events.sort_by(|a, b| timeline_cmp(a, b));
        let first = *events.first()?;
        let mut leg = first.leg.clone();
        for e in &events {
            leg.extension_id = leg.extension_id.or_else(|| e.leg.extension_id.clone());
            leg.extension_number = leg
                .extension_number
                .or_else(|| e.leg.extension_number.clone());
            leg.name = leg.name.or_else(|| e.leg.name.clone());
            leg.direction = leg.direction.or(e.leg.direction);
        }
        let mut s = LegSummary {
            leg,
            source: first.source,
            first_seen: events
                .iter()
                .map(|e| e.event_time)
                .min()
                .unwrap_or(first.event_time),
            events: Vec::new(),
            rang: false,
            first_connected: None,
            first_voicemail: None,
            last_status: None,
            talk_seconds: 0,
            missed_flag: false,
            stated_talk: None,
        };
        let mut connected_since: Option<DateTime<Utc>> = None;
        for e in &events {
            s.missed_flag |= e.missed_call;
            if e.source == EventSource::CallLog {
                // A call-log record is the whole call in one line.
                s.rang = true;
                if e.outcome
                    .as_deref()
                    .is_some_and(crate::ringcentral::calllog::is_voicemail_result)
                {
                    s.first_voicemail
                        .get_or_insert(e.call_start.unwrap_or(e.event_time));
                }
            }
            if let Some(t) = e.talk_seconds {
                s.stated_talk = Some(s.stated_talk.map_or(t, |old: i64| old.max(t)));
            }
            let Some(status) = &e.status else { continue };
            match status.state {
                LegState::Ringing => s.rang = true,
                LegState::Connected => {
                    s.first_connected.get_or_insert(e.event_time);
                    connected_since.get_or_insert(e.event_time);
                }
                LegState::Voicemail => {
                    s.first_voicemail.get_or_insert(e.event_time);
                }
                LegState::Held | LegState::Ended | LegState::Other => {}
            }
            if status.state != LegState::Connected {
                if let Some(since) = connected_since.take() {
                    s.talk_seconds += seconds_between(since, e.event_time);
                }
            }
            s.last_status = Some((status, e));
        }
        if let Some(t) = s.stated_talk {
            s.talk_seconds = t;
        }
        s.events = events;
        Some(s)
    }

    fn final_state(&self) -> Option<LegState> {
        self.last_status.map(|(s, _)| s.state)
    }

    fn is_terminal(&self) -> bool {
        self.final_state().is_some_and(LegState::is_terminal)
    }

    /// Whether this leg's story reaches back to its start (it rang, was answered or went to
    /// voicemail), not only to its end: a session recovered after a long drop replays only
    /// its most recent events, so a leg can arrive as a bare `Disconnected`.
    fn seen_from_the_start(&self) -> bool {
        self.rang || self.first_connected.is_some() || self.first_voicemail.is_some()
    }

    fn answered(&self) -> bool {
        self.first_connected.is_some() || self.stated_talk.is_some_and(|t| t > 0)
    }

    /// When this leg started talking; for stated talk times, counted back from the end.
    fn answered_at(&self) -> Option<DateTime<Utc>> {
        if let Some(t) = self.first_connected {
            return Some(t);
        }
        let talk = self.stated_talk.filter(|t| *t > 0)?;
        let end = self.events.iter().filter_map(|e| e.call_end).max()?;
        Some(end - chrono::Duration::seconds(talk))
    }

    /// The sort key of this leg's final status event among all legs of the call.
    fn final_key(&self) -> Option<(DateTime<Utc>, Option<i64>)> {
        self.last_status.map(|(_, e)| (e.event_time, e.sequence))
    }
}

fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_seconds().max(0)
}

/// Whether the live telephony events of a call skip a `sequence` number: RingCentral numbers a
/// session's events one by one, so a hole means events were lost (a drop longer than the
/// WebSocket recovery, or a webhook outage) and the story they tell may be wrong.
fn sequence_gap(legs: &[LegSummary<'_>]) -> bool {
    let mut seen: Vec<i64> = legs
        .iter()
        .filter(|l| l.source == EventSource::TelephonySession)
        .flat_map(|l| l.events.iter().filter_map(|e| e.sequence))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    match (seen.first(), seen.last()) {
        (Some(first), Some(last)) => last - first + 1 != seen.len() as i64,
        _ => false,
    }
}

/// Picks which legs describe the call: telephony sessions win over presence for the same
/// extension, and call-log records only fill in calls no live source reported to the end.
/// A call-log record exists only once a call is over, so live legs still ringing or talking
/// beside one mean their last events never arrived (CallPop was down, or was killed before it
/// acknowledged them): the record then describes the call on its own. So does it when a live
/// leg ended without any earlier event (its beginning was lost, as when a WebSocket recovery
/// replays only the most recent events).
fn effective_legs<'a>(legs: Vec<LegSummary<'a>>) -> (Vec<LegSummary<'a>>, Vec<LegSummary<'a>>) {
    let has_log = legs.iter().any(|l| l.source == EventSource::CallLog);
    let has_live = legs.iter().any(|l| l.source != EventSource::CallLog);
    let mut live_statuses = legs
        .iter()
        .filter(|l| l.source != EventSource::CallLog && l.last_status.is_some())
        .peekable();
    let live_finished = live_statuses.peek().is_some()
        && live_statuses.all(|l| l.is_terminal() && l.seen_from_the_start())
        && !sequence_gap(&legs);
    let use_live = has_live && (live_finished || !has_log);
    let telephony_extensions: Vec<String> = legs
        .iter()
        .filter(|l| l.source == EventSource::TelephonySession)
        .filter_map(|l| l.leg.extension_id.clone())
        .collect();
    let any_telephony = legs
        .iter()
        .any(|l| l.source == EventSource::TelephonySession);
    legs.into_iter().partition(|l| match l.source {
        EventSource::CallLog => !use_live,
        _ if !use_live => false,
        EventSource::Presence => {
            !any_telephony
                || l.leg
                    .extension_id
                    .as_ref()
                    .is_some_and(|e| !telephony_extensions.contains(e))
        }
        _ => true,
    })
}

fn decide_direction(legs: &[LegSummary<'_>]) -> CallDirection {
    let ext: Vec<&LegSummary> = legs.iter().filter(|l| l.leg.is_extension()).collect();
    if ext.is_empty() {
        // No desk has reported yet. A real RingCentral party without extension is the PSTN
        // side, whose "technical" direction is the mirror image of the call's (docs/PROTOCOL.md §0
        // #13); a seed-style party without an id states the call's direction plainly.
        let Some(first) = legs.iter().find(|l| l.leg.direction.is_some()) else {
            return CallDirection::Unknown;
        };
        return match (first.leg.direction, first.leg.has_provider_id) {
            (Some(LegDirection::Inbound), false) | (Some(LegDirection::Outbound), true) => {
                CallDirection::Inbound
            }
            (Some(LegDirection::Outbound), false) | (Some(LegDirection::Inbound), true) => {
                CallDirection::Outbound
            }
            (None, _) => CallDirection::Unknown,
        };
    }
    let has_in = ext
        .iter()
        .any(|l| l.leg.direction == Some(LegDirection::Inbound));
    let has_out = ext
        .iter()
        .any(|l| l.leg.direction == Some(LegDirection::Outbound));
    let is_desk = |end: &Endpoint| {
        end.extension_id.is_some()
            || end
                .number
                .as_ref()
                .is_some_and(|n| n.kind == NumberKind::Extension)
    };
    let caller_is_desk = ext
        .iter()
        .filter(|l| l.leg.direction == Some(LegDirection::Inbound))
        .flat_map(|l| l.events.iter())
        .any(|e| is_desk(&e.from));
    let callee_is_desk = ext
        .iter()
        .filter(|l| l.leg.direction == Some(LegDirection::Outbound))
        .flat_map(|l| l.events.iter())
        .any(|e| is_desk(&e.to));
    match (has_in, has_out) {
        (true, true) => CallDirection::Internal,
        (true, false) if caller_is_desk => CallDirection::Internal,
        (true, false) => CallDirection::Inbound,
        (false, true) if callee_is_desk => CallDirection::Internal,
        (false, true) => CallDirection::Outbound,
        (false, false) => CallDirection::Unknown,
    }
}

/// Legs whose answer counts as "the call was answered" for this direction.
fn answering_legs<'b, 'a>(
    legs: &'b [LegSummary<'a>],
    direction: CallDirection,
) -> Vec<&'b LegSummary<'a>> {
    let ext: Vec<&LegSummary> = legs.iter().filter(|l| l.leg.is_extension()).collect();
    match direction {
        CallDirection::Outbound => legs.iter().collect(),
        _ if ext.is_empty() => legs.iter().filter(|l| !l.leg.has_provider_id).collect(),
        CallDirection::Internal => {
            let callees: Vec<&LegSummary> = ext
                .iter()
                .copied()
                .filter(|l| l.leg.direction == Some(LegDirection::Inbound))
                .collect();
            if callees.is_empty() {
                ext
            } else {
                callees
            }
        }
        _ => ext
            .into_iter()
            .filter(|l| l.leg.direction != Some(LegDirection::Outbound))
            .collect(),
    }
}

/// Legs whose talk time adds up to the call's talk time (no side counted twice).
fn talking_legs<'b, 'a>(
    legs: &'b [LegSummary<'a>],
    direction: CallDirection,
) -> Vec<&'b LegSummary<'a>> {
    match direction {
        CallDirection::Outbound => {
            let ext: Vec<&LegSummary> = legs.iter().filter(|l| l.leg.is_extension()).collect();
            if ext.is_empty() {
                legs.iter().collect()
            } else {
                ext
            }
        }
        _ => answering_legs(legs, direction),
    }
}

/// Chooses a side's number and name: the first non-empty value in priority order (a carrier's
/// stand-in such as "WIRELESS CALLER" is no name).
fn summarize_side<'e>(ends: impl Iterator<Item = &'e Endpoint> + Clone) -> PartySummary {
    let number = ends
        .clone()
        .filter_map(|e| e.number.as_ref())
        .find(|n| !n.is_unknown())
        .or_else(|| ends.clone().find_map(|e| e.number.as_ref()));
    PartySummary {
        raw: number.map(|n| n.raw.clone()),
        e164: number.and_then(|n| n.e164.clone()),
        name: ends
            .clone()
            .filter_map(|e| e.name.as_ref())
            .find(|n| !crate::names::is_placeholder(n))
            .cloned(),
    }
}

fn extension_parts(legs: &[LegSummary<'_>]) -> Vec<ExtensionPart> {
    let mut order: Vec<(DateTime<Utc>, String)> = Vec::new();
    let mut parts: BTreeMap<String, ExtensionPart> = BTreeMap::new();
    for l in legs.iter().filter(|l| l.leg.is_extension()) {
        let key = l
            .leg
            .extension_id
            .clone()
            .or_else(|| l.leg.extension_number.clone())
            .unwrap_or_default();
        let entry = parts.entry(key.clone()).or_insert_with(|| {
            order.push((l.first_seen, key.clone()));
            ExtensionPart::default()
        });
        if let Some(pos) = order.iter().position(|(_, k)| *k == key) {
            if l.first_seen < order[pos].0 {
                order[pos].0 = l.first_seen;
            }
        }
        entry.extension_id = entry
            .extension_id
            .take()
            .or_else(|| l.leg.extension_id.clone());
        entry.extension_number = entry
            .extension_number
            .take()
            .or_else(|| l.leg.extension_number.clone());
        entry.name = entry.name.take().or_else(|| l.leg.name.clone());
        entry.direction = entry.direction.or(l.leg.direction);
        entry.rang |= l.rang || l.answered() || l.leg.direction == Some(LegDirection::Outbound);
        entry.answered |= l.answered();
        entry.talk_seconds += l.talk_seconds;
    }
    // An extension's state is that of its leg with the latest status.
    for (key, part) in parts.iter_mut() {
        part.state = legs
            .iter()
            .filter(|l| {
                l.leg
                    .extension_id
                    .as_deref()
                    .or(l.leg.extension_number.as_deref())
                    == Some(key.as_str())
            })
            .filter_map(|l| l.final_key().zip(l.final_state()))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, s)| s);
    }
    order.sort();
    order
        .into_iter()
        .filter_map(|(_, k)| parts.remove(&k))
        .collect()
}

/// Derives the history row for one call from all of its events (any order, duplicates fine).
///
/// `deliveries` is how many stored deliveries contributed; `voicemail` is a voicemail message
/// the store matched to this call. Returns `None` when there are no events.
pub fn derive(
    events: &[CallEvent],
    deliveries: i64,
    voicemail: Option<&VoicemailMessage>,
) -> Option<Call> {
    let first = events.first()?;
    let mut sorted: Vec<&CallEvent> = events.iter().collect();
    sorted.sort_by(|a, b| canonical_cmp(a, b));
    sorted.dedup_by(|a, b| a == b);

    let (legs, set_aside) = legs_of(&sorted);
    let used: Vec<&CallEvent> = legs.iter().flat_map(|l| l.events.iter().copied()).collect();
    let direction = decide_direction(&legs);
    let answering = answering_legs(&legs, direction);
    // Merge by quality: when the call-log record tells the story (the live end was lost),
    // the live events still know when the call was answered, to the millisecond, where the
    // record only approximates it (answered when it started, so no ring time).
    let log_tells = legs.iter().any(|l| l.source == EventSource::CallLog);
    let live_answered_at = answering_legs(&set_aside, direction)
        .iter()
        .filter(|l| log_tells && l.source != EventSource::CallLog)
        .filter_map(|l| l.first_connected)
        .min();
    let answered_at = answering
        .iter()
        .filter_map(|l| l.answered_at())
        .min()
        .map(|logged| live_answered_at.unwrap_or(logged));
    let answered = answering.iter().any(|l| l.answered());

    let with_status: Vec<&LegSummary> = legs.iter().filter(|l| l.last_status.is_some()).collect();
    let ending = ending_of(&with_status, &first.call_key);
    let ended = ending != Ending::Going;
    let voicemail_at = answering.iter().filter_map(|l| l.first_voicemail).min();
    let reached_voicemail = legs.iter().any(|l| l.first_voicemail.is_some()) || voicemail.is_some();
    let state = decide_state(ended, &with_status);
    let result = decide_result(answered, reached_voicemail, ending, direction);

    let times = call_times(&used, &with_status, ended, first.event_time);
    // The caller stops waiting when someone answers, voicemail picks up, or the call ends.
    let ring_until = answered_at.or(voicemail_at).or(times.ended_at);
    let ring_seconds = ring_until.map_or(0, |t| seconds_between(times.started_at, t));
    let talk_seconds = talking_legs(&legs, direction)
        .iter()
        .map(|l| l.talk_seconds)
        .sum();

    let mut extensions = extension_parts(&legs);
    desk_outcomes(&legs, &mut extensions, result);
    let (from, to) = sides(&used, direction, &extensions);

    Some(Call {
        provider: first.provider,
        call_key: first.call_key.clone(),
        direction,
        state,
        result,
        from,
        to,
        extensions,
        started_at: times.started_at,
        answered_at,
        ended_at: times.ended_at,
        ring_seconds,
        talk_seconds,
        recording_url: recording_url(&sorted),
        voicemail: call_voicemail(&sorted, voicemail),
        event_count: deliveries,
        last_event_at: times.last_event_at,
    })
}

/// Sets each desk's own outcome ([`ExtensionPart::outcome`]) once the call has a result. A
/// desk that rang and did not answer missed the caller unless a colleague answered while it
/// rang (a ring group): a desk that first rang after another desk had answered was handed
/// the call (a transfer), and if it did not pick up, that was its missed call.
fn desk_outcomes(legs: &[LegSummary<'_>], parts: &mut [ExtensionPart], result: Option<CallResult>) {
    let Some(result) = result else {
        return;
    };
    let key_of = |l: &LegSummary<'_>| {
        l.leg
            .extension_id
            .clone()
            .or_else(|| l.leg.extension_number.clone())
    };
    for part in parts.iter_mut() {
        let key = part
            .extension_id
            .clone()
            .or_else(|| part.extension_number.clone());
        let mine = |l: &&LegSummary<'_>| l.leg.is_extension() && key_of(l) == key;
        let first_rang = legs.iter().filter(mine).map(|l| l.first_seen).min();
        let answered_before_it_rang = legs
            .iter()
            .filter(|l| l.leg.is_extension() && key_of(l) != key)
            .filter(|l| l.leg.direction != Some(LegDirection::Outbound))
            .filter_map(|l| l.first_connected)
            .any(|t| first_rang.is_some_and(|rang| t < rang));
        part.outcome = Some(if part.answered {
            CallResult::Answered
        } else if part.direction == Some(LegDirection::Outbound) {
            result
        } else {
            match result {
                CallResult::Answered if !answered_before_it_rang => CallResult::Answered,
                CallResult::Voicemail => CallResult::Voicemail,
                _ => CallResult::Missed,
            }
        });
    }
}

/// The call's legs: its events grouped per leg, each folded into a summary; the legs that
/// tell the story first, then those set aside (call-log legs where live events tell it, or
/// live legs where the call-log record must complete it).
fn legs_of<'a>(sorted: &[&'a CallEvent]) -> (Vec<LegSummary<'a>>, Vec<LegSummary<'a>>) {
    let mut by_leg: BTreeMap<(u8, &str), Vec<&CallEvent>> = BTreeMap::new();
    for e in sorted {
        by_leg
            .entry((leg_group(e), e.leg.id.as_str()))
            .or_default()
            .push(e);
    }
    effective_legs(by_leg.into_values().filter_map(LegSummary::fold).collect())
}

/// How the call stands in this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Still going (or handed over to another party of this session).
    Going,
    /// Over: every leg that reported a status has ended, and the last one to end did not hand
    /// the caller over (a transfer or park moves them on).
    Ended,
    /// Over here: the last leg moved to another telephony session (`Gone` with a `peerId`),
    /// where the call goes on under that session's own row.
    MovedAway,
}

fn ending_of(with_status: &[&LegSummary], call_key: &str) -> Ending {
    let all_terminal = !with_status.is_empty() && with_status.iter().all(|l| l.is_terminal());
    let last_terminal = with_status
        .iter()
        .filter_map(|l| l.final_key().zip(l.last_status.map(|(s, _)| s)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, s)| s);
    match last_terminal {
        Some(s) if all_terminal && s.moved_to_another_session(call_key) => Ending::MovedAway,
        Some(s) if all_terminal && !s.is_handover() => Ending::Ended,
        _ => Ending::Going,
    }
}

fn decide_state(ended: bool, with_status: &[&LegSummary]) -> CallState {
    if ended {
        return CallState::Ended;
    }
    if with_status.is_empty() {
        return CallState::Unknown;
    }
    let connected = with_status
        .iter()
        .filter_map(|l| l.final_state())
        .filter(|s| !s.is_terminal())
        .any(|s| {
            matches!(
                s,
                LegState::Connected | LegState::Held | LegState::Voicemail | LegState::Other
            )
        });
    if connected {
        CallState::Connected
    } else {
        CallState::Ringing
    }
}

/// How the call turned out. A call that moved to another session before anyone answered it
/// here has no result of its own: it was not missed, it was taken elsewhere (a pickup, a park),
/// and its outcome is on that session's row.
fn decide_result(
    answered: bool,
    reached_voicemail: bool,
    ending: Ending,
    direction: CallDirection,
) -> Option<CallResult> {
    if answered {
        Some(CallResult::Answered)
    } else if reached_voicemail && direction != CallDirection::Outbound {
        Some(CallResult::Voicemail)
    } else if ending == Ending::Ended {
        Some(match direction {
            CallDirection::Outbound => CallResult::NoAnswer,
            _ => CallResult::Missed,
        })
    } else {
        None
    }
}

/// When a call started, last changed and ended.
struct Times {
    started_at: DateTime<Utc>,
    last_event_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

fn call_times(
    used: &[&CallEvent],
    with_status: &[&LegSummary],
    ended: bool,
    fallback: DateTime<Utc>,
) -> Times {
    // A Ringotel recording update carries no call time of its own (it is stamped on arrival),
    // so it only dates a call that nothing else dates.
    let timed: Vec<&CallEvent> = {
        let dated: Vec<&CallEvent> = used
            .iter()
            .copied()
            .filter(|e| e.source != EventSource::RingotelRecording)
            .collect();
        if dated.is_empty() {
            used.to_vec()
        } else {
            dated
        }
    };
    let started_at = timed
        .iter()
        .flat_map(|e| [Some(e.event_time), e.call_start])
        .flatten()
        .min()
        .unwrap_or(fallback);
    let last_event_at = timed
        .iter()
        .flat_map(|e| [Some(e.event_time), e.call_end])
        .flatten()
        .max()
        .unwrap_or(fallback);
    let ended_at = ended.then(|| {
        with_status
            .iter()
            .filter_map(|l| l.last_status.map(|(_, e)| e.event_time))
            .chain(timed.iter().filter_map(|e| e.call_end))
            .max()
            .unwrap_or(last_event_at)
    });
    Times {
        started_at,
        last_event_at,
        ended_at,
    }
}

/// The calling and the called side. The calling side is the same on every party; the called
/// side is best read from the PSTN party (the line the customer dialled) for inbound calls,
/// from the desk otherwise.
fn sides(
    used: &[&CallEvent],
    direction: CallDirection,
    extensions: &[ExtensionPart],
) -> (PartySummary, PartySummary) {
    let external_first: Vec<&CallEvent> = {
        let (ext, other): (Vec<&CallEvent>, Vec<&CallEvent>) =
            used.iter().partition(|e| e.leg.is_extension());
        match direction {
            CallDirection::Inbound | CallDirection::Unknown => {
                other.into_iter().chain(ext).collect()
            }
            _ => ext.into_iter().chain(other).collect(),
        }
    };
    let from = summarize_side(external_first.iter().map(|e| &e.from));
    let mut to = summarize_side(external_first.iter().map(|e| &e.to));
    if matches!(direction, CallDirection::Inbound | CallDirection::Internal) {
        // The called side's name: the dialled line's own name when the PSTN side reports one
        // ("Sales"), otherwise the desk that answered, otherwise the desk that rang last,
        // otherwise whatever name the events give the called side (Ringotel's `called_name`:
        // its events are all desk legs, and carry no desk name of their own).
        let reported = to.name.take();
        let line_name = used
            .iter()
            .filter(|e| !e.leg.is_extension())
            .find_map(|e| e.to.name.clone());
        let callees: Vec<&ExtensionPart> = extensions
            .iter()
            .filter(|p| p.direction != Some(LegDirection::Outbound))
            .collect();
        to.name = line_name.or_else(|| {
            callees
                .iter()
                .find(|p| p.answered)
                .or(callees.last())
                .and_then(|p| p.name.clone())
                .or(reported)
        });
    }
    (from, to)
}

/// The recording, whichever source reported it, even one the row is not built from.
fn recording_url(sorted: &[&CallEvent]) -> Option<String> {
    sorted
        .iter()
        .filter_map(|e| e.recording.as_ref())
        .find_map(|r| r.url.clone())
}

/// The voicemail left on the call: the linked message itself, else the id an event named.
fn call_voicemail(
    sorted: &[&CallEvent],
    voicemail: Option<&VoicemailMessage>,
) -> Option<CallVoicemail> {
    match voicemail {
        Some(vm) => Some(CallVoicemail {
            message_id: Some(vm.message_id.clone()),
            seconds: vm.duration_seconds,
            url: vm.audio_url.clone(),
        }),
        None => sorted
            .iter()
            .find_map(|e| e.voicemail_message_id.clone())
            .map(|id| CallVoicemail {
                message_id: Some(id),
                seconds: None,
                url: None,
            }),
    }
}

/// True when the call rang at (or was placed by) one of the watched extensions; an empty
/// watch list watches the whole account.
pub fn involves(call: &Call, watched: &[String]) -> bool {
    watched.is_empty() || call.extensions.iter().any(|p| p.matches_extension(watched))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Provider;
    use crate::numbers::{Country, PhoneNumber};
    use chrono::TimeZone;

    fn at(sec: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::seconds(sec)
    }

    fn end(number: &str) -> Endpoint {
        Endpoint {
            number: Some(PhoneNumber::parse(
                number,
                &Country::from_iso("US").expect("US"),
            )),
            name: None,
            extension_id: None,
        }
    }

    /// A telephony event for one party.
    fn ev(
        party: &str,
        ext: Option<&str>,
        dir: LegDirection,
        seq: i64,
        sec: i64,
        code: &str,
    ) -> CallEvent {
        ev_reason(party, ext, dir, seq, sec, code, None)
    }

    fn ev_reason(
        party: &str,
        ext: Option<&str>,
        dir: LegDirection,
        seq: i64,
        sec: i64,
        code: &str,
        reason: Option<&str>,
    ) -> CallEvent {
        CallEvent {
            provider: Provider::RingCentral,
            call_key: "s-1".into(),
            source: EventSource::TelephonySession,
            leg: Leg {
                id: party.into(),
                has_provider_id: true,
                extension_id: ext.map(String::from),
                extension_number: ext.map(|e| e.trim_start_matches("id").to_string()),
                name: None,
                direction: Some(dir),
            },
            sequence: Some(seq),
            event_time: at(sec),
            from: end("+14155550123"),
            to: end("+16505550100"),
            status: Some(LegStatus::new(
                crate::ringcentral::webhook::state_of_code(code),
                code,
                reason.map(String::from),
            )),
            missed_call: false,
            queue_call: false,
            recording: None,
            call_start: None,
            call_end: None,
            talk_seconds: None,
            outcome: None,
            voicemail_message_id: None,
        }
    }

    use LegDirection::{Inbound as In, Outbound as Out};

    #[test]
    fn a_late_lower_sequence_event_does_not_resurrect_an_ended_call() {
        let events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("desk", Some("101"), In, 2, 1, "Proceeding"),
            ev("desk", Some("101"), In, 4, 30, "Disconnected"),
            ev("caller", None, Out, 5, 30, "Disconnected"),
            // Arrives last, belongs in the middle.
            ev("desk", Some("101"), In, 3, 2, "Proceeding"),
        ];
        let call = derive(&events, 5, None).expect("call");
        assert_eq!(call.state, CallState::Ended);
        assert_eq!(call.result, Some(CallResult::Missed));
        assert_eq!(call.ended_at, Some(at(30)));
    }

    /// The call-log record RingCentral keeps for session `s-1`, as the backfill reads it.
    fn call_log_events(result: &str, duration: i64) -> Vec<CallEvent> {
        let record = serde_json::json!({
            "id": "L-1", "telephonySessionId": "s-1", "startTime": at(0).to_rfc3339(),
            "duration": duration, "type": "Voice", "direction": "Inbound",
            "action": "Phone Call", "result": result,
            "from": {"phoneNumber": "+14155550123"},
            "to": {"phoneNumber": "+16505550100", "extensionNumber": "101"},
        });
        let delivery = crate::ringcentral::calllog::record_to_delivery(
            &record,
            &Country::from_iso("US").expect("US"),
            at(600),
        )
        .expect("record");
        match delivery.parsed.payload {
            crate::model::Payload::Calls(events) => events,
            other => panic!("not call events: {other:?}"),
        }
    }

    #[test]
    fn a_call_log_record_completes_a_call_whose_last_live_events_never_arrived() {
        // CallPop went down while the desk was ringing; the answer and hang-up were lost.
        let mut events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("desk", Some("101"), In, 2, 1, "Proceeding"),
        ];
        assert_eq!(
            derive(&events, 2, None).expect("call").state,
            CallState::Ringing
        );
        events.extend(call_log_events("Accepted", 95));
        let call = derive(&events, 3, None).expect("call");
        assert_eq!(call.state, CallState::Ended);
        assert_eq!(call.result, Some(CallResult::Answered));
    }

    /// Issue 25 #6: live event times beat the call log's approximations when both meet.
    #[test]
    fn a_call_log_record_keeps_the_ring_time_the_live_events_measured() {
        // The desk rang for 8 s and answered; the hang-up was lost and the call log completes
        // the call. The record knows no answer time (it says answered when it started).
        let mut events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("desk", Some("101"), In, 2, 1, "Proceeding"),
            ev("desk", Some("101"), In, 3, 8, "Answered"),
        ];
        let live = derive(&events, 3, None).expect("call");
        assert_eq!(live.state, CallState::Connected);
        assert_eq!(live.answered_at, Some(at(8)));
        events.extend(call_log_events("Accepted", 95));
        let merged = derive(&events, 4, None).expect("call");
        assert_eq!(
            merged.state,
            CallState::Ended,
            "the record completes the call"
        );
        assert_eq!(merged.result, Some(CallResult::Answered));
        assert_eq!(
            merged.answered_at,
            Some(at(8)),
            "the live answer time stays"
        );
        assert_eq!(merged.ring_seconds, 8);
        // Any order of the same events gives the same row.
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(derive(&reversed, 4, None).expect("call"), merged);
    }

    #[test]
    fn a_call_told_completely_by_live_events_keeps_them_over_its_call_log_record() {
        let mut events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("desk", Some("101"), In, 2, 1, "Proceeding"),
            ev("desk", Some("101"), In, 3, 30, "Disconnected"),
            ev("caller", None, Out, 4, 30, "Disconnected"),
        ];
        let live = derive(&events, 4, None).expect("call");
        assert_eq!(live.result, Some(CallResult::Missed));
        // A record that disagrees (it never does in practice) does not override the live story.
        events.extend(call_log_events("Accepted", 95));
        let merged = derive(&events, 5, None).expect("call");
        assert_eq!(merged.result, live.result);
        assert_eq!(merged.ended_at, live.ended_at);
    }

    #[test]
    fn a_call_whose_beginning_was_lost_is_told_by_its_call_log_record() {
        // Only the ends arrived (a recovery replayed the most recent events): the record knows
        // the desk answered.
        let mut events = vec![
            ev("desk", Some("101"), In, 6, 30, "Disconnected"),
            ev("caller", None, Out, 7, 30, "Disconnected"),
        ];
        assert_eq!(
            derive(&events, 2, None).expect("call").result,
            Some(CallResult::Missed)
        );
        events.extend(call_log_events("Accepted", 95));
        let merged = derive(&events, 3, None).expect("call");
        assert_eq!(merged.result, Some(CallResult::Answered));
    }

    #[test]
    fn a_call_with_a_hole_in_its_sequence_is_told_by_its_call_log_record() {
        // The desk's Answered (sequence 3) was lost: the live events alone say missed.
        let mut events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("desk", Some("101"), In, 2, 1, "Proceeding"),
            ev("desk", Some("101"), In, 4, 30, "Disconnected"),
            ev("caller", None, Out, 5, 30, "Disconnected"),
        ];
        assert_eq!(
            derive(&events, 4, None).expect("call").result,
            Some(CallResult::Missed)
        );
        events.extend(call_log_events("Accepted", 95));
        assert_eq!(
            derive(&events, 5, None).expect("call").result,
            Some(CallResult::Answered)
        );
    }

    #[test]
    fn unknown_status_codes_are_kept_without_breaking_the_call() {
        let events = vec![
            ev("desk", Some("101"), In, 1, 0, "Proceeding"),
            ev("desk", Some("101"), In, 2, 5, "Tds"),
            ev("desk", Some("101"), In, 3, 6, "VoiceMailScreening"),
            ev("desk", Some("101"), In, 4, 9, "FaxReceive"),
        ];
        let call = derive(&events, 4, None).expect("call");
        assert_eq!(call.state, CallState::Connected, "still in progress");
        assert_eq!(
            call.result,
            Some(CallResult::Voicemail),
            "screening is voicemail"
        );
    }

    #[test]
    fn the_pstn_callers_answer_is_not_the_dealerships() {
        // An IVR picks up: the caller party goes Answered, no desk ever does.
        let events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("caller", None, Out, 2, 1, "Answered"),
            ev("desk", Some("101"), In, 3, 5, "Proceeding"),
            ev("desk", Some("101"), In, 4, 25, "Disconnected"),
            ev("caller", None, Out, 5, 25, "Disconnected"),
        ];
        let call = derive(&events, 5, None).expect("call");
        assert_eq!(call.direction, CallDirection::Inbound);
        assert_eq!(call.result, Some(CallResult::Missed));
        assert_eq!(call.answered_at, None);
        assert_eq!(call.ring_seconds, 25);
    }

    #[test]
    fn only_the_pstn_caller_so_far_reads_as_inbound() {
        let call = derive(&[ev("caller", None, Out, 1, 0, "Setup")], 1, None).expect("call");
        assert_eq!(call.direction, CallDirection::Inbound);
        assert_eq!(call.state, CallState::Ringing);
        let call = derive(&[ev("callee", None, In, 1, 0, "Setup")], 1, None).expect("call");
        assert_eq!(
            call.direction,
            CallDirection::Outbound,
            "PSTN callee leg of an outbound call"
        );
    }

    #[test]
    fn desk_to_desk_is_internal_even_from_one_side() {
        let mut e = ev("desk2", Some("102"), In, 1, 0, "Proceeding");
        e.from = end("101");
        let call = derive(&[e], 1, None).expect("call");
        assert_eq!(call.direction, CallDirection::Internal);
        let both = vec![
            ev("desk1", Some("101"), Out, 1, 0, "Setup"),
            ev("desk2", Some("102"), In, 2, 0, "Proceeding"),
            ev("desk2", Some("102"), In, 3, 4, "Answered"),
            ev("desk2", Some("102"), In, 4, 14, "Disconnected"),
            ev("desk1", Some("101"), Out, 5, 14, "Disconnected"),
        ];
        let call = derive(&both, 5, None).expect("call");
        assert_eq!(call.direction, CallDirection::Internal);
        assert_eq!(call.result, Some(CallResult::Answered));
        assert_eq!(call.talk_seconds, 10, "the conversation is counted once");
    }

    #[test]
    fn an_unanswered_outbound_call_is_no_answer_not_missed() {
        let events = vec![
            ev("desk", Some("101"), Out, 1, 0, "Setup"),
            ev("callee", None, In, 2, 1, "Proceeding"),
            ev("callee", None, In, 3, 30, "Disconnected"),
            ev("desk", Some("101"), Out, 4, 30, "Disconnected"),
        ];
        let call = derive(&events, 4, None).expect("call");
        assert_eq!(call.direction, CallDirection::Outbound);
        assert_eq!(call.result, Some(CallResult::NoAnswer));
    }

    #[test]
    fn a_transfer_is_not_the_end_and_never_missed() {
        let events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("a", Some("101"), In, 2, 1, "Answered"),
            ev_reason(
                "a",
                Some("101"),
                In,
                3,
                20,
                "Disconnected",
                Some("AttendedTransfer"),
            ),
        ];
        let call = derive(&events, 3, None).expect("call");
        assert_ne!(
            call.state,
            CallState::Ended,
            "the caller is being transferred"
        );
        assert_eq!(call.result, Some(CallResult::Answered));
        let mut gone = events;
        gone[2] = ev("a", Some("101"), In, 3, 20, "Gone");
        let call = derive(&gone, 3, None).expect("call");
        assert_ne!(
            call.state,
            CallState::Ended,
            "Gone moves the party to another session"
        );
    }

    #[test]
    fn a_call_whose_last_leg_moved_to_another_session_ends_here_and_is_not_missed() {
        let gone_to = |peer: &str| {
            let mut e = ev("caller", None, Out, 4, 9, "Gone");
            if let Some(status) = e.status.as_mut() {
                status.peer_session = Some(peer.into());
            }
            e
        };
        let mut events = vec![
            ev("caller", None, Out, 1, 0, "Setup"),
            ev("a", Some("101"), In, 2, 1, "Proceeding"),
            ev_reason("a", Some("101"), In, 3, 9, "Disconnected", Some("Pickup")),
            gone_to("s-elsewhere"),
        ];
        let call = derive(&events, 4, None).expect("call");
        assert_eq!(
            call.state,
            CallState::Ended,
            "it goes on in the other session"
        );
        assert_eq!(call.result, None, "taken elsewhere, not missed");
        events[3] = gone_to(&events[0].call_key.clone());
        let call = derive(&events, 4, None).expect("call");
        assert_ne!(call.state, CallState::Ended, "moved within this session");
    }

    #[test]
    fn hold_time_is_not_talk_time() {
        let events = vec![
            ev("a", Some("101"), In, 1, 0, "Proceeding"),
            ev("a", Some("101"), In, 2, 10, "Answered"),
            ev("a", Some("101"), In, 3, 20, "Hold"),
            ev("a", Some("101"), In, 4, 50, "Answered"),
            ev("a", Some("101"), In, 5, 55, "Disconnected"),
        ];
        let call = derive(&events, 5, None).expect("call");
        assert_eq!(call.talk_seconds, 15);
        assert_eq!(call.extensions[0].talk_seconds, 15);
    }

    #[test]
    fn involvement_follows_the_watch_list() {
        let call = derive(&[ev("a", Some("101"), In, 1, 0, "Proceeding")], 1, None).expect("call");
        assert!(involves(&call, &[]));
        assert!(involves(&call, &["101".into()]));
        assert!(!involves(&call, &["102".into()]));
    }
}
