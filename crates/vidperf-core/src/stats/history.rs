//! The per-operation history kept for export and `recent`, as compact rows: the figures
//! the record formats need, with strategy and operation names as indices into a name
//! table rather than reference-counted strings, written in place over the oldest row
//! once the ring is full (reusing its buffers).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::fields::OperationFields;
use crate::hash::FxHashMap;
use crate::ids::{SpanId, TraceId};
use crate::span::{FinishedSpan, ResourcePeaks};
use crate::value::FieldValue;

/// Distinct names remembered at most; past this, a name is kept with its row.
const MAX_NAMES: usize = 4096;

/// A strategy or operation-type name: an index into [`Names`], or the name itself when
/// the table is full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    Id(u32),
    Spilled(Arc<str>),
}

/// The names seen, each stored once.
#[derive(Debug, Default)]
pub(crate) struct Names {
    list: Vec<Arc<str>>,
    by_text: FxHashMap<Arc<str>, u32>,
}

impl Names {
    /// The name's id, adding it when there is room.
    pub(crate) fn resolve(&mut self, name: &Arc<str>) -> Name {
        if let Some(id) = self.by_text.get(name) {
            return Name::Id(*id);
        }
        if self.list.len() >= MAX_NAMES {
            return Name::Spilled(name.clone());
        }
        let id = self.list.len() as u32;
        self.list.push(name.clone());
        self.by_text.insert(name.clone(), id);
        Name::Id(id)
    }

    /// The stored `Arc` for `id` (its address identifies it while the table lives).
    pub(crate) fn get(&self, id: u32) -> Option<&Arc<str>> {
        self.list.get(id as usize)
    }

    pub(crate) fn text<'a>(&'a self, name: &'a Name) -> &'a str {
        match name {
            Name::Id(id) => self.list.get(*id as usize).map_or("", |s| s),
            Name::Spilled(s) => s,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.list.iter().map(|s| s.len() + 16).sum::<usize>()
            + self.list.capacity() * 8
            + self.by_text.capacity() * 24
    }
}

/// One finished operation as kept in the history.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) operation: Name,
    pub(crate) strategy: Name,
    pub(crate) start_time: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) fields: OperationFields,
    pub(crate) error: Option<String>,
    pub(crate) metadata: Vec<(Cow<'static, str>, FieldValue)>,
    pub(crate) resources: ResourcePeaks,
}

impl Row {
    pub(crate) fn new(span: &FinishedSpan, operation: Name, strategy: Name) -> Self {
        Self {
            trace_id: span.trace_id,
            span_id: span.span_id,
            operation,
            strategy,
            start_time: span.start_time,
            duration: span.duration,
            fields: span.fields,
            error: span.error.clone(),
            metadata: span.metadata.clone(),
            resources: span.resources.clone(),
        }
    }

    /// Overwrites the row with `span`, reusing its buffers.
    fn assign(&mut self, span: &FinishedSpan, operation: Name, strategy: Name) {
        self.trace_id = span.trace_id;
        self.span_id = span.span_id;
        self.operation = operation;
        self.strategy = strategy;
        self.start_time = span.start_time;
        self.duration = span.duration;
        self.fields = span.fields;
        self.error.clone_from(&span.error);
        self.metadata.clone_from(&span.metadata);
        self.resources.clone_from(&span.resources);
    }

    pub(crate) fn end_time(&self) -> SystemTime {
        self.start_time + self.duration
    }

    pub(crate) fn is_success(&self) -> bool {
        self.error.is_none()
    }
}

/// A ring of rows that, once full, overwrites its oldest row in place.
#[derive(Debug, Default)]
pub(crate) struct History {
    ring: Vec<Row>,
    /// Index of the oldest row once the ring is full.
    head: usize,
}

impl History {
    /// Keeps `span`; true when the oldest row was purged to make room (or, with a limit
    /// of 0, when `span` itself was not kept).
    pub(crate) fn push(
        &mut self,
        span: &FinishedSpan,
        operation: Name,
        strategy: Name,
        limit: usize,
    ) -> bool {
        if limit == 0 {
            return true;
        }
        if self.ring.len() < limit {
            self.ring.push(Row::new(span, operation, strategy));
            return false;
        }
        if let Some(row) = self.ring.get_mut(self.head) {
            row.assign(span, operation, strategy);
        }
        self.head = (self.head + 1) % self.ring.len().max(1);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Row> {
        let (newer, older) = self.ring.split_at(self.head.min(self.ring.len()));
        older.iter().chain(newer.iter())
    }
}
