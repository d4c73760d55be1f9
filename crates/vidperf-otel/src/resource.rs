//! The resource every span and metric is reported under: `OTEL_RESOURCE_ATTRIBUTES`,
//! `service.name` from `OTEL_SERVICE_NAME`, and the SDK's own attributes.

/// `key=value,…` with `%XX` escapes decoded (the syntax was checked when the
/// configuration was read); items without a key are skipped.
pub(crate) fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|item| {
            let (k, v) = item.split_once('=')?;
            Some((k.trim().to_owned(), percent_decode(v.trim())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The resource's attributes, in order: `service.name` (`OTEL_SERVICE_NAME`, else the
/// one in `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:<executable>` as the
/// specification says), the `telemetry.sdk.*` attributes, then the rest of
/// `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn from_env() -> Vec<(String, String)> {
    let mut attributes = var("OTEL_RESOURCE_ATTRIBUTES")
        .map(|text| parse_pairs(&text))
        .unwrap_or_default();
    let from_list = attributes
        .iter()
        .position(|(k, _)| k == "service.name")
        .map(|i| attributes.remove(i).1);
    let service = var("OTEL_SERVICE_NAME").or(from_list).unwrap_or_else(|| {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        format!("unknown_service:{exe}")
    });
    let mut out = vec![
        ("service.name".to_owned(), service),
        ("telemetry.sdk.name".to_owned(), "vidperf".to_owned()),
        ("telemetry.sdk.language".to_owned(), "rust".to_owned()),
        (
            "telemetry.sdk.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ];
    attributes.retain(|(k, _)| !out.iter().any(|(o, _)| o == k));
    // The last value of a key given twice wins.
    let mut seen = std::collections::HashSet::new();
    let mut rest: Vec<(String, String)> = attributes
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    rest.reverse();
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_split_and_decoded() {
        assert_eq!(
            parse_pairs("api-key=a%2Cb, x = y ,=z,t=%4"),
            vec![
                ("api-key".to_owned(), "a,b".to_owned()),
                ("x".to_owned(), "y".to_owned()),
                ("t".to_owned(), "%4".to_owned()),
            ]
        );
    }
}
