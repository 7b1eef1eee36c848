//! RingCentral over WebSocket: CallPop opens the connection, so no public URL, tunnel or
//! handshake is needed and nothing can be blacklisted. One engine task owns the one connection
//! of this install (RingCentral limits OAuth sessions per user and app, so a reconnect closes
//! the old socket before it opens a new one):
//!
//! - connect: a fresh single-use token, then the gateway's `ConnectionDetails` (its `wsc`
//!   token and limits), then one subscription with the configured event filters;
//! - every `ServerNotification` goes through the webhook parser and the same
//!   [`DeliverySink`] as a webhook delivery (stored once, then popups);
//! - staying up: pings are answered as they are read; a `Heartbeat` goes after 30 s without
//!   frames, and at least every third of the idle timeout (pings do not count as activity);
//! - after a drop, an idle or absolute timeout (WSG-902, WSG-903): reconnect with backoff and
//!   jitter and recover the session with `wsc` while its recovery timeout lasts (missed events
//!   are replayed); when recovery fails, comes too late, or the replay filled the whole
//!   recovery buffer (older events were dropped), subscribe again and backfill the gap from the
//!   call log, which stores nothing twice.
//!
//! Timeouts follow the engine's clock, so a simulated week passes in seconds in tests.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backfill::BackfillRequest;
use crate::deliveries::{Arrival, DeliverySink};
use crate::health::{Health, Part, PartState};
use callpop_clock::Clock;
use callpop_core::model::{Origin, Provider};
use callpop_core::numbers::Country;
use callpop_core::Secret;
use callpop_ringcentral::api::{ApiError, Platform};
use callpop_ringcentral::websocket::{
    self as ws, Connection, ConnectionDetails, Incoming, Recovery,
};

/// A `Heartbeat` goes after this long without a frame from the server.
const QUIET_BEFORE_HEARTBEAT: Duration = Duration::seconds(30);
/// How long opening a connection (TCP, TLS, upgrade, `ConnectionDetails`) may take (wall).
const OPEN_TIMEOUT: StdDuration = StdDuration::from_secs(15);
/// How long the subscription request may wait for its answer.
const SUBSCRIBE_TIMEOUT: Duration = Duration::seconds(30);
/// Tokens come from the Auth rate group (5 a minute, shared with sign-ins): at most one
/// this often, so reconnecting can never lock CallPop out of signing in.
const TOKEN_SPACING: Duration = Duration::seconds(15);
/// Events read but not yet stored, at most (the reader waits beyond it).
const INGEST_QUEUE: usize = 10_000;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::seconds(60);
/// How long CallPop waits before asking again when the app lacks the permission or the
/// credentials were refused (settings changes restart the engine sooner).
const RECHECK_REFUSED: Duration = Duration::hours(1);
/// A gap is backfilled from a little before the drop (events in flight when it dropped).
const GAP_MARGIN: Duration = Duration::minutes(1);

/// What the WebSocket task reports to the transport choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsState {
    /// Starting, or (re)connecting.
    Connecting,
    /// Subscribed: RingCentral sends events over the WebSocket.
    Subscribed,
    /// Down and reconnecting (events are recovered or backfilled once it is back).
    Reconnecting,
    /// The app lacks the WebSocket subscriptions permission.
    PermissionMissing,
    /// Refused for another reason retrying soon cannot fix (credentials).
    Refused,
}

/// The console's name for the permission the app needs (RingCentral's developer console,
/// app settings → App permissions).
pub const PERMISSION_NAME: &str = "WebSocket Subscriptions";

/// Asks the running task for something.
#[derive(Clone)]
pub struct WsHandle {
    nudge: mpsc::Sender<()>,
    state: watch::Receiver<WsState>,
}

impl WsHandle {
    /// Try now instead of at the next scheduled attempt (the machine woke up, settings).
    pub fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Follows the task's state.
    pub fn watch(&self) -> watch::Receiver<WsState> {
        self.state.clone()
    }
}

/// The WebSocket part of the engine.
pub struct WebSocketTask {
    /// The RingCentral client (tokens).
    pub platform: Arc<Platform>,
    /// Where events are kept.
    pub sink: DeliverySink,
    /// Health board.
    pub health: Arc<Health>,
    /// Where gaps are reported.
    pub backfill: mpsc::Sender<BackfillRequest>,
    /// Event filters to subscribe to.
    pub event_filters: Vec<String>,
    /// Country for reading national numbers.
    pub country: Country,
    /// The engine's clock.
    pub clock: Clock,
    /// Where read events go to be stored (set by the task itself while it runs; `None` to
    /// build one).
    pub(crate) ingest: Option<mpsc::Sender<Ingest>>,
}

/// An event read from the WebSocket, on its way to the store.
pub(crate) type Ingest = (
    Arrival,
    Result<callpop_core::model::ParsedDelivery, callpop_core::wire::ParseError>,
);

/// The session this install keeps across connections.
#[derive(Default)]
struct Session {
    /// The newest `wsc` token and its sequence.
    wsc: Option<(Secret, i64)>,
    /// Seconds after a drop during which `wsc` recovers the session.
    recovery_timeout: i64,
    /// When the connection that was subscribed went down (the start of the gap).
    dropped_at: Option<DateTime<Utc>>,
    /// The last token request (they are spaced).
    last_token_at: Option<DateTime<Utc>>,
}

/// How a live connection ended.
enum Ended {
    Shutdown,
    /// Dropped or closed by the server: reconnect (and recover).
    Dropped(String),
    /// The subscription was refused.
    Refused(Refusal),
}

/// A refused subscription request.
struct Refusal {
    status: u16,
    code: String,
    message: String,
    /// The app lacks the WebSocket subscriptions permission.
    permission: bool,
}

/// Why connecting failed, and when to try again.
struct Failure {
    error: ApiError,
    retry_at: DateTime<Utc>,
}

impl WebSocketTask {
    /// Starts the task; it runs until `shutdown`.
    pub fn start(self, shutdown: CancellationToken) -> (WsHandle, tokio::task::JoinHandle<()>) {
        let (nudge, nudges) = mpsc::channel(1);
        let (state_tx, state) = watch::channel(WsState::Connecting);
        let task = tokio::spawn(self.run(nudges, state_tx, shutdown));
        (WsHandle { nudge, state }, task)
    }

    fn report(&self, state: PartState, detail: impl Into<String>, fix: Option<&str>) {
        self.health
            .set_part_fixed_in(Part::Websocket, state, detail, fix);
    }

    async fn run(
        mut self,
        mut nudges: mpsc::Receiver<()>,
        state: watch::Sender<WsState>,
        shutdown: CancellationToken,
    ) {
        // Events are stored by a worker of their own, in arrival order: the reading loop never
        // waits for the disk, so pings are answered and heartbeats sent on time even while
        // the history is slow (busy with a backfill, a slow fsync).
        let (ingest, queue) = mpsc::channel(INGEST_QUEUE);
        let worker = tokio::spawn(store_events(self.sink.clone(), queue));
        self.ingest = Some(ingest);
        let mut session = Session {
            recovery_timeout: 180,
            ..Session::default()
        };
        let mut failures: u32 = 0;
        self.report(PartState::Connecting, "Connecting to RingCentral…", None);
        loop {
            let _ = state.send(if session.dropped_at.is_some() {
                WsState::Reconnecting
            } else {
                WsState::Connecting
            });
            let opened = tokio::select! {
                _ = shutdown.cancelled() => break,
                opened = self.open(&mut session) => opened,
            };
            let retry_at = match opened {
                Ok((connection, details)) => {
                    failures = 0;
                    match self
                        .live(connection, details, &mut session, &state, &shutdown)
                        .await
                    {
                        Ended::Shutdown => break,
                        Ended::Dropped(why) => {
                            tracing::info!(%why, "RingCentral WebSocket closed; reconnecting");
                            self.report(
                                PartState::Reconnecting,
                                format!("The connection to RingCentral closed ({why}); reconnecting. Calls meanwhile are recovered."),
                                None,
                            );
                            // Straight back: the session is recoverable only for a while.
                            self.clock.now() + jitter(Duration::milliseconds(500))
                        }
                        Ended::Refused(e) => {
                            let refused = self.refused(&e, &state);
                            self.clock.now() + refused
                        }
                    }
                }
                Err(Failure { error, retry_at }) => {
                    failures += 1;
                    if matches!(error, ApiError::Auth { .. } | ApiError::InsecureServer(_)) {
                        let _ = state.send(WsState::Refused);
                        self.report(
                            PartState::Error,
                            error.to_string(),
                            error.settings_section(),
                        );
                        self.clock.now() + RECHECK_REFUSED
                    } else {
                        tracing::warn!(error = %error, "cannot connect to RingCentral's WebSocket");
                        let backoff =
                            jitter(Duration::seconds(2i64.pow(failures.min(6))).min(MAX_BACKOFF));
                        let at = retry_at.max(self.clock.now() + backoff);
                        self.report(
                            PartState::Reconnecting,
                            format!(
                                "Cannot connect to RingCentral ({error}); trying again at {}.",
                                at.with_timezone(&chrono::Local).format("%H:%M:%S")
                            ),
                            None,
                        );
                        at
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.clock.sleep_until(retry_at) => {}
                _ = nudges.recv() => {}
            }
        }
        // Whatever was read is stored before the task ends.
        self.ingest = None;
        let _ = worker.await;
        self.report(PartState::Off, "Stopped.", None);
    }

    /// Reports a refused subscription and says how long to wait before asking again.
    fn refused(&self, refusal: &Refusal, state: &watch::Sender<WsState>) -> Duration {
        if refusal.permission {
            let _ = state.send(WsState::PermissionMissing);
            self.report(
                PartState::Error,
                format!(
                    "The RingCentral app may not use WebSocket subscriptions: in RingCentral's \
                     developer console, add the \u{201c}{PERMISSION_NAME}\u{201d} permission to \
                     the app ({}). Until then, calls need a public address (webhook).",
                    refusal.code
                ),
                Some("ringcentral"),
            );
            return RECHECK_REFUSED;
        }
        let _ = state.send(WsState::Reconnecting);
        self.report(
            PartState::Reconnecting,
            format!(
                "RingCentral refused the subscription ({} {}: {}); trying again soon.",
                refusal.status, refusal.code, refusal.message
            ),
            None,
        );
        Duration::seconds(30)
    }

    /// A token (spaced from the last one) and a connection, recovering the session while it
    /// can be recovered.
    async fn open(
        &self,
        session: &mut Session,
    ) -> Result<(Connection, ConnectionDetails), Failure> {
        if let Some(last) = session.last_token_at {
            self.clock.sleep_until(last + TOKEN_SPACING).await;
        }
        let now = self.clock.now();
        session.last_token_at = Some(now);
        let fail = |error: ApiError| {
            let retry_at = match &error {
                ApiError::RateLimited { until, .. } => *until,
                _ => now,
            };
            Failure { error, retry_at }
        };
        let token = self.platform.ws_token().await.map_err(fail)?;
        let recoverable = session
            .dropped_at
            .is_some_and(|at| self.clock.now() - at < Duration::seconds(session.recovery_timeout));
        let wsc = session.wsc.as_ref().filter(|_| recoverable).map(|(t, _)| t);
        let url = ws::socket_url(self.platform.server(), &token, wsc).map_err(fail)?;
        Connection::open(&url, OPEN_TIMEOUT).await.map_err(fail)
    }

    /// Runs one connection until it ends.
    async fn live(
        &self,
        mut connection: Connection,
        details: ConnectionDetails,
        session: &mut Session,
        state: &watch::Sender<WsState>,
        shutdown: &CancellationToken,
    ) -> Ended {
        let connected_at = self.clock.now();
        session.recovery_timeout = details.recovery_timeout;
        if let Some(wsc) = details.wsc.clone() {
            session.wsc = Some(wsc);
        }
        let idle = Duration::seconds(details.idle_timeout);
        let recovered = details.recovery == Recovery::Successful;
        if let Recovery::Failed { code } = &details.recovery {
            tracing::info!(
                code = code.as_deref().unwrap_or("-"),
                "RingCentral WebSocket session not recovered; subscribing again"
            );
        }
        let mut pending_subscribe = None;
        if recovered {
            self.subscribed(state, "recovered");
            // The replay comes first: the answer to this heartbeat marks its end.
            if let Err(e) = connection.send(ws::heartbeat()).await {
                return Ended::Dropped(e.to_string());
            }
        } else {
            let (frame, id) = ws::subscribe_request(&self.event_filters);
            if let Err(e) = connection.send(frame).await {
                return Ended::Dropped(e.to_string());
            }
            pending_subscribe = Some((id, connected_at + SUBSCRIBE_TIMEOUT));
        }
        // The gap since the drop is covered by the replay after a recovery, unless the replay
        // filled the whole buffer; otherwise by the call log once subscribed.
        let gap = session.dropped_at;
        let mut replayed: i64 = 0;
        let mut replay_judged = !recovered;
        if recovered {
            session.dropped_at = None;
        }
        let mut last_received = connected_at;
        let mut last_sent = connected_at;
        let ended = loop {
            let heartbeat_at = (last_received + QUIET_BEFORE_HEARTBEAT).min(last_sent + idle / 3);
            let subscribe_deadline = pending_subscribe.as_ref().map(|(_, at)| *at);
            let wake = subscribe_deadline.map_or(heartbeat_at, |d| d.min(heartbeat_at));
            let frame = tokio::select! {
                _ = shutdown.cancelled() => break Ended::Shutdown,
                _ = self.clock.sleep_until(wake) => {
                    let now = self.clock.now();
                    if subscribe_deadline.is_some_and(|d| now >= d) {
                        break Ended::Dropped("the subscription request had no answer".into());
                    }
                    if now >= heartbeat_at {
                        if let Err(e) = connection.send(ws::heartbeat()).await {
                            break Ended::Dropped(e.to_string());
                        }
                        last_sent = now;
                        // Asked once; the next one is due a full interval later.
                        last_received = last_received.max(now);
                    }
                    continue;
                }
                frame = connection.next() => frame,
            };
            last_received = self.clock.now();
            let incoming = match frame {
                None => break Ended::Dropped("closed by RingCentral".into()),
                Some(Err(ApiError::Protocol(e))) => {
                    tracing::warn!(error = %e, "unreadable WebSocket frame ignored");
                    continue;
                }
                Some(Err(e)) => break Ended::Dropped(e.to_string()),
                Some(Ok(incoming)) => incoming,
            };
            match incoming {
                Incoming::Notification { body } => {
                    let before_connect = self.keep(body).await;
                    if !replay_judged && before_connect.is_some_and(|t| t < connected_at) {
                        replayed += 1;
                    }
                }
                Incoming::Reply {
                    message_id,
                    status,
                    body,
                } => {
                    if pending_subscribe
                        .as_ref()
                        .is_none_or(|(id, _)| *id != message_id)
                    {
                        continue;
                    }
                    pending_subscribe = None;
                    if !(200..300).contains(&status) {
                        let text = |key: &str| {
                            body.get(key)
                                .and_then(serde_json::Value::as_str)
                                .unwrap_or("")
                                .to_string()
                        };
                        break Ended::Refused(Refusal {
                            status,
                            code: text("errorCode"),
                            message: text("message"),
                            permission: ws::refuses_permission(status, &body),
                        });
                    }
                    self.subscribed(state, "subscribed");
                    if let Some(since) = gap {
                        session.dropped_at = None;
                        self.gap(since, "the WebSocket session could not be recovered")
                            .await;
                    }
                }
                Incoming::Error { code, message } => {
                    // WSG-902 (idle) and WSG-903 (absolute, daily) are followed by a close.
                    break Ended::Dropped(format!("{code}: {message}"));
                }
                Incoming::ConnectionDetails(d) => {
                    if let Some(wsc) = d.wsc {
                        if session.wsc.as_ref().is_none_or(|(_, seq)| wsc.1 >= *seq) {
                            session.wsc = Some(wsc);
                        }
                    }
                }
                Incoming::Heartbeat if !replay_judged => {
                    replay_judged = true;
                    // A full buffer may have dropped older events: the call log has them.
                    if replayed >= details.recovery_buffer_size {
                        if let Some(since) = gap {
                            tracing::info!(
                                replayed,
                                "the recovery replayed a full buffer; backfilling the gap"
                            );
                            self.gap(since, "the WebSocket recovery replayed a full buffer")
                                .await;
                        }
                    }
                }
                Incoming::Heartbeat | Incoming::Other(_) => {}
            }
        };
        let subscribed = pending_subscribe.is_none();
        if !matches!(ended, Ended::Refused(_)) && subscribed && session.dropped_at.is_none() {
            session.dropped_at = Some(self.clock.now());
        }
        if matches!(ended, Ended::Refused(_)) {
            session.dropped_at = None;
        }
        connection.close().await;
        ended
    }

    fn subscribed(&self, state: &watch::Sender<WsState>, how: &str) {
        tracing::info!(how, "RingCentral WebSocket subscription active");
        let _ = state.send(WsState::Subscribed);
        self.report(
            PartState::Active,
            "Connected: RingCentral sends this account's calls over a connection CallPop opened \
             (no public address needed).",
            None,
        );
    }

    async fn gap(&self, since: DateTime<Utc>, reason: &str) {
        let _ = self
            .backfill
            .send(BackfillRequest {
                since: since - GAP_MARGIN,
                reason: reason.into(),
                reply: None,
            })
            .await;
    }

    /// Hands one event to the storing worker; returns when it happened (for the replay
    /// count).
    async fn keep(&self, body: String) -> Option<DateTime<Utc>> {
        let received_at = self.clock.now();
        let bytes = body.into_bytes();
        let parsed =
            callpop_core::ringcentral::webhook::parse_delivery(&bytes, &self.country, received_at);
        let event_time = parsed.as_ref().ok().and_then(|p| p.event_time);
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let arrival = Arrival {
            provider: Provider::RingCentral,
            origin: Origin::WebSocket,
            received_at,
            headers: vec![("via".into(), "websocket".into())],
            body: bytes,
            sha256,
        };
        if let Some(ingest) = &self.ingest {
            if ingest.send((arrival, parsed)).await.is_err() {
                tracing::error!("the WebSocket event store stopped; event not kept");
            }
        }
        event_time
    }
}

/// Stores the events read from the WebSocket, one after the other, until the reader is gone.
async fn store_events(sink: DeliverySink, mut queue: mpsc::Receiver<Ingest>) {
    while let Some((arrival, parsed)) = queue.recv().await {
        sink.keep(arrival, parsed).await;
    }
}

/// `d` shortened by up to a half at random, so desks that dropped together do not come back
/// in step.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        u16::MAX / 2
    };
    let ms = d.num_milliseconds();
    Duration::milliseconds(ms - ms / 2 * i64::from(r) / i64::from(u16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_takes_off_at_most_half() {
        for _ in 0..100 {
            let j = jitter(Duration::seconds(10));
            assert!(
                j >= Duration::seconds(5) && j <= Duration::seconds(10),
                "{j}"
            );
        }
    }
}
