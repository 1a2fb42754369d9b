/*
 * cuda_context.c: CUDA devices, the per-device context, NVRTC compilation of kernels/ with
 * the on-disk cache of kernel_cache.c, and the driver table gpu_ops.c runs the ops through
 * (kernel launches on one stream, memory, and GEMM in cuBLAS).
 *
 * Compilation. Each program is the CUDA prelude, common.cl and its files (the same bodies
 * the OpenCL backend builds), compiled by NVRTC to a CUBIN for the device's architecture
 * (--gpu-architecture=sm_XY). A device newer than this NVRTC knows gets PTX for the newest
 * architecture NVRTC supports, which the driver compiles when it loads it. The image is
 * cached under the key of NVRTC's version, the target, the options and every source byte;
 * an image the driver rejects counts as damaged and is rebuilt.
 *
 * GEMM. Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so each GEMM is
 * cuBLAS's with the operands swapped (m and n too). A batch is a strided-batched call. The
 * NCHW store of the convolution (out_plane = L) is a batch over images: image i's C is
 * M x L at C + i M L and reads columns i L .. i L + L - 1 of B. The lower-only update of the
 * Cholesky computes the whole square: the upper triangle of the work copy is never read.
 * cuBLAS runs FP32 GEMMs in full precision (CUBLAS_DEFAULT_MATH) unless the context asked
 * for TF32 (CUBLAS_TF32_TENSOR_OP_MATH).
 *
 * Threads. The primary context is made current at every entry (cuCtxSetCurrent is cheap),
 * so a context may move between threads, as the replicas of a training run do.
 *
 * Grids. CUDA allows 65535 blocks along y and z (2^31 - 1 along x). gpu_ops.c keeps large
 * counts on x (element-wise work, GEMM tiles) and spreads N x C planes over y (channels) and
 * z (images); a grid past the limits is an error naming the kernel, never a wrong result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "gpu_internal.h"

static const char CACHE_MAGIC_[8] = {'C', 'I', 'M', 'C', 'U', 'B', 'I', 'N'};

struct cim_cuda_context {
    cim_gpu gpu;              /* first: gpu_ops.c's view of the context */
    cim_cuda_device_info info;
    CUdevice device;
    CUcontext context;        /* the device's primary context, retained */
    CUstream stream;
    cublasHandle_t cublas;    /* NULL: gemm.cl's kernels */
    int tf32;
    char gemm_engine[64];
    CUmodule modules[CIM_GPU_PROGRAM_COUNT];
    CUfunction functions[CIM_GPU_KERNEL_COUNT];
    cim_program_cache_stats cache;
};

#define CUDA_(gpu) ((cim_cuda_context *)(gpu))

static cim_status require_driver_(void) {
    if (!cim_cuda_driver_loaded_())
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "the CUDA driver is not loaded "
                                               "(call cim_cuda_load first)");
    static int initialised = 0;   /* cuInit is idempotent; this only skips the call */
    if (!initialised) {
        const CUresult code = cim_cu_.cuInit(0);
        if (code == CUDA_ERROR_NO_DEVICE) return CIM_OK;
        if (code != CUDA_SUCCESS)
            return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "cuInit failed: %s", cim_cu_error_text_(code));
        initialised = 1;
    }
    return CIM_OK;
}

static cim_status require_nvrtc_(void) {
    if (!cim_nvrtc_loaded_())
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "NVRTC is not loaded (call cim_cuda_load first)");
    return CIM_OK;
}

/* ---- devices -------------------------------------------------------------------------- */

cim_status cim_cuda_device_count(int *out_count) {
    if (!out_count) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_count is NULL");
    *out_count = 0;
    CIM_TRY(require_driver_());
    const CUresult code = cim_cu_.cuDeviceGetCount(out_count);
    if (code == CUDA_ERROR_NO_DEVICE || code == 3 /* CUDA_ERROR_NOT_INITIALIZED */) {
        *out_count = 0;
        return CIM_OK;
    }
    if (code != CUDA_SUCCESS)
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "cuDeviceGetCount failed: %s",
                        cim_cu_error_text_(code));
    return CIM_OK;
}

cim_status cim_cuda_device_info_get(int index, cim_cuda_device_info *out_info) {
    if (!out_info) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_info is NULL");
    memset(out_info, 0, sizeof *out_info);
    int count = 0;
    CIM_TRY(cim_cuda_device_count(&count));
    if (index < 0 || index >= count)
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "no CUDA device %d (this machine has %d)", index,
                        count);
    CUdevice device = 0;
    CK_CU(cuDeviceGet(&device, index));
    out_info->index = index;
    CK_CU(cuDeviceGetName(out_info->name, (int)sizeof out_info->name - 1, device));
    CK_CU(cuDeviceGetAttribute(&out_info->major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                               device));
    CK_CU(cuDeviceGetAttribute(&out_info->minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                               device));
    CK_CU(cuDeviceGetAttribute(&out_info->multiprocessors,
                               CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device));
    CK_CU(cuDeviceTotalMem_v2(&out_info->memory_bytes, device));
    CK_CU(cuDriverGetVersion(&out_info->driver_version));
    return CIM_OK;
}

cim_status cim_nvrtc_version(int *out_major, int *out_minor) {
    if (!out_major || !out_minor) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    CIM_TRY(require_nvrtc_());
    CK_NVRTC(nvrtcVersion(out_major, out_minor));
    return CIM_OK;
}

/* ---- compiling ------------------------------------------------------------------------ */

/* The --gpu-architecture value for compute capability `architecture`, and whether the
 * result is PTX (a device newer than NVRTC) rather than a CUBIN. */
static cim_status choose_target_(int architecture, char *target, size_t size, int *ptx) {
    int count = 0;
    CK_NVRTC(nvrtcGetNumSupportedArchs(&count));
    int supported[128];
    if (count < 1 || count > 128)
        return CIM_FAIL(CIM_ERROR_INTERNAL, "NVRTC lists %d architectures", count);
    CK_NVRTC(nvrtcGetSupportedArchs(supported));
    int newest = 0, found = 0;
    for (int i = 0; i < count; i++) {
        if (supported[i] > newest) newest = supported[i];
        if (supported[i] == architecture) found = 1;
    }
    *ptx = 0;
    if (found) {
        snprintf(target, size, "sm_%d", architecture);
    } else if (architecture > newest) {
        *ptx = 1;
        snprintf(target, size, "compute_%d", newest);
    } else {
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                        "NVRTC does not compile for sm_%d (it supports sm_%d to sm_%d)",
                        architecture, supported[0], newest);
    }
    return CIM_OK;
}

enum { MAX_OPTIONS = 8 };

typedef struct compile_options_ {
    int count;
    const char *values[MAX_OPTIONS];
    char storage[MAX_OPTIONS][128];
    char joined[512];
} compile_options_;

/* --gpu-architecture=<target>, the program's -D options, and quiet warnings. */
static void compile_options_make_(const char *target, const char *defines,
                                  compile_options_ *options) {
    memset(options, 0, sizeof *options);
    snprintf(options->storage[0], sizeof options->storage[0], "--gpu-architecture=%s",
             target);
    /* 177: "variable declared but never referenced" in shared bodies that use a helper on
     * one API only */
    snprintf(options->storage[1], sizeof options->storage[1], "-diag-suppress=177");
    options->count = 2;
    const char *cursor = defines;
    while (*cursor && options->count < MAX_OPTIONS) {
        while (*cursor == ' ') cursor++;
        const size_t length = strcspn(cursor, " ");
        if (length == 0) break;
        snprintf(options->storage[options->count], sizeof options->storage[0], "%.*s",
                 (int)length, cursor);
        options->count++;
        cursor += length;
    }
    size_t used = 0;
    for (int i = 0; i < options->count; i++) {
        options->values[i] = options->storage[i];
        used += (size_t)snprintf(options->joined + used, sizeof options->joined - used, "%s%s",
                                 i ? " " : "", options->storage[i]);
        if (used >= sizeof options->joined) used = sizeof options->joined - 1;
    }
}

/* NVRTC's log of a program, malloc'ed (the caller frees it), or NULL. */
static char *program_log_(nvrtcProgram program) {
    size_t size = 0;
    if (cim_nvrtc_.nvrtcGetProgramLogSize(program, &size) != NVRTC_SUCCESS) return NULL;
    char *log = calloc(size + 1, 1);
    if (log && cim_nvrtc_.nvrtcGetProgramLog(program, log) != NVRTC_SUCCESS) log[0] = '\0';
    return log;
}

/* Compiles a program text; the image (CUBIN, or NUL-terminated PTX) in a malloc'ed *out. */
static cim_status compile_(const char *label, const cim_program_text_ *text,
                           const compile_options_ *options, int ptx, unsigned char **out,
                           size_t *out_size) {
    *out = NULL;
    char *source = NULL;
    CIM_TRY(cim_program_text_join_(text, &source));
    nvrtcProgram program = NULL;
    char name[64];
    snprintf(name, sizeof name, "cim_%s.cu", label);
    const nvrtcResult created = cim_nvrtc_.nvrtcCreateProgram(&program, source, name, 0, NULL,
                                                              NULL);
    free(source);
    if (created != NVRTC_SUCCESS)
        return CIM_FAIL(CIM_ERROR_INTERNAL, "nvrtcCreateProgram failed: %s",
                        cim_nvrtc_.nvrtcGetErrorString(created));
    const nvrtcResult compiled =
        cim_nvrtc_.nvrtcCompileProgram(program, options->count, options->values);
    cim_status status = CIM_OK;
    if (compiled != NVRTC_SUCCESS) {
        char *log = program_log_(program);
        status = CIM_FAIL(CIM_ERROR_INTERNAL,
                          "NVRTC failed to compile the %s program (%s; options %s): %s; "
                          "log:\n%s", label, text->file_list, options->joined,
                          cim_nvrtc_.nvrtcGetErrorString(compiled),
                          log && log[0] ? log : "(NVRTC gave no log)");
        free(log);
    } else {
        size_t size = 0;
        nvrtcResult got = ptx ? cim_nvrtc_.nvrtcGetPTXSize(program, &size)
                              : cim_nvrtc_.nvrtcGetCUBINSize(program, &size);
        unsigned char *image = got == NVRTC_SUCCESS && size ? malloc(size) : NULL;
        if (image)
            got = ptx ? cim_nvrtc_.nvrtcGetPTX(program, (char *)image)
                      : cim_nvrtc_.nvrtcGetCUBIN(program, (char *)image);
        if (!image || got != NVRTC_SUCCESS) {
            free(image);
            status = CIM_FAIL(CIM_ERROR_INTERNAL, "NVRTC gave no %s for the %s program: %s",
                              ptx ? "PTX" : "CUBIN", label, cim_nvrtc_.nvrtcGetErrorString(got));
        } else {
            *out = image;
            *out_size = size;
        }
    }
    cim_nvrtc_.nvrtcDestroyProgram(&program);
    return status;
}

/* A compiled program image, from the cache when it holds one. `accept` (may be NULL) tries
 * a cached image (loads it into the driver); a rejected one counts as damaged. */
typedef cim_status (*image_check_)(void *state, const unsigned char *image, size_t size);

static cim_status build_image_(int id, int architecture, const char *directory,
                               cim_program_cache_stats *stats, image_check_ accept,
                               void *state, unsigned char **out, size_t *out_size) {
    const cim_gpu_program_spec_ *spec = &cim_gpu_programs_[id];
    char target[32];
    int ptx = 0;
    CIM_TRY(choose_target_(architecture, target, sizeof target, &ptx));
    compile_options_ options;
    compile_options_make_(target, spec->options, &options);
    cim_program_text_ text;
    CIM_TRY(cim_program_text_make_("prelude_cuda.h", spec->files, NULL, NULL, &text));

    int major = 0, minor = 0;
    CK_NVRTC(nvrtcVersion(&major, &minor));
    uint64_t key = cim_fnv1a_string_(cim_fnv1a_start_(), "cim-train cuda program v1");
    key = cim_fnv1a_(key, &major, sizeof major);
    key = cim_fnv1a_(key, &minor, sizeof minor);
    key = cim_fnv1a_string_(key, options.joined);
    for (int i = 0; i < text.count; i++) key = cim_fnv1a_(key, text.strings[i], text.lengths[i]);

    const int cached = directory && directory[0];
    if (cached) {
        unsigned char *image = NULL;
        size_t size = 0;
        cim_status status = cim_cache_read_(directory, CACHE_MAGIC_, key, &image, &size);
        if (status == CIM_OK && accept) status = accept(state, image, size);
        if (status == CIM_OK) {
            stats->loaded++;
            *out = image;
            *out_size = size;
            return CIM_OK;
        }
        free(image);
        if (status != CIM_ERROR_UNAVAILABLE) stats->corrupt++;
    }
    CIM_TRY(compile_(spec->label, &text, &options, ptx, out, out_size));
    stats->built++;
    if (cached && cim_cache_write_(directory, CACHE_MAGIC_, key, *out, *out_size) == CIM_OK)
        stats->saved++;
    cim_clear_error();   /* a cache that cannot be written is not a failure */
    return CIM_OK;
}

cim_status cim_nvrtc_build_program(int program, int architecture, const char *cache_dir,
                                   int *out_from_cache, size_t *out_bytes) {
    if (out_from_cache) *out_from_cache = 0;
    if (out_bytes) *out_bytes = 0;
    CIM_TRY(require_nvrtc_());
    if (program < 0 || program >= CIM_GPU_PROGRAM_COUNT)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "no program %d", program);
    char directory[1024];
    cim_cache_directory_(cache_dir, "cuda", directory, sizeof directory);
    cim_program_cache_stats stats;
    memset(&stats, 0, sizeof stats);
    unsigned char *image = NULL;
    size_t size = 0;
    CIM_TRY(build_image_(program, architecture, directory, &stats, NULL, NULL, &image, &size));
    free(image);
    if (out_from_cache) *out_from_cache = stats.loaded > 0;
    if (out_bytes) *out_bytes = size;
    return CIM_OK;
}

/* ---- context -------------------------------------------------------------------------- */

typedef struct module_load_ {
    cim_cuda_context *context;
    int id;
} module_load_;

/* Loads an image as program `id`'s module (the cache's check of a cached image too). */
static cim_status load_module_(void *state, const unsigned char *image, size_t size) {
    (void)size;
    module_load_ *load = state;
    CUmodule module = NULL;
    CK_CU(cuModuleLoadData(&module, image));
    load->context->modules[load->id] = module;
    return CIM_OK;
}

static cim_status build_program_(cim_cuda_context *context, int id, const char *directory) {
    const int architecture = context->info.major * 10 + context->info.minor;
    module_load_ load = {context, id};
    unsigned char *image = NULL;
    size_t size = 0;
    CIM_TRY(build_image_(id, architecture, directory, &context->cache, load_module_, &load,
                         &image, &size));
    const cim_status status = context->modules[id] ? CIM_OK : load_module_(&load, image, size);
    free(image);
    return status;
}

static cim_status get_functions_(cim_cuda_context *context) {
    for (int k = 0; k < CIM_GPU_KERNEL_COUNT; k++) {
        CUmodule module = context->modules[cim_gpu_kernel_programs_[k]];
        if (!module) continue;   /* no fp64 program */
        const char *name = cim_gpu_kernel_names_[k];
        CK_CU(cuModuleGetFunction(&context->functions[k], module, name));
        const int group = (int)cim_gpu_kernel_groups_[k];
        int allowed = 0;
        CK_CU(cuFuncGetAttribute(&allowed, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                                 context->functions[k]));
        if (allowed < (group ? group : CIM_GPU_REQUIRED_GROUP_SIZE))
            return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                            "%s: kernel %s allows blocks of %d threads, cim-train needs %d",
                            context->info.name, name, allowed,
                            group ? group : CIM_GPU_REQUIRED_GROUP_SIZE);
    }
    return CIM_OK;
}

static const cim_gpu_driver_ cuda_driver_, cuda_driver_kernels_;

static cim_status context_init_(cim_cuda_context *context, int index, const char *cache_dir,
                                int flags) {
    CIM_TRY(cim_cuda_device_info_get(index, &context->info));
    CK_CU(cuDeviceGet(&context->device, index));
    CK_CU(cuDevicePrimaryCtxRetain(&context->context, context->device));
    CK_CU(cuCtxSetCurrent(context->context));
    CK_CU(cuStreamCreate(&context->stream, CU_STREAM_NON_BLOCKING));

    cim_gpu *gpu = &context->gpu;
    gpu->driver = flags & CIM_CUDA_NO_CUBLAS ? &cuda_driver_kernels_ : &cuda_driver_;
    snprintf(gpu->name, sizeof gpu->name, "%s", context->info.name);
    snprintf(gpu->label, sizeof gpu->label, "cuda:%d", index);
    gpu->has_fp64 = 1;   /* every CUDA device computes in double precision */
    gpu->gemm_kernels = CIM_GPU_GEMM_TILED;
    gpu->conv_scratch_floats = CIM_GPU_DEFAULT_CONV_SCRATCH_FLOATS;

    snprintf(context->gemm_engine, sizeof context->gemm_engine, "gemm.cl");
    if (!(flags & CIM_CUDA_NO_CUBLAS)) {
        if (!cim_cublas_loaded_())
            return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "cuBLAS is not loaded "
                                                   "(call cim_cuda_load first)");
        CK_CUBLAS(cublasCreate_v2(&context->cublas));
        CK_CUBLAS(cublasSetStream_v2(context->cublas, context->stream));
        context->tf32 = (flags & CIM_CUDA_TF32) != 0;
        CK_CUBLAS(cublasSetMathMode(context->cublas, context->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                   : CUBLAS_DEFAULT_MATH));
        int version = 0;
        CK_CUBLAS(cublasGetVersion_v2(context->cublas, &version));
        snprintf(context->gemm_engine, sizeof context->gemm_engine, "cuBLAS %d.%d.%d (%s)",
                 version / 10000, version / 100 % 100, version % 100,
                 context->tf32 ? "tf32" : "fp32");
    }

    CIM_TRY(require_nvrtc_());
    cim_cache_directory_(cache_dir, "cuda", context->cache.directory,
                         sizeof context->cache.directory);
    CIM_TRY(build_program_(context, CIM_GPU_PROGRAM_F32, context->cache.directory));
    CIM_TRY(build_program_(context, CIM_GPU_PROGRAM_F64, context->cache.directory));
    return get_functions_(context);
}

cim_status cim_cuda_context_create(int index, const char *cache_dir, int flags,
                                   cim_cuda_context **out_context) {
    if (!out_context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_context is NULL");
    *out_context = NULL;
    CIM_TRY(require_driver_());
    cim_cuda_context *context = calloc(1, sizeof *context);
    if (!context) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for a CUDA context");
    const cim_status status = context_init_(context, index, cache_dir, flags);
    if (status != CIM_OK) {
        cim_cuda_context_destroy(context);   /* keeps the message: cleanups set none */
        return status;
    }
    *out_context = context;
    return CIM_OK;
}

void cim_cuda_context_destroy(cim_cuda_context *context) {
    if (!context) return;
    if (context->context) {
        CU_CLEANUP(cuCtxSetCurrent(context->context));
        if (context->stream) CU_CLEANUP(cuStreamSynchronize(context->stream));
        if (context->gpu.driver) cim_gpu_release_scratch_(&context->gpu);
        if (context->cublas) (void)cim_cublas_.cublasDestroy_v2(context->cublas);
        for (int p = 0; p < CIM_GPU_PROGRAM_COUNT; p++)
            if (context->modules[p]) CU_CLEANUP(cuModuleUnload(context->modules[p]));
        if (context->stream) CU_CLEANUP(cuStreamDestroy_v2(context->stream));
        CU_CLEANUP(cuDevicePrimaryCtxRelease_v2(context->device));
    }
    free(context);
}

cim_gpu *cim_cuda_context_gpu(cim_cuda_context *context) {
    return context ? &context->gpu : NULL;
}

const cim_cuda_device_info *cim_cuda_context_device(const cim_cuda_context *context) {
    return context ? &context->info : NULL;
}

void cim_cuda_context_cache_stats(const cim_cuda_context *context,
                                  cim_program_cache_stats *out_stats) {
    if (!out_stats) return;
    if (!context) {
        memset(out_stats, 0, sizeof *out_stats);
        return;
    }
    *out_stats = context->cache;
}

const char *cim_cuda_context_gemm_engine(const cim_cuda_context *context) {
    return context ? context->gemm_engine : "";
}

/* ---- the driver table ----------------------------------------------------------------- */

#define DEVICE_POINTER_(memory) ((CUdeviceptr)(uintptr_t)(memory))

static cim_status make_current_(cim_gpu *gpu) {
    CK_CU(cuCtxSetCurrent(CUDA_(gpu)->context));
    return CIM_OK;
}

static cim_status cuda_allocate_(cim_gpu *gpu, size_t bytes, cim_gpu_mem_ *out) {
    CIM_TRY(make_current_(gpu));
    CUdeviceptr pointer = 0;
    CK_CU(cuMemAlloc_v2(&pointer, bytes));
    *out = (cim_gpu_mem_)(uintptr_t)pointer;
    return CIM_OK;
}

static void cuda_release_(cim_gpu *gpu, cim_gpu_mem_ memory) {
    CU_CLEANUP(cuCtxSetCurrent(CUDA_(gpu)->context));
    /* cuMemFree waits for the device, so work still queued on the buffer finishes first */
    CU_CLEANUP(cuMemFree_v2(DEVICE_POINTER_(memory)));
}

static cim_status cuda_write_(cim_gpu *gpu, cim_gpu_mem_ memory, const void *source,
                              size_t bytes) {
    CIM_TRY(make_current_(gpu));
    CK_CU(cuMemcpyHtoDAsync_v2(DEVICE_POINTER_(memory), source, bytes, CUDA_(gpu)->stream));
    /* from pageable memory the copy is staged before the call returns, but the contract is
     * a blocking write: the caller may free or change `source` at once */
    CK_CU(cuStreamSynchronize(CUDA_(gpu)->stream));
    return CIM_OK;
}

static cim_status cuda_read_(cim_gpu *gpu, cim_gpu_mem_ memory, void *destination,
                             size_t bytes) {
    CIM_TRY(make_current_(gpu));
    CK_CU(cuMemcpyDtoHAsync_v2(destination, DEVICE_POINTER_(memory), bytes,
                               CUDA_(gpu)->stream));
    CK_CU(cuStreamSynchronize(CUDA_(gpu)->stream));
    return CIM_OK;
}

static cim_status cuda_copy_(cim_gpu *gpu, cim_gpu_mem_ source, cim_gpu_mem_ destination,
                             size_t bytes) {
    CIM_TRY(make_current_(gpu));
    CK_CU(cuMemcpyDtoDAsync_v2(DEVICE_POINTER_(destination), DEVICE_POINTER_(source), bytes,
                               CUDA_(gpu)->stream));
    return CIM_OK;
}

static cim_status cuda_fill_(cim_gpu *gpu, cim_gpu_mem_ memory, const void *pattern,
                             size_t pattern_bytes, size_t bytes) {
    CIM_TRY(make_current_(gpu));
    const CUdeviceptr pointer = DEVICE_POINTER_(memory);
    CUstream stream = CUDA_(gpu)->stream;
    uint32_t words[2] = {0, 0};
    memcpy(words, pattern, pattern_bytes);
    switch (pattern_bytes) {
    case 1: CK_CU(cuMemsetD8Async(pointer, *(const uint8_t *)pattern, bytes, stream)); break;
    case 2:
        CK_CU(cuMemsetD16Async(pointer, *(const uint16_t *)pattern, bytes / 2, stream));
        break;
    case 4: CK_CU(cuMemsetD32Async(pointer, words[0], bytes / 4, stream)); break;
    default:
        /* 8 bytes: the driver has no 64-bit memset; 0.0 and any pattern of two equal halves
         * is a 32-bit one */
        if (words[0] != words[1])
            return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT,
                            "CUDA fills 8-byte patterns only when both halves are equal");
        CK_CU(cuMemsetD32Async(pointer, words[0], bytes / 4, stream));
    }
    return CIM_OK;
}

static cim_status cuda_finish_(cim_gpu *gpu) {
    CIM_TRY(make_current_(gpu));
    CK_CU(cuStreamSynchronize(CUDA_(gpu)->stream));
    return CIM_OK;
}

static cim_status cuda_launch_(cim_gpu *gpu, cim_gpu_kernel_id_ id, int dimensions,
                               const size_t global[3], const size_t local[3],
                               const cim_gpu_arg_ *args, int count) {
    (void)dimensions;
    CUfunction function = CUDA_(gpu)->functions[id];
    const char *name = cim_gpu_kernel_names_[id];
    if (!function) return CIM_FAIL(CIM_ERROR_INTERNAL, "kernel %s was not built", name);
    size_t grid[3];
    for (int d = 0; d < 3; d++) grid[d] = global[d] / local[d];
    if (grid[0] > 0x7fffffff || grid[1] > 65535 || grid[2] > 65535)
        return CIM_FAIL(CIM_ERROR_SHAPE,
                        "%s needs a grid of %zu x %zu x %zu blocks; CUDA allows 65535 along "
                        "y and z (a smaller batch fits)", name, grid[0], grid[1], grid[2]);
    enum { MAX_ARGS = 32 };
    void *parameters[MAX_ARGS];
    if (count > MAX_ARGS) return CIM_FAIL(CIM_ERROR_INTERNAL, "%s: %d arguments", name, count);
    for (int i = 0; i < count; i++) parameters[i] = (void *)args[i].value;
    CIM_TRY(make_current_(gpu));
    const CUresult code = cim_cu_.cuLaunchKernel(
        function, (unsigned)grid[0], (unsigned)grid[1], (unsigned)grid[2], (unsigned)local[0],
        (unsigned)local[1], (unsigned)local[2], 0, CUDA_(gpu)->stream, parameters, NULL);
    if (code != CUDA_SUCCESS)
        return CIM_FAIL(CIM_ERROR_INTERNAL, "cuLaunchKernel(%s) failed: %s", name,
                        cim_cu_error_text_(code));
    return CIM_OK;
}

cim_status cim_cuda_gemm_plan(const cim_gemm_layout *g, cim_cublas_call *out) {
    if (!g || !out) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    /* swapped: the request's B is cuBLAS's first operand, A its second; m and n trade */
    *out = (cim_cublas_call){
        .op_first = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        .op_second = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
        .m = g->n, .n = g->m, .k = g->k,
        .first_offset = g->b_offset, .ld_first = g->ldb, .stride_first = g->b_stride,
        .second_offset = g->a_offset, .ld_second = g->lda, .stride_second = g->a_stride,
        .c_offset = g->c_offset, .ldc = g->ldc, .stride_c = g->c_stride, .batch = g->batch};
    if (g->out_plane) {
        /* the NCHW store: one M x L product per image, image i reading columns i L ..
         * i L + L - 1 of B and writing M x L at C + i M L (gpu_ops.c uses it with batch 1
         * and B not transposed) */
        const int L = g->out_plane;
        if (g->batch != 1 || g->trans_b || L < 1 || g->n % L != 0)
            return CIM_FAIL(CIM_ERROR_INTERNAL, "an NCHW-store GEMM cuBLAS cannot express "
                                                "(batch %d, trans_b %d, n %d, plane %d)",
                            g->batch, g->trans_b, g->n, L);
        out->m = L;
        out->stride_first = L;
        out->stride_second = 0;
        out->ldc = L;
        out->stride_c = (int64_t)g->m * L;
        out->batch = g->n / L;
    }
    return CIM_OK;
}

static cim_status cuda_gemm_(cim_gpu *gpu, int f64, const cim_gpu_gemm_ *g, double alpha,
                             double beta) {
    const cim_gemm_layout layout = {
        .trans_a = g->trans_a, .trans_b = g->trans_b, .m = g->m, .n = g->n, .k = g->k,
        .a_offset = g->a_offset, .b_offset = g->b_offset, .c_offset = g->c_offset,
        .lda = g->lda, .ldb = g->ldb, .ldc = g->ldc, .a_stride = g->a_stride,
        .b_stride = g->b_stride, .c_stride = g->c_stride, .batch = g->batch,
        .out_plane = g->out_plane};
    cim_cublas_call call;
    CIM_TRY(cim_cuda_gemm_plan(&layout, &call));
    CIM_TRY(make_current_(gpu));
    cublasHandle_t handle = CUDA_(gpu)->cublas;
    const size_t element = f64 ? sizeof(double) : sizeof(float);
    const CUdeviceptr first = DEVICE_POINTER_(g->b) + (CUdeviceptr)call.first_offset * element;
    const CUdeviceptr second = DEVICE_POINTER_(g->a) + (CUdeviceptr)call.second_offset * element;
    const CUdeviceptr c = DEVICE_POINTER_(g->c) + (CUdeviceptr)call.c_offset * element;
    if (f64) {
        const double *A = (const double *)(uintptr_t)first;
        const double *B = (const double *)(uintptr_t)second;
        double *C = (double *)(uintptr_t)c;
        if (call.batch == 1)
            CK_CUBLAS(cublasDgemm_v2(handle, call.op_first, call.op_second, call.m, call.n,
                                     call.k, &alpha, A, call.ld_first, B, call.ld_second, &beta,
                                     C, call.ldc));
        else
            CK_CUBLAS(cublasDgemmStridedBatched(
                handle, call.op_first, call.op_second, call.m, call.n, call.k, &alpha, A,
                call.ld_first, call.stride_first, B, call.ld_second, call.stride_second, &beta,
                C, call.ldc, call.stride_c, call.batch));
    } else {
        const float alpha32 = (float)alpha, beta32 = (float)beta;
        const float *A = (const float *)(uintptr_t)first;
        const float *B = (const float *)(uintptr_t)second;
        float *C = (float *)(uintptr_t)c;
        if (call.batch == 1)
            CK_CUBLAS(cublasSgemm_v2(handle, call.op_first, call.op_second, call.m, call.n,
                                     call.k, &alpha32, A, call.ld_first, B, call.ld_second,
                                     &beta32, C, call.ldc));
        else
            CK_CUBLAS(cublasSgemmStridedBatched(
                handle, call.op_first, call.op_second, call.m, call.n, call.k, &alpha32, A,
                call.ld_first, call.stride_first, B, call.ld_second, call.stride_second,
                &beta32, C, call.ldc, call.stride_c, call.batch));
    }
    return CIM_OK;
}

/* The tables gpu_ops.c calls: GEMMs in cuBLAS, or (CIM_CUDA_NO_CUBLAS) in gemm.cl. */
#define CUDA_DRIVER_TABLE_(gemm_function)                                                   \
    {.api = "CUDA", .launch = cuda_launch_, .gemm = gemm_function,                         \
     .allocate = cuda_allocate_, .release = cuda_release_, .write = cuda_write_,           \
     .read = cuda_read_, .copy = cuda_copy_, .fill = cuda_fill_, .finish = cuda_finish_}

static const cim_gpu_driver_ cuda_driver_ = CUDA_DRIVER_TABLE_(cuda_gemm_);
static const cim_gpu_driver_ cuda_driver_kernels_ = CUDA_DRIVER_TABLE_(NULL);
