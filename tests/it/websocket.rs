//! RingCentral over its WebSocket transport, end to end: the real `callpop serve` opens a real
//! WebSocket to the fake platform (tools/fake-ringcentral) on 127.0.0.1, both on one simulated
//! clock. No public URL and no webhook subscription are involved unless a test says so.

use std::time::Duration as StdDuration;

use crate::common::health;
use crate::platform::{rig_with, Rig};
use chrono::{DateTime, Duration, Utc};
use fake_ringcentral::{CallOutcome, Group, ScriptedCall};

/// Waits until CallPop holds one live WebSocket subscription.
fn wait_subscribed(rig: &Rig) {
    rig.wait(
        "a WebSocket subscription",
        StdDuration::from_secs(30),
        || rig.fake.ws_subscriptions().len() == 1,
    );
}

/// Places calls `first..first + n`, one every `every`, from `at`; returns when the last ends.
fn place_calls(rig: &Rig, first: u64, n: u64, at: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let mut end = at;
    for i in 0..n {
        let start = at + every * i as i32;
        let call = ScriptedCall::to_owner(
            start,
            &format!("+1415555{:04}", (first + i) % 10_000),
            CallOutcome::Answered { ring: 5, talk: 30 },
        );
        end = end.max(call.end());
        rig.fake.schedule(call);
    }
    end
}

/// Raw deliveries stored per telephony event (session, sequence): more than one would be a
/// double the content key should have stopped.
fn doubled_events(rig: &Rig) -> i64 {
    crate::common::count(
        rig.dir.path(),
        "SELECT count(*) FROM (SELECT content_key FROM raw_events WHERE content_key IS NOT NULL
         GROUP BY content_key HAVING count(*) > 1)",
    )
}

/// Waits until the history holds exactly the platform's calls with their results (a backfill
/// may still be correcting them), then says which differ if they never do.
fn wait_history_true(rig: &Rig, timeout: StdDuration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (have, truth) = (rig.history(), rig.truth());
        if have == truth {
            return;
        }
        if std::time::Instant::now() > deadline {
            let wrong: Vec<_> = truth.iter().filter(|t| !have.contains(t)).collect();
            let extra: Vec<_> = have.iter().filter(|h| !truth.contains(h)).collect();
            let conn = crate::common::db(rig.dir.path());
            let told: Vec<String> = wrong
                .iter()
                .map(|(session, _)| {
                    let mut stmt = conn
                        .prepare(
                            "SELECT r.kind, json_extract(r.body, '$.body.sequence'),
                                    json_extract(r.body, '$.body.parties[0].status.code'),
                                    r.headers LIKE '%websocket%'
                             FROM raw_events r JOIN call_events e ON e.raw_event_id = r.id
                             JOIN calls c ON c.id = e.call_id WHERE c.call_key = ?1
                             ORDER BY r.id",
                        )
                        .expect("sql");
                    let rows: Vec<String> = stmt
                        .query_map([session], |r| {
                            Ok(format!(
                                "{}:{:?}:{:?}:{}",
                                r.get::<_, String>(0)?,
                                r.get::<_, Option<i64>>(1)?,
                                r.get::<_, Option<String>>(2)?,
                                if r.get::<_, bool>(3)? { "ws" } else { "-" }
                            ))
                        })
                        .expect("rows")
                        .collect::<Result<_, _>>()
                        .expect("rows");
                    format!("{session}: {}", rows.join(" "))
                })
                .collect();
            panic!(
                "history differs from the platform: {} of {} calls wrong or missing {wrong:?}; \
                 not on the platform: {extra:?}; what the history has: {told:#?}; platform {:#?}",
                wrong.len(),
                truth.len(),
                rig.fake.stats()
            );
        }
        std::thread::sleep(StdDuration::from_millis(100));
    }
}

/// Whether CallPop asked for the gap of a WebSocket drop to be filled from the call log (its
/// log names why; the start-up backfill and its follow-ups read the call log too, so the
/// platform's reads alone cannot tell).
fn gap_fill_requested(server: &crate::common::Server) -> bool {
    let log = server.log();
    log.contains("backfill requested")
        && (log.contains("the WebSocket session could not be recovered")
            || log.contains("events may have been lost before the WebSocket recovered"))
}

fn websocket_part(port: u16) -> serde_json::Value {
    health(port)["parts"]["websocket"].clone()
}

#[test]
fn calls_arrive_over_the_websocket_with_no_public_url() {
    let mut rig = rig_with("websocket", 60.0, |_| {});
    // Every part at its most verbose: no token may reach the log.
    rig.extra_env.push((
        "RUST_LOG".into(),
        "trace,tungstenite::protocol=trace,tungstenite::handshake::client=trace".into(),
    ));
    let server = rig.start();
    wait_subscribed(&rig);
    let h = health(server.port);
    assert_eq!(h["ringcentral_transport"], "websocket", "{h:#}");
    assert_eq!(h["parts"]["websocket"]["state"], "active", "{h:#}");
    assert_eq!(
        h["status"], "ok",
        "receiving without a public address: {h:#}"
    );
    assert!(h["public_url"].is_null(), "{h:#}");
    let status = rig.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("RingCentral sends calls by: WebSocket")
            && text.contains("websocket: active"),
        "{text}"
    );

    let end = place_calls(
        &rig,
        1,
        3,
        rig.clock.now() + Duration::seconds(5),
        Duration::seconds(20),
    );
    rig.wait_until(end + Duration::seconds(5));
    rig.wait("three calls", StdDuration::from_secs(20), || {
        rig.history().len() == 3
    });
    let stats = rig.fake.stats();
    wait_history_true(&rig, StdDuration::from_secs(10));
    // A drop makes CallPop take a new token and recover with its wsc token.
    rig.fake.drop_ws_connections();
    rig.wait("recovered", StdDuration::from_secs(20), || {
        rig.fake.stats().ws_recovered == 1 && rig.fake.ws_subscriptions().len() == 1
    });
    let log = server.log();
    server.stop();
    for secret in [
        "fake-ws-",
        "fake-wsc-",
        "fake-refresh-",
        "fake-access-",
        "fake.jwt",
    ] {
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(leaks.is_empty(), "{secret} in the log: {leaks:#?}");
    }
    assert!(
        log.contains("RingCentral WebSocket"),
        "the log is the verbose one"
    );
    assert!(
        rig.fake.subscriptions().is_empty(),
        "no webhook subscription"
    );
    assert_eq!(stats.ws_most_open, 1, "one connection at a time: {stats:?}");
    assert_eq!(
        crate::common::count(
            rig.dir.path(),
            "SELECT count(*) FROM raw_events WHERE headers LIKE '%websocket%'"
        ),
        stats.ws_delivered as i64,
        "every event sent was stored, marked as come over the WebSocket"
    );
}

#[test]
fn a_simulated_week_reconnects_every_day_and_loses_nothing() {
    // 12,000 x: a week in under a minute. The gateway closes every connection after 24 h
    // (WSG-903); a client that sent nothing for 30 minutes would be closed too (WSG-902).
    let rig = rig_with("websocket", 12_000.0, |c| c.ws_token_ttl = 86_400);
    let server = rig.start();
    wait_subscribed(&rig);
    let start = rig.clock.now() + Duration::minutes(5);
    let week = Duration::days(7) + Duration::hours(2);
    let mut n = 0u64;
    let mut t = start;
    while t < start + week {
        rig.place(n, t);
        n += 1;
        t += Duration::minutes(45);
    }
    rig.wait_until(start + week + Duration::minutes(30));
    rig.wait("every call", StdDuration::from_secs(30), || {
        rig.history().len() as u64 >= n
    });
    wait_history_true(&rig, StdDuration::from_secs(20));
    let stats = rig.fake.stats();
    server.stop();
    assert!(
        stats.ws_absolute_closed >= 6,
        "closed daily at the absolute timeout: {stats:?}"
    );
    // Each daily reconnection asks to recover the session. At 12,000 x the 180-second
    // recovery window is 15 ms of real time, so whether it still could is left to chance
    // here (a_short_drop… tests recovery); nothing is lost either way.
    assert!(
        stats.ws_recovered + stats.ws_recovery_failed >= 6,
        "reconnected with wsc: {stats:?}"
    );
    assert_eq!(
        stats.ws_idle_closed, 0,
        "heartbeats kept it from idling: {stats:?}"
    );
    assert_eq!(stats.ws_pong_missed, 0, "pings answered: {stats:?}");
    assert_eq!(stats.ws_most_open, 1, "never two connections: {stats:?}");
    assert!(stats.ws_heartbeats > 0, "{stats:?}");
    assert!(
        stats.refreshes > 0 && stats.tokens <= 2,
        "the OAuth session is refreshed, not signed in again every hour: {stats:?}"
    );
    assert_eq!(doubled_events(&rig), 0);
}

#[test]
fn a_short_drop_is_recovered_with_nothing_lost_and_no_backfill() {
    let rig = rig_with("websocket", 60.0, |_| {});
    let server = rig.start();
    wait_subscribed(&rig);
    // A 60-second outage (the session stays recoverable for 180 s) with calls during it.
    let drop_at = rig.clock.now();
    rig.fake.ws_outage_until(drop_at + Duration::seconds(60));
    rig.fake.drop_ws_connections();
    let end = place_calls(
        &rig,
        10,
        3,
        drop_at + Duration::seconds(5),
        Duration::seconds(15),
    );
    rig.wait_until(end + Duration::seconds(30));
    rig.wait("the calls of the drop", StdDuration::from_secs(20), || {
        rig.history().len() == 3
    });
    let stats = rig.fake.stats();
    assert_eq!(stats.ws_recovered, 1, "{stats:?}");
    assert!(stats.ws_replayed > 0, "missed events replayed: {stats:?}");
    assert!(!gap_fill_requested(&server), "no backfill was needed");
    assert_eq!(websocket_part(server.port)["state"], "active");
    wait_history_true(&rig, StdDuration::from_secs(10));
    server.stop();
    assert_eq!(doubled_events(&rig), 0);
}

#[test]
fn a_drop_longer_than_the_recovery_timeout_is_backfilled_without_duplicates() {
    let rig = rig_with("websocket", 60.0, |_| {});
    let server = rig.start();
    wait_subscribed(&rig);
    let drop_at = rig.clock.now();
    rig.fake.ws_outage_until(drop_at + Duration::minutes(6));
    rig.fake.drop_ws_connections();
    place_calls(
        &rig,
        20,
        4,
        drop_at + Duration::seconds(10),
        Duration::seconds(30),
    );
    // After the outage: a new session (recovery failed), and the gap from the call log.
    rig.wait(
        "the calls of the outage",
        StdDuration::from_secs(40),
        || rig.history().len() == 4,
    );
    let end = place_calls(
        &rig,
        30,
        2,
        rig.clock.now() + Duration::seconds(5),
        Duration::seconds(10),
    );
    rig.wait_until(end + Duration::seconds(5));
    rig.wait("calls after it, live", StdDuration::from_secs(20), || {
        rig.history().len() == 6
    });
    let stats = rig.fake.stats();
    // Too late to recover: a new session, subscribed again.
    assert_eq!(stats.ws_recovered, 0, "{stats:?}");
    assert_eq!(stats.ws_subscriptions, 2, "{stats:?}");
    assert_eq!(stats.ws_most_open, 1, "{stats:?}");
    wait_history_true(&rig, StdDuration::from_secs(20));
    rig.wait("the gap was backfilled", StdDuration::from_secs(20), || {
        gap_fill_requested(&server)
    });
    server.stop();
    assert_eq!(doubled_events(&rig), 0);
}

#[test]
fn more_events_than_the_recovery_buffer_during_a_drop_are_backfilled() {
    let rig = rig_with("websocket", 60.0, |_| {});
    let server = rig.start();
    wait_subscribed(&rig);
    let drop_at = rig.clock.now();
    rig.fake.ws_outage_until(drop_at + Duration::seconds(90));
    rig.fake.drop_ws_connections();
    // 20 calls of 7 events each: 140 events, more than the 100 the gateway keeps.
    place_calls(
        &rig,
        40,
        20,
        drop_at + Duration::seconds(2),
        Duration::seconds(2),
    );
    rig.wait("every call of the drop", StdDuration::from_secs(40), || {
        rig.history().len() == 20
    });
    let stats = rig.fake.stats();
    assert_eq!(stats.ws_recovered, 1, "{stats:?}");
    assert_eq!(
        stats.ws_replayed, 100,
        "the gateway replays at most 100: {stats:?}"
    );
    // The rest comes from the call log once it has the calls.
    wait_history_true(&rig, StdDuration::from_secs(20));
    rig.wait("the gap was backfilled", StdDuration::from_secs(20), || {
        gap_fill_requested(&server)
    });
    server.stop();
    assert_eq!(
        doubled_events(&rig),
        0,
        "replayed and backfilled, stored once"
    );
}

/// Calls in the switching test.
const CALLS: i64 = 12;

#[test]
fn auto_switches_from_webhook_to_websocket_and_back_without_doubles() {
    // The app starts without the permission: auto keeps a webhook subscription. A real
    // notification daemon shows the popups.
    let desktop = desktop_session::DesktopSession::start();
    let mut rig = rig_with("auto", 600.0, |c| c.websocket_permission = false);
    let config = rig.dir.path().join("popups.toml");
    std::fs::write(
        &config,
        "[popups]\nanswered_close_seconds = 0\nmax_on_screen = 20\n",
    )
    .expect("config");
    rig.extra_env.extend(desktop.env());
    rig.extra_env
        .push(("CALLPOP_NOTIFICATIONS".into(), "on".into()));
    rig.extra_env
        .push(("CALLPOP_CONFIG".into(), config.display().to_string()));
    let server = rig.start();
    rig.wait("a webhook subscription", StdDuration::from_secs(30), || {
        rig.active().len() == 1
    });
    let h = health(server.port);
    assert_eq!(h["ringcentral_transport"], "webhook", "{h:#}");
    let ws = &h["parts"]["websocket"];
    assert_eq!(ws["state"], "error", "{h:#}");
    assert!(
        ws["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("\u{201c}WebSocket Subscriptions\u{201d}"),
        "the permission is named as the console names it: {ws}"
    );
    assert_eq!(ws["fix"], "ringcentral");
    // Long calls every ten minutes for two hours: some in progress across both switches.
    let now = rig.clock.now();
    for i in 0..CALLS {
        rig.fake.schedule(ScriptedCall::to_owner(
            now + Duration::minutes(1 + 10 * i),
            &format!("+1415555{:04}", 100 + i),
            CallOutcome::Answered {
                ring: 10,
                talk: 900,
            },
        ));
    }
    // Someone adds the permission; within the hour CallPop moves to the WebSocket and then
    // deletes the webhook subscription.
    rig.wait_until(now + Duration::minutes(5));
    rig.fake.configure(|c| c.websocket_permission = true);
    rig.wait("the WebSocket", StdDuration::from_secs(30), || {
        rig.fake.ws_subscriptions().len() == 1
    });
    rig.wait(
        "the webhook subscription deleted",
        StdDuration::from_secs(30),
        || rig.fake.subscriptions().is_empty(),
    );
    assert_eq!(health(server.port)["ringcentral_transport"], "websocket");
    // The permission is taken away and the connection drops for longer than it can be
    // recovered: back to a webhook subscription.
    rig.fake.configure(|c| c.websocket_permission = false);
    let drop_at = rig.clock.now();
    rig.fake.ws_outage_until(drop_at + Duration::minutes(5));
    rig.fake.drop_ws_connections();
    rig.wait(
        "a webhook subscription again",
        StdDuration::from_secs(30),
        || rig.active().len() == 1,
    );
    assert_eq!(health(server.port)["ringcentral_transport"], "webhook");
    assert!(rig.fake.ws_subscriptions().is_empty());
    rig.wait_until(now + Duration::minutes(10 * CALLS + 20));
    rig.wait("every call", StdDuration::from_secs(30), || {
        rig.history().len() == CALLS as usize
    });
    wait_history_true(&rig, StdDuration::from_secs(20));
    server.stop();
    assert_eq!(doubled_events(&rig), 0, "each event stored once");
    // One popup per call (a call that started while nothing could reach the desk has none).
    let mut popups: std::collections::BTreeMap<String, usize> = Default::default();
    for n in desktop.notifies().iter().filter(|n| n.replaces_id == 0) {
        *popups.entry(n.summary.clone()).or_default() += 1;
    }
    assert!(
        popups.values().all(|&n| n == 1),
        "no call popped up twice: {popups:#?}"
    );
    assert!(
        popups.len() >= CALLS as usize - 2,
        "the calls that rang live popped up: {popups:#?}"
    );
}

#[test]
fn a_wstoken_429_storm_is_waited_out() {
    let rig = rig_with("websocket", 60.0, |_| {});
    let server = rig.start();
    wait_subscribed(&rig);
    // The Auth group answers 429 for five minutes, each with Retry-After: 60.
    let now = rig.clock.now();
    rig.fake.storm(Group::Auth, now + Duration::minutes(5), 60);
    rig.fake.ws_outage_until(now + Duration::seconds(30));
    rig.fake.drop_ws_connections();
    place_calls(
        &rig,
        60,
        3,
        now + Duration::minutes(1),
        Duration::minutes(1),
    );
    rig.wait(
        "reconnected after the storm",
        StdDuration::from_secs(40),
        || rig.fake.ws_subscriptions().len() == 1 && rig.clock.now() > now + Duration::minutes(5),
    );
    rig.wait("every call", StdDuration::from_secs(40), || {
        rig.history().len() == 3
    });
    let stats = rig.fake.stats();
    wait_history_true(&rig, StdDuration::from_secs(20));
    server.stop();
    assert_eq!(
        stats.ignored_retry_after, 0,
        "Retry-After obeyed: {stats:?}"
    );
    assert!(
        stats.rate_limited <= 8,
        "no hammering during the storm: {stats:?}"
    );
}

#[test]
fn a_dead_link_nobody_closed_is_noticed_and_its_gap_backfilled() {
    // The session stays recoverable while the dead link is found (about 15 s of real time,
    // 15 minutes at this speed): what the gateway sent into the dead link is in no replay.
    let rig = rig_with("websocket", 60.0, |c| c.ws_recovery_timeout = 7200);
    let server = rig.start();
    wait_subscribed(&rig);
    // The link goes silent with its socket open (a Wi-Fi change, a NAT timeout): events sent
    // into it are lost, and no close ever arrives.
    rig.fake.freeze_ws_connections();
    let frozen_at = rig.clock.now();
    place_calls(
        &rig,
        80,
        3,
        frozen_at + Duration::seconds(5),
        Duration::seconds(20),
    );
    // The unanswered heartbeat gives it away within seconds (real time), not minutes.
    rig.wait("a new connection", StdDuration::from_secs(30), || {
        rig.fake.stats().ws_connections >= 2 && rig.fake.ws_subscriptions().len() == 1
    });
    let stats = rig.fake.stats();
    assert!(
        stats.ws_lost > 0,
        "events went into the dead link: {stats:?}"
    );
    assert_eq!(stats.ws_recovered, 1, "{stats:?}");
    wait_history_true(&rig, StdDuration::from_secs(30));
    rig.wait(
        "recovered, and still the gap was backfilled",
        StdDuration::from_secs(20),
        || gap_fill_requested(&server),
    );
    assert_eq!(websocket_part(server.port)["state"], "active");
    server.stop();
    assert_eq!(doubled_events(&rig), 0);
}

#[test]
fn auto_uses_a_webhook_when_the_app_may_not_get_websocket_tokens() {
    let rig = rig_with("auto", 60.0, |c| c.wstoken_permission = false);
    let server = rig.start();
    rig.wait("a webhook subscription", StdDuration::from_secs(30), || {
        rig.active().len() == 1
    });
    let h = health(server.port);
    assert_eq!(h["ringcentral_transport"], "webhook", "{h:#}");
    assert_eq!(h["parts"]["websocket"]["state"], "error", "{h:#}");
    assert_eq!(h["parts"]["websocket"]["fix"], "ringcentral", "{h:#}");
    let end = place_calls(
        &rig,
        90,
        2,
        rig.clock.now() + Duration::seconds(5),
        Duration::seconds(10),
    );
    rig.wait_until(end + Duration::seconds(5));
    wait_history_true(&rig, StdDuration::from_secs(20));
    let stats = rig.fake.stats();
    server.stop();
    assert_eq!(stats.ws_connections, 0, "{stats:?}");
    assert!(stats.ws_tokens == 0 && stats.rate_limited == 0, "{stats:?}");
}
