//! Metrics stage: how far a reconstruction is from the original (paper Sec. 2,
//! plus the usual companions of reconstruction papers).
//!
//! Everything is measured in one frame: the unit-sphere frame of the
//! reference mesh (centred on its vertex mean, farthest vertex at radius 1),
//! so numbers are comparable across shapes and with the paper. All sampling
//! is seeded; the same meshes, configuration and seed give the same report.

mod emd;
pub mod hausdorff;
mod kdtree;
mod sdf_error;

pub use emd::{earth_movers_sum, optimal_assignment};
pub use kdtree::KdTree;
pub use sdf_error::{held_out_sdf_error, HeldOutConfig, SdfErrorReport, HELD_OUT_SEED};

use rayon::prelude::*;
use serde::Serialize;

use crate::mesh::{Centring, Normalisation, TriangleMesh};
use crate::sampling::{surface_points, surface_points_with_triangles};
use crate::sdf::MeshSdf;
use crate::util::memory::{self, MemoryShortfall};

/// The paper's Chamfer distance between two point sets: for each point the
/// squared distance to its nearest neighbour in the other set, averaged per
/// set (the DeepSDF normalisation by point count) and summed over both ways.
pub fn chamfer_points(a: &[[f32; 3]], b: &[[f32; 3]]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::INFINITY;
    }
    mean(&nearest_squared(a, b)) + mean(&nearest_squared(b, a))
}

/// For each point of `from`, the squared distance to the nearest point of
/// `to` (exact, through a k-d tree).
pub fn nearest_squared(from: &[[f32; 3]], to: &[[f32; 3]]) -> Vec<f64> {
    let tree = KdTree::new(to);
    from.par_iter().map(|&p| tree.nearest_squared(p)).collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChamferReport {
    /// The paper's CD (not multiplied by 10^3).
    pub chamfer: f64,
    pub points: usize,
    pub seed: u64,
}

/// The unit-sphere frame every metric is measured in: the reference's own
/// (vertex-mean centre, farthest vertex at radius 1), as training uses.
pub fn metric_frame(reference: &TriangleMesh) -> Normalisation {
    Normalisation::fit(reference, Centring::VertexMean, 0.0)
}

// Distinct sample streams per mesh and per metric: the same uniforms on two
// similar meshes would correlate the samples and flatter the score.
const OTHER_STREAM: u64 = 0x5EED_0F07_11E4;
const EMD_STREAM: u64 = 0xE3D0_0000_0500;

/// Chamfer distance between two meshes on `points` surface samples of each,
/// measured in the unit-sphere frame of `reference`.
pub fn chamfer_meshes(
    reference: &TriangleMesh,
    other: &TriangleMesh,
    points: usize,
    seed: u64,
) -> Result<ChamferReport, MemoryShortfall> {
    ensure_point_memory(points)?;
    let n = metric_frame(reference);
    let a = surface_points(&n.apply_to_mesh(reference), points, seed);
    let b = surface_points(&n.apply_to_mesh(other), points, seed ^ OTHER_STREAM);
    Ok(ChamferReport {
        chamfer: chamfer_points(&a, &b),
        points,
        seed,
    })
}

/// Host memory per surface sample of the point metrics, both meshes
/// together: points, their triangles, k-d trees and distances (measured
/// with `hisdf eval --chamfer-points`: about 80 bytes; rounded up).
const BYTES_PER_METRIC_POINT: u64 = 96;

/// Refuses, before sampling, a point count the process cannot hold.
fn ensure_point_memory(points: usize) -> Result<(), MemoryShortfall> {
    memory::ensure(
        points as u64 * BYTES_PER_METRIC_POINT,
        || format!("measuring on {points} surface samples per mesh"),
        "lower chamfer_points (the paper uses 10,000)",
    )
}

/// What [`evaluate`] measures and with how many samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EvalConfig {
    /// Surface samples per mesh for the Chamfer distances, F-score, normal
    /// consistency and Hausdorff distances (the paper: 10,000).
    pub chamfer_points: usize,
    /// Samples per mesh for the EMD (the paper: 500). The exact assignment
    /// costs O(n^3) time and O(n^2) memory; [`MAX_EMD_POINTS`] bounds it.
    pub emd_points: usize,
    /// Distance (unit-sphere frame) within which a sample counts as matched
    /// for the F-score. 0.01 is 1/200 of the frame's diameter, about the
    /// detail a 256^3 extraction resolves, and the value most
    /// reconstruction papers report.
    pub f_score_threshold: f64,
    pub seed: u64,
}

/// Beyond this the EMD's cost matrix alone passes 200 MB.
pub const MAX_EMD_POINTS: usize = 5000;

/// The most surface samples per mesh for the point metrics (a few GB of
/// points, trees and distances; 10,000 times the paper's count).
pub const MAX_CHAMFER_POINTS: usize = 100_000_000;

impl EvalConfig {
    /// Refuses sample counts that are zero or would exhaust memory, and a
    /// threshold that is not a positive number. Messages name the setting
    /// as `evaluate`'s fields do.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CHAMFER_POINTS).contains(&self.chamfer_points) {
            return Err(format!(
                "chamfer_points must be 1..={MAX_CHAMFER_POINTS}, got {}",
                self.chamfer_points
            ));
        }
        if !(1..=MAX_EMD_POINTS).contains(&self.emd_points) {
            return Err(format!(
                "emd_points must be 1..={MAX_EMD_POINTS} (the assignment is cubic), got {}",
                self.emd_points
            ));
        }
        if !(self.f_score_threshold.is_finite() && self.f_score_threshold > 0.0) {
            return Err(format!(
                "f_score_threshold must be a positive number, got {}",
                self.f_score_threshold
            ));
        }
        Ok(())
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            chamfer_points: 10_000,
            emd_points: 500,
            f_score_threshold: 0.01,
            seed: 0,
        }
    }
}

/// Every metric between a reference mesh and another, in the unit-sphere
/// frame of the reference. "ref->other" reads "from samples of the
/// reference to the other mesh".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// The paper's CD: point-to-point, squared, mean per direction, summed
    /// (not multiplied by 10^3).
    pub chamfer: f64,
    /// Samples per mesh behind the point-based metrics.
    pub chamfer_points: usize,
    /// The paper's EMD as a mean: the optimal bijection's total distance
    /// divided by the point count. The paper writes the sum, but its Table 1
    /// values (about 0.09 at 500 points in the unit frame) are means.
    pub emd: f64,
    /// The optimal bijection's total distance (the paper's formula).
    pub emd_sum: f64,
    pub emd_points: usize,
    /// Chamfer with exact distances to the other surface instead of to its
    /// samples: no sampling floor. Squared, mean per direction, summed.
    pub chamfer_point_to_mesh: f64,
    /// Hausdorff distance: the larger of the two one-sided maxima over the
    /// whole surfaces (not samples), certified: each one-sided value is the
    /// largest exact point-to-triangle distance found by branch and bound
    /// over the triangles (see `metrics::hausdorff`), and is within
    /// `hausdorff_tolerance` of the true maximum unless the query cap was
    /// hit; `hausdorff_upper` is the proven bound either way.
    pub hausdorff: f64,
    pub hausdorff_ref_to_other: f64,
    pub hausdorff_other_to_ref: f64,
    /// Proven upper bounds of the same maxima: the true Hausdorff distance
    /// lies in [hausdorff, hausdorff_upper]. Wider than the tolerance only
    /// when [`HAUSDORFF_MAX_EVALUATIONS`] ran out.
    pub hausdorff_upper: f64,
    pub hausdorff_upper_ref_to_other: f64,
    pub hausdorff_upper_other_to_ref: f64,
    /// The gap the bounds were asked to close (unit-sphere frame).
    pub hausdorff_tolerance: f64,
    /// Distance queries spent on the certified maxima, both directions.
    pub hausdorff_evaluations: usize,
    /// 99th percentiles of the point-to-mesh distances, per direction:
    /// robust to a few stray triangles. Unlike the maxima these are area
    /// statistics over the surface samples (each sample weighs the same
    /// area), so they are estimates, not certified.
    pub hausdorff_p99_ref_to_other: f64,
    pub hausdorff_p99_other_to_ref: f64,
    /// Mean |cos| between the normal at a sample (its triangle's) and the
    /// normal of the closest triangle of the other mesh, averaged over both
    /// directions; 1 is perfect. Orientation-blind on purpose, as usual.
    pub normal_consistency: f64,
    /// Harmonic mean of precision and recall at `f_score_threshold`, with
    /// point-to-mesh distances: recall is the share of reference samples
    /// within the threshold of the other mesh, precision the share of the
    /// other's samples within it of the reference.
    pub f_score: f64,
    pub precision: f64,
    pub recall: f64,
    pub f_score_threshold: f64,
    /// Connected components of each mesh, on welded positions (see
    /// [`TriangleMesh::components`]), so that a reconstruction's duplicate
    /// vertices never split it; every component counts, however small.
    pub components_reference: usize,
    pub components_other: usize,
    /// Components holding at least 0.1% of their mesh's area: tells a
    /// crumb left by marching cubes from a misplaced part of the shape.
    pub components_other_significant: usize,
    /// Share of the other mesh's area outside its largest components that
    /// the reference's significant count allows: 0 when the extra
    /// components are only crumbs of no area.
    pub components_other_extra_area_share: f64,
    pub seed: u64,
    pub seconds: f64,
    /// The network's own SDF error on held-out samples, when the caller
    /// had the model (`hisdf eval --model`, batch runs); its fields sit
    /// beside the others in the JSON and in the C API's named results.
    #[serde(flatten)]
    pub model: Option<SdfErrorReport>,
}

/// Gap between the certified Hausdorff bounds [`evaluate`] asks for, in the
/// unit-sphere frame.
pub const HAUSDORFF_TOLERANCE: f64 = hausdorff::DEFAULT_TOLERANCE;

/// Distance queries per direction after which [`evaluate`] reports the
/// Hausdorff distance as an interval instead of closing the gap.
pub const HAUSDORFF_MAX_EVALUATIONS: usize = hausdorff::DEFAULT_MAX_EVALUATIONS;

/// Area share from which a component counts as a part of the shape rather
/// than a crumb (see [`EvalReport::components_other_significant`]).
pub const SIGNIFICANT_AREA_SHARE: f64 = 1e-3;

/// Share of the total area outside the `keep` largest components.
fn extra_area_share(areas: &[f64], keep: usize) -> f64 {
    let total: f64 = areas.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let mut sorted = areas.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted.iter().skip(keep.max(1)).sum::<f64>() / total
}

/// All metrics of [`EvalReport`] between two meshes. Empty meshes give
/// infinite distances and zero scores rather than panicking.
/// A point count the process cannot hold is refused before any sampling.
pub fn evaluate(
    reference: &TriangleMesh,
    other: &TriangleMesh,
    config: &EvalConfig,
) -> Result<EvalReport, MemoryShortfall> {
    ensure_point_memory(config.chamfer_points)?;
    let start = std::time::Instant::now();
    let ref_components = reference.components();
    let other_components = other.components();
    let (ma, mb) = metric_frame_meshes(reference, other);
    let n = config.chamfer_points;
    let seed = config.seed;
    let samples = metric_samples(&ma, &mb, config);
    let (a, ta) = (&samples.reference, &samples.reference_triangles);
    let (b, tb) = (&samples.other, &samples.other_triangles);
    let chamfer = chamfer_points(a, b);

    let (sdf_a, sdf_b) = (MeshSdf::new(&ma), MeshSdf::new(&mb));
    // Distances of the reference's samples to the other mesh, and back.
    let d_ab = unsigned(&sdf_b, a);
    let d_ba = unsigned(&sdf_a, b);
    let sq_mean = |d: &[f64]| mean(&d.iter().map(|x| x * x).collect::<Vec<_>>());
    let chamfer_point_to_mesh = if a.is_empty() || b.is_empty() {
        f64::INFINITY
    } else {
        sq_mean(&d_ab) + sq_mean(&d_ba)
    };
    // Percentiles are over the area samples (they weigh the surface by
    // area); the maxima are certified by branch and bound over each mesh's
    // triangles (see `hausdorff`), which also covers every vertex.
    let (_, p99_ab) = max_and_p99(&d_ab);
    let (_, p99_ba) = max_and_p99(&d_ba);
    let (h_ab, h_ba) = rayon::join(
        || hausdorff::one_sided(&ma, &sdf_b, HAUSDORFF_TOLERANCE, HAUSDORFF_MAX_EVALUATIONS),
        || hausdorff::one_sided(&mb, &sdf_a, HAUSDORFF_TOLERANCE, HAUSDORFF_MAX_EVALUATIONS),
    );

    let tau = config.f_score_threshold;
    let share_within = |d: &[f64]| {
        if d.is_empty() {
            0.0
        } else {
            d.iter().filter(|&&x| x <= tau).count() as f64 / d.len() as f64
        }
    };
    let recall = share_within(&d_ab);
    let precision = share_within(&d_ba);
    let f_score = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };

    let nc_ab = normal_agreement(&ma, a, ta, &sdf_b);
    let nc_ba = normal_agreement(&mb, b, tb, &sdf_a);
    let normal_consistency = 0.5 * (nc_ab + nc_ba);

    let m = samples.emd_reference.len();
    let (emd_sum, emd) = if m > 0 && samples.emd_other.len() == m {
        let sum = earth_movers_sum(&samples.emd_reference, &samples.emd_other);
        (sum, sum / m as f64)
    } else {
        (f64::INFINITY, f64::INFINITY)
    };

    Ok(EvalReport {
        chamfer,
        chamfer_points: n,
        emd,
        emd_sum,
        emd_points: config.emd_points.min(MAX_EMD_POINTS),
        chamfer_point_to_mesh,
        hausdorff: h_ab.lower.max(h_ba.lower),
        hausdorff_ref_to_other: h_ab.lower,
        hausdorff_other_to_ref: h_ba.lower,
        hausdorff_upper: h_ab.upper.max(h_ba.upper),
        hausdorff_upper_ref_to_other: h_ab.upper,
        hausdorff_upper_other_to_ref: h_ba.upper,
        hausdorff_tolerance: HAUSDORFF_TOLERANCE,
        hausdorff_evaluations: h_ab.evaluations + h_ba.evaluations,
        hausdorff_p99_ref_to_other: p99_ab,
        hausdorff_p99_other_to_ref: p99_ba,
        normal_consistency,
        f_score,
        precision,
        recall,
        f_score_threshold: tau,
        components_reference: ref_components.count,
        components_other: other_components.count,
        components_other_significant: other_components.significant(SIGNIFICANT_AREA_SHARE),
        components_other_extra_area_share: extra_area_share(
            &other_components.areas,
            ref_components.significant(SIGNIFICANT_AREA_SHARE),
        ),
        seed,
        seconds: start.elapsed().as_secs_f64(),
        model: None,
    })
}

/// The surface samples behind [`evaluate`]'s point-based metrics, in the
/// metric frame; public so that an independent implementation can check the
/// numbers on exactly these points (`bench/check_metrics.py`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSamples {
    pub reference: Vec<[f32; 3]>,
    pub reference_triangles: Vec<usize>,
    pub other: Vec<[f32; 3]>,
    pub other_triangles: Vec<usize>,
    pub emd_reference: Vec<[f32; 3]>,
    pub emd_other: Vec<[f32; 3]>,
}

/// Samples of two meshes already in the metric frame (see
/// [`metric_frame_meshes`]). An empty mesh gives no samples, which makes
/// its distances infinite (sampling it would give points at the origin).
pub fn metric_samples(
    reference: &TriangleMesh,
    other: &TriangleMesh,
    config: &EvalConfig,
) -> MetricSamples {
    let sample = |m: &TriangleMesh, count: usize, s: u64| {
        if m.triangles.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            surface_points_with_triangles(m, count, s)
        }
    };
    let seed = config.seed;
    let n = config.chamfer_points;
    let m = config.emd_points.min(MAX_EMD_POINTS);
    let (reference_pts, reference_triangles) = sample(reference, n, seed);
    let (other_pts, other_triangles) = sample(other, n, seed ^ OTHER_STREAM);
    MetricSamples {
        reference: reference_pts,
        reference_triangles,
        other: other_pts,
        other_triangles,
        emd_reference: sample(reference, m, seed ^ EMD_STREAM).0,
        emd_other: sample(other, m, seed ^ EMD_STREAM ^ OTHER_STREAM).0,
    }
}

/// Both meshes in the unit-sphere frame of `reference`, where every metric
/// is measured.
pub fn metric_frame_meshes(
    reference: &TriangleMesh,
    other: &TriangleMesh,
) -> (TriangleMesh, TriangleMesh) {
    let frame = metric_frame(reference);
    (frame.apply_to_mesh(reference), frame.apply_to_mesh(other))
}

fn unsigned(sdf: &MeshSdf, points: &[[f32; 3]]) -> Vec<f64> {
    sdf.unsigned_distance(points)
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Maximum and 99th percentile (nearest rank); +inf for no values.
fn max_and_p99(d: &[f64]) -> (f64, f64) {
    if d.is_empty() {
        return (f64::INFINITY, f64::INFINITY);
    }
    let mut s = d.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let rank = ((0.99 * s.len() as f64).ceil() as usize).clamp(1, s.len());
    (s[s.len() - 1], s[rank - 1])
}

/// Mean |cos| between each sample's triangle normal on `mesh` and the normal
/// of the closest triangle of the other mesh; 0 where either is undefined.
fn normal_agreement(
    mesh: &TriangleMesh,
    points: &[[f32; 3]],
    tris: &[usize],
    other: &MeshSdf,
) -> f64 {
    if points.is_empty() {
        return 0.0;
    }
    let sum: f64 = points
        .par_iter()
        .zip(tris)
        .map(|(&p, &t)| {
            let n = mesh.triangle_normal(t);
            match other.try_closest_point(p) {
                Some((_, _, m)) => {
                    let c = (0..3).map(|k| n[k] * f64::from(m[k])).sum::<f64>();
                    if c.is_finite() {
                        c.abs().min(1.0)
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            }
        })
        .sum();
    sum / points.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::{icosphere, unit_cube};

    #[test]
    fn chamfer_of_hand_made_sets() {
        let a = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]];
        let b = [[0.0, 0.5, 0.0]];
        // a->b: 0.25 and 1.25 -> mean 0.75; b->a: 0.25. Sum 1.0.
        assert!((chamfer_points(&a, &b) - 1.0).abs() < 1e-12);
        assert_eq!(chamfer_points(&a, &a), 0.0);
        assert!(chamfer_points(&a, &[]).is_infinite());
    }

    fn scaled(mesh: &TriangleMesh, s: f32) -> TriangleMesh {
        TriangleMesh {
            vertices: mesh.vertices.iter().map(|v| v.map(|c| c * s)).collect(),
            triangles: mesh.triangles.clone(),
        }
    }

    #[test]
    fn chamfer_grows_with_offset() {
        let mesh = icosphere(3);
        let same = chamfer_meshes(&mesh, &mesh, 2000, 1).unwrap().chamfer;
        let off = chamfer_meshes(&mesh, &scaled(&mesh, 1.1), 2000, 1)
            .unwrap()
            .chamfer;
        // A 10% larger sphere in the unit frame is 0.1 away everywhere:
        // CD is about 2 * 0.01 plus the sampling floor.
        assert!(same < 0.01, "{same}");
        assert!((off - 0.02).abs() < 0.006 + same, "{off}");
    }

    /// A cube with one corner pulled out along its diagonal by delta: the
    /// farthest point of the bumped surface from the cube is that corner,
    /// delta away, which area samples all but never hit.
    #[test]
    fn hausdorff_finds_a_moved_vertex_exactly() {
        let cube = crate::mesh::primitives::unit_cube();
        let mut bumped = cube.clone();
        let delta = 0.05f32;
        let corner = cube
            .vertices
            .iter()
            .position(|v| *v == [0.5, 0.5, 0.5])
            .unwrap();
        let out = delta / 3f32.sqrt();
        bumped.vertices[corner] = [0.5 + out, 0.5 + out, 0.5 + out];
        let config = EvalConfig {
            chamfer_points: 2000,
            emd_points: 50,
            ..EvalConfig::default()
        };
        let r = evaluate(&cube, &bumped, &config).unwrap();
        // In the cube's unit-sphere frame: its corners are at radius 1.
        let moved = bumped.vertices[corner].map(f64::from);
        let want = ((moved[0] - 0.5).powi(2) * 3.0).sqrt() / 0.75f64.sqrt();
        assert!(
            (r.hausdorff_other_to_ref - want).abs() < 1e-6,
            "{} against {want}",
            r.hausdorff_other_to_ref
        );
        assert_eq!(
            r.hausdorff,
            r.hausdorff_other_to_ref.max(r.hausdorff_ref_to_other)
        );
        // The percentile stays an area statistic, below the corner's value.
        assert!(r.hausdorff_p99_other_to_ref < 0.9 * want, "{r:?}");
    }

    #[test]
    fn report_on_identical_and_offset_spheres() {
        let mesh = icosphere(3);
        let config = EvalConfig {
            chamfer_points: 3000,
            emd_points: 200,
            ..EvalConfig::default()
        };
        let same = evaluate(&mesh, &mesh, &config).unwrap();
        assert!(same.chamfer_point_to_mesh < 1e-10, "{same:?}");
        assert!(same.hausdorff < 1e-5);
        assert_eq!(same.f_score, 1.0);
        assert!(same.normal_consistency > 0.999, "{same:?}");
        // Two samplings of one surface still differ: EMD and CD have floors.
        assert!(same.emd > 0.0 && same.emd < 0.4, "{same:?}");

        let big = evaluate(&mesh, &scaled(&mesh, 1.05), &config).unwrap();
        // Radius 1 against 1.05 (the frame is the reference's unit sphere):
        // every point is 0.05 away, up to the facets' sagitta.
        assert!(
            (big.chamfer_point_to_mesh - 2.0 * 0.05f64.powi(2)).abs() < 1.5e-3,
            "{big:?}"
        );
        assert!((big.hausdorff - 0.05).abs() < 0.02, "{big:?}");
        assert!(big.hausdorff_p99_ref_to_other <= big.hausdorff_ref_to_other);
        assert_eq!(big.f_score, 0.0, "{big:?}");
        assert!(big.emd > same.emd && big.chamfer > same.chamfer);
        assert!(big.normal_consistency > 0.99);
        assert_eq!(big.emd_sum, big.emd * 200.0);

        // Deterministic in the seed.
        assert_eq!(
            evaluate(&mesh, &mesh, &config).unwrap().chamfer,
            same.chamfer
        );
        let other_seed = EvalConfig { seed: 5, ..config };
        assert_ne!(evaluate(&mesh, &mesh, &other_seed).unwrap().emd, same.emd);
    }

    #[test]
    fn normal_consistency_sees_a_wrong_shape() {
        // A cube against the sphere through its corners: normals disagree
        // almost everywhere, so the score falls far below 1.
        let cube = unit_cube();
        let centred = TriangleMesh {
            vertices: cube.vertices.iter().map(|v| v.map(|c| c - 0.5)).collect(),
            triangles: cube.triangles.clone(),
        };
        let sphere = scaled(&icosphere(3), 0.5 * 3f32.sqrt());
        let config = EvalConfig {
            chamfer_points: 2000,
            emd_points: 50,
            ..EvalConfig::default()
        };
        let r = evaluate(&centred, &sphere, &config).unwrap();
        assert!(r.normal_consistency < 0.95, "{r:?}");
        assert!(r.f_score < 0.5, "{r:?}");
    }

    #[test]
    fn components_of_one_cube_against_two() {
        let cube = unit_cube();
        let mut two = cube.clone();
        let offset = two.vertices.len() as u32;
        two.vertices
            .extend(cube.vertices.iter().map(|p| [p[0] + 2.0, p[1], p[2]]));
        two.triangles
            .extend(cube.triangles.iter().map(|t| t.map(|v| v + offset)));
        // The second cube as a triangle soup: duplicated vertices, as some
        // exporters write, must not split it.
        let base = two.vertices.len() as u32;
        for (k, t) in cube.triangles.iter().enumerate() {
            two.vertices.extend(
                t.map(|v| cube.vertices[v as usize])
                    .map(|p| [p[0], p[1] + 2.0, p[2]]),
            );
            let b = base + 3 * k as u32;
            two.triangles.push([b, b + 1, b + 2]);
        }
        let config = EvalConfig {
            chamfer_points: 500,
            emd_points: 20,
            ..EvalConfig::default()
        };
        let r = evaluate(&cube, &two, &config).unwrap();
        assert_eq!((r.components_reference, r.components_other), (1, 3));
        // Three equal cubes against one: two thirds of the area is extra.
        assert_eq!(r.components_other_significant, 3);
        assert!((r.components_other_extra_area_share - 2.0 / 3.0).abs() < 1e-9);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["components_other"], 3);
        // Without a model, no model fields.
        assert!(json.get("sdf_error_near").is_none());
    }

    #[test]
    fn empty_meshes_do_not_panic() {
        let r = evaluate(
            &icosphere(1),
            &TriangleMesh::default(),
            &EvalConfig::default(),
        )
        .unwrap();
        assert!(r.chamfer.is_infinite() && r.emd.is_infinite());
        assert_eq!(r.f_score, 0.0);
        assert_eq!((r.components_reference, r.components_other), (1, 0));
    }
}
