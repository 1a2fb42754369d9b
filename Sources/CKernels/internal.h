/*
 * internal.h: helpers shared by the C files of CKernels and not part of the API.
 *
 * CIM_FAIL records a message for cim_last_error() and evaluates to the status, so a check
 * reads `if (n < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "n = %d is negative", n);`. The name of
 * the enclosing function, the file and the line go into the message.
 *
 * The BLAS and LAPACK prototypes are declared here rather than taken from cblas.h, whose
 * location differs between distributions and OpenBLAS builds; the symbols themselves are
 * the standard ones and are resolved against libopenblas at link time.
 */
#ifndef CKERNELS_INTERNAL_H
#define CKERNELS_INTERNAL_H

#include "ckernels.h"

cim_status cim_set_error_(cim_status status, const char *function, const char *file, int line,
                          const char *format, ...) __attribute__((format(printf, 5, 6)));

#define CIM_FAIL(status, ...) cim_set_error_((status), __func__, __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failing status unchanged (its message is already set). */
#define CIM_TRY(expression)                                                                 \
    do {                                                                                    \
        cim_status cim_try_status_ = (expression);                                          \
        if (cim_try_status_ != CIM_OK) return cim_try_status_;                              \
    } while (0)

/* ---- parallel loops ------------------------------------------------------------------- */

/* fn(arg, begin, end) runs over disjoint ranges covering [0, count), on up to `threads`
 * threads (the caller's thread included). It returns when every range is done. */
typedef void (*cim_range_fn_)(void *arg, int begin, int end);
void cim_parallel_for_(int threads, int count, cim_range_fn_ fn, void *arg);

/* ---- context internals ---------------------------------------------------------------- */

struct cim_cpu_context {
    int threads;
    cim_conv_algorithm conv_algorithm;
    float *workspace;          /* 64-byte aligned scratch, grown on demand, never shrunk */
    size_t workspace_floats;
};

/* Returns scratch of at least `floats` floats (contents undefined). */
cim_status cim_cpu_context_workspace_(cim_cpu_context *context, size_t floats, float **out);

/* 3x3 stride-1 convolution by Winograd F(2x2, 3x3) (winograd.c); flip reads w as
 * [C][K][3][3] rotated by 180 degrees, which turns it into backward data. */
cim_status cim_winograd_f23_(cim_cpu_context *context, int N, int C, int H, int W, int K,
                             int pad_h, int pad_w, const float *x, const float *w, int flip,
                             float *y);

/* Its backward filter: dw (K x C x 3 x 3) written, or added to when accumulate != 0. */
cim_status cim_winograd_f23_filter_(cim_cpu_context *context, int N, int C, int H, int W,
                                    int K, int pad_h, int pad_w, const float *x,
                                    const float *dy, float *dw, int accumulate);

/* Applies the context's thread count to OpenBLAS (a process-wide setting). */
void cim_cpu_context_apply_threads_(const cim_cpu_context *context);

/* ---- OpenBLAS / LAPACK ---------------------------------------------------------------- */

enum { CIM_CBLAS_ROW_MAJOR = 101, CIM_CBLAS_NO_TRANS = 111, CIM_CBLAS_TRANS = 112 };

void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);
void cblas_dgemm(int order, int trans_a, int trans_b, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc);
void openblas_set_num_threads(int threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);

/* Fortran LAPACK; the trailing size_t is the hidden length of the character argument. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
            double *w, double *work, const int *lwork, int *info, size_t, size_t);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);

#endif /* CKERNELS_INTERNAL_H */
