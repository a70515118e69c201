#!/usr/bin/env bash
# Shapes per hour of `hisdf batch` on a GPU machine, packed against one at a
# time, in one run: the 15 meshes of data/meshes and data/meshes/quality
# twice plus the fox and the gear a third time (32 shapes) with the default
# `--pack auto`, and the fox and the gear with `--pack 1`; `detail` preset,
# 512^3 sparse extraction, every metric. Samples nvidia-smi every 0.5 s for
# the GPU's busy fraction. Prints a table (shapes per hour, GPU busy, mean
# seconds per stage) and every shape's Chamfer and Hausdorff.
#   bench/train/throughput.sh OUT
# Environment: HISDF (the binary; target/release/hisdf), EXTRA (more
# `hisdf batch` options, e.g. --keep-unconverged to keep and measure every
# model), LIMIT (seconds for the packed run, default 900).
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="$1"; mkdir -p "$out"
bin="${HISDF:-$here/target/release/hisdf}"
q="$here/data/meshes/quality"
list="$out/catalogue.txt"
: > "$list"
for _ in 1 2; do
    echo "$here/data/meshes/Fennec_Fox.stl" >> "$list"
    echo "$here/data/meshes/block-2x4.stl" >> "$list"
    for m in bracket bunny chain cup dragon gear grid_plate heatsink nut snowden spring suzanne torus_knot; do
        echo "$q/$m.ply" >> "$list"
    done
done
printf '%s\n%s\n' "$here/data/meshes/Fennec_Fox.stl" "$q/gear.ply" >> "$list"
printf '%s\n%s\n' "$here/data/meshes/Fennec_Fox.stl" "$q/gear.ply" > "$out/two.txt"
: > "$out/walls.txt"
run() { # name manifest time-limit batch-options...
    local name=$1 manifest=$2 limit=$3; shift 3
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 500 > "$out/util_$name.txt" &
    local sampler=$!
    local t0; t0=$(date +%s.%N)
    timeout "$limit" "$bin" batch "$manifest" -o "$out/$name" --preset detail --device cuda \
        --resolution 512 --sparse ${EXTRA:-} "$@" > "$out/$name.log" 2>&1
    echo "$name $? $(python3 -c "import time; print(round(time.time() - $t0, 1))")" >> "$out/walls.txt"
    kill "$sampler"
}
run alone "$out/two.txt" 120 --pack 1
run packed "$list" "${LIMIT:-900}"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
walls = {l.split()[0]: float(l.split()[2]) for l in open(f"{out}/walls.txt")}
print("| run | shapes ok | wall s | shapes / hour | GPU busy (mean utilisation) | per shape: load, sample, train, extract, eval s |")
print("|---|---|---|---|---|---|")
rows = {}
for name in ("alone", "packed"):
    path = f"{out}/{name}/results.json"
    if not os.path.exists(path):
        print(f"| {name} | no table | | | | |")
        continue
    rs = json.load(open(path))["results"]
    rows[name] = rs
    ok = [r for r in rs if r["status"] == "ok"]
    util = [float(x) for x in open(f"{out}/util_{name}.txt") if x.strip()]
    busy = sum(u > 0 for u in util) / max(len(util), 1)
    mean = sum(util) / max(len(util), 1)
    stages = ", ".join(f"{sum(r['seconds'][k] for r in ok) / max(len(ok), 1):.1f}"
                       for k in ("load", "sample", "train", "extract", "eval"))
    print(f"| {name} | {len(ok)}/{len(rs)} | {walls[name]:.1f} | {3600 * len(ok) / walls[name]:.0f} | {busy:.2f} ({mean:.0f}%) | {stages} |")
for name, rs in rows.items():
    for r in rs:
        m = r.get("metrics") or {}
        print(f"{name} {r['id']} {r['status']} CDx1e3 {m.get('chamfer', float('nan')) * 1e3:.4f} H {m.get('hausdorff', float('nan')):.4f} {(r.get('error') or '')[:80]}")
PY
