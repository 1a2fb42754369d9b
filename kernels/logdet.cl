/*
 * logdet.cl: batched log-determinant and inverse of symmetric positive-definite matrices
 * by Cholesky, in fp64 (the fp64 program only), as logdet.c on the CPU.
 *
 *   A = L L^T,   log det A = 2 sum_i log L_ii,   A^-1 = L^-T L^-1
 *
 * batch matrices of n x n, row-major, contiguous; only the lower triangle is read. The host
 * (opencl_ops.c) factors a copy in place, blocked right-looking with blocks of NB = 64:
 *
 *   for k = 0, NB, 2 NB, ...:
 *     cholesky_block_kernel   A_kk = L_kk L_kk^T        (unblocked, one work-group/matrix)
 *     cholesky_panel_kernel   L_ik = A_ik L_kk^-T       (i below the block, one work-item
 *                                                         per row, forward substitution)
 *     gemm_kernel_f64         A_ii -= L_ik L_ik^T       (trailing update, lower tiles only)
 *
 * then logdet_sum_kernel gives 2 sum log L_ii. The inverse: X = L^-1 by blocks, from the
 * last block column to the first (LAPACK's dtrtri, lower), on X zeroed first:
 *
 *     triangular_block_inverse_kernel   X_kk = L_kk^-1   (column t of the block by forward
 *                                       substitution: x_i = (delta_it - sum L_ip x_p) / L_ii)
 *     gemm_kernel_f64 twice             X_ik = -(X_ii L_ik) X_kk   for the rows i below
 *
 * and gemm_kernel_f64 A^-1 = X^T X, symmetric bit for bit (entries (i, j) and (j, i) add the
 * same products in the same order).
 *
 * A pivot that is not positive (or not a number: a NaN or an infinity anywhere in the
 * lower triangle ends up in a later pivot) stops that matrix: info[b] = its 1-based order,
 * as LAPACK's dpotrf reports it, and later blocks of that matrix are skipped. The host
 * reads info before anything is written to the caller's tensors, so a failure leaves no
 * NaN behind.
 */

#define CHOLESKY_BLOCK 64

/* grid (64, batch): factors the nb x nb diagonal block at (k, k) of matrix b in place.
 * Every work-item runs every iteration and reaches every barrier, also after a failure (an
 * early exit between barriers breaks PoCL's work-group loops); `failed` only skips work. */
KERNEL WORKGROUP_SIZE(64, 1, 1) void cholesky_block_kernel(
    GLOBAL double *a, const int n, const int k, const int nb, GLOBAL int *info) {
    LOCAL int failed;
    const int t = LOCAL_ID(0), b = GLOBAL_ID(1);
    GLOBAL double *block = a + (long)b * n * n + (long)k * n + k;
    if (t == 0) failed = info[b] != 0;   /* this matrix failed in an earlier block */
    BARRIER_ALL();
    for (int j = 0; j < nb; j++) {
        /* the pivot */
        if (t == j && !failed) {
            const double pivot = block[(long)j * n + j];
            if (pivot > 0.0) {
                block[(long)j * n + j] = sqrt(pivot);
            } else {
                failed = 1;
                info[b] = k + j + 1;
            }
        }
        BARRIER_ALL();
        const int skip = failed;   /* read after the barrier: the same for every work-item */

        /* column j below the pivot, then the rest of each row t against it */
        if (!skip && t > j && t < nb) block[(long)t * n + j] /= block[(long)j * n + j];
        BARRIER_ALL();
        if (!skip && t > j && t < nb) {
            const double l = block[(long)t * n + j];
            for (int c = j + 1; c <= t; c++) block[(long)t * n + c] -= l * block[(long)c * n + j];
        }
        BARRIER_ALL();
    }
}

/* grid (rows below the block, batch): L_ik = A_ik L_kk^-T, row by row */
KERNEL void cholesky_panel_kernel(GLOBAL double *a, const int n, const int k, const int nb,
                                  GLOBAL const int *info, const int batch) {
    const int i = k + nb + GLOBAL_ID(0), b = GLOBAL_ID(1);
    if (i >= n || b >= batch || info[b] != 0) return;
    GLOBAL double *m = a + (long)b * n * n;
    GLOBAL double *row = m + (long)i * n + k;
    for (int j = 0; j < nb; j++) {
        GLOBAL const double *pivot_row = m + (long)(k + j) * n + k;
        double sum = row[j];
        for (int p = 0; p < j; p++) sum -= row[p] * pivot_row[p];
        row[j] = sum / pivot_row[j];
    }
}

/* grid (64, batch): logdet[b] = 2 sum_i log L_ii */
KERNEL WORKGROUP_SIZE(64, 1, 1) void logdet_sum_kernel(GLOBAL const double *l, const int n,
                                                       GLOBAL double *logdet) {
    LOCAL double scratch[64];
    const int t = LOCAL_ID(0), b = GLOBAL_ID(1);
    GLOBAL const double *m = l + (long)b * n * n;
    double sum = 0.0;
    for (int i = t; i < n; i += 64) sum += log(m[(long)i * n + i]);
    const double total = group_sum_(sum, scratch);
    if (t == 0) logdet[b] = 2.0 * total;
}

/* grid (64, batch): X_kk = L_kk^-1 for the nb x nb diagonal block at (k, k); work-item t
 * takes column t (forward substitution), zeros above the diagonal */
KERNEL WORKGROUP_SIZE(64, 1, 1) void triangular_block_inverse_kernel(
    GLOBAL const double *l, GLOBAL double *x, const int n, const int k, const int nb) {
    const int t = LOCAL_ID(0), b = GLOBAL_ID(1);
    if (t >= nb) return;
    GLOBAL const double *block = l + (long)b * n * n + (long)k * n + k;
    GLOBAL double *out = x + (long)b * n * n + (long)k * n + k + t;
    for (int i = 0; i < t; i++) out[(long)i * n] = 0.0;
    for (int i = t; i < nb; i++) {
        GLOBAL const double *row = block + (long)i * n;
        double sum = i == t ? 1.0 : 0.0;
        for (int p = t; p < i; p++) sum -= row[p] * out[(long)p * n];
        out[(long)i * n] = sum / row[i];
    }
}
