/*
 * winograd.c: 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin and Gray 2015, "Fast Algorithms for Convolutional Neural Networks"), for the
 * forward pass and both backward passes.
 *
 * The output is cut into 2x2 tiles; each reads a 4x4 input patch d starting at
 * (2 ty - pad_h, 2 tx - pad_w). For one input channel c and output channel k,
 *
 *   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
 *
 *         | 1  0 -1  0 |          | 1    0    0  |
 *   B^T = | 0  1  1  0 |      G = | 1/2  1/2  1/2|      A^T = | 1  1  1  0 |
 *         | 0 -1  1  0 |          | 1/2 -1/2  1/2|            | 0  1 -1 -1 |
 *         | 0  1  0 -1 |          | 0    0    1  |
 *
 * Summing over c moves inside the brackets, so with U = G g G^T (per k, c) and V = B^T d B
 * (per c, tile) each of the 16 positions e of the 4x4 transformed tile is a GEMM:
 *
 *   forward          M_e [K x T] = U_e [K x C] * V_e [C x T]       (T tiles of a group)
 *
 * and Y per (k, tile) is A^T M A. That is 16 C K T multiply-adds where im2col does
 * 36 C K T: 2.25 times fewer. The transforms use only 0, ±1 and ±1/2, so rounding stays
 * close to direct convolution's (checked against the fp64 reference in the tests).
 *
 * Backward data of a 3x3 stride-1 convolution with padding p is itself such a convolution:
 * of dy, with padding 2 - p, and weights swapped in (k, c) and rotated 180 degrees, which
 * the weight transform reads in place (`flip`).
 *
 * Backward filter runs the forward's linear maps in reverse (their adjoints). Every map
 * above is linear, so from dY per tile
 *
 *   dM = A dY A^T,   dU_e [K x C] = sum over groups of dM_e [K x T] * V_e^T,
 *   dg = G^T dU G
 *
 * with dY zero at the outputs a tile has beyond P x Q (the forward drops them). dU is
 * summed in the transformed domain over every tile of the batch and turned into dw once.
 *
 * Memory layout: the 16 planes of U, V and M lie one after the other. Their starts are
 * padded so that consecutive planes do not sit a multiple of 4 KiB apart: the transforms
 * touch all 16 planes for every tile, and at power-of-two strides those 16 streams fall on
 * the same L1 sets and evict each other (measured: the input transform of a 64-channel
 * 32x32 layer went from 50 ms to 9 ms at batch 128 with the padding).
 */
#include <string.h>

#include "internal.h"

/* Floats between the starts of two planes holding `floats` each: a whole number of cache
 * lines, one more than needed, so 16 consecutive planes start in 16 different L1 sets. */
static long plane_stride_(long floats) { return ((floats + 15) & ~15L) + 16; }

typedef struct wino_job_ {
    /* geometry of the convolution being computed (after any backward-data rewrite) */
    int images, C, H, W, K, P, Q, pad_h, pad_w;
    int tiles_h, tiles_w;
    long T;               /* tiles in this group */
    long group_tiles;     /* tiles of a full group: the row stride of V and M */
    long u_plane, v_plane, m_plane;   /* floats from one plane of U, V, M to the next */
    const float *x;       /* first image of the group, [images][C][H][W] */
    const float *w;       /* raw weights (forward and backward data) */
    int flip;             /* 0: w is [K][C][3][3]; 1: w is [C][K][3][3], rotated */
    float *U, *V, *M;
    float *y;             /* first image of the group, [images][K][P][Q] (forward) */
    const float *dy;      /* first image of the group, [images][K][P][Q] (backward filter) */
} wino_job_;

/* U_e[k][c] = (G g G^T)_e for every (k, c). */
static void weight_transform_(void *opaque, int k_begin, int k_end) {
    const wino_job_ *job = opaque;
    for (int k = k_begin; k < k_end; k++) {
        for (int c = 0; c < job->C; c++) {
            float g[3][3];
            for (int r = 0; r < 3; r++)
                for (int s = 0; s < 3; s++)
                    g[r][s] = job->flip ? job->w[(((long)c * job->K + k) * 3 + 2 - r) * 3 + 2 - s]
                                        : job->w[(((long)k * job->C + c) * 3 + r) * 3 + s];
            /* t = G g (4x3), then u = t G^T (4x4) */
            float t[4][3], u[4][4];
            for (int s = 0; s < 3; s++) {
                t[0][s] = g[0][s];
                t[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
                t[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
                t[3][s] = g[2][s];
            }
            for (int i = 0; i < 4; i++) {
                u[i][0] = t[i][0];
                u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            float *out = job->U + (long)k * job->C + c;
            for (int e = 0; e < 16; e++) out[e * job->u_plane] = u[e / 4][e % 4];
        }
    }
}

/* V_e[c][t] = (B^T d B)_e for every channel c and tile t of the group. */
static void input_transform_(const wino_job_ *job) {
    const long plane = job->v_plane;
    const long HW = (long)job->H * job->W;
    for (int c = 0; c < job->C; c++) {
        long t = 0;
        for (int g = 0; g < job->images; g++) {
            const float *image = job->x + ((long)g * job->C + c) * HW;
            for (int ty = 0; ty < job->tiles_h; ty++) {
                for (int tx = 0; tx < job->tiles_w; tx++, t++) {
                    /* the 4x4 patch, zero outside the image */
                    float d[4][4];
                    const int y0 = 2 * ty - job->pad_h, x0 = 2 * tx - job->pad_w;
                    if (y0 >= 0 && x0 >= 0 && y0 + 4 <= job->H && x0 + 4 <= job->W) {
                        for (int i = 0; i < 4; i++)
                            memcpy(d[i], image + (long)(y0 + i) * job->W + x0, sizeof d[i]);
                    } else {
                        for (int i = 0; i < 4; i++)
                            for (int j = 0; j < 4; j++) {
                                int yy = y0 + i, xx = x0 + j;
                                d[i][j] = (yy >= 0 && yy < job->H && xx >= 0 && xx < job->W)
                                              ? image[(long)yy * job->W + xx]
                                              : 0.0f;
                            }
                    }
                    /* rows: B^T d, then columns: (B^T d) B */
                    float b[4][4];
                    for (int j = 0; j < 4; j++) {
                        b[0][j] = d[0][j] - d[2][j];
                        b[1][j] = d[1][j] + d[2][j];
                        b[2][j] = d[2][j] - d[1][j];
                        b[3][j] = d[1][j] - d[3][j];
                    }
                    float *out = job->V + (long)c * job->group_tiles + t;
                    for (int i = 0; i < 4; i++) {
                        out[(4 * i + 0) * plane] = b[i][0] - b[i][2];
                        out[(4 * i + 1) * plane] = b[i][1] + b[i][2];
                        out[(4 * i + 2) * plane] = b[i][2] - b[i][1];
                        out[(4 * i + 3) * plane] = b[i][1] - b[i][3];
                    }
                }
            }
        }
    }
}

/* y[k] tiles = A^T M A, dropping the outputs a tile has beyond P x Q. */
static void output_transform_(const wino_job_ *job) {
    const long plane = job->m_plane;
    const long PQ = (long)job->P * job->Q;
    for (int k = 0; k < job->K; k++) {
        long t = 0;
        for (int g = 0; g < job->images; g++) {
            float *out = job->y + ((long)g * job->K + k) * PQ;
            for (int ty = 0; ty < job->tiles_h; ty++) {
                for (int tx = 0; tx < job->tiles_w; tx++, t++) {
                    const float *m = job->M + (long)k * job->group_tiles + t;
                    float a[2][4];
                    for (int j = 0; j < 4; j++) {
                        float m0 = m[(0 + j) * plane], m1 = m[(4 + j) * plane];
                        float m2 = m[(8 + j) * plane], m3 = m[(12 + j) * plane];
                        a[0][j] = m0 + m1 + m2;
                        a[1][j] = m1 - m2 - m3;
                    }
                    const int p0 = 2 * ty, q0 = 2 * tx;
                    for (int i = 0; i < 2 && p0 + i < job->P; i++) {
                        float *row = out + (long)(p0 + i) * job->Q + q0;
                        row[0] = a[i][0] + a[i][1] + a[i][2];
                        if (q0 + 1 < job->Q) row[1] = a[i][1] - a[i][2] - a[i][3];
                    }
                }
            }
        }
    }
}

/* dM[k] tiles = A dY A^T (the adjoint of output_transform_), dY zero beyond P x Q. */
static void output_gradient_transform_(const wino_job_ *job) {
    const long plane = job->m_plane;
    const long PQ = (long)job->P * job->Q;
    for (int k = 0; k < job->K; k++) {
        long t = 0;
        for (int g = 0; g < job->images; g++) {
            const float *grad = job->dy + ((long)g * job->K + k) * PQ;
            for (int ty = 0; ty < job->tiles_h; ty++) {
                for (int tx = 0; tx < job->tiles_w; tx++, t++) {
                    const int p0 = 2 * ty, q0 = 2 * tx;
                    float d[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
                    for (int i = 0; i < 2 && p0 + i < job->P; i++) {
                        const float *row = grad + (long)(p0 + i) * job->Q + q0;
                        d[i][0] = row[0];
                        if (q0 + 1 < job->Q) d[i][1] = row[1];
                    }
                    /* rows: A dY (4x2), then columns: (A dY) A^T (4x4) */
                    const float a[4][2] = {{d[0][0], d[0][1]},
                                           {d[0][0] + d[1][0], d[0][1] + d[1][1]},
                                           {d[0][0] - d[1][0], d[0][1] - d[1][1]},
                                           {-d[1][0], -d[1][1]}};
                    float *out = job->M + (long)k * job->group_tiles + t;
                    for (int i = 0; i < 4; i++) {
                        out[(4 * i + 0) * plane] = a[i][0];
                        out[(4 * i + 1) * plane] = a[i][0] + a[i][1];
                        out[(4 * i + 2) * plane] = a[i][0] - a[i][1];
                        out[(4 * i + 3) * plane] = -a[i][1];
                    }
                }
            }
        }
    }
}

/*
 * Each thread takes whole groups of images through all the stages on its own, with
 * single-threaded GEMMs, so a group's V and M stay in that core's cache between the stages
 * instead of streaming through memory three times. A group holds about
 * WINOGRAD_GROUP_FLOATS of V and M together, and at least MIN_GROUP_TILES tiles: a deep
 * layer has few tiles per image (4 at 4x4), and GEMMs only T columns wide run at half
 * speed (measured on the 512-channel 4x4 layer: 45 ms at T = 16, 23 ms at T = 256).
 */
enum { WINOGRAD_GROUP_FLOATS = 512 << 10, MIN_GROUP_TILES = 256 };

typedef enum wino_pass_ { WINO_FORWARD, WINO_FILTER } wino_pass_;

typedef struct wino_run_ {
    wino_job_ shape;      /* geometry, U and weights; per-group fields unset */
    wino_pass_ pass;
    int N;
    long group, tiles_per_image;
    size_t thread_floats; /* V + M (+ dU for the filter pass) of one thread */
    float *scratch;       /* threads x thread_floats */
    const float *x, *dy;
    float *y;
    int threads;
} wino_run_;

/* The first float of dU, the filter pass's 16 planes of K x C, of one thread. */
static float *thread_filter_gradient_(const wino_run_ *run, int thread) {
    const wino_job_ *shape = &run->shape;
    return run->scratch + (size_t)thread * run->thread_floats + 16 * shape->v_plane +
           16 * shape->m_plane;
}

static void run_groups_(void *opaque, int thread_begin, int thread_end) {
    const wino_run_ *run = opaque;
    const long groups = (run->N + run->group - 1) / run->group;
    for (int thread = thread_begin; thread < thread_end; thread++) {
        wino_job_ job = run->shape;
        job.V = run->scratch + (size_t)thread * run->thread_floats;
        job.M = job.V + 16 * job.v_plane;
        float *dU = run->pass == WINO_FILTER ? thread_filter_gradient_(run, thread) : NULL;
        const long first_group = groups * thread / run->threads;
        for (long g = first_group; g < groups * (thread + 1) / run->threads; g++) {
            const int n0 = (int)(g * run->group);
            job.images = run->N - n0 < run->group ? run->N - n0 : (int)run->group;
            job.T = job.images * run->tiles_per_image;
            job.x = run->x + (long)n0 * job.C * job.H * job.W;
            input_transform_(&job);

            if (run->pass == WINO_FORWARD) {
                /* 16 GEMMs M_e = U_e V_e, then back to output tiles */
                job.y = run->y + (long)n0 * job.K * job.P * job.Q;
                for (int e = 0; e < 16; e++)
                    cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_NO_TRANS,
                                job.K, (int)job.T, job.C, 1.0f, job.U + e * job.u_plane, job.C,
                                job.V + e * job.v_plane, (int)job.group_tiles, 0.0f,
                                job.M + e * job.m_plane, (int)job.group_tiles);
                output_transform_(&job);
            } else {
                /* dM from dY, then 16 GEMMs dU_e (+)= dM_e V_e^T */
                job.dy = run->dy + (long)n0 * job.K * job.P * job.Q;
                output_gradient_transform_(&job);
                const float beta = g == first_group ? 0.0f : 1.0f;
                for (int e = 0; e < 16; e++)
                    cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_TRANS, job.K,
                                job.C, (int)job.T, 1.0f, job.M + e * job.m_plane,
                                (int)job.group_tiles, job.V + e * job.v_plane,
                                (int)job.group_tiles, beta, dU + e * job.u_plane, job.C);
            }
        }
    }
}

/* Thread 0's dU += every other thread's, over the K x C entries of each plane. */
static void sum_filter_gradients_(void *opaque, int begin, int end) {
    const wino_run_ *run = opaque;
    const long plane = run->shape.u_plane;
    float *total = thread_filter_gradient_(run, 0);
    for (int thread = 1; thread < run->threads; thread++) {
        const float *partial = thread_filter_gradient_(run, thread);
        for (int e = 0; e < 16; e++)
            for (int i = begin; i < end; i++) total[e * plane + i] += partial[e * plane + i];
    }
}

typedef struct filter_out_ {
    const wino_run_ *run;
    float *dw;
    int accumulate;
} filter_out_;

/* dw[k][c] (+)= G^T dU[k][c] G, the adjoint of weight_transform_. */
static void filter_gradient_transform_(void *opaque, int k_begin, int k_end) {
    const filter_out_ *out = opaque;
    const wino_job_ *shape = &out->run->shape;
    const float *dU = thread_filter_gradient_(out->run, 0);
    for (int k = k_begin; k < k_end; k++) {
        for (int c = 0; c < shape->C; c++) {
            float u[4][4];
            for (int e = 0; e < 16; e++)
                u[e / 4][e % 4] = dU[e * shape->u_plane + (long)k * shape->C + c];
            /* t = G^T u (3x4), then g = t G (3x3) */
            float t[3][4], g[3][3];
            for (int j = 0; j < 4; j++) {
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            for (int r = 0; r < 3; r++) {
                g[r][0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                g[r][1] = 0.5f * (t[r][1] - t[r][2]);
                g[r][2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
            float *dw = out->dw + ((long)k * shape->C + c) * 9;
            for (int i = 0; i < 9; i++)
                dw[i] = out->accumulate ? dw[i] + g[i / 3][i % 3] : g[i / 3][i % 3];
        }
    }
}

/* Geometry, image groups and workspace shared by both entry points. */
static cim_status plan_run_(cim_cpu_context *context, wino_pass_ pass, int N, int C, int H,
                            int W, int K, int pad_h, int pad_w, wino_run_ *run) {
    memset(run, 0, sizeof *run);
    wino_job_ *job = &run->shape;
    run->pass = pass;
    job->C = C, job->H = H, job->W = W, job->K = K, job->pad_h = pad_h, job->pad_w = pad_w;
    job->P = H + 2 * pad_h - 2;
    job->Q = W + 2 * pad_w - 2;
    job->tiles_h = (job->P + 1) / 2;
    job->tiles_w = (job->Q + 1) / 2;
    run->N = N;
    run->tiles_per_image = (long)job->tiles_h * job->tiles_w;

    /* images per group: about WINOGRAD_GROUP_FLOATS, at least MIN_GROUP_TILES tiles, and
     * no more than keeps every thread busy */
    const long floats_per_image = 16 * run->tiles_per_image * (long)(C + K);
    long group = WINOGRAD_GROUP_FLOATS / floats_per_image;
    const long for_tiles = (MIN_GROUP_TILES + run->tiles_per_image - 1) / run->tiles_per_image;
    if (group < for_tiles) group = for_tiles;
    const long fair = (N + context->threads - 1) / context->threads;
    if (group > fair) group = fair;
    if (group < 1) group = 1;
    run->group = group;
    const long groups = (N + group - 1) / group;
    run->threads = context->threads < groups ? context->threads : (int)groups;
    job->group_tiles = group * run->tiles_per_image;

    /* workspace: U, then for each thread V, M and (filter pass) dU, each plane padded */
    job->u_plane = plane_stride_((long)K * C);
    job->v_plane = plane_stride_((long)C * job->group_tiles);
    job->m_plane = plane_stride_((long)K * job->group_tiles);
    run->thread_floats = 16 * (size_t)(job->v_plane + job->m_plane) +
                         (pass == WINO_FILTER ? 16 * (size_t)job->u_plane : 0);
    const size_t u_floats = pass == WINO_FORWARD ? 16 * (size_t)job->u_plane : 0;
    float *base = NULL;
    CIM_TRY(cim_cpu_context_workspace_(context, u_floats + run->threads * run->thread_floats,
                                       &base));
    job->U = base;
    run->scratch = base + u_floats;
    return CIM_OK;
}

/*
 * y = conv3x3(x, w) at stride 1 with padding (pad_h, pad_w); x is N x C x H x W and y is
 * N x K x P x Q. With flip, w is stored [C][K][3][3] and used rotated (backward data).
 */
cim_status cim_winograd_f23_(cim_cpu_context *context, int N, int C, int H, int W, int K,
                             int pad_h, int pad_w, const float *x, const float *w, int flip,
                             float *y) {
    wino_run_ run;
    CIM_TRY(plan_run_(context, WINO_FORWARD, N, C, H, W, K, pad_h, pad_w, &run));
    run.shape.w = w, run.shape.flip = flip;
    run.x = x, run.y = y;

    cim_parallel_for_(context->threads, K, weight_transform_, &run.shape);
    /* OpenBLAS single-threaded inside our threads; restored by the next BLAS call */
    openblas_set_num_threads(1);
    cim_parallel_for_(run.threads, run.threads, run_groups_, &run);
    cim_cpu_context_apply_threads_(context);
    return CIM_OK;
}

/*
 * dw (+)= dL/dw of y = conv3x3(x, w) at stride 1 with padding (pad_h, pad_w), given
 * dy = dL/dy; x is N x C x H x W, dy is N x K x P x Q and dw is K x C x 3 x 3.
 */
cim_status cim_winograd_f23_filter_(cim_cpu_context *context, int N, int C, int H, int W,
                                    int K, int pad_h, int pad_w, const float *x,
                                    const float *dy, float *dw, int accumulate) {
    wino_run_ run;
    CIM_TRY(plan_run_(context, WINO_FILTER, N, C, H, W, K, pad_h, pad_w, &run));
    run.x = x, run.dy = dy;

    openblas_set_num_threads(1);
    cim_parallel_for_(run.threads, run.threads, run_groups_, &run);
    if (run.threads > 1)
        cim_parallel_for_(context->threads, K * C, sum_filter_gradients_, &run);
    filter_out_ out = {&run, dw, accumulate};
    cim_parallel_for_(context->threads, K, filter_gradient_transform_, &out);
    cim_cpu_context_apply_threads_(context);
    return CIM_OK;
}
