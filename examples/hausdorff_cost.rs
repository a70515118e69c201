//! Cost of the certified Hausdorff distance (`metrics::hausdorff`): the
//! paper's two meshes against "reconstructions" made by moving every vertex
//! by seeded noise of a given size (unit-sphere frame), at two noise sizes.
//! Prints seconds, distance queries and the certified interval per
//! direction. Run: cargo run --release --example hausdorff_cost

use std::path::Path;
use std::time::Instant;

use hisdf::mesh::{self, TriangleMesh};
use hisdf::metrics::{hausdorff, metric_frame};
use hisdf::sdf::MeshSdf;

/// Every vertex moved by up to `size` per coordinate, from a fixed
/// splitmix64 stream so that runs compare.
fn perturbed(mesh: &TriangleMesh, size: f32, seed: u64) -> TriangleMesh {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    TriangleMesh {
        vertices: mesh
            .vertices
            .iter()
            .map(|v| v.map(|c| c + size * uniform()))
            .collect(),
        triangles: mesh.triangles.clone(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("mesh | triangles | noise | direction | seconds | queries | lower | upper");
    for name in ["Fennec_Fox.stl", "block-2x4.stl"] {
        let raw = mesh::load(&Path::new("data/meshes").join(name))?;
        let reference = metric_frame(&raw).apply_to_mesh(&raw);
        for noise in [1e-3f32, 1e-4] {
            let other = perturbed(&reference, noise, 7);
            let pairs = [
                ("ref->other", &reference, &other),
                ("other->ref", &other, &reference),
            ];
            for (dir, from, to) in pairs {
                let sdf = MeshSdf::new(to);
                let start = Instant::now();
                let r = hausdorff::one_sided(
                    from,
                    &sdf,
                    hausdorff::DEFAULT_TOLERANCE,
                    hausdorff::DEFAULT_MAX_EVALUATIONS,
                );
                println!(
                    "{name} | {} | {noise:.0e} | {dir} | {:.3} | {} | {:.7e} | {:.7e}",
                    reference.triangles.len(),
                    start.elapsed().as_secs_f64(),
                    r.evaluations,
                    r.lower,
                    r.upper
                );
            }
        }
    }
    Ok(())
}
