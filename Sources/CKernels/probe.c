/*
 * probe.c: asks the dynamic loader whether a library can be opened, without keeping it.
 *
 * Device discovery uses this before a backend exists for a device kind, and the backends
 * use the same list-of-names convention when they load their libraries for real: the names
 * are tried in order and a failure reports every name with the loader's own reason.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

cim_status cim_probe_library(const char *const *names, const char **out_loaded) {
    if (out_loaded) *out_loaded = NULL;
    if (!names || !names[0])
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "no library names to try");
    char reasons[1536] = "";
    size_t used = 0;
    for (int i = 0; names[i]; i++) {
        void *handle = dlopen(names[i], RTLD_LAZY | RTLD_LOCAL);
        if (handle) {
            dlclose(handle);
            if (out_loaded) *out_loaded = names[i];
            return CIM_OK;
        }
        const char *why = dlerror();
        int wrote = snprintf(reasons + used, sizeof reasons - used, "%s%s", i ? "; " : "",
                             why ? why : names[i]);
        if (wrote > 0) used += (size_t)wrote < sizeof reasons - used ? (size_t)wrote : 0;
    }
    return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "%s", reasons);
}
