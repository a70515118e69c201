//! The boundary-cap hierarchy: every node's net directed boundary, closed
//! into a cone from its apex, stands in for the node's triangles seen from
//! outside its box (see the module documentation of `winding`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{CapLoop, Node, WindingBvh, FOUR_PI, STACK};
use crate::sdf::vec3::{cross, dot, norm, sub, V3};

/// Fast non-cryptographic hasher for the edge maps built once per mesh; the
/// keys are vertex ids we created, so hash flooding is not a concern and
/// SipHash would dominate construction time.
#[derive(Default)]
pub(super) struct EdgeHasher(u64);

impl Hasher for EdgeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(super) type EdgeMap = HashMap<(u32, u32), i32, BuildHasherDefault<EdgeHasher>>;

/// Adds the directed edge a -> b to a net edge count keyed by the unordered
/// pair: a -> b counts +1 on (min, max) when a < b, else -1, so opposite
/// edges cancel and only the net boundary remains.
fn add_edge(map: &mut EdgeMap, a: u32, b: u32) {
    if a == b {
        return;
    }
    let (key, delta) = if a < b { ((a, b), 1) } else { ((b, a), -1) };
    let v = map.entry(key).or_insert(0);
    *v += delta;
    if *v == 0 {
        map.remove(&key);
    }
}

/// Number of directed edges (with multiplicity) of a net edge map.
fn edge_count(map: &EdgeMap) -> usize {
    map.values().map(|v| v.unsigned_abs() as usize).sum()
}

impl WindingBvh {
    /// Computes the net boundary of `node` bottom-up (children's maps merged,
    /// smaller into larger) and stores it as loops when it is worth using.
    /// The root's boundary is always stored: the ray evaluator needs it.
    pub(super) fn build_caps(
        &mut self,
        node: usize,
        ordered: &[[u32; 3]],
        points: &[V3],
    ) -> EdgeMap {
        let n = self.nodes[node];
        let map = if n.right == 0 {
            let mut map = EdgeMap::default();
            let range = n.start as usize..(n.start + n.count) as usize;
            for t in ordered.get(range).unwrap_or(&[]) {
                add_edge(&mut map, t[0], t[1]);
                add_edge(&mut map, t[1], t[2]);
                add_edge(&mut map, t[2], t[0]);
            }
            map
        } else {
            let a = self.build_caps(node + 1, ordered, points);
            let b = self.build_caps(n.right as usize, ordered, points);
            let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
            for (&(x, y), &c) in &small {
                // Replaying the net count as |c| directed edges keeps
                // add_edge the single place that knows the sign convention.
                for _ in 0..c.unsigned_abs() {
                    if c > 0 {
                        add_edge(&mut big, x, y);
                    } else {
                        add_edge(&mut big, y, x);
                    }
                }
            }
            big
        };
        let edges = edge_count(&map);
        if edges < n.count as usize || node == 0 {
            let loop_start = self.cap_loops.len() as u32;
            self.store_loops(&map, points);
            let nd = &mut self.nodes[node];
            nd.loop_start = loop_start;
            nd.loop_count = self.cap_loops.len() as u32 - loop_start;
            nd.has_cap = edges < n.count as usize;
        }
        map
    }

    /// Decomposes a net boundary into closed polygons. A triangle set's
    /// boundary is a 1-cycle: every vertex has as many outgoing as incoming
    /// net edges, so a walk that only uses unused edges can only get stuck at
    /// its start (Euler). Storing polygons instead of edges lets the evaluator
    /// compute each vertex's terms once instead of twice.
    fn store_loops(&mut self, map: &EdgeMap, points: &[V3]) {
        let mut directed: Vec<(u32, u32)> = Vec::with_capacity(edge_count(map));
        for (&(x, y), &c) in map {
            let e = if c > 0 { (x, y) } else { (y, x) };
            directed.extend(std::iter::repeat(e).take(c.unsigned_abs() as usize));
        }
        // Sorted for a deterministic layout (and hence bitwise reproducible
        // sums) independent of hash-map iteration order.
        directed.sort_unstable();
        let mut out: HashMap<u32, Vec<u32>, BuildHasherDefault<EdgeHasher>> = HashMap::default();
        for &(a, b) in directed.iter().rev() {
            out.entry(a).or_default().push(b);
        }
        let point = |i: u32| points.get(i as usize).copied().unwrap_or([0.0; 3]);
        for &(s, _) in &directed {
            while let Some(mut cur) = out.get_mut(&s).and_then(|v| v.pop()) {
                let start = self.cap_points.len() as u32;
                self.cap_points.push(point(s));
                while cur != s {
                    self.cap_points.push(point(cur));
                    match out.get_mut(&cur).and_then(|v| v.pop()) {
                        Some(next) => cur = next,
                        // Unreachable for a balanced edge set; stopping keeps
                        // a malformed map from looping or panicking.
                        None => break,
                    }
                }
                let len = self.cap_points.len() as u32 - start;
                self.cap_loops.push(CapLoop { start, len });
            }
        }
    }

    pub(super) fn loops(&self, n: &Node) -> &[CapLoop] {
        let s = n.loop_start as usize;
        self.cap_loops
            .get(s..s + n.loop_count as usize)
            .unwrap_or(&[])
    }

    /// Sum of the solid angles of the cone triangles (apex, a, b) over the
    /// edges a -> b of `loops`, with `q` the apex relative to `p`. Per-vertex
    /// terms (offset, length, q.v, q x v) are computed once and shared by the
    /// two edges meeting there.
    ///
    /// Returns None when some cone triangle is ill-conditioned: both atan2
    /// arguments below `min_cond` relative to |q||a||b|, which happens only
    /// when q points nearly opposite to a corner (the ray passes by a
    /// boundary vertex) and would cost accuracy. Pass 0 to never refuse.
    pub(super) fn cone_omega(&self, loops: &[CapLoop], q: V3, p: V3, min_cond: f64) -> Option<f64> {
        #[derive(Clone, Copy)]
        struct Term {
            v: V3,
            len: f64,
            qdot: f64,
            qcross: V3,
        }
        let lq = norm(q);
        let term = |x: V3| {
            let v = sub(x, p);
            Term {
                v,
                len: norm(v),
                qdot: dot(q, v),
                qcross: cross(q, v),
            }
        };
        // Omega(q, a, b) by Van Oosterom-Strackee, expanded with the shared
        // per-vertex terms: det = (q x a).b.
        let edge = |a: &Term, b: &Term| {
            let det = dot(a.qcross, b.v);
            let scale = lq * a.len * b.len;
            let den = scale + a.qdot * b.len + b.qdot * a.len + dot(a.v, b.v) * lq;
            if det.abs() + den.abs() < min_cond * scale {
                None
            } else {
                Some(2.0 * det.atan2(den))
            }
        };
        let mut sum = 0.0;
        for lp in loops {
            let s = lp.start as usize;
            let Some(pts) = self.cap_points.get(s..s + lp.len as usize) else {
                continue;
            };
            let Some((&first, rest)) = pts.split_first() else {
                continue;
            };
            let first = term(first);
            let mut prev = first;
            for &x in rest {
                let cur = term(x);
                sum += edge(&prev, &cur)?;
                prev = cur;
            }
            sum += edge(&prev, &first)?;
        }
        Some(sum)
    }

    /// Exact winding number by the cap hierarchy (module docs).
    pub(crate) fn winding_hierarchical(&self, p: V3) -> f64 {
        if self.is_far(p) {
            return 0.0;
        }
        let mut stack = [0u32; STACK];
        let mut sp = 1;
        let mut sum = 0.0;
        while sp > 0 {
            sp -= 1;
            let i = stack[sp];
            let Some(n) = self.nodes.get(i as usize) else {
                continue;
            };
            let outside = (0..3).any(|k| p[k] < n.lo[k] || p[k] > n.hi[k]);
            if outside && n.has_cap {
                // Never ill-conditioned here: p is outside the convex box
                // holding the apex and the corners, so q is never opposite
                // to a corner.
                sum += self
                    .cone_omega(self.loops(n), sub(n.apex, p), p, 0.0)
                    .unwrap_or(0.0);
            } else if n.right == 0 || sp + 2 > STACK {
                sum += Self::tris_omega(self.node_tris(n), p);
            } else {
                // Depth-first layout: the left child follows its parent.
                stack[sp] = n.right;
                stack[sp + 1] = i + 1;
                sp += 2;
            }
        }
        sum / FOUR_PI
    }
}
