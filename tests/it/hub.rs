//! Hub mode end to end on loopback (issue 28): real `callpop serve --hub` and desks, real
//! TLS with a pinned key, real pairing, real SQLite files. Several hosts on one machine
//! (network namespaces, mDNS) are `hub_lan`'s business.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::common::*;

/// Polls `check` every 100 ms for up to `within`.
pub(crate) fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A hub on loopback: webhooks on any free port, desks on `hub_port`.
pub(crate) fn hub(dir: &Path, hub_port: u16) -> Server {
    hub_with(dir, hub_port, &[])
}

/// [`hub`] with more settings.
fn hub_with(dir: &Path, hub_port: u16, extra: &[(&str, &str)]) -> Server {
    let listen = format!("127.0.0.1:{hub_port}");
    let mut env = vec![
        ("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", RC_TOKEN),
        ("CALLPOP_RINGOTEL_API_TOKEN", RO_TOKEN),
        ("CALLPOP_HUB", "on"),
        ("CALLPOP_HUB_LISTEN", listen.as_str()),
        ("CALLPOP_HUB_NAME", "Reception"),
        ("CALLPOP_SECRET_STORE", "file"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(dir, &env)
}

/// `callpop hub pair --json` on the hub's data dir.
pub(crate) fn pair(hub_dir: &Path, name: Option<&str>) -> serde_json::Value {
    let mut args = vec!["hub", "pair", "--json"];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    let out = run(hub_dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// `callpop desk join` with the file secret store.
pub(crate) fn join(desk_dir: &Path, address: &str, code: &str, name: &str) -> std::process::Output {
    command(desk_dir)
        .env("CALLPOP_SECRET_STORE", "file")
        .args(["desk", "join", address, code, "--name", name])
        .output()
        .expect("run callpop desk join")
}

/// How a desk names the hub at `port`.
pub(crate) fn desk_address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

pub(crate) fn desk(dir: &Path) -> Server {
    Server::start_with(dir, &[("CALLPOP_SECRET_STORE", "file")])
}

/// A call's row without what differs between two histories by construction.
pub(crate) fn comparable(mut call: serde_json::Value) -> serde_json::Value {
    let object = call.as_object_mut().expect("an object");
    object.remove("id");
    object.remove("updated_at");
    call
}

pub(crate) fn rows(dir: &Path) -> Vec<serde_json::Value> {
    let mut rows: Vec<_> = calls_json(dir).into_iter().map(comparable).collect();
    rows.sort_by_key(|r| r["call_key"].as_str().map(str::to_string));
    rows
}

/// A call that rings extension 101 and is answered, stamped now.
pub(crate) fn ring_and_answer(hub: &Server, session: &str) {
    let now = Utc::now();
    let ext = Some(("62264425016", "+16505550101", "Alice Sales"));
    for (seq, code) in [(1, "Setup"), (2, "Proceeding"), (3, "Answered")] {
        let body = rc_party_event(
            &format!("{session}-{seq}"),
            session,
            "p-1",
            ext,
            "Inbound",
            seq,
            code,
            now + chrono::Duration::milliseconds(seq * 10),
        );
        assert_eq!(hub.post_rc(&body).status, 200);
    }
}

pub(crate) fn link_state(desk: &Server) -> String {
    health(desk.port)["hub_link"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_desk_pairs_copies_the_hubs_calls_and_keeps_them_while_the_hub_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let hub_server = hub(&hub_dir, hub_port);
    let code = pair(&hub_dir, None);
    for key in ["code", "address", "fingerprint", "expires_at"] {
        assert!(code[key].is_string(), "{key} in {code}");
    }
    let address = format!("127.0.0.1:{hub_port}");
    let code_text = code["code"].as_str().expect("code");
    // Two desks; the first call lands on both.
    let mut desks = Vec::new();
    for name in ["Sales 1", "Sales 2"] {
        let dir = dir.path().join(name.replace(' ', "-"));
        let one_time = if desks.is_empty() {
            code_text.to_string()
        } else {
            pair(&hub_dir, None)["code"]
                .as_str()
                .expect("code")
                .to_string()
        };
        let out = join(&dir, &address, &one_time, name);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("desk.json")).expect("desk.json"))
                .expect("json");
        assert_eq!(state["hub_fingerprint"], code["fingerprint"]);
        desks.push(desk(&dir));
    }
    for d in &desks {
        assert!(
            eventually(Duration::from_secs(15), || link_state(d) == "connected"),
            "{}",
            d.log()
        );
    }
    ring_and_answer(&hub_server, "s-hub-1");
    for d in &desks {
        assert!(
            eventually(Duration::from_secs(10), || rows(&d.data_dir)
                == rows(&hub_dir)),
            "desk {:?} differs: {:?} vs {:?}",
            d.data_dir,
            rows(&d.data_dir),
            rows(&hub_dir)
        );
    }
    // The hub lists both desks as connected (its view is refreshed every second).
    let desks_listed = || {
        let out = run(&hub_dir, &["hub", "desks", "--json"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(
        eventually(Duration::from_secs(5), || {
            let listed = desks_listed();
            listed.lines().count() == 2 && listed.lines().all(|l| l.contains("\"connected\":true"))
        }),
        "{}",
        desks_listed()
    );
    // The hub goes away: the desks say so and their history stays readable.
    hub_server.stop();
    for d in &desks {
        assert!(
            eventually(Duration::from_secs(60), || link_state(d) == "reconnecting"),
            "{}",
            d.log()
        );
        assert_eq!(calls_json(&d.data_dir).len(), 1);
        let status = run(&d.data_dir, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
        assert_eq!(status["status"], "not_receiving");
        assert_eq!(status["hub_link"]["state"], "reconnecting");
    }
    // Back on the same key: the desks catch up with what happened meanwhile.
    let hub_server = hub(&hub_dir, hub_port);
    ring_and_answer(&hub_server, "s-hub-2");
    for d in &desks {
        assert!(
            eventually(Duration::from_secs(45), || rows(&d.data_dir)
                == rows(&hub_dir)),
            "{}",
            d.log()
        );
    }
    assert_eq!(rows(&hub_dir).len(), 2);
}

#[test]
fn wrong_expired_reused_and_unknown_codes_each_get_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let _hub = hub(&hub_dir, hub_port);
    let address = format!("127.0.0.1:{hub_port}");
    let code = pair(&hub_dir, Some("Front desk"))["code"]
        .as_str()
        .expect("code")
        .to_string();
    let stderr = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();
    // The right public part, a wrong secret.
    let mut wrong: Vec<char> = code.chars().collect();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == '0' { '1' } else { '0' };
    let wrong: String = wrong.into_iter().collect();
    let out = join(&dir.path().join("d1"), &address, &wrong, "D1");
    assert!(!out.status.success());
    assert!(stderr(out).contains("does not match"));
    // The right one still works (one wrong attempt of three), and the hub's name wins.
    let out = join(&dir.path().join("d2"), &address, &code, "D2");
    assert!(out.status.success(), "{}", stderr(out));
    let listed = String::from_utf8_lossy(&run(&hub_dir, &["hub", "desks"]).stdout).to_string();
    assert!(listed.contains("Front desk"), "{listed}");
    let out = join(&dir.path().join("d3"), &address, &code, "D3");
    assert!(stderr(out).contains("already used"));
    let out = join(&dir.path().join("d4"), &address, "ZZZZZ-ZZZZZ", "D4");
    assert!(stderr(out).contains("no such pairing code"));
    let out = join(&dir.path().join("d5"), &address, "K7M2Q", "D5");
    assert!(stderr(out).contains("not a pairing code"));
    let old = pair(&hub_dir, None)["code"]
        .as_str()
        .expect("code")
        .to_string();
    db_rw(&hub_dir)
        .execute(
            "UPDATE hub_codes SET expires_at = 0 WHERE used_at IS NULL",
            [],
        )
        .expect("age the codes");
    let out = join(&dir.path().join("d6"), &address, &old, "D6");
    assert!(stderr(out).contains("expired"));
    // Attempts are limited per code: after three, even the right code no longer works.
    let fresh = pair(&hub_dir, None)["code"]
        .as_str()
        .expect("code")
        .to_string();
    let mut guess: Vec<char> = fresh.chars().collect();
    guess[last] = if guess[last] == '0' { '1' } else { '0' };
    let guess: String = guess.into_iter().collect();
    for n in 0..3 {
        let _ = join(&dir.path().join(format!("g{n}")), &address, &guess, "G");
    }
    let out = join(&dir.path().join("g-right"), &address, &fresh, "G");
    assert!(stderr(out).contains("too many times"));
}

#[test]
fn a_revoked_desk_is_cut_off_and_a_different_key_at_the_hubs_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let hub_server = hub(&hub_dir, hub_port);
    let address = format!("127.0.0.1:{hub_port}");
    let mut desks = Vec::new();
    for name in ["A", "B"] {
        let code = pair(&hub_dir, None)["code"]
            .as_str()
            .expect("code")
            .to_string();
        let dir = dir.path().join(name);
        assert!(join(&dir, &address, &code, name).status.success());
        desks.push(desk(&dir));
    }
    for d in &desks {
        assert!(eventually(Duration::from_secs(15), || link_state(d) == "connected"));
    }
    // Revoked from the command line: the running hub cuts the stream within a second.
    let out = run(&hub_dir, &["hub", "revoke", "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(10), || link_state(&desks[0])
            == "removed"),
        "{}",
        desks[0].log()
    );
    let problem = health(desks[0].port)["hub_link"]["problem"].to_string();
    assert!(problem.contains("removed from the hub"), "{problem}");
    assert_eq!(link_state(&desks[1]), "connected");
    let out = run(&hub_dir, &["hub", "revoke", "nobody"]);
    assert!(!out.status.success());
    // Someone else's CallPop answers at the hub's address: B refuses it and says why.
    hub_server.stop();
    std::fs::rename(hub_dir.join("hub-key.pem"), hub_dir.join("hub-key.pem.old"))
        .expect("move the key away");
    let _impostor = hub(&hub_dir, hub_port);
    assert!(
        eventually(Duration::from_secs(60), || link_state(&desks[1])
            == "identity_changed"),
        "{}",
        desks[1].log()
    );
    let problem = health(desks[1].port)["hub_link"]["problem"].to_string();
    assert!(problem.contains("pair again"), "{problem}");
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "the loopback tunnel needs a build with --features test-hooks (scripts/test)"
)]
fn the_desk_api_is_only_on_its_own_listener_and_names_the_side_to_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    // With a public tunnel, as a hub receiving Ringotel has.
    let hub_server = hub_with(&hub_dir, hub_port, &[("CALLPOP_TUNNEL", "loopback")]);
    assert!(eventually(Duration::from_secs(15), || health(
        hub_server.port
    )["public_url"]
        .is_string()));
    let public = health(hub_server.port)["public_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let public_port: u16 = public
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("the tunnel's port");
    // Neither on the webhook listener nor through the tunnel.
    for port in [hub_server.port, public_port] {
        for path in [
            "/v1/feed",
            "/v1/pair/start",
            "/v1/stream",
            "/v1/calls/deliveries",
        ] {
            let r = http(port, "GET", path, &[], b"");
            assert_eq!(r.status, 404, "{port}{path}: {}", r.text());
        }
    }
    // On its own listener, TLS only: plain HTTP gets no answer it could read as one.
    let plain = try_raw(hub_port, b"GET /v1/feed HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(plain.map_or(true, |r| r.status != 200));
    // Over TLS: a desk from the future is told to update the hub, one from the past to
    // update itself; without a token nothing is read.
    let ask = |protocol: &str, path: &str| -> (u16, serde_json::Value) {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = callpop_hub::pin::client_config(
            callpop_hub::HubVerifier::first_sight(provider.clone()),
            provider,
        )
        .expect("tls");
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .expect("client");
        let url = format!("https://127.0.0.1:{hub_port}{path}");
        let protocol = protocol.to_string();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let r = client
                    .get(url)
                    .header("callpop-protocol", protocol)
                    .send()
                    .await
                    .expect("an answer");
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or_default())
            })
    };
    let (status, body) = ask("2", "/v1/feed");
    assert_eq!(status, 426);
    assert!(
        body["message"]
            .to_string()
            .contains("update CallPop on the hub"),
        "{body}"
    );
    let (status, body) = ask("0", "/v1/feed");
    assert_eq!(status, 426);
    assert!(
        body["message"].to_string().contains("on this desk"),
        "{body}"
    );
    let (status, body) = ask("1", "/v1/feed?after=0");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
}

#[test]
fn a_taken_name_is_numbered_and_a_desk_moving_to_another_hub_keeps_what_it_had() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first_port, second_port) = (free_port(), free_port());
    let first_dir = dir.path().join("first");
    let second_dir = dir.path().join("second");
    let first = hub(&first_dir, first_port);
    let second = hub(&second_dir, second_port);
    // A reinstalled PC pairs again under the name it had: it gets a numbered one.
    for n in 0..2 {
        let code = pair(&first_dir, None)["code"]
            .as_str()
            .expect("code")
            .to_string();
        let out = join(
            &dir.path().join(format!("twin{n}")),
            &desk_address(first_port),
            &code,
            "Sales",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = String::from_utf8_lossy(&run(&first_dir, &["hub", "desks"]).stdout).to_string();
    assert!(listed.contains("Sales (2)"), "{listed}");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("twin1").join("desk.json")).expect("desk.json"),
    )
    .expect("json");
    assert_eq!(state["desk_name"], "Sales (2)");
    // A desk of the first hub, with the first hub's call.
    let desk_dir = dir.path().join("mover");
    let code = pair(&first_dir, None)["code"]
        .as_str()
        .expect("code")
        .to_string();
    assert!(join(&desk_dir, &desk_address(first_port), &code, "Mover")
        .status
        .success());
    ring_and_answer(&first, "s-first-hub");
    let mover = desk(&desk_dir);
    assert!(eventually(Duration::from_secs(15), || rows(&desk_dir)
        == rows(&first_dir)));
    mover.stop();
    // It leaves and joins the second hub, which has another call and fewer changes.
    let out = run(&desk_dir, &["desk", "leave"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ring_and_answer(&second, "s-second-hub");
    let code = pair(&second_dir, None)["code"]
        .as_str()
        .expect("code")
        .to_string();
    let out = command(&desk_dir)
        .env("CALLPOP_SECRET_STORE", "file")
        .args([
            "desk",
            "join",
            &desk_address(second_port),
            &code,
            "--name",
            "Mover",
        ])
        .output()
        .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mover = desk(&desk_dir);
    let keys = || -> Vec<String> {
        rows(&desk_dir)
            .iter()
            .filter_map(|r| r["call_key"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(15), || keys()
            == vec!["s-first-hub".to_string(), "s-second-hub".to_string()]),
        "{:?} {}",
        keys(),
        mover.log()
    );
    // The first hub's call is the desk's own now: reading the second hub's window again
    // does not sweep it.
    assert_eq!(
        count(
            &desk_dir,
            "SELECT count(*) FROM replica_calls r JOIN calls c ON c.id = r.call_id \
             WHERE c.call_key = 's-first-hub' AND r.local = 1"
        ),
        1
    );
}

/// A desk's token, from its private secrets file (the file store these tests use).
fn token_of(desk_dir: &Path) -> String {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(desk_dir.join("secrets.json")).expect("secrets"))
            .expect("json");
    file["hub_desk_token"]
        .as_str()
        .expect("the desk's token")
        .to_string()
}

#[test]
fn a_hostile_host_cannot_stop_the_hub_with_idle_connections_garbage_or_a_stream_it_never_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_port = free_port();
    let hub_dir = dir.path().join("hub");
    let hub_server = hub(&hub_dir, hub_port);
    let mut desks = Vec::new();
    for name in ["Good", "Stuck"] {
        let code = pair(&hub_dir, None)["code"]
            .as_str()
            .expect("code")
            .to_string();
        let desk_dir = dir.path().join(name);
        assert!(join(&desk_dir, &desk_address(hub_port), &code, name)
            .status
            .success());
        desks.push(desk_dir);
    }
    let good = desk(&desks[0]);
    assert!(eventually(Duration::from_secs(15), || link_state(&good) == "connected"));
    // From another address on the LAN: a thousand connections that say nothing, and garbage.
    let hostile = std::net::SocketAddr::from(([127, 0, 0, 66], 0));
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], hub_port));
    let mut idle = Vec::new();
    for n in 0..1000 {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.bind(&hostile.into()).expect("bind");
        if socket.connect(&target.into()).is_ok() {
            if n % 100 == 0 {
                use std::io::Write;
                let mut s: std::net::TcpStream = socket.into();
                let _ = s.write_all(b"\x16\x03\x01\xff\xffgarbage that is not a TLS hello");
                idle.push(s);
            } else {
                idle.push(socket.into());
            }
        }
    }
    // The "Stuck" desk opens its stream with its real token and never reads it.
    let token = token_of(&desks[1]);
    let stuck_hub = hub_port;
    let (let_go, release) = std::sync::mpsc::channel::<()>();
    let stuck = std::thread::spawn(move || {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = callpop_hub::pin::client_config(
            callpop_hub::HubVerifier::first_sight(provider.clone()),
            provider,
        )
        .expect("tls");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let client = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .local_address(std::net::IpAddr::from([127, 0, 0, 67]))
                    .build()
                    .expect("client");
                let response = client
                    .get(format!("https://127.0.0.1:{stuck_hub}/v1/stream?after=0"))
                    .header("callpop-protocol", "1")
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("the stream");
                assert_eq!(response.status(), 200);
                // Holds the stream without reading it until the good desk has every call.
                let _ = release.recv();
                drop(response);
            });
    });
    // Calls keep arriving at the hub and reaching the good desk.
    let started = std::time::Instant::now();
    for n in 0..200 {
        ring_and_answer(&hub_server, &format!("s-busy-{n}"));
    }
    let took = started.elapsed();
    assert!(
        eventually(Duration::from_secs(30), || rows(&desks[0])
            == rows(&hub_dir)),
        "{}",
        good.log()
    );
    assert_eq!(rows(&hub_dir).len(), 200);
    // A new desk still pairs and connects while all that goes on.
    let code = pair(&hub_dir, None)["code"]
        .as_str()
        .expect("code")
        .to_string();
    let late_dir = dir.path().join("Late");
    let out = join(&late_dir, &desk_address(hub_port), &code, "Late");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let late = desk(&late_dir);
    assert!(
        eventually(Duration::from_secs(30), || rows(&late_dir)
            == rows(&hub_dir)),
        "{}",
        late.log()
    );
    // The webhook path answered every delivery (600 of them); how fast is the benchmark's
    // business, this says it for the log.
    eprintln!("600 deliveries with a hostile host on the LAN took {took:?}");
    drop(idle);
    let _ = let_go.send(());
    stuck.join().expect("the stuck desk");
}
