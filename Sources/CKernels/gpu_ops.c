/*
 * opencl_ops.c: the OpenCL backend's ops: argument checks, grid shapes and the sequence of
 * kernels each op queues. The math is in the kernel files of kernels/ (each with its
 * formulas); this file says which kernel runs over which grid.
 *
 *   GEMM          gemm.cl: 64 x 64 tiles in 16 x 16 work-groups, or on CPU devices one
 *                 block per work-item (see cim_opencl_context_set_gemm)
 *   convolution   G images at a time (as many as the context's scratch limit allows):
 *                 forward  im2col, GEMM W col (stored as NCHW);
 *                 data     dy to rows, GEMM W^T rows, col2im;
 *                 filter   im2col, dy to rows, GEMM rows col^T (accumulated over groups).
 *                 1x1 stride-1 unpadded convolutions skip im2col: forward and backward data
 *                 are one GEMM per image, batched in one launch
 *   log-det       blocked Cholesky (logdet.cl), then the log-sum, blocked L^-1, L^-T L^-1
 *   the rest      one launch each
 *
 * Every op checks its sizes like its CPU twin, and element counts against 2^31 (kernels
 * index with int). Scratch memory comes from the context and is reused; the queue is in
 * order, so reusing it between ops and between the groups of one op is safe.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "opencl_internal.h"

/* gemm.cl's tiles, and the work-group of its CPU kernels: blocks of 8 consecutive rows
 * share each chunk of B's panel (see gemm.cl; measured best of 1x8, 2x8, 4x4, 1x16 on PoCL) */
enum { GEMM_TILE = 64, GEMM_THREADS = 16, CPU_GEMM_GROUP_ROWS = 8, CHOLESKY_BLOCK = 64 };

#define BUF(x) ((cl_mem)(x))

static cim_status check_context_(const cim_opencl_context *context) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    return CIM_OK;
}

static cim_status check_count_(long count, const char *what) {
    if (count < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative %s %ld", what, count);
    if (count > INT_MAX)
        return CIM_FAIL(CIM_ERROR_SHAPE, "%s %ld is above 2^31, which the kernels index", what,
                        count);
    return CIM_OK;
}

static cim_status check_ncl_(int N, int C, int L) {
    if (N < 1 || C < 1 || L < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes N=%d C=%d L=%d must be positive", N, C, L);
    return check_count_((long)N * C * L, "element count");
}

/* A 1-D grid of `count` work-items in work-groups of up to 256. */
static cim_status launch_1d_(cim_opencl_context *context, cim_cl_kernel_id_ id, long count,
                             const cim_cl_arg_ *args, int arg_count) {
    const size_t global[3] = {(size_t)count, 1, 1};
    size_t local[3];
    cim_cl_local_shape_(1, global, local);
    return cim_cl_launch_(context, id, 1, global, local, args, arg_count);
}

static cim_status launch_nd_(cim_opencl_context *context, cim_cl_kernel_id_ id,
                             int dimensions, size_t g0, size_t g1, size_t g2,
                             const cim_cl_arg_ *args, int arg_count) {
    const size_t global[3] = {g0, g1, g2};
    size_t local[3];
    cim_cl_local_shape_(dimensions, global, local);
    return cim_cl_launch_(context, id, dimensions, global, local, args, arg_count);
}

/* `groups` work-groups of `size` along dimension 0, `batch` along dimension 1. */
static cim_status launch_groups_(cim_opencl_context *context, cim_cl_kernel_id_ id,
                                 size_t groups, size_t size, size_t batch,
                                 const cim_cl_arg_ *args, int arg_count) {
    const size_t global[3] = {groups * size, batch, 1}, local[3] = {size, 1, 1};
    return cim_cl_launch_(context, id, 2, global, local, args, arg_count);
}

/* ---- GEMM ----------------------------------------------------------------------------- */

typedef struct gemm_call_ {
    int trans_a, trans_b, m, n, k;
    cl_mem a, b, c;
    cl_long a_offset, b_offset, c_offset;            /* elements */
    int lda, ldb, ldc;
    cl_long a_stride, b_stride, c_stride;            /* between the matrices of a batch */
    int batch, out_plane, lower_only;
} gemm_call_;

/* The tiled kernel everywhere, or on CPU devices the CPU kernels (but for TT). */
static cim_status launch_gemm_(cim_opencl_context *context, int f64, const gemm_call_ *g,
                               cim_cl_arg_ alpha, cim_cl_arg_ beta) {
    if (g->m == 0 || g->n == 0 || g->batch == 0) return CIM_OK;
    const size_t m = (size_t)g->m, n = (size_t)g->n, batch = (size_t)g->batch;
    cim_cl_kernel_id_ id;
    size_t global[3], local[3] = {1, 1, 1};
    if (context->gemm == CIM_OPENCL_GEMM_CPU && !(g->trans_a && g->trans_b)) {
        /* one work-item per block: rows x 32 (NN, TN) or 4 x 4 (NT) */
        const size_t rows = g->trans_b ? 4 : f64 ? 4 : 8, columns = g->trans_b ? 4 : 32;
        id = g->trans_b ? (f64 ? CIM_CL_K_GEMM_NT_CPU_F64 : CIM_CL_K_GEMM_NT_CPU_F32)
                        : (f64 ? CIM_CL_K_GEMM_CPU_F64 : CIM_CL_K_GEMM_CPU_F32);
        global[0] = (n + columns - 1) / columns;
        global[1] = (m + rows - 1) / rows;
        local[1] = CPU_GEMM_GROUP_ROWS;
    } else {
        /* 16 x 16 work-items per 64 x 64 tile */
        id = f64 ? CIM_CL_K_GEMM_F64 : CIM_CL_K_GEMM_F32;
        global[0] = (n + GEMM_TILE - 1) / GEMM_TILE * GEMM_THREADS;
        global[1] = (m + GEMM_TILE - 1) / GEMM_TILE * GEMM_THREADS;
        local[0] = local[1] = GEMM_THREADS;
    }
    global[2] = batch;
    return cim_cl_launch_(
        context, id, 3, global, local,
        CL_ARGS(CL_ARG(g->trans_a), CL_ARG(g->trans_b), CL_ARG(g->m), CL_ARG(g->n),
                CL_ARG(g->k), alpha, CL_ARG(g->a), CL_ARG(g->a_offset), CL_ARG(g->lda),
                CL_ARG(g->a_stride), CL_ARG(g->b), CL_ARG(g->b_offset), CL_ARG(g->ldb),
                CL_ARG(g->b_stride), beta, CL_ARG(g->c), CL_ARG(g->c_offset), CL_ARG(g->ldc),
                CL_ARG(g->c_stride), CL_ARG(g->out_plane), CL_ARG(g->lower_only)));
}

static cim_status gemm_f32_(cim_opencl_context *context, const gemm_call_ *g, float alpha,
                            float beta) {
    return launch_gemm_(context, 0, g, CL_ARG(alpha), CL_ARG(beta));
}

static cim_status gemm_f64_(cim_opencl_context *context, const gemm_call_ *g, double alpha,
                            double beta) {
    return launch_gemm_(context, 1, g, CL_ARG(alpha), CL_ARG(beta));
}

/* One plain GEMM of the public API, as a gemm_call_ with a batch of 1. */
static gemm_call_ plain_gemm_(cim_transpose trans_a, cim_transpose trans_b, int m, int n, int k,
                              cim_clbuf *a, int lda, cim_clbuf *b, int ldb, cim_clbuf *c,
                              int ldc) {
    gemm_call_ g = {.trans_a = trans_a == CIM_TRANSPOSE, .trans_b = trans_b == CIM_TRANSPOSE,
                    .m = m, .n = n, .k = k, .a = BUF(a), .b = BUF(b), .c = BUF(c),
                    .lda = lda, .ldb = ldb, .ldc = ldc, .batch = 1};
    return g;
}

cim_status cim_opencl_gemm_f32(cim_opencl_context *context, cim_transpose trans_a,
                               cim_transpose trans_b, int m, int n, int k, float alpha,
                               cim_clbuf *a, int lda, cim_clbuf *b, int ldb, float beta,
                               cim_clbuf *c, int ldc) {
    CIM_TRY(check_context_(context));
    CIM_TRY(cim_gemm_check(trans_a, trans_b, m, n, k, lda, ldb, ldc));
    if (m == 0 || n == 0) return CIM_OK;
    if (!a || !b || !c) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const gemm_call_ g = plain_gemm_(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    return gemm_f32_(context, &g, alpha, beta);
}

cim_status cim_opencl_gemm_f64(cim_opencl_context *context, cim_transpose trans_a,
                               cim_transpose trans_b, int m, int n, int k, double alpha,
                               cim_clbuf *a, int lda, cim_clbuf *b, int ldb, double beta,
                               cim_clbuf *c, int ldc) {
    CIM_TRY(check_context_(context));
    CIM_TRY(cim_cl_require_fp64_(context, "gemm in float64"));
    CIM_TRY(cim_gemm_check(trans_a, trans_b, m, n, k, lda, ldb, ldc));
    if (m == 0 || n == 0) return CIM_OK;
    if (!a || !b || !c) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const gemm_call_ g = plain_gemm_(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    return gemm_f64_(context, &g, alpha, beta);
}

/* ---- convolution ---------------------------------------------------------------------- */

typedef struct conv_plan_ {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, P, Q;
    long PQ, HW, CRS;
    int group;        /* G: images per pass through the scratch matrices */
    int pointwise;    /* 1x1, stride 1, no padding: the input is its own patch matrix */
} conv_plan_;

static cim_status conv_plan_make_(const cim_opencl_context *context,
                                  const cim_conv2d_shape *s, conv_plan_ *plan) {
    CIM_TRY(cim_conv2d_output_size(s, &plan->P, &plan->Q));
    plan->N = s->batch;
    plan->C = s->in_channels;
    plan->H = s->in_height;
    plan->W = s->in_width;
    plan->K = s->out_channels;
    plan->R = s->kernel_height;
    plan->S = s->kernel_width;
    plan->sh = s->stride_height;
    plan->sw = s->stride_width;
    plan->ph = s->pad_height;
    plan->pw = s->pad_width;
    plan->PQ = (long)plan->P * plan->Q;
    plan->HW = (long)plan->H * plan->W;
    plan->CRS = (long)plan->C * plan->R * plan->S;
    CIM_TRY(check_count_((long)plan->K * plan->CRS, "weight count"));
    const long per_image = (plan->CRS + plan->K) * plan->PQ;
    long group = context->conv_scratch_floats / (per_image > 0 ? per_image : 1);
    if (group > plan->N) group = plan->N;
    if (group < 1) group = 1;
    CIM_TRY(check_count_(plan->CRS * group * plan->PQ, "patch matrix size"));
    plan->group = (int)group;
    plan->pointwise = plan->R == 1 && plan->S == 1 && plan->sh == 1 && plan->sw == 1 &&
                      plan->ph == 0 && plan->pw == 0;
    return CIM_OK;
}

/* col [CRS x images PQ] = the patches of images n0 .. n0 + images - 1 of x */
static cim_status im2col_(cim_opencl_context *context, const conv_plan_ *p, cl_mem x, int n0,
                          int images, cl_mem col) {
    const cl_long offset = (cl_long)n0 * p->C * p->HW;
    const int ld = (int)(images * p->PQ);
    return launch_nd_(context, CIM_CL_K_IM2COL, 3, (size_t)p->Q, (size_t)p->P,
                      (size_t)images * p->C,
                      CL_ARGS(CL_ARG(x), CL_ARG(offset), CL_ARG(p->C), CL_ARG(p->H),
                              CL_ARG(p->W), CL_ARG(p->R), CL_ARG(p->S), CL_ARG(p->sh),
                              CL_ARG(p->sw), CL_ARG(p->ph), CL_ARG(p->pw), CL_ARG(p->P),
                              CL_ARG(p->Q), CL_ARG(images), CL_ARG(col), CL_ARG(ld)));
}

/* rows [K x images PQ] = dy of images n0 .. n0 + images - 1 */
static cim_status dy_to_rows_(cim_opencl_context *context, const conv_plan_ *p, cl_mem dy,
                              int n0, int images, cl_mem rows) {
    const cl_long offset = (cl_long)n0 * p->K * p->PQ;
    const int L = (int)p->PQ, ld = (int)(images * p->PQ);
    return launch_nd_(context, CIM_CL_K_NCHW_TO_ROWS, 3, (size_t)L, (size_t)p->K,
                      (size_t)images,
                      CL_ARGS(CL_ARG(dy), CL_ARG(offset), CL_ARG(p->K), CL_ARG(L),
                              CL_ARG(images), CL_ARG(rows), CL_ARG(ld)));
}

static cim_status conv_scratch_(cim_opencl_context *context, const conv_plan_ *p, int rows,
                                cl_mem *col, cl_mem *dy_rows) {
    const size_t columns = (size_t)p->group * p->PQ;
    CIM_TRY(cim_cl_scratch_(context, CIM_CL_SCRATCH_COL, sizeof(float) * p->CRS * columns, col));
    if (rows)
        CIM_TRY(cim_cl_scratch_(context, CIM_CL_SCRATCH_ROWS, sizeof(float) * p->K * columns,
                                dy_rows));
    return CIM_OK;
}

cim_status cim_opencl_conv2d_forward(cim_opencl_context *context,
                                     const cim_conv2d_shape *shape, cim_clbuf *x,
                                     cim_clbuf *w, cim_clbuf *y) {
    CIM_TRY(check_context_(context));
    conv_plan_ p;
    CIM_TRY(conv_plan_make_(context, shape, &p));
    if (!x || !w || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");

    /* 1x1: y[n] (K x HW) = W (K x C) x[n] (C x HW), every image in one launch */
    if (p.pointwise) {
        const gemm_call_ g = {.m = p.K, .n = (int)p.HW, .k = p.C, .a = BUF(w), .lda = p.C,
                              .b = BUF(x), .ldb = (int)p.HW, .b_stride = (cl_long)p.C * p.HW,
                              .c = BUF(y), .ldc = (int)p.HW, .c_stride = (cl_long)p.K * p.HW,
                              .batch = p.N};
        return gemm_f32_(context, &g, 1.0f, 0.0f);
    }

    cl_mem col = NULL;
    CIM_TRY(conv_scratch_(context, &p, 0, &col, NULL));
    for (int n0 = 0; n0 < p.N; n0 += p.group) {
        const int images = p.N - n0 < p.group ? p.N - n0 : p.group;
        CIM_TRY(im2col_(context, &p, BUF(x), n0, images, col));
        /* y_g [K x images PQ] = W [K x CRS] col, written as NCHW images */
        const gemm_call_ g = {.m = p.K, .n = (int)(images * p.PQ), .k = (int)p.CRS,
                              .a = BUF(w), .lda = (int)p.CRS, .b = col,
                              .ldb = (int)(images * p.PQ), .c = BUF(y),
                              .c_offset = (cl_long)n0 * p.K * p.PQ, .batch = 1,
                              .out_plane = (int)p.PQ};
        CIM_TRY(gemm_f32_(context, &g, 1.0f, 0.0f));
    }
    return CIM_OK;
}

cim_status cim_opencl_conv2d_backward_data(cim_opencl_context *context,
                                           const cim_conv2d_shape *shape, cim_clbuf *dy,
                                           cim_clbuf *w, cim_clbuf *dx) {
    CIM_TRY(check_context_(context));
    conv_plan_ p;
    CIM_TRY(conv_plan_make_(context, shape, &p));
    if (!dy || !w || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");

    /* 1x1: dx[n] (C x HW) = W^T (C x K) dy[n] (K x HW) */
    if (p.pointwise) {
        const gemm_call_ g = {.trans_a = 1, .m = p.C, .n = (int)p.HW, .k = p.K, .a = BUF(w),
                              .lda = p.C, .b = BUF(dy), .ldb = (int)p.HW,
                              .b_stride = (cl_long)p.K * p.HW, .c = BUF(dx), .ldc = (int)p.HW,
                              .c_stride = (cl_long)p.C * p.HW, .batch = p.N};
        return gemm_f32_(context, &g, 1.0f, 0.0f);
    }

    cl_mem col = NULL, rows = NULL;
    CIM_TRY(conv_scratch_(context, &p, 1, &col, &rows));
    for (int n0 = 0; n0 < p.N; n0 += p.group) {
        const int images = p.N - n0 < p.group ? p.N - n0 : p.group;
        const int ld = (int)(images * p.PQ);
        CIM_TRY(dy_to_rows_(context, &p, BUF(dy), n0, images, rows));
        /* dcol [CRS x images PQ] = W^T rows */
        const gemm_call_ g = {.trans_a = 1, .m = (int)p.CRS, .n = ld, .k = p.K, .a = BUF(w),
                              .lda = (int)p.CRS, .b = rows, .ldb = ld, .c = col, .ldc = ld,
                              .batch = 1};
        CIM_TRY(gemm_f32_(context, &g, 1.0f, 0.0f));
        const cl_long offset = (cl_long)n0 * p.C * p.HW;
        CIM_TRY(launch_nd_(context, CIM_CL_K_COL2IM, 3, (size_t)p.W, (size_t)p.H,
                           (size_t)images * p.C,
                           CL_ARGS(CL_ARG(col), CL_ARG(ld), CL_ARG(p.C), CL_ARG(p.H),
                                   CL_ARG(p.W), CL_ARG(p.R), CL_ARG(p.S), CL_ARG(p.sh),
                                   CL_ARG(p.sw), CL_ARG(p.ph), CL_ARG(p.pw), CL_ARG(p.P),
                                   CL_ARG(p.Q), CL_ARG(images), CL_ARG(dx), CL_ARG(offset))));
    }
    return CIM_OK;
}

cim_status cim_opencl_conv2d_backward_filter(cim_opencl_context *context,
                                             const cim_conv2d_shape *shape, cim_clbuf *x,
                                             cim_clbuf *dy, cim_clbuf *dw, int accumulate) {
    CIM_TRY(check_context_(context));
    conv_plan_ p;
    CIM_TRY(conv_plan_make_(context, shape, &p));
    if (!x || !dy || !dw) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");

    cl_mem col = NULL, rows = NULL;
    CIM_TRY(conv_scratch_(context, &p, 1, &col, &rows));
    for (int n0 = 0; n0 < p.N; n0 += p.group) {
        const int images = p.N - n0 < p.group ? p.N - n0 : p.group;
        const int ld = (int)(images * p.PQ);
        CIM_TRY(im2col_(context, &p, BUF(x), n0, images, col));
        CIM_TRY(dy_to_rows_(context, &p, BUF(dy), n0, images, rows));
        /* dW [K x CRS] (+)= rows [K x images PQ] col^T */
        const gemm_call_ g = {.trans_b = 1, .m = p.K, .n = (int)p.CRS, .k = ld, .a = rows,
                              .lda = ld, .b = col, .ldb = ld, .c = BUF(dw), .ldc = (int)p.CRS,
                              .batch = 1};
        CIM_TRY(gemm_f32_(context, &g, 1.0f, accumulate || n0 > 0 ? 1.0f : 0.0f));
    }
    return CIM_OK;
}

/* ---- log-determinant ------------------------------------------------------------------ */

static cim_status read_codes_(cim_opencl_context *context, cl_mem info, int batch,
                              int *codes) {
    CK_CL(clEnqueueReadBuffer(context->queue, info, CL_TRUE, 0, sizeof(int) * (size_t)batch,
                              codes, 0, NULL, NULL));
    return CIM_OK;
}

/* Waits for the factorisation; the first matrix whose info code is set, and the code. */
static cim_status first_failure_(cim_opencl_context *context, cl_mem info, int batch,
                                 int *failed, int *order) {
    int *codes = malloc(sizeof(int) * (size_t)batch);
    if (!codes) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %d codes", batch);
    const cim_status status = read_codes_(context, info, batch, codes);
    for (int b = 0; status == CIM_OK && b < batch && *failed < 0; b++)
        if (codes[b] != 0) {
            *failed = b;
            *order = codes[b];
        }
    free(codes);
    return status;
}

cim_status cim_opencl_logdet_spd_f64(cim_opencl_context *context, int batch, int n,
                                     cim_clbuf *a, cim_clbuf *logdet, cim_clbuf *inverse,
                                     int *failed_index) {
    if (failed_index) *failed_index = -1;
    CIM_TRY(check_context_(context));
    CIM_TRY(cim_cl_require_fp64_(context, "logdet"));
    if (batch < 0 || n < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "batch=%d must be >= 0 and n=%d >= 1", batch, n);
    if (batch == 0) return CIM_OK;
    if (!a || !logdet) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    CIM_TRY(check_count_((long)batch * n * n, "element count"));
    const cl_long matrix = (cl_long)n * n;
    const size_t bytes = sizeof(double) * (size_t)batch * (size_t)matrix;

    /* factor a copy: L overwrites its lower triangle */
    cl_mem work = NULL, info = NULL;
    CIM_TRY(cim_cl_scratch_(context, CIM_CL_SCRATCH_COL, bytes, &work));
    CIM_TRY(cim_cl_scratch_(context, CIM_CL_SCRATCH_INFO, sizeof(int) * (size_t)batch, &info));
    CK_CL(clEnqueueCopyBuffer(context->queue, BUF(a), work, 0, 0, bytes, 0, NULL, NULL));
    const int zero = 0;
    CK_CL(clEnqueueFillBuffer(context->queue, info, &zero, sizeof zero, 0,
                              sizeof(int) * (size_t)batch, 0, NULL, NULL));
    for (int k = 0; k < n; k += CHOLESKY_BLOCK) {
        const int nb = n - k < CHOLESKY_BLOCK ? n - k : CHOLESKY_BLOCK;
        CIM_TRY(launch_groups_(context, CIM_CL_K_CHOLESKY_BLOCK, 1, CHOLESKY_BLOCK,
                               (size_t)batch,
                               CL_ARGS(CL_ARG(work), CL_ARG(n), CL_ARG(k), CL_ARG(nb),
                                       CL_ARG(info))));
        const int below = n - k - nb;
        if (below == 0) break;
        CIM_TRY(launch_nd_(context, CIM_CL_K_CHOLESKY_PANEL, 2, (size_t)below, (size_t)batch,
                           1,
                           CL_ARGS(CL_ARG(work), CL_ARG(n), CL_ARG(k), CL_ARG(nb),
                                   CL_ARG(info), CL_ARG(batch))));
        /* trailing update, lower triangle: A_22 -= L_21 L_21^T */
        const gemm_call_ g = {.trans_b = 1, .m = below, .n = below, .k = nb, .a = work,
                              .a_offset = (cl_long)(k + nb) * n + k, .lda = n,
                              .a_stride = matrix, .b = work,
                              .b_offset = (cl_long)(k + nb) * n + k, .ldb = n,
                              .b_stride = matrix, .c = work,
                              .c_offset = (cl_long)(k + nb) * n + k + nb, .ldc = n,
                              .c_stride = matrix, .batch = batch, .lower_only = 1};
        CIM_TRY(gemm_f64_(context, &g, -1.0, 1.0));
    }

    /* the first failure, in batch order, before anything is written */
    int failed = -1, order = 0;
    CIM_TRY(first_failure_(context, info, batch, &failed, &order));
    if (failed >= 0) {
        if (failed_index) *failed_index = failed;
        return CIM_FAIL(CIM_ERROR_NOT_POSITIVE_DEFINITE,
                        "matrix %d of the batch is not positive definite (the leading minor "
                        "of order %d is not positive, or an entry is not finite)", failed,
                        order);
    }

    /* log det = 2 sum log L_ii */
    CIM_TRY(launch_groups_(context, CIM_CL_K_LOGDET_SUM, 1, 64, (size_t)batch,
                           CL_ARGS(CL_ARG(work), CL_ARG(n), CL_ARG(logdet))));
    if (!inverse) return CIM_OK;

    /* X = L^-1 by block columns, last first; then A^-1 = X^T X */
    cl_mem x = NULL, panel = NULL;
    CIM_TRY(cim_cl_scratch_(context, CIM_CL_SCRATCH_ROWS, bytes, &x));
    CIM_TRY(cim_cl_scratch_(context, CIM_CL_SCRATCH_PANEL,
                            sizeof(double) * (size_t)batch * n * CHOLESKY_BLOCK, &panel));
    const double zero_value = 0.0;
    CK_CL(clEnqueueFillBuffer(context->queue, x, &zero_value, sizeof zero_value, 0, bytes, 0,
                              NULL, NULL));
    for (int k = (n - 1) / CHOLESKY_BLOCK * CHOLESKY_BLOCK; k >= 0; k -= CHOLESKY_BLOCK) {
        const int nb = n - k < CHOLESKY_BLOCK ? n - k : CHOLESKY_BLOCK, below = n - k - nb;
        CIM_TRY(launch_groups_(context, CIM_CL_K_TRIANGULAR_INVERSE, 1, CHOLESKY_BLOCK,
                               (size_t)batch,
                               CL_ARGS(CL_ARG(work), CL_ARG(x), CL_ARG(n), CL_ARG(k),
                                       CL_ARG(nb))));
        if (below == 0) continue;
        /* panel [below x nb] = X_22 L_21, then X_21 = -panel X_11 */
        const cl_long below_diagonal = (cl_long)(k + nb) * n;
        const gemm_call_ first = {.m = below, .n = nb, .k = below, .a = x,
                                  .a_offset = below_diagonal + k + nb, .lda = n,
                                  .a_stride = matrix, .b = work,
                                  .b_offset = below_diagonal + k, .ldb = n, .b_stride = matrix,
                                  .c = panel, .ldc = nb, .c_stride = (cl_long)n * nb,
                                  .batch = batch};
        CIM_TRY(gemm_f64_(context, &first, 1.0, 0.0));
        const gemm_call_ second = {.m = below, .n = nb, .k = nb, .a = panel, .lda = nb,
                                   .a_stride = (cl_long)n * nb, .b = x,
                                   .b_offset = (cl_long)k * n + k, .ldb = n, .b_stride = matrix,
                                   .c = x, .c_offset = below_diagonal + k, .ldc = n,
                                   .c_stride = matrix, .batch = batch};
        CIM_TRY(gemm_f64_(context, &second, -1.0, 0.0));
    }
    const gemm_call_ g = {.trans_a = 1, .m = n, .n = n, .k = n, .a = x, .lda = n,
                          .a_stride = matrix, .b = x, .ldb = n, .b_stride = matrix,
                          .c = BUF(inverse), .ldc = n, .c_stride = matrix, .batch = batch};
    return gemm_f64_(context, &g, 1.0, 0.0);
}

/* ---- batch norm ----------------------------------------------------------------------- */

cim_status cim_opencl_batchnorm_forward(cim_opencl_context *context, int N, int C, int L,
                                        cim_clbuf *x, cim_clbuf *gamma, cim_clbuf *beta,
                                        cim_clbuf *running_mean, cim_clbuf *running_var,
                                        cim_clbuf *y, cim_clbuf *saved_mean,
                                        cim_clbuf *saved_inv_std, int training,
                                        float momentum, float eps) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !gamma || !beta || !running_mean || !running_var || !y)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    if (!training)
        return launch_nd_(context, CIM_CL_K_BN_FORWARD_EVAL, 2, (size_t)L, (size_t)N * C, 1,
                          CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(x), CL_ARG(gamma),
                                  CL_ARG(beta), CL_ARG(running_mean), CL_ARG(running_var),
                                  CL_ARG(y), CL_ARG(eps)));
    if (!saved_mean || !saved_inv_std)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "training needs saved_mean and saved_inv_std");
    if ((long)N * L < 2)
        return CIM_FAIL(CIM_ERROR_SHAPE,
                        "batch norm in training mode needs more than one value per channel "
                        "(N=%d, L=%d)", N, L);
    return launch_groups_(context, CIM_CL_K_BN_FORWARD_TRAIN, (size_t)C, 256, 1,
                          CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(x), CL_ARG(gamma),
                                  CL_ARG(beta), CL_ARG(running_mean), CL_ARG(running_var),
                                  CL_ARG(y), CL_ARG(saved_mean), CL_ARG(saved_inv_std),
                                  CL_ARG(momentum), CL_ARG(eps)));
}

cim_status cim_opencl_batchnorm_backward(cim_opencl_context *context, int N, int C, int L,
                                         cim_clbuf *dy, cim_clbuf *x, cim_clbuf *gamma,
                                         cim_clbuf *saved_mean, cim_clbuf *saved_inv_std,
                                         cim_clbuf *dx, cim_clbuf *dgamma, cim_clbuf *dbeta,
                                         int accumulate) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !x || !gamma || !saved_mean || !saved_inv_std || !dx || !dgamma || !dbeta)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(context, CIM_CL_K_BN_BACKWARD, (size_t)C, 256, 1,
                          CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(dy), CL_ARG(x),
                                  CL_ARG(gamma), CL_ARG(saved_mean), CL_ARG(saved_inv_std),
                                  CL_ARG(dx), CL_ARG(dgamma), CL_ARG(dbeta),
                                  CL_ARG(accumulate)));
}

cim_status cim_opencl_channel_sums(cim_opencl_context *context, int N, int C, int L,
                                   cim_clbuf *x, cim_clbuf *center, cim_clbuf *sums) {
    CIM_TRY(check_context_(context));
    CIM_TRY(cim_cl_require_fp64_(context, "channel sums (float64)"));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !sums) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int centered = center != NULL;
    cim_clbuf *shift = centered ? center : x;   /* never read when not centered */
    return launch_groups_(context, CIM_CL_K_CHANNEL_SUMS, (size_t)C, 256, 1,
                          CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(x), CL_ARG(shift),
                                  CL_ARG(centered), CL_ARG(sums)));
}

cim_status cim_opencl_channel_affine(cim_opencl_context *context, int N, int C, int L,
                                     cim_clbuf *x, cim_clbuf *scale, cim_clbuf *shift,
                                     cim_clbuf *y) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !scale || !shift || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(context, CIM_CL_K_CHANNEL_AFFINE, 2, (size_t)L, (size_t)N * C, 1,
                      CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(x), CL_ARG(scale),
                              CL_ARG(shift), CL_ARG(y)));
}

cim_status cim_opencl_batchnorm_backward_sums(cim_opencl_context *context, int N, int C,
                                              int L, cim_clbuf *dy, cim_clbuf *x,
                                              cim_clbuf *mean, cim_clbuf *sums) {
    CIM_TRY(check_context_(context));
    CIM_TRY(cim_cl_require_fp64_(context, "batch norm backward sums (float64)"));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !x || !mean || !sums) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(context, CIM_CL_K_BN_BACKWARD_SUMS, (size_t)C, 256, 1,
                          CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(dy), CL_ARG(x),
                                  CL_ARG(mean), CL_ARG(sums)));
}

cim_status cim_opencl_batchnorm_backward_apply(cim_opencl_context *context, int N, int C,
                                               int L, cim_clbuf *dy, cim_clbuf *x,
                                               cim_clbuf *mean, cim_clbuf *coefficients,
                                               cim_clbuf *dx) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !x || !mean || !coefficients || !dx)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(context, CIM_CL_K_BN_BACKWARD_APPLY, 2, (size_t)L, (size_t)N * C, 1,
                      CL_ARGS(CL_ARG(N), CL_ARG(C), CL_ARG(L), CL_ARG(dy), CL_ARG(x),
                              CL_ARG(mean), CL_ARG(coefficients), CL_ARG(dx)));
}

/* ---- element-wise --------------------------------------------------------------------- */

static cim_status check_elementwise_(const cim_opencl_context *context, long count,
                                     const void *y) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_count_(count, "element count"));
    if (count > 0 && !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "NULL output");
    return CIM_OK;
}

cim_status cim_opencl_relu_forward(cim_opencl_context *context, long count, cim_clbuf *x,
                                   cim_clbuf *y) {
    CIM_TRY(check_elementwise_(context, count, y));
    const int n = (int)count;
    return launch_1d_(context, CIM_CL_K_RELU_FORWARD, count,
                      CL_ARGS(CL_ARG(n), CL_ARG(x), CL_ARG(y)));
}

cim_status cim_opencl_relu_backward(cim_opencl_context *context, long count, cim_clbuf *dy,
                                    cim_clbuf *y, cim_clbuf *dx) {
    CIM_TRY(check_elementwise_(context, count, dx));
    const int n = (int)count;
    return launch_1d_(context, CIM_CL_K_RELU_BACKWARD, count,
                      CL_ARGS(CL_ARG(n), CL_ARG(dy), CL_ARG(y), CL_ARG(dx)));
}

cim_status cim_opencl_add(cim_opencl_context *context, long count, cim_clbuf *a,
                          cim_clbuf *b, cim_clbuf *y) {
    CIM_TRY(check_elementwise_(context, count, y));
    const int n = (int)count;
    return launch_1d_(context, CIM_CL_K_ADD, count,
                      CL_ARGS(CL_ARG(n), CL_ARG(a), CL_ARG(b), CL_ARG(y)));
}

cim_status cim_opencl_axpy(cim_opencl_context *context, long count, float alpha,
                           cim_clbuf *x, cim_clbuf *y) {
    CIM_TRY(check_elementwise_(context, count, y));
    const int n = (int)count;
    return launch_1d_(context, CIM_CL_K_AXPY, count,
                      CL_ARGS(CL_ARG(n), CL_ARG(alpha), CL_ARG(x), CL_ARG(y)));
}

cim_status cim_opencl_scale(cim_opencl_context *context, long count, float alpha,
                            cim_clbuf *y) {
    CIM_TRY(check_elementwise_(context, count, y));
    const int n = (int)count;
    return launch_1d_(context, CIM_CL_K_SCALE, count,
                      CL_ARGS(CL_ARG(n), CL_ARG(alpha), CL_ARG(y)));
}

cim_status cim_opencl_bias_add(cim_opencl_context *context, int rows, int columns,
                               cim_clbuf *bias, cim_clbuf *y) {
    CIM_TRY(check_elementwise_(context, (long)rows * columns, y));
    if (rows < 0 || columns < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative size");
    return launch_nd_(context, CIM_CL_K_BIAS_ADD, 2, (size_t)columns, (size_t)rows, 1,
                      CL_ARGS(CL_ARG(rows), CL_ARG(columns), CL_ARG(bias), CL_ARG(y)));
}

cim_status cim_opencl_column_sum(cim_opencl_context *context, int rows, int columns,
                                 cim_clbuf *y, cim_clbuf *sums, int accumulate) {
    CIM_TRY(check_elementwise_(context, (long)rows * columns, sums));
    if (rows < 0 || columns < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative size");
    return launch_1d_(context, CIM_CL_K_COLUMN_SUM, columns,
                      CL_ARGS(CL_ARG(rows), CL_ARG(columns), CL_ARG(y), CL_ARG(sums),
                              CL_ARG(accumulate)));
}

/* ---- pooling -------------------------------------------------------------------------- */

cim_status cim_opencl_global_avg_pool_forward(cim_opencl_context *context, int N, int C,
                                              int L, cim_clbuf *x, cim_clbuf *y) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int planes = N * C;
    return launch_1d_(context, CIM_CL_K_GAP_FORWARD, planes,
                      CL_ARGS(CL_ARG(planes), CL_ARG(L), CL_ARG(x), CL_ARG(y)));
}

cim_status cim_opencl_global_avg_pool_backward(cim_opencl_context *context, int N, int C,
                                               int L, cim_clbuf *dy, cim_clbuf *dx) {
    CIM_TRY(check_context_(context));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int planes = N * C;
    return launch_nd_(context, CIM_CL_K_GAP_BACKWARD, 2, (size_t)L, (size_t)planes, 1,
                      CL_ARGS(CL_ARG(planes), CL_ARG(L), CL_ARG(dy), CL_ARG(dx)));
}

typedef struct pool_plan_ {
    int planes, H, W, R, S, sh, sw, ph, pw, P, Q;
} pool_plan_;

static cim_status pool_plan_make_(const cim_pool2d_shape *s, pool_plan_ *p) {
    CIM_TRY(cim_pool2d_output_size(s, &p->P, &p->Q));
    CIM_TRY(check_count_((long)s->batch * s->channels * s->in_height * s->in_width,
                         "element count"));
    *p = (pool_plan_){s->batch * s->channels, s->in_height, s->in_width, s->kernel_height,
                      s->kernel_width, s->stride_height, s->stride_width, s->pad_height,
                      s->pad_width, p->P, p->Q};
    return CIM_OK;
}

cim_status cim_opencl_max_pool2d_forward(cim_opencl_context *context,
                                         const cim_pool2d_shape *shape, cim_clbuf *x,
                                         cim_clbuf *y, cim_clbuf *argmax) {
    CIM_TRY(check_context_(context));
    pool_plan_ p;
    CIM_TRY(pool_plan_make_(shape, &p));
    if (!x || !y || !argmax) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(context, CIM_CL_K_MAXPOOL_FORWARD, 3, (size_t)p.Q, (size_t)p.P,
                      (size_t)p.planes,
                      CL_ARGS(CL_ARG(p.planes), CL_ARG(p.H), CL_ARG(p.W), CL_ARG(p.R),
                              CL_ARG(p.S), CL_ARG(p.sh), CL_ARG(p.sw), CL_ARG(p.ph),
                              CL_ARG(p.pw), CL_ARG(p.P), CL_ARG(p.Q), CL_ARG(x), CL_ARG(y),
                              CL_ARG(argmax)));
}

cim_status cim_opencl_max_pool2d_backward(cim_opencl_context *context,
                                          const cim_pool2d_shape *shape, cim_clbuf *dy,
                                          cim_clbuf *argmax, cim_clbuf *dx) {
    CIM_TRY(check_context_(context));
    pool_plan_ p;
    CIM_TRY(pool_plan_make_(shape, &p));
    if (!dy || !argmax || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(context, CIM_CL_K_MAXPOOL_BACKWARD, 3, (size_t)p.W, (size_t)p.H,
                      (size_t)p.planes,
                      CL_ARGS(CL_ARG(p.planes), CL_ARG(p.H), CL_ARG(p.W), CL_ARG(p.R),
                              CL_ARG(p.S), CL_ARG(p.sh), CL_ARG(p.sw), CL_ARG(p.ph),
                              CL_ARG(p.pw), CL_ARG(p.P), CL_ARG(p.Q), CL_ARG(dy),
                              CL_ARG(argmax), CL_ARG(dx)));
}

/* ---- L2 normalisation and SGD --------------------------------------------------------- */

static cim_status check_rows_(const cim_opencl_context *context, int rows, int columns) {
    CIM_TRY(check_context_(context));
    if (rows < 1 || columns < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes %d x %d must be positive", rows, columns);
    return check_count_((long)rows * columns, "element count");
}

cim_status cim_opencl_l2_normalize_forward(cim_opencl_context *context, int rows,
                                           int columns, float eps, cim_clbuf *u,
                                           cim_clbuf *z, cim_clbuf *norms) {
    CIM_TRY(check_rows_(context, rows, columns));
    if (!u || !z || !norms) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(context, CIM_CL_K_L2_FORWARD, (size_t)rows, 64, 1,
                          CL_ARGS(CL_ARG(columns), CL_ARG(eps), CL_ARG(u), CL_ARG(z),
                                  CL_ARG(norms)));
}

cim_status cim_opencl_l2_normalize_backward(cim_opencl_context *context, int rows,
                                            int columns, float eps, cim_clbuf *dz,
                                            cim_clbuf *z, cim_clbuf *norms, cim_clbuf *du) {
    CIM_TRY(check_rows_(context, rows, columns));
    if (!dz || !z || !norms || !du) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(context, CIM_CL_K_L2_BACKWARD, (size_t)rows, 64, 1,
                          CL_ARGS(CL_ARG(columns), CL_ARG(eps), CL_ARG(dz), CL_ARG(z),
                                  CL_ARG(norms), CL_ARG(du)));
}

cim_status cim_opencl_sgd_update(cim_opencl_context *context, long count, float lr,
                                 float momentum, float weight_decay, cim_clbuf *theta,
                                 cim_clbuf *g, cim_clbuf *buf) {
    CIM_TRY(check_elementwise_(context, count, theta));
    if (count > 0 && (!g || !buf)) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int n = (int)count;
    return launch_1d_(context, CIM_CL_K_SGD, count,
                      CL_ARGS(CL_ARG(n), CL_ARG(lr), CL_ARG(momentum), CL_ARG(weight_decay),
                              CL_ARG(theta), CL_ARG(g), CL_ARG(buf)));
}
