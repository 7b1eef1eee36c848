//! What the receiver decides about a request from its head alone, before reading any of its
//! body: which route, whether it is RingCentral's handshake, whether a RingCentral sender
//! presented the right token, and the size and content-type limits.
//!
//! Deciding from the head is what keeps a tokenless flood cheap: a RingCentral request that
//! announces a body without a matching token header is refused before a byte of that body is
//! read, so it cannot hold a connection for the body deadline (docs/SECURITY.md). Pure, so
//! it is fuzzed on its own (docs/FUZZING.md).

use crate::model::Provider;
use crate::routes::{RINGCENTRAL_PATH, RINGOTEL_PATH};
use crate::Secret;

/// The path of the health report, served on the local listener only.
pub const HEALTH_PATH: &str = "/healthz";

/// The longest validation token echoed back; keeps the handshake reply far below 1024 bytes.
pub const MAX_VALIDATION_TOKEN: usize = 512;

/// Header names RingCentral's verification token may arrive in, in order of preference. Its
/// notifications carry it as `Validation-Token` since late 2023 and as `Verification-Token`
/// before; the underscore spelling is what some integrations document (docs/PROTOCOL.md §1.3).
pub const TOKEN_HEADERS: [&str; 3] = [
    "verification-token",
    "verification_token",
    "validation-token",
];

/// Header names RingCentral's handshake token may arrive in.
pub const HANDSHAKE_HEADERS: [&str; 3] = [
    "validation-token",
    "x_validation_token",
    "x-validation-token",
];

/// A body small enough to hold any blank handshake body a proxy may have framed as chunks,
/// read when the head alone cannot tell a handshake from a notification.
pub const HANDSHAKE_BODY_CAP: usize = 64;

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The local listener: webhooks (a dealership's own proxy forwards them here) and the
    /// local-only routes.
    Local,
    /// The public tunnel: webhooks only.
    Public,
}

/// A request's head: what arrives before its body.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'h, 'a> {
    /// The method, as sent (`POST`).
    pub method: &'h str,
    /// The path, without the query.
    pub path: &'h str,
    /// Every header as (name, value); the values outlive the list, so a decision can point
    /// into them.
    pub headers: &'h [(&'h str, &'a [u8])],
    /// The listener it arrived on.
    pub listener: Listener,
}

impl<'a> RequestHead<'_, 'a> {
    /// The first value of the first of `names` that is present and readable as text.
    fn header(&self, names: &[&str]) -> Option<&'a str> {
        names.iter().find_map(|name| {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        })
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// What the head says about the body: its declared length, or `None` for chunked or
    /// unreadable framing (which hyper refuses before the handler anyway).
    fn framing(&self) -> Framing {
        if self.has("transfer-encoding") {
            return Framing::Streamed;
        }
        match self.header(&["content-length"]) {
            None => Framing::Length(0),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_or(Framing::Streamed, Framing::Length),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Streamed,
}

/// What the receiver is configured to accept.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// RingCentral's verification token; `None` turns the check off.
    pub ringcentral_token: Option<&'a Secret>,
    /// The largest body accepted.
    pub max_body_bytes: usize,
}

/// What to do with a request, decided from its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Refuse it without reading its body.
    Refuse(Refusal),
    /// Serve the health report.
    Health,
    /// RingCentral's validation handshake: echo this token, store nothing.
    Handshake {
        /// The token to echo.
        token: &'a str,
    },
    /// Read the body (up to `cap` bytes), then go on as `then` says.
    ReadBody {
        /// Whose webhook it is.
        provider: Provider,
        /// The most bytes to read.
        cap: usize,
        /// What the body decides.
        then: AfterBody<'a>,
    },
}

/// What a body read after a [`Decision::ReadBody`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterBody<'a> {
    /// A RingCentral notification whose sender has passed the token check (or no check is
    /// configured): parse and store it.
    RingCentral,
    /// A streamed RingCentral request whose only token is a `Validation-Token` that does not
    /// match: a handshake if the body turns out blank, otherwise refused as unauthorized.
    RingCentralHandshakeOrRefuse {
        /// The token to echo if it is a handshake.
        token: &'a str,
    },
    /// A Ringotel request: its token is inside the body.
    Ringotel,
}

/// Why a request was refused, and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What the sender is told.
    pub message: String,
    /// Close the connection afterwards: the client may still be sending a body that will
    /// not be read.
    pub close: bool,
    /// Which provider's counters it goes to (none for unknown routes).
    pub provider: Option<Provider>,
    /// Set when the sender failed authentication: the reason, for the security log (never the
    /// presented token).
    pub unauthorized: Option<&'static str>,
}

impl Refusal {
    /// A refusal with this status, code and message, counted against no provider.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
            close: false,
            provider: None,
            unauthorized: None,
        }
    }

    /// The same refusal, counted against `provider`.
    pub fn of(mut self, provider: Provider) -> Refusal {
        self.provider = Some(provider);
        self
    }

    /// The same refusal, closing the connection after the reply.
    pub fn closing(mut self) -> Refusal {
        self.close = true;
        self
    }

    /// The refusal of a sender that presented no token or the wrong one.
    pub fn unauthorized(provider: Provider, reason: &'static str) -> Refusal {
        let message = match provider {
            Provider::RingCentral => "missing or wrong verification token",
            Provider::Ringotel => "missing or wrong api_token",
        };
        Refusal {
            unauthorized: Some(reason),
            ..Refusal::new(401, "unauthorized", message).of(provider)
        }
    }

    /// The refusal of a body over `limit` bytes.
    pub fn too_large(provider: Provider, limit: usize) -> Refusal {
        Refusal::new(
            413,
            "payload_too_large",
            format!("bodies are limited to {limit} bytes"),
        )
        .of(provider)
        .closing()
    }
}

/// Decides what to do with a request from its head.
///
/// Order: route and method → Host (local-only routes) → declared size → for RingCentral the
/// handshake, then the token header when a body is announced → content type. Ringotel's token
/// is inside its body, so its requests are read (within the size cap and the body deadline).
pub fn decide<'a>(head: &RequestHead<'_, 'a>, policy: &Policy<'_>) -> Decision<'a> {
    let provider = match head.path {
        RINGCENTRAL_PATH => Provider::RingCentral,
        RINGOTEL_PATH => Provider::Ringotel,
        HEALTH_PATH if head.listener == Listener::Local => return decide_health(head),
        _ => return Decision::Refuse(Refusal::new(404, "not_found", "no such endpoint")),
    };
    if head.method != "POST" {
        return Decision::Refuse(method_not_allowed());
    }
    let framing = head.framing();
    if let Framing::Length(n) = framing {
        if n > policy.max_body_bytes as u64 {
            return Decision::Refuse(Refusal::too_large(provider, policy.max_body_bytes));
        }
    }
    let then = match provider {
        Provider::RingCentral => match ringcentral_gate(head, policy, framing) {
            Gate::Pass(then) => then,
            Gate::Done(decision) => return decision,
        },
        Provider::Ringotel => AfterBody::Ringotel,
    };
    if let Err(refusal) = check_content_type(head) {
        return Decision::Refuse(refusal.of(provider));
    }
    let cap = match then {
        AfterBody::RingCentralHandshakeOrRefuse { .. } => HANDSHAKE_BODY_CAP,
        _ => policy.max_body_bytes,
    };
    Decision::ReadBody {
        provider,
        cap,
        then,
    }
}

fn method_not_allowed() -> Refusal {
    Refusal::new(
        405,
        "method_not_allowed",
        "this endpoint only accepts the documented method (webhooks: POST)",
    )
}

/// `/healthz` is for the desk's own window, CLI and monitoring. A web page the desk user
/// visits can point its own host name at 127.0.0.1 (DNS rebinding) and read it, so only a
/// loopback Host is answered.
fn decide_health<'a>(head: &RequestHead<'_, 'a>) -> Decision<'a> {
    if !matches!(head.method, "GET" | "HEAD") {
        return Decision::Refuse(method_not_allowed());
    }
    match head.header(&["host"]) {
        Some(host) if is_loopback_host(host) => Decision::Health,
        _ => Decision::Refuse(Refusal::new(
            403,
            "local_only",
            "this endpoint answers only requests addressed to localhost or a loopback address",
        )),
    }
}

/// Whether a Host header names this machine through loopback: `localhost`, `127.x.x.x` or
/// `[::1]`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, port)) if port.is_empty() || is_port(port) => inner,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

enum Gate<'a> {
    Pass(AfterBody<'a>),
    Done(Decision<'a>),
}

/// RingCentral: the handshake (a validation token on an empty body) is answered before any
/// check; any other request must carry the verification token in a header.
fn ringcentral_gate<'a>(
    head: &RequestHead<'_, 'a>,
    policy: &Policy<'_>,
    framing: Framing,
) -> Gate<'a> {
    let provider = Provider::RingCentral;
    if framing == Framing::Length(0) {
        return Gate::Done(handshake(head));
    }
    let Some(expected) = policy.ringcentral_token else {
        return Gate::Pass(AfterBody::RingCentral);
    };
    let refuse = |reason| {
        Gate::Done(Decision::Refuse(
            Refusal::unauthorized(provider, reason).closing(),
        ))
    };
    let Some(presented) = head.header(&TOKEN_HEADERS) else {
        return refuse("missing verification token");
    };
    if expected.matches(presented) {
        return Gate::Pass(AfterBody::RingCentral);
    }
    // A proxy may frame an empty handshake body as zero chunks, or a sender may send a
    // line break or two as its body: only the (small) body can tell.
    let only_validation = head.header(&TOKEN_HEADERS[..2]).is_none();
    let small = match framing {
        Framing::Streamed => true,
        Framing::Length(n) => n <= HANDSHAKE_BODY_CAP as u64,
    };
    if only_validation && small && valid_handshake_token(presented) {
        Gate::Pass(AfterBody::RingCentralHandshakeOrRefuse { token: presented })
    } else {
        refuse("wrong verification token")
    }
}

fn valid_handshake_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_VALIDATION_TOKEN
        && token
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The reply to an empty-bodied RingCentral request.
pub fn handshake<'a>(head: &RequestHead<'_, 'a>) -> Decision<'a> {
    let provider = Provider::RingCentral;
    match head.header(&HANDSHAKE_HEADERS) {
        Some(token) if valid_handshake_token(token) => Decision::Handshake { token },
        Some(_) => Decision::Refuse(
            Refusal::new(
                400,
                "invalid_validation_token",
                format!("Validation-Token must be 1 to {MAX_VALIDATION_TOKEN} visible characters"),
            )
            .of(provider),
        ),
        None => Decision::Refuse(
            Refusal::new(
                400,
                "empty_body",
                "empty body without a Validation-Token header",
            )
            .of(provider),
        ),
    }
}

/// JSON bodies only; a missing content type is tolerated (some senders omit it).
fn check_content_type(head: &RequestHead<'_, '_>) -> Result<(), Refusal> {
    let Some((_, value)) = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    else {
        return Ok(());
    };
    let text = std::str::from_utf8(value).unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence == "text/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(Refusal::new(
            415,
            "unsupported_media_type",
            format!("expected Content-Type: application/json, got {essence:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-token";

    fn decide_with<'a>(
        method: &str,
        path: &str,
        headers: &[(&str, &'a str)],
        listener: Listener,
    ) -> Decision<'a> {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let head = RequestHead {
            method,
            path,
            headers: &headers,
            listener,
        };
        let secret = Secret::new(TOKEN);
        let policy = Policy {
            ringcentral_token: Some(&secret),
            max_body_bytes: 1000,
        };
        decide(&head, &policy)
    }

    fn rc<'a>(headers: &[(&str, &'a str)]) -> Decision<'a> {
        decide_with("POST", RINGCENTRAL_PATH, headers, Listener::Public)
    }

    fn refusal(d: Decision<'_>) -> Refusal {
        match d {
            Decision::Refuse(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_ringcentral_body_without_a_matching_token_header_is_refused_before_it_is_read() {
        let missing = refusal(rc(&[("content-length", "500")]));
        assert_eq!(missing.status, 401);
        assert!(missing.close, "the unread body must not be read later");
        assert_eq!(missing.unauthorized, Some("missing verification token"));

        let wrong = refusal(rc(&[
            ("content-length", "500"),
            ("verification-token", "nope"),
        ]));
        assert_eq!(wrong.unauthorized, Some("wrong verification token"));

        let chunked_wrong = refusal(rc(&[
            ("transfer-encoding", "chunked"),
            ("verification-token", "nope"),
        ]));
        assert_eq!(chunked_wrong.status, 401);
    }

    #[test]
    fn a_matching_token_in_any_of_its_headers_lets_the_body_be_read() {
        for name in TOKEN_HEADERS {
            assert_eq!(
                rc(&[("content-length", "500"), (name, TOKEN)]),
                Decision::ReadBody {
                    provider: Provider::RingCentral,
                    cap: 1000,
                    then: AfterBody::RingCentral
                },
                "{name}"
            );
        }
    }

    #[test]
    fn the_handshake_is_answered_from_the_head_without_any_token() {
        assert_eq!(
            rc(&[("content-length", "0"), ("validation-token", "abc")]),
            Decision::Handshake { token: "abc" }
        );
        assert_eq!(
            rc(&[("validation-token", "abc")]),
            Decision::Handshake { token: "abc" },
            "no framing header means no body"
        );
        assert_eq!(refusal(rc(&[("content-length", "0")])).code, "empty_body");
        let long = "x".repeat(MAX_VALIDATION_TOKEN + 1);
        assert_eq!(
            refusal(rc(&[("validation-token", &long)])).code,
            "invalid_validation_token"
        );
    }

    #[test]
    fn a_chunked_request_with_only_a_validation_token_may_still_be_a_handshake() {
        assert_eq!(
            rc(&[
                ("transfer-encoding", "chunked"),
                ("validation-token", "abc")
            ]),
            Decision::ReadBody {
                provider: Provider::RingCentral,
                cap: HANDSHAKE_BODY_CAP,
                then: AfterBody::RingCentralHandshakeOrRefuse { token: "abc" }
            }
        );
    }

    #[test]
    fn a_few_blank_bytes_with_only_a_validation_token_may_still_be_a_handshake() {
        assert!(matches!(
            rc(&[("content-length", "2"), ("validation-token", "abc")]),
            Decision::ReadBody {
                then: AfterBody::RingCentralHandshakeOrRefuse { token: "abc" },
                ..
            }
        ));
        let big = refusal(rc(&[("content-length", "65"), ("validation-token", "abc")]));
        assert_eq!(big.status, 401, "a real body needs the real token");
    }

    #[test]
    fn size_and_content_type_are_checked_from_the_head() {
        let big = refusal(rc(&[
            ("content-length", "1001"),
            ("verification-token", TOKEN),
        ]));
        assert_eq!((big.status, big.close), (413, true));
        let text = refusal(rc(&[
            ("content-length", "10"),
            ("verification-token", TOKEN),
            ("content-type", "text/plain"),
        ]));
        assert_eq!(text.status, 415);
        let ringotel = decide_with(
            "POST",
            RINGOTEL_PATH,
            &[
                ("content-length", "10"),
                ("content-type", "application/json; charset=utf-8"),
            ],
            Listener::Public,
        );
        assert!(matches!(
            ringotel,
            Decision::ReadBody {
                then: AfterBody::Ringotel,
                ..
            }
        ));
    }

    #[test]
    fn health_is_local_and_answers_loopback_hosts_only() {
        let get = |host: &'static str, listener| {
            decide_with("GET", HEALTH_PATH, &[("host", host)], listener)
        };
        for host in [
            "127.0.0.1:8787",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8787",
            "127.1.2.3",
            "localhost.",
        ] {
            assert_eq!(get(host, Listener::Local), Decision::Health, "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1.evil.example",
            "[::1]x",
            "localhost:99999",
            "10.0.0.1:8787",
            "",
        ] {
            assert_eq!(refusal(get(host, Listener::Local)).status, 403, "{host}");
        }
        assert_eq!(
            refusal(decide_with("GET", HEALTH_PATH, &[], Listener::Local)).status,
            403
        );
        assert_eq!(refusal(get("127.0.0.1", Listener::Public)).status, 404);
    }

    #[test]
    fn unknown_routes_and_methods_are_refused() {
        assert_eq!(
            refusal(decide_with("POST", "/x", &[], Listener::Local)).status,
            404
        );
        assert_eq!(
            refusal(decide_with("GET", RINGOTEL_PATH, &[], Listener::Local)).status,
            405
        );
    }
}
