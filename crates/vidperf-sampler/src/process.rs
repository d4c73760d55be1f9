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
    /// `/proc/self/statm`, kept open: one `pread` a tick.
    resident: Option<ResidentReader>,
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
            resident: ResidentReader::new(),
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
        let rss_bytes = self
            .resident
            .as_ref()
            .and_then(ResidentReader::read)
            .or_else(rss::read)
            .or_else(|| {
                let only_us = ProcessesToUpdate::Some(std::slice::from_ref(&self.pid));
                let kind = ProcessRefreshKind::nothing().with_memory();
                self.system
                    .refresh_processes_specifics(only_us, false, kind);
                self.system.process(self.pid).map(sysinfo::Process::memory)
            });
        ProcessReading {
            rss_bytes,
            cpu: self.cpu,
        }
    }
}

fn cpu_interval() -> Duration {
    sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(200))
}

/// Resident memory straight from the kernel where that is one small read: sysinfo's
/// single-process refresh reads several `/proc` files (40–60 µs per tick measured here),
/// `VmRSS` in `/proc/self/status` is one (10–16 µs); [`ResidentReader`]'s `statm` is
/// cheaper still and tried first. Elsewhere, `None` sends the caller to sysinfo.
#[cfg(target_os = "linux")]
mod rss {
    use std::io::Read;

    /// `/proc/self/status` into a buffer on the stack (no allocation per tick).
    pub(super) fn read() -> Option<u64> {
        let mut buf = [0u8; 4096];
        let mut file = std::fs::File::open("/proc/self/status").ok()?;
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(_) => return None,
            }
        }
        let text = std::str::from_utf8(&buf[..len]).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

#[cfg(not(target_os = "linux"))]
mod rss {
    pub(super) fn read() -> Option<u64> {
        None
    }
}

/// Reads this process's resident memory in one `pread` of `/proc/self/statm`, kept
/// open: about a microsecond, no allocation, from any thread (for reads at operation
/// boundaries, on the application's threads).
#[derive(Debug)]
pub(crate) struct ResidentReader {
    #[cfg(target_os = "linux")]
    statm: std::fs::File,
    #[cfg(target_os = "linux")]
    page_bytes: u64,
}

impl ResidentReader {
    /// `None` where there is no `/proc` (or no page size in it).
    #[cfg(target_os = "linux")]
    pub(crate) fn new() -> Option<Self> {
        use std::io::BufRead;
        // The page size without libc: the kernel states it for every mapping.
        let smaps = std::fs::File::open("/proc/self/smaps").ok()?;
        let kib: u64 = std::io::BufReader::new(smaps)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                let rest = l.strip_prefix("KernelPageSize:")?;
                rest.split_whitespace().next()?.parse().ok()
            })?;
        Some(Self {
            statm: std::fs::File::open("/proc/self/statm").ok()?,
            page_bytes: kib * 1024,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new() -> Option<Self> {
        None
    }

    /// Resident bytes now.
    #[cfg(target_os = "linux")]
    pub(crate) fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = self.statm.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * self.page_bytes)
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn read(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn statm_reads_the_same_resident_memory_as_status() {
        let reader = ResidentReader::new().expect("statm and a page size");
        let ballast = vec![1u8; 64 << 20];
        let (a, fast, b) = (rss::read(), reader.read(), rss::read());
        let (a, fast, b) = (a.expect("status"), fast.expect("statm"), b.expect("status"));
        assert!(
            fast >= ballast.len() as u64,
            "statm {fast} below the ballast"
        );
        let (low, high) = (a.min(b) as f64, a.max(b) as f64);
        assert!(
            (low * 0.98..=high * 1.02).contains(&(fast as f64)),
            "statm {fast} vs VmRSS {a}..{b}"
        );
        std::hint::black_box(&ballast);
    }

    #[test]
    fn rss_agrees_with_sysinfo() {
        // A test process is a few MiB, and sysinfo's refresh itself allocates some
        // hundreds of KiB between the two reads: 64 MiB of touched memory makes the
        // comparison about this process's memory, not about sysinfo's own allocations.
        let ballast = vec![1u8; 64 << 20];
        let pid = sysinfo::get_current_pid().expect("pid");
        let mut system = System::new();
        let kind = ProcessRefreshKind::nothing().with_memory();
        let only_us = ProcessesToUpdate::Some(std::slice::from_ref(&pid));
        // The first refresh allocates sysinfo's tables; measure around the second.
        system.refresh_processes_specifics(only_us, false, kind);
        let Some(before) = rss::read() else { return };
        let only_us = ProcessesToUpdate::Some(std::slice::from_ref(&pid));
        system.refresh_processes_specifics(only_us, false, kind);
        let Some(after) = rss::read() else { return };
        let slow = system
            .process(pid)
            .map(sysinfo::Process::memory)
            .expect("sysinfo RSS");
        assert!(
            before >= ballast.len() as u64,
            "VmRSS {before} below the ballast"
        );
        let (low, high) = (before.min(after) as f64, before.max(after) as f64);
        assert!(
            (low * 0.95..=high * 1.05).contains(&(slow as f64)),
            "VmRSS {before}..{after} vs sysinfo {slow}"
        );
        std::hint::black_box(&ballast);
    }
}
