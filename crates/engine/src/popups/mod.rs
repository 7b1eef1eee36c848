//! The popup manager: turns committed call changes into desktop notifications — one per
//! inbound call per desk, updated in place, never duplicated.
//!
//! It runs as one engine task: it listens to the store's committed changes (so it only ever
//! announces what is on disk), decides per call which phase the popup should be in (ringing →
//! answered | missed), and asks the [`Notifier`] (on its own thread, since notification APIs
//! block) to show, update or close. What it has shown is remembered in the store, so a restart
//! in the middle of a ringing call updates the existing popup instead of showing a second one.

//!
//! Files: [`policy`] decides which phase a call's popup is in, [`render`] what people read on
//! it, `notifier_thread` runs the blocking notification API, [`manager`] is the task that ties
//! them to the store's committed changes.

mod manager;
mod notifier_thread;
pub mod policy;
pub mod render;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config::{self, QuietHours};
use callpop_core::lines::LineLabel;

pub use manager::{PopupHandle, PopupManager};
pub use policy::{desired_phase, Phase};
pub use render::{crm_url, Renderer};

/// A ringing popup whose call has not changed for this long is closed: the history's rule for
/// calls whose end never came ([`callpop_core::calls::UNHEARD_RINGING`]), which ends the call
/// itself as `no_end_reported` at the same time. No phone rings that long; a call whose every
/// leg moved to another session (`Gone` after a pickup or park) is never heard of again in
/// this one and would otherwise ring on screen for good.
pub const STUCK_RINGING: Duration = callpop_core::calls::UNHEARD_RINGING;

/// Engine-state key of the pause setting.
pub const PAUSE_KEY: &str = "popups.pause";

/// Everything that decides whether and how popups appear.
#[derive(Debug, Clone, PartialEq)]
pub struct PopupSettings {
    /// Extensions whose calls pop up here (ids or numbers); empty = every extension.
    pub watch_extensions: Vec<String>,
    /// RingCentral events older than this when they arrive are stored but never announced
    /// (Ringotel sends each event once, as it happens, with the call's start as its time).
    pub stale_after: Duration,
    /// How long an "answered" popup stays before it is closed.
    pub answered_close_after: Duration,
    /// A ringing popup whose call has not changed for this long is closed ([`STUCK_RINGING`]).
    pub stuck_ringing_after: Duration,
    /// Most call popups on screen at once; more calls go into one summary popup.
    pub max_on_screen: usize,
    /// No popups during these local hours.
    pub quiet_hours: Option<QuietHours>,
    /// Names of the dealership's lines, by number (E.164 after normalization).
    pub line_labels: Vec<LineLabel>,
    /// "Open in CRM" link with `{number}`, `{e164}`, `{name}`, `{call_id}` placeholders.
    pub crm_url_template: Option<String>,
    /// A CallPop window exists to "Open" a call in (the desktop app, not `callpop serve`).
    pub window_available: bool,
    /// The app icon for notifications.
    pub icon: Option<PathBuf>,
}

impl Default for PopupSettings {
    fn default() -> PopupSettings {
        PopupSettings {
            watch_extensions: Vec::new(),
            stale_after: config::DEFAULT_STALE_AFTER,
            answered_close_after: config::DEFAULT_ANSWERED_CLOSE_AFTER,
            stuck_ringing_after: STUCK_RINGING,
            max_on_screen: config::DEFAULT_MAX_ON_SCREEN,
            quiet_hours: None,
            line_labels: Vec::new(),
            crm_url_template: None,
            window_available: false,
            icon: None,
        }
    }
}

/// Whether popups are paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct PauseState {
    /// Popups are paused now.
    pub paused: bool,
    /// Until when (`None` while paused = until resumed).
    pub until: Option<DateTime<Utc>>,
}

impl PauseState {
    /// Whether popups are paused at `now` (a timed pause is over once its end has passed).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.paused && self.until.is_none_or(|t| now < t)
    }
}

/// Requests to the popup manager.
#[derive(Debug)]
pub enum PopupControl {
    /// New settings take effect for the next call.
    Settings(Box<PopupSettings>),
    /// Pause popups for a while (`None` = until resumed).
    Pause(Option<Duration>, oneshot::Sender<PauseState>),
    /// Resume popups.
    Resume(oneshot::Sender<PauseState>),
    /// Report the pause state.
    GetPause(oneshot::Sender<PauseState>),
    /// Show a notice about CallPop itself (summary, body), paused or not: it is about the app,
    /// not a call. Answers whether it was shown.
    Notice(String, String, oneshot::Sender<bool>),
}

/// What a popup button asks the application to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PopupRequest {
    /// Show this call (row id) in the CallPop window.
    OpenCall(i64),
}

#[cfg(test)]
pub(crate) mod fixtures {
    use callpop_core::model::{
        Call, CallDirection, CallResult, CallState, ExtensionPart, LegDirection, LegState,
        PartySummary, Provider,
    };
    use chrono::Utc;

    /// An inbound call from Jane Roe (a name with markup and a bidi override) to the Sales line,
    /// ringing extension 101 (Alice Sales).
    pub(crate) fn call(state: CallState, result: Option<CallResult>, ext_state: LegState) -> Call {
        Call {
            provider: Provider::RingCentral,
            call_key: "s-1".into(),
            direction: CallDirection::Inbound,
            state,
            result,
            from: PartySummary {
                raw: Some("+14155550123".into()),
                e164: Some("+14155550123".into()),
                name: Some("Jane <b>Roe</b>\u{202E}".into()),
            },
            to: PartySummary {
                raw: Some("+16505550100".into()),
                e164: Some("+16505550100".into()),
                name: None,
            },
            extensions: vec![ExtensionPart {
                extension_id: Some("62264425016".into()),
                extension_number: Some("101".into()),
                name: Some("Alice Sales".into()),
                direction: Some(LegDirection::Inbound),
                rang: true,
                answered: result == Some(CallResult::Answered),
                talk_seconds: 0,
                state: Some(ext_state),
                outcome: None,
            }],
            started_at: Utc::now(),
            answered_at: None,
            ended_at: None,
            ring_seconds: 0,
            talk_seconds: 0,
            recording_url: None,
            voicemail: None,
            event_count: 1,
            last_event_at: Utc::now(),
        }
    }

    /// Reception (101) answered, then transferred blind to sales (102), whose leg is `sales`.
    pub(crate) fn transferred(sales: LegState) -> Call {
        let mut call = call(
            CallState::Connected,
            Some(CallResult::Answered),
            LegState::Ended,
        );
        let mut leg = call.extensions[0].clone();
        leg.extension_id = Some("62264425017".into());
        leg.extension_number = Some("102".into());
        leg.name = Some("Bob Sales".into());
        leg.answered = false;
        leg.state = Some(sales);
        call.extensions.push(leg);
        call
    }
}
