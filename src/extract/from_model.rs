//! Extracting the zero level set of a trained network as a mesh in the
//! user's coordinates, on a dense grid or sparsely (coarse to fine).

use std::time::Instant;

use crate::mesh::TriangleMesh;
use crate::model::{SdfNetwork, TrainedModel};
use crate::train::{Precision, Tf32};
use crate::util::memory::{self, MemoryShortfall};

use super::marching_cubes::{marching_cubes, IsoMesh};
use super::sparse::{sparse_marching_cubes, CubeGrid, SparseConfig, SparseStats};

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("resolution must be between 8 and {max} for this extraction (a sparse extraction goes to 2048), got {got}")]
    Resolution { got: usize, max: usize },
    #[error("extraction evaluates the network in fp32 or tf32; bf16 is a training precision only (it would move vertices by up to a voxel)")]
    Precision,
    #[error("extraction cancelled")]
    Cancelled,
    #[error("the network's zero level set is empty inside the unit sphere: no surface to extract; train longer or with a larger network, and check the convergence report")]
    NoSurface,
    #[error(transparent)]
    Memory(#[from] MemoryShortfall),
}

/// Grid points per axis of the dense grid; its values alone take
/// 4 * resolution^3 bytes (4 GiB at 1024).
pub const MAX_DENSE_RESOLUTION: usize = 1024;

/// Grid points per axis of the sparse extraction. Beyond 2048, sample
/// indices exceed 2^11 and the marching cubes' 1e-4 clamp of interpolation
/// parameters no longer survives f32 rounding (see its module docs).
pub const MAX_SPARSE_RESOLUTION: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExtractConfig {
    /// Grid points per axis over the unit sphere's bounding cube.
    pub resolution: usize,
    /// Coarse-to-fine sampling of the bricks the surface can pass through
    /// (see [`super::sparse`]) instead of the whole grid.
    pub sparse: Option<SparseConfig>,
    /// Vertex normals from the network's gradient (autograd), mapped to the
    /// user's frame.
    pub normals: bool,
    /// TF32 matmuls for the network on CUDA (no effect on the CPU).
    pub precision: Precision,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            resolution: 256,
            sparse: None,
            normals: false,
            precision: Precision::Fp32,
        }
    }
}

/// A mesh extracted from a network, in the user's coordinates.
#[derive(Clone, Debug, Default)]
pub struct Extraction {
    pub mesh: TriangleMesh,
    /// Unit outward normals per vertex, when asked for.
    pub normals: Option<Vec<[f32; 3]>>,
    /// Network evaluations spent on the grid (and the culling).
    pub samples: usize,
    /// Present for a sparse extraction.
    pub sparse: Option<SparseStats>,
    pub seconds_sampling_and_meshing: f64,
    pub seconds_normals: f64,
}

/// Samples the network on a dense `resolution`^3 grid covering the unit
/// sphere's bounding cube (plus one cell, so that a surface touching the
/// sphere still closes), runs marching cubes, and maps the mesh back into the
/// user's coordinates. `progress(fraction)` returning false cancels, at
/// the final report (1.0) too.
pub fn extract_mesh(
    model: &TrainedModel,
    resolution: usize,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<TriangleMesh, ExtractError> {
    let config = ExtractConfig {
        resolution,
        ..ExtractConfig::default()
    };
    Ok(extract_mesh_with(model, &config, progress)?.mesh)
}

/// The grid both extractions sample: `resolution` points per axis, one cell
/// beyond the unit cube on each side.
pub fn unit_cube_grid(resolution: usize) -> CubeGrid {
    let spacing = 2.0 / (resolution as f64 - 3.0);
    CubeGrid {
        points: resolution,
        origin: -1.0 - spacing,
        spacing,
    }
}

impl ExtractConfig {
    /// What extraction refuses before any work, for front ends to check
    /// before a training whose model would then not extract.
    pub fn validate(&self) -> Result<(), ExtractError> {
        let max = if self.sparse.is_some() {
            MAX_SPARSE_RESOLUTION
        } else {
            MAX_DENSE_RESOLUTION
        };
        if !(8..=max).contains(&self.resolution) {
            return Err(ExtractError::Resolution {
                got: self.resolution,
                max,
            });
        }
        if self.precision == Precision::Bf16 {
            return Err(ExtractError::Precision);
        }
        Ok(())
    }
}

/// [`extract_mesh`] with every option: sparse extraction, normals.
pub fn extract_mesh_with(
    model: &TrainedModel,
    config: &ExtractConfig,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Extraction, ExtractError> {
    config.validate()?;
    if config.sparse.is_none() {
        // The grid's values are held whole; the sparse extraction holds a
        // band around the surface only.
        let r = config.resolution as u64;
        memory::ensure(
            4 * r * r * r,
            || format!("a dense {r}^3 extraction"),
            "lower the resolution, or extract sparse (sparse=true), which goes to 2048 in a fraction of the memory",
        )?;
    }
    let grid = unit_cube_grid(config.resolution);
    let _tf32 = Tf32::when(config.precision == Precision::Tf32 && model.network.device().is_cuda());
    extract_on_grid(model, config, &grid, progress)
}

fn extract_on_grid(
    model: &TrainedModel,
    config: &ExtractConfig,
    grid: &CubeGrid,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Extraction, ExtractError> {
    let grid = *grid;
    let start = Instant::now();
    let mut samples = 0usize;
    let mut field = |points: &[[f32; 3]]| {
        samples += points.len();
        model.network.evaluate(points, TrainedModel::QUERY_CHUNK)
    };
    let (iso, sparse) = match &config.sparse {
        Some(sparse) => {
            let (iso, stats) = sparse_marching_cubes(&grid, &mut field, sparse, progress)
                .map_err(|_| ExtractError::Cancelled)?;
            (iso, Some(stats))
        }
        None => (dense_marching_cubes(&grid, &mut field, progress)?, None),
    };
    let seconds_sampling_and_meshing = start.elapsed().as_secs_f64();
    if iso.triangles.is_empty() {
        return Err(ExtractError::NoSurface);
    }
    let start = Instant::now();
    // The normalisation is a translation and a uniform scale, so unit
    // normals are the same in both frames.
    let normals = config
        .normals
        .then(|| gradient_normals(&model.network, &iso));
    let seconds_normals = start.elapsed().as_secs_f64();
    let norm = model.normalisation;
    let vertices = iso
        .vertices
        .iter()
        .map(|v| {
            let p = norm.to_original([v[0] as f64, v[1] as f64, v[2] as f64]);
            [p[0] as f32, p[1] as f32, p[2] as f32]
        })
        .collect();
    // A false at the last report cancels too: the caller asked to stop,
    // and gets the same answer whenever the request lands.
    if !progress(1.0) {
        return Err(ExtractError::Cancelled);
    }
    Ok(Extraction {
        mesh: TriangleMesh {
            vertices,
            triangles: iso.triangles,
        },
        normals,
        samples,
        sparse,
        seconds_sampling_and_meshing,
        seconds_normals,
    })
}

/// Samples every grid point, then meshes the whole grid.
fn dense_marching_cubes(
    grid: &CubeGrid,
    field: &mut dyn FnMut(&[[f32; 3]]) -> Vec<f32>,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<IsoMesh, ExtractError> {
    let values = dense_grid_values(grid, field, progress)?;
    Ok(marching_cubes(&grid.sdf_grid(values)))
}

/// `field` at every point of the grid, x fastest (the order of
/// [`CubeGrid::sdf_grid`]); progress runs to 0.9, the rest is meshing's.
pub(crate) fn dense_grid_values(
    grid: &CubeGrid,
    field: &mut dyn FnMut(&[[f32; 3]]) -> Vec<f32>,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Vec<f32>, ExtractError> {
    let n = grid.points;
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
                    points.push([grid.coord(x), grid.coord(y), grid.coord(z)]);
                }
            }
        }
        values.extend(field(&points));
        z0 = z1;
        if !progress(0.9 * z0 as f64 / n as f64) {
            return Err(ExtractError::Cancelled);
        }
    }
    Ok(values)
}

/// Unit gradients of the network at the mesh's vertices (unit-sphere frame),
/// by autograd in chunks. Where the gradient vanishes or is not finite, the
/// area-weighted mean of the adjacent triangles' normals stands in.
pub fn gradient_normals(network: &SdfNetwork, mesh: &IsoMesh) -> Vec<[f32; 3]> {
    let mut out = network
        .gradient(&mesh.vertices, TrainedModel::GRADIENT_CHUNK)
        .unwrap_or_else(|e| panic!("autograd of the network failed: {e}"));
    let mut fallback: Option<Vec<[f64; 3]>> = None;
    for (i, n) in out.iter_mut().enumerate() {
        let len = n.iter().map(|c| c * c).sum::<f32>().sqrt();
        if len > 0.0 && len.is_finite() {
            *n = n.map(|c| c / len);
        } else {
            let f = fallback.get_or_insert_with(|| face_normal_sums(mesh));
            let l = f[i].iter().map(|c| c * c).sum::<f64>().sqrt();
            *n = if l > 0.0 {
                f[i].map(|c| (c / l) as f32)
            } else {
                [0.0; 3]
            };
        }
    }
    out
}

/// Per vertex, the sum of its triangles' area-weighted normals.
fn face_normal_sums(mesh: &IsoMesh) -> Vec<[f64; 3]> {
    let mut sums = vec![[0.0f64; 3]; mesh.vertices.len()];
    for t in &mesh.triangles {
        let p = t.map(|i| mesh.vertices[i as usize].map(f64::from));
        let u = [0, 1, 2].map(|k| p[1][k] - p[0][k]);
        let v = [0, 1, 2].map(|k| p[2][k] - p[0][k]);
        let n = [
            u[1] * v[2] - u[2] * v[1],
            u[2] * v[0] - u[0] * v[2],
            u[0] * v[1] - u[1] * v[0],
        ];
        for &i in t {
            for k in 0..3 {
                sums[i as usize][k] += n[k];
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::Normalisation;
    use crate::model::{Initialisation, NetworkConfig, TrainingMetadata};
    use tch::Device;

    /// An untrained network with the geometric initialisation is close to a
    /// sphere's SDF: enough of a surface for the model-level paths.
    fn sphere_model() -> TrainedModel {
        let config = NetworkConfig {
            depth: 2,
            width: 32,
            tanh_output: false,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        };
        TrainedModel {
            network: SdfNetwork::new(&config, Device::Cpu, 3).unwrap(),
            normalisation: Normalisation {
                centre: [1.0, 2.0, 3.0],
                scale: 0.5,
            },
            metadata: TrainingMetadata::default(),
        }
    }

    #[test]
    fn sparse_and_dense_agree_on_a_network() {
        let model = sphere_model();
        let dense = extract_mesh(&model, 40, &mut |_| true).unwrap();
        let config = ExtractConfig {
            resolution: 40,
            sparse: Some(SparseConfig::default()),
            normals: true,
            ..ExtractConfig::default()
        };
        let sparse = extract_mesh_with(&model, &config, &mut |_| true).unwrap();
        // Batches differ between the two paths and BLAS may round a row
        // differently with the batch, so compare counts and geometry, not
        // bits (the bit-exact comparison runs on analytic fields).
        assert_eq!(sparse.mesh.triangles.len(), dense.triangles.len());
        assert_eq!(sparse.mesh.vertices.len(), dense.vertices.len());
        let vol = |m: &TriangleMesh| m.signed_volume();
        assert!((vol(&sparse.mesh) / vol(&dense) - 1.0).abs() < 1e-4);
        assert!(sparse.samples < 40 * 40 * 40);

        // Gradient normals agree with the mesh's own (area-weighted face
        // normals), outward, in the user's frame.
        let normals = sparse.normals.unwrap();
        assert_eq!(normals.len(), sparse.mesh.vertices.len());
        let faces = face_normal_sums(&IsoMesh {
            vertices: sparse.mesh.vertices.clone(),
            triangles: sparse.mesh.triangles.clone(),
        });
        let cosines: Vec<f64> = faces
            .iter()
            .zip(&normals)
            .map(|(f, n)| {
                let len = f.iter().map(|x| x * x).sum::<f64>().sqrt();
                (0..3).map(|k| f[k] * f64::from(n[k])).sum::<f64>() / len
            })
            .collect();
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        let worst = cosines.iter().copied().fold(1.0, f64::min);
        assert!(mean > 0.98 && worst > 0.5, "mean cos {mean}, worst {worst}");
    }

    #[test]
    fn resolution_limits() {
        let model = sphere_model();
        assert!(matches!(
            extract_mesh(&model, 4, &mut |_| true),
            Err(ExtractError::Resolution { .. })
        ));
        let too_big = ExtractConfig {
            resolution: MAX_SPARSE_RESOLUTION + 1,
            sparse: Some(SparseConfig::default()),
            normals: false,
            ..ExtractConfig::default()
        };
        assert!(matches!(
            extract_mesh_with(&model, &too_big, &mut |_| true),
            Err(ExtractError::Resolution {
                max: MAX_SPARSE_RESOLUTION,
                ..
            })
        ));
    }
}
