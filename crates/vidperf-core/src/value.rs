//! Typed field values: integers stay integers, floats stay floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest string value kept, in bytes. Longer values are cut on a character
/// boundary and end with `…`, so one hostile field cannot grow memory without bound.
pub const MAX_STRING_VALUE_BYTES: usize = 1024;

/// A value recorded on an operation, kept with its type.
///
/// In JSON, numbers and booleans are written as such; a float that is not finite is
/// written as the string `"NaN"`, `"inf"` or `"-inf"` (JSON has no such numbers), so it
/// reads back as text.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer too large for `i64`.
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// Text (at most [`MAX_STRING_VALUE_BYTES`]).
    Str(String),
}

impl FieldValue {
    /// Text, cut to [`MAX_STRING_VALUE_BYTES`].
    pub fn text(value: &str) -> Self {
        Self::Str(truncate(value, MAX_STRING_VALUE_BYTES))
    }

    /// The value as an unsigned integer, when it is one (a non-negative integer, or
    /// a float with no fractional part).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::I64(v) => u64::try_from(v).ok(),
            Self::U64(v) => Some(v),
            Self::F64(v) if v.fract() == 0.0 && v >= 0.0 && v <= u64::MAX as f64 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as a float, when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::I64(v) => Some(v as f64),
            Self::U64(v) => Some(v as f64),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as text, when it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl Serialize for FieldValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bool(v) => s.serialize_bool(*v),
            Self::I64(v) => s.serialize_i64(*v),
            Self::U64(v) => s.serialize_u64(*v),
            Self::F64(v) if v.is_finite() => s.serialize_f64(*v),
            Self::F64(v) => s.collect_str(v),
            Self::Str(v) => s.serialize_str(v),
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(v) => v.fmt(f),
            Self::I64(v) => v.fmt(f),
            Self::U64(v) => v.fmt(f),
            Self::F64(v) => v.fmt(f),
            Self::Str(v) => v.fmt(f),
        }
    }
}

macro_rules! from_impls {
    ($($ty:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$ty> for FieldValue {
            fn from(v: $ty) -> Self {
                Self::$variant(<$as>::from(v))
            }
        })*
    };
}

from_impls!(
    bool => Bool as bool,
    i8 => I64 as i64, i16 => I64 as i64, i32 => I64 as i64, i64 => I64 as i64,
    u8 => I64 as i64, u16 => I64 as i64, u32 => I64 as i64,
    f32 => F64 as f64, f64 => F64 as f64,
);

impl From<u64> for FieldValue {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Self::U64(v), Self::I64)
    }
}

impl From<usize> for FieldValue {
    fn from(v: usize) -> Self {
        Self::from(v as u64)
    }
}

impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        Self::text(v)
    }
}

impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        if v.len() <= MAX_STRING_VALUE_BYTES {
            Self::Str(v)
        } else {
            Self::text(&v)
        }
    }
}

/// `value` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub(crate) fn truncate(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + '…'.len_utf8());
    out.push_str(&value[..end]);
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_keep_their_type() {
        assert_eq!(FieldValue::from(7u64), FieldValue::I64(7));
        assert_eq!(FieldValue::from(u64::MAX), FieldValue::U64(u64::MAX));
        assert_eq!(FieldValue::from(-3i32).as_u64(), None);
        assert_eq!(FieldValue::F64(12.0).as_u64(), Some(12));
        assert_eq!(FieldValue::F64(12.5).as_u64(), None);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_STRING_VALUE_BYTES);
        let FieldValue::Str(cut) = FieldValue::from(long.as_str()) else {
            panic!("text stays text");
        };
        assert!(cut.len() <= MAX_STRING_VALUE_BYTES);
        assert!(cut.ends_with('…'));
    }
}
