#!/usr/bin/env bash
# Batched-training benchmark on a GPU machine, all in one run on the same
# samples: hisdf training K networks of one shape at once (seeds 0..K-1, one
# batched step) beside the PyTorch peer that stacks the K networks' weights
# and captures the whole step in a CUDA graph with fused Adam
# (torch_batched.py), 8 x 512, batch 10,000 per network, curriculum loss.
# Prints one JSON line per run, then a table of ms per shape-step.
#   bench/train/batched.sh MESH [ITERATIONS] ["K ..."]
# Needs target/release/examples/bench_train (or BENCH_TRAIN) and python3
# with torch + numpy. PRECISION is hisdf's precision (default bf16; the
# peer then runs under bf16 autocast, else in TF32).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mesh="$1"; it="${2:-3000}"; ks="${3:-1 4 8 16 32}"
precision="${PRECISION:-bf16}"
bin="${BENCH_TRAIN:-$here/../../target/release/examples/bench_train}"
samples="$(mktemp --suffix .npy)"
results="$(mktemp)"
trap 'rm -f "$samples" "$results"' EXIT
peer=()
[ "$precision" = bf16 ] && peer=(--bf16)
for k in $ks; do
    "$bin" "$mesh" "$samples" --iterations "$it" --precision "$precision" --models "$k" | tail -1 | tee -a "$results"
    python3 "$here/torch_batched.py" "$samples" --iterations "$it" --models "$k" "${peer[@]}" | tail -1 | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ks = sorted({r["models"] for r in rows})
print("\n| K | hisdf ms / iteration | hisdf ms / shape-step | PyTorch ms / shape-step | PyTorch / hisdf | hisdf final loss | PyTorch final loss |")
print("|---|---|---|---|---|---|---|")
for k in ks:
    ours = next(r for r in rows if r["models"] == k and r["impl"].startswith("hisdf"))
    peer = next(r for r in rows if r["models"] == k and r["impl"].startswith("pytorch"))
    print(f"| {k} | {ours['ms_per_iteration']:.3f} | {ours['ms_per_shape_step']:.3f} | {peer['ms_per_shape_step']:.3f} | "
          f"{peer['ms_per_shape_step'] / ours['ms_per_shape_step']:.2f}x | {ours['final_loss']:.3e} | {peer['final_loss']:.3e} |")
print(f"\n{rows[0]['iterations']} iterations on {rows[0]['device']}")
PY
