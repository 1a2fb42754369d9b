/*
 * conv2d.cl: the data movement around GEMM that turns 2-D convolution (NCHW, no bias,
 * cross-correlation as in PyTorch) into matrix products, float32.
 *
 * Letters: N images, C input channels of H x W, K output channels of P x Q, kernel R x S,
 * strides sh, sw, paddings ph, pw.
 *
 *   forward          y[n,k,p,q]  = sum_{c,r,s} w[k,c,r,s] x[n,c,p sh-ph+r,q sw-pw+s]
 *   backward data    dx[n,c,h,v] = sum_{k,r,s: h = p sh-ph+r, v = q sw-pw+s} w[k,c,r,s] dy[n,k,p,q]
 *   backward filter  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] x[n,c,p sh-ph+r,q sw-pw+s]
 *
 * The host (opencl_ops.c) takes G images at a time. With col the (C R S) x (G P Q) patch
 * matrix of those images and dYg the output gradient as K x (G P Q):
 *
 *   forward          y_g  = W [K x CRS] col            (gemm.cl writes NCHW directly)
 *   backward data    dcol = W^T dYg,  then dx = col2im(dcol)
 *   backward filter  dW  (+)= dYg col^T
 *
 * im2col_kernel      col[(c R + r) S + s][g P Q + p Q + q] = x[g, c, p sh-ph+r, q sw-pw+s]
 *                    or 0 in the padding; one work-item per (q, p, (g, c)), R S outputs each
 * col2im_kernel      dx[g, c, h, v] = sum over the (r, s) whose window covers (h, v) of
 *                    dcol[(c R + r) S + s][g P Q + p Q + q]; a gather, one work-item per input
 *                    element, so no two work-items write the same place and no atomics are
 *                    needed (sums in (r, s) order)
 * nchw_to_rows_kernel  dYg[k][g P Q + l] = dy[g, k, l]   (l = p Q + q)
 *
 * x, dx and dy point at image 0 of the group (x_offset elements into the buffer).
 */

KERNEL void im2col_kernel(
    GLOBAL const float *RESTRICT x, const long x_offset, const int C, const int H, const int W,
    const int R, const int S, const int sh, const int sw, const int ph, const int pw,
    const int P, const int Q, const int images, GLOBAL float *RESTRICT col, const int ld) {
    const int q = GLOBAL_ID(0), p = GLOBAL_ID(1), gc = GLOBAL_ID(2);
    if (q >= Q || p >= P || gc >= images * C) return;
    const int g = gc / C, c = gc % C;
    GLOBAL const float *plane = x + x_offset + (long)gc * H * W;
    GLOBAL float *out = col + (long)c * R * S * ld + (long)g * P * Q + p * Q + q;
    for (int r = 0; r < R; r++) {
        const int h = p * sh - ph + r;
        const int row_inside = h >= 0 && h < H;
        for (int s = 0; s < S; s++) {
            const int v = q * sw - pw + s;
            out[(long)(r * S + s) * ld] = row_inside && v >= 0 && v < W ? plane[h * W + v] : 0.0f;
        }
    }
}

KERNEL void col2im_kernel(
    GLOBAL const float *RESTRICT dcol, const int ld, const int C, const int H, const int W,
    const int R, const int S, const int sh, const int sw, const int ph, const int pw,
    const int P, const int Q, const int images, GLOBAL float *RESTRICT dx, const long dx_offset) {
    const int v = GLOBAL_ID(0), h = GLOBAL_ID(1), gc = GLOBAL_ID(2);
    if (v >= W || h >= H || gc >= images * C) return;
    const int g = gc / C, c = gc % C;
    GLOBAL const float *in = dcol + (long)c * R * S * ld + (long)g * P * Q;
    float sum = 0.0f;
    for (int r = 0; r < R; r++) {
        const int hp = h + ph - r;   /* = p sh */
        if (hp < 0 || mod_stride_(hp, sh) != 0) continue;
        const int p = div_stride_(hp, sh);
        if (p >= P) continue;
        for (int s = 0; s < S; s++) {
            const int vq = v + pw - s;   /* = q sw */
            if (vq < 0 || mod_stride_(vq, sw) != 0) continue;
            const int q = div_stride_(vq, sw);
            if (q >= Q) continue;
            sum += in[(long)(r * S + s) * ld + p * Q + q];
        }
    }
    dx[dx_offset + (long)gc * H * W + h * W + v] = sum;
}

KERNEL void nchw_to_rows_kernel(
    GLOBAL const float *RESTRICT dy, const long dy_offset, const int K, const int L,
    const int images, GLOBAL float *RESTRICT rows, const int ld) {
    const int l = GLOBAL_ID(0), k = GLOBAL_ID(1), g = GLOBAL_ID(2);
    if (l >= L || k >= K || g >= images) return;
    rows[(long)k * ld + (long)g * L + l] = dy[dy_offset + ((long)g * K + k) * L + l];
}
