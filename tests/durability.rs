//! Persist, then acknowledge: `kill -9` in the middle of a burst of deliveries; every delivery
//! that got a 200 must be in the store after the restart, and the file must be sound.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, RC_PATH, RC_TOKEN};

fn delivery(uuid: &str, session: &str) -> Vec<u8> {
    serde_json::json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/1/extension/2/telephony/sessions",
        "body": {
            "sequence": 2,
            "telephonySessionId": session,
            "eventTime": "2026-11-20T15:00:00Z",
            "parties": [{"id": format!("{session}-1"), "extensionId": "2", "direction": "Inbound",
                         "from": {"phoneNumber": "+14155550123"}, "to": {"phoneNumber": "101"},
                         "status": {"code": "Proceeding"}}]
        }
    })
    .to_string()
    .into_bytes()
}

/// Posts until the server disappears; returns the uuids that were acknowledged with 200.
fn burst(port: u16, worker: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let uuid = format!("w{worker}-{n}");
        let body = delivery(&uuid, &format!("s-{worker}-{}", n / 3));
        let request = {
            let mut r = format!(
                "POST {RC_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Verification-Token: {RC_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        };
        match common::try_raw(port, &request) {
            Ok(response) if response.status == 200 => acked.lock().expect("lock").push(uuid),
            Ok(response) => panic!("unexpected {}: {}", response.status, response.text()),
            // The server was killed: connection refused or reset.
            Err(_) => break,
        }
    }
}

#[test]
fn every_acknowledged_delivery_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut total_acked = 0usize;
    for round in 0..3 {
        let server = Server::start(dir.path());
        let port = server.port;
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, acked) = (stop.clone(), acked.clone());
                std::thread::spawn(move || burst(port, round * 10 + w, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + 150 * round as u64));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        let acked = acked.lock().expect("lock").clone();
        assert!(!acked.is_empty(), "round {round}: the burst got some 200s");
        total_acked += acked.len();
        eprintln!(
            "round {round}: {} deliveries acknowledged before kill -9",
            acked.len()
        );

        let conn = common::db(dir.path());
        let stored: HashSet<String> = conn
            .prepare("SELECT dedup_key FROM raw_events")
            .expect("sql")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let missing: Vec<&String> = acked.iter().filter(|u| !stored.contains(*u)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged deliveries lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(check, "ok");
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM call_events WHERE call_id NOT IN (SELECT id FROM calls)",
                [],
                |r| r.get(0),
            )
            .expect("orphans");
        assert_eq!(orphans, 0, "a delivery is stored completely or not at all");
    }
    // The history reopens cleanly after the last kill.
    let server = Server::start(dir.path());
    assert_eq!(server.post_rc(&delivery("final", "s-final")).status, 200);
    assert!(server.stop().success());
    assert!(total_acked > 0);
}
