//! Cleaning a mesh for the later stages: which vertices the surface uses,
//! and the mesh without its degenerate triangles.

use super::geometry::is_degenerate_triangle;
use super::TriangleMesh;

impl TriangleMesh {
    /// Per vertex, whether some triangle uses it: the surface's vertices,
    /// as opposed to stray ones. Out-of-range indices are ignored.
    pub fn referenced_vertices(&self) -> Vec<bool> {
        let mut used = vec![false; self.vertices.len()];
        for &v in self.triangles.iter().flatten() {
            if let Some(u) = used.get_mut(v as usize) {
                *u = true;
            }
        }
        used
    }

    /// Positions of the vertices some triangle uses, in index order.
    pub fn used_vertex_positions(&self) -> Vec<[f32; 3]> {
        self.vertices
            .iter()
            .zip(self.referenced_vertices())
            .filter_map(|(v, u)| u.then_some(*v))
            .collect()
    }

    /// The mesh without degenerate triangles, and how many were removed.
    /// Vertices are kept as they are so indices stay meaningful to callers;
    /// triangles with out-of-range indices are dropped (and counted) too,
    /// since nothing sensible can be done with them.
    pub fn without_degenerate(&self) -> (TriangleMesh, usize) {
        let n = self.vertices.len();
        let triangles: Vec<[u32; 3]> = self
            .triangles
            .iter()
            .enumerate()
            .filter(|(t, tri)| tri.iter().all(|&v| (v as usize) < n) && !self.is_degenerate(*t))
            .map(|(_, tri)| *tri)
            .collect();
        let removed = self.triangles.len() - triangles.len();
        (
            TriangleMesh {
                vertices: self.vertices.clone(),
                triangles,
            },
            removed,
        )
    }

    /// Repeated index, or an area that is zero up to rounding
    /// ([`is_degenerate_triangle`]: relative to the longest edge, so exactly
    /// collinear or coincident corners and never a real sliver representable
    /// in f32).
    pub(crate) fn is_degenerate(&self, t: usize) -> bool {
        let Some([a, b, c]) = self.triangles.get(t).copied() else {
            return true;
        };
        if a == b || b == c || a == c {
            return true;
        }
        let Some([p, q, r]) = self.corners(t) else {
            return true;
        };
        is_degenerate_triangle(p, q, r)
    }

    /// The three corners of triangle `t` in f64, or `None` if it refers to
    /// a vertex that does not exist.
    pub(crate) fn corners(&self, t: usize) -> Option<[[f64; 3]; 3]> {
        let tri = self.triangles.get(t)?;
        let mut out = [[0.0; 3]; 3];
        for (o, &v) in out.iter_mut().zip(tri) {
            *o = self.vertices.get(v as usize)?.map(f64::from);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::mesh::primitives::unit_cube;
    use crate::mesh::TriangleMesh;

    #[test]
    fn degenerate_triangles_counted_and_removed() {
        let mut m = unit_cube();
        m.vertices.push([0.5, 0.5, 0.5]); // duplicates vertex position of a corner
        let dup = (m.vertices.len() - 1) as u32;
        let corner = m
            .vertices
            .iter()
            .position(|p| *p == [0.5, 0.5, 0.5])
            .unwrap() as u32;
        m.vertices.push([0.0, 0.0, 0.0]);
        let mid = (m.vertices.len() - 1) as u32;
        let far = m
            .vertices
            .iter()
            .position(|p| *p == [-0.5, -0.5, -0.5])
            .unwrap() as u32;
        m.triangles.push([0, 0, 1]); // repeated index
        m.triangles.push([corner, dup, 2]); // coincident corners
        m.triangles.push([far, mid, corner]); // collinear through the centre
        let info = m.validate().unwrap();
        assert_eq!(info.degenerate_triangles, 3);
        let (clean, removed) = m.without_degenerate();
        assert_eq!(removed, 3);
        assert_eq!(clean.triangles, unit_cube().triangles);
        assert_eq!(clean.vertices.len(), m.vertices.len());

        // A thin but real sliver is kept.
        let sliver = TriangleMesh {
            vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 1e-6, 0.0]],
            triangles: vec![[0, 1, 2]],
        };
        assert_eq!(sliver.validate().unwrap().degenerate_triangles, 0);

        let bad = TriangleMesh {
            vertices: vec![[0.0; 3]; 3],
            triangles: vec![[0, 1, 7]],
        };
        assert_eq!(bad.without_degenerate().1, 1);
    }
}
