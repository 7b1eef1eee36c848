//! Makes committed groups durable off the writer thread, then lets them be answered.
//!
//! With `synchronous = FULL` the writer spent about a quarter of its time waiting inside
//! fsync at COMMIT, doing nothing else while requests queued up. Now the writer's connection
//! commits with `synchronous = NORMAL` (the WAL frames are written, not yet synced), hands the
//! group to this thread and starts on the next group at once. This thread fdatasyncs the WAL
//! file — one sync covers every group committed before it — and only then are the group's
//! requests answered, so a 200 still means "on disk". While a sync is under way the writer
//! keeps its next group open and adds requests to it ([`Syncer::busy`], [`Syncer::idle`]), so
//! under load there is one commit per sync.
//!
//! Checkpoints stay on the writer's connection. With NORMAL, SQLite syncs the WAL before
//! copying it into the database and syncs the database after, so the WAL is only rewritten
//! from its start once everything in it is durable in the database file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::Notify;

/// Makes everything written so far durable.
pub(super) type Flush = Box<dyn FnMut() -> io::Result<()> + Send>;

/// Runs after each flush with its outcome, in commit order.
pub(super) type Answer<T> = Box<dyn FnMut(T, Option<&io::Error>) + Send>;

/// The syncing thread and the queue of committed groups waiting for it.
pub(super) struct Syncer<T: Send + 'static> {
    queue: Option<mpsc::Sender<T>>,
    thread: Option<JoinHandle<()>>,
    in_doubt: Arc<AtomicBool>,
    /// Groups submitted and not answered yet.
    pending: Arc<AtomicUsize>,
    /// Woken whenever `pending` drops to zero.
    idle: Arc<Notify>,
}

impl<T: Send + 'static> Syncer<T> {
    /// Starts the thread: each batch of queued groups is flushed once, then answered.
    pub(super) fn spawn(mut flush: Flush, mut answer: Answer<T>) -> io::Result<Syncer<T>> {
        let (queue, groups) = mpsc::channel::<T>();
        let in_doubt = Arc::new(AtomicBool::new(false));
        let doubt = in_doubt.clone();
        let pending = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Notify::new());
        let (left, wake) = (pending.clone(), idle.clone());
        let thread = std::thread::Builder::new()
            .name("callpop-store-sync".into())
            .spawn(move || {
                while let Ok(first) = groups.recv() {
                    let mut ready = vec![first];
                    ready.extend(groups.try_iter());
                    // Once a flush failed, nothing is confirmed until the writer has re-synced
                    // everything (see `restore_trust` in the writer).
                    let flushed = if doubt.load(Ordering::SeqCst) {
                        Err(io::Error::other("an earlier write was not confirmed"))
                    } else {
                        // A panic while syncing must not end this thread with groups still
                        // pending (the writer would wait on them for good): it is a failed
                        // flush, which puts the history in doubt until the writer re-syncs.
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut flush))
                            .unwrap_or_else(|_| Err(io::Error::other("syncing the disk panicked")))
                    };
                    if let Err(e) = &flushed {
                        tracing::error!(error = %e, "the disk did not confirm a write");
                        doubt.store(true, Ordering::SeqCst);
                    }
                    let answered = ready.len();
                    for group in ready {
                        // A bug while answering one group must not end the thread: every later
                        // group would wait for an answer forever. The panicking group's
                        // requests see their answer dropped (503), and the count stays right.
                        let one =
                            std::panic::AssertUnwindSafe(|| answer(group, flushed.as_ref().err()));
                        if std::panic::catch_unwind(one).is_err() {
                            tracing::error!("answering a synced group panicked; it got no answer");
                        }
                    }
                    if left.fetch_sub(answered, Ordering::SeqCst) == answered {
                        wake.notify_one();
                    }
                }
            })?;
        Ok(Syncer {
            queue: Some(queue),
            thread: Some(thread),
            in_doubt,
            pending,
            idle,
        })
    }

    /// Queues a committed group; it is answered once a flush after its commit returns.
    /// False when the thread is gone (it died): the group is dropped, its requests see no
    /// answer, and the writer must be replaced.
    pub(super) fn submit(&self, group: T) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        if queue.send(group).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// True while a submitted group waits for its flush.
    pub(super) fn busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Returns once every submitted group has been answered.
    pub(super) async fn idle(&self) {
        while self.busy() {
            // A wake-up left over from an earlier idle moment only costs a second look.
            self.idle.notified().await;
        }
    }

    /// True after a failed flush until [`Syncer::trust_again`]: data committed since the
    /// last good flush may not be on disk.
    pub(super) fn in_doubt(&self) -> bool {
        self.in_doubt.load(Ordering::SeqCst)
    }

    /// Records that everything committed is durable again.
    pub(super) fn trust_again(&self) {
        self.in_doubt.store(false, Ordering::SeqCst);
    }
}

impl<T: Send + 'static> Drop for Syncer<T> {
    /// Answers every queued group before returning.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A flush of the WAL file next to the database at `db`.
pub(super) fn wal_flush(db: &Path) -> Flush {
    let mut wal_path = db.as_os_str().to_owned();
    wal_path.push("-wal");
    let wal_path = PathBuf::from(wal_path);
    let dir = db.parent().map(Path::to_path_buf);
    let mut wal: Option<File> = None;
    Box::new(move || {
        let file = match &wal {
            Some(file) => file,
            None => {
                // fsync works on any descriptor of the file; SQLite keeps the WAL open (so the
                // same file) for as long as the writer's connection is open.
                let file = File::open(&wal_path)?;
                // The WAL's directory entry must be durable too, once.
                if let Some(dir) = dir.as_deref().filter(|d| !d.as_os_str().is_empty()) {
                    File::open(dir)?.sync_all()?;
                }
                wal.insert(file)
            }
        };
        file.sync_data()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn groups_are_answered_in_order_after_a_flush_and_a_failed_flush_raises_doubt() {
        let flushes = Arc::new(Mutex::new(0usize));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let (f, a) = (flushes.clone(), answered.clone());
        let syncer = Syncer::spawn(
            Box::new(move || {
                let mut n = f.lock().expect("lock");
                *n += 1;
                match *n {
                    2 => Err(io::Error::other("EIO")),
                    _ => Ok(()),
                }
            }),
            Box::new(move |group: u32, failed: Option<&io::Error>| {
                a.lock()
                    .expect("lock")
                    .push((group, failed.map(|e| e.to_string())));
            }),
        )
        .expect("spawn");
        syncer.submit(1);
        while answered.lock().expect("lock").is_empty() {
            std::thread::yield_now();
        }
        assert!(!syncer.in_doubt());
        syncer.submit(2);
        while answered.lock().expect("lock").len() < 2 {
            std::thread::yield_now();
        }
        assert!(syncer.in_doubt(), "a failed flush must be remembered");
        syncer.trust_again();
        syncer.submit(3);
        syncer.submit(4);
        drop(syncer);
        let answered = answered.lock().expect("lock");
        let order: Vec<u32> = answered.iter().map(|(g, _)| *g).collect();
        assert_eq!(
            order,
            vec![1, 2, 3, 4],
            "answered in commit order, none lost"
        );
        assert_eq!(answered[0].1, None);
        assert_eq!(answered[1].1.as_deref(), Some("EIO"));
        assert_eq!(answered[2].1, None);
        assert!(*flushes.lock().expect("lock") >= 3);
    }

    #[test]
    fn a_panic_while_answering_one_group_does_not_stop_the_others() {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let a = answered.clone();
        let syncer = Syncer::spawn(
            Box::new(|| Ok(())),
            Box::new(move |group: u32, _: Option<&io::Error>| {
                assert_ne!(group, 2, "answering group 2 hits a bug");
                a.lock().expect("lock").push(group);
            }),
        )
        .expect("spawn");
        for group in 1..=3 {
            syncer.submit(group);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), syncer.idle())
                .await
                .expect("the syncer counts the panicking group as done");
        });
        assert!(!syncer.busy());
        syncer.submit(4);
        drop(syncer);
        assert_eq!(*answered.lock().expect("lock"), vec![1, 3, 4]);
    }

    #[test]
    fn the_wal_flush_reports_a_missing_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut flush = wal_flush(&dir.path().join("none.db"));
        assert_eq!(flush().expect_err("no WAL").kind(), io::ErrorKind::NotFound);
        std::fs::write(dir.path().join("none.db-wal"), b"frames").expect("write");
        flush().expect("flushed once the WAL exists");
    }
}
