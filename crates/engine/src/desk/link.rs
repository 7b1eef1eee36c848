//! A desk's link to its hub: catch up with the hub's change feed page by page, then follow its
//! live stream, applying each change to the local replica in the store writer (which broadcasts
//! it to popups and the window as if it had arrived here). Reconnects with exponential backoff
//! and jitter (at most [`MAX_BACKOFF`] apart); says in health what state the link is in and
//! whether the hub itself receives calls.
//!
//! Catching up after a disconnect never rings: those changes come as `HubCatchUp`, and one
//! summary notice counts the calls this desk missed meanwhile. The cursor is saved with the
//! rows it covers, so a restart neither skips nor repeats a change.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use callpop_core::model::{Call, Origin};
use callpop_core::Secret;
use callpop_hub::wire::{Change, HubStatus, Record};
use callpop_store::writer::StoreWriter;
use callpop_store::{CallChange, ReplicaBatch, ReplicaChange};

use super::client::{HubClient, LinkError};
use super::sse::SseReader;
use super::state::DeskState;
use crate::config::DeskConfig;
use crate::health::{Health, HubLinkView, Part, PartState};
use crate::popups::policy::{desired_phase, Phase};
use crate::popups::PopupHandle;

/// The first wait before connecting again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A stream silent this long is dead: the hub sends a comment every 15 s, so this allows one
/// late one and notices a pulled cable within half a minute.
const STREAM_IDLE: Duration = Duration::from_secs(25);
/// How long the hub's status may take while connected.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the hub's own status is asked while connected.
const STATUS_EVERY: Duration = Duration::from_secs(30);
/// Changes per page while catching up.
const PAGE: usize = 500;
/// How often a desk that cannot reach its hub looks for it on the LAN.
const REDISCOVER_EVERY: Duration = Duration::from_secs(60);
/// How often calls past the window are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// `engine_state`: the desk's resynchronization round.
const GENERATION: &str = "hub.generation";
/// `engine_state`: when the desk last heard from its hub (the start of a gap after a restart).
const LAST_CONTACT: &str = "hub.last_contact";
/// `engine_state`: a round of reading the window from the start is under way (set when it
/// starts, cleared when it is swept), so one cut short, by a restart even, is still swept.
const ROUND: &str = "hub.round";
/// `engine_state`: the window the replica was last read for (days, or `all`).
const WINDOW: &str = "hub.window";

/// What the link remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// The hub's feed position applied.
    pub cursor: i64,
    /// The resynchronization round.
    pub generation: i64,
    /// When the desk last heard from the hub.
    pub last_contact: Option<DateTime<Utc>>,
    /// A round that was not finished.
    pub round_open: bool,
    /// The window the replica was read for.
    pub window: Option<String>,
}

/// What the link needs.
pub struct DeskLink {
    /// The pairing.
    pub state: DeskState,
    /// The desk's token.
    pub token: Secret,
    /// The desk's store writer.
    pub writer: StoreWriter,
    /// The desk's health.
    pub health: Arc<Health>,
    /// For the "missed while disconnected" summary.
    pub popups: Option<PopupHandle>,
    /// The desk's own extensions (empty: all).
    pub watch_extensions: Vec<String>,
    /// How much history the desk keeps.
    pub window: DeskConfig,
    /// What the link remembered from its last run.
    pub remembered: Remembered,
    /// The desk's data dir (its pairing file follows a hub that moved).
    pub data_dir: std::path::PathBuf,
}

/// How a connected session ended, other than by an error.
enum Ended {
    /// The hub asked for a resynchronization.
    Resync,
}

/// A state the link reports.
fn view(state: &DeskState, link: &str, problem: Option<String>) -> HubLinkView {
    HubLinkView {
        hub_name: state.hub_name.clone(),
        address: state.hub_address.clone(),
        state: link.to_string(),
        since: Utc::now(),
        problem,
        hub_receiving: None,
        hub_headline: None,
    }
}

/// Reads what the link remembers from the store.
pub fn remembered(store: &callpop_store::Store) -> Result<Remembered, callpop_store::StoreError> {
    let text = |key: &str| -> Result<Option<String>, callpop_store::StoreError> {
        Ok(store.state_get(key)?.filter(|v| !v.is_empty()))
    };
    let number = |key: &str| -> Result<i64, callpop_store::StoreError> {
        Ok(text(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    Ok(Remembered {
        cursor: number(callpop_store::HUB_CURSOR)?,
        generation: number(GENERATION)?,
        last_contact: text(LAST_CONTACT)?
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&Utc)),
        round_open: text(ROUND)?.is_some(),
        window: text(WINDOW)?,
    })
}

/// A window as remembered: days, or `all`.
fn window_text(window: &DeskConfig) -> String {
    window
        .window_days
        .map_or_else(|| "all".to_string(), |d| d.to_string())
}

/// Whether `now` keeps calls `before` did not (then the replica must be read again).
fn window_grew(before: Option<&str>, now: &DeskConfig) -> bool {
    match (before, now.window_days) {
        (None, _) | (Some("all"), _) => false,
        (Some(_), None) => true,
        (Some(days), Some(now)) => days.parse::<u32>().is_ok_and(|d| now > d),
    }
}

impl DeskLink {
    /// Starts the link; it runs until `shutdown`.
    pub fn start(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    fn report(&self, link: HubLinkView) {
        let (state, detail) = match link.state.as_str() {
            "connected" => (
                PartState::Active,
                format!(
                    "Connected to the hub \"{}\" at {}",
                    link.hub_name, link.address
                ),
            ),
            "connecting" => (
                PartState::Connecting,
                format!(
                    "Connecting to the hub \"{}\" at {}…",
                    link.hub_name, link.address
                ),
            ),
            "reconnecting" => (
                PartState::Reconnecting,
                link.problem.clone().unwrap_or_default(),
            ),
            _ => (PartState::Error, link.problem.clone().unwrap_or_default()),
        };
        self.health.set_part(Part::HubLink, state, detail);
        self.health.set_hub_link(link);
    }

    async fn run(mut self, shutdown: CancellationToken) {
        self.report(view(&self.state, "connecting", None));
        if window_grew(self.remembered.window.as_deref(), &self.window) {
            tracing::info!("the desk keeps more history now: reading the hub's window again");
            self.remembered.cursor = 0;
        }
        let mut client = match self
            .state
            .fingerprint()
            .map(|fp| HubClient::pinned(&self.state.hub_address, fp, self.token.clone()))
        {
            Some(Ok(client)) => client,
            Some(Err(e)) => {
                self.report(view(&self.state, "removed", Some(e.to_string())));
                return;
            }
            None => {
                let why = "the desk's pairing file is damaged: join the hub again";
                self.report(view(&self.state, "removed", Some(why.into())));
                return;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0u32;
        let mut looked_at: Option<tokio::time::Instant> = None;
        let mut lost_at = self.remembered.last_contact;
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            let session = self.session(
                &client,
                &mut backoff,
                &mut failures,
                &mut lost_at,
                &mut pruned_at,
            );
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = session => outcome,
            };
            if outcome.is_err() {
                failures += 1;
            }
            let error = match outcome {
                Ok(Ended::Resync) => {
                    tracing::info!("the hub asked this desk to read its calls again");
                    self.remembered.cursor = 0;
                    continue;
                }
                Err(e) => e,
            };
            let now = Utc::now();
            let lost = *lost_at.get_or_insert(now);
            let (link, wait) = match &error {
                LinkError::Removed => {
                    tracing::warn!(error = %error, "this desk was removed from its hub");
                    self.report(view(&self.state, "removed", Some(error.to_string())));
                    shutdown.cancelled().await;
                    return;
                }
                // Not final: a hub restored from an older backup may learn the desk again.
                LinkError::Unauthorized => ("removed", MAX_BACKOFF),
                LinkError::IdentityChanged { .. } => ("identity_changed", MAX_BACKOFF),
                LinkError::Protocol(_) => ("update_needed", MAX_BACKOFF),
                _ => ("reconnecting", backoff),
            };
            let problem = if link == "reconnecting" {
                format!(
                    "Reconnecting to the hub \"{}\" since {}: {error}",
                    self.state.hub_name,
                    lost.with_timezone(&chrono::Local).format("%H:%M:%S")
                )
            } else {
                error.to_string()
            };
            // The hub may have moved (DHCP): look for its key on the LAN now and then.
            // Only when the hub did not answer at all (not a refusal, not this desk's disk).
            let unanswered = matches!(&error, LinkError::Unreachable { address, .. } if address == client.address())
                || matches!(&error, LinkError::IdentityChanged { .. });
            if unanswered
                && failures >= 3
                && looked_at.is_none_or(|t| t.elapsed() >= REDISCOVER_EVERY)
            {
                looked_at = Some(tokio::time::Instant::now());
                if let Some(moved) = self.find_moved().await {
                    client = moved;
                    continue;
                }
            }
            tracing::info!(error = %error, "hub link down; trying again in {:?}", wait);
            self.report(view(&self.state, link, Some(problem)));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(jitter(wait)) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: catch up, then follow the stream until it breaks.
    async fn session(
        &mut self,
        client: &HubClient,
        backoff: &mut Duration,
        failures: &mut u32,
        lost_at: &mut Option<DateTime<Utc>>,
        pruned_at: &mut Option<tokio::time::Instant>,
    ) -> Result<Ended, LinkError> {
        let missed = self.catch_up(client, *lost_at).await?;
        if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            self.prune().await;
            *pruned_at = Some(tokio::time::Instant::now());
        }
        let status = client.status().await?;
        self.connected(&status).await;
        *backoff = FIRST_BACKOFF;
        *lost_at = None;
        *failures = 0;
        self.summarize(missed).await;
        let since = self.since_ms();
        let mut response = client.stream(self.remembered.cursor, since).await?;
        let mut reader = SseReader::default();
        let mut status_timer = tokio::time::interval(STATUS_EVERY);
        status_timer.tick().await;
        // One deadline, moved only when bytes arrive: the status timer must not restart it.
        let idle = tokio::time::sleep(STREAM_IDLE);
        tokio::pin!(idle);
        let mut status_failures = 0;
        loop {
            tokio::select! {
                () = &mut idle => return Err(gone(client, "the hub stopped answering")),
                chunk = response.chunk() => {
                    let bytes = match chunk {
                        Err(e) => return Err(gone(client, &e.to_string())),
                        Ok(None) => return Err(gone(client, "the hub closed the connection")),
                        Ok(Some(bytes)) => bytes,
                    };
                    idle.as_mut().reset(tokio::time::Instant::now() + STREAM_IDLE);
                    let events = reader
                        .push(&bytes)
                        .map_err(|e| LinkError::Garbled(e.to_string()))?;
                    let mut changes = Vec::new();
                    let mut end = None;
                    for event in events {
                        match event.event.as_str() {
                            "change" => {
                                let change: Change = serde_json::from_str(&event.data)
                                    .map_err(|e| LinkError::Garbled(e.to_string()))?;
                                changes.push(change);
                            }
                            "resync" => end = Some(Ok(Ended::Resync)),
                            "removed" => end = Some(Err(LinkError::Removed)),
                            _ => {}
                        }
                    }
                    if let Some(last) = changes.last().map(|c| c.seq) {
                        let cursor = last.max(self.remembered.cursor);
                        self.apply(changes, cursor, Origin::Hub).await?;
                    }
                    if let Some(end) = end {
                        return end;
                    }
                }
                _ = status_timer.tick() => {
                    // Short: the stream and its idle deadline are not read meanwhile.
                    let status = tokio::time::timeout(STATUS_TIMEOUT, client.status())
                        .await
                        .unwrap_or_else(|_| Err(gone(client, "the hub did not answer its status")));
                    match status {
                        Ok(status) => {
                            status_failures = 0;
                            self.connected(&status).await;
                        }
                        // The stream may look alive while the hub no longer answers.
                        Err(e) if status_failures >= 2 => return Err(e),
                        Err(_) => status_failures += 1,
                    }
                    if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                        self.prune().await;
                        *pruned_at = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
    }

    /// Looks for the pinned key over mDNS; a client for its new address when it moved there.
    /// Never from a hub on loopback (no LAN to ask).
    async fn find_moved(&mut self) -> Option<HubClient> {
        let fingerprint = self.state.fingerprint()?;
        let current = super::client::hub_url(&self.state.hub_address).ok()?;
        let host = current.trim_start_matches("https://");
        let current_addr = host.parse::<std::net::SocketAddr>().ok();
        // A hub on this machine has no LAN to look on.
        if current_addr.is_some_and(|a| a.ip().is_loopback()) || host.starts_with("localhost:") {
            return None;
        }
        let found = tokio::task::spawn_blocking(move || {
            super::discover::find(fingerprint, Duration::from_secs(3))
        })
        .await
        .ok()?
        .map_err(|e| tracing::debug!(error = %e, "cannot look for the hub"))
        .ok()??;
        // Still announced where the desk looks for it: it has not moved (it is restarting).
        if current_addr.is_some_and(|a| found.addresses.contains(&a)) {
            return None;
        }
        // The same family as before first (a hub listening on IPv4 announces IPv6 too), and
        // only an address where the hub answers is kept.
        let want_v6 = current_addr.is_some_and(|a| a.is_ipv6());
        let mut candidates = found.addresses.clone();
        candidates.sort_by_key(|a| a.is_ipv6() != want_v6);
        let mut chosen = None;
        for candidate in candidates {
            let address = candidate.to_string();
            let Ok(client) = HubClient::pinned(&address, fingerprint, self.token.clone()) else {
                continue;
            };
            if tokio::time::timeout(STATUS_TIMEOUT, client.status())
                .await
                .is_ok_and(|s| s.is_ok())
            {
                chosen = Some((address, client));
                break;
            }
        }
        let (address, client) = chosen?;
        tracing::info!(from = %self.state.hub_address, to = %address, "the hub moved; following it");
        self.state.hub_address = address;
        if let Err(e) = self.state.save(&self.data_dir) {
            tracing::warn!(error = %e, "cannot remember the hub's new address");
        }
        Some(client)
    }

    fn since_ms(&self) -> Option<i64> {
        self.window
            .window_start(Utc::now())
            .map(|t| t.timestamp_millis())
    }

    /// Reads every page after the cursor. A cursor older than what the hub keeps starts a new
    /// round from the beginning, and rows that round did not send again are swept. The calls
    /// this desk missed while the link was down (counted only after one).
    async fn catch_up(
        &mut self,
        client: &HubClient,
        lost_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Call>, LinkError> {
        let mut missed = Vec::new();
        if self.remembered.cursor == 0 && !self.remembered.round_open {
            self.start_round().await?;
        }
        loop {
            let page = client
                .feed(self.remembered.cursor, self.since_ms(), PAGE)
                .await?;
            if page.resync {
                tracing::info!(
                    "this desk's place in the hub's changes is gone (away too long, or the \
                     hub's history went back): reading its window again"
                );
                self.remembered.cursor = 0;
                self.start_round().await?;
                continue;
            }
            let done = page.next >= page.latest || page.changes.is_empty();
            let cursor = page.next.max(self.remembered.cursor);
            let applied = self.apply(page.changes, cursor, Origin::HubCatchUp).await?;
            if let Some(lost) = lost_at {
                missed.extend(
                    applied
                        .into_iter()
                        .filter_map(|c| self.missed_since(c, lost)),
                );
            }
            if done {
                break;
            }
        }
        if self.remembered.round_open {
            self.finish_round().await?;
        }
        Ok(missed)
    }

    /// Starts a round of reading the window from the start: a new generation, remembered as
    /// under way until it is swept.
    async fn start_round(&mut self) -> Result<(), LinkError> {
        self.remembered.generation += 1;
        self.remembered.round_open = true;
        self.save(GENERATION, &self.remembered.generation.to_string())
            .await?;
        self.save(ROUND, "open").await
    }

    /// A round reached the hub's newest change: the hub's rows of the window it did not send
    /// again are gone at the hub, so they go here too.
    async fn finish_round(&mut self) -> Result<(), LinkError> {
        let since = self
            .window
            .window_start(Utc::now())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.writer
            .sweep_replica(self.remembered.generation, since)
            .await
            .map_err(|e| LinkError::Garbled(format!("cannot sweep the copied calls: {e}")))?;
        self.remembered.round_open = false;
        self.save(ROUND, "").await?;
        self.save(WINDOW, &window_text(&self.window)).await
    }

    async fn save(&self, key: &str, value: &str) -> Result<(), LinkError> {
        self.writer
            .set_state(key, value)
            .await
            .map_err(|e| LinkError::Garbled(format!("cannot save the desk's state: {e}")))
    }

    /// A call this desk missed since `lost`, that it had not yet seen end.
    fn missed_since(&self, change: CallChange, lost: DateTime<Utc>) -> Option<Call> {
        let after = change.after?;
        let already_over = change.before.is_some_and(|b| b.ended_at.is_some());
        let recent = after.started_at >= lost - chrono::Duration::minutes(1);
        (recent
            && !already_over
            && desired_phase(&after, &self.watch_extensions) == Some(Phase::Missed))
        .then_some(after)
    }

    /// Applies changes and moves the cursor, in one transaction.
    async fn apply(
        &mut self,
        changes: Vec<Change>,
        cursor: i64,
        origin: Origin,
    ) -> Result<Vec<CallChange>, LinkError> {
        let changes = changes
            .into_iter()
            .filter(|c| c.seq > self.remembered.cursor)
            .filter_map(|c| match c.record {
                Record::Call { call } => Some(ReplicaChange::Upsert(call)),
                Record::CallRemoved { provider, call_key } => {
                    Some(ReplicaChange::Remove { provider, call_key })
                }
                // A kind of record this version does not keep: its place still counts.
                Record::Unknown => None,
            })
            .collect();
        let applied = self
            .writer
            .apply_replica(ReplicaBatch {
                changes,
                cursor: Some(cursor),
                generation: self.remembered.generation,
                origin,
            })
            .await
            // The history cannot be written: the link waits and tries again, from the same
            // cursor, so nothing is skipped.
            .map_err(|e| LinkError::Unreachable {
                address: "this desk's history".into(),
                detail: e.to_string(),
            })?;
        self.remembered.cursor = cursor;
        Ok(applied)
    }

    async fn prune(&self) {
        if let Some(before) = self.window.window_start(Utc::now()) {
            if let Err(e) = self.writer.prune_replica(before).await {
                tracing::warn!(error = %e, "cannot prune calls older than the desk's window");
            }
        }
    }

    async fn connected(&self, status: &HubStatus) {
        let mut link = view(&self.state, "connected", None);
        link.hub_receiving = Some(status.receiving);
        link.hub_headline = Some(status.headline.clone());
        self.report(link);
        if let Err(e) = self
            .writer
            .set_state(LAST_CONTACT, &Utc::now().to_rfc3339())
            .await
        {
            tracing::debug!(error = %e, "cannot remember the hub's last contact");
        }
    }

    /// One notice for the calls missed while the link was down.
    async fn summarize(&self, missed: Vec<Call>) {
        let (Some(popups), false) = (&self.popups, missed.is_empty()) else {
            return;
        };
        let n = missed.len();
        let title = if n == 1 {
            "1 missed call while disconnected from the hub".to_string()
        } else {
            format!("{n} missed calls while disconnected from the hub")
        };
        let mut callers: Vec<String> = missed
            .iter()
            .take(3)
            .map(|c| {
                c.from
                    .name
                    .clone()
                    .or_else(|| c.from.e164.clone())
                    .or_else(|| c.from.raw.clone())
                    .unwrap_or_else(|| "Unknown caller".into())
            })
            .collect();
        if n > 3 {
            callers.push(format!("and {} more", n - 3));
        }
        popups.notice(&title, &callers.join(", ")).await;
    }
}

/// The link broke: a network error, or the pinned key refused.
fn gone(client: &HubClient, detail: &str) -> LinkError {
    LinkError::Unreachable {
        address: client.address().to_string(),
        detail: detail.to_string(),
    }
}

/// `wait` give or take a fifth, so desks that lost the hub together do not return together.
fn jitter(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let factor = 0.8 + 0.4 * (f64::from(byte[0]) / 255.0);
    wait.mul_f64(factor)
}
