//! Closed, consistently outward-oriented test shapes with known geometry,
//! public because the SDF, sampling and metrics stages test against them.

use std::collections::HashMap;

use super::TriangleMesh;

/// Axis-aligned cube with side 1 centred at the origin ([-0.5, 0.5]^3), so
/// it already sits inside the unit sphere (corner radius ~0.866).
/// 8 vertices, 12 triangles.
pub fn unit_cube() -> TriangleMesh {
    let vertices = (0..8u32)
        .map(|i| [i & 1, (i >> 1) & 1, (i >> 2) & 1].map(|b| b as f32 - 0.5))
        .collect();
    // Two triangles per face, each wound counter-clockwise seen from outside.
    #[rustfmt::skip]
    let triangles = vec![
        [0, 2, 3], [0, 3, 1], // z = -0.5
        [4, 5, 7], [4, 7, 6], // z = +0.5
        [0, 1, 5], [0, 5, 4], // y = -0.5
        [2, 6, 7], [2, 7, 3], // y = +0.5
        [0, 4, 6], [0, 6, 2], // x = -0.5
        [1, 3, 7], [1, 7, 5], // x = +0.5
    ];
    TriangleMesh {
        vertices,
        triangles,
    }
}

/// Largest subdivision level [`icosphere`] honours: 20·4^8 ≈ 1.3 million
/// triangles, far more than any test needs, and small enough that a stray
/// large argument cannot exhaust memory.
pub const MAX_ICOSPHERE_SUBDIVISIONS: u32 = 8;

/// Sphere of radius 1 about the origin: an icosahedron whose triangles are
/// split in four `subdivisions` times with new vertices pushed onto the
/// sphere. Levels above [`MAX_ICOSPHERE_SUBDIVISIONS`] are clamped.
pub fn icosphere(subdivisions: u32) -> TriangleMesh {
    let phi = (1.0 + 5f64.sqrt()) / 2.0;
    let raw: [[f64; 3]; 12] = [
        [-1.0, phi, 0.0],
        [1.0, phi, 0.0],
        [-1.0, -phi, 0.0],
        [1.0, -phi, 0.0],
        [0.0, -1.0, phi],
        [0.0, 1.0, phi],
        [0.0, -1.0, -phi],
        [0.0, 1.0, -phi],
        [phi, 0.0, -1.0],
        [phi, 0.0, 1.0],
        [-phi, 0.0, -1.0],
        [-phi, 0.0, 1.0],
    ];
    let mut points: Vec<[f64; 3]> = raw.iter().map(|&p| unit(p)).collect();
    #[rustfmt::skip]
    let mut faces: Vec<[u32; 3]> = vec![
        [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
        [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
        [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
        [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
    ];
    for _ in 0..subdivisions.min(MAX_ICOSPHERE_SUBDIVISIONS) {
        // Each edge is split once and its midpoint shared by both faces, or
        // the result would have cracks.
        let mut midpoints: HashMap<(u32, u32), u32> = HashMap::new();
        let mut midpoint = |a: u32, b: u32, points: &mut Vec<[f64; 3]>| {
            *midpoints.entry((a.min(b), a.max(b))).or_insert_with(|| {
                let (p, q) = (points[a as usize], points[b as usize]);
                points.push(unit([p[0] + q[0], p[1] + q[1], p[2] + q[2]]));
                (points.len() - 1) as u32
            })
        };
        let mut next = Vec::with_capacity(faces.len() * 4);
        for &[a, b, c] in &faces {
            let ab = midpoint(a, b, &mut points);
            let bc = midpoint(b, c, &mut points);
            let ca = midpoint(c, a, &mut points);
            next.extend([[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]);
        }
        faces = next;
    }
    TriangleMesh {
        vertices: points.iter().map(|p| p.map(|c| c as f32)).collect(),
        triangles: faces,
    }
}

fn unit(p: [f64; 3]) -> [f64; 3] {
    let len = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
    p.map(|c| c / len)
}

/// Largest segment count per direction [`torus`] honours; keeps
/// `n_major * n_minor` vertices well inside memory and u32 range.
pub const MAX_TORUS_SEGMENTS: u32 = 4096;

/// Torus about the z axis: tube centre circle of radius `major_radius` in
/// the xy plane, tube radius `minor_radius`. Segment counts are clamped to
/// [3, [`MAX_TORUS_SEGMENTS`]]; radii are used as given (choose
/// `minor_radius < major_radius` for a proper, non-self-intersecting torus).
/// Enclosed volume 2π²Rr², area 4π²Rr in the limit of many segments.
pub fn torus(major_radius: f64, minor_radius: f64, n_major: u32, n_minor: u32) -> TriangleMesh {
    let nu = n_major.clamp(3, MAX_TORUS_SEGMENTS);
    let nv = n_minor.clamp(3, MAX_TORUS_SEGMENTS);
    let mut vertices = Vec::with_capacity((nu * nv) as usize);
    for i in 0..nu {
        let u = std::f64::consts::TAU * i as f64 / nu as f64;
        for j in 0..nv {
            let v = std::f64::consts::TAU * j as f64 / nv as f64;
            let ring = major_radius + minor_radius * v.cos();
            vertices
                .push([ring * u.cos(), ring * u.sin(), minor_radius * v.sin()].map(|c| c as f32));
        }
    }
    let id = |i: u32, j: u32| (i % nu) * nv + (j % nv);
    let mut triangles = Vec::with_capacity((2 * nu * nv) as usize);
    for i in 0..nu {
        for j in 0..nv {
            // d(position)/du × d(position)/dv points away from the tube
            // centre, so (u, v) quads taken in this order face outward.
            let (a, b, c, d) = (id(i, j), id(i + 1, j), id(i + 1, j + 1), id(i, j + 1));
            triangles.push([a, b, c]);
            triangles.push([a, c, d]);
        }
    }
    TriangleMesh {
        vertices,
        triangles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// Every face normal points away from the centre of the shape it bounds.
    fn assert_outward(mesh: &TriangleMesh, centre_of: impl Fn([f64; 3]) -> [f64; 3]) {
        for t in 0..mesh.triangles.len() {
            let c = mesh.corners(t).unwrap();
            let centroid = [0, 1, 2].map(|k| (c[0][k] + c[1][k] + c[2][k]) / 3.0);
            let inside = centre_of(centroid);
            let n = mesh.triangle_normal(t);
            let out: f64 = (0..3).map(|k| n[k] * (centroid[k] - inside[k])).sum();
            assert!(out > 0.0, "triangle {t} faces inward");
        }
    }

    #[test]
    fn cube() {
        let c = unit_cube();
        assert_outward(&c, |_| [0.0; 3]);
        assert!((c.signed_volume() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn icospheres() {
        for (level, tris) in [(0, 20), (1, 80), (2, 320)] {
            let s = icosphere(level);
            assert_eq!(s.triangles.len(), tris);
            // Euler characteristic 2 for a closed genus-0 surface.
            assert_eq!(
                s.vertices.len() as i64 - tris as i64 * 3 / 2 + tris as i64,
                2
            );
            assert_outward(&s, |_| [0.0; 3]);
            for p in &s.vertices {
                let r = p.iter().map(|c| (*c as f64).powi(2)).sum::<f64>().sqrt();
                assert!((r - 1.0).abs() < 1e-6);
            }
        }
        let fine = icosphere(4);
        assert!((fine.signed_volume() - 4.0 / 3.0 * PI).abs() < 0.02);
        assert_eq!(
            icosphere(100).triangles.len(),
            20 * 4usize.pow(MAX_ICOSPHERE_SUBDIVISIONS)
        );
    }

    #[test]
    fn tori() {
        let (r_major, r_minor) = (1.0, 0.3);
        let t = torus(r_major, r_minor, 64, 32);
        assert_eq!(t.vertices.len(), 64 * 32);
        assert_eq!(t.triangles.len(), 2 * 64 * 32);
        assert_outward(&t, |p| {
            let d = (p[0] * p[0] + p[1] * p[1]).sqrt();
            [p[0] / d * r_major, p[1] / d * r_major, 0.0]
        });
        let exact = 2.0 * PI * PI * r_major * r_minor * r_minor;
        assert!((t.signed_volume() - exact).abs() / exact < 0.01);
        let info = t.validate().unwrap();
        assert!(info.watertight);
        assert_eq!(info.misoriented_edges, 0);
        // Genus 1: V - E + F = 0.
        assert_eq!(
            info.vertex_count as i64 - 3 * info.triangle_count as i64 / 2
                + info.triangle_count as i64,
            0
        );
        let tiny = torus(1.0, 0.2, 0, 1);
        assert_eq!(tiny.triangles.len(), 2 * 3 * 3);
    }
}
