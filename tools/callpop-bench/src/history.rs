//! A million-call history, generated realistically (three years of a busy dealership: repeat
//! callers, thirty desks, answered/missed/voicemail mix), and the queries people run on it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use callpop_core::model::CallResult;
use callpop_core::numbers::Country;
use callpop_store::writer::StoreWriter;
use callpop_store::{CallFilter, Store, StoreOptions};
use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::load::percentile;

const FIRST: &[&str] = &[
    "JAMES",
    "MARY",
    "ROBERT",
    "PATRICIA",
    "JOHN",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "DAVID",
    "ELIZABETH",
    "WILLIAM",
    "BARBARA",
    "RICHARD",
    "SUSAN",
    "JOSEPH",
    "JESSICA",
    "THOMAS",
    "SARAH",
    "CHARLES",
    "KAREN",
    "WEI",
    "FATIMA",
    "OLIVIA",
    "LIAM",
    "NOAH",
    "EMMA",
    "AVA",
    "ISABELLA",
    "LUCAS",
    "MIA",
    "ZOE",
    "RAJ",
];
const LAST: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "NGUYEN",
    "PATEL",
    "KIM",
    "CHEN",
    "OKAFOR",
    "MURPHY",
    "OBRIEN",
    "KOWALSKI",
    "SCHMIDT",
    "ROSSI",
];

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A customer: number and name (a third have no caller ID name).
fn customer(id: u64) -> (String, Option<String>) {
    let mut r = Rng(id.wrapping_mul(7919));
    let number = if id.is_multiple_of(5) {
        format!("+614{:08}", r.below(100_000_000))
    } else {
        let area = [212, 310, 415, 512, 602, 617, 650, 702, 713, 818, 917][r.below(11) as usize];
        format!("+1{area}{:07}", r.below(10_000_000))
    };
    let name = (!id.is_multiple_of(3)).then(|| {
        format!(
            "{} {}",
            FIRST[r.below(FIRST.len() as u64) as usize],
            LAST[r.below(LAST.len() as u64) as usize]
        )
    });
    (number, name)
}

/// Call-log record `n` of the history.
fn record(n: u64, total: u64) -> serde_json::Value {
    let mut r = Rng(n);
    let start0 = Utc
        .with_ymd_and_hms(2023, 11, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let span = 3 * 365 * 86_400;
    let start = start0 + chrono::Duration::seconds((n * span / total) as i64 + r.below(60) as i64);
    // 60 000 customers, some calling often.
    let who = if r.below(10) < 3 {
        r.below(2_000)
    } else {
        r.below(60_000)
    };
    let (number, name) = customer(who);
    let desk = 101 + r.below(30);
    let inbound = r.below(10) < 8;
    let roll = r.below(100);
    let (result, duration, message) = if roll < 70 {
        ("Accepted", 30 + r.below(900), None)
    } else if roll < 88 {
        ("Missed", 10 + r.below(30), None)
    } else {
        (
            "Voicemail",
            20 + r.below(60),
            Some(format!("{}", 90_000_000_000u64 + n)),
        )
    };
    let desk_party = json!({"phoneNumber": "+16505550100", "extensionNumber": desk.to_string(),
        "extensionId": format!("{}", 62_264_400_000u64 + desk), "name": format!("Desk {desk}")});
    let mut customer_party = json!({"phoneNumber": number});
    if let Some(name) = name {
        customer_party["name"] = json!(name);
    }
    let (from, to) = if inbound {
        (customer_party, desk_party)
    } else {
        (desk_party, customer_party)
    };
    let mut rec = json!({
        "id": format!("H{n:09}"), "telephonySessionId": format!("s-hist-{n:09}"),
        "sessionId": format!("{}", 700_000_000 + n), "startTime": start.to_rfc3339(),
        "duration": duration, "type": "Voice", "direction": if inbound { "Inbound" } else { "Outbound" },
        "action": "Phone Call", "result": if inbound { result } else if roll < 80 { "Call connected" } else { "No Answer" },
        "from": from, "to": to, "extension": {"id": 62_264_400_000u64 + desk},
    });
    if let Some(id) = message.filter(|_| inbound) {
        rec["message"] = json!({"id": id, "type": "VoiceMail"});
    }
    rec
}

/// Fills a history of `total` calls at `db`; returns how long it took.
pub async fn generate(db: &Path, total: u64) -> Result<Duration> {
    let country = us()?;
    let store = Store::open(db, StoreOptions::new(country))?;
    let (changes, _) = tokio::sync::broadcast::channel(1);
    let (writer, thread) = StoreWriter::spawn(store, changes)?;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (writer, next) = (writer.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let rec = record(n, total);
                if let Ok(d) = callpop_core::ringcentral::calllog::record_to_delivery(
                    &rec,
                    &country,
                    Utc::now(),
                ) {
                    let _ = writer.ingest(d).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(writer);
    let _ = thread.join();
    Ok(started.elapsed())
}

fn us() -> Result<Country> {
    Country::from_iso("US").context("the US numbering plan")
}

/// Bytes per table (and its indexes), largest first.
pub fn table_sizes(db: &Path) -> Result<Vec<(String, u64)>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt = conn.prepare(
        "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize)
         FROM dbstat s LEFT JOIN sqlite_master m ON m.name = s.name
         GROUP BY 1 ORDER BY 2 DESC",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// p50/p95 of a query over many variants, in milliseconds.
pub struct QueryTiming {
    /// What was searched.
    pub label: &'static str,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Rows found, on average.
    pub rows: f64,
}

/// Times the searches people run, against a generated history.
pub fn time_queries(db: &Path, runs: u64) -> Result<Vec<QueryTiming>> {
    let store = Store::open_existing(db, StoreOptions::new(us()?))?;
    let mut out = Vec::new();
    let mut r = Rng(42);
    let mut run = |label: &'static str,
                   make: &mut dyn FnMut(&mut Rng) -> CallFilter|
     -> Result<QueryTiming> {
        let mut times = Vec::new();
        let mut rows = 0usize;
        // Warm the cache the way a running app would be.
        let _ = store.calls(&make(&mut r))?;
        for _ in 0..runs {
            let filter = make(&mut r);
            let t = Instant::now();
            rows += store.calls(&filter)?.len();
            times.push(t.elapsed().as_micros() as u64);
        }
        times.sort_unstable();
        Ok(QueryTiming {
            label,
            p50_ms: percentile(&times, 50.0) as f64 / 1000.0,
            p95_ms: percentile(&times, 95.0) as f64 / 1000.0,
            rows: rows as f64 / runs as f64,
        })
    };
    out.push(run("first page, no filter (50 rows)", &mut |_| {
        CallFilter {
            limit: 50,
            ..Default::default()
        }
    })?);
    out.push(run("number fragment, any format", &mut |r| {
        let (number, _) = customer(r.below(60_000));
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let len = 4 + r.below(4) as usize;
        let start = r.below((digits.len() - len) as u64) as usize;
        let frag = &digits[start..start + len];
        let search = if r.below(2) == 0 {
            frag.to_string()
        } else {
            // Typed with punctuation, e.g. "555-01" or "(415) 5".
            format!("{}-{}", &frag[..2], &frag[2..])
        };
        CallFilter {
            search: Some(search),
            limit: 50,
            ..Default::default()
        }
    })?);
    out.push(run("name", &mut |r| CallFilter {
        search: Some(LAST[r.below(LAST.len() as u64) as usize].to_lowercase()),
        limit: 50,
        ..Default::default()
    })?);
    out.push(run("extension", &mut |r| CallFilter {
        extension: Some((101 + r.below(30)).to_string()),
        limit: 50,
        ..Default::default()
    })?);
    out.push(run("date range (one week) + missed", &mut |r| {
        let since = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::days(r.below(900) as i64);
        CallFilter {
            since: Some(since),
            until: Some(since + chrono::Duration::days(7)),
            result: Some(CallResult::Missed),
            limit: 50,
            ..Default::default()
        }
    })?);
    out.push(run("name + extension + date range", &mut |r| {
        let since = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::days(r.below(800) as i64);
        CallFilter {
            search: Some(LAST[r.below(LAST.len() as u64) as usize].to_lowercase()),
            extension: Some((101 + r.below(30)).to_string()),
            since: Some(since),
            until: Some(since + chrono::Duration::days(90)),
            limit: 50,
            ..Default::default()
        }
    })?);
    Ok(out)
}
