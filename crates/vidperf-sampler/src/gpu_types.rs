//! GPU types shared by the NVML source and its stand-in when the `gpu` feature is off.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use vidperf_core::{Figure, Figures};

use crate::MAX_DEVICES;

/// The figures read by polling each device at every sample (the peak of the samples
/// inside an operation is its figure).
pub(crate) const POLLED: [Figure; 6] = [
    Figure::GpuMemory,
    Figure::GpuUtilization,
    Figure::GpuMemoryUtilization,
    Figure::GpuDecoderUtilization,
    Figure::GpuEncoderUtilization,
    Figure::GpuPower,
];

/// Where to load NVML from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NvmlLibrary {
    /// The system library (`libnvidia-ml.so.1` on Linux), found by the dynamic loader.
    #[default]
    System,
    /// A library at this path (another driver install, or a fake for tests).
    Path(PathBuf),
    /// Do not sample GPUs.
    Disabled,
}

/// Why GPU figures are not available, decided once when the monitor starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuUnavailable {
    /// GPU sampling was turned off in the configuration.
    Disabled,
    /// The NVML library could not be loaded (no NVIDIA driver installed).
    LibraryMissing(String),
    /// The library loaded but the NVIDIA kernel driver is not running.
    DriverNotLoaded,
    /// The library lacks a function vidperf needs (an old driver).
    SymbolMissing(String),
    /// NVML works but reports no devices.
    NoDevices,
    /// NVML failed to start for another reason.
    Failed(String),
    /// vidperf was built without its `gpu` feature.
    NotBuilt,
    /// A reason read back from a health document, as it was written.
    Described(String),
}

/// What the GPU side of the monitor can do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuStatus {
    /// Sampling these devices.
    Available {
        /// Device names by index.
        devices: Vec<String>,
        /// Figures a device does not support (e.g. utilization on a MIG slice), each
        /// never queried again.
        unsupported: Vec<Unsupported>,
    },
    /// No GPU figures; CPU and RAM keep working.
    Unavailable(GpuUnavailable),
}

/// What a device can lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Memory used and total (`nvmlDeviceGetMemoryInfo`).
    Memory,
    /// Utilization rates (`nvmlDeviceGetUtilizationRates`), e.g. on a MIG slice.
    Utilization,
    /// The driver's utilization samples (`nvmlDeviceGetSamples`).
    UtilizationSamples,
    /// GPM (Hopper and newer).
    Gpm,
    /// NVDEC utilization.
    Decoder,
    /// NVENC utilization.
    Encoder,
    /// Power draw.
    Power,
    /// The energy counter (Volta and newer).
    Energy,
}

impl Capability {
    /// Its name: `memory`, `utilization`, `utilization samples`, `gpm`, `decoder`, ….
    pub const fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Utilization => "utilization",
            Self::UtilizationSamples => "utilization samples",
            Self::Gpm => "gpm",
            Self::Decoder => "decoder",
            Self::Encoder => "encoder",
            Self::Power => "power",
            Self::Energy => "energy",
        }
    }
}

/// A figure one device does not support: decided at start, never queried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Unsupported {
    /// The NVML device index.
    pub device: u32,
    /// What it lacks.
    pub capability: Capability,
}

impl Unsupported {
    /// Device `device` lacks `capability`.
    pub const fn new(device: u32, capability: Capability) -> Self {
        Self { device, capability }
    }
}

/// `device 0: utilization`.
impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device {}: {}", self.device, self.capability.name())
    }
}

/// The kinds of NVML error counted while the monitor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The GPU fell off the bus.
    GpuLost = 0,
    /// The driver went away (NVML is initialised again).
    DriverNotLoaded = 1,
    /// NVML answered uninitialised (initialised again).
    Uninitialized = 2,
    /// A call timed out.
    Timeout = 3,
    /// Anything else.
    Other = 4,
}

impl ErrorKind {
    /// Every kind, in order.
    pub const ALL: [ErrorKind; 5] = [
        Self::GpuLost,
        Self::DriverNotLoaded,
        Self::Uninitialized,
        Self::Timeout,
        Self::Other,
    ];

    /// Its name in the health JSON and on `/metrics` (`gpu_lost`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::GpuLost => "gpu_lost",
            Self::DriverNotLoaded => "driver_not_loaded",
            Self::Uninitialized => "uninitialized",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ErrorCounters([AtomicU64; 5]);

impl ErrorCounters {
    /// The counts by kind, in [`ErrorKind::ALL`] order.
    pub(crate) fn all(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }

    // reason: only the NVML source (feature `gpu`) raises errors.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    pub(crate) fn count(&self, kind: ErrorKind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Display for GpuUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("GPU sampling disabled"),
            Self::LibraryMissing(e) => write!(f, "NVML library not found ({e})"),
            Self::DriverNotLoaded => f.write_str("NVIDIA driver not loaded"),
            Self::SymbolMissing(s) => write!(f, "NVML library lacks a needed function ({s})"),
            Self::NoDevices => f.write_str("no NVIDIA GPUs"),
            Self::Failed(e) => write!(f, "NVML failed to start ({e})"),
            Self::NotBuilt => f.write_str("built without the gpu feature"),
            Self::Described(text) => f.write_str(text),
        }
    }
}

/// One GPU reading. Per-device figures are absent when that device failed this time.
#[derive(Clone, Debug, Default)]
pub(crate) struct GpuReading {
    /// Per device, the polled figures ([`POLLED`]) in base units.
    pub(crate) devices: [Figures; MAX_DEVICES],
    /// Each device's energy counter, joules since the driver loaded.
    pub(crate) energy: [Option<f64>; MAX_DEVICES],
    /// Each device's total memory.
    pub(crate) memory_total: [Option<u64>; MAX_DEVICES],
    pub(crate) process_memory: Option<u64>,
    /// The driver's utilization samples since the last reading: (device, CPU time in
    /// microseconds since the Unix epoch, 0.0–1.0).
    pub(crate) utilization_samples: Vec<(usize, u64, f64)>,
    /// This process's SM utilization samples since the last query: (time, 0.0–1.0).
    pub(crate) process_utilization: Vec<(u64, f64)>,
}

/// The GPM figures of one interval between two GPM samples, 0.0–1.0 (the highest over
/// the devices), and the interval's length.
// reason: only the NVML source (feature `gpu`) measures them.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GpmInterval {
    pub(crate) seconds: f64,
    pub(crate) sm_utilization: Option<f64>,
    pub(crate) sm_occupancy: Option<f64>,
    pub(crate) tensor_activity: Option<f64>,
}
