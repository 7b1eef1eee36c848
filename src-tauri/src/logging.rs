//! Logs to stderr and to a daily-rotated file in the app's log dir (the last week is kept), so
//! a dealership can send us what happened without a terminal.

use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Log files kept (one per day).
const KEEP_FILES: usize = 7;

/// Starts logging into `dir`. Keep the guard alive: dropping it flushes and stops the file log.
pub fn init(dir: &Path) -> anyhow::Result<WorkerGuard> {
    // Logs name callers and numbers: the folder and (with the umask set at start) its files
    // are the user's alone.
    callpop_files::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("callpop")
        .filename_suffix("log")
        .max_log_files(KEEP_FILES)
        .build(dir)
        .with_context(|| format!("cannot log to {}", dir.display()))?;
    let (file, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("CALLPOP_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tao=warn,wry=warn"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(
            callpop_engine::log_allowed,
        ))
        .with(
            fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                // A line that cannot be written is dropped: by default tracing reports it
                // with `eprintln!`, which panics when stderr is a file on a full disk.
                .log_internal_errors(false),
        )
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(file)
                .log_internal_errors(false),
        )
        .try_init()
        .context("logging is already set up")?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_a_dated_file_in_the_log_dir() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("logs");
        // As main() does: what the process creates is the user's alone.
        callpop_files::keep_new_files_private();
        let guard = init(&dir).expect("logging starts");
        tracing::info!(marker = "log-file-check", "hello from the test");
        drop(guard);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .expect("log dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            name.starts_with("callpop.") && name.ends_with(".log"),
            "{name}"
        );
        let text = std::fs::read_to_string(&files[0]).expect("log text");
        assert!(text.contains("log-file-check"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colour codes in the file");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "the log folder is private");
        assert_eq!(mode(&files[0]), 0o600, "log files are private");
    }
}
