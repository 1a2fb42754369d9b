/*
 * opencl_internal.h: what opencl_context.c and opencl_ops.c share: the context, the table of
 * programs and kernels, scratch memory and the launch helper.
 *
 * Programs (each the prelude, common.cl, then its files; built once per context, cached):
 *   f32   gemm.cl conv2d.cl batchnorm.cl elementwise.cl pooling.cl normalize.cl sgd.cl
 *         with CIM_REAL = float
 *   f64   gemm.cl logdet.cl batchnorm_sync.cl with CIM_REAL = double and CIM_FP64, built
 *         only on a device with fp64; without it the f64 kernels stay NULL and the ops that
 *         need them report CIM_ERROR_UNAVAILABLE
 */
#ifndef CKERNELS_OPENCL_INTERNAL_H
#define CKERNELS_OPENCL_INTERNAL_H

#include "opencl_api.h"

enum { CIM_CL_PROGRAM_F32 = 0, CIM_CL_PROGRAM_F64 = 1, CIM_CL_PROGRAM_COUNT = 2 };

/* X(id, program, kernel name, fixed work-group size or 0) */
#define CIM_CL_KERNELS(X)                                                                   \
    X(GEMM_F32, CIM_CL_PROGRAM_F32, "gemm_kernel_f32", 256)                                  \
    X(GEMM_CPU_F32, CIM_CL_PROGRAM_F32, "gemm_cpu_kernel_f32", 0)                            \
    X(GEMM_NT_CPU_F32, CIM_CL_PROGRAM_F32, "gemm_nt_cpu_kernel_f32", 0)                      \
    X(IM2COL, CIM_CL_PROGRAM_F32, "im2col_kernel", 0)                                        \
    X(COL2IM, CIM_CL_PROGRAM_F32, "col2im_kernel", 0)                                        \
    X(NCHW_TO_ROWS, CIM_CL_PROGRAM_F32, "nchw_to_rows_kernel", 0)                            \
    X(BN_FORWARD_TRAIN, CIM_CL_PROGRAM_F32, "batchnorm_forward_train_kernel", 256)           \
    X(BN_FORWARD_EVAL, CIM_CL_PROGRAM_F32, "batchnorm_forward_eval_kernel", 0)               \
    X(BN_BACKWARD, CIM_CL_PROGRAM_F32, "batchnorm_backward_kernel", 256)                     \
    X(CHANNEL_AFFINE, CIM_CL_PROGRAM_F32, "channel_affine_kernel", 0)                        \
    X(BN_BACKWARD_APPLY, CIM_CL_PROGRAM_F32, "batchnorm_backward_apply_kernel", 0)           \
    X(RELU_FORWARD, CIM_CL_PROGRAM_F32, "relu_forward_kernel", 0)                            \
    X(RELU_BACKWARD, CIM_CL_PROGRAM_F32, "relu_backward_kernel", 0)                          \
    X(ADD, CIM_CL_PROGRAM_F32, "add_kernel", 0)                                              \
    X(AXPY, CIM_CL_PROGRAM_F32, "axpy_kernel", 0)                                            \
    X(SCALE, CIM_CL_PROGRAM_F32, "scale_kernel", 0)                                          \
    X(BIAS_ADD, CIM_CL_PROGRAM_F32, "bias_add_kernel", 0)                                    \
    X(COLUMN_SUM, CIM_CL_PROGRAM_F32, "column_sum_kernel", 0)                                \
    X(GAP_FORWARD, CIM_CL_PROGRAM_F32, "global_avg_pool_forward_kernel", 0)                  \
    X(GAP_BACKWARD, CIM_CL_PROGRAM_F32, "global_avg_pool_backward_kernel", 0)                \
    X(MAXPOOL_FORWARD, CIM_CL_PROGRAM_F32, "max_pool2d_forward_kernel", 0)                   \
    X(MAXPOOL_BACKWARD, CIM_CL_PROGRAM_F32, "max_pool2d_backward_kernel", 0)                 \
    X(L2_FORWARD, CIM_CL_PROGRAM_F32, "l2_normalize_forward_kernel", 64)                     \
    X(L2_BACKWARD, CIM_CL_PROGRAM_F32, "l2_normalize_backward_kernel", 64)                   \
    X(SGD, CIM_CL_PROGRAM_F32, "sgd_update_kernel", 0)                                       \
    X(GEMM_F64, CIM_CL_PROGRAM_F64, "gemm_kernel_f64", 256)                                  \
    X(GEMM_CPU_F64, CIM_CL_PROGRAM_F64, "gemm_cpu_kernel_f64", 0)                            \
    X(GEMM_NT_CPU_F64, CIM_CL_PROGRAM_F64, "gemm_nt_cpu_kernel_f64", 0)                      \
    X(CHOLESKY_BLOCK, CIM_CL_PROGRAM_F64, "cholesky_block_kernel", 64)                       \
    X(CHOLESKY_PANEL, CIM_CL_PROGRAM_F64, "cholesky_panel_kernel", 0)                        \
    X(LOGDET_SUM, CIM_CL_PROGRAM_F64, "logdet_sum_kernel", 64)                               \
    X(TRIANGULAR_INVERSE, CIM_CL_PROGRAM_F64, "triangular_block_inverse_kernel", 64)         \
    X(CHANNEL_SUMS, CIM_CL_PROGRAM_F64, "channel_sums_kernel", 256)                          \
    X(BN_BACKWARD_SUMS, CIM_CL_PROGRAM_F64, "batchnorm_backward_sums_kernel", 256)

#define CIM_CL_KERNEL_ID_(id, program, name, group) CIM_CL_K_##id,
typedef enum cim_cl_kernel_id_ {
    CIM_CL_KERNELS(CIM_CL_KERNEL_ID_) CIM_CL_KERNEL_COUNT
} cim_cl_kernel_id_;
#undef CIM_CL_KERNEL_ID_

/* Scratch buffers, grown on demand and reused by every op on the in-order queue. */
enum {
    CIM_CL_SCRATCH_COL = 0,      /* conv: im2col patches / their gradient; logdet: factors */
    CIM_CL_SCRATCH_ROWS = 1,     /* conv: dy as K x (G P Q); logdet: L^-1 */
    CIM_CL_SCRATCH_INFO = 2,     /* logdet: per-matrix failure codes */
    CIM_CL_SCRATCH_PANEL = 3,    /* logdet: X_ii L_ik of the blocked inverse */
    CIM_CL_SCRATCH_COUNT = 4,
};

struct cim_opencl_context {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cim_opencl_device_info info;
    cl_program programs[CIM_CL_PROGRAM_COUNT];
    cl_kernel kernels[CIM_CL_KERNEL_COUNT];
    cl_mem scratch[CIM_CL_SCRATCH_COUNT];
    size_t scratch_bytes[CIM_CL_SCRATCH_COUNT];
    int cache_enabled;
    cim_opencl_cache_stats cache;
    cim_opencl_gemm gemm;     /* the GEMM kernels in use; AUTO is resolved at creation */
    long conv_scratch_floats; /* the patch and row matrices of one convolution pass */
};

/* A kernel argument: its size and the address of its value (for a buffer, of its cl_mem). */
typedef struct cim_cl_arg_ {
    size_t size;
    const void *value;
} cim_cl_arg_;

#define CL_ARG(x) ((cim_cl_arg_){sizeof(x), &(x)})
/* The argument array and its length, for cim_cl_launch_. */
#define CL_ARGS(...)                                                                        \
    (const cim_cl_arg_[]){__VA_ARGS__},                                                     \
        (int)(sizeof((const cim_cl_arg_[]){__VA_ARGS__}) / sizeof(cim_cl_arg_))

/*
 * Queues kernel `id` over a grid of `global` work-items per dimension (unused dimensions 1)
 * in work-groups of `local`; each global size is rounded up to a multiple of the local one
 * (kernels check their bounds). A grid with a zero dimension launches nothing.
 */
cim_status cim_cl_launch_(cim_opencl_context *context, cim_cl_kernel_id_ id, int dimensions,
                          const size_t global[3], const size_t local[3],
                          const cim_cl_arg_ *args, int count);

/* A work-group shape of at most 256 work-items for a grid of `global` (elementwise kernels
 * of 2 or 3 dimensions): dimension 0 first, powers of two. */
void cim_cl_local_shape_(int dimensions, const size_t global[3], size_t local[3]);

/* Scratch buffer `slot` of at least `bytes` (contents undefined). */
cim_status cim_cl_scratch_(cim_opencl_context *context, int slot, size_t bytes, cl_mem *out);

/* CIM_ERROR_UNAVAILABLE naming the device, when the fp64 program is missing. */
cim_status cim_cl_require_fp64_(const cim_opencl_context *context, const char *op);

int cim_opencl_loaded_(void);

#endif /* CKERNELS_OPENCL_INTERNAL_H */
