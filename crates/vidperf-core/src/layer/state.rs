//! Per-span state kept in the registry's extensions, and the visitor that fills it.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::Metadata;
use tracing::field::{Field, Visit};

use crate::fields::{self, OperationFields};
use crate::ids::{SpanId, TraceId};
use crate::intern::intern;
use crate::propagation::{TraceFlags, TraceState};
use crate::resources::WindowStart;
use crate::span::{FinishedSpan, OperationKey, Progress, ResourcePeaks, SpanEvent};
use crate::value::{FieldValue, MAX_STRING_VALUE_BYTES, truncate};

/// The longest error message kept, in bytes.
pub(crate) const MAX_ERROR_BYTES: usize = MAX_STRING_VALUE_BYTES;
/// The most metadata entries kept per span; later ones are counted, not stored.
pub(crate) const MAX_METADATA_ENTRIES: usize = 64;
/// The message recorded when a panic unwinds through an operation.
pub(crate) const PANIC_MESSAGE: &str = "panicked";
/// The error message and `error.type` of a cancelled operation.
pub const CANCELLED: &str = "cancelled";

/// Everything vidperf tracks for one open span. Private: lives in extensions only.
#[derive(Debug)]
pub(crate) struct SpanState {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) is_operation: bool,
    pub(crate) started: Instant,
    pub(crate) start_time: SystemTime,
    pub(crate) operation_type: Option<Arc<str>>,
    pub(crate) strategy: Option<Arc<str>>,
    pub(crate) fields: OperationFields,
    pub(crate) error: Option<String>,
    pub(crate) metadata: Vec<(Cow<'static, str>, FieldValue)>,
    pub(crate) metadata_dropped: u32,
    pub(crate) window: Option<WindowStart>,
    pub(crate) otel: Vec<(Cow<'static, str>, FieldValue)>,
    pub(crate) events: Vec<SpanEvent>,
    pub(crate) dropped_events: u32,
    pub(crate) parent_is_remote: bool,
    pub(crate) links: Vec<(TraceId, SpanId)>,
    /// The sampling decision (and the random trace id flag), as propagated.
    pub(crate) flags: TraceFlags,
    /// The parent's sampled flag, when the span has a parent.
    pub(crate) parent_sampled: Option<bool>,
    pub(crate) trace_state: TraceState,
    /// The first span of this trace in this process (the span itself for a root).
    pub(crate) local_root: SpanId,
    /// The error's class (`error.type`), when known.
    pub(crate) error_type: Option<Cow<'static, str>>,
    /// Whether a tracked span was created under this one (set through a shared
    /// reference by the child, which only reads its parent's extensions).
    pub(crate) had_children: std::sync::atomic::AtomicBool,
    /// Whether the operation was dropped before it completed.
    pub(crate) cancelled: bool,
    /// Its progress, once it recorded `frames_total`.
    pub(crate) progress: Option<Arc<Progress>>,
    /// Whether `progress` is new and not yet handed to the sinks.
    progress_new: bool,
}

/// Where a new span stands in its trace, from its nearest tracked ancestor or as a new
/// local root.
#[derive(Debug)]
pub(crate) struct Position {
    pub(crate) trace_id: TraceId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) flags: TraceFlags,
    pub(crate) parent_sampled: Option<bool>,
    pub(crate) trace_state: TraceState,
    /// `None` for a new local root.
    pub(crate) local_root: Option<SpanId>,
}

impl SpanState {
    pub(crate) fn new(position: Position, is_operation: bool) -> Self {
        let started = Instant::now();
        let span_id = SpanId::random();
        Self {
            trace_id: position.trace_id,
            span_id,
            parent_span_id: position.parent,
            is_operation,
            started,
            start_time: crate::clock::wall_time(started),
            operation_type: None,
            strategy: None,
            fields: OperationFields::default(),
            error: None,
            metadata: Vec::new(),
            metadata_dropped: 0,
            window: None,
            otel: Vec::new(),
            events: Vec::new(),
            dropped_events: 0,
            parent_is_remote: false,
            links: Vec::new(),
            flags: position.flags,
            parent_sampled: position.parent_sampled,
            trace_state: position.trace_state,
            local_root: position.local_root.unwrap_or(span_id),
            error_type: None,
            had_children: std::sync::atomic::AtomicBool::new(false),
            cancelled: false,
            progress: None,
            progress_new: false,
        }
    }

    /// The progress created by the last recording, to hand to the sinks (once).
    pub(crate) fn take_new_progress(&mut self) -> Option<Arc<Progress>> {
        std::mem::take(&mut self.progress_new)
            .then(|| self.progress.clone())
            .flatten()
    }

    /// Notes `frames_total` (a progress figure; it is kept as metadata too).
    fn record_total(&mut self, total: u64) {
        match &self.progress {
            Some(progress) => progress.set_total(total),
            None => {
                let done = self.fields.frames_processed.unwrap_or(0);
                self.progress = Some(Arc::new(Progress::new(done, total)));
                self.progress_new = true;
            }
        }
    }

    /// A root of a new trace, sampled as `sampled` says (for tests).
    #[cfg(test)]
    pub(crate) fn root(sampled: bool) -> Self {
        Self::new(
            Position {
                trace_id: TraceId::random(),
                parent: None,
                flags: TraceFlags::RANDOM.with_sampled(sampled),
                parent_sampled: None,
                trace_state: TraceState::new(),
                local_root: None,
            },
            true,
        )
    }

    /// Names an operation whose `operation` or `strategy` field was not given at
    /// creation: the span name, and [`fields::UNKNOWN_STRATEGY`] (recording the field
    /// later replaces them).
    pub(crate) fn name_defaults(&mut self, metadata: &'static Metadata<'static>) {
        if self.is_operation {
            if self.operation_type.is_none() {
                self.operation_type = Some(intern(metadata.name()));
            }
            if self.strategy.is_none() {
                self.strategy = Some(intern(fields::UNKNOWN_STRATEGY));
            }
        }
    }

    /// Marks the span failed with `message`, unless an earlier failure is recorded: the
    /// first failure is usually the cause.
    pub(crate) fn fail(&mut self, message: &str) {
        if self.error.is_none() {
            let message = if message.is_empty() {
                "error (no message)"
            } else {
                message
            };
            self.error = Some(truncate(message, MAX_ERROR_BYTES));
        }
    }

    /// Marks the operation cancelled (dropped before it completed), unless it failed
    /// first: its error is `cancelled`, its class `cancelled`.
    pub(crate) fn cancel(&mut self) {
        if self.error.is_none() {
            self.cancelled = true;
            self.error = Some(CANCELLED.to_owned());
            self.error_type = Some(Cow::Borrowed(CANCELLED));
        }
    }

    /// Marks the span failed by a panic unwinding through it.
    pub(crate) fn fail_panicked(&mut self) {
        if self.error.is_none() {
            self.error_type = Some(Cow::Borrowed("panic"));
        }
        self.fail(PANIC_MESSAGE);
    }

    /// Adds a link, at most 32 per span.
    pub(crate) fn add_link(&mut self, trace_id: TraceId, span_id: SpanId) {
        if self.links.len() < 32 {
            self.links.push((trace_id, span_id));
        }
    }

    pub(crate) fn push_metadata(&mut self, key: Cow<'static, str>, value: FieldValue) {
        if let Some(slot) = self.metadata.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else if self.metadata.len() < MAX_METADATA_ENTRIES {
            self.metadata.push((key, value));
        } else {
            self.metadata_dropped = self.metadata_dropped.saturating_add(1);
        }
    }

    /// Records one value by field name, typed by the contract.
    pub(crate) fn record_value(&mut self, name: Cow<'static, str>, value: FieldValue) {
        let f = &mut self.fields;
        let ok = match &*name {
            // `error = false` means "no error"; `error = true` is a failure without text.
            fields::ERROR if matches!(value, FieldValue::Bool(_)) => {
                if value == FieldValue::Bool(true) {
                    self.fail("error");
                }
                true
            }
            fields::STRATEGY | fields::OPERATION | fields::ERROR => {
                let text = value.to_string();
                match &*name {
                    fields::STRATEGY => self.strategy = Some(intern(&text)),
                    fields::OPERATION => self.operation_type = Some(intern(&text)),
                    _ => self.fail(&text),
                }
                true
            }
            fields::ERROR_TYPE => {
                self.error_type = Some(Cow::Owned(truncate(&value.to_string(), 256)));
                true
            }
            fields::FRAMES_PROCESSED => {
                let done = value.as_u64();
                if let (Some(progress), Some(done)) = (&self.progress, done) {
                    progress.set_done(done);
                }
                set(&mut f.frames_processed, done)
            }
            fields::FRAMES_TOTAL => {
                if let (true, Some(total)) = (self.is_operation, value.as_u64()) {
                    self.record_total(total);
                }
                false
            }
            fields::SEGMENTS => set(&mut f.segments, value.as_u64()),
            fields::INPUT_WIDTH => set(&mut f.input_width, as_u32(&value)),
            fields::INPUT_HEIGHT => set(&mut f.input_height, as_u32(&value)),
            fields::OUTPUT_WIDTH => set(&mut f.output_width, as_u32(&value)),
            fields::OUTPUT_HEIGHT => set(&mut f.output_height, as_u32(&value)),
            fields::SCALE_FACTOR => set(&mut f.scale_factor, finite(&value)),
            fields::QUALITY_SCORE => set(&mut f.quality_score, finite(&value)),
            fields::ENHANCEMENT_FACTOR => set(&mut f.enhancement_factor, finite(&value)),
            n if n.starts_with("otel.") => {
                let key = name.clone();
                if let Some(slot) = self.otel.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = value.clone();
                } else if self.otel.len() < 16 {
                    self.otel.push((key, value.clone()));
                }
                true
            }
            _ => false,
        };
        if !ok {
            self.push_metadata(name, value);
        }
    }

    /// The finished span, taking what the state holds (the state is left empty, to
    /// be dropped with the span's extensions).
    pub(crate) fn finish(
        &mut self,
        metadata: &'static Metadata<'static>,
        ended: Instant,
        resources: ResourcePeaks,
    ) -> FinishedSpan {
        let duration = ended.saturating_duration_since(self.started);
        let operation = match (self.operation_type.take(), self.strategy.take()) {
            (Some(operation_type), Some(strategy)) if self.is_operation => Some(OperationKey {
                operation_type,
                strategy,
            }),
            _ => None,
        };
        let mut meta = std::mem::take(&mut self.metadata);
        if self.metadata_dropped > 0 {
            meta.push((
                Cow::Borrowed("vidperf.metadata_dropped"),
                FieldValue::from(self.metadata_dropped),
            ));
        }
        let error_type = self.error.is_some().then(|| {
            self.error_type
                .take()
                .unwrap_or(Cow::Borrowed(fields::ERROR_TYPE_OTHER))
        });
        FinishedSpan {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: metadata.name(),
            target: metadata.target(),
            level: *metadata.level(),
            operation,
            start_time: self.start_time,
            end_time: self.start_time + duration,
            duration,
            fields: self.fields,
            error: self.error.take(),
            metadata: meta,
            resources,
            otel: std::mem::take(&mut self.otel),
            events: std::mem::take(&mut self.events),
            dropped_events: self.dropped_events,
            parent_is_remote: self.parent_is_remote,
            links: std::mem::take(&mut self.links),
            flags: self.flags,
            parent_sampled: self.parent_sampled,
            trace_state: std::mem::take(&mut self.trace_state),
            local_root: self.local_root,
            error_type,
            had_children: self.had_children.load(std::sync::atomic::Ordering::Relaxed),
            cancelled: self.cancelled,
        }
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    match value {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => false,
    }
}

fn as_u32(value: &FieldValue) -> Option<u32> {
    value.as_u64().and_then(|v| u32::try_from(v).ok())
}

fn finite(value: &FieldValue) -> Option<f64> {
    value.as_f64().filter(|v| v.is_finite())
}

/// Records span fields into a [`SpanState`].
pub(crate) struct Recorder<'a>(pub(crate) &'a mut SpanState);

impl Visit for Recorder<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0
            .record_value(Cow::Borrowed(field.name()), FieldValue::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0
            .record_value(Cow::Borrowed(field.name()), FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0
            .record_value(Cow::Borrowed(field.name()), FieldValue::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value = i64::try_from(value)
            .map_or_else(|_| FieldValue::text(&value.to_string()), FieldValue::I64);
        self.0.record_value(Cow::Borrowed(field.name()), value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value = u64::try_from(value)
            .map_or_else(|_| FieldValue::text(&value.to_string()), FieldValue::from);
        self.0.record_value(Cow::Borrowed(field.name()), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0
            .record_value(Cow::Borrowed(field.name()), FieldValue::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            // Interned without an intermediate String.
            fields::STRATEGY => self.0.strategy = Some(intern(value)),
            fields::OPERATION => self.0.operation_type = Some(intern(value)),
            fields::ERROR => self.0.fail(value),
            name => self
                .0
                .record_value(Cow::Borrowed(name), FieldValue::text(value)),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = bounded_display(value);
        self.0
            .record_value(Cow::Borrowed(field.name()), FieldValue::Str(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = bounded_debug(value);
        match field.name() {
            // `#[instrument]` records a skipped-`self` receiver's fields etc. through
            // Debug; contract names still count.
            fields::STRATEGY => self.0.strategy = Some(intern(&text)),
            fields::OPERATION => self.0.operation_type = Some(intern(&text)),
            fields::ERROR => self.0.fail(&text),
            name => self
                .0
                .record_value(Cow::Borrowed(name), FieldValue::Str(text)),
        }
    }
}

/// A `record` call's values, read before the span's extensions are locked. Reading runs
/// user `Debug`/`Display` impls, and those may log: under a global default subscriber
/// tracing does not stop that event from re-entering the layer, which would then lock
/// the same span again and deadlock.
///
/// The first few values are kept inline, so the usual `span.record(name, value)` does
/// not allocate.
pub(crate) struct Deferred {
    inline: [Option<(Field, Read)>; DEFERRED_INLINE],
    spilled: Vec<(Field, Read)>,
}

const DEFERRED_INLINE: usize = 4;

/// One value as read: the text variants keep which visitor method produced them, so
/// that [`Deferred::apply`] replays exactly what [`Recorder`] would have done.
pub(crate) enum Read {
    Value(FieldValue),
    Text(String),
    Error(String),
}

impl Deferred {
    pub(crate) fn new() -> Self {
        Self {
            inline: [const { None }; DEFERRED_INLINE],
            spilled: Vec::new(),
        }
    }

    /// Applies the values to `state`, in order, as [`Recorder`] would have.
    pub(crate) fn apply(self, state: &mut SpanState) {
        let mut recorder = Recorder(state);
        let values = self.inline.into_iter().flatten().chain(self.spilled);
        for (field, read) in values {
            match read {
                Read::Value(FieldValue::Bool(v)) => recorder.record_bool(&field, v),
                Read::Value(FieldValue::I64(v)) => recorder.record_i64(&field, v),
                Read::Value(FieldValue::U64(v)) => recorder.record_u64(&field, v),
                Read::Value(FieldValue::F64(v)) => recorder.record_f64(&field, v),
                Read::Value(FieldValue::Str(text)) | Read::Text(text) => {
                    recorder.record_str(&field, &text);
                }
                Read::Error(text) => recorder
                    .0
                    .record_value(Cow::Borrowed(field.name()), FieldValue::Str(text)),
            }
        }
    }

    fn push(&mut self, field: &Field, read: Read) {
        let entry = (field.clone(), read);
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            // Inline slots fill first and spilling starts only when all are full, so
            // inline-then-spilled is the order of recording.
            Some(slot) if self.spilled.is_empty() => *slot = Some(entry),
            _ => self.spilled.push(entry),
        }
    }
}

impl Visit for Deferred {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Read::Value(FieldValue::F64(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Read::Value(FieldValue::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Read::Value(FieldValue::from(value)));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value = i64::try_from(value)
            .map_or_else(|_| FieldValue::text(&value.to_string()), FieldValue::I64);
        self.push(field, Read::Value(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value = u64::try_from(value)
            .map_or_else(|_| FieldValue::text(&value.to_string()), FieldValue::from);
        self.push(field, Read::Value(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Read::Value(FieldValue::Bool(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Read::Text(truncate(value, MAX_STRING_VALUE_BYTES)));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Read::Error(bounded_display(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Read::Text(bounded_debug(value)));
    }
}

/// Whether recording some values runs user code (a `Debug` or `Display` impl, an
/// error's `Display`): visiting with it formats nothing.
pub(crate) struct RunsUserCode(pub(crate) bool);

impl Visit for RunsUserCode {
    fn record_f64(&mut self, _: &Field, _: f64) {}
    fn record_i64(&mut self, _: &Field, _: i64) {}
    fn record_u64(&mut self, _: &Field, _: u64) {}
    fn record_i128(&mut self, _: &Field, _: i128) {}
    fn record_u128(&mut self, _: &Field, _: u128) {}
    fn record_bool(&mut self, _: &Field, _: bool) {}
    fn record_str(&mut self, _: &Field, _: &str) {}
    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.0 = true;
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {
        self.0 = true;
    }
}

/// The most events kept per span (for trace exporters); later ones are counted.
pub const MAX_EVENTS_PER_SPAN: usize = 128;

/// Collects an event's fields for a span event.
pub(crate) struct EventRecorder {
    pub(crate) message: Option<String>,
    pub(crate) fields: Vec<(Cow<'static, str>, FieldValue)>,
}

impl EventRecorder {
    fn push(&mut self, field: &Field, value: FieldValue) {
        if self.fields.len() < MAX_METADATA_ENTRIES {
            self.fields.push((Cow::Borrowed(field.name()), value));
        }
    }
}

impl Visit for EventRecorder {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(truncate(value, MAX_STRING_VALUE_BYTES));
        } else {
            self.push(field, FieldValue::text(value));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, FieldValue::Str(bounded_display(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = bounded_debug(value);
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.push(field, FieldValue::Str(text));
        }
    }
}

/// Collects an event's `error` (preferred) or `message` field as text.
#[derive(Default)]
pub(crate) struct ErrorMessage {
    pub(crate) error: Option<String>,
    pub(crate) message: Option<String>,
}

impl ErrorMessage {
    pub(crate) fn into_text(self) -> String {
        self.error
            .or(self.message)
            .unwrap_or_else(|| "error event".to_owned())
    }
}

impl Visit for ErrorMessage {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, || value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.keep(field, || bounded_display(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep(field, || bounded_debug(value));
    }
}

impl ErrorMessage {
    fn keep(&mut self, field: &Field, text: impl FnOnce() -> String) {
        match field.name() {
            "error" | "exception.message" if self.error.is_none() => self.error = Some(text()),
            "message" if self.message.is_none() => self.message = Some(text()),
            _ => {}
        }
    }
}

/// A writer that stops accepting text past a byte budget, so a huge `Debug` output
/// costs at most the budget.
struct Bounded {
    text: String,
    limit: usize,
    cut: bool,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            Ok(())
        } else {
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.cut = true;
            Err(fmt::Error)
        }
    }
}

fn bounded(write: impl FnOnce(&mut Bounded) -> fmt::Result) -> String {
    let limit = MAX_STRING_VALUE_BYTES - '…'.len_utf8();
    let mut out = Bounded {
        text: String::new(),
        limit,
        cut: false,
    };
    let _ = write(&mut out);
    if out.cut {
        out.text.push('…');
    }
    out.text
}

/// User `Debug` / `Display` code runs inside the host's span callbacks: a panic there
/// is contained and the value recorded as this marker instead.
pub(crate) const PANICKED_DEBUG: &str = "<Debug panicked>";
const PANICKED_DISPLAY: &str = "<Display panicked>";

fn contained(marker: &str, format: impl FnOnce() -> String) -> String {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(format))
        .unwrap_or_else(|_| marker.to_owned())
}

fn bounded_debug(value: &dyn fmt::Debug) -> String {
    contained(PANICKED_DEBUG, || bounded(|out| write!(out, "{value:?}")))
}

fn bounded_display(value: &dyn fmt::Display) -> String {
    contained(PANICKED_DISPLAY, || bounded(|out| write!(out, "{value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_values_apply_in_order_past_the_inline_slots() {
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
        let span = tracing::info_span!(
            "deferred",
            a = 1,
            b = 2,
            c = 3,
            d = 4,
            e = 5,
            f = 6,
            strategy = "x",
            error = "y"
        );
        let fields = span.metadata().expect("metadata").fields();
        let field = |name: &str| fields.field(name).expect("field");
        let mut read = Deferred::new();
        for (i, name) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
            read.record_i64(&field(name), i as i64);
        }
        read.record_debug(&field("strategy"), &"seedvr2");
        read.record_str(&field("error"), "out of memory");
        let mut state = SpanState::root(true);
        read.apply(&mut state);
        let names: Vec<_> = state.metadata.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(state.metadata[5].1, FieldValue::I64(5));
        assert_eq!(state.strategy.as_deref(), Some("\"seedvr2\""));
        assert_eq!(state.error.as_deref(), Some("out of memory"));
    }
}
