//! The public URL: the real ngrok client failing fast against an unreachable network while the
//! local receiver keeps serving, and a URL that changes (loopback tunnel) being followed by the
//! RingCentral subscription on the fake platform with no gap.

use std::time::{Duration as StdDuration, Instant};

use crate::common::{health, Server};
use callpop_clock::{Clock, SIMULATED_CLOCK_ENV};
use chrono::{Duration, TimeZone, Utc};
use fake_ringcentral::{CallOutcome, FakeConfig, FakePlatform, ScriptedCall};

fn tunnel_state(port: u16) -> (String, String) {
    let h = health(port);
    (
        h["parts"]["tunnel"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        h["parts"]["tunnel"]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn telephony(uuid: &str) -> Vec<u8> {
    crate::common::rc_party_event(
        uuid,
        "s-tunnel",
        "p1",
        None,
        "Outbound",
        1,
        "Setup",
        Utc::now(),
    )
}

/// Starts serve with an ngrok authtoken pointed at `server`; returns it and how long the
/// tunnel took to report an error.
fn ngrok_against(dir: &std::path::Path, server: &str) -> (Server, StdDuration, String) {
    let started = Instant::now();
    let srv = Server::start_with(
        dir,
        &[
            (
                "CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN",
                crate::common::RC_TOKEN,
            ),
            (
                "CALLPOP_NGROK_AUTHTOKEN",
                "2abcDEFfakeNgrokAuthtoken_0123456789",
            ),
            ("CALLPOP_NGROK_SERVER", server),
        ],
    );
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        let (state, detail) = tunnel_state(srv.port);
        if state == "error" {
            return (srv, started.elapsed(), detail);
        }
        assert!(
            Instant::now() < deadline,
            "no tunnel error; state {state}: {detail}"
        );
        std::thread::sleep(StdDuration::from_millis(25));
    }
}

#[test]
fn an_unreachable_ngrok_fails_fast_and_the_receiver_keeps_serving() {
    // Nothing listens on this port: connection refused, like a machine without network.
    let closed = crate::common::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, took, detail) = ngrok_against(dir.path(), &format!("127.0.0.1:{closed}"));
    assert!(took < StdDuration::from_secs(5), "error after {took:?}");
    assert!(
        detail.starts_with("offline: cannot reach ngrok"),
        "{detail}"
    );
    // The local receiver is untouched.
    let r = server.post_rc(&telephony("t1"));
    assert_eq!(r.status, 200, "{}", r.text());
    let out = crate::common::command(dir.path())
        .args(["tunnel", "status"])
        .env("CALLPOP_LISTEN", format!("127.0.0.1:{}", server.port))
        .output()
        .expect("tunnel status");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("tunnel: error — offline"), "{text}");
    assert!(text.contains("public URL: (none)"), "{text}");
    let log = server.log();
    assert!(
        !log.contains("2abcDEFfakeNgrokAuthtoken"),
        "the authtoken is never logged"
    );
    assert!(server.stop().success());
}

#[test]
fn a_black_holed_ngrok_is_declared_offline_within_the_bound() {
    // Accepts TCP and then never says a word: TLS would wait forever without our bound.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = hole.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, took, detail) = ngrok_against(dir.path(), &addr.to_string());
    assert!(took < StdDuration::from_secs(5), "error after {took:?}");
    assert!(detail.starts_with("offline:"), "{detail}");
    assert_eq!(server.post_rc(&telephony("t2")).status, 200);
    server.stop();
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "the loopback tunnel needs a build with --features test-hooks (scripts/test)"
)]
fn the_subscription_follows_a_changing_public_url_with_no_gap() {
    let sim_start = Utc
        .with_ymd_and_hms(2026, 11, 2, 8, 0, 0)
        .single()
        .expect("time");
    let clock = Clock::scaled(3_600.0, Utc::now(), sim_start);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(FakePlatform::start(FakeConfig::new(clock)))
        .expect("fake");
    let (id, secret, jwt) = fake.credentials();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock_env = clock.to_env().expect("scaled");
    let server = Server::start_with(
        dir.path(),
        &[
            (SIMULATED_CLOCK_ENV, clock_env.as_str()),
            ("CALLPOP_RINGCENTRAL_SERVER", fake.url()),
            ("CALLPOP_RINGCENTRAL_CLIENT_ID", id.as_str()),
            ("CALLPOP_RINGCENTRAL_CLIENT_SECRET", secret.as_str()),
            ("CALLPOP_RINGCENTRAL_JWT", jwt.as_str()),
            ("CALLPOP_RINGCENTRAL_TRANSPORT", "webhook"),
            (
                "CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN",
                crate::common::RC_TOKEN,
            ),
            ("CALLPOP_TUNNEL", "loopback"),
            // A new public URL every two simulated hours.
            ("CALLPOP_LOOPBACK_TUNNEL_ROTATE_SECONDS", "7200"),
        ],
    );
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + StdDuration::from_secs(30);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out: {what}; {:#?}",
                fake.subscriptions()
            );
            std::thread::sleep(StdDuration::from_millis(50));
        }
    };
    wait("a subscription", &|| fake.subscriptions().len() == 1);
    let first_address = fake.subscriptions()[0].address.clone();
    let public = health(server.port)["public_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        first_address.starts_with(&public),
        "{first_address} vs {public}"
    );
    // Health stays on the local listener: the internet gets the webhook routes only.
    let public_port: u16 = public
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port of the loopback tunnel");
    assert_eq!(
        crate::common::http(public_port, "GET", "/healthz", &[], b"").status,
        404
    );
    assert_eq!(
        crate::common::http(server.port, "GET", "/healthz", &[], b"").status,
        200
    );
    // Calls every ten minutes for seven hours: the URL changes three times meanwhile.
    let start = clock.now() + Duration::minutes(2);
    let mut n = 0u64;
    while n < 42 {
        let outcome = if n.is_multiple_of(3) {
            CallOutcome::Missed { ring: 20 }
        } else {
            CallOutcome::Answered { ring: 5, talk: 90 }
        };
        fake.schedule(ScriptedCall::to_owner(
            start + Duration::minutes(10 * n as i64),
            &format!("+1650555{:04}", n),
            outcome,
        ));
        n += 1;
    }
    let end = start + Duration::minutes(10 * 42) + Duration::minutes(10);
    std::thread::sleep(clock.wall_duration(end - clock.now()));
    let history = || crate::common::count(dir.path(), "SELECT count(*) FROM calls");
    wait("every call", &|| history() == n as i64);
    let stats = fake.stats();
    let subs = fake.subscriptions();
    let public = health(server.port)["public_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    server.stop();
    assert!(
        stats.created >= 4,
        "a new subscription for each new URL: {stats:?}"
    );
    assert_eq!(subs.len(), 1, "the old ones were deleted: {subs:#?}");
    assert!(
        subs[0].address.starts_with(&public),
        "follows the current URL"
    );
    assert_ne!(subs[0].address, first_address);
    assert_eq!(
        stats.failed_deliveries, 0,
        "no delivery was lost to a URL change: {stats:?}"
    );
    let from_call_log = crate::common::count(
        dir.path(),
        "SELECT count(*) FROM raw_events WHERE kind = 'call_log'",
    );
    let live = crate::common::count(
        dir.path(),
        "SELECT count(DISTINCT call_id) FROM call_events JOIN raw_events ON raw_events.id = raw_event_id WHERE kind = 'telephony'",
    );
    assert_eq!(
        live, n as i64,
        "every call arrived live ({from_call_log} call-log records)"
    );
}
