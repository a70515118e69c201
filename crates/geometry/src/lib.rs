//! The stages of hisdf that need no libtorch, in a crate of their own so
//! that the `hisdf` command's torch-free commands (info, sdf, sample,
//! render, eval) start without loading it: [`mesh`] (load, validate,
//! normalise into the unit sphere), [`sdf`] (exact signed distance),
//! [`sampling`] (near-surface samples, read and written as .npy arrays by
//! [`io`]), [`metrics`] (Chamfer, Hausdorff and the rest between meshes, and
//! the held-out error of any field), [`render`] (pictures of meshes) and
//! [`util`] (small shared helpers). The `hisdf` crate re-exports every
//! module under its own name (`hisdf::mesh`, ...); ARCHITECTURE.md gives
//! the layering, which tests/architecture.rs enforces.

pub mod io;
pub mod mesh;
pub mod metrics;
pub mod render;
pub mod sampling;
pub mod sdf;
pub mod util;
