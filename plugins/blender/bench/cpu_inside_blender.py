#!/usr/bin/python3
"""CPU training inside Blender against the same lines in a plain Python and
against the CLI (issue 22 item 1), side by side from one run:

    /usr/bin/python3 plugins/blender/bench/cpu_inside_blender.py [--runs 3]
        [--iterations 300] [--mesh data/meshes/block-2x4.stl]
        [--library target/release/libhisdf.so] [--blender blender]
        [--python /usr/bin/python3] [--bpy-python /tmp/bpy45/bin/python]

Each run trains the `fast` preset on the CPU once per side, the sides taking
turns so that a busy machine slows all of them alike. The Python and Blender
sides run the same lines (this file as a workload, `--workload`) and time
the hisdf.train call (sampling, training, convergence check) by wall and
process CPU time (every thread), and its training phase from the first
progress report to the last. The CLI side is `hisdf train` as a whole
process (start-up, mesh loading and model writing included) with the
training time it prints. Prints the medians, the call's wall time over the
plain Python's and the training time over the CLI's (issue 22's bar: at
most 1.2). `--library` picks the libhisdf.so the binding loads
($HISDF_LIBRARY), e.g. an older build to compare with; the CLI is always
target/release/hisdf. Needs Blender on Python 3.11 (Debian's 3.4.1 is
/usr/bin/blender) and numpy in both Pythons. `--bpy-python` adds a fourth
side: a Python with the `bpy` wheel from PyPI (Blender 4.5 as a module,
`python3.11 -m venv V && V/bin/pip install "bpy==4.5.*" numpy`), which
imports bpy, and so loads Blender's libraries into the process, before the
same lines. Start it with the system
Python: a pyenv Python puts its own bin/ first on PATH, and Blender's Python
then misses Debian's dist-packages (numpy)."""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
MARK = "HISDF_BENCH "


def workload(mesh_path, iterations, import_bpy=False):
    """The lines a user's script would run, in whatever process runs this
    file; prints one JSON line. The training phase runs from the first
    progress report to the last (sampling before it, the convergence
    check after it), as the add-on's panel counts it."""
    if import_bpy:
        import bpy  # noqa: F401 - Blender's libraries first, as in Blender

    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import hisdf

    mesh = hisdf.Mesh.load(mesh_path)
    config = hisdf.Config("fast", iterations=iterations, device="cpu")
    reports = []

    def progress(_fraction):
        reports.append((time.monotonic(), time.process_time()))
        return True

    wall, cpu = time.monotonic(), time.process_time()
    try:
        hisdf.train(mesh, config, progress=progress).close()
        outcome = "converged"
    except hisdf.Error as e:
        # A short run may fail the convergence check; the work timed here
        # was done all the same (the CLI keeps such a model, as asked).
        if e.status != hisdf.Status.TRAINING_FAILED:
            raise
        outcome = "check failed"
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    print(MARK + json.dumps({
        "wall": wall, "cpu": cpu, "outcome": outcome,
        "train_wall": reports[-1][0] - reports[0][0],
        "train_cpu": reports[-1][1] - reports[0][1]}), flush=True)


def measured(command, env):
    """Runs a workload process; its JSON line."""
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise SystemExit("no result from %s (exit %d):\n%s%s"
                     % (" ".join(command), out.returncode, out.stdout[-3000:], out.stderr[-3000:]))


def cli(mesh_path, iterations, env):
    """`hisdf train` as a whole process: wall and CPU time (user + system
    of the child, all threads), and the training time it prints."""
    with tempfile.TemporaryDirectory() as scratch:
        before = os.times()
        wall = time.monotonic()
        out = subprocess.run([os.path.join(ROOT, "target", "release", "hisdf"), "train", mesh_path,
                              "--preset", "fast", "--iterations", str(iterations), "--device", "cpu",
                              "--keep-unconverged", "-o", os.path.join(scratch, "m.safetensors")],
                             env=env, check=True, capture_output=True, text=True)
        wall = time.monotonic() - wall
        after = os.times()
    # "trained 300 iterations in 4.3 s, final loss ..."
    found = re.search(r"trained \d+ iterations in ([0-9.]+) s", out.stdout + out.stderr)
    return {"wall": wall, "cpu": (after.children_user - before.children_user)
            + (after.children_system - before.children_system),
            "train_wall": float(found.group(1)) if found else float("nan"),
            "train_cpu": float("nan")}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--mesh", default=os.path.join(ROOT, "data", "meshes", "block-2x4.stl"))
    p.add_argument("--library", default=os.path.join(ROOT, "target", "release", "libhisdf.so"))
    p.add_argument("--blender", default="blender")
    p.add_argument("--python", default="/usr/bin/python3",
                   help="a plain Python of the same version as Blender's")
    p.add_argument("--bpy-python", help="a Python with the bpy wheel (Blender as a module)")
    p.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--import-bpy", action="store_true", help=argparse.SUPPRESS)
    args, _ = p.parse_known_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else None)
    mesh = os.path.abspath(args.mesh)
    if args.workload:
        workload(mesh, args.iterations, args.import_bpy)
        return
    env = dict(os.environ, HISDF_LIBRARY=os.path.abspath(args.library))
    me = os.path.abspath(__file__)
    tail = ["--workload", "--mesh", mesh, "--iterations", str(args.iterations)]
    sides = {
        "hisdf train (CLI)": lambda: cli(mesh, args.iterations, env),
        "plain Python": lambda: measured([args.python, me] + tail, env),
        "inside Blender": lambda: measured(
            [args.blender, "-b", "--factory-startup", "--python", me, "--"] + tail, env),
    }
    if args.bpy_python:
        sides["bpy module"] = lambda: measured([args.bpy_python, me, "--import-bpy"] + tail, env)
    results = {name: [] for name in sides}
    for run in range(args.runs):
        for name, side in sides.items():
            r = side()
            results[name].append(r)
            print("run %d/%d  %-18s wall %6.2f s  cpu %6.2f s%s" % (
                run + 1, args.runs, name, r["wall"], r["cpu"],
                "  (%s)" % r["outcome"] if "outcome" in r else ""), flush=True)
    print()
    print("fast preset, %d iterations, %s, %d runs (medians); library %s"
          % (args.iterations, os.path.relpath(mesh, ROOT), args.runs, args.library))
    print("| side | call wall s | call CPU s | training wall s | training CPU s "
          "| call wall / plain Python | training wall / CLI |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    median = {name: {k: statistics.median(r[k] for r in rs)
                     for k in ("wall", "cpu", "train_wall", "train_cpu")}
              for name, rs in results.items()}
    python, command = median["plain Python"], median["hisdf train (CLI)"]
    for name, m in median.items():
        print("| %s | %.2f | %.2f | %.2f | %s | %.2f | %.2f |" % (
            name, m["wall"], m["cpu"], m["train_wall"],
            "-" if m["train_cpu"] != m["train_cpu"] else "%.2f" % m["train_cpu"],
            m["wall"] / python["wall"], m["train_wall"] / command["train_wall"]))

if __name__ == "__main__":
    main()
