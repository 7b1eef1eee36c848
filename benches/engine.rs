//! In-process figures (`cargo bench`): the costs inside one delivery, without HTTP.

use callpop_core::model::{CallEvent, Payload, Provider};
use callpop_core::numbers::{Country, PhoneNumber};

fn main() {
    divan::main();
}

fn us() -> Country {
    Country::from_iso("US").expect("US")
}

const TELEPHONY: &str = include_str!("../tests/scenarios/rc-inbound-answered/07-seq7.json");
const RINGOTEL_STOP: &str = include_str!("../tests/scenarios/ro-inbound-answered/02-stop.json");

fn scenario_events() -> Vec<CallEvent> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/rc-inbound-answered");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("scenario")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "expected.json"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let body = std::fs::read(f).expect("payload");
            let parsed = callpop_core::ringcentral::webhook::parse_delivery(
                &body,
                &us(),
                chrono::Utc::now(),
            )
            .expect("parses");
            match parsed.payload {
                Payload::Calls(e) => e,
                _ => Vec::new(),
            }
        })
        .collect()
}

#[divan::bench]
fn parse_ringcentral_telephony(b: divan::Bencher) {
    let country = us();
    b.bench(|| {
        callpop_core::ringcentral::webhook::parse_delivery(
            divan::black_box(TELEPHONY.as_bytes()),
            &country,
            chrono::Utc::now(),
        )
    });
}

#[divan::bench]
fn parse_ringotel_stop(b: divan::Bencher) {
    let country = us();
    b.bench(|| {
        callpop_core::reparse::reparse(
            Provider::Ringotel,
            divan::black_box(RINGOTEL_STOP.as_bytes()),
            "0123456789abcdef",
            chrono::Utc::now(),
            &country,
        )
    });
}

#[divan::bench]
fn derive_call_from_eleven_events(b: divan::Bencher) {
    let events = scenario_events();
    b.bench(|| callpop_core::calls::derive(divan::black_box(&events), 11, None));
}

#[divan::bench(args = ["+1 (415) 555-0123", "0412 345 678", "sip:+14155550123@sip.ringcentral.com", "anonymous"])]
fn normalize_number(b: divan::Bencher, raw: &str) {
    let country = us();
    b.bench(|| PhoneNumber::parse(divan::black_box(raw), &country));
}
