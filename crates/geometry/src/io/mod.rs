//! File formats shared by several stages and front ends that are not
//! meshes (those are in [`crate::mesh`]): NumPy `.npy` arrays for query
//! points, SDF values and training samples.

pub mod npy;
