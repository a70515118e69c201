#!/usr/bin/env bash
# What each training precision reaches on real shapes (GPU machine): for
# every mesh and precision, `hisdf run` with the given preset (512^3 sparse
# extraction, fp32 evaluation) and `hisdf eval` against the mesh; prints a
# table of training seconds, point-to-mesh Chamfer (x10^3), H99 and H max.
#   bench/train/precision.sh OUT_FOLDER MESH... 
# Environment: HISDF (the binary; target/release/hisdf), PRECISIONS
# ("tf32 bf16"), PRESET (detail), EXTRA (more `hisdf run` options).
set -euo pipefail
out="$1"; shift
bin="${HISDF:-$(dirname "$0")/../../target/release/hisdf}"
mkdir -p "$out"
rows="$out/rows.jsonl"
: > "$rows"
for mesh in "$@"; do
    id="$(basename "${mesh%.*}")"
    for p in ${PRECISIONS:-tf32 bf16}; do
        obj="$out/$id-$p.obj"
        start=$(date +%s.%N)
        if "$bin" run "$mesh" -o "$obj" --preset "${PRESET:-detail}" --precision "$p" \
            --resolution 512 --sparse --device cuda ${EXTRA:-} > "$out/$id-$p.log" 2>&1; then
            wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
            # Sampling plus training, from the run's "stages:" line.
            train_s=$(python3 -c "import re,sys; m=re.search(r'sample ([0-9.]+) s, train ([0-9.]+) s', open(sys.argv[1]).read()); print(float(m[1])+float(m[2]) if m else 'nan')" "$out/$id-$p.log")
            "$bin" eval "$mesh" "$obj" --json > "$out/$id-$p.json"
            python3 - "$out/$id-$p.json" "$id" "$p" "$wall" "$train_s" >> "$rows" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(json.dumps({"shape": sys.argv[2], "precision": sys.argv[3], "wall_s": float(sys.argv[4]),
                  "sample_train_s": float(sys.argv[5]),
                  "p2m": m["chamfer_point_to_mesh"] * 1e3,
                  "h99": max(m["hausdorff_p99_ref_to_other"], m["hausdorff_p99_other_to_ref"]),
                  "hmax": m["hausdorff"]}))
EOF
        else
            echo "{\"shape\": \"$id\", \"precision\": \"$p\", \"failed\": $(tail -1 "$out/$id-$p.log" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" >> "$rows"
        fi
    done
done
python3 - "$rows" <<'EOF'
import json, sys
print("\n| shape | precision | sample+train s | run s | p2m CD x10^3 | H99 | H max |")
print("|---|---|---|---|---|---|---|")
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "failed" in r:
        print(f"| {r['shape']} | {r['precision']} | failed: {r['failed'][:80]} | | | | |")
    else:
        print(f"| {r['shape']} | {r['precision']} | {r['sample_train_s']:.1f} | {r['wall_s']:.1f} | {r['p2m']:.5f} | {r['h99']:.4f} | {r['hmax']:.4f} |")
EOF
