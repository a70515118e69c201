#!/usr/bin/env bash
# Start-up of the command line (issue 18): median wall time and peak
# resident memory of each torch-free command of `hisdf`, of a torch command
# handed on to hisdf-torch, and of hisdf-torch --version (the old single
# binary's cost), against the bar of 50 ms and 50 MB.
#
#   bench/cli_start.sh [RUNS]        (RUNS per command, default 20)
#
# Each run is one process, timed from spawn to exit. Its peak RSS is GNU
# time's (%M) in a second run of the same command: a child of this Python
# would carry Python's own pages in its peak until its exec, a child of the
# small `time` does not (an exec'd hisdf-torch counts in it either way).
# The commands do real but small work on the bundled lego brick (1,620
# triangles): 1,000 SDF points, 1,000 uniform samples, a 64-pixel picture,
# eval at 1,000 / 100 points. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
scripts/cargo build --release --quiet --bins
work="$(mktemp -d "${TMPDIR:-/tmp}/hisdf-start.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 - "$runs" "$work" <<'EOF'
import os, statistics, struct, sys, time

runs, work = int(sys.argv[1]), sys.argv[2]
hisdf, torch = "target/release/hisdf", "target/release/hisdf-torch"
mesh = "data/meshes/block-2x4.stl"

# 1,000 query points in and around the brick (float32 N x 3 .npy).
points = os.path.join(work, "points.npy")
n = 1000
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 3), }" % n
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(points, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    for i in range(n):
        f.write(struct.pack("<3f", (i % 40) - 5.0, (i % 23) - 4.0, (i % 13) - 6.0))

def out(name):
    return os.path.join(work, name)

commands = [
    ("hisdf --version", [hisdf, "--version"]),
    ("hisdf --help", [hisdf, "--help"]),
    ("hisdf info MESH", [hisdf, "info", mesh]),
    ("hisdf info MESH --json", [hisdf, "info", mesh, "--json"]),
    ("hisdf sdf MESH POINTS (1,000)", [hisdf, "sdf", mesh, points, "-o", out("sdf.npy")]),
    ("hisdf sample MESH --strategy uniform --count 1000",
     [hisdf, "sample", mesh, "-o", out("s.npy"), "--strategy", "uniform", "--count", "1000"]),
    ("hisdf render MESH --size 64", [hisdf, "render", mesh, "-o", out("r.png"), "--size", "64"]),
    ("hisdf eval MESH MESH --chamfer-points 1000 --emd-points 100",
     [hisdf, "eval", mesh, mesh, "--chamfer-points", "1000", "--emd-points", "100"]),
    ("hisdf keys (handed to hisdf-torch)", [hisdf, "keys"]),
    ("hisdf-torch --version", [torch, "--version"]),
]

if not os.access("/usr/bin/time", os.X_OK):
    sys.exit("bench/cli_start.sh needs GNU time (/usr/bin/time; Debian: apt-get install time)")
print("| command | median wall | peak RSS (median) | under 50 ms and 50 MB |")
print("|---|---|---|---|")
devnull = os.open(os.devnull, os.O_WRONLY)
peak = out("peak.txt")

def run(label, argv):
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                       (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{label}: exit status {os.waitstatus_to_exitcode(status)}")

for label, argv in commands:
    walls, rss = [], []
    for _ in range(runs):
        t = time.perf_counter()
        run(label, argv)
        walls.append(time.perf_counter() - t)
        run(label, ["/usr/bin/time", "-f", "%M", "-o", peak, *argv])
        with open(peak) as f:
            rss.append(int(f.read().split()[-1]) / 1024)  # KiB
    wall, mem = statistics.median(walls) * 1e3, statistics.median(rss)
    ok = "yes" if wall < 50 and mem < 50 else "no"
    print(f"| `{label}` | {wall:.1f} ms | {mem:.1f} MiB | {ok} |")
EOF
