"""The Python binding as a script or Blender add-on uses it: the whole
pipeline on the fox, numpy in and out, errors as exceptions with statuses,
progress callables, cancellation from another thread."""

import pathlib
import threading
import time

import numpy as np
import pytest

import hisdf

ROOT = pathlib.Path(__file__).resolve().parents[3]
FOX = ROOT / "data" / "meshes" / "Fennec_Fox.stl"


def tiny(iterations=30, **extra):
    options = dict(iterations=iterations, width=16, depth=2, device="cpu",
                   batch_size=512, progress_every=5, surface_samples=1000,
                   shells="2000:1e-3,2000:1e-4", uniform_samples=500,
                   check_convergence=False)
    options.update(extra)
    return hisdf.Config("fast", **options)


@pytest.fixture(scope="module")
def fox():
    return hisdf.Mesh.load(FOX)


@pytest.fixture(scope="module")
def model(fox):
    return hisdf.train(fox, tiny())


def test_an_unconverged_model_is_refused(fox):
    # Thirty iterations of a 2x16 network do not fit the fox: the check
    # after training refuses the model as TRAINING_FAILED.
    with pytest.raises(hisdf.Error) as caught:
        hisdf.train(fox, tiny(check_convergence=True))
    assert caught.value.status == hisdf.Status.TRAINING_FAILED
    assert "did not converge" in caught.value.message


def test_version_and_library():
    assert hisdf.version().count(".") == 2
    assert pathlib.Path(hisdf.library_path()).is_file()


def test_pipeline(fox, model, tmp_path):
    info = fox.info()
    assert info["triangle_count"] == fox.triangles.shape[0] > 100
    lo, hi = np.array(info["bbox_min"]), np.array(info["bbox_max"])
    points = np.stack([lo, (lo + hi) / 2, hi + (hi - lo)]).astype(np.float32)

    exact = fox.signed_distance(points)
    assert exact.shape == (3,)
    assert exact[2] > np.linalg.norm(hi - lo) * 0.99  # far outside

    values = model.query(points)
    grads = model.gradient(points)
    assert values.shape == (3,) and grads.shape == (3, 3)
    assert np.isfinite(values).all() and np.isfinite(grads).all()
    assert model.info()["width"] == 16 and model.info()["iterations"] == 30

    calls = []
    surface = model.extract(24, progress=lambda p: calls.append(p) or True)
    assert calls and calls[-1] == 1.0 and calls == sorted(calls)
    v, t = surface.arrays()
    assert v.dtype == np.float32 and v.shape[1] == 3 and t.dtype == np.uint32
    assert t.max() < len(v)
    again = hisdf.Mesh.from_arrays(v, t)
    assert again.info()["vertex_count"] == len(v)
    assert hisdf.chamfer(fox, surface, points=2000, seed=1) > 0
    sparse = model.extract(24, sparse=True)
    assert hisdf.chamfer(surface, sparse, points=2000, seed=1) < 1e-2
    metrics = hisdf.evaluate(fox, surface, chamfer_points=2000, emd_points=100, seed=1)
    assert metrics["chamfer"] > 0 and 0 <= metrics["f_score"] <= 1
    assert metrics["emd_points"] == 100
    held_out = model.sdf_error(fox, seed=3)
    assert held_out["sdf_error_near"] >= 0 and 0 <= held_out["wrong_sign_far"] <= 1
    assert held_out["sdf_min"] <= held_out["sdf_max"]

    path = tmp_path / "fox.safetensors"
    model.save(path)
    loaded = hisdf.Model.load(path, "cpu")
    np.testing.assert_array_equal(loaded.query(points), values)
    surface.save(tmp_path / "fox.obj")
    assert hisdf.Mesh.load(tmp_path / "fox.obj").info()["triangle_count"] == len(t)


def test_inputs_of_any_layout_are_accepted(model):
    p64 = np.random.default_rng(0).normal(size=(50, 3))  # float64
    strided = np.asfortranarray(p64.astype(np.float32))
    expected = model.query(p64.astype(np.float32))
    np.testing.assert_array_equal(model.query(p64), expected)
    np.testing.assert_array_equal(model.query(strided), expected)
    np.testing.assert_array_equal(model.query(p64.tolist()), expected)


def test_samples_round_trip_and_training_from_them(fox):
    config = tiny(10)
    samples = hisdf.Samples.from_mesh(fox, config)
    assert len(samples) == 5500
    points, sdf = samples.arrays()
    # Surface samples come first and lie on the mesh.
    assert np.abs(fox.signed_distance(points[:1000])).max() < 1e-3 * np.ptp(points)
    own = hisdf.Samples.from_arrays(points, sdf)
    p2, s2 = own.arrays()
    np.testing.assert_allclose(p2, points, atol=1e-4 * np.ptp(points))
    np.testing.assert_allclose(s2, sdf, atol=1e-4 * np.ptp(points))
    model = hisdf.train(own, config)
    assert model.info()["iterations"] == 10


def test_errors_carry_status_and_message(fox, model, tmp_path):
    with pytest.raises(hisdf.Error) as e:
        hisdf.Mesh.load(tmp_path / "missing.stl")
    assert e.value.status == hisdf.Status.IO and "missing.stl" in e.value.message
    with pytest.raises(hisdf.Error) as e:
        hisdf.Config("fast", no_such_key=1)
    assert e.value.status == hisdf.Status.INVALID_ARGUMENT
    assert "no_such_key" in e.value.message
    with pytest.raises(hisdf.Error) as e:
        hisdf.Config("fast", width=0)
    assert e.value.status == hisdf.Status.INVALID_ARGUMENT
    with pytest.raises(hisdf.Error) as e:
        model.query(np.zeros(4, dtype=np.float32))  # not xyz triples
    assert e.value.status == hisdf.Status.INVALID_ARGUMENT
    with pytest.raises(hisdf.Error) as e:
        hisdf.Model.load(FOX)
    assert e.value.status == hisdf.Status.INVALID_MODEL_FILE
    with pytest.raises(hisdf.Error) as e:
        hisdf.Mesh.from_arrays(np.zeros((3, 3)), np.array([[0, 1, 9]]))
    assert e.value.status == hisdf.Status.INVALID_MESH
    closed = hisdf.Mesh.load(FOX)
    closed.close()
    with pytest.raises(hisdf.Error) as e:
        closed.info()
    assert e.value.status == hisdf.Status.NULL_ARGUMENT


def test_progress_callable_cancels_and_its_exception_propagates(fox, model):
    with pytest.raises(hisdf.Cancelled):
        hisdf.train(fox, tiny(), progress=lambda p: False)

    class Mine(Exception):
        pass

    def boom(p):
        raise Mine()

    with pytest.raises(Mine):
        model.extract(24, progress=boom)


def test_cancel_from_another_thread(fox):
    token = hisdf.CancelToken()
    timer = threading.Timer(0.3, token.cancel)
    timer.start()
    start = time.monotonic()
    with pytest.raises(hisdf.Cancelled):
        hisdf.train(fox, tiny(1_000_000, progress_every=1), cancel=token)
    timer.join()
    assert time.monotonic() - start < 30


def test_logs_reach_a_python_callable(fox):
    records = []
    hisdf.set_log_callback(lambda lvl, target, msg: records.append((lvl, target, msg)),
                           hisdf.LogLevel.DEBUG)
    try:
        with pytest.raises(hisdf.Error):
            hisdf.Config("fast", iterations="many")
    finally:
        hisdf.set_log_callback(None)
    assert any("iterations" in msg for _, _, msg in records)
    assert all(target.startswith("hisdf") for _, target, _ in records)


@pytest.mark.parametrize("scale, stray", [(1e-30, False), (1e30, False), (1.0, True)])
def test_exact_sdf_across_the_range_of_finite_coordinates(scale, stray):
    """A tetrahedron at scales 1e-30 and 1e30, and one with an unreferenced
    vertex at 1e30: the exact SDF through the C API is right everywhere."""
    corners = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]] + ([[1e30 / scale] * 3] if stray else [])
    vertices = np.array(corners, dtype=np.float64) * scale
    triangles = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]
    mesh = hisdf.Mesh.from_arrays(vertices.astype(np.float32), triangles)
    points = np.array([[0.1] * 3, [0.2] * 3, [2.0] * 3]) * scale
    got = mesh.signed_distance(points.astype(np.float32)).astype(np.float64)
    want = np.array([-0.1, -0.2, 5.0 / np.sqrt(3.0)]) * scale
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_models_and_meshes_round_trip_through_bytes(fox, model):
    points = np.array([[0.0, 0.0, 0.0], [10.0, -3.0, 2.0]], dtype=np.float32)
    again = hisdf.Model.from_bytes(model.to_bytes(), device="cpu")
    np.testing.assert_array_equal(again.query(points), model.query(points))
    centre, scale = model.normalisation()
    mesh_centre, mesh_scale = fox.normalisation()
    np.testing.assert_allclose(centre, mesh_centre)
    assert scale == pytest.approx(mesh_scale) and scale > 0
    for fmt in ["obj", "ply", "stl"]:
        back = hisdf.Mesh.from_bytes(fox.to_bytes(fmt))
        assert back.info()["triangle_count"] == fox.info()["triangle_count"]
    broken = bytearray(model.to_bytes())
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(hisdf.Error) as caught:
        hisdf.Model.from_bytes(bytes(broken))
    assert caught.value.status == hisdf.Status.INVALID_MODEL_FILE


def test_settings_read_back_and_the_lists_are_the_library_s():
    config = hisdf.Config("detail")
    assert config.get("precision") == "bf16" and config["scheduler"] == "cosine"
    config.set("iterations", 1234).set("sparse", True)
    assert config.get("iterations") == "1234" and config.get("sparse") == "true"
    for key in hisdf.config_keys():
        if key in ("preset", "geometric_radius"):
            continue
        config.set(key, config.get(key))  # what is read can be set again
    with pytest.raises(hisdf.Error) as caught:
        config.get("no_such_key")
    assert caught.value.status == hisdf.Status.INVALID_ARGUMENT
    assert hisdf.presets() == ["fast", "detail", "paper-l1", "paper-curriculum"]
    assert "precision" in hisdf.config_keys()


def test_every_key_is_described_by_the_library():
    described = hisdf.config_describe()
    assert [d["key"] for d in described] == hisdf.config_keys()
    fast = hisdf.Config("fast")
    for d in described:
        assert d["type"] in ("integer", "number", "boolean", "choice", "text")
        assert d["range"] and d["doc"]
        if d["key"] == "preset":
            assert d["default"] is None
        else:
            assert d["default"] == fast.get(d["key"])


def _damaged(model_bytes, weight=None, centre=None):
    """The model file's bytes with one weight or the normalisation centre
    replaced, and the checksum recomputed over the damaged weights (as a
    diverged training or a broken writer would leave them), so only the
    finiteness check at load can refuse it."""
    import json
    import struct
    n = struct.unpack("<Q", model_bytes[:8])[0]
    header = json.loads(model_bytes[8:8 + n])
    data = bytearray(model_bytes[8 + n:])
    meta = header.pop("__metadata__")
    if weight is not None:
        name, element, value = weight
        start = header[name]["data_offsets"][0] + 4 * element
        data[start:start + 4] = struct.pack("<f", value)
    if centre is not None:
        normalisation = json.loads(meta["normalisation"])
        normalisation["centre"] = centre
        meta["normalisation"] = json.dumps(normalisation)

    # FNV-1a over the tensors in the network's layer order (weight, weight_g,
    # bias per layer, the output layer last), as the library writes it.
    def layer_order(name):
        layer, kind = name.rsplit(".", 1)
        index = 10**9 if layer == "output" else int(layer.split(".")[1])
        return index, ["weight", "weight_g", "bias"].index(kind)
    h = 0xcbf29ce484222325
    for name in sorted(header, key=layer_order):
        a, b = header[name]["data_offsets"]
        for byte in data[a:b]:
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    meta["checksum_fnv1a64"] = f"{h:016x}"
    header["__metadata__"] = meta
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


@pytest.mark.parametrize("damage, needle", [
    (dict(weight=("hidden.0.weight", 4, float("nan"))), "tensor hidden.0.weight holds NaN at element 4"),
    (dict(weight=("output.bias", 0, float("inf"))), "tensor output.bias holds inf at element 0"),
    (dict(centre=[0.0, 1e308, 0.0]), "centre 1e308 (y)"),
])
def test_a_model_not_finite_in_single_precision_is_refused_at_load(model, tmp_path, damage, needle):
    good = model.to_bytes()
    # The rebuilt file itself is sound: undamaged, it loads and answers.
    again = hisdf.Model.from_bytes(_damaged(good), device="cpu")
    assert np.isfinite(again.query(np.zeros((1, 3), dtype=np.float32))).all()
    bad = _damaged(good, **damage)
    with pytest.raises(hisdf.Error) as e:
        hisdf.Model.from_bytes(bad, device="cpu")
    assert e.value.status == hisdf.Status.INVALID_MODEL_FILE
    assert needle in e.value.message and "retrain" in e.value.message, e.value.message
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bad)
    with pytest.raises(hisdf.Error) as e:
        hisdf.Model.load(path, device="cpu")
    assert e.value.status == hisdf.Status.INVALID_MODEL_FILE
    assert needle in e.value.message and str(path) in e.value.message


def test_an_open_mesh_says_it_is_open():
    # The unit cube without its top face: four boundary edges.
    v = [[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    t = [[0, 2, 6], [0, 6, 4], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],
         [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5]]
    open_box = hisdf.Mesh.from_arrays(v, t)
    assert open_box.is_open
    assert open_box.info()["boundary_edges"] == 4
    closed = hisdf.Mesh.from_arrays(v, t + [[1, 5, 7], [1, 7, 3]])
    assert not closed.is_open
