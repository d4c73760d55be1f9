//! The W3C `traceparent` header (Trace Context Level 2, §3.2): parsed as the spec's
//! processing model says, written as version `00`.

use std::fmt;

use crate::ids::{SpanId, TraceId};

/// The trace flags a `traceparent` carries. Only the flags Level 2 defines are kept —
/// [`SAMPLED`](Self::SAMPLED) and [`RANDOM`](Self::RANDOM); the others are zeroed
/// (§3.2.2.5.3).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// No flag set: not sampled, trace id not known to be random.
    pub const NONE: Self = Self(0);
    /// Bit 0: the caller may have recorded the trace (§3.2.2.5.1).
    pub const SAMPLED: Self = Self(0x01);
    /// Bit 1: the right-most 7 bytes of the trace id are random (§3.2.2.5.2).
    pub const RANDOM: Self = Self(0x02);

    /// The flags of a header byte, the undefined bits dropped.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0x03)
    }

    /// The byte written in a `traceparent`.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether the sampled flag is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }

    /// Whether the random trace id flag is set.
    pub const fn is_random(self) -> bool {
        self.0 & Self::RANDOM.0 != 0
    }

    /// These flags with the sampled flag set to `sampled`.
    #[must_use]
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            Self(self.0 | Self::SAMPLED.0)
        } else {
            Self(self.0 & !Self::SAMPLED.0)
        }
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

/// A `traceparent` the processing model refuses: the caller starts a new trace and
/// drops the `tracestate` (§4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent {value:?}: {reason}")]
pub struct ParseTraceParentError {
    value: String,
    reason: &'static str,
}

impl ParseTraceParentError {
    pub(crate) fn new(value: &str, reason: &'static str) -> Self {
        Self {
            value: value.chars().take(64).collect(),
            reason,
        }
    }

    /// Which rule the header broke.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// `len` lowercase hex digits (no sign, no uppercase: §3.2.2 `HEXDIGLC`).
fn lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses a `traceparent` value (spaces and tabs around it are optional whitespace):
/// version `00` exactly 55 characters; a higher version (`01`–`fe`) by the version-00
/// prefix, what follows it either nothing or a `-` and ignored (§3.2.4); ids lowercase
/// hex and not all zeros; flags two lowercase hex digits, the undefined bits dropped.
pub(crate) fn parse(value: &str) -> Result<(TraceId, SpanId, TraceFlags), ParseTraceParentError> {
    let bad = |reason| ParseTraceParentError::new(value, reason);
    let v = value.trim_matches(|c| c == ' ' || c == '\t');
    let bytes = v.as_bytes();
    if bytes.len() < 55 || !v.is_ascii() {
        return Err(bad("expected 00-<32 hex>-<16 hex>-<2 hex> (55 characters)"));
    }
    let version = &v[..2];
    if !lower_hex(version) || bytes[2] != b'-' {
        return Err(bad(
            "the version is not two lowercase hex digits and a dash",
        ));
    }
    match version {
        "ff" => return Err(bad("version ff is forbidden")),
        "00" if bytes.len() != 55 => {
            return Err(bad("version 00 is exactly 55 characters"));
        }
        "00" => {}
        // A higher version: the version-00 fields, then nothing or a dash.
        _ if bytes.len() > 55 && bytes[55] != b'-' => {
            return Err(bad("a field after the flags must follow a dash"));
        }
        _ => {}
    }
    if bytes[35] != b'-' || bytes[52] != b'-' {
        return Err(bad("expected 00-<32 hex>-<16 hex>-<2 hex>"));
    }
    let (trace, span, flags) = (&v[3..35], &v[36..52], &v[53..55]);
    if !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
        return Err(bad("ids and flags are lowercase hex digits"));
    }
    let trace_id = TraceId::from_hex(trace).ok_or_else(|| bad("the trace id is all zeros"))?;
    let span_id = SpanId::from_hex(span).ok_or_else(|| bad("the parent id is all zeros"))?;
    let flags = u8::from_str_radix(flags, 16).map_err(|_| bad("the flags are not hex"))?;
    Ok((trace_id, span_id, TraceFlags::from_bits(flags)))
}

/// The version-00 header for these ids and flags.
pub(crate) fn format(
    f: &mut fmt::Formatter<'_>,
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
) -> fmt::Result {
    write!(f, "00-{trace_id}-{span_id}-{:02x}", flags.bits())
}
