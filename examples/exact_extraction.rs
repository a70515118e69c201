//! The extraction floor: marching cubes of the mesh's exact signed distance
//! on the grid a model is extracted on (the same unit-sphere frame, the
//! same `unit_cube_grid`, sparse). The mesh it writes is the best any
//! network can give at that resolution, so its Hausdorff distance to the
//! original (`hisdf eval MESH OUT`) is the floor under a model's: a
//! thin slot or a concave tip finer than a cell is lost by the grid,
//! whatever the network learned.
//!
//! Run: cargo run --release --example exact_extraction -- MESH OUT.obj [RESOLUTION]

use std::path::PathBuf;
use std::time::Instant;

use hisdf::extract::sparse::{sparse_marching_cubes, SparseConfig};
use hisdf::extract::unit_cube_grid;
use hisdf::mesh::{self, TriangleMesh};
use hisdf::pipeline::prepare_mesh;
use hisdf::sdf::MeshSdf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: exact_extraction MESH OUT.obj [RESOLUTION (512)]".into());
    }
    let resolution: usize = args.get(2).map_or(Ok(512), |r| r.parse())?;
    let prepared = prepare_mesh(mesh::load(&PathBuf::from(&args[0]))?)?;
    let sdf = MeshSdf::new(&prepared.normalised);
    let grid = unit_cube_grid(resolution);
    let start = Instant::now();
    let mut samples = 0usize;
    let mut field = |points: &[[f32; 3]]| {
        samples += points.len();
        sdf.signed_distance(points)
    };
    let (iso, _) =
        sparse_marching_cubes(&grid, &mut field, &SparseConfig::default(), &mut |_| true)
            .map_err(|_| "cancelled")?;
    let norm = prepared.normalisation;
    let out = TriangleMesh {
        vertices: iso
            .vertices
            .iter()
            .map(|v| {
                let p = norm.to_original([v[0] as f64, v[1] as f64, v[2] as f64]);
                [p[0] as f32, p[1] as f32, p[2] as f32]
            })
            .collect(),
        triangles: iso.triangles,
    };
    mesh::save(&out, &PathBuf::from(&args[1]))?;
    eprintln!(
        "{resolution}^3 sparse of the exact SDF: {} triangles, {samples} SDF queries, {:.1} s",
        out.triangles.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
