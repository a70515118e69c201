//! A trained network with the frame it was trained in: queries and
//! gradients in the user's coordinates, and what the training did.

use serde::{Deserialize, Serialize};

use super::SdfNetwork;
use crate::mesh::Normalisation;

/// What a training run did, kept in the model file for provenance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetadata {
    pub iterations: usize,
    pub final_loss: f64,
    pub seconds: f64,
    pub device: String,
    pub hisdf_version: String,
    pub cancelled: bool,
    /// What the network's field is: a solid's signed distance or a shell's
    /// band. Files written before shells existed read as solid.
    #[serde(default)]
    pub surface: crate::mesh::Surface,
}

/// A trained network together with the transform from the user's coordinates
/// into the unit-sphere frame it was trained in.
#[derive(Debug)]
pub struct TrainedModel {
    pub network: SdfNetwork,
    pub normalisation: Normalisation,
    pub metadata: TrainingMetadata,
}

impl TrainedModel {
    /// Chunk of points per forward pass: 2^18 points of an 8x512 network need
    /// about 1 GiB of activations, safe on any CUDA device and on the CPU.
    pub const QUERY_CHUNK: usize = 1 << 18;

    /// SDF values at points in the user's coordinates, in the user's units.
    pub fn query(&self, points: &[[f32; 3]]) -> Vec<f32> {
        let normalised: Vec<[f32; 3]> = points
            .iter()
            .map(|p| {
                let q = self
                    .normalisation
                    .to_normalised([p[0] as f64, p[1] as f64, p[2] as f64]);
                [q[0] as f32, q[1] as f32, q[2] as f32]
            })
            .collect();
        self.network
            .evaluate(&normalised, Self::QUERY_CHUNK)
            .into_iter()
            .map(|d| self.normalisation.distance_to_original(d as f64) as f32)
            .collect()
    }
}

impl TrainedModel {
    /// Points per backward pass: activations of every layer are kept for
    /// autograd, so a quarter of the forward-only chunk.
    pub const GRADIENT_CHUNK: usize = Self::QUERY_CHUNK / 4;

    /// d f / d x by autograd at points in the user's coordinates. The
    /// normalisation is a translation and a uniform scale and SDF values
    /// scale back by the same factor, so the gradient in the unit-sphere
    /// frame is the gradient in the user's frame unchanged. Near the surface
    /// a normalised gradient is the outward normal.
    pub fn gradient(&self, points: &[[f32; 3]]) -> Result<Vec<[f32; 3]>, tch::TchError> {
        let norm = self.normalisation;
        let normalised: Vec<[f32; 3]> = points
            .iter()
            .map(|p| norm.to_normalised(p.map(f64::from)).map(|c| c as f32))
            .collect();
        self.network.gradient(&normalised, Self::GRADIENT_CHUNK)
    }
}
