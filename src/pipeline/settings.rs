//! Every setting a front end can change, by name: the one vocabulary of the
//! C API's `hisdf_config_set`/`hisdf_config_get`, the Python and C++
//! wrappers over it and the Blender add-on. Each key is parsed with the
//! library's own `FromStr` where one exists, applied to a copy and checked
//! by the library's own validation (`Recipe::validate`, the extraction's
//! bounds) before it takes effect, so a refused value leaves the settings
//! as they were and a setting that cannot run fails before any work.

use std::ops::Bound;

use crate::extract::sparse::SparseConfig;
use crate::extract::{ExtractConfig, MAX_DENSE_RESOLUTION, MAX_SPARSE_RESOLUTION};
use crate::model::{Activation, Initialisation};
use crate::sampling::MAX_SAMPLES;
use crate::sampling::{GaussianShell, Representation};
use crate::train::{Loss, MAX_BATCH_SIZE};

use super::{Preset, Recipe};

/// Every key [`JobSettings::set`] and [`JobSettings::get`] take, separated
/// by ", ".
pub const KEYS: &str =
    "preset, iterations, batch_size, learning_rate, seed, device, progress_every, \
precision, width, depth, tanh_output, initialisation, geometric_radius, activation, encoding, \
skip, weight_norm, dropout, loss, clamp, scheduler, sampling, surface_samples, uniform_samples, \
shells, refine_samples, refine_at, surface, shell_thickness, resolution, sparse, check_convergence";

/// Every preset the `preset` key takes, separated by ", ".
pub const PRESETS: &str = "fast, detail, paper-l1, paper-curriculum";

/// What a key's value is and which values are in range: the part of a
/// [`Setting`] that front ends show and the tests hold `set` to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A whole number from `min` to `max`, both included.
    Integer { min: u64, max: u64 },
    /// A finite real number between the two bounds.
    Number(Bound<f64>, Bound<f64>),
    /// true | false (also yes | no, on | off, 1 | 0).
    Boolean,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Text in the form given, whose range the library checks as a whole.
    Text(&'static str),
}

impl Kind {
    /// The type's name, as `hisdf keys` and `hisdf_config_describe` give it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Integer { .. } => "integer",
            Kind::Number(..) => "number",
            Kind::Boolean => "boolean",
            Kind::Choice(_) => "choice",
            Kind::Text(_) => "text",
        }
    }

    /// The values in range, in words: "1 to 64", "(0, 1)", "fp32 | tf32".
    pub fn range(self) -> String {
        match self {
            Kind::Integer { min, max: u64::MAX } => format!("{min} or more"),
            Kind::Integer { min, max } => format!("{min} to {max}"),
            Kind::Number(low, high) => {
                let low = match low {
                    Bound::Included(x) => format!("[{x}"),
                    Bound::Excluded(x) => format!("({x}"),
                    Bound::Unbounded => "(-inf".into(),
                };
                let high = match high {
                    Bound::Included(x) => format!("{x}]"),
                    Bound::Excluded(x) => format!("{x})"),
                    Bound::Unbounded => "inf)".into(),
                };
                format!("{low}, {high}")
            }
            Kind::Boolean => "true | false".into(),
            Kind::Choice(words) => words.join(" | "),
            Kind::Text(form) => form.into(),
        }
    }
}

/// One named setting: its key, what its value is, and what it does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

impl Setting {
    /// The value a new configuration holds: the `fast` preset's, which is
    /// what `hisdf_config_new(NULL)` starts from (each preset sets its own;
    /// `hisdf_config_get` reads them). None where there is no value: the
    /// `preset` key itself.
    pub fn default_value(&self) -> Option<String> {
        JobSettings::from_preset(Preset::Fast).get(self.key).ok()
    }
}

const fn integer(min: u64, max: u64) -> Kind {
    Kind::Integer { min, max }
}

/// Every setting, in the order of [`KEYS`], with its type, range and
/// documentation; defaults come from [`Setting::default_value`]. The ranges
/// are those the library's own checks enforce (`Recipe::validate`,
/// `NetworkConfig::validate`, `TrainConfig::validate`, the extraction's
/// bounds); a test holds `set` to every one of them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "preset",
        kind: Kind::Choice(&["fast", "detail", "paper-l1", "paper-curriculum"]),
        doc: "starts again from a preset: every setting but the extraction's is reset",
    },
    Setting {
        key: "iterations",
        kind: integer(1, usize::MAX as u64),
        doc: "training iterations (one batch each)",
    },
    Setting {
        key: "batch_size",
        kind: integer(1, MAX_BATCH_SIZE as u64),
        doc: "samples per iteration",
    },
    Setting {
        key: "learning_rate",
        kind: Kind::Number(Bound::Excluded(0.0), Bound::Unbounded),
        doc: "Adam's learning rate at the start",
    },
    Setting {
        key: "seed",
        kind: integer(0, u64::MAX),
        doc: "seed of the sampling and of the network's initial weights",
    },
    Setting {
        key: "device",
        kind: Kind::Choice(&["auto", "cpu", "cuda"]),
        doc: "where to train: auto takes CUDA when there is one",
    },
    Setting {
        key: "progress_every",
        kind: integer(1, usize::MAX as u64),
        doc: "iterations between progress reports and cancellation checks",
    },
    Setting {
        key: "precision",
        kind: Kind::Choice(&["fp32", "tf32", "bf16"]),
        doc: "CUDA arithmetic of training: bf16 is the mixed-precision step for the plain \
              ReLU network (others train in tf32); the CPU always trains in fp32",
    },
    Setting {
        key: "width",
        kind: integer(1, 8192),
        doc: "units per hidden layer",
    },
    Setting {
        key: "depth",
        kind: integer(1, 64),
        doc: "hidden layers",
    },
    Setting {
        key: "tanh_output",
        kind: Kind::Boolean,
        doc: "a tanh on the network's output, bounding the predicted distance to (-1, 1)",
    },
    Setting {
        key: "initialisation",
        kind: Kind::Choice(&["pytorch-default", "geometric", "siren"]),
        doc: "how the weights start: PyTorch's default, a sphere's SDF (SAL), or SIREN's \
              (for the sine activation only)",
    },
    Setting {
        key: "geometric_radius",
        kind: Kind::Number(Bound::Excluded(0.0), Bound::Excluded(1.0)),
        doc: "radius of the sphere a geometric initialisation starts as (sets the \
              initialisation to geometric)",
    },
    Setting {
        key: "activation",
        kind: Kind::Text("relu | softplus[:beta] | sine[:omega0], beta and omega0 positive"),
        doc: "the hidden units; sine brings SIREN's initialisation, leaving it the geometric one",
    },
    Setting {
        key: "encoding",
        kind: Kind::Text("none | fourier:L, L from 1 to 16"),
        doc: "what the network sees of a point: its coordinates, or with them the sines \
              and cosines of L octaves",
    },
    Setting {
        key: "skip",
        kind: Kind::Text("a hidden layer from 1 to depth, or none"),
        doc: "a hidden layer that receives the input again",
    },
    Setting {
        key: "weight_norm",
        kind: Kind::Boolean,
        doc: "weight normalisation of every linear layer",
    },
    Setting {
        key: "dropout",
        kind: Kind::Number(Bound::Included(0.0), Bound::Excluded(1.0)),
        doc: "dropout probability after each hidden layer, in training only",
    },
    Setting {
        key: "loss",
        kind: Kind::Choice(&["clamped-l1", "curriculum"]),
        doc: "the paper's clamped L1 loss, or its curriculum (Table 2)",
    },
    Setting {
        key: "clamp",
        kind: Kind::Text("a positive number, or none"),
        doc: "the loss's clamp delta: distances beyond it count as delta",
    },
    Setting {
        key: "scheduler",
        kind: Kind::Choice(&["none", "plateau", "cosine"]),
        doc: "the learning rate's schedule: constant, lowered when the loss stalls, or a \
              cosine decay over the last half",
    },
    Setting {
        key: "sampling",
        kind: Kind::Choice(&["near-surface", "weighted"]),
        doc: "near-surface: the surface, the shells and uniform points; weighted: the \
              paper's 10M uniform pool, 1M kept by exp(-100 |SDF|)",
    },
    Setting {
        key: "surface_samples",
        kind: integer(0, MAX_SAMPLES as u64),
        doc: "samples on the surface itself (all samples together at most 200,000,000)",
    },
    Setting {
        key: "uniform_samples",
        kind: integer(0, MAX_SAMPLES as u64),
        doc: "samples uniform in the unit ball (all samples together at most 200,000,000)",
    },
    Setting {
        key: "shells",
        kind: Kind::Text("count:variance,... with positive variances"),
        doc: "Gaussian shells around the surface: samples displaced by N(0, variance); \
              all samples together at most 200,000,000",
    },
    Setting {
        key: "refine_samples",
        kind: integer(0, MAX_SAMPLES as u64),
        doc: "samples moved, part way through training, to where the network is furthest \
              from the surface (0: none); until then a tight shell around the whole surface",
    },
    Setting {
        key: "refine_at",
        kind: Kind::Number(Bound::Excluded(0.0), Bound::Excluded(1.0)),
        doc: "the fraction of the training after which refine_samples are moved",
    },
    Setting {
        key: "surface",
        kind: Kind::Choice(&["solid", "shell"]),
        doc: "what is learned: solid, the volume the mesh encloses (an open mesh is closed \
              by its winding number); shell, a closed thin band of shell_thickness around \
              the surface, for sheet-like open surfaces",
    },
    Setting {
        key: "shell_thickness",
        kind: Kind::Number(Bound::Excluded(0.0), Bound::Unbounded),
        doc: "the shell's band, in the unit-sphere frame (the mesh fits a sphere of radius 1); \
              used with surface=shell",
    },
    Setting {
        key: "resolution",
        kind: integer(8, MAX_SPARSE_RESOLUTION as u64),
        doc: "grid points per axis of the extraction: to 1024 dense, to 2048 sparse",
    },
    Setting {
        key: "sparse",
        kind: Kind::Boolean,
        doc: "coarse-to-fine extraction, sampling only the bricks the surface can cross",
    },
    Setting {
        key: "check_convergence",
        kind: Kind::Boolean,
        doc: "after training, refuse a model with no surface, spurious surfaces, wrong \
              signs far from the surface or a surface it has not learned",
    },
];

/// The setting named `key`, if there is one.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key.trim())
}

/// Every setting as a JSON array of objects with key, type, default (null
/// where there is none), range and doc: what `hisdf_config_describe` hands
/// to C and `hisdf keys --json` prints.
pub fn describe() -> String {
    let all: Vec<serde_json::Value> = SETTINGS
        .iter()
        .map(|s| {
            serde_json::json!({
                "key": s.key,
                "type": s.kind.name(),
                "default": s.default_value(),
                "range": s.kind.range(),
                "doc": s.doc,
            })
        })
        .collect();
    serde_json::Value::Array(all).to_string()
}

/// What one training job is set to: how to sample, train and check, and
/// how to extract the surface afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSettings {
    pub recipe: Recipe,
    pub extract: ExtractConfig,
    /// Check convergence after training (default true).
    pub check_convergence: bool,
}

impl JobSettings {
    /// A preset's recipe, the default extraction, the check on.
    pub fn from_preset(preset: Preset) -> JobSettings {
        JobSettings {
            recipe: preset.recipe(),
            extract: ExtractConfig::default(),
            check_convergence: true,
        }
    }

    /// Sets one key from text (the syntax [`JobSettings::get`] writes), on a
    /// copy that must pass [`JobSettings::validate`] before it replaces
    /// these settings.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let mut changed = self.clone();
        apply_setting(&mut changed, key.trim(), value)?;
        changed.validate()?;
        *self = changed;
        Ok(())
    }

    /// One key's value as text, in the syntax [`JobSettings::set`] reads
    /// back. `preset` has no value, nor has geometric_radius under another
    /// initialisation.
    pub fn get(&self, key: &str) -> Result<String, String> {
        value_of(self, key.trim())
    }

    /// Every check that does not need a mesh: the recipe's, and the
    /// resolution against the larger (sparse) bound whatever `sparse` says
    /// now, so the order of two `set` calls never matters.
    pub fn validate(&self) -> Result<(), String> {
        check_settings(self)
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: cannot read {value:?}"))
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}: expected true or false, got {value:?}")),
    }
}

fn clamp_of(loss: &mut Loss) -> &mut Option<f64> {
    match loss {
        Loss::ClampedL1 { clamp } | Loss::Curriculum { clamp, .. } => clamp,
    }
}

/// Applies one key to a recipe. Checked on a copy by the caller, so a
/// refused value leaves the config as it was.
fn apply(recipe: &mut Recipe, key: &str, value: &str) -> Result<(), String> {
    let t = &mut recipe.training;
    let n = &mut recipe.network;
    let s = &mut recipe.sampling;
    match key {
        "preset" => *recipe = value.trim().parse::<Preset>()?.recipe(),
        "iterations" => t.iterations = parse(key, value)?,
        "batch_size" => t.batch_size = parse(key, value)?,
        "learning_rate" => t.learning_rate = parse(key, value)?,
        "seed" => t.seed = parse(key, value)?,
        "device" => t.device = value.trim().parse()?,
        "progress_every" => t.progress_every = parse(key, value)?,
        "precision" => t.precision = value.trim().parse()?,
        "width" => n.width = parse(key, value)?,
        "skip" => {
            n.skip = match value.trim() {
                "none" => None,
                v => Some(parse(key, v)?),
            }
        }
        "weight_norm" => n.weight_norm = parse_bool(key, value)?,
        "dropout" => n.dropout = parse(key, value)?,
        "sampling" => {
            s.weighted = match value.trim() {
                "near-surface" => None,
                "weighted" => Some(crate::sampling::WeightedConfig::paper()),
                _ => {
                    return Err(format!(
                        "sampling: expected near-surface or weighted, got {value:?}"
                    ))
                }
            }
        }
        "depth" => n.depth = parse(key, value)?,
        "tanh_output" => n.tanh_output = parse_bool(key, value)?,
        "initialisation" => {
            n.initialisation = match value.trim() {
                "pytorch-default" => Initialisation::PytorchDefault,
                "geometric" => Initialisation::Geometric { radius: 0.5 },
                "siren" => Initialisation::Siren,
                _ => {
                    return Err(format!(
                    "initialisation: expected pytorch-default, geometric or siren, got {value:?}"
                ))
                }
            }
        }
        "activation" => {
            let activation: Activation = value.parse().map_err(|e| format!("activation: {e}"))?;
            n.set_activation(activation);
        }
        "encoding" => n.encoding = value.parse().map_err(|e| format!("encoding: {e}"))?,
        "geometric_radius" => {
            let radius: f64 = parse(key, value)?;
            if !(radius.is_finite() && radius > 0.0 && radius < 1.0) {
                return Err("geometric_radius must be in (0, 1)".into());
            }
            n.initialisation = Initialisation::Geometric { radius };
        }
        "loss" => {
            let clamp = *clamp_of(&mut t.loss);
            t.loss = match value.trim() {
                "clamped-l1" => Loss::ClampedL1 { clamp },
                "curriculum" => {
                    let mut l = Loss::paper_curriculum();
                    *clamp_of(&mut l) = clamp;
                    l
                }
                _ => {
                    return Err(format!(
                        "loss: expected clamped-l1 or curriculum, got {value:?}"
                    ))
                }
            }
        }
        "clamp" => {
            *clamp_of(&mut t.loss) = match value.trim() {
                "none" => None,
                v => Some(parse(key, v)?),
            }
        }
        "scheduler" => t.scheduler = value.parse().map_err(|e| format!("scheduler: {e}"))?,
        "surface_samples" => s.surface = parse(key, value)?,
        // The thickness is kept while solid, so the order of the two keys
        // never matters.
        "surface" => {
            s.representation = match value.trim() {
                "solid" => Representation::Solid,
                "shell" => Representation::Shell,
                _ => return Err(format!("surface: expected solid or shell, got {value:?}")),
            }
        }
        "shell_thickness" => {
            let thickness: f64 = parse(key, value)?;
            // Checked here too: a solid's thickness is not validated with
            // the recipe, yet would take effect with surface=shell.
            if !(thickness.is_finite() && thickness > 0.0) {
                return Err("shell_thickness must be a positive number".into());
            }
            s.shell_thickness = thickness;
        }
        "uniform_samples" => s.uniform = parse(key, value)?,
        "refine_samples" => s.refinement.samples = parse(key, value)?,
        "refine_at" => {
            let at: f64 = parse(key, value)?;
            let refinement = crate::sampling::Refinement { at, ..s.refinement };
            refinement.validate()?;
            s.refinement = refinement;
        }
        "shells" => {
            // "count:variance,count:variance", e.g. "250000:1e-4,250000:1e-5".
            let mut shells = Vec::new();
            for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                let (count, variance) = part
                    .split_once(':')
                    .ok_or_else(|| format!("shells: expected count:variance, got {part:?}"))?;
                let shell = GaussianShell {
                    count: parse(key, count)?,
                    variance: parse(key, variance)?,
                };
                if !(shell.variance.is_finite() && shell.variance > 0.0) {
                    return Err("shells: variance must be positive".into());
                }
                shells.push(shell);
            }
            s.shells = shells;
        }
        _ => return Err(format!("unknown configuration key {key:?} (known: {KEYS})")),
    }
    Ok(())
}

/// One setting's current value, in the syntax `apply` reads back. The
/// `preset` key is a starting point, not a setting: it has no value.
fn value_of(settings: &JobSettings, key: &str) -> Result<String, String> {
    use crate::model::Encoding;
    use crate::train::{DeviceChoice, Precision, Scheduler};
    let r = &settings.recipe;
    let (t, n, s) = (&r.training, &r.network, &r.sampling);
    let flag = |b: bool| if b { "true" } else { "false" }.to_string();
    let clamp = |c: Option<f64>| c.map_or("none".to_string(), |v| v.to_string());
    Ok(match key {
        "iterations" => t.iterations.to_string(),
        "batch_size" => t.batch_size.to_string(),
        "learning_rate" => t.learning_rate.to_string(),
        "seed" => t.seed.to_string(),
        "device" => match t.device {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
        }
        .into(),
        "progress_every" => t.progress_every.to_string(),
        "precision" => match t.precision {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
        .into(),
        "width" => n.width.to_string(),
        "depth" => n.depth.to_string(),
        "tanh_output" => flag(n.tanh_output),
        "initialisation" => match n.initialisation {
            Initialisation::PytorchDefault => "pytorch-default",
            Initialisation::Geometric { .. } => "geometric",
            Initialisation::Siren => "siren",
        }
        .into(),
        "geometric_radius" => match n.initialisation {
            Initialisation::Geometric { radius } => radius.to_string(),
            _ => {
                return Err(
                    "geometric_radius: this configuration's initialisation is not geometric".into(),
                )
            }
        },
        "activation" => match n.activation {
            Activation::Relu => "relu".into(),
            Activation::Softplus { beta } => format!("softplus:{beta}"),
            Activation::Sine { omega0 } => format!("sine:{omega0}"),
        },
        "encoding" => match n.encoding {
            Encoding::None => "none".into(),
            Encoding::Fourier { frequencies } => format!("fourier:{frequencies}"),
        },
        "skip" => n.skip.map_or("none".into(), |k| k.to_string()),
        "weight_norm" => flag(n.weight_norm),
        "dropout" => n.dropout.to_string(),
        "loss" => match t.loss {
            Loss::ClampedL1 { .. } => "clamped-l1",
            Loss::Curriculum { .. } => "curriculum",
        }
        .into(),
        "clamp" => match t.loss {
            Loss::ClampedL1 { clamp: c } | Loss::Curriculum { clamp: c, .. } => clamp(c),
        },
        "scheduler" => match t.scheduler {
            Scheduler::None => "none",
            Scheduler::Plateau(_) => "plateau",
            Scheduler::Cosine(_) => "cosine",
        }
        .into(),
        "sampling" => if s.weighted.is_some() {
            "weighted"
        } else {
            "near-surface"
        }
        .into(),
        "surface_samples" => s.surface.to_string(),
        "uniform_samples" => s.uniform.to_string(),
        "shells" => s
            .shells
            .iter()
            .map(|g| format!("{}:{:e}", g.count, g.variance))
            .collect::<Vec<_>>()
            .join(","),
        "refine_samples" => s.refinement.samples.to_string(),
        "refine_at" => s.refinement.at.to_string(),
        "surface" => match s.representation {
            Representation::Solid => "solid",
            Representation::Shell => "shell",
        }
        .into(),
        "shell_thickness" => s.shell_thickness.to_string(),
        "resolution" => settings.extract.resolution.to_string(),
        "sparse" => flag(settings.extract.sparse.is_some()),
        "check_convergence" => flag(settings.check_convergence),
        "preset" => {
            return Err(
                "preset is where a configuration starts, not one of its values; \
                 read the settings it sets (iterations, width, ...) instead"
                    .into(),
            )
        }
        _ => return Err(format!("unknown configuration key {key:?} (known: {KEYS})")),
    })
}

/// Applies one key, of extraction or of the recipe.
fn apply_setting(settings: &mut JobSettings, key: &str, value: &str) -> Result<(), String> {
    let e = &mut settings.extract;
    match key {
        "resolution" => e.resolution = parse(key, value)?,
        "sparse" => e.sparse = parse_bool(key, value)?.then(SparseConfig::default),
        "check_convergence" => settings.check_convergence = parse_bool(key, value)?,
        // A preset says nothing about extraction: it keeps its settings.
        _ => apply(&mut settings.recipe, key, value)?,
    }
    Ok(())
}

fn check_settings(settings: &JobSettings) -> Result<(), String> {
    // The library's own checks: one place for every rule.
    settings.recipe.validate()?;
    // Against the larger (sparse) bound whatever `sparse` says now, so the
    // order of two set calls never matters; the extraction itself refuses a
    // dense grid above its own bound.
    let e = &settings.extract;
    if !(8..=MAX_SPARSE_RESOLUTION).contains(&e.resolution) {
        return Err(format!(
            "resolution must be between 8 and {MAX_SPARSE_RESOLUTION} \
             (above {MAX_DENSE_RESOLUTION} with sparse=true), got {}",
            e.resolution
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key reads back what was set: a value got and set again leaves
    /// the configuration as it was, for every preset; and the static lists
    /// are the library's own.
    #[test]
    fn every_key_reads_back_what_set_accepts() {
        let fresh = |recipe| JobSettings {
            recipe,
            extract: ExtractConfig::default(),
            check_convergence: true,
        };
        let same = |a: &JobSettings, b: &JobSettings| {
            a.recipe == b.recipe
                && a.extract == b.extract
                && a.check_convergence == b.check_convergence
        };
        for preset in Preset::ALL {
            let settings = fresh(preset.recipe());
            for key in KEYS.split(", ").filter(|k| *k != "preset") {
                let geometric = matches!(
                    settings.recipe.network.initialisation,
                    Initialisation::Geometric { .. }
                );
                if key == "geometric_radius" && !geometric {
                    assert!(value_of(&settings, key).is_err());
                    continue;
                }
                let value = value_of(&settings, key).unwrap_or_else(|e| panic!("{key}: {e}"));
                let mut again = settings.clone();
                apply_setting(&mut again, key, &value)
                    .unwrap_or_else(|e| panic!("{preset:?} {key}={value}: {e}"));
                assert!(
                    same(&again, &settings),
                    "{preset:?}: {key}={value} changed the config"
                );
            }
        }
        let mut settings = fresh(Preset::Fast.recipe());
        apply_setting(&mut settings, "encoding", "fourier:6").unwrap();
        apply_setting(&mut settings, "clamp", "none").unwrap();
        assert_eq!(value_of(&settings, "encoding").unwrap(), "fourier:6");
        assert_eq!(value_of(&settings, "clamp").unwrap(), "none");
        assert!(value_of(&settings, "preset")
            .unwrap_err()
            .contains("not one of its values"));
        assert!(value_of(&settings, "widht").unwrap_err().contains("known:"));
        let presets: Vec<_> = PRESETS.split(", ").collect();
        assert_eq!(
            presets,
            Preset::ALL.iter().map(|p| p.name()).collect::<Vec<_>>()
        );
    }

    /// The table and what `set` and `get` take agree, key by key: the same
    /// keys in the same order as KEYS, each default read back and set again
    /// unchanged, each value the range excludes refused, each listed choice
    /// read.
    #[test]
    fn the_settings_table_is_what_set_and_get_take() {
        let keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(keys, KEYS.split(", ").collect::<Vec<_>>());
        let fast = JobSettings::from_preset(Preset::Fast);
        // Text ranges are checked as a whole: one value out of each.
        let text_refused = [
            ("activation", "softplus:0"),
            ("encoding", "fourier:17"),
            ("skip", "0"),
            ("clamp", "-1"),
            ("shells", "100:-1"),
        ];
        for s in SETTINGS {
            let refuses = |value: &str| {
                let mut settings = fast.clone();
                let refused = settings.set(s.key, value).is_err();
                if refused {
                    assert_eq!(settings, fast, "refused {}={value} changed them", s.key);
                }
                refused
            };
            match s.default_value() {
                Some(value) => {
                    assert_eq!(fast.get(s.key).as_deref(), Ok(value.as_str()));
                    let mut again = fast.clone();
                    again
                        .set(s.key, &value)
                        .unwrap_or_else(|e| panic!("{}={value}: {e}", s.key));
                    assert_eq!(again, fast, "{}={value} is not the default", s.key);
                }
                None => assert_eq!(s.key, "preset"),
            }
            let mut out_of_range: Vec<String> = Vec::new();
            match s.kind {
                Kind::Integer { min, max } => {
                    if min > 0 {
                        out_of_range.push((min - 1).to_string());
                    }
                    out_of_range.push((u128::from(max) + 1).to_string());
                }
                Kind::Number(low, high) => {
                    for (bound, outside) in [(low, -1.0), (high, 1.0)] {
                        out_of_range.push(match bound {
                            Bound::Excluded(x) => x.to_string(),
                            Bound::Included(x) => (x + outside).to_string(),
                            Bound::Unbounded => (outside * f64::INFINITY).to_string(),
                        });
                    }
                }
                Kind::Boolean => out_of_range.push("maybe".into()),
                Kind::Choice(words) => {
                    out_of_range.push("no-such-choice".into());
                    for word in words {
                        let mut settings = fast.clone();
                        apply_setting(&mut settings, s.key, word)
                            .unwrap_or_else(|e| panic!("{}={word}: {e}", s.key));
                    }
                }
                Kind::Text(_) => {
                    let (_, value) = text_refused
                        .iter()
                        .find(|(key, _)| *key == s.key)
                        .unwrap_or_else(|| panic!("no refused value for {}", s.key));
                    out_of_range.push(value.to_string());
                }
            }
            for value in &out_of_range {
                assert!(refuses(value), "{}={value} was accepted", s.key);
            }
            assert!(!s.doc.is_empty() && !s.kind.range().is_empty());
        }
        let described: serde_json::Value = serde_json::from_str(&describe()).unwrap();
        let described = described.as_array().unwrap();
        assert_eq!(described.len(), SETTINGS.len());
        assert_eq!(described[1]["key"], "iterations");
        assert_eq!(described[1]["default"], "3000");
        assert_eq!(described[0]["default"], serde_json::Value::Null);
        assert_eq!(setting("dropout").unwrap().kind.range(), "[0, 1)");
        assert_eq!(setting("width").unwrap().kind.range(), "1 to 8192");
    }

    #[test]
    fn every_listed_key_is_understood() {
        for key in KEYS.split(", ") {
            let mut settings = JobSettings {
                recipe: Preset::Fast.recipe(),
                extract: ExtractConfig::default(),
                check_convergence: true,
            };
            let err = apply_setting(&mut settings, key, "\u{1}").err();
            assert!(
                !err.unwrap_or_default()
                    .contains("unknown configuration key"),
                "{key} is listed but not handled"
            );
        }
    }

    /// resolution and sparse may be set in either order.
    #[test]
    fn resolution_and_sparse_set_in_any_order() {
        for order in [["resolution", "sparse"], ["sparse", "resolution"]] {
            let mut settings = JobSettings {
                recipe: Preset::Fast.recipe(),
                extract: ExtractConfig::default(),
                check_convergence: true,
            };
            for key in order {
                let value = if key == "resolution" { "2048" } else { "true" };
                apply_setting(&mut settings, key, value).unwrap();
                check_settings(&settings).unwrap();
            }
            assert_eq!(settings.extract.resolution, 2048);
        }
    }

    #[test]
    fn refused_values_leave_the_recipe_unchanged_and_accepted_ones_apply() {
        let mut r = Preset::Fast.recipe();
        apply(&mut r, "shells", "100:1e-3,200:1e-4").unwrap();
        assert_eq!(r.sampling.shells.len(), 2);
        assert_eq!(r.sampling.shells[1].count, 200);
        apply(&mut r, "clamp", "none").unwrap();
        assert_eq!(r.training.loss, Loss::ClampedL1 { clamp: None });
        apply(&mut r, "width", "0").unwrap();
        assert!(r.validate().is_err(), "width 0 must be refused");
        assert!(apply(&mut r, "shells", "100:-1").is_err());
        assert!(apply(&mut r, "iterations", "many").is_err());
        assert!(apply(&mut r, "no_such_key", "1").is_err());
    }

    /// What the command line can set, the C API can too: precision, the
    /// network ablations and the sampling scheme.
    #[test]
    fn precision_ablation_and_sampling_keys_apply_and_refuse_bad_values() {
        use crate::train::Precision;
        let mut r = Preset::Detail.recipe();
        assert_eq!(r.training.precision, Precision::Bf16);
        apply(&mut r, "precision", "tf32").unwrap();
        assert_eq!(r.training.precision, Precision::Tf32);
        apply(&mut r, "skip", "4").unwrap();
        assert_eq!(r.network.skip, Some(4));
        apply(&mut r, "skip", "none").unwrap();
        assert_eq!(r.network.skip, None);
        apply(&mut r, "weight_norm", "true").unwrap();
        apply(&mut r, "dropout", "0.2").unwrap();
        assert!(r.network.weight_norm && r.network.dropout == 0.2);
        apply(&mut r, "sampling", "weighted").unwrap();
        assert!(r.sampling.weighted.is_some());
        apply(&mut r, "sampling", "near-surface").unwrap();
        assert!(r.sampling.weighted.is_none());
        r.validate().unwrap();
        for (key, value) in [
            ("precision", "fp16"),
            ("skip", "some"),
            ("weight_norm", "maybe"),
            ("sampling", "random"),
        ] {
            assert!(apply(&mut r.clone(), key, value).is_err(), "{key}={value}");
        }
        for (key, value) in [("dropout", "1.5"), ("skip", "99")] {
            let mut bad = r.clone();
            apply(&mut bad, key, value).unwrap();
            assert!(bad.validate().is_err(), "{key}={value}");
        }
    }

    #[test]
    fn encoding_and_activation_keys_apply_and_refuse_bad_values() {
        use crate::model::Encoding;
        let mut r = Preset::Fast.recipe();
        apply(&mut r, "encoding", "fourier:6").unwrap();
        assert_eq!(r.network.encoding, Encoding::Fourier { frequencies: 6 });
        apply(&mut r, "activation", "sine:20").unwrap();
        assert_eq!(r.network.activation, Activation::Sine { omega0: 20.0 });
        assert_eq!(r.network.initialisation, Initialisation::Siren);
        r.validate().unwrap();
        // A geometric start does not fit sine units: refused by the check.
        let mut geometric = r.clone();
        apply(&mut geometric, "initialisation", "geometric").unwrap();
        let err = geometric.validate().unwrap_err();
        assert!(err.contains("siren"), "{err}");
        // Leaving sine leaves SIREN's initialisation too.
        apply(&mut r, "activation", "relu").unwrap();
        assert_eq!(
            r.network.initialisation,
            Initialisation::Geometric { radius: 0.5 }
        );
        r.validate().unwrap();
        for (key, value) in [("encoding", "fourier:0"), ("encoding", "fourier:17")] {
            let mut bad = r.clone();
            apply(&mut bad, key, value).unwrap();
            assert!(bad.validate().is_err(), "{key}={value}");
        }
        let mut bad = r.clone();
        apply(&mut bad, "activation", "sine:0").unwrap();
        assert!(bad.validate().is_err());
        assert!(apply(&mut r, "encoding", "fourier").is_err());
        assert!(apply(&mut r, "activation", "gelu").is_err());
    }
}
