/*
 * pooling.cl: global average pooling and max pooling over NCHW tensors, float32, as
 * pooling.c on the CPU.
 *
 *   global average   y[n, c] = (1/L) sum_i x[n, c, i]            (L = H W)
 *   its backward     dx[n, c, i] = dy[n, c] (1/L)
 *   max pool         y[n, c, p, q] = max over the R x S window at (p sh - ph, q sw - pw);
 *                    padding never wins; argmax[n, c, p, q] = h W + w of the winner in its
 *                    plane (int32). Ties go to the first maximum in row-major order and a
 *                    NaN wins at once, as in PyTorch's CPU kernel.
 *   its backward     dx[n, c, h, w] = sum of dy[n, c, p, q] over the windows (p, q) whose
 *                    argmax is h W + w
 *
 * The max-pool backward is a gather, one work-item per input element visiting the windows
 * that contain it in (p, q) order: no atomics, deterministic, and the same order of
 * additions as the CPU's scatter, so the results agree bit for bit. Grids: (q, p, plane)
 * or (w, h, plane), plane = n C + c; the average's backward (i, c, n).
 */

KERNEL void global_avg_pool_forward_kernel(const int planes, const int L,
                                           GLOBAL const float *x, GLOBAL float *y) {
    const int plane = GLOBAL_ID(0);
    if (plane >= planes) return;
    GLOBAL const float *in = x + (long)plane * L;
    float sum = 0.0f, compensation = 0.0f;
    for (int i = 0; i < L; i++) kahan_add_(&sum, &compensation, in[i]);
    y[plane] = sum / (float)L;
}

KERNEL void global_avg_pool_backward_kernel(const int N, const int C, const int L,
                                            GLOBAL const float *dy, GLOBAL float *dx) {
    const int i = GLOBAL_ID(0), c = GLOBAL_ID(1), n = GLOBAL_ID(2);
    if (i >= L || c >= C || n >= N) return;
    const long plane = (long)n * C + c;
    dx[plane * L + i] = dy[plane] * (1.0f / (float)L);
}

KERNEL void max_pool2d_forward_kernel(
    const int planes, const int H, const int W, const int R, const int S, const int sh,
    const int sw, const int ph, const int pw, const int P, const int Q, GLOBAL const float *x,
    GLOBAL float *y, GLOBAL int *argmax) {
    const int q = GLOBAL_ID(0), p = GLOBAL_ID(1), plane = GLOBAL_ID(2);
    if (q >= Q || p >= P || plane >= planes) return;
    GLOBAL const float *in = x + (long)plane * H * W;
    const int h0 = p * sh - ph, w0 = q * sw - pw;
    float best = -CIM_FLT_MAX;
    int where = -1;
    for (int r = 0; r < R; r++) {
        const int h = h0 + r;
        if (h < 0 || h >= H) continue;
        int found_nan = 0;
        for (int s = 0; s < S; s++) {
            const int w = w0 + s;
            if (w < 0 || w >= W) continue;
            const float v = in[h * W + w];
            if (where < 0 || v > best || v != v) {
                best = v;
                where = h * W + w;
                if (v != v) {
                    found_nan = 1;
                    break;
                }
            }
        }
        if (found_nan) break;
    }
    const long out = (long)plane * P * Q + p * Q + q;
    y[out] = best;
    argmax[out] = where;
}

KERNEL void max_pool2d_backward_kernel(
    const int planes, const int H, const int W, const int R, const int S, const int sh,
    const int sw, const int ph, const int pw, const int P, const int Q,
    GLOBAL const float *dy, GLOBAL const int *argmax, GLOBAL float *dx) {
    const int w = GLOBAL_ID(0), h = GLOBAL_ID(1), plane = GLOBAL_ID(2);
    if (w >= W || h >= H || plane >= planes) return;
    /* windows containing (h, w): p sh - ph <= h <= p sh - ph + R - 1 */
    const int hp = h + ph, wq = w + pw;
    const int p_begin = hp - R + 1 > 0 ? div_stride_(hp - R + 1 + sh - 1, sh) : 0;
    const int p_end = min(div_stride_(hp, sh), P - 1);
    const int q_begin = wq - S + 1 > 0 ? div_stride_(wq - S + 1 + sw - 1, sw) : 0;
    const int q_end = min(div_stride_(wq, sw), Q - 1);
    const long base = (long)plane * P * Q;
    const int self = h * W + w;
    float sum = 0.0f;
    for (int p = p_begin; p <= p_end; p++)
        for (int q = q_begin; q <= q_end; q++)
            if (argmax[base + p * Q + q] == self) sum += dy[base + p * Q + q];
    dx[(long)plane * H * W + self] = sum;
}
