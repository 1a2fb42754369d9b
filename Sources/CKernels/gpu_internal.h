/*
 * gpu_internal.h: what the two GPU APIs share. gpu_ops.c holds every op once: the argument
 * checks, the grids and the sequence of kernels from kernels/ each op queues. It reaches the
 * device through a small driver table that opencl_context.c (OpenCL) and cuda_context.c
 * (CUDA driver API) fill: launch a kernel, move memory, and optionally run a GEMM in a
 * vendor library (cuBLAS) instead of the tiled kernel of gemm.cl.
 *
 * Why one ops file: the kernels are one body for both APIs (kernels/README.md), so the host
 * side that sequences them is too. Every op path CI runs on PoCL is the path CUDA runs,
 * which is the only way a machine without an NVIDIA GPU checks the CUDA backend's logic.
 *
 * Programs (each the API's prelude, common.cl, then its files; built once per context and
 * cached on disk by kernel_cache.c):
 *   f32   gemm.cl conv2d.cl batchnorm.cl elementwise.cl pooling.cl normalize.cl sgd.cl
 *         with CIM_REAL = float
 *   f64   gemm.cl logdet.cl batchnorm_sync.cl with CIM_REAL = double and CIM_FP64, built
 *         only on a device with fp64; without it the f64 kernels stay missing and the ops
 *         that need them report CIM_ERROR_UNAVAILABLE
 *
 * Device memory is a `cim_gpu_mem_`: an OpenCL cl_mem, or a CUDA device address, both the
 * size of a pointer. A kernel argument is the address and size of its value, which is what
 * clSetKernelArg and cuLaunchKernel's parameter array both take.
 */
#ifndef CKERNELS_GPU_INTERNAL_H
#define CKERNELS_GPU_INTERNAL_H

#include <stdint.h>

#include "internal.h"

enum { CIM_GPU_PROGRAM_F32 = 0, CIM_GPU_PROGRAM_F64 = 1, CIM_GPU_PROGRAM_COUNT = 2 };

/* X(id, program, kernel name, fixed work-group size or 0) */
#define CIM_GPU_KERNELS(X)                                                                  \
    X(GEMM_F32, CIM_GPU_PROGRAM_F32, "gemm_kernel_f32", 256)                                 \
    X(GEMM_CPU_F32, CIM_GPU_PROGRAM_F32, "gemm_cpu_kernel_f32", 0)                           \
    X(GEMM_NT_CPU_F32, CIM_GPU_PROGRAM_F32, "gemm_nt_cpu_kernel_f32", 0)                     \
    X(IM2COL, CIM_GPU_PROGRAM_F32, "im2col_kernel", 0)                                       \
    X(COL2IM, CIM_GPU_PROGRAM_F32, "col2im_kernel", 0)                                       \
    X(NCHW_TO_ROWS, CIM_GPU_PROGRAM_F32, "nchw_to_rows_kernel", 0)                           \
    X(BN_FORWARD_TRAIN, CIM_GPU_PROGRAM_F32, "batchnorm_forward_train_kernel", 256)          \
    X(BN_FORWARD_EVAL, CIM_GPU_PROGRAM_F32, "batchnorm_forward_eval_kernel", 0)              \
    X(BN_BACKWARD, CIM_GPU_PROGRAM_F32, "batchnorm_backward_kernel", 256)                    \
    X(CHANNEL_AFFINE, CIM_GPU_PROGRAM_F32, "channel_affine_kernel", 0)                       \
    X(BN_BACKWARD_APPLY, CIM_GPU_PROGRAM_F32, "batchnorm_backward_apply_kernel", 0)          \
    X(RELU_FORWARD, CIM_GPU_PROGRAM_F32, "relu_forward_kernel", 0)                           \
    X(RELU_BACKWARD, CIM_GPU_PROGRAM_F32, "relu_backward_kernel", 0)                         \
    X(ADD, CIM_GPU_PROGRAM_F32, "add_kernel", 0)                                             \
    X(AXPY, CIM_GPU_PROGRAM_F32, "axpy_kernel", 0)                                           \
    X(SCALE, CIM_GPU_PROGRAM_F32, "scale_kernel", 0)                                         \
    X(BIAS_ADD, CIM_GPU_PROGRAM_F32, "bias_add_kernel", 0)                                   \
    X(COLUMN_SUM, CIM_GPU_PROGRAM_F32, "column_sum_kernel", 0)                               \
    X(GAP_FORWARD, CIM_GPU_PROGRAM_F32, "global_avg_pool_forward_kernel", 0)                 \
    X(GAP_BACKWARD, CIM_GPU_PROGRAM_F32, "global_avg_pool_backward_kernel", 0)               \
    X(MAXPOOL_FORWARD, CIM_GPU_PROGRAM_F32, "max_pool2d_forward_kernel", 0)                  \
    X(MAXPOOL_BACKWARD, CIM_GPU_PROGRAM_F32, "max_pool2d_backward_kernel", 0)                \
    X(L2_FORWARD, CIM_GPU_PROGRAM_F32, "l2_normalize_forward_kernel", 64)                    \
    X(L2_BACKWARD, CIM_GPU_PROGRAM_F32, "l2_normalize_backward_kernel", 64)                  \
    X(SGD, CIM_GPU_PROGRAM_F32, "sgd_update_kernel", 0)                                      \
    X(GEMM_F64, CIM_GPU_PROGRAM_F64, "gemm_kernel_f64", 256)                                 \
    X(GEMM_CPU_F64, CIM_GPU_PROGRAM_F64, "gemm_cpu_kernel_f64", 0)                           \
    X(GEMM_NT_CPU_F64, CIM_GPU_PROGRAM_F64, "gemm_nt_cpu_kernel_f64", 0)                     \
    X(CHOLESKY_BLOCK, CIM_GPU_PROGRAM_F64, "cholesky_block_kernel", 64)                      \
    X(CHOLESKY_PANEL, CIM_GPU_PROGRAM_F64, "cholesky_panel_kernel", 0)                       \
    X(LOGDET_SUM, CIM_GPU_PROGRAM_F64, "logdet_sum_kernel", 64)                              \
    X(TRIANGULAR_INVERSE, CIM_GPU_PROGRAM_F64, "triangular_block_inverse_kernel", 64)        \
    X(CHANNEL_SUMS, CIM_GPU_PROGRAM_F64, "channel_sums_kernel", 256)                         \
    X(BN_BACKWARD_SUMS, CIM_GPU_PROGRAM_F64, "batchnorm_backward_sums_kernel", 256)

#define CIM_GPU_KERNEL_ID_(id, program, name, group) CIM_GPU_K_##id,
typedef enum cim_gpu_kernel_id_ {
    CIM_GPU_KERNELS(CIM_GPU_KERNEL_ID_) CIM_GPU_KERNEL_COUNT
} cim_gpu_kernel_id_;
#undef CIM_GPU_KERNEL_ID_

/* The name, program and fixed work-group size (0: any) of each kernel, by id. */
extern const char *const cim_gpu_kernel_names_[CIM_GPU_KERNEL_COUNT];
extern const int cim_gpu_kernel_programs_[CIM_GPU_KERNEL_COUNT];
extern const size_t cim_gpu_kernel_groups_[CIM_GPU_KERNEL_COUNT];

/* The build options and files (after the prelude and common.cl) of each program. */
typedef struct cim_gpu_program_spec_ {
    const char *label;
    const char *options;
    const char *files[10];   /* NULL-terminated */
} cim_gpu_program_spec_;

extern const cim_gpu_program_spec_ cim_gpu_programs_[CIM_GPU_PROGRAM_COUNT];

/* Scratch buffers, grown on demand and reused by every op on the in-order queue. */
enum {
    CIM_GPU_SCRATCH_COL = 0,      /* conv: im2col patches / their gradient; logdet: factors */
    CIM_GPU_SCRATCH_ROWS = 1,     /* conv: dy as K x (G P Q); logdet: L^-1 */
    CIM_GPU_SCRATCH_INFO = 2,     /* logdet: per-matrix failure codes */
    CIM_GPU_SCRATCH_PANEL = 3,    /* logdet: X_ii L_ik of the blocked inverse */
    CIM_GPU_SCRATCH_COUNT = 4,
};

typedef void *cim_gpu_mem_;

/* A kernel argument: its size and the address of its value (for a buffer, of its handle). */
typedef struct cim_gpu_arg_ {
    size_t size;
    const void *value;
} cim_gpu_arg_;

#define KARG(x) ((cim_gpu_arg_){sizeof(x), &(x)})
/* The argument array and its length, for cim_gpu_launch_. */
#define KARGS(...)                                                                          \
    (const cim_gpu_arg_[]){__VA_ARGS__},                                                    \
        (int)(sizeof((const cim_gpu_arg_[]){__VA_ARGS__}) / sizeof(cim_gpu_arg_))

/*
 * One GEMM as gemm.cl computes it, row-major: for z in [0, batch),
 *   C_z = alpha op(A_z) op(B_z) + beta C_z,  X_z = x + x_offset + z x_stride (elements)
 * out_plane = L writes C's column n to image n / L of an NCHW tensor (the convolution's
 * output; see gemm.cl); lower_only allows skipping tiles above the diagonal.
 */
typedef struct cim_gpu_gemm_ {
    int trans_a, trans_b, m, n, k;
    cim_gpu_mem_ a, b, c;
    int64_t a_offset, b_offset, c_offset;
    int lda, ldb, ldc;
    int64_t a_stride, b_stride, c_stride;
    int batch, out_plane, lower_only;
} cim_gpu_gemm_;

typedef struct cim_gpu cim_gpu;

/* What an API provides to gpu_ops.c. Every call is queued in order on the device's one
 * queue (stream) unless it says it waits. */
typedef struct cim_gpu_driver_ {
    const char *api;   /* "OpenCL" or "CUDA", for messages */
    cim_status (*launch)(cim_gpu *gpu, cim_gpu_kernel_id_ id, int dimensions,
                         const size_t global[3], const size_t local[3],
                         const cim_gpu_arg_ *args, int count);
    /* A GEMM in a vendor library; NULL runs gemm.cl's kernels */
    cim_status (*gemm)(cim_gpu *gpu, int f64, const cim_gpu_gemm_ *g, double alpha,
                       double beta);
    cim_status (*allocate)(cim_gpu *gpu, size_t bytes, cim_gpu_mem_ *out);
    void (*release)(cim_gpu *gpu, cim_gpu_mem_ memory);
    /* write and read wait until the bytes have moved */
    cim_status (*write)(cim_gpu *gpu, cim_gpu_mem_ memory, const void *source, size_t bytes);
    cim_status (*read)(cim_gpu *gpu, cim_gpu_mem_ memory, void *destination, size_t bytes);
    cim_status (*copy)(cim_gpu *gpu, cim_gpu_mem_ source, cim_gpu_mem_ destination,
                       size_t bytes);
    /* pattern_bytes is 1, 2, 4 or 8 and divides bytes (checked by the caller) */
    cim_status (*fill)(cim_gpu *gpu, cim_gpu_mem_ memory, const void *pattern,
                       size_t pattern_bytes, size_t bytes);
    cim_status (*finish)(cim_gpu *gpu);
} cim_gpu_driver_;

/* The device-independent part of an OpenCL or CUDA context: its first member. */
struct cim_gpu {
    const cim_gpu_driver_ *driver;
    char name[256];            /* the device's name, for messages */
    char label[32];            /* "opencl:0", "cuda:1" */
    int has_fp64;
    cim_gpu_gemm_kernels gemm_kernels;   /* gemm.cl's kernels to run: TILED or CPU */
    long conv_scratch_floats;            /* the patch and row matrices of one conv pass */
    cim_gpu_mem_ scratch[CIM_GPU_SCRATCH_COUNT];
    size_t scratch_bytes[CIM_GPU_SCRATCH_COUNT];
};

/* Floats of scratch one convolution pass may use for its patches and rows (128 MiB). */
enum { CIM_GPU_DEFAULT_CONV_SCRATCH_FLOATS = 32 << 20 };

/* The work-group size every device must allow (the batch-norm and GEMM kernels use it). */
enum { CIM_GPU_REQUIRED_GROUP_SIZE = 256 };

/*
 * Queues kernel `id` over a grid of `global` work-items per dimension (unused dimensions 1)
 * in work-groups of `local`; each global size is rounded up to a multiple of the local one
 * (kernels check their bounds). A grid with a zero dimension launches nothing.
 */
cim_status cim_gpu_launch_(cim_gpu *gpu, cim_gpu_kernel_id_ id, int dimensions,
                           const size_t global[3], const size_t local[3],
                           const cim_gpu_arg_ *args, int count);

/* A work-group shape of at most 256 work-items for a grid of `global` (elementwise kernels
 * of 2 or 3 dimensions): dimension 0 first, powers of two. */
void cim_gpu_local_shape_(int dimensions, const size_t global[3], size_t local[3]);

/* Scratch buffer `slot` of at least `bytes` (contents undefined). */
cim_status cim_gpu_scratch_(cim_gpu *gpu, int slot, size_t bytes, cim_gpu_mem_ *out);

/* Releases the scratch buffers (when a context is destroyed). */
void cim_gpu_release_scratch_(cim_gpu *gpu);

/* CIM_ERROR_UNAVAILABLE naming the device, when the fp64 program is missing. */
cim_status cim_gpu_require_fp64_(const cim_gpu *gpu, const char *op);

/* ---- program sources and the on-disk cache of built programs (kernel_cache.c) --------- */

enum { CIM_GPU_MAX_PIECES = 32 };

/* The strings of one program: "#line 1 <file>" before each file, so build logs name the
 * file and line. */
typedef struct cim_program_text_ {
    int count;
    const char *strings[CIM_GPU_MAX_PIECES];
    size_t lengths[CIM_GPU_MAX_PIECES];
    char line_directives[CIM_GPU_MAX_PIECES / 2][96];
    char file_list[512];
} cim_program_text_;

/* prelude, common.cl, then `files` (NULL-terminated, may be NULL), then `extra` (may be
 * NULL) as the file `extra_name`. */
cim_status cim_program_text_make_(const char *prelude, const char *const *files,
                                  const char *extra_name, const char *extra,
                                  cim_program_text_ *text);

/* The text as one malloc'ed NUL-terminated string (NVRTC takes one). */
cim_status cim_program_text_join_(const cim_program_text_ *text, char **out);

/* 64-bit FNV-1a; strings hash with their NUL, so ("ab", "c") and ("a", "bc") differ. */
uint64_t cim_fnv1a_(uint64_t hash, const void *data, size_t size);
uint64_t cim_fnv1a_string_(uint64_t hash, const char *text);
uint64_t cim_fnv1a_start_(void);

/* `requested`, else $XDG_CACHE_HOME/cim-train/<api>, else ~/.cache/cim-train/<api>; an
 * empty result means no cache. */
void cim_cache_directory_(const char *requested, const char *api, char *out, size_t size);

/*
 * Entries are <directory>/<key as 16 hex digits>.bin: a header (an 8-byte magic naming the
 * API, a format version, the key, the size and FNV-1a checksum of what follows) and the
 * built program. cim_cache_read_ gives CIM_OK with *bytes (malloc'ed), CIM_ERROR_UNAVAILABLE
 * when there is no entry and CIM_ERROR_INTERNAL when it is damaged. cim_cache_write_ writes
 * a temporary file and renames it, so a reader never sees half an entry.
 */
cim_status cim_cache_read_(const char *directory, const char magic[8], uint64_t key,
                           unsigned char **bytes, size_t *size);
cim_status cim_cache_write_(const char *directory, const char magic[8], uint64_t key,
                            const void *bytes, size_t size);

#endif /* CKERNELS_GPU_INTERNAL_H */
