//! What the tray icon says: one of four states and a short status line per part. Linux trays
//! deliver no clicks and show no rich tooltips reliably, so everything worth knowing is a menu
//! line. Kept here, away from Tauri, so it is tested without a desktop.

use chrono::{DateTime, Local, Utc};

use callpop_engine::health::{Part, PartState, Snapshot, Status};
use callpop_engine::popups::PauseState;

/// The tray icon's state, in order of what the user most needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    /// Receiving, storing and (if configured) subscribed.
    Healthy,
    /// Working, but a part needs attention (tunnel, subscription, notifications, …).
    Degraded,
    /// Calls are not being received or stored.
    Offline,
    /// Working, popups paused by the user.
    Paused,
}

impl TrayState {
    /// The icon file in `icons/` for this state.
    pub fn icon_name(self) -> &'static str {
        match self {
            TrayState::Healthy => "tray-healthy.png",
            TrayState::Degraded => "tray-degraded.png",
            TrayState::Offline => "tray-offline.png",
            TrayState::Paused => "tray-paused.png",
        }
    }
}

/// Everything the tray shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayStatus {
    /// Which icon.
    pub state: TrayState,
    /// One line for the tooltip (where the tray shows one).
    pub tooltip: String,
    /// The receiver's line.
    pub receiver: String,
    /// The public URL / tunnel line.
    pub tunnel: String,
    /// The RingCentral subscription line.
    pub subscription: String,
    /// The popups line ("Popups on", "Popups paused until 14:05").
    pub popups: String,
}

/// Menu lines longer than this are cut: some trays draw menus as wide as their longest item.
const MAX_LINE: usize = 72;

fn cut(line: String) -> String {
    if line.chars().count() <= MAX_LINE {
        return line;
    }
    let mut short: String = line.chars().take(MAX_LINE - 1).collect();
    short.push('…');
    short
}

fn part_line(snapshot: &Snapshot, part: Part, label: &str, absent: &str) -> String {
    match snapshot.parts.get(&part) {
        Some(p) if p.detail.is_empty() => format!("{label}: {}", p.state),
        Some(p) => format!("{label}: {} — {}", p.state, p.detail),
        None => format!("{label}: {absent}"),
    }
}

/// The tray for this health board, pause state and engine start error, at `now`.
pub fn tray_status(
    snapshot: &Snapshot,
    engine_error: Option<&str>,
    pause: &PauseState,
    now: DateTime<Utc>,
) -> TrayStatus {
    let offline_reason = engine_error
        .map(str::to_string)
        .or_else(|| (snapshot.status == Status::Error).then(|| snapshot.storage_error.clone())?)
        .or_else(|| (snapshot.status == Status::Error).then(|| "cannot store calls".to_string()));
    // Listening, storing, and yet no call can reach the desk (no public address, or the phone
    // system uses another token): as offline as a stopped receiver, for the person at the desk.
    let not_receiving =
        (offline_reason.is_none() && snapshot.status == Status::NotReceiving).then(|| {
            snapshot.attention.as_ref().map_or_else(
                || "no call can reach this desk".to_string(),
                |a| a.text.clone(),
            )
        });
    let paused = pause.is_active(now);
    let attention: Vec<&str> = snapshot
        .parts
        .iter()
        .filter(|(_, p)| p.state == PartState::Error)
        .map(|(part, _)| part.as_str())
        .collect();
    let state = if offline_reason.is_some() || not_receiving.is_some() {
        TrayState::Offline
    } else if paused {
        TrayState::Paused
    } else if snapshot.status == Status::Degraded || !attention.is_empty() {
        TrayState::Degraded
    } else {
        TrayState::Healthy
    };
    let receiver = match (&offline_reason, snapshot.listen) {
        (Some(reason), _) => format!("Receiver: stopped — {reason}"),
        (None, Some(addr)) => format!("Receiver: listening on {addr}"),
        (None, None) => "Receiver: starting".to_string(),
    };
    let tunnel = match &snapshot.public_url {
        Some(url)
            if snapshot
                .parts
                .get(&Part::Tunnel)
                .is_none_or(|p| p.state != PartState::Error) =>
        {
            format!("Public URL: {url}")
        }
        _ => part_line(snapshot, Part::Tunnel, "Tunnel", "off (local only)"),
    };
    // The way RingCentral sends calls now; while the WebSocket is still connecting (before
    // anything is decided) its own state is the news.
    let websocket_on = snapshot
        .parts
        .get(&Part::Websocket)
        .is_some_and(|p| p.state != PartState::Off);
    let subscription = match snapshot.ringcentral_transport.as_deref() {
        Some("websocket") => part_line(snapshot, Part::Websocket, "RingCentral (WebSocket)", "off"),
        Some("webhook") => part_line(
            snapshot,
            Part::Subscription,
            "RingCentral (webhook)",
            "not configured",
        ),
        _ if websocket_on => part_line(snapshot, Part::Websocket, "RingCentral", "off"),
        _ => part_line(
            snapshot,
            Part::Subscription,
            "Subscription",
            "not configured",
        ),
    };
    let popups_off = snapshot
        .parts
        .get(&Part::Notifications)
        .filter(|p| matches!(p.state, PartState::Off | PartState::Error));
    let popups = match (paused, pause.until) {
        // The real setting, not only the pause: popups turned off (or no notification server)
        // are not "on".
        (false, _) if popups_off.is_some() => "Popups off".to_string(),
        (false, _) => "Popups on".to_string(),
        (true, None) => "Popups paused until resumed".to_string(),
        (true, Some(until)) => format!(
            "Popups paused until {}",
            until.with_timezone(&Local).format("%H:%M")
        ),
    };
    let tooltip = match state {
        TrayState::Offline if not_receiving.is_some() => format!(
            "CallPop — not receiving calls: {}",
            not_receiving.as_deref().unwrap_or_default()
        ),
        TrayState::Offline => format!(
            "CallPop — offline: {}",
            offline_reason.as_deref().unwrap_or("not running")
        ),
        TrayState::Paused => format!("CallPop — {}", popups.to_lowercase()),
        TrayState::Degraded if attention.is_empty() => "CallPop — needs attention".to_string(),
        TrayState::Degraded => format!("CallPop — needs attention: {}", attention.join(", ")),
        TrayState::Healthy => "CallPop — receiving calls".to_string(),
    };
    TrayStatus {
        state,
        tooltip: cut(tooltip),
        receiver: cut(receiver),
        tunnel: cut(tunnel),
        subscription: cut(subscription),
        popups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpop_engine::health::PartStatus;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0)
            .single()
            .expect("valid time")
    }

    fn board(status: Status, parts: &[(Part, PartState, &str)]) -> Snapshot {
        Snapshot {
            status,
            listen: Some("127.0.0.1:8787".parse().expect("address")),
            parts: parts
                .iter()
                .map(|&(part, state, detail)| {
                    (
                        part,
                        PartStatus {
                            state,
                            detail: detail.to_string(),
                            since: now(),
                            fix: None,
                        },
                    )
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    fn running() -> PauseState {
        PauseState {
            paused: false,
            until: None,
        }
    }

    #[test]
    fn the_ringcentral_line_names_the_way_calls_come() {
        let mut snapshot = board(
            Status::Ok,
            &[
                (Part::Websocket, PartState::Active, "Connected"),
                (Part::Subscription, PartState::Off, "Not needed"),
            ],
        );
        snapshot.ringcentral_transport = Some("websocket".into());
        let s = tray_status(&snapshot, None, &running(), now());
        assert_eq!(
            s.subscription,
            "RingCentral (WebSocket): active — Connected"
        );
        snapshot.ringcentral_transport = Some("webhook".into());
        snapshot
            .parts
            .entry(Part::Subscription)
            .and_modify(|p| p.state = PartState::Active);
        let s = tray_status(&snapshot, None, &running(), now());
        assert_eq!(s.subscription, "RingCentral (webhook): active — Not needed");
        // Still deciding: the WebSocket's own state.
        snapshot.ringcentral_transport = None;
        let s = tray_status(&snapshot, None, &running(), now());
        assert!(
            s.subscription.starts_with("RingCentral: active"),
            "{}",
            s.subscription
        );
    }

    #[test]
    fn a_healthy_engine_says_where_it_listens() {
        let s = tray_status(
            &board(
                Status::Ok,
                &[(Part::Subscription, PartState::Active, "expires in 6 days")],
            ),
            None,
            &running(),
            now(),
        );
        assert_eq!(s.state, TrayState::Healthy);
        assert_eq!(s.receiver, "Receiver: listening on 127.0.0.1:8787");
        assert_eq!(s.tunnel, "Tunnel: off (local only)");
        assert_eq!(s.subscription, "Subscription: active — expires in 6 days");
        assert_eq!(s.popups, "Popups on");
        assert_eq!(s.tooltip, "CallPop — receiving calls");
    }

    #[test]
    fn a_failing_part_degrades_and_is_named() {
        let s = tray_status(
            &board(
                Status::Degraded,
                &[
                    (
                        Part::Tunnel,
                        PartState::Error,
                        "ngrok: authentication failed",
                    ),
                    (Part::Subscription, PartState::Waiting, "no public URL yet"),
                ],
            ),
            None,
            &running(),
            now(),
        );
        assert_eq!(s.state, TrayState::Degraded);
        assert_eq!(s.tunnel, "Tunnel: error — ngrok: authentication failed");
        assert_eq!(s.tooltip, "CallPop — needs attention: tunnel");
    }

    #[test]
    fn an_engine_that_cannot_start_is_offline_even_when_paused() {
        let paused = PauseState {
            paused: true,
            until: None,
        };
        let s = tray_status(
            &Snapshot::default(),
            Some("cannot receive webhooks on 127.0.0.1:8787: address in use"),
            &paused,
            now(),
        );
        assert_eq!(s.state, TrayState::Offline);
        assert!(s
            .receiver
            .starts_with("Receiver: stopped — cannot receive webhooks"));
        assert!(s.receiver.chars().count() <= MAX_LINE);
        assert!(s.tooltip.starts_with("CallPop — offline: cannot receive"));
    }

    /// Issue 26: a desk no call can reach says so, with the first missing piece, and popups
    /// turned off are not "on".
    #[test]
    fn a_desk_no_call_can_reach_is_not_receiving_and_popups_off_say_so() {
        let mut b = board(
            Status::NotReceiving,
            &[
                (Part::Tunnel, PartState::Off, "no public URL"),
                (
                    Part::Notifications,
                    PartState::Off,
                    "desktop notifications are turned off",
                ),
            ],
        );
        b.attention = Some(callpop_engine::health::Attention {
            text: "This computer has no public address".into(),
            fix: Some("tunnel".into()),
        });
        let s = tray_status(&b, None, &running(), now());
        assert_eq!(s.state, TrayState::Offline);
        assert_eq!(
            s.tooltip,
            "CallPop — not receiving calls: This computer has no public address"
        );
        assert_eq!(s.receiver, "Receiver: listening on 127.0.0.1:8787");
        assert_eq!(s.popups, "Popups off");
    }

    #[test]
    fn a_storage_error_is_offline() {
        let mut b = board(Status::Error, &[]);
        b.storage_error = Some("disk full".into());
        let s = tray_status(&b, None, &running(), now());
        assert_eq!(s.state, TrayState::Offline);
        assert_eq!(s.receiver, "Receiver: stopped — disk full");
    }

    #[test]
    fn pausing_wins_over_degraded_and_ends_on_time() {
        let b = board(
            Status::Degraded,
            &[(Part::Tunnel, PartState::Error, "offline")],
        );
        let until = now() + chrono::Duration::minutes(30);
        let paused = PauseState {
            paused: true,
            until: Some(until),
        };
        let s = tray_status(&b, None, &paused, now());
        assert_eq!(s.state, TrayState::Paused);
        let local = until.with_timezone(&Local).format("%H:%M").to_string();
        assert_eq!(s.popups, format!("Popups paused until {local}"));
        let later = tray_status(&b, None, &paused, until + chrono::Duration::seconds(1));
        assert_eq!(later.state, TrayState::Degraded);
        assert_eq!(later.popups, "Popups on");
    }

    #[test]
    fn a_public_url_is_shown_while_the_tunnel_works() {
        let mut b = board(
            Status::Ok,
            &[(Part::Tunnel, PartState::Active, "connected")],
        );
        b.public_url = Some("https://dealer.ngrok.app".into());
        let s = tray_status(&b, None, &running(), now());
        assert_eq!(s.tunnel, "Public URL: https://dealer.ngrok.app");
    }

    #[test]
    fn every_state_has_its_icon() {
        for state in [
            TrayState::Healthy,
            TrayState::Degraded,
            TrayState::Offline,
            TrayState::Paused,
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../icons")
                .join(state.icon_name());
            assert!(path.is_file(), "{} is missing", path.display());
        }
    }
}
