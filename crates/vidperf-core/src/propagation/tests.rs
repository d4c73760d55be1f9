//! Every rule of W3C Trace Context Level 2 the extractor and injector follow, one case
//! per rule with its section (and the conformance suite's test where it has one).

use super::*;

const T: &str = "12345678901234567890123456789012";
const P: &str = "1234567890123456";

/// What extraction must give.
#[derive(Debug)]
enum Expect {
    /// The trace continues: this trace id, the flags as they propagate, this state.
    Continue(&'static str, u8, &'static str),
    /// No valid traceparent: a new trace (and the state dropped).
    Restart,
}
use Expect::{Continue, Restart};

/// A rule, the header lines sent, what extraction gives.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Expect,
);

const CASES: &[Case] = &[
    ("4 no traceparent", &[], Restart),
    (
        "3.2 valid, sampled",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )],
        Continue(T, 1, ""),
    ),
    (
        "3.2 valid, not sampled",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-00",
        )],
        Continue(T, 0, ""),
    ),
    (
        "3.2.2.5.2 the random flag propagates (test_propagates_random_flag)",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-02",
        )],
        Continue(T, 2, ""),
    ),
    (
        "3.2.2.5.3 other flags are zeroed",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-ff",
        )],
        Continue(T, 3, ""),
    ),
    (
        "RFC 9110 5.3 two traceparent lines (test_traceparent_duplicated)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789011-1234567890123456-01",
            ),
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
        ],
        Restart,
    ),
    (
        "3.2.1 another header name (test_traceparent_header_name)",
        &[(
            "trace-parent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.1 another header name",
        &[(
            "trace.parent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.1 any case (test_traceparent_header_name_valid_casing)",
        &[(
            "TrAcEpArEnT",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )],
        Continue(T, 1, ""),
    ),
    (
        "3.2.1 any case",
        &[(
            "TRACEPARENT",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )],
        Continue(T, 1, ""),
    ),
    (
        "3.2.2.2 version 00 is 55 characters (test_traceparent_version_0x00)",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01.",
        )],
        Restart,
    ),
    (
        "3.2.2.2 version 00 has no more fields",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        )],
        Restart,
    ),
    (
        "3.2.4 a higher version parses by the 00 prefix (test_traceparent_version_0xcc)",
        &[(
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01",
        )],
        Continue(T, 1, ""),
    ),
    (
        "3.2.4 a higher version's extra fields are ignored",
        &[(
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        )],
        Continue(T, 1, ""),
    ),
    (
        "3.2.4 a higher version's extra field follows a dash",
        &[(
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
        )],
        Restart,
    ),
    (
        "3.2.4 a higher version still forbids zero ids",
        &[(
            "traceparent",
            "cc-00000000000000000000000000000000-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.1 version ff is forbidden (test_traceparent_version_0xff)",
        &[(
            "traceparent",
            "ff-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.1 version is hex (test_traceparent_version_illegal_characters)",
        &[(
            "traceparent",
            ".0-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.1 version is lowercase hex",
        &[(
            "traceparent",
            "0A-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.1 version is two digits (test_traceparent_version_too_long)",
        &[(
            "traceparent",
            "000-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.1 version is two digits (test_traceparent_version_too_short)",
        &[(
            "traceparent",
            "0-12345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.3 all-zero trace id (test_traceparent_trace_id_all_zero)",
        &[(
            "traceparent",
            "00-00000000000000000000000000000000-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.3 trace id is hex (test_traceparent_trace_id_illegal_characters)",
        &[(
            "traceparent",
            "00-.2345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.3 trace id is lowercase hex",
        &[(
            "traceparent",
            "00-1234567890123456789012345678901A-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.3 no sign in a trace id",
        &[(
            "traceparent",
            "00-+2345678901234567890123456789012-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.3 trace id too long",
        &[(
            "traceparent",
            "00-123456789012345678901234567890123-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.3 trace id too short",
        &[(
            "traceparent",
            "00-1234567890123456789012345678901-1234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.4 all-zero parent id (test_traceparent_parent_id_all_zero)",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-0000000000000000-01",
        )],
        Restart,
    ),
    (
        "3.2.2.4 parent id is hex",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-123456789012345.-01",
        )],
        Restart,
    ),
    (
        "3.2.2.4 parent id is lowercase hex",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-123456789012345F-01",
        )],
        Restart,
    ),
    (
        "3.2.2.4 no sign in a parent id",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-+234567890123456-01",
        )],
        Restart,
    ),
    (
        "3.2.2.4 parent id too long",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-12345678901234567-01",
        )],
        Restart,
    ),
    (
        "3.2.2.4 parent id too short",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-123456789012345-01",
        )],
        Restart,
    ),
    (
        "3.2.2.5 flags are hex (test_traceparent_trace_flags_illegal_characters)",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-.0",
        )],
        Restart,
    ),
    (
        "3.2.2.5 no sign in the flags",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-+1",
        )],
        Restart,
    ),
    (
        "3.2.2.5 flags are lowercase hex",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-0A",
        )],
        Restart,
    ),
    (
        "3.2.2.5 flags too long",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-001",
        )],
        Restart,
    ),
    (
        "3.2.2.5 flags too short",
        &[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-1",
        )],
        Restart,
    ),
    (
        "RFC 9110 5.5 surrounding whitespace is optional (test_traceparent_ows_handling)",
        &[(
            "traceparent",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        )],
        Continue(T, 1, ""),
    ),
    (
        "4 tracestate without traceparent is discarded (test_tracestate_included_traceparent_missing)",
        &[("tracestate", "foo=1,bar=2")],
        Restart,
    ),
    (
        "3.3 tracestate with traceparent (test_tracestate_included_traceparent_included)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-00",
            ),
            ("tracestate", "foo=1,bar=2"),
        ],
        Continue(T, 0, "foo=1,bar=2"),
    ),
    (
        "3.3.1 tracestate header name (test_tracestate_header_name)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-00",
            ),
            ("trace-state", "foo=1"),
        ],
        Continue(T, 0, ""),
    ),
    (
        "3.3.1 tracestate in any case",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-00",
            ),
            ("TrAcEsTaTe", "foo=1"),
        ],
        Continue(T, 0, "foo=1"),
    ),
    (
        "3.3.2 empty tracestate lines (test_tracestate_empty_header)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-00",
            ),
            ("tracestate", ""),
            ("tracestate", "foo=1"),
        ],
        Continue(T, 0, "foo=1"),
    ),
    (
        "3.3.2 lines combined in order (test_tracestate_multiple_headers_different_keys)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-00",
            ),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ],
        Continue(T, 0, "foo=1,bar=2,rojo=1,congo=2,baz=3"),
    ),
    (
        "3.3.3 a key in two lines drops the state, keeps the parent (test_tracestate_duplicated_keys)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-00",
            ),
            ("tracestate", "foo=1"),
            ("tracestate", "foo=2"),
        ],
        Continue(T, 0, ""),
    ),
    (
        "3.3 an invalid state does not affect the parent (test_tracestate_key_illegal_characters)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
            ("tracestate", "foo =1"),
        ],
        Continue(T, 1, ""),
    ),
    (
        "3.3.2.2.1 Level 2 keys take @ (test_tracestate_key_illegal_vendor_format)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
            ("tracestate", "foo@=1,bar=2"),
        ],
        Continue(T, 1, "foo@=1,bar=2"),
    ),
    (
        "3.3.2.2.2 an invalid value drops the state (test_tracestate_value_illegal_characters)",
        &[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
            ("tracestate", "foo=bar=baz"),
        ],
        Continue(T, 1, ""),
    ),
];

#[test]
fn every_rule_of_the_processing_model() {
    for (rule, headers, expect) in CASES {
        let got = TraceContext::extract(*headers);
        match expect {
            Restart => assert!(got.is_none(), "§{rule}: {headers:?} gave {got:?}"),
            Continue(trace, flags, state) => {
                let got = got.unwrap_or_else(|| panic!("§{rule}: {headers:?} refused"));
                assert_eq!(got.trace_id.to_string(), *trace, "§{rule}");
                assert_eq!(got.span_id.to_string(), P, "§{rule}");
                assert_eq!(got.flags.bits(), *flags, "§{rule}");
                assert_eq!(got.state.header(), *state, "§{rule}");
                // §3.2.4: written as version 00, whatever was read.
                assert_eq!(
                    got.to_string(),
                    format!("00-{trace}-{P}-{flags:02x}"),
                    "§{rule}"
                );
            }
        }
    }
}

#[test]
fn a_header_map_carrier_reads_every_line_and_any_case() {
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("TRACEPARENT".into(), format!("00-{T}-{P}-01"));
    map.insert("TraceState".into(), "a=1".into());
    let cx = TraceContext::extract(&map).expect("valid");
    assert_eq!(cx.state.header(), "a=1");
    // Injection replaces the fields whatever their case, and removes a stale state.
    let child = TraceContext::new(cx.trace_id, SpanId::from_bytes([9; 8]), cx.flags);
    child.inject(&mut map);
    assert_eq!(map.len(), 1, "{map:?}");
    assert_eq!(map["traceparent"], format!("00-{T}-0909090909090909-01"));
    let mut lines: Vec<(String, String)> = vec![("x".into(), "y".into())];
    cx.inject(&mut lines);
    assert_eq!(
        lines,
        vec![
            ("x".to_owned(), "y".to_owned()),
            ("traceparent".to_owned(), format!("00-{T}-{P}-01")),
            ("tracestate".to_owned(), "a=1".to_owned()),
        ]
    );
}

#[cfg(feature = "http")]
#[test]
fn http_header_maps_are_carriers() {
    let mut headers = http::HeaderMap::new();
    headers.append(
        "traceparent",
        format!("00-{T}-{P}-01").parse().expect("value"),
    );
    headers.append("tracestate", "a=1".parse().expect("value"));
    headers.append("tracestate", "b=2".parse().expect("value"));
    let cx = TraceContext::extract(&headers).expect("valid");
    assert_eq!(cx.state.header(), "a=1,b=2");
    headers.append(
        "traceparent",
        format!("00-{T}-{P}-01").parse().expect("value"),
    );
    assert!(TraceContext::extract(&headers).is_none(), "two lines");
    let mut out = http::HeaderMap::new();
    cx.inject(&mut out);
    assert_eq!(out["tracestate"], "a=1,b=2");
}
