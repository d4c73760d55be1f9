//! The metric families of one (operation, strategy) pair since start: durations by
//! outcome at the Prometheus bucket bounds, frames, segments, quality, and a histogram
//! per resource figure — what `/metrics` and the OTLP metrics encode
//! ([`crate::metrics`]).

use std::borrow::Cow;

use super::aggregate::{BOUNDS_NANOS, Measured};
use super::snapshot::DURATION_BUCKETS;
use crate::figure::{FIGURES, Figure};
use crate::metrics::{
    Exemplar, Family, HistogramValue, Point, Value, attr, family, figure_family, figure_max_family,
    per_frame_family,
};

/// Bounds of the quality histogram (0-1).
pub(crate) const QUALITY_BOUNDS: [f64; 12] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99,
];

/// The most buckets a figure's histogram has (its bounds plus `+Inf`).
const MAX_FIGURE_BUCKETS: usize = 16;

/// The outcomes the duration histogram is split by, in order (as
/// [`Outcome::ALL`](crate::Outcome::ALL)).
pub(crate) const OUTCOMES: [&str; 3] = ["success", "failure", "cancelled"];

/// The index of an operation's outcome in [`OUTCOMES`].
pub(crate) fn outcome_index(success: bool, cancelled: bool) -> usize {
    match (success, cancelled) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => 2,
    }
}

/// One bucketed series: counts per bucket, count and sum (and the extremes).
#[derive(Clone, Copy, Debug)]
struct Buckets<const N: usize> {
    counts: [u64; N],
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Self {
            counts: [0; N],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl<const N: usize> Buckets<N> {
    fn add(&mut self, bucket: usize, value: f64) {
        if let Some(n) = self.counts.get_mut(bucket) {
            *n += 1;
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn value(&self, bounds: &'static [f64]) -> HistogramValue {
        let mut h = HistogramValue::new(
            bounds,
            self.counts[..=bounds.len()].to_vec(),
            self.count,
            self.sum,
        );
        if self.count > 0 {
            h.min = Some(self.min);
            h.max = Some(self.max);
        }
        h
    }
}

/// The bucket of `value` among `bounds` (upper bounds, inclusive); `bounds.len()` for
/// `+Inf`.
fn bucket_of(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|b| *b < value)
}

/// What the metrics need of one pair, since start.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cumulative {
    /// Durations in seconds, by outcome ([`OUTCOMES`]).
    duration: [Buckets<{ DURATION_BUCKETS.len() + 1 }>; 3],
    /// The newest operation of each duration bucket whose trace is exported, by
    /// outcome.
    exemplars: [[Option<Exemplar>; DURATION_BUCKETS.len() + 1]; 3],
    frames: u64,
    /// Operations that recorded frames, and their duration in nanoseconds.
    frame_operations: u64,
    frames_nanos: u128,
    segments: u64,
    segment_operations: u64,
    quality: Buckets<{ QUALITY_BOUNDS.len() + 1 }>,
    figures: [Buckets<MAX_FIGURE_BUCKETS>; Figure::COUNT],
    /// Totals (energy) over the frames of the operations that recorded both.
    per_frame: [(f64, u64); Figure::COUNT],
}

impl Cumulative {
    pub(crate) fn record(&mut self, m: &Measured) {
        let outcome = outcome_index(m.success, m.cancelled);
        let bucket = BOUNDS_NANOS.partition_point(|bound| *bound < m.nanos);
        self.duration[outcome].add(bucket, m.nanos as f64 / 1e9);
        if let Some(e) = &m.exemplar {
            self.offer(outcome, bucket, *e);
        }
        if let Some(frames) = m.frames {
            self.frames = self.frames.saturating_add(frames);
            self.frame_operations += 1;
            self.frames_nanos += u128::from(m.nanos);
        }
        if let Some(segments) = m.segments {
            self.segments = self.segments.saturating_add(segments);
            self.segment_operations += 1;
        }
        if let Some(q) = m.quality.filter(|q| q.is_finite()) {
            self.quality.add(bucket_of(&QUALITY_BOUNDS, q), q);
        }
        for (figure, v) in m.figures.iter() {
            let def = figure.def();
            self.figures[figure.index()].add(bucket_of(def.bounds, v), v);
            if def.per_frame.is_some()
                && let Some(frames) = m.frames.filter(|f| *f > 0)
            {
                let slot = &mut self.per_frame[figure.index()];
                slot.0 += v;
                slot.1 = slot.1.saturating_add(frames);
            }
        }
    }

    /// Makes `exemplar` the one of its duration bucket.
    pub(crate) fn offer(&mut self, outcome: usize, bucket: usize, exemplar: Exemplar) {
        if let Some(slot) = self
            .exemplars
            .get_mut(outcome)
            .and_then(|row| row.get_mut(bucket))
        {
            *slot = Some(exemplar);
        }
    }

    /// Adds this pair's points to `families` (indexed as [`Families::new`] lays them out).
    pub(crate) fn points(&self, operation: &str, strategy: &str, families: &mut Families) {
        let key = || -> Vec<(&'static str, Cow<'static, str>)> {
            vec![
                (attr::OPERATION, Cow::Owned(operation.to_owned())),
                (attr::STRATEGY, Cow::Owned(strategy.to_owned())),
            ]
        };
        for ((outcome, buckets), exemplars) in
            OUTCOMES.iter().zip(&self.duration).zip(&self.exemplars)
        {
            if buckets.count > 0 {
                let mut attributes = key();
                attributes.push((attr::OUTCOME, Cow::Borrowed(*outcome)));
                let mut value = buckets.value(&DURATION_BUCKETS);
                value.exemplars = exemplars.iter().flatten().copied().collect();
                families
                    .duration
                    .points
                    .push(Point::new(attributes, Value::Histogram(value)));
            }
        }
        if self.frame_operations > 0 {
            families.frames.push(key(), self.frames as f64);
            if self.frames_nanos > 0 {
                let seconds = self.frames_nanos as f64 / 1e9;
                families.fps.push(key(), self.frames as f64 / seconds);
            }
        }
        if self.segment_operations > 0 {
            families.segments.push(key(), self.segments as f64);
        }
        if self.quality.count > 0 {
            families.quality.points.push(Point::new(
                key(),
                Value::Histogram(self.quality.value(&QUALITY_BOUNDS)),
            ));
        }
        for def in &FIGURES {
            let i = def.figure.index();
            let buckets = &self.figures[i];
            if buckets.count > 0 {
                families.figures[i].points.push(Point::new(
                    key(),
                    Value::Histogram(buckets.value(def.bounds)),
                ));
                families.maxima[i].push(key(), buckets.max);
            }
            let (sum, frames) = self.per_frame[i];
            if let (Some(family), true) = (families.per_frame[i].as_mut(), frames > 0) {
                family.push(key(), sum / frames as f64);
            }
        }
    }
}

/// The pair families being filled, in their order on the page.
pub(crate) struct Families {
    duration: Family,
    frames: Family,
    segments: Family,
    fps: Family,
    quality: Family,
    figures: Vec<Family>,
    maxima: Vec<Family>,
    per_frame: Vec<Option<Family>>,
}

impl Families {
    pub(crate) fn new() -> Self {
        Self {
            duration: Family::new(family::OPERATION_DURATION),
            frames: Family::new(family::OPERATION_FRAMES),
            segments: Family::new(family::OPERATION_SEGMENTS),
            fps: Family::new(family::OPERATION_FPS),
            quality: Family::new(family::OPERATION_QUALITY),
            figures: FIGURES
                .iter()
                .map(|d| Family::new(figure_family(d)))
                .collect(),
            maxima: FIGURES
                .iter()
                .map(|d| Family::new(figure_max_family(d)))
                .collect(),
            per_frame: FIGURES
                .iter()
                .map(|d| per_frame_family(d).map(Family::new))
                .collect(),
        }
    }

    /// The families, those without points left out.
    pub(crate) fn into_families(self) -> impl Iterator<Item = Family> {
        [
            self.duration,
            self.frames,
            self.segments,
            self.fps,
            self.quality,
        ]
        .into_iter()
        .chain(
            self.figures
                .into_iter()
                .zip(self.maxima)
                .zip(self.per_frame)
                .flat_map(|((f, m), p)| [f, m].into_iter().chain(p)),
        )
        .filter(|f| !f.points.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figure::Figures;

    #[test]
    fn every_figure_fits_its_buckets() {
        for def in &FIGURES {
            assert!(def.bounds.len() < MAX_FIGURE_BUCKETS, "{}", def.name);
        }
    }

    #[test]
    fn durations_are_split_by_outcome_and_bounds_are_inclusive() {
        let mut c = Cumulative::default();
        for (nanos, success) in [(1_000_000, true), (1_000_001, true), (2_000_000_000, false)] {
            c.record(&Measured {
                nanos,
                success,
                figures: Figures::none().with(Figure::GpuPower, 250.0),
                ..Measured::default()
            });
        }
        let mut f = Families::new();
        c.points("enhancement", "vsrm", &mut f);
        let families: Vec<Family> = f.into_families().collect();
        assert_eq!(families[0].points.len(), 2, "success and failure");
        let Value::Histogram(ok) = &families[0].points[0].value else {
            panic!("a histogram")
        };
        assert_eq!((ok.counts[0], ok.counts[1], ok.count), (1, 1, 2));
        let power = families
            .iter()
            .find(|f| f.def.name == "vidperf.gpu.power.peak")
            .expect("power");
        let Value::Histogram(p) = &power.points[0].value else {
            panic!("a histogram")
        };
        assert_eq!((p.count, p.sum, p.max), (3, 750.0, Some(250.0)));
    }
}
