#!/usr/bin/env bash
# Runs the benchmarks and rewrites their tables in docs/BENCHMARKS.md.
# Takes a few minutes; run it on an otherwise idle machine when you can.
set -euo pipefail
cd "$(dirname "$0")/.."

doc=docs/BENCHMARKS.md
table=$(mktemp)
trap 'rm -f "$table"' EXIT

cargo bench --locked --bench overhead -- --markdown > "$table"

scripts/doc-section.py "$doc" overhead "$table" scripts/bench.sh

cargo bench --locked -p vidperf-watch --bench evaluate > "$table"
scripts/doc-section.py "$doc" alerts "$table" "cargo bench -p vidperf-watch --bench evaluate"
echo "updated $doc"
