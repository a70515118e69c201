//! Extracting the zero level set of a trained network as a mesh in the
//! user's coordinates.

use crate::mesh::TriangleMesh;
use crate::model::TrainedModel;

use super::marching_cubes::{marching_cubes, SdfGrid};

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("resolution must be between 8 and {max}, got {got}")]
    Resolution { got: usize, max: usize },
    #[error("extraction cancelled")]
    Cancelled,
    #[error("the network's zero level set is empty inside the unit sphere: no surface to extract (did training converge?)")]
    NoSurface,
}

/// Grid points per axis; beyond this the dense grid no longer fits in memory
/// (issue: a sparse coarse-to-fine extraction lifts this).
pub const MAX_DENSE_RESOLUTION: usize = 1024;

/// Samples the network on a dense `resolution`^3 grid covering the unit
/// sphere's bounding cube (plus one cell, so that a surface touching the
/// sphere still closes), runs marching cubes, and maps the mesh back into the
/// user's coordinates. `progress(fraction)` returning false cancels.
pub fn extract_mesh(
    model: &TrainedModel,
    resolution: usize,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<TriangleMesh, ExtractError> {
    if !(8..=MAX_DENSE_RESOLUTION).contains(&resolution) {
        return Err(ExtractError::Resolution {
            got: resolution,
            max: MAX_DENSE_RESOLUTION,
        });
    }
    let n = resolution;
    let half = 1.0f64;
    let spacing = 2.0 * half / (n as f64 - 3.0);
    let origin = -half - spacing;
    let coord = |i: usize| (origin + spacing * i as f64) as f32;
    let mut values = Vec::with_capacity(n * n * n);
    // Whole z-slabs per forward pass, so progress is reported in steps that
    // a user sees move and cancellation is honoured between them.
    let slabs_per_chunk = (TrainedModel::QUERY_CHUNK / (n * n)).max(1);
    let mut points = Vec::with_capacity(slabs_per_chunk * n * n);
    let mut z0 = 0;
    while z0 < n {
        let z1 = (z0 + slabs_per_chunk).min(n);
        points.clear();
        for z in z0..z1 {
            for y in 0..n {
                for x in 0..n {
                    points.push([coord(x), coord(y), coord(z)]);
                }
            }
        }
        values.extend(model.network.evaluate(&points, TrainedModel::QUERY_CHUNK));
        z0 = z1;
        if !progress(0.9 * z0 as f64 / n as f64) {
            return Err(ExtractError::Cancelled);
        }
    }
    let grid = SdfGrid {
        dims: [n, n, n],
        origin: [origin as f32; 3],
        spacing: spacing as f32,
        values,
    };
    let iso = marching_cubes(&grid);
    if iso.triangles.is_empty() {
        return Err(ExtractError::NoSurface);
    }
    let norm = model.normalisation;
    let vertices = iso
        .vertices
        .iter()
        .map(|v| {
            let p = norm.to_original([v[0] as f64, v[1] as f64, v[2] as f64]);
            [p[0] as f32, p[1] as f32, p[2] as f32]
        })
        .collect();
    progress(1.0);
    Ok(TriangleMesh {
        vertices,
        triangles: iso.triangles,
    })
}
