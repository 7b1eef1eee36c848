//! What CallPop's tests build deliveries from, in one place: fixed times, call-log records
//! (the backfill's deliveries) and the recorded RingCentral scenarios in `tests/scenarios`
//! parsed as the receiver parses them. Used only as a dev-dependency.
#![warn(missing_docs)]

pub mod payloads;

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};

use callpop_core::model::{Delivery, Origin, Provider};
use callpop_core::numbers::Country;

/// The United States, every fixture's country.
pub fn us() -> Country {
    Country::from_iso("US").expect("US is a supported country")
}

/// 2026-11-02 09:00 UTC plus `minute` minutes: call `i` of [`call_log_record`] starts here.
pub fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("a valid time")
        + chrono::Duration::minutes(minute)
}

/// A call-log record for call `i`: inbound to the Sales line +1 650 555 0100 from
/// +1 415 555 `i`, starting `i` minutes after 09:00 (higher numbers are newer); every third
/// call was missed, the others talked 60 s; even calls rang extension 101, odd ones 102.
pub fn call_log_record(i: usize) -> serde_json::Value {
    let missed = i.is_multiple_of(3);
    serde_json::json!({
        "id": format!("L{i:05}"),
        "telephonySessionId": format!("s-{i:05}"),
        "startTime": at(i as i64).to_rfc3339(),
        "duration": if missed { 0 } else { 60 },
        "type": "Voice", "direction": "Inbound", "action": "Phone Call",
        "result": if missed { "Missed" } else { "Accepted" },
        "from": {"phoneNumber": format!("+1415555{:04}", i % 10_000), "name": "JANE ROE"},
        "to": {"phoneNumber": "+16505550100", "name": "Alice Sales",
               "extensionNumber": if i.is_multiple_of(2) { "101" } else { "102" },
               "extensionId": if i.is_multiple_of(2) { "901" } else { "902" }},
    })
}

/// `record` as the backfill delivers it, received at [`at`]`(0)`.
pub fn call_log_delivery(record: &serde_json::Value) -> Delivery {
    callpop_core::ringcentral::calllog::record_to_delivery(record, &us(), at(0))
        .expect("a valid call-log record")
}

/// The folder of recorded scenarios (`tests/scenarios` at the workspace root).
pub fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scenarios")
        .canonicalize()
        .expect("tests/scenarios exists")
}

/// The deliveries of a RingCentral scenario in `tests/scenarios`, parsed as the receiver
/// parses them, all received at 2026-11-20 16:00 UTC, in file-name order.
pub fn scenario(name: &str) -> Vec<Delivery> {
    scenario_at(&scenarios_dir().join(name), Provider::RingCentral, &us())
}

/// The deliveries in the scenario folder `dir` (every file but `expected.json`, in name
/// order), parsed as `provider`'s route parses them for a desk in `country`, all received at
/// 2026-11-20 16:00 UTC.
pub fn scenario_at(dir: &Path, provider: Provider, country: &Country) -> Vec<Delivery> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("scenario {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "expected.json"))
        .collect();
    files.sort();
    let received = Utc
        .with_ymd_and_hms(2026, 11, 20, 16, 0, 0)
        .single()
        .expect("a valid time");
    let headers = match provider {
        Provider::RingCentral => vec![("user-agent".into(), "RingCentral-Webhook/1.0".into())],
        Provider::Ringotel => Vec::new(),
    };
    files
        .iter()
        .map(|f| {
            let body = std::fs::read(f).expect("a readable payload");
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
            let parsed = callpop_core::reparse::reparse(provider, &body, &sha, received, country)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            Delivery {
                parsed,
                origin: Origin::Webhook,
                received_at: received,
                headers: headers.clone(),
                body,
                body_sha256: sha,
            }
        })
        .collect()
}
