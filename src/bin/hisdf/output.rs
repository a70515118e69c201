//! Checks of the paths a command reads and writes, shared by both binaries
//! (the torch-free commands run in `hisdf` itself).

use std::path::Path;

use hisdf_geometry::mesh::{self, TriangleMesh};

use super::Result;

/// Refuses an output path we could not write, before any long work starts:
/// its extension here, the rest by the library's check.
pub fn check_output(path: &Path, extensions: &[&str]) -> Result<()> {
    if path.is_dir() {
        return Err(format!(
            "{}: is a folder; give a file name in it, e.g. {}",
            path.display(),
            path.join(format!("out.{}", extensions[0])).display()
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !extensions.contains(&ext.as_str()) {
        return Err(format!(
            "{}: unsupported output extension (expected .{})",
            path.display(),
            extensions.join(", .")
        ));
    }
    hisdf_geometry::util::check_output_path(path)
}

/// A mesh loaded and validated, or the message naming its file.
pub fn load_checked(path: &Path) -> Result<TriangleMesh> {
    let mesh = mesh::load(path).map_err(|e| e.to_string())?;
    mesh.validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(mesh)
}
