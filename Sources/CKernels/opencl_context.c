/*
 * opencl_context.c: OpenCL devices, the per-device context, program building with an
 * on-disk cache, device memory and the kernel launch helper.
 *
 * Device order: platforms as clGetPlatformIDs lists them, and within each its devices of
 * every type; the position in that list is the N of opencl:N.
 *
 * Program cache. Compiling the programs takes seconds (PoCL runs LLVM), so each built
 * program's binary (clGetProgramInfo(CL_PROGRAM_BINARIES)) is kept in
 *   <dir>/<key>.bin,  dir = $XDG_CACHE_HOME/cim-train/opencl or ~/.cache/cim-train/opencl
 * where key is a 64-bit FNV-1a hash of the platform name and version, the device name,
 * vendor and version, the driver version, the build options and every source byte. A file
 * holds a header (magic "CIMCLBIN", format version, the key, the binary's size and FNV-1a
 * checksum) and the binary. An entry that is short, fails its checks, or that the driver
 * rejects (clCreateProgramWithBinary or clBuildProgram) counts as corrupt: the program is
 * rebuilt from source and the entry rewritten. Entries are written to a temporary file and
 * renamed, so a reader never sees half a file. Failing to write the cache is not an error.
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

enum { MAX_PLATFORMS = 16, MAX_DEVICES = 64, REQUIRED_GROUP_SIZE = 256 };

/* Floats of scratch one convolution pass may use for its patches and rows (128 MiB). */
static const long DEFAULT_CONV_SCRATCH_FLOATS = 32L << 20;

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

/* ---- hashing and the cache directory -------------------------------------------------- */

static uint64_t fnv1a_(uint64_t hash, const void *data, size_t size) {
    const unsigned char *bytes = data;
    for (size_t i = 0; i < size; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ull;
    }
    return hash;
}

static const uint64_t FNV_OFFSET_ = 0xcbf29ce484222325ull;

static uint64_t fnv1a_string_(uint64_t hash, const char *text) {
    /* the terminating NUL too, so ("ab", "c") and ("a", "bc") differ */
    return fnv1a_(hash, text, strlen(text) + 1);
}

/* mkdir -p; 0 on success */
static int make_directories_(const char *path) {
    char partial[1024];
    const size_t length = strlen(path);
    if (length == 0 || length >= sizeof partial) return -1;
    memcpy(partial, path, length + 1);
    for (size_t i = 1; i <= length; i++) {
        if (partial[i] != '/' && partial[i] != '\0') continue;
        const char saved = partial[i];
        partial[i] = '\0';
        if (mkdir(partial, 0755) != 0 && errno != EEXIST) return -1;
        partial[i] = saved;
    }
    return 0;
}

static void resolve_cache_directory_(const char *requested, char *out, size_t size) {
    out[0] = '\0';
    if (requested) {
        snprintf(out, size, "%s", requested);
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(out, size, "%s/cim-train/opencl", xdg);
    else if (home && home[0] == '/')
        snprintf(out, size, "%s/.cache/cim-train/opencl", home);
}

/* ---- programs ------------------------------------------------------------------------- */

typedef struct program_spec_ {
    const char *label;
    const char *options;
    const char *files[10];   /* NULL-terminated, after the prelude and common.cl */
} program_spec_;

static const program_spec_ programs_[CIM_CL_PROGRAM_COUNT] = {
    [CIM_CL_PROGRAM_F32] = {"f32", "-DCIM_REAL=float -DCIM_REAL_NAME=f32",
                            {"gemm.cl", "conv2d.cl", "batchnorm.cl", "elementwise.cl",
                             "pooling.cl", "normalize.cl", "sgd.cl", NULL}},
    [CIM_CL_PROGRAM_F64] = {"f64", "-DCIM_REAL=double -DCIM_REAL_NAME=f64 -DCIM_FP64=1",
                            {"gemm.cl", "logdet.cl", "batchnorm_sync.cl", NULL}},
};

enum { MAX_PIECES = 32 };

/* The strings of one program: "#line 1 <file>" before each file, so build logs name the
 * file and line. `extra` (may be NULL) is appended as the file `extra_name`. */
typedef struct program_text_ {
    int count;
    const char *strings[MAX_PIECES];
    size_t lengths[MAX_PIECES];
    char line_directives[MAX_PIECES / 2][96];
    char file_list[512];
} program_text_;

static cim_status add_file_(program_text_ *text, const char *name, const char *body,
                            size_t size) {
    if (text->count + 2 > MAX_PIECES)
        return CIM_FAIL(CIM_ERROR_INTERNAL, "too many source files in one program");
    char *line = text->line_directives[text->count / 2];
    snprintf(line, sizeof text->line_directives[0], "#line 1 \"%s\"\n", name);
    text->strings[text->count] = line;
    text->lengths[text->count] = strlen(line);
    text->strings[text->count + 1] = body;
    text->lengths[text->count + 1] = size;
    text->count += 2;
    const size_t used = strlen(text->file_list);
    snprintf(text->file_list + used, sizeof text->file_list - used, "%s%s", used ? " " : "",
             name);
    return CIM_OK;
}

static cim_status add_embedded_(program_text_ *text, const char *name) {
    const cim_kernel_source *source = cim_kernel_source_named(name);
    if (!source) return CIM_FAIL(CIM_ERROR_INTERNAL, "kernel source %s is not embedded", name);
    return add_file_(text, name, source->text, source->size);
}

static cim_status program_text_make_(const char *const *files, const char *extra_name,
                                     const char *extra, program_text_ *text) {
    memset(text, 0, sizeof *text);
    CIM_TRY(add_embedded_(text, "prelude_opencl.h"));
    CIM_TRY(add_embedded_(text, "common.cl"));
    for (int i = 0; files && files[i]; i++) CIM_TRY(add_embedded_(text, files[i]));
    if (extra) CIM_TRY(add_file_(text, extra_name, extra, strlen(extra)));
    return CIM_OK;
}

static uint64_t program_key_(const cim_opencl_context *context, const char *options,
                             const program_text_ *text) {
    const cim_opencl_device_info *info = &context->info;
    uint64_t hash = fnv1a_string_(FNV_OFFSET_, "cim-train opencl program v1");
    hash = fnv1a_string_(hash, info->platform_name);
    hash = fnv1a_string_(hash, info->platform_version);
    hash = fnv1a_string_(hash, info->name);
    hash = fnv1a_string_(hash, info->vendor);
    hash = fnv1a_string_(hash, info->version);
    hash = fnv1a_string_(hash, info->driver_version);
    hash = fnv1a_string_(hash, options);
    for (int i = 0; i < text->count; i++) hash = fnv1a_(hash, text->strings[i], text->lengths[i]);
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
                                     const char *options, const program_text_ *text,
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

typedef struct cache_header_ {
    char magic[8];           /* "CIMCLBIN" */
    uint32_t version;        /* 1 */
    uint32_t reserved;
    uint64_t key;
    uint64_t size;           /* bytes of binary that follow */
    uint64_t checksum;       /* FNV-1a of those bytes */
} cache_header_;

static void cache_path_(const cim_opencl_context *context, uint64_t key, char *out,
                        size_t size) {
    snprintf(out, size, "%s/%016llx.bin", context->cache.directory, (unsigned long long)key);
}

/* Reads and checks an entry: CIM_OK with *binary (malloc'ed), CIM_ERROR_UNAVAILABLE when
 * there is none, CIM_ERROR_INTERNAL when it is corrupt. */
static cim_status cache_read_(const char *path, uint64_t key, unsigned char **binary,
                              size_t *size) {
    *binary = NULL;
    FILE *file = fopen(path, "rb");
    if (!file) return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "no cache entry %s", path);
    cache_header_ header;
    cim_status status = CIM_OK;
    unsigned char *data = NULL;
    if (fread(&header, sizeof header, 1, file) != 1 ||
        memcmp(header.magic, "CIMCLBIN", 8) != 0 || header.version != 1 ||
        header.key != key || header.size == 0 || header.size > ((uint64_t)1 << 32)) {
        status = CIM_FAIL(CIM_ERROR_INTERNAL, "cache entry %s has a bad header", path);
    } else if (!(data = malloc(header.size))) {
        status = CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %llu bytes",
                          (unsigned long long)header.size);
    } else if (fread(data, 1, header.size, file) != header.size ||
               fnv1a_(FNV_OFFSET_, data, header.size) != header.checksum ||
               fgetc(file) != EOF) {
        status = CIM_FAIL(CIM_ERROR_INTERNAL, "cache entry %s is truncated or corrupt", path);
    }
    fclose(file);
    if (status != CIM_OK) {
        free(data);
        return status;
    }
    *binary = data;
    *size = header.size;
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
    const cim_status got = program_binary_(program, &binary, &size);
    if (got != CIM_OK) {
        free(binary);
        return got;
    }

    char path[1100], temporary[1200];
    cache_path_(context, key, path, sizeof path);
    snprintf(temporary, sizeof temporary, "%s.%ld.tmp", path, (long)getpid());
    cache_header_ header = {{'C', 'I', 'M', 'C', 'L', 'B', 'I', 'N'}, 1, 0, key, size,
                            fnv1a_(FNV_OFFSET_, binary, size)};
    FILE *file = make_directories_(context->cache.directory) == 0 ? fopen(temporary, "wb")
                                                                  : NULL;
    int ok = file && fwrite(&header, sizeof header, 1, file) == 1 &&
             fwrite(binary, 1, size, file) == size;
    if (file) ok = fclose(file) == 0 && ok;
    free(binary);
    if (ok && rename(temporary, path) == 0) return CIM_OK;
    unlink(temporary);
    return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "cannot write the cache entry %s", path);
}

/* Builds program `id`, through the cache when it is enabled. */
static cim_status build_program_(cim_opencl_context *context, int id) {
    const program_spec_ *spec = &programs_[id];
    program_text_ text;
    CIM_TRY(program_text_make_(spec->files, NULL, NULL, &text));
    const uint64_t key = program_key_(context, spec->options, &text);

    if (context->cache_enabled) {
        char path[1100];
        cache_path_(context, key, path, sizeof path);
        unsigned char *binary = NULL;
        size_t size = 0;
        cim_status status = cache_read_(path, key, &binary, &size);
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

static const char *const kernel_names_[CIM_CL_KERNEL_COUNT] = {
#define CIM_CL_KERNEL_NAME_(id, program, name, group) name,
    CIM_CL_KERNELS(CIM_CL_KERNEL_NAME_)
#undef CIM_CL_KERNEL_NAME_
};
static const int kernel_programs_[CIM_CL_KERNEL_COUNT] = {
#define CIM_CL_KERNEL_PROGRAM_(id, program, name, group) program,
    CIM_CL_KERNELS(CIM_CL_KERNEL_PROGRAM_)
#undef CIM_CL_KERNEL_PROGRAM_
};
static const size_t kernel_groups_[CIM_CL_KERNEL_COUNT] = {
#define CIM_CL_KERNEL_GROUP_(id, program, name, group) group,
    CIM_CL_KERNELS(CIM_CL_KERNEL_GROUP_)
#undef CIM_CL_KERNEL_GROUP_
};

static cim_status create_kernels_(cim_opencl_context *context) {
    for (int k = 0; k < CIM_CL_KERNEL_COUNT; k++) {
        cl_program program = context->programs[kernel_programs_[k]];
        if (!program) continue;   /* the fp64 program on a device without fp64 */
        cl_kernel kernel = NULL;
        CK_CL_ERR(kernel = clCreateKernel(program, kernel_names_[k], &cl_err_));
        context->kernels[k] = kernel;
        if (kernel_groups_[k] == 0) continue;
        size_t allowed = 0;
        CK_CL_AT(clGetKernelWorkGroupInfo(kernel, context->device, CL_KERNEL_WORK_GROUP_SIZE,
                                          sizeof allowed, &allowed, NULL),
                 "%s", kernel_names_[k]);
        if (allowed < kernel_groups_[k])
            return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                            "%s: kernel %s needs work-groups of %zu, the device allows %zu",
                            context->info.name, kernel_names_[k], kernel_groups_[k], allowed);
    }
    return CIM_OK;
}

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
    if (context->info.max_work_group_size < REQUIRED_GROUP_SIZE)
        return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                        "%s allows work-groups of %zu work-items; cim-train needs %d",
                        context->info.name, context->info.max_work_group_size,
                        REQUIRED_GROUP_SIZE);

    const cl_context_properties properties[] = {
        CL_CONTEXT_PLATFORM, (cl_context_properties)context->platform, 0};
    CK_CL_ERR(context->context = clCreateContext(properties, 1, &context->device, NULL, NULL,
                                                 &cl_err_));
    CK_CL_ERR(context->queue = clCreateCommandQueue(context->context, context->device, 0,
                                                    &cl_err_));

    resolve_cache_directory_(cache_dir, context->cache.directory,
                             sizeof context->cache.directory);
    context->cache_enabled = context->cache.directory[0] != '\0';

    CIM_TRY(cim_opencl_context_set_gemm(context, CIM_OPENCL_GEMM_AUTO));
    context->conv_scratch_floats = DEFAULT_CONV_SCRATCH_FLOATS;
    CIM_TRY(build_program_(context, CIM_CL_PROGRAM_F32));
    if (context->info.has_fp64) CIM_TRY(build_program_(context, CIM_CL_PROGRAM_F64));
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
    for (int k = 0; k < CIM_CL_KERNEL_COUNT; k++)
        if (context->kernels[k]) CL_CLEANUP(clReleaseKernel(context->kernels[k]));
    for (int p = 0; p < CIM_CL_PROGRAM_COUNT; p++)
        if (context->programs[p]) CL_CLEANUP(clReleaseProgram(context->programs[p]));
    for (int s = 0; s < CIM_CL_SCRATCH_COUNT; s++)
        if (context->scratch[s]) CL_CLEANUP(clReleaseMemObject(context->scratch[s]));
    if (context->queue) CL_CLEANUP(clReleaseCommandQueue(context->queue));
    if (context->context) CL_CLEANUP(clReleaseContext(context->context));
    free(context);
}

cim_status cim_opencl_context_set_gemm(cim_opencl_context *context, cim_opencl_gemm gemm) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (gemm != CIM_OPENCL_GEMM_AUTO && gemm != CIM_OPENCL_GEMM_TILED &&
        gemm != CIM_OPENCL_GEMM_CPU)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "unknown GEMM kernel choice %d", (int)gemm);
    if (gemm == CIM_OPENCL_GEMM_AUTO)
        gemm = context->info.is_cpu ? CIM_OPENCL_GEMM_CPU : CIM_OPENCL_GEMM_TILED;
    context->gemm = gemm;
    return CIM_OK;
}

cim_status cim_opencl_context_set_conv_scratch_limit(cim_opencl_context *context,
                                                     size_t bytes) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    context->conv_scratch_floats = (long)(bytes / sizeof(float));
    return CIM_OK;
}

const cim_opencl_device_info *cim_opencl_context_device(const cim_opencl_context *context) {
    return context ? &context->info : NULL;
}

void cim_opencl_context_cache_stats(const cim_opencl_context *context,
                                    cim_opencl_cache_stats *out_stats) {
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
    program_text_ text;
    CIM_TRY(program_text_make_(NULL, name ? name : "check.cl", source, &text));
    char all_options[1024];
    snprintf(all_options, sizeof all_options, "%s %s", programs_[CIM_CL_PROGRAM_F32].options,
             options ? options : "");
    cl_program program = NULL;
    CIM_TRY(build_from_source_(context, name ? name : "check", all_options, &text, &program));
    CK_CL(clReleaseProgram(program));
    return CIM_OK;
}

size_t cim_opencl_context_workspace_bytes(const cim_opencl_context *context) {
    size_t total = 0;
    for (int s = 0; context && s < CIM_CL_SCRATCH_COUNT; s++) total += context->scratch_bytes[s];
    return total;
}

cim_status cim_cl_scratch_(cim_opencl_context *context, int slot, size_t bytes, cl_mem *out) {
    if (bytes == 0) bytes = 4;
    if (bytes > context->scratch_bytes[slot]) {
        if (context->scratch[slot]) CK_CL(clReleaseMemObject(context->scratch[slot]));
        context->scratch[slot] = NULL;
        context->scratch_bytes[slot] = 0;
        cl_mem memory = NULL;
        CK_CL_ERR(memory = clCreateBuffer(context->context, CL_MEM_READ_WRITE, bytes, NULL,
                                          &cl_err_));
        context->scratch[slot] = memory;
        context->scratch_bytes[slot] = bytes;
    }
    *out = context->scratch[slot];
    return CIM_OK;
}

cim_status cim_cl_require_fp64_(const cim_opencl_context *context, const char *op) {
    if (context->programs[CIM_CL_PROGRAM_F64]) return CIM_OK;
    return CIM_FAIL(CIM_ERROR_UNAVAILABLE,
                    "%s needs fp64, which %s (opencl:%d) does not support (no cl_khr_fp64); "
                    "run float64 work such as the CorInfoMax covariance on the CPU backend",
                    op, context->info.name, context->info.index);
}

/* ---- memory --------------------------------------------------------------------------- */

cim_status cim_opencl_buffer_create(cim_opencl_context *context, size_t bytes,
                                    cim_opencl_buffer **out_buffer) {
    if (!context || !out_buffer) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    *out_buffer = NULL;
    cl_mem memory = NULL;
    /* OpenCL has no empty buffers; an empty tensor gets 4 bytes nobody reads */
    CK_CL_ERR(memory = clCreateBuffer(context->context, CL_MEM_READ_WRITE, bytes ? bytes : 4,
                                      NULL, &cl_err_));
    *out_buffer = (cim_opencl_buffer *)memory;
    return CIM_OK;
}

void cim_opencl_buffer_destroy(cim_opencl_buffer *buffer) {
    if (buffer) CL_CLEANUP(clReleaseMemObject((cl_mem)buffer));
}

cim_status cim_opencl_write(cim_opencl_context *context, cim_opencl_buffer *buffer,
                            const void *source, size_t bytes) {
    if (!context || !buffer || (bytes && !source))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    if (bytes == 0) return CIM_OK;
    CK_CL(clEnqueueWriteBuffer(context->queue, (cl_mem)buffer, CL_TRUE, 0, bytes, source, 0,
                               NULL, NULL));
    return CIM_OK;
}

cim_status cim_opencl_read(cim_opencl_context *context, cim_opencl_buffer *buffer,
                           void *destination, size_t bytes) {
    if (!context || !buffer || (bytes && !destination))
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    if (bytes == 0) return CIM_OK;
    CK_CL(clEnqueueReadBuffer(context->queue, (cl_mem)buffer, CL_TRUE, 0, bytes, destination,
                              0, NULL, NULL));
    return CIM_OK;
}

cim_status cim_opencl_copy(cim_opencl_context *context, cim_opencl_buffer *source,
                           cim_opencl_buffer *destination, size_t bytes) {
    if (!context || !source || !destination)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    if (bytes == 0 || source == destination) return CIM_OK;
    CK_CL(clEnqueueCopyBuffer(context->queue, (cl_mem)source, (cl_mem)destination, 0, 0, bytes,
                              0, NULL, NULL));
    return CIM_OK;
}

cim_status cim_opencl_fill(cim_opencl_context *context, cim_opencl_buffer *buffer,
                           const void *pattern, size_t pattern_bytes, size_t bytes) {
    if (!context || !buffer || !pattern)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL argument");
    if (pattern_bytes != 1 && pattern_bytes != 2 && pattern_bytes != 4 && pattern_bytes != 8)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "pattern of %zu bytes", pattern_bytes);
    if (bytes % pattern_bytes != 0)
        return CIM_FAIL(CIM_ERROR_SHAPE, "%zu bytes is not a whole number of %zu-byte patterns",
                        bytes, pattern_bytes);
    if (bytes == 0) return CIM_OK;
    CK_CL(clEnqueueFillBuffer(context->queue, (cl_mem)buffer, pattern, pattern_bytes, 0, bytes,
                              0, NULL, NULL));
    return CIM_OK;
}

cim_status cim_opencl_finish(cim_opencl_context *context) {
    if (!context) return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "context is NULL");
    CK_CL(clFinish(context->queue));
    return CIM_OK;
}

/* ---- launching ------------------------------------------------------------------------ */

void cim_cl_local_shape_(int dimensions, const size_t global[3], size_t local[3]) {
    size_t budget = REQUIRED_GROUP_SIZE;
    for (int d = 0; d < 3; d++) {
        size_t size = 1;
        if (d < dimensions) {
            while (size < global[d] && size * 2 <= budget && size < 64) size *= 2;
            if (d == dimensions - 1)   /* the last dimension takes what is left */
                while (size < global[d] && size * 2 <= budget) size *= 2;
        }
        local[d] = size;
        budget /= size;
    }
}

cim_status cim_cl_launch_(cim_opencl_context *context, cim_cl_kernel_id_ id, int dimensions,
                          const size_t global[3], const size_t local[3],
                          const cim_cl_arg_ *args, int count) {
    cl_kernel kernel = context->kernels[id];
    if (!kernel) return CIM_FAIL(CIM_ERROR_INTERNAL, "kernel %s was not built", kernel_names_[id]);
    size_t rounded[3];
    for (int d = 0; d < dimensions; d++) {
        if (global[d] == 0) return CIM_OK;
        rounded[d] = (global[d] + local[d] - 1) / local[d] * local[d];
    }
    for (int i = 0; i < count; i++)
        CK_CL_AT(clSetKernelArg(kernel, (cl_uint)i, args[i].size, args[i].value),
                 "argument %d of %s", i, kernel_names_[id]);
    CK_CL_AT(clEnqueueNDRangeKernel(context->queue, kernel, (cl_uint)dimensions, NULL, rounded,
                                    local, 0, NULL, NULL),
             "%s", kernel_names_[id]);
    return CIM_OK;
}
