//! Certified one-sided Hausdorff distance: max over the points p of surface
//! A of dist(p, B), to a stated tolerance, by best-first branch and bound
//! over A's triangles.
//!
//! Each (sub-)triangle S with corners c_i carries an upper bound of the max
//! of d = dist(., B) over S, the smaller of two:
//! - Lipschitz: d is 1-Lipschitz, so d(p) <= d(c_i) + |p - c_i| for p in S,
//!   and |p - c_i| <= max_j |c_j - c_i| (S is the hull of its corners);
//! - mixed candidate: d(p) <= dist(p, T) for any one triangle T of B, and
//!   dist(., T) is convex, so its max over S sits at a corner. T is the
//!   closest triangle of B to a corner, which each corner query returns.
//!
//! The second bound is what makes nearly identical surfaces cheap: where S
//! faces a single triangle of B it equals the corners' own maximum. The
//! lower bound is the largest distance actually found (corners and split
//! points). The sub-triangle with the largest upper bound is split across
//! its longest edge until upper - lower <= tolerance, or until a cap on the
//! distance queries, when the answer is an interval.

use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::mesh::geometry::{norm, sub, V3};
use crate::mesh::TriangleMesh;
use crate::sdf::MeshSdf;

/// Default gap between the certified bounds, in the unit-sphere metric
/// frame (1e-6 of the frame's radius).
pub const DEFAULT_TOLERANCE: f64 = 1e-6;

/// Default cap on distance queries per direction (about a second or two of
/// BVH queries on one core).
pub const DEFAULT_MAX_EVALUATIONS: usize = 2_000_000;

/// Sub-triangles split per round, in parallel: enough to keep the cores
/// busy, few enough that the best-first order is barely disturbed.
const BATCH: usize = 256;

/// The certified interval of one direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneSided {
    /// Largest distance found at a point of A: a true distance, so never
    /// above the Hausdorff distance (f32 pruning of the closest-triangle
    /// search aside, a few f32 ulps).
    pub lower: f64,
    /// Proven bound: no point of A is farther from B.
    pub upper: f64,
    /// Distance queries to B spent.
    pub evaluations: usize,
}

impl OneSided {
    /// Both bounds infinite: A or B has no usable triangle (the same
    /// convention as the other metrics for empty meshes).
    const EMPTY: OneSided = OneSided {
        lower: f64::INFINITY,
        upper: f64::INFINITY,
        evaluations: 0,
    };
}

/// A corner of a sub-triangle: its position, distance to B and the closest
/// triangle of B.
#[derive(Clone, Copy)]
struct Corner {
    p: V3,
    d: f64,
    near: [V3; 3],
}

struct Node {
    upper: f64,
    corners: [Corner; 3],
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.upper.total_cmp(&other.upper).is_eq()
    }
}
impl Eq for Node {}
impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Node {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.upper.total_cmp(&other.upper)
    }
}

fn dist_to_triangle(p: V3, t: &[V3; 3]) -> f64 {
    norm(sub(
        p,
        crate::sdf::closest_point_on_triangle(p, t[0], t[1], t[2]),
    ))
}

/// The smaller of the Lipschitz and mixed-candidate bounds (module doc).
fn upper_bound(c: &[Corner; 3]) -> f64 {
    let mut best = f64::INFINITY;
    for i in 0..3 {
        let reach = (0..3)
            .map(|j| norm(sub(c[j].p, c[i].p)))
            .fold(0.0, f64::max);
        let mixed = (0..3)
            .map(|j| dist_to_triangle(c[j].p, &c[i].near))
            .fold(0.0, f64::max);
        best = best.min(c[i].d + reach).min(mixed);
    }
    // Never below the corners themselves (rounding of the mixed bound).
    best.max(c.iter().map(|k| k.d).fold(0.0, f64::max))
}

/// The longest edge (i, j) and the corner k opposite it.
fn longest_edge(c: &[Corner; 3]) -> (usize, usize, usize) {
    let len = |i: usize, j: usize| norm(sub(c[i].p, c[j].p));
    [(0, 1, 2), (1, 2, 0), (2, 0, 1)]
        .into_iter()
        .max_by(|a, b| len(a.0, a.1).total_cmp(&len(b.0, b.1)))
        .unwrap_or((0, 1, 2))
}

/// Splits across the longest edge at its midpoint `m`.
fn split(c: &[Corner; 3], m: Corner) -> [[Corner; 3]; 2] {
    let (i, j, k) = longest_edge(c);
    [[c[i], m, c[k]], [m, c[j], c[k]]]
}

fn longest_edge_midpoint(c: &[Corner; 3]) -> V3 {
    let (i, j, _) = longest_edge(c);
    [0, 1, 2].map(|a| 0.5 * (c[i].p[a] + c[j].p[a]))
}

fn query(to: &MeshSdf, p: V3) -> Option<Corner> {
    let (d, _, near) = to.closest_triangle(p)?;
    Some(Corner { p, d, near })
}

/// One-sided Hausdorff distance from the surface of `from` to `to`, both in
/// the same coordinates, certified to `tolerance` unless `max_evaluations`
/// distance queries run out first (then `upper - lower` says how far off
/// the answer may be). Triangles of `from` with out-of-range indices or
/// non-finite corners are not part of its surface.
pub fn one_sided(
    from: &TriangleMesh,
    to: &MeshSdf,
    tolerance: f64,
    max_evaluations: usize,
) -> OneSided {
    if to.num_triangles() == 0 {
        return OneSided::EMPTY;
    }
    let tolerance = if tolerance.is_finite() {
        tolerance.max(0.0)
    } else {
        DEFAULT_TOLERANCE
    };
    // Every used vertex once; triangles share their corners' answers.
    let n = from.vertices.len();
    let used = from.referenced_vertices();
    let corners: Vec<Option<Corner>> = (0..n)
        .into_par_iter()
        .map(|v| {
            if !used[v] {
                return None;
            }
            query(to, from.vertices[v].map(f64::from))
        })
        .collect();
    let mut evaluations = used.iter().filter(|&&u| u).count();
    let mut heap: BinaryHeap<Node> = from
        .triangles
        .iter()
        .filter_map(|t| {
            let c = |i: u32| corners.get(i as usize).copied().flatten();
            let cs = [c(t[0])?, c(t[1])?, c(t[2])?];
            Some(Node {
                upper: upper_bound(&cs),
                corners: cs,
            })
        })
        .collect();
    if heap.is_empty() {
        return OneSided::EMPTY;
    }
    let mut lower = corners.iter().flatten().map(|c| c.d).fold(0.0, f64::max);
    loop {
        let top = heap.peek().map_or(lower, |t| t.upper).max(lower);
        if top - lower <= tolerance || evaluations >= max_evaluations {
            return OneSided {
                lower,
                upper: top,
                evaluations,
            };
        }
        // The most promising sub-triangles, split in parallel.
        let room = (max_evaluations - evaluations).min(BATCH);
        let mut batch = Vec::with_capacity(room);
        while batch.len() < room {
            match heap.peek() {
                Some(t) if t.upper - lower > tolerance => batch.extend(heap.pop()),
                _ => break,
            }
        }
        let children: Vec<Option<[[Corner; 3]; 2]>> = batch
            .par_iter()
            .map(|node| {
                let m = query(to, longest_edge_midpoint(&node.corners))?;
                Some(split(&node.corners, m))
            })
            .collect();
        evaluations += batch.len();
        for (node, kids) in batch.iter().zip(children) {
            let Some(kids) = kids else {
                // Unreachable for finite corners; keep the bound honest.
                heap.push(Node {
                    upper: node.upper,
                    corners: node.corners,
                });
                continue;
            };
            for cs in kids {
                lower = lower.max(cs[1].d).max(cs[0].d);
                let upper = upper_bound(&cs);
                // A piece that cannot beat what is found adds nothing to
                // either bound.
                if upper > lower {
                    heap.push(Node { upper, corners: cs });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(z: f32) -> TriangleMesh {
        TriangleMesh {
            vertices: vec![[0.0, 0.0, z], [1.0, 0.0, z], [1.0, 1.0, z], [0.0, 1.0, z]],
            triangles: vec![[0, 1, 2], [0, 2, 3]],
        }
    }

    /// Four faces over the unit square's edges, meeting at an apex `h`
    /// above its centre.
    fn tent(h: f32) -> TriangleMesh {
        TriangleMesh {
            vertices: vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [1.0, 1.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.5, 0.5, h],
            ],
            triangles: vec![[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]],
        }
    }

    /// A square against a "tent" over it whose apex (0.5, 0.5, h) is a
    /// vertex: from the square to the tent the farthest point is NOT a
    /// vertex (the square's centre lies under the apex, its corners on the
    /// tent). With the tent's four faces through the square's edges, the
    /// centre's distance to a face through an edge at distance 0.5 with
    /// slope h/0.5 is 0.5 h / sqrt(h^2 + 0.25), and that is the maximum.
    #[test]
    fn maximum_inside_a_face_matches_the_analytic_value() {
        let h = 0.2f32;
        let tent = tent(h);
        let flat = square(0.0);
        let r = one_sided(&flat, &MeshSdf::new(&tent), 1e-9, 2_000_000);
        let hh = f64::from(h);
        let want = 0.5 * hh / (hh * hh + 0.25).sqrt();
        assert!((r.lower - want).abs() <= 1e-6, "{r:?} against {want}");
        assert!(
            r.upper - r.lower <= 1e-9 && r.upper >= want - 1e-12,
            "{r:?}"
        );
        // Vertices alone see nothing: all four corners lie on the tent.
        let corners = MeshSdf::new(&tent).unsigned_distance(&flat.vertices);
        assert!(corners.iter().all(|&d| d < 1e-6), "{corners:?}");
        // The other way the maximum is the apex, a vertex: h.
        let back = one_sided(&tent, &MeshSdf::new(&flat), 1e-9, 2_000_000);
        assert!((back.lower - hh).abs() < 1e-7, "{back:?}");
    }

    #[test]
    fn identical_meshes_give_zero_quickly() {
        let s = square(0.0);
        let r = one_sided(&s, &MeshSdf::new(&s), 1e-6, 2_000_000);
        assert!(r.upper <= 1e-6 && r.lower == 0.0, "{r:?}");
        // Both triangles face themselves: the mixed bound closes them
        // without a single split.
        assert_eq!(r.evaluations, 4, "{r:?}");
    }

    #[test]
    fn a_cap_reports_an_honest_interval() {
        let h = 0.2f32;
        let tent = tent(h);
        let want = 0.5 * 0.2f64 / (0.04f64 + 0.25).sqrt();
        let r = one_sided(&square(0.0), &MeshSdf::new(&tent), 1e-12, 10);
        assert!(r.evaluations <= 10, "{r:?}");
        assert!(r.lower <= want + 1e-7 && r.upper >= want - 1e-12, "{r:?}");
    }

    #[test]
    fn empty_meshes_give_infinite_bounds() {
        let s = square(0.0);
        let empty = TriangleMesh::default();
        assert_eq!(
            one_sided(&s, &MeshSdf::new(&empty), 1e-6, 100),
            OneSided::EMPTY
        );
        assert_eq!(
            one_sided(&empty, &MeshSdf::new(&s), 1e-6, 100),
            OneSided::EMPTY
        );
    }
}
