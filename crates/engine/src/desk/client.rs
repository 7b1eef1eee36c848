//! The desk's HTTPS client for its hub's desk API: TLS that accepts only the pinned key (or,
//! while pairing, remembers the first key seen), the protocol version on every request, and
//! the hub's answers turned into errors a person can act on.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use callpop_core::Secret;
use callpop_hub::pairing::PairingError;
use callpop_hub::pin::{self, HubVerifier};
use callpop_hub::wire::{routes, ErrorBody, FeedPage, HubStatus, PROTOCOL, PROTOCOL_HEADER};
use callpop_hub::{Fingerprint, HubError};

/// The desk API's port when an address names none.
pub const DEFAULT_PORT: u16 = 8788;

/// Longest wait for an answer to one request (a page of the feed).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why talking to the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A server at the hub's address showed another key than the one pinned.
    #[error("the hub's identity changed (it now shows key {}, not the one this desk paired with): pair again", .seen.short())]
    IdentityChanged {
        /// The key it showed.
        seen: Fingerprint,
    },
    /// The hub removed this desk.
    #[error("this desk was removed from the hub: join it again to get its calls")]
    Removed,
    /// The hub does not know this desk's token.
    #[error("the hub does not know this desk (it may have been reset): join it again")]
    Unauthorized,
    /// Hub and desk speak different protocol versions.
    #[error("{0}")]
    Protocol(String),
    /// Pairing failed.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// No connection.
    #[error("cannot reach the hub at {address}: {detail}")]
    Unreachable {
        /// Where.
        address: String,
        /// Why.
        detail: String,
    },
    /// Any other refusal.
    #[error("the hub refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The answer could not be read.
    #[error("the hub sent an answer this desk cannot read: {0}")]
    Garbled(String),
    /// The address is not one.
    #[error("{0:?} is not a hub address: use host:port, such as 192.168.1.10:8788")]
    BadAddress(String),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] HubError),
}

impl LinkError {
    /// Whether trying again later can help (a network problem, the hub restarting), as
    /// opposed to a state a person must fix (pair again, update).
    pub fn is_passing(&self) -> bool {
        matches!(
            self,
            LinkError::Unreachable { .. } | LinkError::Garbled(_) | LinkError::Refused { .. }
        )
    }
}

/// `https://host:port` for an address a person typed (`host`, `host:port`, `[v6]:port`).
pub fn hub_url(address: &str) -> Result<String, LinkError> {
    let address = address
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let bad = || LinkError::BadAddress(address.to_string());
    if address.is_empty() || address.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    if let Ok(addr) = address.parse::<std::net::SocketAddr>() {
        return Ok(format!("https://{addr}"));
    }
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return Ok(format!(
            "https://{}",
            std::net::SocketAddr::new(ip, DEFAULT_PORT)
        ));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
        None => (address, DEFAULT_PORT),
    };
    if host.is_empty() || host.contains(':') {
        return Err(bad());
    }
    Ok(format!("https://{host}:{port}"))
}

/// A client for one hub.
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    address: String,
    token: Option<Secret>,
    verifier: Arc<HubVerifier>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn http(
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    local: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, LinkError> {
    let tls = pin::client_config(verifier, provider())?;
    reqwest::Client::builder()
        .local_address(local)
        .tls_backend_preconfigured(tls)
        .user_agent(format!("CallPop/{}", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        // A desk talks to one hub on the LAN; a proxy set for the web must not see it.
        .no_proxy()
        .build()
        .map_err(|e| LinkError::Garbled(e.to_string()))
}

impl HubClient {
    /// A client that trusts only the pinned key and sends the desk's token.
    pub fn pinned(
        address: &str,
        fingerprint: Fingerprint,
        token: Secret,
    ) -> Result<HubClient, LinkError> {
        HubClient::pinned_from(address, fingerprint, token, None)
    }

    /// [`HubClient::pinned`], connecting from `local` (a benchmark playing many desks gives
    /// each its own address, as real desks have).
    pub fn pinned_from(
        address: &str,
        fingerprint: Fingerprint,
        token: Secret,
        local: Option<std::net::IpAddr>,
    ) -> Result<HubClient, LinkError> {
        let verifier = HubVerifier::pinned(fingerprint, provider());
        Ok(HubClient {
            http: http(verifier.clone(), local)?,
            base: hub_url(address)?,
            address: address.to_string(),
            token: Some(token),
            verifier,
        })
    }

    /// A client for pairing: it accepts the first key it sees and no other.
    pub fn first_sight(address: &str) -> Result<HubClient, LinkError> {
        let verifier = HubVerifier::first_sight(provider());
        Ok(HubClient {
            http: http(verifier.clone(), None)?,
            base: hub_url(address)?,
            address: address.to_string(),
            token: None,
            verifier,
        })
    }

    /// The key the client accepted (for a first-sight client, the one pairing binds).
    pub fn seen(&self) -> Option<Fingerprint> {
        self.verifier.seen()
    }

    /// The address as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(PROTOCOL_HEADER, PROTOCOL.to_string());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        request
    }

    /// Sends a request; the successful answer, or the hub's refusal as an error.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LinkError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Option<ErrorBody> = response.json().await.ok();
        let (code, message) = body
            .map(|b| (b.error, b.message))
            .unwrap_or_else(|| (String::new(), format!("HTTP {status}")));
        Err(match code.as_str() {
            "removed" => LinkError::Removed,
            "unauthorized" => LinkError::Unauthorized,
            "protocol" => LinkError::Protocol(message),
            "malformed_code" | "unknown_code" | "expired_code" | "used_code"
            | "too_many_attempts" | "wrong_code" => {
                LinkError::Pairing(PairingError::from_code(&code, &message))
            }
            _ => LinkError::Refused { status, message },
        })
    }

    /// A network failure, or the pinned key refused.
    fn unreachable(&self, e: &reqwest::Error) -> LinkError {
        if let Some(seen) = self.verifier.refused() {
            return LinkError::IdentityChanged { seen };
        }
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        LinkError::Unreachable {
            address: self.address.clone(),
            detail,
        }
    }

    async fn json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, LinkError> {
        response
            .json()
            .await
            .map_err(|e| LinkError::Garbled(e.to_string()))
    }

    /// POSTs `body` as JSON to `path`; the answer read as `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, LinkError> {
        let request = self
            .request(reqwest::Method::POST, path)
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        Self::json(self.send(request).await?).await
    }

    /// A page of the change feed after `after` (calls since `since_ms` only).
    pub async fn feed(
        &self,
        after: i64,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<FeedPage, LinkError> {
        let mut path = format!("{}?after={after}&limit={limit}", routes::FEED);
        if let Some(since) = since_ms {
            path.push_str(&format!("&since={since}"));
        }
        let request = self
            .request(reqwest::Method::GET, &path)
            .timeout(REQUEST_TIMEOUT);
        Self::json(self.send(request).await?).await
    }

    /// Opens the live stream after `after`.
    pub async fn stream(
        &self,
        after: i64,
        since_ms: Option<i64>,
    ) -> Result<reqwest::Response, LinkError> {
        let mut path = format!("{}?after={after}", routes::STREAM);
        if let Some(since) = since_ms {
            path.push_str(&format!("&since={since}"));
        }
        let request = self
            .request(reqwest::Method::GET, &path)
            .header("last-event-id", after.to_string())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        self.send(request).await
    }

    /// The hub's own status.
    pub async fn status(&self) -> Result<HubStatus, LinkError> {
        let request = self
            .request(reqwest::Method::GET, routes::STATUS)
            .timeout(REQUEST_TIMEOUT);
        Self::json(self.send(request).await?).await
    }

    /// A call's raw deliveries as the hub stored them.
    pub async fn call_deliveries(
        &self,
        provider: callpop_core::model::Provider,
        call_key: &str,
    ) -> Result<callpop_hub::wire::CallDeliveries, LinkError> {
        let request = self
            .request(reqwest::Method::GET, routes::CALL_DELIVERIES)
            .query(&[("provider", provider.as_str()), ("key", call_key)])
            .timeout(Duration::from_secs(10));
        Self::json(self.send(request).await?).await
    }

    /// Leaves the hub: the token stops working.
    pub async fn leave(&self) -> Result<(), LinkError> {
        let request = self
            .request(reqwest::Method::POST, routes::LEAVE)
            .timeout(REQUEST_TIMEOUT);
        self.send(request).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_people_type_become_hub_urls() {
        let ok = |a: &str| hub_url(a).expect(a);
        assert_eq!(ok("192.168.1.10"), "https://192.168.1.10:8788");
        assert_eq!(ok("192.168.1.10:9000"), "https://192.168.1.10:9000");
        assert_eq!(ok(" reception.local "), "https://reception.local:8788");
        assert_eq!(ok("reception.local:9000/"), "https://reception.local:9000");
        assert_eq!(ok("[fe80::1]:8788"), "https://[fe80::1]:8788");
        assert_eq!(ok("fe80::1"), "https://[fe80::1]:8788");
        assert_eq!(ok("https://10.0.0.2:8788"), "https://10.0.0.2:8788");
        for bad in ["", "host:port", "a/b", "user@host", "host:99999"] {
            assert!(hub_url(bad).is_err(), "{bad}");
        }
    }
}
