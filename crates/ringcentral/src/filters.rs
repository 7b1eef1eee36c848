//! The event filters CallPop subscribes to: what RingCentral sends it.

/// Default event filters: every telephony session of the account, and the voicemail box of
/// the authorised user.
pub fn default_event_filters() -> Vec<String> {
    vec![
        "/restapi/v1.0/account/~/telephony/sessions".to_string(),
        "/restapi/v1.0/account/~/extension/~/voicemail".to_string(),
    ]
}

/// The renewal-reminder filter for a lifetime: threshold ≤ half the lifetime, interval ≤ half
/// the threshold (docs/PROTOCOL.md §2, SUB-516 otherwise).
pub fn reminder_filter(lifetime: i64) -> String {
    let threshold = (lifetime / 2).clamp(60, 86_400);
    let interval = (threshold / 2).clamp(30, 3_600);
    format!("/restapi/v1.0/subscription/~?threshold={threshold}&interval={interval}")
}
