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
    apply_training_options(&mut recipe, args)?;
    let mut extraction = extraction;
    apply_named_settings(&mut recipe, &mut extraction, &args.set)?;
    recipe.validate()?;
    extraction.validate().map_err(at)?;
    evaluation.to_eval_config().map_err(at)?;
    Ok(Settings {
        recipe,
        extraction,
        evaluation,
    })
}

/// `--set KEY=VALUE`: the library's named settings (`pipeline::settings`),
/// the same keys and values as `hisdf_config_set`, parsed and checked by
/// the library.
fn apply_named_settings(
    recipe: &mut Recipe,
    extraction: &mut Extraction,
    pairs: &[String],
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut job = hisdf::pipeline::settings::JobSettings {
        recipe: recipe.clone(),
        extract: extraction.to_extract_config(),
        check_convergence: true,
    };
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

/// The loss, schedule and network ablation options of `train`/`run`.
fn apply_training_options(recipe: &mut Recipe, args: &TrainArgs) -> Result<()> {
    use hisdf::model::Activation;
    use hisdf::train::Loss;
    let current_clamp = match &recipe.training.loss {
        Loss::ClampedL1 { clamp } | Loss::Curriculum { clamp, .. } => *clamp,
    };
    let clamp = match args.clamp.as_deref() {
        None => current_clamp,
        Some("none") => None,
        Some(v) => Some(
            v.parse::<f64>()
                .map_err(|_| format!("--clamp expects a number or none, got {v:?}"))?,
        ),
    };
    recipe.training.loss = match args.loss.as_deref() {
        None => match recipe.training.loss.clone() {
            Loss::ClampedL1 { .. } => Loss::ClampedL1 { clamp },
            Loss::Curriculum { stages, .. } => Loss::Curriculum { clamp, stages },
        },
        Some("l1" | "clamped-l1") => Loss::ClampedL1 { clamp },
        Some("curriculum") => match Loss::paper_curriculum() {
            Loss::Curriculum { stages, .. } => Loss::Curriculum { clamp, stages },
            other => other,
        },
        Some(v) => {
            return Err(format!(
                "--loss expects clamped-l1 (or l1) or curriculum, got {v:?}"
            ))
        }
    };
    if let Some(v) = args.scheduler.as_deref() {
        recipe.training.scheduler = v.parse().map_err(|e| format!("--scheduler: {e}"))?;
    }
    if args.weight_norm {
        recipe.network.weight_norm = true;
    }
    if let Some(d) = args.dropout {
        recipe.network.dropout = d;
    }
    if args.skip.is_some() {
        recipe.network.skip = args.skip;
    }
    if let Some(v) = args.activation.as_deref() {
        let activation: Activation = v.parse().map_err(|e| format!("--activation: {e}"))?;
        recipe.network.set_activation(activation);
    }
    if let Some(v) = args.encoding.as_deref() {
        recipe.network.encoding = v.parse().map_err(|e| format!("--encoding: {e}"))?;
    }
    if let Some(p) = args.precision {
        recipe.training.precision = p;
    }
    match args.sampling.as_deref() {
        None => {}
        Some("near-surface") => recipe.sampling.weighted = None,
        Some("weighted") => {
            recipe.sampling.weighted = Some(hisdf::sampling::WeightedConfig::paper())
        }
        Some(v) => {
            return Err(format!(
                "--sampling expects near-surface or weighted, got {v:?}"
            ))
        }
    }
    Ok(())
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
