//! Serving the router on a listener with hyper directly, so the same loop serves the local
//! TCP listener and (later) the tunnel's listener, with header timeouts against slow clients,
//! the peer address on every request, and a graceful shutdown that finishes in-flight requests.
//!
//! Only HTTP/1.1 is spoken: webhook senders and the ngrok tunnel use it. hyper-util's
//! HTTP/1-or-2 detection reads the first bytes before the header timeout starts, so a client
//! that connected and said nothing (or half of the HTTP/2 preface) held its connection forever.

use std::net::SocketAddr;
use std::sync::Arc;
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
/// use a handful. Past it, a new connection gets 503 at once (senders retry). It is still
/// accepted: leaving it unaccepted would stall the ngrok session, whose one reader hands new
/// streams over and would stop reading the streams already being served.
pub const MAX_CONNECTIONS: usize = 256;
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

/// Connections turned away at the limit since they were last logged.
#[derive(Default)]
struct Refused {
    count: u64,
    logged_at: Option<Instant>,
}

impl Refused {
    /// Counts one; logs at the first and then at most every [`REFUSED_LOG_INTERVAL`], so a
    /// flood does not flood the log as well.
    fn note(&mut self, limit: usize) {
        self.count += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= REFUSED_LOG_INTERVAL)
        {
            self.flush(limit);
            self.logged_at = Some(Instant::now());
        }
    }

    fn flush(&mut self, limit: usize) {
        if self.count > 0 {
            tracing::warn!(
                refused = self.count,
                "{limit} connections were open at once; turned new ones away with 503"
            );
            self.count = 0;
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
/// finish (up to [`SHUTDOWN_GRACE`]). At most [`MAX_CONNECTIONS`] are served at once; more
/// get 503 (as many again at a time; past that they are closed unanswered).
pub async fn serve<L: Accept>(listener: L, router: Router, shutdown: CancellationToken) {
    serve_at_most(listener, router, shutdown, MAX_CONNECTIONS).await;
}

async fn serve_at_most<L: Accept>(
    mut listener: L,
    router: Router,
    shutdown: CancellationToken,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    // Turning a connection away holds its socket for up to two seconds; a flood must not
    // turn that into an unbounded number of open sockets. Past this many, it is just closed.
    let farewells = Arc::new(Semaphore::new(max_connections));
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.note(max_connections);
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
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    refused.flush(max_connections);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections finished"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}; closing them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    const REQUEST: &[u8] = b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n";

    /// A server answering `/ping` with at most `limit` connections served at once.
    async fn server_of(limit: usize) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_at_most(listener, router, shutdown.clone(), limit));
        (addr, shutdown, server)
    }

    /// Sends one request on a new connection; the connection and the start of its reply
    /// (empty when it was closed unanswered).
    async fn ask(addr: SocketAddr) -> (TcpStream, String) {
        let mut c = TcpStream::connect(addr).await.expect("connect");
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
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, reply) = ask(addr).await;
            if reply.starts_with(wanted) || Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
}
