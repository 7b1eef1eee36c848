//! The subscription keeper: exactly one Active RingCentral webhook subscription for our public
//! address, renewed before it expires, re-created when it dies (404, blacklisted, address
//! changed), stale duplicates deleted — with nobody watching.
//!
//! It is one engine task: `select!` over its timer, renewal reminders (from the receiver), nudges
//! (public URL changed, "re-create" pressed) and shutdown. Its state lives in the store
//! (`engine_state`), so a restart resumes it. Every gap it notices (blacklisting, expiry,
//! downtime) becomes a backfill request.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::backfill::BackfillRequest;
use crate::health::{Health, Part, PartState};
use callpop_clock::Clock;
use callpop_core::model::{Provider, RenewalReminder};
use callpop_core::routes::{webhook_url, RINGCENTRAL_PATH};
use callpop_core::Secret;
use callpop_ringcentral::api::{ApiError, Platform, Subscription};
use callpop_ringcentral::filters::reminder_filter;
use callpop_store::writer::StoreWriter;

/// Engine-state key of the keeper's memory.
pub const STATE_KEY: &str = "ringcentral.subscription";

/// Lifetimes tried, longest first, when RingCentral refuses one with `CMN-101`
/// (docs/PROTOCOL.md §0 #6: the documented maximum changed between spec versions).
const LIFETIMES: &[i64] = &[315_360_000, 31_536_000, 2_592_000, 604_800, 86_400];

/// What the keeper needs to know.
#[derive(Debug, Clone)]
pub struct KeeperSettings {
    /// The public base URL RingCentral can reach (`None` until a tunnel or URL is set).
    pub public_url: Option<String>,
    /// Event filters to subscribe to (the renewal reminder is added automatically).
    pub event_filters: Vec<String>,
    /// Lifetime to ask for.
    pub expires_in: i64,
    /// Verification token RingCentral will send with every delivery.
    pub verification_token: Option<Secret>,
    /// How often to check that the subscription is still Active.
    pub check_interval: Duration,
}

impl KeeperSettings {
    /// The webhook address for the current public URL.
    pub fn address(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|u| webhook_url(u, Provider::RingCentral))
    }
}

/// Compares filters whatever ids RingCentral substituted for `~`.
fn normalize_filter(filter: &str) -> String {
    let (path, query) = filter.split_once('?').unwrap_or((filter, ""));
    let mut out: Vec<String> = Vec::new();
    let mut previous = "";
    for seg in path.split('/') {
        if matches!(previous, "account" | "extension") {
            out.push("~".into());
        } else {
            out.push(seg.to_ascii_lowercase());
        }
        previous = seg;
    }
    let path = out.join("/");
    if path.starts_with("/restapi/v1.0/subscription") {
        // Reminder parameters may be adjusted by RingCentral; any reminder filter will do.
        return "/restapi/v1.0/subscription/~".into();
    }
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

fn filters_match(wanted: &[String], have: &[String]) -> bool {
    let mut a: Vec<String> = wanted.iter().map(|f| normalize_filter(f)).collect();
    let mut b: Vec<String> = have.iter().map(|f| normalize_filter(f)).collect();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// A subscription created by a CallPop (its address ends in our webhook path).
fn is_callpop_webhook(s: &Subscription) -> bool {
    s.delivery_mode
        .transport_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("webhook"))
        && s.delivery_mode
            .address
            .as_deref()
            .is_some_and(|a| a.split('?').next().unwrap_or(a).ends_with(RINGCENTRAL_PATH))
}

/// How long deliveries fail before RingCentral blacklists a subscription (docs/PROTOCOL.md §1.4:
/// "during 10 minutes", noticed at a reconciliation every 15 minutes).
const FAILING_BEFORE_BLACKLIST: Duration = Duration::minutes(25);

/// Since when a subscription found not Active has probably not delivered: deliveries were
/// failing for a while before `blacklisted_at`, and at the latest since we last saw it Active
/// and delivering was not checked. The earliest bound wins (the backfill is idempotent).
fn undelivered_since(
    blacklisted_at: Option<DateTime<Utc>>,
    confirmed_active_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let failing = blacklisted_at.unwrap_or(now) - FAILING_BEFORE_BLACKLIST;
    confirmed_active_at.map_or(failing, |c| c.min(failing))
}

/// A `CMN-101` about the lifetime (docs/PROTOCOL.md §0 #6), not about another parameter such as the
/// address: only then does asking for a shorter lifetime help.
fn refuses_lifetime(e: &ApiError) -> bool {
    match e {
        ApiError::Api { code, message, .. } if code == "CMN-101" => {
            !message.contains("Parameter [") || message.contains("[expiresIn]")
        }
        _ => false,
    }
}

/// What the keeper remembers between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeeperState {
    /// The subscription we keep.
    pub id: Option<String>,
    /// Its address.
    pub address: Option<String>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When RingCentral last confirmed it Active.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Addresses this install delivered to before (newest last): subscriptions left at them
    /// are ours to delete. One at a CallPop address this install never used belongs to
    /// another desk sharing the RingCentral app and user, and is left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_addresses: Vec<String>,
}

/// Past addresses remembered at most (a tunnel without a reserved domain changes its URL at
/// every start).
const PAST_ADDRESSES: usize = 32;

impl KeeperState {
    /// Whether this install created subscriptions delivering to `address`.
    fn used(&self, address: &str) -> bool {
        self.address.as_deref() == Some(address) || self.past_addresses.iter().any(|a| a == address)
    }

    /// Remembers that this install now delivers to `address`.
    fn moved_to(&mut self, address: &str) {
        if let Some(old) = self.address.take().filter(|old| old != address) {
            self.past_addresses.retain(|a| *a != old && a != address);
            self.past_addresses.push(old);
            let over = self.past_addresses.len().saturating_sub(PAST_ADDRESSES);
            self.past_addresses.drain(..over);
        }
        self.address = Some(address.to_string());
    }
}

/// Why keeping the subscription failed this time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeeperError {
    /// The API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// RingCentral could not validate our webhook address.
    #[error(
        "RingCentral cannot reach {address}: nothing there answered its check ({code}: {message})"
    )]
    Handshake {
        /// The address.
        address: String,
        /// SUB-520/521/523/525.
        code: String,
        /// RingCentral's message.
        message: String,
    },
    /// No public URL is known yet.
    #[error("no public URL yet: set one or turn the tunnel on")]
    NoPublicUrl,
}

/// What one `ensure` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    /// The subscription now kept.
    pub subscription_id: String,
    /// Its expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// A new subscription was created.
    pub created: bool,
    /// It was renewed.
    pub renewed: bool,
    /// Subscriptions deleted (stale duplicates, blacklisted, old addresses).
    pub deleted: Vec<String>,
    /// Start of a gap in deliveries noticed on the way (blacklisting, expiry).
    pub gap_since: Option<DateTime<Utc>>,
}

/// What [`Keeper::ensure`] will do, decided from RingCentral's list of subscriptions alone.
#[derive(Debug, Default)]
struct Plan {
    /// The subscription to keep (renewed if it ends soon); none: create one.
    keep: Option<Subscription>,
    /// This install's other subscriptions, and dead ones, to delete once one is kept.
    delete: Vec<String>,
    /// When deliveries may have stopped (a blacklisting, the remembered one gone).
    gap_since: Option<DateTime<Utc>>,
}

/// Keeps the subscription; used by the engine task and by `callpop subscriptions`.
pub struct Keeper {
    platform: Arc<Platform>,
    settings: KeeperSettings,
    clock: Clock,
    state: KeeperState,
}

impl Keeper {
    /// A keeper starting from remembered state.
    /// The keeper of this install as its configuration describes it, with the state it
    /// remembered (the command line's subscription commands; a desk joining a hub, which
    /// removes its own subscription).
    pub fn for_install(
        config: &crate::config::Config,
        platform: Arc<Platform>,
        verification_token: Option<Secret>,
        state: KeeperState,
    ) -> Keeper {
        Keeper::new(
            platform,
            KeeperSettings {
                public_url: config.public_url.clone(),
                event_filters: config.ringcentral.event_filters.clone(),
                expires_in: config.ringcentral.subscription_expires_in,
                verification_token,
                check_interval: config.ringcentral.check_interval,
            },
            config.clock,
            state,
        )
    }

    /// A keeper of `platform`'s subscriptions.
    pub fn new(
        platform: Arc<Platform>,
        settings: KeeperSettings,
        clock: Clock,
        state: KeeperState,
    ) -> Keeper {
        Keeper {
            platform,
            settings,
            clock,
            state,
        }
    }

    /// The remembered state.
    pub fn state(&self) -> &KeeperState {
        &self.state
    }

    /// The filters to register: the configured ones plus the renewal reminder.
    fn filters(&self, lifetime: i64) -> Vec<String> {
        let mut filters = self.settings.event_filters.clone();
        filters.push(reminder_filter(lifetime));
        filters
    }

    /// Renew when less than this is left: a day, or half of a shorter lifetime.
    fn renew_margin(&self, s: &Subscription) -> Duration {
        let lifetime = match (
            s.expires_at(),
            s.creation_time
                .as_deref()
                .and_then(callpop_core::wire::parse_timestamp),
        ) {
            (Some(end), Some(start)) if end > start => end - start,
            _ => Duration::seconds(s.expires_in.unwrap_or(self.settings.expires_in)),
        };
        (lifetime / 2).min(Duration::days(1))
    }

    /// Lists our subscriptions (CallPop webhooks of this app and user).
    pub async fn ours(&self) -> Result<Vec<Subscription>, ApiError> {
        Ok(self
            .platform
            .list_subscriptions()
            .await?
            .into_iter()
            .filter(is_callpop_webhook)
            .collect())
    }

    async fn create(&mut self, address: &str) -> Result<Subscription, KeeperError> {
        let token = self
            .settings
            .verification_token
            .as_ref()
            .map(Secret::expose);
        let first = LIFETIMES
            .iter()
            .position(|l| *l <= self.settings.expires_in)
            .unwrap_or(LIFETIMES.len() - 1);
        let mut tried_cleanup = false;
        let mut index = first;
        loop {
            let lifetime = LIFETIMES[index].min(self.settings.expires_in);
            let filters = self.filters(lifetime);
            match self
                .platform
                .create_subscription(&filters, address, token, lifetime)
                .await
            {
                Ok(s) => return Ok(s),
                Err(ApiError::Api { code, message, .. })
                    if code == "CMN-101" && message.contains("deliveryMode.address") =>
                {
                    // How RingCentral also reports a webhook that failed the handshake.
                    return Err(KeeperError::Handshake {
                        address: address.to_string(),
                        code,
                        message,
                    });
                }
                Err(e) if refuses_lifetime(&e) && index + 1 < LIFETIMES.len() => {
                    tracing::info!(
                        lifetime,
                        "RingCentral refused that lifetime; asking for less"
                    );
                    index += 1;
                }
                Err(e) if e.code() == Some("SUB-505") && !tried_cleanup => {
                    // Limit reached: our own leftovers and dead subscriptions are the first to
                    // go; other desks' live ones stay.
                    tried_cleanup = true;
                    for s in self.ours().await? {
                        if Some(&s.id) != self.state.id.as_ref() && self.may_delete(&s, address) {
                            let _ = self.platform.delete_subscription(&s.id).await;
                        }
                    }
                }
                Err(ApiError::Api { code, message, .. })
                    if matches!(code.as_str(), "SUB-520" | "SUB-521" | "SUB-523" | "SUB-525") =>
                {
                    return Err(KeeperError::Handshake {
                        address: address.to_string(),
                        code,
                        message,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether a CallPop subscription is this install's to delete: one at our address, at an
    /// address we used before, the one we remember, or one RingCentral no longer delivers on
    /// (its owner replaces it anyway). Another desk's live subscription is not: deleting it
    /// made two desks sharing one RingCentral app and user delete each other's every check.
    fn may_delete(&self, s: &Subscription, address: &str) -> bool {
        let at = s.delivery_mode.address.as_deref().unwrap_or_default();
        at == address
            || self.state.used(at)
            || self.state.id.as_deref() == Some(s.id.as_str())
            || !s.is_active()
    }

    /// Makes sure exactly one Active subscription delivers to our address; creates, renews,
    /// re-creates and deletes as needed: first a [`Plan`] from RingCentral's list alone, then
    /// the calls that carry it out.
    pub async fn ensure(&mut self, force_recreate: bool) -> Result<Ensured, KeeperError> {
        let address = self.settings.address().ok_or(KeeperError::NoPublicUrl)?;
        let now = self.clock.now();
        let ours = self.ours().await?;
        let plan = self.plan(ours, &address, now, force_recreate);
        let (kept, created, renewed) = self.keep_or_create(plan.keep, &address, now).await?;
        // Only now that the new one exists (its handshake passed) do the old ones go.
        let deleted = self.delete_all(plan.delete, &kept.id).await;
        self.state.moved_to(&address);
        self.state.id = Some(kept.id.clone());
        self.state.expires_at = kept.expires_at();
        self.state.confirmed_at = Some(now);
        Ok(Ensured {
            subscription_id: kept.id,
            expires_at: self.state.expires_at,
            created,
            renewed,
            deleted,
            gap_since: plan.gap_since,
        })
    }

    /// Decides, without calling RingCentral, which of `ours` to keep (the usable one that
    /// lasts longest), which to delete (this install's others and dead ones; never another
    /// desk's live one), and since when deliveries may have been missed.
    fn plan(
        &self,
        ours: Vec<Subscription>,
        address: &str,
        now: DateTime<Utc>,
        force_recreate: bool,
    ) -> Plan {
        let mut plan = Plan::default();
        let mut gap = |since: DateTime<Utc>| {
            plan.gap_since = Some(plan.gap_since.map_or(since, |g| g.min(since)));
        };
        let mut keep: Option<Subscription> = None;
        let mut delete: Vec<String> = Vec::new();
        for s in ours {
            if !self.may_delete(&s, address) {
                tracing::debug!(id = %s.id, address = ?s.delivery_mode.address, "another desk's subscription; left alone");
                continue;
            }
            let usable = s.is_active()
                && s.delivery_mode.address.as_deref() == Some(address)
                && filters_match(&self.filters(self.settings.expires_in), &s.event_filters)
                && s.expires_at().is_none_or(|t| t > now)
                && !force_recreate;
            if !s.is_active() {
                let confirmed = self
                    .state
                    .confirmed_at
                    .filter(|_| self.state.id.as_deref() == Some(s.id.as_str()));
                let since = undelivered_since(s.blacklisted_at(), confirmed, now);
                tracing::warn!(
                    id = %s.id,
                    status = %s.status,
                    reason = s.blacklisted_data.as_ref().and_then(|b| b.reason.as_deref()).unwrap_or("-"),
                    "RingCentral stopped delivering on a subscription; replacing it"
                );
                gap(since);
            }
            let better = keep
                .as_ref()
                .is_none_or(|k| s.expires_at() > k.expires_at());
            if usable && better {
                if let Some(old) = keep.replace(s) {
                    delete.push(old.id);
                }
            } else {
                delete.push(s.id);
            }
        }
        // The subscription we remembered is gone (deleted or expired): deliveries stopped.
        if let Some(id) = &self.state.id {
            let known = keep.as_ref().is_some_and(|k| &k.id == id) || delete.contains(id);
            if !known {
                let since = self
                    .state
                    .expires_at
                    .filter(|t| *t < now)
                    .or(self.state.confirmed_at);
                if let Some(since) = since {
                    gap(since);
                }
            }
        }
        plan.keep = keep;
        plan.delete = delete;
        plan
    }

    /// Keeps `keep` (renewed when it ends soon) or creates one; returns it and whether it was
    /// created or renewed.
    async fn keep_or_create(
        &mut self,
        keep: Option<Subscription>,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<(Subscription, bool, bool), KeeperError> {
        let Some(s) = keep else {
            return Ok((self.create(address).await?, true, false));
        };
        let ends_soon = s
            .expires_at()
            .is_some_and(|t| t - now < self.renew_margin(&s));
        if !ends_soon {
            return Ok((s, false, false));
        }
        match self.renew(&s).await {
            Ok(r) => Ok((r, false, true)),
            Err(e) if e.code() == Some("CMN-102") => Ok((self.create(address).await?, true, false)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `ids` but `kept`; returns those that are gone (already gone counts).
    async fn delete_all(&self, ids: Vec<String>, kept: &str) -> Vec<String> {
        let mut deleted = Vec::new();
        for id in ids {
            if id == kept {
                continue;
            }
            match self.platform.delete_subscription(&id).await {
                Ok(()) => deleted.push(id),
                Err(e) if e.code() == Some("CMN-102") => deleted.push(id),
                Err(e) => tracing::warn!(%id, error = %e, "cannot delete an old subscription"),
            }
        }
        deleted
    }

    async fn renew(&self, s: &Subscription) -> Result<Subscription, ApiError> {
        let mut index = LIFETIMES
            .iter()
            .position(|l| *l <= self.settings.expires_in)
            .unwrap_or(LIFETIMES.len() - 1);
        loop {
            let lifetime = LIFETIMES[index].min(self.settings.expires_in);
            match self
                .platform
                .renew_subscription(&s.id, &self.filters(lifetime), lifetime)
                .await
            {
                Err(e) if refuses_lifetime(&e) && index + 1 < LIFETIMES.len() => index += 1,
                other => return other,
            }
        }
    }

    /// Renews the kept subscription now (after a renewal reminder).
    pub async fn renew_now(&mut self) -> Result<Ensured, KeeperError> {
        let Some(id) = self.state.id.clone() else {
            return self.ensure(false).await;
        };
        let current = match self.platform.get_subscription(&id).await {
            Ok(s) if s.is_active() => s,
            Ok(_) => return self.ensure(false).await,
            Err(e) if e.code() == Some("CMN-102") => return self.ensure(false).await,
            Err(e) => return Err(e.into()),
        };
        match self.renew(&current).await {
            Ok(s) => {
                self.state.expires_at = s.expires_at();
                self.state.confirmed_at = Some(self.clock.now());
                Ok(Ensured {
                    subscription_id: s.id.clone(),
                    expires_at: s.expires_at(),
                    created: false,
                    renewed: true,
                    deleted: Vec::new(),
                    gap_since: None,
                })
            }
            Err(e) if e.code() == Some("CMN-102") => self.ensure(false).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Cheap periodic check of the kept subscription; falls back to `ensure` when anything
    /// looks wrong.
    pub async fn check(&mut self) -> Result<Ensured, KeeperError> {
        let Some(id) = self.state.id.clone() else {
            return self.ensure(false).await;
        };
        if self.state.address != self.settings.address() {
            return self.ensure(false).await;
        }
        match self.platform.get_subscription(&id).await {
            Ok(s) if s.is_active() => {
                let now = self.clock.now();
                if s.expires_at()
                    .is_some_and(|t| t - now < self.renew_margin(&s))
                {
                    return self.ensure(false).await;
                }
                self.state.expires_at = s.expires_at();
                self.state.confirmed_at = Some(now);
                Ok(Ensured {
                    subscription_id: s.id,
                    expires_at: self.state.expires_at,
                    created: false,
                    renewed: false,
                    deleted: Vec::new(),
                    gap_since: None,
                })
            }
            Ok(_) => self.ensure(false).await,
            Err(e) if e.code() == Some("CMN-102") => self.ensure(false).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes one subscription by id.
    pub async fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        self.platform.delete_subscription(id).await?;
        if self.state.id.as_deref() == Some(id) {
            // Its address stays known as ours, for leftovers there.
            self.state.id = None;
            self.state.expires_at = None;
            self.state.confirmed_at = None;
        }
        Ok(())
    }

    /// Deletes every subscription this install made (RingCentral now sends over the
    /// WebSocket); another desk's is left alone. Returns the ids deleted.
    pub async fn remove_ours(&mut self) -> Result<Vec<String>, ApiError> {
        let address = self.settings.address().unwrap_or_default();
        let mine: Vec<String> = self
            .ours()
            .await?
            .into_iter()
            .filter(|s| self.may_delete(s, &address))
            .map(|s| s.id)
            .collect();
        for id in &mine {
            match self.delete(id).await {
                Ok(()) => {}
                // Gone already (expired, deleted elsewhere): nothing left to remove.
                Err(ApiError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if self.state.id.is_some() {
            self.state.id = None;
            self.state.expires_at = None;
            self.state.confirmed_at = None;
        }
        Ok(mine)
    }

    /// New settings (public URL changed, filters edited); the next ensure applies them.
    pub fn set_settings(&mut self, settings: KeeperSettings) {
        self.settings = settings;
    }
}

/// What the keeper does with the webhook subscription, as the transport choice decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Keep one Active subscription to the public address (the webhook transport).
    Keep,
    /// Leave it as it is while the WebSocket connects: a switch removes the old transport
    /// only once the new one is subscribed, so nothing falls in between.
    Standby,
    /// Delete ours: RingCentral sends over the WebSocket now.
    Remove,
}

/// Requests to the running keeper.
#[derive(Debug)]
pub enum KeeperCommand {
    /// What to do with the webhook subscription from now on.
    Role(Role),
    /// The public URL changed (or appeared / went away).
    PublicUrl(Option<String>),
    /// Re-create the subscription now (the health view's button).
    Recreate(oneshot::Sender<Result<String, RecreateError>>),
    /// Check now (e.g. after the machine woke up).
    CheckNow,
}

/// Why the health page's "Re-create subscription" did not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecreateError {
    /// The keeper task is not running (no credentials, or the engine is stopping).
    #[error("the subscription keeper is not running")]
    NotRunning,
    /// The keeper stopped before it answered.
    #[error("the subscription keeper stopped")]
    Stopped,
    /// RingCentral or the webhook address refused.
    #[error(transparent)]
    Failed(#[from] KeeperError),
}

/// Handle to the running keeper.
#[derive(Clone)]
pub struct KeeperHandle {
    tx: mpsc::Sender<KeeperCommand>,
}

impl KeeperHandle {
    /// Tells the keeper about a new public URL.
    pub async fn public_url_changed(&self, url: Option<String>) {
        let _ = self.tx.send(KeeperCommand::PublicUrl(url)).await;
    }

    /// Re-creates the subscription now; returns the new id or why not.
    pub async fn recreate(&self) -> Result<String, RecreateError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(KeeperCommand::Recreate(tx))
            .await
            .map_err(|_| RecreateError::NotRunning)?;
        rx.await.map_err(|_| RecreateError::Stopped)?
    }

    /// Tells the keeper what to do with the webhook subscription from now on.
    pub async fn set_role(&self, role: Role) {
        let _ = self.tx.send(KeeperCommand::Role(role)).await;
    }

    /// Asks for a check now.
    pub async fn check_now(&self) {
        let _ = self.tx.send(KeeperCommand::CheckNow).await;
    }
}

/// What woke the keeper task, and so what it does this turn.
enum Turn {
    /// The timer, a new public URL or a "check now": check the subscription.
    Check,
    /// A renewal reminder arrived: renew now.
    Renew,
    /// The health page asked to re-create it; the answer goes back on the channel.
    Recreate(oneshot::Sender<Result<String, RecreateError>>),
}

/// When the keeper task looks next, and how its recent turns went.
struct Schedule {
    next: DateTime<Utc>,
    /// Failed turns in a row (the retry backs off with them).
    failures: u32,
    /// No turn yet since the start.
    first: bool,
}

/// The keeper as an engine task.
pub struct KeeperTask {
    /// The keeper.
    pub keeper: Keeper,
    /// Health board.
    pub health: Arc<Health>,
    /// Where state is saved.
    pub writer: StoreWriter,
    /// Where gaps are reported.
    pub backfill: mpsc::Sender<BackfillRequest>,
    /// Renewal reminders from the receiver.
    pub reminders: mpsc::Receiver<RenewalReminder>,
    /// The clock.
    pub clock: Clock,
    /// What to do with the subscription (the transport choice changes it while running).
    pub role: Role,
}

impl KeeperTask {
    fn report(&self, result: &Result<Ensured, KeeperError>) {
        if result.is_ok() {
            self.health.set_public_url_unreachable(None);
        }
        match result {
            Ok(e) => {
                let until = e
                    .expires_at
                    .map(|t| {
                        format!(
                            "; it renews itself (current term ends {})",
                            t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
                        )
                    })
                    .unwrap_or_default();
                self.health.set_part(
                    Part::Subscription,
                    PartState::Active,
                    format!("Active: RingCentral sends this account's calls here{until}."),
                );
            }
            Err(KeeperError::NoPublicUrl) => self.health.set_part_fixed_in(
                Part::Subscription,
                PartState::Waiting,
                "Waiting for a public address: RingCentral can send calls only to an address on \
                 the internet.",
                Some("tunnel"),
            ),
            Err(KeeperError::Api(ApiError::RateLimited { until, .. })) => self.health.set_part(
                Part::Subscription,
                PartState::Renewing,
                format!(
                    "RingCentral asked CallPop to slow down; it tries again at {}.",
                    until.with_timezone(&chrono::Local).format("%H:%M:%S")
                ),
            ),
            Err(e @ KeeperError::Handshake { .. }) => {
                self.health.set_public_url_unreachable(Some(
                    "RingCentral cannot reach this address: nothing there answered its check. \
                     Check the public URL (or use ngrok)."
                        .into(),
                ));
                self.health.set_part_fixed_in(
                    Part::Subscription,
                    PartState::Error,
                    e.to_string(),
                    Some("tunnel"),
                )
            }
            Err(KeeperError::Api(e)) => self.health.set_part_fixed_in(
                Part::Subscription,
                PartState::Error,
                e.to_string(),
                e.settings_section(),
            ),
        }
    }

    async fn save(&self) {
        if let Ok(json) = serde_json::to_string(self.keeper.state()) {
            if let Err(e) = self.writer.set_state(STATE_KEY, &json).await {
                tracing::warn!(error = %e, "cannot save the subscription state");
            }
        }
    }

    /// When to look again after `result`.
    fn next_check(&self, result: &Result<Ensured, KeeperError>, failures: u32) -> DateTime<Utc> {
        let now = self.clock.now();
        match result {
            Ok(e) => {
                let periodic = now + self.keeper.settings.check_interval;
                match e.expires_at {
                    // Wake up in time to renew with the margin kept.
                    Some(t) => periodic
                        .min(t - Duration::days(1).min((t - now) / 2))
                        .max(now + Duration::seconds(30)),
                    None => periodic,
                }
            }
            Err(KeeperError::Api(ApiError::RateLimited { until, .. })) => *until,
            Err(KeeperError::NoPublicUrl) => now + Duration::days(365),
            // Refused credentials will not start working by themselves: ask rarely.
            Err(KeeperError::Api(ApiError::Auth { .. })) => now + Duration::hours(1),
            Err(_) => now + Duration::seconds(30 * 2i64.pow(failures.min(5))),
        }
    }

    /// Runs until shutdown.
    pub fn start(self, shutdown: CancellationToken) -> (KeeperHandle, tokio::task::JoinHandle<()>) {
        let (tx, commands) = mpsc::channel(16);
        let task = tokio::spawn(self.run(commands, shutdown));
        (KeeperHandle { tx }, task)
    }

    /// One owner of the keeper: waits for the next check, a renewal reminder or a command,
    /// then takes one turn.
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<KeeperCommand>,
        shutdown: CancellationToken,
    ) {
        let mut schedule = Schedule {
            next: self.clock.now(),
            failures: 0,
            first: true,
        };
        loop {
            let turn = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.clock.sleep_until(schedule.next) => Turn::Check,
                r = self.reminders.recv() => match r {
                    Some(r) => Self::on_reminder(&r),
                    None => break,
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
            };
            self.on_turn(turn, &mut schedule).await;
        }
    }

    fn on_reminder(reminder: &RenewalReminder) -> Turn {
        tracing::info!(
            subscription = reminder.subscription_id.as_deref().unwrap_or("?"),
            "renewal reminder"
        );
        Turn::Renew
    }

    fn on_command(&mut self, command: KeeperCommand) -> Turn {
        match command {
            KeeperCommand::PublicUrl(url) => {
                let mut settings = self.keeper.settings.clone();
                settings.public_url = url;
                self.keeper.set_settings(settings);
                Turn::Check
            }
            KeeperCommand::Recreate(reply) => Turn::Recreate(reply),
            KeeperCommand::CheckNow => Turn::Check,
            KeeperCommand::Role(role) => {
                if role != self.role {
                    tracing::info!(?role, "webhook subscription role changed");
                }
                self.role = role;
                Turn::Check
            }
        }
    }

    /// Does what `turn` asks, answers a re-create request, reports, and schedules the next
    /// check.
    async fn on_turn(&mut self, turn: Turn, schedule: &mut Schedule) {
        if self.role != Role::Keep {
            return self.off_turn(turn, schedule).await;
        }
        let started_at = self.clock.now();
        let (result, reply) = match turn {
            Turn::Recreate(reply) => {
                self.health.set_part(
                    Part::Subscription,
                    PartState::Renewing,
                    "Re-creating the subscription…",
                );
                (self.keeper.ensure(true).await, Some(reply))
            }
            Turn::Renew => (self.keeper.renew_now().await, None),
            // The first look after a start lists everything; later ones check the one kept.
            Turn::Check if schedule.first => (self.keeper.ensure(false).await, None),
            Turn::Check => (self.keeper.check().await, None),
        };
        schedule.first = false;
        if let Some(reply) = reply {
            let _ = reply.send(
                result
                    .as_ref()
                    .map(|e| e.subscription_id.clone())
                    .map_err(|e| RecreateError::Failed(e.clone())),
            );
        }
        match &result {
            Ok(kept) => {
                schedule.failures = 0;
                self.on_kept(kept, started_at).await;
            }
            Err(e) => {
                schedule.failures += 1;
                tracing::warn!(error = %e, "keeping the RingCentral subscription failed");
            }
        }
        self.report(&result);
        schedule.next = self.next_check(&result, schedule.failures);
    }

    /// A turn while RingCentral sends (or is about to send) over the WebSocket: nothing is
    /// created or renewed; in [`Role::Remove`] ours are deleted, retried until they are gone.
    async fn off_turn(&mut self, turn: Turn, schedule: &mut Schedule) {
        let now = self.clock.now();
        let result = match self.role {
            Role::Remove => self.keeper.remove_ours().await.map(|deleted| {
                if !deleted.is_empty() {
                    tracing::info!(
                        count = deleted.len(),
                        "webhook subscription deleted: RingCentral sends over the WebSocket"
                    );
                }
            }),
            _ => Ok(()),
        };
        if let Turn::Recreate(reply) = turn {
            let _ = reply.send(Err(RecreateError::NotRunning));
        }
        match &result {
            Ok(()) => {
                schedule.failures = 0;
                schedule.first = true;
                schedule.next = now + Duration::days(365);
                let detail = if self.role == Role::Remove {
                    "Not needed: RingCentral sends calls over the WebSocket."
                } else {
                    "Standing by while CallPop connects to RingCentral over the WebSocket."
                };
                self.health
                    .set_part(Part::Subscription, PartState::Off, detail);
                self.save().await;
            }
            Err(e) => {
                schedule.failures += 1;
                tracing::warn!(error = %e, "cannot delete the webhook subscription");
                schedule.next = match e {
                    ApiError::RateLimited { until, .. } => *until,
                    _ => now + Duration::seconds(30 * 2i64.pow(schedule.failures.min(5))),
                };
            }
        }
    }

    /// Logs what changed, asks for the calls a gap may have lost, and saves the state.
    async fn on_kept(&mut self, kept: &Ensured, started_at: DateTime<Utc>) {
        if kept.created || kept.renewed || !kept.deleted.is_empty() {
            tracing::info!(
                id = %kept.subscription_id,
                created = kept.created,
                renewed = kept.renewed,
                deleted = kept.deleted.len(),
                "RingCentral subscription kept"
            );
        }
        let gap = match kept.gap_since {
            Some(since) => Some((since, "the subscription had stopped delivering")),
            // A brand-new subscription: whatever happened before it is unknown.
            None if kept.created => Some((
                started_at - Duration::hours(1),
                "a new subscription was created",
            )),
            None => None,
        };
        if let Some((since, reason)) = gap {
            let _ = self
                .backfill
                .send(BackfillRequest {
                    since,
                    reason: reason.into(),
                    reply: None,
                })
                .await;
        }
        self.save().await;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_a_refused_lifetime_is_retried_shorter() {
        let cmn101 = |message: &str| ApiError::Api {
            status: 400,
            code: "CMN-101".into(),
            message: message.into(),
        };
        assert!(refuses_lifetime(&cmn101(
            "Parameter [expiresIn] value is invalid"
        )));
        assert!(refuses_lifetime(&cmn101("Parameter value is invalid")));
        assert!(!refuses_lifetime(&cmn101(
            "Parameter [deliveryMode.address] value is invalid"
        )));
        assert!(!refuses_lifetime(&ApiError::Network("down".into())));
    }

    #[test]
    fn a_blacklisting_gap_starts_before_the_blacklisting() {
        let now = Utc::now();
        let blacklisted = now - Duration::minutes(5);
        assert_eq!(
            undelivered_since(Some(blacklisted), None, now),
            blacklisted - FAILING_BEFORE_BLACKLIST
        );
        assert_eq!(
            undelivered_since(None, None, now),
            now - FAILING_BEFORE_BLACKLIST
        );
        // Last seen Active an hour ago: deliveries may have been failing since.
        let confirmed = now - Duration::hours(1);
        assert_eq!(
            undelivered_since(Some(blacklisted), Some(confirmed), now),
            confirmed
        );
        assert_eq!(
            undelivered_since(Some(blacklisted), Some(now - Duration::minutes(10)), now),
            blacklisted - FAILING_BEFORE_BLACKLIST
        );
    }

    /// A keeper at https://desk.example with the default filters and a week's lifetime; it
    /// never calls the (unreachable) platform in these tests.
    fn planning_keeper(state: KeeperState) -> Keeper {
        let clock = Clock::real();
        let platform = Platform::new(
            "http://127.0.0.1:9",
            callpop_ringcentral::api::Credentials {
                client_id: "id".into(),
                client_secret: Secret::new("secret"),
                jwt: Secret::new("jwt"),
            },
            clock,
        )
        .expect("a client");
        Keeper::new(
            Arc::new(platform),
            KeeperSettings {
                public_url: Some("https://desk.example".into()),
                event_filters: callpop_ringcentral::filters::default_event_filters(),
                expires_in: 604_800,
                verification_token: None,
                check_interval: Duration::minutes(15),
            },
            clock,
            state,
        )
    }

    fn listed(id: &str, status: &str, address: &str, expires: DateTime<Utc>) -> Subscription {
        let mut filters = callpop_ringcentral::filters::default_event_filters();
        filters.push(reminder_filter(604_800));
        serde_json::from_value(serde_json::json!({
            "id": id,
            "status": status,
            "eventFilters": filters,
            "expirationTime": expires.to_rfc3339(),
            "deliveryMode": {"transportType": "WebHook", "address": address},
            "blacklistedData": if status == "Blacklisted" {
                serde_json::json!({"blacklistedAt": (expires - Duration::days(3)).to_rfc3339()})
            } else {
                serde_json::Value::Null
            },
        }))
        .expect("a subscription")
    }

    #[test]
    fn the_plan_keeps_the_longest_usable_deletes_our_others_and_leaves_other_desks_alone() {
        let now = Utc::now();
        let ours = "https://desk.example/api/v1/webhooks/phone_calls_webhooks/ringcentral";
        let old = "https://old.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringcentral";
        let other = "https://reception.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringcentral";
        let mut state = KeeperState::default();
        state.moved_to(old);
        let keeper = planning_keeper(state);
        let plan = keeper.plan(
            vec![
                listed("short", "Active", ours, now + Duration::days(2)),
                listed("long", "Active", ours, now + Duration::days(6)),
                listed("dead", "Blacklisted", old, now + Duration::days(5)),
                listed("reception", "Active", other, now + Duration::days(6)),
            ],
            ours,
            now,
            false,
        );
        assert_eq!(plan.keep.map(|s| s.id).as_deref(), Some("long"));
        assert_eq!(plan.delete, vec!["short".to_string(), "dead".to_string()]);
        let blacklisted_at = now + Duration::days(2);
        assert_eq!(
            plan.gap_since,
            Some(blacklisted_at - FAILING_BEFORE_BLACKLIST),
            "the gap starts before the blacklisting"
        );

        // Re-creating on request keeps nothing and deletes every one of ours once replaced.
        let forced = keeper.plan(
            vec![listed("long", "Active", ours, now + Duration::days(6))],
            ours,
            now,
            true,
        );
        assert!(forced.keep.is_none());
        assert_eq!(forced.delete, vec!["long".to_string()]);
    }

    #[test]
    fn the_plan_notices_when_the_remembered_subscription_is_gone() {
        let now = Utc::now();
        let confirmed = now - Duration::hours(3);
        let keeper = planning_keeper(KeeperState {
            id: Some("vanished".into()),
            confirmed_at: Some(confirmed),
            expires_at: Some(now + Duration::days(4)),
            ..KeeperState::default()
        });
        let ours = "https://desk.example/api/v1/webhooks/phone_calls_webhooks/ringcentral";
        let plan = keeper.plan(Vec::new(), ours, now, false);
        assert!(plan.keep.is_none() && plan.delete.is_empty());
        assert_eq!(
            plan.gap_since,
            Some(confirmed),
            "missed since it was last seen"
        );
    }

    #[test]
    fn an_install_remembers_the_addresses_it_delivered_to() {
        let mut state = KeeperState::default();
        for n in 0..40 {
            state.moved_to(&format!("https://{n}.ngrok.app/hook"));
        }
        state.moved_to("https://39.ngrok.app/hook");
        assert!(state.used("https://39.ngrok.app/hook"));
        assert!(state.used("https://38.ngrok.app/hook"));
        assert!(state.used("https://7.ngrok.app/hook"));
        assert!(
            !state.used("https://6.ngrok.app/hook"),
            "only the newest are kept"
        );
        assert!(!state.used("https://other-desk.ngrok.app/hook"));
        assert_eq!(state.past_addresses.len(), PAST_ADDRESSES);
        // Going back to an earlier address does not list it twice.
        state.moved_to("https://20.ngrok.app/hook");
        assert_eq!(
            state
                .past_addresses
                .iter()
                .filter(|a| a.contains("/20."))
                .count(),
            0
        );
        assert!(state.used("https://39.ngrok.app/hook"));
    }
    use super::*;

    #[test]
    fn filters_compare_whatever_ids_were_substituted() {
        let wanted = vec![
            "/restapi/v1.0/account/~/telephony/sessions".to_string(),
            "/restapi/v1.0/account/~/extension/~/voicemail".to_string(),
            reminder_filter(604_800),
        ];
        let have = vec![
            "/restapi/v1.0/account/809646016/telephony/sessions".to_string(),
            "/restapi/v1.0/account/809646016/extension/62264425016/voicemail".to_string(),
            "/restapi/v1.0/subscription/~?threshold=86400&interval=3600".to_string(),
        ];
        assert!(filters_match(&wanted, &have));
        assert!(!filters_match(&wanted, &have[..2]));
    }

    #[test]
    fn reminder_parameters_respect_ringcentral_rules() {
        assert_eq!(
            reminder_filter(604_800),
            "/restapi/v1.0/subscription/~?threshold=86400&interval=3600"
        );
        assert_eq!(
            reminder_filter(3_600),
            "/restapi/v1.0/subscription/~?threshold=1800&interval=900"
        );
    }
}
