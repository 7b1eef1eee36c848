//! RingCentral webhook deliveries: envelope, telephony sessions, detailed presence, voicemail,
//! message-store counters and subscription renewal reminders → normalized [`ParsedDelivery`].
//!
//! The facts this follows are in docs/PROTOCOL.md §1.5 and §4: `event` is a concrete path (match by
//! pattern, not equality), ids may be strings or numbers, one or many parties per event, the
//! seed/DealerStudio payload uses `id` instead of `uuid` and may omit party ids and statuses.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{
    CallEvent, Endpoint, EventSource, Leg, LegDirection, LegState, LegStatus, ParsedDelivery,
    Payload, Provider, Recording, RenewalReminder, VoicemailMessage,
};
use crate::numbers::{Country, NumberKind, PhoneNumber};
use crate::wire::{clean_text, Id, LenientInt, Timestamp};
use crate::ParseError;

/// The longest dedup key we accept; real `uuid`s are under 64 characters.
const MAX_DEDUP_KEY_LEN: usize = 256;

/// The kind of RingCentral event, decided from the `event` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `/account/{a}[/extension/{e}]/telephony/sessions`.
    TelephonySessions,
    /// `/account/{a}/extension/{e}/presence` and its line/favorite variants.
    Presence,
    /// `/account/{a}/extension/{e}/voicemail`; carries the mailbox extension from the path.
    Voicemail {
        /// Mailbox extension id from the path (`~` when the filter used it).
        extension_id: Option<String>,
    },
    /// `/account/{a}/extension/{e}/message-store` (a change counter, not a message).
    MessageStore,
    /// `/restapi/v1.0/subscription/…` renewal reminder.
    RenewalReminder,
    /// Anything else; stored and acknowledged.
    Unknown,
}

impl EventKind {
    /// Short stable label stored with the raw event.
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::TelephonySessions => "telephony",
            EventKind::Presence => "presence",
            EventKind::Voicemail { .. } => "voicemail",
            EventKind::MessageStore => "message_store",
            EventKind::RenewalReminder => "renewal_reminder",
            EventKind::Unknown => "unknown",
        }
    }

    /// Classifies an `event` path by pattern; query strings and `~` or numeric ids are accepted.
    pub fn classify(event: &str) -> EventKind {
        let path = event.split('?').next().unwrap_or(event);
        let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segs
            .first()
            .is_some_and(|s| s.eq_ignore_ascii_case("restapi"))
        {
            segs.remove(0);
            if segs.first().is_some_and(|s| s.starts_with('v')) {
                segs.remove(0);
            }
        }
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        match l.as_slice() {
            ["subscription", ..] => EventKind::RenewalReminder,
            ["account", _, "telephony", "sessions"]
            | ["account", _, "extension", _, "telephony", "sessions"] => {
                EventKind::TelephonySessions
            }
            ["account", _, "extension", _, "presence"]
            | ["account", _, "extension", _, "presence", "line", "presence"]
            | ["account", _, "extension", _, "favorite", "presence"] => EventKind::Presence,
            ["account", _, "extension", _, "voicemail"] => EventKind::Voicemail {
                extension_id: Some(segs[3].to_string()).filter(|e| e != "~"),
            },
            ["account", _, "extension", _, "message-store"] => EventKind::MessageStore,
            _ => EventKind::Unknown,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    uuid: Option<Id>,
    id: Option<Id>,
    event: Option<String>,
    subscription_id: Option<Id>,
    timestamp: Option<Timestamp>,
    #[serde(borrow)]
    body: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TelephonyBody {
    sequence: Option<LenientInt>,
    telephony_session_id: Option<Id>,
    event_time: Option<Timestamp>,
    parties: Option<Vec<Party>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Party {
    id: Option<Id>,
    extension_id: Option<Id>,
    direction: Option<String>,
    from: Option<PartyEnd>,
    to: Option<PartyEnd>,
    status: Option<PartyStatus>,
    missed_call: Option<bool>,
    queue_call: Option<bool>,
    recordings: Option<Vec<PartyRecording>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PartyEnd {
    phone_number: Option<serde_json::Value>,
    name: Option<String>,
    extension_id: Option<Id>,
    extension_number: Option<Id>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PartyStatus {
    code: Option<String>,
    reason: Option<String>,
    peer_id: Option<PeerId>,
}

/// Where a `Gone` party went (docs/PROTOCOL.md §4).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PeerId {
    telephony_session_id: Option<Id>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PartyRecording {
    id: Option<Id>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PresenceBody {
    extension_id: Option<Id>,
    sequence: Option<LenientInt>,
    active_calls: Option<Vec<ActiveCall>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ActiveCall {
    direction: Option<String>,
    from: Option<serde_json::Value>,
    from_name: Option<String>,
    to: Option<serde_json::Value>,
    to_name: Option<String>,
    start_time: Option<Timestamp>,
    telephony_status: Option<String>,
    telephony_session_id: Option<Id>,
    party_id: Option<Id>,
    queue_call: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct VoicemailBody {
    id: Option<Id>,
    from: Option<VoicemailParty>,
    to: Option<Vec<VoicemailParty>>,
    creation_time: Option<Timestamp>,
    attachments: Option<Vec<VoicemailAttachment>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct VoicemailParty {
    phone_number: Option<serde_json::Value>,
    extension_number: Option<Id>,
    extension_id: Option<Id>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct VoicemailAttachment {
    uri: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    vm_duration: Option<LenientInt>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ReminderBody {
    expires_in: Option<LenientInt>,
}

/// Reads `raw` JSON into `T`, naming the failing field's path (`body.parties[0].status: …`).
fn typed<'a, T: Deserialize<'a>>(raw: &'a str, at: &str) -> Result<T, ParseError> {
    // Tracking the path costs about a third of the parse; it is only needed to explain a
    // failure, so a body is read again with it only then.
    if let Ok(value) = serde_json::from_str(raw) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let where_ = if path == "." || path.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        ParseError::new(format!("{where_}: {}", e.into_inner()))
    })
}

/// Parses one RingCentral webhook body (already known to be non-empty and authenticated).
///
/// Well-formed bodies are read in one pass straight into typed structs; anything else (and the
/// mobile-push wrapping) goes through a careful path that explains exactly what is wrong.
pub fn parse_delivery(
    body: &[u8],
    country: &Country,
    received_at: DateTime<Utc>,
) -> Result<ParsedDelivery, ParseError> {
    let looks_like_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if looks_like_object {
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
            if envelope.body.is_some() {
                if let Ok(parsed) = interpret(envelope, country, received_at) {
                    return Ok(parsed);
                }
            }
        }
    }
    let mut root = crate::wire::parse_json_object(body)?;
    // Mobile-push wrapped samples carry the real envelope under `pn_apns` (docs/PROTOCOL.md §1.5).
    if !root.contains_key("body") {
        if let Some(serde_json::Value::Object(inner)) = root.get("pn_apns") {
            let mut inner = inner.clone();
            inner.remove("aps");
            root = inner;
        }
    }
    let text = serde_json::Value::Object(root).to_string();
    let envelope: Envelope = typed(&text, "envelope")?;
    interpret(envelope, country, received_at)
}

fn interpret(
    envelope: Envelope<'_>,
    country: &Country,
    received_at: DateTime<Utc>,
) -> Result<ParsedDelivery, ParseError> {
    let dedup_key = envelope
        .uuid
        .or(envelope.id)
        .and_then(Id::into_non_empty)
        .ok_or_else(|| ParseError::new("envelope: missing `uuid` (or `id`)"))?;
    if dedup_key.len() > MAX_DEDUP_KEY_LEN {
        return Err(ParseError::new(format!(
            "envelope: `uuid` is longer than {MAX_DEDUP_KEY_LEN} characters"
        )));
    }
    // The key is logged and shown as it is: a CR or LF in it would write forged log lines.
    if !dedup_key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::new(
            "envelope: `uuid` must be printable ASCII without spaces",
        ));
    }
    let event = envelope
        .event
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| ParseError::new("envelope: missing `event`"))?;
    let kind = EventKind::classify(&event);
    let sent_at = envelope.timestamp.map(|t| t.0);
    let body = envelope.body.map_or("null", |b| b.get());
    let body_is_object = body.trim_start().starts_with('{');
    let needs_object = !matches!(kind, EventKind::Unknown | EventKind::RenewalReminder);
    if needs_object && !body_is_object {
        let found = serde_json::from_str::<serde_json::Value>(body)
            .map(|v| crate::wire::kind_of(&v))
            .unwrap_or("something else");
        return Err(ParseError::new(format!(
            "body: expected an object, found {found}"
        )));
    }
    let fallback_time = sent_at.unwrap_or(received_at);
    let mut timed_by_body = false;
    let (payload, event_time) = match &kind {
        EventKind::TelephonySessions => {
            let ts: TelephonyBody = typed(body, "body")?;
            // Without its own time the event takes the envelope's, which each subscription
            // stamps differently: then it has no content key of its own.
            timed_by_body = ts.event_time.is_some();
            let time = ts.event_time.map(|t| t.0).unwrap_or(fallback_time);
            (
                Payload::Calls(telephony_events(ts, country, time)?),
                Some(time),
            )
        }
        EventKind::Presence => {
            let p: PresenceBody = typed(body, "body")?;
            (
                Payload::Calls(presence_events(p, country, fallback_time)),
                sent_at,
            )
        }
        EventKind::Voicemail { extension_id } => {
            let vm: VoicemailBody = typed(body, "body")?;
            let msg = voicemail_message(vm, extension_id.clone(), country, fallback_time)?;
            let at = msg.created_at;
            (Payload::Voicemail(Box::new(msg)), Some(at))
        }
        EventKind::RenewalReminder => {
            let expires_in = if body_is_object {
                typed::<ReminderBody>(body, "body")?.expires_in.map(|n| n.0)
            } else {
                None
            };
            let reminder = RenewalReminder {
                subscription_id: envelope.subscription_id.and_then(Id::into_non_empty),
                expires_in,
            };
            (Payload::Reminder(reminder), sent_at)
        }
        EventKind::MessageStore | EventKind::Unknown => (Payload::Other, sent_at),
    };
    let content_key = match &payload {
        Payload::Calls(events) if kind == EventKind::TelephonySessions && timed_by_body => {
            telephony_key(events)
        }
        _ => None,
    };
    Ok(ParsedDelivery {
        provider: Provider::RingCentral,
        dedup_key,
        content_key,
        kind: kind.label().to_string(),
        event_time,
        payload,
    })
}

/// The identity of a telephony event whatever delivered it: its session and sequence (each
/// event of a session has its own) and a digest of what it says, so two different events can
/// never share a key even if a sequence repeated.
fn telephony_key(events: &[CallEvent]) -> Option<String> {
    use sha2::Digest;
    let first = events.first()?;
    let sequence = first.sequence?;
    let text = serde_json::to_vec(events).ok()?;
    let digest = hex::encode(&sha2::Sha256::digest(&text)[..12]);
    Some(format!("telephony:{}:{sequence}:{digest}", first.call_key))
}

/// Maps a telephony status code (any letter case) to a leg state; unknown codes are kept.
pub fn state_of_code(code: &str) -> LegState {
    match code.trim().to_ascii_lowercase().as_str() {
        "setup" | "proceeding" => LegState::Ringing,
        "answered" => LegState::Connected,
        "hold" | "parked" => LegState::Held,
        "voicemail" | "voicemailscreening" | "vmscreening" => LegState::Voicemail,
        "disconnected" | "gone" => LegState::Ended,
        _ => LegState::Other,
    }
}

fn endpoint(end: Option<PartyEnd>, country: &Country) -> Endpoint {
    let end = end.unwrap_or_default();
    Endpoint {
        number: end
            .phone_number
            .as_ref()
            .and_then(|v| PhoneNumber::parse_json(v, country))
            .filter(|n| !(n.raw.trim().is_empty())),
        name: clean_text(end.name),
        extension_id: end.extension_id.and_then(Id::into_non_empty),
    }
    .with_extension_number(end.extension_number.and_then(Id::into_extension), country)
}

impl Endpoint {
    fn with_extension_number(mut self, number: Option<String>, country: &Country) -> Endpoint {
        if self.number.is_none() {
            self.number = number.map(|n| PhoneNumber::parse(&n, country));
        }
        self
    }

    fn short_number(&self) -> Option<String> {
        self.number
            .as_ref()
            .filter(|n| n.kind == NumberKind::Extension)
            .and_then(|n| n.extension.clone())
    }
}

fn telephony_events(
    ts: TelephonyBody,
    country: &Country,
    time: DateTime<Utc>,
) -> Result<Vec<CallEvent>, ParseError> {
    let call_key = ts
        .telephony_session_id
        .and_then(Id::into_non_empty)
        .ok_or_else(|| ParseError::new("body: missing `telephonySessionId`"))?;
    let sequence = ts.sequence.map(|s| s.0);
    let mut events = Vec::new();
    for (index, party) in ts.parties.unwrap_or_default().into_iter().enumerate() {
        let direction = party.direction.as_deref().and_then(LegDirection::parse);
        let from = endpoint(party.from, country);
        let to = endpoint(party.to, country);
        let extension_id = party.extension_id.and_then(Id::into_non_empty);
        // The party's own side: the callee end for an inbound party, the caller end otherwise.
        let own = match direction {
            Some(LegDirection::Outbound) => &from,
            _ => &to,
        };
        let own_is_this_extension = extension_id.is_some()
            && (own.extension_id.is_none() || own.extension_id == extension_id);
        let (extension_number, name) = if own_is_this_extension {
            (own.short_number(), own.name.clone())
        } else {
            (None, None)
        };
        let provider_id = party.id.and_then(Id::into_non_empty);
        let has_provider_id = provider_id.is_some();
        let leg_id = provider_id.unwrap_or_else(|| match &extension_id {
            Some(ext) => format!("ext:{ext}"),
            None => format!(
                "party:{}:{index}",
                direction.map_or("unknown", |d| match d {
                    LegDirection::Inbound => "inbound",
                    LegDirection::Outbound => "outbound",
                })
            ),
        });
        let status = party.status.and_then(|s| {
            let code = s
                .code
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())?;
            Some(LegStatus {
                state: state_of_code(&code),
                code,
                reason: clean_text(s.reason),
                peer_session: s
                    .peer_id
                    .and_then(|p| p.telephony_session_id)
                    .and_then(Id::into_non_empty),
            })
        });
        let recording = party
            .recordings
            .unwrap_or_default()
            .into_iter()
            .find_map(|r| r.id.and_then(Id::into_non_empty))
            .map(|id| Recording {
                id: Some(id),
                url: None,
            });
        events.push(CallEvent {
            provider: Provider::RingCentral,
            call_key: call_key.clone(),
            source: EventSource::TelephonySession,
            leg: Leg {
                id: leg_id,
                has_provider_id,
                extension_id,
                extension_number,
                name,
                direction,
            },
            sequence,
            event_time: time,
            from,
            to,
            status,
            missed_call: party.missed_call.unwrap_or(false),
            queue_call: party.queue_call.unwrap_or(false),
            recording,
            call_start: None,
            call_end: None,
            talk_seconds: None,
            outcome: None,
            voicemail_message_id: None,
        });
    }
    Ok(events)
}

fn presence_state(status: &str) -> LegState {
    match status.trim().to_ascii_lowercase().as_str() {
        "ringing" => LegState::Ringing,
        "callconnected" => LegState::Connected,
        "onhold" | "parkedcall" => LegState::Held,
        "nocall" => LegState::Ended,
        _ => LegState::Other,
    }
}

fn presence_events(p: PresenceBody, country: &Country, time: DateTime<Utc>) -> Vec<CallEvent> {
    let extension_id = p.extension_id.and_then(Id::into_non_empty);
    let sequence = p.sequence.map(|s| s.0);
    let number = |v: Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| PhoneNumber::parse_json(v, country))
            .filter(|n| !n.raw.trim().is_empty())
    };
    p.active_calls
        .unwrap_or_default()
        .into_iter()
        .filter_map(|call| {
            let call_key = call.telephony_session_id.and_then(Id::into_non_empty)?;
            let direction = call.direction.as_deref().and_then(LegDirection::parse);
            let status = call
                .telephony_status
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .map(|code| LegStatus::new(presence_state(&code), code, None));
            let from = Endpoint {
                number: number(call.from),
                name: clean_text(call.from_name),
                extension_id: None,
            };
            let to = Endpoint {
                number: number(call.to),
                name: clean_text(call.to_name),
                extension_id: None,
            };
            let own = match direction {
                Some(LegDirection::Outbound) => &from,
                _ => &to,
            };
            let leg = Leg {
                id: match &extension_id {
                    Some(ext) => format!("presence:{ext}"),
                    None => format!(
                        "presence:{}",
                        call.party_id
                            .and_then(Id::into_non_empty)
                            .unwrap_or_else(|| "unknown".into())
                    ),
                },
                has_provider_id: true,
                extension_id: extension_id.clone(),
                extension_number: own.short_number(),
                name: None,
                direction,
            };
            Some(CallEvent {
                provider: Provider::RingCentral,
                call_key,
                source: EventSource::Presence,
                leg,
                sequence,
                event_time: time,
                from,
                to,
                status,
                missed_call: false,
                queue_call: call.queue_call.unwrap_or(false),
                recording: None,
                call_start: call.start_time.map(|t| t.0),
                call_end: None,
                talk_seconds: None,
                outcome: None,
                voicemail_message_id: None,
            })
        })
        .collect()
}

fn voicemail_message(
    vm: VoicemailBody,
    path_extension: Option<String>,
    country: &Country,
    fallback_time: DateTime<Utc>,
) -> Result<VoicemailMessage, ParseError> {
    let message_id = vm
        .id
        .and_then(Id::into_non_empty)
        .ok_or_else(|| ParseError::new("body: missing voicemail message `id`"))?;
    let from = vm.from.unwrap_or_default();
    let mailbox = vm
        .to
        .unwrap_or_default()
        .into_iter()
        .next()
        .unwrap_or_default();
    let audio = vm.attachments.unwrap_or_default().into_iter().find(|a| {
        a.kind
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("AudioRecording"))
    });
    Ok(VoicemailMessage {
        provider: Provider::RingCentral,
        message_id,
        extension_id: path_extension.or(mailbox.extension_id.and_then(Id::into_non_empty)),
        extension_number: mailbox.extension_number.and_then(Id::into_extension),
        from: Endpoint {
            number: from
                .phone_number
                .as_ref()
                .and_then(|v| PhoneNumber::parse_json(v, country)),
            name: clean_text(from.name),
            extension_id: None,
        },
        created_at: vm.creation_time.map(|t| t.0).unwrap_or(fallback_time),
        duration_seconds: audio.as_ref().and_then(|a| a.vm_duration.map(|d| d.0)),
        audio_url: audio
            .and_then(|a| a.uri)
            .and_then(|uri| crate::links::payload_link(&uri)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_concrete_event_paths_by_pattern() {
        let cases = [
            ("/restapi/v1.0/account/~/telephony/sessions", "telephony"),
            (
                "/restapi/v1.0/account/809646016/telephony/sessions",
                "telephony",
            ),
            (
                "/restapi/v1.0/account/809646016/extension/62242421016/telephony/sessions",
                "telephony",
            ),
            (
                "/restapi/v1.0/account/acc/telephony/sessions?sipData=true",
                "telephony",
            ),
            (
                "/restapi/v1.0/account/~/extension/6610372004/presence?detailedTelephonyState=true",
                "presence",
            ),
            (
                "/restapi/v1.0/account/~/extension/1/presence/line/presence",
                "presence",
            ),
            (
                "/restapi/v1.0/account/~/extension/823476228762/voicemail",
                "voicemail",
            ),
            (
                "/restapi/v1.0/account/~/extension/1/message-store",
                "message_store",
            ),
            (
                "/restapi/v1.0/subscription/~?threshold=60&interval=15",
                "renewal_reminder",
            ),
            ("/restapi/v1.0/glip/posts", "unknown"),
            ("", "unknown"),
        ];
        for (path, want) in cases {
            assert_eq!(EventKind::classify(path).label(), want, "{path}");
        }
        assert_eq!(
            EventKind::classify("/restapi/v1.0/account/~/extension/42/voicemail"),
            EventKind::Voicemail {
                extension_id: Some("42".into())
            }
        );
    }

    fn us() -> Country {
        Country::from_iso("US").expect("US")
    }

    fn parse_file(text: &str) -> ParsedDelivery {
        parse_delivery(text.as_bytes(), &us(), Utc::now()).expect("parses")
    }

    fn only_event(p: &ParsedDelivery) -> &CallEvent {
        match &p.payload {
            Payload::Calls(events) if events.len() == 1 => &events[0],
            other => panic!("expected one call event, got {other:?}"),
        }
    }

    #[test]
    fn telephony_payloads_normalize_table() {
        struct Want {
            file: &'static str,
            leg: &'static str,
            extension: Option<&'static str>,
            extension_number: Option<&'static str>,
            direction: LegDirection,
            state: LegState,
            from: &'static str,
            to: Option<&'static str>,
        }
        let cases = [
            Want {
                file: include_str!("../../../../tests/scenarios/rc-inbound-answered/01-seq1.json"),
                leg: "s-a0d7c5e1f2b34c8e9d0f1a2b3c4d5e6f-1",
                extension: None,
                extension_number: None,
                direction: LegDirection::Outbound,
                state: LegState::Ringing,
                from: "+14155550123",
                to: Some("+16505550100"),
            },
            Want {
                file: include_str!("../../../../tests/scenarios/rc-inbound-answered/07-seq7.json"),
                leg: "s-a0d7c5e1f2b34c8e9d0f1a2b3c4d5e6f-3",
                extension: Some("62264425016"),
                extension_number: Some("101"),
                direction: LegDirection::Inbound,
                state: LegState::Connected,
                from: "+14155550123",
                to: None,
            },
            Want {
                file: include_str!("../../../../tests/scenarios/rc-inbound-voicemail/04-seq4.json"),
                leg: "s-b1e8d6f2a3c45d9fae1b2c3d4e5f6a7b-2",
                extension: Some("62264425016"),
                extension_number: Some("101"),
                direction: LegDirection::Inbound,
                state: LegState::Voicemail,
                from: "+13105550142",
                to: None,
            },
            Want {
                file: include_str!("../../../../tests/scenarios/rc-outbound/03-seq3.json"),
                leg: "s-c2f9e7a3b4d56eafbf2c3d4e5f6a7b8c-2",
                extension: None,
                extension_number: None,
                direction: LegDirection::Inbound,
                state: LegState::Ringing,
                from: "+16505550100",
                to: Some("+14085550199"),
            },
        ];
        for want in cases {
            let parsed = parse_file(want.file);
            assert_eq!(parsed.kind, "telephony");
            let e = only_event(&parsed);
            assert_eq!(e.leg.id, want.leg);
            assert!(e.leg.has_provider_id);
            assert_eq!(e.leg.extension_id.as_deref(), want.extension);
            assert_eq!(e.leg.extension_number.as_deref(), want.extension_number);
            assert_eq!(e.leg.direction, Some(want.direction));
            assert_eq!(e.status.as_ref().map(|s| s.state), Some(want.state));
            assert_eq!(
                e.from.number.as_ref().and_then(|n| n.e164.as_deref()),
                Some(want.from)
            );
            if let Some(to) = want.to {
                assert_eq!(
                    e.to.number.as_ref().and_then(|n| n.e164.as_deref()),
                    Some(to)
                );
            }
            assert!(e.sequence.is_some());
        }
    }

    #[test]
    fn seed_presence_voicemail_and_mobile_push_shapes() {
        let seed = parse_file(include_str!(
            "../../../../tests/scenarios/rc-seed-minimal/01-seed.json"
        ));
        assert_eq!(seed.dedup_key, "rc-123");
        let e = only_event(&seed);
        assert!(!e.leg.has_provider_id, "the seed party has no id");
        assert_eq!(e.status, None);

        let p = parse_file(include_str!(
            "../../../../tests/scenarios/rc-presence-only/02-connected.json"
        ));
        assert_eq!(p.kind, "presence");
        let e = only_event(&p);
        assert_eq!(e.source, EventSource::Presence);
        assert_eq!(e.call_key, "s-f5c2b0d6e7a89bd2e25f6a7b8c9d0e1f");
        assert_eq!(e.leg.extension_id.as_deref(), Some("62264425016"));
        assert_eq!(
            e.status.as_ref().map(|s| s.state),
            Some(LegState::Connected)
        );
        assert_eq!(e.from.name.as_deref(), Some("WIRELESS CALLER"));

        let vm = parse_file(include_str!(
            "../../../../tests/scenarios/rc-inbound-voicemail/08-voicemail-message.json"
        ));
        let Payload::Voicemail(msg) = &vm.payload else {
            panic!("voicemail payload")
        };
        assert_eq!(msg.message_id, "82063400004");
        assert_eq!(msg.extension_id.as_deref(), Some("62264425016"));
        assert_eq!(msg.duration_seconds, Some(22));

        // The mobile-push wrapped sample in RingCentral's docs carries the envelope in pn_apns.
        let wrapped = r#"{"uuid":"837270960869181944","pn_apns":{"aps":{"content-available":1},
            "uuid":"837270960869181944","event":"/restapi/v1.0/account/400144452008/extension/400144455008/telephony/sessions",
            "timestamp":"2018-06-05T00:14:50.181Z","body":{"sequence":5,"telephonySessionId":"Y3Mx",
            "eventTime":"2018-06-05T00:14:50.147Z","parties":[{"extensionId":400144455008,"id":"cs-2",
            "direction":"Inbound","to":{"phoneNumber":"102","name":"Tom Sawyer","extensionId":"400144455008"},
            "from":{"phoneNumber":"103","name":"TheCat Jerry","extensionId":"400144457008"},
            "status":{"code":"Proceeding"}}]}}}"#;
        let p = parse_file(wrapped);
        let e = only_event(&p);
        assert_eq!(
            e.leg.extension_id.as_deref(),
            Some("400144455008"),
            "numeric ids read"
        );
        assert_eq!(e.leg.extension_number.as_deref(), Some("102"));
        assert_eq!(e.from.extension_id.as_deref(), Some("400144457008"));
    }

    #[test]
    fn one_event_may_carry_many_parties() {
        let body = r#"{"uuid":"1","event":"/restapi/v1.0/account/1/telephony/sessions","body":{
            "telephonySessionId":"s","sequence":"7","eventTime":"2026-11-20T15:00:00+0000","parties":[
              {"id":"p1","direction":"Outbound","from":{"phoneNumber":"(866)123-4567"},"to":{"phoneNumber":"101"},"status":{"code":"answered"}},
              {"id":"p2","extensionId":"9","direction":"Inbound","from":{"phoneNumber":18661234567},"to":{"phoneNumber":"101"},"status":{"code":"ANSWERED"}}]}}"#;
        let p = parse_file(body);
        let Payload::Calls(events) = &p.payload else {
            panic!("calls")
        };
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.sequence == Some(7)));
        assert!(events.iter().all(
            |e| e.from.number.as_ref().and_then(|n| n.e164.as_deref()) == Some("+18661234567")
        ));
        assert!(events
            .iter()
            .all(|e| e.status.as_ref().map(|s| s.state) == Some(LegState::Connected)));
    }

    #[test]
    fn a_uuid_that_could_forge_a_log_line_is_refused() {
        let au = Country::from_iso("AU").expect("AU");
        for uuid in ["1\\r\\nWARN forged", "a b", "\\u001b[2J", "é"] {
            let body = format!(
                r#"{{"uuid":"{uuid}","event":"/restapi/v1.0/account/1/extension/1/presence","body":{{}}}}"#
            );
            let e = parse_delivery(body.as_bytes(), &au, Utc::now()).expect_err(uuid);
            assert!(e.to_string().contains("printable ASCII"), "{uuid}: {e}");
        }
    }

    #[test]
    fn status_codes_compare_case_insensitively() {
        assert_eq!(state_of_code("VoiceMail"), LegState::Voicemail);
        assert_eq!(state_of_code("Voicemail"), LegState::Voicemail);
        assert_eq!(state_of_code("VMScreening"), LegState::Voicemail);
        assert_eq!(state_of_code("PROCEEDING"), LegState::Ringing);
        assert_eq!(state_of_code("Tds"), LegState::Other);
        assert_eq!(state_of_code("FaxReceive"), LegState::Other);
    }
}
