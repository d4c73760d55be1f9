//! OTLP export of traces and metrics, wired into the builder (feature `otlp`).
//!
//! Export turns on by itself when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other standard `OTEL_*` variables
//! (service name, resource attributes, headers, timeout, protocol, sampler, batch
//! processor, metrics interval, `OTEL_SDK_DISABLED`) apply as listed in
//! [`vidperf_otel`'s documentation](vidperf_otel). In code:
//!
//! ```no_run
//! use std::time::Duration;
//! use vidperf::otlp::OtelConfig;
//!
//! let config = OtelConfig::from_env()?
//!     .with_endpoint("http://collector:4318")
//!     .with_max_queue_size(8192);
//! let vidperf = vidperf::builder().otlp(config).install()?;
//! // ... the application ...
//! // Flush and report what was lost (collector down, queue full), at most 5 s.
//! vidperf.shutdown(Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Over gRPC (feature `otlp-grpc`), build vidperf inside a tokio runtime: tonic's
//! connection lives on it.
//!
//! ```no_run
//! # #[cfg(feature = "otlp-grpc")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use vidperf::otlp::{OtelConfig, Protocol};
//!
//! let config = OtelConfig::from_env()?
//!     .with_protocol(Protocol::Grpc)
//!     .with_endpoint("http://collector:4317");
//! let vidperf = vidperf::builder().otlp(config).install()?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

pub use vidperf_otel::{
    DEFAULT_MAX_QUEUE_SIZE, ExportHealth, Otel, OtelConfig, OtelError, OtelReport, Protocol,
    Temporality, TraceCounters, TraceSink, attr, span_exporter,
};

use crate::env::env_text;
use crate::error::BuildError;
use crate::parts::{Part, PartFailure, SpanCounts, Stopped, Wiring};

#[derive(Debug, Clone, Default)]
pub(crate) enum Setting {
    /// On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces endpoint) is set.
    #[default]
    FromEnv,
    On(OtelConfig),
    Off,
}

/// Starts the export when configured (or when the standard endpoint variable is set),
/// registers its trace sink with the layer and its health with the statistics, and
/// hands the alert rules its dropped-span count.
pub(crate) fn start(setting: &Setting, wiring: &mut Wiring) -> Result<(), BuildError> {
    let config = match setting {
        Setting::Off => return Ok(()),
        Setting::On(config) => config.clone(),
        Setting::FromEnv => {
            // An empty value counts as unset (OpenTelemetry's rule for every variable).
            let set = |var| -> Result<bool, BuildError> {
                Ok(env_text(var)?.is_some_and(|v| !v.trim().is_empty()))
            };
            let wanted = wiring.read_env
                && (set("OTEL_EXPORTER_OTLP_ENDPOINT")?
                    || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?);
            if !wanted {
                return Ok(());
            }
            OtelConfig::from_env()?
        }
    };
    let Some(otel) = Otel::start(&config, &wiring.stats)? else {
        return Ok(());
    };
    let otel = Arc::new(otel);
    wiring.stats.add_health_source(otel.clone());
    let layer = std::mem::take(&mut wiring.layer);
    wiring.layer = layer.sink(otel.traces().clone());
    let counters = otel.traces().counters().clone();
    wiring.signals =
        std::mem::take(&mut wiring.signals).with_dropped_spans(move || counters.report().dropped);
    wiring.parts.push(Arc::new(OtlpPart(otel)));
    Ok(())
}

/// The running export, as a part.
#[derive(Debug)]
pub(crate) struct OtlpPart(pub(crate) Arc<Otel>);

impl Part for OtlpPart {
    fn name(&self) -> &'static str {
        "otlp"
    }

    fn flush(&self) -> Result<(), PartFailure> {
        self.0.flush().map_err(|e| PartFailure::Failed {
            part: "otlp",
            reason: e.to_string(),
        })
    }

    fn shutdown(&self, timeout: Duration) -> Stopped {
        // The counts are read around the shutdown whatever becomes of it.
        let lost = |h: &ExportHealth| h.failed + h.dropped;
        let before = self.0.health();
        let result = self.0.shutdown(timeout);
        let after = self.0.health();
        let spans = SpanCounts {
            exported: after.exported,
            lost_before: lost(&before),
            lost_at_shutdown: lost(&after).saturating_sub(lost(&before)),
        };
        let result = match result {
            Ok(_) => Ok(()),
            Err(OtelError::Lost(report)) => Err(PartFailure::Undelivered {
                part: "otlp",
                spans: report.lost_at_shutdown,
                reason: format!(
                    "{} failed (collector unreachable or refused), {} dropped at shutdown",
                    report.traces.failed, report.traces.dropped_shutdown
                ),
            }),
            Err(OtelError::Timeout(t)) => Err(PartFailure::Timeout {
                part: "otlp",
                timeout: t.timeout,
            }),
            Err(other) => Err(PartFailure::Failed {
                part: "otlp",
                reason: other.to_string(),
            }),
        };
        Stopped {
            spans: Some(spans),
            result,
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
