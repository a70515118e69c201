//! The stages chained: what `hisdf train` / `run` and the C API's one-call
//! training do. Each stage stays usable on its own.

use serde::{Deserialize, Serialize};

use crate::mesh::{Centring, MeshError, Normalisation, TriangleMesh};
use crate::model::{Initialisation, NetworkConfig};
use crate::sampling::{GaussianShell, NearSurfaceConfig};
use crate::train::{Loss, ReduceLrOnPlateau, Scheduler, TrainConfig};

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
    /// GPU or fails to converge (see docs in README).
    Fast,
    /// The paper's L1 setting: 8x512, clamp 0.1, plateau scheduler, 10,000
    /// iterations, paper near-surface sampling.
    PaperL1,
    /// The paper's final setting: curriculum loss (Table 2), 15,000
    /// iterations, no scheduler.
    PaperCurriculum,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(Preset::Fast),
            "paper-l1" => Ok(Preset::PaperL1),
            "paper-curriculum" => Ok(Preset::PaperCurriculum),
            _ => Err(format!(
                "unknown preset {s:?} (expected fast, paper-l1 or paper-curriculum)"
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
                },
                network: NetworkConfig {
                    depth: 4,
                    width: 128,
                    tanh_output: true,
                    initialisation: Initialisation::Geometric { radius: 0.5 },
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
        }
    }
}

/// A mesh ready for the SDF: validated, degenerate triangles dropped, and
/// moved into the unit sphere.
pub struct PreparedMesh {
    pub original: TriangleMesh,
    pub normalised: TriangleMesh,
    pub normalisation: Normalisation,
    pub degenerate_dropped: usize,
}

pub fn prepare_mesh(mesh: TriangleMesh) -> Result<PreparedMesh, MeshError> {
    mesh.validate()?;
    let (clean, dropped) = mesh.without_degenerate();
    if clean.triangles.is_empty() {
        return Err(MeshError::Empty);
    }
    if dropped > 0 {
        log::warn!("skipped {dropped} degenerate triangles");
    }
    let normalisation = Normalisation::fit(&clean, Centring::VertexMean, 0.0);
    let normalised = normalisation.apply_to_mesh(&clean);
    Ok(PreparedMesh {
        original: mesh,
        normalised,
        normalisation,
        degenerate_dropped: dropped,
    })
}
