//! `hisdf batch` and `hisdf batch-merge`: one configuration over many
//! meshes, resumable, and split across machines without coordination.
//!
//! Layout of the output folder: per shape `ID.obj` (the extracted surface),
//! `ID.safetensors` (the model) and `ID.result.json` (its record, written
//! last: a shape is finished when its record says ok, names the same mesh and
//! configuration, and its outputs exist); per run `results.csv` and
//! `results.json` (`results.shard-K-of-N.*` for a shard), rewritten after
//! every shape; `batch.config.json` (`batch.shard-K-of-N.config.json`), the
//! effective configuration.

mod manifest;
mod shard;
mod table;

pub use shard::Shard;
pub use table::{merge, MergeArgs};

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::progress;
use hisdf::mesh;
use hisdf::metrics::evaluate;
use hisdf::model::save_model;
use hisdf::pipeline::{self, JobError, ManyInput, PackObserver, TrainedMesh};
use hisdf::util::{catch_panic, write_atomically};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use manifest::read_manifest;
use shard::{run_workers, slurm_shard};
use table::write_tables;

use super::config::{self, Scope, Settings};
use super::{extract, job_outcome, policy, Result, Timings, TrainArgs};

#[derive(clap::Args)]
pub struct BatchArgs {
    /// A folder of meshes, or a list of mesh paths: text (one per line, #
    /// comments), CSV (first column; a header row is skipped) or JSON (an
    /// array of paths or of objects with "path"). Relative paths are read
    /// from the list's folder.
    manifest: PathBuf,
    /// Output folder (created if missing).
    #[arg(short, long)]
    output: PathBuf,
    /// Grid points per axis (default 128, or the configuration's).
    #[arg(long)]
    resolution: Option<usize>,
    /// Sparse (coarse-to-fine) extraction: the same mesh, far fewer
    /// network evaluations.
    #[arg(long)]
    sparse: bool,
    /// Do only shard K of N (0-based, "K/N"): the shapes whose index in the
    /// sorted list is K modulo N. Run N copies, then `hisdf batch-merge`.
    /// Without it, a task of a Slurm job array (`sbatch --array=0-15`) does
    /// shard SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
    /// SLURM_ARRAY_TASK_COUNT.
    #[arg(long)]
    shard: Option<Shard>,
    /// Check the configuration and the list, say how many shapes there are
    /// and how many are finished in the output folder, and stop without
    /// writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Worker processes, each with one GPU of its own (CUDA_VISIBLE_DEVICES)
    /// and one share of the shapes: a number, or "auto" (one per visible
    /// CUDA device when training on CUDA, else one). The workers' tables
    /// are merged into this run's at the end.
    #[arg(long, default_value = "auto")]
    gpus: AutoCount,
    /// Shapes trained at once in one batched step: a number, or "auto" (as
    /// many as a quarter of the free GPU memory holds, at most 16; one on
    /// the CPU). Every model is the one training it alone gives.
    #[arg(long, default_value = "auto")]
    pack: AutoCount,
    #[command(flatten)]
    args: TrainArgs,
}

/// `--gpus` and `--pack`: a number (1 or more), or "auto" for the
/// library's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AutoCount {
    Auto,
    Count(usize),
}

impl std::str::FromStr for AutoCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(AutoCount::Auto),
            _ => match s.parse() {
                Ok(n) if n > 0 => Ok(AutoCount::Count(n)),
                _ => Err(format!("expected a number (1 or more) or auto, got {s:?}")),
            },
        }
    }
}

/// What `--dry-run` says: the shapes this run would do and how many of them
/// a rerun would skip. Writes nothing, not even the output folder.
fn dry_run(out: &Path, mine: &[&Shape], total: usize, label: &str, digest: &str) -> Result<()> {
    let done = mine
        .iter()
        .filter(|s| finished(out, s, digest).is_some())
        .count();
    let absent: Vec<&&Shape> = mine.iter().filter(|s| !s.path.is_file()).collect();
    println!(
        "dry run: {} of {total} shapes{label}, {done} of them finished before in {}, \
         configuration {digest}; nothing written",
        mine.len(),
        out.display()
    );
    if !absent.is_empty() {
        let names: Vec<String> = absent
            .iter()
            .take(5)
            .map(|s| s.path.display().to_string())
            .collect();
        eprintln!(
            "batch: warning: {} listed meshes do not exist and will fail: {}{}",
            absent.len(),
            names.join(", "),
            if absent.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(())
}

/// One mesh of the batch; `index` is its place in the sorted list, the same
/// on every machine.
#[derive(Clone, Debug)]
struct Shape {
    index: usize,
    id: String,
    path: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Failed,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Seconds {
    load: f64,
    sample: f64,
    train: f64,
    extract: f64,
    eval: f64,
    total: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    index: usize,
    id: String,
    mesh: String,
    status: Status,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    output_mesh: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// The input is open or not a 2-manifold (its holes are closed over in
    /// the trained shape); `input_issues` says how.
    #[serde(default)]
    input_open: Option<bool>,
    #[serde(default)]
    input_issues: Vec<String>,
    #[serde(default)]
    vertices: usize,
    #[serde(default)]
    triangles: usize,
    #[serde(default)]
    iterations: usize,
    #[serde(default)]
    final_loss: Option<f64>,
    #[serde(default)]
    device: String,
    #[serde(default)]
    seconds: Seconds,
    /// [`hisdf::metrics::EvalReport`], kept as JSON so that metrics added
    /// later still reach the table.
    #[serde(default)]
    metrics: Option<Value>,
    /// [`hisdf::pipeline::ConvergenceReport`] of the check after training.
    #[serde(default)]
    convergence: Option<Value>,
    config_digest: String,
    /// Set in a run's table when the record came from an earlier run.
    #[serde(default)]
    resumed: bool,
}

#[derive(Serialize, Deserialize)]
struct Table {
    manifest: String,
    shapes_total: usize,
    shard: Option<Shard>,
    config_digest: String,
    results: Vec<Record>,
}

pub fn run(a: BatchArgs) -> Result<()> {
    let mut settings = config::resolve(&a.args)?;
    if let Some(r) = a.resolution {
        settings.extraction.resolution = r;
        // Checked again with the override in place.
        if !(1..=1024).contains(&r) {
            return Err("--resolution must be between 1 and 1024".into());
        }
    }
    settings.extraction.sparse |= a.sparse;
    settings.extraction.validate()?;
    let digest = config::digest(&settings.sections(Scope::Batch));
    let shapes = read_manifest(&a.manifest)?;
    if shapes.is_empty() {
        return Err(format!("{}: no meshes listed", a.manifest.display()));
    }
    let shard = match a.shard {
        Some(k) => {
            // An explicit shard wins, so that one task of an array can be
            // redone by hand as any shard.
            if std::env::var_os("SLURM_ARRAY_TASK_ID").is_some() {
                eprintln!(
                    "batch: shard {}/{} from --shard; the Slurm job array's task id is not used",
                    k.index, k.count
                );
            }
            Some(k)
        }
        None => slurm_shard(|name| std::env::var(name).ok())?.map(|(k, origin)| {
            eprintln!("batch: shard {}/{} from {origin}", k.index, k.count);
            k
        }),
    };
    let total = shapes.len();
    let mine: Vec<&Shape> = shapes
        .iter()
        .filter(|s| shard.map_or(true, |k| s.index % k.count == k.index))
        .collect();
    let (stem, label) = match shard {
        Some(k) => (
            format!("results.shard-{}-of-{}", k.index, k.count),
            format!(" of shard {}/{}", k.index, k.count),
        ),
        None => ("results".to_string(), String::new()),
    };
    if a.dry_run {
        return dry_run(&a.output, &mine, total, &label, &digest);
    }
    let workers = match a.gpus {
        AutoCount::Count(n) => n,
        AutoCount::Auto => pipeline::gpu_workers(&settings.recipe),
    };
    if workers > 1 {
        return run_workers(&a.output, shard, workers.min(mine.len().max(1)));
    }
    std::fs::create_dir_all(&a.output).map_err(|e| format!("{}: {e}", a.output.display()))?;
    // One file per shard: shards on different machines may share a process
    // id, and so the temporary name of an atomic write.
    let config_name = match shard {
        Some(k) => format!("batch.shard-{}-of-{}.config.json", k.index, k.count),
        None => "batch.config.json".to_string(),
    };
    settings.write(&a.output.join(config_name), Scope::Batch)?;
    eprintln!(
        "batch: {} of {total} shapes{label}, configuration {digest}, output {}",
        mine.len(),
        a.output.display()
    );
    let mut table = Table {
        manifest: a.manifest.display().to_string(),
        shapes_total: total,
        shard,
        config_digest: digest.clone(),
        results: Vec::new(),
    };
    let mut progress = Tally::new(mine.len(), label);
    let mut todo: Vec<&Shape> = Vec::new();
    for shape in &mine {
        match finished(&a.output, shape, &digest) {
            Some(mut r) => {
                r.resumed = true;
                progress.skipped += 1;
                progress.report(&r, shape);
                table.results.push(r);
            }
            None => todo.push(shape),
        }
    }
    progress.bars.resumed(progress.skipped);
    write_tables(&a.output, &stem, &table)?;
    let pack = match a.pack {
        AutoCount::Count(k) => k,
        AutoCount::Auto => pipeline::pack_size(&settings.recipe, todo.len()),
    };
    if !todo.is_empty() {
        progress.bars.line(&format!(
            "batch: {} shapes to train, {pack} at a time",
            todo.len()
        ));
    }
    let inputs = todo
        .iter()
        .map(|shape| {
            let path = shape.path.clone();
            ManyInput {
                load: Box::new(move || mesh::load(&path).map_err(JobError::Mesh)),
                recipe: settings.recipe.clone(),
            }
        })
        .collect();
    // Records are written as shapes finish, on the finishing thread; the
    // first error writing them ends the batch once training stops.
    let mut write_error: Option<String> = None;
    let mut observer = PackProgress {
        bars: progress.bars.clone(),
        names: todo.iter().map(|shape| shape.id.clone()).collect(),
        running: Vec::new(),
    };
    pipeline::train_many(
        inputs,
        pack,
        policy(a.args.keep_unconverged),
        &mut observer,
        &mut |i, result| {
            let shape = todo[i];
            let record = finish(&a.output, shape, &settings, &digest, result);
            let written = write_json(&record_path(&a.output, &shape.id), &record).and_then(|()| {
                progress.report(&record, shape);
                table.results.push(record);
                table.results.sort_by_key(|r| r.index);
                write_tables(&a.output, &stem, &table)
            });
            if let Err(e) = written {
                write_error.get_or_insert(e);
            }
        },
    );
    if let Some(e) = write_error {
        return Err(e);
    }
    drop(observer);
    progress.bars.finish();
    // Every finished shape rewrote the tables, and they were written once
    // before any shape trained.
    let failed = progress.failed;
    eprintln!(
        "batch: {} ok ({} finished before), {failed} failed, in {:.1} s; results in {}",
        mine.len() - failed,
        progress.skipped,
        progress.started.elapsed().as_secs_f64(),
        a.output.join(format!("{stem}.csv")).display()
    );
    if failed > 0 {
        return Err(format!(
            "{failed} of {} shapes failed; their errors are in {}",
            mine.len(),
            a.output.join(format!("{stem}.csv")).display()
        ));
    }
    Ok(())
}

/// The one line per shape on stderr, with the counts and the time left.
struct Tally {
    total: usize,
    label: String,
    done: usize,
    skipped: usize,
    failed: usize,
    /// When the run began: shapes of a pack train together and the stages
    /// overlap, so the pace is shapes per wall-clock second.
    started: Instant,
    bars: progress::Bars,
}

impl Tally {
    fn new(total: usize, label: String) -> Self {
        Tally {
            total,
            bars: progress::Bars::new(total, &label),
            label,
            done: 0,
            skipped: 0,
            failed: 0,
            started: Instant::now(),
        }
    }

    fn report(&mut self, record: &Record, shape: &Shape) {
        self.done += 1;
        if record.status == Status::Failed {
            self.failed += 1;
        }
        // Only shapes actually worked on predict the rest.
        let fresh = self.done - self.skipped;
        let left = self.total - self.done;
        let eta = if fresh > 0 {
            self.started.elapsed().as_secs_f64() / fresh as f64 * left as f64
        } else {
            0.0
        };
        self.bars.line(&format!(
            "[{}/{}{}] {}: {}; {} done, {} failed, eta {eta:.0} s",
            self.done,
            self.total,
            self.label,
            shape.id,
            describe(record),
            self.done,
            self.failed,
        ));
        self.bars.finished(self.done, self.failed);
    }
}

/// Training progress of the shapes in training: a bar each, below the
/// batch's total.
struct PackProgress {
    bars: progress::Bars,
    /// Shape ids by the index [`pipeline::train_many`] names them with.
    names: Vec<String>,
    running: Vec<(usize, indicatif::ProgressBar)>,
}

impl PackObserver for PackProgress {
    fn progress(&mut self, mesh: usize, p: &hisdf::train::Progress) -> bool {
        let at = match self.running.iter().position(|(m, _)| *m == mesh) {
            Some(at) => at,
            None => {
                let name = self.names.get(mesh).map_or("train", String::as_str);
                let bar = self.bars.shape(name, p.iterations);
                self.running.push((mesh, bar));
                self.running.len() - 1
            }
        };
        progress::show_training(&self.running[at].1, p);
        if p.iteration == p.iterations {
            self.running.swap_remove(at).1.finish_and_clear();
        }
        true
    }
}

impl Drop for PackProgress {
    /// Bars of shapes that stopped early (cancelled, failed) go too.
    fn drop(&mut self) {
        for (_, bar) in self.running.drain(..) {
            bar.finish_and_clear();
        }
    }
}

fn describe(r: &Record) -> String {
    match (&r.status, &r.error) {
        (Status::Failed, e) => format!("FAILED: {}", e.as_deref().unwrap_or("unknown error")),
        (Status::Ok, _) => {
            let cd = metric(r, "chamfer").map_or("-".into(), |c| format!("{:.4}", c * 1e3));
            let how = if r.resumed {
                "finished before".to_string()
            } else {
                format!("{:.1} s", r.seconds.total)
            };
            format!("ok, CD*10^3 {cd}, {how}")
        }
    }
}

fn metric(r: &Record, name: &str) -> Option<f64> {
    r.metrics.as_ref()?.get(name)?.as_f64()
}

fn record_path(out: &Path, id: &str) -> PathBuf {
    out.join(format!("{id}.result.json"))
}

/// The earlier record of `shape`, when it is complete and still valid.
fn finished(out: &Path, shape: &Shape, digest: &str) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(out, &shape.id)).ok()?;
    let r: Record = serde_json::from_str(&text).ok()?;
    let outputs_exist = [&r.output_mesh, &r.model]
        .iter()
        .all(|p| p.as_ref().is_some_and(|p| out.join(p).is_file()));
    (r.status == Status::Ok
        && r.mesh == shape.path.display().to_string()
        && r.config_digest == digest
        && outputs_exist)
        .then_some(r)
}

/// The record of one trained shape: its model saved, its surface extracted
/// and evaluated; every failure, a panic included, becomes a failed record
/// so that the batch goes on.
fn finish(
    out: &Path,
    shape: &Shape,
    settings: &Settings,
    digest: &str,
    result: std::result::Result<TrainedMesh, JobError>,
) -> Record {
    let mut record = Record {
        index: shape.index,
        id: shape.id.clone(),
        mesh: shape.path.display().to_string(),
        status: Status::Failed,
        error: None,
        output_mesh: None,
        model: None,
        input_open: None,
        input_issues: Vec::new(),
        vertices: 0,
        triangles: 0,
        iterations: 0,
        final_loss: None,
        device: String::new(),
        seconds: Seconds::default(),
        metrics: None,
        convergence: None,
        config_digest: digest.to_string(),
        resumed: false,
    };
    let t = Instant::now();
    let outcome = catch_panic(|| finish_fallible(out, shape, settings, result, &mut record));
    match outcome {
        Ok(Ok(())) => record.status = Status::Ok,
        Ok(Err(e)) => record.error = Some(e),
        Err(panic) => record.error = Some(panic.message()),
    }
    // A pack's shapes share its training time: each is charged all of it.
    let s = &mut record.seconds;
    s.total = s.load + s.sample + s.train + t.elapsed().as_secs_f64();
    record
}

fn finish_fallible(
    out: &Path,
    shape: &Shape,
    settings: &Settings,
    result: std::result::Result<TrainedMesh, JobError>,
    record: &mut Record,
) -> Result<()> {
    let mut timings = Timings::default();
    let outcome = job_outcome(&shape.path, result, &mut timings);
    // Kept even when a later stage fails (no surface): the table still
    // shows what the training cost.
    record.seconds.load = timings.load;
    record.seconds.sample = timings.sample;
    record.seconds.train = timings.train;
    let (model, prepared, check) = outcome?;
    record.input_open = Some(prepared.is_open());
    record.input_issues = prepared.info.issues();
    record.convergence = Some(serde_json::to_value(&check).map_err(|e| e.to_string())?);
    record.iterations = model.metadata.iterations;
    record.final_loss = Some(model.metadata.final_loss).filter(|l| l.is_finite());
    record.device = model.metadata.device.to_string();
    let model_name = format!("{}.safetensors", shape.id);
    save_model(&model, &out.join(&model_name)).map_err(|e| e.to_string())?;

    let t = Instant::now();
    let extracted = extract(&model, &settings.extraction)?;
    let mesh_name = format!("{}.obj", shape.id);
    mesh::save(&extracted, &out.join(&mesh_name)).map_err(|e| e.to_string())?;
    timings.extract = t.elapsed().as_secs_f64();
    record.vertices = extracted.vertices.len();
    record.triangles = extracted.triangles.len();

    let t = Instant::now();
    let mut report = evaluate(
        &prepared.original,
        &extracted,
        &settings.evaluation.to_eval_config()?,
    )
    .map_err(|e| e.to_string())?;
    // The check measured the network on held-out samples already.
    report.model = Some(check.sdf_error.clone());
    timings.eval = t.elapsed().as_secs_f64();
    record.metrics = Some(serde_json::to_value(&report).map_err(|e| e.to_string())?);
    record.seconds.extract = timings.extract;
    record.seconds.eval = timings.eval;
    record.model = Some(model_name);
    record.output_mesh = Some(mesh_name);
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    write_atomically(path, format!("{text}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}
