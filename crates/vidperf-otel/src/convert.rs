//! A [`FinishedSpan`] as the SDK's [`SpanData`], built once at close.

use std::borrow::Cow;

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use std::sync::Arc;

use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use vidperf_core::fields::{self, Number};
use vidperf_core::figure::Unit;
use vidperf_core::{FieldValue, FinishedSpan, OperationKey};

/// The attribute names vidperf adds to spans and metrics (the contract fields keep
/// their own names, [`vidperf_core::fields::CONTRACT`]; each resource figure's is in
/// [`vidperf_core::figure::FIGURES`]).
pub mod attr {
    /// Operation type.
    pub const OPERATION: &str = "vidperf.operation";
    /// Strategy.
    pub const STRATEGY: &str = "vidperf.strategy";
    /// Resource samples inside the span.
    pub const SAMPLES: &str = "vidperf.samples";
    /// Frames per second.
    pub const FPS: &str = "vidperf.fps";
    /// Whether the operation succeeded (`success`, `failure`), on metrics.
    pub const OUTCOME: &str = "vidperf.outcome";
    /// `"<operation> <strategy>"` on operation spans: the APM resource (Datadog's
    /// OTLP mapping, rotel's and the Datadog agent's, take the resource from it), so
    /// trace metrics come per strategy.
    pub const RESOURCE_NAME: &str = "resource.name";
}

fn value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::I64(i) => Value::I64(*i),
        FieldValue::U64(u) => {
            i64::try_from(*u).map_or_else(|_| Value::String(u.to_string().into()), Value::I64)
        }
        FieldValue::F64(f) => Value::F64(*f),
        FieldValue::Str(s) => Value::String(s.clone().into()),
    }
}

/// A field name as an attribute key, without allocating for `'static` names.
// reason: the `Cow` itself says whether the name is `'static` (no copy needed).
#[allow(clippy::ptr_arg)]
fn key(name: &Cow<'static, str>) -> opentelemetry::Key {
    match name {
        Cow::Borrowed(s) => opentelemetry::Key::from_static_str(s),
        Cow::Owned(s) => opentelemetry::Key::from(s.clone()),
    }
}

fn int(v: u64) -> Value {
    i64::try_from(v).map_or(Value::I64(i64::MAX), Value::I64)
}

fn otel_hint<'a>(span: &'a FinishedSpan, key: &str) -> Option<&'a FieldValue> {
    span.otel.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn kind(span: &FinishedSpan) -> SpanKind {
    match otel_hint(span, "otel.kind")
        .and_then(FieldValue::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("server") => SpanKind::Server,
        Some("client") => SpanKind::Client,
        Some("producer") => SpanKind::Producer,
        Some("consumer") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

thread_local! {
    /// `"<operation> <strategy>"` by the addresses of the interned names (the layer
    /// hands out one `Arc` per name), so that building the attribute allocates only the
    /// first time on each thread. The entry holds the names, so their addresses cannot
    /// be reused while it exists; bounded (cleared past 1,024 entries).
    static RESOURCE_NAMES: std::cell::RefCell<
        std::collections::HashMap<(usize, usize), (OperationKey, StringValue)>,
    > = std::cell::RefCell::new(std::collections::HashMap::new());
}

fn resource_name(key: &OperationKey) -> StringValue {
    let id = (
        Arc::as_ptr(&key.operation_type).cast::<u8>() as usize,
        Arc::as_ptr(&key.strategy).cast::<u8>() as usize,
    );
    // Reference-counted: cloning it allocates nothing.
    let make = || {
        StringValue::from(Arc::<str>::from(format!(
            "{} {}",
            key.operation_type, key.strategy
        )))
    };
    RESOURCE_NAMES
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, name)) = cache.get(&id) {
                return name.clone();
            }
            if cache.len() >= 1_024 {
                cache.clear();
            }
            let name = make();
            cache.insert(id, (key.clone(), name.clone()));
            name
        })
        .unwrap_or_else(|_| make())
}

/// The span's attributes: the contract fields typed, resource peaks, metadata.
pub(crate) fn attributes(span: &FinishedSpan) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(16 + span.metadata.len());
    if let Some(key) = &span.operation {
        out.push(KeyValue::new(
            attr::OPERATION,
            Value::String(key.operation_type.clone().into()),
        ));
        out.push(KeyValue::new(
            attr::STRATEGY,
            Value::String(key.strategy.clone().into()),
        ));
        // Unless the span sets its own.
        if !span.metadata.iter().any(|(k, _)| k == attr::RESOURCE_NAME) {
            out.push(KeyValue::new(
                attr::RESOURCE_NAME,
                Value::String(resource_name(key)),
            ));
        }
    }
    // The contract's numbers under their field names, typed as the contract says.
    for (name, number) in span.fields.numbers() {
        out.push(KeyValue::new(
            name,
            match number {
                Number::Int(v) => int(v),
                Number::Float(v) => Value::F64(v),
            },
        ));
    }
    if let Some(fps) = span.fps() {
        out.push(KeyValue::new(attr::FPS, fps));
    }
    let r = &span.resources;
    // Every figure measured, under its attribute, typed by its unit (bytes as ints).
    for (figure, v) in r.figures.iter() {
        let def = figure.def();
        let value = match def.unit {
            Unit::Bytes => int(v.max(0.0).round() as u64),
            _ => Value::F64(v),
        };
        out.push(KeyValue::new(def.attribute, value));
        if let (Some((key, _)), Some(per_frame)) = (def.per_frame, span.per_frame(figure)) {
            out.push(KeyValue::new(key, per_frame));
        }
    }
    if let Some(n) = r.samples {
        out.push(KeyValue::new(attr::SAMPLES, int(n)));
    }
    if let Some(e) = &span.error {
        out.push(KeyValue::new(fields::ERROR, e.clone()));
    }
    for (k, v) in &span.metadata {
        out.push(KeyValue::new(key(k), value(v)));
    }
    out
}

fn links(span: &FinishedSpan) -> SpanLinks {
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .iter()
        .map(|(trace, id)| {
            let cx = SpanContext::new(
                TraceId::from_bytes(trace.to_bytes()),
                SpanId::from_bytes(id.to_bytes()),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            Link::new(cx, Vec::new(), 0)
        })
        .collect();
    links
}

/// Builds the span's [`SpanData`].
pub(crate) fn span_data(span: &FinishedSpan, scope: &InstrumentationScope) -> SpanData {
    let trace_id = TraceId::from_bytes(span.trace_id.to_bytes());
    let span_context = SpanContext::new(
        trace_id,
        SpanId::from_bytes(span.span_id.to_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let name: Cow<'static, str> = match otel_hint(span, "otel.name").and_then(FieldValue::as_str) {
        Some(n) => Cow::Owned(n.to_owned()),
        None => Cow::Borrowed(span.name),
    };
    let mut events: Vec<Event> = span
        .events
        .iter()
        .map(|e| {
            let mut attributes: Vec<KeyValue> = vec![KeyValue::new("level", e.level.to_string())];
            attributes.extend(
                e.fields
                    .iter()
                    .map(|(k, v)| KeyValue::new(key(k), value(v))),
            );
            Event::new(e.name.clone(), e.time, attributes, 0)
        })
        .collect();
    let status = match &span.error {
        Some(message) => {
            // OpenTelemetry's convention for a failure: an `exception` event too.
            events.push(Event::new(
                "exception",
                span.end_time,
                vec![KeyValue::new("exception.message", message.clone())],
                0,
            ));
            Status::error(message.clone())
        }
        None => Status::Unset,
    };
    let mut span_events = SpanEvents::default();
    span_events.events = events;
    span_events.dropped_count = span.dropped_events;
    SpanData {
        span_context,
        parent_span_id: span
            .parent_span_id
            .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.to_bytes())),
        parent_span_is_remote: span.parent_is_remote,
        span_kind: kind(span),
        name,
        start_time: span.start_time,
        end_time: span.end_time,
        attributes: attributes(span),
        dropped_attributes_count: 0,
        events: span_events,
        links: links(span),
        status,
        instrumentation_scope: scope.clone(),
    }
}
