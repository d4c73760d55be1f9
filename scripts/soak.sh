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

scripts/doc-section.py "$doc" soak "$out" "scripts/soak.sh${*:+ $*}"
echo "updated $doc"
