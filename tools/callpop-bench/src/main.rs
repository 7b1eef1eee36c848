//! `callpop-bench`: measures what dealership staff feel, each figure next to its target and,
//! for ingest, next to a ceiling server measured in the same run; rewrites BENCHMARKS.md.
//!
//! ```text
//! callpop-bench [--callpop PATH] [--out BENCHMARKS.md] [--quick] [--history-db PATH]
//! [--transport-latency CALLS]
//!               [--keep-history DIR]
//! ```
//!
//! `--history-db PATH` keeps the generated million-call history at PATH (and reuses it when it
//! exists) and measures only the history figures: for tuning queries without regenerating.
// A binary: the terminal is where it talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod ceiling;
mod cpu;
mod history;
mod http;
mod hub;
mod load;
mod popups;
mod serve;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::http::Conn;
use crate::load::{percentile, RC_PATH};
use crate::serve::{temp_dir, Serve};

/// Keep-alive connections of the ingest load.
const INGEST_CONNECTIONS: usize = 64;

/// Turns CallPop and the ceiling take at the ingest load, a share of the deliveries each time.
/// This machine's speed drifts by a third within minutes (the same build measured 7.5k/s and
/// 12.5k/s a few minutes apart): one long run of each, one after the other, measured the drift
/// as much as the two servers.
const INGEST_ROUNDS: u64 = 4;

struct Options {
    callpop: PathBuf,
    out: Option<PathBuf>,
    quick: bool,
    /// Only drive an already running server on this port (for profiling).
    load_port: Option<u16>,
    /// Only drive a ceiling server started in this process (for profiling).
    load_ceiling: bool,
    /// Only drive a one-commit-per-request server started in this process.
    load_per_request: bool,
    /// Connections of the `--load-port` / `--load-ceiling` load.
    connections: usize,
    /// Keeps the deliveries of repeated `--load-port` runs against one server distinct.
    salt: u64,
    /// Only the history figures, on a kept (and reused) database.
    history_db: Option<PathBuf>,
    /// Leave the freshly generated million-call history in this directory (for the desktop
    /// benchmark) instead of a temporary one.
    keep_history: Option<PathBuf>,
    /// Only the transport latency (WebSocket and webhook), for this many calls each.
    transport_only: Option<usize>,
    /// Only hub mode's figures (the join on `--history-db` when given).
    hub_only: bool,
}

fn options() -> Result<Options> {
    let mut callpop = None;
    let mut out = None;
    let mut quick = false;
    let mut load_port = None;
    let mut load_ceiling = false;
    let mut load_per_request = false;
    let mut connections = INGEST_CONNECTIONS;
    let mut salt = 7;
    let mut history_db = None;
    let mut keep_history = None;
    let mut transport_only = None;
    let mut hub_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--callpop" => callpop = Some(PathBuf::from(args.next().context("--callpop PATH")?)),
            "--out" => out = Some(PathBuf::from(args.next().context("--out FILE")?)),
            "--quick" => quick = true,
            "--load-port" => load_port = Some(args.next().context("--load-port PORT")?.parse()?),
            "--load-ceiling" => load_ceiling = true,
            "--load-per-request" => load_per_request = true,
            "--connections" => connections = args.next().context("--connections N")?.parse()?,
            "--salt" => salt = args.next().context("--salt N")?.parse()?,
            "--history-db" => {
                history_db = Some(PathBuf::from(args.next().context("--history-db PATH")?))
            }
            "--transport-latency" => {
                transport_only = Some(args.next().context("--transport-latency CALLS")?.parse()?)
            }
            "--hub" => hub_only = true,
            "--keep-history" => {
                keep_history = Some(PathBuf::from(args.next().context("--keep-history DIR")?))
            }
            "-h" | "--help" => {
                println!(
                    "callpop-bench [--callpop PATH] [--out BENCHMARKS.md] [--quick] \
                     [--load-port PORT | --load-ceiling | --load-per-request] [--connections N] \
                     [--salt N] [--history-db PATH] [--keep-history DIR] \
                     [--transport-latency CALLS] [--hub]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(Options {
        transport_only,
        hub_only,
        callpop: serve::find_callpop(callpop)?,
        out,
        quick,
        load_port,
        load_ceiling,
        load_per_request,
        connections,
        salt,
        history_db,
        keep_history,
    })
}

/// One line of the report.
struct Figure {
    section: &'static str,
    name: String,
    value: String,
    target: String,
    verdict: &'static str,
}

struct Report {
    figures: Vec<Figure>,
}

impl Report {
    fn add(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        ok: Option<bool>,
    ) {
        let f = Figure {
            section,
            name: name.into(),
            value: value.into(),
            target: target.into(),
            verdict: match ok {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            },
        };
        println!(
            "{:<10} {:<58} {:>16}   {:<14} {}",
            f.section, f.name, f.value, f.target, f.verdict
        );
        self.figures.push(f);
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|o| {
            o.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}, {os}")
}

fn commit() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let hash = out(&["rev-parse", "--short", "HEAD"]);
    let dirty = !out(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start of the process to the first 200 on a webhook, on an existing history.
async fn cold_start(o: &Options, runs: usize) -> Result<(f64, f64)> {
    let dir = temp_dir()?;
    Serve::start(&o.callpop, dir.path(), 0, &[])?.stop()?;
    let body = load::block(0, 99)
        .into_iter()
        .find(|d| !d.ringotel)
        .context("a RingCentral delivery")?;
    let mut times = Vec::new();
    for i in 0..runs {
        let port = free_port()?;
        let started = Instant::now();
        let mut child = serve::command(&o.callpop, dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut conn = Conn::new(port);
        let mut body = body.body.clone();
        // A distinct uuid each run so every run stores something.
        let text = String::from_utf8_lossy(&body).replacen(
            "\"uuid\":\"",
            &format!("\"uuid\":\"cold{i}-"),
            1,
        );
        body = text.into_bytes();
        loop {
            if let Ok((200, _)) = conn
                .post(
                    RC_PATH,
                    &[
                        ("Content-Type", "application/json"),
                        ("Verification-Token", load::RC_TOKEN),
                    ],
                    &body,
                )
                .await
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("no webhook accepted within 10 s");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        times.push(started.elapsed().as_micros() as u64);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    times.sort_unstable();
    Ok((
        percentile(&times, 50.0) as f64 / 1000.0,
        *times.last().unwrap_or(&0) as f64 / 1000.0,
    ))
}

async fn handshakes(port: u16, count: usize) -> Result<(f64, f64)> {
    let mut conn = Conn::new(port);
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let token = format!("handshake-{i}");
        let t = Instant::now();
        let (status, echoed) = conn
            .post(
                RC_PATH,
                &[
                    ("Content-Type", "application/json"),
                    ("Validation-Token", &token),
                ],
                b"",
            )
            .await?;
        times.push(t.elapsed().as_micros() as u64);
        anyhow::ensure!(
            status == 200 && echoed.as_deref() == Some(token.as_str()),
            "bad handshake reply"
        );
    }
    times.sort_unstable();
    Ok((
        percentile(&times, 50.0) as f64 / 1000.0,
        percentile(&times, 99.0) as f64 / 1000.0,
    ))
}

/// One turn at the ingest load against `port`, with what the whole machine did meanwhile.
async fn ingest_turn(
    port: u16,
    total: u64,
    salt: u64,
) -> Result<(load::RunResult, cpu::MachineUse)> {
    let requests = load::prepare(total, salt);
    let before = cpu::Machine::now()?;
    let run = load::closed_loop(port, INGEST_CONNECTIONS, &requests).await;
    Ok((run, cpu::Machine::now()?.since(before)))
}

fn count_rows(db: &std::path::Path, table: &str) -> Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0)
}

async fn run(o: Options) -> Result<()> {
    if std::env::var_os("CALLPOP_BENCH_STORE_ONLY").is_some() {
        return store_only(if o.quick { 30_000 } else { 200_000 }).await;
    }
    let ceiling_dir;
    let load_port = if o.load_ceiling {
        ceiling_dir = temp_dir()?;
        Some(ceiling::start(&ceiling_dir.path().join("ceiling.db")).await?)
    } else if o.load_per_request {
        ceiling_dir = temp_dir()?;
        Some(ceiling::start_per_request(&ceiling_dir.path().join("plain.db")).await?)
    } else {
        o.load_port
    };
    if let Some(port) = load_port {
        let total = if o.quick { 30_000 } else { 200_000 };
        let result = load::closed_loop(port, o.connections, &load::prepare(total, o.salt)).await;
        println!(
            "{} ok, {} failed, {:.0}/s",
            result.ok,
            result.failed,
            result.rate()
        );
        return Ok(());
    }
    if let Some(calls) = o.transport_only {
        for l in popups::transport_latency(&o.callpop, calls).await? {
            println!(
                "event sent by the fake → Notify on the bus over {}: p50 {:.2} ms, p99 {:.2} ms ({} calls)",
                l.transport, l.p50, l.p99, l.calls
            );
        }
        return Ok(());
    }
    let started = Instant::now();
    let mut r = Report {
        figures: Vec::new(),
    };
    if o.hub_only {
        hub_figures(&o, &mut r, o.history_db.as_deref()).await?;
        if let Some(path) = &o.out {
            write_report(path, &r, started.elapsed(), o.quick)?;
        }
        return Ok(());
    }
    if let Some(db) = &o.history_db {
        history_figures(&o, &mut r, db, if o.quick { 50_000 } else { 1_000_000 }).await?;
        return Ok(());
    }
    let (ingest_total, ceiling_total, history_calls, popup_calls) = if o.quick {
        (30_000u64, 30_000u64, 50_000u64, 100usize)
    } else {
        // The ceiling takes the same deliveries as CallPop: a shorter run flatters neither.
        (1_000_000, 1_000_000, 1_000_000, 1_000)
    };
    println!("Machine: {}\n", machine());

    // Start-up and idle memory.
    let (p50, max) = cold_start(&o, 10).await?;
    r.add(
        "start",
        "cold start → first webhook accepted (p50 of 10)",
        format!("{p50:.0} ms"),
        "< 300 ms",
        Some(p50 < 300.0),
    );
    r.add(
        "start",
        "cold start → first webhook accepted (slowest of 10)",
        format!("{max:.0} ms"),
        "",
        None,
    );
    let dir = temp_dir()?;
    let serve = Serve::start(&o.callpop, dir.path(), 0, &[])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = serve.rss_mib()?;
    r.add(
        "memory",
        "callpop serve idle RSS",
        format!("{idle:.1} MiB"),
        "< 30 MB",
        Some(idle < 28.6),
    );

    // Handshake.
    let (hs50, hs99) = handshakes(serve.port, 5_000).await?;
    r.add(
        "handshake",
        "validation handshake latency p50",
        format!("{hs50:.2} ms"),
        "",
        None,
    );
    r.add(
        "handshake",
        "validation handshake latency p99",
        format!("{hs99:.2} ms"),
        "< 5 ms",
        Some(hs99 < 5.0),
    );

    // Ingest: CallPop and the ceiling, same workload and durability, taking turns.
    let ceiling_dir = temp_dir()?;
    let ceiling_db = ceiling_dir.path().join("ceiling.db");
    let ceiling_port = ceiling::start(&ceiling_db).await?;
    let (mut ours, mut ceiling_run) = (load::RunResult::default(), load::RunResult::default());
    let (mut ours_machine, mut ceiling_machine) =
        (cpu::MachineUse::default(), cpu::MachineUse::default());
    let mut serve_cpu = 0.0;
    for round in 0..INGEST_ROUNDS {
        let serve_before = cpu::process_seconds(serve.pid())?;
        // A salt of its own per round: a repeated delivery would only be a duplicate.
        let (run, used) = ingest_turn(serve.port, ingest_total / INGEST_ROUNDS, 10 + round).await?;
        serve_cpu += cpu::process_seconds(serve.pid())? - serve_before;
        ours_machine = ours_machine.plus(used);
        ours.absorb(run);
        let (run, used) =
            ingest_turn(ceiling_port, ceiling_total / INGEST_ROUNDS, 100 + round).await?;
        ceiling_machine = ceiling_machine.plus(used);
        ceiling_run.absorb(run);
    }
    // The plainest durable receiver, for scale: one commit (and sync) per request.
    let per_request_port =
        ceiling::start_per_request(&ceiling_dir.path().join("per-request.db")).await?;
    let (per_request, _) = ingest_turn(per_request_port, ceiling_total / 20, 200).await?;
    let rss_after = serve.rss_mib()?;
    let db = dir.path().join("callpop.db");
    serve.stop()?;
    let stored = count_rows(&db, "raw_events")?;
    let lost = ours.ok as i64 - stored;
    let ratio = ours.rate() / ceiling_run.rate().max(1.0);
    r.add(
        "ingest",
        format!(
            "sustained deliveries/s ({} deliveries, 64 connections, {INGEST_ROUNDS} turns with the ceiling)",
            ours.ok
        ),
        format!("{:.0}/s", ours.rate()),
        "≥ 5,000/s",
        Some(ours.rate() >= 5_000.0),
    );
    r.add(
        "ingest",
        "ceiling: bare axum + SQLite append, same durability",
        format!("{:.0}/s", ceiling_run.rate()),
        "",
        None,
    );
    r.add(
        "ingest",
        format!(
            "one commit per request: a bare handler without group commit ({} deliveries)",
            per_request.ok
        ),
        format!("{:.0}/s", per_request.rate()),
        "",
        None,
    );
    r.add(
        "ingest",
        "CallPop as a multiple of one commit per request",
        format!("{:.1} ×", ours.rate() / per_request.rate().max(1.0)),
        "",
        None,
    );
    // Information, not a target: the target is the sustained rate with nothing lost (the
    // team's decision after six stops of measurements, docs/PERFORMANCE.md).
    r.add(
        "ingest",
        "CallPop as a share of the ceiling (information)",
        format!("{:.0} %", ratio * 100.0),
        "",
        None,
    );
    let per_delivery = |seconds: f64, ok: u64| seconds * 1e6 / ok.max(1) as f64;
    r.add(
        "ingest",
        "CPU per delivery: the whole machine, CallPop run / ceiling run (both include the load generator)",
        format!(
            "{:.0} / {:.0} µs",
            per_delivery(ours_machine.busy_seconds, ours.ok),
            per_delivery(ceiling_machine.busy_seconds, ceiling_run.ok)
        ),
        "",
        None,
    );
    r.add(
        "ingest",
        "CPU per delivery: the callpop serve process alone",
        format!("{:.0} µs", per_delivery(serve_cpu, ours.ok)),
        "",
        None,
    );
    r.add(
        "ingest",
        "share of the cores busy, CallPop run / ceiling run",
        format!(
            "{:.0} % / {:.0} %",
            ours_machine.busy_share() * 100.0,
            ceiling_machine.busy_share() * 100.0
        ),
        "",
        None,
    );
    r.add(
        "ingest",
        "acknowledged deliveries missing from the store",
        format!("{lost}"),
        "0",
        Some(lost == 0 && ours.failed == 0),
    );
    r.add(
        "memory",
        format!("callpop serve RSS after ingesting {} deliveries", ours.ok),
        format!("{rss_after:.1} MiB"),
        "",
        None,
    );

    // Latency at half the sustained rate.
    let dir = temp_dir()?;
    let serve = Serve::start(&o.callpop, dir.path(), 0, &[])?;
    let half = (ours.rate() / 2.0).max(100.0);
    let latency_run = Duration::from_secs(if o.quick { 4 } else { 10 });
    let latency_requests = (half * latency_run.as_secs_f64()) as u64;
    let requests = load::prepare(latency_requests, 3);
    let lat = load::open_loop(serve.port, 64, half, latency_run, &requests).await;
    serve.stop()?;
    r.add(
        "ingest",
        format!("latency at 50 % of sustained ({half:.0}/s) p50"),
        format!("{:.2} ms", lat.pct_ms(50.0)),
        "",
        None,
    );
    r.add(
        "ingest",
        format!("latency at 50 % of sustained ({half:.0}/s) p99"),
        format!("{:.2} ms", lat.pct_ms(99.0)),
        "",
        None,
    );
    let cl = ceiling::start(&ceiling_dir.path().join("ceiling-latency.db")).await?;
    let requests = load::prepare(latency_requests, 4);
    let clat = load::open_loop(cl, 64, half, latency_run, &requests).await;
    r.add(
        "ingest",
        "ceiling latency at the same rate p50 / p99",
        format!("{:.2} / {:.2} ms", clat.pct_ms(50.0), clat.pct_ms(99.0)),
        "",
        None,
    );

    // The same calls from the fake platform, over the WebSocket and over a webhook.
    match popups::transport_latency(&o.callpop, popup_calls.min(200)).await {
        Ok(rounds) => {
            for l in rounds {
                r.add(
                    "popups",
                    format!(
                        "event sent by the fake → Notify on the bus over {}, p50 / p99 ({} calls)",
                        l.transport, l.calls
                    ),
                    format!("{:.2} / {:.2} ms", l.p50, l.p99),
                    "",
                    None,
                );
            }
        }
        Err(e) => r.add(
            "popups",
            "event sent by the fake → Notify (WebSocket and webhook)",
            format!("not measured: {e}"),
            "",
            None,
        ),
    }

    // Popups.
    match popups::latency(&o.callpop, popup_calls).await {
        Ok(l) => {
            r.add(
                "popups",
                format!(
                    "webhook → Notify on the bus (CallPop's part), p50 ({} calls)",
                    l.calls
                ),
                format!("{:.2} ms", l.sent_p50),
                "",
                None,
            );
            r.add(
                "popups",
                "webhook → Notify on the bus, p99",
                format!("{:.2} ms", l.sent_p99),
                "",
                None,
            );
            r.add(
                "popups",
                "webhook → Notify returned by dunst, p50",
                format!("{:.2} ms", l.returned_p50),
                "",
                None,
            );
            r.add(
                "popups",
                "webhook → Notify returned by dunst, p99",
                format!("{:.2} ms", l.returned_p99),
                "< 20 ms",
                Some(l.returned_p99 < 20.0),
            );
        }
        Err(e) => r.add(
            "popups",
            "webhook → Notify latency",
            format!("not measured: {e}"),
            "< 20 ms",
            None,
        ),
    }

    let hist_dir = temp_dir()?;
    let hist_db = match &o.keep_history {
        Some(dir) => {
            // Generated afresh, so the generation figure is measured every run.
            std::fs::create_dir_all(dir)?;
            for suffix in ["", "-wal", "-shm"] {
                match std::fs::remove_file(dir.join(format!("callpop.db{suffix}"))) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            dir.join("callpop.db")
        }
        None => hist_dir.path().join("callpop.db"),
    };
    history_figures(&o, &mut r, &hist_db, history_calls).await?;
    hub_figures(&o, &mut r, Some(&hist_db)).await?;

    println!("\nTotal time: {:.0} s", started.elapsed().as_secs_f64());
    if let Some(path) = &o.out {
        write_report(path, &r, started.elapsed(), o.quick)?;
        println!("Wrote {}", path.display());
    }
    Ok(())
}

/// Hub mode: fan-out to 1, 50 and 200 desks, the hub's memory, a real desk's latency, memory
/// and catch-up, and a desk joining the big history's hub.
async fn hub_figures(o: &Options, r: &mut Report, hist_db: Option<&std::path::Path>) -> Result<()> {
    let calls = if o.quick { 10 } else { 40 };
    for desks in [1usize, 50, 200] {
        let f = hub::fanout(&o.callpop, desks, calls).await?;
        let plural = if desks == 1 { "" } else { "s" };
        r.add(
            "hub",
            format!("webhook at the hub → change at {desks} desk{plural} (p50)"),
            format!("{:.1} ms", f.p50_ms),
            "",
            None,
        );
        let target = desks == 200;
        r.add(
            "hub",
            format!("webhook at the hub → change at {desks} desk{plural} (p99)"),
            format!("{:.1} ms", f.p99_ms),
            if target { "< 50 ms" } else { "" },
            target.then_some(f.p99_ms < 50.0),
        );
        if desks == 200 {
            r.add(
                "hub",
                "hub resident memory, 200 desks connected",
                format!("{:.1} MiB", f.hub_rss_mib),
                "< 60 MiB",
                Some(f.hub_rss_mib < 60.0),
            );
        }
    }
    let d = hub::real_desk_figures(&o.callpop, calls, if o.quick { 2_000 } else { 10_000 }).await?;
    r.add(
        "hub",
        "webhook at the hub → row in a real desk's history (p50)",
        format!("{:.1} ms", d.applied_p50_ms),
        "",
        None,
    );
    r.add(
        "hub",
        "webhook at the hub → row in a real desk's history (p99)",
        format!("{:.1} ms", d.applied_p99_ms),
        "",
        None,
    );
    r.add(
        "hub",
        "desk resident memory, idle and connected",
        format!("{:.1} MiB", d.idle_rss_mib),
        "",
        None,
    );
    r.add(
        "hub",
        format!(
            "desk back after a disconnect → {} changes applied (incl. its start)",
            d.catch_up_changes
        ),
        format!("{:.2} s", d.catch_up.as_secs_f64()),
        "< 1 s",
        Some(d.catch_up.as_secs_f64() < 1.0),
    );
    if let Some(db) = hist_db.filter(|db| db.exists()) {
        let (took, calls) = hub::join_big_hub(&o.callpop, db).await?;
        r.add(
            "hub",
            format!("new desk joins a hub of 1,000,000 calls → its 90-day window ({calls} calls) applied"),
            format!("{:.1} s", took.as_secs_f64()),
            "",
            None,
        );
    }
    Ok(())
}

/// The million-call history: size, the searches people run, CSV export. Generates the history
/// at `hist_db` unless it is already there.
async fn history_figures(
    o: &Options,
    r: &mut Report,
    hist_db: &std::path::Path,
    history_calls: u64,
) -> Result<()> {
    if !hist_db.exists() {
        let took = history::generate(hist_db, history_calls).await?;
        r.add(
            "history",
            format!("generated {history_calls} calls (call-log records, group commit)"),
            format!("{:.0} s", took.as_secs_f64()),
            "",
            None,
        );
    }
    let wal = hist_db.with_extension("db-wal");
    let size =
        std::fs::metadata(hist_db)?.len() + std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    r.add(
        "history",
        "database size (one raw delivery per call)",
        mib(size),
        "",
        None,
    );
    let sizes = history::table_sizes(hist_db)?;
    let breakdown = sizes
        .iter()
        .take(6)
        .map(|(t, b)| format!("{t} {}", mib(*b)))
        .collect::<Vec<_>>()
        .join(", ");
    r.add(
        "history",
        format!("by table with its indexes: {breakdown}"),
        "",
        "",
        None,
    );
    for q in history::time_queries(hist_db, if o.quick { 50 } else { 200 })? {
        let target = if q.label.starts_with("first page") {
            10.0
        } else {
            30.0
        };
        r.add(
            "history",
            format!(
                "{} p95 (p50 {:.2} ms, {:.0} rows)",
                q.label, q.p50_ms, q.rows
            ),
            format!("{:.2} ms", q.p95_ms),
            format!("< {target:.0} ms"),
            Some(q.p95_ms < target),
        );
    }
    let t = Instant::now();
    let out = serve::command(&o.callpop, hist_db.parent().context("history dir")?)
        .args(["calls", "--csv", "--limit", "0"])
        .output()?;
    let csv_time = t.elapsed();
    let lines = out
        .stdout
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1);
    r.add(
        "history",
        format!("CSV export of {lines} calls (callpop calls --csv)"),
        format!("{:.1} s", csv_time.as_secs_f64()),
        "",
        None,
    );

    Ok(())
}

/// The store alone (parse + writer, no HTTP): where ingest time goes.
async fn store_only(total: u64) -> Result<()> {
    use callpop_core::model::{Delivery, Origin, Provider};
    let dir = temp_dir()?;
    let country = callpop_core::numbers::Country::from_iso("US").context("US")?;
    let store = callpop_store::Store::open(
        &dir.path().join("callpop.db"),
        callpop_store::StoreOptions::new(country),
    )?;
    let (changes, _) = tokio::sync::broadcast::channel(1);
    let (writer, thread) = callpop_store::writer::StoreWriter::spawn(store, changes)?;
    let mut deliveries = Vec::new();
    let mut b = 0;
    while (deliveries.len() as u64) < total {
        for d in load::block(b, 5) {
            let provider = if d.ringotel {
                Provider::Ringotel
            } else {
                Provider::RingCentral
            };
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&d.body));
            let parsed = callpop_core::reparse::reparse(
                provider,
                &d.body,
                &sha,
                chrono::Utc::now(),
                &country,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            deliveries.push(Delivery {
                parsed,
                origin: Origin::Webhook,
                received_at: chrono::Utc::now(),
                headers: Vec::new(),
                body: d.body,
                body_sha256: sha,
            });
        }
        b += 1;
    }
    let queue = std::sync::Arc::new(std::sync::Mutex::new(deliveries));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (writer, queue) = (writer.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(d) = next else { break };
                let _ = writer.ingest(d).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = started.elapsed();
    drop(writer);
    let _ = thread.join();
    println!(
        "store only: {total} deliveries in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    Ok(())
}

fn write_report(path: &std::path::Path, r: &Report, took: Duration, quick: bool) -> Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench` (`callpop-bench`{}). Every figure comes from the release build \
         driven over loopback HTTP or from the real history file; targets are the issue's. \
         The ceiling server is a bare axum handler appending the same bodies to SQLite (WAL, \
         group commit, `synchronous = FULL`: synced inside COMMIT, reply after it), measured in \
         the same run on the same deliveries. CallPop gives the same guarantee differently: it \
         commits with `synchronous = NORMAL` and a second thread fdatasyncs the WAL before any \
         reply. For scale, a handler committing each request on its own (no group commit, \
         same durability) takes a twentieth of the deliveries.\n",
        if quick { ", quick mode" } else { "" }
    );
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(
        md,
        "- Date: {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(md, "- Commit: {}", commit());
    let _ = writeln!(md, "- Run time: {:.0} s\n", took.as_secs_f64());
    let mut section = "";
    for f in &r.figures {
        if f.section != section {
            section = f.section;
            let _ = writeln!(
                md,
                "\n## {section}\n\n| measure | value | target | |\n|---|---:|---|---|"
            );
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            f.name, f.value, f.target, f.verdict
        );
    }
    std::fs::write(path, md)?;
    Ok(())
}

fn main() -> Result<()> {
    let o = options()?;
    callpop_ringcentral::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(o))
}
