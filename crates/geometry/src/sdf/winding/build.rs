//! Building the tree both evaluators share: median splits over the
//! triangles' centroids into boxes grown by a margin, and the ray-casting
//! copy of its internal nodes.

use super::ray::RayNode;
use super::{Node, WindingBvh, LEAF_SIZE};
use crate::sdf::vec3::{add, scale, V3};

impl WindingBvh {
    /// Appends the `RayNode` of internal node `i` and its internal
    /// descendants (depth-first), returning its index.
    pub(super) fn build_ray_node(&mut self, i: usize) -> u32 {
        let idx = self.ray_nodes.len();
        self.ray_nodes.push(RayNode::default());
        let n = self.nodes[i];
        for (slot, c) in [(0, i + 1), (1, n.right as usize)] {
            let cn = self.nodes[c];
            let (child, leaf_count) = if cn.right == 0 {
                (cn.start, cn.count)
            } else {
                (self.build_ray_node(c), 0)
            };
            let r = &mut self.ray_nodes[idx];
            for k in 0..3 {
                r.lo[k][slot] = cn.lo[k];
                r.hi[k][slot] = cn.hi[k];
            }
            r.child[slot] = child;
            r.leaf_count[slot] = leaf_count;
        }
        idx as u32
    }
}

pub(super) fn bounds(tris: &[[V3; 3]]) -> (V3, V3) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for t in tris {
        for v in t {
            for k in 0..3 {
                lo[k] = lo[k].min(v[k]);
                hi[k] = hi[k].max(v[k]);
            }
        }
    }
    (lo, hi)
}

/// Builds the subtree over `items` (centroid, triangle) whose triangles start
/// at leaf position `start`, in depth-first order, and returns its index.
/// Median split on the longest centroid axis keeps the tree balanced (depth
/// bound used by the fixed traversal stacks) whatever the geometry.
pub(super) fn build_rec(
    nodes: &mut Vec<Node>,
    items: &mut [(V3, u32)],
    start: usize,
    corners: &[[V3; 3]],
    margin: f64,
) -> usize {
    let idx = nodes.len();
    nodes.push(Node::default());
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    let mut clo = [f64::INFINITY; 3];
    let mut chi = [f64::NEG_INFINITY; 3];
    for (c, i) in items.iter() {
        if let Some(t) = corners.get(*i as usize) {
            for v in t {
                for k in 0..3 {
                    lo[k] = lo[k].min(v[k]);
                    hi[k] = hi[k].max(v[k]);
                }
            }
        }
        for k in 0..3 {
            clo[k] = clo[k].min(c[k]);
            chi[k] = chi[k].max(c[k]);
        }
    }
    let mut right = 0;
    if items.len() > LEAF_SIZE {
        let axis = (0..3)
            .max_by(|&a, &b| (chi[a] - clo[a]).total_cmp(&(chi[b] - clo[b])))
            .unwrap_or(0);
        let mid = items.len() / 2;
        items.select_nth_unstable_by(mid, |a, b| a.0[axis].total_cmp(&b.0[axis]));
        let (l, r) = items.split_at_mut(mid);
        build_rec(nodes, l, start, corners, margin);
        right = build_rec(nodes, r, start + mid, corners, margin) as u32;
    }
    nodes[idx] = Node {
        lo: lo.map(|x| x - margin),
        hi: hi.map(|x| x + margin),
        apex: scale(add(lo, hi), 0.5),
        start: start as u32,
        count: items.len() as u32,
        right,
        loop_start: 0,
        loop_count: 0,
        has_cap: false,
    };
    idx
}
