#!/usr/bin/env bash
# Installs what the tests talk to, when it is missing (Debian/Ubuntu, as root or with
# sudo; rotel with pip):
#
#   gcc, libc6-dev           the fake libnvidia-ml.so and NVTX tool, compiled from C
#   prometheus               promtool (lints /metrics, tests the alert rules) and the
#                            Prometheus server the fleet test scrapes three workers with
#   prometheus-alertmanager  the Alertmanager the alerting test delivers to
#   chromium, chromium-driver  the browser the dashboard test drives over WebDriver
#   tmux                     the real terminal `vidperf top`'s test types into and reads
#   rotel (pip)              the OTLP collector of the export tests
#   cargo-nextest (cargo)    the test runner (built from crates.io, about 10 minutes on
#                            2 cores; once per machine)
#   otelcol-vidperf, jaeger  the OpenTelemetry Collector and Jaeger v2 of tests/otelcol.rs,
#   (go build)               built from tools/ with Go and the module proxy (below)
#
# VIDPERF_TEST_NO_INSTALL=1 installs nothing: the tests that need a missing tool then
# fail with a message naming it.
set -euo pipefail

if [ "${VIDPERF_TEST_NO_INSTALL:-}" = 1 ]; then
    echo "VIDPERF_TEST_NO_INSTALL=1: installing nothing" >&2
    exit 0
fi

if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi

missing=()
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)" >&2
    # Packages with services (prometheus, prometheus-alertmanager) are not started: the
    # tests run their own on loopback ports.
    if [ -z "$sudo" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! python3 -c "import rotel" >/dev/null 2>&1; then
    echo "installing rotel (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check rotel
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest (cargo install, once per machine)" >&2
    cargo install --locked --quiet cargo-nextest@0.9.151
fi

# The OpenTelemetry Collector (a distribution of exactly the components the shipped
# configs and the tests use, tools/otelcol) and Jaeger v2 (tools/jaeger), built with Go
# from the module proxy at the versions their go.mod pins, once per version: each is
# kept under the user's cache directory, keyed by a hash of its module files, and linked
# as $cache/vidperf/bin/{otelcol-vidperf,jaeger}, where the tests look. About 9 and 12
# minutes on a fresh 2-core machine; nothing when the cache holds them.
go_peer() { # name, module dir, package
    local name=$1 dir=$2 package=$3
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/vidperf"
    local key
    key=$(find "$dir" -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
        | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
    local built="$cache/go-peers/$name-$key/$name"
    mkdir -p "$cache/bin"
    if [ ! -x "$built" ]; then
        if ! command -v go >/dev/null 2>&1; then
            echo "go not found: cannot build $name (install Go 1.26 or newer)" >&2
            return 1
        fi
        echo "building $name from $dir with go (once per version)" >&2
        mkdir -p "$(dirname "$built")"
        (cd "$dir" && GOFLAGS=-buildvcs=false go build -trimpath -o "$built.tmp" "$package")
        mv "$built.tmp" "$built"
    fi
    ln -sfn "$built" "$cache/bin/$name"
}
root="$(cd "$(dirname "$0")/.." && pwd)"
go_peer otelcol-vidperf "$root/tools/otelcol" .
go_peer jaeger "$root/tools/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
