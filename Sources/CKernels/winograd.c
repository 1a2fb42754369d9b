/*
 * winograd.c: 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin and Gray 2015, "Fast Algorithms for Convolutional Neural Networks").
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
 *   M_e [K x T] = U_e [K x C] * V_e [C x T]          (T = tiles of a group of images)
 *
 * and Y per (k, tile) is A^T M A. That is 16 C K T multiply-adds where im2col does
 * 36 C K T: 2.25 times fewer. The transforms use only 0, ±1 and ±1/2, so rounding stays
 * close to direct convolution's (checked against the fp64 reference in the tests).
 *
 * Backward data of a 3x3 stride-1 convolution with padding p is itself such a convolution:
 * of dy, with padding 2 - p, and weights swapped in (k, c) and rotated 180 degrees, which
 * the weight transform reads in place (`flip`). Backward filter stays on im2col.
 *
 * Work split: weight and input transforms over channels, output transform over output
 * channels (our threads), the 16 GEMMs through OpenBLAS threads.
 */
#include <string.h>

#include "internal.h"

typedef struct wino_job_ {
    /* geometry of the convolution being computed (after any backward-data rewrite) */
    int images, C, H, W, K, P, Q, pad_h, pad_w;
    int tiles_h, tiles_w;
    long T;               /* tiles in this group */
    long group_tiles;     /* tiles of a full group: the row stride of V and M */
    const float *x;       /* first image of the group, [images][C][H][W] */
    const float *w;       /* raw weights */
    int flip;             /* 0: w is [K][C][3][3]; 1: w is [C][K][3][3], rotated */
    float *U, *V, *M;
    float *y;             /* first image of the group, [images][K][P][Q] */
} wino_job_;

/* U_e[k][c] = (G g G^T)_e for every (k, c). */
static void weight_transform_(void *opaque, int k_begin, int k_end) {
    const wino_job_ *job = opaque;
    const long plane = (long)job->K * job->C;
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
            for (int e = 0; e < 16; e++) job->U[e * plane + (long)k * job->C + c] = u[e / 4][e % 4];
        }
    }
}

/* V_e[c][t] = (B^T d B)_e for every channel c and tile t of the group. */
static void input_transform_(void *opaque, int c_begin, int c_end) {
    const wino_job_ *job = opaque;
    const long plane = (long)job->C * job->group_tiles;
    const long HW = (long)job->H * job->W;
    for (int c = c_begin; c < c_end; c++) {
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
static void output_transform_(void *opaque, int k_begin, int k_end) {
    const wino_job_ *job = opaque;
    const long plane = (long)job->K * job->group_tiles;
    const long PQ = (long)job->P * job->Q;
    for (int k = k_begin; k < k_end; k++) {
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

/*
 * Each thread takes whole groups of images through all three stages on its own, with
 * single-threaded GEMMs, so a group's V and M stay in that core's cache between the stages
 * instead of streaming through memory three times; a group is sized to about
 * WINOGRAD_GROUP_FLOATS of V and M together (at least one image).
 */
enum { WINOGRAD_GROUP_FLOATS = 512 << 10 };

typedef struct wino_run_ {
    wino_job_ shape;      /* geometry, U and weights; per-group fields unset */
    int N;
    long group, tiles_per_image;
    size_t group_floats;  /* V + M of one thread */
    float *scratch;       /* threads x group_floats */
    const float *x;
    float *y;
    int threads;
} wino_run_;

static void run_groups_(void *opaque, int thread_begin, int thread_end) {
    const wino_run_ *run = opaque;
    const long groups = (run->N + run->group - 1) / run->group;
    for (int thread = thread_begin; thread < thread_end; thread++) {
        wino_job_ job = run->shape;
        job.V = run->scratch + (size_t)thread * run->group_floats;
        job.M = job.V + (((size_t)16 * job.C * job.group_tiles + 15) & ~(size_t)15);
        for (long g = groups * thread / run->threads; g < groups * (thread + 1) / run->threads;
             g++) {
            const int n0 = (int)(g * run->group);
            job.images = run->N - n0 < run->group ? run->N - n0 : (int)run->group;
            job.T = job.images * run->tiles_per_image;
            job.x = run->x + (long)n0 * job.C * job.H * job.W;
            job.y = run->y + (long)n0 * job.K * job.P * job.Q;

            /* transform the input tiles */
            input_transform_(&job, 0, job.C);

            /* 16 GEMMs: M_e = U_e V_e */
            for (int e = 0; e < 16; e++)
                cblas_sgemm(CIM_CBLAS_ROW_MAJOR, CIM_CBLAS_NO_TRANS, CIM_CBLAS_NO_TRANS, job.K,
                            (int)job.T, job.C, 1.0f, job.U + (long)e * job.K * job.C, job.C,
                            job.V + (long)e * job.C * job.group_tiles, (int)job.group_tiles,
                            0.0f, job.M + (long)e * job.K * job.group_tiles,
                            (int)job.group_tiles);

            /* back to output tiles */
            output_transform_(&job, 0, job.K);
        }
    }
}

/*
 * y = conv3x3(x, w) at stride 1 with padding (pad_h, pad_w); x is N x C x H x W and y is
 * N x K x P x Q. With flip, w is stored [C][K][3][3] and used rotated (backward data).
 */
cim_status cim_winograd_f23_(cim_cpu_context *context, int N, int C, int H, int W, int K,
                             int pad_h, int pad_w, const float *x, const float *w, int flip,
                             float *y) {
    wino_run_ run = {0};
    wino_job_ *job = &run.shape;
    job->C = C, job->H = H, job->W = W, job->K = K, job->pad_h = pad_h, job->pad_w = pad_w;
    job->P = H + 2 * pad_h - 2;
    job->Q = W + 2 * pad_w - 2;
    job->tiles_h = (job->P + 1) / 2;
    job->tiles_w = (job->Q + 1) / 2;
    job->w = w, job->flip = flip;
    run.N = N, run.x = x, run.y = y;
    run.tiles_per_image = (long)job->tiles_h * job->tiles_w;

    /* images per group, and threads that get at least one group */
    const long floats_per_image = 16 * run.tiles_per_image * (long)(C + K);
    run.group = WINOGRAD_GROUP_FLOATS / floats_per_image;
    if (run.group < 1) run.group = 1;
    if (run.group > N) run.group = N;
    const long groups = (N + run.group - 1) / run.group;
    run.threads = context->threads < groups ? context->threads : (int)groups;
    job->group_tiles = run.group * run.tiles_per_image;

    /* workspace: U, then V and M for each thread, each 64-byte aligned */
    const size_t u_floats = ((size_t)16 * K * C + 15) & ~(size_t)15;
    const size_t v_floats = ((size_t)16 * C * job->group_tiles + 15) & ~(size_t)15;
    const size_t m_floats = ((size_t)16 * K * job->group_tiles + 15) & ~(size_t)15;
    run.group_floats = v_floats + m_floats;
    float *base = NULL;
    CIM_TRY(cim_cpu_context_workspace_(context, u_floats + run.threads * run.group_floats,
                                       &base));
    job->U = base;
    run.scratch = base + u_floats;

    cim_parallel_for_(context->threads, K, weight_transform_, job);
    /* OpenBLAS single-threaded inside our threads; restored by the next BLAS call */
    openblas_set_num_threads(1);
    cim_parallel_for_(run.threads, run.threads, run_groups_, &run);
    cim_cpu_context_apply_threads_(context);
    return CIM_OK;
}
