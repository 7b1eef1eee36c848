//! The newest changes of the feed, read from the history once and kept serialized, so that a
//! call reaching 200 desks costs one read and one serialization, not 200 of each. Streams
//! whose cursor is older than what is kept read pages from the history first.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use callpop_hub::wire::Change;

use super::reader::Readers;

/// Changes kept (about 1.5 KB each).
const KEPT: usize = 2_000;
/// Changes read per page when filling.
const PAGE: usize = 500;

/// One kept change.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its place in the feed.
    pub seq: i64,
    /// When its call started (None for a removal, which every window gets).
    pub started_ms: Option<i64>,
    /// The change as the stream sends it.
    pub json: Arc<str>,
}

#[derive(Default)]
struct Kept {
    /// Everything after `start` up to the end is kept; -1 until the first position is known.
    start: i64,
    entries: VecDeque<Entry>,
}

/// The kept changes, and the position they reach.
pub struct FeedCache {
    kept: RwLock<Kept>,
    end: watch::Sender<i64>,
}

impl FeedCache {
    /// An empty cache that reaches nothing yet.
    pub fn new() -> FeedCache {
        FeedCache {
            kept: RwLock::new(Kept {
                start: -1,
                entries: VecDeque::new(),
            }),
            end: watch::channel(-1).0,
        }
    }

    /// Follows the position the kept changes reach.
    pub fn watch_end(&self) -> watch::Receiver<i64> {
        self.end.subscribe()
    }

    /// The position everything after which is kept (-1 before the first fill).
    pub fn start(&self) -> i64 {
        self.kept
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .start
    }

    /// The kept changes after `cursor` of calls that started at or after `since_ms`, and the
    /// position they reach; None when changes after `cursor` are not all kept.
    pub fn after(&self, cursor: i64, since_ms: Option<i64>) -> Option<(Vec<Entry>, i64)> {
        let kept = self.kept.read().unwrap_or_else(PoisonError::into_inner);
        let end = *self.end.borrow();
        if kept.start < 0 || cursor < kept.start || cursor > end {
            return None;
        }
        let from = kept.entries.partition_point(|e| e.seq <= cursor);
        let entries = kept
            .entries
            .range(from..)
            .filter(|e| match (e.started_ms, since_ms) {
                (Some(started), Some(since)) => started >= since,
                _ => true,
            })
            .cloned()
            .collect();
        Some((entries, end))
    }

    fn begin_at(&self, position: i64) {
        let mut kept = self.kept.write().unwrap_or_else(PoisonError::into_inner);
        kept.start = position;
        kept.entries.clear();
        self.end.send_replace(position);
    }

    fn extend(&self, entries: Vec<Entry>, end: i64) {
        let mut kept = self.kept.write().unwrap_or_else(PoisonError::into_inner);
        kept.entries.extend(entries);
        while kept.entries.len() > KEPT {
            if let Some(old) = kept.entries.pop_front() {
                kept.start = old.seq;
            }
        }
        // Moved while the entries are held: a reader never sees entries past the end it is
        // given (it would send them twice).
        self.end.send_if_modified(|known| {
            let moved = end > *known;
            *known = (*known).max(end);
            moved
        });
        drop(kept);
    }
}

impl Default for FeedCache {
    fn default() -> FeedCache {
        FeedCache::new()
    }
}

/// Keeps `cache` up with the durable position: each move is read once, serialized once.
pub async fn fill(
    cache: Arc<FeedCache>,
    readers: Readers,
    mut durable: watch::Receiver<i64>,
    shutdown: CancellationToken,
) {
    loop {
        let upto = *durable.borrow_and_update();
        let end = *cache.end.borrow();
        if upto >= 0 && end < 0 {
            // Streams older than this read the history; from here on the cache has it all.
            cache.begin_at(upto);
        } else if upto > end {
            let mut at = end;
            loop {
                let page = match readers
                    .with(move |s| s.feed_page(at, PAGE, None, Some(upto)))
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the change feed");
                        break;
                    }
                };
                let last = page.is_last();
                let next = page.next;
                let entries = page
                    .changes
                    .into_iter()
                    .filter_map(|change| {
                        let seq = change.seq;
                        let started_ms = match &change.record {
                            callpop_store::FeedRecord::Call(call) => {
                                Some(call.started_at.timestamp_millis())
                            }
                            callpop_store::FeedRecord::CallRemoved { .. } => None,
                        };
                        let change: Change = super::feed::to_wire(change);
                        let json = serde_json::to_string(&change).ok()?;
                        Some(Entry {
                            seq,
                            started_ms,
                            json: Arc::from(json),
                        })
                    })
                    .collect();
                cache.extend(entries, next);
                if last || next <= at {
                    break;
                }
                at = next;
            }
        }
        // A fill that could not read everything (the history busy) is tried again soon:
        // desks waiting at the end would otherwise wait for the next call.
        let behind = *cache.end.borrow() < *durable.borrow();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = durable.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if behind => {}
        }
    }
}

/// How soon a fill that fell short is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, started_ms: Option<i64>) -> Entry {
        Entry {
            seq,
            started_ms,
            json: Arc::from(format!("{{\"seq\":{seq}}}")),
        }
    }

    #[test]
    fn a_cursor_inside_what_is_kept_gets_the_rest_in_its_window_and_an_older_one_none() {
        let cache = FeedCache::new();
        assert!(cache.after(0, None).is_none(), "nothing known yet");
        cache.begin_at(10);
        cache.extend(
            vec![entry(11, Some(5)), entry(12, None), entry(14, Some(50))],
            14,
        );
        let (all, end) = cache.after(10, None).expect("kept");
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![11, 12, 14]
        );
        assert_eq!(end, 14);
        let (windowed, _) = cache.after(11, Some(10)).expect("kept");
        assert_eq!(
            windowed.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![12, 14]
        );
        assert!(cache.after(9, None).is_none(), "older than what is kept");
        assert!(cache.after(15, None).is_none(), "ahead of the hub");
        let (none, _) = cache.after(14, None).expect("kept");
        assert!(none.is_empty());
    }

    #[test]
    fn the_oldest_changes_go_past_the_limit_and_the_start_follows() {
        let cache = FeedCache::new();
        cache.begin_at(0);
        let many: Vec<Entry> = (1..=(KEPT as i64 + 10)).map(|s| entry(s, None)).collect();
        cache.extend(many, KEPT as i64 + 10);
        assert_eq!(cache.start(), 10);
        assert!(cache.after(9, None).is_none());
        assert_eq!(cache.after(10, None).expect("kept").0.len(), KEPT);
    }
}
