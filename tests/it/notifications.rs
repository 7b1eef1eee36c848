//! Popups end to end: the real `callpop serve` receives real HTTP deliveries while a real
//! notification daemon (dunst on Xvfb, on a private D-Bus session) shows them; dbus-monitor
//! records every Notify (with its replaces_id and returned id) and CloseNotification.

use std::path::Path;

use crate::common::{rc_party_event, Server};
use chrono::{Duration, Utc};
use desktop_session::{DesktopSession, NotifyCall, Seen};

const ALICE: Option<(&str, &str, &str)> = Some(("62264425016", "101", "Alice Sales"));

fn start(dir: &Path, desktop: &DesktopSession, extra: &[(&str, &str)]) -> Server {
    let config = dir.join("callpop.toml");
    if !config.exists() {
        std::fs::write(
            &config,
            "[popups]\nanswered_close_seconds = 1\n\n[[line_labels]]\nnumber = \"+16505550100\"\nlabel = \"Sales\"\n",
        )
        .expect("config");
    }
    let mut env: Vec<(String, String)> = desktop.env();
    env.push(("CALLPOP_CONFIG".into(), config.display().to_string()));
    env.push(("CALLPOP_NOTIFICATIONS".into(), "on".into()));
    env.push((
        "CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN".into(),
        crate::common::RC_TOKEN.into(),
    ));
    env.push((
        "CALLPOP_RINGOTEL_API_TOKEN".into(),
        crate::common::RO_TOKEN.into(),
    ));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(dir, &env_refs)
}

fn ok(server: &Server, body: Vec<u8>) {
    let r = server.post_rc(&body);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Posts the caller ringing Alice (101) in session `session` and waits for the ringing
/// popup; returns its id.
fn ring_alice(
    server: &Server,
    desktop: &DesktopSession,
    uuid: &str,
    session: &str,
    now: chrono::DateTime<Utc>,
) -> u32 {
    ring_alice_again(server, desktop, uuid, session, now, 1)
}

/// The Notify calls among what the notification server saw.
pub(crate) fn notifies(seen: &[Seen]) -> Vec<NotifyCall> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Notify(n) => Some(n.clone()),
            Seen::Close(_) => None,
        })
        .collect()
}

#[test]
fn an_answered_call_is_one_popup_updated_in_place_then_closed() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), &desktop, &[]);
    let now = Utc::now();
    ok(
        &server,
        rc_party_event("a1", "s-ans", "p1", None, "Outbound", 1, "Setup", now),
    );
    ok(
        &server,
        rc_party_event("a2", "s-ans", "p2", ALICE, "Inbound", 2, "Proceeding", now),
    );
    let seen = desktop.wait_for("the ringing popup", |s| {
        notifies(s).len() == 1 && notifies(s)[0].id.is_some()
    });
    let first = notifies(&seen)[0].clone();
    assert_eq!(first.replaces_id, 0);
    assert_eq!(first.summary, "Incoming call from Jane Roe");
    assert!(first.body.contains("+1 415 555 0123"), "{first:?}");
    assert!(first.body.contains("to Sales"), "{first:?}");
    assert!(
        first.actions.contains(&"call-back".to_string()),
        "{first:?}"
    );
    let id = first.id.expect("id");
    // Re-delivery and the same state again change nothing on screen.
    ok(
        &server,
        rc_party_event("a2", "s-ans", "p2", ALICE, "Inbound", 2, "Proceeding", now),
    );
    ok(
        &server,
        rc_party_event("a3", "s-ans", "p2", ALICE, "Inbound", 3, "Answered", now),
    );
    let seen = desktop.wait_for("the answered update", |s| notifies(s).len() >= 2);
    // It leaves the screen after `answered_close_seconds`: CallPop closes it, or the server
    // expires it first (the same timeout goes with the popup) and CallPop hears so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while desktop.displayed() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the answered popup stayed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let all = notifies(&seen);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[1].replaces_id, id, "updated in place");
    assert_eq!(all[1].summary, "Answered by Alice Sales (101)");
    ok(
        &server,
        rc_party_event(
            "a4",
            "s-ans",
            "p2",
            ALICE,
            "Inbound",
            4,
            "Disconnected",
            now,
        ),
    );
    ok(
        &server,
        rc_party_event(
            "a5",
            "s-ans",
            "p1",
            None,
            "Outbound",
            5,
            "Disconnected",
            now,
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(desktop.notifies().len(), 2, "{:#?}", desktop.notifies());
    server.stop();
}

#[test]
fn an_unanswered_call_becomes_a_missed_call_popup() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), &desktop, &[]);
    let now = Utc::now();
    let id = ring_alice(&server, &desktop, "m1", "s-miss", now);
    ok(
        &server,
        rc_party_event(
            "m2",
            "s-miss",
            "p2",
            ALICE,
            "Inbound",
            3,
            "Disconnected",
            now,
        ),
    );
    let seen = desktop.wait_for("missed", |s| notifies(s).len() == 2);
    let missed = &notifies(&seen)[1];
    assert_eq!(
        missed.replaces_id, id,
        "the same popup turns into the missed call"
    );
    assert_eq!(missed.summary, "Missed call from Jane Roe");
    assert!(
        !seen.contains(&Seen::Close(id)),
        "a missed call stays on screen"
    );

    // Ringotel: StartCallActivity pops up, a Stop with call_duration 0 makes it missed.
    let ms = Utc::now().timestamp_millis();
    let start_body = serde_json::json!({"method": "StartCallActivity", "api_token": crate::common::RO_TOKEN,
        "params": {"call_id": format!("{ms}-ro"), "extension": "500", "activity_type": "inbound",
                   "caller_number": "+353212028252", "called_number": "500", "call_start": ms}});
    let stop_body = serde_json::json!({"method": "StopCallActivity", "api_token": crate::common::RO_TOKEN,
        "params": {"call_id": format!("{ms}-ro"), "extension": "500", "activity_type": "inbound",
                   "caller_number": "+353212028252", "called_number": "500", "call_start": ms,
                   "call_end": ms + 20_000, "call_duration": 0, "call_cause": "487"}});
    assert_eq!(
        server.post_ro(start_body.to_string().as_bytes()).status,
        200
    );
    let seen = desktop.wait_for("Ringotel ringing", |s| {
        notifies(s).len() == 3 && notifies(s)[2].id.is_some()
    });
    let ro_id = notifies(&seen)[2].id.expect("id");
    assert_eq!(
        notifies(&seen)[2].summary,
        "Incoming call from +353 21 202 8252"
    );
    assert_eq!(server.post_ro(stop_body.to_string().as_bytes()).status, 200);
    let seen = desktop.wait_for("Ringotel missed", |s| notifies(s).len() == 4);
    assert_eq!(notifies(&seen)[3].replaces_id, ro_id);
    assert!(notifies(&seen)[3].summary.starts_with("Missed call from"));
    server.stop();
}

#[test]
fn outbound_stale_and_unwatched_calls_never_pop_up() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), &desktop, &[("CALLPOP_WATCH_EXTENSIONS", "101")]);
    let now = Utc::now();
    // Outbound from the watched desk.
    ok(
        &server,
        rc_party_event("o1", "s-out", "p1", ALICE, "Outbound", 1, "Setup", now),
    );
    // An old event delivered late.
    ok(
        &server,
        rc_party_event(
            "o2",
            "s-old",
            "p2",
            ALICE,
            "Inbound",
            1,
            "Proceeding",
            now - Duration::hours(1),
        ),
    );
    // A call for a desk this one does not watch.
    let bob = Some(("62264425017", "102", "Bob Service"));
    ok(
        &server,
        rc_party_event("o3", "s-bob", "p3", bob, "Inbound", 1, "Proceeding", now),
    );
    // The seed payload names no desk at all.
    let seed = br#"{"id":"rc-123","event":"/restapi/v1.0/account/acc/telephony/sessions","body":{"telephonySessionId":"Y3MxNzE4","parties":[{"direction":"Inbound","to":{"phoneNumber":"+61730000000"},"from":{"phoneNumber":"+61400000000"}}]}}"#;
    ok(&server, seed.to_vec());
    // Control: a fresh inbound call for the watched desk does pop up, exactly once.
    ok(
        &server,
        rc_party_event("o4", "s-yes", "p4", ALICE, "Inbound", 1, "Proceeding", now),
    );
    let seen = desktop.wait_for("the control popup", |s| !notifies(s).is_empty());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let all = notifies(&desktop.seen());
    assert_eq!(all.len(), 1, "{all:#?} {seen:#?}");
    assert_eq!(all[0].summary, "Incoming call from Jane Roe");
    server.stop();
    // Everything was still stored.
    assert_eq!(crate::common::calls_json(dir.path()).len(), 5);
}

#[test]
fn a_call_transferred_to_the_watched_desk_pops_up_there() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // This is sales' desk (102); reception (101) answers first and transfers.
    let server = start(dir.path(), &desktop, &[("CALLPOP_WATCH_EXTENSIONS", "102")]);
    let bob = Some(("62264425017", "102", "Bob Sales"));
    let now = Utc::now();
    let event = |uuid, party, ext, seq, code| {
        rc_party_event(uuid, "s-xfer", party, ext, "Inbound", seq, code, now)
    };
    ok(
        &server,
        rc_party_event("x1", "s-xfer", "p1", None, "Outbound", 1, "Setup", now),
    );
    ok(&server, event("x2", "p2", ALICE, 2, "Proceeding"));
    ok(&server, event("x3", "p2", ALICE, 3, "Answered"));
    let mut handed_over: serde_json::Value =
        serde_json::from_slice(&event("x4", "p2", ALICE, 4, "Disconnected")).expect("json");
    handed_over["body"]["parties"][0]["status"]["reason"] = "BlindTransfer".into();
    ok(&server, handed_over.to_string().into_bytes());
    // Nothing for this desk yet: it has not rung here.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        notifies(&desktop.seen()).is_empty(),
        "{:#?}",
        desktop.seen()
    );
    ok(&server, event("x5", "p3", bob, 5, "Proceeding"));
    let seen = desktop.wait_for("the ringing popup on sales' desk", |s| {
        notifies(s).len() == 1 && notifies(s)[0].id.is_some()
    });
    let first = notifies(&seen)[0].clone();
    assert_eq!(first.summary, "Incoming call from Jane Roe");
    let id = first.id.expect("id");
    ok(&server, event("x6", "p3", bob, 6, "Answered"));
    let seen = desktop.wait_for("the answered update", |s| notifies(s).len() >= 2);
    let all = notifies(&seen);
    assert_eq!(all[1].replaces_id, id, "updated in place");
    assert_eq!(all[1].summary, "Answered by Bob Sales (102)");
    server.stop();
}

#[test]
fn a_restart_in_the_middle_of_a_ringing_call_shows_no_second_popup() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), &desktop, &[]);
    let now = Utc::now();
    let id = ring_alice(&server, &desktop, "r1", "s-rst", now);
    server.stop();
    let server = start(dir.path(), &desktop, &[]);
    // The same ringing state again (a presence duplicate, say), then the end.
    ok(
        &server,
        rc_party_event("r2", "s-rst", "p2", ALICE, "Inbound", 3, "Proceeding", now),
    );
    ok(
        &server,
        rc_party_event(
            "r3",
            "s-rst",
            "p2",
            ALICE,
            "Inbound",
            4,
            "Disconnected",
            now,
        ),
    );
    let seen = desktop.wait_for("missed after restart", |s| notifies(s).len() >= 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let all = notifies(&desktop.seen());
    assert_eq!(all.len(), 2, "{all:#?} {seen:#?}");
    assert_eq!(
        all[1].replaces_id, id,
        "the remembered popup is updated, not duplicated"
    );
    assert!(all[1].summary.starts_with("Missed call from"));
    server.stop();
}

#[test]
fn a_real_popup_on_screen() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), &desktop, &[]);
    let now = Utc::now();
    ok(
        &server,
        rc_party_event("s1", "s-shot", "p1", None, "Outbound", 1, "Setup", now),
    );
    ok(
        &server,
        rc_party_event("s2", "s-shot", "p2", ALICE, "Inbound", 2, "Proceeding", now),
    );
    desktop.wait_for("the popup", |s| {
        notifies(s).first().is_some_and(|n| n.id.is_some())
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    // Set CALLPOP_UPDATE_SCREENSHOTS=1 to refresh the one in the documentation.
    let out = if std::env::var_os("CALLPOP_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/popup-incoming.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("popup-incoming.png")
    };
    desktop.screenshot(&out, Some("420x130+856+0"));
    let size = std::fs::metadata(&out).expect("screenshot").len();
    assert!(size > 5_000, "a screenshot with content ({size} bytes)");
    server.stop();
}

/// Issue 25 #1: the notification server tells the connection that created a popup when it
/// closes and which button was pressed. Popups the person dismissed free their place, a
/// button runs its action, and nothing dismissed comes back after a restart.
#[test]
fn dismissed_popups_free_their_place_and_their_buttons_work() {
    let desktop = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("callpop.toml"),
        "[popups]\nmax_on_screen = 2\n",
    )
    .expect("config");
    // "Call back" hands a tel: link to xdg-open: this one writes down what it was given.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let opened = dir.path().join("opened.txt");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()),
    )
    .expect("xdg-open");
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = start(dir.path(), &desktop, &[("PATH", &path)]);
    let now = Utc::now();

    // Two missed calls fill the two places.
    for (n, session) in ["s-a", "s-b"].iter().enumerate() {
        ring_alice_again(
            &server,
            &desktop,
            &format!("{session}-1"),
            session,
            now,
            n * 2 + 1,
        );
        ok(
            &server,
            rc_party_event(
                &format!("{session}-2"),
                session,
                "p2",
                ALICE,
                "Inbound",
                3,
                "Disconnected",
                now,
            ),
        );
        desktop.wait_for("the missed popup", |s| notifies(s).len() == n * 2 + 2);
    }
    assert_eq!(desktop.displayed(), 2);

    // The person dismisses both; the next caller gets a popup of their own, not the summary.
    desktop.dunstctl(&["close-all"]);
    assert_eq!(desktop.displayed(), 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    ring_alice_again(&server, &desktop, "s-c-1", "s-c", now, 5);
    let third = notifies(&desktop.seen())[4].clone();
    assert_eq!(
        third.summary, "Incoming call from Jane Roe",
        "the dismissed popups no longer hold the places"
    );

    // Its button works: "Call back" opens the caller's number.
    desktop.dunstctl(&["action", "0"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&opened).is_ok_and(|s| s.contains("tel:+14155550123")) {
        assert!(
            std::time::Instant::now() < deadline,
            "Call back opened nothing; log:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // The person is calling back: the popup has done its job.
    desktop.wait_for("the popup closed after Call back", |s| {
        s.contains(&Seen::Close(third.id.expect("id")))
    });
    // After a restart, news of a call whose popup was dismissed does not bring it back.
    server.stop();
    let before = notifies(&desktop.seen()).len();
    let server = start(dir.path(), &desktop, &[("PATH", &path)]);
    ok(
        &server,
        rc_party_event("s-a-3", "s-a", "p2", ALICE, "Inbound", 4, "VoiceMail", now),
    );
    ok(
        &server,
        rc_party_event("s-b-3", "s-b", "p2", ALICE, "Inbound", 4, "VoiceMail", now),
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    let after = notifies(&desktop.seen());
    assert_eq!(
        after.len(),
        before,
        "no dismissed popup came back: {:#?}",
        &after[before..]
    );
    assert_eq!(desktop.displayed(), 0);
    server.stop();
}

/// Like [`ring_alice`], for the `n`-th popup of a test: waits until it has its id.
fn ring_alice_again(
    server: &Server,
    desktop: &DesktopSession,
    uuid: &str,
    session: &str,
    now: chrono::DateTime<Utc>,
    n: usize,
) -> u32 {
    ok(
        server,
        rc_party_event(uuid, session, "p2", ALICE, "Inbound", 2, "Proceeding", now),
    );
    let seen = desktop.wait_for("a ringing popup", |s| {
        notifies(s).get(n - 1).is_some_and(|p| p.id.is_some())
    });
    notifies(&seen)[n - 1].id.expect("id")
}
