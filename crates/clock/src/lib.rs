//! The engine's idea of "now". Normally the system clock; for tests that simulate days of
//! operation in seconds, a scaled clock shared by every process through one environment
//! variable (`CALLPOP_SIMULATED_CLOCK=factor,wall_origin_ms,simulated_origin_ms`): simulated
//! time = simulated origin + (wall now − wall origin) × factor. Every process given the same
//! value agrees on the time without talking to each other.
#![warn(missing_docs)]

use chrono::{DateTime, Utc};

/// Environment variable that turns on the simulated clock (tests only).
pub const SIMULATED_CLOCK_ENV: &str = "CALLPOP_SIMULATED_CLOCK";

/// A clock: real, or scaled for simulations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    scale: Option<Scale>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    factor: f64,
    wall_origin_ms: i64,
    simulated_origin_ms: i64,
}

/// Why a simulated clock setting was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{SIMULATED_CLOCK_ENV} must be `factor,wall_origin_ms,simulated_origin_ms` (factor > 0): {0}"
)]
pub struct ClockError(String);

impl Default for Clock {
    fn default() -> Clock {
        Clock::real()
    }
}

impl Clock {
    /// The system clock.
    pub fn real() -> Clock {
        Clock { scale: None }
    }

    /// A clock running `factor` times faster than the wall clock, reading
    /// `simulated_origin` at `wall_origin`.
    pub fn scaled(
        factor: f64,
        wall_origin: DateTime<Utc>,
        simulated_origin: DateTime<Utc>,
    ) -> Clock {
        Clock {
            scale: Some(Scale {
                factor,
                wall_origin_ms: wall_origin.timestamp_millis(),
                simulated_origin_ms: simulated_origin.timestamp_millis(),
            }),
        }
    }

    /// Reads the clock setting from the environment (absent: the real clock).
    pub fn from_env() -> Result<Clock, ClockError> {
        match std::env::var(SIMULATED_CLOCK_ENV) {
            Ok(v) if !v.trim().is_empty() => Clock::parse(&v),
            _ => Ok(Clock::real()),
        }
    }

    /// Parses `factor,wall_origin_ms,simulated_origin_ms`.
    pub fn parse(value: &str) -> Result<Clock, ClockError> {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        let [factor, wall, sim] = parts.as_slice() else {
            return Err(ClockError(value.to_string()));
        };
        let factor: f64 = factor.parse().map_err(|_| ClockError(value.to_string()))?;
        let wall: i64 = wall.parse().map_err(|_| ClockError(value.to_string()))?;
        let sim: i64 = sim.parse().map_err(|_| ClockError(value.to_string()))?;
        if !(factor.is_finite() && factor > 0.0) {
            return Err(ClockError(value.to_string()));
        }
        Ok(Clock {
            scale: Some(Scale {
                factor,
                wall_origin_ms: wall,
                simulated_origin_ms: sim,
            }),
        })
    }

    /// The value to put in [`SIMULATED_CLOCK_ENV`] for another process to share this clock.
    pub fn to_env(&self) -> Option<String> {
        self.scale.map(|s| {
            format!(
                "{},{},{}",
                s.factor, s.wall_origin_ms, s.simulated_origin_ms
            )
        })
    }

    /// True when this is a simulated clock.
    pub fn is_simulated(&self) -> bool {
        self.scale.is_some()
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        let wall = Utc::now();
        match self.scale {
            None => wall,
            Some(s) => {
                let elapsed = (wall.timestamp_millis() - s.wall_origin_ms) as f64 * s.factor;
                DateTime::from_timestamp_millis(s.simulated_origin_ms + elapsed as i64)
                    .unwrap_or(wall)
            }
        }
    }

    /// How long `d` of this clock's time takes on the wall clock.
    pub fn wall_duration(&self, d: chrono::Duration) -> std::time::Duration {
        let d = d.to_std().unwrap_or_default();
        match self.scale {
            None => d,
            Some(s) => d.div_f64(s.factor),
        }
    }

    /// Sleeps for `d` of this clock's time.
    pub async fn sleep(&self, d: chrono::Duration) {
        tokio::time::sleep(self.wall_duration(d)).await;
    }

    /// Sleeps until this clock reads `t` (returns at once if it is past).
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        let left = t - self.now();
        if left > chrono::Duration::zero() {
            self.sleep(left).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_round_trips_through_the_environment_value() {
        let origin = Utc::now();
        let sim = origin - chrono::Duration::days(30);
        let clock = Clock::scaled(3600.0, origin, sim);
        let copy = Clock::parse(&clock.to_env().expect("scaled")).expect("parses");
        assert_eq!(clock, copy);
        let now = clock.now();
        assert!(
            // The origin is kept to the millisecond.
            now >= sim - chrono::Duration::milliseconds(1)
                && now < sim + chrono::Duration::hours(1),
            "{now}"
        );
        assert_eq!(
            clock.wall_duration(chrono::Duration::hours(2)),
            std::time::Duration::from_secs(2)
        );
        assert!(Clock::parse("fast").is_err());
        assert!(Clock::parse("0,1,2").is_err());
        assert!(!Clock::real().is_simulated());
    }
}
