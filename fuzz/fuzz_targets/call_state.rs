//! The call state machine: events of a real call in any order, duplicated or cut short, derive
//! the same call whatever their order, and never panic.
#![no_main]

use callpop_core::model::{CallEvent, Payload};
use callpop_core::numbers::Country;
use libfuzzer_sys::fuzz_target;

/// Every event of the RingCentral and Ringotel scenarios, parsed once.
fn scenario_events() -> Vec<CallEvent> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let received = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    let mut events = Vec::new();
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return events;
    };
    let mut files: Vec<_> = dirs
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let Ok(body) = std::fs::read(&file) else {
            continue;
        };
        let name = file.to_string_lossy();
        let parsed = if name.contains("/ro-") {
            let country = Country::from_iso("AU");
            callpop_core::ringotel::read_request(&body)
                .ok()
                .zip(country)
                .and_then(|(r, c)| {
                    callpop_core::ringotel::parse_delivery(r, &"0".repeat(64), &c, received).ok()
                })
        } else {
            Country::from_iso("US").and_then(|c| {
                callpop_core::ringcentral::webhook::parse_delivery(&body, &c, received).ok()
            })
        };
        if let Some(Payload::Calls(list)) = parsed.map(|p| p.payload) {
            events.extend(list);
        }
    }
    events
}

fuzz_target!(|picks: &[u8]| {
    thread_local! {
        static EVENTS: Vec<CallEvent> = scenario_events();
    }
    EVENTS.with(|all| {
        if all.is_empty() {
            return;
        }
        // Each byte picks an event (repeats allowed): any subset, any order, duplicates.
        let chosen: Vec<CallEvent> = picks
            .iter()
            .map(|b| all[*b as usize % all.len()].clone())
            .collect();
        let call = callpop_core::calls::derive(&chosen, 1, None);
        let mut reversed = chosen.clone();
        reversed.reverse();
        let again = callpop_core::calls::derive(&reversed, 1, None);
        // Events of different calls mixed together are not one call; only compare real calls.
        let one_call = chosen
            .windows(2)
            .all(|w| w[0].provider == w[1].provider && w[0].call_key == w[1].call_key);
        if one_call {
            assert_eq!(call, again, "order changed the derived call");
        }
    });
});
