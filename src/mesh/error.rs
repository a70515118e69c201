use std::path::{Path, PathBuf};

/// Everything that can go wrong while loading, checking or writing a mesh.
///
/// File-related variants carry the path so a message shown to a Blender or
/// command-line user is actionable on its own. Meshes parsed from memory use
/// the pseudo path `<memory>`.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{}: unknown mesh format; expected an .obj, .off, .ply or .stl file (STL is recognised by content)",
        .path.display()
    )]
    UnknownFormat { path: PathBuf },

    #[error("{}{}: {message}", .path.display(), line_suffix(.line))]
    Parse {
        path: PathBuf,
        /// 1-based line number for text formats, where one is meaningful.
        line: Option<usize>,
        message: String,
    },

    #[error("mesh is empty: it has no triangles (an empty file, or one holding only points)")]
    Empty,

    #[error("all {triangles} triangles have no area (their corners coincide or lie on a line): there is no surface to measure; check the file's indices and units")]
    NoArea { triangles: usize },

    #[error("vertex {index} has a NaN or infinite coordinate")]
    NonFiniteVertex { index: usize },

    #[error("triangle {triangle} refers to vertex {index}, but the mesh has only {vertex_count} vertices")]
    IndexOutOfRange {
        triangle: usize,
        index: u32,
        vertex_count: usize,
    },

    #[error("{what} array has {len} elements, which is not a multiple of 3")]
    WrongArrayLength { what: &'static str, len: usize },

    #[error(
        "{}: declares {count} {what}, but at most {limit} are possible; the file is truncated or corrupt",
        .path.display()
    )]
    TooLarge {
        path: PathBuf,
        what: String,
        count: u64,
        limit: u64,
    },
}

impl MeshError {
    /// The file the error is about, for callers (e.g. the C ABI) that report
    /// it separately from the message.
    pub fn path(&self) -> Option<&Path> {
        match self {
            MeshError::Io { path, .. }
            | MeshError::UnknownFormat { path }
            | MeshError::Parse { path, .. }
            | MeshError::TooLarge { path, .. } => Some(path),
            _ => None,
        }
    }

    pub(crate) fn parse(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        MeshError::Parse {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        MeshError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn line_suffix(line: &Option<usize>) -> String {
    match line {
        Some(l) => format!(", line {l}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_line() {
        let e = MeshError::parse(Path::new("a/b.obj"), Some(7), "bad token 'x'");
        assert_eq!(e.to_string(), "a/b.obj, line 7: bad token 'x'");
        let e = MeshError::parse(Path::new("c.stl"), None, "truncated");
        assert_eq!(e.to_string(), "c.stl: truncated");
        assert_eq!(e.path(), Some(Path::new("c.stl")));
        let e = MeshError::TooLarge {
            path: "d.stl".into(),
            what: "triangles".into(),
            count: 1000,
            limit: 3,
        };
        assert!(e.to_string().starts_with("d.stl: declares 1000 triangles"));
        assert!(MeshError::Empty.path().is_none());
    }
}
