/*
 * opencl_context.c: OpenCL devices, the per-device context, program building with the
 * on-disk cache of kernel_cache.c, and the driver table gpu_ops.c runs the ops through.
 *
 * Device order: platforms as clGetPlatformIDs lists them, and within each its devices of
 * every type; the position in that list is the N of opencl:N.
 *
 * Program cache. Each built program's binary (clGetProgramInfo(CL_PROGRAM_BINARIES)) is
 * kept under the key of the platform name and version, the device name, vendor and version,
 * the driver version, the build options and every source byte. An entry the driver rejects
 * (clCreateProgramWithBinary or clBuildProgram) counts as damaged: the program is rebuilt
 * from source and the entry rewritten.
 *
 * A build failure returns the driver's build log in the error message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencl_internal.h"

enum { MAX_PLATFORMS = 16, MAX_DEVICES = 64 };

static const char CACHE_MAGIC_[8] = {'C', 'I', 'M', 'C', 'L', 'B', 'I', 'N'};

/* ---- devices -------------------------------------------------------------------------- */

typedef struct device_list_ {
    int count;
    cl_platform_id platform[MAX_DEVICES];
    int platform_index[MAX_DEVICES];
    cl_device_id device[MAX_DEVICES];
} device_list_;

static cim_status require_loaded_(void) {
    if (!cim_opencl_loaded_())
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "the OpenCL library is not loaded "
                                               "(call cim_opencl_load first)");
    return CIM_OK;
}

static cim_status list_devices_(device_list_ *list) {
    list->count = 0;
    cl_uint platforms = 0;
    cl_platform_id ids[MAX_PLATFORMS];
    const cl_int found = clGetPlatformIDs(MAX_PLATFORMS, ids, &platforms);
    if (found == CL_PLATFORM_NOT_FOUND_KHR) return CIM_OK;   /* a loader without drivers */
    CK_CL_CODE("clGetPlatformIDs", found);
    if (platforms > MAX_PLATFORMS) platforms = MAX_PLATFORMS;
    for (cl_uint p = 0; p < platforms; p++) {
        cl_uint devices = 0;
        cl_device_id device_ids[MAX_DEVICES];
        const cl_int listed =
            clGetDeviceIDs(ids[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, device_ids, &devices);
        if (listed == CL_DEVICE_NOT_FOUND) continue;
        CK_CL_CODE("clGetDeviceIDs", listed);
        if (devices > MAX_DEVICES) devices = MAX_DEVICES;
        for (cl_uint d = 0; d < devices && list->count < MAX_DEVICES; d++) {
            list->platform[list->count] = ids[p];
            list->platform_index[list->count] = (int)p;
            list->device[list->count] = device_ids[d];
            list->count++;
        }
    }
    return CIM_OK;
}

static cim_status describe_(const device_list_ *list, int index, cim_opencl_device_info *info) {
    memset(info, 0, sizeof *info);
    cl_platform_id platform = list->platform[index];
    cl_device_id device = list->device[index];
    info->index = index;
    info->platform_index = list->platform_index[index];
    CK_CL(clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof info->platform_name - 1,
                            info->platform_name, NULL));
    CK_CL(clGetPlatformInfo(platform, CL_PLATFORM_VERSION, sizeof info->platform_version - 1,
                            info->platform_version, NULL));
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof info->name - 1, info->name, NULL));
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_VENDOR, sizeof info->vendor - 1, info->vendor,
                          NULL));
    CK_CL(clGetDeviceInfo(device, CL_DRIVER_VERSION, sizeof info->driver_version - 1,
                          info->driver_version, NULL));
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_VERSION, sizeof info->version - 1, info->version,
                          NULL));
    cl_device_type type = 0;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof type, &type, NULL));
    info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    info->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    cl_uint units = 0;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL));
    info->compute_units = (int)units;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                          sizeof info->max_work_group_size, &info->max_work_group_size, NULL));
    cl_ulong bytes = 0;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    info->global_memory_bytes = bytes;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof bytes, &bytes, NULL));
    info->max_allocation_bytes = bytes;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    info->local_memory_bytes = bytes;

    /* fp64: a double-precision configuration (OpenCL 1.2+) or the extension (1.0, 1.1) */
    cl_device_fp_config fp64 = 0;
    const cl_int asked =
        clGetDeviceInfo(device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL);
    size_t length = 0;
    CK_CL(clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &length));
    char *extensions = calloc(length + 1, 1);
    if (!extensions) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %zu bytes", length);
    const cl_int listed = clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, length, extensions, NULL);
    info->has_fp64 = (asked == CL_SUCCESS && fp64 != 0) ||
                     (listed == CL_SUCCESS && strstr(extensions, "cl_khr_fp64") != NULL);
    free(extensions);
    CK_CL_CODE("clGetDeviceInfo(CL_DEVICE_EXTENSIONS)", listed);
    return CIM_OK;
}

cim_status cim_opencl_device_count(int *out_count) {
    if (!out_count) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_count is NULL");
    *out_count = 0;
    CIM_TRY(require_loaded_());
    device_list_ list;
    CIM_TRY(list_devices_(&list));
    *out_count = list.count;
    return CIM_OK;
}

cim_status cim_opencl_device_info_get(int index, cim_opencl_device_info *out_info) {
    if (!out_info) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_info is NULL");
    CIM_TRY(require_loaded_());
    device_list_ list;
    CIM_TRY(list_devices_(&list));
    if (index < 0 || index >= list.count)
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "no OpenCL device %d (this machine has %d)",
                        index, list.count);
    return describe_(&list, index, out_info);
}

/* ---- programs ------------------------------------------------------------------------- */

static uint64_t program_key_(const cim_opencl_context *context, const char *options,
                             const cim_program_text_ *text) {
    const cim_opencl_device_info *info = &context->info;
    uint64_t hash = cim_fnv1a_string_(cim_fnv1a_start_(), "cim-train opencl program v1");
    hash = cim_fnv1a_string_(hash, info->platform_name);
    hash = cim_fnv1a_string_(hash, info->platform_version);
    hash = cim_fnv1a_string_(hash, info->name);
    hash = cim_fnv1a_string_(hash, info->vendor);
    hash = cim_fnv1a_string_(hash, info->version);
    hash = cim_fnv1a_string_(hash, info->driver_version);
    hash = cim_fnv1a_string_(hash, options);
    for (int i = 0; i < text->count; i++)
        hash = cim_fnv1a_(hash, text->strings[i], text->lengths[i]);
    return hash;
}

/* The program's build log, malloc'ed, in *out (the caller frees it). */
static cim_status build_log_(const cim_opencl_context *context, cl_program program,
                             char **out) {
    *out = NULL;
    size_t size = 0;
    CK_CL(clGetProgramBuildInfo(program, context->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size));
    if (!(*out = calloc(size + 1, 1)))
        return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for a %zu-byte log", size);
    CK_CL(clGetProgramBuildInfo(program, context->device, CL_PROGRAM_BUILD_LOG, size, *out,
                                NULL));
    return CIM_OK;
}

/* Puts the build log after the failure message; returns the status to report. */
static cim_status build_failure_(const cim_opencl_context *context, cl_program program,
                                 const char *call, cl_int code, const char *label,
                                 const char *files, const char *options) {
    char *log = NULL;
    if (build_log_(context, program, &log) != CIM_OK) {
        free(log);
        log = NULL;
    }
    cim_status status = CIM_FAIL(cim_cl_status_(code) == CIM_ERROR_OUT_OF_MEMORY
                                     ? CIM_ERROR_OUT_OF_MEMORY : CIM_ERROR_INTERNAL,
                                 "%s failed: %s (%d) for the %s program (%s; options %s) on "
                                 "%s; build log:\n%s", call, cim_cl_error_name_(code),
                                 (int)code, label, files, options, context->info.name,
                                 log && log[0] ? log : "(the driver gave no log)");
    free(log);
    return status;
}

/* Checks a clBuildProgram call; on failure returns with the build log in the message. */
#define CK_CL_BUILD(call, context, program, label, files, options)                          \
    do {                                                                                    \
        const cl_int cim_cl_code_ = (call);                                                 \
        if (cim_cl_code_ != CL_SUCCESS) {                                                   \
            cim_status cim_cl_status_value_ = build_failure_(                               \
                context, program, #call, cim_cl_code_, label, files, options);              \
            CL_CLEANUP(clReleaseProgram(program));                                          \
            return cim_cl_status_value_;                                                    \
        }                                                                                   \
    } while (0)

static cim_status build_from_source_(cim_opencl_context *context, const char *label,
                                     const char *options, const cim_program_text_ *text,
                                     cl_program *out) {
    cl_program program = NULL;
    CK_CL_ERR(program = clCreateProgramWithSource(context->context, (cl_uint)text->count,
                                                  (const char **)text->strings, text->lengths,
                                                  &cl_err_));
    CK_CL_BUILD(clBuildProgram(program, 1, &context->device, options, NULL, NULL), context,
                program, label, text->file_list, options);
    *out = program;
    return CIM_OK;
}

/* The program of a cached binary in *out, which the caller releases also on failure. */
static cim_status build_from_binary_(cim_opencl_context *context, const char *options,
                                     const unsigned char *binary, size_t size,
                                     cl_program *out) {
    cl_int binary_status = CL_SUCCESS;
    CK_CL_ERR(*out = clCreateProgramWithBinary(context->context, 1, &context->device, &size,
                                               &binary, &binary_status, &cl_err_));
    if (binary_status != CL_SUCCESS)
        return CIM_FAIL(CIM_ERROR_INTERNAL, "the driver rejects a cached binary: %s (%d)",
                        cim_cl_error_name_(binary_status), (int)binary_status);
    CK_CL(clBuildProgram(*out, 1, &context->device, options, NULL, NULL));
    return CIM_OK;
}

/* The program's binary (one device) into a malloc'ed *out, which the caller frees. */
static cim_status program_binary_(cl_program program, unsigned char **out, size_t *size) {
    *out = NULL;
    CK_CL(clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof *size, size, NULL));
    if (*size == 0) return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "the driver gives no binary");
    if (!(*out = malloc(*size)))
        return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %zu bytes", *size);
    CK_CL(clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof *out, out, NULL));
    return CIM_OK;
}

static cim_status cache_write_(const cim_opencl_context *context, cl_program program,
                               uint64_t key) {
    size_t size = 0;
    unsigned char *binary = NULL;
    cim_status status = program_binary_(program, &binary, &size);
    if (status == CIM_OK)
        status = cim_cache_write_(context->cache.directory, CACHE_MAGIC_, key, binary, size);
    free(binary);
    return status;
}

/* Builds program `id`, through the cache when it is enabled. */
static cim_status build_program_(cim_opencl_context *context, int id) {
    const cim_gpu_program_spec_ *spec = &cim_gpu_programs_[id];
    cim_program_text_ text;
    CIM_TRY(cim_program_text_make_("prelude_opencl.h", spec->files, NULL, NULL, &text));
    const uint64_t key = program_key_(context, spec->options, &text);

    if (context->cache_enabled) {
        unsigned char *binary = NULL;
        size_t size = 0;
        cim_status status =
            cim_cache_read_(context->cache.directory, CACHE_MAGIC_, key, &binary, &size);
        if (status == CIM_OK) {
            cl_program program = NULL;
            status = build_from_binary_(context, spec->options, binary, size, &program);
            free(binary);
            if (status == CIM_OK) {
                context->programs[id] = program;
                context->cache.loaded++;
                return CIM_OK;
            }
            if (program) CL_CLEANUP(clReleaseProgram(program));
        }
        if (status != CIM_ERROR_UNAVAILABLE) context->cache.corrupt++;
    }

    CIM_TRY(build_from_source_(context, spec->label, spec->options, &text,
                               &context->programs[id]));
    context->cache.built++;
    if (context->cache_enabled && cache_write_(context, context->programs[id], key) == CIM_OK)
        context->cache.saved++;
    cim_clear_error();   /* a cache that cannot be written is not a failure */
    return CIM_OK;
}

/* ---- context -------------------------------------------------------------------------- */

static cim_status create_kernels_(cim_opencl_context *context) {
    for (int k = 0; k < CIM_GPU_KERNEL_COUNT; k++) {
        cl_program program = context->programs[cim_gpu_kernel_programs_[k]];
        if (!program) continue;   /* the fp64 program on a device without fp64 */
        const char *name = cim_gpu_kernel_names_[k];
        cl_kernel kernel = NULL;
        CK_CL_ERR(kernel = clCreateKernel(program, name, &cl_err_));
        context->kernels[k] = kernel;
        const size_t group = cim_gpu_kernel_groups_[k];
        if (group == 0) continue;
        size_t allowed = 0;
        CK_CL_AT(clGetKernelWorkGroupInfo(kernel, context->device, CL_KERNEL_WORK_GROUP_SIZE,
                                          sizeof allowed, &allowed, NULL),
                 "%s", name);
        if (allowed < group)
            return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                            "%s: kernel %s needs work-groups of %zu, the device allows %zu",
                            context->info.name, name, group, allowed);
    }
    return CIM_OK;
}

static const cim_gpu_driver_ opencl_driver_;

static cim_status context_init_(cim_opencl_context *context, int index, const char *cache_dir,
                                int flags) {
    device_list_ list;
    CIM_TRY(list_devices_(&list));
    if (index < 0 || index >= list.count)
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "no OpenCL device %d (this machine has %d)",
                        index, list.count);
    CIM_TRY(describe_(&list, index, &context->info));
    if (flags & CIM_OPENCL_IGNORE_FP64) context->info.has_fp64 = 0;
    context->platform = list.platform[index];
    context->device = list.device[index];
    if (context->info.max_work_group_size < CIM_GPU_REQUIRED_GROUP_SIZE)
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                        "%s allows work-groups of %zu work-items; cim-train needs %d",
                        context->info.name, context->info.max_work_group_size,
                        CIM_GPU_REQUIRED_GROUP_SIZE);

    cim_gpu *gpu = &context->gpu;
    gpu->driver = &opencl_driver_;
    snprintf(gpu->name, sizeof gpu->name, "%s", context->info.name);
    snprintf(gpu->label, sizeof gpu->label, "opencl:%d", index);
    gpu->has_fp64 = context->info.has_fp64;
    gpu->conv_scratch_floats = CIM_GPU_DEFAULT_CONV_SCRATCH_FLOATS;

    const cl_context_properties properties[] = {
        CL_CONTEXT_PLATFORM, (cl_context_properties)context->platform, 0};
    CK_CL_ERR(context->context = clCreateContext(properties, 1, &context->device, NULL, NULL,
                                                 &cl_err_));
    CK_CL_ERR(context->queue = clCreateCommandQueue(context->context, context->device, 0,
                                                    &cl_err_));

    cim_cache_directory_(cache_dir, "opencl", context->cache.directory,
                         sizeof context->cache.directory);
    context->cache_enabled = context->cache.directory[0] != '\0';

    CIM_TRY(cim_opencl_context_set_gemm(context, CIM_OPENCL_GEMM_AUTO));
    CIM_TRY(build_program_(context, CIM_GPU_PROGRAM_F32));
    if (context->info.has_fp64) CIM_TRY(build_program_(context, CIM_GPU_PROGRAM_F64));
    return create_kernels_(context);
}

cim_status cim_opencl_context_create(int index, const char *cache_dir, int flags,
                                     cim_opencl_context **out_context) {
    if (!out_context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "out_context is NULL");
    *out_context = NULL;
    CIM_TRY(require_loaded_());
    cim_opencl_context *context = calloc(1, sizeof *context);
    if (!context) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for an OpenCL context");
    const cim_status status = context_init_(context, index, cache_dir, flags);
    if (status != CIM_OK) {
        cim_opencl_context_destroy(context);   /* keeps the message: releases set none */
        return status;
    }
    *out_context = context;
    return CIM_OK;
}

/* Release calls have no caller to report to: they only drop references. */
void cim_opencl_context_destroy(cim_opencl_context *context) {
    if (!context) return;
    if (context->queue) CL_CLEANUP(clFinish(context->queue));
    if (context->gpu.driver) cim_gpu_release_scratch_(&context->gpu);
    for (int k = 0; k < CIM_GPU_KERNEL_COUNT; k++)
        if (context->kernels[k]) CL_CLEANUP(clReleaseKernel(context->kernels[k]));
    for (int p = 0; p < CIM_GPU_PROGRAM_COUNT; p++)
        if (context->programs[p]) CL_CLEANUP(clReleaseProgram(context->programs[p]));
    if (context->queue) CL_CLEANUP(clReleaseCommandQueue(context->queue));
    if (context->context) CL_CLEANUP(clReleaseContext(context->context));
    free(context);
}

cim_gpu *cim_opencl_context_gpu(cim_opencl_context *context) {
    return context ? &context->gpu : NULL;
}

cim_status cim_opencl_context_set_gemm(cim_opencl_context *context, cim_opencl_gemm gemm) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (gemm != CIM_OPENCL_GEMM_AUTO && gemm != CIM_OPENCL_GEMM_TILED &&
        gemm != CIM_OPENCL_GEMM_CPU)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "unknown GEMM kernel choice %d", (int)gemm);
    if (gemm == CIM_OPENCL_GEMM_AUTO)
        gemm = context->info.is_cpu ? CIM_OPENCL_GEMM_CPU : CIM_OPENCL_GEMM_TILED;
    context->gpu.gemm_kernels = gemm == CIM_OPENCL_GEMM_CPU ? CIM_GPU_GEMM_CPU
                                                            : CIM_GPU_GEMM_TILED;
    return CIM_OK;
}

const cim_opencl_device_info *cim_opencl_context_device(const cim_opencl_context *context) {
    return context ? &context->info : NULL;
}

void cim_opencl_context_cache_stats(const cim_opencl_context *context,
                                    cim_program_cache_stats *out_stats) {
    if (!out_stats) return;
    if (!context) {
        memset(out_stats, 0, sizeof *out_stats);
        return;
    }
    *out_stats = context->cache;
}

cim_status cim_opencl_build_check(cim_opencl_context *context, const char *name,
                                  const char *source, const char *options) {
    if (!context || !source) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    cim_program_text_ text;
    CIM_TRY(cim_program_text_make_("prelude_opencl.h", NULL, name ? name : "check.cl", source,
                                   &text));
    char all_options[1024];
    snprintf(all_options, sizeof all_options, "%s %s",
             cim_gpu_programs_[CIM_GPU_PROGRAM_F32].options, options ? options : "");
    cl_program program = NULL;
    CIM_TRY(build_from_source_(context, name ? name : "check", all_options, &text, &program));
    CK_CL(clReleaseProgram(program));
    return CIM_OK;
}

/* ---- the driver table ------------------------------------------------------------------ */

#define OPENCL_(gpu) ((cim_opencl_context *)(gpu))

static cim_status opencl_allocate_(cim_gpu *gpu, size_t bytes, cim_gpu_mem_ *out) {
    cl_mem memory = NULL;
    CK_CL_ERR(memory = clCreateBuffer(OPENCL_(gpu)->context, CL_MEM_READ_WRITE, bytes, NULL,
                                      &cl_err_));
    *out = memory;
    return CIM_OK;
}

static void opencl_release_(cim_gpu *gpu, cim_gpu_mem_ memory) {
    (void)gpu;
    CL_CLEANUP(clReleaseMemObject((cl_mem)memory));
}

static cim_status opencl_write_(cim_gpu *gpu, cim_gpu_mem_ memory, const void *source,
                                size_t bytes) {
    CK_CL(clEnqueueWriteBuffer(OPENCL_(gpu)->queue, (cl_mem)memory, CL_TRUE, 0, bytes, source,
                               0, NULL, NULL));
    return CIM_OK;
}

static cim_status opencl_read_(cim_gpu *gpu, cim_gpu_mem_ memory, void *destination,
                               size_t bytes) {
    CK_CL(clEnqueueReadBuffer(OPENCL_(gpu)->queue, (cl_mem)memory, CL_TRUE, 0, bytes,
                              destination, 0, NULL, NULL));
    return CIM_OK;
}

static cim_status opencl_copy_(cim_gpu *gpu, cim_gpu_mem_ source, cim_gpu_mem_ destination,
                               size_t bytes) {
    CK_CL(clEnqueueCopyBuffer(OPENCL_(gpu)->queue, (cl_mem)source, (cl_mem)destination, 0, 0,
                              bytes, 0, NULL, NULL));
    return CIM_OK;
}

static cim_status opencl_fill_(cim_gpu *gpu, cim_gpu_mem_ memory, const void *pattern,
                               size_t pattern_bytes, size_t bytes) {
    CK_CL(clEnqueueFillBuffer(OPENCL_(gpu)->queue, (cl_mem)memory, pattern, pattern_bytes, 0,
                              bytes, 0, NULL, NULL));
    return CIM_OK;
}

static cim_status opencl_finish_(cim_gpu *gpu) {
    CK_CL(clFinish(OPENCL_(gpu)->queue));
    return CIM_OK;
}

static cim_status opencl_launch_(cim_gpu *gpu, cim_gpu_kernel_id_ id, int dimensions,
                                 const size_t global[3], const size_t local[3],
                                 const cim_gpu_arg_ *args, int count) {
    cl_kernel kernel = OPENCL_(gpu)->kernels[id];
    const char *name = cim_gpu_kernel_names_[id];
    if (!kernel) return CIM_FAIL(CIM_ERROR_INTERNAL, "kernel %s was not built", name);
    for (int i = 0; i < count; i++)
        CK_CL_AT(clSetKernelArg(kernel, (cl_uint)i, args[i].size, args[i].value),
                 "argument %d of %s", i, name);
    CK_CL_AT(clEnqueueNDRangeKernel(OPENCL_(gpu)->queue, kernel, (cl_uint)dimensions, NULL,
                                    global, local, 0, NULL, NULL),
             "%s", name);
    return CIM_OK;
}

static const cim_gpu_driver_ opencl_driver_ = {
    .api = "OpenCL",
    .launch = opencl_launch_,
    .gemm = NULL,   /* gemm.cl: no BLAS comes with an OpenCL driver */
    .allocate = opencl_allocate_,
    .release = opencl_release_,
    .write = opencl_write_,
    .read = opencl_read_,
    .copy = opencl_copy_,
    .fill = opencl_fill_,
    .finish = opencl_finish_,
};
