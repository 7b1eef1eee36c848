//! The search index: what text a call is found by, queued in the acknowledging transaction and
//! applied once per call.

use rusqlite::{params, Connection};

use crate::{StoreError, StoreOptions};
use callpop_core::model::{Call, ExtensionPart};
use callpop_core::numbers::PhoneNumber;
use callpop_core::text::fold_for_search;

/// Everything a person might type to find this call, for the trigram index.
pub(crate) fn search_text(call: &Call, opts: &StoreOptions) -> String {
    let mut parts: Vec<String> = Vec::new();
    for side in [&call.from, &call.to] {
        if let Some(name) = &side.name {
            parts.push(name.clone());
        }
        if let Some(raw) = &side.raw {
            let n = PhoneNumber::parse(raw, &opts.country);
            parts.extend(n.search_digits(&opts.country));
        }
        if let Some(e164) = &side.e164 {
            parts.push(e164.trim_start_matches('+').to_string());
            if let Some(national) = opts.country.national_digits(e164) {
                parts.push(national);
            }
        }
    }
    for ext in &call.extensions {
        parts.extend(ext.extension_number.clone());
        parts.extend(ext.extension_id.clone());
        parts.extend(ext.name.clone());
    }
    // Names also as people type them (José Müller-O'Brien is found by `jose`, `obrien`); the
    // search terms are folded the same way (`query.rs`).
    let names: Vec<String> = call
        .extensions
        .iter()
        .filter_map(|e| e.name.as_deref())
        .chain(
            [&call.from, &call.to]
                .iter()
                .filter_map(|s| s.name.as_deref()),
        )
        .map(fold_for_search)
        .collect();
    parts.extend(names);
    let mut seen = std::collections::BTreeSet::new();
    parts.retain(|p| !p.is_empty() && seen.insert(p.to_lowercase()));
    parts.join(" | ")
}

/// Each extension key of a call (id and number of every desk) with that desk's own outcome,
/// for filters on an extension ([`ExtensionPart::outcome`]).
pub(super) fn extension_outcomes(call: &Call) -> Vec<(String, Option<&'static str>)> {
    let mut out: Vec<(String, Option<&'static str>)> = call
        .extensions
        .iter()
        .flat_map(|p| {
            let outcome = p.outcome_or(call.result).map(|r| r.as_str());
            [p.extension_id.clone(), p.extension_number.clone()]
                .into_iter()
                .flatten()
                .map(move |k| (k, outcome))
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Writes each desk's own outcome into the call's extension rows.
pub(super) fn set_outcomes(conn: &Connection, id: i64, call: &Call) -> Result<(), StoreError> {
    // By the call's own index: left to itself SQLite walked the primary key from the
    // extension, every call of a busy desk, for each update (ingest fell to a crawl).
    let mut stmt = conn.prepare_cached(
        "UPDATE call_extensions INDEXED BY call_extensions_call SET result = ?1
         WHERE call_id = ?2 AND extension = ?3",
    )?;
    // None too: a call ended as `no_end_reported` that comes back to life is live again.
    for (key, outcome) in extension_outcomes(call) {
        stmt.execute(params![outcome, id, key])?;
    }
    Ok(())
}

pub(super) fn extension_keys(call: &Call) -> Vec<String> {
    let mut keys: Vec<String> = call
        .extensions
        .iter()
        .flat_map(|p| [p.extension_id.clone(), p.extension_number.clone()])
        .flatten()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Writes a call's extensions and queues its search text under its sort key; `indexed_key`
/// is the key the search index holds for it now (None for a new call).
pub(super) fn index_call(
    conn: &Connection,
    id: i64,
    indexed_key: Option<i64>,
    sort_key: i64,
    text: &str,
    extensions: &[String],
) -> Result<(), StoreError> {
    queue_search(conn, id, indexed_key, Some((sort_key, text)))?;
    let mut ext = conn.prepare_cached(
        "INSERT OR IGNORE INTO call_extensions (extension, sort_key, call_id) VALUES (?1, ?2, ?3)",
    )?;
    for key in extensions {
        ext.execute(params![key, sort_key, id])?;
    }
    Ok(())
}

/// Records what the search index should hold for a call: `target` is its sort key and text,
/// None when the call is gone. The first queued `indexed_key` is kept, because until the
/// queue is applied that is what the index really holds.
pub(super) fn queue_search(
    conn: &Connection,
    id: i64,
    indexed_key: Option<i64>,
    target: Option<(i64, &str)>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO search_pending (call_id, indexed_key, sort_key, text)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (call_id) DO UPDATE SET sort_key = excluded.sort_key, text = excluded.text",
    )?
    .execute(params![
        id,
        indexed_key,
        target.map(|t| t.0),
        target.map(|t| t.1)
    ])?;
    Ok(())
}

/// Queues every stored call's search text again and writes its desks' outcomes, for when
/// what they hold changes (a schema migration says so); the next flush rewrites the index.
/// Returns how many calls.
pub(crate) fn requeue_all(conn: &Connection, opts: &StoreOptions) -> Result<usize, StoreError> {
    let sql = format!("SELECT {} FROM calls", crate::query::CALL_COLUMNS);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut queued = 0;
    while let Some(row) = rows.next()? {
        match crate::query::call_from_row(row)? {
            Ok(r) => {
                let text = search_text(&r.call, opts);
                queue_search(conn, r.id, Some(r.sort_key), Some((r.sort_key, &text)))?;
                set_outcomes(conn, r.id, &r.call)?;
                queued += 1;
            }
            // A damaged row keeps the entry it has; `callpop events replay` rebuilds it.
            Err(e) => tracing::warn!(error = %e, "a call's search text was not refreshed"),
        }
    }
    Ok(queued)
}

/// Applies the queued search-index work: every old entry out, then every call's latest text
/// in (all deletions first, so a sort key handed from one call to another is never doubled).
/// Returns how many calls were re-indexed.
pub(crate) fn flush_search(conn: &Connection) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "DELETE FROM calls_search WHERE rowid IN
            (SELECT indexed_key FROM search_pending WHERE indexed_key IS NOT NULL)",
    )?
    .execute([])?;
    conn.prepare_cached(
        "INSERT INTO calls_search (rowid, text)
         SELECT sort_key, text FROM search_pending WHERE text IS NOT NULL ORDER BY sort_key",
    )?
    .execute([])?;
    Ok(conn
        .prepare_cached("DELETE FROM search_pending")?
        .execute([])?)
}

/// Removes a call's extensions and queues the removal of its search text.
pub(super) fn unindex_call(conn: &Connection, id: i64, sort_key: i64) -> Result<(), StoreError> {
    queue_search(conn, id, Some(sort_key), None)?;
    conn.prepare_cached("DELETE FROM call_extensions WHERE call_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// True when the text the search index holds for a call may differ between two versions.
/// Whether what the search text and the extension keys are built from differs: the parties
/// and who the extensions are, not how their legs went (which changes with nearly every event
/// and made every event rebuild and compare two search texts).
pub(super) fn searchable_changed(a: &Call, b: &Call) -> bool {
    fn who(p: &ExtensionPart) -> (&Option<String>, &Option<String>, &Option<String>) {
        (&p.extension_id, &p.extension_number, &p.name)
    }
    a.from != b.from
        || a.to != b.to
        || !a
            .extensions
            .iter()
            .map(who)
            .eq(b.extensions.iter().map(who))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, DB_FILE};

    fn search(conn: &Connection, term: &str) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT rowid FROM calls_search WHERE calls_search MATCH ?1 ORDER BY rowid")
            .expect("prepare");
        let rows = stmt
            .query_map([format!("\"{term}\"")], |r| r.get(0))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    fn pending(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM search_pending", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn queued_search_work_lands_once_and_a_handed_over_sort_key_is_not_doubled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join(DB_FILE), crate::tests::options()).expect("open");
        let conn = &store.conn;
        queue_search(conn, 1, None, Some((100, "alpha one"))).expect("queue");
        queue_search(conn, 1, None, Some((100, "alpha two"))).expect("requeue");
        assert_eq!(
            search(conn, "alpha"),
            Vec::<i64>::new(),
            "nothing before the flush"
        );
        assert_eq!(flush_search(conn).expect("flush"), 1);
        assert_eq!(search(conn, "alpha two"), vec![100]);
        assert_eq!(
            search(conn, "alpha one"),
            Vec::<i64>::new(),
            "only the latest text"
        );

        // Call 1 moves from key 100 to 200 and call 2 takes 100, in one queue.
        queue_search(conn, 1, Some(100), Some((200, "alpha three"))).expect("move");
        queue_search(conn, 2, None, Some((100, "bravo"))).expect("new");
        flush_search(conn).expect("flush");
        assert_eq!(search(conn, "alpha"), vec![200]);
        assert_eq!(search(conn, "bravo"), vec![100]);
        assert_eq!(pending(conn), 0);

        // A call that moves twice before a flush still loses its indexed entry.
        queue_search(conn, 2, Some(100), Some((300, "bravo"))).expect("move");
        queue_search(conn, 2, Some(300), Some((400, "bravo"))).expect("move again");
        queue_search(conn, 1, Some(200), None).expect("gone");
        flush_search(conn).expect("flush");
        assert_eq!(search(conn, "bravo"), vec![400]);
        assert_eq!(search(conn, "alpha"), Vec::<i64>::new());
    }

    #[test]
    fn search_work_left_by_a_crash_is_applied_when_the_history_is_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let store = Store::open(&path, crate::tests::options()).expect("open");
        queue_search(&store.conn, 7, None, Some((700, "charlie"))).expect("queue");
        drop(store);
        let store = Store::open(&path, crate::tests::options()).expect("reopen");
        assert_eq!(search(&store.conn, "charlie"), vec![700]);
        assert_eq!(pending(&store.conn), 0);
    }
}
