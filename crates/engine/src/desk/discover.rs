//! Finding hubs on the LAN over mDNS/DNS-SD: for "Join a hub" (`callpop desk discover`), and
//! for a desk whose hub moved to another address (found again by its pinned key).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};
use serde::Serialize;

use callpop_hub::wire::{SERVICE_TYPE, TXT_FINGERPRINT, TXT_PROTOCOL};
use callpop_hub::Fingerprint;

use crate::hub::announce::TXT_NAME;

/// A hub that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundHub {
    /// Its name.
    pub name: String,
    /// Where it serves desks (IPv4 first).
    pub addresses: Vec<SocketAddr>,
    /// Its key's fingerprint (hex).
    pub fingerprint: String,
    /// The first 64 bits of it, as people compare them.
    pub fingerprint_short: String,
    /// The protocol version it speaks.
    pub protocol: Option<u32>,
}

/// Why nobody could be asked.
#[derive(Debug, thiserror::Error)]
#[error("cannot look for hubs on the LAN (mDNS): {0}")]
pub struct DiscoverError(String);

/// Looks for hubs for `wait` (blocking; run it off the async threads). Answers are merged by
/// key: one hub on two interfaces is one hub.
pub fn discover(wait: Duration) -> Result<Vec<FoundHub>, DiscoverError> {
    discover_until(wait, |_| false)
}

/// Looks for the hub holding `fingerprint`, up to `wait`; its addresses when found.
pub fn find(fingerprint: Fingerprint, wait: Duration) -> Result<Option<FoundHub>, DiscoverError> {
    let wanted = fingerprint.to_string();
    Ok(discover_until(wait, |hub| hub.fingerprint == wanted)?
        .into_iter()
        .find(|hub| hub.fingerprint == wanted))
}

fn discover_until(
    wait: Duration,
    enough: impl Fn(&FoundHub) -> bool,
) -> Result<Vec<FoundHub>, DiscoverError> {
    let daemon = Daemon(ServiceDaemon::new().map_err(|e| DiscoverError(e.to_string()))?);
    let events = daemon
        .0
        .browse(SERVICE_TYPE)
        .map_err(|e| DiscoverError(e.to_string()))?;
    let deadline = Instant::now() + wait;
    let mut found: BTreeMap<String, FoundHub> = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        let Some(fp) = service
            .get_property_val_str(TXT_FINGERPRINT)
            .and_then(Fingerprint::parse)
        else {
            continue;
        };
        let port = service.get_port();
        let mut addresses: Vec<SocketAddr> = service
            .get_addresses()
            .iter()
            .map(|a| SocketAddr::new(a.to_ip_addr(), port))
            // A link-local IPv6 address needs its interface to be used: not one to join.
            .filter(|a| match a.ip() {
                std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                std::net::IpAddr::V4(_) => true,
            })
            .collect();
        addresses.sort_by_key(|a| (a.is_ipv6(), *a));
        let name = service
            .get_property_val_str(TXT_NAME)
            .map(|n| callpop_core::text::sanitize(n, 60))
            .unwrap_or_else(|| "CallPop hub".into());
        let hub = found.entry(fp.to_string()).or_insert_with(|| FoundHub {
            name,
            addresses: Vec::new(),
            fingerprint: fp.to_string(),
            fingerprint_short: fp.short(),
            protocol: service
                .get_property_val_str(TXT_PROTOCOL)
                .and_then(|p| p.parse().ok()),
        });
        for a in addresses {
            if !hub.addresses.contains(&a) {
                hub.addresses.push(a);
            }
        }
        // One answer may carry one address: wait for an IPv4 one before stopping early.
        if enough(hub) && hub.addresses.iter().any(SocketAddr::is_ipv4) {
            break;
        }
    }
    let _ = daemon.0.stop_browse(SERVICE_TYPE);
    Ok(found
        .into_values()
        .filter(|h| !h.addresses.is_empty())
        .collect())
}

/// The mDNS daemon, shut down however the search ends (its thread and sockets otherwise stay).
struct Daemon(ServiceDaemon);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}
