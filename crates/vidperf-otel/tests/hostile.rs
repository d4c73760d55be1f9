//! Property test of the trace encoding over hostile input: whatever user code records,
//! every span reaches the SDK with its values typed and intact, and survives the OTLP
//! protobuf encoding the exporter sends.

use std::sync::Arc;

use opentelemetry::{KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler};
use proptest::prelude::*;
use prost::Message as _;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf_core::PerfLayer;
use vidperf_otel::{DEFAULT_MAX_QUEUE_SIZE, TraceSink};

fn text() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1b}', '\u{7f}', '\u{2028}', '\u{feff}', 'é',
        '中', '🎞', 'a',
    ]);
    prop::collection::vec(prop_oneof![2 => tricky, 1 => any::<char>()], 0..24)
        .prop_map(String::from_iter)
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => 0.0f64..1.0,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn hostile_values_arrive_typed_and_survive_the_protobuf_encoding(
        strategy in text(),
        note in text(),
        frames in 0u64..=i64::MAX as u64,
        quality in number(),
        error in proptest::option::of(text()),
    ) {
        let spans = InMemorySpanExporter::default();
        let traces = Arc::new(TraceSink::with_exporter(
            spans.clone(),
            &Resource::builder_empty().build(),
            Sampler::AlwaysOn,
            DEFAULT_MAX_QUEUE_SIZE,
        ));
        let layer = PerfLayer::builder().sink(traces.clone()).build();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = info_span!(
                "op",
                strategy = strategy.as_str(),
                note = note.as_str(),
                frames_processed = frames,
                quality_score = quality,
                error = tracing::field::Empty,
            );
            if let Some(error) = &error {
                span.record("error", error.as_str());
            }
        });
        traces.flush().expect("flush");
        let exported = spans.get_finished_spans().expect("spans");
        prop_assert_eq!(exported.len(), 1);
        let span = &exported[0];
        let attrs = &span.attributes;
        prop_assert_eq!(
            attribute(attrs, "vidperf.strategy"),
            Some(&Value::from(strategy.clone()))
        );
        prop_assert_eq!(attribute(attrs, "note"), Some(&Value::from(note.clone())));
        prop_assert_eq!(
            attribute(attrs, "frames_processed"),
            Some(&Value::I64(frames as i64))
        );
        // A quality score is a double whatever it is: NaN and infinities included
        // (OTLP doubles carry them).
        match attribute(attrs, "quality_score") {
            Some(Value::F64(v)) => prop_assert!(
                v.to_bits() == quality.to_bits(),
                "quality {} arrived as {}", quality, v
            ),
            other => prop_assert!(false, "quality {} arrived as {:?}", quality, other),
        }
        match &error {
            // An empty error message still marks the failure, with a placeholder.
            Some(message) if message.is_empty() => prop_assert_eq!(
                &span.status,
                &opentelemetry::trace::Status::error("error (no message)")
            ),
            Some(message) => prop_assert_eq!(
                &span.status,
                &opentelemetry::trace::Status::error(message.clone())
            ),
            None => prop_assert_eq!(&span.status, &opentelemetry::trace::Status::Unset),
        }

        // The OTLP encoding: protobuf out and back, strings intact.
        let resource = ResourceAttributesWithSchema::from(&Resource::builder_empty().build());
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(exported, &resource),
        };
        let bytes = request.encode_to_vec();
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode");
        let proto = &decoded.resource_spans[0].scope_spans[0].spans[0];
        let value = |key: &str| {
            proto
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone())
        };
        prop_assert_eq!(
            value("vidperf.strategy"),
            Some(any_value::Value::StringValue(strategy))
        );
        prop_assert_eq!(value("note"), Some(any_value::Value::StringValue(note)));
        prop_assert_eq!(
            value("frames_processed"),
            Some(any_value::Value::IntValue(frames as i64))
        );
    }
}
