//! The OpenTelemetry bridge of [vidperf](https://docs.rs/vidperf): every finished span
//! goes to the OpenTelemetry SDK's batch span processor and OTLP exporter as typed span
//! data built once at close ([`TraceSink`]), and the statistics' metric families —
//! every operation, whatever the trace sampler keeps, the same series `/metrics` serves
//! — are encoded as OTLP metrics every export interval.
//!
//! [`OtelConfig::from_env`] reads the standard variables; [`Otel::start`] builds the
//! pipeline: OTLP over HTTP/protobuf with a blocking client (no async runtime needed), or
//! over gRPC with the `grpc` feature (tonic; the pipeline must be started inside a tokio
//! runtime, and [`Otel::start`] returns [`OtelError::NoRuntime`] rather than panicking
//! when it is not).
//!
//! | variable | meaning |
//! |---|---|
//! | `OTEL_SDK_DISABLED` | `true` turns the bridge off |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | resource (read by the SDK) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | where to send (read by the exporter) |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | headers (read by the exporter) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` | timeout of one export, ms (default 10000) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` | `http/protobuf` (default) or `grpc` (needs the `grpc` feature, else a clear error) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` (decided on the trace id) |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | spans held for export at most (default 2048); more are dropped and counted (`health.export`) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_EXPORT_TIMEOUT` | batch processor (read by the SDK) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | metrics export interval, ms (default 60000) |
//! | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative` (default), `delta` or `lowmemory` (delta counters and histograms) |

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]

mod client;
mod config;
mod convert;
mod health;
mod metrics;
mod traces;
mod transport;

pub use config::{Otel, OtelConfig, OtelError, OtelReport, Protocol, span_exporter};
pub use convert::attr;
pub use health::{ExportHealth, family};
pub use metrics::Temporality;
pub use traces::{DEFAULT_MAX_QUEUE_SIZE, TraceCounters, TraceSink};
