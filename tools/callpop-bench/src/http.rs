//! A minimal HTTP/1.1 keep-alive client: the load generator must cost as little CPU as
//! possible, because it shares two cores with the server it measures.

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    addr: std::net::SocketAddr,
    source: std::net::SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

/// Loopback addresses the load comes from, in turn. The server serves at most a quarter of
/// its connection slots for one client address (a flood from one source must not take them
/// all); the load plays many senders, so its connections never meet that share.
const SOURCES: usize = 16;

impl Conn {
    /// A connection to `127.0.0.1:port` (opened on first use, reopened when closed), from the
    /// next of [`SOURCES`] loopback addresses.
    pub fn new(port: u16) -> Conn {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SOURCES;
        Conn {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            source: std::net::SocketAddr::from(([127, 0, 0, 1 + n as u8], 0)),
            stream: None,
        }
    }

    async fn stream(&mut self) -> Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(self.source)?;
            let s = socket.connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::new(s));
        }
        self.stream.as_mut().context("connection")
    }

    /// Sends a POST and returns the status and the response headers' `validation-token`.
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Option<String>)> {
        let bytes = request(path, headers, body);
        self.send(&bytes).await
    }

    /// Sends a request built by [`request`] and returns what [`Conn::post`] returns.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(u16, Option<String>)> {
        match self.exchange(bytes).await {
            Ok(r) => Ok(r),
            Err(_) => {
                // The server may close an idle keep-alive connection: retry once on a fresh one.
                self.stream = None;
                self.exchange(bytes).await
            }
        }
    }

    async fn exchange(&mut self, bytes: &[u8]) -> Result<(u16, Option<String>)> {
        let stream = self.stream().await?;
        stream.get_mut().write_all(bytes).await?;
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let mut length = 0usize;
        let mut token = None;
        let mut close = false;
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                match k.as_str() {
                    "content-length" => length = v.parse().unwrap_or(0),
                    "validation-token" => token = Some(v.to_string()),
                    "connection" if v.eq_ignore_ascii_case("close") => close = true,
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        if close {
            self.stream = None;
        }
        Ok((status, token))
    }
}

/// The bytes of a POST to the server on loopback, ready to send on any connection to it.
pub fn request(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(k);
        request.push_str(": ");
        request.push_str(v);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
