//! A real desktop session for tests and benchmarks: a private D-Bus session bus, an Xvfb
//! display, the dunst notification daemon, and dbus-monitor recording every Notify /
//! CloseNotification call with its time. `scripts/test` installs the Debian packages this needs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One `Notify` call as the notification server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyCall {
    /// The notification this one replaces (0: a new one).
    pub replaces_id: u32,
    /// The title line.
    pub summary: String,
    /// The body text.
    pub body: String,
    /// Buttons as the server got them: key, label, key, label, …
    pub actions: Vec<String>,
    /// The id the server answered with.
    pub id: Option<u32>,
    /// When the call reached the bus (UNIX seconds, from dbus-monitor).
    pub called_at: f64,
    /// When the server's answer reached the bus.
    pub returned_at: Option<f64>,
}

/// What the monitor saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A notification was shown or updated.
    Notify(NotifyCall),
    /// `CloseNotification` for this id.
    Close(u32),
}

/// A running desktop session; everything it started is stopped when it is dropped.
pub struct DesktopSession {
    /// `DBUS_SESSION_BUS_ADDRESS` of the private session bus.
    pub bus_address: String,
    /// `DISPLAY` of the Xvfb server.
    pub display: String,
    children: Vec<Child>,
    seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is missing: install xvfb dbus dunst x11-utils imagemagick (scripts/test does)"
    );
}

impl DesktopSession {
    /// Starts bus, display, notification daemon and monitor; waits until the daemon answers.
    pub fn start() -> DesktopSession {
        for tool in ["dbus-daemon", "dbus-monitor", "dbus-send", "Xvfb", "dunst"] {
            require(tool);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut children = Vec::new();

        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().expect("bus stdout"))
            .read_line(&mut line)
            .expect("bus address");
        let bus_address = line.trim().to_string();
        assert!(!bus_address.is_empty(), "dbus-daemon printed no address");
        children.push(bus);

        let (display, xvfb) = start_xvfb();
        children.push(xvfb);

        let dunstrc = dir.path().join("dunstrc");
        std::fs::write(&dunstrc, DUNSTRC).expect("dunstrc");
        let dunst = Command::new("dunst")
            .args(["-config"])
            .arg(&dunstrc)
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst");
        children.push(dunst);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut monitor = Command::new("dbus-monitor")
            .args(["--address", &bus_address])
            .arg("interface=org.freedesktop.Notifications")
            .arg("type=method_return")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor");
        let out = monitor.stdout.take().expect("monitor stdout");
        children.push(monitor);
        let sink = seen.clone();
        std::thread::spawn(move || parse_monitor(BufReader::new(out), sink));

        let session = DesktopSession {
            bus_address,
            display,
            children,
            seen,
            _dir: dir,
        };
        session.wait_for_daemon();
        session
    }

    fn wait_for_daemon(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("dbus-send")
                .args([
                    &format!("--bus={}", self.bus_address),
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.Notifications",
                ])
                .output()
                .expect("dbus-send");
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                // Give the monitor a moment to register as well.
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dunst did not take the notification name"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The environment a program needs to use this session.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus_address.clone()),
            ("DISPLAY".into(), self.display.clone()),
        ]
    }

    /// Does what a person does to the popups on screen, through dunst's own control tool:
    /// `["close-all"]` dismisses them all, `["action", "0"]` clicks the button of the first
    /// (dunst runs a lone action directly). Returns dunstctl's output.
    pub fn dunstctl(&self, args: &[&str]) -> String {
        require("dunstctl");
        let out = Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env("DISPLAY", &self.display)
            .output()
            .expect("dunstctl");
        assert!(
            out.status.success(),
            "dunstctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many notifications dunst has on screen now.
    pub fn displayed(&self) -> usize {
        self.dunstctl(&["count", "displayed"])
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The Notify calls seen so far (with their returned ids).
    pub fn notifies(&self) -> Vec<NotifyCall> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Notify(n) => Some(n),
                Seen::Close(_) => None,
            })
            .collect()
    }

    /// Waits until `check` holds for what was seen, or panics with what was seen.
    pub fn wait_for(&self, what: &str, check: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let seen = self.seen();
            if check(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; saw {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Captures the screen as PNG (ImageMagick's `import`), optionally cropped to
    /// `WxH+X+Y`.
    pub fn screenshot(&self, path: &Path, crop: Option<&str>) {
        require("import");
        let mut cmd = Command::new("import");
        cmd.args(["-window", "root"]);
        if let Some(geometry) = crop {
            cmd.args(["-crop", geometry]);
        }
        let status = cmd
            .arg(path)
            .env("DISPLAY", &self.display)
            .status()
            .expect("import");
        assert!(status.success(), "screenshot failed");
    }
}

impl Drop for DesktopSession {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            // SIGTERM first so Xvfb removes its lock file and socket.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_xvfb() -> (String, Child) {
    // Parallel tests in one process must not pick the same display.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = 100 + (std::process::id() % 300) * 10;
    for _ in 0..200 {
        let n = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 3000;
        let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
        if lock.exists() {
            continue;
        }
        let mut child = Command::new("Xvfb")
            .arg(format!(":{n}"))
            .args(["-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Ready when the lock names our process and the socket exists.
            let owner = std::fs::read_to_string(&lock).unwrap_or_default();
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if owner.trim() == child.id().to_string() && socket.exists() {
                return (format!(":{n}"), child);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start Xvfb on any display");
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix('"').unwrap_or(s);
    s.strip_suffix('"').unwrap_or(s).to_string()
}

/// Parses dbus-monitor's text output into Notify calls (paired with their replies) and
/// CloseNotification calls.
fn parse_monitor(out: impl BufRead + Send + 'static, sink: Arc<Mutex<Vec<Seen>>>) {
    #[derive(Default)]
    struct Message {
        header: String,
        args: Vec<String>,
    }
    let is_header = |l: &str| {
        ["method call ", "method return ", "signal ", "error "]
            .iter()
            .any(|p| l.starts_with(p))
    };
    let field = |header: &str, name: &str| -> Option<String> {
        header
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_end_matches(';').to_string())
    };
    // (caller, serial) → index in sink of the Notify awaiting its reply.
    let mut pending: Vec<((String, String), usize)> = Vec::new();
    let mut flush = |m: Message| {
        let header = &m.header;
        if header.starts_with("method call ") && header.contains("member=Notify") {
            let args = &m.args;
            let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
            let replaces_id = arg(1)
                .trim()
                .strip_prefix("uint32 ")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let summary = unquote(arg(3).trim().strip_prefix("string ").unwrap_or(""));
            let body = unquote(arg(4).trim().strip_prefix("string ").unwrap_or(""));
            let actions: Vec<String> = args
                .iter()
                .skip(5)
                .take_while(|a| a.as_str() != "end-actions")
                .filter_map(|a| a.trim().strip_prefix("string ").map(unquote))
                .collect();
            let mut sink = sink.lock().expect("lock");
            sink.push(Seen::Notify(NotifyCall {
                replaces_id,
                summary,
                body,
                actions,
                id: None,
                called_at: field(header, "time")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0.0),
                returned_at: None,
            }));
            if let (Some(sender), Some(serial)) = (field(header, "sender"), field(header, "serial"))
            {
                pending.push(((sender, serial), sink.len() - 1));
            }
        } else if header.starts_with("method call ") && header.contains("member=CloseNotification")
        {
            if let Some(id) = m.args.first().and_then(|a| {
                a.trim()
                    .strip_prefix("uint32 ")
                    .and_then(|n| n.trim().parse().ok())
            }) {
                sink.lock().expect("lock").push(Seen::Close(id));
            }
        } else if header.starts_with("method return ") {
            let key = (
                field(header, "destination").unwrap_or_default(),
                field(header, "reply_serial").unwrap_or_default(),
            );
            if let Some(pos) = pending.iter().position(|(k, _)| *k == key) {
                let (_, index) = pending.remove(pos);
                let id = m.args.first().and_then(|a| {
                    a.trim()
                        .strip_prefix("uint32 ")
                        .and_then(|n| n.trim().parse().ok())
                });
                if let Some(Seen::Notify(n)) = sink.lock().expect("lock").get_mut(index) {
                    n.id = id;
                    n.returned_at = field(header, "time").and_then(|t| t.parse().ok());
                }
            }
        }
    };
    let mut current: Option<Message> = None;
    let mut in_actions = false;
    // dbus-monitor marks no message's end: the next header ends it. It writes each message
    // whole, so a pause in its output ends the last one too — a reply that nothing follows
    // must not wait for the next message to be seen.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = match lines.recv_timeout(std::time::Duration::from_millis(30)) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(m) = current.take() {
                    flush(m);
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if is_header(&line) {
            if let Some(m) = current.take() {
                flush(m);
            }
            current = Some(Message {
                header: line,
                args: Vec::new(),
            });
            in_actions = false;
            continue;
        }
        let Some(m) = current.as_mut() else { continue };
        let starts_arg = line.starts_with("   ") && {
            let t = line.trim_start();
            [
                "string ",
                "uint32 ",
                "int32 ",
                "array [",
                "]",
                "dict entry(",
                ")",
                "variant",
                "byte ",
                "boolean ",
            ]
            .iter()
            .any(|p| t.starts_with(p))
        };
        if starts_arg {
            let t = line.trim_start();
            // Flatten the actions array's strings into top-level args after the body.
            if t.starts_with("array [") && m.args.len() == 5 {
                in_actions = true;
                continue;
            }
            if in_actions {
                if t.starts_with(']') {
                    in_actions = false;
                    m.args.push("end-actions".into());
                    continue;
                }
                m.args.push(line);
                continue;
            }
            m.args.push(line);
        } else if let Some(last) = m.args.last_mut() {
            // A string argument with a newline inside continues on the next line.
            last.push('\n');
            last.push_str(&line);
        }
    }
    if let Some(m) = current.take() {
        flush(m);
    }
}

const DUNSTRC: &str = r##"
[global]
    monitor = 0
    follow = none
    width = 380
    height = 160
    origin = top-right
    offset = 16x16
    notification_limit = 10
    padding = 12
    horizontal_padding = 14
    frame_width = 1
    frame_color = "#2563eb"
    separator_height = 2
    gap_size = 8
    font = DejaVu Sans 10
    markup = full
    format = "<b>%s</b>\n%b"
    alignment = left
    icon_position = left
    min_icon_size = 48
    max_icon_size = 48
    corner_radius = 8
    idle_threshold = 0
    show_age_threshold = -1
    sticky_history = yes
    history_length = 50
    mouse_left_click = do_action, close_current
    show_indicators = no

[urgency_low]
    background = "#ffffff"
    foreground = "#111827"
    timeout = 10

[urgency_normal]
    background = "#ffffff"
    foreground = "#111827"
    timeout = 10

[urgency_critical]
    background = "#ffffff"
    foreground = "#111827"
    frame_color = "#2563eb"
    timeout = 0
"##;
