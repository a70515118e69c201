//! Meshes across the boundary: load, build from arrays, inspect, copy out,
//! save, exact signed distance and the Chamfer metric.

use std::ffi::{c_char, CString};

use super::handles::{HisdfBytes, HisdfMesh, HisdfMetrics, HisdfModel};
use super::{
    boundary, expect_len, nonnull_arg, normalisation_out, out_arg, path_arg, point_lengths,
    points_arg, slice_arg, slice_out, str_arg, Failure, HisdfError, HisdfStatus,
};
use crate::mesh::TriangleMesh;
use crate::metrics::{
    chamfer_meshes, evaluate, model_sdf_error, EvalConfig, HeldOutConfig, HELD_OUT_SEED,
};
use crate::sdf::exact_signed_distance;

/// What `hisdf_mesh_info` reports about a mesh's structure.
/// The layout is fixed for this major version: later versions report more
/// through new functions, never by growing this struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HisdfMeshInfo {
    pub vertex_count: usize,
    pub triangle_count: usize,
    /// Triangles with a repeated index or (numerically) zero area.
    pub degenerate_triangles: usize,
    /// Edges used by exactly one triangle.
    pub boundary_edges: usize,
    /// Edges used by three or more triangles.
    pub non_manifold_edges: usize,
    /// Edges whose two triangles traverse them in the same direction (the
    /// inside/outside orientation flips there).
    pub misoriented_edges: usize,
    /// Connected components of triangles sharing a corner position (welded,
    /// so duplicated vertices do not split a surface).
    pub components: usize,
    pub unreferenced_vertices: usize,
    /// Closed 2-manifold: no boundary and no non-manifold edges. False means
    /// the surface is open (the counts above say where): trained as a solid
    /// (the default, surface=solid) it is closed by its winding number; a
    /// sheet-like surface is better trained with surface=shell, a closed
    /// thin band of shell_thickness around it.
    pub watertight: bool,
    pub bbox_min: [f32; 3],
    pub bbox_max: [f32; 3],
    pub surface_area: f64,
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
        out_arg(out, "out")?;
        let mesh = crate::mesh::load(&path)?;
        mesh.validate()?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// Builds a mesh from flat arrays, which are copied: `vertices` holds
/// `vertices_len` floats (x, y, z per vertex), `indices` holds `indices_len`
/// 0-based vertex indices (3 per triangle). Arrays that do not describe a
/// mesh (a length not a multiple of 3, an index out of range, a NaN) give
/// `HISDF_STATUS_INVALID_MESH`, as a malformed file does; a length above
/// the API's maximum gives `HISDF_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn hisdf_mesh_from_arrays(
    vertices: *const f32,
    vertices_len: usize,
    indices: *const u32,
    indices_len: usize,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let v = slice_arg(vertices, vertices_len, "vertices")?;
        let i = slice_arg(indices, indices_len, "indices")?;
        out_arg(out, "out")?;
        let mesh = TriangleMesh::from_arrays(v, i)?;
        mesh.validate()?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// Number of vertices and triangles of a mesh: the buffers of
/// `hisdf_mesh_copy_arrays` hold 3 times as many elements.
#[no_mangle]
pub extern "C" fn hisdf_mesh_counts(
    mesh: *const HisdfMesh,
    vertex_count: *mut usize,
    triangle_count: *mut usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        out_arg(vertex_count, "vertex_count")?;
        out_arg(triangle_count, "triangle_count")?;
        unsafe {
            *vertex_count = m.vertices.len();
            *triangle_count = m.triangles.len();
        }
        Ok(())
    })
}

/// Structure of a mesh: counts, topology (watertight, boundary and
/// non-manifold edges, components), bounding box and area.
#[no_mangle]
pub extern "C" fn hisdf_mesh_info(
    mesh: *const HisdfMesh,
    out: *mut HisdfMeshInfo,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        out_arg(out, "out")?;
        let i = m.validate()?;
        unsafe {
            *out = HisdfMeshInfo {
                vertex_count: i.vertex_count,
                triangle_count: i.triangle_count,
                degenerate_triangles: i.degenerate_triangles,
                boundary_edges: i.boundary_edges,
                non_manifold_edges: i.non_manifold_edges,
                misoriented_edges: i.misoriented_edges,
                components: i.components,
                unreferenced_vertices: i.unreferenced_vertices,
                watertight: i.watertight,
                bbox_min: i.bbox_min,
                bbox_max: i.bbox_max,
                surface_area: i.surface_area,
            }
        };
        Ok(())
    })
}

/// Copies a mesh into caller-owned buffers: `vertices` must hold exactly
/// 3 x vertex_count floats and `indices` exactly 3 x triangle_count indices
/// (see `hisdf_mesh_counts`).
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
        nonnull_arg(vertices, vertices_len, "vertices")?;
        nonnull_arg(indices, indices_len, "indices")?;
        expect_len("vertices", vertices_len, m.vertices.len() * 3)?;
        expect_len("indices", indices_len, m.triangles.len() * 3)?;
        let v = slice_out(vertices, vertices_len, "vertices")?;
        let i = slice_out(indices, indices_len, "indices")?;
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

/// A mesh file's bytes in memory, in `format` ("obj", "ply" or "stl", as
/// `hisdf_mesh_save` writes them), for hosts that store meshes inside
/// their own documents. Free the result with `hisdf_bytes_free`.
#[no_mangle]
pub extern "C" fn hisdf_mesh_save_to_buffer(
    mesh: *const HisdfMesh,
    format: *const c_char,
    out: *mut *mut HisdfBytes,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        let format = str_arg(format, "format")?;
        out_arg(out, "out")?;
        let bytes = crate::mesh::to_bytes(m, format)?;
        unsafe { *out = HisdfBytes::new(bytes) };
        Ok(())
    })
}

/// Reads a mesh from a mesh file's `len` bytes at `data` (copied).
/// `format_hint` ("obj", "ply", "stl", "off") is optional: NULL or an
/// unknown hint means the format is told from the content.
#[no_mangle]
pub extern "C" fn hisdf_mesh_load_from_buffer(
    data: *const u8,
    len: usize,
    format_hint: *const c_char,
    out: *mut *mut HisdfMesh,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let bytes = slice_arg(data, len, "data")?;
        let hint = if format_hint.is_null() {
            None
        } else {
            Some(str_arg(format_hint, "format_hint")?)
        };
        out_arg(out, "out")?;
        let mesh = crate::mesh::load_from_bytes(bytes, hint)?;
        mesh.validate()?;
        unsafe { *out = HisdfMesh::new(mesh) };
        Ok(())
    })
}

/// The unit-sphere frame of a mesh: the one `hisdf_train` trains in and
/// `hisdf_evaluate` reports in (centre at the vertex mean, farthest vertex
/// at radius 1). A point p of the mesh's coordinates is (p - centre) *
/// scale there; a distance d there is d / scale in the mesh's units.
/// `centre` receives 3 doubles (`centre_len` must be 3).
#[no_mangle]
pub extern "C" fn hisdf_mesh_normalisation(
    mesh: *const HisdfMesh,
    centre: *mut f64,
    centre_len: usize,
    scale: *mut f64,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        let frame = crate::metrics::metric_frame(m);
        normalisation_out(frame, centre, centre_len, scale)
    })
}

/// Frees a mesh; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_mesh_free(mesh: *mut HisdfMesh) {
    super::release(|| HisdfMesh::free(mesh));
}

/// The exact signed distance from points to a mesh (negative inside, by the
/// generalised winding number, so small holes are tolerated): `points` holds
/// `points_len` floats (x, y, z per point), `values` receives
/// `values_len` = `points_len / 3` distances in the mesh's units. Builds the
/// acceleration structure on every call: batch the points.
#[no_mangle]
pub extern "C" fn hisdf_mesh_signed_distance(
    mesh: *const HisdfMesh,
    points: *const f32,
    points_len: usize,
    values: *mut f32,
    values_len: usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMesh::get(mesh)?;
        point_lengths(points_len, "values", values_len, 1)?;
        let pts = points_arg(points, points_len, "points")?;
        let out = slice_out(values, values_len, "values")?;
        out.copy_from_slice(&exact_signed_distance(m, &pts)?);
        Ok(())
    })
}

/// The paper's Chamfer distance between two meshes on `points` surface
/// samples each (10000 in the paper; at most 10^8), in the unit-sphere frame of
/// `reference`, written to `*out`.
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
        out_arg(out, "out")?;
        let config = EvalConfig {
            chamfer_points: points,
            ..EvalConfig::default()
        };
        config
            .validate()
            .map_err(|e| Failure::invalid(e.replace("chamfer_points", "points")))?;
        let report = chamfer_meshes(a, b, points, seed)?;
        unsafe { *out = report.chamfer };
        Ok(())
    })
}

/// Every metric between two meshes, in the unit-sphere frame of `reference`
/// (see `hisdf eval`): chamfer, chamfer_point_to_mesh, emd, emd_sum,
/// hausdorff (and per direction, and 99th percentiles; the maxima certified
/// to hausdorff_tolerance, with hausdorff_upper and its per-direction values
/// the proven bounds and hausdorff_evaluations the queries spent),
/// normal_consistency,
/// f_score, precision, recall, components_reference, components_other,
/// components_other_significant and components_other_extra_area_share
/// (connected components, on welded positions), and the settings used.
/// `chamfer_points`
/// surface samples per mesh (the paper: 10000; at most 10^8), `emd_points` for the earth
/// mover's distance (the paper: 500; at most 5000, cubic cost),
/// `f_score_threshold` a distance in that frame (0 means the default 0.01).
/// Read the results by name with `hisdf_metrics_get`, or enumerate them with
/// `hisdf_metrics_count` and `hisdf_metrics_entry`, so that new metrics never
/// change this signature.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // flat C signature; results grow by name instead
pub extern "C" fn hisdf_evaluate(
    reference: *const HisdfMesh,
    other: *const HisdfMesh,
    chamfer_points: usize,
    emd_points: usize,
    f_score_threshold: f64,
    seed: u64,
    out: *mut *mut HisdfMetrics,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let a = HisdfMesh::get(reference)?;
        let b = HisdfMesh::get(other)?;
        out_arg(out, "out")?;
        let mut config = EvalConfig {
            chamfer_points,
            emd_points,
            seed,
            ..EvalConfig::default()
        };
        if f_score_threshold != 0.0 {
            config.f_score_threshold = f_score_threshold;
        }
        config.validate().map_err(Failure::invalid)?;
        let report = evaluate(a, b, &config)?;
        unsafe { *out = HisdfMetrics::new(named_results(&report)?) };
        Ok(())
    })
}

/// A report's fields by name. Through serde, so that a metric added to a
/// report is reachable by name here without touching the C layer.
fn named_results(report: &impl serde::Serialize) -> Result<Vec<(CString, f64)>, Failure> {
    let fields = match serde_json::to_value(report) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(Failure::invalid("metrics report is not a record")),
    };
    Ok(fields
        .into_iter()
        .filter_map(|(name, value)| {
            let v = value.as_f64().unwrap_or(f64::INFINITY);
            Some((CString::new(name).ok()?, v))
        })
        .collect())
}

/// The network's own SDF error against the exact SDF of `mesh` (the mesh it
/// was trained on, in the caller's coordinates) on fresh held-out samples
/// drawn with `seed` (0 means hisdf's default held-out seed, distinct from
/// training's): 10000 samples at each of the Gaussian shells of variance
/// 1e-4 and 1e-5 around the surface, and 10000 uniform in the unit sphere.
/// Results by name, as for `hisdf_evaluate`, in the model's unit-sphere
/// frame: sdf_error_near (mean |f - s|), wrong_sign_near (share of
/// samples with |s| < 0.01 whose sign is wrong), sdf_error_uniform,
/// sdf_error_uniform_clamped (both clamped to 0.1), wrong_sign_uniform,
/// wrong_sign_far (|s| > 0.05), sdf_min, sdf_max, sample counts, seed and
/// seconds.
#[no_mangle]
pub extern "C" fn hisdf_model_sdf_error(
    model: *const HisdfModel,
    mesh: *const HisdfMesh,
    seed: u64,
    out: *mut *mut HisdfMetrics,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let model = HisdfModel::get(model)?;
        let m = HisdfMesh::get(mesh)?;
        out_arg(out, "out")?;
        let config = HeldOutConfig {
            seed: if seed == 0 { HELD_OUT_SEED } else { seed },
            // A shell model is measured against the band it learned.
            surface: model.metadata.surface,
            ..HeldOutConfig::default()
        };
        let normalised = model.normalisation.apply_to_mesh(m);
        let report = model_sdf_error(model, &normalised, None, &config);
        unsafe { *out = HisdfMetrics::new(named_results(&report)?) };
        Ok(())
    })
}

/// One result of `hisdf_evaluate` by name, e.g. "chamfer" or "f_score".
/// An unknown name gives `HISDF_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn hisdf_metrics_get(
    metrics: *const HisdfMetrics,
    name: *const c_char,
    out: *mut f64,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMetrics::get(metrics)?;
        let name = super::str_arg(name, "name")?;
        out_arg(out, "out")?;
        let value = m
            .iter()
            .find(|(n, _)| n.as_bytes() == name.as_bytes())
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                Failure::invalid(format!(
                    "no metric named {name:?}; read the names with the metrics' index functions"
                ))
            })?;
        unsafe { *out = value };
        Ok(())
    })
}

/// How many results `hisdf_metrics_entry` can enumerate.
#[no_mangle]
pub extern "C" fn hisdf_metrics_count(
    metrics: *const HisdfMetrics,
    count: *mut usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMetrics::get(metrics)?;
        out_arg(count, "count")?;
        unsafe { *count = m.len() };
        Ok(())
    })
}

/// The `index`th result: its name (valid until `hisdf_metrics_free`) and
/// value.
#[no_mangle]
pub extern "C" fn hisdf_metrics_entry(
    metrics: *const HisdfMetrics,
    index: usize,
    name: *mut *const c_char,
    value: *mut f64,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let m = HisdfMetrics::get(metrics)?;
        out_arg(name, "name")?;
        out_arg(value, "value")?;
        let (n, v) = m.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} out of range ({} metrics); use 0 to one less than the count",
                m.len()
            ))
        })?;
        unsafe {
            *name = n.as_ptr();
            *value = *v;
        }
        Ok(())
    })
}

/// Frees metrics; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_metrics_free(metrics: *mut HisdfMetrics) {
    super::release(|| HisdfMetrics::free(metrics));
}
