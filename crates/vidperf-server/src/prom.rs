//! The statistics snapshot as Prometheus metric families, encoded in the classic text
//! format (0.0.4) by the `prometheus` crate's encoder, which escapes label values and
//! help text.

use std::collections::BTreeMap;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use vidperf_core::StatsSnapshot;
use vidperf_core::stats::AggregateStats;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Families(Vec<MetricFamily>);

impl Families {
    fn add(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return; // the text format has no empty families
        }
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        family.set_metric(metrics);
        self.0.push(family);
    }
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

fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value);
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_counter(c);
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

/// Per-key families: counts by outcome, duration histogram, frames, throughput,
/// quality and resource peaks.
fn per_key(
    out: &mut Families,
    prefix: &str,
    label: &str,
    what: &str,
    map: &BTreeMap<String, AggregateStats>,
) {
    let mut totals = Vec::new();
    let mut durations = Vec::new();
    let mut frames = Vec::new();
    let mut segments = Vec::new();
    let mut fps = Vec::new();
    let mut quality = Vec::new();
    let mut memory = Vec::new();
    let mut gpu_memory = Vec::new();
    let mut cpu = Vec::new();
    let mut gpu = Vec::new();
    for (key, s) in map {
        let k = [(label, key.as_str())];
        totals.push(counter(
            &[(label, key), ("outcome", "success")],
            s.successes as f64,
        ));
        totals.push(counter(
            &[(label, key), ("outcome", "failure")],
            s.failures as f64,
        ));
        durations.extend(histogram(&k, s));
        frames.push(counter(&k, s.frames_processed_total as f64));
        segments.push(counter(&k, s.segments_total as f64));
        fps.extend(s.frames_per_second.map(|v| gauge(&k, v)));
        quality.extend(s.mean_quality_score.map(|v| gauge(&k, v)));
        let r = &s.resources;
        memory.extend(
            r.peak_memory_mb
                .as_ref()
                .map(|p| gauge(&k, p.max * 1024.0 * 1024.0)),
        );
        gpu_memory.extend(
            r.peak_gpu_memory_mb
                .as_ref()
                .map(|p| gauge(&k, p.max * 1024.0 * 1024.0)),
        );
        cpu.extend(
            r.cpu_utilization_percent
                .as_ref()
                .map(|p| gauge(&k, p.max / 100.0)),
        );
        gpu.extend(
            r.gpu_utilization_percent
                .as_ref()
                .map(|p| gauge(&k, p.max / 100.0)),
        );
    }
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let name = |suffix: &str| format!("vidperf_{prefix}_{suffix}");
    out.add(
        &name("operations_total"),
        &format!("Finished operations by {what} and outcome."),
        COUNTER,
        totals,
    );
    out.add(
        &name("duration_seconds"),
        &format!("Operation duration by {what}."),
        HISTOGRAM,
        durations,
    );
    out.add(
        &name("frames_processed_total"),
        &format!("Frames processed by {what}."),
        COUNTER,
        frames,
    );
    out.add(
        &name("segments_total"),
        &format!("Segments processed by {what}."),
        COUNTER,
        segments,
    );
    out.add(
        &name("frames_per_second"),
        &format!("Frames over the duration of the operations that reported frames, by {what}."),
        GAUGE,
        fps,
    );
    out.add(
        &name("quality_score_mean"),
        &format!("Mean quality score (0-1) by {what}."),
        GAUGE,
        quality,
    );
    out.add(
        &name("peak_memory_bytes"),
        &format!("Highest process resident memory during any operation, by {what}."),
        GAUGE,
        memory,
    );
    out.add(
        &name("peak_gpu_memory_bytes"),
        &format!("Highest GPU memory used during any operation, by {what}."),
        GAUGE,
        gpu_memory,
    );
    out.add(
        &name("peak_cpu_utilization_ratio"),
        &format!("Highest process CPU (1 = one core) during any operation, by {what}."),
        GAUGE,
        cpu,
    );
    out.add(
        &name("peak_gpu_utilization_ratio"),
        &format!("Highest GPU utilization (0-1) during any operation, by {what}."),
        GAUGE,
        gpu,
    );
}

/// The whole `/metrics` page.
pub fn encode(snapshot: &StatsSnapshot) -> Result<Vec<u8>, prometheus::Error> {
    use MetricType::{COUNTER, GAUGE};
    let mut out = Families(Vec::new());
    per_key(
        &mut out,
        "strategy",
        "strategy",
        "strategy",
        &snapshot.by_strategy,
    );
    per_key(
        &mut out,
        "operation_type",
        "operation",
        "operation type",
        &snapshot.by_operation,
    );
    let s = &snapshot.summary;
    out.add(
        "vidperf_active_operations",
        "Operations running now.",
        GAUGE,
        vec![gauge(&[], s.active_operations as f64)],
    );
    out.add(
        "vidperf_uptime_seconds",
        "Seconds since the statistics started.",
        GAUGE,
        vec![gauge(&[], s.uptime_seconds)],
    );
    let h = &snapshot.health;
    out.add(
        "vidperf_history_records",
        "Operation records held for export.",
        GAUGE,
        vec![gauge(&[], h.history_len as f64)],
    );
    out.add(
        "vidperf_history_purged_total",
        "Oldest records purged to respect the history limit (still counted in every statistic).",
        COUNTER,
        vec![counter(&[], h.history_purged as f64)],
    );
    out.add(
        "vidperf_overflow_operations_total",
        "Operations counted under __overflow__ because the key cap was reached, by dimension.",
        COUNTER,
        vec![
            counter(&[("dimension", "strategy")], h.strategy_overflow as f64),
            counter(&[("dimension", "operation")], h.operation_overflow as f64),
        ],
    );
    out.add(
        "vidperf_sink_panics_total",
        "Panics caught in sinks.",
        COUNTER,
        vec![counter(&[], h.sink_panics as f64)],
    );
    if let Some(e) = &h.export {
        out.add(
            "vidperf_export_spans_total",
            "Spans offered to the OTLP trace export, by what became of them (emitted = exported + failed + dropped + vidperf_export_spans_queued).",
            COUNTER,
            vec![
                counter(&[("outcome", "emitted")], e.emitted as f64),
                counter(&[("outcome", "exported")], e.exported as f64),
                counter(&[("outcome", "failed")], e.failed as f64),
                counter(&[("outcome", "dropped")], e.dropped as f64),
                counter(&[("outcome", "unsampled")], e.unsampled as f64),
            ],
        );
        out.add(
            "vidperf_export_spans_dropped_total",
            "Spans lost before the exporter, by reason: the queue was full, or shutdown came first.",
            COUNTER,
            vec![
                counter(&[("reason", "queue_full")], e.dropped_queue_full as f64),
                counter(&[("reason", "shutdown")], e.dropped_shutdown as f64),
            ],
        );
        out.add(
            "vidperf_export_spans_queued",
            "Spans waiting for the OTLP exporter or in a batch being sent now.",
            GAUGE,
            vec![gauge(&[], e.queued as f64)],
        );
    }
    if let Some(m) = &h.monitor {
        out.add(
            "vidperf_monitor_samples_total",
            "Resource samples taken.",
            COUNTER,
            vec![counter(&[], m.samples as f64)],
        );
        out.add(
            "vidperf_monitor_stale",
            "1 while operations are open but resource samples stopped arriving.",
            GAUGE,
            vec![gauge(&[], f64::from(u8::from(m.stale)))],
        );
        out.add(
            "vidperf_monitor_gpu_available",
            "1 when GPUs are being sampled.",
            GAUGE,
            vec![gauge(&[], f64::from(u8::from(m.gpu_state == "available")))],
        );
        out.add(
            "vidperf_monitor_gpu_errors_total",
            "NVML errors while sampling, by kind.",
            COUNTER,
            m.gpu_errors
                .iter()
                .map(|(kind, n)| counter(&[("kind", kind)], *n as f64))
                .collect(),
        );
        out.add(
            "process_memory_usage_bytes",
            "Resident memory of this process at the newest sample.",
            GAUGE,
            m.current_process_memory_bytes
                .map(|v| gauge(&[], v as f64))
                .into_iter()
                .collect(),
        );
        out.add(
            "process_cpu_utilization_ratio",
            "CPU of this process at the newest sample (1 = one core).",
            GAUGE,
            m.current_process_cpu_utilization
                .map(|v| gauge(&[], v))
                .into_iter()
                .collect(),
        );
        let per_device = |values: Vec<Option<f64>>| -> Vec<Metric> {
            values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| gauge(&[("gpu", &i.to_string())], v)))
                .collect()
        };
        out.add(
            "hw_gpu_memory_usage_bytes",
            "GPU memory used at the newest sample, by device index.",
            GAUGE,
            per_device(
                m.current_gpu_memory_bytes
                    .iter()
                    .map(|v| v.map(|b| b as f64))
                    .collect(),
            ),
        );
        out.add(
            "hw_gpu_utilization_ratio",
            "GPU utilization (0-1) at the newest sample, by device index.",
            GAUGE,
            per_device(m.current_gpu_utilization.clone()),
        );
    }
    let mut buffer = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(&out.0, &mut buffer)?;
    Ok(buffer)
}
