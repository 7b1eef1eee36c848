//! One running engine per data dir, and where it can be found.
//!
//! Two engines on one data dir (two `callpop serve`, or a serve and the desktop app) both
//! ran and fought over the RingCentral subscription: the second deleted the first's, whose
//! status went on showing a subscription that no longer existed. The engine now holds an
//! exclusive lock on `callpop.lock` in the data dir for as long as it runs; a second one is
//! refused with a message naming the first. The lock is the operating system's (`flock` on
//! Linux and macOS, `LockFileEx` on Windows), so it goes away with the process however that
//! ends: no stale lock to clean up after a crash.
//!
//! `callpop.lock.json` beside it says who holds it and where it listens, which lets
//! `callpop status` find a serve started on another port (`--listen`) from the data dir alone.
//! It is only believed while the lock is held.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "callpop.lock";

/// Who holds the lock and where it listens, next to the lock: on Windows a locked file cannot
/// be read by another process, so the details cannot live in the lock file itself.
pub const HOLDER_FILE: &str = "callpop.lock.json";

/// Who runs the engine on a data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// What runs it, as people know it: "callpop serve" or "the CallPop app".
    pub program: String,
    /// Its process id.
    pub pid: u32,
    /// Since when.
    pub started_at: DateTime<Utc>,
    /// Where it receives webhooks, once it listens.
    pub listen: Option<SocketAddr>,
    /// Where it serves desks, when it is a hub.
    #[serde(default)]
    pub hub_listen: Option<SocketAddr>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (process {}", self.program, self.pid)?;
        if let Some(addr) = self.listen {
            write!(f, ", listening on {addr}")?;
        }
        write!(
            f,
            ", since {})",
            self.started_at
                .with_timezone(&Local)
                .format("%Y-%m-%d %H:%M")
        )
    }
}

/// Why the engine cannot have the data dir.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another engine runs on it.
    #[error(
        "another CallPop is already running on {}: {}. Stop it first, or give this one a \
         data dir of its own (--data-dir)",
        data_dir.display(),
        holder.as_ref().map_or_else(|| "it did not say which".to_string(), |h| h.to_string())
    )]
    Held {
        /// The data dir.
        data_dir: PathBuf,
        /// Who holds it, when the lock file says (boxed: errors stay small).
        holder: Option<Box<Holder>>,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {}: {}{source}", path.display(), why(source))]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Says in words what a failure to create the lock file means for the data dir.
fn why(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => "the data dir is on a read-only file system; ",
        std::io::ErrorKind::PermissionDenied => "this user may not write in the data dir; ",
        _ => "",
    }
}

/// The held lock: the data dir is this program's until it is dropped. A program that runs
/// engines one after another (the desktop app restarting its engine after a settings change)
/// holds it for its whole life and hands it to each engine ([`crate::engine::EngineOptions`]),
/// so a restart never races the previous engine's shutdown for it.
#[derive(Debug)]
pub struct InstanceLock {
    /// Holding the file open with its lock is what keeps the data dir this program's.
    _file: File,
    holder_path: PathBuf,
    holder: Mutex<Holder>,
}

impl InstanceLock {
    /// Takes the data dir for `program`, or says who has it.
    pub fn acquire(data_dir: &Path, program: &str) -> Result<InstanceLock, InstanceError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| InstanceError::Io {
            path: path.clone(),
            source,
        };
        callpop_files::create_private_dir(data_dir).map_err(io)?;
        // Never truncated: nothing is written into the lock file itself.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // `callpop status` takes a shared lock for an instant to see whether anyone holds it:
        // a start at that very moment waits it out rather than being refused.
        let mut attempts = 0;
        let locked = loop {
            match file.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(InstanceError::Held {
                    data_dir: data_dir.to_path_buf(),
                    holder: read_holder(data_dir).map(Box::new),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let lock = InstanceLock {
            _file: file,
            holder_path: data_dir.join(HOLDER_FILE),
            holder: Mutex::new(Holder {
                program: program.to_string(),
                pid: std::process::id(),
                started_at: Utc::now(),
                listen: None,
                hub_listen: None,
            }),
        };
        lock.write().map_err(io)?;
        Ok(lock)
    }

    /// Records where the engine listens, for `callpop status` to find it.
    pub fn record_listen(&self, addr: SocketAddr) {
        self.holder.lock().unwrap_or_else(|p| p.into_inner()).listen = Some(addr);
        if let Err(e) = self.write() {
            tracing::warn!(error = %e, "cannot record the listening address in the data dir");
        }
    }

    /// Records where the engine serves desks, for `callpop hub pair` to tell them.
    pub fn record_hub_listen(&self, addr: SocketAddr) {
        self.holder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hub_listen = Some(addr);
        if let Err(e) = self.write() {
            tracing::warn!(error = %e, "cannot record the hub's address in the data dir");
        }
    }

    fn write(&self) -> std::io::Result<()> {
        let holder = self
            .holder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let json = serde_json::to_vec(&holder).map_err(std::io::Error::other)?;
        callpop_files::write_atomically(&self.holder_path, &json, callpop_files::Access::Default)
    }
}

/// The engine running on `data_dir`, if one is: read from the lock file, and believed only
/// while its lock is held (a file left by a process that ended says nothing).
pub fn running(data_dir: &Path) -> Option<Holder> {
    let file = File::open(data_dir.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => read_holder(data_dir),
    }
}

fn read_holder(data_dir: &Path) -> Option<Holder> {
    let text = std::fs::read(data_dir.join(HOLDER_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_engine_is_refused_with_the_first_named_and_the_lock_ends_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(running(dir.path()), None);
        let first = InstanceLock::acquire(dir.path(), "callpop serve").expect("first");
        first.record_listen("127.0.0.1:18080".parse().expect("addr"));
        let found = running(dir.path()).expect("found");
        assert_eq!(found.pid, std::process::id());
        assert_eq!(found.listen, Some("127.0.0.1:18080".parse().expect("addr")));

        let refused = InstanceLock::acquire(dir.path(), "the CallPop app").expect_err("held");
        let message = refused.to_string();
        assert!(
            message.contains("already running")
                && message.contains("callpop serve (process ")
                && message.contains("listening on 127.0.0.1:18080")
                && message.contains("--data-dir"),
            "{message}"
        );
        // The refused attempt left the holder's record as it was.
        assert_eq!(running(dir.path()), Some(found));

        drop(first);
        assert_eq!(
            running(dir.path()),
            None,
            "a record without its lock means nothing"
        );
        InstanceLock::acquire(dir.path(), "the CallPop app").expect("free again");
    }
}
