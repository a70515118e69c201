"""Peer signed distances for bench_sdf: libigl (exact winding-number sign)
and Open3D (RaycastingScene), on the points the Rust side wrote.

Usage: peers.py DIR REPEATS. Reads DIR/V.npy (float64 vertices), DIR/F.npy
(int32 triangles) and DIR/P.npy (float32 points); writes DIR/S_igl.npy
(float64), DIR/S_o3d.npy (float32) and DIR/times.json (median seconds of the
query alone; building Open3D's scene is timed apart, as ours is; wall-clock
and process CPU seconds, the latter less disturbed by other load on a shared
machine).
"""
import json
import statistics
import sys
import time

import igl
import numpy as np
import open3d as o3d


def median_time(fn, repeats):
    """Median wall-clock seconds, median CPU seconds, last result."""
    times, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(times), statistics.median(cpus), out


def main():
    d, repeats = sys.argv[1], int(sys.argv[2])
    V = np.load(f"{d}/V.npy").astype(np.float64)
    F = np.load(f"{d}/F.npy").astype(np.int64)
    P = np.load(f"{d}/P.npy")
    P64 = P.astype(np.float64)

    # libigl: exact generalized winding number for the sign (the reference),
    # one repeat only: it is by far the slowest of the three.
    t_igl, _, (s_igl, _, _, _) = median_time(
        lambda: igl.signed_distance(
            P64, V, F, sign_type=igl.SIGNED_DISTANCE_TYPE_WINDING_NUMBER
        ),
        1,
    )

    t_build, c_build = time.perf_counter(), time.process_time()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32))
    )
    t_build = time.perf_counter() - t_build
    c_build = time.process_time() - c_build
    q = o3d.core.Tensor(P.astype(np.float32))
    t_o3d, c_o3d, s_o3d = median_time(
        lambda: scene.compute_signed_distance(q).numpy(), repeats
    )

    np.save(f"{d}/S_igl.npy", np.ascontiguousarray(s_igl, dtype=np.float64))
    np.save(f"{d}/S_o3d.npy", np.ascontiguousarray(s_o3d, dtype=np.float32))
    with open(f"{d}/times.json", "w") as f:
        json.dump(
            {
                "igl": t_igl,
                "o3d": t_o3d,
                "o3d_build": t_build,
                "o3d_cpu": c_o3d,
                "o3d_build_cpu": c_build,
                "igl_version": "libigl " + getattr(igl, "__version__", "2.6"),
                "o3d_version": "open3d " + o3d.__version__,
            },
            f,
        )


if __name__ == "__main__":
    main()
