//! The receiver end to end: the real `callpop serve`, raw HTTP on 127.0.0.1, the real SQLite
//! file and the real CLI.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{calls_json, count, http, raw, run, Server, RC_PATH, RC_TOKEN, RO_TOKEN};
use serde_json::json;

fn telephony(uuid: &str, session: &str, seq: i64, code: &str) -> Vec<u8> {
    crate::common::rc_telephony(uuid, session, seq, code, "Jane Roe")
        .to_string()
        .into_bytes()
}

#[test]
fn handshake_is_echoed_before_anything_else_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    for header in ["Validation-Token", "x_validation_token"] {
        let request = format!(
            "POST {RC_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             {header}: 0f5b1c2e-handshake-token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let response = raw(server.port, request.as_bytes());
        assert_eq!(response.status, 200, "{header}: {}", response.head);
        assert_eq!(
            response.header("validation-token"),
            Some("0f5b1c2e-handshake-token")
        );
        assert!(response.body.is_empty());
        assert!(
            response.raw_len <= 1024,
            "handshake reply is {} bytes (limit 1024 incl. headers)",
            response.raw_len
        );
    }
    // A body-less request without the header is a client error, not a handshake.
    let response = server.post(RC_PATH, &[("Content-Type", "application/json")], b"");
    assert_eq!(response.status, 400);
    server.stop();
    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 0);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM quarantine"), 0);
}

#[test]
fn verification_token_is_required_from_any_documented_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let body = telephony("100", "s-token", 2, "Setup");
    for (name, value, want) in [
        ("Verification-Token", RC_TOKEN, 200),
        ("verification_token", RC_TOKEN, 200),
        ("Validation-Token", RC_TOKEN, 200),
        ("Verification-Token", "wrong-token-value", 401),
        ("X-Other", RC_TOKEN, 401),
    ] {
        // A session each: the same event under another uuid would be stored once.
        let body = telephony(
            &format!("{name}-{want}-{value}"),
            &format!("s-token-{name}-{want}"),
            2,
            "Setup",
        );
        let response = server.post(
            RC_PATH,
            &[("Content-Type", "application/json"), (name, value)],
            &body,
        );
        assert_eq!(
            response.status,
            want,
            "{name}: {value}: {}",
            response.text()
        );
        if want == 401 {
            assert_eq!(response.json()["error"]["code"], "unauthorized");
        }
    }
    let response = server.post(RC_PATH, &[("Content-Type", "application/json")], &body);
    assert_eq!(response.status, 401, "missing token");
    let log = server.log();
    server.stop();
    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 3);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM quarantine"), 0);
    let security: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("callpop::security"))
        .collect();
    assert_eq!(security.len(), 3, "one security line per rejection: {log}");
    assert!(!log.contains(RC_TOKEN), "the token must never be logged");
    assert!(
        !log.contains("wrong-token-value"),
        "presented tokens are not logged either"
    );
}

#[test]
fn the_seed_payload_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let seed = br#"{"id":"rc-123","event":"/restapi/v1.0/account/acc/telephony/sessions","body":{"telephonySessionId":"Y3MxNzE4...","eventTime":"2025-11-13T01:02:03Z","parties":[{"direction":"Inbound","to":{"phoneNumber":"+61730000000"},"from":{"phoneNumber":"+61400000000"}}]}}"#;
    let response = server.post(
        RC_PATH,
        &[
            ("Authorization", "Bearer dealerstudio"),
            ("Content-Type", "application/json"),
            ("verification_token", RC_TOKEN),
        ],
        seed,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["status"], "accepted");
    server.stop();
    let calls = calls_json(dir.path());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["from_e164"], "+61400000000");
    assert_eq!(calls[0]["to_e164"], "+61730000000");
    assert_eq!(calls[0]["direction"], "inbound");
}

#[test]
fn bad_input_gets_a_clear_4xx_and_nothing_stored_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // Something good first: it must survive everything below untouched.
    assert_eq!(
        server.post_rc(&telephony("1", "s-keep", 2, "Setup")).status,
        200
    );

    let deep = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"hello".to_vec()),
        ("truncated", br#"{"uuid":"2","event":"/restapi/v1.0/account/1/telephony/sessions","body":{"#.to_vec()),
        ("trailing garbage", br#"{"uuid":"3","event":"x"} trailing"#.to_vec()),
        ("top-level array", br#"[{"uuid":"4"}]"#.to_vec()),
        ("deep nesting", deep.into_bytes()),
        ("invalid UTF-8", b"{\"uuid\":\"5\",\"event\":\"\xff\xfe\"}".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("wrong type: parties", br#"{"uuid":"6","event":"/restapi/v1.0/account/1/telephony/sessions","body":{"telephonySessionId":"s","parties":"none"}}"#.to_vec()),
        ("wrong type: status", br#"{"uuid":"7","event":"/restapi/v1.0/account/1/telephony/sessions","body":{"telephonySessionId":"s","parties":[{"id":"p","status":"Setup"}]}}"#.to_vec()),
        ("wrong type: eventTime", br#"{"uuid":"8","event":"/restapi/v1.0/account/1/telephony/sessions","body":{"telephonySessionId":"s","eventTime":12,"parties":[]}}"#.to_vec()),
        ("missing uuid", br#"{"event":"/restapi/v1.0/account/1/telephony/sessions","body":{}}"#.to_vec()),
        ("missing session id", br#"{"uuid":"9","event":"/restapi/v1.0/account/1/telephony/sessions","body":{"parties":[]}}"#.to_vec()),
    ];
    for (label, body) in &cases {
        let response = server.post_rc(body);
        assert_eq!(response.status, 400, "{label}: {}", response.text());
        let message = response.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!message.is_empty(), "{label}: a clear message");
    }
    // Protocol-level mistakes.
    let response = http(server.port, "GET", RC_PATH, &[], b"");
    assert_eq!(response.status, 405);
    assert_eq!(response.json()["error"]["code"], "method_not_allowed");
    let response = server.post(
        RC_PATH,
        &[
            ("Content-Type", "text/plain"),
            ("Verification-Token", RC_TOKEN),
        ],
        b"{\"uuid\":\"10\"}",
    );
    assert_eq!(response.status, 415);
    let response = http(server.port, "GET", "/nope", &[], b"");
    assert_eq!(response.status, 404);
    let log = server.log();
    server.stop();

    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 1);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM calls"), 1);
    // Authenticated but unusable bodies are kept for inspection.
    assert_eq!(
        count(dir.path(), "SELECT count(*) FROM quarantine"),
        cases.len() as i64
    );
    assert!(!log.contains("panicked"), "{log}");
    let out = run(dir.path(), &["events", "--quarantined", "--json"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        cases.len()
    );
}

#[test]
fn oversized_bodies_get_413_without_being_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // Declared too large: refused before a byte of the body is sent.
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let head = format!(
        "POST {RC_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Verification-Token: {RC_TOKEN}\r\nContent-Length: 104857600\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = stream
        .read(&mut buf)
        .expect("a reply without sending the body");
    let response = crate::common::parse_response(&buf[..n]);
    assert_eq!(response.status, 413);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Chunked without a length: cut off at the cap.
    let mut request = format!(
        "POST {RC_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Verification-Token: {RC_TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 256 * 1024];
    for _ in 0..6 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = raw(server.port, &request);
    assert_eq!(response.status, 413);
    server.stop();
    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 0);
}

#[test]
fn duplicates_are_acknowledged_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let first = telephony("837270960869181944", "s-dup", 2, "Setup");
    assert_eq!(server.post_rc(&first).json()["status"], "accepted");
    let response = server.post_rc(&first);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "duplicate");
    // Same uuid, different body: still a duplicate, with a warning; the call stays ringing.
    let changed = telephony("837270960869181944", "s-dup", 2, "Answered");
    assert_eq!(server.post_rc(&changed).json()["status"], "duplicate");
    let log = server.log();
    server.stop();
    assert!(log.contains("different body"), "{log}");
    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 1);
    assert_eq!(count(dir.path(), "SELECT redeliveries FROM raw_events"), 2);
    let calls = calls_json(dir.path());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["state"], "ringing");
    assert_eq!(calls[0]["event_count"], 1);
}

#[test]
fn ringotel_checks_the_body_token_and_never_stores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let body = |token: Option<&str>, method: &str| {
        let mut v = json!({
            "method": method,
            "params": {"call_id": "1763650800000-abc", "extension": "500", "activity_type": "inbound",
                       "caller_number": "353212028252", "called_number": "500", "call_start": 1763650800000u64}
        });
        if let Some(t) = token {
            v["api_token"] = json!(t);
        }
        v.to_string().into_bytes()
    };
    assert_eq!(
        server
            .post_ro(&body(Some("nope"), "StartCallActivity"))
            .status,
        401
    );
    assert_eq!(server.post_ro(&body(None, "StartCallActivity")).status, 401);
    let ok = server.post_ro(&body(Some(RO_TOKEN), "StartCallActivity"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Unknown methods are stored and acknowledged.
    let unknown = server.post_ro(&body(Some(RO_TOKEN), "ContactLookup"));
    assert_eq!(unknown.status, 200, "{}", unknown.text());
    // Authenticated but unusable: quarantined, 400.
    let bad = json!({"method": "StopCallActivity", "api_token": RO_TOKEN, "params": {"extension": "500"}});
    let response = server.post_ro(bad.to_string().as_bytes());
    assert_eq!(response.status, 400);
    assert!(response.text().contains("call_id"), "{}", response.text());
    server.stop();
    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 2);
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(*) FROM raw_events WHERE kind = 'ContactLookup'"
        ),
        1
    );
    let leaked = count(
        dir.path(),
        &format!(
            "SELECT (SELECT count(*) FROM raw_events WHERE instr(CAST(body AS TEXT), '{RO_TOKEN}') > 0)
                  + (SELECT count(*) FROM quarantine WHERE instr(CAST(body AS TEXT), '{RO_TOKEN}') > 0)"
        ),
    );
    assert_eq!(leaked, 0, "the api_token must be redacted before storage");
}

#[test]
fn healthz_reports_counters_and_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(
        server.post_rc(&telephony("h1", "s-h", 2, "Setup")).status,
        200
    );
    let response = http(server.port, "GET", "/healthz", &[], b"");
    assert_eq!(response.status, 200);
    let health = response.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ringcentral"]["accepted"], 1);
    assert_eq!(health["ringcentral"]["token_required"], true);
    let text = response.text();
    assert!(
        !text.contains(RC_TOKEN) && !text.contains(RO_TOKEN),
        "{text}"
    );
    // A web page the desk user visits, its name pointed at 127.0.0.1 (DNS rebinding), gets
    // nothing; webhooks still take any Host, as a dealership's own proxy forwards them.
    for host in ["evil.example", "evil.example:8787", "127.0.0.1.nip.example"] {
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let refused = raw(server.port, request.as_bytes());
        assert_eq!(refused.status, 403, "{host}: {}", refused.text());
        assert!(!refused.text().contains("accepted"), "{}", refused.text());
    }
    let localhost = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(server.port, localhost.as_bytes()).status, 200);
    let body = telephony("h2", "s-h", 3, "Proceeding");
    let head = format!(
        "POST {RC_PATH} HTTP/1.1\r\nHost: calls.dealer.example\r\nContent-Type: application/json\r\n\
         Verification-Token: {RC_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let forwarded = raw(server.port, &[head.as_bytes(), &body].concat());
    assert_eq!(forwarded.status, 200, "{}", forwarded.text());
    server.stop();
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let listen = format!("127.0.0.1:{}", server.port);
    let out = run(dir.path(), &["status", "--listen", &listen]);
    assert!(
        out.status.success(),
        "--listen finds a serve on another port"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&listen));
    let mut child = crate::common::command(dir.path())
        .args(["status", "--listen", &listen])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("status");
    // `callpop status | head -0`: the reader is gone before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    server.stop();
}

/// Issue 25 #11 and #12: one engine per data dir, and the CLI finds it wherever it listens.
#[test]
fn a_second_serve_on_the_same_data_dir_is_refused_and_status_finds_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let listen = format!("127.0.0.1:{}", server.port);

    // A second serve on another port: refused before it touches anything, naming the first.
    let second = crate::common::command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", RC_TOKEN)
        .output()
        .expect("second serve");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("another CallPop is already running on")
            && stderr.contains(&format!("callpop serve (process {}", server.pid()))
            && stderr.contains(&format!("listening on {listen}")),
        "{stderr}"
    );

    // A serve on another data dir but the same port is told another CallPop holds the port.
    let other = tempfile::tempdir().expect("tempdir");
    let third = crate::common::command(other.path())
        .args(["serve", "--listen", &listen])
        .env("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", RC_TOKEN)
        .output()
        .expect("third serve");
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(!third.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Another CallPop is using port {}, so this one cannot receive calls",
            server.port
        )),
        "{stderr}"
    );

    // `callpop status` without --listen reads where the serve listens from the data dir.
    let out = run(dir.path(), &["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&listen), "{stdout}");
    let out = run(dir.path(), &["tunnel", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The first one still works, and once it stops the data dir is free again.
    let r = server.post_rc(&telephony("l1", "s-lock", 1, "Proceeding"));
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop();
    let out = run(dir.path(), &["status"]);
    assert!(!out.status.success(), "nothing runs there any more");
    let server = Server::start(dir.path());
    server.stop();
}

/// Issue 26: a fresh desk with no public address is "not receiving calls" in `callpop
/// status`; once calls arrive it is; Ringotel sending with another token makes it not
/// receiving again, with the reason; a scanner without a token changes nothing.
#[test]
fn status_tells_whether_calls_can_reach_the_desk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let status = || {
        let out = run(dir.path(), &["status"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let fresh = status();
    assert!(fresh.contains("NOT RECEIVING CALLS"), "{fresh}");
    assert!(fresh.contains("no public address"), "{fresh}");
    assert_eq!(
        crate::common::health(server.port)["status"],
        "not_receiving"
    );

    let ms = chrono::Utc::now().timestamp_millis();
    let start = |token: &str| {
        json!({"method": "StartCallActivity", "api_token": token,
               "params": {"call_id": format!("{ms}-tok"), "extension": "500",
                          "activity_type": "inbound", "caller_number": "+353212028252",
                          "call_start": ms}})
        .to_string()
    };
    assert_eq!(server.post_ro(start(RO_TOKEN).as_bytes()).status, 200);
    assert!(status().contains("receiving calls"), "{}", status());
    assert_eq!(crate::common::health(server.port)["status"], "ok");

    // A scanner: no token at all. Noise, counted only.
    let noise = json!({"method": "StartCallActivity", "params": {}}).to_string();
    assert_eq!(server.post_ro(noise.as_bytes()).status, 401);
    assert_eq!(crate::common::health(server.port)["status"], "ok");

    // The portal still has an old token: each call is refused, and lost.
    assert_eq!(
        server
            .post_ro(start("old-token-0123456789").as_bytes())
            .status,
        401
    );
    let health = crate::common::health(server.port);
    assert_eq!(health["status"], "not_receiving", "{health}");
    assert_eq!(health["attention"]["fix"], "ringotel");
    assert_eq!(health["ringotel"]["wrong_token"], 1);
    let said = status();
    assert!(
        said.contains("Ringotel is sending calls with a token"),
        "{said}"
    );
    server.stop();
}

#[test]
fn healthz_flags_credentials_kept_in_the_file_because_no_keyring_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead_bus = format!("unix:path={}", dir.path().join("no-bus").display());
    let server = Server::start_with(
        dir.path(),
        &[
            ("CALLPOP_SECRET_STORE", "auto"),
            ("DBUS_SESSION_BUS_ADDRESS", &dead_bus),
        ],
    );
    let health = http(server.port, "GET", "/healthz", &[], b"").json();
    let part = &health["parts"]["credentials"];
    assert_eq!(part["state"], "fallback", "{health}");
    let detail = part["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("no OS keyring answered") && detail.contains("secrets.json"),
        "{detail}"
    );
    server.stop();

    // Chosen on purpose, the file is not a problem to flag.
    let server = Server::start_with(dir.path(), &[("CALLPOP_SECRET_STORE", "file")]);
    let health = http(server.port, "GET", "/healthz", &[], b"").json();
    assert_eq!(health["parts"]["credentials"]["state"], "file", "{health}");
    server.stop();
}

#[test]
fn other_ringcentral_events_are_stored_and_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let reminder = json!({
        "uuid": "r-1", "event": "/restapi/v1.0/subscription/~?threshold=86400&interval=3600",
        "subscriptionId": "dd2f0ff2-580e-4581-a277-76f9c9a54bc9", "timestamp": "2026-11-20T15:00:00Z",
        "body": {"expiresIn": 86000}
    });
    let unknown =
        json!({"uuid": "u-1", "event": "/restapi/v1.0/glip/posts", "body": {"text": "hi"}});
    let store = json!({"uuid": "m-1", "event": "/restapi/v1.0/account/1/extension/2/message-store",
                       "body": {"extensionId": "2", "changes": [{"type": "VoiceMail", "newCount": 1}]}});
    for body in [reminder, unknown, store] {
        let response = server.post_rc(body.to_string().as_bytes());
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let log = server.log();
    server.stop();
    assert!(
        log.contains("expires soon"),
        "the reminder reaches the subscription part: {log}"
    );
    let kinds: Vec<String> = crate::common::db(dir.path())
        .prepare("SELECT kind FROM raw_events ORDER BY id")
        .expect("sql")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(kinds, ["renewal_reminder", "unknown", "message_store"]);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM calls"), 0);
}

#[test]
fn search_finds_numbers_in_any_format_names_and_extensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(
        server
            .post_rc(&telephony("s1", "s-search", 2, "Setup"))
            .status,
        200
    );
    server.stop();
    for query in [
        "(415) 555-0123",
        "4155550123",
        "+1 415 555",
        "555-01",
        "jane",
        "Roe",
        "101",
        "Alice",
    ] {
        let out = run(dir.path(), &["calls", "--json", "--search", query]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            1,
            "search {query:?} finds the call"
        );
    }
    for query in ["999", "Bob", "102"] {
        let out = run(dir.path(), &["calls", "--json", "--search", query]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            0,
            "search {query:?} finds nothing"
        );
    }
    let mine = |watch: &str| {
        let out = crate::common::command(dir.path())
            .args(["calls", "--json", "--mine"])
            .env("CALLPOP_WATCH_EXTENSIONS", watch)
            .output()
            .expect("run");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(mine("101,105"), 1);
    assert_eq!(mine("102"), 0);
    assert_eq!(mine(""), 1, "an empty watch list watches everything");
    let out = run(dir.path(), &["calls", "--csv"]);
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(csv.starts_with("id,started_at,direction"), "{csv}");
    assert_eq!(csv.lines().count(), 2);
    // The filters for live calls and for calls whose end never came are accepted.
    let listed = |args: &[&str]| {
        let out = run(dir.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let live = calls_json(dir.path())[0]["state"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(listed(&["calls", "--json", "--state", &live]), 1);
    assert_eq!(listed(&["calls", "--json", "--state", "ended"]), 0);
    assert_eq!(
        listed(&["calls", "--json", "--result", "no_end_reported"]),
        0
    );
    // Times in the CSV carry the local offset (a desk five hours behind UTC here).
    let out = crate::common::command(dir.path())
        .args(["calls", "--csv"])
        .env("TZ", "EST5")
        .output()
        .expect("run");
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let started = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .unwrap_or("");
    assert!(started.ends_with("-05:00"), "{csv}");
    let out = run(dir.path(), &["calls", "--since", "bogus"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a time"));
}

/// Issue 25 #7: a transfer that 202 does not pick up is 202's missed call, though reception
/// answered the call; a filter on an extension uses that extension's own outcome.
#[test]
fn a_desk_finds_its_own_missed_call_after_a_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let now = chrono::Utc::now();
    let reception = Some(("62264425016", "201", "Reception"));
    let sales = Some(("62264425017", "202", "Sales"));
    let event = |uuid: &str, party: &str, ext, seq, code: &str, at| {
        crate::common::rc_party_event(uuid, "s-xfer-miss", party, ext, "Inbound", seq, code, at)
    };
    let s = chrono::Duration::seconds;
    for body in [
        crate::common::rc_party_event("t1", "s-xfer-miss", "p1", None, "Outbound", 1, "Setup", now),
        event("t2", "p2", reception, 2, "Proceeding", now),
        event("t3", "p2", reception, 3, "Answered", now + s(5)),
        event("t4", "p2", reception, 4, "Disconnected", now + s(30)),
        event("t5", "p3", sales, 5, "Proceeding", now + s(31)),
        event("t6", "p3", sales, 6, "Disconnected", now + s(60)),
        crate::common::rc_party_event(
            "t7",
            "s-xfer-miss",
            "p1",
            None,
            "Outbound",
            7,
            "Disconnected",
            now + s(61),
        ),
    ] {
        let r = server.post_rc(&body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    server.stop();
    let found = |args: &[&str]| {
        let out = run(dir.path(), args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(
        calls_json(dir.path())[0]["result"],
        "answered",
        "the call was answered"
    );
    assert_eq!(found(&["calls", "--json", "--result", "answered"]), 1);
    for (desk, result, calls) in [
        ("202", "missed", 1),
        ("202", "answered", 0),
        ("201", "answered", 1),
        ("201", "missed", 0),
    ] {
        let args = ["calls", "--json", "--extension", desk, "--result", result];
        assert_eq!(found(&args), calls, "{desk} {result}");
    }
    // With a search term the extension is checked, not walked: the same answer.
    assert_eq!(
        found(&[
            "calls",
            "--json",
            "--search",
            "jane",
            "--extension",
            "202",
            "--result",
            "missed"
        ]),
        1
    );
    let mine = crate::common::command(dir.path())
        .args(["calls", "--json", "--mine", "--result", "missed"])
        .env("CALLPOP_WATCH_EXTENSIONS", "202")
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&mine.stdout).lines().count(), 1);
}

/// Issue 25 #3b: a call whose end never came is ended as `no_end_reported` by the running
/// engine (here at its next start), and its real end, arriving after all, still wins.
#[test]
fn a_call_whose_end_never_came_gets_no_end_reported_until_the_end_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let ring = crate::common::rc_party_event(
        "u1",
        "s-lost",
        "p2",
        None,
        "Inbound",
        2,
        "Proceeding",
        hour_ago,
    );
    assert_eq!(server.post_rc(&ring).status, 200);
    assert_eq!(calls_json(dir.path())[0]["state"], "ringing");
    server.stop();

    let server = Server::start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls_json(dir.path())[0]["result"] != "no_end_reported" {
        assert!(Instant::now() < deadline, "{:#}", calls_json(dir.path())[0]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let call = &calls_json(dir.path())[0];
    assert_eq!(call["state"], "ended");
    let out = run(
        dir.path(),
        &["calls", "--json", "--result", "no_end_reported"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = run(dir.path(), &["calls", "--json", "--state", "ringing"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 0);

    let end = crate::common::rc_party_event(
        "u2",
        "s-lost",
        "p2",
        None,
        "Inbound",
        3,
        "Disconnected",
        hour_ago,
    );
    assert_eq!(server.post_rc(&end).status, 200);
    let real = &calls_json(dir.path())[0];
    assert_eq!(real["state"], "ended");
    assert!(
        real["result"].is_string() && real["result"] != "no_end_reported",
        "{real:#}"
    );
    server.stop();
}

/// Issue 25 #8: a Ringotel caller with an accented, hyphenated name is found as people type
/// it, and the name Ringotel gives the called side is kept.
#[test]
fn ringotel_names_are_kept_and_found_without_accents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let ms = chrono::Utc::now().timestamp_millis();
    let start = json!({"method": "StartCallActivity", "api_token": RO_TOKEN,
        "params": {"call_id": format!("{ms}-names"), "extension": "500",
                   "activity_type": "inbound", "caller_number": "+353212028252",
                   "caller_name": "José Müller-O'Brien", "called_number": "500",
                   "called_name": "Sales Desk", "call_start": ms}});
    let r = server.post_ro(start.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop();
    let calls = calls_json(dir.path());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["to_name"], "Sales Desk", "{:#}", calls[0]);
    for query in [
        "jose",
        "muller",
        "obrien",
        "O'Brien",
        "MÜLLER",
        "sales desk",
    ] {
        let out = run(dir.path(), &["calls", "--json", "--search", query]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            1,
            "search {query:?} finds the call"
        );
    }
}

/// Call rows without the time they were last written (a replay rewrites it).
fn without_updated_at(mut rows: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    for row in &mut rows {
        row.as_object_mut().expect("object").remove("updated_at");
    }
    rows
}

#[test]
fn a_call_with_a_single_delivery_replays_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(
        server
            .post_rc(&telephony("one-1", "s-one", 2, "Setup"))
            .status,
        200
    );
    assert_eq!(
        server
            .post_rc(&telephony("two-1", "s-two", 2, "Setup"))
            .status,
        200
    );
    server.stop();
    let before = calls_json(dir.path());
    for args in [
        &["events", "replay", "1"][..],
        &["events", "replay", "--all"][..],
    ] {
        let out = run(dir.path(), args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("0 calls changed"), "{args:?}: {stdout}");
    }
    assert_eq!(
        without_updated_at(calls_json(dir.path())),
        without_updated_at(before)
    );
}

#[test]
fn replay_is_idempotent_and_resolves_quarantine_a_newer_parser_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    for (i, code) in ["Setup", "Answered", "Disconnected"].iter().enumerate() {
        let body = telephony(&format!("rp-{i}"), "s-replay", i as i64 + 2, code);
        assert_eq!(server.post_rc(&body).status, 200);
    }
    server.stop();
    let before = calls_json(dir.path());
    // Simulate a body an older version could not read.
    let good = telephony("rp-late", "s-replay-2", 2, "Setup");
    crate::common::db_rw(dir.path())
        .execute(
            "INSERT INTO quarantine (provider, received_at, last_received_at, reason, body_sha256, headers, body)
             VALUES ('ringcentral', 1, 1, 'old parser could not read it', 'abc', '{}', ?1)",
            [&good],
        )
        .expect("insert");
    let out = run(dir.path(), &["events", "replay", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(dir.path(), &["events", "replay", "--all"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 calls changed"));
    assert_eq!(
        without_updated_at(calls_json(dir.path())),
        without_updated_at(before),
        "replay changed nothing"
    );
    let out = run(dir.path(), &["events", "replay", "--quarantined"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stored"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(calls_json(dir.path()).len(), 2);
    let out = run(dir.path(), &["events", "replay", "999"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stored delivery"));
    let out = run(dir.path(), &["events", "--call", "1", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let body = telephony("inflight", "s-inflight", 2, "Setup");
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let head = format!(
        "POST {RC_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Verification-Token: {RC_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&body[..body.len() / 2]).expect("half");
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.pid();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&body[body.len() / 2..]).expect("rest");
    let mut buf = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = stream.read_to_end(&mut buf);
    let response = crate::common::parse_response(&buf);
    assert_eq!(response.status, 200, "{}", response.text());
    let status = server.stop();
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(count(dir.path(), "SELECT count(*) FROM raw_events"), 1);
}

#[test]
fn history_files_are_private_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let first_run = server.stdout.join("\n");
    server.stop();
    assert!(
        first_run.contains("New webhook tokens were generated")
            || first_run.contains("Webhook tokens")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("callpop.db"))
            .expect("db")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "history readable by others: {mode:o}");
    }
    crate::common::db_rw(dir.path())
        .pragma_update(None, "user_version", 99)
        .expect("pretend a newer version wrote it");
    let out = crate::common::command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer CallPop"), "{err}");
    assert_eq!(
        crate::common::db(dir.path())
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .expect("version"),
        99,
        "left untouched"
    );
}

#[test]
fn generated_tokens_are_printed_once_and_then_only_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &[]);
    let banner = server.stdout.join("\n");
    server.stop();
    assert!(
        banner.contains("New webhook tokens were generated"),
        "{banner}"
    );
    let secrets: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("secrets.json")).expect("secrets"),
    )
    .expect("json");
    let token = secrets["ringcentral_verification_token"]
        .as_str()
        .expect("token");
    assert!(banner.contains(token));
    let server = Server::start_with(dir.path(), &[]);
    let banner = server.stdout.join("\n");
    // The generated token authenticates deliveries.
    let response = server.post(
        RC_PATH,
        &[
            ("Content-Type", "application/json"),
            ("Verification-Token", token),
        ],
        &telephony("g1", "s-gen", 2, "Setup"),
    );
    assert_eq!(response.status, 200);
    server.stop();
    assert!(
        !banner.contains(token),
        "second start does not print secrets"
    );
    assert!(banner.contains("Webhook tokens:      set"), "{banner}");
    let out = run(dir.path(), &["tokens"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(token));
    let out = run(dir.path(), &["tokens", "--reveal"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(token));
}
