//! Model stage: the fully-connected network f_theta (paper Sec. 3) and the
//! model file that carries it between processes.

mod file;

pub use file::{
    load_model, model_from_bytes, model_to_bytes, save_model, ModelFileError, MODEL_FORMAT_VERSION,
};

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
    /// With a Fourier encoding the first layer (and the skip layer's input
    /// part) reads only the raw coordinates at the start: the weights on the
    /// sin/cos features start at zero, so the network still starts as the
    /// sphere and the features come in as training needs them.
    Geometric { radius: f64 },
    /// SIREN's (Sitzmann et al. 2020), the only one that fits the sine
    /// activation and the only activation it fits: first layer
    /// U(-1/fan_in, 1/fan_in), later layers U(-sqrt(6/fan_in)/omega0,
    /// sqrt(6/fan_in)/omega0), biases PyTorch's default.
    Siren,
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
    /// SIREN (Sitzmann et al. 2020): sin(omega0 (W h + b)) in every hidden
    /// layer, including the first; needs `Initialisation::Siren`.
    Sine { omega0: f64 },
}

impl std::str::FromStr for Activation {
    type Err = String;

    /// `relu`, `softplus[:beta]` (beta 100 by default) or `sine[:omega0]`
    /// (omega0 30 by default, SIREN's).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s, None),
        };
        let number = |default: f64| -> Result<f64, String> {
            match arg {
                None => Ok(default),
                Some(a) => a
                    .parse::<f64>()
                    .map_err(|_| format!("{name}: cannot read the number {a:?}")),
            }
        };
        match name {
            "relu" if arg.is_none() => Ok(Activation::Relu),
            "softplus" => Ok(Activation::Softplus {
                beta: number(100.0)?,
            }),
            "sine" => Ok(Activation::Sine {
                omega0: number(30.0)?,
            }),
            _ => Err(format!(
                "expected relu, softplus[:beta] or sine[:omega0], got {s:?}"
            )),
        }
    }
}

/// What the first layer reads. The skip layer reads the same encoded input,
/// so both see the same features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Raw xyz, the paper's input.
    #[default]
    None,
    /// NeRF's positional encoding (Mildenhall et al. 2020; Tancik et al.
    /// 2020): gamma(x) = [x, sin(2^k pi x), cos(2^k pi x)] for k = 0..L-1,
    /// 3 + 6L features. The columns are, in this order: x, y, z; then
    /// sin(2^k pi x_c) at 3 + c L + k; then cos(2^k pi x_c) at 3 + 3L + c L + k.
    /// The model file's first-layer weights depend on this order.
    Fourier { frequencies: usize },
}

impl Encoding {
    /// Largest number of frequencies: 2^15 pi ~ 1e5 is already far beyond
    /// what f32 sin resolves over the unit ball.
    pub const MAX_FREQUENCIES: usize = 16;

    /// Features per point after encoding.
    pub fn features(self) -> i64 {
        match self {
            Encoding::None => 3,
            Encoding::Fourier { frequencies } => 3 + 6 * frequencies as i64,
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;

    /// `none` or `fourier:L`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once(':') {
            None if s == "none" => Ok(Encoding::None),
            Some(("fourier", l)) => l
                .trim()
                .parse::<usize>()
                .map(|frequencies| Encoding::Fourier { frequencies })
                .map_err(|_| format!("fourier: cannot read the frequency count {l:?}")),
            _ => Err(format!(
                "expected none or fourier:L (e.g. fourier:6), got {s:?}"
            )),
        }
    }
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
    /// Encoding of the input point before the first layer.
    #[serde(default)]
    pub encoding: Encoding,
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
            encoding: Encoding::None,
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
        match self.activation {
            Activation::Softplus { beta } if !(beta.is_finite() && beta > 0.0) => {
                return Err(format!("softplus beta must be positive, got {beta}"));
            }
            Activation::Sine { omega0 } if !(omega0.is_finite() && omega0 > 0.0) => {
                return Err(format!("sine omega0 must be positive, got {omega0}"));
            }
            _ => {}
        }
        // SIREN's initialisation is what makes a sine network work (it keeps
        // every layer's pre-activations spread over a few periods); the
        // geometric one assumes ReLU-like units and PyTorch's gives a
        // near-constant sine network. Refused rather than silently replaced,
        // so the stored configuration says what was trained.
        let sine = matches!(self.activation, Activation::Sine { .. });
        let siren = self.initialisation == Initialisation::Siren;
        if sine && !siren {
            return Err(
                "the sine activation needs initialisation siren (SIREN's own); \
                 geometric and pytorch-default initialisations do not fit sine units"
                    .into(),
            );
        }
        if siren && !sine {
            return Err(
                "initialisation siren is for the sine activation only; use geometric or \
                 pytorch-default with relu or softplus"
                    .into(),
            );
        }
        if let Encoding::Fourier { frequencies } = self.encoding {
            if !(1..=Encoding::MAX_FREQUENCIES).contains(&frequencies) {
                return Err(format!(
                    "fourier encoding needs 1..={} frequencies, got {frequencies}",
                    Encoding::MAX_FREQUENCIES
                ));
            }
        }
        Ok(())
    }

    /// Sets the activation and keeps the initialisation consistent with it:
    /// sine brings SIREN's initialisation, and leaving sine returns to the
    /// geometric one (radius 0.5, that of hisdf's own presets). What the
    /// command line and the C API use, so one setting switches both.
    pub fn set_activation(&mut self, activation: Activation) {
        self.activation = activation;
        match activation {
            Activation::Sine { .. } => self.initialisation = Initialisation::Siren,
            _ if self.initialisation == Initialisation::Siren => {
                self.initialisation = Initialisation::Geometric { radius: 0.5 }
            }
            _ => {}
        }
    }

    fn layers(&self) -> Vec<LayerShape> {
        let mut layers = Vec::with_capacity(self.depth + 1);
        let input = self.encoding.features();
        let mut fan_in = input;
        for i in 0..=self.depth {
            let is_output = i == self.depth;
            if self.skip == Some(i) {
                fan_in += input;
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
    /// 2^k pi for k = 0..L-1 under a Fourier encoding; not trained.
    frequencies: Option<Tensor>,
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
        let features = config.encoding.features();
        let mut layers = Vec::with_capacity(shapes.len());
        for (index, shape) in shapes.iter().enumerate() {
            let fan_in = shape.fan_in as f64;
            let fan_out = shape.fan_out as f64;
            let is_output = index + 1 == shapes.len();
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
                Initialisation::Siren => {
                    // validate() pairs this initialisation with sine units.
                    let omega0 = match config.activation {
                        Activation::Sine { omega0 } => omega0,
                        _ => 1.0,
                    };
                    // The first layer's omega0 spreads the input over
                    // several periods; later layers' 1/omega0 cancels the
                    // omega0 they are multiplied by, so their pre-activations
                    // stay ~U(-sqrt(6/n), sqrt(6/n)) whatever the depth.
                    let w = if index == 0 {
                        1.0 / fan_in
                    } else {
                        (6.0 / fan_in).sqrt() / omega0
                    };
                    (Draw::Uniform(w), Draw::Uniform(1.0 / fan_in.sqrt()))
                }
            };
            // Under the geometric initialisation the weights on the encoded
            // sin/cos features start at zero: the first layer and the skip
            // layer's input part then read only xyz, exactly as the plain
            // network does, which keeps the starting sphere.
            let encoded_from = if index == 0 {
                0
            } else {
                shape.fan_in - features
            };
            let zero_columns = match config.initialisation {
                Initialisation::Geometric { .. }
                    if features > 3 && (index == 0 || config.skip == Some(index)) =>
                {
                    encoded_from + 3..encoded_from + features
                }
                _ => 0..0,
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
            // Drawn row by row, live columns only, so a network with an
            // encoding draws the same xyz weights as the plain one.
            let live = shape.fan_in - (zero_columns.end - zero_columns.start);
            let drawn = w_init.sample(&mut rng, (shape.fan_out * live) as usize);
            let mut drawn = drawn.into_iter();
            let weights: Vec<f32> = (0..shape.fan_out * shape.fan_in)
                .map(|k| {
                    if zero_columns.contains(&(k % shape.fan_in)) {
                        0.0
                    } else {
                        drawn.next().unwrap_or(0.0)
                    }
                })
                .collect();
            let biases = b_init.sample(&mut rng, bias.numel());
            for (t, values) in [(&weight, weights), (&bias, biases)] {
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
        // The encoding's frequencies 2^k pi live on the device from the
        // start: forward then creates no host tensor, so a CUDA graph can
        // capture it.
        let frequencies = match config.encoding {
            Encoding::None => None,
            Encoding::Fourier { frequencies } => {
                let f: Vec<f32> = (0..frequencies)
                    .map(|k| (2f64.powi(k as i32) * std::f64::consts::PI) as f32)
                    .collect();
                Some(Tensor::from_slice(&f).to_device(device))
            }
        };
        Ok(SdfNetwork {
            config: config.clone(),
            vs,
            layers,
            frequencies,
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
        let input = self.encode(x);
        let mut h = input.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if self.config.skip == Some(i) {
                h = Tensor::cat(&[&h, &input], 1);
            }
            h = layer.apply(&h);
            if i < last {
                h = match self.config.activation {
                    Activation::Relu => h.relu(),
                    Activation::Softplus { beta } => (h * beta).softplus() / beta,
                    Activation::Sine { omega0 } => (h * omega0).sin(),
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

    /// gamma(x) of the configured encoding, [N, 3] -> [N, features], in the
    /// column order `Encoding::Fourier` documents.
    pub(crate) fn encode(&self, x: &Tensor) -> Tensor {
        match &self.frequencies {
            None => x.shallow_clone(),
            Some(f) => {
                // [N, 3, L] flattened: column c L + k holds 2^k pi x_c.
                let phase = (x.unsqueeze(-1) * f).flatten(1, 2);
                Tensor::cat(&[x, &phase.sin(), &phase.cos()], 1)
            }
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

    fn encoded(encoding: Encoding, activation: Activation, skip: Option<usize>) -> NetworkConfig {
        let mut config = NetworkConfig {
            depth: 4,
            width: 16,
            skip,
            encoding,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        };
        config.set_activation(activation);
        config
    }

    const FOURIER6: Encoding = Encoding::Fourier { frequencies: 6 };
    const SINE: Activation = Activation::Sine { omega0: 30.0 };

    #[test]
    fn encoding_and_sine_layouts_match_their_configs() {
        for config in [
            encoded(FOURIER6, Activation::Relu, None),
            encoded(FOURIER6, Activation::Relu, Some(2)),
            encoded(Encoding::None, SINE, Some(3)),
            encoded(FOURIER6, SINE, None),
            NetworkConfig {
                weight_norm: true,
                dropout: 0.1,
                ..encoded(FOURIER6, SINE, Some(2))
            },
        ] {
            let net = SdfNetwork::new(&config, Device::Cpu, 3).unwrap();
            for ((name, t), (ename, shape)) in
                net.parameters().iter().zip(config.parameter_shapes())
            {
                assert_eq!(name, &ename);
                assert_eq!(t.size(), shape, "{name}");
            }
            let y = net.forward_t(&Tensor::rand([7, 3], (Kind::Float, Device::Cpu)), true);
            assert_eq!(y.size(), vec![7]);
        }
        // gamma(x) has 3 + 6L features; the skip layer reads them again.
        let shapes = encoded(FOURIER6, Activation::Relu, Some(2)).parameter_shapes();
        assert_eq!(shapes[0], ("hidden.0.weight".to_string(), vec![16, 39]));
        assert_eq!(
            shapes[4],
            ("hidden.2.weight".to_string(), vec![16, 16 + 39])
        );
        // Sine changes no shape.
        assert_eq!(
            encoded(Encoding::None, SINE, Some(3)).parameter_shapes(),
            ablation(false, 0.0, Some(3)).parameter_shapes()
        );
    }

    #[test]
    fn the_encoding_is_x_then_sines_then_cosines() {
        let config = encoded(Encoding::Fourier { frequencies: 2 }, Activation::Relu, None);
        let net = SdfNetwork::new(&config, Device::Cpu, 0).unwrap();
        let x = Tensor::from_slice(&[0.25f32, -0.5, 0.125]).view([1, 3]);
        let g = Vec::<f32>::try_from(net.encode(&x).view([-1])).unwrap();
        assert_eq!(g.len(), 15);
        let pi = std::f32::consts::PI;
        let xs = [0.25f32, -0.5, 0.125];
        for c in 0..3 {
            assert_eq!(g[c], xs[c]);
            for k in 0..2 {
                let phase = 2f32.powi(k as i32) * pi * xs[c];
                assert!((g[3 + c * 2 + k] - phase.sin()).abs() < 1e-6);
                assert!((g[9 + c * 2 + k] - phase.cos()).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn geometric_initialisation_with_fourier_features_is_still_a_sphere() {
        for skip in [None, Some(2)] {
            let sphere = |encoding| NetworkConfig {
                depth: 4,
                width: 256,
                tanh_output: false,
                initialisation: Initialisation::Geometric { radius: 0.5 },
                encoding,
                skip,
                ..NetworkConfig::default()
            };
            let plain = SdfNetwork::new(&sphere(Encoding::None), Device::Cpu, 1).unwrap();
            let fourier = SdfNetwork::new(&sphere(FOURIER6), Device::Cpu, 1).unwrap();
            let x = Tensor::randn([2000, 3], (Kind::Float, Device::Cpu)) * 0.5;
            let y = fourier.forward(&x);
            if skip.is_none() {
                // With a skip the SAL start is off the sphere already for raw
                // xyz (the concatenation adds |x| to the layer's input norm),
                // so there only the equality with the plain network is tested.
                let truth = x.norm_scalaropt_dim(2.0, [1], false) - 0.5;
                let err = (&y - truth).abs().mean(Kind::Float).double_value(&[]);
                assert!(err < 0.15, "mean deviation from the sphere {err}");
            }
            // The sin/cos weights start at zero and the xyz ones are drawn
            // as the plain network draws them: the same function.
            let diff = (&y - plain.forward(&x)).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "skip {skip:?}: {diff}");
            // Zero at the start, yet connected: training moves them.
            let first = &fourier.parameters()[0].1;
            let start = first.slice(1, 3, 39, 1).abs().max().double_value(&[]);
            assert_eq!(start, 0.0);
            fourier.forward(&x).sum(Kind::Float).backward();
            let grad = first
                .grad()
                .slice(1, 3, 39, 1)
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                grad > 0.0,
                "skip {skip:?}: no gradient reaches the features"
            );
        }
    }

    #[test]
    fn siren_initialisation_uses_its_bounds() {
        let config = NetworkConfig {
            width: 256,
            ..encoded(Encoding::None, SINE, None)
        };
        assert_eq!(config.initialisation, Initialisation::Siren);
        let net = SdfNetwork::new(&config, Device::Cpu, 4).unwrap();
        let params = net.parameters();
        let max = |i: usize| params[i].1.abs().max().double_value(&[]);
        // First layer U(-1/3, 1/3); hidden and output layers
        // U(-sqrt(6/256)/30, sqrt(6/256)/30).
        let first = 1.0 / 3.0;
        assert!(max(0) <= first && max(0) > 0.9 * first, "{}", max(0));
        let later = (6.0f64 / 256.0).sqrt() / 30.0;
        for i in [2, 4, 6, 8] {
            assert!(
                max(i) <= later * 1.0001 && max(i) > 0.9 * later,
                "{i}: {}",
                max(i)
            );
        }
        // Not saturated, not constant.
        let x = Tensor::rand([2000, 3], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let y = net.forward(&x);
        let (top, spread) = (
            y.abs().max().double_value(&[]),
            y.std(true).double_value(&[]),
        );
        assert!(top < 0.9 && spread > 1e-3, "max {top}, std {spread}");
    }

    #[test]
    fn options_parse_from_text() {
        assert_eq!("none".parse::<Encoding>(), Ok(Encoding::None));
        assert_eq!("fourier:6".parse::<Encoding>(), Ok(FOURIER6));
        for bad in ["fourier", "fourier:x", "gauss:3", ""] {
            assert!(bad.parse::<Encoding>().is_err(), "{bad}");
        }
        assert_eq!("relu".parse::<Activation>(), Ok(Activation::Relu));
        assert_eq!(
            "softplus".parse::<Activation>(),
            Ok(Activation::Softplus { beta: 100.0 })
        );
        assert_eq!("sine".parse::<Activation>(), Ok(SINE));
        assert_eq!(
            "sine:12.5".parse::<Activation>(),
            Ok(Activation::Sine { omega0: 12.5 })
        );
        for bad in ["relu:2", "sine:fast", "tanh"] {
            assert!(bad.parse::<Activation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn set_activation_keeps_the_initialisation_consistent() {
        let mut c = NetworkConfig::default();
        c.set_activation(SINE);
        assert_eq!(c.initialisation, Initialisation::Siren);
        assert!(c.validate().is_ok());
        c.set_activation(Activation::Relu);
        assert_eq!(c.initialisation, Initialisation::Geometric { radius: 0.5 });
        assert!(c.validate().is_ok());
        // PyTorch's default stays when sine was never involved.
        let mut d = NetworkConfig::default();
        d.set_activation(Activation::Softplus { beta: 100.0 });
        assert_eq!(d.initialisation, Initialisation::PytorchDefault);
    }

    #[test]
    fn older_configs_without_an_encoding_load_as_raw_xyz() {
        let old = r#"{"depth":8,"width":512,"tanh_output":true,
            "initialisation":"pytorch-default","activation":"relu"}"#;
        let c: NetworkConfig = serde_json::from_str(old).unwrap();
        assert_eq!(c.encoding, Encoding::None);
        let json = serde_json::to_value(encoded(FOURIER6, SINE, None)).unwrap();
        assert_eq!(
            json["encoding"],
            serde_json::json!({"fourier": {"frequencies": 6}})
        );
        assert_eq!(
            json["activation"],
            serde_json::json!({"sine": {"omega0": 30.0}})
        );
        assert_eq!(json["initialisation"], serde_json::json!("siren"));
    }

    #[test]
    fn invalid_encodings_and_sine_settings_are_refused() {
        let message = |c: NetworkConfig| SdfNetwork::new(&c, Device::Cpu, 0).unwrap_err();
        for l in [0, 17] {
            let e = message(encoded(
                Encoding::Fourier { frequencies: l },
                Activation::Relu,
                None,
            ));
            assert!(e.contains("frequencies"), "{e}");
        }
        for omega0 in [0.0, -30.0, f64::NAN, f64::INFINITY] {
            let e = message(encoded(Encoding::None, Activation::Sine { omega0 }, None));
            assert!(e.contains("omega0"), "{e}");
        }
        let geometric_sine = NetworkConfig {
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..encoded(Encoding::None, SINE, None)
        };
        assert!(message(geometric_sine).contains("needs initialisation siren"));
        let siren_relu = NetworkConfig {
            initialisation: Initialisation::Siren,
            ..encoded(Encoding::None, Activation::Relu, None)
        };
        assert!(message(siren_relu).contains("sine activation only"));
    }

    /// Trains a 3x32 network with a Fourier encoding and a SIREN on the cube
    /// and checks that the loss halves and the sign is right away from the
    /// surface.
    fn fourier_and_sine_train(device: crate::train::DeviceChoice, cuda_graph: bool) {
        use crate::train::{train, Scheduler, TrainConfig};
        let samples = crate::train::cube_samples(20_000);
        let small = |encoding, activation| NetworkConfig {
            depth: 3,
            width: 32,
            ..encoded(encoding, activation, None)
        };
        let config = TrainConfig {
            iterations: 300,
            batch_size: 512,
            device,
            cuda_graph,
            scheduler: Scheduler::None,
            progress_every: 10,
            ..TrainConfig::default()
        };
        for network in [
            small(FOURIER6, Activation::Relu),
            small(Encoding::None, SINE),
            small(Encoding::Fourier { frequencies: 4 }, SINE),
        ] {
            let mut losses = Vec::new();
            let model = train(
                &samples,
                Normalisation::identity(),
                &network,
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
                "{:?}/{:?} on {device:?} (graph {cuda_graph}): loss went from {first} to {last}",
                network.encoding,
                network.activation
            );
            let q = model.query(&[[0.0, 0.0, 0.0], [0.0, 0.0, 0.95]]);
            assert!(q[0] < 0.0 && q[1] > 0.0, "{network:?}: {q:?}");
        }
    }

    #[test]
    fn short_trainings_with_fourier_features_and_sine_lower_the_loss() {
        fourier_and_sine_train(crate::train::DeviceChoice::Cpu, false);
    }

    /// The encoding and the sine units inside a captured CUDA graph; skipped
    /// without a GPU.
    #[test]
    fn cuda_trainings_with_fourier_features_and_sine_lower_the_loss() {
        if !tch::Cuda::is_available() {
            return;
        }
        for graph in [false, true] {
            fourier_and_sine_train(crate::train::DeviceChoice::Cuda, graph);
        }
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
