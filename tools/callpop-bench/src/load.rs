//! Realistic delivery streams and the two ways of driving a server with them: closed loop (as
//! fast as it answers, for sustained throughput) and open loop (a fixed rate, for latency
//! without coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callpop_testkit::payloads::{
    rc_notification, ringotel_request, DESK_EXTENSION_ID, TELEPHONY_EVENT,
};
use chrono::{TimeZone, Utc};
use fake_ringcentral::{CallOutcome, ScriptedCall};
use serde_json::json;

use crate::http::{self, Conn};

/// The RingCentral webhook path.
pub const RC_PATH: &str = "/api/v1/webhooks/phone_calls_webhooks/ringcentral";
/// The Ringotel webhook path.
pub const RO_PATH: &str = "/api/v1/webhooks/phone_calls_webhooks/ringotel";
/// The tokens the measured servers expect.
pub const RC_TOKEN: &str = "bench-verification-token";
/// Ringotel api token.
pub const RO_TOKEN: &str = "bench-ringotel-token";

/// Calls per block; a block's events are interleaved like concurrent calls.
const CALLS_PER_BLOCK: u64 = 8;

/// One request to send.
pub struct Delivery {
    /// Which webhook.
    pub ringotel: bool,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// The deliveries of block `b`: eight calls (seven in ten RingCentral, the rest Ringotel),
/// their events interleaved. `salt` keeps runs against one store distinct.
pub fn block(b: u64, salt: u64) -> Vec<Delivery> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let mut per_call: Vec<Vec<Delivery>> = Vec::new();
    for k in 0..CALLS_PER_BLOCK {
        let n = salt * 1_000_000_000 + b * CALLS_PER_BLOCK + k;
        let start = base + chrono::Duration::seconds((n % 2_000_000) as i64 * 7);
        let from = format!("+1{}{:07}", 201 + (n % 700), n % 10_000_000);
        if n % 10 < 7 {
            let outcome = match n % 4 {
                0 => CallOutcome::Missed { ring: 25 },
                3 => CallOutcome::Voicemail {
                    ring: 20,
                    message: 15,
                },
                _ => CallOutcome::Answered { ring: 8, talk: 120 },
            };
            let mut call = ScriptedCall::to_owner(start, &from, outcome);
            call.from_name = Some(format!("CUSTOMER {}", n % 5000));
            let events = call
                .telephony_events(n)
                .into_iter()
                .enumerate()
                .map(|(i, (at, body))| Delivery {
                    ringotel: false,
                    body: rc_notification(
                        &format!("{n}-{i}"),
                        TELEPHONY_EVENT,
                        at,
                        "bench-subscription",
                        DESK_EXTENSION_ID,
                        body,
                    )
                    .to_string()
                    .into_bytes(),
                })
                .collect();
            per_call.push(events);
        } else {
            let call_id = format!("{}-bench{n}", start.timestamp_millis());
            let params = |extra: serde_json::Value| {
                let mut p = json!({"call_id": call_id, "extension": format!("{}", 500 + n % 20),
                    "user_id": "00000178654321098765", "connection_id": "7732", "connection_name": "PBX",
                    "activity_type": "inbound", "domain": "dealership", "caller_number": from.trim_start_matches('+'),
                    "called_number": "500", "call_start": start.timestamp_millis()});
                if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                    p.extend(e.clone());
                }
                p
            };
            let talk = if n.is_multiple_of(3) { 0 } else { 95 };
            let mut events = vec![
                ringotel_request("StartCallActivity", RO_TOKEN, params(json!({}))),
                ringotel_request(
                    "StopCallActivity",
                    RO_TOKEN,
                    params(json!({
                    "call_end": start.timestamp_millis() + 120_000, "call_duration": talk, "call_cause": "0"})),
                ),
            ];
            if talk > 0 && n.is_multiple_of(2) {
                events.push(ringotel_request("UpdateCallRecording", RO_TOKEN,
                    json!({"call_id": call_id, "recording_url": format!("https://recordings.example/{call_id}.mp3")})));
            }
            per_call.push(
                events
                    .into_iter()
                    .map(|v| Delivery {
                        ringotel: true,
                        body: v.to_string().into_bytes(),
                    })
                    .collect(),
            );
        }
    }
    let mut out = Vec::new();
    let longest = per_call.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<std::vec::IntoIter<Delivery>> =
        per_call.into_iter().map(Vec::into_iter).collect();
    for _ in 0..longest {
        for it in iters.iter_mut() {
            if let Some(d) = it.next() {
                out.push(d);
            }
        }
    }
    out
}

impl Delivery {
    /// The whole HTTP request, as the phone system would send it.
    pub fn request(&self) -> Vec<u8> {
        if self.ringotel {
            http::request(RO_PATH, &[("Content-Type", "application/json")], &self.body)
        } else {
            http::request(
                RC_PATH,
                &[
                    ("Content-Type", "application/json; charset=UTF-8"),
                    ("Verification-Token", RC_TOKEN),
                    ("User-Agent", "RingCentral-Webhook/8.3"),
                ],
                &self.body,
            )
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Deliveries answered 200.
    pub ok: u64,
    /// Other answers or failures.
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latencies in microseconds (sorted).
    pub latencies_us: Vec<u64>,
}

impl RunResult {
    /// Deliveries per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Adds a later run of the same load, as if it had been one run.
    pub fn absorb(&mut self, later: RunResult) {
        self.ok += later.ok;
        self.failed += later.failed;
        self.elapsed += later.elapsed;
        self.latencies_us.extend(later.latencies_us);
        self.latencies_us.sort_unstable();
    }

    /// A percentile in milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

/// A percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Requests ready to send, in blocks of interleaved calls.
pub struct Prepared {
    blocks: Arc<Vec<Vec<Vec<u8>>>>,
}

/// Builds the requests of at least `total` deliveries (whole blocks) before a run: the load
/// generator shares the cores with the server it measures, and building JSON bodies during
/// the run cost it more CPU per delivery than the ceiling server spends.
pub fn prepare(total: u64, salt: u64) -> Prepared {
    let mut blocks: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut prepared = 0u64;
    while prepared < total {
        let requests: Vec<Vec<u8>> = block(blocks.len() as u64, salt)
            .iter()
            .map(Delivery::request)
            .collect();
        prepared += requests.len() as u64;
        blocks.push(requests);
    }
    Prepared {
        blocks: Arc::new(blocks),
    }
}

/// Sends the prepared requests as fast as the server answers, from `workers` keep-alive
/// connections, each taking the next whole block.
pub async fn closed_loop(port: u16, workers: usize, prepared: &Prepared) -> RunResult {
    let blocks = &prepared.blocks;
    let next_block = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (blocks, next_block) = (blocks.clone(), next_block.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::new(port);
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut latencies = Vec::new();
            while let Some(requests) =
                blocks.get(next_block.fetch_add(1, Ordering::Relaxed) as usize)
            {
                for request in requests {
                    let t = Instant::now();
                    match conn.send(request).await {
                        Ok((200, _)) => ok += 1,
                        _ => failed += 1,
                    }
                    latencies.push(t.elapsed().as_micros() as u64);
                }
            }
            (ok, failed, latencies)
        }));
    }
    RunResult::gather(handles, started).await
}

impl RunResult {
    /// Adds up what every worker counted.
    async fn gather(
        workers: Vec<tokio::task::JoinHandle<(u64, u64, Vec<u64>)>>,
        started: Instant,
    ) -> RunResult {
        let mut result = RunResult::default();
        for w in workers {
            if let Ok((ok, failed, lat)) = w.await {
                result.ok += ok;
                result.failed += failed;
                result.latencies_us.extend(lat);
            }
        }
        result.elapsed = started.elapsed();
        result.latencies_us.sort_unstable();
        result
    }
}

/// Sends the prepared requests, in order, at a fixed `rate` for `duration`; latency is
/// measured from each request's scheduled time, so a slow server cannot hide its queueing.
pub async fn open_loop(
    port: u16,
    workers: usize,
    rate: f64,
    duration: Duration,
    prepared: &Prepared,
) -> RunResult {
    // Slot k sends the k-th request of the blocks laid end to end.
    let order: Arc<Vec<(usize, usize)>> = Arc::new(
        prepared
            .blocks
            .iter()
            .enumerate()
            .flat_map(|(b, requests)| (0..requests.len()).map(move |i| (b, i)))
            .take((rate * duration.as_secs_f64()) as usize)
            .collect(),
    );
    let slot = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (blocks, order, slot) = (prepared.blocks.clone(), order.clone(), slot.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::new(port);
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut latencies = Vec::new();
            loop {
                let k = slot.fetch_add(1, Ordering::Relaxed);
                let Some(&(b, i)) = order.get(k as usize) else {
                    break;
                };
                let due = started + Duration::from_secs_f64(k as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                match conn.send(&blocks[b][i]).await {
                    Ok((200, _)) => ok += 1,
                    _ => failed += 1,
                }
                latencies.push(due.elapsed().as_micros() as u64);
            }
            (ok, failed, latencies)
        }));
    }
    RunResult::gather(handles, started).await
}
