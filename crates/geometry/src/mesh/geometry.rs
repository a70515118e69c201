//! Geometry primitives shared by the stages: f64 3-vectors as plain arrays,
//! the welding key of a vertex position and the degenerate-triangle test.
//! Plain arrays rather than a linear-algebra crate keep the hot
//! winding-number loops free of generic indirection and make the memory
//! layout of the hierarchies explicit.

pub type V3 = [f64; 3];

#[inline(always)]
pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline(always)]
pub fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

#[inline(always)]
pub fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

#[inline(always)]
pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline(always)]
pub fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline(always)]
pub fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// L1 norm: an upper bound of the Euclidean norm that needs no square root,
/// used to scale floating-point error bounds.
#[inline(always)]
pub fn l1(a: V3) -> f64 {
    a[0].abs() + a[1].abs() + a[2].abs()
}

#[inline(always)]
pub fn to_f64(p: [f32; 3]) -> V3 {
    [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])]
}

#[inline(always)]
pub fn is_finite(p: V3) -> bool {
    p.iter().all(|c| c.is_finite())
}

/// The key under which vertices at the same position are welded: the
/// coordinates' bits, with -0.0 and +0.0 one position. Callers keep NaN
/// out (its payloads would be different keys for "the same" position).
#[inline]
pub fn weld_key(p: [f32; 3]) -> [u32; 3] {
    p.map(|c| if c == 0.0 { 0 } else { c.to_bits() })
}

/// A triangle whose area is below this fraction of its longest edge squared
/// has no usable normal (a segment or a point). The tolerance flags exactly
/// collinear or coincident corners, whose computed cross product is only
/// rounding noise, and never a real sliver representable in f32.
pub const DEGENERATE_REL_AREA: f64 = 1e-12;

/// Whether the triangle (p, q, r) has zero area up to rounding: twice its
/// area, |(q - p) x (r - p)|, at most [`DEGENERATE_REL_AREA`] times its
/// longest edge squared.
pub fn is_degenerate_triangle(p: V3, q: V3, r: V3) -> bool {
    let e1 = sub(q, p);
    let e2 = sub(r, p);
    let e3 = sub(r, q);
    let longest = dot(e1, e1).max(dot(e2, e2)).max(dot(e3, e3));
    norm(cross(e1, e2)) <= DEGENERATE_REL_AREA * longest
}
