#!/usr/bin/env bash
# Runs the benchmarks and rewrites their tables in docs/BENCHMARKS.md.
# Takes a few minutes; run it on an otherwise idle machine when you can.
set -euo pipefail
cd "$(dirname "$0")/.."

doc=docs/BENCHMARKS.md
table=$(mktemp)
trap 'rm -f "$table"' EXIT

cargo bench --locked --bench overhead -- --markdown > "$table"

python3 - "$doc" "$table" <<'PY'
import datetime, platform, subprocess, sys
doc, table = sys.argv[1], sys.argv[2]
text = open(doc).read()
start, end = "<!-- overhead:start -->", "<!-- overhead:end -->"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
header = f"Measured {datetime.date.today()} on {cpu} ({cores} cores), {rustc}, with `scripts/bench.sh`.\n\n"
body = header + open(table).read().strip() + "\n"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
open(doc, "w").write(before + start + "\n" + body + end + after)
PY
echo "updated $doc"
