#!/usr/bin/env bash
# Soak run (not part of CI): 10,000 spans/s for 10 minutes against a real collector
# (rotel) that is killed every 40 s and restarted 20 s later; resident memory, threads
# and the export accounting every 30 s. Rewrites the soak section of
# docs/RELIABILITY.md. Arguments are passed to the soak binary, e.g.
# `scripts/soak.sh --minutes 2`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import rotel" >/dev/null 2>&1; then
    echo "installing rotel (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check rotel
fi

doc=docs/RELIABILITY.md
out=$(mktemp)
trap 'rm -f "$out"' EXIT

cargo bench --locked --bench soak -- "$@" | tee "$out"

python3 - "$doc" "$out" "$@" <<'PY'
import datetime, platform, subprocess, sys
doc, out = sys.argv[1], sys.argv[2]
text = open(doc).read()
start, end = "<!-- soak:start -->", "<!-- soak:end -->"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
header = f"Run {datetime.date.today()} on {cpu} ({cores} cores) with `scripts/soak.sh {' '.join(sys.argv[3:])}`.\n\n"
body = header + open(out).read().strip() + "\n"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
open(doc, "w").write(before + start + "\n" + body + end + after)
PY
echo "updated $doc"
