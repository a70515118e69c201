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


class NotFound(Exception):
    """A library that is not where it was looked for."""


class NotLoadable(Exception):
    """A library that is there but that the loader refused."""


def preload_torch(folder):
    """Opens libtorch's libraries in `folder` with RTLD_GLOBAL, so that
    libhisdf.so's NEEDED entries resolve to them whatever its RUNPATH says.
    Raises NotFound when it is not a libtorch folder, NotLoadable when one of
    its libraries does not load."""
    if not os.path.isfile(os.path.join(folder, "libtorch_cpu.so")):
        raise NotFound("libtorch was not found: %s has no libtorch_cpu.so, so it is not "
                       "a torch/lib folder" % folder)
    for name, required in _TORCH_LIBRARIES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            if required:
                raise NotFound("libtorch was not found: %s is missing from %s" % (name, folder))
            continue
        try:
            _preloaded.append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
        except OSError as e:
            if required:
                raise NotLoadable("libtorch was found in %s but could not be loaded (%s)"
                                  % (folder, e))
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
        _listen(_hisdf)
        return _hisdf, None
    try:
        folder = torch_folder or os.environ.get(TORCH_ENV, "")
        if folder:
            preload_torch(os.path.abspath(os.path.expanduser(folder)))
        module = _binding()
        try:
            path = module._capi.find_library()
        except OSError:
            # The binding's own message names developer settings; a user of
            # the add-on has one remedy.
            raise NotFound("libhisdf.so was not found in the add-on's folder (%s)"
                           % os.path.dirname(module.__file__))
        try:
            module.version()  # opens libhisdf.so, and with it libtorch
        except OSError as e:
            raise NotLoadable(_dependency(str(e), path))
        _listen(module)
    except Exception as e:  # noqa: BLE001 - any failure becomes the panel's message
        _load_error = _explain(e)
        return None, _load_error
    _hisdf, _load_error = module, None
    return _hisdf, None


_SET_TORCH = ("Set the libtorch folder (the torch/lib folder of PyTorch 2.11.0) in "
              "Preferences > Add-ons > hisdf")


def _dependency(text, path):
    """What the loader said about libhisdf.so at `path`, as found or not:
    a libtorch it needs and cannot find is libtorch not found; anything
    else is libhisdf.so (or the libtorch it found) refused."""
    if "cannot open shared object file" in text and ("libtorch" in text or "libc10" in text):
        return "libtorch was not found (%s)" % text.split(":")[0]
    if "undefined symbol" in text:
        return ("libhisdf.so was found but does not fit the libtorch that was loaded (%s)"
                % text.split(": ")[-1])
    return "libhisdf.so was found at %s but could not be loaded (%s)" % (path, text)


def _explain(e):
    """The panel's message for a failed load: what is missing or refused,
    then what the user can do about it."""
    text = str(e)
    if "libtorch" in text and ("not found" in text or "found in" in text):
        return "%s. %s." % (text, _SET_TORCH)
    if isinstance(e, NotFound):
        return "%s. Reinstall the add-on from its zip." % text
    if isinstance(e, NotLoadable):
        if "does not fit" in text:
            return "%s. %s." % (text, _SET_TORCH)
        return "%s. Reinstall the add-on from its zip (made for Linux x86-64)." % text
    return "the hisdf library could not be loaded (%s). Reinstall the add-on." % text


_logging = False


def _listen(module):
    """Routes the library's warnings to _on_log (again after stop_logging)."""
    global _logging
    if not _logging:
        module.set_log_callback(_on_log, module.LogLevel.WARN)
        _logging = True


def stop_logging():
    """Before the add-on goes (disabled, or Blender quitting): the library
    must not call into Python any more."""
    global _logging
    if _hisdf is not None and _logging:
        _hisdf.set_log_callback(None)
        _logging = False


# The job whose library warnings are being collected (one trains at a time);
# the library logs from its own threads, so this is read under a lock.
_listener = None
_listener_lock = threading.Lock()


def _on_log(_level, _target, message):
    """The library's log callback (warnings and errors): what the library
    has to say about a training (an open mesh, dropped triangles) goes to
    the running job's message, in the library's words."""
    with _listener_lock:
        job = _listener
    if job is not None:
        with job.lock:
            if message not in job.warnings:
                job.warnings.append(message)


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
        self.warnings = []  # the library's, from its log, in order
        self.cancel_requested_at = None
        self.finished_at = None
        self.thread = threading.Thread(target=self._run, name="hisdf-train", daemon=True)

    def start(self):
        global _listener
        with _listener_lock:
            _listener = self
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
        except hisdf.Cancelled:
            state, message = "cancelled", "training cancelled"
        except hisdf.Error as e:
            message = describe_error(hisdf, e, self.iterations)
        except MemoryError:
            message = "out of memory: lower the width, depth or sample counts"
        except Exception as e:  # noqa: BLE001 - reported in Blender, never raised there
            message = "%s: %s" % (type(e).__name__, e)
        global _listener
        with _listener_lock:
            if _listener is self:
                _listener = None
        with self.lock:
            if state in ("done", "failed") and self.warnings:
                # What the library said about the mesh (a mesh with holes and
                # what to do about it), as it said it.
                lead, details, rest = message.partition(DETAILS)
                message = "; ".join([lead] + self.warnings) + details + rest
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


# Between what to do and the library's findings in a failure's message.
DETAILS = ". Details: "


def describe_error(hisdf, e, iterations=None):
    """One line for a report: the library's message, led by what to do in
    the panel for the statuses a user can act on."""
    status = getattr(e, "status", None)
    hints = {
        hisdf.Status.INVALID_MESH: "the mesh cannot be used (needs faces with area)",
        hisdf.Status.NO_CUDA: "CUDA is not available: choose Auto or CPU",
        # The library's findings (its convergence check) follow as it wrote
        # them; the lead says which panel fields to change.
        hisdf.Status.TRAINING_FAILED: "the trained shape is not usable yet: raise Iterations%s "
        "or choose the Detail preset (a larger network), then train again" % (
            " (now %d)" % iterations if iterations else ""),
    }
    hint = hints.get(status)
    text = getattr(e, "message", "") or str(e)
    if "out of memory" in text.lower():
        hint = "out of memory: lower the width, depth or choose the CPU"
    if status == hisdf.Status.TRAINING_FAILED:
        return hint + DETAILS + text
    return "%s: %s" % (hint, text) if hint else text


def progress_lines(snap):
    """The panel's lines for a snapshot: "iteration i/N", "loss x",
    "ETA s" while training, otherwise one line."""
    if snap["state"] != "running":
        lead, details, _ = snap["message"].partition(DETAILS)
        # The library's findings are long: the report (Info editor) has
        # them; the sidebar keeps what to do.
        return [lead, "(the details are in the Info editor)"] if details else [lead]
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
