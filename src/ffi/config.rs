//! Configuration as defaults plus named key/value pairs, so that a new
//! option is a new key and never a new signature (the ABI stays put). The
//! keys, their parsing and their checks are the library's
//! (`pipeline::settings`); this file translates them to C.

use std::ffi::c_char;

use std::ffi::CString;
use std::sync::OnceLock;

use super::handles::{HisdfBytes, HisdfConfig, Settings};
use super::{boundary, out_arg, str_arg, Failure, HisdfError, HisdfStatus};
use crate::pipeline::settings::{describe, JobSettings, KEYS, PRESETS};
use crate::pipeline::Preset;

/// The library's key and preset lists as static C strings (never freed).
fn c_list(cell: &'static OnceLock<CString>, list: &str) -> *const c_char {
    cell.get_or_init(|| CString::new(list).expect("the lists hold no NUL"))
        .as_ptr()
}

static KEYS_C: OnceLock<CString> = OnceLock::new();
static PRESETS_C: OnceLock<CString> = OnceLock::new();
static DESCRIPTION_C: OnceLock<CString> = OnceLock::new();

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
                job: JobSettings::from_preset(preset),
                monitor: None,
            })
        };
        Ok(())
    })
}

/// Frees a configuration; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_config_free(config: *mut HisdfConfig) {
    super::release(|| HisdfConfig::free(config));
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
/// most 200,000,000), refine_samples (samples moved, at the fraction
/// refine_at of training, to where the network is furthest from the
/// surface; 0, every preset's: none; docs/results.md has what it gave), surface
/// (solid: the volume the mesh encloses, an open mesh closed by its winding
/// number | shell: a closed thin band around the surface, for sheet-like
/// open meshes), shell_thickness (the band, in the unit-sphere frame;
/// default 0.01), for
/// `hisdf_extract_with`: resolution (grid points per axis, default 256; 8 to
/// 1024 dense, to 2048 sparse; set in any order with sparse, checked
/// against it when extracting) and sparse (true: coarse-to-fine, sampling
/// only bricks the surface can cross; default false), and for
/// `hisdf_train`: check_convergence (default true: after training, a model
/// with no surface, spurious surfaces, wrong signs far from the surface or
/// a surface it has not learned (a large error near it) is refused with
/// `HISDF_STATUS_TRAINING_FAILED` and the findings in the message). An unknown key or a bad value gives
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
        settings.job.set(key, value).map_err(Failure::invalid)
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
        let value = settings.job.get(key).map_err(Failure::invalid)?;
        unsafe { *out = HisdfBytes::new(value.into_bytes()) };
        Ok(())
    })
}

/// Every key `hisdf_config_set` and `hisdf_config_get` take, as one static
/// string separated by ", " (never freed).
#[no_mangle]
pub extern "C" fn hisdf_config_keys() -> *const c_char {
    c_list(&KEYS_C, KEYS)
}

/// Every preset `hisdf_config_new` takes, as one static string separated
/// by ", " (never freed).
#[no_mangle]
pub extern "C" fn hisdf_presets() -> *const c_char {
    c_list(&PRESETS_C, PRESETS)
}

/// Every key `hisdf_config_set` takes, described, as one static JSON string
/// (never freed): an array of objects, one per key in the order of
/// `hisdf_config_keys`, each with "key", "type" (integer | number | boolean
/// | choice | text), "default" (the value `hisdf_config_new(NULL)` starts
/// from, as `hisdf_config_get` writes it; null for preset), "range" (the
/// values in range, in words) and "doc" (what the key does). A front end
/// can build its settings from it instead of a copy.
#[no_mangle]
pub extern "C" fn hisdf_config_describe() -> *const c_char {
    DESCRIPTION_C
        .get_or_init(|| CString::new(describe()).expect("JSON escapes every NUL"))
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(
                crate::pipeline::settings::parse_bool("sparse", text).unwrap(),
                value
            );
        }
        assert!(set_doc.contains("yes | no, on | off"));
    }

    /// The static lists handed to C are the library's own.
    #[test]
    fn the_c_lists_are_the_librarys() {
        let read = |p: *const c_char| {
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(read(hisdf_config_keys()), KEYS);
        assert_eq!(read(hisdf_presets()), PRESETS);
        assert_eq!(read(hisdf_config_describe()), describe());
        // The same pointer every time: the string is static.
        assert_eq!(hisdf_config_keys(), hisdf_config_keys());
    }
}
