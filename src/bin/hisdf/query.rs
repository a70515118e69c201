//! `hisdf query`: the trained network's SDF (and gradients) at points.

use std::path::PathBuf;

use hisdf::io::npy;
use hisdf::model::load_model;
use hisdf::train::DeviceChoice;

#[derive(clap::Args)]
pub struct QueryArgs {
    model: PathBuf,
    /// N x 3 float32 or float64 .npy of points in the mesh's original
    /// coordinates.
    points: PathBuf,
    /// N float32 SDF values, in the original units.
    #[arg(short, long)]
    output: PathBuf,
    /// Also write the N x 3 float32 gradients (normals near the surface).
    #[arg(long)]
    gradients: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

pub fn run(a: QueryArgs) -> Result<(), String> {
    for out in std::iter::once(&a.output).chain(a.gradients.as_ref()) {
        super::check_output(out, &["npy"])?;
    }
    let device = a.device.resolve().map_err(|e| e.to_string())?;
    let model = load_model(&a.model, device).map_err(|e| e.to_string())?;
    let (flat, n) = npy::read_rows(&a.points, 3, "points").map_err(|e| e.to_string())?;
    let points: Vec<[f32; 3]> = flat
        .chunks_exact(3)
        .map(|c| [c[0] as f32, c[1] as f32, c[2] as f32])
        .collect();
    if let Some(i) = points.iter().position(|p| p.iter().any(|c| !c.is_finite())) {
        return Err(format!("{}: point {i} is not finite", a.points.display()));
    }
    let values = model.query(&points);
    npy::write(&a.output, &[n], &values).map_err(|e| e.to_string())?;
    if let Some(path) = &a.gradients {
        let g = model.gradient(&points).map_err(|e| e.to_string())?;
        let flat: Vec<f32> = g.into_iter().flatten().collect();
        npy::write(path, &[n, 3], &flat).map_err(|e| e.to_string())?;
    }
    eprintln!("queried {n} points; wrote {}", a.output.display());
    Ok(())
}
