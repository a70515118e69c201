//! Sparse, coarse-to-fine extraction: the field is sampled only in bricks
//! of the grid that the surface can pass through, and marching cubes runs on
//! those bricks alone, so resolutions whose dense grid would not fit in
//! memory (2048^3 is 32 GiB of f32) become practical.
//!
//! # Which bricks are sampled
//!
//! The grid's cells are grouped into bricks of `brick` cells per axis, and
//! bricks into an octree of blocks. A block whose cells span a cube of
//! half-diagonal `r` centred at `c` can contain a zero of a field `f` with
//! Lipschitz constant `L` only if `|f(c)| <= L * r`. A true SDF has `L = 1`;
//! a trained network only approximates one, so the bound is used as
//! `|f(c)| <= safety * r` with a safety factor (default
//! [`DEFAULT_LIPSCHITZ_SAFETY`]) that stands for the network's `L`. Blocks
//! failing the test are dropped whole; the others are split until they are
//! single bricks. A NaN value never drops a block.
//!
//! Should the network be steeper than the safety factor allows somewhere, a
//! dropped brick could hold part of the surface. Every sampled brick
//! therefore checks its six faces: a face whose samples change sign means
//! the surface continues into the neighbour, which is then sampled too, until
//! no sampled face leads into an unsampled brick. So a surface component is
//! either extracted whole (watertight) or, if the bound missed it entirely,
//! not at all; it is never cut open.
//!
//! # Identical to the dense grid
//!
//! Samples are taken at the same coordinates as the dense grid's, each grid
//! point is evaluated once (bricks own the points at their low corner and
//! read their neighbours' for the shared faces), and vertex positions come
//! from global sample indices ([`marching_cubes_brick`]); vertices are
//! welded by grid edge id. Wherever the sampled bricks cover every cell that
//! changes sign, the mesh equals the dense one up to the order of vertices
//! and triangles (a test checks this on analytic fields).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::marching_cubes::{marching_cubes_brick, BrickMesh, IsoMesh, SdfGrid};

/// Stands for the network's Lipschitz constant in the culling bound; a true
/// SDF needs 1. The margin covers trained networks whose gradient norm
/// exceeds 1 near the surface; the face check catches what it still misses.
pub const DEFAULT_LIPSCHITZ_SAFETY: f64 = 1.5;

/// Cells per brick edge. Small bricks hug the surface tightly (fewer wasted
/// samples); large ones have less per-brick overhead. 8 keeps the sampled
/// shell about two bricks thick.
pub const DEFAULT_BRICK_CELLS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseConfig {
    pub brick_cells: usize,
    pub lipschitz_safety: f64,
    /// Most points handed to the field per call; progress is reported and
    /// cancellation honoured between calls.
    pub batch: usize,
}

impl Default for SparseConfig {
    fn default() -> Self {
        SparseConfig {
            brick_cells: DEFAULT_BRICK_CELLS,
            lipschitz_safety: DEFAULT_LIPSCHITZ_SAFETY,
            batch: 1 << 18,
        }
    }
}

/// A cubic grid of `points` samples per axis at `origin + spacing * i`
/// (computed in f64, then rounded to f32: the dense extraction samples the
/// same coordinates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CubeGrid {
    pub points: usize,
    pub origin: f64,
    pub spacing: f64,
}

impl CubeGrid {
    #[inline]
    pub fn coord(&self, i: usize) -> f32 {
        (self.origin + self.spacing * i as f64) as f32
    }

    pub fn sdf_grid(&self, values: Vec<f32>) -> SdfGrid {
        SdfGrid {
            dims: [self.points; 3],
            origin: [self.origin as f32; 3],
            spacing: self.spacing as f32,
            values,
        }
    }
}

/// What the sparse extraction did, for logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SparseStats {
    /// Field evaluations in the coarse-to-fine culling.
    pub coarse_samples: usize,
    /// Field evaluations on grid points.
    pub grid_samples: usize,
    /// Bricks meshed, and those of them added by the face check.
    pub bricks: usize,
    pub bricks_from_faces: usize,
    /// Bricks the grid has in all.
    pub bricks_total: usize,
}

/// The extraction was cancelled through the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

type Brick = [usize; 3];

/// Sparse marching cubes of the zero level set of `field` on `grid`.
/// `field` maps points to values (one per point); `progress(fraction)`
/// returning false cancels.
pub fn sparse_marching_cubes(
    grid: &CubeGrid,
    field: &mut dyn FnMut(&[[f32; 3]]) -> Vec<f32>,
    config: &SparseConfig,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<(IsoMesh, SparseStats), Cancelled> {
    let n = grid.points;
    let b = config.brick_cells.max(1);
    let mut stats = SparseStats::default();
    if n < 2 {
        return Ok((IsoMesh::default(), stats));
    }
    // Bricks of cells; point bricks own `b` points per axis from their low
    // corner, so one more point brick is needed when n - 1 is a multiple of b.
    let nb = (n - 1).div_ceil(b);
    let npb = n.div_ceil(b);
    stats.bricks_total = nb * nb * nb;
    let safety = if config.lipschitz_safety.is_finite() && config.lipschitz_safety > 0.0 {
        config.lipschitz_safety
    } else {
        DEFAULT_LIPSCHITZ_SAFETY
    };
    let batch = config.batch.max(1);

    let active = cull(grid, b, nb, safety, field, batch, &mut stats, progress)?;
    let mut store = PointStore {
        origin: grid.origin as f32,
        spacing: grid.spacing as f32,
        b,
        npb,
        n,
        bricks: HashMap::new(),
    };
    let mut meshes: HashMap<Brick, BrickMesh> = HashMap::new();
    let mut queued: HashSet<Brick> = active.iter().copied().collect();
    let mut queue = active;
    let mut round = 0;
    while !queue.is_empty() {
        queue.sort_unstable_by_key(|k| (k[2], k[1], k[0]));
        store.evaluate_for(&queue, grid, field, batch, &mut stats, &mut |f| {
            // The culled set is most of the work; later rounds are small.
            progress(0.1 + 0.8 * f / (round + 1) as f64)
        })?;
        let results: Vec<(Brick, BrickMesh, [bool; 6])> = queue
            .par_iter()
            .map(|&k| {
                let (local, offset) = store.assemble(k);
                let faces = faces_with_sign_change(&local);
                (k, marching_cubes_brick(&local, offset, [n; 3]), faces)
            })
            .collect();
        let mut next = Vec::new();
        for (k, mesh, faces) in results {
            for (face, &changes) in faces.iter().enumerate() {
                let (axis, up) = (face / 2, face % 2 == 1);
                let neighbour = match (up, k[axis]) {
                    (false, 0) => continue,
                    (false, c) => c - 1,
                    (true, c) if c + 1 >= nb => continue,
                    (true, c) => c + 1,
                };
                let mut m = k;
                m[axis] = neighbour;
                if changes && queued.insert(m) {
                    next.push(m);
                }
            }
            meshes.insert(k, mesh);
        }
        if round > 0 {
            stats.bricks_from_faces += queue.len();
        }
        queue = next;
        round += 1;
    }
    stats.bricks = meshes.len();
    if stats.bricks_from_faces > 0 {
        log::warn!(
            "sparse extraction: {} bricks the Lipschitz bound (safety {safety}) had dropped hold surface; \
             they were added through their faces (a larger safety factor avoids the extra rounds)",
            stats.bricks_from_faces
        );
    }
    let mesh = weld(meshes);
    log::debug!("sparse extraction {n}^3: {stats:?}");
    if !progress(0.95) {
        return Err(Cancelled);
    }
    Ok((mesh, stats))
}

/// Coarse-to-fine over an octree of bricks; returns the bricks that may hold
/// surface.
#[allow(clippy::too_many_arguments)]
fn cull(
    grid: &CubeGrid,
    b: usize,
    nb: usize,
    safety: f64,
    field: &mut dyn FnMut(&[[f32; 3]]) -> Vec<f32>,
    batch: usize,
    stats: &mut SparseStats,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Vec<Brick>, Cancelled> {
    let top = nb.next_power_of_two();
    // Start a few levels down so that the first test already has some
    // resolution; 4^3 blocks cost nothing.
    let mut side = (top / 4).max(1);
    let per_axis = nb.div_ceil(side);
    let mut blocks: Vec<Brick> = (0..per_axis * per_axis * per_axis)
        .map(|i| {
            [
                i % per_axis,
                (i / per_axis) % per_axis,
                i / (per_axis * per_axis),
            ]
        })
        .collect();
    loop {
        let cells = (side * b) as f64;
        // The f32 rounding of the centre moves it by far less than this
        // slack, which keeps the test conservative.
        let radius = grid.spacing * (cells * 0.5 * 3f64.sqrt() + 1e-3);
        let centres: Vec<[f32; 3]> = blocks
            .iter()
            .map(|k| k.map(|c| (grid.origin + grid.spacing * (c as f64 + 0.5) * cells) as f32))
            .collect();
        let mut values = Vec::with_capacity(centres.len());
        for part in centres.chunks(batch) {
            values.extend(field(part));
        }
        stats.coarse_samples += centres.len();
        // NaN is kept: a block is dropped only on proof.
        let keep = |v: f32| f64::from(v).abs() <= safety * radius || v.is_nan();
        let kept = blocks
            .iter()
            .zip(&values)
            .filter(|(_, &v)| keep(v))
            .map(|(k, _)| *k);
        if side == 1 {
            return Ok(kept.collect());
        }
        let half = side / 2;
        let mut children = Vec::new();
        for k in kept {
            for child in 0..8 {
                let c = [0, 1, 2].map(|a| 2 * k[a] + ((child >> a) & 1));
                if c.iter().all(|&x| x * half < nb) {
                    children.push(c);
                }
            }
        }
        blocks = children;
        side = half;
        if !progress(0.1 * (1.0 - side as f64 / top as f64)) {
            return Err(Cancelled);
        }
    }
}

/// Field values of the grid points, stored per point brick of `b`^3 owned
/// points (fewer at the grid's far faces).
struct PointStore {
    /// The global grid's, as marching cubes takes them.
    origin: f32,
    spacing: f32,
    b: usize,
    npb: usize,
    n: usize,
    bricks: HashMap<Brick, Vec<f32>>,
}

impl PointStore {
    fn owned(&self, k: Brick) -> [std::ops::Range<usize>; 3] {
        k.map(|c| c * self.b..((c + 1) * self.b).min(self.n))
    }

    /// Evaluates every point brick the cell bricks `cells` read and that is
    /// not stored yet.
    fn evaluate_for(
        &mut self,
        cells: &[Brick],
        grid: &CubeGrid,
        field: &mut dyn FnMut(&[[f32; 3]]) -> Vec<f32>,
        batch: usize,
        stats: &mut SparseStats,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> Result<(), Cancelled> {
        let mut wanted = Vec::new();
        let mut seen = HashSet::new();
        for k in cells {
            for corner in 0..8 {
                let p = [0, 1, 2].map(|a| k[a] + ((corner >> a) & 1));
                if p.iter().all(|&c| c < self.npb)
                    && !self.bricks.contains_key(&p)
                    && seen.insert(p)
                {
                    wanted.push(p);
                }
            }
        }
        // Several point bricks per field call, so that a GPU gets batches
        // large enough to be busy.
        let per_call = (batch / (self.b * self.b * self.b)).max(1);
        let mut points = Vec::new();
        let total = wanted.len().max(1);
        for (done, group) in wanted.chunks(per_call).enumerate() {
            points.clear();
            for &p in group {
                let [rx, ry, rz] = self.owned(p);
                for z in rz {
                    for y in ry.clone() {
                        for x in rx.clone() {
                            points.push([grid.coord(x), grid.coord(y), grid.coord(z)]);
                        }
                    }
                }
            }
            let values = field(&points);
            assert_eq!(values.len(), points.len(), "field returned a wrong count");
            stats.grid_samples += points.len();
            let mut rest = &values[..];
            for &p in group {
                let len: usize = self.owned(p).iter().map(|r| r.len()).product();
                let (mine, tail) = rest.split_at(len);
                self.bricks.insert(p, mine.to_vec());
                rest = tail;
            }
            if !progress(((done + 1) * per_call).min(total) as f64 / total as f64) {
                return Err(Cancelled);
            }
        }
        Ok(())
    }

    /// The samples of cell brick `k` (its cells' corners), and the global
    /// index of its first sample.
    fn assemble(&self, k: Brick) -> (SdfGrid, [usize; 3]) {
        let offset = k.map(|c| c * self.b);
        let dims = offset.map(|o| (self.b + 1).min(self.n - o));
        let mut values = vec![0f32; dims.iter().product()];
        for corner in 0..8usize {
            let p = [0, 1, 2].map(|a| k[a] + ((corner >> a) & 1));
            let Some(src) = self.bricks.get(&p) else {
                continue;
            };
            let owned = self.owned(p);
            let [ox, oy, oz] = owned.clone().map(|r| r.start);
            let [sx, sy, _] = owned.clone().map(|r| r.len());
            // Global ranges of this point brick that fall inside the cell
            // brick's samples.
            let clip = |a: usize| {
                let lo = owned[a].start.max(offset[a]);
                let hi = owned[a].end.min(offset[a] + dims[a]);
                lo..hi
            };
            let (cx, cy, cz) = (clip(0), clip(1), clip(2));
            for z in cz {
                for y in cy.clone() {
                    let dst = (cx.start - offset[0])
                        + dims[0] * ((y - offset[1]) + dims[1] * (z - offset[2]));
                    let from = (cx.start - ox) + sx * ((y - oy) + sy * (z - oz));
                    values[dst..dst + cx.len()].copy_from_slice(&src[from..from + cx.len()]);
                }
            }
        }
        let grid = SdfGrid {
            dims,
            origin: [self.origin; 3],
            spacing: self.spacing,
            values,
        };
        (grid, offset)
    }
}

/// For faces -x, +x, -y, +y, -z, +z of a brick's samples: whether the
/// face's samples lie on both sides of the surface (the sign test of
/// marching cubes: inside iff `v < 0`).
fn faces_with_sign_change(g: &SdfGrid) -> [bool; 6] {
    let [nx, ny, nz] = g.dims;
    let at = |x: usize, y: usize, z: usize| g.values[x + nx * (y + ny * z)] < 0.0;
    let mixed = |axis: usize, layer: usize| {
        let (du, dv) = match axis {
            0 => (ny, nz),
            1 => (nx, nz),
            _ => (nx, ny),
        };
        let mut seen = [false; 2];
        for v in 0..dv {
            for u in 0..du {
                let s = match axis {
                    0 => at(layer, u, v),
                    1 => at(u, layer, v),
                    _ => at(u, v, layer),
                };
                seen[usize::from(s)] = true;
                if seen[0] && seen[1] {
                    return true;
                }
            }
        }
        false
    };
    let mut out = [false; 6];
    for axis in 0..3 {
        out[2 * axis] = mixed(axis, 0);
        out[2 * axis + 1] = mixed(axis, g.dims[axis] - 1);
    }
    out
}

/// Joins brick meshes in a fixed (z, y, x) brick order, one vertex per grid
/// edge.
fn weld(meshes: HashMap<Brick, BrickMesh>) -> IsoMesh {
    let mut order: Vec<(Brick, BrickMesh)> = meshes.into_iter().collect();
    order.sort_unstable_by_key(|(k, _)| (k[2], k[1], k[0]));
    let n_triangles = order.iter().map(|(_, m)| m.mesh.triangles.len()).sum();
    let mut out = IsoMesh {
        vertices: Vec::new(),
        triangles: Vec::with_capacity(n_triangles),
    };
    let mut index: HashMap<u64, u32> = HashMap::new();
    for (_, m) in order {
        let map: Vec<u32> = m
            .edge_ids
            .iter()
            .zip(&m.mesh.vertices)
            .map(|(&id, &p)| {
                *index.entry(id).or_insert_with(|| {
                    out.vertices.push(p);
                    u32::try_from(out.vertices.len() - 1)
                        .expect("sparse mesh has more vertices than u32 indices can address")
                })
            })
            .collect();
        out.triangles
            .extend(m.mesh.triangles.iter().map(|t| t.map(|i| map[i as usize])));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::marching_cubes::marching_cubes;

    fn dense(grid: &CubeGrid, f: &dyn Fn([f32; 3]) -> f32) -> IsoMesh {
        let n = grid.points;
        let mut values = Vec::with_capacity(n * n * n);
        for z in 0..n {
            for y in 0..n {
                for x in 0..n {
                    values.push(f([grid.coord(x), grid.coord(y), grid.coord(z)]));
                }
            }
        }
        marching_cubes(&grid.sdf_grid(values))
    }

    /// Triangles as position triples starting at the smallest one (keeps
    /// orientation), sorted: equal iff the meshes are equal up to order.
    fn canonical(m: &IsoMesh) -> (Vec<[u32; 3]>, Vec<[[u32; 3]; 3]>) {
        let key = |i: u32| m.vertices[i as usize].map(f32::to_bits);
        let mut vs: Vec<[u32; 3]> = m.vertices.iter().map(|v| v.map(f32::to_bits)).collect();
        vs.sort_unstable();
        let mut ts: Vec<[[u32; 3]; 3]> = m
            .triangles
            .iter()
            .map(|t| {
                let p = t.map(key);
                let r = (0..3).min_by_key(|&j| p[j]).unwrap();
                [p[r], p[(r + 1) % 3], p[(r + 2) % 3]]
            })
            .collect();
        ts.sort_unstable();
        (vs, ts)
    }

    fn torus(p: [f32; 3]) -> f32 {
        let [x, y, z] = p.map(f64::from);
        let q = (x * x + y * y).sqrt() - 0.55;
        ((q * q + z * z).sqrt() - 0.25) as f32
    }

    /// A union of spheres: an exact SDF outside, 1-Lipschitz everywhere.
    fn blobs(p: [f32; 3]) -> f32 {
        let [x, y, z] = p.map(f64::from);
        let s1 = ((x - 0.3).powi(2) + y * y + z * z).sqrt() - 0.4;
        let s2 = ((x + 0.4).powi(2) + (y - 0.3).powi(2) + (z + 0.1).powi(2)).sqrt() - 0.3;
        let s3 = (x * x + (y + 0.6).powi(2) + (z - 0.5).powi(2)).sqrt() - 0.05;
        s1.min(s2).min(s3) as f32
    }

    fn unit_grid(points: usize) -> CubeGrid {
        let spacing = 2.0 / (points as f64 - 3.0);
        CubeGrid {
            points,
            origin: -1.0 - spacing,
            spacing,
        }
    }

    #[test]
    fn sparse_equals_dense_on_analytic_fields() {
        type Field = fn([f32; 3]) -> f32;
        let fields: [(&str, Field); 2] = [("torus", torus), ("blobs", blobs)];
        for (name, f) in fields {
            // 67 points: 66 cells, not a multiple of the brick, so bricks at
            // the far faces are partial; 65: 64 cells, an exact multiple.
            for (points, brick) in [(67, 8), (65, 8), (40, 5), (33, 32)] {
                let grid = unit_grid(points);
                let reference = dense(&grid, &f);
                assert!(!reference.triangles.is_empty());
                let config = SparseConfig {
                    brick_cells: brick,
                    lipschitz_safety: 1.0,
                    batch: 1000,
                };
                let mut field = |pts: &[[f32; 3]]| pts.iter().map(|&p| f(p)).collect();
                let (sparse, stats) =
                    sparse_marching_cubes(&grid, &mut field, &config, &mut |_| true).unwrap();
                assert_eq!(
                    canonical(&sparse),
                    canonical(&reference),
                    "{name} {points} brick {brick}"
                );
                assert_eq!(sparse.vertices.len(), reference.vertices.len());
                // An exact SDF never needs the face check.
                assert_eq!(stats.bricks_from_faces, 0, "{name} {points}");
                if points == 67 {
                    assert!(
                        stats.grid_samples < points * points * points / 2,
                        "{name}: {stats:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn face_check_recovers_what_a_too_small_bound_drops() {
        // A safety factor below 1 pretends the field is flatter than it is:
        // the culling keeps only bricks whose centre is very near the
        // surface, and the face check has to find the rest.
        let grid = unit_grid(67);
        let reference = dense(&grid, &torus);
        let config = SparseConfig {
            brick_cells: 4,
            lipschitz_safety: SAFETY_TOO_SMALL,
            batch: 4096,
        };
        let mut field = |pts: &[[f32; 3]]| pts.iter().map(|&p| torus(p)).collect();
        let (sparse, stats) =
            sparse_marching_cubes(&grid, &mut field, &config, &mut |_| true).unwrap();
        assert!(stats.bricks_from_faces > 0, "{stats:?}");
        assert_eq!(canonical(&sparse), canonical(&reference));
    }

    const SAFETY_TOO_SMALL: f64 = 0.3;

    #[test]
    fn cancellation_and_tiny_grids() {
        let grid = unit_grid(20);
        let mut field = |pts: &[[f32; 3]]| pts.iter().map(|&p| torus(p)).collect();
        let r = sparse_marching_cubes(&grid, &mut field, &SparseConfig::default(), &mut |_| false);
        assert_eq!(r.unwrap_err(), Cancelled);
        let one = CubeGrid { points: 1, ..grid };
        let (m, _) =
            sparse_marching_cubes(&one, &mut field, &SparseConfig::default(), &mut |_| true)
                .unwrap();
        assert!(m.triangles.is_empty());
    }
}
