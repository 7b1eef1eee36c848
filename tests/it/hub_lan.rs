//! Hub mode across several hosts on one machine (issue 28): network namespaces joined by veth
//! pairs on a bridge (the bridge in a namespace of its own, so the machine's own network is
//! never touched), one hub and three desks, each its own `callpop` process and data dir.
//! Proves discovery over mDNS across hosts, pairing, calls reaching every desk, a desk's link
//! cut and restored, and a hub that moved to another address found again by its key.
//! Needs root (`ip netns`), so ignored by default; `scripts/test` runs it as root, as in CI.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::hub::{eventually, ring_and_answer, rows};

/// Namespaces `<prefix>-<host>` on a bridge in `<prefix>-lan`, 10.77.N.0/24.
struct Lan {
    prefix: String,
    hosts: Vec<String>,
    subnet: u8,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    fn new(hosts: &[&str]) -> Lan {
        let id = std::process::id() % 10_000;
        let prefix = format!("cp{id}");
        let subnet = 77 + (id % 100) as u8;
        let lan = Lan {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            prefix,
            subnet,
        };
        let bridge_ns = lan.ns("lan");
        ip(&["netns", "add", &bridge_ns]);
        ip(&["-n", &bridge_ns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge_ns, "link", "set", "br0", "up"]);
        for (i, host) in hosts.iter().enumerate() {
            let ns = lan.ns(host);
            let (inside, outside) = (format!("{}h{i}", lan.prefix), format!("{}b{i}", lan.prefix));
            ip(&["netns", "add", &ns]);
            // Made inside the host's namespace and handed to the bridge's: the machine's own
            // network never sees these interfaces.
            ip(&[
                "-n", &ns, "link", "add", &inside, "type", "veth", "peer", "name", &outside,
                "netns", &bridge_ns,
            ]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "addr", "add", &lan.address(i), "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            // mDNS goes out of the one interface there is.
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", &inside]);
            ip(&["-n", &bridge_ns, "link", "set", &outside, "master", "br0"]);
            ip(&["-n", &bridge_ns, "link", "set", &outside, "up"]);
        }
        lan
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn index(&self, host: &str) -> usize {
        self.hosts.iter().position(|h| h == host).expect("a host")
    }

    /// `10.S.0.(i+1)/24`.
    fn address(&self, i: usize) -> String {
        format!("10.{}.0.{}/24", self.subnet, i + 1)
    }

    fn ip_of(&self, host: &str) -> String {
        format!("10.{}.0.{}", self.subnet, self.index(host) + 1)
    }

    /// Moves `host` to another address on the LAN (its DHCP lease changed).
    fn readdress(&self, host: &str, last: u8) -> String {
        let i = self.index(host);
        let dev = format!("{}h{i}", self.prefix);
        let ns = self.ns(host);
        ip(&["-n", &ns, "addr", "flush", "dev", &dev]);
        let new = format!("10.{}.0.{last}", self.subnet);
        ip(&["-n", &ns, "addr", "add", &format!("{new}/24"), "dev", &dev]);
        ip(&["-n", &ns, "route", "replace", "224.0.0.0/4", "dev", &dev]);
        new
    }

    /// Takes `host`'s cable out (`up` false) or puts it back.
    fn cable(&self, host: &str, up: bool) {
        let i = self.index(host);
        let dev = format!("{}b{i}", self.prefix);
        ip(&[
            "-n",
            &self.ns("lan"),
            "link",
            "set",
            &dev,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in self.hosts.iter().chain(std::iter::once(&"lan".to_string())) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(host)])
                .status();
        }
    }
}

fn run_in(ns: &str, data_dir: &Path, args: &[&str]) -> std::process::Output {
    command_in(Some(ns), data_dir)
        .env("CALLPOP_SECRET_STORE", "file")
        .args(args)
        .output()
        .expect("run callpop")
}

fn status(ns: &str, data_dir: &Path) -> serde_json::Value {
    let out = run_in(ns, data_dir, &["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn link_state(ns: &str, data_dir: &Path) -> String {
    status(ns, data_dir)["hub_link"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn hub_in(lan: &Lan, dir: &Path, address: &str) -> Server {
    let listen = format!("{address}:8788");
    Server::start_in(
        Some(&lan.ns("hub")),
        dir,
        0,
        &[
            ("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", RC_TOKEN),
            ("CALLPOP_HUB", "on"),
            ("CALLPOP_HUB_LISTEN", &listen),
            ("CALLPOP_HUB_NAME", "Reception"),
            ("CALLPOP_SECRET_STORE", "file"),
        ],
    )
}

/// Posts from inside the hub's namespace (its webhook listener is its own loopback).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).expect("the namespace");
        // SAFETY: a valid namespace file descriptor; only this thread changes namespace.
        let done = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(done, 0, "setns {path}");
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it as root)"]
fn desks_on_other_hosts_find_the_hub_pair_get_its_calls_and_survive_cuts_and_moves() {
    let lan = Lan::new(&["hub", "d1", "d2", "d3"]);
    let screen = desktop_session::DesktopSession::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_dir = dir.path().join("hub");
    let hub_ip = lan.ip_of("hub");
    let hub_server = hub_in(&lan, &hub_dir, &hub_ip);
    // Discovery from another host, over multicast on the bridge.
    let found = run_in(
        &lan.ns("d1"),
        &dir.path().join("d1"),
        &["desk", "discover", "--json", "--seconds", "5"],
    );
    let found = String::from_utf8_lossy(&found.stdout).to_string();
    let hub: serde_json::Value = found
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no hub found over mDNS: {found:?}"));
    assert_eq!(hub["name"], "Reception");
    let paired = run_in(&lan.ns("hub"), &hub_dir, &["hub", "pair", "--json"]);
    let paired: serde_json::Value = serde_json::from_slice(&paired.stdout).expect("json");
    assert_eq!(hub["fingerprint"], paired["fingerprint"]);
    let address = hub["addresses"][0]
        .as_str()
        .expect("an address")
        .to_string();
    assert_eq!(address, format!("{hub_ip}:8788"));
    assert_eq!(paired["address"], address.as_str());
    // Three desks pair and start, each on its own host.
    let mut desks = Vec::new();
    for (n, host) in ["d1", "d2", "d3"].iter().enumerate() {
        let code = if n == 0 {
            paired["code"].as_str().expect("code").to_string()
        } else {
            let out = run_in(&lan.ns("hub"), &hub_dir, &["hub", "pair", "--json"]);
            let out: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            out["code"].as_str().expect("code").to_string()
        };
        let desk_dir = dir.path().join(host);
        let out = run_in(
            &lan.ns(host),
            &desk_dir,
            &["desk", "join", &address, &code, "--name", host],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // d1 has a notification daemon in its session (a path socket, so it crosses the
        // network namespace) and watches Alice's extension.
        let mut env: Vec<(String, String)> = vec![("CALLPOP_SECRET_STORE".into(), "file".into())];
        if n == 0 {
            env.extend(screen.env());
            env.push(("CALLPOP_NOTIFICATIONS".into(), "on".into()));
            env.push(("CALLPOP_WATCH_EXTENSIONS".into(), "62264425016".into()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let desk = Server::start_in(Some(&lan.ns(host)), &desk_dir, 0, &env);
        desks.push((host.to_string(), desk_dir, desk));
    }
    for (host, desk_dir, desk) in &desks {
        assert!(
            eventually(Duration::from_secs(20), || link_state(
                &lan.ns(host),
                desk_dir
            ) == "connected"),
            "{host}: {}",
            desk.log()
        );
    }
    // A call at the hub reaches every desk's history.
    let hub_ref = std::sync::Arc::new(hub_server);
    let poster = hub_ref.clone();
    in_netns(&lan.ns("hub"), move || ring_and_answer(&poster, "s-lan-1"));
    for (host, desk_dir, _) in &desks {
        assert!(
            eventually(Duration::from_secs(10), || rows(desk_dir) == rows(&hub_dir)),
            "{host} differs"
        );
    }
    // d1's cable is out for 30 s: it says it is reconnecting, then catches up.
    lan.cable("d1", false);
    let cut_at = std::time::Instant::now();
    let poster = hub_ref.clone();
    in_netns(&lan.ns("hub"), move || ring_and_answer(&poster, "s-lan-2"));
    // And one that rings Alice, whom d1 watches, and nobody answers.
    let poster = hub_ref.clone();
    in_netns(&lan.ns("hub"), move || {
        let now = chrono::Utc::now();
        let alice = Some(("62264425016", "+16505550101", "Alice Sales"));
        for (seq, code) in [(1, "Proceeding"), (2, "Disconnected")] {
            let body = rc_party_event(
                &format!("miss-{seq}"),
                "s-lan-missed",
                "p-1",
                alice,
                "Inbound",
                seq,
                code,
                now + chrono::Duration::milliseconds(seq * 10),
            );
            assert_eq!(poster.post_rc(&body).status, 200);
        }
    });
    let d1 = &desks[0];
    assert!(
        eventually(Duration::from_secs(35), || link_state(&lan.ns("d1"), &d1.1)
            == "reconnecting"),
        "{}",
        d1.2.log()
    );
    assert_ne!(rows(&d1.1), rows(&hub_dir), "nothing reaches a cut desk");
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed()));
    lan.cable("d1", true);
    assert!(
        eventually(Duration::from_secs(45), || rows(&d1.1) == rows(&hub_dir)),
        "{}",
        d1.2.log()
    );
    assert!(eventually(Duration::from_secs(10), || link_state(
        &lan.ns("d1"),
        &d1.1
    ) == "connected"));
    // d1 popped up for Alice's first call while connected, and after the cut it says once what
    // it missed, instead of ringing late.
    let seen = screen.wait_for("the missed-while-disconnected notice", |s| {
        crate::notifications::notifies(s)
            .iter()
            .any(|n| n.summary == "1 missed call while disconnected from the hub")
    });
    let all = crate::notifications::notifies(&seen);
    assert!(
        all.iter().any(|n| n.summary.starts_with("Incoming call")),
        "{all:#?}"
    );
    assert!(
        !all.iter().any(|n| n.summary.starts_with("Missed call")),
        "no late popup of its own for the missed call: {all:#?}"
    );
    // The hub's PC gets another address: the desks find it again by its key.
    drop(hub_ref);
    let moved = lan.readdress("hub", 99);
    let hub_server = hub_in(&lan, &hub_dir, &moved);
    let poster = std::sync::Arc::new(hub_server);
    let p = poster.clone();
    in_netns(&lan.ns("hub"), move || ring_and_answer(&p, "s-lan-3"));
    for (host, desk_dir, desk) in &desks {
        assert!(
            eventually(Duration::from_secs(120), || rows(desk_dir)
                == rows(&hub_dir)),
            "{host} did not follow the hub: {}",
            desk.log()
        );
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(desk_dir.join("desk.json")).expect("desk.json"))
                .expect("json");
        assert_eq!(state["hub_address"], format!("{moved}:8788"));
    }
    // The hub runs until every desk was checked.
    drop(poster);
}
