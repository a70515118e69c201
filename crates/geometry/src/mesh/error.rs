use std::path::{Path, PathBuf};

/// Everything that can go wrong while loading, checking or writing a mesh.
///
/// File-related variants carry the path so a message shown to a Blender or
/// command-line user is actionable on its own. Meshes parsed from memory use
/// the pseudo path `<memory>`.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot access {}: {source}; check the path and its permissions", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "unknown mesh format {} for {}: use .stl, .obj, .ply or .off (export or convert it to one of them, e.g. in Blender)",
        extension_shown(.path),
        .path.display()
    )]
    UnknownFormat { path: PathBuf },

    #[error(
        "cannot write {}: unknown output format {}; name the file .obj, .stl or .ply",
        .path.display(),
        extension_shown(.path)
    )]
    UnknownOutputFormat { path: PathBuf },

    #[error("{}{}: {message}{}", .path.display(), line_suffix(.line), parse_remedy(.message, .line))]
    Parse {
        path: PathBuf,
        /// 1-based line number for text formats, where one is meaningful.
        line: Option<usize>,
        message: String,
    },

    #[error("mesh is empty: it has no triangles; give a mesh with at least one face")]
    Empty,

    #[error("{}: the file has no triangles (it is empty, or holds only points or lines); export the object as a mesh with faces", .path.display())]
    EmptyFile { path: PathBuf },

    #[error("all {triangles} triangles have no area (their corners coincide or lie on a line): there is no surface to measure; check the file's indices and units")]
    NoArea { triangles: usize },

    #[error("vertex {index} has a NaN or infinite coordinate; fix or remove that vertex in the source mesh")]
    NonFiniteVertex { index: usize },

    #[error("triangle {triangle} refers to vertex {index}, but the mesh has only {vertex_count} vertices; indices start at 0 and must be below the vertex count")]
    IndexOutOfRange {
        triangle: usize,
        index: u32,
        vertex_count: usize,
    },

    #[error("{what} array has {len} elements, which is not a multiple of 3; pass 3 numbers per vertex or triangle, flattened")]
    WrongArrayLength { what: &'static str, len: usize },

    #[error(
        "{}: declares {count} {what}, but at most {limit} are possible; the file is truncated or corrupt: export it again",
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
            | MeshError::UnknownOutputFormat { path }
            | MeshError::EmptyFile { path }
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

/// `'.3ds'`, or `(no extension)`, for format messages.
fn extension_shown(path: &Path) -> String {
    match path.extension() {
        Some(e) => format!("'.{}'", e.to_string_lossy()),
        None => "(no extension)".into(),
    }
}

/// What to do about a malformed file, unless the message says it already.
fn parse_remedy(message: &str, line: &Option<usize>) -> &'static str {
    if message.contains("export") {
        ""
    } else if line.is_some() {
        "; fix that line, or export the file again"
    } else {
        "; export the file again"
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
        assert_eq!(
            e.to_string(),
            "a/b.obj, line 7: bad token 'x'; fix that line, or export the file again"
        );
        let e = MeshError::parse(Path::new("c.stl"), None, "truncated");
        assert_eq!(e.to_string(), "c.stl: truncated; export the file again");
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

    #[test]
    fn format_and_empty_messages_name_the_file_and_the_way_out() {
        let e = MeshError::UnknownFormat {
            path: "dir/ship.3ds".into(),
        };
        assert_eq!(
            e.to_string(),
            "unknown mesh format '.3ds' for dir/ship.3ds: use .stl, .obj, .ply or .off \
             (export or convert it to one of them, e.g. in Blender)"
        );
        let e = MeshError::UnknownOutputFormat {
            path: "out.x".into(),
        };
        assert!(e.to_string().contains("'.x'"), "{e}");
        assert!(
            e.to_string().contains("name the file .obj, .stl or .ply"),
            "{e}"
        );
        let e = MeshError::EmptyFile {
            path: "empty.obj".into(),
        };
        assert!(
            e.to_string()
                .starts_with("empty.obj: the file has no triangles"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("export the object as a mesh with faces"),
            "{e}"
        );
    }
}
