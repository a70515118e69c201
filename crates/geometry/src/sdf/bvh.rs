//! Closest-triangle queries: a 4-wide bounding volume hierarchy in f32.
//!
//! parry's tree (0.25) is binary, takes a square root per box and per
//! triangle, and locates the projection in the triangle's Voronoi regions
//! for every candidate. A closest-point search only needs to compare
//! squared distances, so this tree keeps four child boxes per node in
//! structure-of-arrays form (the four box distances compile to vector
//! instructions), leaves of up to `LEAF` triangles, and squared distances
//! throughout. Points deep inside a shape, for which nearly the whole
//! surface is almost equidistant, visit many boxes; there the cheaper
//! visit is what counts.
//!
//! Boxes are compared in f32 and triangles in f64 (see `closest`).

// Axis loops index several arrays (boxes, corners, the point) at once;
// iterator chains over zipped triples would hide that arithmetic.
#![allow(clippy::needless_range_loop)]

use super::distance::closest_point_on_triangle;

/// Triangles per leaf at most: enough to amortise a box test, few enough
/// that a leaf's triangles are all worth testing once its box is near.
const LEAF: usize = 4;

/// Bit marking a child as a leaf; the rest holds `start << 3 | count`.
const LEAF_BIT: u32 = 1 << 31;

/// Traversal stack size: each visited node pops one entry and pushes at
/// most three more. The depth is at most `SAH_LEVELS` plus log4(n) (median
/// splits below those levels), so this holds any mesh that fits in memory
/// (checked at build).
const STACK: usize = 128;

/// Levels built by the surface-area heuristic; deeper ones split at the
/// median. The heuristic may peel off a few triangles per split, and on a
/// pathological mesh that repeated would make the tree as deep as the mesh
/// is large.
const SAH_LEVELS: usize = 16;

/// A triangle during the build: index, centroid, box.
#[derive(Clone, Copy)]
struct Item {
    id: u32,
    centroid: [f32; 3],
    lo: [f32; 3],
    hi: [f32; 3],
}

#[derive(Clone, Copy)]
struct Node {
    /// Child boxes, `lo[axis][lane]`; an empty lane has lo = +inf and
    /// hi = -inf, whose distance is +inf.
    lo: [[f32; 4]; 3],
    hi: [[f32; 4]; 3],
    /// Node index, or `LEAF_BIT | start << 3 | count` into `order`.
    child: [u32; 4],
}

pub(crate) struct DistanceBvh {
    nodes: Vec<Node>,
    /// Triangle corners in leaf order.
    corners: Vec<[[f32; 3]; 3]>,
    /// Leaf order -> the caller's triangle index.
    order: Vec<u32>,
    lo: [f32; 3],
    hi: [f32; 3],
}

impl DistanceBvh {
    /// Builds the tree over `triangles` (indices into `vertices`, all valid
    /// and finite: the caller filters them). None for no triangles.
    pub(crate) fn new(vertices: &[[f32; 3]], triangles: &[[u32; 3]]) -> Option<DistanceBvh> {
        if triangles.is_empty() || triangles.len() >= (LEAF_BIT >> 3) as usize {
            return None;
        }
        let mut items: Vec<Item> = triangles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let c = t.map(|i| vertices[i as usize]);
                Item {
                    id: i as u32,
                    centroid: [0, 1, 2].map(|k| (c[0][k] + c[1][k] + c[2][k]) / 3.0),
                    lo: [0, 1, 2].map(|k| c[0][k].min(c[1][k]).min(c[2][k])),
                    hi: [0, 1, 2].map(|k| c[0][k].max(c[1][k]).max(c[2][k])),
                }
            })
            .collect();
        let mut bvh = DistanceBvh {
            nodes: Vec::with_capacity(triangles.len() / 2 + 1),
            corners: Vec::with_capacity(triangles.len()),
            order: Vec::with_capacity(triangles.len()),
            lo: [f32::INFINITY; 3],
            hi: [f32::NEG_INFINITY; 3],
        };
        let depth = bvh.build(&mut items, triangles, vertices, 0);
        if 3 * depth + 1 > STACK {
            return None;
        }
        (bvh.lo, bvh.hi) = bvh.node_bounds(0);
        Some(bvh)
    }

    /// Bounding box of the triangles.
    pub(crate) fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        (self.lo, self.hi)
    }

    /// Appends the node for `items` (more than `LEAF` of them) and returns
    /// the depth of its subtree.
    fn build(
        &mut self,
        items: &mut [Item],
        triangles: &[[u32; 3]],
        vertices: &[[f32; 3]],
        level: usize,
    ) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            lo: [[f32::INFINITY; 4]; 3],
            hi: [[f32::NEG_INFINITY; 4]; 3],
            child: [u32::MAX; 4],
        });
        if items.len() <= LEAF {
            // Only a root can be this small: one leaf lane.
            self.nodes[id].child[0] = self.leaf(items, triangles, vertices, id, 0);
            return 1;
        }
        // Two binary splits give four children.
        let sah = level < SAH_LEVELS;
        let (left, right) = split(items, sah);
        let mut parts: Vec<&mut [Item]> = Vec::with_capacity(4);
        for half in [left, right] {
            if half.len() > LEAF {
                let (a, b) = split(half, sah);
                parts.push(a);
                parts.push(b);
            } else {
                parts.push(half);
            }
        }
        let mut depth = 0;
        for (lane, part) in parts.into_iter().enumerate() {
            if part.len() <= LEAF {
                let leaf = self.leaf(part, triangles, vertices, id, lane);
                self.nodes[id].child[lane] = leaf;
            } else {
                let child = self.nodes.len() as u32;
                depth = depth.max(self.build(part, triangles, vertices, level + 1));
                let (lo, hi) = self.node_bounds(child as usize);
                let node = &mut self.nodes[id];
                node.child[lane] = child;
                for k in 0..3 {
                    node.lo[k][lane] = lo[k];
                    node.hi[k][lane] = hi[k];
                }
            }
        }
        depth + 1
    }

    /// Stores a leaf's triangles and sets its box in lane `lane` of node
    /// `id`; returns the leaf's child code.
    fn leaf(
        &mut self,
        items: &[Item],
        triangles: &[[u32; 3]],
        vertices: &[[f32; 3]],
        id: usize,
        lane: usize,
    ) -> u32 {
        let start = self.order.len() as u32;
        let mut bounds = EMPTY;
        for item in items {
            grow(&mut bounds, item.lo, item.hi);
            self.corners
                .push(triangles[item.id as usize].map(|i| vertices[i as usize]));
            self.order.push(item.id);
        }
        let node = &mut self.nodes[id];
        for k in 0..3 {
            node.lo[k][lane] = bounds.0[k];
            node.hi[k][lane] = bounds.1[k];
        }
        LEAF_BIT | start << 3 | items.len() as u32
    }

    /// Union of a node's child boxes.
    fn node_bounds(&self, id: usize) -> ([f32; 3], [f32; 3]) {
        let n = &self.nodes[id];
        let lo = [0, 1, 2].map(|k| n.lo[k].iter().copied().fold(f32::INFINITY, f32::min));
        let hi = [0, 1, 2].map(|k| n.hi[k].iter().copied().fold(f32::NEG_INFINITY, f32::max));
        (lo, hi)
    }

    /// The caller's index of a triangle nearest to `p`, the closest point
    /// on it and its squared distance, among those whose squared distance
    /// is below `max_d2`; None when there is none.
    ///
    /// Boxes are pruned in f32, which can only drop a triangle tied with
    /// the answer to f32 rounding (about 1e-7 of the distance). Triangles
    /// are measured in f64: in f32 a long thin triangle's projection can
    /// be off by far more than its rounding (4e-4 was seen on the lego
    /// brick's faces), which would pick the wrong triangle.
    ///
    /// `hint` is a triangle slot from an earlier answer (normally the
    /// previous point of a spatially sorted batch): measured first, it
    /// starts the search with a tight bound, so only boxes nearer than it
    /// are opened. It affects speed only.
    ///
    /// `p64` may lie beyond f32's range (a far query of a mesh rescaled
    /// into its frame): boxes are then measured from the point clamped to
    /// f32's range, which is nearer every box (they all lie within it), so
    /// their distances stay lower bounds.
    pub(crate) fn closest(&self, p64: [f64; 3], max_d2: f64, hint: Option<u32>) -> Option<Hit> {
        let max = f64::from(f32::MAX);
        let p = p64.map(|c| c.clamp(-max, max) as f32);
        let mut best64 = max_d2;
        let mut best_at = None;
        let hinted = hint.and_then(|h| Some((h as usize, self.corners.get(h as usize)?)));
        if let Some((h, c)) = hinted {
            let (q, s) = measure(p64, c);
            if s < best64 {
                best64 = s;
                best_at = Some((h, q));
            }
        }
        let mut best = prune_bound(best64);
        let mut stack = [(0u32, 0f32); STACK];
        let mut sp = 1;
        while sp > 0 {
            sp -= 1;
            let (id, bound) = stack[sp];
            // Strictly farther only: where f32 overflows (coordinates past
            // ~1e19) boxes and bound are both +inf and must still be
            // opened; an exact zero ends the search.
            if bound > best {
                continue;
            }
            if best64 == 0.0 {
                break;
            }
            let node = &self.nodes[id as usize];
            // Axis-major over the four lanes, with plain comparisons rather
            // than f32::max (whose NaN rules block vector max): this is
            // four boxes in a few vector instructions.
            let mut d2 = [0f32; 4];
            for k in 0..3 {
                let (lo, hi) = (node.lo[k], node.hi[k]);
                for l in 0..4 {
                    let below = lo[l] - p[k];
                    let above = p[k] - hi[l];
                    let e = if below > above { below } else { above };
                    let e = if e > 0.0 { e } else { 0.0 };
                    d2[l] += e * e;
                }
            }
            // Nearest child first: leaves are tested at once (tightening
            // `best` before anything is pushed), then inner nodes are pushed
            // farthest first so the nearest is popped next.
            let lanes = sort4(d2);
            for &lane in &lanes {
                let child = node.child[lane];
                if child == u32::MAX || child & LEAF_BIT == 0 || d2[lane] > best {
                    continue;
                }
                let start = ((child & !LEAF_BIT) >> 3) as usize;
                let count = (child & 7) as usize;
                for (i, c) in self.corners[start..start + count].iter().enumerate() {
                    let (q, s) = measure(p64, c);
                    if s < best64 {
                        best64 = s;
                        best = prune_bound(s);
                        best_at = Some((start + i, q));
                    }
                }
            }
            for &lane in lanes.iter().rev() {
                let child = node.child[lane];
                if child == u32::MAX || d2[lane] > best || child & LEAF_BIT != 0 {
                    continue;
                }
                stack[sp] = (child, d2[lane]);
                sp += 1;
            }
        }
        best_at.map(|(i, q)| Hit {
            triangle: self.order[i] as usize,
            slot: i as u32,
            point: q,
            d2: best64,
        })
    }
}

/// The f32 bound that prunes boxes for an f64 squared distance: rounded
/// up, so that a distance too small for f32 (a model at the 1e-20 scale)
/// does not become 0 and prune every box, the answer's own included.
fn prune_bound(d2: f64) -> f32 {
    let b = d2 as f32;
    if f64::from(b) < d2 {
        // The next f32 up (b >= 0 and finite here; f32::next_up is newer
        // than our minimum Rust).
        f32::from_bits(b.to_bits() + 1)
    } else {
        b
    }
}

/// An answer of [`DistanceBvh::closest`].
pub(crate) struct Hit {
    /// The caller's triangle index.
    pub triangle: usize,
    /// The triangle's slot in the tree, a `hint` for the next query.
    pub slot: u32,
    /// Closest point and squared distance, in f64.
    pub point: [f64; 3],
    pub d2: f64,
}

/// Closest point on a stored triangle and its squared distance, in f64.
#[inline(always)]
fn measure(p: [f64; 3], c: &[[f32; 3]; 3]) -> ([f64; 3], f64) {
    let [a, b, c] = c.map(|v| v.map(f64::from));
    let q = closest_point_on_triangle(p, a, b, c);
    let e = [q[0] - p[0], q[1] - p[1], q[2] - p[2]];
    (q, e[0] * e[0] + e[1] * e[1] + e[2] * e[2])
}

/// Lane indices ordered by ascending `d`: a five-exchange sorting network
/// (a general sort call costs as much as the box tests here).
#[inline(always)]
fn sort4(d: [f32; 4]) -> [usize; 4] {
    let mut l = [0usize, 1, 2, 3];
    let mut swap = |i: usize, j: usize| {
        if d[l[j]] < d[l[i]] {
            l.swap(i, j);
        }
    };
    swap(0, 1);
    swap(2, 3);
    swap(0, 2);
    swap(1, 3);
    swap(1, 2);
    l
}

/// Bins per axis for the surface-area heuristic.
const BINS: usize = 16;

/// Splits by the binned surface-area heuristic: among the planes between
/// centroid bins on each axis, the one minimising the children's box
/// areas times their triangle counts, the expected cost of descending into
/// them. Long thin triangles (CAD files) make median splits overlap badly;
/// this keeps boxes tight. Falls back to the median of the longest axis
/// when all centroids coincide or no plane separates them, which also
/// bounds the depth. With `sah` false, always the median.
fn split(items: &mut [Item], sah: bool) -> (&mut [Item], &mut [Item]) {
    let mut centroids = EMPTY;
    for it in items.iter() {
        grow(&mut centroids, it.centroid, it.centroid);
    }
    let (lo, hi) = centroids;
    let n = items.len();
    // Bin of a centroid along `axis`, whose extent is positive.
    let bin_of = |axis: usize, c: f32| {
        (((c - lo[axis]) / (hi[axis] - lo[axis]) * BINS as f32) as usize).min(BINS - 1)
    };
    // Cost, axis, and the first bin right of the plane.
    let mut best: Option<(f32, usize, usize)> = None;
    for axis in (0..3).filter(|_| sah) {
        let extent = hi[axis] - lo[axis];
        if extent.is_nan() || extent <= 0.0 {
            continue;
        }
        let mut count = [0usize; BINS];
        let mut boxes = [EMPTY; BINS];
        for it in items.iter() {
            let b = bin_of(axis, it.centroid[axis]);
            count[b] += 1;
            grow(&mut boxes[b], it.lo, it.hi);
        }
        // Areas and counts of everything right of each plane.
        let mut right = [(0.0f32, 0usize); BINS];
        let mut acc = EMPTY;
        let mut m = 0;
        for b in (1..BINS).rev() {
            grow(&mut acc, boxes[b].0, boxes[b].1);
            m += count[b];
            right[b] = (area(&acc), m);
        }
        let mut acc = EMPTY;
        let mut m = 0;
        for b in 0..BINS - 1 {
            grow(&mut acc, boxes[b].0, boxes[b].1);
            m += count[b];
            let (ra, rm) = right[b + 1];
            if m == 0 || rm == 0 {
                continue;
            }
            let cost = area(&acc) * m as f32 + ra * rm as f32;
            if best.map_or(true, |(c, _, _)| cost < c) {
                best = Some((cost, axis, b + 1));
            }
        }
    }
    let mid = match best {
        Some((_, axis, edge)) => {
            // Partition by the same bins as above, so both sides are
            // non-empty.
            let mut i = 0;
            for j in 0..n {
                if bin_of(axis, items[j].centroid[axis]) < edge {
                    items.swap(i, j);
                    i += 1;
                }
            }
            i
        }
        None => 0,
    };
    let mid = if mid == 0 || mid == n {
        let axis = (0..3)
            .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
            .unwrap_or(0);
        items.select_nth_unstable_by(n / 2, |a, b| a.centroid[axis].total_cmp(&b.centroid[axis]));
        n / 2
    } else {
        mid
    };
    items.split_at_mut(mid)
}

/// A box holding nothing: `grow` makes it the first box it meets.
const EMPTY: ([f32; 3], [f32; 3]) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);

fn grow(b: &mut ([f32; 3], [f32; 3]), lo: [f32; 3], hi: [f32; 3]) {
    for k in 0..3 {
        b.0[k] = b.0[k].min(lo[k]);
        b.1[k] = b.1[k].max(hi[k]);
    }
}

/// Half the surface area of a box (the heuristic only compares).
fn area(b: &([f32; 3], [f32; 3])) -> f32 {
    let e = [0, 1, 2].map(|k| (b.1[k] - b.0[k]).max(0.0));
    e[0] * e[1] + e[1] * e[2] + e[2] * e[0]
}
