#!/usr/bin/env bash
# The test command: set-up, a release build of cim-train, the test suites, and a smoke run
# of the command line. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

bash scripts/setup.sh

echo "== build"
swift build -c release

echo "== tests"
swift test 2>&1 | tee .build/test.log

echo "== CUDA kernels through NVRTC (sm_70, sm_80, sm_90; no GPU needed)"
# NVRTC comes from the PyPI wheel nvidia-cuda-nvrtc-cu12 in a venv under .build; a kernel in
# kernels/ that does not compile for CUDA fails here.
venv=.build/nvrtc-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check nvidia-cuda-nvrtc-cu12
nvrtc=$(ls "$venv"/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 | head -n 1)
"$venv/bin/python" scripts/check_nvrtc.py "$nvrtc"

echo "== command line smoke run"
.build/release/cim-train devices
.build/release/cim-train bench --ops matmul,logdet --warmup 0 --repeat 1 --json .build/bench-smoke.json
