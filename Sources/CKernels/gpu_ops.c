/*
 * gpu_ops.c: the ops of both GPU backends (OpenCL and CUDA): argument checks, grid shapes
 * and the sequence of kernels each op queues, written once against the driver table of
 * gpu_internal.h. The math is in the kernel files of kernels/ (each with its formulas); this
 * file says which kernel runs over which grid.
 *
 *   GEMM          the driver's vendor GEMM when it has one (cuBLAS), else gemm.cl: 64 x 64
 *                 tiles in 16 x 16 work-groups, or on CPU devices one block per work-item
 *                 (cim_opencl_context_set_gemm)
 *   convolution   G images at a time (as many as the scratch limit allows):
 *                 forward  im2col, GEMM W col (stored as NCHW);
 *                 data     dy to rows, GEMM W^T rows, col2im;
 *                 filter   im2col, dy to rows, GEMM rows col^T (accumulated over groups).
 *                 1x1 stride-1 unpadded convolutions skip im2col: forward and backward data
 *                 are one GEMM per image, batched in one launch
 *   log-det       blocked Cholesky (logdet.cl), then the log-sum, blocked L^-1, L^-T L^-1
 *   the rest      one launch each
 *
 * Every op checks its sizes like its CPU twin, and element counts against 2^31 (kernels
 * index with int). Scratch memory is reused; the queue is in order, so reusing it between
 * ops and between the groups of one op is safe.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

/* gemm.cl's tiles, and the work-group of its CPU kernels: blocks of 8 consecutive rows
 * share each chunk of B's panel (see gemm.cl; measured best of 1x8, 2x8, 4x4, 1x16 on PoCL) */
enum { GEMM_TILE = 64, GEMM_THREADS = 16, CPU_GEMM_GROUP_ROWS = 8, CHOLESKY_BLOCK = 64 };

#define BUF(x) ((cim_gpu_mem_)(x))

/* ---- the tables of gpu_internal.h ----------------------------------------------------- */

const char *const cim_gpu_kernel_names_[CIM_GPU_KERNEL_COUNT] = {
#define CIM_GPU_KERNEL_NAME_(id, program, name, group) name,
    CIM_GPU_KERNELS(CIM_GPU_KERNEL_NAME_)
#undef CIM_GPU_KERNEL_NAME_
};
const int cim_gpu_kernel_programs_[CIM_GPU_KERNEL_COUNT] = {
#define CIM_GPU_KERNEL_PROGRAM_(id, program, name, group) program,
    CIM_GPU_KERNELS(CIM_GPU_KERNEL_PROGRAM_)
#undef CIM_GPU_KERNEL_PROGRAM_
};
const size_t cim_gpu_kernel_groups_[CIM_GPU_KERNEL_COUNT] = {
#define CIM_GPU_KERNEL_GROUP_(id, program, name, group) group,
    CIM_GPU_KERNELS(CIM_GPU_KERNEL_GROUP_)
#undef CIM_GPU_KERNEL_GROUP_
};

const cim_gpu_program_spec_ cim_gpu_programs_[CIM_GPU_PROGRAM_COUNT] = {
    [CIM_GPU_PROGRAM_F32] = {"f32", "-DCIM_REAL=float -DCIM_REAL_NAME=f32",
                             {"gemm.cl", "conv2d.cl", "batchnorm.cl", "elementwise.cl",
                              "pooling.cl", "normalize.cl", "sgd.cl", NULL}},
    [CIM_GPU_PROGRAM_F64] = {"f64", "-DCIM_REAL=double -DCIM_REAL_NAME=f64 -DCIM_FP64=1",
                             {"gemm.cl", "logdet.cl", "batchnorm_sync.cl", NULL}},
};

/* ---- launching, scratch, memory ------------------------------------------------------- */

void cim_gpu_local_shape_(int dimensions, const size_t global[3], size_t local[3]) {
    size_t budget = CIM_GPU_REQUIRED_GROUP_SIZE;
    for (int d = 0; d < 3; d++) {
        size_t size = 1;
        if (d < dimensions) {
            while (size < global[d] && size * 2 <= budget && size < 64) size *= 2;
            if (d == dimensions - 1)   /* the last dimension takes what is left */
                while (size < global[d] && size * 2 <= budget) size *= 2;
        }
        local[d] = size;
        budget /= size;
    }
}

cim_status cim_gpu_launch_(cim_gpu *gpu, cim_gpu_kernel_id_ id, int dimensions,
                           const size_t global[3], const size_t local[3], const cim_gpu_arg_ *args,
                           int count) {
    size_t rounded[3] = {1, 1, 1}, group[3] = {1, 1, 1};
    for (int d = 0; d < dimensions; d++) {
        if (global[d] == 0) return CIM_OK;
        rounded[d] = (global[d] + local[d] - 1) / local[d] * local[d];
        group[d] = local[d];
    }
    return gpu->driver->launch(gpu, id, dimensions, rounded, group, args, count);
}

cim_status cim_gpu_scratch_(cim_gpu *gpu, int slot, size_t bytes, cim_gpu_mem_ *out) {
    if (bytes == 0) bytes = 4;
    if (bytes > gpu->scratch_bytes[slot]) {
        if (gpu->scratch[slot]) gpu->driver->release(gpu, gpu->scratch[slot]);
        gpu->scratch[slot] = NULL;
        gpu->scratch_bytes[slot] = 0;
        CIM_TRY(gpu->driver->allocate(gpu, bytes, &gpu->scratch[slot]));
        gpu->scratch_bytes[slot] = bytes;
    }
    *out = gpu->scratch[slot];
    return CIM_OK;
}

void cim_gpu_release_scratch_(cim_gpu *gpu) {
    for (int s = 0; s < CIM_GPU_SCRATCH_COUNT; s++) {
        if (gpu->scratch[s]) gpu->driver->release(gpu, gpu->scratch[s]);
        gpu->scratch[s] = NULL;
        gpu->scratch_bytes[s] = 0;
    }
}

cim_status cim_gpu_require_fp64_(const cim_gpu *gpu, const char *op) {
    if (gpu->has_fp64) return CIM_OK;
    return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                    "%s needs fp64, which %s (%s) does not support; run float64 work such as "
                    "the CorInfoMax covariance on the CPU backend", op, gpu->name, gpu->label);
}

const char *cim_gpu_device_name(const cim_gpu *gpu) { return gpu ? gpu->name : ""; }

int cim_gpu_has_fp64(const cim_gpu *gpu) { return gpu ? gpu->has_fp64 : 0; }

cim_status cim_gpu_set_conv_scratch_limit(cim_gpu *gpu, size_t bytes) {
    if (!gpu) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "gpu is NULL");
    gpu->conv_scratch_floats = (long)(bytes / sizeof(float));
    return CIM_OK;
}

size_t cim_gpu_workspace_bytes(const cim_gpu *gpu) {
    size_t total = 0;
    for (int s = 0; gpu && s < CIM_GPU_SCRATCH_COUNT; s++) total += gpu->scratch_bytes[s];
    return total;
}

cim_status cim_gpu_buffer_create(cim_gpu *gpu, size_t bytes, cim_gpu_buffer **out_buffer) {
    if (!gpu || !out_buffer) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    *out_buffer = NULL;
    cim_gpu_mem_ memory = NULL;
    /* neither API has empty buffers; an empty tensor gets 4 bytes nobody reads */
    CIM_TRY(gpu->driver->allocate(gpu, bytes ? bytes : 4, &memory));
    *out_buffer = (cim_gpu_buffer *)memory;
    return CIM_OK;
}

void cim_gpu_buffer_destroy(cim_gpu *gpu, cim_gpu_buffer *buffer) {
    if (gpu && buffer) gpu->driver->release(gpu, BUF(buffer));
}

cim_status cim_gpu_write(cim_gpu *gpu, cim_gpu_buffer *buffer, const void *source, size_t bytes) {
    if (!gpu || !buffer || (bytes && !source))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    return bytes ? gpu->driver->write(gpu, BUF(buffer), source, bytes) : CIM_OK;
}

cim_status cim_gpu_read(cim_gpu *gpu, cim_gpu_buffer *buffer, void *destination, size_t bytes) {
    if (!gpu || !buffer || (bytes && !destination))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    return bytes ? gpu->driver->read(gpu, BUF(buffer), destination, bytes) : CIM_OK;
}

cim_status cim_gpu_copy(cim_gpu *gpu, cim_gpu_buffer *source, cim_gpu_buffer *destination,
                        size_t bytes) {
    if (!gpu || !source || !destination)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    if (bytes == 0 || source == destination) return CIM_OK;
    return gpu->driver->copy(gpu, BUF(source), BUF(destination), bytes);
}

static cim_status fill_(cim_gpu *gpu, cim_gpu_mem_ memory, const void *pattern,
                        size_t pattern_bytes, size_t bytes) {
    if (pattern_bytes != 1 && pattern_bytes != 2 && pattern_bytes != 4 && pattern_bytes != 8)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "pattern of %zu bytes", pattern_bytes);
    if (bytes % pattern_bytes != 0)
        return CIM_FAIL(CIM_ERROR_SHAPE, "%zu bytes is not a whole number of %zu-byte patterns",
                        bytes, pattern_bytes);
    return bytes ? gpu->driver->fill(gpu, memory, pattern, pattern_bytes, bytes) : CIM_OK;
}

cim_status cim_gpu_fill(cim_gpu *gpu, cim_gpu_buffer *buffer, const void *pattern,
                        size_t pattern_bytes, size_t bytes) {
    if (!gpu || !buffer || !pattern)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    return fill_(gpu, BUF(buffer), pattern, pattern_bytes, bytes);
}

cim_status cim_gpu_finish(cim_gpu *gpu) {
    if (!gpu) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "gpu is NULL");
    return gpu->driver->finish(gpu);
}

/* ---- checks and grids ----------------------------------------------------------------- */

static cim_status check_context_(const cim_gpu *gpu) {
    if (!gpu) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "gpu is NULL");
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
static cim_status launch_1d_(cim_gpu *gpu, cim_gpu_kernel_id_ id, long count,
                             const cim_gpu_arg_ *args, int arg_count) {
    const size_t global[3] = {(size_t)count, 1, 1};
    size_t local[3];
    cim_gpu_local_shape_(1, global, local);
    return cim_gpu_launch_(gpu, id, 1, global, local, args, arg_count);
}

static cim_status launch_nd_(cim_gpu *gpu, cim_gpu_kernel_id_ id, int dimensions, size_t g0,
                             size_t g1, size_t g2, const cim_gpu_arg_ *args, int arg_count) {
    const size_t global[3] = {g0, g1, g2};
    size_t local[3];
    cim_gpu_local_shape_(dimensions, global, local);
    return cim_gpu_launch_(gpu, id, dimensions, global, local, args, arg_count);
}

/* `groups` work-groups of `size` along dimension 0, `batch` along dimension 1. */
static cim_status launch_groups_(cim_gpu *gpu, cim_gpu_kernel_id_ id, size_t groups,
                                 size_t size, size_t batch, const cim_gpu_arg_ *args,
                                 int arg_count) {
    const size_t global[3] = {groups * size, batch, 1}, local[3] = {size, 1, 1};
    return cim_gpu_launch_(gpu, id, 2, global, local, args, arg_count);
}

/* ---- GEMM ----------------------------------------------------------------------------- */

/* gemm.cl: the tiled kernel everywhere, or on CPU devices the CPU kernels (but for TT). */
static cim_status launch_gemm_kernel_(cim_gpu *gpu, int f64, const cim_gpu_gemm_ *g,
                                      cim_gpu_arg_ alpha, cim_gpu_arg_ beta) {
    const size_t m = (size_t)g->m, n = (size_t)g->n, batch = (size_t)g->batch;
    cim_gpu_kernel_id_ id;
    size_t global[3], local[3] = {1, 1, 1};
    if (gpu->gemm_kernels == CIM_GPU_GEMM_CPU && !(g->trans_a && g->trans_b)) {
        /* one work-item per block: rows x 32 (NN, TN) or 4 x 4 (NT) */
        const size_t rows = g->trans_b ? 4 : f64 ? 4 : 8, columns = g->trans_b ? 4 : 32;
        id = g->trans_b ? (f64 ? CIM_GPU_K_GEMM_NT_CPU_F64 : CIM_GPU_K_GEMM_NT_CPU_F32)
                        : (f64 ? CIM_GPU_K_GEMM_CPU_F64 : CIM_GPU_K_GEMM_CPU_F32);
        global[0] = (n + columns - 1) / columns;
        global[1] = (m + rows - 1) / rows;
        local[1] = CPU_GEMM_GROUP_ROWS;
    } else {
        /* 16 x 16 work-items per 64 x 64 tile */
        id = f64 ? CIM_GPU_K_GEMM_F64 : CIM_GPU_K_GEMM_F32;
        global[0] = (n + GEMM_TILE - 1) / GEMM_TILE * GEMM_THREADS;
        global[1] = (m + GEMM_TILE - 1) / GEMM_TILE * GEMM_THREADS;
        local[0] = local[1] = GEMM_THREADS;
    }
    global[2] = batch;
    return cim_gpu_launch_(
        gpu, id, 3, global, local,
        KARGS(KARG(g->trans_a), KARG(g->trans_b), KARG(g->m), KARG(g->n), KARG(g->k), alpha,
              KARG(g->a), KARG(g->a_offset), KARG(g->lda), KARG(g->a_stride), KARG(g->b),
              KARG(g->b_offset), KARG(g->ldb), KARG(g->b_stride), beta, KARG(g->c),
              KARG(g->c_offset), KARG(g->ldc), KARG(g->c_stride), KARG(g->out_plane),
              KARG(g->lower_only)));
}

static cim_status gemm_f32_(cim_gpu *gpu, const cim_gpu_gemm_ *g, float alpha, float beta) {
    if (g->m == 0 || g->n == 0 || g->batch == 0) return CIM_OK;
    if (gpu->driver->gemm) return gpu->driver->gemm(gpu, 0, g, alpha, beta);
    return launch_gemm_kernel_(gpu, 0, g, KARG(alpha), KARG(beta));
}

static cim_status gemm_f64_(cim_gpu *gpu, const cim_gpu_gemm_ *g, double alpha,
                            double beta) {
    if (g->m == 0 || g->n == 0 || g->batch == 0) return CIM_OK;
    if (gpu->driver->gemm) return gpu->driver->gemm(gpu, 1, g, alpha, beta);
    return launch_gemm_kernel_(gpu, 1, g, KARG(alpha), KARG(beta));
}

/* One plain GEMM of the public API, as a cim_gpu_gemm_ with a batch of 1. */
static cim_gpu_gemm_ plain_gemm_(cim_transpose trans_a, cim_transpose trans_b, int m, int n, int k,
                                 cim_gpubuf *a, int lda, cim_gpubuf *b, int ldb, cim_gpubuf *c,
                                 int ldc) {
    cim_gpu_gemm_ g = {.trans_a = trans_a == CIM_TRANSPOSE, .trans_b = trans_b == CIM_TRANSPOSE,
                       .m = m, .n = n, .k = k, .a = BUF(a), .b = BUF(b), .c = BUF(c),
                       .lda = lda, .ldb = ldb, .ldc = ldc, .batch = 1};
    return g;
}

cim_status cim_gpu_gemm_f32(cim_gpu *gpu, cim_transpose trans_a, cim_transpose trans_b, int m,
                            int n, int k, float alpha, cim_gpubuf *a, int lda, cim_gpubuf *b,
                            int ldb, float beta, cim_gpubuf *c, int ldc) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(cim_gemm_check(trans_a, trans_b, m, n, k, lda, ldb, ldc));
    if (m == 0 || n == 0) return CIM_OK;
    if (!a || !b || !c) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const cim_gpu_gemm_ g = plain_gemm_(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    return gemm_f32_(gpu, &g, alpha, beta);
}

cim_status cim_gpu_gemm_f64(cim_gpu *gpu, cim_transpose trans_a, cim_transpose trans_b, int m,
                            int n, int k, double alpha, cim_gpubuf *a, int lda, cim_gpubuf *b,
                            int ldb, double beta, cim_gpubuf *c, int ldc) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(cim_gpu_require_fp64_(gpu, "gemm in float64"));
    CIM_TRY(cim_gemm_check(trans_a, trans_b, m, n, k, lda, ldb, ldc));
    if (m == 0 || n == 0) return CIM_OK;
    if (!a || !b || !c) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const cim_gpu_gemm_ g = plain_gemm_(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    return gemm_f64_(gpu, &g, alpha, beta);
}

/* ---- convolution ---------------------------------------------------------------------- */

typedef struct conv_plan_ {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, P, Q;
    long PQ, HW, CRS;
    int group;        /* G: images per pass through the scratch matrices */
    int pointwise;    /* 1x1, stride 1, no padding: the input is its own patch matrix */
} conv_plan_;

static cim_status conv_plan_make_(const cim_gpu *gpu,
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
    long group = gpu->conv_scratch_floats / (per_image > 0 ? per_image : 1);
    if (group > plan->N) group = plan->N;
    if (group < 1) group = 1;
    CIM_TRY(check_count_(plan->CRS * group * plan->PQ, "patch matrix size"));
    plan->group = (int)group;
    plan->pointwise = plan->R == 1 && plan->S == 1 && plan->sh == 1 && plan->sw == 1 &&
                      plan->ph == 0 && plan->pw == 0;
    return CIM_OK;
}

/* col [CRS x images PQ] = the patches of images n0 .. n0 + images - 1 of x */
static cim_status im2col_(cim_gpu *gpu, const conv_plan_ *p, cim_gpu_mem_ x, int n0,
                          int images, cim_gpu_mem_ col) {
    const int64_t offset = (int64_t)n0 * p->C * p->HW;
    const int ld = (int)(images * p->PQ);
    return launch_nd_(gpu, CIM_GPU_K_IM2COL, 3, (size_t)p->Q, (size_t)p->P,
                      (size_t)images * p->C,
                      KARGS(KARG(x), KARG(offset), KARG(p->C), KARG(p->H),
                            KARG(p->W), KARG(p->R), KARG(p->S), KARG(p->sh),
                            KARG(p->sw), KARG(p->ph), KARG(p->pw), KARG(p->P),
                            KARG(p->Q), KARG(images), KARG(col), KARG(ld)));
}

/* rows [K x images PQ] = dy of images n0 .. n0 + images - 1 */
static cim_status dy_to_rows_(cim_gpu *gpu, const conv_plan_ *p, cim_gpu_mem_ dy,
                              int n0, int images, cim_gpu_mem_ rows) {
    const int64_t offset = (int64_t)n0 * p->K * p->PQ;
    const int L = (int)p->PQ, ld = (int)(images * p->PQ);
    return launch_nd_(gpu, CIM_GPU_K_NCHW_TO_ROWS, 3, (size_t)L, (size_t)p->K,
                      (size_t)images,
                      KARGS(KARG(dy), KARG(offset), KARG(p->K), KARG(L),
                            KARG(images), KARG(rows), KARG(ld)));
}

static cim_status conv_scratch_(cim_gpu *gpu, const conv_plan_ *p, int rows,
                                cim_gpu_mem_ *col, cim_gpu_mem_ *dy_rows) {
    const size_t columns = (size_t)p->group * p->PQ;
    CIM_TRY(cim_gpu_scratch_(gpu, CIM_GPU_SCRATCH_COL, sizeof(float) * p->CRS * columns, col));
    if (rows)
        CIM_TRY(cim_gpu_scratch_(gpu, CIM_GPU_SCRATCH_ROWS, sizeof(float) * p->K * columns,
                                 dy_rows));
    return CIM_OK;
}

cim_status cim_gpu_conv2d_forward(cim_gpu *gpu, const cim_conv2d_shape *shape, cim_gpubuf *x,
                                  cim_gpubuf *w, cim_gpubuf *y) {
    CIM_TRY(check_context_(gpu));
    conv_plan_ p;
    CIM_TRY(conv_plan_make_(gpu, shape, &p));
    if (!x || !w || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");

    /* 1x1: y[n] (K x HW) = W (K x C) x[n] (C x HW), every image in one launch */
    if (p.pointwise) {
        const cim_gpu_gemm_ g = {.m = p.K, .n = (int)p.HW, .k = p.C, .a = BUF(w), .lda = p.C,
                              .b = BUF(x), .ldb = (int)p.HW, .b_stride = (int64_t)p.C * p.HW,
                              .c = BUF(y), .ldc = (int)p.HW, .c_stride = (int64_t)p.K * p.HW,
                              .batch = p.N};
        return gemm_f32_(gpu, &g, 1.0f, 0.0f);
    }

    cim_gpu_mem_ col = NULL;
    CIM_TRY(conv_scratch_(gpu, &p, 0, &col, NULL));
    for (int n0 = 0; n0 < p.N; n0 += p.group) {
        const int images = p.N - n0 < p.group ? p.N - n0 : p.group;
        CIM_TRY(im2col_(gpu, &p, BUF(x), n0, images, col));
        /* y_g [K x images PQ] = W [K x CRS] col, written as NCHW images */
        const cim_gpu_gemm_ g = {.m = p.K, .n = (int)(images * p.PQ), .k = (int)p.CRS,
                              .a = BUF(w), .lda = (int)p.CRS, .b = col,
                              .ldb = (int)(images * p.PQ), .c = BUF(y),
                              .c_offset = (int64_t)n0 * p.K * p.PQ, .batch = 1,
                              .out_plane = (int)p.PQ};
        CIM_TRY(gemm_f32_(gpu, &g, 1.0f, 0.0f));
    }
    return CIM_OK;
}

cim_status cim_gpu_conv2d_backward_data(cim_gpu *gpu, const cim_conv2d_shape *shape, cim_gpubuf *dy,
                                        cim_gpubuf *w, cim_gpubuf *dx) {
    CIM_TRY(check_context_(gpu));
    conv_plan_ p;
    CIM_TRY(conv_plan_make_(gpu, shape, &p));
    if (!dy || !w || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");

    /* 1x1: dx[n] (C x HW) = W^T (C x K) dy[n] (K x HW) */
    if (p.pointwise) {
        const cim_gpu_gemm_ g = {.trans_a = 1, .m = p.C, .n = (int)p.HW, .k = p.K, .a = BUF(w),
                              .lda = p.C, .b = BUF(dy), .ldb = (int)p.HW,
                              .b_stride = (int64_t)p.K * p.HW, .c = BUF(dx), .ldc = (int)p.HW,
                              .c_stride = (int64_t)p.C * p.HW, .batch = p.N};
        return gemm_f32_(gpu, &g, 1.0f, 0.0f);
    }

    cim_gpu_mem_ col = NULL, rows = NULL;
    CIM_TRY(conv_scratch_(gpu, &p, 1, &col, &rows));
    for (int n0 = 0; n0 < p.N; n0 += p.group) {
        const int images = p.N - n0 < p.group ? p.N - n0 : p.group;
        const int ld = (int)(images * p.PQ);
        CIM_TRY(dy_to_rows_(gpu, &p, BUF(dy), n0, images, rows));
        /* dcol [CRS x images PQ] = W^T rows */
        const cim_gpu_gemm_ g = {.trans_a = 1, .m = (int)p.CRS, .n = ld, .k = p.K, .a = BUF(w),
                              .lda = (int)p.CRS, .b = rows, .ldb = ld, .c = col, .ldc = ld,
                              .batch = 1};
        CIM_TRY(gemm_f32_(gpu, &g, 1.0f, 0.0f));
        const int64_t offset = (int64_t)n0 * p.C * p.HW;
        CIM_TRY(launch_nd_(gpu, CIM_GPU_K_COL2IM, 3, (size_t)p.W, (size_t)p.H,
                           (size_t)images * p.C,
                           KARGS(KARG(col), KARG(ld), KARG(p.C), KARG(p.H),
                                 KARG(p.W), KARG(p.R), KARG(p.S), KARG(p.sh),
                                 KARG(p.sw), KARG(p.ph), KARG(p.pw), KARG(p.P),
                                 KARG(p.Q), KARG(images), KARG(dx), KARG(offset))));
    }
    return CIM_OK;
}

cim_status cim_gpu_conv2d_backward_filter(cim_gpu *gpu, const cim_conv2d_shape *shape,
                                          cim_gpubuf *x, cim_gpubuf *dy, cim_gpubuf *dw,
                                          int accumulate) {
    CIM_TRY(check_context_(gpu));
    conv_plan_ p;
    CIM_TRY(conv_plan_make_(gpu, shape, &p));
    if (!x || !dy || !dw) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");

    cim_gpu_mem_ col = NULL, rows = NULL;
    CIM_TRY(conv_scratch_(gpu, &p, 1, &col, &rows));
    for (int n0 = 0; n0 < p.N; n0 += p.group) {
        const int images = p.N - n0 < p.group ? p.N - n0 : p.group;
        const int ld = (int)(images * p.PQ);
        CIM_TRY(im2col_(gpu, &p, BUF(x), n0, images, col));
        CIM_TRY(dy_to_rows_(gpu, &p, BUF(dy), n0, images, rows));
        /* dW [K x CRS] (+)= rows [K x images PQ] col^T */
        const cim_gpu_gemm_ g = {.trans_b = 1, .m = p.K, .n = (int)p.CRS, .k = ld, .a = rows,
                              .lda = ld, .b = col, .ldb = ld, .c = BUF(dw), .ldc = (int)p.CRS,
                              .batch = 1};
        CIM_TRY(gemm_f32_(gpu, &g, 1.0f, accumulate || n0 > 0 ? 1.0f : 0.0f));
    }
    return CIM_OK;
}

/* ---- log-determinant ------------------------------------------------------------------ */

/* Waits for the factorisation; the first matrix whose info code is set, and the code. */
static cim_status first_failure_(cim_gpu *gpu, cim_gpu_mem_ info, int batch,
                                 int *failed, int *order) {
    int *codes = malloc(sizeof(int) * (size_t)batch);
    if (!codes) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %d codes", batch);
    const cim_status status = gpu->driver->read(gpu, info, codes, sizeof(int) * (size_t)batch);
    for (int b = 0; status == CIM_OK && b < batch && *failed < 0; b++)
        if (codes[b] != 0) {
            *failed = b;
            *order = codes[b];
        }
    free(codes);
    return status;
}

cim_status cim_gpu_logdet_spd_f64(cim_gpu *gpu, int batch, int n, cim_gpubuf *a, cim_gpubuf *logdet,
                                  cim_gpubuf *inverse, int *failed_index) {
    if (failed_index) *failed_index = -1;
    CIM_TRY(check_context_(gpu));
    CIM_TRY(cim_gpu_require_fp64_(gpu, "logdet"));
    if (batch < 0 || n < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "batch=%d must be >= 0 and n=%d >= 1", batch, n);
    if (batch == 0) return CIM_OK;
    if (!a || !logdet) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    CIM_TRY(check_count_((long)batch * n * n, "element count"));
    const int64_t matrix = (int64_t)n * n;
    const size_t bytes = sizeof(double) * (size_t)batch * (size_t)matrix;

    /* factor a copy: L overwrites its lower triangle */
    cim_gpu_mem_ work = NULL, info = NULL;
    CIM_TRY(cim_gpu_scratch_(gpu, CIM_GPU_SCRATCH_COL, bytes, &work));
    CIM_TRY(cim_gpu_scratch_(gpu, CIM_GPU_SCRATCH_INFO, sizeof(int) * (size_t)batch, &info));
    CIM_TRY(gpu->driver->copy(gpu, BUF(a), work, bytes));
    const int zero = 0;
    CIM_TRY(fill_(gpu, info, &zero, sizeof zero, sizeof(int) * (size_t)batch));
    for (int k = 0; k < n; k += CHOLESKY_BLOCK) {
        const int nb = n - k < CHOLESKY_BLOCK ? n - k : CHOLESKY_BLOCK;
        CIM_TRY(launch_groups_(gpu, CIM_GPU_K_CHOLESKY_BLOCK, 1, CHOLESKY_BLOCK,
                               (size_t)batch,
                               KARGS(KARG(work), KARG(n), KARG(k), KARG(nb),
                                     KARG(info))));
        const int below = n - k - nb;
        if (below == 0) break;
        CIM_TRY(launch_nd_(gpu, CIM_GPU_K_CHOLESKY_PANEL, 2, (size_t)below, (size_t)batch,
                           1,
                           KARGS(KARG(work), KARG(n), KARG(k), KARG(nb),
                                 KARG(info), KARG(batch))));
        /* trailing update, lower triangle: A_22 -= L_21 L_21^T */
        const cim_gpu_gemm_ g = {.trans_b = 1, .m = below, .n = below, .k = nb, .a = work,
                              .a_offset = (int64_t)(k + nb) * n + k, .lda = n,
                              .a_stride = matrix, .b = work,
                              .b_offset = (int64_t)(k + nb) * n + k, .ldb = n,
                              .b_stride = matrix, .c = work,
                              .c_offset = (int64_t)(k + nb) * n + k + nb, .ldc = n,
                              .c_stride = matrix, .batch = batch, .lower_only = 1};
        CIM_TRY(gemm_f64_(gpu, &g, -1.0, 1.0));
    }

    /* the first failure, in batch order, before anything is written */
    int failed = -1, order = 0;
    CIM_TRY(first_failure_(gpu, info, batch, &failed, &order));
    if (failed >= 0) {
        if (failed_index) *failed_index = failed;
        return CIM_FAIL(CIM_ERROR_NOT_POSITIVE_DEFINITE,
                        "matrix %d of the batch is not positive definite (the leading minor "
                        "of order %d is not positive, or an entry is not finite)", failed,
                        order);
    }

    /* log det = 2 sum log L_ii */
    CIM_TRY(launch_groups_(gpu, CIM_GPU_K_LOGDET_SUM, 1, 64, (size_t)batch,
                           KARGS(KARG(work), KARG(n), KARG(logdet))));
    if (!inverse) return CIM_OK;

    /* X = L^-1 by block columns, last first; then A^-1 = X^T X */
    cim_gpu_mem_ x = NULL, panel = NULL;
    CIM_TRY(cim_gpu_scratch_(gpu, CIM_GPU_SCRATCH_ROWS, bytes, &x));
    CIM_TRY(cim_gpu_scratch_(gpu, CIM_GPU_SCRATCH_PANEL,
                             sizeof(double) * (size_t)batch * n * CHOLESKY_BLOCK, &panel));
    const double zero_value = 0.0;
    CIM_TRY(fill_(gpu, x, &zero_value, sizeof zero_value, bytes));
    for (int k = (n - 1) / CHOLESKY_BLOCK * CHOLESKY_BLOCK; k >= 0; k -= CHOLESKY_BLOCK) {
        const int nb = n - k < CHOLESKY_BLOCK ? n - k : CHOLESKY_BLOCK, below = n - k - nb;
        CIM_TRY(launch_groups_(gpu, CIM_GPU_K_TRIANGULAR_INVERSE, 1, CHOLESKY_BLOCK,
                               (size_t)batch,
                               KARGS(KARG(work), KARG(x), KARG(n), KARG(k),
                                     KARG(nb))));
        if (below == 0) continue;
        /* panel [below x nb] = X_22 L_21, then X_21 = -panel X_11 */
        const int64_t below_diagonal = (int64_t)(k + nb) * n;
        const cim_gpu_gemm_ first = {.m = below, .n = nb, .k = below, .a = x,
                                  .a_offset = below_diagonal + k + nb, .lda = n,
                                  .a_stride = matrix, .b = work,
                                  .b_offset = below_diagonal + k, .ldb = n, .b_stride = matrix,
                                  .c = panel, .ldc = nb, .c_stride = (int64_t)n * nb,
                                  .batch = batch};
        CIM_TRY(gemm_f64_(gpu, &first, 1.0, 0.0));
        const cim_gpu_gemm_ second = {.m = below, .n = nb, .k = nb, .a = panel, .lda = nb,
                                   .a_stride = (int64_t)n * nb, .b = x,
                                   .b_offset = (int64_t)k * n + k, .ldb = n, .b_stride = matrix,
                                   .c = x, .c_offset = below_diagonal + k, .ldc = n,
                                   .c_stride = matrix, .batch = batch};
        CIM_TRY(gemm_f64_(gpu, &second, -1.0, 0.0));
    }
    const cim_gpu_gemm_ g = {.trans_a = 1, .m = n, .n = n, .k = n, .a = x, .lda = n,
                          .a_stride = matrix, .b = x, .ldb = n, .b_stride = matrix,
                          .c = BUF(inverse), .ldc = n, .c_stride = matrix, .batch = batch};
    return gemm_f64_(gpu, &g, 1.0, 0.0);
}

/* ---- batch norm ----------------------------------------------------------------------- */

cim_status cim_gpu_batchnorm_forward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                     cim_gpubuf *gamma, cim_gpubuf *beta, cim_gpubuf *running_mean,
                                     cim_gpubuf *running_var, cim_gpubuf *y, cim_gpubuf *saved_mean,
                                     cim_gpubuf *saved_inv_std, int training, float momentum,
                                     float eps) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !gamma || !beta || !running_mean || !running_var || !y)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    if (!training)
        return launch_nd_(gpu, CIM_GPU_K_BN_FORWARD_EVAL, 3, (size_t)L, (size_t)C, (size_t)N,
                          KARGS(KARG(N), KARG(C), KARG(L), KARG(x), KARG(gamma),
                                KARG(beta), KARG(running_mean), KARG(running_var),
                                KARG(y), KARG(eps)));
    if (!saved_mean || !saved_inv_std)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "training needs saved_mean and saved_inv_std");
    if ((long)N * L < 2)
        return CIM_FAIL(CIM_ERROR_SHAPE,
                        "batch norm in training mode needs more than one value per channel "
                        "(N=%d, L=%d)", N, L);
    return launch_groups_(gpu, CIM_GPU_K_BN_FORWARD_TRAIN, (size_t)C, 256, 1,
                          KARGS(KARG(N), KARG(C), KARG(L), KARG(x), KARG(gamma),
                                KARG(beta), KARG(running_mean), KARG(running_var),
                                KARG(y), KARG(saved_mean), KARG(saved_inv_std),
                                KARG(momentum), KARG(eps)));
}

cim_status cim_gpu_batchnorm_backward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                      cim_gpubuf *x, cim_gpubuf *gamma, cim_gpubuf *saved_mean,
                                      cim_gpubuf *saved_inv_std, cim_gpubuf *dx, cim_gpubuf *dgamma,
                                      cim_gpubuf *dbeta, int accumulate) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !x || !gamma || !saved_mean || !saved_inv_std || !dx || !dgamma || !dbeta)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(gpu, CIM_GPU_K_BN_BACKWARD, (size_t)C, 256, 1,
                          KARGS(KARG(N), KARG(C), KARG(L), KARG(dy), KARG(x),
                                KARG(gamma), KARG(saved_mean), KARG(saved_inv_std),
                                KARG(dx), KARG(dgamma), KARG(dbeta),
                                KARG(accumulate)));
}

cim_status cim_gpu_channel_sums(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                cim_gpubuf *center, cim_gpubuf *sums) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(cim_gpu_require_fp64_(gpu, "channel sums (float64)"));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !sums) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int centered = center != NULL;
    cim_gpubuf *shift = centered ? center : x;   /* never read when not centered */
    return launch_groups_(gpu, CIM_GPU_K_CHANNEL_SUMS, (size_t)C, 256, 1,
                          KARGS(KARG(N), KARG(C), KARG(L), KARG(x), KARG(shift),
                                KARG(centered), KARG(sums)));
}

cim_status cim_gpu_channel_affine(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                  cim_gpubuf *scale, cim_gpubuf *shift, cim_gpubuf *y) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !scale || !shift || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(gpu, CIM_GPU_K_CHANNEL_AFFINE, 3, (size_t)L, (size_t)C, (size_t)N,
                      KARGS(KARG(N), KARG(C), KARG(L), KARG(x), KARG(scale),
                            KARG(shift), KARG(y)));
}

cim_status cim_gpu_batchnorm_backward_sums(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                           cim_gpubuf *x, cim_gpubuf *mean, cim_gpubuf *sums) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(cim_gpu_require_fp64_(gpu, "batch norm backward sums (float64)"));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !x || !mean || !sums) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(gpu, CIM_GPU_K_BN_BACKWARD_SUMS, (size_t)C, 256, 1,
                          KARGS(KARG(N), KARG(C), KARG(L), KARG(dy), KARG(x),
                                KARG(mean), KARG(sums)));
}

cim_status cim_gpu_batchnorm_backward_apply(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                            cim_gpubuf *x, cim_gpubuf *mean,
                                            cim_gpubuf *coefficients, cim_gpubuf *dx) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !x || !mean || !coefficients || !dx)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(gpu, CIM_GPU_K_BN_BACKWARD_APPLY, 3, (size_t)L, (size_t)C, (size_t)N,
                      KARGS(KARG(N), KARG(C), KARG(L), KARG(dy), KARG(x),
                            KARG(mean), KARG(coefficients), KARG(dx)));
}

/* ---- element-wise --------------------------------------------------------------------- */

static cim_status check_elementwise_(const cim_gpu *gpu, long count,
                                     const void *y) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_count_(count, "element count"));
    if (count > 0 && !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "NULL output");
    return CIM_OK;
}

cim_status cim_gpu_relu_forward(cim_gpu *gpu, long count, cim_gpubuf *x, cim_gpubuf *y) {
    CIM_TRY(check_elementwise_(gpu, count, y));
    const int n = (int)count;
    return launch_1d_(gpu, CIM_GPU_K_RELU_FORWARD, count,
                      KARGS(KARG(n), KARG(x), KARG(y)));
}

cim_status cim_gpu_relu_backward(cim_gpu *gpu, long count, cim_gpubuf *dy, cim_gpubuf *y,
                                 cim_gpubuf *dx) {
    CIM_TRY(check_elementwise_(gpu, count, dx));
    const int n = (int)count;
    return launch_1d_(gpu, CIM_GPU_K_RELU_BACKWARD, count,
                      KARGS(KARG(n), KARG(dy), KARG(y), KARG(dx)));
}

cim_status cim_gpu_add(cim_gpu *gpu, long count, cim_gpubuf *a, cim_gpubuf *b, cim_gpubuf *y) {
    CIM_TRY(check_elementwise_(gpu, count, y));
    const int n = (int)count;
    return launch_1d_(gpu, CIM_GPU_K_ADD, count,
                      KARGS(KARG(n), KARG(a), KARG(b), KARG(y)));
}

cim_status cim_gpu_axpy(cim_gpu *gpu, long count, float alpha, cim_gpubuf *x, cim_gpubuf *y) {
    CIM_TRY(check_elementwise_(gpu, count, y));
    const int n = (int)count;
    return launch_1d_(gpu, CIM_GPU_K_AXPY, count,
                      KARGS(KARG(n), KARG(alpha), KARG(x), KARG(y)));
}

cim_status cim_gpu_scale(cim_gpu *gpu, long count, float alpha, cim_gpubuf *y) {
    CIM_TRY(check_elementwise_(gpu, count, y));
    const int n = (int)count;
    return launch_1d_(gpu, CIM_GPU_K_SCALE, count,
                      KARGS(KARG(n), KARG(alpha), KARG(y)));
}

cim_status cim_gpu_bias_add(cim_gpu *gpu, int rows, int columns, cim_gpubuf *bias, cim_gpubuf *y) {
    CIM_TRY(check_elementwise_(gpu, (long)rows * columns, y));
    if (rows < 0 || columns < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative size");
    return launch_nd_(gpu, CIM_GPU_K_BIAS_ADD, 2, (size_t)columns, (size_t)rows, 1,
                      KARGS(KARG(rows), KARG(columns), KARG(bias), KARG(y)));
}

cim_status cim_gpu_column_sum(cim_gpu *gpu, int rows, int columns, cim_gpubuf *y, cim_gpubuf *sums,
                              int accumulate) {
    CIM_TRY(check_elementwise_(gpu, (long)rows * columns, sums));
    if (rows < 0 || columns < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative size");
    return launch_1d_(gpu, CIM_GPU_K_COLUMN_SUM, columns,
                      KARGS(KARG(rows), KARG(columns), KARG(y), KARG(sums),
                            KARG(accumulate)));
}

/* ---- pooling -------------------------------------------------------------------------- */

cim_status cim_gpu_global_avg_pool_forward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *x,
                                           cim_gpubuf *y) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_ncl_(N, C, L));
    if (!x || !y) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int planes = N * C;
    return launch_1d_(gpu, CIM_GPU_K_GAP_FORWARD, planes,
                      KARGS(KARG(planes), KARG(L), KARG(x), KARG(y)));
}

cim_status cim_gpu_global_avg_pool_backward(cim_gpu *gpu, int N, int C, int L, cim_gpubuf *dy,
                                            cim_gpubuf *dx) {
    CIM_TRY(check_context_(gpu));
    CIM_TRY(check_ncl_(N, C, L));
    if (!dy || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(gpu, CIM_GPU_K_GAP_BACKWARD, 3, (size_t)L, (size_t)C, (size_t)N,
                      KARGS(KARG(N), KARG(C), KARG(L), KARG(dy), KARG(dx)));
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

cim_status cim_gpu_max_pool2d_forward(cim_gpu *gpu, const cim_pool2d_shape *shape, cim_gpubuf *x,
                                      cim_gpubuf *y, cim_gpubuf *argmax) {
    CIM_TRY(check_context_(gpu));
    pool_plan_ p;
    CIM_TRY(pool_plan_make_(shape, &p));
    if (!x || !y || !argmax) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(gpu, CIM_GPU_K_MAXPOOL_FORWARD, 3, (size_t)p.Q, (size_t)p.P,
                      (size_t)p.planes,
                      KARGS(KARG(p.planes), KARG(p.H), KARG(p.W), KARG(p.R),
                            KARG(p.S), KARG(p.sh), KARG(p.sw), KARG(p.ph),
                            KARG(p.pw), KARG(p.P), KARG(p.Q), KARG(x), KARG(y),
                            KARG(argmax)));
}

cim_status cim_gpu_max_pool2d_backward(cim_gpu *gpu, const cim_pool2d_shape *shape, cim_gpubuf *dy,
                                       cim_gpubuf *argmax, cim_gpubuf *dx) {
    CIM_TRY(check_context_(gpu));
    pool_plan_ p;
    CIM_TRY(pool_plan_make_(shape, &p));
    if (!dy || !argmax || !dx) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_nd_(gpu, CIM_GPU_K_MAXPOOL_BACKWARD, 3, (size_t)p.W, (size_t)p.H,
                      (size_t)p.planes,
                      KARGS(KARG(p.planes), KARG(p.H), KARG(p.W), KARG(p.R),
                            KARG(p.S), KARG(p.sh), KARG(p.sw), KARG(p.ph),
                            KARG(p.pw), KARG(p.P), KARG(p.Q), KARG(dy),
                            KARG(argmax), KARG(dx)));
}

/* ---- L2 normalisation and SGD --------------------------------------------------------- */

static cim_status check_rows_(const cim_gpu *gpu, int rows, int columns) {
    CIM_TRY(check_context_(gpu));
    if (rows < 1 || columns < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes %d x %d must be positive", rows, columns);
    return check_count_((long)rows * columns, "element count");
}

cim_status cim_gpu_l2_normalize_forward(cim_gpu *gpu, int rows, int columns, float eps,
                                        cim_gpubuf *u, cim_gpubuf *z, cim_gpubuf *norms) {
    CIM_TRY(check_rows_(gpu, rows, columns));
    if (!u || !z || !norms) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(gpu, CIM_GPU_K_L2_FORWARD, (size_t)rows, 64, 1,
                          KARGS(KARG(columns), KARG(eps), KARG(u), KARG(z),
                                KARG(norms)));
}

cim_status cim_gpu_l2_normalize_backward(cim_gpu *gpu, int rows, int columns, float eps,
                                         cim_gpubuf *dz, cim_gpubuf *z, cim_gpubuf *norms,
                                         cim_gpubuf *du) {
    CIM_TRY(check_rows_(gpu, rows, columns));
    if (!dz || !z || !norms || !du) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    return launch_groups_(gpu, CIM_GPU_K_L2_BACKWARD, (size_t)rows, 64, 1,
                          KARGS(KARG(columns), KARG(eps), KARG(dz), KARG(z),
                                KARG(norms), KARG(du)));
}

cim_status cim_gpu_sgd_update(cim_gpu *gpu, long count, float lr, float momentum,
                              float weight_decay, cim_gpubuf *theta, cim_gpubuf *g,
                              cim_gpubuf *buf) {
    CIM_TRY(check_elementwise_(gpu, count, theta));
    if (count > 0 && (!g || !buf)) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL buffer");
    const int n = (int)count;
    return launch_1d_(gpu, CIM_GPU_K_SGD, count,
                      KARGS(KARG(n), KARG(lr), KARG(momentum), KARG(weight_decay),
                            KARG(theta), KARG(g), KARG(buf)));
}
