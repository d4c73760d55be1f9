//! The resource figures measured over an operation's life, each declared once.
//!
//! A [`Figure`] is one thing the resource monitor measures during an operation — this
//! process's peak memory, the GPUs' peak utilization, the energy they used — and
//! [`FIGURES`] is the one table that says, for each: its base unit, what it summarises
//! over the operation (a peak, a mean, a total), how the devices of a multi-GPU machine
//! combine into the machine's figure, its name as an OTLP span attribute and metric,
//! its key and unit in the JSON and CSV exports, the live gauge of the newest sample,
//! the metric's histogram bounds and one line of documentation. The monitor fills
//! [`Figures`] in base units; the statistics, the record formats, the OTLP bridge,
//! `/metrics` and the docs tables all iterate the table, so adding a figure is one row
//! here plus its measurement.
//!
//! | figure | unit | over the operation | span attribute and metric | JSON key |
//! |---|---|---|---|---|
//! | process memory | bytes | peak | `vidperf.process.memory.peak` | `peak_memory_mb` (MiB) |
//! | GPU memory | bytes | peak (max over devices) | `vidperf.gpu.memory.peak` | `peak_gpu_memory_mb` (MiB) |
//! | process CPU | cores | peak | `vidperf.process.cpu.utilization.peak` | `cpu_utilization_percent` |
//! | GPU utilization | ratio | peak | `vidperf.gpu.utilization.peak` | `gpu_utilization_percent` |
//! | GPU utilization (mean) | ratio | mean of the driver's samples | `vidperf.gpu.utilization.mean` | `gpu_utilization_mean_percent` |
//! | this process's SM utilization | ratio | peak | `vidperf.gpu.process_utilization.peak` | `gpu_process_utilization_percent` |
//! | SM utilization (GPM) | ratio | mean | `vidperf.gpu.sm.utilization` | `gpu_sm_utilization_percent` |
//! | SM occupancy (GPM) | ratio | mean | `vidperf.gpu.sm.occupancy` | `gpu_sm_occupancy_percent` |
//! | tensor activity (GPM) | ratio | mean | `vidperf.gpu.tensor.activity` | `gpu_tensor_activity_percent` |
//! | this process's GPU memory | bytes | peak | `vidperf.gpu.process_memory.peak` | `peak_gpu_process_memory_mb` (MiB) |
//! | memory-controller utilization | ratio | peak | `vidperf.gpu.memory.utilization.peak` | `gpu_memory_utilization_percent` |
//! | NVDEC utilization | ratio | peak | `vidperf.gpu.decoder.utilization.peak` | `gpu_decoder_utilization_percent` |
//! | NVENC utilization | ratio | peak | `vidperf.gpu.encoder.utilization.peak` | `gpu_encoder_utilization_percent` |
//! | GPU power | watts | peak (sum over devices) | `vidperf.gpu.power.peak` | `peak_gpu_power_watts` |
//! | GPU energy | joules | total (sum over devices) | `vidperf.gpu.energy` | `gpu_energy_joules` |
//!
//! `docs/FORMATS.md` carries the same table with every output's name; a test holds
//! both to [`FIGURES`].

use std::fmt;

/// One resource figure of an operation. See the [module docs](self) for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Figure {
    /// Peak resident memory of this process.
    ProcessMemory,
    /// Peak device memory used (the maximum over the devices sampled).
    GpuMemory,
    /// Peak CPU of this process, 1.0 = one core busy.
    ProcessCpu,
    /// Peak GPU utilization: the highest of the driver's own samples stamped inside the
    /// operation where the driver keeps them, else the highest polled reading.
    GpuUtilization,
    /// Mean GPU utilization over the driver's samples stamped inside the operation.
    GpuUtilizationMean,
    /// Peak SM utilization of this process, from the driver's per-process samples.
    GpuProcessUtilization,
    /// SM utilization over the operation (GPM, Hopper and newer).
    GpuSmUtilization,
    /// SM occupancy over the operation (GPM): active warps over the maximum.
    GpuSmOccupancy,
    /// Tensor-core activity over the operation (GPM, any tensor operation).
    GpuTensorActivity,
    /// Peak device memory held by this process, where the driver attributes it.
    GpuProcessMemory,
    /// Peak memory-controller utilization: the share of time device memory was being
    /// read or written.
    GpuMemoryUtilization,
    /// Peak NVDEC (video decoder) utilization.
    GpuDecoderUtilization,
    /// Peak NVENC (video encoder) utilization.
    GpuEncoderUtilization,
    /// Peak power draw of the GPUs (their sum on a multi-GPU machine).
    GpuPower,
    /// Energy the GPUs used during the operation: the difference of their energy
    /// counters between the operation's first and last sample (their sum).
    GpuEnergy,
}

/// The base unit a figure is kept in everywhere but the JSON and CSV formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// CPU cores: 1.0 = one core busy.
    Cores,
    /// A ratio, 0.0–1.0.
    Ratio,
    /// Watts.
    Watts,
    /// Joules.
    Joules,
}

impl Unit {
    /// The UCUM unit OpenTelemetry uses (`By`, `1`, `W`, `J`).
    pub const fn otel(self) -> &'static str {
        match self {
            Self::Bytes => "By",
            Self::Cores | Self::Ratio => "1",
            Self::Watts => "W",
            Self::Joules => "J",
        }
    }
}

/// What a figure summarises over an operation's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Over {
    /// The highest sample.
    Peak,
    /// The mean over the operation (time-weighted where the source says so).
    Mean,
    /// How much accumulated during it (a counter's difference).
    Total,
}

/// How the values of several GPUs make the machine's figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Across {
    /// The highest device's (memory, utilization).
    Max,
    /// Their sum (power, energy).
    Sum,
}

/// How the JSON and CSV formats write a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wire {
    /// Bytes as MiB (2^20 bytes), the original design's unit.
    Mib,
    /// Ratios and cores as percent (100 = one core, or fully busy), rounded to 1e-4.
    Percent,
    /// The base unit itself.
    Base,
}

/// The live metric of a figure: the newest sample's value, by its semantic-convention
/// name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Live {
    /// The metric (`hw.gpu.memory.usage`, `hw.power`, `process.cpu.utilization`).
    pub name: &'static str,
    /// The `hw.gpu.task` attribute, for the video engines on `hw.gpu.utilization`.
    pub task: Option<&'static str>,
    /// Whether it is a counter (`hw.energy`); a gauge otherwise.
    pub counter: bool,
}

const fn gauge(name: &'static str) -> Option<Live> {
    Some(Live {
        name,
        task: None,
        counter: false,
    })
}

const fn task(task: &'static str) -> Option<Live> {
    Some(Live {
        name: "hw.gpu.utilization",
        task: Some(task),
        counter: false,
    })
}

/// Everything vidperf says about one [`Figure`], in every output.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct FigureDef {
    /// The figure.
    pub figure: Figure,
    /// A short identifier (`gpu_memory`), used in docs and rule files.
    pub name: &'static str,
    /// Base unit.
    pub unit: Unit,
    /// What it summarises over the operation.
    pub over: Over,
    /// How devices combine into the machine's figure.
    pub across: Across,
    /// The OTLP span attribute, which is also the name of the OTLP histogram metric
    /// of the figure per (operation, strategy) (and, translated, the Prometheus one).
    pub attribute: &'static str,
    /// The gauge of the highest value per (operation, strategy), `<attribute>.max`.
    pub max_metric: &'static str,
    /// The key in JSON records, `statistics.*.resources` and per-device entries.
    pub json: &'static str,
    /// How the JSON and CSV formats write it.
    pub wire: Wire,
    /// Written since 0.1.0: always present in JSON records and statistics, `null` when
    /// not measured (later figures are left out when not measured).
    pub since_0_1: bool,
    /// Whether the CSV has a column for it (the 0.1.0 columns; the CSV's columns are
    /// fixed, later figures are in the JSON export only).
    pub csv: bool,
    /// Whether it is also measured per GPU (`gpu_devices` on multi-GPU machines).
    pub per_device: bool,
    /// The semantic-convention metric of the newest sample (per device for GPU
    /// figures), when there is one.
    pub live: Option<Live>,
    /// Per frame: the span attribute and JSON key of the figure divided by the frames
    /// processed, for totals (J per frame).
    pub per_frame: Option<(&'static str, &'static str)>,
    /// Upper bounds of the metric's histogram buckets, in the base unit.
    pub bounds: &'static [f64],
    /// One line for the docs.
    pub doc: &'static str,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

const PROCESS_MEMORY_BOUNDS: [f64; 11] = [
    0.125 * GIB,
    0.25 * GIB,
    0.5 * GIB,
    GIB,
    2.0 * GIB,
    4.0 * GIB,
    8.0 * GIB,
    16.0 * GIB,
    32.0 * GIB,
    64.0 * GIB,
    128.0 * GIB,
];
const GPU_MEMORY_BOUNDS: [f64; 13] = [
    GIB,
    2.0 * GIB,
    4.0 * GIB,
    8.0 * GIB,
    12.0 * GIB,
    16.0 * GIB,
    24.0 * GIB,
    32.0 * GIB,
    48.0 * GIB,
    64.0 * GIB,
    80.0 * GIB,
    96.0 * GIB,
    144.0 * GIB,
];
const RATIO_BOUNDS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const CORE_BOUNDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
const POWER_BOUNDS: [f64; 10] = [
    25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 700.0, 1000.0,
];
const ENERGY_BOUNDS: [f64; 11] = [
    0.1, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10_000.0, 50_000.0,
];

/// `<attribute>.max`, for the attributes of the table (a const fn cannot concatenate).
const fn max_name(attribute: &'static str) -> &'static str {
    let names: [(&str, &str); Figure::COUNT] = [
        (
            "vidperf.process.memory.peak",
            "vidperf.process.memory.peak.max",
        ),
        ("vidperf.gpu.memory.peak", "vidperf.gpu.memory.peak.max"),
        (
            "vidperf.process.cpu.utilization.peak",
            "vidperf.process.cpu.utilization.peak.max",
        ),
        (
            "vidperf.gpu.utilization.peak",
            "vidperf.gpu.utilization.peak.max",
        ),
        (
            "vidperf.gpu.utilization.mean",
            "vidperf.gpu.utilization.mean.max",
        ),
        (
            "vidperf.gpu.process_utilization.peak",
            "vidperf.gpu.process_utilization.peak.max",
        ),
        (
            "vidperf.gpu.sm.utilization",
            "vidperf.gpu.sm.utilization.max",
        ),
        ("vidperf.gpu.sm.occupancy", "vidperf.gpu.sm.occupancy.max"),
        (
            "vidperf.gpu.tensor.activity",
            "vidperf.gpu.tensor.activity.max",
        ),
        (
            "vidperf.gpu.process_memory.peak",
            "vidperf.gpu.process_memory.peak.max",
        ),
        (
            "vidperf.gpu.memory.utilization.peak",
            "vidperf.gpu.memory.utilization.peak.max",
        ),
        (
            "vidperf.gpu.decoder.utilization.peak",
            "vidperf.gpu.decoder.utilization.peak.max",
        ),
        (
            "vidperf.gpu.encoder.utilization.peak",
            "vidperf.gpu.encoder.utilization.peak.max",
        ),
        ("vidperf.gpu.power.peak", "vidperf.gpu.power.peak.max"),
        ("vidperf.gpu.energy", "vidperf.gpu.energy.max"),
    ];
    let mut i = 0;
    while i < names.len() {
        if const_eq(names[i].0, attribute) {
            return names[i].1;
        }
        i += 1;
    }
    // Every attribute of the table is listed above (a test checks it).
    ""
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[allow(clippy::too_many_arguments)] // reason: a table row, one argument per column.
const fn row(
    figure: Figure,
    name: &'static str,
    unit: Unit,
    over: Over,
    across: Across,
    attribute: &'static str,
    json: &'static str,
    since_0_1: bool,
    per_device: bool,
    live: Option<Live>,
    bounds: &'static [f64],
    doc: &'static str,
) -> FigureDef {
    FigureDef {
        figure,
        name,
        unit,
        over,
        across,
        attribute,
        max_metric: max_name(attribute),
        json,
        wire: match unit {
            Unit::Bytes => Wire::Mib,
            Unit::Cores | Unit::Ratio => Wire::Percent,
            Unit::Watts | Unit::Joules => Wire::Base,
        },
        since_0_1,
        csv: since_0_1,
        per_device,
        live,
        per_frame: None,
        bounds,
        doc,
    }
}

/// Every figure, in [`Figure`] order (which is also the order of the JSON keys): the
/// one table every output reads.
pub const FIGURES: [FigureDef; Figure::COUNT] = [
    row(
        Figure::ProcessMemory,
        "process_memory",
        Unit::Bytes,
        Over::Peak,
        Across::Max,
        "vidperf.process.memory.peak",
        "peak_memory_mb",
        true,
        false,
        gauge("process.memory.usage"),
        &PROCESS_MEMORY_BOUNDS,
        "peak resident memory of this process",
    ),
    row(
        Figure::GpuMemory,
        "gpu_memory",
        Unit::Bytes,
        Over::Peak,
        Across::Max,
        "vidperf.gpu.memory.peak",
        "peak_gpu_memory_mb",
        true,
        true,
        gauge("hw.gpu.memory.usage"),
        &GPU_MEMORY_BOUNDS,
        "peak device memory used (the highest device's on a multi-GPU machine)",
    ),
    row(
        Figure::ProcessCpu,
        "process_cpu",
        Unit::Cores,
        Over::Peak,
        Across::Max,
        "vidperf.process.cpu.utilization.peak",
        "cpu_utilization_percent",
        true,
        false,
        gauge("process.cpu.utilization"),
        &CORE_BOUNDS,
        "peak CPU of this process (1 = one core busy; percent of one core in JSON/CSV)",
    ),
    row(
        Figure::GpuUtilization,
        "gpu_utilization",
        Unit::Ratio,
        Over::Peak,
        Across::Max,
        "vidperf.gpu.utilization.peak",
        "gpu_utilization_percent",
        true,
        true,
        gauge("hw.gpu.utilization"),
        &RATIO_BOUNDS,
        "peak GPU utilization (the driver's samples inside the operation where it keeps them)",
    ),
    row(
        Figure::GpuUtilizationMean,
        "gpu_utilization_mean",
        Unit::Ratio,
        Over::Mean,
        Across::Max,
        "vidperf.gpu.utilization.mean",
        "gpu_utilization_mean_percent",
        false,
        false,
        None,
        &RATIO_BOUNDS,
        "mean GPU utilization over the driver's samples stamped inside the operation",
    ),
    row(
        Figure::GpuProcessUtilization,
        "gpu_process_utilization",
        Unit::Ratio,
        Over::Peak,
        Across::Max,
        "vidperf.gpu.process_utilization.peak",
        "gpu_process_utilization_percent",
        false,
        false,
        None,
        &RATIO_BOUNDS,
        "peak SM utilization of this process (the driver's per-process samples)",
    ),
    row(
        Figure::GpuSmUtilization,
        "gpu_sm_utilization",
        Unit::Ratio,
        Over::Mean,
        Across::Max,
        "vidperf.gpu.sm.utilization",
        "gpu_sm_utilization_percent",
        false,
        false,
        None,
        &RATIO_BOUNDS,
        "SM utilization over the operation (GPM, Hopper and newer)",
    ),
    row(
        Figure::GpuSmOccupancy,
        "gpu_sm_occupancy",
        Unit::Ratio,
        Over::Mean,
        Across::Max,
        "vidperf.gpu.sm.occupancy",
        "gpu_sm_occupancy_percent",
        false,
        false,
        None,
        &RATIO_BOUNDS,
        "SM occupancy over the operation (GPM): active warps over the maximum",
    ),
    row(
        Figure::GpuTensorActivity,
        "gpu_tensor_activity",
        Unit::Ratio,
        Over::Mean,
        Across::Max,
        "vidperf.gpu.tensor.activity",
        "gpu_tensor_activity_percent",
        false,
        false,
        None,
        &RATIO_BOUNDS,
        "tensor-core activity over the operation (GPM)",
    ),
    row(
        Figure::GpuProcessMemory,
        "gpu_process_memory",
        Unit::Bytes,
        Over::Peak,
        Across::Sum,
        "vidperf.gpu.process_memory.peak",
        "peak_gpu_process_memory_mb",
        false,
        false,
        None,
        &GPU_MEMORY_BOUNDS,
        "peak device memory held by this process (where the driver attributes it)",
    ),
    row(
        Figure::GpuMemoryUtilization,
        "gpu_memory_utilization",
        Unit::Ratio,
        Over::Peak,
        Across::Max,
        "vidperf.gpu.memory.utilization.peak",
        "gpu_memory_utilization_percent",
        false,
        true,
        gauge("hw.gpu.memory.utilization"),
        &RATIO_BOUNDS,
        "peak memory-controller utilization (share of time device memory was read or written)",
    ),
    row(
        Figure::GpuDecoderUtilization,
        "gpu_decoder_utilization",
        Unit::Ratio,
        Over::Peak,
        Across::Max,
        "vidperf.gpu.decoder.utilization.peak",
        "gpu_decoder_utilization_percent",
        false,
        true,
        task("decoder"),
        &RATIO_BOUNDS,
        "peak NVDEC (video decoder) utilization",
    ),
    row(
        Figure::GpuEncoderUtilization,
        "gpu_encoder_utilization",
        Unit::Ratio,
        Over::Peak,
        Across::Max,
        "vidperf.gpu.encoder.utilization.peak",
        "gpu_encoder_utilization_percent",
        false,
        true,
        task("encoder"),
        &RATIO_BOUNDS,
        "peak NVENC (video encoder) utilization",
    ),
    row(
        Figure::GpuPower,
        "gpu_power",
        Unit::Watts,
        Over::Peak,
        Across::Sum,
        "vidperf.gpu.power.peak",
        "peak_gpu_power_watts",
        false,
        true,
        gauge("hw.power"),
        &POWER_BOUNDS,
        "peak power draw of the GPUs (their sum on a multi-GPU machine)",
    ),
    FigureDef {
        per_frame: Some((
            "vidperf.gpu.energy.per_frame",
            "gpu_energy_per_frame_joules",
        )),
        ..row(
            Figure::GpuEnergy,
            "gpu_energy",
            Unit::Joules,
            Over::Total,
            Across::Sum,
            "vidperf.gpu.energy",
            "gpu_energy_joules",
            false,
            true,
            Some(Live {
                name: "hw.energy",
                task: None,
                counter: true,
            }),
            &ENERGY_BOUNDS,
            "energy the GPUs used during the operation (their energy counters' difference; also per frame)",
        )
    },
];

impl Figure {
    /// How many figures there are.
    pub const COUNT: usize = 15;

    /// Every figure, in table order.
    pub const ALL: [Figure; Figure::COUNT] = {
        let mut all = [Figure::ProcessMemory; Figure::COUNT];
        let mut i = 0;
        while i < Figure::COUNT {
            all[i] = FIGURES[i].figure;
            i += 1;
        }
        all
    };

    /// The figure's row of [`FIGURES`].
    pub const fn def(self) -> &'static FigureDef {
        &FIGURES[self as usize]
    }

    /// The figure's position in [`FIGURES`] and in a [`Figures`] set.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.def().name)
    }
}

/// A value per [`Figure`], in base units; each absent until measured (never zero for
/// "not measured"). Small and `Copy`: one `f64` per figure, NaN standing for absent
/// (values are always finite: [`Figures::set`] refuses NaN and infinities).
#[derive(Clone, Copy)]
pub struct Figures {
    values: [f64; Figure::COUNT],
}

impl Default for Figures {
    fn default() -> Self {
        Self::none()
    }
}

impl Figures {
    /// Every figure absent.
    pub const fn none() -> Self {
        Self {
            values: [f64::NAN; Figure::COUNT],
        }
    }

    /// The figure's value, when measured.
    #[inline]
    pub fn get(&self, figure: Figure) -> Option<f64> {
        let v = self.values[figure.index()];
        (!v.is_nan()).then_some(v)
    }

    /// A bytes figure as whole bytes, when measured.
    pub fn bytes(&self, figure: Figure) -> Option<u64> {
        self.get(figure).map(|v| v.max(0.0).round() as u64)
    }

    /// Sets the figure (`None`, NaN or an infinity make it absent).
    #[inline]
    pub fn set(&mut self, figure: Figure, value: Option<f64>) {
        self.values[figure.index()] = value.filter(|v| v.is_finite()).unwrap_or(f64::NAN);
    }

    /// The same set with `figure` set to `value`.
    #[must_use]
    pub fn with(mut self, figure: Figure, value: f64) -> Self {
        self.set(figure, Some(value));
        self
    }

    /// The same set with `figure` set to `value`, or absent for `None`.
    #[must_use]
    pub fn with_opt(mut self, figure: Figure, value: Option<f64>) -> Self {
        self.set(figure, value);
        self
    }

    /// Raises the figure to `value` when that is higher (or the figure absent).
    pub fn raise(&mut self, figure: Figure, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            let now = self.get(figure);
            self.set(figure, Some(now.map_or(v, |n| n.max(v))));
        }
    }

    /// The measured figures with their values, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (Figure, f64)> + '_ {
        Figure::ALL
            .iter()
            .filter_map(|f| self.get(*f).map(|v| (*f, v)))
    }

    /// Whether no figure is measured.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(|v| v.is_nan())
    }
}

impl PartialEq for Figures {
    fn eq(&self, other: &Self) -> bool {
        Figure::ALL.iter().all(|f| self.get(*f) == other.get(*f))
    }
}

impl fmt::Debug for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(figure, v)| (figure.def().name, v)))
            .finish()
    }
}

impl FromIterator<(Figure, f64)> for Figures {
    fn from_iter<I: IntoIterator<Item = (Figure, f64)>>(iter: I) -> Self {
        let mut out = Self::none();
        for (figure, value) in iter {
            out.set(figure, Some(value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_figure_order_with_unique_names() {
        for (i, def) in FIGURES.iter().enumerate() {
            assert_eq!(def.figure.index(), i, "{}", def.name);
            assert_eq!(Figure::ALL[i], def.figure);
            assert_eq!(
                def.max_metric,
                format!("{}.max", def.attribute),
                "{}",
                def.name
            );
            assert!(
                def.bounds.windows(2).all(|w| w[0] < w[1]),
                "{}: bounds sorted",
                def.name
            );
        }
        let mut names: Vec<&str> = FIGURES
            .iter()
            .flat_map(|d| [d.name, d.attribute, d.json])
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "names are unique");
    }

    #[test]
    fn absent_is_never_zero() {
        let mut f = Figures::none();
        assert!(f.is_empty());
        f.set(Figure::GpuEnergy, Some(0.0));
        assert_eq!(f.get(Figure::GpuEnergy), Some(0.0));
        f.set(Figure::GpuPower, Some(f64::NAN));
        assert_eq!(f.get(Figure::GpuPower), None);
        f.raise(Figure::GpuPower, Some(120.0));
        f.raise(Figure::GpuPower, Some(80.0));
        assert_eq!(f.get(Figure::GpuPower), Some(120.0));
        assert_eq!(f.iter().count(), 2);
    }
}
