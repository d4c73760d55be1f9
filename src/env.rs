//! Reading the environment: every variable is text (UTF-8, or a build error naming
//! it), and an empty value counts as unset, as OpenTelemetry's variables do.

use crate::error::BuildError;

/// The value of `var`, `None` when unset or empty (only blanks); a build error when it
/// is not UTF-8.
pub(crate) fn env_text(var: &'static str) -> Result<Option<String>, BuildError> {
    match std::env::var(var) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(BuildError::InvalidEnv {
            var,
            value: raw.to_string_lossy().into_owned(),
            expected: "UTF-8 text",
        }),
    }
}

/// An on/off switch in `var`: `on`, `true`, `1` or `off`, `false`, `0` (any case);
/// `None` when unset or empty, a build error for anything else.
pub(crate) fn env_switch(var: &'static str) -> Result<Option<bool>, BuildError> {
    let Some(value) = env_text(var)? else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(Some(true)),
        "off" | "false" | "0" => Ok(Some(false)),
        _ => Err(BuildError::InvalidEnv {
            var,
            value,
            expected: "on, off, true, false, 1 or 0",
        }),
    }
}

/// The whole number in `var`, `None` when unset or empty; a build error when malformed.
pub(crate) fn env_number(var: &'static str) -> Result<Option<usize>, BuildError> {
    match env_text(var)? {
        None => Ok(None),
        Some(value) => match value.trim().parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(BuildError::InvalidEnv {
                var,
                value,
                expected: "a non-negative whole number",
            }),
        },
    }
}
