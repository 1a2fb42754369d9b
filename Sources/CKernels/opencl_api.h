/*
 * opencl_api.h: the part of the OpenCL 1.2 API the OpenCL backend calls, declared here so
 * the package builds with no OpenCL headers or library installed. libOpenCL.so.1 (the ICD
 * loader) is opened at run time by opencl_loader.c, which fills the function table below.
 *
 * Types, constants and prototypes are those of Khronos' CL/cl.h (OpenCL 1.2, the subset we
 * use); the values are fixed by the specification and the same on every platform. Calls go
 * through the table by their usual names (clFinish(...) is cim_cl_.clFinish(...)), and every
 * call is checked with CK_CL / CK_CL_ERR, which record the call's text, the file and the
 * line in the thread-local last error.
 */
#ifndef CKERNELS_OPENCL_API_H
#define CKERNELS_OPENCL_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "internal.h"

/* ---- types ---------------------------------------------------------------------------- */

typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef int64_t cl_long;
typedef uint64_t cl_ulong;
typedef cl_uint cl_bool;
typedef cl_ulong cl_bitfield;
typedef cl_bitfield cl_device_type;
typedef cl_bitfield cl_command_queue_properties;
typedef cl_bitfield cl_mem_flags;
typedef cl_bitfield cl_device_fp_config;
typedef cl_uint cl_platform_info;
typedef cl_uint cl_device_info;
typedef cl_uint cl_program_info;
typedef cl_uint cl_program_build_info;
typedef cl_uint cl_kernel_work_group_info;
typedef intptr_t cl_context_properties;

typedef struct _cl_platform_id *cl_platform_id;
typedef struct _cl_device_id *cl_device_id;
typedef struct _cl_context *cl_context;
typedef struct _cl_command_queue *cl_command_queue;
typedef struct _cl_mem *cl_mem;
typedef struct _cl_program *cl_program;
typedef struct _cl_kernel *cl_kernel;
typedef struct _cl_event *cl_event;

/* ---- constants ------------------------------------------------------------------------ */

enum {
    CL_SUCCESS = 0,
    CL_MEM_OBJECT_ALLOCATION_FAILURE = -4,
    CL_OUT_OF_RESOURCES = -5,
    CL_OUT_OF_HOST_MEMORY = -6,
    CL_BUILD_PROGRAM_FAILURE = -11,
    CL_DEVICE_NOT_FOUND = -1,
    CL_INVALID_BINARY = -42,
    CL_PLATFORM_NOT_FOUND_KHR = -1001,

    CL_FALSE = 0,
    CL_TRUE = 1,

    CL_PLATFORM_VERSION = 0x0901,
    CL_PLATFORM_NAME = 0x0902,
    CL_PLATFORM_VENDOR = 0x0903,

    CL_DEVICE_TYPE = 0x1000,
    CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002,
    CL_DEVICE_MAX_WORK_GROUP_SIZE = 0x1004,
    CL_DEVICE_MAX_MEM_ALLOC_SIZE = 0x1010,
    CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F,
    CL_DEVICE_LOCAL_MEM_SIZE = 0x1023,
    CL_DEVICE_NAME = 0x102B,
    CL_DEVICE_VENDOR = 0x102C,
    CL_DRIVER_VERSION = 0x102D,
    CL_DEVICE_VERSION = 0x102F,
    CL_DEVICE_EXTENSIONS = 0x1030,
    CL_DEVICE_DOUBLE_FP_CONFIG = 0x1032,

    CL_CONTEXT_PLATFORM = 0x1084,

    CL_PROGRAM_NUM_DEVICES = 0x1162,
    CL_PROGRAM_BINARY_SIZES = 0x1165,
    CL_PROGRAM_BINARIES = 0x1166,
    CL_PROGRAM_BUILD_LOG = 0x1183,

    CL_KERNEL_WORK_GROUP_SIZE = 0x11B0,
};

#define CL_DEVICE_TYPE_CPU ((cl_device_type)1 << 1)
#define CL_DEVICE_TYPE_GPU ((cl_device_type)1 << 2)
#define CL_DEVICE_TYPE_ACCELERATOR ((cl_device_type)1 << 3)
#define CL_DEVICE_TYPE_ALL ((cl_device_type)0xFFFFFFFF)
#define CL_MEM_READ_WRITE ((cl_mem_flags)1 << 0)

/* ---- the function table --------------------------------------------------------------- */

/* X(name, return type, parameters): every entry point we resolve with dlsym. */
#define CIM_CL_FUNCTIONS(X)                                                                 \
    X(clGetPlatformIDs, cl_int, (cl_uint, cl_platform_id *, cl_uint *))                     \
    X(clGetPlatformInfo, cl_int, (cl_platform_id, cl_platform_info, size_t, void *, size_t *)) \
    X(clGetDeviceIDs, cl_int,                                                                \
      (cl_platform_id, cl_device_type, cl_uint, cl_device_id *, cl_uint *))                  \
    X(clGetDeviceInfo, cl_int, (cl_device_id, cl_device_info, size_t, void *, size_t *))    \
    X(clCreateContext, cl_context,                                                           \
      (const cl_context_properties *, cl_uint, const cl_device_id *,                         \
       void (*)(const char *, const void *, size_t, void *), void *, cl_int *))              \
    X(clReleaseContext, cl_int, (cl_context))                                                \
    X(clCreateCommandQueue, cl_command_queue,                                                \
      (cl_context, cl_device_id, cl_command_queue_properties, cl_int *))                     \
    X(clReleaseCommandQueue, cl_int, (cl_command_queue))                                     \
    X(clCreateBuffer, cl_mem, (cl_context, cl_mem_flags, size_t, void *, cl_int *))         \
    X(clReleaseMemObject, cl_int, (cl_mem))                                                  \
    X(clEnqueueWriteBuffer, cl_int,                                                          \
      (cl_command_queue, cl_mem, cl_bool, size_t, size_t, const void *, cl_uint,             \
       const cl_event *, cl_event *))                                                        \
    X(clEnqueueReadBuffer, cl_int,                                                           \
      (cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *, cl_uint, const cl_event *, \
       cl_event *))                                                                          \
    X(clEnqueueCopyBuffer, cl_int,                                                           \
      (cl_command_queue, cl_mem, cl_mem, size_t, size_t, size_t, cl_uint, const cl_event *,  \
       cl_event *))                                                                          \
    X(clEnqueueFillBuffer, cl_int,                                                           \
      (cl_command_queue, cl_mem, const void *, size_t, size_t, size_t, cl_uint,              \
       const cl_event *, cl_event *))                                                        \
    X(clFinish, cl_int, (cl_command_queue))                                                  \
    X(clCreateProgramWithSource, cl_program,                                                 \
      (cl_context, cl_uint, const char **, const size_t *, cl_int *))                        \
    X(clCreateProgramWithBinary, cl_program,                                                 \
      (cl_context, cl_uint, const cl_device_id *, const size_t *, const unsigned char **,    \
       cl_int *, cl_int *))                                                                  \
    X(clBuildProgram, cl_int,                                                                \
      (cl_program, cl_uint, const cl_device_id *, const char *,                              \
       void (*)(cl_program, void *), void *))                                                \
    X(clGetProgramBuildInfo, cl_int,                                                         \
      (cl_program, cl_device_id, cl_program_build_info, size_t, void *, size_t *))           \
    X(clGetProgramInfo, cl_int, (cl_program, cl_program_info, size_t, void *, size_t *))    \
    X(clReleaseProgram, cl_int, (cl_program))                                                \
    X(clCreateKernel, cl_kernel, (cl_program, const char *, cl_int *))                      \
    X(clReleaseKernel, cl_int, (cl_kernel))                                                  \
    X(clSetKernelArg, cl_int, (cl_kernel, cl_uint, size_t, const void *))                    \
    X(clGetKernelWorkGroupInfo, cl_int,                                                      \
      (cl_kernel, cl_device_id, cl_kernel_work_group_info, size_t, void *, size_t *))        \
    X(clEnqueueNDRangeKernel, cl_int,                                                        \
      (cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *, const size_t *,  \
       cl_uint, const cl_event *, cl_event *))

#define CIM_CL_FIELD_(name, result, parameters) result(*name) parameters;
typedef struct cim_cl_api_ {
    CIM_CL_FUNCTIONS(CIM_CL_FIELD_)
} cim_cl_api_;
#undef CIM_CL_FIELD_

/* Filled once by cim_opencl_load; read-only afterwards. */
extern cim_cl_api_ cim_cl_;

/* The usual names, for every file but the loader (which fills the table by these names). */
#ifndef CIM_CL_NO_NAME_MACROS
#define clGetPlatformIDs cim_cl_.clGetPlatformIDs
#define clGetPlatformInfo cim_cl_.clGetPlatformInfo
#define clGetDeviceIDs cim_cl_.clGetDeviceIDs
#define clGetDeviceInfo cim_cl_.clGetDeviceInfo
#define clCreateContext cim_cl_.clCreateContext
#define clReleaseContext cim_cl_.clReleaseContext
#define clCreateCommandQueue cim_cl_.clCreateCommandQueue
#define clReleaseCommandQueue cim_cl_.clReleaseCommandQueue
#define clCreateBuffer cim_cl_.clCreateBuffer
#define clReleaseMemObject cim_cl_.clReleaseMemObject
#define clEnqueueWriteBuffer cim_cl_.clEnqueueWriteBuffer
#define clEnqueueReadBuffer cim_cl_.clEnqueueReadBuffer
#define clEnqueueCopyBuffer cim_cl_.clEnqueueCopyBuffer
#define clEnqueueFillBuffer cim_cl_.clEnqueueFillBuffer
#define clFinish cim_cl_.clFinish
#define clCreateProgramWithSource cim_cl_.clCreateProgramWithSource
#define clCreateProgramWithBinary cim_cl_.clCreateProgramWithBinary
#define clBuildProgram cim_cl_.clBuildProgram
#define clGetProgramBuildInfo cim_cl_.clGetProgramBuildInfo
#define clGetProgramInfo cim_cl_.clGetProgramInfo
#define clReleaseProgram cim_cl_.clReleaseProgram
#define clCreateKernel cim_cl_.clCreateKernel
#define clReleaseKernel cim_cl_.clReleaseKernel
#define clSetKernelArg cim_cl_.clSetKernelArg
#define clGetKernelWorkGroupInfo cim_cl_.clGetKernelWorkGroupInfo
#define clEnqueueNDRangeKernel cim_cl_.clEnqueueNDRangeKernel
#endif

/* ---- checking ------------------------------------------------------------------------- */

/* "CL_OUT_OF_RESOURCES" for -5, "CL_ERROR_<n>" for codes we do not name. */
const char *cim_cl_error_name_(cl_int code);

/* The status a failing OpenCL code maps to (allocation failures are OUT_OF_MEMORY). */
cim_status cim_cl_status_(cl_int code);

/* Checks a call that returns its cl_int: CK_CL(clFinish(queue)). On failure the enclosing
 * function returns the status, with "<call> failed: <CL name> (<code>)" as the message. */
#define CK_CL(call)                                                                         \
    do {                                                                                    \
        const cl_int cim_cl_code_ = (call);                                                 \
        if (cim_cl_code_ != CL_SUCCESS)                                                     \
            return CIM_FAIL(cim_cl_status_(cim_cl_code_), "%s failed: %s (%d)", #call,      \
                            cim_cl_error_name_(cim_cl_code_), (int)cim_cl_code_);           \
    } while (0)

/* CK_CL with a printf-style note on what the call was for, such as the kernel's name. */
#define CK_CL_AT(call, ...)                                                                 \
    do {                                                                                    \
        const cl_int cim_cl_code_ = (call);                                                 \
        if (cim_cl_code_ != CL_SUCCESS) {                                                   \
            char cim_cl_note_[256];                                                         \
            snprintf(cim_cl_note_, sizeof cim_cl_note_, __VA_ARGS__);                       \
            return CIM_FAIL(cim_cl_status_(cim_cl_code_), "%s failed: %s (%d) for %s",      \
                            #call, cim_cl_error_name_(cim_cl_code_), (int)cim_cl_code_,     \
                            cim_cl_note_);                                                  \
        }                                                                                   \
    } while (0)

/* Checks the code a call returned, for when the caller looks at it first (a missing
 * platform is not an error): CK_CL_CODE("clGetPlatformIDs", code). */
#define CK_CL_CODE(name, code)                                                              \
    do {                                                                                    \
        const cl_int cim_cl_code_ = (code);                                                 \
        if (cim_cl_code_ != CL_SUCCESS)                                                     \
            return CIM_FAIL(cim_cl_status_(cim_cl_code_), "%s failed: %s (%d)", name,       \
                            cim_cl_error_name_(cim_cl_code_), (int)cim_cl_code_);           \
    } while (0)

/* A release or wait on a cleanup path, where a failure has no caller to go to: the call is
 * made and its code dropped, visibly. */
#define CL_CLEANUP(call) ((void)(call))

/* Checks a call that reports through its errcode_ret argument, which must be spelled
 * cl_err_: CK_CL_ERR(buffer = clCreateBuffer(context, flags, size, NULL, &cl_err_)). */
#define CK_CL_ERR(assignment)                                                               \
    do {                                                                                    \
        cl_int cl_err_ = CL_SUCCESS;                                                        \
        assignment;                                                                         \
        if (cl_err_ != CL_SUCCESS)                                                          \
            return CIM_FAIL(cim_cl_status_(cl_err_), "%s failed: %s (%d)", #assignment,     \
                            cim_cl_error_name_(cl_err_), (int)cl_err_);                     \
    } while (0)

#endif /* CKERNELS_OPENCL_API_H */
