//! The network's own error: its SDF against the mesh's exact SDF on fresh
//! held-out samples, near the surface (where the paper's samples are) and
//! uniform in the unit ball (where the paper's samples are not, and where a
//! network that has not converged puts its spurious surfaces).

use serde::Serialize;

use crate::mesh::TriangleMesh;
use crate::sampling::{near_surface, GaussianShell, NearSurfaceConfig, Surface};
use crate::sdf::MeshSdf;

/// Held-out samples and the bands the sign errors are counted in, all in
/// the unit-sphere frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldOutConfig {
    /// Gaussian offsets of surface points (the paper's two finest shells).
    pub shells: Vec<GaussianShell>,
    /// Points uniform in the unit ball.
    pub uniform: usize,
    /// Near-surface samples with |true SDF| below this count for the
    /// near-surface sign error: there the sign decides where the surface is.
    pub near_band: f64,
    /// Uniform samples with |true SDF| above this count for the far sign
    /// error: a wrong sign there is a surface where the shape has none.
    pub far_band: f64,
    /// The clamp of the clamped uniform error: a network trained with the
    /// paper's clamped loss (delta 0.1) learns distances only up to it.
    pub clamp: f64,
    pub seed: u64,
    /// The field the model was trained on: held-out targets are made the
    /// same way ([`Surface::apply`]).
    pub surface: Surface,
}

/// The held-out seed: its sample streams differ from those of every small
/// training seed (training draws with the recipe's seed, 0 by default).
pub const HELD_OUT_SEED: u64 = 0x4E1D_0075_EED5;

impl Default for HeldOutConfig {
    fn default() -> Self {
        HeldOutConfig {
            shells: vec![
                GaussianShell {
                    count: 10_000,
                    variance: 1e-4,
                },
                GaussianShell {
                    count: 10_000,
                    variance: 1e-5,
                },
            ],
            uniform: 10_000,
            near_band: 0.01,
            far_band: 0.05,
            clamp: 0.1,
            seed: HELD_OUT_SEED,
            surface: Surface::Solid,
        }
    }
}

/// What [`held_out_sdf_error`] measured; errors in the unit-sphere frame,
/// sign errors as fractions of the samples in their band (0 where a band
/// holds no sample).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SdfErrorReport {
    /// Mean |f - s| over the near-surface samples.
    pub sdf_error_near: f64,
    /// 99th percentile of |f - s| over the near-surface samples: large
    /// when a part of the surface is missing or misplaced, even where the
    /// rest is fitted well and the mean is small (missing gear teeth).
    pub sdf_error_near_p99: f64,
    /// Share of near-surface samples with |s| < near_band whose predicted
    /// sign is wrong.
    pub wrong_sign_near: f64,
    pub sdf_samples_near: usize,
    /// Mean |f - s| over the uniform samples: large for any network trained
    /// with a clamped loss, see the clamped value.
    pub sdf_error_uniform: f64,
    /// Mean |clamp(f) - clamp(s)| over the uniform samples.
    pub sdf_error_uniform_clamped: f64,
    /// Share of uniform samples with a wrong predicted sign.
    pub wrong_sign_uniform: f64,
    /// Share of uniform samples with |s| > far_band whose sign is wrong.
    pub wrong_sign_far: f64,
    pub sdf_samples_uniform: usize,
    /// The network's smallest and largest value over all held-out samples:
    /// one sign throughout means no surface at all.
    pub sdf_min: f64,
    pub sdf_max: f64,
    pub sdf_seed: u64,
    pub sdf_seconds: f64,
}

/// Inside iff negative, as in marching cubes; an exact zero of the mesh
/// SDF (a sample on the surface) has no sign to get wrong.
fn wrong_sign(predicted: f32, truth: f32) -> bool {
    truth != 0.0 && (predicted < 0.0) != (truth < 0.0)
}

fn share(hits: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        hits as f64 / of as f64
    }
}

/// The field `predict` gives (a trained network, evaluated by the caller:
/// `hisdf::metrics::model_sdf_error`) against the exact SDF of
/// `normalised`, the mesh in the network's unit-sphere frame (the model's
/// normalisation applied to the user's mesh), on held-out samples drawn
/// with `config.seed`. `sdf` may pass the mesh's SDF when the caller has it
/// already. The network stays outside this crate so that the mesh-to-mesh
/// metrics need no libtorch.
pub fn held_out_sdf_error(
    predict: &dyn Fn(&[[f32; 3]]) -> Vec<f32>,
    normalised: &TriangleMesh,
    sdf: Option<&MeshSdf>,
    config: &HeldOutConfig,
) -> SdfErrorReport {
    let start = std::time::Instant::now();
    let own;
    let sdf = match sdf {
        Some(s) => s,
        None => {
            own = MeshSdf::new(normalised);
            &own
        }
    };
    let sampling = NearSurfaceConfig {
        surface: 0,
        shells: config.shells.clone(),
        uniform: config.uniform,
        weighted: None,
        ..NearSurfaceConfig::paper()
    };
    let mut samples = near_surface(normalised, sdf, &sampling, config.seed);
    // A shell model is judged against its own field, the band.
    config.surface.apply(&mut samples.sdf);
    let predicted = predict(&samples.points);
    let n_near = samples.len() - config.uniform.min(samples.len());
    let (near, uniform) = samples.sdf.split_at(n_near);
    let (f_near, f_uniform) = predicted.split_at(n_near);

    let mean_abs = |f: &[f32], s: &[f32], clamp: f64| {
        let sum: f64 = f
            .iter()
            .zip(s)
            .map(|(&f, &s)| {
                let c = |x: f32| f64::from(x).clamp(-clamp, clamp);
                (c(f) - c(s)).abs()
            })
            .sum();
        sum / f.len().max(1) as f64
    };
    let band = |s: &[f32], f: &[f32], keep: &dyn Fn(f64) -> bool| {
        let (mut n, mut wrong) = (0, 0);
        for (&s, &f) in s.iter().zip(f) {
            if keep(f64::from(s).abs()) {
                n += 1;
                wrong += usize::from(wrong_sign(f, s));
            }
        }
        share(wrong, n)
    };
    let near_errors: Vec<f64> = f_near
        .iter()
        .zip(near)
        .map(|(&f, &s)| f64::from(f - s).abs())
        .collect();
    // The Hausdorff percentile's nearest rank (NaN sorts last, so a NaN
    // prediction shows); 0 where no sample lies near the surface.
    let near_p99 = if near_errors.is_empty() {
        0.0
    } else {
        super::max_and_p99(&near_errors).1
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &f in &predicted {
        lo = lo.min(f64::from(f));
        hi = hi.max(f64::from(f));
    }
    SdfErrorReport {
        sdf_error_near: mean_abs(f_near, near, f64::INFINITY),
        sdf_error_near_p99: near_p99,
        wrong_sign_near: band(near, f_near, &|a| a < config.near_band),
        sdf_samples_near: n_near,
        sdf_error_uniform: mean_abs(f_uniform, uniform, f64::INFINITY),
        sdf_error_uniform_clamped: mean_abs(f_uniform, uniform, config.clamp),
        wrong_sign_uniform: band(uniform, f_uniform, &|_| true),
        wrong_sign_far: band(uniform, f_uniform, &|a| a > config.far_band),
        sdf_samples_uniform: uniform.len(),
        sdf_min: lo,
        sdf_max: hi,
        sdf_seed: config.seed,
        sdf_seconds: start.elapsed().as_secs_f64(),
    }
}
