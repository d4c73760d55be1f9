//! OTLP protobuf written straight from finished spans: the wire format of
//! `opentelemetry.proto.trace.v1` (`Span`, `ScopeSpans`, `ResourceSpans`,
//! `ExportTraceServiceRequest`), without building intermediate messages. A span is
//! encoded once, when it closes; a batch request is the pre-encoded resource and scope
//! around the spans' bytes.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use vidperf_core::fields::{self, Number};
use vidperf_core::figure::Unit;
use vidperf_core::{FieldValue, FinishedSpan};

use crate::convert::{attr, kind, otel_hint, resource_name};

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// A protobuf message being written.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn tag(&mut self, field: u64, wire: u64) {
        self.varint((field << 3) | wire);
    }

    pub(crate) fn bytes(&mut self, field: u64, bytes: &[u8]) {
        self.tag(field, LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn string(&mut self, field: u64, text: &str) {
        self.bytes(field, text.as_bytes());
    }

    fn uint(&mut self, field: u64, v: u64) {
        if v != 0 {
            self.tag(field, VARINT);
            self.varint(v);
        }
    }

    fn fixed64(&mut self, field: u64, v: u64) {
        self.tag(field, FIXED64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn fixed32(&mut self, field: u64, v: u32) {
        self.tag(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn double(&mut self, field: u64, v: f64) {
        self.fixed64(field, v.to_bits());
    }

    /// A nested message: its length is patched in after `write` fills it (one byte
    /// reserved; longer lengths move the body, once).
    pub(crate) fn message(&mut self, field: u64, write: impl FnOnce(&mut Self)) {
        self.tag(field, LEN);
        let at = self.buf.len();
        self.buf.push(0);
        write(self);
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
            return;
        }
        let mut prefix = [0u8; 10];
        let mut n = 0;
        let mut v = len as u64;
        while v >= 0x80 {
            prefix[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        prefix[n] = v as u8;
        n += 1;
        self.buf.splice(at..=at, prefix[..n].iter().copied());
    }

    /// `KeyValue { key, value: AnyValue }` as repeated field `field`.
    pub(crate) fn attribute(&mut self, field: u64, key: &str, value: &Any<'_>) {
        self.message(field, |w| {
            w.string(1, key);
            w.message(2, |w| match value {
                Any::Str(s) => w.string(1, s),
                Any::Bool(b) => {
                    w.tag(2, VARINT);
                    w.varint(u64::from(*b));
                }
                Any::Int(i) => {
                    w.tag(3, VARINT);
                    w.varint(*i as u64);
                }
                Any::Double(f) => w.double(4, *f),
            });
        });
    }
}

/// An attribute value.
#[derive(Debug)]
pub(crate) enum Any<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

fn any(v: &FieldValue) -> Any<'_> {
    match v {
        FieldValue::Bool(b) => Any::Bool(*b),
        FieldValue::I64(i) => Any::Int(*i),
        FieldValue::U64(u) => i64::try_from(*u).map_or(Any::Int(i64::MAX), Any::Int),
        FieldValue::F64(f) => Any::Double(*f),
        FieldValue::Str(s) => Any::Str(s),
    }
}

fn int(v: u64) -> Any<'static> {
    Any::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `Span.flags`: the W3C trace flags, and whether the parent is remote
/// (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
fn span_flags(trace_flags: u8, remote: Option<bool>) -> u32 {
    let mut flags = u32::from(trace_flags);
    if let Some(remote) = remote {
        flags |= 0x100;
        if remote {
            flags |= 0x200;
        }
    }
    flags
}

/// Field 9 of `Span` (attributes), so that an attribute can be appended to an encoded
/// span (protobuf concatenates repeated fields wherever they appear).
pub(crate) const SPAN_ATTRIBUTES: u64 = 9;

/// The span's `Span` message (its body, without the field's tag and length).
pub(crate) fn span(span: &FinishedSpan) -> Vec<u8> {
    let mut w = Writer::with_capacity(384 + 48 * span.metadata.len());
    w.bytes(1, &span.trace_id.to_bytes());
    w.bytes(2, &span.span_id.to_bytes());
    if !span.trace_state.is_empty() {
        w.string(3, span.trace_state.header());
    }
    if let Some(parent) = span.parent_span_id {
        w.bytes(4, &parent.to_bytes());
    }
    match otel_hint(span, "otel.name").and_then(FieldValue::as_str) {
        Some(name) => w.string(5, name),
        None => w.string(5, span.name),
    }
    w.uint(6, kind(span) as u64);
    w.fixed64(7, nanos(span.start_time));
    w.fixed64(8, nanos(span.end_time));
    attributes(&mut w, span);
    for e in &span.events {
        w.message(11, |w| {
            w.fixed64(1, nanos(e.time));
            w.string(2, &e.name);
            w.attribute(3, "level", &Any::Str(e.level.as_str()));
            for (k, v) in &e.fields {
                w.attribute(3, k, &any(v));
            }
        });
    }
    if let Some(message) = span.error.as_ref().filter(|_| !span.cancelled) {
        // OpenTelemetry's convention for a failure: an `exception` event too.
        w.message(11, |w| {
            w.fixed64(1, nanos(span.end_time));
            w.string(2, "exception");
            w.attribute(3, "exception.message", &Any::Str(message));
            if let Some(kind) = span
                .error_type
                .as_deref()
                .filter(|k| *k != fields::ERROR_TYPE_OTHER)
            {
                w.attribute(3, "exception.type", &Any::Str(kind));
            }
        });
    }
    w.uint(12, u64::from(span.dropped_events));
    for (trace, id) in &span.links {
        w.message(13, |w| {
            w.bytes(1, &trace.to_bytes());
            w.bytes(2, &id.to_bytes());
            w.fixed32(6, span_flags(0x01, Some(false)));
        });
    }
    if let Some(message) = &span.error {
        w.message(15, |w| {
            w.string(2, message);
            w.uint(3, 2);
        });
    }
    let remote = span.parent_span_id.map(|_| span.parent_is_remote);
    w.fixed32(16, span_flags(span.flags.bits(), remote));
    w.buf
}

/// The span's attributes: the operation, the contract fields typed, the resource
/// figures, the error's class, the metadata.
fn attributes(w: &mut Writer, span: &FinishedSpan) {
    const A: u64 = SPAN_ATTRIBUTES;
    if let Some(key) = &span.operation {
        w.attribute(A, attr::OPERATION, &Any::Str(&key.operation_type));
        w.attribute(A, attr::STRATEGY, &Any::Str(&key.strategy));
        // Unless the span sets its own.
        if !span.metadata.iter().any(|(k, _)| k == attr::RESOURCE_NAME) {
            resource_name(key, |name| {
                w.attribute(A, attr::RESOURCE_NAME, &Any::Str(name))
            });
        }
    }
    for (name, number) in span.fields.numbers() {
        let value = match number {
            Number::Int(v) => int(v),
            Number::Float(v) => Any::Double(v),
        };
        w.attribute(A, name, &value);
    }
    if let Some(fps) = span.fps() {
        w.attribute(A, attr::FPS, &Any::Double(fps));
    }
    let r = &span.resources;
    for (figure, v) in r.figures.iter() {
        let def = figure.def();
        let value = match def.unit {
            Unit::Bytes => int(v.max(0.0).round() as u64),
            _ => Any::Double(v),
        };
        w.attribute(A, def.attribute, &value);
        if let (Some((key, _)), Some(per_frame)) = (def.per_frame, span.per_frame(figure)) {
            w.attribute(A, key, &Any::Double(per_frame));
        }
    }
    if let Some(n) = r.samples {
        w.attribute(A, attr::SAMPLES, &int(n));
    }
    if let Some(e) = &span.error {
        w.attribute(A, fields::ERROR, &Any::Str(e));
    }
    if let Some(kind) = &span.error_type {
        w.attribute(A, fields::ERROR_TYPE, &Any::Str(kind));
    }
    for (k, v) in &span.metadata {
        let k: &Cow<'static, str> = k;
        w.attribute(A, k, &any(v));
    }
}

/// The fixed part of every request: `Resource` and `InstrumentationScope`.
#[derive(Clone, Debug)]
pub(crate) struct Envelope {
    /// `ResourceSpans.resource` (field 1), with its tag and length.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), with its tag and length.
    scope: Vec<u8>,
}

impl Envelope {
    pub(crate) fn new(resource: &[(String, String)]) -> Self {
        let mut r = Writer::default();
        r.message(1, |w| {
            for (k, v) in resource {
                w.attribute(1, k, &Any::Str(v));
            }
        });
        let mut s = Writer::default();
        s.message(1, |w| {
            w.string(1, "vidperf");
            w.string(2, env!("CARGO_PKG_VERSION"));
        });
        Self {
            resource: r.buf,
            scope: s.buf,
        }
    }

    /// An `ExportTraceServiceRequest` of `spans` (each an encoded `Span`).
    pub(crate) fn request<'a>(&self, spans: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
        let varint_len = |v: usize| {
            let mut n = 1;
            let mut v = v as u64;
            while v >= 0x80 {
                v >>= 7;
                n += 1;
            }
            n
        };
        let field = |len: usize| 1 + varint_len(len) + len;
        let spans_len: usize = spans.clone().map(|s| field(s.len())).sum();
        let scope_spans = self.scope.len() + spans_len;
        let resource_spans = self.resource.len() + field(scope_spans);
        let mut w = Writer::with_capacity(field(resource_spans));
        // ResourceSpans (1) { resource (1), scope_spans (2) { scope (1), spans (2)* } }
        w.tag(1, LEN);
        w.varint(resource_spans as u64);
        w.buf.extend_from_slice(&self.resource);
        w.tag(2, LEN);
        w.varint(scope_spans as u64);
        w.buf.extend_from_slice(&self.scope);
        for span in spans {
            w.bytes(2, span);
        }
        w.buf
    }
}

/// Appends `key = value` (a string) to an encoded span.
pub(crate) fn append_attribute(span: &mut Vec<u8>, key: &str, value: &str) {
    let mut w = Writer {
        buf: std::mem::take(span),
    };
    w.attribute(SPAN_ATTRIBUTES, key, &Any::Str(value));
    *span = w.buf;
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message as _;

    #[test]
    fn long_nested_messages_get_their_length_right() {
        let mut w = Writer::default();
        let long = "x".repeat(300);
        w.message(1, |w| w.string(1, &long));
        // tag, 2-byte length, tag, 2-byte length, body.
        assert_eq!(w.buf.len(), 1 + 2 + 1 + 2 + 300);
        assert_eq!(&w.buf[..3], &[0x0a, 0xaf, 0x02], "303 bytes");
    }

    #[test]
    fn a_request_decodes_with_the_reference_types() {
        let mut span = FinishedSpan::operation(
            vidperf_core::OperationKey {
                operation_type: "enhancement".into(),
                strategy: "vsrm".into(),
            },
            (
                vidperf_core::TraceId::from_bytes([1; 16]),
                vidperf_core::SpanId::from_bytes([2; 8]),
            ),
            SystemTime::now(),
            std::time::Duration::from_millis(40),
        );
        span.fields.frames_processed = Some(30);
        span.error = Some("out of memory".into());
        span.error_type = Some("std::io::error::Error".into());
        span.metadata
            .push(("clip".into(), FieldValue::text(&"é".repeat(200))));
        let mut one = self::span(&span);
        append_attribute(&mut one, "vidperf.sampling.reason", "error");
        let envelope = Envelope::new(&[("service.name".into(), "svc".into())]);
        let bytes = envelope.request([one.as_slice(), one.as_slice()].into_iter());
        let request = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let rs = &request.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().expect("resource").attributes[0].key,
            "service.name"
        );
        let spans = &rs.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(s.trace_id, vec![1; 16]);
        assert_eq!(s.name, "operation");
        assert_eq!(s.status.as_ref().map(|st| st.code), Some(2));
        assert_eq!(s.flags & 0xff, 1);
        let value = |k: &str| {
            s.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(value("frames_processed"), Some(Value::IntValue(30)));
        assert_eq!(
            value("error.type"),
            Some(Value::StringValue("std::io::error::Error".into()))
        );
        assert_eq!(
            value("vidperf.sampling.reason"),
            Some(Value::StringValue("error".into()))
        );
        assert_eq!(value("clip"), Some(Value::StringValue("é".repeat(200))));
        let exception = s
            .events
            .iter()
            .find(|e| e.name == "exception")
            .expect("event");
        assert!(
            exception
                .attributes
                .iter()
                .any(|a| a.key == "exception.type")
        );
    }
}
