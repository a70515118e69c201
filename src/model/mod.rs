//! Model stage: the fully-connected network f_theta (paper Sec. 3) and the
//! model file that carries it between processes.

mod file;

pub use file::{load_model, save_model, ModelFileError, MODEL_FORMAT_VERSION};

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::mesh::Normalisation;

/// How the weights start. The paper uses PyTorch's default; a geometric
/// initialisation (Atzmon & Lipman, SAL 2020) starts the network as the SDF of
/// a sphere, which keeps training from collapsing to a constant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Initialisation {
    /// PyTorch's `nn.Linear` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    /// weights and biases. tch's own default (Kaiming with ReLU gain) is
    /// larger and saturates the tanh output, so we never use it.
    PytorchDefault,
    /// The network starts as `|x| - radius` (in the unit-sphere frame).
    Geometric { radius: f64 },
}

/// The non-linearity between hidden layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// The paper's choice.
    #[default]
    Relu,
    /// softplus(beta x) / beta: a smooth ReLU (beta 100 is common for SDFs),
    /// whose gradients (normals) are continuous.
    Softplus { beta: f64 },
}

/// The network's shape. `depth` counts the hidden fully-connected layers of
/// `width` units, each followed by the activation; one more linear layer maps
/// to the SDF value, optionally through tanh. The paper's network is depth 8,
/// width 512, ReLU, tanh, no regularisation (Sec. 4.1); its ablations (weight
/// normalisation, dropout, a skip connection of the input into layer 4) are
/// options here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub depth: usize,
    pub width: usize,
    pub tanh_output: bool,
    pub initialisation: Initialisation,
    #[serde(default)]
    pub activation: Activation,
    /// Weight normalisation (Salimans & Kingma 2016) of every layer:
    /// w = g v / |v| per output unit, with v and g trained.
    #[serde(default)]
    pub weight_norm: bool,
    /// Dropout probability after every hidden activation, in training only.
    #[serde(default)]
    pub dropout: f64,
    /// Hidden layer (0-based) whose input is the previous layer's output
    /// concatenated with the input point, as in DeepSDF (the paper's
    /// "skip connection to layer 4" is `Some(4)`).
    #[serde(default)]
    pub skip: Option<usize>,
}

impl Default for NetworkConfig {
    /// The paper's network (Sec. 4.1.2).
    fn default() -> Self {
        NetworkConfig {
            depth: 8,
            width: 512,
            tanh_output: true,
            initialisation: Initialisation::PytorchDefault,
            activation: Activation::Relu,
            weight_norm: false,
            dropout: 0.0,
            skip: None,
        }
    }
}

/// One linear layer's place in the network.
struct LayerShape {
    prefix: String,
    fan_in: i64,
    fan_out: i64,
}

impl NetworkConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.depth == 0 || self.depth > 64 {
            return Err(format!("depth must be 1..=64, got {}", self.depth));
        }
        if self.width == 0 || self.width > 8192 {
            return Err(format!("width must be 1..=8192, got {}", self.width));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if let Some(k) = self.skip {
            if k == 0 || k > self.depth {
                return Err(format!(
                    "skip layer must be 1..={} (a later layer than the first), got {k}",
                    self.depth
                ));
            }
        }
        if let Activation::Softplus { beta } = self.activation {
            if !(beta.is_finite() && beta > 0.0) {
                return Err(format!("softplus beta must be positive, got {beta}"));
            }
        }
        Ok(())
    }

    fn layers(&self) -> Vec<LayerShape> {
        let mut layers = Vec::with_capacity(self.depth + 1);
        let mut fan_in = 3i64;
        for i in 0..=self.depth {
            let is_output = i == self.depth;
            if self.skip == Some(i) {
                fan_in += 3;
            }
            let fan_out = if is_output { 1 } else { self.width as i64 };
            let prefix = if is_output {
                "output".to_string()
            } else {
                format!("hidden.{i}")
            };
            layers.push(LayerShape {
                prefix,
                fan_in,
                fan_out,
            });
            fan_in = fan_out;
        }
        layers
    }

    /// Names and shapes of every parameter, in layer order. The model file
    /// stores exactly these, so this is the one place that fixes the layout.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let mut shapes = Vec::with_capacity(3 * self.depth + 3);
        for l in self.layers() {
            shapes.push((format!("{}.weight", l.prefix), vec![l.fan_out, l.fan_in]));
            if self.weight_norm {
                shapes.push((format!("{}.weight_g", l.prefix), vec![l.fan_out, 1]));
            }
            shapes.push((format!("{}.bias", l.prefix), vec![l.fan_out]));
        }
        shapes
    }
}

/// One linear layer: weight (the direction v under weight normalisation),
/// its magnitude g when normalised, and bias.
struct Layer {
    weight: Tensor,
    magnitude: Option<Tensor>,
    bias: Tensor,
}

impl Layer {
    fn apply(&self, x: &Tensor) -> Tensor {
        match &self.magnitude {
            None => x.linear(&self.weight, Some(&self.bias)),
            Some(g) => {
                let norm = self.weight.norm_scalaropt_dim(2.0, [1], true);
                let w = &self.weight * (g / norm);
                x.linear(&w, Some(&self.bias))
            }
        }
    }
}

/// The network f_theta: R^3 -> R in the unit-sphere frame.
pub struct SdfNetwork {
    pub config: NetworkConfig,
    pub vs: nn::VarStore,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for SdfNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdfNetwork")
            .field("config", &self.config)
            .field("device", &self.vs.device())
            .finish()
    }
}

impl SdfNetwork {
    /// A freshly initialised network. The weights come from our own seeded
    /// generator, not libtorch's global one, so two trainings in parallel
    /// threads (two Blender objects, a batch) stay reproducible.
    pub fn new(config: &NetworkConfig, device: Device, seed: u64) -> Result<SdfNetwork, String> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x1A17_1A15_E000_0000);
        let shapes = config.layers();
        let mut layers = Vec::with_capacity(shapes.len());
        for shape in &shapes {
            let fan_in = shape.fan_in as f64;
            let fan_out = shape.fan_out as f64;
            let is_output = shape.fan_out == 1 && shape.prefix == "output";
            let (w_init, b_init) = match config.initialisation {
                Initialisation::PytorchDefault => {
                    let bound = 1.0 / fan_in.sqrt();
                    (Draw::Uniform(bound), Draw::Uniform(bound))
                }
                Initialisation::Geometric { radius } => {
                    if is_output {
                        // Mean chosen so that the last layer sums the ReLU
                        // features into ~|x|; the bias subtracts the radius.
                        let mean = (std::f64::consts::PI / fan_in).sqrt();
                        (Draw::Normal(mean, 1e-5), Draw::Const(-radius))
                    } else {
                        (Draw::Normal(0.0, (2.0 / fan_out).sqrt()), Draw::Const(0.0))
                    }
                }
            };
            // Names with dots would become nested paths in tch; keep them flat.
            let var = |name: &str, dims: &[i64]| {
                root.var(
                    &format!("{}_{name}", shape.prefix.replace('.', "_")),
                    dims,
                    nn::Init::Const(0.0),
                )
            };
            let weight = var("weight", &[shape.fan_out, shape.fan_in]);
            let bias = var("bias", &[shape.fan_out]);
            let _guard = tch::no_grad_guard();
            for (t, draw) in [(&weight, w_init), (&bias, b_init)] {
                let values = draw.sample(&mut rng, t.numel());
                t.shallow_clone().copy_(
                    &Tensor::from_slice(&values)
                        .view(t.size().as_slice())
                        .to_device(device),
                );
            }
            // g starts as |v| so the normalised layer computes exactly what
            // the plain one would: the initialisation keeps its meaning.
            let magnitude = config.weight_norm.then(|| {
                let g = var("weight_g", &[shape.fan_out, 1]);
                g.shallow_clone()
                    .copy_(&weight.norm_scalaropt_dim(2.0, [1], true));
                g
            });
            layers.push(Layer {
                weight,
                magnitude,
                bias,
            });
        }
        Ok(SdfNetwork {
            config: config.clone(),
            vs,
            layers,
        })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// f_theta(x) for x of shape [N, 3]; returns [N]. Inference: no dropout.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }

    /// f_theta(x), with dropout active when `train` is set.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if self.config.skip == Some(i) {
                h = Tensor::cat(&[&h, x], 1);
            }
            h = layer.apply(&h);
            if i < last {
                h = match self.config.activation {
                    Activation::Relu => h.relu(),
                    Activation::Softplus { beta } => (h * beta).softplus() / beta,
                };
                if self.config.dropout > 0.0 {
                    h = h.dropout(self.config.dropout, train);
                }
            }
        }
        let h = h.squeeze_dim(-1);
        if self.config.tanh_output {
            h.tanh()
        } else {
            h
        }
    }

    /// Parameters in the order of `NetworkConfig::parameter_shapes`.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let names = self.config.parameter_shapes();
        let tensors = self.layers.iter().flat_map(|l| {
            std::iter::once(l.weight.shallow_clone())
                .chain(l.magnitude.as_ref().map(|g| g.shallow_clone()))
                .chain(std::iter::once(l.bias.shallow_clone()))
        });
        names.into_iter().map(|(n, _)| n).zip(tensors).collect()
    }

    /// Evaluates f_theta at many points in chunks so that any batch fits in
    /// device memory; returns values in the unit-sphere frame.
    pub fn evaluate(&self, points: &[[f32; 3]], chunk: usize) -> Vec<f32> {
        let _guard = tch::no_grad_guard();
        let device = self.device();
        let mut out = Vec::with_capacity(points.len());
        for part in points.chunks(chunk.max(1)) {
            let flat: &[f32] = as_flat(part);
            let x = Tensor::from_slice(flat)
                .view([part.len() as i64, 3])
                .to_device(device);
            let y = self.forward(&x).to_kind(Kind::Float).to_device(Device::Cpu);
            let mut buf = vec![0f32; part.len()];
            y.copy_data(&mut buf, part.len());
            out.extend_from_slice(&buf);
        }
        out
    }
}

/// How one parameter tensor's values are drawn.
#[derive(Clone, Copy)]
enum Draw {
    Uniform(f64),
    Normal(f64, f64),
    Const(f64),
}

impl Draw {
    fn sample(self, rng: &mut Pcg64Mcg, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| match self {
                Draw::Uniform(bound) => ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32,
                Draw::Normal(mean, stdev) => {
                    let z: f64 = StandardNormal.sample(rng);
                    (mean + stdev * z) as f32
                }
                Draw::Const(c) => c as f32,
            })
            .collect()
    }
}

/// Reinterprets point triples as one flat slice without copying.
pub fn as_flat(points: &[[f32; 3]]) -> &[f32] {
    // SAFETY: [f32; 3] has the layout of three consecutive f32 values.
    unsafe { std::slice::from_raw_parts(points.as_ptr() as *const f32, points.len() * 3) }
}

/// What a training run did, kept in the model file for provenance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetadata {
    pub iterations: usize,
    pub final_loss: f64,
    pub seconds: f64,
    pub device: String,
    pub hisdf_version: String,
    pub cancelled: bool,
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
        let device = self.network.device();
        let norm = self.normalisation;
        let mut out = Vec::with_capacity(points.len());
        for part in points.chunks(Self::GRADIENT_CHUNK) {
            let flat: Vec<f32> = part
                .iter()
                .flat_map(|p| norm.to_normalised(p.map(f64::from)).map(|c| c as f32))
                .collect();
            let grad = tch::with_grad(|| -> Result<Tensor, tch::TchError> {
                let x = Tensor::from_slice(&flat)
                    .view([part.len() as i64, 3])
                    .to_device(device)
                    .set_requires_grad(true);
                let y = self.network.forward(&x).sum(Kind::Float);
                // Gradients for x only: the parameters' .grad stay untouched.
                let mut g = Tensor::f_run_backward(&[&y], &[&x], false, false)?;
                Ok(g.remove(0))
            })?;
            let grad = grad.to_kind(Kind::Float).to_device(Device::Cpu);
            let mut buf = vec![0f32; part.len() * 3];
            grad.f_copy_data(&mut buf, part.len() * 3)?;
            out.extend(buf.chunks_exact(3).map(|c| [c[0], c[1], c[2]]));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_default_output_is_not_saturated() {
        let net = SdfNetwork::new(&NetworkConfig::default(), Device::Cpu, 0).unwrap();
        let x = Tensor::rand([1000, 3], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let y = net.forward(&x);
        let max = y.abs().max().double_value(&[]);
        // tch's default init gives |y| near 1 here (tanh saturated); the
        // PyTorch-style bound keeps outputs small, so gradients flow.
        assert!(max < 0.5, "output saturated: max |f| = {max}");
    }

    #[test]
    fn geometric_initialisation_is_close_to_a_sphere() {
        let config = NetworkConfig {
            depth: 4,
            width: 256,
            tanh_output: false,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        };
        let net = SdfNetwork::new(&config, Device::Cpu, 1).unwrap();
        let x = Tensor::randn([2000, 3], (Kind::Float, Device::Cpu)) * 0.5;
        let y = net.forward(&x);
        let truth = x.norm_scalaropt_dim(2.0, [1], false) - 0.5;
        let err = (y - truth).abs().mean(Kind::Float).double_value(&[]);
        // The SAL initialisation is exact only in the infinite-width limit.
        assert!(err < 0.15, "mean deviation from the sphere SDF {err}");
    }

    #[test]
    fn parameter_layout_matches_config() {
        let config = NetworkConfig {
            depth: 3,
            width: 16,
            ..NetworkConfig::default()
        };
        let net = SdfNetwork::new(&config, Device::Cpu, 1).unwrap();
        let params = net.parameters();
        assert_eq!(params.len(), 8);
        for ((name, t), (ename, shape)) in params.iter().zip(config.parameter_shapes()) {
            assert_eq!(name, &ename);
            assert_eq!(t.size(), shape);
        }
    }

    fn ablation(weight_norm: bool, dropout: f64, skip: Option<usize>) -> NetworkConfig {
        NetworkConfig {
            depth: 4,
            width: 16,
            weight_norm,
            dropout,
            skip,
            ..NetworkConfig::default()
        }
    }

    #[test]
    fn ablation_layouts_match_their_configs() {
        for config in [
            ablation(true, 0.0, None),
            ablation(false, 0.2, Some(2)),
            ablation(true, 0.2, Some(4)),
        ] {
            let net = SdfNetwork::new(&config, Device::Cpu, 3).unwrap();
            for ((name, t), (ename, shape)) in
                net.parameters().iter().zip(config.parameter_shapes())
            {
                assert_eq!(name, &ename);
                assert_eq!(t.size(), shape, "{name}");
            }
            let y = net.forward(&Tensor::rand([7, 3], (Kind::Float, Device::Cpu)));
            assert_eq!(y.size(), vec![7]);
        }
        let skip = ablation(false, 0.0, Some(2)).parameter_shapes();
        assert_eq!(skip[4], ("hidden.2.weight".to_string(), vec![16, 19]));
    }

    #[test]
    fn weight_norm_starts_as_the_plain_network() {
        // g starts at |v|, so before training the normalised network is the
        // same function as the plain one drawn from the same seed.
        let plain = SdfNetwork::new(&ablation(false, 0.0, None), Device::Cpu, 9).unwrap();
        let normed = SdfNetwork::new(&ablation(true, 0.0, None), Device::Cpu, 9).unwrap();
        let x = Tensor::rand([100, 3], (Kind::Float, Device::Cpu));
        let diff = (plain.forward(&x) - normed.forward(&x))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn dropout_acts_in_training_only() {
        let net = SdfNetwork::new(&ablation(false, 0.5, None), Device::Cpu, 2).unwrap();
        let x = Tensor::rand([200, 3], (Kind::Float, Device::Cpu));
        let eval_a = net.forward(&x);
        let eval_b = net.forward(&x);
        assert_eq!(f64::try_from((&eval_a - &eval_b).abs().max()).unwrap(), 0.0);
        let trained = net.forward_t(&x, true);
        assert!(f64::try_from((&eval_a - trained).abs().max()).unwrap() > 0.0);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let no_layers = NetworkConfig {
            depth: 0,
            ..NetworkConfig::default()
        };
        assert!(SdfNetwork::new(&no_layers, Device::Cpu, 0).is_err());
        let no_width = NetworkConfig {
            width: 0,
            ..NetworkConfig::default()
        };
        assert!(SdfNetwork::new(&no_width, Device::Cpu, 0).is_err());
        for bad in [
            ablation(false, 1.0, None),
            ablation(false, -0.1, None),
            ablation(false, 0.0, Some(0)),
            ablation(false, 0.0, Some(5)),
        ] {
            assert!(SdfNetwork::new(&bad, Device::Cpu, 0).is_err(), "{bad:?}");
        }
    }
}
