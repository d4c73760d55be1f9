//! The per-operation history kept for export and `recent`, as compact rows: the figures
//! the record formats need, packed (about 180 bytes, against some 500 for a whole
//! finished span), with strategy and operation names as indices into a name table
//! rather than reference-counted strings, and whatever is usually absent (an error,
//! metadata, per-device peaks) behind one pointer. A full ring overwrites its oldest
//! row in place, reusing its buffers, so recording allocates nothing in steady state.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fields::OperationFields;
use crate::figure::{Figure, Figures};
use crate::hash::FxHashMap;
use crate::ids::{SpanId, TraceId};
use crate::span::{DevicePeaks, FinishedSpan, ResourcePeaks};
use crate::value::FieldValue;

/// Distinct names remembered at most; past this, a name is kept with its row.
const MAX_NAMES: usize = 4096;

/// A name id meaning "not in the table: kept with the row".
pub(crate) const SPILLED: u32 = u32::MAX;

/// The names seen, each stored once.
#[derive(Debug, Default)]
pub(crate) struct Names {
    list: Vec<Arc<str>>,
    by_text: FxHashMap<Arc<str>, u32>,
    /// Ids by the address of the stored string: an interned name is found without
    /// hashing its text (the table holds the string, so its address is not reused).
    by_address: FxHashMap<usize, u32>,
}

fn address(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

impl Names {
    /// The name's id, adding it when there is room; [`SPILLED`] when the table is full.
    pub(crate) fn resolve(&mut self, name: &Arc<str>) -> u32 {
        if let Some(id) = self.by_address.get(&address(name)) {
            return *id;
        }
        if let Some(id) = self.by_text.get(name) {
            return *id;
        }
        if self.list.len() >= MAX_NAMES {
            return SPILLED;
        }
        let id = self.list.len() as u32;
        self.list.push(name.clone());
        self.by_text.insert(name.clone(), id);
        self.by_address.insert(address(name), id);
        id
    }

    /// The stored string for `id`.
    pub(crate) fn get(&self, id: u32) -> Option<&Arc<str>> {
        self.list.get(id as usize)
    }

    /// Every stored name, by id.
    pub(crate) fn list(&self) -> &[Arc<str>] {
        &self.list
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.list.iter().map(|s| s.len() + 16).sum::<usize>()
            + self.list.capacity() * 16
            + (self.by_text.capacity() + self.by_address.capacity()) * 32
    }
}

/// The contract fields, packed: a presence bit per field.
#[derive(Clone, Copy, Debug, Default)]
struct PackedFields {
    present: u16,
    frames: u64,
    segments: u64,
    sizes: [u32; 4],
    floats: [f64; 3],
}

impl PackedFields {
    fn pack(f: &OperationFields) -> Self {
        let mut p = Self::default();
        let mut put_int = |bit: u16, v: Option<u64>, slot: &mut u64| {
            if let Some(v) = v {
                p.present |= 1 << bit;
                *slot = v;
            }
        };
        let (mut frames, mut segments) = (0, 0);
        put_int(0, f.frames_processed, &mut frames);
        put_int(1, f.segments, &mut segments);
        p.frames = frames;
        p.segments = segments;
        let sizes = [
            f.input_width,
            f.input_height,
            f.output_width,
            f.output_height,
        ];
        for (k, v) in sizes.into_iter().enumerate() {
            if let Some(v) = v {
                p.present |= 1 << (2 + k);
                p.sizes[k] = v;
            }
        }
        let floats = [f.scale_factor, f.quality_score, f.enhancement_factor];
        for (k, v) in floats.into_iter().enumerate() {
            if let Some(v) = v {
                p.present |= 1 << (6 + k);
                p.floats[k] = v;
            }
        }
        p
    }

    fn unpack(&self) -> OperationFields {
        let has = |bit: u16| self.present & (1 << bit) != 0;
        let size = |k: usize| has(2 + k as u16).then_some(self.sizes[k]);
        let float = |k: usize| has(6 + k as u16).then_some(self.floats[k]);
        OperationFields {
            frames_processed: has(0).then_some(self.frames),
            segments: has(1).then_some(self.segments),
            input_width: size(0),
            input_height: size(1),
            output_width: size(2),
            output_height: size(3),
            scale_factor: float(0),
            quality_score: float(1),
            enhancement_factor: float(2),
        }
    }
}

/// Figures kept inline in a row: the first of the table (the 0.1.0 figures, which most
/// machines measure); the others live in [`Extra`].
const INLINE: usize = 4;

/// The resource figures, packed: the first [`INLINE`] figures and the sample count
/// inline, with a presence bit each (the others and per-device figures live in
/// [`Extra`]).
#[derive(Clone, Copy, Debug, Default)]
struct PackedPeaks {
    present: u8,
    values: [f64; INLINE],
    samples: u64,
}

/// The presence bit of the sample count.
const SAMPLES_BIT: u8 = 1 << INLINE;

impl PackedPeaks {
    fn pack(r: &ResourcePeaks) -> Self {
        let mut p = Self::default();
        for (k, figure) in Figure::ALL[..INLINE].iter().enumerate() {
            if let Some(v) = r.figures.get(*figure) {
                p.present |= 1 << k;
                p.values[k] = v;
            }
        }
        if let Some(n) = r.samples {
            p.present |= SAMPLES_BIT;
            p.samples = n;
        }
        p
    }

    fn unpack(&self, extra: Option<&Extra>) -> ResourcePeaks {
        let mut figures = extra.map_or(Figures::none(), |e| e.figures);
        for (k, figure) in Figure::ALL[..INLINE].iter().enumerate() {
            if self.present & (1 << k) != 0 {
                figures.set(*figure, Some(self.values[k]));
            }
        }
        let mut peaks = ResourcePeaks::none();
        peaks.figures = figures;
        peaks.samples = (self.present & SAMPLES_BIT != 0).then_some(self.samples);
        peaks.devices = extra.map(|e| e.devices.clone()).unwrap_or_default();
        peaks
    }
}

/// The figures not kept inline ([`INLINE`]).
fn outlying(r: &ResourcePeaks) -> Figures {
    r.figures
        .iter()
        .filter(|(f, _)| f.index() >= INLINE)
        .collect()
}

/// What a row usually lacks, behind one pointer (allocated the first time a row slot
/// needs it, then reused).
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    pub(crate) error: Option<String>,
    pub(crate) metadata: Vec<(Cow<'static, str>, FieldValue)>,
    devices: Vec<DevicePeaks>,
    /// The figures not kept inline.
    figures: Figures,
    /// Operation type and strategy, when the name table was full.
    spilled: Option<(Arc<str>, Arc<str>)>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.error.is_none()
            && self.metadata.is_empty()
            && self.devices.is_empty()
            && self.figures.is_empty()
            && self.spilled.is_none()
    }
}

/// One finished operation as kept in the history.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    /// The parent span, and whether it is remote.
    parent: Option<(SpanId, bool)>,
    /// Operations that ran alongside it at most; `u32::MAX` when not known.
    overlap: u32,
    cancelled: bool,
    operation: u32,
    strategy: u32,
    start_nanos: u64,
    duration_nanos: u64,
    fields: PackedFields,
    peaks: PackedPeaks,
    extra: Option<Box<Extra>>,
}

impl Row {
    fn new(span: &FinishedSpan, end_nanos: u64, ids: (u32, u32), overlap: Option<u32>) -> Self {
        let (operation, strategy) = ids;
        let mut row = Self {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent: None,
            overlap: u32::MAX,
            cancelled: false,
            operation,
            strategy,
            start_nanos: 0,
            duration_nanos: 0,
            fields: PackedFields::default(),
            peaks: PackedPeaks::default(),
            extra: None,
        };
        row.assign(span, end_nanos, (operation, strategy), overlap);
        row
    }

    /// Overwrites the row with `span`, reusing its buffers.
    /// `end_nanos`: the span's end, nanoseconds since the Unix epoch.
    fn assign(
        &mut self,
        span: &FinishedSpan,
        end_nanos: u64,
        (operation, strategy): (u32, u32),
        overlap: Option<u32>,
    ) {
        self.trace_id = span.trace_id;
        self.span_id = span.span_id;
        self.parent = span.parent_span_id.map(|p| (p, span.parent_is_remote));
        // (u32::MAX is "not known": a count that high is kept one below.)
        self.overlap = overlap.map_or(u32::MAX, |n| n.min(u32::MAX - 1));
        self.cancelled = span.cancelled;
        self.operation = operation;
        self.strategy = strategy;
        self.duration_nanos = u64::try_from(span.duration.as_nanos()).unwrap_or(u64::MAX);
        self.start_nanos = end_nanos.saturating_sub(self.duration_nanos);
        self.fields = PackedFields::pack(&span.fields);
        self.peaks = PackedPeaks::pack(&span.resources);
        let spilled = match &span.operation {
            Some(key) if operation == SPILLED || strategy == SPILLED => {
                Some((key.operation_type.clone(), key.strategy.clone()))
            }
            _ => None,
        };
        let detail = outlying(&span.resources);
        let needed = span.error.is_some()
            || !span.metadata.is_empty()
            || !span.resources.devices.is_empty()
            || !detail.is_empty()
            || spilled.is_some();
        match (&mut self.extra, needed) {
            (None, false) => {}
            (Some(extra), false) if extra.is_empty() => {}
            (slot, _) => {
                let extra = slot.get_or_insert_with(Box::default);
                extra.error.clone_from(&span.error);
                extra.metadata.clone_from(&span.metadata);
                extra.devices.clone_from(&span.resources.devices);
                extra.figures = detail;
                extra.spilled = spilled;
            }
        }
    }

    pub(crate) fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.start_nanos)
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_nanos(self.duration_nanos)
    }

    pub(crate) fn end_time(&self) -> SystemTime {
        self.start_time() + self.duration()
    }

    pub(crate) fn fields(&self) -> OperationFields {
        self.fields.unpack()
    }

    pub(crate) fn resources(&self) -> ResourcePeaks {
        self.peaks.unpack(self.extra.as_deref())
    }

    pub(crate) fn error(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.error.as_deref())
    }

    pub(crate) fn metadata(&self) -> &[(Cow<'static, str>, FieldValue)] {
        self.extra.as_ref().map_or(&[][..], |e| &e.metadata)
    }

    pub(crate) fn is_success(&self) -> bool {
        self.error().is_none()
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled
    }

    pub(crate) fn parent(&self) -> Option<(SpanId, bool)> {
        self.parent
    }

    pub(crate) fn overlap(&self) -> Option<u32> {
        (self.overlap != u32::MAX).then_some(self.overlap)
    }

    /// The row's operation type and strategy, from `names` (a copy of the table).
    pub(crate) fn names<'a>(&'a self, names: &'a [Arc<str>]) -> (&'a str, &'a str) {
        let spilled = self.extra.as_ref().and_then(|e| e.spilled.as_ref());
        let pick = |id: u32, spill: Option<&'a Arc<str>>| -> &'a str {
            match names.get(id as usize) {
                Some(name) => name,
                None => spill.map_or("", |s| s),
            }
        };
        (
            pick(self.operation, spilled.map(|s| &s.0)),
            pick(self.strategy, spilled.map(|s| &s.1)),
        )
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
        end_nanos: u64,
        ids: (u32, u32),
        overlap: Option<u32>,
        limit: usize,
    ) -> bool {
        if limit == 0 {
            return true;
        }
        if self.ring.len() < limit {
            self.ring.push(Row::new(span, end_nanos, ids, overlap));
            return false;
        }
        if let Some(row) = self.ring.get_mut(self.head) {
            row.assign(span, end_nanos, ids, overlap);
        }
        self.head = (self.head + 1) % self.ring.len().max(1);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Row>()
            + self
                .ring
                .iter()
                .filter_map(|r| r.extra.as_ref())
                .map(|e| std::mem::size_of::<Extra>() + e.metadata.capacity() * 48)
                .sum::<usize>()
    }

    /// Oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Row> {
        let (newer, older) = self.ring.split_at(self.head.min(self.ring.len()));
        older.iter().chain(newer.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_compact() {
        assert!(
            std::mem::size_of::<Row>() <= 192,
            "{} bytes",
            std::mem::size_of::<Row>()
        );
    }

    #[test]
    fn packed_fields_and_peaks_round_trip() {
        let fields = OperationFields {
            frames_processed: Some(0),
            input_height: Some(7),
            quality_score: Some(0.5),
            ..OperationFields::default()
        };
        assert_eq!(PackedFields::pack(&fields).unpack(), fields);
        let mut peaks = ResourcePeaks::none();
        peaks.figures = Figures::none()
            .with(Figure::ProcessMemory, 1.0)
            .with(Figure::GpuUtilization, 0.0);
        peaks.samples = Some(3);
        assert_eq!(PackedPeaks::pack(&peaks).unpack(None), peaks);
        // The inline figures are the 0.1.0 ones.
        for (k, def) in crate::figure::FIGURES.iter().enumerate() {
            assert_eq!(k < INLINE, def.since_0_1, "{}", def.name);
        }
    }
}
