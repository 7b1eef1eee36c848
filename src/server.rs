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
/// use a handful. Past it, new connections wait in the listener's queue.
pub const MAX_CONNECTIONS: usize = 256;

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

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish (up to [`SHUTDOWN_GRACE`]). At most [`MAX_CONNECTIONS`] are served at once.
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
    let mut full_since: Option<Instant> = None;
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        if slots.available_permits() == 0 && full_since.is_none() {
            tracing::warn!(
                "{max_connections} connections open at once; new ones wait until one closes"
            );
            full_since = Some(Instant::now());
        }
        let slot = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        if let Some(since) = full_since.take() {
            tracing::info!(waited = ?since.elapsed(), "connections are accepted again");
        }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const REQUEST: &[u8] = b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n";

    async fn first_bytes(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 64];
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn past_the_limit_a_connection_waits_until_another_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_at_most(listener, router, shutdown.clone(), 2));

        // Two kept-alive connections take both slots.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(REQUEST).await.expect("write");
            let reply = first_bytes(&mut c, Duration::from_secs(10)).await;
            assert!(reply.is_some_and(|r| r.starts_with(b"HTTP/1.1 200")));
            held.push(c);
        }
        // A third is queued by the kernel, not served.
        let mut third = TcpStream::connect(addr).await.expect("connect");
        third.write_all(REQUEST).await.expect("write");
        assert_eq!(
            first_bytes(&mut third, Duration::from_millis(300)).await,
            None,
            "served past the limit"
        );
        // Closing one frees its slot for the waiting connection.
        drop(held.remove(0));
        let reply = first_bytes(&mut third, Duration::from_secs(10)).await;
        assert!(
            reply.is_some_and(|r| r.starts_with(b"HTTP/1.1 200")),
            "the waiting connection was served once a slot was free"
        );
        shutdown.cancel();
        drop((held, third));
        server.await.expect("server task");
    }
}
