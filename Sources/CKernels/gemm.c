/*
 * gemm.c: general matrix multiply on the CPU through OpenBLAS, and its plain reference.
 *
 *   C = alpha * op(A) * op(B) + beta * C,   op(X) = X or X^T
 *
 * Shapes: op(A) is m x k, op(B) is k x n, C is m x n. Storage is row-major; lda, ldb and ldc
 * are the row strides of A, B and C as they are stored (so A is k x m with lda >= m when it
 * is transposed). FLOPs: 2 m n k.
 *
 * The fast path is cblas_{s,d}gemm in row-major order. The reference computes one element
 * at a time in double; it exists to check the fast path and is never used to train.
 */
#include <math.h>

#include "internal.h"

cim_status cim_gemm_check(cim_transpose trans_a, cim_transpose trans_b, int m, int n, int k,
                          int lda, int ldb, int ldc) {
    if ((trans_a != CIM_NO_TRANSPOSE && trans_a != CIM_TRANSPOSE) ||
        (trans_b != CIM_NO_TRANSPOSE && trans_b != CIM_TRANSPOSE))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "transpose flags must be 0 or 1");
    if (m < 0 || n < 0 || k < 0)
        return CIM_FAIL(CIM_ERROR_SHAPE, "negative size m=%d n=%d k=%d", m, n, k);
    int a_columns = trans_a == CIM_TRANSPOSE ? m : k;
    int b_columns = trans_b == CIM_TRANSPOSE ? k : n;
    if (lda < (a_columns > 1 ? a_columns : 1))
        return CIM_FAIL(CIM_ERROR_SHAPE, "lda=%d is below max(1, %d), the columns of A", lda,
                        a_columns);
    if (ldb < (b_columns > 1 ? b_columns : 1))
        return CIM_FAIL(CIM_ERROR_SHAPE, "ldb=%d is below max(1, %d), the columns of B", ldb,
                        b_columns);
    if (ldc < (n > 1 ? n : 1))
        return CIM_FAIL(CIM_ERROR_SHAPE, "ldc=%d is below max(1, %d), the columns of C", ldc, n);
    return CIM_OK;
}

static int cblas_transpose_(cim_transpose t) {
    return t == CIM_TRANSPOSE ? CIM_CBLAS_TRANS : CIM_CBLAS_NO_TRANS;
}

cim_status cim_cpu_gemm_f32(cim_cpu_context *context, cim_transpose trans_a,
                            cim_transpose trans_b, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta,
                            float *c, int ldc) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    CIM_TRY(cim_gemm_check(trans_a, trans_b, m, n, k, lda, ldb, ldc));
    if (m == 0 || n == 0) return CIM_OK;
    if ((k > 0 && (!a || !b)) || !c)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL matrix pointer");
    cim_cpu_context_apply_threads_(context);
    cblas_sgemm(CIM_CBLAS_ROW_MAJOR, cblas_transpose_(trans_a), cblas_transpose_(trans_b), m, n,
                k, alpha, a, lda, b, ldb, beta, c, ldc);
    return CIM_OK;
}

cim_status cim_cpu_gemm_f64(cim_cpu_context *context, cim_transpose trans_a,
                            cim_transpose trans_b, int m, int n, int k, double alpha,
                            const double *a, int lda, const double *b, int ldb, double beta,
                            double *c, int ldc) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    CIM_TRY(cim_gemm_check(trans_a, trans_b, m, n, k, lda, ldb, ldc));
    if (m == 0 || n == 0) return CIM_OK;
    if ((k > 0 && (!a || !b)) || !c)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL matrix pointer");
    cim_cpu_context_apply_threads_(context);
    cblas_dgemm(CIM_CBLAS_ROW_MAJOR, cblas_transpose_(trans_a), cblas_transpose_(trans_b), m, n,
                k, alpha, a, lda, b, ldb, beta, c, ldc);
    return CIM_OK;
}

/* ---- reference ------------------------------------------------------------------------ */

/* op(A)[i][p] and op(B)[p][j] read through the transposes; beta == 0 ignores C as BLAS
 * does (so an uninitialised C with NaN in it is fine). */
#define REFERENCE_GEMM_ELEMENT_BODY                                                         \
    double sum = 0.0, magnitude = 0.0;                                                      \
    for (int p = 0; p < k; p++) {                                                           \
        double a_ip = trans_a == CIM_TRANSPOSE ? a[(long)p * lda + i] : a[(long)i * lda + p]; \
        double b_pj = trans_b == CIM_TRANSPOSE ? b[(long)j * ldb + p] : b[(long)p * ldb + j]; \
        sum += a_ip * b_pj;                                                                 \
        magnitude += fabs(a_ip * b_pj);                                                     \
    }                                                                                       \
    double result = (double)alpha * sum;                                                    \
    magnitude *= fabs((double)alpha);                                                       \
    if (beta != 0) {                                                                        \
        double c_ij = (double)beta * c_in[(long)i * ldc + j];                               \
        result += c_ij;                                                                     \
        magnitude += fabs(c_ij);                                                            \
    }                                                                                       \
    if (out_magnitude) *out_magnitude = magnitude;                                          \
    return result;

double cim_reference_gemm_f32_element(cim_transpose trans_a, cim_transpose trans_b, int k,
                                      float alpha, const float *a, int lda, const float *b,
                                      int ldb, float beta, const float *c_in, int ldc, int i,
                                      int j, double *out_magnitude) {
    REFERENCE_GEMM_ELEMENT_BODY
}

double cim_reference_gemm_f64_element(cim_transpose trans_a, cim_transpose trans_b, int k,
                                      double alpha, const double *a, int lda, const double *b,
                                      int ldb, double beta, const double *c_in, int ldc, int i,
                                      int j, double *out_magnitude) {
    REFERENCE_GEMM_ELEMENT_BODY
}
