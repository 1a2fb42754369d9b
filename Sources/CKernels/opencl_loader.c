/*
 * opencl_loader.c: opens the OpenCL ICD loader (libOpenCL.so.1) at run time and fills the
 * function table of opencl_api.h, and names OpenCL error codes.
 *
 * The library is opened once per process and never closed (drivers keep threads and state
 * that do not survive dlclose). The caller passes the names to try, in order, the same list
 * convention as cim_probe_library: the Swift side puts CIM_OPENCL_PATH first when it is set.
 * A failure names every library tried with the loader's reason, or the missing symbol.
 */
#define CIM_CL_NO_NAME_MACROS
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "opencl_api.h"

cim_cl_api_ cim_cl_;

static pthread_mutex_t load_lock_ = PTHREAD_MUTEX_INITIALIZER;
static void *library_ = NULL;
static char loaded_name_[1024];

/* Resolves every entry of the table from `handle`; the name of a missing one in *missing. */
static int resolve_(void *handle, const char **missing) {
    cim_cl_api_ table;
    memset(&table, 0, sizeof table);
#define CIM_CL_RESOLVE_(name, result, parameters)                                           \
    *(void **)(&table.name) = dlsym(handle, #name);                                         \
    if (!table.name) {                                                                      \
        *missing = #name;                                                                   \
        return 0;                                                                           \
    }
    CIM_CL_FUNCTIONS(CIM_CL_RESOLVE_)
#undef CIM_CL_RESOLVE_
    cim_cl_ = table;
    return 1;
}

cim_status cim_opencl_load(const char *const *names, const char **out_loaded) {
    if (out_loaded) *out_loaded = NULL;
    pthread_mutex_lock(&load_lock_);
    if (library_) {
        if (out_loaded) *out_loaded = loaded_name_;
        pthread_mutex_unlock(&load_lock_);
        return CIM_OK;
    }
    if (!names || !names[0]) {
        pthread_mutex_unlock(&load_lock_);
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "no OpenCL library names to try");
    }
    char reasons[1536] = "";
    size_t used = 0;
    for (int i = 0; names[i]; i++) {
        void *handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        const char *why = handle ? NULL : dlerror();
        const char *missing = NULL;
        if (handle && resolve_(handle, &missing)) {
            library_ = handle;
            snprintf(loaded_name_, sizeof loaded_name_, "%s", names[i]);
            if (out_loaded) *out_loaded = loaded_name_;
            pthread_mutex_unlock(&load_lock_);
            return CIM_OK;
        }
        char missing_reason[256];
        if (handle) {
            snprintf(missing_reason, sizeof missing_reason, "%s: no symbol %s", names[i],
                     missing);
            why = missing_reason;
            dlclose(handle);
        }
        int wrote = snprintf(reasons + used, sizeof reasons - used, "%s%s", i ? "; " : "",
                             why ? why : names[i]);
        if (wrote > 0) used += (size_t)wrote < sizeof reasons - used ? (size_t)wrote : 0;
    }
    pthread_mutex_unlock(&load_lock_);
    return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "%s", reasons);
}

int cim_opencl_loaded_(void) {
    pthread_mutex_lock(&load_lock_);
    const int loaded = library_ != NULL;
    pthread_mutex_unlock(&load_lock_);
    return loaded;
}

/* ---- error codes ---------------------------------------------------------------------- */

const char *cim_cl_error_name_(cl_int code) {
    switch (code) {
    case 0: return "CL_SUCCESS";
    case -1: return "CL_DEVICE_NOT_FOUND";
    case -2: return "CL_DEVICE_NOT_AVAILABLE";
    case -3: return "CL_COMPILER_NOT_AVAILABLE";
    case -4: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case -5: return "CL_OUT_OF_RESOURCES";
    case -6: return "CL_OUT_OF_HOST_MEMORY";
    case -7: return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case -8: return "CL_MEM_COPY_OVERLAP";
    case -11: return "CL_BUILD_PROGRAM_FAILURE";
    case -12: return "CL_MAP_FAILURE";
    case -13: return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case -14: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case -30: return "CL_INVALID_VALUE";
    case -31: return "CL_INVALID_DEVICE_TYPE";
    case -32: return "CL_INVALID_PLATFORM";
    case -33: return "CL_INVALID_DEVICE";
    case -34: return "CL_INVALID_CONTEXT";
    case -35: return "CL_INVALID_QUEUE_PROPERTIES";
    case -36: return "CL_INVALID_COMMAND_QUEUE";
    case -37: return "CL_INVALID_HOST_PTR";
    case -38: return "CL_INVALID_MEM_OBJECT";
    case -42: return "CL_INVALID_BINARY";
    case -43: return "CL_INVALID_BUILD_OPTIONS";
    case -44: return "CL_INVALID_PROGRAM";
    case -45: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case -46: return "CL_INVALID_KERNEL_NAME";
    case -47: return "CL_INVALID_KERNEL_DEFINITION";
    case -48: return "CL_INVALID_KERNEL";
    case -49: return "CL_INVALID_ARG_INDEX";
    case -50: return "CL_INVALID_ARG_VALUE";
    case -51: return "CL_INVALID_ARG_SIZE";
    case -52: return "CL_INVALID_KERNEL_ARGS";
    case -53: return "CL_INVALID_WORK_DIMENSION";
    case -54: return "CL_INVALID_WORK_GROUP_SIZE";
    case -55: return "CL_INVALID_WORK_ITEM_SIZE";
    case -56: return "CL_INVALID_GLOBAL_OFFSET";
    case -57: return "CL_INVALID_EVENT_WAIT_LIST";
    case -58: return "CL_INVALID_EVENT";
    case -59: return "CL_INVALID_OPERATION";
    case -61: return "CL_INVALID_BUFFER_SIZE";
    case -63: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case -64: return "CL_INVALID_PROPERTY";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    static _Thread_local char unknown[32];
    snprintf(unknown, sizeof unknown, "CL_ERROR_%d", (int)code);
    return unknown;
}

cim_status cim_cl_status_(cl_int code) {
    switch (code) {
    case CL_SUCCESS: return CIM_OK;
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_RESOURCES:
    case CL_OUT_OF_HOST_MEMORY: return CIM_ERROR_OUT_OF_MEMORY;
    default: return CIM_ERROR_INTERNAL;
    }
}
