//! The receiver's decisions from a request head, on any method, path and headers: never
//! panics, and nothing it lets through breaks the rules the receiver relies on.
#![no_main]

use callpop_core::model::Provider;
use callpop_core::request_head::{
    decide, is_loopback_host, AfterBody, Decision, Listener, Policy, RequestHead,
    HANDSHAKE_BODY_CAP, HEALTH_PATH, TOKEN_HEADERS,
};
use callpop_core::routes::{RINGCENTRAL_PATH, RINGOTEL_PATH};
use callpop_core::Secret;
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "the-verification-token";
const MAX_BODY: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the listener, the method, the path and whether a token is set;
    // the rest is header lines, "name:value" separated by newlines.
    let listener = if choice & 1 == 0 { Listener::Local } else { Listener::Public };
    let method = ["POST", "GET", "HEAD", "PUT"][usize::from(choice >> 1 & 3)];
    let path = [RINGCENTRAL_PATH, RINGOTEL_PATH, HEALTH_PATH, "/"][usize::from(choice >> 3 & 3)];
    let secret = Secret::new(TOKEN);
    let token = (choice & 0x20 == 0).then_some(&secret);
    let headers: Vec<(&str, &[u8])> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            Some((name, &line[colon + 1..]))
        })
        .collect();
    let head = RequestHead { method, path, headers: &headers, listener };
    let policy = Policy { ringcentral_token: token, max_body_bytes: MAX_BODY };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    match decide(&head, &policy) {
        Decision::Refuse(r) => {
            assert!((400..600).contains(&r.status), "{r:?}");
            assert!(r.unauthorized.is_none() || r.status == 401, "{r:?}");
        }
        Decision::Health => {
            assert_eq!(listener, Listener::Local);
            assert_eq!(path, HEALTH_PATH);
            assert!(header("host").is_some_and(is_loopback_host));
        }
        Decision::Handshake { token } => {
            assert_eq!(path, RINGCENTRAL_PATH);
            assert!(!token.is_empty() && token.len() <= 512);
            assert!(!token.bytes().any(|b| b.is_ascii_control() && b != b'\t'));
        }
        Decision::ReadBody { provider, cap, then } => {
            assert_eq!(method, "POST");
            assert!(cap <= MAX_BODY);
            match then {
                AfterBody::RingCentral => {
                    assert_eq!(provider, Provider::RingCentral);
                    assert_eq!(path, RINGCENTRAL_PATH);
                    // Nobody without the token gets their RingCentral body read.
                    if token.is_some() {
                        let presented = TOKEN_HEADERS.iter().find_map(|n| header(n));
                        assert_eq!(presented, Some(TOKEN));
                    }
                }
                AfterBody::RingCentralHandshakeOrRefuse { .. } => {
                    assert_eq!(provider, Provider::RingCentral);
                    assert_eq!(cap, HANDSHAKE_BODY_CAP);
                }
                AfterBody::Ringotel => {
                    assert_eq!(provider, Provider::Ringotel);
                    assert_eq!(path, RINGOTEL_PATH);
                }
            }
        }
    }
});
