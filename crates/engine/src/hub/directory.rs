//! Which tokens belong to which desks, and what the hub sees of each desk now. Loaded from the
//! history's `hub_desks` and read again every second, so `callpop hub revoke` (another
//! process) cuts a desk off within a second; the desk API's own changes apply at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use callpop_store::hub::DeskSeen;

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHolder {
    /// A paired desk.
    Desk(String),
    /// A desk that was removed from the hub.
    Removed(String),
    /// Nobody.
    Unknown,
}

/// What the hub saw of a desk in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveDesk {
    /// Live streams open now.
    pub streams: usize,
    /// Where it connected from last.
    pub address: Option<SocketAddr>,
    /// The version it reported.
    pub version: Option<String>,
    /// The feed position it read up to.
    pub cursor: Option<i64>,
    /// When it was last heard from.
    pub last_seen: Option<DateTime<Utc>>,
    /// Not yet written to the history.
    dirty: bool,
}

/// The hub's desks.
pub struct Directory {
    tokens: RwLock<HashMap<String, TokenHolder>>,
    /// Desks paired in this run lately: a snapshot read just before a pairing committed must
    /// not drop them.
    recent: Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// Whether the tokens were read from the history at least once.
    loaded: std::sync::atomic::AtomicBool,
    live: Mutex<HashMap<String, LiveDesk>>,
    /// Moves whenever a desk is removed: open streams check whether they were.
    removals: watch::Sender<u64>,
}

/// How long a desk paired in this run is kept even if a read of the history misses it.
const RECENT: std::time::Duration = std::time::Duration::from_secs(10);

/// The SHA-256 of a token, as the hub keeps it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Directory {
        Directory {
            tokens: RwLock::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
            loaded: std::sync::atomic::AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            removals: watch::channel(0).0,
        }
    }

    /// Replaces what is known of tokens with the history's rows (hash, name, removed).
    pub fn load(&self, rows: Vec<(String, String, bool)>) {
        let mut fresh: HashMap<String, TokenHolder> = rows
            .into_iter()
            .map(|(hash, name, removed)| {
                let holder = if removed {
                    TokenHolder::Removed(name)
                } else {
                    TokenHolder::Desk(name)
                };
                (hash, holder)
            })
            .collect();
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.retain(|_, (_, at)| at.elapsed() < RECENT);
            for (hash, (name, _)) in recent.iter() {
                fresh
                    .entry(hash.clone())
                    .or_insert_with(|| TokenHolder::Desk(name.clone()));
            }
        }
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        let removed_now = tokens.iter().any(|(hash, before)| {
            matches!(before, TokenHolder::Desk(_))
                && !matches!(fresh.get(hash), Some(TokenHolder::Desk(_)))
        });
        *tokens = fresh;
        drop(tokens);
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
        if removed_now {
            self.removals.send_modify(|n| *n += 1);
        }
    }

    /// Whether the tokens were read from the history yet.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A newly paired desk's token.
    pub fn add(&self, hash: String, name: String) {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hash.clone(), (name.clone(), std::time::Instant::now()));
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hash, TokenHolder::Desk(name));
    }

    /// Marks a desk removed (its own leaving, or a revoke through the API).
    pub fn remove(&self, name: &str) {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (n, _)| !n.eq_ignore_ascii_case(name));
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        for holder in tokens.values_mut() {
            if matches!(holder, TokenHolder::Desk(n) if n.eq_ignore_ascii_case(name)) {
                *holder = TokenHolder::Removed(name.to_string());
            }
        }
        drop(tokens);
        self.removals.send_modify(|n| *n += 1);
    }

    /// Who holds `token`. The lookup is by the token's hash, so comparing does not reveal
    /// anything about a real token's characters.
    pub fn holder(&self, token: &str) -> TokenHolder {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&token_hash(token))
            .cloned()
            .unwrap_or(TokenHolder::Unknown)
    }

    /// Who holds the token whose hash is `hash`.
    pub fn holder_of_hash(&self, hash: &str) -> TokenHolder {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
            .unwrap_or(TokenHolder::Unknown)
    }

    /// Whether a desk is still paired.
    pub fn is_paired(&self, name: &str) -> bool {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|h| matches!(h, TokenHolder::Desk(n) if n == name))
    }

    /// Follows removals.
    pub fn removals(&self) -> watch::Receiver<u64> {
        self.removals.subscribe()
    }

    /// Notes a request or a stream from a desk.
    pub fn seen(
        &self,
        name: &str,
        address: SocketAddr,
        version: Option<&str>,
        cursor: Option<i64>,
    ) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let desk = live.entry(name.to_string()).or_default();
        desk.address = Some(address);
        if let Some(v) = version {
            desk.version = Some(v.to_string());
        }
        if cursor.is_some() {
            desk.cursor = cursor;
        }
        desk.last_seen = Some(Utc::now());
        desk.dirty = true;
    }

    /// A stream opened (`+1`) or closed (`-1`).
    pub fn stream(&self, name: &str, opened: bool) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let desk = live.entry(name.to_string()).or_default();
        desk.streams = if opened {
            desk.streams + 1
        } else {
            desk.streams.saturating_sub(1)
        };
        desk.last_seen = Some(Utc::now());
        desk.dirty = true;
    }

    /// What the hub sees of every desk heard from in this run.
    pub fn live(&self) -> HashMap<String, LiveDesk> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Desks with a stream open now.
    pub fn connected(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|d| d.streams > 0)
            .count()
    }

    /// What changed since the last call, to be written to the history.
    pub fn take_seen(&self) -> Vec<DeskSeen> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.iter_mut()
            .filter(|(_, d)| d.dirty)
            .map(|(name, d)| {
                d.dirty = false;
                DeskSeen {
                    name: name.clone(),
                    address: d.address.map(|a| a.ip().to_string()).unwrap_or_default(),
                    version: d.version.clone(),
                    cursor: d.cursor,
                    at: d.last_seen.unwrap_or_else(Utc::now),
                }
            })
            .collect()
    }
}

impl Default for Directory {
    fn default() -> Directory {
        Directory::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_known_by_their_hash_and_a_revoke_from_another_process_is_noticed() {
        let dir = Directory::new();
        dir.load(vec![
            (token_hash("t-sales"), "Sales".into(), false),
            (token_hash("t-old"), "Old".into(), true),
        ]);
        assert_eq!(dir.holder("t-sales"), TokenHolder::Desk("Sales".into()));
        assert_eq!(dir.holder("t-old"), TokenHolder::Removed("Old".into()));
        assert_eq!(dir.holder("t-sales "), TokenHolder::Unknown);
        let mut removals = dir.removals();
        removals.borrow_and_update();
        dir.load(vec![(token_hash("t-sales"), "Sales".into(), true)]);
        assert!(removals.has_changed().expect("open"));
        assert_eq!(dir.holder("t-sales"), TokenHolder::Removed("Sales".into()));
        assert!(!dir.is_paired("Sales"));
    }
}
