//! The RingCentral REST client: JWT auth, subscriptions and the call log.
//!
//! docs/PROTOCOL.md §2–§3: one auth flow at a time with the token cached and renewed from
//! `expires_in` (never per call); 429 answered with `Retry-After` (≥ 30 s when absent) and
//! nothing else sent in that rate group during the penalty; 5xx and timeouts retried with
//! exponential backoff; errors typed by `errorCode`, never by message text.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use callpop_clock::Clock;
use callpop_core::wire::{Id, Timestamp};
use callpop_core::Secret;

pub use crate::servers::PRODUCTION_SERVER;

/// RingCentral's rate-limit groups (per user, per app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RateGroup {
    /// 50 requests/min (list/get/renew subscriptions).
    Light,
    /// 40 requests/min (create/update/delete subscriptions).
    Medium,
    /// 10 requests/min (call log).
    Heavy,
    /// 5 requests/min (token).
    Auth,
}

/// What a RingCentral call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The credentials were refused; repeating will not help. The text names the setting at
    /// fault, so the person fixing it knows which field to look at.
    #[error("{} ({code}: {message})", refused_credential(code))]
    Auth {
        /// `errorCode` or OAuth `error`.
        code: String,
        /// Explanation.
        message: String,
    },
    /// RingCentral asked us to slow down; nothing in this group is sent until `until`.
    #[error("RingCentral rate limit ({group:?} group); next try after {until}")]
    RateLimited {
        /// The group.
        group: RateGroup,
        /// End of the penalty.
        until: DateTime<Utc>,
    },
    /// An API error with RingCentral's `errorCode`.
    #[error("RingCentral answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `errorCode` (e.g. `CMN-102`, `SUB-520`).
        code: String,
        /// Explanation.
        message: String,
    },
    /// RingCentral could not be reached (DNS, connection, timeout) after retries.
    #[error("cannot reach RingCentral: {0}")]
    Network(String),
    /// The answer was not what the API documents.
    #[error("unexpected answer from RingCentral: {0}")]
    Protocol(String),
    /// The server setting would send the credentials in clear or to a malformed address.
    #[error("{0} is not a server CallPop sends credentials to: use https:// (plain http only for a test server on this machine)")]
    InsecureServer(String),
}

/// One sentence naming the setting RingCentral refused, from its OAuth answer (`errorCode` or
/// `error`): a wrong client ID or secret is `invalid_client` (OAU-123), a wrong, expired or
/// revoked JWT `invalid_grant` (OAU-140), an app not made for the JWT flow
/// `unsupported_grant_type`/`unauthorized_client` (OAU-250, OAU-251).
fn refused_credential(code: &str) -> &'static str {
    match code {
        "OAU-123" | "invalid_client" => {
            "RingCentral refused the credentials: the client ID or client secret is wrong"
        }
        "OAU-140" | "invalid_grant" => {
            "RingCentral refused the credentials: the JWT is wrong, expired or revoked \
             (create a new one for the user CallPop signs in as)"
        }
        "OAU-250" | "OAU-251" | "unsupported_grant_type" | "unauthorized_client" => {
            "RingCentral refused the credentials: this app may not sign in with a JWT \
             (in the developer console, set its authentication to JWT auth flow)"
        }
        _ => "RingCentral refused the credentials: check the client ID, client secret and JWT",
    }
}

impl ApiError {
    /// The setting that fixes this error, as the Settings section's name (`ringcentral`),
    /// when a setting does: refused credentials or a server CallPop will not send them to.
    pub fn settings_section(&self) -> Option<&'static str> {
        match self {
            ApiError::Auth { .. } | ApiError::InsecureServer(_) => Some("ringcentral"),
            _ => None,
        }
    }

    /// RingCentral's `errorCode`, when the error carries one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } | ApiError::Auth { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Credentials of a RingCentral app authorised with a JWT.
#[derive(Clone)]
pub struct Credentials {
    /// App client id.
    pub client_id: String,
    /// App client secret.
    pub client_secret: Secret,
    /// The user's JWT credential.
    pub jwt: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

struct Token {
    access_token: Secret,
    expires_at: DateTime<Utc>,
    /// Renews the token within the same OAuth session, while it lasts.
    refresh: Option<(Secret, DateTime<Utc>)>,
}

/// `deliveryMode` of a subscription.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct DeliveryMode {
    /// `WebHook` for us.
    pub transport_type: Option<String>,
    /// Where events are posted.
    pub address: Option<String>,
}

/// Why a subscription was blacklisted.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BlacklistedData {
    /// When.
    pub blacklisted_at: Option<String>,
    /// RingCentral's reason text.
    pub reason: Option<String>,
}

/// A subscription as the API describes it (SubscriptionInfo).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// Active, Blacklisted, Suspended, …
    #[serde(default)]
    pub status: String,
    /// Event filters as registered (numeric ids substituted for `~`).
    #[serde(default)]
    pub event_filters: Vec<String>,
    /// When it expires.
    #[serde(default)]
    pub expiration_time: Option<String>,
    /// Seconds left.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// When it was created.
    #[serde(default)]
    pub creation_time: Option<String>,
    /// Delivery mode.
    #[serde(default)]
    pub delivery_mode: DeliveryMode,
    /// Present when blacklisted.
    #[serde(default)]
    pub blacklisted_data: Option<BlacklistedData>,
}

impl Subscription {
    /// The expiration time, parsed.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expiration_time
            .as_deref()
            .and_then(callpop_core::wire::parse_timestamp)
    }

    /// True when RingCentral still delivers on it.
    pub fn is_active(&self) -> bool {
        self.status.eq_ignore_ascii_case("active")
    }

    /// When it was blacklisted, if it was.
    pub fn blacklisted_at(&self) -> Option<DateTime<Utc>> {
        self.blacklisted_data
            .as_ref()
            .and_then(|b| b.blacklisted_at.as_deref())
            .and_then(callpop_core::wire::parse_timestamp)
    }
}

#[derive(Deserialize)]
struct Records<T> {
    #[serde(default = "Vec::new")]
    records: Vec<T>,
    #[serde(default)]
    navigation: Option<Navigation>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Navigation {
    next_page: Option<Value>,
}

/// One page of the call log.
#[derive(Debug, Clone)]
pub struct CallLogPage {
    /// The records, as sent.
    pub records: Vec<Value>,
    /// True when another page follows.
    pub has_next: bool,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<callpop_core::wire::LenientInt>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<callpop_core::wire::LenientInt>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ErrorBody {
    error_code: Option<String>,
    message: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl ErrorBody {
    /// RingCentral's error code and explanation (REST or OAuth spelling), else the fallbacks.
    fn code_and_message(
        self,
        code: impl FnOnce() -> String,
        message: impl FnOnce() -> String,
    ) -> (String, String) {
        (
            self.error_code.or(self.error).unwrap_or_else(code),
            self.message
                .or(self.error_description)
                .unwrap_or_else(message),
        )
    }
}

/// Retries for 5xx answers and network failures.
const RETRIES: u32 = 3;
/// Renew the access token when less than this is left.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// A RingCentral platform connection for one app and one user.
pub struct Platform {
    http: reqwest::Client,
    server: String,
    credentials: Credentials,
    clock: Clock,
    token: tokio::sync::Mutex<Option<Token>>,
    penalties: Mutex<HashMap<RateGroup, DateTime<Utc>>>,
}

/// A token-request answer that says nothing about the credentials (docs/PROTOCOL.md §3.1: 408 and
/// 5xx are retried; only a 4xx refusal means the credentials are wrong).
fn passing_token_failure(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT
}

impl Platform {
    /// A client for `server` (e.g. [`PRODUCTION_SERVER`]).
    pub fn new(server: &str, credentials: Credentials, clock: Clock) -> Result<Platform, ApiError> {
        crate::tls::install_crypto_provider();
        let target = callpop_core::links::http_target(server)
            .filter(|t| t.fit_for_secrets())
            .ok_or_else(|| ApiError::InsecureServer(server.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("CallPop/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // A 307/308 would resend the JWT form (or a bearer token) to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            // Plain http only to a test server on this machine, as checked above.
            .https_only(target.https)
            .build()
            .map_err(|e| ApiError::Network(e.to_string()))?;
        Ok(Platform {
            http,
            server: server.trim_end_matches('/').to_string(),
            credentials,
            clock,
            token: tokio::sync::Mutex::new(None),
            penalties: Mutex::new(HashMap::new()),
        })
    }

    /// The server this client talks to.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn penalty(&self, group: RateGroup) -> Option<DateTime<Utc>> {
        let penalties = self.penalties.lock().unwrap_or_else(|p| p.into_inner());
        penalties
            .get(&group)
            .copied()
            .filter(|until| *until > self.clock.now())
    }

    fn punish(&self, group: RateGroup, retry_after: Option<i64>) -> ApiError {
        // RingCentral resets the penalty on every request inside it, so wait the whole time.
        let seconds = retry_after.unwrap_or(30).max(30);
        let until = self.clock.now() + chrono::Duration::seconds(seconds);
        self.penalties
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, until);
        tracing::warn!(
            ?group,
            seconds,
            "RingCentral rate limit: pausing this request group"
        );
        ApiError::RateLimited { group, until }
    }

    /// A valid access token, from the cache, a refresh of the cached one (the same OAuth
    /// session, which a WebSocket session is tied to), or a new JWT grant; one at a time.
    async fn access_token(&self) -> Result<Secret, ApiError> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if let Some(t) = cached.as_ref() {
            if t.expires_at - TOKEN_MARGIN > now {
                return Ok(t.access_token.clone());
            }
        }
        if let Some(until) = self.penalty(RateGroup::Auth) {
            return Err(ApiError::RateLimited {
                group: RateGroup::Auth,
                until,
            });
        }
        let refresh = cached
            .as_ref()
            .and_then(|t| t.refresh.clone())
            .filter(|(_, expires)| *expires - TOKEN_MARGIN > now);
        let token = match refresh {
            Some((refresh, _)) => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                ];
                match self.grant(&form).await {
                    // A refused refresh (revoked, rotated elsewhere) is not a refused JWT.
                    Err(ApiError::Auth { code, .. }) => {
                        tracing::info!(%code, "token refresh refused; signing in with the JWT");
                        if let Some(t) = cached.as_mut() {
                            t.refresh = None;
                        }
                        self.jwt_grant().await?
                    }
                    other => other?,
                }
            }
            None => self.jwt_grant().await?,
        };
        let now = self.clock.now();
        let secret = Secret::new(token.access_token);
        let refresh = token.refresh_token.map(|r| {
            let lifetime = token.refresh_token_expires_in.map_or(3600, |n| n.0);
            (
                Secret::new(r),
                now + chrono::Duration::seconds(lifetime.clamp(0, 31_536_000)),
            )
        });
        *cached = Some(Token {
            access_token: secret.clone(),
            expires_at: now + token_lifetime(token.expires_in.map(|n| n.0)),
            refresh,
        });
        Ok(secret)
    }

    async fn jwt_grant(&self) -> Result<TokenResponse, ApiError> {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", self.credentials.jwt.expose()),
        ];
        self.grant(&form).await
    }

    /// One token request with the app's credentials: retried on 408/5xx, a 429 pauses the
    /// Auth group, a 4xx refusal is [`ApiError::Auth`].
    async fn grant(&self, form: &[(&str, &str)]) -> Result<TokenResponse, ApiError> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.credentials.client_id,
            self.credentials.client_secret.expose()
        ));
        let mut attempt = 0;
        let response = loop {
            let sent = self
                .http
                .post(format!("{}/restapi/oauth/token", self.server))
                .header("Authorization", format!("Basic {basic}"))
                .header("Accept", "application/json")
                .form(form)
                .send()
                .await;
            match sent {
                Ok(r) if passing_token_failure(r.status()) && attempt < RETRIES => {}
                Ok(r) => break r,
                Err(e) if attempt < RETRIES => {
                    tracing::debug!(error = %e, "token request failed; retrying");
                }
                Err(e) => return Err(ApiError::Network(e.to_string())),
            }
            attempt += 1;
            // docs/PROTOCOL.md §3.1: 408/500/timeouts → retry 10 s apart.
            self.clock.sleep(chrono::Duration::seconds(10)).await;
        };
        let status = response.status();
        let retry_after = retry_after(response.headers(), self.clock.now());
        let text = answer_text(response).await?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.punish(RateGroup::Auth, retry_after));
        }
        if !status.is_success() {
            let body: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
            let passing = passing_token_failure(status);
            let (code, message) = body.code_and_message(
                || status.as_u16().to_string(),
                || {
                    if passing {
                        "the token server is not answering".into()
                    } else {
                        "token request refused".into()
                    }
                },
            );
            if passing {
                // Still failing after the retries, but not a refusal of the credentials:
                // the keeper tries again soon instead of in an hour.
                return Err(ApiError::Api {
                    status: status.as_u16(),
                    code,
                    message,
                });
            }
            return Err(ApiError::Auth { code, message });
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Protocol(format!("token response: {e}")))
    }

    /// Forgets the access token after a 401; its refresh token is kept, so the next one
    /// comes from the same OAuth session (a WebSocket session can be recovered only within it).
    async fn drop_token(&self) {
        let expired = self.clock.now() - chrono::Duration::hours(1);
        if let Some(t) = self.token.lock().await.as_mut() {
            t.expires_at = expired;
        }
    }

    /// Sends one API request with auth, rate-limit and retry handling; `None` for 204.
    async fn send(
        &self,
        group: RateGroup,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        if let Some(until) = self.penalty(group) {
            return Err(ApiError::RateLimited { group, until });
        }
        let url = format!("{}{path}", self.server);
        let mut attempt = 0u32;
        let mut reauthorized = false;
        loop {
            let token = self.access_token().await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose())
                .header("Accept", "application/json")
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    // A request that may have reached RingCentral is repeated only when that is
                    // harmless: a second POST /subscription after a lost answer left a
                    // duplicate delivering every event twice. The keeper lists and adopts
                    // instead.
                    let may_repeat = e.is_connect() || method != Method::POST;
                    if attempt >= RETRIES || !may_repeat {
                        return Err(ApiError::Network(e.to_string()));
                    }
                    attempt += 1;
                    self.clock
                        .sleep(chrono::Duration::seconds(2i64.pow(attempt)))
                        .await;
                    continue;
                }
            };
            let status = response.status();
            let retry = retry_after(response.headers(), self.clock.now());
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(self.punish(group, retry));
            }
            if status == StatusCode::UNAUTHORIZED && !reauthorized {
                // The token died early (revoked, server restart): one fresh grant, one retry.
                reauthorized = true;
                self.drop_token().await;
                continue;
            }
            if status.is_server_error() && attempt < RETRIES {
                attempt += 1;
                let wait = retry.unwrap_or(2i64.pow(attempt));
                self.clock.sleep(chrono::Duration::seconds(wait)).await;
                continue;
            }
            let text = answer_text(response).await?;
            if !status.is_success() {
                return Err(refusal(status, text.as_bytes()));
            }
            if status == StatusCode::NO_CONTENT || text.trim().is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ApiError::Protocol(format!("{path}: {e}")));
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        group: RateGroup,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let value = self
            .send(group, method, path, query, body)
            .await?
            .ok_or_else(|| ApiError::Protocol(format!("{path}: empty answer")))?;
        serde_json::from_value(value).map_err(|e| ApiError::Protocol(format!("{path}: {e}")))
    }

    /// A single-use token for RingCentral's WebSocket gateway, and the gateway's address
    /// (`POST /restapi/oauth/wstoken`, in the Auth rate group like sign-ins: a 429 pauses
    /// both).
    pub async fn ws_token(&self) -> Result<WsToken, ApiError> {
        #[derive(Deserialize)]
        struct Answer {
            ws_access_token: String,
            uri: String,
            expires_in: Option<callpop_core::wire::LenientInt>,
        }
        let answer: Answer = self
            .json(
                RateGroup::Auth,
                Method::POST,
                "/restapi/oauth/wstoken",
                &[],
                None,
            )
            .await?;
        Ok(WsToken {
            token: Secret::new(answer.ws_access_token),
            uri: answer.uri,
            expires_in: answer.expires_in.map_or(30, |n| n.0),
        })
    }

    /// Checks the credentials by obtaining a token.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        self.access_token().await.map(|_| ())
    }

    /// Lists the subscriptions this app created for this user.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, ApiError> {
        let records: Records<Subscription> = self
            .json(
                RateGroup::Light,
                Method::GET,
                "/restapi/v1.0/subscription",
                &[],
                None,
            )
            .await?;
        Ok(records.records)
    }

    /// Reads one subscription.
    pub async fn get_subscription(&self, id: &str) -> Result<Subscription, ApiError> {
        self.json(
            RateGroup::Light,
            Method::GET,
            &format!("/restapi/v1.0/subscription/{id}"),
            &[],
            None,
        )
        .await
    }

    /// Creates a WebHook subscription; `expires_in` is top level (docs/PROTOCOL.md §0 #5).
    pub async fn create_subscription(
        &self,
        event_filters: &[String],
        address: &str,
        verification_token: Option<&str>,
        expires_in: i64,
    ) -> Result<Subscription, ApiError> {
        let mut delivery = json!({"transportType": "WebHook", "address": address});
        if let Some(token) = verification_token {
            delivery["verificationToken"] = json!(token);
        }
        let body = json!({
            "eventFilters": event_filters,
            "deliveryMode": delivery,
            "expiresIn": expires_in,
        });
        self.json(
            RateGroup::Medium,
            Method::POST,
            "/restapi/v1.0/subscription",
            &[],
            Some(&body),
        )
        .await
    }

    /// Renews with an explicit lifetime (an empty PUT would fall back to the 7-day default).
    pub async fn renew_subscription(
        &self,
        id: &str,
        event_filters: &[String],
        expires_in: i64,
    ) -> Result<Subscription, ApiError> {
        let body = json!({"eventFilters": event_filters, "expiresIn": expires_in});
        self.json(
            RateGroup::Medium,
            Method::PUT,
            &format!("/restapi/v1.0/subscription/{id}"),
            &[],
            Some(&body),
        )
        .await
    }

    /// Deletes a subscription (204).
    pub async fn delete_subscription(&self, id: &str) -> Result<(), ApiError> {
        self.send(
            RateGroup::Medium,
            Method::DELETE,
            &format!("/restapi/v1.0/subscription/{id}"),
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    /// The audio of voicemail `message_id` in the mailbox of `extension_id` (`None`: the
    /// signed-in user's own): the message's details first, then its audio attachment.
    pub async fn voicemail_audio(
        &self,
        extension_id: Option<&str>,
        message_id: &str,
    ) -> Result<Media, ApiError> {
        let segment = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        let extension = extension_id.unwrap_or("~");
        if !(extension == "~" || segment(extension)) || !segment(message_id) {
            return Err(ApiError::Protocol(format!(
                "not a voicemail message id: {message_id:?} in mailbox {extension:?}"
            )));
        }
        let message: Value = self
            .json(
                RateGroup::Light,
                Method::GET,
                &format!(
                    "/restapi/v1.0/account/~/extension/{extension}/message-store/{message_id}"
                ),
                &[],
                None,
            )
            .await?;
        let uri = message["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == "AudioRecording")
            .and_then(|a| a["uri"].as_str())
            .ok_or_else(|| ApiError::Protocol("the voicemail has no audio".into()))?
            .to_string();
        if !carries_sign_in(&self.server, &uri) {
            return Err(ApiError::Protocol(format!(
                "the voicemail audio is not on RingCentral's servers ({uri}): CallPop does not \
                 send its sign-in there"
            )));
        }
        self.download(RateGroup::Heavy, &uri).await
    }

    /// GETs a file with the sign-in (one fresh grant after a 401; a 429 starts the group's
    /// penalty as for any request).
    async fn download(&self, group: RateGroup, uri: &str) -> Result<Media, ApiError> {
        if let Some(until) = self.penalty(group) {
            return Err(ApiError::RateLimited { group, until });
        }
        let mut reauthorized = false;
        loop {
            let token = self.access_token().await?;
            let response = self
                .http
                .get(uri)
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| ApiError::Network(e.to_string()))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry = retry_after(response.headers(), self.clock.now());
                return Err(self.punish(group, retry));
            }
            if status == StatusCode::UNAUTHORIZED && !reauthorized {
                reauthorized = true;
                self.drop_token().await;
                continue;
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let bytes = answer_bytes(response).await?;
            if !status.is_success() {
                return Err(refusal(status, &bytes));
            }
            return Ok(Media {
                bytes,
                content_type,
            });
        }
    }

    /// One page of the account call log between two times (explicit `dateFrom`: the API's
    /// default is only the last 24 hours).
    pub async fn call_log_page(
        &self,
        date_from: DateTime<Utc>,
        date_to: DateTime<Utc>,
        page: u32,
        per_page: u32,
    ) -> Result<CallLogPage, ApiError> {
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let records: Records<Value> = self
            .json(
                RateGroup::Heavy,
                Method::GET,
                "/restapi/v1.0/account/~/call-log",
                &[
                    ("dateFrom", fmt(date_from)),
                    ("dateTo", fmt(date_to)),
                    ("view", "Detailed".into()),
                    ("type", "Voice".into()),
                    ("perPage", per_page.to_string()),
                    ("page", page.to_string()),
                ],
                None,
            )
            .await?;
        let has_next = records
            .navigation
            .and_then(|n| n.next_page)
            .is_some_and(|v| !v.is_null());
        Ok(CallLogPage {
            records: records.records,
            has_next,
        })
    }
}

/// The largest API answer read. A call-log page of 1,000 records is 1–2 MB; anything much
/// larger is a broken proxy or a hostile server, and reading all of it would take the desk's
/// memory.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// An API refusal with RingCentral's `errorCode` and message from its error body, or the HTTP
/// status when the body has none.
fn refusal(status: StatusCode, body: &[u8]) -> ApiError {
    let body: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let (code, message) = body.code_and_message(
        || format!("HTTP-{}", status.as_u16()),
        || status.to_string(),
    );
    ApiError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}

/// Reads an answer's body as text, refusing one larger than [`MAX_ANSWER_BYTES`].
async fn answer_text(response: reqwest::Response) -> Result<String, ApiError> {
    let body = answer_bytes(response).await?;
    Ok(String::from_utf8(body)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Reads an answer's body, refusing one larger than [`MAX_ANSWER_BYTES`] (a declared length at
/// once, a streamed one as soon as it passes the cap).
async fn answer_bytes(mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::Protocol(format!(
            "the answer is larger than {} MiB",
            MAX_ANSWER_BYTES / (1024 * 1024)
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the sign-in may go with a request to `uri`: to the server itself (same scheme, host
/// and port), or, from RingCentral's own platforms, to their media hosts, where recordings and
/// voicemail live (docs/PROTOCOL.md: both need the bearer token). A link in a payload that
/// points anywhere else never gets the token.
fn carries_sign_in(server: &str, uri: &str) -> bool {
    let (Ok(server), Ok(uri)) = (reqwest::Url::parse(server), reqwest::Url::parse(uri)) else {
        return false;
    };
    if server.origin() == uri.origin() {
        return true;
    }
    let media = match server.host_str() {
        Some("platform.ringcentral.com") => "media.ringcentral.com",
        Some("platform.devtest.ringcentral.com") => "media.devtest.ringcentral.com",
        _ => return false,
    };
    uri.scheme() == "https"
        && uri.host_str() == Some(media)
        && uri.port().is_none()
        && uri.username().is_empty()
}

/// A token for one WebSocket connection (single use, valid `expires_in` seconds).
#[derive(Clone)]
pub struct WsToken {
    /// `ws_access_token`.
    pub token: Secret,
    /// The gateway's address (`wss://…`).
    pub uri: String,
    /// Seconds it stays valid.
    pub expires_in: i64,
}

impl std::fmt::Debug for WsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsToken")
            .field("uri", &self.uri)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A voicemail's audio as RingCentral serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The audio file's bytes.
    pub bytes: Vec<u8>,
    /// Its type (`audio/mpeg`, `audio/x-wav`).
    pub content_type: String,
}

/// The longest `Retry-After` obeyed, seconds. RingCentral asks for about a minute; a larger
/// value (a broken proxy, a hostile server) would stop subscription management for good, or
/// overflow the time it is added to.
const MAX_RETRY_AFTER: i64 = 3600;

/// Seconds to wait from a `Retry-After` header: a number of seconds or, as RFC 9110 also
/// allows, an HTTP date (counted from `now`).
fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<i64> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    let seconds = match value.parse::<i64>() {
        Ok(seconds) => seconds,
        Err(_) => (http_date(value)? - now).num_seconds(),
    };
    Some(seconds.clamp(0, MAX_RETRY_AFTER))
}

/// An HTTP date in any of the three forms RFC 9110 §5.6.7 requires recipients to read:
/// `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete `Sunday, 06-Nov-94 08:49:37 GMT` and C's
/// `Sun Nov  6 08:49:37 1994`.
fn http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return Some(at.with_timezone(&Utc));
    }
    let naive = chrono::NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT")
        .or_else(|_| {
            let single_spaced = value.split_whitespace().collect::<Vec<_>>().join(" ");
            chrono::NaiveDateTime::parse_from_str(&single_spaced, "%a %b %e %H:%M:%S %Y")
        })
        .ok()?;
    Some(naive.and_utc())
}

/// How long a granted access token is used: `expires_in` as sent, between a minute and a day
/// (the platform grants at most an hour; a larger value must not overflow the clock).
fn token_lifetime(expires_in: Option<i64>) -> chrono::Duration {
    chrono::Duration::seconds(expires_in.unwrap_or(3600).clamp(60, 86_400))
}

/// Reads an id that may be a string or a number (keeps [`Id`] in use for API types).
pub fn id_text(value: &Value) -> Option<String> {
    serde_json::from_value::<Id>(value.clone())
        .ok()
        .and_then(Id::into_non_empty)
}

/// Reads a timestamp field leniently.
pub fn time_field(value: &Value) -> Option<DateTime<Utc>> {
    serde_json::from_value::<Timestamp>(value.clone())
        .ok()
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_sign_in_goes_only_to_the_server_and_its_media_hosts() {
        let prod = "https://platform.ringcentral.com";
        assert!(carries_sign_in(
            prod,
            "https://platform.ringcentral.com/restapi/v1.0/x"
        ));
        assert!(carries_sign_in(
            prod,
            "https://media.ringcentral.com/restapi/v1.0/x/content/1"
        ));
        assert!(carries_sign_in(
            "https://platform.devtest.ringcentral.com",
            "https://media.devtest.ringcentral.com/a"
        ));
        assert!(carries_sign_in(
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/a"
        ));
        for elsewhere in [
            "http://media.ringcentral.com/a",
            "https://media.ringcentral.com:8443/a",
            "https://user@media.ringcentral.com/a",
            "https://media.ringcentral.com.evil.example/a",
            "https://evil.example/a",
            "https://platform.ringcentral.com:444/a",
            "not a url",
        ] {
            assert!(!carries_sign_in(prod, elsewhere), "{elsewhere}");
        }
        assert!(!carries_sign_in(
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9001/a"
        ));
        assert!(!carries_sign_in(
            "http://127.0.0.1:9000",
            "https://media.ringcentral.com/a"
        ));
    }

    #[test]
    fn a_refused_sign_in_names_the_setting_at_fault() {
        let refused = |code: &str, message: &str| {
            ApiError::Auth {
                code: code.into(),
                message: message.into(),
            }
            .to_string()
        };
        assert_eq!(
            refused("OAU-123", "Invalid client"),
            "RingCentral refused the credentials: the client ID or client secret is wrong \
             (OAU-123: Invalid client)"
        );
        assert!(
            refused("invalid_grant", "Invalid resource owner credentials")
                .contains("the JWT is wrong, expired or revoked")
        );
        assert!(refused("OAU-250", "Unsupported grant type").contains("JWT auth flow"));
        assert!(refused("OAU-999", "?").contains("check the client ID, client secret and JWT"));
        let auth = ApiError::Auth {
            code: "OAU-123".into(),
            message: String::new(),
        };
        assert_eq!(auth.settings_section(), Some("ringcentral"));
        assert_eq!(ApiError::Network("down".into()).settings_section(), None);
    }

    use super::*;

    /// Serves one HTTP answer made of `head` and then `body_len` spaces, on 127.0.0.1.
    async fn one_answer(head: &'static str, body_len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len());
                if socket.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        url
    }

    #[tokio::test]
    async fn oversized_answers_are_refused_without_reading_them_whole() {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::new();
        let get = |url: String| {
            let client = client.clone();
            async move { client.get(url).send().await.expect("answer") }
        };
        // A declared length over the cap: refused before any of the body is read.
        let url = one_answer("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", 0).await;
        let err = answer_text(get(url).await).await.expect_err("too large");
        assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
        // No declared length: refused once the stream passes the cap.
        let url = one_answer(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            MAX_ANSWER_BYTES + 1,
        )
        .await;
        let err = answer_text(get(url).await).await.expect_err("too large");
        assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
        // Up to the cap is fine.
        let url = one_answer(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            MAX_ANSWER_BYTES,
        )
        .await;
        let text = answer_text(get(url).await).await.expect("within the cap");
        assert_eq!(text.len(), MAX_ANSWER_BYTES);
    }

    /// A token endpoint that answers every request with `status`; counts the requests.
    async fn token_server(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().route(
            "/restapi/oauth/token",
            axum::routing::post(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    (
                        axum::http::StatusCode::from_u16(status).expect("status"),
                        r#"{"error":"invalid_grant","errorCode":"OAU-213","message":"Token is expired"}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    #[tokio::test]
    async fn a_failing_token_server_is_not_taken_for_refused_credentials() {
        // Ten thousand times faster: the retries' ten-second waits take a millisecond.
        let now = Utc::now();
        let clock = Clock::scaled(10_000.0, now, now);
        let credentials = || Credentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
            jwt: Secret::new("jwt"),
        };
        for status in [503u16, 500, 408] {
            let (url, hits) = token_server(status).await;
            let platform = Platform::new(&url, credentials(), clock).expect("client");
            let err = platform.authenticate().await.expect_err("failing");
            assert!(
                matches!(err, ApiError::Api { status: s, .. } if s == status),
                "{status}: {err:?}"
            );
            assert_eq!(
                hits.load(std::sync::atomic::Ordering::SeqCst),
                4,
                "{status}: retried"
            );
        }
        let (url, hits) = token_server(400).await;
        let platform = Platform::new(&url, credentials(), clock).expect("client");
        let err = platform.authenticate().await.expect_err("refused");
        assert!(
            matches!(err, ApiError::Auth { ref code, .. } if code == "OAU-213"),
            "{err:?}"
        );
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a refusal is final"
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_credentials_go_only_to_https_or_this_machine() {
        let (elsewhere, stolen) = token_server(200).await;
        let app = axum::Router::new().route(
            "/restapi/oauth/token",
            axum::routing::post(move || {
                let to = format!("{elsewhere}/restapi/oauth/token");
                async move {
                    (
                        axum::http::StatusCode::PERMANENT_REDIRECT,
                        [("location", to)],
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let credentials = || Credentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
            jwt: Secret::new("jwt"),
        };
        let clock = Clock::real();
        let platform = Platform::new(&url, credentials(), clock).expect("client");
        let err = platform
            .authenticate()
            .await
            .expect_err("a redirect is no token");
        assert!(
            matches!(
                err,
                ApiError::Auth { .. } | ApiError::Api { .. } | ApiError::Protocol(_)
            ),
            "{err:?}"
        );
        assert_eq!(
            stolen.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the JWT form was not resent to the redirect's target"
        );
        for server in [
            "http://platform.example.com",
            "ftp://x",
            "https://user@evil.example",
        ] {
            assert!(
                matches!(
                    Platform::new(server, credentials(), clock),
                    Err(ApiError::InsecureServer(_))
                ),
                "{server}"
            );
        }
    }

    /// A RingCentral that grants tokens and hangs up on every other request without an
    /// answer (the answer lost on the way back); counts those requests.
    async fn hanging_up_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if request.starts_with(b"POST /restapi/oauth/token") {
                        let body = r#"{"access_token":"t","expires_in":3600}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(answer.as_bytes()).await;
                    } else {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_not_sent_again() {
        let now = Utc::now();
        let clock = Clock::scaled(10_000.0, now, now);
        let credentials = Credentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
            jwt: Secret::new("jwt"),
        };
        let (url, hits) = hanging_up_server().await;
        let platform = Platform::new(&url, credentials, clock).expect("client");
        let err = platform
            .create_subscription(
                &["/restapi/v1.0/account/~/telephony/sessions".into()],
                "https://x/hook",
                None,
                3600,
            )
            .await
            .expect_err("no answer");
        assert!(matches!(err, ApiError::Network(_)), "{err:?}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "sent once"
        );
        // Reading is repeated: it cannot leave anything behind.
        let err = platform.list_subscriptions().await.expect_err("no answer");
        assert!(matches!(err, ApiError::Network(_)), "{err:?}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1 + 4,
            "retried"
        );
    }

    #[test]
    fn absurd_waits_and_lifetimes_from_the_server_are_bounded() {
        let mut headers = reqwest::header::HeaderMap::new();
        let at = DateTime::parse_from_rfc3339("2026-11-24T07:27:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(retry_after(&headers, at), None, "absent");
        for (sent, obeyed) in [
            ("60", Some(60)),
            (" 90 ", Some(90)),
            ("-5", Some(0)),
            ("99999999999999999", Some(MAX_RETRY_AFTER)),
            ("soon", None),
            ("", None),
            // The HTTP-date form (RFC 9110 §10.2.3), counted from `at`.
            ("Tue, 24 Nov 2026 07:28:00 GMT", Some(60)),
            ("Tue, 24 Nov 2026 07:00:00 GMT", Some(0)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
            ("Tue, 24 Nov 2026 99:00:00 GMT", None),
            // RFC 9110's two obsolete forms, which recipients must still read.
            ("Tuesday, 24-Nov-26 07:28:00 GMT", Some(60)),
            ("Tue Nov 24 07:28:30 2026", Some(90)),
        ] {
            headers.insert(
                "retry-after",
                reqwest::header::HeaderValue::from_static(sent),
            );
            assert_eq!(retry_after(&headers, at), obeyed, "{sent}");
        }
        let now = Utc::now();
        for (sent, seconds) in [
            (None, 3600),
            (Some(7199), 7199),
            (Some(-1), 60),
            (Some(i64::MAX), 86_400),
        ] {
            let lifetime = token_lifetime(sent);
            assert_eq!(lifetime.num_seconds(), seconds, "{sent:?}");
            assert!(now.checked_add_signed(lifetime).is_some());
        }
    }
}
