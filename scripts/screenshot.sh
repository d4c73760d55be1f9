#!/usr/bin/env bash
# Refreshes docs/dashboard.png: runs the dashboard browser test with a minute of traffic
# before the picture (the test itself writes only to the temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
VIDPERF_SCREENSHOT_AFTER_SECS=${VIDPERF_SCREENSHOT_AFTER_SECS:-45} VIDPERF_REQUIRE_TOOLS=1 \
    cargo nextest run --locked --all-features -E 'binary(dashboard)' --no-capture
cp "${TMPDIR:-/tmp}/vidperf-dashboard.png" docs/dashboard.png
echo "updated docs/dashboard.png"
