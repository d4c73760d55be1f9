#!/usr/bin/env bash
# Renders docs/top.png, the README's picture of `vidperf top`, from a real capture: the
# example pipeline serves its API with the fake GPU (95% of its memory used) and an
# alert rule, `vidperf top` runs in a 100×30 tmux pane, `capture-pane -e` takes the
# screen with its colours, and headless Chromium draws that text as a PNG.
#
#   scripts/top-screenshot.sh [OUT.png]      (default docs/top.png)
#
# Needs what scripts/install-test-deps.sh installs (tmux, chromium, a C compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/top.png}")
work=$(mktemp -d)
socket="vidperf-shot-$$"
cleanup() {
    tmux -L "$socket" kill-server 2>/dev/null || true
    [ -n "${pipeline:-}" ] && kill "$pipeline" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build -q --release --example pipeline -p vidperf
cargo build -q --release -p vidperf-cli
cargo build -q --release -p vidperf-fake-nvml
fake=$(find target/release/build -name libnvidia-ml.so -path '*fake-nvml*' | head -1)

cat > "$work/alerts.toml" <<'EOF'
evaluation_interval = "1s"
[[rule]]
name = "SeedVR2Slow"
metric = "duration_p95"
above = 0.3
window = "1m"
min_samples = 3
strategy = "seedvr2"
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
VIDPERF_NVML_LIBRARY="$fake" FAKE_NVML_MEMORY_TOTAL=$((80 << 30)) FAKE_NVML_MEMORY_USED=$((76 << 30)) \
    FAKE_NVML_UTILIZATION=87 FAKE_NVML_DECODER_UTILIZATION=41 FAKE_NVML_ENCODER_UTILIZATION=23 \
    FAKE_NVML_POWER_WATTS=412 VIDPERF_ALERT_RULES="$work/alerts.toml" \
    target/release/examples/pipeline --serve "127.0.0.1:$port" --duration 120 --workers 3 \
    --export-dir "$work/export" >/dev/null 2>&1 &
pipeline=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

tmux -L "$socket" -f /dev/null new-session -d -s top -x 100 -y 30 \
    "env -u NO_COLOR TERM=xterm-256color target/release/vidperf top http://127.0.0.1:$port; sleep 60" \; \
    set-option -t top status off
sleep 25
tmux -L "$socket" capture-pane -p -e -t top > "$work/screen.ansi"

python3 - "$work/screen.ansi" "$work/screen.html" <<'EOF'
import html, re, sys
BASE = ["#1e1e1e", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
        "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"]
def c256(n):
    if n < 16: return BASE[n]
    if n >= 232: v = 8 + (n - 232) * 10; return f"#{v:02x}{v:02x}{v:02x}"
    n -= 16; r, g, b = n // 36, n // 6 % 6, n % 6
    f = lambda x: 0 if x == 0 else 55 + 40 * x
    return f"#{f(r):02x}{f(g):02x}{f(b):02x}"
FG, BG = "#d4d4d4", "#1e1e1e"
out = []
for line in open(sys.argv[1], encoding="utf-8").read().rstrip("\n").split("\n"):
    fg = bg = None; bold = rev = False; row = []
    for part in re.split(r"(\x1b\[[0-9;]*m)", line):
        m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
        if m:
            codes = [int(c) if c else 0 for c in m.group(1).split(";")]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0: fg = bg = None; bold = rev = False
                elif c == 1: bold = True
                elif c == 22: bold = False
                elif c == 7: rev = True
                elif c == 27: rev = False
                elif 30 <= c <= 37: fg = BASE[c - 30]
                elif 90 <= c <= 97: fg = BASE[c - 82]
                elif c == 39: fg = None
                elif 40 <= c <= 47: bg = BASE[c - 40]
                elif 100 <= c <= 107: bg = BASE[c - 92]
                elif c == 49: bg = None
                elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                    if c == 38: fg = c256(codes[i + 2])
                    else: bg = c256(codes[i + 2])
                    i += 2
                i += 1
            continue
        if not part: continue
        f, b = fg or FG, bg or BG
        if rev: f, b = b, f
        style = f"color:{f};background:{b};" + ("font-weight:bold;" if bold else "")
        row.append(f'<span style="{style}">{html.escape(part)}</span>')
    out.append("".join(row))
page = ("<!doctype html><meta charset=utf-8><body style='margin:0;background:%s'>"
        "<pre style='margin:0;padding:12px;font:15px/1.25 \"DejaVu Sans Mono\",monospace;color:%s'>%s</pre>"
        % (BG, FG, "\n".join(out)))
open(sys.argv[2], "w", encoding="utf-8").write(page)
EOF

chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=950,600 \
    --screenshot="$out" "file://$work/screen.html" >/dev/null 2>&1
echo "wrote $out"
