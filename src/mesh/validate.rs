//! Structural checks (the errors) and topology statistics (the report).

use super::{MeshError, TriangleMesh};

/// What [`TriangleMesh::validate`] found. Topology counts ignore triangles
/// with a repeated index, which have no well-defined edges; zero-area
/// triangles with distinct indices take part.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeshInfo {
    pub vertex_count: usize,
    pub triangle_count: usize,
    /// Repeated index or (numerically) zero area.
    pub degenerate_triangles: usize,
    /// Edges used by exactly one triangle.
    pub boundary_edges: usize,
    /// Edges used by three or more triangles.
    pub non_manifold_edges: usize,
    /// Edges shared by two triangles that traverse them in the same
    /// direction, i.e. where the winding (and so the inside/outside sign)
    /// flips between neighbours.
    pub misoriented_edges: usize,
    /// Connected components of triangles that touch at a corner, counted on
    /// welded positions (see [`TriangleMesh::components`]); unreferenced
    /// vertices do not count as components.
    pub components: usize,
    pub unreferenced_vertices: usize,
    /// Closed 2-manifold: no boundary and no non-manifold edges. Orientation
    /// consistency is reported separately in `misoriented_edges`.
    pub watertight: bool,
    pub bbox_min: [f32; 3],
    pub bbox_max: [f32; 3],
    pub surface_area: f64,
}

impl MeshInfo {
    /// What a user should know about before trusting the SDF, one sentence
    /// each; empty for a clean closed mesh. None of these stops the
    /// pipeline: degenerate triangles are skipped and the winding-number
    /// sign stays meaningful on open or non-manifold meshes.
    pub fn issues(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.degenerate_triangles > 0 {
            out.push(format!(
                "{} degenerate triangles (repeated corner or zero area); they are skipped",
                self.degenerate_triangles
            ));
        }
        if self.boundary_edges > 0 {
            out.push(format!(
                "{} boundary edges: the mesh is open; inside/outside follows its generalised winding number, so the holes are closed over in the trained shape (repair the mesh if they must stay open)",
                self.boundary_edges
            ));
        }
        if self.non_manifold_edges > 0 {
            out.push(format!(
                "{} non-manifold edges (shared by three or more triangles)",
                self.non_manifold_edges
            ));
        }
        if self.misoriented_edges > 0 {
            out.push(format!(
                "{} edges where neighbouring triangles disagree on orientation; the sign may flip there",
                self.misoriented_edges
            ));
        }
        if self.unreferenced_vertices > 0 {
            out.push(format!(
                "{} vertices used by no triangle",
                self.unreferenced_vertices
            ));
        }
        out
    }
}

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
    /// Builds a mesh from flat xyz coordinates and flat triangle indices, as
    /// handed over through the C ABI. The result is guaranteed to pass
    /// [`TriangleMesh::validate`].
    pub fn from_arrays(vertices: &[f32], indices: &[u32]) -> Result<Self, MeshError> {
        if vertices.len() % 3 != 0 {
            return Err(MeshError::WrongArrayLength {
                what: "vertex coordinate",
                len: vertices.len(),
            });
        }
        if indices.len() % 3 != 0 {
            return Err(MeshError::WrongArrayLength {
                what: "triangle index",
                len: indices.len(),
            });
        }
        let mesh = TriangleMesh {
            vertices: vertices
                .chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect(),
            triangles: indices
                .chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect(),
        };
        check_structure(&mesh, true)?;
        Ok(mesh)
    }

    /// Fails on what would make later stages misbehave (no triangles, NaN or
    /// infinite coordinates, indices past the vertex array) and otherwise
    /// reports topology and geometry statistics.
    pub fn validate(&self) -> Result<MeshInfo, MeshError> {
        check_structure(self, true)?;

        let mut degenerate = 0;
        let mut surface_area = 0.0;
        let mut edges: Vec<(u64, bool)> = Vec::with_capacity(3 * self.triangles.len());
        let referenced = self.referenced_vertices();
        for (t, tri) in self.triangles.iter().enumerate() {
            if self.is_degenerate(t) {
                degenerate += 1;
            }
            surface_area += self.triangle_area(t);
            let [a, b, c] = *tri;
            if a == b || b == c || a == c {
                continue;
            }
            for (p, q) in [(a, b), (b, c), (c, a)] {
                let key = (u64::from(p.min(q)) << 32) | u64::from(p.max(q));
                edges.push((key, p < q));
            }
        }

        edges.sort_unstable();
        let (mut boundary, mut non_manifold, mut misoriented) = (0, 0, 0);
        for group in edges.chunk_by(|x, y| x.0 == y.0) {
            match group.len() {
                1 => boundary += 1,
                // Sorted, so opposite directions show up as (false, true).
                2 if group[0].1 == group[1].1 => misoriented += 1,
                2 => {}
                _ => non_manifold += 1,
            }
        }

        let mut bbox_min = [f32::INFINITY; 3];
        let mut bbox_max = [f32::NEG_INFINITY; 3];
        for p in &self.vertices {
            for k in 0..3 {
                bbox_min[k] = bbox_min[k].min(p[k]);
                bbox_max[k] = bbox_max[k].max(p[k]);
            }
        }

        Ok(MeshInfo {
            vertex_count: self.vertices.len(),
            triangle_count: self.triangles.len(),
            degenerate_triangles: degenerate,
            boundary_edges: boundary,
            non_manifold_edges: non_manifold,
            misoriented_edges: misoriented,
            components: self.components().count,
            unreferenced_vertices: referenced.iter().filter(|r| !**r).count(),
            watertight: boundary == 0 && non_manifold == 0,
            bbox_min,
            bbox_max,
            surface_area,
        })
    }

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
        let key = |v: usize| self.vertices[v].map(|c| if c == 0.0 { 0 } else { c.to_bits() });
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

    /// Repeated index, or an area that is zero up to rounding. The tolerance
    /// is relative to the longest edge, so it flags exactly collinear or
    /// coincident corners (whose computed cross product is only rounding
    /// noise) and never a real sliver representable in f32.
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
        let e1 = sub(q, p);
        let e2 = sub(r, p);
        let e3 = sub(r, q);
        let longest = dot(e1, e1).max(dot(e2, e2)).max(dot(e3, e3));
        let cross = norm(cross(e1, e2));
        cross <= 1e-12 * longest
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

/// The error checks shared by `validate`, `from_arrays` and the writers.
pub(crate) fn check_structure(
    mesh: &TriangleMesh,
    require_triangles: bool,
) -> Result<(), MeshError> {
    if require_triangles && (mesh.triangles.is_empty() || mesh.vertices.is_empty()) {
        return Err(MeshError::Empty);
    }
    if let Some(index) = mesh
        .vertices
        .iter()
        .position(|p| !p.iter().all(|c| c.is_finite()))
    {
        return Err(MeshError::NonFiniteVertex { index });
    }
    let n = mesh.vertices.len();
    for (triangle, tri) in mesh.triangles.iter().enumerate() {
        if let Some(&index) = tri.iter().find(|&&v| v as usize >= n) {
            return Err(MeshError::IndexOutOfRange {
                triangle,
                index,
                vertex_count: n,
            });
        }
    }
    Ok(())
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
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
    use super::*;
    use crate::mesh::primitives::{icosphere, torus, unit_cube};

    #[test]
    fn closed_cube() {
        let info = unit_cube().validate().unwrap();
        assert_eq!(info.vertex_count, 8);
        assert_eq!(info.triangle_count, 12);
        assert!(info.watertight);
        assert_eq!(info.components, 1);
        assert_eq!(info.boundary_edges, 0);
        assert_eq!(info.non_manifold_edges, 0);
        assert_eq!(info.misoriented_edges, 0);
        assert_eq!(info.degenerate_triangles, 0);
        assert_eq!(info.unreferenced_vertices, 0);
        assert_eq!(info.bbox_min, [-0.5; 3]);
        assert_eq!(info.bbox_max, [0.5; 3]);
        assert!((info.surface_area - 6.0).abs() < 1e-12);
    }

    #[test]
    fn cube_missing_a_face() {
        let mut cube = unit_cube();
        cube.triangles.truncate(10);
        let info = cube.validate().unwrap();
        assert!(!info.watertight);
        assert_eq!(info.boundary_edges, 4);
        assert_eq!(info.components, 1);
        assert!((info.surface_area - 5.0).abs() < 1e-12);
    }

    #[test]
    fn issues_name_what_was_found() {
        assert!(unit_cube().validate().unwrap().issues().is_empty());
        let mut open = unit_cube();
        open.triangles.truncate(10);
        open.triangles.push([0, 0, 1]);
        open.triangles[0].swap(1, 2);
        let issues = open.validate().unwrap().issues();
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(issues[0].starts_with("1 degenerate"));
        assert!(issues[1].contains("boundary edges"));
        assert!(issues[2].contains("orientation"));
        let json = serde_json::to_value(open.validate().unwrap()).unwrap();
        assert_eq!(json["watertight"], false);
        assert_eq!(json["triangle_count"], 11);
    }

    #[test]
    fn components_non_manifold_and_orientation() {
        // Two disjoint cubes.
        let a = unit_cube();
        let mut two = a.clone();
        let offset = two.vertices.len() as u32;
        two.vertices
            .extend(a.vertices.iter().map(|p| [p[0] + 3.0, p[1], p[2]]));
        two.triangles
            .extend(a.triangles.iter().map(|t| t.map(|v| v + offset)));
        two.vertices.push([9.0, 9.0, 9.0]);
        let info = two.validate().unwrap();
        assert_eq!(info.components, 2);
        assert_eq!(info.unreferenced_vertices, 1);
        assert!(info.watertight);

        // A flipped triangle: still watertight, three misoriented edges.
        let mut flipped = unit_cube();
        flipped.triangles[0].swap(1, 2);
        let info = flipped.validate().unwrap();
        assert!(info.watertight);
        assert_eq!(info.misoriented_edges, 3);

        // Three triangles sharing one edge.
        let fin = TriangleMesh {
            vertices: vec![
                [0., 0., 0.],
                [1., 0., 0.],
                [0., 1., 0.],
                [0., -1., 0.],
                [0., 0., 1.],
            ],
            triangles: vec![[0, 1, 2], [1, 0, 3], [0, 1, 4]],
        };
        let info = fin.validate().unwrap();
        assert_eq!(info.non_manifold_edges, 1);
        assert_eq!(info.boundary_edges, 6);
        assert!(!info.watertight);
    }

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

    #[test]
    fn primitives_are_closed_and_consistent() {
        for mesh in [icosphere(0), icosphere(3), torus(1.0, 0.25, 24, 12)] {
            let info = mesh.validate().unwrap();
            assert!(info.watertight);
            assert_eq!(info.misoriented_edges, 0);
            assert_eq!(info.components, 1);
            assert_eq!(info.degenerate_triangles, 0);
        }
    }

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

    #[test]
    fn from_arrays_checks() {
        let v = [0., 0., 0., 1., 0., 0., 0., 1., 0.];
        let m = TriangleMesh::from_arrays(&v, &[0, 1, 2]).unwrap();
        assert_eq!(m.vertices.len(), 3);
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
        assert!(matches!(
            TriangleMesh::from_arrays(&v[..8], &[0, 1, 2]),
            Err(MeshError::WrongArrayLength { len: 8, .. })
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&v, &[0, 1]),
            Err(MeshError::WrongArrayLength { len: 2, .. })
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&v, &[0, 1, 3]),
            Err(MeshError::IndexOutOfRange {
                triangle: 0,
                index: 3,
                vertex_count: 3
            })
        ));
        let mut nan = v;
        nan[4] = f32::NAN;
        assert!(matches!(
            TriangleMesh::from_arrays(&nan, &[0, 1, 2]),
            Err(MeshError::NonFiniteVertex { index: 1 })
        ));
        nan[4] = f32::NEG_INFINITY;
        assert!(matches!(
            TriangleMesh::from_arrays(&nan, &[0, 1, 2]),
            Err(MeshError::NonFiniteVertex { index: 1 })
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&[], &[]),
            Err(MeshError::Empty)
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&v, &[]),
            Err(MeshError::Empty)
        ));
    }

    #[test]
    fn validate_errors() {
        assert!(matches!(
            TriangleMesh::default().validate(),
            Err(MeshError::Empty)
        ));
        let mut m = unit_cube();
        m.vertices[5][2] = f32::NAN;
        assert!(matches!(
            m.validate(),
            Err(MeshError::NonFiniteVertex { index: 5 })
        ));
        let mut m = unit_cube();
        m.triangles[4][1] = 8;
        let err = m.validate().unwrap_err();
        assert!(matches!(
            err,
            MeshError::IndexOutOfRange {
                triangle: 4,
                index: 8,
                vertex_count: 8
            }
        ));
        assert_eq!(
            err.to_string(),
            "triangle 4 refers to vertex 8, but the mesh has only 8 vertices"
        );
    }
}
