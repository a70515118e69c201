//! Area-weighted surface sampling helpers shared by the sampling and metrics
//! stages. Random numbers come from the caller so that this module stays
//! deterministic and RNG-agnostic.

use super::geometry::{cross, dot, norm, sub};
use super::TriangleMesh;

impl TriangleMesh {
    /// Area of triangle `t` in f64; 0 for a triangle that refers to a
    /// missing vertex, so such triangles are never sampled.
    pub fn triangle_area(&self, t: usize) -> f64 {
        match self.corners(t) {
            Some([p, q, r]) => 0.5 * norm(cross(sub(q, p), sub(r, p))),
            None => 0.0,
        }
    }

    pub fn triangle_areas(&self) -> Vec<f64> {
        (0..self.triangles.len())
            .map(|t| self.triangle_area(t))
            .collect()
    }

    /// Unit normal of triangle `t` following its winding (counter-clockwise
    /// seen from outside for outward-oriented meshes); zero when degenerate.
    pub fn triangle_normal(&self, t: usize) -> [f64; 3] {
        let Some([p, q, r]) = self.corners(t) else {
            return [0.0; 3];
        };
        let n = cross(sub(q, p), sub(r, p));
        let len = norm(n);
        if len > 0.0 && len.is_finite() {
            n.map(|c| c / len)
        } else {
            [0.0; 3]
        }
    }

    /// Cumulative triangle areas normalised to end at exactly 1, one entry
    /// per triangle, for [`TriangleMesh::sample_surface`].
    ///
    /// If the total area is zero or not finite every triangle gets equal
    /// weight instead, so sampling still yields points on the mesh; an empty
    /// mesh gives an empty vector.
    pub fn area_weighted_cdf(&self) -> Vec<f64> {
        let areas = self.triangle_areas();
        let total: f64 = areas.iter().sum();
        let mut cdf = Vec::with_capacity(areas.len());
        let mut acc = 0.0;
        if total > 0.0 && total.is_finite() {
            for a in areas {
                acc += a;
                cdf.push(acc / total);
            }
        } else {
            let n = areas.len() as f64;
            for i in 0..areas.len() {
                cdf.push((i + 1) as f64 / n);
            }
        }
        // Rounding can leave the last entry a hair below 1, which would make
        // u[0] values just under 1 fall off the end.
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        cdf
    }

    /// Maps three uniforms in [0, 1) to a point distributed uniformly over
    /// the surface, returning the point and its triangle index.
    ///
    /// `u[0]` picks the triangle by binary search in `cdf` (from
    /// [`TriangleMesh::area_weighted_cdf`]); `u[1]` and `u[2]` place the
    /// point with the square-root trick, which is uniform in the triangle.
    /// Out-of-range or NaN uniforms are clamped rather than trusted. For an
    /// empty mesh or cdf this returns the origin and index 0: callers are
    /// expected to have validated the mesh.
    pub fn sample_surface(&self, cdf: &[f64], u: [f64; 3]) -> ([f32; 3], usize) {
        let n = cdf.len().min(self.triangles.len());
        if n == 0 {
            return ([0.0; 3], 0);
        }
        let u0 = unit(u[0]);
        // First triangle whose cumulative weight exceeds u0; zero-area
        // triangles have no such range and are never chosen.
        let t = cdf[..n].partition_point(|&c| c <= u0).min(n - 1);
        let Some([p, q, r]) = self.corners(t) else {
            return ([0.0; 3], t);
        };
        let s = unit(u[1]).sqrt();
        let v = unit(u[2]);
        let (a, b, c) = (1.0 - s, s * (1.0 - v), s * v);
        let point = [0, 1, 2].map(|k| (a * p[k] + b * q[k] + c * r[k]) as f32);
        (point, t)
    }

    /// Signed volume enclosed by the surface (divergence theorem); positive
    /// for a closed, outward-oriented mesh. A cheap orientation check.
    pub fn signed_volume(&self) -> f64 {
        (0..self.triangles.len())
            .filter_map(|t| self.corners(t))
            .map(|[p, q, r]| dot(p, cross(q, r)) / 6.0)
            .sum()
    }
}

fn unit(x: f64) -> f64 {
    if x >= 0.0 {
        x.min(1.0)
    } else {
        // Negative and NaN both land here.
        0.0
    }
}

#[cfg(test)]
mod tests {
    use crate::mesh::primitives::{icosphere, unit_cube};
    use crate::mesh::test_util::Lcg;
    use crate::mesh::TriangleMesh;

    #[test]
    fn areas_and_cdf() {
        let cube = unit_cube();
        let areas = cube.triangle_areas();
        assert_eq!(areas.len(), 12);
        assert!(areas.iter().all(|a| (a - 0.5).abs() < 1e-12));
        let cdf = cube.area_weighted_cdf();
        assert_eq!(cdf.len(), 12);
        assert_eq!(*cdf.last().unwrap(), 1.0);
        assert!(cdf.windows(2).all(|w| w[0] <= w[1]));
        assert!((cdf[0] - 1.0 / 12.0).abs() < 1e-12);
        assert!(TriangleMesh::default().area_weighted_cdf().is_empty());
    }

    #[test]
    fn samples_lie_on_surface_and_are_area_uniform() {
        // One big and one small triangle: picks must follow area ratio 3:1.
        let m = TriangleMesh {
            vertices: vec![
                [0.0, 0.0, 0.0],
                [3.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.0, 0.0, 5.0],
                [1.0, 0.0, 5.0],
                [0.0, 1.0, 5.0],
            ],
            triangles: vec![[0, 1, 2], [3, 4, 5]],
        };
        let cdf = m.area_weighted_cdf();
        let mut rng = Lcg(1);
        let mut hits = [0usize; 2];
        let mut below_diagonal = 0usize;
        let n = 40_000;
        for _ in 0..n {
            let (p, t) = m.sample_surface(&cdf, [rng.unit(), rng.unit(), rng.unit()]);
            hits[t] += 1;
            if t == 1 {
                assert_eq!(p[2], 5.0);
                assert!(p[0] >= 0.0 && p[1] >= 0.0 && p[0] + p[1] <= 1.0 + 1e-6);
                // Uniform in the triangle: the half nearer the right angle
                // (x + y < 1/sqrt2) holds half the area.
                if p[0] + p[1] < std::f32::consts::FRAC_1_SQRT_2 {
                    below_diagonal += 1;
                }
            } else {
                assert_eq!(p[2], 0.0);
                assert!(p[0] / 3.0 + p[1] <= 1.0 + 1e-6);
            }
        }
        let frac = hits[0] as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.01, "{frac}");
        let half = below_diagonal as f64 / hits[1] as f64;
        assert!((half - 0.5).abs() < 0.02, "{half}");
    }

    #[test]
    fn sphere_samples_have_unit_radius() {
        let s = icosphere(3);
        let cdf = s.area_weighted_cdf();
        let mut rng = Lcg(5);
        for _ in 0..1000 {
            let (p, t) = s.sample_surface(&cdf, [rng.unit(), rng.unit(), rng.unit()]);
            assert!(t < s.triangles.len());
            let r = (p.iter().map(|c| (*c as f64).powi(2)).sum::<f64>()).sqrt();
            assert!(r <= 1.0 + 1e-6 && r > 0.98, "{r}");
        }
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let cube = unit_cube();
        let cdf = cube.area_weighted_cdf();
        for u in [
            [1.0, 1.0, 1.0],
            [f64::NAN; 3],
            [-5.0, 7.0, f64::INFINITY],
            [0.0; 3],
        ] {
            let (p, t) = cube.sample_surface(&cdf, u);
            assert!(t < 12);
            assert!(p.iter().all(|c| c.is_finite()));
        }
        assert_eq!(cube.sample_surface(&[], [0.5; 3]), ([0.0; 3], 0));
        assert_eq!(TriangleMesh::default().sample_surface(&cdf, [0.5; 3]).1, 0);
        // A cdf for a larger mesh is cut to this mesh's triangles.
        let small = TriangleMesh {
            vertices: cube.vertices.clone(),
            triangles: cube.triangles[..2].to_vec(),
        };
        assert!(small.sample_surface(&cdf, [0.99, 0.5, 0.5]).1 < 2);
        // Zero total area falls back to equal weights.
        let flat = TriangleMesh {
            vertices: vec![[1.0; 3]; 3],
            triangles: vec![[0, 1, 2], [0, 1, 2]],
        };
        let cdf = flat.area_weighted_cdf();
        assert_eq!(cdf, vec![0.5, 1.0]);
        assert_eq!(flat.sample_surface(&cdf, [0.7, 0.3, 0.3]), ([1.0; 3], 1));
        // Broken indices yield zero area rather than a panic.
        let broken = TriangleMesh {
            vertices: vec![[0.0; 3]],
            triangles: vec![[0, 5, 9]],
        };
        assert_eq!(broken.triangle_areas(), vec![0.0]);
        assert_eq!(broken.triangle_normal(0), [0.0; 3]);
        assert_eq!(broken.sample_surface(&[1.0], [0.1; 3]).1, 0);
    }

    #[test]
    fn normals_and_volume() {
        let cube = unit_cube();
        assert!((cube.signed_volume() - 1.0).abs() < 1e-12);
        for t in 0..12 {
            let n = cube.triangle_normal(t);
            let c = cube.corners(t).unwrap();
            let centroid: Vec<f64> = (0..3)
                .map(|k| (c[0][k] + c[1][k] + c[2][k]) / 3.0)
                .collect();
            let outward: f64 = (0..3).map(|k| n[k] * centroid[k]).sum();
            assert!(outward > 0.0);
        }
    }
}
