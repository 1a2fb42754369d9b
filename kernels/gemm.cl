/*
 * gemm.cl: tiled GEMM, C = alpha op(A) op(B) + beta C, in CIM_REAL (float, or double in the
 * fp64 program), batched with strides.
 *
 * Shapes: op(A) is M x K, op(B) is K x N, C is M x N, all row-major with leading dimensions
 * lda, ldb, ldc, as in ckernels.h. Matrix z of a batch (grid dimension 2) starts at
 * offset + z * batch_stride elements of each buffer (offsets let the host address a
 * submatrix, which OpenCL buffers cannot do by pointer arithmetic).
 *
 * Tiling: a 16 x 16 work-group computes a 64 x 64 tile of C, each work-item a 4 x 4 block
 * (rows ty + 16 i, columns tx + 16 j, so neighbouring work-items touch neighbouring
 * columns). K advances 16 at a time through two shared tiles, As[k][m] and Bs[k][n]; each
 * work-item loads 4 elements of each, the transposes are taken at load time, out-of-range
 * elements load as 0. Per k step a work-item reads 4 + 4 shared values for 16 multiply-adds.
 * On PoCL (a CPU device) the 16 work-items of a row become one 16-lane vector: Bs reads are
 * contiguous and As reads are broadcasts.
 *
 * Store: beta == 0 never reads C (C may hold NaN), as BLAS promises. Two variants of where
 * C[m][n] goes:
 *   out_plane == 0   c[m ldc + n]
 *   out_plane == L   c[(n / L) (M L) + m L + n % L]: the columns are (image, position)
 *                    pairs and C is written as NCHW images (the convolution's output, with
 *                    M = output channels and L = P Q), saving a reordering pass
 * lower_only != 0 skips tiles wholly above the diagonal (the symmetric rank-k update of the
 * blocked Cholesky in logdet.cl, which reads the lower triangle only).
 *
 * Why our own kernel and not CLBlast: CLBlast would be one more library to find at run time
 * (it is not part of the ICD loader and is rarely installed next to a driver), it has no
 * NCHW store or lower-only variant, and it has no CUDA twin; this body compiles for both
 * APIs through the preludes, so CI on PoCL runs the same GEMM the CUDA path will. The CUDA
 * backend may still call cuBLAS for plain GEMMs; this kernel is then its reference.
 */

#define GEMM_TILE 64
#define GEMM_TILE_K 16
#define GEMM_THREADS 16                       /* per dimension: 16 x 16 work-items */
#define GEMM_WORK (GEMM_TILE / GEMM_THREADS)  /* 4 x 4 outputs per work-item */

KERNEL WORKGROUP_SIZE(16, 16, 1) void CIM_NAME(gemm_kernel)(
    const int trans_a, const int trans_b, const int M, const int N, const int K,
    const CIM_REAL alpha, GLOBAL const CIM_REAL *a, const long a_offset, const int lda,
    const long a_batch_stride, GLOBAL const CIM_REAL *b, const long b_offset, const int ldb,
    const long b_batch_stride, const CIM_REAL beta, GLOBAL CIM_REAL *c, const long c_offset,
    const int ldc, const long c_batch_stride, const int out_plane, const int lower_only) {
    const int tx = LOCAL_ID(0), ty = LOCAL_ID(1);
    const int tid = ty * GEMM_THREADS + tx;
    const int m0 = GROUP_ID(1) * GEMM_TILE, n0 = GROUP_ID(0) * GEMM_TILE;
    if (lower_only && n0 > m0 + GEMM_TILE - 1) return;   /* the whole work-group */
    const long z = GROUP_ID(2);
    a += a_offset + z * a_batch_stride;
    b += b_offset + z * b_batch_stride;
    c += c_offset + z * c_batch_stride;

    LOCAL CIM_REAL As[GEMM_TILE_K][GEMM_TILE];
    LOCAL CIM_REAL Bs[GEMM_TILE_K][GEMM_TILE];
    CIM_REAL acc[GEMM_WORK][GEMM_WORK];
    for (int i = 0; i < GEMM_WORK; i++)
        for (int j = 0; j < GEMM_WORK; j++) acc[i][j] = (CIM_REAL)0;

    for (int k0 = 0; k0 < K; k0 += GEMM_TILE_K) {
        /* load: element e of a tile is read along the matrix's contiguous direction */
        for (int l = 0; l < GEMM_WORK; l++) {
            const int e = tid + l * GEMM_THREADS * GEMM_THREADS;
            int m, k;
            if (trans_a) { k = e / GEMM_TILE; m = e % GEMM_TILE; }
            else { m = e / GEMM_TILE_K; k = e % GEMM_TILE_K; }
            const int gm = m0 + m, gk = k0 + k;
            CIM_REAL v = (CIM_REAL)0;
            if (gm < M && gk < K) v = trans_a ? a[gk * lda + gm] : a[gm * lda + gk];
            As[k][m] = v;

            int n;
            if (trans_b) { n = e / GEMM_TILE_K; k = e % GEMM_TILE_K; }
            else { k = e / GEMM_TILE; n = e % GEMM_TILE; }
            const int gn = n0 + n, gk2 = k0 + k;
            CIM_REAL w = (CIM_REAL)0;
            if (gn < N && gk2 < K) w = trans_b ? b[gn * ldb + gk2] : b[gk2 * ldb + gn];
            Bs[k][n] = w;
        }
        BARRIER_LOCAL();

        /* multiply: a 4 x 4 outer product per k */
        for (int k = 0; k < GEMM_TILE_K; k++) {
            CIM_REAL ra[GEMM_WORK], rb[GEMM_WORK];
            for (int i = 0; i < GEMM_WORK; i++) ra[i] = As[k][ty + i * GEMM_THREADS];
            for (int j = 0; j < GEMM_WORK; j++) rb[j] = Bs[k][tx + j * GEMM_THREADS];
            for (int i = 0; i < GEMM_WORK; i++)
                for (int j = 0; j < GEMM_WORK; j++) acc[i][j] += ra[i] * rb[j];
        }
        BARRIER_LOCAL();
    }

    /* store */
    for (int i = 0; i < GEMM_WORK; i++) {
        const int m = m0 + ty + i * GEMM_THREADS;
        if (m >= M) continue;
        for (int j = 0; j < GEMM_WORK; j++) {
            const int n = n0 + tx + j * GEMM_THREADS;
            if (n >= N) continue;
            const long index = out_plane == 0
                ? (long)m * ldc + n
                : (long)(n / out_plane) * M * out_plane + (long)m * out_plane + n % out_plane;
            const CIM_REAL value = alpha * acc[i][j];
            c[index] = beta == (CIM_REAL)0 ? value : value + beta * c[index];
        }
    }
}
