//! GPU figures from NVML, through nvml-wrapper: per-device memory used and
//! utilization, this process's own device memory from the running-process list, the
//! driver's timestamped utilization samples (device and per process), and GPM counters
//! on Hopper and newer.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Sampling;
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::{GpmSample, gpm_metrics_get};

use vidperf_core::Figure;

use crate::MAX_DEVICES;
use crate::gpu_types::{
    Capability, ErrorCounters, ErrorKind, GpmInterval, GpuReading, GpuStatus, GpuUnavailable,
    NvmlLibrary, Unsupported,
};

fn kind(e: &NvmlError) -> ErrorKind {
    match e {
        NvmlError::GpuLost => ErrorKind::GpuLost,
        NvmlError::DriverNotLoaded => ErrorKind::DriverNotLoaded,
        NvmlError::Uninitialized => ErrorKind::Uninitialized,
        NvmlError::Timeout => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

/// The NVML side of the monitor.
pub(crate) struct GpuSource {
    library: NvmlLibrary,
    nvml: Option<Arc<Nvml>>,
    /// Raised each time NVML is initialised again (GPM samples belong to one handle).
    generation: u64,
    device_count: u32,
    memory_supported: [bool; MAX_DEVICES],
    utilization_supported: [bool; MAX_DEVICES],
    /// NVDEC, NVENC, power and energy readings, by [`Optional`].
    optional_supported: [[bool; OPTIONAL]; MAX_DEVICES],
    /// The driver keeps utilization samples (`nvmlDeviceGetSamples`).
    samples_supported: [bool; MAX_DEVICES],
    /// The newest driver sample seen per device (NVML's `lastSeenTimeStamp`).
    last_sample_us: [u64; MAX_DEVICES],
    /// The driver keeps per-process utilization samples.
    process_utilization_supported: bool,
    last_process_sample_us: [u64; MAX_DEVICES],
    process_utilization_interval: Duration,
    last_process_utilization_query: Option<Instant>,
    /// GPM (Hopper and newer) per device, probed at start.
    gpm_supported: [bool; MAX_DEVICES],
    processes_supported: bool,
    process_interval: Duration,
    last_process_query: Option<Instant>,
    process_memory: Option<u64>,
    pid: u32,
    backoff: Duration,
    retry_at: Option<Instant>,
    base_backoff: Duration,
}

impl std::fmt::Debug for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSource")
            .field("library", &self.library)
            .field("device_count", &self.device_count)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn init(library: &NvmlLibrary) -> Result<Nvml, GpuUnavailable> {
    let result = match library {
        NvmlLibrary::Disabled => return Err(GpuUnavailable::Disabled),
        NvmlLibrary::System => Nvml::init(),
        NvmlLibrary::Path(path) => Nvml::builder()
            .lib_path(OsStr::new(path.as_os_str()))
            .init(),
    };
    result.map_err(|e| match e {
        NvmlError::LibloadingError(e) => GpuUnavailable::LibraryMissing(e.to_string()),
        NvmlError::DriverNotLoaded => GpuUnavailable::DriverNotLoaded,
        NvmlError::FailedToLoadSymbol(s) => GpuUnavailable::SymbolMissing(s),
        other => GpuUnavailable::Failed(other.to_string()),
    })
}

impl GpuSource {
    /// Starts NVML once. `Err` says why there will be no GPU figures.
    pub(crate) fn start(
        library: NvmlLibrary,
        process_interval: Duration,
        process_utilization_interval: Duration,
        base_backoff: Duration,
    ) -> Result<(Self, GpuStatus), GpuUnavailable> {
        let nvml = init(&library)?;
        let count = nvml
            .device_count()
            .map_err(|e| GpuUnavailable::Failed(e.to_string()))?;
        if count == 0 {
            return Err(GpuUnavailable::NoDevices);
        }
        let count = count.min(MAX_DEVICES as u32);
        let mut source = Self {
            library,
            nvml: None,
            generation: 0,
            device_count: count,
            memory_supported: [true; MAX_DEVICES],
            utilization_supported: [true; MAX_DEVICES],
            optional_supported: [[true; OPTIONAL]; MAX_DEVICES],
            samples_supported: [true; MAX_DEVICES],
            last_sample_us: [0; MAX_DEVICES],
            process_utilization_supported: true,
            last_process_sample_us: [0; MAX_DEVICES],
            process_utilization_interval,
            last_process_utilization_query: None,
            gpm_supported: [false; MAX_DEVICES],
            processes_supported: true,
            process_interval,
            last_process_query: None,
            process_memory: None,
            pid: std::process::id(),
            backoff: base_backoff,
            retry_at: None,
            base_backoff,
        };
        // Probe each figure once: unsupported ones (MIG slices, old boards) are
        // reported as data and never queried again; a missing function too.
        let mut names = Vec::new();
        let mut unsupported = Vec::new();
        for i in 0..count {
            let device = nvml
                .device_by_index(i)
                .map_err(|e| GpuUnavailable::Failed(e.to_string()))?;
            names.push(device.name().unwrap_or_else(|_| format!("GPU {i}")));
            let idx = i as usize;
            match device.memory_info() {
                Err(NvmlError::NotSupported) => {
                    source.memory_supported[idx] = false;
                    unsupported.push(Unsupported::new(i, Capability::Memory));
                }
                Err(NvmlError::FailedToLoadSymbol(s)) => {
                    return Err(GpuUnavailable::SymbolMissing(s));
                }
                _ => {}
            }
            if let Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) =
                device.utilization_rates()
            {
                source.utilization_supported[idx] = false;
                unsupported.push(Unsupported::new(i, Capability::Utilization));
            }
            // The driver's sample buffer: NOT_FOUND only means no sample yet.
            match device.samples(Sampling::GpuUtilization, None) {
                Ok(_) | Err(NvmlError::NotFound) => {}
                Err(_) => {
                    source.samples_supported[idx] = false;
                    unsupported.push(Unsupported::new(i, Capability::UtilizationSamples));
                }
            }
            // Optional figures (the video engines, power, energy): boards and drivers
            // that lack them are listed, never an error.
            for (k, optional) in Optional::ALL.iter().enumerate() {
                if let Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) =
                    optional.read(&device)
                {
                    source.optional_supported[idx][k] = false;
                    unsupported.push(Unsupported::new(i, optional.capability()));
                }
            }
            source.gpm_supported[idx] = device.gpm_support().unwrap_or(false);
            if !source.gpm_supported[idx] {
                unsupported.push(Unsupported::new(i, Capability::Gpm));
            }
        }
        source.nvml = Some(Arc::new(nvml));
        Ok((
            source,
            GpuStatus::Available {
                devices: names,
                unsupported,
            },
        ))
    }

    pub(crate) fn device_count(&self) -> usize {
        self.device_count as usize
    }

    /// The NVML handle GPM samples are taken with and the devices that support GPM;
    /// `None` when no device supports GPM or NVML is down.
    pub(crate) fn gpm_handle(&self) -> Option<GpmHandle> {
        let devices: Vec<u32> = (0..self.device_count)
            .filter(|&i| self.gpm_supported[i as usize])
            .collect();
        if devices.is_empty() {
            return None;
        }
        Some(GpmHandle {
            nvml: self.nvml.clone()?,
            devices,
        })
    }

    /// A reader of the devices' memory for other threads (`None` while NVML is down).
    pub(crate) fn memory_reader(&self) -> Option<MemoryReader> {
        Some(MemoryReader {
            nvml: self.nvml.clone()?,
            devices: self.device_count,
        })
    }

    /// Raised each time NVML is initialised again.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Reads every device. Errors are counted, make the affected figures absent (never
    /// last values) and start an exponential backoff; the source re-initialises NVML
    /// when the driver went away.
    pub(crate) fn read(&mut self, now: Instant, errors: &ErrorCounters) -> GpuReading {
        let mut reading = GpuReading::default();
        if self.retry_at.is_some_and(|t| now < t) {
            return reading;
        }
        if self.nvml.is_none() {
            match init(&self.library) {
                Ok(nvml) => {
                    self.nvml = Some(Arc::new(nvml));
                    self.generation += 1;
                }
                Err(_) => {
                    errors.count(ErrorKind::DriverNotLoaded);
                    self.back_off(now);
                    return reading;
                }
            }
        }
        let Some(nvml) = &self.nvml else {
            return reading;
        };
        let mut failure: Option<ErrorKind> = None;
        let query_processes = self.processes_supported
            && self
                .last_process_query
                .is_none_or(|t| now.duration_since(t) >= self.process_interval);
        let query_process_utilization = self.process_utilization_supported
            && self
                .last_process_utilization_query
                .is_none_or(|t| now.duration_since(t) >= self.process_utilization_interval);
        let mut own_memory: Option<u64> = None;
        for i in 0..self.device_count {
            let idx = i as usize;
            let device = match nvml.device_by_index(i) {
                Ok(d) => d,
                Err(e) => {
                    failure = Some(kind(&e));
                    continue;
                }
            };
            let figures = &mut reading.devices[idx];
            if self.memory_supported[idx] {
                match device.memory_info() {
                    Ok(m) => {
                        figures.set(Figure::GpuMemory, Some(m.used as f64));
                        reading.memory_total[idx] = Some(m.total);
                    }
                    Err(NvmlError::NotSupported) => self.memory_supported[idx] = false,
                    Err(e) => failure = Some(kind(&e)),
                }
            }
            if self.utilization_supported[idx] {
                match device.utilization_rates() {
                    Ok(u) => {
                        figures.set(Figure::GpuUtilization, Some(ratio(u.gpu)));
                        figures.set(Figure::GpuMemoryUtilization, Some(ratio(u.memory)));
                    }
                    Err(NvmlError::NotSupported) => self.utilization_supported[idx] = false,
                    Err(e) => failure = Some(kind(&e)),
                }
            }
            for (k, optional) in Optional::ALL.iter().enumerate() {
                if !self.optional_supported[idx][k] {
                    continue;
                }
                match optional.read(&device) {
                    Ok(value) => match optional {
                        Optional::Energy => reading.energy[idx] = Some(value),
                        other => figures.set(other.figure(), Some(value)),
                    },
                    Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                        self.optional_supported[idx][k] = false;
                    }
                    Err(e) => failure = Some(kind(&e)),
                }
            }
            if self.samples_supported[idx] {
                // Every sample the driver took since the last call, with its own time.
                match device.samples(Sampling::GpuUtilization, self.last_sample_us[idx]) {
                    Ok(samples) => {
                        for sample in samples {
                            self.last_sample_us[idx] =
                                self.last_sample_us[idx].max(sample.timestamp);
                            if let Some(percent) = percent(&sample.value) {
                                reading.utilization_samples.push((
                                    idx,
                                    sample.timestamp,
                                    percent / 100.0,
                                ));
                            }
                        }
                    }
                    Err(NvmlError::NotFound) => {}
                    Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                        self.samples_supported[idx] = false;
                    }
                    Err(e) => failure = Some(kind(&e)),
                }
            }
            if query_process_utilization {
                match device.process_utilization_stats(self.last_process_sample_us[idx]) {
                    Ok(samples) => {
                        for sample in samples {
                            let last = &mut self.last_process_sample_us[idx];
                            *last = (*last).max(sample.timestamp);
                            if sample.pid == self.pid {
                                reading.process_utilization.push((
                                    sample.timestamp,
                                    f64::from(sample.sm_util.min(100)) / 100.0,
                                ));
                            }
                        }
                    }
                    Err(NvmlError::NotFound) => {}
                    Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                        self.process_utilization_supported = false;
                    }
                    Err(e) => failure = Some(kind(&e)),
                }
            }
            if query_processes {
                // Milliseconds and a driver lock on real hardware: at most once per
                // `process_interval`, on this thread only.
                match device.running_compute_processes() {
                    Ok(list) => {
                        for p in list.iter().filter(|p| p.pid == self.pid) {
                            if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                                *own_memory.get_or_insert(0) += bytes;
                            }
                        }
                    }
                    Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                        self.processes_supported = false;
                    }
                    Err(e) => failure = Some(kind(&e)),
                }
            }
        }
        if query_process_utilization {
            self.last_process_utilization_query = Some(now);
        }
        if query_processes {
            self.last_process_query = Some(now);
            // Inside containers PIDs often do not match: then this stays absent.
            self.process_memory = own_memory;
        }
        reading.process_memory = self.process_memory;
        match failure {
            Some(kind) => {
                errors.count(kind);
                if matches!(kind, ErrorKind::DriverNotLoaded | ErrorKind::Uninitialized) {
                    self.nvml = None; // re-initialise on the next attempt
                }
                self.process_memory = None;
                self.back_off(now);
            }
            None => {
                self.backoff = self.base_backoff;
                self.retry_at = None;
            }
        }
        reading
    }

    fn back_off(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// A percentage from NVML as a ratio, capped at 1.
fn ratio(percent: u32) -> f64 {
    f64::from(percent.min(100)) / 100.0
}

/// The per-device readings a board may lack: probed once at start, then read at every
/// sample where supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Optional {
    Decoder,
    Encoder,
    Power,
    Energy,
}

const OPTIONAL: usize = 4;

impl Optional {
    const ALL: [Optional; OPTIONAL] = [Self::Decoder, Self::Encoder, Self::Power, Self::Energy];

    /// What a board without it lacks.
    fn capability(self) -> Capability {
        match self {
            Self::Decoder => Capability::Decoder,
            Self::Encoder => Capability::Encoder,
            Self::Power => Capability::Power,
            Self::Energy => Capability::Energy,
        }
    }

    fn figure(self) -> Figure {
        match self {
            Self::Decoder => Figure::GpuDecoderUtilization,
            Self::Encoder => Figure::GpuEncoderUtilization,
            Self::Power => Figure::GpuPower,
            Self::Energy => Figure::GpuEnergy,
        }
    }

    /// The reading in its base unit: a ratio, watts, or joules since the driver loaded.
    fn read(self, device: &nvml_wrapper::Device<'_>) -> Result<f64, NvmlError> {
        Ok(match self {
            Self::Decoder => ratio(device.decoder_utilization()?.utilization),
            Self::Encoder => ratio(device.encoder_utilization()?.utilization),
            Self::Power => f64::from(device.power_usage()?) / 1e3,
            Self::Energy => device.total_energy_consumption()? as f64 / 1e3,
        })
    }
}

/// A driver sample's value as a percentage.
fn percent(value: &SampleValue) -> Option<f64> {
    let v = match *value {
        SampleValue::U32(v) => f64::from(v),
        SampleValue::U64(v) => v as f64,
        SampleValue::I64(v) => v as f64,
        SampleValue::F64(v) => v,
    };
    (v.is_finite() && v >= 0.0).then(|| v.min(100.0))
}

const GPM_METRICS: [GpmMetricId; 3] = [
    GpmMetricId::SmUtil,
    GpmMetricId::SmOccupancy,
    GpmMetricId::AnyTensorUtil,
];

/// Reads every device's memory used from any thread (NVML is thread-safe), for reads at
/// operation boundaries.
#[derive(Clone)]
pub(crate) struct MemoryReader {
    nvml: Arc<Nvml>,
    devices: u32,
}

impl std::fmt::Debug for MemoryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReader")
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

impl MemoryReader {
    /// The highest memory used over the devices, bytes; `None` if none answered.
    pub(crate) fn max_used(&self) -> Option<u64> {
        (0..self.devices)
            .filter_map(|i| self.nvml.device_by_index(i).ok()?.memory_info().ok())
            .map(|m| m.used)
            .max()
    }
}

/// What GPM sampling needs: an NVML handle (GPM samples borrow it) and the devices.
pub(crate) struct GpmHandle {
    nvml: Arc<Nvml>,
    devices: Vec<u32>,
}

/// GPM sampling on one NVML handle: a sample per device every `interval`, and the
/// metrics between each sample and the one before it.
pub(crate) struct Gpm<'n> {
    nvml: &'n Nvml,
    devices: Vec<u32>,
    previous: Vec<Option<(GpmSample<'n>, Instant)>>,
    interval: Duration,
    last: Option<Instant>,
}

impl std::fmt::Debug for Gpm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpm")
            .field("devices", &self.devices)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl<'n> Gpm<'n> {
    pub(crate) fn new(handle: &'n GpmHandle, interval: Duration) -> Self {
        Self {
            nvml: &handle.nvml,
            devices: handle.devices.clone(),
            previous: handle.devices.iter().map(|_| None).collect(),
            interval,
            last: None,
        }
    }

    /// Takes a GPM sample of each device when `interval` has passed since the last (or
    /// `force`), and returns the metrics since the previous samples (`None` on the first
    /// call, between samples, or when no device answered). A failed device loses its
    /// previous sample.
    pub(crate) fn read(
        &mut self,
        now: Instant,
        force: bool,
        errors: &ErrorCounters,
    ) -> Option<GpmInterval> {
        if !force
            && self
                .last
                .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        let mut out: Option<GpmInterval> = None;
        for (device_index, previous) in self.devices.iter().zip(self.previous.iter_mut()) {
            let sample = self
                .nvml
                .device_by_index(*device_index)
                .and_then(|d| d.gpm_sample());
            let sample = match sample {
                Ok(s) => s,
                Err(e) => {
                    errors.count(kind(&e));
                    *previous = None;
                    continue;
                }
            };
            let taken = Instant::now();
            if let Some((before, at)) = previous.take() {
                match gpm_metrics_get(self.nvml, &before, &sample, &GPM_METRICS) {
                    Ok(results) => {
                        let value = |i: usize| {
                            results
                                .get(i)
                                .and_then(|r| r.as_ref().ok())
                                .map(|r| r.value)
                                .filter(|v| v.is_finite() && *v >= 0.0)
                                .map(|v| v.min(100.0) / 100.0)
                        };
                        let o = out.get_or_insert(GpmInterval {
                            seconds: taken.duration_since(at).as_secs_f64(),
                            ..GpmInterval::default()
                        });
                        o.sm_utilization = max_option(o.sm_utilization, value(0));
                        o.sm_occupancy = max_option(o.sm_occupancy, value(1));
                        o.tensor_activity = max_option(o.tensor_activity, value(2));
                    }
                    Err(e) => errors.count(kind(&e)),
                }
            }
            *previous = Some((sample, taken));
        }
        out
    }
}
