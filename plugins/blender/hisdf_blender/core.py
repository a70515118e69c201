"""The parts of the add-on that never touch bpy: finding libtorch and
libhisdf.so, and the training job that runs on a worker thread. Keeping bpy
out of this module is what makes it safe to call from the worker."""

import ctypes
import math
import os
import threading
import time

# Loaded in dependency order, so that each one's own dependencies are already
# in the process when the next is opened; the CUDA ones are optional (a
# CPU-only libtorch has none).
_TORCH_LIBRARIES = (
    ("libc10.so", True),
    ("libc10_cuda.so", False),
    ("libtorch_cpu.so", True),
    ("libtorch_cuda.so", False),
    ("libtorch.so", True),
)

# Names a user can set instead of the preference, e.g. from a launcher script.
TORCH_ENV = "HISDF_TORCH_LIB"

_hisdf = None
_load_error = None
_preloaded = []  # kept so that the handles live as long as the process


def _binding():
    """The vendored binding (a packaged add-on) or, from a checkout, the
    one in bindings/python."""
    try:
        from . import hisdf
        return hisdf
    except ImportError:
        import sys
        here = os.path.dirname(os.path.abspath(__file__))
        checkout = os.path.join(here, os.pardir, os.pardir, os.pardir, "bindings", "python")
        if os.path.isdir(checkout) and checkout not in sys.path:
            sys.path.insert(0, os.path.normpath(checkout))
        import hisdf
        return hisdf


def preload_torch(folder):
    """Opens libtorch's libraries in `folder` with RTLD_GLOBAL, so that
    libhisdf.so's NEEDED entries resolve to them whatever its RUNPATH says.
    Raises OSError naming the folder when it is not a libtorch folder."""
    if not os.path.isfile(os.path.join(folder, "libtorch_cpu.so")):
        raise OSError("%s has no libtorch_cpu.so: not a torch/lib folder" % folder)
    for name, required in _TORCH_LIBRARIES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            if required:
                raise OSError("%s is missing from %s" % (name, folder))
            continue
        try:
            _preloaded.append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
        except OSError:
            if required:
                raise
            # A CUDA build whose CUDA runtime is not installed: libhisdf.so
            # then fails to load with the missing name, a clearer message
            # than this one.


def load(torch_folder=""):
    """Loads the binding and its library once; returns (module, None) or
    (None, message). Never raises: the panel shows the message instead. A
    failed load is retried on the next call (the user may have fixed the
    preference meanwhile)."""
    global _hisdf, _load_error
    if _hisdf is not None:
        return _hisdf, None
    try:
        folder = torch_folder or os.environ.get(TORCH_ENV, "")
        if folder:
            preload_torch(os.path.abspath(os.path.expanduser(folder)))
        module = _binding()
        module.version()  # opens libhisdf.so, and with it libtorch
    except Exception as e:  # noqa: BLE001 - any failure becomes the panel's message
        _load_error = _explain(e)
        return None, _load_error
    _hisdf, _load_error = module, None
    return _hisdf, None


def _explain(e):
    text = str(e)
    if "libtorch" in text or "libc10" in text:
        return ("libtorch was not found (%s). Set the torch/lib folder of PyTorch 2.11.0 "
                "in the add-on's preferences, or $%s." % (text, TORCH_ENV))
    if "libhisdf" in text:
        return "libhisdf.so was not found (%s). Reinstall the add-on." % text
    return "the hisdf library could not be loaded: %s" % text


def last_load_error():
    return _load_error


class Job:
    """One training run on a worker thread. The worker writes only the
    fields below under `lock`; the main thread reads them through
    snapshot() from a bpy.app.timers function and applies the outcome."""

    def __init__(self, hisdf, object_key, vertices, triangles, options, model_path):
        self.hisdf = hisdf
        self.object_key = object_key
        self.vertices = vertices
        self.triangles = triangles
        self.options = dict(options)
        self.model_path = model_path
        self.iterations = int(self.options.get("iterations", 0))
        self.token = hisdf.CancelToken()
        # The library publishes iteration, loss and ETA here; snapshot()
        # reads it on the main thread while the worker trains (the read is
        # thread-safe in the library and does not take self.lock).
        self.monitor = hisdf.Monitor()
        self.lock = threading.Lock()
        self.fraction = 0.0
        self.started = time.monotonic()
        self.training_started = None
        self.phase = "sampling"
        self.state = "running"  # running | done | cancelled | failed
        self.message = ""
        self.info = {}
        self.cancel_requested_at = None
        self.finished_at = None
        self.thread = threading.Thread(target=self._run, name="hisdf-train", daemon=True)

    def start(self):
        self.thread.start()

    def cancel(self):
        with self.lock:
            if self.cancel_requested_at is None:
                self.cancel_requested_at = time.monotonic()
        self.token.cancel()

    def _progress(self, fraction):
        with self.lock:
            if self.training_started is None:
                self.training_started = time.monotonic()
                self.phase = "training"
            self.fraction = float(fraction)
        return True

    def _run(self):
        hisdf = self.hisdf
        state, message, info = "failed", "", {}
        try:
            mesh = hisdf.Mesh.from_arrays(self.vertices, self.triangles)
            preset = self.options.pop("preset", "fast")
            config = hisdf.Config(preset, **self.options)
            model = hisdf.train(mesh, config, progress=self._progress, cancel=self.token,
                                monitor=self.monitor)
            info = model.info()
            os.makedirs(os.path.dirname(self.model_path), exist_ok=True)
            model.save(self.model_path)
            model.close()
            state = "done"
            message = "trained %d iterations, final loss %.3g, %.1f s" % (
                info.get("iterations", 0), info.get("final_loss", float("nan")),
                info.get("training_seconds", 0.0))
            note = open_note(mesh.info(), self.options.get("surface", "solid"))
            if note:
                message = "%s; %s" % (message, note)
        except hisdf.Cancelled:
            state, message = "cancelled", "training cancelled"
        except hisdf.Error as e:
            message = describe_error(hisdf, e)
        except MemoryError:
            message = "out of memory: lower the width, depth or sample counts"
        except Exception as e:  # noqa: BLE001 - reported in Blender, never raised there
            message = "%s: %s" % (type(e).__name__, e)
        with self.lock:
            self.state, self.message, self.info = state, message, info
            self.finished_at = time.monotonic()
            if state == "done":
                self.fraction = 1.0

    def snapshot(self):
        """What the panel and the status bar show: a dict copied under the
        lock, with the library's live training state (iteration, loss,
        learning rate, ETA) read from the monitor."""
        try:
            live = self.monitor.read()
        except Exception:  # noqa: BLE001 - a closed monitor only loses the details
            live = None
        with self.lock:
            now = time.monotonic()
            reported = live is not None and live.iteration > 0
            if reported:
                iteration, iterations = live.iteration, live.iterations
                loss, learning_rate = live.loss, live.learning_rate
                eta = live.eta_seconds
            else:
                iteration = int(round(self.fraction * self.iterations))
                iterations, loss, learning_rate, eta = self.iterations, None, None, None
            if self.state != "running" or (eta is not None and not math.isfinite(eta)):
                eta = None
            return {
                "state": self.state,
                "phase": self.phase,
                "fraction": self.fraction,
                "iteration": iteration,
                "iterations": iterations,
                "loss": loss,
                "learning_rate": learning_rate,
                "elapsed": now - self.started,
                "eta": eta,
                "message": self.message,
                "info": dict(self.info),
                "cancel_latency": (self.finished_at - self.cancel_requested_at)
                if self.finished_at is not None and self.cancel_requested_at is not None
                else None,
            }


def open_note(mesh_info, surface):
    """The panel's note on an open source mesh (the library's counts from
    Mesh.info()), or "" for a closed one: what the shape became and what a
    sheet wants instead. The command line's note says the same."""
    if mesh_info.get("watertight", True):
        return ""
    what = "open surface: %d boundary edges" % mesh_info.get("boundary_edges", 0)
    if surface == "shell":
        return what + "; trained as a shell, a closed thin band around it"
    return what + "; it will be closed as a solid - use surface=shell for sheets"


def describe_error(hisdf, e):
    """One line for a report: the library's message, with a hint for the
    statuses a user can act on."""
    status = getattr(e, "status", None)
    hints = {
        hisdf.Status.INVALID_MESH: "the mesh cannot be used (needs faces with area)",
        hisdf.Status.NO_CUDA: "CUDA is not available: choose Auto or CPU",
        hisdf.Status.TRAINING_FAILED: "training failed",
    }
    hint = hints.get(status)
    text = getattr(e, "message", "") or str(e)
    if "out of memory" in text.lower():
        hint = "out of memory: lower the width, depth or choose the CPU"
    return "%s: %s" % (hint, text) if hint else text


def progress_lines(snap):
    """The panel's lines for a snapshot: "iteration i/N", "loss x",
    "ETA s" while training, otherwise one line."""
    if snap["state"] != "running":
        return [snap["message"]]
    if snap["phase"] == "sampling":
        return ["sampling the signed distance (%.0f s)" % snap["elapsed"]]
    lines = ["iteration %d/%d (%.0f%%)" % (
        snap["iteration"], snap["iterations"], 100.0 * snap["fraction"])]
    if snap.get("loss") is not None:
        lines.append("loss %.4g" % snap["loss"])
    if snap["eta"] is not None:
        lines.append("ETA %.0f s" % snap["eta"])
    return lines


def format_progress(snap):
    """The status-bar line for a snapshot, e.g. "hisdf: iteration 300/3000
    (10%), loss 0.0123, ETA 42 s"."""
    return "hisdf: " + ", ".join(progress_lines(snap))
