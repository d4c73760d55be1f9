#!/usr/bin/env bash
# Runs every test of the workspace: doc tests, then unit, integration and example tests.
# This is the README's test command; CI (.ci/run) calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

# Examples are run by tests/pipeline_example.rs; benches must keep building.
cargo build --locked --workspace --all-targets --all-features

# vidperf-macros is a proc-macro crate whose docs live (and are tested) in vidperf.
cargo test --locked --workspace --exclude vidperf-macros --all-features --doc

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --all-features --no-fail-fast
else
    echo "cargo-nextest not found; running the tests with cargo test" >&2
    cargo test --locked --workspace --all-features --no-fail-fast --lib --tests --examples
fi
