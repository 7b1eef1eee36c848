//! Property tests: for every scenario, any permutation of its deliveries with any duplicates
//! gives the identical call rows, both for the pure call logic and through the real store.

use std::path::{Path, PathBuf};

use callpop::model::{Call, CallEvent, Delivery, Origin, Payload, Provider};
use callpop::numbers::Country;
use callpop::store::{CallFilter, Store, StoreOptions};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn country_for(dir: &Path) -> Country {
    let name = dir.file_name().expect("name").to_string_lossy();
    Country::from_iso(if name.starts_with("ro-") { "AU" } else { "US" }).expect("country")
}

/// The scenario's deliveries, parsed exactly as the receiver parses them.
fn deliveries(dir: &Path) -> Vec<Delivery> {
    let provider = if dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("ro-"))
    {
        Provider::Ringotel
    } else {
        Provider::RingCentral
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "expected.json"))
        .collect();
    files.sort();
    let received = Utc
        .with_ymd_and_hms(2026, 11, 20, 16, 0, 0)
        .single()
        .expect("time");
    files
        .iter()
        .map(|f| {
            let body = std::fs::read(f).expect("payload");
            let sha = hex::encode(Sha256::digest(&body));
            let parsed =
                callpop::replay::reparse(provider, &body, &sha, received, &country_for(dir))
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            Delivery {
                parsed,
                origin: Origin::Webhook,
                received_at: received,
                headers: Vec::new(),
                body,
                body_sha256: sha,
            }
        })
        .collect()
}

fn events_of(ds: &[Delivery]) -> Vec<CallEvent> {
    ds.iter()
        .flat_map(|d| match &d.parsed.payload {
            Payload::Calls(events) => events.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn store_rows(dir: &Path, order: &[Delivery]) -> Vec<Call> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(
        &tmp.path().join("callpop.db"),
        StoreOptions {
            country: country_for(dir),
        },
    )
    .expect("store");
    for d in order {
        store.ingest(d).expect("ingest");
    }
    let mut rows: Vec<Call> = store
        .calls(&CallFilter::default())
        .expect("calls")
        .into_iter()
        .map(|r| r.call)
        .collect();
    rows.sort_by(|a, b| a.call_key.cmp(&b.call_key));
    rows
}

/// Indices 0..n, each at least once, some repeated, in an order decided by `keys`.
fn arrangement(n: usize, keys: &[u64], repeats: &[usize]) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    all.extend(repeats.iter().filter(|&&i| i < n));
    let mut keyed: Vec<(u64, usize, usize)> = all
        .into_iter()
        .enumerate()
        .map(|(pos, i)| (keys[pos % keys.len()].rotate_left(pos as u32), pos, i))
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn call_logic_ignores_arrival_order_and_duplicates(
        keys in proptest::collection::vec(any::<u64>(), 32),
        repeats in proptest::collection::vec(0usize..16, 0..10),
    ) {
        for dir in scenarios() {
            let events = events_of(&deliveries(&dir));
            let natural = callpop::calls::derive(&events, 1, None);
            let order = arrangement(events.len(), &keys, &repeats);
            let shuffled: Vec<CallEvent> = order.iter().map(|&i| events[i].clone()).collect();
            prop_assert_eq!(
                callpop::calls::derive(&shuffled, 1, None),
                natural,
                "{} in order {:?}", dir.display(), order
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_store_ends_with_the_same_rows_for_any_order(
        keys in proptest::collection::vec(any::<u64>(), 32),
        repeats in proptest::collection::vec(0usize..16, 0..10),
    ) {
        for dir in scenarios() {
            let ds = deliveries(&dir);
            let natural = store_rows(&dir, &ds);
            let order = arrangement(ds.len(), &keys, &repeats);
            let shuffled: Vec<Delivery> = order.iter().map(|&i| ds[i].clone()).collect();
            prop_assert_eq!(store_rows(&dir, &shuffled), natural, "{} in order {:?}", dir.display(), order);
        }
    }
}
