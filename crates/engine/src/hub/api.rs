//! The desk API's router: the protocol-version check on every request, desk tokens, error
//! answers, and the small routes (status, leave). Pairing is in `pairing.rs`, the change feed in
//! `feed.rs`. Served only on the hub's own TLS listener (`hub/mod.rs`), never on the webhook
//! listener and never through the tunnel.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use callpop_hub::wire::{routes, ErrorBody, HubStatus, PROTOCOL, PROTOCOL_HEADER};
use callpop_hub::Fingerprint;
use callpop_store::writer::StoreWriter;
use callpop_store::StoreError;

use super::directory::{Directory, TokenHolder};
use super::pairing::Pairings;
use super::reader::Readers;
use crate::health::{Health, Status};
use crate::receiver::PeerAddr;

/// Largest request body the desk API reads (pairing messages are a few hundred bytes).
const MAX_BODY: usize = 16 * 1024;

/// What every route shares.
pub type Shared = Arc<HubState>;

/// The hub's state for the desk API.
pub struct HubState {
    /// The hub's name.
    pub name: String,
    /// Where the desk API listens.
    pub listen: std::net::SocketAddr,
    /// The key desks pin.
    pub fingerprint: Fingerprint,
    /// The history's writer (pairing, desks' last seen).
    pub writer: StoreWriter,
    /// Read connections (feed pages).
    pub readers: Readers,
    /// The newest changes, read and serialized once for every stream.
    pub cache: Arc<super::cache::FeedCache>,
    /// Desks and their tokens.
    pub directory: Directory,
    /// Pairing attempts in progress.
    pub pairings: Pairings,
    /// The newest feed position known to be on disk (-1 until known): nothing past it is
    /// sent.
    pub durable: watch::Receiver<i64>,
    /// The hub's health, for its desks' status.
    pub health: Arc<Health>,
    /// Ends open streams when the hub stops.
    pub shutdown: CancellationToken,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with its HTTP status, stable code and sentence.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The history could not be read or written.
    pub fn store(e: StoreError) -> ApiError {
        tracing::warn!(error = %e, "the desk API could not use the history");
        ApiError::new(
            503,
            "unavailable",
            "the hub cannot use its call history right now; try again shortly",
        )
    }

    /// Something that should not happen (no random numbers).
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "the desk API failed");
        ApiError::new(500, "internal", "the hub failed to answer")
    }
}

/// A JSON answer.
pub fn reply<T: serde::Serialize>(status: u16, body: &T) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, axum::Json(body)).into_response()
}

/// An error answer, as JSON.
pub fn error_reply(e: ApiError) -> Response {
    reply(
        e.status,
        &ErrorBody {
            error: e.code.to_string(),
            message: e.message,
        },
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_reply(self)
    }
}

/// The desk API's routes.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route(routes::PAIR_START, post(super::pairing::start))
        .route(routes::PAIR_FINISH, post(super::pairing::finish))
        .route(routes::FEED, get(super::feed::page))
        .route(routes::STREAM, get(super::feed::stream))
        .route(routes::STATUS, get(status))
        .route(routes::LEAVE, post(leave))
        .route(routes::CALL_DELIVERIES, get(call_deliveries))
        .fallback(|| async {
            ApiError::new(
                404,
                "not_found",
                "the hub has no such route: is this desk up to date?",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(protocol))
        .with_state(shared)
}

/// Every request names the protocol version it speaks; another version is told which side to
/// update instead of being read. Every answer names the hub's.
async fn protocol(request: Request, next: Next) -> Response {
    let theirs = request
        .headers()
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let mut response = match theirs {
        Some(PROTOCOL) => next.run(request).await,
        Some(v) if v < PROTOCOL => ApiError::new(
            426,
            "protocol",
            format!(
                "this desk speaks version {v} of the hub protocol and the hub version \
                 {PROTOCOL}: update CallPop on this desk"
            ),
        )
        .into_response(),
        Some(v) => ApiError::new(
            426,
            "protocol",
            format!(
                "this desk speaks version {v} of the hub protocol and the hub only version \
                 {PROTOCOL}: update CallPop on the hub"
            ),
        )
        .into_response(),
        None => ApiError::new(
            426,
            "protocol",
            format!("requests to a CallPop hub must name the protocol version ({PROTOCOL_HEADER})"),
        )
        .into_response(),
    };
    response
        .headers_mut()
        .insert(PROTOCOL_HEADER, HeaderValue::from(PROTOCOL));
    response
}

impl HubState {
    /// Whether the hub knows its desks and its durable feed position yet: until then it
    /// answers 503, never "unknown desk" or an empty feed.
    pub fn ready(&self) -> bool {
        self.directory.is_loaded() && *self.durable.borrow() >= 0
    }
}

/// 503 until the hub is [ready](HubState::ready).
pub fn ready(shared: &HubState) -> Result<(), ApiError> {
    if shared.ready() {
        Ok(())
    } else {
        Err(ApiError::new(
            503,
            "starting",
            "the hub is starting; try again in a moment",
        ))
    }
}

/// The bearer token a request carries (empty when none).
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
}

/// The hash of the bearer token a request carries.
pub fn bearer_hash(headers: &HeaderMap) -> String {
    super::directory::token_hash(bearer(headers))
}

/// The desk a request's bearer token belongs to.
pub fn authenticate(shared: &HubState, headers: &HeaderMap) -> Result<String, ApiError> {
    ready(shared)?;
    match shared.directory.holder(bearer(headers)) {
        TokenHolder::Desk(name) => Ok(name),
        TokenHolder::Removed(name) => Err(ApiError::new(
            403,
            "removed",
            format!("the desk \"{name}\" was removed from this hub: pair it again to rejoin"),
        )),
        TokenHolder::Unknown => Err(ApiError::new(
            401,
            "unauthorized",
            "this desk is not paired with this hub",
        )),
    }
}

/// The CallPop version a request says it comes from.
pub fn version_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.strip_prefix("CallPop/"))
        .map(|v| v.split_whitespace().next().unwrap_or(v))
}

/// `GET /v1/status`: whether the hub is receiving calls, in its own words.
async fn status(
    State(shared): State<Shared>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let desk = authenticate(&shared, &headers)?;
    shared
        .directory
        .seen(&desk, peer, version_of(&headers), None);
    let snapshot = shared.health.snapshot();
    let receiving = !matches!(snapshot.status, Status::NotReceiving | Status::Error);
    let headline = match &snapshot.attention {
        Some(a) => a.text.clone(),
        None if receiving => "Receiving calls".to_string(),
        None => "Not receiving calls".to_string(),
    };
    Ok(reply(
        200,
        &HubStatus {
            name: shared.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            receiving,
            headline,
            desk_name: desk,
        },
    ))
}

/// `?provider=P&key=K`.
#[derive(Debug, serde::Deserialize)]
struct CallKey {
    provider: String,
    key: String,
}

/// The most deliveries of one call sent to a desk.
const MAX_DELIVERIES: usize = 200;
/// The most body bytes in one answer: a call's deliveries are a few kilobytes each; a body past
/// this is cut (its hash still names the whole).
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// `GET /v1/calls/deliveries`: a call's raw deliveries, for a desk's detail view.
async fn call_deliveries(
    State(shared): State<Shared>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CallKey>,
) -> Result<Response, ApiError> {
    authenticate(&shared, &headers)?;
    let provider = callpop_core::model::Provider::parse(&query.provider)
        .ok_or_else(|| ApiError::new(400, "bad_provider", "no such phone system"))?;
    let key = query.key;
    let raw = shared
        .readers
        .with(move |store| {
            let Some(record) = store.call_by_key(provider, &key)? else {
                return Ok(Vec::new());
            };
            store.events(&callpop_store::EventFilter {
                call_id: Some(record.id),
                limit: MAX_DELIVERIES,
            })
        })
        .await
        .map_err(ApiError::store)?;
    let mut budget = MAX_ANSWER_BYTES;
    let deliveries = raw
        .into_iter()
        .map(|mut r| {
            let keep = r.body.len().min(budget);
            budget -= keep;
            r.body.truncate(keep);
            r
        })
        .map(|r| callpop_hub::wire::RawDelivery {
            id: r.id,
            provider: r.provider,
            kind: r.kind,
            dedup_key: r.dedup_key,
            received_at: r.received_at,
            event_time: r.event_time,
            body_sha256: r.body_sha256,
            headers: r.headers,
            body: String::from_utf8_lossy(&r.body).into_owned(),
            redeliveries: r.redeliveries,
        })
        .collect();
    Ok(reply(
        200,
        &callpop_hub::wire::CallDeliveries { deliveries },
    ))
}

/// `POST /v1/leave`: the desk goes back to standalone; its token stops working.
async fn leave(State(shared): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let desk = authenticate(&shared, &headers)?;
    shared
        .writer
        .hub_revoke(&desk, chrono::Utc::now())
        .await
        .map_err(ApiError::store)?;
    shared.directory.remove(&desk);
    tracing::info!(%desk, "a desk left the hub");
    Ok(reply(200, &serde_json::json!({ "left": desk })))
}
