//! Serving the router on a listener with hyper directly, so the same loop serves the local
//! TCP listener and (later) the tunnel's listener, with header timeouts against slow clients,
//! the peer address on every request, and a graceful shutdown that finishes in-flight requests.
//!
//! Only HTTP/1.1 is spoken: webhook senders and the ngrok tunnel use it. hyper-util's
//! HTTP/1-or-2 detection reads the first bytes before the header timeout starts, so a client
//! that connected and said nothing (or half of the HTTP/2 preface) held its connection forever.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::receiver::PeerAddr;

/// How long a client may take to send its request headers (counted from the connection, or
/// from the previous reply on a kept-alive one, so an idle connection is closed as well).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
/// finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve<L: Accept>(mut listener: L, router: Router, shutdown: CancellationToken) {
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
