/*
 * conv2d.c: 2-D convolution (NCHW, no bias) on the CPU by im2col + GEMM, with backward
 * passes, and the plain references they are checked against.
 *
 * Letters: N images, C input channels of H x W, K output channels of P x Q, kernel R x S.
 *
 *   forward          y[n,k,p,q] = sum_{c,r,s} w[k,c,r,s] x[n,c,p*sh-ph+r,q*sw-pw+s]
 *   backward data    dx[n,c,h,v] = sum_{k,r,s: h = p*sh-ph+r, v = q*sw-pw+s} w[k,c,r,s] dy[n,k,p,q]
 *   backward filter  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] x[n,c,p*sh-ph+r,q*sw-pw+s]
 *
 * Each pass works on a group of G images at a time. im2col lays the group's input patches
 * out as a (C R S) x (G P Q) matrix `col`; then
 *
 *   forward          Y_g  [K x GPQ]   = W [K x CRS] * col [CRS x GPQ]
 *   backward data    dcol [CRS x GPQ] = W^T * dY_g,  then col2im adds dcol back into dx
 *   backward filter  dW   [K x CRS]  += dY_g * col^T
 *
 * G is chosen so that G P Q columns make a GEMM that OpenBLAS runs near its peak: the deep
 * layers of a CIFAR ResNet have P Q = 16, and one image at a time would starve the GEMM.
 * With G > 1, Y_g and dY_g are [K x GPQ] while the tensors hold [G x K x PQ], so one extra
 * copy reorders them. A 1x1, stride-1, unpadded convolution with G = 1 needs no im2col at
 * all: col is the image itself.
 *
 * Work split: OpenBLAS threads the GEMMs; im2col is split over the rows of col and col2im
 * over the channels of dx (each thread owns whole channels, so no two threads add to the
 * same element). FLOPs per pass: 2 N K C R S P Q. Results are written, not accumulated,
 * except backward filter with accumulate != 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

cim_status cim_conv2d_output_size(const cim_conv2d_shape *shape, int *out_height,
                                  int *out_width) {
    if (!shape) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "shape is NULL");
    const cim_conv2d_shape *s = shape;
    if (s->batch < 1 || s->in_channels < 1 || s->in_height < 1 || s->in_width < 1 ||
        s->out_channels < 1 || s->kernel_height < 1 || s->kernel_width < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE,
                        "sizes must be positive: N=%d C=%d H=%d W=%d K=%d R=%d S=%d", s->batch,
                        s->in_channels, s->in_height, s->in_width, s->out_channels,
                        s->kernel_height, s->kernel_width);
    if (s->stride_height < 1 || s->stride_width < 1 || s->pad_height < 0 || s->pad_width < 0)
        return CIM_FAIL(CIM_ERROR_SHAPE, "stride %dx%d must be >= 1 and padding %dx%d >= 0",
                        s->stride_height, s->stride_width, s->pad_height, s->pad_width);
    int padded_h = s->in_height + 2 * s->pad_height;
    int padded_w = s->in_width + 2 * s->pad_width;
    if (padded_h < s->kernel_height || padded_w < s->kernel_width)
        return CIM_FAIL(CIM_ERROR_SHAPE, "kernel %dx%d is larger than the padded input %dx%d",
                        s->kernel_height, s->kernel_width, padded_h, padded_w);
    int p = (padded_h - s->kernel_height) / s->stride_height + 1;
    int q = (padded_w - s->kernel_width) / s->stride_width + 1;
    if ((long)s->batch * s->in_channels * s->in_height * s->in_width > INT32_MAX ||
        (long)s->batch * s->out_channels * p * q > INT32_MAX)
        return CIM_FAIL(CIM_ERROR_SHAPE, "tensor of more than 2^31 elements");
    if (out_height) *out_height = p;
    if (out_width) *out_width = q;
    return CIM_OK;
}

/* ---- geometry of one call -------------------------------------------------------------- */

typedef struct conv_plan_ {
    cim_conv2d_shape s;
    int P, Q;
    long PQ, HW, CRS;
    int group;            /* G: images per GEMM */
    long group_columns;   /* G * P * Q */
    int direct;           /* 1x1, stride 1, no padding, G == 1: col is the input itself */
} conv_plan_;

/* Below this many columns a GEMM loses much of its speed, so images are grouped. */
enum { TARGET_GROUP_COLUMNS = 256, MAX_COL_FLOATS = 16 << 20 };

static cim_status make_plan_(const cim_conv2d_shape *shape, conv_plan_ *plan) {
    CIM_TRY(cim_conv2d_output_size(shape, &plan->P, &plan->Q));
    plan->s = *shape;
    plan->PQ = (long)plan->P * plan->Q;
    plan->HW = (long)shape->in_height * shape->in_width;
    plan->CRS = (long)shape->in_channels * shape->kernel_height * shape->kernel_width;
    long target = TARGET_GROUP_COLUMNS;
    if (getenv("CIM_CONV_GROUP_COLUMNS")) target = atol(getenv("CIM_CONV_GROUP_COLUMNS"));
    int group = (int)((target + plan->PQ - 1) / plan->PQ);
    while (group > 1 && plan->CRS * group * plan->PQ > MAX_COL_FLOATS) group--;
    if (group > shape->batch) group = shape->batch;
    plan->group = group;
    plan->group_columns = group * plan->PQ;
    plan->direct = group == 1 && shape->kernel_height == 1 && shape->kernel_width == 1 &&
                   shape->stride_height == 1 && shape->stride_width == 1 &&
                   shape->pad_height == 0 && shape->pad_width == 0;
    return CIM_OK;
}

/* ---- im2col ------------------------------------------------------------------------------ */

typedef struct im2col_job_ {
    const conv_plan_ *plan;
    const float *x;       /* first image of the group */
    int images;           /* images in this group (the last group may be short) */
    float *col;           /* CRS x group_columns */
} im2col_job_;

static void im2col_rows_(void *opaque, int row_begin, int row_end) {
    const im2col_job_ *job = opaque;
    const conv_plan_ *plan = job->plan;
    const cim_conv2d_shape *s = &plan->s;
    const int R = s->kernel_height, S = s->kernel_width, H = s->in_height, W = s->in_width;
    const int P = plan->P, Q = plan->Q, sh = s->stride_height, sw = s->stride_width;
    for (int row = row_begin; row < row_end; row++) {
        const int c = row / (R * S), r = (row / S) % R, kw = row % S;
        float *out = job->col + (long)row * plan->group_columns;
        /* Output columns q whose input column q*sw - pw + kw lies inside [0, W). */
        int q_begin = 0, q_end = Q;
        while (q_begin < Q && q_begin * sw - s->pad_width + kw < 0) q_begin++;
        while (q_end > q_begin && (q_end - 1) * sw - s->pad_width + kw >= W) q_end--;
        for (int g = 0; g < job->images; g++) {
            const float *image = job->x + ((long)g * s->in_channels + c) * plan->HW;
            for (int p = 0; p < P; p++, out += Q) {
                const int ih = p * sh - s->pad_height + r;
                if (ih < 0 || ih >= H) {
                    memset(out, 0, sizeof(float) * Q);
                    continue;
                }
                const float *in_row = image + (long)ih * W - s->pad_width + kw;
                for (int q = 0; q < q_begin; q++) out[q] = 0.0f;
                if (sw == 1) {
                    memcpy(out + q_begin, in_row + q_begin, sizeof(float) * (q_end - q_begin));
                } else {
                    for (int q = q_begin; q < q_end; q++) out[q] = in_row[(long)q * sw];
                }
                for (int q = q_end; q < Q; q++) out[q] = 0.0f;
            }
        }
    }
}

static void im2col_(const cim_cpu_context *context, const conv_plan_ *plan, const float *x,
                    int images, float *col) {
    im2col_job_ job = {plan, x, images, col};
    cim_parallel_for_(context->threads, (int)plan->CRS, im2col_rows_, &job);
}

/* ---- col2im -------------------------------------------------------------------------------- */

typedef struct col2im_job_ {
    const conv_plan_ *plan;
    const float *col;     /* CRS x group_columns */
    int images;
    float *dx;            /* first image of the group; overwritten */
} col2im_job_;

static void col2im_channels_(void *opaque, int c_begin, int c_end) {
    const col2im_job_ *job = opaque;
    const conv_plan_ *plan = job->plan;
    const cim_conv2d_shape *s = &plan->s;
    const int R = s->kernel_height, S = s->kernel_width, H = s->in_height, W = s->in_width;
    const int P = plan->P, Q = plan->Q, sh = s->stride_height, sw = s->stride_width;
    for (int c = c_begin; c < c_end; c++) {
        for (int g = 0; g < job->images; g++)
            memset(job->dx + ((long)g * s->in_channels + c) * plan->HW, 0,
                   sizeof(float) * plan->HW);
        for (int r = 0; r < R; r++) {
            for (int kw = 0; kw < S; kw++) {
                const long row = ((long)c * R + r) * S + kw;
                int q_begin = 0, q_end = Q;
                while (q_begin < Q && q_begin * sw - s->pad_width + kw < 0) q_begin++;
                while (q_end > q_begin && (q_end - 1) * sw - s->pad_width + kw >= W) q_end--;
                const float *in = job->col + row * plan->group_columns;
                for (int g = 0; g < job->images; g++) {
                    float *image = job->dx + ((long)g * s->in_channels + c) * plan->HW;
                    for (int p = 0; p < P; p++, in += Q) {
                        const int ih = p * sh - s->pad_height + r;
                        if (ih < 0 || ih >= H) continue;
                        float *out_row = image + (long)ih * W - s->pad_width + kw;
                        if (sw == 1) {
                            for (int q = q_begin; q < q_end; q++) out_row[q] += in[q];
                        } else {
                            for (int q = q_begin; q < q_end; q++) out_row[(long)q * sw] += in[q];
                        }
                    }
                }
            }
        }
    }
}

static void col2im_(const cim_cpu_context *context, const conv_plan_ *plan, const float *col,
                    int images, float *dx) {
    col2im_job_ job = {plan, col, images, dx};
    cim_parallel_for_(context->threads, plan->s.in_channels, col2im_channels_, &job);
}

/* ---- [G x K x PQ] <-> [K x G PQ] reordering -------------------------------------------- */

typedef struct reorder_job_ {
    const conv_plan_ *plan;
    int images;
    int to_tensor;        /* 1: matrix -> tensor, 0: tensor -> matrix */
    float *tensor;        /* [G x K x PQ] */
    float *matrix;        /* [K x G PQ] */
} reorder_job_;

static void reorder_rows_(void *opaque, int k_begin, int k_end) {
    const reorder_job_ *job = opaque;
    const conv_plan_ *plan = job->plan;
    const long K = plan->s.out_channels, PQ = plan->PQ;
    for (long k = k_begin; k < k_end; k++) {
        for (int g = 0; g < job->images; g++) {
            float *t = job->tensor + ((long)g * K + k) * PQ;
            float *m = job->matrix + k * plan->group_columns + (long)g * PQ;
            if (job->to_tensor)
                memcpy(t, m, sizeof(float) * PQ);
            else
                memcpy(m, t, sizeof(float) * PQ);
        }
    }
}

static void reorder_(const cim_cpu_context *context, const conv_plan_ *plan, int images,
                     int to_tensor, float *tensor, float *matrix) {
    reorder_job_ job = {plan, images, to_tensor, tensor, matrix};
    cim_parallel_for_(context->threads, plan->s.out_channels, reorder_rows_, &job);
}

/* ---- the three passes -------------------------------------------------------------------- */

static cim_status check_call_(const cim_cpu_context *context, const void *a, const void *b,
                              const void *c) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (!a || !b || !c) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL tensor pointer");
    return CIM_OK;
}

/* Scratch for one group: col (unless direct) followed by a K x GPQ matrix (when G > 1). */
static cim_status group_workspace_(cim_cpu_context *context, const conv_plan_ *plan,
                                   float **col, float **matrix) {
    size_t col_floats = plan->direct ? 0 : (size_t)(plan->CRS * plan->group_columns);
    size_t matrix_floats =
        plan->group > 1 ? (size_t)plan->s.out_channels * plan->group_columns : 0;
    /* Round col up to a cache line so the matrix part stays 64-byte aligned. */
    col_floats = (col_floats + 15) & ~(size_t)15;
    float *base = NULL;
    CIM_TRY(cim_cpu_context_workspace_(context, col_floats + matrix_floats + 16, &base));
    *col = base;
    *matrix = base + col_floats;
    return CIM_OK;
}

cim_status cim_cpu_conv2d_forward(cim_cpu_context *context, const cim_conv2d_shape *shape,
                                  const float *x, const float *w, float *y) {
    CIM_TRY(check_call_(context, x, w, y));
    conv_plan_ plan;
    CIM_TRY(make_plan_(shape, &plan));
    float *col, *matrix;
    CIM_TRY(group_workspace_(context, &plan, &col, &matrix));
    const int N = shape->batch, K = shape->out_channels;
    for (int n0 = 0; n0 < N; n0 += plan.group) {
        const int images = N - n0 < plan.group ? N - n0 : plan.group;
        const float *x_group = x + (long)n0 * shape->in_channels * plan.HW;
        float *y_group = y + (long)n0 * K * plan.PQ;
        const long columns = images * plan.PQ;

        /* patches */
        const float *b = x_group;
        if (!plan.direct) {
            im2col_(context, &plan, x_group, images, col);
            b = col;
        }
        /* Y = W * col, straight into y when the group is one image */
        float *out = plan.group > 1 ? matrix : y_group;
        cim_cpu_context_apply_threads_(context);
        cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_NO_TRANS, K,
                    (int)columns, (int)plan.CRS, 1.0f, w, (int)plan.CRS, b,
                    (int)plan.group_columns, 0.0f, out, (int)plan.group_columns);
        if (plan.group > 1) reorder_(context, &plan, images, 1, y_group, matrix);
    }
    return CIM_OK;
}

cim_status cim_cpu_conv2d_backward_data(cim_cpu_context *context,
                                        const cim_conv2d_shape *shape, const float *dy,
                                        const float *w, float *dx) {
    CIM_TRY(check_call_(context, dy, w, dx));
    conv_plan_ plan;
    CIM_TRY(make_plan_(shape, &plan));
    float *col, *matrix;
    CIM_TRY(group_workspace_(context, &plan, &col, &matrix));
    const int N = shape->batch, K = shape->out_channels;
    for (int n0 = 0; n0 < N; n0 += plan.group) {
        const int images = N - n0 < plan.group ? N - n0 : plan.group;
        const float *dy_group = dy + (long)n0 * K * plan.PQ;
        float *dx_group = dx + (long)n0 * shape->in_channels * plan.HW;
        const long columns = images * plan.PQ;

        /* dY_g as a K x GPQ matrix */
        const float *b = dy_group;
        if (plan.group > 1) {
            reorder_(context, &plan, images, 0, (float *)dy_group, matrix);
            b = matrix;
        }
        /* dcol = W^T * dY_g, then scatter-add the patches back (direct: dcol is dx) */
        float *dcol = plan.direct ? dx_group : col;
        cim_cpu_context_apply_threads_(context);
        cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_TRANS, CIM_CBLAS_NO_TRANS, (int)plan.CRS,
                    (int)columns, K, 1.0f, w, (int)plan.CRS, b, (int)plan.group_columns, 0.0f,
                    dcol, (int)plan.group_columns);
        if (!plan.direct) col2im_(context, &plan, col, images, dx_group);
    }
    return CIM_OK;
}

cim_status cim_cpu_conv2d_backward_filter(cim_cpu_context *context,
                                          const cim_conv2d_shape *shape, const float *x,
                                          const float *dy, float *dw, int accumulate) {
    CIM_TRY(check_call_(context, x, dy, dw));
    conv_plan_ plan;
    CIM_TRY(make_plan_(shape, &plan));
    float *col, *matrix;
    CIM_TRY(group_workspace_(context, &plan, &col, &matrix));
    const int N = shape->batch, K = shape->out_channels;
    for (int n0 = 0; n0 < N; n0 += plan.group) {
        const int images = N - n0 < plan.group ? N - n0 : plan.group;
        const float *x_group = x + (long)n0 * shape->in_channels * plan.HW;
        const float *dy_group = dy + (long)n0 * K * plan.PQ;
        const long columns = images * plan.PQ;

        /* patches and dY_g */
        const float *patches = x_group;
        if (!plan.direct) {
            im2col_(context, &plan, x_group, images, col);
            patches = col;
        }
        const float *a = dy_group;
        if (plan.group > 1) {
            reorder_(context, &plan, images, 0, (float *)dy_group, matrix);
            a = matrix;
        }
        /* dW (+)= dY_g * col^T; the first group overwrites unless accumulating */
        const float beta = (n0 == 0 && !accumulate) ? 0.0f : 1.0f;
        cim_cpu_context_apply_threads_(context);
        cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_TRANS, K, (int)plan.CRS,
                    (int)columns, 1.0f, a, (int)plan.group_columns, patches,
                    (int)plan.group_columns, beta, dw, (int)plan.CRS);
    }
    return CIM_OK;
}

/* ---- references ------------------------------------------------------------------------- */

/* x[n,c,h,v] or 0 outside the image (the zero padding). */
static double padded_(const cim_conv2d_shape *s, const float *x, int n, int c, int h, int v) {
    if (h < 0 || h >= s->in_height || v < 0 || v >= s->in_width) return 0.0;
    return x[(((long)n * s->in_channels + c) * s->in_height + h) * s->in_width + v];
}

double cim_reference_conv2d_forward_element(const cim_conv2d_shape *s, const float *x,
                                            const float *w, int n, int k, int p, int q,
                                            double *out_magnitude) {
    const int R = s->kernel_height, S = s->kernel_width;
    double sum = 0.0, magnitude = 0.0;
    for (int c = 0; c < s->in_channels; c++)
        for (int r = 0; r < R; r++)
            for (int t = 0; t < S; t++) {
                double term = w[(((long)k * s->in_channels + c) * R + r) * S + t] *
                              padded_(s, x, n, c, p * s->stride_height - s->pad_height + r,
                                      q * s->stride_width - s->pad_width + t);
                sum += term;
                magnitude += fabs(term);
            }
    if (out_magnitude) *out_magnitude = magnitude;
    return sum;
}

double cim_reference_conv2d_backward_data_element(const cim_conv2d_shape *s, const float *dy,
                                                  const float *w, int n, int c, int h,
                                                  int x_col, double *out_magnitude) {
    int P = 0, Q = 0;
    cim_conv2d_output_size(s, &P, &Q);
    const int R = s->kernel_height, S = s->kernel_width;
    double sum = 0.0, magnitude = 0.0;
    /* Every (k, r, t) whose output position p, q reads input (h, x_col). */
    for (int k = 0; k < s->out_channels; k++)
        for (int r = 0; r < R; r++)
            for (int t = 0; t < S; t++) {
                int ph = h + s->pad_height - r, qw = x_col + s->pad_width - t;
                if (ph < 0 || qw < 0 || ph % s->stride_height || qw % s->stride_width) continue;
                int p = ph / s->stride_height, q = qw / s->stride_width;
                if (p >= P || q >= Q) continue;
                double term = (double)w[(((long)k * s->in_channels + c) * R + r) * S + t] *
                              dy[(((long)n * s->out_channels + k) * P + p) * Q + q];
                sum += term;
                magnitude += fabs(term);
            }
    if (out_magnitude) *out_magnitude = magnitude;
    return sum;
}

double cim_reference_conv2d_backward_filter_element(const cim_conv2d_shape *s, const float *x,
                                                    const float *dy, int k, int c, int r,
                                                    int t, double *out_magnitude) {
    int P = 0, Q = 0;
    cim_conv2d_output_size(s, &P, &Q);
    double sum = 0.0, magnitude = 0.0;
    for (int n = 0; n < s->batch; n++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                double term = (double)dy[(((long)n * s->out_channels + k) * P + p) * Q + q] *
                              padded_(s, x, n, c, p * s->stride_height - s->pad_height + r,
                                      q * s->stride_width - s->pad_width + t);
                sum += term;
                magnitude += fabs(term);
            }
    if (out_magnitude) *out_magnitude = magnitude;
    return sum;
}
