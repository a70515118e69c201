//! Times our marching cubes on SDF grids and saves each grid as .npy so that
//! `bench/mc_vs_skimage.py` can time scikit-image on the very same samples.
//!
//!     scripts/cargo run --release --example bench_marching_cubes -- [N] [OUT_DIR]
//!
//! Prints one JSON line per field: name, grid, median seconds over 5 runs,
//! M voxels/s, vertex and triangle counts, and the .npy path.

use std::path::PathBuf;
use std::time::Instant;

use hisdf::extract::{marching_cubes, SdfGrid};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(512);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "bench/out".into()));
    std::fs::create_dir_all(&out).expect("create output folder");
    type Field = fn([f64; 3]) -> f64;
    let fields: [(&str, Field); 2] = [("torus", torus), ("gyroid", gyroid)];
    for (name, f) in fields {
        let grid = sample(n, f);
        let path = out.join(format!("{name}_{n}.npy"));
        // `values[x + nx*(y + ny*z)]` is C order for shape (nz, ny, nx).
        let [nx, ny, nz] = grid.dims;
        hisdf::io::npy::write(&path, &[nz, ny, nx], &grid.values).expect("write .npy");
        let mut times = Vec::new();
        let mut mesh = marching_cubes(&grid);
        for _ in 0..5 {
            let t = Instant::now();
            mesh = marching_cubes(&grid);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let voxels = ((n - 1) as f64).powi(3);
        println!(
            "{{\"field\":\"{name}\",\"n\":{n},\"threads\":{},\"median_s\":{median},\"mvoxels_per_s\":{},\"vertices\":{},\"triangles\":{},\"npy\":{:?}}}",
            rayon::current_num_threads(),
            voxels / median / 1e6,
            mesh.vertices.len(),
            mesh.triangles.len(),
            path.display().to_string()
        );
    }
}

fn torus(p: [f64; 3]) -> f64 {
    let q = (p[0] * p[0] + p[1] * p[1]).sqrt() - 0.6;
    (q * q + p[2] * p[2]).sqrt() - 0.25
}

/// A gyroid clipped by a sphere: much more surface per voxel than a torus,
/// so vertex and triangle generation dominate rather than the sign sweep.
fn gyroid(p: [f64; 3]) -> f64 {
    let [x, y, z] = p.map(|c| 6.0 * c);
    let g = (x.sin() * y.cos() + y.sin() * z.cos() + z.sin() * x.cos()) / 6.0;
    g.max((p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt() - 0.9)
}

fn sample(n: usize, f: fn([f64; 3]) -> f64) -> SdfGrid {
    let spacing = 2.0 / (n - 1) as f64;
    let mut values = vec![0f32; n * n * n];
    use rayon::prelude::*;
    values
        .par_chunks_mut(n * n)
        .enumerate()
        .for_each(|(z, slab)| {
            for y in 0..n {
                for x in 0..n {
                    let p = [x, y, z].map(|i| -1.0 + spacing * i as f64);
                    slab[x + n * y] = f(p) as f32;
                }
            }
        });
    SdfGrid {
        dims: [n; 3],
        origin: [-1.0; 3],
        spacing: spacing as f32,
        values,
    }
}
