//! Object File Format (Geomview / Princeton shape benchmark), ASCII only.
//! Read line by line: vertex lines may carry colours or normals after the
//! position and face lines a colour after the indices, all of which we skip.

use std::path::Path;

use super::load::{
    check_vertex_count, fan, lines, parse_coord, parse_int, reject_binary, show, strip_bom,
    strip_comment, tokens,
};
use super::{MeshError, TriangleMesh};

/// The smallest possible vertex line is "0 0 0" plus a newline, the smallest
/// face line a bare count; used to bound header counts by the file size.
const MIN_VERTEX_BYTES: u64 = 6;
const MIN_FACE_BYTES: u64 = 2;

fn keyword(bytes: &[u8]) -> Option<&[u8]> {
    let text = strip_bom(bytes).trim_ascii_start();
    let end = text
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'#')
        .unwrap_or(text.len());
    split_keyword(&text[..end]).map(|(k, _)| k)
}

/// Splits the first token into the keyword ("OFF", "COFF", "STNOFF", ...)
/// and what is glued to it: ModelNet's files famously start "OFF490 518 0",
/// the vertex count fused to the keyword. None if it is no OFF keyword.
fn split_keyword(token: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = token.windows(3).position(|w| w == b"OFF")?;
    let (kw, rest) = token.split_at(at + 3);
    (kw.len() <= 8 && (rest.is_empty() || rest[0].is_ascii_digit())).then_some((kw, rest))
}

pub(super) fn sniff(bytes: &[u8]) -> bool {
    keyword(bytes).is_some()
}

pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<TriangleMesh, MeshError> {
    reject_binary(bytes, path, "OFF")?;
    let bytes = strip_bom(bytes);
    let total = bytes.len() as u64;
    // Comments and blank lines may appear anywhere.
    let mut content = lines(bytes)
        .map(|(n, end, l)| (n, end, strip_comment(l)))
        .filter(|(_, _, l)| !l.is_empty());

    let Some((header_line, header_end, header)) = content.next() else {
        return Ok(TriangleMesh::default());
    };
    let mut toks = tokens(header);
    let first = toks.next().unwrap_or_default();
    let Some((kw, glued)) = split_keyword(first) else {
        return Err(MeshError::parse(
            path,
            Some(header_line),
            format!("expected an OFF header, found '{}'", show(first)),
        ));
    };
    // 4OFF and nOFF have other than 3 coordinates per vertex.
    if kw.contains(&b'4') || kw.contains(&b'n') {
        return Err(MeshError::parse(
            path,
            Some(header_line),
            format!(
                "OFF variant '{}' is not supported (only 3D vertices are)",
                show(kw)
            ),
        ));
    }
    // Counts usually sit on the next line but some writers append them to
    // the keyword line; "OFF BINARY" is a different encoding.
    let mut rest: Vec<&[u8]> = (!glued.is_empty())
        .then_some(glued)
        .into_iter()
        .chain(toks)
        .collect();
    if rest
        .first()
        .is_some_and(|t| t.eq_ignore_ascii_case(b"BINARY"))
    {
        return Err(MeshError::parse(
            path,
            Some(header_line),
            "binary OFF is not supported",
        ));
    }
    let (count_line, body_start) = if rest.is_empty() {
        let Some((n, end, l)) = content.next() else {
            return Err(MeshError::parse(
                path,
                None,
                "file ends before the vertex and face counts",
            ));
        };
        rest = tokens(l).collect();
        (n, end)
    } else {
        (header_line, header_end)
    };
    let count = |i: usize, what: &str| -> Result<u64, MeshError> {
        rest.get(i)
            .and_then(|t| parse_int(t))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| {
                MeshError::parse(
                    path,
                    Some(count_line),
                    format!("expected a non-negative {what} count"),
                )
            })
    };
    let nv = count(0, "vertex")?;
    let nf = count(1, "face")?;

    let remaining = total - body_start as u64 + 1;
    for (what, n, min) in [
        ("vertices", nv, MIN_VERTEX_BYTES),
        ("faces", nf, MIN_FACE_BYTES),
    ] {
        if n.saturating_mul(min) > remaining {
            return Err(MeshError::TooLarge {
                path: path.to_path_buf(),
                what: what.into(),
                count: n,
                limit: remaining / min,
            });
        }
    }
    check_vertex_count(nv, path)?;

    let mut mesh = TriangleMesh {
        vertices: Vec::with_capacity(nv as usize),
        triangles: Vec::with_capacity(nf as usize),
    };
    for i in 0..nv {
        let (n, _, l) = content.next().ok_or_else(|| {
            MeshError::parse(path, None, format!("file ends after {i} of {nv} vertices"))
        })?;
        let mut t = tokens(l);
        let at = Some(n);
        let x = parse_coord(t.next(), path, at, "vertex")?;
        let y = parse_coord(t.next(), path, at, "vertex")?;
        let z = parse_coord(t.next(), path, at, "vertex")?;
        mesh.vertices.push([x, y, z]);
    }

    let mut polygon = Vec::new();
    for f in 0..nf {
        let (n, _, l) = content.next().ok_or_else(|| {
            MeshError::parse(path, None, format!("file ends after {f} of {nf} faces"))
        })?;
        let mut t = tokens(l);
        let k = t
            .next()
            .and_then(parse_int)
            .filter(|&k| k >= 0)
            .ok_or_else(|| {
                MeshError::parse(path, Some(n), "face must start with its vertex count")
            })?;
        if k < 3 {
            return Err(MeshError::parse(
                path,
                Some(n),
                format!("face has {k} vertices; at least 3 are needed"),
            ));
        }
        polygon.clear();
        for _ in 0..k {
            let tok = t.next().ok_or_else(|| {
                MeshError::parse(
                    path,
                    Some(n),
                    format!("face lists fewer than its {k} vertices"),
                )
            })?;
            let idx = parse_int(tok)
                .filter(|&i| i >= 0 && (i as u64) < nv)
                .ok_or_else(|| {
                    MeshError::parse(
                        path,
                        Some(n),
                        format!(
                            "face index '{}' is not a vertex index (0 to {})",
                            show(tok),
                            nv.saturating_sub(1)
                        ),
                    )
                })?;
            polygon.push(idx as u32);
        }
        fan(&polygon, &mut mesh.triangles);
    }
    Ok(mesh)
}

#[cfg(test)]
mod tests {
    use crate::mesh::{load_from_bytes, MeshError, TriangleMesh};

    fn off(text: &str) -> Result<TriangleMesh, MeshError> {
        load_from_bytes(text.as_bytes(), Some("off"))
    }

    #[test]
    fn parses_cube_with_quads_comments_and_colours() {
        let text = "OFF\n# cube\n8 6 12\n\
                    0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 0 1\n1 0 1\n1 1 1\n0 1 1\n\
                    4 0 3 2 1\n4 4 5 6 7\n4 0 1 5 4\n4 2 3 7 6 255 0 0\n4 1 2 6 5\n4 0 4 7 3\n";
        let m = off(text).unwrap();
        assert_eq!(m.vertices.len(), 8);
        assert_eq!(m.triangles.len(), 12);
        let info = m.validate().unwrap();
        assert!(info.watertight);
        assert_eq!(info.misoriented_edges, 0);
        assert!(m.signed_volume() > 0.99);
    }

    #[test]
    fn counts_on_header_line_and_coff() {
        let m = off("OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n").unwrap();
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
        let m = off("COFF\n3 1 0\n0 0 0 1 0 0 1\n1 0 0 1 0 0 1\n0 1 0 1 0 0 1\n3 0 1 2\n").unwrap();
        assert_eq!(m.vertices[1], [1.0, 0.0, 0.0]);
    }

    #[test]
    fn modelnet_fused_header_and_count_quirks() {
        // ModelNet: vertex count glued to the keyword.
        let m = off("OFF3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n").unwrap();
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
        assert!(crate::mesh::load_from_bytes(
            b"OFF4 1 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n",
            None
        )
        .is_ok());
        // Edge count left out, comments after the counts, CRLF, blank
        // lines, extra lines after the declared faces.
        let m =
            off("OFF\r\n\r\n3 1 # no edges\r\n0 0 0\r\n1 0 0\r\n0 1 0\r\n3 0 1 2\r\n\r\n# end\r\n")
                .unwrap();
        assert_eq!(m.triangles.len(), 1);
        // Zero faces is an empty mesh, not a parse error.
        assert!(matches!(
            off("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"),
            Err(MeshError::EmptyFile { .. })
        ));
        // Glued text that is not a count is still refused.
        assert!(matches!(
            off("OFFX 1 0\n"),
            Err(MeshError::Parse { line: Some(1), .. })
        ));
        assert!(matches!(
            off("OFF3x 1 0\n"),
            Err(MeshError::Parse { line: Some(1), .. })
        ));
    }

    #[test]
    fn malformed() {
        let cases: [(&str, Option<usize>); 7] = [
            ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", Some(6)),
            ("OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", Some(4)),
            ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1\n", Some(6)),
            ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", Some(6)),
            ("OFF\n3 1 0\n0 0 0\n1 0 0\n\n\n\n\n\n", None),
            ("OFF\n-3 1 0\n", Some(2)),
            ("4OFF\n1 1 0\n0 0 0 0\n", Some(1)),
        ];
        for (text, line) in cases {
            match off(text) {
                Err(MeshError::Parse { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn absurd_counts_are_too_large() {
        // A truncated file is caught by the same size bound.
        let err = off("OFF\n3 1 0\n0 0 0\n1 0 0\n").unwrap_err();
        assert!(
            matches!(
                err,
                MeshError::TooLarge {
                    count: 3,
                    limit: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = off("OFF\n4000000000 1 0\n0 0 0\n").unwrap_err();
        assert!(
            matches!(
                err,
                MeshError::TooLarge {
                    count: 4000000000,
                    ..
                }
            ),
            "{err}"
        );
        let err = off("OFF\n3 18446744073709551 0\n0 0 0\n1 0 0\n0 1 0\n").unwrap_err();
        assert!(matches!(err, MeshError::TooLarge { .. }), "{err}");
    }
}
