// hisdf.hpp: header-only C++17 wrapper over the C API of include/hisdf.h.
//
// Every class is move-only and owns its handle through std::unique_ptr with
// the C free function as deleter; capi() reaches the raw handle for calls
// this wrapper does not cover. Every failing status becomes an exception in
// one place (check()), carrying the status and the library's message;
// cancellation is hisdf::Cancelled, a distinct type, because it is a user
// action rather than a fault. Thread-safety is the C API's, per handle.
#ifndef HISDF_HPP
#define HISDF_HPP

#include "hisdf.h"

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace hisdf {

/// A failed call: the C status and the library's message.
class Error : public std::runtime_error {
public:
    Error(HisdfStatus status, const std::string &message)
        : std::runtime_error(std::string(hisdf_status_name(status)) + ": " + message),
          status_(status), message_(message) {}
    HisdfStatus status() const noexcept { return status_; }
    const std::string &message() const noexcept { return message_; }

private:
    HisdfStatus status_;
    std::string message_;
};

/// A progress callback or a cancel token stopped the call.
class Cancelled : public Error {
public:
    using Error::Error;
};

namespace detail {

// The one place where statuses become exceptions.
inline void check(HisdfStatus status, HisdfError *error) {
    if (status == HISDF_STATUS_OK) {
        hisdf_error_free(error);
        return;
    }
    std::string message = error ? hisdf_error_message(error) : "";
    hisdf_error_free(error);
    if (status == HISDF_STATUS_CANCELLED) throw Cancelled(status, message);
    throw Error(status, message);
}

// "major.minor" of a version text such as "0.1.0".
inline std::pair<long, long> major_minor(const char *text) {
    char *end = nullptr;
    long major = std::strtol(text, &end, 10);
    long minor = (end && *end == '.') ? std::strtol(end + 1, nullptr, 10) : -1;
    return {major, minor};
}

// The loaded library must speak this header's ABI: the same major version
// and, before 1.0, the same minor. Checked once, on the first call.
inline void check_version() {
    static const bool matches = [] {
        auto loaded = major_minor(hisdf_version());
        return loaded.first == HISDF_VERSION_MAJOR &&
               (HISDF_VERSION_MAJOR > 0 || loaded.second == HISDF_VERSION_MINOR);
    }();
    if (!matches) {
        throw std::runtime_error(std::string("hisdf: this program was built against hisdf ") +
                                 std::to_string(HISDF_VERSION_MAJOR) + "." +
                                 std::to_string(HISDF_VERSION_MINOR) +
                                 " but loaded libhisdf " + hisdf_version() +
                                 "; install the matching library");
    }
}

// Runs a C call whose last argument is HisdfError **, and checks it.
template <typename F>
void call(F &&f) {
    check_version();
    HisdfError *error = nullptr;
    HisdfStatus status = f(&error);
    check(status, error);
}

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

template <typename T, void (*Free)(T *)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

// A progress callable behind the C callback. An exception thrown by the
// callable cancels the call and is rethrown once the C call has returned,
// since unwinding through the library's frames is not allowed.
struct Progress {
    std::function<bool(double)> fn;
    std::exception_ptr thrown;

    static bool trampoline(void *user_data, double progress) {
        auto *self = static_cast<Progress *>(user_data);
        try {
            return self->fn(progress);
        } catch (...) {
            self->thrown = std::current_exception();
            return false;
        }
    }
    HisdfProgressCallback callback() const { return fn ? &Progress::trampoline : nullptr; }
    void *user_data() { return fn ? this : nullptr; }
    // The callable's own exception wins over the CANCELLED it caused.
    void finish(HisdfStatus status, HisdfError *error) const {
        if (thrown) {
            hisdf_error_free(error);
            std::rethrow_exception(thrown);
        }
        check(status, error);
    }
};

}  // namespace detail

using ProgressFn = std::function<bool(double)>;

/// The version of the library actually loaded.
inline std::string version() { return hisdf_version(); }

namespace detail {
/// The library's ", "-separated static lists as strings.
inline std::vector<std::string> split_list(const char *list) {
    std::vector<std::string> out;
    std::string text(list);
    for (std::size_t start = 0; start <= text.size();) {
        std::size_t end = text.find(", ", start);
        if (end == std::string::npos) end = text.size();
        out.push_back(text.substr(start, end - start));
        start = end + 2;
    }
    return out;
}
}  // namespace detail

/// Every key `Config::set` and `Config::get` take.
inline std::vector<std::string> config_keys() { return detail::split_list(hisdf_config_keys()); }
/// Every preset `Config` takes.
inline std::vector<std::string> presets() { return detail::split_list(hisdf_presets()); }
/// Every key `Config::set` takes, described, as the library's JSON text
/// (see `hisdf_config_describe`: key, type, default, range, doc).
inline std::string config_describe() { return hisdf_config_describe(); }

/// Whether the loaded library speaks this header's ABI (every call checks
/// it and throws std::runtime_error when it does not).
inline bool library_matches_header() {
    try {
        detail::check_version();
        return true;
    } catch (const std::runtime_error &) {
        return false;
    }
}

/// Routes the library's logs to `fn` (called from any thread, concurrently;
/// it must be thread-safe). The callable is kept for the process' lifetime;
/// an empty function stops delivery.
using LogFn = std::function<void(HisdfLogLevel, const char *target, const char *message)>;
inline void set_log_callback(LogFn fn, HisdfLogLevel level = HISDF_LOG_LEVEL_INFO) {
    auto *next = fn ? new LogFn(std::move(fn)) : nullptr;
    auto trampoline = [](void *user_data, HisdfLogLevel lvl, const char *target,
                         const char *message) {
        try {
            (*static_cast<LogFn *>(user_data))(lvl, target, message);
        } catch (...) {
            // A log line is not worth unwinding into the library for.
        }
    };
    detail::call([&](HisdfError **e) {
        return hisdf_set_log_callback(next ? +trampoline : nullptr, next,
                                      next ? level : HISDF_LOG_LEVEL_OFF, e);
    });
    // The previous callable may still be running on another thread, so it
    // is leaked rather than freed: one small object per replacement.
}

/// A training's live state (iteration, loss, learning rate, ETA): attach it
/// with Config::set_monitor and read() it from any thread while another
/// trains; each read is one whole report.
class TrainMonitor {
public:
    TrainMonitor() {
        HisdfTrainMonitor *raw = nullptr;
        detail::call([&](HisdfError **e) { return hisdf_train_monitor_new(&raw, e); });
        handle_.reset(raw);
    }
    HisdfTrainState read() const {
        HisdfTrainState state{};
        detail::call(
            [&](HisdfError **e) { return hisdf_train_monitor_read(handle_.get(), &state, e); });
        return state;
    }
    HisdfTrainMonitor *capi() const noexcept { return handle_.get(); }

private:
    detail::Owned<HisdfTrainMonitor, hisdf_train_monitor_free> handle_;
};

/// The unit-sphere frame the library works in: a point p maps to
/// (p - centre) * scale.
struct Normalisation {
    double centre[3];
    double scale;
};

namespace detail {
/// Copies a HisdfBytes out and frees it.
inline std::vector<std::uint8_t> take_bytes(HisdfBytes *raw) {
    Owned<HisdfBytes, hisdf_bytes_free> bytes(raw);
    const std::uint8_t *data = nullptr;
    std::size_t len = 0;
    call([&](HisdfError **e) { return hisdf_bytes_data(bytes.get(), &data, &len, e); });
    return std::vector<std::uint8_t>(data, data + len);
}

/// Every entry of a HisdfMetrics by name; frees it.
inline std::map<std::string, double> take_metrics(HisdfMetrics *raw) {
    Owned<HisdfMetrics, hisdf_metrics_free> metrics(raw);
    std::size_t n = 0;
    call([&](HisdfError **e) { return hisdf_metrics_count(metrics.get(), &n, e); });
    std::map<std::string, double> out;
    for (std::size_t i = 0; i < n; ++i) {
        const char *name = nullptr;
        double value = 0.0;
        call([&](HisdfError **e) { return hisdf_metrics_entry(metrics.get(), i, &name, &value, e); });
        out.emplace(name, value);
    }
    return out;
}
}  // namespace detail

/// Options of sampling, network and training, by name (see
/// hisdf_config_set in hisdf.h for the keys).
class Config {
public:
    explicit Config(const std::string &preset = "fast") {
        HisdfConfig *raw = nullptr;
        detail::call([&](HisdfError **e) { return hisdf_config_new(preset.c_str(), &raw, e); });
        handle_.reset(raw);
    }
    Config &set(const std::string &key, const std::string &value) {
        detail::call([&](HisdfError **e) {
            return hisdf_config_set(handle_.get(), key.c_str(), value.c_str(), e);
        });
        return *this;
    }
    template <typename Number,
              typename = std::enable_if_t<std::is_arithmetic<Number>::value>>
    Config &set(const std::string &key, Number value) {
        if constexpr (std::is_same<Number, bool>::value) {
            return set(key, std::string(value ? "true" : "false"));
        } else if constexpr (std::is_floating_point<Number>::value) {
            // The shortest text that reads back as the same double:
            // std::to_string prints six decimals (1e-7 became "0.000000").
            char text[64];
            auto end = std::to_chars(text, text + sizeof text, static_cast<double>(value)).ptr;
            return set(key, std::string(text, end));
        } else {
            return set(key, std::to_string(value));
        }
    }
    /// An option's current value, in the form `set` takes ("25000",
    /// "fourier:6", "true").
    std::string get(const std::string &key) const {
        HisdfBytes *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_config_get(handle_.get(), key.c_str(), &raw, e);
        });
        auto bytes = detail::take_bytes(raw);
        return std::string(bytes.begin(), bytes.end());
    }
    /// Trainings with this config publish their state to `monitor` (nullptr
    /// detaches); the config keeps a share of it, so either may die first.
    Config &set_monitor(const TrainMonitor *monitor) {
        detail::call([&](HisdfError **e) {
            return hisdf_config_set_monitor(handle_.get(), monitor ? monitor->capi() : nullptr, e);
        });
        return *this;
    }
    HisdfConfig *capi() const noexcept { return handle_.get(); }

private:
    detail::Owned<HisdfConfig, hisdf_config_free> handle_;
};

/// Cancels running calls from any thread.
class CancelToken {
public:
    CancelToken() {
        HisdfCancelToken *raw = nullptr;
        detail::call([&](HisdfError **e) { return hisdf_cancel_token_new(&raw, e); });
        handle_.reset(raw);
    }
    void cancel() const {
        detail::call([&](HisdfError **e) { return hisdf_cancel_token_cancel(handle_.get(), e); });
    }
    void reset() const {
        detail::call([&](HisdfError **e) { return hisdf_cancel_token_reset(handle_.get(), e); });
    }
    HisdfCancelToken *capi() const noexcept { return handle_.get(); }

private:
    detail::Owned<HisdfCancelToken, hisdf_cancel_token_free> handle_;
};

/// A triangle mesh in the caller's coordinates.
class Mesh {
public:
    explicit Mesh(HisdfMesh *owned) noexcept : handle_(owned) {}

    static Mesh load(const std::string &path) {
        HisdfMesh *raw = nullptr;
        detail::call([&](HisdfError **e) { return hisdf_mesh_load(path.c_str(), &raw, e); });
        return Mesh(raw);
    }
    /// xyz per vertex, 3 indices per triangle.
    static Mesh from_arrays(const std::vector<float> &vertices,
                            const std::vector<std::uint32_t> &indices) {
        HisdfMesh *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_mesh_from_arrays(vertices.data(), vertices.size(), indices.data(),
                                          indices.size(), &raw, e);
        });
        return Mesh(raw);
    }
    HisdfMeshInfo info() const {
        HisdfMeshInfo out{};
        detail::call([&](HisdfError **e) { return hisdf_mesh_info(handle_.get(), &out, e); });
        return out;
    }
    std::size_t vertex_count() const { return counts().first; }
    std::size_t triangle_count() const { return counts().second; }
    /// Vertex coordinates, xyz per vertex.
    std::vector<float> vertices() const { return arrays().first; }
    /// Triangle indices, 3 per triangle.
    std::vector<std::uint32_t> indices() const { return arrays().second; }
    std::pair<std::vector<float>, std::vector<std::uint32_t>> arrays() const {
        auto n = counts();
        std::vector<float> v(n.first * 3);
        std::vector<std::uint32_t> i(n.second * 3);
        detail::call([&](HisdfError **e) {
            return hisdf_mesh_copy_arrays(handle_.get(), v.data(), v.size(), i.data(), i.size(),
                                          e);
        });
        return {std::move(v), std::move(i)};
    }
    void save(const std::string &path) const {
        detail::call([&](HisdfError **e) { return hisdf_mesh_save(handle_.get(), path.c_str(), e); });
    }
    /// The mesh as a file's bytes: format "obj", "ply" or "stl".
    std::vector<std::uint8_t> to_bytes(const std::string &format) const {
        HisdfBytes *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_mesh_save_to_buffer(handle_.get(), format.c_str(), &raw, e);
        });
        return detail::take_bytes(raw);
    }
    /// A mesh from a mesh file's bytes; `format_hint` ("obj", "stl", ...)
    /// may be empty, the content decides where it can.
    static Mesh from_bytes(const std::vector<std::uint8_t> &data,
                           const std::string &format_hint = "") {
        HisdfMesh *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_mesh_load_from_buffer(data.data(), data.size(),
                                               format_hint.empty() ? nullptr : format_hint.c_str(),
                                               &raw, e);
        });
        return Mesh(raw);
    }
    /// The unit-sphere frame `hisdf_train` would train this mesh in.
    Normalisation normalisation() const {
        Normalisation out{};
        detail::call([&](HisdfError **e) {
            return hisdf_mesh_normalisation(handle_.get(), out.centre, 3, &out.scale, e);
        });
        return out;
    }
    /// Exact signed distances at points (xyz per point), written to
    /// `values` (points_len / 3 floats).
    void signed_distance(const float *points, std::size_t points_len, float *values,
                         std::size_t values_len) const {
        detail::call([&](HisdfError **e) {
            return hisdf_mesh_signed_distance(handle_.get(), points, points_len, values,
                                              values_len, e);
        });
    }
    std::vector<float> signed_distance(const std::vector<float> &points) const {
        std::vector<float> out(points.size() / 3);
        signed_distance(points.data(), points.size(), out.data(), out.size());
        return out;
    }
    HisdfMesh *capi() const noexcept { return handle_.get(); }

private:
    std::pair<std::size_t, std::size_t> counts() const {
        std::size_t v = 0, t = 0;
        detail::call([&](HisdfError **e) { return hisdf_mesh_counts(handle_.get(), &v, &t, e); });
        return {v, t};
    }
    detail::Owned<HisdfMesh, hisdf_mesh_free> handle_;
};

/// The paper's Chamfer distance in the unit-sphere frame of `reference`.
inline double chamfer(const Mesh &reference, const Mesh &other, std::size_t points = 10000,
                      std::uint64_t seed = 0) {
    double out = 0.0;
    detail::call([&](HisdfError **e) {
        return hisdf_chamfer(reference.capi(), other.capi(), points, seed, &out, e);
    });
    return out;
}

/// Every metric between two meshes by name ("chamfer", "emd", "f_score",
/// "hausdorff", "normal_consistency", ...), in the unit-sphere frame of
/// `reference`; see hisdf_evaluate. f_score_threshold 0 means the default.
inline std::map<std::string, double> evaluate(const Mesh &reference, const Mesh &other,
                                              std::size_t chamfer_points = 10000,
                                              std::size_t emd_points = 500,
                                              double f_score_threshold = 0.0,
                                              std::uint64_t seed = 0) {
    HisdfMetrics *raw = nullptr;
    detail::call([&](HisdfError **e) {
        return hisdf_evaluate(reference.capi(), other.capi(), chamfer_points, emd_points,
                              f_score_threshold, seed, &raw, e);
    });
    return detail::take_metrics(raw);
}

/// A training set: points and their true signed distances.
class Samples {
public:
    explicit Samples(HisdfSamples *owned) noexcept : handle_(owned) {}

    static Samples from_mesh(const Mesh &mesh, const Config &config) {
        HisdfSamples *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_sample(mesh.capi(), config.capi(), &raw, e);
        });
        return Samples(raw);
    }
    static Samples from_arrays(const std::vector<float> &points, const std::vector<float> &sdf) {
        HisdfSamples *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_samples_from_arrays(points.data(), points.size(), sdf.data(), sdf.size(),
                                             &raw, e);
        });
        return Samples(raw);
    }
    std::size_t size() const {
        std::size_t n = 0;
        detail::call([&](HisdfError **e) { return hisdf_samples_count(handle_.get(), &n, e); });
        return n;
    }
    /// Points (xyz per sample) and signed distances, caller's coordinates.
    std::pair<std::vector<float>, std::vector<float>> arrays() const {
        std::size_t n = size();
        std::vector<float> p(n * 3), d(n);
        detail::call([&](HisdfError **e) {
            return hisdf_samples_copy_arrays(handle_.get(), p.data(), p.size(), d.data(),
                                             d.size(), e);
        });
        return {std::move(p), std::move(d)};
    }
    HisdfSamples *capi() const noexcept { return handle_.get(); }

private:
    detail::Owned<HisdfSamples, hisdf_samples_free> handle_;
};

/// A trained network. One thread at a time.
class Model {
public:
    explicit Model(HisdfModel *owned) noexcept : handle_(owned) {}

    static Model load(const std::string &path, HisdfDevice device = HISDF_DEVICE_AUTO) {
        HisdfModel *raw = nullptr;
        detail::call([&](HisdfError **e) { return hisdf_model_load(path.c_str(), device, &raw, e); });
        return Model(raw);
    }
    void save(const std::string &path) const {
        detail::call([&](HisdfError **e) { return hisdf_model_save(handle_.get(), path.c_str(), e); });
    }
    /// SDF values at points (xyz per point), caller's units, written to
    /// `values` (points_len / 3 floats): the span-like form, no copies.
    void query(const float *points, std::size_t points_len, float *values,
               std::size_t values_len) const {
        detail::call([&](HisdfError **e) {
            return hisdf_model_query(handle_.get(), points, points_len, values, values_len, e);
        });
    }
    std::vector<float> query(const std::vector<float> &points) const {
        std::vector<float> out(points.size() / 3);
        query(points.data(), points.size(), out.data(), out.size());
        return out;
    }
    /// SDF gradients (xyz per point) by autograd, written to `gradients`
    /// (points_len floats).
    void gradient(const float *points, std::size_t points_len, float *gradients,
                  std::size_t gradients_len) const {
        detail::call([&](HisdfError **e) {
            return hisdf_model_gradient(handle_.get(), points, points_len, gradients,
                                        gradients_len, e);
        });
    }
    std::vector<float> gradient(const std::vector<float> &points) const {
        std::vector<float> out(points.size());
        gradient(points.data(), points.size(), out.data(), out.size());
        return out;
    }
    HisdfModelInfo info() const {
        HisdfModelInfo out{};
        detail::call([&](HisdfError **e) { return hisdf_model_info(handle_.get(), &out, e); });
        return out;
    }
    /// The model file's bytes, as `save` would write them.
    std::vector<std::uint8_t> to_bytes() const {
        HisdfBytes *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_model_save_to_buffer(handle_.get(), &raw, e);
        });
        return detail::take_bytes(raw);
    }
    static Model from_bytes(const std::vector<std::uint8_t> &data,
                            HisdfDevice device = HISDF_DEVICE_AUTO) {
        HisdfModel *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_model_load_from_buffer(data.data(), data.size(), device, &raw, e);
        });
        return Model(raw);
    }
    /// The frame the network was trained in.
    Normalisation normalisation() const {
        Normalisation out{};
        detail::call([&](HisdfError **e) {
            return hisdf_model_normalisation(handle_.get(), out.centre, 3, &out.scale, e);
        });
        return out;
    }
    /// The network's SDF against the mesh's exact one on held-out samples
    /// ("sdf_error_near", "wrong_sign_far", ...), in the model's frame; see
    /// hisdf_model_sdf_error.
    std::map<std::string, double> sdf_error(const Mesh &mesh, std::uint64_t seed = 0) const {
        HisdfMetrics *raw = nullptr;
        detail::call([&](HisdfError **e) {
            return hisdf_model_sdf_error(handle_.get(), mesh.capi(), seed, &raw, e);
        });
        return detail::take_metrics(raw);
    }
    Mesh extract(std::size_t resolution, ProgressFn progress = {},
                 const CancelToken *cancel = nullptr) const {
        detail::Progress p{std::move(progress), nullptr};
        HisdfMesh *raw = nullptr;
        HisdfError *error = nullptr;
        HisdfStatus status =
            hisdf_extract(handle_.get(), resolution, cancel ? cancel->capi() : nullptr,
                          p.callback(), p.user_data(), &raw, &error);
        Mesh mesh(raw);  // owned before anything can throw
        p.finish(status, error);
        return mesh;
    }
    /// Extraction as `config` says (keys resolution, sparse).
    Mesh extract_with(const Config &config, ProgressFn progress = {},
                      const CancelToken *cancel = nullptr) const {
        detail::Progress p{std::move(progress), nullptr};
        HisdfMesh *raw = nullptr;
        HisdfError *error = nullptr;
        HisdfStatus status =
            hisdf_extract_with(handle_.get(), config.capi(), cancel ? cancel->capi() : nullptr,
                               p.callback(), p.user_data(), &raw, &error);
        Mesh mesh(raw);  // owned before anything can throw
        p.finish(status, error);
        return mesh;
    }
    HisdfModel *capi() const noexcept { return handle_.get(); }

private:
    detail::Owned<HisdfModel, hisdf_model_free> handle_;
};

/// Samples `mesh` and trains a network as `config` says, on this thread.
inline Model train(const Mesh &mesh, const Config &config, ProgressFn progress = {},
                   const CancelToken *cancel = nullptr) {
    detail::Progress p{std::move(progress), nullptr};
    HisdfModel *raw = nullptr;
    HisdfError *error = nullptr;
    HisdfStatus status = hisdf_train(mesh.capi(), config.capi(), cancel ? cancel->capi() : nullptr,
                                     p.callback(), p.user_data(), &raw, &error);
    Model model(raw);  // owned before anything can throw
    p.finish(status, error);
    return model;
}

/// Trains a network on a training set, on this thread.
inline Model train(const Samples &samples, const Config &config, ProgressFn progress = {},
                   const CancelToken *cancel = nullptr) {
    detail::Progress p{std::move(progress), nullptr};
    HisdfModel *raw = nullptr;
    HisdfError *error = nullptr;
    HisdfStatus status =
        hisdf_train_samples(samples.capi(), config.capi(), cancel ? cancel->capi() : nullptr,
                            p.callback(), p.user_data(), &raw, &error);
    Model model(raw);  // owned before anything can throw
    p.finish(status, error);
    return model;
}

}  // namespace hisdf

#endif  // HISDF_HPP
