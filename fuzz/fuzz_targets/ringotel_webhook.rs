//! Any Ringotel body must read and parse to a delivery or a clear error, never a panic.
#![no_main]

use callpop_core::model::Payload;
use callpop_core::numbers::Country;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Some(country) = Country::from_iso("AU") else {
        return;
    };
    let received = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    let Ok(request) = callpop_core::ringotel::read_request(body) else {
        return;
    };
    let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    if let Ok(parsed) = callpop_core::ringotel::parse_delivery(request, hash, &country, received) {
        assert!(!parsed.dedup_key.is_empty(), "a delivery without identity");
        if let Payload::Calls(events) = &parsed.payload {
            let _ = callpop_core::calls::derive(events, 1, None);
        }
    }
});
