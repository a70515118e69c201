//! Writing an extracted mesh together with its per-vertex normals (OBJ `vn`,
//! PLY `nx ny nz`). Kept beside the extraction because only it produces
//! normals; the plain formats stay in the mesh module's writers.

use std::io::Write;
use std::path::Path;

use crate::mesh::{self, MeshError, TriangleMesh};
use crate::util::write_atomically_with;

/// Saves by extension like [`mesh::save`], adding `normals` (one per
/// vertex) to OBJ and PLY. STL stores only face normals, which its writer
/// already derives from the winding, so `.stl` ignores them.
pub fn save_with_normals(
    mesh: &TriangleMesh,
    normals: &[[f32; 3]],
    path: &Path,
) -> Result<(), MeshError> {
    if normals.len() != mesh.vertices.len() {
        return Err(MeshError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "{} normals for {} vertices",
                normals.len(),
                mesh.vertices.len()
            )),
        });
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    // What the plain writers refuse, refused before anything is written.
    if let Some(v) = mesh
        .vertices
        .iter()
        .position(|p| !p.iter().all(|c| c.is_finite()))
    {
        return Err(MeshError::NonFiniteVertex { index: v });
    }
    let n = mesh.vertices.len();
    if let Some(t) = mesh
        .triangles
        .iter()
        .find(|t| t.iter().any(|&i| i as usize >= n))
    {
        return Err(MeshError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("triangle {t:?} indexes past {n} vertices")),
        });
    }
    let io = |e| MeshError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    match ext.as_deref() {
        Some("obj") => write_atomically_with(path, |w| {
            writeln!(w, "# written by hisdf")?;
            for p in &mesh.vertices {
                writeln!(w, "v {:?} {:?} {:?}", p[0], p[1], p[2])?;
            }
            for q in normals {
                writeln!(w, "vn {:?} {:?} {:?}", q[0], q[1], q[2])?;
            }
            for t in &mesh.triangles {
                let [a, b, c] = t.map(|i| u64::from(i) + 1);
                writeln!(w, "f {a}//{a} {b}//{b} {c}//{c}")?;
            }
            Ok(())
        })
        .map_err(io),
        Some("ply") => write_atomically_with(path, |w| {
            write!(
                w,
                "ply\nformat binary_little_endian 1.0\ncomment written by hisdf\n\
                 element vertex {}\nproperty float x\nproperty float y\nproperty float z\n\
                 property float nx\nproperty float ny\nproperty float nz\n\
                 element face {}\nproperty list uchar uint vertex_indices\nend_header\n",
                mesh.vertices.len(),
                mesh.triangles.len()
            )?;
            for (p, q) in mesh.vertices.iter().zip(normals) {
                for c in p.iter().chain(q) {
                    w.write_all(&c.to_le_bytes())?;
                }
            }
            for t in &mesh.triangles {
                w.write_all(&[3])?;
                for v in t {
                    w.write_all(&v.to_le_bytes())?;
                }
            }
            Ok(())
        })
        .map_err(io),
        _ => mesh::save(mesh, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::icosphere;

    #[test]
    fn normals_reach_the_files_and_meshes_load_back() {
        let dir = std::env::temp_dir().join(format!("hisdf-normals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mesh = icosphere(2);
        // On the unit icosphere the normal is the position.
        let normals = mesh.vertices.clone();
        for ext in ["obj", "ply", "stl"] {
            let path = dir.join(format!("n.{ext}"));
            save_with_normals(&mesh, &normals, &path).unwrap();
            let back = mesh::load(&path).unwrap();
            assert_eq!(back.triangles.len(), mesh.triangles.len(), "{ext}");
            assert_eq!(back.vertices.len(), mesh.vertices.len(), "{ext}");
        }
        let obj = std::fs::read_to_string(dir.join("n.obj")).unwrap();
        assert_eq!(
            obj.lines().filter(|l| l.starts_with("vn ")).count(),
            normals.len()
        );
        assert!(obj.contains("f 1//1 "));
        let ply = std::fs::read(dir.join("n.ply")).unwrap();
        assert!(ply.windows(17).any(|w| w == b"property float nx"));
        assert!(save_with_normals(&mesh, &normals[1..], &dir.join("bad.obj")).is_err());
        assert!(!dir.join("bad.obj").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
