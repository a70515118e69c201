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

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hisdf::mesh;
use hisdf::metrics::evaluate;
use hisdf::model::save_model;
use hisdf::pipeline::{self, JobError, ManyInput, PackObserver, TrainedMesh};
use hisdf::util::{catch_panic, write_atomically};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{self, Scope, Settings};
use super::{extract, job_outcome, policy, Result, Timings, TrainArgs};

const MESH_EXTENSIONS: [&str; 4] = ["obj", "ply", "stl", "off"];

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
    gpus: Workers,
    /// Shapes trained at once in one batched step: a number, or "auto" (as
    /// many as a quarter of the free GPU memory holds, at most 16; one on
    /// the CPU). Every model is the one training it alone gives.
    #[arg(long, default_value = "auto")]
    pack: Pack,
    #[command(flatten)]
    args: TrainArgs,
}

/// `--gpus`: a number of workers, or the library's choice.
#[derive(Clone, Copy, Debug)]
enum Workers {
    Auto,
    Count(usize),
}

impl std::str::FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Workers::Auto),
            _ => match s.parse() {
                Ok(n) if n > 0 => Ok(Workers::Count(n)),
                _ => Err(format!(
                    "--gpus {s:?}: expected a number of workers (1 or more) or auto"
                )),
            },
        }
    }
}

/// `--pack`: a number of shapes, or the library's choice.
#[derive(Clone, Copy, Debug)]
enum Pack {
    Auto,
    Shapes(usize),
}

impl std::str::FromStr for Pack {
    type Err = String;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Pack::Auto),
            _ => match s.parse() {
                Ok(k) if k > 0 => Ok(Pack::Shapes(k)),
                _ => Err(format!(
                    "--pack {s:?}: expected a number of shapes (1 or more) or auto"
                )),
            },
        }
    }
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The output folder the shards wrote to.
    folder: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || format!("shard {s:?}: expected K/N with 0 <= K < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// The shard of a task of a Slurm job array, and where it came from (for
/// the log); `None` outside a job array. `var` reads one environment
/// variable: the process environment in `run`, a table in the tests.
///
/// Task `SLURM_ARRAY_TASK_ID` of an array of `SLURM_ARRAY_TASK_COUNT` tasks
/// numbered from `SLURM_ARRAY_TASK_MIN` does shard ID - MIN of COUNT, so
/// `--array=0-15` and `--array=1-16` both split the list into 16. Only a
/// contiguous array gives every shard to exactly one task: a stepped array
/// (`--array=0-15:2`) or a list with gaps (`--array=1,3,8`) would leave
/// shapes to no task or to two, and is refused rather than guessed at.
/// A throttle (`--array=0-15%4`) changes nothing here.
fn slurm_shard(var: impl Fn(&str) -> Option<String>) -> Result<Option<(Shard, String)>> {
    let Some(id) = var("SLURM_ARRAY_TASK_ID") else {
        return Ok(None);
    };
    let advice =
        "submit the array as --array=0-<N-1> (scripts/slurm-batch does) or pass --shard K/N";
    let number = |name: &str| -> Result<Option<usize>> {
        match var(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} from Slurm is not a task number; {advice}")),
        }
    };
    let id = number("SLURM_ARRAY_TASK_ID")?.ok_or_else(|| {
        format!("SLURM_ARRAY_TASK_ID={id:?} from Slurm is not a task number; {advice}")
    })?;
    let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
        format!(
            "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (a Slurm older \
             than 17.11?), so the number of shards is unknown; pass --shard {id}/N"
        )
    })?;
    let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    if let Some(step) = number("SLURM_ARRAY_TASK_STEP")?.filter(|&s| s != 1) {
        return Err(format!(
            "this job array has a step of {step} (--array=MIN-MAX:{step}), so its task ids do \
             not number the shards 0..{count}; {advice}"
        ));
    }
    if let Some(max) = number("SLURM_ARRAY_TASK_MAX")? {
        if max < min || max - min + 1 != count {
            return Err(format!(
                "this job array's {count} tasks are not numbered {min}-{} without gaps (they \
                 run from {min} to {max}), so they do not give every shard to one task; {advice}",
                min + count.saturating_sub(1)
            ));
        }
    }
    if count == 0 || id < min || id - min >= count {
        return Err(format!(
            "SLURM_ARRAY_TASK_ID={id} is not one of {count} tasks from SLURM_ARRAY_TASK_MIN={min}; \
             {advice}"
        ));
    }
    let job = var("SLURM_ARRAY_JOB_ID").map_or(String::new(), |j| format!(" {j}"));
    let origin = format!(
        "Slurm job array{job} (task {id} of {min}-{})",
        min + count - 1
    );
    Ok(Some((
        Shard {
            index: id - min,
            count,
        },
        origin,
    )))
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
        Workers::Count(n) => n,
        Workers::Auto => pipeline::gpu_workers(&settings.recipe),
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
    let started = Instant::now();
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
    write_tables(&a.output, &stem, &table)?;
    let pack = match a.pack {
        Pack::Shapes(k) => k,
        Pack::Auto => pipeline::pack_size(&settings.recipe, todo.len()),
    };
    if !todo.is_empty() {
        eprintln!("batch: {} shapes to train, {pack} at a time", todo.len());
    }
    progress.started = Some(Instant::now());
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
    let mut observer = PackProgress::default();
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
    write_tables(&a.output, &stem, &table)?;
    let failed = progress.failed;
    eprintln!(
        "batch: {} ok ({} finished before), {failed} failed, in {:.1} s; results in {}",
        mine.len() - failed,
        progress.skipped,
        started.elapsed().as_secs_f64(),
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

/// Splits this run's shapes over `workers` processes of this same command,
/// one GPU each: worker g does shard K + N g of N workers (K/N this run's own
/// shard, 0/1 without one), so the shapes are split exactly as a job array
/// of N workers tasks would split them, and every worker keeps all of the
/// batch's guarantees (records, resume, atomic tables). Without a shard of
/// its own, the run then merges the workers' tables into `results.*`; a
/// shard leaves that to the job's `batch-merge`.
fn run_workers(out: &Path, shard: Option<Shard>, workers: usize) -> Result<()> {
    let own = shard.unwrap_or(Shard { index: 0, count: 1 });
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program ({e})"))?;
    let args = worker_args(std::env::args_os().skip(1));
    // Slurm (and users) name a node's GPUs in CUDA_VISIBLE_DEVICES; each
    // worker sees one of them as its device 0.
    let devices: Vec<String> = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|d| d.trim().to_string()).collect(),
        _ => (0..workers).map(|g| g.to_string()).collect(),
    };
    eprintln!(
        "batch: {workers} workers, one per GPU (CUDA_VISIBLE_DEVICES {})",
        (0..workers)
            .map(|g| devices[g % devices.len()].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut children = Vec::with_capacity(workers);
    for g in 0..workers {
        let mine = Shard {
            index: own.index + own.count * g,
            count: own.count * workers,
        };
        let mut command = std::process::Command::new(&exe);
        command
            .args(&args)
            .arg("--shard")
            .arg(format!("{}/{}", mine.index, mine.count))
            .arg("--gpus")
            .arg("1")
            .env("CUDA_VISIBLE_DEVICES", &devices[g % devices.len()]);
        for var in [
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_COUNT",
            "SLURM_ARRAY_TASK_MIN",
        ] {
            command.env_remove(var);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start worker {g} ({e})"))?;
        children.push((mine, child));
    }
    let mut stopped = Vec::new();
    let mut with_failures = 0;
    for (mine, mut child) in children {
        match child.wait() {
            Ok(status) if status.success() => {}
            // Exit status 1 is a worker with a failed shape: its table
            // says which. Anything else stopped the worker early.
            Ok(status) if status.code() == Some(1) => with_failures += 1,
            Ok(status) => stopped.push(format!("shard {}/{}: {status}", mine.index, mine.count)),
            Err(e) => stopped.push(format!("shard {}/{}: {e}", mine.index, mine.count)),
        }
    }
    if !stopped.is_empty() {
        eprintln!("batch: workers stopped early: {}", stopped.join("; "));
    }
    if shard.is_none() {
        merge(MergeArgs {
            folder: out.to_path_buf(),
        })?;
    }
    match shard {
        _ if with_failures > 0 && stopped.is_empty() => Err(format!(
            "shapes failed in {with_failures} of the {workers} workers; their errors are in the tables in {}",
            out.display()
        )),
        None => Ok(()),
        Some(_) if stopped.is_empty() => Ok(()),
        Some(k) => Err(format!(
            "shard {}/{}: {} workers stopped early; run the same command again to finish their shapes",
            k.index,
            k.count,
            stopped.len()
        )),
    }
}

/// This command's arguments for a worker: all but `--shard` and `--gpus`,
/// which the worker is given.
fn worker_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--shard" || text == "--gpus" {
            skip_value = true;
        } else if !(text.starts_with("--shard=") || text.starts_with("--gpus=")) {
            out.push(arg);
        }
    }
    out
}

/// The one line per shape on stderr, with the counts and the time left.
struct Tally {
    total: usize,
    label: String,
    done: usize,
    skipped: usize,
    failed: usize,
    /// When the first shape was started: shapes of a pack train together
    /// and the stages overlap, so the pace is shapes per wall-clock second.
    started: Option<Instant>,
}

impl Tally {
    fn new(total: usize, label: String) -> Self {
        Tally {
            total,
            label,
            done: 0,
            skipped: 0,
            failed: 0,
            started: None,
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
        let eta = match self.started {
            Some(t) if fresh > 0 => t.elapsed().as_secs_f64() / fresh as f64 * left as f64,
            _ => 0.0,
        };
        eprintln!(
            "[{}/{}{}] {}: {}; {} done, {} failed, eta {eta:.0} s",
            self.done,
            self.total,
            self.label,
            shape.id,
            describe(record),
            self.done,
            self.failed,
        );
    }
}

/// Training progress of a pack: the first shape's, on a terminal.
#[derive(Default)]
struct PackProgress {
    bar: Option<super::ProgressLine>,
}

impl PackObserver for PackProgress {
    fn progress(&mut self, mesh: usize, p: &hisdf::train::Progress) -> bool {
        let bar = self
            .bar
            .get_or_insert_with(|| super::ProgressLine::new("train"));
        if p.iteration > 0 {
            bar.show(
                p.iteration as f64 / p.iterations as f64,
                &format!(
                    "shape {} it {}/{} loss {:.3e} eta {:.0} s",
                    mesh + 1,
                    p.iteration,
                    p.iterations,
                    p.loss,
                    p.eta_seconds()
                ),
            );
            if p.iteration == p.iterations {
                bar.finish();
            }
        }
        true
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
    );
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

/// The shapes of a folder or list, sorted by path so that every machine
/// numbers them alike; ids are file stems, made unique with the index.
fn read_manifest(path: &Path) -> Result<Vec<Shape>> {
    let mut paths: Vec<PathBuf> = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut v = Vec::new();
        for entry in entries {
            let p = entry
                .map_err(|e| format!("{}: {e}", path.display()))?
                .path();
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase())
                .unwrap_or_default();
            if p.is_file() && MESH_EXTENSIONS.contains(&ext.as_str()) {
                v.push(p);
            }
        }
        v
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let listed = parse_list(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        listed.into_iter().map(|p| base.join(p)).collect()
    };
    paths.sort();
    let mut seen = HashSet::new();
    let shapes = paths
        .into_iter()
        .enumerate()
        .map(|(index, path)| {
            let stem: String = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut id = if stem.is_empty() {
                format!("shape-{index}")
            } else {
                stem
            };
            if !seen.insert(id.clone()) {
                id = format!("{id}-{index}");
                seen.insert(id.clone());
            }
            Shape { index, id, path }
        })
        .collect();
    Ok(shapes)
}

fn parse_list(path: &Path, text: &str) -> Result<Vec<String>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => {
            let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let items = v
                .as_array()
                .or_else(|| v.get("meshes").and_then(Value::as_array))
                .ok_or("expected a JSON array of paths (or {\"meshes\": [...]})")?;
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .or_else(|| item.get("path").and_then(Value::as_str))
                        .map(str::to_string)
                        .ok_or_else(|| format!("not a path: {item}"))
                })
                .collect()
        }
        Some("csv") => Ok(text
            .lines()
            .map(|l| {
                let first = l.split(',').next().unwrap_or("").trim();
                first.trim_matches('"').to_string()
            })
            .enumerate()
            .filter(|(i, f)| {
                let header =
                    *i == 0 && ["path", "mesh", "file"].contains(&f.to_lowercase().as_str());
                !(f.is_empty() || f.starts_with('#') || header)
            })
            .map(|(_, f)| f)
            .collect()),
        _ => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    write_atomically(path, format!("{text}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

const METRIC_COLUMNS: [&str; 7] = [
    "chamfer",
    "emd",
    "chamfer_point_to_mesh",
    "hausdorff",
    "hausdorff_p99_ref_to_other",
    "normal_consistency",
    "f_score",
];

fn write_tables(out: &Path, stem: &str, table: &Table) -> Result<()> {
    write_json(&out.join(format!("{stem}.json")), table)?;
    let mut csv = String::from("index,id,mesh,status");
    for m in METRIC_COLUMNS {
        csv.push(',');
        csv.push_str(m);
    }
    csv.push_str(
        ",input_open,vertices,triangles,iterations,final_loss,device,load_s,sample_s,train_s,extract_s,eval_s,total_s,resumed,error\n",
    );
    for r in &table.results {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
        };
        let mut row = vec![
            r.index.to_string(),
            csv_field(&r.id),
            csv_field(&r.mesh),
            status.into(),
        ];
        for m in METRIC_COLUMNS {
            row.push(metric(r, m).map_or(String::new(), |v| format!("{v:.6e}")));
        }
        let s = &r.seconds;
        row.extend([
            r.input_open.map_or(String::new(), |o| o.to_string()),
            r.vertices.to_string(),
            r.triangles.to_string(),
            r.iterations.to_string(),
            r.final_loss.map_or(String::new(), |l| format!("{l:.6e}")),
            csv_field(&r.device),
            format!("{:.3}", s.load),
            format!("{:.3}", s.sample),
            format!("{:.3}", s.train),
            format!("{:.3}", s.extract),
            format!("{:.3}", s.eval),
            format!("{:.3}", s.total),
            r.resumed.to_string(),
            csv_field(r.error.as_deref().unwrap_or("")),
        ]);
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let path = out.join(format!("{stem}.csv"));
    write_atomically(&path, csv.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// RFC 4180 quoting: error messages hold commas and quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Joins the shards' tables of `folder` into `results.csv` and
/// `results.json`, one row per shape, and names the shapes no shard has
/// reported yet.
pub fn merge(a: MergeArgs) -> Result<()> {
    let entries =
        std::fs::read_dir(&a.folder).map_err(|e| format!("{}: {e}", a.folder.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("results.shard-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: no results.shard-*.json to merge",
            a.folder.display()
        ));
    }
    let mut by_index: BTreeMap<usize, Record> = BTreeMap::new();
    let mut first: Option<(usize, String, String)> = None;
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let t: Table = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        match &first {
            None => first = Some((t.shapes_total, t.config_digest.clone(), t.manifest.clone())),
            Some((n, d, _)) if *n != t.shapes_total || *d != t.config_digest => {
                return Err(format!(
                    "{}: another batch ({} shapes, configuration {}) than {} ({n} shapes, configuration {d})",
                    f.display(),
                    t.shapes_total,
                    t.config_digest,
                    files[0].display()
                ));
            }
            Some(_) => {}
        }
        for r in t.results {
            // A shape reported twice (shard counts changed between runs)
            // keeps its successful record.
            let keep_old = by_index
                .get(&r.index)
                .is_some_and(|old| old.status == Status::Ok && r.status != Status::Ok);
            if !keep_old {
                by_index.insert(r.index, r);
            }
        }
    }
    let (total, digest, manifest) = first.unwrap_or_default();
    let missing: Vec<usize> = (0..total).filter(|i| !by_index.contains_key(i)).collect();
    let table = Table {
        manifest,
        shapes_total: total,
        shard: None,
        config_digest: digest,
        results: by_index.into_values().collect(),
    };
    let failed = table
        .results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    write_tables(&a.folder, "results", &table)?;
    // Named here because the merge's log may be all a cluster user reads.
    let failures: Vec<String> = table
        .results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| {
            format!(
                "{}: {}",
                r.id,
                r.error.as_deref().unwrap_or("unknown error")
            )
        })
        .collect();
    for f in failures.iter().take(10) {
        eprintln!("failed: {f}");
    }
    if failures.len() > 10 {
        eprintln!("failed: ... and {} more", failures.len() - 10);
    }
    println!(
        "merged {} tables: {} of {total} shapes, {} ok, {failed} failed, {} missing; wrote {}",
        files.len(),
        table.results.len(),
        table.results.len() - failed,
        missing.len(),
        a.folder.join("results.csv").display()
    );
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|i| i.to_string()).collect();
        return Err(format!(
            "{} shapes not reported by any shard (indices {})",
            missing.len(),
            list.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_every_argument_but_their_shard_and_gpus() {
        let args = [
            "batch",
            "list.txt",
            "-o",
            "out",
            "--shard",
            "1/2",
            "--gpus=4",
            "--pack",
            "8",
            "--gpus",
            "2",
            "--shard=0/3",
            "--sparse",
        ]
        .map(std::ffi::OsString::from);
        let kept = worker_args(args.into_iter());
        assert_eq!(
            kept,
            ["batch", "list.txt", "-o", "out", "--pack", "8", "--sparse"]
                .map(std::ffi::OsString::from)
        );
        assert!(matches!("auto".parse(), Ok(Workers::Auto)));
        assert!(matches!("3".parse(), Ok(Workers::Count(3))));
        assert!("0".parse::<Workers>().is_err());
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "0/0", "1", "a/b", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    fn slurm(vars: &[(&str, &str)]) -> Result<Option<(Shard, String)>> {
        slurm_shard(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn array(
        id: &str,
        min: &str,
        max: &str,
        count: &str,
        step: &str,
    ) -> Vec<(&'static str, String)> {
        [
            ("SLURM_ARRAY_JOB_ID", "77"),
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", min),
            ("SLURM_ARRAY_TASK_MAX", max),
            ("SLURM_ARRAY_TASK_COUNT", count),
            ("SLURM_ARRAY_TASK_STEP", step),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    fn slurm_array(
        id: &str,
        min: &str,
        max: &str,
        count: &str,
        step: &str,
    ) -> Result<Option<Shard>> {
        let vars = array(id, min, max, count, step);
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        slurm(&refs).map(|o| o.map(|(k, _)| k))
    }

    #[test]
    fn slurm_arrays_give_the_shard() {
        // Outside an array (a plain job included) there is no shard.
        assert_eq!(slurm(&[]).unwrap(), None);
        assert_eq!(slurm(&[("SLURM_JOB_ID", "5")]).unwrap(), None);
        // The values of `sbatch --array=0-3`, task 2, as Slurm 22.05 sets them.
        let (k, origin) = slurm(&[
            ("SLURM_ARRAY_JOB_ID", "77"),
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(k, Shard { index: 2, count: 4 });
        assert_eq!(origin, "Slurm job array 77 (task 2 of 0-3)");
        // An array from 1 numbers its shards from 0 all the same.
        for (id, index) in [("1", 0), ("16", 15)] {
            assert_eq!(
                slurm_array(id, "1", "16", "16", "1").unwrap(),
                Some(Shard { index, count: 16 })
            );
        }
        // MIN, MAX and STEP are optional; COUNT is not.
        assert_eq!(
            slurm(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4")
            ])
            .unwrap()
            .map(|(k, _)| k),
            Some(Shard { index: 3, count: 4 })
        );
        let e = slurm(&[("SLURM_ARRAY_TASK_ID", "3")]).unwrap_err();
        assert!(
            e.contains("SLURM_ARRAY_TASK_COUNT") && e.contains("--shard 3/N"),
            "{e}"
        );
    }

    #[test]
    fn slurm_arrays_that_do_not_split_the_list_are_refused() {
        // --array=0-15:2 (task 14) and --array=3,5,9 (task 5), with the
        // values Slurm 22.05 sets for them.
        let stepped = slurm_array("14", "0", "14", "8", "2").unwrap_err();
        assert!(
            stepped.contains("step of 2") && stepped.contains("--shard"),
            "{stepped}"
        );
        let gaps = slurm_array("5", "3", "9", "3", "1").unwrap_err();
        assert!(
            gaps.contains("without gaps") && gaps.contains("--array=0-<N-1>"),
            "{gaps}"
        );
        for (id, min, max, count) in [
            ("9", "0", "3", "4"),
            ("0", "1", "4", "4"),
            ("x", "0", "3", "4"),
        ] {
            let e = slurm_array(id, min, max, count, "1").unwrap_err();
            assert!(e.contains("SLURM_ARRAY_TASK_ID"), "{id}: {e}");
        }
        let e = slurm_array("0", "0", "3", "four", "1").unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT=\"four\""), "{e}");
    }

    #[test]
    fn lists_in_every_format_give_the_same_paths() {
        let want = vec!["a.obj".to_string(), "sub/b c.stl".to_string()];
        let cases = [
            ("m.txt", "# meshes\na.obj\n\n  sub/b c.stl  \n"),
            ("m.csv", "path,label\na.obj,x\n\"sub/b c.stl\",y\n"),
            ("m.json", r#"["a.obj", {"path": "sub/b c.stl"}]"#),
            ("m.json", r#"{"meshes": ["a.obj", "sub/b c.stl"]}"#),
        ];
        for (name, text) in cases {
            assert_eq!(parse_list(Path::new(name), text).unwrap(), want, "{name}");
        }
        assert!(parse_list(Path::new("m.json"), "[1]").is_err());
    }

    #[test]
    fn csv_fields_with_commas_and_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
    }
}
