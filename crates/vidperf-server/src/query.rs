//! Strict query-string parsing: known keys only, each at most once.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// The parameters of a query string, validated against `known` keys.
pub(crate) fn parse(
    raw: Option<&str>,
    known: &[&'static str],
) -> Result<BTreeMap<&'static str, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let Some(name) = known.iter().find(|k| **k == key) else {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown query parameter {key:?}"),
            )
            .accepting(known));
        };
        if out.insert(*name, value.into_owned()).is_some() {
            return Err(ApiError::bad_request(
                "repeated_parameter",
                format!("query parameter {name:?} given more than once"),
            )
            .accepting(known));
        }
    }
    Ok(out)
}

/// A duration written as a number and a unit, `ms`, `s`, `m` or `h` (`500ms`, `30s`,
/// `1.5m`, `1h`); `None` for anything else.
pub(crate) fn duration(text: &str) -> Option<std::time::Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    std::time::Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration;

    #[test]
    fn durations_are_parsed_strictly() {
        assert_eq!(duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        for bad in [
            "abc", "5", "m", "5 m", "5min", "-5m", ".5m", "5.m", "1e3s", "5m5s", "",
        ] {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
    }
}
