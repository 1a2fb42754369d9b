/*
 * opencl_internal.h: the OpenCL context, shared by opencl_context.c and the loader. The ops
 * are in gpu_ops.c, which reaches OpenCL through the driver table the context fills.
 */
#ifndef CKERNELS_OPENCL_INTERNAL_H
#define CKERNELS_OPENCL_INTERNAL_H

#include "gpu_internal.h"
#include "opencl_api.h"

struct cim_opencl_context {
    cim_gpu gpu;              /* first: gpu_ops.c's view of the context */
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cim_opencl_device_info info;
    cl_program programs[CIM_GPU_PROGRAM_COUNT];
    cl_kernel kernels[CIM_GPU_KERNEL_COUNT];
    int cache_enabled;
    cim_program_cache_stats cache;
};

int cim_opencl_loaded_(void);

#endif /* CKERNELS_OPENCL_INTERNAL_H */
