//! What the engine reports about itself: receiver counters, storage problems and the state of
//! each background part. `/healthz`, the CLI and the UI read snapshots of it; it never holds
//! a secret.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use ts_rs::TS;

use callpop_core::model::Provider;
use callpop_core::routes::webhook_url;

/// How a storage error put up by a writer restart begins.
const WRITER_STOPPED: &str = "the history's writer stopped";

/// Counters and states, shared by the parts of one engine.
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<Snapshot>,
    /// The last [`StorageTicket`] handed out.
    tickets: AtomicU64,
    /// The ticket of the write whose outcome the storage error reflects (changed under
    /// `inner`'s lock).
    judged: AtomicU64,
    /// RingCentral's word that it cannot reach the public URL (its handshake failed), while
    /// that lasts: the URL part is then shown as not working whatever its own state.
    unreachable: Mutex<Option<String>>,
}

/// Taken just before a write to the history is submitted. Writes finish out of order (a reply
/// can be slower than a later failure), so an outcome counts only if no write submitted after
/// it has been judged already: the health page then shows the state of the most recent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StorageTicket(u64);

/// Per-provider receiver counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, TS)]
pub struct ProviderCounters {
    /// Deliveries stored for the first time.
    pub accepted: u64,
    /// Re-deliveries acknowledged without change.
    pub duplicates: u64,
    /// Rejected for a missing or wrong token.
    pub unauthorized: u64,
    /// Rejected as malformed (4xx other than 401).
    pub rejected: u64,
    /// Authenticated but unusable bodies kept in quarantine.
    pub quarantined: u64,
    /// RingCentral validation handshakes answered.
    pub handshakes: u64,
    /// When the last delivery was stored.
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// Deliveries that looked like this provider's (its route with a token header, or its
    /// body shape) refused for a token that does not match: each is a customer call lost.
    /// Scanners without a token count under `unauthorized` only.
    pub wrong_token: u64,
    /// When the last of those was refused.
    pub last_wrong_token_at: Option<DateTime<Utc>>,
    /// Whether deliveries must carry the configured token.
    pub token_required: bool,
}

/// The background parts the health board follows. Declared in the order of their names:
/// `/healthz`, `callpop status` and the tray list parts in this order, as they did when the
/// names were strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Filling gaps from the RingCentral call log.
    Backfill,
    /// Where typed-in credentials are kept.
    Credentials,
    /// Desktop notifications (popups).
    Notifications,
    /// The RingCentral webhook subscription.
    Subscription,
    /// The public URL (ngrok, provided, or none).
    Tunnel,
    /// RingCentral's WebSocket (events without a public URL).
    Websocket,
    /// A hub's desk API (serving desks on the LAN).
    Hub,
    /// A desk's link to its hub.
    HubLink,
}

impl Part {
    /// The name `/healthz`, the CLI and the window use.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Subscription => "subscription",
            Part::Tunnel => "tunnel",
            Part::Notifications => "notifications",
            Part::Backfill => "backfill",
            Part::Credentials => "credentials",
            Part::Websocket => "websocket",
            Part::Hub => "hub",
            Part::HubLink => "hub_link",
        }
    }
}

/// A background part's state. Each part uses a few of these; only [`PartState::Error`] makes
/// the engine "degraded".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// Working: the subscription is active.
    Active,
    /// Working: the tunnel (or the provided URL) is online.
    Online,
    /// Working: popups are on.
    On,
    /// Working: the last backfill went through.
    Ok,
    /// Turned off, by choice or for lack of settings.
    Off,
    /// Popups paused by the person at the desk.
    Paused,
    /// Being checked, renewed or re-created.
    Renewing,
    /// Waiting for something else first (a public URL).
    Waiting,
    /// Being fetched.
    Pending,
    /// Opening the tunnel.
    Connecting,
    /// The tunnel dropped and is being opened again.
    Reconnecting,
    /// Credentials are in the OS keyring.
    Keyring,
    /// Credentials are in the private file, as configured.
    File,
    /// Credentials are in the private file because no keyring answered.
    Fallback,
    /// Needs attention: the detail says why.
    Error,
}

impl PartState {
    /// The name `/healthz`, the CLI and the window use.
    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Active => "active",
            PartState::Online => "online",
            PartState::On => "on",
            PartState::Ok => "ok",
            PartState::Off => "off",
            PartState::Paused => "paused",
            PartState::Renewing => "renewing",
            PartState::Waiting => "waiting",
            PartState::Pending => "pending",
            PartState::Connecting => "connecting",
            PartState::Reconnecting => "reconnecting",
            PartState::Keyring => "keyring",
            PartState::File => "file",
            PartState::Fallback => "fallback",
            PartState::Error => "error",
        }
    }
}

/// The engine as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything works.
    #[default]
    Ok,
    /// A part needs attention; calls are still stored.
    Degraded,
    /// No call can reach this desk: no source that can deliver is set up, or the phone system
    /// sends with a token that does not match ([`Snapshot::attention`] says which).
    NotReceiving,
    /// Deliveries cannot be stored.
    Error,
}

impl Status {
    /// The name `/healthz`, the CLI and the window use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::NotReceiving => "not_receiving",
            Status::Error => "error",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(Part, PartState, Status);

/// A background part's state, with the reason people need to act on it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
pub struct PartStatus {
    /// Short machine-readable state (`active`, `off`, `error`, …).
    #[ts(type = "string")]
    pub state: PartState,
    /// One sentence for people.
    pub detail: String,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    /// The Settings section whose fields fix this part (`ringcentral`, `tunnel`), when
    /// retrying cannot: refused credentials are fixed by typing new ones, not by re-creating
    /// the subscription.
    pub fix: Option<String>,
}

/// What most needs doing, for people: one sentence, and the Settings section that fixes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
pub struct Attention {
    /// The first missing piece, in plain language.
    pub text: String,
    /// The Settings section to open (`tunnel`, `ringcentral`, `ringotel`), when a setting
    /// fixes it.
    pub fix: Option<String>,
}

/// A point-in-time copy of the engine's health.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, TS)]
#[ts(rename = "HealthView")]
pub struct Snapshot {
    /// `ok`, `degraded` (a part needs attention), `not_receiving` (no call can reach this
    /// desk) or `error` (deliveries cannot be stored).
    #[ts(type = "\"ok\" | \"degraded\" | \"not_receiving\" | \"error\"")]
    pub status: Status,
    /// Why the status is not `ok` when one thing explains it, with where to fix it.
    pub attention: Option<Attention>,
    /// CallPop version.
    pub version: String,
    /// When the engine started.
    pub started_at: Option<DateTime<Utc>>,
    /// Where the local receiver listens.
    #[ts(type = "string | null")]
    pub listen: Option<SocketAddr>,
    /// The public base URL (tunnel or provided), when there is one.
    pub public_url: Option<String>,
    /// Where RingCentral must send webhooks (public URL + path).
    pub ringcentral_webhook_url: Option<String>,
    /// Where Ringotel must send webhooks — paste it into the Ringotel portal.
    pub ringotel_webhook_url: Option<String>,
    /// RingCentral receiver counters.
    pub ringcentral: ProviderCounters,
    /// Ringotel receiver counters.
    pub ringotel: ProviderCounters,
    /// How RingCentral sends calls now: `websocket` or `webhook` (none without RingCentral
    /// credentials).
    pub ringcentral_transport: Option<String>,
    /// The last storage failure, while it lasts (`unwritable: disk full (…)`).
    pub storage_error: Option<String>,
    /// When deliveries started failing to be stored (kept while the failure lasts).
    pub storage_error_since: Option<DateTime<Utc>>,
    /// How often the history's writer died after a bug and was started again since CallPop
    /// started (0 normally): worth reporting even though calls are stored again.
    pub writer_restarts: u64,
    /// Why the writer last died, once it has.
    pub writer_last_failure: Option<String>,
    /// On a hub: its desks as it sees them now (empty elsewhere).
    pub desks: Vec<DeskView>,
    /// On a desk: its link to the hub (None elsewhere).
    pub hub_link: Option<HubLinkView>,
    /// Background parts by name (`subscription`, `tunnel`, `notifications`, …).
    #[ts(type = "{ [key in string]: PartStatus }")]
    pub parts: std::collections::BTreeMap<Part, PartStatus>,
}

/// A desk as its hub sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
pub struct DeskView {
    /// The desk's name.
    pub name: String,
    /// Whether its live stream is open.
    pub connected: bool,
    /// The address it connects from.
    pub address: Option<String>,
    /// Its CallPop version.
    pub version: Option<String>,
    /// When the hub last heard from it.
    pub last_seen: Option<DateTime<Utc>>,
    /// Changes on disk at the hub that it has not been sent yet.
    #[ts(type = "number | null")]
    pub lag: Option<i64>,
}

/// A desk's link to its hub.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
pub struct HubLinkView {
    /// The hub's name.
    pub hub_name: String,
    /// Where the desk reaches it.
    pub address: String,
    /// `connecting`, `connected`, `reconnecting`, `identity_changed`, `removed` or
    /// `update_needed`.
    pub state: String,
    /// Since when it is in that state.
    pub since: DateTime<Utc>,
    /// What went wrong, in plain words, when not connected.
    pub problem: Option<String>,
    /// Whether the hub itself is receiving calls (None until it said).
    pub hub_receiving: Option<bool>,
    /// The hub's own one-line status.
    pub hub_headline: Option<String>,
}

impl Health {
    /// Records a desk's link to its hub (the `since` of an unchanged state is kept).
    pub fn set_hub_link(&self, mut link: HubLinkView) {
        let mut s = self.lock();
        if let Some(old) = &s.hub_link {
            if old.state == link.state {
                link.since = old.since;
            }
        }
        s.hub_link = Some(link);
    }

    /// Records what a hub sees of its desks.
    pub fn set_desks(&self, desks: Vec<DeskView>) {
        self.lock().desks = desks;
    }

    /// A fresh board for an engine starting now.
    pub fn new() -> Arc<Health> {
        let health = Health::default();
        {
            let mut s = health.lock();
            s.version = env!("CARGO_PKG_VERSION").to_string();
            s.started_at = Some(Utc::now());
        }
        Arc::new(health)
    }

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // A panic while holding this lock cannot leave counters inconsistent in a harmful way.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a change to one provider's counters.
    pub fn provider(&self, provider: Provider, f: impl FnOnce(&mut ProviderCounters)) {
        let mut s = self.lock();
        match provider {
            Provider::RingCentral => f(&mut s.ringcentral),
            Provider::Ringotel => f(&mut s.ringotel),
        }
    }

    /// Records how RingCentral sends calls now (`websocket`, `webhook`).
    pub fn set_ringcentral_transport(&self, transport: Option<&str>) {
        self.lock().ringcentral_transport = transport.map(str::to_string);
    }

    /// Records where the receiver listens.
    pub fn set_listen(&self, addr: SocketAddr) {
        self.lock().listen = Some(addr);
    }

    /// Records the public base URL (None while there is none).
    pub fn set_public_url(&self, url: Option<String>) {
        let mut s = self.lock();
        let address = |provider| url.as_deref().map(|u| webhook_url(u, provider));
        s.ringcentral_webhook_url = address(Provider::RingCentral);
        s.ringotel_webhook_url = address(Provider::Ringotel);
        s.public_url = url;
    }

    /// Records the writer's restarts: while one is under way the history cannot be written
    /// (deliveries get 503), after it the count and the cause stay on the health page.
    pub fn writer_restarted(&self, count: u64, failure: Option<String>, restarting: bool) {
        let ticket = self.storage_ticket();
        {
            let mut s = self.lock();
            s.writer_restarts = count;
            s.writer_last_failure = failure.clone();
        }
        if restarting {
            let why = failure.unwrap_or_else(|| "it stopped".into());
            self.storage_failed(
                ticket,
                format!("{WRITER_STOPPED} ({why}) and is being restarted"),
            );
        } else if self
            .lock()
            .storage_error
            .as_deref()
            .is_some_and(|e| e.starts_with(WRITER_STOPPED))
        {
            // Only the error the restart put up: a full disk stays reported until a write
            // goes through.
            self.storage_succeeded(ticket);
        }
    }

    /// Whether the last write to the history failed.
    pub fn storage_failing(&self) -> bool {
        self.lock().storage_error.is_some()
    }

    /// A ticket for a write about to be submitted.
    pub fn storage_ticket(&self) -> StorageTicket {
        StorageTicket(self.tickets.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// The write submitted with `ticket` failed.
    pub fn storage_failed(&self, ticket: StorageTicket, error: String) {
        self.judge(ticket, Some(error));
    }

    /// The write submitted with `ticket` went through: the history takes writes.
    pub fn storage_succeeded(&self, ticket: StorageTicket) {
        self.judge(ticket, None);
    }

    /// Records an outcome unless a later-submitted write's outcome is already recorded.
    fn judge(&self, ticket: StorageTicket, error: Option<String>) {
        let mut s = self.lock();
        if ticket.0 < self.judged.load(Ordering::SeqCst) {
            return;
        }
        self.judged.store(ticket.0, Ordering::SeqCst);
        Health::set_storage_error(&mut s, error);
    }

    /// Records (or clears, with `None`) a storage failure; the time it started stays put
    /// while failures go on, so the health page can say for how long nothing was stored.
    fn set_storage_error(s: &mut Snapshot, error: Option<String>) {
        s.storage_error_since = match (&error, s.storage_error_since) {
            (None, _) => None,
            (Some(_), Some(since)) => Some(since),
            (Some(_), None) => Some(Utc::now()),
        };
        s.storage_error = error;
    }

    /// Sets a background part's state; the time only moves when the state changes.
    pub fn set_part(&self, part: Part, state: PartState, detail: impl Into<String>) {
        self.set_part_fixed_in(part, state, detail, None);
    }

    /// Sets a background part's state together with the Settings section that fixes it.
    pub fn set_part_fixed_in(
        &self,
        part: Part,
        state: PartState,
        detail: impl Into<String>,
        fix: Option<&str>,
    ) {
        let detail = detail.into();
        let mut s = self.lock();
        let since = match s.parts.get(&part) {
            Some(old) if old.state == state => old.since,
            _ => Utc::now(),
        };
        s.parts.insert(
            part,
            PartStatus {
                state,
                detail,
                since,
                fix: fix.map(str::to_string),
            },
        );
    }

    /// Records whether RingCentral can reach the public URL: `Some(why)` after its handshake
    /// to the URL failed, `None` once a subscription to it is active. A URL typed into
    /// Settings is "online" as soon as it is set; only RingCentral can say it leads nowhere.
    pub fn set_public_url_unreachable(&self, why: Option<String>) {
        *self.unreachable.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// A copy of everything, with the overall status worked out.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.lock().clone();
        let unreachable = self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(why) = unreachable {
            if let Some(tunnel) = s.parts.get_mut(&Part::Tunnel) {
                if tunnel.state == PartState::Online {
                    tunnel.state = PartState::Error;
                    tunnel.detail = why;
                    tunnel.fix = Some("tunnel".into());
                }
            }
        }
        let not_receiving = not_receiving(&s);
        (s.status, s.attention) = if let Some(e) = &s.storage_error {
            let text = format!("Calls cannot be saved: {e}");
            (Status::Error, Some(Attention { text, fix: None }))
        } else if let Some(why) = not_receiving {
            (Status::NotReceiving, Some(why))
        } else if s.parts.values().any(|p| p.state == PartState::Error) {
            (Status::Degraded, None)
        } else {
            (Status::Ok, None)
        };
        s
    }
}

/// Why no call can reach this desk, if none can: the phone system sends with a token that
/// does not match (and nothing was accepted since), or no source that could deliver is set
/// up. A delivery accepted in this run shows that one can (a LAN sender, a reverse proxy).
fn not_receiving(s: &Snapshot) -> Option<Attention> {
    // A desk receives calls through its hub, and only while the hub itself receives them.
    if let Some(link) = &s.hub_link {
        let text = match (link.state.as_str(), link.hub_receiving) {
            ("connected", Some(false)) => format!(
                "The hub \"{}\" is not receiving calls: {}",
                link.hub_name,
                link.hub_headline
                    .as_deref()
                    .unwrap_or("see its Health page")
            ),
            ("connected", _) => return None,
            ("connecting", _) => format!(
                "Connecting to the hub \"{}\" at {}…",
                link.hub_name, link.address
            ),
            _ => link
                .problem
                .clone()
                .unwrap_or_else(|| format!("Not connected to the hub \"{}\"", link.hub_name)),
        };
        return Some(Attention { text, fix: None });
    }
    for (name, c, fix) in [
        ("RingCentral", &s.ringcentral, "ringcentral"),
        ("Ringotel", &s.ringotel, "ringotel"),
    ] {
        let refused_since_last_call = c
            .last_wrong_token_at
            .is_some_and(|refused| c.last_accepted_at.is_none_or(|ok| ok < refused));
        if refused_since_last_call {
            let what = if fix == "ringotel" {
                "Copy the API token from Settings into the Ringotel portal"
            } else {
                "Check the RingCentral settings: the subscription is re-created with this desk's token"
            };
            return Some(Attention {
                text: format!(
                    "{name} is sending calls with a token that does not match this desk's, so \
                     they are refused and lost. {what}."
                ),
                fix: Some(fix.to_string()),
            });
        }
    }
    let delivered =
        s.ringcentral.last_accepted_at.is_some() || s.ringotel.last_accepted_at.is_some();
    // A webhook subscription or the WebSocket: either way RingCentral is sending.
    let subscribed = [Part::Subscription, Part::Websocket].iter().any(|part| {
        s.parts
            .get(part)
            .is_some_and(|p| p.state == PartState::Active)
    });
    if delivered || subscribed {
        return None;
    }
    // RingCentral over the WebSocket needs no public address: while it connects nothing can
    // be concluded, and when it cannot, its own reason is the one to fix.
    match s.parts.get(&Part::Websocket) {
        Some(ws) if ws.state == PartState::Error => {
            return Some(Attention {
                text: format!(
                    "RingCentral cannot send calls to this computer: {}",
                    ws.detail
                ),
                fix: ws.fix.clone(),
            });
        }
        Some(ws) if ws.state != PartState::Off => return None,
        _ => {}
    }
    match s.parts.get(&Part::Tunnel).map(|p| p.state) {
        // No tunnel part yet: the engine is still starting, nothing to conclude.
        Some(PartState::Off) => Some(Attention {
            text: "This computer has no public address, so RingCentral and Ringotel cannot \
                   reach it. Set up ngrok or a public URL."
                .into(),
            fix: Some("tunnel".into()),
        }),
        Some(PartState::Error) => Some(Attention {
            text: format!(
                "The public address is not working, so no call can reach this computer: {}",
                s.parts
                    .get(&Part::Tunnel)
                    .map(|p| p.detail.as_str())
                    .unwrap_or_default()
            ),
            fix: Some("tunnel".into()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_failure_keeps_its_start_until_it_clears() {
        let health = Health::new();
        assert_eq!(health.snapshot().status, Status::Ok);
        health.storage_failed(health.storage_ticket(), "unwritable: disk full".into());
        let first = health.snapshot();
        assert_eq!(first.status, Status::Error);
        let since = first.storage_error_since.expect("a start time");
        std::thread::sleep(std::time::Duration::from_millis(5));
        health.storage_failed(health.storage_ticket(), "unwritable: read-only".into());
        let second = health.snapshot();
        assert_eq!(
            second.storage_error.as_deref(),
            Some("unwritable: read-only")
        );
        assert_eq!(
            second.storage_error_since,
            Some(since),
            "still the same outage"
        );
        health.storage_succeeded(health.storage_ticket());
        let cleared = health.snapshot();
        assert_eq!(cleared.status, Status::Ok);
        assert_eq!(
            (cleared.storage_error, cleared.storage_error_since),
            (None, None)
        );
    }

    /// Issue 26: "Not receiving calls" whenever no source can deliver, and when the phone
    /// system sends with a token that does not match; internet noise only counts.
    #[test]
    fn a_desk_no_call_can_reach_is_not_receiving_and_says_why() {
        let health = Health::new();
        health.set_part(Part::Tunnel, PartState::Off, "no tunnel");
        let fresh = health.snapshot();
        assert_eq!(fresh.status, Status::NotReceiving);
        let why = fresh.attention.expect("a reason");
        assert!(why.text.contains("no public address"), "{}", why.text);
        assert_eq!(why.fix.as_deref(), Some("tunnel"));

        // An active subscription can deliver (RingCentral's own address for it works).
        health.set_part(Part::Subscription, PartState::Active, "active");
        assert_eq!(health.snapshot().status, Status::Ok);
        health.set_part(Part::Subscription, PartState::Off, "off");
        // So does a delivery that was accepted (a LAN sender, a reverse proxy).
        health.provider(Provider::Ringotel, |c| {
            c.last_accepted_at = Some(Utc::now())
        });
        assert_eq!(health.snapshot().status, Status::Ok);

        // Scanners without a token only count.
        health.provider(Provider::Ringotel, |c| c.unauthorized += 5);
        assert_eq!(health.snapshot().status, Status::Ok);
        // The phone system itself with another token: every call is lost until it is fixed.
        std::thread::sleep(std::time::Duration::from_millis(2));
        health.provider(Provider::Ringotel, |c| {
            c.wrong_token += 1;
            c.last_wrong_token_at = Some(Utc::now());
        });
        let refused = health.snapshot();
        assert_eq!(refused.status, Status::NotReceiving);
        let why = refused.attention.expect("a reason");
        assert!(
            why.text
                .starts_with("Ringotel is sending calls with a token"),
            "{}",
            why.text
        );
        assert_eq!(why.fix.as_deref(), Some("ringotel"));
        // Fixed in the portal: the next call is accepted, and the desk is fine again.
        std::thread::sleep(std::time::Duration::from_millis(2));
        health.provider(Provider::Ringotel, |c| {
            c.last_accepted_at = Some(Utc::now())
        });
        assert_eq!(health.snapshot().status, Status::Ok);
    }

    #[test]
    fn parts_are_listed_by_name_with_the_names_and_states_people_read() {
        let health = Health::new();
        for (part, state) in [
            (Part::Tunnel, PartState::Online),
            (Part::Subscription, PartState::Active),
            (Part::Notifications, PartState::Paused),
            (Part::Credentials, PartState::Fallback),
            (Part::Backfill, PartState::Error),
        ] {
            health.set_part(part, state, "detail");
        }
        let json = serde_json::to_value(health.snapshot()).expect("json");
        let parts = json["parts"].as_object().expect("parts");
        let names: Vec<&str> = parts.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "backfill",
                "credentials",
                "notifications",
                "subscription",
                "tunnel"
            ]
        );
        assert_eq!(parts["notifications"]["state"], "paused");
        assert_eq!(parts["credentials"]["state"], "fallback");
        assert_eq!(json["status"], "degraded", "a part in error degrades");
        for part in [
            Part::Backfill,
            Part::Credentials,
            Part::Notifications,
            Part::Subscription,
            Part::Tunnel,
        ] {
            assert_eq!(serde_json::to_value(part).expect("json"), part.as_str());
        }
    }

    #[test]
    fn an_outcome_older_than_the_last_one_judged_changes_nothing() {
        let health = Health::new();
        let (early, late) = (health.storage_ticket(), health.storage_ticket());
        health.storage_failed(late, "unwritable: disk full".into());
        health.storage_succeeded(early);
        assert!(
            health.storage_failing(),
            "a write submitted before the failure does not clear it"
        );
        let (before_fix, after_fix) = (health.storage_ticket(), health.storage_ticket());
        health.storage_succeeded(after_fix);
        assert!(!health.storage_failing());
        health.storage_failed(before_fix, "unwritable: disk full".into());
        assert!(
            !health.storage_failing(),
            "a failure submitted before a later success does not set it again"
        );
        health.storage_failed(health.storage_ticket(), "unwritable: disk full".into());
        assert!(health.storage_failing(), "a new failure does");
    }
}
