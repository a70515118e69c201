//! Safe wrappers over src/train/native/step.cpp: PyTorch's fused Adam, TF32
//! control and CUDA graphs, which tch 0.24 does not expose.

use std::ffi::{c_char, c_int, c_void, CStr};

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn hisdf_native_fused_adam(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        steps: *const *mut C_tensor,
        n: usize,
        lr: *mut C_tensor,
        beta1: f64,
        beta2: f64,
        eps: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn hisdf_native_addmm_relu(
        bias: *const C_tensor,
        mat1: *const C_tensor,
        mat2: *const C_tensor,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn hisdf_native_bmm_bias_relu(
        h: *const C_tensor,
        w: *const C_tensor,
        bias: *const C_tensor,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn hisdf_native_flat_adam_prepare(err: *mut c_char, err_len: usize) -> c_int;
    fn hisdf_native_flat_adam(
        p: *const C_tensor,
        g: *const C_tensor,
        m: *const C_tensor,
        v: *const C_tensor,
        low: *const C_tensor,
        owner: *const C_tensor,
        lr: *const C_tensor,
        step: *const C_tensor,
        beta1: f64,
        beta2: f64,
        eps: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn hisdf_native_split_points(
        x: *const C_tensor,
        out: *const C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn hisdf_native_split_weights(
        w: *const C_tensor,
        b: *const C_tensor,
        out: *const C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn hisdf_native_loss(
        f: *const C_tensor,
        s: *const C_tensor,
        loss: *const C_tensor,
        df: *const C_tensor,
        epsilon: *const C_tensor,
        lambda: *const C_tensor,
        clamp: c_int,
        delta: f64,
        mode: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn hisdf_native_cuda_memory(free: *mut usize, total: *mut usize) -> c_int;
    fn hisdf_native_set_tf32(enabled: c_int) -> c_int;
    fn hisdf_native_tf32_enabled() -> c_int;
    fn hisdf_native_has_cuda_graphs() -> c_int;
    fn hisdf_native_graph_begin(device: c_int, err: *mut c_char, err_len: usize) -> *mut c_void;
    fn hisdf_native_graph_end(graph: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn hisdf_native_graph_replay(graph: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn hisdf_native_graph_free(graph: *mut c_void);
}

/// Runs a native call with an error buffer and turns failure into a message.
fn checked(call: impl FnOnce(*mut c_char, usize) -> bool) -> Result<(), String> {
    let mut buf = [0 as c_char; 512];
    if call(buf.as_mut_ptr(), buf.len()) {
        Ok(())
    } else {
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) };
        let msg = msg.to_string_lossy();
        // libtorch messages carry a C++ backtrace after the first line.
        Err(msg
            .lines()
            .next()
            .unwrap_or("native call failed")
            .to_string())
    }
}

/// relu(bias + mat1 mat2), bias broadcast over the rows: one product with
/// the bias and ReLU fused into its epilogue on CUDA (cuBLASLt). tch's own
/// `internal_addmm_activation` drops the bias (its flag lands in `beta`).
pub fn addmm_relu(bias: &Tensor, mat1: &Tensor, mat2: &Tensor) -> Result<Tensor, String> {
    new_tensor(|out, err, len| unsafe {
        hisdf_native_addmm_relu(bias.as_ptr(), mat1.as_ptr(), mat2.as_ptr(), out, err, len)
    })
}

/// The tensor a native call allocated for us in `*out` (tch frees it), or
/// the call's message.
fn new_tensor(
    call: impl FnOnce(*mut *mut C_tensor, *mut c_char, usize) -> c_int,
) -> Result<Tensor, String> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    checked(|err, len| call(&mut out, err, len) == 0)?;
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// relu(h w^T + bias) for K networks at once in bf16 on CUDA (h [K, B, in],
/// w [K, out, in], bias [K, out]): one strided-batched cuBLASLt product with
/// the bias and the ReLU in its epilogue. `None` for the bias applies the
/// ReLU alone.
pub fn bmm_bias_relu(h: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor, String> {
    let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr());
    new_tensor(|out, err, len| unsafe {
        hisdf_native_bmm_bias_relu(h.as_ptr(), w.as_ptr(), bias, out, err, len)
    })
}

/// Adam (PyTorch's arithmetic and defaults) over the flat parameter buffer
/// of K networks on CUDA in one launch that spans the GPU, writing the bf16
/// copy of the new weights in the same pass (src/train/native/step.cpp
/// says why: PyTorch's fused Adam gives a 2M-parameter buffer 33 blocks).
/// Network j's rate is the 0-dim device tensor of `rates[j]`, read at
/// every step, so a captured graph follows rate changes.
pub struct FlatAdam {
    params: Tensor,
    grads: Tensor,
    low: Option<Tensor>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Network of each element (int16); `None` for one network.
    owner: Option<Tensor>,
    step: Tensor,
}

impl FlatAdam {
    /// Compiles the kernel for `params`' device (NVRTC, once per device)
    /// and allocates the moments. `owner[i]` is the network of element i.
    pub fn new(
        params: &Tensor,
        grads: &Tensor,
        low: Option<&Tensor>,
        owner: Option<Tensor>,
    ) -> Result<FlatAdam, String> {
        if !params.device().is_cuda() {
            return Err("the flat Adam kernel runs on CUDA only".into());
        }
        checked(|err, len| unsafe { hisdf_native_flat_adam_prepare(err, len) == 0 })?;
        Ok(FlatAdam {
            params: params.shallow_clone(),
            grads: grads.shallow_clone(),
            low: low.map(|t| t.shallow_clone()),
            exp_avg: params.zeros_like(),
            exp_avg_sq: params.zeros_like(),
            owner,
            step: Tensor::zeros([1], (Kind::Float, params.device())),
        })
    }

    /// One step, network j at the rate `rates[j]` holds.
    pub fn step(&self, rates: &[FusedAdam]) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        let lr = if rates.len() == 1 {
            rates[0].lr.reshape([1])
        } else {
            Tensor::stack(&rates.iter().map(|a| &a.lr).collect::<Vec<_>>(), 0)
        };
        let _ = self.step.shallow_clone().g_add_scalar_(1.0);
        let ptr = |t: Option<&Tensor>| t.map_or(std::ptr::null(), |t| t.as_ptr());
        checked(|err, len| unsafe {
            hisdf_native_flat_adam(
                self.params.as_ptr(),
                self.grads.as_ptr(),
                self.exp_avg.as_ptr(),
                self.exp_avg_sq.as_ptr(),
                ptr(self.low.as_ref()),
                ptr(self.owner.as_ref()),
                lr.as_ptr(),
                self.step.as_ptr(),
                0.9,
                0.999,
                1e-8,
                err,
                len,
            ) == 0
        })
    }
}

/// The input layer's points in split bf16, one kernel: x [K, B, f] float32
/// (contiguous) into `out` [K, B, cols >= 3 f + 2] as [hi, lo, hi, 1, 1,
/// 0...] (hi = bf16(x), lo = bf16(x - hi)). CUDA; the kernels compile on
/// first use ([`FlatAdam::new`] compiles them before a graph is captured).
pub fn split_points(x: &Tensor, out: &Tensor) -> Result<(), String> {
    checked(|err, len| unsafe {
        hisdf_native_split_points(x.as_ptr(), out.as_ptr(), err, len) == 0
    })
}

/// The input layer's weights in split bf16, one kernel: w [K, n, f] and
/// b [K, n] float32 into `out` [K, n, cols] as [w hi, w hi, w lo, b hi,
/// b lo, 0...], so that `split_points` rows times these rows give
/// x w + b to about float32 precision.
pub fn split_weights(w: &Tensor, b: &Tensor, out: &Tensor) -> Result<(), String> {
    checked(|err, len| unsafe {
        hisdf_native_split_weights(w.as_ptr(), b.as_ptr(), out.as_ptr(), err, len) == 0
    })
}

/// The paper's losses in one kernel (src/train/native/step.cpp): for f, s
/// [K, B] float32 on CUDA, every sample's loss and the gradient of its row's
/// mean with respect to f, as (loss, df). `clamp` is the clamp delta,
/// `target_side` the prediction clamp mode, epsilon and lambda the
/// curriculum's device scalars (zero for clamped L1).
pub fn loss_and_gradient(
    f: &Tensor,
    s: &Tensor,
    clamp: Option<f64>,
    target_side: bool,
    epsilon: &Tensor,
    lambda: &Tensor,
) -> Result<(Tensor, Tensor), String> {
    let f = f.contiguous();
    let s = s.contiguous();
    let loss = f.empty_like();
    let df = f.empty_like();
    checked(|err, len| unsafe {
        hisdf_native_loss(
            f.as_ptr(),
            s.as_ptr(),
            loss.as_ptr(),
            df.as_ptr(),
            epsilon.as_ptr(),
            lambda.as_ptr(),
            clamp.is_some() as c_int,
            clamp.unwrap_or(0.0),
            target_side as c_int,
            err,
            len,
        ) == 0
    })?;
    Ok((loss, df))
}

/// Free and total bytes of the current CUDA device's memory; `None` without
/// CUDA.
pub fn cuda_memory() -> Option<(u64, u64)> {
    if !tch::Cuda::is_available() {
        return None;
    }
    let (mut free, mut total) = (0usize, 0usize);
    let ok = unsafe { hisdf_native_cuda_memory(&mut free, &mut total) } == 0;
    ok.then_some((free as u64, total as u64))
}

/// Turns TF32 tensor-core matmuls for float32 on or off, process-wide (it is
/// libtorch's global setting). Work that wants TF32 holds a [`Tf32`] scope
/// instead, which turns it off again however the work ends.
pub fn set_tf32(enabled: bool) {
    unsafe { hisdf_native_set_tf32(enabled as c_int) };
}

/// Whether float32 products may use TF32 now.
pub fn tf32_enabled() -> bool {
    unsafe { hisdf_native_tf32_enabled() != 0 }
}

/// Holders of a [`Tf32`] scope, across threads: TF32 is on while any holds
/// one. (libtorch has one switch per process, so fp32 work running at the
/// same time on another thread gets TF32 products too; a model queried from
/// several threads at once is evaluated in fp32 only when none of them
/// trains or extracts in TF32.)
static TF32_HOLDERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// TF32 on for as long as this lives: dropped at the end of the work, on an
/// early return and while a panic unwinds.
pub struct Tf32(());

impl Tf32 {
    pub fn on() -> Tf32 {
        let mut holders = TF32_HOLDERS.lock().unwrap_or_else(|p| p.into_inner());
        if *holders == 0 {
            set_tf32(true);
        }
        *holders += 1;
        Tf32(())
    }

    /// A scope when `wanted`, else nothing.
    pub fn when(wanted: bool) -> Option<Tf32> {
        wanted.then(Tf32::on)
    }
}

impl Drop for Tf32 {
    fn drop(&mut self) {
        let mut holders = TF32_HOLDERS.lock().unwrap_or_else(|p| p.into_inner());
        *holders -= 1;
        if *holders == 0 {
            set_tf32(false);
        }
    }
}

pub fn cuda_graphs_available() -> bool {
    unsafe { hisdf_native_has_cuda_graphs() != 0 }
}

/// Adam (Kingma & Ba, PyTorch's defaults: betas 0.9/0.999, eps 1e-8, no
/// weight decay) through PyTorch's fused multi-tensor kernel: one launch per
/// step instead of about ten per parameter, and capturable in a CUDA graph
/// because the step counts and the learning rate live on the device.
pub struct FusedAdam {
    params: Vec<Tensor>,
    /// Gradient tensors given at construction (a hand-written backward pass
    /// writes them); `None` reads each parameter's autograd `.grad()`.
    grads: Option<Vec<Tensor>>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    steps: Vec<Tensor>,
    lr: Tensor,
    lr_value: f64,
}

impl FusedAdam {
    pub fn new(params: Vec<Tensor>, lr: f64) -> FusedAdam {
        let device = params[0].device();
        let zeros = |p: &Tensor| p.zeros_like();
        FusedAdam {
            exp_avgs: params.iter().map(zeros).collect(),
            exp_avg_sqs: params.iter().map(zeros).collect(),
            steps: params
                .iter()
                .map(|_| Tensor::zeros([], (Kind::Float, device)))
                .collect(),
            lr: Tensor::from(lr as f32).to_device(device),
            lr_value: lr,
            params,
            grads: None,
        }
    }

    /// A rate and nothing else, for networks whose step a [`FlatAdam`]
    /// takes: it holds the rate on the device that kernel reads.
    pub fn rate_only(lr: f64, device: Device) -> FusedAdam {
        FusedAdam {
            params: Vec::new(),
            grads: Some(Vec::new()),
            exp_avgs: Vec::new(),
            exp_avg_sqs: Vec::new(),
            steps: Vec::new(),
            lr: Tensor::from(lr as f32).to_device(device),
            lr_value: lr,
        }
    }

    /// Adam whose gradients are always read from `grads` (one per parameter,
    /// same shape), not from autograd.
    pub fn with_gradients(params: Vec<Tensor>, grads: Vec<Tensor>, lr: f64) -> FusedAdam {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        FusedAdam {
            grads: Some(grads),
            ..FusedAdam::new(params, lr)
        }
    }

    pub fn learning_rate(&self) -> f64 {
        self.lr_value
    }

    /// Changes the rate for the following steps (graph replays included).
    pub fn set_learning_rate(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        let _ = self.lr.fill_(lr);
        self.lr_value = lr;
    }

    /// Zeroes the gradients in place (keeping their memory, which a captured
    /// graph refers to).
    pub fn zero_grad(&mut self) {
        for p in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    pub fn step(&mut self) -> Result<(), String> {
        if self.params.is_empty() {
            return Err("this Adam holds a rate only: its FlatAdam takes the step".into());
        }
        let _guard = tch::no_grad_guard();
        let mut grads: Vec<Tensor> = match &self.grads {
            Some(g) => g.iter().map(|t| t.shallow_clone()).collect(),
            None => self.params.iter().map(|p| p.grad()).collect(),
        };
        if grads.iter().any(|g| !g.defined()) {
            return Err("Adam step before any backward pass".into());
        }
        let ptrs = |v: &mut [Tensor]| v.iter_mut().map(|t| t.as_mut_ptr()).collect::<Vec<_>>();
        let p = ptrs(&mut self.params);
        let g = ptrs(&mut grads);
        let m = ptrs(&mut self.exp_avgs);
        let v = ptrs(&mut self.exp_avg_sqs);
        let s = ptrs(&mut self.steps);
        let lr = self.lr.as_mut_ptr();
        checked(|err, len| unsafe {
            hisdf_native_fused_adam(
                p.as_ptr(),
                g.as_ptr(),
                m.as_ptr(),
                v.as_ptr(),
                s.as_ptr(),
                p.len(),
                lr,
                0.9,
                0.999,
                1e-8,
                err,
                len,
            ) == 0
        })
    }
}

/// A captured CUDA graph: the kernels of a whole training step, replayed
/// with one launch.
pub struct CudaGraph(*mut c_void);

impl CudaGraph {
    /// Captures everything `body` issues on this thread (autograd's backward
    /// included). `body` must not synchronise with the host.
    pub fn capture(
        device: Device,
        body: impl FnOnce() -> Result<(), String>,
    ) -> Result<CudaGraph, String> {
        let Device::Cuda(index) = device else {
            return Err("CUDA graphs need a CUDA device".into());
        };
        tch::Cuda::synchronize(index as i64);
        let mut raw = std::ptr::null_mut();
        checked(|err, len| {
            raw = unsafe { hisdf_native_graph_begin(index as c_int, err, len) };
            !raw.is_null()
        })?;
        let graph = CudaGraph(raw);
        let body_result = body();
        let end_result =
            checked(|err, len| unsafe { hisdf_native_graph_end(graph.0, err, len) == 0 });
        body_result?;
        end_result?;
        Ok(graph)
    }

    pub fn replay(&self) -> Result<(), String> {
        checked(|err, len| unsafe { hisdf_native_graph_replay(self.0, err, len) == 0 })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        unsafe { hisdf_native_graph_free(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;

    /// TF32 is on while any scope lives, nested or on other threads, and
    /// off again after the last, also when the work holding it panics.
    /// (CUDA tests that train in TF32 share the switch: on a GPU, run the
    /// library tests with --test-threads 1, as the device scripts do.)
    #[test]
    fn tf32_scopes_nest_and_end_with_a_panic() {
        assert!(!tf32_enabled());
        let outer = Tf32::on();
        let inner = Tf32::when(true);
        assert!(Tf32::when(false).is_none());
        assert!(tf32_enabled());
        drop(outer);
        assert!(tf32_enabled(), "the inner scope still holds it");
        drop(inner);
        assert!(!tf32_enabled());
        let unwound = std::panic::catch_unwind(|| {
            let _scope = Tf32::on();
            assert!(tf32_enabled());
            panic!("work failed while holding TF32");
        });
        assert!(unwound.is_err());
        assert!(!tf32_enabled(), "the panic left TF32 on");
    }

    /// The fused kernel must give what tch's (libtorch C++) Adam gives.
    #[test]
    fn fused_adam_matches_libtorch_adam() {
        fused_adam_matches_libtorch_adam_on(Device::Cpu);
    }

    /// cuBLASLt's batched product with the bias and ReLU in its epilogue
    /// computes relu(h w^T + b) for every network of the batch, its own
    /// weights and bias (weights with a batch stride past their size, as
    /// the flat buffer lays them out); on the CPU it is an error, not a
    /// crash.
    #[test]
    fn batched_bias_relu_product_matches_aten() {
        let cpu = Tensor::ones([2, 4, 8], (Kind::BFloat16, Device::Cpu));
        assert!(bmm_bias_relu(&cpu, &cpu, None).is_err());
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        let cuda = Device::Cuda(0);
        let (k, b, n, m) = (3, 1000, 64, 48);
        tch::manual_seed(5);
        let h = Tensor::randn([k, b, n], (Kind::Float, cuda)).to_kind(Kind::BFloat16);
        // Each network's weights 64 elements past the previous one's end.
        let flat = Tensor::randn([k * (m * n + 64)], (Kind::Float, cuda)).g_mul_scalar(0.2);
        let w = flat
            .view([k, m * n + 64])
            .narrow(1, 0, m * n)
            .view([k, m, n])
            .to_kind(Kind::BFloat16);
        let w_strided = Tensor::zeros([k * (m * n + 64)], (Kind::BFloat16, cuda));
        let w_view = w_strided
            .view([k, m * n + 64])
            .narrow(1, 0, m * n)
            .view([k, m, n]);
        w_view.shallow_clone().copy_(&w);
        let bias = Tensor::randn([k, m], (Kind::Float, cuda)).to_kind(Kind::BFloat16);
        let reference = |bias: Option<&Tensor>| {
            let z = h
                .to_kind(Kind::Float)
                .bmm(&w.to_kind(Kind::Float).transpose(1, 2));
            let z = match bias {
                Some(b) => z + b.to_kind(Kind::Float).unsqueeze(1),
                None => z,
            };
            z.relu()
        };
        for bias in [Some(&bias), None] {
            let ours = bmm_bias_relu(&h, &w_view, bias).unwrap();
            assert_eq!(ours.size(), [k, b, m]);
            let want = reference(bias);
            let scale = want.abs().max().double_value(&[]);
            let err = (ours.to_kind(Kind::Float) - &want)
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                err <= 1e-2 * scale,
                "bias {}: error {err} against {scale}",
                bias.is_some()
            );
        }
    }

    /// The flat Adam kernel moves parameters as PyTorch's fused Adam does,
    /// each network of the buffer at its own rate (one frozen at 0, one
    /// changed part way), and writes their bf16 copy; on the CPU it is an
    /// error, not a crash.
    #[test]
    fn flat_adam_matches_fused_adam() {
        let cpu = Tensor::zeros([8], (Kind::Float, Device::Cpu));
        assert!(FlatAdam::new(&cpu, &cpu, None, None).is_err());
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        let cuda = Device::Cuda(0);
        let n = 3000i64;
        tch::manual_seed(11);
        let init = Tensor::randn([3 * n], (Kind::Float, cuda));
        let owner = Tensor::arange(3 * n, (Kind::Int64, cuda))
            .divide_scalar_mode(n, "floor")
            .to_kind(Kind::Int16);
        let params = init.copy();
        let grads = params.zeros_like();
        let low = Tensor::zeros([3 * n], (Kind::BFloat16, cuda));
        let flat = FlatAdam::new(&params, &grads, Some(&low), Some(owner)).unwrap();
        let mut rates: Vec<FusedAdam> = [1e-2, 0.0, 3e-3]
            .iter()
            .map(|&lr| FusedAdam::rate_only(lr, cuda))
            .collect();
        assert!(rates[0].step().is_err(), "a rate-only Adam cannot step");
        // The reference: one fused Adam per network on its own copy.
        let copies: Vec<Tensor> = (0..3).map(|j| init.narrow(0, j * n, n).copy()).collect();
        let copy_grads: Vec<Tensor> = copies.iter().map(|c| c.zeros_like()).collect();
        let mut reference: Vec<FusedAdam> = (0..3)
            .map(|j| {
                FusedAdam::with_gradients(
                    vec![copies[j].shallow_clone()],
                    vec![copy_grads[j].shallow_clone()],
                    rates[j].learning_rate(),
                )
            })
            .collect();
        for i in 0..30 {
            if i == 15 {
                rates[2].set_learning_rate(1e-2);
                reference[2].set_learning_rate(1e-2);
            }
            let g = (&params - 0.5).sin() * (i as f64 + 1.0).recip();
            grads.shallow_clone().copy_(&g);
            flat.step(&rates).unwrap();
            for (j, (grad, adam)) in copy_grads.iter().zip(&mut reference).enumerate() {
                grad.shallow_clone().copy_(&g.narrow(0, j as i64 * n, n));
                adam.step().unwrap();
            }
        }
        for (j, copy) in copies.iter().enumerate() {
            let ours = params.narrow(0, j as i64 * n, n);
            let diff = (&ours - copy).abs().max().double_value(&[]);
            let moved = (&ours - init.narrow(0, j as i64 * n, n))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-5, "network {j}: {diff} from PyTorch's fused Adam");
            assert_eq!(moved > 0.0, j != 1, "network {j} moved {moved}");
        }
        let cast = params.to_kind(Kind::BFloat16).to_kind(Kind::Float);
        let low_diff = (low.to_kind(Kind::Float) - cast)
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(
            low_diff, 0.0,
            "the bf16 copy is not the cast of the parameters"
        );
    }

    /// The split kernels write exactly what ATen's casts and differences
    /// give (both round to nearest even), the ones and the zero padding
    /// included, for weights with a batch stride past their size.
    #[test]
    fn split_kernels_match_aten() {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        let cuda = Device::Cuda(0);
        let bf16 = Kind::BFloat16;
        let split = |t: &Tensor| {
            let hi = t.to_kind(bf16);
            let lo = (t - hi.to_kind(Kind::Float)).to_kind(bf16);
            (hi, lo)
        };
        let (k, b, n, f, cols) = (2, 37, 5, 3, 16);
        let x = Tensor::randn([k, b, f], (Kind::Float, cuda)) * 0.7;
        let out = Tensor::full([k, b, cols], 9.0, (bf16, cuda));
        split_points(&x, &out).unwrap();
        let (hi, lo) = split(&x);
        let ones = Tensor::ones([k, b, 2], (bf16, cuda));
        let zeros = Tensor::zeros([k, b, cols - 3 * f - 2], (bf16, cuda));
        let want = Tensor::cat(&[&hi, &lo, &hi, &ones, &zeros], 2);
        assert!(out.equal(&want), "split points differ from ATen's");
        let flat = Tensor::randn([k * (n * f + 7)], (Kind::Float, cuda));
        let w = flat
            .view([k, n * f + 7])
            .narrow(1, 0, n * f)
            .view([k, n, f]);
        let bias_flat = Tensor::randn([k * (n + 3)], (Kind::Float, cuda));
        let bias = bias_flat.view([k, n + 3]).narrow(1, 0, n);
        let out = Tensor::full([k, n, cols], 9.0, (bf16, cuda));
        split_weights(&w, &bias, &out).unwrap();
        let (w_hi, w_lo) = split(&w);
        let (b_hi, b_lo) = split(&bias.unsqueeze(-1));
        let zeros = Tensor::zeros([k, n, cols - 3 * f - 2], (bf16, cuda));
        let want = Tensor::cat(&[&w_hi, &w_hi, &w_lo, &b_hi, &b_lo, &zeros], 2);
        assert!(out.equal(&want), "split weights differ from ATen's");
    }

    /// The same on CUDA, where a different kernel runs (skipped without a GPU).
    #[test]
    fn fused_adam_matches_libtorch_adam_on_cuda() {
        if tch::Cuda::is_available() {
            fused_adam_matches_libtorch_adam_on(Device::Cuda(0));
        }
    }

    fn fused_adam_matches_libtorch_adam_on(device: Device) {
        let vs_a = tch::nn::VarStore::new(device);
        let vs_b = tch::nn::VarStore::new(device);
        let init = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25])
            .view([2, 2])
            .to_device(device);
        let wa = vs_a.root().var_copy("w", &init);
        let wb = vs_b.root().var_copy("w", &init);
        let mut reference = tch::nn::Adam::default().build(&vs_a, 1e-2).unwrap();
        let mut fused = FusedAdam::new(vec![wb.shallow_clone()], 1e-2);
        let target = Tensor::from_slice(&[1.0f32, 0.0, -1.0, 3.0])
            .view([2, 2])
            .to_device(device);
        for i in 0..20 {
            if i == 10 {
                reference.set_lr(5e-3);
                fused.set_learning_rate(5e-3);
            }
            let la = (&wa - &target).pow_tensor_scalar(2).sum(Kind::Float);
            reference.backward_step(&la);
            fused.zero_grad();
            let lb = (&wb - &target).pow_tensor_scalar(2).sum(Kind::Float);
            lb.backward();
            fused.step().unwrap();
        }
        let diff = (&wa - &wb).abs().max().double_value(&[]);
        let moved = (&wb - &init).abs().max().double_value(&[]);
        assert!(moved > 0.05, "parameters did not move: {moved}");
        assert!(diff < 1e-6, "fused Adam differs from libtorch's by {diff}");
    }

    #[test]
    fn step_without_gradients_is_an_error() {
        let p = Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut adam = FusedAdam::new(vec![p], 1e-3);
        assert!(adam.step().is_err());
    }
}
