//! Configuration as defaults plus named key/value pairs, so that a new
//! option is a new key and never a new signature (the ABI stays put).

use std::ffi::c_char;

use super::handles::{HisdfBytes, HisdfConfig, Settings};
use super::{boundary, out_arg, str_arg, Failure, HisdfError, HisdfStatus};
use crate::extract::sparse::SparseConfig;
use crate::extract::{ExtractConfig, MAX_DENSE_RESOLUTION, MAX_SPARSE_RESOLUTION};
use crate::model::{Activation, Initialisation};
use crate::pipeline::{Preset, Recipe};
use crate::sampling::GaussianShell;
use crate::train::Loss;

/// The keys `hisdf_config_set` understands, for messages and bindings
/// (`hisdf_config_keys`).
const KEYS_C: &std::ffi::CStr =
    c"preset, iterations, batch_size, learning_rate, seed, device, progress_every, \
precision, width, depth, tanh_output, initialisation, geometric_radius, activation, encoding, \
skip, weight_norm, dropout, loss, clamp, scheduler, sampling, surface_samples, uniform_samples, \
shells, resolution, sparse, check_convergence";
const KEYS: &str = match KEYS_C.to_str() {
    Ok(s) => s,
    Err(_) => panic!("the key list is ASCII"),
};
/// The presets `hisdf_config_new` and the `preset` key take.
const PRESETS_C: &std::ffi::CStr = c"fast, detail, paper-l1, paper-curriculum";

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Failure> {
    value
        .trim()
        .parse()
        .map_err(|_| Failure::invalid(format!("{key}: cannot read {value:?}")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Failure> {
    match value.trim() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Failure::invalid(format!(
            "{key}: expected true or false, got {value:?}"
        ))),
    }
}

fn clamp_of(loss: &mut Loss) -> &mut Option<f64> {
    match loss {
        Loss::ClampedL1 { clamp } | Loss::Curriculum { clamp, .. } => clamp,
    }
}

/// Applies one key to a recipe. Checked on a copy by the caller, so a
/// refused value leaves the config as it was.
fn apply(recipe: &mut Recipe, key: &str, value: &str) -> Result<(), Failure> {
    let t = &mut recipe.training;
    let n = &mut recipe.network;
    let s = &mut recipe.sampling;
    match key {
        "preset" => {
            *recipe = value
                .trim()
                .parse::<Preset>()
                .map_err(Failure::invalid)?
                .recipe()
        }
        "iterations" => t.iterations = parse(key, value)?,
        "batch_size" => t.batch_size = parse(key, value)?,
        "learning_rate" => t.learning_rate = parse(key, value)?,
        "seed" => t.seed = parse(key, value)?,
        "device" => t.device = value.trim().parse().map_err(Failure::invalid)?,
        "progress_every" => t.progress_every = parse(key, value)?,
        "precision" => t.precision = value.trim().parse().map_err(Failure::invalid)?,
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
                    return Err(Failure::invalid(format!(
                        "sampling: expected near-surface or weighted, got {value:?}"
                    )))
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
                    return Err(Failure::invalid(format!(
                    "initialisation: expected pytorch-default, geometric or siren, got {value:?}"
                )))
                }
            }
        }
        "activation" => {
            let activation: Activation = value
                .parse()
                .map_err(|e| Failure::invalid(format!("activation: {e}")))?;
            n.set_activation(activation);
        }
        "encoding" => {
            n.encoding = value
                .parse()
                .map_err(|e| Failure::invalid(format!("encoding: {e}")))?
        }
        "geometric_radius" => {
            let radius: f64 = parse(key, value)?;
            if !(radius.is_finite() && radius > 0.0 && radius < 1.0) {
                return Err(Failure::invalid("geometric_radius must be in (0, 1)"));
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
                    return Err(Failure::invalid(format!(
                        "loss: expected clamped-l1 or curriculum, got {value:?}"
                    )))
                }
            }
        }
        "clamp" => {
            *clamp_of(&mut t.loss) = match value.trim() {
                "none" => None,
                v => Some(parse(key, v)?),
            }
        }
        "scheduler" => {
            t.scheduler = value
                .parse()
                .map_err(|e| Failure::invalid(format!("scheduler: {e}")))?
        }
        "surface_samples" => s.surface = parse(key, value)?,
        "uniform_samples" => s.uniform = parse(key, value)?,
        "shells" => {
            // "count:variance,count:variance", e.g. "250000:1e-4,250000:1e-5".
            let mut shells = Vec::new();
            for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                let (count, variance) = part.split_once(':').ok_or_else(|| {
                    Failure::invalid(format!("shells: expected count:variance, got {part:?}"))
                })?;
                let shell = GaussianShell {
                    count: parse(key, count)?,
                    variance: parse(key, variance)?,
                };
                if !(shell.variance.is_finite() && shell.variance > 0.0) {
                    return Err(Failure::invalid("shells: variance must be positive"));
                }
                shells.push(shell);
            }
            s.shells = shells;
        }
        _ => {
            return Err(Failure::invalid(format!(
                "unknown configuration key {key:?} (known: {KEYS})"
            )))
        }
    }
    Ok(())
}

/// One setting's current value, in the syntax `apply` reads back. The
/// `preset` key is a starting point, not a setting: it has no value.
fn value_of(settings: &Settings, key: &str) -> Result<String, Failure> {
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
                return Err(Failure::invalid(
                    "geometric_radius: this configuration's initialisation is not geometric",
                ))
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
        "resolution" => settings.extract.resolution.to_string(),
        "sparse" => flag(settings.extract.sparse.is_some()),
        "check_convergence" => flag(settings.check_convergence),
        "preset" => {
            return Err(Failure::invalid(
                "preset is where a configuration starts, not one of its values; \
                 read the settings it sets (iterations, width, ...) instead",
            ))
        }
        _ => {
            return Err(Failure::invalid(format!(
                "unknown configuration key {key:?} (known: {KEYS})"
            )))
        }
    })
}

/// Applies one key, of extraction or of the recipe.
fn apply_setting(settings: &mut Settings, key: &str, value: &str) -> Result<(), Failure> {
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

fn check_settings(settings: &Settings) -> Result<(), Failure> {
    check(&settings.recipe)?;
    // Against the larger (sparse) bound whatever `sparse` says now, so the
    // order of two set calls never matters; the extraction itself refuses a
    // dense grid above its own bound.
    let e = &settings.extract;
    if !(8..=MAX_SPARSE_RESOLUTION).contains(&e.resolution) {
        return Err(Failure::invalid(format!(
            "resolution must be between 8 and {MAX_SPARSE_RESOLUTION} \
             (above {MAX_DENSE_RESOLUTION} with sparse=true), got {}",
            e.resolution
        )));
    }
    Ok(())
}

/// The library's own checks (`Recipe::validate`): one place for every rule.
fn check(recipe: &Recipe) -> Result<(), Failure> {
    recipe.validate().map_err(Failure::invalid)
}

/// A new configuration holding a preset's values: "fast" (CPU-friendly, a
/// minute on two cores), "detail" (8 x 512 for a GPU: the command line's
/// default on CUDA), "paper-l1" or "paper-curriculum" (the paper's two
/// settings); NULL means "fast".
#[no_mangle]
pub extern "C" fn hisdf_config_new(
    preset: *const c_char,
    out: *mut *mut HisdfConfig,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let preset = if preset.is_null() {
            Preset::Fast
        } else {
            str_arg(preset, "preset")?
                .parse()
                .map_err(Failure::invalid)?
        };
        out_arg(out, "out")?;
        unsafe {
            *out = HisdfConfig::new(Settings {
                recipe: preset.recipe(),
                extract: ExtractConfig::default(),
                monitor: None,
                check_convergence: true,
            })
        };
        Ok(())
    })
}

/// Frees a configuration; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_config_free(config: *mut HisdfConfig) {
    let _ = std::panic::catch_unwind(|| HisdfConfig::free(config));
}

/// Sets one option from text, e.g. `hisdf_config_set(cfg, "iterations",
/// "500", NULL)`. Booleans are true | false (also yes | no, on | off,
/// 1 | 0). Keys: preset (fast | detail | paper-l1 | paper-curriculum:
/// resets every option but the extraction's), iterations, batch_size (1 to
/// 2^24), learning_rate, seed, device (cpu | cuda | auto), progress_every
/// (iterations between progress callbacks and cancellation checks),
/// precision (fp32 | tf32 | bf16: the mixed-precision step of the detail
/// preset, for the plain ReLU network; others train in tf32; the CPU
/// always trains in fp32), width, depth, tanh_output (a boolean), skip (a
/// hidden layer index that receives the input again, or none),
/// weight_norm (a boolean), dropout (a probability),
/// initialisation (pytorch-default | geometric | siren), geometric_radius,
/// activation (relu | softplus[:beta] | sine[:omega0]; sine brings the siren
/// initialisation, leaving it the geometric one), encoding (none |
/// fourier:L, L = 1..16 frequencies), loss (clamped-l1 | curriculum), clamp
/// (a number or none), scheduler (plateau | cosine | none), sampling
/// (near-surface: the preset's shells | weighted: the paper's 10M uniform
/// pool, 1M kept by exp(-100 |SDF|)), surface_samples,
/// uniform_samples, shells ("count:variance,..."; all samples together at
/// most 200,000,000), for
/// `hisdf_extract_with`: resolution (grid points per axis, default 256; 8 to
/// 1024 dense, to 2048 sparse; set in any order with sparse, checked
/// against it when extracting) and sparse (true: coarse-to-fine, sampling
/// only bricks the surface can cross; default false), and for
/// `hisdf_train`: check_convergence (default true: after training, a model
/// with no surface, spurious surfaces, wrong signs far from the surface or
/// a stagnant loss is refused with `HISDF_STATUS_TRAINING_FAILED` and the
/// findings in the message). An unknown key or a bad value gives
/// `HISDF_STATUS_INVALID_ARGUMENT` with a message and leaves the config
/// unchanged.
#[no_mangle]
pub extern "C" fn hisdf_config_set(
    config: *mut HisdfConfig,
    key: *const c_char,
    value: *const c_char,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let settings = HisdfConfig::get_mut(config)?;
        let key = str_arg(key, "key")?;
        let value = str_arg(value, "value")?;
        let mut changed = settings.clone();
        apply_setting(&mut changed, key.trim(), value)?;
        check_settings(&changed)?;
        *settings = changed;
        Ok(())
    })
}

/// One option's current value as text, in the form `hisdf_config_set`
/// takes (so a value read can be set again), e.g. "25000" for iterations,
/// "fourier:6" for encoding, "true" for sparse. Keys as for
/// `hisdf_config_set` (`hisdf_config_keys` lists them); `preset` has no
/// value, nor has geometric_radius under another initialisation. On
/// success `*out` owns the text (`hisdf_bytes_data`, no terminating NUL;
/// free with `hisdf_bytes_free`).
#[no_mangle]
pub extern "C" fn hisdf_config_get(
    config: *const HisdfConfig,
    key: *const c_char,
    out: *mut *mut HisdfBytes,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let settings = HisdfConfig::get(config)?;
        let key = str_arg(key, "key")?;
        out_arg(out, "out")?;
        let value = value_of(settings, key.trim())?;
        unsafe { *out = HisdfBytes::new(value.into_bytes()) };
        Ok(())
    })
}

/// Every key `hisdf_config_set` and `hisdf_config_get` take, as one static
/// string separated by ", " (never freed).
#[no_mangle]
pub extern "C" fn hisdf_config_keys() -> *const c_char {
    KEYS_C.as_ptr()
}

/// Every preset `hisdf_config_new` takes, as one static string separated
/// by ", " (never freed).
#[no_mangle]
pub extern "C" fn hisdf_presets() -> *const c_char {
    PRESETS_C.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key reads back what was set: a value got and set again leaves
    /// the configuration as it was, for every preset; and the static lists
    /// are the library's own.
    #[test]
    fn every_key_reads_back_what_set_accepts() {
        let fresh = |recipe| Settings {
            recipe,
            extract: ExtractConfig::default(),
            monitor: None,
            check_convergence: true,
        };
        let same = |a: &Settings, b: &Settings| {
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
                let value = value_of(&settings, key).unwrap_or_else(|e| panic!("{key}: {}", e.1));
                let mut again = settings.clone();
                apply_setting(&mut again, key, &value)
                    .unwrap_or_else(|e| panic!("{preset:?} {key}={value}: {}", e.1));
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
            .1
            .contains("not one of its values"));
        assert!(value_of(&settings, "widht")
            .unwrap_err()
            .1
            .contains("known:"));
        let presets: Vec<_> = PRESETS_C.to_str().unwrap().split(", ").collect();
        assert_eq!(
            presets,
            Preset::ALL.iter().map(|p| p.name()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_listed_key_is_understood() {
        for key in KEYS.split(", ") {
            let mut settings = Settings {
                recipe: Preset::Fast.recipe(),
                extract: ExtractConfig::default(),
                monitor: None,
                check_convergence: true,
            };
            let err = apply_setting(&mut settings, key, "\u{1}")
                .err()
                .map(|f| f.1);
            assert!(
                !err.unwrap_or_default()
                    .contains("unknown configuration key"),
                "{key} is listed but not handled"
            );
        }
    }

    /// The header documents exactly what the library takes: every key and
    /// every preset appears in the doc of the call that takes it.
    #[test]
    fn the_header_documents_every_key_and_preset() {
        let header = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/include/hisdf.h"));
        let doc_of = |function: &str| {
            let end = header
                .find(&format!("HisdfStatus {function}("))
                .unwrap_or_else(|| panic!("{function} not in the header"));
            let start = header[..end].rfind("\n\n").unwrap_or(0);
            header[start..end].to_string()
        };
        let set_doc = doc_of("hisdf_config_set");
        for key in KEYS.split(',').map(str::trim) {
            assert!(
                set_doc.contains(key),
                "hisdf_config_set does not document {key}"
            );
        }
        let new_doc = doc_of("hisdf_config_new");
        for preset in Preset::ALL {
            let name = preset.name();
            assert!(
                new_doc.contains(&format!("\"{name}\"")),
                "hisdf_config_new lacks {name}"
            );
            assert!(
                set_doc.contains(name),
                "hisdf_config_set's preset key lacks {name}"
            );
            // Each documented preset is one the library takes.
            assert_eq!(name.parse::<Preset>().ok(), Some(preset));
        }
        for (text, value) in [("yes", true), ("on", true), ("1", true), ("no", false)] {
            assert_eq!(parse_bool("sparse", text).unwrap(), value);
        }
        assert!(set_doc.contains("yes | no, on | off"));
    }

    /// resolution and sparse may be set in either order.
    #[test]
    fn resolution_and_sparse_set_in_any_order() {
        for order in [["resolution", "sparse"], ["sparse", "resolution"]] {
            let mut settings = Settings {
                recipe: Preset::Fast.recipe(),
                extract: crate::extract::ExtractConfig::default(),
                monitor: None,
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
        assert!(check(&r).is_err(), "width 0 must be refused");
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
        check(&r).unwrap();
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
            assert!(check(&bad).is_err(), "{key}={value}");
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
        check(&r).unwrap();
        // A geometric start does not fit sine units: refused by the check.
        let mut geometric = r.clone();
        apply(&mut geometric, "initialisation", "geometric").unwrap();
        let err = check(&geometric).unwrap_err().1;
        assert!(err.contains("siren"), "{err}");
        // Leaving sine leaves SIREN's initialisation too.
        apply(&mut r, "activation", "relu").unwrap();
        assert_eq!(
            r.network.initialisation,
            Initialisation::Geometric { radius: 0.5 }
        );
        check(&r).unwrap();
        for (key, value) in [("encoding", "fourier:0"), ("encoding", "fourier:17")] {
            let mut bad = r.clone();
            apply(&mut bad, key, value).unwrap();
            assert!(check(&bad).is_err(), "{key}={value}");
        }
        let mut bad = r.clone();
        apply(&mut bad, "activation", "sine:0").unwrap();
        assert!(check(&bad).is_err());
        assert!(apply(&mut r, "encoding", "fourier").is_err());
        assert!(apply(&mut r, "activation", "gelu").is_err());
    }
}
