#!/usr/bin/env bash
# The test command: set-up, a release build of cim-train, the test suites, and a smoke run
# of the command line. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

bash scripts/setup.sh

echo "== build"
swift build -c release

echo "== NVRTC for the CUDA kernel tests (no GPU needed)"
# NVRTC comes from the PyPI wheel nvidia-cuda-nvrtc-cu12 in a venv under .build. CUDATests
# compile every kernel in kernels/ for sm_70, sm_80 and sm_90 through the backend's own C
# path; CIM_REQUIRE_NVRTC=1 makes them fail, not skip, if NVRTC does not load, so a kernel
# that does not compile for CUDA fails CI.
venv=.build/nvrtc-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check nvidia-cuda-nvrtc-cu12
CIM_NVRTC_PATH=$(ls "$PWD/$venv"/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 \
    | head -n 1)
export CIM_NVRTC_PATH CIM_REQUIRE_NVRTC=1

echo "== tests"
swift test 2>&1 | tee .build/test.log

echo "== command line smoke run"
.build/release/cim-train devices
.build/release/cim-train bench --ops matmul,logdet --warmup 0 --repeat 1 \
    --json .build/bench-smoke.json
