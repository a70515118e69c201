//! SDF benchmark, run by `bench/sdf/run.sh`: hisdf's exact signed distance
//! beside libigl (exact winding-number sign, the reference) and Open3D
//! (RaycastingScene) on the same points, then the paper's near-surface and
//! weighted sampling. Prints one table per part; figures are medians.
//!
//! Meshes: the paper's two (data/meshes), two closed 10k-50k-triangle meshes
//! from data/meshes/quality (the range of the speed bar) and two
//! generated closed meshes of 20k and 50k triangles, written to a temporary
//! file and loaded back. Every mesh is normalised into the unit sphere as
//! for training; the points are the paper's near-surface set (25k on the
//! surface, 250k at variance 1e-4, 250k at 1e-5) plus 100k uniform in the
//! unit ball: 625k points per mesh.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hisdf::io::npy;
use hisdf::mesh::{self, primitives, TriangleMesh};
use hisdf::pipeline::prepare_mesh;
use hisdf::sampling::{near_surface, weighted, NearSurfaceConfig, WeightedConfig};
use hisdf::sdf::MeshSdf;

struct Args {
    python: PathBuf,
    script: PathBuf,
    repeats: usize,
    uniform: usize,
    weighted_repeats: usize,
    /// Time hisdf alone (unsigned and signed, surface shells and uniform
    /// points apart) without the peers: for profiling, not for the bar.
    ours_only: bool,
    /// Only meshes whose name contains this (all when empty).
    only: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        python: "python3".into(),
        script: "bench/sdf/peers.py".into(),
        repeats: 3,
        uniform: 100_000,
        weighted_repeats: 3,
        ours_only: false,
        only: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--python" => args.python = value()?.into(),
            "--script" => args.script = value()?.into(),
            "--repeats" => args.repeats = value()?.parse().map_err(|e| format!("{e}"))?,
            "--uniform" => args.uniform = value()?.parse().map_err(|e| format!("{e}"))?,
            "--weighted-repeats" => {
                args.weighted_repeats = value()?.parse().map_err(|e| format!("{e}"))?
            }
            "--ours-only" => args.ours_only = true,
            "--only" => args.only = value()?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    args.repeats = args.repeats.max(1);
    args.weighted_repeats = args.weighted_repeats.max(1);
    Ok(args)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall-clock seconds per run, and the last result.
fn time<T>(repeats: usize, f: impl FnMut() -> T) -> (f64, T) {
    let (wall, _, out) = time_cpu(repeats, f);
    (wall, out)
}

/// CPU seconds used so far by this process, all threads (user + system),
/// from /proc/self/stat; NaN where that is unavailable. On a shared machine
/// CPU time is far less disturbed by other load than wall-clock time.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Median wall-clock seconds and CPU seconds per run, and the last result.
fn time_cpu<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut out = None;
    for _ in 0..repeats {
        let (t, c) = (Instant::now(), cpu_seconds());
        out = Some(f());
        walls.push(t.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c);
    }
    (
        median(walls),
        median(cpus),
        out.expect("at least one repeat"),
    )
}

/// |libigl distance| below which a point counts as on the surface.
const ON_SURFACE: f64 = 1e-12;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_sdf: {e}");
        std::process::exit(1);
    }
}

fn meshes(tmp: &Path) -> Result<Vec<(String, TriangleMesh)>, String> {
    let mut out = Vec::new();
    for name in [
        "Fennec_Fox.stl",
        "block-2x4.stl",
        "quality/torus_knot.ply",
        "quality/spring.ply",
    ] {
        let m =
            mesh::load(Path::new("data/meshes").join(name).as_path()).map_err(|e| e.to_string())?;
        out.push((name.to_string(), m));
    }
    for (name, m) in [
        ("icosphere-5.ply", primitives::icosphere(5)),
        ("torus-250x100.ply", primitives::torus(1.0, 0.35, 250, 100)),
    ] {
        let p = tmp.join(name);
        mesh::save(&m, &p).map_err(|e| e.to_string())?;
        out.push((name.to_string(), mesh::load(&p).map_err(|e| e.to_string())?));
    }
    Ok(out)
}

/// hisdf's time split by query kind and point kind (the uniform points are
/// the last `args.uniform` of the batch).
fn profile_ours(name: &str, mesh: &TriangleMesh, points: &[[f32; 3]], args: &Args) {
    let sdf = MeshSdf::new(mesh);
    let (t_build, _) = time(args.repeats, || MeshSdf::new(mesh));
    let split = points.len().saturating_sub(args.uniform);
    let (shells, uniform) = points.split_at(split);
    // What a caller with a fresh mesh pays for the whole batch: the build,
    // the cell grid (built by the first large signed batch) and the queries.
    let (t_fresh, _) = time(args.repeats, || MeshSdf::new(mesh).signed_distance(points));
    let mut row = format!(
        "{name}: build {:.3}s, fresh build + signed batch {:.3}s",
        t_build, t_fresh
    );
    for (label, pts) in [("shells", shells), ("uniform", uniform)] {
        let (tu, _) = time(args.repeats, || sdf.unsigned_distance(pts));
        let (ts, _) = time(args.repeats, || sdf.signed_distance(pts));
        let m = |t: f64| pts.len() as f64 / t / 1e6;
        row += &format!(
            "; {label} {}: unsigned {:.2} M/s, signed {:.2} M/s",
            pts.len(),
            m(tu),
            m(ts)
        );
    }
    println!("{row}");
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let tmp = std::env::temp_dir().join(format!("hisdf-bench-sdf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = bench(&args, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn bench(args: &Args, tmp: &Path) -> Result<(), String> {
    let threads = rayon::current_num_threads();
    println!(
        "hisdf SDF benchmark: {threads} threads, medians of {} runs (libigl: 1 run)\n",
        args.repeats
    );
    println!("| mesh | triangles | points | hisdf M pts/s | Open3D M pts/s | libigl M pts/s | hisdf / Open3D | hisdf / Open3D (CPU s) | hisdf sign = libigl | Open3D sign = libigl | hisdf max abs err vs libigl | Open3D max abs err vs libigl |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut largest: Option<TriangleMesh> = None;
    let mut peer_version = String::new();
    for (name, m) in meshes(tmp)? {
        if !name.contains(&args.only) {
            continue;
        }
        let prepared = prepare_mesh(m).map_err(|e| format!("{name}: {e}"))?;
        let mesh = prepared.normalised;
        let sdf = MeshSdf::new(&mesh);
        // The surface points are part of the batch: the sign must hold
        // there too (libigl's exact zeros are left out of the agreement).
        let config = NearSurfaceConfig {
            uniform: args.uniform,
            ..NearSurfaceConfig::paper()
        };
        let points = near_surface(&mesh, &sdf, &config, 0).points;
        let n = points.len();
        if args.ours_only {
            profile_ours(&name, &mesh, &points, args);
            continue;
        }

        // Ours: building the hierarchies plus the batch query, so the
        // figure is what a caller with a fresh mesh gets. Timed before and
        // after the peers, medians over both, so a burst of other load on a
        // shared machine weighs on both sides alike.
        let ours_run = || MeshSdf::new(&mesh).signed_distance(&points);
        let (w0, c0, ours) = time_cpu(args.repeats, ours_run);

        let v: Vec<f64> = mesh
            .vertices
            .iter()
            .flatten()
            .map(|&c| f64::from(c))
            .collect();
        let f: Vec<i32> = mesh.triangles.iter().flatten().map(|&i| i as i32).collect();
        let p: Vec<f32> = points.iter().flatten().copied().collect();
        let e = |e: npy::NpyError| e.to_string();
        npy::write(&tmp.join("V.npy"), &[mesh.vertices.len(), 3], &v).map_err(e)?;
        npy::write(&tmp.join("F.npy"), &[mesh.triangles.len(), 3], &f).map_err(e)?;
        npy::write(&tmp.join("P.npy"), &[n, 3], &p).map_err(e)?;
        let status = Command::new(&args.python)
            .arg(&args.script)
            .arg(tmp)
            .arg(args.repeats.to_string())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", args.python.display()))?;
        if !status.success() {
            return Err(format!("peer script failed on {name}: {status}"));
        }
        let (w1, c1, _) = time_cpu(args.repeats, ours_run);
        let t_ours = median(vec![w0, w1]);
        let cpu_ours = median(vec![c0, c1]);
        let igl = npy::read(&tmp.join("S_igl.npy")).map_err(e)?.data;
        let o3d = npy::read(&tmp.join("S_o3d.npy")).map_err(e)?.data;
        let times: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tmp.join("times.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let t_igl = times["igl"].as_f64().unwrap_or(f64::NAN);
        // Open3D's scene build is added, as ours includes building.
        let t_o3d =
            times["o3d"].as_f64().unwrap_or(f64::NAN) + times["o3d_build"].as_f64().unwrap_or(0.0);
        let cpu_o3d = times["o3d_cpu"].as_f64().unwrap_or(f64::NAN)
            + times["o3d_build_cpu"].as_f64().unwrap_or(0.0);
        peer_version = format!(
            "{}, {}",
            times["igl_version"].as_str().unwrap_or("?"),
            times["o3d_version"].as_str().unwrap_or("?")
        );
        if igl.len() != n || o3d.len() != n {
            return Err(format!(
                "{name}: peers returned {} and {} values for {n} points",
                igl.len(),
                o3d.len()
            ));
        }
        // Points on the surface have no sign to agree on: libigl's distance
        // there is 0 or f64 rounding noise (below 1e-12; the nearest f32
        // point off a unit-size surface is ~1e-8 away or it lies on it).
        let on_surface = |r: f64| r.abs() < ON_SURFACE;
        let agree = |other: &dyn Fn(usize) -> f64| {
            let (mut same, mut counted) = (0usize, 0usize);
            for (i, &r) in igl.iter().enumerate() {
                if !on_surface(r) {
                    counted += 1;
                    same += usize::from((other(i) < 0.0) == (r < 0.0));
                }
            }
            (same, counted)
        };
        let (ours_same, counted) = agree(&|i| f64::from(ours[i]));
        if std::env::var_os("BENCH_SDF_DEBUG").is_some() {
            let mut shown = 0;
            for (i, &r) in igl.iter().enumerate() {
                if !on_surface(r) && (f64::from(ours[i]) < 0.0) != (r < 0.0) && shown < 20 {
                    shown += 1;
                    println!(
                        "  differ at {i}: {:?} igl {r:e} ours {:e} w {}",
                        points[i],
                        ours[i],
                        sdf.winding_number(points[i].map(f64::from))
                    );
                }
            }
        }
        let (o3d_same, _) = agree(&|i| o3d[i]);
        let max_err = |other: &dyn Fn(usize) -> f64| {
            igl.iter()
                .enumerate()
                .map(|(i, r)| (other(i).abs() - r.abs()).abs())
                .fold(0.0, f64::max)
        };
        let err_ours = max_err(&|i| f64::from(ours[i]));
        let err_o3d = max_err(&|i| o3d[i]);
        let mpts = |t: f64| n as f64 / t / 1e6;
        println!(
            "| {name} | {} | {n} | {:.2} | {:.2} | {:.3} | {:.2}x | {:.2}x | {:.4}% ({} of {counted} differ, {} on surface) | {:.4}% ({} differ) | {err_ours:.2e} | {err_o3d:.2e} |",
            mesh.triangles.len(),
            mpts(t_ours),
            mpts(t_o3d),
            mpts(t_igl),
            t_o3d / t_ours,
            cpu_o3d / cpu_ours,
            100.0 * ours_same as f64 / counted as f64,
            counted - ours_same,
            n - counted,
            100.0 * o3d_same as f64 / counted as f64,
            counted - o3d_same,
        );
        if largest
            .as_ref()
            .map_or(true, |l| l.triangles.len() < mesh.triangles.len())
        {
            largest = Some(mesh);
        }
    }
    if args.ours_only {
        return Ok(());
    }
    println!("\npeers: {peer_version}; max abs err compares |distance|, so it is independent of sign disagreements.\n");

    let mesh = largest.ok_or("no meshes")?;
    println!(
        "Paper sampling on the {}-triangle mesh (MeshSdf build included), medians:\n",
        mesh.triangles.len()
    );
    println!("| strategy | samples | SDF evaluations | seconds |");
    println!("|---|---|---|---|");
    let paper = NearSurfaceConfig::paper();
    let (t_ns, s) = time(args.repeats, || {
        near_surface(&mesh, &MeshSdf::new(&mesh), &paper, 1)
    });
    println!(
        "| near-surface (25k + 250k @ 1e-4 + 250k @ 1e-5) | {} | {} | {t_ns:.3} |",
        s.len(),
        s.len() - paper.surface
    );
    drop(s);
    let wc = WeightedConfig::paper();
    let (t_w, s) = time(args.weighted_repeats, || {
        weighted(&MeshSdf::new(&mesh), &wc, 1)
    });
    println!(
        "| weighted (pool 10M, keep 1M, beta 100) | {} | {} | {t_w:.3} |",
        s.len(),
        wc.pool
    );
    Ok(())
}
