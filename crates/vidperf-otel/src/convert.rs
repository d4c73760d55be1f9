//! What a finished span says to OpenTelemetry beyond its fields: the attribute names
//! vidperf adds, the span kind from `otel.kind`, and the APM resource name.

use std::sync::Arc;

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
    /// Why the tail sampler kept the span's trace (`error`, `slow`, `warmup`,
    /// `resource`, `parent`, `background`, or `early:<reason>` when a bound decided).
    pub const SAMPLING_REASON: &str = "vidperf.sampling.reason";
    /// `"<operation> <strategy>"` on operation spans: the APM resource (Datadog's
    /// OTLP mapping, rotel's and the Datadog agent's, take the resource from it), so
    /// trace metrics come per strategy.
    pub const RESOURCE_NAME: &str = "resource.name";
}

/// OTLP's `SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

pub(crate) fn otel_hint<'a>(span: &'a FinishedSpan, key: &str) -> Option<&'a FieldValue> {
    span.otel.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The kind `otel.kind` names (any case), internal otherwise.
pub(crate) fn kind(span: &FinishedSpan) -> Kind {
    let Some(kind) = otel_hint(span, "otel.kind").and_then(FieldValue::as_str) else {
        return Kind::Internal;
    };
    [
        ("server", Kind::Server),
        ("client", Kind::Client),
        ("producer", Kind::Producer),
        ("consumer", Kind::Consumer),
    ]
    .into_iter()
    .find(|(name, _)| kind.eq_ignore_ascii_case(name))
    .map_or(Kind::Internal, |(_, k)| k)
}

/// Resource names by the addresses of the names they join, with the names.
type ResourceNames = std::collections::HashMap<(usize, usize), (OperationKey, Arc<str>)>;

thread_local! {
    /// `"<operation> <strategy>"` by the addresses of the interned names (the layer
    /// hands out one `Arc` per name), so that it is formatted only the first time on
    /// each thread. The entry holds the names, so their addresses cannot be reused
    /// while it exists; bounded (cleared past 1,024 entries).
    static RESOURCE_NAMES: std::cell::RefCell<ResourceNames> =
        std::cell::RefCell::new(ResourceNames::new());
}

/// Calls `f` with `"<operation> <strategy>"`.
pub(crate) fn resource_name(key: &OperationKey, f: impl FnOnce(&str)) {
    let id = (
        Arc::as_ptr(&key.operation_type).cast::<u8>() as usize,
        Arc::as_ptr(&key.strategy).cast::<u8>() as usize,
    );
    let make = || Arc::<str>::from(format!("{} {}", key.operation_type, key.strategy));
    let name = RESOURCE_NAMES
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
        .unwrap_or_else(|_| make());
    f(&name);
}
