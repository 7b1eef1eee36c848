//! Deliveries as the providers send them, built in one place for the tests, the benchmarks
//! and the fake RingCentral platform: the RingCentral notification envelope, the party of the
//! desk the tests watch, and Ringotel's request shape.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The account-wide telephony-session event path a webhook subscription delivers.
pub const TELEPHONY_EVENT: &str = "/restapi/v1.0/account/809646016/telephony/sessions";

/// The desk the fixtures ring: extension 101, Alice Sales.
pub const DESK_EXTENSION_ID: &str = "62264425016";

/// A RingCentral notification: the envelope every webhook (and WebSocket) delivery has
/// around its `body` (docs/PROTOCOL.md §1.5).
pub fn rc_notification(
    uuid: &str,
    event: &str,
    timestamp: DateTime<Utc>,
    subscription_id: &str,
    owner_id: &str,
    body: Value,
) -> Value {
    json!({
        "uuid": uuid,
        "event": event,
        "timestamp": timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        "subscriptionId": subscription_id,
        "ownerId": owner_id,
        "body": body,
    })
}

/// The telephony-session body of one event: `caller_name` at +1 415 555 0123 calling the
/// desk (Alice Sales, 101), whose party is in status `code`; `seq` is the sequence.
pub fn rc_desk_call_body(
    session: &str,
    seq: i64,
    code: &str,
    caller_name: &str,
    event_time: DateTime<Utc>,
) -> Value {
    json!({
        "sequence": seq,
        "telephonySessionId": session,
        "eventTime": event_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "parties": [{
            "id": format!("{session}-2"),
            "extensionId": DESK_EXTENSION_ID,
            "direction": "Inbound",
            "from": {"phoneNumber": "+14155550123", "name": caller_name},
            "to": {"phoneNumber": "101", "name": "Alice Sales", "extensionId": DESK_EXTENSION_ID},
            "status": {"code": code}
        }]
    })
}

/// A Ringotel webhook request (docs/PROTOCOL.md §5).
pub fn ringotel_request(method: &str, api_token: &str, params: Value) -> Value {
    json!({"method": method, "api_token": api_token, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_desk_call_parses_as_the_desks_ringing_leg() {
        let at = crate::at(0);
        let body = rc_notification(
            "u-1",
            TELEPHONY_EVENT,
            at,
            "sub-1",
            DESK_EXTENSION_ID,
            rc_desk_call_body("s-1", 1, "Proceeding", "JANE ROE", at),
        );
        let parsed = callpop_core::ringcentral::webhook::parse_delivery(
            body.to_string().as_bytes(),
            &crate::us(),
            at,
        )
        .expect("parses");
        let callpop_core::model::Payload::Calls(events) = parsed.payload else {
            panic!("a call event");
        };
        assert_eq!(events[0].call_key, "s-1");
        assert_eq!(events[0].leg.extension_number.as_deref(), Some("101"));
        assert_eq!(events[0].from.name.as_deref(), Some("JANE ROE"));
    }
}
