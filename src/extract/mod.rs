//! Extract stage: turning a sampled signed distance field into a triangle
//! mesh of its zero level set.

mod case_table;
pub mod marching_cubes;
pub use marching_cubes::*;

pub mod sparse;

mod from_model;
pub(crate) use from_model::dense_grid_values;
pub use from_model::{
    extract_mesh, extract_mesh_with, gradient_normals, unit_cube_grid, ExtractConfig, ExtractError,
    Extraction, MAX_DENSE_RESOLUTION, MAX_SPARSE_RESOLUTION,
};
