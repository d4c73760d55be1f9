//! [`Sampler`]: whether a trace is recorded, decided once when its local root starts and
//! inherited by every span under it (the OpenTelemetry SDK specification's samplers).

use crate::ids::TraceId;
use crate::propagation::TraceFlags;

/// Decides whether a new local root (and so its whole local trace) is sampled. The
/// decision is the span's sampled flag: exported by the trace sink, propagated in
/// `traceparent`, inherited by its children on any thread. Statistics and metrics count
/// every operation whatever it decides.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Sampler {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A fraction of traces, by trace id, so that every process with the same ratio
    /// agrees: sampled when the trace id's lower 8 bytes, shifted right by one, are below
    /// `ratio × 2⁶³` (the OpenTelemetry SDKs' rule).
    TraceIdRatio(f64),
    /// The parent's decision when there is a parent (remote or local: sampled if it
    /// was), the root sampler's otherwise. `ParentBased(AlwaysOn)` is the default, as
    /// in the specification.
    ParentBased(Root),
}

/// The sampler of a [`Sampler::ParentBased`] for spans without a parent.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Root {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A fraction by trace id, as [`Sampler::TraceIdRatio`].
    TraceIdRatio(f64),
}

impl Default for Sampler {
    fn default() -> Self {
        Self::ParentBased(Root::AlwaysOn)
    }
}

fn ratio(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    let value = u64::from_be_bytes(low) >> 1;
    // reason: the bound is at most 2^63, which f64 holds exactly; the product rounds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    value < bound
}

impl Sampler {
    /// The `OTEL_TRACES_SAMPLER` name of this sampler.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AlwaysOn => "always_on",
            Self::AlwaysOff => "always_off",
            Self::TraceIdRatio(_) => "traceidratio",
            Self::ParentBased(Root::AlwaysOn) => "parentbased_always_on",
            Self::ParentBased(Root::AlwaysOff) => "parentbased_always_off",
            Self::ParentBased(Root::TraceIdRatio(_)) => "parentbased_traceidratio",
        }
    }

    /// Whether a span of `trace_id` with a parent whose flags are `parent` (`None` for a
    /// root) is sampled.
    pub fn should_sample(&self, trace_id: TraceId, parent: Option<TraceFlags>) -> bool {
        match (self, parent) {
            (Self::AlwaysOn, _) => true,
            (Self::AlwaysOff, _) => false,
            (Self::TraceIdRatio(r), _) => ratio(trace_id, *r),
            (Self::ParentBased(_), Some(flags)) => flags.is_sampled(),
            (Self::ParentBased(Root::AlwaysOn), None) => true,
            (Self::ParentBased(Root::AlwaysOff), None) => false,
            (Self::ParentBased(Root::TraceIdRatio(r)), None) => ratio(trace_id, *r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_based_follows_the_parent_and_roots_use_the_root_sampler() {
        let id = TraceId::from_bytes([7; 16]);
        let s = Sampler::default();
        assert_eq!(s.name(), "parentbased_always_on");
        assert!(s.should_sample(id, None));
        assert!(!s.should_sample(id, Some(TraceFlags::NONE)));
        assert!(s.should_sample(id, Some(TraceFlags::SAMPLED)));
        let off = Sampler::ParentBased(Root::AlwaysOff);
        assert!(!off.should_sample(id, None));
        assert!(off.should_sample(id, Some(TraceFlags::SAMPLED)));
        assert!(Sampler::AlwaysOn.should_sample(id, Some(TraceFlags::NONE)));
        assert!(!Sampler::AlwaysOff.should_sample(id, Some(TraceFlags::SAMPLED)));
    }

    #[test]
    fn the_ratio_keeps_its_fraction_by_trace_id() {
        let n = 20_000;
        let kept = (0..n)
            .filter(|_| Sampler::TraceIdRatio(0.25).should_sample(TraceId::random(), None))
            .count();
        let expected = n as f64 * 0.25;
        // 99.99% binomial interval: ±3.9 σ, σ = √(n p (1-p)) ≈ 61.
        assert!((kept as f64 - expected).abs() < 240.0, "{kept}");
        let id = TraceId::random();
        let r = Sampler::TraceIdRatio(0.5);
        assert_eq!(r.should_sample(id, None), r.should_sample(id, None));
        assert!(!Sampler::TraceIdRatio(0.0).should_sample(id, None));
        assert!(Sampler::TraceIdRatio(1.0).should_sample(id, None));
        // The lower 8 bytes decide: the same in every SDK.
        let low = TraceId::from_bytes([
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1,
        ]);
        assert!(Sampler::TraceIdRatio(0.001).should_sample(low, None));
    }
}
