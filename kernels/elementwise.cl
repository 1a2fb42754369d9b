/*
 * elementwise.cl: the element-wise and row/column ops of a training step, float32, as
 * elementwise.c on the CPU.
 *
 *   relu_forward_kernel    y = max(x, 0)                 (NaN gives 0, as the CPU's x > 0)
 *   relu_backward_kernel   dx = dy [y > 0]               (dx may alias dy)
 *   add_kernel             y = a + b
 *   axpy_kernel            y = alpha x + y
 *   scale_kernel           y = alpha y
 *   bias_add_kernel        y[n, j] += bias[j]             (y is rows x columns)
 *   column_sum_kernel      sums[j] (+)= sum_n y[n, j]     (compensated, in row order)
 *
 * Fill is not a kernel: the host uses clEnqueueFillBuffer, which also serves float64 and
 * int32 tensors on devices without fp64. Counts are below 2^31 (checked by the host); one
 * work-item per element, grids rounded up to the work-group size.
 */

KERNEL void relu_forward_kernel(const int count, GLOBAL const float *x, GLOBAL float *y) {
    const int i = GLOBAL_ID(0);
    if (i < count) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

KERNEL void relu_backward_kernel(const int count, GLOBAL const float *dy,
                                 GLOBAL const float *y, GLOBAL float *dx) {
    const int i = GLOBAL_ID(0);
    if (i < count) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

KERNEL void add_kernel(const int count, GLOBAL const float *a, GLOBAL const float *b,
                       GLOBAL float *y) {
    const int i = GLOBAL_ID(0);
    if (i < count) y[i] = a[i] + b[i];
}

KERNEL void axpy_kernel(const int count, const float alpha, GLOBAL const float *x,
                        GLOBAL float *y) {
    const int i = GLOBAL_ID(0);
    if (i < count) y[i] += alpha * x[i];
}

KERNEL void scale_kernel(const int count, const float alpha, GLOBAL float *y) {
    const int i = GLOBAL_ID(0);
    if (i < count) y[i] *= alpha;
}

KERNEL void bias_add_kernel(const int rows, const int columns, GLOBAL const float *bias,
                            GLOBAL float *y) {
    const int j = GLOBAL_ID(0), n = GLOBAL_ID(1);
    if (j < columns && n < rows) y[(long)n * columns + j] += bias[j];
}

KERNEL void column_sum_kernel(const int rows, const int columns, GLOBAL const float *y,
                              GLOBAL float *sums, const int accumulate) {
    const int j = GLOBAL_ID(0);
    if (j >= columns) return;
    float sum = 0.0f, compensation = 0.0f;
    for (int n = 0; n < rows; n++) kahan_add_(&sum, &compensation, y[(long)n * columns + j]);
    sums[j] = accumulate ? sums[j] + sum : sum;
}
