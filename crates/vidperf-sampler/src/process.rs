//! This process's resident memory and CPU, from sysinfo, refreshing only this process.

use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Reads this process's figures. CPU utilization needs two refreshes at least
/// [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] apart: it is re-read at most that often, and
/// the last reading (the average over the last interval) is reported in between.
///
/// Memory and CPU use separate `System`s: refreshing a process, even for memory only,
/// re-reads its CPU times, which would shrink the next CPU interval's numerator but not
/// its denominator.
pub(crate) struct ProcessSource {
    system: System,
    cpu_system: System,
    pid: Pid,
    last_cpu_refresh: Option<Instant>,
    cpu: Option<f64>,
}

impl std::fmt::Debug for ProcessSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSource")
            .field("pid", &self.pid)
            .field("cpu", &self.cpu)
            .finish()
    }
}

/// One reading.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcessReading {
    pub(crate) rss_bytes: Option<u64>,
    /// 1.0 = one core busy.
    pub(crate) cpu: Option<f64>,
}

impl ProcessSource {
    /// `None` when the platform cannot name this process.
    pub(crate) fn new() -> Option<Self> {
        let pid = sysinfo::get_current_pid().ok()?;
        Some(Self {
            system: System::new(),
            cpu_system: System::new(),
            pid,
            last_cpu_refresh: None,
            cpu: None,
        })
    }

    pub(crate) fn read(&mut self, now: Instant) -> ProcessReading {
        let cpu_due = self
            .last_cpu_refresh
            .is_none_or(|t| now.duration_since(t) >= cpu_interval());
        let only_us = ProcessesToUpdate::Some(std::slice::from_ref(&self.pid));
        if cpu_due {
            let kind = ProcessRefreshKind::nothing().with_cpu();
            self.cpu_system
                .refresh_processes_specifics(only_us, false, kind);
            // The first refresh has nothing to compare with and reads 0: not a value.
            let usage = self
                .cpu_system
                .process(self.pid)
                .map(|p| f64::from(p.cpu_usage()) / 100.0);
            self.cpu = if self.last_cpu_refresh.is_some() {
                usage
            } else {
                None
            };
            self.last_cpu_refresh = Some(now);
        }
        let only_us = ProcessesToUpdate::Some(std::slice::from_ref(&self.pid));
        self.system.refresh_processes_specifics(
            only_us,
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let rss_bytes = self.system.process(self.pid).map(sysinfo::Process::memory);
        ProcessReading {
            rss_bytes,
            cpu: self.cpu,
        }
    }
}

fn cpu_interval() -> Duration {
    sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(200))
}
