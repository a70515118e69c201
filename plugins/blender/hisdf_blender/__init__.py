"""hisdf for Blender: trains a neural signed distance function on the active
object's evaluated mesh and extracts its zero level set as a new object.

Training runs on a worker thread through the ctypes binding (which releases
the GIL); the main thread polls it from a bpy.app.timers function, tick(),
which is also what the headless test pumps by hand."""

import atexit
import os
import tempfile
import uuid

import bpy
from bpy.props import EnumProperty, IntProperty, PointerProperty, StringProperty

from . import core

bl_info = {
    "name": "hisdf",
    "author": "hisdf developers",
    "version": (0, 1, 0),
    "blender": (3, 0, 0),
    "location": "View3D > Sidebar > hisdf",
    "description": "Neural signed distance function of a mesh: train, then extract",
    "category": "Mesh",
}

PACKAGE = __package__ or __name__
MODEL_PROPERTY = "hisdf_model"
SPACE_PROPERTY = "hisdf_space"
MATRIX_PROPERTY = "hisdf_matrix"
KEY_PROPERTY = "hisdf_key"
# On a result: the KEY_PROPERTY of the object it was extracted from, so that
# extracting again replaces it and Extract works with either one active.
SOURCE_PROPERTY = "hisdf_source"
SUFFIX = ".hisdf"


# Iterations between progress callbacks: the library checks the cancel token
# there, so this bounds how long Cancel takes (tens of milliseconds per
# iteration on a CPU for the fast preset).
PROGRESS_EVERY = 10

_job = None
_last = None  # the finished job's snapshot, shown until the next run


def _preferences():
    addon = bpy.context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon else None


def _load():
    prefs = _preferences()
    return core.load(prefs.torch_lib if prefs else "")


class HISDF_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    torch_lib: StringProperty(
        name="libtorch folder",
        description="A torch/lib folder of PyTorch 2.11.0, loaded before libhisdf.so; "
        "empty: the bundled libraries, $HISDF_TORCH_LIB, or the build's own",
        subtype="DIR_PATH",
    )

    def draw(self, context):
        self.layout.prop(self, "torch_lib")
        _, error = core.load(self.torch_lib)
        if error:
            for i, line in enumerate(_wrap(error, 90)):
                self.layout.label(text=line, icon="ERROR" if i == 0 else "NONE")


def _preset_changed(self, _context):
    """Shows the preset's network and schedule in the panel's fields, read
    from the library (the presets live there), so they say what will run."""
    hisdf, _ = _load()
    if hisdf is None:
        return  # the panel says why the library is unavailable
    config = hisdf.Config(self.preset)
    self.iterations = int(config.get("iterations"))
    self.width = int(config.get("width"))
    self.depth = int(config.get("depth"))


# The presets as the library lists them, each described by its own network
# and schedule. Kept at module level: Blender only borrows the strings of a
# dynamic enum's items, so they must outlive the callback.
_preset_items = []
# Until the library loads, the one preset a CPU-only machine can run; it is
# the library's first preset too, so the stored index keeps its meaning.
_NO_LIBRARY = [("fast", "Fast", "The hisdf library is not loaded yet")]


def _presets(_self, _context):
    global _preset_items
    if not _preset_items:
        hisdf, _ = _load()
        if hisdf is None:
            return _NO_LIBRARY
        items = []
        for name in hisdf.presets():
            config = hisdf.Config(name)
            get = config.get
            items.append((
                name,
                name.replace("-", " ").capitalize(),
                "%s x %s network, %s iterations, %s precision, device %s" % (
                    get("depth"), get("width"), get("iterations"), get("precision"),
                    get("device")),
            ))
        _preset_items = items
    return _preset_items


class HISDF_Settings(bpy.types.PropertyGroup):
    preset: EnumProperty(
        name="Preset",
        items=_presets,
        # The library's first preset, `fast` (a dynamic list's default is
        # an index).
        default=0,
        update=_preset_changed,
    )
    iterations: IntProperty(
        name="Iterations", default=3000, min=1, max=1_000_000,
        description="Training steps. More: a closer fit, in proportional time; too few and "
        "the result is refused as not converged")
    width: IntProperty(
        name="Width", default=128, min=4, max=4096,
        description="Units per layer of the network. Wider: finer detail, but each "
        "iteration takes longer (about width squared) and the model file grows")
    depth: IntProperty(
        name="Depth", default=4, min=1, max=32,
        description="Layers of the network. Deeper: more intricate shapes, but each "
        "iteration takes longer and training may need more iterations")
    device: EnumProperty(
        name="Device",
        items=[("auto", "Auto", "CUDA when available, else CPU"),
               ("cpu", "CPU", ""), ("cuda", "CUDA", "")],
        default="auto",
    )
    space: EnumProperty(
        name="Space",
        items=[("OBJECT", "Object", "Train on the mesh in the object's own coordinates"),
               ("WORLD", "World", "Train on the mesh as placed in the scene (scale applied)")],
        default="OBJECT",
    )
    resolution: IntProperty(
        name="Resolution", default=128, min=16, max=1024,
        description="Extraction grid cells across the object's bounding sphere (about its "
        "largest size). Higher: smaller details and more triangles; extraction time and "
        "memory grow with its cube")
    surface: EnumProperty(
        name="Surface",
        description="What is learnt from the mesh",
        items=[("solid", "Solid", "The volume the mesh encloses (an open mesh is closed over)"),
               ("shell", "Shell", "A thin closed band around the surface, for open sheets "
                "(cloth, leaves) whose holes must stay open")],
        default="solid",
    )
    placement: EnumProperty(
        name="Result",
        description="Where the extracted object goes, relative to its source",
        items=[("HIDE", "Hide source", "Put the result in the source's place and hide the source"),
               ("BESIDE", "Beside", "Put the result next to the source, moved along X by the "
                "source's width"),
               ("ON_TOP", "On top", "Put the result exactly on the source, both visible "
                "(their surfaces overlap)")],
        default="HIDE",
    )


def _report(kind, message):
    """A Blender report from outside an operator (a timer): through a tiny
    operator, so that it lands in the Info editor and the status bar."""
    print("hisdf: %s: %s" % (kind, message))
    try:
        bpy.ops.hisdf.report(kind=kind, message=message)
    except Exception:  # noqa: BLE001 - in background mode an ERROR report raises
        pass


def _set_status(text):
    for window in getattr(bpy.context.window_manager, "windows", []):
        try:
            window.workspace.status_text_set_internal(text)
        except (AttributeError, TypeError):
            pass


def _redraw():
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _find_object(key):
    for obj in bpy.data.objects:
        if obj.get(KEY_PROPERTY) == key:
            return obj
    return None


MODEL_SUFFIX = ".hisdf.safetensors"
# Models written to the temp folder while the .blend was unsaved: moved
# beside it when it is saved, deleted at exit otherwise (unsaved work).
_temp_models = set()
# Save As in progress: (object key, model file as resolved against the old
# folder), read by _after_save once the new folder is known (Blender 3.x
# does not pass the new path to save_pre).
_before_save = []


def _relative_name(obj):
    """`//<object>.hisdf.safetensors`, beside the .blend, with a number
    added when another object's model already has that name."""
    base = bpy.path.clean_name(obj.name)
    taken = {other.get(MODEL_PROPERTY) for other in bpy.data.objects
             if other.get(KEY_PROPERTY) != obj.get(KEY_PROPERTY)}
    name, n = "//" + base + MODEL_SUFFIX, 1
    while name in taken:
        n += 1
        name = "//%s-%d%s" % (base, n, MODEL_SUFFIX)
    return name


def model_path(obj):
    """(absolute, stored) for obj's model: beside the .blend, stored as a
    `//` relative path so that the folder can move; while the file has
    never been saved, a temp file that saving moves beside it."""
    if bpy.data.filepath:
        relative = obj.get(MODEL_PROPERTY) if _is_beside(obj.get(MODEL_PROPERTY)) else None
        relative = relative or _relative_name(obj)
        return bpy.path.abspath(relative), relative
    absolute = os.path.join(_temp_folder(), "%s-%s%s" % (
        uuid.uuid4().hex[:8], bpy.path.clean_name(obj.name), MODEL_SUFFIX))
    _temp_models.add(absolute)
    return absolute, absolute


def _temp_folder():
    return os.path.join(tempfile.gettempdir(), "hisdf-blender")


def _in_temp_folder(path):
    """A model this add-on put in the temp folder (this session or an
    earlier one whose file was saved after a restart)."""
    return os.path.dirname(os.path.abspath(path)) == _temp_folder()


def _is_beside(stored):
    return bool(stored) and stored.startswith("//")


def model_file(obj):
    """(absolute path of obj's model, None) or (None, what to tell the
    user when it is gone)."""
    stored = obj.get(MODEL_PROPERTY)
    path = bpy.path.abspath(stored)
    if os.path.isfile(path):
        return path, None
    if _is_beside(stored):
        where = "beside the .blend" if bpy.data.filepath else "(the .blend is not saved)"
        return None, ("%s's model file %s is missing %s (%s): put it back there, or train "
                      "again" % (obj.name, stored[2:], where, path))
    return None, ("%s's model file %s is missing (an unsaved session's model is deleted "
                  "when Blender quits): train again" % (obj.name, path))


@bpy.app.handlers.persistent
def _on_save_pre(*_args):
    """Before writing the .blend: models still in the temp folder get their
    name beside it (the file on disk follows in _after_save, once the new
    folder is known), and every model's current file is noted for Save As."""
    _before_save.clear()
    for obj in bpy.data.objects:
        stored = obj.get(MODEL_PROPERTY)
        if not stored:
            continue
        path = bpy.path.abspath(stored)
        if not _is_beside(stored):
            if not _in_temp_folder(path):
                continue  # an absolute path the user chose: left as it is
            obj[MODEL_PROPERTY] = _relative_name(obj)
        _before_save.append((obj.get(KEY_PROPERTY), path))


@bpy.app.handlers.persistent
def _on_save_post(*_args):
    """After writing: each model noted by _on_save_pre is moved (from the
    temp folder) or copied (Save As into another folder) beside the .blend."""
    import shutil

    for key, old in _before_save:
        obj = _find_object(key)
        if obj is None or not os.path.isfile(old):
            continue
        new = bpy.path.abspath(obj[MODEL_PROPERTY])
        if os.path.abspath(new) == os.path.abspath(old):
            continue
        try:
            if _in_temp_folder(old):
                shutil.move(old, new)
                _temp_models.discard(old)
            else:
                os.makedirs(os.path.dirname(new), exist_ok=True)
                shutil.copyfile(old, new)
        except OSError as e:
            _report("ERROR", "the model of %s could not be stored beside the .blend: %s"
                    % (obj.name, e))
    _before_save.clear()


def _delete_temp_models():
    for path in list(_temp_models):
        try:
            os.remove(path)
        except OSError:
            pass
    _temp_models.clear()


def mesh_arrays(obj, depsgraph, space):
    """(vertices (N, 3) float32, triangles (M, 3) uint32, matrix) of obj's
    evaluated mesh, modifiers applied, triangulated through loop_triangles.
    Raises ValueError with a user-facing message."""
    import numpy as np

    if obj is None:
        raise ValueError("no active object")
    if obj.type not in TRAINABLE_TYPES:
        raise ValueError("%s is not a mesh (its type is %s)" % (obj.name, obj.type.lower()))
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if mesh is None:
            raise ValueError("%s has no mesh data" % obj.name)
        mesh.calc_loop_triangles()
        vertices = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", vertices)
        triangles = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", triangles)
    finally:
        evaluated.to_mesh_clear()
    if len(triangles) == 0:
        raise ValueError("%s has no faces to train on" % obj.name)
    vertices = vertices.reshape(-1, 3)
    matrix = [list(row) for row in obj.matrix_world]
    if space == "WORLD":
        m = np.array(matrix, dtype=np.float64)
        vertices = (vertices @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
    return vertices, triangles.reshape(-1, 3).astype(np.uint32), matrix


TRAINABLE_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}


def cannot_train(obj):
    """Why obj cannot be trained, judged from what poll() can afford to look
    at (no evaluation), or None; the evaluated mesh is checked on Train."""
    if _job is not None:
        return "a training is running: wait for it or press Cancel"
    if obj is None:
        return "select a mesh object first"
    if obj.type not in TRAINABLE_TYPES:
        return "%s is a%s %s, not a mesh: select a mesh object" % (
            obj.name, "n" if obj.type[0] in "AEIOU" else "", obj.type.lower())
    if obj.type == "MESH" and len(obj.data.polygons) == 0 and not obj.modifiers:
        return "%s has no faces to train on" % obj.name
    return None


def _source(obj):
    """The object to train for obj: with a result active, its source (if it
    still exists), so that Train and Convert redo the source's conversion
    as Extract re-extracts it; otherwise obj."""
    if obj is not None and obj.get(SOURCE_PROPERTY):
        return _find_object(obj[SOURCE_PROPERTY]) or obj
    return obj


def _poll_train(cls, context):
    reason = cannot_train(_source(context.active_object))
    if reason and hasattr(cls, "poll_message_set"):  # Blender 3.0+
        cls.poll_message_set(reason)
    return reason is None


def start_training(context, obj, then_extract=False):
    """Starts a Job for obj; returns (job, None) or (None, message). With
    then_extract (Convert), tick() extracts the model once it is trained, at
    the resolution set now."""
    global _job, _last
    obj = _source(obj)
    reason = cannot_train(obj)
    if reason:
        return None, reason
    hisdf, error = _load()
    if error:
        return None, error
    settings = context.scene.hisdf
    try:
        vertices, triangles, matrix = mesh_arrays(obj, context.evaluated_depsgraph_get(),
                                                  settings.space)
    except ValueError as e:
        return None, str(e)
    key = obj.get(KEY_PROPERTY) or uuid.uuid4().hex
    obj[KEY_PROPERTY] = key
    absolute, stored = model_path(obj)
    options = {
        "preset": settings.preset,
        "iterations": settings.iterations,
        "width": settings.width,
        "depth": settings.depth,
        "device": settings.device,
        "surface": settings.surface,
        "progress_every": PROGRESS_EVERY,
    }
    job = core.Job(hisdf, key, vertices, triangles, options, absolute)
    job.stored_path = stored
    job.space = settings.space
    job.matrix = matrix
    job.extract_at = settings.resolution if then_extract else None
    _job, _last = job, None
    job.start()
    if not bpy.app.timers.is_registered(tick):
        # Persistent: a job outlives a file load, and only tick() clears it.
        bpy.app.timers.register(tick, first_interval=0.1, persistent=True)
    return job, None


def tick():
    """The timer: shows progress and, once the worker is done, applies its
    outcome to bpy data on the main thread. Returns the delay to the next
    call, or None when nothing runs any more."""
    global _job, _last
    job = _job
    if job is None:
        return None
    snap = job.snapshot()
    _set_status(core.format_progress(snap))
    _redraw()
    if snap["state"] == "running":
        return 0.2
    job.thread.join()
    _job, _last = None, snap
    _set_status(None)
    if snap["state"] == "done":
        obj = _find_object(job.object_key)
        if obj is None:
            _report("WARNING", "the trained object is gone; model kept at %s" % job.model_path)
        else:
            obj[MODEL_PROPERTY] = job.stored_path
            obj[SPACE_PROPERTY] = job.space
            obj[MATRIX_PROPERTY] = [v for row in job.matrix for v in row]
            _report("INFO", "%s: %s" % (obj.name, snap["message"]))
            if job.extract_at is not None:
                _finish_convert(obj, job.extract_at)
    elif snap["state"] == "cancelled":
        _report("INFO", snap["message"])
    else:
        _report("ERROR", snap["message"])
    return None


def _finish_convert(obj, resolution):
    """Convert's second half, on the main thread once the model is stored:
    the same extraction as the Extract button, made one undo step."""
    new, error = extract(bpy.context, obj, resolution)
    if error:
        _report("ERROR", error)
        return
    _report("INFO", "hisdf: converted %s into %s (%d triangles)" % (
        obj.name, new.name, len(new.data.polygons)))
    try:
        bpy.ops.ed.undo_push(message="hisdf Convert")
    except RuntimeError:  # no undo stack in background mode
        pass


def _place(context, source, result, placement):
    """Puts the result where the placement setting says: in the source's
    place with the source hidden, beside it (moved along world X by the
    source's bounding-box width, so the two do not overlap), or on top."""
    from mathutils import Matrix, Vector

    matrix = source.matrix_world.copy()
    if placement == "BESIDE":
        xs = [(source.matrix_world @ Vector(corner)).x for corner in source.bound_box]
        matrix = Matrix.Translation((max(xs) - min(xs), 0.0, 0.0)) @ matrix
    result.matrix_world = matrix
    if source.name in context.view_layer.objects:
        source.hide_set(placement == "HIDE")


def _result_of(obj):
    """The result extracted earlier from obj, if it still exists."""
    key = obj.get(KEY_PROPERTY)
    if not key:
        return None
    for other in bpy.data.objects:
        if other.get(SOURCE_PROPERTY) == key:
            return other
    return None


def extract(context, obj, resolution=None):
    """Extracts obj's model as its result object: a new object, or the
    previous result with its mesh replaced, selected and made active as
    Blender's own conversions leave their result. With a result active, its
    source is extracted again. resolution: the panel's when None. Returns
    (result, None) or (None, message)."""
    import numpy as np

    hisdf, error = _load()
    if error:
        return None, error
    if obj is not None and obj.get(SOURCE_PROPERTY):
        source = _find_object(obj[SOURCE_PROPERTY])
        if source is None:
            return None, "the object %s was extracted from is gone" % obj.name
        obj = source
    stored = obj.get(MODEL_PROPERTY) if obj is not None else None
    if not stored:
        return None, "the active object has no trained model: press Train first"
    path, missing = model_file(obj)
    if missing:
        return None, missing
    settings = context.scene.hisdf
    try:
        model = hisdf.Model.load(path, device=settings.device)
        surface = model.extract(resolution or settings.resolution)
        vertices, triangles = surface.arrays()
    except hisdf.Error as e:
        return None, core.describe_error(hisdf, e)
    except MemoryError:
        return None, "out of memory: lower the resolution"
    if obj.get(SPACE_PROPERTY) == "WORLD":
        # Back from the scene's frame at training time to the object's own,
        # so that the new object shares the original's transform.
        m = np.array(obj[MATRIX_PROPERTY], dtype=np.float64).reshape(4, 4)
        inverse = np.linalg.inv(m)
        vertices = vertices.astype(np.float64) @ inverse[:3, :3].T + inverse[:3, 3]
    name = obj.name + SUFFIX
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    n = len(triangles)
    mesh.loops.add(3 * n)
    mesh.loops.foreach_set("vertex_index", triangles.astype(np.int32).ravel())
    mesh.polygons.add(n)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * n, 3, dtype=np.int32))
    if bpy.app.version < (4, 0, 0):
        # Read-only from 4.0 on, where loop_start alone defines the faces.
        mesh.polygons.foreach_set("loop_total", np.full(n, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.validate()
    if not obj.get(KEY_PROPERTY):
        # A model stored by an older version of the add-on.
        obj[KEY_PROPERTY] = uuid.uuid4().hex
    new = _result_of(obj)
    if new is None:
        new = bpy.data.objects.new(name, mesh)
        new[SOURCE_PROPERTY] = obj[KEY_PROPERTY]
        collections = obj.users_collection or (context.scene.collection,)
        collections[0].objects.link(new)
    else:
        # Re-extraction (another resolution): the same object, new mesh.
        old = new.data
        new.data = mesh
        if old.users == 0:
            bpy.data.meshes.remove(old)
        mesh.name = name
    _place(context, obj, new, settings.placement)
    for other in context.view_layer.objects:
        other.select_set(False)
    if new.name in context.view_layer.objects:
        new.select_set(True)
        context.view_layer.objects.active = new
    return new, None


class HISDF_OT_report(bpy.types.Operator):
    """Reports a message (used by the timer, which has no operator)"""

    bl_idname = "hisdf.report"
    bl_label = "hisdf report"
    bl_options = {"INTERNAL"}

    kind: StringProperty(default="INFO")
    message: StringProperty()

    def execute(self, _context):
        self.report({self.kind}, self.message)
        return {"FINISHED"}


class HISDF_OT_train(bpy.types.Operator):
    """Train a neural SDF on the active object's evaluated mesh, in the background"""

    bl_idname = "hisdf.train"
    bl_label = "Train"

    @classmethod
    def poll(cls, context):
        return _poll_train(cls, context)

    def execute(self, context):
        job, error = start_training(context, context.active_object)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        self.report({"INFO"}, "hisdf: training started (%d iterations)" % job.iterations)
        return {"FINISHED"}


class HISDF_OT_convert(bpy.types.Operator):
    """Turn the active object into its neural SDF reconstruction in one step: train in the \
background, then extract at the chosen resolution"""

    bl_idname = "hisdf.convert"
    bl_label = "Convert"

    @classmethod
    def poll(cls, context):
        return _poll_train(cls, context)

    def execute(self, context):
        job, error = start_training(context, context.active_object, then_extract=True)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        self.report({"INFO"}, "hisdf: converting (%d iterations, then extraction)"
                    % job.iterations)
        return {"FINISHED"}


class HISDF_OT_cancel(bpy.types.Operator):
    """Stop the running training"""

    bl_idname = "hisdf.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, _context):
        return _job is not None

    def execute(self, _context):
        _job.cancel()
        return {"FINISHED"}


class HISDF_OT_extract(bpy.types.Operator):
    """Extract the zero level set of the active object's model as a new object"""

    bl_idname = "hisdf.extract"
    bl_label = "Extract"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None

    def execute(self, context):
        new, error = extract(context, context.active_object)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        self.report({"INFO"}, "hisdf: extracted %s (%d triangles)" % (
            new.name, len(new.data.polygons)))
        return {"FINISHED"}


class HISDF_PT_panel(bpy.types.Panel):
    bl_label = "hisdf"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "hisdf"

    def draw(self, context):
        layout = self.layout
        _, error = _load()
        if error:
            box = layout.box()
            box.label(text="hisdf is unavailable", icon="ERROR")
            for line in _wrap(error, 40):
                box.label(text=line)
            return
        settings = context.scene.hisdf
        col = layout.column()
        col.prop(settings, "preset")
        col.prop(settings, "iterations")
        row = col.row(align=True)
        row.prop(settings, "width")
        row.prop(settings, "depth")
        col.prop(settings, "device")
        col.prop(settings, "space")
        col.prop(settings, "surface")
        col.prop(settings, "resolution")
        col.prop(settings, "placement")
        # The buttons first and the changing text below them, so that they
        # stay where they are while a training starts and ends.
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator(HISDF_OT_convert.bl_idname, icon="MOD_REMESH")
        row.operator(HISDF_OT_cancel.bl_idname, icon="CANCEL")
        row = layout.row(align=True)
        row.operator(HISDF_OT_train.bl_idname)
        row.operator(HISDF_OT_extract.bl_idname)
        active = context.active_object
        if active is not None and not active.select_get():
            # Blender's own operators mostly act on the selection; these on
            # the active object, which may not be the one the user sees lit.
            _labels(layout, "%s is active but not selected: Convert and Train use it"
                    % active.name, "INFO")
        snap = _job.snapshot() if _job is not None else _last
        if snap is not None:
            box = layout.box()
            for entry in core.progress_lines(snap):
                for line in _wrap(entry, 40):
                    box.label(text=line)
        obj = context.active_object
        if obj is not None and obj.get(SOURCE_PROPERTY):
            obj = _find_object(obj[SOURCE_PROPERTY])
        if obj is not None and obj.get(MODEL_PROPERTY):
            stored = obj[MODEL_PROPERTY]
            _, missing = model_file(obj)
            if missing:
                _labels(layout, missing, "ERROR")
            elif _is_beside(stored):
                _labels(layout, "model: " + stored[2:], "NONE")
            else:
                _labels(layout, "model: unsaved (kept with the .blend once it is saved)", "NONE")


def _labels(layout, text, icon):
    """text over lines that fit the sidebar at its default width, the icon
    on the first."""
    for i, line in enumerate(_wrap(text, 40)):
        layout.label(text=line, icon=icon if i == 0 else "NONE")


def _wrap(text, width):
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = (line + " " + word).strip()
    return lines + ([line] if line else [])


CLASSES = (
    HISDF_AddonPreferences,
    HISDF_Settings,
    HISDF_OT_report,
    HISDF_OT_train,
    HISDF_OT_convert,
    HISDF_OT_cancel,
    HISDF_OT_extract,
    HISDF_PT_panel,
)


def _cancel_on_exit():
    """Blender quitting mid-training: stop the worker before Python goes
    away under it."""
    global _job
    job, _job = _job, None
    if job is not None:
        job.cancel()
        job.thread.join(timeout=5.0)
    core.stop_logging()


def register():
    atexit.register(_cancel_on_exit)
    # Not undone by unregister(): Blender disables every add-on before it
    # quits, and the unsaved session's models must go at the very end.
    atexit.unregister(_delete_temp_models)
    atexit.register(_delete_temp_models)
    bpy.app.handlers.save_pre.append(_on_save_pre)
    bpy.app.handlers.save_post.append(_on_save_post)
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.hisdf = PointerProperty(type=HISDF_Settings)


def unregister():
    atexit.unregister(_cancel_on_exit)
    _cancel_on_exit()
    for handlers, fn in ((bpy.app.handlers.save_pre, _on_save_pre),
                         (bpy.app.handlers.save_post, _on_save_post)):
        if fn in handlers:
            handlers.remove(fn)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    del bpy.types.Scene.hisdf
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

