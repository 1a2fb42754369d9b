// GPUSupport.swift: opening GPU backends in a test, or skipping the test with the reason
// there is none (no library, no device, a device that cannot run our kernels).
//
// CI runs OpenCL on the CPU through PoCL and has no NVIDIA GPU, so there the CUDA suites
// skip; scripts/gpu_check.sh runs them on a GPU machine. XCTest lists each skip with its
// message.

import Backend
import XCTest

/// An OpenCL backend on the default device (first GPU, else first device), or XCTSkip.
public func openCLBackendOrSkip(
    gemmKernels: OpenCLGemmKernels = .auto, cacheDirectory: String? = nil,
    ignoreFloat64: Bool = false
) throws -> OpenCLBackend {
    do {
        return try OpenCLBackend(
            cacheDirectory: cacheDirectory, gemmKernels: gemmKernels, ignoreFloat64: ignoreFloat64)
    } catch BackendError.unavailable(_, let reason) {
        throw XCTSkip("OpenCL unavailable: \(reason)")
    }
}

/// A CUDA backend on cuda:0, or XCTSkip saying why there is none.
public func cudaBackendOrSkip(useCUBLAS: Bool = true, cacheDirectory: String? = nil) throws
    -> CUDABackend
{
    do {
        return try CUDABackend(device: 0, useCUBLAS: useCUBLAS, cacheDirectory: cacheDirectory)
    } catch BackendError.unavailable(_, let reason) {
        throw XCTSkip("CUDA unavailable: \(reason)")
    }
}

/// Every GPU backend that opens here, labelled; with `everyGemmEngine`, one per GEMM engine
/// (OpenCL: the tiled and the CPU-device kernels; CUDA: cuBLAS and the tiled kernel).
/// Throws XCTSkip, with each kind's reason, when none opens.
public func gpuBackendsOrSkip(everyGemmEngine: Bool = false) throws -> [(String, GPUBackend)] {
    var backends: [(String, GPUBackend)] = []
    var reasons: [String] = []
    func add(_ label: String, _ open: () throws -> GPUBackend) throws {
        do {
            backends.append((label, try open()))
        } catch let skip as XCTSkip {
            reasons.append("\(skip)")
        }
    }
    if everyGemmEngine {
        try add("opencl tiled") { try openCLBackendOrSkip(gemmKernels: .tiled) }
        try add("opencl cpu-kernels") { try openCLBackendOrSkip(gemmKernels: .cpu) }
        try add("cuda cublas") { try cudaBackendOrSkip() }
        try add("cuda tiled") { try cudaBackendOrSkip(useCUBLAS: false) }
    } else {
        try add("opencl") { try openCLBackendOrSkip() }
        try add("cuda") { try cudaBackendOrSkip() }
    }
    guard !backends.isEmpty else {
        throw XCTSkip("no GPU backend: " + Array(Set(reasons)).sorted().joined(separator: "; "))
    }
    return backends
}
