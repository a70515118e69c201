#!/usr/bin/env bash
# The Blender add-on test: packages the add-on (build.py) and runs
# test_addon.py in Debian's headless Blender (3.4.1 on bookworm), installing
# it when missing and we are root; skips with a message otherwise.
# Needs target/release/libhisdf.so (scripts/cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! command -v blender >/dev/null || ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends blender python3-numpy >/dev/null
    else
        echo "blender add-on test: SKIPPED (blender is not installed and we are not root;" \
            "apt-get install blender python3-numpy)" >&2
        exit 0
    fi
fi
python3 plugins/blender/build.py --out target/blender
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/scripts"
# BLENDER_USER_* keep the installed add-on and preferences out of $HOME.
HISDF_ADDON_ZIP="$PWD/target/blender/hisdf_blender-$(sed -n 's/^version *= *"\(.*\)"/\1/p' plugins/blender/hisdf_blender/blender_manifest.toml).zip" \
HISDF_TEST_TORCH_LIB="$PWD/.venv/lib/python3.11/site-packages/torch/lib" \
HISDF_TEST_DIR="$scratch" \
BLENDER_USER_SCRIPTS="$scratch/scripts" \
BLENDER_USER_CONFIG="$scratch/config" \
    blender -b --factory-startup --python-exit-code 1 \
        --python plugins/blender/tests/test_addon.py 2>&1 | tee "$scratch/log"
grep -q "blender add-on test: OK" "$scratch/log"
# Optional: the 4.2+ extension zip in Blender 4.5, with a Python that has the
# `bpy` wheel (python3 -m venv V && V/bin/pip install "bpy==4.5.*" numpy;
# about 1 GB, so not part of CI).
if [ -n "${HISDF_TEST_BPY_PYTHON:-}" ]; then
    ext="$scratch/ext"
    mkdir -p "$ext"
    HISDF_EXTENSION_ZIP="$(ls "$PWD"/target/blender/hisdf-*-linux-x64.zip)" \
    HISDF_TEST_TORCH_LIB="$PWD/.venv/lib/python3.11/site-packages/torch/lib" \
    BLENDER_USER_RESOURCES="$ext" BLENDER_USER_SCRIPTS="$ext/scripts" \
    BLENDER_USER_CONFIG="$ext/config" BLENDER_USER_EXTENSIONS="$ext/extensions" \
        "$HISDF_TEST_BPY_PYTHON" plugins/blender/tests/test_extension.py
fi
