//! The normalized vocabulary every provider parser produces and the rest of CallPop consumes.
//!
//! Nothing here knows a RingCentral or Ringotel field name: provider formats stay in their
//! modules, and the call logic, store, notifier and UI only see these types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::numbers::PhoneNumber;

/// Which phone system a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
pub enum Provider {
    /// RingCentral (RingEX) webhooks and REST API.
    #[serde(rename = "ringcentral")]
    RingCentral,
    /// Ringotel webhook integration.
    #[serde(rename = "ringotel")]
    Ringotel,
}

impl Provider {
    /// The name used in URLs, the store and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::RingCentral => "ringcentral",
            Provider::Ringotel => "ringotel",
        }
    }

    /// Reads the name written by [`Provider::as_str`].
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "ringcentral" => Some(Provider::RingCentral),
            "ringotel" => Some(Provider::Ringotel),
            _ => None,
        }
    }
}

/// What kind of information an event carries about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// RingCentral telephony-session event (the most detailed live source).
    TelephonySession,
    /// RingCentral detailed presence (`activeCalls`), used when telephony events are absent.
    Presence,
    /// A RingCentral call-log record fetched by backfill.
    CallLog,
    /// Ringotel `StartCallActivity`.
    RingotelStart,
    /// Ringotel `StopCallActivity`.
    RingotelStop,
    /// Ringotel `UpdateCallRecording`.
    RingotelRecording,
}

/// A leg's direction from that party's own point of view (RingCentral's "technical" direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LegDirection {
    /// The party receives the call.
    Inbound,
    /// The party places the call.
    Outbound,
}

impl LegDirection {
    /// Reads `Inbound`/`Outbound` in any letter case.
    pub fn parse(s: &str) -> Option<LegDirection> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("inbound") || s.eq_ignore_ascii_case("incoming") {
            Some(LegDirection::Inbound)
        } else if s.eq_ignore_ascii_case("outbound") || s.eq_ignore_ascii_case("outgoing") {
            Some(LegDirection::Outbound)
        } else {
            None
        }
    }
}

/// A leg's state, normalized from provider status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    /// Set up or ringing (`Setup`, `Proceeding`, presence `Ringing`, Ringotel start).
    Ringing,
    /// Talking (`Answered`, presence `CallConnected`).
    Connected,
    /// On hold or parked.
    Held,
    /// In voicemail or voicemail screening.
    Voicemail,
    /// Gone from the call (`Disconnected`, `Gone`, presence `NoCall`, Ringotel stop).
    Ended,
    /// A status code this version does not know (kept raw, changes nothing).
    Other,
}

impl LegState {
    /// True for states after which the leg takes no further part.
    pub fn is_terminal(self) -> bool {
        self == LegState::Ended
    }
}

/// A leg's status as reported, with its normalized state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegStatus {
    /// Normalized state.
    pub state: LegState,
    /// The provider's status code exactly as sent.
    pub code: String,
    /// The provider's reason (`BlindTransfer`, `Voicemail`, …), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a party that is `Gone`: the telephony session it moved to (RingCentral's
    /// `status.peerId.telephonySessionId`), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_session: Option<String>,
}

/// Reasons with which a leg leaves a call that carries on with someone else.
const HANDOVER_REASONS: &[&str] = &[
    "blindtransfer",
    "attendedtransfer",
    "rcctransfer",
    "dtmftransfer",
    "pickup",
    "takeover",
    "callflip",
    "callpark",
    "parklocation",
    "callswitch",
    "callredirected",
    "callerinputredirect",
];

impl LegStatus {
    /// A status as reported, with no peer session.
    pub fn new(state: LegState, code: impl Into<String>, reason: Option<String>) -> LegStatus {
        LegStatus {
            state,
            code: code.into(),
            reason,
            peer_session: None,
        }
    }

    /// True when the leg left this call for another telephony session (a pickup from
    /// elsewhere, a park, a call switched to another device): what is left of the call goes
    /// on under that session's own row, not this one.
    pub fn moved_to_another_session(&self, this_session: &str) -> bool {
        self.code.eq_ignore_ascii_case("gone")
            && self
                .peer_session
                .as_deref()
                .is_some_and(|peer| peer != this_session)
    }

    /// True when the leg ended by handing the call to another party (transfer, pickup, park…).
    pub fn is_handover(&self) -> bool {
        if self.code.eq_ignore_ascii_case("gone") {
            return true;
        }
        self.state == LegState::Ended
            && self
                .reason
                .as_deref()
                .map(|r| r.to_ascii_lowercase())
                .is_some_and(|r| HANDOVER_REASONS.contains(&r.as_str()))
    }
}

/// One side of a call as a provider describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The number, when one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<PhoneNumber>,
    /// Display name (caller ID name or the extension user's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The provider's extension id, when this side is one of the account's extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<String>,
}

/// The party (leg) an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// Provider leg id (RingCentral party `id`); synthesized when the provider sends none.
    pub id: String,
    /// True when the provider sent a real party id (false for seed-style payloads).
    #[serde(default)]
    pub has_provider_id: bool,
    /// The account extension this leg belongs to (RingCentral `extensionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<String>,
    /// The extension's short number (`101`, Ringotel `extension`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_number: Option<String>,
    /// The extension user's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Direction from this leg's own point of view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<LegDirection>,
}

impl Leg {
    /// True when the leg is one of the account's own extensions (a desk, not the PSTN).
    pub fn is_extension(&self) -> bool {
        self.extension_id.is_some() || self.extension_number.is_some()
    }

    /// True when this leg belongs to any of the given extension ids or numbers.
    pub fn matches_extension(&self, wanted: &[String]) -> bool {
        wanted.iter().any(|w| {
            self.extension_id.as_deref() == Some(w.as_str())
                || self.extension_number.as_deref() == Some(w.as_str())
        })
    }
}

/// A recording of the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// Provider recording id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where the recording can be fetched (may need provider credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One normalized fact about one leg of one call, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The phone system.
    pub provider: Provider,
    /// The call's identity (RingCentral `telephonySessionId`, Ringotel `call_id`).
    pub call_key: String,
    /// Which kind of provider event this came from.
    pub source: EventSource,
    /// The leg the event is about.
    pub leg: Leg,
    /// Provider ordering number (RingCentral `sequence`), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// When the reported state began.
    pub event_time: DateTime<Utc>,
    /// The calling side.
    #[serde(default)]
    pub from: Endpoint,
    /// The called side.
    #[serde(default)]
    pub to: Endpoint,
    /// The leg's status, when the event carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LegStatus>,
    /// The provider flagged this leg as a missed call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missed_call: bool,
    /// The leg rang as part of a queue or ring group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queue_call: bool,
    /// A recording of the call, when this event names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
    /// Provider-stated call start (Ringotel `call_start`, presence `startTime`, call log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_start: Option<DateTime<Utc>>,
    /// Provider-stated call end (Ringotel `call_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_end: Option<DateTime<Utc>>,
    /// Provider-stated talk time in seconds (Ringotel `call_duration`, call-log `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk_seconds: Option<i64>,
    /// Provider-stated outcome text (call-log `result`), kept for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The voicemail message id this call produced (call-log `message.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail_message_id: Option<String>,
}

/// A voicemail message; it names no call, so the store attaches it by extension, caller and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoicemailMessage {
    /// The phone system.
    pub provider: Provider,
    /// Provider message id.
    pub message_id: String,
    /// The mailbox's extension id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<String>,
    /// The mailbox's extension number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_number: Option<String>,
    /// Who left the message.
    #[serde(default)]
    pub from: Endpoint,
    /// When the message was created.
    pub created_at: DateTime<Utc>,
    /// Length of the recording in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// Where the audio can be fetched (needs provider credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
}

/// A subscription renewal reminder, for the subscription keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalReminder {
    /// The subscription that is about to expire.
    pub subscription_id: Option<String>,
    /// Seconds left before it expires, when the body says.
    pub expires_in: Option<i64>,
}

/// What a delivery means once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Facts about one or more calls.
    Calls(Vec<CallEvent>),
    /// A voicemail message.
    Voicemail(Box<VoicemailMessage>),
    /// A subscription renewal reminder.
    Reminder(RenewalReminder),
    /// Authentic but carries nothing CallPop uses (unknown event, message counters); kept raw.
    Other,
}

/// A parsed delivery: its identity for de-duplication and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDelivery {
    /// The phone system.
    pub provider: Provider,
    /// Identity for de-duplication (RingCentral `uuid`/`id`; Ringotel call, method and body hash).
    pub dedup_key: String,
    /// Identity of the event itself, whichever subscription or transport delivered it (a
    /// RingCentral telephony event: session, sequence and content), when it has one. Two
    /// subscriptions give the same event different `uuid`s; this key stores it once.
    pub content_key: Option<String>,
    /// Short label of the event type (`telephony`, `presence`, `StartCallActivity`, …).
    pub kind: String,
    /// When the provider says the event happened or was sent.
    pub event_time: Option<DateTime<Utc>>,
    /// The meaning.
    pub payload: Payload,
}

/// Where a delivery came from; decides, for one, whether it may pop up a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A live webhook delivery.
    Webhook,
    /// A live event over RingCentral's WebSocket (the same body as a webhook's), including
    /// the missed events a recovered session replays.
    WebSocket,
    /// Fetched from the provider's history after downtime.
    Backfill,
    /// Re-read from the store: `callpop events replay`, or the store's own rule ending calls
    /// whose end was never reported.
    Replay,
    /// On a desk: a change its hub streamed as it happened.
    Hub,
    /// On a desk: a change read while catching up with its hub after a disconnect (or while
    /// joining): history, never a popup of its own.
    HubCatchUp,
}

impl Origin {
    /// Sent by the phone system as it happened (a webhook or the WebSocket, or on a desk its
    /// hub's live stream of them): only these may pop up.
    pub fn is_live(self) -> bool {
        matches!(self, Origin::Webhook | Origin::WebSocket | Origin::Hub)
    }
}

/// A delivery ready for the store: parsed meaning plus what is kept of the request.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The parsed meaning.
    pub parsed: ParsedDelivery,
    /// Where it came from.
    pub origin: Origin,
    /// When CallPop received it.
    pub received_at: DateTime<Utc>,
    /// Request headers worth keeping (never credentials).
    pub headers: Vec<(String, String)>,
    /// The body as stored (secrets in it redacted).
    pub body: Vec<u8>,
    /// SHA-256 of the body as received, hex.
    pub body_sha256: String,
}

/// The call's direction from the dealership's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// A customer (or anyone outside) calls in.
    Inbound,
    /// A desk calls out.
    Outbound,
    /// Desk to desk.
    Internal,
    /// Not enough information yet.
    Unknown,
}

impl CallDirection {
    /// The name used in the store and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
            CallDirection::Internal => "internal",
            CallDirection::Unknown => "unknown",
        }
    }

    /// Reads the name written by [`CallDirection::as_str`].
    pub fn parse(s: &str) -> Option<CallDirection> {
        [
            CallDirection::Inbound,
            CallDirection::Outbound,
            CallDirection::Internal,
            CallDirection::Unknown,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// Where a call is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Ringing somewhere, nobody has answered yet.
    Ringing,
    /// Someone (or voicemail) is on the call.
    Connected,
    /// Over.
    Ended,
    /// Events carry no status (seed-style payloads).
    Unknown,
}

impl CallState {
    /// The name used in the store and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ringing => "ringing",
            CallState::Connected => "connected",
            CallState::Ended => "ended",
            CallState::Unknown => "unknown",
        }
    }

    /// Reads the name written by [`CallState::as_str`].
    pub fn parse(s: &str) -> Option<CallState> {
        [
            CallState::Ringing,
            CallState::Connected,
            CallState::Ended,
            CallState::Unknown,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// How a call turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// Somebody at the dealership (or the far end, for outbound calls) answered.
    Answered,
    /// An inbound or internal call that rang and nobody answered.
    Missed,
    /// Missed, and the caller reached voicemail.
    Voicemail,
    /// An outbound call the far end did not answer.
    NoAnswer,
    /// The phone system never reported the end: nothing was heard of the call for
    /// [`crate::calls::UNHEARD_RINGING`] while it rang, or [`crate::calls::UNHEARD_CONNECTED`]
    /// while connected. The store sets it; a real end arriving later replaces it.
    NoEndReported,
}

impl CallResult {
    /// The name used in the store, the CLI and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Answered => "answered",
            CallResult::Missed => "missed",
            CallResult::Voicemail => "voicemail",
            CallResult::NoAnswer => "no_answer",
            CallResult::NoEndReported => "no_end_reported",
        }
    }

    /// Reads the name written by [`CallResult::as_str`].
    pub fn parse(s: &str) -> Option<CallResult> {
        [
            CallResult::Answered,
            CallResult::Missed,
            CallResult::Voicemail,
            CallResult::NoAnswer,
            CallResult::NoEndReported,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One side of a call as shown to people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartySummary {
    /// The number as sent.
    pub raw: Option<String>,
    /// E.164 form, when readable.
    pub e164: Option<String>,
    /// Name, when known.
    pub name: Option<String>,
}

/// One extension's part in a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ExtensionPart {
    /// Provider extension id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub extension_id: Option<String>,
    /// Extension number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub extension_number: Option<String>,
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
    /// This extension's direction in the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub direction: Option<LegDirection>,
    /// It rang (or dialled) at this extension.
    pub rang: bool,
    /// This extension talked on the call.
    pub answered: bool,
    /// The extension's own talk time.
    pub talk_seconds: i64,
    /// The extension's latest state.
    pub state: Option<LegState>,
    /// How the call turned out for this desk, once it is over: `answered` when it talked, or
    /// when it first rang before a colleague answered (a ring group, a hunt); `missed` (or
    /// `voicemail`) when it did not answer and nobody answered the call, or another desk had
    /// answered before it first rang (a transfer it did not pick up); for the desk that
    /// placed a call, the call's result. Filters on an extension use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub outcome: Option<CallResult>,
}

impl ExtensionPart {
    /// This desk's outcome: the derived one, or for calls stored before it was kept, the best
    /// reading of the call's result (a transfer the desk missed then reads as answered).
    pub fn outcome_or(&self, call_result: Option<CallResult>) -> Option<CallResult> {
        self.outcome.or_else(|| match call_result? {
            _ if self.answered => Some(CallResult::Answered),
            result => Some(result),
        })
    }

    /// The label people know the extension by: its number, else its id.
    pub fn label(&self) -> Option<&str> {
        self.extension_number
            .as_deref()
            .or(self.extension_id.as_deref())
    }

    /// True when this part belongs to any of the given extension ids or numbers.
    pub fn matches_extension(&self, wanted: &[String]) -> bool {
        wanted.iter().any(|w| {
            self.extension_id.as_deref() == Some(w.as_str())
                || self.extension_number.as_deref() == Some(w.as_str())
        })
    }
}

/// The voicemail a call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallVoicemail {
    /// Provider message id.
    pub message_id: Option<String>,
    /// Length in seconds.
    pub seconds: Option<i64>,
    /// Where the audio is.
    pub url: Option<String>,
}

/// One call as the history shows it, derived from all of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The phone system.
    pub provider: Provider,
    /// The call's identity within the provider.
    pub call_key: String,
    /// From the dealership's side.
    pub direction: CallDirection,
    /// Where the call is now.
    pub state: CallState,
    /// How it turned out (set as soon as it is known).
    pub result: Option<CallResult>,
    /// Calling side.
    pub from: PartySummary,
    /// Called side (for inbound calls: the dealership line dialled).
    pub to: PartySummary,
    /// Extensions that rang, answered or placed the call, in order of involvement.
    pub extensions: Vec<ExtensionPart>,
    /// First sign of the call.
    pub started_at: DateTime<Utc>,
    /// When it was first answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from start to answer (or to the end, when never answered).
    pub ring_seconds: i64,
    /// Seconds of conversation, summed over every extension that talked.
    pub talk_seconds: i64,
    /// Recording location, when one exists.
    pub recording_url: Option<String>,
    /// Voicemail left by the caller.
    pub voicemail: Option<CallVoicemail>,
    /// Deliveries that contributed to this call.
    pub event_count: i64,
    /// Time of the newest event.
    pub last_event_at: DateTime<Utc>,
}
