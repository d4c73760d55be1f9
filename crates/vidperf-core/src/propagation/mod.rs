//! Context propagation: carry a span's trace across threads, queues and processes as the
//! W3C Trace Context headers (`traceparent` and `tracestate`, Level 2), with the verbs
//! of tracing-opentelemetry for migrating.
//!
//! What propagates: the trace id, the span that becomes the parent, the sampled flag (the
//! real decision, see [`Sampler`](crate::sampler::Sampler)), the random trace id flag,
//! and the `tracestate` entries, unchanged unless you change them. A `traceparent` the
//! spec's processing model refuses (a malformed one, two of them) is ignored: the span
//! starts a new trace, and the `tracestate` that came with it is dropped.
//!
//! ```
//! use std::collections::HashMap;
//! use vidperf_core::propagation::TraceContext;
//!
//! let mut headers = HashMap::new();
//! headers.insert("TraceParent".to_owned(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned());
//! headers.insert("tracestate".to_owned(), "congo=t61rcWkgMzE".to_owned());
//! let parent = TraceContext::extract(&headers).expect("valid");
//! assert!(!parent.is_sampled());
//! assert_eq!(parent.state.get("congo"), Some("t61rcWkgMzE"));
//! ```

mod traceparent;
mod tracestate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

use tracing::Span;

use crate::ids::{SpanId, TraceId};
use crate::layer::{with_state, with_state_and_sampler};
use crate::value::FieldValue;

pub use traceparent::{ParseTraceParentError, TraceFlags};
pub use tracestate::{LONG_ENTRY, MAX_ENTRIES, MAX_HEADER_LEN, TraceState, TraceStateError};

/// The W3C `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// A position in a trace, as W3C Trace Context carries it: the trace, the span that
/// becomes the parent, the flags (sampled, random trace id) and the `tracestate`.
///
/// `Display` and `FromStr` are the `traceparent` header alone (always written as
/// version `00`); [`TraceContext::inject`] and [`TraceContext::extract`] move both
/// headers through any carrier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The span that becomes the parent.
    pub span_id: SpanId,
    /// The sampled and random trace id flags.
    pub flags: TraceFlags,
    /// The vendors' entries.
    pub state: TraceState,
}

/// The name of [`TraceContext`] before it carried the `tracestate`.
#[deprecated(
    since = "0.3.0",
    note = "renamed TraceContext (it carries the tracestate too)"
)]
pub type TraceParent = TraceContext;

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        traceparent::format(f, self.trace_id, self.span_id, self.flags)
    }
}

impl FromStr for TraceContext {
    type Err = ParseTraceParentError;

    /// Parses a `traceparent` (the state empty).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, None)
    }
}

/// Where headers are read from: a request's headers, a message's metadata.
pub trait Extractor {
    /// Every value of the field `name` (given in lowercase; matched whatever its case),
    /// in the order they were received — one per field line.
    fn get_all(&self, name: &str) -> Vec<&str>;
}

/// Where headers are written to.
pub trait Injector {
    /// Sets the field `name` (lowercase) to `value`, replacing any field of that name
    /// whatever its case.
    fn set(&mut self, name: &str, value: String);

    /// Removes every field named `name` (lowercase), whatever its case.
    fn remove(&mut self, name: &str);
}

impl<S: BuildHasher> Extractor for HashMap<String, String, S> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Extractor for BTreeMap<String, String> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extractor for [(K, V)] {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
            .collect()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extractor for Vec<(K, V)> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.as_slice().get_all(name)
    }
}

impl<S: BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, name: &str, value: String) {
        Injector::remove(self, name);
        self.insert(name.to_owned(), value);
    }

    fn remove(&mut self, name: &str) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
    }
}

impl Injector for BTreeMap<String, String> {
    fn set(&mut self, name: &str, value: String) {
        Injector::remove(self, name);
        self.insert(name.to_owned(), value);
    }

    fn remove(&mut self, name: &str) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
    }
}

impl Injector for Vec<(String, String)> {
    fn set(&mut self, name: &str, value: String) {
        Injector::remove(self, name);
        self.push((name.to_owned(), value));
    }

    fn remove(&mut self, name: &str) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
}

/// A header value a client sent that is not visible ASCII reads as one that no parser
/// accepts, so that it still counts as a field line.
#[cfg(feature = "http")]
fn header_text(value: &http::HeaderValue) -> &str {
    value.to_str().unwrap_or("\u{0}")
}

#[cfg(feature = "http")]
impl Extractor for http::HeaderMap {
    fn get_all(&self, name: &str) -> Vec<&str> {
        http::HeaderMap::get_all(self, name)
            .iter()
            .map(header_text)
            .collect()
    }
}

#[cfg(feature = "http")]
impl Injector for http::HeaderMap {
    fn set(&mut self, name: &str, value: String) {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) else {
            return;
        };
        self.insert(name, value);
    }

    fn remove(&mut self, name: &str) {
        http::HeaderMap::remove(self, name);
    }
}

impl TraceContext {
    /// A position with these ids and flags, and no `tracestate`.
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        Self {
            trace_id,
            span_id,
            flags,
            state: TraceState::new(),
        }
    }

    /// Whether the trace is sampled (recorded upstream, exported here).
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// This position with `state` as its `tracestate`.
    #[must_use]
    pub fn with_state(mut self, state: TraceState) -> Self {
        self.state = state;
        self
    }

    /// Parses a `traceparent` and, when given, a combined `tracestate` (its field lines
    /// joined with `,`). A refused `traceparent` is an error; a refused `tracestate`
    /// is dropped whole and the `traceparent` kept (§3.3: it "MUST NOT affect the
    /// parsing of traceparent").
    pub fn parse(
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> Result<Self, ParseTraceParentError> {
        let (trace_id, span_id, flags) = traceparent::parse(traceparent)?;
        let state = tracestate
            .and_then(|s| TraceState::parse(s).ok())
            .unwrap_or_default();
        Ok(Self {
            trace_id,
            span_id,
            flags,
            state,
        })
    }

    /// Where `span` stands, when vidperf tracks it (an operation, or any span when a
    /// trace exporter is installed): its ids, its sampling decision and its
    /// `tracestate`.
    pub fn of(span: &Span) -> Option<Self> {
        with_state(span, |s| Self {
            trace_id: s.trace_id,
            span_id: s.span_id,
            flags: s.flags,
            state: s.trace_state.clone(),
        })
    }

    /// Writes `traceparent` and, when not empty, `tracestate` (cut to
    /// [`MAX_HEADER_LEN`] by whole entries if longer) into `carrier`; a stale
    /// `tracestate` there is removed.
    pub fn inject(&self, carrier: &mut (impl Injector + ?Sized)) {
        carrier.set(TRACEPARENT, self.to_string());
        if self.state.is_empty() {
            carrier.remove(TRACESTATE);
        } else {
            carrier.set(TRACESTATE, self.state.propagated().into_owned());
        }
    }

    /// Reads the position from `carrier`: exactly one `traceparent` field (two are
    /// refused: the header is not a list), and every `tracestate` field combined in
    /// order. `None` when there is no valid `traceparent`: the span starts a new trace,
    /// and any `tracestate` is dropped with it.
    pub fn extract(carrier: &(impl Extractor + ?Sized)) -> Option<Self> {
        let [traceparent] = carrier.get_all(TRACEPARENT)[..] else {
            return None;
        };
        let states = carrier.get_all(TRACESTATE);
        let state = (!states.is_empty()).then(|| states.join(","));
        Self::parse(traceparent, state.as_deref()).ok()
    }
}

/// The verbs of tracing-opentelemetry's `OpenTelemetrySpanExt` on `tracing::Span`, so
/// that migrating is an import change. Each returns whether vidperf tracks the span.
pub trait SpanExt {
    /// Makes `parent` (usually from another process) this span's parent: the span joins
    /// that trace, takes its `tracestate`, and is sampled as the sampler decides with
    /// that parent (under the default `parentbased_always_on`, exactly when the parent
    /// was). Call it before creating children, as with tracing-opentelemetry: children
    /// created earlier keep the trace, decision and state they inherited.
    fn set_parent(&self, parent: TraceContext) -> bool;

    /// This span's position in its trace, to hand to other threads or processes.
    fn context(&self) -> Option<TraceContext>;

    /// Replaces this span's `tracestate` (e.g. with your vendor's entry added through
    /// [`TraceState::insert`]); children created afterwards inherit it.
    fn set_trace_state(&self, state: TraceState) -> bool;

    /// Links this span to another position (e.g. the jobs a batch span covers).
    fn add_link(&self, target: TraceContext) -> bool;

    /// Sets an attribute (metadata, or a contract field by its name).
    fn set_attribute(&self, key: &str, value: impl Into<FieldValue>) -> bool;

    /// Marks the span failed with `message` (`Ok` status is the default).
    fn set_status_error(&self, message: &str) -> bool;
}

impl SpanExt for Span {
    fn set_parent(&self, parent: TraceContext) -> bool {
        with_state_and_sampler(self, |s, sampler| {
            let sampled = sampler.should_sample(parent.trace_id, Some(parent.flags));
            s.trace_id = parent.trace_id;
            s.parent_span_id = Some(parent.span_id);
            s.parent_is_remote = true;
            // The random flag describes the trace id: it travels with it unchanged.
            s.flags = TraceFlags::from_bits(parent.flags.bits() & TraceFlags::RANDOM.bits())
                .with_sampled(sampled);
            s.parent_sampled = Some(parent.flags.is_sampled());
            s.trace_state = parent.state;
            s.local_root = s.span_id;
        })
        .is_some()
    }

    fn context(&self) -> Option<TraceContext> {
        TraceContext::of(self)
    }

    fn set_trace_state(&self, state: TraceState) -> bool {
        with_state(self, |s| s.trace_state = state).is_some()
    }

    fn add_link(&self, target: TraceContext) -> bool {
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
mod tests;
