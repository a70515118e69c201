/* The whole pipeline through nothing but include/hisdf.h, every call
 * checked: load, inspect, exact SDF, sample, train (tiny, CPU), query,
 * gradients, extract, read arrays, save/load the model, Chamfer, and misuse
 * (NULLs, wrong sizes, bad paths, bad keys, freed handles, cancellation from
 * another thread). Usage: pipeline MESH SCRATCH_DIR. Exit 0 on success. */
/* nanosleep and pthreads under -std=c99 */
#define _POSIX_C_SOURCE 200809L

#include "hisdf.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static void expect(HisdfStatus got, HisdfStatus want, HisdfError *err,
                   const char *what, int line) {
    if (got != want) {
        fprintf(stderr, "line %d: %s returned %s (%s), expected %s\n", line,
                what, hisdf_status_name(got),
                err ? hisdf_error_message(err) : "no message",
                hisdf_status_name(want));
        failures++;
    } else if (want != HISDF_STATUS_OK) {
        /* Every failure carries a readable message of the same status. */
        if (err == NULL || hisdf_error_status(err) != want ||
            strlen(hisdf_error_message(err)) == 0) {
            fprintf(stderr, "line %d: %s failed without a proper error\n",
                    line, what);
            failures++;
        }
    }
    hisdf_error_free(err);
}

/* EXPECT(status, call-with-&err-as-last-argument) */
#define EXPECT(want, ...)                                                     \
    do {                                                                      \
        HisdfError *err = NULL;                                               \
        HisdfStatus got = __VA_ARGS__;                                        \
        expect(got, want, err, #__VA_ARGS__, __LINE__);                       \
    } while (0)

struct progress_log {
    int calls;
    double last;
    int monotone;
};

static bool on_progress(void *user_data, double progress) {
    struct progress_log *log = (struct progress_log *)user_data;
    if (progress < log->last) log->monotone = 0;
    log->last = progress;
    log->calls++;
    return true;
}

static bool stop_at_once(void *user_data, double progress) {
    (void)progress;
    (*(int *)user_data)++;
    return false;
}

static int log_records = 0;
static void on_log(void *user_data, HisdfLogLevel level, const char *target,
                   const char *message) {
    (void)user_data;
    (void)level;
    if (target != NULL && message != NULL) log_records++;
}

static HisdfConfig *tiny_config(size_t iterations) {
    HisdfConfig *cfg = NULL;
    char text[32];
    EXPECT(HISDF_STATUS_OK, hisdf_config_new("fast", &cfg, &err));
    sprintf(text, "%lu", (unsigned long)iterations);
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "iterations", text, &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "width", "16", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "depth", "2", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "device", "cpu", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "batch_size", "512", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "progress_every", "5", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "surface_samples", "1000", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "shells", "2000:1e-3,2000:1e-4", &err));
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "uniform_samples", "500", &err));
    /* A few dozen iterations are unconverged on purpose: this test is about
       the API, the convergence check has its own tests. */
    EXPECT(HISDF_STATUS_OK, hisdf_config_set(cfg, "check_convergence", "false", &err));
    return cfg;
}

struct cancel_job {
    HisdfMesh *mesh;
    HisdfConfig *cfg;
    HisdfCancelToken *token;
    HisdfStatus status;
    HisdfModel *model;
};

static void *train_in_thread(void *arg) {
    struct cancel_job *job = (struct cancel_job *)arg;
    job->status = hisdf_train(job->mesh, job->cfg, job->token, NULL, NULL,
                              &job->model, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    HisdfMesh *mesh = NULL, *extracted = NULL, *bad = NULL;
    HisdfConfig *cfg = NULL, *other_cfg = NULL;
    HisdfModel *model = NULL, *loaded = NULL;
    HisdfSamples *samples = NULL;
    HisdfMeshInfo info;
    HisdfModelInfo minfo;
    struct progress_log plog = {0, 0.0, 1};
    size_t nv = 0, nt = 0, i;
    float *vertices, *values, *grads;
    uint32_t *indices;
    float probe[6];
    float dist[2];
    double chamfer = -1.0;
    char model_path[1024], mesh_path[1024];

    if (argc != 3) {
        fprintf(stderr, "usage: %s MESH SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", argv[2]);
    snprintf(mesh_path, sizeof mesh_path, "%s/extracted.obj", argv[2]);

    CHECK(strlen(hisdf_version()) > 0);
    {
        /* The header's version macros name the library it belongs to. */
        char header_version[64];
        snprintf(header_version, sizeof header_version, "%d.%d.%d", HISDF_VERSION_MAJOR,
                 HISDF_VERSION_MINOR, HISDF_VERSION_PATCH);
        CHECK(strcmp(header_version, hisdf_version()) == 0);
    }
    CHECK(strcmp(hisdf_status_name(HISDF_STATUS_OK), "HISDF_STATUS_OK") == 0);
    CHECK(strcmp(hisdf_status_name(HISDF_STATUS_CANCELLED),
                 "HISDF_STATUS_CANCELLED") == 0);
    EXPECT(HISDF_STATUS_OK,
           hisdf_set_log_callback(on_log, NULL, HISDF_LOG_LEVEL_DEBUG, &err));

    /* Load and inspect. */
    EXPECT(HISDF_STATUS_OK, hisdf_mesh_load(argv[1], &mesh, &err));
    EXPECT(HISDF_STATUS_OK, hisdf_mesh_counts(mesh, &nv, &nt, &err));
    CHECK(nv > 100 && nt > 100);
    EXPECT(HISDF_STATUS_OK, hisdf_mesh_info(mesh, &info, &err));
    CHECK(info.triangle_count == nt && info.vertex_count == nv);
    CHECK(info.surface_area > 0.0);
    CHECK(info.bbox_max[0] > info.bbox_min[0]);

    /* Exact SDF: the bounding box centre of a fox is not far outside, a
     * point far beyond the box is outside by at least its distance to it. */
    probe[0] = info.bbox_max[0] + 10.0f * (info.bbox_max[0] - info.bbox_min[0]);
    probe[1] = info.bbox_max[1];
    probe[2] = info.bbox_max[2];
    probe[3] = 0.5f * (info.bbox_min[0] + info.bbox_max[0]);
    probe[4] = 0.5f * (info.bbox_min[1] + info.bbox_max[1]);
    probe[5] = 0.5f * (info.bbox_min[2] + info.bbox_max[2]);
    EXPECT(HISDF_STATUS_OK,
           hisdf_mesh_signed_distance(mesh, probe, 6, dist, 2, &err));
    CHECK(dist[0] >= 10.0f * (info.bbox_max[0] - info.bbox_min[0]) * 0.99f);
    CHECK(fabsf(dist[1]) < dist[0]);
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_mesh_signed_distance(mesh, probe, 6, dist, 1, &err));
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_mesh_signed_distance(mesh, probe, 5, dist, 1, &err));

    /* Configuration: unknown keys and bad values are refused. */
    cfg = tiny_config(40);
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_config_set(cfg, "no_such_key", "1", &err));
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_config_set(cfg, "iterations", "many", &err));
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_config_set(cfg, "width", "0", &err));
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_config_new("no-such-preset", &other_cfg, &err));

    /* Sampling, read back in the mesh's coordinates. */
    EXPECT(HISDF_STATUS_OK, hisdf_sample(mesh, cfg, &samples, &err));
    {
        size_t count = 0;
        float *pts, *sdf;
        EXPECT(HISDF_STATUS_OK, hisdf_samples_count(samples, &count, &err));
        CHECK(count == 1000 + 2000 + 2000 + 500);
        pts = (float *)malloc(count * 3 * sizeof *pts);
        sdf = (float *)malloc(count * sizeof *sdf);
        EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
               hisdf_samples_copy_arrays(samples, pts, count * 3, sdf, count - 1, &err));
        EXPECT(HISDF_STATUS_OK,
               hisdf_samples_copy_arrays(samples, pts, count * 3, sdf, count, &err));
        /* Surface samples lie on the mesh: their exact SDF is ~0. */
        {
            float check[3];
            EXPECT(HISDF_STATUS_OK,
                   hisdf_mesh_signed_distance(mesh, pts + 3 * 1000, 3, check, 1, &err));
            CHECK(fabsf(check[0] - sdf[1000]) <
                  1e-3f * (info.bbox_max[0] - info.bbox_min[0]));
        }
        free(pts);
        free(sdf);
    }

    /* Train a tiny network on the CPU from the samples, with progress. */
    EXPECT(HISDF_STATUS_OK, hisdf_train_samples(samples, cfg, NULL, on_progress,
                                                &plog, &model, &err));
    CHECK(plog.calls >= 40 / 5);
    CHECK(plog.monotone);
    CHECK(fabs(plog.last - 1.0) < 1e-9);
    EXPECT(HISDF_STATUS_OK, hisdf_model_info(model, &minfo, &err));
    CHECK(minfo.width == 16 && minfo.depth == 2 && minfo.iterations == 40);
    CHECK(!minfo.on_cuda);

    /* Query and gradients at the two probes. */
    values = (float *)malloc(2 * sizeof *values);
    grads = (float *)malloc(6 * sizeof *grads);
    EXPECT(HISDF_STATUS_OK, hisdf_model_query(model, probe, 6, values, 2, &err));
    CHECK(isfinite(values[0]) && isfinite(values[1]));
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_model_query(model, probe, 6, values, 3, &err));
    EXPECT(HISDF_STATUS_OK, hisdf_model_gradient(model, probe, 6, grads, 6, &err));
    for (i = 0; i < 6; i++) CHECK(isfinite(grads[i]));
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_model_gradient(model, probe, 6, grads, 2, &err));
    free(values);
    free(grads);

    /* Extract and read the arrays back. */
    plog.calls = 0;
    plog.last = 0.0;
    EXPECT(HISDF_STATUS_OK,
           hisdf_extract(model, 24, NULL, on_progress, &plog, &extracted, &err));
    CHECK(plog.calls > 0);
    EXPECT(HISDF_STATUS_OK, hisdf_mesh_counts(extracted, &nv, &nt, &err));
    CHECK(nv > 0 && nt > 0);
    vertices = (float *)malloc(nv * 3 * sizeof *vertices);
    indices = (uint32_t *)malloc(nt * 3 * sizeof *indices);
    EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
           hisdf_mesh_copy_arrays(extracted, vertices, nv * 3 - 1, indices, nt * 3, &err));
    EXPECT(HISDF_STATUS_OK,
           hisdf_mesh_copy_arrays(extracted, vertices, nv * 3, indices, nt * 3, &err));
    for (i = 0; i < nt * 3; i++) CHECK(indices[i] < nv);
    /* The arrays make the same mesh again. */
    EXPECT(HISDF_STATUS_OK,
           hisdf_mesh_from_arrays(vertices, nv * 3, indices, nt * 3, &bad, &err));
    EXPECT(HISDF_STATUS_OK, hisdf_chamfer(extracted, bad, 2000, 1, &chamfer, &err));
    CHECK(chamfer >= 0.0 && chamfer < 1e-2);
    hisdf_mesh_free(bad);
    bad = NULL;
    EXPECT(HISDF_STATUS_OK, hisdf_chamfer(mesh, extracted, 2000, 1, &chamfer, &err));
    CHECK(isfinite(chamfer) && chamfer > 0.0);
    {
        HisdfMetrics *metrics = NULL;
        double cd = -1.0, f = -1.0, value = 0.0;
        size_t n = 0, k;
        const char *name = NULL;
        int saw_emd = 0;
        EXPECT(HISDF_STATUS_OK,
               hisdf_evaluate(mesh, extracted, 2000, 100, 0.0, 1, &metrics, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_metrics_get(metrics, "chamfer", &cd, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_metrics_get(metrics, "f_score", &f, &err));
        CHECK(cd > 0.0 && f >= 0.0 && f <= 1.0);
        EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
               hisdf_metrics_get(metrics, "no_such_metric", &cd, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_metrics_count(metrics, &n, &err));
        for (k = 0; k < n; k++) {
            EXPECT(HISDF_STATUS_OK, hisdf_metrics_entry(metrics, k, &name, &value, &err));
            if (strcmp(name, "emd") == 0) saw_emd = isfinite(value) && value > 0.0;
        }
        CHECK(saw_emd);
        EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
               hisdf_metrics_entry(metrics, n, &name, &value, &err));
        EXPECT(HISDF_STATUS_INVALID_ARGUMENT,
               hisdf_evaluate(mesh, extracted, 2000, 1000000, 0.0, 1, &metrics, &err));
        hisdf_metrics_free(metrics);
    }
    /* The sparse extraction finds the same surface as the dense one. */
    {
        HisdfConfig *ex = NULL;
        HisdfMesh *sparse = NULL;
        double cd = -1.0;
        EXPECT(HISDF_STATUS_OK, hisdf_config_new(NULL, &ex, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_config_set(ex, "resolution", "24", &err));
        EXPECT(HISDF_STATUS_OK, hisdf_config_set(ex, "sparse", "true", &err));
        EXPECT(HISDF_STATUS_INVALID_ARGUMENT, hisdf_config_set(ex, "resolution", "4096", &err));
        EXPECT(HISDF_STATUS_OK,
               hisdf_extract_with(model, ex, NULL, NULL, NULL, &sparse, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_chamfer(extracted, sparse, 2000, 1, &cd, &err));
        CHECK(cd >= 0.0 && cd < 1e-2);
        hisdf_mesh_free(sparse);
        hisdf_config_free(ex);
    }
    EXPECT(HISDF_STATUS_OK, hisdf_mesh_save(extracted, mesh_path, &err));
    free(vertices);
    free(indices);

    /* Save, load, and the loaded model answers as the trained one. */
    EXPECT(HISDF_STATUS_OK, hisdf_model_save(model, model_path, &err));
    EXPECT(HISDF_STATUS_OK,
           hisdf_model_load(model_path, HISDF_DEVICE_CPU, &loaded, &err));
    {
        float a[2], b[2];
        EXPECT(HISDF_STATUS_OK, hisdf_model_query(model, probe, 6, a, 2, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_model_query(loaded, probe, 6, b, 2, &err));
        CHECK(a[0] == b[0] && a[1] == b[1]);
    }
    hisdf_model_free(loaded);
    loaded = NULL;

    /* Bad paths and files. */
    EXPECT(HISDF_STATUS_IO, hisdf_mesh_load("/nonexistent/fox.stl", &bad, &err));
    CHECK(bad == NULL);
    EXPECT(HISDF_STATUS_IO,
           hisdf_model_load("/nonexistent/m.safetensors", HISDF_DEVICE_CPU, &loaded, &err));
    EXPECT(HISDF_STATUS_INVALID_MODEL_FILE,
           hisdf_model_load(argv[1], HISDF_DEVICE_CPU, &loaded, &err));
    EXPECT(HISDF_STATUS_IO, hisdf_model_save(model, "/nonexistent/dir/m.safetensors", &err));

    /* Wrong arrays. */
    {
        float v[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0};
        uint32_t t[3] = {0, 1, 7};
        EXPECT(HISDF_STATUS_INVALID_MESH, hisdf_mesh_from_arrays(v, 9, t, 3, &bad, &err));
        EXPECT(HISDF_STATUS_INVALID_MESH, hisdf_mesh_from_arrays(v, 8, t, 3, &bad, &err));
        CHECK(bad == NULL);
    }

    /* NULLs: a status, never a crash. */
    EXPECT(HISDF_STATUS_NULL_ARGUMENT, hisdf_mesh_load(NULL, &bad, &err));
    EXPECT(HISDF_STATUS_NULL_ARGUMENT, hisdf_mesh_load(argv[1], NULL, &err));
    EXPECT(HISDF_STATUS_NULL_ARGUMENT, hisdf_model_query(NULL, probe, 6, dist, 2, &err));
    EXPECT(HISDF_STATUS_NULL_ARGUMENT, hisdf_train(mesh, NULL, NULL, NULL, NULL, &loaded, &err));
    CHECK(hisdf_mesh_counts(NULL, &nv, &nt, NULL) == HISDF_STATUS_NULL_ARGUMENT);
    hisdf_mesh_free(NULL);
    hisdf_model_free(NULL);
    hisdf_config_free(NULL);
    hisdf_samples_free(NULL);
    hisdf_cancel_token_free(NULL);
    hisdf_error_free(NULL);
    hisdf_metrics_free(NULL);

    /* A freed handle is refused while its memory is still readable (a
     * safety net only; the check relies on the allocator not reusing the
     * block at once, so a failure here prints but is not fatal under ASan,
     * which poisons freed memory: skip it there). */
#ifndef HISDF_TEST_ASAN
    {
        HisdfCancelToken *t = NULL;
        HisdfMesh *m2 = NULL;
        float v[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0};
        uint32_t tri[3] = {0, 1, 2};
        EXPECT(HISDF_STATUS_OK, hisdf_mesh_from_arrays(v, 9, tri, 3, &m2, &err));
        hisdf_mesh_free(m2);
        EXPECT(HISDF_STATUS_INVALID_HANDLE, hisdf_mesh_counts(m2, &nv, &nt, &err));
        (void)t;
    }
#endif
    /* A handle of another kind is refused. */
    EXPECT(HISDF_STATUS_INVALID_HANDLE, hisdf_mesh_counts((HisdfMesh *)cfg, &nv, &nt, &err));
    CHECK(other_cfg == NULL);

    /* Cancellation by the progress callback. */
    {
        int calls = 0;
        EXPECT(HISDF_STATUS_CANCELLED,
               hisdf_train_samples(samples, cfg, NULL, stop_at_once, &calls, &loaded, &err));
        CHECK(calls == 1);
        CHECK(loaded == NULL);
        calls = 0;
        EXPECT(HISDF_STATUS_CANCELLED,
               hisdf_extract(model, 32, NULL, stop_at_once, &calls, &bad, &err));
        CHECK(bad == NULL);
    }

    /* Cancellation from another thread: a long training stops early. */
    {
        struct cancel_job job;
        pthread_t thread;
        HisdfConfig *long_cfg = tiny_config(1000000);
        memset(&job, 0, sizeof job);
        job.mesh = mesh;
        job.cfg = long_cfg;
        EXPECT(HISDF_STATUS_OK, hisdf_config_set(long_cfg, "progress_every", "1", &err));
        EXPECT(HISDF_STATUS_OK, hisdf_cancel_token_new(&job.token, &err));
        CHECK(pthread_create(&thread, NULL, train_in_thread, &job) == 0);
        {
            struct timespec pause = {0, 300 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        EXPECT(HISDF_STATUS_OK, hisdf_cancel_token_cancel(job.token, &err));
        CHECK(pthread_join(thread, NULL) == 0);
        CHECK(job.status == HISDF_STATUS_CANCELLED);
        CHECK(job.model == NULL);
        /* A cancelled token stops the next call at once, until reset. */
        EXPECT(HISDF_STATUS_CANCELLED,
               hisdf_extract(model, 16, job.token, NULL, NULL, &bad, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_cancel_token_reset(job.token, &err));
        EXPECT(HISDF_STATUS_OK, hisdf_extract(model, 16, job.token, NULL, NULL, &bad, &err));
        hisdf_mesh_free(bad);
        hisdf_cancel_token_free(job.token);
        hisdf_config_free(long_cfg);
    }

    /* Logs reached the host callback; switching it off is accepted. */
    CHECK(log_records > 0);
    EXPECT(HISDF_STATUS_OK, hisdf_set_log_callback(NULL, NULL, HISDF_LOG_LEVEL_OFF, &err));

    hisdf_mesh_free(extracted);
    hisdf_model_free(model);
    hisdf_samples_free(samples);
    hisdf_config_free(cfg);
    hisdf_mesh_free(mesh);

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("c api pipeline: all checks passed\n");
    return 0;
}
