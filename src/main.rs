//! `callpop` command line: run the engine headless (`serve`) and read the history.
// A binary: the terminal is where it talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Local, NaiveDate, SecondsFormat, TimeZone, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use callpop_core::model::{Call, CallDirection, CallResult, Provider};
use callpop_core::routes::webhook_url;
use callpop_engine::config::{Config, Overrides};
use callpop_engine::engine::Engine;
use callpop_engine::replay::{self, QuarantineReplay};
use callpop_engine::secrets::TokenSource;
use callpop_store::{CallFilter, CallRecord, EventFilter, Store, StoreOptions};

#[derive(Parser)]
#[command(
    name = "callpop",
    version,
    about = "Caller pop-ups and call history for dealership desks"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct GlobalArgs {
    /// Where the call history and secrets live (default: the platform data directory).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML config file (default: ~/.config/callpop/config.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook receiver and keep the call history (headless).
    Serve {
        /// Address to listen on (default 127.0.0.1:8787).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// List and search the call history, newest first.
    Calls(CallsArgs),
    /// Show stored deliveries and quarantined bodies, or replay them.
    Events(EventsArgs),
    /// Manage the RingCentral webhook subscription (needs RingCentral credentials).
    Subscriptions {
        #[command(subcommand)]
        action: SubscriptionAction,
    },
    /// Import calls from the RingCentral call log (fills gaps; safe to repeat).
    Backfill {
        /// Start of the period: RFC 3339, YYYY-MM-DD, today, yesterday, or 2h/7d ago.
        #[arg(long, value_name = "T")]
        since: String,
        /// End of the period (default: now).
        #[arg(long, value_name = "T")]
        until: Option<String>,
    },
    /// Show what a running `callpop serve` reports about itself (receiver, tunnel,
    /// subscription, popups, backfill).
    Status {
        /// The raw JSON from /healthz.
        #[arg(long)]
        json: bool,
    },
    /// The public tunnel of a running `callpop serve`.
    Tunnel {
        #[command(subcommand)]
        action: TunnelAction,
    },
    /// Show the webhook tokens senders must use (masked unless --reveal).
    Tokens {
        /// Print the full tokens.
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Subcommand)]
enum SubscriptionAction {
    /// List CallPop's subscriptions (this app, this user).
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Make sure exactly one Active subscription delivers to the public URL.
    Ensure,
    /// Delete a subscription.
    Delete {
        /// Subscription id.
        id: String,
    },
}

#[derive(Subcommand)]
enum TunnelAction {
    /// The tunnel's state, reason and public URL.
    Status,
}

#[derive(Args)]
struct CallsArgs {
    /// A number fragment in any format, a name or an extension.
    #[arg(long, short = 's', value_name = "TEXT")]
    search: Option<String>,
    /// Calls started at or after: RFC 3339, YYYY-MM-DD, today, yesterday, or 30m/2h/7d ago.
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Calls started before (same forms as --since).
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Only this outcome.
    #[arg(long, value_enum, value_name = "R")]
    result: Option<ResultArg>,
    /// Only this direction.
    #[arg(long, value_enum, value_name = "D")]
    direction: Option<DirectionArg>,
    /// Only calls this extension (number or id) took part in.
    #[arg(long, value_name = "EXT")]
    extension: Option<String>,
    /// Only calls of the watched extensions (`watch_extensions`).
    #[arg(long)]
    mine: bool,
    /// How many calls to show (0 = all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: usize,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header row.
    #[arg(long)]
    csv: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResultArg {
    Answered,
    Missed,
    Voicemail,
    NoAnswer,
}

#[derive(Clone, Copy, ValueEnum)]
enum DirectionArg {
    Inbound,
    Outbound,
    Internal,
}

#[derive(Args)]
struct EventsArgs {
    #[command(subcommand)]
    action: Option<EventsAction>,
    /// Only deliveries that contributed to this call id.
    #[arg(long, value_name = "ID")]
    call: Option<i64>,
    /// Show quarantined (unusable) bodies instead.
    #[arg(long)]
    quarantined: bool,
    /// How many to show (0 = all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum EventsAction {
    /// Run stored deliveries through today's parsers again (idempotent).
    Replay {
        /// The delivery id to replay.
        #[arg(required_unless_present_any = ["quarantined", "all"], conflicts_with_all = ["quarantined", "all"])]
        id: Option<i64>,
        /// Replay every open quarantine entry.
        #[arg(long, conflicts_with = "all")]
        quarantined: bool,
        /// Replay every stored delivery.
        #[arg(long)]
        all: bool,
    },
}

/// mimalloc (also serving SQLite through its `override` feature) halves the time the store
/// writer spends in allocation: see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_huge_pages();
    let cli = Cli::parse();
    callpop_ringcentral::install_crypto_provider();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            // Errors can quote what a remote server or a sender wrote.
            eprintln!("callpop: {}", shown(&format!("{e:#}")));
            1
        }
    };
    std::process::exit(code);
}

/// mimalloc marks its arenas for transparent huge pages, and a 2 MiB page is resident as soon
/// as one byte of it is touched: an idle `callpop serve` was at 25 MiB instead of 15 MiB. This
/// is what mimalloc's own `allow_thp = 0` does, which it reads before `main` runs.
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    // SAFETY: integer arguments only; it changes how this process's memory is paged.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}

fn run(cli: Cli) -> Result<()> {
    let overrides = |listen: Option<String>| Overrides {
        listen,
        data_dir: cli.global.data_dir.clone(),
        config_file: cli.global.config.clone(),
        environment: None,
    };
    match cli.command {
        Command::Serve { listen } => serve(Config::load(&overrides(listen))?),
        Command::Calls(args) => calls(&Config::load(&overrides(None))?, args),
        Command::Events(args) => events(&Config::load(&overrides(None))?, args),
        Command::Tokens { reveal } => tokens(&Config::load(&overrides(None))?, reveal),
        Command::Subscriptions { action } => subscriptions(Config::load(&overrides(None))?, action),
        Command::Status { json } => status(&Config::load(&overrides(None))?, json, None),
        Command::Tunnel {
            action: TunnelAction::Status,
        } => status(&Config::load(&overrides(None))?, false, Some("tunnel")),
        Command::Backfill { since, until } => {
            backfill(Config::load(&overrides(None))?, since, until)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written is dropped. By default tracing reports it with
        // `eprintln!`, which panics when stderr is a file on a full disk: the request in hand
        // lost its reply and the store writer thread died, so storage never came back.
        .log_internal_errors(false)
        .init();
}

fn serve(config: Config) -> Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Listen before the engine starts: its subscription keeper may ask RingCentral to
        // validate our webhook address straight away.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let engine = Engine::start(config.clone())?;
        let addr = listener.local_addr()?;
        print_banner(&engine, addr);
        let shutdown = engine.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            shutdown.cancel();
        });
        engine.run(listener).await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_banner(engine: &Engine, addr: std::net::SocketAddr) {
    let config = engine.config();
    let tokens = engine.tokens();
    let base = format!("http://{addr}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "CallPop {} is receiving webhooks.",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "  RingCentral webhook: {}",
        webhook_url(&base, Provider::RingCentral)
    );
    let _ = writeln!(
        out,
        "  Ringotel webhook:    {}",
        webhook_url(&base, Provider::Ringotel)
    );
    let _ = writeln!(out, "  Health:              {base}/healthz");
    let _ = writeln!(out, "  Call history:        {}", config.db_path().display());
    if config.watch_extensions.is_empty() {
        let _ = writeln!(out, "  Watching:            every extension of the account");
    } else {
        let _ = writeln!(
            out,
            "  Watching:            extensions {}",
            config.watch_extensions.join(", ")
        );
    }
    let generated = [
        (
            tokens.ringcentral_source,
            "RingCentral verification token",
            &tokens.ringcentral,
        ),
        (
            tokens.ringotel_source,
            "Ringotel api_token",
            &tokens.ringotel,
        ),
    ];
    if generated
        .iter()
        .any(|(s, _, _)| *s == TokenSource::Generated)
    {
        let _ = writeln!(
            out,
            "New webhook tokens were generated for this installation (kept in {}, readable only by you):",
            tokens.file.display()
        );
        for (source, label, token) in generated {
            if let (TokenSource::Generated, Some(t)) = (source, token) {
                let _ = writeln!(out, "  {label}: {}", t.expose());
            }
        }
    } else {
        let _ = writeln!(
            out,
            "  Webhook tokens:      set (`callpop tokens` shows them)"
        );
    }
    for (label, token) in [
        ("RingCentral", &tokens.ringcentral),
        ("Ringotel", &tokens.ringotel),
    ] {
        if token.is_none() {
            let _ = writeln!(
                out,
                "  WARNING: {label} deliveries are accepted without a token (disabled by an empty environment variable)."
            );
        }
    }
    let parts = engine.health().snapshot().parts;
    for (name, label) in [
        ("tunnel", "Public URL:         "),
        ("subscription", "RingCentral sub.:   "),
        ("notifications", "Popups:             "),
    ] {
        if let Some(part) = parts.get(name) {
            let _ = writeln!(out, "  {label} {} — {}", part.state, part.detail);
        }
    }
    // Last, so whoever waits for this line has the whole banner.
    let _ = writeln!(out, "Listening on {base}");
    let _ = out.flush();
}

fn open_history(config: &Config) -> Result<Store> {
    Ok(Store::open_existing(
        &config.db_path(),
        StoreOptions::new(config.default_country),
    )?)
}

/// Reads a time as people type it: RFC 3339, a local date, today/yesterday, or "2h" ago.
fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let s = s.trim();
    if let Some(t) = callpop_core::wire::parse_timestamp(s) {
        return Ok(t);
    }
    let local_midnight = |d: NaiveDate| -> Result<DateTime<Utc>> {
        let naive = d.and_hms_opt(0, 0, 0).context("invalid date")?;
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .context("that local time does not exist")
    };
    let today = now.with_timezone(&Local).date_naive();
    match s.to_ascii_lowercase().as_str() {
        "today" => return local_midnight(today),
        "yesterday" => return local_midnight(today.pred_opt().context("date out of range")?),
        _ => {}
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local_midnight(d);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .with_context(|| {
            format!("{s:?} is not a time (try 2026-11-23, today, 2h or an RFC 3339 time)")
        })?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().context("number too large")?;
    let unit_seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => bail!("unknown time unit {other:?} in {s:?} (use m, h, d or w)"),
    };
    n.checked_mul(unit_seconds)
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
        .context("time out of range")
}

fn rfc3339(t: Option<DateTime<Utc>>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    })
}

/// The documented JSON shape of a call in `callpop calls --json`.
fn call_json(r: &CallRecord) -> serde_json::Value {
    let c = &r.call;
    serde_json::json!({
        "id": r.id,
        "provider": c.provider.as_str(),
        "call_key": c.call_key,
        "direction": c.direction.as_str(),
        "state": c.state.as_str(),
        "result": c.result.map(|r| r.as_str()),
        "from": c.from.raw,
        "from_e164": c.from.e164,
        "from_name": c.from.name,
        "to": c.to.raw,
        "to_e164": c.to.e164,
        "to_name": c.to.name,
        "extensions": c.extensions,
        "started_at": rfc3339(Some(c.started_at)),
        "answered_at": rfc3339(c.answered_at),
        "ended_at": rfc3339(c.ended_at),
        "ring_seconds": c.ring_seconds,
        "talk_seconds": c.talk_seconds,
        "recording_url": c.recording_url,
        "voicemail_id": c.voicemail.as_ref().and_then(|v| v.message_id.clone()),
        "voicemail_seconds": c.voicemail.as_ref().and_then(|v| v.seconds),
        "voicemail_url": c.voicemail.as_ref().and_then(|v| v.url.clone()),
        "event_count": c.event_count,
        "last_event_at": rfc3339(Some(c.last_event_at)),
        "updated_at": rfc3339(Some(r.updated_at)),
    })
}

/// Text from a sender or a remote server as it may go to a terminal: control characters (which
/// move the cursor or recolour the screen) and bidi or zero-width characters (which reorder or
/// hide what follows on the line) are dropped. JSON output escapes them instead; CSV drops them
/// on a terminal and keeps them when written to a file or a pipe.
fn shown(text: &str) -> String {
    callpop_core::text::sanitize(text, usize::MAX)
}

/// `value` as one line of JSON that is safe on a terminal: the characters [`shown`] drops are
/// written as `\uXXXX` escapes instead (outside strings JSON has none), so the data is exact.
fn json_line(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.chars().any(callpop_core::text::is_invisible_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 32);
    for c in text.chars() {
        if callpop_core::text::is_invisible_control(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn party_label(number: &Option<String>, e164: &Option<String>, name: &Option<String>) -> String {
    let number = e164.clone().or_else(|| number.clone());
    match (name, number) {
        (Some(n), Some(num)) => format!("{n} {num}"),
        (Some(n), None) => n.clone(),
        (None, Some(num)) => num,
        (None, None) => "Unknown caller".into(),
    }
}

fn extensions_label(c: &Call) -> String {
    c.extensions
        .iter()
        .filter_map(|p| p.label())
        .collect::<Vec<_>>()
        .join(",")
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn calls(config: &Config, args: CallsArgs) -> Result<()> {
    let store = open_history(config)?;
    let now = Utc::now();
    let filter = CallFilter {
        search: args.search,
        since: args
            .since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        result: args.result.map(|r| match r {
            ResultArg::Answered => CallResult::Answered,
            ResultArg::Missed => CallResult::Missed,
            ResultArg::Voicemail => CallResult::Voicemail,
            ResultArg::NoAnswer => CallResult::NoAnswer,
        }),
        direction: args.direction.map(|d| match d {
            DirectionArg::Inbound => CallDirection::Inbound,
            DirectionArg::Outbound => CallDirection::Outbound,
            DirectionArg::Internal => CallDirection::Internal,
        }),
        extension: args.extension,
        any_extension: if args.mine {
            config.watch_extensions.clone()
        } else {
            Vec::new()
        },
        limit: args.limit,
        ..Default::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.csv {
        // A terminal gets names it cannot be driven by; a file or a pipe the exact text.
        let text = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            callpop_store::export::CsvText::Shown
        } else {
            callpop_store::export::CsvText::Exact
        };
        callpop_store::export::write_csv(&store, &filter, &config.line_labels, text, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    let records = store.calls(&filter)?;
    if args.json {
        for r in &records {
            writeln!(out, "{}", json_line(&call_json(r)))?;
        }
        out.flush()?;
        return Ok(());
    }
    if records.is_empty() {
        writeln!(out, "No calls match.")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<16}  {:<8}  {:<26}  {:<22}  {:<10}  {:<9}  {:>5}  {:>6}",
        "ID", "STARTED", "DIR", "FROM", "TO", "EXT", "RESULT", "RING", "TALK"
    )?;
    for r in &records {
        let c = &r.call;
        let result = c
            .result
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| c.state.as_str().to_string());
        writeln!(
            out,
            "{:>6}  {:<16}  {:<8}  {}  {}  {}  {:<9}  {:>4}s  {:>5}s",
            r.id,
            c.started_at.with_timezone(&Local).format("%Y-%m-%d %H:%M"),
            c.direction.as_str(),
            truncate(
                &shown(&party_label(&c.from.raw, &c.from.e164, &c.from.name)),
                26
            ),
            truncate(&shown(&party_label(&c.to.raw, &c.to.e164, &c.to.name)), 22),
            truncate(&shown(&extensions_label(c)), 10),
            result,
            c.ring_seconds,
            c.talk_seconds,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn body_json(body: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text)
            .unwrap_or_else(|_| serde_json::Value::String(text.to_string())),
        Err(_) => serde_json::json!({ "hex": hex::encode(body) }),
    }
}

fn events(config: &Config, args: EventsArgs) -> Result<()> {
    let mut store = open_history(config)?;
    let country = config.default_country;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(EventsAction::Replay {
        id,
        quarantined,
        all,
    }) = args.action
    {
        if quarantined {
            let results = replay::replay_quarantine(&mut store, &country)?;
            if results.is_empty() {
                writeln!(out, "No quarantined deliveries.")?;
            }
            for r in results {
                match r {
                    QuarantineReplay::Resolved {
                        quarantine_id,
                        outcome,
                    } => writeln!(
                        out,
                        "quarantine {quarantine_id}: stored ({})",
                        match outcome {
                            callpop_store::IngestOutcome::Stored { raw_event_id, .. } =>
                                format!("delivery {raw_event_id}"),
                            callpop_store::IngestOutcome::Duplicate { raw_event_id, .. } =>
                                format!("already stored as delivery {raw_event_id}"),
                        }
                    )?,
                    QuarantineReplay::StillInvalid {
                        quarantine_id,
                        reason,
                    } => writeln!(
                        out,
                        "quarantine {quarantine_id}: still unusable: {}",
                        shown(&reason)
                    )?,
                }
            }
            return Ok(out.flush()?);
        }
        let ids = if all {
            store.raw_event_ids()?
        } else {
            vec![id.context("give a delivery id, --quarantined or --all")?]
        };
        let (mut changed, mut failed) = (0usize, 0usize);
        for id in &ids {
            match replay::replay_raw_event(&mut store, *id, &country)? {
                Ok(changes) => {
                    changed += changes.iter().filter(|c| c.before != c.after).count();
                }
                Err(e) => {
                    failed += 1;
                    writeln!(
                        out,
                        "delivery {id}: cannot be read by this version: {}",
                        shown(&e.to_string())
                    )?;
                }
            }
        }
        writeln!(
            out,
            "Replayed {} deliver{}: {changed} call{} changed, {failed} unreadable.",
            ids.len(),
            if ids.len() == 1 { "y" } else { "ies" },
            if changed == 1 { "" } else { "s" },
        )?;
        return Ok(out.flush()?);
    }
    if args.quarantined {
        let records = store.quarantined(false, args.limit)?;
        for q in &records {
            if args.json {
                let line = serde_json::json!({
                    "id": q.id,
                    "provider": q.provider.as_str(),
                    "received_at": rfc3339(Some(q.received_at)),
                    "last_received_at": rfc3339(Some(q.last_received_at)),
                    "occurrences": q.occurrences,
                    "reason": q.reason,
                    "resolved_at": rfc3339(q.resolved_at),
                    "headers": q.headers,
                    "body": body_json(&q.body),
                });
                writeln!(out, "{}", json_line(&line))?;
            } else {
                writeln!(
                    out,
                    "{:>6}  {}  {:<11}  x{:<3} {}{}",
                    q.id,
                    q.last_received_at
                        .with_timezone(&Local)
                        .format("%Y-%m-%d %H:%M:%S"),
                    q.provider.as_str(),
                    q.occurrences,
                    shown(&q.reason),
                    if q.resolved_at.is_some() {
                        "  (resolved)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if records.is_empty() && !args.json {
            writeln!(out, "Nothing in quarantine.")?;
        }
        return Ok(out.flush()?);
    }
    let records = store.events(&EventFilter {
        call_id: args.call,
        limit: args.limit,
    })?;
    for e in &records {
        if args.json {
            let line = serde_json::json!({
                "id": e.id,
                "provider": e.provider.as_str(),
                "dedup_key": e.dedup_key,
                "kind": e.kind,
                "received_at": rfc3339(Some(e.received_at)),
                "event_time": rfc3339(e.event_time),
                "redeliveries": e.redeliveries,
                "call_ids": e.call_ids,
                "headers": e.headers,
                "body": body_json(&e.body),
            });
            writeln!(out, "{}", json_line(&line))?;
        } else {
            writeln!(
                out,
                "{:>6}  {}  {:<11}  {:<20}  calls {:?}{}",
                e.id,
                e.received_at
                    .with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M:%S"),
                e.provider.as_str(),
                shown(&e.kind),
                e.call_ids,
                if e.redeliveries > 0 {
                    format!("  (+{} re-deliveries)", e.redeliveries)
                } else {
                    String::new()
                }
            )?;
        }
    }
    if records.is_empty() && !args.json {
        writeln!(out, "No deliveries stored.")?;
    }
    Ok(out.flush()?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The RingCentral client from the configuration, or a clear message about what is missing.
fn platform(config: &mut Config) -> Result<std::sync::Arc<callpop_ringcentral::api::Platform>> {
    callpop_engine::secrets::complete_platform_credentials(config)?;
    let rc = &config.ringcentral;
    let (Some(client_id), Some(client_secret), Some(jwt)) = (
        rc.client_id.clone(),
        rc.client_secret.clone(),
        rc.jwt.clone(),
    ) else {
        bail!(
            "RingCentral credentials are not set: set CALLPOP_RINGCENTRAL_CLIENT_ID, \
             CALLPOP_RINGCENTRAL_CLIENT_SECRET and CALLPOP_RINGCENTRAL_JWT (or the desktop settings)"
        );
    };
    Ok(std::sync::Arc::new(
        callpop_ringcentral::api::Platform::new(
            &rc.server,
            callpop_ringcentral::api::Credentials {
                client_id,
                client_secret,
                jwt,
            },
            config.clock,
        )?,
    ))
}

fn subscriptions(mut config: Config, action: SubscriptionAction) -> Result<()> {
    use callpop_engine::subscriptions::{Keeper, KeeperSettings, KeeperState};
    let platform = platform(&mut config)?;
    let tokens = callpop_engine::secrets::webhook_tokens(&config)?;
    let state: KeeperState = open_history(&config)
        .ok()
        .and_then(|s| {
            s.state_get(callpop_engine::subscriptions::STATE_KEY)
                .ok()
                .flatten()
        })
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    let mut keeper = Keeper::new(
        platform,
        KeeperSettings {
            public_url: config.public_url.clone(),
            event_filters: config.ringcentral.event_filters.clone(),
            expires_in: config.ringcentral.subscription_expires_in,
            verification_token: tokens.ringcentral,
            check_interval: config.ringcentral.check_interval,
        },
        config.clock,
        state,
    );
    runtime()?.block_on(async {
        match action {
            SubscriptionAction::List { json } => {
                let ours = keeper.ours().await?;
                if ours.is_empty() && !json {
                    println!("No CallPop subscriptions.");
                }
                for s in ours {
                    if json {
                        println!(
                            "{}",
                            json_line(&serde_json::json!({
                                "id": s.id, "status": s.status, "address": s.delivery_mode.address,
                                "expiration_time": s.expiration_time, "event_filters": s.event_filters,
                                "blacklisted_reason": s.blacklisted_data.as_ref().and_then(|b| b.reason.clone()),
                            }))
                        );
                    } else {
                        println!(
                            "{}  {:<11}  expires {}  {}",
                            shown(&s.id),
                            shown(&s.status),
                            shown(s.expiration_time.as_deref().unwrap_or("-")),
                            shown(s.delivery_mode.address.as_deref().unwrap_or("-"))
                        );
                    }
                }
            }
            SubscriptionAction::Ensure => {
                let e = keeper.ensure(false).await?;
                println!(
                    "Subscription {} is Active until {}{}{}",
                    shown(&e.subscription_id),
                    e.expires_at.map_or("-".into(), |t| t.to_rfc3339()),
                    if e.created { " (created)" } else if e.renewed { " (renewed)" } else { "" },
                    if e.deleted.is_empty() {
                        String::new()
                    } else {
                        format!("; deleted {}", shown(&e.deleted.join(", ")))
                    }
                );
                if let Ok(store) = open_history(&config) {
                    store.state_set(
                        callpop_engine::subscriptions::STATE_KEY,
                        &serde_json::to_string(keeper.state())?,
                    )?;
                }
            }
            SubscriptionAction::Delete { id } => {
                keeper.delete(&id).await?;
                println!("Deleted subscription {id}.");
            }
        }
        Ok(())
    })
}

fn backfill(mut config: Config, since: String, until: Option<String>) -> Result<()> {
    let platform = platform(&mut config)?;
    let now = config.clock.now();
    let from = parse_time(&since, now)?;
    let to = until
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()?
        .unwrap_or(now);
    if from >= to {
        bail!("--since must be before --until");
    }
    let store = Store::open(&config.db_path(), StoreOptions::new(config.default_country))?;
    let (changes, _) = tokio::sync::broadcast::channel(16);
    let (writer, thread) = callpop_store::writer::StoreWriter::spawn(store, changes)?;
    let report = runtime()?.block_on(callpop_engine::backfill::run_once(
        &platform,
        &writer,
        &config.default_country,
        &config.clock,
        from,
        to,
    ));
    drop(writer);
    let _ = thread.join();
    let report = report?;
    println!(
        "Read {} call-log record{} in {} page{}: {} new, {} call{} added ({} missed), {} unreadable.",
        report.records,
        if report.records == 1 { "" } else { "s" },
        report.pages,
        if report.pages == 1 { "" } else { "s" },
        report.stored,
        report.new_calls,
        if report.new_calls == 1 { "" } else { "s" },
        report.new_missed,
        report.unreadable
    );
    Ok(())
}

/// Reads /healthz from the running server on the configured address.
fn status(config: &Config, json: bool, only: Option<&str>) -> Result<()> {
    let url = format!("http://{}/healthz", config.listen);
    let body: serde_json::Value = runtime()?.block_on(async {
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .with_context(|| {
                format!(
                    "CallPop is not running at {} (start it with `callpop serve`)",
                    config.listen
                )
            })?;
        response
            .json::<serde_json::Value>()
            .await
            .context("the running CallPop sent an unreadable status")
    })?;
    if json {
        println!("{}", json_line(&body));
        return Ok(());
    }
    let parts = body["parts"].as_object().cloned().unwrap_or_default();
    if let Some(name) = only {
        let part = &parts.get(name).cloned().unwrap_or_default();
        println!(
            "{name}: {} — {}",
            shown(part["state"].as_str().unwrap_or("unknown")),
            shown(part["detail"].as_str().unwrap_or(""))
        );
        if name == "tunnel" {
            println!(
                "public URL: {}",
                shown(body["public_url"].as_str().unwrap_or("(none)"))
            );
        }
        return Ok(());
    }
    println!(
        "CallPop {} — {}",
        shown(body["version"].as_str().unwrap_or("?")),
        shown(body["status"].as_str().unwrap_or("?"))
    );
    println!(
        "  listening on {}",
        shown(body["listen"].as_str().unwrap_or("?"))
    );
    println!(
        "  public URL:  {}",
        shown(body["public_url"].as_str().unwrap_or("(none)"))
    );
    for provider in ["ringcentral", "ringotel"] {
        let c = &body[provider];
        println!(
            "  {provider}: {} accepted, {} duplicates, {} unauthorized, {} rejected, {} quarantined",
            c["accepted"], c["duplicates"], c["unauthorized"], c["rejected"], c["quarantined"]
        );
    }
    if let Some(e) = body["storage_error"].as_str() {
        println!("  STORAGE: {}", shown(e));
    }
    for (name, part) in parts {
        println!(
            "  {}: {} — {}",
            shown(&name),
            shown(part["state"].as_str().unwrap_or("?")),
            shown(part["detail"].as_str().unwrap_or(""))
        );
    }
    Ok(())
}

fn tokens(config: &Config, reveal: bool) -> Result<()> {
    let tokens = callpop_engine::secrets::webhook_tokens(config)?;
    let show = |t: &Option<callpop_core::Secret>| match t {
        None => "(none: deliveries are not checked)".to_string(),
        Some(t) if reveal => t.expose().to_string(),
        Some(t) => {
            let head: String = t.expose().chars().take(4).collect();
            format!("{head}… (--reveal prints it)")
        }
    };
    let source = |s: TokenSource| match s {
        TokenSource::Environment => "environment".to_string(),
        TokenSource::File | TokenSource::Generated => tokens.file.display().to_string(),
    };
    println!(
        "RingCentral verification token: {}  [{}]",
        show(&tokens.ringcentral),
        source(tokens.ringcentral_source)
    );
    println!(
        "Ringotel api_token:             {}  [{}]",
        show(&tokens.ringotel),
        source(tokens.ringotel_source)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form_people_type() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .single()
            .expect("time");
        assert_eq!(
            parse_time("2h", now).expect("2h"),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_time("7d", now).expect("7d"),
            now - chrono::Duration::days(7)
        );
        assert_eq!(
            parse_time("2026-11-20T10:00:00Z", now).expect("rfc3339"),
            Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
                .single()
                .expect("time")
        );
        assert!(parse_time("2026-11-20", now).is_ok());
        assert!(parse_time("today", now).is_ok());
        assert!(parse_time("soon", now).is_err());
        assert!(parse_time("5y", now).is_err());
        assert!(parse_time("99999999999999999999h", now).is_err());
    }

    #[test]
    fn provider_text_cannot_reorder_or_drive_the_terminal() {
        let evil = "Bob \u{202E}exe.txt\u{202C} \u{1b}[2J\u{9b}31m\u{7f}\u{2066}x\u{2069}\u{200B}\nnext <b>";
        let line = shown(evil);
        assert_eq!(line, "Bob exe.txt [2J31mx next <b>");
        assert!(!line.chars().any(callpop_core::text::is_invisible_control));
        // The table cuts after cleaning, so a hidden character never counts towards the width.
        assert_eq!(truncate(&shown("\u{202E}\u{202E}abc"), 3), "abc");
    }

    #[test]
    fn json_lines_escape_what_could_disturb_a_terminal_and_keep_the_data() {
        let value = serde_json::json!({
            "from_name": "Bob \u{202E}exe.txt\u{202C}\u{7f}\u{9b}\u{0}\u{1b}[2J",
            "note": "plain café ☎",
            "\u{202E}key": [1, "\u{2067}"],
        });
        let line = json_line(&value);
        assert!(
            !line
                .chars()
                .any(|c| callpop_core::text::is_invisible_control(c) || c == '\n'),
            "{line:?}"
        );
        assert!(line.contains("\\u202e") && line.contains("\\u007f") && line.contains("\\u009b"));
        assert!(
            line.contains("plain café ☎"),
            "ordinary text is left alone: {line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(back, value);
        let plain = serde_json::json!({"a": "b"});
        assert_eq!(json_line(&plain), plain.to_string());
    }
}
