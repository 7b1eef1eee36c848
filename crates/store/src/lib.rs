//! The local call history: one SQLite file (WAL, synced before any acknowledgement) holding every raw delivery, the
//! derived call rows, voicemails, quarantined bodies and the engine's own state.
//!
//! Only the engine's writer thread writes while `callpop serve` runs; readers (CLI, UI) open
//! their own connections and see committed data thanks to WAL.

pub mod contacts;
pub mod export;
mod feed;
pub mod hub;
mod ingest;
mod query;
mod schema;
mod syncer;
pub mod writer;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use callpop_core::numbers::Country;
use callpop_core::reparse::StoredBody;
use callpop_core::wire::ParseError;

pub use feed::{FeedChange, FeedPage, FeedRecord, FEED_HORIZON};
pub use ingest::replica::{ReplicaBatch, ReplicaChange, HUB_CURSOR};
pub use ingest::{CallChange, IngestOutcome, QuarantineEntry, MAX_EVENTS_PER_CALL};
pub use query::{
    CallFilter, CallRecord, EventFilter, PopupRecord, QuarantineRecord, RawEventRecord, StoreStats,
};
pub use schema::TOMBSTONE_DAYS;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "callpop.db";

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be created or opened.
    #[error("cannot open the call history at {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The history, its folder or its `-wal`/`-shm` files cannot be opened for reading and
    /// writing (read-only, permissions, I/O): the history itself may be intact.
    #[error("the call history at {path} cannot be opened for reading and writing ({detail}): check that its folder and the files callpop.db, callpop.db-wal and callpop.db-shm belong to this user and are writable, and that the disk is mounted read-write; the history itself was left untouched")]
    Inaccessible {
        /// The database path.
        path: PathBuf,
        /// SQLite's explanation.
        detail: String,
    },
    /// The file is not a CallPop SQLite database (or is damaged).
    #[error("{path} is not a readable CallPop database ({detail}); it was left untouched — move it away or point --data-dir elsewhere")]
    Unreadable {
        /// The database path.
        path: PathBuf,
        /// SQLite's explanation.
        detail: String,
    },
    /// A newer CallPop wrote this file.
    #[error("{path} was written by a newer CallPop (schema {found}, this build knows up to {supported}); upgrade CallPop — the file was left untouched")]
    NewerSchema {
        /// The database path.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// No history exists yet where a reader looked.
    #[error("no call history at {0} yet (start `callpop serve` first, or pass --data-dir)")]
    Missing(PathBuf),
    /// The disk is full or the database is read-only: nothing can be stored now.
    #[error("the call history cannot be written right now: {0}")]
    Unwritable(String),
    /// The export's destination (a file, a pipe, the terminal) refused what was written: the
    /// history itself is fine.
    #[error("cannot write the export: {0}")]
    Output(#[source] std::io::Error),
    /// Another program holds the history's lock (a backup tool, a database browser): neither
    /// reads nor writes can go on until it lets go.
    #[error("the call history is locked by another program ({0}); try again once it lets go")]
    Busy(String),
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored JSON column could not be read.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The writer thread is gone (shutting down or crashed).
    #[error("the store writer has stopped")]
    WriterGone,
    /// The delivery is readable but CallPop will not take it (a call with more events than
    /// any real call has); it is kept in quarantine when possible.
    #[error("this delivery is refused: {reason}{}", quarantine_id.map_or(String::new(), |id| format!(" (kept as quarantine #{id})")))]
    Refused {
        /// Why.
        reason: String,
        /// Where the delivery was kept.
        quarantine_id: Option<i64>,
    },
    /// A bug in CallPop stopped this request (the writer carries on). A delivery it hit is
    /// kept in quarantine, so a fixed version can replay it.
    #[error("CallPop failed while storing this: {message}{}", quarantine_id.map_or(String::new(), |id| format!(" (kept as quarantine #{id} for a replay)")))]
    Internal {
        /// What went wrong (the panic message).
        message: String,
        /// Where the delivery was kept, when it was one.
        quarantine_id: Option<i64>,
    },
}

impl StoreError {
    /// True when the failure is about the disk (full, read-only, I/O, locked) rather than
    /// the data.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unwritable(_) | StoreError::Busy(_) | StoreError::WriterGone
        )
    }

    /// Why nothing can be stored now, for the health page ("disk full (…)", "locked by
    /// another program (…)"); None when the failure is not about storage.
    pub fn storage_reason(&self) -> Option<String> {
        match self {
            StoreError::Unwritable(reason) => Some(reason.clone()),
            StoreError::Busy(detail) => Some(format!(
                "locked by another program or CallPop command, such as a replay ({detail})"
            )),
            _ => None,
        }
    }

    /// Maps SQLite errors that mean "cannot write now" to [`StoreError::Unwritable`], with a
    /// short reason first ("disk full", "read-only", …) for the health page, and a lock held
    /// by another program to [`StoreError::Busy`]: a search can hit that too, and must not
    /// read as a write failure.
    pub(crate) fn classify(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        if let rusqlite::Error::SqliteFailure(f, msg) = &e {
            let detail = msg.clone().unwrap_or_else(|| f.to_string());
            let reason = match f.code {
                C::DiskFull => "disk full",
                C::ReadOnly => "read-only",
                C::SystemIoFailure => "write failed",
                C::CannotOpen => "cannot open the file",
                C::DatabaseBusy | C::DatabaseLocked => return StoreError::Busy(detail),
                _ => return StoreError::Sqlite(e),
            };
            return StoreError::Unwritable(format!("{reason} ({detail})"));
        }
        StoreError::Sqlite(e)
    }
}

/// Every SQLite error is classified, so a disk-full or read-only failure raised deep inside
/// an ingest (through `?`) is reported as [`StoreError::Unwritable`] like one from COMMIT;
/// before, those arrived as plain "database error"s and the writer kept retrying each request
/// of the group against a full disk.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::classify(e)
    }
}

/// Reads a stored delivery's call events ([`callpop_core::reparse::stored_events`] outside tests).
pub type Reparse =
    fn(&StoredBody<'_>, &Country) -> Result<Vec<callpop_core::model::CallEvent>, ParseError>;

/// How the store reads numbers and stored deliveries.
#[derive(Clone)]
pub struct StoreOptions {
    /// Country used to index national number forms for search.
    pub country: Country,
    /// Reads the call events of a stored delivery (when a call is not in the writer's cache).
    pub reparse: Reparse,
}

impl StoreOptions {
    /// Options with the engine's own parsers.
    pub fn new(country: Country) -> StoreOptions {
        StoreOptions {
            country,
            reparse: callpop_core::reparse::stored_events,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("country", &self.country.iso)
            .finish_non_exhaustive()
    }
}

/// An open call history.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
}

/// Writes a value the engine keeps between runs (`engine_state`), in the caller's transaction.
pub(crate) fn put_state(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO engine_state (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?
    .execute(rusqlite::params![key, value, to_ms(Utc::now())])?;
    Ok(())
}

/// Milliseconds since the epoch, the unit of every stored time.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Sort keys per millisecond of start time. Small on purpose: the search index stores the
/// gaps between keys, and wide gaps cost bytes in every posting (with 2^20 here the index was
/// 2.5 times larger). More calls than this starting in one millisecond spill into the next.
pub(crate) const SORT_TIEBREAK: i64 = 16;

/// The lowest sort key a call that started at `t` can have. Start times are clamped to about
/// ±140 years around 1970 so the key cannot overflow, whatever a provider sends.
pub(crate) fn sort_key_floor(t: DateTime<Utc>) -> i64 {
    const LIMIT: i64 = 1 << 42;
    to_ms(t).clamp(-LIMIT, LIMIT - 1) * SORT_TIEBREAK
}

/// Reads a stored time.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

impl Store {
    /// Opens (creating with 0600 permissions if needed) and migrates the history at `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            callpop_files::create_private_dir(dir).map_err(|e| open_err(Box::new(e)))?;
        }
        if !path.exists() {
            callpop_files::create_private_file(path).map_err(|e| open_err(Box::new(e)))?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(Box::new(e)))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            options,
        };
        store.configure()?;
        store.migrate()?;
        store.catch_up_search()?;
        Ok(store)
    }

    /// Opens an existing history for reading and occasional writes from the CLI; never creates.
    pub fn open_existing(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        Store::open(path, options)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How this store reads numbers and stored deliveries (a store opened again to replace a
    /// writer that died uses the same).
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The file could not be read as a history: damaged or not a database — or only locked
    /// by another program, which must not tell the user to move their history away.
    fn unreadable(&self, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        let detail = e.to_string();
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => {
                StoreError::Busy(format!("{}: {detail}", self.path.display()))
            }
            // Only a file that is not a database (or is damaged) is worth moving away; an
            // intact history in a read-only folder must not be.
            Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Unreadable {
                path: self.path.clone(),
                detail,
            },
            _ => StoreError::Inaccessible {
                path: self.path.clone(),
                detail,
            },
        }
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        // Any statement touching the file tells a non-database apart before we change it.
        let _: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| self.unreadable(e))?;
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.unreadable(e))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(StoreError::classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite refused WAL mode; continuing with {mode}");
        }
        // FULL: a delivery acknowledged with 200 survives power loss, not only a crash.
        self.conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -16000;
             PRAGMA mmap_size = 268435456;
             PRAGMA journal_size_limit = 67108864;",
        )?;
        // Writing a call uses a few dozen distinct statements (an update names only the
        // columns that changed); with rusqlite's default of 16 they kept being re-prepared.
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(())
    }

    /// Lets COMMIT return before the WAL is synced, for a writer that syncs it itself before
    /// answering (see `syncer`). False, and nothing changed, unless the journal is a WAL.
    fn commit_without_sync(&mut self) -> bool {
        let wal = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .is_ok_and(|mode| mode.eq_ignore_ascii_case("wal"));
        // Checkpoints run on this connection and sync twice each (the WAL, then the
        // database); every 16 MiB of WAL instead of SQLite's 4 MiB took a tenth off the
        // writer's time under load, and a page rewritten often is copied once.
        // A small page cache: clean pages are read through the memory map anyway, and every
        // COMMIT walked the whole cache's hash table (pcache1TruncateUnsafe, 7 % of the
        // writer's time with 16 MiB).
        wal && self
            .conn
            .execute_batch(
                "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 4096;
                 PRAGMA cache_size = -2000;",
            )
            .is_ok()
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.unreadable(e))?;
        let supported = schema::latest_version();
        if found > supported {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
                supported,
            });
        }
        if found == 0 {
            // A version-0 file that already has tables is somebody else's database.
            let tables: i64 = self.conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )?;
            if tables > 0 {
                return Err(StoreError::Unreadable {
                    path: self.path.clone(),
                    detail: "it holds tables that CallPop did not create".into(),
                });
            }
        }
        let options = self.options.clone();
        for (index, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = index as i64 + 1;
            let tx = self.conn.transaction().map_err(StoreError::classify)?;
            tx.execute_batch(sql)?;
            // The texts (folded names, 5) and desk outcomes (7) of stored calls are built in
            // Rust, in the same transaction as the last of those steps: a crash in between
            // must not leave the version raised and the rebuild undone.
            if version == schema::FOLDED_SEARCH.max(schema::DESK_OUTCOMES) && found >= 1 {
                let calls = ingest::requeue_all(&tx, &options)?;
                tracing::info!(calls, "search texts and desk outcomes rebuilt");
            }
            tx.pragma_update(None, "user_version", version)?;
            tx.commit().map_err(StoreError::classify)?;
            tracing::info!(version, "call history schema migrated");
        }
        Ok(())
    }

    /// Applies search-index work a writer queued and could not apply before it stopped (a
    /// crash during a burst), so every stored call is searchable from the start.
    fn catch_up_search(&mut self) -> Result<(), StoreError> {
        let waiting: bool =
            self.conn
                .query_row("SELECT EXISTS (SELECT 1 FROM search_pending)", [], |r| {
                    r.get(0)
                })?;
        if waiting {
            let tx = self.conn.transaction().map_err(StoreError::classify)?;
            let n = ingest::flush_search(&tx)?;
            tx.commit().map_err(StoreError::classify)?;
            tracing::info!(calls = n, "search index caught up with stored calls");
        }
        Ok(())
    }

    /// Reads a value the engine keeps between runs (subscription id, last backfill, …).
    pub fn state_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM engine_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores a value the engine keeps between runs.
    pub fn state_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        put_state(&self.conn, key, value).map_err(StoreError::classify)
    }

    /// Caps this connection's page cache at `kib` KiB (a reader that only passes pages on).
    pub fn limit_page_cache(&self, kib: u32) -> Result<(), StoreError> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{kib}"))
            .map_err(StoreError::classify)
    }

    /// Runs SQLite's own consistency check; `Ok(())` when the file is sound.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(result))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn options() -> StoreOptions {
        StoreOptions::new(Country::from_iso("US").expect("US"))
    }

    pub(crate) fn scenario(name: &str) -> Vec<callpop_core::model::Delivery> {
        callpop_testkit::scenario(name)
    }

    /// A telephony event as subscription `sub` delivers it, under its own `uuid`.
    fn through(sub: &str, uuid: &str, sequence: i64, code: &str) -> callpop_core::model::Delivery {
        use callpop_testkit::payloads::{
            rc_desk_call_body, rc_notification, DESK_EXTENSION_ID, TELEPHONY_EVENT,
        };
        let at = callpop_testkit::at(0);
        let body = rc_notification(
            uuid,
            TELEPHONY_EVENT,
            at + chrono::Duration::milliseconds(sequence),
            sub,
            DESK_EXTENSION_ID,
            rc_desk_call_body("s-overlap", sequence, code, "JANE ROE", at),
        )
        .to_string()
        .into_bytes();
        let parsed =
            callpop_core::ringcentral::webhook::parse_delivery(&body, &callpop_testkit::us(), at)
                .expect("parses");
        callpop_core::model::Delivery {
            parsed,
            origin: callpop_core::model::Origin::Webhook,
            received_at: at,
            headers: Vec::new(),
            body_sha256: format!("{uuid}-sha"),
            body,
        }
    }

    #[test]
    fn the_same_event_through_two_subscriptions_is_stored_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join(DB_FILE), options()).expect("open");
        assert!(matches!(
            store.ingest(&through("webhook-sub", "u-1", 2, "Proceeding")),
            Ok(IngestOutcome::Stored { .. })
        ));
        // The same event, another subscription and uuid (the WebSocket during a switch).
        let double = store
            .ingest(&through("ws-sub", "ws-u-1", 2, "Proceeding"))
            .expect("ingest");
        assert!(
            matches!(
                double,
                IngestOutcome::Duplicate {
                    same_body: true,
                    ..
                }
            ),
            "{double:?}"
        );
        // The next event of the call is new, whichever way it comes.
        assert!(matches!(
            store.ingest(&through("ws-sub", "ws-u-2", 3, "Answered")),
            Ok(IngestOutcome::Stored { .. })
        ));
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM raw_events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 2);
        let deliveries: i64 = store
            .conn
            .query_row("SELECT event_count FROM calls", [], |r| r.get(0))
            .expect("call");
        assert_eq!(deliveries, 2, "the double is not counted as a delivery");
    }

    #[test]
    fn a_new_file_is_private_and_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join(DB_FILE);
        let store = Store::open(&path, options()).expect("open");
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, schema::latest_version());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(store);
        Store::open(&path, options()).expect("reopen is idempotent");
    }

    #[test]
    fn garbage_and_newer_files_are_refused_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        std::fs::write(&path, b"this is not a database at all, just text ........").expect("write");
        let err = Store::open(&path, options())
            .err()
            .expect("garbage refused");
        assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"this is not a database at all, just text ........"
        );

        // Only locked by another program (a backup tool, a database browser): say so, and
        // do not tell the user to move their history away.
        let path = dir.path().join("locked.db");
        Store::open(&path, options()).expect("create");
        let holder = Connection::open(&path).expect("sqlite");
        holder
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .expect("lock");
        let err = Store::open(&path, options()).err().expect("locked");
        assert!(matches!(err, StoreError::Busy(_)), "{err}");
        assert!(
            err.to_string().contains("locked by another program"),
            "{err}"
        );
        drop(holder);
        Store::open(&path, options()).expect("opens once the lock is gone");

        let path = dir.path().join("newer.db");
        {
            let conn = Connection::open(&path).expect("sqlite");
            conn.pragma_update(None, "user_version", 999)
                .expect("version");
        }
        let err = Store::open(&path, options()).err().expect("newer refused");
        assert!(
            matches!(err, StoreError::NewerSchema { found: 999, .. }),
            "{err}"
        );
    }

    #[test]
    fn disk_errors_raised_through_question_mark_are_unwritable() {
        fn failure(code: i32, msg: &str) -> Result<(), StoreError> {
            let e = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some(msg.to_string()),
            );
            Err(e)?
        }
        let full =
            failure(rusqlite::ffi::SQLITE_FULL, "database or disk is full").expect_err("fails");
        assert!(full.is_unavailable(), "{full:?}");
        assert_eq!(
            full.to_string(),
            "the call history cannot be written right now: disk full (database or disk is full)"
        );
        let io = failure(rusqlite::ffi::SQLITE_IOERR_WRITE, "disk I/O error").expect_err("fails");
        assert!(io.is_unavailable(), "{io:?}");
        let ro = failure(
            rusqlite::ffi::SQLITE_READONLY,
            "attempt to write a readonly database",
        )
        .expect_err("fails");
        assert!(
            matches!(&ro, StoreError::Unwritable(r) if r.starts_with("read-only")),
            "{ro:?}"
        );
        let store = Store::open(
            &tempfile::tempdir().expect("tempdir").path().join(DB_FILE),
            options(),
        )
        .expect("store");
        let sqlite = |code: i32, msg: &str| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(msg.to_string()))
        };
        for (code, msg) in [
            (
                rusqlite::ffi::SQLITE_READONLY,
                "attempt to write a readonly database",
            ),
            (
                rusqlite::ffi::SQLITE_CANTOPEN,
                "unable to open database file",
            ),
            (rusqlite::ffi::SQLITE_IOERR, "disk I/O error"),
        ] {
            let e = store.unreadable(sqlite(code, msg));
            assert!(matches!(e, StoreError::Inaccessible { .. }), "{msg}: {e:?}");
            assert!(!e.to_string().contains("move it away"), "{e}");
            assert!(e.to_string().contains("writable"), "{e}");
        }
        let e = store.unreadable(sqlite(
            rusqlite::ffi::SQLITE_NOTADB,
            "file is not a database",
        ));
        assert!(e.to_string().contains("move it away"), "{e}");
        let busy = failure(rusqlite::ffi::SQLITE_BUSY, "database is locked").expect_err("fails");
        assert!(busy.is_unavailable(), "{busy:?}");
        assert_eq!(
            busy.to_string(),
            "the call history is locked by another program (database is locked); try again once \
             it lets go",
            "a search that meets another program's lock must not read as a write failure"
        );
        assert_eq!(
            busy.storage_reason().as_deref(),
            Some(
                "locked by another program or CallPop command, such as a replay (database is \
                 locked)"
            )
        );
        assert_eq!(
            ro.storage_reason().as_deref(),
            Some("read-only (attempt to write a readonly database)")
        );
        // A problem with the data is not a storage outage.
        let constraint = failure(rusqlite::ffi::SQLITE_CONSTRAINT, "UNIQUE constraint failed")
            .expect_err("fails");
        assert!(!constraint.is_unavailable(), "{constraint:?}");
    }

    #[test]
    fn reading_a_missing_history_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Store::open_existing(&dir.path().join(DB_FILE), options())
            .err()
            .expect("missing");
        assert!(matches!(err, StoreError::Missing(_)));
    }
}
