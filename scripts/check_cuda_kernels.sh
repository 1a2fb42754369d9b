#!/usr/bin/env bash
# Syntax-checks the shared kernels (kernels/) as CUDA, through prelude_cuda.h, with the
# toolchain's clang in CUDA mode: no CUDA toolkit or GPU needed. It catches OpenCL-only
# spellings in shared bodies before the CUDA backend compiles them with NVRTC. The few
# functions NVRTC provides are declared below; nothing is linked or run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/clang++ ] && export PATH="/opt/swift/usr/bin:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/nvrtc_stubs.h" <<'STUBS'
#include "__clang_cuda_builtin_vars.h"
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __attribute__((always_inline))
#define __launch_bounds__(x) __attribute__((launch_bounds(x)))
__device__ void __syncthreads(void);
__device__ float __shfl_down_sync(unsigned, float, int);
__device__ double __shfl_down_sync(unsigned, double, int);
__device__ float sqrt(float);
__device__ double sqrt(double);
__device__ float log(float);
__device__ double log(double);
__device__ int min(int, int);
__device__ int max(int, int);
STUBS

# the programs of opencl_context.c, with the same options
check() {
    local name=$1 options=$2
    shift 2
    { echo '#include "nvrtc_stubs.h"'; cat kernels/prelude_cuda.h kernels/common.cl
      for file in "$@"; do echo "#line 1 \"$file\""; cat "kernels/$file"; done
    } > "$work/$name.cu"
    # shellcheck disable=SC2086
    clang++ -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_70 \
        -fsyntax-only -I "$work" $options "$work/$name.cu"
    echo "check_cuda_kernels: $name program parses as CUDA"
}
check f32 "-DCIM_REAL=float -DCIM_REAL_NAME=f32" \
    gemm.cl conv2d.cl batchnorm.cl elementwise.cl pooling.cl normalize.cl sgd.cl
check f64 "-DCIM_REAL=double -DCIM_REAL_NAME=f64 -DCIM_FP64=1" \
    gemm.cl logdet.cl batchnorm_sync.cl
