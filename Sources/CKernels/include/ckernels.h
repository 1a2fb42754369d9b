/*
 * ckernels.h: the C API under cim-train.
 *
 * Everything that touches a foreign library (OpenBLAS, LAPACK and OpenCL today; the CUDA
 * driver, NVRTC and cuBLAS as that backend lands) sits behind this header. The conventions
 * set here hold for every function that follows:
 *
 *   - Names are cim_<object>_<verb>, or cim_<device>_<op> for compute entry points.
 *   - Every function that can fail returns a cim_status. CIM_OK is 0. On failure a
 *     thread-local message names the failing call, the file and the line; read it with
 *     cim_last_error(). Nothing here prints and nothing calls exit().
 *   - Outputs come through pointer arguments. Handles are opaque structs created by a
 *     cim_<object>_create and released by the matching cim_<object>_destroy.
 *   - Matrices are row-major and tensors are contiguous NCHW, as in PyTorch.
 *   - Every fast path has a plain reference beside it (cim_reference_*), written for
 *     clarity and accumulated in double. Tests and `cim-train bench` use the references
 *     as the oracle; they are never used for training.
 */
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Status and errors                                                                        */

typedef enum cim_status {
    CIM_OK = 0,
    CIM_ERROR_INVALID_ARGUMENT = 1,   /* a null pointer, a negative size, a bad enum value */
    CIM_ERROR_SHAPE = 2,              /* sizes that do not fit together */
    CIM_ERROR_NOT_POSITIVE_DEFINITE = 3,
    CIM_ERROR_OUT_OF_MEMORY = 4,
    CIM_ERROR_UNAVAILABLE = 5,        /* a library or device that cannot be used here */
    CIM_ERROR_INTERNAL = 6,           /* a foreign library reported a failure */
} cim_status;

/* The message of the last failing call on this thread ("" when none failed yet). */
const char *cim_last_error(void);

/* Forget the last error of this thread. */
void cim_clear_error(void);

/* A short fixed name for a status, such as "CIM_ERROR_SHAPE". */
const char *cim_status_name(cim_status status);

/* ---------------------------------------------------------------------------------------- */
/* CPU context                                                                              */

/*
 * A CPU context owns the thread count and the scratch memory that convolution reuses
 * between calls (the im2col buffer), so a training step allocates nothing once warm.
 * A context may be used by one thread at a time.
 */
typedef struct cim_cpu_context cim_cpu_context;

cim_status cim_cpu_context_create(int num_threads, cim_cpu_context **out_context);
void cim_cpu_context_destroy(cim_cpu_context *context);

/* Threads used by OpenBLAS and by our own loops. n <= 0 means every online core. */
cim_status cim_cpu_context_set_threads(cim_cpu_context *context, int num_threads);
int cim_cpu_context_threads(const cim_cpu_context *context);

/*
 * Convolution algorithm. AUTO takes Winograd F(2x2, 3x3) for the forward and backward-data
 * passes of 3x3 stride-1 convolutions with enough channels, and im2col + GEMM otherwise.
 * The others force one where it applies (WINOGRAD falls back to im2col where it does not);
 * tests use them to check both paths.
 */
typedef enum cim_conv_algorithm {
    CIM_CONV_AUTO = 0,
    CIM_CONV_IM2COL = 1,
    CIM_CONV_WINOGRAD = 2,
} cim_conv_algorithm;

cim_status cim_cpu_context_set_conv_algorithm(cim_cpu_context *context,
                                              cim_conv_algorithm algorithm);

/* Bytes of scratch memory the context holds now. */
size_t cim_cpu_context_workspace_bytes(const cim_cpu_context *context);

/* The OpenBLAS build in use (its configuration string and the kernel it selected). */
const char *cim_cpu_blas_info(void);

/* ---------------------------------------------------------------------------------------- */
/* GEMM:  C = alpha * op(A) * op(B) + beta * C                                              */
/*                                                                                          */
/* op(A) is m x k, op(B) is k x n, C is m x n, all row-major with leading dimensions lda,    */
/* ldb, ldc (the row strides of A, B and C as stored).                                      */

typedef enum cim_transpose {
    CIM_NO_TRANSPOSE = 0,
    CIM_TRANSPOSE = 1,
} cim_transpose;

cim_status cim_cpu_gemm_f32(cim_cpu_context *context, cim_transpose trans_a,
                            cim_transpose trans_b, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta,
                            float *c, int ldc);

cim_status cim_cpu_gemm_f64(cim_cpu_context *context, cim_transpose trans_a,
                            cim_transpose trans_b, int m, int n, int k, double alpha,
                            const double *a, int lda, const double *b, int ldb, double beta,
                            double *c, int ldc);

/* Checks the arguments of a GEMM call (shared by every backend). */
cim_status cim_gemm_check(cim_transpose trans_a, cim_transpose trans_b, int m, int n, int k,
                          int lda, int ldb, int ldc);

/*
 * Reference: one element C[i][j] of the GEMM above, summed in double. The magnitude
 * |alpha| * sum |op(A)[i][p] op(B)[p][j]| + |beta C[i][j]| is returned through out_magnitude
 * (may be NULL): it is the scale that rounding errors grow with, and the tests divide by it.
 */
double cim_reference_gemm_f32_element(cim_transpose trans_a, cim_transpose trans_b, int k,
                                      float alpha, const float *a, int lda, const float *b,
                                      int ldb, float beta, const float *c_in, int ldc, int i,
                                      int j, double *out_magnitude);

double cim_reference_gemm_f64_element(cim_transpose trans_a, cim_transpose trans_b, int k,
                                      double alpha, const double *a, int lda, const double *b,
                                      int ldb, double beta, const double *c_in, int ldc, int i,
                                      int j, double *out_magnitude);

/* ---------------------------------------------------------------------------------------- */
/* 2-D convolution, NCHW, no bias, cross-correlation as in PyTorch                         */
/*                                                                                          */
/*   y[n,k,p,q] = sum_{c,r,s} x[n, c, p*stride_h - pad_h + r, q*stride_w - pad_w + s]       */
/*                            * w[k, c, r, s]                                               */
/*                                                                                          */
/* x is N x C x H x W, w is K x C x R x S, y is N x K x P x Q with                          */
/* P = (H + 2 pad_h - R) / stride_h + 1 and Q = (W + 2 pad_w - S) / stride_w + 1.           */

typedef struct cim_conv2d_shape {
    int batch;            /* N */
    int in_channels;      /* C */
    int in_height;        /* H */
    int in_width;         /* W */
    int out_channels;     /* K */
    int kernel_height;    /* R */
    int kernel_width;     /* S */
    int stride_height;
    int stride_width;
    int pad_height;
    int pad_width;
} cim_conv2d_shape;

/* Validates a shape and returns the output height and width. */
cim_status cim_conv2d_output_size(const cim_conv2d_shape *shape, int *out_height,
                                  int *out_width);

/* y = conv(x, w); y is overwritten. */
cim_status cim_cpu_conv2d_forward(cim_cpu_context *context, const cim_conv2d_shape *shape,
                                  const float *x, const float *w, float *y);

/* dx = dL/dx given dy = dL/dy; dx is overwritten. */
cim_status cim_cpu_conv2d_backward_data(cim_cpu_context *context,
                                        const cim_conv2d_shape *shape, const float *dy,
                                        const float *w, float *dx);

/* dw = dL/dw given dy; dw is overwritten, or added to when accumulate is non-zero. */
cim_status cim_cpu_conv2d_backward_filter(cim_cpu_context *context,
                                          const cim_conv2d_shape *shape, const float *x,
                                          const float *dy, float *dw, int accumulate);

/*
 * References: one element of y, dx or dw, summed in double, with the magnitude (the sum of
 * the absolute values of the products) through out_magnitude (may be NULL). Indices are
 * (n, k, p, q) for y, (n, c, h, w) for dx and (k, c, r, s) for dw.
 */
double cim_reference_conv2d_forward_element(const cim_conv2d_shape *shape, const float *x,
                                            const float *w, int n, int k, int p, int q,
                                            double *out_magnitude);

double cim_reference_conv2d_backward_data_element(const cim_conv2d_shape *shape,
                                                  const float *dy, const float *w, int n,
                                                  int c, int h, int x_col,
                                                  double *out_magnitude);

double cim_reference_conv2d_backward_filter_element(const cim_conv2d_shape *shape,
                                                    const float *x, const float *dy, int k,
                                                    int c, int r, int s,
                                                    double *out_magnitude);

/* ---------------------------------------------------------------------------------------- */
/* Batched log-determinant of symmetric positive-definite matrices (fp64)                  */
/*                                                                                          */
/*   A_b = L_b L_b^T (Cholesky),  logdet A_b = 2 sum_i log L_b[i][i],                       */
/*   A_b^-1 = L_b^-T L_b^-1                                                                 */
/*                                                                                          */
/* a holds batch matrices of n x n, contiguous. Only the lower triangle of each is read.    */
/* inverse (may be NULL) receives the full symmetric inverses. A matrix that is not         */
/* positive definite stops the call with CIM_ERROR_NOT_POSITIVE_DEFINITE, its batch index   */
/* in *failed_index (may be NULL; -1 on success) and no NaN written anywhere.               */

cim_status cim_cpu_logdet_spd_f64(cim_cpu_context *context, int batch, int n, const double *a,
                                  double *logdet, double *inverse, int *failed_index);

/* Eigenvalues (ascending) of one symmetric n x n fp64 matrix; only the lower triangle is
 * read. For monitoring (the spectrum of the loss's covariance state). */
cim_status cim_cpu_symmetric_eigenvalues_f64(cim_cpu_context *context, int n, const double *a,
                                             double *eigenvalues);

/*
 * Reference: textbook Cholesky (Cholesky-Banachiewicz, row by row) of one n x n matrix in
 * double, the log-determinant through *out_logdet. Returns CIM_ERROR_NOT_POSITIVE_DEFINITE
 * when a pivot is not positive. The factor goes to l_out (n x n, may be NULL).
 */
cim_status cim_reference_cholesky_logdet_f64(int n, const double *a, double *l_out,
                                             double *out_logdet);

/* ---------------------------------------------------------------------------------------- */
/* Batch normalisation over [N, C, L] (L = H W; 1 for BatchNorm1d), batchnorm.c            */

/* Training mode (training != 0) normalises with this batch's statistics, updates the running
 * statistics with `momentum` (PyTorch's convention: new = (1 - m) old + m batch, unbiased
 * variance) and saves the batch mean and 1/sqrt(var + eps) for the backward pass.
 * Evaluation mode normalises with the running statistics and writes nothing else. */
cim_status cim_cpu_batchnorm_forward(cim_cpu_context *context, int N, int C, int L,
                                     const float *x, const float *gamma, const float *beta,
                                     float *running_mean, float *running_var, float *y,
                                     float *saved_mean, float *saved_inv_std, int training,
                                     float momentum, float eps);

/* Backward of training mode: dx is written; dgamma and dbeta written or, with accumulate,
 * added to. */
cim_status cim_cpu_batchnorm_backward(cim_cpu_context *context, int N, int C, int L,
                                      const float *dy, const float *x, const float *gamma,
                                      const float *saved_mean, const float *saved_inv_std,
                                      float *dx, float *dgamma, float *dbeta, int accumulate);

/* Synchronised batch norm in pieces (a reduction across replicas goes between them):
 * sums[c] = sum x (center NULL) or sum (x - center[c])^2; y = scale[c] x + shift[c];
 * sum_dy[c] = sum dy, sum_dy_xc[c] = sum dy (x - mean[c]); dx = a dy + b (x - mean) + d. */
cim_status cim_cpu_channel_sums(cim_cpu_context *context, int N, int C, int L, const float *x,
                                const float *center, double *sums);
cim_status cim_cpu_channel_affine(cim_cpu_context *context, int N, int C, int L,
                                  const float *x, const float *scale, const float *shift,
                                  float *y);
cim_status cim_cpu_batchnorm_backward_sums(cim_cpu_context *context, int N, int C, int L,
                                           const float *dy, const float *x, const float *mean,
                                           double *sum_dy, double *sum_dy_xc);
cim_status cim_cpu_batchnorm_backward_apply(cim_cpu_context *context, int N, int C, int L,
                                            const float *dy, const float *x, const float *mean,
                                            const float *a, const float *b, const float *d,
                                            float *dx);

/* ---------------------------------------------------------------------------------------- */
/* Element-wise, row and column ops (elementwise.c); count is the number of elements        */

cim_status cim_cpu_relu_forward(cim_cpu_context *context, long count, const float *x,
                                float *y);
/* dx = dy where y > 0, else 0 (y is the forward output). dx may alias dy. */
cim_status cim_cpu_relu_backward(cim_cpu_context *context, long count, const float *dy,
                                 const float *y, float *dx);
cim_status cim_cpu_add(cim_cpu_context *context, long count, const float *a, const float *b,
                       float *y);
/* y = alpha x + y */
cim_status cim_cpu_axpy(cim_cpu_context *context, long count, float alpha, const float *x,
                        float *y);
cim_status cim_cpu_scale(cim_cpu_context *context, long count, float alpha, float *y);
cim_status cim_cpu_fill(cim_cpu_context *context, long count, float value, float *y);
/* y[n][j] += bias[j] for a rows x columns y */
cim_status cim_cpu_bias_add(cim_cpu_context *context, int rows, int columns, const float *bias,
                            float *y);
/* sums[j] = (or +=, with accumulate) sum_n y[n][j] */
cim_status cim_cpu_column_sum(cim_cpu_context *context, int rows, int columns, const float *y,
                              float *sums, int accumulate);

/* ---------------------------------------------------------------------------------------- */
/* Pooling (pooling.c)                                                                      */

/* y[n, c] = mean of the L values of plane (n, c), and its backward. */
cim_status cim_cpu_global_avg_pool_forward(cim_cpu_context *context, int N, int C, int L,
                                           const float *x, float *y);
cim_status cim_cpu_global_avg_pool_backward(cim_cpu_context *context, int N, int C, int L,
                                            const float *dy, float *dx);

typedef struct cim_pool2d_shape {
    int batch, channels, in_height, in_width;
    int kernel_height, kernel_width, stride_height, stride_width, pad_height, pad_width;
} cim_pool2d_shape;

cim_status cim_pool2d_output_size(const cim_pool2d_shape *shape, int *out_height,
                                  int *out_width);

/* Max pooling with -infinity padding; argmax receives the winner's flat index in its plane. */
cim_status cim_cpu_max_pool2d_forward(cim_cpu_context *context, const cim_pool2d_shape *shape,
                                      const float *x, float *y, int32_t *argmax);
/* dx = 0, then dx[argmax] += dy. */
cim_status cim_cpu_max_pool2d_backward(cim_cpu_context *context, const cim_pool2d_shape *shape,
                                       const float *dy, const int32_t *argmax, float *dx);

/* ---------------------------------------------------------------------------------------- */
/* L2 row normalisation z = u / max(||u||, eps) (normalize.c)                               */

cim_status cim_cpu_l2_normalize_forward(cim_cpu_context *context, int rows, int columns,
                                        float eps, const float *u, float *z, float *norms);
cim_status cim_cpu_l2_normalize_backward(cim_cpu_context *context, int rows, int columns,
                                         float eps, const float *dz, const float *z,
                                         const float *norms, float *du);

/* ---------------------------------------------------------------------------------------- */
/* SGD with momentum and weight decay (sgd.c)                                               */

/* d = g + wd theta; buf = momentum buf + d; theta -= lr buf */
cim_status cim_cpu_sgd_update(cim_cpu_context *context, long count, float lr, float momentum,
                              float weight_decay, float *theta, const float *g, float *buf);

/* ---------------------------------------------------------------------------------------- */
/* Embedded kernel sources (kernel_sources.c)                                               */

/* The files of kernels/ compiled into the library with C23 #embed: `count` entries. */
typedef struct cim_kernel_source {
    const char *name;      /* file name in kernels/, such as "gemm.cl" */
    const char *text;      /* its bytes, NUL-terminated */
    size_t size;           /* bytes, without the NUL */
} cim_kernel_source;

const cim_kernel_source *cim_kernel_sources(int *count);

/* The embedded file `name`, or NULL. */
const cim_kernel_source *cim_kernel_source_named(const char *name);

/* ---------------------------------------------------------------------------------------- */
/* GPU devices: memory and ops, the same for OpenCL and CUDA (gpu_ops.c)                     */
/*                                                                                          */
/* A cim_gpu is the device-independent side of an OpenCL or a CUDA context (see their      */
/* sections below for opening one). It may be used by one thread at a time. Ops are queued */
/* on the device's one in-order queue (stream) and return at once; cim_gpu_finish waits,    */
/* and reads wait for what precedes them. The op entry points take the same sizes and flags */
/* as the cim_cpu_* ones above, with buffers in place of pointers.                          */

typedef struct cim_gpu cim_gpu;

/* The device's name, and whether it runs the float64 ops. */
const char *cim_gpu_device_name(const cim_gpu *gpu);
int cim_gpu_has_fp64(const cim_gpu *gpu);

/* Which of gemm.cl's kernels run where no vendor GEMM does (cim_opencl_context_set_gemm). */
typedef enum cim_gpu_gemm_kernels {
    CIM_GPU_GEMM_TILED = 1,
    CIM_GPU_GEMM_CPU = 2,
} cim_gpu_gemm_kernels;

/* Bytes of scratch memory a convolution pass may use for its patch matrices (default
 * 128 MiB); smaller limits take fewer images per pass. Tests set it low to make several
 * passes. At least one image is taken per pass, whatever the limit. */
cim_status cim_gpu_set_conv_scratch_limit(cim_gpu *gpu, size_t bytes);

/* Bytes of scratch device memory the context holds now. */
size_t cim_gpu_workspace_bytes(const cim_gpu *gpu);

/* Device memory; a buffer must be destroyed before its context. */
typedef struct cim_gpu_buffer cim_gpu_buffer;

cim_status cim_gpu_buffer_create(cim_gpu *gpu, size_t bytes, cim_gpu_buffer **out_buffer);
void cim_gpu_buffer_destroy(cim_gpu *gpu, cim_gpu_buffer *buffer);
/* Blocking copies between host and device; offsets are 0, sizes in bytes. */
cim_status cim_gpu_write(cim_gpu *gpu, cim_gpu_buffer *buffer, const void *source,
                         size_t bytes);
cim_status cim_gpu_read(cim_gpu *gpu, cim_gpu_buffer *buffer, void *destination,
                        size_t bytes);
cim_status cim_gpu_copy(cim_gpu *gpu, cim_gpu_buffer *source, cim_gpu_buffer *destination,
                        size_t bytes);
/* The first `bytes` of buffer set to repetitions of a 1, 2, 4 or 8-byte pattern. */
cim_status cim_gpu_fill(cim_gpu *gpu, cim_gpu_buffer *buffer, const void *pattern,
                        size_t pattern_bytes, size_t bytes);
cim_status cim_gpu_finish(cim_gpu *gpu);

typedef cim_gpu_buffer cim_gpubuf;   /* shorthand for the op signatures below */

cim_status cim_gpu_gemm_f32(cim_gpu *gpu, cim_transpose trans_a, cim_transpose trans_b, int m,
                            int n, int k, float alpha, cim_gpubuf *a, int lda, cim_gpubuf *b,
                            int ldb, float beta, cim_gpubuf *c, int ldc);
/* CIM_ERROR_UNAVAILABLE on a device without fp64, as every fp64 op. */
cim_status cim_gpu_gemm_f64(cim_gpu *gpu, cim_transpose trans_a, cim_transpose trans_b, int m,
                            int n, int k, double alpha, cim_gpubuf *a, int lda, cim_gpubuf *b,
                            int ldb, double beta, cim_gpubuf *c, int ldc);

cim_status cim_gpu_conv2d_forward(cim_gpu *gpu, const cim_conv2d_shape *shape, cim_gpubuf *x,
                                  cim_gpubuf *w, cim_gpubuf *y);
cim_status cim_gpu_conv2d_backward_data(cim_gpu *gpu, const cim_conv2d_shape *shape, cim_gpubuf *dy,
                                        cim_gpubuf *w, cim_gpubuf *dx);
cim_status cim_gpu_conv2d_backward_filter(cim_gpu *gpu, const cim_conv2d_shape *shape,
                                          cim_gpubuf *x, cim_gpubuf *dy, cim_gpubuf *dw,
                                          int accumulate);

/* Waits for the factorisation (to report a failing matrix before anything is written). */
cim_status cim_gpu_logdet_spd_f64(cim_gpu *gpu, int batch, int n, cim_gpubuf *a, cim_gpubuf *logdet,
                                  cim_gpubuf *inverse, int *failed_index);

cim_status cim_gpu_batchnorm_forward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                     cim_gpubuf *gamma, cim_gpubuf *beta, cim_gpubuf *running_mean,
                                     cim_gpubuf *running_var, cim_gpubuf *y, cim_gpubuf *saved_mean,
                                     cim_gpubuf *saved_inv_std, int training, float momentum,
                                     float eps);
cim_status cim_gpu_batchnorm_backward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                      cim_gpubuf *x, cim_gpubuf *gamma, cim_gpubuf *saved_mean,
                                      cim_gpubuf *saved_inv_std, cim_gpubuf *dx, cim_gpubuf *dgamma,
                                      cim_gpubuf *dbeta, int accumulate);
/* Synchronised batch norm pieces; sums are float64 (fp64 devices only), coefficients
 * [3, C] float32 (a, b, d). */
cim_status cim_gpu_channel_sums(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                cim_gpubuf *center, cim_gpubuf *sums);
cim_status cim_gpu_channel_affine(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                  cim_gpubuf *scale, cim_gpubuf *shift, cim_gpubuf *y);
cim_status cim_gpu_batchnorm_backward_sums(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                           cim_gpubuf *x, cim_gpubuf *mean, cim_gpubuf *sums);
cim_status cim_gpu_batchnorm_backward_apply(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                            cim_gpubuf *x, cim_gpubuf *mean,
                                            cim_gpubuf *coefficients, cim_gpubuf *dx);

cim_status cim_gpu_relu_forward(cim_gpu *gpu, long count, cim_gpubuf *x, cim_gpubuf *y);
cim_status cim_gpu_relu_backward(cim_gpu *gpu, long count, cim_gpubuf *dy, cim_gpubuf *y,
                                 cim_gpubuf *dx);
cim_status cim_gpu_add(cim_gpu *gpu, long count, cim_gpubuf *a, cim_gpubuf *b, cim_gpubuf *y);
cim_status cim_gpu_axpy(cim_gpu *gpu, long count, float alpha, cim_gpubuf *x, cim_gpubuf *y);
cim_status cim_gpu_scale(cim_gpu *gpu, long count, float alpha, cim_gpubuf *y);
cim_status cim_gpu_bias_add(cim_gpu *gpu, int rows, int columns, cim_gpubuf *bias, cim_gpubuf *y);
cim_status cim_gpu_column_sum(cim_gpu *gpu, int rows, int columns, cim_gpubuf *y, cim_gpubuf *sums,
                              int accumulate);

cim_status cim_gpu_global_avg_pool_forward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                           cim_gpubuf *y);
cim_status cim_gpu_global_avg_pool_backward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                            cim_gpubuf *dx);
cim_status cim_gpu_max_pool2d_forward(cim_gpu *gpu, const cim_pool2d_shape *shape, cim_gpubuf *x,
                                      cim_gpubuf *y, cim_gpubuf *argmax);
cim_status cim_gpu_max_pool2d_backward(cim_gpu *gpu, const cim_pool2d_shape *shape, cim_gpubuf *dy,
                                       cim_gpubuf *argmax, cim_gpubuf *dx);

cim_status cim_gpu_l2_normalize_forward(cim_gpu *gpu, int rows, int columns, float eps,
                                        cim_gpubuf *u, cim_gpubuf *z, cim_gpubuf *norms);
cim_status cim_gpu_l2_normalize_backward(cim_gpu *gpu, int rows, int columns, float eps,
                                         cim_gpubuf *dz, cim_gpubuf *z, cim_gpubuf *norms,
                                         cim_gpubuf *du);

cim_status cim_gpu_sgd_update(cim_gpu *gpu, long count, float lr, float momentum,
                              float weight_decay, cim_gpubuf *theta, cim_gpubuf *g,
                              cim_gpubuf *buf);

/* ---------------------------------------------------------------------------------------- */
/* OpenCL (opencl_loader.c, opencl_context.c; the ops are the cim_gpu_* ones above)        */
/*                                                                                          */
/* libOpenCL.so.1 is opened at run time; nothing here needs OpenCL at build time. Devices    */
/* are numbered across platforms, platform-major: that index is the N of --device opencl:N. */
/* A context owns one device's queue, its built programs (cached on disk) and the scratch   */
/* memory convolution and log-det reuse; it may be used by one thread at a time.           */

/* Opens the first loadable library of a NULL-terminated list and resolves the entry
 * points. Done once per process: later calls report the library already open. */
cim_status cim_opencl_load(const char *const *names, const char **out_loaded);

typedef struct cim_opencl_device_info {
    int index;                         /* N of opencl:N */
    int platform_index;
    int is_gpu, is_cpu;
    int has_fp64;                      /* cl_khr_fp64 or a double-precision config */
    int compute_units;
    size_t max_work_group_size;
    uint64_t global_memory_bytes, max_allocation_bytes, local_memory_bytes;
    char platform_name[128], platform_version[128];
    char name[256], vendor[128], driver_version[128], version[128];
} cim_opencl_device_info;

/* Devices of every platform, in the opencl:N order (needs cim_opencl_load first). A machine
 * with the loader but no platform has 0 devices. */
cim_status cim_opencl_device_count(int *out_count);
cim_status cim_opencl_device_info_get(int index, cim_opencl_device_info *out_info);

typedef struct cim_opencl_context cim_opencl_context;

/* Flags of cim_opencl_context_create. */
enum {
    /* Treat the device as one without fp64 (no fp64 program): tests of that path. */
    CIM_OPENCL_IGNORE_FP64 = 1,
};

/* Opens device `index` and builds its programs. cache_dir: where built programs are kept
 * (NULL: $XDG_CACHE_HOME/cim-train/opencl, else ~/.cache/cim-train/opencl; "": no cache). */
cim_status cim_opencl_context_create(int index, const char *cache_dir, int flags,
                                     cim_opencl_context **out_context);
/* Destroys the context and every buffer still allocated from it. */
void cim_opencl_context_destroy(cim_opencl_context *context);
/* The device-independent side of the context, for memory and the cim_gpu_* ops. */
cim_gpu *cim_opencl_context_gpu(cim_opencl_context *context);
const cim_opencl_device_info *cim_opencl_context_device(const cim_opencl_context *context);

/* What the program cache did while this context was created. */
typedef struct cim_program_cache_stats {
    int loaded;            /* programs taken from the cache */
    int built;             /* programs compiled from source */
    int corrupt;           /* cache entries that were unreadable or rejected and rebuilt */
    int saved;             /* entries written */
    char directory[1024];  /* "" when caching is off */
} cim_program_cache_stats;

void cim_opencl_context_cache_stats(const cim_opencl_context *context,
                                    cim_program_cache_stats *out_stats);

/* Which GEMM kernels run (convolution and log-det use them too). TILED is the portable
 * kernel shared with CUDA (work-groups of 16 x 16, shared-memory tiles: the GPU kernel);
 * CPU is the OpenCL fast path for CPU devices (vector types, one block per work-item).
 * AUTO takes CPU on a CPU device and TILED elsewhere; tests force each in turn. */
typedef enum cim_opencl_gemm {
    CIM_OPENCL_GEMM_AUTO = 0,
    CIM_OPENCL_GEMM_TILED = 1,
    CIM_OPENCL_GEMM_CPU = 2,
} cim_opencl_gemm;

cim_status cim_opencl_context_set_gemm(cim_opencl_context *context, cim_opencl_gemm gemm);

/* Compiles `source` after the OpenCL prelude and common.cl with the float32 program's
 * options and `options` (may be NULL), and discards it:
 * for tests of the error path. A compile error's message carries the driver's build log. */
cim_status cim_opencl_build_check(cim_opencl_context *context, const char *name,
                                  const char *source, const char *options);

/* ---------------------------------------------------------------------------------------- */
/* CUDA (cuda_loader.c, cuda_context.c; the ops are the cim_gpu_* ones above)                */
/*                                                                                          */
/* The driver (libcuda.so.1), NVRTC (libnvrtc.so.12 or .13) and cuBLAS (libcublas.so.12 or  */
/* .13) are opened at run time; nothing here needs CUDA at build time. Devices are numbered */
/* as the driver numbers them (CUDA_VISIBLE_DEVICES applies): the N of --device cuda:N. A   */
/* context owns one device's primary context, a stream, the kernels of kernels/ compiled by */
/* NVRTC for the device's architecture (cached on disk), a cuBLAS handle and the scratch    */
/* memory convolution and log-det reuse; it may be used by one thread at a time.            */

typedef enum cim_cuda_library {
    CIM_CUDA_LIBRARY_DRIVER = 0,
    CIM_CUDA_LIBRARY_NVRTC = 1,
    CIM_CUDA_LIBRARY_CUBLAS = 2,
} cim_cuda_library;

/* Opens the first loadable library of a NULL-terminated list and resolves the entry points
 * cim-train calls. Done once per library and process: later calls report the one open. */
cim_status cim_cuda_load(cim_cuda_library library, const char *const *names,
                         const char **out_loaded);

typedef struct cim_cuda_device_info {
    int index;                        /* N of cuda:N */
    char name[256];
    int major, minor;                 /* compute capability: 9, 0 for sm_90 */
    int multiprocessors;
    size_t memory_bytes;
    int driver_version;               /* 12040 for CUDA 12.4 */
} cim_cuda_device_info;

/* Devices the driver reports (needs the driver loaded; initialises it). A driver without a
 * usable GPU gives 0 devices, not an error. */
cim_status cim_cuda_device_count(int *out_count);
cim_status cim_cuda_device_info_get(int index, cim_cuda_device_info *out_info);

/* NVRTC's version (needs NVRTC loaded). */
cim_status cim_nvrtc_version(int *out_major, int *out_minor);

/* Compiles program `program` (0: float32, 1: float64; gpu_internal.h lists their files) for
 * compute capability `architecture` (80 for sm_80) through the cache in cache_dir (NULL:
 * $XDG_CACHE_HOME/cim-train/cuda, else ~/.cache/cim-train/cuda; "": no cache) and discards
 * the image. Needs NVRTC only, no GPU: CI compiles every kernel this way. *out_from_cache
 * says whether the image came from the cache, *out_bytes its size. A compile error's
 * message carries NVRTC's log. */
cim_status cim_nvrtc_build_program(int program, int architecture, const char *cache_dir,
                                   int *out_from_cache, size_t *out_bytes);

typedef struct cim_cuda_context cim_cuda_context;

/* Flags of cim_cuda_context_create. */
enum {
    /* float32 GEMMs (and so convolutions) in cuBLAS on tensor cores with TF32 inputs: faster
     * on sm_80 and later, about 1e-3 relative error, no longer the CPU's result */
    CIM_CUDA_TF32 = 1,
    /* gemm.cl's tiled kernel in place of cuBLAS, for tests and when cuBLAS is missing */
    CIM_CUDA_NO_CUBLAS = 2,
};

/* Opens device `index`: its primary context, a stream, cuBLAS (unless CIM_CUDA_NO_CUBLAS)
 * and the kernels, compiled by NVRTC or taken from the cache in cache_dir (as for
 * cim_nvrtc_build_program). Needs the driver and NVRTC loaded, and cuBLAS unless
 * CIM_CUDA_NO_CUBLAS. */
cim_status cim_cuda_context_create(int index, const char *cache_dir, int flags,
                                   cim_cuda_context **out_context);
/* Destroys the context; its buffers must be destroyed first. */
void cim_cuda_context_destroy(cim_cuda_context *context);
cim_gpu *cim_cuda_context_gpu(cim_cuda_context *context);
const cim_cuda_device_info *cim_cuda_context_device(const cim_cuda_context *context);
void cim_cuda_context_cache_stats(const cim_cuda_context *context,
                                  cim_program_cache_stats *out_stats);
/* What runs the GEMMs: "cuBLAS 12.4.5 (fp32)", "cuBLAS ... (tf32)" or "gemm.cl". */
const char *cim_cuda_context_gemm_engine(const cim_cuda_context *context);

/* A row-major GEMM as gpu_ops.c asks for one, for each z in [0, batch):
 *   C_z = alpha op(A_z) op(B_z) + beta C_z,  X_z = x + x_offset + z x_stride (elements)
 * out_plane = L > 0 writes C's column j to image j / L of an NCHW tensor (see gemm.cl). */
typedef struct cim_gemm_layout {
    int trans_a, trans_b, m, n, k;
    int64_t a_offset, b_offset, c_offset;
    int lda, ldb, ldc;
    int64_t a_stride, b_stride, c_stride;
    int batch, out_plane;
} cim_gemm_layout;

/* The column-major (strided-batched) cuBLAS call that computes it: cuBLAS's first operand
 * is the request's B, its second the request's A (C^T = op(B)^T op(A)^T); ops are 0 (N)
 * or 1 (T); offsets and strides in elements. */
typedef struct cim_cublas_call {
    int op_first, op_second, m, n, k;
    int64_t first_offset, second_offset, c_offset;
    int ld_first, ld_second, ldc;
    int64_t stride_first, stride_second, stride_c;
    int batch;
} cim_cublas_call;

/* The call the CUDA backend makes for `gemm` (needs no library or GPU: tests run the call
 * on the CPU with cuBLAS's semantics and compare it with the row-major reference). */
cim_status cim_cuda_gemm_plan(const cim_gemm_layout *gemm, cim_cublas_call *out);
/* ---------------------------------------------------------------------------------------- */
/* Run-time library probe                                                                   */

/*
 * Tries to dlopen the first loadable name of a NULL-terminated list. On success the name
 * that loaded goes to out_loaded (may be NULL) and the library is closed again. On failure
 * the last-error message lists every name tried with the loader's reason.
 */
cim_status cim_probe_library(const char *const *names, const char **out_loaded);

#ifdef __cplusplus
}
#endif

#endif /* CKERNELS_H */
