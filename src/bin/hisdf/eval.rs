//! `hisdf eval`: from two meshes to the paper's metrics. Torch-free, so
//! `hisdf` runs it itself; with `--model` it hands the whole command to
//! `hisdf-torch`, which passes the network's part in (quality.rs).

use std::path::{Path, PathBuf};

use hisdf_geometry::mesh::TriangleMesh;
use hisdf_geometry::metrics::{evaluate, EvalConfig, SdfErrorReport};

use super::{load_checked, DeviceChoice, Result};

/// The network's held-out SDF error for `--model`: the model file, the
/// device and the reference mesh in its own coordinates.
pub type HeldOut<'a> = &'a dyn Fn(&Path, &DeviceChoice, &TriangleMesh) -> Result<SdfErrorReport>;

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
    pub model: Option<PathBuf>,
    /// Device for --model: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn eval(a: EvalArgs, held_out: Option<HeldOut>) -> Result<()> {
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
        let held_out = held_out.ok_or("eval --model runs in hisdf-torch")?;
        r.model = Some(held_out(path, &a.device, &reference)?);
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
