//! Test support: start the real `callpop` binary on 127.0.0.1 and talk raw HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Token the test servers expect from RingCentral.
pub const RC_TOKEN: &str = "rc-test-verification-token";
/// Token the test servers expect from Ringotel (the scenario payloads carry it).
pub const RO_TOKEN: &str = "ringotel-test-token";
/// RingCentral webhook path.
pub const RC_PATH: &str = "/api/v1/webhooks/phone_calls_webhooks/ringcentral";
/// Ringotel webhook path.
pub const RO_PATH: &str = "/api/v1/webhooks/phone_calls_webhooks/ringotel";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_callpop"))
}

/// A `callpop` command isolated from the developer's own config and data.
pub fn command(data_dir: &Path) -> Command {
    command_in(None, data_dir)
}

/// [`command`], run inside the network namespace `netns` (made by the test) when given.
pub fn command_in(netns: Option<&str>, data_dir: &Path) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(bin());
            cmd
        }
        None => Command::new(bin()),
    };
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("xdg-config"))
        .env("HOME", data_dir)
        .env_remove("CALLPOP_CONFIG")
        .env_remove("CALLPOP_LISTEN")
        .env_remove("CALLPOP_DATA_DIR")
        .env_remove("CALLPOP_WATCH_EXTENSIONS")
        .env_remove("RUST_LOG")
        // Tests that want popups turn them on against their own private session.
        .env("CALLPOP_NOTIFICATIONS", "off");
    cmd
}

/// A free TCP port on 127.0.0.1 (for a server whose public URL must be known in advance).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET /healthz, parsed.
pub fn health(port: u16) -> serde_json::Value {
    http(port, "GET", "/healthz", &[], b"").json()
}

/// A RingCentral telephony-session delivery for one party, stamped `event_time`.
#[allow(clippy::too_many_arguments)]
pub fn rc_party_event(
    uuid: &str,
    session: &str,
    party: &str,
    extension: Option<(&str, &str, &str)>,
    direction: &str,
    seq: i64,
    code: &str,
    event_time: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let caller = serde_json::json!({"phoneNumber": "+14155550123", "name": "Jane Roe"});
    let line = serde_json::json!({"phoneNumber": "+16505550100"});
    let mut p = serde_json::json!({
        "id": party,
        "direction": direction,
        "from": caller,
        "to": line,
        "status": {"code": code},
        "missedCall": false
    });
    if let Some((id, number, name)) = extension {
        p["extensionId"] = serde_json::json!(id);
        let own = serde_json::json!({"phoneNumber": number, "name": name, "extensionId": id});
        if direction == "Inbound" {
            p["to"] = own;
        } else {
            p["from"] = own;
            p["to"] = serde_json::json!({"phoneNumber": "+14085550199"});
        }
    }
    serde_json::json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/809646016/telephony/sessions",
        "timestamp": event_time.to_rfc3339(),
        "body": {
            "sequence": seq,
            "telephonySessionId": session,
            "eventTime": event_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "parties": [p]
        }
    })
    .to_string()
    .into_bytes()
}

/// A running `callpop serve`.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub stdout: Vec<String>,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts a server with the standard test tokens.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(
            data_dir,
            &[
                ("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", RC_TOKEN),
                ("CALLPOP_RINGOTEL_API_TOKEN", RO_TOKEN),
            ],
        )
    }

    /// Starts a server with extra environment variables; waits until it listens.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_at(data_dir, 0, env)
    }

    /// Starts a server on a given port (0: any free one).
    pub fn start_at(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        Server::start_in(None, data_dir, port, env)
    }

    /// Starts a server inside the network namespace `netns` (its port is that namespace's).
    pub fn start_in(
        netns: Option<&str>,
        data_dir: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Server {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let stderr_path = data_dir.join(format!("stderr-{}.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .expect("stderr log");
        let mut cmd = command_in(netns, data_dir);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn callpop serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let port = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let port = line
                        .split("Listening on http://127.0.0.1:")
                        .nth(1)
                        .and_then(|p| p.trim().parse::<u16>().ok());
                    lines.push(line);
                    if let Some(port) = port {
                        break port;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    panic!("server did not start; stdout: {lines:?}\nstderr: {log}");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Server {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            stdout: lines,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Graceful stop (SIGTERM), waiting for the process to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        wait_with_timeout(&mut child, Duration::from_secs(20))
    }

    /// Hard kill (SIGKILL): no chance to clean up.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        http(self.port, "POST", path, headers, body)
    }

    /// Posts a RingCentral delivery with the right token.
    pub fn post_rc(&self, body: &[u8]) -> Response {
        self.post(
            RC_PATH,
            &[
                ("Content-Type", "application/json; charset=UTF-8"),
                ("Verification-Token", RC_TOKEN),
                ("User-Agent", "RingCentral-Webhook/8.3"),
            ],
            body,
        )
    }

    /// Posts a Ringotel delivery (token travels in the body).
    pub fn post_ro(&self, body: &[u8]) -> Response {
        self.post(RO_PATH, &[("Content-Type", "application/json")], body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not stop within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP response as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Every byte received (status line, headers, body).
    pub raw_len: usize,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection and reads the whole response.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    raw(port, &request_bytes(port, method, path, headers, body))
}

/// A connection to `port` on 127.0.0.1 from the loopback address `source` (127.0.0.x), so a
/// test can play several clients the receiver tells apart by address.
pub fn connect_from(source: [u8; 4], port: u16) -> std::net::TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from = std::net::SocketAddr::from((source, 0));
    socket.bind(&from.into()).expect("bind the source address");
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket.connect(&to.into()).expect("connect");
    socket.into()
}

/// A request's bytes: the given headers plus Host, `Connection: close` and a Content-Length
/// unless the headers carry their own framing.
pub fn request_bytes(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    let has_length = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A RingCentral telephony-session delivery: +14155550123 (`caller`) ringing extension 101
/// (Alice Sales) with party status `code`; `seq` is the sequence and the event's second.
pub fn rc_telephony(
    uuid: &str,
    session: &str,
    seq: i64,
    code: &str,
    caller: &str,
) -> serde_json::Value {
    use callpop_testkit::payloads::{rc_desk_call_body, rc_notification, DESK_EXTENSION_ID};
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 20, 15, 0, 0)
        .single()
        .expect("a valid time");
    rc_notification(
        uuid,
        "/restapi/v1.0/account/809646016/extension/62264425016/telephony/sessions",
        start + chrono::Duration::milliseconds(50),
        "sub-1",
        DESK_EXTENSION_ID,
        rc_desk_call_body(
            session,
            seq,
            code,
            caller,
            start + chrono::Duration::seconds(seq),
        ),
    )
}

/// Sends exact bytes and parses the response.
pub fn raw(port: u16, request: &[u8]) -> Response {
    try_raw(port, request).unwrap_or_else(|e| panic!("request failed: {e}"))
}

/// Like [`raw`], but a refused, reset or empty connection is an error, not a panic.
pub fn try_raw(port: u16, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    if !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed without a response",
        ));
    }
    Ok(parse_response(&buf))
}

pub fn parse_response(buf: &[u8]) -> Response {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        head,
        headers,
        body,
        raw_len: buf.len(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// Runs a `callpop` subcommand against a data directory.
pub fn run(data_dir: &Path, args: &[&str]) -> Output {
    command(data_dir).args(args).output().expect("run callpop")
}

/// `callpop calls --json --limit 0`, parsed.
pub fn calls_json(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = run(data_dir, &["calls", "--json", "--limit", "0"]);
    assert!(
        out.status.success(),
        "callpop calls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Opens the real SQLite file read-only.
pub fn db(data_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        data_dir.join("callpop.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the history")
}

/// Opens the real SQLite file for writing (to simulate damage or old versions).
pub fn db_rw(data_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data_dir.join("callpop.db")).expect("open the history")
}

pub fn count(data_dir: &Path, sql: &str) -> i64 {
    db(data_dir).query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// A deterministic pseudo-random generator (SplitMix64) so failures are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
