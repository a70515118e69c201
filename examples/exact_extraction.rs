//! What the extraction grid allows: marching cubes of the mesh's exact
//! signed distance on the grid a model is extracted on (the same
//! unit-sphere frame, the same `unit_cube_grid`, sparse). Its Hausdorff
//! distance to the original (`hisdf eval MESH OUT`) shows what the grid
//! alone costs: a thin slot or a concave tip finer than a cell is lost,
//! whatever the network learned. It is a reference, not a strict lower
//! bound: a network's smoother field can keep a thin strand that the exact
//! field's samples straddle (docs/results.md, the torus knot).
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
    let out = prepared.normalisation.invert_mesh(&TriangleMesh {
        vertices: iso.vertices,
        triangles: iso.triangles,
    });
    mesh::save(&out, &PathBuf::from(&args[1]))?;
    eprintln!(
        "{resolution}^3 sparse of the exact SDF: {} triangles, {samples} SDF queries, {:.1} s",
        out.triangles.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
