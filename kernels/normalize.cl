/*
 * normalize.cl: L2 normalisation of the rows of an N x D matrix (SPEC 1.3), float32, as
 * normalize.c on the CPU (torch.nn.functional.normalize(u, dim=1, eps)).
 *
 *   forward    n_i = ||u_i||_2,   z_i = u_i / max(n_i, eps)
 *   backward   du_i = (g_i - (z_i . g_i) z_i) / n_i     when n_i > eps
 *              du_i = g_i / eps                          when the norm was clamped
 *
 * norms keeps n_i for the backward pass. One 64-wide work-group per row: compensated
 * partial sums, then group_sum_ (common.cl).
 */

#define NORM_THREADS 64

KERNEL WORKGROUP_SIZE(64, 1, 1) void l2_normalize_forward_kernel(
    const int columns, const float eps, GLOBAL const float *u, GLOBAL float *z,
    GLOBAL float *norms) {
    LOCAL float scratch[NORM_THREADS];
    const int row = GROUP_ID(0), t = LOCAL_ID(0);
    GLOBAL const float *in = u + (long)row * columns;
    GLOBAL float *out = z + (long)row * columns;

    /* the norm */
    float sum = 0.0f, compensation = 0.0f;
    for (int j = t; j < columns; j += NORM_THREADS) kahan_add_(&sum, &compensation, in[j] * in[j]);
    const float norm = sqrt(group_sum_(sum, scratch));
    if (t == 0) norms[row] = norm;

    /* z = u / max(norm, eps) */
    const float divisor = norm > eps ? norm : eps;
    for (int j = t; j < columns; j += NORM_THREADS) out[j] = in[j] / divisor;
}

KERNEL WORKGROUP_SIZE(64, 1, 1) void l2_normalize_backward_kernel(
    const int columns, const float eps, GLOBAL const float *dz, GLOBAL const float *z,
    GLOBAL const float *norms, GLOBAL float *du) {
    LOCAL float scratch[NORM_THREADS];
    const int row = GROUP_ID(0), t = LOCAL_ID(0);
    GLOBAL const float *g = dz + (long)row * columns, *zi = z + (long)row * columns;
    GLOBAL float *out = du + (long)row * columns;
    const float norm = norms[row];

    /* z . g, taken for every row so that each work-item reaches group_sum_'s barriers (an
     * early exit before them crashes PoCL's work-group loops) */
    float sum = 0.0f, compensation = 0.0f;
    for (int j = t; j < columns; j += NORM_THREADS) kahan_add_(&sum, &compensation, zi[j] * g[j]);
    const float projection = group_sum_(sum, scratch);

    /* du = (g - (z . g) z) / norm, or g / eps where the norm was clamped */
    if (norm > eps) {
        const float inverse = 1.0f / norm;
        for (int j = t; j < columns; j += NORM_THREADS)
            out[j] = (g[j] - projection * zi[j]) * inverse;
    } else {
        for (int j = t; j < columns; j += NORM_THREADS) out[j] = g[j] / eps;
    }
}
