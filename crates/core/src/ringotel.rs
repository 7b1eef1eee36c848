//! Ringotel webhook integration: `{method, api_token, params}` bodies → normalized events.
//!
//! docs/PROTOCOL.md §5: the optional `api_token` travels in the JSON body; methods are
//! `StartCallActivity`, `StopCallActivity` and `UpdateCallRecording`; times are epoch
//! milliseconds; `call_duration` (seconds) is the talk time and may disagree with
//! `call_end − call_start`; recording field names are undocumented, so they are found by shape.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{
    CallEvent, Endpoint, EventSource, Leg, LegDirection, LegState, LegStatus, ParsedDelivery,
    Payload, Provider, Recording,
};
use crate::numbers::{Country, PhoneNumber};
use crate::wire::{clean_text, from_epoch_millis, kind_of, Id, LenientInt, ParseError};

/// The JSON body of a Ringotel request, read far enough to authenticate it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `method` as sent.
    pub method: String,
    /// `api_token` as sent, if any.
    pub api_token: Option<String>,
    /// `params`, if sent.
    pub params: Option<serde_json::Value>,
}

/// The Ringotel methods CallPop understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A call reached a user (inbound) or a user dialled (outbound).
    StartCallActivity,
    /// A call ended, answered or not.
    StopCallActivity,
    /// A recording became available for a call.
    UpdateCallRecording,
}

impl Method {
    /// The method's name as Ringotel writes it (and as deliveries are labelled).
    fn name(self) -> &'static str {
        match self {
            Method::StartCallActivity => "StartCallActivity",
            Method::StopCallActivity => "StopCallActivity",
            Method::UpdateCallRecording => "UpdateCallRecording",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        let s = s.trim();
        [
            Method::StartCallActivity,
            Method::StopCallActivity,
            Method::UpdateCallRecording,
        ]
        .into_iter()
        .find(|m| s.eq_ignore_ascii_case(m.name()))
    }
}

/// Reads the body's JSON object, `method` and `api_token`; everything else waits for auth.
pub fn read_request(body: &[u8]) -> Result<Request, ParseError> {
    let mut map = crate::wire::parse_json_object(body)?;
    let method = match map.remove("method") {
        Some(serde_json::Value::String(m)) if !m.trim().is_empty() => m,
        Some(serde_json::Value::String(_)) | None => {
            return Err(ParseError::new("missing `method`"))
        }
        Some(other) => {
            return Err(ParseError::new(format!(
                "`method` must be a string, found {}",
                kind_of(&other)
            )))
        }
    };
    let api_token = match map.remove("api_token") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) => Some(t),
        Some(other) => {
            return Err(ParseError::new(format!(
                "`api_token` must be a string, found {}",
                kind_of(&other)
            )))
        }
    };
    Ok(Request {
        method,
        api_token,
        params: map.remove("params"),
    })
}

/// Returns the body with the `api_token` value replaced, so stored deliveries hold no secret.
///
/// The body is kept as received where possible (the token's usual encoding replaced in place).
/// When the token was written in a way that does not survive that (escapes such as `\u0061`,
/// a repeated `api_token` key, or the value copied into another field), the document is
/// rewritten with every string equal to the token replaced.
pub fn redact_token(body: &[u8], token: Option<&str>) -> Vec<u8> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return body.to_vec();
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let encoded = serde_json::Value::String(token.to_string()).to_string();
    let replaced = text.replace(&encoded, &format!("\"{REDACTED}\""));
    if !mentions(&replaced, token) {
        return replaced.into_bytes();
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            scrub(&mut v, token, REDACTED);
            v.to_string().into_bytes()
        }
        // Not JSON: it never authenticated, so it cannot hold the token in a readable form.
        Err(_) => replaced.into_bytes(),
    }
}

/// What replaces the token wherever it was written.
const REDACTED: &str = "[redacted]";

/// Whether any key or string of the JSON `text` is `token`, repeated keys included (a parsed
/// map keeps only the last of them); text that is not JSON counts as a yes.
fn mentions(text: &str, token: &str) -> bool {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

    struct Seek<'t>(&'t str);

    impl<'de> DeserializeSeed<'de> for Seek<'_> {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seek<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, v: &str) -> Result<bool, E> {
            Ok(holds(v, self.0))
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(f) = seq.next_element_seed(Seek(self.0))? {
                found |= f;
            }
            Ok(found)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(k) = map.next_key_seed(Seek(self.0))? {
                found |= k | map.next_value_seed(Seek(self.0))?;
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    Seek(token).deserialize(&mut de).unwrap_or(true)
}

/// The forms the token may take inside a string: as it is, and percent-encoded (upper- and
/// lower-case hex) as in a link's query, `…/rec.mp3?api_token=…`.
fn token_forms(token: &str) -> Vec<String> {
    let encode = |upper: bool| {
        token
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect::<String>()
    };
    let mut forms = vec![token.to_string(), encode(true), encode(false)];
    forms.dedup();
    forms
}

/// Where `form` occurs in `text` as a whole word of a link: not run together with letters,
/// digits or `-._~` on either side, so `tok-1234567` does not hold the token `tok-123456`, but
/// `…?api_token=tok-123456&…` and `…/tok-123456/…` do.
fn bounded_matches<'t>(text: &'t str, form: &'t str) -> impl Iterator<Item = usize> + 't {
    let joins = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "-._~".contains(c));
    text.match_indices(form).filter_map(move |(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + form.len()..].chars().next();
        (!joins(before) && !joins(after)).then_some(at)
    })
}

/// Whether `text` holds the token in any of its forms.
fn holds(text: &str, token: &str) -> bool {
    token_forms(token)
        .iter()
        .any(|form| bounded_matches(text, form).next().is_some())
}

/// `text` with every bounded occurrence of every form of the token replaced.
fn without_token(text: &str, token: &str, with: &str) -> String {
    token_forms(token).iter().fold(text.to_string(), |t, form| {
        let at: Vec<usize> = bounded_matches(&t, form).collect();
        let mut out = String::with_capacity(t.len());
        let mut from = 0;
        for start in at {
            out.push_str(&t[from..start]);
            out.push_str(with);
            from = start + form.len();
        }
        out.push_str(&t[from..]);
        out
    })
}

fn scrub(v: &mut serde_json::Value, token: &str, with: &str) {
    match v {
        serde_json::Value::String(s) if holds(s, token) => *s = without_token(s, token, with),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, token, with)),
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| holds(k, token)).cloned().collect();
            for key in keys {
                if let Some(inner) = map.remove(&key) {
                    map.insert(without_token(&key, token, with), inner);
                }
            }
            map.values_mut().for_each(|i| scrub(i, token, with));
        }
        _ => {}
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Params {
    call_id: Option<Id>,
    extension: Option<Id>,
    user_id: Option<Id>,
    activity_type: Option<String>,
    call_start: Option<LenientInt>,
    call_end: Option<LenientInt>,
    call_duration: Option<LenientInt>,
    called_number: Option<serde_json::Value>,
    caller_number: Option<serde_json::Value>,
    caller_name: Option<String>,
    called_name: Option<String>,
    call_cause: Option<serde_json::Value>,
}

/// Parses an authenticated request into a delivery; `body_sha256` makes the dedup key.
pub fn parse_delivery(
    request: Request,
    body_sha256: &str,
    country: &Country,
    received_at: DateTime<Utc>,
) -> Result<ParsedDelivery, ParseError> {
    let hash = &body_sha256[..body_sha256.len().min(16)];
    let Some(method) = Method::parse(&request.method) else {
        return Ok(unknown_method(&request.method, hash));
    };
    // The token stays out of what is read from the params too (a recording link may carry
    // it), as it stays out of the stored body: the call row then matches a replay.
    let mut params = request.params;
    if let (Some(token), Some(params)) = (
        request.api_token.as_deref().filter(|t| !t.is_empty()),
        params.as_mut(),
    ) {
        scrub(params, token, REDACTED);
    }
    let raw_params = params_object(params)?;
    let call = CallFields::read(&raw_params, country)?;
    let step = match method {
        Method::StartCallActivity => start(&call, received_at),
        Method::StopCallActivity => stop(&call, received_at),
        Method::UpdateCallRecording => recording_update(&raw_params, received_at),
    };
    let kind = method.name();
    let event_time = step.event_time;
    let event = CallEvent {
        provider: Provider::Ringotel,
        call_key: call.call_key,
        source: step.source,
        leg: call.leg,
        sequence: None,
        event_time,
        from: call.from,
        to: call.to,
        status: step.status,
        missed_call: false,
        queue_call: false,
        recording: step.recording,
        call_start: call.call_start,
        call_end: call.call_end,
        talk_seconds: step.talk_seconds,
        outcome: None,
        voicemail_message_id: None,
    };
    Ok(ParsedDelivery {
        provider: Provider::Ringotel,
        dedup_key: format!("{}:{kind}:{hash}", event.call_key),
        content_key: None,
        kind: kind.to_string(),
        event_time: Some(event_time),
        payload: Payload::Calls(vec![event]),
    })
}

/// A method CallPop does not use (`ContactLookup`, future ones): stored, never a call event.
fn unknown_method(method: &str, hash: &str) -> ParsedDelivery {
    let label: String = method
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    let label = if label.is_empty() {
        "unknown".into()
    } else {
        label
    };
    ParsedDelivery {
        provider: Provider::Ringotel,
        dedup_key: format!("{label}:{hash}"),
        content_key: None,
        kind: label,
        event_time: None,
        payload: Payload::Other,
    }
}

/// `params`, which every known method needs as an object.
fn params_object(
    params: Option<serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, ParseError> {
    match params {
        Some(serde_json::Value::Object(map)) => Ok(map),
        None | Some(serde_json::Value::Null) => Err(ParseError::new("missing `params`")),
        Some(other) => Err(ParseError::new(format!(
            "`params` must be an object, found {}",
            kind_of(&other)
        ))),
    }
}

/// What every method says about the call: its id, times, the desk's leg and both ends.
struct CallFields {
    call_key: String,
    call_start: Option<DateTime<Utc>>,
    call_end: Option<DateTime<Utc>>,
    /// `call_duration`: the talk time, which may disagree with `call_end − call_start`.
    talk_seconds: Option<i64>,
    call_cause: Option<serde_json::Value>,
    leg: Leg,
    from: Endpoint,
    to: Endpoint,
}

impl CallFields {
    fn read(
        raw_params: &serde_json::Map<String, serde_json::Value>,
        country: &Country,
    ) -> Result<CallFields, ParseError> {
        let params: Params =
            serde_path_to_error::deserialize(serde_json::Value::Object(raw_params.clone()))
                .map_err(|e| {
                    let path = e.path().to_string();
                    ParseError::new(format!("params.{path}: {}", e.into_inner()))
                })?;
        let call_key = params
            .call_id
            .and_then(Id::into_non_empty)
            .ok_or_else(|| ParseError::new("params: missing `call_id`"))?;
        let call_start = epoch_millis("call_start", params.call_start)?;
        let call_end = epoch_millis("call_end", params.call_end)?;
        let talk_seconds = match params.call_duration.map(|d| d.0) {
            Some(d) if !(0..=7 * 24 * 3600).contains(&d) => {
                return Err(ParseError::new(format!(
                    "params.call_duration: {d} is not a call length in seconds"
                )))
            }
            other => other,
        };
        let number = |v: Option<serde_json::Value>| {
            v.as_ref()
                .and_then(|v| PhoneNumber::parse_json(v, country))
                .filter(|n| !n.raw.trim().is_empty())
        };
        let extension = params.extension.and_then(Id::into_extension);
        let direction = params
            .activity_type
            .as_deref()
            .and_then(LegDirection::parse);
        let user = params.user_id.and_then(Id::into_non_empty);
        // Every Ringotel request is one user's own activity: the leg is that desk's, even when
        // the extension is missing, so the user id stands in for it. Otherwise the call had no
        // desk leg, its `activity_type` was read as a PSTN party's mirrored direction (an
        // inbound call stored as outbound), nobody could answer it, and it never popped up.
        let leg = Leg {
            id: match (&extension, &user) {
                (Some(ext), _) => format!("ext:{ext}"),
                (None, Some(user)) => format!("user:{user}"),
                (None, None) => "user".to_string(),
            },
            has_provider_id: true,
            extension_id: if extension.is_none() { user } else { None },
            extension_number: extension,
            name: None,
            direction,
        };
        Ok(CallFields {
            call_key,
            call_start,
            call_end,
            talk_seconds,
            call_cause: params.call_cause,
            leg,
            from: Endpoint {
                number: number(params.caller_number),
                name: clean_text(params.caller_name),
                extension_id: None,
            },
            to: Endpoint {
                number: number(params.called_number),
                name: clean_text(params.called_name),
                extension_id: None,
            },
        })
    }
}

/// A time in epoch milliseconds, refused with the field's name when it is none.
fn epoch_millis(field: &str, v: Option<LenientInt>) -> Result<Option<DateTime<Utc>>, ParseError> {
    match v {
        None => Ok(None),
        Some(LenientInt(ms)) => from_epoch_millis(ms).map(Some).ok_or_else(|| {
            ParseError::new(format!(
                "params.{field}: {ms} is not a time in epoch milliseconds"
            ))
        }),
    }
}

/// What one method makes of the call.
struct Step {
    source: EventSource,
    status: Option<LegStatus>,
    event_time: DateTime<Utc>,
    recording: Option<Recording>,
    talk_seconds: Option<i64>,
}

/// `StartCallActivity`: the desk's phone rings; its time is the call's start on the PBX.
fn start(call: &CallFields, received_at: DateTime<Utc>) -> Step {
    Step {
        source: EventSource::RingotelStart,
        status: Some(LegStatus::new(LegState::Ringing, "StartCallActivity", None)),
        event_time: call.call_start.unwrap_or(received_at),
        recording: None,
        talk_seconds: None,
    }
}

/// `StopCallActivity`: the desk's leg ended, with its cause and talk time.
fn stop(call: &CallFields, received_at: DateTime<Utc>) -> Step {
    Step {
        source: EventSource::RingotelStop,
        status: Some(LegStatus::new(
            LegState::Ended,
            "StopCallActivity",
            call.call_cause.as_ref().and_then(|c| match c {
                serde_json::Value::String(s) => clean_text(Some(s.clone())),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
        )),
        event_time: call.call_end.or(call.call_start).unwrap_or(received_at),
        recording: None,
        talk_seconds: call.talk_seconds,
    }
}

/// `UpdateCallRecording`: a recording of the call; its field names are undocumented, so they
/// are found by shape.
fn recording_update(
    raw_params: &serde_json::Map<String, serde_json::Value>,
    received_at: DateTime<Utc>,
) -> Step {
    Step {
        source: EventSource::RingotelRecording,
        status: None,
        event_time: received_at,
        recording: Some(Recording {
            id: find_string(raw_params, &["recording_id", "record_id"]),
            url: find_recording_url(raw_params),
        }),
        talk_seconds: None,
    }
}

fn find_string(
    params: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Option<String> {
    keys.iter().find_map(|k| match params.get(*k) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Finds the recording link whatever Ringotel names it: a link worth keeping
/// ([`crate::links::payload_link`]) under a key that mentions a recording, a url, a link or a
/// file (searched one level deep as well).
fn find_recording_url(params: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let looks_like_link = |s: &str| crate::links::payload_link(s).is_some();
    let key_hints = ["record", "url", "link", "file", "uri"];
    let mut candidates: Vec<(&str, &str)> = Vec::new();
    for (k, v) in params {
        match v {
            serde_json::Value::String(s) => candidates.push((k, s)),
            serde_json::Value::Object(inner) => {
                for (ik, iv) in inner {
                    if let serde_json::Value::String(s) = iv {
                        candidates.push((ik, s));
                    }
                }
            }
            _ => {}
        }
    }
    candidates.sort_by_key(|(k, _)| k.to_ascii_lowercase());
    candidates
        .iter()
        .find(|(k, s)| {
            let k = k.to_ascii_lowercase();
            looks_like_link(s) && key_hints.iter().any(|h| k.contains(h))
        })
        .or_else(|| candidates.iter().find(|(_, s)| looks_like_link(s)))
        .and_then(|(_, s)| crate::links::payload_link(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedDelivery, ParseError> {
        let request = read_request(text.as_bytes())?;
        let au = Country::from_iso("AU").expect("AU");
        parse_delivery(request, "0123456789abcdef0123", &au, Utc::now())
    }

    #[test]
    fn an_inbound_start_without_an_extension_is_the_user_s_inbound_call() {
        let start = include_str!("../../../tests/scenarios/ro-inbound-answered/01-start.json");
        let text = start.replace("\"extension\": \"500\",", "");
        assert_ne!(text, start, "the fixture has an extension to drop");
        let Payload::Calls(events) = parse(&text).expect("parsed").payload else {
            panic!("calls")
        };
        let call = crate::calls::derive(&events, 1, None).expect("call");
        assert_eq!(call.direction, crate::model::CallDirection::Inbound);
        assert_eq!(call.extensions.len(), 1, "the user's desk rang: {call:?}");
    }

    #[test]
    fn an_extension_is_cleaned_and_bounded_when_parsed() {
        let start = include_str!("../../../tests/scenarios/ro-inbound-answered/01-start.json");
        let leg = |extension: &str| {
            let text = start.replace(
                "\"extension\": \"500\"",
                &format!("\"extension\": {}", serde_json::json!(extension)),
            );
            match parse(&text).expect("parsed").payload {
                Payload::Calls(events) => events[0].leg.extension_number.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(leg("5\u{202E}0\u{7}0").as_deref(), Some("500"));
        assert_eq!(
            leg(&"5".repeat(200)),
            None,
            "an overlong extension is dropped"
        );
    }

    #[test]
    fn methods_normalize_table() {
        let start = parse(include_str!(
            "../../../tests/scenarios/ro-inbound-answered/01-start.json"
        ))
        .expect("start");
        let stop = parse(include_str!(
            "../../../tests/scenarios/ro-inbound-answered/02-stop.json"
        ))
        .expect("stop");
        let rec = parse(include_str!(
            "../../../tests/scenarios/ro-recording/03-recording.json"
        ))
        .expect("recording");
        let events = |p: &ParsedDelivery| match &p.payload {
            Payload::Calls(e) => e.clone(),
            other => panic!("{other:?}"),
        };
        let s = &events(&start)[0];
        assert_eq!(s.call_key, "1763650800000-2d1c3de3d3772cdc1f");
        assert_eq!(s.leg.extension_number.as_deref(), Some("500"));
        assert_eq!(s.leg.direction, Some(LegDirection::Inbound));
        assert_eq!(s.status.as_ref().map(|s| s.state), Some(LegState::Ringing));
        assert_eq!(
            s.from.number.as_ref().and_then(|n| n.e164.as_deref()),
            Some("+353212028252")
        );
        assert_eq!(
            s.call_start.map(|t| t.timestamp_millis()),
            Some(1_763_650_800_000)
        );
        let t = &events(&stop)[0];
        assert_eq!(t.talk_seconds, Some(27), "call_duration, not end - start");
        assert_eq!(
            t.status.as_ref().and_then(|s| s.reason.as_deref()),
            Some("0")
        );
        assert!(start
            .dedup_key
            .starts_with("1763650800000-2d1c3de3d3772cdc1f:StartCallActivity:"));
        assert_ne!(start.dedup_key, stop.dedup_key);
        let r = &events(&rec)[0];
        assert!(r
            .recording
            .as_ref()
            .and_then(|r| r.url.as_deref())
            .is_some());
        assert_eq!(r.status, None);
    }

    #[test]
    fn bad_params_get_clear_errors() {
        let cases = [
            (r#"{"params":{}}"#, "missing `method`"),
            (r#"{"method":5}"#, "`method` must be a string"),
            (
                r#"{"method":"StartCallActivity","api_token":7}"#,
                "`api_token` must be a string",
            ),
            (r#"{"method":"StartCallActivity"}"#, "missing `params`"),
            (
                r#"{"method":"StartCallActivity","params":[1]}"#,
                "`params` must be an object",
            ),
            (
                r#"{"method":"StopCallActivity","params":{"extension":"500"}}"#,
                "call_id",
            ),
            (
                r#"{"method":"StopCallActivity","params":{"call_id":"1","call_duration":"long"}}"#,
                "call_duration",
            ),
            (
                r#"{"method":"StopCallActivity","params":{"call_id":"1","call_duration":-5}}"#,
                "call_duration",
            ),
            (
                r#"{"method":"StartCallActivity","params":{"call_id":"1","call_start":1729690611}}"#,
                "epoch milliseconds",
            ),
            (
                r#"{"method":"StartCallActivity","params":{"call_id":{"x":1}}}"#,
                "call_id",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body).expect_err(body);
            assert!(err.to_string().contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_methods_are_kept_as_other() {
        let p = parse(r#"{"method":"ContactLookup!!","params":{"number":"1"}}"#).expect("ok");
        assert_eq!(p.kind, "ContactLookup");
        assert_eq!(p.payload, Payload::Other);
    }

    #[test]
    fn redaction_removes_the_token_from_the_stored_body() {
        let body = br#"{"method":"StartCallActivity","api_token":"s3cr\"et","params":{}}"#;
        let out = redact_token(body, Some("s3cr\"et"));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains("s3cr"), "{text}");
        assert!(text.contains("[redacted]"));
        let body = br#"{"method":"x","api_token":"\u0061bc"}"#;
        let text = String::from_utf8(redact_token(body, Some("abc"))).expect("utf-8");
        assert!(!text.contains("0061bc"), "{text}");
    }

    #[test]
    fn redaction_holds_for_repeated_keys_and_copies() {
        let token = "tok-123456";
        for body in [
            // The reader keeps the last key: the other one hides from a parsed map or a text
            // search, whichever looks.
            r#"{"method":"x","api_token":"tok-123456","api_token":"\u0074ok-123456"}"#,
            r#"{"method":"x","api_token":"\u0074ok-123456","api_token":"tok-123456"}"#,
            r#"{"method":"x","api_token":"\u0074ok-123456","params":{"caller_name":"\u0074ok-123456"}}"#,
            r#"{"method":"x","api_token":"\u0074ok-123456","params":{"\u0074ok-123456":["tok-123456"]}}"#,
        ] {
            let out = String::from_utf8(redact_token(body.as_bytes(), Some(token))).expect("utf-8");
            serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
            assert!(
                !mentions(&out, token) && !out.contains("ok-123456"),
                "{body} → {out}"
            );
            assert!(out.contains("[redacted]"), "{out}");
        }
        // The usual body keeps its exact text apart from the token.
        let body = r#"{"method":"x",  "api_token":"tok-123456","params":{"n":"tok-1234567"}}"#;
        let out = String::from_utf8(redact_token(body.as_bytes(), Some(token))).expect("utf-8");
        assert_eq!(
            out,
            r#"{"method":"x",  "api_token":"[redacted]","params":{"n":"tok-1234567"}}"#
        );
    }

    #[test]
    fn redaction_finds_the_token_inside_a_link_plain_or_percent_encoded() {
        let token = "tok/12+34";
        let body = r#"{"method":"x","api_token":"tok/12+34","params":{
            "recording_url":"https://rec.example/a.mp3?api_token=tok%2F12%2B34&x=1",
            "other":"https://rec.example/tok%2f12%2b34/b.mp3","kept":"tok/12+345"}}"#;
        let out = String::from_utf8(redact_token(body.as_bytes(), Some(token))).expect("utf-8");
        assert!(
            !out.contains("tok%2F12") && !out.contains("tok%2f12"),
            "{out}"
        );
        assert!(out.contains("a.mp3?api_token=[redacted]&x=1"), "{out}");
        assert!(out.contains("\"kept\":\"tok/12+345\""), "{out}");
    }

    #[test]
    fn a_token_inside_a_recording_link_never_reaches_the_call() {
        let body = r#"{"method":"UpdateCallRecording","api_token":"tok-123456","params":{
            "call_id":"c-1","extension":"500",
            "recording_url":"https://rec.example/a.mp3?api_token=tok-123456"}}"#;
        let parsed = parse(body).expect("parsed");
        let Payload::Calls(events) = parsed.payload else {
            panic!("calls")
        };
        let url = events[0].recording.as_ref().and_then(|r| r.url.clone());
        assert_eq!(
            url.as_deref(),
            Some("https://rec.example/a.mp3?api_token=[redacted]")
        );
    }

    #[test]
    fn recording_links_are_found_under_any_reasonable_name() {
        let params = serde_json::json!({
            "call_id": "1",
            "domain": "example",
            "recording": {"link": "https://rec.example/1.mp3"}
        });
        let map = params.as_object().expect("object").clone();
        assert_eq!(
            find_recording_url(&map).as_deref(),
            Some("https://rec.example/1.mp3")
        );
        let params = serde_json::json!({"call_id": "1", "recording_url": "https://r/2.wav"});
        let map = params.as_object().expect("object").clone();
        assert_eq!(find_recording_url(&map).as_deref(), Some("https://r/2.wav"));
    }
}
