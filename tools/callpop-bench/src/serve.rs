//! Running the real `callpop serve`: start, wait until it listens, resident memory, stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::load::{RC_TOKEN, RO_TOKEN};

/// A running `callpop serve`.
pub struct Serve {
    child: Child,
    /// Its port.
    pub port: u16,
}

/// The environment every measured server gets: known tokens, no popups unless asked.
pub fn command(callpop: &Path, data_dir: &Path) -> Command {
    let mut cmd = Command::new(callpop);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("xdg"))
        .env("CALLPOP_RINGCENTRAL_VERIFICATION_TOKEN", RC_TOKEN)
        .env("CALLPOP_RINGOTEL_API_TOKEN", RO_TOKEN)
        .env("CALLPOP_NOTIFICATIONS", "off")
        .env("RUST_LOG", "warn")
        .env_remove("CALLPOP_CONFIG");
    cmd
}

impl Serve {
    /// Starts a server on `port` (0: any) and waits for its "Listening on" line.
    pub fn start(
        callpop: &Path,
        data_dir: &Path,
        port: u16,
        env: &[(String, String)],
    ) -> Result<Serve> {
        let mut cmd = command(callpop, data_dir);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("cannot start callpop serve")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("callpop serve did not start")?;
            if let Some(port) = line
                .split("Listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return Ok(Serve { child, port });
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in MiB (VmRSS).
    pub fn rss_mib(&self) -> Result<f64> {
        rss_mib(self.child.id())
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        bail!("callpop serve did not stop in time")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process in MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    Ok(kb / 1024.0)
}

/// A fresh temporary data directory.
pub fn temp_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("callpop-bench-")
        .tempdir()?)
}

/// The release `callpop` binary next to this one, or the one given.
pub fn find_callpop(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("callpop");
    if sibling.exists() {
        return Ok(sibling);
    }
    bail!("cannot find the callpop binary; pass --callpop PATH")
}
