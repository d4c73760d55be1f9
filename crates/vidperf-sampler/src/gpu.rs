//! GPU figures from NVML, through nvml-wrapper: per-device memory used and
//! utilization, and this process's own device memory from the running-process list.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use crate::MAX_DEVICES;
use crate::gpu_types::{
    ErrorCounters, ErrorKind, GpuReading, GpuStatus, GpuUnavailable, NvmlLibrary,
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
    nvml: Option<Nvml>,
    device_count: u32,
    memory_supported: [bool; MAX_DEVICES],
    utilization_supported: [bool; MAX_DEVICES],
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
            device_count: count,
            memory_supported: [true; MAX_DEVICES],
            utilization_supported: [true; MAX_DEVICES],
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
                    unsupported.push(format!("device {i}: memory"));
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
                unsupported.push(format!("device {i}: utilization"));
            }
        }
        source.nvml = Some(nvml);
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
                Ok(nvml) => self.nvml = Some(nvml),
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
            if self.memory_supported[idx] {
                match device.memory_info() {
                    Ok(m) => {
                        reading.memory[idx] = Some(m.used);
                        reading.memory_total[idx] = Some(m.total);
                    }
                    Err(NvmlError::NotSupported) => self.memory_supported[idx] = false,
                    Err(e) => failure = Some(kind(&e)),
                }
            }
            if self.utilization_supported[idx] {
                match device.utilization_rates() {
                    Ok(u) => reading.utilization[idx] = Some(f64::from(u.gpu.min(100)) / 100.0),
                    Err(NvmlError::NotSupported) => self.utilization_supported[idx] = false,
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
