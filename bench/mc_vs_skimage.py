#!/usr/bin/env python3
"""Our marching cubes beside scikit-image's, on the same SDF grids, from one run.

    python3 bench/mc_vs_skimage.py [N]      (default N = 512)

Creates bench/.venv-mc with scikit-image, numpy and scipy on first use, runs
examples/bench_marching_cubes.rs (which times ours and saves each grid as
.npy), then times skimage.measure.marching_cubes(level=0) on the very same
.npy. Medians: ours over 5 runs, scikit-image over 3. Note that scikit-image
is single-threaded and also returns normals and values; ours uses every core.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-mc")
PY = os.path.join(VENV, "bin", "python")


def ensure_venv():
    if not os.path.exists(PY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([PY, "-c", "import skimage, numpy, scipy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([PY, "-m", "pip", "install", "-q", "scikit-image", "numpy", "scipy"])


def time_skimage(npy):
    code = r"""
import json, sys, time
import numpy as np
from skimage.measure import marching_cubes
vol = np.load(sys.argv[1])
times = []
for _ in range(3):
    t = time.perf_counter()
    v, f, _, _ = marching_cubes(vol, level=0.0)
    times.append(time.perf_counter() - t)
times.sort()
import skimage
print(json.dumps({"median_s": times[1], "vertices": len(v), "triangles": len(f),
                  "version": skimage.__version__}))
"""
    out = subprocess.check_output([PY, "-c", code, npy], text=True)
    return json.loads(out.strip().splitlines()[-1])


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    ensure_venv()
    out_dir = os.path.join(ROOT, "bench", "out")
    ours = subprocess.check_output(
        [os.path.join(ROOT, "scripts", "cargo"), "run", "--release", "--quiet",
         "--example", "bench_marching_cubes", "--", str(n), out_dir],
        cwd=ROOT, text=True)
    rows = [json.loads(l) for l in ours.splitlines() if l.startswith("{")]
    print(f"marching cubes on {n}^3 SDF grids ({(n - 1) ** 3 / 1e6:.0f} M voxels), medians")
    print(f"{'field':8} {'ours s':>8} {'ours Mvox/s':>12} {'skimage s':>10} {'skimage Mvox/s':>15} "
          f"{'speed-up':>9} {'ours tris':>10} {'skimage tris':>13}")
    for r in rows:
        s = time_skimage(r["npy"])
        voxels = (n - 1) ** 3
        print(f"{r['field']:8} {r['median_s']:8.3f} {r['mvoxels_per_s']:12.0f} {s['median_s']:10.3f} "
              f"{voxels / s['median_s'] / 1e6:15.0f} {s['median_s'] / r['median_s']:8.1f}x "
              f"{r['triangles']:10d} {s['triangles']:13d}")
        os.remove(r["npy"])
    print(f"(ours: {rows[0]['threads']} threads; scikit-image {s['version']}: one thread)")


if __name__ == "__main__":
    main()
