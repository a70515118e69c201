//! `hisdf extract` and `hisdf eval`: from a model to a mesh, and from two
//! meshes to the paper's metrics.

use std::path::PathBuf;
use std::time::Instant;

use hisdf::extract::sparse::{SparseConfig, DEFAULT_BRICK_CELLS, DEFAULT_LIPSCHITZ_SAFETY};
use hisdf::extract::{extract_mesh_with, ExtractConfig};
use hisdf::mesh;
use hisdf::mesh::save_with_normals;
use hisdf::metrics::{evaluate, model_sdf_error, EvalConfig, HeldOutConfig};
use hisdf::model::load_model;
use hisdf::train::DeviceChoice;

use super::{check_output, load_checked, progress, Result};

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

#[derive(clap::Args)]
pub struct EvalArgs {
    reference: PathBuf,
    other: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Surface points per mesh for Chamfer, F-score, normal consistency and
    /// Hausdorff.
    #[arg(long, default_value_t = 10_000)]
    chamfer_points: usize,
    /// Points per mesh for the Earth Mover's distance (exact assignment).
    #[arg(long, default_value_t = 500)]
    emd_points: usize,
    /// F-score distance threshold in the reference's unit-sphere frame.
    #[arg(long, default_value_t = 0.01)]
    f_threshold: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The model trained on REFERENCE: adds its own SDF error on held-out
    /// samples (mean absolute error and wrong-sign shares near the surface
    /// and uniform in the unit sphere).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Device for --model: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let config = EvalConfig {
        chamfer_points: a.chamfer_points,
        emd_points: a.emd_points,
        f_score_threshold: a.f_threshold,
        seed: a.seed,
    };
    // The options are named as the settings are (--chamfer-points is
    // chamfer_points).
    config.validate()?;
    let reference = load_checked(&a.reference)?;
    let other = load_checked(&a.other)?;
    let mut r = evaluate(&reference, &other, &config).map_err(|e| e.to_string())?;
    if let Some(path) = &a.model {
        let device = a.device.resolve().map_err(|e| e.to_string())?;
        let model = load_model(path, device).map_err(|e| e.to_string())?;
        // Held-out samples of the reference in the frame the network was
        // trained in.
        let normalised = model.normalisation.apply_to_mesh(&reference);
        r.model = Some(model_sdf_error(
            &model,
            &normalised,
            None,
            &HeldOutConfig::default(),
        ));
    }
    if a.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!(
        "in the unit-sphere frame of {} (seed {}):",
        a.reference.display(),
        r.seed
    );
    println!(
        "  chamfer distance         {:.6e}  (CD*10^3 = {:.4}; {} points per mesh)",
        r.chamfer,
        r.chamfer * 1e3,
        r.chamfer_points
    );
    println!(
        "  earth mover's distance   {:.6e}  (mean over a {}-point bijection; sum {:.4})",
        r.emd, r.emd_points, r.emd_sum
    );
    println!("  chamfer, point to mesh   {:.6e}", r.chamfer_point_to_mesh);
    println!(
        "  hausdorff                {:.6e}  (ref->other {:.3e}, other->ref {:.3e})",
        r.hausdorff, r.hausdorff_ref_to_other, r.hausdorff_other_to_ref
    );
    println!(
        "  hausdorff, certified     in [{:.6e}, {:.6e}]  (tolerance {:.0e}, {} distance queries)",
        r.hausdorff, r.hausdorff_upper, r.hausdorff_tolerance, r.hausdorff_evaluations
    );
    println!(
        "  hausdorff, 99th pct      ref->other {:.3e}, other->ref {:.3e}",
        r.hausdorff_p99_ref_to_other, r.hausdorff_p99_other_to_ref
    );
    println!("  normal consistency       {:.6}", r.normal_consistency);
    println!(
        "  F-score at {}          {:.6}  (precision {:.4}, recall {:.4})",
        r.f_score_threshold, r.f_score, r.precision, r.recall
    );
    println!(
        "  connected components     reference {}, other {}",
        r.components_reference, r.components_other
    );
    if let Some(m) = &r.model {
        println!(
            "  network SDF error        near the surface {:.3e} ({} samples, {:.2}% wrong signs within 0.01), \
             uniform {:.3e} (clamped to 0.1: {:.3e}; {:.2}% wrong signs, {:.2}% beyond 0.05)",
            m.sdf_error_near,
            m.sdf_samples_near,
            m.wrong_sign_near * 100.0,
            m.sdf_error_uniform,
            m.sdf_error_uniform_clamped,
            m.wrong_sign_uniform * 100.0,
            m.wrong_sign_far * 100.0
        );
    }
    Ok(())
}
