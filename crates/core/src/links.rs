//! Links that arrive in provider payloads (recordings, voicemail audio) and the window's own
//! origin. A payload link is shown in the window and opened in the desktop's browser when
//! someone clicks it, so it is kept only if it is plain http(s) to another machine: a sender
//! must not be able to make a click open a local service (a router page, another app's local
//! API) or pose as the window's own page. The same reading of a URL's host (this machine, the
//! dealership's network, the internet) decides where credentials may be sent and where a CRM
//! link may point.

use std::net::IpAddr;

use url::{Host, Url};

/// The longest payload link kept.
pub const MAX_LINK_CHARS: usize = 2048;

/// Where an http(s) URL's host is, as far as its name or address tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// This machine: `localhost`, any `.localhost` name, loopback or unspecified addresses.
    ThisMachine,
    /// The local network: a private, unique-local or link-local address, a name without dots
    /// (`dms01`), or a name under `.local`, `.lan`, `.internal` or `.home.arpa`.
    Lan,
    /// Anywhere else.
    Internet,
}

/// An http(s) URL taken apart as far as CallPop needs. The host is read as browsers and the
/// HTTP client read it (WHATWG URL: percent-decoding, IDNA, and IPv4 in decimal, octal or hex
/// forms such as `2130706433`), so the answer is about the host that is really contacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `https`, rather than `http`.
    pub https: bool,
    /// The host as it is contacted: lower-cased, IDNA-encoded, addresses in their usual form.
    pub host: String,
    /// Where the host is.
    pub place: Place,
    /// The host is a loopback address itself, or exactly `localhost`: the one kind of host
    /// trusted with plain http (a name under `.localhost` goes through the resolver, and
    /// link-local addresses are neighbours, not this machine).
    pub loopback: bool,
    /// The host is a link-local address (`169.254.0.0/16`, `fe80::/10`): cloud metadata
    /// services and neighbours' self-assigned addresses.
    pub link_local: bool,
}

impl HttpTarget {
    /// Whether the JWT, a token or call details may be sent there: https anywhere, plain http
    /// only to a loopback address or `localhost` (a test server).
    pub fn fit_for_secrets(&self) -> bool {
        self.https || self.loopback
    }

    /// Whether a person's browser may be sent there from a CRM link: https anywhere, plain
    /// http only inside the dealership (a CRM or DMS on the LAN that does not speak https).
    pub fn fit_for_a_crm(&self) -> bool {
        self.https || self.place != Place::Internet
    }
}

/// Takes an http(s) URL apart: `None` for any other scheme, whitespace or control characters,
/// a user name or password (`https://bank.example@evil.example/` reads as the first host), or
/// no host.
pub fn http_target(raw: &str) -> Option<HttpTarget> {
    let link = raw.trim();
    if link.is_empty() || link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let url = Url::parse(link).ok()?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let (host, ip) = match url.host()? {
        Host::Domain(name) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            (name.to_string(), None)
        }
        Host::Ipv4(v4) => (v4.to_string(), Some(IpAddr::V4(v4))),
        Host::Ipv6(v6) => (v6.to_string(), Some(IpAddr::V6(v6))),
    };
    if host.is_empty() {
        return None;
    }
    let ip = ip.map(|ip| ip.to_canonical());
    Some(HttpTarget {
        https,
        place: ip.map_or_else(|| place_of_name(&host), place_of_ip),
        loopback: ip.map_or(host == "localhost", |ip| ip.is_loopback()),
        link_local: ip.is_some_and(is_link_local),
        host,
    })
}

/// `raw` as a link worth keeping from a payload, or `None`: http(s) ([`http_target`]) to
/// another machine that is not a link-local neighbour, at most [`MAX_LINK_CHARS`] long.
pub fn payload_link(raw: &str) -> Option<String> {
    let link = raw.trim();
    if link.chars().count() > MAX_LINK_CHARS {
        return None;
    }
    let target = http_target(link)?;
    (target.place != Place::ThisMachine && !target.link_local).then(|| link.to_string())
}

fn place_of_name(host: &str) -> Place {
    if host == "localhost" || host.ends_with(".localhost") {
        return Place::ThisMachine;
    }
    let lan_suffix = [".local", ".lan", ".internal", ".home.arpa"]
        .iter()
        .any(|suffix| host.ends_with(suffix));
    if !host.contains('.') || lan_suffix {
        Place::Lan
    } else {
        Place::Internet
    }
}

fn place_of_ip(ip: IpAddr) -> Place {
    if ip.is_loopback() || ip.is_unspecified() {
        return Place::ThisMachine;
    }
    let private = match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    if private || is_link_local(ip) {
        Place::Lan
    } else {
        Place::Internet
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
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
            "http://%6c%6fcalhost/",
            "http://127.0.0.%31/",
            "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
            "http://localhost\u{3002}/",
            "http://[fe80::1]/",
            "https://bank.example@evil.example/",
            "https://exa mple.com/",
            "https://example.com/\nx",
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
    fn hosts_are_placed_on_this_machine_the_lan_or_the_internet() {
        let place = |url: &str| http_target(url).map(|t| t.place);
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost",
            "http://[::1]:1",
            "http://127.1",
        ] {
            assert_eq!(place(url), Some(Place::ThisMachine), "{url}");
        }
        for url in [
            "http://192.168.1.20/crm",
            "http://10.0.0.5",
            "http://172.16.9.9",
            "http://[fd00::1]/",
            "http://dms01:8080/",
            "http://dms.dealer.local/",
            "http://crm.home.arpa",
        ] {
            assert_eq!(place(url), Some(Place::Lan), "{url}");
        }
        for url in [
            "http://crm.example.com",
            "http://8.8.8.8",
            "http://172.32.0.1",
        ] {
            assert_eq!(place(url), Some(Place::Internet), "{url}");
        }
        let t = http_target("http://crm.example.com").expect("target");
        assert!(!t.fit_for_secrets() && !t.fit_for_a_crm());
        let t = http_target("http://192.168.1.20").expect("target");
        assert!(!t.fit_for_secrets() && t.fit_for_a_crm());
        let t = http_target("http://127.0.0.1:9").expect("target");
        assert!(t.fit_for_secrets() && t.fit_for_a_crm());
        let t = http_target("HTTPS://Crm.Example.com./x").expect("target");
        assert!(t.https && t.fit_for_secrets() && t.host == "crm.example.com");
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
