//! Extract stage: turning a sampled signed distance field into a triangle
//! mesh of its zero level set.

pub mod marching_cubes;
pub use marching_cubes::*;

mod from_model;
pub use from_model::{extract_mesh, ExtractError, MAX_DENSE_RESOLUTION};
