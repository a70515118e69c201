//! The stages chained: what `hisdf train` / `run` and the C API's one-call
//! training do. Each stage stays usable on its own.

use serde::{Deserialize, Serialize};

mod convergence;
mod job;
pub mod settings;
pub use convergence::{
    check_convergence, check_convergence_with_sdf, ConvergenceConfig, ConvergenceReport, Finding,
};
pub use job::{
    sample_mesh, train_many, train_mesh, train_observed, train_pack, ConvergencePolicy, JobError,
    ManyInput, Observer, PackObserver, SampledMesh, Silent, Stage, StageSeconds, TrainedMesh,
};

// Preparing a mesh needs no libtorch: it lives in the mesh stage (the
// hisdf-geometry crate) for the torch-free `hisdf sample`.
use crate::mesh::Normalisation;
pub use crate::mesh::{open_surface_note, prepare_mesh, PreparedMesh};
use crate::model::{Encoding, Initialisation, NetworkConfig};
use crate::sampling::{
    near_surface, weighted, GaussianShell, NearSurfaceConfig, Refinement, Representation, Samples,
    Surface, DEFAULT_SHELL_THICKNESS, MAX_SAMPLES,
};
use crate::sdf::MeshSdf;
use crate::train::{
    CosineDecay, DeviceChoice, Loss, Precision, PredictionClamp, ReduceLrOnPlateau, Scheduler,
    TrainConfig,
};

/// A complete recipe: how to sample, what network, how to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub sampling: NearSurfaceConfig,
    pub network: NetworkConfig,
    pub training: TrainConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Small enough for two CPU cores in about a minute, yet accurate on
    /// simple parts; departs from the paper where the paper's setting needs a
    /// GPU or fails to converge (see docs in README), and feeds the network
    /// Fourier features of the input (6 frequencies).
    Fast,
    /// The paper's L1 setting: 8x512, clamp 0.1, plateau scheduler, 10,000
    /// iterations, paper near-surface sampling.
    PaperL1,
    /// The paper's final setting: curriculum loss (Table 2), 15,000
    /// iterations, no scheduler.
    PaperCurriculum,
    /// Our GPU setting: the paper's curriculum, network and near-surface
    /// shells, plus 50k uniform samples in the ball, a geometric
    /// initialisation and the target-side prediction clamp; trained with the
    /// bf16 step for 25,000 iterations, the last half with a cosine decay of
    /// the learning rate. Converges where the paper's setting fails (the lego
    /// brick) and is 6-15x more precise where it works, in under 20 s on an
    /// H200 (docs/results.md).
    Detail,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(Preset::Fast),
            "paper-l1" => Ok(Preset::PaperL1),
            "paper-curriculum" => Ok(Preset::PaperCurriculum),
            "detail" => Ok(Preset::Detail),
            _ => Err(format!(
                "unknown preset {s:?} (expected fast, detail, paper-l1 or paper-curriculum)"
            )),
        }
    }
}

impl Preset {
    pub fn recipe(self) -> Recipe {
        match self {
            Preset::Fast => Recipe {
                sampling: NearSurfaceConfig {
                    surface: 10_000,
                    shells: vec![
                        GaussianShell {
                            count: 100_000,
                            variance: 1e-3,
                        },
                        GaussianShell {
                            count: 100_000,
                            variance: 1e-4,
                        },
                    ],
                    uniform: 20_000,
                    weighted: None,
                    refinement: Refinement::NONE,
                    representation: Representation::Solid,
                    shell_thickness: DEFAULT_SHELL_THICKNESS,
                },
                network: NetworkConfig {
                    depth: 4,
                    width: 128,
                    tanh_output: true,
                    initialisation: Initialisation::Geometric { radius: 0.5 },
                    // Measured on this budget against the plain input
                    // (docs/results.md): point-to-mesh Chamfer 1.7-85x
                    // lower on five shapes, and the heatsink, where the
                    // plain network grew spurious surfaces, converges.
                    encoding: Encoding::Fourier { frequencies: 6 },
                    ..NetworkConfig::default()
                },
                training: TrainConfig {
                    iterations: 3000,
                    batch_size: 4096,
                    loss: Loss::ClampedL1 { clamp: Some(0.1) },
                    scheduler: Scheduler::Plateau(ReduceLrOnPlateau::paper()),
                    ..TrainConfig::default()
                },
            },
            Preset::PaperL1 => Recipe {
                sampling: NearSurfaceConfig::paper(),
                network: NetworkConfig::default(),
                training: TrainConfig::default(),
            },
            Preset::PaperCurriculum => Recipe {
                sampling: NearSurfaceConfig::paper(),
                network: NetworkConfig::default(),
                training: TrainConfig {
                    iterations: 15_000,
                    loss: Loss::paper_curriculum(),
                    scheduler: Scheduler::None,
                    ..TrainConfig::default()
                },
            },
            Preset::Detail => {
                let paper = Preset::PaperCurriculum.recipe();
                Recipe {
                    sampling: NearSurfaceConfig {
                        uniform: 50_000,
                        ..paper.sampling
                    },
                    network: NetworkConfig {
                        initialisation: Initialisation::Geometric { radius: 0.5 },
                        ..paper.network
                    },
                    training: TrainConfig {
                        prediction_clamp: PredictionClamp::TargetSide,
                        // The bf16 step is 1.8x faster than TF32 (0.69 vs
                        // 1.25 ms on an H200); the time it saves buys 10,000
                        // more iterations, and the decay lets Adam settle
                        // below its constant-rate noise: point-to-mesh
                        // Chamfer 11-43x lower than 15,000 constant-rate
                        // TF32 iterations (docs/results.md, issue 15).
                        precision: Precision::Bf16,
                        iterations: 25_000,
                        scheduler: Scheduler::Cosine(CosineDecay::default()),
                        ..paper.training
                    },
                }
            }
        }
    }

    /// The preset used when none is named: `detail` where training will
    /// run on CUDA, `fast` on the CPU (an 8x512 network needs a GPU).
    pub fn default_for(device: DeviceChoice) -> Preset {
        let cuda = match device {
            DeviceChoice::Cpu => false,
            DeviceChoice::Cuda => true,
            DeviceChoice::Auto => tch::Cuda::is_available(),
        };
        if cuda {
            Preset::Detail
        } else {
            Preset::Fast
        }
    }
}

impl Recipe {
    /// The training samples of a prepared mesh, in the unit-sphere frame:
    /// the one place that turns a recipe's sampling settings into samples.
    pub fn samples(&self, prepared: &PreparedMesh) -> Samples {
        self.samples_with_sdf(prepared, &MeshSdf::new(&prepared.normalised))
    }

    /// The same with the normalised mesh's SDF already built.
    pub fn samples_with_sdf(&self, prepared: &PreparedMesh, sdf: &MeshSdf) -> Samples {
        let mut samples = match &self.sampling.weighted {
            Some(w) => weighted(sdf, w, self.training.seed),
            None => near_surface(
                &prepared.normalised,
                sdf,
                &self.sampling,
                self.training.seed,
            ),
        };
        // Sampling draws the points the signed distance picks (weighted
        // sampling keeps them by |SDF|, which a shell leaves as it is); the
        // targets are then the surface's own.
        self.sampling.surface().apply(&mut samples.sdf);
        samples
    }
}

/// The most meshes [`pack_size`] puts in one step: an H200 does an 8 x 512
/// shape-step in 0.44 ms at 8 networks and 0.39 ms at 32 (docs/results.md),
/// and a larger pack needs that many meshes sampled ahead and held.
pub const MAX_PACK: usize = 16;

/// How many of `shapes` meshes with this recipe to train in one step
/// ([`train_many`]): on CUDA as many as a quarter of the free memory holds
/// (an estimate of one network's step: its activations, their gradients and
/// its Adam state, twice over), at most [`MAX_PACK`]; one on the CPU, where
/// a larger product is no faster per network, and for a network the
/// batched step does not cover.
pub fn pack_size(recipe: &Recipe, shapes: usize) -> usize {
    if !matches!(recipe.training.device.resolve(), Ok(d) if d.is_cuda()) {
        return 1;
    }
    let input = crate::train::TrainInput {
        samples: &Samples::default(),
        normalisation: Normalisation::identity(),
        network: &recipe.network,
        config: &recipe.training,
    };
    if crate::train::batch_incompatibility(&[input, input]).is_some() {
        return 1;
    }
    let Some((free, _)) = crate::train::cuda_memory() else {
        return 1;
    };
    let n = &recipe.network;
    let (width, depth) = (n.width as u64, n.depth as u64);
    let batch = recipe.training.batch_size as u64;
    let parameters = depth * width * width + 64 * width;
    let per_network = 2 * ((depth + 6) * batch * width * 2 + 18 * parameters);
    let fits = (free / 4 / per_network.max(1)) as usize;
    fits.clamp(1, MAX_PACK).min(shapes.max(1))
}

/// How many workers a many-shape job with this recipe should run on this
/// host: one per visible CUDA device when it trains on CUDA (each worker a
/// process of its own, with its own device, CUDA context and packs), else
/// one.
pub fn gpu_workers(recipe: &Recipe) -> usize {
    match recipe.training.device.resolve() {
        Ok(d) if d.is_cuda() => (tch::Cuda::device_count().max(1)) as usize,
        _ => 1,
    }
}

/// A configuration file that could not be read or does not describe a recipe.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Preset {
    pub const ALL: [Preset; 4] = [
        Preset::Fast,
        Preset::Detail,
        Preset::PaperL1,
        Preset::PaperCurriculum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Fast => "fast",
            Preset::PaperL1 => "paper-l1",
            Preset::PaperCurriculum => "paper-curriculum",
            Preset::Detail => "detail",
        }
    }
}

/// The sections of a configuration file that make up a [`Recipe`].
pub const RECIPE_SECTIONS: [&str; 3] = ["sampling", "network", "training"];

impl Recipe {
    /// Reads a recipe from a JSON configuration file; see
    /// [`Recipe::from_config_value`] for the format.
    pub fn from_file(path: &std::path::Path) -> Result<Recipe, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        Recipe::from_config_value(&value, None, &[])
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
    }

    /// A recipe from a configuration object: a base preset (`"preset"`, or
    /// `preset` when given, else `fast`) with the settings of the `sampling`,
    /// `network` and `training` sections laid over it. Sections may be
    /// partial, so a file names only what departs from its preset, and a file
    /// holding every setting (what [`Recipe::to_config_value`] writes) gives
    /// back exactly that recipe whatever the preset. Top-level keys in
    /// `ignored` belong to the caller; any other unknown key is an error, so a
    /// misspelt setting never silently falls back to the preset's value.
    pub fn from_config_value(
        value: &serde_json::Value,
        preset: Option<Preset>,
        ignored: &[&str],
    ) -> Result<Recipe, String> {
        let object = value
            .as_object()
            .ok_or("a configuration must be a JSON object")?;
        let named = match object.get("preset") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.parse::<Preset>()?),
            Some(other) => return Err(format!("preset must be a name, got {other}")),
        };
        let base = preset.or(named).unwrap_or(Preset::Fast).recipe();
        let mut merged = serde_json::to_value(&base).map_err(|e| e.to_string())?;
        for (key, section) in object {
            if key == "preset" || ignored.contains(&key.as_str()) {
                continue;
            }
            if !RECIPE_SECTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown section {key:?} (expected preset, {})",
                    RECIPE_SECTIONS.join(", ")
                ));
            }
            overlay(&mut merged[key.as_str()], section, key)?;
        }
        let recipe: Recipe = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// Every setting, as a configuration object that
    /// [`Recipe::from_config_value`] reads back unchanged.
    pub fn to_config_value(&self) -> serde_json::Value {
        // A Recipe is plain data (numbers, strings, enums, vectors): its
        // serialisation cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Settings that would make training fail late or meaninglessly.
    pub fn validate(&self) -> Result<(), String> {
        self.network.validate()?;
        self.training.validate().map_err(|e| e.to_string())?;
        // Zero iterations would give an untrained network that looks like a
        // result; training itself accepts it (a cancelled run can end there).
        if self.training.iterations == 0 {
            return Err("training.iterations must be positive".into());
        }
        let s = &self.sampling;
        s.refinement.validate()?;
        // Checked whatever the representation, so a file's bad thickness
        // fails now rather than when someone turns the shell on.
        Surface::Shell {
            thickness: s.shell_thickness,
        }
        .validate()?;
        if let Some(w) = &s.weighted {
            if w.keep == 0 || w.keep > w.pool || !(w.beta >= 0.0 && w.beta.is_finite()) {
                return Err(format!(
                    "weighted sampling needs 0 < keep <= pool and beta >= 0, got keep {} pool {} beta {}",
                    w.keep, w.pool, w.beta
                ));
            }
        }
        if s.total() == 0 {
            return Err("sampling asks for no samples at all".into());
        }
        // Bounded before anything is allocated: a count from a typo or a
        // host's arithmetic would otherwise abort the process.
        if s.peak_samples() > MAX_SAMPLES {
            return Err(format!(
                "sampling asks for {} samples; at most {MAX_SAMPLES} (16 bytes each) are drawn",
                s.peak_samples()
            ));
        }
        if s.shells
            .iter()
            .any(|g| !(g.variance.is_finite() && g.variance > 0.0))
        {
            return Err("sampling.shells: every variance must be a positive number".into());
        }
        Ok(())
    }
}

/// Lays `patch` over `base`: objects merge key by key, anything else
/// replaces. An object whose variant differs (a new `kind` tag, or a
/// one-key externally tagged enum under another name) replaces the whole
/// value, since merging two variants' fields would mean nothing.
fn overlay(
    base: &mut serde_json::Value,
    patch: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    use serde_json::Value;
    let (Value::Object(b), Value::Object(p)) = (&mut *base, patch) else {
        *base = patch.clone();
        return Ok(());
    };
    let other_kind = match (b.get("kind"), p.get("kind")) {
        (Some(x), Some(y)) => x != y,
        _ => false,
    };
    let other_variant = b.len() == 1 && p.len() == 1 && p.keys().ne(b.keys());
    if other_kind || other_variant {
        *base = patch.clone();
        return Ok(());
    }
    for (key, value) in p {
        match b.get_mut(key) {
            Some(slot) => overlay(slot, value, &format!("{at}.{key}"))?,
            None => return Err(format!("unknown setting {at}.{key}")),
        }
    }
    Ok(())
}

/// A recipe small enough for the CPU in a test: a 3 x 32 network on
/// near-surface samples of a mesh, batches of 512, a report every 25
/// iterations.
#[cfg(test)]
pub(crate) fn small_test_recipe(initialisation: Initialisation, iterations: usize) -> Recipe {
    Recipe {
        sampling: NearSurfaceConfig {
            surface: 2000,
            shells: vec![
                GaussianShell {
                    count: 10_000,
                    variance: 1e-3,
                },
                GaussianShell {
                    count: 10_000,
                    variance: 1e-4,
                },
            ],
            uniform: 5000,
            weighted: None,
            refinement: Refinement::NONE,
            representation: Representation::Solid,
            shell_thickness: DEFAULT_SHELL_THICKNESS,
        },
        network: NetworkConfig {
            depth: 3,
            width: 32,
            tanh_output: true,
            initialisation,
            ..NetworkConfig::default()
        },
        training: TrainConfig {
            iterations,
            batch_size: 512,
            device: DeviceChoice::Cpu,
            progress_every: 25,
            ..TrainConfig::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_preset_round_trips_through_its_configuration() {
        for preset in Preset::ALL {
            let recipe = preset.recipe();
            let value = recipe.to_config_value();
            // Read back over another base: every setting must come from the file.
            for base in Preset::ALL {
                let back = Recipe::from_config_value(&value, Some(base), &[]).unwrap();
                assert_eq!(back, recipe, "{} over {}", preset.name(), base.name());
            }
            assert_eq!(preset.name().parse::<Preset>().unwrap(), preset);
        }
    }

    #[test]
    fn partial_sections_override_only_what_they_name() {
        let value = json!({
            "preset": "paper-l1",
            "network": {"width": 16, "depth": 2},
            "training": {"iterations": 50, "loss": {"kind": "clamped-l1", "clamp": null}},
        });
        let r = Recipe::from_config_value(&value, None, &[]).unwrap();
        let paper = Preset::PaperL1.recipe();
        assert_eq!((r.network.width, r.network.depth), (16, 2));
        assert_eq!(r.network.initialisation, paper.network.initialisation);
        assert_eq!(r.training.iterations, 50);
        assert_eq!(r.training.batch_size, paper.training.batch_size);
        assert_eq!(r.training.loss, Loss::ClampedL1 { clamp: None });
        assert_eq!(r.sampling, paper.sampling);
    }

    #[test]
    fn a_variant_change_replaces_the_whole_setting() {
        let value = json!({
            "preset": "fast",
            "network": {"initialisation": "pytorch-default"},
            "training": {"scheduler": {"kind": "none"}},
        });
        let r = Recipe::from_config_value(&value, None, &[]).unwrap();
        assert_eq!(r.network.initialisation, Initialisation::PytorchDefault);
        assert_eq!(r.training.scheduler, Scheduler::None);
    }

    #[test]
    fn encoding_and_sine_come_from_the_network_section() {
        use crate::model::{Activation, Encoding};
        let value = json!({
            "preset": "detail",
            "network": {
                "encoding": {"fourier": {"frequencies": 6}},
                "activation": {"sine": {"omega0": 30}},
                "initialisation": "siren",
            },
        });
        let r = Recipe::from_config_value(&value, None, &[]).unwrap();
        assert_eq!(r.network.encoding, Encoding::Fourier { frequencies: 6 });
        assert_eq!(r.network.activation, Activation::Sine { omega0: 30.0 });
        assert_eq!(r.network.initialisation, Initialisation::Siren);
        // What a run writes reads back unchanged.
        let back = Recipe::from_config_value(&r.to_config_value(), None, &[]).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn misspelt_or_invalid_settings_are_refused() {
        let cases = [
            (json!({"network": {"widht": 16}}), "network.widht"),
            (json!({"netwrok": {}}), "netwrok"),
            (json!({"preset": "paper"}), "unknown preset"),
            (json!({"network": {"width": 0}}), "width"),
            (json!({"training": {"iterations": 0}}), "iterations"),
            (json!({"training": {"iterations": "many"}}), "invalid type"),
            (json!([1, 2]), "JSON object"),
            (
                json!({"network": {"encoding": {"fourier": {"frequencies": 17}}}}),
                "frequencies",
            ),
            (
                json!({"network": {"activation": {"sine": {"omega0": 30}}}}),
                "needs initialisation siren",
            ),
        ];
        for (value, needle) in cases {
            let err = Recipe::from_config_value(&value, None, &[]).unwrap_err();
            assert!(err.contains(needle), "{value}: {err:?} lacks {needle:?}");
        }
        let ignored = json!({"extraction": {"resolution": 24}});
        assert!(Recipe::from_config_value(&ignored, None, &["extraction"]).is_ok());
    }
}
