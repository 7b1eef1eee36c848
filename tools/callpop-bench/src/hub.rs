//! Hub mode's figures (issue 28): a webhook at the hub → the change at N desks, the hub's memory
//! with 200 desks connected, a desk's idle memory and its webhook → row-applied latency,
//! catching up with 10,000 changes, and a new desk joining a hub that holds a million calls.
//!
//! Desk connections beyond the real desk processes are played by this process, each from its
//! own loopback address (as desks on a LAN have their own), with the desk's real client and
//! stream reader; the hub is the real `callpop serve --hub`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use callpop_core::Secret;
use callpop_engine::desk::client::HubClient;
use callpop_engine::desk::sse::SseReader;
use callpop_hub::wire::{Change, Record};
use callpop_hub::{Fingerprint, HubIdentity};
use callpop_store::hub::PendingCode;
use callpop_store::{Store, StoreOptions};

use crate::http::Conn;
use crate::load::{percentile, RC_PATH, RC_TOKEN};
use crate::serve::{command, temp_dir, Serve};

/// A RingCentral telephony event of a new call, stamped now.
fn ringing(session: &str) -> Vec<u8> {
    use callpop_testkit::payloads::{
        rc_desk_call_body, rc_notification, DESK_EXTENSION_ID, TELEPHONY_EVENT,
    };
    let now = chrono::Utc::now();
    rc_notification(
        &format!("{session}-1"),
        TELEPHONY_EVENT,
        now,
        "bench-subscription",
        DESK_EXTENSION_ID,
        rc_desk_call_body(session, 1, "Proceeding", "JANE ROE", now),
    )
    .to_string()
    .into_bytes()
}

async fn post(conn: &mut Conn, body: &[u8]) -> Result<()> {
    let (status, _) = conn
        .post(
            RC_PATH,
            &[
                ("Content-Type", "application/json"),
                ("Verification-Token", RC_TOKEN),
            ],
            body,
        )
        .await?;
    if status != 200 {
        bail!("the hub answered {status}");
    }
    Ok(())
}

fn us() -> Result<callpop_core::numbers::Country> {
    callpop_core::numbers::Country::from_iso("US").context("the US numbering plan")
}

/// Pairs `n` desks straight in the hub's history (as pairing would), before it starts; their
/// tokens and the hub's key.
fn prepare_hub(dir: &Path, n: usize) -> Result<(Fingerprint, Vec<String>)> {
    let identity = HubIdentity::load_or_create(dir)?;
    let mut store = Store::open(&dir.join(callpop_store::DB_FILE), StoreOptions::new(us()?))?;
    let now = chrono::Utc::now();
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("B{i}");
        let pending = PendingCode {
            id: id.clone(),
            code: format!("{id}-BENCH"),
            desk_name: None,
            expires_at: now + chrono::Duration::minutes(10),
        };
        store.hub_issue_code(&pending, now)?;
        let token = format!("bench-desk-token-{i:04}-{}", std::process::id());
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        match store.hub_add_desk(&id, &format!("Desk {i}"), &hash, now)? {
            Ok(_) => tokens.push(token),
            Err(e) => bail!("cannot prepare desk {i}: {e:?}"),
        }
    }
    Ok((identity.fingerprint(), tokens))
}

fn hub_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("CALLPOP_HUB".into(), "on".into()),
        ("CALLPOP_HUB_LISTEN".into(), format!("127.0.0.1:{port}")),
        ("CALLPOP_SECRET_STORE".into(), "file".into()),
    ]
}

/// Desk `i`'s own loopback address.
fn desk_address(i: usize) -> IpAddr {
    IpAddr::from([127, 1 + (i / 250) as u8, (i % 250) as u8, 2])
}

/// Opens `tokens.len()` desk streams; each call key's arrival time per desk comes out of the
/// returned channel.
async fn open_streams(
    port: u16,
    fingerprint: Fingerprint,
    tokens: &[String],
) -> Result<mpsc::UnboundedReceiver<(usize, String, Instant)>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let address = format!("127.0.0.1:{port}");
    for (i, token) in tokens.iter().enumerate() {
        let client = HubClient::pinned_from(
            &address,
            fingerprint,
            Secret::new(token.clone()),
            Some(desk_address(i)),
        )?;
        let latest = client.feed(0, None, 1).await?.latest;
        let mut response = client.stream(latest, None).await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut reader = SseReader::default();
            while let Ok(Some(bytes)) = response.chunk().await {
                let at = Instant::now();
                let Ok(events) = reader.push(&bytes) else {
                    return;
                };
                for event in events.into_iter().filter(|e| e.event == "change") {
                    if let Ok(Change {
                        record: Record::Call { call },
                        ..
                    }) = serde_json::from_str(&event.data)
                    {
                        let _ = tx.send((i, call.call_key.clone(), at));
                    }
                }
            }
        });
    }
    Ok(rx)
}

/// What [`fanout`] measured.
pub struct Fanout {
    /// Webhook sent → change received, over every desk and call, in ms.
    pub p50_ms: f64,
    /// The same, 99th percentile.
    pub p99_ms: f64,
    /// The hub's resident memory with every desk connected.
    pub hub_rss_mib: f64,
}

/// `calls` webhooks at a hub with `desks` desk streams open.
pub async fn fanout(callpop: &Path, desks: usize, calls: usize) -> Result<Fanout> {
    let dir = temp_dir()?;
    let (fingerprint, tokens) = prepare_hub(dir.path(), desks)?;
    let hub_port = crate::free_port()?;
    let hub = Serve::start(callpop, dir.path(), 0, &hub_env(hub_port))?;
    let mut arrivals = open_streams(hub_port, fingerprint, &tokens).await?;
    let mut conn = Conn::new(hub.port);
    let mut samples = Vec::with_capacity(desks * calls);
    for c in 0..calls {
        let key = format!("s-fanout-{desks}-{c}");
        let body = ringing(&key);
        let sent = Instant::now();
        post(&mut conn, &body).await?;
        let mut seen: HashMap<usize, Instant> = HashMap::new();
        let deadline = sent + Duration::from_secs(10);
        while seen.len() < desks {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, arrivals.recv()).await {
                Ok(Some((desk, call_key, at))) if call_key == key => {
                    seen.entry(desk).or_insert(at);
                }
                Ok(Some(_)) => {}
                _ => bail!("only {} of {desks} desks got call {c}", seen.len()),
            }
        }
        samples.extend(
            seen.values()
                .map(|at| at.duration_since(sent).as_micros() as u64),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hub_rss_mib = hub.rss_mib()?;
    hub.stop()?;
    samples.sort_unstable();
    Ok(Fanout {
        p50_ms: percentile(&samples, 50.0) as f64 / 1000.0,
        p99_ms: percentile(&samples, 99.0) as f64 / 1000.0,
        hub_rss_mib,
    })
}

/// A real desk process paired with the hub at `hub_port` through `callpop desk join`.
fn real_desk(callpop: &Path, hub_dir: &Path, hub_port: u16, desk_dir: &Path) -> Result<Serve> {
    let out = command(callpop, hub_dir)
        .env("CALLPOP_SECRET_STORE", "file")
        .args(["hub", "pair", "--json"])
        .output()?;
    let pair: serde_json::Value = serde_json::from_slice(&out.stdout).context("hub pair")?;
    let code = pair["code"].as_str().context("a code")?;
    let out = command(callpop, desk_dir)
        .env("CALLPOP_SECRET_STORE", "file")
        .args([
            "desk",
            "join",
            &format!("127.0.0.1:{hub_port}"),
            code,
            "--name",
            "Bench",
        ])
        .output()?;
    if !out.status.success() {
        bail!("desk join: {}", String::from_utf8_lossy(&out.stderr));
    }
    Serve::start(
        callpop,
        desk_dir,
        0,
        &[("CALLPOP_SECRET_STORE".into(), "file".into())],
    )
}

fn rows(desk_dir: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open_with_flags(
        desk_dir.join(callpop_store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
    .unwrap_or(0)
}

/// What [`real_desk_figures`] measured.
pub struct RealDesk {
    /// Webhook at the hub → the row in a real desk's history, p50 and p99 in ms.
    pub applied_p50_ms: f64,
    /// See above.
    pub applied_p99_ms: f64,
    /// The desk's resident memory, idle and connected.
    pub idle_rss_mib: f64,
    /// A desk restarted after 10,000 changes at the hub: start → all applied.
    pub catch_up: Duration,
    /// How many changes that was.
    pub catch_up_changes: usize,
}

/// One real desk: latency to its history, its idle memory, and catching up with `changes`.
pub async fn real_desk_figures(callpop: &Path, calls: usize, changes: usize) -> Result<RealDesk> {
    let hub_dir = temp_dir()?;
    let desk_dir = temp_dir()?;
    let hub_port = crate::free_port()?;
    let hub = Serve::start(callpop, hub_dir.path(), 0, &hub_env(hub_port))?;
    let desk = real_desk(callpop, hub_dir.path(), hub_port, desk_dir.path())?;
    let mut conn = Conn::new(hub.port);
    // Connected: a first call arrives.
    post(&mut conn, &ringing("s-warm")).await?;
    let until = Instant::now() + Duration::from_secs(30);
    while rows(desk_dir.path(), "SELECT count(*) FROM calls") < 1 {
        if Instant::now() > until {
            bail!("the desk never got a call");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    for c in 0..calls {
        let key = format!("s-applied-{c}");
        let sql = format!("SELECT count(*) FROM calls WHERE call_key = '{key}'");
        let sent = Instant::now();
        post(&mut conn, &ringing(&key)).await?;
        while rows(desk_dir.path(), &sql) < 1 {
            if sent.elapsed() > Duration::from_secs(10) {
                bail!("call {c} never reached the desk");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(sent.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_mib = desk.rss_mib()?;
    // Away while `changes` calls ring at the hub, then back.
    desk.stop()?;
    let before = rows(desk_dir.path(), "SELECT count(*) FROM calls");
    // `changes` new calls, one delivery each, over 16 connections.
    let mut senders = Vec::new();
    for w in 0..16 {
        let port = hub.port;
        senders.push(tokio::spawn(async move {
            let mut conn = Conn::new(port);
            for i in (w..changes).step_by(16) {
                post(&mut conn, &ringing(&format!("s-away-{i}"))).await?;
            }
            anyhow::Ok(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let hub_calls = rows(hub_dir.path(), "SELECT count(*) FROM calls");
    let started = Instant::now();
    let desk = Serve::start(
        callpop,
        desk_dir.path(),
        0,
        &[("CALLPOP_SECRET_STORE".into(), "file".into())],
    )?;
    while rows(desk_dir.path(), "SELECT count(*) FROM calls") < hub_calls {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the desk did not catch up");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let catch_up = started.elapsed();
    let catch_up_changes = (hub_calls - before).max(0) as usize;
    desk.stop()?;
    hub.stop()?;
    samples.sort_unstable();
    Ok(RealDesk {
        applied_p50_ms: percentile(&samples, 50.0) as f64 / 1000.0,
        applied_p99_ms: percentile(&samples, 99.0) as f64 / 1000.0,
        idle_rss_mib,
        catch_up,
        catch_up_changes,
    })
}

/// A new desk joining a hub that holds the history at `hist_db` (a 90-day window): start →
/// every call of the window applied; and how many that was.
pub async fn join_big_hub(callpop: &Path, hist_db: &Path) -> Result<(Duration, i64)> {
    let hub_dir = temp_dir()?;
    std::fs::copy(hist_db, hub_dir.path().join(callpop_store::DB_FILE))?;
    let hub_port = crate::free_port()?;
    let hub = Serve::start(callpop, hub_dir.path(), 0, &hub_env(hub_port))?;
    let since = (chrono::Utc::now() - chrono::Duration::days(90)).timestamp_millis();
    let window = rows(
        hub_dir.path(),
        &format!("SELECT count(*) FROM calls WHERE started_at >= {since}"),
    );
    let desk_dir = temp_dir()?;
    let started = Instant::now();
    let desk = real_desk(callpop, hub_dir.path(), hub_port, desk_dir.path())?;
    while rows(desk_dir.path(), "SELECT count(*) FROM calls") < window {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the desk did not finish joining");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    desk.stop()?;
    hub.stop()?;
    Ok((took, window))
}
