#!/usr/bin/env bash
# The real-run check of docs/REGRESSIONS.md: same-seed pairs of example-pipeline runs,
# one after the other on this machine, compared with `vidperf compare` at its defaults
# (each pair should exit 0), then a baseline against a run with `--slowdown
# seedvr2=1.5` (should exit 1 with only SeedVR2 flagged). Output goes to a temporary
# directory, removed at the end.
#
# Usage: scripts/regression-runs.sh [PAIRS] (default 10; CLIPS=300 clips a run)
#
# With BASELINES=K (K >= 2): RUNS same-seed runs one after the other (the argument,
# default 12), each run from the (K+1)-th on compared with the K runs before it as
# baselines (`vidperf compare B1 .. BK CURRENT`), and each run with the one before it
# alone for contrast; then a `--slowdown seedvr2=1.5` run against the last K.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-10}
clips=${CLIPS:-300}
baselines=${BASELINES:-0}

cargo build --release --locked -q --example pipeline
cargo build --release --locked -q -p vidperf-cli
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() {
    local out=$1
    shift
    target/release/examples/pipeline --clips "$clips" --seed 11 --export-dir "$out" "$@" >/dev/null
}

# compare BASELINE_DIR CURRENT_DIR OUT.json [vidperf compare flags…]: prints the exit status.
compare() {
    local a=$1 b=$2 out=$3
    shift 3
    set +e
    target/release/vidperf compare "$a/vidperf-export.json" "$b/vidperf-export.json" --format json "$@" >"$out"
    local code=$?
    set -e
    echo "$code"
}

summarise() {
    python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
cells = []
for p in doc["comparison"]["pairs"]:
    for f in p["figures"]:
        if f["figure"] in ("p50_duration", "p95_duration", "frame_time") and f["change"] is not None:
            name = {"p50_duration": "p50", "p95_duration": "p95", "frame_time": "per-frame"}[f["figure"]]
            cells.append(f'{p["operation_type"][:4]}/{p["strategy"]} {name} {100 * (f["change"] - 1):+.1f}%'
                         + (f' ({f["verdict"]})' if f["verdict"] in ("regressed", "improved") else ""))
print("    " + "; ".join(cells))
PY
}

if [ "$baselines" -ge 2 ]; then
    runs=${1:-12}
    exports() { for j in "$@"; do echo "$dir/r$j/vidperf-export.json"; done; }
    for i in $(seq 1 "$runs"); do
        run "$dir/r$i"
    done
    for i in $(seq $((baselines + 1)) "$runs"); do
        set +e
        target/release/vidperf compare $(exports $(seq $((i - baselines)) $((i - 1))) "$i") \
            --format json >"$dir/k$i.json"
        several=$?
        target/release/vidperf compare $(exports $((i - 1)) "$i") --format json >"$dir/o$i.json"
        one=$?
        set -e
        echo "run $i against runs $((i - baselines))..$((i - 1)): exit $several; against run $((i - 1)) alone: exit $one"
        summarise "$dir/o$i.json"
    done
    run "$dir/slow" --slowdown seedvr2=1.5
    set +e
    target/release/vidperf compare $(exports $(seq $((runs - baselines + 1)) "$runs")) \
        "$dir/slow/vidperf-export.json"
    echo "--slowdown seedvr2=1.5 against the last $baselines runs: exit $?"
    set -e
    exit 0
fi

for i in $(seq 1 "$pairs"); do
    run "$dir/a$i"
    run "$dir/b$i"
    code=$(compare "$dir/a$i" "$dir/b$i" "$dir/c$i.json")
    wide=$(compare "$dir/a$i" "$dir/b$i" "$dir/w$i.json" --noise 0.15)
    echo "same seed, pair $i: exit $code at the defaults, $wide with --noise 0.15"
    summarise "$dir/c$i.json"
done
run "$dir/base"
run "$dir/slow" --slowdown seedvr2=1.5
code=$(compare "$dir/base" "$dir/slow" "$dir/slow.json")
wide=$(compare "$dir/base" "$dir/slow" "$dir/slow-wide.json" --noise 0.15)
echo "--slowdown seedvr2=1.5: exit $code at the defaults, $wide with --noise 0.15"
summarise "$dir/slow.json"
target/release/vidperf compare "$dir/base/vidperf-export.json" "$dir/slow/vidperf-export.json" || true
target/release/vidperf compare "$dir/base/vidperf-export.json" "$dir/slow/vidperf-export.json" --noise 0.15 || true
