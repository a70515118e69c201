//! Closest-point hierarchy: a binary bounding-volume hierarchy over the
//! triangles, searched nearest box first with a bound carried over from the
//! previous query of a spatially sorted batch.
//!
//! Boxes are stored in f32 (the corners are f32, so the boxes are exact) to
//! keep two sibling boxes in one cache line; every distance is evaluated in
//! f64, so the search is exact up to f64 rounding and cannot overflow far
//! from the model, unlike an f32 search.

use super::distance::closest_point_on_triangle;
use super::vec3::{cross, dot, norm, scale, sub, V3};

/// Triangles per leaf: few, so a leaf box hugs its triangles and the lower
/// bound it gives is tight; points nearly equidistant to much of the surface
/// (deep inside, or at the centre of a ring) then visit fewer triangles.
const LEAF: usize = 4;

/// Relative slack on box lower bounds against f64 rounding of the box
/// distance: a box is pruned only when it is farther than the best distance
/// by more than any rounding could explain.
const BOX_SLACK: f64 = 1e-9;

#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Node {
    lo: [f32; 3],
    hi: [f32; 3],
    /// Internal node: index of the first child (the second follows it).
    /// Leaf: first triangle in `tris`.
    first: u32,
    /// 0 for an internal node, else the number of triangles in the leaf.
    count: u32,
}

/// Answer of a query: closest point, triangle index (as given to `new`) and
/// squared distance.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub(crate) point: V3,
    pub(crate) tri: usize,
    pub(crate) dist2: f64,
}

pub(crate) struct ClosestBvh {
    nodes: Vec<Node>,
    /// Corners in leaf order.
    tris: Vec<[V3; 3]>,
    /// Unit normals in leaf order: the distance to a triangle's plane is a
    /// lower bound of the distance to the triangle that costs one dot
    /// product. Where much of the surface is nearly equidistant (a point
    /// deep inside) box bounds cannot separate the leaves, but plane bounds
    /// reject most of their triangles before the full projection.
    normals: Vec<V3>,
    /// Leaf order -> caller's triangle index.
    ids: Vec<u32>,
    /// Caller's triangle index -> leaf order.
    slot: Vec<u32>,
}

impl ClosestBvh {
    /// Builds over `tris` (corners in f64, exactly representable in f32).
    pub(crate) fn new(tris: &[[V3; 3]]) -> Self {
        let mut order: Vec<u32> = (0..tris.len() as u32).collect();
        let centroids: Vec<V3> = tris
            .iter()
            .map(|t| [0, 1, 2].map(|k| (t[0][k] + t[1][k] + t[2][k]) / 3.0))
            .collect();
        let mut nodes = vec![Node {
            lo: [0.0; 3],
            hi: [0.0; 3],
            first: 0,
            count: 0,
        }];
        if !tris.is_empty() {
            build(&mut nodes, 0, &mut order, 0, tris, &centroids);
        }
        let ordered: Vec<[V3; 3]> = order.iter().map(|&i| tris[i as usize]).collect();
        let normals = ordered
            .iter()
            .map(|[a, b, c]| {
                let n = cross(sub(*b, *a), sub(*c, *a));
                let l = norm(n);
                // A zero normal only weakens the bound to 0, never breaks it.
                if l > 0.0 {
                    scale(n, 1.0 / l)
                } else {
                    [0.0; 3]
                }
            })
            .collect();
        let mut slot = vec![0u32; tris.len()];
        for (s, &i) in order.iter().enumerate() {
            slot[i as usize] = s as u32;
        }
        ClosestBvh {
            nodes,
            tris: ordered,
            normals,
            ids: order,
            slot,
        }
    }

    /// Closest point on the triangles to `p` among those closer than
    /// `sqrt(max2)`; None when there is none (or the mesh is empty).
    ///
    /// `hint` is a triangle (caller's index) likely to be near `p`, normally
    /// the previous answer of a spatially sorted batch: its distance is the
    /// starting bound, which prunes most boxes before they are opened. The
    /// hint affects only speed.
    pub(crate) fn closest_within(&self, p: V3, hint: Option<usize>, max2: f64) -> Option<Hit> {
        if self.tris.is_empty() {
            return None;
        }
        let mut best: Option<(V3, u32, f64)> = None;
        let mut best2 = max2;
        if let Some(s) = hint.and_then(|h| self.slot.get(h)) {
            let t = &self.tris[*s as usize];
            let cp = closest_point_on_triangle(p, t[0], t[1], t[2]);
            let d2 = dist2(p, cp);
            if d2 < best2 {
                best2 = d2;
                best = Some((cp, *s, d2));
            }
        }
        let root = &self.nodes[0];
        let mut stack: [(u32, f64); 64] = [(0, 0.0); 64];
        let mut top = 0usize;
        let mut cur = if box_dist2(p, root) * (1.0 - BOX_SLACK) <= best2 {
            Some(0u32)
        } else {
            None
        };
        loop {
            let Some(i) = cur else {
                // Pop the next box still able to beat the best.
                let mut next = None;
                while top > 0 {
                    top -= 1;
                    let (j, d) = stack[top];
                    if d * (1.0 - BOX_SLACK) <= best2 {
                        next = Some(j);
                        break;
                    }
                }
                match next {
                    Some(j) => {
                        cur = Some(j);
                        continue;
                    }
                    None => break,
                }
            };
            let n = &self.nodes[i as usize];
            if n.count > 0 {
                let start = n.first as usize;
                let end = start + n.count as usize;
                for (s, (t, nrm)) in self.tris[start..end]
                    .iter()
                    .zip(&self.normals[start..end])
                    .enumerate()
                {
                    let plane = dot(*nrm, sub(p, t[0]));
                    if plane * plane * (1.0 - BOX_SLACK) > best2 {
                        continue;
                    }
                    let cp = closest_point_on_triangle(p, t[0], t[1], t[2]);
                    let d2 = dist2(p, cp);
                    if d2 < best2 || (best.is_none() && d2 <= best2) {
                        best2 = d2;
                        best = Some((cp, (start + s) as u32, d2));
                    }
                }
                cur = None;
                continue;
            }
            let (a, b) = (n.first, n.first + 1);
            let da = box_dist2(p, &self.nodes[a as usize]);
            let db = box_dist2(p, &self.nodes[b as usize]);
            let (near, dn, far, df) = if da <= db {
                (a, da, b, db)
            } else {
                (b, db, a, da)
            };
            let limit = best2 / (1.0 - BOX_SLACK);
            if df <= limit && top < stack.len() {
                stack[top] = (far, df);
                top += 1;
            } else if df <= limit {
                // The stack is deeper than any balanced build makes it; the
                // far box is then searched right away rather than dropped.
                if let Some(h) = self.closest_within(p, None, best2.min(max2)) {
                    if h.dist2 < best2 {
                        best2 = h.dist2;
                        best = Some((h.point, self.slot[h.tri], h.dist2));
                    }
                }
            }
            cur = (dn <= limit).then_some(near);
        }
        best.map(|(point, s, d2)| Hit {
            point,
            tri: self.ids[s as usize] as usize,
            dist2: d2,
        })
    }
}

fn dist2(a: V3, b: V3) -> f64 {
    let d = sub(a, b);
    dot(d, d)
}

/// Squared distance from `p` to the node's box (0 inside).
#[inline(always)]
fn box_dist2(p: V3, n: &Node) -> f64 {
    let mut s = 0.0;
    for ((&x, &lo), &hi) in p.iter().zip(&n.lo).zip(&n.hi) {
        let d = (f64::from(lo) - x).max(x - f64::from(hi)).max(0.0);
        s += d * d;
    }
    s
}

/// Fills node `i` with the triangles `order` (starting at `offset` in the
/// final leaf order), splitting at the median centroid along the widest
/// axis of the centroids.
fn build(
    nodes: &mut Vec<Node>,
    i: usize,
    order: &mut [u32],
    offset: usize,
    tris: &[[V3; 3]],
    centroids: &[V3],
) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    let mut clo = [f64::INFINITY; 3];
    let mut chi = [f64::NEG_INFINITY; 3];
    for &t in order.iter() {
        for v in &tris[t as usize] {
            for k in 0..3 {
                lo[k] = lo[k].min(v[k]);
                hi[k] = hi[k].max(v[k]);
            }
        }
        let c = centroids[t as usize];
        for k in 0..3 {
            clo[k] = clo[k].min(c[k]);
            chi[k] = chi[k].max(c[k]);
        }
    }
    // Corners are f32 values, so the f32 box is exact.
    nodes[i].lo = lo.map(|x| x as f32);
    nodes[i].hi = hi.map(|x| x as f32);
    if order.len() <= LEAF {
        nodes[i].first = offset as u32;
        nodes[i].count = order.len() as u32;
        return;
    }
    let ext = [0, 1, 2].map(|k| chi[k] - clo[k]);
    let axis = if ext[0] >= ext[1] && ext[0] >= ext[2] {
        0
    } else if ext[1] >= ext[2] {
        1
    } else {
        2
    };
    let mid = order.len() / 2;
    order.select_nth_unstable_by(mid, |&a, &b| {
        centroids[a as usize][axis].total_cmp(&centroids[b as usize][axis])
    });
    let first = nodes.len();
    let empty = nodes[i];
    nodes.push(empty);
    nodes.push(empty);
    nodes[i].first = first as u32;
    nodes[i].count = 0;
    let (left, right) = order.split_at_mut(mid);
    build(nodes, first, left, offset, tris, centroids);
    build(nodes, first + 1, right, offset + mid, tris, centroids);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random f32 values in [-1, 1), held in f64.
    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        f64::from(((*state >> 40) as f32) / (1u64 << 23) as f32 - 1.0)
    }

    #[test]
    fn matches_brute_force_with_any_hint_and_cap() {
        let mut s = 7u64;
        // A soup of small and large triangles: uneven boxes, many near ties.
        let tris: Vec<[V3; 3]> = (0..500)
            .map(|i| {
                let size = if i % 5 == 0 { 0.5 } else { 0.05 };
                let c = [lcg(&mut s), lcg(&mut s), lcg(&mut s)];
                [0, 1, 2].map(|_| [0, 1, 2].map(|k| c[k] + size * lcg(&mut s)))
            })
            .collect();
        let bvh = ClosestBvh::new(&tris);
        for q in 0..400 {
            let p = [0, 1, 2].map(|_| 1.5 * lcg(&mut s));
            let brute = tris
                .iter()
                .map(|t| dist2(p, closest_point_on_triangle(p, t[0], t[1], t[2])))
                .fold(f64::INFINITY, f64::min);
            // Hints from anywhere, including far from p, and none.
            let hint = (q % 3 != 0).then_some(q * 37 % tris.len());
            let hit = bvh
                .closest_within(p, hint, f64::INFINITY)
                .expect("non-empty");
            assert!(
                (hit.dist2 - brute).abs() <= 1e-12 * brute.max(1e-12),
                "{p:?}"
            );
            assert!((dist2(hit.point, p) - hit.dist2).abs() <= 1e-12);
            let t = tris[hit.tri];
            let own = dist2(p, closest_point_on_triangle(p, t[0], t[1], t[2]));
            assert_eq!(own, hit.dist2, "the index names the triangle found");
            // A cap below the answer finds nothing, one above finds it.
            assert!(bvh.closest_within(p, hint, brute * 0.99).is_none());
            let capped = bvh.closest_within(p, hint, brute * 1.01 + 1e-12);
            assert_eq!(capped.map(|h| h.dist2), Some(hit.dist2));
        }
        assert!(ClosestBvh::new(&[])
            .closest_within([0.0; 3], None, 1.0)
            .is_none());
    }
}
