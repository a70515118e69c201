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

use crate::model::{Activation, SdfNetwork};

use super::loss::{Loss, LossState};
use super::native::{addmm_relu, FusedAdam};

/// Offsets into the flat buffers are rounded up to this many elements, so
/// every weight matrix starts on a 128-byte boundary (what tensor-core
/// kernels want of their operands).
const ALIGN: i64 = 64;

/// One linear layer as views into the flat buffers.
struct FlatLayer {
    weight: Tensor,
    bias: Tensor,
    weight_grad: Tensor,
    bias_grad: Tensor,
    /// The weight and bias in the compute kind.
    weight_low: Tensor,
    bias_low: Tensor,
}

pub(super) struct MixedStep {
    layers: Vec<FlatLayer>,
    master: Tensor,
    grads: Tensor,
    low: Tensor,
    compute: Kind,
    tanh_output: bool,
}

impl MixedStep {
    /// Why `network` cannot take this step, if it cannot: the hand-written
    /// backward pass covers the plain ReLU network (the paper's) with any
    /// input encoding.
    pub(super) fn unsupported(network: &SdfNetwork) -> Option<String> {
        let c = &network.config;
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

    /// Copies the network's parameters into flat buffers on its device.
    /// `compute` is the hidden layers' kind: BFloat16 on CUDA, Float for
    /// the exact reference.
    pub(super) fn new(network: &SdfNetwork, compute: Kind) -> Result<MixedStep, String> {
        if let Some(why) = Self::unsupported(network) {
            return Err(why);
        }
        let device = network.device();
        let params = network.parameters();
        let mut offsets = Vec::with_capacity(params.len());
        let mut total = 0i64;
        for (_, t) in &params {
            offsets.push(total);
            total += (t.numel() as i64 + ALIGN - 1) / ALIGN * ALIGN;
        }
        let _guard = tch::no_grad_guard();
        let master = Tensor::zeros([total], (Kind::Float, device));
        // Padding between tensors is never written: its gradient stays zero
        // and Adam leaves it at zero.
        let grads = Tensor::zeros([total], (Kind::Float, device));
        let low = Tensor::zeros([total], (compute, device));
        let view = |flat: &Tensor, i: usize| {
            let t = &params[i].1;
            flat.narrow(0, offsets[i], t.numel() as i64)
                .view(t.size().as_slice())
        };
        for (i, (_, t)) in params.iter().enumerate() {
            view(&master, i).copy_(t);
        }
        // parameters() lists weight then bias for every layer.
        let layers = (0..params.len() / 2)
            .map(|l| FlatLayer {
                weight: view(&master, 2 * l),
                bias: view(&master, 2 * l + 1),
                weight_grad: view(&grads, 2 * l),
                bias_grad: view(&grads, 2 * l + 1),
                weight_low: view(&low, 2 * l),
                bias_low: view(&low, 2 * l + 1),
            })
            .collect();
        let step = MixedStep {
            layers,
            master,
            grads,
            low,
            compute,
            tanh_output: network.config.tanh_output,
        };
        step.refresh_low();
        Ok(step)
    }

    /// Adam over the flat buffer with its flat gradient.
    pub(super) fn optimizer(&self, learning_rate: f64) -> FusedAdam {
        FusedAdam::with_gradients(
            vec![self.master.shallow_clone()],
            vec![self.grads.shallow_clone()],
            learning_rate,
        )
    }

    fn refresh_low(&self) {
        let _guard = tch::no_grad_guard();
        self.low.shallow_clone().copy_(&self.master);
    }

    /// One iteration on the batch (x the raw points, s their SDF): forward,
    /// loss, backward, Adam, and the new low-precision copy. Returns the
    /// batch's loss (a device scalar; nothing waits for the device).
    pub(super) fn run(
        &self,
        network: &SdfNetwork,
        x: &Tensor,
        s: &Tensor,
        loss: &Loss,
        loss_state: &LossState,
        adam: &mut FusedAdam,
    ) -> Result<Tensor, String> {
        let (input, activations, f) = tch::no_grad(|| self.forward(network, x))?;
        // The loss and its gradient with respect to f through autograd: a
        // few elementwise kernels on [B], whatever loss is configured.
        let f_leaf = f.detach().set_requires_grad(true);
        let value = loss.evaluate_with(&f_leaf, s, loss_state);
        value.backward();
        let df = f_leaf.grad();
        tch::no_grad(|| self.backward(&input, &activations, &f, &df));
        adam.step()?;
        self.refresh_low();
        Ok(value.detach())
    }

    /// The input (float32, encoded), every hidden layer's output (post-ReLU,
    /// compute kind) and f = f_theta(x) (float32, [B]).
    fn forward(
        &self,
        network: &SdfNetwork,
        x: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>, Tensor), String> {
        let input = network.encode(x);
        let (first, rest) = self.layers.split_first().expect("a network has layers");
        let (output, hidden) = rest.split_last().expect("a network has an output layer");
        let mut activations = Vec::with_capacity(hidden.len() + 1);
        activations
            .push(addmm_relu(&first.bias, &input, &first.weight.tr())?.to_kind(self.compute));
        for layer in hidden {
            let h = activations.last().expect("the first layer's output");
            activations.push(addmm_relu(&layer.bias_low, h, &layer.weight_low.tr())?);
        }
        let last = activations.last().expect("the first layer's output");
        let o = self.mm_f32(last, &output.weight_low.tr()) + &output.bias;
        let o = o.squeeze_dim(-1);
        let f = if self.tanh_output { o.tanh() } else { o };
        Ok((input, activations, f))
    }

    /// Gradients of every parameter into the flat gradient buffer, from
    /// df = dL/df.
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
        self.mm_f32_into(&output.weight_grad, &d_o_low.tr(), last);
        sum_rows_into(&output.bias_grad, &d_o);
        let mut d_h = d_o_low.mm(&output.weight_low);
        for (i, layer) in hidden.iter().enumerate().rev() {
            // activations[i + 1] is this layer's output, activations[i] its
            // input; ReLU's output is positive exactly where its input is.
            let d_z = activations[i + 1].threshold_backward(&d_h, 0.0);
            self.mm_f32_into(&layer.weight_grad, &d_z.tr(), &activations[i]);
            sum_rows_into(&layer.bias_grad, &d_z);
            d_h = d_z.mm(&layer.weight_low);
        }
        let d_z = activations[0].threshold_backward(&d_h, 0.0);
        let input_low = input.to_kind(self.compute);
        self.mm_f32_into(&first.weight_grad, &d_z.tr(), &input_low);
        sum_rows_into(&first.bias_grad, &d_z);
    }

    /// a b with float32 accumulation and a float32 result.
    fn mm_f32(&self, a: &Tensor, b: &Tensor) -> Tensor {
        if self.compute == Kind::Float {
            a.mm(b)
        } else {
            a.mm_dtype(b, Kind::Float)
        }
    }

    fn mm_f32_into(&self, out: &Tensor, a: &Tensor, b: &Tensor) {
        if self.compute == Kind::Float {
            let _ = a.mm_out(out, b);
        } else {
            let _ = a.mm_dtype_out(out, b, Kind::Float);
        }
    }

    /// Copies the trained flat parameters back into the network's own.
    pub(super) fn write_back(&self, network: &SdfNetwork) {
        let _guard = tch::no_grad_guard();
        let params = network.parameters();
        let flat = self
            .layers
            .iter()
            .flat_map(|l| [&l.weight, &l.bias].into_iter());
        for ((_, t), src) in params.iter().zip(flat) {
            t.shallow_clone().copy_(src);
        }
    }
}

/// Column sums of a [B, n] gradient, accumulated and written as float32.
fn sum_rows_into(out: &Tensor, d: &Tensor) {
    let _ = d.sum_intlist_out(out, [0i64].as_slice(), false, Kind::Float);
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
                let step = MixedStep::new(&network, compute).unwrap();
                let (input, activations, f2) = tch::no_grad(|| step.forward(&network, &x)).unwrap();
                let f_scale = f.abs().max().double_value(&[]);
                let diff = (&f - &f2).abs().max().double_value(&[]);
                assert!(
                    diff <= forward_tol * f_scale.max(1.0),
                    "{device:?} {compute:?}: forward differs by {diff} (largest value {f_scale})"
                );
                let f_leaf = f2.detach().set_requires_grad(true);
                loss.evaluate_with(&f_leaf, &s, &state).backward();
                tch::no_grad(|| step.backward(&input, &activations, &f2, &f_leaf.grad()));
                let flat = step
                    .layers
                    .iter()
                    .flat_map(|l| [&l.weight_grad, &l.bias_grad].into_iter());
                for ((name, p), ours) in network.parameters().iter().zip(flat) {
                    let reference = p.grad();
                    let scale = reference.abs().max().double_value(&[]);
                    let err = (&reference - ours).abs().max().double_value(&[]);
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
        let step = MixedStep::new(&ours, compute).unwrap();
        let mut adam = step.optimizer(1e-3);
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
                .run(&ours, &batch, &target, &loss, &state, &mut adam)
                .unwrap();
            last = (l_ref.double_value(&[]), l_ours.double_value(&[]));
            first_loss.get_or_insert(last.0);
        }
        step.write_back(&ours);
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

    /// write_back puts the flat parameters into the network, so the model
    /// that is saved and queried is the trained one.
    #[test]
    fn write_back_restores_the_network_parameters() {
        let network = net(Encoding::None, true, Device::Cpu);
        let step = MixedStep::new(&network, Kind::Float).unwrap();
        let before = network.evaluate(&[[0.1, 0.2, 0.3]], 16)[0];
        let _ = step
            .master
            .shallow_clone()
            .g_add_(&step.master.ones_like().g_mul_scalar(0.01));
        step.write_back(&network);
        let after = network.evaluate(&[[0.1, 0.2, 0.3]], 16)[0];
        assert_ne!(before, after);
        // (Layer by layer: the padding between them moved too.)
        let again = MixedStep::new(&network, Kind::Float).unwrap();
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
        let err = MixedStep::new(&network, Kind::Float).err().unwrap();
        assert!(
            err.contains("skip connection") && err.contains("plain ReLU"),
            "{err}"
        );
    }
}
