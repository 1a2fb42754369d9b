/*
 * logdet.c: batched log-determinant (and inverse) of symmetric positive-definite fp64
 * matrices through Cholesky, and the textbook reference.
 *
 *   A = L L^T,   log det A = 2 sum_i log L_ii,   A^-1 = L^-T L^-1
 *
 * Shapes: `batch` matrices of n x n, contiguous, row-major. The CorInfoMax loss needs
 * log det(R_v + eps I) for its value and (R_v + eps I)^-1 for its gradient (SPEC 2.2), in
 * double, as the reference does. FLOPs: n^3 / 3 for the factor, 2 n^3 / 3 more for the
 * inverse.
 *
 * Only the lower triangle (row-major) is read. Seen by column-major LAPACK, the row-major
 * lower triangle is the upper one, so dpotrf/dpotri are called with uplo = 'U' on a copy;
 * the factor's diagonal is the same either way, and dpotri leaves the inverse's row-major
 * lower triangle, which is mirrored to give the full symmetric inverse.
 *
 * A matrix that is not positive definite (a pivot <= 0, or a non-finite entry) is an error
 * naming its batch index; no NaN is written.
 *
 * The factor comes from our own blocked kernel up to n = OWN_CHOLESKY_MAX (faster than
 * OpenBLAS's dpotrf there) and from dpotrf above; the inverse always from dpotri.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Lower-triangle entries must all be finite; LAPACK would otherwise pass NaN through. */
static int lower_triangle_finite_(int n, const double *a) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            if (!isfinite(a[(long)i * n + j])) return 0;
    return 1;
}

/*
 * Threads. Measured with `cim-train bench --ops logdet` and a C loop around dpotrf on the
 * development machine (AMD EPYC, OpenBLAS 0.3.21): single-threaded dpotrf runs at 4 to 7
 * GFLOP/s at n = 64, 8 to 12 at 128, 24 at 512, and OpenBLAS's own threads add little below
 * n ~ 1000 while costing thread hand-offs. So up to SINGLE_THREAD_MAX every matrix is
 * factored on one thread (which also makes a matrix's result independent of the batch it
 * came in), and the matrices of a batch go to separate threads once each is big enough
 * (PARALLEL_MIN) to pay for starting one. Larger matrices use OpenBLAS's threads. Starting
 * and joining a thread costs 20 to 70 us on the 2-core VM we measure on, and the second
 * core reads the matrix from the first one's cache: at batch 2, two threads were slower
 * than one up to n = 256 (483 against 417 us there) and twice as fast at 384 and 512.
 *
 * Up to OWN_CHOLESKY_MAX our own blocked factorisation (cholesky_lower_) replaces dpotrf:
 * measured in the same C loop it runs at 11 GFLOP/s at n = 64, 18 at 128, 24 at 256, 27 at
 * 512 and 34 at 768, against dpotrf's 7, 12, 19, 24 and 31; at 1024 dpotrf is ahead (33
 * against 26: our rank-8 updates stream the trailing matrix through the cache once per
 * panel, where LAPACK's blocked GEMM updates reuse it), so LAPACK takes over above.
 */
enum { PARALLEL_MIN = 384, SINGLE_THREAD_MAX = 1024, OWN_CHOLESKY_MAX = 768 };

/*
 * Right-looking Cholesky A = L L^T in place on the row-major lower triangle, PANEL columns
 * at a time:
 *
 *   1. the panel's columns k0 .. k0+PANEL-1 (rows k0 .. n-1) are copied transposed into
 *      `panel`, so that each column is contiguous, and factored there column by column:
 *        l_p = (a_p - sum_{q < p in panel} l_q[p] l_q) / sqrt(...)   (axpys over rows)
 *   2. the factored columns go back into a, and the trailing lower triangle takes the
 *      panel's rank-PANEL update, two rows at a time:
 *        a[i][j] -= sum_q panel[q][i] panel[q][j]      for k0+PANEL <= j <= i
 *
 * The update's inner loop runs along a row with PANEL multiply-adds per element and no
 * dependence between elements, so it vectorises; target_clones compiles it for AVX-512,
 * AVX2 and baseline x86-64, picked at load time, so one binary runs everywhere. Returns 0,
 * or the order of the first leading minor that is not positive (LAPACK's info). `panel`
 * holds PANEL x n doubles. The strict upper triangle of a is not touched.
 */
enum { PANEL = 8 };

/* Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks the best the processor
 * runs (ifunc). The package itself builds for baseline x86-64 so that one binary runs on
 * every machine. Elsewhere the attribute is left out. */
#if defined(__x86_64__) && defined(__ELF__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES_ \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef VECTOR_CLONES_
#define VECTOR_CLONES_
#endif

VECTOR_CLONES_
static int cholesky_lower_(int n, double *restrict a, double *restrict panel) {
    for (int k0 = 0; k0 < n; k0 += PANEL) {
        const int width = n - k0 < PANEL ? n - k0 : PANEL;
        /* 1. panel[q][i] = a[i][k0 + q] for i >= k0, then factor it column by column */
        for (int i = k0; i < n; i++)
            for (int q = 0; q < width; q++) panel[(long)q * n + i] = a[(long)i * n + k0 + q];
        for (int q = 0; q < width; q++) {
            double *column = panel + (long)q * n;
            const int p = k0 + q;
            for (int r = 0; r < q; r++) {
                const double *previous = panel + (long)r * n;
                const double factor = previous[p];
                for (int i = p; i < n; i++) column[i] -= factor * previous[i];
            }
            if (!(column[p] > 0.0)) return p + 1;
            const double diagonal = sqrt(column[p]), inverse = 1.0 / diagonal;
            column[p] = diagonal;
            for (int i = p + 1; i < n; i++) column[i] *= inverse;
        }
        for (int i = k0; i < n; i++)
            for (int q = 0; q < width && k0 + q <= i; q++)
                a[(long)i * n + k0 + q] = panel[(long)q * n + i];

        /* 2. the trailing update, two rows at a time while the panel is full */
        const int j0 = k0 + width;
        int i = j0;
        if (width == PANEL) {
            for (; i + 1 < n; i += 2) {
                double *row0 = a + (long)i * n, *row1 = row0 + n;
                double l0[PANEL], l1[PANEL];
                for (int q = 0; q < PANEL; q++) {
                    l0[q] = panel[(long)q * n + i];
                    l1[q] = panel[(long)q * n + i + 1];
                }
                for (int j = j0; j <= i; j++) {
                    double sum0 = 0.0, sum1 = 0.0;
                    for (int q = 0; q < PANEL; q++) {
                        const double v = panel[(long)q * n + j];
                        sum0 += l0[q] * v;
                        sum1 += l1[q] * v;
                    }
                    row0[j] -= sum0;
                    row1[j] -= sum1;
                }
                double last = 0.0;   /* row i + 1 reaches one column further */
                for (int q = 0; q < PANEL; q++) last += l1[q] * l1[q];
                row1[i + 1] -= last;
            }
        }
        for (; i < n; i++) {
            double *row = a + (long)i * n;
            for (int q = 0; q < width; q++) {
                const double *column = panel + (long)q * n;
                const double l = column[i];
                for (int j = j0; j <= i; j++) row[j] -= l * column[j];
            }
        }
    }
    return 0;
}

/* One matrix: factor (and invert) in `work`, log-det to *logdet. Returns 0, or the LAPACK
 * info (> 0: leading minor not positive), or -1 for a non-finite entry. Runs on worker
 * threads, so it reports through its return value, not the thread-local error. `panel`
 * is cholesky_lower_'s scratch. */
static int logdet_one_(int n, const double *a, double *work, double *panel, double *logdet,
                       int invert) {
    if (!lower_triangle_finite_(n, a)) return -1;
    memcpy(work, a, sizeof(double) * n * n);

    /* factor: row-major lower L, which is what LAPACK calls column-major upper U = L^T */
    int info = 0;
    if (n <= OWN_CHOLESKY_MAX)
        info = cholesky_lower_(n, work, panel);
    else
        dpotrf_("U", &n, work, &n, &info, 1);
    if (info != 0) return info;

    /* log det = 2 sum log L_ii */
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += log(work[(long)i * n + i]);
    *logdet = 2.0 * sum;

    /* inverse from the factor, then mirror the lower triangle to the upper */
    if (invert) {
        dpotri_("U", &n, work, &n, &info, 1);
        if (info != 0) return info;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) work[(long)i * n + j] = work[(long)j * n + i];
    }
    return 0;
}

typedef struct logdet_job_ {
    int n;
    const double *a;
    double *logdet, *inverse, *scratch, *panels;
    int *results;
} logdet_job_;

static void logdet_range_(void *opaque, int begin, int end) {
    const logdet_job_ *job = opaque;
    const size_t matrix = (size_t)job->n * job->n;
    for (int b = begin; b < end; b++) {
        double *work = job->inverse ? job->inverse + b * matrix : job->scratch + b * matrix;
        job->results[b] = logdet_one_(job->n, job->a + b * matrix, work,
                                      job->panels + (size_t)b * PANEL * job->n,
                                      job->logdet + b, job->inverse != NULL);
    }
}


cim_status cim_cpu_logdet_spd_f64(cim_cpu_context *context, int batch, int n, const double *a,
                                  double *logdet, double *inverse, int *failed_index) {
    if (failed_index) *failed_index = -1;
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (batch < 0 || n < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "batch=%d must be >= 0 and n=%d >= 1", batch, n);
    if (batch == 0) return CIM_OK;
    if (!a || !logdet) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");

    /* the factor is built in the inverse's storage when there is one, else in scratch */
    const size_t matrix = (size_t)n * n;
    logdet_job_ job = {n, a, logdet, inverse, NULL, NULL, NULL};
    float *workspace = NULL;
    const size_t scratch_doubles = inverse ? 0 : batch * matrix;
    const size_t panel_doubles = (size_t)batch * PANEL * n;
    const size_t result_doubles = ((size_t)batch * sizeof(int) + 7) / 8;
    CIM_TRY(cim_cpu_context_workspace_(
        context, 2 * (scratch_doubles + panel_doubles + result_doubles), &workspace));
    job.scratch = (double *)workspace;
    job.panels = job.scratch + scratch_doubles;
    job.results = (int *)(job.panels + panel_doubles);

    if (n <= SINGLE_THREAD_MAX) {
        openblas_set_num_threads(1);
        cim_parallel_for_(n >= PARALLEL_MIN ? context->threads : 1, batch, logdet_range_, &job);
        cim_cpu_context_apply_threads_(context);
    } else {
        cim_cpu_context_apply_threads_(context);
        logdet_range_(&job, 0, batch);
    }

    /* the first failure, in batch order */
    for (int b = 0; b < batch; b++) {
        const int result = job.results[b];
        if (result == 0) continue;
        if (failed_index) *failed_index = b;
        if (result == -1)
            return CIM_FAIL(CIM_ERROR_NOT_POSITIVE_DEFINITE,
                            "matrix %d of the batch has a non-finite entry", b);
        return CIM_FAIL(CIM_ERROR_NOT_POSITIVE_DEFINITE,
                        "matrix %d of the batch is not positive definite (the leading minor "
                        "of order %d is not positive)", b, result);
    }
    return CIM_OK;
}

/* ---- symmetric eigenvalues ------------------------------------------------------------ */

/* Eigenvalues of one symmetric n x n matrix (lower triangle read), ascending, by LAPACK
 * dsyev; for logging the spectrum of the covariance state, not for the loss. */
cim_status cim_cpu_symmetric_eigenvalues_f64(cim_cpu_context *context, int n, const double *a,
                                             double *eigenvalues) {
    if (!context || !a || !eigenvalues)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    if (n < 1) return CIM_FAIL(CIM_ERROR_SHAPE, "n=%d must be >= 1", n);
    if (!lower_triangle_finite_(n, a))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "the matrix has a non-finite entry");
    /* workspace: the matrix copy, then dsyev's work array (3n is enough; ask for more) */
    const int lwork = 66 * n;
    double *copy = malloc(sizeof(double) * ((size_t)n * n + lwork));
    if (!copy) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for a %d x %d copy", n, n);
    memcpy(copy, a, sizeof(double) * n * n);
    int info = 0;
    cim_cpu_context_apply_threads_(context);
    dsyev_("N", "U", &n, copy, &n, eigenvalues, copy + (size_t)n * n, &lwork, &info, 1, 1);
    free(copy);
    if (info != 0) return CIM_FAIL(CIM_ERROR_INTERNAL, "dsyev failed (info %d)", info);
    return CIM_OK;
}

/* ---- reference ------------------------------------------------------------------------ */

cim_status cim_reference_cholesky_logdet_f64(int n, const double *a, double *l_out,
                                             double *out_logdet) {
    if (n < 1 || !a || !out_logdet)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "n=%d or a NULL pointer", n);
    double *l = l_out ? l_out : malloc(sizeof(double) * n * n);
    if (!l) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for a %d x %d factor", n, n);
    memset(l, 0, sizeof(double) * n * n);
    cim_status status = CIM_OK;
    double logdet = 0.0;
    /* L_ij = (A_ij - sum_{p<j} L_ip L_jp) / L_jj, L_ii = sqrt(A_ii - sum_{p<i} L_ip^2) */
    for (int i = 0; i < n && status == CIM_OK; i++) {
        for (int j = 0; j <= i; j++) {
            double sum = a[(long)i * n + j];
            for (int p = 0; p < j; p++) sum -= l[(long)i * n + p] * l[(long)j * n + p];
            if (i == j) {
                if (!(sum > 0.0)) {
                    status = CIM_FAIL(CIM_ERROR_NOT_POSITIVE_DEFINITE,
                                      "pivot %d is %g, not positive", i, sum);
                    break;
                }
                l[(long)i * n + i] = sqrt(sum);
                logdet += log(sum);   /* log L_ii^2 */
            } else {
                l[(long)i * n + j] = sum / l[(long)j * n + j];
            }
        }
    }
    if (status == CIM_OK) *out_logdet = logdet;
    if (!l_out) free(l);
    return status;
}
