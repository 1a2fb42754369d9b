#!/usr/bin/env python3
"""Compile every kernel in kernels/ with NVRTC for sm_70, sm_80 and sm_90 (CI; no GPU needed).

Usage: python3 scripts/check_nvrtc.py PATH/TO/libnvrtc.so.12

NVRTC runs without a GPU; the PyPI wheel nvidia-cuda-nvrtc-cu12 carries libnvrtc.so.12
(scripts/test.sh installs it into a venv under .build). The programs are put together as the
OpenCL backend builds them (Sources/CKernels/opencl_context.c), with the CUDA prelude in
place of the OpenCL one: one float32 program and one float64 program. A program that does
not compile prints NVRTC's log and makes the script exit 1, which fails CI. Warnings are
printed and allowed. The library is driven through ctypes so this needs nothing beyond the
wheel.
"""
import ctypes
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels")
PROGRAMS = [
    ("f32", ["-DCIM_REAL=float", "-DCIM_REAL_NAME=f32"],
     ["gemm.cl", "conv2d.cl", "batchnorm.cl", "elementwise.cl", "pooling.cl", "normalize.cl",
      "sgd.cl"]),
    ("f64", ["-DCIM_REAL=double", "-DCIM_REAL_NAME=f64", "-DCIM_FP64=1"],
     ["gemm.cl", "logdet.cl", "batchnorm_sync.cl"]),
]
ARCHITECTURES = ["sm_70", "sm_80", "sm_90"]


def read(name):
    with open(os.path.join(ROOT, name)) as handle:
        return handle.read()


def source(files):
    text = read("prelude_cuda.h") + '\n#line 1 "common.cl"\n' + read("common.cl")
    for name in files:
        text += '\n#line 1 "%s"\n' % name + read(name)
    return text


def compile_program(nvrtc, name, text, options):
    program = ctypes.c_void_p()
    status = nvrtc.nvrtcCreateProgram(ctypes.byref(program), text.encode(),
                                      (name + ".cu").encode(), 0, None, None)
    if status != 0:
        return status, "nvrtcCreateProgram failed with status %d" % status
    encoded = [option.encode() for option in options]
    status = nvrtc.nvrtcCompileProgram(program, len(encoded),
                                       (ctypes.c_char_p * len(encoded))(*encoded))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    return status, log.value.decode(errors="replace").strip()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    nvrtc = ctypes.CDLL(sys.argv[1])
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    failures = 0
    for architecture in ARCHITECTURES:
        for name, defines, files in PROGRAMS:
            options = ["--gpu-architecture=" + architecture, "-diag-suppress=177"] + defines
            status, log = compile_program(nvrtc, name, source(files), options)
            verdict = "ok" if status == 0 else "FAILED (status %d)" % status
            print("nvrtc %d.%d %s %s program (%s): %s" % (major.value, minor.value,
                                                          architecture, name,
                                                          " ".join(files), verdict))
            if log and (status != 0 or "error" in log):
                print(log)
            failures += status != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
