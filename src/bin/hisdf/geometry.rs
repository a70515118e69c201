//! Geometry commands: exact SDF queries, training-set sampling and mesh
//! reports, without any network.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Subcommand, ValueEnum};
// hisdf-geometry, not hisdf: `hisdf` (start.rs) runs these commands
// itself, without libtorch.
use hisdf_geometry::io::npy;
use hisdf_geometry::mesh::{self, open_surface_note, prepare_mesh, MeshInfo};
use hisdf_geometry::render::{render_row, save_png, View};
use hisdf_geometry::sampling::{
    near_surface, uniform, weighted, NearSurfaceConfig, Surface, UniformDomain, WeightedConfig,
};
use hisdf_geometry::sdf::{exact_signed_distance, MeshSdf};

#[derive(Subcommand)]
pub enum GeometryCommand {
    /// Exact signed distance from MESH at the points of an N x 3 .npy file
    /// (float32 or float64). Writes N float32 distances, negative inside,
    /// in the mesh's original coordinates and units.
    Sdf {
        mesh: PathBuf,
        points: PathBuf,
        /// Output .npy file (shape (N,), float32).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Sample the true SDF of MESH into an N x 4 float32 .npy (x, y, z, sdf).
    ///
    /// Samples are in the NORMALISED frame: the mesh is centred on its
    /// vertex mean and scaled into the unit sphere, as for training; the
    /// centre and scale are printed so that points map back by
    /// p / scale + centre and distances by sdf / scale.
    Sample {
        mesh: PathBuf,
        /// Output .npy file (N x 4 float32: x, y, z, sdf).
        #[arg(short, long)]
        output: PathBuf,
        /// near-surface: 25k on the surface + 250k at variance 1e-4 + 250k
        /// at 1e-5 (paper); weighted: 10M uniform in the unit sphere, 1M kept
        /// with weight exp(-beta |SDF|) (paper); uniform: --count points in
        /// the unit ball or cube.
        #[arg(long, value_enum, default_value_t = Strategy::NearSurface)]
        strategy: Strategy,
        /// Seed; the same seed gives the same samples on any machine.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// weighted: pool size.
        #[arg(long, default_value_t = 10_000_000)]
        pool: usize,
        /// weighted: samples kept; uniform: samples drawn.
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
        /// weighted: beta of exp(-beta |SDF|).
        #[arg(long, default_value_t = 100.0)]
        beta: f64,
        /// uniform: the unit ball or the cube [-1, 1]^3.
        #[arg(long, value_enum, default_value_t = Domain::Ball)]
        domain: Domain,
    },
    /// Shaded pictures of meshes side by side in one PNG, all framed by
    /// the first (give the original first to compare reconstructions); a
    /// later "-" leaves its tile empty.
    Render {
        #[arg(required = true)]
        meshes: Vec<PathBuf>,
        /// Output PNG.
        #[arg(short, long)]
        output: PathBuf,
        /// Pixels per side of each tile.
        #[arg(long, default_value_t = 512)]
        size: usize,
        /// Degrees around the vertical axis.
        #[arg(long, default_value_t = 35.0)]
        azimuth: f64,
        /// Degrees above the horizontal plane.
        #[arg(long, default_value_t = 25.0)]
        elevation: f64,
        /// The meshes' up axis is y (scans often are) instead of z.
        #[arg(long)]
        y_up: bool,
    },
    /// Counts, watertightness, bounding box and issues of MESH.
    Info {
        mesh: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Strategy {
    NearSurface,
    Weighted,
    Uniform,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Domain {
    Ball,
    Cube,
}

fn npy_output(path: &Path) -> Result<(), String> {
    super::check_output(path, &["npy"])
}

pub fn run(command: GeometryCommand) -> Result<(), String> {
    match command {
        GeometryCommand::Sdf {
            mesh,
            points,
            output,
        } => {
            npy_output(&output)?;
            let (rows, n) =
                npy::read_rows(&points, 3, "query points").map_err(|e| e.to_string())?;
            let loaded = mesh::load(&mesh).map_err(|e| e.to_string())?;
            let t = Instant::now();
            // The library decides scale, frame and what is left out, as for
            // the C API and Python.
            // float64 files may hold coordinates f32 cannot (the library
            // measures in f32 coordinates, f64 arithmetic): refused rather
            // than answered with inf or NaN.
            if let Some(i) = rows.iter().position(|x| x.abs() > f64::from(f32::MAX)) {
                return Err(format!(
                    "{}: point {}, coordinate {} is {:e}, beyond single precision (3.4e38); rescale the points and the mesh",
                    points.display(),
                    i / 3,
                    i % 3,
                    rows[i]
                ));
            }
            let query: Vec<[f32; 3]> = rows
                .chunks_exact(3)
                .map(|r| [r[0] as f32, r[1] as f32, r[2] as f32])
                .collect();
            let values = exact_signed_distance(&loaded, &query)
                .map_err(|e| format!("{}: {e}", mesh.display()))?;
            let seconds = t.elapsed().as_secs_f64();
            npy::write(&output, &[n], &values).map_err(|e| e.to_string())?;
            eprintln!(
                "{n} signed distances in {seconds:.2} s ({:.2} M points/s) written to {}",
                n as f64 / seconds.max(1e-9) / 1e6,
                output.display()
            );
            Ok(())
        }
        GeometryCommand::Sample {
            mesh,
            output,
            strategy,
            seed,
            pool,
            count,
            beta,
            domain,
        } => {
            npy_output(&output)?;
            if !beta.is_finite() || beta < 0.0 {
                return Err("--beta must be a non-negative number".into());
            }
            if u32::try_from(pool).is_err() {
                return Err("--pool must be below 2^32".into());
            }
            let loaded = mesh::load(&mesh).map_err(|e| e.to_string())?;
            let prepared = prepare_mesh(loaded).map_err(|e| format!("{}: {e}", mesh.display()))?;
            let t = Instant::now();
            let sdf = MeshSdf::new(&prepared.normalised);
            let samples = match strategy {
                Strategy::NearSurface => near_surface(
                    &prepared.normalised,
                    &sdf,
                    &NearSurfaceConfig::paper(),
                    seed,
                ),
                Strategy::Weighted => weighted(
                    &sdf,
                    &WeightedConfig {
                        pool,
                        keep: count,
                        beta,
                    },
                    seed,
                ),
                Strategy::Uniform => {
                    let domain = match domain {
                        Domain::Ball => UniformDomain::Ball,
                        Domain::Cube => UniformDomain::Cube,
                    };
                    uniform(&sdf, count, domain, seed)
                }
            };
            let seconds = t.elapsed().as_secs_f64();
            samples.save_npy(&output).map_err(|e| e.to_string())?;
            let n = prepared.normalisation;
            eprintln!(
                "{} samples in {seconds:.2} s written to {} (normalised frame: centre [{}, {}, {}], scale {})",
                samples.len(),
                output.display(),
                n.centre[0],
                n.centre[1],
                n.centre[2],
                n.scale
            );
            Ok(())
        }
        GeometryCommand::Render {
            meshes,
            output,
            size,
            azimuth,
            elevation,
            y_up,
        } => {
            super::check_output(&output, &["png"])?;
            // "-" stands for a missing result (a failed run): an empty tile
            // keeps the columns of a picture aligned.
            let loaded = meshes
                .iter()
                .enumerate()
                .map(|(i, p)| match p.to_str() {
                    Some("-") if i > 0 => Ok(mesh::TriangleMesh::default()),
                    Some("-") => Err("the first mesh frames every tile, so it cannot be \"-\" (an empty tile); give the original first".to_string()),
                    // The loader's messages name the file.
                    _ => mesh::load(p).map_err(|e| e.to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&mesh::TriangleMesh> = loaded.iter().collect();
            let view = View {
                azimuth,
                elevation,
                size,
                y_up,
            };
            let image = render_row(&refs, &view).map_err(|e| e.to_string())?;
            save_png(&image, &output).map_err(|e| e.to_string())?;
            eprintln!(
                "wrote {} ({} x {} pixels)",
                output.display(),
                image.width,
                image.height
            );
            Ok(())
        }
        GeometryCommand::Info { mesh, json } => {
            let loaded = mesh::load(&mesh).map_err(|e| e.to_string())?;
            let info = loaded
                .validate()
                .map_err(|e| format!("{}: {e}", mesh.display()))?;
            if json {
                let mut value = serde_json::to_value(&info).map_err(|e| e.to_string())?;
                value["issues"] = serde_json::Value::from(issues_of(&info));
                println!("{value}");
            } else {
                print_info(&mesh, &info);
            }
            Ok(())
        }
    }
}

/// The mesh's issues, and what the default training makes of an open mesh,
/// in training's own words.
fn issues_of(info: &MeshInfo) -> Vec<String> {
    let mut issues = info.issues();
    issues.extend(open_surface_note(info, Surface::Solid));
    issues
}

fn print_info(path: &Path, info: &MeshInfo) {
    println!("{}", path.display());
    println!(
        "  {} vertices, {} triangles, {} components",
        info.vertex_count, info.triangle_count, info.components
    );
    println!(
        "  watertight: {}",
        if info.watertight { "yes" } else { "no" }
    );
    println!(
        "  bounding box: [{}, {}, {}] to [{}, {}, {}]",
        info.bbox_min[0],
        info.bbox_min[1],
        info.bbox_min[2],
        info.bbox_max[0],
        info.bbox_max[1],
        info.bbox_max[2]
    );
    println!("  surface area: {:.6e}", info.surface_area);
    let issues = issues_of(info);
    if issues.is_empty() {
        println!("  issues: none");
    } else {
        println!("  issues:");
        for i in issues {
            println!("    - {i}");
        }
    }
}
