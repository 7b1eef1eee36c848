//! Keeping one live delivery, whichever way it came (a webhook request or a RingCentral
//! WebSocket frame): stored in one transaction, or quarantined when it could not be parsed,
//! with the health board's counters and storage state kept true, and renewal reminders handed
//! to the subscription keeper. The caller turns the [`Kept`] outcome into its own answer (an
//! HTTP status for a webhook; nothing for a WebSocket frame).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::health::{Health, StorageTicket};
use callpop_core::model::{Delivery, Origin, ParsedDelivery, Payload, Provider, RenewalReminder};
use callpop_core::wire::ParseError;
use callpop_store::writer::StoreWriter;
use callpop_store::{IngestOutcome, QuarantineEntry, StoreError};

/// What became of a delivery.
#[derive(Debug)]
pub enum Kept {
    /// Stored for the first time.
    Stored,
    /// Already stored (the same id, or the same event through another subscription).
    Duplicate,
    /// Unusable, kept in quarantine; the parse error says why.
    Quarantined(ParseError),
    /// The history refused it (too many events for one call, …); nothing else to do.
    Refused(String),
    /// A bug in CallPop stopped it (it may be in quarantine).
    Internal(String),
    /// The history cannot be written now; the sender should try again later.
    Unavailable,
}

/// Where live deliveries are kept; cheap to clone.
#[derive(Clone)]
pub struct DeliverySink {
    writer: StoreWriter,
    health: Arc<Health>,
    reminders: Option<mpsc::Sender<RenewalReminder>>,
    clock: callpop_clock::Clock,
}

/// A delivery as it arrived, before or after parsing.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Who sent it.
    pub provider: Provider,
    /// How it came.
    pub origin: Origin,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// What is kept of its request (never credentials).
    pub headers: Vec<(String, String)>,
    /// The body as kept (a Ringotel body without its token).
    pub body: Vec<u8>,
    /// SHA-256 of the body as received, hex.
    pub sha256: String,
}

impl DeliverySink {
    /// A sink on the store writer.
    pub fn new(
        writer: StoreWriter,
        health: Arc<Health>,
        reminders: Option<mpsc::Sender<RenewalReminder>>,
        clock: callpop_clock::Clock,
    ) -> DeliverySink {
        DeliverySink {
            writer,
            health,
            reminders,
            clock,
        }
    }

    /// The health board the counters go to.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Stores a parsed delivery, or quarantines the body it could not be parsed from.
    pub async fn keep(&self, arrival: Arrival, parsed: Result<ParsedDelivery, ParseError>) -> Kept {
        match parsed {
            Ok(parsed) => {
                let delivery = Delivery {
                    parsed,
                    origin: arrival.origin,
                    received_at: arrival.received_at,
                    headers: arrival.headers,
                    body: arrival.body,
                    body_sha256: arrival.sha256,
                };
                self.store(delivery).await
            }
            Err(e) => self.quarantine(arrival, e).await,
        }
    }

    async fn store(&self, delivery: Delivery) -> Kept {
        let provider = delivery.parsed.provider;
        let reminder = match &delivery.parsed.payload {
            Payload::Reminder(reminder) => Some(reminder.clone()),
            _ => None,
        };
        let summary = summarize(&delivery.parsed);
        let ticket = self.health.storage_ticket();
        match self.writer.ingest(delivery).await {
            Ok(IngestOutcome::Stored { .. }) => {
                self.health.storage_succeeded(ticket);
                self.health.provider(provider, |c| {
                    c.accepted += 1;
                    c.last_accepted_at = Some(self.clock.now());
                });
                tracing::debug!(provider = provider.as_str(), %summary, "delivery stored");
                if let (Some(reminder), Some(tx)) = (reminder, &self.reminders) {
                    if tx.try_send(reminder).is_err() {
                        tracing::warn!("subscription keeper is busy; renewal reminder dropped (the renewal timer still runs)");
                    }
                }
                Kept::Stored
            }
            Ok(IngestOutcome::Duplicate {
                same_body, counted, ..
            }) => {
                // Recognised from the stored copy while the history cannot be written: nothing
                // was written, so the storage problem is not over.
                if counted {
                    self.health.storage_succeeded(ticket);
                }
                self.health.provider(provider, |c| c.duplicates += 1);
                if !same_body {
                    tracing::warn!(provider = provider.as_str(), %summary,
                        "re-delivery with a known id but a different body; kept the first, ignored this one");
                }
                Kept::Duplicate
            }
            Err(e) => self.not_stored(provider, ticket, &e),
        }
    }

    async fn quarantine(&self, arrival: Arrival, reason: ParseError) -> Kept {
        let provider = arrival.provider;
        let entry = QuarantineEntry {
            provider,
            received_at: arrival.received_at,
            reason: reason.to_string(),
            headers: arrival.headers,
            body: arrival.body,
            body_sha256: arrival.sha256,
        };
        let ticket = self.health.storage_ticket();
        match self.writer.quarantine(entry).await {
            Ok(id) => {
                // A commit went through: the history is writable again.
                self.health.storage_succeeded(ticket);
                self.health.provider(provider, |c| c.quarantined += 1);
                tracing::warn!(provider = provider.as_str(), quarantine_id = id, %reason,
                    "unusable delivery quarantined");
                Kept::Quarantined(reason)
            }
            Err(e) => self.not_stored(provider, ticket, &e),
        }
    }

    /// Accounts for a delivery the writer did not store.
    fn not_stored(&self, provider: Provider, ticket: StorageTicket, e: &StoreError) -> Kept {
        match e {
            StoreError::Internal { quarantine_id, .. } => {
                tracing::error!(provider = provider.as_str(), error = %e, "delivery not stored");
                if quarantine_id.is_some() {
                    self.health.provider(provider, |c| c.quarantined += 1);
                }
                Kept::Internal(e.to_string())
            }
            StoreError::Refused { quarantine_id, .. } => {
                // The history took the write (the quarantine): storage is fine.
                if quarantine_id.is_some() {
                    self.health.storage_succeeded(ticket);
                    self.health.provider(provider, |c| c.quarantined += 1);
                }
                tracing::warn!(provider = provider.as_str(), error = %e, "delivery refused");
                Kept::Refused(e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "delivery not stored");
                self.health.storage_failed(ticket, storage_problem(e));
                Kept::Unavailable
            }
        }
    }
}

fn summarize(p: &ParsedDelivery) -> String {
    format!("{} {} ({})", p.provider.as_str(), p.kind, p.dedup_key)
}

/// What the health page says about a failed write: `busy: <why>` while another program or
/// CallPop command holds the history's lock (it will pass), `unwritable: <why>` when the disk
/// or file refused it, else the error itself.
fn storage_problem(e: &StoreError) -> String {
    match (e, e.storage_reason()) {
        (StoreError::Busy(_), Some(reason)) => format!("busy: {reason}"),
        (_, Some(reason)) => format!("unwritable: {reason}"),
        (_, None) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_history_reads_as_busy_not_unwritable() {
        let busy = StoreError::Busy("callpop.db: database is locked".into());
        assert!(
            storage_problem(&busy).starts_with("busy: "),
            "{}",
            storage_problem(&busy)
        );
        let full = StoreError::Unwritable("disk full".into());
        assert_eq!(storage_problem(&full), "unwritable: disk full");
    }
}
