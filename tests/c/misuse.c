/* Arguments that must never kill the host: lengths that lie (SIZE_MAX and
 * lengths that disagree), sizes too large to allocate (10^12 samples,
 * points, batch), mesh files in memory whose headers promise billions of
 * elements, a double free of an error, NULL buffers of length 0, and
 * sizes within the documented maxima on a host with little memory left
 * (an address-space limit, as `ulimit -v` sets).
 * Each case runs in a process of its own (this program run again with the
 * case's number: a fork alone would inherit a parent's thread pools
 * without their threads), so a crash is seen as a signal instead of ending
 * the test; the child exits with the status the call returned.
 * Usage: misuse. Prints one line per case (and, indented,
 * the error records the library logs); exit 0 when every case returned
 * its expected status. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "hisdf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static HisdfMesh *mesh;
static HisdfModel *model;
static float points[9] = {0.1f, 0.2f, 0.3f, 0.5f, 0.5f, 0.5f, -1, 0, 0};
static float values[9];

static HisdfStatus ok_or_die(HisdfStatus s, HisdfError *err, const char *what) {
    if (s != HISDF_STATUS_OK) {
        fprintf(stderr, "setup failed: %s: %s\n", what, hisdf_error_message(err));
        exit(2);
    }
    return s;
}

/* A config with a tiny CPU training, then one key set to `value`. */
static HisdfStatus config_with(const char *key, const char *value) {
    HisdfConfig *cfg = NULL;
    HisdfError *err = NULL;
    ok_or_die(hisdf_config_new("fast", &cfg, &err), err, "config");
    HisdfStatus s = hisdf_config_set(cfg, key, value, &err);
    hisdf_error_free(err);
    hisdf_config_free(cfg);
    return s;
}

static HisdfStatus train_with_samples(const char *width, const char *batch,
                                      const char *surface_samples) {
    HisdfConfig *cfg = NULL;
    HisdfError *err = NULL;
    HisdfModel *m = NULL;
    ok_or_die(hisdf_config_new("fast", &cfg, &err), err, "config");
    const char *settings[][2] = {
        {"device", "cpu"},         {"iterations", "2"},     {"depth", "1"},
        {"width", width},          {"batch_size", batch},   {"surface_samples", surface_samples},
        {"shells", "200:1e-3"},    {"uniform_samples", "100"},
        {"encoding", "none"},      {"check_convergence", "false"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; ++i)
        ok_or_die(hisdf_config_set(cfg, settings[i][0], settings[i][1], &err), err,
                  settings[i][0]);
    HisdfStatus s = hisdf_train(mesh, cfg, NULL, NULL, NULL, &m, &err);
    if (s != HISDF_STATUS_OK) fprintf(stderr, "  (message: %s)\n", hisdf_error_message(err));
    hisdf_error_free(err);
    hisdf_model_free(m);
    hisdf_config_free(cfg);
    return s;
}

static HisdfStatus train_with(const char *width, const char *batch) {
    return train_with_samples(width, batch, "200");
}

/* Leaves this process `room` bytes of address space beyond what it has
 * mapped now: a small host, or one under `ulimit -v`. */
static void leave_only(size_t room) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb == 0) exit(3);
    struct rlimit r = {(rlim_t)(kb * 1024 + room), (rlim_t)(kb * 1024 + room)};
    if (setrlimit(RLIMIT_AS, &r) != 0) exit(4);
}
#define LITTLE ((size_t)256 << 20)
/* 100 million samples are within the 2*10^8 maximum but take GBs. */
static HisdfStatus train_samples_beyond_memory(void) {
    leave_only(LITTLE);
    return train_with_samples("8", "64", "100000000");
}
static HisdfStatus evaluate_points_beyond_memory(void) {
    leave_only(LITTLE);
    HisdfMetrics *m = NULL;
    HisdfStatus s = hisdf_evaluate(mesh, mesh, 50000000, 100, 0, 0, &m, NULL);
    hisdf_metrics_free(m);
    return s;
}
static HisdfStatus chamfer_points_beyond_memory(void) {
    leave_only(LITTLE);
    double cd = 0;
    return hisdf_chamfer(mesh, mesh, 50000000, 0, &cd, NULL);
}
static HisdfStatus extract_dense_beyond_memory(void) {
    leave_only(LITTLE);
    HisdfMesh *m = NULL;
    HisdfStatus s = hisdf_extract(model, 1024, NULL, NULL, NULL, &m, NULL);
    hisdf_mesh_free(m);
    return s;
}

#define TERA ((size_t)1000000000000ull)

static HisdfStatus sdf_size_max(void) {
    return hisdf_mesh_signed_distance(mesh, points, SIZE_MAX, values, 2, NULL);
}
static HisdfStatus sdf_both_lie(void) {
    return hisdf_mesh_signed_distance(mesh, points, SIZE_MAX, values, SIZE_MAX / 3, NULL);
}
static HisdfStatus query_size_max(void) {
    return hisdf_model_query(model, points, SIZE_MAX, values, 2, NULL);
}
static HisdfStatus query_both_lie(void) {
    return hisdf_model_query(model, points, SIZE_MAX, values, SIZE_MAX / 3, NULL);
}
static HisdfStatus gradient_size_max(void) {
    return hisdf_model_gradient(model, points, SIZE_MAX, values, 2, NULL);
}
static HisdfStatus samples_size_max(void) {
    HisdfSamples *s = NULL;
    return hisdf_samples_from_arrays(points, SIZE_MAX, values, 2, &s, NULL);
}
static HisdfStatus mesh_vertices_size_max(void) {
    uint32_t idx[3] = {0, 1, 2};
    HisdfMesh *m = NULL;
    return hisdf_mesh_from_arrays(points, SIZE_MAX, idx, 3, &m, NULL);
}
static HisdfStatus mesh_indices_size_max(void) {
    uint32_t idx[3] = {0, 1, 2};
    HisdfMesh *m = NULL;
    return hisdf_mesh_from_arrays(points, 9, idx, SIZE_MAX, &m, NULL);
}
static HisdfStatus mesh_copy_size_max(void) {
    uint32_t idx[3];
    return hisdf_mesh_copy_arrays(mesh, values, SIZE_MAX, idx, 3, NULL);
}
static HisdfStatus chamfer_tera(void) {
    double cd = 0;
    return hisdf_chamfer(mesh, mesh, TERA, 0, &cd, NULL);
}
static HisdfStatus evaluate_tera(void) {
    HisdfMetrics *m = NULL;
    return hisdf_evaluate(mesh, mesh, TERA, 500, 0.0, 0, &m, NULL);
}
static HisdfStatus evaluate_emd_tera(void) {
    HisdfMetrics *m = NULL;
    return hisdf_evaluate(mesh, mesh, 1000, TERA, 0.0, 0, &m, NULL);
}
static HisdfStatus surface_tera(void) { return config_with("surface_samples", "1000000000000"); }
static HisdfStatus uniform_size_max(void) {
    return config_with("uniform_samples", "18446744073709551615");
}
static HisdfStatus shells_tera(void) { return config_with("shells", "1000000000000:1e-3"); }
static HisdfStatus batch_tera(void) { return config_with("batch_size", "1000000000000"); }
static HisdfStatus resolution_size_max(void) { return config_with("resolution", "18446744073709551615"); }
static HisdfStatus extract_size_max(void) {
    HisdfMesh *m = NULL;
    return hisdf_extract(model, SIZE_MAX, NULL, NULL, NULL, &m, NULL);
}
/* Within every maximum, but 2^24 x 8192 activations (512 GiB) cannot be
 * allocated: libtorch's failure must come back as a status. */
static HisdfStatus train_too_large(void) { return train_with("8192", "16777216"); }
static HisdfStatus gradient_both_lie(void) {
    return hisdf_model_gradient(model, points, SIZE_MAX - 2, values, SIZE_MAX - 2, NULL);
}
static HisdfStatus samples_copy_size_max(void) {
    HisdfSamples *s = NULL;
    float sdf[3] = {0.1f, -0.1f, 0.2f};
    HisdfError *err = NULL;
    ok_or_die(hisdf_samples_from_arrays(points, 9, sdf, 3, &s, &err), err, "samples");
    HisdfStatus st = hisdf_samples_copy_arrays(s, values, SIZE_MAX, sdf, 3, NULL);
    hisdf_samples_free(s);
    return st;
}
static HisdfStatus mesh_buffer_size_max(void) {
    HisdfMesh *m = NULL;
    return hisdf_mesh_load_from_buffer((const uint8_t *)points, SIZE_MAX, NULL, &m, NULL);
}
static HisdfStatus model_buffer_size_max(void) {
    HisdfModel *m = NULL;
    return hisdf_model_load_from_buffer((const uint8_t *)points, SIZE_MAX, HISDF_DEVICE_CPU, &m,
                                        NULL);
}
/* Files whose headers promise far more than their bytes hold: the counts
 * must be refused, not reserved (4 x 10^9 triangles are 48 GB). */
static HisdfStatus mesh_buffer_text(const char *text, const char *hint) {
    HisdfMesh *m = NULL;
    HisdfStatus s =
        hisdf_mesh_load_from_buffer((const uint8_t *)text, strlen(text), hint, &m, NULL);
    hisdf_mesh_free(m);
    return s;
}
static HisdfStatus ply_lying_counts(void) {
    return mesh_buffer_text("ply\nformat ascii 1.0\nelement vertex 4000000000\n"
                            "property float x\nproperty float y\nproperty float z\n"
                            "element face 4000000000\nproperty list uchar int vertex_indices\n"
                            "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
                            "ply");
}
static HisdfStatus off_lying_counts(void) {
    return mesh_buffer_text("OFF\n4000000000 4000000000 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
                            "off");
}
static HisdfStatus stl_lying_count(void) {
    /* 80 header bytes, then a little-endian count of 0xFFFFFFFF and one
     * 50-byte record of zeros. */
    uint8_t stl[80 + 4 + 50];
    memset(stl, 0, sizeof stl);
    memset(stl + 80, 0xff, 4);
    HisdfMesh *m = NULL;
    HisdfStatus s = hisdf_mesh_load_from_buffer(stl, sizeof stl, "stl", &m, NULL);
    hisdf_mesh_free(m);
    return s;
}
static HisdfStatus mesh_normalisation_size_max(void) {
    double centre[3], scale;
    return hisdf_mesh_normalisation(mesh, centre, SIZE_MAX, &scale, NULL);
}
static HisdfStatus model_normalisation_size_max(void) {
    double centre[3], scale;
    return hisdf_model_normalisation(model, centre, SIZE_MAX, &scale, NULL);
}
static HisdfStatus metrics_entry_size_max(void) {
    HisdfMetrics *m = NULL;
    HisdfError *err = NULL;
    ok_or_die(hisdf_evaluate(mesh, mesh, 200, 20, 0.0, 0, &m, &err), err, "evaluate");
    const char *name = NULL;
    double value = 0;
    HisdfStatus s = hisdf_metrics_entry(m, SIZE_MAX, &name, &value, NULL);
    hisdf_metrics_free(m);
    return s;
}
/* A truthful 3 GB buffer of points (untouched pages read as zeros) and
 * its output, with little memory left for the library's copy. */
static HisdfStatus query_copy_beyond_memory(void) {
    size_t n = (size_t)1 << 28;
    float *big = mmap(NULL, 3 * n * sizeof(float), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    float *out = mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big == MAP_FAILED || out == MAP_FAILED) return HISDF_STATUS_PANIC;
    leave_only(LITTLE);
    return hisdf_mesh_signed_distance(mesh, big, 3 * n, out, n, NULL);
}

static HisdfStatus error_double_free(void) {
    HisdfError *err = NULL;
    HisdfStatus s = hisdf_mesh_signed_distance(NULL, points, 3, values, 1, &err);
    if (s != HISDF_STATUS_NULL_ARGUMENT || err == NULL) return HISDF_STATUS_PANIC;
    hisdf_error_free(err);
    hisdf_error_free(err);
#ifndef HISDF_TEST_ASAN
    /* Reading a freed error is refused while its memory is mapped (ASan
     * rightly reports the read, so only the plain build checks it). */
    if (hisdf_error_status(err) != HISDF_STATUS_INVALID_HANDLE) return HISDF_STATUS_PANIC;
#endif
    return HISDF_STATUS_OK;
}
static HisdfStatus empty_buffers(void) {
    HisdfStatus s = hisdf_model_query(model, NULL, 0, NULL, 0, NULL);
    if (s != HISDF_STATUS_OK) return s;
    s = hisdf_model_gradient(model, NULL, 0, NULL, 0, NULL);
    if (s != HISDF_STATUS_OK) return s;
    return hisdf_mesh_signed_distance(mesh, NULL, 0, NULL, 0, NULL);
}
static HisdfStatus empty_mesh(void) {
    HisdfMesh *m = NULL;
    return hisdf_mesh_from_arrays(NULL, 0, NULL, 0, &m, NULL);
}

struct misuse {
    const char *name;
    HisdfStatus want;
    HisdfStatus (*body)(void);
    int needs_model;
};

#define INVALID HISDF_STATUS_INVALID_ARGUMENT
static const struct misuse cases[] = {
    {"signed distance, points_len SIZE_MAX", INVALID, sdf_size_max, 0},
    {"signed distance, both lengths SIZE_MAX-sized", INVALID, sdf_both_lie, 0},
    {"query, points_len SIZE_MAX", INVALID, query_size_max, 1},
    {"query, both lengths SIZE_MAX-sized", INVALID, query_both_lie, 1},
    {"gradient, points_len SIZE_MAX", INVALID, gradient_size_max, 1},
    {"samples from arrays, points_len SIZE_MAX", INVALID, samples_size_max, 0},
    {"mesh from arrays, vertices_len SIZE_MAX", INVALID, mesh_vertices_size_max, 0},
    {"mesh from arrays, indices_len SIZE_MAX", INVALID, mesh_indices_size_max, 0},
    {"mesh copy arrays, vertices_len SIZE_MAX", INVALID, mesh_copy_size_max, 0},
    {"chamfer, 10^12 points", INVALID, chamfer_tera, 0},
    {"evaluate, 10^12 chamfer points", INVALID, evaluate_tera, 0},
    {"evaluate, 10^12 emd points", INVALID, evaluate_emd_tera, 0},
    {"config surface_samples 10^12", INVALID, surface_tera, 0},
    {"config uniform_samples SIZE_MAX", INVALID, uniform_size_max, 0},
    {"config shells 10^12", INVALID, shells_tera, 0},
    {"config batch_size 10^12", INVALID, batch_tera, 0},
    {"config resolution SIZE_MAX", INVALID, resolution_size_max, 0},
    {"extract, resolution SIZE_MAX", INVALID, extract_size_max, 1},
    {"gradient, both lengths SIZE_MAX-sized", INVALID, gradient_both_lie, 1},
    {"samples copy arrays, points_len SIZE_MAX", INVALID, samples_copy_size_max, 0},
    {"mesh from buffer, len SIZE_MAX", INVALID, mesh_buffer_size_max, 0},
    {"model from buffer, len SIZE_MAX", INVALID, model_buffer_size_max, 0},
    {"PLY buffer promising 4e9 vertices and faces", HISDF_STATUS_INVALID_MESH, ply_lying_counts, 0},
    {"OFF buffer promising 4e9 vertices and faces", HISDF_STATUS_INVALID_MESH, off_lying_counts, 0},
    {"binary STL buffer promising 2^32-1 triangles", HISDF_STATUS_INVALID_MESH, stl_lying_count, 0},
    {"mesh normalisation, centre_len SIZE_MAX", INVALID, mesh_normalisation_size_max, 0},
    {"model normalisation, centre_len SIZE_MAX", INVALID, model_normalisation_size_max, 1},
    {"metrics entry, index SIZE_MAX", INVALID, metrics_entry_size_max, 0},
    {"train, 512 GiB of activations", HISDF_STATUS_OUT_OF_MEMORY, train_too_large, 0},
    {"train, 10^8 samples with 256 MB left", HISDF_STATUS_OUT_OF_MEMORY, train_samples_beyond_memory, 0},
    {"evaluate, 5*10^7 points with 256 MB left", HISDF_STATUS_OUT_OF_MEMORY, evaluate_points_beyond_memory, 0},
    {"chamfer, 5*10^7 points with 256 MB left", HISDF_STATUS_OUT_OF_MEMORY, chamfer_points_beyond_memory, 0},
    {"signed distance of 2^28 points with 256 MB left", HISDF_STATUS_OUT_OF_MEMORY, query_copy_beyond_memory, 0},
    {"extract, dense 1024^3 with 256 MB left", HISDF_STATUS_OUT_OF_MEMORY, extract_dense_beyond_memory, 1},
    {"error freed twice", HISDF_STATUS_OK, error_double_free, 0},
    {"NULL buffers of length 0", HISDF_STATUS_OK, empty_buffers, 1},
    {"empty mesh from NULL arrays", HISDF_STATUS_INVALID_MESH, empty_mesh, 0},
};
#define CASES (sizeof cases / sizeof cases[0])

/* Error records of the library, on stdout: a caught panic must be
 * reported here, through the log callback, and never on stderr. */
static void print_log(void *user_data, HisdfLogLevel level, const char *target,
                      const char *message) {
    (void)user_data;
    (void)level;
    printf("  log %s: %s\n", target, message);
}

/* The child: sets up a tetrahedron (and a tiny trained model when the case
 * needs one), runs one case and exits with its status. */
static int run_one(size_t k) {
    if (hisdf_set_log_callback(print_log, NULL, HISDF_LOG_LEVEL_ERROR, NULL) != HISDF_STATUS_OK)
        return 200;
    float v[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    uint32_t t[12] = {0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3};
    HisdfError *err = NULL;
    ok_or_die(hisdf_mesh_from_arrays(v, 12, t, 12, &mesh, &err), err, "mesh");
    if (cases[k].needs_model) {
        HisdfConfig *cfg = NULL;
        ok_or_die(hisdf_config_new("fast", &cfg, &err), err, "config");
        const char *settings[][2] = {
            {"device", "cpu"},      {"iterations", "3"},        {"depth", "1"},
            {"width", "8"},         {"batch_size", "64"},       {"surface_samples", "200"},
            {"shells", "200:1e-3"}, {"uniform_samples", "100"}, {"check_convergence", "false"},
        };
        for (size_t i = 0; i < sizeof settings / sizeof settings[0]; ++i)
            ok_or_die(hisdf_config_set(cfg, settings[i][0], settings[i][1], &err), err,
                      settings[i][0]);
        ok_or_die(hisdf_train(mesh, cfg, NULL, NULL, NULL, &model, &err), err, "train");
        hisdf_config_free(cfg);
    }
    HisdfStatus s = cases[k].body();
    hisdf_model_free(model);
    hisdf_mesh_free(mesh);
    return (int)s;
}

int main(int argc, char **argv) {
    if (argc == 2) return run_one((size_t)strtoul(argv[1], NULL, 10));
    int failures = 0;
    for (size_t k = 0; k < CASES; ++k) {
        char number[32];
        snprintf(number, sizeof number, "%zu", k);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = {argv[0], number, NULL};
            execv(argv[0], args);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        const char *name = cases[k].name;
        if (WIFSIGNALED(st)) {
            printf("case %zu %s: KILLED by signal %d\n", k, name, WTERMSIG(st));
            failures++;
        } else if (WEXITSTATUS(st) != (int)cases[k].want) {
            printf("case %zu %s: returned %s, expected %s\n", k, name,
                   hisdf_status_name((uint32_t)WEXITSTATUS(st)),
                   hisdf_status_name(cases[k].want));
            failures++;
        } else {
            printf("case %zu %s: %s\n", k, name, hisdf_status_name(cases[k].want));
        }
    }
    if (failures) {
        printf("%d of %zu cases failed\n", failures, CASES);
        return 1;
    }
    printf("all %zu misuse cases returned their status\n", CASES);
    return 0;
}
