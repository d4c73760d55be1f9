//! Configuration from the standard `OTEL_*` variables, and the running pipeline.

use std::sync::Arc;
use std::time::Duration;

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use opentelemetry_otlp::{SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::Sampler;
use vidperf_core::Stats;
use vidperf_core::stats::{Health, HealthSource};

use crate::client::UreqClient;
use crate::health::ExportHealth;
use crate::metrics::{MetricsExport, Temporality};
use crate::transport::Transport;

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
    /// The exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
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
    MetricsExport(String),
    /// A thread of the export did not stop within the deadline.
    #[error(transparent)]
    Timeout(#[from] vidperf_core::worker::StopTimeout),
    /// Spans queued when the shutdown began were not delivered.
    #[error(
        "OTLP export lost {} spans at shutdown ({} emitted, {} exported, {} failed: collector unreachable or refused, {} dropped with the queue full, {} dropped at shutdown)",
        .0.lost_at_shutdown, .0.traces.emitted, .0.traces.exported, .0.traces.failed, .0.traces.dropped_queue_full, .0.traces.dropped_shutdown
    )]
    Lost(Box<OtelReport>),
    /// Flush or shutdown failed or timed out.
    #[error("OpenTelemetry shutdown: {0}")]
    Shutdown(String),
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
    /// Trace sampler.
    pub sampler: Sampler,
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
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            protocol: Protocol::HttpProtobuf,
            sampler: Sampler::AlwaysOn,
            metrics: true,
            metrics_interval: Duration::from_secs(60),
            temporality: Temporality::Cumulative,
            export_timeout: Duration::from_secs(10),
            endpoint: None,
            max_queue_size: None,
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
    /// `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_METRIC_EXPORT_INTERVAL` and
    /// `OTEL_BSP_MAX_QUEUE_SIZE`. The endpoint, headers, resource and the other batch
    /// settings are read by the SDK and the exporter themselves when the pipeline
    /// starts.
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
                "always_on" | "parentbased_always_on" => Sampler::AlwaysOn,
                "always_off" | "parentbased_always_off" => Sampler::AlwaysOff,
                "traceidratio" | "parentbased_traceidratio" => Sampler::TraceIdRatioBased(ratio),
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
        // Read here rather than by the SDK, because vidperf bounds the queue itself
        // (see `TraceCounters`).
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

    /// Sets the trace sampler.
    #[must_use]
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
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

/// The OTLP span exporter the bridge uses (HTTP/protobuf over a blocking client, or
/// gRPC), for building other pipelines on the same transport — e.g. to compare with
/// another tracing bridge on an identical SDK pipeline.
pub fn span_exporter(config: &OtelConfig) -> Result<SpanExporter, OtelError> {
    let built = match config.protocol {
        Protocol::HttpProtobuf => {
            let mut spans = SpanExporter::builder()
                .with_http()
                .with_http_client(UreqClient::new(config.export_timeout))
                .with_timeout(config.export_timeout);
            if let Some(base) = &config.endpoint {
                spans = spans.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
            }
            spans.build()
        }
        #[cfg(feature = "grpc")]
        Protocol::Grpc => {
            in_runtime()?;
            let mut spans = SpanExporter::builder()
                .with_tonic()
                .with_timeout(config.export_timeout);
            if let Some(endpoint) = &config.endpoint {
                spans = spans.with_endpoint(endpoint.clone());
            }
            spans.build()
        }
        #[cfg(not(feature = "grpc"))]
        Protocol::Grpc => return Err(OtelError::GrpcNotBuilt),
    };
    built.map_err(|e| OtelError::Exporter(e.to_string()))
}

/// tonic spawns its connection task on the current tokio runtime when an exporter is
/// built (it would panic outside one), so that is checked first.
#[cfg(feature = "grpc")]
fn in_runtime() -> Result<(), OtelError> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| OtelError::NoRuntime)
}

/// The resource's attributes as OTLP key-values (service name, the SDK's detectors,
/// `OTEL_RESOURCE_ATTRIBUTES`).
fn resource_attributes(
    resource: &Resource,
) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    resource
        .iter()
        .map(|(k, v)| {
            let value = match v {
                opentelemetry::Value::Bool(b) => any_value::Value::BoolValue(*b),
                opentelemetry::Value::I64(i) => any_value::Value::IntValue(*i),
                opentelemetry::Value::F64(f) => any_value::Value::DoubleValue(*f),
                other => any_value::Value::StringValue(other.to_string()),
            };
            KeyValue {
                key: k.to_string(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            }
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
        let resource = Resource::builder().build();
        let spans = span_exporter(config)?;
        let traces = TraceSink::with_exporter(
            spans,
            &resource,
            config.sampler.clone(),
            config.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE),
        );
        let metrics = if config.metrics {
            let transport = Transport::for_signal(config, "metrics")?;
            let export = MetricsExport::start(
                stats.clone(),
                resource_attributes(&resource),
                config.temporality,
                transport,
                config.metrics_interval,
            )
            .map_err(|e| OtelError::Exporter(format!("cannot start the metrics thread: {e}")))?;
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
        let mut health = self.traces.counters().report();
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
        let traces = self
            .traces
            .flush()
            .map_err(|e| OtelError::Shutdown(e.to_string()));
        let metrics = match &self.metrics {
            Some(m) => m
                .flush(Duration::from_secs(30))
                .map_err(OtelError::MetricsExport),
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
        if let Err(e) = traces {
            return Err(match e {
                opentelemetry_sdk::error::OTelSdkError::Timeout(_) => OtelError::Timeout(
                    vidperf_core::worker::StopTimeout::new("OTLP span export", timeout),
                ),
                other => OtelError::Shutdown(other.to_string()),
            });
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
