//! The Prometheus text formats: the classic exposition format (0.0.4) and OpenMetrics
//! 1.0, which adds exemplars to histogram buckets.

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use super::{Exemplar, Family, Kind, Metrics, Point, Value, prometheus_label};

/// The content type of [`encode_prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of [`encode_openmetrics`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics in the Prometheus text format 0.0.4 (no exemplars).
pub fn encode_prometheus(metrics: &Metrics) -> String {
    encode(metrics, false)
}

/// The metrics in the OpenMetrics 1.0 text format, histogram buckets with their
/// exemplars (the trace and span of a recent operation in the bucket).
pub fn encode_openmetrics(metrics: &Metrics) -> String {
    let mut out = encode(metrics, true);
    out.push_str("# EOF\n");
    out
}

fn encode(metrics: &Metrics, openmetrics: bool) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for family in &metrics.families {
        if !family.points.is_empty() {
            write_family(&mut out, family, openmetrics);
        }
    }
    out
}

fn write_family(out: &mut String, family: &Family, openmetrics: bool) {
    let name = family.def.prometheus_name();
    let kind = match family.def.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    // OpenMetrics names a counter family without its `_total` (the sample keeps it).
    let family_name = match (openmetrics, family.def.kind) {
        (true, Kind::Counter) => name.strip_suffix("_total").unwrap_or(&name),
        _ => &name,
    };
    let _ = writeln!(out, "# HELP {family_name} {}", escape_help(family.def.help));
    let _ = writeln!(out, "# TYPE {family_name} {kind}");
    for point in &family.points {
        match &point.value {
            Value::Number(v) => sample(out, &name, point, None, *v, None),
            Value::Histogram(h) => {
                let bucket = format!("{name}_bucket");
                for (i, (le, n)) in h.cumulative().enumerate() {
                    let exemplar = openmetrics
                        .then(|| {
                            let upper = if i < h.bounds.len() {
                                h.bounds[i]
                            } else {
                                f64::INFINITY
                            };
                            let lower = if i == 0 {
                                f64::NEG_INFINITY
                            } else {
                                h.bounds[i - 1]
                            };
                            h.exemplars
                                .iter()
                                .find(|e| e.value > lower && e.value <= upper)
                        })
                        .flatten();
                    sample(out, &bucket, point, Some(le), n as f64, exemplar);
                }
                sample(out, &format!("{name}_sum"), point, None, h.sum, None);
                sample(
                    out,
                    &format!("{name}_count"),
                    point,
                    None,
                    h.count as f64,
                    None,
                );
            }
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    point: &Point,
    le: Option<f64>,
    value: f64,
    exemplar: Option<&Exemplar>,
) {
    out.push_str(name);
    if !point.attributes.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in &point.attributes {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{}=\"{}\"", prometheus_label(k), escape_label(v));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{}\"", number(le));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&number(value));
    if let Some(e) = exemplar {
        let trace: String = e.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        let span: String = e.span_id.iter().map(|b| format!("{b:02x}")).collect();
        let at = e
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = write!(
            out,
            " # {{trace_id=\"{trace}\",span_id=\"{span}\"}} {} {at:.3}",
            number(e.value)
        );
    }
    out.push('\n');
}

/// A number as both formats read it.
fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else if v.is_nan() {
        "NaN".to_owned()
    } else {
        v.to_string()
    }
}

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::{FamilyDef, HistogramValue};
    use super::*;

    fn metrics() -> Metrics {
        let mut counter = Family::new(FamilyDef::new("a.b", "{x}", Kind::Counter, "A \\ b\nc."));
        counter.push(vec![("vidperf.strategy", "se\"ed\\vr2\n".into())], 3.0);
        let mut histogram = Family::new(FamilyDef::new("h", "s", Kind::Histogram, "H."));
        let mut h = HistogramValue::new(&[0.5, 1.0], vec![1, 2, 0], 3, 2.25);
        h.exemplars.push(Exemplar::new(
            0.75,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_500),
            [0xab; 16],
            [0xcd; 8],
        ));
        histogram
            .points
            .push(Point::new(vec![("k", "v".into())], Value::Histogram(h)));
        Metrics::new(
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH,
            vec![counter, histogram],
        )
    }

    #[test]
    fn the_classic_format_escapes_and_accumulates() {
        let text = encode_prometheus(&metrics());
        assert_eq!(
            text,
            "# HELP a_b_total A \\\\ b\\nc.\n# TYPE a_b_total counter\n\
             a_b_total{vidperf_strategy=\"se\\\"ed\\\\vr2\\n\"} 3\n\
             # HELP h_seconds H.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{k=\"v\",le=\"0.5\"} 1\n\
             h_seconds_bucket{k=\"v\",le=\"1\"} 3\n\
             h_seconds_bucket{k=\"v\",le=\"+Inf\"} 3\n\
             h_seconds_sum{k=\"v\"} 2.25\nh_seconds_count{k=\"v\"} 3\n"
        );
    }

    #[test]
    fn openmetrics_carries_exemplars_on_their_bucket_and_ends_with_eof() {
        let text = encode_openmetrics(&metrics());
        assert!(text.contains("# TYPE a_b counter\n"), "{text}");
        assert!(text.contains(
            "h_seconds_bucket{k=\"v\",le=\"1\"} 3 # {trace_id=\"abababababababababababababababab\",span_id=\"cdcdcdcdcdcdcdcd\"} 0.75 1.500\n"
        ), "{text}");
        assert!(
            text.contains("h_seconds_bucket{k=\"v\",le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
