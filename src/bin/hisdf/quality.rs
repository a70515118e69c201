//! `hisdf extract`: from a model to a mesh; and the network's part of
//! `hisdf eval --model` (the rest of eval, torch-free, is eval.rs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use hisdf::extract::sparse::{SparseConfig, DEFAULT_BRICK_CELLS, DEFAULT_LIPSCHITZ_SAFETY};
use hisdf::extract::{extract_mesh_with, ExtractConfig};
use hisdf::mesh::{self, save_with_normals, TriangleMesh};
use hisdf::metrics::{model_sdf_error, HeldOutConfig, SdfErrorReport};
use hisdf::model::load_model;
use hisdf::train::DeviceChoice;

use super::{check_output, progress, Result};

#[derive(clap::Args)]
pub struct ExtractArgs {
    model: PathBuf,
    /// Output mesh (.obj, .ply or .stl).
    #[arg(short, long)]
    output: PathBuf,
    /// Grid points per axis (dense: up to 1024; sparse: up to 2048).
    #[arg(long, default_value_t = 256)]
    resolution: usize,
    /// Sample coarse to fine, only where the surface can pass (memory and
    /// time grow with the surface, not the volume).
    #[arg(long)]
    sparse: bool,
    /// Sparse: the Lipschitz bound's safety factor (1 is exact for a true
    /// SDF; larger samples more).
    #[arg(long, default_value_t = DEFAULT_LIPSCHITZ_SAFETY)]
    lipschitz_safety: f64,
    /// Sparse: cells per brick edge.
    #[arg(long, default_value_t = DEFAULT_BRICK_CELLS)]
    brick: usize,
    /// Vertex normals from the network's gradient (OBJ vn, PLY nx ny nz).
    #[arg(long)]
    normals: bool,
    /// fp32, or tf32 (TF32 tensor-core matmuls on CUDA: about twice as
    /// fast, but it moves vertices measurably, by up to half a voxel at
    /// 512^3, see docs/results.md; so fp32 is the default).
    #[arg(long, default_value = "fp32")]
    pub precision: hisdf::train::Precision,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

pub fn extract(a: ExtractArgs) -> Result<()> {
    check_output(&a.output, &["obj", "ply", "stl"])?;
    if !(a.lipschitz_safety.is_finite() && a.lipschitz_safety > 0.0) {
        return Err("--lipschitz-safety must be a positive number".into());
    }
    if !(1..=256).contains(&a.brick) {
        return Err("--brick must be between 1 and 256".into());
    }
    let device = a.device.resolve().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let model = load_model(&a.model, device).map_err(|e| e.to_string())?;
    let load_s = t.elapsed().as_secs_f64();
    let config = ExtractConfig {
        resolution: a.resolution,
        sparse: a.sparse.then_some(SparseConfig {
            brick_cells: a.brick,
            lipschitz_safety: a.lipschitz_safety,
            ..SparseConfig::default()
        }),
        normals: a.normals,
        precision: a.precision,
    };
    let bar = progress::extraction();
    let result = extract_mesh_with(&model, &config, &mut |f| {
        progress::show_fraction(&bar, f);
        true
    });
    bar.finish();
    let x = result.map_err(|e| e.to_string())?;
    let t = Instant::now();
    match &x.normals {
        Some(n) => save_with_normals(&x.mesh, n, &a.output),
        None => mesh::save(&x.mesh, &a.output),
    }
    .map_err(|e| e.to_string())?;
    let write_s = t.elapsed().as_secs_f64();
    let n = a.resolution;
    let kind = if a.sparse { "sparse" } else { "dense" };
    let sparse = x.sparse.map_or(String::new(), |s| {
        format!(
            "; {} of {} bricks ({} from faces), {} coarse samples",
            s.bricks, s.bricks_total, s.bricks_from_faces, s.coarse_samples
        )
    });
    eprintln!(
        "extracted {} vertices, {} triangles to {}",
        x.mesh.vertices.len(),
        x.mesh.triangles.len(),
        a.output.display()
    );
    println!(
        "timings ({kind} {n}^3 on {device:?}): load {load_s:.2} s, sample+mesh {:.2} s, normals {:.2} s, write {write_s:.2} s; \
         {} network evaluations ({:.2}% of the dense grid){sparse}",
        x.seconds_sampling_and_meshing,
        x.seconds_normals,
        x.samples,
        100.0 * x.samples as f64 / (n as f64).powi(3)
    );
    Ok(())
}

/// `hisdf eval --model`: the network's own SDF error on held-out samples of
/// the reference, in the frame it was trained in.
pub fn model_error(
    path: &Path,
    device: &DeviceChoice,
    reference: &TriangleMesh,
) -> Result<SdfErrorReport> {
    let device = device.resolve().map_err(|e| e.to_string())?;
    let model = load_model(path, device).map_err(|e| e.to_string())?;
    // Held-out samples of the reference in the frame the network was
    // trained in.
    let normalised = model.normalisation.apply_to_mesh(reference);
    Ok(model_sdf_error(
        &model,
        &normalised,
        None,
        &HeldOutConfig::default(),
    ))
}
