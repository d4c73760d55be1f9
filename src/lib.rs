//! vidperf: per-strategy performance instrumentation for GPU video-enhancement
//! pipelines, built on [`tracing`].
//!
//! Enhancement operations — a strategy such as VSRM, SeedVR2 or DiTVR upscaling a clip,
//! a degradation router analysing one, an API request, a background job — are plain
//! `tracing` spans. One layer, [`PerfLayer`], recognises them, measures their duration,
//! collects what your code records on them (frames, segments, resolutions, quality,
//! errors) and hands every finished operation to sinks. The built-in sink, [`Stats`],
//! answers "how is each strategy doing?" in-process and exports JSON and CSV. A
//! background resource monitor attaches to every operation the peaks of this process's
//! RAM and CPU and of every NVIDIA GPU's memory and utilization during its life.
//!
//! # Quickstart
//!
//! ```
//! use tracing::{field::Empty, instrument, Span};
//!
//! #[instrument(skip(frames), fields(strategy = "vsrm", frames_processed = Empty, quality_score = Empty))]
//! fn enhance(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
//!     let out = frames.to_vec(); // ... upscale ...
//!     Span::current().record("frames_processed", out.len());
//!     Span::current().record("quality_score", 0.87);
//!     out
//! }
//!
//! let vidperf = vidperf::init()?; // global subscriber + statistics, one line
//! enhance(&vec![vec![0u8; 16]; 24]);
//!
//! let stats = vidperf.snapshot();
//! assert_eq!(stats.by_strategy["vsrm"].frames_processed_total, 24);
//! vidperf.write_exports(&std::env::temp_dir().join("vidperf-doc"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What makes a span an operation
//!
//! An **operation** is any span with a `strategy` field. Its type is its `operation`
//! field, or else the span name. The fields vidperf reads, with their types, are listed
//! in [`fields`]; any other field becomes per-operation metadata. An operation fails
//! when it records an `error` field, when an `ERROR` event is emitted directly inside it
//! (this is what `#[instrument(err)]` does), or when a panic unwinds through it.
//!
//! # Three ways in
//!
//! 1. **`#[instrument]`** with the contract fields, as above: nothing vidperf-specific
//!    in your code.
//! 2. **[`#[vidperf::track]`](macro@track)**, the original design's decorator: the
//!    function's return value reports its own figures through [`OperationOutcome`], and
//!    an `Err` marks the failure.
//! 3. **Manual tracking** with [`Operation`] and [`track_operation`] — start, update,
//!    finish — for work that does not fit one function.
//!
//! # In applications
//!
//! Call [`init`] (or [`builder`]`()…`[`install`](Builder::install)) once at start. It
//! installs a global subscriber made of a [`Registry`](tracing_subscriber::Registry)
//! and the layer, and returns a [`Vidperf`] handle (also available later from
//! [`global`]). If you already build your own subscriber, take the layer from
//! [`Builder::build`] and add it next to your other layers.
//!
//! # In libraries
//!
//! Depend on `tracing` only, and declare the contract fields on your spans. Your users
//! decide whether vidperf (or anything else) collects them; without a subscriber the
//! spans cost almost nothing.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `macros` | yes | [`#[vidperf::track]`](macro@track) |
//! | `system` | yes | resource peaks of this process: resident memory, CPU (sysinfo) |
//! | `gpu` | yes | resource peaks of NVIDIA GPUs: memory, utilization, this process's VRAM (NVML via nvml-wrapper, loaded at run time: builds and runs without a GPU) |
//! | `otlp` | yes | [`otlp`]: every span as an OpenTelemetry span and per-strategy metrics, over OTLP (HTTP/protobuf, blocking client: no async runtime needed) to any collector |
//! | `otlp-grpc` | no | OTLP over gRPC as well (tonic): [`otlp::Protocol::Grpc`] or `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`; build vidperf inside a tokio runtime (outside one the build returns an error saying so) |
//! | `http-api` | yes | [`http`]: `/performance/stats`, `/performance/export`, Prometheus `/metrics`, `/healthz` (axum), as a router to mount or a server the builder starts |
//! | `watch` | yes | alert rules and regression detection against a baseline, in the service ([`watch`]) |
//! | `alertmanager` | yes | delivery of alerts to a Prometheus Alertmanager (API v2); implies `watch` |
//! | `nvtx` | no | `nvtx`: every span as an NVTX range under Nsight Systems; [`Builder::install`] adds the layer when a tool is attached (`NVTX_INJECTION64_PATH`), with your own subscriber add `vidperf::nvtx::NvtxLayer::if_attached()` |
//!
//! # Environment variables
//!
//! Read by [`Builder::build`] unless the value is set in code (code wins) or
//! [`Builder::without_env`] is used. A malformed value is a [`BuildError`], never a
//! silent default.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `VIDPERF_HISTORY_LIMIT` | 10000 | finished-operation records kept for export (statistics count everything) |
//! | `VIDPERF_MAX_KEYS` | 64 | distinct strategies / operation types before the rest count under `__overflow__` |
//! | `VIDPERF_MAX_ACTIVE` | 10000 | active operations listed (the count stays exact) |
//! | `VIDPERF_RESOURCE_MONITOR` | on | `on` or `off` (also `true`/`false`, `1`/`0`); anything else is an error |
//! | `VIDPERF_SAMPLE_INTERVAL_MS` | 10 | milliseconds between resource samples while operations are open (the monitor parks when none is; an operation opening after a quiet spell of 5 ms or more gets a sample of its own) |
//! | `VIDPERF_NVML_LIBRARY` | the system's | path to `libnvidia-ml.so`, or `off` for no GPU sampling |
//! | `VIDPERF_BOUNDARY_READS` | off | `on`: also read this process's memory and the GPUs' memory on the operation's own thread at its start and end, so operations shorter than the sampling interval get exact peaks (a few µs per end without a GPU, 10–20 µs per GPU with one; off by default because it is I/O on your thread) |
//! | `VIDPERF_HTTP_ADDR` | unset (no server) | serve the HTTP API on this address, e.g. `127.0.0.1:9464` |
//! | `VIDPERF_HTTP_TOKEN` | unset | bearer token required on the routes that return operation records (stats, stream, export); `/metrics`, `/healthz`, `/performance/alerts` and the page stay open |
//! | `VIDPERF_ALERT_RULES` | unset | a TOML file of alert rules ([`watch`]) |
//! | `VIDPERF_ALERTMANAGER_URL` | unset | deliver alerts to this Alertmanager (`http://host:port`) |
//! | `VIDPERF_BASELINE` | unset | a JSON export the live window is compared with ([`watch`]) |
//! | `VIDPERF_BASELINE_WINDOW` | `10m` | the live window compared with the baseline |
//! | `VIDPERF_BASELINE_INTERVAL` | `30s` | how often the live window is compared with the baseline |
//! | `VIDPERF_TAIL_SAMPLING` | `off` | `on`: decide which local traces are exported when they end (failures, operations over their pair's live p95, near the GPU's memory, 1% background); see Traces and metrics |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `_TRACES_ENDPOINT`) | unset (no export) | turns OTLP export on; the other standard `OTEL_*` variables apply (see [`otlp`]) |
//!
//! # Costs and limits
//!
//! An ordinary span (no `strategy` field) costs a field-name scan and no allocation. An
//! operation costs one allocation for its state and a short lock in the statistics at
//! close; `docs/BENCHMARKS.md` has the measured figures. The resource monitor samples
//! on its own thread (parked while no operation is open); spans only read its results,
//! never calling sysinfo or NVML themselves. Memory is bounded by the
//! history limit, the key cap and the active cap; strings recorded on operations are
//! cut at [`MAX_STRING_VALUE_BYTES`]. Statistics count every operation ever finished,
//! whatever the history limit.
//!
//! # Minimum supported Rust version
//!
//! The MSRV is the `rust-version` in `Cargo.toml` (currently 1.88). Raising it is not
//! a breaking change, but is called out in the changelog.

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod env;
mod error;
mod handle;
#[cfg(feature = "http-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-api")))]
pub mod http;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
mod parts;
#[cfg(any(feature = "system", feature = "gpu"))]
mod resources;
#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub mod watch;
/// NVTX ranges for spans under Nsight Systems (feature `nvtx`): see [`vidperf_nvtx`].
#[cfg(feature = "nvtx")]
#[cfg_attr(docsrs, doc(cfg(feature = "nvtx")))]
pub use vidperf_nvtx as nvtx;

/// The resource monitor: per-operation peaks of RAM, CPU, GPU memory and utilization.
#[cfg(any(feature = "system", feature = "gpu"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
pub mod monitor {
    pub use crate::resources::{
        ENV_BOUNDARY_READS, ENV_NVML_LIBRARY, ENV_RESOURCE_MONITOR, ENV_SAMPLE_INTERVAL_MS,
        GpuStatus, GpuUnavailable, MonitorConfig, NvmlLibrary, ResourceMonitor,
    };
    pub use vidperf_sampler::{Capability, DeviceNow, ErrorKind, MonitorHealth, Unsupported};
}

pub use builder::{
    Builder, Built, ENV_HISTORY_LIMIT, ENV_MAX_ACTIVE, ENV_MAX_KEYS, InstallError, global,
};
pub use error::BuildError;
pub use handle::{ShutdownError, ShutdownGuard, ShutdownReport, Vidperf};
pub use parts::PartFailure;
#[allow(deprecated)]
pub use vidperf_core::TraceParent;
pub use vidperf_core::operation::{Operation, track_operation};
pub use vidperf_core::{
    ActiveOperation, CANCELLED, CancelAware, CancelExt, DevicePeaks, DeviceRecord, FieldValue,
    Figure, Figures, FinishedSpan, LayerHealth, MAX_STRING_VALUE_BYTES, OperationFields,
    OperationKey, OperationOutcome, OperationRecord, Outcome, PerfLayer, PerfLayerBuilder,
    Resolution, ResourcePeaks, ResourceWindows, Sink, SnapshotOptions, SpanId, SpanInterest, Stats,
    StatsConfig, StatsSnapshot, TraceId, WindowStart, record_cancelled, record_error, record_field,
    record_outcome, span_ids,
};
pub use vidperf_core::{SpanExt, TraceContext, TraceFlags, TraceState, operation_span};
pub use vidperf_core::{export, fields, figure, propagation, sampler, stats};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc = include_str!("docs/track.md")]
pub use vidperf_macros::track;

/// Metrics as one model: the families `/metrics` and the OTLP metrics export carry,
/// with their OpenTelemetry names and the Prometheus names derived from them (see
/// [`vidperf_core::metrics`]).
pub mod metrics {
    pub use vidperf_core::metrics::*;

    /// Every metric family this build of vidperf can export: the statistics' (with a
    /// histogram per resource figure), the resource monitor's, the OTLP export's and the
    /// alert rules'. A family without points is left out of a given page.
    pub fn all_families() -> Vec<FamilyDef> {
        let mut out = family_defs();
        for part in crate::parts::FAMILIES {
            out.extend(part());
        }
        out
    }
}

/// A builder with the defaults.
pub fn builder() -> Builder {
    Builder::default()
}

/// Installs vidperf with the defaults as the global subscriber: the one line of setup.
/// See [`Builder::install`].
pub fn init() -> Result<Vidperf, InstallError> {
    builder().install()
}

/// The README's code, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Support for the `track` macro's expansion. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use tracing;
    pub use tracing::Instrument;
    pub use vidperf_core::__CancelGuard as CancelGuard;
    pub use vidperf_core::__specialize::{RecordError, RecordFigures, RecordNothing, Returned};
    pub use vidperf_core::record_outcome;
}
