//! Who holds the port CallPop could not listen on, and how to say so.
//!
//! "Address in use (os error 98)" read as a storage error to the people it was shown to. The
//! port is usually held by another CallPop (a second desk app on another data folder, a
//! forgotten `callpop serve`), which answers `/healthz` with its health board; anything else is
//! another program.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the holder gets to answer.
const ASK_WITHIN: Duration = Duration::from_secs(2);

/// Largest answer read from the holder.
const MAX_ANSWER: u64 = 64 * 1024;

/// What listens on a port CallPop wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortHolder {
    /// Another CallPop: it answered `/healthz` with a health board.
    CallPop,
    /// Some other program (or one that did not answer).
    Other,
}

/// Asks whoever listens on `addr` for `/healthz` and judges the answer.
pub async fn port_holder(addr: SocketAddr) -> PortHolder {
    // An unspecified address (0.0.0.0) is reached through loopback.
    let target = if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    };
    match tokio::time::timeout(ASK_WITHIN, ask(target)).await {
        Ok(Some(answer)) if is_health_board(&answer) => PortHolder::CallPop,
        _ => PortHolder::Other,
    }
}

async fn ask(addr: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// A CallPop's `/healthz` body carries its status, version and parts.
fn is_health_board(answer: &str) -> bool {
    let Some((_, body)) = answer.split_once("\r\n\r\n") else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
        v.get("status").is_some() && v.get("version").is_some() && v.get("parts").is_some()
    })
}

/// One sentence for people: who holds the port and what to do.
pub fn port_taken_text(addr: SocketAddr, holder: PortHolder) -> String {
    let port = addr.port();
    match holder {
        PortHolder::CallPop => format!(
            "Another CallPop is using port {port}, so this one cannot receive calls. Quit the \
             other one (or `callpop serve`), or give this one another port with --listen."
        ),
        PortHolder::Other => format!(
            "Another program is using port {port}, so CallPop cannot receive calls. Close it, \
             or give CallPop another port with --listen."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_callpop_on_the_port_is_told_from_another_program() {
        let health = crate::health::Health::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let board = axum::Router::new().route(
            "/healthz",
            axum::routing::get(move || {
                let health = health.clone();
                async move { axum::Json(health.snapshot()) }
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, board).await });
        assert_eq!(port_holder(addr).await, PortHolder::CallPop);
        server.abort();

        // A program that answers something else, and one that never answers.
        let other = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let other_addr = other.local_addr().expect("addr");
        let web = axum::Router::new().route("/healthz", axum::routing::get(|| async { "OK" }));
        let server = tokio::spawn(async move { axum::serve(other, web).await });
        assert_eq!(port_holder(other_addr).await, PortHolder::Other);
        server.abort();
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let started = std::time::Instant::now();
        assert_eq!(
            port_holder(silent.local_addr().expect("addr")).await,
            PortHolder::Other
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        assert!(port_taken_text(addr, PortHolder::CallPop)
            .starts_with(&format!("Another CallPop is using port {}", addr.port())));
    }
}
