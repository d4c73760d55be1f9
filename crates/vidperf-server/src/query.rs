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
