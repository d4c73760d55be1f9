//! The monitor's own health: its state, errors and cost, and the newest sample's figures
//! — typed here, written as JSON (`health.monitor`) and as metric families (the live
//! device gauges under their semantic-convention names) only by the encoders below.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vidperf_core::figure::{FIGURES, Figure, Figures};
use vidperf_core::metrics::{Family, FamilyDef, Kind, attr};

use crate::gpu_types::{ErrorKind, GpuStatus, GpuUnavailable, Unsupported};

/// The newest sample of one GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct DeviceNow {
    /// The device's figures at the newest sample (memory used, utilization, the video
    /// engines, power), in base units.
    pub figures: Figures,
    /// Its energy counter, joules since the driver loaded.
    pub energy_joules: Option<f64>,
    /// Its total memory, bytes (as last read).
    pub memory_total_bytes: Option<u64>,
}

/// The resource monitor's state, in the statistics' health (`health.monitor`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MonitorHealth {
    /// Whether the sampling thread is running (it may be parked while idle).
    pub running: bool,
    /// Why the sampling thread ended in a panic, if it did (no figure is measured
    /// after that).
    pub panicked: Option<String>,
    /// Whether it is parked because no operation is open.
    pub parked: bool,
    /// Sampling interval, seconds.
    pub interval_seconds: f64,
    /// Samples taken so far.
    pub samples: u64,
    /// Age of the newest sample, seconds.
    pub last_sample_age_seconds: Option<f64>,
    /// True while operations are open but no sample arrived for three intervals (a hung
    /// driver call, say): peaks of operations closing now have no fresh samples.
    pub stale: bool,
    /// What GPU sampling can do on this machine.
    pub gpu: GpuStatus,
    /// NVML errors while running, by kind, in [`ErrorKind::ALL`] order.
    pub gpu_errors: [u64; 5],
    /// Mean cost of one sampling tick, microseconds.
    pub tick_micros: Option<f64>,
    /// Windows whose peak may be over-estimated because a sample stack overflowed.
    pub inexact_merges: u64,
    /// Of the samples, those taken because an operation opened after a quiet spell
    /// ([`MonitorConfig::boundary_gap`](crate::MonitorConfig::boundary_gap)).
    pub samples_on_request: u64,
    /// The newest sample of this process: resident memory and CPU.
    pub process: Figures,
    /// The newest sample of each GPU, by device index.
    pub devices: Vec<DeviceNow>,
}

impl MonitorHealth {
    /// Whether GPUs are being sampled.
    pub fn gpu_available(&self) -> bool {
        matches!(self.gpu, GpuStatus::Available { .. })
    }

    /// The count of one kind of NVML error.
    pub fn gpu_errors_of(&self, kind: ErrorKind) -> u64 {
        self.gpu_errors[kind as usize]
    }

    /// Why GPUs are not sampled, when they are not.
    pub fn gpu_reason(&self) -> Option<String> {
        match &self.gpu {
            GpuStatus::Unavailable(reason) => Some(reason.to_string()),
            GpuStatus::Available { .. } => None,
        }
    }

    /// The names of the GPUs sampled, by index.
    pub fn gpu_devices(&self) -> &[String] {
        match &self.gpu {
            GpuStatus::Available { devices, .. } => devices,
            GpuStatus::Unavailable(_) => &[],
        }
    }

    /// The largest device's total memory, bytes.
    pub fn gpu_memory_limit(&self) -> Option<u64> {
        self.devices
            .iter()
            .filter_map(|d| d.memory_total_bytes)
            .max()
    }
}

/// The JSON shape of [`MonitorHealth`] (kept from earlier versions: the dashboard and
/// scripts read it).
#[derive(Serialize, Deserialize)]
struct Wire {
    running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    panicked: Option<String>,
    parked: bool,
    interval_seconds: f64,
    samples: u64,
    last_sample_age_seconds: Option<f64>,
    stale: bool,
    gpu_state: String,
    gpu_reason: Option<String>,
    gpu_devices: Vec<String>,
    gpu_unsupported: Vec<String>,
    gpu_errors: std::collections::BTreeMap<String, u64>,
    tick_micros: Option<f64>,
    inexact_merges: u64,
    #[serde(default)]
    samples_on_request: u64,
    current_process_memory_bytes: Option<u64>,
    current_process_cpu_utilization: Option<f64>,
    current_gpu_memory_bytes: Vec<Option<u64>>,
    current_gpu_utilization: Vec<Option<f64>>,
    #[serde(default)]
    gpu_memory_total_bytes: Vec<Option<u64>>,
    /// Every figure of each device's newest sample, under the figures' JSON keys.
    #[serde(default)]
    current_gpu: Vec<std::collections::BTreeMap<String, f64>>,
}

impl Serialize for MonitorHealth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (gpu_state, gpu_reason, gpu_devices, gpu_unsupported) = match &self.gpu {
            GpuStatus::Available {
                devices,
                unsupported,
            } => (
                "available",
                None,
                devices.clone(),
                unsupported.iter().map(Unsupported::to_string).collect(),
            ),
            GpuStatus::Unavailable(reason) => (
                "unavailable",
                Some(reason.to_string()),
                Vec::new(),
                Vec::new(),
            ),
        };
        Wire {
            running: self.running,
            panicked: self.panicked.clone(),
            parked: self.parked,
            interval_seconds: self.interval_seconds,
            samples: self.samples,
            last_sample_age_seconds: self.last_sample_age_seconds,
            stale: self.stale,
            gpu_state: gpu_state.to_owned(),
            gpu_reason,
            gpu_devices,
            gpu_unsupported,
            gpu_errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.name().to_owned(), self.gpu_errors[*k as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            tick_micros: self.tick_micros,
            inexact_merges: self.inexact_merges,
            samples_on_request: self.samples_on_request,
            current_process_memory_bytes: self.process.bytes(Figure::ProcessMemory),
            current_process_cpu_utilization: self.process.get(Figure::ProcessCpu),
            current_gpu_memory_bytes: self
                .devices
                .iter()
                .map(|d| d.figures.bytes(Figure::GpuMemory))
                .collect(),
            current_gpu_utilization: self
                .devices
                .iter()
                .map(|d| d.figures.get(Figure::GpuUtilization))
                .collect(),
            gpu_memory_total_bytes: self.devices.iter().map(|d| d.memory_total_bytes).collect(),
            current_gpu: self
                .devices
                .iter()
                .map(|d| {
                    let mut figures = d.figures;
                    figures.set(Figure::GpuEnergy, d.energy_joules);
                    figures
                        .iter()
                        .map(|(f, v)| (f.def().name.to_owned(), v))
                        .collect()
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// Reads the JSON back (for tests and tools): what was written, typed again; a GPU
/// reason comes back as [`GpuUnavailable::Described`] with its text, an unsupported figure
/// by its name.
impl<'de> Deserialize<'de> for MonitorHealth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let gpu = if w.gpu_state == "available" {
            GpuStatus::Available {
                devices: w.gpu_devices,
                unsupported: w
                    .gpu_unsupported
                    .iter()
                    .filter_map(|u| Unsupported::parse(u))
                    .collect(),
            }
        } else {
            GpuStatus::Unavailable(GpuUnavailable::Described(w.gpu_reason.unwrap_or_default()))
        };
        let devices = w
            .current_gpu
            .iter()
            .map(|named| {
                let figures: Figures = named
                    .iter()
                    .filter_map(|(k, v)| Some((FIGURES.iter().find(|d| d.name == k)?.figure, *v)))
                    .collect();
                (figures, figures.get(Figure::GpuEnergy))
            })
            .chain(std::iter::repeat((Figures::none(), None)))
            .zip(&w.gpu_memory_total_bytes)
            .map(|((mut figures, energy), total)| {
                figures.set(Figure::GpuEnergy, None);
                DeviceNow {
                    figures,
                    energy_joules: energy,
                    memory_total_bytes: *total,
                }
            })
            .collect();
        Ok(Self {
            running: w.running,
            panicked: w.panicked,
            parked: w.parked,
            interval_seconds: w.interval_seconds,
            samples: w.samples,
            last_sample_age_seconds: w.last_sample_age_seconds,
            stale: w.stale,
            gpu,
            gpu_errors: ErrorKind::ALL.map(|k| w.gpu_errors.get(k.name()).copied().unwrap_or(0)),
            tick_micros: w.tick_micros,
            inexact_merges: w.inexact_merges,
            samples_on_request: w.samples_on_request,
            process: Figures::none()
                .with_opt(
                    Figure::ProcessMemory,
                    w.current_process_memory_bytes.map(|b| b as f64),
                )
                .with_opt(Figure::ProcessCpu, w.current_process_cpu_utilization),
            devices,
        })
    }
}

/// The monitor's metric families, declared once.
pub mod family {
    use super::{FamilyDef, Kind};

    /// Samples taken.
    pub const SAMPLES: FamilyDef = FamilyDef::new(
        "vidperf.monitor.samples",
        "{sample}",
        Kind::Counter,
        "Resource samples taken.",
    );
    /// 1 while samples stopped arriving.
    pub const STALE: FamilyDef = FamilyDef::new(
        "vidperf.monitor.stale",
        "{bool}",
        Kind::Gauge,
        "1 while operations are open but resource samples stopped arriving.",
    );
    /// 1 when GPUs are sampled.
    pub const GPU_AVAILABLE: FamilyDef = FamilyDef::new(
        "vidperf.monitor.gpu.available",
        "{bool}",
        Kind::Gauge,
        "1 when GPUs are being sampled.",
    );
    /// NVML errors by kind.
    pub const GPU_ERRORS: FamilyDef = FamilyDef::new(
        "vidperf.monitor.gpu.errors",
        "{error}",
        Kind::Counter,
        "NVML errors while sampling, by kind.",
    );
    /// Each device's total memory.
    pub const GPU_MEMORY_LIMIT: FamilyDef = FamilyDef::new(
        "hw.gpu.memory.limit",
        "By",
        Kind::Gauge,
        "Total memory of each GPU.",
    );

    /// The monitor's families besides the live figures (see [`super::family_defs`]).
    pub const MONITOR: [FamilyDef; 5] =
        [SAMPLES, STALE, GPU_AVAILABLE, GPU_ERRORS, GPU_MEMORY_LIMIT];
}

/// The family of a figure's live metric.
fn live_family(def: &'static vidperf_core::figure::FigureDef) -> Option<FamilyDef> {
    let live = def.live?;
    // The video engines share `hw.gpu.utilization` with the GPU's own figure.
    let help = if live.name == "hw.gpu.utilization" {
        "Utilization of each GPU at the newest sample, by task (decoder, encoder; without hw.gpu.task: the GPU's)."
    } else {
        def.doc
    };
    let kind = if live.counter {
        Kind::Counter
    } else {
        Kind::Gauge
    };
    Some(FamilyDef::new(live.name, def.unit.otel(), kind, help))
}

/// Every family the monitor exports: [`family::MONITOR`] and the live metrics of the
/// figures that have one (`process.memory.usage`, `hw.gpu.memory.usage`, `hw.power`,
/// `hw.energy`, …; the video engines as `hw.gpu.utilization{hw.gpu.task}`).
pub fn family_defs() -> Vec<FamilyDef> {
    let mut out = family::MONITOR.to_vec();
    for def in &FIGURES {
        if let Some(f) = live_family(def)
            && !out.iter().any(|o| o.name == f.name)
        {
            out.push(f);
        }
    }
    out
}

impl MonitorHealth {
    /// The monitor's metric families now.
    pub fn families(&self, out: &mut Vec<Family>) {
        let one = |def: FamilyDef, value: f64| {
            let mut f = Family::new(def);
            f.push(Vec::new(), value);
            f
        };
        out.push(one(family::SAMPLES, self.samples as f64));
        out.push(one(family::STALE, f64::from(u8::from(self.stale))));
        out.push(one(
            family::GPU_AVAILABLE,
            f64::from(u8::from(self.gpu_available())),
        ));
        let mut errors = Family::new(family::GPU_ERRORS);
        for kind in ErrorKind::ALL {
            let n = self.gpu_errors[kind as usize];
            // Every kind from zero while GPUs are sampled, so that `rate()` has a series
            // before the first error.
            if self.gpu_available() || n > 0 {
                errors.push(vec![("kind", Cow::Borrowed(kind.name()))], n as f64);
            }
        }
        out.push(errors);
        let device = |i: usize| -> Vec<(&'static str, Cow<'static, str>)> {
            vec![
                (attr::HW_ID, Cow::Owned(i.to_string())),
                (attr::HW_TYPE, Cow::Borrowed("gpu")),
            ]
        };
        let mut limit = Family::new(family::GPU_MEMORY_LIMIT);
        for (i, d) in self.devices.iter().enumerate() {
            if let Some(total) = d.memory_total_bytes {
                limit.push(device(i), total as f64);
            }
        }
        out.push(limit);
        // The live figures, a family per name (the video engines share
        // `hw.gpu.utilization` with the GPU's own, told apart by `hw.gpu.task`).
        let mut live: Vec<Family> = Vec::new();
        for def in &FIGURES {
            let (Some(l), Some(family_def)) = (def.live, live_family(def)) else {
                continue;
            };
            let index = match live.iter().position(|f| f.def.name == l.name) {
                Some(i) => i,
                None => {
                    live.push(Family::new(family_def));
                    live.len() - 1
                }
            };
            let family = &mut live[index];
            if matches!(def.figure, Figure::ProcessMemory | Figure::ProcessCpu) {
                if let Some(v) = self.process.get(def.figure) {
                    family.push(Vec::new(), v);
                }
                continue;
            }
            for (i, d) in self.devices.iter().enumerate() {
                let value = match def.figure {
                    Figure::GpuEnergy => d.energy_joules,
                    f => d.figures.get(f),
                };
                if let Some(v) = value {
                    let mut attributes = device(i);
                    if let Some(task) = l.task {
                        attributes.push((attr::HW_GPU_TASK, Cow::Borrowed(task)));
                    }
                    family.push(attributes, v);
                }
            }
        }
        out.extend(live);
    }
}

impl Unsupported {
    /// Reads `device N: name` back.
    fn parse(text: &str) -> Option<Self> {
        use crate::gpu_types::Capability;
        let rest = text.strip_prefix("device ")?;
        let (device, name) = rest.split_once(": ")?;
        let capability = [
            Capability::Memory,
            Capability::Utilization,
            Capability::UtilizationSamples,
            Capability::Gpm,
            Capability::Decoder,
            Capability::Encoder,
            Capability::Power,
            Capability::Energy,
        ]
        .into_iter()
        .find(|c| c.name() == name)?;
        Some(Self::new(device.parse().ok()?, capability))
    }
}
