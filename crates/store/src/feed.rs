//! Reading the change feed a hub serves its desks (schema 9; docs/HUB.md): each shared record's
//! latest change, in sequence order, from any position.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use crate::ingest::changes::CALL;
use crate::query::{call_from_row, CALL_COLUMNS};
use crate::{to_ms, Store, StoreError};
use callpop_core::model::{Call, Provider};

/// `engine_state` key of the highest sequence number whose tombstone was pruned: a desk whose
/// cursor is below it may have missed a deletion and must resynchronize.
pub const FEED_HORIZON: &str = "feed.horizon";

/// One record's latest change.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedChange {
    /// Its place in the feed: unique, increasing, never reused.
    pub seq: i64,
    /// What the record is now.
    pub record: FeedRecord,
}

/// A record as the feed carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedRecord {
    /// A call's whole row.
    Call(Box<Call>),
    /// A call that was deleted (merged into another after a replay).
    CallRemoved {
        /// The call's phone system.
        provider: Provider,
        /// The provider's key of the call.
        call_key: String,
    },
}

/// A page of the feed, read in one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// The changes after the position asked for, oldest first.
    pub changes: Vec<FeedChange>,
    /// Where the next page starts: everything up to it was read (changes outside the window
    /// asked for were skipped, not lost).
    pub next: i64,
    /// The newest sequence number handed out when the page was read.
    pub latest: i64,
    /// The highest sequence number whose tombstone is gone: a reader whose position is below
    /// it must resynchronize (see [`FEED_HORIZON`]).
    pub horizon: i64,
}

impl FeedPage {
    /// Whether the page reached the newest change.
    pub fn is_last(&self) -> bool {
        self.next >= self.latest
    }
}

impl Store {
    /// Up to `limit` changes after `after` and up to `upto` (a hub passes its durable
    /// position, [`crate::writer::StoreWriter::durable_feed_position`]), skipping calls that
    /// started before `since` (a desk's window; deletions are always included). `after` 0
    /// reads every current record once: the feed holds only each record's latest change, so
    /// reading it from the start is a snapshot of the window, which is how a desk joins or
    /// resynchronizes.
    pub fn feed_page(
        &self,
        after: i64,
        limit: usize,
        since: Option<DateTime<Utc>>,
        upto: Option<i64>,
    ) -> Result<FeedPage, StoreError> {
        // One read transaction: `latest` and the rows come from the same snapshot.
        let tx = self.conn.unchecked_transaction()?;
        let latest = latest_seq(&tx)?.min(upto.unwrap_or(i64::MAX));
        let horizon = read_horizon(&tx)?;
        let columns: Vec<&str> = CALL_COLUMNS.split(", ").collect();
        let select = columns
            .iter()
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Each record's newest change up to `latest`: an older one is skipped only when a newer
        // one is in range, so a change past `latest` (not yet on disk) never hides one that is.
        // The row is joined by id and key alike: a deletion not yet on disk may have freed the
        // id for another call.
        let sql = format!(
            "SELECT {select}, ch.seq, ch.key, ch.record_id, c.id
             FROM changes ch LEFT JOIN calls c
               ON c.id = ch.record_id AND c.provider || '/' || c.call_key = ch.key
             WHERE ch.seq > ?1 AND ch.seq <= ?2 AND ch.kind = '{CALL}'
               AND (ch.record_id IS NULL OR c.started_at >= ?3)
               AND NOT EXISTS (SELECT 1 FROM changes n
                               WHERE n.kind = ch.kind AND n.key = ch.key
                                 AND n.seq > ch.seq AND n.seq <= ?2)
             ORDER BY ch.seq LIMIT ?4"
        );
        let n = columns.len();
        let since_ms = since.map_or(i64::MIN, to_ms);
        let mut changes = Vec::new();
        {
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                after,
                latest,
                since_ms,
                limit.min(i64::MAX as usize) as i64
            ])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(n)?;
                let key: String = row.get(n + 1)?;
                let record_id: Option<i64> = row.get(n + 2)?;
                let joined: Option<i64> = row.get(n + 3)?;
                let record = match (record_id, joined) {
                    (Some(_), Some(_)) => FeedRecord::Call(Box::new(call_from_row(row)??.call)),
                    // Its row is gone by a deletion not yet on disk: that deletion comes next.
                    (Some(_), None) => continue,
                    (None, _) => removed(&key)?,
                };
                changes.push(FeedChange { seq, record });
            }
        }
        tx.finish()?;
        // A short page read everything up to `latest`; a full one stops at its last change.
        let next = match changes.last() {
            Some(last) if changes.len() >= limit => last.seq,
            _ => latest.max(after),
        };
        Ok(FeedPage {
            changes,
            next,
            latest,
            horizon,
        })
    }

    /// The newest sequence number handed out (0 for an empty feed).
    pub fn feed_latest(&self) -> Result<i64, StoreError> {
        latest_seq(&self.conn)
    }
}

pub(crate) fn latest_seq(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    // AUTOINCREMENT's own counter: `max(seq)` would go back if the newest row were pruned.
    Ok(conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn read_horizon(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM engine_state WHERE key = ?1",
            [FEED_HORIZON],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// A tombstone's record, from its key.
fn removed(key: &str) -> Result<FeedRecord, StoreError> {
    let bad = || StoreError::Corrupt(format!("change feed key {key:?}"));
    let (provider, call_key) = key.split_once('/').ok_or_else(bad)?;
    Ok(FeedRecord::CallRemoved {
        provider: Provider::parse(provider).ok_or_else(bad)?,
        call_key: call_key.to_string(),
    })
}

/// `engine_state` key of the position up to which superseded changes were compacted.
const COMPACTED: &str = "feed.compacted";

/// Changes looked at per compaction pass at most.
const COMPACT_PASS: i64 = 20_000;

/// Deletes the rows superseded by a change at or before `upto`, which must be on disk
/// ([`crate::writer::StoreWriter::durable_feed_position`]): a reader never needs them again.
/// Only records changed since the last compaction are looked at. Returns the rows deleted.
pub(crate) fn compact(conn: &rusqlite::Connection, upto: i64) -> Result<usize, StoreError> {
    let from: i64 = conn
        .query_row(
            "SELECT value FROM engine_state WHERE key = ?1",
            [COMPACTED],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if upto <= from {
        return Ok(0);
    }
    // A bounded pass, so the writer never holds a long transaction; the next pass goes on.
    let upto = upto.min(from + COMPACT_PASS);
    let newest: Vec<(String, String, i64)> = conn
        .prepare_cached(
            "SELECT kind, key, max(seq) FROM changes WHERE seq > ?1 AND seq <= ?2
             GROUP BY kind, key",
        )?
        .query_map(params![from, upto], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut deleted = 0;
    let mut delete =
        conn.prepare_cached("DELETE FROM changes WHERE kind = ?1 AND key = ?2 AND seq < ?3")?;
    for (kind, key, seq) in &newest {
        deleted += delete.execute(params![kind, key, seq])?;
    }
    crate::put_state(conn, COMPACTED, &upto.to_string())?;
    Ok(deleted)
}

/// Drops tombstones older than `before` and raises the horizon past them, in the caller's
/// transaction. Other changes are never dropped: each record keeps its latest one.
pub(crate) fn prune_tombstones(
    conn: &rusqlite::Connection,
    before: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let top: Option<i64> = conn.query_row(
        "SELECT max(seq) FROM changes WHERE record_id IS NULL AND at < ?1",
        [to_ms(before)],
        |r| r.get(0),
    )?;
    let Some(top) = top else {
        return Ok(0);
    };
    // The tombstones, and any older change of those records not compacted yet (else the
    // record would come back to life in the feed).
    let pruned = conn.execute(
        "DELETE FROM changes WHERE (kind, key) IN (
             SELECT kind, key FROM changes WHERE record_id IS NULL AND at < ?1 AND seq <= ?2)
           AND seq <= (SELECT max(t.seq) FROM changes t
                       WHERE t.kind = changes.kind AND t.key = changes.key
                         AND t.record_id IS NULL AND t.at < ?1 AND t.seq <= ?2)",
        params![to_ms(before), top],
    )?;
    let horizon = read_horizon(conn)?.max(top);
    crate::put_state(conn, FEED_HORIZON, &horizon.to_string())?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{self, CallCache};
    use crate::tests::{options, scenario};
    use crate::{CallFilter, ReplicaBatch, ReplicaChange, DB_FILE, HUB_CURSOR};
    use callpop_core::model::Origin;

    fn open(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(&dir.path().join(name).join(DB_FILE), options()).expect("open")
    }

    fn hub_with(names: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut hub = open(&dir, "hub");
        for name in names {
            for d in scenario(name) {
                hub.ingest(&d).expect("ingest");
            }
        }
        (dir, hub)
    }

    /// Every current call of a store, by key.
    fn calls(store: &Store) -> Vec<Call> {
        let mut calls: Vec<Call> = store
            .calls(&CallFilter::default())
            .expect("calls")
            .into_iter()
            .map(|r| r.call)
            .collect();
        calls.sort_by(|a, b| a.call_key.cmp(&b.call_key));
        calls
    }

    fn batch(page: &FeedPage, origin: Origin) -> ReplicaBatch {
        ReplicaBatch {
            changes: page
                .changes
                .iter()
                .map(|c| match &c.record {
                    FeedRecord::Call(call) => ReplicaChange::Upsert(call.clone()),
                    FeedRecord::CallRemoved { provider, call_key } => ReplicaChange::Remove {
                        provider: *provider,
                        call_key: call_key.clone(),
                    },
                })
                .collect(),
            cursor: Some(page.next),
            generation: 1,
            origin,
        }
    }

    /// Copies the hub's feed after `after` to the desk in pages of `limit`; the desk's cursor.
    fn sync(hub: &Store, desk: &mut Store, after: i64, limit: usize) -> i64 {
        let mut cursor = after;
        loop {
            let page = hub.feed_page(cursor, limit, None, None).expect("page");
            desk.apply_replica(&batch(&page, Origin::HubCatchUp))
                .expect("apply");
            assert!(page.next > cursor || page.is_last(), "the cursor moves");
            cursor = page.next;
            if page.is_last() {
                return cursor;
            }
        }
    }

    #[test]
    fn each_call_is_in_the_feed_once_with_its_latest_change() {
        let (_dir, mut hub) = hub_with(&["rc-inbound-answered"]);
        let page = hub.feed_page(0, 100, None, None).expect("page");
        assert_eq!(page.changes.len(), 1, "{page:?}");
        assert!(page.is_last());
        let FeedRecord::Call(call) = &page.changes[0].record else {
            panic!("a call: {page:?}")
        };
        assert_eq!(**call, calls(&hub)[0]);
        // More deliveries of the same call move it forward in the feed, never add a row.
        let first = page.changes[0].seq;
        for d in scenario("rc-inbound-answered") {
            hub.ingest(&d).expect("ingest again");
        }
        for d in scenario("rc-outbound") {
            hub.ingest(&d).expect("ingest");
        }
        let page = hub.feed_page(first, 100, None, None).expect("page");
        assert_eq!(page.changes.len(), 1, "only the new call: {page:?}");
        let all = hub.feed_page(0, 100, None, None).expect("page");
        assert_eq!(all.changes.len(), 2);
        assert!(all.changes[0].seq < all.changes[1].seq);
        assert_eq!(all.next, all.latest);
    }

    #[test]
    fn a_desk_copying_the_feed_in_pages_holds_the_hubs_calls_and_applies_nothing_twice() {
        let names = [
            "rc-inbound-answered",
            "rc-inbound-voicemail",
            "rc-outbound",
            "rc-ring-group",
            "rc-blind-transfer",
            "rc-pickup-elsewhere",
        ];
        let (dir, hub) = hub_with(&names);
        let mut desk = open(&dir, "desk");
        let cursor = sync(&hub, &mut desk, 0, 2);
        assert_eq!(calls(&desk), calls(&hub));
        assert_eq!(
            desk.state_get(HUB_CURSOR).expect("state"),
            Some(cursor.to_string())
        );
        // The same pages again (a desk that restarted before its cursor was saved) change
        // nothing, so nothing pops up twice.
        let page = hub.feed_page(0, 100, None, None).expect("page");
        let again = desk
            .apply_replica(&batch(&page, Origin::Hub))
            .expect("apply");
        assert!(again.is_empty(), "{again:?}");
        // The desk's search finds the copied calls as the hub's does.
        let filter = CallFilter {
            search: Some("555".into()),
            ..CallFilter::default()
        };
        assert_eq!(
            desk.calls(&filter).expect("search").len(),
            hub.calls(&filter).expect("search").len()
        );
    }

    #[test]
    fn a_deleted_call_leaves_a_tombstone_until_pruned_and_then_raises_the_horizon() {
        let (dir, mut hub) = hub_with(&["rc-inbound-answered", "rc-outbound"]);
        let mut desk = open(&dir, "desk");
        let cursor = sync(&hub, &mut desk, 0, 10);
        let gone = hub.calls(&CallFilter::default()).expect("calls")[0].clone();
        {
            let tx = hub.conn.transaction().expect("tx");
            ingest::rows_for_tests::delete_call(&tx, gone.id).expect("delete");
            tx.commit().expect("commit");
        }
        let page = hub.feed_page(cursor, 10, None, None).expect("page");
        assert_eq!(
            page.changes.iter().map(|c| &c.record).collect::<Vec<_>>(),
            vec![&FeedRecord::CallRemoved {
                provider: gone.call.provider,
                call_key: gone.call.call_key
            }]
        );
        sync(&hub, &mut desk, cursor, 10);
        assert_eq!(calls(&desk), calls(&hub));
        // Pruning the tombstone raises the horizon past it: a desk behind it must resync.
        assert_eq!(page.horizon, 0);
        let tx = hub.conn.transaction().expect("tx");
        let pruned = prune_tombstones(&tx, Utc::now() + chrono::Duration::days(1)).expect("prune");
        tx.commit().expect("commit");
        // The tombstone, and the call's older changes not compacted yet.
        assert!(pruned >= 1, "{pruned}");
        let after = hub.feed_page(cursor, 10, None, None).expect("page");
        assert_eq!(after.horizon, page.changes[0].seq);
        assert!(after.changes.is_empty());
        // The sequence is not reused after the newest row went.
        assert_eq!(after.latest, page.latest);
    }

    #[test]
    fn a_change_on_disk_is_never_hidden_by_one_that_is_not_yet_and_compaction_waits_for_it() {
        let (_dir, mut hub) = hub_with(&["rc-inbound-answered", "rc-outbound"]);
        let durable = hub.feed_page(0, 10, None, None).expect("page");
        // Both calls change again; say those changes are committed but not yet on disk.
        for mut d in scenario("rc-inbound-answered")
            .into_iter()
            .chain(scenario("rc-outbound"))
        {
            d.parsed.dedup_key.push_str("-again");
            d.parsed.content_key = None;
            d.body_sha256.push_str("-again");
            hub.ingest(&d).expect("ingest");
        }
        let page = hub
            .feed_page(0, 10, None, Some(durable.latest))
            .expect("page");
        assert_eq!(
            page.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            durable.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            "the changes on disk are still read"
        );
        // Compaction up to the durable position keeps them; up to the newest, they go.
        let rows = |hub: &Store| -> i64 {
            hub.conn
                .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
                .expect("count")
        };
        let tx = hub.conn.transaction().expect("tx");
        compact(&tx, durable.latest).expect("compact");
        tx.commit().expect("commit");
        let again = hub
            .feed_page(0, 10, None, Some(durable.latest))
            .expect("page");
        assert_eq!(
            again.changes, page.changes,
            "compaction kept what is on disk"
        );
        assert!(rows(&hub) > 2, "and the changes not yet on disk");
        let latest = hub.feed_latest().expect("latest");
        let tx = hub.conn.transaction().expect("tx");
        compact(&tx, latest).expect("compact");
        tx.commit().expect("commit");
        assert_eq!(rows(&hub), 2, "one change per call");
        let page = hub.feed_page(durable.latest, 10, None, None).expect("page");
        assert_eq!(page.changes.len(), 2);
    }

    #[test]
    fn a_window_leaves_older_calls_out_but_never_loses_the_cursor() {
        // Two calls an hour apart.
        let (_dir, hub) = hub_with(&["rc-inbound-answered", "rc-pickup-elsewhere"]);
        let all = calls(&hub);
        let newest = all.iter().map(|c| c.started_at).max().expect("calls");
        let page = hub
            .feed_page(0, 1, Some(newest + chrono::Duration::seconds(1)), None)
            .expect("page");
        assert!(page.changes.is_empty());
        assert_eq!(page.next, page.latest, "everything skipped was read");
        let page = hub.feed_page(0, 10, Some(newest), None).expect("page");
        let in_window = all.iter().filter(|c| c.started_at >= newest).count();
        assert_eq!(page.changes.len(), in_window);
        assert!(in_window < all.len(), "the older call is left out");
    }

    #[test]
    fn the_desks_own_history_survives_pruning_and_sweeping_the_replica() {
        let (dir, hub) = hub_with(&["rc-inbound-answered", "rc-outbound"]);
        let mut desk = open(&dir, "desk");
        // The desk heard the inbound call itself before it joined, and a call the hub never had.
        for d in scenario("rc-inbound-answered")
            .into_iter()
            .chain(scenario("rc-ring-group"))
        {
            desk.ingest(&d).expect("ingest");
        }
        sync(&hub, &mut desk, 0, 10);
        assert_eq!(calls(&desk).len(), 3);
        let tx = desk.conn.transaction().expect("tx");
        let mut cache = CallCache::default();
        let far = Utc::now() + chrono::Duration::days(365 * 100);
        let swept =
            ingest::replica::sweep(&tx, &mut cache, 2, DateTime::<Utc>::MIN_UTC).expect("sweep");
        let pruned = ingest::replica::prune(&tx, &mut cache, far).expect("prune");
        tx.commit().expect("commit");
        // Only the outbound call came from the hub alone: swept once (round 2 did not send it).
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(pruned.is_empty(), "already gone: {pruned:?}");
        let left: Vec<String> = calls(&desk).into_iter().map(|c| c.call_key).collect();
        assert_eq!(left.len(), 2, "the desk's own calls stay: {left:?}");
    }

    #[test]
    fn a_history_from_before_the_feed_is_put_in_it_in_list_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        {
            let mut store = Store::open(&path, options()).expect("open");
            for name in ["rc-outbound", "rc-inbound-answered"] {
                for d in scenario(name) {
                    store.ingest(&d).expect("ingest");
                }
            }
            // Back to schema 8, as a history written by the previous release.
            store
                .conn
                .execute_batch(&format!(
                    "{} PRAGMA user_version = 8;",
                    crate::schema::UNDO_FEED
                ))
                .expect("downgrade");
        }
        let store = Store::open(&path, options()).expect("migrate");
        let page = store.feed_page(0, 10, None, None).expect("page");
        let started: Vec<_> = page
            .changes
            .iter()
            .map(|c| match &c.record {
                FeedRecord::Call(call) => call.started_at,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(started.len(), 2);
        assert!(started[0] <= started[1], "oldest first: {started:?}");
    }
}
