//! Format dispatch and the helpers the individual parsers share.

use std::collections::HashMap;
use std::path::Path;

use super::geometry::weld_key;
use super::{obj, off, ply, stl, MeshError, TriangleMesh};

/// Loads a mesh file.
///
/// The extension picks the parser for `.obj`, `.off` and `.ply`. STL is
/// recognised by content (binary by the 84 + 50·n size rule, ASCII by its
/// `solid` keyword), so misnamed STL files still load; a `.stl` extension only
/// makes the binary parser report why a malformed file is not a valid STL.
/// Files with other or no extension are sniffed for PLY, OFF and STL.
///
/// The result always has at least one triangle, only finite coordinates and
/// only in-range indices; degenerate triangles are kept (see
/// [`TriangleMesh::without_degenerate`]). STL vertices are welded by exact
/// position so the mesh is indexed.
pub fn load(path: &Path) -> Result<TriangleMesh, MeshError> {
    let bytes = std::fs::read(path).map_err(|e| MeshError::io(path, e))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    parse(&bytes, ext.as_deref(), path)
}

/// Parses a mesh held in memory. `format_hint` is an extension such as
/// `"obj"` or `".PLY"`; `None` or an empty hint means sniff the content, an
/// unknown hint tries only the formats with a signature (PLY, OFF, STL).
/// Errors name the pseudo path `<memory>`.
pub fn load_from_bytes(bytes: &[u8], format_hint: Option<&str>) -> Result<TriangleMesh, MeshError> {
    let hint = format_hint
        .map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty());
    parse(bytes, hint.as_deref(), Path::new("<memory>"))
}

fn parse(bytes: &[u8], ext: Option<&str>, path: &Path) -> Result<TriangleMesh, MeshError> {
    let empty = || MeshError::EmptyFile {
        path: path.to_path_buf(),
    };
    if strip_bom(bytes).iter().all(u8::is_ascii_whitespace) {
        return Err(empty());
    }
    let mesh = match ext {
        Some("obj") => obj::parse(bytes, path)?,
        Some("off") => off::parse(bytes, path)?,
        Some("ply") => ply::parse(bytes, path)?,
        Some("stl") => stl::parse(bytes, path, true)?,
        // A named but unknown extension (.3ds, .lwo, .x) is only tried as the
        // formats with a reliable signature; OBJ's sniff is too permissive
        // and would turn "wrong format" into "no triangles".
        Some(_) => by_signature(bytes, path, false)?,
        None => by_signature(bytes, path, true)?,
    };
    if mesh.triangles.is_empty() {
        return Err(empty());
    }
    log::debug!(
        "loaded {}: {} vertices, {} triangles",
        path.display(),
        mesh.vertices.len(),
        mesh.triangles.len()
    );
    Ok(mesh)
}

/// A mesh read by its content's signature: PLY, OFF and STL, whose
/// signatures are reliable, and OBJ only when `obj` (its sniff accepts
/// almost any text, so for a named unknown extension it would turn "wrong
/// format" into "no triangles").
fn by_signature(bytes: &[u8], path: &Path, obj: bool) -> Result<TriangleMesh, MeshError> {
    if ply::sniff(bytes) {
        ply::parse(bytes, path)
    } else if off::sniff(bytes) {
        off::parse(bytes, path)
    } else if stl::sniff(bytes) {
        stl::parse(bytes, path, false)
    } else if obj && obj::sniff(bytes) {
        obj::parse(bytes, path)
    } else {
        Err(MeshError::UnknownFormat {
            path: path.to_path_buf(),
        })
    }
}

pub(super) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Text formats are split on `\n` only; a trailing `\r` and surrounding
/// whitespace are trimmed. Yields (1-based line number, byte offset of the
/// line end, trimmed line).
pub(super) fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, usize, &[u8])> {
    let mut start = 0usize;
    let mut line_no = 0usize;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let rest = &bytes[start..];
        let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = rest[..len].trim_ascii();
        start += len + 1;
        line_no += 1;
        Some((line_no, start.min(bytes.len()), line))
    })
}

pub(super) fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
}

/// Cuts a `#` comment off a line of an OBJ or OFF file.
pub(super) fn strip_comment(line: &[u8]) -> &[u8] {
    match line.iter().position(|&b| b == b'#') {
        Some(i) => line[..i].trim_ascii_end(),
        None => line,
    }
}

/// Quoting tokens in messages must not dump megabytes of garbage or invalid
/// UTF-8 into a log line.
pub(super) fn show(token: &[u8]) -> String {
    const MAX: usize = 40;
    let s = String::from_utf8_lossy(&token[..token.len().min(MAX)]).into_owned();
    if token.len() > MAX {
        format!("{s}...")
    } else {
        s
    }
}

/// Parses one coordinate, rejecting both non-numbers and NaN/infinity so the
/// message can say which.
pub(super) fn parse_coord(
    token: Option<&[u8]>,
    path: &Path,
    line: Option<usize>,
    what: &str,
) -> Result<f32, MeshError> {
    let token = token.ok_or_else(|| {
        MeshError::parse(
            path,
            line,
            format!("{what} needs 3 coordinates, found fewer"),
        )
    })?;
    let value = std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .ok_or_else(|| {
            MeshError::parse(
                path,
                line,
                format!("{what} coordinate '{}' is not a number", show(token)),
            )
        })?;
    if !value.is_finite() {
        return Err(MeshError::parse(
            path,
            line,
            format!(
                "{what} coordinate '{}' is not finite (NaN, infinite, or too large for f32)",
                show(token)
            ),
        ));
    }
    Ok(value)
}

pub(super) fn parse_int(token: &[u8]) -> Option<i64> {
    std::str::from_utf8(token).ok()?.parse::<i64>().ok()
}

/// Text formats must not contain NUL bytes; checking up front turns "binary
/// file handed to a text parser" into one clear message instead of a
/// confusing complaint about some token.
pub(super) fn reject_binary(bytes: &[u8], path: &Path, format: &str) -> Result<(), MeshError> {
    if bytes.contains(&0) {
        return Err(MeshError::parse(
            path,
            None,
            format!("file contains binary data; it is not a {format} text file"),
        ));
    }
    Ok(())
}

/// Vertex indices are u32, so a file can address at most this many vertices.
pub(super) const MAX_VERTICES: u64 = u32::MAX as u64 + 1;

pub(super) fn check_vertex_count(count: u64, path: &Path) -> Result<(), MeshError> {
    if count > MAX_VERTICES {
        return Err(MeshError::TooLarge {
            path: path.to_path_buf(),
            what: "vertices (indices are 32-bit)".into(),
            count,
            limit: MAX_VERTICES,
        });
    }
    Ok(())
}

/// Splits a convex-ish polygon into a triangle fan around its first vertex,
/// the usual interpretation of n-gons in OBJ/OFF/PLY.
pub(super) fn fan(polygon: &[u32], out: &mut Vec<[u32; 3]>) {
    if let Some((&first, rest)) = polygon.split_first() {
        for pair in rest.windows(2) {
            out.push([first, pair[0], pair[1]]);
        }
    }
}

/// Turns STL's triangle soup into an indexed mesh by merging vertices with
/// bit-identical coordinates. Exact matching is deliberate: STL writers emit
/// shared corners as identical floats, and tolerance-based merging could
/// collapse genuinely distinct fine detail.
pub(super) struct Welder {
    map: HashMap<[u32; 3], u32>,
    pub(super) mesh: TriangleMesh,
}

impl Welder {
    pub(super) fn with_capacity(triangles: usize) -> Self {
        // Closed meshes have about half as many vertices as triangles.
        Welder {
            map: HashMap::with_capacity(triangles / 2 + 3),
            mesh: TriangleMesh {
                vertices: Vec::with_capacity(triangles / 2 + 3),
                triangles: Vec::with_capacity(triangles),
            },
        }
    }

    /// Callers reject non-finite coordinates first, so NaN payloads never
    /// reach the map.
    pub(super) fn vertex(&mut self, p: [f32; 3], path: &Path) -> Result<u32, MeshError> {
        // +0.0 and -0.0 are the same point but different bit patterns.
        let key = weld_key(p);
        if let Some(&i) = self.map.get(&key) {
            return Ok(i);
        }
        let n = self.mesh.vertices.len();
        check_vertex_count(n as u64 + 1, path)?;
        let i = n as u32;
        self.mesh.vertices.push(p);
        self.map.insert(key, i);
        Ok(i)
    }

    pub(super) fn polygon(&mut self, corners: &[[f32; 3]], path: &Path) -> Result<(), MeshError> {
        let mut ids = Vec::with_capacity(corners.len());
        for &c in corners {
            ids.push(self.vertex(c, path)?);
        }
        fan(&ids, &mut self.mesh.triangles);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::test_util::{Lcg, TempDir};
    use crate::mesh::{primitives, save};

    #[test]
    fn empty_and_whitespace_inputs_are_empty() {
        for hint in [None, Some("obj"), Some("stl"), Some("ply"), Some("off")] {
            assert!(matches!(
                load_from_bytes(b"", hint),
                Err(MeshError::EmptyFile { .. })
            ));
            assert!(matches!(
                load_from_bytes(b"\xEF\xBB\xBF \n\r\n", hint),
                Err(MeshError::EmptyFile { .. })
            ));
        }
    }

    #[test]
    fn empty_file_on_disk() {
        let dir = TempDir::new("empty");
        let p = dir.path("e.obj");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(load(&p), Err(MeshError::EmptyFile { .. })));
    }

    #[test]
    fn missing_file_is_io_error_naming_path() {
        let p = Path::new("/definitely/not/here/mesh.obj");
        let err = load(p).unwrap_err();
        assert!(matches!(err, MeshError::Io { .. }));
        assert!(err.to_string().contains("/definitely/not/here/mesh.obj"));
    }

    #[test]
    fn unknown_extension_and_content_is_unknown_format() {
        let dir = TempDir::new("unknown");
        let p = dir.path("notes.txt");
        std::fs::write(&p, b"hello world\n").unwrap();
        assert!(matches!(load(&p), Err(MeshError::UnknownFormat { .. })));
        assert!(matches!(
            load_from_bytes(b"hello", Some("xyz")),
            Err(MeshError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn sniffing_without_extension() {
        let dir = TempDir::new("sniff");
        let cube = primitives::unit_cube();
        for (ext, other) in [("stl", "a"), ("ply", "b")] {
            let p = dir.path(&format!("cube.{ext}"));
            save(&cube, &p).unwrap();
            let renamed = dir.path(other);
            std::fs::rename(&p, &renamed).unwrap();
            let m = load(&renamed).unwrap();
            assert_eq!(m.triangles.len(), 12, "{ext}");
        }
        let off = b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n";
        assert_eq!(load_from_bytes(off, None).unwrap().triangles.len(), 1);
        let obj = b"# a triangle\n\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
        assert_eq!(load_from_bytes(obj, None).unwrap().triangles.len(), 1);
        // Upper-case extensions are common on Windows exports.
        let p = dir.path("CUBE.OBJ");
        save(&cube, &p).unwrap();
        assert_eq!(load(&p).unwrap(), cube);
    }

    #[test]
    fn binary_garbage_never_panics_and_errors() {
        let mut rng = Lcg(7);
        for round in 0..300 {
            let len = (rng.next_u64() % 700) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            for hint in [None, Some("obj"), Some("stl"), Some("ply"), Some("off")] {
                let r = load_from_bytes(&bytes, hint);
                // Random bytes essentially never form a valid mesh; the point
                // is a typed error instead of a panic.
                assert!(r.is_err(), "round {round} hint {hint:?} parsed garbage");
            }
        }
        let garbage: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let err = load_from_bytes(&garbage, Some("stl")).unwrap_err();
        assert!(
            matches!(err, MeshError::TooLarge { .. } | MeshError::Parse { .. }),
            "{err}"
        );
        assert!(matches!(
            load_from_bytes(&garbage, None),
            Err(MeshError::UnknownFormat { .. })
        ));
        assert!(matches!(
            load_from_bytes(&garbage, Some("obj")),
            Err(MeshError::Parse { .. })
        ));
    }

    #[test]
    fn mutated_valid_files_never_panic() {
        let dir = TempDir::new("mutate");
        let mesh = primitives::icosphere(1);
        let mut rng = Lcg(99);
        for ext in ["obj", "stl", "ply"] {
            let p = dir.path(&format!("m.{ext}"));
            save(&mesh, &p).unwrap();
            let original = std::fs::read(&p).unwrap();
            // Every truncation point of the header region and a spread of
            // later ones, then random byte flips.
            let cuts = (0..original.len().min(400)).chain((400..original.len()).step_by(97));
            for cut in cuts {
                let _ = load_from_bytes(&original[..cut], Some(ext));
                let _ = load_from_bytes(&original[..cut], None);
            }
            for _ in 0..300 {
                let mut bytes = original.clone();
                for _ in 0..1 + rng.next_u64() % 4 {
                    let i = (rng.next_u64() as usize) % bytes.len();
                    bytes[i] = rng.next_u64() as u8;
                }
                if let Ok(m) = load_from_bytes(&bytes, Some(ext)) {
                    // Whatever loads must satisfy the loader's contract.
                    m.validate().unwrap();
                }
            }
        }
        let off = b"OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n4 0 2 3 1\n".to_vec();
        for _ in 0..300 {
            let mut bytes = off.clone();
            let i = (rng.next_u64() as usize) % bytes.len();
            bytes[i] = rng.next_u64() as u8;
            if let Ok(m) = load_from_bytes(&bytes, Some("off")) {
                m.validate().unwrap();
            }
        }
    }

    #[test]
    fn fan_triangulates_ngons() {
        let mut out = Vec::new();
        fan(&[0, 1, 2, 3, 4], &mut out);
        assert_eq!(out, vec![[0, 1, 2], [0, 2, 3], [0, 3, 4]]);
        out.clear();
        fan(&[], &mut out);
        fan(&[1, 2], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn welder_merges_signed_zero() {
        let mut w = Welder::with_capacity(1);
        let p = Path::new("x");
        let a = w.vertex([0.0, -0.0, 1.0], p).unwrap();
        let b = w.vertex([-0.0, 0.0, 1.0], p).unwrap();
        let c = w.vertex([0.0, 0.0, 1.0000001], p).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(w.mesh.vertices.len(), 2);
    }

    #[test]
    fn lines_helper_handles_crlf_and_offsets() {
        let text = b"a b\r\n\n  c  \r\nd";
        let got: Vec<_> = lines(text).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (1, 5, &b"a b"[..]));
        assert_eq!(got[1].2, b"");
        assert_eq!(got[2].2, b"c");
        assert_eq!(got[3], (4, text.len(), &b"d"[..]));
    }
}
