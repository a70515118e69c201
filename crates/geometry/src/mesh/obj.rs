//! Wavefront OBJ: only geometry (`v` and `f`) matters here; texture
//! coordinates, normals, groups, materials and the like are skipped.

use std::path::Path;

use super::load::{
    check_vertex_count, fan, lines, parse_coord, parse_int, reject_binary, show, strip_bom,
    strip_comment, tokens,
};
use super::{MeshError, TriangleMesh};

/// Text whose first statement (comments and blank lines aside) is one of
/// OBJ's own: what a file without an extension needs to be read as OBJ.
pub(super) fn sniff(bytes: &[u8]) -> bool {
    const STATEMENTS: [&[u8]; 10] = [
        b"v", b"vt", b"vn", b"f", b"o", b"g", b"s", b"mtllib", b"usemtl", b"vp",
    ];
    if bytes.iter().take(4096).any(|&b| b == 0) {
        return false;
    }
    lines(strip_bom(bytes))
        .map(|(_, _, raw)| strip_comment(raw))
        .find_map(|line| tokens(line).next())
        .is_some_and(|first| STATEMENTS.contains(&first))
}

pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<TriangleMesh, MeshError> {
    reject_binary(bytes, path, "OBJ")?;
    let bytes = strip_bom(bytes);
    let mut mesh = TriangleMesh::default();
    let mut polygon: Vec<u32> = Vec::new();
    // Positive indices may legally point at vertices defined later in the
    // file, so they can only be range-checked at the end; keeping the line of
    // each such face lets that late error still point at it.
    let mut forward_refs: Vec<(usize, i64)> = Vec::new();

    for (line_no, _, raw) in lines(bytes) {
        let line = strip_comment(raw);
        let mut toks = tokens(line);
        match toks.next() {
            Some(b"v") => {
                let at = Some(line_no);
                let x = parse_coord(toks.next(), path, at, "vertex")?;
                let y = parse_coord(toks.next(), path, at, "vertex")?;
                let z = parse_coord(toks.next(), path, at, "vertex")?;
                check_vertex_count(mesh.vertices.len() as u64 + 1, path)?;
                mesh.vertices.push([x, y, z]);
            }
            Some(b"f") => {
                polygon.clear();
                let defined = mesh.vertices.len() as i64;
                let mut max_forward = 0i64;
                for tok in toks {
                    // v, v/vt, v//vn and v/vt/vn all start with the position.
                    let pos = tok.split(|&b| b == b'/').next().unwrap_or(tok);
                    let idx = parse_int(pos).ok_or_else(|| {
                        MeshError::parse(
                            path,
                            Some(line_no),
                            format!("face index '{}' is not an integer", show(tok)),
                        )
                    })?;
                    let resolved = match idx {
                        0 => {
                            return Err(MeshError::parse(
                                path,
                                Some(line_no),
                                "face index 0 is invalid; OBJ indices start at 1",
                            ))
                        }
                        i if i > 0 => {
                            if i > defined {
                                max_forward = max_forward.max(i);
                            }
                            i - 1
                        }
                        // Negative indices count back from the latest vertex.
                        i => {
                            let r = defined + i;
                            if r < 0 {
                                return Err(MeshError::parse(
                                    path,
                                    Some(line_no),
                                    format!(
                                        "relative face index {i} reaches before the first vertex ({defined} defined so far)"
                                    ),
                                ));
                            }
                            r
                        }
                    };
                    let resolved = u32::try_from(resolved).map_err(|_| {
                        MeshError::parse(
                            path,
                            Some(line_no),
                            format!("face index {idx} exceeds the 32-bit index range"),
                        )
                    })?;
                    polygon.push(resolved);
                }
                if polygon.len() < 3 {
                    return Err(MeshError::parse(
                        path,
                        Some(line_no),
                        format!("face has {} vertices; at least 3 are needed", polygon.len()),
                    ));
                }
                if max_forward > 0 {
                    forward_refs.push((line_no, max_forward));
                }
                fan(&polygon, &mut mesh.triangles);
            }
            _ => {}
        }
    }

    let n = mesh.vertices.len() as i64;
    if let Some(&(line, idx)) = forward_refs.iter().find(|&&(_, idx)| idx > n) {
        return Err(MeshError::parse(
            path,
            Some(line),
            format!("face refers to vertex {idx}, but the file defines only {n} vertices"),
        ));
    }
    Ok(mesh)
}

#[cfg(test)]
mod tests {
    use crate::mesh::test_util::TempDir;
    use crate::mesh::{load, load_from_bytes, primitives, write_obj, MeshError, TriangleMesh};

    fn obj(text: &str) -> Result<TriangleMesh, MeshError> {
        load_from_bytes(text.as_bytes(), Some("obj"))
    }

    fn parse_line(text: &str) -> Option<usize> {
        match obj(text) {
            Err(MeshError::Parse { line, .. }) => line,
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = TempDir::new("obj");
        for mesh in [primitives::unit_cube(), primitives::torus(1.0, 0.3, 12, 7)] {
            let p = dir.path("m.obj");
            write_obj(&mesh, &p).unwrap();
            assert_eq!(load(&p).unwrap(), mesh);
        }
        // Awkward floats must survive the text representation bit for bit.
        let odd = TriangleMesh {
            vertices: vec![
                [1e-30, -3.4e38, 0.1],
                [f32::MIN_POSITIVE, 1.0 / 3.0, -0.0],
                [7.0, 8.5, 1e7],
            ],
            triangles: vec![[0, 1, 2]],
        };
        let p = dir.path("odd.obj");
        write_obj(&odd, &p).unwrap();
        let back = load(&p).unwrap();
        for (a, b) in odd.vertices.iter().zip(&back.vertices) {
            for k in 0..3 {
                assert_eq!(a[k].to_bits(), b[k].to_bits());
            }
        }
    }

    #[test]
    fn quads_ngons_and_index_forms() {
        let m = obj("# a quad and a pentagon\n\
                     v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 2 0\n\
                     vt 0 0\nvn 0 0 1\n\
                     f 1/1/1 2/1/1 3/1/1 4/1/1\n\
                     f 1//1 2//1 3//1 5//1 4//1\n\
                     f 1/1 2/1 3/1\n")
        .unwrap();
        assert_eq!(
            m.triangles,
            vec![
                [0, 1, 2],
                [0, 2, 3],
                [0, 1, 2],
                [0, 2, 4],
                [0, 4, 3],
                [0, 1, 2]
            ]
        );
    }

    #[test]
    fn negative_indices_are_relative() {
        let m = obj("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\nv 0 0 1\nf -4 -1 -2\n").unwrap();
        assert_eq!(m.triangles, vec![[0, 1, 2], [0, 3, 2]]);
    }

    #[test]
    fn bom_crlf_comments_and_other_statements() {
        let text =
            "\u{feff}# exported\r\nmtllib a.mtl\r\no thing\r\ng grp\r\ns off\r\nusemtl m\r\n\
                    v 0 0 0 1.0\r\nv 1 0 0 # trailing comment\r\nv 0 1 0 0.5 0.5 0.5\r\n\
                    vp 0.1\r\nl 1 2\r\np 1\r\nf 1 2 3 # comment\r\n";
        let m = obj(text).unwrap();
        assert_eq!(
            m.vertices,
            vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        );
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
    }

    #[test]
    fn faces_before_vertices_are_resolved_at_the_end() {
        let m = obj("f 1 2 3\nv 0 0 0\nv 1 0 0\nv 0 1 0\n").unwrap();
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
    }

    #[test]
    fn malformed_inputs_give_line_numbers() {
        assert_eq!(parse_line("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n"), Some(4));
        assert_eq!(parse_line("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n"), Some(4));
        assert_eq!(
            parse_line("v 0 0 0\nv 1 0 0\nf 1 2 3\nv 0 1 0\nf 1 2 9\n"),
            Some(5)
        );
        assert_eq!(parse_line("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -4 1 2\n"), Some(4));
        assert_eq!(
            parse_line("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999\n"),
            Some(4)
        );
        assert_eq!(parse_line("v 0 0 0\nv 1 zero 0\n"), Some(2));
        assert_eq!(parse_line("v 0 0\n"), Some(1));
        assert_eq!(parse_line("v 0 0 nan\n"), Some(1));
        assert_eq!(parse_line("v 0 0 inf\n"), Some(1));
        assert_eq!(parse_line("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n"), Some(4));
        assert_eq!(
            parse_line("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1.5 2 3\n"),
            Some(4)
        );
        assert_eq!(parse_line("v 0 0 0\nv 1 0 0\nf 1 2\n"), Some(3));
        let err = obj("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n").unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }

    #[test]
    fn points_only_is_empty() {
        assert!(matches!(
            obj("v 0 0 0\nv 1 0 0\n"),
            Err(MeshError::EmptyFile { .. })
        ));
        assert!(matches!(
            obj("# nothing\n"),
            Err(MeshError::EmptyFile { .. })
        ));
    }

    #[test]
    fn non_utf8_comments_are_fine() {
        let mut bytes = b"# caf\xe9\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".to_vec();
        assert_eq!(
            load_from_bytes(&bytes, Some("obj"))
                .unwrap()
                .triangles
                .len(),
            1
        );
        bytes.extend_from_slice(b"v 1 \xff 2\n");
        assert!(matches!(
            load_from_bytes(&bytes, Some("obj")),
            Err(MeshError::Parse { line: Some(6), .. })
        ));
    }
}
