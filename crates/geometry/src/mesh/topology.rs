//! Topology: the connected components of a surface, counted on welded
//! positions.

use super::geometry::weld_key;
use super::TriangleMesh;

/// What [`TriangleMesh::components`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Components {
    pub count: usize,
    /// Per triangle, its component (numbered by first triangle), or
    /// `u32::MAX` for a triangle with an out-of-range index.
    pub triangle_component: Vec<u32>,
    /// Surface area of each component.
    pub areas: Vec<f64>,
}

impl Components {
    /// Components holding at least `share` of the total surface area. A
    /// count that ignores the crumbs marching cubes leaves of features
    /// thinner than a grid cell, and the tiny parts of a reference that no
    /// reconstruction at a finite resolution can be expected to reproduce.
    pub fn significant(&self, share: f64) -> usize {
        let total: f64 = self.areas.iter().sum();
        self.areas.iter().filter(|&&a| a >= share * total).count()
    }
}

impl TriangleMesh {
    /// Connected components of the surface: triangles are connected when
    /// they share a corner *position*, not only a vertex index. Loaders
    /// differ in how they index: the STL loader welds bit-identical corners,
    /// OBJ, PLY and OFF keep the file's indices, and some exporters write
    /// every triangle with its own three vertices; marching cubes welds by
    /// grid edge. Counting on welded positions gives every one of them the
    /// same answer, so a reference and a reconstruction are compared alike
    /// and duplicated vertices never split a surface. (+0.0 and -0.0 are one
    /// position, as in the STL welder.) Triangles with out-of-range indices
    /// get no component.
    pub fn components(&self) -> Components {
        let n = self.vertices.len();
        let mut sets = UnionFind::new(n);
        // Equal positions joined through a sort rather than a hash map:
        // deterministic and without per-vertex allocation.
        let key = |v: usize| weld_key(self.vertices[v]);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&v| key(v as usize));
        for pair in order.windows(2) {
            if key(pair[0] as usize) == key(pair[1] as usize) {
                sets.union(pair[0], pair[1]);
            }
        }
        let valid = |tri: &[u32; 3]| tri.iter().all(|&v| (v as usize) < n);
        for tri in self.triangles.iter().filter(|t| valid(t)) {
            sets.union(tri[0], tri[1]);
            sets.union(tri[1], tri[2]);
        }
        // Components numbered in order of their first triangle.
        let mut number = vec![u32::MAX; n];
        let mut areas = Vec::new();
        let mut triangle_component = Vec::with_capacity(self.triangles.len());
        for (t, tri) in self.triangles.iter().enumerate() {
            if !valid(tri) {
                triangle_component.push(u32::MAX);
                continue;
            }
            let root = sets.find(tri[0]) as usize;
            if number[root] == u32::MAX {
                number[root] = areas.len() as u32;
                areas.push(0.0);
            }
            let c = number[root];
            areas[c as usize] += self.triangle_area(t);
            triangle_component.push(c);
        }
        Components {
            count: areas.len(),
            triangle_component,
            areas,
        }
    }
}

struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        // Path halving keeps trees shallow without recursion.
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        // Smaller root wins: deterministic, and good enough with halving.
        if ra != rb {
            self.parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::mesh::primitives::unit_cube;
    use crate::mesh::TriangleMesh;

    /// Every triangle with its own three vertices, as some exporters write.
    fn soup(mesh: &TriangleMesh) -> TriangleMesh {
        let mut out = TriangleMesh::default();
        for tri in &mesh.triangles {
            let base = out.vertices.len() as u32;
            out.vertices
                .extend(tri.iter().map(|&v| mesh.vertices[v as usize]));
            out.triangles.push([base, base + 1, base + 2]);
        }
        out
    }

    #[test]
    fn components_count_welded_positions() {
        let cube = unit_cube();
        let mut two = cube.clone();
        let offset = two.vertices.len() as u32;
        two.vertices
            .extend(cube.vertices.iter().map(|p| [p[0] + 3.0, p[1] * 0.1, p[2]]));
        two.triangles
            .extend(cube.triangles.iter().map(|t| t.map(|v| v + offset)));
        // Unwelded: 12 triangles with 36 vertices are still one cube.
        assert_eq!(soup(&cube).components().count, 1);
        assert_eq!(soup(&cube).validate().unwrap().components, 1);
        let c = soup(&two).components();
        assert_eq!(c.count, 2);
        assert_eq!(c.triangle_component[..12], [0; 12]);
        assert_eq!(c.triangle_component[12..], [1; 12]);
        // The flat box has area 2*(0.1 + 1 + 0.1) = 2.4 against 6.
        assert!((c.areas[0] - 6.0).abs() < 1e-9 && (c.areas[1] - 2.4).abs() < 1e-6);
        assert_eq!(c.significant(0.1), 2);
        assert_eq!(c.significant(0.3), 1);
        // -0.0 and +0.0 are one position.
        let flat = TriangleMesh {
            vertices: vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [-0.0, 0.0, 0.0],
                [0.0, -1.0, 0.0],
                [1.0, 0.0, 0.0],
            ],
            triangles: vec![[0, 1, 2], [3, 4, 5]],
        };
        assert_eq!(flat.components().count, 1);
    }
}
