//! Ray crossings: the winding number as the signed crossings of one ray
//! plus the boundary's cone, with certified floating-point filters and a
//! fallback when a crossing cannot be decided (module documentation of
//! `winding`).

use super::{WindingBvh, FILTER, FOUR_PI, STACK};
use crate::sdf::vec3::{add, cross, dot, l1, norm, scale, sub, V3};

impl WindingBvh {
    /// Winding number from the ray p + t u (t > 0), or None when some
    /// crossing cannot be decided with certainty. `u` must have no component
    /// near zero (see `candidate_dirs`) so its reciprocal is finite.
    pub(crate) fn winding_ray(&self, p: V3, u: V3) -> Option<f64> {
        let crossings = self.ray_crossings(p, u)?;
        let root = self.nodes.first()?;
        let loops = self.loops(root);
        // The apex at p - t u for any t > 0: only its direction -u matters
        // to the solid angles, so the unit vector stands in for it. A ray
        // grazing a boundary vertex (relative 1e-6) is refused: atan2 would
        // lose about eps / 1e-6 there.
        let boundary = if loops.is_empty() {
            0.0
        } else {
            self.cone_omega(loops, scale(u, -1.0 / norm(u)), p, 1e-6)? / FOUR_PI
        };
        Some(crossings as f64 + boundary)
    }

    /// Signed count of the triangles crossed by the ray: +1 where it leaves
    /// through the front (normal side), -1 where it enters.
    pub(super) fn ray_crossings(&self, p: V3, u: V3) -> Option<i64> {
        let lu = l1(u);
        let Some(root) = self.nodes.first() else {
            return Some(0);
        };
        let ray = Ray::new(p, u);
        let slot_hits = |lo: V3, hi: V3| {
            let r = RayNode {
                lo: lo.map(|x| [x, x]),
                hi: hi.map(|x| [x, x]),
                ..RayNode::default()
            };
            ray.hits(&r)[0]
        };
        if !slot_hits(root.lo, root.hi) {
            return Some(0);
        }
        let mut count = 0i64;
        if self.ray_nodes.is_empty() {
            // The root is a leaf.
            for t in self.node_tris(root) {
                count += crossing(p, u, lu, t, None)?;
            }
            return Some(count);
        }
        let mut stack = [0u32; STACK];
        let mut sp = 1;
        while sp > 0 {
            sp -= 1;
            let Some(n) = self.ray_nodes.get(stack[sp] as usize) else {
                continue;
            };
            let hits = ray.hits(n);
            for ((&hit, &child), &leaf_count) in hits.iter().zip(&n.child).zip(&n.leaf_count) {
                if !hit {
                    continue;
                }
                let count_in_leaf = leaf_count as usize;
                if count_in_leaf > 0 {
                    let s = child as usize;
                    for t in self.tris.get(s..s + count_in_leaf).unwrap_or(&[]) {
                        count += crossing(p, u, lu, t, None)?;
                    }
                } else if sp < STACK {
                    stack[sp] = child;
                    sp += 1;
                } else {
                    // Cannot happen for a balanced tree (module constant
                    // STACK); refusing the ray keeps the answer exact.
                    return None;
                }
            }
        }
        Some(count)
    }
}

/// Internal node of the ray-casting tree with both children's boxes inline,
/// as [axis][child], so one visit tests two boxes with straight-line code the
/// compiler can vectorise, and a missed child is never fetched.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RayNode {
    pub(super) lo: [[f64; 2]; 3],
    pub(super) hi: [[f64; 2]; 3],
    /// Per child: its `RayNode` index, or for a leaf its first triangle.
    pub(super) child: [u32; 2],
    /// Per child: triangle count for a leaf, 0 for an internal node.
    pub(super) leaf_count: [u32; 2],
}

/// A ray prepared for slab tests: origin, reciprocal direction, and for each
/// axis whether the box's low face is the entry face.
pub(super) struct Ray {
    p: V3,
    inv: V3,
    lo_first: [bool; 3],
}

impl Ray {
    pub(super) fn new(p: V3, u: V3) -> Self {
        let inv = [1.0 / u[0], 1.0 / u[1], 1.0 / u[2]];
        Ray {
            p,
            inv,
            lo_first: inv.map(|x| x >= 0.0),
        }
    }

    /// Slab test against both child boxes of `n` (boxes are already grown by
    /// the margin, so rounding cannot drop a box the ray touches).
    #[inline(always)]
    pub(super) fn hits(&self, n: &RayNode) -> [bool; 2] {
        let mut tmin = [0.0f64; 2];
        let mut tmax = [f64::INFINITY; 2];
        for k in 0..3 {
            let (near, far) = if self.lo_first[k] {
                (&n.lo[k], &n.hi[k])
            } else {
                (&n.hi[k], &n.lo[k])
            };
            for c in 0..2 {
                let t0 = (near[c] - self.p[k]) * self.inv[k];
                let t1 = (far[c] - self.p[k]) * self.inv[k];
                tmin[c] = if t0 > tmin[c] { t0 } else { tmin[c] };
                tmax[c] = if t1 < tmax[c] { t1 } else { tmax[c] };
            }
        }
        [tmin[0] <= tmax[0], tmin[1] <= tmax[1]]
    }
}

/// Signed crossing of the ray p + t u (t > 0) with triangle `t`: Some(+1 / -1)
/// for a crossing, Some(0) for a certain miss, None when undecidable.
///
/// The line through p crosses the triangle interior iff the three edge
/// functions u.(a x b), u.(b x c), u.(c x a) (corners relative to p) share a
/// sign; their sum is u.N, N the triangle's normal, so that sign is also the
/// crossing direction. The crossing lies ahead (t > 0) iff det(a, b, c) has
/// the same sign. With `end` = Some(q) (q = p + u) only the segment from p
/// to q counts: seen from q, along the same u, the crossing must lie behind.
/// Each quantity's sign is trusted only beyond its error bound.
#[inline(always)]
pub(super) fn crossing(p: V3, u: V3, lu: f64, t: &[V3; 3], end: Option<V3>) -> Option<i64> {
    let a = sub(t[0], p);
    let b = sub(t[1], p);
    let c = sub(t[2], p);
    let (la, lb, lc) = (l1(a), l1(b), l1(c));
    let sign = |e: f64, err: f64| -> i8 {
        if e > err {
            1
        } else if e < -err {
            -1
        } else {
            0
        }
    };
    // Most tested triangles are clear misses: two certain, opposite signs
    // prove a miss whatever the third is, so check the first pair early.
    let s0 = sign(dot(u, cross(a, b)), FILTER * lu * la * lb);
    let s1 = sign(dot(u, cross(b, c)), FILTER * lu * lb * lc);
    if s0 * s1 < 0 {
        return Some(0);
    }
    let s2 = sign(dot(u, cross(c, a)), FILTER * lu * lc * la);
    if s0 * s2 < 0 || s1 * s2 < 0 {
        return Some(0);
    }
    if s0 == 0 || s1 == 0 || s2 == 0 {
        // The line passes (within rounding) through an edge or vertex.
        return None;
    }
    let sd = sign(dot(a, cross(b, c)), FILTER * la * lb * lc);
    if sd == 0 {
        // The query point lies on the triangle (within rounding).
        return None;
    }
    if sd != s0 {
        return Some(0);
    }
    if let Some(q) = end {
        let (a, b, c) = (sub(t[0], q), sub(t[1], q), sub(t[2], q));
        let sq = sign(dot(a, cross(b, c)), FILTER * l1(a) * l1(b) * l1(c));
        if sq == 0 {
            // The segment's end lies on the triangle (within rounding).
            return None;
        }
        if sq == s0 {
            // The plane is crossed beyond q.
            return Some(0);
        }
    }
    Some(i64::from(s0))
}

/// Ray directions to try, in order: the hint tilted by two small fixed
/// offsets (a tilt avoids the exact edge/vertex hits that axis-aligned or
/// symmetric data would produce), then two fixed generic directions.
pub(super) fn candidate_dirs(hint: V3) -> [V3; 4] {
    const G1: V3 = [0.530_717_1, -0.316_246_9, 0.786_314_7];
    const G2: V3 = [-0.414_591_3, 0.887_213_5, 0.202_573_4];
    const G3: V3 = [0.662_103_8, 0.421_318_3, -0.619_723_6];
    const G4: V3 = [-0.282_943_1, -0.571_634_5, -0.770_195_9];
    let h = if hint.iter().all(|c| c.is_finite()) && norm(hint) > 0.0 {
        scale(hint, 1.0 / norm(hint))
    } else {
        G3
    };
    [add(h, scale(G1, 0.0137)), add(h, scale(G2, 0.0411)), G3, G4].map(|d| {
        // Keep every component away from zero so 1/u is finite in the slab
        // test; any direction is valid, so nudging costs nothing.
        d.map(|c| {
            if c.abs() >= 1e-3 {
                c
            } else if c < 0.0 {
                -1e-3
            } else {
                1e-3
            }
        })
    })
}
