//! The fake's HTTP API: the token endpoint, subscriptions and the call log, with RingCentral's
//! error bodies (`{"errorCode", "message", "errors": [...]}`), rate-limit groups and the
//! validation handshake.

use std::time::Duration as StdDuration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{FakePlatform, FakeSubscription, Group, ACCOUNT_ID, OWNER_EXTENSION_ID};

pub(crate) fn router(p: FakePlatform) -> Router {
    Router::new()
        .route("/restapi/oauth/token", post(token))
        .route("/restapi/oauth/wstoken", post(crate::websocket::ws_token))
        .route("/ws", get(crate::websocket::connect))
        .route("/restapi/v1.0/subscription", get(list).post(create))
        .route(
            "/restapi/v1.0/subscription/{id}",
            get(read).put(update).delete(remove),
        )
        .route("/restapi/v1.0/subscription/{id}/renew", post(renew))
        .route("/restapi/v1.0/account/{account}/call-log", get(call_log))
        .route(
            "/restapi/v1.0/account/{account}/extension/{extension}/message-store/{id}",
            get(crate::messages::read),
        )
        .route(
            "/restapi/v1.0/account/{account}/extension/{extension}/message-store/{id}/content/{attachment}",
            get(crate::messages::content),
        )
        .with_state(p)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errorCode": code, "message": message,
                    "errors": [{"errorCode": code, "message": message}]})),
    )
        .into_response()
}

/// Applies the group's rate limit; `Some(response)` when the request must be refused.
pub(crate) fn limited(p: &FakePlatform, group: Group) -> Option<Response> {
    let now = p.clock.now();
    let mut s = p.lock();
    if s.retry_after_until.get(&group).is_some_and(|t| now < *t) {
        s.stats.ignored_retry_after += 1;
    }
    if let Some((until, retry)) = s.storms.get(&group).copied() {
        if now < until {
            s.stats.rate_limited += 1;
            s.retry_after_until
                .insert(group, now + Duration::seconds(retry));
            return Some(too_many(retry));
        }
    }
    let limit = s.config.limits.get(&group).copied().unwrap_or(u32::MAX);
    let state = s.rates.entry(group).or_default();
    if let Some(until) = state.penalty_until {
        if now < until {
            // Every request inside the penalty window restarts it (docs/PROTOCOL.md §0 #19).
            state.penalty_until = Some(now + Duration::seconds(60));
            s.stats.during_penalty += 1;
            s.stats.rate_limited += 1;
            s.retry_after_until
                .insert(group, now + Duration::seconds(60));
            return Some(too_many(60));
        }
        state.penalty_until = None;
    }
    state.hits.retain(|t| now - *t < Duration::seconds(60));
    if state.hits.len() as u32 >= limit {
        state.penalty_until = Some(now + Duration::seconds(60));
        s.stats.rate_limited += 1;
        s.retry_after_until
            .insert(group, now + Duration::seconds(60));
        return Some(too_many(60));
    }
    state.hits.push(now);
    None
}

fn too_many(retry_after: i64) -> Response {
    let mut r = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "CMN-301",
        "Request rate exceeded",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert("Retry-After", v);
    }
    r
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
    refresh_token: Option<String>,
}

fn invalid_grant() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "errorCode": "OAU-140",
                    "message": "Invalid resource owner credentials",
                    "error_description": "Invalid resource owner credentials"})),
    )
        .into_response()
}

async fn token(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Some(r) = limited(&p, Group::Auth) {
        return r;
    }
    let (id, secret, jwt, ttl) = {
        let s = p.lock();
        (
            s.config.client_id.clone(),
            s.config.client_secret.clone(),
            s.config.jwt.clone(),
            s.config.token_ttl,
        )
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    let basic_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !basic_ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "errorCode": "OAU-123",
                        "message": "Invalid client", "error_description": "Invalid client"})),
        )
            .into_response();
    }
    let now = p.clock.now();
    // A JWT grant opens a new OAuth session; a refresh keeps the session of the refresh token
    // it spends (a WebSocket session can only be recovered within one OAuth session).
    let session = match form.grant_type.as_deref() {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            if form.assertion.as_deref() != Some(jwt.as_str()) {
                return invalid_grant();
            }
            None
        }
        Some("refresh_token") => {
            let mut s = p.lock();
            let spent = form
                .refresh_token
                .as_deref()
                .and_then(|t| s.refresh_tokens.remove(t));
            match spent {
                Some((session, expires)) if expires > now => Some(session),
                _ => return invalid_grant(),
            }
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": "unsupported_grant_type", "errorCode": "OAU-250",
                            "message": "Unsupported grant type"}),
                ),
            )
                .into_response();
        }
    };
    let mut s = p.lock();
    let n = s.next_id();
    let session = match session {
        Some(session) => {
            s.stats.refreshes += 1;
            session
        }
        None => {
            s.stats.tokens += 1;
            n
        }
    };
    let access = format!("fake-access-{n}");
    let refresh = format!("fake-refresh-{n}");
    s.tokens.insert(
        access.clone(),
        crate::AccessToken {
            expires_at: now + Duration::seconds(ttl),
            session,
        },
    );
    let refresh_ttl = s.config.refresh_token_ttl;
    s.refresh_tokens.insert(
        refresh.clone(),
        (session, now + Duration::seconds(refresh_ttl)),
    );
    Json(
        json!({"access_token": access, "token_type": "bearer", "expires_in": ttl,
                "refresh_token": refresh, "refresh_token_expires_in": refresh_ttl,
                "scope": "ReadCallLog SubscriptionWebhook CallControl ReadMessages",
                "owner_id": OWNER_EXTENSION_ID, "endpoint_id": "fake-endpoint",
                "session_id": format!("{session}")}),
    )
    .into_response()
}

/// Checks the bearer token; `Some(response)` when it is missing or expired.
fn unauthorized(p: &FakePlatform, headers: &HeaderMap) -> Option<Response> {
    bearer_session(p, headers).err().map(Unauthorized::answer)
}

/// Why a bearer token was refused: RingCentral's code and message.
pub(crate) struct Unauthorized(&'static str, &'static str);

impl Unauthorized {
    /// The 401 to answer.
    pub(crate) fn answer(self) -> Response {
        api_error(StatusCode::UNAUTHORIZED, self.0, self.1)
    }
}

/// The OAuth session of the request's bearer token, or why it is refused.
pub(crate) fn bearer_session(p: &FakePlatform, headers: &HeaderMap) -> Result<u64, Unauthorized> {
    let now = p.clock.now();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let s = p.lock();
    match token.and_then(|t| s.tokens.get(&t).copied()) {
        Some(t) if t.expires_at > now => Ok(t.session),
        Some(_) => Err(Unauthorized("OAU-213", "Token expired")),
        None => Err(Unauthorized("OAU-149", "Invalid token")),
    }
}

pub(crate) fn guard(p: &FakePlatform, headers: &HeaderMap, group: Group) -> Option<Response> {
    limited(p, group).or_else(|| unauthorized(p, headers))
}

fn info(p: &FakePlatform, s: &FakeSubscription) -> Value {
    let now = p.clock.now();
    let mut v = json!({
        "uri": format!("https://platform.ringcentral.com/restapi/v1.0/subscription/{}", s.id),
        "id": s.id,
        "creationTime": ts(s.created_at),
        "status": s.status,
        "eventFilters": s.event_filters,
        "expirationTime": ts(s.expires_at),
        "expiresIn": (s.expires_at - now).num_seconds().max(0),
        "deliveryMode": {"transportType": "WebHook", "encryption": false, "address": s.address},
    });
    if let Some(at) = s.blacklisted_at {
        v["blacklistedData"] = json!({"blacklistedAt": ts(at),
                                      "reason": s.blacklisted_reason.clone().unwrap_or_default()});
    }
    v
}

fn substitute(filter: &str) -> String {
    filter
        .replace("/account/~", &format!("/account/{ACCOUNT_ID}"))
        .replace("/extension/~", &format!("/extension/{OWNER_EXTENSION_ID}"))
}

async fn list(State(p): State<FakePlatform>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Light) {
        return r;
    }
    let subs: Vec<FakeSubscription> = p.lock().subscriptions.values().cloned().collect();
    let records: Vec<Value> = subs.iter().map(|s| info(&p, s)).collect();
    Json(json!({"uri": "https://platform.ringcentral.com/restapi/v1.0/subscription", "records": records}))
        .into_response()
}

async fn read(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Light) {
        return r;
    }
    let sub = p.lock().subscriptions.get(&id).cloned();
    match sub {
        Some(s) => Json(info(&p, &s)).into_response(),
        None => not_found(),
    }
}

fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "CMN-102",
        "Resource for parameter [subscriptionId] is not found",
    )
}

/// The requested lifetime, or `None` when it is out of range (CMN-101).
fn expires_in_of(p: &FakePlatform, v: &Value) -> Option<i64> {
    let max = p.lock().config.max_expires_in;
    match v.get("expiresIn") {
        None | Some(Value::Null) => Some(604_800),
        Some(n) => n.as_i64().filter(|n| (1..=max).contains(n)),
    }
}

fn invalid_expires_in() -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "CMN-101",
        "Parameter [expiresIn] value is invalid",
    )
}

/// The validation handshake: an empty POST with `Validation-Token`, which must come back.
async fn handshake(address: &str) -> Result<(), (&'static str, &'static str)> {
    let token = format!(
        "fake-validation-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let http = reqwest::Client::builder()
        .timeout(StdDuration::from_secs(3))
        .build()
        .map_err(|_| ("SUB-521", "WebHook is not reachable"))?;
    let response = http
        .post(address)
        .header("Content-Type", "application/json")
        .header("Validation-Token", &token)
        .send()
        .await
        .map_err(|_| ("SUB-521", "WebHook is not reachable"))?;
    let status = response.status();
    let echoed = response
        .headers()
        .get("validation-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let head_size: usize = response
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4)
        .sum::<usize>()
        + 17;
    let body = response.bytes().await.map(|b| b.len()).unwrap_or(0);
    if !status.is_success() || echoed.as_deref() != Some(token.as_str()) {
        return Err(("SUB-520", "Validation Token is not returned"));
    }
    if head_size + body > 1024 {
        return Err(("SUB-525", "WebHook server response is invalid"));
    }
    Ok(())
}

async fn create(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Medium) {
        return r;
    }
    let filters: Vec<String> = body
        .get("eventFilters")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(substitute))
                .collect()
        })
        .unwrap_or_default();
    if filters.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "CMN-100",
            "Parameter [eventFilters] is required",
        );
    }
    if body
        .get("deliveryMode")
        .and_then(|d| d.get("expiresIn"))
        .is_some()
    {
        // Pipedream's mistake (docs/PROTOCOL.md §8 #1): inside deliveryMode it is ignored.
        tracing::warn!("expiresIn inside deliveryMode is ignored; it belongs at the top level");
    }
    let Some(expires_in) = expires_in_of(&p, &body) else {
        return invalid_expires_in();
    };
    let mode = body.get("deliveryMode").cloned().unwrap_or(Value::Null);
    if mode.get("transportType").and_then(Value::as_str) != Some("WebHook") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "CMN-101",
            "Parameter [deliveryMode.transportType] value is invalid",
        );
    }
    let Some(address) = mode
        .get("address")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "CMN-100",
            "Parameter [deliveryMode.address] is required",
        );
    };
    let (limit, require_https, count) = {
        let s = p.lock();
        (
            s.config.subscription_limit,
            s.config.require_https,
            s.subscriptions.len(),
        )
    };
    if require_https && !address.starts_with("https://") {
        return api_error(StatusCode::BAD_REQUEST, "SUB-523", "HTTPS is required");
    }
    if count >= limit {
        return api_error(
            StatusCode::FORBIDDEN,
            "SUB-505",
            "Subscriptions limit exceeded",
        );
    }
    if let Err((code, message)) = handshake(&address).await {
        p.lock().stats.failed_handshakes += 1;
        return api_error(StatusCode::BAD_REQUEST, code, message);
    }
    let now = p.clock.now();
    let mut s = p.lock();
    let n = s.next_id();
    let id = format!(
        "{:08x}-580e-4581-a277-{:012x}",
        0xdd2f_0ff2u32.wrapping_add(n as u32),
        n
    );
    let sub = FakeSubscription {
        id: id.clone(),
        status: "Active".into(),
        event_filters: filters,
        address,
        verification_token: mode
            .get("verificationToken")
            .and_then(Value::as_str)
            .map(str::to_string),
        created_at: now,
        expires_at: now + Duration::seconds(expires_in),
        failing_since: None,
        blacklisted_at: None,
        blacklisted_reason: None,
        last_reminder: None,
    };
    s.subscriptions.insert(id, sub.clone());
    s.stats.created += 1;
    drop(s);
    Json(info(&p, &sub)).into_response()
}

fn apply_renewal(p: &FakePlatform, id: &str, body: &Value) -> Response {
    let Some(expires_in) = expires_in_of(p, body) else {
        return invalid_expires_in();
    };
    let now = p.clock.now();
    let mut s = p.lock();
    let Some(sub) = s.subscriptions.get_mut(id) else {
        return not_found();
    };
    if let Some(filters) = body.get("eventFilters").and_then(Value::as_array) {
        let filters: Vec<String> = filters
            .iter()
            .filter_map(|f| f.as_str().map(substitute))
            .collect();
        if !filters.is_empty() {
            sub.event_filters = filters;
        }
    }
    // Renewing does not revive a blacklisted subscription (docs/PROTOCOL.md §1.4).
    sub.expires_at = now + Duration::seconds(expires_in);
    sub.last_reminder = None;
    let sub = sub.clone();
    s.stats.renewed += 1;
    drop(s);
    Json(info(p, &sub)).into_response()
}

async fn update(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Medium) {
        return r;
    }
    // An empty body renews with the default lifetime (docs/PROTOCOL.md §0 #7).
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return api_error(StatusCode::BAD_REQUEST, "CMN-400", "Malformed request body")
            }
        }
    };
    apply_renewal(&p, &id, &body)
}

async fn renew(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Light) {
        return r;
    }
    let lifetime = {
        let s = p.lock();
        s.subscriptions
            .get(&id)
            .map(|sub| (sub.expires_at - sub.created_at).num_seconds())
    };
    match lifetime {
        Some(l) => apply_renewal(&p, &id, &json!({"expiresIn": l})),
        None => not_found(),
    }
}

async fn remove(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Medium) {
        return r;
    }
    let mut s = p.lock();
    match s.subscriptions.remove(&id) {
        Some(_) => {
            s.stats.deleted += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    date_from: Option<String>,
    date_to: Option<String>,
    per_page: Option<String>,
    page: Option<u32>,
}

async fn call_log(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path(account): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Heavy) {
        return r;
    }
    if account != "~" && account != ACCOUNT_ID {
        return api_error(
            StatusCode::NOT_FOUND,
            "CMN-102",
            "Resource for parameter [accountId] is not found",
        );
    }
    let now = p.clock.now();
    let parse = |v: &Option<String>| v.as_deref().and_then(callpop_core::wire::parse_timestamp);
    let to = parse(&q.date_to).unwrap_or(now);
    // The API's default is only the last 24 hours (docs/PROTOCOL.md §0 #17).
    let from = parse(&q.date_from).unwrap_or(to - Duration::hours(24));
    {
        let mut s = p.lock();
        s.stats.call_log_reads += 1;
        s.call_log_reads.push(from);
    }
    let per_page: usize = match q.per_page.as_deref() {
        None => 100,
        Some("max") => 1000,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "CMN-101",
                    "Parameter [perPage] value is invalid",
                )
            }
        },
    };
    let page = q.page.unwrap_or(1).max(1) as usize;
    let mut visible: Vec<(DateTime<Utc>, Value)> = p
        .lock()
        .log
        .iter()
        .filter(|e| e.available_at <= now && e.start >= from && e.start <= to)
        .map(|e| (e.start, e.record.clone()))
        .collect();
    visible.sort_by_key(|v| std::cmp::Reverse(v.0));
    let total = visible.len();
    let records: Vec<Value> = visible
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(_, r)| r)
        .collect();
    let total_pages = total.div_ceil(per_page).max(1);
    let base =
        format!("https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/call-log");
    let mut navigation = json!({
        "firstPage": {"uri": format!("{base}?page=1&perPage={per_page}")},
        "lastPage": {"uri": format!("{base}?page={total_pages}&perPage={per_page}")},
    });
    if page < total_pages {
        navigation["nextPage"] =
            json!({"uri": format!("{base}?page={}&perPage={per_page}", page + 1)});
    }
    if page > 1 {
        navigation["previousPage"] =
            json!({"uri": format!("{base}?page={}&perPage={per_page}", page - 1)});
    }
    let page_start = (page - 1) * per_page;
    Json(json!({
        "uri": format!("{base}?page={page}&perPage={per_page}"),
        "records": records,
        "paging": {"page": page, "perPage": per_page, "pageStart": page_start,
                   "pageEnd": (page_start + per_page).min(total).saturating_sub(1),
                   "totalPages": total_pages, "totalElements": total},
        "navigation": navigation,
    }))
    .into_response()
}
