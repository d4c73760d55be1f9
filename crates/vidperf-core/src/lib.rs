//! The core of [vidperf](https://docs.rs/vidperf): the operation field contract,
//! [`PerfLayer`], the [`Sink`] trait, the [`Stats`] aggregator and the JSON/CSV
//! export formats.
//!
//! Most users depend on the `vidperf` facade crate, which re-exports everything here
//! and wires it up in one line; this crate is for building sinks and integrations.

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cancel;
mod clock;
pub mod export;
pub mod fields;
pub mod figure;
mod hash;
mod ids;
mod intern;
mod layer;
pub mod metrics;
pub mod operation;
mod outcome;
pub mod propagation;
mod record;
mod resources;
pub mod sampler;
pub mod signals;
mod sink;
mod span;
pub mod stats;
mod value;
mod wire;
pub mod worker;

pub use fields::{OperationFields, Resolution};
pub use figure::{Figure, Figures};

/// Support for the exported macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use tracing;
}
#[doc(hidden)]
pub use cancel::CancelGuard as __CancelGuard;
pub use cancel::{CancelAware, CancelExt};
pub use ids::{SpanId, TraceId};
pub use layer::{
    CANCELLED, LayerHealth, MAX_EVENTS_PER_SPAN, PerfLayer, PerfLayerBuilder, record_cancelled,
    record_error, record_field, span_ids,
};
#[doc(hidden)]
pub use outcome::specialize as __specialize;
pub use outcome::{OperationOutcome, record_outcome};
#[allow(deprecated)]
pub use propagation::TraceParent;
pub use propagation::{SpanExt, TraceContext, TraceFlags, TraceState};
pub use record::{DeviceRecord, OperationRecord};
pub use resources::{ResourceWindows, WindowStart};
pub use sink::{Sink, SpanInterest};
pub use span::{
    ActiveOperation, DevicePeaks, FinishedSpan, OperationKey, Outcome, Progress, ResourcePeaks,
    SpanEvent,
};
pub use stats::{HealthSource, SnapshotOptions, Stats, StatsConfig, StatsSnapshot, WindowError};
pub use value::{FieldValue, MAX_STRING_VALUE_BYTES};
