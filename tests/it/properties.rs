//! Property tests: for every scenario, any permutation of its deliveries with any duplicates
//! gives the identical call rows, both for the pure call logic and through the real store.

use std::path::{Path, PathBuf};

use callpop_core::model::{Call, CallEvent, Delivery, Payload, Provider};
use callpop_core::numbers::Country;
use callpop_store::{CallFilter, Store, StoreOptions};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

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
    callpop_testkit::scenario_at(dir, provider, &country_for(dir))
}

fn events_of(ds: &[Delivery]) -> Vec<CallEvent> {
    ds.iter()
        .flat_map(|d| match &d.parsed.payload {
            Payload::Calls(events) => events.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Each call of `events` (a scenario may have several: a pickup moves the caller to a new
/// session), derived on its own, in call-key order.
fn derive_each(events: &[CallEvent]) -> Vec<Option<Call>> {
    let mut keys: Vec<&str> = events.iter().map(|e| e.call_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.iter()
        .map(|key| {
            let mine: Vec<CallEvent> = events
                .iter()
                .filter(|e| e.call_key == *key)
                .cloned()
                .collect();
            callpop_core::calls::derive(&mine, 1, None)
        })
        .collect()
}

fn store_rows(dir: &Path, order: &[Delivery]) -> Vec<Call> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(
        &tmp.path().join("callpop.db"),
        StoreOptions::new(country_for(dir)),
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
            let natural = derive_each(&events);
            let order = arrangement(events.len(), &keys, &repeats);
            let shuffled: Vec<CallEvent> = order.iter().map(|&i| events[i].clone()).collect();
            prop_assert_eq!(
                derive_each(&shuffled),
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

/// A call-log record for the listing properties: few start times (so ties happen, and with
/// one start time more calls than fit one millisecond), few names, numbers and desks (so
/// searches match several calls).
fn listing_record(i: usize, minute: u8, who: u8, desk: u8, missed: bool) -> serde_json::Value {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("time")
        + chrono::Duration::minutes(i64::from(minute));
    let names = ["ANA SILVA", "BEN OKAFOR", "CHLOE SILVER", "DAN LEE"];
    serde_json::json!({
        "id": format!("L{i:04}"),
        "telephonySessionId": format!("s-list-{i:04}"),
        "startTime": start.to_rfc3339(),
        "duration": if missed { 0 } else { 60 },
        "type": "Voice", "direction": "Inbound", "action": "Phone Call",
        "result": if missed { "Missed" } else { "Accepted" },
        "from": {"phoneNumber": format!("+1650555{:04}", 100 + u32::from(who % 6)),
                 "name": names[usize::from(who % 4)]},
        "to": {"phoneNumber": "+16505550100", "extensionNumber": format!("{}", 101 + u32::from(desk % 3)),
               "extensionId": format!("{}", 900 + u32::from(desk % 3))},
        "extension": {"id": 900 + u32::from(desk % 3)},
    })
}

/// Which of all calls a filter should list.
type Wanted = Box<dyn Fn(&callpop_store::CallRecord) -> bool>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whichever index a listing walks (trigram search, one extension's list, time order),
    /// it returns exactly the calls that match, newest first, and paging through it with the
    /// cursor returns the same calls as one unlimited read.
    #[test]
    fn every_listing_walks_to_the_same_calls(
        calls in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<bool>()), 1..40),
        earlier in proptest::collection::vec(0usize..40, 0..6),
        page in 1usize..7,
        minutes in 1u8..9,
    ) {
        let us = Country::from_iso("US").expect("US");
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&tmp.path().join("callpop.db"), StoreOptions::new(us)).expect("store");
        let received = Utc::now();
        for (i, (slot, who, desk, missed)) in calls.iter().enumerate() {
            let d = callpop_core::ringcentral::calllog::record_to_delivery(
                &listing_record(i, *slot % minutes, *who, *desk, *missed), &us, received).expect("record");
            store.ingest(&d).expect("ingest");
        }
        // A late record of the same call that started earlier moves the call down the list.
        for (n, &i) in earlier.iter().filter(|&&i| i < calls.len()).enumerate() {
            let (_, who, desk, missed) = calls[i];
            let mut rec = listing_record(i, 0, who, desk, missed);
            rec["id"] = serde_json::json!(format!("E{n:04}"));
            rec["startTime"] = serde_json::json!("2026-11-02T08:00:00Z");
            let d = callpop_core::ringcentral::calllog::record_to_delivery(&rec, &us, received).expect("record");
            store.ingest(&d).expect("ingest");
        }
        let all = store.calls(&CallFilter::default()).expect("all");
        prop_assert_eq!(all.len(), calls.len());
        for w in all.windows(2) {
            prop_assert!(w[0].call.started_at >= w[1].call.started_at, "newest first");
            prop_assert!(w[0].sort_key > w[1].sort_key, "sort keys descend");
        }
        let has_ext = |r: &callpop_store::CallRecord, e: &str| {
            r.call.extensions.iter().any(|p| p.matches_extension(&[e.to_string()]))
        };
        let since = Utc.with_ymd_and_hms(2026, 11, 2, 9, 2, 0).single().expect("time");
        let until = Utc.with_ymd_and_hms(2026, 11, 2, 9, 6, 0).single().expect("time");
        let filters: Vec<(CallFilter, Wanted)> = vec![
            (CallFilter { extension: Some("102".into()), ..Default::default() },
             Box::new(move |r| has_ext(r, "102"))),
            (CallFilter { any_extension: vec!["901".into()], ..Default::default() },
             Box::new(move |r| has_ext(r, "901"))),
            (CallFilter { any_extension: vec!["101".into(), "903".into(), "902".into()], ..Default::default() },
             Box::new(move |r| has_ext(r, "101") || has_ext(r, "902"))),
            (CallFilter { search: Some("silva".into()), ..Default::default() },
             Box::new(|r| r.call.from.name.as_deref() == Some("ANA SILVA"))),
            (CallFilter { search: Some("silva".into()), extension: Some("103".into()), ..Default::default() },
             Box::new(move |r| r.call.from.name.as_deref() == Some("ANA SILVA") && has_ext(r, "103"))),
            (CallFilter { search: Some("(650) 555-0102".into()), since: Some(since), until: Some(until), ..Default::default() },
             Box::new(move |r| r.call.from.e164.as_deref() == Some("+16505550102")
                 && r.call.started_at >= since && r.call.started_at < until)),
            (CallFilter { search: Some("le".into()), result: Some(callpop_core::model::CallResult::Missed), ..Default::default() },
             Box::new(|r| r.call.from.name.as_deref() == Some("DAN LEE")
                 && r.call.result == Some(callpop_core::model::CallResult::Missed))),
            (CallFilter { extension: Some("101".into()), since: Some(since), ..Default::default() },
             Box::new(move |r| has_ext(r, "101") && r.call.started_at >= since)),
        ];
        for (filter, wanted) in &filters {
            let expected: Vec<i64> = all.iter().filter(|r| wanted(r)).map(|r| r.id).collect();
            let unlimited: Vec<i64> = store.calls(filter).expect("list").iter().map(|r| r.id).collect();
            prop_assert_eq!(&unlimited, &expected, "{:?}", filter);
            prop_assert_eq!(store.count_calls(filter, None).expect("count"), expected.len() as u64);
            prop_assert_eq!(store.count_calls(filter, Some(2)).expect("count"), expected.len().min(2) as u64);
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let rows = store.calls(&CallFilter { limit: page, after, ..filter.clone() }).expect("page");
                paged.extend(rows.iter().map(|r| r.id));
                match rows.last() {
                    Some(last) if rows.len() == page => after = Some(last.sort_key),
                    _ => break,
                }
            }
            prop_assert_eq!(&paged, &expected, "paged by {} {:?}", page, filter);
        }
    }
}
