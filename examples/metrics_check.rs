//! Dumps the samples behind `hisdf eval`'s metrics and our values, so that
//! `bench/check_metrics.py` can recompute Chamfer (scipy cKDTree) and EMD
//! (scipy linear_sum_assignment) independently on exactly these points.
//!
//!     scripts/cargo run --release --example metrics_check -- OUT_DIR [REFERENCE OTHER]
//!
//! Without meshes it uses an icosphere against a bumpy, shifted copy.
//! Also times our Chamfer on 100,000 points per set.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hisdf::io::npy;
use hisdf::mesh::{self, icosphere, TriangleMesh};
use hisdf::metrics::{chamfer_points, evaluate, metric_frame_meshes, metric_samples, EvalConfig};
use hisdf::sampling::surface_points;

/// An N x 3 float32 `.npy` of points.
fn write_points(path: &Path, pts: &[[f32; 3]]) -> Result<(), npy::NpyError> {
    npy::write(path, &[pts.len(), 3], hisdf::model::as_flat(pts))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().map_or("bench/out", String::as_str));
    std::fs::create_dir_all(&out).expect("create output folder");
    let (reference, other) = if args.len() >= 3 {
        (
            mesh::load(Path::new(&args[1])).expect("load reference"),
            mesh::load(Path::new(&args[2])).expect("load other"),
        )
    } else {
        let a = icosphere(4);
        let b = TriangleMesh {
            vertices: a
                .vertices
                .iter()
                .map(|v| {
                    let bump = 1.0 + 0.05 * (5.0 * v[0]).sin() * (3.0 * v[1]).cos();
                    [v[0] * bump + 0.02, v[1] * bump, v[2] * bump]
                })
                .collect(),
            triangles: a.triangles.clone(),
        };
        (a, b)
    };
    let config = EvalConfig::default();
    let report = evaluate(&reference, &other, &config).expect("two small meshes fit in memory");
    let (ma, mb) = metric_frame_meshes(&reference, &other);
    let s = metric_samples(&ma, &mb, &config);
    for (name, pts) in [
        ("chamfer_a", &s.reference),
        ("chamfer_b", &s.other),
        ("emd_a", &s.emd_reference),
        ("emd_b", &s.emd_other),
    ] {
        write_points(&out.join(format!("{name}.npy")), pts).expect("write .npy");
    }

    // Chamfer at 100k points per set: the k-d tree's reason to exist.
    let big = 100_000;
    let (pa, pb) = (surface_points(&ma, big, 1), surface_points(&mb, big, 2));
    write_points(&out.join("big_a.npy"), &pa).expect("write .npy");
    write_points(&out.join("big_b.npy"), &pb).expect("write .npy");
    let mut times = Vec::new();
    let mut cd_big = 0.0;
    for _ in 0..3 {
        let t = Instant::now();
        cd_big = chamfer_points(&pa, &pb);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"chamfer\":{},\"emd_sum\":{},\"emd\":{},\"emd_points\":{},\"chamfer_100k\":{cd_big},\"chamfer_100k_median_s\":{},\"threads\":{},\"report\":{}}}",
        report.chamfer,
        report.emd_sum,
        report.emd,
        report.emd_points,
        times[1],
        rayon::current_num_threads(),
        serde_json::to_string(&report).expect("report serialises")
    );
}
