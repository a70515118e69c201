"""Makes the generated meshes of the quality set in Blender (headless):
CAD-like parts with sharp edges, holes, thin walls and high genus, and a
few organic shapes. Run through experiments/meshes/make.sh; writes binary
PLY files into the folder given after `--`.

Every part is built from primitives with Blender's exact boolean solver,
so edges stay sharp and every mesh is closed (checked afterwards with
`hisdf info`)."""

import math
import os
import sys

import bmesh
import bpy

OUT = sys.argv[sys.argv.index("--") + 1]


def reset():
    bpy.ops.object.select_all(action="SELECT")
    bpy.ops.object.delete()
    for mesh in list(bpy.data.meshes):
        bpy.data.meshes.remove(mesh)


def box(size, location=(0, 0, 0)):
    bpy.ops.mesh.primitive_cube_add(size=1, location=location)
    obj = bpy.context.object
    obj.scale = size
    bpy.ops.object.transform_apply(scale=True)
    return obj


def cylinder(radius, depth, location=(0, 0, 0), rotation=(0, 0, 0), vertices=64):
    bpy.ops.mesh.primitive_cylinder_add(
        vertices=vertices, radius=radius, depth=depth, location=location, rotation=rotation
    )
    return bpy.context.object


def boolean(target, tool, operation):
    mod = target.modifiers.new("bool", "BOOLEAN")
    mod.operation = operation
    mod.solver = "EXACT"
    mod.object = tool
    bpy.context.view_layer.objects.active = target
    bpy.ops.object.modifier_apply(modifier=mod.name)
    bpy.data.objects.remove(tool, do_unlink=True)


def save(obj, name):
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.modifier_add(type="TRIANGULATE")
    bpy.ops.object.modifier_apply(modifier=obj.modifiers[-1].name)
    path = os.path.join(OUT, name + ".ply")
    bpy.ops.export_mesh.ply(
        filepath=path, use_selection=True, use_normals=False, use_uv_coords=False,
        use_colors=False, use_mesh_modifiers=True, axis_forward="Y", axis_up="Z",
    )
    print("made", path, len(obj.data.polygons), "triangles")


def bracket():
    """An L bracket with four bolt holes: sharp edges, genus 4."""
    reset()
    base = box((2.0, 1.2, 0.2), (0, 0, 0.1))
    boolean(base, box((0.2, 1.2, 1.2), (-0.9, 0, 0.6)), "UNION")
    for x, y in [(-0.3, -0.35), (-0.3, 0.35), (0.6, -0.35), (0.6, 0.35)]:
        boolean(base, cylinder(0.12, 1.0, (x, y, 0.1)), "DIFFERENCE")
    boolean(base, cylinder(0.2, 1.0, (-0.9, 0, 0.75), (0, math.pi / 2, 0)), "DIFFERENCE")
    save(base, "bracket")


def gear():
    """A spur gear with 24 teeth and a keyed bore."""
    reset()
    teeth, r_root, r_tip, thickness = 24, 0.85, 1.0, 0.3
    bm = bmesh.new()
    outline = []
    for i in range(teeth):
        a0 = 2 * math.pi * i / teeth
        step = 2 * math.pi / teeth
        for frac, r in [(0.0, r_root), (0.2, r_tip), (0.5, r_tip), (0.7, r_root)]:
            a = a0 + frac * step
            outline.append(bm.verts.new((r * math.cos(a), r * math.sin(a), -thickness / 2)))
    face = bm.faces.new(outline)
    extruded = bmesh.ops.extrude_face_region(bm, geom=[face])
    top = [v for v in extruded["geom"] if isinstance(v, bmesh.types.BMVert)]
    bmesh.ops.translate(bm, verts=top, vec=(0, 0, thickness))
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    mesh = bpy.data.meshes.new("gear")
    bm.to_mesh(mesh)
    obj = bpy.data.objects.new("gear", mesh)
    bpy.context.collection.objects.link(obj)
    boolean(obj, cylinder(0.25, 1.0), "DIFFERENCE")
    boolean(obj, box((0.12, 0.1, 1.0), (0.28, 0, 0)), "DIFFERENCE")
    save(obj, "gear")


def heatsink():
    """A base plate with twelve thin fins (thickness 1/50 of the size)."""
    reset()
    base = box((2.0, 1.2, 0.15), (0, 0, 0.075))
    for i in range(12):
        x = -0.9 + i * (1.8 / 11)
        boolean(base, box((0.04, 1.2, 0.9), (x, 0, 0.55)), "UNION")
    save(base, "heatsink")


def grid_plate():
    """A plate with a 4x4 grid of square holes: genus 16."""
    reset()
    plate = box((2.0, 2.0, 0.2))
    for i in range(4):
        for j in range(4):
            c = (-0.66 + 0.44 * i, -0.66 + 0.44 * j, 0)
            boolean(plate, box((0.26, 0.26, 1.0), c), "DIFFERENCE")
    save(plate, "grid_plate")


def nut():
    """A hex nut with chamfered faces and a bore."""
    reset()
    body = cylinder(1.0, 0.8, vertices=6)
    boolean(body, cylinder(0.5, 2.0), "DIFFERENCE")
    # The chamfer: intersect with a double cone.
    bpy.ops.mesh.primitive_cone_add(vertices=96, radius1=1.35, radius2=0.55, depth=0.8,
                                    location=(0, 0, -0.0))
    cone = bpy.context.object
    boolean(body, cone, "INTERSECT")
    save(body, "nut")


def tube_along(points, radius, name, cyclic=True):
    curve = bpy.data.curves.new(name, "CURVE")
    curve.dimensions = "3D"
    curve.bevel_depth = radius
    curve.bevel_resolution = 6
    curve.use_fill_caps = True
    spline = curve.splines.new("POLY")
    spline.points.add(len(points) - 1)
    for p, q in zip(spline.points, points):
        p.co = (q[0], q[1], q[2], 1.0)
    spline.use_cyclic_u = cyclic
    obj = bpy.data.objects.new(name, curve)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.convert(target="MESH")
    obj = bpy.context.object
    # The converted caps are separate rings of vertices: weld them to the
    # tube so that the mesh is closed and one component.
    bm = bmesh.new()
    bm.from_mesh(obj.data)
    bmesh.ops.remove_doubles(bm, verts=bm.verts, dist=1e-5)
    bm.to_mesh(obj.data)
    bm.free()
    return obj


def torus_knot():
    """A (3, 2) torus knot tube: smooth, self-approaching, genus 1."""
    reset()
    pts = []
    for i in range(600):
        t = 2 * math.pi * i / 600
        r = 0.7 + 0.3 * math.cos(3 * t)
        pts.append((r * math.cos(2 * t), r * math.sin(2 * t), 0.3 * math.sin(3 * t)))
    save(tube_along(pts, 0.12, "torus_knot"), "torus_knot")


def spring():
    """A helical spring of six turns with flat ground ends: thin coils close together."""
    reset()
    pts = []
    turns, n = 6, 900
    for i in range(n + 1):
        t = 2 * math.pi * turns * i / n
        pts.append((0.5 * math.cos(t), 0.5 * math.sin(t), -0.9 + 1.8 * i / n))
    save(tube_along(pts, 0.06, "spring", cyclic=False), "spring")


def cup():
    """A thin-walled cup (wall 0.03) with a handle: thin features, genus 1."""
    reset()
    outer = cylinder(0.6, 1.2, vertices=96)
    boolean(outer, cylinder(0.57, 1.2, (0, 0, 0.03), vertices=96), "DIFFERENCE")
    bpy.ops.mesh.primitive_torus_add(major_radius=0.3, minor_radius=0.05,
                                     location=(0.75, 0, 0), rotation=(math.pi / 2, 0, 0),
                                     major_segments=64, minor_segments=16)
    handle = bpy.context.object
    boolean(handle, cylinder(0.585, 1.2, vertices=96), "DIFFERENCE")
    boolean(outer, handle, "UNION")
    save(outer, "cup")


def chain():
    """Two interlocked rings: two components that must stay two."""
    reset()
    bpy.ops.mesh.primitive_torus_add(major_radius=0.5, minor_radius=0.1,
                                     major_segments=96, minor_segments=24, location=(-0.3, 0, 0))
    a = bpy.context.object
    bpy.ops.mesh.primitive_torus_add(major_radius=0.5, minor_radius=0.1,
                                     major_segments=96, minor_segments=24, location=(0.3, 0, 0),
                                     rotation=(math.pi / 2, 0, 0))
    b = bpy.context.object
    bpy.ops.object.select_all(action="DESELECT")
    a.select_set(True)
    b.select_set(True)
    bpy.context.view_layer.objects.active = a
    bpy.ops.object.join()
    save(bpy.context.object, "chain")


def suzanne():
    """Blender's monkey, closed by a voxel remesh and decimated: organic."""
    reset()
    bpy.ops.mesh.primitive_monkey_add()
    obj = bpy.context.object
    sub = obj.modifiers.new("sub", "SUBSURF")
    sub.levels = 2
    remesh = obj.modifiers.new("remesh", "REMESH")
    remesh.mode = "VOXEL"
    remesh.voxel_size = 0.012
    dec = obj.modifiers.new("dec", "DECIMATE")
    dec.ratio = 0.25
    for m in list(obj.modifiers):
        bpy.ops.object.modifier_apply(modifier=m.name)
    save(obj, "suzanne")


for make in [bracket, gear, heatsink, grid_plate, nut, torus_knot, spring, cup, chain, suzanne]:
    make()
