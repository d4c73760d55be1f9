//! Configuration from the standard `OTEL_*` variables, and the running pipeline.

use std::sync::Arc;
use std::time::Duration;

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use vidperf_core::Stats;
use vidperf_core::sampler::{Root, Sampler};
use vidperf_core::stats::{Health, HealthSource};

use crate::batch::BatchConfig;
use crate::health::ExportHealth;
use crate::metrics::{MetricsExport, Temporality};
use crate::tail::TailConfig;
use crate::transport::{ExportError, Transport};

use crate::traces::{DEFAULT_MAX_QUEUE_SIZE, TraceSink};

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// `http/protobuf`, with a blocking client (works without an async runtime).
    HttpProtobuf,
    /// `grpc`, over tonic: needs the `grpc` feature (`otlp-grpc` on `vidperf`) and a
    /// tokio runtime entered when the pipeline starts, alive for as long as it runs.
    Grpc,
}

impl Protocol {
    fn parse(var: &'static str, value: String) -> Result<Self, OtelError> {
        match value.as_str() {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "grpc" => Ok(Self::Grpc),
            _ => Err(OtelError::InvalidEnv {
                var,
                value,
                reason: "expected http/protobuf or grpc (http/json is not supported)",
            }),
        }
    }
}

/// Why the bridge could not be configured, started or stopped cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// An `OTEL_*` variable holds something the bridge cannot use.
    #[error("{var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A thread of the export could not be started.
    #[error("cannot start the OTLP export thread: {0}")]
    Thread(#[source] std::io::Error),
    /// OTLP over gRPC was asked for, but this build does not include it.
    #[error(
        "OTLP over gRPC is not built in: enable vidperf's `otlp-grpc` feature, or use http/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
    )]
    GrpcNotBuilt,
    /// OTLP over gRPC was asked for outside a tokio runtime.
    #[error(
        "OTLP over gRPC needs a tokio runtime: build vidperf from inside one (e.g. in `#[tokio::main]`, or after `Runtime::enter`), or use http/protobuf, which needs none"
    )]
    NoRuntime,
    /// The metrics export did not deliver.
    #[error("OTLP metrics export: {0}")]
    MetricsExport(#[source] ExportError),
    /// A thread of the export did not stop within the deadline.
    #[error(transparent)]
    Timeout(#[from] vidperf_core::worker::StopTimeout),
    /// Spans queued when the shutdown began were not delivered.
    #[error(
        "OTLP export lost {} spans at shutdown ({} emitted, {} exported, {} failed: collector unreachable or refused, {} dropped with the queue full, {} dropped at shutdown)",
        .0.lost_at_shutdown, .0.traces.emitted, .0.traces.exported, .0.traces.failed, .0.traces.dropped_queue_full, .0.traces.dropped_shutdown
    )]
    Lost(Box<OtelReport>),
}

/// The GPU's memory in bytes, when known: what the tail sampler's VRAM rule compares an
/// operation's peak with (the facade hands over the resource monitor's).
#[derive(Clone)]
pub struct GpuMemoryLimit(pub(crate) Arc<dyn Fn() -> Option<u64> + Send + Sync>);

impl GpuMemoryLimit {
    /// The limit `f` reads (asked once a second).
    pub fn new(f: impl Fn() -> Option<u64> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl From<Arc<dyn Fn() -> Option<u64> + Send + Sync>> for GpuMemoryLimit {
    fn from(f: Arc<dyn Fn() -> Option<u64> + Send + Sync>) -> Self {
        Self(f)
    }
}

impl std::fmt::Debug for GpuMemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuMemoryLimit")
    }
}

/// What the bridge is told to do; [`OtelConfig::from_env`] fills it from the standard
/// variables, and the setters override.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OtelConfig {
    /// False when `OTEL_SDK_DISABLED=true`.
    pub enabled: bool,
    /// Transport.
    pub protocol: Protocol,
    /// The head sampler: decides when a trace starts here whether it is sampled
    /// (`OTEL_TRACES_SAMPLER`, default `parentbased_always_on`). The facade gives it to
    /// the layer, which stores the decision in every span.
    pub sampler: Sampler,
    /// The tail sampler, when on (`VIDPERF_TAIL_SAMPLING` in the facade): which local
    /// traces are exported, decided when they end.
    pub tail: Option<TailConfig>,
    /// The GPU's memory, for the tail sampler's VRAM rule.
    pub gpu_memory_limit: Option<GpuMemoryLimit>,
    /// Whether to export metrics too. Default true.
    pub metrics: bool,
    /// Metrics export interval. Default 60 s (`OTEL_METRIC_EXPORT_INTERVAL`, ms).
    pub metrics_interval: Duration,
    /// Cumulative (default) or delta counters and histograms
    /// (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
    pub temporality: Temporality,
    /// Timeout of one export request. Default 10 s (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`
    /// or `OTEL_EXPORTER_OTLP_TIMEOUT`, ms).
    pub export_timeout: Duration,
    /// Endpoint override (otherwise the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables, or
    /// `http://localhost:4318`). For HTTP this is the base URL; `/v1/traces` and
    /// `/v1/metrics` are appended.
    pub endpoint: Option<String>,
    /// Spans held for export at most (queued or in a batch being sent); more are
    /// dropped and counted. Default [`DEFAULT_MAX_QUEUE_SIZE`] (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: Option<usize>,
    /// The rest of the batching (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT`).
    pub batch: BatchConfig,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            protocol: Protocol::HttpProtobuf,
            sampler: Sampler::default(),
            tail: None,
            gpu_memory_limit: None,
            metrics: true,
            metrics_interval: Duration::from_secs(60),
            temporality: Temporality::Cumulative,
            export_timeout: Duration::from_secs(10),
            endpoint: None,
            max_queue_size: None,
            batch: BatchConfig::default(),
        }
    }
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The first of `names` that is set (a signal's variable before the general one), with
/// its value.
fn first_var<const N: usize>(names: [&'static str; N]) -> Option<(&'static str, String)> {
    names
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)))
}

/// A duration in milliseconds, as the OpenTelemetry variables give them (at least 1 ms).
fn millis(var: &'static str, text: String) -> Result<Duration, OtelError> {
    match text.parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms.max(1))),
        Err(_) => Err(OtelError::InvalidEnv {
            var,
            value: text,
            reason: "expected milliseconds (a whole number)",
        }),
    }
}

fn ratio(arg: Option<String>) -> Result<f64, OtelError> {
    match arg {
        None => Ok(1.0),
        Some(text) => match text.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(OtelError::InvalidEnv {
                var: "OTEL_TRACES_SAMPLER_ARG",
                value: text,
                reason: "expected a ratio from 0 to 1",
            }),
        },
    }
}

/// An OTLP endpoint: `http://` or `https://`, a host, an optional port (1–65535) and
/// path. Checked when the pipeline is configured, so a typo fails at start instead of
/// on every export.
pub(crate) fn check_endpoint(var: &'static str, value: &str) -> Result<(), OtelError> {
    let invalid = |reason| OtelError::InvalidEnv {
        var,
        value: value.to_owned(),
        reason,
    };
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid("expected an http:// or https:// URL, e.g. http://127.0.0.1:4318")
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 host must be in brackets, e.g. http://[::1]:4318"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("the URL has no host, e.g. http://127.0.0.1:4318"));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
    {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    Ok(())
}

/// A `key=value,key=value` list (`OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_RESOURCE_ATTRIBUTES`): every non-empty item has a key, an `=` and a value whose
/// `%` escapes are two hex digits.
fn check_pairs(var: &'static str, value: &str) -> Result<(), OtelError> {
    let invalid = |reason| OtelError::InvalidEnv {
        var,
        value: value.to_owned(),
        reason,
    };
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, val) = item
            .split_once('=')
            .ok_or_else(|| invalid("expected key=value pairs separated by commas"))?;
        if key.trim().is_empty() {
            return Err(invalid("a key=value pair has no key"));
        }
        let bytes = val.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let ok = bytes.len() > i + 2
                    && bytes[i + 1].is_ascii_hexdigit()
                    && bytes[i + 2].is_ascii_hexdigit();
                if !ok {
                    return Err(invalid("a % escape must be followed by two hex digits"));
                }
                i += 3;
            } else {
                i += 1;
            }
        }
    }
    Ok(())
}

impl OtelConfig {
    /// Reads `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_PROTOCOL` and
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (and their traces variants),
    /// `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_METRIC_EXPORT_INTERVAL`,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` and the `OTEL_BSP_*` batch
    /// settings. The endpoints, headers and resource (`OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`) are read when the pipeline starts.
    ///
    /// It also checks, so that a setting that could only fail later fails now, naming the
    /// variable: the endpoints (`OTEL_EXPORTER_OTLP_ENDPOINT` and its `TRACES_` /
    /// `METRICS_` variants: an `http(s)://` URL with a host and a valid port), the
    /// headers (`OTEL_EXPORTER_OTLP_HEADERS` and variants) and `OTEL_RESOURCE_ATTRIBUTES`
    /// (`key=value` lists), and `OTEL_TRACES_SAMPLER_ARG` (a ratio from 0 to 1) whatever
    /// the sampler. An empty value counts as unset, as the specification says.
    pub fn from_env() -> Result<Self, OtelError> {
        let mut config = Self::default();
        if let Some(v) = var("OTEL_SDK_DISABLED") {
            config.enabled = match v.to_ascii_lowercase().as_str() {
                "true" => false,
                "false" => true,
                _ => {
                    return Err(OtelError::InvalidEnv {
                        var: "OTEL_SDK_DISABLED",
                        value: v,
                        reason: "expected true or false",
                    });
                }
            };
        }
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ] {
            if let Some(value) = var(name) {
                check_endpoint(name, &value)?;
            }
        }
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "OTEL_RESOURCE_ATTRIBUTES",
        ] {
            if let Some(value) = var(name) {
                check_pairs(name, &value)?;
            }
        }
        if let Some((name, p)) = first_var([
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]) {
            config.protocol = Protocol::parse(name, p)?;
        }
        let arg = var("OTEL_TRACES_SAMPLER_ARG");
        let ratio = ratio(arg)?;
        if let Some(s) = var("OTEL_TRACES_SAMPLER") {
            config.sampler = match s.as_str() {
                "always_on" => Sampler::AlwaysOn,
                "always_off" => Sampler::AlwaysOff,
                "traceidratio" => Sampler::TraceIdRatio(ratio),
                "parentbased_always_on" => Sampler::ParentBased(Root::AlwaysOn),
                "parentbased_always_off" => Sampler::ParentBased(Root::AlwaysOff),
                "parentbased_traceidratio" => Sampler::ParentBased(Root::TraceIdRatio(ratio)),
                _ => {
                    return Err(OtelError::InvalidEnv {
                        var: "OTEL_TRACES_SAMPLER",
                        value: s,
                        reason: "expected always_on, always_off, traceidratio or a parentbased_ variant",
                    });
                }
            };
        }
        // The exporter would read the timeout itself, but the bridge sets its own (its
        // HTTP client needs the same bound), so it reads the variables here.
        if let Some((name, ms)) = first_var([
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]) {
            config.export_timeout = millis(name, ms)?;
        }
        if let Some(t) = var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
            config.temporality = match t.to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" | "lowmemory" => Temporality::Delta,
                _ => {
                    return Err(OtelError::InvalidEnv {
                        var: "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                        value: t,
                        reason: "expected cumulative, delta or lowmemory",
                    });
                }
            };
        }
        if let Some(ms) = var("OTEL_METRIC_EXPORT_INTERVAL") {
            config.metrics_interval = millis("OTEL_METRIC_EXPORT_INTERVAL", ms)?;
        }
        let count = |name: &'static str, what: &'static str| -> Result<Option<usize>, OtelError> {
            match var(name) {
                None => Ok(None),
                Some(text) => match text.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(OtelError::InvalidEnv {
                        var: name,
                        value: text,
                        reason: what,
                    }),
                },
            }
        };
        if let Some(n) = count(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "expected a number of spans, at least 1",
        )? {
            config.batch.max_export_batch_size = n;
        }
        if let Some(ms) = var("OTEL_BSP_SCHEDULE_DELAY") {
            config.batch.schedule_delay = millis("OTEL_BSP_SCHEDULE_DELAY", ms)?;
        }
        if let Some(ms) = var("OTEL_BSP_EXPORT_TIMEOUT") {
            config.batch.export_timeout = millis("OTEL_BSP_EXPORT_TIMEOUT", ms)?;
        }
        if let Some(size) = var("OTEL_BSP_MAX_QUEUE_SIZE") {
            config.max_queue_size = match size.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(OtelError::InvalidEnv {
                        var: "OTEL_BSP_MAX_QUEUE_SIZE",
                        value: size,
                        reason: "expected a number of spans, at least 1",
                    });
                }
            };
        }
        Ok(config)
    }

    /// Sets the endpoint (base URL, e.g. `http://127.0.0.1:4318`).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the transport.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets how many spans are held for export at most (otherwise
    /// `OTEL_BSP_MAX_QUEUE_SIZE`, default 2048). Spans that find the queue full are
    /// dropped and counted.
    #[must_use]
    pub fn with_max_queue_size(mut self, spans: usize) -> Self {
        self.max_queue_size = Some(spans.max(1));
        self
    }

    /// Sets the head sampler.
    #[must_use]
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Turns the tail sampler on with `config`.
    #[must_use]
    pub fn with_tail_sampling(mut self, config: TailConfig) -> Self {
        self.tail = Some(config);
        self
    }

    /// The GPU's memory for the tail sampler's VRAM rule.
    #[must_use]
    pub fn with_gpu_memory_limit(mut self, limit: GpuMemoryLimit) -> Self {
        self.gpu_memory_limit = Some(limit);
        self
    }

    /// Sets the batching (the queue size keeps its own setting).
    #[must_use]
    pub fn with_batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Sets the metrics export interval.
    #[must_use]
    pub fn with_metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Sets the temporality of the metrics' counters and histograms.
    #[must_use]
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Sets the timeout of one export request.
    #[must_use]
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }
}

/// What [`Otel::shutdown`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtelReport {
    /// The spans (and the metrics requests), after the shutdown.
    pub traces: ExportHealth,
    /// Spans lost before the shutdown began (failed or dropped), each counted when it
    /// happened.
    pub lost_before: u64,
    /// Spans queued when the shutdown began that were not delivered.
    pub lost_at_shutdown: u64,
}

/// The running bridge: the trace sink to register with the layer, the metrics export
/// of the statistics, and their lifecycle.
#[derive(Debug, Clone)]
pub struct Otel {
    traces: Arc<TraceSink>,
    metrics: Option<Arc<MetricsExport>>,
}

/// The resource's attributes as OTLP key-values, for the metrics requests.
fn resource_attributes(
    resource: &[(String, String)],
) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    resource
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.clone())),
            }),
            ..Default::default()
        })
        .collect()
}

impl Otel {
    /// Builds the OTLP pipeline — the trace sink, and, when metrics are on, a thread
    /// sending `stats`' metrics every [`OtelConfig::metrics_interval`]; `None` when the
    /// configuration disables it.
    pub fn start(config: &OtelConfig, stats: &Arc<Stats>) -> Result<Option<Self>, OtelError> {
        if !config.enabled {
            return Ok(None);
        }
        if let Some(endpoint) = &config.endpoint {
            check_endpoint("OtelConfig::endpoint", endpoint)?;
        }
        let resource = crate::resource::from_env();
        let spans = Transport::for_signal(config, "traces")?;
        let mut batch = config.batch;
        batch.max_queue_size = config.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE);
        let mut traces = TraceSink::builder(spans)
            .resource(resource.clone())
            .batch(batch);
        if let Some(tail) = &config.tail {
            traces = traces.tail(tail.clone(), stats.clone());
            if let Some(limit) = &config.gpu_memory_limit {
                traces = traces.gpu_memory_limit(limit.clone());
            }
        }
        let traces = traces.start().map_err(OtelError::Thread)?;
        let metrics = if config.metrics {
            let transport = Transport::for_signal(config, "metrics")?;
            let export = MetricsExport::start(
                stats.clone(),
                resource_attributes(&resource),
                config.temporality,
                transport,
                config.metrics_interval,
            )
            .map_err(OtelError::Thread)?;
            Some(Arc::new(export))
        } else {
            None
        };
        Ok(Some(Self {
            traces: Arc::new(traces),
            metrics,
        }))
    }

    /// The trace sink.
    pub fn traces(&self) -> &Arc<TraceSink> {
        &self.traces
    }

    /// What became of the spans and the metrics requests so far.
    pub fn health(&self) -> ExportHealth {
        let mut health = self.traces.health();
        if let Some(m) = &self.metrics {
            health.metric_exports = m.counters.exports.load(Ordering::Relaxed);
            health.metric_export_failures = m.counters.failed.load(Ordering::Relaxed);
            health.metric_export_error.clone_from(
                &m.counters
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            health.metric_export_panicked = m.panicked();
        }
        health
    }

    /// Exports everything pending now: the queued spans, and the metrics.
    pub fn flush(&self) -> Result<(), OtelError> {
        let traces = self.traces.flush().map_err(OtelError::Timeout);
        let metrics = match &self.metrics {
            Some(m) => m.flush(Duration::from_secs(30)),
            None => Ok(()),
        };
        traces.and(metrics)
    }

    /// Flushes and stops both pipelines, waiting at most `timeout` for each. The report
    /// says what was delivered and what was lost, before the shutdown and during it;
    /// it fails only for what went wrong in the shutdown itself: spans queued when it
    /// began that were not delivered ([`OtelError::Lost`]), or a thread that did not
    /// stop in time ([`OtelError::Timeout`]). Losses earlier on (a full queue, a
    /// collector that was down) were counted when they happened and are in the report.
    pub fn shutdown(&self, timeout: Duration) -> Result<OtelReport, OtelError> {
        let before = self.health();
        let traces = self.traces.shutdown(timeout);
        let metrics = self.metrics.as_ref().map(|m| m.shutdown(timeout));
        let after = self.health();
        let lost = |h: &ExportHealth| h.failed + h.dropped;
        let report = OtelReport {
            lost_before: lost(&before),
            lost_at_shutdown: lost(&after).saturating_sub(lost(&before)),
            traces: after,
        };
        if let Err(timed_out) = traces {
            return Err(OtelError::Timeout(timed_out));
        }
        if let Some(Err(timed_out)) = metrics {
            return Err(OtelError::Timeout(timed_out));
        }
        if report.lost_at_shutdown > 0 {
            return Err(OtelError::Lost(Box::new(report)));
        }
        Ok(report)
    }
}

/// The export's counts (spans and metrics requests), in the statistics' health
/// (`health.export`) and as metric families.
impl HealthSource for Otel {
    fn report(&self, health: &mut Health) {
        health.set_part("export", &self.health());
    }

    fn metrics(&self, families: &mut Vec<vidperf_core::metrics::Family>) {
        self.health().families(families);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_variable_is_parsed_strictly() {
        let parse = |v: &str| Protocol::parse("OTEL_EXPORTER_OTLP_PROTOCOL", v.to_owned());
        assert_eq!(parse("http/protobuf").ok(), Some(Protocol::HttpProtobuf));
        assert_eq!(parse("grpc").ok(), Some(Protocol::Grpc));
        let err = parse("http/json").expect_err("not supported");
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_eq!(
            millis("OTEL_EXPORTER_OTLP_TIMEOUT", "2500".to_owned()).ok(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            millis("OTEL_EXPORTER_OTLP_TIMEOUT", "0".to_owned()).ok(),
            Some(Duration::from_millis(1))
        );
        let err = millis("OTEL_EXPORTER_OTLP_TIMEOUT", "10s".to_owned()).expect_err("unit");
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_TIMEOUT=\"10s\" is invalid"),
            "{err}"
        );
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_outside_a_runtime_is_an_error_not_a_panic() {
        let config = OtelConfig::default().with_protocol(Protocol::Grpc);
        let err = Otel::start(&config, &Arc::default()).expect_err("no runtime");
        assert!(matches!(err, OtelError::NoRuntime), "{err}");
    }

    #[cfg(not(feature = "grpc"))]
    #[test]
    fn grpc_without_the_feature_says_which_feature() {
        let config = OtelConfig::default().with_protocol(Protocol::Grpc);
        let err = Otel::start(&config, &Arc::default()).expect_err("not built");
        assert!(err.to_string().contains("otlp-grpc"), "{err}");
    }
}
