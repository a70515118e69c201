#!/usr/bin/env bash
# Training-step benchmark on a GPU machine, all in one run on the same
# samples: hisdf's step in each precision beside the PyTorch peers (the
# paper's eager loop, and the whole step in a CUDA graph with fused
# capturable Adam in TF32 and under bf16 autocast), 8 x 512, batch 10,000,
# curriculum loss. Prints one JSON line per implementation, then a table.
#   bench/train/run.sh MESH [ITERATIONS]
# Needs target/release/examples/bench_train (cargo build --release --examples)
# or BENCH_TRAIN pointing to it, and python3 with torch + numpy.
# PRECISIONS lists hisdf's precisions to time (default "bf16 tf32 fp32").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mesh="$1"; it="${2:-15000}"
bin="${BENCH_TRAIN:-$here/../../target/release/examples/bench_train}"
samples="$(mktemp --suffix .npy)"
results="$(mktemp)"
trap 'rm -f "$samples" "$results"' EXIT
for p in ${PRECISIONS:-bf16 tf32 fp32}; do
    "$bin" "$mesh" "$samples" --iterations "$it" --precision "$p" | tail -1 | tee -a "$results"
done
python3 "$here/torch_graph.py" "$samples" --iterations "$it" --bf16 | tail -1 | tee -a "$results"
python3 "$here/torch_graph.py" "$samples" --iterations "$it" | tail -1 | tee -a "$results"
python3 "$here/torch_reference.py" "$samples" --iterations "$it" | tail -1 | tee -a "$results"
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = next(r for r in rows if r["impl"].endswith("bf16") and r["impl"].startswith("hisdf"))
print(f"\n| implementation | ms / step | total s | final loss | step time / hisdf bf16 |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['impl']} | {r['ms_per_iteration']:.3f} | {r['total_s']:.1f} | {r['final_loss']:.4e} | {r['ms_per_iteration'] / ours['ms_per_iteration']:.2f}x |")
print(f"\n{rows[0]['iterations']} iterations on {rows[0]['device']}")
EOF
