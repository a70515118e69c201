//! Mesh stage: the triangle mesh a user hands us, its loaders and writers,
//! validation, and the normalising transform into the unit sphere.
//!
//! Everything here must survive hostile input (files from disk, arrays from a
//! C caller): functions return [`MeshError`] instead of panicking, and counts
//! read from file headers are checked against the file size before anything
//! is allocated from them.

mod clean;
mod error;
// Public for hisdf's own tests (marching cubes checks its vertices with
// these helpers); not part of the API.
#[doc(hidden)]
pub mod geometry;
mod load;
mod normalise;
mod obj;
mod off;
mod ply;
mod prepare;
pub mod primitives;
mod shell;
mod stl;
mod surface;
mod topology;
mod validate;
mod write;

pub use error::MeshError;
pub use load::{load, load_from_bytes};
pub use normalise::{Centring, Normalisation};
pub use prepare::{open_surface_note, prepare_mesh, PreparedMesh};
pub use primitives::{icosphere, torus, unit_cube};
pub use shell::Surface;
pub use topology::Components;
use validate::check_structure;
pub use validate::MeshInfo;
pub use write::{save, save_with_normals, to_bytes, write_obj, write_ply_binary, write_stl_binary};

/// An indexed triangle mesh. Vertices are f32 because that is what mesh files
/// and hosts hand over; geometry that needs more precision converts per use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriangleMesh {
    pub vertices: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
}

impl TriangleMesh {
    /// Builds a mesh from flat xyz coordinates and flat triangle indices, as
    /// handed over through the C ABI. The result is guaranteed to pass
    /// [`TriangleMesh::validate`].
    pub fn from_arrays(vertices: &[f32], indices: &[u32]) -> Result<Self, MeshError> {
        if vertices.len() % 3 != 0 {
            return Err(MeshError::WrongArrayLength {
                what: "vertex coordinate",
                len: vertices.len(),
            });
        }
        if indices.len() % 3 != 0 {
            return Err(MeshError::WrongArrayLength {
                what: "triangle index",
                len: indices.len(),
            });
        }
        let mesh = TriangleMesh {
            vertices: vertices
                .chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect(),
            triangles: indices
                .chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect(),
        };
        check_structure(&mesh, true)?;
        Ok(mesh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_arrays_checks() {
        let v = [0., 0., 0., 1., 0., 0., 0., 1., 0.];
        let m = TriangleMesh::from_arrays(&v, &[0, 1, 2]).unwrap();
        assert_eq!(m.vertices.len(), 3);
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
        assert!(matches!(
            TriangleMesh::from_arrays(&v[..8], &[0, 1, 2]),
            Err(MeshError::WrongArrayLength { len: 8, .. })
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&v, &[0, 1]),
            Err(MeshError::WrongArrayLength { len: 2, .. })
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&v, &[0, 1, 3]),
            Err(MeshError::IndexOutOfRange {
                triangle: 0,
                index: 3,
                vertex_count: 3
            })
        ));
        let mut nan = v;
        nan[4] = f32::NAN;
        assert!(matches!(
            TriangleMesh::from_arrays(&nan, &[0, 1, 2]),
            Err(MeshError::NonFiniteVertex { index: 1 })
        ));
        nan[4] = f32::NEG_INFINITY;
        assert!(matches!(
            TriangleMesh::from_arrays(&nan, &[0, 1, 2]),
            Err(MeshError::NonFiniteVertex { index: 1 })
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&[], &[]),
            Err(MeshError::Empty)
        ));
        assert!(matches!(
            TriangleMesh::from_arrays(&v, &[]),
            Err(MeshError::Empty)
        ));
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory per call so tests running in parallel never share
    /// files; removed again when the guard drops.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("hisdf-mesh-test-{}-{tag}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create test dir");
            TempDir(dir)
        }

        pub(crate) fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Tiny deterministic generator so the fuzz-style tests need no crate.
    pub(crate) struct Lcg(pub u64);

    impl Lcg {
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 ^ (self.0 >> 29)
        }

        pub(crate) fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}
