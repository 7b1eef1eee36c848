//! The "Open in CRM" link, one definition for the popup button and the window: a template
//! set in Settings with placeholders filled from the call's other party.
//!
//! | placeholder | filled with |
//! |---|---|
//! | `{number}` | the other party's number as the phone system sent it, digits and a leading `+` only (`4155550123`) |
//! | `{e164}` | the same number in E.164 (`+14155550123`), empty when it could not be read |
//! | `{name}` | the caller ID name, made safe to show and at most 100 characters |
//! | `{call_id}` | the phone system's id of the call (RingCentral's telephony session id, Ringotel's call id), the one a CRM connected to the phone system knows |
//!
//! The other party is the caller of an inbound call and the called party of an outbound one.
//! Every value is percent-encoded.

use crate::links::http_target;
use crate::model::{Call, CallDirection, PartySummary};
use crate::text::sanitize;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 4] = ["number", "e164", "name", "call_id"];

/// Why a CRM link template is not usable; the text completes "the CRM link …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmTemplateError {
    /// Not an http(s) URL with a host.
    #[error("must be a full link starting with https://")]
    NotHttp,
    /// Plain http to a host outside the dealership.
    #[error("must start with https:// (http:// only for a CRM on the dealership's own network)")]
    PlainHttpOutside,
    /// A `{` that is never closed.
    #[error("has a {{ without a closing }}")]
    Unclosed,
    /// A placeholder CallPop does not fill in.
    #[error("unknown placeholder {{{0}}}; use {{number}}, {{e164}}, {{name}} or {{call_id}}")]
    UnknownPlaceholder(String),
}

/// How a valid template's links travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmTransport {
    /// Encrypted.
    Https,
    /// Plain http inside the dealership's network: allowed, with a warning where it is set.
    LanHttp,
}

/// Checks a template: an http(s) link using only [`PLACEHOLDERS`], https unless its host is on
/// the dealership's network or this machine.
pub fn check_template(template: &str) -> Result<CrmTransport, CrmTemplateError> {
    let t = template.trim();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(CrmTemplateError::Unclosed);
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(CrmTemplateError::UnknownPlaceholder(name.to_string()));
        }
        rest = &rest[open + close + 1..];
    }
    let sample = fill(t, "4155550123", "+14155550123", "Jane Doe", "1042");
    let target = http_target(&sample).ok_or(CrmTemplateError::NotHttp)?;
    match (target.https, target.fit_for_a_crm()) {
        (true, _) => Ok(CrmTransport::Https),
        (false, true) => Ok(CrmTransport::LanHttp),
        (false, false) => Err(CrmTemplateError::PlainHttpOutside),
    }
}

/// The link for `call`, or `None` when there is no template, or the filled link is not one a
/// valid template can make (a placeholder in the host that turned it into something else).
pub fn link(template: &str, call: &Call) -> Option<String> {
    let t = template.trim();
    if t.is_empty() || check_template(t).is_err() {
        return None;
    }
    let party = other_party(call);
    let number = party
        .raw
        .as_deref()
        .or(party.e164.as_deref())
        .map(dialled)
        .unwrap_or_default();
    let name = sanitize(party.name.as_deref().unwrap_or(""), 100);
    let url = fill(
        t,
        &number,
        party.e164.as_deref().unwrap_or(""),
        &name,
        &call.call_key,
    );
    http_target(&url)
        .filter(|target| target.fit_for_a_crm())
        .map(|_| url)
}

fn other_party(call: &Call) -> &PartySummary {
    match call.direction {
        CallDirection::Outbound => &call.to,
        _ => &call.from,
    }
}

/// A number as dialled: its digits, and a leading `+` if it had one.
fn dialled(number: &str) -> String {
    let trimmed = number.trim();
    let mut out: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with('+') {
        out.insert(0, '+');
    }
    out
}

fn fill(template: &str, number: &str, e164: &str, name: &str, call_id: &str) -> String {
    template
        .replace("{number}", &url_encode(number))
        .replace("{e164}", &url_encode(e164))
        .replace("{name}", &url_encode(name))
        .replace("{call_id}", &url_encode(call_id))
}

/// Percent-encodes a value for a URL (RFC 3986 unreserved characters stay as they are).
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(raw: &str, e164: &str, name: Option<&str>) -> PartySummary {
        PartySummary {
            raw: Some(raw.into()),
            e164: Some(e164.into()),
            name: name.map(Into::into),
        }
    }

    fn call(direction: CallDirection) -> Call {
        let at = chrono::DateTime::UNIX_EPOCH;
        Call {
            provider: crate::model::Provider::RingCentral,
            call_key: "session-7".into(),
            direction,
            state: crate::model::CallState::Ended,
            result: None,
            from: party("(415) 555-0123", "+14155550123", Some("Jane \u{202E}Doe")),
            to: party("+61 2 9876 5432", "+61298765432", None),
            extensions: Vec::new(),
            started_at: at,
            answered_at: None,
            ended_at: None,
            ring_seconds: 0,
            talk_seconds: 0,
            recording_url: None,
            voicemail: None,
            event_count: 0,
            last_event_at: at,
        }
    }

    #[test]
    fn placeholders_are_filled_from_the_other_party_and_encoded() {
        let t = "https://crm.example/find?n={number}&e={e164}&who={name}&call={call_id}";
        assert_eq!(
            link(t, &call(CallDirection::Inbound)).as_deref(),
            Some("https://crm.example/find?n=4155550123&e=%2B14155550123&who=Jane%20Doe&call=session-7")
        );
        assert_eq!(
            link(t, &call(CallDirection::Outbound)).as_deref(),
            Some("https://crm.example/find?n=%2B61298765432&e=%2B61298765432&who=&call=session-7")
        );
        assert_eq!(link("", &call(CallDirection::Inbound)), None);
    }

    #[test]
    fn http_is_for_the_dealership_s_own_network_only() {
        assert_eq!(
            check_template("https://crm.example/{e164}"),
            Ok(CrmTransport::Https)
        );
        assert_eq!(
            check_template("http://192.168.1.20/dms?p={number}"),
            Ok(CrmTransport::LanHttp)
        );
        assert_eq!(
            check_template("http://dms01/{number}"),
            Ok(CrmTransport::LanHttp)
        );
        assert_eq!(
            check_template("http://crm.example/{e164}"),
            Err(CrmTemplateError::PlainHttpOutside)
        );
        assert_eq!(
            check_template("crm.example/{e164}"),
            Err(CrmTemplateError::NotHttp)
        );
        assert_eq!(
            check_template("javascript:alert({name})"),
            Err(CrmTemplateError::NotHttp)
        );
        assert_eq!(
            check_template("https://crm/{phone}"),
            Err(CrmTemplateError::UnknownPlaceholder("phone".into()))
        );
        assert_eq!(
            check_template("https://crm/{name"),
            Err(CrmTemplateError::Unclosed)
        );
    }
}
