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
 * elements load as 0. Per k step a work-item reads 4 + 4 shared values for 16 multiply-adds;
 * on a GPU the 16 work-items of a row read 16 neighbouring Bs values and one broadcast As
 * value. CPU devices take the fast path at the end of this file instead.
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

/* C[m][n] = alpha value + beta C[m][n] (C not read when beta == 0), at either layout */
INLINE void gemm_store_(GLOBAL CIM_REAL *c, const int m, const int n, const int M,
                        const int ldc, const int out_plane, const CIM_REAL alpha,
                        const CIM_REAL beta, const CIM_REAL value) {
    const long index = out_plane == 0
        ? (long)m * ldc + n
        : (long)(n / out_plane) * M * out_plane + (long)m * out_plane + n % out_plane;
    c[index] = beta == (CIM_REAL)0 ? alpha * value : alpha * value + beta * c[index];
}

KERNEL WORKGROUP_SIZE(16, 16, 1) void CIM_NAME(gemm_kernel)(
    const int trans_a, const int trans_b, const int M, const int N, const int K,
    const CIM_REAL alpha, GLOBAL const CIM_REAL *a, const long a_offset, const int lda,
    const long a_batch_stride, GLOBAL const CIM_REAL *b, const long b_offset, const int ldb,
    const long b_batch_stride, const CIM_REAL beta, GLOBAL CIM_REAL *c, const long c_offset,
    const int ldc, const long c_batch_stride, const int out_plane, const int lower_only) {
    const int tx = LOCAL_ID(0), ty = LOCAL_ID(1);
    const int tid = ty * GEMM_THREADS + tx;
    const int m0 = GROUP_ID(1) * GEMM_TILE, n0 = GROUP_ID(0) * GEMM_TILE;
    /* a tile above the diagonal of a lower-only update does no work, but its work-items
     * still pass the barriers (an early exit between them breaks PoCL's work-group loops) */
    const int skip = lower_only && n0 > m0 + GEMM_TILE - 1;
    const int k_end = skip ? 0 : K;
    /* at least one pass: PoCL runs the code after a loop with barriers twice when the loop
     * runs zero times (found with K < 16 and beta != 0); a pass over k_end = 0 loads zeros */
    const int k_tiles = max(1, (k_end + GEMM_TILE_K - 1) / GEMM_TILE_K);
    const long z = GROUP_ID(2);
    a += a_offset + z * a_batch_stride;
    b += b_offset + z * b_batch_stride;
    c += c_offset + z * c_batch_stride;

    LOCAL CIM_REAL As[GEMM_TILE_K][GEMM_TILE];
    LOCAL CIM_REAL Bs[GEMM_TILE_K][GEMM_TILE];
    CIM_REAL acc[GEMM_WORK][GEMM_WORK];
#pragma unroll
    for (int i = 0; i < GEMM_WORK; i++)
#pragma unroll
        for (int j = 0; j < GEMM_WORK; j++) acc[i][j] = (CIM_REAL)0;

    for (int tile = 0; tile < k_tiles; tile++) {
        const int k0 = tile * GEMM_TILE_K;
        /* load: element e of a tile is read along the matrix's contiguous direction */
#pragma unroll
        for (int l = 0; l < GEMM_WORK; l++) {
            const int e = tid + l * GEMM_THREADS * GEMM_THREADS;
            int m, k;
            if (trans_a) { k = e / GEMM_TILE; m = e % GEMM_TILE; }
            else { m = e / GEMM_TILE_K; k = e % GEMM_TILE_K; }
            const int gm = m0 + m, gk = k0 + k;
            CIM_REAL v = (CIM_REAL)0;
            if (gm < M && gk < k_end) v = trans_a ? a[gk * lda + gm] : a[gm * lda + gk];
            As[k][m] = v;

            int n;
            if (trans_b) { n = e / GEMM_TILE_K; k = e % GEMM_TILE_K; }
            else { k = e / GEMM_TILE; n = e % GEMM_TILE; }
            const int gn = n0 + n, gk2 = k0 + k;
            CIM_REAL w = (CIM_REAL)0;
            if (gn < N && gk2 < k_end) w = trans_b ? b[gn * ldb + gk2] : b[gk2 * ldb + gn];
            Bs[k][n] = w;
        }
        BARRIER_LOCAL();

        /* multiply: a 4 x 4 outer product per k */
#pragma unroll
        for (int k = 0; k < GEMM_TILE_K; k++) {
            CIM_REAL ra[GEMM_WORK], rb[GEMM_WORK];
#pragma unroll
            for (int i = 0; i < GEMM_WORK; i++) ra[i] = As[k][ty + i * GEMM_THREADS];
#pragma unroll
            for (int j = 0; j < GEMM_WORK; j++) rb[j] = Bs[k][tx + j * GEMM_THREADS];
#pragma unroll
            for (int i = 0; i < GEMM_WORK; i++)
#pragma unroll
                for (int j = 0; j < GEMM_WORK; j++) acc[i][j] += ra[i] * rb[j];
        }
        BARRIER_LOCAL();
    }

    /* store */
    if (skip) return;
    for (int i = 0; i < GEMM_WORK; i++) {
        const int m = m0 + ty + i * GEMM_THREADS;
        if (m >= M) continue;
        for (int j = 0; j < GEMM_WORK; j++) {
            const int n = n0 + tx + j * GEMM_THREADS;
            if (n < N) gemm_store_(c, m, n, M, ldc, out_plane, alpha, beta, acc[i][j]);
        }
    }
}

/* ---- OpenCL fast path for CPU devices ------------------------------------------------ *
 *
 * PoCL runs a work-group as a loop over its work-items and vectorises across them only when
 * that loop has no inner loop; the tiled kernel above has several, so on a CPU device it
 * runs scalar (about 2 GFLOP/s on two cores). These kernels vectorise inside one work-item
 * instead, with OpenCL vector types (which CUDA does not have, hence OpenCL only), and need
 * no shared memory: the CPU's caches hold the reused rows.
 *
 *   gemm_cpu_kernel     NN and TN: a work-item owns CPU_ROWS x 32 of C; per k it loads 32
 *                       values of one row of B as vectors and broadcasts CPU_ROWS values of
 *                       op(A) (a row-major A's column, or a transposed A's contiguous row).
 *                       k advances in chunks of CPU_K_CHUNK with a barrier after each: PoCL
 *                       runs the work-items of a group one after the other between barriers,
 *                       so the barrier makes the group's 8 row blocks share each chunk of the
 *                       B panel while it is in cache (without it a large K streams the panel,
 *                       a page per row, once per block: 30 instead of 130 GFLOP/s at 2048)
 *   gemm_nt_cpu_kernel  NT: a work-item owns 4 x 4 of C as dot products of rows of A and of
 *                       B, both contiguous in k, summed as vectors and added up at the end,
 *                       k in chunks with a barrier after each, as above
 *
 * TT is left to gemm_kernel (nothing in training uses it). Blocks that stick out of C take
 * a slower path with bounds checks. The same arguments as gemm_kernel; the host launches
 * them on CPU devices (opencl_ops.c). Summation order differs from the tiled kernel's, so
 * results agree to rounding, not bit for bit.
 */
#if defined(CIM_OPENCL)

#if defined(CIM_FP64)
#define CPU_VW 8
#define CPU_ROWS 4
typedef double8 cpu_vec_;
#define cpu_vload_ vload8
#define cpu_vstore_ vstore8
INLINE double cpu_sum_(const double8 v) {
    const double4 h = v.lo + v.hi;
    const double2 q = h.lo + h.hi;
    return q.x + q.y;
}
#else
#define CPU_VW 16
#define CPU_ROWS 8
typedef float16 cpu_vec_;
#define cpu_vload_ vload16
#define cpu_vstore_ vstore16
INLINE float cpu_sum_(const float16 v) {
    const float8 h = v.lo + v.hi;
    const float4 q = h.lo + h.hi;
    const float2 r = q.lo + q.hi;
    return r.x + r.y;
}
#endif
#define CPU_COLS 32
#define CPU_VECS (CPU_COLS / CPU_VW)
#define CPU_K_CHUNK 256
#define NT_BLOCK 4

KERNEL void CIM_NAME(gemm_cpu_kernel)(
    const int trans_a, const int trans_b, const int M, const int N, const int K,
    const CIM_REAL alpha, GLOBAL const CIM_REAL *a, const long a_offset, const int lda,
    const long a_batch_stride, GLOBAL const CIM_REAL *b, const long b_offset, const int ldb,
    const long b_batch_stride, const CIM_REAL beta, GLOBAL CIM_REAL *c, const long c_offset,
    const int ldc, const long c_batch_stride, const int out_plane, const int lower_only) {
    const int n0 = GLOBAL_ID(0) * CPU_COLS, m0 = GLOBAL_ID(1) * CPU_ROWS;
    /* no early exit: every work-item must reach the barriers below */
    const int active = n0 < N && m0 < M && !(lower_only && n0 > m0 + CPU_ROWS - 1);
    const int whole = m0 + CPU_ROWS <= M && n0 + CPU_COLS <= N;
    const long z = GLOBAL_ID(2);
    a += a_offset + z * a_batch_stride;
    b += b_offset + z * b_batch_stride;
    c += c_offset + z * c_batch_stride;

    cpu_vec_ acc[CPU_ROWS][CPU_VECS];
#pragma unroll
    for (int i = 0; i < CPU_ROWS; i++)
#pragma unroll
        for (int v = 0; v < CPU_VECS; v++) acc[i][v] = (cpu_vec_)((CIM_REAL)0);

    /* at least one chunk (see gemm_kernel on loops with barriers) */
    const int chunks = max(1, (K + CPU_K_CHUNK - 1) / CPU_K_CHUNK);
    for (int chunk = 0; chunk < chunks; chunk++) {
        const int k0 = chunk * CPU_K_CHUNK, k1 = min(K, k0 + CPU_K_CHUNK);
        if (active && whole) {
            /* a whole block: vector loads of B, broadcasts of A */
            GLOBAL const CIM_REAL *b_row = b + (long)k0 * ldb + n0;
            for (int k = k0; k < k1; k++, b_row += ldb) {
                cpu_vec_ bv[CPU_VECS];
#pragma unroll
                for (int v = 0; v < CPU_VECS; v++) bv[v] = cpu_vload_(v, b_row);
                CIM_REAL av[CPU_ROWS];
                if (trans_a) {
#pragma unroll
                    for (int i = 0; i < CPU_ROWS; i++) av[i] = a[(long)k * lda + m0 + i];
                } else {
#pragma unroll
                    for (int i = 0; i < CPU_ROWS; i++) av[i] = a[(long)(m0 + i) * lda + k];
                }
#pragma unroll
                for (int i = 0; i < CPU_ROWS; i++)
#pragma unroll
                    for (int v = 0; v < CPU_VECS; v++) acc[i][v] += av[i] * bv[v];
            }
        } else if (active) {
            /* an edge block: out-of-range elements load as 0 */
            for (int k = k0; k < k1; k++) {
                CIM_REAL row[CPU_COLS];
                for (int j = 0; j < CPU_COLS; j++)
                    row[j] = n0 + j < N ? b[(long)k * ldb + n0 + j] : (CIM_REAL)0;
                for (int i = 0; i < CPU_ROWS; i++) {
                    const int m = m0 + i;
                    const CIM_REAL av = m >= M ? (CIM_REAL)0
                        : trans_a ? a[(long)k * lda + m] : a[(long)m * lda + k];
                    for (int v = 0; v < CPU_VECS; v++) acc[i][v] += av * cpu_vload_(v, row);
                }
            }
        }
        /* the work-group's blocks advance through k together (see above) */
        BARRIER_LOCAL();
    }

    if (!active) return;
    for (int i = 0; i < CPU_ROWS && m0 + i < M; i++) {
        CIM_REAL row[CPU_COLS];
#pragma unroll
        for (int v = 0; v < CPU_VECS; v++) cpu_vstore_(acc[i][v], v, row);
        for (int j = 0; j < CPU_COLS && n0 + j < N; j++)
            gemm_store_(c, m0 + i, n0 + j, M, ldc, out_plane, alpha, beta, row[j]);
    }
}

KERNEL void CIM_NAME(gemm_nt_cpu_kernel)(
    const int trans_a, const int trans_b, const int M, const int N, const int K,
    const CIM_REAL alpha, GLOBAL const CIM_REAL *a, const long a_offset, const int lda,
    const long a_batch_stride, GLOBAL const CIM_REAL *b, const long b_offset, const int ldb,
    const long b_batch_stride, const CIM_REAL beta, GLOBAL CIM_REAL *c, const long c_offset,
    const int ldc, const long c_batch_stride, const int out_plane, const int lower_only) {
    const int n0 = GLOBAL_ID(0) * NT_BLOCK, m0 = GLOBAL_ID(1) * NT_BLOCK;
    /* no early exit: every work-item must reach the barriers below */
    const int active = n0 < N && m0 < M && !(lower_only && n0 > m0 + NT_BLOCK - 1);
    const long z = GLOBAL_ID(2);
    a += a_offset + z * a_batch_stride;
    b += b_offset + z * b_batch_stride;
    c += c_offset + z * c_batch_stride;

    /* rows past the edge repeat the last one; their results are not stored */
    GLOBAL const CIM_REAL *a_rows[NT_BLOCK], *b_rows[NT_BLOCK];
#pragma unroll
    for (int i = 0; i < NT_BLOCK; i++) {
        a_rows[i] = a + (long)clamp(m0 + i, 0, M - 1) * lda;
        b_rows[i] = b + (long)clamp(n0 + i, 0, N - 1) * ldb;
    }

    /* whole vectors of k, a chunk at a time for the work-group (as gemm_cpu_kernel) */
    cpu_vec_ acc[NT_BLOCK][NT_BLOCK];
#pragma unroll
    for (int i = 0; i < NT_BLOCK; i++)
#pragma unroll
        for (int j = 0; j < NT_BLOCK; j++) acc[i][j] = (cpu_vec_)((CIM_REAL)0);
    const int k_vectors = K / CPU_VW * CPU_VW;
    const int chunks = max(1, (k_vectors + CPU_K_CHUNK - 1) / CPU_K_CHUNK);   /* >= 1: as above */
    for (int chunk = 0; chunk < chunks; chunk++) {
        const int k0 = chunk * CPU_K_CHUNK, k1 = min(k_vectors, k0 + CPU_K_CHUNK);
        for (int k = k0; active && k < k1; k += CPU_VW) {
            cpu_vec_ av[NT_BLOCK], bv[NT_BLOCK];
#pragma unroll
            for (int i = 0; i < NT_BLOCK; i++) {
                av[i] = cpu_vload_(0, a_rows[i] + k);
                bv[i] = cpu_vload_(0, b_rows[i] + k);
            }
#pragma unroll
            for (int i = 0; i < NT_BLOCK; i++)
#pragma unroll
                for (int j = 0; j < NT_BLOCK; j++) acc[i][j] += av[i] * bv[j];
        }
        BARRIER_LOCAL();
    }

    /* the rest of k, then the store */
    if (!active) return;
    for (int i = 0; i < NT_BLOCK && m0 + i < M; i++) {
        for (int j = 0; j < NT_BLOCK && n0 + j < N; j++) {
            CIM_REAL sum = cpu_sum_(acc[i][j]);
            for (int k = k_vectors; k < K; k++) sum += a_rows[i][k] * b_rows[j][k];
            gemm_store_(c, m0 + i, n0 + j, M, ldc, out_plane, alpha, beta, sum);
        }
    }
}

#endif /* CIM_OPENCL */
