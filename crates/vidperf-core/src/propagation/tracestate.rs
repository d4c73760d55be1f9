//! [`TraceState`]: the W3C `tracestate` header — vendors' entries that travel with the
//! trace (Trace Context Level 2, §3.3).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The most entries a `tracestate` holds (§3.3.2.1).
pub const MAX_ENTRIES: usize = 32;
/// The combined header length propagated in full (§3.3.3.1); a longer one is cut by
/// whole entries when injected: entries over [`LONG_ENTRY`] characters first, then
/// from the right.
pub const MAX_HEADER_LEN: usize = 512;
/// Entries longer than this are the first removed when the header is too long.
pub const LONG_ENTRY: usize = 128;

/// The W3C `tracestate`: up to 32 `key=value` entries, left to right from the most
/// recently changed. Cheap to clone (shared), immutable: every change returns a new
/// state. Empty by default.
///
/// ```
/// use vidperf_core::propagation::TraceState;
///
/// let state: TraceState = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".parse()?;
/// let state = state.insert("congo", "ucfJifl5GOE")?;
/// assert_eq!(state.to_string(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
/// assert_eq!(state.get("rojo"), Some("00f067aa0ba902b7"));
/// # Ok::<(), vidperf_core::propagation::TraceStateError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(Option<Arc<Inner>>);

#[derive(PartialEq, Eq, Hash)]
struct Inner {
    entries: Vec<(Box<str>, Box<str>)>,
    header: Box<str>,
}

/// Why a `tracestate` (or an entry) was refused. A header with any invalid member is
/// discarded whole (§3.3.2: "vendors MAY discard the entire header"; what the
/// conformance suite expects).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceStateError {
    /// A key outside the grammar: a lowercase letter or a digit, then up to 255 of
    /// `a-z 0-9 _ - * / @` (Level 2, §3.3.2.2.1).
    #[error(
        "invalid tracestate key {0:?}: expected a lowercase letter or digit, then up to 255 of a-z 0-9 _ - * / @"
    )]
    Key(String),
    /// A value outside the grammar: 1 to 256 printable ASCII characters except `,` and
    /// `=`, not ending in a space (§3.3.2.2.2).
    #[error(
        "invalid tracestate value for {key:?}: expected 1 to 256 printable ASCII characters except , and =, not ending in a space"
    )]
    Value {
        /// The entry's key.
        key: String,
    },
    /// A member without `=`.
    #[error("invalid tracestate member {0:?}: expected key=value")]
    Member(String),
    /// The same key twice (§3.3.3).
    #[error("tracestate key {0:?} appears twice")]
    Duplicate(String),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("tracestate has {0} entries, at most 32 are allowed")]
    TooMany(usize),
}

/// `a-z 0-9 _ - * / @`, the characters after a key's first.
fn key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@')
}

/// Whether `key` is a Level 2 key.
pub(crate) fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.len() <= 256
        && bytes.iter().all(|b| key_char(*b))
}

/// Whether `value` is a valid value: printable ASCII but `,` and `=`, 1–256 long, the
/// last not a space.
pub(crate) fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes
            .iter()
            .all(|b| matches!(b, 0x20..=0x7e) && *b != b',' && *b != b'=')
        && bytes.last() != Some(&b' ')
}

fn ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl TraceState {
    /// The empty state.
    pub const fn new() -> Self {
        Self(None)
    }

    fn from_entries(entries: Vec<(Box<str>, Box<str>)>) -> Self {
        if entries.is_empty() {
            return Self(None);
        }
        let mut header = String::new();
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(k);
            header.push('=');
            header.push_str(v);
        }
        Self(Some(Arc::new(Inner {
            entries,
            header: header.into(),
        })))
    }

    /// Parses a combined header value (several `tracestate` field lines joined with
    /// `,`, as RFC 9110 §5.3 combines them). Empty members and the spaces and tabs
    /// around members are ignored; leading spaces inside a value are kept. Any invalid
    /// member, a duplicate key or more than 32 entries refuse the whole header.
    pub fn parse(header: &str) -> Result<Self, TraceStateError> {
        let mut entries: Vec<(Box<str>, Box<str>)> = Vec::new();
        for raw in header.split(',') {
            let member = raw.trim_matches(ows);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member
                .split_once('=')
                .ok_or_else(|| TraceStateError::Member(short(member)))?;
            if !valid_key(key) {
                return Err(TraceStateError::Key(short(key)));
            }
            if !valid_value(value) {
                return Err(TraceStateError::Value { key: short(key) });
            }
            if entries.iter().any(|(k, _)| &**k == key) {
                return Err(TraceStateError::Duplicate(short(key)));
            }
            entries.push((key.into(), value.into()));
        }
        if entries.len() > MAX_ENTRIES {
            return Err(TraceStateError::TooMany(entries.len()));
        }
        Ok(Self::from_entries(entries))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The state with `key` set to `value`, moved to the front (§3.5: a modified key moves
    /// to the left; adding never duplicates a key). When that makes 33 entries the
    /// right-most is removed.
    pub fn insert(&self, key: &str, value: &str) -> Result<Self, TraceStateError> {
        if !valid_key(key) {
            return Err(TraceStateError::Key(short(key)));
        }
        if !valid_value(value) {
            return Err(TraceStateError::Value { key: short(key) });
        }
        let mut entries: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(self.len() + 1);
        entries.push((key.into(), value.into()));
        entries.extend(
            self.iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, v)| (k.into(), v.into())),
        );
        entries.truncate(MAX_ENTRIES);
        Ok(Self::from_entries(entries))
    }

    /// The state without `key`.
    #[must_use]
    pub fn remove(&self, key: &str) -> Self {
        if self.get(key).is_none() {
            return self.clone();
        }
        Self::from_entries(
            self.iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The entries, left to right.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|inner| inner.entries.iter())
            .map(|(k, v)| (&**k, &**v))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |inner| inner.entries.len())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The header value (`k=v,k=v`, no spaces); empty for the empty state.
    pub fn header(&self) -> &str {
        self.0.as_ref().map_or("", |inner| &inner.header)
    }

    /// The header as propagated: whole, when at most [`MAX_HEADER_LEN`] characters;
    /// otherwise cut by whole entries, those over [`LONG_ENTRY`] characters first, then
    /// from the right, until it fits (§3.3.3.1).
    pub fn propagated(&self) -> std::borrow::Cow<'_, str> {
        let header = self.header();
        if header.len() <= MAX_HEADER_LEN {
            return header.into();
        }
        let mut kept: Vec<(&str, &str)> = self
            .iter()
            .filter(|(k, v)| k.len() + 1 + v.len() <= LONG_ENTRY)
            .collect();
        let len = |kept: &[(&str, &str)]| {
            kept.iter()
                .map(|(k, v)| k.len() + 1 + v.len())
                .sum::<usize>()
                + kept.len().saturating_sub(1)
        };
        while len(&kept) > MAX_HEADER_LEN {
            kept.pop();
        }
        kept.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
            .into()
    }
}

/// The first 64 characters, for an error message.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header())
    }
}

impl FromStr for TraceState {
    type Err = TraceStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each case: (the spec's section, input, Some(output) or None when refused).
    const CASES: &[(&str, &str, Option<&str>)] = &[
        ("3.3.2 empty header accepted", "", Some("")),
        ("3.3.2 empty members ignored", ",,foo=1,, ,", Some("foo=1")),
        (
            "3.3.2 OWS around members ignored",
            "foo=1 \t , \t bar=2,\t baz=3",
            Some("foo=1,bar=2,baz=3"),
        ),
        (
            "3.3.2.2.2 leading spaces of a value kept",
            "foo= 1",
            Some("foo= 1"),
        ),
        (
            "3.3.2.2.2 trailing spaces are OWS",
            "foo=1  ",
            Some("foo=1"),
        ),
        (
            "3.3.2.2.1 key may start with a digit",
            "0foo=1",
            Some("0foo=1"),
        ),
        (
            "3.3.2 one invalid member refuses the header",
            "foo@=1,@=2",
            None,
        ),
        (
            "3.3.2.2.1 @ anywhere after the first",
            "foo@=1,f@@b@z=2",
            Some("foo@=1,f@@b@z=2"),
        ),
        ("3.3.2.2.1 key may not start with @", "@foo=1", None),
        ("3.3.2.2.1 uppercase key", "FOO=1", None),
        ("3.3.2.2.1 space inside a key", "foo =1", None),
        ("3.3.2.2.1 dot in a key", "foo.bar=1", None),
        ("3.3.2.2.2 = in a value", "foo=bar=baz", None),
        ("3.3.2.2.2 empty value", "foo=,bar=3", None),
        ("3.3.2.2.2 tab in a value", "foo=a\tb", None),
        ("3.3.2.2.2 non-ASCII value", "foo=é", None),
        ("3.3.2 member without =", "foo", None),
        ("3.3.3 duplicate key", "foo=1,foo=2", None),
        ("3.3.3 duplicate key, same value", "foo=1,foo=1", None),
    ];

    #[test]
    fn every_rule_of_the_grammar() {
        for (section, input, expected) in CASES {
            let parsed = TraceState::parse(input);
            match expected {
                Some(out) => assert_eq!(
                    parsed.as_ref().map(TraceState::header).ok(),
                    Some(*out),
                    "§{section}: {input:?} → {parsed:?}"
                ),
                None => assert!(
                    parsed.is_err(),
                    "§{section}: {input:?} accepted as {parsed:?}"
                ),
            }
        }
    }

    #[test]
    fn keys_and_values_at_their_length_limits() {
        let key256 = "z".repeat(256);
        assert!(
            TraceState::parse(&format!("{key256}=1")).is_ok(),
            "§3.3.2.2.1: 256"
        );
        assert!(
            TraceState::parse(&format!("z{key256}=1")).is_err(),
            "§3.3.2.2.1: 257"
        );
        let value256 = "v".repeat(256);
        assert!(
            TraceState::parse(&format!("k={value256}")).is_ok(),
            "§3.3.2.2.2: 256"
        );
        assert!(
            TraceState::parse(&format!("k=v{value256}")).is_err(),
            "§3.3.2.2.2: 257"
        );
        let all_chars: String = (0x20u8..=0x7e)
            .filter(|b| *b != b',' && *b != b'=')
            .map(char::from)
            .collect();
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let state =
            TraceState::parse(&format!("{key}={all_chars}")).expect("every allowed character");
        assert_eq!(state.get(key), Some(all_chars.as_str()));
    }

    #[test]
    fn thirty_two_entries_at_most() {
        let members = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            TraceState::parse(&members(32)).map(|s| s.len()),
            Ok(32),
            "§3.3.2.1"
        );
        assert_eq!(
            TraceState::parse(&members(33)),
            Err(TraceStateError::TooMany(33)),
            "§3.3.2.1"
        );
        // Adding a 33rd entry removes the right-most (§3.3.2.1).
        let full = TraceState::parse(&members(32)).expect("32");
        let added = full.insert("new", "1").expect("insert");
        assert_eq!(added.len(), 32);
        assert_eq!(added.iter().next(), Some(("new", "1")));
        assert_eq!(added.get("bar32"), None);
    }

    #[test]
    fn a_changed_key_moves_to_the_front_and_is_never_duplicated() {
        let state = TraceState::parse("rojo=1,congo=2,baz=3").expect("valid");
        let changed = state.insert("congo", "9").expect("insert");
        assert_eq!(changed.header(), "congo=9,rojo=1,baz=3", "§3.5");
        assert_eq!(changed.remove("rojo").header(), "congo=9,baz=3");
        assert_eq!(state.header(), "rojo=1,congo=2,baz=3", "immutable");
        assert!(state.insert("BAD", "1").is_err());
        assert!(state.insert("ok", "a,b").is_err());
    }

    #[test]
    fn a_long_header_is_cut_by_whole_entries_long_ones_first() {
        let long = format!("long={}", "x".repeat(200));
        let short: Vec<String> = (0..40)
            .map(|i| format!("k{i:02}={}", "y".repeat(20)))
            .collect();
        let header = std::iter::once(long)
            .chain(short.iter().take(31).cloned())
            .collect::<Vec<_>>()
            .join(",");
        let state = TraceState::parse(&header).expect("valid");
        assert!(state.header().len() > MAX_HEADER_LEN);
        let cut = state.propagated();
        assert!(cut.len() <= MAX_HEADER_LEN, "{}", cut.len());
        assert!(
            !cut.contains("long="),
            "the long entry goes first (§3.3.3.1)"
        );
        assert!(cut.starts_with("k00="), "then from the right: {cut}");
        assert!(TraceState::parse(&cut).is_ok());
        let small = TraceState::parse("a=1").expect("valid");
        assert_eq!(small.propagated(), "a=1");
    }
}
