//! Stanford PLY in all three encodings. Only `vertex` (x, y, z) and `face`
//! (`vertex_indices` or `vertex_index`) matter, but every other property and
//! element must still be stepped over correctly, so the header is parsed in
//! full.

use std::path::Path;

use super::load::{check_vertex_count, fan, lines, show, tokens};
use super::{MeshError, TriangleMesh};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"char" | b"int8" => Scalar::I8,
            b"uchar" | b"uint8" => Scalar::U8,
            b"short" | b"int16" => Scalar::I16,
            b"ushort" | b"uint16" => Scalar::U16,
            b"int" | b"int32" => Scalar::I32,
            b"uint" | b"uint32" => Scalar::U32,
            b"float" | b"float32" => Scalar::F32,
            b"double" | b"float64" => Scalar::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::F64 => 8,
        }
    }
}

#[derive(Debug)]
enum Prop {
    Scalar(Scalar),
    List { count: Scalar, item: Scalar },
}

#[derive(Debug)]
struct Element {
    name: Vec<u8>,
    count: u64,
    props: Vec<(Vec<u8>, Prop)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Ascii,
    Binary { big_endian: bool },
}

pub(super) fn sniff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"ply\n") || bytes.starts_with(b"ply\r\n")
}

pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<TriangleMesh, MeshError> {
    let (encoding, elements, body) = parse_header(bytes, path)?;
    let body = &bytes[body..];
    match encoding {
        Encoding::Ascii => read_body(
            Ascii {
                bytes: body,
                pos: 0,
                line: header_lines(bytes) + 1,
            },
            &elements,
            path,
        ),
        Encoding::Binary { big_endian } => read_body(
            Binary {
                bytes: body,
                pos: 0,
                big_endian,
            },
            &elements,
            path,
        ),
    }
}

fn header_lines(bytes: &[u8]) -> usize {
    lines(bytes)
        .find(|(_, _, l)| *l == b"end_header")
        .map_or(0, |(n, _, _)| n)
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<(Encoding, Vec<Element>, usize), MeshError> {
    if !sniff(bytes) {
        return Err(MeshError::parse(
            path,
            Some(1),
            "missing the 'ply' magic line",
        ));
    }
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    for (n, end, line) in lines(bytes).skip(1) {
        let err = |msg: String| MeshError::parse(path, Some(n), msg);
        let mut toks = tokens(line);
        let Some(keyword) = toks.next() else {
            continue;
        };
        match keyword {
            b"end_header" => {
                let encoding = encoding.ok_or_else(|| err("header has no 'format' line".into()))?;
                return Ok((encoding, elements, end));
            }
            b"comment" | b"obj_info" => {}
            b"format" => {
                encoding = Some(match toks.next() {
                    Some(b"ascii") => Encoding::Ascii,
                    Some(b"binary_little_endian") => Encoding::Binary { big_endian: false },
                    Some(b"binary_big_endian") => Encoding::Binary { big_endian: true },
                    other => {
                        return Err(err(format!(
                            "unknown PLY format '{}'",
                            show(other.unwrap_or_default())
                        )))
                    }
                });
            }
            b"element" => {
                let (Some(name), Some(count)) = (toks.next(), toks.next()) else {
                    return Err(err("element line needs a name and a count".into()));
                };
                let count = std::str::from_utf8(count)
                    .ok()
                    .and_then(|c| c.parse::<u64>().ok())
                    .ok_or_else(|| {
                        err(format!("element count '{}' is not a number", show(count)))
                    })?;
                elements.push(Element {
                    name: name.to_vec(),
                    count,
                    props: Vec::new(),
                });
            }
            b"property" => {
                let element = elements
                    .last_mut()
                    .ok_or_else(|| err("property before any element".into()))?;
                let parts: Vec<&[u8]> = toks.collect();
                let scalar = |t: &[u8]| {
                    Scalar::from_name(t)
                        .ok_or_else(|| err(format!("unknown property type '{}'", show(t))))
                };
                let (name, prop) = match parts.as_slice() {
                    [b"list", count, item, name] => {
                        let count = scalar(count)?;
                        if matches!(count, Scalar::F32 | Scalar::F64) {
                            return Err(err("list count type must be an integer type".into()));
                        }
                        (
                            name,
                            Prop::List {
                                count,
                                item: scalar(item)?,
                            },
                        )
                    }
                    [ty, name] => (name, Prop::Scalar(scalar(ty)?)),
                    _ => return Err(err("malformed property line".into())),
                };
                element.props.push((name.to_vec(), prop));
            }
            // Exporters write free text into the header ("Created by
            // Blender ..." in assimp's Wuson.ply); other readers skip such
            // lines, and nothing in them changes how the body is read.
            other => {
                log::debug!(
                    "{}, line {n}: skipping unknown PLY header line starting '{}'",
                    path.display(),
                    show(other)
                );
            }
        }
    }
    Err(MeshError::parse(
        path,
        None,
        "header has no 'end_header' line",
    ))
}

/// The two encodings behind one interface so the element walk exists once.
/// Errors are bare messages; the walk adds path, line and element context.
trait Source {
    fn coord(&mut self, ty: Scalar) -> Result<f32, String>;
    fn int(&mut self, ty: Scalar) -> Result<i64, String>;
    fn skip(&mut self, ty: Scalar, n: u64) -> Result<(), String>;
    fn line(&self) -> Option<usize>;
    /// Upper bound on how many records of `props` can still follow, used to
    /// refuse absurd header counts before allocating for them.
    fn capacity(&self, props: &[(Vec<u8>, Prop)]) -> u64;
}

struct Ascii<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Ascii<'a> {
    fn token(&mut self) -> Result<&'a [u8], String> {
        // On failure the error should point at the last line with data, not
        // past the final newline.
        let line_before = self.line;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_whitespace() {
                break;
            }
            if b == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
        let start = self.pos;
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| !b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
        if start == self.pos {
            self.line = line_before;
            return Err("file ends early".into());
        }
        Ok(&self.bytes[start..self.pos])
    }
}

impl Source for Ascii<'_> {
    fn coord(&mut self, _ty: Scalar) -> Result<f32, String> {
        // Parsing straight to f32 rounds once, whatever type the header
        // declared.
        let t = self.token()?;
        std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<f32>().ok())
            .ok_or_else(|| format!("'{}' is not a number", show(t)))
    }

    fn int(&mut self, ty: Scalar) -> Result<i64, String> {
        let t = self.token()?;
        let s = std::str::from_utf8(t).ok();
        s.and_then(|s| s.parse::<i64>().ok())
            .or_else(|| {
                // Some writers print integral floats ("3.0") even for
                // integer-typed properties.
                let v = s?.parse::<f64>().ok()?;
                (v.fract() == 0.0 && v.abs() < 9e15 && matches!(ty, Scalar::F32 | Scalar::F64))
                    .then_some(v as i64)
            })
            .ok_or_else(|| format!("'{}' is not an integer", show(t)))
    }

    fn skip(&mut self, _ty: Scalar, n: u64) -> Result<(), String> {
        // Bounded by the file: token() fails at the end of the data.
        for _ in 0..n {
            self.token()?;
        }
        Ok(())
    }

    fn line(&self) -> Option<usize> {
        Some(self.line)
    }

    fn capacity(&self, props: &[(Vec<u8>, Prop)]) -> u64 {
        // Every value needs a character and a separator.
        let per_record = 2 * props.len() as u64;
        (self.bytes.len() - self.pos + 1) as u64 / per_record.max(1)
    }
}

struct Binary<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Binary<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let chunk = self
            .bytes
            .get(self.pos..self.pos + N)
            .ok_or_else(|| "file ends early".to_string())?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(chunk);
        if self.big_endian {
            out.reverse();
        }
        Ok(out)
    }

    /// Every PLY scalar fits an f64 exactly, which keeps one conversion path.
    fn value(&mut self, ty: Scalar) -> Result<f64, String> {
        Ok(match ty {
            Scalar::I8 => i8::from_le_bytes(self.take()?).into(),
            Scalar::U8 => u8::from_le_bytes(self.take()?).into(),
            Scalar::I16 => i16::from_le_bytes(self.take()?).into(),
            Scalar::U16 => u16::from_le_bytes(self.take()?).into(),
            Scalar::I32 => i32::from_le_bytes(self.take()?).into(),
            Scalar::U32 => u32::from_le_bytes(self.take()?).into(),
            Scalar::F32 => f32::from_le_bytes(self.take()?).into(),
            Scalar::F64 => f64::from_le_bytes(self.take()?),
        })
    }
}

impl Source for Binary<'_> {
    fn coord(&mut self, ty: Scalar) -> Result<f32, String> {
        Ok(self.value(ty)? as f32)
    }

    fn int(&mut self, ty: Scalar) -> Result<i64, String> {
        let v = self.value(ty)?;
        if v.fract() != 0.0 || v.abs() >= 9e15 || v.is_nan() {
            return Err(format!("{v} is not an integer"));
        }
        Ok(v as i64)
    }

    fn skip(&mut self, ty: Scalar, n: u64) -> Result<(), String> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        match n.checked_mul(ty.size() as u64) {
            Some(len) if len <= remaining => {
                self.pos += len as usize;
                Ok(())
            }
            _ => Err("file ends early".into()),
        }
    }

    fn line(&self) -> Option<usize> {
        None
    }

    fn capacity(&self, props: &[(Vec<u8>, Prop)]) -> u64 {
        let per_record: usize = props
            .iter()
            .map(|(_, p)| match p {
                Prop::Scalar(s) => s.size(),
                Prop::List { count, .. } => count.size(),
            })
            .sum();
        (self.bytes.len() - self.pos) as u64 / per_record.max(1) as u64
    }
}

enum Role {
    Vertex([usize; 3]),
    Face(usize),
    Other,
}

fn role(el: &Element, seen_vertex: bool, seen_face: bool, path: &Path) -> Result<Role, MeshError> {
    let find = |name: &[u8]| el.props.iter().position(|(n, _)| n == name);
    if el.name == b"vertex" && !seen_vertex {
        let mut axes = [0usize; 3];
        for (axis, name) in axes.iter_mut().zip(["x", "y", "z"]) {
            *axis = find(name.as_bytes())
                .filter(|&i| matches!(el.props[i].1, Prop::Scalar(_)))
                .ok_or_else(|| {
                    MeshError::parse(
                        path,
                        None,
                        format!("vertex element has no scalar '{name}' property"),
                    )
                })?;
        }
        return Ok(Role::Vertex(axes));
    }
    if el.name == b"face" && !seen_face {
        let list = find(b"vertex_indices")
            .or_else(|| find(b"vertex_index"))
            .filter(|&i| matches!(el.props[i].1, Prop::List { .. }))
            .ok_or_else(|| {
                MeshError::parse(
                    path,
                    None,
                    "face element has no 'vertex_indices' list property",
                )
            })?;
        return Ok(Role::Face(list));
    }
    Ok(Role::Other)
}

fn read_body<S: Source>(
    mut src: S,
    elements: &[Element],
    path: &Path,
) -> Result<TriangleMesh, MeshError> {
    let vertex_count = elements
        .iter()
        .find(|e| e.name == b"vertex")
        .map_or(0, |e| e.count);
    check_vertex_count(vertex_count, path)?;
    let mut mesh = TriangleMesh::default();
    let mut polygon: Vec<u32> = Vec::new();
    // Roles are settled before any data is read so that header mistakes are
    // reported as such, not as whatever the body happens to trip over.
    let (mut seen_vertex, mut seen_face) = (false, false);
    let mut roles = Vec::with_capacity(elements.len());
    for el in elements {
        let r = role(el, seen_vertex, seen_face, path)?;
        seen_vertex |= matches!(r, Role::Vertex(_));
        seen_face |= matches!(r, Role::Face(_));
        roles.push(r);
    }

    for (el, role) in elements.iter().zip(roles) {
        if el.props.is_empty() {
            continue;
        }
        let name = String::from_utf8_lossy(&el.name).into_owned();
        let capacity = src.capacity(&el.props);
        if el.count > capacity {
            return Err(MeshError::TooLarge {
                path: path.to_path_buf(),
                what: format!("'{name}' elements"),
                count: el.count,
                limit: capacity,
            });
        }
        match role {
            Role::Vertex(_) => mesh.vertices.reserve_exact(el.count as usize),
            Role::Face(_) => mesh.triangles.reserve(el.count as usize),
            Role::Other => {}
        }

        for e in 0..el.count {
            let fail = |line: Option<usize>, msg: String| {
                MeshError::parse(path, line, format!("{name} {e}: {msg}"))
            };
            let mut point = [0f32; 3];
            polygon.clear();
            for (pi, (_, prop)) in el.props.iter().enumerate() {
                match (prop, &role) {
                    (Prop::Scalar(ty), Role::Vertex(axes)) if axes.contains(&pi) => {
                        let v = src.coord(*ty).map_err(|m| fail(src.line(), m))?;
                        if !v.is_finite() {
                            return Err(fail(
                                src.line(),
                                "NaN or infinite coordinate (or too large for f32)".into(),
                            ));
                        }
                        for (axis, &at) in axes.iter().enumerate() {
                            if at == pi {
                                point[axis] = v;
                            }
                        }
                    }
                    (Prop::Scalar(ty), _) => src.skip(*ty, 1).map_err(|m| fail(src.line(), m))?,
                    (Prop::List { count, item }, _) => {
                        let n = src.int(*count).map_err(|m| fail(src.line(), m))?;
                        let n = u64::try_from(n)
                            .map_err(|_| fail(src.line(), format!("negative list length {n}")))?;
                        if !matches!(role, Role::Face(list) if list == pi) {
                            src.skip(*item, n).map_err(|m| fail(src.line(), m))?;
                            continue;
                        }
                        for _ in 0..n {
                            let i = src.int(*item).map_err(|m| fail(src.line(), m))?;
                            if i < 0 || i as u64 >= vertex_count {
                                return Err(fail(
                                    src.line(),
                                    format!("index {i} is out of range; there are {vertex_count} vertices"),
                                ));
                            }
                            polygon.push(i as u32);
                        }
                        if polygon.len() < 3 {
                            return Err(fail(
                                src.line(),
                                format!(
                                    "face has {} vertices; at least 3 are needed",
                                    polygon.len()
                                ),
                            ));
                        }
                    }
                }
            }
            match role {
                Role::Vertex(_) => mesh.vertices.push(point),
                Role::Face(_) => fan(&polygon, &mut mesh.triangles),
                Role::Other => {}
            }
        }
    }
    Ok(mesh)
}

#[cfg(test)]
mod tests {
    use crate::mesh::test_util::TempDir;
    use crate::mesh::{
        load, load_from_bytes, primitives, write_ply_binary, MeshError, TriangleMesh,
    };

    fn ply(bytes: &[u8]) -> Result<TriangleMesh, MeshError> {
        load_from_bytes(bytes, Some("ply"))
    }

    #[test]
    fn binary_round_trip() {
        let dir = TempDir::new("ply");
        for mesh in [primitives::unit_cube(), primitives::icosphere(2)] {
            let p = dir.path("m.ply");
            write_ply_binary(&mesh, &p).unwrap();
            assert_eq!(load(&p).unwrap(), mesh);
        }
    }

    const ASCII: &str = "ply\r\nformat ascii 1.0\r\ncomment made by hand\r\n\
        element vertex 4\r\nproperty float x\r\nproperty float y\r\nproperty float z\r\n\
        property uchar red\r\nproperty list uchar float junk\r\n\
        element face 2\r\nproperty uchar flags\r\nproperty list uchar int vertex_indices\r\n\
        element edge 1\r\nproperty int vertex1\r\nproperty int vertex2\r\n\
        end_header\r\n\
        0 0 0 255 2 0.5 0.5\r\n1 0 0 255 0\r\n1 1 0 255 1 7\r\n0 1 0 255 0\r\n\
        9 4 0 1 2 3\r\n9 3 0 2 1\r\n0 1\r\n";

    #[test]
    fn ascii_with_extra_properties_and_elements() {
        let m = ply(ASCII.as_bytes()).unwrap();
        assert_eq!(
            m.vertices,
            vec![[0., 0., 0.], [1., 0., 0.], [1., 1., 0.], [0., 1., 0.]]
        );
        assert_eq!(m.triangles, vec![[0, 1, 2], [0, 2, 3], [0, 2, 1]]);
    }

    #[test]
    fn free_text_header_lines_are_skipped() {
        // The shape of assimp's Wuson.ply header, which other readers accept.
        let text = "ply\nformat ascii 1.0\nCreated by Blender 2.49 - www.blender.org\n\
            element vertex 3\nproperty float x\nproperty float y\nproperty float z\n\
            element face 1\nproperty list uchar int vertex_indices\nend_header\n\
            0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n";
        assert_eq!(ply(text.as_bytes()).unwrap().triangles, vec![[0, 1, 2]]);
    }

    #[test]
    fn big_endian_with_doubles_and_reordered_axes() {
        let mut b = b"ply\nformat binary_big_endian 1.0\nelement vertex 3\n\
            property double z\nproperty short pad\nproperty double x\nproperty double y\n\
            element face 1\nproperty list uint ushort vertex_index\nend_header\n"
            .to_vec();
        for (x, y, z) in [(0.0f64, 0.0f64, 5.0f64), (1.0, 0.0, 5.0), (0.0, 1.0, 5.0)] {
            b.extend_from_slice(&z.to_be_bytes());
            b.extend_from_slice(&(-3i16).to_be_bytes());
            b.extend_from_slice(&x.to_be_bytes());
            b.extend_from_slice(&y.to_be_bytes());
        }
        b.extend_from_slice(&3u32.to_be_bytes());
        for i in [0u16, 1, 2] {
            b.extend_from_slice(&i.to_be_bytes());
        }
        let m = ply(&b).unwrap();
        assert_eq!(m.vertices, vec![[0., 0., 5.], [1., 0., 5.], [0., 1., 5.]]);
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
    }

    #[test]
    fn malformed_header_and_body() {
        let head = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n";
        let good = format!("{head}0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n");
        assert_eq!(ply(good.as_bytes()).unwrap().triangles.len(), 1);
        let cases: Vec<(String, Option<usize>)> = vec![
            (format!("{head}0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n"), Some(13)),
            (format!("{head}0 0 0\n1 0 0\n0 1 0\n3 0 -1 2\n"), Some(13)),
            (format!("{head}0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n"), Some(11)),
            (format!("{head}0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n"), Some(11)),
            (format!("{head}0 0 0\n1 0 0\n0 1 0\n3 0 1\n"), Some(13)),
            (format!("{head}0 0 0\n1 0 0\n0 1 0\n2 0 1\n"), Some(13)),
            (head.replace("format ascii", "format weird"), Some(2)),
            (head.replace("property float y", "property quad y"), Some(5)),
            (head.replace("property float z", "property float w"), None),
            (head.replace("end_header\n", ""), None),
            (head.replace("vertex_indices", "corners"), None),
            (
                head.replace("element vertex 3", "element vertex three"),
                Some(3),
            ),
            (
                "ply\nformat ascii 1.0\nproperty float x\nend_header\n".into(),
                Some(3),
            ),
            ("ply\nelement vertex 0\nend_header\n".into(), Some(3)),
        ];
        for (text, line) in cases {
            match ply(text.as_bytes()) {
                Err(MeshError::Parse { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(ply(b"plyx\n"), Err(MeshError::Parse { .. })));
    }

    #[test]
    fn truncated_binary_body() {
        let dir = TempDir::new("plytrunc");
        let p = dir.path("c.ply");
        write_ply_binary(&primitives::unit_cube(), &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Cutting inside the face records leaves the counts satisfiable by
        // size but the data short.
        let err = ply(&bytes[..bytes.len() - 5]).unwrap_err();
        assert!(matches!(err, MeshError::Parse { line: None, .. }), "{err}");
        assert!(err.to_string().contains("face 11"), "{err}");
    }

    #[test]
    fn absurd_counts_are_too_large() {
        let text = "ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n\0\0\0\0";
        let err = ply(text.as_bytes()).unwrap_err();
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
        let text = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 18446744073709551615\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n";
        let err = ply(text.as_bytes()).unwrap_err();
        assert!(matches!(err, MeshError::TooLarge { .. }), "{err}");
        // A huge list length must fail on the data, not loop or allocate.
        let mut b = b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uint int vertex_indices\nend_header\n".to_vec();
        b.extend_from_slice(&[0u8; 36]);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(ply(&b), Err(MeshError::Parse { .. })));
    }
}
