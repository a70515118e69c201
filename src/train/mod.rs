//! Train stage: fit f_theta to the samples with Adam (paper Sec. 4.3).

mod loss;
mod mixed;
mod native;
mod scheduler;

pub use loss::{clamp_delta, CurriculumStage, Loss, LossState, PredictionClamp};
pub use native::{cuda_graphs_available, set_tf32, tf32_enabled, CudaGraph, FusedAdam, Tf32};
pub use scheduler::{CosineDecay, ReduceLrOnPlateau, Scheduler};

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::mesh::Normalisation;
use crate::model::{NetworkConfig, SdfNetwork, TrainedModel, TrainingMetadata};
use crate::sampling::Samples;
use mixed::MixedStep;

/// Where to train. `Auto` takes CUDA when libtorch sees a GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<Device, TrainError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(TrainError::NoCuda),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            _ => Err(format!("unknown device {s:?} (expected cpu, cuda or auto)")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub iterations: usize,
    /// Samples per iteration (the paper's 10,000).
    pub batch_size: usize,
    pub learning_rate: f64,
    pub loss: Loss,
    pub scheduler: Scheduler,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Report progress (and read the loss back from the device) every this
    /// many iterations; between reports nothing waits for the device.
    pub progress_every: usize,
    /// Float32 everywhere, TF32 tensor-core matmuls, or bf16 hidden layers
    /// (CUDA only: the CPU always trains in float32).
    #[serde(default)]
    pub precision: Precision,
    /// Capture the training step as a CUDA graph and replay it (CUDA only):
    /// removes the per-kernel launch cost that dominates an 8x512 step.
    #[serde(default = "yes")]
    pub cuda_graph: bool,
    /// How the clamp applies to predictions (the paper clamps both sides).
    #[serde(default)]
    pub prediction_clamp: PredictionClamp,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Tf32,
    /// Mixed precision for training (src/train/mixed.rs): bf16 hidden
    /// layers with float32 accumulation, a float32 input layer, output,
    /// loss, master weights and Adam. It covers the plain ReLU network (any
    /// encoding); other networks train in TF32, with a warning, as every
    /// network trains in float32 on the CPU.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!(
                "unknown precision {s:?} (expected fp32, tf32 or bf16)"
            )),
        }
    }
}

impl Default for TrainConfig {
    /// The paper's L1 setting (Sec. 4.3): clamp 0.1, ReduceLROnPlateau, 10,000
    /// iterations of 10,000 samples.
    fn default() -> Self {
        TrainConfig {
            iterations: 10_000,
            batch_size: 10_000,
            learning_rate: 1e-3,
            loss: Loss::ClampedL1 { clamp: Some(0.1) },
            scheduler: Scheduler::Plateau(ReduceLrOnPlateau::paper()),
            seed: 0,
            device: DeviceChoice::Auto,
            progress_every: 100,
            // On CUDA: 2.7x faster steps with a final loss and an extracted
            // shape no worse than fp32 (docs/results.md). No effect on CPU.
            precision: Precision::Tf32,
            cuda_graph: true,
            prediction_clamp: PredictionClamp::Both,
        }
    }
}

/// The largest batch: 2^24 samples (an 8 x 512 network's activations for it
/// alone take 150 GB).
pub const MAX_BATCH_SIZE: usize = 1 << 24;

/// What the progress callback sees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub iteration: usize,
    pub iterations: usize,
    pub loss: f64,
    pub learning_rate: f64,
    pub elapsed_seconds: f64,
}

impl Progress {
    /// Seconds left at the mean pace so far; NaN before the first
    /// iteration.
    pub fn eta_seconds(&self) -> f64 {
        if self.iteration == 0 {
            return f64::NAN;
        }
        let left = self.iterations.saturating_sub(self.iteration);
        self.elapsed_seconds / self.iteration as f64 * left as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("CUDA was requested but libtorch sees no CUDA device")]
    NoCuda,
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    #[error("the training set is empty")]
    NoSamples,
    #[error("training diverged at iteration {iteration}: the loss became {loss}; lower the learning rate")]
    Diverged { iteration: usize, loss: f64 },
    #[error("libtorch failed: {0}")]
    Torch(#[from] tch::TchError),
    #[error("libtorch failed: {0}")]
    Native(String),
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return bad(format!(
                "batch size must be 1..={MAX_BATCH_SIZE}, got {}",
                self.batch_size
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if self.progress_every == 0 {
            return bad("progress_every must be positive".into());
        }
        self.scheduler
            .validate()
            .map_err(TrainError::InvalidConfig)?;
        self.loss.validate().map_err(TrainError::InvalidConfig)
    }
}

/// Trains a network on `samples` (unit-sphere frame). `progress` is called
/// every `progress_every` iterations and at the end; returning `false` cancels,
/// and the model of the last completed iteration is returned with
/// `metadata.cancelled` set.
pub fn train(
    samples: &Samples,
    normalisation: Normalisation,
    network_config: &NetworkConfig,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<TrainedModel, TrainError> {
    config.validate()?;
    if samples.is_empty() {
        return Err(TrainError::NoSamples);
    }
    let device = config.device.resolve()?;
    let network =
        SdfNetwork::new(network_config, device, config.seed).map_err(TrainError::InvalidConfig)?;
    // bf16 applies on CUDA to the networks the mixed step covers; the CPU
    // trains in float32 whatever is asked, as it does for TF32, and another
    // network takes the TF32 step, so the `detail` preset's bf16 still
    // trains a network a user changed (a skip, sine, dropout).
    let mut precision = config.precision;
    if precision == Precision::Bf16 {
        if let Some(why) = MixedStep::unsupported(&network) {
            log::warn!("{why}; training in tf32 instead");
            precision = Precision::Tf32;
        }
    }
    let mixed = if device.is_cuda() && precision == Precision::Bf16 {
        Some(MixedStep::new(&network, Kind::BFloat16).map_err(TrainError::InvalidConfig)?)
    } else {
        None
    };
    let mut adam = match &mixed {
        Some(m) => m.optimizer(config.learning_rate),
        None => {
            let params = network.parameters().into_iter().map(|(_, t)| t).collect();
            FusedAdam::new(params, config.learning_rate)
        }
    };
    let _tf32 = Tf32::when(device.is_cuda() && precision == Precision::Tf32);

    // The whole training set lives on the device. Batch indices come from
    // our own seeded generator (libtorch's is global, shared by every thread
    // of the host) and are uploaded a block of iterations at a time, so
    // nothing crosses to the device per iteration.
    let n = samples.len() as i64;
    let mut batches = BatchIndices::new(n as u64, config.batch_size, config.seed, device);
    let step = Step {
        points: Tensor::from_slice(crate::model::as_flat(&samples.points))
            .view([n, 3])
            .to_device(device),
        targets: Tensor::from_slice(&samples.sdf).to_device(device),
        batch: Tensor::zeros([config.batch_size as i64], (Kind::Int64, device)),
        loss_sum: Tensor::zeros([], (Kind::Float, device)),
        last_loss: Tensor::zeros([], (Kind::Float, device)),
        network: &network,
        loss: &config.loss,
        mixed,
    };
    let mut loss_state = config.loss.state_with(device, config.prediction_clamp);
    // Dropout draws from libtorch's generator, whose state a replayed graph
    // would not advance the way eager execution does: keep such runs eager.
    let use_graph = config.cuda_graph
        && device.is_cuda()
        && network_config.dropout == 0.0
        && native::cuda_graphs_available();
    let mut graph: Option<CudaGraph> = None;

    let mut scheduler = config.scheduler.clone();
    let start = Instant::now();
    let mut last_loss = f64::NAN;
    let mut completed = 0;
    let mut cancelled = false;
    let mut pending_count = 0usize;
    let result = (|| -> Result<(), TrainError> {
        for iteration in 0..config.iterations {
            config.loss.advance(&mut loss_state, iteration);
            if let Some(lr) = scheduler.planned(iteration, config.iterations, config.learning_rate)
            {
                // A device fill before the step (or its graph) reads it.
                if lr != adam.learning_rate() {
                    adam.set_learning_rate(lr);
                }
            }
            {
                let _guard = tch::no_grad_guard();
                let mut batch = step.batch.shallow_clone();
                batch.copy_(&batches.next());
            }
            match &graph {
                Some(g) => g.replay().map_err(TrainError::Native)?,
                // A few eager steps first so that gradients, Adam's state and
                // cuBLAS's workspace exist before capture.
                None if use_graph && iteration >= GRAPH_WARMUP => {
                    match CudaGraph::capture(device, || step.run(&mut adam, &loss_state)) {
                        Ok(g) => {
                            g.replay().map_err(TrainError::Native)?;
                            graph = Some(g);
                        }
                        Err(e) => {
                            return Err(TrainError::Native(format!("CUDA graph capture: {e}")))
                        }
                    }
                }
                None => step
                    .run(&mut adam, &loss_state)
                    .map_err(TrainError::Native)?,
            }
            completed = iteration + 1;
            pending_count += 1;

            if scheduler.needs_every_loss() {
                // ReduceLROnPlateau decides on every iteration's loss, as in
                // the paper's PyTorch code: one synchronisation per step.
                let value = step.last_loss.double_value(&[]);
                check_finite(value, iteration)?;
                if let Some(new_lr) = scheduler.step(value, adam.learning_rate()) {
                    adam.set_learning_rate(new_lr);
                    log::debug!("iteration {completed}: learning rate reduced to {new_lr:e}");
                }
            }
            if completed % config.progress_every == 0 || completed == config.iterations {
                last_loss = step.loss_sum.double_value(&[]) / pending_count as f64;
                check_finite(last_loss, iteration)?;
                let _ = step.loss_sum.shallow_clone().zero_();
                pending_count = 0;
                let p = Progress {
                    iteration: completed,
                    iterations: config.iterations,
                    loss: last_loss,
                    learning_rate: adam.learning_rate(),
                    elapsed_seconds: start.elapsed().as_secs_f64(),
                };
                if !progress(&p) {
                    cancelled = completed < config.iterations;
                    break;
                }
            }
        }
        Ok(())
    })();
    drop(graph);
    result?;
    if let Some(m) = &step.mixed {
        m.write_back(&network);
    }
    let metadata = TrainingMetadata {
        iterations: completed,
        final_loss: last_loss,
        seconds: start.elapsed().as_secs_f64(),
        device: format!("{device:?}"),
        hisdf_version: env!("CARGO_PKG_VERSION").to_string(),
        cancelled,
    };
    Ok(TrainedModel {
        network,
        normalisation,
        metadata,
    })
}

/// Eager iterations before a CUDA graph is captured.
const GRAPH_WARMUP: usize = 3;

/// One training iteration on fixed buffers: the batch indices are copied
/// into `batch` beforehand and the loss is accumulated in place, so the same
/// kernels with the same addresses run every time and the step can be
/// captured as a CUDA graph.
struct Step<'a> {
    points: Tensor,
    targets: Tensor,
    batch: Tensor,
    loss_sum: Tensor,
    last_loss: Tensor,
    network: &'a SdfNetwork,
    loss: &'a Loss,
    /// The hand-written mixed-precision step, when training in bf16.
    mixed: Option<MixedStep>,
}

impl Step<'_> {
    fn run(&self, adam: &mut FusedAdam, loss_state: &LossState) -> Result<(), String> {
        let x = self.points.index_select(0, &self.batch);
        let s = self.targets.index_select(0, &self.batch);
        let loss = match &self.mixed {
            Some(m) => m.run(self.network, &x, &s, self.loss, loss_state, adam)?,
            None => {
                adam.zero_grad();
                let f = self.network.forward_t(&x, true);
                let loss = self.loss.evaluate_with(&f, &s, loss_state);
                loss.backward();
                adam.step()?;
                loss
            }
        };
        let _guard = tch::no_grad_guard();
        let _ = self.loss_sum.shallow_clone().g_add_(&loss);
        self.last_loss.shallow_clone().copy_(&loss);
        Ok(())
    }
}

/// Uniform batch indices (with replacement, like the paper's random subset
/// per iteration), generated on the host in blocks of iterations.
struct BatchIndices {
    rng: Pcg64Mcg,
    n: u64,
    batch: usize,
    block: Tensor,
    used: i64,
    per_block: i64,
    device: Device,
}

impl BatchIndices {
    /// About 8 MB of indices per upload.
    const BLOCK_INDICES: usize = 1 << 20;

    fn new(n: u64, batch: usize, seed: u64, device: Device) -> Self {
        let per_block = (Self::BLOCK_INDICES / batch).max(1) as i64;
        BatchIndices {
            rng: Pcg64Mcg::seed_from_u64(seed ^ 0x0BA7_C4E5_0000),
            n,
            batch,
            block: Tensor::empty([0], (Kind::Int64, Device::Cpu)),
            used: per_block,
            per_block,
            device,
        }
    }

    fn next(&mut self) -> Tensor {
        if self.used == self.per_block {
            let count = self.per_block as usize * self.batch;
            let idx: Vec<i64> = (0..count)
                .map(|_| self.rng.random_range(0..self.n) as i64)
                .collect();
            self.block = Tensor::from_slice(&idx)
                .view([self.per_block, self.batch as i64])
                .to_device(self.device);
            self.used = 0;
        }
        let row = self.block.get(self.used);
        self.used += 1;
        row
    }
}

fn check_finite(loss: f64, iteration: usize) -> Result<(), TrainError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Diverged { iteration, loss })
    }
}

/// Samples of the analytic SDF of a cube of half-size 0.35 (corners and
/// edges: detail a sphere lacks), for the training tests here and in the
/// model.
#[cfg(test)]
pub(crate) fn cube_samples(n: usize) -> Samples {
    let pts = crate::sampling::uniform_ball_points(n, 5);
    let sdf = pts
        .iter()
        .map(|p| {
            let q = p.map(|c| c.abs() - 0.35);
            let outside = q.map(|c| c.max(0.0));
            let out_len = (outside[0].powi(2) + outside[1].powi(2) + outside[2].powi(2)).sqrt();
            out_len + q[0].max(q[1]).max(q[2]).min(0.0)
        })
        .collect();
    Samples { points: pts, sdf }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Initialisation;

    /// Geometric initialisation: with PyTorch's default this 3x32 network
    /// settled on "outside everywhere" (loss stuck at ~0.025, the clamped
    /// error of the inside points), where the clamp zeroes every gradient.
    fn small_net() -> NetworkConfig {
        NetworkConfig {
            depth: 3,
            width: 32,
            tanh_output: true,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        }
    }

    fn small_config(iterations: usize) -> TrainConfig {
        TrainConfig {
            iterations,
            batch_size: 512,
            device: DeviceChoice::Cpu,
            progress_every: 10,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn short_training_lowers_the_loss() {
        let samples = cube_samples(20_000);
        let mut losses = Vec::new();
        let model = train(
            &samples,
            Normalisation::identity(),
            &small_net(),
            &small_config(300),
            &mut |p| {
                losses.push(p.loss);
                true
            },
        )
        .unwrap();
        assert_eq!(model.metadata.iterations, 300);
        assert_eq!(losses.len(), 30);
        let first = losses[0];
        let last = *losses.last().unwrap();
        assert!(
            last < 0.5 * first,
            "loss went from {first} to {last}: {losses:?}"
        );
        // The network now knows the sign at points well away from the surface.
        let q = model.query(&[[0.0, 0.0, 0.0], [0.0, 0.0, 0.95]]);
        assert!(q[0] < 0.0 && q[1] > 0.0, "{q:?}");
    }

    /// The CUDA path (fused Adam kernel, CUDA graph replay) must train as
    /// the CPU path does; skipped without a GPU.
    #[test]
    fn cuda_training_with_and_without_graphs_lowers_the_loss() {
        if !tch::Cuda::is_available() {
            return;
        }
        let samples = cube_samples(20_000);
        let variants = [
            (false, Precision::Tf32),
            (true, Precision::Tf32),
            (false, Precision::Bf16),
            (true, Precision::Bf16),
        ];
        for (graph, precision) in variants {
            let mut losses = Vec::new();
            let mut config = small_config(300);
            config.device = DeviceChoice::Cuda;
            config.cuda_graph = graph;
            config.precision = precision;
            config.scheduler = Scheduler::None;
            let model = train(
                &samples,
                Normalisation::identity(),
                &small_net(),
                &config,
                &mut |p| {
                    losses.push(p.loss);
                    true
                },
            )
            .unwrap();
            let (first, last) = (losses[0], *losses.last().unwrap());
            assert!(
                last < 0.5 * first,
                "graph {graph} {precision:?}: {losses:?}"
            );
            let q = model.query(&[[0.0, 0.0, 0.0], [0.0, 0.0, 0.95]]);
            assert!(
                q[0] < 0.0 && q[1] > 0.0,
                "graph {graph} {precision:?}: {q:?}"
            );
        }
    }

    /// bf16 on the CPU trains in float32 (as TF32 does), and a network the
    /// mixed step does not cover trains too (in TF32 on CUDA).
    #[test]
    fn bf16_trains_on_the_cpu_and_networks_the_mixed_step_does_not_cover() {
        let samples = cube_samples(5000);
        let mut config = small_config(20);
        config.precision = Precision::Bf16;
        let m = train(
            &samples,
            Normalisation::identity(),
            &small_net(),
            &config,
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(m.metadata.iterations, 20);
        let skip = NetworkConfig {
            skip: Some(2),
            ..small_net()
        };
        let m = train(
            &samples,
            Normalisation::identity(),
            &skip,
            &config,
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(m.metadata.iterations, 20);
        assert_eq!(m.network.config.skip, Some(2));
    }

    #[test]
    fn training_is_reproducible_with_a_seed() {
        let samples = cube_samples(5000);
        let run = || {
            let m = train(
                &samples,
                Normalisation::identity(),
                &small_net(),
                &small_config(20),
                &mut |_| true,
            )
            .unwrap();
            m.query(&[[0.1, 0.2, 0.3]])[0]
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn cancellation_returns_the_last_completed_iteration() {
        let samples = cube_samples(5000);
        let mut calls = 0;
        let model = train(
            &samples,
            Normalisation::identity(),
            &small_net(),
            &small_config(1000),
            &mut |_| {
                calls += 1;
                calls < 3
            },
        )
        .unwrap();
        assert!(model.metadata.cancelled);
        assert_eq!(model.metadata.iterations, 30);
        assert!(model.query(&[[0.0, 0.0, 0.0]])[0].is_finite());
    }

    #[test]
    fn divergence_is_an_error_not_a_model() {
        let mut samples = cube_samples(1000);
        samples.sdf[0] = f32::NAN;
        let mut config = small_config(200);
        config.batch_size = 1000;
        config.scheduler = Scheduler::None;
        let err = train(
            &samples,
            Normalisation::identity(),
            &small_net(),
            &config,
            &mut |_| true,
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::Diverged { .. }), "{err}");
    }

    #[test]
    fn bad_configs_are_refused() {
        let samples = cube_samples(100);
        let mut config = small_config(10);
        config.batch_size = 0;
        assert!(matches!(
            train(
                &samples,
                Normalisation::identity(),
                &small_net(),
                &config,
                &mut |_| true
            ),
            Err(TrainError::InvalidConfig(_))
        ));
        assert!(matches!(
            train(
                &Samples::default(),
                Normalisation::identity(),
                &small_net(),
                &small_config(10),
                &mut |_| true
            ),
            Err(TrainError::NoSamples)
        ));
    }
}
