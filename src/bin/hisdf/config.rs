//! Configuration files for `train`, `run` and `batch`: a preset, the
//! settings that depart from it, and the effective configuration written
//! next to every output so that a run can be repeated with `--config`.

use std::path::{Path, PathBuf};

use hisdf::metrics::EvalConfig;
use hisdf::pipeline::{Preset, Recipe};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Result, TrainArgs};

/// Top-level sections the recipe loader leaves to the tool.
const TOOL_SECTIONS: [&str; 3] = ["hisdf", "extraction", "evaluation"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Extraction {
    /// Grid points per axis.
    pub resolution: usize,
    /// Coarse-to-fine extraction: the dense grid's mesh from a few percent
    /// of its network evaluations (20x faster at 512^3 on a GPU).
    pub sparse: bool,
}

impl Extraction {
    pub fn to_extract_config(&self) -> hisdf::extract::ExtractConfig {
        hisdf::extract::ExtractConfig {
            resolution: self.resolution,
            sparse: self
                .sparse
                .then(hisdf::extract::sparse::SparseConfig::default),
            ..hisdf::extract::ExtractConfig::default()
        }
    }

    /// The library's checks of these settings, made before any training.
    pub fn validate(&self) -> Result<()> {
        self.to_extract_config()
            .validate()
            .map_err(|e| format!("extraction: {e}"))
    }
}

impl Default for Extraction {
    fn default() -> Self {
        Extraction {
            resolution: 128,
            sparse: false,
        }
    }
}

/// The metrics' sample counts; the paper's by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Evaluation {
    pub chamfer_points: usize,
    pub emd_points: usize,
    pub f_score_threshold: f64,
    pub seed: u64,
}

impl Default for Evaluation {
    fn default() -> Self {
        let d = EvalConfig::default();
        Evaluation {
            chamfer_points: d.chamfer_points,
            emd_points: d.emd_points,
            f_score_threshold: d.f_score_threshold,
            seed: d.seed,
        }
    }
}

impl Evaluation {
    pub fn to_eval_config(&self) -> Result<EvalConfig> {
        let config = EvalConfig {
            chamfer_points: self.chamfer_points,
            emd_points: self.emd_points,
            f_score_threshold: self.f_score_threshold,
            seed: self.seed,
        };
        config.validate().map_err(|e| format!("evaluation.{e}"))?;
        Ok(config)
    }
}

/// Everything a run does, after the file and the command line are combined.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub recipe: Recipe,
    pub extraction: Extraction,
    pub evaluation: Evaluation,
}

/// Which sections a command's written configuration holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Train,
    Run,
    Batch,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Train => "train",
            Scope::Run => "run",
            Scope::Batch => "batch",
        }
    }
}

/// The preset (command line over file), the file's sections over it, then
/// the command line's single settings over both.
pub fn resolve(args: &TrainArgs) -> Result<Settings> {
    let file = match &args.config {
        Some(path) => read_json(path)?,
        None => json!({}),
    };
    let at = |e: String| match &args.config {
        Some(path) => format!("{}: {e}", path.display()),
        None => e,
    };
    // With no preset anywhere, the device decides: the GPU setting where
    // training will run on CUDA, the CPU-sized one elsewhere.
    let preset = match (args.preset, file.get("preset")) {
        (Some(p), _) => Some(p),
        (None, Some(_)) => None,
        (None, None) => Some(Preset::default_for(args.device.unwrap_or_default())),
    };
    let mut recipe = Recipe::from_config_value(&file, preset, &TOOL_SECTIONS).map_err(at)?;
    let section = |name: &str| file.get(name).cloned().unwrap_or_else(|| json!({}));
    let extraction: Extraction = serde_json::from_value(section("extraction"))
        .map_err(|e| at(format!("extraction: {e}")))?;
    let evaluation: Evaluation = serde_json::from_value(section("evaluation"))
        .map_err(|e| at(format!("evaluation: {e}")))?;
    if let Some(i) = args.iterations {
        recipe.training.iterations = i;
    }
    if let Some(w) = args.width {
        recipe.network.width = w;
    }
    if let Some(d) = args.depth {
        recipe.network.depth = d;
    }
    if let Some(d) = args.device {
        recipe.training.device = d;
    }
    if let Some(s) = args.seed {
        recipe.training.seed = s;
    }
    let mut extraction = extraction;
    apply_named_settings(&mut recipe, &mut extraction, args)?;
    recipe.validate()?;
    extraction.validate().map_err(at)?;
    evaluation.to_eval_config().map_err(at)?;
    Ok(Settings {
        recipe,
        extraction,
        evaluation,
    })
}

/// The options that are the library's named settings (`pipeline::settings`,
/// the keys of `hisdf_config_set`), parsed and checked by the library: the
/// training options' flags, then every `--set KEY=VALUE`.
fn apply_named_settings(
    recipe: &mut Recipe,
    extraction: &mut Extraction,
    args: &TrainArgs,
) -> Result<()> {
    let options = training_options(args);
    let pairs = &args.set;
    if pairs.is_empty() && options.is_empty() {
        return Ok(());
    }
    let mut job = hisdf::pipeline::settings::JobSettings {
        recipe: recipe.clone(),
        extract: extraction.to_extract_config(),
        check_convergence: true,
    };
    for (flag, key, value) in &options {
        job.set(key, value)
            .map_err(|e| format!("{flag} {value}: {e}"))?;
    }
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            format!("--set {pair:?}: expected KEY=VALUE, e.g. --set iterations=500")
        })?;
        if key.trim() == "check_convergence" {
            return Err("--set check_convergence: the command line always checks; \
                 --keep-unconverged keeps a model the check rejects"
                .into());
        }
        job.set(key, value)
            .map_err(|e| format!("--set {pair}: {e}"))?;
    }
    *recipe = job.recipe;
    extraction.resolution = job.extract.resolution;
    extraction.sparse = job.extract.sparse.is_some();
    Ok(())
}

/// The loss, schedule, network and sampling options of `train`/`run` as
/// the library's named settings: (flag, key, value), parsed and checked by
/// `JobSettings::set` exactly as `--set` and the C API are. The loss comes
/// before its clamp: setting the loss keeps the clamp in force.
fn training_options(args: &TrainArgs) -> Vec<(&'static str, &'static str, String)> {
    let loss = args.loss.as_deref().map(|v| match v {
        // The command line's older name.
        "l1" => "clamped-l1".to_string(),
        v => v.to_string(),
    });
    [
        ("--loss", "loss", loss),
        ("--clamp", "clamp", args.clamp.clone()),
        ("--scheduler", "scheduler", args.scheduler.clone()),
        (
            "--weight-norm",
            "weight_norm",
            args.weight_norm.then(|| "true".to_string()),
        ),
        ("--dropout", "dropout", args.dropout.map(|d| d.to_string())),
        ("--skip", "skip", args.skip.map(|k| k.to_string())),
        ("--activation", "activation", args.activation.clone()),
        ("--encoding", "encoding", args.encoding.clone()),
        ("--sampling", "sampling", args.sampling.clone()),
        ("--surface", "surface", args.surface.clone()),
        (
            "--shell-thickness",
            "shell_thickness",
            args.shell_thickness.map(|t| t.to_string()),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, key, value)| value.map(|v| (flag, key, v)))
    .collect()
}

impl Settings {
    /// The sections that decide a result; what `batch` compares to tell a
    /// finished shape from one done with other settings.
    pub fn sections(&self, scope: Scope) -> Value {
        let mut v = self.recipe.to_config_value();
        if scope != Scope::Train {
            v["extraction"] = json!(self.extraction);
        }
        if scope == Scope::Batch {
            v["evaluation"] = json!(self.evaluation);
        }
        v
    }

    /// Writes the full effective configuration to `path`, in the format
    /// `--config` reads.
    pub fn write(&self, path: &Path, scope: Scope) -> Result<()> {
        let mut v = self.sections(scope);
        v["hisdf"] = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "command": scope.name(),
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
        hisdf::util::write_atomically(path, format!("{text}\n").as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Where the configuration of the output `path` goes: `model.safetensors`
/// gives `model.config.json`.
pub fn path_for(output: &Path) -> PathBuf {
    output.with_extension("config.json")
}

pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// FNV-1a of the canonical JSON: a short, stable name for a configuration
/// (serde_json's maps are sorted, so equal settings give equal text).
pub fn digest(v: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
