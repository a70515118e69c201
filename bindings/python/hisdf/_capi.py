"""The C API of libhisdf.so declared for ctypes: finding the library, and
argtypes/restype for every symbol. Nothing here converts or decides; see
__init__.py for the Python-facing classes."""

import ctypes
import os
import pathlib
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double,
                    c_float, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

LIBRARY_NAME = "libhisdf.so"


def _candidates():
    env = os.environ.get("HISDF_LIBRARY")
    if env:
        yield pathlib.Path(env)
        return
    here = pathlib.Path(__file__).resolve().parent
    # A packaged add-on or wheel ships the library beside the package.
    yield here / LIBRARY_NAME
    yield here.parent / LIBRARY_NAME
    # A checkout: bindings/python/hisdf -> <repo>/target/release.
    yield here.parents[2] / "target" / "release" / LIBRARY_NAME


def find_library():
    """Path of libhisdf.so: $HISDF_LIBRARY (an override), else the one inside
    this package (an installed wheel: its RUNPATH finds libtorch in the torch
    wheel, so no LD_LIBRARY_PATH is needed), else beside the package (the
    Blender add-on), else the checkout's target/release."""
    tried = []
    for path in _candidates():
        if path.is_file():
            return path
        tried.append(str(path))
    raise OSError(
        "hisdf: libhisdf.so not found (tried: %s); set HISDF_LIBRARY or run "
        "`scripts/cargo build --release`" % ", ".join(tried))


class Error(Structure):
    pass


class Mesh(Structure):
    pass


class Model(Structure):
    pass


class Config(Structure):
    pass


class Samples(Structure):
    pass


class Bytes(Structure):
    pass


class CancelToken(Structure):
    pass


class Metrics(Structure):
    pass


class TrainMonitor(Structure):
    pass


class MeshInfo(Structure):
    _fields_ = [
        ("vertex_count", c_size_t),
        ("triangle_count", c_size_t),
        ("degenerate_triangles", c_size_t),
        ("boundary_edges", c_size_t),
        ("non_manifold_edges", c_size_t),
        ("misoriented_edges", c_size_t),
        ("components", c_size_t),
        ("unreferenced_vertices", c_size_t),
        ("watertight", c_bool),
        ("bbox_min", c_float * 3),
        ("bbox_max", c_float * 3),
        ("surface_area", c_double),
    ]


class ModelInfo(Structure):
    _fields_ = [
        ("depth", c_size_t),
        ("width", c_size_t),
        ("iterations", c_size_t),
        ("final_loss", c_double),
        ("training_seconds", c_double),
        ("on_cuda", c_bool),
    ]


class TrainState(Structure):
    _fields_ = [
        ("running", c_bool),
        ("iteration", c_size_t),
        ("iterations", c_size_t),
        ("loss", c_double),
        ("learning_rate", c_double),
        ("elapsed_seconds", c_double),
        ("eta_seconds", c_double),
        ("trainings", c_uint64),
    ]


PROGRESS = CFUNCTYPE(c_bool, c_void_p, c_double)
LOG = CFUNCTYPE(None, c_void_p, c_uint32, c_char_p, c_char_p)

Status = c_uint32
ErrorOut = POINTER(POINTER(Error))
F32 = POINTER(c_float)
U32 = POINTER(c_uint32)

# name: (restype, argtypes)
PROTOTYPES = {
    "hisdf_status_name": (c_char_p, [Status]),
    "hisdf_version": (c_char_p, []),
    "hisdf_error_status": (Status, [POINTER(Error)]),
    "hisdf_error_message": (c_char_p, [POINTER(Error)]),
    "hisdf_error_free": (None, [POINTER(Error)]),
    "hisdf_set_log_callback": (Status, [LOG, c_void_p, c_uint32, ErrorOut]),
    "hisdf_config_new": (Status, [c_char_p, POINTER(POINTER(Config)), ErrorOut]),
    "hisdf_config_set": (Status, [POINTER(Config), c_char_p, c_char_p, ErrorOut]),
    "hisdf_config_get": (Status, [POINTER(Config), c_char_p, POINTER(POINTER(Bytes)), ErrorOut]),
    "hisdf_config_keys": (c_char_p, []),
    "hisdf_presets": (c_char_p, []),
    "hisdf_config_describe": (c_char_p, []),
    "hisdf_config_free": (None, [POINTER(Config)]),
    "hisdf_config_set_monitor": (Status, [POINTER(Config), POINTER(TrainMonitor), ErrorOut]),
    "hisdf_train_monitor_new": (Status, [POINTER(POINTER(TrainMonitor)), ErrorOut]),
    "hisdf_train_monitor_read": (
        Status, [POINTER(TrainMonitor), POINTER(TrainState), ErrorOut]),
    "hisdf_train_monitor_free": (None, [POINTER(TrainMonitor)]),
    "hisdf_mesh_load": (Status, [c_char_p, POINTER(POINTER(Mesh)), ErrorOut]),
    "hisdf_mesh_from_arrays": (
        Status, [F32, c_size_t, U32, c_size_t, POINTER(POINTER(Mesh)), ErrorOut]),
    "hisdf_mesh_counts": (
        Status, [POINTER(Mesh), POINTER(c_size_t), POINTER(c_size_t), ErrorOut]),
    "hisdf_mesh_info": (Status, [POINTER(Mesh), POINTER(MeshInfo), ErrorOut]),
    "hisdf_mesh_copy_arrays": (
        Status, [POINTER(Mesh), F32, c_size_t, U32, c_size_t, ErrorOut]),
    "hisdf_mesh_save": (Status, [POINTER(Mesh), c_char_p, ErrorOut]),
    "hisdf_mesh_free": (None, [POINTER(Mesh)]),
    "hisdf_mesh_signed_distance": (
        Status, [POINTER(Mesh), F32, c_size_t, F32, c_size_t, ErrorOut]),
    "hisdf_chamfer": (
        Status, [POINTER(Mesh), POINTER(Mesh), c_size_t, c_uint64, POINTER(c_double),
                 ErrorOut]),
    "hisdf_evaluate": (
        Status, [POINTER(Mesh), POINTER(Mesh), c_size_t, c_size_t, c_double, c_uint64,
                 POINTER(POINTER(Metrics)), ErrorOut]),
    "hisdf_model_sdf_error": (
        Status, [POINTER(Model), POINTER(Mesh), c_uint64, POINTER(POINTER(Metrics)), ErrorOut]),
    "hisdf_metrics_get": (Status, [POINTER(Metrics), c_char_p, POINTER(c_double), ErrorOut]),
    "hisdf_metrics_count": (Status, [POINTER(Metrics), POINTER(c_size_t), ErrorOut]),
    "hisdf_metrics_entry": (
        Status, [POINTER(Metrics), c_size_t, POINTER(c_char_p), POINTER(c_double), ErrorOut]),
    "hisdf_metrics_free": (None, [POINTER(Metrics)]),
    "hisdf_sample": (
        Status, [POINTER(Mesh), POINTER(Config), POINTER(POINTER(Samples)), ErrorOut]),
    "hisdf_samples_from_arrays": (
        Status, [F32, c_size_t, F32, c_size_t, POINTER(POINTER(Samples)), ErrorOut]),
    "hisdf_samples_count": (Status, [POINTER(Samples), POINTER(c_size_t), ErrorOut]),
    "hisdf_samples_copy_arrays": (
        Status, [POINTER(Samples), F32, c_size_t, F32, c_size_t, ErrorOut]),
    "hisdf_samples_free": (None, [POINTER(Samples)]),
    "hisdf_train": (
        Status, [POINTER(Mesh), POINTER(Config), POINTER(CancelToken), PROGRESS, c_void_p,
                 POINTER(POINTER(Model)), ErrorOut]),
    "hisdf_train_samples": (
        Status, [POINTER(Samples), POINTER(Config), POINTER(CancelToken), PROGRESS,
                 c_void_p, POINTER(POINTER(Model)), ErrorOut]),
    "hisdf_cancel_token_new": (Status, [POINTER(POINTER(CancelToken)), ErrorOut]),
    "hisdf_cancel_token_cancel": (Status, [POINTER(CancelToken), ErrorOut]),
    "hisdf_cancel_token_reset": (Status, [POINTER(CancelToken), ErrorOut]),
    "hisdf_cancel_token_free": (None, [POINTER(CancelToken)]),
    "hisdf_model_query": (
        Status, [POINTER(Model), F32, c_size_t, F32, c_size_t, ErrorOut]),
    "hisdf_model_gradient": (
        Status, [POINTER(Model), F32, c_size_t, F32, c_size_t, ErrorOut]),
    "hisdf_model_info": (Status, [POINTER(Model), POINTER(ModelInfo), ErrorOut]),
    "hisdf_extract": (
        Status, [POINTER(Model), c_size_t, POINTER(CancelToken), PROGRESS, c_void_p,
                 POINTER(POINTER(Mesh)), ErrorOut]),
    "hisdf_extract_with": (
        Status, [POINTER(Model), POINTER(Config), POINTER(CancelToken), PROGRESS, c_void_p,
                 POINTER(POINTER(Mesh)), ErrorOut]),
    "hisdf_model_save": (Status, [POINTER(Model), c_char_p, ErrorOut]),
    "hisdf_model_load": (Status, [c_char_p, c_uint32, POINTER(POINTER(Model)), ErrorOut]),
    "hisdf_model_free": (None, [POINTER(Model)]),
    "hisdf_bytes_data": (Status, [POINTER(Bytes), POINTER(POINTER(c_uint8)), POINTER(c_size_t),
                                  ErrorOut]),
    "hisdf_bytes_free": (None, [POINTER(Bytes)]),
    "hisdf_model_save_to_buffer": (Status, [POINTER(Model), POINTER(POINTER(Bytes)), ErrorOut]),
    "hisdf_model_load_from_buffer": (
        Status, [POINTER(c_uint8), c_size_t, c_uint32, POINTER(POINTER(Model)), ErrorOut]),
    "hisdf_model_normalisation": (
        Status, [POINTER(Model), POINTER(c_double), c_size_t, POINTER(c_double), ErrorOut]),
    "hisdf_mesh_save_to_buffer": (
        Status, [POINTER(Mesh), c_char_p, POINTER(POINTER(Bytes)), ErrorOut]),
    "hisdf_mesh_load_from_buffer": (
        Status, [POINTER(c_uint8), c_size_t, c_char_p, POINTER(POINTER(Mesh)), ErrorOut]),
    "hisdf_mesh_normalisation": (
        Status, [POINTER(Mesh), POINTER(c_double), c_size_t, POINTER(c_double), ErrorOut]),
}


def load(path=None):
    """Loads libhisdf.so and declares every prototype."""
    lib = ctypes.CDLL(str(path or find_library()))
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib
