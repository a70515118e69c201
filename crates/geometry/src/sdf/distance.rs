//! f64 point-to-triangle projection: the BVH's measure of each candidate
//! triangle (`bvh.rs`), the fallback scan, and the reference in tests.

use super::vec3::{add, dot, scale, sub, V3};

/// Closest point to `p` on the triangle (a, b, c), by locating `p` among the
/// triangle's Voronoi regions (vertices, edges, face) with dot products only.
/// Always inlined: in the BVH's leaf loop the call itself cost a quarter of
/// a query, and inlining lets the f32 corners widen in place.
#[inline(always)]
pub(crate) fn closest_point_on_triangle(p: V3, a: V3, b: V3, c: V3) -> V3 {
    let ab = sub(b, a);
    let ac = sub(c, a);
    let ap = sub(p, a);
    let d1 = dot(ab, ap);
    let d2 = dot(ac, ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = sub(p, b);
    let d3 = dot(ab, bp);
    let d4 = dot(ac, bp);
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        return add(a, scale(ab, d1 / (d1 - d3)));
    }
    let cp = sub(p, c);
    let d5 = dot(ab, cp);
    let d6 = dot(ac, cp);
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        return add(a, scale(ac, d2 / (d2 - d6)));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && d4 - d3 >= 0.0 && d5 - d6 >= 0.0 {
        let w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
        return add(b, scale(sub(c, b), w));
    }
    let denom = 1.0 / (va + vb + vc);
    let r = add(a, add(scale(ab, vb * denom), scale(ac, vc * denom)));
    if r.iter().all(|x| x.is_finite()) {
        r
    } else {
        // Only reachable for (near-)degenerate input; a corner is a
        // surface point, which keeps the result finite and meaningful.
        a
    }
}
