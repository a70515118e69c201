//! Marching cubes on a dense [`SdfGrid`], producing a welded, consistently
//! oriented [`IsoMesh`] of the zero level set.
//!
//! # Case table
//!
//! The 256-case table is derived at first use from a handful of rules rather
//! than pasted in, so that its topological guarantees follow from the rules
//! instead of from trusting a transcription:
//!
//! 1. On each of the 6 cube faces, the sign-change edges are joined into
//!    directed segments. Seen from outside the cube, a segment keeps the
//!    inside (negative) corners on its right. Because neighbouring faces run
//!    along their shared cube edge in opposite directions, every crossing
//!    edge ends up as the head of exactly one segment and the tail of exactly
//!    one other, so the segments always chain into closed loops.
//! 2. A face with alternating corner signs is ambiguous. It is resolved by
//!    keeping the two inside corners apart (each gets its own segment cutting
//!    it off). The rule reads only that face's four signs, so the two cells
//!    sharing the face build the same two segments (in opposite directions),
//!    which is what makes the mesh watertight across cells.
//! 3. Each loop is triangulated as a disk, keeping the loop's direction so
//!    that every triangle faces outward (counter-clockwise seen from the
//!    positive side). Among all triangulations, the one whose worst triangle
//!    is best (on edge-midpoint geometry) is chosen, which avoids the slivers
//!    a plain fan makes on 6- and 7-gons. Diagonals between two vertices of
//!    one face are excluded: such a diagonal lies in the face plane, where the
//!    neighbouring cell could pick the same one, giving an edge shared by
//!    four triangles.
//!
//! Mesh edges are therefore either face segments (one triangle on each side,
//! from the two cells sharing the face) or interior diagonals (two triangles
//! of the same cell), so a surface that does not reach the grid boundary is a
//! closed 2-manifold with consistent orientation.
//!
//! # Degenerate samples
//!
//! A sample is inside iff `v < 0.0`; exact zeros and NaN are outside, and
//! every sign test goes through the same comparison. With an exact zero at a
//! corner, linear interpolation would put the vertices of all crossing edges
//! at that corner into the same point. The interpolation parameter is
//! therefore clamped to `[1e-4, 1 - 1e-4]`: the topology comes from the sign
//! table alone and is a manifold whatever the positions, and the clamp only
//! keeps the geometry from collapsing distinct vertices into one point
//! (triangles around such a corner become small, never zero-area in exact
//! arithmetic, since three points on three distinct open edges of a cube are
//! never collinear). The shift is at most `1e-4 * spacing`, far below the
//! interpolation error of a curved surface. The offsets survive f32 rounding
//! as long as coordinates stay below roughly 1500 spacings from the origin of
//! the coordinate frame. Snapping instead (merging the coincident vertices)
//! would turn the cells around that corner into pinched, non-manifold
//! vertices, which is why it is not done. A NaN partner sample puts the
//! vertex at the edge midpoint.
//!
//! # Memory and parallelism
//!
//! The grid is swept in z slabs (the cells between two sample layers). Vertex
//! indices of crossing edges are cached per layer, so working memory is
//! O(nx*ny) per worker. Runs of slabs are processed in parallel; each run
//! generates the vertices of its bottom layer again, in the same
//! deterministic order as the run below generated them for its top layer, so
//! welding at the seams is an index shift rather than a lookup, and the output
//! is identical whatever the number of threads.

use std::ops::Range;

use rayon::prelude::*;

use super::case_table::{case_table, CaseTable};

/// A dense grid of SDF samples: `values[x + nx*(y + ny*z)]` is the SDF at
/// `origin + spacing*(x,y,z)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SdfGrid {
    pub dims: [usize; 3],
    pub origin: [f32; 3],
    pub spacing: f32,
    pub values: Vec<f32>,
}

/// An indexed triangle mesh of an iso-surface.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IsoMesh {
    pub vertices: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
}

/// Zero level set, inside = negative values. Returns welded vertices (one per
/// grid edge crossing), triangles oriented so that normals point outward
/// (towards positive values, i.e. counter-clockwise seen from outside).
///
/// Panics if `values.len()` does not match `dims`, or if the mesh would need
/// more than `u32::MAX` vertices.
pub fn marching_cubes(grid: &SdfGrid) -> IsoMesh {
    let [_, _, nz] = grid.dims;
    // A few runs per thread keep threads busy when the surface is
    // concentrated in some slabs; the minimum bounds the repeated seam work.
    let slabs = nz.saturating_sub(1);
    let per_run = slabs
        .div_ceil(4 * rayon::current_num_threads())
        .max(MIN_RUN_SLABS);
    marching_cubes_runs(grid, per_run)
}

const MIN_RUN_SLABS: usize = 8;

/// The mesh of one brick of a larger grid, with the global id of the grid
/// edge each vertex lies on (see [`marching_cubes_brick`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrickMesh {
    pub mesh: IsoMesh,
    /// `edge_ids[i]` names the grid edge of vertex `i`:
    /// `3 * (x + nx * (y + ny * z)) + axis` in global sample indices of the
    /// low end, `axis` 0, 1, 2 for x, y, z.
    pub edge_ids: Vec<u64>,
}

/// Marching cubes on one brick of a larger grid of global dimensions
/// `global_dims`, whose sample `(0, 0, 0)` is global sample `offset`, and
/// whose `origin` and `spacing` are those of the global grid.
///
/// Vertex positions are computed from global sample indices with exactly the
/// arithmetic of [`marching_cubes`] on the whole grid, so a vertex on an edge
/// shared by two bricks gets bit-identical coordinates from both, and
/// welding by edge id reproduces the whole-grid mesh exactly (the sparse
/// extraction relies on this).
///
/// Panics if `values.len()` does not match `dims` or the brick does not fit
/// inside `global_dims`.
pub fn marching_cubes_brick(
    grid: &SdfGrid,
    offset: [usize; 3],
    global_dims: [usize; 3],
) -> BrickMesh {
    let expected: usize = grid.dims.iter().product();
    assert_eq!(
        grid.values.len(),
        expected,
        "brick values do not match dims"
    );
    assert!(
        (0..3).all(|a| offset[a] + grid.dims[a] <= global_dims[a]),
        "brick {:?} at {offset:?} exceeds the grid {global_dims:?}",
        grid.dims
    );
    let [nx, ny, nz] = grid.dims;
    if nx < 2 || ny < 2 || nz < 2 {
        return BrickMesh::default();
    }
    let frame = Frame {
        offset,
        id_dims: Some(global_dims),
    };
    let chunk = process_run(grid, case_table(), 0..nz - 1, &frame);
    BrickMesh {
        mesh: IsoMesh {
            vertices: chunk.vertices,
            triangles: chunk.triangles,
        },
        edge_ids: chunk.ids,
    }
}

/// Where the swept grid sits in a larger one: vertex coordinates use global
/// indices (sample + `offset`), and edge ids are recorded when `id_dims`
/// gives the global dimensions.
#[derive(Clone, Copy, Debug, Default)]
struct Frame {
    offset: [usize; 3],
    id_dims: Option<[usize; 3]>,
}

/// Collects the vertices of a run, and their edge ids when the frame asks.
struct Sink<'a> {
    frame: &'a Frame,
    vertices: Vec<[f32; 3]>,
    ids: Vec<u64>,
}

impl Sink<'_> {
    /// `at` is the global index of the edge's low sample.
    #[inline]
    fn push(&mut self, p: [f32; 3], at: [usize; 3], axis: usize) -> u32 {
        if let Some([gx, gy, _]) = self.frame.id_dims {
            let linear = at[0] + gx * (at[1] + gy * at[2]);
            self.ids.push(3 * linear as u64 + axis as u64);
        }
        self.vertices.push(p);
        (self.vertices.len() - 1) as u32
    }
}

fn marching_cubes_runs(grid: &SdfGrid, per_run: usize) -> IsoMesh {
    let [nx, ny, nz] = grid.dims;
    let expected = nx
        .checked_mul(ny)
        .and_then(|n| n.checked_mul(nz))
        .expect("grid dims overflow usize");
    assert_eq!(
        grid.values.len(),
        expected,
        "SdfGrid values do not match dims {:?}",
        grid.dims
    );
    if nx < 2 || ny < 2 || nz < 2 {
        return IsoMesh::default();
    }
    let table = case_table();
    let slabs = nz - 1;
    let runs = slabs.div_ceil(per_run);
    let frame = Frame::default();
    let chunks: Vec<Chunk> = (0..runs)
        .into_par_iter()
        .map(|k| {
            let z0 = k * per_run;
            process_run(grid, table, z0..(z0 + per_run).min(slabs), &frame)
        })
        .collect();
    let mesh = weld_runs(chunks);
    log::debug!(
        "marching cubes {:?}: {} vertices, {} triangles",
        grid.dims,
        mesh.vertices.len(),
        mesh.triangles.len()
    );
    mesh
}

// ---------------------------------------------------------------------------
// Slab sweep
// ---------------------------------------------------------------------------

/// Row summaries let whole rows of uniform sign skip the per-sample scans.
const ROW_OUT: u8 = 0;
const ROW_IN: u8 = 1;
const ROW_MIXED: u8 = 2;

/// Maps a 4-bit column code (bit 0: (y, z), 1: (y+1, z), 2: (y, z+1),
/// 3: (y+1, z+1)) onto the even corner bits of a case index; the odd bits
/// are the same code one column further, shifted by one.
const SPREAD: [u8; 16] = {
    let mut s = [0; 16];
    let mut i = 0;
    while i < 16 {
        s[i] = ((i & 1) | ((i & 2) << 1) | ((i & 4) << 2) | ((i & 8) << 3)) as u8;
        i += 1;
    }
    s
};

/// One sample layer: signs, row summaries, and the vertex indices of its
/// crossing x and y edges (entries of non-crossing edges are stale and never
/// read, since the case table only names crossing edges).
struct Layer {
    sign: Vec<u8>,
    rows: Vec<u8>,
    xe: Vec<u32>,
    ye: Vec<u32>,
}

impl Layer {
    fn new(nx: usize, ny: usize) -> Self {
        Layer {
            sign: vec![0; nx * ny],
            rows: vec![0; ny],
            xe: vec![0; nx * ny],
            ye: vec![0; nx * ny],
        }
    }
}

/// The mesh of one run of slabs, with local vertex indices. Its first
/// `bottom_len` vertices belong to the run's bottom layer and `top` to its
/// top layer, each in the order [`layer_vertices`] produces.
struct Chunk {
    vertices: Vec<[f32; 3]>,
    ids: Vec<u64>,
    triangles: Vec<[u32; 3]>,
    bottom_len: usize,
    top: Range<usize>,
}

fn process_run(grid: &SdfGrid, table: &CaseTable, slabs: Range<usize>, frame: &Frame) -> Chunk {
    let [nx, ny, _] = grid.dims;
    let mut below = Layer::new(nx, ny);
    let mut above = Layer::new(nx, ny);
    let mut ze = vec![0u32; nx * ny];
    let mut sink = Sink {
        frame,
        vertices: Vec::new(),
        ids: Vec::new(),
    };
    let mut triangles = Vec::new();

    classify_layer(grid, slabs.start, &mut below);
    layer_vertices(grid, slabs.start, &mut below, &mut sink);
    let bottom_len = sink.vertices.len();
    let mut top = bottom_len..bottom_len;
    for z in slabs {
        classify_layer(grid, z + 1, &mut above);
        let start = sink.vertices.len();
        layer_vertices(grid, z + 1, &mut above, &mut sink);
        top = start..sink.vertices.len();
        z_vertices(grid, z, &below, &above, &mut ze, &mut sink);
        slab_cells(nx, ny, &below, &above, &ze, table, &mut triangles);
        std::mem::swap(&mut below, &mut above);
    }
    Chunk {
        vertices: sink.vertices,
        ids: sink.ids,
        triangles,
        bottom_len,
        top,
    }
}

/// Concatenates runs, pointing each run's bottom-layer indices at the
/// identical top-layer vertices of the run below instead of copying them.
fn weld_runs(chunks: Vec<Chunk>) -> IsoMesh {
    let skip = |k: usize, c: &Chunk| if k == 0 { 0 } else { c.bottom_len };
    let n_vertices: usize = chunks
        .iter()
        .enumerate()
        .map(|(k, c)| c.vertices.len() - skip(k, c))
        .sum();
    assert!(
        n_vertices <= u32::MAX as usize,
        "marching cubes mesh has {n_vertices} vertices, more than u32 indices can address"
    );
    let n_triangles = chunks.iter().map(|c| c.triangles.len()).sum();
    let mut mesh = IsoMesh {
        vertices: Vec::with_capacity(n_vertices),
        triangles: Vec::with_capacity(n_triangles),
    };
    let (mut seam_start, mut seam_len) = (0u32, 0usize);
    for (k, c) in chunks.iter().enumerate() {
        let skip = skip(k, c);
        assert!(
            k == 0 || seam_len == skip,
            "adjacent runs disagree on their shared layer"
        );
        let base = mesh.vertices.len() as u32;
        let skip32 = skip as u32;
        let map = |i: u32| {
            if i < skip32 {
                seam_start + i
            } else {
                base + (i - skip32)
            }
        };
        mesh.vertices.extend_from_slice(&c.vertices[skip..]);
        mesh.triangles
            .extend(c.triangles.iter().map(|t| t.map(map)));
        seam_start = map(c.top.start as u32);
        seam_len = c.top.len();
    }
    mesh
}

fn layer_values(grid: &SdfGrid, z: usize) -> &[f32] {
    let n = grid.dims[0] * grid.dims[1];
    &grid.values[z * n..(z + 1) * n]
}

fn classify_layer(grid: &SdfGrid, z: usize, layer: &mut Layer) {
    let nx = grid.dims[0];
    let rows = layer_values(grid, z)
        .chunks_exact(nx)
        .zip(layer.sign.chunks_exact_mut(nx));
    for ((values, signs), state) in rows.zip(&mut layer.rows) {
        let mut count = 0usize;
        for (s, &v) in signs.iter_mut().zip(values) {
            // The one place a sample's side is decided: NaN compares false,
            // so it is outside like an exact zero.
            *s = u8::from(v < 0.0);
            count += usize::from(*s);
        }
        *state = match count {
            0 => ROW_OUT,
            c if c == nx => ROW_IN,
            _ => ROW_MIXED,
        };
    }
}

/// Zero crossing of the linear interpolant between two samples of opposite
/// sides, as a parameter from the first; see the module docs for the clamp.
#[inline]
fn crossing(v0: f32, v1: f32) -> f32 {
    const T_EPS: f32 = 1e-4;
    let t = v0 / (v0 - v1);
    if t.is_nan() {
        0.5
    } else {
        t.clamp(T_EPS, 1.0 - T_EPS)
    }
}

/// Calls `f(i)` for every `i` with `a[i] != b[i]`, in increasing order.
/// Inputs are 0/1 bytes, so each differing byte of a word sets one bit.
#[inline]
fn for_each_diff(a: &[u8], b: &[u8], mut f: impl FnMut(usize)) {
    debug_assert_eq!(a.len(), b.len());
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8-byte chunk"));
    let mut base = 0;
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let mut d = word(ca) ^ word(cb);
        while d != 0 {
            f(base + (d.trailing_zeros() / 8) as usize);
            d &= d - 1;
        }
        base += 8;
    }
    for i in base..a.len() {
        if a[i] != b[i] {
            f(i);
        }
    }
}

/// Creates the vertices of layer `z`'s crossing x edges (row by row), then of
/// its crossing y edges. Two runs sharing the layer rely on this order being
/// a function of the layer alone.
fn layer_vertices(grid: &SdfGrid, z: usize, layer: &mut Layer, sink: &mut Sink) {
    let nx = grid.dims[0];
    let [ox, oy, oz] = grid.origin;
    let [fx, fy, fz] = sink.frame.offset;
    let s = grid.spacing;
    let values = layer_values(grid, z);
    let z = z + fz;
    let zc = oz + s * z as f32;
    let Layer { sign, rows, xe, ye } = layer;
    for (y, &state) in rows.iter().enumerate() {
        if state != ROW_MIXED {
            continue;
        }
        let row = y * nx;
        let (sr, vr) = (&sign[row..row + nx], &values[row..row + nx]);
        let yc = oy + s * (y + fy) as f32;
        for_each_diff(&sr[..nx - 1], &sr[1..], |x| {
            let t = crossing(vr[x], vr[x + 1]);
            let gx = x + fx;
            xe[row + x] = sink.push([ox + s * (gx as f32 + t), yc, zc], [gx, y + fy, z], 0);
        });
    }
    for (y, pair) in rows.windows(2).enumerate() {
        if pair[0] == pair[1] && pair[0] != ROW_MIXED {
            continue;
        }
        let row = y * nx;
        let (v0, v1) = (&values[row..row + nx], &values[row + nx..row + 2 * nx]);
        let gy = y + fy;
        for_each_diff(&sign[row..row + nx], &sign[row + nx..row + 2 * nx], |x| {
            let t = crossing(v0[x], v1[x]);
            let gx = x + fx;
            let p = [ox + s * gx as f32, oy + s * (gy as f32 + t), zc];
            ye[row + x] = sink.push(p, [gx, gy, z], 1);
        });
    }
}

/// Creates the vertices of the crossing z edges between layers `z` and
/// `z + 1`.
fn z_vertices(
    grid: &SdfGrid,
    z: usize,
    below: &Layer,
    above: &Layer,
    ze: &mut [u32],
    sink: &mut Sink,
) {
    let nx = grid.dims[0];
    let [ox, oy, oz] = grid.origin;
    let [fx, fy, fz] = sink.frame.offset;
    let s = grid.spacing;
    let (v0, v1) = (layer_values(grid, z), layer_values(grid, z + 1));
    let gz = z + fz;
    for (y, (&r0, &r1)) in below.rows.iter().zip(&above.rows).enumerate() {
        if r0 == r1 && r0 != ROW_MIXED {
            continue;
        }
        let row = y * nx;
        let gy = y + fy;
        let yc = oy + s * gy as f32;
        let range = row..row + nx;
        for_each_diff(&below.sign[range.clone()], &above.sign[range], |x| {
            let i = row + x;
            let t = crossing(v0[i], v1[i]);
            let gx = x + fx;
            let p = [ox + s * gx as f32, yc, oz + s * (gz as f32 + t)];
            ze[i] = sink.push(p, [gx, gy, gz], 2);
        });
    }
}

/// Emits the triangles of the cells between layers `below` and `above`.
fn slab_cells(
    nx: usize,
    ny: usize,
    below: &Layer,
    above: &Layer,
    ze: &[u32],
    table: &CaseTable,
    triangles: &mut Vec<[u32; 3]>,
) {
    for y in 0..ny - 1 {
        let states = [
            below.rows[y],
            below.rows[y + 1],
            above.rows[y],
            above.rows[y + 1],
        ];
        if states[0] != ROW_MIXED && states.iter().all(|&r| r == states[0]) {
            continue;
        }
        let row = y * nx;
        let (a0, a1) = (
            &below.sign[row..row + nx],
            &below.sign[row + nx..row + 2 * nx],
        );
        let (b0, b1) = (
            &above.sign[row..row + nx],
            &above.sign[row + nx..row + 2 * nx],
        );
        let column =
            |x: usize| SPREAD[usize::from(a0[x] | (a1[x] << 1) | (b0[x] << 2) | (b1[x] << 3))];
        let mut low = column(0);
        for x in 0..nx - 1 {
            let high = column(x + 1);
            let case = low | (high << 1);
            low = high;
            if case == 0 || case == 0xff {
                continue;
            }
            let c = row + x;
            // Same order as EDGE_CORNERS.
            let ev = [
                below.xe[c],
                below.xe[c + nx],
                above.xe[c],
                above.xe[c + nx],
                below.ye[c],
                below.ye[c + 1],
                above.ye[c],
                above.ye[c + 1],
                ze[c],
                ze[c + 1],
                ze[c + nx],
                ze[c + nx + 1],
            ];
            for &[i, j, k] in table.triangles(usize::from(case)) {
                let t = [ev[usize::from(i)], ev[usize::from(j)], ev[usize::from(k)]];
                // Distinct cube edges always carry distinct vertices, so this
                // never fires; it guards the output contract cheaply.
                if t[0] != t[1] && t[1] != t[2] && t[0] != t[2] {
                    triangles.push(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::case_table::{corner_position, EDGE_CORNERS, MAX_TRIS};
    use std::collections::{HashMap, HashSet};
    use std::f64::consts::PI;

    use crate::mesh::geometry::{cross, dot, norm, sub, V3};

    /// Sample positions are computed the way the mesher computes vertex
    /// coordinates, so exact zeros of the SDF land on samples as intended.
    fn grid_from_fn(
        dims: [usize; 3],
        origin: [f32; 3],
        spacing: f32,
        f: impl Fn(V3) -> f64,
    ) -> SdfGrid {
        let mut values = Vec::with_capacity(dims.iter().product());
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    let p = [x, y, z].map(|i| i as f32);
                    let p = [0, 1, 2].map(|a| f64::from(origin[a] + spacing * p[a]));
                    values.push(f(p) as f32);
                }
            }
        }
        SdfGrid {
            dims,
            origin,
            spacing,
            values,
        }
    }

    /// `n`^3 samples spanning `[-half, half]^3`.
    fn cube_grid(n: usize, half: f32, f: impl Fn(V3) -> f64) -> SdfGrid {
        grid_from_fn([n; 3], [-half; 3], 2.0 * half / (n - 1) as f32, f)
    }

    /// Surrounds an `n`^3 block of samples with a layer of `+1`, so that any
    /// surface inside it closes.
    fn padded(inner: &[f32], n: usize) -> SdfGrid {
        let m = n + 2;
        let mut values = vec![1.0; m * m * m];
        for z in 0..n {
            for y in 0..n {
                for x in 0..n {
                    values[(x + 1) + m * ((y + 1) + m * (z + 1))] = inner[x + n * (y + n * z)];
                }
            }
        }
        SdfGrid {
            dims: [m; 3],
            origin: [0.0; 3],
            spacing: 1.0,
            values,
        }
    }

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    struct Stats {
        euler: i64,
        volume: f64,
        components: usize,
        /// Directed edges without a reverse twin.
        boundary: Vec<[u32; 2]>,
    }

    /// Checks that hold for every output, open or closed: valid indices, no
    /// repeated or zero-area or duplicate triangles, each directed edge used
    /// at most once (manifold edges with consistent orientation), no unused
    /// vertices.
    fn check_mesh(m: &IsoMesh) -> Stats {
        let nv = m.vertices.len();
        let mut used = vec![false; nv];
        let mut directed = HashSet::new();
        let mut unique = HashSet::new();
        let mut volume = 0.0;
        let mut parent: Vec<usize> = (0..nv).collect();
        fn find(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        for (ti, t) in m.triangles.iter().enumerate() {
            assert!(
                t.iter().all(|&i| (i as usize) < nv),
                "triangle {ti} {t:?} out of range"
            );
            assert!(
                t[0] != t[1] && t[1] != t[2] && t[0] != t[2],
                "triangle {ti} {t:?} repeats a vertex"
            );
            let p = t.map(|i| m.vertices[i as usize].map(f64::from));
            let n = cross(sub(p[1], p[0]), sub(p[2], p[0]));
            assert!(dot(n, n) > 0.0, "triangle {ti} {t:?} has zero area: {p:?}");
            let mut key = *t;
            key.sort_unstable();
            assert!(unique.insert(key), "duplicate triangle {t:?}");
            for j in 0..3 {
                let e = (t[j], t[(j + 1) % 3]);
                assert!(directed.insert(e), "directed edge {e:?} used twice");
                used[t[j] as usize] = true;
                let (a, b) = (
                    find(&mut parent, t[j] as usize),
                    find(&mut parent, e.1 as usize),
                );
                parent[a] = b;
            }
            volume += dot(p[0], cross(p[1], p[2])) / 6.0;
        }
        assert!(used.iter().all(|&u| u), "mesh has unreferenced vertices");
        let boundary: Vec<[u32; 2]> = directed
            .iter()
            .filter(|&&(a, b)| !directed.contains(&(b, a)))
            .map(|&(a, b)| [a, b])
            .collect();
        let edges = (directed.len() + boundary.len()) / 2;
        let components = (0..nv).filter(|&i| find(&mut parent, i) == i).count();
        Stats {
            euler: nv as i64 - edges as i64 + m.triangles.len() as i64,
            volume,
            components,
            boundary,
        }
    }

    /// A closed mesh: every edge has its reverse twin, and the triangles
    /// around each vertex form one disk (a single cycle of link edges).
    fn check_closed(m: &IsoMesh) -> Stats {
        let stats = check_mesh(m);
        assert!(
            stats.boundary.is_empty(),
            "{} boundary edges, e.g. {:?}",
            stats.boundary.len(),
            &stats.boundary[..stats.boundary.len().min(4)]
        );
        let mut link: Vec<Vec<(u32, u32)>> = vec![Vec::new(); m.vertices.len()];
        for t in &m.triangles {
            for j in 0..3 {
                link[t[j] as usize].push((t[(j + 1) % 3], t[(j + 2) % 3]));
            }
        }
        for (v, l) in link.iter().enumerate() {
            let next: HashMap<u32, u32> = l.iter().copied().collect();
            let start = l[0].0;
            let (mut cur, mut steps) = (start, 0);
            loop {
                cur = next[&cur];
                steps += 1;
                if cur == start || steps > l.len() {
                    break;
                }
            }
            assert_eq!(steps, l.len(), "vertex {v} is not a manifold vertex");
        }
        stats
    }

    fn sphere_sdf(r: f64) -> impl Fn(V3) -> f64 {
        move |p| norm(p) - r
    }

    #[test]
    fn sphere_closed_outward_and_accurate() {
        let r = 0.5;
        for n in [16, 33, 64] {
            let g = cube_grid(n, 1.0, sphere_sdf(r));
            let m = marching_cubes(&g);
            let s = check_closed(&m);
            assert_eq!((s.euler, s.components), (2, 1), "n = {n}");
            let exact = 4.0 / 3.0 * PI * r.powi(3);
            assert!(s.volume > 0.0, "n = {n}: inward orientation");
            // Along an edge the SDF's second derivative is at most 1/|p|, and
            // |p| >= r - h on an edge with an outside end, so the linear
            // root is off by at most h^2 / (8 (r - h)) in SDF value, which
            // for an exact SDF is the distance; plus the t clamp and f32.
            let h = f64::from(g.spacing);
            let tol = h * h / (8.0 * (r - h)) + 1e-4 * h + 1e-6;
            let worst = m
                .vertices
                .iter()
                .map(|v| (norm(v.map(f64::from)) - r).abs())
                .fold(0.0, f64::max);
            assert!(worst <= tol, "n = {n}: vertex off by {worst} > {tol}");
            if n == 64 {
                assert!(worst <= 0.01 * h, "n = {n}: {worst} > 0.01 h");
                let rel = s.volume / exact - 1.0;
                assert!(rel.abs() < 0.01, "n = {n}: volume off by {rel}");
            }
        }
    }

    #[test]
    fn torus_has_genus_one() {
        let (big, small) = (0.5, 0.2);
        let g = cube_grid(64, 0.8, move |p| {
            let q = (p[0] * p[0] + p[1] * p[1]).sqrt() - big;
            (q * q + p[2] * p[2]).sqrt() - small
        });
        let s = check_closed(&marching_cubes(&g));
        assert_eq!((s.euler, s.components), (0, 1));
        let exact = 2.0 * PI * PI * big * small * small;
        let rel = s.volume / exact - 1.0;
        assert!(s.volume > 0.0 && rel.abs() < 0.02, "volume off by {rel}");
    }

    #[test]
    fn clipped_gyroid_is_closed() {
        for k in [4.0, 7.0, 12.0] {
            // 65 samples put one on the origin, where the gyroid is exactly
            // zero, exercising the zero-is-outside rule.
            let g = cube_grid(65, 1.0, move |p| {
                let [x, y, z] = p.map(|c| k * c);
                let gyroid = x.sin() * y.cos() + y.sin() * z.cos() + z.sin() * x.cos();
                gyroid.max(norm(p) - 0.9)
            });
            let m = marching_cubes(&g);
            let s = check_closed(&m);
            let ball = 4.0 / 3.0 * PI * 0.9f64.powi(3);
            assert!(
                s.volume > 0.1 * ball && s.volume < ball,
                "k = {k}: volume {}",
                s.volume
            );
            assert_eq!(s.euler % 2, 0);
        }
    }

    #[test]
    fn random_grids_padded_are_closed() {
        let n = 12;
        for seed in 0..20 {
            let mut r = rng(seed);
            let inner: Vec<f32> = (0..n * n * n).map(|_| (2.0 * r() - 1.0) as f32).collect();
            let s = check_closed(&marching_cubes(&padded(&inner, n)));
            assert!(s.volume > 0.0, "seed {seed}");
            assert_eq!(s.euler % 2, 0, "seed {seed}");
        }
    }

    #[test]
    fn zeros_and_nans_keep_the_mesh_closed() {
        let n = 12;
        for seed in 0..20 {
            let mut r = rng(seed + 100);
            let inner: Vec<f32> = (0..n * n * n)
                .map(|_| match (r() * 5.0) as u32 {
                    0 => 0.0,
                    1 => f32::NAN,
                    2 => -1.0,
                    3 => 1.0,
                    _ => (2.0 * r() - 1.0) as f32,
                })
                .collect();
            let s = check_closed(&marching_cubes(&padded(&inner, n)));
            assert!(s.volume > 0.0, "seed {seed}");
            assert_eq!(s.euler % 2, 0);
        }
    }

    #[test]
    fn random_grids_unpadded_are_open_only_at_the_grid_boundary() {
        let n = 12;
        for seed in 0..10 {
            let mut r = rng(seed + 200);
            let values: Vec<f32> = (0..n * n * n).map(|_| (2.0 * r() - 1.0) as f32).collect();
            let g = SdfGrid {
                dims: [n; 3],
                origin: [-0.3, 0.2, 1.0],
                spacing: 0.1,
                values,
            };
            let m = marching_cubes(&g);
            let s = check_mesh(&m);
            assert!(!s.boundary.is_empty());
            let planes: Vec<[f32; 2]> = (0..3)
                .map(|a| [g.origin[a], g.origin[a] + g.spacing * (n - 1) as f32])
                .collect();
            for [a, b] in s.boundary {
                let (pa, pb) = (m.vertices[a as usize], m.vertices[b as usize]);
                let on_face =
                    (0..3).any(|ax| planes[ax].iter().any(|&c| pa[ax] == c && pb[ax] == c));
                assert!(on_face, "seed {seed}: interior boundary edge {pa:?} {pb:?}");
            }
        }
    }

    #[test]
    fn every_single_cube_case_is_closed_and_outward() {
        for zero_outside in [false, true] {
            for case in 0..256u32 {
                let inner: Vec<f32> = (0..8)
                    .map(|c| {
                        let mag = 0.25 + 0.1 * c as f32;
                        match ((case >> c) & 1 == 1, zero_outside) {
                            (true, _) => -mag,
                            (false, true) => 0.0,
                            (false, false) => mag,
                        }
                    })
                    .collect();
                let m = marching_cubes(&padded(&inner, 2));
                if case == 0 {
                    assert!(m.triangles.is_empty());
                    continue;
                }
                let s = check_closed(&m);
                assert!(s.volume > 0.0, "case {case:#04x}");
                // Each edge-connected group of inside corners becomes one
                // blob bounded by a sphere.
                assert_eq!(s.euler, 2 * s.components as i64, "case {case:#04x}");
                assert_eq!(s.components, inside_components(case), "case {case:#04x}");
            }
        }
    }

    fn inside_components(case: u32) -> usize {
        let mut parent: Vec<usize> = (0..8).collect();
        fn find(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                i = p[i];
            }
            i
        }
        for [a, b] in EDGE_CORNERS {
            let (a, b) = (usize::from(a), usize::from(b));
            if (case >> a) & 1 == 1 && (case >> b) & 1 == 1 {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                parent[ra] = rb;
            }
        }
        (0..8)
            .filter(|&c| (case >> c) & 1 == 1 && find(&mut parent, c) == c)
            .count()
    }

    #[test]
    fn case_table_properties() {
        let table = case_table();
        let mut most = 0;
        for case in 0..256 {
            let tris = table.triangles(case);
            most = most.max(tris.len());
            let crossing: HashSet<u8> = (0..12u8)
                .filter(|&e| {
                    let [a, b] = EDGE_CORNERS[usize::from(e)];
                    (case >> a) & 1 != (case >> b) & 1
                })
                .collect();
            let used: HashSet<u8> = tris.iter().flatten().copied().collect();
            assert_eq!(used, crossing, "case {case:#04x}");
        }
        assert_eq!(most, MAX_TRIS, "MAX_TRIS is not tight");
        // Corner 0 alone: one triangle facing away from corner 0.
        let [t] = table.triangles(1) else {
            panic!("case 1 should be one triangle")
        };
        let mid = |e: u8| {
            let [a, b] = EDGE_CORNERS[usize::from(e)].map(corner_position);
            [0, 1, 2].map(|i| f64::from(0.5 * (a[i] + b[i])))
        };
        let n = cross(sub(mid(t[1]), mid(t[0])), sub(mid(t[2]), mid(t[0])));
        assert!(dot(n, [1.0; 3]) > 0.0);
    }

    #[test]
    fn runs_and_threads_do_not_change_the_output() {
        let g = grid_from_fn([23, 30, 45], [-0.6, -0.8, -1.1], 0.05, |p| {
            let q = [p[0] / 0.5, p[1] / 0.7, p[2]];
            norm(q) - 0.9
        });
        let reference = marching_cubes_runs(&g, 40);
        let s = check_closed(&reference);
        assert_eq!(s.euler, 2);
        for per_run in [1, 2, 3, 7, 16] {
            assert_eq!(
                marching_cubes_runs(&g, per_run),
                reference,
                "per_run {per_run}"
            );
        }
        assert_eq!(marching_cubes(&g), reference);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let flat = SdfGrid {
            dims: [1, 5, 5],
            origin: [0.0; 3],
            spacing: 1.0,
            values: vec![-1.0; 25],
        };
        assert_eq!(marching_cubes(&flat), IsoMesh::default());
        let empty = SdfGrid::default();
        assert_eq!(marching_cubes(&empty), IsoMesh::default());
        let nan = SdfGrid {
            dims: [4, 4, 4],
            origin: [0.0; 3],
            spacing: 1.0,
            values: vec![f32::NAN; 64],
        };
        assert_eq!(marching_cubes(&nan), IsoMesh::default());
        let mut inf = padded(&[f32::NEG_INFINITY; 8], 2);
        inf.values[0] = f32::INFINITY;
        check_closed(&marching_cubes(&inf));
    }

    /// `cargo test --release -- --ignored --nocapture bench`; `MC_BENCH_N`
    /// overrides the resolution.
    #[test]
    #[ignore]
    fn bench_sphere() {
        let n: usize = std::env::var("MC_BENCH_N")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256);
        let g = cube_grid(n, 1.0, sphere_sdf(0.5));
        let mut best = f64::INFINITY;
        let mut mesh = IsoMesh::default();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            mesh = marching_cubes(&g);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let voxels = (n * n * n) as f64;
        println!(
            "marching_cubes {n}^3 sphere, {} threads: {:.1} ms, {:.0} M voxels/s, {} vertices, {} triangles",
            rayon::current_num_threads(),
            best * 1e3,
            voxels / best / 1e6,
            mesh.vertices.len(),
            mesh.triangles.len()
        );
    }
}
