//! RingCentral's WebSocket transport, as documented (docs/ARCHITECTURE.md "RingCentral over
//! WebSocket" lists the sources): `POST /restapi/oauth/wstoken` hands out a single-use token
//! that expires; `GET /ws?access_token=…[&wsc=…]` upgrades; the server speaks first with
//! `ConnectionDetails` (its `wsc` token and limits); frames are JSON arrays `[meta, body]`.
//!
//! What the fake does, and what CallPop must cope with:
//! - one subscription per connection (`ClientRequest POST /restapi/v1.0/subscription/`; a
//!   second replaces the first), refused with SUB-528 without the app permission;
//! - `ServerNotification` frames whose body is a webhook delivery's body;
//! - `Heartbeat` requests answered with the same `messageId`;
//! - pings on a wall-clock interval that need a pong within the (real) deadline;
//! - the idle timeout (WSG-902: nothing sent by the client) and the absolute timeout
//!   (WSG-903) on the platform's clock, each an `Error` frame and a close;
//! - recovery: within `recoveryTimeout` of a drop, connecting with the last `wsc` token of the
//!   same OAuth session keeps the subscription and replays what was missed, at most
//!   `recoveryBufferSize` events (the most recent); later, from another OAuth session, or with
//!   an unknown token, `recoveryState` is `Failed` and the client must subscribe again.

use std::collections::{HashMap, VecDeque};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::server::{api_error, bearer_session, limited};
use crate::{FakePlatform, Group, PendingEvent, ACCOUNT_ID, OWNER_EXTENSION_ID};

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Send this text frame.
    Text(String),
    /// End the connection without a closing handshake (a network drop).
    Drop,
    /// Go silent with the socket open, as a dead link the operating system has not noticed:
    /// nothing more is sent or answered, events sent meanwhile are lost, and the gateway
    /// lets the session go after its pong deadline.
    Freeze,
}

/// A session's subscription.
#[derive(Debug, Clone)]
struct WsSubscription {
    id: String,
    filters: Vec<String>,
}

/// A WebSocket session: what `wsc` recovers.
#[derive(Debug)]
struct Context {
    /// The OAuth session whose token opened it.
    session: u64,
    subscription: Option<WsSubscription>,
    /// The live connection and its sender, while connected.
    connection: Option<(u64, mpsc::UnboundedSender<Outgoing>)>,
    disconnected_at: Option<DateTime<Utc>>,
    /// Events missed while disconnected, most recent last.
    missed: VecDeque<Value>,
    /// The current `wsc` token and its sequence.
    wsc: String,
    sequence: u64,
}

/// The fake's WebSocket state.
#[derive(Debug, Default)]
pub(crate) struct WsState {
    /// Issued tokens: OAuth session and expiry; removed when used.
    tokens: HashMap<String, (u64, DateTime<Utc>)>,
    /// Sessions by their context id.
    contexts: HashMap<u64, Context>,
    next: u64,
    /// Connections are refused until then.
    pub(crate) outage_until: Option<DateTime<Utc>>,
}

impl WsState {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.contexts
            .values()
            .filter(|c| c.connection.is_some())
            .count()
    }

    /// Subscription ids on open connections.
    pub(crate) fn live_subscriptions(&self) -> Vec<String> {
        self.contexts
            .values()
            .filter(|c| c.connection.is_some())
            .filter_map(|c| c.subscription.as_ref().map(|s| s.id.clone()))
            .collect()
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `POST /restapi/oauth/wstoken`: in the Auth rate group, with the REST bearer token.
pub(crate) async fn ws_token(State(p): State<FakePlatform>, headers: HeaderMap) -> Response {
    if let Some(r) = limited(&p, Group::Auth) {
        return r;
    }
    let session = match bearer_session(&p, &headers) {
        Ok(session) => session,
        Err(refused) => return refused.answer(),
    };
    if !p.lock().config.wstoken_permission {
        let message =
            "In order to call this API endpoint, application needs to have [WebSocket] permission";
        return (
            StatusCode::FORBIDDEN,
            Json(
                json!({"errorCode": "InsufficientPermissions", "message": message,
                        "errors": [{"errorCode": "CMN-401", "message": message,
                                    "permissionName": "WebSocket"}],
                        "permissionName": "WebSocket"}),
            ),
        )
            .into_response();
    }
    let now = p.clock.now();
    let uri = format!("{}/ws", p.url().replacen("http://", "ws://", 1));
    let mut s = p.lock();
    let n = s.next_id();
    let token = format!("fake-ws-{n}");
    let ttl = s.config.ws_token_ttl;
    s.ws.tokens
        .insert(token.clone(), (session, now + Duration::seconds(ttl)));
    s.stats.ws_tokens += 1;
    Json(json!({"ws_access_token": token, "uri": uri, "expires_in": ttl})).into_response()
}

#[derive(Deserialize)]
pub(crate) struct ConnectQuery {
    access_token: Option<String>,
    wsc: Option<String>,
}

/// `GET /ws?access_token=…[&wsc=…]`: a missing, used or expired token is refused before the
/// upgrade.
pub(crate) async fn connect(
    State(p): State<FakePlatform>,
    Query(q): Query<ConnectQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let now = p.clock.now();
    let session = {
        let mut s = p.lock();
        if s.ws.outage_until.is_some_and(|until| now < until) {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "WSG-503",
                "Service temporarily unavailable",
            );
        }
        match q.access_token.and_then(|t| s.ws.tokens.remove(&t)) {
            Some((session, expires)) if expires > now => session,
            Some(_) => {
                return api_error(StatusCode::UNAUTHORIZED, "OAU-213", "Token expired");
            }
            None => return api_error(StatusCode::UNAUTHORIZED, "OAU-149", "Invalid token"),
        }
    };
    upgrade.on_upgrade(move |socket| serve(p, socket, session, q.wsc))
}

/// Attaches a new connection to a session (recovered or new) and returns its context id, the
/// `ConnectionDetails` frame and the events to replay.
fn attach(
    p: &FakePlatform,
    session: u64,
    wsc: Option<String>,
    tx: mpsc::UnboundedSender<Outgoing>,
) -> (u64, u64, String, Vec<Value>) {
    let now = p.clock.now();
    let mut s = p.lock();
    let recovery_timeout = Duration::seconds(s.config.ws_recovery_timeout);
    let (buffer, idle, absolute) = (
        s.config.ws_recovery_buffer,
        s.config.ws_idle_timeout,
        s.config.ws_absolute_timeout,
    );
    let connection = s.ws.next_id();
    let found = wsc.as_deref().and_then(|token| {
        s.ws.contexts
            .iter()
            .find(|(_, c)| c.wsc == token)
            .map(|(id, c)| (*id, c.session, c.connection.is_some(), c.disconnected_at))
    });
    // (context, recovery state, recovery error)
    let (context_id, recovery) = match (&wsc, found) {
        (None, _) => (None, None),
        (Some(_), Some((id, owner, connected, dropped))) => {
            let in_time = dropped.is_some_and(|at| now - at <= recovery_timeout);
            if owner != session {
                (None, Some(("Failed", Some("WSG-1003"))))
            } else if connected || !in_time {
                (None, Some(("Failed", Some("WSG-1001"))))
            } else {
                (Some(id), Some(("Successful", None)))
            }
        }
        (Some(_), None) => (None, Some(("Failed", Some("WSG-1001")))),
    };
    match recovery {
        Some(("Successful", _)) => s.stats.ws_recovered += 1,
        Some(_) => s.stats.ws_recovery_failed += 1,
        None => {}
    }
    let context_id = match context_id {
        Some(id) => id,
        None => {
            let id = s.ws.next_id();
            s.ws.contexts.insert(
                id,
                Context {
                    session,
                    subscription: None,
                    connection: None,
                    disconnected_at: None,
                    missed: VecDeque::new(),
                    wsc: String::new(),
                    sequence: 0,
                },
            );
            id
        }
    };
    let n = s.next_id();
    let (wsc_token, sequence, replay) = {
        let Some(c) = s.ws.contexts.get_mut(&context_id) else {
            return (context_id, connection, String::new(), Vec::new());
        };
        c.connection = Some((connection, tx));
        c.disconnected_at = None;
        c.sequence += 1;
        c.wsc = format!("fake-wsc-{n}");
        (
            c.wsc.clone(),
            c.sequence,
            c.missed.drain(..).collect::<Vec<_>>(),
        )
    };
    s.stats.ws_connections += 1;
    s.stats.ws_replayed += replay.len() as u64;
    let open = s.ws.open() as u64;
    s.stats.ws_most_open = s.stats.ws_most_open.max(open);
    let mut body = json!({"creationTime": ts(now), "maxConnectionsPerSession": 50,
        "recoveryBufferSize": buffer, "recoveryTimeout": s.config.ws_recovery_timeout,
        "idleTimeout": idle, "absoluteTimeout": absolute, "maxActiveRequests": 10});
    if let Some((state, code)) = recovery {
        body["recoveryState"] = json!(state);
        if let Some(code) = code {
            body["recoveryErrorCode"] = json!(code);
        }
    }
    let details =
        json!([{"type": "ConnectionDetails", "messageId": format!("cd-{n}"), "status": 200,
        "wsc": {"token": wsc_token, "sequence": sequence},
        "headers": {"RCRequestId": format!("rq-{n}")}}, body])
        .to_string();
    (context_id, connection, details, replay)
}

/// Marks the session disconnected (if this connection still holds it). Events queued for the
/// connection but not sent go back to the session's buffer, as the gateway keeps what it could
/// not deliver for a recovery.
fn detach(
    p: &FakePlatform,
    context: u64,
    connection: u64,
    queue: &mut mpsc::UnboundedReceiver<Outgoing>,
) {
    let now = p.clock.now();
    let mut s = p.lock();
    let buffer = s.config.ws_recovery_buffer;
    let mut unsent = Vec::new();
    while let Ok(out) = queue.try_recv() {
        if let Outgoing::Text(text) = out {
            unsent.extend(serde_json::from_str::<Value>(&text).ok());
        }
    }
    let mut returned = 0;
    if let Some(c) = s.ws.contexts.get_mut(&context) {
        if c.connection
            .as_ref()
            .is_some_and(|(id, _)| *id == connection)
        {
            c.connection = None;
            c.disconnected_at = Some(now);
            returned = unsent.len() as u64;
            for frame in unsent.into_iter().rev() {
                c.missed.push_front(frame);
            }
            while c.missed.len() > buffer {
                c.missed.pop_front();
            }
        }
    }
    s.stats.ws_delivered -= returned.min(s.stats.ws_delivered);
}

/// Answers one frame from the client; `None` when it needs no answer.
fn answer(p: &FakePlatform, context: u64, text: &str) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let meta = frame.get(0)?;
    let message_id = meta.get("messageId").cloned().unwrap_or(Value::Null);
    match meta.get("type").and_then(Value::as_str) {
        Some("Heartbeat") => {
            p.lock().stats.ws_heartbeats += 1;
            Some(json!([{"type": "Heartbeat", "messageId": message_id, "status": 200}]).to_string())
        }
        Some("ClientRequest") => {
            let method = meta.get("method").and_then(Value::as_str).unwrap_or("");
            let path = meta.get("path").and_then(Value::as_str).unwrap_or("");
            let reply = |status: u16, body: Value| {
                Some(
                    json!([{"type": "ClientRequest", "messageId": message_id, "status": status,
                            "headers": {"Content-Type": "application/json"}}, body])
                    .to_string(),
                )
            };
            let is_subscription = path.trim_end_matches('/') == "/restapi/v1.0/subscription";
            if !(method == "POST" && is_subscription) {
                return reply(
                    404,
                    json!({"errorCode": "CMN-102", "message": "Resource for parameter [path] is not found"}),
                );
            }
            let filters: Vec<String> = frame
                .get(1)
                .and_then(|b| b.get("eventFilters"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|f| {
                            f.replace("/account/~", &format!("/account/{ACCOUNT_ID}"))
                                .replace(
                                    "/extension/~",
                                    &format!("/extension/{OWNER_EXTENSION_ID}"),
                                )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let now = p.clock.now();
            let mut s = p.lock();
            if !s.config.websocket_permission {
                s.stats.ws_refused += 1;
                let message = "In order to call this API endpoint, application needs to have \
                               [WebSocketsSubscriptions] permission";
                return reply(
                    403,
                    json!({"errorCode": "SUB-528", "message": message,
                           "errors": [{"errorCode": "SUB-528", "message": message,
                                       "permissionName": "WebSocketsSubscriptions"}],
                           "permissionName": "WebSocketsSubscriptions"}),
                );
            }
            if filters.is_empty() {
                return reply(
                    400,
                    json!({"errorCode": "SUB-406", "message": "Event filters are not specified"}),
                );
            }
            let n = s.next_id();
            let id = format!("ws-sub-{n}");
            if let Some(c) = s.ws.contexts.get_mut(&context) {
                // One subscription per connection: a second request replaces the first.
                c.subscription = Some(WsSubscription {
                    id: id.clone(),
                    filters: filters.clone(),
                });
            }
            s.stats.ws_subscriptions += 1;
            reply(
                200,
                json!({"id": id, "creationTime": ts(now), "status": "Active",
                       "eventFilters": filters, "expirationTime": ts(now + Duration::minutes(15)),
                       "expiresIn": 899,
                       "deliveryMode": {"transportType": "WebSocket", "encryption": false}}),
            )
        }
        _ => None,
    }
}

fn error_frame(code: &str, message: &str) -> String {
    json!([{"type": "Error", "messageId": format!("err-{code}"), "status": 400},
           {"errorCode": code, "message": message}])
    .to_string()
}

/// One connection: `ConnectionDetails` first, the replay, then frames both ways until a
/// timeout, a missed pong, a drop or the client's close.
async fn serve(p: FakePlatform, socket: WebSocket, session: u64, wsc: Option<String>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (context, connection, details, replay) = attach(&p, session, wsc, tx);
    let (mut sink, mut stream) = socket.split();
    let opened = p.clock.now();
    let mut last_from_client = opened;
    let mut ok = sink.send(Message::text(details)).await.is_ok();
    for frame in replay {
        ok = ok && sink.send(Message::text(frame.to_string())).await.is_ok();
    }
    let (ping_every, pong_deadline) = {
        let s = p.lock();
        (s.config.ws_ping_every, s.config.ws_pong_deadline)
    };
    let mut next_ping = tokio::time::Instant::now() + ping_every;
    let mut awaiting_pong: Option<tokio::time::Instant> = None;
    let mut check = tokio::time::interval(std::time::Duration::from_millis(20));
    while ok {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_from_client = p.clock.now();
                    if let Some(reply) = answer(&p, context, text.as_str()) {
                        ok = sink.send(Message::text(reply)).await.is_ok();
                    }
                }
                Some(Ok(Message::Pong(_))) => awaiting_pong = None,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => ok = sink.send(Message::text(text)).await.is_ok(),
                Some(Outgoing::Drop) | None => return detach(&p, context, connection, &mut rx),
                Some(Outgoing::Freeze) => return frozen(p, context, connection, rx, stream).await,
            },
            _ = check.tick() => {
                let wall = tokio::time::Instant::now();
                if awaiting_pong.is_some_and(|sent| wall - sent > pong_deadline) {
                    p.lock().stats.ws_pong_missed += 1;
                    return detach(&p, context, connection, &mut rx);
                }
                if awaiting_pong.is_none() && wall >= next_ping {
                    awaiting_pong = Some(wall);
                    next_ping = wall + ping_every;
                    ok = sink.send(Message::Ping(b"fake".to_vec().into())).await.is_ok();
                }
                let now = p.clock.now();
                let (idle, absolute) = {
                    let s = p.lock();
                    (Duration::seconds(s.config.ws_idle_timeout),
                     Duration::seconds(s.config.ws_absolute_timeout))
                };
                let timeout = if now - opened >= absolute {
                    p.lock().stats.ws_absolute_closed += 1;
                    Some(("WSG-903", "Absolute timeout expired"))
                } else if now - last_from_client >= idle {
                    p.lock().stats.ws_idle_closed += 1;
                    Some(("WSG-902", "Idle timeout expired"))
                } else {
                    None
                };
                if let Some((code, message)) = timeout {
                    // The session is free for a recovery before the client hears of the close.
                    detach(&p, context, connection, &mut rx);
                    let _ = sink.send(Message::text(error_frame(code, message))).await;
                    let _ = sink.close().await;
                    return;
                }
            }
        }
    }
    detach(&p, context, connection, &mut rx);
}

/// A frozen connection: events routed to it vanish (as into a dead link); after the pong
/// deadline the gateway notices and the session waits for a recovery; the socket stays open,
/// unread, until the client closes it.
async fn frozen(
    p: FakePlatform,
    context: u64,
    connection: u64,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    stream: futures_util::stream::SplitStream<WebSocket>,
) {
    let deadline = p.lock().config.ws_pong_deadline;
    let until = tokio::time::Instant::now() + deadline;
    while let Ok(Some(out)) = tokio::time::timeout_at(until, rx.recv()).await {
        if let Outgoing::Text(_) = out {
            p.lock().stats.ws_lost += 1;
        }
    }
    p.lock().stats.ws_pong_missed += 1;
    detach(&p, context, connection, &mut rx);
    // Keep the socket (never read) until the client gives up on it.
    let _stream = stream;
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
}

/// Sends (or, for a disconnected session, buffers) a due event to every WebSocket session
/// whose subscription asks for it. Runs under the platform's lock.
pub(crate) fn route(
    s: &mut crate::State,
    event: &PendingEvent,
    now: DateTime<Utc>,
    wants: impl Fn(&[String]) -> bool,
) {
    let recovery = Duration::seconds(s.config.ws_recovery_timeout);
    let buffer = s.config.ws_recovery_buffer;
    // Sessions past their recovery time are gone with their subscriptions.
    s.ws.contexts.retain(|_, c| {
        c.connection.is_some() || c.disconnected_at.is_some_and(|at| now - at <= recovery)
    });
    let mut counter = s.counter;
    let mut delivered = 0;
    let mut sent_now = Vec::new();
    for c in s.ws.contexts.values_mut() {
        let Some(sub) = &c.subscription else {
            continue;
        };
        if !wants(&sub.filters) {
            continue;
        }
        counter += 1;
        let uuid = format!("{}", 800_000_000_000_000_000u64 + counter);
        let body = callpop_testkit::payloads::rc_notification(
            &uuid,
            &event.event_path,
            now,
            &sub.id,
            OWNER_EXTENSION_ID,
            event.body.clone(),
        );
        let frame = json!([{"type": "ServerNotification", "messageId": uuid, "status": 200,
                            "headers": {"RCRequestId": format!("rq-n-{counter}")}}, body]);
        match &c.connection {
            Some((_, tx)) => {
                if tx.send(Outgoing::Text(frame.to_string())).is_ok() {
                    delivered += 1;
                    sent_now.push(event.body.clone());
                }
            }
            None => {
                c.missed.push_back(frame);
                while c.missed.len() > buffer {
                    c.missed.pop_front();
                }
            }
        }
    }
    s.counter = counter;
    s.stats.ws_delivered += delivered;
    for body in sent_now {
        crate::note_sent(s, "websocket", &body);
    }
}

/// Cuts every connection (see [`crate::FakePlatform::drop_ws_connections`]).
pub(crate) fn drop_all(p: &FakePlatform) {
    tell_all(p, || Outgoing::Drop);
}

/// Silences every connection (see [`crate::FakePlatform::freeze_ws_connections`]).
pub(crate) fn freeze_all(p: &FakePlatform) {
    tell_all(p, || Outgoing::Freeze);
}

fn tell_all(p: &FakePlatform, what: impl Fn() -> Outgoing) {
    let s = p.lock();
    for c in s.ws.contexts.values() {
        if let Some((_, tx)) = &c.connection {
            let _ = tx.send(what());
        }
    }
}
