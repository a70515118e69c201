#!/usr/bin/env bash
# Dense 512^3 and sparse 1024^3 (and 2048^3) extraction of a trained 8x512
# network, timed by the CLI itself (`hisdf extract` prints a timings line).
#
#   bench/extract_timings.sh [MODEL.safetensors] [DEVICE]
#
# Without a model, trains one with the paper-l1 preset (8 x 512) on the
# bundled lego brick first (GPU: minutes; CPU: far longer). DEVICE defaults to
# auto (CUDA when present). Meshes go to out/bench-extract/.
set -euo pipefail
cd "$(dirname "$0")/.."
device="${2:-auto}"
mkdir -p out/bench-extract
scripts/cargo build --release --quiet
bin=target/release/hisdf
model="${1:-out/bench-extract/model-8x512.safetensors}"
if [ ! -f "$model" ]; then
    "$bin" train data/meshes/block-2x4.stl -o "$model" --preset paper-l1 --device "$device"
fi
"$bin" extract "$model" -o out/bench-extract/dense-512.ply --resolution 512 --device "$device"
"$bin" extract "$model" -o out/bench-extract/sparse-512.ply --resolution 512 --sparse --device "$device"
"$bin" extract "$model" -o out/bench-extract/sparse-1024.ply --resolution 1024 --sparse --device "$device"
"$bin" extract "$model" -o out/bench-extract/sparse-2048.ply --resolution 2048 --sparse --device "$device"
# Same network, same grid: the sparse mesh should match the dense one.
"$bin" eval out/bench-extract/dense-512.ply out/bench-extract/sparse-512.ply
