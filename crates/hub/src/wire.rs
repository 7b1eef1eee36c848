//! The desk API's messages (JSON over HTTPS), and its version.
//!
//! Every request and answer carries [`PROTOCOL_HEADER`]; a side that meets another version
//! says which one must be updated instead of reading messages it may misunderstand. Within a
//! version fields may be added (readers ignore what they do not know); removing one or changing
//! what it means makes a new version.

use serde::{Deserialize, Serialize};

use callpop_core::model::{Call, Provider};

/// The version of the desk API this build speaks.
pub const PROTOCOL: u32 = 1;

/// The header naming the protocol version on every request and answer.
pub const PROTOCOL_HEADER: &str = "callpop-protocol";

/// The DNS-SD service type hubs announce over mDNS.
pub const SERVICE_TYPE: &str = "_callpop-hub._tcp.local.";

/// The TXT key carrying the hub's key fingerprint in its mDNS announcement.
pub const TXT_FINGERPRINT: &str = "fp";

/// The TXT key carrying the protocol version in the mDNS announcement.
pub const TXT_PROTOCOL: &str = "proto";

/// Routes of the desk API.
pub mod routes {
    /// `POST` [`super::PairStart`] → [`super::PairChallenge`].
    pub const PAIR_START: &str = "/v1/pair/start";
    /// `POST` [`super::PairFinish`] → [`super::PairDone`].
    pub const PAIR_FINISH: &str = "/v1/pair/finish";
    /// `GET ?after=SEQ&since=MS&limit=N` → [`super::FeedPage`].
    pub const FEED: &str = "/v1/feed";
    /// `GET` (Server-Sent Events, `Last-Event-ID` or `?after=SEQ`): each event a
    /// [`super::Change`] with its sequence as id.
    pub const STREAM: &str = "/v1/stream";
    /// `GET` → [`super::HubStatus`].
    pub const STATUS: &str = "/v1/status";
    /// `GET ?provider=P&key=K` → [`super::CallDeliveries`]: a call's raw deliveries, for the
    /// desk's detail view (a desk keeps call rows only).
    pub const CALL_DELIVERIES: &str = "/v1/calls/deliveries";
    /// `POST` → the desk leaves: its token stops working.
    pub const LEAVE: &str = "/v1/leave";
}

/// An error answer: a stable code for programs and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable name (`wrong_code`, `revoked`, `protocol`, …).
    pub error: String,
    /// What happened and what to do, in plain words.
    pub message: String,
}

/// A desk's first pairing message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairStart {
    /// The code's public part (which pending pairing).
    pub code_id: String,
    /// The name the desk asks to be known by.
    pub desk_name: String,
    /// Its SPAKE2 message, hex.
    pub message: String,
    /// The CallPop version of the desk.
    pub version: String,
}

/// The hub's answer: its SPAKE2 message and its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairChallenge {
    /// Names this exchange in [`PairFinish`].
    pub attempt: String,
    /// The hub's SPAKE2 message, hex.
    pub message: String,
    /// The hub's proof over the exchange, hex.
    pub proof: String,
    /// The hub's name, for the desk to show.
    pub hub_name: String,
    /// The name the desk will have (the one given with the code on the hub wins over the
    /// desk's own); part of both proofs.
    pub desk_name: String,
}

/// The desk's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairFinish {
    /// From [`PairChallenge::attempt`].
    pub attempt: String,
    /// The desk's proof over the exchange, hex.
    pub proof: String,
}

/// Paired: the desk's token (the hub keeps only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairDone {
    /// The desk's bearer token for every later request.
    pub token: String,
    /// The name the hub gave the desk (its own, or with a number added if taken).
    pub desk_name: String,
    /// The hub's name.
    pub hub_name: String,
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    /// Changes after the position asked for, oldest first.
    pub changes: Vec<Change>,
    /// Where the next page starts.
    pub next: i64,
    /// The hub's newest sequence number when the page was read.
    pub latest: i64,
    /// True when the position asked for is older than what the hub keeps: the desk must
    /// read its window again from the start (`after=0`).
    pub resync: bool,
}

/// One record's latest change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Its place in the hub's feed.
    pub seq: i64,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
}

/// A record of the feed, by kind. Contacts, names, notes and call-backs join as new kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A call's whole row.
    Call {
        /// The row.
        call: Box<Call>,
    },
    /// A call that was deleted.
    CallRemoved {
        /// The call's phone system.
        provider: Provider,
        /// The provider's key of the call.
        call_key: String,
    },
    /// A kind this desk does not know (a newer hub's): skipped, its position still counts.
    #[serde(other)]
    Unknown,
}

/// A call's raw deliveries as the hub stored them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallDeliveries {
    /// Newest first, at most 200.
    pub deliveries: Vec<RawDelivery>,
}

/// One stored delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawDelivery {
    /// Its id at the hub.
    pub id: i64,
    /// The phone system.
    pub provider: Provider,
    /// The event kind label.
    pub kind: String,
    /// The de-duplication key.
    pub dedup_key: String,
    /// When the hub received it.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// When the provider says it happened.
    pub event_time: Option<chrono::DateTime<chrono::Utc>>,
    /// SHA-256 of the body as received.
    pub body_sha256: String,
    /// The kept request headers (JSON object).
    pub headers: serde_json::Value,
    /// The body as stored (UTF-8; the bodies CallPop stores are JSON).
    pub body: String,
    /// How often it was delivered again.
    pub redeliveries: i64,
}

/// What a desk shows of its hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubStatus {
    /// The hub's name.
    pub name: String,
    /// Its CallPop version.
    pub version: String,
    /// Whether the hub is receiving calls (its sources are up).
    pub receiving: bool,
    /// The hub's own one-line status ("Receiving calls", "Not receiving calls: …").
    pub headline: String,
    /// The desk's name as the hub knows it.
    pub desk_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_call_reads_back_and_unknown_fields_are_ignored() {
        let change = Change {
            seq: 7,
            record: Record::CallRemoved {
                provider: Provider::RingCentral,
                call_key: "s-1".into(),
            },
        };
        let mut newer = serde_json::to_value(&change).expect("json");
        assert_eq!(newer["kind"], "call_removed");
        assert_eq!(newer["seq"], 7);
        newer["added_later"] = serde_json::json!(true);
        assert_eq!(
            serde_json::from_value::<Change>(newer).expect("read"),
            change
        );
        let later = serde_json::json!({"seq": 8, "kind": "contact", "contact": {"name": "Dana"}});
        assert_eq!(
            serde_json::from_value::<Change>(later).expect("read"),
            Change {
                seq: 8,
                record: Record::Unknown
            }
        );
    }
}
