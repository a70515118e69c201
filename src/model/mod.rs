//! Model stage: the fully-connected network f_theta (paper Sec. 3) and the
//! model file that carries it between processes. `config.rs` holds the
//! network's settings, `network.rs` the network, `trained.rs` a trained
//! network with its frame, `file.rs` the model file, `validate.rs` the check
//! that a loaded model's numbers are finite in the precision it runs in.

mod config;
mod file;
mod network;
mod trained;
mod validate;

pub use config::{Activation, Encoding, Initialisation, NetworkConfig};
#[doc(hidden)]
pub use file::serialise as serialise_unchecked;
pub use file::{
    load_model, model_from_bytes, model_to_bytes, save_model, ModelFileError, MODEL_FORMAT_VERSION,
};
pub use network::{as_flat, SdfNetwork};
pub use trained::{TrainedModel, TrainingMetadata};

#[cfg(test)]
mod tests;
