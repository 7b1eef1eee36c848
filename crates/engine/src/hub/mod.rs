//! Hub mode, the hub's side (docs/HUB.md): the desk API on its own TLS listener on the LAN
//! (never the webhook listener, never the tunnel), the hub's identity, and the background work
//! that keeps it honest: which feed position is durable, which desks are still paired, what
//! was seen of them, and how long tombstones are kept.

pub mod announce;
pub mod api;
pub mod cache;
pub mod codes;
pub mod directory;
pub mod feed;
pub mod pairing;
pub mod reader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use callpop_hub::{HubError, HubIdentity};
use callpop_store::writer::{CommittedChange, StoreWriter};
use callpop_store::StoreOptions;

use crate::config::Config;
use crate::health::{Health, Part, PartState};
use api::HubState;
use directory::Directory;
use reader::Readers;

/// How often the desks' tokens are read again (a revoke from the command line).
const DIRECTORY_REFRESH: Duration = Duration::from_secs(1);
/// How often what was seen of desks is written to the history.
const SEEN_FLUSH: Duration = Duration::from_secs(30);
/// How often the durable feed position is asked for without a nudge (a change written by
/// another process, such as a command-line replay).
const DURABLE_POLL: Duration = Duration::from_secs(2);
/// How often old tombstones are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Why the desk API could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubStartError {
    /// The identity could not be loaded or made.
    #[error(transparent)]
    Identity(#[from] HubError),
    /// The listener could not be opened.
    #[error("the hub cannot listen for desks on {addr}: {source}")]
    Listen {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running desk API.
pub struct HubServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state every route shares.
    pub state: Arc<HubState>,
}

/// What the desk API needs from the engine.
pub struct HubParts {
    /// The history's writer.
    pub writer: StoreWriter,
    /// Committed changes (a nudge for the durable position).
    pub changes: broadcast::Sender<CommittedChange>,
    /// The engine's health.
    pub health: Arc<Health>,
    /// Stops everything.
    pub shutdown: CancellationToken,
}

impl HubServer {
    /// Loads the identity, binds the listener and starts serving; the tasks to wait for at
    /// shutdown.
    pub fn start(
        config: &Config,
        parts: HubParts,
    ) -> Result<(HubServer, Vec<tokio::task::JoinHandle<()>>), HubStartError> {
        callpop_ringcentral::install_crypto_provider();
        let identity = HubIdentity::load_or_create(&config.data_dir)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = Arc::new(identity.server_config(provider)?);
        let listener = bind(config.hub.listen).map_err(|source| HubStartError::Listen {
            addr: config.hub.listen,
            source,
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| HubStartError::Listen {
                addr: config.hub.listen,
                source,
            })?;
        let (durable_tx, durable) = watch::channel(-1);
        let state = Arc::new(HubState {
            name: config.hub.name.clone(),
            listen: addr,
            fingerprint: identity.fingerprint(),
            writer: parts.writer.clone(),
            readers: Readers::new(config.db_path(), StoreOptions::new(config.default_country)),
            directory: Directory::new(),
            cache: Arc::new(cache::FeedCache::new()),
            pairings: Default::default(),
            durable,
            health: parts.health.clone(),
            shutdown: parts.shutdown.clone(),
        });
        let router = api::router(state.clone());
        let mut tasks = vec![tokio::spawn(crate::server::serve_tls(
            listener,
            router,
            parts.shutdown.clone(),
            tokio_rustls::TlsAcceptor::from(tls),
        ))];
        tasks.push(tokio::spawn(follow_durable(
            parts.writer.clone(),
            parts.changes.subscribe(),
            durable_tx,
            parts.shutdown.clone(),
        )));
        tasks.push(tokio::spawn(keep_directory(state.clone())));
        tasks.push(tokio::spawn(cache::fill(
            state.cache.clone(),
            state.readers.clone(),
            state.durable.clone(),
            parts.shutdown.clone(),
        )));
        tasks.push(tokio::spawn(prune_tombstones(
            parts.writer.clone(),
            parts.shutdown.clone(),
        )));
        parts.health.set_part(
            Part::Hub,
            PartState::Active,
            format!(
                "Serving desks on {addr} (identity {})",
                identity.fingerprint().short()
            ),
        );
        tracing::info!(%addr, fingerprint = %identity.fingerprint(), "serving desks");
        if let Some(announcement) =
            announce::announce(&config.hub.name, addr, identity.fingerprint())
        {
            // Withdrawn when the hub stops.
            let shutdown = parts.shutdown;
            tasks.push(tokio::spawn(async move {
                shutdown.cancelled().await;
                tokio::task::spawn_blocking(move || drop(announcement))
                    .await
                    .ok();
            }));
        }
        Ok((HubServer { addr, state }, tasks))
    }
}

/// A listener for the desk API. IPv6's "any" address also takes IPv4 where the system allows.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Keeps [`HubState::durable`] at the newest feed position on disk: asked again after every
/// committed change (many at once ask once) and every [`DURABLE_POLL`].
async fn follow_durable(
    writer: StoreWriter,
    mut changes: broadcast::Receiver<CommittedChange>,
    durable: watch::Sender<i64>,
    shutdown: CancellationToken,
) {
    loop {
        match writer.durable_feed_position().await {
            Ok(seq) => {
                durable.send_if_modified(|known| {
                    let moved = seq > *known;
                    *known = (*known).max(seq);
                    moved
                });
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the feed position yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = changes.recv() => {
                if matches!(received, Err(broadcast::error::RecvError::Closed)) {
                    return;
                }
                // Everything already waiting is covered by the one question.
                while changes.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(DURABLE_POLL) => {}
        }
    }
}

/// Reads the desks' tokens again every [`DIRECTORY_REFRESH`] and writes what was seen of them
/// every [`SEEN_FLUSH`].
async fn keep_directory(state: Arc<HubState>) {
    let mut flushed = tokio::time::Instant::now();
    loop {
        match state.readers.with(|s| s.hub_desk_tokens()).await {
            Ok(rows) => state.directory.load(rows),
            Err(e) => tracing::warn!(error = %e, "cannot read the hub's desks"),
        }
        report_desks(&state);
        let stopping = state.shutdown.is_cancelled();
        if stopping || flushed.elapsed() >= SEEN_FLUSH {
            let seen = state.directory.take_seen();
            if !seen.is_empty() {
                if let Err(e) = state.writer.hub_touch_desks(seen).await {
                    tracing::debug!(error = %e, "cannot record the desks' last contact");
                }
            }
            flushed = tokio::time::Instant::now();
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => {}
            _ = tokio::time::sleep(DIRECTORY_REFRESH) => {}
        }
    }
}

/// Tells health what the hub sees of its paired desks.
fn report_desks(state: &HubState) {
    let durable = *state.durable.borrow();
    let mut desks: Vec<crate::health::DeskView> = state
        .directory
        .live()
        .into_iter()
        .filter(|(name, _)| state.directory.is_paired(name))
        .map(|(name, d)| crate::health::DeskView {
            name,
            connected: d.streams > 0,
            address: d.address.map(|a| a.ip().to_canonical().to_string()),
            version: d.version,
            last_seen: d.last_seen,
            lag: d.cursor.map(|c| (durable - c).max(0)),
        })
        .collect();
    desks.sort_by(|a, b| a.name.cmp(&b.name));
    let connected = desks.iter().filter(|d| d.connected).count();
    state.health.set_desks(desks);
    state.health.set_part(
        Part::Hub,
        PartState::Active,
        format!(
            "Serving desks on {}, {connected} connected (hub identity {})",
            state.listen,
            state.fingerprint.short()
        ),
    );
}

/// Drops tombstones older than [`callpop_store::TOMBSTONE_DAYS`], daily.
async fn prune_tombstones(writer: StoreWriter, shutdown: CancellationToken) {
    loop {
        let before = chrono::Utc::now() - chrono::Duration::days(callpop_store::TOMBSTONE_DAYS);
        if let Err(e) = writer.prune_feed(before).await {
            tracing::debug!(error = %e, "cannot prune the change feed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// The addresses desks can reach a hub listening on `listen` at: the listen address itself,
/// or, for "every interface", each interface's address (private IPv4 first, loopback last).
pub fn desk_addresses(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let mut found: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| listen.is_ipv6() || ip.is_ipv4())
        .filter(|ip| match ip {
            // A link-local IPv6 address needs its interface named to be used; not for typing.
            std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
            std::net::IpAddr::V4(_) => true,
        })
        .collect();
    let rank = |ip: &std::net::IpAddr| match ip {
        _ if ip.is_loopback() => 3,
        std::net::IpAddr::V4(v4) if v4.is_private() => 0,
        std::net::IpAddr::V4(_) => 1,
        std::net::IpAddr::V6(_) => 2,
    };
    found.sort_by_key(rank);
    found.dedup();
    found
        .into_iter()
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .collect()
}
