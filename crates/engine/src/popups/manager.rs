//! The popup manager task: one owner of what is on screen. It follows the store's committed
//! changes, asks the policy which phase each call is in, renders, and shows, updates or closes
//! through the notifier thread; what it showed is remembered in the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::notifier_thread::NotifierThread;
use super::policy::watched_parts;
use super::{
    crm_url, desired_phase, PauseState, Phase, PopupControl, PopupRequest, PopupSettings, Renderer,
    PAUSE_KEY,
};
use crate::health::{Health, Part, PartState};
use crate::notify::{Notifier, NotifierEvent, Popup};
use callpop_core::model::{Call, CallResult, Origin, Provider};
use callpop_store::writer::{CommittedChange, StoreWriter};
use callpop_store::PopupRecord;

/// What the manager remembers of one call's popup.
#[derive(Debug, Clone)]
struct Shown {
    phase: Phase,
    notification_id: Option<u32>,
    closed: bool,
    shown_at: DateTime<Utc>,
    /// The last content sent, to skip updates that change nothing.
    last: Option<Popup>,
    call: Option<Call>,
    /// It first rang at this (watching) desk after another desk had answered: a transfer. If
    /// this desk then does not answer, it missed the caller, whoever talked to them before.
    handed_over: bool,
}

/// How a call that did not get a popup of its own counts in the summary popup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Counted as ringing.
    Ringing,
    /// Counted as missed.
    Missed,
    /// No longer ringing at this desk while the call goes on elsewhere: not counted, and
    /// counted as missed if the call then ends unanswered.
    Quiet,
    /// Counted once and no longer: answered, gone quiet, or its count was dismissed. Kept so
    /// later news of the call (its voicemail) does not count it again.
    Done,
}

/// A call counted in the summary popup: how, and who is calling (the summary names them,
/// since `callpop serve` has no window to open).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counted {
    how: Overflow,
    caller: String,
}

/// The most calls the summary remembers; the oldest finished ones are forgotten first.
const OVERFLOW_REMEMBERED: usize = 1000;

/// Handles to a running popup manager.
#[derive(Clone)]
pub struct PopupHandle {
    control: mpsc::Sender<PopupControl>,
}

impl PopupHandle {
    /// Applies new settings.
    pub async fn update_settings(&self, settings: PopupSettings) {
        let _ = self
            .control
            .send(PopupControl::Settings(Box::new(settings)))
            .await;
    }

    /// Pauses popups (`None` = until resumed).
    pub async fn pause(&self, duration: Option<Duration>) -> Option<PauseState> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(PopupControl::Pause(duration, tx))
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Resumes popups.
    pub async fn resume(&self) -> Option<PauseState> {
        let (tx, rx) = oneshot::channel();
        self.control.send(PopupControl::Resume(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The pause state.
    pub async fn pause_state(&self) -> Option<PauseState> {
        let (tx, rx) = oneshot::channel();
        self.control.send(PopupControl::GetPause(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Shows a notice about CallPop itself ("CallPop keeps running in the tray"); true once
    /// the notification server took it.
    pub async fn notice(&self, summary: &str, body: &str) -> bool {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .control
            .send(PopupControl::Notice(summary.into(), body.into(), tx))
            .await;
        sent.is_ok() && rx.await.unwrap_or(false)
    }
}

/// Everything the manager task needs.
pub struct PopupManager {
    settings: PopupSettings,
    notifier: NotifierThread,
    notifier_events: mpsc::UnboundedReceiver<NotifierEvent>,
    writer: StoreWriter,
    health: Arc<Health>,
    requests: broadcast::Sender<PopupRequest>,
    shown: HashMap<i64, Shown>,
    by_notification: HashMap<u32, i64>,
    /// Calls counted in the summary popup instead of shown on their own, and how.
    overflow: BTreeMap<i64, Counted>,
    /// When each call with a ringing popup last changed.
    ringing_heard: HashMap<i64, Instant>,
    summary_id: Option<u32>,
    closings: Vec<(Instant, i64)>,
    pause: PauseState,
    clock: callpop_clock::Clock,
}

impl PopupManager {
    /// Prepares a manager around a notifier; `notifier_events` receives its clicks and closes.
    /// `remembered` are the popups the store knows from before a restart.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: PopupSettings,
        notifier: Box<dyn Notifier>,
        notifier_events: mpsc::UnboundedReceiver<NotifierEvent>,
        writer: StoreWriter,
        health: Arc<Health>,
        requests: broadcast::Sender<PopupRequest>,
        remembered: Vec<PopupRecord>,
        pause: Option<String>,
        clock: callpop_clock::Clock,
    ) -> std::io::Result<PopupManager> {
        let notifier = NotifierThread::spawn(notifier)?;
        let mut shown = HashMap::new();
        let mut by_notification = HashMap::new();
        for r in remembered {
            let Some(phase) = Phase::parse(&r.phase) else {
                continue;
            };
            let mut r = r;
            let age = clock.now().signed_duration_since(r.shown_at);
            if phase == Phase::Ringing
                && age
                    .to_std()
                    .is_ok_and(|age| age > settings.stuck_ringing_after)
            {
                // No phone rings that long: the popup is gone, and the server may have been
                // restarted since and given its id to another program's notification, which
                // an update in place would overwrite.
                r.notification_id = None;
                r.closed = true;
            }
            if let Some(id) = r.notification_id {
                by_notification.insert(id, r.call_id);
            }
            shown.insert(
                r.call_id,
                Shown {
                    phase,
                    notification_id: r.notification_id,
                    closed: r.closed,
                    shown_at: r.shown_at,
                    last: None,
                    call: None,
                    handed_over: false,
                },
            );
        }
        let pause = pause
            .and_then(|p| serde_json::from_str::<PauseState>(&p).ok())
            .unwrap_or(PauseState {
                paused: false,
                until: None,
            });
        Ok(PopupManager {
            settings,
            notifier,
            notifier_events,
            writer,
            health,
            requests,
            shown,
            by_notification,
            overflow: BTreeMap::new(),
            ringing_heard: HashMap::new(),
            summary_id: None,
            closings: Vec::new(),
            pause,
            clock,
        })
    }

    fn report(&self) {
        let caps = &self.notifier.capabilities;
        let (state, detail) = if self.is_paused(self.clock.now()) {
            (
                PartState::Paused,
                match self.pause.until {
                    Some(t) => format!(
                        "popups paused until {}",
                        t.with_timezone(&Local).format("%H:%M")
                    ),
                    None => "popups paused until resumed".to_string(),
                },
            )
        } else {
            (
                PartState::On,
                format!(
                    "{}{}",
                    caps.server,
                    if caps.actions {
                        ""
                    } else {
                        "; this server shows no buttons"
                    }
                ),
            )
        };
        self.health.set_part(Part::Notifications, state, detail);
    }

    fn renderer(&self) -> Renderer<'_> {
        Renderer {
            settings: &self.settings,
            capabilities: &self.notifier.capabilities,
        }
    }

    fn is_paused(&self, now: DateTime<Utc>) -> bool {
        self.pause.is_active(now)
    }

    /// Runs until `shutdown`; returns the control handle through `handle_tx` first.
    pub fn start(
        self,
        mut changes: broadcast::Receiver<CommittedChange>,
        shutdown: CancellationToken,
    ) -> (PopupHandle, tokio::task::JoinHandle<()>) {
        let (control_tx, mut control) = mpsc::channel(16);
        let mut me = self;
        let task = tokio::spawn(async move {
            me.report();
            me.close_leftover_answered().await;
            loop {
                let next_closing = me.closings.iter().map(|(t, _)| *t).min();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    change = changes.recv() => match change {
                        Ok(change) => me.on_change(change).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(skipped = n, "popups fell behind; some calls were not announced");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    Some(event) = me.notifier_events.recv() => me.on_notifier_event(event).await,
                    Some(cmd) = control.recv() => me.on_control(cmd).await,
                    _ = sleep_until_opt(next_closing) => me.on_timers().await,
                }
            }
        });
        (
            PopupHandle {
                control: control_tx,
            },
            task,
        )
    }

    async fn close_leftover_answered(&mut self) {
        let leftovers: Vec<i64> = self
            .shown
            .iter()
            .filter(|(_, s)| s.phase == Phase::Answered && !s.closed)
            .map(|(id, _)| *id)
            .collect();
        for call_id in leftovers {
            self.close_popup(call_id).await;
        }
    }

    async fn on_control(&mut self, cmd: PopupControl) {
        match cmd {
            PopupControl::Settings(s) => {
                self.settings = *s;
                self.report();
            }
            PopupControl::Pause(duration, reply) => {
                self.pause = PauseState {
                    paused: true,
                    until: duration.and_then(|d| {
                        chrono::Duration::from_std(d)
                            .ok()
                            .map(|d| self.clock.now() + d)
                    }),
                };
                self.save_pause().await;
                let _ = reply.send(self.pause);
            }
            PopupControl::Resume(reply) => {
                self.pause = PauseState {
                    paused: false,
                    until: None,
                };
                self.save_pause().await;
                let _ = reply.send(self.pause);
            }
            PopupControl::GetPause(reply) => {
                let mut state = self.pause;
                state.paused = self.is_paused(self.clock.now());
                let _ = reply.send(state);
            }
            PopupControl::Notice(summary, body, reply) => {
                let popup = self.renderer().notice(&summary, &body);
                let shown = match self.notifier.show(popup, None).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "notice not shown");
                        false
                    }
                };
                let _ = reply.send(shown);
            }
        }
    }

    async fn save_pause(&mut self) {
        let json = serde_json::to_string(&self.pause).unwrap_or_default();
        if let Err(e) = self.writer.set_state(PAUSE_KEY, &json).await {
            tracing::warn!(error = %e, "cannot remember the pause setting");
        }
        self.report();
    }

    /// Why a new popup must not be shown now, if it must not.
    fn suppressed(&self, call: &Call, origin: Origin, now: DateTime<Utc>) -> Option<&'static str> {
        if !origin.is_live() {
            return Some("not a live delivery");
        }
        // Ringotel's Start carries the call's start on the PBX (`call_start`), not when it
        // reached the desk: a caller who waited in the menu or a queue for a few minutes
        // looked stale and never popped up. Ringotel sends each event once, when it happens,
        // so only RingCentral's event times say how late a delivery is.
        let stale_after = chrono::Duration::from_std(self.settings.stale_after).unwrap_or_default();
        let age = |t: DateTime<Utc>| now.signed_duration_since(t);
        match call.provider {
            Provider::RingCentral if age(call.last_event_at) > stale_after => {
                return Some("stale");
            }
            // Ringotel's times are the call's own: an end long past is no news, and a call
            // that began more than the ringing bound ago is taken as a late delivery rather
            // than a caller still waiting in a queue (no dealership queue holds callers that
            // long; docs/PLATFORMS.md).
            Provider::Ringotel
                if call.ended_at.is_some_and(|end| age(end) > stale_after)
                    || (call.ended_at.is_none()
                        && age(call.started_at)
                            > chrono::Duration::from_std(self.settings.stuck_ringing_after)
                                .unwrap_or_default()) =>
            {
                return Some("stale");
            }
            _ => {}
        }
        if self.is_paused(now) {
            return Some("paused");
        }
        if self
            .settings
            .quiet_hours
            .is_some_and(|q| q.contains(now.with_timezone(&Local).time()))
        {
            return Some("quiet hours");
        }
        None
    }

    /// Popups this run has on screen. Remembered ones from before a restart are left out:
    /// after a reboot they are gone, and a dismissal made while CallPop was not running is
    /// never heard, so counting them let yesterday's missed calls hold every new caller in
    /// the summary popup. They are still kept to be updated in place.
    fn on_screen(&self) -> usize {
        self.shown
            .values()
            .filter(|s| !s.closed && s.notification_id.is_some() && s.last.is_some())
            .count()
    }

    /// The call rings on screen: in a popup of its own or counted in the summary.
    fn is_ringing(&self, call_id: i64) -> bool {
        self.shown
            .get(&call_id)
            .is_some_and(|s| s.phase == Phase::Ringing && !s.closed)
            || self
                .overflow
                .get(&call_id)
                .is_some_and(|c| c.how == Overflow::Ringing)
    }

    async fn on_change(&mut self, committed: CommittedChange) {
        let call_id = committed.change.id;
        self.apply_change(committed).await;
        if self.is_ringing(call_id) {
            let now = Instant::now();
            // One pending check per ringing popup; it moves itself on while the call is heard.
            if self.ringing_heard.insert(call_id, now).is_none() {
                self.closings
                    .push((now + self.settings.stuck_ringing_after, call_id));
            }
        } else {
            self.ringing_heard.remove(&call_id);
        }
    }

    async fn apply_change(&mut self, committed: CommittedChange) {
        let Some(call) = &committed.change.after else {
            return;
        };
        let call_id = committed.change.id;
        let watched = &self.settings.watch_extensions;
        let desired = match desired_phase(call, watched) {
            Some(Phase::Answered)
                if self.shown.get(&call_id).is_some_and(|s| s.handed_over)
                    && !watched_parts(call, watched).iter().any(|p| p.answered) =>
            {
                Some(Phase::Missed)
            }
            desired => desired,
        };
        let now = self.clock.now();

        if let Some(counted) = self.overflow.get_mut(&call_id) {
            let how = match (counted.how, desired) {
                (Overflow::Ringing | Overflow::Quiet, Some(Phase::Ringing)) => Overflow::Ringing,
                (Overflow::Ringing | Overflow::Quiet | Overflow::Missed, Some(Phase::Missed)) => {
                    Overflow::Missed
                }
                (Overflow::Ringing, None) => Overflow::Quiet,
                (Overflow::Ringing | Overflow::Quiet, _) => Overflow::Done,
                (other, _) => other,
            };
            if how != counted.how {
                counted.how = how;
                self.refresh_summary().await;
            }
            return;
        }
        let current = self.shown.get(&call_id).map(|s| (s.phase, s.closed));
        match (current, desired) {
            (None, Some(phase @ (Phase::Ringing | Phase::Missed))) => {
                if let Some(why) = self.suppressed(call, committed.origin, now) {
                    tracing::debug!(call_id, why, "popup not shown");
                    return;
                }
                if self.on_screen() >= self.settings.max_on_screen.max(1) {
                    let how = match phase {
                        Phase::Ringing => Overflow::Ringing,
                        _ => Overflow::Missed,
                    };
                    let caller = self.renderer().caller_line(call);
                    self.count_in_summary(call_id, Counted { how, caller });
                    self.refresh_summary().await;
                    return;
                }
                self.show(call_id, call, phase, now).await;
            }
            (Some((from, closed)), Some(to))
                if to > from || (to == from && to == Phase::Missed) =>
            {
                let from_before_restart =
                    self.shown.get(&call_id).is_some_and(|s| s.last.is_none());
                if closed && to == Phase::Answered {
                    // The ringing popup is gone (dismissed, or closed after the stuck-ringing
                    // bound during a long Ringotel call): an answer reported at hang-up is no
                    // reason to open a new one.
                    if let Some(s) = self.shown.get_mut(&call_id) {
                        s.call = Some(call.clone());
                    }
                    return;
                }
                if to == Phase::Missed && from == Phase::Missed && (closed || from_before_restart) {
                    // The person dismissed the missed-call popup: leave it dismissed. One from
                    // before a restart may have been dismissed while CallPop was not running
                    // (the server told a connection that is gone), and updating it would
                    // bring it back: news of it (a voicemail) waits in the window instead.
                    if let Some(s) = self.shown.get_mut(&call_id) {
                        s.call = Some(call.clone());
                    }
                    return;
                }
                self.show(call_id, call, to, now).await;
                if to == Phase::Answered {
                    let delay = self.settings.answered_close_after;
                    self.closings.push((Instant::now() + delay, call_id));
                }
            }
            (Some((Phase::Ringing, false)), None) => {
                // The desk's own leg is over while the call goes on elsewhere (policy), or the
                // call ended without an end reported: its ringing popup goes.
                if let Some(s) = self.shown.get_mut(&call_id) {
                    s.call = Some(call.clone());
                }
                self.close_popup(call_id).await;
            }
            _ => {
                if let Some(s) = self.shown.get_mut(&call_id) {
                    s.call = Some(call.clone());
                }
                if call.result == Some(CallResult::NoEndReported) {
                    // The store's rule for calls whose end never came (core::calls): the
                    // popup goes, as the history says.
                    self.close_popup(call_id).await;
                }
            }
        }
    }

    async fn show(&mut self, call_id: i64, call: &Call, phase: Phase, now: DateTime<Utc>) {
        let popup = self.renderer().render(call, phase);
        let previous = self.shown.get(&call_id).cloned();
        if previous
            .as_ref()
            .is_some_and(|p| p.phase == phase && p.last.as_ref() == Some(&popup))
        {
            return;
        }
        let replaces = previous.as_ref().and_then(|p| p.notification_id);
        match self.notifier.show(popup.clone(), replaces).await {
            Ok(id) => {
                self.by_notification.insert(id, call_id);
                let shown_at = previous.as_ref().map_or(now, |p| p.shown_at);
                let handed_over = previous.as_ref().map_or(
                    phase == Phase::Ringing
                        && call.result == Some(CallResult::Answered)
                        && !self.settings.watch_extensions.is_empty(),
                    |p| p.handed_over,
                );
                self.shown.insert(
                    call_id,
                    Shown {
                        phase,
                        notification_id: Some(id),
                        closed: false,
                        shown_at,
                        last: Some(popup),
                        call: Some(call.clone()),
                        handed_over,
                    },
                );
                self.remember(call_id).await;
            }
            Err(e) => {
                tracing::warn!(call_id, error = %e, "popup not shown");
                self.health
                    .set_part(Part::Notifications, PartState::Error, e.to_string());
            }
        }
    }

    async fn remember(&mut self, call_id: i64) {
        let Some(s) = self.shown.get(&call_id) else {
            return;
        };
        let record = PopupRecord {
            call_id,
            phase: s.phase.as_str().to_string(),
            notification_id: s.notification_id,
            closed: s.closed,
            shown_at: s.shown_at,
        };
        if let Err(e) = self.writer.set_popup(record).await {
            tracing::warn!(call_id, error = %e, "cannot remember a popup");
        }
    }

    async fn close_popup(&mut self, call_id: i64) {
        let Some(s) = self.shown.get_mut(&call_id) else {
            return;
        };
        if s.closed {
            return;
        }
        s.closed = true;
        if let Some(id) = s.notification_id {
            self.notifier.close(id);
        }
        self.remember(call_id).await;
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.closings.drain(..).partition(|(t, _)| *t <= now);
        self.closings = later;
        for (_, call_id) in due {
            let phase = self.shown.get(&call_id).map(|s| s.phase);
            if phase == Some(Phase::Answered) {
                self.close_popup(call_id).await;
            }
            let heard = self.ringing_heard.get(&call_id).copied();
            let Some(quiet_until) = heard.map(|h| h + self.settings.stuck_ringing_after) else {
                continue;
            };
            if !self.is_ringing(call_id) {
                self.ringing_heard.remove(&call_id);
            } else if quiet_until > now {
                self.closings.push((quiet_until, call_id));
            } else {
                tracing::info!(
                    call_id,
                    "a call rang for {} s without a word from the phone system; it no longer \
                     shows as ringing",
                    self.settings.stuck_ringing_after.as_secs()
                );
                self.ringing_heard.remove(&call_id);
                if let Some(counted) = self
                    .overflow
                    .get_mut(&call_id)
                    .filter(|c| c.how == Overflow::Ringing)
                {
                    counted.how = Overflow::Done;
                    self.refresh_summary().await;
                } else {
                    self.close_popup(call_id).await;
                }
            }
        }
    }

    fn count_in_summary(&mut self, call_id: i64, counted: Counted) {
        self.overflow.insert(call_id, counted);
        while self.overflow.len() > OVERFLOW_REMEMBERED {
            let oldest_done = self
                .overflow
                .iter()
                .find(|(_, c)| c.how == Overflow::Done)
                .map(|(id, _)| *id);
            match oldest_done.or_else(|| self.overflow.keys().next().copied()) {
                Some(id) => self.overflow.remove(&id),
                None => break,
            };
        }
    }

    async fn refresh_summary(&mut self) {
        // Newest first: the call that just came in is the one the person looks for.
        let callers = |how| -> Vec<&str> {
            self.overflow
                .values()
                .rev()
                .filter(|c| c.how == how)
                .map(|c| c.caller.as_str())
                .collect()
        };
        let ringing = callers(Overflow::Ringing);
        let missed = callers(Overflow::Missed);
        if ringing.is_empty() && missed.is_empty() {
            if let Some(id) = self.summary_id.take() {
                self.notifier.close(id);
            }
            return;
        }
        let popup = self.renderer().summary(&ringing, &missed);
        match self.notifier.show(popup, self.summary_id).await {
            Ok(id) => self.summary_id = Some(id),
            Err(e) => tracing::warn!(error = %e, "summary popup not shown"),
        }
    }

    async fn on_notifier_event(&mut self, event: NotifierEvent) {
        match event {
            NotifierEvent::Closed { id } => {
                if self.summary_id == Some(id) {
                    self.summary_id = None;
                    // The person has seen the missed ones; calls still ringing stay counted.
                    for counted in self.overflow.values_mut() {
                        if counted.how == Overflow::Missed {
                            counted.how = Overflow::Done;
                        }
                    }
                    return;
                }
                if let Some(call_id) = self.by_notification.get(&id).copied() {
                    if let Some(s) = self.shown.get_mut(&call_id) {
                        if !s.closed {
                            s.closed = true;
                            self.remember(call_id).await;
                        }
                    }
                }
            }
            NotifierEvent::Action { id, action } => {
                if self.summary_id == Some(id) {
                    if action == "open" || action == "default" {
                        // The window shows the newest calls first: open it on the log.
                        let _ = self.requests.send(PopupRequest::OpenCall(0));
                    }
                    return;
                }
                let Some(call_id) = self.by_notification.get(&id).copied() else {
                    return;
                };
                let call = self.shown.get(&call_id).and_then(|s| s.call.clone());
                match action.as_str() {
                    "open" | "default" if self.settings.window_available => {
                        let _ = self.requests.send(PopupRequest::OpenCall(call_id));
                    }
                    "call-back" => {
                        if let Some(e164) = call.as_ref().and_then(|c| c.from.e164.clone()) {
                            self.notifier.open(format!("tel:{e164}"));
                            // The person is dealing with the caller: the popup did its job.
                            // Servers differ in closing it themselves (dunst leaves it).
                            self.close_popup(call_id).await;
                        }
                    }
                    "crm" => {
                        let template = self.settings.crm_url_template.as_deref().unwrap_or("");
                        if let Some(url) = call.as_ref().and_then(|c| crm_url(template, c)) {
                            self.notifier.open(url);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::recording::{Call as Recorded, RecordingNotifier};
    use crate::popups::fixtures::{call, transferred};
    use callpop_core::model::{CallState, LegState};

    /// Drives a real manager with the recording notifier through a store writer.
    struct Rig {
        _dir: tempfile::TempDir,
        changes: broadcast::Sender<CommittedChange>,
        calls: Arc<std::sync::Mutex<Vec<Recorded>>>,
        handle: PopupHandle,
        shutdown: CancellationToken,
    }

    async fn rig(settings: PopupSettings) -> Rig {
        rig_remembering(settings, Vec::new()).await
    }

    async fn rig_remembering(settings: PopupSettings, remembered: Vec<PopupRecord>) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = callpop_store::Store::open(
            &dir.path().join("callpop.db"),
            callpop_store::StoreOptions::new(callpop_testkit::us()),
        )
        .expect("store");
        let (changes, _) = broadcast::channel(64);
        let (writer, _thread) = StoreWriter::spawn(store, changes.clone()).expect("writer");
        let (notifier, calls) = RecordingNotifier::new(true, true);
        let (_events_tx, events_rx) = mpsc::unbounded_channel();
        let (requests, _) = broadcast::channel(8);
        let manager = PopupManager::new(
            settings,
            Box::new(notifier),
            events_rx,
            writer,
            Health::new(),
            requests,
            remembered,
            None,
            callpop_clock::Clock::real(),
        )
        .expect("manager");
        let shutdown = CancellationToken::new();
        let (handle, _task) = manager.start(changes.subscribe(), shutdown.clone());
        Rig {
            _dir: dir,
            changes,
            calls,
            handle,
            shutdown,
        }
    }

    impl Rig {
        async fn send(&self, id: i64, call: Call, origin: Origin) {
            let _ = self.changes.send(CommittedChange {
                change: std::sync::Arc::new(callpop_store::CallChange {
                    id,
                    before: None,
                    after: Some(call),
                }),
                origin,
            });
            // Let the manager and the notifier thread run.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }

        fn recorded(&self) -> Vec<Recorded> {
            self.calls.lock().expect("lock").clone()
        }
    }

    fn shows(calls: &[Recorded]) -> Vec<(u32, Option<u32>, String)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Recorded::Show {
                    id,
                    replaces,
                    popup,
                } => Some((*id, *replaces, popup.summary.clone())),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_notice_about_callpop_shows_even_while_calls_are_paused() {
        let rig = rig(PopupSettings::default()).await;
        rig.handle.pause(None).await.expect("paused");
        assert!(
            rig.handle
                .notice("CallPop is still running", "It keeps <receiving> calls.")
                .await
        );
        let recorded = rig.recorded();
        let notice = recorded
            .iter()
            .find_map(|c| match c {
                Recorded::Show { popup, .. } => Some(popup.clone()),
                _ => None,
            })
            .expect("shown");
        assert_eq!(notice.summary, "CallPop is still running");
        assert_eq!(
            notice.body, "It keeps &lt;receiving&gt; calls.",
            "escaped for markup"
        );
        assert!(notice.actions.is_empty());
        assert_eq!(notice.urgency, crate::notify::Urgency::Normal);
        assert!(notice.timeout.is_some(), "it goes away by itself");
        rig.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!rig.handle.notice("x", "y").await, "no manager, no notice");
    }

    #[tokio::test]
    async fn one_popup_per_call_updated_in_place_then_closed() {
        let rig = rig(PopupSettings {
            answered_close_after: Duration::from_millis(50),
            ..PopupSettings::default()
        })
        .await;
        let ringing = call(CallState::Ringing, None, LegState::Ringing);
        rig.send(1, ringing.clone(), Origin::Webhook).await;
        rig.send(1, ringing.clone(), Origin::Webhook).await;
        let answered = call(
            CallState::Connected,
            Some(CallResult::Answered),
            LegState::Connected,
        );
        rig.send(1, answered.clone(), Origin::Webhook).await;
        rig.send(1, answered, Origin::Webhook).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        let recorded = rig.recorded();
        let s = shows(&recorded);
        assert_eq!(s.len(), 2, "{recorded:?}");
        assert_eq!(s[0].1, None);
        assert_eq!(s[1].1, Some(s[0].0), "updated in place");
        assert!(s[1].2.starts_with("Answered by"));
        assert!(
            recorded.contains(&Recorded::Close { id: s[0].0 }),
            "{recorded:?}"
        );
        rig.shutdown.cancel();
    }

    #[tokio::test]
    async fn missed_calls_turn_the_popup_into_missed_and_policy_blocks_new_ones() {
        let rig = rig(PopupSettings::default()).await;
        rig.send(
            1,
            call(CallState::Ringing, None, LegState::Ringing),
            Origin::Webhook,
        )
        .await;
        rig.send(
            1,
            call(CallState::Ended, Some(CallResult::Missed), LegState::Ended),
            Origin::Webhook,
        )
        .await;
        // Backfilled and stale calls are stored but never pop up.
        rig.send(
            2,
            call(CallState::Ringing, None, LegState::Ringing),
            Origin::Backfill,
        )
        .await;
        let mut stale = call(CallState::Ringing, None, LegState::Ringing);
        stale.last_event_at = Utc::now() - chrono::Duration::minutes(10);
        rig.send(3, stale.clone(), Origin::Webhook).await;
        // A Ringotel call that waited in the queue: its Start names the call's start on the
        // PBX, minutes ago, yet it rings at the desk now.
        let mut queued = stale;
        queued.provider = Provider::Ringotel;
        queued.call_key = "ro-queued".into();
        rig.send(5, queued, Origin::Webhook).await;
        // Paused: nothing new.
        rig.handle
            .pause(Some(Duration::from_secs(3600)))
            .await
            .expect("paused");
        rig.send(
            4,
            call(CallState::Ringing, None, LegState::Ringing),
            Origin::Webhook,
        )
        .await;
        let state = rig.handle.resume().await.expect("resumed");
        assert!(!state.paused);
        let s = shows(&rig.recorded());
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[1].2.starts_with("Missed call from"));
        assert_eq!(s[1].1, Some(s[0].0));
        assert!(
            s[2].2.starts_with("Incoming call from"),
            "the queued Ringotel call"
        );
        assert_eq!(s[2].1, None);
        rig.shutdown.cancel();
    }

    #[tokio::test]
    async fn bursts_beyond_the_limit_share_one_summary_popup() {
        let rig = rig(PopupSettings {
            max_on_screen: 2,
            ..PopupSettings::default()
        })
        .await;
        for id in 1..=5 {
            let mut c = call(CallState::Ringing, None, LegState::Ringing);
            c.call_key = format!("s-{id}");
            rig.send(id, c, Origin::Webhook).await;
        }
        let s = shows(&rig.recorded());
        let own: Vec<_> = s.iter().filter(|x| x.2.starts_with("Incoming")).collect();
        let summary: Vec<_> = s.iter().filter(|x| x.2.contains("more incoming")).collect();
        assert_eq!(own.len(), 2, "{s:?}");
        assert_eq!(summary.len(), 3, "{s:?}");
        assert_eq!(summary[2].2, "3 more incoming calls");
        assert!(
            summary[1..].iter().all(|x| x.1 == Some(summary[0].0)),
            "summary updated in place"
        );
        rig.shutdown.cancel();
    }

    /// Issue 25 #3: in a Ringotel ring group the desk's popup follows its own leg, and the
    /// answer Ringotel reports at hang-up opens no popup again.
    #[tokio::test]
    async fn a_ring_group_desk_popup_follows_its_own_leg_on_ringotel() {
        let rig = rig(PopupSettings {
            watch_extensions: vec!["301".into()],
            ..PopupSettings::default()
        })
        .await;
        let group = |mine: LegState, colleague: LegState, result: Option<CallResult>| {
            let state = match result {
                Some(_) => CallState::Ended,
                None => CallState::Ringing,
            };
            let mut c = call(state, result, mine);
            c.provider = Provider::Ringotel;
            c.call_key = "ro-group".into();
            c.extensions[0].extension_id = None;
            c.extensions[0].extension_number = Some("301".into());
            let mut other = c.extensions[0].clone();
            other.extension_number = Some("302".into());
            other.state = Some(colleague);
            other.answered = result == Some(CallResult::Answered);
            c.extensions[0].answered = false;
            c.extensions.push(other);
            c
        };
        rig.send(
            1,
            group(LegState::Ringing, LegState::Ringing, None),
            Origin::Webhook,
        )
        .await;
        // 301's own Stop arrives while 302 talks (Ringotel still calls the call ringing).
        rig.send(
            1,
            group(LegState::Ended, LegState::Ringing, None),
            Origin::Webhook,
        )
        .await;
        let recorded = rig.recorded();
        let s = shows(&recorded);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(
            recorded.contains(&Recorded::Close { id: s[0].0 }),
            "the desk's popup went with its leg: {recorded:?}"
        );
        // 302 hangs up: Ringotel now says the call was answered. Nothing opens again.
        rig.send(
            1,
            group(LegState::Ended, LegState::Ended, Some(CallResult::Answered)),
            Origin::Webhook,
        )
        .await;
        assert_eq!(shows(&rig.recorded()).len(), 1, "{:?}", rig.recorded());
        rig.shutdown.cancel();
    }

    /// Issue 25 #3: Ringotel events that arrive long after what they report pop nothing up.
    #[tokio::test]
    async fn late_ringotel_events_are_judged_by_their_own_times() {
        let rig = rig(PopupSettings::default()).await;
        let mut ended_long_ago = call(CallState::Ended, Some(CallResult::Missed), LegState::Ended);
        ended_long_ago.provider = Provider::Ringotel;
        ended_long_ago.call_key = "ro-old-end".into();
        ended_long_ago.ended_at = Some(Utc::now() - chrono::Duration::minutes(20));
        rig.send(1, ended_long_ago, Origin::Webhook).await;
        let mut began_long_ago = call(CallState::Ringing, None, LegState::Ringing);
        began_long_ago.provider = Provider::Ringotel;
        began_long_ago.call_key = "ro-old-start".into();
        began_long_ago.started_at = Utc::now() - chrono::Duration::minutes(15);
        rig.send(2, began_long_ago, Origin::Webhook).await;
        assert!(shows(&rig.recorded()).is_empty(), "{:?}", rig.recorded());
        // A caller who waited two minutes in a queue still pops up.
        let mut queued = call(CallState::Ringing, None, LegState::Ringing);
        queued.provider = Provider::Ringotel;
        queued.call_key = "ro-queued".into();
        queued.started_at = Utc::now() - chrono::Duration::minutes(2);
        rig.send(3, queued, Origin::Webhook).await;
        assert_eq!(shows(&rig.recorded()).len(), 1);
        rig.shutdown.cancel();
    }

    /// Issue 25 #2: a call counted as ringing leaves the count when it goes quiet, and a
    /// voicemail after the missed call does not count it twice.
    #[tokio::test]
    async fn the_summary_counts_each_call_once_and_forgets_calls_gone_quiet() {
        let rig = rig(PopupSettings {
            max_on_screen: 1,
            stuck_ringing_after: Duration::from_millis(400),
            ..PopupSettings::default()
        })
        .await;
        let ringing = |key: &str| {
            let mut c = call(CallState::Ringing, None, LegState::Ringing);
            c.call_key = key.into();
            c
        };
        for id in 1..=3 {
            rig.send(id, ringing(&format!("s-{id}")), Origin::Webhook)
                .await;
        }
        let mut missed = call(CallState::Ended, Some(CallResult::Missed), LegState::Ended);
        missed.call_key = "s-2".into();
        rig.send(2, missed, Origin::Webhook).await;
        let last = |rig: &Rig| shows(&rig.recorded()).last().cloned().expect("a popup");
        assert_eq!(last(&rig).2, "1 more incoming call, 1 missed call");
        let before = shows(&rig.recorded()).len();
        let mut voicemail = call(
            CallState::Ended,
            Some(CallResult::Voicemail),
            LegState::Voicemail,
        );
        voicemail.call_key = "s-2".into();
        rig.send(2, voicemail, Origin::Webhook).await;
        assert_eq!(shows(&rig.recorded()).len(), before, "counted once");
        // Call 3 is never heard of again: after the bound it no longer counts as ringing.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(last(&rig).2, "1 missed call");
        rig.shutdown.cancel();
    }

    #[tokio::test]
    async fn popups_left_from_before_a_restart_do_not_hold_new_callers_back() {
        // Three missed-call popups were still up when the PC was shut down for the night.
        let remembered = (1..=3)
            .map(|id| PopupRecord {
                call_id: id,
                phase: Phase::Missed.as_str().to_string(),
                notification_id: Some(id as u32),
                closed: false,
                shown_at: Utc::now() - chrono::Duration::hours(14),
            })
            .collect();
        let rig = rig_remembering(PopupSettings::default(), remembered).await;
        let mut c = call(CallState::Ringing, None, LegState::Ringing);
        c.call_key = "s-next-morning".into();
        rig.send(10, c, Origin::Webhook).await;
        let s = shows(&rig.recorded());
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].2.starts_with("Incoming call from"), "{s:?}");
        // The caller of last night's call 1 left a voicemail, which arrives now: its popup
        // may have been dismissed long ago, so it is not brought back.
        let mut late = call(
            CallState::Ended,
            Some(CallResult::Voicemail),
            LegState::Voicemail,
        );
        late.call_key = "s-1".into();
        rig.send(1, late, Origin::Webhook).await;
        assert_eq!(shows(&rig.recorded()).len(), 1, "{:?}", rig.recorded());
        rig.shutdown.cancel();
    }

    #[tokio::test]
    async fn a_transfer_the_watched_desk_does_not_answer_is_its_missed_call() {
        let rig = rig(PopupSettings {
            watch_extensions: vec!["102".into()],
            ..PopupSettings::default()
        })
        .await;
        rig.send(1, transferred(LegState::Ringing), Origin::Webhook)
            .await;
        // Sales does not pick up; the call goes back to reception.
        rig.send(1, transferred(LegState::Ended), Origin::Webhook)
            .await;
        let s = shows(&rig.recorded());
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].2.starts_with("Incoming call from"), "{s:?}");
        assert!(s[1].2.starts_with("Missed call from"), "{s:?}");
        assert_eq!(s[1].1, Some(s[0].0), "updated in place");

        // A ring group is not a transfer: both desks ring, reception answers first.
        let mut both_ring = transferred(LegState::Ringing);
        both_ring.call_key = "s-group".into();
        both_ring.result = None;
        both_ring.state = CallState::Ringing;
        both_ring.extensions[0].answered = false;
        both_ring.extensions[0].state = Some(LegState::Ringing);
        rig.send(2, both_ring, Origin::Webhook).await;
        let mut taken = transferred(LegState::Ended);
        taken.call_key = "s-group".into();
        rig.send(2, taken, Origin::Webhook).await;
        let s = shows(&rig.recorded());
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(s[3].2, "Answered by Alice Sales (101)");
        rig.shutdown.cancel();
    }

    #[tokio::test]
    async fn a_ringing_popup_nobody_hears_of_again_is_closed() {
        let ms = Duration::from_millis;
        let rig = rig(PopupSettings {
            stuck_ringing_after: ms(1000),
            ..PopupSettings::default()
        })
        .await;
        let ringing = call(CallState::Ringing, None, LegState::Ringing);
        rig.send(1, ringing.clone(), Origin::Webhook).await;
        // News of the call (t ≈ 0.6 s) keeps it up past the first deadline (1 s).
        tokio::time::sleep(ms(550)).await;
        let mut later = ringing;
        later.event_count = 2;
        rig.send(1, later, Origin::Webhook).await;
        tokio::time::sleep(ms(600)).await;
        let recorded = rig.recorded();
        let id = shows(&recorded)[0].0;
        assert!(!recorded.contains(&Recorded::Close { id }), "{recorded:?}");
        // Then silence: the call moved to another session, or its end never came.
        tokio::time::sleep(ms(900)).await;
        let recorded = rig.recorded();
        assert!(recorded.contains(&Recorded::Close { id }), "{recorded:?}");
        assert_eq!(shows(&recorded).len(), 1, "{recorded:?}");
        rig.shutdown.cancel();
    }
}
