//! A faithful local RingCentral platform, on 127.0.0.1, for CallPop's tests and demo.
//!
//! It implements what CallPop uses, with the behaviours integrations trip over (docs/PROTOCOL.md
//! §1–§4.5, §8): the JWT grant; subscription create / list / get / update (renew) / renew /
//! delete with the real validation handshake against the webhook address on create (SUB-520 /
//! SUB-521 / SUB-525 when it fails), `expiresIn` limits (CMN-101), the per-user subscription
//! limit (SUB-505), 404 CMN-102 for unknown ids, expiry, an empty-body PUT renewing with the
//! 7-day default; deliveries of telephony-session, voicemail and renewal-reminder events with
//! the verification token, no retries, blacklisting after failing deliveries; rate-limit groups
//! with 429 + `Retry-After` (each request during the penalty restarts it); the account call log
//! with its lag, `dateFrom`/`dateTo` and paging; refresh-token grants within one OAuth session;
//! the WebSocket transport (wstoken, `ConnectionDetails`, one subscription per connection,
//! pings, idle and absolute timeouts, session recovery with `wsc` and its buffer: see
//! `websocket.rs`). Time comes from a [`Clock`], so a simulated week can pass in seconds.

mod calls;
mod messages;
mod server;
mod websocket;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use callpop_clock::Clock;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

pub use calls::{CallOutcome, ScriptedCall};
pub use messages::{silent_wav, FakeVoicemail};

/// The fake's account.
pub const ACCOUNT_ID: &str = "809646016";
/// The extension the JWT belongs to (the subscription owner).
pub const OWNER_EXTENSION_ID: &str = "62264425016";

/// Rate-limit groups, as RingCentral defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// 50/min.
    Light,
    /// 40/min.
    Medium,
    /// 10/min.
    Heavy,
    /// 5/min.
    Auth,
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The platform's clock (share it with CallPop through its environment variable).
    pub clock: Clock,
    /// App client id.
    pub client_id: String,
    /// App client secret.
    pub client_secret: String,
    /// The user's JWT.
    pub jwt: String,
    /// Access-token lifetime, seconds.
    pub token_ttl: i64,
    /// Longest subscription lifetime accepted (longer: CMN-101).
    pub max_expires_in: i64,
    /// Subscriptions per user for this app (more: SUB-505).
    pub subscription_limit: usize,
    /// A subscription whose deliveries keep failing this long is blacklisted.
    pub blacklist_after: Duration,
    /// Delay before an ended call appears in the call log.
    pub call_log_lag: Duration,
    /// Requests per minute per group.
    pub limits: BTreeMap<Group, u32>,
    /// Refuse `http://` webhook addresses (SUB-523), as production does.
    pub require_https: bool,
    /// Refresh-token lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// The app has the "WebSocket Subscriptions" permission (without it a WebSocket
    /// subscription request is refused with SUB-528).
    pub websocket_permission: bool,
    /// The app has the "WebSocket" permission `wstoken` needs (without it: 403
    /// InsufficientPermissions, CMN-401).
    pub wstoken_permission: bool,
    /// Lifetime of a `ws_access_token`, seconds (single use within it).
    pub ws_token_ttl: i64,
    /// `idleTimeout`: a connection the client sent nothing on this long is closed (WSG-902).
    pub ws_idle_timeout: i64,
    /// `absoluteTimeout`: every connection is closed after this long (WSG-903).
    pub ws_absolute_timeout: i64,
    /// `recoveryTimeout`: how long after a drop the session can be recovered with `wsc`.
    pub ws_recovery_timeout: i64,
    /// `recoveryBufferSize`: the most events replayed on a recovery (the most recent).
    pub ws_recovery_buffer: usize,
    /// How often the server pings (wall time).
    pub ws_ping_every: StdDuration,
    /// How long a ping waits for its pong before the connection is closed (wall time; 10 s).
    pub ws_pong_deadline: StdDuration,
}

impl FakeConfig {
    /// Defaults matching RingCentral's documented numbers.
    pub fn new(clock: Clock) -> FakeConfig {
        FakeConfig {
            clock,
            client_id: "fake-client-id".into(),
            client_secret: "fake-client-secret".into(),
            jwt: "fake.jwt.credential".into(),
            token_ttl: 3600,
            max_expires_in: 315_360_000,
            subscription_limit: 30,
            blacklist_after: Duration::minutes(10),
            call_log_lag: Duration::seconds(20),
            limits: BTreeMap::from([
                (Group::Light, 50),
                (Group::Medium, 40),
                (Group::Heavy, 10),
                (Group::Auth, 5),
            ]),
            require_https: false,
            refresh_token_ttl: 604_800,
            websocket_permission: true,
            wstoken_permission: true,
            ws_token_ttl: 30,
            ws_idle_timeout: 1800,
            ws_absolute_timeout: 86_400,
            ws_recovery_timeout: 180,
            ws_recovery_buffer: 100,
            ws_ping_every: StdDuration::from_secs(20),
            ws_pong_deadline: StdDuration::from_secs(10),
        }
    }
}

/// A subscription as the fake keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSubscription {
    /// Id.
    pub id: String,
    /// Active or Blacklisted.
    pub status: String,
    /// Filters with ids substituted.
    pub event_filters: Vec<String>,
    /// Webhook address.
    pub address: String,
    /// Verification token sent with deliveries.
    pub verification_token: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expires.
    pub expires_at: DateTime<Utc>,
    /// When deliveries started failing (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was blacklisted.
    pub blacklisted_at: Option<DateTime<Utc>>,
    /// Why.
    pub blacklisted_reason: Option<String>,
    /// Last renewal reminder sent.
    pub last_reminder: Option<DateTime<Utc>>,
}

/// Counters for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Token grants issued.
    pub tokens: u64,
    /// Subscriptions created.
    pub created: u64,
    /// Renewals (PUT or POST /renew).
    pub renewed: u64,
    /// Deletions.
    pub deleted: u64,
    /// Handshakes that failed.
    pub failed_handshakes: u64,
    /// Deliveries answered with 2xx.
    pub delivered: u64,
    /// Deliveries that failed.
    pub failed_deliveries: u64,
    /// Renewal reminders delivered.
    pub reminders: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests received during a penalty (they restart it).
    pub during_penalty: u64,
    /// Requests sent before a `Retry-After` had passed (a client that ignores it).
    pub ignored_retry_after: u64,
    /// Subscriptions blacklisted.
    pub blacklisted: u64,
    /// Voicemail audio served.
    pub media_downloads: u64,
    /// Call-log pages read (backfills).
    pub call_log_reads: u64,
    /// Refresh-token grants (the OAuth session kept).
    pub refreshes: u64,
    /// WebSocket tokens issued.
    pub ws_tokens: u64,
    /// WebSocket connections opened.
    pub ws_connections: u64,
    /// The most WebSocket connections open at once.
    pub ws_most_open: u64,
    /// WebSocket subscriptions created (or replaced).
    pub ws_subscriptions: u64,
    /// WebSocket subscription requests refused for the missing permission.
    pub ws_refused: u64,
    /// Events sent over WebSocket (live and replayed).
    pub ws_delivered: u64,
    /// Events replayed by recoveries.
    pub ws_replayed: u64,
    /// Recoveries with `wsc` that kept the session.
    pub ws_recovered: u64,
    /// Recoveries with `wsc` that failed (too late, another OAuth session, unknown).
    pub ws_recovery_failed: u64,
    /// Heartbeats answered.
    pub ws_heartbeats: u64,
    /// Connections closed for idleness (WSG-902).
    pub ws_idle_closed: u64,
    /// Connections closed at the absolute timeout (WSG-903).
    pub ws_absolute_closed: u64,
    /// Connections closed because a ping had no pong in time.
    pub ws_pong_missed: u64,
    /// Events sent into a frozen (dead) connection: lost unless the call log has them.
    pub ws_lost: u64,
}

/// A telephony event as the fake sent it, for latency measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct SentEvent {
    /// `telephonySessionId`.
    pub session: String,
    /// `sequence`.
    pub sequence: i64,
    /// `webhook` or `websocket`.
    pub transport: &'static str,
    /// When it left the fake (wall clock, UNIX seconds).
    pub at: f64,
}

/// The most sent events remembered.
const SENT_KEPT: usize = 100_000;

/// Remembers that a telephony event body (a notification's `body`) was just sent.
pub(crate) fn note_sent(s: &mut State, transport: &'static str, body: &Value) {
    let (Some(session), Some(sequence)) = (
        body.get("telephonySessionId").and_then(Value::as_str),
        body.get("sequence").and_then(Value::as_i64),
    ) else {
        return;
    };
    if s.sent.len() >= SENT_KEPT {
        s.sent.drain(..SENT_KEPT / 2);
    }
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    s.sent.push(SentEvent {
        session: session.to_string(),
        sequence,
        transport,
        at,
    });
}

/// An access token and the OAuth session it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessToken {
    pub expires_at: DateTime<Utc>,
    pub session: u64,
}

/// One event waiting to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub at: DateTime<Utc>,
    /// Which filter kind it needs: `telephony` or `voicemail`.
    pub kind: &'static str,
    pub body: Value,
    pub event_path: String,
}

/// A call-log record and when it becomes visible.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Visible from.
    pub available_at: DateTime<Utc>,
    /// Start time (the filter key).
    pub start: DateTime<Utc>,
    /// The record as the API returns it.
    pub record: Value,
}

#[derive(Default)]
pub(crate) struct RateState {
    /// Request times in the current window.
    pub hits: Vec<DateTime<Utc>>,
    pub penalty_until: Option<DateTime<Utc>>,
}

pub(crate) struct State {
    pub config: FakeConfig,
    pub tokens: HashMap<String, AccessToken>,
    /// Refresh tokens: their OAuth session and expiry (each is spent by its use).
    pub refresh_tokens: HashMap<String, (u64, DateTime<Utc>)>,
    /// The WebSocket side.
    pub ws: websocket::WsState,
    /// Telephony events sent, with when.
    pub sent: Vec<SentEvent>,
    /// The `dateFrom` of every call-log read.
    pub call_log_reads: Vec<DateTime<Utc>>,
    pub subscriptions: BTreeMap<String, FakeSubscription>,
    pub pending: Vec<PendingEvent>,
    pub log: Vec<LogEntry>,
    pub rates: HashMap<Group, RateState>,
    pub storms: HashMap<Group, (DateTime<Utc>, i64)>,
    /// When each group may be asked again after a 429 (to catch clients ignoring it).
    pub retry_after_until: HashMap<Group, DateTime<Utc>>,
    pub stats: Stats,
    pub counter: u64,
    /// Voicemail in the message store, by message id.
    pub voicemails: HashMap<String, messages::FakeVoicemail>,
}

impl State {
    pub fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

/// A running fake platform.
#[derive(Clone)]
pub struct FakePlatform {
    pub(crate) state: Arc<Mutex<State>>,
    url: String,
    clock: Clock,
}

impl FakePlatform {
    /// Starts the platform on 127.0.0.1 (a free port) inside the current Tokio runtime.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakePlatform> {
        FakePlatform::start_on("127.0.0.1:0", config).await
    }

    /// Starts the platform on a given address.
    pub async fn start_on(addr: &str, config: FakeConfig) -> std::io::Result<FakePlatform> {
        callpop_ringcentral::install_crypto_provider();
        let clock = config.clock;
        let state = Arc::new(Mutex::new(State {
            config,
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            ws: websocket::WsState::default(),
            sent: Vec::new(),
            call_log_reads: Vec::new(),
            subscriptions: BTreeMap::new(),
            pending: Vec::new(),
            log: Vec::new(),
            rates: HashMap::new(),
            storms: HashMap::new(),
            retry_after_until: HashMap::new(),
            stats: Stats::default(),
            counter: 0,
            voicemails: HashMap::new(),
        }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let platform = FakePlatform { state, url, clock };
        let app = server::router(platform.clone());
        // Frames go out as soon as they are written, as a production gateway sends them:
        // Nagle's algorithm would hold a small frame back until the last one is acknowledged.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake RingCentral server stopped");
            }
        });
        tokio::spawn(calls::delivery_loop(platform.clone()));
        Ok(platform)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Base URL (use as CallPop's RingCentral server).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The platform clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The credentials CallPop must use.
    pub fn credentials(&self) -> (String, String, String) {
        let s = self.lock();
        (
            s.config.client_id.clone(),
            s.config.client_secret.clone(),
            s.config.jwt.clone(),
        )
    }

    /// Every subscription the platform holds.
    pub fn subscriptions(&self) -> Vec<FakeSubscription> {
        self.lock().subscriptions.values().cloned().collect()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Every call-log record (visible or not yet).
    pub fn call_log(&self) -> Vec<LogEntry> {
        self.lock().log.clone()
    }

    /// Answers every request of `group` with 429 (`Retry-After: retry_after`) until `until`.
    pub fn storm(&self, group: Group, until: DateTime<Utc>, retry_after: i64) {
        self.lock().storms.insert(group, (until, retry_after));
    }

    /// Changes how the platform behaves from now on.
    pub fn configure(&self, change: impl FnOnce(&mut FakeConfig)) {
        change(&mut self.lock().config);
    }

    /// Blacklists a subscription now (as after failing deliveries).
    pub fn blacklist(&self, id: &str, reason: &str) {
        let now = self.clock.now();
        let mut s = self.lock();
        if let Some(sub) = s.subscriptions.get_mut(id) {
            sub.status = "Blacklisted".into();
            sub.blacklisted_at = Some(now);
            sub.blacklisted_reason = Some(reason.into());
        }
        s.stats.blacklisted += 1;
    }

    /// Adds a subscription directly (as if created earlier, e.g. by an older CallPop).
    pub fn insert_subscription(&self, sub: FakeSubscription) {
        self.lock().subscriptions.insert(sub.id.clone(), sub);
    }

    /// Schedules a scripted call: its events are delivered at their times and its record
    /// appears in the call log after it ends.
    pub fn schedule(&self, call: ScriptedCall) {
        calls::schedule(self, call);
    }

    /// Refuses WebSocket connections (503 at the upgrade) until `until`, as a network or
    /// gateway outage would.
    pub fn ws_outage_until(&self, until: DateTime<Utc>) {
        self.lock().ws.outage_until = Some(until);
    }

    /// Cuts every WebSocket connection without a closing handshake (a network drop): the
    /// sessions stay recoverable for the recovery timeout.
    pub fn drop_ws_connections(&self) {
        websocket::drop_all(self);
    }

    /// Silences every WebSocket connection with its socket left open (a dead link nobody has
    /// noticed yet): events sent to it are lost; the gateway lets the session go after the
    /// pong deadline.
    pub fn freeze_ws_connections(&self) {
        websocket::freeze_all(self);
    }

    /// Where each call-log read started (`dateFrom`), in order.
    pub fn call_log_reads(&self) -> Vec<DateTime<Utc>> {
        self.lock().call_log_reads.clone()
    }

    /// The telephony events sent so far (webhook and WebSocket), with when they left.
    pub fn sent_events(&self) -> Vec<SentEvent> {
        self.lock().sent.clone()
    }

    /// WebSocket connections open now.
    pub fn ws_open(&self) -> usize {
        self.lock().ws.open()
    }

    /// The WebSocket subscriptions live now (on open connections), by id.
    pub fn ws_subscriptions(&self) -> Vec<String> {
        self.lock().ws.live_subscriptions()
    }

    /// Puts a voicemail into an extension's mailbox, as RingCentral serves it.
    pub fn add_voicemail(
        &self,
        extension_id: &str,
        message_id: &str,
        audio: Vec<u8>,
        seconds: i64,
    ) {
        self.lock().voicemails.insert(
            message_id.to_string(),
            FakeVoicemail {
                extension_id: extension_id.to_string(),
                audio,
                seconds,
            },
        );
    }
}
