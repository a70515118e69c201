//! Mesh stage: the triangle mesh a user hands us, its loaders and writers,
//! validation, and the normalising transform into the unit sphere.
//!
//! Everything here must survive hostile input (files from disk, arrays from a
//! C caller): functions return [`MeshError`] instead of panicking, and counts
//! read from file headers are checked against the file size before anything
//! is allocated from them.

mod error;
mod load;
mod normalise;
mod obj;
mod off;
mod ply;
pub mod primitives;
mod stl;
mod surface;
mod validate;
mod write;

pub use error::MeshError;
pub use load::{load, load_from_bytes};
pub use normalise::{Centring, Normalisation};
pub use primitives::{icosphere, torus, unit_cube};
pub use validate::{Components, MeshInfo};
pub use write::{save, save_with_normals, to_bytes, write_obj, write_ply_binary, write_stl_binary};

/// An indexed triangle mesh. Vertices are f32 because that is what mesh files
/// and hosts hand over; geometry that needs more precision converts per use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriangleMesh {
    pub vertices: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
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
