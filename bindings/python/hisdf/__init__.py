"""hisdf for Python: a triangle mesh in, a neural signed distance function
out, through the C API of libhisdf.so (ctypes; no compiled extension).

    import hisdf
    mesh = hisdf.Mesh.load("fox.stl")
    config = hisdf.Config("fast", iterations=500, device="cpu")
    monitor = hisdf.Monitor()             # monitor.read() from any thread
    model = hisdf.train(mesh, config, progress=lambda p: True, monitor=monitor)
    values = model.query(points)          # (N, 3) -> (N,)
    normals = model.gradient(points)      # (N, 3) -> (N, 3)
    surface = model.extract(256)
    vertices, triangles = surface.vertices, surface.triangles

Arrays go in as numpy arrays (converted to C-contiguous float32/uint32 only
when they are not already) and come out as new numpy arrays filled in place
by the library. Failures raise hisdf.Error with .status and .message;
cancellation raises hisdf.Cancelled. Long calls release the GIL, so another
Python thread (or a Blender timer) may call CancelToken.cancel(); progress
callables run on the calling thread. The library is found through
$HISDF_LIBRARY, next to this package, or in the checkout's target/release.
"""

from __future__ import annotations

import collections
import ctypes
import enum
import json
import os
import threading
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _capi

__all__ = [
    "CancelToken", "Cancelled", "Config", "Device", "Error", "LogLevel", "Mesh",
    "Model", "Monitor", "Samples", "Status", "TrainState", "chamfer", "evaluate", "library_path", "set_log_callback",
    "train", "version",
]

# A file name as open() takes it.
PathLike = Union[str, bytes, os.PathLike]

_lib = None
_lib_lock = threading.Lock()


def _c():
    """The library, loaded on first use so that importing never fails."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _capi.load()
        return _lib


def library_path() -> str:
    """Where the library is (or would be) loaded from."""
    return str(_capi.find_library())


class Status(enum.IntEnum):
    OK = 0
    NULL_ARGUMENT = 1
    INVALID_ARGUMENT = 2
    INVALID_HANDLE = 3
    IO = 4
    INVALID_MESH = 5
    INVALID_MODEL_FILE = 6
    TRAINING_FAILED = 7
    NO_CUDA = 8
    CANCELLED = 9
    NO_SURFACE = 10
    PANIC = 11
    UNAVAILABLE = 12
    OUT_OF_MEMORY = 13


class Device(enum.IntEnum):
    AUTO = 0
    CPU = 1
    CUDA = 2


class LogLevel(enum.IntEnum):
    OFF = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4
    TRACE = 5


class Error(Exception):
    """A failed call: .status (a Status, or the raw number from a newer
    library) and .message, the library's text."""

    def __init__(self, status, message):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        name = status.name if isinstance(status, Status) else str(status)
        super().__init__("%s: %s" % (name, message))


class Cancelled(Error):
    """A progress callable or a CancelToken stopped the call."""


def _call(name, *args):
    """Calls a C function whose last argument is HisdfError **, and turns a
    failure into an exception: the one place where that happens."""
    lib = _c()
    err = ctypes.POINTER(_capi.Error)()
    status = getattr(lib, name)(*args, ctypes.byref(err))
    if status == Status.OK:
        return
    message = lib.hisdf_error_message(err).decode("utf-8", "replace") if err else ""
    lib.hisdf_error_free(err)
    if status == Status.CANCELLED:
        raise Cancelled(status, message)
    raise Error(status, message)


def _take_bytes(name, *args):
    """Calls a C function that hands back a HisdfBytes, and returns a copy
    of its bytes (the handle is freed)."""
    handle = ctypes.POINTER(_capi.Bytes)()
    _call(name, *args, ctypes.byref(handle))
    try:
        data, size = ctypes.POINTER(ctypes.c_uint8)(), ctypes.c_size_t()
        _call("hisdf_bytes_data", handle, ctypes.byref(data), ctypes.byref(size))
        return ctypes.string_at(data, size.value)
    finally:
        _c().hisdf_bytes_free(handle)


def _byte_buffer(data):
    """A bytes-like object as (uint8 pointer, length) for the C API; the
    returned array keeps the memory alive for the call."""
    array = np.frombuffer(bytes(data), dtype=np.uint8)
    return array, _ptr(array, ctypes.c_uint8), array.size


def _frame(name, handle):
    """(centre (3,) float64, scale): p maps to (p - centre) * scale."""
    centre = np.empty(3, dtype=np.float64)
    scale = ctypes.c_double()
    _call(name, handle, _ptr(centre, ctypes.c_double), 3, ctypes.byref(scale))
    return centre, scale.value


def _f32(array):
    """A C-contiguous float32 view of `array`, copied only if it is not one
    already. Shapes are not checked here: the library refuses a length that
    is not a multiple of 3 with a status, like for any other host."""
    return np.ascontiguousarray(array, dtype=np.float32)


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


class _Progress:
    """A Python callable behind the C progress callback. An exception raised
    by the callable cancels the call and is re-raised after it returns."""

    def __init__(self, fn):
        self.fn = fn
        self.raised = None
        self.c = _capi.PROGRESS(self._trampoline) if fn is not None else _capi.PROGRESS()

    def _trampoline(self, _user_data, progress):
        try:
            return bool(self.fn(progress))
        except BaseException as e:  # noqa: B902 - KeyboardInterrupt too
            self.raised = e
            return False

    def finish(self):
        if self.raised is not None:
            raise self.raised


class _Handle:
    """Owns one C handle; freed by close(), `with`, or garbage collection."""

    _free = None

    def __init__(self, ptr):
        self._ptr = ptr

    @property
    def capi(self):
        """The raw C handle (a ctypes pointer; NULL once closed)."""
        return self._ptr

    def close(self):
        ptr, self._ptr = self._ptr, type(self._ptr)()
        if ptr and _lib is not None:
            getattr(_lib, self._free)(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def version() -> str:
    """Version of the library actually loaded."""
    return _c().hisdf_version().decode()


def config_keys() -> List[str]:
    """Every key Config.set and Config.get take."""
    return _c().hisdf_config_keys().decode().split(", ")


def presets() -> List[str]:
    """Every preset Config takes."""
    return _c().hisdf_presets().decode().split(", ")


def config_describe() -> dict:
    """Every key Config.set takes, described by the library: a list of dicts
    with "key", "type", "default" (the "fast" preset's value as Config.get
    writes it; None for "preset"), "range" and "doc", in config_keys() order."""
    return json.loads(_c().hisdf_config_describe().decode())


_log_callback = None  # kept alive while the library may call it


def set_log_callback(fn: Optional[Callable[[LogLevel, str, str], None]],
                     level: LogLevel = LogLevel.INFO) -> None:
    """Sends the library's log records to fn(level, target, message), from
    any thread; None stops them. To use Python's logging:
    hisdf.set_log_callback(lambda lvl, t, m: logging.getLogger(t).log(
        {1: 40, 2: 30, 3: 20, 4: 10, 5: 5}[lvl], m))"""
    global _log_callback
    if fn is None:
        _call("hisdf_set_log_callback", _capi.LOG(), None, LogLevel.OFF)
        return

    def trampoline(_user_data, lvl, target, message):
        try:
            fn(LogLevel(lvl), target.decode("utf-8", "replace"),
               message.decode("utf-8", "replace"))
        except Exception:
            pass  # a log line is not worth failing a computation for

    callback = _capi.LOG(trampoline)
    _call("hisdf_set_log_callback", callback, None, int(level))
    # Replaced only after the library holds the new one: the old one may
    # still be running on another thread until then.
    _log_callback = callback


class Config(_Handle):
    """Every option of sampling, network and training. Config("fast",
    iterations=500) starts from a preset and sets options by name; see
    hisdf_config_set in hisdf.h for the keys. Unknown keys or bad values
    raise Error (INVALID_ARGUMENT)."""

    _free = "hisdf_config_free"

    def __init__(self, preset: Optional[str] = "fast", **options: object) -> None:
        ptr = ctypes.POINTER(_capi.Config)()
        _call("hisdf_config_new", None if preset is None else preset.encode(),
              ctypes.byref(ptr))
        super().__init__(ptr)
        for key, value in options.items():
            self.set(key, value)

    def set(self, key: str, value: object) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        _call("hisdf_config_set", self._ptr, str(key).encode(), str(value).encode())
        return self

    __setitem__ = set

    def get(self, key: str) -> str:
        """An option's current value as text, in the form set() takes."""
        return _take_bytes("hisdf_config_get", self._ptr, str(key).encode()).decode()

    __getitem__ = get


class CancelToken(_Handle):
    """Stops a running train() or extract() when cancel() is called from any
    thread."""

    _free = "hisdf_cancel_token_free"

    def __init__(self):
        ptr = ctypes.POINTER(_capi.CancelToken)()
        _call("hisdf_cancel_token_new", ctypes.byref(ptr))
        super().__init__(ptr)

    def cancel(self) -> None:
        _call("hisdf_cancel_token_cancel", self._ptr)

    def reset(self) -> None:
        _call("hisdf_cancel_token_reset", self._ptr)


TrainState = collections.namedtuple(
    "TrainState", [name for name, _ in _capi.TrainState._fields_])
TrainState.__doc__ = """A training's state at its last progress report: running, iteration,
iterations, loss (NaN before the first report), learning_rate,
elapsed_seconds, eta_seconds (NaN until known) and trainings (how many
trainings this monitor has seen start)."""


class Monitor(_Handle):
    """A training's live state: pass it to train(..., monitor=m) and call
    m.read() from any thread (e.g. a UI timer) while the training runs on
    another; each read is one whole report."""

    _free = "hisdf_train_monitor_free"

    def __init__(self):
        ptr = ctypes.POINTER(_capi.TrainMonitor)()
        _call("hisdf_train_monitor_new", ctypes.byref(ptr))
        super().__init__(ptr)

    def read(self) -> TrainState:
        s = _capi.TrainState()
        _call("hisdf_train_monitor_read", self._ptr, ctypes.byref(s))
        return TrainState(*(getattr(s, name) for name in TrainState._fields))


def _token(cancel):
    return cancel.capi if cancel is not None else ctypes.POINTER(_capi.CancelToken)()


class Mesh(_Handle):
    """A triangle mesh in the caller's coordinates."""

    _free = "hisdf_mesh_free"

    @classmethod
    def load(cls, path: PathLike) -> Mesh:
        ptr = ctypes.POINTER(_capi.Mesh)()
        _call("hisdf_mesh_load", os.fsencode(path), ctypes.byref(ptr))
        return cls(ptr)

    @classmethod
    def from_arrays(cls, vertices: npt.ArrayLike, triangles: npt.ArrayLike) -> Mesh:
        """vertices (N, 3) floats, triangles (M, 3) 0-based indices."""
        v = _f32(vertices)
        t = np.ascontiguousarray(triangles, dtype=np.uint32)
        ptr = ctypes.POINTER(_capi.Mesh)()
        _call("hisdf_mesh_from_arrays", _ptr(v, ctypes.c_float), v.size,
              _ptr(t, ctypes.c_uint32), t.size, ctypes.byref(ptr))
        return cls(ptr)

    def _counts(self):
        nv, nt = ctypes.c_size_t(), ctypes.c_size_t()
        _call("hisdf_mesh_counts", self._ptr, ctypes.byref(nv), ctypes.byref(nt))
        return nv.value, nt.value

    def arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """(vertices (N, 3) float32, triangles (M, 3) uint32), new arrays."""
        nv, nt = self._counts()
        v = np.empty((nv, 3), dtype=np.float32)
        t = np.empty((nt, 3), dtype=np.uint32)
        _call("hisdf_mesh_copy_arrays", self._ptr, _ptr(v, ctypes.c_float), v.size,
              _ptr(t, ctypes.c_uint32), t.size)
        return v, t

    @property
    def vertices(self) -> np.ndarray:
        return self.arrays()[0]

    @property
    def triangles(self) -> np.ndarray:
        return self.arrays()[1]

    def info(self) -> Dict[str, object]:
        """Counts, topology, bounding box and area as a dict."""
        i = _capi.MeshInfo()
        _call("hisdf_mesh_info", self._ptr, ctypes.byref(i))
        out = {name: getattr(i, name) for name, _ in _capi.MeshInfo._fields_}
        out["bbox_min"] = tuple(i.bbox_min)
        out["bbox_max"] = tuple(i.bbox_max)
        return out

    @property
    def is_open(self) -> bool:
        """True when the surface is not a closed 2-manifold (info() counts
        its boundary, non-manifold and misoriented edges). Trained as a solid
        (the default) it is closed by its winding number; set
        surface="shell" to learn a thin closed band around a sheet instead."""
        return not self.info()["watertight"]

    def save(self, path: PathLike) -> None:
        _call("hisdf_mesh_save", self._ptr, os.fsencode(path))

    def to_bytes(self, format: str = "ply") -> bytes:
        """The mesh file's bytes ("obj", "ply" or "stl"), as save writes them."""
        return _take_bytes("hisdf_mesh_save_to_buffer", self._ptr, format.encode())

    @classmethod
    def from_bytes(cls, data: bytes, format: Optional[str] = None) -> Mesh:
        """A mesh from a mesh file's bytes; `format` ("obj", "ply", "stl",
        "off") is a hint, told from the content when None."""
        keep, pointer, size = _byte_buffer(data)
        ptr = ctypes.POINTER(_capi.Mesh)()
        _call("hisdf_mesh_load_from_buffer", pointer, size,
              format.encode() if format else None, ctypes.byref(ptr))
        del keep
        return cls(ptr)

    def normalisation(self) -> Tuple[np.ndarray, float]:
        """The unit-sphere frame hisdf trains and measures this mesh in:
        (centre, scale), a point p maps to (p - centre) * scale."""
        return _frame("hisdf_mesh_normalisation", self._ptr)

    def signed_distance(self, points: npt.ArrayLike) -> np.ndarray:
        """Exact signed distances (negative inside) at points (N, 3)."""
        p = _f32(points)
        out = np.empty(p.size // 3, dtype=np.float32)
        _call("hisdf_mesh_signed_distance", self._ptr, _ptr(p, ctypes.c_float), p.size,
              _ptr(out, ctypes.c_float), out.size)
        return out


def chamfer(reference: Mesh, other: Mesh, points: int = 10000, seed: int = 0) -> float:
    """The paper's Chamfer distance, in the unit-sphere frame of reference."""
    out = ctypes.c_double()
    _call("hisdf_chamfer", reference.capi, other.capi, int(points), int(seed),
          ctypes.byref(out))
    return out.value


def evaluate(reference: Mesh, other: Mesh, chamfer_points: int = 10000, emd_points: int = 500,
             f_score_threshold: float = 0.0, seed: int = 0) -> Dict[str, float]:
    """Every metric between two meshes as a dict by name ("chamfer", "emd",
    "f_score", "hausdorff", "normal_consistency", ...), in the unit-sphere
    frame of reference. f_score_threshold 0 means the library's default.
    "hausdorff" is certified: the true value lies in ["hausdorff",
    "hausdorff_upper"], a gap of at most "hausdorff_tolerance" unless the
    query cap was hit; the "_p99_" values are sample estimates."""
    raw = ctypes.POINTER(_capi.Metrics)()
    _call("hisdf_evaluate", reference.capi, other.capi, int(chamfer_points),
          int(emd_points), float(f_score_threshold), int(seed), ctypes.byref(raw))
    return _metrics_dict(raw)


def _metrics_dict(raw):
    """Every entry of a HisdfMetrics by name; frees it."""
    try:
        n = ctypes.c_size_t()
        _call("hisdf_metrics_count", raw, ctypes.byref(n))
        out = {}
        for i in range(n.value):
            name, value = ctypes.c_char_p(), ctypes.c_double()
            _call("hisdf_metrics_entry", raw, i, ctypes.byref(name), ctypes.byref(value))
            out[name.value.decode()] = value.value
        return out
    finally:
        _c().hisdf_metrics_free(raw)


class Samples(_Handle):
    """A training set: points with their true signed distances."""

    _free = "hisdf_samples_free"

    @classmethod
    def from_mesh(cls, mesh: Mesh, config: Optional[Config] = None) -> Samples:
        config = config if config is not None else Config()
        ptr = ctypes.POINTER(_capi.Samples)()
        _call("hisdf_sample", mesh.capi, config.capi, ctypes.byref(ptr))
        return cls(ptr)

    @classmethod
    def from_arrays(cls, points: npt.ArrayLike, sdf: npt.ArrayLike) -> Samples:
        p = _f32(points)
        d = _f32(sdf)
        ptr = ctypes.POINTER(_capi.Samples)()
        _call("hisdf_samples_from_arrays", _ptr(p, ctypes.c_float), p.size,
              _ptr(d, ctypes.c_float), d.size, ctypes.byref(ptr))
        return cls(ptr)

    def __len__(self) -> int:
        n = ctypes.c_size_t()
        _call("hisdf_samples_count", self._ptr, ctypes.byref(n))
        return n.value

    def arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """(points (N, 3), sdf (N,)) in the caller's coordinates, float32."""
        n = len(self)
        p = np.empty((n, 3), dtype=np.float32)
        d = np.empty(n, dtype=np.float32)
        _call("hisdf_samples_copy_arrays", self._ptr, _ptr(p, ctypes.c_float), p.size,
              _ptr(d, ctypes.c_float), d.size)
        return p, d


class Model(_Handle):
    """A trained network. Any number of threads may query it at once."""

    _free = "hisdf_model_free"

    @classmethod
    def load(cls, path: PathLike, device: Device = Device.AUTO) -> Model:
        if isinstance(device, str):
            device = Device[device.upper()]
        ptr = ctypes.POINTER(_capi.Model)()
        _call("hisdf_model_load", os.fsencode(path), int(device), ctypes.byref(ptr))
        return cls(ptr)

    def save(self, path: PathLike) -> None:
        _call("hisdf_model_save", self._ptr, os.fsencode(path))

    def to_bytes(self) -> bytes:
        """The model file's bytes, as save writes them."""
        return _take_bytes("hisdf_model_save_to_buffer", self._ptr)

    @classmethod
    def from_bytes(cls, data: bytes, device: Device = Device.AUTO) -> Model:
        """A model from a model file's bytes (what to_bytes gives)."""
        if isinstance(device, str):
            device = Device[device.upper()]
        keep, pointer, size = _byte_buffer(data)
        ptr = ctypes.POINTER(_capi.Model)()
        _call("hisdf_model_load_from_buffer", pointer, size, int(device), ctypes.byref(ptr))
        del keep
        return cls(ptr)

    def normalisation(self) -> Tuple[np.ndarray, float]:
        """The frame the network was trained in: (centre, scale), a point p
        maps to (p - centre) * scale."""
        return _frame("hisdf_model_normalisation", self._ptr)

    def query(self, points: npt.ArrayLike) -> np.ndarray:
        """SDF values (N,) at points (N, 3), in the caller's units."""
        p = _f32(points)
        out = np.empty(p.size // 3, dtype=np.float32)
        _call("hisdf_model_query", self._ptr, _ptr(p, ctypes.c_float), p.size,
              _ptr(out, ctypes.c_float), out.size)
        return out

    def gradient(self, points: npt.ArrayLike) -> np.ndarray:
        """SDF gradients (N, 3) at points (N, 3), by autograd."""
        p = _f32(points)
        out = np.empty((p.size // 3, 3), dtype=np.float32)
        if out.size != p.size:
            out = np.empty(p.size, dtype=np.float32)  # the library refuses it
        _call("hisdf_model_gradient", self._ptr, _ptr(p, ctypes.c_float), p.size,
              _ptr(out, ctypes.c_float), out.size)
        return out

    def sdf_error(self, mesh: Mesh, seed: int = 0) -> Dict[str, float]:
        """The network's SDF against the mesh's exact SDF on held-out
        samples (near the surface and uniform in the unit sphere), as a dict
        by name ("sdf_error_near", "wrong_sign_far", ...), in the model's
        unit-sphere frame."""
        raw = ctypes.POINTER(_capi.Metrics)()
        _call("hisdf_model_sdf_error", self._ptr, mesh.capi, int(seed), ctypes.byref(raw))
        return _metrics_dict(raw)

    def info(self) -> Dict[str, object]:
        i = _capi.ModelInfo()
        _call("hisdf_model_info", self._ptr, ctypes.byref(i))
        return {name: getattr(i, name) for name, _ in _capi.ModelInfo._fields_}

    def extract(self, resolution: int = 256, progress: Optional[Callable[[float], bool]] = None,
                cancel: Optional[CancelToken] = None, sparse: bool = False) -> Mesh:
        """The zero level set as a Mesh, on a resolution^3 grid; sparse=True
        samples only bricks the surface can cross (resolutions to 2048)."""
        p = _Progress(progress)
        ptr = ctypes.POINTER(_capi.Mesh)()
        config = Config(resolution=resolution, sparse=sparse)
        try:
            _call("hisdf_extract_with", self._ptr, config.capi, _token(cancel), p.c, None,
                  ctypes.byref(ptr))
        except Cancelled:
            p.finish()
            raise
        mesh = Mesh(ptr)
        p.finish()
        return mesh


def train(data: Union[Mesh, Samples], config: Optional[Config] = None,
          progress: Optional[Callable[[float], bool]] = None,
          cancel: Optional[CancelToken] = None, monitor: Optional[Monitor] = None) -> Model:
    """Trains a network on a Mesh (sampled as config says) or on Samples, on
    the calling thread. progress(fraction) returning False cancels; so does
    cancel.cancel() from another thread. Raises Cancelled then. Training a
    Mesh ends with a convergence check (config key check_convergence,
    default True): a model with no surface, spurious surfaces or a large
    error near the surface raises Error with status TRAINING_FAILED and the findings. A Monitor
    receives iteration, loss, learning rate and ETA at every report; it is
    attached to config for the duration of the call, so a config given with
    a monitor must not be used by another thread meanwhile."""
    config = config if config is not None else Config()
    p = _Progress(progress)
    ptr = ctypes.POINTER(_capi.Model)()
    name = "hisdf_train_samples" if isinstance(data, Samples) else "hisdf_train"
    if monitor is not None:
        _call("hisdf_config_set_monitor", config.capi, monitor.capi)
    try:
        _call(name, data.capi, config.capi, _token(cancel), p.c, None, ctypes.byref(ptr))
    except Cancelled:
        p.finish()
        raise
    finally:
        if monitor is not None:
            _call("hisdf_config_set_monitor", config.capi,
                  ctypes.POINTER(_capi.TrainMonitor)())
    model = Model(ptr)
    p.finish()
    return model
