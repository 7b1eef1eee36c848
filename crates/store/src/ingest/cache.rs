//! The calls the writer keeps in memory, so an event does not re-read and re-parse every
//! earlier event of its call.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::StoreError;
use callpop_core::model::{Call, CallEvent, Provider, VoicemailMessage};

/// Recently touched calls, kept by the writer so that an event does not re-read and re-parse
/// every earlier event of its call. It is only a cache of what is committed plus the current
/// transaction: the writer drops it when a transaction rolls back or when another connection
/// changed the file (`PRAGMA data_version`), e.g. a CLI replay or backfill.
#[derive(Default)]
pub(crate) struct CallCache {
    pub(super) ids: HashMap<(Provider, String), i64>,
    pub(super) calls: HashMap<i64, CachedCall>,
    /// `PRAGMA data_version` when the cache last looked: it moves only when another
    /// connection commits.
    pub(super) data_version: Option<i64>,
    /// Counts the calls put back after use, so the least recently used can be told apart.
    pub(super) uses: u64,
}

pub(super) struct CachedCall {
    pub(super) events: Vec<CallEvent>,
    pub(super) deliveries: i64,
    pub(super) voicemail: Option<VoicemailMessage>,
    pub(super) call: Call,
    /// [`CallCache::uses`] when the call was last put back.
    pub(super) last_used: u64,
}

/// Calls kept in memory at most; past that ended calls are dropped and, if that is not
/// enough, the least recently used of the rest.
pub(super) const CACHED_CALLS: usize = 2_000;

impl CallCache {
    /// Forgets every call.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
        self.calls.clear();
    }

    /// Forgets every call if another connection committed since the last look. Called inside
    /// an IMMEDIATE transaction: its lock keeps other writers out until the commit, so what the
    /// cache holds stays true for the whole group.
    pub(crate) fn follow(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version != Some(version) {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    pub(super) fn forget(&mut self, call_id: i64) {
        self.calls.remove(&call_id);
    }

    /// Puts a call back after use.
    pub(super) fn keep(&mut self, call_id: i64, mut entry: CachedCall) {
        self.uses += 1;
        entry.last_used = self.uses;
        self.calls.insert(call_id, entry);
    }

    pub(super) fn trim(&mut self) {
        if self.calls.len() <= CACHED_CALLS && self.ids.len() <= CACHED_CALLS * 2 {
            return;
        }
        // Starting over made every call still ringing re-read and re-parse its deliveries
        // (~3 % of the writer's time under load); an ended call rarely hears more.
        self.calls.retain(|_, c| c.call.ended_at.is_none());
        let keep = CACHED_CALLS / 2;
        if self.calls.len() > keep {
            // More calls going on than that (a burst of traffic, or calls whose end never
            // arrived): keep the most recently used. Dropping them all made every call of a
            // burst re-read its deliveries after each trim: a third of the writer's time with
            // 2,000 calls going on at once.
            let mut uses: Vec<u64> = self.calls.values().map(|c| c.last_used).collect();
            let first_kept = uses.len() - keep;
            let (_, oldest_kept, _) = uses.select_nth_unstable(first_kept);
            let oldest_kept = *oldest_kept;
            self.calls.retain(|_, c| c.last_used >= oldest_kept);
        }
        let calls = &self.calls;
        self.ids.retain(|_, id| calls.contains_key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpop_core::calls;
    use callpop_core::model::Payload;
    use chrono::Utc;

    fn ended_call() -> Call {
        let record = serde_json::json!({
            "id": "L1", "telephonySessionId": "s-1", "startTime": "2026-11-02T09:00:00Z",
            "duration": 60, "type": "Voice", "direction": "Inbound", "action": "Phone Call",
            "result": "Accepted",
            "from": {"phoneNumber": "+14155550123"},
            "to": {"phoneNumber": "+16505550100", "extensionNumber": "101"},
        });
        let delivery = callpop_core::ringcentral::calllog::record_to_delivery(
            &record,
            &callpop_core::numbers::Country::from_iso("US").expect("US"),
            Utc::now(),
        )
        .expect("record");
        let Payload::Calls(events) = delivery.parsed.payload else {
            panic!("a call-log record holds call events");
        };
        calls::derive(&events, 1, None).expect("a call")
    }

    /// A cache one call past full; `call_for(id)` is each call, put back in id order.
    fn overfull_cache(call_for: impl Fn(i64) -> Call) -> CallCache {
        let mut cache = CallCache::default();
        for id in 0..=CACHED_CALLS as i64 {
            cache
                .ids
                .insert((Provider::RingCentral, format!("k{id}")), id);
            let entry = CachedCall {
                events: Vec::new(),
                deliveries: 1,
                voicemail: None,
                call: call_for(id),
                last_used: 0,
            };
            cache.keep(id, entry);
        }
        cache
    }

    fn going_call() -> Call {
        let mut going = ended_call();
        going.ended_at = None;
        going
    }

    #[test]
    fn a_full_cache_drops_ended_calls_and_keeps_the_ones_still_going() {
        let ended = ended_call();
        assert!(ended.ended_at.is_some());
        let going = going_call();
        let mut cache = overfull_cache(|id| {
            if id % 10 == 0 {
                going.clone()
            } else {
                ended.clone()
            }
        });
        cache.trim();
        assert_eq!(cache.calls.len(), CACHED_CALLS / 10 + 1);
        assert!(cache.calls.values().all(|c| c.call.ended_at.is_none()));
        assert_eq!(
            cache.ids.len(),
            cache.calls.len(),
            "ids of dropped calls go too"
        );
    }

    #[test]
    fn a_cache_full_of_calls_still_going_keeps_the_most_recently_used_half() {
        let going = going_call();
        let mut cache = overfull_cache(|_| going.clone());
        cache.trim();
        let kept = CACHED_CALLS / 2;
        assert_eq!(
            cache.calls.len(),
            kept,
            "half stays: a burst's calls are not all re-read"
        );
        let newest = CACHED_CALLS as i64;
        let oldest_kept = newest - kept as i64 + 1;
        assert!(
            (oldest_kept..=newest).all(|id| cache.calls.contains_key(&id)),
            "the calls used last are the ones kept"
        );
        assert_eq!(cache.ids.len(), kept, "ids of dropped calls go too");
    }
}
