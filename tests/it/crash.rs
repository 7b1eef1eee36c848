//! Persist, then acknowledge, under `kill -9`: a realistic load of 10,000 RingCentral and
//! Ringotel deliveries from several connections, with the server killed at random points and
//! restarted on the same data directory each time. Deliveries that failed because of a kill
//! are sent again after the restart, as a provider would. After every restart the file must be
//! sound and hold every acknowledged delivery exactly once, with no call row that lacks its
//! events; at the end every delivery must be stored exactly once and every call derived.
//!
//! The randomness (kill points, call mix) comes from one seed, printed so a failure can be
//! replayed with `CALLPOP_CRASH_SEED=<seed>`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Rng, Server, RC_PATH, RC_TOKEN, RO_PATH, RO_TOKEN};
use chrono::{TimeZone, Utc};
use fake_ringcentral::{CallOutcome, ScriptedCall};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Deliveries in the whole run.
const TOTAL: usize = 10_000;
/// Concurrent connections posting.
const WORKERS: usize = 4;
/// Kills during the run (each at a random number of acknowledgements).
const KILLS: usize = 6;

/// One delivery as a provider would send it.
struct Delivery {
    ringotel: bool,
    body: Vec<u8>,
    /// SHA-256 of the body as sent (stored as `body_sha256`).
    sha: String,
    /// RingCentral's `uuid`, which is the dedup key.
    uuid: Option<String>,
    /// Which call it belongs to (provider, index of the scripted call).
    call: usize,
}

/// At least `TOTAL` deliveries: calls seven in ten RingCentral telephony sessions (answered,
/// missed, voicemail), the rest Ringotel start/stop/recording sequences; the events of eight
/// calls at a time interleaved, as concurrent calls arrive.
fn workload(rng: &mut Rng) -> (Vec<Delivery>, usize) {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("a valid start");
    let mut out = Vec::with_capacity(TOTAL + 16);
    let mut calls = 0usize;
    while out.len() < TOTAL {
        let mut block: Vec<Vec<Delivery>> = Vec::new();
        for _ in 0..8 {
            let n = calls as u64;
            let call = calls;
            calls += 1;
            let start = base + chrono::Duration::seconds(n as i64 * 37);
            let from = format!("+1{}{:07}", 201 + rng.below(700), rng.below(10_000_000));
            if rng.below(10) < 7 {
                let outcome = match rng.below(4) {
                    0 => CallOutcome::Missed { ring: 25 },
                    1 => CallOutcome::Voicemail {
                        ring: 20,
                        message: 15,
                    },
                    _ => CallOutcome::Answered { ring: 8, talk: 120 },
                };
                let mut scripted = ScriptedCall::to_owner(start, &from, outcome);
                scripted.from_name = Some(format!("CUSTOMER {}", rng.below(5000)));
                let events = scripted
                    .telephony_events(n)
                    .into_iter()
                    .enumerate()
                    .map(|(i, (at, body))| {
                        let uuid = format!("crash-{n}-{i}");
                        let body = json!({
                            "uuid": uuid,
                            "event": "/restapi/v1.0/account/809646016/telephony/sessions",
                            "timestamp": at.to_rfc3339(),
                            "subscriptionId": "crash-subscription",
                            "ownerId": "62264425016",
                            "body": body,
                        })
                        .to_string()
                        .into_bytes();
                        delivery(false, body, Some(uuid), call)
                    })
                    .collect();
                block.push(events);
            } else {
                let call_id = format!("{}-crash{n}", start.timestamp_millis());
                let params = |extra: serde_json::Value| {
                    let mut p = json!({"call_id": call_id, "extension": format!("{}", 500 + n % 20),
                        "user_id": "00000178654321098765", "connection_id": "7732",
                        "connection_name": "PBX", "activity_type": "inbound",
                        "domain": "dealership", "caller_number": from.trim_start_matches('+'),
                        "called_number": "500", "call_start": start.timestamp_millis()});
                    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                        p.extend(e.clone());
                    }
                    p
                };
                let talk = if rng.below(3) == 0 { 0 } else { 95 };
                let mut events = vec![
                    json!({"method": "StartCallActivity", "api_token": RO_TOKEN, "params": params(json!({}))}),
                    json!({"method": "StopCallActivity", "api_token": RO_TOKEN, "params": params(json!({
                        "call_end": start.timestamp_millis() + 120_000, "call_duration": talk,
                        "call_cause": "0"}))}),
                ];
                if talk > 0 && rng.below(2) == 0 {
                    events.push(json!({"method": "UpdateCallRecording", "api_token": RO_TOKEN,
                        "params": {"call_id": call_id,
                                   "recording_url": format!("https://recordings.example/{call_id}.mp3")}}));
                }
                block.push(
                    events
                        .into_iter()
                        .map(|v| delivery(true, v.to_string().into_bytes(), None, call))
                        .collect(),
                );
            }
        }
        let longest = block.iter().map(Vec::len).max().unwrap_or(0);
        let mut iters: Vec<_> = block.into_iter().map(Vec::into_iter).collect();
        for _ in 0..longest {
            for it in iters.iter_mut() {
                out.extend(it.next());
            }
        }
    }
    (out, calls)
}

fn delivery(ringotel: bool, body: Vec<u8>, uuid: Option<String>, call: usize) -> Delivery {
    let sha = hex::encode(Sha256::digest(&body));
    Delivery {
        ringotel,
        body,
        sha,
        uuid,
        call,
    }
}

fn request(d: &Delivery) -> Vec<u8> {
    let head = if d.ringotel {
        format!(
            "POST {RO_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            d.body.len()
        )
    } else {
        format!(
            "POST {RC_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; charset=UTF-8\r\n\
             Verification-Token: {RC_TOKEN}\r\nUser-Agent: RingCentral-Webhook/8.3\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            d.body.len()
        )
    };
    let mut r = head.into_bytes();
    r.extend_from_slice(&d.body);
    r
}

/// What the posting threads share.
struct Load {
    deliveries: Vec<Delivery>,
    /// Indices still to send (failed ones go back to the front).
    queue: Mutex<VecDeque<usize>>,
    /// Acknowledged with 200, in no particular order.
    acked: Mutex<Vec<usize>>,
    acked_count: AtomicUsize,
    /// Requests cut off by a kill (sent again after the restart).
    cut_off: AtomicUsize,
    /// Set when the server is gone: stop taking work.
    down: AtomicBool,
    /// An answer other than 200 (the test fails with it).
    unexpected: Mutex<Option<String>>,
}

/// Posts deliveries from the queue until it is empty or the server is gone; a delivery whose
/// request failed goes back to the queue to be sent again after the restart.
fn worker(load: &Load, port: u16) {
    while !load.down.load(Ordering::SeqCst) {
        let next = load.queue.lock().expect("queue").pop_front();
        let Some(i) = next else { break };
        match crate::common::try_raw(port, &request(&load.deliveries[i])) {
            Ok(r) if r.status == 200 => {
                load.acked.lock().expect("acked").push(i);
                load.acked_count.fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) => {
                *load.unexpected.lock().expect("unexpected") =
                    Some(format!("delivery {i}: {} {}", r.status, r.text()));
                load.queue.lock().expect("queue").push_front(i);
                load.down.store(true, Ordering::SeqCst);
            }
            // Killed: refused, reset or closed without a reply. Send it again later.
            Err(_) => {
                load.cut_off.fetch_add(1, Ordering::SeqCst);
                load.queue.lock().expect("queue").push_front(i);
                load.down.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Checks the file after a restart: sound, every acknowledged delivery stored exactly once,
/// and no call row without the events it was derived from.
fn check_store(dir: &Path, load: &Load, seed: u64, round: usize) {
    let conn = crate::common::db(dir);
    let ctx = format!("seed {seed}, after restart {round}");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "{ctx}: integrity_check");
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(fk, 0, "{ctx}: foreign key violations");

    let mut by_sha: HashMap<String, i64> = HashMap::new();
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT body_sha256, provider, dedup_key FROM raw_events")
        .expect("sql");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .expect("query");
    for row in rows {
        let (sha, provider, key) = row.expect("row");
        *by_sha.entry(sha.clone()).or_default() += 1;
        keys.insert(sha, format!("{provider}:{key}"));
    }
    let acked = load.acked.lock().expect("acked").clone();
    for &i in &acked {
        let d = &load.deliveries[i];
        let n = by_sha.get(&d.sha).copied().unwrap_or(0);
        assert_eq!(
            n,
            1,
            "{ctx}: acknowledged delivery {i} stored {n} times: {}",
            String::from_utf8_lossy(&d.body)
        );
        if let Some(uuid) = &d.uuid {
            assert_eq!(
                keys.get(&d.sha).map(String::as_str),
                Some(format!("ringcentral:{uuid}").as_str()),
                "{ctx}: delivery {i} is kept under its uuid"
            );
        }
    }
    // Whatever is stored was sent: no stray or doubled rows.
    let sent: HashSet<&str> = load.deliveries.iter().map(|d| d.sha.as_str()).collect();
    for (sha, n) in &by_sha {
        assert!(
            sent.contains(sha.as_str()),
            "{ctx}: a stored body nobody sent"
        );
        assert_eq!(*n, 1, "{ctx}: a body stored {n} times");
    }

    // Half-written deliveries: a call row only with its events, events only with their call
    // and their raw delivery, and a call's event count matching what is stored for it.
    let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        q("SELECT count(*) FROM calls WHERE id NOT IN (SELECT call_id FROM call_events)"),
        0,
        "{ctx}: a call row without events"
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM call_events WHERE call_id NOT IN (SELECT id FROM calls)
              OR raw_event_id NOT IN (SELECT id FROM raw_events)"
        ),
        0,
        "{ctx}: events without their call or delivery"
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM raw_events r WHERE kind NOT IN ('call_log')
              AND NOT EXISTS (SELECT 1 FROM call_events e WHERE e.raw_event_id = r.id)"
        ),
        0,
        "{ctx}: a stored call delivery without its events"
    );
}

#[test]
fn kill_9_at_random_points_of_a_realistic_load_loses_and_doubles_nothing() {
    let seed = std::env::var("CALLPOP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_C0DE_2026_u64);
    eprintln!("crash test seed {seed} (set CALLPOP_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let (deliveries, call_count) = workload(&mut rng);
    let total = deliveries.len();
    let load = Arc::new(Load {
        queue: Mutex::new((0..total).collect()),
        deliveries,
        acked: Mutex::new(Vec::new()),
        acked_count: AtomicUsize::new(0),
        cut_off: AtomicUsize::new(0),
        down: AtomicBool::new(false),
        unexpected: Mutex::new(None),
    });
    // Kill after these many acknowledgements (spread over the run, each a random point).
    let mut kill_at: Vec<usize> = (0..KILLS)
        .map(|k| total * k / KILLS + 100 + rng.below(total / KILLS - 200))
        .collect();
    kill_at.sort_unstable();
    let started = Instant::now();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut round = 0;
    let mut kills = 0;
    loop {
        let server = Server::start(dir.path());
        if round > 0 {
            check_store(dir.path(), &load, seed, round);
        }
        let port = server.port;
        load.down.store(false, Ordering::SeqCst);
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let load = load.clone();
                std::thread::spawn(move || worker(&load, port))
            })
            .collect();
        let target = kill_at.get(kills).copied();
        // Wait for this round's kill point, or for the load to drain.
        loop {
            let drained = workers.iter().all(|w| w.is_finished());
            let reached = target.is_some_and(|t| load.acked_count.load(Ordering::SeqCst) >= t);
            if drained || reached {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let killed = !workers.iter().all(|w| w.is_finished());
        let survivor = if killed {
            server.kill9();
            kills += 1;
            None
        } else {
            Some(server)
        };
        for w in workers {
            w.join().expect("worker");
        }
        if let Some(problem) = load.unexpected.lock().expect("unexpected").take() {
            panic!("seed {seed}: a delivery was not answered 200: {problem}");
        }
        round += 1;
        if let Some(server) = survivor {
            // Drained: a clean stop, then one more restart to check the final state.
            assert!(server.stop().success(), "seed {seed}: clean stop");
            break;
        }
        eprintln!(
            "kill -9 #{kills} after {} acknowledgements ({:?})",
            load.acked_count.load(Ordering::SeqCst),
            started.elapsed()
        );
        assert!(round < 50, "seed {seed}: the load never drained");
    }
    assert_eq!(kills, KILLS, "seed {seed}: every kill happened mid-load");

    // The history reopens cleanly, and everything is there exactly once.
    let server = Server::start(dir.path());
    check_store(dir.path(), &load, seed, round);
    let acked: HashSet<usize> = load.acked.lock().expect("acked").iter().copied().collect();
    assert_eq!(
        acked.len(),
        total,
        "seed {seed}: every delivery acknowledged"
    );
    assert_eq!(
        crate::common::count(dir.path(), "SELECT count(*) FROM raw_events"),
        total as i64,
        "seed {seed}: one stored delivery per delivery"
    );
    // Every scripted call is one call row, with all of its deliveries' events.
    assert_eq!(
        crate::common::count(dir.path(), "SELECT count(*) FROM calls"),
        call_count as i64,
        "seed {seed}: one call per scripted call"
    );
    let per_call = {
        let conn = crate::common::db(dir.path());
        let mut stmt = conn
            .prepare(
                "SELECT r.body_sha256, c.provider, c.call_key FROM raw_events r
                 JOIN call_events e ON e.raw_event_id = r.id JOIN calls c ON c.id = e.call_id",
            )
            .expect("sql");
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    format!("{}:{}", r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows
    };
    // The deliveries of one scripted call all landed on one call row, and no two scripted
    // calls share a row.
    let mut row_of_call: HashMap<usize, String> = HashMap::new();
    let index: HashMap<&str, usize> = load
        .deliveries
        .iter()
        .map(|d| (d.sha.as_str(), d.call))
        .collect();
    for (sha, row) in &per_call {
        let call = index[sha.as_str()];
        let first = row_of_call.entry(call).or_insert_with(|| row.clone());
        assert_eq!(first, row, "seed {seed}: call {call} split over two rows");
    }
    assert_eq!(
        row_of_call.len(),
        call_count,
        "seed {seed}: every call derived"
    );
    let distinct: HashSet<&String> = row_of_call.values().collect();
    assert_eq!(distinct.len(), call_count, "seed {seed}: calls kept apart");
    assert!(server.stop().success());
    eprintln!(
        "{total} deliveries, {kills} kills, {} cut off and resent, {call_count} calls in {:?}",
        load.cut_off.load(Ordering::SeqCst),
        started.elapsed()
    );
}
