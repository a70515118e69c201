//! The cell grid: exact winding numbers at cell centres of a closed mesh,
//! so that a near-surface query counts the crossings inside its own cell.

use super::build::bounds;
use super::ray::crossing;
use super::WindingBvh;
use crate::sdf::vec3::{l1, sub, V3};

/// Uniform grid over a closed mesh for local winding numbers.
///
/// Every cell lists the triangles whose (slightly grown) boxes overlap it and
/// knows the exact winding number at its centre. On a closed mesh the
/// winding number jumps by exactly the crossing sign where a segment crosses
/// a triangle, so for p in a cell, w(p) = w(centre) + signed crossings of
/// the segment p -> centre; that segment stays inside the (convex) cell, so
/// only the cell's own triangles can cross it. A near-surface query thus
/// tests a handful of triangles instead of descending the tree for a ray.
///
/// The centres' winding numbers come from sweeping each grid row from a
/// margin cell outside the mesh box (winding number 0 for a closed mesh) and
/// adding the crossings between neighbouring centres; a crossing that cannot
/// be certified is replaced by one exact ray evaluation.
pub(crate) struct CellGrid {
    /// Centre of cell (0, 0, 0).
    origin: V3,
    /// Cell edge length (cubic cells).
    step: f64,
    /// Slack for the cell-membership test of queries: half the growth of
    /// the triangle boxes, so a query accepted for a cell is covered by the
    /// cell's triangle list despite rounding.
    slack: f64,
    n: [usize; 3],
    /// CSR triangle lists per cell (x fastest), indices into `tris`,
    /// ascending within a cell.
    start: Vec<u32>,
    items: Vec<u32>,
    /// Winding number at each cell centre; NaN where not certified.
    w: Vec<f64>,
}

impl CellGrid {
    /// Cells per axis for the longest box side: about 0.3 sqrt(triangles),
    /// which leaves a few triangles in each cell a surface passes through.
    fn resolution(triangles: usize) -> usize {
        ((triangles as f64).sqrt() * 0.3).clamp(8.0, 128.0) as usize
    }

    fn cell_index(&self, c: [usize; 3]) -> usize {
        flat_index(self.n, c)
    }

    fn centre(&self, c: [usize; 3]) -> V3 {
        [0, 1, 2].map(|k| self.origin[k] + c[k] as f64 * self.step)
    }

    fn cell_tris(&self, i: usize) -> &[u32] {
        let (Some(&s), Some(&e)) = (self.start.get(i), self.start.get(i + 1)) else {
            return &[];
        };
        self.items.get(s as usize..e as usize).unwrap_or(&[])
    }

    /// Exact winding number at `p` from its cell, or None when `p` is
    /// outside the grid, the cell's centre value is unknown, or a crossing
    /// is uncertain (the caller then falls back to a ray).
    pub(crate) fn winding(&self, bvh: &WindingBvh, p: V3) -> Option<f64> {
        let mut c = [0usize; 3];
        for k in 0..3 {
            let t = ((p[k] - self.origin[k]) / self.step).round();
            if !(t >= 0.0 && t < self.n[k] as f64) {
                return None;
            }
            c[k] = t as usize;
        }
        let q = self.centre(c);
        if (0..3).any(|k| (p[k] - q[k]).abs() > 0.5 * self.step + self.slack) {
            return None;
        }
        let i = self.cell_index(c);
        let wq = *self.w.get(i)?;
        if wq.is_nan() {
            return None;
        }
        let u = sub(q, p);
        let lu = l1(u);
        let mut count = 0i64;
        for &t in self.cell_tris(i) {
            count += crossing(p, u, lu, bvh.tris.get(t as usize)?, Some(q))?;
        }
        Some(wq + count as f64)
    }
}

/// Index of cell `c` in a grid of `n` cells per axis, x fastest.
fn flat_index(n: [usize; 3], c: [usize; 3]) -> usize {
    c[0] + n[0] * (c[1] + n[1] * c[2])
}

impl WindingBvh {
    /// Builds the [`CellGrid`]; None for an empty or open mesh (the grid's
    /// identity needs a closed one) or an unreasonably large grid.
    pub(crate) fn cell_grid(&self) -> Option<CellGrid> {
        if self.tris.is_empty() || self.boundary_edges != 0 {
            return None;
        }
        let (lo, hi) = bounds(&self.tris);
        let extent = (0..3).map(|k| hi[k] - lo[k]).fold(0.0, f64::max);
        let res = CellGrid::resolution(self.tris.len());
        let step = extent / res as f64;
        if !(step > 0.0 && step.is_finite()) {
            return None;
        }
        // One margin cell on each side: its centre lies outside the mesh
        // box, where a closed mesh has winding number 0.
        let n = [0, 1, 2].map(|k| ((hi[k] - lo[k]) / step).ceil().max(1.0) as usize + 2);
        let origin = [0, 1, 2].map(|k| lo[k] - 0.5 * step);
        let cells = n[0] * n[1] * n[2];
        if cells > 1 << 24 {
            return None;
        }
        let max_coord = lo.iter().chain(&hi).fold(0.0f64, |m, x| m.max(x.abs()));
        let grow = 1e-9 * extent + 1e-12 * max_coord;
        // Cell ranges per triangle: corner of cell c spans
        // origin + (c - 1/2) step .. origin + (c + 1/2) step.
        let range = |t: &[V3; 3]| {
            let (tlo, thi) = bounds(std::slice::from_ref(t));
            let idx = |x: f64, k: usize| {
                let f = ((x - origin[k]) / step + 0.5).floor();
                (f.max(0.0) as usize).min(n[k] - 1)
            };
            let a = [0, 1, 2].map(|k| idx(tlo[k] - grow, k));
            let b = [0, 1, 2].map(|k| idx(thi[k] + grow, k));
            (a, b)
        };
        let each_cell = |t: &[V3; 3], f: &mut dyn FnMut(usize)| {
            let (a, b) = range(t);
            for z in a[2]..=b[2] {
                for y in a[1]..=b[1] {
                    for x in a[0]..=b[0] {
                        f(flat_index(n, [x, y, z]));
                    }
                }
            }
        };
        let mut counts = vec![0u32; cells + 1];
        for t in &self.tris {
            each_cell(t, &mut |i| counts[i + 1] += 1);
        }
        for i in 0..cells {
            counts[i + 1] += counts[i];
        }
        let total = counts[cells] as usize;
        let mut fill = counts.clone();
        let mut items = vec![0u32; total];
        for (ti, t) in self.tris.iter().enumerate() {
            each_cell(t, &mut |i| {
                items[fill[i] as usize] = ti as u32;
                fill[i] += 1;
            });
        }
        let mut grid = CellGrid {
            origin,
            step,
            slack: 0.5 * grow,
            n,
            start: counts,
            items,
            w: vec![f64::NAN; cells],
        };

        // Sweep rows along x, in parallel.
        use rayon::prelude::*;
        let rows: Vec<Vec<f64>> = (0..n[1] * n[2])
            .into_par_iter()
            .map(|r| {
                let (y, z) = (r % n[1], r / n[1]);
                let mut row = vec![f64::NAN; n[0]];
                // Cell 0's centre is outside the mesh box.
                row[0] = 0.0;
                for x in 1..n[0] {
                    let prev = grid.centre([x - 1, y, z]);
                    let cur = grid.centre([x, y, z]);
                    let step_w = if row[x - 1].is_nan() {
                        None
                    } else {
                        let a = grid.cell_tris(grid.cell_index([x - 1, y, z]));
                        let b = grid.cell_tris(grid.cell_index([x, y, z]));
                        self.merged_crossings(cur, prev, a, b)
                            .map(|c| row[x - 1] + c as f64)
                    };
                    row[x] = step_w.unwrap_or_else(|| {
                        let w = self.winding_fast(cur, [1.0, 0.0, 0.0]);
                        let r = w.round();
                        // Off the surface a closed mesh's winding number
                        // is an integer; a centre on the surface has none.
                        if (w - r).abs() < 1e-6 {
                            r
                        } else {
                            f64::NAN
                        }
                    });
                }
                row
            })
            .collect();
        for (r, row) in rows.into_iter().enumerate() {
            let s = r * n[0];
            grid.w[s..s + n[0]].copy_from_slice(&row);
        }
        Some(grid)
    }

    /// Signed crossings of the segment p -> q with the union of two
    /// ascending triangle lists (each triangle once).
    fn merged_crossings(&self, p: V3, q: V3, a: &[u32], b: &[u32]) -> Option<i64> {
        let u = sub(q, p);
        let lu = l1(u);
        let (mut i, mut j) = (0, 0);
        let mut count = 0;
        while i < a.len() || j < b.len() {
            let t = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) if x == y => {
                    i += 1;
                    j += 1;
                    x
                }
                (Some(&x), Some(&y)) if x < y => {
                    i += 1;
                    x
                }
                (Some(&x), None) => {
                    i += 1;
                    x
                }
                (_, Some(&y)) => {
                    j += 1;
                    y
                }
                (None, None) => break,
            };
            count += crossing(p, u, lu, self.tris.get(t as usize)?, Some(q))?;
        }
        Some(count)
    }
}
