//! The statistics snapshot as Prometheus metric families, encoded in the classic text
//! format (0.0.4) by the `prometheus` crate's encoder, which escapes label values and
//! help text. Every family is declared once, in [`PER_KEY`] or [`GLOBAL`]; the page,
//! [`family_names`] and the docs test all read those tables.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use vidperf_core::stats::AggregateStats;
use vidperf_core::{Figure, StatsSnapshot};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the metrics page could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the metrics page: {message}")]
pub struct EncodeError {
    message: String,
}

/// Emits one sample: its extra labels and value.
type Emit<'e> = &'e mut dyn FnMut(&[(&str, &str)], f64);

/// A family with one series (or a few, by extra labels) per strategy and per operation
/// type: `vidperf_strategy_<suffix>` with label `strategy`, and
/// `vidperf_operation_type_<suffix>` with label `operation`.
struct PerKey {
    suffix: &'static str,
    /// Help text; `{what}` becomes `strategy` or `operation type`.
    help: &'static str,
    kind: MetricType,
    /// The samples of one key (not used for histograms, which come from the buckets).
    values: fn(&AggregateStats, Emit<'_>),
}

fn one(value: f64, emit: Emit<'_>) {
    emit(&[], value);
}

const PER_KEY: &[PerKey] = &[
    PerKey {
        suffix: "operations_total",
        help: "Finished operations by {what} and outcome.",
        kind: MetricType::COUNTER,
        values: |s, emit| {
            emit(&[("outcome", "success")], s.successes as f64);
            emit(&[("outcome", "failure")], s.failures as f64);
        },
    },
    PerKey {
        suffix: "duration_seconds",
        help: "Operation duration by {what}.",
        kind: MetricType::HISTOGRAM,
        values: |_, _| {},
    },
    PerKey {
        suffix: "frames_processed_total",
        help: "Frames processed by {what}.",
        kind: MetricType::COUNTER,
        values: |s, emit| one(s.frames_processed_total as f64, emit),
    },
    PerKey {
        suffix: "segments_total",
        help: "Segments processed by {what}.",
        kind: MetricType::COUNTER,
        values: |s, emit| one(s.segments_total as f64, emit),
    },
    PerKey {
        suffix: "frames_per_second",
        help: "Frames over the duration of the operations that reported frames, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(v) = s.frames_per_second {
                one(v, emit);
            }
        },
    },
    PerKey {
        suffix: "quality_score_mean",
        help: "Mean quality score (0-1) by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(v) = s.mean_quality_score {
                one(v, emit);
            }
        },
    },
    PerKey {
        suffix: "peak_memory_bytes",
        help: "Highest process resident memory during any operation, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::ProcessMemory) {
                one(p.max, emit);
            }
        },
    },
    PerKey {
        suffix: "peak_gpu_memory_bytes",
        help: "Highest GPU memory used during any operation, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::GpuMemory) {
                one(p.max, emit);
            }
        },
    },
    PerKey {
        suffix: "peak_cpu_utilization_ratio",
        help: "Highest process CPU (1 = one core) during any operation, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::ProcessCpu) {
                one(p.max, emit);
            }
        },
    },
    PerKey {
        suffix: "peak_gpu_utilization_ratio",
        help: "Highest GPU utilization (0-1) during any operation, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::GpuUtilization) {
                one(p.max, emit);
            }
        },
    },
    PerKey {
        suffix: "gpu_sm_utilization_ratio",
        help: "Mean over operations of the SM utilization (0-1, GPM) during each, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::GpuSmUtilization) {
                one(p.mean, emit);
            }
        },
    },
    PerKey {
        suffix: "gpu_sm_occupancy_ratio",
        help: "Mean over operations of the SM occupancy (0-1, GPM) during each, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::GpuSmOccupancy) {
                one(p.mean, emit);
            }
        },
    },
    PerKey {
        suffix: "gpu_tensor_activity_ratio",
        help: "Mean over operations of the tensor-core activity (0-1, GPM) during each, by {what}.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(p) = s.resources.get(Figure::GpuTensorActivity) {
                one(p.mean, emit);
            }
        },
    },
];

/// The two views of [`PER_KEY`]: name prefix, label, and the word in help texts.
const VIEWS: [(&str, &str, &str); 2] = [
    ("strategy", "strategy", "strategy"),
    ("operation_type", "operation", "operation type"),
];

/// A family of the whole process: counts, health, live resource gauges.
struct Global {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    values: fn(&StatsSnapshot, Emit<'_>),
}

const GLOBAL: &[Global] = &[
    Global {
        name: "vidperf_active_operations",
        help: "Operations running now.",
        kind: MetricType::GAUGE,
        values: |s, emit| one(s.summary.active_operations as f64, emit),
    },
    Global {
        name: "vidperf_uptime_seconds",
        help: "Seconds since the statistics started.",
        kind: MetricType::GAUGE,
        values: |s, emit| one(s.summary.uptime_seconds, emit),
    },
    Global {
        name: "vidperf_history_records",
        help: "Operation records held for export.",
        kind: MetricType::GAUGE,
        values: |s, emit| one(s.health.history_len as f64, emit),
    },
    Global {
        name: "vidperf_history_purged_total",
        help: "Oldest records purged to respect the history limit (still counted in every statistic).",
        kind: MetricType::COUNTER,
        values: |s, emit| one(s.health.history_purged as f64, emit),
    },
    Global {
        name: "vidperf_overflow_operations_total",
        help: "Operations counted under __overflow__ because a key cap was reached, by dimension (pair: the cap on operation type and strategy pairs).",
        kind: MetricType::COUNTER,
        values: |s, emit| {
            let h = &s.health;
            emit(&[("dimension", "strategy")], h.strategy_overflow as f64);
            emit(&[("dimension", "operation")], h.operation_overflow as f64);
            emit(&[("dimension", "pair")], h.pair_overflow as f64);
        },
    },
    Global {
        name: "vidperf_sink_panics_total",
        help: "Panics caught in sinks.",
        kind: MetricType::COUNTER,
        values: |s, emit| one(s.health.sink_panics as f64, emit),
    },
    Global {
        name: "vidperf_export_spans_total",
        help: "Spans offered to the OTLP trace export, by what became of them (emitted = exported + failed + dropped + vidperf_export_spans_queued).",
        kind: MetricType::COUNTER,
        values: |s, emit| {
            if let Some(e) = &s.health.export {
                emit(&[("outcome", "emitted")], e.emitted as f64);
                emit(&[("outcome", "exported")], e.exported as f64);
                emit(&[("outcome", "failed")], e.failed as f64);
                emit(&[("outcome", "dropped")], e.dropped as f64);
                emit(&[("outcome", "unsampled")], e.unsampled as f64);
            }
        },
    },
    Global {
        name: "vidperf_export_spans_dropped_total",
        help: "Spans lost before the exporter, by reason: the queue was full, or shutdown came first.",
        kind: MetricType::COUNTER,
        values: |s, emit| {
            if let Some(e) = &s.health.export {
                emit(&[("reason", "queue_full")], e.dropped_queue_full as f64);
                emit(&[("reason", "shutdown")], e.dropped_shutdown as f64);
            }
        },
    },
    Global {
        name: "vidperf_export_spans_queued",
        help: "Spans waiting for the OTLP exporter or in a batch being sent now.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(e) = &s.health.export {
                one(e.queued as f64, emit);
            }
        },
    },
    Global {
        name: "vidperf_monitor_samples_total",
        help: "Resource samples taken.",
        kind: MetricType::COUNTER,
        values: |s, emit| {
            if let Some(m) = &s.health.monitor {
                one(m.samples as f64, emit);
            }
        },
    },
    Global {
        name: "vidperf_monitor_stale",
        help: "1 while operations are open but resource samples stopped arriving.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(m) = &s.health.monitor {
                one(f64::from(u8::from(m.stale)), emit);
            }
        },
    },
    Global {
        name: "vidperf_monitor_gpu_available",
        help: "1 when GPUs are being sampled.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(m) = &s.health.monitor {
                one(f64::from(u8::from(m.gpu_state == "available")), emit);
            }
        },
    },
    Global {
        name: "vidperf_monitor_gpu_errors_total",
        help: "NVML errors while sampling, by kind.",
        kind: MetricType::COUNTER,
        values: |s, emit| {
            // Every kind from zero while GPUs are sampled, so that `rate()` has a
            // series before the first error.
            if let Some(m) = &s.health.monitor {
                if m.gpu_state == "available" {
                    for kind in vidperf_core::stats::GPU_ERROR_KINDS {
                        let n = m.gpu_errors.get(kind).copied().unwrap_or(0);
                        emit(&[("kind", kind)], n as f64);
                    }
                } else {
                    for (kind, n) in &m.gpu_errors {
                        emit(&[("kind", kind)], *n as f64);
                    }
                }
            }
        },
    },
    Global {
        name: "process_memory_usage_bytes",
        help: "Resident memory of this process at the newest sample.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            let m = s.health.monitor.as_ref();
            if let Some(v) = m.and_then(|m| m.current_process_memory_bytes) {
                one(v as f64, emit);
            }
        },
    },
    Global {
        name: "process_cpu_utilization_ratio",
        help: "CPU of this process at the newest sample (1 = one core).",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            let m = s.health.monitor.as_ref();
            if let Some(v) = m.and_then(|m| m.current_process_cpu_utilization) {
                one(v, emit);
            }
        },
    },
    Global {
        name: "hw_gpu_memory_usage_bytes",
        help: "GPU memory used at the newest sample, by device index.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(m) = &s.health.monitor {
                for (i, v) in m.current_gpu_memory_bytes.iter().enumerate() {
                    if let Some(v) = v {
                        emit(&[("gpu", &i.to_string())], *v as f64);
                    }
                }
            }
        },
    },
    Global {
        name: "hw_gpu_memory_limit_bytes",
        help: "Total memory of each GPU, by device index.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(m) = &s.health.monitor {
                for (i, v) in m.gpu_memory_total_bytes.iter().enumerate() {
                    if let Some(v) = v {
                        emit(&[("gpu", &i.to_string())], *v as f64);
                    }
                }
            }
        },
    },
    Global {
        name: "hw_gpu_utilization_ratio",
        help: "GPU utilization (0-1) at the newest sample, by device index.",
        kind: MetricType::GAUGE,
        values: |s, emit| {
            if let Some(m) = &s.health.monitor {
                for (i, v) in m.current_gpu_utilization.iter().enumerate() {
                    if let Some(v) = v {
                        emit(&[("gpu", &i.to_string())], *v);
                    }
                }
            }
        },
    },
];

/// The name of every family the page can hold (a family with no series is left out
/// of a given page; `vidperf_alert_state` appears when alert rules run).
pub fn family_names() -> Vec<String> {
    let per_key = VIEWS.iter().flat_map(|(prefix, _, _)| {
        PER_KEY
            .iter()
            .map(move |f| format!("vidperf_{prefix}_{}", f.suffix))
    });
    per_key
        .chain(GLOBAL.iter().map(|f| f.name.to_owned()))
        .chain([ALERT_STATE.0.to_owned(), REGRESSION.0.to_owned()])
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_owned());
            l.set_value((*v).to_owned());
            l
        })
        .collect()
}

fn sample(kind: MetricType, pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    if kind == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    m
}

fn histogram(pairs: &[(&str, &str)], stats: &AggregateStats) -> Option<Metric> {
    let d = stats.duration.as_ref()?;
    let mut h = Histogram::default();
    h.set_sample_count(stats.count);
    h.set_sample_sum(d.total_seconds);
    h.set_bucket(
        d.buckets
            .iter()
            .map(|b| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(b.le);
                bucket.set_cumulative_count(b.count);
                bucket
            })
            .collect(),
    );
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_histogram(h);
    Some(m)
}

fn family(name: String, help: String, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name);
    family.set_help(help);
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// The whole `/metrics` page.
pub fn encode(snapshot: &StatsSnapshot) -> Result<Vec<u8>, EncodeError> {
    encode_with(snapshot, None, None)
}

/// The alert-state family's name and help.
const ALERT_STATE: (&str, &str) = (
    "vidperf_alert_state",
    "State of each alert of the service's own rules: 0 inactive, 1 pending, 2 firing.",
);

/// The regression family's name and help.
const REGRESSION: (&str, &str) = (
    "vidperf_regression",
    "1 while a figure of an (operation, strategy) pair is regressed against the service's baseline, 0 when judged and not regressed.",
);

/// The page, with the alert states when alert rules run.
pub(crate) fn encode_with(
    snapshot: &StatsSnapshot,
    alerts: Option<&[vidperf_watch::AlertGauge]>,
    regressions: Option<&[vidperf_watch::baseline::RegressionGauge]>,
) -> Result<Vec<u8>, EncodeError> {
    let mut families = Vec::new();
    for (prefix, label, what) in VIEWS {
        let map = if label == "strategy" {
            &snapshot.by_strategy
        } else {
            &snapshot.by_operation
        };
        for f in PER_KEY {
            let mut metrics = Vec::new();
            for (key, stats) in map {
                if f.kind == MetricType::HISTOGRAM {
                    metrics.extend(histogram(&[(label, key)], stats));
                    continue;
                }
                (f.values)(stats, &mut |extra, value| {
                    let mut pairs = vec![(label, key.as_str())];
                    pairs.extend_from_slice(extra);
                    metrics.push(sample(f.kind, &pairs, value));
                });
            }
            if !metrics.is_empty() {
                let help = f.help.replace("{what}", what);
                families.push(family(
                    format!("vidperf_{prefix}_{}", f.suffix),
                    help,
                    f.kind,
                    metrics,
                ));
            }
        }
    }
    for f in GLOBAL {
        let mut metrics = Vec::new();
        (f.values)(snapshot, &mut |pairs, value| {
            metrics.push(sample(f.kind, pairs, value));
        });
        // The text format has no empty families.
        if !metrics.is_empty() {
            families.push(family(
                f.name.to_owned(),
                f.help.to_owned(),
                f.kind,
                metrics,
            ));
        }
    }
    if let Some(alerts) = alerts.filter(|a| !a.is_empty()) {
        let metrics = alerts
            .iter()
            .map(|a| {
                let pairs = [
                    ("alertname", a.name.as_str()),
                    ("strategy", a.strategy.as_deref().unwrap_or("")),
                    ("operation", a.operation.as_deref().unwrap_or("")),
                    ("severity", a.severity.as_str()),
                ];
                sample(MetricType::GAUGE, &pairs, f64::from(a.state.gauge()))
            })
            .collect();
        families.push(family(
            ALERT_STATE.0.to_owned(),
            ALERT_STATE.1.to_owned(),
            MetricType::GAUGE,
            metrics,
        ));
    }
    if let Some(regressions) = regressions.filter(|r| !r.is_empty()) {
        let metrics = regressions
            .iter()
            .map(|r| {
                let pairs = [
                    ("operation", r.operation.as_str()),
                    ("strategy", r.strategy.as_str()),
                    ("figure", r.figure),
                ];
                sample(MetricType::GAUGE, &pairs, f64::from(u8::from(r.regressed)))
            })
            .collect();
        families.push(family(
            REGRESSION.0.to_owned(),
            REGRESSION.1.to_owned(),
            MetricType::GAUGE,
            metrics,
        ));
    }
    let mut buffer = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&families, &mut buffer)
        .map_err(|e| EncodeError {
            message: e.to_string(),
        })?;
    Ok(buffer)
}
