//! Call-log records (REST API, used by backfill) → the same normalized events webhooks give.
//!
//! docs/PROTOCOL.md §4.5: a record is one call as RingCentral logged it — `telephonySessionId`,
//! `startTime`, `duration`, `direction`, `result`, `from`/`to`, `recording`, `message` (the
//! voicemail it produced). It becomes one event on a `calllog:` leg, which the call logic uses
//! only when no live event reported the call, while its voicemail and recording links always
//! count.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{
    CallEvent, Delivery, Endpoint, EventSource, Leg, LegDirection, LegState, LegStatus, Origin,
    ParsedDelivery, Payload, Provider, Recording,
};
use crate::numbers::{Country, PhoneNumber};
use crate::wire::{clean_text, Id, LenientInt, ParseError, Timestamp};

/// The longest call a call-log record may describe, seconds.
const MAX_CALL_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Record {
    id: Option<Id>,
    telephony_session_id: Option<Id>,
    start_time: Option<Timestamp>,
    duration: Option<LenientInt>,
    direction: Option<String>,
    result: Option<String>,
    from: Option<Party>,
    to: Option<Party>,
    extension: Option<ExtensionRef>,
    recording: Option<RecordingRef>,
    message: Option<MessageRef>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Party {
    phone_number: Option<serde_json::Value>,
    extension_number: Option<Id>,
    extension_id: Option<Id>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExtensionRef {
    id: Option<Id>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RecordingRef {
    id: Option<Id>,
    content_uri: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MessageRef {
    id: Option<Id>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Call-log results that mean somebody talked.
const ANSWERED_RESULTS: &[&str] = &["accepted", "call connected", "reply"];

/// True when a call-log result text means the call reached voicemail.
pub fn is_voicemail_result(result: &str) -> bool {
    result.to_ascii_lowercase().contains("voicemail")
}

fn endpoint(p: Option<Party>, country: &Country) -> (Endpoint, Option<String>, Option<String>) {
    let p = p.unwrap_or_default();
    let number = p
        .phone_number
        .as_ref()
        .and_then(|v| PhoneNumber::parse_json(v, country))
        .filter(|n| !n.raw.trim().is_empty());
    let extension_id = p.extension_id.and_then(Id::into_non_empty);
    let extension_number = p.extension_number.and_then(Id::into_extension);
    let number = number.or_else(|| {
        extension_number
            .as_ref()
            .map(|n| PhoneNumber::parse(n, country))
    });
    (
        Endpoint {
            number,
            name: clean_text(p.name),
            extension_id: extension_id.clone(),
        },
        extension_id,
        extension_number,
    )
}

/// Converts one call-log record into a delivery (origin: backfill) with dedup key
/// `calllog:<record id>`; importing the same record twice changes nothing.
pub fn record_to_delivery(
    record: &serde_json::Value,
    country: &Country,
    received_at: DateTime<Utc>,
) -> Result<Delivery, ParseError> {
    let body = serde_json::to_vec(record).map_err(|e| ParseError::new(e.to_string()))?;
    let r: Record = serde_path_to_error::deserialize(record.clone()).map_err(|e| {
        let path = e.path().to_string();
        ParseError::new(format!("call-log record {path}: {}", e.into_inner()))
    })?;
    let record_id =
        r.id.and_then(Id::into_non_empty)
            .ok_or_else(|| ParseError::new("call-log record without `id`"))?;
    let call_key = r
        .telephony_session_id
        .and_then(Id::into_non_empty)
        .ok_or_else(|| {
            ParseError::new(format!(
                "call-log record {record_id} has no telephonySessionId"
            ))
        })?;
    let start = r
        .start_time
        .map(|t| t.0)
        .ok_or_else(|| ParseError::new(format!("call-log record {record_id} has no startTime")))?;
    let duration = r.duration.map_or(0, |d| d.0).max(0);
    let direction = r.direction.as_deref().and_then(LegDirection::parse);
    let result = clean_text(r.result).unwrap_or_else(|| "Unknown".into());
    let answered = ANSWERED_RESULTS.contains(&result.to_ascii_lowercase().as_str());
    let (from, from_ext_id, from_ext_no) = endpoint(r.from, country);
    let (to, to_ext_id, to_ext_no) = endpoint(r.to, country);
    let (own_id, own_no, own_name) = match direction {
        Some(LegDirection::Outbound) => (from_ext_id, from_ext_no, from.name.clone()),
        _ => (to_ext_id, to_ext_no, to.name.clone()),
    };
    let extension_id = r
        .extension
        .and_then(|e| e.id)
        .and_then(Id::into_non_empty)
        .or(own_id);
    // A week bounds any real call; a larger figure from the platform would overflow the end
    // time (and chrono panics on that) rather than describe a call.
    let end = chrono::Duration::try_seconds(duration)
        .filter(|_| duration <= MAX_CALL_SECONDS)
        .and_then(|d| start.checked_add_signed(d))
        .ok_or_else(|| {
            ParseError::new(format!(
                "call-log record {record_id}: duration {duration} is not a call length in seconds"
            ))
        })?;
    let voicemail_message_id = r
        .message
        .filter(|m| {
            m.kind
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case("voicemail"))
        })
        .and_then(|m| m.id)
        .and_then(Id::into_non_empty);
    let recording = r.recording.map(|rec| Recording {
        id: rec.id.and_then(Id::into_non_empty),
        url: rec
            .content_uri
            .and_then(|uri| crate::links::payload_link(&uri)),
    });
    let event = CallEvent {
        provider: Provider::RingCentral,
        call_key,
        source: EventSource::CallLog,
        leg: Leg {
            id: format!("calllog:{record_id}"),
            has_provider_id: true,
            extension_number: own_no.filter(|_| extension_id.is_some()),
            extension_id,
            name: own_name,
            direction,
        },
        sequence: None,
        event_time: end,
        from,
        to,
        status: Some(LegStatus::new(
            LegState::Ended,
            "CallLog",
            Some(result.clone()),
        )),
        missed_call: !answered && direction != Some(LegDirection::Outbound),
        queue_call: false,
        recording,
        call_start: Some(start),
        call_end: Some(end),
        talk_seconds: Some(if answered { duration } else { 0 }),
        outcome: Some(result),
        voicemail_message_id,
    };
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    Ok(Delivery {
        parsed: ParsedDelivery {
            provider: Provider::RingCentral,
            dedup_key: format!("calllog:{record_id}"),
            content_key: None,
            kind: "call_log".into(),
            event_time: Some(start),
            payload: Payload::Calls(vec![event]),
        },
        origin: Origin::Backfill,
        received_at,
        headers: Vec::new(),
        body,
        body_sha256: sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn us() -> Country {
        Country::from_iso("US").expect("US")
    }

    #[test]
    fn records_become_call_log_events() {
        let record = json!({
            "id": "IXtVRs-3B7A_PfE", "telephonySessionId": "s-9", "sessionId": "404769762004",
            "startTime": "2026-11-20T12:58:09.000Z", "duration": 4, "type": "Voice",
            "direction": "Inbound", "action": "Phone Call", "result": "Accepted",
            "to": {"phoneNumber": "18662130006", "name": "Rose White", "extensionNumber": "101"},
            "from": {"phoneNumber": "(650) 444-5567", "name": "Phillip Marco", "location": "Palo Alto, CA"},
            "extension": {"id": 62264425016u64},
            "recording": {"id": "r1", "contentUri": "https://media.ringcentral.com/restapi/v1.0/account/1/recording/r1/content"}
        });
        let d = record_to_delivery(&record, &us(), Utc::now()).expect("record");
        assert_eq!(d.parsed.dedup_key, "calllog:IXtVRs-3B7A_PfE");
        assert_eq!(d.origin, Origin::Backfill);
        let Payload::Calls(events) = &d.parsed.payload else {
            panic!("calls")
        };
        let e = &events[0];
        assert_eq!(e.call_key, "s-9");
        assert_eq!(e.leg.extension_id.as_deref(), Some("62264425016"));
        assert_eq!(e.leg.extension_number.as_deref(), Some("101"));
        assert_eq!(e.talk_seconds, Some(4));
        assert_eq!(
            e.from.number.as_ref().and_then(|n| n.e164.as_deref()),
            Some("+16504445567")
        );
        assert!(e
            .recording
            .as_ref()
            .and_then(|r| r.url.as_deref())
            .is_some());

        let vm = json!({"id": "x2", "telephonySessionId": "s-10", "startTime": "2026-11-20T13:00:00Z",
            "duration": 30, "direction": "Inbound", "result": "Voicemail",
            "message": {"id": "82063400004", "type": "VoiceMail", "uri": "https://…"},
            "from": {"phoneNumber": "+13105550142"}, "to": {"phoneNumber": "101", "extensionId": "62264425016"}});
        let d = record_to_delivery(&vm, &us(), Utc::now()).expect("voicemail record");
        let Payload::Calls(events) = &d.parsed.payload else {
            panic!("calls")
        };
        assert_eq!(
            events[0].voicemail_message_id.as_deref(),
            Some("82063400004")
        );
        assert_eq!(events[0].talk_seconds, Some(0));
        assert!(is_voicemail_result(
            events[0].outcome.as_deref().unwrap_or_default()
        ));

        for bad in [
            json!({"telephonySessionId": "s"}),
            json!({"id": "1"}),
            json!({"id": "1", "telephonySessionId": "s"}),
            // Durations past chrono's range panicked when the end time was worked out.
            json!({"id": "1", "telephonySessionId": "s", "startTime": "2026-11-20T13:00:00Z",
                   "duration": i64::MAX}),
            json!({"id": "1", "telephonySessionId": "s", "startTime": "9999-12-31T23:59:59Z",
                   "duration": 9_000_000_000_000_000i64}),
            json!({"id": "1", "telephonySessionId": "s", "startTime": "2026-11-20T13:00:00Z",
                   "duration": MAX_CALL_SECONDS + 1}),
        ] {
            assert!(
                record_to_delivery(&bad, &us(), Utc::now()).is_err(),
                "{bad}"
            );
        }
    }
}
