#!/usr/bin/env bash
# Training benchmark on a GPU machine: hisdf's loop (CUDA graph with and
# without TF32) and the PyTorch eager reference on the same samples.
#   bench/train/run.sh MESH [ITERATIONS]
# Needs target/release/examples/bench_train (cargo build --release --examples)
# or BENCH_TRAIN pointing to it, and python3 with torch + numpy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mesh="$1"; it="${2:-15000}"
bin="${BENCH_TRAIN:-$here/../../target/release/examples/bench_train}"
samples="$(mktemp --suffix .npy)"
"$bin" "$mesh" "$samples" --iterations "$it" --tf32 | tail -1
"$bin" "$mesh" "$samples" --iterations "$it" | tail -1
python3 "$here/torch_reference.py" "$samples" --iterations "$it" | tail -1
python3 "$here/torch_reference.py" "$samples" --iterations "$it" --tf32 | tail -1
rm -f "$samples"
