//! Links that arrive in provider payloads (recordings, voicemail audio) and the window's own
//! origin. A payload link is shown in the window and opened in the desktop's browser when
//! someone clicks it, so it is kept only if it is plain http(s) to another machine: a sender
//! must not be able to make a click open a local service (a router page, another app's local
//! API) or pose as the window's own page.

use std::net::{IpAddr, Ipv4Addr};

/// The longest payload link kept.
pub const MAX_LINK_CHARS: usize = 2048;

/// `raw` as a link worth keeping from a payload, or `None`: http or https only, no user name
/// or password (`https://bank.example@evil.example/` reads as the first host), no whitespace
/// or control characters, and a host that is not this machine (`localhost`, any `.localhost`
/// name such as the window's own `tauri.localhost`, loopback, unspecified or link-local
/// addresses, or numeric forms a browser would read as one).
pub fn payload_link(raw: &str) -> Option<String> {
    let link = raw.trim();
    if link.is_empty()
        || link.chars().count() > MAX_LINK_CHARS
        || link.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (scheme, rest) = link.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return None;
    }
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    if authority.contains('@') {
        return None;
    }
    let host = host_of(authority)?;
    (!is_this_machine(&host)).then(|| link.to_string())
}

/// The host of an authority (`host`, `host:port`, `[v6]:port`), lower-cased, without a
/// trailing dot; `None` when it is empty or malformed.
fn host_of(authority: &str) -> Option<String> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inner
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn is_port(text: &str) -> bool {
    text.is_empty() || text.parse::<u16>().is_ok()
}

/// Whether a browser would take `host` to mean this machine.
fn is_this_machine(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_local_ip(ip);
    }
    // A browser reads a host whose last label is numeric as an IPv4 address, in decimal,
    // octal or hex and with fewer than four parts (`2130706433`, `0x7f.1`, `127.1`). Only the
    // ordinary dotted form is understood here; any other numeric form is refused.
    let last = host.rsplit('.').next().unwrap_or(host);
    let numeric = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())));
    if numeric {
        return host
            .parse::<Ipv4Addr>()
            .map_or(true, |ip| is_local_ip(IpAddr::V4(ip)));
    }
    false
}

fn is_local_ip(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether a URL's scheme, host and port are the window's own page: `tauri://localhost`
/// (Linux, macOS) or `http(s)://tauri.localhost` (Windows), with no port. The whole origin
/// is compared: `https://tauri.localhost:8443/` is somebody else's server.
pub fn is_app_origin(scheme: &str, host: Option<&str>, port: Option<u16>) -> bool {
    port.is_none()
        && matches!(
            (scheme, host),
            ("tauri", Some("localhost")) | ("http" | "https", Some("tauri.localhost"))
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_http_links_are_kept() {
        for link in [
            "https://media.ringcentral.com/restapi/v1.0/x/content/1",
            "http://recordings.example.com:8080/a.mp3?x=1",
            "https://[2001:db8::1]/a.wav",
            "https://192.168.1.20/rec/1.mp3",
            "  https://example.com/a  ",
        ] {
            assert_eq!(payload_link(link).as_deref(), Some(link.trim()), "{link}");
        }
    }

    #[test]
    fn other_schemes_local_hosts_and_disguises_are_refused() {
        for link in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,hi",
            "tauri://localhost/index.html",
            "ftp://example.com/a",
            "https://tauri.localhost:8443/",
            "http://localhost/admin",
            "http://LOCALHOST./",
            "http://127.0.0.1:8787/healthz",
            "http://127.9.9.9/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "https://bank.example@evil.example/",
            "https://exa mple.com/",
            "https://example.com/\nx",
            "https:///path",
            "https://example.com:99999/",
            "",
        ] {
            assert_eq!(payload_link(link), None, "{link:?}");
        }
        assert_eq!(
            payload_link(&format!("https://e.com/{}", "a".repeat(3000))),
            None
        );
    }

    #[test]
    fn only_the_exact_app_origin_is_the_window_s_own() {
        assert!(is_app_origin("tauri", Some("localhost"), None));
        assert!(is_app_origin("https", Some("tauri.localhost"), None));
        assert!(is_app_origin("http", Some("tauri.localhost"), None));
        assert!(!is_app_origin("https", Some("tauri.localhost"), Some(8443)));
        assert!(!is_app_origin("ftp", Some("tauri.localhost"), None));
        assert!(!is_app_origin("tauri", Some("evil.example"), None));
        assert!(!is_app_origin("https", Some("localhost"), None));
    }
}
