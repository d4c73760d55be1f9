#!/usr/bin/env bash
# Runs every test of the workspace: doc tests, then unit, integration and example tests.
# This is the README's test command; CI (.ci/run) calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything the tests talk to, installed when missing (scripts/install-test-deps.sh
# lists it; VIDPERF_TEST_NO_INSTALL=1 skips installing, and the tests that need a
# missing tool then fail naming it).
scripts/install-test-deps.sh
export VIDPERF_REQUIRE_PROMTOOL=1 VIDPERF_REQUIRE_ROTEL=1 VIDPERF_REQUIRE_TOOLS=1

# Examples are run by tests/pipeline_example.rs; benches must keep building.
cargo build --locked --workspace --all-targets --all-features

# vidperf-macros is a proc-macro crate whose docs live (and are tested) in vidperf.
cargo test --locked --workspace --exclude vidperf-macros --all-features --doc

# The resource monitor's park/wake handshake, model-checked with loom (its own target
# dir: `--cfg loom` rebuilds the dependencies).
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --locked --release -p vidperf-sampler --no-default-features --lib gate

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --all-features --no-fail-fast
else
    echo "cargo-nextest not found; running the tests with cargo test" >&2
    cargo test --locked --workspace --all-features --no-fail-fast --lib --tests --examples
fi
