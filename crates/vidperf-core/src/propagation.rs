//! Context propagation: carry a span's trace across threads, queues and processes as a
//! W3C `traceparent`, and migration helpers with tracing-opentelemetry's verbs.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use tracing::Span;

use crate::ids::{SpanId, TraceId};
use crate::layer::with_state;
use crate::value::FieldValue;

/// The W3C trace-context header name.
pub const TRACEPARENT: &str = "traceparent";

/// A position in a trace: what a `traceparent` header carries
/// (`00-<trace id>-<parent span id>-<flags>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The span that becomes the parent.
    pub span_id: SpanId,
    /// The sampled flag.
    pub sampled: bool,
}

/// A `traceparent` that is not W3C trace-context version 00.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent {0:?}: expected 00-<32 hex>-<16 hex>-<2 hex>")]
pub struct ParseTraceParentError(String);

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl FromStr for TraceParent {
    type Err = ParseTraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseTraceParentError(s.chars().take(64).collect());
        let mut parts = s.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        if version != "00" || flags.len() != 2 {
            return Err(bad());
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| bad())?;
        Ok(Self {
            trace_id: TraceId::from_hex(trace).ok_or_else(bad)?,
            span_id: SpanId::from_hex(span).ok_or_else(bad)?,
            sampled: flags & 1 == 1,
        })
    }
}

impl TraceParent {
    /// Where `span` stands, when vidperf tracks it (an operation, or any span when a
    /// trace exporter is installed).
    pub fn of(span: &Span) -> Option<Self> {
        with_state(span, |s| Self {
            trace_id: s.trace_id,
            span_id: s.span_id,
            sampled: true,
        })
    }

    /// Writes `traceparent` into a string map (a job's headers, a message's metadata).
    pub fn inject(self, carrier: &mut HashMap<String, String>) {
        carrier.insert(TRACEPARENT.to_owned(), self.to_string());
    }

    /// Reads `traceparent` from a string map; `None` when absent or malformed.
    pub fn extract(carrier: &HashMap<String, String>) -> Option<Self> {
        carrier.get(TRACEPARENT)?.parse().ok()
    }
}

/// The verbs of tracing-opentelemetry's `OpenTelemetrySpanExt` on `tracing::Span`, so
/// that migrating is an import change. Each returns whether vidperf tracks the span.
pub trait SpanExt {
    /// Makes `parent` (usually from another process) this span's parent: the span joins
    /// that trace. Call it before creating children, as with tracing-opentelemetry.
    fn set_parent(&self, parent: TraceParent) -> bool;

    /// This span's position in its trace, to hand to other threads or processes.
    fn context(&self) -> Option<TraceParent>;

    /// Links this span to another position (e.g. the jobs a batch span covers).
    fn add_link(&self, target: TraceParent) -> bool;

    /// Sets an attribute (metadata, or a contract field by its name).
    fn set_attribute(&self, key: &str, value: impl Into<FieldValue>) -> bool;

    /// Marks the span failed with `message` (`Ok` status is the default).
    fn set_status_error(&self, message: &str) -> bool;
}

impl SpanExt for Span {
    fn set_parent(&self, parent: TraceParent) -> bool {
        with_state(self, |s| {
            s.trace_id = parent.trace_id;
            s.parent_span_id = Some(parent.span_id);
            s.parent_is_remote = true;
        })
        .is_some()
    }

    fn context(&self) -> Option<TraceParent> {
        TraceParent::of(self)
    }

    fn add_link(&self, target: TraceParent) -> bool {
        with_state(self, |s| s.add_link(target.trace_id, target.span_id)).is_some()
    }

    fn set_attribute(&self, key: &str, value: impl Into<FieldValue>) -> bool {
        crate::record_field(self, key, value.into())
    }

    fn set_status_error(&self, message: &str) -> bool {
        crate::record_error(self, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp: TraceParent = text.parse().expect("valid");
        assert!(tp.sampled);
        assert_eq!(tp.to_string(), text);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
        }
    }
}
