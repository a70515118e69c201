#!/usr/bin/env python3
"""Checks hisdf's Chamfer and EMD against an independent computation.

    python3 bench/check_metrics.py [REFERENCE_MESH OTHER_MESH]

Runs examples/metrics_check.rs, which writes the exact samples behind
`hisdf eval` (in the reference's unit-sphere frame) and our values; then
recomputes the Chamfer distance with scipy's cKDTree and the EMD with scipy's
linear_sum_assignment (both in float64) and compares to 1e-6 relative. Also
times cKDTree on the 100k-point Chamfer beside ours. Exit status 1 on a
mismatch. Uses bench/.venv-mc (created by bench/mc_vs_skimage.py or here).
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-mc")
PY = os.path.join(VENV, "bin", "python")

CHECK = r"""
import json, sys, time
import numpy as np
from scipy.spatial import cKDTree, distance_matrix
from scipy.optimize import linear_sum_assignment
d, ours = sys.argv[1], json.loads(sys.argv[2])
load = lambda n: np.load(f"{d}/{n}.npy").astype(np.float64)
def chamfer(a, b):
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return np.mean(da ** 2) + np.mean(db ** 2)
cd = chamfer(load("chamfer_a"), load("chamfer_b"))
ea, eb = load("emd_a"), load("emd_b")
cost = distance_matrix(ea, eb)
r, c = linear_sum_assignment(cost)
emd_sum = cost[r, c].sum()
a, b = load("big_a"), load("big_b")
times = []
for _ in range(3):
    t = time.perf_counter(); big = chamfer(a, b); times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"chamfer": cd, "emd_sum": emd_sum, "chamfer_100k": big,
                  "chamfer_100k_median_s": times[1]}))
"""


def ensure_venv():
    if not os.path.exists(PY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    if subprocess.run([PY, "-c", "import scipy, numpy"], capture_output=True).returncode:
        subprocess.check_call([PY, "-m", "pip", "install", "-q", "scikit-image", "numpy", "scipy"])


def main():
    ensure_venv()
    out_dir = os.path.join(ROOT, "bench", "out", "metrics")
    cmd = [os.path.join(ROOT, "scripts", "cargo"), "run", "--release", "--quiet",
           "--example", "metrics_check", "--", out_dir] + sys.argv[1:3]
    line = [l for l in subprocess.check_output(cmd, cwd=ROOT, text=True).splitlines()
            if l.startswith("{")][-1]
    ours = json.loads(line)
    theirs = json.loads(subprocess.check_output([PY, "-c", CHECK, out_dir, line], text=True)
                        .strip().splitlines()[-1])
    ok = True
    print(f"{'metric':24} {'hisdf':>22} {'scipy':>22} {'rel. diff':>10}")
    for key in ["chamfer", "emd_sum", "chamfer_100k"]:
        a, b = ours[key], theirs[key]
        rel = abs(a - b) / max(abs(b), 1e-300)
        ok &= rel <= 1e-6
        print(f"{key:24} {a:22.15e} {b:22.15e} {rel:10.2e}")
    print(f"EMD mean over {ours['emd_points']} points: {ours['emd']:.6f}")
    print(f"Chamfer on 100k+100k points, median of 3: hisdf {ours['chamfer_100k_median_s']:.3f} s "
          f"({ours['threads']} threads), scipy cKDTree {theirs['chamfer_100k_median_s']:.3f} s (1 thread)")
    print("agree to 1e-6 relative" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
