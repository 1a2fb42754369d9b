/*
 * batchnorm_sync.cl: the float64 per-channel sums of synchronised batch norm (SPEC 3.2),
 * in the fp64 program (CIM_REAL is double here).
 *
 *   channel_sums_kernel            sums[c] = sum x[:, c]                  (center == 0)
 *                                  sums[c] = sum (x[:, c] - center[c])^2   (center != 0)
 *   batchnorm_backward_sums_kernel sums[c]     = sum dy[:, c]
 *                                  sums[C + c] = sum dy[:, c] (x[:, c] - mean[c])
 *
 * x and dy are float32 [N, C, L]; the sums are accumulated and written in double, as
 * batchnorm.c does, so replicas all-reduce the same numbers the CPU backend would give.
 * One 256-wide work-group per channel walks the channel (common.cl) and group_sum_ adds the
 * shares. A device without fp64 never builds this file; the host computes these sums on
 * the CPU instead.
 */

KERNEL WORKGROUP_SIZE(256, 1, 1) void channel_sums_kernel(
    const int N, const int C, const int L, GLOBAL const float *x, GLOBAL const float *center,
    const int centered, GLOBAL double *sums) {
    LOCAL double scratch[256];
    const int c = GROUP_ID(0), t = LOCAL_ID(0);
    const double shift = centered ? (double)center[c] : 0.0;
    double sum = 0.0;
    for (channel_walk_ w = channel_walk_start_(t, 256, L); w.n < N; channel_walk_next_(&w)) {
        const double value = (double)x[((long)w.n * C + c) * L + w.l];
        sum += centered ? (value - shift) * (value - shift) : value;
    }
    const double total = group_sum_(sum, scratch);
    if (t == 0) sums[c] = total;
}

KERNEL WORKGROUP_SIZE(256, 1, 1) void batchnorm_backward_sums_kernel(
    const int N, const int C, const int L, GLOBAL const float *dy, GLOBAL const float *x,
    GLOBAL const float *mean, GLOBAL double *sums) {
    LOCAL double scratch[256];
    const int c = GROUP_ID(0), t = LOCAL_ID(0);
    const double center = (double)mean[c];
    double sum_g = 0.0, sum_gx = 0.0;
    for (channel_walk_ w = channel_walk_start_(t, 256, L); w.n < N; channel_walk_next_(&w)) {
        const long i = ((long)w.n * C + c) * L + w.l;
        const double g = (double)dy[i];
        sum_g += g;
        sum_gx += g * ((double)x[i] - center);
    }
    const double total_g = group_sum_(sum_g, scratch);
    const double total_gx = group_sum_(sum_gx, scratch);
    if (t == 0) {
        sums[c] = total_g;
        sums[C + c] = total_gx;
    }
}
