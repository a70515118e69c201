//! The f64 3-vector helpers the SDF uses: the shared primitives of
//! `mesh::geometry`, and the solid angle of a triangle.

pub(crate) use crate::mesh::geometry::{
    add, cross, dot, is_finite, l1, norm, scale, sub, to_f64, V3,
};

/// Solid angle subtended at the origin by the triangle (a, b, c), given as
/// vectors from the query point (Van Oosterom & Strackee 1983). Signed:
/// positive when the origin lies behind the triangle's right-handed normal
/// (b - a) x (c - a), i.e. inside for an outward-oriented closed mesh.
///
/// A query point on a vertex gives atan2(0, 0) = 0 instead of NaN, so callers
/// never see NaN from finite input.
#[inline(always)]
pub(crate) fn solid_angle(a: V3, b: V3, c: V3) -> f64 {
    let la = norm(a);
    let lb = norm(b);
    let lc = norm(c);
    let det = dot(a, cross(b, c));
    let den = la * lb * lc + dot(a, b) * lc + dot(a, c) * lb + dot(b, c) * la;
    2.0 * det.atan2(den)
}
