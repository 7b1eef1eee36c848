//! The single writer: one thread owns the write connection, takes requests from a channel and
//! commits them in groups (group commit). A group stays open, taking more requests, for as
//! long as the syncer is still syncing the previous one.
//!
//! A request is answered only after the transaction holding it has committed and the WAL
//! has been synced past that commit (see `syncer`), so an HTTP 200 always means "on disk".
//! Changes are broadcast after the commit and in commit order, so every subscriber sees a
//! call's rows in the order they were written.

use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::hub::{self, CodeCheck, DeskSeen};
use super::ingest::replica::{self, ReplicaBatch};
use super::ingest::{self, CallChange, IngestOutcome, QuarantineEntry};
use super::syncer::{self, Syncer};
use super::{PopupRecord, Store, StoreError};
use callpop_core::model::{Delivery, Origin, Payload};

/// The most requests committed together.
const MAX_BATCH: usize = 512;

/// Groups this small (a desk's ordinary traffic) are committed with the search index up to
/// date, so a call is searchable the moment it is acknowledged. Bigger groups mean a burst:
/// their search-index work is queued and applied once per call (see migration 4), and small
/// groups inside the burst leave it queued too (each flush of the full-text index starts
/// segment merges, whatever its size).
const LIGHT_BATCH: usize = 4;

/// Longest the search index may trail acknowledged calls during a burst.
const MAX_SEARCH_LAG: Duration = Duration::from_millis(200);

/// A pause this long in the traffic applies the queued search-index work.
const IDLE_FLUSH: Duration = Duration::from_millis(5);

/// A committed change to a call, as broadcast to the notifier, the UI and other listeners.
#[derive(Debug, Clone)]
pub struct CommittedChange {
    /// The change, shared with the reply to the request that made it and every subscriber:
    /// copying both versions of the call for each of them cost more than writing it out.
    pub change: Arc<CallChange>,
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
    OldestOpenCall(DateTime<Utc>),
    EndUnheard {
        ringing_before: DateTime<Utc>,
        connected_before: DateTime<Utc>,
    },
    ApplyReplica(Box<ReplicaBatch>),
    PruneReplica(DateTime<Utc>),
    SweepReplica {
        generation: i64,
        since: DateTime<Utc>,
    },
    PruneFeed(DateTime<Utc>),
    CheckCode {
        id: String,
        now: DateTime<Utc>,
        max_attempts: u32,
    },
    AddDesk {
        code_id: String,
        wanted_name: String,
        token_sha256: String,
        now: DateTime<Utc>,
    },
    TouchDesks(Vec<DeskSeen>),
    RevokeDesk(String, DateTime<Utc>),
    FeedPosition,
    CompactFeed(i64),
    /// Test builds only (`test-hooks`): stores nothing, and the writer's loop panics once its
    /// group is committed, the way a bug in the loop's own bookkeeping would.
    #[cfg(any(test, feature = "test-hooks"))]
    PanicAfterCommit,
    /// Test builds only (`test-hooks`): the writer thread dies, the way a bug outside its
    /// guarded loop (or a dead disk-sync thread) would end it; the supervisor restarts it.
    #[cfg(any(test, feature = "test-hooks"))]
    KillWriter,
}

enum Done {
    Ingested(IngestOutcome),
    Quarantined(i64),
    Replaced(Vec<CallChange>),
    StateSet,
    PopupSet,
    OldestOpenCall(Option<DateTime<Utc>>),
    CodeChecked(CodeCheck),
    DeskAdded(Result<String, CodeCheck>),
    FeedPosition(i64),
    Revoked(bool),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// A committed job and its result, waiting to be answered.
type Answered = (Job, Result<Done, StoreError>);

/// When committed groups are answered.
enum Acks {
    /// The commit itself synced (`synchronous = FULL`; the journal is not a WAL).
    AtCommit(broadcast::Sender<CommittedChange>),
    /// After the syncer has flushed the WAL past the group's commit.
    AfterFlush(Syncer<Vec<Answered>>),
}

/// Handle to the writer thread; cheap to clone. Every clone follows the writer across
/// restarts: the supervisor swaps the channel they send on.
#[derive(Clone)]
pub struct StoreWriter {
    tx: Arc<RwLock<mpsc::Sender<Job>>>,
    restarts: watch::Receiver<WriterRestarts>,
}

/// How often the writer thread died and was started again, and why it last died.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterRestarts {
    /// Restarts since the engine started.
    pub count: u64,
    /// What ended the writer last time.
    pub last_failure: Option<String>,
    /// True from the writer's death until a new one runs.
    pub restarting: bool,
}

/// How long the supervisor waits before trying to open the history again after failing to.
const REOPEN_RETRY: Duration = Duration::from_secs(2);

impl StoreWriter {
    /// Starts the writer thread on an open store, under a supervisor thread that starts a new
    /// writer (on a freshly opened store) whenever one dies: without it, every later delivery
    /// would get 503 until CallPop was restarted. Changes are sent to `changes` after commit.
    /// The handle returned is the supervisor's; it ends once every [`StoreWriter`] is dropped
    /// and the writer has finished.
    pub fn spawn(
        store: Store,
        changes: broadcast::Sender<CommittedChange>,
    ) -> std::io::Result<(StoreWriter, JoinHandle<()>)> {
        let flush = syncer::wal_flush(store.path());
        StoreWriter::spawn_with_flush(store, changes, flush)
    }

    fn spawn_with_flush(
        store: Store,
        changes: broadcast::Sender<CommittedChange>,
        flush: syncer::Flush,
    ) -> std::io::Result<(StoreWriter, JoinHandle<()>)> {
        let (path, options) = (store.path().to_path_buf(), store.options().clone());
        let (tx, first) = start_writer(store, changes.clone(), flush)?;
        let shared = Arc::new(RwLock::new(tx));
        let (report, restarts) = watch::channel(WriterRestarts::default());
        let supervised = Supervised {
            path,
            options,
            changes,
            shared: Arc::downgrade(&shared),
            report,
        };
        let supervisor = std::thread::Builder::new()
            .name("callpop-store-supervisor".into())
            .spawn(move || supervised.watch(first))?;
        Ok((
            StoreWriter {
                tx: shared,
                restarts,
            },
            supervisor,
        ))
    }

    /// Follows the writer's restarts.
    pub fn restarts(&self) -> watch::Receiver<WriterRestarts> {
        self.restarts.clone()
    }

    async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, rx) = oneshot::channel();
        let tx = self
            .tx
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tx.send(Job { op, reply })
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

    /// Test builds only (`test-hooks`): the writer's loop panics once the group this joins is
    /// committed, the way a bug in the loop's own bookkeeping would. The group gets no answer
    /// ([`StoreError::WriterGone`]); the writer carries on with the next one.
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn simulate_loop_bug(&self) -> Result<(), StoreError> {
        self.submit(Op::PanicAfterCommit).await.map(|_| ())
    }

    /// Test builds only (`test-hooks`): the writer thread dies; its supervisor starts a new
    /// one. This request gets no answer ([`StoreError::WriterGone`]).
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn simulate_writer_death(&self) -> Result<(), StoreError> {
        self.submit(Op::KillWriter).await.map(|_| ())
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

    /// Ends the calls whose end was never reported: ringing with no event since
    /// `ringing_before`, connected with none since `connected_before` (result
    /// `no_end_reported`; a real end arriving later wins). Returns the changed calls, which
    /// are also broadcast like a replay's.
    pub async fn end_unheard_calls(
        &self,
        ringing_before: DateTime<Utc>,
        connected_before: DateTime<Utc>,
    ) -> Result<Vec<CallChange>, StoreError> {
        let op = Op::EndUnheard {
            ringing_before,
            connected_before,
        };
        match self.submit(op).await? {
            Done::Replaced(changes) => Ok(changes),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Applies changes from the hub to a desk's replica, with the feed position they reach,
    /// in one transaction. Returns the calls that changed, also broadcast with the batch's
    /// origin.
    pub async fn apply_replica(&self, batch: ReplicaBatch) -> Result<Vec<CallChange>, StoreError> {
        self.changes_of(Op::ApplyReplica(Box::new(batch))).await
    }

    /// Deletes the hub's rows of calls that started before `before` (a desk's window); the
    /// desk's own history stays.
    pub async fn prune_replica(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<CallChange>, StoreError> {
        self.changes_of(Op::PruneReplica(before)).await
    }

    /// After a resynchronization round `generation` covering calls since `since`: deletes the
    /// hub's rows in that range the round did not send again.
    pub async fn sweep_replica(
        &self,
        generation: i64,
        since: DateTime<Utc>,
    ) -> Result<Vec<CallChange>, StoreError> {
        self.changes_of(Op::SweepReplica { generation, since })
            .await
    }

    /// Drops the change feed's tombstones older than `before` (a hub, daily).
    pub async fn prune_feed(&self, before: DateTime<Utc>) -> Result<(), StoreError> {
        match self.submit(Op::PruneFeed(before)).await? {
            Done::StateSet => Ok(()),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Checks a pairing code for an attempt, counting it (a hub's desk API).
    pub async fn hub_check_code(
        &self,
        id: &str,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<CodeCheck, StoreError> {
        let op = Op::CheckCode {
            id: id.to_string(),
            now,
            max_attempts,
        };
        match self.submit(op).await? {
            Done::CodeChecked(check) => Ok(check),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Pairs a desk, spending its code: the desk's unique name, or what the code is now.
    pub async fn hub_add_desk(
        &self,
        code_id: &str,
        wanted_name: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<String, CodeCheck>, StoreError> {
        let op = Op::AddDesk {
            code_id: code_id.to_string(),
            wanted_name: wanted_name.to_string(),
            token_sha256: token_sha256.to_string(),
            now,
        };
        match self.submit(op).await? {
            Done::DeskAdded(added) => Ok(added),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Removes a desk from the hub: its token stops working. False when no paired desk has
    /// that name.
    pub async fn hub_revoke(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        match self.submit(Op::RevokeDesk(name.to_string(), now)).await? {
            Done::Revoked(done) => Ok(done),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Records what the hub saw of its desks lately.
    pub async fn hub_touch_desks(&self, seen: Vec<DeskSeen>) -> Result<(), StoreError> {
        match self.submit(Op::TouchDesks(seen)).await? {
            Done::StateSet => Ok(()),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// The change feed's newest sequence number, answered (like every request) only once the
    /// group it joined is on disk: every change up to it is durable, so a hub may send it to
    /// desks without a power cut ever taking back a number they applied.
    pub async fn durable_feed_position(&self) -> Result<i64, StoreError> {
        match self.submit(Op::FeedPosition).await? {
            Done::FeedPosition(seq) => Ok(seq),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Deletes the change feed's rows superseded by a change at or before `upto`, which must
    /// be a durable position ([`StoreWriter::durable_feed_position`]).
    pub async fn compact_feed(&self, upto: i64) -> Result<(), StoreError> {
        match self.submit(Op::CompactFeed(upto)).await? {
            Done::StateSet => Ok(()),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    async fn changes_of(&self, op: Op) -> Result<Vec<CallChange>, StoreError> {
        match self.submit(op).await? {
            Done::Replaced(changes) => Ok(changes),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }

    /// Start of the oldest RingCentral call since `since` that is still ringing or connected
    /// (see [`super::query::oldest_open_call`]).
    pub async fn oldest_open_call_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.submit(Op::OldestOpenCall(since)).await? {
            Done::OldestOpenCall(start) => Ok(start),
            _ => Err(StoreError::Corrupt(
                "writer answered the wrong request".into(),
            )),
        }
    }
}

/// What the writer's loop carries from one round to the next.
/// A writer thread: `Err` with the reason when it died rather than finished.
type WriterThread = JoinHandle<Result<(), String>>;

/// Starts one writer thread (and its disk-sync thread) on `store`.
fn start_writer(
    mut store: Store,
    changes: broadcast::Sender<CommittedChange>,
    flush: syncer::Flush,
) -> std::io::Result<(mpsc::Sender<Job>, WriterThread)> {
    let (tx, rx) = mpsc::channel(4096);
    // Only for waiting on the channel with a timeout; the writer itself never awaits.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let acks = if store.commit_without_sync() {
        Acks::AfterFlush(Syncer::spawn(
            flush,
            Box::new(move |group: Vec<Answered>, failed| answer(&changes, group, failed)),
        )?)
    } else {
        Acks::AtCommit(changes)
    };
    let handle = std::thread::Builder::new()
        .name("callpop-store-writer".into())
        .spawn(move || run(store, rx, acks, timer))?;
    Ok((tx, handle))
}

/// What the supervisor needs to start a new writer.
struct Supervised {
    path: std::path::PathBuf,
    options: crate::StoreOptions,
    changes: broadcast::Sender<CommittedChange>,
    /// The channel every [`StoreWriter`] sends on; gone once they all are.
    shared: std::sync::Weak<RwLock<mpsc::Sender<Job>>>,
    report: watch::Sender<WriterRestarts>,
}

impl Supervised {
    /// Waits for the writer to end; a writer that died (rather than finished because CallPop
    /// is stopping) is replaced by a new one on a freshly opened history.
    fn watch(self, mut writer: WriterThread) {
        loop {
            let started = Instant::now();
            let failure = match writer.join() {
                Ok(Ok(())) => return,
                Ok(Err(reason)) => reason,
                Err(panic) => format!("it panicked: {}", panic_message(panic.as_ref())),
            };
            tracing::error!(%failure, "the store writer stopped; starting a new one");
            // A writer that dies as soon as it starts must not be restarted in a tight loop.
            if started.elapsed() < REOPEN_RETRY {
                std::thread::sleep(REOPEN_RETRY);
            }
            self.report.send_modify(|r| {
                r.count += 1;
                r.last_failure = Some(failure.clone());
                r.restarting = true;
            });
            match self.restart() {
                Some(next) => writer = next,
                None => return,
            }
            self.report.send_modify(|r| r.restarting = false);
            tracing::info!("a new store writer is running");
        }
    }

    /// Opens the history and starts a writer on it, retrying until that works or nobody is
    /// left to send to it.
    fn restart(&self) -> Option<WriterThread> {
        loop {
            let shared = self.shared.upgrade()?;
            let started = Store::open(&self.path, self.options.clone())
                .map_err(|e| e.to_string())
                .and_then(|store| {
                    let flush = syncer::wal_flush(store.path());
                    start_writer(store, self.changes.clone(), flush).map_err(|e| e.to_string())
                });
            match started {
                Ok((tx, writer)) => {
                    *shared.write().unwrap_or_else(PoisonError::into_inner) = tx;
                    return Some(writer);
                }
                Err(e) => {
                    drop(shared);
                    tracing::error!(error = %e, "cannot start a new store writer yet; trying again");
                    std::thread::sleep(REOPEN_RETRY);
                }
            }
        }
    }
}

struct Rounds {
    cache: ingest::CallCache,
    batch: Vec<Job>,
    /// Since when search-index work has been waiting (None: the index is up to date).
    search_behind: Option<Instant>,
}

/// The writer's loop. `Err` when it cannot go on (its disk-sync thread is gone): the
/// supervisor starts a new writer.
fn run(
    mut store: Store,
    mut rx: mpsc::Receiver<Job>,
    acks: Acks,
    timer: tokio::runtime::Runtime,
) -> Result<(), String> {
    let mut rounds = Rounds {
        cache: ingest::CallCache::default(),
        batch: Vec::with_capacity(MAX_BATCH),
        search_behind: None,
    };
    loop {
        // A bug in the loop's own bookkeeping (outside storing a request, which
        // `apply_guarded` contains) must not stop the writer: every later delivery would get
        // 503 until CallPop is restarted.
        let round = std::panic::AssertUnwindSafe(|| {
            one_round(&mut store, &mut rx, &acks, &timer, &mut rounds)
        });
        match std::panic::catch_unwind(round) {
            Ok(Round::Next) => {}
            Ok(Round::Closed) => break,
            Ok(Round::Fatal(reason)) => return Err(reason),
            Err(panic) => {
                tracing::error!(
                    message = %panic_message(panic.as_ref()),
                    "the store writer hit a bug; this group's requests get no answer (503; \
                     RingCentral does not send them again, the call-log backfill recovers the \
                     calls) and the writer goes on"
                );
                // An open transaction rolled back as the panic unwound; anything committed is
                // recognised as a duplicate when it is sent again.
                rounds.cache.clear();
                rounds.batch.clear();
                rounds.search_behind.get_or_insert_with(Instant::now);
            }
        }
    }
    if rounds.search_behind.is_some() {
        flush_search_alone(&mut store);
    }
    // Dropping the syncer answers whatever is still waiting for a flush.
    drop(acks);
    tracing::debug!("store writer stopped");
    Ok(())
}

/// How a round of the writer's loop ended.
enum Round {
    /// Go on with the next group.
    Next,
    /// The channel is closed: CallPop is stopping.
    Closed,
    /// The writer cannot go on; the reason.
    Fatal(String),
}

/// Takes one group of requests, commits it and hands it on to be answered.
fn one_round(
    store: &mut Store,
    rx: &mut mpsc::Receiver<Job>,
    acks: &Acks,
    timer: &tokio::runtime::Runtime,
    rounds: &mut Rounds,
) -> Round {
    let Rounds {
        cache,
        batch,
        search_behind,
    } = rounds;
    let first = if search_behind.is_some() {
        match timer.block_on(async { tokio::time::timeout(IDLE_FLUSH, rx.recv()).await }) {
            Ok(Some(job)) => job,
            Ok(None) => return Round::Closed,
            Err(_) => {
                *search_behind = None;
                flush_search_alone(store);
                return Round::Next;
            }
        }
    } else {
        match rx.blocking_recv() {
            Some(job) => job,
            None => return Round::Closed,
        }
    };
    batch.push(first);
    fill(rx, batch);
    if let Err(reason) = restore_trust(store, acks) {
        refuse(batch, &reason.to_string());
        return Round::Next;
    }
    let lag_due = search_behind.is_some_and(|since| since.elapsed() >= MAX_SEARCH_LAG);
    let calm = search_behind.is_none();
    let index_now = |group: usize| (calm && group <= LIGHT_BATCH) || lag_due;
    let mut more = |batch: &mut Vec<Job>| take_more(rx, acks, timer, batch);
    match commit_batch(store, cache, batch, &mut more, &index_now) {
        Ok((results, indexed)) => {
            #[cfg(any(test, feature = "test-hooks"))]
            if batch
                .iter()
                .any(|job| matches!(job.op, Op::PanicAfterCommit))
            {
                panic!("the writer's loop hit a bug");
            }
            #[cfg(any(test, feature = "test-hooks"))]
            if batch.iter().any(|job| matches!(job.op, Op::KillWriter)) {
                return Round::Fatal("stopped by a test hook".into());
            }
            note_search(search_behind, indexed);
            if !hand_over(acks, batch.drain(..).zip(results).collect()) {
                return Round::Fatal("its disk-sync thread stopped".into());
            }
        }
        Err(e) => {
            cache.clear();
            tracing::debug!(error = %e, "group commit failed; retrying requests one by one");
            if !one_by_one(store, cache, batch, acks, &index_now, search_behind) {
                return Round::Fatal("its disk-sync thread stopped".into());
            }
        }
    }
    Round::Next
}

/// The message a panic carried.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Adds whatever requests are already waiting, up to a full group.
fn fill(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// While the syncer is still flushing earlier groups, waits for another request to join the
/// open group. False: commit now (the syncer is free, or no more requests will come).
fn take_more(
    rx: &mut mpsc::Receiver<Job>,
    acks: &Acks,
    timer: &tokio::runtime::Runtime,
    batch: &mut Vec<Job>,
) -> bool {
    let Acks::AfterFlush(syncer) = acks else {
        return false;
    };
    if !syncer.busy() {
        return false;
    }
    let job = timer.block_on(async {
        tokio::select! {
            biased;
            () = syncer.idle() => None,
            job = rx.recv() => job,
        }
    });
    match job {
        Some(job) => {
            batch.push(job);
            fill(rx, batch);
            true
        }
        None => false,
    }
}

/// Remembers whether the search index is up to date after a commit.
fn note_search(search_behind: &mut Option<Instant>, indexed: bool) {
    if indexed {
        *search_behind = None;
    } else {
        search_behind.get_or_insert_with(Instant::now);
    }
}

/// Passes a committed group on to be answered once it is on disk.
/// Hands a committed group on to be answered; false when the disk-sync thread is gone.
fn hand_over(acks: &Acks, group: Vec<Answered>) -> bool {
    if group.is_empty() {
        return true;
    }
    match acks {
        Acks::AtCommit(changes) => {
            answer(changes, group, None);
            true
        }
        Acks::AfterFlush(syncer) => syncer.submit(group),
    }
}

/// After a group failed: each request in a transaction of its own, so one bad request does
/// not fail its neighbours. Once the history cannot be written at all, the rest is refused.
fn one_by_one(
    store: &mut Store,
    cache: &mut ingest::CallCache,
    batch: &mut Vec<Job>,
    acks: &Acks,
    index_now: &dyn Fn(usize) -> bool,
    search_behind: &mut Option<Instant>,
) -> bool {
    let mut answered = Vec::with_capacity(batch.len());
    let mut jobs = std::mem::take(batch).into_iter();
    while let Some(job) = jobs.next() {
        let mut alone = vec![job];
        match commit_batch(store, cache, &mut alone, &mut |_| false, index_now) {
            Ok((results, indexed)) => {
                note_search(search_behind, indexed);
                answered.extend(alone.into_iter().zip(results));
            }
            Err(e) if e.is_unavailable() => {
                cache.clear();
                let rest: Vec<Job> = alone.into_iter().chain(jobs).collect();
                let (known, mut rest) = recognise_stored(store, rest);
                answered.extend(known);
                tracing::error!(error = %e, "commit failed; {} request(s) not stored", rest.len());
                // The reason alone: wrapping the whole message again read "cannot be written
                // right now: cannot be written right now: …" on the health page.
                let reason = e.storage_reason().unwrap_or_else(|| e.to_string());
                refuse(&mut rest, &reason);
                break;
            }
            Err(e) => {
                cache.clear();
                answered.extend(alone.pop().map(|job| (job, Err(e))));
            }
        }
    }
    hand_over(acks, answered)
}

/// Splits requests the history could not take into re-deliveries of deliveries it already
/// holds, answered as (uncounted) duplicates, and the rest. A provider that keeps getting 503
/// for deliveries that are safe on disk retries them for nothing and may give up on the
/// subscription. The duplicates are answered through the syncer like any other reply: their
/// stored copy may be in a group whose flush is still under way.
fn recognise_stored(store: &Store, jobs: Vec<Job>) -> (Vec<Answered>, Vec<Job>) {
    let mut known = Vec::new();
    let mut rest = Vec::new();
    for job in jobs {
        let stored = match &job.op {
            Op::Ingest(delivery) => ingest::stored_copy(&store.conn, delivery).ok().flatten(),
            _ => None,
        };
        match stored {
            Some((raw_event_id, same_body)) => {
                let duplicate = IngestOutcome::Duplicate {
                    raw_event_id,
                    same_body,
                    counted: false,
                };
                known.push((job, Ok(Done::Ingested(duplicate))));
            }
            None => rest.push(job),
        }
    }
    (known, rest)
}

/// Answers every request of a group that was not stored: the history cannot be written now.
fn refuse(batch: &mut Vec<Job>, reason: &str) {
    for job in batch.drain(..) {
        let _ = job
            .reply
            .send(Err(StoreError::Unwritable(reason.to_string())));
    }
}

/// Answers a committed group and broadcasts its changes, in commit order. `failed`: the
/// flush after the commit failed, so the group may not be on disk.
fn answer(
    changes: &broadcast::Sender<CommittedChange>,
    group: Vec<Answered>,
    failed: Option<&std::io::Error>,
) {
    for (job, result) in group {
        // Committed rows are visible to every reader whatever the flush said; the UI shows
        // what the history holds.
        if let Ok(done) = &result {
            broadcast_changes(changes, &job.op, done);
        }
        let result = match (failed, result) {
            (Some(e), Ok(_)) => Err(StoreError::Unwritable(format!(
                "the disk did not confirm the write ({e})"
            ))),
            (_, result) => result,
        };
        // A requester that gave up (client hung up) is not an error.
        let _ = job.reply.send(result);
    }
}

/// Why what was committed is not yet known to be on disk again after a failed flush.
#[derive(Debug, thiserror::Error)]
enum StillInDoubt {
    /// The checkpoint could not copy every frame: a reader holds the WAL.
    #[error(
        "the disk did not confirm a write, and a reader is holding the history open; retrying"
    )]
    ReaderHoldsWal,
    /// The checkpoint itself failed.
    #[error("the disk did not confirm a write and cannot be re-synced ({0})")]
    Checkpoint(rusqlite::Error),
}

/// After a failed flush, nothing more is acknowledged until everything committed is in the
/// database file and synced: the WAL on disk may now have a hole, and recovery stops at the
/// first bad frame, so later frames synced fine would be lost with it. A TRUNCATE checkpoint
/// copies every committed page from the (cached) WAL into the database, syncs it and empties
/// the WAL. Err: why the group cannot be taken now.
fn restore_trust(store: &mut Store, acks: &Acks) -> Result<(), StillInDoubt> {
    let Acks::AfterFlush(syncer) = acks else {
        return Ok(());
    };
    if !syncer.in_doubt() {
        return Ok(());
    }
    let checkpoint = store
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
    match checkpoint {
        Ok(0) => {
            tracing::info!("every committed delivery is on disk again");
            syncer.trust_again();
            Ok(())
        }
        Ok(_) => Err(StillInDoubt::ReaderHoldsWal),
        Err(e) => Err(StillInDoubt::Checkpoint(e)),
    }
}

/// Applies queued search-index work in a transaction of its own (the traffic paused).
fn flush_search_alone(store: &mut Store) {
    let result = store
        .conn
        .transaction()
        .map_err(StoreError::classify)
        .and_then(|tx| {
            let n = ingest::flush_search(&tx)?;
            tx.commit().map_err(StoreError::classify)?;
            Ok(n)
        });
    match result {
        Ok(n) => tracing::trace!(calls = n, "search index caught up"),
        // The work stays queued; the next group or the next start applies it.
        Err(e) => tracing::warn!(error = %e, "could not update the search index"),
    }
}

fn origin_of(op: &Op) -> Origin {
    match op {
        Op::Ingest(d) => d.origin,
        Op::ApplyReplica(batch) => batch.origin,
        _ => Origin::Replay,
    }
}

fn broadcast_changes(changes: &broadcast::Sender<CommittedChange>, op: &Op, done: &Done) {
    let origin = origin_of(op);
    // No subscribers is fine (CLI replays, tests).
    let send = |change: Arc<CallChange>| {
        let _ = changes.send(CommittedChange { change, origin });
    };
    match done {
        Done::Ingested(IngestOutcome::Stored { changes: list, .. }) => {
            list.iter().cloned().for_each(send);
        }
        // Replays are rare: their changes are copied.
        Done::Replaced(list) => list
            .iter()
            .map(|change| Arc::new(change.clone()))
            .for_each(send),
        _ => {}
    }
}

/// Runs every job in one transaction and commits once. Any failure rolls the whole group
/// back (the caller then retries the jobs one by one), so nothing half-done is ever committed.
/// Without per-job savepoints the full-text index is flushed once per group, not per job.
///
/// While the syncer is still flushing an earlier group, committing now would gain nothing
/// (this group would wait for the next flush anyway), so `more` is asked for further jobs and
/// they join this transaction; the group commits as soon as the syncer is free. Under load
/// that makes one commit per flush: the per-commit costs (WAL frames of shared pages, the
/// search-index flush) are paid once for many deliveries rather than once for a handful.
/// `index_now(group size)` says whether to apply the queued search-index work before the commit.
fn commit_batch(
    store: &mut Store,
    cache: &mut ingest::CallCache,
    batch: &mut Vec<Job>,
    more: &mut dyn FnMut(&mut Vec<Job>) -> bool,
    index_now: &dyn Fn(usize) -> bool,
) -> Result<(Vec<Result<Done, StoreError>>, bool), StoreError> {
    let options = store.options.clone();
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::classify)?;
    // Another connection (a CLI replay or backfill) may have changed the file.
    cache.follow(&tx)?;
    let mut results = Vec::with_capacity(batch.len());
    loop {
        while let Some(job) = batch.get(results.len()) {
            match apply_guarded(&tx, &options, cache, job) {
                Ok(d) => results.push(Ok(d)),
                Err(e) if batch.len() == 1 => {
                    // Alone in its transaction: report it and commit nothing.
                    drop(tx);
                    cache.clear();
                    return Ok((
                        vec![Err(match e {
                            StoreError::Sqlite(inner) => StoreError::classify(inner),
                            StoreError::Internal { message, .. } => StoreError::Internal {
                                quarantine_id: keep_aside(
                                    store,
                                    job,
                                    format!("CallPop failed while storing it: {message}"),
                                ),
                                message,
                            },
                            StoreError::Refused { reason, .. } => StoreError::Refused {
                                quarantine_id: keep_aside(store, job, reason.clone()),
                                reason,
                            },
                            other => other,
                        })],
                        false,
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        if batch.len() >= MAX_BATCH || !more(batch) {
            break;
        }
    }
    let indexed = index_now(batch.len());
    if indexed {
        ingest::flush_search(&tx)?;
    }
    tx.commit().map_err(StoreError::classify)?;
    Ok((results, indexed))
}

/// [`apply_job`], with a panic in CallPop's own code turned into an error for this request
/// alone: one delivery that hits a bug must not stop the writer, and every later delivery
/// with it. The caller rolls the transaction back and clears the call cache.
fn apply_guarded(
    tx: &rusqlite::Transaction<'_>,
    options: &super::StoreOptions,
    cache: &mut ingest::CallCache,
    job: &Job,
) -> Result<Done, StoreError> {
    let run = std::panic::AssertUnwindSafe(|| apply_job(tx, options, cache, job));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let message = panic_message(panic.as_ref());
        tracing::error!(%message, "storing a request panicked; it alone fails");
        Err(StoreError::Internal {
            message,
            quarantine_id: None,
        })
    })
}

/// Keeps a delivery that could not be stored (its storing panicked, or it was refused) in
/// quarantine, in a transaction of its own, so nothing is lost and a fixed CallPop can replay
/// it. Its quarantine id, when it is a delivery and could be kept.
fn keep_aside(store: &mut Store, job: &Job, reason: String) -> Option<i64> {
    let Op::Ingest(d) = &job.op else {
        return None;
    };
    let entry = QuarantineEntry {
        provider: d.parsed.provider,
        received_at: d.received_at,
        reason,
        headers: d.headers.clone(),
        body: d.body.clone(),
        body_sha256: d.body_sha256.clone(),
    };
    let kept = store
        .conn
        .transaction()
        .map_err(StoreError::classify)
        .and_then(|tx| {
            let id = ingest::quarantine(&tx, &entry)?;
            tx.commit().map_err(StoreError::classify)?;
            Ok(id)
        });
    match kept {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, "the delivery could not be kept in quarantine either");
            None
        }
    }
}

/// Carries out one request inside the group's transaction.
fn apply_job(
    tx: &rusqlite::Transaction<'_>,
    options: &super::StoreOptions,
    cache: &mut ingest::CallCache,
    job: &Job,
) -> Result<Done, StoreError> {
    match &job.op {
        Op::Ingest(d) => ingest::apply_delivery(tx, options, cache, d).map(Done::Ingested),
        Op::Quarantine(q) => ingest::quarantine(tx, q).map(Done::Quarantined),
        Op::Replace {
            raw_event_id,
            kind,
            payload,
        } => ingest::replace_payload(tx, options, cache, *raw_event_id, kind, payload)
            .map(Done::Replaced),
        Op::EndUnheard {
            ringing_before,
            connected_before,
        } => ingest::end_unheard(tx, options, cache, *ringing_before, *connected_before)
            .map(Done::Replaced),
        Op::ApplyReplica(batch) => replica::apply(tx, options, cache, batch).map(Done::Replaced),
        Op::PruneReplica(before) => replica::prune(tx, cache, *before).map(Done::Replaced),
        Op::SweepReplica { generation, since } => {
            replica::sweep(tx, cache, *generation, *since).map(Done::Replaced)
        }
        Op::PruneFeed(before) => super::feed::prune_tombstones(tx, *before).map(|_| Done::StateSet),
        Op::CheckCode {
            id,
            now,
            max_attempts,
        } => hub::check_code(tx, id, *now, *max_attempts).map(Done::CodeChecked),
        Op::AddDesk {
            code_id,
            wanted_name,
            token_sha256,
            now,
        } => hub::add_desk(tx, code_id, wanted_name, token_sha256, *now).map(Done::DeskAdded),
        Op::TouchDesks(seen) => hub::touch(tx, seen).map(|_| Done::StateSet),
        Op::FeedPosition => super::feed::latest_seq(tx).map(Done::FeedPosition),
        Op::CompactFeed(upto) => super::feed::compact(tx, *upto).map(|_| Done::StateSet),
        Op::RevokeDesk(name, now) => hub::revoke(tx, name, *now).map(Done::Revoked),
        Op::SetState(k, v) => super::put_state(tx, k, v)
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
        Op::OldestOpenCall(since) => super::query::oldest_open_call(tx, *since)
            .map(Done::OldestOpenCall)
            .map_err(StoreError::classify),
        #[cfg(any(test, feature = "test-hooks"))]
        Op::PanicAfterCommit => Ok(Done::StateSet),
        #[cfg(any(test, feature = "test-hooks"))]
        Op::KillWriter => Ok(Done::StateSet),
    }
}

impl Store {
    /// Stores a delivery in its own transaction (CLI and tests; the server uses the writer).
    pub fn ingest(&mut self, delivery: &Delivery) -> Result<IngestOutcome, StoreError> {
        let options = self.options.clone();
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let outcome =
            ingest::apply_delivery(&tx, &options, &mut ingest::CallCache::default(), delivery)?;
        ingest::flush_search(&tx)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(outcome)
    }

    /// Ends the calls whose end was never reported, in its own transaction (see
    /// [`StoreWriter::end_unheard_calls`]).
    pub fn end_unheard_calls(
        &mut self,
        ringing_before: DateTime<Utc>,
        connected_before: DateTime<Utc>,
    ) -> Result<Vec<CallChange>, StoreError> {
        let options = self.options.clone();
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let changes = ingest::end_unheard(
            &tx,
            &options,
            &mut ingest::CallCache::default(),
            ringing_before,
            connected_before,
        )?;
        ingest::flush_search(&tx)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(changes)
    }

    /// Applies changes from the hub in its own transaction (see
    /// [`StoreWriter::apply_replica`]).
    pub fn apply_replica(&mut self, batch: &ReplicaBatch) -> Result<Vec<CallChange>, StoreError> {
        let options = self.options.clone();
        let tx = self.conn.transaction().map_err(StoreError::classify)?;
        let changes = replica::apply(&tx, &options, &mut ingest::CallCache::default(), batch)?;
        ingest::flush_search(&tx)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(changes)
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
        ingest::flush_search(&tx)?;
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
        ingest::flush_search(&tx)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(outcome)
    }

    /// Records why a quarantined body still cannot be used.
    pub fn requarantine(&mut self, quarantine_id: i64, reason: &str) -> Result<(), StoreError> {
        ingest::requarantine(&self.conn, quarantine_id, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DB_FILE;

    fn record(i: usize) -> Delivery {
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc)
            + chrono::Duration::minutes(i as i64);
        let record = serde_json::json!({
            "id": format!("L{i:05}"),
            "telephonySessionId": format!("s-{i:05}"),
            "startTime": start.to_rfc3339(),
            "duration": 60,
            "type": "Voice", "direction": "Inbound", "action": "Phone Call",
            "result": "Accepted",
            "from": {"phoneNumber": format!("+1415555{:04}", i), "name": "JANE ROE"},
            "to": {"phoneNumber": "+16505550100", "extensionNumber": "101"},
        });
        callpop_core::ringcentral::calllog::record_to_delivery(
            &record,
            &callpop_core::numbers::Country::from_iso("US").expect("US"),
            start,
        )
        .expect("record")
    }

    fn indexed(path: &std::path::Path) -> (i64, i64) {
        // A plain connection: opening a Store would apply the queue itself.
        let conn = rusqlite::Connection::open(path).expect("open");
        let found = conn
            .query_row(
                "SELECT count(*) FROM calls_search WHERE calls_search MATCH '\"JANE ROE\"'",
                [],
                |r| r.get(0),
            )
            .expect("search");
        let pending = conn
            .query_row("SELECT count(*) FROM search_pending", [], |r| r.get(0))
            .expect("pending");
        (found, pending)
    }

    /// A writer on a new history at `path` whose WAL flush goes through `wrap`.
    fn writer_flushing_with(
        path: &std::path::Path,
        wrap: impl FnOnce(syncer::Flush) -> syncer::Flush,
    ) -> (StoreWriter, JoinHandle<()>) {
        let store = Store::open(path, crate::tests::options()).expect("open");
        let (changes, _) = broadcast::channel(16);
        let flush = wrap(syncer::wal_flush(path));
        StoreWriter::spawn_with_flush(store, changes, flush).expect("writer")
    }

    /// A writer on a new history at `path`.
    fn writer_at(path: &std::path::Path) -> (StoreWriter, JoinHandle<()>) {
        writer_flushing_with(path, |real| real)
    }

    /// How many raw deliveries the history at `path` holds, read by a connection of its own.
    fn stored(path: &std::path::Path) -> i64 {
        rusqlite::Connection::open(path)
            .and_then(|c| c.query_row("SELECT count(*) FROM raw_events", [], |r| r.get(0)))
            .expect("count")
    }

    /// Closes the writer's channel and waits for its thread to finish.
    async fn stop(writer: StoreWriter, thread: JoinHandle<()>) {
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join")
            .expect("writer thread");
    }

    /// Reads stored deliveries again the way a parser bug would.
    fn exploding_reparse(
        _: &callpop_core::reparse::StoredBody<'_>,
        _: &callpop_core::numbers::Country,
    ) -> Result<Vec<callpop_core::model::CallEvent>, callpop_core::wire::ParseError> {
        panic!("reparse exploded");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_panic_fails_its_delivery_alone_which_is_kept_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let mut options = crate::tests::options();
        options.reparse = exploding_reparse;
        let store = Store::open(&path, options).expect("open");
        let (changes, _) = broadcast::channel(16);
        let (writer, thread) = StoreWriter::spawn(store, changes).expect("writer");
        let call = crate::tests::scenario("rc-inbound-answered");
        writer.ingest(call[0].clone()).await.expect("first event");
        // Another connection writes, so the writer drops its cache and the call's next event
        // reads the earlier one back through the parser.
        rusqlite::Connection::open(&path)
            .and_then(|c| {
                c.execute(
                    "INSERT INTO engine_state (key, value, updated_at) VALUES ('t', 'x', 0)",
                    [],
                )
            })
            .expect("a write from outside");
        let err = writer
            .ingest(call[1].clone())
            .await
            .expect_err("the panic fails this delivery");
        match &err {
            StoreError::Internal {
                message,
                quarantine_id: Some(_),
            } => assert!(message.contains("reparse exploded"), "{err}"),
            other => panic!("expected an internal error with a quarantine id, got {other:?}"),
        }
        writer
            .ingest(record(0))
            .await
            .expect("the writer takes the next delivery");
        stop(writer, thread).await;
        let conn = rusqlite::Connection::open(&path).expect("open");
        let (kept, reason): (Vec<u8>, String) = conn
            .query_row("SELECT body, reason FROM quarantine", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("the delivery is in quarantine");
        assert_eq!(kept, call[1].body);
        assert!(reason.contains("reparse exploded"), "{reason}");
        assert_eq!(stored(&path), 2, "the first event and the next delivery");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_the_writers_own_loop_fails_that_group_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let (writer, thread) = writer_at(&path);
        writer.ingest(record(0)).await.expect("before");

        let answer = writer.simulate_loop_bug().await;
        assert!(
            matches!(answer, Err(StoreError::WriterGone)),
            "the group that hit the bug gets no answer"
        );

        let after = writer.ingest(record(1)).await.expect("the writer goes on");
        assert!(matches!(after, IngestOutcome::Stored { .. }), "{after:?}");
        // The thread ends normally when CallPop stops.
        stop(writer, thread).await;
        assert_eq!(stored(&path), 2);
    }

    #[tokio::test]
    async fn a_writer_that_dies_is_replaced_and_every_handle_follows_the_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let (writer, supervisor) = writer_at(&path);
        let other_handle = writer.clone();
        let mut restarts = writer.restarts();
        writer.ingest(record(0)).await.expect("before");

        let answer = writer.simulate_writer_death().await;
        assert!(matches!(answer, Err(StoreError::WriterGone)), "{answer:?}");
        tokio::time::timeout(
            Duration::from_secs(10),
            restarts.wait_for(|r| r.count == 1 && !r.restarting),
        )
        .await
        .expect("restarted in time")
        .expect("supervisor running");
        assert_eq!(
            restarts.borrow().last_failure.as_deref(),
            Some("stopped by a test hook")
        );

        let after = other_handle
            .ingest(record(1))
            .await
            .expect("a clone reaches the new writer");
        assert!(matches!(after, IngestOutcome::Stored { .. }), "{after:?}");
        drop(other_handle);
        // The supervisor ends normally when CallPop stops.
        stop(writer, supervisor).await;
        assert_eq!(stored(&path), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lone_call_is_searchable_when_acknowledged_and_a_burst_soon_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let (writer, thread) = writer_at(&path);

        writer.ingest(record(0)).await.expect("ingest");
        assert_eq!(indexed(&path), (1, 0), "searchable as soon as acknowledged");

        let mut tasks = tokio::task::JoinSet::new();
        for i in 1..=2_000 {
            let writer = writer.clone();
            let d = record(i);
            tasks.spawn(async move { writer.ingest(d).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task").expect("ingest");
        }
        // The burst's index work may still be queued; a pause in the traffic applies it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while indexed(&path) != (2_001, 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(indexed(&path), (2_001, 0));
        stop(writer, thread).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_arriving_during_a_flush_wait_in_one_open_group_and_commit_together() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        // The first flush waits until the test lets it go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let flushes = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = flushes.clone();
        let (writer, thread) = writer_flushing_with(&path, |mut real| {
            Box::new(move || {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = held.recv();
                }
                real()
            })
        });

        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.ingest(record(0)).await }
        });
        while flushes.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let later: Vec<_> = (1..4)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.ingest(record(i)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            stored(&path),
            1,
            "nothing more is committed while the syncer is busy"
        );

        release.send(()).expect("release");
        first.await.expect("join").expect("first stored");
        for task in later {
            let outcome = task.await.expect("join").expect("stored");
            assert!(
                matches!(outcome, IngestOutcome::Stored { .. }),
                "{outcome:?}"
            );
        }
        assert_eq!(stored(&path), 4);
        assert_eq!(
            flushes.load(Ordering::SeqCst),
            2,
            "the three later requests were one group, synced once"
        );
        stop(writer, thread).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_acknowledged_after_a_failed_flush_until_the_history_is_resynced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let mut flushes = 0;
        let (writer, thread) = writer_flushing_with(&path, |mut real| {
            Box::new(move || {
                flushes += 1;
                match flushes {
                    2 => Err(std::io::Error::other("EIO")),
                    _ => real(),
                }
            })
        });

        writer.ingest(record(0)).await.expect("first flush is fine");
        let refused = writer.ingest(record(1)).await.expect_err("flush failed");
        assert!(
            matches!(&refused, StoreError::Unwritable(r) if r.contains("did not confirm")),
            "{refused}"
        );
        // The sender retries: the writer re-syncs everything first, then takes it again.
        let retried = writer.ingest(record(1)).await.expect("re-synced");
        assert!(
            matches!(retried, IngestOutcome::Duplicate { .. }),
            "{retried:?}"
        );
        writer.ingest(record(2)).await.expect("back to normal");
        stop(writer, thread).await;
        assert_eq!(stored(&path), 3);
    }

    #[test]
    fn the_writer_commits_without_sync_only_over_a_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store =
            Store::open(&dir.path().join(DB_FILE), crate::tests::options()).expect("open");
        let sync = |s: &Store| {
            s.conn
                .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                .expect("pragma")
        };
        assert_eq!(sync(&store), 2, "FULL for every other connection");
        assert!(store.commit_without_sync());
        assert_eq!(sync(&store), 1, "NORMAL: the syncer syncs the WAL");
        store
            .conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| {
                r.get::<_, String>(0)
            })
            .expect("journal mode");
        store
            .conn
            .execute_batch("PRAGMA synchronous = FULL")
            .expect("full");
        assert!(!store.commit_without_sync());
        assert_eq!(sync(&store), 2, "without a WAL the commit must sync itself");
    }
}
