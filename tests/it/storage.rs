//! A history that cannot be written: the receiver answers 503 (never a 200 it cannot keep),
//! `/healthz` says why and since when, what was stored stays intact, and once the disk has
//! room again (or the file is writable again) the same deliveries are stored, without a
//! restart, and the health clears.
//!
//! Both cases need root (a size-limited tmpfs mount; `chattr +i`, which stops even root from
//! writing, unlike chmod), so they are ignored by default; `scripts/test` runs them when it is
//! root, as in CI (`cargo test -- --include-ignored`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Server;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A RingCentral delivery for call `n`.
fn delivery(tag: &str, n: usize) -> Vec<u8> {
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-20T15:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc)
        + chrono::Duration::minutes(n as i64);
    crate::common::rc_party_event(
        &format!("{tag}-{n}"),
        &format!("s-{tag}-{n}"),
        &format!("p-{tag}-{n}"),
        Some(("62264425016", "101", "Desk")),
        "Inbound",
        1,
        "Proceeding",
        at,
    )
}

fn stored(dir: &Path, tag: &str) -> i64 {
    let conn = crate::common::db(dir);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    conn.query_row(
        "SELECT count(*) FROM raw_events WHERE dedup_key LIKE ?1",
        [format!("{tag}-%")],
        |r| r.get(0),
    )
    .expect("count")
}

/// While the history cannot be written: every delivery gets 503 with Retry-After, health is
/// `error` with `unwritable: <why>` and a start time that does not move, and nothing changed.
fn assert_refused(server: &Server, tag: &str, count: usize, why: &str) {
    let before = stored(&server.data_dir, tag);
    let mut since = None;
    for n in 0..count {
        let r = server.post_rc(&delivery(tag, 100 + n));
        assert_eq!(r.status, 503, "delivery {n} while unwritable: {}", r.text());
        assert_eq!(r.header("Retry-After"), Some("30"));
        assert_eq!(r.json()["error"]["code"], "storage_unavailable");
        let health = assert_health_says(server, why);
        let started = health["storage_error_since"].clone();
        assert!(started.is_string(), "a start time: {health}");
        assert_eq!(*since.get_or_insert(started.clone()), started, "stays put");
    }
    assert_eq!(stored(&server.data_dir, tag), before, "nothing half-stored");
}

/// While the history cannot be written, a re-delivery of something it holds is still 200
/// ("duplicate"): the provider would retry it for nothing, and may give up on the
/// subscription. Health keeps saying what is wrong.
fn assert_stored_still_answered(server: &Server, tag: &str, why: &str) {
    for n in [0, 7] {
        let r = server.post_rc(&delivery(tag, n));
        assert_eq!(
            r.status,
            200,
            "stored delivery {n} sent again: {}",
            r.text()
        );
        assert_eq!(r.json()["status"], "duplicate");
    }
    assert_health_says(server, why);
}

/// Health is `error` with `unwritable: <why>`, said once; returns the health document.
fn assert_health_says(server: &Server, why: &str) -> serde_json::Value {
    let health = crate::common::health(server.port);
    assert_eq!(health["status"], "error", "{health}");
    let problem = health["storage_error"].as_str().unwrap_or_default();
    assert!(
        problem.starts_with(&format!("unwritable: {why}")),
        "health says why: {problem}"
    );
    assert!(
        !problem.contains("right now: the call history"),
        "said once: {problem}"
    );
    health
}

/// After recovery: the refused deliveries (resent, as a provider would) and new ones get 200,
/// each is stored once, and health is clear.
fn assert_recovered(server: &Server, tag: &str, refused: usize, stored_before: i64) {
    for n in 0..refused {
        let r = server.post_rc(&delivery(tag, 100 + n));
        assert_eq!(r.status, 200, "resent delivery {n}: {}", r.text());
        assert_eq!(r.json()["status"], "accepted");
    }
    let r = server.post_rc(&delivery(tag, 100));
    assert_eq!(r.json()["status"], "duplicate", "stored exactly once");
    let health = crate::common::health(server.port);
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["storage_error"].is_null(), "{health}");
    assert!(health["storage_error_since"].is_null(), "{health}");
    assert_eq!(
        stored(&server.data_dir, tag),
        stored_before + refused as i64
    );
}

/// A size-limited tmpfs mounted on a temporary directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8 path");
        assert!(
            run(
                "mount",
                &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path]
            ),
            "mount a tmpfs (root is needed)"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros until the filesystem says it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Tail bytes that fit in a partial page.
    while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
    let _ = f.sync_all();
}

#[test]
#[ignore = "needs root: mounts a small tmpfs (scripts/test runs it as root)"]
fn a_full_disk_is_answered_503_until_space_returns() {
    assert!(is_root(), "mounting a small tmpfs needs root");
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    // The server logs into the data directory, on the full disk too: a log line that cannot
    // be written must not cost a reply or the store writer (it did: a panic in eprintln!).
    let server = Server::start(&data);
    for n in 0..20 {
        assert_eq!(server.post_rc(&delivery("full", n)).status, 200);
    }
    let before = stored(&data, "full");
    assert_eq!(before, 20);

    let filler: PathBuf = fs.path().join("filler");
    fill(&filler);
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_refused(&server, "full", 10, "disk full")
    }));
    if let Err(e) = refused {
        eprintln!("server log:\n{}", server.log());
        std::panic::resume_unwind(e);
    }
    assert_stored_still_answered(&server, "full", "disk full");
    // Reading still works while the disk is full.
    assert_eq!(crate::common::calls_json(&data).len(), 20);

    std::fs::remove_file(&filler).expect("free the space");
    // Health turns ok by itself, before any delivery tries the disk again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while crate::common::health(server.port)["status"] != "ok" {
        assert!(
            std::time::Instant::now() < deadline,
            "health still says {} after space returned",
            crate::common::health(server.port)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_recovered(&server, "full", 10, before);
    assert!(server.stop().success());
    drop(fs);
}

/// Sets or clears the immutable attribute; false when the filesystem does not support it.
fn immutable(paths: &[PathBuf], on: bool) -> bool {
    let mut args = vec![if on { "+i" } else { "-i" }];
    args.extend(paths.iter().map(|p| p.to_str().expect("utf-8 path")));
    run("chattr", &args)
}

/// Clears the immutable attribute on drop, so the temporary directory can be removed.
struct Unfreeze(Vec<PathBuf>);

impl Drop for Unfreeze {
    fn drop(&mut self) {
        immutable(&self.0, false);
    }
}

#[test]
#[ignore = "needs root: chattr +i (scripts/test runs it as root)"]
fn a_read_only_history_is_answered_503_until_it_is_writable_again() {
    assert!(is_root(), "chattr +i needs root");
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"x").expect("probe");
    if !immutable(std::slice::from_ref(&probe), true) {
        eprintln!("SKIPPED: this filesystem has no immutable attribute");
        return;
    }
    let write_refused = std::fs::OpenOptions::new()
        .append(true)
        .open(&probe)
        .is_err();
    immutable(std::slice::from_ref(&probe), false);
    assert!(
        write_refused,
        "an immutable file refuses writes, even to root"
    );

    let data = dir.path().join("data");
    let server = Server::start(&data);
    for n in 0..20 {
        assert_eq!(server.post_rc(&delivery("ro", n)).status, 200);
    }
    let before = stored(&data, "ro");
    let files = vec![
        data.join(callpop_store::DB_FILE),
        data.join(format!("{}-wal", callpop_store::DB_FILE)),
    ];
    let guard = Unfreeze(files.clone());
    assert!(immutable(&files, true), "chattr +i on the history");
    assert_refused(&server, "ro", 10, "write failed");
    assert_stored_still_answered(&server, "ro", "write failed");
    drop(guard);
    assert_recovered(&server, "ro", 10, before);
    assert!(server.stop().success());
}
