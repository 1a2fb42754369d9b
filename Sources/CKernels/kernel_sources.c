/*
 * kernel_sources.c: the files of kernels/ compiled into the library, so cim-train runs from
 * any folder with no kernel files beside it.
 *
 * C23 #embed pastes each file's bytes as an initializer list. The compiler records the
 * embedded files in its dependency output, so SwiftPM rebuilds this file when a kernel
 * changes: the binary can never carry stale kernels, and no generated file needs keeping
 * up to date. Each array ends with a NUL the file does not have. A test
 * (KernelSourceTests) checks that every file of kernels/ is listed here and identical.
 *
 * #embed needs clang 19 or later (the Swift 6.1+ toolchains); older ones stop at the #error.
 */
#include <string.h>

#include "internal.h"

#if !defined(__has_embed)
#error "kernels/ are embedded with C23 #embed, which needs clang 19 or later (Swift >= 6.1)"
#endif

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc23-extensions"

/* #embed cannot sit inside a macro's expansion, so each array is spelled out. */
static const char prelude_opencl_h_[] = {
#embed "../../kernels/prelude_opencl.h"
    , 0};
static const char prelude_cuda_h_[] = {
#embed "../../kernels/prelude_cuda.h"
    , 0};
static const char common_cl_[] = {
#embed "../../kernels/common.cl"
    , 0};
static const char gemm_cl_[] = {
#embed "../../kernels/gemm.cl"
    , 0};
static const char conv2d_cl_[] = {
#embed "../../kernels/conv2d.cl"
    , 0};
static const char batchnorm_cl_[] = {
#embed "../../kernels/batchnorm.cl"
    , 0};
static const char batchnorm_sync_cl_[] = {
#embed "../../kernels/batchnorm_sync.cl"
    , 0};
static const char elementwise_cl_[] = {
#embed "../../kernels/elementwise.cl"
    , 0};
static const char pooling_cl_[] = {
#embed "../../kernels/pooling.cl"
    , 0};
static const char normalize_cl_[] = {
#embed "../../kernels/normalize.cl"
    , 0};
static const char sgd_cl_[] = {
#embed "../../kernels/sgd.cl"
    , 0};
static const char logdet_cl_[] = {
#embed "../../kernels/logdet.cl"
    , 0};

#pragma clang diagnostic pop

#define CIM_SOURCE_(file, array) {file, array, sizeof array - 1}

static const cim_kernel_source sources_[] = {
    CIM_SOURCE_("prelude_opencl.h", prelude_opencl_h_),
    CIM_SOURCE_("prelude_cuda.h", prelude_cuda_h_),
    CIM_SOURCE_("common.cl", common_cl_),
    CIM_SOURCE_("gemm.cl", gemm_cl_),
    CIM_SOURCE_("conv2d.cl", conv2d_cl_),
    CIM_SOURCE_("batchnorm.cl", batchnorm_cl_),
    CIM_SOURCE_("batchnorm_sync.cl", batchnorm_sync_cl_),
    CIM_SOURCE_("elementwise.cl", elementwise_cl_),
    CIM_SOURCE_("pooling.cl", pooling_cl_),
    CIM_SOURCE_("normalize.cl", normalize_cl_),
    CIM_SOURCE_("sgd.cl", sgd_cl_),
    CIM_SOURCE_("logdet.cl", logdet_cl_),
};

const cim_kernel_source *cim_kernel_sources(int *count) {
    if (count) *count = (int)(sizeof sources_ / sizeof sources_[0]);
    return sources_;
}

const cim_kernel_source *cim_kernel_source_named(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof sources_ / sizeof sources_[0]; i++)
        if (strcmp(sources_[i].name, name) == 0) return &sources_[i];
    return NULL;
}
