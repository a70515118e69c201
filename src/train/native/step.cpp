// Native helpers for the training loop that tch 0.24 does not expose:
// PyTorch's fused (multi-tensor) Adam kernel, TF32 matmul control, and CUDA
// graph capture/replay of a whole training step. Every entry point catches
// C++ exceptions and reports them as a message, so no exception unwinds
// into Rust (that would abort the host).
//
// tch hands us its tensors as `at::Tensor *` (its C_tensor type).

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <cstring>
#include <string>
#include <vector>

#ifdef HISDF_WITH_CUDA
// No CUDAGuard.h: its guard implementation would instantiate inline CUDA
// runtime calls here and make this object need libcudart directly, which a
// host's libtorch already loads with its own search path.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <optional>
#endif

namespace {
void set_error(char *buf, size_t len, const char *msg) {
  if (buf && len) {
    std::strncpy(buf, msg, len - 1);
    buf[len - 1] = '\0';
  }
}

std::vector<at::Tensor> list(at::Tensor **ts, size_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) v.push_back(*ts[i]);
  return v;
}
}  // namespace

extern "C" {

// Adam as torch.optim.Adam(fused=True) computes it, in one multi-tensor
// kernel per device (plus one to count the step) instead of ~10 kernels per
// parameter. `steps` are float
// tensors on the parameters' device (the kernel increments them), `lr` a
// 0-dim tensor there, so a captured graph can replay it with a changing
// learning rate. Returns 0 on success.
int hisdf_native_fused_adam(at::Tensor **params, at::Tensor **grads,
                            at::Tensor **exp_avgs, at::Tensor **exp_avg_sqs,
                            at::Tensor **steps, size_t n, at::Tensor *lr,
                            double beta1, double beta2, double eps,
                            char *err, size_t err_len) {
  try {
    // The kernel reads the step count but does not advance it: PyTorch's
    // optimizer adds one first (with 0, the bias correction divides by 0).
    auto step_list = list(steps, n);
    at::_foreach_add_(step_list, 1);
    at::_fused_adam_(list(params, n), list(grads, n), list(exp_avgs, n),
                     list(exp_avg_sqs, n), {}, step_list, *lr, beta1,
                     beta2, /*weight_decay=*/0.0, eps, /*amsgrad=*/false,
                     /*maximize=*/false);
    return 0;
  } catch (const std::exception &e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown C++ exception in fused Adam");
  }
  return 1;
}

// relu(bias + mat1 mat2) in one product with cuBLASLt's bias+ReLU epilogue
// where CUDA can (ATen's _addmm_activation; a product then ReLU elsewhere).
// Called here rather than through tch: tch 0.24's binding passes its
// `use_gelu` flag positionally into `beta`, so the bias is multiplied by
// 0 (false) and silently dropped. On success *out holds a new tensor that
// the caller owns (tch frees it); returns 0.
int hisdf_native_addmm_relu(at::Tensor *bias, at::Tensor *mat1, at::Tensor *mat2,
                            at::Tensor **out, char *err, size_t err_len) {
  try {
    *out = new at::Tensor(at::_addmm_activation(*bias, *mat1, *mat2, /*beta=*/1,
                                                /*alpha=*/1, /*use_gelu=*/false));
    return 0;
  } catch (const std::exception &e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown C++ exception in addmm_relu");
  }
  return 1;
}

// TF32 tensor-core matmuls for float32 (PyTorch's "high" precision).
int hisdf_native_set_tf32(int enabled) {
  try {
    at::globalContext().setFloat32MatmulPrecision(enabled ? "high" : "highest");
    return 0;
  } catch (...) {
    return 1;
  }
}

// 1 while float32 products may use TF32, 0 when they are exact.
int hisdf_native_tf32_enabled(void) {
  try {
    return at::globalContext().float32MatmulPrecision() !=
           at::Float32MatmulPrecision::HIGHEST;
  } catch (...) {
    return 0;
  }
}

int hisdf_native_has_cuda_graphs(void) {
#ifdef HISDF_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

#ifdef HISDF_WITH_CUDA
struct HisdfGraph {
  at::cuda::CUDAGraph graph;
  // The stream that was current before capture, restored afterwards.
  std::optional<c10::cuda::CUDAStream> previous;

  void restore() {
    if (previous) {
      c10::cuda::setCurrentCUDAStream(*previous);
      previous.reset();
    }
  }
};
#else
struct HisdfGraph {};
#endif

// Starts capturing on a side stream of `device` (CUDA graphs cannot capture
// the legacy default stream); every ATen op this thread issues until
// hisdf_native_graph_end, autograd's backward included, goes into the graph.
HisdfGraph *hisdf_native_graph_begin(int device, char *err, size_t err_len) {
#ifdef HISDF_WITH_CUDA
  HisdfGraph *g = nullptr;
  try {
    g = new HisdfGraph();
    g->previous.emplace(c10::cuda::getCurrentCUDAStream(device));
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, device));
    g->graph.capture_begin();
    return g;
  } catch (const std::exception &e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown C++ exception in graph capture");
  }
  if (g) g->restore();
  delete g;
  return nullptr;
#else
  (void)device;
  set_error(err, err_len, "built without CUDA headers: no CUDA graphs");
  return nullptr;
#endif
}

int hisdf_native_graph_end(HisdfGraph *g, char *err, size_t err_len) {
#ifdef HISDF_WITH_CUDA
  try {
    g->graph.capture_end();
    g->restore();
    return 0;
  } catch (const std::exception &e) {
    g->restore();
    set_error(err, err_len, e.what());
  } catch (...) {
    g->restore();
    set_error(err, err_len, "unknown C++ exception ending graph capture");
  }
#else
  (void)g;
  set_error(err, err_len, "built without CUDA headers: no CUDA graphs");
#endif
  return 1;
}

int hisdf_native_graph_replay(HisdfGraph *g, char *err, size_t err_len) {
#ifdef HISDF_WITH_CUDA
  try {
    g->graph.replay();
    return 0;
  } catch (const std::exception &e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown C++ exception in graph replay");
  }
#else
  (void)g;
  set_error(err, err_len, "built without CUDA headers: no CUDA graphs");
#endif
  return 1;
}

void hisdf_native_graph_free(HisdfGraph *g) {
  try {
    delete g;
  } catch (...) {
  }
}

}  // extern "C"
