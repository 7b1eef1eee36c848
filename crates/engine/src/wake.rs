//! Noticing that the computer slept. Timers run on the monotonic clock, which stops during
//! suspend on Linux, so after a laptop's night in its bag the subscription keeper's next check
//! was still up to fifteen minutes away while RingCentral, whose deliveries had been failing,
//! had blacklisted the subscription. A jump of the wall clock past the monotonic one means the
//! machine was asleep: the keeper checks at once and the call log fills the time asleep.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backfill::BackfillRequest;
use crate::subscriptions::KeeperHandle;
use callpop_clock::Clock;

/// How often the two clocks are compared.
const TICK: Duration = Duration::from_secs(30);

/// How far the wall clock must run ahead of the monotonic one to count as a sleep (small
/// corrections of the wall clock by NTP are not).
const MIN_SLEEP: Duration = Duration::from_secs(60);

/// How long the machine slept between two readings, if it did: the wall clock moved on
/// further than the monotonic clock.
fn slept(wall_elapsed: Duration, monotonic_elapsed: Duration) -> Option<Duration> {
    wall_elapsed
        .checked_sub(monotonic_elapsed)
        .filter(|asleep| *asleep >= MIN_SLEEP)
}

/// What the watcher tells after a sleep.
pub struct WakeWatcher {
    /// The engine's clock (the time the backfill starts from).
    pub clock: Clock,
    /// The subscription keeper, to check the subscription at once.
    pub keeper: KeeperHandle,
    /// The WebSocket, to reconnect at once (its connection did not survive the sleep).
    pub websocket: Option<crate::websocket::WsHandle>,
    /// Where the time asleep is sent to be backfilled.
    pub backfill: mpsc::Sender<BackfillRequest>,
}

impl WakeWatcher {
    /// Compares the clocks every [`TICK`] until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wall = SystemTime::now();
        let mut monotonic = Instant::now();
        let mut seen: DateTime<Utc> = self.clock.now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let (wall_now, monotonic_now) = (SystemTime::now(), Instant::now());
            let wall_elapsed = wall_now.duration_since(wall).unwrap_or_default();
            if let Some(asleep) = slept(wall_elapsed, monotonic_now - monotonic) {
                tracing::info!(
                    minutes = asleep.as_secs() / 60,
                    "the computer was asleep; checking the subscription and the call log"
                );
                self.keeper.check_now().await;
                if let Some(ws) = &self.websocket {
                    ws.nudge();
                }
                let _ = self.backfill.try_send(BackfillRequest {
                    since: seen,
                    reason: "the computer was asleep".into(),
                    reply: None,
                });
            }
            (wall, monotonic, seen) = (wall_now, monotonic_now, self.clock.now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_is_the_wall_clock_running_ahead_of_the_monotonic_one() {
        let s = Duration::from_secs;
        assert_eq!(slept(s(30), s(30)), None, "awake");
        assert_eq!(slept(s(31), s(30)), None, "an NTP nudge");
        assert_eq!(slept(s(8 * 3600), s(30)), Some(s(8 * 3600 - 30)));
        assert_eq!(slept(s(90), s(30)), Some(s(60)));
        // The wall clock set back: not a sleep.
        assert_eq!(slept(s(0), s(30)), None);
    }
}
