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
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        "[popups]\nanswered_close_seconds = 0\nmax_on_screen = 20\n",
    )?;
    let mut env: Vec<(String, String)> = vec![
        ("CALLPOP_NOTIFICATIONS".into(), "on".into()),
        ("CALLPOP_CONFIG".into(), config.display().to_string()),
    ];
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
