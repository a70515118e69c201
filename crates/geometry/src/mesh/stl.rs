//! STL, binary and ASCII. Which one a file is gets decided from its content:
//! plenty of binary exporters start their 80-byte header with "solid", so the
//! keyword alone proves nothing.

use std::path::Path;

use super::load::{lines, parse_coord, show, strip_bom, tokens, Welder};
use super::{MeshError, TriangleMesh};

const HEADER: usize = 80;
const PREAMBLE: usize = HEADER + 4;
const RECORD: usize = 50;

/// True when the file could be an STL: exactly the size its binary triangle
/// count implies, or text starting with `solid`.
pub(super) fn sniff(bytes: &[u8]) -> bool {
    binary_size_matches(bytes) || looks_ascii(bytes)
}

/// `lenient` (the file is named .stl) lets a file that is neither an exact
/// binary size nor ASCII go to the binary parser, which then says precisely
/// what is wrong, and tolerates trailing bytes after the last triangle.
pub(super) fn parse(bytes: &[u8], path: &Path, lenient: bool) -> Result<TriangleMesh, MeshError> {
    if binary_size_matches(bytes) {
        parse_binary(bytes, path)
    } else if looks_ascii(bytes) || (lenient && ascii_up_to_nul(bytes)) {
        parse_ascii(bytes, path)
    } else if lenient {
        parse_binary(bytes, path)
    } else {
        Err(MeshError::UnknownFormat {
            path: path.to_path_buf(),
        })
    }
}

fn declared_count(bytes: &[u8]) -> Option<u32> {
    let raw = bytes.get(HEADER..PREAMBLE)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// An ASCII file could only satisfy this by accident if its bytes 80..84,
/// read as a count, matched its length; printable text there means a count
/// above 5e8 and so a file of tens of gigabytes.
fn binary_size_matches(bytes: &[u8]) -> bool {
    declared_count(bytes)
        .is_some_and(|n| PREAMBLE as u64 + RECORD as u64 * u64::from(n) == bytes.len() as u64)
}

fn looks_ascii(bytes: &[u8]) -> bool {
    let text = strip_bom(bytes).trim_ascii_start();
    let Some(rest) = text.get(..5) else {
        return false;
    };
    if !rest.eq_ignore_ascii_case(b"solid") {
        return false;
    }
    // Binary headers that begin with "solid" are usually padded with NULs or
    // followed by raw floats: control bytes near the start give them away.
    let window = &text[..text.len().min(1024)];
    window
        .iter()
        .all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || b >= 0x20)
}

/// A `solid` file whose size breaks the binary rule and whose bytes are
/// plain text up to a stray NUL past the binary preamble is a damaged ASCII
/// STL: reading its text as a triangle count would declare hundreds of
/// millions of triangles and hide the real problem. Binary headers that start
/// with "solid" are NUL-padded inside their 80 bytes, so they stay binary.
fn ascii_up_to_nul(bytes: &[u8]) -> bool {
    let text = strip_bom(bytes).trim_ascii_start();
    if !text
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"solid"))
    {
        return false;
    }
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    end >= PREAMBLE
        && text[..end]
            .iter()
            .all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || b >= 0x20)
}

fn parse_binary(bytes: &[u8], path: &Path) -> Result<TriangleMesh, MeshError> {
    let Some(count) = declared_count(bytes) else {
        return Err(MeshError::parse(
            path,
            None,
            format!(
                "file is {} bytes, shorter than the {PREAMBLE}-byte preamble of a binary STL",
                bytes.len()
            ),
        ));
    };
    let capacity = ((bytes.len() - PREAMBLE) / RECORD) as u64;
    if u64::from(count) > capacity {
        return Err(MeshError::TooLarge {
            path: path.to_path_buf(),
            what: format!(
                "triangles in its binary STL header (a binary STL of {} bytes has room for {capacity})",
                bytes.len()
            ),
            count: count.into(),
            limit: capacity,
        });
    }
    let count = count as usize;
    let expected = PREAMBLE + RECORD * count;
    if bytes.len() > expected {
        log::warn!(
            "{}: ignoring {} bytes after the {count} triangles of this binary STL",
            path.display(),
            bytes.len() - expected
        );
    }
    let mut welder = Welder::with_capacity(count);
    for (t, record) in bytes[PREAMBLE..expected].chunks_exact(RECORD).enumerate() {
        // Each record: normal (ignored: we derive orientation from winding),
        // three corners, two attribute bytes.
        let mut corners = [[0f32; 3]; 3];
        for (k, corner) in corners.iter_mut().enumerate() {
            for (axis, c) in corner.iter_mut().enumerate() {
                let at = 12 + 12 * k + 4 * axis;
                let v = f32::from_le_bytes([
                    record[at],
                    record[at + 1],
                    record[at + 2],
                    record[at + 3],
                ]);
                if !v.is_finite() {
                    return Err(MeshError::parse(
                        path,
                        None,
                        format!("triangle {t} has a NaN or infinite vertex coordinate"),
                    ));
                }
                *c = v;
            }
        }
        welder.polygon(&corners, path)?;
    }
    Ok(welder.mesh)
}

fn parse_ascii(bytes: &[u8], path: &Path) -> Result<TriangleMesh, MeshError> {
    let bytes = strip_bom(bytes);
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(MeshError::parse(
            path,
            Some(line),
            "a NUL byte in an ASCII STL (the file is damaged, or was cut and joined); \
             export it again, as binary STL if the exporter offers it",
        ));
    }
    // A facet needs roughly 200 bytes of text; the estimate only sizes the
    // initial allocation, it is never trusted.
    let mut welder = Welder::with_capacity(bytes.len() / 256);
    let mut corners: Vec<[f32; 3]> = Vec::with_capacity(3);
    let mut last_line = 0;
    for (line_no, _, line) in lines(bytes) {
        last_line = line_no;
        let mut toks = tokens(line);
        let Some(keyword) = toks.next() else {
            continue;
        };
        // Keywords are case-insensitive in practice; lower-casing into a
        // stack buffer avoids an allocation per line.
        let mut buf = [0u8; 8];
        let kw = match buf.get_mut(..keyword.len()) {
            Some(b) => {
                b.copy_from_slice(keyword);
                b.make_ascii_lowercase();
                &*b
            }
            None => keyword,
        };
        match kw {
            b"vertex" => {
                let at = Some(line_no);
                let x = parse_coord(toks.next(), path, at, "vertex")?;
                let y = parse_coord(toks.next(), path, at, "vertex")?;
                let z = parse_coord(toks.next(), path, at, "vertex")?;
                corners.push([x, y, z]);
            }
            // Any structural keyword closes a pending loop, which keeps files
            // that omit "endloop" or "outer loop" readable.
            b"solid" | b"endsolid" | b"facet" | b"outer" | b"endloop" | b"endfacet" => {
                flush(&mut corners, &mut welder, path, line_no)?;
            }
            _ => {
                return Err(MeshError::parse(
                    path,
                    Some(line_no),
                    format!("unexpected '{}' in an ASCII STL", show(keyword)),
                ))
            }
        }
    }
    flush(&mut corners, &mut welder, path, last_line)?;
    Ok(welder.mesh)
}

fn flush(
    corners: &mut Vec<[f32; 3]>,
    welder: &mut Welder,
    path: &Path,
    line: usize,
) -> Result<(), MeshError> {
    match corners.len() {
        0 => Ok(()),
        1 | 2 => Err(MeshError::parse(
            path,
            Some(line),
            format!(
                "facet has {} vertices; at least 3 are needed",
                corners.len()
            ),
        )),
        _ => {
            welder.polygon(corners, path)?;
            corners.clear();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::test_util::TempDir;
    use crate::mesh::{load, load_from_bytes, primitives, write_stl_binary};

    fn binary_stl(header: &[u8], tris: &[[[f32; 3]; 3]], declared: u32) -> Vec<u8> {
        let mut out = vec![0u8; HEADER];
        out[..header.len()].copy_from_slice(header);
        out.extend_from_slice(&declared.to_le_bytes());
        for t in tris {
            out.extend_from_slice(&[0u8; 12]);
            for v in t {
                for c in v {
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    const TWO: [[[f32; 3]; 3]; 2] = [
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
    ];

    #[test]
    fn binary_round_trip_welds_vertices() {
        let dir = TempDir::new("stl");
        let cube = primitives::unit_cube();
        let p = dir.path("cube.stl");
        write_stl_binary(&cube, &p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 84 + 50 * 12);
        let back = load(&p).unwrap();
        assert_eq!(back.vertices.len(), 8);
        assert_eq!(back.triangles.len(), 12);
        // Same triangles, as positions, in the same order and winding.
        for (a, b) in cube.triangles.iter().zip(&back.triangles) {
            for k in 0..3 {
                assert_eq!(cube.vertices[a[k] as usize], back.vertices[b[k] as usize]);
            }
        }
        assert!(back.validate().unwrap().watertight);
    }

    #[test]
    fn binary_with_solid_header() {
        let bytes = binary_stl(b"solid exported by some CAD tool", &TWO, 2);
        let m = load_from_bytes(&bytes, None).unwrap();
        assert_eq!(m.vertices.len(), 4);
        assert_eq!(m.triangles, vec![[0, 1, 2], [1, 3, 2]]);
        // Even when the header is pure printable text, the size rule wins.
        let mut text_header = [b' '; 80];
        text_header[..5].copy_from_slice(b"solid");
        let bytes = binary_stl(&text_header, &TWO, 2);
        assert_eq!(
            load_from_bytes(&bytes, Some("stl"))
                .unwrap()
                .triangles
                .len(),
            2
        );
        assert_eq!(load_from_bytes(&bytes, None).unwrap().triangles.len(), 2);
    }

    #[test]
    fn ascii_parses_and_welds() {
        let text = "solid cube\n facet normal 0 0 -1\n  outer loop\n   vertex 0 0 0\n   vertex 1 0 0\n   vertex 0 1 0\n  endloop\n endfacet\n\
                    facet normal nan nan nan\r\n outer loop\r\n vertex 1 0 0\r\n vertex 1 1 0\r\n vertex -0 1.0e0 0\r\n endloop\r\n endfacet\nendsolid cube\n";
        let m = load_from_bytes(text.as_bytes(), None).unwrap();
        assert_eq!(m.vertices.len(), 4);
        assert_eq!(m.triangles, vec![[0, 1, 2], [1, 3, 2]]);
        // Upper-case keywords and a BOM occur in the wild.
        let upper = format!("\u{feff}{}", text.to_uppercase());
        assert_eq!(load_from_bytes(upper.as_bytes(), Some("stl")).unwrap(), m);
    }

    #[test]
    fn truncated_binary() {
        let full = binary_stl(b"x", &TWO, 2);
        // Cut inside the preamble: not even a header.
        let err = load_from_bytes(&full[..50], Some("stl")).unwrap_err();
        assert!(matches!(err, MeshError::Parse { line: None, .. }), "{err}");
        // Cut inside the triangles: the header promises more than is there.
        let err = load_from_bytes(&full[..full.len() - 10], Some("stl")).unwrap_err();
        match err {
            MeshError::TooLarge { count, limit, .. } => assert_eq!((count, limit), (2, 1)),
            other => panic!("unexpected {other}"),
        }
        // Without the .stl name, a non-matching size is simply not an STL.
        assert!(matches!(
            load_from_bytes(&full[..full.len() - 10], None),
            Err(MeshError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn huge_count_short_file_is_too_large_without_allocating() {
        let bytes = binary_stl(b"x", &TWO, u32::MAX);
        let err = load_from_bytes(&bytes, Some("stl")).unwrap_err();
        assert!(matches!(err, MeshError::TooLarge { count, .. } if count == u32::MAX as u64));
        let dir = TempDir::new("stlhuge");
        let p = dir.path("huge.stl");
        std::fs::write(&p, &bytes).unwrap();
        let msg = load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("huge.stl") && msg.contains("4294967295"),
            "{msg}"
        );
    }

    #[test]
    fn trailing_bytes_tolerated_for_stl_name() {
        let mut bytes = binary_stl(b"x", &TWO, 2);
        bytes.extend_from_slice(&[0u8; 7]);
        assert_eq!(
            load_from_bytes(&bytes, Some("stl"))
                .unwrap()
                .triangles
                .len(),
            2
        );
    }

    #[test]
    fn ascii_with_a_nul_is_damaged_text_not_a_huge_binary() {
        let mut bytes = b"solid part\n".to_vec();
        for _ in 0..3 {
            bytes.extend_from_slice(
                b"facet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\n",
            );
        }
        let nul_line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        bytes.extend_from_slice(b"endso\0lid part\n");
        let e = load_from_bytes(&bytes, Some("stl")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("line {nul_line}: a NUL byte in an ASCII STL")),
            "{msg}"
        );
        assert!(msg.contains("export it again"), "{msg}");
        // A truncated binary STL still reports both counts.
        let mut bin = binary_stl(b"solid x", &TWO, 7);
        bin.truncate(bin.len() - 3);
        let msg = load_from_bytes(&bin, Some("stl")).unwrap_err().to_string();
        assert!(msg.contains("declares 7 triangles"), "{msg}");
        assert!(
            msg.contains(&format!("of {} bytes has room for 1", bin.len())),
            "{msg}"
        );
    }

    #[test]
    fn zero_triangles_is_empty() {
        let bytes = binary_stl(b"x", &[], 0);
        assert!(matches!(
            load_from_bytes(&bytes, None),
            Err(MeshError::EmptyFile { .. })
        ));
        assert!(matches!(
            load_from_bytes(b"solid a\nendsolid a\n", None),
            Err(MeshError::EmptyFile { .. })
        ));
    }

    #[test]
    fn nan_coordinates_rejected() {
        let mut tris = TWO;
        tris[1][2][1] = f32::NAN;
        let err = load_from_bytes(&binary_stl(b"x", &tris, 2), None).unwrap_err();
        assert!(err.to_string().contains("triangle 1"), "{err}");
        let text = b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 nan 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid\n";
        let err = load_from_bytes(text, None).unwrap_err();
        assert!(
            matches!(err, MeshError::Parse { line: Some(5), .. }),
            "{err}"
        );
        let text = b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 1e39 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid\n";
        assert!(matches!(
            load_from_bytes(text, None),
            Err(MeshError::Parse { line: Some(5), .. })
        ));
    }

    #[test]
    fn ascii_malformed() {
        let cases: [(&[u8], usize); 4] = [
            (
                b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 zero 0\n",
                4,
            ),
            (b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0\n", 4),
            (
                b"solid a\nfacet\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\n",
                6,
            ),
            (b"solid a\nfacet\nbanana\n", 3),
        ];
        for (text, line) in cases {
            match load_from_bytes(text, None) {
                Err(MeshError::Parse { line: l, .. }) => assert_eq!(l, Some(line)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn ascii_quad_loop_is_fanned() {
        let text = b"solid q\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 1 1 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid q";
        let m = load_from_bytes(text, None).unwrap();
        assert_eq!(m.triangles, vec![[0, 1, 2], [0, 2, 3]]);
    }
}
