//! [`PerfLayer`]: the one `tracing-subscriber` layer that turns spans into
//! [`FinishedSpan`]s and fans them out to sinks.

mod state;

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Span, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::fields;
use crate::ids::{SpanId, TraceId};
use crate::propagation::{TraceFlags, TraceState};
use crate::resources::ResourceWindows;
use crate::sampler::Sampler;
use crate::sink::{Sink, SpanInterest};
use crate::span::{ActiveOperation, Progress, ResourcePeaks};
use crate::stats::{Health, HealthSource};
use crate::value::FieldValue;

pub use state::{CANCELLED, MAX_EVENTS_PER_SPAN};
use state::{Deferred, ErrorMessage, EventRecorder, Position, Recorder, RunsUserCode, SpanState};

/// The layer that recognises operations, measures them and hands each finished span to
/// the registered [`Sink`]s.
///
/// Add it to a [`Registry`](tracing_subscriber::Registry) (it needs span extensions):
///
/// ```
/// use std::sync::Arc;
/// use tracing_subscriber::prelude::*;
/// use vidperf_core::{PerfLayer, Stats, StatsConfig};
///
/// let stats = Arc::new(Stats::new(StatsConfig::default()));
/// let layer = PerfLayer::builder().sink(stats.clone()).build();
/// let subscriber = tracing_subscriber::registry().with(layer);
///
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("upscale", strategy = "vsrm", frames_processed = 48);
///     drop(span);
/// });
/// assert_eq!(stats.snapshot().summary.total_operations, 1);
/// ```
///
/// What it costs: an ordinary span (no `strategy` field) costs one field-name scan when
/// no sink wants every span; an operation costs one heap allocation for its state, two
/// clock reads and the sinks' own work at close. No I/O and no lock is held while sinks
/// run.
#[derive(Clone, Debug)]
pub struct PerfLayer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sinks: Vec<(Arc<dyn SinkDebug>, SpanInterest)>,
    all_spans: bool,
    resources: Option<Arc<dyn WindowsDebug>>,
    sampler: Sampler,
    health: LayerHealth,
}

/// A resource source plus `Debug`.
trait WindowsDebug: ResourceWindows {
    fn type_name(&self) -> &'static str;
}

impl<T: ResourceWindows> WindowsDebug for T {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

impl std::fmt::Debug for dyn WindowsDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A sink plus `Debug`, so the layer can be `Debug` whatever the sinks are.
trait SinkDebug: Sink {
    fn type_name(&self) -> &'static str;
}

impl<T: Sink> SinkDebug for T {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

impl std::fmt::Debug for dyn SinkDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_name())
    }
}

/// Counters of what went wrong inside the layer, readable at any time.
#[derive(Debug, Default)]
pub struct LayerHealth {
    sink_panics: AtomicU64,
}

impl LayerHealth {
    /// How many times a sink panicked (each time, that sink lost one span).
    pub fn sink_panics(&self) -> u64 {
        self.sink_panics.load(Ordering::Relaxed)
    }
}

/// The layer reports its sink panics into the statistics' health
/// (`health.sink_panics`).
impl HealthSource for PerfLayer {
    fn report(&self, health: &mut Health) {
        health.sink_panics = self.inner.health.sink_panics();
    }
}

/// Builds a [`PerfLayer`].
#[derive(Debug, Default)]
pub struct PerfLayerBuilder {
    sinks: Vec<(Arc<dyn SinkDebug>, SpanInterest)>,
    resources: Option<Arc<dyn WindowsDebug>>,
    sampler: Sampler,
}

impl PerfLayerBuilder {
    /// Adds a sink. Sinks receive finished spans in the order they were added.
    #[must_use]
    pub fn sink<T: Sink>(mut self, sink: T) -> Self {
        let interest = sink.interest();
        self.sinks.push((Arc::new(sink), interest));
        self
    }

    /// Attaches resource peaks from `source` (a resource monitor) to every operation.
    #[must_use]
    pub fn resources<T: ResourceWindows>(mut self, source: T) -> Self {
        self.resources = Some(Arc::new(source));
        self
    }

    /// Decides with `sampler` whether each new local root — and so its local trace — is
    /// sampled (default [`Sampler::ParentBased`] on [`AlwaysOn`](crate::sampler::Root::AlwaysOn)).
    /// The decision is each span's sampled flag: what a trace sink exports and what
    /// [`TraceContext`](crate::propagation::TraceContext) propagates. Statistics count
    /// every operation whatever it decides.
    #[must_use]
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// The layer.
    pub fn build(self) -> PerfLayer {
        let all_spans = self.sinks.iter().any(|(_, i)| *i == SpanInterest::All);
        PerfLayer {
            inner: Arc::new(Inner {
                sinks: self.sinks,
                all_spans,
                resources: self.resources,
                sampler: self.sampler,
                health: LayerHealth::default(),
            }),
        }
    }
}

impl PerfLayer {
    /// A builder with no sinks.
    pub fn builder() -> PerfLayerBuilder {
        PerfLayerBuilder::default()
    }

    /// What went wrong inside the layer so far.
    pub fn health(&self) -> &LayerHealth {
        &self.inner.health
    }

    /// Hands a running operation's new progress to the sinks, with no lock of the
    /// layer's held.
    fn announce_progress(&self, span_id: SpanId, progress: &Arc<Progress>) {
        self.dispatch(|sink| sink.on_progress(span_id, progress), true);
    }

    fn dispatch(&self, call: impl Fn(&dyn SinkDebug), operation: bool) {
        for (sink, interest) in &self.inner.sinks {
            if !operation && *interest == SpanInterest::Operations {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| call(&**sink))).is_err() {
                self.inner
                    .health
                    .sink_panics
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<S> Layer<S> for PerfLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let is_operation = attrs.metadata().fields().field(fields::STRATEGY).is_some();
        if !is_operation && !self.inner.all_spans {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        // The nearest tracked ancestor gives the trace, the parent, the sampling
        // decision and the tracestate (walking up from the parent: `scope()` would look
        // the span itself up again first).
        let mut position = None;
        let mut ancestor = span.parent();
        while let Some(current) = ancestor {
            if let Some(parent) = current.extensions().get::<SpanState>() {
                parent
                    .had_children
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                position = Some(Position {
                    trace_id: parent.trace_id,
                    parent: Some(parent.span_id),
                    flags: parent.flags,
                    parent_sampled: Some(parent.flags.is_sampled()),
                    trace_state: parent.trace_state.clone(),
                    local_root: Some(parent.local_root),
                });
                break;
            }
            ancestor = current.parent();
        }
        let position = position.unwrap_or_else(|| {
            // A new local root: a new random trace id, sampled as the sampler says.
            let trace_id = TraceId::random();
            let sampled = self.inner.sampler.should_sample(trace_id, None);
            Position {
                trace_id,
                parent: None,
                flags: TraceFlags::RANDOM.with_sampled(sampled),
                parent_sampled: None,
                trace_state: TraceState::new(),
                local_root: None,
            }
        });
        let trace_id = position.trace_id;
        let mut state = SpanState::new(position, is_operation);
        if is_operation && let Some(resources) = &self.inner.resources {
            state.window = Some(resources.open(state.started));
        }
        attrs.record(&mut Recorder(&mut state));
        state.name_defaults(attrs.metadata());
        let progress = state.take_new_progress();
        if let (true, Some(operation_type), Some(strategy)) =
            (is_operation, &state.operation_type, &state.strategy)
        {
            let active = ActiveOperation {
                span_id: state.span_id,
                trace_id,
                operation_type,
                strategy,
                start_time: state.start_time,
                started: state.started,
                progress: progress.as_ref(),
            };
            self.dispatch(|sink| sink.on_start(&active), true);
        }
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if !self.inner.all_spans && span.metadata().fields().field(fields::STRATEGY).is_none() {
            return;
        }
        // Numbers, booleans and strings run no user code: record them straight into
        // the state. Anything formatted (`Debug`, `Display`, errors) may log and so
        // re-enter this layer: read those before the span is locked (see `Deferred`).
        let mut check = RunsUserCode(false);
        values.record(&mut check);
        let progress = if check.0 {
            let mut read = Deferred::new();
            values.record(&mut read);
            let mut extensions = span.extensions_mut();
            extensions.get_mut::<SpanState>().and_then(|state| {
                read.apply(state);
                state.take_new_progress().map(|p| (state.span_id, p))
            })
        } else {
            let mut extensions = span.extensions_mut();
            extensions.get_mut::<SpanState>().and_then(|state| {
                values.record(&mut Recorder(state));
                state.take_new_progress().map(|p| (state.span_id, p))
            })
        };
        if let Some((span_id, progress)) = progress {
            drop(span);
            self.announce_progress(span_id, &progress);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let is_error = *event.metadata().level() == Level::ERROR;
        if !is_error && !self.inner.all_spans {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        // (tracked, room for one more event, already failed): a short look, no user code.
        let Some((room, failed)) = span.extensions().get::<SpanState>().map(|state| {
            (
                state.events.len() < MAX_EVENTS_PER_SPAN,
                state.error.is_some(),
            )
        }) else {
            return;
        };
        // The event is read before the span is locked for writing: reading runs user
        // `Debug` impls, which may log into this same span re-entrantly (tracing does
        // not prevent that under a global default subscriber).
        let time = crate::clock::wall_time(Instant::now());
        let recorded = (self.inner.all_spans && room).then(|| {
            let mut recorder = EventRecorder {
                message: None,
                fields: Vec::new(),
            };
            event.record(&mut recorder);
            recorder
        });
        let error = (is_error && !failed).then(|| {
            let mut message = ErrorMessage::default();
            event.record(&mut message);
            message.into_text()
        });
        let mut extensions = span.extensions_mut();
        let Some(state) = extensions.get_mut::<SpanState>() else {
            return;
        };
        if self.inner.all_spans {
            match recorded {
                Some(recorder) if state.events.len() < MAX_EVENTS_PER_SPAN => {
                    let meta = event.metadata();
                    state.events.push(crate::span::SpanEvent {
                        time,
                        name: recorder.message.unwrap_or_else(|| meta.name().to_owned()),
                        level: *meta.level(),
                        target: meta.target(),
                        fields: recorder.fields,
                    });
                }
                _ => state.dropped_events = state.dropped_events.saturating_add(1),
            }
        }
        if let Some(message) = error
            && state.error.is_none()
        {
            state.fail(&message);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(target) = ctx.span(follows) else {
            return;
        };
        let ids = target
            .extensions()
            .get::<SpanState>()
            .map(|s| (s.trace_id, s.span_id));
        let (Some((trace_id, span_id)), Some(span)) = (ids, ctx.span(id)) else {
            return;
        };
        if let Some(state) = span.extensions_mut().get_mut::<SpanState>() {
            state.add_link(trace_id, span_id);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        // A panic unwinding out of an entered operation (an `#[instrument]`ed function,
        // `in_scope`, an instrumented future's poll) passes here while panicking.
        if !std::thread::panicking() {
            return;
        }
        mark_panicked(id, &ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if !self.inner.all_spans && span.metadata().fields().field(fields::STRATEGY).is_none() {
            return; // an ordinary span, untracked: no lock taken, no clock read
        }
        let ended = Instant::now();
        // The state is emptied in place rather than moved out: the registry drops it
        // with the span's other extensions.
        let (window, finished) = {
            let mut extensions = span.extensions_mut();
            let Some(state) = extensions.get_mut::<SpanState>() else {
                return;
            };
            if std::thread::panicking() {
                state.fail_panicked();
            }
            let window = state.window.take();
            (
                window,
                state.finish(span.metadata(), ended, ResourcePeaks::none()),
            )
        };
        drop(span);
        let mut finished = finished;
        if let (Some(window), Some(source)) = (window, &self.inner.resources) {
            finished.resources = source.close(window, ended);
        }
        let operation = finished.operation.is_some();
        self.dispatch(|sink| sink.on_finish(&finished), operation);
    }
}

fn mark_panicked<S>(id: &Id, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(span) = ctx.span(id)
        && let Some(state) = span.extensions_mut().get_mut::<SpanState>()
    {
        state.fail_panicked();
    }
}

/// Runs `f` on the state of `span`, when the current subscriber is a
/// [`Registry`](tracing_subscriber::Registry)-based stack with a [`PerfLayer`] tracking
/// that span. Returns `None` otherwise.
pub(crate) fn with_state<R>(span: &Span, f: impl FnOnce(&mut SpanState) -> R) -> Option<R> {
    let mut f = Some(f);
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        let state = extensions.get_mut::<SpanState>()?;
        f.take().map(|f| f(state))
    })
    .flatten()
}

/// Runs `f` on the state of `span` and the sampler of the [`PerfLayer`] tracking it.
pub(crate) fn with_state_and_sampler<R>(
    span: &Span,
    f: impl FnOnce(&mut SpanState, &Sampler) -> R,
) -> Option<R> {
    let mut f = Some(f);
    span.with_subscriber(|(id, dispatch)| {
        let layer = dispatch.downcast_ref::<PerfLayer>()?;
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        let state = extensions.get_mut::<SpanState>()?;
        f.take().map(|f| f(state, &layer.inner.sampler))
    })
    .flatten()
}

/// Records `value` under any name (a contract field or free metadata) on `span`.
///
/// Unlike [`Span::record`], the name need not be declared on the span: names that are not
/// contract fields become metadata. Returns `false` when the span is not tracked by a
/// [`PerfLayer`] on a [`Registry`](tracing_subscriber::Registry).
pub fn record_field(span: &Span, name: &str, value: FieldValue) -> bool {
    let Some(progress) = with_state(span, |state| {
        state.record_value(Cow::Owned(name.to_owned()), value);
        state.take_new_progress().map(|p| (state.span_id, p))
    }) else {
        return false;
    };
    // The span's state is unlocked again: the sinks may take their own locks.
    if let Some((span_id, progress)) = progress {
        span.with_subscriber(|(_, dispatch)| {
            if let Some(layer) = dispatch.downcast_ref::<PerfLayer>() {
                layer.announce_progress(span_id, &progress);
            }
        });
    }
    true
}

/// Marks `span` as failed with `message`, if it is tracked and not already failed.
pub fn record_error(span: &Span, message: &str) -> bool {
    with_state(span, |state| state.fail(message)).is_some()
}

/// Marks `span` cancelled — its work was dropped before it completed (a timeout, an
/// aborted task) — unless it already failed. A cancelled operation is neither a success
/// nor a failure: counted apart, with `error_message = "cancelled"` and `error.type =
/// cancelled` in its exports, and left out of the duration figures by default.
/// `#[vidperf::track]` on an `async fn`, an [`Operation`](crate::operation::Operation)
/// dropped without `finish`, and [`CancelExt::cancel_aware`](crate::CancelExt::cancel_aware)
/// call it for you.
pub fn record_cancelled(span: &Span) -> bool {
    with_state(span, SpanState::cancel).is_some()
}

/// The trace and span ids vidperf assigned to `span`, if it is tracked.
pub fn span_ids(span: &Span) -> Option<(TraceId, SpanId)> {
    with_state(span, |state| (state.trace_id, state.span_id))
}
