/*
 * prelude_opencl.h: the OpenCL C spelling of the macros every shared kernel body is written
 * in. The host puts this file first in each program; prelude_cuda.h spells the same names
 * for NVRTC, so one body in a kernels/ file serves both APIs.
 *
 * Build options set by the host (both APIs):
 *   CIM_REAL       float or double: the element type of the REAL-generic files (gemm.cl)
 *   CIM_REAL_NAME  f32 or f64: the suffix CIM_NAME appends to their kernel names
 *   CIM_FP64       defined in the fp64 program only (logdet.cl, batchnorm_sync.cl, f64 GEMM)
 *
 * The names, as a body uses them:
 *   KERNEL                    an entry point
 *   WORKGROUP_SIZE(x, y, z)   the one work-group shape the kernel is launched with
 *   GLOBAL                    pointer to device memory (kernel and helper parameters)
 *   LOCAL                     declares a work-group shared array (at kernel scope)
 *   LOCAL_PTR                 pointer to such an array, as a helper's parameter
 *   RESTRICT                  no aliasing through this pointer
 *   INLINE                    a helper function
 *   GLOBAL_ID(d), LOCAL_ID(d), GROUP_ID(d), LOCAL_SIZE(d), GLOBAL_SIZE(d)
 *                             d a literal 0, 1 or 2 (CUDA pastes it into x, y, z)
 *   BARRIER_LOCAL()           wait for the work-group; shared memory writes visible
 *   BARRIER_ALL()             the same for device memory written by the work-group too
 *   CIM_FLT_MAX, CIM_OPENCL / CIM_CUDA   constants and the API in use
 *
 * API-specific fast paths sit beside the shared body under #if CIM_OPENCL / CIM_CUDA (see
 * group_sum_ in common.cl).
 */
#define CIM_OPENCL 1

#ifdef CIM_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define KERNEL __kernel
#define WORKGROUP_SIZE(x, y, z) __attribute__((reqd_work_group_size(x, y, z)))
#define GLOBAL __global
#define LOCAL __local
#define LOCAL_PTR __local
#define RESTRICT restrict
#define INLINE static inline

#define GLOBAL_ID(d) ((int)get_global_id(d))
#define LOCAL_ID(d) ((int)get_local_id(d))
#define GROUP_ID(d) ((int)get_group_id(d))
#define LOCAL_SIZE(d) ((int)get_local_size(d))
#define GLOBAL_SIZE(d) ((int)get_global_size(d))

#define BARRIER_LOCAL() barrier(CLK_LOCAL_MEM_FENCE)
#define BARRIER_ALL() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)

#define CIM_FLT_MAX 0x1.fffffep127f

#define CIM_CAT2_(a, b) a##_##b
#define CIM_CAT_(a, b) CIM_CAT2_(a, b)
#define CIM_NAME(name) CIM_CAT_(name, CIM_REAL_NAME)
