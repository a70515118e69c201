//! True signed distance function of a triangle mesh.
//!
//! Magnitude: exact Euclidean distance to the triangles from a 4-wide BVH
//! (`bvh.rs`) that prunes boxes in f32 and measures triangles in f64.
//! Sign: negative inside, where inside means a generalized winding
//! number >= 1/2, which stays meaningful for meshes with holes, duplicated
//! or flipped triangles. The winding number is computed exactly, not
//! approximated; see `winding.rs` for the two evaluators and why the
//! ray-crossing form is the fast path.

mod bvh;
mod distance;
mod vec3;
mod winding;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::mesh::geometry::{is_degenerate_triangle, weld_key};
use crate::mesh::{MeshError, TriangleMesh};
use bvh::DistanceBvh;
// Also the certified Hausdorff distance's exact point-to-triangle measure.
pub(crate) use distance::closest_point_on_triangle;
use vec3::{cross, is_finite, norm, scale, sub, to_f64, V3};
use winding::{CellGrid, WindingBvh};

/// The exact signed distance from a user's mesh at the user's points, in
/// the mesh's own coordinates and units (negative inside), at any scale:
/// what `hisdf sdf` and `hisdf_mesh_signed_distance` (so Python and C++)
/// answer, decided here once. The mesh's structure is checked (finite
/// vertices, indices in range); degenerate triangles and vertices no
/// triangle uses are left out, and the mesh's issues are logged as warnings;
/// a mesh with no triangle that has an area is refused. Builds the trees on every call: batch the points.
pub fn exact_signed_distance(
    mesh: &TriangleMesh,
    points: &[[f32; 3]],
) -> Result<Vec<f32>, MeshError> {
    // The mesh's issues (open, non-manifold, stray vertices) are said as
    // training says them: an open mesh's sign is that of the solid its
    // winding number closes.
    for issue in mesh.validate()?.issues() {
        log::warn!("mesh: {issue}");
    }
    let sdf = MeshSdf::new(mesh);
    if sdf.num_triangles() == 0 {
        return Err(MeshError::NoArea {
            triangles: mesh.triangles.len(),
        });
    }
    Ok(sdf.signed_distance(points))
}

/// Points per rayon task: large enough to amortise task overhead, small
/// enough to balance surface-hugging and far points across threads.
const CHUNK: usize = 4096;

/// Signed distance queries against one triangle mesh, in the mesh's own
/// coordinates and units at any scale f32 can hold. Build once per mesh;
/// queries are read-only and thread-safe.
///
/// The distance tree prunes boxes by squared distances in f32, which
/// overflow past about 1e19 and underflow below about 1e-19: a mesh at the
/// 1e30 or 1e-30 scale would still get exact answers, but from a search
/// that opens every box. So the mesh is held in its own frame, scaled by a
/// power of two ([`MeshSdf::to_frame`]) that brings its largest coordinate
/// near 1: multiplying by a power of two is exact, so the frame changes no
/// answer, only the speed. Only vertices that kept triangles use enter it
/// (a stray vertex far away must not shrink the shape to nothing).
pub struct MeshSdf {
    /// User coordinates times this are frame coordinates; a power of two,
    /// 1 for meshes whose coordinates are already within 2^-16..2^16 (the
    /// pipeline's unit-sphere meshes), so that their answers stay bit for
    /// bit what they were.
    to_frame: f64,
    /// Closest-triangle hierarchy over `kept`; None when no triangle was
    /// usable.
    bvh: Option<DistanceBvh>,
    /// Welded vertices (the caller's f32 values times `to_frame`) and the
    /// kept triangles over them.
    verts: Vec<[f32; 3]>,
    kept: Vec<[u32; 3]>,
    /// Kept triangle index -> index in the caller's `triangles`.
    tri_map: Vec<u32>,
    winding: WindingBvh,
    /// Whether the kept triangles form a closed surface (no net boundary).
    /// Only then is the winding number constant between surface points,
    /// which `signed_one` exploits.
    closed: bool,
    /// Absolute tolerance for distances (in the frame): the BVH prunes boxes in f32, so it
    /// may answer with a triangle tied with the nearest to a few f32 ulps
    /// of the model's coordinates; this is that, generously rounded up.
    dist_slack: f64,
    /// Centre of the model's bounding box, in the frame.
    centre: V3,
    /// Local winding numbers for `signed_one` (closed meshes only; see
    /// `CellGrid`), built by the first large signed batch.
    cell_grid: OnceLock<Option<CellGrid>>,
}

/// Per-chunk state of a batch query: the previous query's answers, which are
/// nearby when the batch is spatially sorted.
struct ChunkState {
    /// The previous answer's triangle (its BVH slot): bounds the next
    /// distance (see `project`).
    prev_slot: Option<u32>,
    /// Recent points with their distance to the surface and winding
    /// number, written round-robin; unused slots have distance -inf.
    anchors: [(V3, f64, f64); ANCHORS],
    next_anchor: usize,
}

/// Recent points kept per chunk for winding-number reuse: a few, since the
/// nearest earlier neighbour along a Morton curve is often not the last one.
const ANCHORS: usize = 4;

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState {
            prev_slot: None,
            anchors: [([0.0; 3], f64::NEG_INFINITY, 0.0); ANCHORS],
            next_anchor: 0,
        }
    }
}

impl std::fmt::Debug for MeshSdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshSdf")
            .field("triangles", &self.tri_map.len())
            .field("boundary_edges", &self.winding.boundary_edges())
            .finish()
    }
}

impl MeshSdf {
    /// Builds the distance and winding-number hierarchies.
    ///
    /// The mesh is assumed validated, but nothing here trusts that: triangles
    /// with out-of-range indices, non-finite corners or (near-)zero area are
    /// skipped, and a mesh with no usable triangle gives a `MeshSdf` that
    /// reports infinite distance and winding number 0.
    pub fn new(mesh: &TriangleMesh) -> MeshSdf {
        // Weld bit-identical corner positions: files such as STL repeat each
        // vertex per triangle, and the winding caps rely on shared edges
        // cancelling, which needs shared indices. -0.0 and 0.0 are merged.
        let mut weld: HashMap<[u32; 3], u32> = HashMap::with_capacity(mesh.vertices.len());
        let mut points: Vec<V3> = Vec::with_capacity(mesh.vertices.len());
        let welded: Vec<Option<u32>> = mesh
            .vertices
            .iter()
            .map(|v| {
                if !v.iter().all(|c| c.is_finite()) {
                    return None;
                }
                let next = points.len() as u32;
                let id = *weld.entry(weld_key(*v)).or_insert(next);
                if id == next {
                    points.push(to_f64(*v));
                }
                Some(id)
            })
            .collect();

        let mut kept: Vec<[u32; 3]> = Vec::with_capacity(mesh.triangles.len());
        let mut tri_map: Vec<u32> = Vec::with_capacity(mesh.triangles.len());
        let mut skipped = 0usize;
        for (i, t) in mesh.triangles.iter().enumerate() {
            let id = |k: usize| welded.get(t[k] as usize).copied().flatten();
            let (Some(a), Some(b), Some(c)) = (id(0), id(1), id(2)) else {
                skipped += 1;
                continue;
            };
            let [pa, pb, pc] = [a, b, c].map(|j| points[j as usize]);
            // A degenerate triangle has no usable normal; it is left out of
            // both structures. Its effect on distances is at most its
            // (vanishing) width, and on winding numbers its (vanishing)
            // solid angle.
            if a == b || b == c || c == a || is_degenerate_triangle(pa, pb, pc) {
                skipped += 1;
                continue;
            }
            kept.push([a, b, c]);
            tri_map.push(i as u32);
        }
        if skipped > 0 {
            log::debug!("MeshSdf: skipped {skipped} invalid or degenerate triangles");
        }

        let to_frame = frame_scale(&points, &kept);
        // Exact: every welded point came from an f32 and the frame scale is
        // a power of two (short of f32's subnormal range, where a
        // coordinate 2^-126 of the mesh's size loses bits it cannot matter
        // by). The f64 points are rebuilt from the f32 ones so that both
        // trees see the same mesh.
        let verts: Vec<[f32; 3]> = points
            .iter()
            .map(|p| p.map(|c| (c * to_frame) as f32))
            .collect();
        let points: Vec<V3> = verts.iter().map(|v| to_f64(*v)).collect();
        // The two hierarchies are independent; building them side by side
        // halves the set-up that every fresh mesh pays.
        let (winding, bvh) = rayon::join(
            || WindingBvh::new(&points, &kept),
            || DistanceBvh::new(&verts, &kept),
        );
        let boundary = winding.boundary_edges();
        log::debug!(
            "MeshSdf: {} triangles, {boundary} boundary edges",
            tri_map.len()
        );
        let (coord_scale, centre) = bvh.as_ref().map_or((0.0, [0.0; 3]), |b| {
            let (lo, hi) = b.bounds();
            let c = [lo, hi].map(|v| v[0].abs().max(v[1].abs()).max(v[2].abs()));
            let centre = [0, 1, 2].map(|k| (f64::from(lo[k]) + f64::from(hi[k])) / 2.0);
            (f64::from(c[0].max(c[1])), centre)
        });
        MeshSdf {
            to_frame,
            cell_grid: OnceLock::new(),
            bvh,
            verts,
            kept,
            tri_map,
            winding,
            closed: boundary == 0,
            dist_slack: 1e-5 * coord_scale,
            centre,
        }
    }

    /// Signed distance: exact unsigned distance to the triangles, negative
    /// inside (winding number >= 0.5). NaN for non-finite points; +inf when
    /// the mesh has no usable triangle. Parallel over points.
    pub fn signed_distance(&self, points: &[[f32; 3]]) -> Vec<f32> {
        // Small batches would not repay the grid's build (closed meshes
        // only: `cell_grid` builds none for an open one).
        if points.len() >= 16_384 {
            self.cell_grid();
        }
        self.map_points(points, |state, p| self.signed_one(p, state))
            .into_iter()
            .map(|d| self.to_caller(d))
            .collect()
    }

    /// Exact unsigned distance to the triangles. NaN for non-finite points;
    /// +inf when the mesh has no usable triangle. Parallel over points.
    pub fn unsigned_distance(&self, points: &[[f32; 3]]) -> Vec<f32> {
        self.map_points(points, |state, p| {
            match self.project(p, &mut state.prev_slot) {
                Some((_, _, d)) => self.to_caller(d),
                None if is_finite(p) => f32::INFINITY,
                None => f32::NAN,
            }
        })
    }

    /// [`Self::unsigned_distance`] where it is below `cap`, +inf where the
    /// surface is at least `cap` away; NaN for non-finite points. Far from
    /// the surface this is many times faster, since the cap prunes the
    /// search: weighted sampling needs exact distances only where its
    /// weight is not negligible.
    pub fn unsigned_distance_below(&self, points: &[[f32; 3]], cap: f32) -> Vec<f32> {
        // The BVH prunes in f32: its bound gets the usual slack, and the
        // exact f64 distance decides.
        let cap = f64::from(cap) * self.to_frame;
        let max = cap * (1.0 + 1e-5) + self.dist_slack;
        self.map_points(points, |state, p| {
            if !is_finite(p) {
                return f32::NAN;
            }
            match self.project_within(p, &mut state.prev_slot, max) {
                Some((_, _, d)) if d < cap => self.to_caller(d),
                _ => f32::INFINITY,
            }
        })
    }

    /// Generalized winding number (Jacobson et al. 2013), computed exactly:
    /// 1 inside and 0 outside a closed, outward-oriented mesh, fractional
    /// near holes. NaN for a non-finite point.
    pub fn winding_number(&self, p: [f64; 3]) -> f64 {
        self.winding_in_frame(scale(p, self.to_frame))
    }

    fn winding_in_frame(&self, p: V3) -> f64 {
        if !is_finite(p) {
            return f64::NAN;
        }
        // Cast away from the model centre: from points near a roughly
        // star-shaped surface this ray leaves the mesh after few boxes.
        self.winding.winding_fast(p, sub(p, self.centre))
    }

    /// [`Self::winding_number`] for many points, in parallel.
    pub fn winding_numbers(&self, points: &[[f32; 3]]) -> Vec<f64> {
        self.map_points(points, |_, p| self.winding_in_frame(p))
    }

    /// Closest point on the surface, the caller's index of its triangle and
    /// that triangle's unit normal (right-handed in the corner order).
    ///
    /// For a non-finite `p`, or a mesh without usable triangles, returns NaN
    /// coordinates, index `usize::MAX` and a NaN normal; use
    /// [`Self::try_closest_point`] to get an `Option` instead.
    pub fn closest_point(&self, p: [f32; 3]) -> ([f32; 3], usize, [f32; 3]) {
        self.try_closest_point(p)
            .unwrap_or(([f32::NAN; 3], usize::MAX, [f32::NAN; 3]))
    }

    /// [`Self::closest_point`], or None when there is no answer.
    pub fn try_closest_point(&self, p: [f32; 3]) -> Option<([f32; 3], usize, [f32; 3])> {
        let (cp, k, _) = self.project(self.point_in_frame(p), &mut None)?;
        let n = self.normal(k)?;
        let orig = *self.tri_map.get(k)? as usize;
        Some((cp.map(|x| self.to_caller(x)), orig, n.map(|x| x as f32)))
    }

    /// Exact distance (f64, the caller's units) from a point given in f64 to
    /// the surface, the caller's index of the closest triangle and that
    /// triangle's corners (the caller's units, exact). The certified
    /// Hausdorff distance (`metrics::hausdorff`) queries points that are not
    /// f32 values and bounds with the closest triangle's corners. None for
    /// a non-finite point or a mesh without usable triangles.
    pub fn closest_triangle(&self, p: [f64; 3]) -> Option<(f64, usize, [[f64; 3]; 3])> {
        let (_, k, d) = self.project(scale(p, self.to_frame), &mut None)?;
        let back = 1.0 / self.to_frame;
        let corners = self.corners(k)?.map(|c| scale(c, back));
        Some((d * back, *self.tri_map.get(k)? as usize, corners))
    }

    /// The cell grid, built on first use (closed meshes only: elsewhere
    /// the winding number is not constant between surface crossings).
    fn cell_grid(&self) -> Option<&CellGrid> {
        if !self.closed {
            return None;
        }
        self.cell_grid
            .get_or_init(|| self.winding.cell_grid())
            .as_ref()
    }

    /// The power of two that takes the caller's coordinates into the frame
    /// the trees are built in (see [`MeshSdf`]).
    pub fn to_frame(&self) -> f64 {
        self.to_frame
    }

    /// A caller's point in the frame, exactly (f64 holds any f32 times a
    /// power of two of f32's range).
    fn point_in_frame(&self, p: [f32; 3]) -> V3 {
        scale(to_f64(p), self.to_frame)
    }

    /// A distance or coordinate of the frame in the caller's units, rounded
    /// once to f32 (overflowing to inf only where f32 cannot hold it).
    fn to_caller(&self, x: f64) -> f32 {
        (x / self.to_frame) as f32
    }

    /// Number of triangles used (after skipping invalid or degenerate ones).
    pub fn num_triangles(&self) -> usize {
        self.tri_map.len()
    }

    /// Signed distance in the frame at a point of the frame.
    fn signed_one(&self, p64: V3, state: &mut ChunkState) -> f64 {
        let Some((_, k, d)) = self.project(p64, &mut state.prev_slot) else {
            return if is_finite(p64) {
                f64::INFINITY
            } else {
                f64::NAN
            };
        };
        if d <= self.dist_slack * 1e-9 {
            // On the surface to within f64 rounding of the projection
            // (samples on axis-aligned faces land there): no f32 input
            // point can lie this close without lying on it, the winding
            // number is undefined there and the slowest case to settle,
            // and the distance is 0 on either side.
            return 0.0;
        }
        // On a closed surface the winding number is constant on each
        // connected component of the complement. The open balls B(p, d) and
        // B(q, dq) contain no surface point, so when they overlap, p and the
        // previous point q are joined by a surface-free path and share q's
        // (exactly computed) winding number. The slack keeps the test sound
        // under the BVH's f32 box pruning. In a spatially sorted
        // batch this skips the ray for most points off the surface.
        let shared = if self.closed {
            state.anchors.iter().find_map(|&(q, dq, wq)| {
                // An unused slot has dq = -inf, so its reach is -inf.
                let reach = (d + dq) * (1.0 - 1e-5) - self.dist_slack;
                (norm(sub(p64, q)) < reach).then_some(wq)
            })
        } else {
            None
        };
        // Next, the cell grid's few local triangles (closed meshes, once a
        // large batch has built the grid): this serves the points too close
        // to the surface for the balls to overlap.
        let shared = shared.or_else(|| self.cell_grid.get()?.as_ref()?.winding(&self.winding, p64));
        let w = shared.unwrap_or_else(|| {
            // The nearest triangle's normal points out of the mesh nearby,
            // so a ray along it crosses few boxes; correctness does not
            // depend on it.
            let hint = self.normal(k).unwrap_or([0.0; 3]);
            self.winding.winding_fast(p64, hint)
        });
        state.anchors[state.next_anchor % ANCHORS] = (p64, d, w);
        state.next_anchor = state.next_anchor.wrapping_add(1);
        if w >= 0.5 {
            -d
        } else {
            d
        }
    }

    /// Closest point (f64), kept triangle index and distance, or None for
    /// a non-finite point or an empty mesh.
    ///
    /// `prev` is the BVH slot of a triangle, normally the previous answer
    /// in the same (spatially sorted) batch: the distance to it bounds the
    /// distance to the surface, which lets the BVH prune from the start.
    fn project(&self, p: V3, prev: &mut Option<u32>) -> Option<(V3, usize, f64)> {
        self.project_within(p, prev, f64::INFINITY)
    }

    /// [`Self::project`] restricted to the surface within `max` of `p`
    /// (f32 rounding aside): None also when nothing is that close. A small
    /// `max` prunes the search early, which is what makes points deep
    /// inside a shape cheap (there the unrestricted search must visit
    /// every nearly equidistant part of the surface).
    fn project_within(&self, p: V3, prev: &mut Option<u32>, max: f64) -> Option<(V3, usize, f64)> {
        if !is_finite(p) {
            return None;
        }
        let Some(bvh) = self.bvh.as_ref() else {
            // No tree (no usable triangle, or one too deep to build, which
            // the build's limits make unreachable): the scan answers.
            return self.project_brute(p).filter(|h| h.2 <= max);
        };
        // Squared in f64: any point of the frame squared stays finite, so
        // even points far beyond the model get an answer.
        if let Some(hit) = bvh.closest(p, max * max, *prev) {
            let d = hit.d2.sqrt();
            if d.is_finite() {
                *prev = Some(hit.slot);
                return Some((hit.point, hit.triangle, d));
            }
        }
        if max.is_finite() {
            return None;
        }
        self.project_brute(p)
    }

    /// Linear f64 scan; only for queries the BVH cannot serve (none known:
    /// a safety net that keeps answers exact).
    fn project_brute(&self, p: V3) -> Option<(V3, usize, f64)> {
        let mut best: Option<(V3, usize, f64)> = None;
        for k in 0..self.kept.len() {
            let Some([a, b, c]) = self.corners(k) else {
                continue;
            };
            let cp = closest_point_on_triangle(p, a, b, c);
            let d = norm(sub(p, cp));
            if best.map_or(true, |(_, _, bd)| d < bd) {
                best = Some((cp, k, d));
            }
        }
        best
    }

    /// Corners of kept triangle `k` in f64 (exact: they are f32).
    fn corners(&self, k: usize) -> Option<[V3; 3]> {
        let t = self.kept.get(k)?;
        let c = |i: u32| self.verts.get(i as usize).map(|v| to_f64(*v));
        Some([c(t[0])?, c(t[1])?, c(t[2])?])
    }

    /// Unit normal of kept triangle `k`, in f64 from the f32 corners.
    fn normal(&self, k: usize) -> Option<V3> {
        let [a, b, cc] = self.corners(k)?;
        let n = cross(sub(b, a), sub(cc, a));
        let l = norm(n);
        (l > 0.0).then(|| scale(n, 1.0 / l))
    }

    /// Applies `f` to every point in parallel. `f` also gets a state that
    /// lives for one chunk of consecutive (spatially sorted) points.
    fn map_points<T: Send + Copy + Default>(
        &self,
        points: &[[f32; 3]],
        f: impl Fn(&mut ChunkState, V3) -> T + Sync,
    ) -> Vec<T> {
        let mut out = vec![T::default(); points.len()];
        match self.spatial_order(points) {
            Some(order) => {
                // Evaluate in Morton order so consecutive queries reuse the
                // cached BVH paths and triangles (about 2x faster for a batch
                // in random order), then scatter back to input order.
                let mut sorted = vec![T::default(); points.len()];
                sorted
                    .par_chunks_mut(CHUNK)
                    .zip(order.par_chunks(CHUNK))
                    .for_each(|(o, idx)| {
                        let mut state = ChunkState::default();
                        for (o, &i) in o.iter_mut().zip(idx) {
                            *o = f(&mut state, self.point_in_frame(points[i as usize]));
                        }
                    });
                for (&i, v) in order.iter().zip(sorted) {
                    out[i as usize] = v;
                }
            }
            None => {
                out.par_chunks_mut(CHUNK)
                    .zip(points.par_chunks(CHUNK))
                    .for_each(|(o, p)| {
                        let mut state = ChunkState::default();
                        for (o, &p) in o.iter_mut().zip(p) {
                            *o = f(&mut state, self.point_in_frame(p));
                        }
                    });
            }
        }
        out
    }

    /// Input indices sorted along a Morton curve over the mesh box, or None
    /// when the batch is too small for locality to pay for the sort.
    fn spatial_order(&self, points: &[[f32; 3]]) -> Option<Vec<u32>> {
        const MIN_BATCH: usize = 8192;
        if points.len() < MIN_BATCH || u32::try_from(points.len()).is_err() {
            return None;
        }
        let (lo, hi) = self.bvh.as_ref()?.bounds();
        let (lo, hi) = (to_f64(lo), to_f64(hi));
        let inv = [0, 1, 2].map(|k| {
            let e = hi[k] - lo[k];
            if e > 0.0 {
                1023.0 / e
            } else {
                0.0
            }
        });
        let mut keys: Vec<u64> = points
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                // 10 bits per axis: cells far smaller than a leaf box. Points
                // outside the box (or NaN, which `as` maps to 0) clamp.
                let q = [0, 1, 2].map(|k| {
                    let t = ((f64::from(p[k]) * self.to_frame - lo[k]) * inv[k]).clamp(0.0, 1023.0);
                    spread_bits(t as u32)
                });
                let code = q[0] | (q[1] << 1) | (q[2] << 2);
                (u64::from(code) << 32) | i as u64
            })
            .collect();
        keys.par_sort_unstable();
        Some(keys.into_iter().map(|k| k as u32).collect())
    }
}

/// The power of two that brings the largest coordinate of the vertices
/// `triangles` use to [0.5, 1), or 1 where it already lies within
/// 2^-16..2^16 (or there is none): there f32 squared distances are far
/// from overflow and underflow for every distance that matters.
///
/// Scaling down stops where the smallest nonzero coordinate would leave
/// f32's normal range: there it would lose bits, and a mesh whose features
/// span that many orders of magnitude keeps its own scale (exact answers,
/// from a slower search). So every vertex of the frame is exactly the
/// caller's times the power of two.
fn frame_scale(points: &[V3], triangles: &[[u32; 3]]) -> f64 {
    let coordinates = || {
        triangles
            .iter()
            .flatten()
            .filter_map(|&i| points.get(i as usize))
            .flat_map(|p| p.iter().map(|c| c.abs()))
    };
    let largest = coordinates().fold(0.0f64, f64::max);
    if largest == 0.0 || (2f64.powi(-16)..=2f64.powi(16)).contains(&largest) {
        return 1.0;
    }
    // Finite f32 magnitudes have exponents within -149..=128, so these
    // powers of two are exact in f64 and so is every product with them.
    let ideal = -(largest.log2().floor() as i32) - 1;
    let exponent = if ideal < 0 {
        let smallest = coordinates()
            .filter(|&c| c > 0.0)
            .fold(f64::INFINITY, f64::min);
        let room = (smallest / f64::from(f32::MIN_POSITIVE)).log2().floor() as i32;
        ideal.max(-room.max(0))
    } else {
        ideal
    };
    2f64.powi(exponent)
}

/// Spreads the low 10 bits of `x` to every third bit (Morton interleave).
fn spread_bits(x: u32) -> u32 {
    let mut x = x & 0x3ff;
    x = (x | (x << 16)) & 0x0300_00ff;
    x = (x | (x << 8)) & 0x0300_f00f;
    x = (x | (x << 4)) & 0x030c_30c3;
    x = (x | (x << 2)) & 0x0924_9249;
    x
}
