//! The marching-cubes case table: for each of the 256 sign patterns of a
//! cell's corners, the triangles over its crossing edges, derived at first
//! use from the rules the sweep's module documentation gives
//! ([`super::marching_cubes`], "Case table") rather than pasted in.

use std::sync::OnceLock;

/// Corner `i` of a cell sits at offset `(i & 1, (i >> 1) & 1, (i >> 2) & 1)`.
/// Edges 0..4 run along x, 4..8 along y, 8..12 along z; the order matches the
/// gather in the sweep's `slab_cells`.
pub(super) const EDGE_CORNERS: [[u8; 2]; 12] = [
    [0, 1],
    [2, 3],
    [4, 5],
    [6, 7],
    [0, 2],
    [1, 3],
    [4, 6],
    [5, 7],
    [0, 4],
    [1, 5],
    [2, 6],
    [3, 7],
];

/// Most triangles any case needs (crossings minus twice the loops, at most);
/// the generator asserts it is enough, and the
/// `case_table_properties` test checks that it is tight.
pub(super) const MAX_TRIS: usize = 5;

const NO_EDGE: u8 = u8::MAX;

pub(super) struct CaseTable {
    len: [u8; 256],
    tris: [[[u8; 3]; MAX_TRIS]; 256],
}

impl CaseTable {
    #[inline]
    pub(super) fn triangles(&self, case: usize) -> &[[u8; 3]] {
        &self.tris[case][..usize::from(self.len[case])]
    }
}

pub(super) fn case_table() -> &'static CaseTable {
    static TABLE: OnceLock<CaseTable> = OnceLock::new();
    TABLE.get_or_init(build_case_table)
}

fn build_case_table() -> CaseTable {
    let mut table = CaseTable {
        len: [0; 256],
        tris: [[[0; 3]; MAX_TRIS]; 256],
    };
    for case in 0..256 {
        let tris = case_triangles(case as u8);
        assert!(
            tris.len() <= MAX_TRIS,
            "case {case:#04x} needs {} triangles",
            tris.len()
        );
        table.len[case] = tris.len() as u8;
        table.tris[case][..tris.len()].copy_from_slice(&tris);
    }
    table
}

pub(super) fn corner_position(c: u8) -> [f32; 3] {
    [c & 1, (c >> 1) & 1, (c >> 2) & 1].map(f32::from)
}

/// The corners of face `face` (normal axis `face / 2`, side `face % 2`),
/// counter-clockwise seen from outside the cube.
fn face_corners(face: usize) -> [u8; 4] {
    let (axis, side) = (face / 2, face % 2);
    // (axis, u, v) is a cyclic permutation of (x, y, z), so the unit square
    // walked (0,0),(1,0),(1,1),(0,1) in (u, v) turns counter-clockwise
    // around +axis; the face on the low side looks along -axis.
    let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
    let mut square = [(0, 0), (1, 0), (1, 1), (0, 1)];
    if side == 0 {
        square.swap(1, 3);
    }
    square.map(|(a, b)| ((side << axis) | (a << u) | (b << v)) as u8)
}

fn edge_between(a: u8, b: u8) -> u8 {
    EDGE_CORNERS
        .iter()
        .position(|&[p, q]| (p, q) == (a, b) || (p, q) == (b, a))
        .expect("consecutive face corners span a cube edge") as u8
}

fn edges_share_face(e: u8, f: u8) -> bool {
    (0..6).any(|face| {
        let corners = face_corners(face);
        EDGE_CORNERS[usize::from(e)]
            .iter()
            .chain(&EDGE_CORNERS[usize::from(f)])
            .all(|c| corners.contains(c))
    })
}

/// Triangles (as cube edge triples) for one sign configuration; bit `i` of
/// `case` set means corner `i` is inside.
fn case_triangles(case: u8) -> Vec<[u8; 3]> {
    let inside = |c: u8| (case >> c) & 1 == 1;
    let mut next = [NO_EDGE; 12];
    let mut has_prev = [false; 12];
    for face in 0..6 {
        let q = face_corners(face);
        let ins = q.map(inside);
        let side = |j: usize| edge_between(q[j % 4], q[(j + 1) % 4]);
        let mut link = |from: u8, to: u8| {
            let (f, t) = (usize::from(from), usize::from(to));
            assert!(
                next[f] == NO_EDGE && !has_prev[t],
                "case {case:#04x}: edge linked twice"
            );
            next[f] = to;
            has_prev[t] = true;
        };
        // Face side j runs from q[j] to q[j + 1]; a segment starts on a side
        // whose far corner is inside and ends on one whose near corner is,
        // which puts the inside on the segment's right seen from outside.
        if ins[0] == ins[2] && ins[1] == ins[3] && ins[0] != ins[1] {
            for k in (0..4).filter(|&k| ins[k]) {
                link(side(k + 3), side(k));
            }
        } else {
            let start = (0..4).find(|&j| !ins[j] && ins[(j + 1) % 4]);
            let end = (0..4).find(|&j| ins[j] && !ins[(j + 1) % 4]);
            if let (Some(s), Some(e)) = (start, end) {
                link(side(s), side(e));
            }
        }
    }

    let mut tris = Vec::new();
    let mut seen = [false; 12];
    for first in 0..12u8 {
        let [a, b] = EDGE_CORNERS[usize::from(first)];
        let crossing = inside(a) != inside(b);
        assert_eq!(
            crossing,
            next[usize::from(first)] != NO_EDGE,
            "case {case:#04x}: edge {first} is not on exactly one loop"
        );
        if !crossing || seen[usize::from(first)] {
            continue;
        }
        let mut cycle = Vec::new();
        let mut e = first;
        while !seen[usize::from(e)] {
            seen[usize::from(e)] = true;
            cycle.push(e);
            e = next[usize::from(e)];
        }
        assert_eq!(e, first, "case {case:#04x}: segments do not close");
        triangulate_loop(&cycle, &mut tris);
    }
    tris
}

/// Triangulates a loop of cube edges so that the worst triangle (on edge
/// midpoints) is as good as possible; triangles keep the loop's direction.
fn triangulate_loop(cycle: &[u8], out: &mut Vec<[u8; 3]>) {
    let n = cycle.len();
    let p: Vec<[f32; 3]> = cycle
        .iter()
        .map(|&e| {
            let [a, b] = EDGE_CORNERS[usize::from(e)].map(corner_position);
            [0, 1, 2].map(|i| 0.5 * (a[i] + b[i]))
        })
        .collect();
    let chord_ok = |i: usize, j: usize| {
        j - i < 2 || (i == 0 && j == n - 1) || !edges_share_face(cycle[i], cycle[j])
    };
    // best[i][j]: best worst-triangle quality of the sub-polygon i..=j closed
    // by chord (i, j); NEG_INFINITY where that chord is not allowed.
    let mut best = vec![vec![f32::INFINITY; n]; n];
    let mut split = vec![vec![0; n]; n];
    for span in 2..n {
        for i in 0..n - span {
            let j = i + span;
            best[i][j] = f32::NEG_INFINITY;
            if !chord_ok(i, j) {
                continue;
            }
            for k in i + 1..j {
                let q = triangle_quality(p[i], p[k], p[j])
                    .min(best[i][k])
                    .min(best[k][j]);
                if q > best[i][j] {
                    best[i][j] = q;
                    split[i][j] = k;
                }
            }
        }
    }
    assert!(
        best[0][n - 1] > 0.0,
        "loop {cycle:?} has no admissible triangulation"
    );
    let mut stack = vec![(0, n - 1)];
    while let Some((i, j)) = stack.pop() {
        if j - i < 2 {
            continue;
        }
        let k = split[i][j];
        out.push([cycle[i], cycle[k], cycle[j]]);
        stack.push((i, k));
        stack.push((k, j));
    }
}

/// 1 for an equilateral triangle, 0 for a degenerate one.
fn triangle_quality(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> f32 {
    let sub = |p: [f32; 3], q: [f32; 3]| [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
    let dot = |p: [f32; 3], q: [f32; 3]| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
    let (ab, ac, bc) = (sub(b, a), sub(c, a), sub(c, b));
    let n = [
        ab[1] * ac[2] - ab[2] * ac[1],
        ab[2] * ac[0] - ab[0] * ac[2],
        ab[0] * ac[1] - ab[1] * ac[0],
    ];
    2.0 * 3f32.sqrt() * dot(n, n).sqrt() / (dot(ab, ab) + dot(ac, ac) + dot(bc, bc))
}
