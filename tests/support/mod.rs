//! Shared by the integration tests that run example binaries.

use std::path::PathBuf;

/// The example binary `name` that `cargo test` / `cargo nextest run` built for this
/// run: `target/<profile>/examples/<name>-<hash>`, the newest one.
pub(crate) fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples");
    let suffix = std::env::consts::EXE_SUFFIX;
    let prefix = format!("{name}-");
    let newest = std::fs::read_dir(&dir)
        .expect("examples dir: build the examples first (cargo build --examples)")
        .filter_map(Result::ok)
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = file.strip_prefix(&prefix) else {
                return false;
            };
            let hash = rest.strip_suffix(suffix).unwrap_or(rest);
            (suffix.is_empty() || file.ends_with(suffix))
                && hash.chars().all(|c| c.is_ascii_hexdigit())
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    newest
        .unwrap_or_else(|| {
            panic!("no {name} example binary: build the examples first (cargo build --examples)")
        })
        .path()
}
