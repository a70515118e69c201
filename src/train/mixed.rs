//! The mixed-precision training step (`Precision::Bf16`): the hidden layers
//! run in bfloat16 with float32 accumulation, everything a coordinate or a
//! distance passes through stays float32.
//!
//! Where precision goes:
//! - the input layer reads the (encoded) points in float32, not even TF32:
//!   bf16 would round a coordinate to ~2^-8 of its size (half a 512^3
//!   voxel), TF32 to ~2^-11, and the layer costs nothing (K = 3);
//! - hidden activations and the weights they meet are bf16; every product
//!   accumulates in float32 inside the tensor cores, and the weight and bias
//!   gradients are written as float32;
//! - the output (the SDF value), the loss, the master weights and Adam's
//!   moments are float32.
//!
//! The backward pass is written out by hand rather than left to autograd:
//! for the plain ReLU network it is four kernels a hidden layer (the mask of
//! the ReLU, two products, the bias sum) where autograd adds casts, bias
//! broadcasts and gradient accumulation. The forward pass fuses bias and
//! ReLU into the product (cuBLASLt's epilogue, through ATen's
//! `_addmm_activation`). All parameters live in one flat float32 buffer,
//! their gradients in another, so Adam is a single fused kernel and the bf16
//! copy of the weights is a single cast.
//!
//! The compute kind is a parameter: float32 on the CPU gives the same step
//! with exact arithmetic, which is how the tests check the hand-written
//! backward pass against autograd.

use tch::{Kind, Tensor};

use crate::model::{Activation, NetworkConfig, SdfNetwork};

use super::loss::{Loss, LossState};
use std::cell::{Cell, RefCell};

use super::native::{addmm_relu, bmm_bias_relu, split_points, split_weights, FlatAdam, FusedAdam};

/// Offsets into the flat buffers are rounded up to this many elements, so
/// every weight matrix starts on a 128-byte boundary (what tensor-core
/// kernels want of their operands).
const ALIGN: i64 = 64;

/// One linear layer of all K networks as views into the flat buffers:
/// weights [K, out, in], biases [K, out].
struct FlatLayer {
    weight: Tensor,
    bias: Tensor,
    weight_grad: Tensor,
    bias_grad: Tensor,
    /// The weight and bias in the compute kind.
    weight_low: Tensor,
    bias_low: Tensor,
}

/// The step of K networks of one architecture at once (K = 1 for a single
/// network), each on its own batch: every layer is one batched product over
/// the K networks, so K small networks fill the GPU as one large one would.
/// The networks share nothing but the kernels; their parameters, gradients
/// and Adam states are separate.
pub(super) struct MixedStep {
    layers: Vec<FlatLayer>,
    master: Tensor,
    grads: Tensor,
    low: Tensor,
    /// Every network's parameters and gradients, in `parameters()` order.
    views: Vec<(Vec<Tensor>, Vec<Tensor>)>,
    models: i64,
    compute: Kind,
    tanh_output: bool,
    /// K networks in bf16 on CUDA take cuBLASLt's batched product with the
    /// bias and ReLU in its epilogue; cleared (with a warning) if that
    /// product fails, and ATen's batched products take over.
    fused_batched: Cell<bool>,
    /// A column of ones [K, B, 1] in the compute kind, kept between steps:
    /// the bias gradients are its product with the layers' gradients.
    ones: RefCell<Option<Tensor>>,
    /// Adam over the whole flat buffer in one launch, writing the bf16
    /// copy too (CUDA); `None` where it cannot run, and PyTorch's fused
    /// Adam, one launch per network, and a cast take over.
    flat_adam: Option<FlatAdam>,
    /// Cleared (with one warning) if hisdf's loss kernel fails: autograd
    /// takes every later step instead of failing and warning each time.
    fused_loss: Cell<bool>,
}

impl MixedStep {
    /// Why `network` cannot take this step, if it cannot: the hand-written
    /// backward pass covers the plain ReLU network (the paper's) with any
    /// input encoding.
    pub(super) fn unsupported(c: &NetworkConfig) -> Option<String> {
        let what = if c.activation != Activation::Relu {
            "an activation other than relu"
        } else if c.weight_norm {
            "weight normalisation"
        } else if c.dropout > 0.0 {
            "dropout"
        } else if c.skip.is_some() {
            "a skip connection"
        } else {
            return None;
        };
        Some(format!(
            "the bf16 step covers the plain ReLU network; this one has {what}"
        ))
    }

    /// Copies the networks' parameters into flat buffers on their device.
    /// `compute` is the hidden layers' kind: BFloat16 on CUDA, Float for
    /// the exact reference. The networks must share one architecture (the
    /// caller checks it); their initial weights may differ.
    pub(super) fn new(networks: &[&SdfNetwork], compute: Kind) -> Result<MixedStep, String> {
        let network = networks.first().ok_or("no network to train")?;
        if let Some(why) = Self::unsupported(&network.config) {
            return Err(why);
        }
        let k = networks.len() as i64;
        let device = network.device();
        let params: Vec<Vec<(String, Tensor)>> = networks.iter().map(|n| n.parameters()).collect();
        let shapes: Vec<Vec<i64>> = params[0].iter().map(|(_, t)| t.size()).collect();
        if params.iter().any(|p| {
            p.len() != shapes.len() || p.iter().zip(&shapes).any(|((_, t), s)| t.size() != *s)
        }) {
            return Err("networks trained together must have one architecture".into());
        }
        // Parameter i of network j lives at offsets[i] + j * strides[i]: the
        // K copies of one tensor are one [K, ...] block for the batched
        // products.
        let mut offsets = Vec::with_capacity(shapes.len());
        let mut strides = Vec::with_capacity(shapes.len());
        let mut total = 0i64;
        for shape in &shapes {
            let numel: i64 = shape.iter().product();
            let stride = (numel + ALIGN - 1) / ALIGN * ALIGN;
            offsets.push(total);
            strides.push(stride);
            total += k * stride;
        }
        let _guard = tch::no_grad_guard();
        let master = Tensor::zeros([total], (Kind::Float, device));
        // Padding between tensors is never written: its gradient stays zero
        // and Adam leaves it at zero.
        let grads = Tensor::zeros([total], (Kind::Float, device));
        let low = Tensor::zeros([total], (compute, device));
        let numel = |i: usize| shapes[i].iter().product::<i64>();
        let one = |flat: &Tensor, i: usize, j: i64| {
            flat.narrow(0, offsets[i] + j * strides[i], numel(i))
                .view(shapes[i].as_slice())
        };
        let all = |flat: &Tensor, i: usize| {
            let mut shape = vec![k];
            shape.extend_from_slice(&shapes[i]);
            flat.narrow(0, offsets[i], k * strides[i])
                .view([k, strides[i]])
                .narrow(1, 0, numel(i))
                .view(shape.as_slice())
        };
        for (j, p) in params.iter().enumerate() {
            for (i, (_, t)) in p.iter().enumerate() {
                one(&master, i, j as i64).copy_(t);
            }
        }
        let views = (0..k)
            .map(|j| {
                let of = |flat: &Tensor| (0..shapes.len()).map(|i| one(flat, i, j)).collect();
                (of(&master), of(&grads))
            })
            .collect();
        // parameters() lists weight then bias for every layer.
        let layers = (0..shapes.len() / 2)
            .map(|l| FlatLayer {
                weight: all(&master, 2 * l),
                bias: all(&master, 2 * l + 1),
                weight_grad: all(&grads, 2 * l),
                bias_grad: all(&grads, 2 * l + 1),
                weight_low: all(&low, 2 * l),
                bias_low: all(&low, 2 * l + 1),
            })
            .collect();
        let flat_adam = if compute == Kind::BFloat16 && device.is_cuda() && k <= i16::MAX as i64 {
            // Every element's network, padding included (its gradient is
            // zero, so it stays zero whatever rate it gets).
            let owner = (k > 1).then(|| {
                let mut owner = vec![0i16; total as usize];
                for (&offset, &stride) in offsets.iter().zip(&strides) {
                    for j in 0..k {
                        let start = (offset + j * stride) as usize;
                        owner[start..start + stride as usize].fill(j as i16);
                    }
                }
                Tensor::from_slice(&owner).to_device(device)
            });
            match FlatAdam::new(&master, &grads, Some(&low), owner) {
                Ok(adam) => Some(adam),
                Err(e) => {
                    log::warn!(
                        "the flat Adam kernel is not available ({e}); using PyTorch's fused Adam"
                    );
                    None
                }
            }
        } else {
            None
        };
        let step = MixedStep {
            flat_adam,
            layers,
            master,
            grads,
            low,
            views,
            models: k,
            compute,
            tanh_output: network.config.tanh_output,
            // One network keeps ATen's fp32 input layer and addmm: as fast
            // (0.514 vs 0.509 ms a step on an H200), and on the fox with the
            // paper's setting the split bf16 input stalled at a loss of
            // 8.7e-3 where the fp32 one reached 4.7e-4 (docs/results.md).
            fused_batched: Cell::new(k > 1 && compute == Kind::BFloat16 && device.is_cuda()),
            ones: RefCell::new(None),
            fused_loss: Cell::new(true),
        };
        step.refresh_low();
        Ok(step)
    }

    /// Whether hisdf's own CUDA kernels (Adam, the loss, the split input)
    /// are compiled and take their steps: the flat Adam compiled them.
    fn own_kernels(&self) -> bool {
        self.flat_adam.is_some()
    }

    /// Adam for every network, each over its own parameters with its own
    /// rate (one fused launch per network).
    pub(super) fn optimizers(&self, learning_rates: &[f64]) -> Vec<FusedAdam> {
        if self.own_kernels() {
            let device = self.master.device();
            return learning_rates
                .iter()
                .map(|&lr| FusedAdam::rate_only(lr, device))
                .collect();
        }
        if self.models == 1 {
            // One network: the whole flat buffer, padding included.
            return vec![FusedAdam::with_gradients(
                vec![self.master.shallow_clone()],
                vec![self.grads.shallow_clone()],
                learning_rates[0],
            )];
        }
        self.views
            .iter()
            .zip(learning_rates)
            .map(|((params, grads), &lr)| {
                let copy = |v: &[Tensor]| v.iter().map(|t| t.shallow_clone()).collect();
                FusedAdam::with_gradients(copy(params), copy(grads), lr)
            })
            .collect()
    }

    fn refresh_low(&self) {
        let _guard = tch::no_grad_guard();
        self.low.shallow_clone().copy_(&self.master);
    }

    /// One iteration on the batches (x [K, B, 3] the raw points, s [K, B]
    /// their SDF): forward, loss, backward, Adam, and the new low-precision
    /// copy. Returns every network's loss on its batch (a [K] device
    /// tensor; nothing waits for the device).
    pub(super) fn run(
        &self,
        network: &SdfNetwork,
        x: &Tensor,
        s: &Tensor,
        loss: &Loss,
        loss_state: &LossState,
        adams: &mut [FusedAdam],
    ) -> Result<Tensor, String> {
        let (input, activations, f) = tch::no_grad(|| self.forward(network, x))?;
        let (rows, df) = self.loss_and_gradient(&f, s, loss, loss_state);
        tch::no_grad(|| self.backward(&input, &activations, &f, &df));
        if let Some(flat) = &self.flat_adam {
            flat.step(adams)?;
        } else {
            for adam in adams.iter_mut() {
                adam.step()?;
            }
            self.refresh_low();
        }
        Ok(rows)
    }

    /// The rows' mean losses [K] and dL/df [K, B]: hisdf's loss kernel where
    /// its kernels are loaded (CUDA), else autograd through the loss's
    /// tensor expression.
    fn loss_and_gradient(
        &self,
        f: &Tensor,
        s: &Tensor,
        loss: &Loss,
        loss_state: &LossState,
    ) -> (Tensor, Tensor) {
        if self.own_kernels() && self.fused_loss.get() {
            match tch::no_grad(|| loss.rows_and_gradient_fused(f, s, loss_state)) {
                Ok(fused) => return fused,
                Err(e) => {
                    self.fused_loss.set(false);
                    log::warn!("hisdf's loss kernel failed ({e}); using autograd from now on");
                }
            }
        }
        // Autograd: a few elementwise kernels on [K, B], whatever loss is
        // configured. The sum of the rows' means gives every row its own
        // mean's gradient.
        let f_leaf = f.detach().set_requires_grad(true);
        let rows = loss.evaluate_rows_with(&f_leaf, s, loss_state);
        rows.sum(Kind::Float).backward();
        (rows.detach(), f_leaf.grad())
    }

    /// The input (float32, encoded, [K, B, features]), every hidden layer's
    /// output (post-ReLU, compute kind, [K, B, width]) and f = f_theta(x)
    /// (float32, [K, B]). `network` is any of the K: the encoding has no
    /// trained parameters.
    fn forward(
        &self,
        network: &SdfNetwork,
        x: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>, Tensor), String> {
        let size = x.size();
        let input = network.encode(&x.reshape([-1, 3]));
        let input = input.view([size[0], size[1], -1]);
        let (first, rest) = self.layers.split_first().expect("a network has layers");
        let (output, hidden) = rest.split_last().expect("a network has an output layer");
        let mut activations = Vec::with_capacity(hidden.len() + 1);
        activations.push(self.input_layer(first, &input)?);
        for layer in hidden {
            let h = activations.last().expect("the first layer's output");
            activations.push(self.linear_relu(&layer.bias_low, h, &layer.weight_low)?);
        }
        let last = activations.last().expect("the first layer's output");
        let o = self.mm_f32(last, &output.weight_low.transpose(1, 2)) + output.bias.unsqueeze(1);
        let o = o.squeeze_dim(-1);
        let f = if self.tanh_output { o.tanh() } else { o };
        Ok((input, activations, f))
    }

    /// relu(h w^T + b) for every network: h [K, B, in], w [K, out, in],
    /// b [K, out]. One network takes the product with bias and ReLU fused
    /// into its epilogue (cuBLASLt); K take one batched product, fused the
    /// same way in bf16 on CUDA.
    fn linear_relu(&self, bias: &Tensor, h: &Tensor, weight: &Tensor) -> Result<Tensor, String> {
        if self.models == 1 {
            let z = addmm_relu(&bias.get(0), &h.get(0), &weight.get(0).tr())?;
            return Ok(z.unsqueeze(0));
        }
        if let Some(z) = self.fused(|| bmm_bias_relu(h, weight, Some(bias))) {
            return Ok(z);
        }
        Ok(bias
            .unsqueeze(1)
            .baddbmm(h, &weight.transpose(1, 2), 1, 1)
            .relu_())
    }

    /// The input layer's output in the compute kind, from the float32
    /// (encoded) points and the float32 weights. K networks in bf16 split
    /// every point, weight and bias into a bf16 head and tail (v = hi + lo
    /// to ~2^-16) and take the three products that matter (hi hi, lo hi,
    /// hi lo) and both bias parts in one bf16 product of 3 F + 2 columns:
    /// the precision of float32, at the cost of a bf16 product, where a
    /// float32 batched product of three columns costs as much as a hidden
    /// layer.
    fn input_layer(&self, first: &FlatLayer, input: &Tensor) -> Result<Tensor, String> {
        let split = |t: &Tensor| {
            let hi = t.to_kind(Kind::BFloat16);
            let lo = (t - hi.to_kind(Kind::Float)).to_kind(Kind::BFloat16);
            (hi, lo)
        };
        let fused = self.fused(|| {
            let size = input.size();
            let (k, b, n) = (size[0], size[1], first.weight.size()[1]);
            let cols = 3 * size[2] + 2;
            let pad = (cols + 7) / 8 * 8 - cols;
            let opts = (Kind::BFloat16, input.device());
            if self.own_kernels() {
                // hisdf's own kernels are loaded: each side is one kernel
                // instead of a dozen casts, differences and concatenations.
                let points = Tensor::empty([k, b, cols + pad], opts);
                split_points(&input.contiguous(), &points)?;
                let weights = Tensor::empty([k, n, cols + pad], opts);
                split_weights(&first.weight, &first.bias, &weights)?;
                return bmm_bias_relu(&points, &weights, None);
            }
            let (x_hi, x_lo) = split(input);
            let points = Tensor::cat(
                &[
                    &x_hi,
                    &x_lo,
                    &x_hi,
                    &Tensor::ones([k, b, 2], opts),
                    &Tensor::zeros([k, b, pad], opts),
                ],
                2,
            );
            let (w_hi, w_lo) = split(&first.weight);
            let (b_hi, b_lo) = split(&first.bias.unsqueeze(-1));
            let weights = Tensor::cat(
                &[
                    &w_hi,
                    &w_hi,
                    &w_lo,
                    &b_hi,
                    &b_lo,
                    &Tensor::zeros([k, n, pad], opts),
                ],
                2,
            );
            bmm_bias_relu(&points, &weights, None)
        });
        if let Some(z) = fused {
            return Ok(z);
        }
        Ok(self
            .linear_relu(&first.bias, input, &first.weight)?
            .to_kind(self.compute))
    }

    /// The fused batched product's result, or `None` when it is not in use
    /// or has just failed (it is then off for the rest of the training).
    fn fused(&self, product: impl FnOnce() -> Result<Tensor, String>) -> Option<Tensor> {
        if !self.fused_batched.get() {
            return None;
        }
        match product() {
            Ok(z) => Some(z),
            Err(e) => {
                log::warn!("cuBLASLt's batched bias+ReLU product failed ({e}); using ATen's");
                self.fused_batched.set(false);
                None
            }
        }
    }

    /// Gradients of every parameter into the flat gradient buffer, from
    /// df = dL/df ([K, B]).
    fn backward(&self, input: &Tensor, activations: &[Tensor], f: &Tensor, df: &Tensor) {
        let (first, rest) = self.layers.split_first().expect("a network has layers");
        let (output, hidden) = rest.split_last().expect("a network has an output layer");
        // Through tanh: d tanh(o) / do = 1 - tanh(o)^2.
        let d_o = if self.tanh_output {
            df * (1.0 - f * f)
        } else {
            df.shallow_clone()
        };
        let d_o = d_o.unsqueeze(-1);
        let d_o_low = d_o.to_kind(self.compute);
        let last = activations.last().expect("the first layer's output");
        self.mm_f32_into(&output.weight_grad, &d_o_low.transpose(1, 2), last);
        // The output bias's gradient from float32 d_o (one value a point).
        sum_rows_into(&output.bias_grad, &d_o);
        let mut d_h = self.mm(&d_o_low, &output.weight_low);
        for (i, layer) in hidden.iter().enumerate().rev() {
            // activations[i + 1] is this layer's output, activations[i] its
            // input; ReLU's output is positive exactly where its input is.
            let d_z = activations[i + 1].threshold_backward(&d_h, 0.0);
            self.mm_f32_into(&layer.weight_grad, &d_z.transpose(1, 2), &activations[i]);
            self.bias_grad_into(&layer.bias_grad, &d_z);
            d_h = self.mm(&d_z, &layer.weight_low);
        }
        let d_z = activations[0].threshold_backward(&d_h, 0.0);
        let input_low = input.to_kind(self.compute);
        self.mm_f32_into(&first.weight_grad, &d_z.transpose(1, 2), &input_low);
        self.bias_grad_into(&first.bias_grad, &d_z);
    }

    /// A layer's bias gradient, the batch sum of its pre-activation
    /// gradient d_z [K, B, n], as float32 into [K, n]. In bf16 it is the
    /// product d_z^T 1 with float32 accumulation: a matrix-vector kernel
    /// reads d_z at full bandwidth where ATen's sum over the middle axis
    /// took 16 us a layer for 10,000 x 512 on an H200 (0.705 -> 0.620 ms
    /// per step for 8 x 512, docs/results.md).
    fn bias_grad_into(&self, out: &Tensor, d_z: &Tensor) {
        if self.compute == Kind::Float {
            return sum_rows_into(out, d_z);
        }
        let size = d_z.size();
        let mut ones = self.ones.borrow_mut();
        if ones.as_ref().map(|t| t.size()) != Some(vec![size[0], size[1], 1]) {
            *ones = Some(Tensor::ones(
                [size[0], size[1], 1],
                (self.compute, d_z.device()),
            ));
        }
        let ones = ones.as_ref().expect("just made");
        self.mm_f32_into(&out.unsqueeze(-1), &d_z.transpose(1, 2), ones);
    }

    /// a b for [K, m, k] and [K, k, n] in the operands' kind. One network
    /// takes the plain product (the kernels the single-network step was
    /// measured with), K the batched one.
    fn mm(&self, a: &Tensor, b: &Tensor) -> Tensor {
        if self.models == 1 {
            a.get(0).mm(&b.get(0)).unsqueeze(0)
        } else {
            a.bmm(b)
        }
    }

    /// a b with float32 accumulation and a float32 result.
    fn mm_f32(&self, a: &Tensor, b: &Tensor) -> Tensor {
        match (self.compute == Kind::Float, self.models == 1) {
            (true, _) => self.mm(a, b),
            (false, true) => a.get(0).mm_dtype(&b.get(0), Kind::Float).unsqueeze(0),
            (false, false) => a.bmm_dtype(b, Kind::Float),
        }
    }

    fn mm_f32_into(&self, out: &Tensor, a: &Tensor, b: &Tensor) {
        let one = self.models == 1;
        let _ = match (self.compute == Kind::Float, one) {
            (true, true) => a.get(0).mm_out(&out.get(0), &b.get(0)),
            (true, false) => a.bmm_out(out, b),
            (false, true) => a.get(0).mm_dtype_out(&out.get(0), &b.get(0), Kind::Float),
            (false, false) => a.bmm_dtype_out(out, b, Kind::Float),
        };
    }

    /// Copies the trained flat parameters of network `j` back into its own.
    pub(super) fn write_back(&self, j: usize, network: &SdfNetwork) {
        let _guard = tch::no_grad_guard();
        for ((_, t), src) in network.parameters().iter().zip(&self.views[j].0) {
            t.shallow_clone().copy_(src);
        }
    }
}

/// Sums over the batch of a [K, B, n] gradient, accumulated and written as
/// float32 into [K, n].
fn sum_rows_into(out: &Tensor, d: &Tensor) {
    let _ = d.sum_intlist_out(out, [1i64].as_slice(), false, Kind::Float);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Encoding, Initialisation, NetworkConfig};
    use tch::Device;

    fn net(encoding: Encoding, tanh_output: bool, device: Device) -> SdfNetwork {
        let config = NetworkConfig {
            depth: 3,
            width: 16,
            tanh_output,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            encoding,
            ..NetworkConfig::default()
        };
        SdfNetwork::new(&config, device, 3).unwrap()
    }

    /// The hand-written backward pass (in float32) gives autograd's
    /// gradients for every parameter, with and without an encoding and the
    /// tanh, for both losses.
    #[test]
    fn backward_pass_matches_autograd() {
        backward_matches_autograd_on(Device::Cpu, Kind::Float, 1e-6, 1e-5);
    }

    /// On CUDA the same pass in float32 (TF32 off) agrees with autograd as
    /// on the CPU, and in bf16 within bf16's rounding: the kernels CUDA
    /// picks (cuBLASLt's bias+ReLU epilogue, float32-output products of
    /// bf16 operands) compute what the CPU's do.
    #[test]
    fn cuda_backward_pass_matches_autograd() {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        crate::train::set_tf32(false);
        backward_matches_autograd_on(Device::Cuda(0), Kind::Float, 1e-5, 1e-4);
        backward_matches_autograd_on(Device::Cuda(0), Kind::BFloat16, 3e-2, 5e-2);
    }

    fn backward_matches_autograd_on(
        device: Device,
        compute: Kind,
        forward_tol: f64,
        grad_tol: f64,
    ) {
        let points: Vec<[f32; 3]> = crate::sampling::uniform_ball_points(257, 9);
        let x = Tensor::from_slice(crate::model::as_flat(&points))
            .view([257, 3])
            .to_device(device);
        let s = (x
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .sqrt()
            - 0.4)
            .clamp(-0.2, 0.2);
        for (encoding, tanh_output) in [
            (Encoding::None, true),
            (Encoding::Fourier { frequencies: 2 }, false),
        ] {
            for loss in [
                Loss::ClampedL1 { clamp: Some(0.1) },
                Loss::paper_curriculum(),
            ] {
                let network = net(encoding, tanh_output, device);
                let mut state = loss.state(device);
                loss.advance(&mut state, 700);
                // Autograd through the network's own forward pass.
                for (_, p) in network.parameters() {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                let f = network.forward_t(&x, true);
                loss.evaluate_with(&f, &s, &state).backward();
                // The hand-written pass on the same parameters.
                let step = MixedStep::new(&[&network], compute).unwrap();
                let (input, activations, f2) =
                    tch::no_grad(|| step.forward(&network, &x.unsqueeze(0))).unwrap();
                let f_scale = f.abs().max().double_value(&[]);
                let diff = (&f - f2.get(0)).abs().max().double_value(&[]);
                assert!(
                    diff <= forward_tol * f_scale.max(1.0),
                    "{device:?} {compute:?}: forward differs by {diff} (largest value {f_scale})"
                );
                let f_leaf = f2.detach().set_requires_grad(true);
                loss.evaluate_with(&f_leaf, &s.unsqueeze(0), &state)
                    .backward();
                tch::no_grad(|| step.backward(&input, &activations, &f2, &f_leaf.grad()));
                let flat = step
                    .layers
                    .iter()
                    .flat_map(|l| [&l.weight_grad, &l.bias_grad].into_iter());
                for ((name, p), ours) in network.parameters().iter().zip(flat) {
                    let reference = p.grad();
                    let scale = reference.abs().max().double_value(&[]);
                    let err = (&reference - ours.get(0)).abs().max().double_value(&[]);
                    assert!(scale > 0.0, "{name}: no gradient to compare");
                    assert!(
                        err <= grad_tol * scale.max(1e-3),
                        "{name} ({device:?} {compute:?}, {encoding:?}, tanh {tanh_output}, {loss:?}): \
                         error {err} against a largest gradient of {scale}"
                    );
                }
            }
        }
    }

    /// Whole iterations (forward, loss, hand-written backward, Adam over
    /// the flat buffer, the refreshed low copy) move the parameters as the
    /// autograd step with Adam does, over enough steps that a stale copy or
    /// a gradient written to the wrong place would show.
    #[test]
    fn steps_match_the_autograd_step() {
        steps_match_the_autograd_step_on(Device::Cpu, Kind::Float, Some(1e-4), 1e-3);
    }

    #[test]
    fn cuda_steps_match_the_autograd_step() {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        crate::train::set_tf32(false);
        steps_match_the_autograd_step_on(Device::Cuda(0), Kind::Float, Some(1e-4), 1e-3);
        // In bf16 single weights may take other Adam steps (a gradient
        // near zero can change sign); the loss must follow the reference.
        steps_match_the_autograd_step_on(Device::Cuda(0), Kind::BFloat16, None, 0.1);
    }

    /// `weight_tol`: largest weight difference over the largest weight;
    /// `loss_tol`: last loss difference over the first loss.
    fn steps_match_the_autograd_step_on(
        device: Device,
        compute: Kind,
        weight_tol: Option<f64>,
        loss_tol: f64,
    ) {
        let points: Vec<[f32; 3]> = crate::sampling::uniform_ball_points(512, 4);
        let x = Tensor::from_slice(crate::model::as_flat(&points))
            .view([512, 3])
            .to_device(device);
        let s = (x
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .sqrt()
            - 0.3)
            .clamp(-0.2, 0.2);
        let loss = Loss::ClampedL1 { clamp: Some(0.1) };
        let state = loss.state(device);
        let reference = net(Encoding::None, true, device);
        let mut reference_adam = FusedAdam::new(
            reference.parameters().into_iter().map(|(_, t)| t).collect(),
            1e-3,
        );
        let ours = net(Encoding::None, true, device);
        let step = MixedStep::new(&[&ours], compute).unwrap();
        let mut adams = step.optimizers(&[1e-3]);
        let mut first_loss = None;
        let mut last = (0.0, 0.0);
        for i in 0..40 {
            let batch = x.narrow(0, (i % 4) * 128, 128);
            let target = s.narrow(0, (i % 4) * 128, 128);
            reference_adam.zero_grad();
            let f = reference.forward_t(&batch, true);
            let l_ref = loss.evaluate_with(&f, &target, &state);
            l_ref.backward();
            reference_adam.step().unwrap();
            let l_ours = step
                .run(
                    &ours,
                    &batch.unsqueeze(0),
                    &target.unsqueeze(0),
                    &loss,
                    &state,
                    &mut adams,
                )
                .unwrap();
            last = (l_ref.double_value(&[]), l_ours.double_value(&[0]));
            first_loss.get_or_insert(last.0);
        }
        step.write_back(0, &ours);
        let first_loss = first_loss.unwrap();
        assert!(
            last.0 < 0.9 * first_loss,
            "the reference did not learn: {first_loss} -> {}",
            last.0
        );
        assert!(
            (last.0 - last.1).abs() <= loss_tol * first_loss,
            "{device:?} {compute:?}: last losses {last:?}, first {first_loss}"
        );
        let Some(tol) = weight_tol else { return };
        for ((name, a), (_, b)) in reference.parameters().iter().zip(ours.parameters()) {
            let moved = (a - &b).abs().max().double_value(&[]);
            let scale = a.abs().max().double_value(&[]);
            assert!(
                moved <= tol * scale.max(1e-2),
                "{name} ({device:?} {compute:?}): {moved} from the autograd step's (largest {scale})"
            );
        }
    }

    /// K networks in one batched step (each its own initial weights, batch
    /// and learning rate) end where each ends trained alone by the K = 1
    /// step: the batched products, the [K, ...] gradient blocks and the K
    /// Adams keep the networks apart.
    #[test]
    fn batched_steps_match_each_network_alone() {
        batched_steps_match_on(Device::Cpu, Kind::Float, Some(1e-4), 1e-4);
    }

    #[test]
    fn cuda_batched_steps_match_each_network_alone() {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        crate::train::set_tf32(false);
        batched_steps_match_on(Device::Cuda(0), Kind::Float, Some(1e-4), 1e-4);
        batched_steps_match_on(Device::Cuda(0), Kind::BFloat16, None, 0.05);
    }

    fn batched_steps_match_on(
        device: Device,
        compute: Kind,
        weight_tol: Option<f64>,
        loss_tol: f64,
    ) {
        let k = 3usize;
        let points: Vec<[f32; 3]> = crate::sampling::uniform_ball_points(3 * 256, 6);
        let x = Tensor::from_slice(crate::model::as_flat(&points))
            .view([3, 256, 3])
            .to_device(device);
        // A different sphere for each network.
        let radii = Tensor::from_slice(&[0.2f32, 0.3, 0.45])
            .view([3, 1])
            .to_device(device);
        let s = (x
            .square()
            .sum_dim_intlist([2i64].as_slice(), false, Kind::Float)
            .sqrt()
            - radii)
            .clamp(-0.2, 0.2);
        let loss = Loss::paper_curriculum();
        let mut state = loss.state(device);
        loss.advance(&mut state, 300);
        let config = NetworkConfig {
            depth: 3,
            width: 16,
            tanh_output: true,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        };
        let rates = [1e-3, 2e-3, 5e-4];
        let networks = || -> Vec<SdfNetwork> {
            (0..k)
                .map(|seed| SdfNetwork::new(&config, device, seed as u64).unwrap())
                .collect()
        };
        let (together, alone) = (networks(), networks());
        let refs: Vec<&SdfNetwork> = together.iter().collect();
        let batched = MixedStep::new(&refs, compute).unwrap();
        let mut batched_adams = batched.optimizers(&rates);
        let singles: Vec<MixedStep> = alone
            .iter()
            .map(|n| MixedStep::new(&[n], compute).unwrap())
            .collect();
        let mut single_adams: Vec<Vec<FusedAdam>> = singles
            .iter()
            .zip(rates)
            .map(|(m, lr)| m.optimizers(&[lr]))
            .collect();
        let mut losses = (vec![], vec![]);
        for i in 0..30 {
            let xb = x.narrow(1, (i % 2) * 128, 128);
            let sb = s.narrow(1, (i % 2) * 128, 128);
            let rows = batched
                .run(&together[0], &xb, &sb, &loss, &state, &mut batched_adams)
                .unwrap();
            losses.0 = Vec::<f64>::try_from(&rows.to_kind(Kind::Double)).unwrap();
            losses.1 = (0..k)
                .map(|j| {
                    singles[j]
                        .run(
                            &alone[j],
                            &xb.narrow(0, j as i64, 1),
                            &sb.narrow(0, j as i64, 1),
                            &loss,
                            &state,
                            &mut single_adams[j],
                        )
                        .unwrap()
                        .double_value(&[0])
                })
                .collect();
        }
        for j in 0..k {
            batched.write_back(j, &together[j]);
            singles[j].write_back(0, &alone[j]);
            let (a, b) = (losses.0[j], losses.1[j]);
            assert!(
                (a - b).abs() <= loss_tol * b.abs().max(1e-3),
                "{device:?} {compute:?} network {j}: loss {a} batched, {b} alone"
            );
            let Some(tol) = weight_tol else { continue };
            for ((name, p), (_, q)) in together[j].parameters().iter().zip(alone[j].parameters()) {
                let moved = (p - &q).abs().max().double_value(&[]);
                let scale = q.abs().max().double_value(&[]);
                assert!(
                    moved <= tol * scale.max(1e-2),
                    "{name} of network {j} ({device:?} {compute:?}): {moved} apart (largest {scale})"
                );
            }
        }
        // The networks really are different: their losses differ.
        assert!(losses.0[0] != losses.0[1] && losses.0[1] != losses.0[2]);
    }

    /// write_back puts the flat parameters into the network, so the model
    /// that is saved and queried is the trained one.
    #[test]
    fn write_back_restores_the_network_parameters() {
        let network = net(Encoding::None, true, Device::Cpu);
        let step = MixedStep::new(&[&network], Kind::Float).unwrap();
        let before = network.evaluate(&[[0.1, 0.2, 0.3]], 16)[0];
        let _ = step
            .master
            .shallow_clone()
            .g_add_(&step.master.ones_like().g_mul_scalar(0.01));
        step.write_back(0, &network);
        let after = network.evaluate(&[[0.1, 0.2, 0.3]], 16)[0];
        assert_ne!(before, after);
        // (Layer by layer: the padding between them moved too.)
        let again = MixedStep::new(&[&network], Kind::Float).unwrap();
        for (a, b) in again.layers.iter().zip(&step.layers) {
            assert_eq!((&a.weight - &b.weight).abs().max().double_value(&[]), 0.0);
            assert_eq!((&a.bias - &b.bias).abs().max().double_value(&[]), 0.0);
        }
    }

    #[test]
    fn networks_it_cannot_train_are_named() {
        let mut config = NetworkConfig {
            depth: 2,
            width: 8,
            initialisation: Initialisation::Geometric { radius: 0.5 },
            ..NetworkConfig::default()
        };
        config.skip = Some(1);
        let network = SdfNetwork::new(&config, Device::Cpu, 0).unwrap();
        let err = MixedStep::new(&[&network], Kind::Float).err().unwrap();
        assert!(
            err.contains("skip connection") && err.contains("plain ReLU"),
            "{err}"
        );
    }
}
