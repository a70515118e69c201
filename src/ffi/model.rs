//! Sampling, training, queries, extraction and model files across the
//! boundary, with progress callbacks and cancel tokens.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use super::handles::{
    HisdfBytes, HisdfCancelToken, HisdfConfig, HisdfMesh, HisdfModel, HisdfSamples, SampleSet,
};
use super::monitor::{Running, TrainMonitor};
use super::{
    boundary, expect_len, nonnull_arg, normalisation_out, out_arg, path_arg, point_lengths,
    points_arg, slice_arg, slice_out, Failure, HisdfError, HisdfStatus,
};
use crate::extract::{extract_mesh, extract_mesh_with};
use crate::mesh::{Centring, Normalisation, TriangleMesh};
use crate::model::{load_model, model_from_bytes, model_to_bytes, save_model, TrainedModel};
use crate::pipeline::{prepare_mesh, train_mesh, train_observed, ConvergencePolicy, Observer};
use crate::sampling::Samples;
use crate::train::{DeviceChoice, Progress};

/// Progress callback: `progress` in [0, 1]; return false to cancel (at any
/// report, the final one included: the call then returns
/// `HISDF_STATUS_CANCELLED` and writes no output). Called
/// on the thread that made the call, between steps of the work.
pub type HisdfProgressCallback =
    Option<extern "C" fn(user_data: *mut c_void, progress: f64) -> bool>;

/// Device for loading a model.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HisdfDevice {
    Auto = 0,
    Cpu = 1,
    Cuda = 2,
}

/// What `hisdf_model_info` reports about a trained model.
/// The layout is fixed for this major version: later versions report more
/// through new functions, never by growing this struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HisdfModelInfo {
    /// Hidden layers of the network.
    pub depth: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Training iterations completed.
    pub iterations: usize,
    pub final_loss: f64,
    pub training_seconds: f64,
    /// True when the network is on a CUDA device.
    pub on_cuda: bool,
}

/// Combines the optional cancel token and progress callback into the
/// closure the stages call; the token is checked first so that a cancel
/// from another thread is honoured even without a callback.
fn reporter<'a>(
    cancel: Option<&'a AtomicBool>,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
) -> impl FnMut(f64) -> bool + 'a {
    move |fraction| {
        if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
            return false;
        }
        match progress {
            Some(cb) => cb(user_data, fraction.clamp(0.0, 1.0)),
            None => true,
        }
    }
}

fn cancel_arg<'a>(cancel: *const HisdfCancelToken) -> Result<Option<&'a AtomicBool>, Failure> {
    if cancel.is_null() {
        Ok(None)
    } else {
        HisdfCancelToken::get(cancel).map(Some)
    }
}

/// The C caller's progress callback, cancel token and monitor as the
/// pipeline's observer.
struct CallObserver<'a, R: FnMut(f64) -> bool> {
    report: R,
    monitor: Option<&'a TrainMonitor>,
}

impl<R: FnMut(f64) -> bool> Observer for CallObserver<'_, R> {
    fn progress(&mut self, p: &Progress) -> bool {
        // The report before training has no iteration for the monitor.
        if let Some(m) = self.monitor.filter(|_| p.iteration > 0) {
            m.update(p);
        }
        (self.report)(p.iteration as f64 / p.iterations.max(1) as f64)
    }
}

/// Near-surface sampling of a mesh's true SDF as the configuration says
/// (surface_samples, shells, uniform_samples, seed). The set can be read back
/// with `hisdf_samples_copy_arrays` or trained on with
/// `hisdf_train_samples`.
#[no_mangle]
pub extern "C" fn hisdf_sample(
    mesh: *const HisdfMesh,
    config: *const HisdfConfig,
    out: *mut *mut HisdfSamples,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        let recipe = &HisdfConfig::get(config)?.job.recipe;
        out_arg(out, "out")?;
        let prepared = prepare_mesh(m.clone())?;
        let set = SampleSet {
            samples: recipe.samples(&prepared),
            normalisation: prepared.normalisation,
        };
        unsafe { *out = HisdfSamples::new(set) };
        Ok(())
    })
}

/// A training set from the caller's own data: `points` holds `points_len`
/// floats (x, y, z per point) and `sdf` the `sdf_len` = `points_len / 3`
/// signed distances, negative inside. Training happens in the unit sphere
/// around all the points; queries and extraction map back.
#[no_mangle]
pub extern "C" fn hisdf_samples_from_arrays(
    points: *const f32,
    points_len: usize,
    sdf: *const f32,
    sdf_len: usize,
    out: *mut *mut HisdfSamples,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        point_lengths(points_len, "sdf", sdf_len, 1)?;
        let pts = points_arg(points, points_len, "points")?;
        let values = slice_arg(sdf, sdf_len, "sdf")?;
        out_arg(out, "out")?;
        if pts.is_empty() {
            return Err(Failure::invalid(
                "no samples: points is empty; pass at least one point (x, y, z) with its signed distance",
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Failure::invalid(format!(
                "sdf[{i}] is {}; pass a finite signed distance for every point, or drop that point",
                values[i]
            )));
        }
        let cloud = TriangleMesh {
            vertices: pts,
            triangles: Vec::new(),
        };
        let normalisation = Normalisation::fit(&cloud, Centring::BoundingBox, 0.0);
        let to_f32 = |q: [f64; 3]| [q[0] as f32, q[1] as f32, q[2] as f32];
        let samples = Samples {
            points: cloud
                .vertices
                .iter()
                .map(|p| to_f32(normalisation.to_normalised(p.map(f64::from))))
                .collect(),
            sdf: values
                .iter()
                .map(|&d| normalisation.distance_to_normalised(d as f64) as f32)
                .collect(),
        };
        unsafe {
            *out = HisdfSamples::new(SampleSet {
                samples,
                normalisation,
            })
        };
        Ok(())
    })
}

/// Number of samples in a set.
#[no_mangle]
pub extern "C" fn hisdf_samples_count(
    samples: *const HisdfSamples,
    count: *mut usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let set = HisdfSamples::get(samples)?;
        out_arg(count, "count")?;
        unsafe { *count = set.samples.len() };
        Ok(())
    })
}

/// Copies a training set out in the caller's coordinates and units:
/// `points` must hold exactly 3 x count floats, `sdf` exactly count floats.
#[no_mangle]
pub extern "C" fn hisdf_samples_copy_arrays(
    samples: *const HisdfSamples,
    points: *mut f32,
    points_len: usize,
    sdf: *mut f32,
    sdf_len: usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let set = HisdfSamples::get(samples)?;
        nonnull_arg(points, points_len, "points")?;
        nonnull_arg(sdf, sdf_len, "sdf")?;
        let n = set.samples.len();
        expect_len("points", points_len, n * 3)?;
        expect_len("sdf", sdf_len, n)?;
        let p = slice_out(points, points_len, "points")?;
        let d = slice_out(sdf, sdf_len, "sdf")?;
        let norm = set.normalisation;
        for (dst, q) in p.chunks_exact_mut(3).zip(&set.samples.points) {
            let o = norm.to_original(q.map(f64::from));
            dst.copy_from_slice(&[o[0] as f32, o[1] as f32, o[2] as f32]);
        }
        for (dst, &s) in d.iter_mut().zip(&set.samples.sdf) {
            *dst = norm.distance_to_original(s as f64) as f32;
        }
        Ok(())
    })
}

/// Frees a training set; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_samples_free(samples: *mut HisdfSamples) {
    super::release(|| HisdfSamples::free(samples));
}

/// Samples the true SDF of `mesh` and trains a network, as `config` says.
/// Runs on the calling thread. `cancel` (optional, may be NULL) stops it
/// when another thread cancels the token; `progress` (optional) is called
/// every `progress_every` iterations and stops it by returning false. Either
/// way the status is `HISDF_STATUS_CANCELLED` and nothing is written to
/// `*out`. Unless the config's `check_convergence` is false, the trained
/// network is then checked against the mesh (a surface where the mesh has
/// one and none elsewhere, a falling loss); a model that fails gives
/// `HISDF_STATUS_TRAINING_FAILED` with the findings in the message, and
/// nothing is written to `*out`.
#[no_mangle]
pub extern "C" fn hisdf_train(
    mesh: *const HisdfMesh,
    config: *const HisdfConfig,
    cancel: *const HisdfCancelToken,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
    out: *mut *mut HisdfModel,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        let settings = HisdfConfig::get(config)?;
        let recipe = &settings.job.recipe;
        let cancel = cancel_arg(cancel)?;
        out_arg(out, "out")?;
        let monitor = settings.monitor.as_deref();
        let _running = Running::start(monitor, recipe.training.iterations);
        let mut observer = CallObserver {
            report: reporter(cancel, progress, user_data),
            monitor,
        };
        let policy = if settings.job.check_convergence {
            ConvergencePolicy::Require
        } else {
            ConvergencePolicy::Skip
        };
        let job = train_mesh(m.clone(), recipe, policy, &mut observer)?;
        unsafe { *out = HisdfModel::new(job.model) };
        Ok(())
    })
}

/// Trains a network on a training set (from `hisdf_sample` or
/// `hisdf_samples_from_arrays`); otherwise as `hisdf_train`.
#[no_mangle]
pub extern "C" fn hisdf_train_samples(
    samples: *const HisdfSamples,
    config: *const HisdfConfig,
    cancel: *const HisdfCancelToken,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
    out: *mut *mut HisdfModel,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let set = HisdfSamples::get(samples)?;
        let settings = HisdfConfig::get(config)?;
        let recipe = &settings.job.recipe;
        let cancel = cancel_arg(cancel)?;
        out_arg(out, "out")?;
        let monitor = settings.monitor.as_deref();
        let _running = Running::start(monitor, recipe.training.iterations);
        let mut observer = CallObserver {
            report: reporter(cancel, progress, user_data),
            monitor,
        };
        let (model, _) = train_observed(&set.samples, set.normalisation, recipe, &mut observer)?;
        unsafe { *out = HisdfModel::new(model) };
        Ok(())
    })
}

/// A new cancel token, not cancelled.
#[no_mangle]
pub extern "C" fn hisdf_cancel_token_new(
    out: *mut *mut HisdfCancelToken,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        out_arg(out, "out")?;
        unsafe { *out = HisdfCancelToken::new(AtomicBool::new(false)) };
        Ok(())
    })
}

/// Cancels: every call using this token stops at its next check and returns
/// `HISDF_STATUS_CANCELLED`, and later calls stop at once until
/// `hisdf_cancel_token_reset`. Safe from any thread at any time.
#[no_mangle]
pub extern "C" fn hisdf_cancel_token_cancel(
    token: *const HisdfCancelToken,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        HisdfCancelToken::get(token)?.store(true, Ordering::Release);
        Ok(())
    })
}

/// Makes a cancelled token usable again.
#[no_mangle]
pub extern "C" fn hisdf_cancel_token_reset(
    token: *const HisdfCancelToken,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        HisdfCancelToken::get(token)?.store(false, Ordering::Release);
        Ok(())
    })
}

/// Frees a cancel token once no running call uses it; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_cancel_token_free(token: *mut HisdfCancelToken) {
    super::release(|| HisdfCancelToken::free(token));
}

/// SDF values of the network: `points` holds `points_len` floats (x, y, z
/// per point, caller's coordinates), `values` receives `values_len` =
/// `points_len / 3` values in the caller's units.
#[no_mangle]
pub extern "C" fn hisdf_model_query(
    model: *const HisdfModel,
    points: *const f32,
    points_len: usize,
    values: *mut f32,
    values_len: usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        point_lengths(points_len, "values", values_len, 1)?;
        let pts = points_arg(points, points_len, "points")?;
        let out = slice_out(values, values_len, "values")?;
        out.copy_from_slice(&model.query(&pts));
        Ok(())
    })
}

fn gradients(model: &TrainedModel, points: &[[f32; 3]]) -> Result<Vec<f32>, Failure> {
    Ok(model.gradient(points)?.into_iter().flatten().collect())
}

/// Gradients of the network's SDF (by autograd): `points` holds
/// `points_len` floats (x, y, z per point), `gradients` receives
/// `gradients_len` = `points_len` floats (dx, dy, dz per point). Normalised,
/// a gradient is the surface normal near the surface.
#[no_mangle]
pub extern "C" fn hisdf_model_gradient(
    model: *const HisdfModel,
    points: *const f32,
    points_len: usize,
    gradients_out: *mut f32,
    gradients_len: usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        point_lengths(points_len, "gradients", gradients_len, 3)?;
        let pts = points_arg(points, points_len, "points")?;
        let out = slice_out(gradients_out, gradients_len, "gradients")?;
        out.copy_from_slice(&gradients(model, &pts)?);
        Ok(())
    })
}

/// The network's shape and how its training went.
#[no_mangle]
pub extern "C" fn hisdf_model_info(
    model: *const HisdfModel,
    out: *mut HisdfModelInfo,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        out_arg(out, "out")?;
        let meta = &model.metadata;
        unsafe {
            *out = HisdfModelInfo {
                depth: model.network.config.depth,
                width: model.network.config.width,
                iterations: meta.iterations,
                final_loss: meta.final_loss,
                training_seconds: meta.seconds,
                on_cuda: model.network.device().is_cuda(),
            }
        };
        Ok(())
    })
}

/// Extracts the zero level set on a `resolution`^3 grid (8 to 1024) as a new
/// mesh in the caller's coordinates. `cancel` and `progress` are optional and
/// work as in `hisdf_train`.
#[no_mangle]
pub extern "C" fn hisdf_extract(
    model: *const HisdfModel,
    resolution: usize,
    cancel: *const HisdfCancelToken,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        let cancel = cancel_arg(cancel)?;
        out_arg(out, "out")?;
        let mut report = reporter(cancel, progress, user_data);
        let mesh = extract_mesh(model, resolution, &mut report)?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// Extracts the zero level set as `config` says (keys resolution and
/// sparse, see `hisdf_config_set`): the sparse extraction samples the
/// network only in bricks the surface can cross, so resolutions up to 2048
/// fit in memory. Otherwise as `hisdf_extract`.
#[no_mangle]
pub extern "C" fn hisdf_extract_with(
    model: *const HisdfModel,
    config: *const HisdfConfig,
    cancel: *const HisdfCancelToken,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        let settings = HisdfConfig::get(config)?;
        let cancel = cancel_arg(cancel)?;
        out_arg(out, "out")?;
        let mut report = reporter(cancel, progress, user_data);
        let extraction = extract_mesh_with(model, &settings.job.extract, &mut report)?;
        unsafe { *out = HisdfMesh::new(extraction.mesh) };
        Ok(())
    })
}

/// Saves a model file (atomically: an existing file survives a failure).
/// A model that loading would refuse (a NaN or infinite weight, a frame not
/// finite in single precision) is not written: `HISDF_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn hisdf_model_save(
    model: *const HisdfModel,
    path: *const c_char,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        let path = path_arg(path)?;
        save_model(model, &path)?;
        Ok(())
    })
}

/// Loads a model file onto `device`, a `HisdfDevice` (taken as an integer
/// so that any value is safe: an unknown one is refused).
#[no_mangle]
pub extern "C" fn hisdf_model_load(
    path: *const c_char,
    device: u32,
    out: *mut *mut HisdfModel,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let path = path_arg(path)?;
        out_arg(out, "out")?;
        let model = load_model(&path, device_arg(device)?)?;
        unsafe { *out = HisdfModel::new(model) };
        Ok(())
    })
}

/// A `HisdfDevice` value, resolved (CUDA refused where there is none).
fn device_arg(device: u32) -> Result<tch::Device, Failure> {
    let choice = match device {
        d if d == HisdfDevice::Auto as u32 => DeviceChoice::Auto,
        d if d == HisdfDevice::Cpu as u32 => DeviceChoice::Cpu,
        d if d == HisdfDevice::Cuda as u32 => DeviceChoice::Cuda,
        d => return Err(Failure::invalid(format!(
                "unknown device {d}; use HISDF_DEVICE_AUTO (0), HISDF_DEVICE_CPU (1) or HISDF_DEVICE_CUDA (2)"
            ))),
    };
    Ok(choice.resolve()?)
}

/// The model file's bytes in memory, for hosts that store models inside
/// their own documents: the same bytes `hisdf_model_save` writes, read back
/// by `hisdf_model_load_from_buffer` (or by `hisdf_model_load` once
/// written to a file). Refuses what `hisdf_model_save` refuses.
#[no_mangle]
pub extern "C" fn hisdf_model_save_to_buffer(
    model: *const HisdfModel,
    out: *mut *mut HisdfBytes,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        out_arg(out, "out")?;
        let bytes = model_to_bytes(model)?;
        unsafe { *out = HisdfBytes::new(bytes) };
        Ok(())
    })
}

/// Loads a model from a model file's `len` bytes at `data` (copied; the
/// buffer may be freed afterwards) onto `device`, as `hisdf_model_load`.
#[no_mangle]
pub extern "C" fn hisdf_model_load_from_buffer(
    data: *const u8,
    len: usize,
    device: u32,
    out: *mut *mut HisdfModel,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let bytes = slice_arg(data, len, "data")?;
        out_arg(out, "out")?;
        let model = model_from_bytes(bytes, device_arg(device)?)?;
        unsafe { *out = HisdfModel::new(model) };
        Ok(())
    })
}

/// The frame the model was trained in: a point p in the caller's
/// coordinates is (p - centre) * scale in the network's unit-sphere frame,
/// and an SDF value d there is d / scale in the caller's units. `centre`
/// receives 3 doubles (`centre_len` must be 3).
#[no_mangle]
pub extern "C" fn hisdf_model_normalisation(
    model: *const HisdfModel,
    centre: *mut f64,
    centre_len: usize,
    scale: *mut f64,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        normalisation_out(model.normalisation, centre, centre_len, scale)
    })
}

/// Frees a model; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_model_free(model: *mut HisdfModel) {
    super::release(|| HisdfModel::free(model));
}
