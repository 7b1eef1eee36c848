//! Backfill: RingCentral does not retry failed webhook deliveries (docs/PROTOCOL.md §0 #9), so every
//! gap — first start, downtime, blacklisting, an expired subscription, a tunnel outage, a
//! sleeping laptop — is filled from the call-log API. Records go through the same pipeline as
//! webhooks (as backfill-origin deliveries: stored, merged by `telephonySessionId`, no popups);
//! importing the same page twice changes nothing.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::health::{Health, Part, PartState};
use callpop_clock::Clock;
use callpop_core::numbers::Country;
use callpop_core::ringcentral::calllog::record_to_delivery;
use callpop_ringcentral::api::{ApiError, Platform};
use callpop_store::writer::StoreWriter;
use callpop_store::IngestOutcome;

/// Engine-state key of what has been backfilled.
pub const STATE_KEY: &str = "ringcentral.backfill";

/// Records per call-log page (the API's maximum).
const PER_PAGE: u32 = 1000;
/// The Heavy group allows 10 requests a minute: keep 6 s between pages.
const PAGE_SPACING: Duration = Duration::seconds(6);
/// Calls appear in the call log 15–30 s after they end; look this much further back.
const LOOKBACK: Duration = Duration::minutes(10);
/// How far back a gap fill reaches for calls still open: one that has been ringing or
/// connected for longer is not waiting for its call-log record any more.
const OPEN_CALL_HORIZON: Duration = Duration::hours(24);
/// A call still going when a gap was filled may have lost events in the gap, and its
/// call-log record appears only once it ends; one that began in the gap is not even known yet.
/// The fill is repeated this often…
const FOLLOW_UP_EVERY: Duration = Duration::minutes(5);
/// …for this long after the gap in any case (most calls are shorter)…
const FOLLOW_UP_ALWAYS: Duration = Duration::minutes(30);
/// …and up to this long while a call that began before the gap is still open.
const FOLLOW_UP_FOR: Duration = Duration::hours(2);

/// A request to fill a gap.
#[derive(Debug)]
pub struct BackfillRequest {
    /// Start of the gap.
    pub since: DateTime<Utc>,
    /// Why (for logs and health).
    pub reason: String,
    /// Told how the run that covers this request went (the window's "Backfill now" reports
    /// success only once it is true): the report, or why it failed (it is retried anyway).
    pub reply: Option<oneshot::Sender<Result<BackfillReport, String>>>,
}

/// What was backfilled, remembered between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BackfillState {
    /// When the last backfill ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The period it covered.
    pub last_from: Option<DateTime<Utc>>,
    /// End of that period.
    pub last_to: Option<DateTime<Utc>>,
    /// Records read.
    pub last_records: u64,
    /// Calls it added that live deliveries had missed.
    pub last_new_calls: u64,
}

/// The result of one backfill run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Call-log records read.
    pub records: u64,
    /// Records not seen before (new deliveries).
    pub stored: u64,
    /// Of those, calls that did not exist before.
    pub new_calls: u64,
    /// New calls that were missed (for one summary instead of popups).
    pub new_missed: u64,
    /// Records that could not be read.
    pub unreadable: u64,
    /// Pages fetched.
    pub pages: u32,
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The API failed (rate limit, network, auth).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] callpop_store::StoreError),
}

/// "no call was missing", "1 missing call added", "4 missing calls added".
pub fn added(new_calls: u64) -> String {
    match new_calls {
        0 => "no call was missing".into(),
        1 => "1 missing call added".into(),
        n => format!("{n} missing calls added"),
    }
}

/// Reads the call log for `[from, to]`, page by page, and stores every record.
pub async fn run_once(
    platform: &Platform,
    writer: &StoreWriter,
    country: &Country,
    clock: &Clock,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BackfillReport, BackfillError> {
    let mut report = BackfillReport::default();
    let mut page = 1u32;
    loop {
        if page > 1 {
            clock.sleep(PAGE_SPACING).await;
        }
        let result = platform.call_log_page(from, to, page, PER_PAGE).await?;
        report.pages += 1;
        for record in &result.records {
            report.records += 1;
            let delivery = match record_to_delivery(record, country, clock.now()) {
                Ok(d) => d,
                Err(e) => {
                    report.unreadable += 1;
                    tracing::warn!(error = %e, "call-log record skipped");
                    continue;
                }
            };
            match writer.ingest(delivery).await? {
                IngestOutcome::Stored { changes, .. } => {
                    report.stored += 1;
                    for c in changes.iter().filter(|c| c.before.is_none()) {
                        report.new_calls += 1;
                        if c.after.as_ref().is_some_and(|call| {
                            matches!(
                                call.result,
                                Some(callpop_core::model::CallResult::Missed)
                                    | Some(callpop_core::model::CallResult::Voicemail)
                            )
                        }) {
                            report.new_missed += 1;
                        }
                    }
                }
                IngestOutcome::Duplicate { .. } => {}
            }
        }
        if !result.has_next || result.records.is_empty() {
            break;
        }
        page += 1;
    }
    Ok(report)
}

/// The backfill part of the engine: coalesces gap reports and fills them once the call log
/// has caught up.
pub struct Backfiller {
    /// The API.
    pub platform: Arc<Platform>,
    /// Where records are stored.
    pub writer: StoreWriter,
    /// Health board.
    pub health: Arc<Health>,
    /// Number reading.
    pub country: Country,
    /// The clock.
    pub clock: Clock,
    /// How long after a gap closes to wait for the call log to catch up.
    pub settle: Duration,
    /// What was done before.
    pub state: BackfillState,
}

impl Backfiller {
    /// Where a gap that started at `since` is filled from. A call still open that started
    /// earlier may have lost its end in the gap, and the call log files a record under the
    /// call's start, so the fill reaches back to the oldest such call.
    async fn fill_from(&self, since: DateTime<Utc>) -> DateTime<Utc> {
        let horizon = self.clock.now() - OPEN_CALL_HORIZON;
        let reach = match self.writer.oldest_open_call_since(horizon).await {
            Ok(Some(open)) => open.min(since),
            Ok(None) => since,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for open calls; filling the gap only");
                since
            }
        };
        reach - LOOKBACK
    }

    /// When to fill again after a gap's fill: every few minutes for the first half hour (a
    /// call that ended just before had no record yet; one that began in the gap ends later),
    /// then while a call that began before the gap was reported is still open, for a while.
    /// A follow-up reads only the last two hours before the gap's end (and back to the oldest
    /// open call) and stores nothing twice.
    async fn follow_up(
        &self,
        from: DateTime<Utc>,
        gap_reported_at: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let reported = gap_reported_at?;
        let now = self.clock.now();
        let since_gap = now - reported;
        if since_gap > FOLLOW_UP_FOR {
            return None;
        }
        if since_gap < FOLLOW_UP_ALWAYS {
            return Some(now + FOLLOW_UP_EVERY);
        }
        let open = self.writer.oldest_open_call_since(from).await.ok()??;
        (open <= reported).then_some(now + FOLLOW_UP_EVERY)
    }

    fn report(&self, outcome: &Result<BackfillReport, BackfillError>, from: DateTime<Utc>) {
        match outcome {
            Ok(r) => self.health.set_part(
                Part::Backfill,
                PartState::Ok,
                format!(
                    "Checked the call log at {} for calls since {}: {}.",
                    self.clock
                        .now()
                        .with_timezone(&chrono::Local)
                        .format("%H:%M"),
                    from.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M"),
                    added(r.new_calls)
                ),
            ),
            Err(e) => {
                let section = match e {
                    BackfillError::Api(api) => api.settings_section(),
                    BackfillError::Store(_) => None,
                };
                self.health.set_part_fixed_in(
                    Part::Backfill,
                    PartState::Error,
                    e.to_string(),
                    section,
                )
            }
        }
    }

    /// Runs until shutdown; requests arrive on the returned sender.
    pub fn start(
        mut self,
        shutdown: CancellationToken,
    ) -> (mpsc::Sender<BackfillRequest>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<BackfillRequest>(64);
        let task = tokio::spawn(async move {
            let mut pending: Option<(DateTime<Utc>, DateTime<Utc>)> = None; // (since, run at)
                                                                            // When the last gap was reported: calls that began before it and are still open
                                                                            // after a fill are looked up again once they can have a record.
            let mut gap_reported_at: Option<DateTime<Utc>> = None;
            let mut waiting: Vec<oneshot::Sender<Result<BackfillReport, String>>> = Vec::new();
            let mut failures = 0u32;
            loop {
                let run_at = pending.map(|(_, at)| at);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    request = rx.recv() => match request {
                        Some(r) => {
                            tracing::info!(since = %r.since, reason = %r.reason, "backfill requested");
                            waiting.extend(r.reply);
                            gap_reported_at = Some(self.clock.now());
                            let since = pending.map_or(r.since, |(s, _)| s.min(r.since));
                            // Someone waits for the answer ("Backfill now"): no settling.
                            let settle = if waiting.is_empty() { self.settle } else { Duration::zero() };
                            // A run already due sooner stays due: requests in a row (a link
                            // that keeps dropping) must not push the fill back for ever.
                            let at = self.clock.now() + settle;
                            let at = pending.map_or(at, |(_, due)| due.min(at));
                            pending = Some((since, at));
                        }
                        None => break,
                    },
                    _ = sleep_until_opt(&self.clock, run_at) => {
                        let Some((since, _)) = pending.take() else { continue };
                        let from = self.fill_from(since).await;
                        let to = self.clock.now();
                        let outcome = run_once(&self.platform, &self.writer, &self.country, &self.clock, from, to).await;
                        self.report(&outcome, from);
                        for reply in waiting.drain(..) {
                            let _ = reply.send(outcome.as_ref().map(Clone::clone).map_err(ToString::to_string));
                        }
                        match &outcome {
                            Ok(r) => {
                                failures = 0;
                                tracing::info!(records = r.records, new_calls = r.new_calls, pages = r.pages, "backfill done");
                                self.state = BackfillState {
                                    last_run_at: Some(self.clock.now()),
                                    last_from: Some(from),
                                    last_to: Some(to),
                                    last_records: r.records,
                                    last_new_calls: r.new_calls,
                                };
                                if let Ok(json) = serde_json::to_string(&self.state) {
                                    let _ = self.writer.set_state(STATE_KEY, &json).await;
                                }
                                if let Some(at) = self.follow_up(from, gap_reported_at).await {
                                    // The first fill read the whole gap; a follow-up looks only
                                    // for calls still going at the gap's end (fill_from reaches
                                    // back to the oldest one still open).
                                    let recent = gap_reported_at.map_or(since, |r| r - FOLLOW_UP_FOR);
                                    pending = Some((since.max(recent), at));
                                }
                            }
                            Err(e) => {
                                failures += 1;
                                tracing::warn!(error = %e, "backfill failed; will retry");
                                let retry_at = match e {
                                    BackfillError::Api(ApiError::RateLimited { until, .. }) => *until,
                                    _ => self.clock.now() + Duration::seconds(60 * 2i64.pow(failures.min(5))),
                                };
                                pending = Some((since, retry_at));
                            }
                        }
                    }
                }
            }
        });
        (tx, task)
    }
}

async fn sleep_until_opt(clock: &Clock, t: Option<DateTime<Utc>>) {
    match t {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}
