#!/usr/bin/env bash
# Checks vidperf's GPU figures against a real NVIDIA GPU (examples/gpu_check.rs): known
# allocations of 1 GiB and 4 GiB and a ~200 ms busy kernel inside operations, reported
# next to what is known. Needs the NVIDIA driver (libcuda.so.1, libnvidia-ml.so.1); no
# CUDA toolkit. Exit 0: every memory figure within ±5%; 1: one is not; 2: no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null || true
exec cargo run --locked --release --example gpu_check -- "$@"
