//! Hub mode with real notification daemons (issue 28): a desk pops up for its own extensions
//! from the hub's live stream, updates the popup in place, shows nothing twice when the hub is
//! killed mid-call, and sums up what it missed while it was away instead of ringing late.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use desktop_session::DesktopSession;

use crate::common::*;
use crate::hub::{desk_address, eventually, hub, join, link_state, pair, rows};
use crate::notifications::notifies;

const ALICE: Option<(&str, &str, &str)> = Some(("62264425016", "101", "Alice Sales"));

/// A paired desk with popups on in `desktop`'s session, watching `extensions`.
fn popping_desk(
    dir: &Path,
    hub_dir: &Path,
    hub_port: u16,
    desktop: &DesktopSession,
    extensions: &str,
) -> Server {
    if !dir.join("desk.json").exists() {
        let code = pair(hub_dir, None)["code"]
            .as_str()
            .expect("code")
            .to_string();
        let out = join(dir, &desk_address(hub_port), &code, extensions);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut env: Vec<(String, String)> = desktop.env();
    env.push(("CALLPOP_NOTIFICATIONS".into(), "on".into()));
    env.push(("CALLPOP_WATCH_EXTENSIONS".into(), extensions.into()));
    env.push(("CALLPOP_SECRET_STORE".into(), "file".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let desk = Server::start_with(dir, &env);
    assert!(
        eventually(Duration::from_secs(15), || link_state(&desk) == "connected"),
        "{}",
        desk.log()
    );
    desk
}

fn ok(server: &Server, body: Vec<u8>) {
    let r = server.post_rc(&body);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The caller rings Alice (101) in `session`: the caller's leg, then Alice's.
fn ring(hub: &Server, session: &str, now: chrono::DateTime<Utc>) {
    ok(
        hub,
        rc_party_event(
            &format!("{session}-1"),
            session,
            "p1",
            None,
            "Outbound",
            1,
            "Setup",
            now,
        ),
    );
    ok(
        hub,
        rc_party_event(
            &format!("{session}-2"),
            session,
            "p2",
            ALICE,
            "Inbound",
            2,
            "Proceeding",
            now,
        ),
    );
}

fn answer_and_hang_up(hub: &Server, session: &str, now: chrono::DateTime<Utc>) {
    ok(
        hub,
        rc_party_event(
            &format!("{session}-3"),
            session,
            "p2",
            ALICE,
            "Inbound",
            3,
            "Answered",
            now,
        ),
    );
    ok(
        hub,
        rc_party_event(
            &format!("{session}-4"),
            session,
            "p2",
            ALICE,
            "Inbound",
            4,
            "Disconnected",
            now,
        ),
    );
    ok(
        hub,
        rc_party_event(
            &format!("{session}-5"),
            session,
            "p1",
            None,
            "Outbound",
            5,
            "Disconnected",
            now,
        ),
    );
}

#[test]
fn a_call_pops_up_only_on_the_desk_watching_its_extension_and_is_updated_in_place() {
    let alice_screen = DesktopSession::start();
    let bob_screen = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let hub_server = hub(&hub_dir, hub_port);
    let alice = popping_desk(
        &dir.path().join("alice"),
        &hub_dir,
        hub_port,
        &alice_screen,
        "101",
    );
    let bob = popping_desk(
        &dir.path().join("bob"),
        &hub_dir,
        hub_port,
        &bob_screen,
        "202",
    );
    let now = Utc::now();
    ring(&hub_server, "s-pop", now);
    let seen = alice_screen.wait_for("the ringing popup on Alice's desk", |s| {
        notifies(s).first().is_some_and(|n| n.id.is_some())
    });
    let first = notifies(&seen)[0].clone();
    assert_eq!(first.summary, "Incoming call from Jane Roe");
    assert_eq!(first.replaces_id, 0);
    answer_and_hang_up(&hub_server, "s-pop", now);
    let seen = alice_screen.wait_for("the answered update", |s| notifies(s).len() >= 2);
    let all = notifies(&seen);
    assert_eq!(
        all[1].replaces_id,
        first.id.expect("id"),
        "updated in place"
    );
    assert_eq!(all[1].summary, "Answered by Alice Sales (101)");
    // Bob's desk copied the call but was never asked to show it.
    assert!(eventually(Duration::from_secs(10), || rows(&bob.data_dir)
        == rows(&hub_dir)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        bob_screen.notifies().is_empty(),
        "{:#?}",
        bob_screen.notifies()
    );
    assert_eq!(
        notifies(&alice_screen.seen()).len(),
        2,
        "{:#?}",
        alice_screen.seen()
    );
    drop(alice);
}

#[test]
fn the_hub_killed_mid_call_and_restarted_leaves_no_duplicate_popup_or_row() {
    let screen = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let hub_server = hub(&hub_dir, hub_port);
    let desk = popping_desk(&dir.path().join("desk"), &hub_dir, hub_port, &screen, "101");
    let now = Utc::now();
    ring(&hub_server, "s-kill", now);
    let seen = screen.wait_for("the ringing popup", |s| {
        notifies(s).first().is_some_and(|n| n.id.is_some())
    });
    let id = notifies(&seen)[0].id.expect("id");
    hub_server.kill9();
    assert!(eventually(Duration::from_secs(60), || link_state(&desk)
        == "reconnecting"));
    // Back on the same data dir; the same ringing state is sent again (as RingCentral may),
    // then the call is answered.
    let hub_server = hub(&hub_dir, hub_port);
    ring(&hub_server, "s-kill", now);
    answer_and_hang_up(&hub_server, "s-kill", now);
    assert!(
        eventually(Duration::from_secs(45), || rows(&desk.data_dir)
            == rows(&hub_dir)),
        "{}",
        desk.log()
    );
    let seen = screen.wait_for("the answered update", |s| notifies(s).len() >= 2);
    std::thread::sleep(Duration::from_millis(500));
    let all = notifies(&screen.seen());
    assert_eq!(all.len(), 2, "{all:#?} {seen:#?}");
    assert_eq!(all[1].replaces_id, id, "the same popup, updated");
    assert_eq!(rows(&desk.data_dir).len(), 1);
}

#[test]
fn a_desk_that_was_away_sums_up_its_missed_calls_instead_of_ringing_late() {
    let screen = DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let hub_server = hub(&hub_dir, hub_port);
    let desk_dir = dir.path().join("desk");
    let desk = popping_desk(&desk_dir, &hub_dir, hub_port, &screen, "101");
    desk.stop();
    // While the desk is off: one call rings Alice and nobody answers; one rings and is taken.
    let now = Utc::now();
    ring(&hub_server, "s-away-missed", now);
    ok(
        &hub_server,
        rc_party_event(
            "away-3",
            "s-away-missed",
            "p2",
            ALICE,
            "Inbound",
            3,
            "Disconnected",
            now,
        ),
    );
    ok(
        &hub_server,
        rc_party_event(
            "away-4",
            "s-away-missed",
            "p1",
            None,
            "Outbound",
            4,
            "Disconnected",
            now,
        ),
    );
    ring(&hub_server, "s-away-answered", now);
    answer_and_hang_up(&hub_server, "s-away-answered", now);
    let desk = popping_desk(&desk_dir, &hub_dir, hub_port, &screen, "101");
    assert!(eventually(Duration::from_secs(15), || rows(&desk.data_dir)
        == rows(&hub_dir)));
    let seen = screen.wait_for("the summary notice", |s| !notifies(s).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let all = notifies(&screen.seen());
    assert_eq!(
        all.len(),
        1,
        "one notice, no late ringing: {all:#?} {seen:#?}"
    );
    assert_eq!(
        all[0].summary,
        "1 missed call while disconnected from the hub"
    );
    assert!(all[0].body.contains("Jane Roe"), "{:?}", all[0]);
}
