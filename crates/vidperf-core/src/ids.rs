//! Trace and span identifiers, compatible with OpenTelemetry and W3C Trace Context.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A 16-byte trace identifier, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An 8-byte span identifier, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// The trace id from its big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The big-endian bytes.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Parses 32 lowercase or uppercase hex digits; `None` for anything else (a sign
    /// included) or all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = u128::from_str_radix(hex, 16).ok().filter(|v| *v != 0)?;
        (hex.len() == 32).then(|| Self(value.to_be_bytes()))
    }

    pub(crate) fn random() -> Self {
        let high = u128::from(next_random());
        let low = u128::from(next_random());
        Self(((high << 64) | low).to_be_bytes())
    }
}

impl SpanId {
    /// The span id from its big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The big-endian bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// Parses 16 hex digits; `None` for anything else (a sign included) or all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = u64::from_str_radix(hex, 16).ok().filter(|v| *v != 0)?;
        (hex.len() == 16).then(|| Self(value.to_be_bytes()))
    }

    pub(crate) fn random() -> Self {
        Self(next_random().to_be_bytes())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", u128::from_be_bytes(self.0))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", u64::from_be_bytes(self.0))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState is seeded per process by the OS; mixing in the thread gives every
    // thread its own stream.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    std::hash::Hash::hash(&std::thread::current().id(), &mut hasher);
    hasher.finish() | 1
}

/// A non-zero pseudo-random u64 (splitmix64 over a per-thread state). Ids need
/// uniqueness, not secrecy; this costs a few nanoseconds and never allocates.
fn next_random() -> u64 {
    RNG.with(|state| {
        loop {
            let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(next);
            let mut z = next;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let trace = TraceId::random();
        assert_eq!(TraceId::from_hex(&trace.to_string()), Some(trace));
        let span = SpanId::random();
        assert_eq!(SpanId::from_hex(&span.to_string()), Some(span));
        assert_eq!(SpanId::from_hex("0000000000000000"), None);
        assert_eq!(SpanId::from_hex("00000000000000001"), None);
        assert_eq!(TraceId::from_hex("xyz"), None);
    }

    #[test]
    fn ids_are_distinct_across_threads() {
        let mut ids: Vec<SpanId> = (0..4)
            .map(|_| std::thread::spawn(|| (0..1000).map(|_| SpanId::random()).collect::<Vec<_>>()))
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
