//! RingCentral's WebSocket transport: the connection and its frames. Events arrive without a
//! public URL: the client opens the socket with a single-use token from
//! [`crate::api::Platform::ws_token`] and the server speaks first with `ConnectionDetails`.
//! Every frame is a JSON array `[meta, body]` (a heartbeat has only the meta); a
//! `ServerNotification`'s body is exactly a webhook delivery's body. docs/ARCHITECTURE.md
//! ("RingCentral over WebSocket") gives the sources.
//!
//! This module only connects, reads and writes frames; keeping the session alive (heartbeats,
//! recovery with `wsc`, resubscribing, backfilling a gap) is the engine's job.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::api::{ApiError, WsToken};
use callpop_core::Secret;

/// The largest frame accepted: an event body is a few KiB; a recovery replays events one
/// frame each.
const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// What `ConnectionDetails` says about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionDetails {
    /// The token that recovers this session after a drop, and its sequence.
    pub wsc: Option<(Secret, i64)>,
    /// Seconds after a drop during which the session can be recovered.
    pub recovery_timeout: i64,
    /// Seconds without client activity after which the server closes (WSG-902).
    pub idle_timeout: i64,
    /// Seconds after which the server closes whatever the activity (WSG-903).
    pub absolute_timeout: i64,
    /// At most this many missed events are replayed on a recovery.
    pub recovery_buffer_size: i64,
    /// What became of a recovery this connection asked for.
    pub recovery: Recovery,
}

/// The outcome of connecting with a `wsc` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No recovery was asked for (a fresh session).
    NotAsked,
    /// The session and its subscription were kept; missed events follow (at most the buffer).
    Successful,
    /// The session is new: subscribe again, and the missed events are lost.
    Failed {
        /// `recoveryErrorCode`, when sent.
        code: Option<String>,
    },
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// The session's details (the first frame of every connection).
    ConnectionDetails(ConnectionDetails),
    /// An event: `body` is the delivery's JSON text exactly as sent, for the webhook parser.
    Notification {
        /// The delivery body.
        body: String,
    },
    /// The answer to a `ClientRequest` (matched by `message_id`).
    Reply {
        /// The request's id.
        message_id: String,
        /// Its HTTP status.
        status: u16,
        /// The answer body (a subscription, or RingCentral's error body).
        body: Value,
    },
    /// The answer to a heartbeat.
    Heartbeat,
    /// The server reports an error (`WSG-902` idle timeout, `WSG-903` absolute timeout, …);
    /// it closes the connection after it.
    Error {
        /// `errorCode`.
        code: String,
        /// Explanation.
        message: String,
    },
    /// A frame type this client does not use.
    Other(String),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    #[serde(rename = "type")]
    kind: String,
    message_id: Option<Value>,
    status: Option<u16>,
    wsc: Option<Wsc>,
}

#[derive(Deserialize)]
struct Wsc {
    token: String,
    sequence: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DetailsBody {
    recovery_timeout: Option<i64>,
    idle_timeout: Option<i64>,
    absolute_timeout: Option<i64>,
    recovery_buffer_size: Option<i64>,
    recovery_state: Option<String>,
    recovery_error_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ErrorBody {
    error_code: Option<String>,
    message: Option<String>,
}

fn protocol(what: impl std::fmt::Display) -> ApiError {
    ApiError::Protocol(format!("WebSocket frame: {what}"))
}

/// Reads one text frame.
pub fn read_frame(text: &str) -> Result<Incoming, ApiError> {
    let parts: Vec<Box<RawValue>> = serde_json::from_str(text)
        .map_err(|e| protocol(format!("not a JSON array of objects ({e})")))?;
    let Some(meta) = parts.first() else {
        return Err(protocol("empty array"));
    };
    let meta: Meta = serde_json::from_str(meta.get()).map_err(protocol)?;
    let body = parts.get(1).map(|b| b.get());
    let message_id = || match &meta.message_id {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Ok(match meta.kind.as_str() {
        "ConnectionDetails" => {
            let d: DetailsBody = match body {
                Some(b) => serde_json::from_str(b).map_err(protocol)?,
                None => DetailsBody::default(),
            };
            let recovery = match d.recovery_state.as_deref() {
                None => Recovery::NotAsked,
                Some(s) if s.eq_ignore_ascii_case("successful") => Recovery::Successful,
                Some(_) => Recovery::Failed {
                    code: d.recovery_error_code,
                },
            };
            Incoming::ConnectionDetails(ConnectionDetails {
                wsc: meta
                    .wsc
                    .map(|w| (Secret::new(w.token), w.sequence.unwrap_or(0))),
                // The documented defaults, when a field is missing.
                recovery_timeout: d.recovery_timeout.unwrap_or(180).clamp(0, 86_400),
                idle_timeout: d.idle_timeout.unwrap_or(1800).clamp(60, 86_400),
                absolute_timeout: d.absolute_timeout.unwrap_or(86_400).clamp(60, 7 * 86_400),
                recovery_buffer_size: d.recovery_buffer_size.unwrap_or(100),
                recovery,
            })
        }
        "ServerNotification" => Incoming::Notification {
            body: body
                .ok_or_else(|| protocol("a notification without a body"))?
                .to_string(),
        },
        "ClientRequest" => Incoming::Reply {
            message_id: message_id(),
            status: meta.status.unwrap_or(200),
            body: match body {
                Some(b) => serde_json::from_str(b).map_err(protocol)?,
                None => Value::Null,
            },
        },
        "Heartbeat" | "HeartbeatResponse" => Incoming::Heartbeat,
        "Error" => {
            let e: ErrorBody = body
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default();
            Incoming::Error {
                code: e.error_code.unwrap_or_else(|| "unknown".into()),
                message: e.message.unwrap_or_default(),
            }
        }
        other => Incoming::Other(other.to_string()),
    })
}

/// A fresh message id (a random UUID v4 in text form).
pub fn message_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Ids only match replies to requests; a clock-based one is as good here.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// The `ClientRequest` that subscribes this connection to `filters` (one subscription per
/// connection: a second replaces the first). Returns the frame and its message id.
pub fn subscribe_request(filters: &[String]) -> (String, String) {
    let id = message_id();
    let frame = json!([{"type": "ClientRequest", "messageId": id, "method": "POST",
                        "path": "/restapi/v1.0/subscription/"},
                       {"eventFilters": filters, "deliveryMode": {"transportType": "WebSocket"}}]);
    (frame.to_string(), id)
}

/// A heartbeat frame (keeps the session from its idle timeout).
pub fn heartbeat() -> String {
    json!([{"type": "Heartbeat", "messageId": message_id()}]).to_string()
}

/// Whether the refusal of a WebSocket subscription means the app lacks the permission
/// (`SUB-528`, or a `CMN-401`/`InsufficientPermissions` naming a WebSocket permission).
pub fn refuses_permission(status: u16, body: &Value) -> bool {
    let code = body.get("errorCode").and_then(Value::as_str).unwrap_or("");
    let names_websocket = body.to_string().to_ascii_lowercase().contains("websocket");
    code == "SUB-528"
        || (status == 403
            && names_websocket
            && matches!(code, "CMN-401" | "InsufficientPermissions" | ""))
}

/// The socket address to open for `token`: its `uri` with the token (and the `wsc` of a
/// session to recover). `wss://` is required, except for a test server on this machine
/// (`server` itself on a loopback address), whose `ws://` uri must be on a loopback address too.
pub fn socket_url(server: &str, token: &WsToken, wsc: Option<&Secret>) -> Result<String, ApiError> {
    let mut url = reqwest::Url::parse(&token.uri)
        .map_err(|e| ApiError::Protocol(format!("wstoken uri {:?}: {e}", token.uri)))?;
    let loopback_server =
        callpop_core::links::http_target(server).is_some_and(|t| t.loopback && !t.https);
    let allowed = match url.scheme() {
        "wss" => true,
        "ws" => {
            loopback_server
                && callpop_core::links::http_target(&url.as_str().replacen("ws://", "http://", 1))
                    .is_some_and(|t| t.loopback)
        }
        _ => false,
    };
    if !allowed {
        return Err(ApiError::InsecureServer(token.uri.clone()));
    }
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("access_token", token.token.expose());
        if let Some(wsc) = wsc {
            q.append_pair("wsc", wsc.expose());
        }
    }
    Ok(url.to_string())
}

/// An open connection to RingCentral's WebSocket gateway.
pub struct Connection {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, ApiError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    crate::tls::install_crypto_provider();
    let config = rustls::ClientConfig::builder()
        .with_platform_verifier()
        .map_err(|e| ApiError::Network(format!("TLS setup: {e}")))?
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Connection {
    /// Opens `url` (from [`socket_url`]) within `timeout` and reads the `ConnectionDetails`
    /// the server sends first (nothing is sent before it). An `Error` frame instead is
    /// returned as [`ApiError::Api`] with its code.
    pub async fn open(
        url: &str,
        timeout: Duration,
    ) -> Result<(Connection, ConnectionDetails), ApiError> {
        let request = url
            .into_client_request()
            .map_err(|e| ApiError::Protocol(format!("WebSocket address: {e}")))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let connector = Connector::Rustls(tls_config()?);
        let opened = tokio::time::timeout(timeout, async {
            let (stream, _) = tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(config),
                true,
                Some(connector),
            )
            .await
            .map_err(connect_error)?;
            let mut connection = Connection { stream };
            match connection.next().await {
                Some(Ok(Incoming::ConnectionDetails(details))) => Ok((connection, details)),
                Some(Ok(Incoming::Error { code, message })) => Err(ApiError::Api {
                    status: 400,
                    code,
                    message,
                }),
                Some(Ok(other)) => Err(protocol(format!(
                    "expected ConnectionDetails first, got {other:?}"
                ))),
                Some(Err(e)) => Err(e),
                None => Err(ApiError::Network(
                    "the connection closed before ConnectionDetails".into(),
                )),
            }
        })
        .await;
        opened.unwrap_or_else(|_| {
            Err(ApiError::Network(format!(
                "no WebSocket connection within {} s",
                timeout.as_secs()
            )))
        })
    }

    /// The next frame from the server; `None` once the connection is closed. Pings are
    /// answered on the way (tungstenite queues the pong; it is flushed here at once).
    pub async fn next(&mut self) -> Option<Result<Incoming, ApiError>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(ApiError::Network(e.to_string()))),
            };
            match message {
                Message::Text(text) => return Some(read_frame(text.as_str())),
                Message::Binary(_) => return Some(Err(protocol("a binary frame"))),
                Message::Ping(_) => {
                    // The pong must go within 10 s even if no other frame follows soon.
                    if let Err(e) = self.stream.flush().await {
                        return Some(Err(ApiError::Network(e.to_string())));
                    }
                }
                Message::Close(_) => return None,
                Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Sends one text frame.
    pub async fn send(&mut self, frame: String) -> Result<(), ApiError> {
        self.stream
            .send(Message::text(frame))
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    /// Closes the connection (a normal close; the server's answer is not awaited long).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close(None)).await;
    }
}

/// A failed upgrade: the gateway's HTTP refusal keeps its status (401 for a used or expired
/// token); anything else is a network failure.
fn connect_error(e: tokio_tungstenite::tungstenite::Error) -> ApiError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(response) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            ApiError::Api {
                status,
                code: body
                    .get("errorCode")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("HTTP-{status}"), str::to_string),
                message: body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the WebSocket gateway refused the connection")
                    .to_string(),
            }
        }
        other => ApiError::Network(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_as_the_documentation_shows_them() {
        let details = r#"[{"type":"ConnectionDetails","messageId":"m1","status":200,
            "wsc":{"token":"RTFh","sequence":1},"headers":{"RCRequestId":"r"}},
            {"creationTime":"2020-09-07T21:50:02.737+0000","maxConnectionsPerSession":50,
             "recoveryBufferSize":100,"recoveryTimeout":180,"idleTimeout":1800,
             "absoluteTimeout":86400,"maxActiveRequests":10}]"#;
        let Ok(Incoming::ConnectionDetails(d)) = read_frame(details) else {
            panic!("details");
        };
        assert_eq!(d.recovery, Recovery::NotAsked);
        assert_eq!((d.recovery_timeout, d.idle_timeout), (180, 1800));
        assert_eq!(
            d.wsc.as_ref().map(|(t, s)| (t.expose(), *s)),
            Some(("RTFh", 1))
        );

        let failed = r#"[{"type":"ConnectionDetails","wsc":{"token":"x","sequence":2}},
            {"recoveryState":"Failed","recoveryErrorCode":"WSG-1003"}]"#;
        let Ok(Incoming::ConnectionDetails(d)) = read_frame(failed) else {
            panic!("details");
        };
        assert_eq!(
            d.recovery,
            Recovery::Failed {
                code: Some("WSG-1003".into())
            }
        );

        // The body is kept byte for byte for the webhook parser.
        let event = r#"[{"type":"ServerNotification","messageId":"u","status":200},{"uuid":"u", "event":"/x","body":{"a":1}}]"#;
        assert_eq!(
            read_frame(event).ok(),
            Some(Incoming::Notification {
                body: r#"{"uuid":"u", "event":"/x","body":{"a":1}}"#.into()
            })
        );
        assert_eq!(
            read_frame(r#"[{"type":"Heartbeat","messageId":"h"}]"#).ok(),
            Some(Incoming::Heartbeat)
        );
        assert_eq!(
            read_frame(
                r#"[{"type":"Error"},{"errorCode":"WSG-902","message":"Idle timeout expired"}]"#
            )
            .ok(),
            Some(Incoming::Error {
                code: "WSG-902".into(),
                message: "Idle timeout expired".into()
            })
        );
        for bad in ["", "{}", "[]", "[1]", "[{\"type\":\"ServerNotification\"}]"] {
            assert!(read_frame(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_permission_is_told_from_other_refusals() {
        let sub528 = json!({"errorCode": "SUB-528", "message": "…"});
        assert!(refuses_permission(403, &sub528));
        let cmn401 = json!({"errorCode": "InsufficientPermissions",
            "message": "In order to call this API endpoint, application needs to have [WebSocketsSubscriptions] permission"});
        assert!(refuses_permission(403, &cmn401));
        let other = json!({"errorCode": "SUB-406", "message": "Event filters are not specified"});
        assert!(!refuses_permission(400, &other));
        let unrelated = json!({"errorCode": "CMN-401", "message": "needs [ReadCallLog]"});
        assert!(!refuses_permission(403, &unrelated));
    }

    #[test]
    fn plain_ws_only_to_a_test_server_on_this_machine() {
        let token = |uri: &str| WsToken {
            token: Secret::new("t&k".to_string()),
            uri: uri.into(),
            expires_in: 30,
        };
        let prod = "https://platform.ringcentral.com";
        let url = socket_url(prod, &token("wss://ws-api.ringcentral.com/ws"), None).expect("wss");
        assert_eq!(url, "wss://ws-api.ringcentral.com/ws?access_token=t%26k");
        let wsc = Secret::new("w".to_string());
        let local = "http://127.0.0.1:9000";
        let url = socket_url(local, &token("ws://127.0.0.1:9000/ws"), Some(&wsc)).expect("ws");
        assert_eq!(url, "ws://127.0.0.1:9000/ws?access_token=t%26k&wsc=w");
        assert!(socket_url(prod, &token("ws://ws-api.ringcentral.com/ws"), None).is_err());
        assert!(socket_url(local, &token("ws://192.168.1.5/ws"), None).is_err());
        assert!(socket_url(local, &token("https://127.0.0.1/ws"), None).is_err());
    }

    #[test]
    fn message_ids_are_version_4_uuids() {
        let id = message_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, message_id());
    }
}
