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
#include <dlfcn.h>
#include <algorithm>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
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

// The first of `names` this process has loaded (libtorch_cuda loads the
// CUDA libraries it was built with), else the first that loads.
void *cuda_library(std::initializer_list<const char *> names) {
  for (const char *name : names)
    if (void *lib = dlopen(name, RTLD_NOW | RTLD_NOLOAD)) return lib;
  for (const char *name : names)
    if (void *lib = dlopen(name, RTLD_NOW)) return lib;
  return nullptr;
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

#ifdef HISDF_WITH_CUDA
// The part of cuBLASLt's C ABI used here (values from CUDA's cublasLt.h,
// cublas_api.h and library_types.h, stable across CUDA 12 and 13). The
// headers themselves cannot be included: the PyPI wheel's CUDA headers lack
// the CCCL headers that cuda_fp16.h needs.
struct cublasLtContext;
typedef cublasLtContext *cublasLtHandle_t;
extern "C++" {
namespace at::cuda {
// libtorch_cuda's handle and workspace, the ones ATen's own products use.
cublasLtHandle_t getCurrentCUDABlasLtHandle();
size_t getCUDABlasLtWorkspaceSize();
void *getCUDABlasLtWorkspace();
}  // namespace at::cuda
}

namespace {
namespace lt_abi {
typedef void *Desc;  // cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, ...
typedef int Status;  // cublasStatus_t
struct Algo {
  uint64_t data[8];
};
struct Heuristic {
  Algo algo;
  size_t workspace_size;
  Status state;
  float waves;
  int reserved[4];
};
constexpr int kSuccess = 0;           // CUBLAS_STATUS_SUCCESS
constexpr int kOpN = 0, kOpT = 1;     // CUBLAS_OP_N, CUBLAS_OP_T
constexpr int kCompute32F = 68;       // CUBLAS_COMPUTE_32F
constexpr int kR32F = 0, kR16BF = 14; // CUDA_R_32F, CUDA_R_16BF
constexpr int kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7, kDescBiasPointer = 8,
              kDescBiasBatchStride = 10, kDescBiasDataType = 26;
constexpr int kEpilogueRelu = 2, kEpilogueReluBias = 6;
constexpr int kLayoutBatchCount = 5, kLayoutBatchStride = 6;
constexpr int kPrefMaxWorkspace = 1;
}  // namespace lt_abi

// cuBLASLt's entry points, looked up in the copy libtorch_cuda already
// loaded: linking it ourselves would make this library need it on its own
// search path, which a host's libtorch resolves with its own.
struct Lt {
  using D = lt_abi::Desc;
  using S = lt_abi::Status;
  S (*desc_create)(D *, int, int);
  S (*desc_destroy)(D);
  S (*desc_set)(D, int, const void *, size_t);
  S (*layout_create)(D *, int, uint64_t, uint64_t, int64_t);
  S (*layout_destroy)(D);
  S (*layout_set)(D, int, const void *, size_t);
  S (*pref_create)(D *);
  S (*pref_destroy)(D);
  S (*pref_set)(D, int, const void *, size_t);
  S (*heuristic)(cublasLtHandle_t, D, D, D, D, D, D, int, lt_abi::Heuristic *, int *);
  S (*matmul)(cublasLtHandle_t, D, const void *, const void *, D, const void *, D, const void *,
              const void *, D, void *, D, const lt_abi::Algo *, void *, size_t, cudaStream_t);
};

const Lt *lt() {
  static const Lt *loaded = []() -> const Lt * {
    void *lib = cuda_library({"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"});
    if (!lib) return nullptr;
    auto *l = new Lt;
    bool ok = true;
    auto get = [&](auto &fn, const char *sym) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, sym));
      ok = ok && fn != nullptr;
    };
    get(l->desc_create, "cublasLtMatmulDescCreate");
    get(l->desc_destroy, "cublasLtMatmulDescDestroy");
    get(l->desc_set, "cublasLtMatmulDescSetAttribute");
    get(l->layout_create, "cublasLtMatrixLayoutCreate");
    get(l->layout_destroy, "cublasLtMatrixLayoutDestroy");
    get(l->layout_set, "cublasLtMatrixLayoutSetAttribute");
    get(l->pref_create, "cublasLtMatmulPreferenceCreate");
    get(l->pref_destroy, "cublasLtMatmulPreferenceDestroy");
    get(l->pref_set, "cublasLtMatmulPreferenceSetAttribute");
    get(l->heuristic, "cublasLtMatmulAlgoGetHeuristic");
    get(l->matmul, "cublasLtMatmul");
    if (!ok) {
      delete l;
      return nullptr;
    }
    return l;
  }();
  return loaded;
}

void lt_check(lt_abi::Status status, const char *what) {
  if (status != lt_abi::kSuccess)
    throw std::runtime_error(std::string("cuBLASLt ") + what + " failed with status " +
                             std::to_string(static_cast<int>(status)));
}

// Descriptors destroyed however the call ends.
struct LtCall {
  const Lt *l;
  lt_abi::Desc op = nullptr;
  lt_abi::Desc a = nullptr, b = nullptr, d = nullptr;
  lt_abi::Desc pref = nullptr;
  ~LtCall() {
    if (pref) l->pref_destroy(pref);
    if (d) l->layout_destroy(d);
    if (b) l->layout_destroy(b);
    if (a) l->layout_destroy(a);
    if (op) l->desc_destroy(op);
  }
};

// A column-major rows x cols matrix (leading dimension ld) repeated `count`
// times, `stride` elements apart, in bf16.
lt_abi::Desc batched_layout(const Lt *l, uint64_t rows, uint64_t cols, int64_t ld, int32_t count,
                            int64_t stride) {
  lt_abi::Desc layout;
  lt_check(l->layout_create(&layout, lt_abi::kR16BF, rows, cols, ld), "layout");
  if (l->layout_set(layout, lt_abi::kLayoutBatchCount, &count, sizeof(count)) != lt_abi::kSuccess ||
      l->layout_set(layout, lt_abi::kLayoutBatchStride, &stride, sizeof(stride)) !=
          lt_abi::kSuccess) {
    l->layout_destroy(layout);
    throw std::runtime_error("cuBLASLt batched layout failed");
  }
  return layout;
}
}  // namespace
#endif

// relu(h w^T + bias) for K networks at once, bf16 on CUDA: h [K, B, in],
// w [K, out, in], bias [K, out] or NULL; one strided-batched cuBLASLt
// product whose epilogue adds each network's bias and applies the ReLU, so
// the activations are written once (ATen's baddbmm broadcasts the bias into
// the output first and a ReLU then reads and writes it again). On success
// *out holds a new [K, B, out] tensor the caller owns; returns 0.
int hisdf_native_bmm_bias_relu(at::Tensor *h, at::Tensor *w, at::Tensor *bias,
                               at::Tensor **out, char *err, size_t err_len) {
  try {
#ifdef HISDF_WITH_CUDA
    const Lt *l = lt();
    TORCH_CHECK(l, "cuBLASLt is not loaded");
    const at::Tensor &H = *h, &W = *w;
    TORCH_CHECK(H.is_cuda() && H.dim() == 3 && W.dim() == 3, "h and w must be 3-d CUDA tensors");
    TORCH_CHECK(H.scalar_type() == at::kBFloat16 && W.scalar_type() == at::kBFloat16,
                "h and w must be bf16");
    const int64_t k = H.size(0), rows = H.size(1), in = H.size(2), width = W.size(1);
    TORCH_CHECK(W.size(0) == k && W.size(2) == in, "w does not match h");
    TORCH_CHECK(H.stride(2) == 1 && H.stride(1) == in && W.stride(2) == 1 && W.stride(1) == in,
                "h and w rows must be contiguous");
    auto Z = at::empty({k, rows, width}, H.options());
    LtCall call{l};
    // Row-major Z [B, out] is column-major Z^T = W h^T: A = W (stored as
    // in x out, transposed), B = h (in x B), D = Z^T (out x B).
    using namespace lt_abi;
    lt_check(l->desc_create(&call.op, kCompute32F, kR32F), "descriptor");
    int32_t ta = kOpT, tb = kOpN;
    lt_check(l->desc_set(call.op, kDescTransA, &ta, sizeof(ta)), "transa");
    lt_check(l->desc_set(call.op, kDescTransB, &tb, sizeof(tb)), "transb");
    uint32_t epilogue = bias ? kEpilogueReluBias : kEpilogueRelu;
    lt_check(l->desc_set(call.op, kDescEpilogue, &epilogue, sizeof(epilogue)), "epilogue");
    if (bias) {
      const at::Tensor &b = *bias;
      TORCH_CHECK(b.is_cuda() && b.scalar_type() == at::kBFloat16 && b.dim() == 2 &&
                      b.size(0) == k && b.size(1) == width && b.stride(1) == 1,
                  "bias must be [K, out] bf16 with contiguous rows");
      const void *ptr = b.data_ptr();
      int64_t stride = b.stride(0);
      int32_t type = kR16BF;
      lt_check(l->desc_set(call.op, kDescBiasPointer, &ptr, sizeof(ptr)), "bias pointer");
      lt_check(l->desc_set(call.op, kDescBiasBatchStride, &stride, sizeof(stride)),
               "bias stride");
      lt_check(l->desc_set(call.op, kDescBiasDataType, &type, sizeof(type)), "bias type");
    }
    const int32_t count = static_cast<int32_t>(k);
    call.a = batched_layout(l, in, width, in, count, W.stride(0));
    call.b = batched_layout(l, in, rows, in, count, H.stride(0));
    call.d = batched_layout(l, width, rows, width, count, rows * width);
    size_t workspace_size = at::cuda::getCUDABlasLtWorkspaceSize();
    void *workspace = at::cuda::getCUDABlasLtWorkspace();
    lt_check(l->pref_create(&call.pref), "preference");
    uint64_t workspace_bytes = workspace_size;
    lt_check(l->pref_set(call.pref, kPrefMaxWorkspace, &workspace_bytes, sizeof(workspace_bytes)),
             "workspace");
    Heuristic result{};
    int found = 0;
    lt_check(l->heuristic(at::cuda::getCurrentCUDABlasLtHandle(), call.op, call.a, call.b,
                          call.d, call.d, call.pref, 1, &result, &found),
             "heuristic");
    TORCH_CHECK(found > 0, "cuBLASLt has no algorithm for this product");
    const float alpha = 1.0f, beta = 0.0f;
    lt_check(l->matmul(at::cuda::getCurrentCUDABlasLtHandle(), call.op, &alpha, W.data_ptr(),
                       call.a, H.data_ptr(), call.b, &beta, Z.data_ptr(), call.d, Z.data_ptr(),
                       call.d, &result.algo, workspace, workspace_size,
                       c10::cuda::getCurrentCUDAStream().stream()),
             "matmul");
    *out = new at::Tensor(Z);
    return 0;
#else
    set_error(err, err_len, "built without CUDA");
    return 1;
#endif
  } catch (const std::exception &e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown C++ exception in bmm_bias_relu");
  }
  return 1;
}

// The body of an entry point: runs `body`, turns an exception into a
// message and 1. (C++ linkage: a template cannot have C's.)
extern "C++" {
template <typename F>
int guarded(const char *what, char *err, size_t err_len, F body) {
  try {
    body();
    return 0;
  } catch (const std::exception &e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, what);
  }
  return 1;
}
}  // extern "C++"

#ifdef HISDF_WITH_CUDA
namespace {
// Adam over the flat float32 buffers of K networks in one launch, with the
// bf16 copy of the new weights written in the same pass. PyTorch's fused
// Adam gives each 65,536 elements one block: a 2.1M-parameter network gets
// 33 blocks on 132 multiprocessors and takes 78 us on an H200, where the
// memory traffic needs about 15. This kernel spans the whole GPU. Network j
// of element i is owner[i] (NULL: one network), its rate lr[j]; step is the
// step count after this step's increment. Arithmetic as PyTorch's Adam:
// m, v updated, then p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// The bf16 copy rounds to nearest even, as a cast does.
const char *kAdamSource = R"(
extern "C" __global__ void hisdf_flat_adam(
    float *__restrict__ p, const float *__restrict__ g, float *__restrict__ m,
    float *__restrict__ v, unsigned short *__restrict__ low,
    const short *__restrict__ owner, const float *__restrict__ lr,
    const float *__restrict__ step, float beta1, float beta2, float eps, long long n) {
  const float t = *step;
  const float bc1 = 1.0f - powf(beta1, t);
  const float bc2_sqrt = sqrtf(1.0f - powf(beta2, t));
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float a = lr[owner ? owner[i] : 0];
    const float gi = g[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float pi = p[i] - (a / bc1) * mi / (sqrtf(vi) / bc2_sqrt + eps);
    p[i] = pi;
    if (low) {
      const unsigned int b = __float_as_uint(pi);
      low[i] = pi != pi ? (unsigned short)((b >> 16) | 0x40u)
                        : (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
    }
  }
}

__device__ unsigned short to_bf16(float x) {
  const unsigned int b = __float_as_uint(x);
  return x != x ? (unsigned short)((b >> 16) | 0x40u)
                : (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

__device__ float from_bf16(unsigned short h) { return __uint_as_float((unsigned int)h << 16); }

// The input layer's points in split bf16 (src/train/mixed.rs says why):
// each row of x [rows, f] becomes [hi, lo, hi, 1, 1, 0...] of `cols`.
extern "C" __global__ void hisdf_split_points(const float *__restrict__ x,
                                              unsigned short *__restrict__ out,
                                              long long rows, int f, int cols) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows * cols;
       i += stride) {
    const long long r = i / cols;
    const int c = (int)(i - r * cols);
    unsigned short v = 0;
    if (c < 3 * f) {
      const float xv = x[r * f + c % f];
      const unsigned short hi = to_bf16(xv);
      v = c >= f && c < 2 * f ? to_bf16(xv - from_bf16(hi)) : hi;
    } else if (c < 3 * f + 2) {
      v = 0x3f80;  // 1.0
    }
    out[i] = v;
  }
}

// The input layer's weights of K networks in split bf16: row o of network
// j becomes [w hi, w hi, w lo, b hi, b lo, 0...] of `cols`, from w [K, n, f]
// (rows contiguous, networks w_stride apart) and b [K, n] (b_stride apart).
extern "C" __global__ void hisdf_split_weights(const float *__restrict__ w,
                                               const float *__restrict__ b,
                                               unsigned short *__restrict__ out, int k, int n,
                                               int f, int cols, long long w_stride,
                                               long long b_stride) {
  const long long total = (long long)k * n * cols;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const long long row = i / cols;
    const int c = (int)(i - row * cols);
    const long long j = row / n, o = row - j * n;
    unsigned short v = 0;
    float value = 0.0f;
    bool low_part = false, used = true;
    if (c < 3 * f) {
      value = w[j * w_stride + o * f + c % f];
      low_part = c >= 2 * f;
    } else if (c < 3 * f + 2) {
      value = b[j * b_stride + o];
      low_part = c == 3 * f + 1;
    } else {
      used = false;
    }
    if (used) {
      const unsigned short hi = to_bf16(value);
      v = low_part ? to_bf16(value - from_bf16(hi)) : hi;
    }
    out[i] = v;
  }
}

// The paper's losses and their gradient with respect to f in one pass
// (src/train/loss.rs defines them; autograd takes about twenty kernels):
// for f, s [rows, b], loss = (1 + lambda sign(s') sign(s' - f'))
// max(|s' - f'| - epsilon, 0) with s', f' clamped to +-delta (clamp != 0;
// mode 0 clamps f always, 1 only on a clamped target's side), clamped L1
// being epsilon = lambda = 0. Writes each sample's loss and d(row mean)/df,
// with autograd's conventions at the kinks (clamp passes its bounds,
// sign(0) = 0).
extern "C" __global__ void hisdf_loss(const float *__restrict__ f, const float *__restrict__ s,
                                      float *__restrict__ loss, float *__restrict__ df,
                                      const float *__restrict__ epsilon,
                                      const float *__restrict__ lambda, long long n, long long b,
                                      int clamp, float delta, int mode) {
  const float eps = *epsilon, lam = *lambda, inv_b = 1.0f / (float)b;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float fi = f[i], si = s[i];
    float fc = fi, sc = si, pass = 1.0f;
    if (clamp) {
      sc = fminf(fmaxf(si, -delta), delta);
      if (mode == 0) {
        fc = fminf(fmaxf(fi, -delta), delta);
        pass = fi >= -delta && fi <= delta ? 1.0f : 0.0f;
      } else if (si >= delta) {
        fc = fminf(fi, delta);
        pass = fi <= delta ? 1.0f : 0.0f;
      } else if (si <= -delta) {
        fc = fmaxf(fi, -delta);
        pass = fi >= -delta ? 1.0f : 0.0f;
      }
    }
    const float diff = sc - fc;
    const float sign_diff = (float)((diff > 0.0f) - (diff < 0.0f));
    const float sign_s = (float)((sc > 0.0f) - (sc < 0.0f));
    const float a = fabsf(diff) - eps;
    const float k = 1.0f + lam * sign_s * sign_diff;
    loss[i] = k * fmaxf(a, 0.0f);
    df[i] = a >= 0.0f ? -k * sign_diff * pass * inv_b : 0.0f;
  }
}
)";

// NVRTC and the CUDA driver, looked up at run time: NVRTC ships with every
// CUDA build of PyTorch (beside cuBLASLt), the driver is loaded by the CUDA
// runtime, so nothing is linked and a CPU build never needs them.
struct Jit {
  int (*create)(void **, const char *, const char *, int, const char *const *,
                const char *const *);
  int (*compile)(void *, int, const char *const *);
  int (*log_size)(void *, size_t *);
  int (*log)(void *, char *);
  int (*cubin_size)(void *, size_t *);
  int (*cubin)(void *, char *);
  int (*destroy)(void **);
  int (*module_load)(void **, const void *);
  int (*get_function)(void **, void *, const char *);
  int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                cudaStream_t, void **, void **);
  int (*attribute)(int *, int, int);
  int (*ctx_device)(int *);
};

// libnvrtc from the folder the loaded cuBLASLt came from (the CUDA wheels
// keep them together), else by name.
void *nvrtc_library() {
  if (const Lt *l = lt()) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(l->matmul), &info) && info.dli_fname) {
      std::string dir(info.dli_fname);
      dir = dir.substr(0, dir.find_last_of('/') + 1);
      for (const char *name : {"libnvrtc.so.13", "libnvrtc.so.12"})
        if (void *lib = dlopen((dir + name).c_str(), RTLD_NOW)) return lib;
    }
  }
  return cuda_library({"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"});
}

const Jit *jit() {
  static const Jit *loaded = []() -> const Jit * {
    void *nvrtc = nvrtc_library();
    void *driver = cuda_library({"libcuda.so.1", "libcuda.so"});
    if (!nvrtc || !driver) return nullptr;
    auto *j = new Jit;
    bool ok = true;
    auto get = [&](void *lib, auto &fn, const char *sym) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, sym));
      ok = ok && fn != nullptr;
    };
    get(nvrtc, j->create, "nvrtcCreateProgram");
    get(nvrtc, j->compile, "nvrtcCompileProgram");
    get(nvrtc, j->log_size, "nvrtcGetProgramLogSize");
    get(nvrtc, j->log, "nvrtcGetProgramLog");
    get(nvrtc, j->cubin_size, "nvrtcGetCUBINSize");
    get(nvrtc, j->cubin, "nvrtcGetCUBIN");
    get(nvrtc, j->destroy, "nvrtcDestroyProgram");
    get(driver, j->module_load, "cuModuleLoadData");
    get(driver, j->get_function, "cuModuleGetFunction");
    get(driver, j->launch, "cuLaunchKernel");
    get(driver, j->attribute, "cuDeviceGetAttribute");
    get(driver, j->ctx_device, "cuCtxGetDevice");
    if (!ok) {
      delete j;
      return nullptr;
    }
    return j;
  }();
  return loaded;
}

// hisdf's kernels (kAdamSource), compiled by NVRTC for `device` and loaded.
// Throws with NVRTC's log on failure.
void *load_module(const Jit *j, int device);

// The kernels of kAdamSource, in the order of their names in device_kernels().
enum Kernel { kAdam, kSplitPoints, kSplitWeights, kLoss };

// What a device's launches need: its module's kernels (looked up once) and
// its multiprocessor count (the launch grid is sized from it).
struct DeviceKernels {
  void *functions[kLoss + 1] = {};
  int multiprocessors = 0;
};

// The kernels of the current device: compiled once per device on first use,
// kept for the life of the process.
const DeviceKernels &device_kernels() {
  static const char *names[] = {"hisdf_flat_adam", "hisdf_split_points", "hisdf_split_weights",
                                "hisdf_loss"};
  static std::mutex lock;
  static DeviceKernels *devices[64] = {};
  const Jit *j = jit();
  TORCH_CHECK(j, "NVRTC or the CUDA driver could not be loaded");
  int device = 0;
  TORCH_CHECK(j->ctx_device(&device) == 0 && device >= 0 && device < 64,
              "no current CUDA context");
  std::lock_guard<std::mutex> guard(lock);
  if (!devices[device]) {
    void *module = load_module(j, device);
    auto *d = new DeviceKernels;
    for (int k = 0; k <= kLoss; ++k)
      TORCH_CHECK(j->get_function(&d->functions[k], module, names[k]) == 0,
                  "cuModuleGetFunction failed for ", names[k]);
    // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT.
    if (j->attribute(&d->multiprocessors, 16, device) != 0 || d->multiprocessors <= 0)
      d->multiprocessors = 132;
    devices[device] = d;
  }
  return *devices[device];
}

void *load_module(const Jit *j, int device) {
  int major = 0, minor = 0;
  TORCH_CHECK(j->attribute(&major, 75, device) == 0 && j->attribute(&minor, 76, device) == 0,
              "cannot read the device's compute capability");
  std::string arch = "--gpu-architecture=sm_" + std::to_string(major * 10 + minor);
  const char *options[] = {arch.c_str()};
  void *program = nullptr;
  TORCH_CHECK(j->create(&program, kAdamSource, "hisdf_adam.cu", 0, nullptr, nullptr) == 0,
              "nvrtcCreateProgram failed");
  int compiled = j->compile(program, 1, options);
  std::string image;
  if (compiled == 0) {
    size_t size = 0;
    j->cubin_size(program, &size);
    image.resize(size);
    j->cubin(program, image.data());
  } else {
    size_t size = 0;
    j->log_size(program, &size);
    image.resize(size);
    j->log(program, image.data());
  }
  j->destroy(&program);
  TORCH_CHECK(compiled == 0, "NVRTC could not compile hisdf's kernels: ", image);
  void *module = nullptr;
  TORCH_CHECK(j->module_load(&module, image.data()) == 0, "cuModuleLoadData failed");
  return module;
}
// Launches one of our grid-stride kernels over n elements on the current
// stream: enough blocks to fill every multiprocessor several times, each
// thread striding over the rest.
void launch(Kernel which, int64_t n, void **args, int device) {
  const DeviceKernels &kernels = device_kernels();
  const unsigned threads = 256;
  const int64_t wanted = (n + threads - 1) / threads;
  const int64_t cap = int64_t{8} * kernels.multiprocessors;
  const auto blocks = static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(wanted, cap)));
  TORCH_CHECK(jit()->launch(kernels.functions[which], blocks, 1, 1, threads, 1, 1, 0,
                            c10::cuda::getCurrentCUDAStream(device).stream(), args, nullptr) == 0,
              "cuLaunchKernel failed");
}
}  // namespace
#endif

// Compiles and loads hisdf's kernels for the current CUDA device, so
// that no compilation happens inside a captured graph. Returns 0.
int hisdf_native_flat_adam_prepare(char *err, size_t err_len) {
  return guarded("unknown C++ exception preparing flat Adam", err, err_len, [&] {
#ifdef HISDF_WITH_CUDA
    device_kernels();
#else
    TORCH_CHECK(false, "built without CUDA");
#endif
  });
}

// One Adam step over flat float32 buffers p, g, m, v (same length n), with
// the bf16 copy of p written into `low` (NULL: none), rates lr [K] indexed by
// owner (int16, one per element; NULL: K = 1) and step a 1-element float
// tensor already holding this step's count. Returns 0.
int hisdf_native_flat_adam(at::Tensor *p, at::Tensor *g, at::Tensor *m, at::Tensor *v,
                           at::Tensor *low, at::Tensor *owner, at::Tensor *lr, at::Tensor *step,
                           double beta1, double beta2, double eps, char *err, size_t err_len) {
  return guarded("unknown C++ exception in flat Adam", err, err_len, [&] {
#ifdef HISDF_WITH_CUDA
    const int64_t n = p->numel();
    auto flat = [&](const at::Tensor &t, at::ScalarType type, const char *name) {
      TORCH_CHECK(t.is_cuda() && t.is_contiguous() && t.scalar_type() == type &&
                      t.numel() == n && t.device() == p->device(),
                  name, " must be a contiguous CUDA tensor of ", n, " ", type);
    };
    flat(*p, at::kFloat, "p");
    flat(*g, at::kFloat, "g");
    flat(*m, at::kFloat, "m");
    flat(*v, at::kFloat, "v");
    if (low) flat(*low, at::kBFloat16, "low");
    if (owner) flat(*owner, at::kShort, "owner");
    TORCH_CHECK(lr->is_cuda() && lr->is_contiguous() && lr->scalar_type() == at::kFloat,
                "lr must be a contiguous float CUDA tensor");
    TORCH_CHECK(step->is_cuda() && step->numel() == 1 && step->scalar_type() == at::kFloat,
                "step must be one float on CUDA");
    void *pp = p->data_ptr(), *gp = g->data_ptr(), *mp = m->data_ptr(), *vp = v->data_ptr();
    void *lowp = low ? low->data_ptr() : nullptr, *ownerp = owner ? owner->data_ptr() : nullptr;
    void *lrp = lr->data_ptr(), *stepp = step->data_ptr();
    float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2),
          e = static_cast<float>(eps);
    long long count = n;
    void *args[] = {&pp, &gp, &mp, &vp, &lowp, &ownerp, &lrp, &stepp, &b1, &b2, &e, &count};
    launch(kAdam, n, args, p->get_device());
#else
    TORCH_CHECK(false, "built without CUDA");
#endif
  });
}

// The split bf16 input of the input layer (src/train/mixed.rs): x
// [K, B, f] float32 (contiguous) into out [K, B, cols] bf16 as
// [hi, lo, hi, 1, 1, 0...]. Returns 0.
int hisdf_native_split_points(at::Tensor *x, at::Tensor *out, char *err, size_t err_len) {
  return guarded("unknown C++ exception splitting points", err, err_len, [&] {
#ifdef HISDF_WITH_CUDA
    const at::Tensor &X = *x, &O = *out;
    TORCH_CHECK(X.is_cuda() && X.is_contiguous() && X.scalar_type() == at::kFloat && X.dim() == 3,
                "x must be a contiguous [K, B, f] float32 CUDA tensor");
    TORCH_CHECK(O.is_cuda() && O.is_contiguous() && O.scalar_type() == at::kBFloat16 &&
                    O.dim() == 3 && O.size(0) == X.size(0) && O.size(1) == X.size(1) &&
                    O.size(2) >= 3 * X.size(2) + 2,
                "out must be a contiguous [K, B, >= 3 f + 2] bf16 CUDA tensor");
    void *xp = X.data_ptr(), *op = O.data_ptr();
    long long rows = X.size(0) * X.size(1);
    int f = static_cast<int>(X.size(2)), cols = static_cast<int>(O.size(2));
    void *args[] = {&xp, &op, &rows, &f, &cols};
    launch(kSplitPoints, rows * cols, args, X.get_device());
#else
    TORCH_CHECK(false, "built without CUDA");
#endif
  });
}

// The split bf16 weights of the input layer: w [K, n, f] and b [K, n]
// float32 (rows contiguous, any batch stride) into out [K, n, cols] bf16 as
// [w hi, w hi, w lo, b hi, b lo, 0...]. Returns 0.
int hisdf_native_split_weights(at::Tensor *w, at::Tensor *b, at::Tensor *out, char *err,
                               size_t err_len) {
  return guarded("unknown C++ exception splitting weights", err, err_len, [&] {
#ifdef HISDF_WITH_CUDA
    const at::Tensor &W = *w, &B = *b, &O = *out;
    TORCH_CHECK(W.is_cuda() && W.scalar_type() == at::kFloat && W.dim() == 3 &&
                    W.stride(2) == 1 && W.stride(1) == W.size(2),
                "w must be [K, n, f] float32 on CUDA with contiguous rows");
    TORCH_CHECK(B.is_cuda() && B.scalar_type() == at::kFloat && B.dim() == 2 &&
                    B.size(0) == W.size(0) && B.size(1) == W.size(1) && B.stride(1) == 1,
                "b must be [K, n] float32 on CUDA");
    TORCH_CHECK(O.is_cuda() && O.is_contiguous() && O.scalar_type() == at::kBFloat16 &&
                    O.dim() == 3 && O.size(0) == W.size(0) && O.size(1) == W.size(1) &&
                    O.size(2) >= 3 * W.size(2) + 2,
                "out must be a contiguous [K, n, >= 3 f + 2] bf16 CUDA tensor");
    void *wp = W.data_ptr(), *bp = B.data_ptr(), *op = O.data_ptr();
    int k = static_cast<int>(W.size(0)), n = static_cast<int>(W.size(1)),
        f = static_cast<int>(W.size(2)), cols = static_cast<int>(O.size(2));
    long long w_stride = W.stride(0), b_stride = B.stride(0);
    void *args[] = {&wp, &bp, &op, &k, &n, &f, &cols, &w_stride, &b_stride};
    launch(kSplitWeights, static_cast<int64_t>(k) * n * cols, args, W.get_device());
#else
    TORCH_CHECK(false, "built without CUDA");
#endif
  });
}

// The loss of every sample and d(row mean)/df for f, s [K, B] float32
// (contiguous, CUDA) into loss and df of the same shape; epsilon and lambda
// 0-dim float CUDA tensors, clamp 0 for no clamp, mode 0 (clamp f always)
// or 1 (on the target's side). Returns 0.
int hisdf_native_loss(at::Tensor *f, at::Tensor *s, at::Tensor *loss, at::Tensor *df,
                      at::Tensor *epsilon, at::Tensor *lambda, int clamp, double delta, int mode,
                      char *err, size_t err_len) {
  return guarded("unknown C++ exception in the loss", err, err_len, [&] {
#ifdef HISDF_WITH_CUDA
    const at::Tensor &F = *f;
    TORCH_CHECK(F.dim() == 2, "f must be [K, B]");
    for (const at::Tensor *t : {f, s, loss, df})
      TORCH_CHECK(t->is_cuda() && t->is_contiguous() && t->scalar_type() == at::kFloat &&
                      t->sizes() == F.sizes(),
                  "f, s, loss and df must be contiguous float32 CUDA tensors of one shape");
    for (const at::Tensor *t : {epsilon, lambda})
      TORCH_CHECK(t->is_cuda() && t->numel() == 1 && t->scalar_type() == at::kFloat,
                  "epsilon and lambda must be one float on CUDA");
    void *fp = F.data_ptr(), *sp = s->data_ptr(), *lp = loss->data_ptr(), *dp = df->data_ptr(),
         *ep = epsilon->data_ptr(), *lamp = lambda->data_ptr();
    long long n = F.numel(), b = F.size(1);
    float d = static_cast<float>(delta);
    void *args[] = {&fp, &sp, &lp, &dp, &ep, &lamp, &n, &b, &clamp, &d, &mode};
    launch(kLoss, n, args, F.get_device());
#else
    TORCH_CHECK(false, "built without CUDA");
#endif
  });
}

// Free and total memory of the current CUDA device, through the CUDA
// runtime libtorch loaded (looked up, not linked, as cuBLASLt is). Returns 0.
int hisdf_native_cuda_memory(size_t *free_bytes, size_t *total_bytes) {
  try {
    using MemGetInfo = int (*)(size_t *, size_t *);
    static MemGetInfo get = []() -> MemGetInfo {
      void *sym = dlsym(RTLD_DEFAULT, "cudaMemGetInfo");
      if (!sym)
        if (void *lib = cuda_library({"libcudart.so.13", "libcudart.so.12"}))
          sym = dlsym(lib, "cudaMemGetInfo");
      return reinterpret_cast<MemGetInfo>(sym);
    }();
    if (!get) return 1;
    return get(free_bytes, total_bytes) == 0 ? 0 : 1;
  } catch (...) {
    return 1;
  }
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
    // Thread-local capture: other threads of the host may use CUDA while we
    // capture (a batch extracts finished shapes while the next pack
    // trains); in the default global mode their allocations and
    // synchronisations would fail or invalidate this capture.
    g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
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
