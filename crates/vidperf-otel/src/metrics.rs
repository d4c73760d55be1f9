//! OTLP metrics from the statistics: every `OTEL_METRIC_EXPORT_INTERVAL` a thread named
//! `vidperf-otlp-metrics` reads [`Stats::metrics`] — the same families `/metrics`
//! serves, with the same attribute sets — encodes them as an OTLP
//! `ExportMetricsServiceRequest` and sends it. No SDK meter: the statistics already
//! count every operation exactly (whatever the trace sampler keeps), their histograms
//! carry exemplars, and encoding from them keeps OTLP and Prometheus one source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1 as proto;
use prost::Message as _;
use vidperf_core::Stats;
use vidperf_core::metrics::{Family, Kind, Metrics, Value};
use vidperf_core::worker::{StopTimeout, Worker as Thread};

use crate::config::OtelError;
use crate::transport::{ExportError, Signal, Transport};

/// How cumulative series are reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Temporality {
    /// Every counter and histogram since start (the default; what Prometheus-style
    /// backends want).
    #[default]
    Cumulative,
    /// Counters and histograms since the previous export (what Datadog prefers):
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta` (or `lowmemory`).
    Delta,
}

/// The previous export's cumulative values, for delta temporality.
#[derive(Debug, Default)]
struct Previous {
    at: Option<SystemTime>,
    /// By family name and attributes: a number, or histogram counts, count and sum.
    values: SeenMap,
}

#[derive(Clone, Debug)]
enum Seen {
    Number(f64),
    Histogram(Vec<u64>, u64, f64),
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// The request for `metrics`, with `resource`'s attributes. Under delta temporality
/// counters and histograms are the change since `previous` (a series seen for the first
/// time, or one that went down, counts from zero).
fn request(
    metrics: &Metrics,
    resource: &[KeyValue],
    temporality: Temporality,
    previous: &mut Previous,
) -> ExportMetricsServiceRequest {
    let delta = temporality == Temporality::Delta;
    let start = match (delta, previous.at) {
        (true, Some(at)) => nanos(at),
        _ => nanos(metrics.start_time),
    };
    let time = nanos(metrics.time);
    let aggregation = if delta {
        proto::AggregationTemporality::Delta
    } else {
        proto::AggregationTemporality::Cumulative
    } as i32;
    let mut seen = HashMap::new();
    let out: Vec<proto::Metric> = metrics
        .families
        .iter()
        .filter_map(|family| metric(family, start, time, aggregation, delta, previous, &mut seen))
        .collect();
    previous.values = seen;
    previous.at = Some(metrics.time);
    ExportMetricsServiceRequest {
        resource_metrics: vec![proto::ResourceMetrics {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: resource.to_vec(),
                ..Default::default()
            }),
            scope_metrics: vec![proto::ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "vidperf".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics: out,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

type SeenMap = HashMap<(&'static str, Vec<(String, String)>), Seen>;

fn metric(
    family: &Family,
    start: u64,
    time: u64,
    aggregation: i32,
    delta: bool,
    previous: &Previous,
    seen: &mut SeenMap,
) -> Option<proto::Metric> {
    if family.points.is_empty() {
        return None;
    }
    let def = &family.def;
    let mut numbers = Vec::new();
    let mut histograms = Vec::new();
    for point in &family.points {
        let attributes: Vec<KeyValue> = point.attributes.iter().map(|(k, v)| text(k, v)).collect();
        let key = (
            def.name,
            point
                .attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect::<Vec<_>>(),
        );
        let before = previous.values.get(&key);
        match &point.value {
            Value::Number(v) => {
                seen.insert(key, Seen::Number(*v));
                let value = match (delta && def.kind == Kind::Counter, before) {
                    (true, Some(Seen::Number(b))) if v >= b => v - b,
                    _ => *v,
                };
                numbers.push(proto::NumberDataPoint {
                    attributes,
                    start_time_unix_nano: if def.kind == Kind::Gauge { 0 } else { start },
                    time_unix_nano: time,
                    value: Some(proto::number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                });
            }
            Value::Histogram(h) => {
                seen.insert(key, Seen::Histogram(h.counts.clone(), h.count, h.sum));
                let (counts, count, sum) = match (delta, before) {
                    (true, Some(Seen::Histogram(c, n, s)))
                        if h.count >= *n && c.len() == h.counts.len() =>
                    {
                        let counts: Vec<u64> = h
                            .counts
                            .iter()
                            .zip(c)
                            .map(|(now, then)| now.saturating_sub(*then))
                            .collect();
                        (counts, h.count - n, h.sum - s)
                    }
                    _ => (h.counts.clone(), h.count, h.sum),
                };
                let exemplars = h
                    .exemplars
                    .iter()
                    .map(|e| proto::Exemplar {
                        time_unix_nano: nanos(e.time),
                        trace_id: e.trace_id.to_vec(),
                        span_id: e.span_id.to_vec(),
                        value: Some(proto::exemplar::Value::AsDouble(e.value)),
                        ..Default::default()
                    })
                    .collect();
                // Delta points lose the extremes: they are of all time, not the period.
                let cumulative = !delta || before.is_none();
                histograms.push(proto::HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count,
                    sum: Some(sum),
                    bucket_counts: counts,
                    explicit_bounds: h.bounds.to_vec(),
                    exemplars,
                    flags: 0,
                    min: h.min.filter(|_| cumulative),
                    max: h.max.filter(|_| cumulative),
                });
            }
        }
    }
    let data = match def.kind {
        Kind::Counter => proto::metric::Data::Sum(proto::Sum {
            data_points: numbers,
            aggregation_temporality: aggregation,
            is_monotonic: true,
        }),
        Kind::Gauge => proto::metric::Data::Gauge(proto::Gauge {
            data_points: numbers,
        }),
        Kind::Histogram => proto::metric::Data::Histogram(proto::Histogram {
            data_points: histograms,
            aggregation_temporality: aggregation,
        }),
    };
    Some(proto::Metric {
        name: def.name.to_owned(),
        description: def.help.to_owned(),
        unit: def.unit.to_owned(),
        metadata: Vec::new(),
        data: Some(data),
    })
}

/// What the metrics export did so far.
#[derive(Debug, Default)]
pub(crate) struct MetricCounters {
    pub(crate) exports: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

enum Command {
    Flush(SyncSender<Result<(), ExportError>>),
    Stop,
}

/// The running metrics export.
#[derive(Debug)]
pub(crate) struct MetricsExport {
    commands: SyncSender<Command>,
    worker: Thread,
    pub(crate) counters: Arc<MetricCounters>,
}

struct Exporter {
    stats: Arc<Stats>,
    resource: Vec<KeyValue>,
    temporality: Temporality,
    transport: Transport,
    previous: Previous,
    counters: Arc<MetricCounters>,
}

impl Exporter {
    fn export(&mut self) -> Result<(), ExportError> {
        let metrics = self.stats.metrics();
        let request = request(
            &metrics,
            &self.resource,
            self.temporality,
            &mut self.previous,
        );
        let result = self
            .transport
            .send(Signal::Metrics, &request.encode_to_vec());
        match &result {
            Ok(()) => {
                self.counters.exports.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                *self
                    .counters
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                // The next export repeats what this one would have said (cumulative), or
                // its change with the next (delta: nothing is lost, only later).
                if self.temporality == Temporality::Delta {
                    self.previous.at = None;
                    self.previous.values.clear();
                }
            }
        }
        result
    }

    fn run(mut self, commands: &Receiver<Command>, interval: Duration) {
        let mut next = Instant::now() + interval;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(Command::Flush(reply)) => {
                    let _ = reply.send(self.export());
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    // One last export, so the final counts reach the collector.
                    let _ = self.export();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.export();
                    next = Instant::now() + interval;
                }
            }
        }
    }
}

impl MetricsExport {
    pub(crate) fn start(
        stats: Arc<Stats>,
        resource: Vec<KeyValue>,
        temporality: Temporality,
        transport: Transport,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let counters = Arc::new(MetricCounters::default());
        let worker = Exporter {
            stats,
            resource,
            temporality,
            transport,
            previous: Previous::default(),
            counters: counters.clone(),
        };
        let (commands, receive) = sync_channel(4);
        // (A worker runs under no subscriber: the export's own HTTP calls never feed the
        // statistics they report.)
        let thread = Thread::spawn("vidperf-otlp-metrics", move || {
            worker.run(&receive, interval.max(Duration::from_millis(10)));
        })?;
        Ok(Self {
            commands,
            worker: thread,
            counters,
        })
    }

    /// Exports now, waiting at most `timeout` for the answer.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), OtelError> {
        let busy = || OtelError::Timeout(StopTimeout::new("vidperf-otlp-metrics", timeout));
        let (reply, answer) = sync_channel(1);
        self.commands
            .try_send(Command::Flush(reply))
            .map_err(|_| busy())?;
        match answer.recv_timeout(timeout) {
            Ok(result) => result.map_err(OtelError::MetricsExport),
            Err(_) => Err(busy()),
        }
    }

    /// Exports one last time and stops, waiting at most `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let _ = self.commands.try_send(Command::Stop);
        self.worker.join(timeout)
    }

    /// Why the export's thread ended in a panic, if it did.
    pub(crate) fn panicked(&self) -> Option<String> {
        self.worker.panicked()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use vidperf_core::metrics::{FamilyDef, HistogramValue, Point};

    fn metrics(count: u64, frames: f64) -> Metrics {
        let mut counter = Family::new(FamilyDef::new("c", "{frame}", Kind::Counter, "C."));
        counter.push(vec![("vidperf.strategy", Cow::Borrowed("vsrm"))], frames);
        let mut h = Family::new(FamilyDef::new("h", "s", Kind::Histogram, "H."));
        h.points.push(Point::new(
            Vec::new(),
            Value::Histogram(HistogramValue::new(
                &[1.0],
                vec![count, 0],
                count,
                count as f64,
            )),
        ));
        Metrics::new(
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_secs(count),
            vec![counter, h],
        )
    }

    #[test]
    fn delta_reports_the_change_and_cumulative_the_total() {
        let mut previous = Previous::default();
        let _ = request(&metrics(2, 10.0), &[], Temporality::Delta, &mut previous);
        let r = request(&metrics(5, 25.0), &[], Temporality::Delta, &mut previous);
        let m = &r.resource_metrics[0].scope_metrics[0].metrics;
        let Some(proto::metric::Data::Sum(sum)) = &m[0].data else {
            panic!("a sum")
        };
        assert_eq!(
            sum.data_points[0].value,
            Some(proto::number_data_point::Value::AsDouble(15.0))
        );
        assert_eq!(
            sum.aggregation_temporality,
            proto::AggregationTemporality::Delta as i32
        );
        let Some(proto::metric::Data::Histogram(h)) = &m[1].data else {
            panic!("a histogram")
        };
        assert_eq!(
            (h.data_points[0].count, &h.data_points[0].bucket_counts[..]),
            (3, &[3, 0][..])
        );
        assert_eq!(h.data_points[0].start_time_unix_nano, 2_000_000_000);

        let mut previous = Previous::default();
        let _ = request(
            &metrics(2, 10.0),
            &[],
            Temporality::Cumulative,
            &mut previous,
        );
        let r = request(
            &metrics(5, 25.0),
            &[],
            Temporality::Cumulative,
            &mut previous,
        );
        let m = &r.resource_metrics[0].scope_metrics[0].metrics;
        let Some(proto::metric::Data::Histogram(h)) = &m[1].data else {
            panic!("a histogram")
        };
        assert_eq!(
            (
                h.data_points[0].count,
                h.data_points[0].start_time_unix_nano
            ),
            (5, 0)
        );
    }
}
