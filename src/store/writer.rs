//! The single writer: one thread owns the write connection, takes requests from a channel and
//! commits them in groups (group commit), each request inside its own savepoint.
//!
//! A request is answered only after the transaction holding it has committed (with
//! `synchronous = FULL`), so an HTTP 200 always means "on disk". Changes are broadcast from
//! here, after the commit and in commit order, so every subscriber sees a call's rows in the
//! order they were written.

use std::thread::JoinHandle;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::ingest::{self, CallChange, IngestOutcome, QuarantineEntry};
use super::{PopupRecord, Store, StoreError};
use crate::model::{Delivery, Origin, Payload};

/// The most requests committed together.
const MAX_BATCH: usize = 512;

/// A committed change to a call, as broadcast to the notifier, the UI and other listeners.
#[derive(Debug, Clone)]
pub struct CommittedChange {
    /// The change.
    pub change: CallChange,
    /// Where the delivery that caused it came from.
    pub origin: Origin,
}

enum Op {
    Ingest(Box<Delivery>),
    Quarantine(Box<QuarantineEntry>),
    Replace {
        raw_event_id: i64,
        kind: String,
        payload: Box<Payload>,
    },
    SetState(String, String),
    SetPopup(PopupRecord),
}

enum Done {
    Ingested(IngestOutcome),
    Quarantined(i64),
    Replaced(Vec<CallChange>),
    StateSet,
    PopupSet,
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Job>,
}

impl StoreWriter {
    /// Starts the writer thread on an open store; changes are sent to `changes` after commit.
    pub fn spawn(
        store: Store,
        changes: broadcast::Sender<CommittedChange>,
    ) -> std::io::Result<(StoreWriter, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(4096);
        let handle = std::thread::Builder::new()
            .name("callpop-store-writer".into())
            .spawn(move || run(store, rx, changes))?;
        Ok((StoreWriter { tx }, handle))
    }

    async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Stores a delivery; returns after the commit.
    pub async fn ingest(&self, delivery: Delivery) -> Result<IngestOutcome, StoreError> {
        match self.submit(Op::Ingest(Box::new(delivery))).await? {
            Done::Ingested(outcome) => Ok(outcome),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Keeps an unusable authenticated body; returns its quarantine id after the commit.
    pub async fn quarantine(&self, entry: QuarantineEntry) -> Result<i64, StoreError> {
        match self.submit(Op::Quarantine(Box::new(entry))).await? {
            Done::Quarantined(id) => Ok(id),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Re-applies a stored raw event with a new reading of its body.
    pub async fn replace_payload(
        &self,
        raw_event_id: i64,
        kind: String,
        payload: Payload,
    ) -> Result<Vec<CallChange>, StoreError> {
        let op = Op::Replace {
            raw_event_id,
            kind,
            payload: Box::new(payload),
        };
        match self.submit(op).await? {
            Done::Replaced(changes) => Ok(changes),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Remembers a call's popup (phase, notification id, closed).
    pub async fn set_popup(&self, popup: PopupRecord) -> Result<(), StoreError> {
        match self.submit(Op::SetPopup(popup)).await? {
            Done::PopupSet => Ok(()),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Saves a value the engine keeps between runs.
    pub async fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        match self
            .submit(Op::SetState(key.to_string(), value.to_string()))
            .await?
        {
            Done::StateSet => Ok(()),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }
}

fn run(mut store: Store, mut rx: mpsc::Receiver<Job>, changes: broadcast::Sender<CommittedChange>) {
    let mut cache = ingest::CallCache::default();
    let mut data_version: Option<i64> = None;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Another connection (a CLI replay or backfill) changed the file: the cache is stale.
        // data_version only moves for other connections' commits, never for ours.
        let version = store
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .ok();
        if version != data_version {
            cache.clear();
            data_version = version;
        }
        let results = match commit_batch(&mut store, &mut cache, &batch) {
            Ok(results) => Ok(results),
            Err(e) => {
                // One bad request must not fail its neighbours: redo them one by one.
                cache.clear();
                tracing::debug!(error = %e, "group commit failed; retrying requests one by one");
                let mut single = Vec::with_capacity(batch.len());
                let mut fatal = None;
                for job in &batch {
                    match commit_batch(&mut store, &mut cache, std::slice::from_ref(job)) {
                        Ok(mut r) => single.push(r.remove(0)),
                        Err(e) => {
                            cache.clear();
                            if e.is_unavailable() {
                                fatal = Some(e);
                                break;
                            }
                            single.push(Err(e));
                        }
                    }
                }
                match fatal {
                    Some(e) => Err(e),
                    None => Ok(single),
                }
            }
        };
        match results {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    if let Ok(done) = &result {
                        broadcast_changes(&changes, &job.op, done);
                    }
                    // A requester that gave up (client hung up) is not an error.
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; {} request(s) not stored", batch.len());
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Unwritable(message.clone())));
                }
            }
        }
    }
    tracing::debug!("store writer stopped");
}

fn origin_of(op: &Op) -> Origin {
    match op {
        Op::Ingest(d) => d.origin,
        _ => Origin::Replay,
    }
}

fn broadcast_changes(changes: &broadcast::Sender<CommittedChange>, op: &Op, done: &Done) {
    let list = match done {
        Done::Ingested(IngestOutcome::Stored { changes, .. }) => changes.as_slice(),
        Done::Replaced(changes) => changes.as_slice(),
        _ => return,
    };
    let origin = origin_of(op);
    for change in list {
        // No subscribers is fine (CLI replays, tests).
        let _ = changes.send(CommittedChange {
            change: change.clone(),
            origin,
        });
    }
}

/// Runs every job in one transaction and commits once. Any failure rolls the whole group
/// back (the caller then retries the jobs one by one), so nothing half-done is ever committed.
/// Without per-job savepoints the full-text index is flushed once per group, not per job.
fn commit_batch(
    store: &mut Store,
    cache: &mut ingest::CallCache,
    batch: &[Job],
) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
    let options = store.options.clone();
    let tx = store.conn.transaction().map_err(StoreError::classify)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let done = match &job.op {
            Op::Ingest(d) => ingest::apply_delivery(&tx, &options, cache, d).map(Done::Ingested),
            Op::Quarantine(q) => ingest::quarantine(&tx, q).map(Done::Quarantined),
            Op::Replace {
                raw_event_id,
                kind,
                payload,
            } => ingest::replace_payload(&tx, &options, cache, *raw_event_id, kind, payload)
                .map(Done::Replaced),
            Op::SetState(k, v) => tx
                .prepare_cached(
                    "INSERT INTO engine_state (key, value, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                     updated_at = excluded.updated_at",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![k, v, super::to_ms(chrono::Utc::now())])
                })
                .map(|_| Done::StateSet)
                .map_err(StoreError::classify),
            Op::SetPopup(p) => tx
                .prepare_cached(
                    "INSERT INTO popups (call_id, phase, notification_id, closed, shown_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (call_id) DO UPDATE SET phase = excluded.phase,
                         notification_id = excluded.notification_id, closed = excluded.closed,
                         updated_at = excluded.updated_at",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        p.call_id,
                        p.phase,
                        p.notification_id.map(i64::from),
                        p.closed as i64,
                        super::to_ms(p.shown_at),
                        super::to_ms(chrono::Utc::now()),
                    ])
                })
                .map(|_| Done::PopupSet)
                .map_err(StoreError::classify),
        };
        match done {
            Ok(d) => results.push(Ok(d)),
            Err(e) if batch.len() == 1 => {
                // Alone in its transaction: report it and commit nothing.
                drop(tx);
                cache.clear();
                return Ok(vec![Err(match e {
                    StoreError::Sqlite(inner) => StoreError::classify(inner),
                    other => other,
                })]);
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit().map_err(StoreError::classify)?;
    Ok(results)
}

impl Store {
    /// Stores a delivery in its own transaction (CLI and tests; the server uses the writer).
    pub fn ingest(&mut self, delivery: &Delivery) -> Result<IngestOutcome, StoreError> {
        let options = self.options.clone();
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let outcome =
            ingest::apply_delivery(&tx, &options, &mut ingest::CallCache::default(), delivery)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(outcome)
    }

    /// Keeps an unusable body in its own transaction.
    pub fn quarantine(&mut self, entry: &QuarantineEntry) -> Result<i64, StoreError> {
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let id = ingest::quarantine(&tx, entry)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(id)
    }

    /// Re-applies a stored raw event with a new reading, in its own transaction.
    pub fn replace_payload(
        &mut self,
        raw_event_id: i64,
        kind: &str,
        payload: &Payload,
    ) -> Result<Vec<CallChange>, StoreError> {
        let options = self.options.clone();
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let changes = ingest::replace_payload(
            &tx,
            &options,
            &mut ingest::CallCache::default(),
            raw_event_id,
            kind,
            payload,
        )?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(changes)
    }

    /// Stores a quarantined body as a new delivery and marks it resolved, atomically.
    pub fn resolve_quarantined(
        &mut self,
        quarantine_id: i64,
        delivery: &Delivery,
    ) -> Result<IngestOutcome, StoreError> {
        let options = self.options.clone();
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let outcome =
            ingest::apply_delivery(&tx, &options, &mut ingest::CallCache::default(), delivery)?;
        let raw_event_id = match &outcome {
            IngestOutcome::Stored { raw_event_id, .. }
            | IngestOutcome::Duplicate { raw_event_id, .. } => *raw_event_id,
        };
        ingest::resolve_quarantine(&tx, quarantine_id, raw_event_id)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(outcome)
    }

    /// Records why a quarantined body still cannot be used.
    pub fn requarantine(&mut self, quarantine_id: i64, reason: &str) -> Result<(), StoreError> {
        ingest::requarantine(&self.conn, quarantine_id, reason)
    }
}
