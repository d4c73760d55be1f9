//! The OpenTelemetry bridge of [vidperf](https://docs.rs/vidperf): every finished span
//! that is sampled is encoded as OTLP protobuf once, when it closes, straight from the
//! finished span, and sent in batches from a thread of its own ([`TraceSink`]) — no
//! OpenTelemetry SDK in between; a tail sampler can decide instead which local traces
//! are kept ([`TailConfig`]). The statistics' metric families — every operation,
//! whatever the samplers keep, the same series `/metrics` serves — are encoded as OTLP
//! metrics every export interval.
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
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | resource (`service.name` defaults to `unknown_service:<executable>`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | where to send |
//! | `OTEL_EXPORTER_OTLP_HEADERS` (and the `TRACES_`/`METRICS_` variants) | headers, `%`-escapes decoded |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` | timeout of one export, ms (default 10000) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` | `http/protobuf` (default) or `grpc` (needs the `grpc` feature, else a clear error) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the head sampler: `parentbased_always_on` (default), `parentbased_always_off`, `parentbased_traceidratio`, `always_on`, `always_off`, `traceidratio` |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | spans held for export at most (default 2048); more are dropped and counted (`health.export`) |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | spans per request (default 512) |
//! | `OTEL_BSP_SCHEDULE_DELAY` | the longest a span waits for its batch, ms (default 5000) |
//! | `OTEL_BSP_EXPORT_TIMEOUT` | the longest one batch may take, retries included, ms (default 30000) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | metrics export interval, ms (default 60000) |
//! | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative` (default), `delta` or `lowmemory` (delta counters and histograms) |

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]

mod batch;
mod config;
mod convert;
mod encode;
mod health;
mod metrics;
mod resource;
mod tail;
mod traces;
mod transport;

pub use batch::{BatchConfig, SpanExport};
pub use config::{GpuMemoryLimit, Otel, OtelConfig, OtelError, OtelReport, Protocol};
pub use convert::attr;
pub use health::{ExportHealth, family};
pub use metrics::Temporality;
pub use tail::{Early, Reason, TailConfig, TailHealth};
pub use traces::{DEFAULT_MAX_QUEUE_SIZE, TraceCounters, TraceSink, TraceSinkBuilder};
pub use transport::ExportError;
pub use vidperf_core::sampler::{Root, Sampler};
