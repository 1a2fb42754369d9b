/*
 * elementwise.c: the element-wise and row/column ops of a training step.
 *
 *   relu forward        y = max(x, 0)
 *   relu backward       dx = dy * [y > 0]          (from the output, so x can be released)
 *   add                 y = a + b                  (residual connections)
 *   axpy                y = alpha x + y            (gradient accumulation)
 *   scale               y = alpha y
 *   fill                y = value
 *   bias add            y[n, j] += b[j]            (y is rows x columns)
 *   column sum          s[j] (+)= sum_n y[n, j]    (bias gradients)
 *
 * These are memory-bound; large ones are split over threads in contiguous ranges, small
 * ones run on the calling thread (starting threads costs more than the work below
 * PARALLEL_MIN elements).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { PARALLEL_MIN = 1 << 16, CHUNK = 4096 };

typedef struct ew_job_ {
    const float *a, *b;
    float *y;
    float alpha;
    int op;
} ew_job_;

enum { OP_RELU, OP_RELU_BACKWARD, OP_ADD, OP_AXPY, OP_SCALE, OP_FILL };

static void ew_range_(void *opaque, int chunk_begin, int chunk_end) {
    const ew_job_ *job = opaque;
    const long begin = (long)chunk_begin * CHUNK;
    const long end = (long)chunk_end * CHUNK;
    const float *a = job->a, *b = job->b;
    float *y = job->y;
    const float alpha = job->alpha;
    switch (job->op) {
    case OP_RELU:
        for (long i = begin; i < end; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    case OP_RELU_BACKWARD: /* a = dy, b = y */
        for (long i = begin; i < end; i++) y[i] = b[i] > 0.0f ? a[i] : 0.0f;
        break;
    case OP_ADD:
        for (long i = begin; i < end; i++) y[i] = a[i] + b[i];
        break;
    case OP_AXPY:
        for (long i = begin; i < end; i++) y[i] += alpha * a[i];
        break;
    case OP_SCALE:
        for (long i = begin; i < end; i++) y[i] *= alpha;
        break;
    case OP_FILL:
        for (long i = begin; i < end; i++) y[i] = alpha;
        break;
    }
}

/* Runs job over [0, count) in CHUNK pieces; the last chunk is cut to count. */
static void run_(const cim_cpu_context *context, ew_job_ *job, long count) {
    const long whole = count / CHUNK;
    const int threads = count >= PARALLEL_MIN ? context->threads : 1;
    if (whole > 0) cim_parallel_for_(threads, (int)whole, ew_range_, job);
    const long rest = count - whole * CHUNK;
    if (rest > 0) {
        /* shift the pointers so that chunk 0 of the shifted job is the tail */
        ew_job_ tail = *job;
        const long offset = whole * CHUNK;
        if (tail.a) tail.a += offset;
        if (tail.b) tail.b += offset;
        tail.y += offset;
        const float *a = tail.a, *b = tail.b;
        float *y = tail.y;
        for (long i = 0; i < rest; i++) {
            switch (tail.op) {
            case OP_RELU: y[i] = a[i] > 0.0f ? a[i] : 0.0f; break;
            case OP_RELU_BACKWARD: y[i] = b[i] > 0.0f ? a[i] : 0.0f; break;
            case OP_ADD: y[i] = a[i] + b[i]; break;
            case OP_AXPY: y[i] += tail.alpha * a[i]; break;
            case OP_SCALE: y[i] *= tail.alpha; break;
            case OP_FILL: y[i] = tail.alpha; break;
            }
        }
    }
}

static cim_status check_(const cim_cpu_context *context, long count, const void *y) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (count < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative element count %ld", count);
    if (count > 0 && !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "NULL output");
    return CIM_OK;
}

cim_status cim_cpu_relu_forward(cim_cpu_context *context, long count, const float *x,
                                float *y) {
    CIM_TRY(check_(context, count, y));
    ew_job_ job = {x, NULL, y, 0.0f, OP_RELU};
    run_(context, &job, count);
    return CIM_OK;
}

cim_status cim_cpu_relu_backward(cim_cpu_context *context, long count, const float *dy,
                                 const float *y, float *dx) {
    CIM_TRY(check_(context, count, dx));
    ew_job_ job = {dy, y, dx, 0.0f, OP_RELU_BACKWARD};
    run_(context, &job, count);
    return CIM_OK;
}

cim_status cim_cpu_add(cim_cpu_context *context, long count, const float *a, const float *b,
                       float *y) {
    CIM_TRY(check_(context, count, y));
    ew_job_ job = {a, b, y, 0.0f, OP_ADD};
    run_(context, &job, count);
    return CIM_OK;
}

cim_status cim_cpu_axpy(cim_cpu_context *context, long count, float alpha, const float *x,
                        float *y) {
    CIM_TRY(check_(context, count, y));
    ew_job_ job = {x, NULL, y, alpha, OP_AXPY};
    run_(context, &job, count);
    return CIM_OK;
}

cim_status cim_cpu_scale(cim_cpu_context *context, long count, float alpha, float *y) {
    CIM_TRY(check_(context, count, y));
    ew_job_ job = {NULL, NULL, y, alpha, OP_SCALE};
    run_(context, &job, count);
    return CIM_OK;
}

cim_status cim_cpu_fill(cim_cpu_context *context, long count, float value, float *y) {
    CIM_TRY(check_(context, count, y));
    ew_job_ job = {NULL, NULL, y, value, OP_FILL};
    run_(context, &job, count);
    return CIM_OK;
}

cim_status cim_cpu_bias_add(cim_cpu_context *context, int rows, int columns, const float *bias,
                            float *y) {
    CIM_TRY(check_(context, (long)rows * columns, y));
    for (int n = 0; n < rows; n++) {
        float *row = y + (long)n * columns;
        for (int j = 0; j < columns; j++) row[j] += bias[j];
    }
    return CIM_OK;
}

cim_status cim_cpu_column_sum(cim_cpu_context *context, int rows, int columns, const float *y,
                              float *sums, int accumulate) {
    CIM_TRY(check_(context, (long)rows * columns, sums));
    /* row by row (contiguous reads) into double totals; accumulate adds them to sums */
    double *totals = calloc((size_t)columns, sizeof(double));
    if (!totals) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %d sums", columns);
    for (int n = 0; n < rows; n++) {
        const float *row = y + (long)n * columns;
        for (int j = 0; j < columns; j++) totals[j] += row[j];
    }
    for (int j = 0; j < columns; j++)
        sums[j] = accumulate ? sums[j] + (float)totals[j] : (float)totals[j];
    free(totals);
    return CIM_OK;
}
