//! hisdf: one triangle mesh in, a high-resolution neural signed distance
//! function out, after "Implicit High Resolution Representation of 3D
//! Shapes" (Sergeev, Talabot, Donier, Fua 2022).
//!
//! One module per pipeline stage, in the paper's words: [`mesh`] (load,
//! validate, normalise into the unit sphere), [`sdf`] (exact signed distance),
//! [`sampling`] (near-surface samples, read and written as .npy arrays by
//! [`io`]), [`model`] (the network and its file),
//! [`train`] (losses, schedules, Adam, the bf16 step), [`extract`] (marching
//! cubes), [`metrics`] (Chamfer, Hausdorff and the rest) and [`pipeline`]
//! (presets, the one-mesh job and the convergence check); [`render`] draws
//! meshes for reports and [`util`] holds small shared helpers. [`ffi`] is the
//! C API and only translates. The stages that need no libtorch (mesh, sdf,
//! sampling, io, render, util and the mesh-to-mesh metrics) live in the
//! hisdf-geometry crate and are re-exported here under the same paths. ARCHITECTURE.md gives the layering, which
//! tests/architecture.rs enforces.

pub mod extract;
pub mod ffi;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod train;

// The stages that need no libtorch live in the hisdf-geometry crate
// (crates/geometry), so that the torch-free commands start without it;
// their paths here stay what they were.
pub use hisdf_geometry::{io, mesh, render, sampling, sdf, util};
