//! Versioned migrations. A migration is never edited once released: add a new one instead.
//! `PRAGMA user_version` records how many have been applied.

/// Every migration in order; index + 1 is the schema version it produces.
pub const MIGRATIONS: &[&str] = &[
    // 1: raw deliveries, derived calls, normalized events, voicemails, quarantine, engine state.
    r#"
CREATE TABLE raw_events (
    id              INTEGER PRIMARY KEY,
    provider        TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    event_time      INTEGER,
    body_sha256     TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    redeliveries    INTEGER NOT NULL DEFAULT 0,
    last_redelivered_at INTEGER,
    UNIQUE (provider, dedup_key)
);

CREATE TABLE calls (
    id              INTEGER PRIMARY KEY,
    provider        TEXT NOT NULL,
    call_key        TEXT NOT NULL,
    direction       TEXT NOT NULL,
    state           TEXT NOT NULL,
    result          TEXT,
    from_raw        TEXT,
    from_e164       TEXT,
    from_name       TEXT,
    to_raw          TEXT,
    to_e164         TEXT,
    to_name         TEXT,
    extensions      TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    answered_at     INTEGER,
    ended_at        INTEGER,
    ring_seconds    INTEGER NOT NULL,
    talk_seconds    INTEGER NOT NULL,
    recording_url   TEXT,
    voicemail_id    TEXT,
    voicemail_seconds INTEGER,
    voicemail_url   TEXT,
    event_count     INTEGER NOT NULL,
    last_event_at   INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- The call's place in the newest-first list: started_at (ms) in the high bits, a
    -- tie-breaker in the low 20. Every index that lists calls is ordered by it, so a page of
    -- any search is an index range read, never a sort of every match.
    sort_key        INTEGER NOT NULL,
    UNIQUE (provider, call_key)
);
CREATE UNIQUE INDEX calls_sorted ON calls (sort_key);
CREATE INDEX calls_from ON calls (from_e164, started_at);

CREATE TABLE call_extensions (
    extension       TEXT NOT NULL,
    sort_key        INTEGER NOT NULL,
    call_id         INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    PRIMARY KEY (extension, sort_key)
) WITHOUT ROWID;
CREATE INDEX call_extensions_call ON call_extensions (call_id, extension);

-- Which calls each raw delivery's events belong to (the events themselves are read from the
-- raw body by the parser, so a parser fix applies to every stored delivery).
CREATE TABLE call_events (
    raw_event_id    INTEGER NOT NULL REFERENCES raw_events (id) ON DELETE CASCADE,
    ordinal         INTEGER NOT NULL,
    call_id         INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    PRIMARY KEY (raw_event_id, ordinal)
) WITHOUT ROWID;
CREATE INDEX call_events_call ON call_events (call_id);

CREATE TABLE voicemails (
    id              INTEGER PRIMARY KEY,
    provider        TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    raw_event_id    INTEGER REFERENCES raw_events (id) ON DELETE SET NULL,
    extension_id    TEXT,
    extension_number TEXT,
    from_e164       TEXT,
    created_at      INTEGER NOT NULL,
    message         TEXT NOT NULL,
    call_id         INTEGER REFERENCES calls (id) ON DELETE SET NULL,
    UNIQUE (provider, message_id)
);
CREATE INDEX voicemails_unmatched ON voicemails (provider, created_at) WHERE call_id IS NULL;
CREATE INDEX voicemails_call ON voicemails (call_id);

CREATE TABLE quarantine (
    id              INTEGER PRIMARY KEY,
    provider        TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    last_received_at INTEGER NOT NULL,
    occurrences     INTEGER NOT NULL DEFAULT 1,
    reason          TEXT NOT NULL,
    body_sha256     TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    resolved_at     INTEGER,
    resolved_raw_event_id INTEGER
);
CREATE UNIQUE INDEX quarantine_open_body ON quarantine (provider, body_sha256) WHERE resolved_at IS NULL;

CREATE TABLE engine_state (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- rowid = calls.sort_key, so matches come out newest first and a page stops early.
CREATE VIRTUAL TABLE calls_search USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);
"#,
    // 2: which calls have a desktop popup, so a restart never shows one twice.
    r#"
CREATE TABLE popups (
    call_id         INTEGER PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    phase           TEXT NOT NULL,
    notification_id INTEGER,
    closed          INTEGER NOT NULL DEFAULT 0,
    shown_at        INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX popups_updated ON popups (updated_at);
"#,
    // 3: the newest live (webhook) delivery, found without walking back past every
    // backfilled call-log record: the start-up gap check read the whole table before.
    r#"
CREATE INDEX raw_events_live ON raw_events (id) WHERE kind != 'call_log';
"#,
    // 4: search-index work not yet applied. Rewriting a call's trigram entry on every
    // delivery took about 45 % of the writer's time under load; during a burst the writer
    // queues the rewrite here (in the same transaction as the call row) and applies each
    // call's latest text once.
    r#"
CREATE TABLE search_pending (
    call_id     INTEGER PRIMARY KEY,
    indexed_key INTEGER,
    sort_key    INTEGER,
    text        TEXT
);
"#,
    // 5: names are also indexed folded (accents off, apostrophes out) so `jose` finds José.
    // The texts are built in Rust: `Store::migrate` re-queues every call after this step.
    r#"
SELECT 1;
"#,
    // 6: the calls still ringing or connected, by their last event, for the rule that ends
    // calls whose end was never reported (it runs every minute; without this it read every
    // call).
    r#"
CREATE INDEX calls_unended ON calls (last_event_at) WHERE state IN ('ringing', 'connected');
"#,
    // 7: each desk's own outcome, so `--extension 202 --result missed` finds the transfer 202
    // did not pick up although the call was answered. Filled by `Store::migrate` for stored
    // calls.
    r#"
ALTER TABLE call_extensions ADD COLUMN result TEXT;
"#,
    // 8: the same RingCentral event through two subscriptions (a webhook and the WebSocket
    // while the transport switches) carries two `uuid`s: it is recognised by what it is.
    r#"
ALTER TABLE raw_events ADD COLUMN content_key TEXT;
CREATE UNIQUE INDEX raw_events_content ON raw_events (provider, content_key)
    WHERE content_key IS NOT NULL;
"#,
    // 9: the change feed a hub serves its desks (docs/HUB.md). Every write of a shared record
    // adds a row with the next `seq` in the transaction that writes it, whichever process
    // writes. Readers take each record's newest row up to a position; rows superseded by one
    // already on disk are compacted away (`feed::compact`), so the table grows with the
    // records, not with the traffic, and a change on disk is never hidden by one that is not
    // yet. `record_id` is the row it names, NULL once the record was deleted (a tombstone,
    // kept for `TOMBSTONE_DAYS`). Stored calls are put in the feed in list order, so a hub
    // made from a desk's history serves all of it.
    //
    // `replica_calls` is a desk's note of which rows came from its hub: only those are
    // pruned past the desk's window or swept after a resynchronization, never the desk's own
    // earlier history (`local` marks a row the desk had before the hub sent the same call).
    r#"
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    record_id   INTEGER,
    at          INTEGER NOT NULL
);
CREATE INDEX changes_record ON changes (kind, key, seq);
INSERT INTO changes (kind, key, record_id, at)
    SELECT 'call', provider || '/' || call_key, id, updated_at FROM calls ORDER BY sort_key;
-- One row per call: nothing to compact in what was just written.
REPLACE INTO engine_state (key, value, updated_at)
    SELECT 'feed.compacted', coalesce(max(seq), 0), 0 FROM changes;
CREATE TABLE replica_calls (
    call_id     INTEGER PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    started_at  INTEGER NOT NULL,
    local       INTEGER NOT NULL DEFAULT 0,
    generation  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX replica_calls_started ON replica_calls (started_at);

-- A hub's pending pairing codes (the code itself is the pairing's password, so the hub must
-- keep it; each lives ten minutes) and its paired desks (only a hash of each desk's token).
CREATE TABLE hub_codes (
    id          TEXT PRIMARY KEY,
    code        TEXT NOT NULL,
    desk_name   TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    used_at     INTEGER
);
CREATE TABLE hub_desks (
    name         TEXT PRIMARY KEY COLLATE NOCASE,
    token_sha256 TEXT NOT NULL UNIQUE,
    paired_at    INTEGER NOT NULL,
    address      TEXT,
    version      TEXT,
    last_seen    INTEGER,
    cursor       INTEGER,
    revoked_at   INTEGER
);
"#,
    // 10: contacts (issue 29): names for numbers, from CRM and spreadsheet files. A number
    // belongs to one contact; calls find their contact by the number's E.164 form.
    r#"
CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    name        TEXT,
    company     TEXT,
    owner       TEXT,
    notes       TEXT,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE contact_numbers (
    e164        TEXT PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    raw         TEXT NOT NULL,
    label       TEXT
);
CREATE INDEX contact_numbers_contact ON contact_numbers (contact_id);
"#,
];

/// Undoes migrations 9 and 10, for tests that rebuild a history as an older CallPop left it.
#[cfg(test)]
pub(crate) const UNDO_FEED: &str = "DROP TABLE contact_numbers; DROP TABLE contacts;
    DROP TABLE changes; DROP TABLE replica_calls;
    DROP TABLE hub_codes; DROP TABLE hub_desks;
    DELETE FROM sqlite_sequence WHERE name = 'changes';
    DELETE FROM engine_state WHERE key LIKE 'feed.%';";

/// How long the change feed keeps a deleted record's tombstone. A desk away for longer
/// resynchronizes its window instead of reading the feed (docs/HUB.md).
pub const TOMBSTONE_DAYS: i64 = 180;

/// The first version whose extension rows hold each desk's outcome.
pub(crate) const DESK_OUTCOMES: i64 = 7;

/// The first version whose search texts hold folded names: histories migrated from before it
/// have every call's search text rebuilt.
pub(crate) const FOLDED_SEARCH: i64 = 5;

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
