/*
 * batchnorm.c: batch normalisation over [N, C, L] tensors (L = H W for BatchNorm2d, 1 for
 * BatchNorm1d), as PyTorch computes it.
 *
 * Training (statistics of this batch, M = N L values per channel):
 *   mean_c = (1/M) sum x,   var_c = (1/M) sum (x - mean_c)^2    (biased, for normalising)
 *   inv_std_c = 1 / sqrt(var_c + eps),   x^ = (x - mean_c) inv_std_c,   y = gamma_c x^ + beta_c
 *   running_mean = (1 - momentum) running_mean + momentum mean_c
 *   running_var  = (1 - momentum) running_var  + momentum var_c M / (M - 1)   (unbiased)
 * Evaluation: the same with running_mean and running_var in place of the batch statistics.
 *
 * Backward (training mode), with g = dy:
 *   dbeta_c = sum g,   dgamma_c = sum g x^
 *   dx = gamma_c inv_std_c / M (M g - dbeta_c - x^ dgamma_c)
 * dgamma and dbeta are written, or added to with accumulate (the two views of a CorInfoMax
 * step pass through the same layer, and their gradients sum).
 *
 * Per-channel sums run in double: M reaches 128 x 32 x 32 = 131072 in a CIFAR ResNet, where
 * float accumulation would lose digits the PyTorch parity test notices. The mean and the
 * variance take two passes (no E[x^2] - E[x]^2 cancellation). Channels are split over
 * threads.
 */
#include <math.h>

#include "internal.h"

typedef struct bn_job_ {
    int N, C, L;
    const float *x, *gamma, *beta, *dy;
    float *y, *dx, *dgamma, *dbeta;
    float *running_mean, *running_var, *saved_mean, *saved_inv_std;
    float momentum, eps;
    int training, accumulate;
} bn_job_;

static void forward_channels_(void *opaque, int c_begin, int c_end) {
    const bn_job_ *job = opaque;
    const long L = job->L, stride = (long)job->C * L;
    const double M = (double)job->N * L;
    for (int c = c_begin; c < c_end; c++) {
        double mean, inv_std;
        if (job->training) {
            /* mean, then the biased variance about it */
            double sum = 0.0;
            for (int n = 0; n < job->N; n++) {
                const float *x = job->x + n * stride + c * L;
                for (long i = 0; i < L; i++) sum += x[i];
            }
            mean = sum / M;
            double squares = 0.0;
            for (int n = 0; n < job->N; n++) {
                const float *x = job->x + n * stride + c * L;
                for (long i = 0; i < L; i++) squares += (x[i] - mean) * (x[i] - mean);
            }
            const double var = squares / M;
            inv_std = 1.0 / sqrt(var + job->eps);
            job->saved_mean[c] = (float)mean;
            job->saved_inv_std[c] = (float)inv_std;
            job->running_mean[c] =
                (float)((1.0 - job->momentum) * job->running_mean[c] + job->momentum * mean);
            job->running_var[c] = (float)((1.0 - job->momentum) * job->running_var[c] +
                                          job->momentum * var * M / (M - 1.0));
        } else {
            mean = job->running_mean[c];
            inv_std = 1.0 / sqrt((double)job->running_var[c] + job->eps);
        }

        /* y = scale x + shift */
        const float scale = (float)(job->gamma[c] * inv_std);
        const float shift = (float)(job->beta[c] - job->gamma[c] * inv_std * mean);
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L;
            float *y = job->y + n * stride + c * L;
            for (long i = 0; i < L; i++) y[i] = scale * x[i] + shift;
        }
    }
}

static cim_status check_(const void *context, int N, int C, int L) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (N < 1 || C < 1 || L < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "batch norm sizes N=%d C=%d L=%d must be positive", N,
                        C, L);
    return CIM_OK;
}

cim_status cim_cpu_batchnorm_forward(cim_cpu_context *context, int N, int C, int L,
                                     const float *x, const float *gamma, const float *beta,
                                     float *running_mean, float *running_var, float *y,
                                     float *saved_mean, float *saved_inv_std, int training,
                                     float momentum, float eps) {
    CIM_TRY(check_(context, N, C, L));
    if (!x || !gamma || !beta || !running_mean || !running_var || !y)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL tensor pointer");
    if (training && (!saved_mean || !saved_inv_std))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "training needs saved_mean and saved_inv_std");
    if (training && (long)N * L < 2)
        return CIM_FAIL(CIM_ERROR_SHAPE,
                        "batch norm in training mode needs more than one value per channel "
                        "(N=%d, L=%d)", N, L);
    bn_job_ job = {.N = N, .C = C, .L = L, .x = x, .gamma = gamma, .beta = beta, .y = y,
                   .running_mean = running_mean, .running_var = running_var,
                   .saved_mean = saved_mean, .saved_inv_std = saved_inv_std,
                   .momentum = momentum, .eps = eps, .training = training};
    cim_parallel_for_(context->threads, C, forward_channels_, &job);
    return CIM_OK;
}

static void backward_channels_(void *opaque, int c_begin, int c_end) {
    const bn_job_ *job = opaque;
    const long L = job->L, stride = (long)job->C * L;
    const double M = (double)job->N * L;
    for (int c = c_begin; c < c_end; c++) {
        const double mean = job->saved_mean[c], inv_std = job->saved_inv_std[c];

        /* dbeta = sum g, dgamma = sum g x^ */
        double sum_g = 0.0, sum_g_xhat = 0.0;
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L, *g = job->dy + n * stride + c * L;
            for (long i = 0; i < L; i++) {
                sum_g += g[i];
                sum_g_xhat += g[i] * (x[i] - mean);
            }
        }
        sum_g_xhat *= inv_std;

        /* dx = gamma inv_std / M (M g - dbeta - x^ dgamma) */
        const double k = job->gamma[c] * inv_std / M;
        const float a = (float)(k * M);
        const float b = (float)(-k * inv_std * sum_g_xhat);   /* multiplies (x - mean) */
        const float d = (float)(-k * sum_g);
        const float mean_f = (float)mean;
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L, *g = job->dy + n * stride + c * L;
            float *dx = job->dx + n * stride + c * L;
            for (long i = 0; i < L; i++) dx[i] = a * g[i] + b * (x[i] - mean_f) + d;
        }
        if (job->accumulate) {
            job->dgamma[c] += (float)sum_g_xhat;
            job->dbeta[c] += (float)sum_g;
        } else {
            job->dgamma[c] = (float)sum_g_xhat;
            job->dbeta[c] = (float)sum_g;
        }
    }
}

cim_status cim_cpu_batchnorm_backward(cim_cpu_context *context, int N, int C, int L,
                                      const float *dy, const float *x, const float *gamma,
                                      const float *saved_mean, const float *saved_inv_std,
                                      float *dx, float *dgamma, float *dbeta, int accumulate) {
    CIM_TRY(check_(context, N, C, L));
    if (!dy || !x || !gamma || !saved_mean || !saved_inv_std || !dx || !dgamma || !dbeta)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL tensor pointer");
    bn_job_ job = {.N = N, .C = C, .L = L, .x = x, .gamma = gamma, .dy = dy, .dx = dx,
                   .dgamma = dgamma, .dbeta = dbeta, .saved_mean = (float *)saved_mean,
                   .saved_inv_std = (float *)saved_inv_std, .accumulate = accumulate};
    cim_parallel_for_(context->threads, C, backward_channels_, &job);
    return CIM_OK;
}

/* ---- pieces for synchronised batch norm --------------------------------------------------
 *
 * With replicas the statistics are sums over every replica's rows, so the fused passes above
 * are split where a reduction has to happen between them (SPEC 3.2):
 *
 *   forward   s_c = sum x                       (all-reduce, then mean = s / M)
 *             q_c = sum (x - mean_c)^2          (all-reduce, then var = q / M)
 *             y = scale_c x + shift_c           scale = gamma inv_std, shift = beta - scale mean
 *   backward  g_c = sum dy,  h_c = sum dy (x - mean_c)       (all-reduce)
 *             dx = a_c dy + b_c (x - mean_c) + d_c           a, b, d from the global sums
 *
 * Sums are accumulated and returned in double; the all-reduce adds doubles too, so the
 * global statistics do not depend on how the batch is split beyond double rounding. */

typedef struct bn_sums_job_ {
    int N, C, L;
    const float *x, *dy;
    const float *center;          /* per channel, or NULL */
    const float *a, *b, *d;
    float *out;
    double *sums, *sums2;
} bn_sums_job_;

static void channel_sums_(void *opaque, int c_begin, int c_end) {
    const bn_sums_job_ *job = opaque;
    const long L = job->L, stride = (long)job->C * L;
    for (int c = c_begin; c < c_end; c++) {
        double sum = 0.0;
        const double center = job->center ? job->center[c] : 0.0;
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L;
            if (job->center) {
                for (long i = 0; i < L; i++) sum += (x[i] - center) * (x[i] - center);
            } else {
                for (long i = 0; i < L; i++) sum += x[i];
            }
        }
        job->sums[c] = sum;
    }
}

cim_status cim_cpu_channel_sums(cim_cpu_context *context, int N, int C, int L, const float *x,
                                const float *center, double *sums) {
    CIM_TRY(check_(context, N, C, L));
    if (!x || !sums) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    bn_sums_job_ job = {.N = N, .C = C, .L = L, .x = x, .center = center, .sums = sums};
    cim_parallel_for_(context->threads, C, channel_sums_, &job);
    return CIM_OK;
}

static void channel_affine_(void *opaque, int c_begin, int c_end) {
    const bn_sums_job_ *job = opaque;
    const long L = job->L, stride = (long)job->C * L;
    for (int c = c_begin; c < c_end; c++) {
        const float scale = job->a[c], shift = job->b[c];
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L;
            float *y = job->out + n * stride + c * L;
            for (long i = 0; i < L; i++) y[i] = scale * x[i] + shift;
        }
    }
}

cim_status cim_cpu_channel_affine(cim_cpu_context *context, int N, int C, int L,
                                  const float *x, const float *scale, const float *shift,
                                  float *y) {
    CIM_TRY(check_(context, N, C, L));
    if (!x || !scale || !shift || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    bn_sums_job_ job = {.N = N, .C = C, .L = L, .x = x, .a = scale, .b = shift, .out = y};
    cim_parallel_for_(context->threads, C, channel_affine_, &job);
    return CIM_OK;
}

static void backward_sums_(void *opaque, int c_begin, int c_end) {
    const bn_sums_job_ *job = opaque;
    const long L = job->L, stride = (long)job->C * L;
    for (int c = c_begin; c < c_end; c++) {
        const double mean = job->center[c];
        double sum_g = 0.0, sum_gx = 0.0;
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L, *g = job->dy + n * stride + c * L;
            for (long i = 0; i < L; i++) {
                sum_g += g[i];
                sum_gx += g[i] * (x[i] - mean);
            }
        }
        job->sums[c] = sum_g;
        job->sums2[c] = sum_gx;
    }
}

cim_status cim_cpu_batchnorm_backward_sums(cim_cpu_context *context, int N, int C, int L,
                                           const float *dy, const float *x, const float *mean,
                                           double *sum_dy, double *sum_dy_xc) {
    CIM_TRY(check_(context, N, C, L));
    if (!dy || !x || !mean || !sum_dy || !sum_dy_xc)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    bn_sums_job_ job = {.N = N, .C = C, .L = L, .x = x, .dy = dy, .center = mean,
                        .sums = sum_dy, .sums2 = sum_dy_xc};
    cim_parallel_for_(context->threads, C, backward_sums_, &job);
    return CIM_OK;
}

static void backward_apply_(void *opaque, int c_begin, int c_end) {
    const bn_sums_job_ *job = opaque;
    const long L = job->L, stride = (long)job->C * L;
    for (int c = c_begin; c < c_end; c++) {
        const float a = job->a[c], b = job->b[c], d = job->d[c], mean = job->center[c];
        for (int n = 0; n < job->N; n++) {
            const float *x = job->x + n * stride + c * L, *g = job->dy + n * stride + c * L;
            float *dx = job->out + n * stride + c * L;
            for (long i = 0; i < L; i++) dx[i] = a * g[i] + b * (x[i] - mean) + d;
        }
    }
}

cim_status cim_cpu_batchnorm_backward_apply(cim_cpu_context *context, int N, int C, int L,
                                            const float *dy, const float *x, const float *mean,
                                            const float *a, const float *b, const float *d,
                                            float *dx) {
    CIM_TRY(check_(context, N, C, L));
    if (!dy || !x || !mean || !a || !b || !d || !dx)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    bn_sums_job_ job = {.N = N, .C = C, .L = L, .x = x, .dy = dy, .center = mean,
                        .a = a, .b = b, .d = d, .out = dx};
    cim_parallel_for_(context->threads, C, backward_apply_, &job);
    return CIM_OK;
}
