//! The similarity transform that puts a shape into the unit sphere, where
//! the network is trained, and maps results back to the user's units.

use super::TriangleMesh;

/// How the centre of the normalised frame is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Centring {
    /// Mean of all vertex positions; biased towards densely tessellated
    /// regions.
    VertexMean,
    /// Centre of the axis-aligned bounding box; the tighter fit for most
    /// shapes, hence the default.
    #[default]
    BoundingBox,
}

/// `normalised = (p - centre) * scale`. SDF values computed in the
/// normalised frame are distances scaled by `scale`, so they map back by
/// dividing (see [`Normalisation::distance_to_original`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    pub centre: [f64; 3],
    pub scale: f64,
}

impl Default for Normalisation {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Normalisation {
    pub const IDENTITY: Normalisation = Normalisation {
        centre: [0.0; 3],
        scale: 1.0,
    };

    /// Fits the shape into the unit sphere: the vertex farthest from the
    /// centre lands at radius `1 / (1 + margin)`, i.e.
    /// `scale = 1 / (max_dist * (1 + margin))`. `margin = 0` is the plain
    /// unit-sphere fit.
    ///
    /// Never fails: non-finite vertices are ignored, a negative or non-finite
    /// margin counts as 0, an empty mesh gives the identity and a mesh
    /// collapsed to one point gets scale 1 about that point.
    pub fn fit(mesh: &TriangleMesh, centring: Centring, margin: f64) -> Normalisation {
        // The surface's vertices only: a stray vertex far away (unreferenced
        // by any triangle) would otherwise shrink the shape to a point in
        // the unit sphere and every distance to infinity. A point cloud (no
        // triangles) uses all its points.
        let used = if mesh.triangles.is_empty() {
            vec![true; mesh.vertices.len()]
        } else {
            mesh.referenced_vertices()
        };
        let finite = || {
            mesh.vertices
                .iter()
                .zip(&used)
                .filter(|(p, &u)| u && p.iter().all(|c| c.is_finite()))
                .map(|(p, _)| p.map(f64::from))
        };
        let count = finite().count();
        if count == 0 {
            return Self::IDENTITY;
        }
        let centre = match centring {
            Centring::VertexMean => {
                let mut sum = [0.0; 3];
                for p in finite() {
                    for k in 0..3 {
                        sum[k] += p[k];
                    }
                }
                sum.map(|s| s / count as f64)
            }
            Centring::BoundingBox => {
                let mut lo = [f64::INFINITY; 3];
                let mut hi = [f64::NEG_INFINITY; 3];
                for p in finite() {
                    for k in 0..3 {
                        lo[k] = lo[k].min(p[k]);
                        hi[k] = hi[k].max(p[k]);
                    }
                }
                // Halving first keeps extreme f32 ranges from overflowing.
                [0, 1, 2].map(|k| lo[k] * 0.5 + hi[k] * 0.5)
            }
        };
        let max_dist = finite()
            .map(|p| {
                let d = [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]];
                (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
            })
            .fold(0.0, f64::max);
        let margin = if margin.is_finite() && margin > 0.0 {
            margin
        } else {
            0.0
        };
        let scale = 1.0 / (max_dist * (1.0 + margin));
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Normalisation { centre, scale }
    }

    /// The transform that changes nothing, for data already in the unit
    /// sphere.
    pub const fn identity() -> Normalisation {
        Self::IDENTITY
    }

    /// The paper's setting: bounding-box centre, farthest vertex on the
    /// unit sphere.
    pub fn unit_sphere(mesh: &TriangleMesh) -> Normalisation {
        Self::fit(mesh, Centring::BoundingBox, 0.0)
    }

    pub fn to_normalised(&self, p: [f64; 3]) -> [f64; 3] {
        [0, 1, 2].map(|k| (p[k] - self.centre[k]) * self.scale)
    }

    pub fn to_original(&self, p: [f64; 3]) -> [f64; 3] {
        [0, 1, 2].map(|k| p[k] / self.scale + self.centre[k])
    }

    /// A distance (or SDF value) measured in the normalised frame, in the
    /// original units.
    pub fn distance_to_original(&self, d: f64) -> f64 {
        d / self.scale
    }

    pub fn distance_to_normalised(&self, d: f64) -> f64 {
        d * self.scale
    }

    /// The mesh in the normalised frame (computed in f64, stored as f32).
    pub fn apply_to_mesh(&self, mesh: &TriangleMesh) -> TriangleMesh {
        self.map_mesh(mesh, |p| self.to_normalised(p))
    }

    /// The inverse of [`Normalisation::apply_to_mesh`], e.g. for a mesh
    /// extracted from the network's SDF.
    pub fn invert_mesh(&self, mesh: &TriangleMesh) -> TriangleMesh {
        self.map_mesh(mesh, |p| self.to_original(p))
    }

    fn map_mesh(&self, mesh: &TriangleMesh, f: impl Fn([f64; 3]) -> [f64; 3]) -> TriangleMesh {
        TriangleMesh {
            vertices: mesh
                .vertices
                .iter()
                .map(|p| f(p.map(f64::from)).map(|c| c as f32))
                .collect(),
            triangles: mesh.triangles.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::{torus, unit_cube};

    fn radius(p: [f64; 3]) -> f64 {
        (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
    }

    fn shifted_torus() -> TriangleMesh {
        let mut m = torus(3.0, 1.0, 16, 8);
        for p in &mut m.vertices {
            p[0] = p[0] * 2.0 + 10.0;
            p[1] -= 7.5;
            p[2] = p[2] * 0.5 + 100.0;
        }
        m
    }

    #[test]
    fn farthest_vertex_at_unit_radius_and_round_trip() {
        let mesh = shifted_torus();
        for centring in [Centring::VertexMean, Centring::BoundingBox] {
            let n = Normalisation::fit(&mesh, centring, 0.0);
            let max_r = mesh
                .vertices
                .iter()
                .map(|p| radius(n.to_normalised(p.map(f64::from))))
                .fold(0.0, f64::max);
            assert!((max_r - 1.0).abs() < 1e-12, "{centring:?}: {max_r}");
            for p in &mesh.vertices {
                let p = p.map(f64::from);
                let back = n.to_original(n.to_normalised(p));
                for k in 0..3 {
                    assert!((back[k] - p[k]).abs() <= 1e-6 * p[k].abs().max(1.0));
                }
            }
            let there = n.apply_to_mesh(&mesh);
            let max_r32 = there
                .vertices
                .iter()
                .map(|p| radius(p.map(f64::from)))
                .fold(0.0, f64::max);
            assert!((max_r32 - 1.0).abs() < 1e-6);
            let back = n.invert_mesh(&there);
            assert_eq!(back.triangles, mesh.triangles);
            for (a, b) in back.vertices.iter().zip(&mesh.vertices) {
                for k in 0..3 {
                    assert!(
                        (a[k] - b[k]).abs() <= 1e-6 * b[k].abs().max(1.0),
                        "{a:?} {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn centres_and_margin() {
        let cube = unit_cube();
        let n = Normalisation::fit(&cube, Centring::BoundingBox, 0.0);
        assert_eq!(n.centre, [0.0; 3]);
        assert!((n.scale - 1.0 / 0.75f64.sqrt()).abs() < 1e-12);
        let m = Normalisation::fit(&cube, Centring::BoundingBox, 0.25);
        assert!((m.scale * 1.25 - n.scale).abs() < 1e-12);
        // Margin 0.25 puts the farthest corner at radius 0.8.
        assert!((radius(m.to_normalised([0.5; 3])) - 0.8).abs() < 1e-12);
        // Mean and box centre differ when tessellation is lopsided.
        let mut lopsided = cube.clone();
        lopsided.vertices.extend([[0.5, 0.5, 0.4], [0.5, 0.5, 0.3]]);
        lopsided.triangles.push([7, 8, 9]);
        // A vertex no triangle uses is not part of the surface's frame.
        let mut stray = cube.clone();
        stray.vertices.push([100.0, 0.0, 0.0]);
        assert_eq!(Normalisation::fit(&stray, Centring::VertexMean, 0.0), n);
        let mean = Normalisation::fit(&lopsided, Centring::VertexMean, 0.0);
        let bbox = Normalisation::fit(&lopsided, Centring::BoundingBox, 0.0);
        assert_eq!(bbox.centre, [0.0; 3]);
        assert!(mean.centre[0] > 0.0);
        assert_eq!(Centring::default(), Centring::BoundingBox);
        assert_eq!(Normalisation::unit_sphere(&lopsided), bbox);
    }

    #[test]
    fn distances_scale_back() {
        let n = Normalisation {
            centre: [1.0, 2.0, 3.0],
            scale: 0.25,
        };
        // A point at normalised distance 0.5 from the centre is 2 units away.
        let p = n.to_original([0.5, 0.0, 0.0]);
        assert_eq!(p, [3.0, 2.0, 3.0]);
        assert_eq!(n.distance_to_original(0.5), 2.0);
        assert_eq!(n.distance_to_normalised(2.0), 0.5);
        assert_eq!(n.distance_to_original(-0.5), -2.0);
        let id = Normalisation::identity();
        assert_eq!(id, Normalisation::default());
        assert_eq!(id.to_normalised([1.5, -2.0, 3.0]), [1.5, -2.0, 3.0]);
    }

    #[test]
    fn degenerate_inputs_never_produce_nan() {
        let empty = TriangleMesh::default();
        assert_eq!(
            Normalisation::fit(&empty, Centring::VertexMean, 0.0),
            Normalisation::IDENTITY
        );
        let point = TriangleMesh {
            vertices: vec![[2.0, 3.0, 4.0]; 3],
            triangles: vec![[0, 1, 2]],
        };
        let n = Normalisation::fit(&point, Centring::BoundingBox, 0.0);
        assert_eq!(n.centre, [2.0, 3.0, 4.0]);
        assert_eq!(n.scale, 1.0);
        let mut with_nan = unit_cube();
        with_nan.vertices.push([f32::NAN, 1e30, 0.0]);
        let n = Normalisation::fit(&with_nan, Centring::VertexMean, f64::NAN);
        assert!(n.scale.is_finite() && n.centre.iter().all(|c| c.is_finite()));
        let n = Normalisation::fit(&unit_cube(), Centring::BoundingBox, -3.0);
        assert!((n.scale - 1.0 / 0.75f64.sqrt()).abs() < 1e-12);
        // Extreme but finite f32 coordinates stay finite.
        let huge = TriangleMesh {
            vertices: vec![
                [f32::MAX, -f32::MAX, f32::MAX],
                [-f32::MAX, f32::MAX, -f32::MAX],
            ],
            triangles: vec![],
        };
        let n = Normalisation::fit(&huge, Centring::BoundingBox, 0.0);
        assert!(n.scale.is_finite() && n.scale > 0.0);
    }
}
