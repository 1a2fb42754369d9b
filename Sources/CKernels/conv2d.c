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
 * With G > 1, Y_g and dY_g are [K x GPQ] while the tensors hold [G x K x PQ], so one extra
 * copy reorders them. A 1x1, stride-1, unpadded convolution with G = 1 needs no im2col at
 * all: col is the image itself.
 *
 * Work split: each thread takes a contiguous run of groups through im2col, a
 * single-threaded GEMM and col2im on its own, so a group's col is still in that core's
 * cache when the GEMM reads it (threading each GEMM instead measured 1.5 to 2 times slower
 * on the deep layers, where the matrices are thin). Backward filter sums into one private
 * dW per thread and adds them at the end. G is the fewest images giving TARGET_GROUP_COLUMNS
 * GEMM columns (a CIFAR ResNet's last stage has P Q = 16, and one image at a time starves
 * the GEMM), fewer when that would leave a thread without work.
 *
 * 3x3 stride-1 convolutions take Winograd F(2x2, 3x3) instead (winograd.c) for all three
 * passes, unless the context asks for im2col; see winograd_applies_.
 *
 * FLOPs per pass: 2 N K C R S P Q. Results are written, not accumulated, except backward
 * filter with accumulate != 0.
 */
#include <math.h>
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
    int workers;          /* threads that get at least one group */
} conv_plan_;

enum { TARGET_GROUP_COLUMNS = 512, MAX_COL_FLOATS = 4 << 20 };

static cim_status make_plan_(const cim_cpu_context *context, const cim_conv2d_shape *shape,
                             conv_plan_ *plan) {
    CIM_TRY(cim_conv2d_output_size(shape, &plan->P, &plan->Q));
    plan->s = *shape;
    plan->PQ = (long)plan->P * plan->Q;
    plan->HW = (long)shape->in_height * shape->in_width;
    plan->CRS = (long)shape->in_channels * shape->kernel_height * shape->kernel_width;
    const int threads = context->threads;
    int group = (int)((TARGET_GROUP_COLUMNS + plan->PQ - 1) / plan->PQ);
    while (group > 1 && plan->CRS * group * plan->PQ > MAX_COL_FLOATS) group--;
    /* keep every thread busy: at least `threads` groups when there are enough images */
    const int fair = (shape->batch + threads - 1) / threads;
    if (group > fair) group = fair;
    if (group < 1) group = 1;
    plan->group = group;
    plan->group_columns = group * plan->PQ;
    const int groups = (shape->batch + group - 1) / group;
    plan->workers = threads < groups ? threads : groups;
    plan->direct = group == 1 && shape->kernel_height == 1 && shape->kernel_width == 1 &&
                   shape->stride_height == 1 && shape->stride_width == 1 &&
                   shape->pad_height == 0 && shape->pad_width == 0;
    return CIM_OK;
}

/* ---- im2col and col2im, one group on the calling thread ----------------------------- */

/* col[(c R + r) S + s][g P Q + p Q + q] = x[g, c, p sh - ph + r, q sw - pw + s] or 0 */
static void im2col_(const conv_plan_ *plan, const float *x, int images, float *col) {
    const cim_conv2d_shape *s = &plan->s;
    const int R = s->kernel_height, S = s->kernel_width, H = s->in_height, W = s->in_width;
    const int P = plan->P, Q = plan->Q, sh = s->stride_height, sw = s->stride_width;
    for (long row = 0; row < plan->CRS; row++) {
        const int c = (int)(row / (R * S)), r = (int)(row / S) % R, kw = (int)(row % S);
        float *out = col + row * plan->group_columns;
        /* output columns q whose input column q sw - pw + kw lies inside [0, W) */
        int q_begin = 0, q_end = Q;
        while (q_begin < Q && q_begin * sw - s->pad_width + kw < 0) q_begin++;
        while (q_end > q_begin && (q_end - 1) * sw - s->pad_width + kw >= W) q_end--;
        for (int g = 0; g < images; g++) {
            const float *image = x + ((long)g * s->in_channels + c) * plan->HW;
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

/* dx = 0, then dx[g, c, p sh - ph + r, q sw - pw + s] += col[(c R + r) S + s][g P Q + p Q + q] */
static void col2im_(const conv_plan_ *plan, const float *col, int images, float *dx) {
    const cim_conv2d_shape *s = &plan->s;
    const int R = s->kernel_height, S = s->kernel_width, H = s->in_height, W = s->in_width;
    const int P = plan->P, Q = plan->Q, sh = s->stride_height, sw = s->stride_width;
    memset(dx, 0, sizeof(float) * images * s->in_channels * plan->HW);
    for (long row = 0; row < plan->CRS; row++) {
        const int c = (int)(row / (R * S)), r = (int)(row / S) % R, kw = (int)(row % S);
        int q_begin = 0, q_end = Q;
        while (q_begin < Q && q_begin * sw - s->pad_width + kw < 0) q_begin++;
        while (q_end > q_begin && (q_end - 1) * sw - s->pad_width + kw >= W) q_end--;
        const float *in = col + row * plan->group_columns;
        for (int g = 0; g < images; g++) {
            float *image = dx + ((long)g * s->in_channels + c) * plan->HW;
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

/* [G x K x PQ] tensor <-> [K x G PQ] matrix */
static void reorder_(const conv_plan_ *plan, int images, int to_tensor, float *tensor,
                     float *matrix) {
    const long K = plan->s.out_channels, PQ = plan->PQ;
    for (long k = 0; k < K; k++) {
        for (int g = 0; g < images; g++) {
            float *t = tensor + ((long)g * K + k) * PQ;
            float *m = matrix + k * plan->group_columns + (long)g * PQ;
            if (to_tensor)
                memcpy(t, m, sizeof(float) * PQ);
            else
                memcpy(m, t, sizeof(float) * PQ);
        }
    }
}

/* ---- the three passes, per thread ------------------------------------------------------ */

typedef enum conv_pass_ { PASS_FORWARD, PASS_BACKWARD_DATA, PASS_BACKWARD_FILTER } conv_pass_;

typedef struct conv_run_ {
    const conv_plan_ *plan;
    conv_pass_ pass;
    const float *x, *w, *dy;  /* the inputs the pass reads */
    float *out;               /* y, dx or dw */
    int accumulate;           /* backward filter: add to dw */
    float *scratch;           /* workers x worker_floats */
    size_t col_floats, matrix_floats, worker_floats;
} conv_run_;

static void run_groups_(void *opaque, int worker_begin, int worker_end) {
    const conv_run_ *run = opaque;
    const conv_plan_ *plan = run->plan;
    const int N = plan->s.batch, K = plan->s.out_channels, C = plan->s.in_channels;
    const int groups = (N + plan->group - 1) / plan->group;
    const int crs = (int)plan->CRS, ldm = (int)plan->group_columns;
    for (int worker = worker_begin; worker < worker_end; worker++) {
        float *col = run->scratch + worker * run->worker_floats;
        float *matrix = col + run->col_floats;
        /* backward filter: thread 0 sums into dw itself, the others into a private dW */
        float *dw = worker == 0 ? run->out : matrix + run->matrix_floats;
        int first = 1;
        for (int group = groups * worker / plan->workers;
             group < groups * (worker + 1) / plan->workers; group++) {
            const int n0 = group * plan->group;
            const int images = N - n0 < plan->group ? N - n0 : plan->group;
            const int columns = (int)(images * plan->PQ);
            const float *x_group = run->x ? run->x + (long)n0 * C * plan->HW : NULL;
            const float *dy_group = run->dy ? run->dy + (long)n0 * K * plan->PQ : NULL;

            if (run->pass == PASS_FORWARD) {
                /* Y_g = W col */
                const float *b = x_group;
                if (!plan->direct) {
                    im2col_(plan, x_group, images, col);
                    b = col;
                }
                float *y_group = run->out + (long)n0 * K * plan->PQ;
                float *y_matrix = plan->group > 1 ? matrix : y_group;
                cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_NO_TRANS, K,
                            columns, crs, 1.0f, run->w, crs, b, ldm, 0.0f, y_matrix, ldm);
                if (plan->group > 1) reorder_(plan, images, 1, y_group, matrix);
            } else if (run->pass == PASS_BACKWARD_DATA) {
                /* dcol = W^T dY_g, then col2im (direct: dcol is dx) */
                const float *b = dy_group;
                if (plan->group > 1) {
                    reorder_(plan, images, 0, (float *)dy_group, matrix);
                    b = matrix;
                }
                float *dx_group = run->out + (long)n0 * C * plan->HW;
                float *dcol = plan->direct ? dx_group : col;
                cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_TRANS, CIM_CBLAS_NO_TRANS, crs,
                            columns, K, 1.0f, run->w, crs, b, ldm, 0.0f, dcol, ldm);
                if (!plan->direct) col2im_(plan, col, images, dx_group);
            } else {
                /* dW (+)= dY_g col^T */
                const float *patches = x_group;
                if (!plan->direct) {
                    im2col_(plan, x_group, images, col);
                    patches = col;
                }
                const float *a = dy_group;
                if (plan->group > 1) {
                    reorder_(plan, images, 0, (float *)dy_group, matrix);
                    a = matrix;
                }
                const float beta = first && !(worker == 0 && run->accumulate) ? 0.0f : 1.0f;
                cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_TRANS, K, crs,
                            columns, 1.0f, a, ldm, patches, ldm, beta, dw, crs);
            }
            first = 0;
        }
    }
}

/* dw += the private dW of threads 1.., split over the elements of dw */
static void sum_partials_(void *opaque, int begin, int end) {
    const conv_run_ *run = opaque;
    for (int worker = 1; worker < run->plan->workers; worker++) {
        const float *partial =
            run->scratch + worker * run->worker_floats + run->col_floats + run->matrix_floats;
        for (int i = begin; i < end; i++) run->out[i] += partial[i];
    }
}

static cim_status run_pass_(cim_cpu_context *context, const conv_plan_ *plan, conv_pass_ pass,
                            const float *x, const float *w, const float *dy, float *out,
                            int accumulate) {
    conv_run_ run = {plan, pass, x, w, dy, out, accumulate, NULL, 0, 0, 0};
    /* per thread: col (unless direct), a K x GPQ matrix (when G > 1), a private dW
     * (backward filter), each rounded to a cache line */
    const size_t dw_floats = (size_t)plan->s.out_channels * plan->CRS;
    run.col_floats = plan->direct ? 0 : (size_t)(plan->CRS * plan->group_columns);
    run.matrix_floats = plan->group > 1 ? (size_t)plan->s.out_channels * plan->group_columns : 0;
    run.col_floats = (run.col_floats + 15) & ~(size_t)15;
    run.matrix_floats = (run.matrix_floats + 15) & ~(size_t)15;
    run.worker_floats = run.col_floats + run.matrix_floats +
                        (pass == PASS_BACKWARD_FILTER ? (dw_floats + 15) & ~(size_t)15 : 0);
    CIM_TRY(cim_cpu_context_workspace_(context, run.worker_floats * plan->workers + 16,
                                       &run.scratch));

    /* OpenBLAS single-threaded inside our threads; the next BLAS call restores the count */
    openblas_set_num_threads(1);
    cim_parallel_for_(plan->workers, plan->workers, run_groups_, &run);
    if (pass == PASS_BACKWARD_FILTER && plan->workers > 1)
        cim_parallel_for_(context->threads, (int)dw_floats, sum_partials_, &run);
    cim_cpu_context_apply_threads_(context);
    return CIM_OK;
}

static cim_status check_call_(const cim_cpu_context *context, const void *a, const void *b,
                              const void *c) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (!a || !b || !c) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL tensor pointer");
    return CIM_OK;
}

/*
 * Winograd F(2x2, 3x3) serves 3x3 stride-1 convolutions with padding up to 2 (so that the
 * backward-data rewrite, with padding 2 - p, is one too). With few channels the 16 GEMMs
 * are too thin to pay for the transforms, so AUTO keeps im2col there (the CIFAR stem,
 * C = 3). Measured at batch 128 on 32x32 images, 2 threads: Winograd is 1.2 to 1.9 times
 * faster in every pass from 8 channels in and out up to 512, and slower at 3 or 4.
 */
static int winograd_applies_(const cim_cpu_context *context, const cim_conv2d_shape *s) {
    if (context->conv_algorithm == CIM_CONV_IM2COL) return 0;
    if (s->kernel_height != 3 || s->kernel_width != 3 || s->stride_height != 1 ||
        s->stride_width != 1 || s->pad_height > 2 || s->pad_width > 2)
        return 0;
    if (context->conv_algorithm == CIM_CONV_WINOGRAD) return 1;
    return s->in_channels >= 8 && s->out_channels >= 8;
}

cim_status cim_cpu_conv2d_forward(cim_cpu_context *context, const cim_conv2d_shape *shape,
                                  const float *x, const float *w, float *y) {
    CIM_TRY(check_call_(context, x, w, y));
    conv_plan_ plan;
    CIM_TRY(make_plan_(context, shape, &plan));
    if (winograd_applies_(context, shape))
        return cim_winograd_f23_(context, shape->batch, shape->in_channels, shape->in_height,
                                 shape->in_width, shape->out_channels, shape->pad_height,
                                 shape->pad_width, x, w, 0, y);
    return run_pass_(context, &plan, PASS_FORWARD, x, w, NULL, y, 0);
}

cim_status cim_cpu_conv2d_backward_data(cim_cpu_context *context,
                                        const cim_conv2d_shape *shape, const float *dy,
                                        const float *w, float *dx) {
    CIM_TRY(check_call_(context, dy, w, dx));
    conv_plan_ plan;
    CIM_TRY(make_plan_(context, shape, &plan));
    /* dx = conv3x3(dy, w swapped in (k, c) and rotated), padding 2 - p: P x Q -> H x W */
    if (winograd_applies_(context, shape))
        return cim_winograd_f23_(context, shape->batch, shape->out_channels, plan.P, plan.Q,
                                 shape->in_channels, 2 - shape->pad_height,
                                 2 - shape->pad_width, dy, w, 1, dx);
    return run_pass_(context, &plan, PASS_BACKWARD_DATA, NULL, w, dy, dx, 0);
}

cim_status cim_cpu_conv2d_backward_filter(cim_cpu_context *context,
                                          const cim_conv2d_shape *shape, const float *x,
                                          const float *dy, float *dw, int accumulate) {
    CIM_TRY(check_call_(context, x, dy, dw));
    conv_plan_ plan;
    CIM_TRY(make_plan_(context, shape, &plan));
    if (winograd_applies_(context, shape))
        return cim_winograd_f23_filter_(context, shape->batch, shape->in_channels,
                                        shape->in_height, shape->in_width,
                                        shape->out_channels, shape->pad_height,
                                        shape->pad_width, x, dy, dw, accumulate);
    return run_pass_(context, &plan, PASS_BACKWARD_FILTER, x, NULL, dy, dw, accumulate);
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
