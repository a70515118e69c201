//! The network f_theta itself: its layers and their initial weights, the
//! forward pass, evaluation and autograd in the unit-sphere frame.

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use tch::{nn, Device, Kind, Tensor};

use super::{Activation, Encoding, Initialisation, NetworkConfig};

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

    /// d f_theta / d x by autograd at points in the unit-sphere frame, in
    /// chunks of `chunk` points (backward keeps every layer's activations,
    /// so a chunk should be smaller than `evaluate`'s). The one autograd
    /// pass for the model's gradient queries and the extracted mesh's
    /// normals.
    pub fn gradient(
        &self,
        points: &[[f32; 3]],
        chunk: usize,
    ) -> Result<Vec<[f32; 3]>, tch::TchError> {
        let device = self.device();
        let mut out = Vec::with_capacity(points.len());
        for part in points.chunks(chunk.max(1)) {
            let grad = tch::with_grad(|| -> Result<Tensor, tch::TchError> {
                let x = Tensor::from_slice(as_flat(part))
                    .view([part.len() as i64, 3])
                    .to_device(device)
                    .set_requires_grad(true);
                let y = self.forward(&x).sum(Kind::Float);
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
