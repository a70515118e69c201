#!/usr/bin/env python3
"""Packages the Blender add-on with libhisdf.so and the Python binding:

    python3 plugins/blender/build.py [--library target/release/libhisdf.so] [--out target/blender]

writes two zips into --out:
  hisdf_blender-VERSION.zip          Blender 3.x/4.x add-on (Install... in Preferences),
                                     a folder hisdf_blender/ with bl_info in __init__.py
  hisdf-VERSION-linux-x64.zip        Blender 4.2+ extension (blender_manifest.toml at the root)
Both hold hisdf/ (the ctypes binding) with libhisdf.so inside it, where the
binding looks first. libtorch is not bundled (about 4 GB with its CUDA
libraries): see README.md for how the add-on finds it."""

import argparse
import os
import pathlib
import re
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
ADDON = HERE / "hisdf_blender"
BINDING = REPO / "bindings" / "python" / "hisdf"


def version():
    text = (ADDON / "blender_manifest.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


def members(library):
    """(path in the package, source file) for everything that is shipped,
    relative to the add-on's root folder."""
    out = []
    for name in ("__init__.py", "core.py", "blender_manifest.toml"):
        out.append((name, ADDON / name))
    for source in sorted(BINDING.glob("*.py")):
        out.append(("hisdf/" + source.name, source))
    out.append(("hisdf/libhisdf.so", library))
    return out


def write_zip(path, prefix, files):
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, source in files:
            info = zipfile.ZipInfo.from_file(source, prefix + name)
            info.compress_type = zipfile.ZIP_DEFLATED
            # Keep the library executable: some loaders refuse otherwise.
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            with open(source, "rb") as f:
                z.writestr(info, f.read())
    # Written beside and renamed, so that a failed build never leaves a
    # truncated zip where a test or a user would pick it up.
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=pathlib.Path,
                        default=REPO / "target" / "release" / "libhisdf.so")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "target" / "blender")
    args = parser.parse_args()
    if not args.library.is_file():
        sys.exit("build.py: %s not found; run `scripts/cargo build --release` first"
                 % args.library)
    if not (BINDING / "__init__.py").is_file():
        sys.exit("build.py: the Python binding is missing at %s" % BINDING)
    args.out.mkdir(parents=True, exist_ok=True)
    files = members(args.library)
    v = version()
    addon_zip = args.out / ("hisdf_blender-%s.zip" % v)
    extension_zip = args.out / ("hisdf-%s-linux-x64.zip" % v)
    write_zip(addon_zip, "hisdf_blender/", files)
    write_zip(extension_zip, "", files)
    for path in (addon_zip, extension_zip):
        print("%s (%.1f MB)" % (path, path.stat().st_size / 1e6))


if __name__ == "__main__":
    main()
