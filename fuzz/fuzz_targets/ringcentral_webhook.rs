//! Any body, authenticated or not, must parse to a delivery or a clear error — never a panic —
//! and whatever parses must derive a call without panicking.
#![no_main]

use callpop_core::model::Payload;
use callpop_core::numbers::Country;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Some(country) = Country::from_iso("US") else {
        return;
    };
    let received = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    if let Ok(parsed) = callpop_core::ringcentral::webhook::parse_delivery(body, &country, received) {
        assert!(!parsed.dedup_key.is_empty(), "a delivery without identity");
        if let Payload::Calls(events) = &parsed.payload {
            let _ = callpop_core::calls::derive(events, 1, None);
        }
    }
});
