/*
 * cuda_loader.c: opens the CUDA driver, NVRTC and cuBLAS at run time and fills the
 * function tables of cuda_api.h, and names their error codes.
 *
 * Each library is opened once per process and never closed (drivers keep threads and state
 * that do not survive dlclose). The caller passes the names to try, in order, as for
 * cim_opencl_load: the Swift side puts CIM_CUDA_PATH, CIM_NVRTC_PATH or CIM_CUBLAS_PATH
 * first when set. A failure names every library tried with the loader's reason, or the
 * missing symbol, so the message says what to install or which variable to set.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"

cim_cu_api_ cim_cu_;
cim_nvrtc_api_ cim_nvrtc_;
cim_cublas_api_ cim_cublas_;

static pthread_mutex_t load_lock_ = PTHREAD_MUTEX_INITIALIZER;

typedef struct library_ {
    const char *what;          /* "the CUDA driver", for messages */
    void *handle;
    char loaded_name[1024];
    /* resolves the table from handle into a local copy and publishes it; the name of a
     * missing symbol in *missing */
    int (*resolve)(void *handle, const char **missing);
} library_;

#define CIM_RESOLVE_(name, parameters)                                                      \
    *(void **)(&table.name) = dlsym(handle, #name);                                         \
    if (!table.name) {                                                                      \
        *missing = #name;                                                                   \
        return 0;                                                                           \
    }

static int resolve_driver_(void *handle, const char **missing) {
    cim_cu_api_ table;
    memset(&table, 0, sizeof table);
    CIM_CU_FUNCTIONS(CIM_RESOLVE_)
    cim_cu_ = table;
    return 1;
}

static int resolve_nvrtc_(void *handle, const char **missing) {
    cim_nvrtc_api_ table;
    memset(&table, 0, sizeof table);
    CIM_NVRTC_FUNCTIONS(CIM_RESOLVE_)
    CIM_RESOLVE_(nvrtcGetErrorString, ())
    cim_nvrtc_ = table;
    return 1;
}

static int resolve_cublas_(void *handle, const char **missing) {
    cim_cublas_api_ table;
    memset(&table, 0, sizeof table);
    CIM_CUBLAS_FUNCTIONS(CIM_RESOLVE_)
    cim_cublas_ = table;
    return 1;
}
#undef CIM_RESOLVE_

static library_ libraries_[3] = {
    [CIM_CUDA_LIBRARY_DRIVER] = {"the CUDA driver", NULL, "", resolve_driver_},
    [CIM_CUDA_LIBRARY_NVRTC] = {"NVRTC", NULL, "", resolve_nvrtc_},
    [CIM_CUDA_LIBRARY_CUBLAS] = {"cuBLAS", NULL, "", resolve_cublas_},
};

cim_status cim_cuda_load(cim_cuda_library which, const char *const *names,
                         const char **out_loaded) {
    if (out_loaded) *out_loaded = NULL;
    if (which < CIM_CUDA_LIBRARY_DRIVER || which > CIM_CUDA_LIBRARY_CUBLAS)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "unknown CUDA library %d", (int)which);
    library_ *library = &libraries_[which];
    pthread_mutex_lock(&load_lock_);
    if (library->handle) {
        if (out_loaded) *out_loaded = library->loaded_name;
        pthread_mutex_unlock(&load_lock_);
        return CIM_OK;
    }
    if (!names || !names[0]) {
        pthread_mutex_unlock(&load_lock_);
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "no library names to try for %s",
                        library->what);
    }
    char reasons[1536] = "";
    size_t used = 0;
    for (int i = 0; names[i]; i++) {
        void *handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        const char *why = handle ? NULL : dlerror();
        const char *missing = NULL;
        if (handle && library->resolve(handle, &missing)) {
            library->handle = handle;
            snprintf(library->loaded_name, sizeof library->loaded_name, "%s", names[i]);
            if (out_loaded) *out_loaded = library->loaded_name;
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

static int loaded_(cim_cuda_library which) {
    pthread_mutex_lock(&load_lock_);
    const int loaded = libraries_[which].handle != NULL;
    pthread_mutex_unlock(&load_lock_);
    return loaded;
}

int cim_cuda_driver_loaded_(void) { return loaded_(CIM_CUDA_LIBRARY_DRIVER); }
int cim_nvrtc_loaded_(void) { return loaded_(CIM_CUDA_LIBRARY_NVRTC); }
int cim_cublas_loaded_(void) { return loaded_(CIM_CUDA_LIBRARY_CUBLAS); }

/* ---- error codes ---------------------------------------------------------------------- */

const char *cim_cu_error_text_(CUresult code) {
    static _Thread_local char text[320];
    const char *name = NULL, *description = NULL;
    if (cim_cu_.cuGetErrorName) cim_cu_.cuGetErrorName(code, &name);
    if (cim_cu_.cuGetErrorString) cim_cu_.cuGetErrorString(code, &description);
    if (name && description)
        snprintf(text, sizeof text, "%s (%d): %s", name, (int)code, description);
    else
        snprintf(text, sizeof text, "CUDA error %d", (int)code);
    return text;
}

const char *cim_cublas_error_name_(cublasStatus_t code) {
    switch (code) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    static _Thread_local char unknown[40];
    snprintf(unknown, sizeof unknown, "CUBLAS_STATUS_%d", (int)code);
    return unknown;
}
