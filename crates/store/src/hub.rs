//! A hub's pairing codes and paired desks (schema 9). The hub's desk API writes them through
//! the store writer; `callpop hub pair|desks|revoke` through its own connection. Every check
//! that decides (a code's attempts, a code used once) runs inside one transaction, so two
//! processes never both accept the same code.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{from_ms, to_ms, Store, StoreError};

/// A pending code, as `callpop hub pair` issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCode {
    /// Its public part.
    pub id: String,
    /// The whole code.
    pub code: String,
    /// The name the desk will get, if the IT person gave one.
    pub desk_name: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What a pairing attempt with a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Usable: the attempt was counted.
    Usable(PendingCode),
    /// No such code (or expired more than a day ago).
    Unknown,
    /// Past its lifetime.
    Expired,
    /// A desk already paired with it.
    Used,
    /// Tried too often.
    TooManyAttempts,
}

/// A paired (or removed) desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskRecord {
    /// Its unique name.
    pub name: String,
    /// When it paired.
    pub paired_at: DateTime<Utc>,
    /// The address it last connected from.
    pub address: Option<String>,
    /// The CallPop version it last reported.
    pub version: Option<String>,
    /// When the hub last heard from it.
    pub last_seen: Option<DateTime<Utc>>,
    /// The last feed position it read.
    pub cursor: Option<i64>,
    /// When it was removed from the hub, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What the hub saw of a desk lately, written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskSeen {
    /// The desk.
    pub name: String,
    /// Where it connected from.
    pub address: String,
    /// Its version.
    pub version: Option<String>,
    /// The feed position it read up to.
    pub cursor: Option<i64>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Expired codes are kept this long, so a late attempt hears "expired", not "unknown".
const EXPIRED_KEPT: chrono::Duration = chrono::Duration::days(1);

/// Stores a new code; false when its public part is already taken by a live code (the caller
/// makes another).
pub(crate) fn issue_code(
    conn: &Connection,
    pending: &PendingCode,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM hub_codes WHERE expires_at < ?1",
        [to_ms(now - EXPIRED_KEPT)],
    )?;
    let inserted = conn.execute(
        "INSERT INTO hub_codes (id, code, desk_name, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
        params![
            pending.id,
            pending.code,
            pending.desk_name,
            to_ms(now),
            to_ms(pending.expires_at)
        ],
    )?;
    Ok(inserted == 1)
}

/// Checks the code named `id` for an attempt at `now`, counting the attempt when it is usable.
pub(crate) fn check_code(
    conn: &Connection,
    id: &str,
    now: DateTime<Utc>,
    max_attempts: u32,
) -> Result<CodeCheck, StoreError> {
    type Row = (String, Option<String>, i64, i64, Option<i64>);
    let row: Option<Row> = conn
        .query_row(
            "SELECT code, desk_name, expires_at, attempts, used_at FROM hub_codes WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((code, desk_name, expires_at, attempts, used_at)) = row else {
        return Ok(CodeCheck::Unknown);
    };
    if used_at.is_some() {
        return Ok(CodeCheck::Used);
    }
    if expires_at <= to_ms(now) {
        return Ok(CodeCheck::Expired);
    }
    if attempts >= i64::from(max_attempts) {
        return Ok(CodeCheck::TooManyAttempts);
    }
    conn.execute(
        "UPDATE hub_codes SET attempts = attempts + 1 WHERE id = ?1",
        [id],
    )?;
    Ok(CodeCheck::Usable(PendingCode {
        id: id.to_string(),
        code,
        desk_name,
        expires_at: from_ms(expires_at),
    }))
}

/// Pairs a desk with the code `code_id` (spending it): the name it gets, unique among the
/// hub's desks (`Sales (2)` when `Sales` is taken). `Err` with what the code is now when it
/// was spent or expired meanwhile.
pub(crate) fn add_desk(
    conn: &Connection,
    code_id: &str,
    wanted_name: &str,
    token_sha256: &str,
    now: DateTime<Utc>,
) -> Result<Result<String, CodeCheck>, StoreError> {
    let spent = conn.execute(
        "UPDATE hub_codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![code_id, to_ms(now)],
    )?;
    if spent == 0 {
        let state = match check_code(conn, code_id, now, u32::MAX)? {
            CodeCheck::Usable(_) => CodeCheck::Unknown,
            other => other,
        };
        return Ok(Err(state));
    }
    let mut name = wanted_name.to_string();
    for n in 2.. {
        let taken: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM hub_desks WHERE name = ?1 AND revoked_at IS NULL)",
            [&name],
            |r| r.get(0),
        )?;
        if !taken {
            break;
        }
        name = format!("{wanted_name} ({n})");
    }
    conn.execute(
        "REPLACE INTO hub_desks (name, token_sha256, paired_at) VALUES (?1, ?2, ?3)",
        params![name, token_sha256, to_ms(now)],
    )?;
    Ok(Ok(name))
}

const DESK_COLUMNS: &str = "name, paired_at, address, version, last_seen, cursor, revoked_at";

fn desk_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeskRecord> {
    Ok(DeskRecord {
        name: r.get(0)?,
        paired_at: from_ms(r.get(1)?),
        address: r.get(2)?,
        version: r.get(3)?,
        last_seen: r.get::<_, Option<i64>>(4)?.map(from_ms),
        cursor: r.get(5)?,
        revoked_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
    })
}

/// The desk holding a token (by the token's hash), removed or not.
pub(crate) fn desk_by_token(
    conn: &Connection,
    token_sha256: &str,
) -> Result<Option<DeskRecord>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DESK_COLUMNS} FROM hub_desks WHERE token_sha256 = ?1"
        ))?
        .query_row([token_sha256], desk_from_row)
        .optional()?)
}

/// Removes a desk from the hub: its token stops working. False when no paired desk has that
/// name (names compare without case).
pub(crate) fn revoke(
    conn: &Connection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE hub_desks SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
        params![name, to_ms(now)],
    )? == 1)
}

/// Records what the hub saw of its desks lately.
pub(crate) fn touch(conn: &Connection, seen: &[DeskSeen]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE hub_desks SET address = ?2, version = coalesce(?3, version),
                              cursor = coalesce(?4, cursor), last_seen = ?5
         WHERE name = ?1 AND revoked_at IS NULL",
    )?;
    for s in seen {
        stmt.execute(params![s.name, s.address, s.version, s.cursor, to_ms(s.at)])?;
    }
    Ok(())
}

impl Store {
    /// Issues a pairing code in its own transaction (`callpop hub pair`); false when its
    /// public part is taken.
    pub fn hub_issue_code(
        &mut self,
        pending: &PendingCode,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let tx = self.immediate()?;
        let issued = issue_code(&tx, pending, now)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(issued)
    }

    /// Every desk, paired or removed, by name.
    pub fn hub_desks(&self) -> Result<Vec<DeskRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DESK_COLUMNS} FROM hub_desks ORDER BY name"
        ))?;
        let desks = stmt
            .query_map([], desk_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(desks)
    }

    /// The desk holding a token, by its hash.
    pub fn hub_desk_by_token(&self, token_sha256: &str) -> Result<Option<DeskRecord>, StoreError> {
        desk_by_token(&self.conn, token_sha256)
    }

    /// Every desk's token hash and name, and whether it was removed: what a hub checks
    /// requests against.
    pub fn hub_desk_tokens(&self) -> Result<Vec<(String, String, bool)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT token_sha256, name, revoked_at IS NOT NULL FROM hub_desks")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Removes a desk from the hub in its own transaction (`callpop hub revoke`).
    pub fn hub_revoke(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let tx = self.immediate()?;
        let done = revoke(&tx, name, now)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(done)
    }

    /// Checks a code in its own transaction (tests and the CLI; the hub uses the writer).
    pub fn hub_check_code(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<CodeCheck, StoreError> {
        let tx = self.immediate()?;
        let check = check_code(&tx, id, now, max_attempts)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(check)
    }

    /// Pairs a desk in its own transaction (see [`add_desk`]).
    pub fn hub_add_desk(
        &mut self,
        code_id: &str,
        wanted_name: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<String, CodeCheck>, StoreError> {
        let tx = self.immediate()?;
        let added = add_desk(&tx, code_id, wanted_name, token_sha256, now)?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(added)
    }

    /// Forgets a desk's link to a hub (joining another, or leaving): the feed position and
    /// everything else kept under `hub.`, and which rows came from the hub; those rows stay,
    /// as the desk's own history, never pruned or swept by the next hub's link.
    pub fn forget_hub_link(&mut self) -> Result<(), StoreError> {
        let tx = self.immediate()?;
        tx.execute("DELETE FROM engine_state WHERE key LIKE 'hub.%'", [])?;
        tx.execute("UPDATE replica_calls SET local = 1", [])?;
        tx.commit().map_err(StoreError::classify)?;
        Ok(())
    }

    /// An IMMEDIATE transaction: it takes the write lock at once, so a check and the write
    /// that follows it are never split by another process.
    fn immediate(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::options;
    use crate::DB_FILE;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join(DB_FILE), options()).expect("open");
        (dir, store)
    }

    fn code(id: &str, now: DateTime<Utc>) -> PendingCode {
        PendingCode {
            id: id.into(),
            code: format!("{id}23456789"),
            desk_name: None,
            expires_at: now + chrono::Duration::minutes(10),
        }
    }

    #[test]
    fn a_code_allows_its_attempts_then_is_spent_and_each_state_is_told_apart() {
        let (_dir, mut store) = store();
        let now = Utc::now();
        assert!(store.hub_issue_code(&code("AB", now), now).expect("issue"));
        assert!(!store.hub_issue_code(&code("AB", now), now).expect("taken"));
        for _ in 0..3 {
            assert!(matches!(
                store.hub_check_code("AB", now, 3).expect("check"),
                CodeCheck::Usable(_)
            ));
        }
        assert_eq!(
            store.hub_check_code("AB", now, 3).expect("check"),
            CodeCheck::TooManyAttempts
        );
        assert_eq!(
            store.hub_check_code("ZZ", now, 3).expect("check"),
            CodeCheck::Unknown
        );
        store.hub_issue_code(&code("CD", now), now).expect("issue");
        let later = now + chrono::Duration::minutes(11);
        assert_eq!(
            store.hub_check_code("CD", later, 3).expect("check"),
            CodeCheck::Expired
        );
        assert_eq!(
            store.hub_add_desk("CD", "Sales", "h1", later).expect("add"),
            Err(CodeCheck::Expired)
        );
        store.hub_issue_code(&code("EF", now), now).expect("issue");
        assert_eq!(
            store.hub_add_desk("EF", "Sales", "h1", now).expect("add"),
            Ok("Sales".into())
        );
        assert_eq!(
            store.hub_add_desk("EF", "Sales", "h2", now).expect("add"),
            Err(CodeCheck::Used)
        );
        assert_eq!(
            store.hub_check_code("EF", now, 3).expect("check"),
            CodeCheck::Used
        );
    }

    #[test]
    fn forgetting_a_hub_keeps_its_rows_as_the_desks_own_and_drops_the_position() {
        let (_dir, mut store) = store();
        store.state_set(crate::HUB_CURSOR, "42").expect("cursor");
        store.state_set("hub.round", "open").expect("round");
        store.state_set("other", "kept").expect("other");
        let call = crate::tests::scenario("rc-outbound");
        for d in &call {
            store.ingest(d).expect("ingest");
        }
        store
            .conn
            .execute(
                "INSERT INTO replica_calls (call_id, started_at) SELECT id, started_at FROM calls",
                [],
            )
            .expect("mark as the hub's");
        store.forget_hub_link().expect("forget");
        assert_eq!(store.state_get(crate::HUB_CURSOR).expect("read"), None);
        assert_eq!(store.state_get("hub.round").expect("read"), None);
        assert_eq!(store.state_get("other").expect("read"), Some("kept".into()));
        let local: i64 = store
            .conn
            .query_row("SELECT min(local) FROM replica_calls", [], |r| r.get(0))
            .expect("local");
        assert_eq!(local, 1);
    }

    #[test]
    fn desk_names_stay_unique_and_a_removed_desks_token_is_known_as_removed() {
        let (_dir, mut store) = store();
        let now = Utc::now();
        for (id, token) in [("AA", "t1"), ("BB", "t2")] {
            store.hub_issue_code(&code(id, now), now).expect("issue");
            store
                .hub_add_desk(id, "Sales", token, now)
                .expect("add")
                .expect("paired");
        }
        let names: Vec<String> = store
            .hub_desks()
            .expect("desks")
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, vec!["Sales", "Sales (2)"]);
        assert!(store.hub_revoke("sales", now).expect("revoke"));
        assert!(
            !store.hub_revoke("sales", now).expect("again"),
            "already removed"
        );
        let desk = store.hub_desk_by_token("t1").expect("read").expect("known");
        assert!(desk.revoked_at.is_some());
        assert!(store
            .hub_desk_by_token("t2")
            .expect("read")
            .expect("known")
            .revoked_at
            .is_none());
        // Pairing again under a removed desk's name takes it over.
        store.hub_issue_code(&code("CC", now), now).expect("issue");
        assert_eq!(
            store.hub_add_desk("CC", "Sales", "t3", now).expect("add"),
            Ok("Sales".into())
        );
        assert!(store.hub_desk_by_token("t1").expect("read").is_none());
    }
}
