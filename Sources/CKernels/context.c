/*
 * context.c: the CPU context (thread count and reusable scratch memory) and the parallel
 * loop our own kernels use.
 *
 * Threads: OpenBLAS keeps one process-wide thread count, so a context applies its count
 * before each BLAS call (cheap: OpenBLAS only records the number). Our loops (im2col,
 * col2im, transposes) start plain pthreads per call; at the sizes convolution sees, a few
 * tens of microseconds of start-up is small against the work, and no idle pool spins.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

enum { CIM_MAX_THREADS = 256, CIM_WORKSPACE_ALIGNMENT = 64 };

static int online_cores_(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

cim_status cim_cpu_context_create(int num_threads, cim_cpu_context **out_context) {
    if (!out_context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_context is NULL");
    *out_context = NULL;
    cim_cpu_context *context = calloc(1, sizeof *context);
    if (!context) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for a CPU context");
    cim_status status = cim_cpu_context_set_threads(context, num_threads);
    if (status != CIM_OK) {
        free(context);
        return status;
    }
    *out_context = context;
    return CIM_OK;
}

void cim_cpu_context_destroy(cim_cpu_context *context) {
    if (!context) return;
    free(context->workspace);
    free(context);
}

cim_status cim_cpu_context_set_threads(cim_cpu_context *context, int num_threads) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (num_threads > CIM_MAX_THREADS)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "%d threads requested, at most %d",
                        num_threads, CIM_MAX_THREADS);
    context->threads = num_threads > 0 ? num_threads : online_cores_();
    return CIM_OK;
}

cim_status cim_cpu_context_set_conv_algorithm(cim_cpu_context *context,
                                              cim_conv_algorithm algorithm) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (algorithm != CIM_CONV_AUTO && algorithm != CIM_CONV_IM2COL &&
        algorithm != CIM_CONV_WINOGRAD)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "unknown convolution algorithm %d",
                        (int)algorithm);
    context->conv_algorithm = algorithm;
    return CIM_OK;
}

int cim_cpu_context_threads(const cim_cpu_context *context) {
    return context ? context->threads : 0;
}

size_t cim_cpu_context_workspace_bytes(const cim_cpu_context *context) {
    return context ? context->workspace_floats * sizeof(float) : 0;
}

void cim_cpu_context_apply_threads_(const cim_cpu_context *context) {
    if (openblas_get_num_threads() != context->threads)
        openblas_set_num_threads(context->threads);
}

cim_status cim_cpu_context_workspace_(cim_cpu_context *context, size_t floats, float **out) {
    if (floats > context->workspace_floats) {
        void *memory = NULL;
        size_t bytes = floats * sizeof(float);
        if (posix_memalign(&memory, CIM_WORKSPACE_ALIGNMENT, bytes) != 0)
            return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "cannot allocate %zu bytes of workspace",
                            bytes);
        free(context->workspace);
        context->workspace = memory;
        context->workspace_floats = floats;
    }
    *out = context->workspace;
    return CIM_OK;
}

const char *cim_cpu_blas_info(void) {
    static char info[512];
    snprintf(info, sizeof info, "%s (core %s)", openblas_get_config(), openblas_get_corename());
    return info;
}

/* ---- parallel loops ------------------------------------------------------------------- */

typedef struct range_job_ {
    cim_range_fn_ fn;
    void *arg;
    int begin, end;
} range_job_;

static void *run_range_(void *opaque) {
    range_job_ *job = opaque;
    job->fn(job->arg, job->begin, job->end);
    return NULL;
}

void cim_parallel_for_(int threads, int count, cim_range_fn_ fn, void *arg) {
    if (count <= 0) return;
    if (threads > count) threads = count;
    if (threads > CIM_MAX_THREADS) threads = CIM_MAX_THREADS;
    if (threads <= 1) {
        fn(arg, 0, count);
        return;
    }
    range_job_ jobs[CIM_MAX_THREADS];
    pthread_t ids[CIM_MAX_THREADS];
    int started[CIM_MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (range_job_){fn, arg, (int)((long)count * t / threads),
                               (int)((long)count * (t + 1) / threads)};
    }
    /* Thread 0's range runs here; a thread that cannot start runs its range here too, so
     * the result never depends on how many threads the system grants. */
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, run_range_, &jobs[t]) == 0;
    run_range_(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            run_range_(&jobs[t]);
    }
}
