//! The model file: one safetensors file whose header metadata carries the
//! network configuration, the normalising transform, training metadata and a
//! format version, so that another process (or a Python user with the
//! `safetensors` package) can load it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

use super::{NetworkConfig, SdfNetwork, TrainedModel, TrainingMetadata};
use crate::mesh::Normalisation;

/// Raised whenever the meaning of a stored field changes; a reader refuses
/// files newer than it understands instead of misreading them.
pub const MODEL_FORMAT_VERSION: u32 = 1;
const FORMAT_TAG: &str = "hisdf-model";

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("cannot read model file {path}: {source}; check the path and its permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write model file {path}: {source}; choose a writable path with free space")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a hisdf model file ({reason}): was it written by `hisdf train` or hisdf_model_save? re-save it or retrain")]
    NotAModel { path: PathBuf, reason: String },
    #[error("{path} was written by a newer hisdf (model format {found}, this build reads up to {supported}); update hisdf to read it")]
    FutureVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// `reason` ends with what to do (see `read_model`).
    #[error("{path} is corrupted: {reason}")]
    Corrupted { path: PathBuf, reason: String },
    /// Saving a model that loading would refuse: nothing is written.
    #[error("the model was not saved: {0}; its training diverged or its weights were changed, so retrain it (a file that would not load again is not written)")]
    NotRunnable(String),
    #[error("cannot serialise the model: {0}; this is a bug in hisdf, please report it")]
    Serialise(String),
}

/// FNV-1a over the tensor bytes: the safetensors header validates sizes but
/// not contents, and a flipped bit in a weight silently changes the shape.
fn checksum(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.copy_data(&mut v, n);
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes the model atomically: a temporary file beside the target is renamed
/// over it only once complete, so a failure never destroys an existing file.
pub fn save_model(model: &TrainedModel, path: &Path) -> Result<(), ModelFileError> {
    let bytes = model_to_bytes(model)?;
    crate::util::write_atomically(path, &bytes).map_err(|source| ModelFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The model file's bytes, for hosts that keep models inside their own
/// documents; [`model_from_bytes`] reads them back. A model that loading
/// would refuse (a NaN weight, a frame not finite in f32) is refused here,
/// so that no file is written that cannot be read.
pub fn model_to_bytes(model: &TrainedModel) -> Result<Vec<u8>, ModelFileError> {
    super::validate::check_runnable_finding(model).map_err(ModelFileError::NotRunnable)?;
    serialise(model).map_err(ModelFileError::Serialise)
}

/// The bytes, unchecked: for tests that must write the damaged files
/// loading refuses, which [`model_to_bytes`] no longer writes.
#[doc(hidden)]
pub fn serialise(model: &TrainedModel) -> Result<Vec<u8>, String> {
    let params = model.network.parameters();
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = params
        .iter()
        .map(|(name, t)| {
            let shape = t.size().iter().map(|&d| d as usize).collect();
            (name.clone(), tensor_bytes(t), shape)
        })
        .collect();
    let sum = checksum(&data.iter().map(|(_, b, _)| &b[..]).collect::<Vec<_>>());
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT_TAG.to_string());
    meta.insert(
        "format_version".to_string(),
        MODEL_FORMAT_VERSION.to_string(),
    );
    let json = |v: serde_json::Result<String>| v.expect("plain structs always serialise");
    meta.insert(
        "network".into(),
        json(serde_json::to_string(&model.network.config)),
    );
    meta.insert(
        "normalisation".into(),
        json(serde_json::to_string(&NormalisationRecord::from(
            model.normalisation,
        ))),
    );
    meta.insert(
        "training".into(),
        json(serde_json::to_string(&model.metadata)),
    );
    meta.insert("checksum_fnv1a64".into(), format!("{sum:016x}"));
    let views: Vec<(String, TensorView)> = data
        .iter()
        .map(|(name, bytes, shape)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .expect("shape and byte count come from the same tensor");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NormalisationRecord {
    centre: [f64; 3],
    scale: f64,
}

impl From<Normalisation> for NormalisationRecord {
    fn from(n: Normalisation) -> Self {
        NormalisationRecord {
            centre: n.centre,
            scale: n.scale,
        }
    }
}

pub fn load_model(path: &Path, device: Device) -> Result<TrainedModel, ModelFileError> {
    let bytes = std::fs::read(path).map_err(|source| ModelFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    read_model(&bytes, path, device)
}

/// A model from a model file's bytes (what [`model_to_bytes`] gives); errors
/// name the source "<buffer>".
pub fn model_from_bytes(bytes: &[u8], device: Device) -> Result<TrainedModel, ModelFileError> {
    read_model(bytes, Path::new("<buffer>"), device)
}

/// What a safetensors error means to someone holding the file, instead of
/// the library's variant name ("MetadataIncompleteBuffer").
fn header_problem(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "it is shorter than a model header: empty or cut short".into(),
        E::InvalidHeaderLength => "its header is cut short: the file was truncated".into(),
        E::HeaderTooLarge => "its first bytes declare an absurdly large header".into(),
        E::InvalidHeader(_) => "its header is not text".into(),
        E::InvalidHeaderDeserialization(_) | E::JsonError(_) => {
            "its header is not the JSON a model header holds".into()
        }
        E::MetadataIncompleteBuffer => {
            "its weights do not fill the file exactly: it was truncated or appended to".into()
        }
        E::InvalidOffset(name) => format!("the header places tensor '{name}' outside the file"),
        E::TensorInvalidInfo | E::InvalidTensorView(..) | E::ValidationOverflow => {
            "a tensor's shape does not match its stored size".into()
        }
        E::TensorNotFound(name) => format!("tensor '{name}' is missing"),
        E::MisalignedSlice => "a tensor's data is misaligned".into(),
        E::IoError(e) => format!("it could not be read: {e}"),
    }
}

fn read_model(bytes: &[u8], path: &Path, device: Device) -> Result<TrainedModel, ModelFileError> {
    let not_a_model = |reason: String| ModelFileError::NotAModel {
        path: path.to_path_buf(),
        reason,
    };
    // Reasons from the runnability check already say what to do; the
    // others get the same advice here, once.
    let corrupted = |reason: String| ModelFileError::Corrupted {
        path: path.to_path_buf(),
        reason: if reason.contains("retrain") {
            reason
        } else {
            format!("{reason}; restore an intact copy, or retrain and save it again")
        },
    };
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| not_a_model(header_problem(&e)))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or_else(|| not_a_model("no metadata".into()))?;
    if meta.get("format").map(String::as_str) != Some(FORMAT_TAG) {
        return Err(not_a_model("missing the hisdf-model tag".into()));
    }
    let version: u32 = meta
        .get("format_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupted("unreadable format_version".into()))?;
    if version > MODEL_FORMAT_VERSION {
        return Err(ModelFileError::FutureVersion {
            path: path.to_path_buf(),
            found: version,
            supported: MODEL_FORMAT_VERSION,
        });
    }
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| corrupted(format!("metadata field {key} missing")))
    };
    let config: NetworkConfig = serde_json::from_str(field("network")?)
        .map_err(|e| corrupted(format!("network config: {e}")))?;
    config.validate().map_err(corrupted)?;
    let norm: NormalisationRecord = serde_json::from_str(field("normalisation")?)
        .map_err(|e| corrupted(format!("normalisation: {e}")))?;
    let metadata: TrainingMetadata = serde_json::from_str(field("training")?)
        .map_err(|e| corrupted(format!("training metadata: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| corrupted(header_problem(&e)))?;

    let network = SdfNetwork::new(&config, device, 0).map_err(corrupted)?;
    let mut parts: Vec<&[u8]> = Vec::new();
    {
        let _guard = tch::no_grad_guard();
        for (name, mut var) in network.parameters() {
            let view = tensors
                .tensor(&name)
                .map_err(|_| corrupted(format!("tensor {name} missing")))?;
            let expected: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
            if view.dtype() != Dtype::F32 || view.shape() != expected.as_slice() {
                return Err(corrupted(format!(
                    "tensor {name} has {:?} {:?}, expected F32 {:?}",
                    view.dtype(),
                    view.shape(),
                    expected
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            var.copy_(
                &Tensor::from_slice(&values)
                    .view(var.size().as_slice())
                    .to_device(device),
            );
            parts.push(view.data());
        }
    }
    let stored = field("checksum_fnv1a64")?;
    if format!("{:016x}", checksum(&parts)) != *stored {
        return Err(corrupted("weights do not match their checksum".into()));
    }
    let model = TrainedModel {
        network,
        normalisation: Normalisation {
            centre: norm.centre,
            scale: norm.scale,
        },
        metadata,
    };
    // A separate step: what the numbers must be to compute with.
    super::validate::check_runnable(&model).map_err(corrupted)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Encoding, Initialisation};

    fn model(config: NetworkConfig) -> TrainedModel {
        TrainedModel {
            network: SdfNetwork::new(&config, Device::Cpu, 5).unwrap(),
            normalisation: Normalisation {
                centre: [1.5, -2.0, 0.25],
                scale: 0.125,
            },
            metadata: TrainingMetadata {
                iterations: 42,
                final_loss: 1.5e-4,
                seconds: 1.0,
                device: "Cpu".into(),
                hisdf_version: "test".into(),
                cancelled: false,
                surface: crate::mesh::Surface::Shell { thickness: 0.02 },
            },
        }
    }

    /// Weights or a frame that are not finite in f32 are refused at load,
    /// even in a file whose checksum matches them.
    #[test]
    fn non_finite_weights_and_frames_are_refused() {
        let config = NetworkConfig {
            depth: 2,
            width: 8,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        };
        let bad_weight = model(config.clone());
        {
            let _guard = tch::no_grad_guard();
            let (_, w) = &bad_weight.network.parameters()[0];
            let _ = w.shallow_clone().view([-1]).get(3).fill_(f64::NAN);
        }
        let path = temp("nan-weight.safetensors");
        // Saving refuses it and writes nothing.
        let refused = save_model(&bad_weight, &path).unwrap_err();
        assert!(
            matches!(&refused, ModelFileError::NotRunnable(r) if r.contains("NaN") && r.contains("hidden.0.weight")),
            "{refused}"
        );
        assert!(!path.exists());
        assert!(model_to_bytes(&bad_weight).is_err());
        // A file written anyway (a damaged copy, another writer) is refused
        // at load.
        crate::util::write_atomically(&path, &serialise(&bad_weight).unwrap()).unwrap();
        let err = load_model(&path, Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("NaN") && err.contains("hidden.0.weight"),
            "{err}"
        );

        for (centre, scale) in [
            ([1e308, 0.0, 0.0], 1.0),
            ([0.0; 3], 1e-300),
            ([0.0; 3], 1e300),
        ] {
            let mut far = model(config.clone());
            far.normalisation = Normalisation { centre, scale };
            let path = temp("far.safetensors");
            assert!(save_model(&far, &path).is_err(), "{centre:?} {scale}");
            crate::util::write_atomically(&path, &serialise(&far).unwrap()).unwrap();
            let err = load_model(&path, Device::Cpu).unwrap_err().to_string();
            assert!(
                err.contains("single precision") && err.contains("retrain"),
                "{centre:?} {scale}: {err}"
            );
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hisdf-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn points() -> Vec<[f32; 3]> {
        (0..500)
            .map(|i| {
                let t = i as f32 * 0.37;
                [t.sin() * 9.0, t.cos() * 7.0 - 2.0, (t * 0.5).sin() * 5.0]
            })
            .collect()
    }

    #[test]
    fn round_trip_gives_identical_queries_for_every_architecture() {
        let configs = [
            NetworkConfig {
                depth: 3,
                width: 32,
                ..NetworkConfig::default()
            },
            NetworkConfig {
                depth: 4,
                width: 16,
                weight_norm: true,
                skip: Some(2),
                dropout: 0.1,
                activation: Activation::Softplus { beta: 100.0 },
                tanh_output: false,
                initialisation: Initialisation::Geometric { radius: 0.5 },
                encoding: Encoding::None,
            },
            NetworkConfig {
                depth: 3,
                width: 16,
                weight_norm: true,
                skip: Some(2),
                encoding: Encoding::Fourier { frequencies: 6 },
                initialisation: Initialisation::Geometric { radius: 0.5 },
                ..NetworkConfig::default()
            },
            NetworkConfig {
                depth: 3,
                width: 16,
                skip: Some(1),
                dropout: 0.1,
                encoding: Encoding::Fourier { frequencies: 3 },
                activation: Activation::Sine { omega0: 30.0 },
                initialisation: Initialisation::Siren,
                ..NetworkConfig::default()
            },
        ];
        for (i, config) in configs.into_iter().enumerate() {
            let original = model(config);
            let path = temp(&format!("round-{i}.safetensors"));
            save_model(&original, &path).unwrap();
            let loaded = load_model(&path, Device::Cpu).unwrap();
            assert_eq!(loaded.network.config, original.network.config);
            assert_eq!(loaded.normalisation, original.normalisation);
            assert_eq!(loaded.metadata, original.metadata);
            // Bit-identical: the file stores the exact f32 weights.
            assert_eq!(loaded.query(&points()), original.query(&points()));
        }
    }

    fn rewrite_metadata(path: &Path, key: &str, value: &str) {
        let bytes = std::fs::read(path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        meta.insert(key.into(), value.into());
        let tensors = SafeTensors::deserialize(&bytes).unwrap();
        let views: Vec<(String, TensorView)> = tensors.tensors().into_iter().collect();
        let out = safetensors::serialize(views, Some(meta)).unwrap();
        std::fs::write(path, out).unwrap();
    }

    /// The surface is kept, and a file written before shells existed (its
    /// training metadata without one) reads as a solid.
    #[test]
    fn the_surface_round_trips_and_old_files_read_as_solid() {
        let path = temp("surface");
        let original = model(NetworkConfig::default());
        save_model(&original, &path).unwrap();
        let loaded = load_model(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.metadata.surface, original.metadata.surface);
        let mut old = serde_json::to_value(&original.metadata).unwrap();
        old.as_object_mut().unwrap().remove("surface");
        rewrite_metadata(&path, "training", &old.to_string());
        let loaded = load_model(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.metadata.surface, crate::mesh::Surface::Solid);
    }

    #[test]
    fn a_file_from_a_future_version_is_refused() {
        let path = temp("future.safetensors");
        save_model(
            &model(NetworkConfig {
                depth: 2,
                width: 8,
                ..NetworkConfig::default()
            }),
            &path,
        )
        .unwrap();
        rewrite_metadata(
            &path,
            "format_version",
            &(MODEL_FORMAT_VERSION + 1).to_string(),
        );
        let err = load_model(&path, Device::Cpu).unwrap_err();
        assert!(matches!(err, ModelFileError::FutureVersion { .. }), "{err}");
        assert!(err.to_string().contains("newer hisdf"), "{err}");
    }

    #[test]
    fn corrupted_files_are_refused() {
        let good = temp("good.safetensors");
        save_model(
            &model(NetworkConfig {
                depth: 2,
                width: 8,
                ..NetworkConfig::default()
            }),
            &good,
        )
        .unwrap();
        let bytes = std::fs::read(&good).unwrap();

        // A flipped bit in the last weight: sizes still match, the checksum
        // does not.
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 0x10;
        let path = temp("flipped.safetensors");
        std::fs::write(&path, &flipped).unwrap();
        let err = load_model(&path, Device::Cpu).unwrap_err();
        assert!(matches!(err, ModelFileError::Corrupted { .. }), "{err}");

        for (name, data) in [
            ("truncated", &bytes[..bytes.len() / 2]),
            ("empty", &bytes[..0]),
            (
                "garbage",
                &b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a model at all"[..],
            ),
        ] {
            let path = temp(&format!("{name}.safetensors"));
            std::fs::write(&path, data).unwrap();
            let err = load_model(&path, Device::Cpu).unwrap_err();
            assert!(
                matches!(
                    err,
                    ModelFileError::NotAModel { .. } | ModelFileError::Corrupted { .. }
                ),
                "{name}: {err}"
            );
            // The message says what is wrong in words and what to do, never
            // a library's variant name.
            let msg = err.to_string();
            for raw in ["Metadata", "Header", "Utf8", "Error {", "valid_up_to"] {
                assert!(!msg.contains(raw), "{name}: {msg}");
            }
            assert!(msg.contains("retrain"), "{name}: {msg}");
        }
        let err = model_from_bytes(&bytes[..bytes.len() / 2], Device::Cpu).unwrap_err();
        assert!(
            err.to_string().contains("truncated"),
            "a half file should be called truncated: {err}"
        );

        let path = temp("bad-config.safetensors");
        std::fs::copy(&good, &path).unwrap();
        rewrite_metadata(&path, "network", "{\"depth\": 0}");
        assert!(matches!(
            load_model(&path, Device::Cpu).unwrap_err(),
            ModelFileError::Corrupted { .. }
        ));
    }
}
