"""The 4.2+ extension layout in Blender 4.5 (the `bpy` wheel from PyPI, run
by its own Python): installs hisdf-VERSION-linux-x64.zip as an extension,
trains a small torus and extracts it. Optional: plugins/blender/tests/run.sh
runs it only when HISDF_TEST_BPY_PYTHON names a Python with bpy 4.2+.
Environment as for test_addon.py, with HISDF_EXTENSION_ZIP for the zip."""

import importlib
import os
import sys
import time

import bpy

ZIP = os.environ["HISDF_EXTENSION_ZIP"]
TORCH_LIB = os.environ["HISDF_TEST_TORCH_LIB"]


def main():
    print("Blender", bpy.app.version_string)
    assert bpy.app.version >= (4, 2, 0), "extensions need Blender 4.2+"
    bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                             enable_on_install=True)
    name = "bl_ext.user_default.hisdf"
    addon = importlib.import_module(name)
    assert name in bpy.context.preferences.addons, "extension not enabled"
    bpy.context.preferences.addons[name].preferences.torch_lib = TORCH_LIB
    _, error = addon._load()
    assert error is None, error

    bpy.ops.object.select_all(action="SELECT")
    bpy.ops.object.delete()
    bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.35, location=(1, 2, 3))
    torus = bpy.context.active_object
    settings = bpy.context.scene.hisdf
    settings.device = "cpu"
    settings.iterations, settings.width, settings.depth = 300, 32, 3
    settings.resolution = 48
    bpy.ops.hisdf.train()
    while addon.tick() is not None:  # no event loop here either: pump the timer
        time.sleep(0.05)
    assert addon._last["state"] == "done", addon._last
    bpy.ops.hisdf.extract()
    new = bpy.data.objects["Torus.hisdf"]
    hisdf = addon.core._binding()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    a = hisdf.Mesh.from_arrays(*addon.mesh_arrays(torus, depsgraph, "WORLD")[:2])
    b = hisdf.Mesh.from_arrays(*addon.mesh_arrays(new, depsgraph, "WORLD")[:2])
    chamfer = hisdf.chamfer(a, b)
    print("extension: Chamfer %.3e" % chamfer)
    assert chamfer < 4e-3, chamfer
    # Convert in one click, placed beside; 4.x greys it out with a reason.
    bpy.ops.object.camera_add()
    assert not addon.HISDF_OT_convert.poll(bpy.context), "Convert not greyed out for a camera"
    try:
        bpy.ops.hisdf.convert()
        raise AssertionError("Convert ran on a camera")
    except RuntimeError as e:
        assert "not a mesh" in str(e), str(e)
        print("refused:", str(e).strip())
    bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.35, location=(-2, 0, 0))
    ring = bpy.context.active_object
    ring.name = "Ring"
    settings.placement = "BESIDE"
    bpy.ops.hisdf.convert()
    while addon.tick() is not None:
        time.sleep(0.05)
    assert addon._last["state"] == "done", addon._last
    converted = bpy.data.objects["Ring.hisdf"]
    assert bpy.context.view_layer.objects.active == converted and converted.select_get()
    offset = converted.matrix_world.translation - ring.matrix_world.translation
    print("extension: Convert beside, offset %s" % (tuple(offset),))
    assert abs(offset.x - ring.dimensions.x) < 1e-4 and abs(offset.y) + abs(offset.z) < 1e-6, offset
    print("blender extension test: OK")


try:
    main()
except Exception:
    import traceback
    traceback.print_exc()
    sys.exit(1)
