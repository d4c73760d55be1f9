//! [`ResourceMonitor`]: one named background thread that samples this process and the
//! GPUs, and answers per-window peaks without any system call on the span path.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use vidperf_core::figure::{Across, Unit};
use vidperf_core::metrics::Family;
use vidperf_core::stats::{Health, HealthSource};
use vidperf_core::worker::Worker;
use vidperf_core::{DevicePeaks, Figure, Figures, ResourcePeaks, ResourceWindows, WindowStart};

use crate::MAX_DEVICES;
use crate::gate::Gate;
use crate::gpu::{Gpm, GpuSource, MemoryReader};
use crate::gpu_types::{ErrorCounters, GpmInterval, GpuStatus, NvmlLibrary, POLLED};
use crate::health::{DeviceNow, MonitorHealth};
use crate::process::{ProcessReading, ProcessSource, ResidentReader};
use crate::stack::MaxStack;

/// How the monitor samples.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// Time between samples while operations are open. Default 10 ms (100 Hz): GPU
    /// memory moves fast, and a 20 ms allocation spike inside an operation must fall on
    /// a sample; process CPU is re-read at most every 200 ms whatever this is. Values
    /// below 1 ms are raised to 1 ms.
    pub interval: Duration,
    /// An operation that opens when the newest sample is older than this asks the
    /// monitor for one right away (taken on the monitor's thread, never the
    /// operation's), so that even operations shorter than `interval` get a sample of
    /// their own. Default 5 ms (under continuous load that is at most 200 extra
    /// samples a second, about 1% of a core); zero turns it off.
    pub boundary_gap: Duration,
    /// Also read this process's resident memory and every GPU's memory used on the
    /// operation's own thread when it opens and when it closes, so that even an
    /// operation of a few microseconds has its start and end in its peaks. Off by
    /// default: it puts a `/proc` read (about 5 µs) and, with a GPU, an NVML call per
    /// device (10–20 µs on real hardware) at each end of every operation, on the
    /// application's thread. `docs/BENCHMARKS.md` has the measured cost.
    pub boundary_reads: bool,
    /// Time between queries of NVML's running-process list (this process's own GPU
    /// memory). The call costs milliseconds and holds a driver lock. Default 1 s.
    pub process_list_interval: Duration,
    /// Time between fetches of the driver's per-process utilization samples (this
    /// process's SM utilization; the samples keep their own timestamps, so this only
    /// bounds how late they arrive). Default 100 ms.
    pub process_utilization_interval: Duration,
    /// Time between GPM samples on GPUs that have GPM (Hopper and newer); an operation
    /// gets GPM figures once two GPM samples fall inside it. An operation opening after
    /// a quiet spell also gets a GPM sample at its start. Default 50 ms.
    pub gpm_interval: Duration,
    /// Where NVML comes from. Default: the system library.
    pub nvml: NvmlLibrary,
    /// Whether to sample this process's RAM and CPU. Default true.
    pub process: bool,
    /// Park the thread after this long with no operation open. Default 1 s.
    pub park_after: Duration,
    /// First wait after an NVML error (doubles up to 5 s). Default 250 ms.
    pub error_backoff: Duration,
    /// Entries per metric in the peak structure (bounds memory; see
    /// `MonitorHealth::inexact_merges`). Default 16,384.
    pub max_entries: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(10),
            boundary_gap: Duration::from_millis(5),
            boundary_reads: false,
            process_list_interval: Duration::from_secs(1),
            process_utilization_interval: Duration::from_millis(100),
            gpm_interval: Duration::from_millis(50),
            nvml: NvmlLibrary::System,
            process: true,
            park_after: Duration::from_secs(1),
            error_backoff: Duration::from_millis(250),
            max_entries: 16_384,
        }
    }
}

impl MonitorConfig {
    /// Sets [`MonitorConfig::interval`].
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`MonitorConfig::boundary_gap`] (zero: no samples on request).
    #[must_use]
    pub fn with_boundary_gap(mut self, gap: Duration) -> Self {
        self.boundary_gap = gap;
        self
    }

    /// Sets [`MonitorConfig::boundary_reads`].
    #[must_use]
    pub fn with_boundary_reads(mut self, on: bool) -> Self {
        self.boundary_reads = on;
        self
    }

    /// Sets [`MonitorConfig::nvml`].
    #[must_use]
    pub fn with_nvml(mut self, nvml: NvmlLibrary) -> Self {
        self.nvml = nvml;
        self
    }

    /// Sets [`MonitorConfig::process_list_interval`].
    #[must_use]
    pub fn with_process_list_interval(mut self, interval: Duration) -> Self {
        self.process_list_interval = interval;
        self
    }

    /// Sets [`MonitorConfig::process_utilization_interval`].
    #[must_use]
    pub fn with_process_utilization_interval(mut self, interval: Duration) -> Self {
        self.process_utilization_interval = interval;
        self
    }

    /// Sets [`MonitorConfig::gpm_interval`].
    #[must_use]
    pub fn with_gpm_interval(mut self, interval: Duration) -> Self {
        self.gpm_interval = interval;
        self
    }

    /// Sets [`MonitorConfig::process`].
    #[must_use]
    pub fn with_process(mut self, process: bool) -> Self {
        self.process = process;
        self
    }

    /// Sets [`MonitorConfig::park_after`].
    #[must_use]
    pub fn with_park_after(mut self, park_after: Duration) -> Self {
        self.park_after = park_after;
        self
    }

    /// Sets [`MonitorConfig::error_backoff`].
    #[must_use]
    pub fn with_error_backoff(mut self, backoff: Duration) -> Self {
        self.error_backoff = backoff;
        self
    }
}

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The operating system refused the sampling thread.
    #[error("cannot start the resource monitor thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why [`ResourceMonitor::shutdown`] did not finish cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The thread did not stop in time (it is blocked in a driver call); it was left
    /// to finish on its own.
    #[error("the resource monitor did not stop within {0:?}; it is blocked in a driver call")]
    Timeout(Duration),
}

/// The figures kept as the peak of the samples inside a window, for the whole machine:
/// one monotonic stack each, in this order (slots `0..DEVICE_BASE`).
const STACKED: [Figure; 9] = [
    Figure::ProcessMemory,
    Figure::ProcessCpu,
    Figure::GpuMemory,
    Figure::GpuProcessMemory,
    Figure::GpuUtilization,
    Figure::GpuMemoryUtilization,
    Figure::GpuDecoderUtilization,
    Figure::GpuEncoderUtilization,
    Figure::GpuPower,
];
/// Per-device stacks follow, [`POLLED`] for each device, on multi-GPU machines.
const DEVICE_BASE: usize = STACKED.len();
const METRICS: usize = DEVICE_BASE + POLLED.len() * MAX_DEVICES;
const NO_SAMPLE: u64 = u64::MAX;

fn device_slot(device: usize, k: usize) -> usize {
    DEVICE_BASE + device * POLLED.len() + k
}

/// Stacks hold integers: bytes as they are, ratios and cores in millionths, watts in
/// milliwatts.
fn scale(figure: Figure) -> f64 {
    match figure.def().unit {
        Unit::Bytes => 1.0,
        Unit::Watts | Unit::Joules => 1e3,
        _ => 1e6,
    }
}

fn encode(figure: Figure, value: f64) -> u64 {
    (value.max(0.0) * scale(figure)).round() as u64
}

fn decode(figure: Figure, value: u64) -> f64 {
    value as f64 / scale(figure)
}

/// The newest sample's figures for the metrics a one-GPU window reports, published
/// under a sequence lock: a window that saw no other sample (any operation shorter
/// than the sampling interval) takes its peaks from here, without the stacks' lock.
#[derive(Debug)]
struct Newest {
    /// Odd while the sampler writes.
    version: AtomicU64,
    /// The sample's sequence number.
    seq: AtomicU64,
    /// By machine slot ([`STACKED`]); `ABSENT` when not measured.
    values: [AtomicU64; DEVICE_BASE],
}

/// A figure not measured, in [`Newest`].
const ABSENT: u64 = u64::MAX;

impl Newest {
    fn new() -> Self {
        Self {
            version: AtomicU64::new(0),
            seq: AtomicU64::new(NO_SAMPLE),
            values: std::array::from_fn(|_| AtomicU64::new(ABSENT)),
        }
    }

    /// Publishes sample `seq` (sampler thread only).
    fn publish(&self, seq: u64, values: [Option<u64>; DEVICE_BASE]) {
        self.version.fetch_add(1, Ordering::AcqRel);
        std::sync::atomic::fence(Ordering::Release);
        self.seq.store(seq, Ordering::Relaxed);
        for (slot, v) in self.values.iter().zip(values) {
            slot.store(v.unwrap_or(ABSENT), Ordering::Relaxed);
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Sample `seq`'s figures, if it is the one published and no write overlapped.
    fn read(&self, seq: u64) -> Option<[Option<u64>; DEVICE_BASE]> {
        let before = self.version.load(Ordering::Acquire);
        if before % 2 == 1 || self.seq.load(Ordering::Relaxed) != seq {
            return None;
        }
        let values = std::array::from_fn(|i| {
            Some(self.values[i].load(Ordering::Relaxed)).filter(|v| *v != ABSENT)
        });
        std::sync::atomic::fence(Ordering::Acquire);
        (self.version.load(Ordering::Relaxed) == before).then_some(values)
    }
}

/// Driver samples kept per series: at the driver's usual 6 samples a second, about 11
/// minutes; an operation longer than that gets the figures of its last 11 minutes.
const TIMED_SAMPLES: usize = 4096;
/// GPM intervals kept: at the default 50 ms, about 55 minutes.
const GPM_INTERVALS: usize = 65_536;

/// Samples that carry their own time (the driver's), oldest first.
#[derive(Debug, Default)]
struct TimedSeries {
    /// (microseconds since the Unix epoch, value).
    samples: VecDeque<(u64, f64)>,
}

impl TimedSeries {
    fn push(&mut self, at_us: u64, value: f64) {
        // The driver stamps in order; anything older than the newest is a repeat.
        if self.samples.back().is_some_and(|(t, _)| *t >= at_us) {
            return;
        }
        if self.samples.len() == TIMED_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at_us, value));
    }

    /// The peak and mean of the samples stamped within `[from_us, to_us]`.
    fn over(&self, from_us: u64, to_us: u64) -> Option<(f64, f64)> {
        let first = self.samples.partition_point(|(t, _)| *t < from_us);
        let (mut peak, mut sum, mut n) = (f64::MIN, 0.0, 0u32);
        for (_, v) in self.samples.range(first..).take_while(|(t, _)| *t <= to_us) {
            peak = peak.max(*v);
            sum += v;
            n += 1;
        }
        (n > 0).then(|| (peak, sum / f64::from(n)))
    }
}

/// GPM intervals by the sample that ends them, as running sums: for each figure, the
/// sum of value × seconds and the sum of seconds, so that the time-weighted mean over
/// any run of intervals is a difference of two entries.
#[derive(Debug, Default)]
struct GpmSeries {
    /// (sample sequence number ending the interval, running sums).
    entries: VecDeque<(u64, [f64; 6])>,
    totals: [f64; 6],
}

impl GpmSeries {
    fn push(&mut self, seq: u64, interval: &GpmInterval) {
        let figures = [
            interval.sm_utilization,
            interval.sm_occupancy,
            interval.tensor_activity,
        ];
        for (i, v) in figures.iter().enumerate() {
            if let Some(v) = v {
                self.totals[2 * i] += v * interval.seconds;
                self.totals[2 * i + 1] += interval.seconds;
            }
        }
        if self.entries.len() == GPM_INTERVALS {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, self.totals));
    }

    /// Time-weighted means of the intervals that lie within samples `first..=last`:
    /// those that start at or after sample `first` and end by sample `last`.
    fn between(&self, first: u64, last: u64) -> [Option<f64>; 3] {
        let start = self.entries.partition_point(|(s, _)| *s < first);
        let end = self.entries.partition_point(|(s, _)| *s <= last);
        if end <= start + 1 {
            return [None; 3];
        }
        let (a, b) = (&self.entries[start].1, &self.entries[end - 1].1);
        std::array::from_fn(|i| {
            let seconds = b[2 * i + 1] - a[2 * i + 1];
            (seconds > 0.0).then(|| ((b[2 * i] - a[2 * i]) / seconds).clamp(0.0, 1.0))
        })
    }
}

/// Energy counters by the sample that read them: (sequence number, joules per device,
/// NaN where a device gave none), oldest first.
#[derive(Debug, Default)]
struct EnergySeries {
    entries: VecDeque<(u64, [f64; MAX_DEVICES])>,
}

/// Energy readings kept: at the default 10 ms, about 11 minutes of busy sampling.
const ENERGY_READINGS: usize = 65_536;

impl EnergySeries {
    fn push(&mut self, seq: u64, energy: &[Option<f64>; MAX_DEVICES]) {
        if self.entries.len() == ENERGY_READINGS {
            self.entries.pop_front();
        }
        self.entries
            .push_back((seq, energy.map(|e| e.unwrap_or(f64::NAN))));
    }

    /// Per device, the energy used between the first and the last reading within
    /// samples `first..=last` (absent with fewer than two readings, or when the counter
    /// went back: the driver was reloaded).
    fn between(&self, first: u64, last: u64) -> [Option<f64>; MAX_DEVICES] {
        let start = self.entries.partition_point(|(s, _)| *s < first);
        let end = self.entries.partition_point(|(s, _)| *s <= last);
        if end <= start + 1 {
            return [None; MAX_DEVICES];
        }
        let (a, b) = (&self.entries[start].1, &self.entries[end - 1].1);
        std::array::from_fn(|d| Some(b[d] - a[d]).filter(|e| e.is_finite() && *e >= 0.0))
    }
}

/// The figures read by their own time rather than by sample.
#[derive(Debug, Default)]
struct Timed {
    /// The devices' energy counters.
    energy: EnergySeries,
    /// The driver's GPU utilization samples, per device.
    utilization: Vec<TimedSeries>,
    /// This process's SM utilization samples (all devices).
    process_utilization: TimedSeries,
    gpm: GpmSeries,
}

#[derive(Debug)]
struct Shared {
    config: MonitorConfig,
    epoch: Instant,
    /// `epoch` on the wall clock the driver stamps its samples with, microseconds since
    /// the Unix epoch.
    epoch_unix_us: u64,
    timed: Mutex<Timed>,
    /// Whether `timed` has ever received anything (closing skips its lock until then).
    timed_used: AtomicBool,
    /// For reads at operation boundaries ([`MonitorConfig::boundary_reads`]).
    boundary_gpu: Option<MemoryReader>,
    boundary_memory: Option<ResidentReader>,
    stacks: RwLock<Vec<MaxStack>>,
    newest: Newest,
    /// Sequence number of the newest sample, or `NO_SAMPLE`.
    latest_seq: AtomicU64,
    /// When the newest sample was taken, nanoseconds since `epoch`.
    latest_at: AtomicU64,
    /// Windows opening and the thread parking and sleeping.
    gate: Gate,
    /// An opening window asked for a sample now.
    requested: AtomicBool,
    /// Samples taken on request.
    requested_samples: AtomicU64,
    stop: AtomicBool,
    tick_nanos: AtomicU64,
    ticks: AtomicU64,
    gpu_status: GpuStatus,
    gpu_devices: usize,
    /// The newest sample's figures (for health and the live gauges), replaced each tick.
    current: Mutex<Current>,
    errors: ErrorCounters,
}

/// Samples this process's resident memory and CPU (sysinfo) and every NVIDIA GPU's
/// memory and utilization (NVML) on one background thread named `vidperf-monitor`, and
/// implements [`ResourceWindows`] so that every operation gets the peaks of its own
/// window.
///
/// - Opening a window is O(1) (two atomic loads and an increment); closing it is
///   O(log n) in the samples held, whatever the number of open windows. Neither makes
///   a system or driver call.
/// - The thread parks after [`MonitorConfig::park_after`] with no window open and wakes
///   when one opens.
/// - A missing GPU, driver or NVML function is decided once at start and reported in
///   [`ResourceMonitor::health`]; CPU and RAM keep working. Errors while running make
///   the GPU figures of that moment absent (never stale numbers), are counted by kind,
///   and back off exponentially until NVML answers again.
///
/// ```
/// use vidperf_sampler::{MonitorConfig, NvmlLibrary, ResourceMonitor};
/// use vidperf_core::{Figure, ResourceWindows};
///
/// let monitor = ResourceMonitor::start(MonitorConfig::default().with_nvml(NvmlLibrary::Disabled))?;
/// let window = monitor.open(std::time::Instant::now());
/// let buffer = vec![1u8; 32 << 20]; // touch 32 MiB
/// let peaks = monitor.close(window, std::time::Instant::now());
/// # drop(buffer);
/// assert!(peaks.get(Figure::ProcessMemory).is_some());
/// assert!(peaks.get(Figure::GpuMemory).is_none(), "no GPU sampling: absent, never zero");
/// monitor.shutdown(std::time::Duration::from_secs(1))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ResourceMonitor {
    shared: Arc<Shared>,
    worker: Worker,
}

struct Sampler {
    process: Option<ProcessSource>,
    gpu: Option<GpuSource>,
    seq: u64,
}

impl ResourceMonitor {
    /// Starts sampling. GPU availability is decided here, once.
    pub fn start(config: MonitorConfig) -> Result<Self, StartError> {
        let mut config = config;
        config.interval = config.interval.max(Duration::from_millis(1));
        let process = if config.process {
            ProcessSource::new()
        } else {
            None
        };
        let (gpu, gpu_status) = match GpuSource::start(
            config.nvml.clone(),
            config.process_list_interval,
            config.process_utilization_interval,
            config.error_backoff,
        ) {
            Ok((source, status)) => (Some(source), status),
            Err(reason) => (None, GpuStatus::Unavailable(reason)),
        };
        let gpu_devices = gpu.as_ref().map_or(0, GpuSource::device_count);
        let max_entries = config.max_entries;
        let boundary_gpu = if config.boundary_reads {
            gpu.as_ref().and_then(GpuSource::memory_reader)
        } else {
            None
        };
        let boundary_memory = if config.boundary_reads && config.process {
            ResidentReader::new()
        } else {
            None
        };
        let epoch = Instant::now();
        let epoch_unix_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let shared = Arc::new(Shared {
            config,
            epoch,
            epoch_unix_us,
            timed: Mutex::new(Timed {
                utilization: (0..gpu_devices).map(|_| TimedSeries::default()).collect(),
                ..Timed::default()
            }),
            timed_used: AtomicBool::new(false),
            boundary_gpu,
            boundary_memory,
            stacks: RwLock::new((0..METRICS).map(|_| MaxStack::new(max_entries)).collect()),
            newest: Newest::new(),
            latest_seq: AtomicU64::new(NO_SAMPLE),
            latest_at: AtomicU64::new(0),
            gate: Gate::new(),
            requested: AtomicBool::new(false),
            requested_samples: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            tick_nanos: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            gpu_status,
            gpu_devices,
            current: Mutex::new(Current {
                process: Figures::none(),
                devices: vec![DeviceNow::default(); gpu_devices],
            }),
            errors: ErrorCounters::default(),
        });
        let mut sampler = Sampler {
            process,
            gpu,
            seq: 0,
        };
        // A first sample now, so operations that start right away have a start value.
        sampler.tick(&shared, None);
        let thread_shared = shared.clone();
        let worker = Worker::spawn("vidperf-monitor", move || {
            run(&thread_shared, sampler);
        })
        .map_err(StartError::Thread)?;
        Ok(Self { shared, worker })
    }

    /// What GPU sampling can do on this machine.
    pub fn gpu_status(&self) -> &GpuStatus {
        &self.shared.gpu_status
    }

    /// The monitor's state, errors and cost, and the newest sample's figures.
    pub fn health(&self) -> MonitorHealth {
        let s = &self.shared;
        let samples = match s.latest_seq.load(Ordering::Acquire) {
            NO_SAMPLE => 0,
            seq => seq + 1,
        };
        let age = (samples > 0).then(|| {
            let now = s.epoch.elapsed().as_nanos() as u64;
            Duration::from_nanos(now.saturating_sub(s.latest_at.load(Ordering::Acquire)))
        });
        let open = s.gate.open_windows();
        let stale = open > 0 && age.is_some_and(|a| a > s.config.interval * 3);
        let ticks = s.ticks.load(Ordering::Relaxed);
        let inexact_merges = s
            .stacks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(MaxStack::merged)
            .sum();
        let now = s
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        MonitorHealth {
            running: self.worker.is_running(),
            panicked: self.worker.panicked(),
            parked: s.gate.is_parked(),
            interval_seconds: s.config.interval.as_secs_f64(),
            samples,
            last_sample_age_seconds: age.map(|a| a.as_secs_f64()),
            stale,
            gpu: s.gpu_status.clone(),
            gpu_errors: s.errors.all(),
            tick_micros: (ticks > 0)
                .then(|| s.tick_nanos.load(Ordering::Relaxed) as f64 / ticks as f64 / 1e3),
            inexact_merges,
            samples_on_request: s.requested_samples.load(Ordering::Relaxed),
            process: now.process,
            devices: now.devices,
        }
    }

    /// Stops the thread and waits at most `timeout` for it.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.gate.notify();
        self.worker
            .join(timeout)
            .map_err(|_| ShutdownError::Timeout(timeout))
    }
}

impl Drop for ResourceMonitor {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(1));
    }
}

impl Sampler {
    /// Takes one sample; `gpm`, when GPUs have GPM, takes a GPM sample too when due.
    fn tick(&mut self, shared: &Shared, gpm: Option<(&mut Gpm<'_>, bool)>) {
        let started = Instant::now();
        let p = self
            .process
            .as_mut()
            .map_or(ProcessReading::default(), |p| p.read(started));
        let g = self.gpu.as_mut().map(|g| g.read(started, &shared.errors));
        let gpm = gpm.and_then(|(gpm, force)| gpm.read(started, force, &shared.errors));
        let seq = self.seq;
        if let Some(g) = &g
            && (!g.utilization_samples.is_empty()
                || !g.process_utilization.is_empty()
                || gpm.is_some()
                || g.energy.iter().any(Option::is_some))
        {
            let mut timed = shared.timed.lock().unwrap_or_else(PoisonError::into_inner);
            if g.energy.iter().any(Option::is_some) {
                timed.energy.push(seq, &g.energy);
            }
            for &(device, at, value) in &g.utilization_samples {
                if let Some(series) = timed.utilization.get_mut(device) {
                    series.push(at, value);
                }
            }
            for &(at, value) in &g.process_utilization {
                timed.process_utilization.push(at, value);
            }
            if let Some(interval) = &gpm {
                timed.gpm.push(seq, interval);
            }
            shared.timed_used.store(true, Ordering::Release);
        }
        // The machine's figures: the process's, and the devices' combined as the table
        // says (the highest device's memory and utilization, the sum of their power).
        let mut machine = Figures::none();
        machine.set(Figure::ProcessMemory, p.rss_bytes.map(|b| b as f64));
        machine.set(Figure::ProcessCpu, p.cpu);
        if let Some(g) = &g {
            let devices = &g.devices[..shared.gpu_devices];
            for figure in POLLED {
                let values = devices.iter().filter_map(|d| d.get(figure));
                let combined = match figure.def().across {
                    Across::Sum => values.reduce(|a, b| a + b),
                    _ => values.reduce(f64::max),
                };
                machine.set(figure, combined);
            }
            machine.set(Figure::GpuProcessMemory, g.process_memory.map(|b| b as f64));
        }
        {
            let mut current = shared
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            current.process = machine;
            if let Some(g) = &g {
                for (d, now) in current.devices.iter_mut().enumerate() {
                    now.figures = g.devices[d];
                    now.energy_joules = g.energy[d];
                    // The total is kept across failed readings: it does not change.
                    now.memory_total_bytes = g.memory_total[d].or(now.memory_total_bytes);
                }
            }
        }
        let mut newest = [None; DEVICE_BASE];
        {
            let mut stacks = shared
                .stacks
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for (slot, figure) in STACKED.iter().enumerate() {
                if let Some(v) = machine.get(*figure) {
                    let v = encode(*figure, v);
                    stacks[slot].push(seq, v);
                    newest[slot] = Some(v);
                }
            }
            if let Some(g) = &g
                && shared.gpu_devices > 1
            {
                for d in 0..shared.gpu_devices {
                    for (k, figure) in POLLED.iter().enumerate() {
                        if let Some(v) = g.devices[d].get(*figure) {
                            stacks[device_slot(d, k)].push(seq, encode(*figure, v));
                        }
                    }
                }
            }
        }
        self.seq += 1;
        shared.newest.publish(seq, newest);
        let now = Instant::now();
        shared.latest_at.store(
            now.duration_since(shared.epoch).as_nanos() as u64,
            Ordering::Release,
        );
        shared.latest_seq.store(seq, Ordering::Release);
        shared.tick_nanos.fetch_add(
            now.duration_since(started).as_nanos() as u64,
            Ordering::Relaxed,
        );
        shared.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(shared: &Shared, mut sampler: Sampler) {
    let mut state = Loop {
        last_busy: Instant::now(),
        next: Instant::now() + shared.config.interval,
    };
    // One session per NVML handle: GPM samples borrow the handle they were taken with,
    // so when NVML is initialised again (after a driver error) a new session starts.
    loop {
        let handle = sampler.gpu.as_ref().and_then(GpuSource::gpm_handle);
        let mut gpm = handle
            .as_ref()
            .map(|h| Gpm::new(h, shared.config.gpm_interval));
        if !session(shared, &mut sampler, gpm.as_mut(), &mut state) {
            return;
        }
    }
}

struct Loop {
    last_busy: Instant,
    next: Instant,
}

/// Samples until stopped (`false`) or until NVML was initialised again (`true`).
fn session(
    shared: &Shared,
    sampler: &mut Sampler,
    mut gpm: Option<&mut Gpm<'_>>,
    state: &mut Loop,
) -> bool {
    let interval = shared.config.interval;
    let generation = sampler.gpu.as_ref().map(GpuSource::generation);
    while !shared.stop.load(Ordering::Acquire) {
        if sampler.gpu.as_ref().map(GpuSource::generation) != generation {
            return true;
        }
        let stopping = || shared.stop.load(Ordering::Acquire);
        if shared.gate.open_windows() > 0 {
            state.last_busy = Instant::now();
        } else if state.last_busy.elapsed() >= shared.config.park_after {
            shared.gate.park(stopping);
            if shared.stop.load(Ordering::Acquire) {
                break;
            }
            // Woken by an opening window: sample right away.
            state.next = Instant::now();
            state.last_busy = state.next;
        }
        let now = Instant::now();
        if shared.requested.swap(false, Ordering::AcqRel) {
            // An operation opened after a quiet spell: its own sample, now (and a GPM
            // sample, so that its GPM figures start at its start).
            sampler.tick(shared, gpm.as_deref_mut().map(|g| (g, true)));
            shared.requested_samples.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if now < state.next {
            // A request checked under the gate's lock, which the requester takes to
            // notify: it cannot slip in between the check and the wait.
            shared.gate.sleep(state.next - now, || {
                stopping() || shared.requested.load(Ordering::Acquire)
            });
            continue;
        }
        sampler.tick(shared, gpm.as_deref_mut().map(|g| (g, false)));
        state.next += interval;
        if state.next < Instant::now() {
            // Fell behind (a slow driver call): don't burst.
            state.next = Instant::now() + interval;
        }
    }
    false
}

/// The monitor's state, in the statistics' health (`health.monitor`), and its metric
/// families (health counters and the live device gauges).
impl HealthSource for ResourceMonitor {
    fn report(&self, health: &mut Health) {
        health.set_part("monitor", &self.health());
    }

    fn metrics(&self, families: &mut Vec<Family>) {
        self.health().families(families);
    }
}

/// The newest sample's figures.
#[derive(Clone, Debug)]
struct Current {
    process: Figures,
    devices: Vec<DeviceNow>,
}

impl ResourceWindows for ResourceMonitor {
    fn open(&self, now: Instant) -> WindowStart {
        let s = &*self.shared;
        let latest = s.latest_seq.load(Ordering::Acquire);
        let since_epoch = now.saturating_duration_since(s.epoch).as_nanos() as u64;
        let age =
            Duration::from_nanos(since_epoch.saturating_sub(s.latest_at.load(Ordering::Acquire)));
        let first_sample = if latest == NO_SAMPLE {
            0
        } else if age <= s.config.interval * 2 {
            // The newest sample counts as the window's start sample when it is recent;
            // after a parked spell it is not, and the wake-up sample will be the first.
            latest
        } else {
            latest + 1
        };
        s.gate.enter();
        // After a quiet spell, a sample of this operation's own, taken by the monitor
        // (at most one request in flight; one lock and notify, no system call of ours).
        let gap = s.config.boundary_gap;
        if !gap.is_zero()
            && (latest == NO_SAMPLE || age >= gap)
            && !s.requested.swap(true, Ordering::AcqRel)
        {
            s.gate.notify();
        }
        let (opened_memory_bytes, opened_gpu_memory_bytes) = self.boundary_read();
        WindowStart {
            first_sample,
            opened: now,
            opened_memory_bytes,
            opened_gpu_memory_bytes,
        }
    }

    fn close(&self, start: WindowStart, now: Instant) -> ResourcePeaks {
        let s = &*self.shared;
        s.gate.leave();
        let latest = s.latest_seq.load(Ordering::Acquire);
        let mut peaks = ResourcePeaks::none();
        // No sample inside (the monitor stopped, or the operation was shorter than the
        // first one): nothing measured, so `samples` is absent like every figure.
        if latest == NO_SAMPLE || latest < start.first_sample {
            return peaks;
        }
        peaks.samples = Some(latest - start.first_sample + 1);
        self.sampled_peaks(&mut peaks, start.first_sample, latest);
        if s.timed_used.load(Ordering::Acquire) {
            self.timed_figures(&mut peaks, start, now, latest);
        }
        if s.config.boundary_reads {
            let (memory, gpu_memory) = self.boundary_read();
            let f = &mut peaks.figures;
            for (figure, read) in [
                (Figure::ProcessMemory, [start.opened_memory_bytes, memory]),
                (
                    Figure::GpuMemory,
                    [start.opened_gpu_memory_bytes, gpu_memory],
                ),
            ] {
                for value in read {
                    f.raise(figure, value.map(|b| b as f64));
                }
            }
            // The two reads are samples of the window too.
            let reads = u64::from(
                start.opened_memory_bytes.is_some() || start.opened_gpu_memory_bytes.is_some(),
            ) + u64::from(memory.is_some() || gpu_memory.is_some());
            peaks.samples = peaks.samples.map(|n| n + reads);
        }
        peaks
    }
}

impl ResourceMonitor {
    /// Resident memory and the GPUs' memory used, read now on this thread, when
    /// [`MonitorConfig::boundary_reads`] is on.
    fn boundary_read(&self) -> (Option<u64>, Option<u64>) {
        let s = &*self.shared;
        if !s.config.boundary_reads {
            return (None, None);
        }
        (
            s.boundary_memory.as_ref().and_then(ResidentReader::read),
            s.boundary_gpu.as_ref().and_then(MemoryReader::max_used),
        )
    }

    /// The peaks of samples `first..=latest`.
    fn sampled_peaks(&self, peaks: &mut ResourcePeaks, first: u64, latest: u64) {
        let s = &*self.shared;
        if latest == first
            && s.gpu_devices <= 1
            && let Some(v) = s.newest.read(latest)
        {
            // One sample in the window, the newest: its figures are the peaks.
            for (slot, figure) in STACKED.iter().enumerate() {
                peaks
                    .figures
                    .set(*figure, v[slot].map(|v| decode(*figure, v)));
            }
            return;
        }
        let stacks = s.stacks.read().unwrap_or_else(PoisonError::into_inner);
        let max =
            |slot: usize, figure: Figure| stacks[slot].max_since(first).map(|v| decode(figure, v));
        for (slot, figure) in STACKED.iter().enumerate() {
            peaks.figures.set(*figure, max(slot, *figure));
        }
        if s.gpu_devices > 1 {
            peaks.devices = (0..s.gpu_devices)
                .map(|d| {
                    let figures = POLLED
                        .iter()
                        .enumerate()
                        .filter_map(|(k, f)| Some((*f, max(device_slot(d, k), *f)?)))
                        .collect();
                    DevicePeaks::new(d as u32, figures)
                })
                .collect();
        }
    }

    /// The figures read by their own time: the driver's utilization samples stamped
    /// between the operation's start and `now`, and GPM over the intervals between
    /// samples `start.first_sample` and `latest`.
    fn timed_figures(
        &self,
        peaks: &mut ResourcePeaks,
        start: WindowStart,
        now: Instant,
        latest: u64,
    ) {
        let s = &*self.shared;
        let unix_us =
            |t: Instant| s.epoch_unix_us + t.saturating_duration_since(s.epoch).as_micros() as u64;
        let (from, to) = (unix_us(start.opened), unix_us(now));
        let timed = s.timed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut driver: Option<(f64, f64)> = None;
        for series in &timed.utilization {
            if let Some((peak, mean)) = series.over(from, to) {
                driver = Some(driver.map_or((peak, mean), |(p, m)| (p.max(peak), m.max(mean))));
            }
        }
        let f = &mut peaks.figures;
        if let Some((peak, mean)) = driver {
            // The driver's own samples inside the window beat the polled readings,
            // each of which averages a period that may start before the operation.
            f.set(Figure::GpuUtilization, Some(peak));
            f.set(Figure::GpuUtilizationMean, Some(mean));
        }
        f.set(
            Figure::GpuProcessUtilization,
            timed.process_utilization.over(from, to).map(|(p, _)| p),
        );
        let [sm, occupancy, tensor] = timed.gpm.between(start.first_sample, latest);
        f.set(Figure::GpuSmUtilization, sm);
        f.set(Figure::GpuSmOccupancy, occupancy);
        f.set(Figure::GpuTensorActivity, tensor);
        let energy = timed.energy.between(start.first_sample, latest);
        let used = energy[..s.gpu_devices].iter().flatten().copied();
        f.set(Figure::GpuEnergy, used.reduce(|a, b| a + b));
        for device in &mut peaks.devices {
            let e = energy.get(device.index as usize).copied().flatten();
            device.figures.set(Figure::GpuEnergy, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(seconds: f64, sm: f64) -> GpmInterval {
        GpmInterval {
            seconds,
            sm_utilization: Some(sm),
            sm_occupancy: None,
            tensor_activity: Some(sm / 2.0),
        }
    }

    #[test]
    fn gpm_means_cover_the_intervals_inside_the_samples_and_weigh_them_by_time() {
        let mut series = GpmSeries::default();
        // Intervals end at samples 3, 5, 6, 9 (sample 3's began before sample 2).
        series.push(3, &interval(1.0, 0.9));
        series.push(5, &interval(1.0, 0.2));
        series.push(6, &interval(3.0, 0.6));
        series.push(9, &interval(1.0, 1.0));
        // Samples 3..=6: the intervals ending at 5 and 6 (both start at or after 3).
        let [sm, occupancy, tensor] = series.between(3, 6);
        assert!((sm.expect("sm") - (0.2 + 3.0 * 0.6) / 4.0).abs() < 1e-12);
        assert_eq!(occupancy, None, "never measured: absent");
        assert!((tensor.expect("tensor") - (0.1 + 3.0 * 0.3) / 4.0).abs() < 1e-12);
        // Samples 2..=6: the interval ending at 3 began before 2 (its start is not
        // known to be inside), so the same two.
        assert_eq!(series.between(2, 6), series.between(3, 6));
        // Samples 4..=8: only the interval ending at 6 lies inside.
        assert!((series.between(4, 8)[0].expect("sm") - 0.6).abs() < 1e-12);
        // Fewer than two GPM samples inside: nothing.
        assert_eq!(series.between(6, 8), [None; 3]);
        assert_eq!(series.between(10, 20), [None; 3]);
    }

    #[test]
    fn driver_samples_count_inside_the_window_only_bounds_included() {
        let mut series = TimedSeries::default();
        for (at, v) in [(100, 0.9), (200, 0.4), (300, 0.7), (400, 0.55), (500, 0.99)] {
            series.push(at, v);
        }
        series.push(450, 1.0); // out of order: a repeat, ignored
        let (peak, mean) = series.over(200, 400).expect("three samples");
        assert_eq!(peak, 0.7);
        assert!((mean - (0.4 + 0.7 + 0.55) / 3.0).abs() < 1e-12);
        assert_eq!(series.over(201, 299), None);
        assert_eq!(series.over(501, 900), None);
    }
}
