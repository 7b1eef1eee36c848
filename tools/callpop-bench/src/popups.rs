//! Webhook → popup latency: a real `callpop serve` with a real notification daemon (dunst on
//! Xvfb, private D-Bus session); dbus-monitor timestamps when each `Notify` returned.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use desktop_session::DesktopSession;

use crate::http::Conn;
use crate::load::{percentile, RC_PATH, RC_TOKEN};
use crate::serve::{temp_dir, Serve};

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn event(session: &str, seq: i64, code: &str) -> Vec<u8> {
    use callpop_testkit::payloads::{
        rc_desk_call_body, rc_notification, DESK_EXTENSION_ID, TELEPHONY_EVENT,
    };
    let now = chrono::Utc::now();
    rc_notification(
        &format!("{session}-{seq}"),
        TELEPHONY_EVENT,
        now,
        "bench-subscription",
        DESK_EXTENSION_ID,
        rc_desk_call_body(session, seq, code, "JANE ROE", now),
    )
    .to_string()
    .into_bytes()
}

/// Popups on, answered ones closed at once, room for 20 on screen: a config file in `dir` and
/// the environment that points CallPop at it.
fn popup_env(dir: &Path) -> Result<Vec<(String, String)>> {
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        "[popups]\nanswered_close_seconds = 0\nmax_on_screen = 20\n",
    )?;
    Ok(vec![
        ("CALLPOP_NOTIFICATIONS".into(), "on".into()),
        ("CALLPOP_CONFIG".into(), config.display().to_string()),
    ])
}

/// Popup latency figures, in milliseconds.
pub struct PopupLatency {
    /// Webhook sent → `Notify` on the bus (CallPop's own part), p50.
    pub sent_p50: f64,
    /// Same, p99.
    pub sent_p99: f64,
    /// Webhook sent → `Notify` returned by the daemon, p50.
    pub returned_p50: f64,
    /// Same, p99.
    pub returned_p99: f64,
    /// Calls measured.
    pub calls: usize,
}

/// Latency from a delivery arriving to `Notify` being sent and returning, over `calls` calls
/// placed one at a time (each popup is answered and closed before the next call rings, as on
/// a real desk).
pub async fn latency(callpop: &Path, calls: usize) -> Result<PopupLatency> {
    let desktop = tokio::task::spawn_blocking(DesktopSession::start)
        .await
        .context("desktop session")?;
    let dir = temp_dir()?;
    let mut env = popup_env(dir.path())?;
    env.extend(desktop.env());
    let serve = Serve::start(callpop, dir.path(), 0, &env)?;
    let mut conn = Conn::new(serve.port);
    let headers = [
        ("Content-Type", "application/json"),
        ("Verification-Token", RC_TOKEN),
    ];
    let mut sent = Vec::with_capacity(calls);
    for i in 0..calls {
        let session = format!("s-pop-{i:06}");
        sent.push(now_epoch());
        let (status, _) = conn
            .post(RC_PATH, &headers, &event(&session, 1, "Proceeding"))
            .await?;
        if status != 200 {
            bail!("delivery refused: {status}");
        }
        // Wait for this popup before the next call, so each measurement stands alone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while desktop
            .notifies()
            .iter()
            .filter(|n| n.replaces_id == 0 && n.returned_at.is_some())
            .count()
            <= i
        {
            if std::time::Instant::now() > deadline {
                bail!("popup {i} never appeared");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        conn.post(RC_PATH, &headers, &event(&session, 2, "Answered"))
            .await?;
        // Let the answered popup close before the next call rings.
        let id = desktop
            .notifies()
            .iter()
            .filter(|n| n.replaces_id == 0)
            .nth(i)
            .and_then(|n| n.id);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline
            && !desktop
                .seen()
                .iter()
                .any(|s| matches!(s, desktop_session::Seen::Close(c) if Some(*c) == id))
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shown: Vec<(f64, f64)> = desktop
        .notifies()
        .iter()
        .filter(|n| n.replaces_id == 0)
        .filter_map(|n| n.returned_at.map(|r| (n.called_at, r)))
        .collect();
    let micros = |secs: f64| (secs.max(0.0) * 1_000_000.0) as u64;
    let mut to_sent: Vec<u64> = shown
        .iter()
        .zip(&sent)
        .map(|((c, _), s)| micros(c - s))
        .collect();
    let mut to_returned: Vec<u64> = shown
        .iter()
        .zip(&sent)
        .map(|((_, r), s)| micros(r - s))
        .collect();
    to_sent.sort_unstable();
    to_returned.sort_unstable();
    serve.stop()?;
    let ms = |v: &[u64], p: f64| percentile(v, p) as f64 / 1000.0;
    Ok(PopupLatency {
        sent_p50: ms(&to_sent, 50.0),
        sent_p99: ms(&to_sent, 99.0),
        returned_p50: ms(&to_returned, 50.0),
        returned_p99: ms(&to_returned, 99.0),
        calls: to_returned.len(),
    })
}

/// Calls start this far apart (each lasts 4 s: at most 16 ring at once, fewer than the 20
/// popups allowed on screen).
const CALL_SPACING_MS: i64 = 250;

/// Event-sent-by-the-platform → popup latency for one transport, in milliseconds.
pub struct TransportLatency {
    /// `websocket` or `webhook`.
    pub transport: &'static str,
    /// Event sent by the fake → `Notify` on the bus, p50.
    pub p50: f64,
    /// Same, p99.
    pub p99: f64,
    /// Calls measured.
    pub calls: usize,
}

/// The same calls from the fake RingCentral platform, through a real `callpop serve` over
/// RingCentral's WebSocket and then over a webhook subscription, in one run: from the moment
/// the fake sends the event that makes a call ring at the desk to the `Notify` on the bus.
pub async fn transport_latency(callpop: &Path, calls: usize) -> Result<Vec<TransportLatency>> {
    use fake_ringcentral::{CallOutcome, FakeConfig, FakePlatform, ScriptedCall};
    let desktop = tokio::task::spawn_blocking(DesktopSession::start)
        .await
        .context("desktop session")?;
    let fake = FakePlatform::start(FakeConfig::new(callpop_clock::Clock::real()))
        .await
        .context("fake RingCentral")?;
    let (id, secret, jwt) = fake.credentials();
    let mut out = Vec::new();
    for (round, transport) in ["websocket", "webhook"].into_iter().enumerate() {
        let dir = temp_dir()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let mut env = popup_env(dir.path())?;
        env.extend([
            ("CALLPOP_RINGCENTRAL_SERVER".into(), fake.url().into()),
            ("CALLPOP_RINGCENTRAL_CLIENT_ID".into(), id.clone()),
            ("CALLPOP_RINGCENTRAL_CLIENT_SECRET".into(), secret.clone()),
            ("CALLPOP_RINGCENTRAL_JWT".into(), jwt.clone()),
            ("CALLPOP_RINGCENTRAL_TRANSPORT".into(), transport.into()),
        ]);
        if transport == "webhook" {
            env.push(("CALLPOP_TUNNEL".into(), "provided".into()));
            env.push((
                "CALLPOP_PUBLIC_URL".into(),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        env.extend(desktop.env());
        let serve = Serve::start(callpop, dir.path(), port, &env)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let ready = || match transport {
            "websocket" => fake.ws_subscriptions().len() == 1,
            _ => fake.subscriptions().iter().any(|s| s.status == "Active"),
        };
        while !ready() {
            if std::time::Instant::now() > deadline {
                bail!("callpop serve never subscribed over {transport}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The start-up backfill reads the call log; let it pass before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seen_before = desktop.notifies().len();
        let start = chrono::Utc::now() + chrono::Duration::milliseconds(500);
        let names: Vec<String> = (0..calls).map(|i| format!("Dana W{round}{i:04}")).collect();
        for (i, name) in names.iter().enumerate() {
            let mut call = ScriptedCall::to_owner(
                start + chrono::Duration::milliseconds(CALL_SPACING_MS * i as i64),
                &format!("+1415{round}55{i:04}"),
                // Answered at once: its popup closes, so no call waits for a place on screen.
                CallOutcome::Answered { ring: 1, talk: 1 },
            );
            call.from_name = Some(name.clone());
            fake.schedule(call);
        }
        let wait_until = std::time::Instant::now()
            + Duration::from_millis(CALL_SPACING_MS as u64 * calls as u64)
            + Duration::from_secs(10);
        // This round's popups (a call of the previous round may still end meanwhile).
        let popped = |desktop: &DesktopSession| {
            desktop.notifies()[seen_before..]
                .iter()
                .filter(|n| n.replaces_id == 0)
                .filter(|n| names.iter().any(|name| n.summary.contains(name.as_str())))
                .count()
        };
        while popped(&desktop) < calls && std::time::Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every call of the round over before the next starts.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let sent = fake.sent_events();
        let notifies = desktop.notifies();
        // Each new popup is matched to its call by the caller's name, and to the latest event
        // of that call sent before it: the one that made it ring.
        let mut micros: Vec<u64> = Vec::new();
        let sessions: std::collections::HashMap<String, String> = fake
            .call_log()
            .iter()
            .filter_map(|e| {
                Some((
                    e.record["from"]["name"].as_str()?.to_string(),
                    e.record["telephonySessionId"].as_str()?.to_string(),
                ))
            })
            .collect();
        for n in notifies[seen_before..]
            .iter()
            .filter(|n| n.replaces_id == 0)
        {
            let Some(name) = names.iter().find(|name| n.summary.contains(name.as_str())) else {
                continue;
            };
            let Some(session) = sessions.get(name) else {
                continue;
            };
            let trigger = sent
                .iter()
                .filter(|s| s.transport == transport && &s.session == session)
                .filter(|s| s.at <= n.called_at)
                .map(|s| s.at)
                .fold(f64::MIN, f64::max);
            if trigger > f64::MIN {
                micros.push(((n.called_at - trigger).max(0.0) * 1_000_000.0) as u64);
            }
        }
        let shown = popped(&desktop);
        if shown < calls {
            eprintln!("over {transport}: {shown} of {calls} calls popped up");
        }
        serve.stop()?;
        if micros.is_empty() {
            bail!("no popup over {transport} could be matched to its event");
        }
        micros.sort_unstable();
        let ms = |p: f64| percentile(&micros, p) as f64 / 1000.0;
        out.push(TransportLatency {
            transport,
            p50: ms(50.0),
            p99: ms(99.0),
            calls: micros.len(),
        });
    }
    Ok(out)
}
