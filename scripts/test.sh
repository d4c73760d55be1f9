#!/usr/bin/env bash
# Runs every test of the workspace: doc tests, then unit, integration and example tests.
# This is the README's test command; CI (.ci/run) calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

# The fake libnvidia-ml.so used by the GPU tests is C, compiled by
# crates/fake-nvml/build.rs: it needs a C compiler.
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    echo "installing a C compiler for the fake NVML library" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q && $sudo apt-get install -y -q gcc libc6-dev
fi

# tests/http.rs lints the live /metrics page with promtool (Debian package
# `prometheus`); here it is required, not skipped.
if ! command -v promtool >/dev/null 2>&1; then
    echo "installing promtool (Debian package prometheus)" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus
fi
export VIDPERF_REQUIRE_PROMTOOL=1

# tests/otlp.rs exports to a real collector: rotel, whose PyPI wheel carries the
# rotel-agent binary.
if ! python3 -c "import rotel" >/dev/null 2>&1; then
    echo "installing rotel (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check rotel
fi
export VIDPERF_REQUIRE_ROTEL=1

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
