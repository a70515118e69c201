//! Minimal f64 3-vector helpers. Plain arrays rather than nalgebra types keep
//! the hot winding-number loops free of generic indirection and make the
//! memory layout of the BVH explicit.

pub(crate) type V3 = [f64; 3];

#[inline(always)]
pub(crate) fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline(always)]
pub(crate) fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

#[inline(always)]
pub(crate) fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

#[inline(always)]
pub(crate) fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline(always)]
pub(crate) fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline(always)]
pub(crate) fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// L1 norm: an upper bound of the Euclidean norm that needs no square root,
/// used to scale floating-point error bounds.
#[inline(always)]
pub(crate) fn l1(a: V3) -> f64 {
    a[0].abs() + a[1].abs() + a[2].abs()
}

#[inline(always)]
pub(crate) fn to_f64(p: [f32; 3]) -> V3 {
    [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])]
}

#[inline(always)]
pub(crate) fn is_finite(p: V3) -> bool {
    p.iter().all(|c| c.is_finite())
}

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
