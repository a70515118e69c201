//! NumPy `.npy` files: the exchange format for query points and samples.
//!
//! Only what hisdf needs, done carefully: arrays of little-endian float32 or
//! float64 in C order are read; float32, float64, int32 and uint32 are
//! written. The header is a Python dict literal, parsed here by a small
//! tokenizer that rejects anything unexpected with an [`NpyError`] and never
//! panics; the shape is checked against the data length, with overflow-safe
//! arithmetic, before anything is allocated from it.

use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy itself refuses headers beyond this many bytes (by default) as a
/// denial-of-service guard; so do we.
const MAX_HEADER: usize = 10_000;

/// Everything that can go wrong reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a .npy file ({reason}); write it with numpy.save", .path.display())]
    NotNpy { path: PathBuf, reason: String },
    #[error("{}: malformed .npy header: {reason}; write it again with numpy.save", .path.display())]
    Header { path: PathBuf, reason: String },
    #[error(
        "{}: unsupported .npy element type '{descr}'; expected little-endian float32 ('<f4') or float64 ('<f8')",
        .path.display()
    )]
    UnsupportedDtype { path: PathBuf, descr: String },
    #[error("{}: Fortran-order arrays are not supported; save with C order (numpy's default)", .path.display())]
    FortranOrder { path: PathBuf },
    #[error("{}: header promises {expected} bytes of data (shape {shape:?}), the file holds {actual}; it is truncated or damaged: write it again with numpy.save", .path.display())]
    DataLength {
        path: PathBuf,
        shape: Vec<usize>,
        expected: u128,
        actual: usize,
    },
    #[error("{}: array has shape {shape:?}; expected {expected}", .path.display())]
    WrongShape {
        path: PathBuf,
        shape: Vec<usize>,
        expected: String,
    },
    #[error(
        "{}: point {row} ({column}) is {}; fix or drop that row (numpy: a[np.isfinite(a).all(axis=1)])",
        .path.display(),
        if *.nan { "NaN" } else { "infinite" }
    )]
    NonFinite {
        path: PathBuf,
        /// 0-based row, the point or sample the value belongs to.
        row: usize,
        /// The column's name (x, y, z, sdf) or its 0-based number.
        column: String,
        nan: bool,
    },
}

/// Element types the writer knows; the reader accepts the float ones.
pub trait NpyElement: Copy {
    const DESCR: &'static str;
    fn put(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for i32 {
    const DESCR: &'static str = "<i4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for u32 {
    const DESCR: &'static str = "<u4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// A float array read from a `.npy` file, widened to f64 (exact for f32).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// Whether the file stored float64 (else float32).
    pub was_f64: bool,
}

/// The header bytes (magic, version 1.0, dict, padding) for an array.
fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + length (2) + dict + '\n' is padded to a
    // multiple of 64 so the data is aligned, as numpy does.
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    // Version 1.0: `to_bytes` limits the rank, so the dict always fits the
    // 2-byte length.
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Encodes an array as `.npy` bytes. `shape`'s product must equal
/// `data.len()`; a mismatch is a bug in the caller and reported as
/// [`NpyError::WrongShape`] rather than written.
pub fn to_bytes<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>, NpyError> {
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n == data.len() && shape.len() <= 32);
    if count.is_none() {
        return Err(NpyError::WrongShape {
            path: PathBuf::from("<memory>"),
            shape: shape.to_vec(),
            expected: format!("{} elements", data.len()),
        });
    }
    let mut out = header(T::DESCR, shape);
    out.reserve(std::mem::size_of_val(data));
    for &x in data {
        x.put(&mut out);
    }
    Ok(out)
}

/// Writes an array atomically (see [`crate::util::write_atomically`]).
pub fn write<T: NpyElement>(path: &Path, shape: &[usize], data: &[T]) -> Result<(), NpyError> {
    let bytes = to_bytes(shape, data).map_err(|e| match e {
        NpyError::WrongShape {
            shape, expected, ..
        } => NpyError::WrongShape {
            path: path.to_path_buf(),
            shape,
            expected,
        },
        e => e,
    })?;
    crate::util::write_atomically_with(path, |w| w.write_all(&bytes)).map_err(|source| {
        NpyError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Reads a float32 or float64 array from a file.
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path)
}

/// Parses `.npy` bytes; `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray, NpyError> {
    let not_npy = |reason: &str| NpyError::NotNpy {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let bad = |reason: String| NpyError::Header {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(not_npy("the file is empty"));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(not_npy("it does not start with the \\x93NUMPY magic"));
    }
    let (major, rest) = match bytes.get(6..8) {
        Some(&[major, _minor]) => (major, &bytes[8..]),
        _ => return Err(bad("file ends inside the version".into())),
    };
    let (len, rest) = match major {
        1 => match rest.split_first_chunk::<2>() {
            Some((l, r)) => (u16::from_le_bytes(*l) as usize, r),
            None => return Err(bad("file ends inside the header length".into())),
        },
        2 | 3 => match rest.split_first_chunk::<4>() {
            Some((l, r)) => (u32::from_le_bytes(*l) as usize, r),
            None => return Err(bad("file ends inside the header length".into())),
        },
        v => return Err(bad(format!("unknown format version {v}"))),
    };
    if len > MAX_HEADER {
        return Err(bad(format!(
            "header of {len} bytes exceeds the {MAX_HEADER}-byte limit"
        )));
    }
    let Some(dict) = rest.get(..len) else {
        return Err(bad(format!(
            "header claims {len} bytes, the file has {} left",
            rest.len()
        )));
    };
    let data = &rest[len..];
    // Version 3 allows UTF-8 field names; the parts we need are ASCII.
    let dict = std::str::from_utf8(dict).map_err(|_| bad("header is not text".into()))?;
    let fields = parse_dict(dict).map_err(bad)?;

    let descr = fields.descr.ok_or_else(|| bad("no 'descr' entry".into()))?;
    let fortran = fields
        .fortran_order
        .ok_or_else(|| bad("no 'fortran_order' entry".into()))?;
    let shape = fields.shape.ok_or_else(|| bad("no 'shape' entry".into()))?;
    let width = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        _ => {
            return Err(NpyError::UnsupportedDtype {
                path: path.to_path_buf(),
                descr,
            })
        }
    };
    // A Fortran-order array of at most one non-trivial axis is laid out as
    // in C order; numpy writes vectors that way, so they are accepted.
    if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(NpyError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    let expected = shape
        .iter()
        .fold(width as u128, |a, &d| a.saturating_mul(d as u128));
    if expected != data.len() as u128 {
        return Err(NpyError::DataLength {
            path: path.to_path_buf(),
            shape,
            expected,
            actual: data.len(),
        });
    }
    let data: Vec<f64> = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    };
    Ok(NpyArray {
        shape,
        data,
        was_f64: width == 8,
    })
}

#[derive(Default)]
struct Fields {
    descr: Option<String>,
    fortran_order: Option<bool>,
    shape: Option<Vec<usize>>,
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`:
/// string keys, and string, boolean or integer-tuple values. Anything else
/// (structured dtypes, nested dicts) is refused with a message.
fn parse_dict(text: &str) -> Result<Fields, String> {
    let mut lex = Lexer {
        s: text.as_bytes(),
        i: 0,
    };
    let mut fields = Fields::default();
    lex.expect(b'{')?;
    loop {
        if lex.eat(b'}') {
            break;
        }
        let key = lex.string()?;
        lex.expect(b':')?;
        match key.as_str() {
            "descr" => {
                if lex.peek() != Some(b'\'') && lex.peek() != Some(b'"') {
                    return Err(
                        "'descr' is not a simple type string (structured arrays are not supported)"
                            .into(),
                    );
                }
                fields.descr = Some(lex.string()?);
            }
            "fortran_order" => fields.fortran_order = Some(lex.boolean()?),
            "shape" => fields.shape = Some(lex.tuple()?),
            other => return Err(format!("unexpected key '{}'", other.escape_debug())),
        }
        if !lex.eat(b',') {
            lex.expect(b'}')?;
            break;
        }
    }
    lex.skip_ws();
    if lex.i != lex.s.len() {
        return Err("text after the closing brace".into());
    }
    Ok(fields)
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at byte {}",
                char::from(c).escape_default(),
                self.i
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        // Bytes came from a &str and the quotes are ASCII, so this slice is
        // on character boundaries.
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn word(&mut self) -> &[u8] {
        self.skip_ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn boolean(&mut self) -> Result<bool, String> {
        match self.word() {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err("'fortran_order' is not True or False".into()),
        }
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                break;
            }
            let w = self.word();
            // numpy writes Python ints; an "L" suffix came from Python 2.
            let digits = w.strip_suffix(b"L").unwrap_or(w);
            let d = std::str::from_utf8(digits)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<usize>().ok())
                .ok_or("shape entry is not a non-negative integer that fits in memory")?;
            dims.push(d);
            if dims.len() > 32 {
                return Err("shape has more than 32 dimensions".into());
            }
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }
}

/// Reads an N x `cols` float array (float32 or float64); `what` describes it
/// in errors. Non-finite values are refused because no stage can use them.
pub fn read_rows(path: &Path, cols: usize, what: &str) -> Result<(Vec<f64>, usize), NpyError> {
    let a = read(path)?;
    match a.shape.as_slice() {
        [n, c] if *c == cols => {
            if let Some(index) = a.data.iter().position(|x| !x.is_finite()) {
                // A flat index means nothing to someone looking at an N x 3
                // array; the row and axis point at the value.
                const AXES: [&str; 4] = ["x", "y", "z", "sdf"];
                let col = index % cols;
                let column = match AXES.get(col) {
                    Some(name) if cols <= AXES.len() => (*name).to_string(),
                    _ => format!("column {col}"),
                };
                return Err(NpyError::NonFinite {
                    path: path.to_path_buf(),
                    row: index / cols,
                    column,
                    nan: a.data[index].is_nan(),
                });
            }
            Ok((a.data, *n))
        }
        _ => Err(NpyError::WrongShape {
            path: path.to_path_buf(),
            shape: a.shape,
            expected: format!("N x {cols} ({what})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::test_util::{Lcg, TempDir};

    fn p() -> &'static Path {
        Path::new("t.npy")
    }

    /// A header as numpy 1.x/2.x writes it, with an arbitrary dict.
    fn with_dict(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trips_f32_and_f64() {
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let bytes = to_bytes(&[4, 3], &data).unwrap();
        // numpy's layout: header padded so the data starts 64-aligned.
        assert_eq!((bytes.len() - 48) % 64, 0);
        assert_eq!(bytes[bytes.len() - 49], b'\n');
        let a = parse(&bytes, p()).unwrap();
        assert_eq!(a.shape, vec![4, 3]);
        assert!(!a.was_f64);
        assert_eq!(
            a.data,
            data.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()
        );

        let d64 = vec![1e-300, -3.25, std::f64::consts::PI];
        let a = parse(&to_bytes(&[3], &d64).unwrap(), p()).unwrap();
        assert_eq!((a.shape, a.data, a.was_f64), (vec![3], d64, true));

        let empty: [f32; 0] = [];
        let a = parse(&to_bytes(&[0, 3], &empty).unwrap(), p()).unwrap();
        assert_eq!(a.shape, vec![0, 3]);
        assert!(a.data.is_empty());
    }

    #[test]
    fn writer_refuses_inconsistent_shape() {
        assert!(matches!(
            to_bytes(&[2, 3], &[0f32; 5]),
            Err(NpyError::WrongShape { .. })
        ));
        assert!(matches!(
            to_bytes(&[usize::MAX, 3], &[0f32; 3]),
            Err(NpyError::WrongShape { .. })
        ));
    }

    #[test]
    fn reads_headers_numpy_writes() {
        // Exactly what numpy 1.26 writes for np.zeros((2, 3), np.float32).
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n";
        let a = parse(&with_dict(dict, &[0; 24]), p()).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        // Other spacing, double quotes, no trailing comma, key order.
        let dict = "{\"shape\":(1,2),\"fortran_order\":False,\"descr\":\"<f8\"}";
        let a = parse(&with_dict(dict, &[0; 16]), p()).unwrap();
        assert_eq!((a.shape, a.was_f64), (vec![1, 2], true));
        // Scalars have shape (); Fortran vectors equal C vectors.
        let a = parse(
            &with_dict(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (), }",
                &1f32.to_le_bytes(),
            ),
            p(),
        )
        .unwrap();
        assert_eq!((a.shape.len(), a.data), (0, vec![1.0]));
        // Version 2 has a 4-byte header length.
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
        let mut v2 = MAGIC.to_vec();
        v2.extend_from_slice(&[2, 0]);
        v2.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v2.extend_from_slice(dict.as_bytes());
        v2.extend_from_slice(&2.5f32.to_le_bytes());
        assert_eq!(parse(&v2, p()).unwrap().data, vec![2.5]);
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "NotNpy"),
            (b"hello world".to_vec(), "NotNpy"),
            (b"\x93NUMPY".to_vec(), "Header"),
            (b"\x93NUMPY\x01\x00\x10".to_vec(), "Header"),
            (b"\x93NUMPY\x07\x00\x00\x00".to_vec(), "Header"),
            (b"\x93NUMPY\x01\x00\xff\xff{}".to_vec(), "Header"),
            (b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(), "Header"),
            (with_dict(ok, &[0; 23]), "DataLength"),
            (with_dict(ok, &[0; 25]), "DataLength"),
            (with_dict(&ok.replace("<f4", ">f4"), &[0; 24]), "Dtype"),
            (with_dict(&ok.replace("<f4", "<i8"), &[0; 48]), "Dtype"),
            (with_dict(&ok.replace("False", "True"), &[0; 24]), "Fortran"),
            (with_dict(&ok.replace("False", "Maybe"), &[0; 24]), "Header"),
            (
                with_dict(&ok.replace("(2, 3)", "(2, -3)"), &[0; 24]),
                "Header",
            ),
            (
                with_dict(&ok.replace("(2, 3)", "(2, 3"), &[0; 24]),
                "Header",
            ),
            (
                with_dict(&ok.replace("(2, 3)", "[2, 3]"), &[0; 24]),
                "Header",
            ),
            (
                with_dict(&ok.replace("(2, 3)", "(99999999999999999999999, 3)"), &[]),
                "Header",
            ),
            // Product overflows usize: must not wrap around to a small size.
            (
                with_dict(
                    &ok.replace("(2, 3)", "(4611686018427387904, 4611686018427387904)"),
                    &[0; 16],
                ),
                "DataLength",
            ),
            (
                with_dict(&ok.replace("(2, 3)", "(0, 3)"), &[0; 4]),
                "DataLength",
            ),
            (
                with_dict("{'descr': '<f4', 'shape': (1,)}", &[0; 4]),
                "Header",
            ),
            (
                with_dict(
                    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
                    &[0; 4],
                ),
                "Header",
            ),
            (with_dict(&format!("{ok}x"), &[0; 24]), "Header"),
            (with_dict(&format!("{ok}, 'extra': 1"), &[0; 24]), "Header"),
            (with_dict("{'descr: '<f4'}", &[]), "Header"),
            (with_dict("\u{0}\u{ff}", &[]), "Header"),
        ];
        for (bytes, kind) in cases {
            let err = parse(&bytes, p()).unwrap_err();
            let got = match err {
                NpyError::NotNpy { .. } => "NotNpy",
                NpyError::Header { .. } => "Header",
                NpyError::UnsupportedDtype { .. } => "Dtype",
                NpyError::FortranOrder { .. } => "Fortran",
                NpyError::DataLength { .. } => "DataLength",
                _ => "other",
            };
            assert_eq!(got, kind, "{}: {err}", String::from_utf8_lossy(&bytes));
            assert!(err.to_string().starts_with("t.npy: "), "{err}");
        }
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        let data: Vec<f64> = (0..30).map(f64::from).collect();
        let good = to_bytes(&[10, 3], &data).unwrap();
        for cut in 0..good.len() {
            assert!(parse(&good[..cut], p()).is_err(), "cut {cut}");
        }
        let mut rng = Lcg(3);
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.next_u64() % 3 {
                let i = (rng.next_u64() as usize) % 128;
                bytes[i] = rng.next_u64() as u8;
            }
            if let Ok(a) = parse(&bytes, p()) {
                assert_eq!(
                    a.data.len(),
                    a.shape.iter().product::<usize>(),
                    "{:?}",
                    a.shape
                );
            }
            let len = (rng.next_u64() % 300) as usize;
            let mut junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if rng.next_u64() % 2 == 0 {
                junk.splice(0..0, MAGIC.iter().copied().chain([1, 0]));
            }
            let _ = parse(&junk, p());
        }
    }

    #[test]
    fn files_rows_and_errors() {
        let dir = TempDir::new("npy");
        let f = dir.path("pts.npy");
        write(&f, &[2, 3], &[0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let (rows, n) = read_rows(&f, 3, "points").unwrap();
        assert_eq!((n, rows[5]), (2, 5.0));
        let err = read_rows(&f, 4, "samples").unwrap_err();
        assert!(matches!(err, NpyError::WrongShape { .. }), "{err}");
        write(&f, &[2, 3], &[0f64, 0.0, 0.0, f64::NAN, 1.0, 1.0]).unwrap();
        let err = read_rows(&f, 3, "points").unwrap_err();
        assert!(matches!(err, NpyError::NonFinite { row: 1, .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("point 1 (x) is NaN; fix or drop that row"),
            "{msg}"
        );
        write(&f, &[1, 4], &[0f64, 0.0, 0.0, f64::INFINITY]).unwrap();
        let msg = read_rows(&f, 4, "samples").unwrap_err().to_string();
        assert!(msg.contains("point 0 (sdf) is infinite"), "{msg}");
        assert!(matches!(
            read(&dir.path("missing.npy")),
            Err(NpyError::Io { .. })
        ));
        assert!(matches!(
            write(&dir.path("no/dir/x.npy"), &[1], &[0f32]),
            Err(NpyError::Io { .. })
        ));
        assert!(matches!(
            write(&f, &[2], &[0f32]),
            Err(NpyError::WrongShape { .. })
        ));
        // The failed write kept the previous file.
        assert_eq!(read(&f).unwrap().shape, vec![1, 4]);
    }
}
