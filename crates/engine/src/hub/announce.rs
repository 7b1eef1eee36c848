//! The hub announces itself over mDNS/DNS-SD (`_callpop-hub._tcp`), with its key's fingerprint
//! in the TXT record, so desks list it in "Join a hub" and find it again by its key after DHCP
//! moved it. Many networks block multicast: a typed address always works as well.

use std::net::SocketAddr;

use mdns_sd::{ServiceDaemon, ServiceInfo};

use callpop_hub::wire::{PROTOCOL, SERVICE_TYPE, TXT_FINGERPRINT, TXT_PROTOCOL};
use callpop_hub::Fingerprint;

/// The TXT key carrying the hub's name (instance names are cut and escaped).
pub const TXT_NAME: &str = "name";

/// A running announcement; it is withdrawn when dropped.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// Announces a hub serving desks at `listen`. Nothing is announced for a loopback listener
/// (no other machine could reach it) or when the system refuses multicast; the reason is
/// logged and the hub goes on without it.
pub fn announce(name: &str, listen: SocketAddr, fingerprint: Fingerprint) -> Option<Announcement> {
    if listen.ip().is_loopback() {
        return None;
    }
    let daemon = match ServiceDaemon::new() {
        Ok(daemon) => daemon,
        Err(e) => {
            tracing::warn!(error = %e, "cannot announce the hub on the LAN (mDNS); desks can still type its address");
            return None;
        }
    };
    let fp = fingerprint.to_string();
    let host = format!("callpop-hub-{}.local.", &fp[..12]);
    let protocol = PROTOCOL.to_string();
    // A DNS label is at most 63 bytes (escapes included): cut on a character boundary.
    let instance = cut_to_bytes(name, 48);
    let shown_name = cut_to_bytes(name, 120);
    let properties = [
        (TXT_FINGERPRINT, fp.as_str()),
        (TXT_PROTOCOL, protocol.as_str()),
        (TXT_NAME, shown_name.as_str()),
    ];
    let info = if listen.ip().is_unspecified() {
        ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &host,
            (),
            listen.port(),
            &properties[..],
        )
        .map(ServiceInfo::enable_addr_auto)
    } else {
        ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &host,
            listen.ip(),
            listen.port(),
            &properties[..],
        )
    };
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "cannot describe the hub for mDNS");
            let _ = daemon.shutdown();
            return None;
        }
    };
    let fullname = info.get_fullname().to_string();
    if let Err(e) = daemon.register(info) {
        tracing::warn!(error = %e, "cannot announce the hub on the LAN (mDNS)");
        let _ = daemon.shutdown();
        return None;
    }
    tracing::info!(%fullname, "announced on the LAN (mDNS)");
    Some(Announcement { daemon, fullname })
}

/// The longest start of `text` that fits in `max` bytes.
fn cut_to_bytes(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}
