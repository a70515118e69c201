//! Writers. Each one writes to a temporary file beside the target and
//! renames it over the target only after everything was written and synced,
//! so a crash, a full disk or a bad mesh never leaves a half-written file
//! where a good one (or none) was.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::validate::check_structure;
use super::{MeshError, TriangleMesh};

/// Writes by extension: `.obj`, `.stl` (binary) or `.ply` (binary), case
/// insensitive; anything else is [`MeshError::UnknownOutputFormat`].
pub fn save(mesh: &TriangleMesh, path: &Path) -> Result<(), MeshError> {
    write_as(mesh, Format::of_path(path)?, None, path)
}

/// Saves by extension like [`save`], adding `normals` (one per vertex) to
/// OBJ (`vn`) and PLY (`nx ny nz`). STL stores only face normals, which its
/// writer derives from the winding, so `.stl` ignores them.
pub fn save_with_normals(
    mesh: &TriangleMesh,
    normals: &[[f32; 3]],
    path: &Path,
) -> Result<(), MeshError> {
    if normals.len() != mesh.vertices.len() {
        return Err(MeshError::io(
            path,
            io::Error::other(format!(
                "{} normals for {} vertices",
                normals.len(),
                mesh.vertices.len()
            )),
        ));
    }
    write_as(mesh, Format::of_path(path)?, Some(normals), path)
}

/// The bytes of a mesh file in `format` ("obj", "stl" or "ply", as
/// [`save`] writes them), for hosts that keep meshes in their own
/// documents; `load_from_bytes` reads them back. Errors name `<memory>`.
pub fn to_bytes(mesh: &TriangleMesh, format: &str) -> Result<Vec<u8>, MeshError> {
    let name = Path::new("<memory>");
    let format = Format::named(format, name)?;
    format.check(mesh, name)?;
    let mut bytes = Vec::new();
    format
        .encode(mesh, None, &mut bytes)
        .map_err(|e| MeshError::io(name, e))?;
    Ok(bytes)
}

/// Wavefront OBJ with `v` and `f` lines. Floats are written in Rust's
/// shortest round-trip form, so loading gives back the identical mesh.
pub fn write_obj(mesh: &TriangleMesh, path: &Path) -> Result<(), MeshError> {
    write_as(mesh, Format::Obj, None, path)
}

/// Binary STL with per-face normals from the winding. The header avoids
/// starting with "solid" so that naive readers do not mistake it for ASCII.
pub fn write_stl_binary(mesh: &TriangleMesh, path: &Path) -> Result<(), MeshError> {
    write_as(mesh, Format::Stl, None, path)
}

/// Binary little-endian PLY with float x, y, z and uchar-counted face lists.
pub fn write_ply_binary(mesh: &TriangleMesh, path: &Path) -> Result<(), MeshError> {
    write_as(mesh, Format::Ply, None, path)
}

#[derive(Clone, Copy)]
enum Format {
    Obj,
    Stl,
    Ply,
}

impl Format {
    fn from_name(name: &str) -> Option<Format> {
        match name
            .trim()
            .trim_start_matches('.')
            .to_ascii_lowercase()
            .as_str()
        {
            "obj" => Some(Format::Obj),
            "stl" => Some(Format::Stl),
            "ply" => Some(Format::Ply),
            _ => None,
        }
    }

    /// `name` as a format, or [`MeshError::UnknownOutputFormat`] naming
    /// `source` with `name` as its extension, so the message quotes it.
    fn named(name: &str, source: &Path) -> Result<Format, MeshError> {
        Format::from_name(name).ok_or_else(|| MeshError::UnknownOutputFormat {
            path: source.with_extension(name.trim_start_matches('.')),
        })
    }

    /// The format a path's extension names.
    fn of_path(path: &Path) -> Result<Format, MeshError> {
        // A folder named "x.obj" has an extension too; calling it an
        // unsupported format would send the user looking in the wrong place.
        if path.is_dir() {
            return Err(MeshError::io(
                path,
                io::Error::other("it is a folder; give a file name inside it, e.g. out.obj"),
            ));
        }
        Format::from_name(path.extension().and_then(|e| e.to_str()).unwrap_or("")).ok_or_else(
            || MeshError::UnknownOutputFormat {
                path: path.to_path_buf(),
            },
        )
    }

    /// What the format cannot hold, refused before anything is written.
    fn check(self, mesh: &TriangleMesh, name: &Path) -> Result<(), MeshError> {
        check_structure(mesh, false)?;
        if matches!(self, Format::Stl) && u32::try_from(mesh.triangles.len()).is_err() {
            return Err(MeshError::TooLarge {
                path: name.to_path_buf(),
                what: "triangles for a binary STL".into(),
                count: mesh.triangles.len() as u64,
                limit: u32::MAX.into(),
            });
        }
        Ok(())
    }

    /// `normals`, one per vertex, go into OBJ and PLY; STL has none.
    fn encode(
        self,
        mesh: &TriangleMesh,
        normals: Option<&[[f32; 3]]>,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Format::Obj => encode_obj(mesh, normals, w),
            Format::Stl => encode_stl(mesh, w),
            Format::Ply => encode_ply(mesh, normals, w),
        }
    }
}

fn write_as(
    mesh: &TriangleMesh,
    format: Format,
    normals: Option<&[[f32; 3]]>,
    path: &Path,
) -> Result<(), MeshError> {
    format.check(mesh, path)?;
    atomic_write(path, |w| format.encode(mesh, normals, w))
}

fn encode_obj(
    mesh: &TriangleMesh,
    normals: Option<&[[f32; 3]]>,
    w: &mut dyn Write,
) -> io::Result<()> {
    writeln!(w, "# written by hisdf")?;
    writeln!(
        w,
        "# {} vertices, {} triangles",
        mesh.vertices.len(),
        mesh.triangles.len()
    )?;
    for p in &mesh.vertices {
        writeln!(w, "v {:?} {:?} {:?}", p[0], p[1], p[2])?;
    }
    for q in normals.unwrap_or(&[]) {
        writeln!(w, "vn {:?} {:?} {:?}", q[0], q[1], q[2])?;
    }
    for t in &mesh.triangles {
        let [a, b, c] = t.map(|i| u64::from(i) + 1);
        if normals.is_some() {
            writeln!(w, "f {a}//{a} {b}//{b} {c}//{c}")?;
        } else {
            writeln!(w, "f {a} {b} {c}")?;
        }
    }
    Ok(())
}

/// `Format::check` has made sure the count fits the header's u32.
fn encode_stl(mesh: &TriangleMesh, w: &mut dyn Write) -> io::Result<()> {
    let mut header = [b' '; 80];
    let text = b"binary STL written by hisdf";
    header[..text.len()].copy_from_slice(text);
    w.write_all(&header)?;
    w.write_all(&(mesh.triangles.len() as u32).to_le_bytes())?;
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let n = mesh.triangle_normal(t).map(|c| c as f32);
        for c in n {
            w.write_all(&c.to_le_bytes())?;
        }
        for &v in tri {
            for c in mesh.vertices[v as usize] {
                w.write_all(&c.to_le_bytes())?;
            }
        }
        w.write_all(&[0, 0])?;
    }
    Ok(())
}

fn encode_ply(
    mesh: &TriangleMesh,
    normals: Option<&[[f32; 3]]>,
    w: &mut dyn Write,
) -> io::Result<()> {
    // "int" is what most tools expect; only meshes beyond its range need
    // "uint", whose bit patterns agree with "int" below that.
    let index_type = if mesh.vertices.len() <= i32::MAX as usize {
        "int"
    } else {
        "uint"
    };
    let normal_properties = if normals.is_some() {
        "property float nx\nproperty float ny\nproperty float nz\n"
    } else {
        ""
    };
    write!(
        w,
        "ply\nformat binary_little_endian 1.0\ncomment written by hisdf\n\
         element vertex {}\nproperty float x\nproperty float y\nproperty float z\n\
         {normal_properties}element face {}\nproperty list uchar {index_type} vertex_indices\n\
         end_header\n",
        mesh.vertices.len(),
        mesh.triangles.len()
    )?;
    for (k, p) in mesh.vertices.iter().enumerate() {
        let normal = normals.map(|n| n[k]);
        for c in p.iter().chain(normal.iter().flatten()) {
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
}

/// The shared atomic writer (temporary file beside the target, synced, then
/// renamed), with its I/O errors naming the target.
fn atomic_write(
    target: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), MeshError> {
    crate::util::write_atomically_with(target, body).map_err(|e| MeshError::io(target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_reach_the_files_and_meshes_load_back() {
        let dir = std::env::temp_dir().join(format!("hisdf-normals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mesh = crate::mesh::primitives::icosphere(2);
        // On the unit icosphere the normal is the position.
        let normals = mesh.vertices.clone();
        for ext in ["obj", "ply", "stl"] {
            let path = dir.join(format!("n.{ext}"));
            save_with_normals(&mesh, &normals, &path).unwrap();
            let back = crate::mesh::load(&path).unwrap();
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
    use crate::mesh::load;
    use crate::mesh::primitives::{icosphere, torus, unit_cube};
    use crate::mesh::test_util::TempDir;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn save_round_trips_every_format() {
        let dir = TempDir::new("save");
        for mesh in [unit_cube(), icosphere(2), torus(2.0, 0.5, 20, 10)] {
            for ext in ["obj", "stl", "ply", "OBJ"] {
                let p = dir.path(&format!("m.{ext}"));
                save(&mesh, &p).unwrap();
                let back = load(&p).unwrap();
                // STL re-indexes by welding, which for these primitives (no
                // duplicate positions, vertices in first-use order) is exact.
                if ext == "stl" {
                    assert_eq!(back.triangles.len(), mesh.triangles.len());
                    assert_eq!(back.vertices.len(), mesh.vertices.len());
                    assert!((back.signed_volume() - mesh.signed_volume()).abs() < 1e-9);
                } else {
                    assert_eq!(back, mesh, "{ext}");
                }
            }
        }
        assert!(leftovers(&dir.0).is_empty());
    }

    #[test]
    fn folder_as_output_is_called_a_folder() {
        let dir = TempDir::new("savedir");
        let p = dir.path("looks.obj");
        std::fs::create_dir(&p).unwrap();
        let e = save(&unit_cube(), &p).unwrap_err();
        assert!(matches!(e, MeshError::Io { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("it is a folder; give a file name inside it"),
            "{e}"
        );
    }

    #[test]
    fn unknown_extension_rejected() {
        let dir = TempDir::new("saveext");
        for name in ["m.off", "m", "m.txt"] {
            let p = dir.path(name);
            assert!(matches!(
                save(&unit_cube(), &p),
                Err(MeshError::UnknownOutputFormat { .. })
            ));
            assert!(!p.exists());
        }
    }

    #[test]
    fn invalid_mesh_leaves_existing_file_untouched() {
        let dir = TempDir::new("atomic");
        let p = dir.path("keep.obj");
        std::fs::write(&p, b"original").unwrap();
        let mut bad = unit_cube();
        bad.triangles.push([0, 1, 99]);
        for writer in [write_obj, write_stl_binary, write_ply_binary] {
            assert!(matches!(
                writer(&bad, &p),
                Err(MeshError::IndexOutOfRange { .. })
            ));
        }
        let mut nan = unit_cube();
        nan.vertices[2][0] = f32::NAN;
        assert!(matches!(
            save(&nan, &p),
            Err(MeshError::NonFiniteVertex { index: 2 })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"original");
        assert!(leftovers(&dir.0).is_empty());
    }

    #[test]
    fn failing_body_removes_temporary_and_keeps_target() {
        let dir = TempDir::new("atomicfail");
        let p = dir.path("t.obj");
        std::fs::write(&p, b"original").unwrap();
        let r = atomic_write(&p, |w| {
            w.write_all(b"partial data")?;
            Err(io::Error::other("disk full"))
        });
        let err = r.unwrap_err();
        assert!(matches!(err, MeshError::Io { .. }));
        assert!(err.to_string().contains("t.obj") && err.to_string().contains("disk full"));
        assert_eq!(std::fs::read(&p).unwrap(), b"original");
        assert!(leftovers(&dir.0).is_empty());
    }

    #[test]
    fn overwrites_and_reports_bad_directories() {
        let dir = TempDir::new("overwrite");
        let p = dir.path("o.ply");
        save(&unit_cube(), &p).unwrap();
        save(&icosphere(1), &p).unwrap();
        assert_eq!(load(&p).unwrap(), icosphere(1));
        let missing = dir.path("no/such/dir/x.obj");
        let err = save(&unit_cube(), &missing).unwrap_err();
        assert!(matches!(err, MeshError::Io { .. }));
        assert!(err.to_string().contains("x.obj"));
        // The target is a directory: rename fails, temp is cleaned up.
        let sub = dir.path("adir.obj");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            save(&unit_cube(), &sub),
            Err(MeshError::Io { .. })
        ));
        assert!(leftovers(&dir.0).is_empty());
    }

    #[test]
    fn empty_mesh_writes_but_does_not_load() {
        let dir = TempDir::new("emptywrite");
        for ext in ["obj", "stl", "ply"] {
            let p = dir.path(&format!("e.{ext}"));
            save(&TriangleMesh::default(), &p).unwrap();
            assert!(
                matches!(load(&p), Err(MeshError::EmptyFile { .. })),
                "{ext}"
            );
        }
    }

    #[test]
    fn stl_header_does_not_start_with_solid() {
        let dir = TempDir::new("stlhdr");
        let p = dir.path("c.stl");
        write_stl_binary(&unit_cube(), &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(!bytes.starts_with(b"solid"));
        // Stored normals match the winding.
        let n0: Vec<f32> = (0..3)
            .map(|k| f32::from_le_bytes(bytes[84 + 4 * k..88 + 4 * k].try_into().unwrap()))
            .collect();
        let expect = unit_cube().triangle_normal(0).map(|c| c as f32);
        assert_eq!(n0, expect);
    }
}
