//! Call-flow scenarios end to end: each scenario's payloads are posted over HTTP to a real
//! `callpop serve` in the natural order, reversed, and shuffled with duplicates; the final rows
//! printed by `callpop calls --json` must equal the scenario's `expected.json` every time.
//!
//! Set `CALLPOP_BLESS=1` to (re)write `expected.json` from the natural order — then review it.

use std::path::{Path, PathBuf};

use crate::common::{calls_json, Rng, Server};

fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scenarios")
        .join(name)
}

/// The scenario's payloads in natural order (file names sort in arrival order).
fn payloads(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("scenario dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != "expected.json")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("payload"))
        })
        .collect()
}

/// Drops the fields that legitimately differ between runs.
fn comparable(mut rows: Vec<serde_json::Value>) -> serde_json::Value {
    assert!(!rows.is_empty(), "the scenario produced no call");
    for row in &mut rows {
        let obj = row.as_object_mut().expect("row object");
        obj.remove("id");
        obj.remove("updated_at");
    }
    rows.sort_by_key(|r| r["call_key"].as_str().unwrap_or_default().to_string());
    serde_json::Value::Array(rows)
}

fn run_order(name: &str, provider_rc: bool, order: &[(String, Vec<u8>)]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    // Ringotel scenarios are an Australian dealership: national numbers read as +61.
    let country = if provider_rc { "US" } else { "AU" };
    let server = Server::start_with(
        dir.path(),
        &[
            (
                "CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN",
                crate::common::RC_TOKEN,
            ),
            ("CALLPOP_RINGOTEL_API_TOKEN", crate::common::RO_TOKEN),
            ("CALLPOP_DEFAULT_COUNTRY", country),
        ],
    );
    for (file, body) in order {
        let response = if provider_rc {
            server.post_rc(body)
        } else {
            server.post_ro(body)
        };
        assert_eq!(
            response.status,
            200,
            "{name}/{file}: {} {}",
            response.status,
            response.text()
        );
    }
    server.stop();
    comparable(calls_json(dir.path()))
}

fn check(name: &str) {
    let dir = scenario_dir(name);
    let provider_rc = name.starts_with("rc-");
    let natural = payloads(&dir);
    assert!(!natural.is_empty(), "{name} has payloads");
    let expected_path = dir.join("expected.json");
    let got = run_order(name, provider_rc, &natural);
    if std::env::var_os("CALLPOP_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&expected_path, text).expect("write expected");
    }
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{name}: missing expected.json (run with CALLPOP_BLESS=1)")),
    )
    .expect("expected.json is JSON");
    assert_eq!(got, expected, "{name}: natural order");

    let mut reversed = natural.clone();
    reversed.reverse();
    assert_eq!(
        run_order(name, provider_rc, &reversed),
        expected,
        "{name}: reversed order"
    );

    for seed in [1u64, 2, 3] {
        let mut rng = Rng(seed ^ name.len() as u64);
        let mut order = natural.clone();
        // Re-deliver a few payloads: duplicates must change nothing.
        for _ in 0..=natural.len() / 3 {
            let pick = rng.below(natural.len());
            order.push(natural[pick].clone());
        }
        rng.shuffle(&mut order);
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            run_order(name, provider_rc, &order),
            expected,
            "{name}: shuffled with duplicates (seed {seed}): {names:?}"
        );
    }
}

macro_rules! scenarios {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check($name);
            }
        )*
    };
}

scenarios! {
    rc_inbound_answered => "rc-inbound-answered",
    rc_inbound_voicemail => "rc-inbound-voicemail",
    rc_outbound => "rc-outbound",
    rc_blind_transfer => "rc-blind-transfer",
    rc_pickup_elsewhere => "rc-pickup-elsewhere",
    rc_ring_group => "rc-ring-group",
    rc_presence_only => "rc-presence-only",
    rc_presence_and_telephony => "rc-presence-and-telephony",
    rc_seed_minimal => "rc-seed-minimal",
    ro_inbound_answered => "ro-inbound-answered",
    ro_outbound => "ro-outbound",
    ro_missed => "ro-missed",
    ro_recording => "ro-recording",
    ro_stop_only => "ro-stop-only",
}
