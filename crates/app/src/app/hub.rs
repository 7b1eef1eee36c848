//! The window's Hub tab: this CallPop's role, a hub's desks and pairing codes, finding and
//! joining a hub, leaving it. Hub mode itself is the engine's (`callpop_engine::hub` and
//! `desk`); this turns it into what the window shows and asks for.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{App, State};
use crate::error::AppError;
use callpop_engine::desk::{join, DeskState};
use callpop_engine::health::HubLinkView;

/// What the Hub tab shows.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct HubPanel {
    /// `standalone`, `hub` or `desk`.
    pub role: String,
    /// On a hub: its own name; on a desk: its hub's.
    pub hub_name: Option<String>,
    /// On a hub: the address desks join with; on a desk: where it reaches its hub.
    pub address: Option<String>,
    /// The hub's identity as people compare it (`4791-58D8-F767-8105`).
    pub identity: Option<String>,
    /// On a desk: its name at the hub.
    pub desk_name: Option<String>,
    /// On a desk: its link to the hub.
    pub link: Option<HubLinkView>,
    /// On a hub: its desks, paired first, removed last.
    pub desks: Vec<DeskRow>,
    /// Why the hub is not serving desks, when it should be.
    pub problem: Option<String>,
}

/// One desk of a hub.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct DeskRow {
    /// Its name.
    pub name: String,
    /// Its live stream is open.
    pub connected: bool,
    /// Where it connects from.
    pub address: Option<String>,
    /// Its CallPop version.
    pub version: Option<String>,
    /// When the hub last heard from it (RFC 3339).
    pub last_seen: Option<String>,
    /// It was removed from the hub.
    pub removed: bool,
}

/// A pairing code to type on the new desk.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct PairingCode {
    /// The code, `K7M2Q-9XH4P`.
    pub code: String,
    /// The address to type with it.
    pub address: String,
    /// Every address the hub can be reached at.
    pub addresses: Vec<String>,
    /// The hub's identity, for comparing on the desk.
    pub identity: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// A hub found on the network.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
pub struct FoundHubRow {
    /// Its name.
    pub name: String,
    /// The address to join it at.
    pub address: String,
    /// Its identity as people compare it.
    pub identity: String,
}

/// What "Join a hub" sends.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct JoinRequest {
    /// The hub's address (`host` or `host:port`).
    pub address: String,
    /// The pairing code shown on the hub.
    pub code: String,
    /// This desk's name at the hub.
    pub name: String,
}

impl App {
    /// The Hub tab.
    pub async fn get_hub(&self) -> Result<HubPanel, AppError> {
        let config = self.config().await?;
        let health = self.get_health().await;
        let stopped = match &*self.state.lock().await {
            State::Stopped(s) => Some(s.reason.clone()),
            State::Running(_) => None,
        };
        let dir = config.data_dir.clone();
        if let Some(desk) = blocking(move || DeskState::load(&dir).map_err(hub_error)).await? {
            return Ok(HubPanel {
                role: "desk".into(),
                identity: desk.fingerprint().map(|f| f.short()),
                hub_name: Some(desk.hub_name),
                address: Some(desk.hub_address),
                desk_name: Some(desk.desk_name),
                link: health.hub_link,
                desks: Vec::new(),
                problem: stopped,
            });
        }
        if !config.hub.enabled {
            return Ok(HubPanel {
                role: "standalone".into(),
                hub_name: None,
                address: None,
                identity: None,
                desk_name: None,
                link: None,
                desks: Vec::new(),
                problem: None,
            });
        }
        let live = health.desks;
        let problem = health
            .parts
            .get(&callpop_engine::health::Part::Hub)
            .filter(|p| p.state == callpop_engine::health::PartState::Error)
            .map(|p| p.detail.clone())
            .or(stopped);
        let identity = match &*self.state.lock().await {
            State::Running(r) => r.hub_identity.clone(),
            State::Stopped(_) => None,
        };
        // Without the history (the engine stopped) the desks are unknown; the page still shows.
        let records = self
            .read(|store| store.hub_desks().map_err(hub_error))
            .await
            .unwrap_or_default();
        let mut desks: Vec<DeskRow> = records
            .into_iter()
            .map(|d| {
                let now = live.iter().find(|l| l.name == d.name);
                DeskRow {
                    connected: now.is_some_and(|l| l.connected) && d.revoked_at.is_none(),
                    address: now.and_then(|l| l.address.clone()).or(d.address),
                    version: now.and_then(|l| l.version.clone()).or(d.version),
                    last_seen: now
                        .and_then(|l| l.last_seen)
                        .or(d.last_seen)
                        .map(|t| t.to_rfc3339()),
                    removed: d.revoked_at.is_some(),
                    name: d.name,
                }
            })
            .collect();
        desks.sort_by_key(|d| d.removed);
        Ok(HubPanel {
            role: "hub".into(),
            hub_name: Some(config.hub.name.clone()),
            address: callpop_engine::hub::codes::hub_addresses(&config)
                .first()
                .map(|a| a.to_string()),
            identity,
            desk_name: None,
            link: None,
            desks,
            problem,
        })
    }

    /// "Add a desk": a one-time code for the new desk (ten minutes, one desk).
    pub async fn hub_add_desk(&self, name: Option<String>) -> Result<PairingCode, AppError> {
        let config = self.config().await?;
        if !config.hub.enabled {
            return Err(AppError::Hub(
                "this CallPop is not the dealership's hub: make it the hub first".into(),
            ));
        }
        let issued = blocking(move || {
            callpop_engine::hub::codes::issue(&config, name.as_deref()).map_err(hub_error)
        })
        .await?;
        let addresses: Vec<String> = issued.addresses.iter().map(|a| a.to_string()).collect();
        Ok(PairingCode {
            code: issued.code,
            address: addresses.first().cloned().unwrap_or_default(),
            addresses,
            identity: issued.fingerprint.short(),
            expires_at: issued.expires_at.to_rfc3339(),
        })
    }

    /// Removes a desk from the hub at once.
    pub async fn hub_remove_desk(&self, name: String) -> Result<HubPanel, AppError> {
        let config = self.config().await?;
        let db = config.db_path();
        let country = config.default_country;
        let removed = blocking(move || {
            let mut store =
                callpop_store::Store::open_existing(&db, callpop_store::StoreOptions::new(country))
                    .map_err(hub_error)?;
            store
                .hub_revoke(&name, chrono::Utc::now())
                .map_err(hub_error)
        })
        .await?;
        if !removed {
            return Err(AppError::Hub(
                "that desk is not paired with this hub".into(),
            ));
        }
        self.get_hub().await
    }

    /// Hubs that answer on the network (a few seconds of listening).
    pub async fn find_hubs(&self) -> Result<Vec<FoundHubRow>, AppError> {
        let found = blocking(|| {
            callpop_engine::desk::discover::discover(std::time::Duration::from_secs(3))
                .map_err(hub_error)
        })
        .await?;
        Ok(found
            .into_iter()
            .filter_map(|h| {
                Some(FoundHubRow {
                    address: h.addresses.first()?.to_string(),
                    name: h.name,
                    identity: h.fingerprint_short,
                })
            })
            .collect())
    }

    /// "Join a hub": pairs with the code, then runs as the hub's desk.
    pub async fn join_hub(&self, request: JoinRequest) -> Result<HubPanel, AppError> {
        let _changing = self.role_change.lock().await;
        let config = self.config().await?;
        if config.hub.enabled {
            return Err(AppError::Hub(
                "this PC is the dealership's hub: stop being the hub before joining another".into(),
            ));
        }
        if DeskState::load(&config.data_dir)
            .map_err(hub_error)?
            .is_some()
        {
            return Err(AppError::Hub(
                "this desk already belongs to a hub: leave it first".into(),
            ));
        }
        let name = request.name.trim().to_string();
        let joined = join::pair(&request.address, &request.code, &name)
            .await
            .map_err(hub_error)?;
        tracing::info!(
            target: "callpop::security",
            hub = %joined.state.hub_name,
            address = %joined.state.hub_address,
            desk = %joined.state.desk_name,
            "this CallPop joined a hub from the window: its calls now come from there"
        );
        let saving = config.clone();
        blocking(move || join::save(&saving, &joined).map_err(hub_error)).await?;
        // A desk hears calls from its hub only: its own webhook subscription goes now, as
        // `callpop desk join` does (RingCentral would otherwise post to a dead address until it
        // expires).
        self.remove_own_subscription(&config).await;
        self.restart().await;
        self.get_hub().await
    }

    /// Leaves the hub: standalone again, keeping the calls copied so far.
    pub async fn leave_hub(&self) -> Result<HubPanel, AppError> {
        let _changing = self.role_change.lock().await;
        let config = self.config().await?;
        let Some(desk) = DeskState::load(&config.data_dir).map_err(hub_error)? else {
            return Err(AppError::Hub("this desk does not belong to a hub".into()));
        };
        tracing::info!(target: "callpop::security", hub = %desk.hub_name, "this desk left its hub from the window");
        let left = join::leave(&config).await;
        // Whatever the hub said, the engine restarts with what is on disk now.
        self.restart().await;
        let untold = left.map_err(hub_error)?;
        let mut panel = self.get_hub().await?;
        if let Some(problem) = untold {
            tracing::warn!(error = %problem, "the hub could not be told this desk left");
            panel.problem = Some(format!(
                "The hub “{}” could not be told ({problem}): remove “{}” there (Hub, Desks, Remove).",
                desk.hub_name, desk.desk_name
            ));
        }
        Ok(panel)
    }

    /// Makes this CallPop the dealership's hub (or stops serving desks): saved in the config
    /// file, the engine restarted.
    pub async fn set_hub(&self, on: bool) -> Result<HubPanel, AppError> {
        let _changing = self.role_change.lock().await;
        let config = self.config().await?;
        if on
            && DeskState::load(&config.data_dir)
                .map_err(hub_error)?
                .is_some()
        {
            return Err(AppError::Hub(
                "a desk of a hub cannot be a hub: leave the hub first".into(),
            ));
        }
        let file = self.config_file(&config);
        blocking(move || crate::settings::save_hub_enabled(&file, on).map_err(AppError::from))
            .await?;
        tracing::info!(
            target: "callpop::security",
            on,
            "the hub role was changed from the window (a LAN listener for desks opens or closes)"
        );
        self.restart().await;
        self.get_hub().await
    }
}

impl App {
    /// A call copied from the hub has its deliveries at the hub: they are read from there for
    /// the detail view; when the hub is out of reach the row is shown with a note.
    pub(super) async fn with_hub_deliveries(
        &self,
        id: i64,
        mut detail: crate::window::CallDetail,
    ) -> Result<crate::window::CallDetail, AppError> {
        let config = self.config().await?;
        // Anything unreadable here leaves the call as the desk has it: never an error.
        let Ok(Some(desk)) = DeskState::load(&config.data_dir) else {
            return Ok(detail);
        };
        let (Ok(Some(token)), Some(fingerprint)) = (join::token(&config), desk.fingerprint())
        else {
            return Ok(detail);
        };
        let away = format!(
            "The timeline of this call is kept at the hub “{}”, which cannot be reached now.",
            desk.hub_name
        );
        // Not connected: say so at once rather than wait for a connection that fails.
        let connected = self
            .get_health()
            .await
            .hub_link
            .is_some_and(|l| l.state == "connected");
        if !connected {
            detail.remote_note = Some(away);
            return Ok(detail);
        }
        let fetched = match callpop_engine::desk::client::HubClient::pinned(
            &desk.hub_address,
            fingerprint,
            token,
        ) {
            Ok(client) => tokio::time::timeout(
                std::time::Duration::from_secs(3),
                client.call_deliveries(detail.call.provider, &detail.call.call_key),
            )
            .await
            .ok()
            .and_then(Result::ok),
            Err(_) => None,
        };
        let Some(fetched) = fetched else {
            detail.remote_note = Some(away);
            return Ok(detail);
        };
        let raw: Vec<callpop_store::RawEventRecord> = fetched
            .deliveries
            .into_iter()
            .map(|d| callpop_store::RawEventRecord {
                id: d.id,
                provider: d.provider,
                dedup_key: d.dedup_key,
                kind: d.kind,
                received_at: d.received_at,
                event_time: d.event_time,
                body_sha256: d.body_sha256,
                headers: d.headers,
                body: d.body.into_bytes(),
                redeliveries: d.redeliveries,
                call_ids: Vec::new(),
            })
            .collect();
        self.read(move |store| {
            let record = store
                .call(id)
                .map_err(crate::window::WindowError::from)?
                .ok_or(crate::window::WindowError::NoSuchCall(id))?;
            Ok(crate::window::detail_of(
                &record,
                &raw,
                &config.default_country,
                &config.line_labels,
                config.popups.crm_url_template.as_deref(),
            ))
        })
        .await
    }
}

impl App {
    /// Deletes this install's RingCentral webhook subscription, when it has credentials; a
    /// failure is logged (the subscription then expires by itself).
    async fn remove_own_subscription(&self, config: &callpop_engine::config::Config) {
        let platform = match &*self.state.lock().await {
            State::Running(r) => r.platform.clone(),
            State::Stopped(_) => None,
        };
        let Some(platform) = platform else {
            return;
        };
        let reading = config.clone();
        let state = self
            .read(move |store| {
                Ok(store
                    .state_get(callpop_engine::subscriptions::STATE_KEY)
                    .ok()
                    .flatten()
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default())
            })
            .await
            .unwrap_or_default();
        let token = tokio::task::spawn_blocking(move || {
            callpop_engine::secrets::webhook_tokens(&reading)
                .ok()
                .and_then(|t| t.ringcentral)
        })
        .await
        .ok()
        .flatten();
        let mut keeper =
            callpop_engine::subscriptions::Keeper::for_install(config, platform, token, state);
        match tokio::time::timeout(std::time::Duration::from_secs(15), keeper.remove_ours()).await {
            Ok(Ok(ids)) if !ids.is_empty() => {
                tracing::info!(removed = ids.len(), "removed this desk's own RingCentral subscription");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove this desk's own RingCentral subscription; it expires by itself"),
            Err(_) => tracing::warn!("removing this desk's own RingCentral subscription took too long; it expires by itself"),
        }
    }
}

fn hub_error(e: impl std::fmt::Display) -> AppError {
    AppError::Hub(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await?
}

#[cfg(test)]
mod tests {
    use super::super::tests::{overrides, QUIET};
    use super::*;
    use callpop_engine::engine::EngineOptions;

    /// Polls `check` every 100 ms for up to 15 s.
    async fn eventually<F, Fut>(mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..150 {
            if check().await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_standalone_app_becomes_a_hub_another_joins_it_with_a_code_and_leaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["hub", "desk"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("a folder");
        }
        let hub_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let hub_config = format!("{QUIET}\n[hub]\nlisten = \"127.0.0.1:{hub_port}\"\n");
        let hub = App::start(
            overrides(&dir.path().join("hub"), &hub_config, "127.0.0.1:0"),
            EngineOptions::default(),
        )
        .await;
        assert_eq!(hub.get_hub().await.expect("panel").role, "standalone");
        assert!(
            hub.hub_add_desk(None).await.is_err(),
            "only a hub adds desks"
        );
        let panel = hub.set_hub(true).await.expect("become the hub");
        assert_eq!(panel.role, "hub");
        let identity = panel.identity.expect("an identity");
        assert_eq!(
            panel.address.as_deref(),
            Some(format!("127.0.0.1:{hub_port}").as_str())
        );
        let code = hub
            .hub_add_desk(Some("Sales".into()))
            .await
            .expect("a code");
        assert_eq!(code.identity, identity);

        let desk = App::start(
            overrides(&dir.path().join("desk"), QUIET, "127.0.0.1:0"),
            EngineOptions::default(),
        )
        .await;
        let wrong = desk
            .join_hub(JoinRequest {
                address: code.address.clone(),
                code: "ZZZZZ-ZZZZZ".into(),
                name: "Front".into(),
            })
            .await;
        assert!(
            wrong
                .as_ref()
                .is_err_and(|e| e.to_string().contains("no such pairing code")),
            "{wrong:?}"
        );
        let joined = desk
            .join_hub(JoinRequest {
                address: code.address.clone(),
                code: code.code.clone(),
                name: "Front".into(),
            })
            .await
            .expect("joined");
        assert_eq!(joined.role, "desk");
        assert_eq!(
            joined.desk_name.as_deref(),
            Some("Sales"),
            "the name given on the hub wins"
        );
        assert_eq!(joined.identity.as_deref(), Some(identity.as_str()));
        assert!(
            eventually(|| async {
                desk.get_hub()
                    .await
                    .ok()
                    .and_then(|p| p.link)
                    .is_some_and(|l| l.state == "connected")
            })
            .await
        );
        assert!(
            eventually(|| async {
                hub.get_hub()
                    .await
                    .is_ok_and(|p| p.desks.iter().any(|d| d.name == "Sales" && d.connected))
            })
            .await
        );
        // A call at the hub: the desk lists it, and its detail reads the deliveries from the
        // hub (the desk keeps rows only).
        let receiver = super::super::tests::listening(&hub).await;
        let token = hub
            .ringotel_token()
            .await
            .expect("token")
            .token
            .expect("a token");
        let body = serde_json::json!({"method": "StartCallActivity", "api_token": token, "params": {
            "call_id": "hub-detail-1", "extension": "201", "activity_type": "inbound",
            "caller_number": "14155550177", "called_number": "201", "caller_name": "Dana Whitfield",
            "call_start": chrono::Utc::now().timestamp_millis(), "domain": "demo"}});
        let posted = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let body = body.to_string();
            let mut c = std::net::TcpStream::connect(receiver).expect("connect");
            write!(
                c,
                "POST /api/v1/webhooks/phone_calls_webhooks/ringotel HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("write");
            let mut answer = String::new();
            let _ = c.read_to_string(&mut answer);
            answer
        })
        .await
        .expect("posted");
        assert!(posted.starts_with("HTTP/1.1 200"), "{posted}");
        let mut listed = None;
        for _ in 0..150 {
            let page = desk
                .list_calls(crate::window::CallQuery {
                    limit: 10,
                    ..Default::default()
                })
                .await
                .expect("calls");
            if let Some(c) = page
                .calls
                .into_iter()
                .find(|c| c.call_key == "hub-detail-1")
            {
                listed = Some(c.id);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let id = listed.expect("the hub's call reached the desk");
        let detail = desk.get_call(id).await.expect("detail");
        assert_eq!(detail.deliveries.len(), 1, "{detail:?}");
        assert!(!detail.timeline.is_empty());
        assert_eq!(detail.remote_note, None);
        let left = desk.leave_hub().await.expect("left");
        assert_eq!(left.role, "standalone");
        let panel = hub.hub_remove_desk("Sales".into()).await;
        assert!(panel.is_err(), "it already left: {panel:?}");
        desk.shutdown().await;
        hub.shutdown().await;
    }
}
