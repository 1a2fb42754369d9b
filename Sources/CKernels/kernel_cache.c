/*
 * kernel_cache.c: putting a program's source together from the embedded kernels/ files, and
 * the on-disk cache of built programs that both GPU APIs use.
 *
 * Building takes seconds (PoCL runs LLVM, NVRTC runs its C++ front end), so each built
 * program is kept in <dir>/<key>.bin, where <dir> is per API (cim-train/opencl or
 * cim-train/cuda under $XDG_CACHE_HOME or ~/.cache) and the key is a 64-bit FNV-1a hash of
 * everything the binary depends on: the API's device and driver or compiler version, the
 * build options and every source byte (the caller hashes these). A file holds a header
 * (an 8-byte magic naming the API, format version 1, the key, the size and FNV-1a checksum
 * of the payload) and the payload. A short file, a wrong magic, key or checksum, or trailing
 * bytes make an entry damaged; the caller rebuilds and rewrites it. Writing a cache entry
 * may fail (a read-only home); that is not an error for the caller.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu_internal.h"

/* ---- hashing -------------------------------------------------------------------------- */

uint64_t cim_fnv1a_start_(void) { return 0xcbf29ce484222325ull; }

uint64_t cim_fnv1a_(uint64_t hash, const void *data, size_t size) {
    const unsigned char *bytes = data;
    for (size_t i = 0; i < size; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ull;
    }
    return hash;
}

uint64_t cim_fnv1a_string_(uint64_t hash, const char *text) {
    return cim_fnv1a_(hash, text, strlen(text) + 1);
}

/* ---- program text --------------------------------------------------------------------- */

static cim_status add_file_(cim_program_text_ *text, const char *name, const char *body,
                            size_t size) {
    if (text->count + 2 > CIM_GPU_MAX_PIECES)
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

static cim_status add_embedded_(cim_program_text_ *text, const char *name) {
    const cim_kernel_source *source = cim_kernel_source_named(name);
    if (!source) return CIM_FAIL(CIM_ERROR_INTERNAL, "kernel source %s is not embedded", name);
    return add_file_(text, name, source->text, source->size);
}

cim_status cim_program_text_make_(const char *prelude, const char *const *files,
                                  const char *extra_name, const char *extra,
                                  cim_program_text_ *text) {
    memset(text, 0, sizeof *text);
    CIM_TRY(add_embedded_(text, prelude));
    CIM_TRY(add_embedded_(text, "common.cl"));
    for (int i = 0; files && files[i]; i++) CIM_TRY(add_embedded_(text, files[i]));
    if (extra) CIM_TRY(add_file_(text, extra_name, extra, strlen(extra)));
    return CIM_OK;
}

cim_status cim_program_text_join_(const cim_program_text_ *text, char **out) {
    size_t total = 1;
    for (int i = 0; i < text->count; i++) total += text->lengths[i] + 1;
    char *joined = malloc(total);
    if (!joined) return CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %zu bytes", total);
    size_t used = 0;
    for (int i = 0; i < text->count; i++) {
        memcpy(joined + used, text->strings[i], text->lengths[i]);
        used += text->lengths[i];
        /* a file that does not end its last line must not run into the next #line */
        if (text->lengths[i] && text->strings[i][text->lengths[i] - 1] != '\n')
            joined[used++] = '\n';
    }
    joined[used] = '\0';
    *out = joined;
    return CIM_OK;
}

/* ---- the cache directory -------------------------------------------------------------- */

void cim_cache_directory_(const char *requested, const char *api, char *out, size_t size) {
    out[0] = '\0';
    if (requested) {
        snprintf(out, size, "%s", requested);
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(out, size, "%s/cim-train/%s", xdg, api);
    else if (home && home[0] == '/')
        snprintf(out, size, "%s/.cache/cim-train/%s", home, api);
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

/* ---- entries -------------------------------------------------------------------------- */

typedef struct cache_header_ {
    char magic[8];           /* "CIMCLBIN", "CIMCUBIN" */
    uint32_t version;        /* 1 */
    uint32_t reserved;
    uint64_t key;
    uint64_t size;           /* bytes of payload that follow */
    uint64_t checksum;       /* FNV-1a of those bytes */
} cache_header_;

static void entry_path_(const char *directory, uint64_t key, char *out, size_t size) {
    snprintf(out, size, "%s/%016llx.bin", directory, (unsigned long long)key);
}

cim_status cim_cache_read_(const char *directory, const char magic[8], uint64_t key,
                           unsigned char **bytes, size_t *size) {
    *bytes = NULL;
    char path[1100];
    entry_path_(directory, key, path, sizeof path);
    FILE *file = fopen(path, "rb");
    if (!file) return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "no cache entry %s", path);
    cache_header_ header;
    cim_status status = CIM_OK;
    unsigned char *data = NULL;
    if (fread(&header, sizeof header, 1, file) != 1 || memcmp(header.magic, magic, 8) != 0 ||
        header.version != 1 || header.key != key || header.size == 0 ||
        header.size > ((uint64_t)1 << 32)) {
        status = CIM_FAIL(CIM_ERROR_INTERNAL, "cache entry %s has a bad header", path);
    } else if (!(data = malloc(header.size))) {
        status = CIM_FAIL(CIM_ERROR_OUT_OF_MEMORY, "no memory for %llu bytes",
                          (unsigned long long)header.size);
    } else if (fread(data, 1, header.size, file) != header.size ||
               cim_fnv1a_(cim_fnv1a_start_(), data, header.size) != header.checksum ||
               fgetc(file) != EOF) {
        status = CIM_FAIL(CIM_ERROR_INTERNAL, "cache entry %s is truncated or corrupt", path);
    }
    fclose(file);
    if (status != CIM_OK) {
        free(data);
        return status;
    }
    *bytes = data;
    *size = header.size;
    return CIM_OK;
}

cim_status cim_cache_write_(const char *directory, const char magic[8], uint64_t key,
                            const void *bytes, size_t size) {
    char path[1100], temporary[1200];
    entry_path_(directory, key, path, sizeof path);
    snprintf(temporary, sizeof temporary, "%s.%ld.tmp", path, (long)getpid());
    cache_header_ header = {.version = 1, .key = key, .size = size,
                            .checksum = cim_fnv1a_(cim_fnv1a_start_(), bytes, size)};
    memcpy(header.magic, magic, 8);
    FILE *file = make_directories_(directory) == 0 ? fopen(temporary, "wb") : NULL;
    int ok = file && fwrite(&header, sizeof header, 1, file) == 1 &&
             fwrite(bytes, 1, size, file) == size;
    if (file) ok = fclose(file) == 0 && ok;
    if (ok && rename(temporary, path) == 0) return CIM_OK;
    unlink(temporary);
    return CIM_FAIL(CIM_ERROR_UNAVAILABLE, "cannot write the cache entry %s", path);
}
