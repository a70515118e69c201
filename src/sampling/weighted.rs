//! Weighted sampling (paper Sec. 4.2, Eq. 2): a large pool of uniform samples
//! in the unit sphere, of which a subset is kept with weight
//! w(x) = exp(-beta |SDF(x)|).

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{stream, uniform_ball_points, Samples, CHUNK};
use crate::sdf::MeshSdf;

/// Pool size, subset size and beta of weighted sampling.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightedConfig {
    pub pool: usize,
    pub keep: usize,
    pub beta: f64,
}

impl WeightedConfig {
    /// The paper's setting: 10 million uniform samples, 1 million kept,
    /// beta = 100.
    pub fn paper() -> Self {
        WeightedConfig {
            pool: 10_000_000,
            keep: 1_000_000,
            beta: 100.0,
        }
    }
}

/// Weighted sampling of a mesh already in the unit-sphere frame: `pool`
/// points uniform in the unit ball, of which `min(keep, pool)` distinct ones
/// are kept, drawn without replacement with probability proportional to
/// exp(-beta |SDF|) at each draw. Seeded; the result does not depend on the
/// number of threads. Kept samples are returned in pool order.
///
/// Selection uses exponential keys (Efraimidis and Spirakis 2006): each pool
/// point gets E / w with E ~ Exp(1), and the `keep` smallest keys are a
/// weighted sample without replacement. In logs, ln E + beta |SDF|, which
/// cannot overflow for any beta, and a linear-time selection picks them.
/// A negative or NaN beta counts as 0 (uniform).
pub fn weighted(sdf: &MeshSdf, config: &WeightedConfig, seed: u64) -> Samples {
    let beta = if config.beta > 0.0 { config.beta } else { 0.0 };
    let pool = uniform_ball_points(config.pool, seed.wrapping_add(11));
    let values = sdf.signed_distance(&pool);
    let keep = config.keep.min(pool.len());
    let mut keys: Vec<(f64, u32)> = values
        .par_chunks(CHUNK)
        .enumerate()
        .flat_map_iter(|(c, part)| {
            let mut rng: Pcg64Mcg = stream(seed, 3, c);
            let base = c * CHUNK;
            part.iter()
                .enumerate()
                .map(|(i, &s)| {
                    // 1 - U lies in (0, 1], so the log is finite; E = -ln(1-U).
                    let e = -(1.0 - rng.random::<f64>()).ln();
                    let d = f64::from(s.abs());
                    // An infinite or NaN distance (no usable triangle) gets
                    // the largest key: chosen last, never a NaN comparison.
                    let key = e.ln() + beta * d;
                    let key = if key.is_nan() { f64::INFINITY } else { key };
                    (key, (base + i) as u32)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if keep < keys.len() && keep > 0 {
        keys.select_nth_unstable_by(keep - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }
    keys.truncate(keep);
    let mut chosen: Vec<u32> = keys.into_iter().map(|(_, i)| i).collect();
    chosen.par_sort_unstable();
    Samples {
        points: chosen.iter().map(|&i| pool[i as usize]).collect(),
        sdf: chosen.iter().map(|&i| values[i as usize]).collect(),
    }
}

/// Whether a uniform sample fills the unit ball (the paper's domain) or the
/// cube [-1, 1]^3 around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UniformDomain {
    #[default]
    Ball,
    Cube,
}

/// `count` points uniform in the cube [-1, 1]^3, seeded.
pub fn uniform_cube_points(count: usize, seed: u64) -> Vec<[f32; 3]> {
    (0..count.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng: Pcg64Mcg = stream(seed, 4, c);
            let n = CHUNK.min(count - c * CHUNK);
            (0..n)
                .map(|_| [0; 3].map(|_| rng.random::<f32>() * 2.0 - 1.0))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `count` uniform samples with their true SDF, in the ball or the cube.
pub fn uniform(sdf: &MeshSdf, count: usize, domain: UniformDomain, seed: u64) -> Samples {
    let points = match domain {
        UniformDomain::Ball => uniform_ball_points(count, seed.wrapping_add(7)),
        UniformDomain::Cube => uniform_cube_points(count, seed.wrapping_add(7)),
    };
    let values = sdf.signed_distance(&points);
    Samples {
        points,
        sdf: values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::icosphere;
    use crate::mesh::Normalisation;

    fn sphere_sdf() -> MeshSdf {
        let m = icosphere(3);
        // Radius 0.5 so the pool has points well inside and outside.
        let n = Normalisation {
            centre: [0.0; 3],
            scale: 0.5,
        };
        MeshSdf::new(&n.apply_to_mesh(&m))
    }

    #[test]
    fn weighted_keeps_distinct_pool_points_and_is_reproducible() {
        let sdf = sphere_sdf();
        let config = WeightedConfig {
            pool: 50_000,
            keep: 5_000,
            beta: 30.0,
        };
        let a = weighted(&sdf, &config, 5);
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, weighted(&sdf, &config, 5));
        assert_ne!(a, weighted(&sdf, &config, 6));
        let mut pts: Vec<[u32; 3]> = a.points.iter().map(|p| p.map(f32::to_bits)).collect();
        pts.sort_unstable();
        pts.dedup();
        assert_eq!(pts.len(), 5_000, "a pool point was kept twice");
        // Kept values are the true SDF of the kept points.
        assert_eq!(a.sdf, sdf.signed_distance(&a.points));
        assert!(a
            .points
            .iter()
            .all(|p| p.iter().map(|c| c * c).sum::<f32>() <= 1.0));
        // Keeping more than the pool keeps the pool.
        let all = weighted(
            &sdf,
            &WeightedConfig {
                pool: 1000,
                keep: 5000,
                beta: 100.0,
            },
            1,
        );
        assert_eq!(all.len(), 1000);
        let none = weighted(&sdf, &WeightedConfig { keep: 0, ..config }, 1);
        assert!(none.is_empty());
    }

    #[test]
    fn weighted_follows_the_weight_function() {
        // Keep 10% of a uniform pool with beta = 20. Without replacement the
        // kept set is close to (but flatter than) density w(x); the
        // expected mean of |SDF| under w is far below the pool's, and higher
        // beta concentrates further.
        let sdf = sphere_sdf();
        let mean_abs =
            |s: &Samples| s.sdf.iter().map(|d| f64::from(d.abs())).sum::<f64>() / s.len() as f64;
        let run = |beta| {
            weighted(
                &sdf,
                &WeightedConfig {
                    pool: 100_000,
                    keep: 10_000,
                    beta,
                },
                2,
            )
        };
        let flat = mean_abs(&run(0.0));
        let mild = mean_abs(&run(20.0));
        let sharp = mean_abs(&run(100.0));
        // Uniform in the unit ball about a sphere of radius 0.5: E|SDF| =
        // int_0^1 |r - 1/2| 3 r^2 dr = 9/32; beta = 0 must reproduce it.
        assert!(
            (flat - 9.0 / 32.0).abs() < 0.005,
            "beta 0 mean |sdf| {flat}"
        );
        assert!(mild < 0.5 * flat, "{mild} vs {flat}");
        assert!(sharp < 0.75 * mild, "{sharp} vs {mild}");
        // Exact check against the theory of exponential keys: a pool point
        // of weight w is kept when E / w < t for the threshold t of the
        // keep-th key, i.e. with probability 1 - exp(-w t). Solve for t
        // from the expected total and compare per |SDF| band.
        let s = run(100.0);
        let pool = uniform_ball_points(100_000, 2u64.wrapping_add(11));
        let w: Vec<f64> = sdf
            .signed_distance(&pool)
            .iter()
            .map(|d| (-100.0 * f64::from(d.abs())).exp())
            .collect();
        let expected = |t: f64, lo: f64, hi: f64| -> f64 {
            w.iter()
                .filter(|&&wi| wi <= (-100.0 * lo).exp() && wi > (-100.0 * hi).exp())
                .map(|&wi| 1.0 - (-wi * t).exp())
                .sum()
        };
        let (mut lo_t, mut hi_t) = (1e-3f64, 1e12f64);
        for _ in 0..200 {
            let mid = (lo_t * hi_t).sqrt();
            if expected(mid, 0.0, f64::INFINITY) < 10_000.0 {
                lo_t = mid;
            } else {
                hi_t = mid;
            }
        }
        for (lo, hi) in [
            (0.0, 0.01),
            (0.01, 0.03),
            (0.03, 0.06),
            (0.06, 0.1),
            (0.1, 2.0),
        ] {
            let want = expected(lo_t, lo, hi);
            let got = s
                .sdf
                .iter()
                .filter(|d| f64::from(d.abs()) >= lo && f64::from(d.abs()) < hi)
                .count() as f64;
            // Counts are sums of independent-ish Bernoullis: 5 sigma.
            assert!(
                (got - want).abs() <= 5.0 * want.sqrt() + 5.0,
                "band [{lo}, {hi}): kept {got}, expected {want:.1}"
            );
        }
    }

    #[test]
    fn uniform_domains() {
        let sdf = sphere_sdf();
        let cube = uniform(&sdf, 20_000, UniformDomain::Cube, 3);
        let ball = uniform(&sdf, 20_000, UniformDomain::Ball, 3);
        let outside_ball = |s: &Samples| {
            s.points
                .iter()
                .filter(|p| p.iter().map(|c| c * c).sum::<f32>() > 1.0)
                .count()
        };
        assert_eq!(outside_ball(&ball), 0);
        // The cube's corners outside the ball: 1 - pi/6 of its volume.
        let frac = outside_ball(&cube) as f64 / 20_000.0;
        assert!(
            (frac - (1.0 - std::f64::consts::PI / 6.0)).abs() < 0.02,
            "{frac}"
        );
        assert!(cube.points.iter().flatten().all(|c| c.abs() <= 1.0));
        // Inside fraction of the ball: (0.5)^3 minus faceting.
        let inside = ball.sdf.iter().filter(|d| **d < 0.0).count() as f64 / 20_000.0;
        assert!((inside - 0.125).abs() < 0.01, "{inside}");
        assert_eq!(
            uniform_cube_points(10_000, 1),
            uniform_cube_points(10_000, 1)
        );
    }
}
