//! Hostile input over HTTP: the real `callpop serve` on 127.0.0.1 fed malformed, oversized,
//! deeply nested, mistyped, header-heavy and slow requests on both webhook endpoints, with and
//! without the right token. Every request must get a 4xx (or, for a usable authenticated body,
//! a 200), within a client-side deadline; the server must stay up, keep its memory bounded,
//! keep serving normal deliveries, and leave what it stored before the attack untouched.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{
    connect_from, db, request_bytes, Response, Server, RC_PATH, RC_TOKEN, RO_PATH, RO_TOKEN,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// No single request may take longer than this to be answered or closed.
const CLIENT_DEADLINE: Duration = Duration::from_secs(20);
/// The server's resident memory after the oversized cases must stay under this.
const RSS_LIMIT_KIB: u64 = 200 * 1024;
const WRONG_TOKEN: &str = "not-the-token-0000";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    RingCentral,
    Ringotel,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::RingCentral => RC_PATH,
            Endpoint::Ringotel => RO_PATH,
        }
    }

    /// The token this endpoint expects, or a wrong one.
    fn token(self, authenticated: bool) -> &'static str {
        match (self, authenticated) {
            (_, false) => WRONG_TOKEN,
            (Endpoint::RingCentral, true) => RC_TOKEN,
            (Endpoint::Ringotel, true) => RO_TOKEN,
        }
    }
}

/// Sends `bytes` from one thread while reading the reply on another, so a server that answers
/// early (413) and closes is seen answering rather than as a broken pipe. Errors when nothing
/// came back within [`CLIENT_DEADLINE`].
fn exchange(port: u16, bytes: Vec<u8>) -> Result<Response, String> {
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(CLIENT_DEADLINE))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || {
        for chunk in bytes.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut failure = None;
    loop {
        match (&stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let _ = sender.join();
    if received.windows(4).any(|w| w == b"\r\n\r\n") {
        return Ok(crate::common::parse_response(&received));
    }
    Err(format!(
        "no response after {:?} ({})",
        started.elapsed(),
        failure.map_or("connection closed".to_string(), |e| e.to_string())
    ))
}

/// Posts `body` to `endpoint`; on the RingCentral endpoint the token travels in a header
/// (the Ringotel token is inside the body already).
fn post(port: u16, endpoint: Endpoint, authenticated: bool, body: &[u8]) -> Response {
    let mut headers = vec![("Content-Type", "application/json")];
    if endpoint == Endpoint::RingCentral {
        headers.push(("Verification-Token", endpoint.token(authenticated)));
    }
    exchange(
        port,
        request_bytes(port, "POST", endpoint.path(), &headers, body),
    )
    .unwrap_or_else(|e| panic!("{endpoint:?}: {e}"))
}

fn rc_telephony(uuid: &str, session: &str, caller: &str) -> Value {
    let mut delivery = crate::common::rc_telephony(uuid, session, 2, "Setup", caller);
    // Every optional party field the parser reads, so the mistyped-field sweep reaches them.
    let party = &mut delivery["body"]["parties"][0];
    party["status"]["reason"] = json!("CallerInputRedirect");
    party["missedCall"] = json!(false);
    party["queueCall"] = json!(false);
    party["recordings"] = json!([{"id": "rec-1"}]);
    delivery
}

fn rc_presence(uuid: &str, session: &str) -> Value {
    json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/~/extension/62264425016/presence?detailedTelephonyState=true",
        "timestamp": "2026-11-20T15:00:06.500Z",
        "body": {
            "extensionId": "62264425016",
            "sequence": 5001,
            "activeCalls": [{
                "direction": "Inbound",
                "queueCall": false,
                "from": "+14155550123",
                "fromName": "WIRELESS CALLER",
                "to": "+16505550100",
                "toName": "Front desk",
                "telephonyStatus": "Ringing",
                "startTime": "2026-11-20T15:00:06.200Z",
                "partyId": format!("{session}-3"),
                "telephonySessionId": session
            }]
        }
    })
}

fn rc_voicemail(uuid: &str, message: &str) -> Value {
    json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/~/extension/62264425016/voicemail",
        "timestamp": "2026-11-20T15:01:06.000Z",
        "body": {
            "id": message,
            "to": [{"name": "Alice Sales", "extensionNumber": "101", "extensionId": "62264425016"}],
            "from": {"phoneNumber": "+13105550142", "name": "Caller"},
            "creationTime": "2026-11-20T15:00:46.000Z",
            "attachments": [{
                "uri": "https://platform.ringcentral.com/restapi/v1.0/account/1/extension/2/message-store/3/content/3",
                "type": "AudioRecording",
                "vmDuration": 22
            }]
        }
    })
}

fn rc_reminder(uuid: &str) -> Value {
    json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/subscription/~?threshold=86400&interval=3600",
        "subscriptionId": "dd2f0ff2-580e-4581-a277-76f9c9a54bc9",
        "timestamp": "2026-11-20T15:00:00Z",
        "body": {"expiresIn": 86000}
    })
}

fn ro_call(token: &str, method: &str, call_id: &str, caller: &str) -> Value {
    let mut params = json!({
        "connection_name": "PBX",
        "extension": "500",
        "user_id": "00000178654321098765",
        "activity_type": "inbound",
        "called_number": "500",
        "caller_number": "353212028252",
        "caller_name": caller,
        "called_name": "Desk",
        "call_id": call_id,
        "call_start": 1_763_650_800_000u64
    });
    match method {
        "StopCallActivity" => {
            params["call_end"] = json!(1_763_650_841_000u64);
            params["call_duration"] = json!(27);
            params["call_cause"] = json!("0");
        }
        "UpdateCallRecording" => {
            params["recording_id"] = json!("r-1");
            params["recording_url"] = json!("https://recordings.example/1.mp3");
            params["recording"] = json!({"link": "https://recordings.example/2.mp3"});
        }
        _ => {}
    }
    json!({"method": method, "api_token": token, "params": params})
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Every object member and first array element of `v`, as paths.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(inner, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                prefix.push("0".into());
                out.push(prefix.clone());
                paths(first, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn replace(v: &mut Value, path: &[String], with: Value) {
    let mut at = v;
    for seg in path {
        at = match at {
            Value::Object(map) => map.get_mut(seg).expect("path exists"),
            Value::Array(items) => &mut items[seg.parse::<usize>().expect("index")],
            _ => unreachable!("paths only go through containers"),
        };
    }
    *at = with;
}

/// Values of every JSON type (and a few awkward ones of the right type).
fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!(""),
        json!("x\u{202E}<script>"),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"a": [null]}),
    ]
}

/// Malformed or ambiguous bodies, each with the statuses an authenticated sender may get for
/// it. `token` goes where the body would carry one (Ringotel).
fn malformed_bodies(endpoint: Endpoint, token: &str) -> Vec<(String, Vec<u8>, &'static [u16])> {
    let valid = match endpoint {
        Endpoint::RingCentral => bytes(&rc_telephony("m-1", "s-malformed", "Jane")),
        Endpoint::Ringotel => bytes(&ro_call(token, "StartCallActivity", "c-malformed", "Jane")),
    };
    let mut cases: Vec<(String, Vec<u8>, &'static [u16])> = Vec::new();
    for cut in [1, valid.len() / 3, valid.len() / 2, valid.len() - 1] {
        cases.push((format!("truncated at {cut}"), valid[..cut].to_vec(), &[400]));
    }
    cases.push(("100,000 [".into(), "[".repeat(100_000).into_bytes(), &[400]));
    cases.push((
        "100,000 nested arrays, closed".into(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        &[400],
    ));
    cases.push((
        "100,000 nested objects".into(),
        "{\"a\":".repeat(100_000).into_bytes(),
        &[400],
    ));
    let deep_inside = "[".repeat(50_000) + &"]".repeat(50_000);
    let inner = match endpoint {
        Endpoint::RingCentral => format!(
            r#"{{"uuid":"m-2","event":"/restapi/v1.0/account/1/telephony/sessions","body":{deep_inside}}}"#
        ),
        Endpoint::Ringotel => format!(
            r#"{{"method":"StartCallActivity","api_token":"{token}","params":{deep_inside}}}"#
        ),
    };
    cases.push((
        "deep nesting inside a valid envelope".into(),
        inner.into_bytes(),
        &[400],
    ));
    let deep_value = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_field = match endpoint {
        Endpoint::RingCentral => rc_telephony("m-3", "s-deep", "Jane").to_string(),
        Endpoint::Ringotel => ro_call(token, "StartCallActivity", "c-deep", "Jane").to_string(),
    }
    .replacen("\"Jane\"", &deep_value, 1);
    cases.push((
        "deep nesting in one field".into(),
        deep_field.into_bytes(),
        &[400],
    ));
    let text = String::from_utf8(valid).expect("utf-8");
    let splice = |needle: &str, with: &[u8]| -> Vec<u8> {
        let at = text.find(needle).expect("needle in the body");
        let mut body = text.as_bytes()[..at].to_vec();
        body.extend_from_slice(with);
        body.extend_from_slice(&text.as_bytes()[at + needle.len()..]);
        body
    };
    for (label, bad) in [
        ("invalid UTF-8 in a value", &b"Ja\xff\xfene"[..]),
        ("overlong UTF-8", &b"Ja\xc0\xafne"[..]),
        ("UTF-8 surrogate", &b"Ja\xed\xa0\x80ne"[..]),
        ("raw NUL in a string", &b"Ja\x00ne"[..]),
        ("raw ESC in a string", &b"Ja\x1b[2Jne"[..]),
    ] {
        cases.push((label.into(), splice("Jane", bad), &[400]));
    }
    let key = match endpoint {
        Endpoint::RingCentral => "\"uuid\"",
        Endpoint::Ringotel => "\"method\"",
    };
    cases.push((
        "invalid UTF-8 in a key".into(),
        splice(key, b"\"u\xffid\""),
        &[400],
    ));
    cases.push((
        "lone surrogate escape".into(),
        text.replacen("Jane", "\\ud800", 1).into_bytes(),
        &[400],
    ));
    for (label, number) in [
        ("f64 overflow", "1e400"),
        ("negative f64 overflow", "-1e400"),
        ("i64 overflow", "9223372036854775808"),
        ("i64 underflow", "-9223372036854775809"),
        ("u64 overflow", "18446744073709551616"),
        ("huge integer", &"9".repeat(5_000)),
    ] {
        let body = match endpoint {
            Endpoint::RingCentral => {
                text.replacen("\"sequence\":2", &format!("\"sequence\":{number}"), 1)
            }
            Endpoint::Ringotel => text.replacen(
                "\"call_start\":1763650800000",
                &format!("\"call_start\":{number}"),
                1,
            ),
        };
        assert_ne!(body, text, "{label}: the number was put in");
        cases.push((format!("number: {label}"), body.into_bytes(), &[400]));
    }
    for (label, body) in [
        (
            "not JSON",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
        ("JSON null", b"null".to_vec()),
        ("JSON string", b"\"\\u202e\"".to_vec()),
        ("top-level array", format!("[{text}]").into_bytes()),
        ("two documents", format!("{text}{text}").into_bytes()),
        ("empty object", b"{}".to_vec()),
    ] {
        cases.push((label.into(), body, &[400]));
    }
    // Duplicate keys: JSON's last-one-wins, as serde_json reads them everywhere, so a body
    // means one thing to the token check, the parser and the redaction alike.
    let duplicated = match endpoint {
        Endpoint::RingCentral => {
            text.replacen("{\"uuid\":", "{\"uuid\":\"dup-first\",\"uuid\":", 1)
        }
        Endpoint::Ringotel => text.replacen(
            "{\"method\":",
            "{\"method\":\"ContactLookup\",\"method\":",
            1,
        ),
    };
    assert_ne!(duplicated, text);
    cases.push((
        "duplicate keys at the top".into(),
        duplicated.into_bytes(),
        &[200],
    ));
    let duplicated = match endpoint {
        Endpoint::RingCentral => text.replacen(
            "\"telephonySessionId\":",
            "\"telephonySessionId\":\"s-dup-first\",\"telephonySessionId\":",
            1,
        ),
        Endpoint::Ringotel => text.replacen(
            "\"call_id\":",
            "\"call_id\":\"c-dup-first\",\"call_id\":",
            1,
        ),
    };
    assert_ne!(duplicated, text);
    cases.push((
        "duplicate keys inside".into(),
        duplicated
            .replacen("\"uuid\":\"m-1\"", "\"uuid\":\"m-dup-inside\"", 1)
            .into_bytes(),
        &[200],
    ));
    let wide: String = (0..40_000)
        .map(|i| format!("\"k{i}\":{i}"))
        .collect::<Vec<_>>()
        .join(",");
    cases.push((
        "40,000 keys".into(),
        format!("{{{wide}}}").into_bytes(),
        &[400],
    ));
    cases
}

/// What the server reports (`/healthz`), as counters summed over both providers.
fn counters(port: u16) -> (u64, u64, u64) {
    let h = crate::common::health(port);
    let sum = |k: &str| {
        ["ringcentral", "ringotel"]
            .iter()
            .map(|p| h[p][k].as_u64().expect("counter"))
            .sum::<u64>()
    };
    (sum("accepted"), sum("duplicates"), sum("quarantined"))
}

/// Every row of a table, in id order, with every column: a change anywhere shows.
fn table_checksum(conn: &rusqlite::Connection, sql: &str) -> (usize, String) {
    let mut stmt = conn.prepare(sql).expect(sql);
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).expect("query");
    let mut hash = Sha256::new();
    let mut n = 0;
    while let Some(row) = rows.next().expect("row") {
        n += 1;
        for i in 0..columns {
            let v: rusqlite::types::Value = row.get(i).expect("column");
            hash.update(format!("{v:?}\u{1f}").as_bytes());
        }
        hash.update(b"\x1e");
    }
    (n, hex::encode(hash.finalize()))
}

/// The rows stored before the attack (ids up to the given ones), by table.
fn stored_before(dir: &std::path::Path, calls_upto: i64, raw_upto: i64) -> Vec<(usize, String)> {
    // The seed has one voicemail.
    let voicemails_upto = 1;
    let conn = db(dir);
    vec![
        table_checksum(
            &conn,
            &format!("SELECT * FROM calls WHERE id <= {calls_upto} ORDER BY id"),
        ),
        table_checksum(
            &conn,
            &format!("SELECT * FROM raw_events WHERE id <= {raw_upto} ORDER BY id"),
        ),
        table_checksum(
            &conn,
            &format!(
                "SELECT * FROM call_events WHERE raw_event_id <= {raw_upto} ORDER BY raw_event_id, ordinal"
            ),
        ),
        table_checksum(
            &conn,
            &format!("SELECT * FROM voicemails WHERE id <= {voicemails_upto} ORDER BY id"),
        ),
    ]
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn seed(server: &Server) {
    let deliveries = [
        (
            Endpoint::RingCentral,
            bytes(&rc_telephony("seed-1", "s-seed", "Jane Roe")),
        ),
        (
            Endpoint::RingCentral,
            bytes(&rc_voicemail("seed-2", "vm-seed")),
        ),
        (
            Endpoint::RingCentral,
            bytes(&rc_presence("seed-3", "s-seed-p")),
        ),
        (
            Endpoint::Ringotel,
            bytes(&ro_call(RO_TOKEN, "StartCallActivity", "c-seed", "Ann")),
        ),
        (
            Endpoint::Ringotel,
            bytes(&ro_call(RO_TOKEN, "StopCallActivity", "c-seed", "Ann")),
        ),
    ];
    for (endpoint, body) in deliveries {
        let r = post(server.port, endpoint, true, &body);
        assert_eq!(r.status, 200, "seed {endpoint:?}: {}", r.text());
        assert_eq!(r.json()["status"], "accepted");
    }
}

fn max_id(dir: &std::path::Path, table: &str) -> i64 {
    crate::common::count(dir, &format!("SELECT coalesce(max(id), 0) FROM {table}"))
}

#[test]
fn hostile_bodies_get_4xx_and_stored_data_is_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    seed(&server);
    let (calls_upto, raw_upto) = (
        max_id(dir.path(), "calls"),
        max_id(dir.path(), "raw_events"),
    );
    assert_eq!(calls_upto, 3, "two RingCentral calls and one Ringotel call");
    let before = stored_before(dir.path(), calls_upto, raw_upto);
    let rows: Vec<usize> = before.iter().map(|(n, _)| *n).collect();
    assert!(
        rows[0] == 3 && rows[1] == 5 && rows[2] > 0 && rows[3] == 1,
        "seed rows: {rows:?}"
    );
    let counted_before = counters(server.port);

    for endpoint in [Endpoint::RingCentral, Endpoint::Ringotel] {
        for authenticated in [true, false] {
            for (label, body, allowed) in malformed_bodies(endpoint, endpoint.token(authenticated))
            {
                let r = post(server.port, endpoint, authenticated, &body);
                let context = format!(
                    "{endpoint:?} authenticated={authenticated} {label}: {}",
                    r.text()
                );
                if authenticated {
                    assert!(allowed.contains(&r.status), "{context}");
                } else {
                    // Nothing from a stranger is read further than needed to refuse it.
                    assert!(matches!(r.status, 400 | 401), "{context}");
                    if endpoint == Endpoint::RingCentral {
                        assert_eq!(r.status, 401, "{context}");
                    }
                }
                if r.status != 200 {
                    let error = r.json();
                    assert!(
                        error["error"]["message"]
                            .as_str()
                            .is_some_and(|m| !m.is_empty()),
                        "{context}"
                    );
                }
            }
        }
    }

    // Every field of every kind of delivery, with a value of every type, sent from several
    // connections at once (the store commits concurrent deliveries together).
    let rc_templates = [
        rc_telephony("t", "s-typed", "Typed"),
        rc_presence("p", "s-typed-p"),
        rc_voicemail("v", "vm-typed"),
        rc_reminder("r"),
    ];
    let ro_templates = [
        "StartCallActivity",
        "StopCallActivity",
        "UpdateCallRecording",
    ]
    .map(|m| ro_call(RO_TOKEN, m, "c-typed", "Typed"));
    let mut jobs: Vec<(Endpoint, String, Value)> = Vec::new();
    for (endpoint, templates) in [
        (Endpoint::RingCentral, &rc_templates[..]),
        (Endpoint::Ringotel, &ro_templates[..]),
    ] {
        for template in templates {
            let mut all = Vec::new();
            paths(template, &mut Vec::new(), &mut all);
            for path in &all {
                for value in wrong_values() {
                    // Fresh ids everywhere but the field under test, so each delivery is new
                    // and each call small.
                    let mut body = template.clone();
                    let n = jobs.len();
                    for (key, id) in [
                        (&["uuid"][..], format!("typed-{n}")),
                        (&["body", "telephonySessionId"], format!("s-typed-{n}")),
                        (
                            &["body", "activeCalls", "0", "telephonySessionId"],
                            format!("s-typed-{n}"),
                        ),
                        (&["body", "id"], format!("vm-typed-{n}")),
                        (&["params", "call_id"], format!("c-typed-{n}")),
                    ] {
                        let key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
                        if all.contains(&key) {
                            replace(&mut body, &key, json!(id));
                        }
                    }
                    replace(&mut body, path, value.clone());
                    jobs.push((endpoint, format!("{} = {value}", path.join(".")), body));
                }
            }
        }
    }
    assert!(jobs.len() > 500, "{} mistyped deliveries", jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    std::thread::scope(|scope| {
        for _ in 0..12 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((endpoint, what, body)) = jobs.get(i) else {
                    return;
                };
                let r = post(server.port, *endpoint, true, &bytes(body));
                *statuses.lock().expect("lock").entry(r.status).or_default() += 1;
                let context = format!("{endpoint:?} {what}: {}", r.text());
                if what.starts_with("api_token =") {
                    assert!(matches!(r.status, 400 | 401), "{context}");
                } else {
                    assert!(matches!(r.status, 200 | 400), "{context}");
                }
                if r.status == 400 {
                    assert_eq!(r.json()["error"]["code"], "invalid_body", "{context}");
                }
                if i.is_multiple_of(7) {
                    // The same body from a stranger never gets in.
                    let mut body = body.clone();
                    if *endpoint == Endpoint::Ringotel && body.is_object() {
                        body["api_token"] = json!(WRONG_TOKEN);
                    }
                    let r = post(server.port, *endpoint, false, &bytes(&body));
                    assert!(matches!(r.status, 400 | 401), "stranger: {context}");
                }
            });
        }
    });
    let statuses = statuses.into_inner().expect("lock");
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400),
        "{statuses:?}"
    );

    // Huge and many headers: refused by the HTTP layer before any handler runs.
    let long = "a".repeat(512 * 1024);
    let many: Vec<(String, String)> = (0..5_000)
        .map(|i| (format!("X-Junk-{i}"), "v".repeat(64)))
        .collect();
    for endpoint in [Endpoint::RingCentral, Endpoint::Ringotel] {
        let body = bytes(&rc_telephony("h-1", "s-headers", "Jane"));
        for authenticated in [true, false] {
            let token = endpoint.token(authenticated);
            let mut headers = vec![
                ("Content-Type", "application/json"),
                ("Verification-Token", token),
            ];
            headers.push(("X-Long", long.as_str()));
            let r = exchange(
                server.port,
                request_bytes(server.port, "POST", endpoint.path(), &headers, &body),
            )
            .expect("a reply to one long header");
            assert_eq!(r.status, 431, "long header: {}", r.head);
            let mut headers = vec![
                ("Content-Type", "application/json"),
                ("Verification-Token", token),
            ];
            headers.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let r = exchange(
                server.port,
                request_bytes(server.port, "POST", endpoint.path(), &headers, &body),
            )
            .expect("a reply to many headers");
            assert_eq!(r.status, 431, "many headers: {}", r.head);
        }
    }

    // Oversized: declared and streamed, many at once; memory stays bounded.
    let big = vec![b' '; 16 * 1024 * 1024];
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..16 {
            let endpoint = if i % 2 == 0 {
                Endpoint::RingCentral
            } else {
                Endpoint::Ringotel
            };
            let big = &big;
            let port = server.port;
            handles.push(scope.spawn(move || {
                let authenticated = i % 4 < 2;
                let token = endpoint.token(authenticated);
                let declared = request_bytes(
                    port,
                    "POST",
                    endpoint.path(),
                    &[
                        ("Content-Type", "application/json"),
                        ("Verification-Token", token),
                    ],
                    big,
                );
                let r = exchange(port, declared).expect("declared oversized");
                assert_eq!(r.status, 413, "declared: {}", r.text());
                let mut chunked = request_bytes(
                    port,
                    "POST",
                    endpoint.path(),
                    &[
                        ("Content-Type", "application/json"),
                        ("Verification-Token", token),
                        ("Transfer-Encoding", "chunked"),
                    ],
                    b"",
                );
                for chunk in big.chunks(1024 * 1024) {
                    chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    chunked.extend_from_slice(chunk);
                    chunked.extend_from_slice(b"\r\n");
                }
                chunked.extend_from_slice(b"0\r\n\r\n");
                let r = exchange(port, chunked).expect("streamed oversized");
                // Without the token in its header a RingCentral body is refused before any
                // of it is read; its size is not known until then.
                let expected = match (endpoint, authenticated) {
                    (Endpoint::RingCentral, false) => 401,
                    _ => 413,
                };
                assert_eq!(r.status, expected, "streamed: {}", r.text());
                // A Content-Length that lies low: the rest is not part of this request.
                let mut lying = request_bytes(
                    port,
                    "POST",
                    endpoint.path(),
                    &[
                        ("Content-Type", "application/json"),
                        ("Verification-Token", token),
                        ("Content-Length", "10"),
                    ],
                    b"",
                );
                lying.extend_from_slice(&big[..2 * 1024 * 1024]);
                let r = exchange(port, lying).expect("short Content-Length");
                assert!(matches!(r.status, 400 | 401), "lying length: {}", r.text());
            }));
        }
        for h in handles {
            h.join().expect("oversized sender");
        }
    });
    let rss = rss_kib(server.pid());
    assert!(
        rss < RSS_LIMIT_KIB,
        "VmRSS {rss} KiB after the oversized requests"
    );

    // Huge but well-formed text: answered promptly, and the single store writer is not held up.
    let mut rng = crate::common::Rng(7);
    let huge: String = (0..900_000)
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect();
    for endpoint in [Endpoint::RingCentral, Endpoint::Ringotel] {
        let body = match endpoint {
            Endpoint::RingCentral => rc_telephony("huge-1", "s-huge", &huge),
            Endpoint::Ringotel => ro_call(RO_TOKEN, "StartCallActivity", "c-huge", &huge),
        };
        let started = Instant::now();
        let r = post(server.port, endpoint, true, &bytes(&body));
        assert!(
            matches!(r.status, 200 | 400),
            "{endpoint:?} huge name: {}",
            r.text()
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{endpoint:?} huge name took {:?}",
            started.elapsed()
        );
    }

    // Still serving: a normal delivery on each endpoint.
    let r = post(
        server.port,
        Endpoint::RingCentral,
        true,
        &bytes(&rc_telephony("after-1", "s-after", "Bob")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        server.port,
        Endpoint::Ringotel,
        true,
        &bytes(&ro_call(RO_TOKEN, "StartCallActivity", "c-after", "Bob")),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let (accepted, _, quarantined) = counters(server.port);
    let log = server.log();
    let status = server.stop();
    assert!(status.success(), "clean exit after the attack: {status:?}");
    assert!(!log.contains("panicked"), "{log}");

    assert_eq!(
        stored_before(dir.path(), calls_upto, raw_upto),
        before,
        "rows stored before the attack changed"
    );
    // Every accepted delivery is one stored row, every quarantined one is kept: nothing was
    // acknowledged without being stored, and nothing refused was stored.
    let raw_rows = crate::common::count(dir.path(), "SELECT count(*) FROM raw_events") as u64;
    assert_eq!(raw_rows, raw_upto as u64 + accepted - counted_before.0);
    let kept = crate::common::count(
        dir.path(),
        "SELECT coalesce(sum(occurrences), 0) FROM quarantine",
    ) as u64;
    assert_eq!(kept, quarantined - counted_before.2);
    // A repeated key means what its last occurrence says, to the token check and the parsers.
    let count = |sql: &str| crate::common::count(dir.path(), sql);
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE call_key IN ('s-malformed', 'c-malformed')"),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE call_key IN ('s-dup-first', 'c-dup-first')"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM raw_events WHERE dedup_key = 'dup-first' OR kind = 'ContactLookup'"),
        0
    );
    let leaked = crate::common::count(
        dir.path(),
        &format!(
            "SELECT (SELECT count(*) FROM raw_events WHERE instr(CAST(body AS TEXT), '{RO_TOKEN}') > 0)
                  + (SELECT count(*) FROM quarantine WHERE instr(CAST(body AS TEXT), '{RO_TOKEN}') > 0)"
        ),
    );
    assert_eq!(leaked, 0, "the Ringotel token is never stored");
}

/// A deliberately slow client: what it sends at once, then byte by byte how often, and how
/// the server must end it.
struct Slow {
    what: &'static str,
    at_once: Vec<u8>,
    trickle: Vec<u8>,
    every: Duration,
    /// Cut off within this long.
    within: Duration,
    /// Answered with a 408 (a body that is too slow) rather than just closed (headers).
    answered: bool,
}

/// How a deliberately slow connection ended.
#[derive(Debug)]
struct Ended {
    /// The reply, if the server sent one before closing.
    status: Option<u16>,
    /// Time from connecting to the server closing (or the client giving up).
    after: Duration,
    /// The server closed the connection (rather than the client giving up).
    closed_by_server: bool,
}

/// Connects, sends `head` at once, then `trickle` one byte at a time every `every` (looping
/// over it until the server closes), and reads until the server answers or closes.
fn slow_client(port: u16, head: Vec<u8>, trickle: Vec<u8>, every: Duration) -> Ended {
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(CLIENT_DEADLINE))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let sender = std::thread::spawn(move || {
        if writer.write_all(&head).is_err() {
            return;
        }
        for byte in trickle.iter().cycle() {
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(every);
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
        }
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed_by_server = loop {
        match (&stream).read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let after = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = stream.shutdown(Shutdown::Both);
    let _ = sender.join();
    let status = received
        .windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| crate::common::parse_response(&received).status);
    Ended {
        status,
        after,
        closed_by_server,
    }
}

#[test]
fn a_flood_of_connections_gets_503_past_the_limit_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    seed(&server);
    let stored = max_id(dir.path(), "raw_events");
    // Silent connections from several addresses, each its share, take every slot (each would
    // be cut off by the header timeout).
    let (total, share) = (
        callpop_engine::server::MAX_CONNECTIONS,
        callpop_engine::server::MAX_CONNECTIONS_PER_PEER,
    );
    let flood: Vec<TcpStream> = (0..total)
        .map(|i| connect_from([127, 0, 0, 2 + (i / share) as u8], server.port))
        .collect();
    // Wait until the server has accepted them all, or the delivery may be served first.
    std::thread::sleep(Duration::from_millis(300));
    let delivery = bytes(&rc_telephony("flood-1", "s-flood", "Flo Od"));

    let turned_away = post(server.port, Endpoint::RingCentral, true, &delivery);
    assert_eq!(turned_away.status, 503, "{}", turned_away.text());
    assert_eq!(turned_away.header("retry-after"), Some("5"));
    assert_eq!(max_id(dir.path(), "raw_events"), stored, "nothing stored");

    // Once the flood is gone the sender's retry is served and stored.
    drop(flood);
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let retried = loop {
        let r = post(server.port, Endpoint::RingCentral, true, &delivery);
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(retried.json()["status"], "accepted");
    assert_eq!(max_id(dir.path(), "raw_events"), stored + 1);
}

/// What one flooding connection does.
#[derive(Clone, Copy, Debug)]
enum FloodMove {
    /// A RingCentral request without a token that announces a large body and trickles it.
    TokenlessRingCentralBody,
    /// A Ringotel request (its token would be in the body) whose body trickles.
    SlowRingotelBody,
    /// Connects and says nothing.
    Silent,
}

/// One flooding connection from `source`: sends its head, trickles a byte every 200 ms for up
/// to `hold`, then gives up. The status it got, if any.
fn flood_once(source: [u8; 4], port: u16, how: FloodMove, hold: Duration) -> Option<u16> {
    let head = match how {
        FloodMove::TokenlessRingCentralBody => format!(
            "POST {RC_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{"
        ),
        FloodMove::SlowRingotelBody => format!(
            "POST {RO_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{"
        ),
        FloodMove::Silent => String::new(),
    };
    let mut stream = connect_from(source, port);
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    if stream.write_all(head.as_bytes()).is_err() {
        return None;
    }
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < hold {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if received.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if !head.is_empty() && stream.write_all(b" ").is_err() {
            break;
        }
    }
    received
        .windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| crate::common::parse_response(&received).status)
}

#[test]
fn a_tokenless_flood_from_one_address_does_not_stop_real_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let port = server.port;
    let stored = max_id(dir.path(), "raw_events");
    let stop = std::sync::atomic::AtomicBool::new(false);
    // 300 flooding connections at once from one address, each held for as long as the server
    // lets it (up to 10 s): more than every slot, which about 26 new ones a second used to
    // take. A refused flooder waits a second before it tries again, as a real flood paces
    // itself (and the test must not run out of ports).
    const FLOODERS: usize = 300;
    const DELIVERIES: usize = 40;
    let moves = [
        FloodMove::TokenlessRingCentralBody,
        FloodMove::SlowRingotelBody,
        FloodMove::Silent,
    ];
    let (answers, served) = std::thread::scope(|scope| {
        let flooders: Vec<_> = (0..FLOODERS)
            .map(|i| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut answers = Vec::new();
                    let mut n = i;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let how = moves[n % moves.len()];
                        n += 1;
                        let started = Instant::now();
                        let answer = flood_once([127, 0, 0, 9], port, how, Duration::from_secs(10));
                        answers.push((how, answer));
                        if started.elapsed() < Duration::from_secs(1) {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                    answers
                })
            })
            .collect();
        // Let the flood take what it can first.
        std::thread::sleep(Duration::from_secs(4));
        let mut served = 0;
        for i in 0..DELIVERIES {
            let body = bytes(&rc_telephony(
                &format!("real-{i}"),
                &format!("s-real-{i}"),
                "Real Caller",
            ));
            let r = post(port, Endpoint::RingCentral, true, &body);
            if r.status == 200 {
                served += 1;
            } else {
                eprintln!("delivery {i} got {}: {}", r.status, r.text());
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let answers: Vec<_> = flooders
            .into_iter()
            .flat_map(|f| f.join().expect("flooder"))
            .collect();
        (answers, served)
    });
    let refused_early = answers
        .iter()
        .filter(|(how, status)| {
            matches!(how, FloodMove::TokenlessRingCentralBody) && *status == Some(401)
        })
        .count();
    let turned_away = answers
        .iter()
        .filter(|(_, status)| *status == Some(503))
        .count();
    eprintln!(
        "flood: {} connections from one address ({refused_early} tokenless RingCentral bodies \
         refused before their body, {turned_away} turned away past the address's share); \
         real deliveries: {served} of {DELIVERIES} got 200",
        answers.len()
    );
    assert_eq!(
        served, DELIVERIES,
        "every real delivery is served during the flood"
    );
    assert!(
        refused_early > 0 && turned_away > 0,
        "the flood was refused and turned away"
    );
    assert_eq!(max_id(dir.path(), "raw_events"), stored + DELIVERIES as i64);
    let log = server.log();
    assert!(server.stop().success());
    assert!(!log.contains("panicked"), "{log}");
}

/// One RingCentral telephony delivery for `session` carrying `parties` parties (one event
/// each), all of the desk's extension.
fn rc_many_parties(uuid: &str, session: &str, seq: usize, parties: usize) -> Value {
    let party = |i: usize| {
        json!({
            "id": format!("{session}-{i}"), "extensionId": "62264425016", "direction": "Inbound",
            "from": {"phoneNumber": "+14155550123", "name": "Flood"},
            "to": {"phoneNumber": "101"}, "status": {"code": "Proceeding"}
        })
    };
    json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/809646016/telephony/sessions",
        "timestamp": "2026-11-20T15:00:00.000Z",
        "subscriptionId": "sub-1",
        "body": {
            "telephonySessionId": session, "sequence": seq,
            "eventTime": "2026-11-20T15:00:00.000Z",
            "parties": (0..parties).map(party).collect::<Vec<_>>(),
        }
    })
}

#[test]
fn one_call_cannot_collect_events_without_bound_and_each_delivery_stays_cheap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let limit = callpop_store::MAX_EVENTS_PER_CALL;
    let per_delivery = 50;
    let mut slowest = Duration::ZERO;
    for seq in 0..limit / per_delivery {
        let body = bytes(&rc_many_parties(
            &format!("big-{seq}"),
            "s-big",
            seq,
            per_delivery,
        ));
        let started = Instant::now();
        let r = post(server.port, Endpoint::RingCentral, true, &body);
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status, 200, "{seq}: {}", r.text());
    }
    // One more event is past the bound: refused with a clear message, kept in quarantine.
    let quarantined = max_id(dir.path(), "quarantine");
    let body = bytes(&rc_many_parties("big-over", "s-big", 999, 1));
    let started = Instant::now();
    let r = post(server.port, Endpoint::RingCentral, true, &body);
    let refused_in = started.elapsed();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("at most"), "{}", r.text());
    assert_eq!(
        max_id(dir.path(), "quarantine"),
        quarantined + 1,
        "kept for inspection"
    );
    // Other calls are untouched by it.
    let other = post(
        server.port,
        Endpoint::RingCentral,
        true,
        &bytes(&rc_telephony("after-big", "s-small", "Small")),
    );
    assert_eq!(other.status, 200, "{}", other.text());
    eprintln!(
        "one call with {limit} events: slowest of {} deliveries {slowest:?}, the refused one \
         {refused_in:?}",
        limit / per_delivery
    );
    let log = server.log();
    assert!(server.stop().success());
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn slow_senders_are_cut_off_and_others_are_served_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    seed(&server);
    let before = stored_before(dir.path(), 3, 5);
    let port = server.port;
    let header_bound = callpop_engine::server::HEADER_READ_TIMEOUT + Duration::from_secs(5);
    let body_bound = callpop_engine::receiver::BODY_READ_TIMEOUT + Duration::from_secs(5);
    let full_head = |endpoint: Endpoint, framing: &str| {
        format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Verification-Token: {RC_TOKEN}\r\n{framing}\r\n\r\n",
            endpoint.path()
        )
        .into_bytes()
    };
    let partial = bytes(&ro_call(RO_TOKEN, "StartCallActivity", "c-slow", "Slow"));
    let slow = |what, at_once: Vec<u8>, trickle: Vec<u8>, every_ms, body: bool| Slow {
        what,
        at_once,
        trickle,
        every: Duration::from_millis(every_ms),
        within: if body { body_bound } else { header_bound },
        answered: body,
    };
    let cases = [
        slow("silent connection", vec![], vec![], 0, false),
        slow(
            "headers trickled byte by byte",
            vec![],
            format!(
                "POST {RC_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {}",
                "a".repeat(1000)
            )
            .into_bytes(),
            100,
            false,
        ),
        slow(
            "headers that never end",
            b"POST / HTTP/1.1\r\n".to_vec(),
            b"X-Slow: a\r\n".to_vec(),
            50,
            false,
        ),
        slow(
            "half a preface, then silence",
            b"PRI * HTTP/2.0\r\n".to_vec(),
            vec![],
            0,
            false,
        ),
        slow(
            "RingCentral body that never finishes",
            [
                full_head(Endpoint::RingCentral, "Content-Length: 1000"),
                b"{\"uuid\":".to_vec(),
            ]
            .concat(),
            vec![],
            0,
            true,
        ),
        slow(
            "Ringotel body that never finishes",
            [
                full_head(Endpoint::Ringotel, "Content-Length: 100000"),
                partial[..20].to_vec(),
            ]
            .concat(),
            vec![],
            0,
            true,
        ),
        slow(
            "chunked body that never finishes",
            [
                full_head(Endpoint::RingCentral, "Transfer-Encoding: chunked"),
                b"10\r\n{\"uuid\":\"x\",    \r\n".to_vec(),
            ]
            .concat(),
            vec![],
            0,
            true,
        ),
        slow(
            "body trickled byte by byte",
            full_head(Endpoint::Ringotel, "Content-Length: 100000"),
            b" ".to_vec(),
            100,
            true,
        ),
    ];
    std::thread::scope(|scope| {
        let mut running = Vec::new();
        for case in &cases {
            // Several of each at once: slow connections must not pile up into a hang.
            for _ in 0..4 {
                let (head, trickle) = (case.at_once.clone(), case.trickle.clone());
                let every = case.every;
                running.push((
                    case,
                    scope.spawn(move || slow_client(port, head, trickle, every)),
                ));
            }
        }
        // Meanwhile normal deliveries are answered promptly.
        std::thread::sleep(Duration::from_millis(500));
        for i in 0..5 {
            let started = Instant::now();
            let body = bytes(&rc_telephony(&format!("during-{i}"), "s-during", "Prompt"));
            let r = post(port, Endpoint::RingCentral, true, &body);
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "took {:?}",
                started.elapsed()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        for (case, handle) in running {
            let (label, bound) = (case.what, case.within);
            let ended = handle.join().expect("slow client");
            assert!(
                ended.closed_by_server && ended.after < bound,
                "{label}: not cut off within {bound:?}: {ended:?}"
            );
            if let Some(status) = ended.status {
                assert!((400..500).contains(&status), "{label}: {ended:?}");
            }
            if case.answered {
                assert_eq!(ended.status, Some(408), "{label}: {ended:?}");
            }
        }
    });
    let r = post(
        port,
        Endpoint::Ringotel,
        true,
        &bytes(&ro_call(
            RO_TOKEN,
            "StartCallActivity",
            "c-after-slow",
            "After",
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let log = server.log();
    assert!(server.stop().success());
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(stored_before(dir.path(), 3, 5), before);
}

/// Characters that could move the cursor, recolour the terminal or reorder the line around
/// them (the newline that ends a line excepted).
fn disturbing(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
        })
        .collect()
}

#[test]
fn markup_bidi_and_nuls_in_names_are_kept_but_cannot_disturb_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let name =
        "<script>alert(1)</script> \u{202E}evil.exe\u{202C} Nul\u{0}Byte \u{1b}[31mRed\u{9b}2J";
    let stored_name = "<script>alert(1)</script> \u{202E}evil.exe\u{202C} NulByte [31mRed2J";
    let number = "\u{202E}+1 415\u{1b}[2J 555 0123";
    let mut rc = rc_telephony("names-1", "s-names", name);
    rc["body"]["parties"][0]["from"]["phoneNumber"] = json!(number);
    let r = post(server.port, Endpoint::RingCentral, true, &bytes(&rc));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut ro = ro_call(RO_TOKEN, "StartCallActivity", "c-names", name);
    ro["params"]["caller_number"] = json!(number);
    let r = post(server.port, Endpoint::Ringotel, true, &bytes(&ro));
    assert_eq!(r.status, 200, "{}", r.text());
    // An authenticated body whose error message quotes hostile text.
    let mut bad = rc_telephony("names-2", "s-names-bad", name);
    bad["body"]["eventTime"] = json!(format!("\u{202E}{name}"));
    let r = post(server.port, Endpoint::RingCentral, true, &bytes(&bad));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(server.stop().success());

    // Stored as sent: markup and bidi verbatim; control characters are never part of a name.
    let conn = db(dir.path());
    let mut stmt = conn
        .prepare("SELECT from_name, from_raw FROM calls ORDER BY id")
        .expect("sql");
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 2);
    for (stored, raw) in &rows {
        assert_eq!(stored, stored_name);
        assert_eq!(raw, number, "the raw number is kept as sent");
    }

    for args in [
        &["calls"][..],
        &["calls", "--json"],
        &["events"],
        &["events", "--json"],
        &["events", "--quarantined"],
        &["events", "--quarantined", "--json"],
        &["events", "replay", "--quarantined"],
    ] {
        let out = crate::common::run(dir.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8 output");
        assert!(
            disturbing(&text).is_empty(),
            "{args:?} prints {:?}:\n{text}",
            disturbing(&text)
        );
        if args == ["calls"] {
            assert!(text.contains("<script>alert(1"), "{text}");
        }
    }
    // The JSON output is still exact: escaped, not altered.
    let calls = crate::common::calls_json(dir.path());
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call["from_name"], stored_name);
        assert_eq!(call["from"], number);
    }
    let out = crate::common::run(dir.path(), &["events", "--json"]);
    let bodies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line")["body"].clone())
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b["body"]["parties"][0]["from"]["name"] == name),
        "the stored body is the body as sent: {bodies:?}"
    );
}

#[test]
fn ringotel_token_is_redacted_however_it_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let escaped = format!("\\u0072{}", &RO_TOKEN[1..]);
    let start = ro_call(RO_TOKEN, "StartCallActivity", "c-redact", "Ann").to_string();
    let token_field = format!("\"api_token\":\"{RO_TOKEN}\"");
    assert!(start.contains(&token_field));
    let cases = [
        // Last one wins: the escaped real token authenticates, the plain one is a decoy.
        (
            format!("\"api_token\":\"{RO_TOKEN}\",\"api_token\":\"{escaped}\""),
            200,
        ),
        (
            format!("\"api_token\":\"{escaped}\",\"api_token\":\"{RO_TOKEN}\""),
            200,
        ),
        (
            format!("\"api_token\":\"{RO_TOKEN}\",\"api_token\":\"{WRONG_TOKEN}\""),
            401,
        ),
        (
            format!("\"api_token\":\"{escaped}\",\"x\":\"{escaped}\""),
            200,
        ),
    ];
    for (i, (field, want)) in cases.iter().enumerate() {
        let body = start
            .replace(&token_field, field)
            .replace("c-redact", &format!("c-redact-{i}"));
        let r = post(server.port, Endpoint::Ringotel, true, body.as_bytes());
        assert_eq!(r.status, *want, "{field}: {}", r.text());
    }
    assert!(server.stop().success());
    let conn = db(dir.path());
    let mut stmt = conn
        .prepare("SELECT body FROM raw_events UNION ALL SELECT body FROM quarantine")
        .expect("sql");
    let stored: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(stored.len(), 3);
    for body in stored {
        let text = String::from_utf8(body).expect("UTF-8");
        let decoded: Value = serde_json::from_str(&text).expect("stored body is JSON");
        let mut strings = Vec::new();
        fn collect(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
                Value::Object(map) => map.iter().for_each(|(k, v)| {
                    out.push(k.clone());
                    collect(v, out);
                }),
                _ => {}
            }
        }
        collect(&decoded, &mut strings);
        assert!(
            !text.contains(&RO_TOKEN[1..]) && !strings.iter().any(|s| s.contains(RO_TOKEN)),
            "the token survived in {text}"
        );
    }
}
