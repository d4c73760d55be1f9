//! What `vidperf top` shows, as plain numbers: one [`Frame`] per stream event (live or
//! recorded) or per step through an export's records, and the [`Model`] that keeps
//! the frames in order.
//!
//! A frame depends only on the events up to it, so a recording played back builds the
//! very frames the live view built; the view (sorting, filter, help) is separate.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use vidperf_core::stats::{ActiveOperationInfo, AggregateStats};
use vidperf_core::{Figure, OperationRecord, StatsSnapshot};

/// One event of `GET /performance/stream`.
#[derive(Debug, Deserialize)]
#[non_exhaustive]
pub struct StreamEvent {
    /// The publisher's sequence number (0: the first event of a connection).
    #[serde(default)]
    pub sequence: u64,
    /// The windowed statistics.
    pub snapshot: StatsSnapshot,
    /// Operations finished since the previous event.
    #[serde(default)]
    pub finished: Vec<OperationRecord>,
    /// Finished operations left out of `finished` (over its cap).
    #[serde(default)]
    pub finished_omitted: u64,
    /// The alerts pending or firing, when alert rules run.
    #[serde(default)]
    pub alerts: Option<Vec<serde_json::Value>>,
    /// The pairs regressed against the baseline now, when a baseline is loaded.
    #[serde(default)]
    pub regressions: Option<Vec<serde_json::Value>>,
}

/// One strategy's figures over the window.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StrategyRow {
    /// The strategy.
    pub name: String,
    /// Operations finished in the window.
    pub count: u64,
    /// Operations finished per second over the window.
    pub rate: f64,
    /// Duration quantiles, seconds.
    pub p50: Option<f64>,
    /// 95th percentile duration, seconds.
    pub p95: Option<f64>,
    /// 99th percentile duration, seconds.
    pub p99: Option<f64>,
    /// Failed operations, percent of those finished.
    pub failure_pct: Option<f64>,
    /// Cancelled operations, percent of those finished.
    pub cancelled_pct: Option<f64>,
    /// Frames per second of processing.
    pub fps: Option<f64>,
    /// Highest VRAM peak, bytes.
    pub vram_bytes: Option<f64>,
    /// Highest GPU utilization peak, 0–1.
    pub gpu_util: Option<f64>,
    /// GPU energy per frame, joules.
    pub energy_per_frame: Option<f64>,
}

/// An operation running at the frame's time.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Running {
    /// Operation type.
    pub operation: String,
    /// Strategy.
    pub strategy: String,
    /// Seconds since it started.
    pub age_seconds: f64,
    /// Its trace id.
    pub trace_id: String,
    /// Frames handled so far of the frames it will handle, when it recorded
    /// `frames_total`.
    pub progress: Option<(u64, u64)>,
}

impl Running {
    /// The share done, 0.0–1.0, when its progress is known.
    pub fn fraction(&self) -> Option<f64> {
        self.progress.map(|(done, total)| match total {
            0 => 1.0,
            total => (done as f64 / total as f64).min(1.0),
        })
    }
}

/// One GPU as the resource monitor last saw it.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Gpu {
    /// Its name (`NVIDIA H100 80GB HBM3`), when known.
    pub name: Option<String>,
    /// Device memory used, bytes.
    pub memory_used: Option<f64>,
    /// Device memory, bytes.
    pub memory_total: Option<f64>,
    /// Utilization, 0–1.
    pub utilization: Option<f64>,
    /// NVDEC utilization, 0–1.
    pub decoder: Option<f64>,
    /// NVENC utilization, 0–1.
    pub encoder: Option<f64>,
    /// Power draw, watts.
    pub power_watts: Option<f64>,
}

/// How much a lint matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something is wrong now (an alert firing, a regression, data lost).
    Error,
    /// Something to look at.
    Warning,
}

/// One finding, with its one-line reason (in the manner of tokio-console's lints).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Lint {
    /// How much it matters.
    pub severity: Severity,
    /// Its short name (`alert`, `regression`, `vram`, `one-sample`, `export-drops`).
    pub kind: &'static str,
    /// What it is about and why, in one line.
    pub reason: String,
}

/// Single-sample operations of one strategy in one frame: (count, shortest duration).
type SingleSamples = BTreeMap<String, (u64, f64)>;

/// Everything one screen shows, before sorting and filtering.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Frame {
    /// The event's sequence number, or the step's number through an export.
    pub sequence: u64,
    /// When the figures were taken.
    pub generated_at: SystemTime,
    /// The window the figures cover, seconds.
    pub window_seconds: f64,
    /// Operations finished per second over the window, all strategies.
    pub total_rate: f64,
    /// Per strategy, by name.
    pub rows: Vec<StrategyRow>,
    /// Operations running, oldest first (the first few).
    pub running: Vec<Running>,
    /// Operations running, all of them.
    pub running_count: u64,
    /// Operations that finished since the previous frame.
    pub finished: u64,
    /// The GPUs, when the monitor sees any.
    pub gpus: Vec<Gpu>,
    /// Why there is no GPU pane (the monitor's reason), when there are no GPUs.
    pub gpu_note: Option<String>,
    /// The findings.
    pub lints: Vec<Lint>,
    single_samples: SingleSamples,
}

impl Frame {
    /// The row of `strategy`.
    pub fn row(&self, strategy: &str) -> Option<&StrategyRow> {
        self.rows
            .binary_search_by(|r| r.name.as_str().cmp(strategy))
            .ok()
            .map(|i| &self.rows[i])
    }
}

/// Running operations listed per frame at most.
const MAX_RUNNING: usize = 50;
/// Frames a single-sample finding stays listed after its last operation.
const SINGLE_SAMPLE_FRAMES: usize = 60;
/// A VRAM peak above this share of the device is a finding.
const VRAM_LIMIT: f64 = 0.9;

/// The frames in order, the newest `limit` kept.
#[derive(Debug)]
pub struct Model {
    frames: VecDeque<Frame>,
    limit: usize,
    /// Frames dropped off the front (so a frame's position stays its index overall).
    dropped: usize,
}

impl Model {
    /// A model keeping the newest `limit` frames (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            limit: limit.max(1),
            dropped: 0,
        }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame arrived yet.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i` of those held (0: the oldest held).
    pub fn frame(&self, i: usize) -> Option<&Frame> {
        self.frames.get(i)
    }

    /// The newest frame.
    pub fn last(&self) -> Option<&Frame> {
        self.frames.back()
    }

    /// Frames dropped off the front to respect the limit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Up to `n` values of `pick` for `strategy` over the frames up to `i`, oldest
    /// first; a frame without the strategy gives `0`.
    pub fn history(
        &self,
        strategy: &str,
        i: usize,
        n: usize,
        pick: impl Fn(&StrategyRow) -> Option<f64>,
    ) -> Vec<f64> {
        let end = (i + 1).min(self.frames.len());
        let start = end.saturating_sub(n);
        (start..end)
            .map(|k| self.frames[k].row(strategy).and_then(&pick).unwrap_or(0.0))
            .collect()
    }

    /// Adds the frame of a stream event.
    pub fn push_event(&mut self, event: &StreamEvent) {
        let frame = frame_from_event(event);
        self.push(frame);
    }

    /// Adds `frame`, listing the single-sample findings of the frames before it.
    pub fn push(&mut self, mut frame: Frame) {
        let mut seen: SingleSamples = frame.single_samples.clone();
        for earlier in self.frames.iter().rev().take(SINGLE_SAMPLE_FRAMES - 1) {
            for (strategy, (n, shortest)) in &earlier.single_samples {
                let entry = seen.entry(strategy.clone()).or_insert((0, f64::INFINITY));
                entry.0 += n;
                entry.1 = entry.1.min(*shortest);
            }
        }
        for (strategy, (n, shortest)) in seen {
            frame.lints.push(Lint {
                severity: Severity::Warning,
                kind: "one-sample",
                reason: format!(
                    "{strategy}: {n} op{}'s peaks rest on one monitor sample (shortest {}): raise the sampling rate or read them as a floor",
                    if n == 1 { "" } else { "s" },
                    seconds(shortest)
                ),
            });
        }
        if self.frames.len() == self.limit {
            self.frames.pop_front();
            self.dropped += 1;
        }
        self.frames.push_back(frame);
    }
}

/// A duration for a lint's reason.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

fn rate_over(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn pct(part: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| 100.0 * part as f64 / count as f64)
}

/// The seconds a windowed snapshot's counts cover: the window, or the time since the
/// service started when that is shorter.
fn covered_seconds(snapshot: &StatsSnapshot) -> f64 {
    let uptime = snapshot.summary.uptime_seconds;
    let window = snapshot.window.as_ref().map_or(uptime, |w| {
        snapshot
            .summary
            .generated_at
            .duration_since(w.start_time)
            .map_or(w.seconds, |d| d.as_secs_f64())
    });
    window.min(uptime).max(1e-3)
}

fn row_from_aggregate(name: &str, a: &AggregateStats, seconds: f64) -> StrategyRow {
    let d = a.duration.as_ref();
    StrategyRow {
        name: name.to_owned(),
        count: a.count,
        rate: rate_over(a.count, seconds),
        p50: d.map(|d| d.p50_seconds),
        p95: d.map(|d| d.p95_seconds),
        p99: d.map(|d| d.p99_seconds),
        failure_pct: pct(a.failures, a.count),
        cancelled_pct: pct(a.cancelled, a.count),
        fps: a.frames_per_second,
        vram_bytes: a.resources.get(Figure::GpuMemory).map(|p| p.max),
        gpu_util: a.resources.get(Figure::GpuUtilization).map(|p| p.max),
        energy_per_frame: a.resources.per_frame(Figure::GpuEnergy),
    }
}

fn running(active: &[ActiveOperationInfo]) -> Vec<Running> {
    active
        .iter()
        .take(MAX_RUNNING)
        .map(|a| Running {
            operation: a.operation_type.clone(),
            strategy: a.strategy.clone(),
            age_seconds: a.elapsed_seconds,
            trace_id: a.trace_id.clone(),
            progress: a
                .frames_total
                .map(|total| (a.frames_processed.unwrap_or(0), total)),
        })
        .collect()
}

/// The single-sample operations among `records`.
fn single_samples<'a>(records: impl IntoIterator<Item = &'a OperationRecord>) -> SingleSamples {
    let mut out = SingleSamples::new();
    for r in records {
        if r.samples == Some(1) && r.figures.iter().next().is_some() {
            let entry = out.entry(r.strategy.clone()).or_insert((0, f64::INFINITY));
            entry.0 += 1;
            entry.1 = entry.1.min(r.duration_seconds);
        }
    }
    out
}

fn num(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

/// The GPU pane from the monitor's health part.
fn gpus(monitor: Option<&serde_json::Value>) -> (Vec<Gpu>, Option<String>) {
    let Some(m) = monitor else {
        return (Vec::new(), Some("no resource monitor".to_owned()));
    };
    let names: Vec<Option<String>> = m
        .get("gpu_devices")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().map(|n| n.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let totals: Vec<Option<f64>> = m
        .get("gpu_memory_total_bytes")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    let current = m
        .get("current_gpu")
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default();
    let n = names.len().max(current.len());
    let gpus: Vec<Gpu> = (0..n)
        .map(|i| {
            let now = current.get(i).cloned().unwrap_or_default();
            Gpu {
                name: names.get(i).cloned().flatten(),
                memory_used: num(&now, Figure::GpuMemory.def().name),
                memory_total: totals.get(i).copied().flatten(),
                utilization: num(&now, Figure::GpuUtilization.def().name),
                decoder: num(&now, Figure::GpuDecoderUtilization.def().name),
                encoder: num(&now, Figure::GpuEncoderUtilization.def().name),
                power_watts: num(&now, Figure::GpuPower.def().name),
            }
        })
        .collect();
    let note = gpus.is_empty().then(|| {
        let state = m
            .get("gpu_state")
            .and_then(|s| s.as_str())
            .unwrap_or("unknown");
        match m.get("gpu_reason").and_then(|s| s.as_str()) {
            Some(reason) => format!("{state}: {reason}"),
            None => state.to_owned(),
        }
    });
    (gpus, note)
}

fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A number for a lint's reason: four significant figures.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

fn alert_lints(alerts: &[serde_json::Value], out: &mut Vec<Lint>) {
    for a in alerts {
        if a.get("state").and_then(|s| s.as_str()) != Some("firing") {
            continue;
        }
        let name = text(a, "name").unwrap_or_else(|| "alert".to_owned());
        let scope: Vec<String> = ["strategy", "operation"]
            .iter()
            .filter_map(|k| text(a, k))
            .collect();
        let value = num(a, "value").map_or_else(|| "?".to_owned(), short);
        let threshold = text(a, "threshold").unwrap_or_else(|| "?".to_owned());
        let summary = text(a, "summary")
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        out.push(Lint {
            severity: Severity::Error,
            kind: "alert",
            reason: format!(
                "{name} firing{}: {value} vs threshold {threshold}{summary}",
                if scope.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", scope.join("/"))
                }
            ),
        });
    }
}

fn regression_lints(event: &StreamEvent, out: &mut Vec<Lint>) {
    if let Some(list) = &event.regressions {
        for r in list {
            let pair = format!(
                "{}/{}",
                text(r, "operation_type").unwrap_or_default(),
                text(r, "strategy").unwrap_or_default()
            );
            let figure = text(r, "figure").unwrap_or_else(|| "duration".to_owned());
            let change = num(r, "change")
                .map(|c| match figure.as_str() {
                    "failure_rate" => format!(" {:+.1} pts", 100.0 * c),
                    "quality" => format!(" {c:+.3}"),
                    _ => format!(" {:+.1}%", 100.0 * c),
                })
                .unwrap_or_default();
            let by = text(r, "test").unwrap_or_else(|| "the baseline comparison".to_owned());
            out.push(Lint {
                severity: Severity::Error,
                kind: "regression",
                reason: format!("{pair} {figure}{change} against the baseline ({by})"),
            });
        }
        return;
    }
    // An older service: only the count, in the watcher's health.
    let regressed = event
        .snapshot
        .health
        .part_json("watch")
        .and_then(|w| w.get("regressed"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if regressed > 0 {
        out.push(Lint {
            severity: Severity::Error,
            kind: "regression",
            reason: format!(
                "{regressed} figure{} regressed against the baseline (GET /performance/regressions)",
                if regressed == 1 { "" } else { "s" }
            ),
        });
    }
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / f64::from(1u32 << 30))
}

fn vram_lints(rows: &[StrategyRow], gpus: &[Gpu], out: &mut Vec<Lint>) {
    let Some(total) = gpus
        .iter()
        .filter_map(|g| g.memory_total)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
    else {
        return;
    };
    if total <= 0.0 {
        return;
    }
    for r in rows {
        if let Some(peak) = r.vram_bytes
            && peak > VRAM_LIMIT * total
        {
            out.push(Lint {
                severity: Severity::Warning,
                kind: "vram",
                reason: format!(
                    "{}: VRAM peak {}, {:.0}% of the device's {}",
                    r.name,
                    gib(peak),
                    100.0 * peak / total,
                    gib(total)
                ),
            });
        }
    }
}

fn health_lints(snapshot: &StatsSnapshot, out: &mut Vec<Lint>) {
    if let Some(export) = snapshot.health.part_json("export") {
        let n = |k: &str| {
            export
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        if n("dropped") > 0 {
            out.push(Lint {
                severity: Severity::Error,
                kind: "export-drops",
                reason: format!(
                    "OTLP export dropped {} spans ({} queue full, {} at shutdown); raise the queue or check the collector",
                    n("dropped"),
                    n("dropped_queue_full"),
                    n("dropped_shutdown")
                ),
            });
        }
        if n("failed") > 0 {
            out.push(Lint {
                severity: Severity::Warning,
                kind: "export-failed",
                reason: format!(
                    "OTLP export failed for {} spans (the collector refused them or could not be reached)",
                    n("failed")
                ),
            });
        }
    }
    let h = &snapshot.health;
    let overflow = h.strategy_overflow + h.operation_overflow + h.pair_overflow;
    if overflow > 0 {
        out.push(Lint {
            severity: Severity::Warning,
            kind: "overflow",
            reason: format!(
                "{overflow} operations counted under the overflow key: more strategies or operation types than the statistics keep"
            ),
        });
    }
    if h.sink_panics > 0 {
        out.push(Lint {
            severity: Severity::Error,
            kind: "sink-panic",
            reason: format!(
                "{} sink panics caught (each lost one span for that sink)",
                h.sink_panics
            ),
        });
    }
    if let Some(m) = h.part_json("monitor")
        && m.get("stale").and_then(serde_json::Value::as_bool) == Some(true)
    {
        out.push(Lint {
            severity: Severity::Warning,
            kind: "monitor",
            reason: "the resource monitor's newest sample is stale: peaks are not being measured"
                .to_owned(),
        });
    }
}

/// The frame of one stream event (its single-sample findings are added by
/// [`Model::push`], which sees the frames before it).
pub fn frame_from_event(event: &StreamEvent) -> Frame {
    let s = &event.snapshot;
    let seconds = covered_seconds(s);
    let rows: Vec<StrategyRow> = s
        .by_strategy
        .iter()
        .map(|(name, a)| row_from_aggregate(name, a, seconds))
        .collect();
    let (gpus, gpu_note) = gpus(s.health.part_json("monitor"));
    let mut lints = Vec::new();
    if let Some(alerts) = &event.alerts {
        alert_lints(alerts, &mut lints);
    }
    regression_lints(event, &mut lints);
    vram_lints(&rows, &gpus, &mut lints);
    health_lints(s, &mut lints);
    Frame {
        sequence: event.sequence,
        generated_at: s.summary.generated_at,
        window_seconds: s
            .window
            .as_ref()
            .map_or(s.summary.uptime_seconds, |w| w.seconds),
        total_rate: rate_over(s.summary.total_operations, seconds),
        rows,
        running: running(&s.active),
        running_count: s.summary.active_operations,
        finished: event.finished.len() as u64 + event.finished_omitted,
        gpus,
        gpu_note,
        lints,
        single_samples: single_samples(&event.finished),
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn row_from_records(name: &str, records: &[&OperationRecord], seconds: f64) -> StrategyRow {
    let count = records.len() as u64;
    let mut durations: Vec<f64> = records.iter().map(|r| r.duration_seconds).collect();
    durations.sort_by(f64::total_cmp);
    let failures = records
        .iter()
        .filter(|r| !r.success && !r.cancelled)
        .count() as u64;
    let cancelled = records.iter().filter(|r| r.cancelled).count() as u64;
    let (frames, busy) = records
        .iter()
        .filter_map(|r| Some((r.frames_processed?, r.duration_seconds)))
        .fold((0u64, 0.0), |(f, d), (rf, rd)| (f + rf, d + rd));
    let max = |figure: Figure| {
        records
            .iter()
            .filter_map(|r| r.figures.get(figure))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let (joules, energy_frames) = records
        .iter()
        .filter_map(|r| Some((r.figures.get(Figure::GpuEnergy)?, r.frames_processed?)))
        .fold((0.0, 0u64), |(j, f), (rj, rf)| (j + rj, f + rf));
    StrategyRow {
        name: name.to_owned(),
        count,
        rate: rate_over(count, seconds),
        p50: quantile(&durations, 0.5),
        p95: quantile(&durations, 0.95),
        p99: quantile(&durations, 0.99),
        failure_pct: pct(failures, count),
        cancelled_pct: pct(cancelled, count),
        fps: (frames > 0 && busy > 0.0).then(|| frames as f64 / busy),
        vram_bytes: max(Figure::GpuMemory),
        gpu_util: max(Figure::GpuUtilization),
        energy_per_frame: (energy_frames > 0).then(|| joules / energy_frames as f64),
    }
}

/// The frames of an export's records: one every `step`, from the first operation's end
/// to the last's, each over the `window` before it (at most `max_frames`, the step
/// widened to fit). The figures are computed from the records (exact quantiles, where
/// the service's come from its histograms).
pub fn frames_from_records(
    records: &[OperationRecord],
    window: Duration,
    step: Duration,
    max_frames: usize,
) -> Vec<Frame> {
    let mut sorted: Vec<&OperationRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.end_time);
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let (first, last) = (first.end_time, last.end_time);
    let span = last.duration_since(first).unwrap_or_default();
    let mut step = step.max(Duration::from_millis(10));
    let max_frames = max_frames.max(1) as u32;
    if span.as_secs_f64() / step.as_secs_f64() > f64::from(max_frames) {
        step = span / max_frames;
    }
    let started = sorted.iter().map(|r| r.start_time).min().unwrap_or(first);
    let mut frames = Vec::new();
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut at = first;
    let mut sequence = 0u64;
    loop {
        let previous_hi = hi;
        while hi < sorted.len() && sorted[hi].end_time <= at {
            hi += 1;
        }
        let from = at.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        while lo < hi && sorted[lo].end_time <= from {
            lo += 1;
        }
        let in_window = &sorted[lo..hi];
        let seconds = window
            .as_secs_f64()
            .min(at.duration_since(started).map_or(0.0, |d| d.as_secs_f64()))
            .max(1e-3);
        let mut by_strategy: BTreeMap<&str, Vec<&OperationRecord>> = BTreeMap::new();
        for r in in_window {
            by_strategy.entry(&r.strategy).or_default().push(r);
        }
        let rows = by_strategy
            .iter()
            .map(|(name, rs)| row_from_records(name, rs, seconds))
            .collect();
        let mut running: Vec<Running> = sorted[hi..]
            .iter()
            .filter(|r| r.start_time <= at)
            .map(|r| Running {
                operation: r.operation_type.clone(),
                strategy: r.strategy.clone(),
                age_seconds: at
                    .duration_since(r.start_time)
                    .map_or(0.0, |d| d.as_secs_f64()),
                trace_id: r.trace_id.clone(),
                // An export holds what each operation ended with, not how it got there.
                progress: None,
            })
            .collect();
        running.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
        let running_count = running.len() as u64;
        running.truncate(MAX_RUNNING);
        let finished = &sorted[previous_hi..hi];
        frames.push(Frame {
            sequence,
            generated_at: at,
            window_seconds: window.as_secs_f64(),
            total_rate: rate_over(in_window.len() as u64, seconds),
            rows,
            running,
            running_count,
            finished: finished.len() as u64,
            gpus: Vec::new(),
            gpu_note: Some("not in an export (the table has each strategy's peaks)".to_owned()),
            lints: Vec::new(),
            single_samples: single_samples(finished.iter().copied()),
        });
        if at >= last {
            break;
        }
        sequence += 1;
        at = (at + step).min(last);
    }
    frames
}
