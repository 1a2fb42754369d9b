/*
 * pooling.c: global average pooling and max pooling over NCHW tensors.
 *
 *   global average   y[n, c] = (1/L) sum_i x[n, c, i]            (L = H W)
 *   its backward     dx[n, c, i] = dy[n, c] / L
 *   max pool         y[n, c, p, q] = max over the R x S window at (p sh - ph, q sw - pw),
 *                    padding never wins (PyTorch pads max pooling with -infinity);
 *                    argmax[n, c, p, q] = the flat index h W + w of the winner in its plane
 *   its backward     dx = 0, then dx[n, c, argmax] += dy[n, c, p, q]
 *
 * Ties in a max-pool window go to the first maximum in row-major order, as in PyTorch's CPU
 * kernel, so the gradient lands on the same element.
 */
#include <float.h>
#include <string.h>

#include "internal.h"

cim_status cim_cpu_global_avg_pool_forward(cim_cpu_context *context, int N, int C, int L,
                                           const float *x, float *y) {
    if (!context || !x || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    if (N < 1 || C < 1 || L < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes N=%d C=%d L=%d must be positive", N, C, L);
    for (long plane = 0; plane < (long)N * C; plane++) {
        const float *in = x + plane * L;
        double sum = 0.0;
        for (int i = 0; i < L; i++) sum += in[i];
        y[plane] = (float)(sum / L);
    }
    return CIM_OK;
}

cim_status cim_cpu_global_avg_pool_backward(cim_cpu_context *context, int N, int C, int L,
                                            const float *dy, float *dx) {
    if (!context || !dy || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    if (N < 1 || C < 1 || L < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes N=%d C=%d L=%d must be positive", N, C, L);
    const float inverse = 1.0f / (float)L;
    for (long plane = 0; plane < (long)N * C; plane++) {
        float *out = dx + plane * L;
        const float value = dy[plane] * inverse;
        for (int i = 0; i < L; i++) out[i] = value;
    }
    return CIM_OK;
}

cim_status cim_pool2d_output_size(const cim_pool2d_shape *s, int *out_height, int *out_width) {
    if (!s) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "shape is NULL");
    if (s->batch < 1 || s->channels < 1 || s->in_height < 1 || s->in_width < 1 ||
        s->kernel_height < 1 || s->kernel_width < 1 || s->stride_height < 1 ||
        s->stride_width < 1 || s->pad_height < 0 || s->pad_width < 0)
        return CIM_FAIL(CIM_ERROR_SHAPE, "pooling sizes must be positive (padding >= 0)");
    /* PyTorch: padding at most half the kernel, so every window holds a real element */
    if (2 * s->pad_height > s->kernel_height || 2 * s->pad_width > s->kernel_width)
        return CIM_FAIL(CIM_ERROR_SHAPE, "padding %dx%d exceeds half the kernel %dx%d",
                        s->pad_height, s->pad_width, s->kernel_height, s->kernel_width);
    const int P = (s->in_height + 2 * s->pad_height - s->kernel_height) / s->stride_height + 1;
    const int Q = (s->in_width + 2 * s->pad_width - s->kernel_width) / s->stride_width + 1;
    if (P < 1 || Q < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "kernel %dx%d larger than the padded input %dx%d",
                        s->kernel_height, s->kernel_width, s->in_height + 2 * s->pad_height,
                        s->in_width + 2 * s->pad_width);
    if (out_height) *out_height = P;
    if (out_width) *out_width = Q;
    return CIM_OK;
}

cim_status cim_cpu_max_pool2d_forward(cim_cpu_context *context, const cim_pool2d_shape *s,
                                      const float *x, float *y, int32_t *argmax) {
    if (!context || !x || !y || !argmax)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    int P, Q;
    CIM_TRY(cim_pool2d_output_size(s, &P, &Q));
    const int H = s->in_height, W = s->in_width;
    for (long plane = 0; plane < (long)s->batch * s->channels; plane++) {
        const float *in = x + plane * H * W;
        float *out = y + plane * P * Q;
        int32_t *arg = argmax + plane * P * Q;
        for (int p = 0; p < P; p++) {
            for (int q = 0; q < Q; q++) {
                const int h0 = p * s->stride_height - s->pad_height;
                const int w0 = q * s->stride_width - s->pad_width;
                float best = -FLT_MAX;
                int32_t where = -1;
                for (int r = 0; r < s->kernel_height; r++) {
                    const int h = h0 + r;
                    if (h < 0 || h >= H) continue;
                    for (int t = 0; t < s->kernel_width; t++) {
                        const int w = w0 + t;
                        if (w < 0 || w >= W) continue;
                        const float v = in[h * W + w];
                        /* NaN propagates, as in PyTorch */
                        if (where < 0 || v > best || v != v) {
                            best = v;
                            where = h * W + w;
                            if (v != v) goto done;
                        }
                    }
                }
            done:
                out[p * Q + q] = best;
                arg[p * Q + q] = where;
            }
        }
    }
    return CIM_OK;
}

cim_status cim_cpu_max_pool2d_backward(cim_cpu_context *context, const cim_pool2d_shape *s,
                                       const float *dy, const int32_t *argmax, float *dx) {
    if (!context || !dy || !argmax || !dx)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    int P, Q;
    CIM_TRY(cim_pool2d_output_size(s, &P, &Q));
    const long HW = (long)s->in_height * s->in_width, PQ = (long)P * Q;
    memset(dx, 0, sizeof(float) * s->batch * s->channels * HW);
    for (long plane = 0; plane < (long)s->batch * s->channels; plane++)
        for (long i = 0; i < PQ; i++) dx[plane * HW + argmax[plane * PQ + i]] += dy[plane * PQ + i];
    return CIM_OK;
}
