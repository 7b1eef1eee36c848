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
use crate::deliveries::{Arrival, DeliverySink, Kept};
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
/// A heartbeat unanswered this long (wall time) means the link is dead even if the operating
/// system has not noticed: the server answers within a second or two.
const HEARTBEAT_ANSWER: StdDuration = StdDuration::from_secs(15);
/// A connection subscribed this long counts as good: a drop after it is retried at once.
const STABLE_AFTER: Duration = Duration::minutes(5);
/// Down this long (and a few attempts failed): the health board says so as an error.
const DOWN_BEFORE_ERROR: Duration = Duration::minutes(3);
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
}

/// The session this install keeps across connections.
#[derive(Default)]
struct Session {
    /// The newest `wsc` token and its sequence.
    wsc: Option<(Secret, i64)>,
    /// Seconds after a drop during which `wsc` recovers the session.
    recovery_timeout: i64,
    /// When the subscribed connection was found down (the recovery window counts from it).
    dropped_at: Option<DateTime<Utc>>,
    /// It went silent without closing (a dead link): what the gateway sent into it is lost,
    /// even if the session is recovered.
    unclean: bool,
    /// The last time anything was heard before that: events may be missing from then on.
    gap_since: Option<DateTime<Utc>>,
    /// The last token request (they are spaced).
    last_token_at: Option<DateTime<Utc>>,
    /// Attempts since the last connection that stayed up (the backoff grows with them).
    failures: u32,
    /// Since when RingCentral has not been sending over the WebSocket (health escalates).
    down_since: Option<DateTime<Utc>>,
}

/// How a live connection ended.
enum Ended {
    Shutdown,
    /// Dropped or closed by the server: reconnect (and recover). `stable` when it had stayed
    /// subscribed long enough that reconnecting at once is right.
    Dropped {
        why: String,
        stable: bool,
    },
    /// The subscription was refused.
    Refused(Refusal),
}

/// A refused subscription or token request.
struct Refusal {
    status: u16,
    code: String,
    message: String,
    /// The app lacks the WebSocket (subscriptions) permission.
    permission: bool,
}

impl Refusal {
    /// A refused `wstoken` request, when it is about the permission.
    fn of_token_request(e: &ApiError) -> Option<Refusal> {
        let ApiError::Api {
            status,
            code,
            message,
        } = e
        else {
            return None;
        };
        let body = serde_json::json!({"errorCode": code, "message": message});
        ws::refuses_permission(*status, &body).then(|| Refusal {
            status: *status,
            code: code.clone(),
            message: message.clone(),
            permission: true,
        })
    }
}

/// Why connecting failed, and when to try again.
struct Failure {
    error: ApiError,
    retry_at: DateTime<Utc>,
}

/// The wait before reconnection attempt `failures` (0: the connection had been up a while).
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return jitter(Duration::milliseconds(500));
    }
    jitter(Duration::seconds(2i64.pow(failures.min(6))).min(MAX_BACKOFF))
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

    /// Reports the connection down: reconnecting at first, an error once it has lasted (so
    /// the status stops saying all is well while no call arrives).
    fn report_down(&self, session: &mut Session, detail: String) {
        let now = self.clock.now();
        let since = *session.down_since.get_or_insert(now);
        let lasting = now - since >= DOWN_BEFORE_ERROR && session.failures >= 3;
        let state = if lasting {
            PartState::Error
        } else {
            PartState::Reconnecting
        };
        self.report(state, detail, None);
    }

    async fn run(
        self,
        mut nudges: mpsc::Receiver<()>,
        state: watch::Sender<WsState>,
        shutdown: CancellationToken,
    ) {
        // Events are stored by a worker of their own, in arrival order: the reading loop never
        // waits for the disk, so pings are answered and heartbeats sent on time even while
        // the history is slow (busy with a backfill, a slow fsync).
        let (ingest, queue) = mpsc::channel(INGEST_QUEUE);
        let worker = tokio::spawn(store_events(self.sink.clone(), queue));
        let mut session = Session {
            recovery_timeout: 180,
            ..Session::default()
        };
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
                    let ended = self
                        .live(
                            Live {
                                connection,
                                details,
                                state: &state,
                                shutdown: &shutdown,
                                nudges: &mut nudges,
                                ingest: &ingest,
                            },
                            &mut session,
                        )
                        .await;
                    match ended {
                        Ended::Shutdown => break,
                        Ended::Dropped { why, stable } => {
                            session.failures = if stable { 0 } else { session.failures + 1 };
                            tracing::info!(%why, "RingCentral WebSocket closed; reconnecting");
                            let _ = state.send(WsState::Reconnecting);
                            self.report_down(
                                &mut session,
                                format!(
                                    "The connection to RingCentral closed ({why}); reconnecting. \
                                     Calls meanwhile are recovered."
                                ),
                            );
                            // Straight back after a good while up: the session is
                            // recoverable only for a while. A connection that keeps failing
                            // waits longer each time.
                            self.clock.now() + backoff(session.failures)
                        }
                        Ended::Refused(refusal) => {
                            session.failures += 1;
                            self.clock.now() + self.refused(&refusal, &state, &mut session)
                        }
                    }
                }
                Err(Failure { error, retry_at }) => {
                    session.failures += 1;
                    if let Some(refusal) = Refusal::of_token_request(&error) {
                        self.clock.now() + self.refused(&refusal, &state, &mut session)
                    } else if matches!(error, ApiError::Auth { .. } | ApiError::InsecureServer(_)) {
                        let _ = state.send(WsState::Refused);
                        self.report(
                            PartState::Error,
                            error.to_string(),
                            error.settings_section(),
                        );
                        self.clock.now() + RECHECK_REFUSED
                    } else {
                        tracing::warn!(error = %error, "cannot connect to RingCentral's WebSocket");
                        let at = retry_at.max(self.clock.now() + backoff(session.failures));
                        self.report_down(
                            &mut session,
                            format!(
                                "Cannot connect to RingCentral ({error}); trying again at {}.",
                                at.with_timezone(&chrono::Local).format("%H:%M:%S")
                            ),
                        );
                        at
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.clock.sleep_until(retry_at) => {}
                Some(()) = nudges.recv() => {}
            }
        }
        // Whatever was read is stored before the task ends.
        drop(ingest);
        let _ = worker.await;
        self.report(PartState::Off, "Stopped.", None);
    }

    /// Reports a refused subscription or token and says how long to wait before asking again.
    fn refused(
        &self,
        refusal: &Refusal,
        state: &watch::Sender<WsState>,
        session: &mut Session,
    ) -> Duration {
        if refusal.permission {
            // Nothing more comes over the WebSocket: what was missed until now is filled from
            // the call log (a webhook subscription may take over, in auto).
            session.dropped_at = None;
            session.unclean = false;
            session.wsc = None;
            if let Some(since) = session.gap_since.take() {
                if !self.gap_now(since, "the WebSocket was refused after a drop") {
                    // Asked again at the next refusal or subscription.
                    session.gap_since = Some(since);
                }
            }
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
        self.report_down(
            session,
            format!(
                "RingCentral refused the subscription ({} {}: {}); trying again soon.",
                refusal.status, refusal.code, refusal.message
            ),
        );
        Duration::seconds(30).max(backoff(session.failures))
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
    async fn live(&self, live: Live<'_>, session: &mut Session) -> Ended {
        let Live {
            mut connection,
            details,
            state,
            shutdown,
            nudges,
            ingest,
        } = live;
        let connected_at = self.clock.now();
        session.recovery_timeout = details.recovery_timeout;
        let recovered = details.recovery == Recovery::Successful;
        // Only a subscribed session is worth recovering: a new one's token is kept once its
        // subscription is confirmed.
        let mut fresh_wsc = None;
        if recovered {
            session.wsc = details.wsc.clone().or(session.wsc.take());
        } else {
            session.wsc = None;
            fresh_wsc = details.wsc.clone();
        }
        let idle = Duration::seconds(details.idle_timeout);
        if let Recovery::Failed { code } = &details.recovery {
            tracing::info!(
                code = code.as_deref().unwrap_or("-"),
                "RingCentral WebSocket session not recovered; subscribing again"
            );
        }
        let mut pending_subscribe = None;
        let mut subscribed_at = None;
        // A heartbeat waiting for its answer (wall time: how long a network takes to answer
        // does not follow a simulated clock).
        let mut probe: Option<tokio::time::Instant> = None;
        if recovered {
            self.subscribed(state, session, "recovered");
            subscribed_at = Some(connected_at);
            // The replay comes first: the answer to this heartbeat marks its end.
            if let Err(e) = connection.send(ws::heartbeat()).await {
                return self
                    .ended(session, connection, Dropped::now(e, connected_at))
                    .await;
            }
            probe = Some(tokio::time::Instant::now());
        } else {
            let (frame, id) = ws::subscribe_request(&self.event_filters);
            if let Err(e) = connection.send(frame).await {
                return self
                    .ended(session, connection, Dropped::now(e, connected_at))
                    .await;
            }
            pending_subscribe = Some((id, connected_at + SUBSCRIBE_TIMEOUT));
        }
        // Counted until the heartbeat's answer: every notification before it may be replayed
        // (counting a live one too only costs a backfill that finds nothing new).
        let mut replaying = recovered;
        let mut replayed: i64 = 0;
        let mut last_received = connected_at;
        let mut last_sent = connected_at;
        let ended = loop {
            let heartbeat_at =
                (last_received.max(last_sent) + QUIET_BEFORE_HEARTBEAT).min(last_sent + idle / 3);
            let subscribe_deadline = pending_subscribe.as_ref().map(|(_, at)| *at);
            let wake = subscribe_deadline.map_or(heartbeat_at, |d| d.min(heartbeat_at));
            let answer_by = probe.map(|sent| sent + HEARTBEAT_ANSWER);
            let mut send_probe = false;
            let frame = tokio::select! {
                _ = shutdown.cancelled() => break Dropped::shutdown(),
                Some(()) = nudges.recv() => {
                    // Someone asked (the machine woke up, "Connect now"): make sure it is alive.
                    send_probe = probe.is_none();
                    None
                }
                _ = sleep_until_wall(answer_by) => {
                    break Dropped::silent(last_received);
                }
                _ = self.clock.sleep_until(wake) => {
                    let now = self.clock.now();
                    if subscribe_deadline.is_some_and(|d| now >= d) {
                        break Dropped::now("the subscription request had no answer", last_received);
                    }
                    send_probe = now >= heartbeat_at;
                    None
                }
                frame = connection.next() => Some(frame),
            };
            if send_probe {
                if let Err(e) = connection.send(ws::heartbeat()).await {
                    break Dropped::now(e, last_received);
                }
                last_sent = self.clock.now();
                probe.get_or_insert_with(tokio::time::Instant::now);
            }
            let Some(frame) = frame else { continue };
            let incoming = match frame {
                None => break Dropped::now("closed by RingCentral", last_received),
                Some(Err(ApiError::Protocol(e))) => {
                    tracing::warn!(error = %e, "unreadable WebSocket frame ignored");
                    continue;
                }
                Some(Err(e)) => break Dropped::now(e, last_received),
                Some(Ok(incoming)) => incoming,
            };
            last_received = self.clock.now();
            probe = None;
            match incoming {
                Incoming::Notification { body } => {
                    self.keep(ingest, body, shutdown).await;
                    replayed += i64::from(replaying);
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
                        break Dropped::refused(Refusal {
                            status,
                            code: text("errorCode"),
                            message: text("message"),
                            permission: ws::refuses_permission(status, &body),
                        });
                    }
                    self.subscribed(state, session, "subscribed");
                    subscribed_at = Some(self.clock.now());
                    session.wsc = fresh_wsc.take();
                    if let Some(since) = session.gap_since.take() {
                        self.gap(since, "the WebSocket session could not be recovered")
                            .await;
                    }
                    session.unclean = false;
                    session.dropped_at = None;
                }
                Incoming::Heartbeat if replaying => {
                    replaying = false;
                    // A full buffer may have dropped older events, and what the gateway wrote
                    // into a link that had died is in no replay: the call log has them.
                    let since = session.gap_since.take();
                    let full = replayed >= details.recovery_buffer_size;
                    let unclean = std::mem::take(&mut session.unclean);
                    session.dropped_at = None;
                    if let Some(since) = since.filter(|_| full || unclean) {
                        tracing::info!(
                            replayed,
                            unclean,
                            "recovered, but events may be missing; backfilling the gap"
                        );
                        self.gap(
                            since,
                            "events may have been lost before the WebSocket recovered",
                        )
                        .await;
                    }
                }
                Incoming::Error { code, message } => {
                    // WSG-902 (idle) and WSG-903 (absolute, daily) are followed by a close.
                    break Dropped::now(format!("{code}: {message}"), last_received);
                }
                Incoming::ConnectionDetails(d) => {
                    if let Some(wsc) = d.wsc {
                        // Not subscribed yet: the newer token waits with the first one.
                        let kept = if subscribed_at.is_some() {
                            &mut session.wsc
                        } else {
                            &mut fresh_wsc
                        };
                        if kept.as_ref().is_none_or(|(_, seq)| wsc.1 >= *seq) {
                            *kept = Some(wsc);
                        }
                    }
                }
                Incoming::Heartbeat | Incoming::Other(_) => {}
            }
        };
        let stable = subscribed_at.is_some_and(|t| self.clock.now() - t >= STABLE_AFTER);
        self.ended(session, connection, ended.stable(stable)).await
    }

    /// Closes the connection and notes where the gap starts, if one may have begun.
    async fn ended(
        &self,
        session: &mut Session,
        connection: Connection,
        dropped: Dropped,
    ) -> Ended {
        connection.close().await;
        match dropped {
            Dropped::Shutdown => Ended::Shutdown,
            Dropped::Refused(refusal) => Ended::Refused(refusal),
            Dropped::Gone {
                why,
                last_heard,
                stable,
                unclean,
            } => {
                // An earlier drop whose gap is not filled yet keeps its (earlier) start.
                session.gap_since.get_or_insert(last_heard);
                session.unclean |= unclean;
                session.dropped_at.get_or_insert(self.clock.now());
                Ended::Dropped { why, stable }
            }
        }
    }

    fn subscribed(&self, state: &watch::Sender<WsState>, session: &mut Session, how: &str) {
        tracing::info!(how, "RingCentral WebSocket subscription active");
        session.down_since = None;
        let _ = state.send(WsState::Subscribed);
        self.report(
            PartState::Active,
            "Connected: RingCentral sends this account's calls over a connection CallPop opened \
             (no public address needed).",
            None,
        );
    }

    /// [`Self::gap`] from a place that cannot wait; false when the backfill's queue is full.
    fn gap_now(&self, since: DateTime<Utc>, reason: &str) -> bool {
        let request = BackfillRequest {
            since: since - GAP_MARGIN,
            reason: reason.into(),
            reply: None,
        };
        self.backfill.try_send(request).is_ok()
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

    /// Hands one event to the storing worker (waiting while its queue is full, unless CallPop
    /// is stopping).
    async fn keep(
        &self,
        ingest: &mpsc::Sender<Ingest>,
        body: String,
        shutdown: &CancellationToken,
    ) {
        let received_at = self.clock.now();
        let bytes = body.into_bytes();
        let parsed =
            callpop_core::ringcentral::webhook::parse_delivery(&bytes, &self.country, received_at);
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
        tokio::select! {
            sent = ingest.send((arrival, parsed)) => if sent.is_err() {
                tracing::error!("the WebSocket event store stopped; event not kept");
            },
            _ = shutdown.cancelled() => {
                tracing::warn!("stopping with the history busy: an event read from the WebSocket is left to the call log");
            }
        }
    }
}

/// What one live connection works with.
struct Live<'a> {
    connection: Connection,
    details: ConnectionDetails,
    state: &'a watch::Sender<WsState>,
    shutdown: &'a CancellationToken,
    nudges: &'a mut mpsc::Receiver<()>,
    ingest: &'a mpsc::Sender<Ingest>,
}

/// Why the live loop stopped.
enum Dropped {
    Shutdown,
    Refused(Refusal),
    Gone {
        why: String,
        /// The last time anything was heard: events may be missing from then on.
        last_heard: DateTime<Utc>,
        stable: bool,
        /// A dead link, not a close (see [`Session::unclean`]).
        unclean: bool,
    },
}

impl Dropped {
    fn shutdown() -> Dropped {
        Dropped::Shutdown
    }

    fn refused(refusal: Refusal) -> Dropped {
        Dropped::Refused(refusal)
    }

    /// The connection closed or failed: both ends know at once, and the gateway keeps what it
    /// could not send for a recovery.
    fn now(why: impl std::fmt::Display, last_heard: DateTime<Utc>) -> Dropped {
        Dropped::Gone {
            why: why.to_string(),
            last_heard,
            stable: false,
            unclean: false,
        }
    }

    /// The server stopped answering (a dead link the operating system has not noticed yet):
    /// the gateway went on sending into it, and those events are in no replay.
    fn silent(last_heard: DateTime<Utc>) -> Dropped {
        Dropped::Gone {
            why: "RingCentral stopped answering".into(),
            last_heard,
            stable: false,
            unclean: true,
        }
    }

    fn stable(self, stable: bool) -> Dropped {
        match self {
            Dropped::Gone {
                why,
                last_heard,
                unclean,
                ..
            } => Dropped::Gone {
                why,
                last_heard,
                stable,
                unclean,
            },
            other => other,
        }
    }
}

/// Sleeps until `at` (wall time), or for ever without one.
async fn sleep_until_wall(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An event read from the WebSocket, on its way to the store.
type Ingest = (
    Arrival,
    Result<callpop_core::model::ParsedDelivery, callpop_core::wire::ParseError>,
);

/// Stores the events read from the WebSocket, one after the other, until the reader is gone.
/// An event the history cannot take now (busy, disk full) is tried again, in order: unlike a
/// webhook's sender, the WebSocket will not send it again.
async fn store_events(sink: DeliverySink, mut queue: mpsc::Receiver<Ingest>) {
    // Stopping with the history unavailable: one try each, then the call log has the rest at
    // the next start.
    let mut giving_up = false;
    while let Some((arrival, parsed)) = queue.recv().await {
        let mut wait = StdDuration::from_millis(500);
        let mut tries = 0u32;
        while let Kept::Unavailable = sink.keep(arrival.clone(), parsed.clone()).await {
            tries += 1;
            if giving_up || (queue.is_closed() && tries >= 3) {
                giving_up = true;
                tracing::error!("history unavailable at shutdown; a WebSocket event was not kept");
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(StdDuration::from_secs(30));
        }
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
