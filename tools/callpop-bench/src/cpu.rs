//! CPU accounting around a run, so each rate is published next to what it cost: on two
//! shared cores the rate is bounded by busy share × 2 / CPU per delivery, and the CPU figure
//! drifts far less between runs than the rate does.

use anyhow::{Context, Result};

/// Ticks per second of `/proc/stat` (USER_HZ): part of the kernel's ABI, 100 on x86 and ARM.
const USER_HZ: f64 = 100.0;

/// The whole machine's CPU counters at one moment.
#[derive(Clone, Copy)]
pub struct Machine {
    busy: u64,
    total: u64,
}

/// What the machine did between two samples (or over several such stretches).
#[derive(Clone, Copy, Default)]
pub struct MachineUse {
    /// Core-seconds spent running anything (user, system, interrupts, steal).
    pub busy_seconds: f64,
    /// Core-seconds that went by, busy or idle.
    pub core_seconds: f64,
}

impl MachineUse {
    /// Share of the cores' time that was busy.
    pub fn busy_share(&self) -> f64 {
        self.busy_seconds / self.core_seconds.max(1.0 / USER_HZ)
    }

    /// Both stretches together.
    pub fn plus(self, other: MachineUse) -> MachineUse {
        MachineUse {
            busy_seconds: self.busy_seconds + other.busy_seconds,
            core_seconds: self.core_seconds + other.core_seconds,
        }
    }
}

impl Machine {
    /// Reads the aggregate `cpu` line of `/proc/stat`.
    pub fn now() -> Result<Machine> {
        let stat = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
        Machine::parse(&stat)
    }

    fn parse(stat: &str) -> Result<Machine> {
        let line = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("/proc/stat has no cpu line")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("/proc/stat cpu line")?;
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        Ok(Machine {
            busy,
            total: busy + idle,
        })
    }

    /// What the machine did since `earlier`.
    pub fn since(&self, earlier: Machine) -> MachineUse {
        let busy = self.busy.saturating_sub(earlier.busy);
        let total = self.total.saturating_sub(earlier.total).max(1);
        MachineUse {
            busy_seconds: busy as f64 / USER_HZ,
            core_seconds: total as f64 / USER_HZ,
        }
    }
}

/// CPU time one process's live threads have used so far, in seconds (their nanosecond
/// `schedstat` counters, summed).
pub fn process_seconds(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may end between listing and reading (Tokio's blocking pool, a test's own
        // threads): its time is gone with it.
        let stat = match task.and_then(|t| std::fs::read_to_string(t.path().join("schedstat"))) {
            Ok(stat) => stat,
            Err(e) if thread_gone(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .context("schedstat")?;
    }
    Ok(ns as f64 / 1e9)
}

/// Reading a thread that has just ended fails with ENOENT or, once it is being torn down, ESRCH.
fn thread_gone(e: &std::io::Error) -> bool {
    const ESRCH: i32 = 3;
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_idle_are_told_apart() {
        let before = Machine::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let after = Machine::parse("cpu  250 0 100 900 100 0 50 0 0 0\n").unwrap();
        let used = after.since(before);
        assert!((used.busy_seconds - 2.5).abs() < 1e-9);
        assert!((used.busy_share() - 250.0 / 400.0).abs() < 1e-9);
        let twice = used.plus(used);
        assert!((twice.busy_seconds - 5.0).abs() < 1e-9);
        assert!((twice.busy_share() - 250.0 / 400.0).abs() < 1e-9);
    }

    #[test]
    fn a_process_has_used_some_cpu_even_while_its_threads_come_and_go() {
        let churn: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(1))))
            .collect();
        for _ in 0..50 {
            assert!(process_seconds(std::process::id()).unwrap() > 0.0);
        }
        for thread in churn {
            thread.join().unwrap();
        }
    }
}
