//! Serving the router on a listener with hyper directly, so the same loop serves the local
//! TCP listener and (later) the tunnel's listener, with header timeouts against slow clients,
//! the peer address on every request, and a graceful shutdown that finishes in-flight requests.
//!
//! Only HTTP/1.1 is spoken: webhook senders and the ngrok tunnel use it. hyper-util's
//! HTTP/1-or-2 detection reads the first bytes before the header timeout starts, so a client
//! that connected and said nothing (or half of the HTTP/2 preface) held its connection forever.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::receiver::PeerAddr;

/// How long a client may take to send its request headers (counted from the connection, or
/// from the previous reply on a kept-alive one, so an idle connection is closed as well).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections served at once on one listener. Each may buffer a body of up to
/// `max_body_bytes`, so this bounds what a flood can make CallPop hold; the phone systems
/// use a handful. Past it, a new connection gets 503 at once. It is still accepted: leaving it
/// unaccepted would stall the ngrok session, whose one reader hands new streams over and would
/// stop reading the streams already being served.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections served at once for one client address (through the tunnel, the address ngrok
/// reports), so that no single source can take every slot while the phone system's deliveries
/// wait: RingCentral does not redeliver a failed delivery (docs/PROTOCOL.md §1.4). A quarter
/// of the slots is still far more than a phone system or a dealership's proxy uses.
pub const MAX_CONNECTIONS_PER_PEER: usize = MAX_CONNECTIONS / 4;
/// How often, at most, connections turned away at the limit are logged.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// What a connection over the limit is told before it is closed.
const BUSY_REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
    retry-after: 5\r\nconnection: close\r\n\r\n";

/// A source of incoming connections (TCP listener, tunnel listener, …).
pub trait Accept: Send {
    /// The connection type.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Waits for the next connection and the peer's address; `Ok(None)` when the listener is
    /// gone for good (a tunnel that closed), errors are passing failures.
    fn accept(
        &mut self,
    ) -> impl std::future::Future<Output = std::io::Result<Option<(Self::Io, SocketAddr)>>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<Option<(Self::Io, SocketAddr)>> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Webhook replies are small; do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        Ok(Some((stream, peer)))
    }
}

/// Connections turned away since they were last logged.
#[derive(Default)]
struct Refused {
    /// Because every slot was taken.
    full: u64,
    /// Because their address had its share of slots.
    per_peer: u64,
    logged_at: Option<Instant>,
}

impl Refused {
    /// Counts one; logs at the first and then at most every [`REFUSED_LOG_INTERVAL`], so a
    /// flood does not flood the log as well.
    fn note(&mut self, limits: Limits, over_peer_share: bool) {
        if over_peer_share {
            self.per_peer += 1;
        } else {
            self.full += 1;
        }
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= REFUSED_LOG_INTERVAL)
        {
            self.flush(limits);
            self.logged_at = Some(Instant::now());
        }
    }

    fn flush(&mut self, limits: Limits) {
        if self.full > 0 {
            tracing::warn!(
                refused = self.full,
                "{} connections were open at once; turned new ones away with 503",
                limits.total
            );
        }
        if self.per_peer > 0 {
            tracing::warn!(
                target: "callpop::security",
                refused = self.per_peer,
                "a client address already had {} connections open; turned its new ones away with 503",
                limits.per_peer
            );
        }
        self.full = 0;
        self.per_peer = 0;
    }
}

/// How many connections are served at once: in all, and per client address.
#[derive(Debug, Clone, Copy)]
struct Limits {
    total: usize,
    per_peer: usize,
}

/// Open connections per client address.
#[derive(Default)]
struct PeerShares(Mutex<HashMap<IpAddr, usize>>);

/// The address a connection is counted against: an IPv4 address, or an IPv6 client's /64
/// (one ordinary IPv6 connection has a whole /64 to pick source addresses from, so counting
/// single addresses would stop nobody). An IPv4 client of a dual-stack socket arrives as
/// `::ffff:a.b.c.d` and counts as that IPv4 address.
pub(crate) fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// One connection counted against its address until dropped.
struct PeerShare {
    shares: Arc<PeerShares>,
    ip: IpAddr,
}

impl PeerShares {
    /// Counts a connection from `peer`, unless its address already has `cap` open.
    fn admit(self: &Arc<Self>, peer: SocketAddr, cap: usize) -> Option<PeerShare> {
        let ip = client_of(peer.ip());
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(PeerShare {
            shares: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerShare {
    fn drop(&mut self) {
        let mut open = self.shares.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over the limit with 503 and closes it. Its request is read only to be
/// thrown away, until the peer closes: closing with unread bytes would send a reset, which
/// can destroy the reply before the peer reads it.
async fn turn_away<Io: AsyncRead + AsyncWrite + Unpin>(mut io: Io) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let reply = async {
        io.write_all(BUSY_REPLY).await?;
        io.shutdown().await?;
        let mut scrap = [0u8; 4096];
        while io.read(&mut scrap).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    // A peer that neither reads nor closes cannot hold this task for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), reply).await;
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish (up to [`SHUTDOWN_GRACE`]). At most [`MAX_CONNECTIONS`] are served at once, and
/// [`MAX_CONNECTIONS_PER_PEER`] for one client address; more get 503 (as many again at a
/// time; past that they are closed unanswered).
pub async fn serve<L: Accept>(listener: L, router: Router, shutdown: CancellationToken) {
    let limits = Limits {
        total: MAX_CONNECTIONS,
        per_peer: MAX_CONNECTIONS_PER_PEER,
    };
    serve_at_most(listener, router, shutdown, limits, None).await;
}

/// Connections a hub's desk API serves at once: every desk holds a stream open, and a
/// dealership may have a few hundred desks.
pub const HUB_CONNECTIONS: usize = 1024;
/// Connections one address may hold on the desk API: a desk uses two (its stream and a
/// request), so a hostile host on the LAN cannot take the slots of the others.
pub const HUB_CONNECTIONS_PER_PEER: usize = 8;

/// Like [`serve`], over TLS (a hub's desk API): the handshake runs in the connection's own
/// task, within the header timeout, so a client that never finishes it holds only its slot.
pub async fn serve_tls<L: Accept>(
    listener: L,
    router: Router,
    shutdown: CancellationToken,
    tls: tokio_rustls::TlsAcceptor,
) {
    let limits = Limits {
        total: HUB_CONNECTIONS,
        per_peer: HUB_CONNECTIONS_PER_PEER,
    };
    serve_at_most(listener, router, shutdown, limits, Some(tls)).await;
}

async fn serve_at_most<L: Accept>(
    mut listener: L,
    router: Router,
    shutdown: CancellationToken,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(limits.total));
    let shares = Arc::new(PeerShares::default());
    // Turning a connection away holds its socket for up to two seconds; a flood must not
    // turn that into an unbounded number of open sockets. Past this many, it is just closed.
    let farewells = Arc::new(Semaphore::new(limits.total));
    let mut refused = Refused::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (io, peer) = match accepted {
            Ok(Some(pair)) => pair,
            Ok(None) => break,
            Err(e) => {
                // Out of file descriptors and similar: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let share = shares.admit(peer, limits.per_peer);
        let slot = share
            .as_ref()
            .and_then(|_| slots.clone().try_acquire_owned().ok());
        let (Some(share), Some(slot)) = (share, slot) else {
            refused.note(limits, slot_was_free(&slots));
            // A TLS client would read a plain-text 503 as a broken handshake: just close.
            if tls.is_some() {
                drop(io);
                continue;
            }
            if let Ok(farewell) = farewells.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    turn_away(io).await;
                    drop(farewell);
                });
            }
            continue;
        };
        let service = router
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            });
        let service = TowerToHyperService::new(service);
        let watcher = graceful.watcher();
        let (builder, tls) = (builder.clone(), tls.clone());
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(io), service))
                        .await
                }
                Some(tls) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(io)).await {
                        Ok(Ok(io)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(io), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not finished in time");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop((slot, share));
        });
    }
    drop(listener);
    refused.flush(limits);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections finished"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}; closing them");
        }
    }
}

/// Whether a turned-away connection found a free slot (so its address's share was the
/// reason).
fn slot_was_free(slots: &Semaphore) -> bool {
    slots.available_permits() > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    const REQUEST: &[u8] = b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n";

    /// A server answering `/ping` with at most `limit` connections served at once, any number
    /// from one address.
    async fn server_of(limit: usize) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
        server_with(Limits {
            total: limit,
            per_peer: limit,
        })
        .await
    }

    async fn server_with(limits: Limits) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_at_most(
            listener,
            router,
            shutdown.clone(),
            limits,
            None,
        ));
        (addr, shutdown, server)
    }

    /// Sends one request on a new connection; the connection and the start of its reply
    /// (empty when it was closed unanswered).
    async fn ask(addr: SocketAddr) -> (TcpStream, String) {
        ask_from([127, 0, 0, 1], addr).await
    }

    /// [`ask`] from another loopback address.
    async fn ask_from(source: [u8; 4], addr: SocketAddr) -> (TcpStream, String) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((source, 0)))
            .expect("bind the source address");
        let mut c = socket.connect(addr).await.expect("connect");
        c.write_all(REQUEST).await.expect("write");
        let mut buf = vec![0u8; 512];
        let n = match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        (c, String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Asks again (each time on a new connection) until the reply starts with `wanted`, for
    /// up to 10 s; the last reply.
    async fn ask_until(addr: SocketAddr, wanted: &str) -> String {
        ask_until_from([127, 0, 0, 1], addr, wanted).await
    }

    #[tokio::test]
    async fn past_the_limit_a_connection_gets_503_and_a_freed_slot_is_used_again() {
        let (addr, shutdown, server) = server_of(2).await;
        let (first, reply) = ask(addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let (second, reply) = ask(addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let (_, reply) = ask(addr).await;
        assert!(
            reply.starts_with("HTTP/1.1 503"),
            "a third is turned away: {reply}"
        );
        assert!(reply.contains("retry-after: 5"), "{reply}");

        drop(first);
        let reply = ask_until(addr, "HTTP/1.1 200").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "served again: {reply}");
        shutdown.cancel();
        drop(second);
        server.await.expect("server task");
    }

    #[tokio::test]
    async fn past_as_many_again_being_turned_away_a_connection_is_closed_unanswered() {
        let (addr, shutdown, server) = server_of(1).await;
        let (served, reply) = ask(addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // Kept open: its farewell waits for it to close.
        let (lingering, reply) = ask(addr).await;
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        let (_, reply) = ask(addr).await;
        assert_eq!(
            reply, "",
            "closed without a reply while one farewell is pending"
        );

        drop(lingering);
        let reply = ask_until(addr, "HTTP/1.1 503").await;
        assert!(reply.starts_with("HTTP/1.1 503"), "answered again: {reply}");
        shutdown.cancel();
        drop(served);
        server.await.expect("server task");
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_itself() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert_eq!(client_of(mapped), "10.0.0.7".parse::<IpAddr>().expect("ip"));
    }

    #[tokio::test]
    async fn one_address_gets_its_share_of_the_slots_and_others_are_still_served() {
        let (addr, shutdown, server) = server_with(Limits {
            total: 4,
            per_peer: 2,
        })
        .await;
        let flooder = [127, 0, 0, 2];
        let (a, reply) = ask_from(flooder, addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let (b, reply) = ask_from(flooder, addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let (_, reply) = ask_from(flooder, addr).await;
        assert!(
            reply.starts_with("HTTP/1.1 503"),
            "a third from one address is turned away: {reply}"
        );
        let (c, reply) = ask(addr).await;
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "another address is served: {reply}"
        );

        drop(a);
        let reply = ask_until_from(flooder, addr, "HTTP/1.1 200").await;
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "its share freed: {reply}"
        );
        shutdown.cancel();
        drop((b, c));
        server.await.expect("server task");
    }

    /// [`ask_until`] from another loopback address.
    async fn ask_until_from(source: [u8; 4], addr: SocketAddr, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, reply) = ask_from(source, addr).await;
            if reply.starts_with(wanted) || Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
