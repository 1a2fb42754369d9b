/*
 * cuda_api.h: the parts of the CUDA driver API, NVRTC and cuBLAS that the CUDA backend
 * calls, declared here so the package builds with no CUDA toolkit installed. The libraries
 * (libcuda.so.1, libnvrtc.so.12 or .13, libcublas.so.12 or .13) are opened at run time by
 * cuda_loader.c, which fills the three function tables below.
 *
 * Types, constants and prototypes are those of NVIDIA's cuda.h, nvrtc.h and cublas_api.h
 * (the subset we use, by the versioned symbol names those headers map to: cuMemAlloc is
 * cuMemAlloc_v2 since CUDA 3.2). The values are part of the ABI and fixed across releases.
 * Calls go through the tables: cim_cu_.cuLaunchKernel(...), cim_nvrtc_.nvrtcVersion(...),
 * cim_cublas_.cublasSgemm_v2(...); CK_CU, CK_NVRTC and CK_CUBLAS check them and record the
 * call's text, the library's name for the code, the file and the line.
 */
#ifndef CKERNELS_CUDA_API_H
#define CKERNELS_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- driver API ----------------------------------------------------------------------- */

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NO_DEVICE = 100,

    CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y = 3,
    CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y = 6,
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,

    CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0,

    CU_STREAM_NON_BLOCKING = 1,
};

/* X(name, parameters) */
#define CIM_CU_FUNCTIONS(X)                                                                 \
    X(cuInit, (unsigned int flags))                                                         \
    X(cuDriverGetVersion, (int *version))                                                   \
    X(cuDeviceGetCount, (int *count))                                                       \
    X(cuDeviceGet, (CUdevice * device, int ordinal))                                        \
    X(cuDeviceGetName, (char *name, int length, CUdevice device))                          \
    X(cuDeviceTotalMem_v2, (size_t * bytes, CUdevice device))                               \
    X(cuDeviceGetAttribute, (int *value, int attribute, CUdevice device))                   \
    X(cuDevicePrimaryCtxRetain, (CUcontext * context, CUdevice device))                     \
    X(cuDevicePrimaryCtxRelease_v2, (CUdevice device))                                      \
    X(cuCtxSetCurrent, (CUcontext context))                                                 \
    X(cuStreamCreate, (CUstream * stream, unsigned int flags))                              \
    X(cuStreamDestroy_v2, (CUstream stream))                                                \
    X(cuStreamSynchronize, (CUstream stream))                                               \
    X(cuMemAlloc_v2, (CUdeviceptr * pointer, size_t bytes))                                 \
    X(cuMemFree_v2, (CUdeviceptr pointer))                                                  \
    X(cuMemcpyHtoDAsync_v2,                                                                 \
      (CUdeviceptr destination, const void *source, size_t bytes, CUstream stream))         \
    X(cuMemcpyDtoHAsync_v2,                                                                 \
      (void *destination, CUdeviceptr source, size_t bytes, CUstream stream))               \
    X(cuMemcpyDtoDAsync_v2,                                                                 \
      (CUdeviceptr destination, CUdeviceptr source, size_t bytes, CUstream stream))         \
    X(cuMemsetD8Async,                                                                      \
      (CUdeviceptr destination, unsigned char value, size_t count, CUstream stream))        \
    X(cuMemsetD16Async,                                                                     \
      (CUdeviceptr destination, unsigned short value, size_t count, CUstream stream))       \
    X(cuMemsetD32Async,                                                                     \
      (CUdeviceptr destination, unsigned int value, size_t count, CUstream stream))         \
    X(cuModuleLoadData, (CUmodule * module, const void *image))                             \
    X(cuModuleUnload, (CUmodule module))                                                    \
    X(cuModuleGetFunction, (CUfunction * function, CUmodule module, const char *name))      \
    X(cuFuncGetAttribute, (int *value, int attribute, CUfunction function))                 \
    X(cuLaunchKernel,                                                                       \
      (CUfunction function, unsigned int grid_x, unsigned int grid_y, unsigned int grid_z,  \
       unsigned int block_x, unsigned int block_y, unsigned int block_z,                    \
       unsigned int shared_bytes, CUstream stream, void **parameters, void **extra))        \
    X(cuGetErrorName, (CUresult error, const char **name))                                  \
    X(cuGetErrorString, (CUresult error, const char **text))

/* ---- NVRTC ---------------------------------------------------------------------------- */

typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;

enum { NVRTC_SUCCESS = 0 };

#define CIM_NVRTC_FUNCTIONS(X)                                                              \
    X(nvrtcVersion, (int *major, int *minor))                                               \
    X(nvrtcGetNumSupportedArchs, (int *count))                                              \
    X(nvrtcGetSupportedArchs, (int *architectures))                                         \
    X(nvrtcCreateProgram,                                                                   \
      (nvrtcProgram * program, const char *source, const char *name, int header_count,      \
       const char *const *headers, const char *const *include_names))                       \
    X(nvrtcDestroyProgram, (nvrtcProgram * program))                                        \
    X(nvrtcCompileProgram, (nvrtcProgram program, int option_count, const char *const *options)) \
    X(nvrtcGetProgramLogSize, (nvrtcProgram program, size_t *size))                         \
    X(nvrtcGetProgramLog, (nvrtcProgram program, char *log))                                \
    X(nvrtcGetCUBINSize, (nvrtcProgram program, size_t *size))                              \
    X(nvrtcGetCUBIN, (nvrtcProgram program, char *cubin))                                   \
    X(nvrtcGetPTXSize, (nvrtcProgram program, size_t *size))                                \
    X(nvrtcGetPTX, (nvrtcProgram program, char *ptx))

/* ---- cuBLAS --------------------------------------------------------------------------- */

typedef int cublasStatus_t;
typedef struct cublasContext *cublasHandle_t;

enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
};

#define CIM_CUBLAS_FUNCTIONS(X)                                                             \
    X(cublasCreate_v2, (cublasHandle_t * handle))                                           \
    X(cublasDestroy_v2, (cublasHandle_t handle))                                            \
    X(cublasGetVersion_v2, (cublasHandle_t handle, int *version))                           \
    X(cublasSetStream_v2, (cublasHandle_t handle, CUstream stream))                         \
    X(cublasSetMathMode, (cublasHandle_t handle, int mode))                                 \
    X(cublasSgemm_v2,                                                                       \
      (cublasHandle_t handle, int trans_a, int trans_b, int m, int n, int k,                \
       const float *alpha, const float *a, int lda, const float *b, int ldb,                \
       const float *beta, float *c, int ldc))                                               \
    X(cublasDgemm_v2,                                                                       \
      (cublasHandle_t handle, int trans_a, int trans_b, int m, int n, int k,                \
       const double *alpha, const double *a, int lda, const double *b, int ldb,             \
       const double *beta, double *c, int ldc))                                             \
    X(cublasSgemmStridedBatched,                                                            \
      (cublasHandle_t handle, int trans_a, int trans_b, int m, int n, int k,                \
       const float *alpha, const float *a, int lda, long long stride_a, const float *b,     \
       int ldb, long long stride_b, const float *beta, float *c, int ldc,                   \
       long long stride_c, int batch))                                                      \
    X(cublasDgemmStridedBatched,                                                            \
      (cublasHandle_t handle, int trans_a, int trans_b, int m, int n, int k,                \
       const double *alpha, const double *a, int lda, long long stride_a, const double *b,  \
       int ldb, long long stride_b, const double *beta, double *c, int ldc,                 \
       long long stride_c, int batch))

/* ---- the tables ----------------------------------------------------------------------- */

#define CIM_CU_FIELD_(name, parameters) CUresult (*name) parameters;
#define CIM_NVRTC_FIELD_(name, parameters) nvrtcResult (*name) parameters;
#define CIM_CUBLAS_FIELD_(name, parameters) cublasStatus_t (*name) parameters;
typedef struct cim_cu_api_ {
    CIM_CU_FUNCTIONS(CIM_CU_FIELD_)
} cim_cu_api_;
typedef struct cim_nvrtc_api_ {
    CIM_NVRTC_FUNCTIONS(CIM_NVRTC_FIELD_)
    const char *(*nvrtcGetErrorString)(nvrtcResult result);
} cim_nvrtc_api_;
typedef struct cim_cublas_api_ {
    CIM_CUBLAS_FUNCTIONS(CIM_CUBLAS_FIELD_)
} cim_cublas_api_;
#undef CIM_CU_FIELD_
#undef CIM_NVRTC_FIELD_
#undef CIM_CUBLAS_FIELD_

extern cim_cu_api_ cim_cu_;
extern cim_nvrtc_api_ cim_nvrtc_;
extern cim_cublas_api_ cim_cublas_;

/* Which libraries are open (cuda_loader.c). */
int cim_cuda_driver_loaded_(void);
int cim_nvrtc_loaded_(void);
int cim_cublas_loaded_(void);

/* Names for codes, for messages. */
const char *cim_cu_error_text_(CUresult code);     /* "CUDA_ERROR_X: description" */
const char *cim_cublas_error_name_(cublasStatus_t code);

/* ---- checks --------------------------------------------------------------------------- */

/* Checks a driver call: CK_CU(cuStreamSynchronize(stream)); on failure the enclosing
 * function returns the status with the call's text and the driver's name for the code. */
#define CK_CU(call)                                                                         \
    do {                                                                                    \
        const CUresult cim_cu_code_ = cim_cu_.call;                                         \
        if (cim_cu_code_ != CUDA_SUCCESS)                                                   \
            return CIM_FAIL(cim_cu_code_ == CUDA_ERROR_OUT_OF_MEMORY                        \
                                ? CIM_ERROR_OUT_OF_MEMORY : CIM_ERROR_INTERNAL,             \
                            "%s failed: %s", #call, cim_cu_error_text_(cim_cu_code_));      \
    } while (0)

#define CK_NVRTC(call)                                                                      \
    do {                                                                                    \
        const nvrtcResult cim_nvrtc_code_ = cim_nvrtc_.call;                                \
        if (cim_nvrtc_code_ != NVRTC_SUCCESS)                                               \
            return CIM_FAIL(CIM_ERROR_INTERNAL, "%s failed: %s (%d)", #call,                \
                            cim_nvrtc_.nvrtcGetErrorString(cim_nvrtc_code_),                \
                            (int)cim_nvrtc_code_);                                          \
    } while (0)

#define CK_CUBLAS(call)                                                                     \
    do {                                                                                    \
        const cublasStatus_t cim_cublas_code_ = cim_cublas_.call;                           \
        if (cim_cublas_code_ != CUBLAS_STATUS_SUCCESS)                                      \
            return CIM_FAIL(cim_cublas_code_ == CUBLAS_STATUS_ALLOC_FAILED                  \
                                ? CIM_ERROR_OUT_OF_MEMORY : CIM_ERROR_INTERNAL,             \
                            "%s failed: %s", #call, cim_cublas_error_name_(cim_cublas_code_)); \
    } while (0)

/* A call whose failure has no caller to report to (releases in a destructor). */
#define CU_CLEANUP(call) ((void)cim_cu_.call)

#endif /* CKERNELS_CUDA_API_H */
