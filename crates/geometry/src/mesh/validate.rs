//! Structural checks (the errors) and the statistics of a mesh (the
//! report): what a user should know before trusting the SDF.

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
                "{} boundary edges: the mesh is open; inside/outside follows its generalised winding number, so the holes are closed over in its signed distance and in a solid trained on it (repair the mesh if they must stay open)",
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

impl TriangleMesh {
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
            "triangle 4 refers to vertex 8, but the mesh has only 8 vertices; \
             indices start at 0 and must be below the vertex count"
        );
    }
}
