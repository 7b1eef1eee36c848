//! The HTTP receiver: webhook routes for RingCentral and Ringotel plus `/healthz`.
//!
//! Order of checks on a RingCentral delivery: size → handshake (empty body + validation
//! header, answered before anything else) → token → content type → parse → store → 200.
//! Ringotel carries its token inside the JSON body, so the body is read before the token is
//! checked. A 200 is sent only after the store has committed the delivery.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::health::{Health, StorageTicket};
use callpop_core::model::{Delivery, Origin, ParsedDelivery, Payload, Provider, RenewalReminder};
use callpop_core::numbers::Country;
use callpop_core::wire::ParseError;
use callpop_core::Secret;
use callpop_core::{ringcentral, ringotel};
use callpop_store::writer::StoreWriter;
use callpop_store::{IngestOutcome, QuarantineEntry};

use callpop_core::routes::{RINGCENTRAL_PATH, RINGOTEL_PATH};

/// The longest validation token echoed back; keeps the handshake reply far below 1024 bytes.
const MAX_VALIDATION_TOKEN: usize = 512;

/// How long a client may take to send a request body once its headers are in. Senders must
/// be answered within 3 s (docs/PROTOCOL.md §1.1), so a body still arriving after this is a dead
/// link or an attack; without a limit it held its connection, and memory, forever.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    writer: StoreWriter,
    health: Arc<Health>,
    ringcentral_token: Option<Secret>,
    ringotel_token: Option<Secret>,
    country: Country,
    max_body_bytes: usize,
    reminders: Option<mpsc::Sender<RenewalReminder>>,
    clock: callpop_clock::Clock,
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
                writer,
                health,
                ringcentral_token: settings.ringcentral_token,
                ringotel_token: settings.ringotel_token,
                country: settings.country,
                max_body_bytes: settings.max_body_bytes,
                reminders: settings.reminders,
                clock: settings.clock,
            }),
        }
    }

    /// The router of the local listener: the webhook routes and `/healthz`.
    pub fn router(&self) -> Router {
        self.routes(true)
    }

    /// The router behind the public tunnel: the webhook routes only. Health names the account's
    /// subscription, the machine's paths and its problems, which are nobody's business on the
    /// internet; the window, the CLI and monitoring read it on the local listener.
    pub fn public_router(&self) -> Router {
        self.routes(false)
    }

    fn routes(&self, with_health: bool) -> Router {
        let webhooks = Router::new()
            .route(RINGCENTRAL_PATH, post(ringcentral_webhook))
            .route(RINGOTEL_PATH, post(ringotel_webhook));
        let routes = if with_health {
            webhooks.route("/healthz", get(healthz))
        } else {
            webhooks
        };
        routes
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.clone())
    }
}

/// A refused request: becomes a JSON reply `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Close the connection (the client may still be sending a body we will not read).
    close: bool,
}

impl Reject {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Reject {
        Reject {
            status,
            code,
            message: message.into(),
            close: false,
        }
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A JSON error reply.
fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    Reject::new(status, code, message).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint only accepts the documented method (webhooks: POST)",
    )
}

async fn healthz(State(r): State<Receiver>) -> Response {
    let snapshot = r.inner.health.snapshot();
    let status = if snapshot.status == crate::health::Status::Error {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(snapshot)).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|n| headers.get(*n))
        .find_map(|v| v.to_str().ok())
}

/// Compares secrets without revealing, by timing, how much of them matched (or their length).
fn token_matches(expected: &Secret, presented: &str) -> bool {
    let a = Sha256::digest(expected.expose().as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    a.ct_eq(&b).into()
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

impl Inner {
    /// Counts a refused request and turns it into its reply.
    fn rejected(&self, provider: Provider, r: Reject) -> Response {
        self.health.provider(provider, |c| c.rejected += 1);
        r.into_response()
    }

    /// Reads the body within the size cap and [`BODY_READ_TIMEOUT`]: a declared length over
    /// the cap is refused before any of the body is read, a longer streamed body as soon as it
    /// passes the cap, a slow one when its time is up.
    async fn read_capped(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Reject> {
        check_declared_length(headers, self.max_body_bytes)?;
        tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body, self.max_body_bytes))
            .await
            .unwrap_or_else(|_| Err(body_timeout()))
    }
}

/// Reads the body up to `limit` bytes; a longer body is refused without reading the rest.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Reject> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut too_long = false;
        while let Some(c) = cause {
            too_long |= c.is::<http_body_util::LengthLimitError>();
            cause = c.source();
        }
        if too_long {
            too_large(limit)
        } else {
            Reject::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the request body could not be read: {e}"),
            )
        }
    })
}

fn too_large(limit: usize) -> Reject {
    Reject {
        close: true,
        ..Reject::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("bodies are limited to {limit} bytes"),
        )
    }
}

fn body_timeout() -> Reject {
    Reject {
        close: true,
        ..Reject::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} seconds",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )
    }
}

/// Rejects a declared body size over the cap before reading any of it.
fn check_declared_length(headers: &HeaderMap, limit: usize) -> Result<(), Reject> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// JSON bodies only; a missing content type is tolerated (some senders omit it).
fn check_content_type(headers: &HeaderMap) -> Result<(), Reject> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence == "text/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(Reject::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: application/json, got {essence:?}"),
        ))
    }
}

fn unauthorized(
    provider: Provider,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    reason: &str,
) -> Response {
    tracing::warn!(
        target: "callpop::security",
        provider = provider.as_str(),
        peer = ?peer,
        forwarded_for = header_str(headers, &["x-forwarded-for"]).unwrap_or("-"),
        reason,
        "webhook delivery rejected"
    );
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        match provider {
            Provider::RingCentral => "missing or wrong verification token",
            Provider::Ringotel => "missing or wrong api_token",
        },
    )
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

async fn ringcentral_webhook(
    State(r): State<Receiver>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = &r.inner;
    let peer = peer.map(|Extension(PeerAddr(a))| a);
    let provider = Provider::RingCentral;
    let received_at = inner.clock.now();
    let reject = |r: Reject| inner.rejected(provider, r);
    let body = match inner.read_capped(&headers, body).await {
        Ok(b) => b,
        Err(r) => return reject(r),
    };

    // The handshake: answered before auth, parsing or storage (docs/PROTOCOL.md §0 #2).
    if is_blank(&body) {
        let token = header_str(
            &headers,
            &[
                "validation-token",
                "x_validation_token",
                "x-validation-token",
            ],
        );
        return match token {
            Some(token) if !token.is_empty() && token.len() <= MAX_VALIDATION_TOKEN => {
                inner.health.provider(provider, |c| c.handshakes += 1);
                handshake_reply(token)
            }
            Some(_) => reject(Reject::new(
                StatusCode::BAD_REQUEST,
                "invalid_validation_token",
                format!("Validation-Token must be 1 to {MAX_VALIDATION_TOKEN} visible characters"),
            )),
            None => reject(Reject::new(
                StatusCode::BAD_REQUEST,
                "empty_body",
                "empty body without a Validation-Token header",
            )),
        };
    }

    if let Some(expected) = &inner.ringcentral_token {
        let presented = header_str(
            &headers,
            &[
                "verification-token",
                "verification_token",
                "validation-token",
            ],
        );
        let verdict = match presented {
            None => Some("missing verification token"),
            Some(p) if !token_matches(expected, p) => Some("wrong verification token"),
            Some(_) => None,
        };
        if let Some(reason) = verdict {
            inner.health.provider(provider, |c| c.unauthorized += 1);
            return unauthorized(provider, peer, &headers, reason);
        }
    }
    if let Err(response) = check_content_type(&headers) {
        return reject(response);
    }
    let kept = kept_headers(&headers, peer);
    let sha = sha256_hex(&body);
    match ringcentral::webhook::parse_delivery(&body, &inner.country, received_at) {
        Ok(parsed) => {
            let delivery = Delivery {
                parsed,
                origin: Origin::Webhook,
                received_at,
                headers: kept,
                body: body.to_vec(),
                body_sha256: sha,
            };
            store(inner, delivery).await
        }
        Err(e) => quarantine(inner, provider, received_at, kept, body.to_vec(), sha, e).await,
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

async fn ringotel_webhook(
    State(r): State<Receiver>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = &r.inner;
    let peer = peer.map(|Extension(PeerAddr(a))| a);
    let provider = Provider::Ringotel;
    let received_at = inner.clock.now();
    let reject = |r: Reject| inner.rejected(provider, r);
    let body = match inner.read_capped(&headers, body).await {
        Ok(b) => b,
        Err(r) => return reject(r),
    };
    if let Err(response) = check_content_type(&headers) {
        return reject(response);
    }
    let kept = kept_headers(&headers, peer);
    let sha = sha256_hex(&body);
    let request = match ringotel::read_request(&body) {
        Ok(request) => request,
        // Without a configured token every sender is trusted, so keep what it sent.
        Err(e) if inner.ringotel_token.is_none() => {
            return quarantine(inner, provider, received_at, kept, body.to_vec(), sha, e).await
        }
        Err(e) => {
            return reject(Reject::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                e.to_string(),
            ))
        }
    };
    if let Some(expected) = &inner.ringotel_token {
        let verdict = match request.api_token.as_deref() {
            None => Some("missing api_token"),
            Some(p) if !token_matches(expected, p) => Some("wrong api_token"),
            Some(_) => None,
        };
        if let Some(reason) = verdict {
            inner.health.provider(provider, |c| c.unauthorized += 1);
            return unauthorized(provider, peer, &headers, reason);
        }
    }
    let stored_body = ringotel::redact_token(&body, request.api_token.as_deref());
    match ringotel::parse_delivery(request, &sha, &inner.country, received_at) {
        Ok(parsed) => {
            let delivery = Delivery {
                parsed,
                origin: Origin::Webhook,
                received_at,
                headers: kept,
                body: stored_body,
                body_sha256: sha,
            };
            store(inner, delivery).await
        }
        Err(e) => quarantine(inner, provider, received_at, kept, stored_body, sha, e).await,
    }
}

fn storage_unavailable(
    inner: &Inner,
    ticket: StorageTicket,
    e: &callpop_store::StoreError,
) -> Response {
    tracing::error!(error = %e, "delivery not stored");
    inner.health.storage_failed(ticket, storage_problem(e));
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

/// What the health page says about a failed write: `unwritable: <why>` when the disk or file
/// refused it, else the error itself.
fn storage_problem(e: &callpop_store::StoreError) -> String {
    match e.storage_reason() {
        Some(reason) => format!("unwritable: {reason}"),
        None => e.to_string(),
    }
}

async fn store(inner: &Inner, delivery: Delivery) -> Response {
    let provider = delivery.parsed.provider;
    let reminder = match &delivery.parsed.payload {
        Payload::Reminder(reminder) => Some(reminder.clone()),
        _ => None,
    };
    let summary = summarize(&delivery.parsed);
    let ticket = inner.health.storage_ticket();
    match inner.writer.ingest(delivery).await {
        Ok(IngestOutcome::Stored { .. }) => {
            inner.health.storage_succeeded(ticket);
            inner.health.provider(provider, |c| {
                c.accepted += 1;
                c.last_accepted_at = Some(inner.clock.now());
            });
            tracing::debug!(provider = provider.as_str(), %summary, "delivery stored");
            if let (Some(reminder), Some(tx)) = (reminder, &inner.reminders) {
                if tx.try_send(reminder).is_err() {
                    tracing::warn!("subscription keeper is busy; renewal reminder dropped (the renewal timer still runs)");
                }
            }
            (StatusCode::OK, Json(json!({"status": "accepted"}))).into_response()
        }
        Ok(IngestOutcome::Duplicate {
            same_body, counted, ..
        }) => {
            // Recognised from the stored copy while the history cannot be written: nothing
            // was written, so the storage problem is not over.
            if counted {
                inner.health.storage_succeeded(ticket);
            }
            inner.health.provider(provider, |c| c.duplicates += 1);
            if !same_body {
                tracing::warn!(provider = provider.as_str(), %summary,
                    "re-delivery with a known id but a different body; kept the first, ignored this one");
            }
            (StatusCode::OK, Json(json!({"status": "duplicate"}))).into_response()
        }
        Err(e) => not_stored(inner, provider, ticket, &e),
    }
}

/// The reply to a delivery the writer did not store.
fn not_stored(
    inner: &Inner,
    provider: Provider,
    ticket: StorageTicket,
    e: &callpop_store::StoreError,
) -> Response {
    match e {
        callpop_store::StoreError::Internal { .. } => internal_failure(inner, provider, e),
        _ => storage_unavailable(inner, ticket, e),
    }
}

/// A bug in CallPop stopped this delivery (not the disk): 500, and the delivery is counted
/// as quarantined when the writer could keep it there.
fn internal_failure(inner: &Inner, provider: Provider, e: &callpop_store::StoreError) -> Response {
    tracing::error!(provider = provider.as_str(), error = %e, "delivery not stored");
    if let callpop_store::StoreError::Internal {
        quarantine_id: Some(_),
        ..
    } = e
    {
        inner.health.provider(provider, |c| c.quarantined += 1);
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        e.to_string(),
    )
}

fn summarize(p: &ParsedDelivery) -> String {
    format!("{} {} ({})", p.provider.as_str(), p.kind, p.dedup_key)
}

async fn quarantine(
    inner: &Inner,
    provider: Provider,
    received_at: chrono::DateTime<Utc>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    body_sha256: String,
    reason: ParseError,
) -> Response {
    let entry = QuarantineEntry {
        provider,
        received_at,
        reason: reason.to_string(),
        headers,
        body,
        body_sha256,
    };
    let ticket = inner.health.storage_ticket();
    match inner.writer.quarantine(entry).await {
        Ok(id) => {
            // A commit went through: the history is writable again.
            inner.health.storage_succeeded(ticket);
            inner.health.provider(provider, |c| c.quarantined += 1);
            tracing::warn!(provider = provider.as_str(), quarantine_id = id, %reason,
                "unusable delivery quarantined");
            error(StatusCode::BAD_REQUEST, "invalid_body", reason.to_string())
        }
        Err(e) => not_stored(inner, provider, ticket, &e),
    }
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
