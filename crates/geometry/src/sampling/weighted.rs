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
///
/// The cost is the pool's distances, and most of the pool is far from the
/// surface where exp(-beta |SDF|) is negligible. So distances are first
/// computed only below a cap (beyond it, cap is a lower bound of |SDF| and
/// so of the key); pool points that the bounds still let into the selection
/// get their exact distance and the selection is repeated, until every kept
/// point has an exact key. Kept points are then the exact `keep` smallest,
/// and only they get a signed distance.
pub fn weighted(sdf: &MeshSdf, config: &WeightedConfig, seed: u64) -> Samples {
    let clock = std::time::Instant::now();
    let lap = |what: &str| {
        log::debug!(
            "weighted sampling: {what} after {:.3} s",
            clock.elapsed().as_secs_f64()
        )
    };
    let beta = if config.beta > 0.0 { config.beta } else { 0.0 };
    let pool = uniform_ball_points(config.pool, seed.wrapping_add(11));
    let keep = config.keep.min(pool.len());
    let log_e: Vec<f64> = (0..pool.len().div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng: Pcg64Mcg = stream(seed, 3, c);
            let n = CHUNK.min(pool.len() - c * CHUNK);
            // 1 - U lies in (0, 1], so E = -ln(1 - U) is finite.
            (0..n)
                .map(|_| (-(1.0 - rng.random::<f64>()).ln()).ln())
                .collect::<Vec<_>>()
        })
        .collect();
    // A key beyond the cap's exceeds a near-surface key by about
    // beta * cap = 12: a pool point needs E below ~e^-9 to be let in by its
    // bound, a few hundred in ten million.
    lap("pool and keys");
    let cap = if beta > 0.0 {
        (12.0 / beta) as f32
    } else {
        0.0
    };
    let mut dist: Vec<f32> = if beta > 0.0 {
        capped_distances(sdf, &pool, cap)
    } else {
        // Weights are all 1: distances do not matter to the selection.
        vec![0.0; pool.len()]
    };
    let key = |e: f64, d: f32| {
        // A NaN distance (no usable triangle) gets the largest key: chosen
        // last, never a NaN comparison.
        let k = e + beta * f64::from(d);
        if k.is_nan() {
            f64::INFINITY
        } else {
            k
        }
    };
    lap("capped distances");
    let mut exact: Vec<bool> = dist.iter().map(|d| d.is_finite() || d.is_nan()).collect();
    let chosen = loop {
        let mut keys: Vec<(f64, u32)> = (0..pool.len())
            .into_par_iter()
            .map(|i| {
                let d = if exact[i] { dist[i] } else { cap };
                (key(log_e[i], d), i as u32)
            })
            .collect();
        if keep < keys.len() && keep > 0 {
            keys.select_nth_unstable_by(keep - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        keys.truncate(keep);
        let missing: Vec<u32> = keys
            .iter()
            .map(|&(_, i)| i)
            .filter(|&i| !exact[i as usize])
            .collect();
        if missing.is_empty() {
            break keys;
        }
        log::debug!(
            "weighted sampling: {} capped pool points need their exact distance",
            missing.len()
        );
        let pts: Vec<[f32; 3]> = missing.iter().map(|&i| pool[i as usize]).collect();
        for (&i, d) in missing.iter().zip(sdf.unsigned_distance(&pts)) {
            dist[i as usize] = d;
            exact[i as usize] = true;
        }
    };
    lap("selection");
    let mut chosen: Vec<u32> = chosen.into_iter().map(|(_, i)| i).collect();
    chosen.par_sort_unstable();
    let points: Vec<[f32; 3]> = chosen.iter().map(|&i| pool[i as usize]).collect();
    let values = sdf.signed_distance(&points);
    lap("signed distances of the kept points");
    Samples {
        points,
        sdf: values,
    }
}

/// Distances of `pool` (points in [-1, 1]^3) below `cap`, +inf at or
/// beyond it. A coarse grid culls first: distance is 1-Lipschitz, so a cell
/// whose centre is farther than `cap` plus its half diagonal from the
/// surface holds no point closer than `cap`, and its points need no query.
fn capped_distances(sdf: &MeshSdf, pool: &[[f32; 3]], cap: f32) -> Vec<f32> {
    const GRID: usize = 64;
    let h = 2.0 / GRID as f32;
    let half_diagonal = h * 3f32.sqrt() / 2.0;
    let centres: Vec<[f32; 3]> = (0..GRID * GRID * GRID)
        .map(|c| {
            [c % GRID, (c / GRID) % GRID, c / (GRID * GRID)].map(|i| -1.0 + (i as f32 + 0.5) * h)
        })
        .collect();
    // Rounding margin: the bound must hold for the f32 centre positions.
    let reach = cap + half_diagonal + 1e-5;
    let near: Vec<bool> = sdf
        .unsigned_distance_below(&centres, reach)
        .iter()
        .map(|d| d.is_nan() || *d < reach)
        .collect();
    let cell = |p: &[f32; 3]| {
        let i = p.map(|c| (((c + 1.0) / h) as usize).min(GRID - 1));
        i[0] + GRID * (i[1] + GRID * i[2])
    };
    let idx: Vec<u32> = (0..pool.len() as u32)
        .filter(|&i| near[cell(&pool[i as usize])])
        .collect();
    log::debug!(
        "weighted sampling: {} of {} pool points near enough to query",
        idx.len(),
        pool.len()
    );
    let pts: Vec<[f32; 3]> = idx.iter().map(|&i| pool[i as usize]).collect();
    let mut out = vec![f32::INFINITY; pool.len()];
    for (&i, d) in idx.iter().zip(sdf.unsigned_distance_below(&pts, cap)) {
        out[i as usize] = d;
    }
    out
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
