/*
 * prelude_cuda.h: the CUDA (NVRTC) spelling of the macros in prelude_opencl.h, so the CUDA
 * backend compiles the same kernels/ bodies. It is not wired yet (the CUDA backend has
 * not landed); it is kept next to the OpenCL prelude so the two stay in step, and the names
 * and their meaning are documented there.
 *
 * Notes for the CUDA backend:
 *   - Compile each program as prelude_cuda.h + common.cl + the op files, with the same
 *     -DCIM_REAL=... -DCIM_REAL_NAME=... [-DCIM_FP64] options the OpenCL host passes.
 *   - Kernels are extern "C", so cuModuleGetFunction takes the same names as clCreateKernel.
 *   - Launch with blockDim = the local size and gridDim = global size / local size, per
 *     dimension, exactly as the OpenCL host computes them.
 *   - OpenCL's `long` and CUDA's are both 64 bits on Linux (LP64).
 */
#define CIM_CUDA 1

#define KERNEL extern "C" __global__
#define WORKGROUP_SIZE(x, y, z) __launch_bounds__((x) * (y) * (z))
#define GLOBAL
#define LOCAL __shared__
#define LOCAL_PTR
#define RESTRICT __restrict__
#define INLINE static __device__ __forceinline__

/* d is a literal 0, 1 or 2 in every use, pasted into the field name x, y or z */
#define CIM_AXIS0_ x
#define CIM_AXIS1_ y
#define CIM_AXIS2_ z
#define CIM_AXIS_(d) CIM_AXIS##d##_
#define LOCAL_ID(d) ((int)threadIdx.CIM_AXIS_(d))
#define GROUP_ID(d) ((int)blockIdx.CIM_AXIS_(d))
#define LOCAL_SIZE(d) ((int)blockDim.CIM_AXIS_(d))
#define GLOBAL_ID(d) (GROUP_ID(d) * LOCAL_SIZE(d) + LOCAL_ID(d))
#define GLOBAL_SIZE(d) ((int)gridDim.CIM_AXIS_(d) * LOCAL_SIZE(d))

/* __syncthreads orders shared and global memory within the block */
#define BARRIER_LOCAL() __syncthreads()
#define BARRIER_ALL() __syncthreads()

#define CIM_FLT_MAX 3.402823466e+38f

#define CIM_CAT2_(a, b) a##_##b
#define CIM_CAT_(a, b) CIM_CAT2_(a, b)
#define CIM_NAME(name) CIM_CAT_(name, CIM_REAL_NAME)
