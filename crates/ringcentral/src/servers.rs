//! Which servers are RingCentral's, so that credentials entered for one are never sent to
//! another host by a change of the server setting.

use callpop_core::links::http_target;

/// RingCentral's production platform.
pub const PRODUCTION_SERVER: &str = "https://platform.ringcentral.com";

/// RingCentral's developer sandbox.
pub const DEVTEST_SERVER: &str = "https://platform.devtest.ringcentral.com";

/// Whether `server` is one of RingCentral's platforms (production or the developer sandbox,
/// https on the default port), or a test server on a loopback address or `localhost`
/// (tools/fake-ringcentral).
pub fn is_ringcentral(server: &str) -> bool {
    let normalized = server.trim().trim_end_matches('/').to_ascii_lowercase();
    if normalized == PRODUCTION_SERVER || normalized == DEVTEST_SERVER {
        return true;
    }
    http_target(&normalized).is_some_and(|t| t.loopback)
}

/// Whether credentials entered for `from` may be used with `to`: the same server, or both
/// RingCentral's own ([`is_ringcentral`]). Anything else would hand the client secret and the
/// JWT to whoever runs `to`.
pub fn credentials_carry_over(from: &str, to: &str) -> bool {
    let same = |a: &str, b: &str| {
        a.trim()
            .trim_end_matches('/')
            .eq_ignore_ascii_case(b.trim().trim_end_matches('/'))
    };
    same(from, to) || (is_ringcentral(from) && is_ringcentral(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ringcentral_and_local_test_servers_share_credentials() {
        assert!(credentials_carry_over(PRODUCTION_SERVER, DEVTEST_SERVER));
        assert!(credentials_carry_over(
            "https://platform.ringcentral.com/",
            "http://127.0.0.1:9000"
        ));
        assert!(credentials_carry_over(
            "https://rc.example.com",
            "https://RC.example.com/"
        ));
        for other in [
            "https://platform.ringcentral.com.evil.example",
            "https://evil.example",
            "https://platform.ringcentral.com:8443",
            "http://platform.ringcentral.com",
            "http://192.168.1.5:9000",
            // Numeric and link-local hosts that are not this machine, whatever they look like.
            "http://134744072",
            "http://0x08080808",
            "http://8.8.8.010",
            "http://169.254.10.10:9000",
            "http://desk.localhost:9000",
        ] {
            assert!(!credentials_carry_over(PRODUCTION_SERVER, other), "{other}");
            assert!(!is_ringcentral(other), "{other}");
        }
    }
}
