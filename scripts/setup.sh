#!/usr/bin/env bash
# Installs what cim-train needs on a fresh Debian 12 machine, skipping what is there.
#
# Needs: the Swift 6 toolchain on PATH (or at /opt/swift/usr/bin) and apt for the C
# libraries. Safe to run again: it only installs missing packages.
set -euo pipefail

# libopenblas-dev: the CPU backend's BLAS and LAPACK (linked).
# pocl-opencl-icd, ocl-icd-libopencl1: an OpenCL driver that runs on the CPU (PoCL) and the
# ICD loader, so the OpenCL backend and its tests run on machines without a GPU. They are
# opened at run time; the build does not need them.
# python3, python3-venv: the tests' local HTTP server, and the venv that carries NVRTC
# (PyPI nvidia-cuda-nvrtc-cu12) for compiling the CUDA kernels in CI.
packages=(libopenblas-dev pocl-opencl-icd ocl-icd-libopencl1 python3 python3-venv)

missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "setup: swift is at /opt/swift/usr/bin; add it to PATH" >&2
    else
        echo "setup: no Swift toolchain found; install Swift 6 from swift.org" >&2
    fi
    exit 1
fi
