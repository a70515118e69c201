//! Train stage: fit f_theta to the samples with Adam (paper Sec. 4.3).

mod loss;
mod mixed;
mod native;
mod scheduler;

pub use loss::{clamp_delta, CurriculumStage, Loss, LossState, PredictionClamp};
pub use native::{
    cuda_graphs_available, cuda_memory, set_tf32, tf32_enabled, CudaGraph, FusedAdam, Tf32,
};
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
    /// The report before the first iteration of training with `config`.
    pub fn before_training(config: &TrainConfig) -> Progress {
        Progress {
            iteration: 0,
            iterations: config.iterations,
            loss: f64::NAN,
            learning_rate: config.learning_rate,
            elapsed_seconds: 0.0,
        }
    }

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
    #[error("CUDA was requested but libtorch sees no CUDA device; train on the CPU device, or install a CUDA build of libtorch and its driver")]
    NoCuda,
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    #[error("the training set is empty; sample more points (a mesh with a surface gives some)")]
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
    let input = TrainInput {
        samples,
        normalisation,
        network: network_config,
        config,
    };
    let mut results = train_batch(&[input], &mut |_, p| progress(p))?;
    results.pop().expect("one result per input")
}

/// One network's share of [`train_batch`]: its training set, the frame it
/// is in, its network and its settings.
#[derive(Clone, Copy)]
pub struct TrainInput<'a> {
    pub samples: &'a Samples,
    pub normalisation: Normalisation,
    pub network: &'a NetworkConfig,
    pub config: &'a TrainConfig,
}

/// Why these networks cannot be trained in one step, if they cannot. They
/// must share the architecture (their initialisations may differ) and every
/// training setting but the seed, the learning rate and its schedule; and
/// more than one must be plain ReLU networks (the batched step is the
/// hand-written one).
pub fn batch_incompatibility(inputs: &[TrainInput]) -> Option<String> {
    let first = inputs.first()?;
    for (j, input) in inputs.iter().enumerate().skip(1) {
        let mut network = input.network.clone();
        network.initialisation = first.network.initialisation;
        if network != *first.network {
            return Some(format!(
                "network {j} differs from network 0 (networks trained together share an architecture)"
            ));
        }
        let mut config = input.config.clone();
        config.seed = first.config.seed;
        config.learning_rate = first.config.learning_rate;
        config.scheduler = first.config.scheduler.clone();
        if config != *first.config {
            return Some(format!(
                "the training settings of network {j} differ from network 0's in more than \
                 the seed, the learning rate and its schedule"
            ));
        }
    }
    if inputs.len() > 1 {
        if let Some(why) = MixedStep::unsupported(first.network) {
            return Some(format!(
                "{why}, so these networks cannot share one step; train them one at a time"
            ));
        }
    }
    None
}

/// Trains K networks at once, each on its own samples with its own seed,
/// learning rate and schedule, as if each were trained alone by [`train`]:
/// the same seed draws the same initial weights and the same batches, and
/// the networks share nothing but the kernels of one step (each layer is
/// one batched product over the K networks), which fills a GPU that one
/// small network leaves mostly idle.
///
/// `progress(j, p)` reports network j as [`train`]'s callback does;
/// `false` stops that network (its model is the last completed iteration's,
/// marked cancelled) and the others go on. A network whose loss diverges
/// gets its error and the others go on. The outer error is for the whole
/// batch: settings that cannot run or cannot share a step
/// ([`batch_incompatibility`]), or libtorch failing.
pub fn train_batch(
    inputs: &[TrainInput],
    progress: &mut dyn FnMut(usize, &Progress) -> bool,
) -> Result<Vec<Result<TrainedModel, TrainError>>, TrainError> {
    train_batch_refined(inputs, &mut NoRefinement, progress)
}

/// Replaces part of a network's training set while it trains (error-driven
/// refinement): the trainer asks when, hands over the network as trained so
/// far, and copies what comes back over the tail of that network's set in
/// place, so a captured CUDA graph goes on reading the new samples.
pub trait Refiner {
    /// The iteration before which network `j`'s set is refined, if any.
    fn refine_at(&self, j: usize) -> Option<usize>;
    /// The new tail of network `j`'s set (at most the whole set), given
    /// the network as trained so far; `None` keeps the set.
    fn refine(&mut self, j: usize, network: &SdfNetwork) -> Option<Samples>;
}

/// Training sets that stay as they are.
pub struct NoRefinement;

impl Refiner for NoRefinement {
    fn refine_at(&self, _j: usize) -> Option<usize> {
        None
    }
    fn refine(&mut self, _j: usize, _network: &SdfNetwork) -> Option<Samples> {
        None
    }
}

/// [`train_batch`] with a [`Refiner`].
pub fn train_batch_refined(
    inputs: &[TrainInput],
    refiner: &mut dyn Refiner,
    progress: &mut dyn FnMut(usize, &Progress) -> bool,
) -> Result<Vec<Result<TrainedModel, TrainError>>, TrainError> {
    let first = *inputs
        .first()
        .ok_or_else(|| TrainError::InvalidConfig("no network to train".into()))?;
    for input in inputs {
        input.config.validate()?;
        if input.samples.is_empty() {
            return Err(TrainError::NoSamples);
        }
    }
    if let Some(why) = batch_incompatibility(inputs) {
        return Err(TrainError::InvalidConfig(why));
    }
    let config = first.config;
    let models = inputs.len();
    let device = config.device.resolve()?;
    let networks = inputs
        .iter()
        .map(|i| SdfNetwork::new(i.network, device, i.config.seed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TrainError::InvalidConfig)?;
    // bf16 applies on CUDA to the networks the mixed step covers; the CPU
    // trains in float32 whatever is asked, as it does for TF32, and another
    // network takes the TF32 step, so the `detail` preset's bf16 still
    // trains a network a user changed (a skip, sine, dropout).
    let mut precision = config.precision;
    if precision == Precision::Bf16 {
        if let Some(why) = MixedStep::unsupported(first.network) {
            log::warn!("{why}; training in tf32 instead");
            precision = Precision::Tf32;
        }
    }
    let bf16 = device.is_cuda() && precision == Precision::Bf16;
    let rates: Vec<f64> = inputs.iter().map(|i| i.config.learning_rate).collect();
    // One network trains through autograd unless it takes the bf16 step;
    // several always take the hand-written (batched) step, in the compute
    // kind the precision asks for.
    let (mixed, mut adams) = if models > 1 || bf16 {
        let refs: Vec<&SdfNetwork> = networks.iter().collect();
        let compute = if bf16 { Kind::BFloat16 } else { Kind::Float };
        let m = MixedStep::new(&refs, compute).map_err(TrainError::InvalidConfig)?;
        let adams = m.optimizers(&rates);
        (Some(m), adams)
    } else {
        let params = networks[0]
            .parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        (None, vec![FusedAdam::new(params, rates[0])])
    };
    let _tf32 = Tf32::when(device.is_cuda() && precision == Precision::Tf32);

    // Every training set lives on the device, one after the other. Batch
    // indices come from each network's own seeded generator (libtorch's is
    // global, shared by every thread of the host), offset into its set, and
    // are uploaded a block of iterations at a time, so nothing crosses to
    // the device per iteration.
    let sizes: Vec<u64> = inputs.iter().map(|i| i.samples.len() as u64).collect();
    let seeds: Vec<u64> = inputs.iter().map(|i| i.config.seed).collect();
    let mut batches = BatchIndices::new(&sizes, config.batch_size, &seeds, device);
    let (points, targets) = concatenated(inputs, device);
    let k = models as i64;
    let step = Step {
        points,
        targets,
        batch: Tensor::zeros([k, config.batch_size as i64], (Kind::Int64, device)),
        loss_sum: Tensor::zeros([k], (Kind::Float, device)),
        last_loss: Tensor::zeros([k], (Kind::Float, device)),
        network: &networks[0],
        loss: &config.loss,
        mixed,
    };
    let mut loss_state = config.loss.state_with(device, config.prediction_clamp);
    // Dropout draws from libtorch's generator, whose state a replayed graph
    // would not advance the way eager execution does: keep such runs eager.
    let use_graph = config.cuda_graph
        && device.is_cuda()
        && first.network.dropout == 0.0
        && native::cuda_graphs_available();
    let mut graph: Option<CudaGraph> = None;

    let mut members: Vec<Member> = inputs
        .iter()
        .map(|i| Member {
            scheduler: i.config.scheduler.clone(),
            completed: 0,
            last_loss: f64::NAN,
            active: true,
            cancelled: false,
            error: None,
        })
        .collect();
    let every_loss = members.iter().any(|m| m.scheduler.needs_every_loss());
    let iterations = config.iterations;
    let start = Instant::now();
    let mut pending_count = 0usize;
    let offsets: Vec<i64> = sizes
        .iter()
        .scan(0i64, |start, &n| {
            let here = *start;
            *start += n as i64;
            Some(here)
        })
        .collect();
    let result = (|| -> Result<(), TrainError> {
        for iteration in 0..iterations {
            for (j, _) in members.iter().enumerate().filter(|(_, m)| m.active) {
                if refiner.refine_at(j) != Some(iteration) {
                    continue;
                }
                if let Some(m) = &step.mixed {
                    m.write_back(j, &networks[j]);
                }
                if let Some(new) = refiner.refine(j, &networks[j]) {
                    replace_tail(&step, offsets[j], sizes[j] as i64, &new)?;
                }
            }
            config.loss.advance(&mut loss_state, iteration);
            for (j, m) in members.iter().enumerate().filter(|(_, m)| m.active) {
                if let Some(lr) = m.scheduler.planned(iteration, iterations, rates[j]) {
                    // A device fill before the step (or its graph) reads it.
                    if lr != adams[j].learning_rate() {
                        adams[j].set_learning_rate(lr);
                    }
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
                    match CudaGraph::capture(device, || step.run(&mut adams, &loss_state)) {
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
                    .run(&mut adams, &loss_state)
                    .map_err(TrainError::Native)?,
            }
            let completed = iteration + 1;
            pending_count += 1;
            for m in members.iter_mut().filter(|m| m.active) {
                m.completed = completed;
            }

            if every_loss {
                // ReduceLROnPlateau decides on every iteration's loss, as in
                // the paper's PyTorch code: one synchronisation per step.
                let values = to_vec(&step.last_loss)?;
                for (j, m) in members.iter_mut().enumerate().filter(|(_, m)| m.active) {
                    if !m.scheduler.needs_every_loss() {
                        continue;
                    }
                    if m.diverges(values[j], iteration, &mut adams[j]) {
                        continue;
                    }
                    if let Some(new_lr) = m.scheduler.step(values[j], adams[j].learning_rate()) {
                        adams[j].set_learning_rate(new_lr);
                        log::debug!(
                            "network {j}, iteration {completed}: learning rate reduced to {new_lr:e}"
                        );
                    }
                }
            }
            if completed % config.progress_every == 0 || completed == iterations {
                let sums = to_vec(&step.loss_sum)?;
                let _ = step.loss_sum.shallow_clone().zero_();
                for (j, m) in members.iter_mut().enumerate().filter(|(_, m)| m.active) {
                    let loss = sums[j] / pending_count as f64;
                    if m.diverges(loss, iteration, &mut adams[j]) {
                        continue;
                    }
                    m.last_loss = loss;
                    let p = Progress {
                        iteration: completed,
                        iterations,
                        loss,
                        learning_rate: adams[j].learning_rate(),
                        elapsed_seconds: start.elapsed().as_secs_f64(),
                    };
                    if !progress(j, &p) {
                        m.cancelled = completed < iterations;
                        m.freeze(&mut adams[j]);
                    }
                }
                pending_count = 0;
                if members.iter().all(|m| !m.active) {
                    break;
                }
            }
        }
        Ok(())
    })();
    drop(graph);
    result?;
    if let Some(m) = &step.mixed {
        for (j, network) in networks.iter().enumerate() {
            m.write_back(j, network);
        }
    }
    drop(step);
    let seconds = start.elapsed().as_secs_f64();
    Ok(networks
        .into_iter()
        .zip(members)
        .zip(inputs)
        .map(|((network, m), input)| match m.error {
            Some(e) => Err(e),
            None => Ok(TrainedModel {
                network,
                normalisation: input.normalisation,
                metadata: TrainingMetadata {
                    iterations: m.completed,
                    final_loss: m.last_loss,
                    seconds,
                    device: format!("{device:?}"),
                    hisdf_version: env!("CARGO_PKG_VERSION").to_string(),
                    cancelled: m.cancelled,
                    // The caller, who knows the recipe, says what the field is.
                    surface: crate::mesh::Surface::Solid,
                },
            }),
        })
        .collect())
}

/// Where one network of a batch stands.
struct Member {
    scheduler: Scheduler,
    completed: usize,
    last_loss: f64,
    /// Still training: not finished, cancelled or diverged.
    active: bool,
    cancelled: bool,
    error: Option<TrainError>,
}

impl Member {
    /// Stops this network's training while the others go on: at a rate of
    /// zero Adam leaves its parameters as they are.
    fn freeze(&mut self, adam: &mut FusedAdam) {
        self.active = false;
        adam.set_learning_rate(0.0);
    }

    /// Records divergence (and freezes) when `loss` is not finite.
    fn diverges(&mut self, loss: f64, iteration: usize, adam: &mut FusedAdam) -> bool {
        match check_finite(loss, iteration) {
            Ok(()) => false,
            Err(e) => {
                self.error = Some(e);
                self.freeze(adam);
                true
            }
        }
    }
}

/// A [K] device tensor on the host.
fn to_vec(t: &Tensor) -> Result<Vec<f64>, TrainError> {
    Ok(Vec::<f64>::try_from(&t.to_kind(Kind::Double))?)
}

/// Every training set's points ([N, 3]) and SDF values ([N]), one after the
/// other, on `device`.
fn concatenated(inputs: &[TrainInput], device: Device) -> (Tensor, Tensor) {
    let total: usize = inputs.iter().map(|i| i.samples.len()).sum();
    let mut points: Vec<f32> = Vec::with_capacity(3 * total);
    let mut sdf: Vec<f32> = Vec::with_capacity(total);
    for input in inputs {
        points.extend_from_slice(crate::model::as_flat(&input.samples.points));
        sdf.extend_from_slice(&input.samples.sdf);
    }
    (
        Tensor::from_slice(&points)
            .view([total as i64, 3])
            .to_device(device),
        Tensor::from_slice(&sdf).to_device(device),
    )
}

/// Copies `new` over the last `new.len()` samples of the set that starts
/// at `start` and holds `size`, in place on the device.
fn replace_tail(step: &Step, start: i64, size: i64, new: &Samples) -> Result<(), TrainError> {
    let n = new.len() as i64;
    if n > size || new.points.len() != new.sdf.len() {
        return Err(TrainError::Native(format!(
            "refinement returned {} points and {} values for a set of {size}",
            new.points.len(),
            new.sdf.len()
        )));
    }
    if n == 0 {
        return Ok(());
    }
    let _guard = tch::no_grad_guard();
    let device = step.points.device();
    let at = start + size - n;
    let points = Tensor::from_slice(crate::model::as_flat(&new.points))
        .view([n, 3])
        .to_device(device);
    let values = Tensor::from_slice(&new.sdf).to_device(device);
    step.points.narrow(0, at, n).copy_(&points);
    step.targets.narrow(0, at, n).copy_(&values);
    Ok(())
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
    /// [K, B] indices into `points`, every network's batch.
    batch: Tensor,
    /// [K] sums of the losses since the last report, and the last losses.
    loss_sum: Tensor,
    last_loss: Tensor,
    network: &'a SdfNetwork,
    loss: &'a Loss,
    /// The hand-written step, when training in bf16 or several networks.
    mixed: Option<MixedStep>,
}

impl Step<'_> {
    fn run(&self, adams: &mut [FusedAdam], loss_state: &LossState) -> Result<(), String> {
        let size = self.batch.size();
        let idx = self.batch.view([-1]);
        let x = self
            .points
            .index_select(0, &idx)
            .view([size[0], size[1], 3]);
        let s = self.targets.index_select(0, &idx).view([size[0], size[1]]);
        let loss = match &self.mixed {
            Some(m) => m.run(self.network, &x, &s, self.loss, loss_state, adams)?,
            None => {
                let adam = &mut adams[0];
                adam.zero_grad();
                let f = self.network.forward_t(&x.get(0), true);
                let loss = self.loss.evaluate_with(&f, &s.get(0), loss_state);
                loss.backward();
                adam.step()?;
                loss.unsqueeze(0)
            }
        };
        let _guard = tch::no_grad_guard();
        let _ = self.loss_sum.shallow_clone().g_add_(&loss);
        self.last_loss.shallow_clone().copy_(&loss);
        Ok(())
    }
}

/// Uniform batch indices (with replacement, like the paper's random subset
/// per iteration) for every network of a batch, generated on the host in
/// blocks of iterations. Network j draws from its own generator in the same
/// order whatever the block size or the other networks, so it sees the
/// batches it would see trained alone.
struct BatchIndices {
    rngs: Vec<Pcg64Mcg>,
    sizes: Vec<u64>,
    /// Where each network's samples start in the concatenated sets.
    offsets: Vec<i64>,
    batch: usize,
    block: Tensor,
    used: i64,
    per_block: i64,
    device: Device,
}

impl BatchIndices {
    /// About 8 MB of indices per upload.
    const BLOCK_INDICES: usize = 1 << 20;

    fn new(sizes: &[u64], batch: usize, seeds: &[u64], device: Device) -> Self {
        let per_block = (Self::BLOCK_INDICES / (batch * sizes.len())).max(1) as i64;
        let offsets = sizes
            .iter()
            .scan(0i64, |at, &n| {
                let here = *at;
                *at += n as i64;
                Some(here)
            })
            .collect();
        BatchIndices {
            rngs: seeds
                .iter()
                .map(|&seed| Pcg64Mcg::seed_from_u64(seed ^ 0x0BA7_C4E5_0000))
                .collect(),
            sizes: sizes.to_vec(),
            offsets,
            batch,
            block: Tensor::empty([0], (Kind::Int64, Device::Cpu)),
            used: per_block,
            per_block,
            device,
        }
    }

    /// The next iteration's [K, B] indices.
    fn next(&mut self) -> Tensor {
        if self.used == self.per_block {
            let k = self.sizes.len();
            let mut idx: Vec<i64> = Vec::with_capacity(self.per_block as usize * k * self.batch);
            for _ in 0..self.per_block {
                for j in 0..k {
                    let (n, offset) = (self.sizes[j], self.offsets[j]);
                    let rng = &mut self.rngs[j];
                    idx.extend((0..self.batch).map(|_| rng.random_range(0..n) as i64 + offset));
                }
            }
            self.block = Tensor::from_slice(&idx)
                .view([self.per_block, k as i64, self.batch as i64])
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

    /// A refiner that, at its iteration, replaces the whole set by the same
    /// points with SDF `value` everywhere, and notes what the network
    /// answered at the origin then.
    #[derive(Debug)]
    struct Constant {
        at: usize,
        value: f32,
        points: Vec<[f32; 3]>,
        seen_at_origin: Vec<f32>,
    }

    impl Refiner for Constant {
        fn refine_at(&self, _j: usize) -> Option<usize> {
            Some(self.at)
        }
        fn refine(&mut self, _j: usize, network: &SdfNetwork) -> Option<Samples> {
            self.seen_at_origin
                .push(network.evaluate(&[[0.0, 0.0, 0.0]], 1)[0]);
            Some(Samples {
                points: self.points.clone(),
                sdf: vec![self.value; self.points.len()],
            })
        }
    }

    /// The small network trained alone on `samples` with a refiner.
    fn train_refined(
        samples: &Samples,
        config: &TrainConfig,
        refiner: &mut dyn Refiner,
    ) -> Result<Vec<Result<TrainedModel, TrainError>>, TrainError> {
        let input = TrainInput {
            samples,
            normalisation: Normalisation::identity(),
            network: &small_net(),
            config,
        };
        train_batch_refined(&[input], refiner, &mut |_, _| true)
    }

    /// The refined samples are what the step trains on from then on (also
    /// when the step is a replayed CUDA graph), and the refiner sees the
    /// network as trained so far (also the bf16 step's, written back).
    #[test]
    fn refinement_replaces_the_training_set_in_place() {
        let samples = cube_samples(4000);
        let mut variants = vec![(DeviceChoice::Cpu, true, Precision::Fp32)];
        if tch::Cuda::is_available() {
            for graph in [false, true] {
                for precision in [Precision::Tf32, Precision::Bf16] {
                    variants.push((DeviceChoice::Cuda, graph, precision));
                }
            }
        }
        for (device, graph, precision) in variants {
            let mut config = small_config(600);
            config.device = device;
            config.cuda_graph = graph;
            config.precision = precision;
            config.scheduler = Scheduler::None;
            let mut refiner = Constant {
                at: 300,
                value: 0.05,
                points: samples.points.clone(),
                seen_at_origin: Vec::new(),
            };
            let model = train_refined(&samples, &config, &mut refiner)
                .unwrap()
                .pop()
                .unwrap()
                .unwrap();
            let what = format!("{device:?} graph {graph} {precision:?}");
            // Inside the cube before, at the new constant after.
            assert_eq!(refiner.seen_at_origin.len(), 1, "{what}");
            assert!(refiner.seen_at_origin[0] < 0.0, "{what}: {refiner:?}");
            let q = model.query(&[[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]]);
            for v in q {
                assert!((v - 0.05).abs() < 0.03, "{what}: {v}");
            }
        }
    }

    /// A refiner that returns more samples than the set holds is a bug that
    /// stops training with an error, not a write past the set.
    #[test]
    fn refinement_larger_than_the_set_is_refused() {
        let samples = cube_samples(1000);
        let config = small_config(20);
        let mut refiner = Constant {
            at: 5,
            value: 0.0,
            points: vec![[0.0; 3]; 1001],
            seen_at_origin: Vec::new(),
        };
        let Err(e) = train_refined(&samples, &config, &mut refiner) else {
            panic!("a refinement larger than the set was accepted");
        };
        assert!(e.to_string().contains("1001 points"), "{e}");
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

    /// Three training sets trained in one batch give the models `train`
    /// gives each alone with the same seed (same initial weights, same
    /// batches; the batched step's float32 arithmetic is autograd's up to
    /// rounding).
    #[test]
    fn a_batch_trains_each_network_as_it_trains_alone() {
        let sets = [cube_samples(4000), cube_samples(3000), cube_samples(5000)];
        let mut configs = vec![small_config(60); 3];
        configs[1].seed = 7;
        configs[2].learning_rate = 5e-4;
        configs[2].scheduler = Scheduler::None;
        let net = small_net();
        let inputs: Vec<TrainInput> = sets
            .iter()
            .zip(&configs)
            .map(|(samples, config)| TrainInput {
                samples,
                normalisation: Normalisation::identity(),
                network: &net,
                config,
            })
            .collect();
        let mut reports = vec![0usize; 3];
        let batch = train_batch(&inputs, &mut |j, _| {
            reports[j] += 1;
            true
        })
        .unwrap();
        assert_eq!(reports, [6, 6, 6]);
        let probe = [[0.1, 0.2, 0.3], [0.0, 0.0, 0.9], [0.3, -0.2, 0.1]];
        for (j, result) in batch.into_iter().enumerate() {
            let together = result.unwrap();
            assert_eq!(together.metadata.iterations, 60);
            assert!(!together.metadata.cancelled);
            let alone = train(
                &sets[j],
                Normalisation::identity(),
                &net,
                &configs[j],
                &mut |_| true,
            )
            .unwrap();
            let (a, b) = (together.query(&probe), alone.query(&probe));
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() < 1e-4,
                    "network {j}: {a:?} together, {b:?} alone"
                );
            }
            let (la, lb) = (together.metadata.final_loss, alone.metadata.final_loss);
            assert!(
                (la - lb).abs() < 1e-4 * lb,
                "network {j}: loss {la} vs {lb}"
            );
        }
    }

    /// One network of a batch cancelled, another diverging: each gets its
    /// own outcome and the third trains to the end.
    #[test]
    fn a_batch_member_stops_or_fails_alone() {
        let mut bad = cube_samples(1000);
        bad.sdf[0] = f32::NAN;
        let sets = [cube_samples(1000), bad, cube_samples(1000)];
        let mut config = small_config(200);
        config.batch_size = 1000;
        config.scheduler = Scheduler::None;
        let net = small_net();
        let inputs: Vec<TrainInput> = sets
            .iter()
            .map(|samples| TrainInput {
                samples,
                normalisation: Normalisation::identity(),
                network: &net,
                config: &config,
            })
            .collect();
        let mut seen = vec![Vec::new(); 3];
        let results = train_batch(&inputs, &mut |j, p| {
            seen[j].push(p.iteration);
            !(j == 0 && p.iteration == 50)
        })
        .unwrap();
        let mut results = results.into_iter();
        let cancelled = results.next().unwrap().unwrap();
        assert!(cancelled.metadata.cancelled);
        assert_eq!(cancelled.metadata.iterations, 50);
        assert_eq!(seen[0], [10, 20, 30, 40, 50]);
        let err = results.next().unwrap().unwrap_err();
        assert!(matches!(err, TrainError::Diverged { .. }), "{err}");
        let last = results.next().unwrap().unwrap();
        assert_eq!(last.metadata.iterations, 200);
        assert_eq!(seen[2].len(), 20);
        assert!(last.query(&[[0.0, 0.0, 0.0]])[0] < 0.0);
    }

    #[test]
    fn networks_that_cannot_share_a_step_are_refused() {
        let samples = cube_samples(500);
        let config = small_config(10);
        let input = |network| TrainInput {
            samples: &samples,
            normalisation: Normalisation::identity(),
            network,
            config: &config,
        };
        let a = small_net();
        let wider = NetworkConfig {
            width: 64,
            ..small_net()
        };
        let skip = NetworkConfig {
            skip: Some(2),
            ..small_net()
        };
        let why = batch_incompatibility(&[input(&a), input(&wider)]).unwrap();
        assert!(why.contains("architecture"), "{why}");
        let why = batch_incompatibility(&[input(&skip), input(&skip)]).unwrap();
        assert!(why.contains("one at a time"), "{why}");
        assert!(batch_incompatibility(&[input(&skip)]).is_none());
        let mut longer = config.clone();
        longer.iterations = 20;
        let other = TrainInput {
            config: &longer,
            ..input(&a)
        };
        assert!(batch_incompatibility(&[input(&a), other]).is_some());
        assert!(matches!(
            train_batch(&[input(&a), input(&wider)], &mut |_, _| true),
            Err(TrainError::InvalidConfig(_))
        ));
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
