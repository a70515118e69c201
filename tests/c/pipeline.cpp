// The whole pipeline through the C++ wrapper bindings/cpp/hisdf.hpp: RAII,
// exceptions carrying statuses, lambdas as callbacks, cancellation from
// another thread. Usage: pipeline_cpp MESH SCRATCH_DIR. Exit 0 on success.
#include "hisdf.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>

static int failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

// The call must throw hisdf::Error (or a subclass) with this status.
template <typename F>
static void expect_status(HisdfStatus want, F &&f, int line) {
    try {
        f();
        std::fprintf(stderr, "line %d: no exception, expected %s\n", line, hisdf_status_name(want));
        failures++;
    } catch (const hisdf::Error &e) {
        if (e.status() != want || e.message().empty()) {
            std::fprintf(stderr, "line %d: got %s (%s), expected %s\n", line,
                         hisdf_status_name(e.status()), e.what(), hisdf_status_name(want));
            failures++;
        }
    }
}
#define EXPECT_STATUS(want, ...) expect_status(want, [&] { __VA_ARGS__; }, __LINE__)

static hisdf::Config tiny(int iterations) {
    hisdf::Config c("fast");
    c.set("iterations", iterations)
        .set("width", 16)
        .set("depth", 2)
        .set("device", "cpu")
        .set("batch_size", 512)
        .set("progress_every", 5)
        .set("surface_samples", 1000)
        .set("shells", "2000:1e-3,2000:1e-4")
        .set("uniform_samples", 500)
        // A few dozen iterations are unconverged on purpose: this test
        // is about the API, the convergence check has its own tests.
        .set("check_convergence", "false");
    return c;
}

int main(int argc, char **argv) {
    static_assert(!std::is_copy_constructible<hisdf::Model>::value, "handles are move-only");
    static_assert(std::is_nothrow_move_constructible<hisdf::Mesh>::value, "handles move");
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MESH SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    if (!hisdf::library_matches_header()) {
        std::fprintf(stderr, "header %d.%d does not match library %s\n", HISDF_VERSION_MAJOR,
                     HISDF_VERSION_MINOR, hisdf::version().c_str());
        return 1;
    }
    const std::string scratch = argv[2];
    try {
        CHECK(!hisdf::version().empty());
        std::atomic<int> log_lines{0};
        hisdf::set_log_callback([&](HisdfLogLevel, const char *, const char *) { log_lines++; },
                                HISDF_LOG_LEVEL_DEBUG);

        auto mesh = hisdf::Mesh::load(argv[1]);
        auto info = mesh.info();
        CHECK(info.triangle_count == mesh.triangle_count() && info.triangle_count > 100);

        auto config = tiny(30);
        EXPECT_STATUS(HISDF_STATUS_INVALID_ARGUMENT, config.set("no_such_key", "1"));
        EXPECT_STATUS(HISDF_STATUS_INVALID_ARGUMENT, hisdf::Config("no-such-preset"));

        hisdf::TrainMonitor monitor;
        CHECK(!monitor.read().running && std::isnan(monitor.read().loss));
        config.set_monitor(&monitor);
        int calls = 0;
        double last = -1;
        auto model = hisdf::train(mesh, config, [&](double p) {
            calls++;
            last = p;
            return true;
        });
        CHECK(calls >= 6);
        CHECK(std::fabs(last - 1.0) < 1e-9);
        auto minfo = model.info();
        CHECK(minfo.width == 16 && minfo.depth == 2 && minfo.iterations == 30);
        auto state = monitor.read();
        CHECK(!state.running && state.iteration == 30 && state.iterations == 30);
        CHECK(state.loss == minfo.final_loss && std::isfinite(state.loss));
        config.set_monitor(nullptr);

        std::vector<float> points = {info.bbox_min[0], info.bbox_min[1], info.bbox_min[2],
                                     0.f, 0.f, 0.f};
        auto values = model.query(points);
        CHECK(values.size() == 2 && std::isfinite(values[0]));
        float raw_values[2];
        model.query(points.data(), points.size(), raw_values, 2);
        CHECK(raw_values[0] == values[0] && raw_values[1] == values[1]);
        auto exact = mesh.signed_distance(points);
        CHECK(exact.size() == 2 && std::isfinite(exact[0]));
        auto grads = model.gradient(points);
        CHECK(grads.size() == 6 && std::isfinite(grads[0]));
        EXPECT_STATUS(HISDF_STATUS_INVALID_ARGUMENT, model.query({1.f, 2.f}));
        // Empty containers (data() may be nullptr) are empty inputs, not NULL.
        CHECK(model.query(std::vector<float>{}).empty());
        CHECK(model.gradient(std::vector<float>{}).empty());
        EXPECT_STATUS(HISDF_STATUS_INVALID_MESH, hisdf::Mesh::from_arrays({}, {}));
        CHECK(mesh.signed_distance(std::vector<float>{}).empty());
        // An empty training set is refused as empty, not as a NULL pointer.
        EXPECT_STATUS(HISDF_STATUS_INVALID_ARGUMENT, hisdf::Samples::from_arrays({}, {}));
        // Doubles keep their value: with six decimals 1e-7 would be 0, a
        // learning rate the library refuses.
        hisdf::Config precise("fast");
        precise.set("learning_rate", 1e-7).set("geometric_radius", 0.123456789012345);
        EXPECT_STATUS(HISDF_STATUS_INVALID_ARGUMENT, precise.set("learning_rate", 0.0));
        // ...and are read back as the same double, to the last bit
        // (std::to_string would have sent 0.000123 and 0.123457).
        precise.set("learning_rate", 1.2345678901234567e-4);
        CHECK(std::stod(precise.get("learning_rate")) == 1.2345678901234567e-4);
        CHECK(std::stod(precise.get("geometric_radius")) == 0.123456789012345);

        auto extracted = model.extract(24);
        auto sparse = model.extract_with(hisdf::Config().set("resolution", 24).set("sparse", true));
        CHECK(hisdf::chamfer(extracted, sparse, 2000, 1) < 1e-2);
        auto arrays = extracted.arrays();
        CHECK(!arrays.first.empty() && arrays.second.size() % 3 == 0);
        auto again = hisdf::Mesh::from_arrays(arrays.first, arrays.second);
        CHECK(again.vertex_count() == extracted.vertex_count());
        CHECK(hisdf::chamfer(mesh, extracted, 2000, 1) > 0.0);
        auto metrics = hisdf::evaluate(mesh, extracted, 2000, 100);
        CHECK(metrics.count("chamfer") && metrics.at("chamfer") > 0.0);
        CHECK(metrics.count("f_score") && metrics.at("f_score") <= 1.0);

        model.save(scratch + "/model_cpp.safetensors");
        auto loaded = hisdf::Model::load(scratch + "/model_cpp.safetensors", HISDF_DEVICE_CPU);
        CHECK(loaded.query(points) == values);

        // Settings read back as they were set; the key and preset lists.
        CHECK(hisdf::Config("detail").get("precision") == "bf16");
        CHECK(tiny(7).get("iterations") == "7");
        CHECK(tiny(7).set("encoding", "fourier:4").get("encoding") == "fourier:4");
        EXPECT_STATUS(HISDF_STATUS_INVALID_ARGUMENT, tiny(7).get("no_such_key"));
        auto keys = hisdf::config_keys();
        CHECK(keys.size() > 20 && keys.front() == "preset");
        auto presets = hisdf::presets();
        CHECK(presets.size() == 4 && presets[1] == "detail");
        auto described = hisdf::config_describe();
        CHECK(described.front() == '[' && described.find("\"key\":\"iterations\"") != std::string::npos);

        // Buffers: the same model and mesh through bytes instead of files.
        auto model_bytes = model.to_bytes();
        CHECK(!model_bytes.empty());
        auto from_bytes = hisdf::Model::from_bytes(model_bytes, HISDF_DEVICE_CPU);
        CHECK(from_bytes.query(points) == values);
        EXPECT_STATUS(HISDF_STATUS_INVALID_MODEL_FILE,
                      hisdf::Model::from_bytes(std::vector<std::uint8_t>{1, 2, 3}));
        // Empty buffers are empty files, refused for what they hold.
        EXPECT_STATUS(HISDF_STATUS_INVALID_MODEL_FILE, hisdf::Model::from_bytes({}));
        EXPECT_STATUS(HISDF_STATUS_INVALID_MESH, hisdf::Mesh::from_bytes({}));
        auto mesh_bytes = extracted.to_bytes("ply");
        auto mesh_again = hisdf::Mesh::from_bytes(mesh_bytes);
        CHECK(mesh_again.triangle_count() == extracted.triangle_count());
        EXPECT_STATUS(HISDF_STATUS_INVALID_MESH, extracted.to_bytes("docx"));
        // The model's frame is the training mesh's.
        auto frame = model.normalisation();
        auto mesh_frame = mesh.normalisation();
        CHECK(frame.scale > 0.0 && frame.scale == mesh_frame.scale);
        CHECK(frame.centre[0] == mesh_frame.centre[0] && frame.centre[2] == mesh_frame.centre[2]);
        auto held_out = model.sdf_error(mesh, 3);
        CHECK(held_out.count("sdf_error_near") && held_out.at("sdf_error_near") >= 0.0);
        CHECK(held_out.count("wrong_sign_far") && held_out.at("wrong_sign_far") <= 1.0);

        // Moving transfers ownership; the moved-from object holds nothing.
        hisdf::Model moved = std::move(loaded);
        CHECK(moved.capi() != nullptr && loaded.capi() == nullptr);

        EXPECT_STATUS(HISDF_STATUS_IO, hisdf::Mesh::load("/nonexistent/fox.stl"));
        EXPECT_STATUS(HISDF_STATUS_INVALID_MODEL_FILE, hisdf::Model::load(argv[1]));

        // A lambda returning false cancels: hisdf::Cancelled.
        try {
            model.extract(32, [](double) { return false; });
            CHECK(false);
        } catch (const hisdf::Cancelled &) {
        }
        // An exception thrown in the lambda comes back out as itself.
        try {
            model.extract(32, [](double) -> bool { throw std::out_of_range("mine"); });
            CHECK(false);
        } catch (const std::out_of_range &e) {
            CHECK(std::string(e.what()) == "mine");
        }

        // Cancel from another thread while this one trains.
        hisdf::CancelToken token;
        auto long_config = tiny(1000000);
        long_config.set("progress_every", 1);
        std::thread canceller([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            token.cancel();
        });
        bool cancelled = false;
        try {
            hisdf::train(mesh, long_config, {}, &token);
        } catch (const hisdf::Cancelled &) {
            cancelled = true;
        }
        canceller.join();
        CHECK(cancelled);

        CHECK(log_lines > 0);
        hisdf::set_log_callback({});
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("c++ wrapper pipeline: all checks passed\n");
    return 0;
}
