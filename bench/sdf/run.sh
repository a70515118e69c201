#!/usr/bin/env bash
# SDF benchmark: hisdf beside libigl and Open3D on the same points, plus the
# paper's two sampling strategies. Installs the peers into bench/.venv.
# Usage: bench/sdf/run.sh [--repeats R] [--uniform N] [--only NAME] [--ours-only]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="$root/bench/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import igl, open3d" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "numpy<3" "libigl==2.6.3" "open3d==0.20.0"
fi
# Open3D's wheel links libusb (for its sensor support) even when unused.
if ! "$venv/bin/python" -c "import open3d" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq libusb-1.0-0 libgomp1
    else
        echo "bench/sdf/run.sh: open3d needs libusb-1.0; install it with apt-get as root" >&2
        exit 1
    fi
fi
scripts/cargo run --release --example bench_sdf -- \
    --python "$venv/bin/python" --script "$root/bench/sdf/peers.py" "$@"
