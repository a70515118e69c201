//! The C API. This layer only translates: C types in, Rust stages called,
//! statuses and owned errors out. Conventions (see include/hisdf.h):
//!
//! - Every function returns a `HisdfStatus`; `HISDF_STATUS_OK` is 0.
//! - Failures can carry a message in an owned `HisdfError` written through
//!   the optional last argument `HisdfError **error` (pass NULL to ignore).
//!   We chose an owned error object over a thread-local "last error" so that
//!   a message can never be overwritten by another call, is safe to pass
//!   between threads, and is freed by `hisdf_error_free`.
//! - Inputs come before outputs; outputs are written only on success.
//! - Handles are created by this library and freed by its `*_free` function,
//!   which accepts NULL. A freed or foreign pointer is detected (by a tag in
//!   the handle) where the memory is still readable and refused with
//!   `HISDF_STATUS_INVALID_HANDLE`.
//! - No panic crosses this boundary: a caught panic is `HISDF_STATUS_PANIC`.

// These functions are entry points for C, where `unsafe` means nothing: the
// C caller vouches for its pointers, and we check every one we can (NULL,
// handle tags, sizes) before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod handles;

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use handles::{HisdfMesh, HisdfModel};

use crate::extract::{extract_mesh, ExtractError};
use crate::mesh::{MeshError, TriangleMesh};
use crate::metrics::chamfer_meshes;
use crate::model::{load_model, save_model, ModelFileError};
use crate::pipeline::{prepare_mesh, Preset};
use crate::sampling::near_surface;
use crate::sdf::MeshSdf;
use crate::train::{train, DeviceChoice, TrainError};

/// Result of every call. Values are fixed forever: new statuses get new
/// numbers, old numbers are never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HisdfStatus {
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is out of range or a buffer has the wrong size.
    InvalidArgument = 2,
    /// A handle is not one of ours, or was already freed.
    InvalidHandle = 3,
    /// A file could not be read or written.
    Io = 4,
    /// A mesh is malformed or unusable (empty, NaN, bad indices).
    InvalidMesh = 5,
    /// A model file is not a hisdf model, is corrupted, or is too new.
    InvalidModelFile = 6,
    /// Training failed (diverged, bad configuration).
    TrainingFailed = 7,
    /// CUDA was requested but is not available.
    NoCuda = 8,
    /// The progress callback or `hisdf_cancel` asked to stop.
    Cancelled = 9,
    /// Extraction found no surface.
    NoSurface = 10,
    /// A bug in hisdf: a panic was caught at the boundary.
    Panic = 11,
}

/// Returns a static, NUL-terminated name for a status, e.g. "HISDF_STATUS_OK".
#[no_mangle]
pub extern "C" fn hisdf_status_name(status: HisdfStatus) -> *const c_char {
    let s: &'static [u8] = match status as u32 {
        0 => b"HISDF_STATUS_OK\0",
        1 => b"HISDF_STATUS_NULL_ARGUMENT\0",
        2 => b"HISDF_STATUS_INVALID_ARGUMENT\0",
        3 => b"HISDF_STATUS_INVALID_HANDLE\0",
        4 => b"HISDF_STATUS_IO\0",
        5 => b"HISDF_STATUS_INVALID_MESH\0",
        6 => b"HISDF_STATUS_INVALID_MODEL_FILE\0",
        7 => b"HISDF_STATUS_TRAINING_FAILED\0",
        8 => b"HISDF_STATUS_NO_CUDA\0",
        9 => b"HISDF_STATUS_CANCELLED\0",
        10 => b"HISDF_STATUS_NO_SURFACE\0",
        11 => b"HISDF_STATUS_PANIC\0",
        _ => b"HISDF_STATUS_UNKNOWN\0",
    };
    s.as_ptr() as *const c_char
}

/// The version of the library actually loaded, e.g. "0.1.0" (static string).
#[no_mangle]
pub extern "C" fn hisdf_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// An error: a status and a readable message. Owned by the caller once
/// returned; free with `hisdf_error_free`.
pub struct HisdfError {
    status: HisdfStatus,
    message: std::ffi::CString,
}

/// The status an error carries.
#[no_mangle]
pub extern "C" fn hisdf_error_status(error: *const HisdfError) -> HisdfStatus {
    match unsafe { error.as_ref() } {
        Some(e) => e.status,
        None => HisdfStatus::NullArgument,
    }
}

/// The error's message, valid until `hisdf_error_free`. NULL gives "".
#[no_mangle]
pub extern "C" fn hisdf_error_message(error: *const HisdfError) -> *const c_char {
    match unsafe { error.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Frees an error; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_error_free(error: *mut HisdfError) {
    if !error.is_null() {
        drop(unsafe { Box::from_raw(error) });
    }
}

/// An error on its way out: the status plus a message.
struct Failure(HisdfStatus, String);

impl Failure {
    fn null(what: &str) -> Failure {
        Failure(HisdfStatus::NullArgument, format!("{what} is NULL"))
    }
    fn invalid(msg: impl Into<String>) -> Failure {
        Failure(HisdfStatus::InvalidArgument, msg.into())
    }
}

impl From<MeshError> for Failure {
    fn from(e: MeshError) -> Self {
        let status = match e {
            MeshError::Io { .. } => HisdfStatus::Io,
            _ => HisdfStatus::InvalidMesh,
        };
        Failure(status, e.to_string())
    }
}

impl From<ModelFileError> for Failure {
    fn from(e: ModelFileError) -> Self {
        let status = match e {
            ModelFileError::Read { .. } | ModelFileError::Write { .. } => HisdfStatus::Io,
            _ => HisdfStatus::InvalidModelFile,
        };
        Failure(status, e.to_string())
    }
}

impl From<TrainError> for Failure {
    fn from(e: TrainError) -> Self {
        let status = match e {
            TrainError::NoCuda => HisdfStatus::NoCuda,
            TrainError::InvalidConfig(_) => HisdfStatus::InvalidArgument,
            _ => HisdfStatus::TrainingFailed,
        };
        Failure(status, e.to_string())
    }
}

impl From<ExtractError> for Failure {
    fn from(e: ExtractError) -> Self {
        let status = match e {
            ExtractError::Resolution { .. } => HisdfStatus::InvalidArgument,
            ExtractError::Cancelled => HisdfStatus::Cancelled,
            ExtractError::NoSurface => HisdfStatus::NoSurface,
        };
        Failure(status, e.to_string())
    }
}

/// The panic boundary every exported function body runs in.
fn boundary(
    error: *mut *mut HisdfError,
    body: impl FnOnce() -> Result<(), Failure>,
) -> HisdfStatus {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure(
            HisdfStatus::Panic,
            format!("internal error (please report): {what}"),
        ))
    });
    match outcome {
        Ok(()) => HisdfStatus::Ok,
        Err(Failure(status, message)) => {
            log::debug!("{message}");
            if !error.is_null() {
                let message =
                    std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
                let boxed = Box::new(HisdfError { status, message });
                unsafe { *error = Box::into_raw(boxed) };
            }
            status
        }
    }
}

fn path_arg(path: *const c_char) -> Result<PathBuf, Failure> {
    if path.is_null() {
        return Err(Failure::null("path"));
    }
    let s = unsafe { CStr::from_ptr(path) }
        .to_str()
        .map_err(|_| Failure::invalid("path is not valid UTF-8"))?;
    Ok(PathBuf::from(s))
}

/// Loads a mesh file (OBJ, STL, PLY, OFF). On success `*out` owns a new mesh.
#[no_mangle]
pub extern "C" fn hisdf_mesh_load(
    path: *const c_char,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let path = path_arg(path)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let mesh = crate::mesh::load(&path)?;
        mesh.validate()?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// Builds a mesh from `vertex_count` xyz triples and `triangle_count` index
/// triples (0-based). The arrays are copied.
#[no_mangle]
pub extern "C" fn hisdf_mesh_from_arrays(
    vertices: *const f32,
    vertex_count: usize,
    indices: *const u32,
    triangle_count: usize,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        if vertices.is_null() {
            return Err(Failure::null("vertices"));
        }
        if indices.is_null() {
            return Err(Failure::null("indices"));
        }
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let (nv, nt) = (
            vertex_count
                .checked_mul(3)
                .ok_or_else(|| Failure::invalid("vertex_count too large"))?,
            triangle_count
                .checked_mul(3)
                .ok_or_else(|| Failure::invalid("triangle_count too large"))?,
        );
        let v = unsafe { std::slice::from_raw_parts(vertices, nv) };
        let i = unsafe { std::slice::from_raw_parts(indices, nt) };
        let mesh = TriangleMesh::from_arrays(v, i)?;
        mesh.validate()?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// Number of vertices and triangles of a mesh.
#[no_mangle]
pub extern "C" fn hisdf_mesh_counts(
    mesh: *const HisdfMesh,
    vertex_count: *mut usize,
    triangle_count: *mut usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        if vertex_count.is_null() || triangle_count.is_null() {
            return Err(Failure::null("vertex_count/triangle_count"));
        }
        unsafe {
            *vertex_count = m.vertices.len();
            *triangle_count = m.triangles.len();
        }
        Ok(())
    })
}

/// Copies a mesh into caller-owned buffers: `vertices` must hold
/// `vertices_len` floats (3 per vertex), `indices` `indices_len` u32 (3 per
/// triangle); both lengths must equal the mesh's exactly.
#[no_mangle]
pub extern "C" fn hisdf_mesh_copy_arrays(
    mesh: *const HisdfMesh,
    vertices: *mut f32,
    vertices_len: usize,
    indices: *mut u32,
    indices_len: usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        if vertices.is_null() || indices.is_null() {
            return Err(Failure::null("vertices/indices"));
        }
        if vertices_len != m.vertices.len() * 3 || indices_len != m.triangles.len() * 3 {
            return Err(Failure::invalid(format!(
                "buffers hold {vertices_len} floats and {indices_len} indices; the mesh needs {} and {}",
                m.vertices.len() * 3,
                m.triangles.len() * 3
            )));
        }
        let v = unsafe { std::slice::from_raw_parts_mut(vertices, vertices_len) };
        let i = unsafe { std::slice::from_raw_parts_mut(indices, indices_len) };
        v.copy_from_slice(crate::model::as_flat(&m.vertices));
        for (dst, tri) in i.chunks_exact_mut(3).zip(&m.triangles) {
            dst.copy_from_slice(tri);
        }
        Ok(())
    })
}

/// Writes a mesh to a file (.obj, .ply, .stl); an existing file is replaced
/// only if the whole write succeeds.
#[no_mangle]
pub extern "C" fn hisdf_mesh_save(
    mesh: *const HisdfMesh,
    path: *const c_char,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        let path = path_arg(path)?;
        crate::mesh::save(m, &path)?;
        Ok(())
    })
}

/// Frees a mesh; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_mesh_free(mesh: *mut HisdfMesh) {
    let _ = catch_unwind(|| HisdfMesh::free(mesh));
}

/// Progress callback: `progress` in [0, 1]; return false to cancel.
pub type HisdfProgressCallback =
    Option<extern "C" fn(user_data: *mut c_void, progress: f64) -> bool>;

/// Device selection for training and queries.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HisdfDevice {
    Auto = 0,
    Cpu = 1,
    Cuda = 2,
}

fn device_choice(d: HisdfDevice) -> DeviceChoice {
    match d {
        HisdfDevice::Auto => DeviceChoice::Auto,
        HisdfDevice::Cpu => DeviceChoice::Cpu,
        HisdfDevice::Cuda => DeviceChoice::Cuda,
    }
}

/// Samples the true SDF of `mesh` and trains a network with a preset
/// ("fast", "paper-l1", "paper-curriculum"; NULL means "fast").
/// `iterations` 0 keeps the preset's count. On cancellation the status is
/// `HISDF_STATUS_CANCELLED` and `*out` still receives the model of the last
/// completed iteration.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // a flat C signature; options move to a config handle later
pub extern "C" fn hisdf_train(
    mesh: *const HisdfMesh,
    preset: *const c_char,
    iterations: usize,
    device: HisdfDevice,
    seed: u64,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
    out: *mut *mut HisdfModel,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let preset: Preset = if preset.is_null() {
            Preset::Fast
        } else {
            unsafe { CStr::from_ptr(preset) }
                .to_str()
                .map_err(|_| Failure::invalid("preset is not UTF-8"))?
                .parse()
                .map_err(Failure::invalid)?
        };
        let mut recipe = preset.recipe();
        if iterations > 0 {
            recipe.training.iterations = iterations;
        }
        recipe.training.device = device_choice(device);
        recipe.training.seed = seed;
        let prepared = prepare_mesh(m.clone())?;
        let sdf = MeshSdf::new(&prepared.normalised);
        let samples = near_surface(&prepared.normalised, &sdf, &recipe.sampling, seed);
        let model = train(
            &samples,
            prepared.normalisation,
            &recipe.network,
            &recipe.training,
            &mut |p| match progress {
                Some(cb) => cb(user_data, p.iteration as f64 / p.iterations as f64),
                None => true,
            },
        )?;
        let cancelled = model.metadata.cancelled;
        unsafe { *out = HisdfModel::new(model) };
        if cancelled {
            return Err(Failure(HisdfStatus::Cancelled, "training cancelled".into()));
        }
        Ok(())
    })
}

/// SDF values at `count` points (xyz triples, user's coordinates) written to
/// `values` (`count` floats).
#[no_mangle]
pub extern "C" fn hisdf_model_query(
    model: *const HisdfModel,
    points: *const f32,
    count: usize,
    values: *mut f32,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        if points.is_null() || values.is_null() {
            return Err(Failure::null("points/values"));
        }
        let n3 = count
            .checked_mul(3)
            .ok_or_else(|| Failure::invalid("count too large"))?;
        let flat = unsafe { std::slice::from_raw_parts(points, n3) };
        let pts: Vec<[f32; 3]> = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        let result = model.query(&pts);
        unsafe { std::slice::from_raw_parts_mut(values, count) }.copy_from_slice(&result);
        Ok(())
    })
}

/// Extracts the zero level set on a `resolution`^3 grid as a new mesh in the
/// user's coordinates.
#[no_mangle]
pub extern "C" fn hisdf_extract(
    model: *const HisdfModel,
    resolution: usize,
    progress: HisdfProgressCallback,
    user_data: *mut c_void,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let mesh = extract_mesh(model, resolution, &mut |f| match progress {
            Some(cb) => cb(user_data, f),
            None => true,
        })?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// Saves a model file (atomically: an existing file survives a failure).
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

/// Loads a model file onto a device.
#[no_mangle]
pub extern "C" fn hisdf_model_load(
    path: *const c_char,
    device: HisdfDevice,
    out: *mut *mut HisdfModel,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let path = path_arg(path)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let device = device_choice(device).resolve()?;
        let model = load_model(&path, device)?;
        unsafe { *out = HisdfModel::new(model) };
        Ok(())
    })
}

/// Frees a model; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_model_free(model: *mut HisdfModel) {
    let _ = catch_unwind(|| HisdfModel::free(model));
}

/// The paper's Chamfer distance between two meshes on `points` surface
/// samples each, in the unit-sphere frame of `reference`.
#[no_mangle]
pub extern "C" fn hisdf_chamfer(
    reference: *const HisdfMesh,
    other: *const HisdfMesh,
    points: usize,
    seed: u64,
    out: *mut f64,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let a = HisdfMesh::get(reference)?;
        let b = HisdfMesh::get(other)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if points == 0 {
            return Err(Failure::invalid("points must be positive"));
        }
        let report = chamfer_meshes(a, b, points, seed);
        unsafe { *out = report.chamfer };
        Ok(())
    })
}
