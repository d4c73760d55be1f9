//! A span export that keeps what it is sent, decoded with the reference OTLP types.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use vidperf::otlp::{ExportError, SpanExport, TraceSink};

/// Every span of every request, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memory(Arc<Mutex<Vec<Span>>>);

impl SpanExport for Memory {
    fn export(&self, request: &[u8]) -> Result<(), ExportError> {
        let request = ExportTraceServiceRequest::decode(request).expect("a valid request");
        let mut spans = self.0.lock().expect("spans");
        for rs in request.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(())
    }
}

impl Memory {
    pub(crate) fn spans(&self) -> Vec<Span> {
        self.0.lock().expect("spans").clone()
    }
}

/// A trace sink sending to a new [`Memory`].
pub(crate) fn memory_sink() -> (Arc<TraceSink>, Memory) {
    let memory = Memory::default();
    let sink = TraceSink::builder(memory.clone()).start().expect("start");
    (Arc::new(sink), memory)
}
