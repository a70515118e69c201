"""hisdf.Monitor: the live state of a training (iteration, loss, learning
rate, ETA) read from another thread, as the Blender panel reads it."""

import math
import pathlib
import threading
import time

import pytest

import hisdf

ROOT = pathlib.Path(__file__).resolve().parents[3]
FOX = ROOT / "data" / "meshes" / "Fennec_Fox.stl"


def tiny(iterations=20, **extra):
    options = dict(iterations=iterations, width=16, depth=2, device="cpu",
                   batch_size=256, progress_every=5, surface_samples=500,
                   shells="1000:1e-3", uniform_samples=200,
                   check_convergence=False)
    options.update(extra)
    return hisdf.Config("fast", **options)


@pytest.fixture(scope="module")
def samples():
    return hisdf.Samples.from_mesh(hisdf.Mesh.load(FOX), tiny())


def test_monitor_reports_the_final_iteration_and_the_models_final_loss(samples):
    monitor = hisdf.Monitor()
    before = monitor.read()
    assert isinstance(before, hisdf.TrainState)
    assert not before.running and before.trainings == 0 and math.isnan(before.loss)

    config = tiny(iterations=20)
    model = hisdf.train(samples, config, monitor=monitor)
    state = monitor.read()
    info = model.info()
    assert not state.running
    assert state.trainings == 1
    assert state.iteration == state.iterations == info["iterations"] == 20
    assert math.isfinite(state.loss)
    assert state.loss == info["final_loss"]
    assert state.learning_rate > 0 and state.elapsed_seconds >= 0
    assert state.eta_seconds == 0

    # The monitor was attached only for that call: training again with the
    # same config leaves it as it was.
    hisdf.train(samples, config, progress=lambda p: True)
    assert monitor.read() == state


def test_monitor_is_readable_from_another_thread_while_training(samples):
    monitor = hisdf.Monitor()
    token = hisdf.CancelToken()
    failures = []

    def work():
        try:
            hisdf.train(samples, tiny(1_000_000, progress_every=1), cancel=token,
                        monitor=monitor)
        except hisdf.Cancelled:
            pass
        except Exception as e:  # re-raised on the test's thread below
            failures.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    seen = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(seen) < 3:
            s = monitor.read()
            if s.running and s.iteration > 0 and (not seen or s.iteration > seen[-1].iteration):
                seen.append(s)
            time.sleep(0.01)
    finally:
        token.cancel()
        worker.join()
    assert not failures, failures
    assert len(seen) == 3, "no live reports within 30 s"
    for s in seen:
        assert s.iterations == 1_000_000 and math.isfinite(s.loss)
        assert s.eta_seconds > 0 and math.isfinite(s.eta_seconds)
    assert not monitor.read().running, "a cancelled training clears running"
