/*
 * batchnorm.cl: batch normalisation over [N, C, L] tensors (L = H W; 1 for BatchNorm1d),
 * float32, as batchnorm.c computes it on the CPU.
 *
 * Training (M = N L values per channel):
 *   mean_c = (1/M) sum x,   var_c = (1/M) sum (x - mean_c)^2    (biased, for normalising)
 *   inv_std_c = 1 / sqrt(var_c + eps),   y = gamma_c inv_std_c (x - mean_c) + beta_c
 *   running_mean = (1 - momentum) running_mean + momentum mean_c
 *   running_var  = (1 - momentum) running_var  + momentum var_c M / (M - 1)   (unbiased)
 * Evaluation: the same with the running statistics in place of the batch's.
 * Backward (training mode), g = dy:
 *   dbeta_c = sum g,   dgamma_c = inv_std_c sum g (x - mean_c)
 *   dx = gamma_c inv_std_c / M (M g - dbeta_c - x^ dgamma_c)
 *      = a g + b (x - mean_c) + d   with a = gamma inv_std, b = -a inv_std dgamma / M,
 *                                        d = -a dbeta / M
 * dgamma and dbeta are written, or added to with accumulate.
 * Synchronised batch norm's float32 pieces (its float64 sums are in batchnorm_sync.cl):
 *   channel_affine_kernel           y = scale_c x + shift_c
 *   batchnorm_backward_apply_kernel dx = a_c g + b_c (x - mean_c) + d_c
 *
 * Training and backward run one 256-wide work-group per channel: each work-item walks its
 * share of the channel (common.cl) with compensated sums, then group_sum_ adds the shares.
 * The mean and the variance take two passes (no E[x^2] - E[x]^2 cancellation), a third
 * writes y. Element-wise kernels take (l, c, n) grids (N C on one axis would pass CUDA's limit of
 * 65535 blocks along y at ResNet-50 sizes).
 */

#define BN_THREADS 256

KERNEL WORKGROUP_SIZE(256, 1, 1) void batchnorm_forward_train_kernel(
    const int N, const int C, const int L, GLOBAL const float *x,
    GLOBAL const float *gamma, GLOBAL const float *beta,
    GLOBAL float *running_mean, GLOBAL float *running_var,
    GLOBAL float *y, GLOBAL float *saved_mean,
    GLOBAL float *saved_inv_std, const float momentum, const float eps) {
    LOCAL float scratch[BN_THREADS];
    const int c = GROUP_ID(0), t = LOCAL_ID(0);
    const float M = (float)N * (float)L;

    /* mean */
    float sum = 0.0f, compensation = 0.0f;
    for (channel_walk_ w = channel_walk_start_(t, BN_THREADS, L); w.n < N;
         channel_walk_next_(&w))
        kahan_add_(&sum, &compensation, x[((long)w.n * C + c) * L + w.l]);
    const float mean = group_sum_(sum, scratch) / M;

    /* biased variance about the mean */
    sum = 0.0f;
    compensation = 0.0f;
    for (channel_walk_ w = channel_walk_start_(t, BN_THREADS, L); w.n < N;
         channel_walk_next_(&w)) {
        const float centered = x[((long)w.n * C + c) * L + w.l] - mean;
        kahan_add_(&sum, &compensation, centered * centered);
    }
    const float var = group_sum_(sum, scratch) / M;
    const float inv_std = 1.0f / sqrt(var + eps);

    /* statistics */
    if (t == 0) {
        saved_mean[c] = mean;
        saved_inv_std[c] = inv_std;
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * var * M / (M - 1.0f);
    }

    /* y = scale x + shift */
    const float scale = gamma[c] * inv_std;
    const float shift = beta[c] - scale * mean;
    for (channel_walk_ w = channel_walk_start_(t, BN_THREADS, L); w.n < N;
         channel_walk_next_(&w)) {
        const long i = ((long)w.n * C + c) * L + w.l;
        y[i] = scale * x[i] + shift;
    }
}

KERNEL void batchnorm_forward_eval_kernel(
    const int N, const int C, const int L, GLOBAL const float *x,
    GLOBAL const float *gamma, GLOBAL const float *beta,
    GLOBAL const float *running_mean, GLOBAL const float *running_var,
    GLOBAL float *y, const float eps) {
    const int l = GLOBAL_ID(0), c = GLOBAL_ID(1), n = GLOBAL_ID(2);
    if (l >= L || c >= C || n >= N) return;
    const float scale = gamma[c] / sqrt(running_var[c] + eps);
    const float shift = beta[c] - scale * running_mean[c];
    const long i = ((long)n * C + c) * L + l;
    y[i] = scale * x[i] + shift;
}

KERNEL WORKGROUP_SIZE(256, 1, 1) void batchnorm_backward_kernel(
    const int N, const int C, const int L, GLOBAL const float *dy,
    GLOBAL const float *x, GLOBAL const float *gamma,
    GLOBAL const float *saved_mean, GLOBAL const float *saved_inv_std,
    GLOBAL float *dx, GLOBAL float *dgamma, GLOBAL float *dbeta,
    const int accumulate) {
    LOCAL float scratch[BN_THREADS];
    const int c = GROUP_ID(0), t = LOCAL_ID(0);
    const float M = (float)N * (float)L;
    const float mean = saved_mean[c], inv_std = saved_inv_std[c];

    /* dbeta = sum g, dgamma = inv_std sum g (x - mean) */
    float sum_g = 0.0f, comp_g = 0.0f, sum_gx = 0.0f, comp_gx = 0.0f;
    for (channel_walk_ w = channel_walk_start_(t, BN_THREADS, L); w.n < N;
         channel_walk_next_(&w)) {
        const long i = ((long)w.n * C + c) * L + w.l;
        kahan_add_(&sum_g, &comp_g, dy[i]);
        kahan_add_(&sum_gx, &comp_gx, dy[i] * (x[i] - mean));
    }
    const float dbeta_c = group_sum_(sum_g, scratch);
    const float dgamma_c = group_sum_(sum_gx, scratch) * inv_std;

    /* dx = a g + b (x - mean) + d */
    const float a = gamma[c] * inv_std;
    const float b = -a * inv_std * dgamma_c / M;
    const float d = -a * dbeta_c / M;
    for (channel_walk_ w = channel_walk_start_(t, BN_THREADS, L); w.n < N;
         channel_walk_next_(&w)) {
        const long i = ((long)w.n * C + c) * L + w.l;
        dx[i] = a * dy[i] + b * (x[i] - mean) + d;
    }
    if (t == 0) {
        dgamma[c] = accumulate ? dgamma[c] + dgamma_c : dgamma_c;
        dbeta[c] = accumulate ? dbeta[c] + dbeta_c : dbeta_c;
    }
}

KERNEL void channel_affine_kernel(
    const int N, const int C, const int L, GLOBAL const float *x,
    GLOBAL const float *scale, GLOBAL const float *shift,
    GLOBAL float *y) {
    const int l = GLOBAL_ID(0), c = GLOBAL_ID(1), n = GLOBAL_ID(2);
    if (l >= L || c >= C || n >= N) return;
    const long i = ((long)n * C + c) * L + l;
    y[i] = scale[c] * x[i] + shift[c];
}

KERNEL void batchnorm_backward_apply_kernel(
    const int N, const int C, const int L, GLOBAL const float *dy,
    GLOBAL const float *x, GLOBAL const float *mean,
    GLOBAL const float *coefficients, GLOBAL float *dx) {
    const int l = GLOBAL_ID(0), c = GLOBAL_ID(1), n = GLOBAL_ID(2);
    if (l >= L || c >= C || n >= N) return;
    const long i = ((long)n * C + c) * L + l;
    /* coefficients is [3, C]: a, b, d */
    dx[i] = coefficients[c] * dy[i] + coefficients[C + c] * (x[i] - mean[c])
            + coefficients[2 * C + c];
}
