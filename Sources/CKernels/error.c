/*
 * error.c: the thread-local last-error message behind cim_last_error().
 *
 * Each failing call writes "<function> (<file>:<line>): <what went wrong>" once, at the place
 * that detected the problem; callers up the stack pass the status on without rewriting it,
 * so the message always names the innermost cause.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* large enough for an OpenCL build log of a few dozen lines */
static _Thread_local char last_error_[8192];

const char *cim_last_error(void) { return last_error_; }

void cim_clear_error(void) { last_error_[0] = '\0'; }

cim_status cim_set_error_(cim_status status, const char *function, const char *file, int line,
                          const char *format, ...) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int used = snprintf(last_error_, sizeof last_error_, "%s (%s:%d): ", function, base, line);
    if (used < 0 || (size_t)used >= sizeof last_error_) return status;
    va_list args;
    va_start(args, format);
    vsnprintf(last_error_ + used, sizeof last_error_ - (size_t)used, format, args);
    va_end(args);
    return status;
}

const char *cim_status_name(cim_status status) {
    switch (status) {
    case CIM_OK: return "CIM_OK";
    case CIM_ERROR_INVALID_ARGUMENT: return "CIM_ERROR_INVALID_ARGUMENT";
    case CIM_ERROR_SHAPE: return "CIM_ERROR_SHAPE";
    case CIM_ERROR_NOT_POSITIVE_DEFINITE: return "CIM_ERROR_NOT_POSITIVE_DEFINITE";
    case CIM_ERROR_OUT_OF_MEMORY: return "CIM_ERROR_OUT_OF_MEMORY";
    case CIM_ERROR_UNAVAILABLE: return "CIM_ERROR_UNAVAILABLE";
    case CIM_ERROR_INTERNAL: return "CIM_ERROR_INTERNAL";
    }
    return "CIM_ERROR_UNKNOWN";
}
