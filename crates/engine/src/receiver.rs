//! The HTTP receiver: webhook routes for RingCentral and Ringotel plus `/healthz`.
//!
//! Every request is first judged from its head alone (`callpop_core::request_head::decide`:
//! route, Host of local-only routes, declared size, RingCentral's handshake and token header,
//! content type), so a RingCentral sender without the token is refused before any of its body
//! is read. Ringotel carries its token inside the JSON body, so that body is read (within the
//! size cap and [`BODY_READ_TIMEOUT`]) before the token is checked. A 200 is sent only after
//! the store has committed the delivery.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::deliveries::{Arrival, DeliverySink, Kept};
use crate::health::Health;
use callpop_core::model::{Origin, ParsedDelivery, Provider, RenewalReminder};
use callpop_core::numbers::Country;
use callpop_core::request_head::{
    self, AfterBody, Decision, Listener, Policy, Refusal, RequestHead,
};
use callpop_core::wire::ParseError;
use callpop_core::Secret;
use callpop_core::{ringcentral, ringotel};
use callpop_store::writer::StoreWriter;

/// How long a client may take to send a request body once its headers are in. Senders must
/// be answered within 3 s (docs/PROTOCOL.md §1.1) and do not wait longer, so a body still
/// arriving after this is a dead link or an attack holding a connection slot.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Request headers kept with a stored delivery (never credentials).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
];

/// The client's address, put on each request by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Everything the handlers need; cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

struct Inner {
    sink: DeliverySink,
    health: Arc<Health>,
    ringcentral_token: Option<Secret>,
    ringotel_token: Option<Secret>,
    country: Country,
    max_body_bytes: usize,
    clock: callpop_clock::Clock,
    desk_of: Option<String>,
}

/// Settings for [`Receiver::new`].
pub struct ReceiverSettings {
    /// Expected RingCentral verification token (`None` disables the check).
    pub ringcentral_token: Option<Secret>,
    /// Expected Ringotel `api_token` (`None` disables the check).
    pub ringotel_token: Option<Secret>,
    /// Country for reading national numbers.
    pub country: Country,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Where renewal reminders go (the subscription keeper).
    pub reminders: Option<mpsc::Sender<RenewalReminder>>,
    /// The engine's clock (stamps arrival times).
    pub clock: callpop_clock::Clock,
    /// On a desk: its hub's name; webhooks are then refused (they go to the hub).
    pub desk_of: Option<String>,
}

/// The receiver as served on one listener.
#[derive(Clone)]
struct Served {
    receiver: Receiver,
    listener: Listener,
}

impl Receiver {
    /// Builds the receiver on a store writer.
    pub fn new(writer: StoreWriter, health: Arc<Health>, settings: ReceiverSettings) -> Receiver {
        health.provider(Provider::RingCentral, |c| {
            c.token_required = settings.ringcentral_token.is_some()
        });
        health.provider(Provider::Ringotel, |c| {
            c.token_required = settings.ringotel_token.is_some()
        });
        Receiver {
            inner: Arc::new(Inner {
                sink: DeliverySink::new(writer, health.clone(), settings.reminders, settings.clock),
                health,
                ringcentral_token: settings.ringcentral_token,
                ringotel_token: settings.ringotel_token,
                country: settings.country,
                max_body_bytes: settings.max_body_bytes,
                clock: settings.clock,
                desk_of: settings.desk_of,
            }),
        }
    }

    /// The router of the local listener: the webhook routes and `/healthz` (for loopback
    /// Host names only).
    pub fn router(&self) -> Router {
        self.routes(Listener::Local)
    }

    /// The router behind the public tunnel: the webhook routes only. Health names the account's
    /// subscription, the machine's paths and its problems, which are nobody's business on the
    /// internet; the window, the CLI and monitoring read it on the local listener.
    pub fn public_router(&self) -> Router {
        self.routes(Listener::Public)
    }

    fn routes(&self, listener: Listener) -> Router {
        // One handler: which route a request is for is part of the decision from its head.
        Router::new().fallback(receive).with_state(Served {
            receiver: self.clone(),
            listener,
        })
    }
}

/// Answers a refusal: `{"error": {"code": …, "message": …}}` with its status, closing the
/// connection when the client may still be sending a body that will not be read.
fn refusal_response(r: &Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"error": {"code": r.code, "message": r.message}});
    let mut response = (status, Json(body)).into_response();
    if r.close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A JSON error reply.
fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    refusal_response(&Refusal::new(status.as_u16(), code, message))
}

fn header_str<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|n| headers.get(*n))
        .find_map(|v| v.to_str().ok())
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn kept_headers(headers: &HeaderMap, peer: Option<SocketAddr>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            headers.get(*name).map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes());
                // Cut at the 512th character without rebuilding the string character by
                // character: that was 4 % of the HTTP side's time for a header that is short.
                let end = text.char_indices().nth(512).map_or(text.len(), |(i, _)| i);
                (name.to_string(), text[..end].to_string())
            })
        })
        .collect();
    if let Some(peer) = peer {
        out.push(("peer".into(), peer.to_string()));
    }
    out
}

/// One request, from its head to its reply.
async fn receive(
    State(served): State<Served>,
    peer: Option<Extension<PeerAddr>>,
    request: Request,
) -> Response {
    let inner = &served.receiver.inner;
    let peer = peer.map(|Extension(PeerAddr(a))| a);
    let received_at = inner.clock.now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let listed: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let head = RequestHead {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers: &listed,
        listener: served.listener,
    };
    let policy = Policy {
        ringcentral_token: inner.ringcentral_token.as_ref(),
        max_body_bytes: inner.max_body_bytes,
    };
    let decision = request_head::decide(&head, &policy);
    if let (Some(hub), Decision::Handshake { .. } | Decision::ReadBody { .. }) =
        (&inner.desk_of, &decision)
    {
        // A desk hears calls from its hub only: a phone system still sending here would be
        // acknowledged for nothing.
        return error(
            StatusCode::CONFLICT,
            "desk",
            format!(
                "this CallPop is a desk of the hub \"{hub}\": the phone system must send \
                 calls to the hub"
            ),
        );
    }
    let (provider, cap, then) = match decision {
        Decision::Refuse(r) => return inner.refused(&r, peer, headers),
        Decision::Health => return healthz(inner),
        Decision::Handshake { token } => return inner.handshake(token),
        Decision::ReadBody {
            provider,
            cap,
            then,
        } => (provider, cap, then),
    };
    let body = match read_within_deadline(body, cap).await {
        Ok(body) => body,
        // The body of a maybe-handshake is bounded by a small cap: past it, it is neither
        // (a slow one is still a timeout).
        Err(r)
            if r.status != 408
                && matches!(then, AfterBody::RingCentralHandshakeOrRefuse { .. }) =>
        {
            let r = Refusal::unauthorized(provider, "wrong verification token").closing();
            return inner.refused(&r, peer, headers);
        }
        Err(r) => return inner.refused(&r.of(provider), peer, headers),
    };
    let arrived = Arrived {
        received_at,
        kept: kept_headers(headers, peer),
        sha: sha256_hex(&body),
        body,
    };
    match then {
        AfterBody::RingCentral => ringcentral_body(inner, arrived).await,
        AfterBody::RingCentralHandshakeOrRefuse { token } if is_blank(&arrived.body) => {
            inner.handshake(token)
        }
        AfterBody::RingCentralHandshakeOrRefuse { .. } => {
            let r = Refusal::unauthorized(provider, "wrong verification token");
            inner.refused(&r, peer, headers)
        }
        AfterBody::Ringotel => ringotel_body(inner, arrived, peer, headers).await,
    }
}

/// A body that was read, with what is kept of its request.
struct Arrived {
    received_at: chrono::DateTime<Utc>,
    kept: Vec<(String, String)>,
    sha: String,
    body: Bytes,
}

fn healthz(inner: &Inner) -> Response {
    let snapshot = inner.health.snapshot();
    let status = if snapshot.status == crate::health::Status::Error {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(snapshot)).into_response()
}

impl Inner {
    /// Counts a refused request, logs a failed authentication, and turns it into its reply.
    fn refused(&self, r: &Refusal, peer: Option<SocketAddr>, headers: &HeaderMap) -> Response {
        if let Some(provider) = r.provider {
            match r.unauthorized {
                Some(reason) => {
                    // A wrong token (not a missing one) came in the provider's own shape: the
                    // phone system itself, set up with another token. Scanners send none.
                    let lost_call = reason.starts_with("wrong");
                    self.health.provider(provider, |c| {
                        c.unauthorized += 1;
                        if lost_call {
                            c.wrong_token += 1;
                            c.last_wrong_token_at = Some(chrono::Utc::now());
                        }
                    });
                    tracing::warn!(
                        target: "callpop::security",
                        provider = provider.as_str(),
                        peer = ?peer,
                        forwarded_for = header_str(headers, &["x-forwarded-for"]).unwrap_or("-"),
                        reason,
                        "webhook delivery rejected"
                    );
                }
                None => self.health.provider(provider, |c| c.rejected += 1),
            }
        }
        refusal_response(r)
    }

    /// RingCentral's handshake: the token echoed, nothing stored (docs/PROTOCOL.md §0 #2).
    fn handshake(&self, token: &str) -> Response {
        self.health
            .provider(Provider::RingCentral, |c| c.handshakes += 1);
        handshake_reply(token)
    }
}

/// Reads the body up to `cap` bytes within [`BODY_READ_TIMEOUT`]: a longer streamed body is
/// refused as soon as it passes the cap, a slow one when its time is up.
async fn read_within_deadline(body: Body, cap: usize) -> Result<Bytes, Refusal> {
    tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body, cap))
        .await
        .unwrap_or_else(|_| Err(body_timeout()))
}

/// Reads the body up to `limit` bytes; a longer body is refused without reading the rest.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut too_long = false;
        while let Some(c) = cause {
            too_long |= c.is::<http_body_util::LengthLimitError>();
            cause = c.source();
        }
        if too_long {
            Refusal::new(
                413,
                "payload_too_large",
                format!("bodies are limited to {limit} bytes"),
            )
            .closing()
        } else {
            Refusal::new(
                400,
                "unreadable_body",
                format!("the request body could not be read: {e}"),
            )
        }
    })
}

fn body_timeout() -> Refusal {
    Refusal::new(
        408,
        "request_timeout",
        format!(
            "the request body did not arrive within {} seconds",
            BODY_READ_TIMEOUT.as_secs()
        ),
    )
    .closing()
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// A RingCentral notification whose sender passed the token check: parsed, then stored or
/// quarantined.
async fn ringcentral_body(inner: &Inner, arrived: Arrived) -> Response {
    let provider = Provider::RingCentral;
    if is_blank(&arrived.body) {
        // Announced a body but sent only blanks: not a handshake (that has no body at all).
        let r = Refusal::new(400, "empty_body", "the body is blank").of(provider);
        inner.health.provider(provider, |c| c.rejected += 1);
        return refusal_response(&r);
    }
    let parsed =
        ringcentral::webhook::parse_delivery(&arrived.body, &inner.country, arrived.received_at);
    let body = arrived.body.to_vec();
    keep(inner, provider, arrived, body, parsed).await
}

/// Stores a parsed delivery, or quarantines the body it could not be parsed from, and
/// answers: 200 only once it is on disk. `body` is what is kept of it (a Ringotel body
/// without its token).
async fn keep(
    inner: &Inner,
    provider: Provider,
    arrived: Arrived,
    body: Vec<u8>,
    parsed: Result<ParsedDelivery, ParseError>,
) -> Response {
    let arrival = Arrival {
        provider,
        origin: Origin::Webhook,
        received_at: arrived.received_at,
        headers: arrived.kept,
        body,
        sha256: arrived.sha,
    };
    match inner.sink.keep(arrival, parsed).await {
        Kept::Stored => (StatusCode::OK, Json(json!({"status": "accepted"}))).into_response(),
        Kept::Duplicate => (StatusCode::OK, Json(json!({"status": "duplicate"}))).into_response(),
        Kept::Quarantined(reason) => {
            error(StatusCode::BAD_REQUEST, "invalid_body", reason.to_string())
        }
        Kept::Refused(why) => error(StatusCode::BAD_REQUEST, "refused", why),
        Kept::Internal(why) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", why),
        Kept::Unavailable => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the delivery could not be stored; retry later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            response
        }
    }
}

fn handshake_reply(token: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(token) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_validation_token",
            "Validation-Token is not a valid header value",
        );
    };
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(HeaderName::from_static("validation-token"), value);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A Ringotel request: its token is checked once the body has been read far enough to find
/// it.
async fn ringotel_body(
    inner: &Inner,
    arrived: Arrived,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Response {
    let provider = Provider::Ringotel;
    let request = match ringotel::read_request(&arrived.body) {
        Ok(request) => request,
        // Without a configured token every sender is trusted, so keep what it sent.
        Err(e) if inner.ringotel_token.is_none() => {
            let body = arrived.body.to_vec();
            return keep(inner, provider, arrived, body, Err(e)).await;
        }
        Err(e) => {
            let r = Refusal::new(400, "invalid_body", e.to_string()).of(provider);
            return inner.refused(&r, peer, headers);
        }
    };
    if let Some(expected) = &inner.ringotel_token {
        let verdict = match request.api_token.as_deref() {
            None => Some("missing api_token"),
            Some(p) if !expected.matches(p) => Some("wrong api_token"),
            Some(_) => None,
        };
        if let Some(reason) = verdict {
            return inner.refused(&Refusal::unauthorized(provider, reason), peer, headers);
        }
    }
    let stored_body = ringotel::redact_token(&arrived.body, request.api_token.as_deref());
    let parsed =
        ringotel::parse_delivery(request, &arrived.sha, &inner.country, arrived.received_at);
    keep(inner, provider, arrived, stored_body, parsed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_are_cut_at_512_characters_not_bytes_and_made_valid_text() {
        let mut headers = HeaderMap::new();
        let long = "é".repeat(600);
        headers.insert(
            "user-agent",
            HeaderValue::from_bytes(long.as_bytes()).expect("header"),
        );
        headers.insert(
            "content-type",
            HeaderValue::from_bytes(b"text/\xffplain").expect("header"),
        );
        let peer: SocketAddr = "127.0.0.1:4242".parse().expect("addr");
        let kept = kept_headers(&headers, Some(peer));
        let value = |name: &str| {
            kept.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(value("user-agent"), "é".repeat(512));
        assert_eq!(value("content-type"), "text/\u{fffd}plain");
        assert_eq!(value("peer"), "127.0.0.1:4242");
        assert_eq!(kept.len(), 3, "{kept:?}");
    }
}
