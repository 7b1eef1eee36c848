//! The public URL: an ngrok tunnel opened from inside CallPop (the `ngrok` crate, no agent to
//! install), a URL the dealership provides (its own reverse proxy), or off.
//!
//! The tunnel part is one engine task with a state machine whose every state carries a reason:
//! off, connecting, online(url), reconnecting, error(auth rejected | endpoint already online
//! elsewhere | offline | …). Connecting is bounded (5 s) so an offline machine learns it at once;
//! retries back off in the background without touching the local receiver. Tunnel connections
//! are served straight from the ngrok listener by the same hyper loop as the local listener
//! (docs/PROTOCOL.md §7: ngrok-rust #159), and every public URL change is published so the
//! subscription keeper can re-point RingCentral.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use ngrok::prelude::*;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backfill::BackfillRequest;
use crate::health::{Health, Part, PartState};
use callpop_clock::Clock;
use callpop_core::Secret;

/// How long connecting to ngrok may take before the tunnel is declared offline (the promise
/// to users is "under 5 seconds").
pub const CONNECT_BOUND: StdDuration = StdDuration::from_secs(4);

/// Failed reconnect attempts ngrok-rust may make on its own before the session is ended.
/// Its backoff (`accept_incoming` in ngrok 0.19's `session.rs`: tokio-retry's
/// `ExponentialBackoff::from_millis(50)` without a cap) waits 50 ms, 2.5 s, 125 s, then 104
/// minutes: a three-minute internet outage left the tunnel dead for almost two hours while it
/// looked connected. Ending the session hands reconnecting to [`Runner::run_ngrok`], whose
/// backoff stops at two minutes and which marks the URL down (and backfills the gap).
const RECONNECT_ATTEMPTS: u32 = 3;

/// Counts ngrok-rust's failed reconnect attempts in a row, to end the session in time.
#[derive(Debug, Default)]
struct ReconnectBudget {
    failed: AtomicU32,
}

impl ReconnectBudget {
    /// Records one connect attempt; false: stop ngrok-rust from trying again. The first
    /// connect (not a reconnect) is never counted: its failure is reported by `connect()`.
    fn keep_trying(&self, reconnecting: bool, connected: bool) -> bool {
        if connected {
            self.failed.store(0, Ordering::Relaxed);
            return true;
        }
        !reconnecting || self.failed.fetch_add(1, Ordering::Relaxed) + 1 < RECONNECT_ATTEMPTS
    }
}

/// Where the public URL comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TunnelMode {
    /// No public URL: webhooks only reach the local address.
    Off,
    /// An ngrok tunnel.
    Ngrok(NgrokSettings),
    /// The dealership's own public URL (a reverse proxy in front of CallPop).
    Provided(String),
    /// A tunnel on loopback that hands out a new URL now and then (test builds only:
    /// `test-hooks`).
    #[cfg(any(test, feature = "test-hooks"))]
    Loopback {
        /// Simulated time between URL changes.
        rotate_every: Option<chrono::Duration>,
    },
}

/// ngrok settings.
#[derive(Clone, PartialEq)]
pub struct NgrokSettings {
    /// The ngrok authtoken.
    pub authtoken: Secret,
    /// A reserved or dev domain, so the URL survives restarts.
    pub domain: Option<String>,
    /// ngrok's server address (tests point it at an unreachable one).
    pub server_addr: Option<String>,
}

impl std::fmt::Debug for NgrokSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgrokSettings")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// What went wrong with the tunnel, as people need to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelProblem {
    /// ngrok refused the authtoken.
    AuthRejected(String),
    /// Another agent already serves this domain (ERR_NGROK_334).
    AlreadyOnline(String),
    /// The domain is not this account's.
    DomainNotAllowed(String),
    /// ngrok cannot be reached (no network, DNS, firewall, timeout).
    Offline(String),
    /// Anything else.
    Other(String),
}

impl TunnelProblem {
    /// One sentence with what to do about it.
    pub fn explain(&self) -> String {
        match self {
            TunnelProblem::AuthRejected(m) => {
                format!("auth rejected: ngrok refused the authtoken — paste a valid one in Settings ({m})")
            }
            TunnelProblem::AlreadyOnline(m) => format!(
                "endpoint already online elsewhere: another CallPop or ngrok agent uses this domain — stop it or choose another domain ({m})"
            ),
            TunnelProblem::DomainNotAllowed(m) => format!(
                "the domain is not reserved on this ngrok account — reserve it or leave the domain empty ({m})"
            ),
            TunnelProblem::Offline(m) => {
                format!("offline: cannot reach ngrok — check the internet connection; retrying ({m})")
            }
            TunnelProblem::Other(m) => format!("tunnel error: {m}"),
        }
    }

    fn retry_after(&self, attempt: u32) -> StdDuration {
        match self {
            // These do not fix themselves quickly; do not hammer ngrok.
            TunnelProblem::AuthRejected(_) | TunnelProblem::DomainNotAllowed(_) => {
                StdDuration::from_secs(600)
            }
            TunnelProblem::AlreadyOnline(_) => StdDuration::from_secs(60),
            _ => StdDuration::from_secs(2u64.pow(attempt.min(6)).min(120)),
        }
    }
}

fn classify_code(code: Option<&str>, message: String) -> TunnelProblem {
    match code {
        Some("ERR_NGROK_105" | "ERR_NGROK_106" | "ERR_NGROK_107" | "ERR_NGROK_108") => {
            TunnelProblem::AuthRejected(message)
        }
        Some("ERR_NGROK_334") => TunnelProblem::AlreadyOnline(message),
        Some("ERR_NGROK_313" | "ERR_NGROK_316" | "ERR_NGROK_319") => {
            TunnelProblem::DomainNotAllowed(message)
        }
        _ => TunnelProblem::Other(message),
    }
}

fn connect_problem(e: &ngrok::session::ConnectError) -> TunnelProblem {
    use ngrok::session::ConnectError as C;
    let detail = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    match e {
        C::Tcp(_) | C::Tls(_) | C::ProxyConnect(_) | C::Canceled => {
            TunnelProblem::Offline(format!("{e}: {detail}"))
        }
        C::Auth(rpc) | C::Rebind(rpc) => classify_code(rpc.error_code(), rpc.msg()),
        other => TunnelProblem::Other(format!("{other}: {detail}")),
    }
}

/// Requests to the running tunnel.
#[derive(Debug)]
pub enum TunnelControl {
    /// Drop the tunnel and connect again now (the health view's "Reconnect").
    Reconnect,
    /// Switch to another mode (settings changed).
    Mode(TunnelMode),
}

/// Handle to the running tunnel part.
#[derive(Clone)]
pub struct TunnelHandle {
    tx: mpsc::Sender<TunnelControl>,
    url: watch::Receiver<Option<String>>,
}

impl TunnelHandle {
    /// Reconnects now.
    pub async fn reconnect(&self) -> bool {
        self.tx.send(TunnelControl::Reconnect).await.is_ok()
    }

    /// Changes the mode.
    pub async fn set_mode(&self, mode: TunnelMode) -> bool {
        self.tx.send(TunnelControl::Mode(mode)).await.is_ok()
    }

    /// The public URL now (None while off, connecting or failing).
    pub fn public_url(&self) -> Option<String> {
        self.url.borrow().clone()
    }

    /// Follows public URL changes.
    pub fn watch_url(&self) -> watch::Receiver<Option<String>> {
        self.url.clone()
    }
}

/// Serves connections from an ngrok tunnel with the same loop as the local listener.
struct NgrokAccept(ngrok::tunnel::HttpTunnel);

impl crate::server::Accept for NgrokAccept {
    type Io = ngrok::conn::EndpointConn;
    async fn accept(&mut self) -> std::io::Result<Option<(Self::Io, SocketAddr)>> {
        match self.0.try_next().await {
            Ok(Some(conn)) => {
                let peer = conn.remote_addr();
                Ok(Some((conn, peer)))
            }
            // The session is gone: the caller reconnects.
            Ok(None) => Ok(None),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// The tunnel part of the engine.
pub struct TunnelPart {
    /// Starting mode.
    pub mode: TunnelMode,
    /// What tunnel connections are served with.
    pub router: Router,
    /// Health board.
    pub health: Arc<Health>,
    /// The clock.
    pub clock: Clock,
    /// Where gaps are reported (webhooks could not arrive while the URL was down).
    pub backfill: Option<mpsc::Sender<BackfillRequest>>,
}

struct Runner {
    router: Router,
    health: Arc<Health>,
    clock: Clock,
    backfill: Option<mpsc::Sender<BackfillRequest>>,
    url: watch::Sender<Option<String>>,
    control: mpsc::Receiver<TunnelControl>,
    shutdown: CancellationToken,
    /// When the public URL stopped working, for the backfill once it is back.
    down_since: Option<DateTime<Utc>>,
}

/// What ended a serving or waiting period.
enum Next {
    Shutdown,
    Reconnect,
    Mode(TunnelMode),
    Continue,
}

impl TunnelPart {
    /// Starts the tunnel task.
    pub fn start(self, shutdown: CancellationToken) -> (TunnelHandle, tokio::task::JoinHandle<()>) {
        let (tx, control) = mpsc::channel(8);
        let (url_tx, url_rx) = watch::channel(None);
        let mut runner = Runner {
            router: self.router,
            health: self.health,
            clock: self.clock,
            backfill: self.backfill,
            url: url_tx,
            control,
            shutdown,
            down_since: None,
        };
        let mut mode = self.mode;
        let task = tokio::spawn(async move {
            loop {
                let next = match mode.clone() {
                    TunnelMode::Off => runner.run_off().await,
                    TunnelMode::Provided(url) => runner.run_provided(url).await,
                    TunnelMode::Ngrok(settings) => runner.run_ngrok(&settings).await,
                    #[cfg(any(test, feature = "test-hooks"))]
                    TunnelMode::Loopback { rotate_every } => {
                        runner.run_loopback(rotate_every).await
                    }
                };
                match next {
                    Next::Shutdown => break,
                    Next::Mode(m) => mode = m,
                    Next::Reconnect | Next::Continue => {}
                }
            }
            runner.publish(None);
        });
        (TunnelHandle { tx, url: url_rx }, task)
    }
}

impl Runner {
    fn publish(&mut self, url: Option<String>) {
        let changed = *self.url.borrow() != url;
        if !changed {
            return;
        }
        match &url {
            None => {
                self.down_since.get_or_insert(self.clock.now());
            }
            Some(u) => {
                tracing::info!(url = %u, "public URL");
                if let Some(since) = self.down_since.take() {
                    self.request_backfill(since, "the public URL was down");
                }
            }
        }
        self.health.set_public_url(url.clone());
        let _ = self.url.send(url);
    }

    /// Asks for the calls RingCentral could not deliver since `since` (it does not retry).
    fn request_backfill(&self, since: DateTime<Utc>, reason: &str) {
        if let Some(tx) = &self.backfill {
            let _ = tx.try_send(BackfillRequest {
                since,
                reason: reason.into(),
                reply: None,
            });
        }
    }

    fn set(&self, state: PartState, detail: impl Into<String>) {
        self.health.set_part(Part::Tunnel, state, detail);
    }

    /// Waits for a control message, shutdown, or (with `for_at_most`) a timeout.
    async fn wait(&mut self, for_at_most: Option<StdDuration>) -> Next {
        let sleep = async {
            match for_at_most {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => Next::Shutdown,
            cmd = self.control.recv() => match cmd {
                Some(TunnelControl::Reconnect) => Next::Reconnect,
                Some(TunnelControl::Mode(m)) => Next::Mode(m),
                None => Next::Shutdown,
            },
            _ = sleep => Next::Continue,
        }
    }

    async fn run_off(&mut self) -> Next {
        self.publish(None);
        self.down_since = None;
        self.set(
            PartState::Off,
            "CallPop is not reachable from the internet yet: set up ngrok or a public URL.",
        );
        match self.wait(None).await {
            Next::Reconnect => Next::Continue,
            other => other,
        }
    }

    async fn run_provided(&mut self, url: String) -> Next {
        self.down_since = None;
        self.publish(Some(url.clone()));
        self.set(
            PartState::Online,
            format!("Reachable at your public URL {url}."),
        );
        match self.wait(None).await {
            Next::Reconnect => Next::Continue,
            other => other,
        }
    }

    async fn run_ngrok(&mut self, settings: &NgrokSettings) -> Next {
        let mut attempt = 0u32;
        loop {
            self.set(PartState::Connecting, "Connecting to ngrok…");
            let (reports_tx, mut reports) = mpsc::unbounded_channel::<String>();
            let opened =
                tokio::time::timeout(CONNECT_BOUND, open_ngrok(settings, reports_tx)).await;
            let problem = match opened {
                Ok(Ok((mut session, tunnel))) => {
                    attempt = 0;
                    let url = tunnel.url().to_string();
                    self.set(
                        PartState::Online,
                        format!("Reachable from the internet through ngrok at {url}."),
                    );
                    self.publish(Some(url.clone()));
                    let stop = self.shutdown.child_token();
                    let mut serving = tokio::spawn(crate::server::serve(
                        NgrokAccept(tunnel),
                        self.router.clone(),
                        stop.clone(),
                    ));
                    // ngrok-rust reconnects by itself and tells us only when an attempt starts;
                    // without a new attempt for a while, the session is back.
                    let mut last_report: Option<tokio::time::Instant> = None;
                    // Deliveries sent while ngrok reconnects are lost (RingCentral does not
                    // retry): the gap is backfilled once the session is back or has ended.
                    let mut reconnecting_since: Option<DateTime<Utc>> = None;
                    let mut served = false;
                    let next = loop {
                        tokio::select! {
                            _ = &mut serving => {
                                served = true;
                                break Next::Continue;
                            }
                            Some(reason) = reports.recv() => {
                                last_report = Some(tokio::time::Instant::now());
                                reconnecting_since.get_or_insert(self.clock.now());
                                self.set(PartState::Reconnecting, format!("The connection to ngrok dropped ({reason}); reconnecting…"));
                            }
                            next = self.wait(Some(StdDuration::from_secs(15))) => match next {
                                Next::Continue => {
                                    if last_report.is_some_and(|t| t.elapsed() > StdDuration::from_secs(30)) {
                                        last_report = None;
                                        self.set(PartState::Online, format!("Reachable from the internet through ngrok at {url}."));
                                        if let Some(since) = reconnecting_since.take() {
                                            self.request_backfill(since, "the tunnel reconnected");
                                        }
                                    }
                                }
                                other => break other,
                            },
                        }
                    };
                    stop.cancel();
                    if !served {
                        let _ = serving.await;
                    }
                    let _ = session.close().await;
                    if let Some(since) = reconnecting_since {
                        self.down_since.get_or_insert(since);
                    }
                    self.publish(None);
                    match next {
                        Next::Continue => TunnelProblem::Other("the tunnel closed".into()),
                        other => return other,
                    }
                }
                Ok(Err(problem)) => problem,
                Err(_) => TunnelProblem::Offline(format!(
                    "ngrok did not answer within {} s",
                    CONNECT_BOUND.as_secs()
                )),
            };
            self.publish(None);
            attempt += 1;
            let retry = problem.retry_after(attempt);
            let explanation = problem.explain();
            tracing::warn!(retry_in = ?retry, "{explanation}");
            self.set(PartState::Error, explanation);
            match self.wait(Some(retry)).await {
                Next::Continue | Next::Reconnect => continue,
                other => return other,
            }
        }
    }

    #[cfg(any(test, feature = "test-hooks"))]
    async fn run_loopback(&mut self, rotate_every: Option<chrono::Duration>) -> Next {
        // Like a tunnel that hands out a new address while the previous one keeps answering
        // until the next change: long enough for the subscription to move.
        let mut previous: Option<CancellationToken> = None;
        let mut current: Option<CancellationToken> = None;
        loop {
            let bound = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l.local_addr().map(|a| (l, format!("http://{a}"))),
                Err(e) => Err(e),
            };
            let (listener, url) = match bound {
                Ok(pair) => pair,
                Err(e) => {
                    self.set(PartState::Error, format!("loopback tunnel: {e}"));
                    return self.wait(None).await;
                }
            };
            let stop = self.shutdown.child_token();
            tokio::spawn(crate::server::serve(
                listener,
                self.router.clone(),
                stop.clone(),
            ));
            if let Some(old) = std::mem::replace(&mut previous, current.replace(stop)) {
                old.cancel();
            }
            self.set(
                PartState::Online,
                format!("Reachable from the internet through ngrok at {url}."),
            );
            self.publish(Some(url));
            let wait = rotate_every.map(|d| self.clock.wall_duration(d));
            match self.wait(wait).await {
                Next::Continue | Next::Reconnect => continue,
                other => {
                    for token in [previous.take(), current.take()].into_iter().flatten() {
                        token.cancel();
                    }
                    return other;
                }
            }
        }
    }
}

/// Connects a session and opens the HTTP endpoint; reconnect attempts are reported.
async fn open_ngrok(
    settings: &NgrokSettings,
    reports: mpsc::UnboundedSender<String>,
) -> Result<(ngrok::Session, ngrok::tunnel::HttpTunnel), TunnelProblem> {
    callpop_ringcentral::install_crypto_provider();
    let mut builder = ngrok::Session::builder();
    builder.authtoken(settings.authtoken.expose());
    if let Some(addr) = &settings.server_addr {
        builder
            .server_addr(addr.clone())
            .map_err(|e| TunnelProblem::Other(e.to_string()))?;
    }
    let budget = Arc::new(ReconnectBudget::default());
    builder.connector(
        move |host: String, port: u16, tls, err: Option<ngrok::tunnel::AcceptError>| {
            let reports = reports.clone();
            let budget = budget.clone();
            async move {
                let reconnecting = err.is_some();
                if let Some(e) = &err {
                    let _ = reports.send(e.to_string());
                }
                // The default connector has no timeout: a black-holed network would hang forever.
                let connected = match tokio::time::timeout(
                    CONNECT_BOUND,
                    ngrok::session::default_connect(host, port, tls, err),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(ngrok::session::ConnectError::Tcp(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out connecting to ngrok",
                    ))),
                };
                if budget.keep_trying(reconnecting, connected.is_ok()) {
                    connected
                } else {
                    let _ = reports.send("ngrok cannot be reached; starting over".into());
                    Err(ngrok::session::ConnectError::Canceled)
                }
            }
        },
    );
    let session = builder.connect().await.map_err(|e| connect_problem(&e))?;
    let mut endpoint = session.http_endpoint();
    if let Some(domain) = settings.domain.as_deref().filter(|d| !d.trim().is_empty()) {
        endpoint.domain(domain.trim());
    }
    let tunnel = endpoint
        .listen()
        .await
        .map_err(|e| classify_code(e.error_code(), e.msg()))?;
    Ok((session, tunnel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngrok_gives_up_reconnecting_after_a_few_failures_in_a_row() {
        let budget = ReconnectBudget::default();
        // A first connect that fails is reported by connect(), not cut short here.
        for _ in 0..5 {
            assert!(budget.keep_trying(false, false));
        }
        assert!(budget.keep_trying(true, false));
        assert!(budget.keep_trying(true, false));
        // A reconnect that works starts the count again.
        assert!(budget.keep_trying(true, true));
        assert!(budget.keep_trying(true, false));
        assert!(budget.keep_trying(true, false));
        assert!(
            !budget.keep_trying(true, false),
            "the third failure in a row ends it"
        );
    }

    #[test]
    fn ngrok_error_codes_become_actionable_problems() {
        assert!(matches!(
            classify_code(Some("ERR_NGROK_105"), "bad token".into()),
            TunnelProblem::AuthRejected(_)
        ));
        let p = classify_code(Some("ERR_NGROK_334"), "online".into());
        assert!(p.explain().starts_with("endpoint already online elsewhere"));
        assert!(matches!(
            classify_code(None, "?".into()),
            TunnelProblem::Other(_)
        ));
        assert_eq!(
            TunnelProblem::AuthRejected(String::new()).retry_after(1),
            StdDuration::from_secs(600)
        );
        assert_eq!(
            TunnelProblem::Offline(String::new()).retry_after(3),
            StdDuration::from_secs(8)
        );
    }
}
