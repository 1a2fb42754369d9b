#!/usr/bin/env bash
# The GPU check: cim-train's CUDA backend against its CPU backend and against PyTorch, on a
# machine with an NVIDIA GPU and no Swift toolchain.
#
#   bash scripts/gpu_check.sh pack [DIR]   on a machine with Swift (this one): builds cim-train
#                                          with the Swift runtime linked statically and the
#                                          test bundle, and packs both with the shared
#                                          libraries they need into DIR/bundle.tar.xz
#   bash scripts/gpu_check.sh run [DIR]    on the GPU machine, in a copy of the repository
#                                          holding DIR: unpacks the bundle, then
#                                            1. cim-train devices
#                                            2. the GPU test suites (every Backend op on CUDA
#                                               against the CPU, CUDA loading and NVRTC, whole
#                                               training steps and two replicas on CUDA)
#                                            3. cim-train bench on cuda:0, every op and the
#                                               training step at batch 512, TF32 off and on
#                                            4. with PyTorch there: the same cases through
#                                               scripts/compare_torch.py --device cuda
#                                          and prints one summary table of the ratios.
#
# DIR defaults to gpu-check (ignored by git). Logs and JSON go to $OUT when it is set (the
# device tool's folder that comes back), else to DIR/results. The GPU machine needs a CUDA
# driver; NVRTC and cuBLAS are taken from the system or from PyTorch's pip wheels
# (nvidia-cuda-nvrtc, nvidia-cublas), whichever is found first; CIM_NVRTC_PATH and
# CIM_CUBLAS_PATH override. Every step runs even when an earlier one failed; the exit status
# is that of the first failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
dir=${2:-gpu-check}

pack() {
    set -e
    [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
    bash scripts/setup.sh
    # Separate scratch folders, so this never disturbs the normal .build. The static
    # FoundationNetworking (cim-train data download) links -lcurl, and Debian ships only
    # libcurl.so.4 without the development package: a symlink in a private folder serves.
    local link=$PWD/.build/gpu-static/link
    mkdir -p "$link"
    ln -sf "$(ldconfig -p | awk '/libcurl\.so\.4 /{print $NF; exit}')" "$link/libcurl.so"
    swift build -c release --static-swift-stdlib --product cim-train \
        --scratch-path .build/gpu-static -Xlinker -L"$link"
    swift build --build-tests --scratch-path .build/gpu-tests
    local stage
    stage=$(mktemp -d)
    mkdir -p "$stage/libs"
    cp .build/gpu-static/release/cim-train "$stage/"
    cp .build/gpu-tests/debug/cim-trainPackageTests.xctest "$stage/"
    # Every shared library the two binaries load (ldd lists them transitively) but those of
    # the C library itself, which every Linux has: the Swift runtime of the test bundle,
    # OpenBLAS with its Fortran runtime, libcurl and its own. `run` supplies only the ones
    # the GPU machine lacks, so its own (PyTorch's, the driver's) always win. The binaries
    # need a C library at least as new as this machine's (glibc 2.36 on Debian 12).
    for binary in "$stage/cim-train" "$stage/cim-trainPackageTests.xctest"; do
        ldd "$binary" | awk '$3 ~ /^\// {print $3}' |
            grep -vE '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*)\.so' |
            while read -r library; do cp -Ln "$library" "$stage/libs/"; done
    done
    mkdir -p "$dir"
    tar -C "$stage" -cJf "$dir/bundle.tar.xz" .
    rm -rf "$stage"
    echo "gpu_check: packed $(du -h "$dir/bundle.tar.xz" | cut -f1) into $dir/bundle.tar.xz"
    echo "gpu_check: on the GPU machine run: bash scripts/gpu_check.sh run $dir"
}

# Links into $2 those libraries that the binaries $3... cannot find on this machine and the
# bundle's folder $1 holds, until nothing more resolves (a supplied library may need more).
supply_missing_libraries() {
    local pool=$1 target=$2 added=1 name
    shift 2
    mkdir -p "$target"
    while [ "$added" -eq 1 ]; do
        added=0
        for name in $(for binary in "$@"; do LD_LIBRARY_PATH=$target ldd "$binary"; done |
            awk '/not found/ {print $1}' | sort -u); do
            if [ -e "$pool/$name" ] && [ ! -e "$target/$name" ]; then
                ln -s "$PWD/$pool/$name" "$target/$name"
                added=1
            fi
        done
    done
    for binary in "$@"; do
        LD_LIBRARY_PATH=$target ldd "$binary" | grep 'not found' |
            sed "s|^|gpu_check: $(basename "$binary") still lacks |"
    done
    return 0
}

# The first file matching a name under the Python installations' site-packages, or nothing.
find_wheel_library() {
    local pattern=$1 python
    for python in python3 /opt/torch/.venv/bin/python3; do
        command -v "$python" >/dev/null 2>&1 || continue
        "$python" - "$pattern" <<'PY' 2>/dev/null && return 0
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for root in roots:
    hits = sorted(glob.glob(os.path.join(root, "nvidia", "**", sys.argv[1]), recursive=True))
    if hits:
        print(hits[0])
        sys.exit(0)
sys.exit(1)
PY
    done
    return 1
}

run() {
    local out=${OUT:-$dir/results} status=0 unpacked=$dir/unpacked
    mkdir -p "$out" "$unpacked"
    [ -f "$dir/bundle.tar.xz" ] || {
        echo "gpu_check: no $dir/bundle.tar.xz; run 'bash scripts/gpu_check.sh pack' first" >&2
        exit 2
    }
    tar -C "$unpacked" -xJf "$dir/bundle.tar.xz"
    local cim=$unpacked/cim-train tests=$unpacked/cim-trainPackageTests.xctest
    supply_missing_libraries "$unpacked/libs" "$unpacked/lib" "$cim" "$tests"
    # Only our binaries see the supplied folder: PyTorch keeps the machine's own libraries.
    local libraries="$PWD/$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # Kernel cache in the results' neighbourhood, so each run compiles once.
    export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/$dir/cache}

    if [ -z "${CIM_NVRTC_PATH:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
        CIM_NVRTC_PATH=$(find_wheel_library 'libnvrtc.so.1[23]') && export CIM_NVRTC_PATH
    fi
    if [ -z "${CIM_CUBLAS_PATH:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so'; then
        CIM_CUBLAS_PATH=$(find_wheel_library 'libcublas.so.1[23]') && export CIM_CUBLAS_PATH
        # cuBLAS opens cuBLASLt from its own folder
        [ -n "${CIM_CUBLAS_PATH:-}" ] && libraries="$(dirname "$CIM_CUBLAS_PATH"):$libraries"
    fi
    echo "gpu_check: NVRTC ${CIM_NVRTC_PATH:-from the system}," \
        "cuBLAS ${CIM_CUBLAS_PATH:-from the system}"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
        --format=csv,noheader | tee "$out/gpu.txt"

    step() {   # step NAME COMMAND...: run, log to $out/NAME.log, remember the first failure
        local name=$1
        shift
        echo "== $name"
        "$@" 2>&1 | tee "$out/$name.log"
        local result=${PIPESTATUS[0]}
        if [ "$result" -ne 0 ]; then
            echo "gpu_check: $name failed (exit status $result)"
            [ "$status" -ne 0 ] || status=$result
        fi
    }

    # Wrappers that give only our binaries the supplied libraries
    local binary
    for binary in cim-train cim-trainPackageTests.xctest; do
        printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libraries" \
            "$PWD/$unpacked/$binary" > "$unpacked/run-$binary"
        chmod +x "$unpacked/run-$binary"
    done
    cim=$unpacked/run-cim-train
    tests=$unpacked/run-cim-trainPackageTests.xctest

    step devices "$cim" devices
    # CIM_REQUIRE_NVRTC makes the NVRTC tests fail rather than skip when NVRTC does not load.
    export CIM_REQUIRE_NVRTC=1
    for suite in BackendTests.CUDATests BackendTests.GPUParityTests TrainingTests.GPUStepTests
    do
        step "test-${suite#*.}" "$tests" "$suite"
    done
    local gemm_sizes=1024,4096,8192
    step bench-fp32 "$cim" bench --device cuda:0 --ops matmul,conv,logdet,step --batch 512 \
        --gemm-sizes "$gemm_sizes" --json "$out/bench-fp32.json"
    step bench-tf32 "$cim" bench --device cuda:0 --ops matmul,conv,step --batch 512 --tf32 \
        --gemm-sizes "$gemm_sizes" --json "$out/bench-tf32.json"

    local python=""
    for candidate in python3 /opt/torch/.venv/bin/python3; do
        if "$candidate" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' \
            2>/dev/null; then
            python=$candidate
            break
        fi
    done
    if [ -n "$python" ]; then
        step torch-fp32 "$python" scripts/compare_torch.py --device cuda --cim "$cim" \
            --ops matmul,conv,logdet,step --batch 512 --gemm-sizes "$gemm_sizes" \
            --rounds 2 --json "$out/torch-fp32.json"
        step torch-tf32 "$python" scripts/compare_torch.py --device cuda --cim "$cim" --tf32 \
            --ops matmul,conv,step --batch 512 --gemm-sizes "$gemm_sizes" \
            --rounds 2 --json "$out/torch-tf32.json"
    else
        echo "gpu_check: no PyTorch with CUDA here; the summary has cim-train's figures only"
    fi

    echo "== summary"
    python3 - "$out" <<'PY' | tee "$out/summary.txt"
import json, os, re, sys
out = sys.argv[1]
print(f"{'suite':28}result")
for name in sorted(os.listdir(out)):
    if name.startswith("test-") and name.endswith(".log"):
        text = open(os.path.join(out, name)).read()
        pattern = r"Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?(\d+) failures"
        runs = re.findall(pattern, text)
        if runs:
            executed, skipped, failed = runs[-1]
            result = f"executed {executed}, skipped {skipped or 0}, failed {failed}"
        else:
            result = "did not finish"
        print(f"{name[5:-4]:28}{result}")
print()
for precision in ("fp32", "tf32"):
    path = os.path.join(out, f"torch-{precision}.json")
    if os.path.exists(path):
        rows = json.load(open(path))["rows"]
        print(f"{precision}: {'op':8}{'case':30}{'pass':9}{'cim ms':>10}{'torch ms':>10}"
              f"{'torch/cim':>11}")
        for r in rows:
            print(f"      {r['op']:8}{r['case']:30}{r['pass']:9}{r['cim_s'] * 1e3:10.3f}"
                  f"{r['torch_s'] * 1e3:10.3f}{r['ratio']:11.2f}")
        continue
    path = os.path.join(out, f"bench-{precision}.json")
    if os.path.exists(path):
        print(f"{precision} (cim-train only): {'op':8}{'case':30}{'pass':9}{'ms':>10}"
              f"{'GFLOP/s':>10}")
        for r in json.load(open(path))["results"]:
            gflops = "-" if r.get("gflops") is None else f"{r['gflops']:.0f}"
            print(f"      {r['op']:8}{r['case']:30}{r['pass']:9}{r['median_s'] * 1e3:10.3f}"
                  f"{gflops:>10}")
PY
    return "$status"
}

case "$mode" in
pack) pack ;;
run) run ;;
*)
    echo "usage: bash scripts/gpu_check.sh pack|run [DIR]" >&2
    exit 2
    ;;
esac
