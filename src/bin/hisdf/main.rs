//! `hisdf-torch`: the command-line tool with every command, the ones that
//! need libtorch among them. Users run `hisdf` (start.rs), which runs the
//! torch-free commands itself and hands the others to this binary; it
//! names itself `hisdf` in messages. Every failure prints one line starting
//! with "hisdf: error:" and exits with status 1; usage errors exit with 2.

use std::path::{Path, PathBuf};
use std::time::Instant;

mod about;
mod batch;
mod config;
mod eval;
mod geometry;
mod output;
mod progress;
mod quality;
mod query;

use clap::{Parser, Subcommand};
use hisdf::extract::extract_mesh_with;
use hisdf::mesh::{self, TriangleMesh};
use hisdf::metrics::chamfer_meshes;
use hisdf::model::{save_model, TrainedModel};
use hisdf::pipeline::{
    self, ConvergencePolicy, ConvergenceReport, JobError, PreparedMesh, Preset, Recipe, TrainedMesh,
};
use hisdf::train::{DeviceChoice, Progress};
use output::{check_output, load_checked};

#[derive(Parser)]
#[command(
    name = "hisdf",
    version,
    about = "High-resolution neural signed distance functions of 3D shapes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct TrainArgs {
    /// JSON configuration: a preset and the settings that depart from it, or
    /// the OUTPUT.config.json an earlier run wrote. Options below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Training recipe: fast (CPU-sized), detail (GPU: converges where the
    /// paper's setting fails), paper-l1, paper-curriculum. Default: detail
    /// when training runs on CUDA, fast otherwise.
    #[arg(long)]
    preset: Option<Preset>,
    /// Training iterations (batches); default from the preset.
    #[arg(long)]
    iterations: Option<usize>,
    /// Hidden layer width; default from the preset.
    #[arg(long)]
    width: Option<usize>,
    /// Number of hidden layers; default from the preset.
    #[arg(long)]
    depth: Option<usize>,
    /// cpu, cuda, or auto (CUDA when present; the default).
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// Seed for sampling, initialisation and batches (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Loss: clamped-l1 (or l1: clamped L1, paper Eq. 3) or curriculum
    /// (paper Eq. 4 with Table 2's schedule).
    #[arg(long)]
    loss: Option<String>,
    /// Clamp delta of the loss (e.g. 0.1), or "none" for unclamped.
    #[arg(long)]
    clamp: Option<String>,
    /// Learning-rate schedule: plateau (ReduceLROnPlateau 0.5/200/1e-4), cosine
    /// (the rate held for half the iterations, then lowered along a cosine to
    /// 1/100 of it) or none. (--schedule is the same option.)
    #[arg(long, alias = "schedule")]
    scheduler: Option<String>,
    /// Weight normalisation of every layer (paper Sec. 4.1.1 ablation).
    #[arg(long)]
    weight_norm: bool,
    /// Dropout probability after every hidden layer, in training.
    #[arg(long)]
    dropout: Option<f64>,
    /// Concatenate the input point to the input of this hidden layer
    /// (the paper's ablation uses 4).
    #[arg(long)]
    skip: Option<usize>,
    /// Hidden activation: relu, softplus[:BETA] (beta 100 by default), or
    /// sine[:OMEGA0] (SIREN, omega0 30 by default; brings SIREN's
    /// initialisation, and leaving sine returns to the geometric one).
    #[arg(long)]
    activation: Option<String>,
    /// Input encoding: none (raw xyz, the paper's) or fourier:L (positional
    /// encoding with L = 1..16 frequencies 2^k pi, 3 + 6L inputs).
    #[arg(long)]
    encoding: Option<String>,
    /// fp32, tf32 (TF32 tensor-core matmuls on CUDA) or bf16 (mixed
    /// precision: bf16 hidden layers, fp32 input layer, output and Adam).
    #[arg(long)]
    precision: Option<hisdf::train::Precision>,
    /// near-surface (the preset's shells), or weighted (the paper's:
    /// 10M uniform pool, 1M kept with weight exp(-100 |SDF|)).
    #[arg(long)]
    sampling: Option<String>,
    /// solid (default: the volume the mesh encloses; an open mesh is closed
    /// by its winding number) or shell (a closed thin band around the
    /// surface, for sheet-like open surfaces).
    #[arg(long)]
    surface: Option<String>,
    /// The shell's band in the unit-sphere frame (default 0.01).
    #[arg(long)]
    shell_thickness: Option<f64>,
    /// Keep (write, extract, evaluate) a model that the convergence check
    /// after training rejects; its findings are printed either way.
    #[arg(long)]
    keep_unconverged: bool,
    /// Any setting by the name the C API, Python, C++ and Blender use, e.g.
    /// --set shells=250000:1e-4,250000:1e-5 (repeatable; applied after every
    /// other option; `hisdf keys` lists them).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Geometry(geometry::GeometryCommand),
    #[command(about = about::QUERY)]
    Query(query::QueryArgs),
    #[command(about = about::TRAIN)]
    Train {
        mesh: PathBuf,
        /// Model file to write (safetensors with hisdf metadata).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        args: TrainArgs,
    },
    #[command(about = about::EXTRACT)]
    Extract(quality::ExtractArgs),
    #[command(about = about::EVAL)]
    Eval(eval::EvalArgs),
    #[command(about = about::RUN)]
    Run {
        mesh: PathBuf,
        /// Output mesh (.obj, .ply or .stl).
        #[arg(short, long)]
        output: PathBuf,
        /// Also keep the trained model here.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Grid points per axis (default 128, or the configuration's).
        #[arg(long)]
        resolution: Option<usize>,
        /// Sparse (coarse-to-fine) extraction: the same mesh, far fewer
        /// network evaluations.
        #[arg(long)]
        sparse: bool,
        #[command(flatten)]
        args: TrainArgs,
    },
    #[command(about = about::BATCH)]
    Batch(batch::BatchArgs),
    #[command(about = about::BATCH_MERGE)]
    BatchMerge(batch::MergeArgs),
    #[command(about = about::KEYS)]
    Keys {
        /// The same as JSON (what the C API's hisdf_config_describe gives).
        #[arg(long)]
        json: bool,
    },
}

type Result<T> = std::result::Result<T, String>;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    if let Err(message) = dispatch(cli.command) {
        eprintln!("hisdf: error: {message}");
        std::process::exit(1);
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Keys { json } => {
            use hisdf::pipeline::settings::{describe, PRESETS, SETTINGS};
            if json {
                println!("{}", describe());
                return Ok(());
            }
            for s in SETTINGS {
                let default = s.default_value().unwrap_or_else(|| "none".into());
                println!("{}", s.key);
                println!(
                    "    {}: {}; default (fast) {default}",
                    s.kind.name(),
                    s.kind.range()
                );
                println!("    {}", s.doc);
            }
            println!("presets: {PRESETS}");
            Ok(())
        }
        Command::Geometry(c) => geometry::run(c),
        Command::Query(a) => query::run(a),
        Command::Train { mesh, output, args } => {
            check_output_and_config(&output, &["safetensors", "hisdf"])?;
            let settings = config::resolve(&args)?;
            let timings = &mut Timings::default();
            let (model, _, _) =
                train_mesh(&mesh, &settings.recipe, timings, args.keep_unconverged)?;
            save_model(&model, &output).map_err(|e| e.to_string())?;
            settings.write(&config::path_for(&output), config::Scope::Train)?;
            eprintln!(
                "trained {} iterations in {:.1} s, final loss {:.3e}; model written to {}",
                model.metadata.iterations,
                model.metadata.seconds,
                model.metadata.final_loss,
                output.display()
            );
            Ok(())
        }
        Command::Extract(args) => quality::extract(args),
        Command::Batch(args) => batch::run(args),
        Command::BatchMerge(args) => batch::merge(args),
        Command::Eval(args) => eval::eval(args, Some(&quality::model_error)),
        Command::Run {
            mesh,
            output,
            model: model_path,
            resolution,
            sparse,
            args,
        } => {
            check_output_and_config(&output, &["obj", "ply", "stl"])?;
            if let Some(path) = &model_path {
                check_output(path, &["safetensors", "hisdf"])?;
            }
            let mut settings = config::resolve(&args)?;
            if let Some(r) = resolution {
                settings.extraction.resolution = r;
            }
            settings.extraction.sparse |= sparse;
            settings.extraction.validate()?;
            let resolution = settings.extraction.resolution;
            let total = Instant::now();
            let mut timings = Timings::default();
            let (model, prepared, _) =
                train_mesh(&mesh, &settings.recipe, &mut timings, args.keep_unconverged)?;
            if let Some(path) = &model_path {
                save_model(&model, path).map_err(|e| e.to_string())?;
            }
            let t = Instant::now();
            let extracted = extract(&model, &settings.extraction)?;
            mesh::save(&extracted, &output).map_err(|e| e.to_string())?;
            settings.write(&config::path_for(&output), config::Scope::Run)?;
            timings.extract = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let report = chamfer_meshes(&prepared.original, &extracted, 10_000, 0)
                .map_err(|e| e.to_string())?;
            timings.eval = t.elapsed().as_secs_f64();
            println!(
                "stages: load {:.2} s, sample {:.2} s, train {:.2} s ({} iterations on {}), extract {:.2} s ({}^3), eval {:.2} s; total {:.1} s",
                timings.load,
                timings.sample,
                timings.train,
                model.metadata.iterations,
                model.metadata.device,
                timings.extract,
                resolution,
                timings.eval,
                total.elapsed().as_secs_f64()
            );
            println!(
                "chamfer distance: {:.6e} (CD*10^3 = {:.4}; 10000 points per mesh)",
                report.chamfer,
                report.chamfer * 1e3
            );
            println!(
                "wrote {} ({} vertices, {} triangles)",
                output.display(),
                extracted.vertices.len(),
                extracted.triangles.len()
            );
            Ok(())
        }
    }
}

#[derive(Default)]
struct Timings {
    load: f64,
    sample: f64,
    train: f64,
    extract: f64,
    eval: f64,
}

/// [`check_output`] for an output and the configuration file written beside
/// it (`config::path_for`): both are written after the training.
fn check_output_and_config(path: &Path, extensions: &[&str]) -> Result<()> {
    check_output(path, extensions)?;
    hisdf::util::check_output_path(&config::path_for(path))
}

/// Loads, samples and trains, then checks convergence
/// (`pipeline::train_mesh`): an unconverged model is an error unless
/// `keep_unconverged`. The findings go to stderr either way. Returns the
/// prepared mesh too: its original and what `prepare_mesh` found in it.
fn train_mesh(
    path: &Path,
    recipe: &Recipe,
    timings: &mut Timings,
    keep_unconverged: bool,
) -> Result<(TrainedModel, PreparedMesh, ConvergenceReport)> {
    let t = Instant::now();
    let mesh = mesh::load(path).map_err(|e| e.to_string())?;
    let load = t.elapsed().as_secs_f64();
    let mut observer = BarObserver {
        bar: progress::training("train", recipe.training.iterations),
    };
    let result = pipeline::train_mesh(mesh, recipe, policy(keep_unconverged), &mut observer);
    // The progress line ends before anything else is printed, also when
    // the job failed.
    if !observer.bar.is_finished() {
        observer.bar.abandon();
    }
    let outcome = job_outcome(path, result, timings);
    timings.load += load;
    outcome
}

/// The convergence policy the command line's `--keep-unconverged` asks for.
fn policy(keep_unconverged: bool) -> ConvergencePolicy {
    if keep_unconverged {
        ConvergencePolicy::Report
    } else {
        ConvergencePolicy::Require
    }
}

/// A finished job in the command line's terms: the model, the prepared
/// mesh and the check, or the message for the user; the check's findings go
/// to stderr either way.
fn job_outcome(
    path: &Path,
    result: std::result::Result<TrainedMesh, JobError>,
    timings: &mut Timings,
) -> Result<(TrainedModel, PreparedMesh, ConvergenceReport)> {
    let job = match result {
        Ok(job) => job,
        Err(JobError::NotConverged(check)) => {
            show_check(&check);
            return Err(format!(
                "training did not converge: {}; no model written (--keep-unconverged keeps it)",
                check.failures()
            ));
        }
        Err(JobError::Mesh(e)) => return Err(format!("{}: {e}", path.display())),
        Err(e) => return Err(e.to_string()),
    };
    timings.load = job.seconds.load + job.seconds.prepare;
    timings.sample = job.seconds.sample;
    timings.train = job.seconds.train;
    let check = job.check.expect("the policy checks convergence");
    show_check(&check);
    if !check.converged() {
        eprintln!(
            "hisdf: warning: training did not converge: {}; kept as --keep-unconverged asks",
            check.failures()
        );
    }
    Ok((job.model, job.prepared, check))
}

/// The training progress bar.
struct BarObserver {
    bar: indicatif::ProgressBar,
}

impl pipeline::Observer for BarObserver {
    fn progress(&mut self, p: &Progress) -> bool {
        progress::show_training(&self.bar, p);
        true
    }
}

/// The convergence check's findings and verdict, on stderr.
fn show_check(check: &ConvergenceReport) {
    for finding in &check.findings {
        eprintln!("convergence check: {finding}");
    }
    eprintln!(
        "convergence check: {} in {:.2} s (held-out SDF error near the surface {:.2e}, {:.2}% wrong signs far from it)",
        if check.converged() { "passed" } else { "FAILED" },
        check.seconds,
        check.sdf_error.sdf_error_near,
        check.sdf_error.wrong_sign_far * 100.0
    );
}

fn extract(model: &TrainedModel, settings: &config::Extraction) -> Result<TriangleMesh> {
    let bar = progress::extraction();
    let extraction = extract_mesh_with(model, &settings.to_extract_config(), &mut |f| {
        progress::show_fraction(&bar, f);
        true
    });
    bar.finish();
    let extraction = extraction.map_err(|e| e.to_string())?;
    Ok(extraction.mesh)
}
