// CUDATests.swift: the parts of the CUDA backend that run without a GPU, and the backend
// itself where there is one.
//
// - Loading: a library that is missing, or that loads without the symbols we call, is
//   reported with every name tried (and the missing symbol), never a crash.
// - NVRTC: both programs (float32, float64) compile for sm_70, sm_80 and sm_90 through the
//   C path the backend uses (prelude_cuda.h, common.cl, the op files), the kernel cache
//   stores them and returns them on the second build, a damaged entry is rebuilt, and an
//   architecture NVRTC does not know is a clear error. CI provides NVRTC from the PyPI
//   wheel (scripts/test.sh sets CIM_NVRTC_PATH, and CIM_REQUIRE_NVRTC=1 so these fail
//   rather than skip when it does not load); elsewhere, without NVRTC, they skip.
// - On a GPU: the device opens, names its GEMM engine and what the cache did, and TF32 is
//   off unless asked for. The op-by-op comparison with the CPU is GPUParityTests, which
//   takes every GPU backend here.

import Backend
import CKernels
import Foundation
import TestSupport
import XCTest

final class CUDATests: XCTestCase {
    // MARK: - Loading

    func testALibraryWithoutTheSymbolsIsNamedWithTheMissingOne() throws {
        let names = ["/nonexistent/cim-test/libcublas.so.12", "libm.so.6"]
        let cStrings = names.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        pointers.append(nil)
        let status = pointers.withUnsafeBufferPointer {
            cim_cuda_load(CIM_CUDA_LIBRARY_CUBLAS, $0.baseAddress, nil)
        }
        if status == CIM_OK { throw XCTSkip("cuBLAS is already open in this process") }
        XCTAssertEqual(status, CIM_ERROR_UNAVAILABLE)
        let message = String(cString: cim_last_error())
        XCTAssertTrue(message.contains("/nonexistent/cim-test/libcublas.so.12"), message)
        XCTAssertTrue(message.contains("libm.so.6: no symbol cublasCreate_v2"), message)
    }

    func testMissingDriverSaysWhichVariableToSet() throws {
        if (try? CUDA.load(.driver)) != nil { throw XCTSkip("a CUDA driver loads here") }
        XCTAssertThrowsError(try CUDABackend(device: 0)) { error in
            guard case BackendError.unavailable(let device, let reason) = error else {
                return XCTFail("expected unavailable, got \(error)")
            }
            XCTAssertEqual(device, "cuda:0")
            XCTAssertTrue(reason.contains("libcuda.so.1") && reason.contains("CIM_CUDA_PATH"),
                          reason)
        }
    }

    // MARK: - NVRTC and the kernel cache

    /// NVRTC's version, or XCTSkip; CI sets CIM_REQUIRE_NVRTC=1 so that a missing NVRTC
    /// fails instead of skipping (a kernel that does not compile must fail CI).
    private func nvrtcOrSkip() throws -> String {
        do {
            return try CUDA.nvrtcVersion()
        } catch BackendError.unavailable(_, let reason) {
            if ProcessInfo.processInfo.environment["CIM_REQUIRE_NVRTC"] == "1" {
                XCTFail("CIM_REQUIRE_NVRTC=1 but NVRTC does not load: \(reason)")
            }
            throw XCTSkip("NVRTC unavailable: \(reason)")
        }
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "cim-cuda-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testEveryProgramCompilesForEachArchitectureAndIsCached() throws {
        let version = try nvrtcOrSkip()
        let directory = try temporaryDirectory()
        for architecture in [70, 80, 90] {
            for program in CUDA.Program.allCases {
                let first = try CUDA.compile(program, architecture: architecture,
                                             cacheDirectory: directory)
                print("nvrtc \(version) sm_\(architecture) \(program): \(first.bytes) bytes")
                XCTAssertFalse(first.fromCache, "sm_\(architecture) \(program) first build")
                XCTAssertGreaterThan(first.bytes, 1000)
                let second = try CUDA.compile(program, architecture: architecture,
                                              cacheDirectory: directory)
                XCTAssertTrue(second.fromCache, "sm_\(architecture) \(program) second build")
                XCTAssertEqual(second.bytes, first.bytes)
            }
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertEqual(entries.filter { $0.hasSuffix(".bin") }.count, 6, "\(entries)")
    }

    func testDamagedCacheEntriesAreRebuilt() throws {
        _ = try nvrtcOrSkip()
        let directory = try temporaryDirectory()
        let built = try CUDA.compile(.float64, architecture: 80, cacheDirectory: directory)
        XCTAssertFalse(built.fromCache)
        let entry = directory + "/" + (try FileManager.default.contentsOfDirectory(
            atPath: directory).first { $0.hasSuffix(".bin") }!)
        // truncated, then with a flipped payload byte: each is rebuilt and rewritten
        var bytes = try Data(contentsOf: URL(fileURLWithPath: entry))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: entry))
        XCTAssertFalse(try CUDA.compile(.float64, architecture: 80,
                                        cacheDirectory: directory).fromCache)
        bytes = try Data(contentsOf: URL(fileURLWithPath: entry))
        bytes[bytes.count - 10] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: entry))
        XCTAssertFalse(try CUDA.compile(.float64, architecture: 80,
                                        cacheDirectory: directory).fromCache)
        XCTAssertTrue(try CUDA.compile(.float64, architecture: 80,
                                       cacheDirectory: directory).fromCache)
    }

    func testNoCacheWhenTheDirectoryIsEmpty() throws {
        _ = try nvrtcOrSkip()
        for _ in 0..<2 {
            XCTAssertFalse(try CUDA.compile(.float32, architecture: 80, cacheDirectory: "")
                .fromCache)
        }
    }

    func testAnArchitectureNVRTCDoesNotKnowIsAClearError() throws {
        _ = try nvrtcOrSkip()
        XCTAssertThrowsError(try CUDA.compile(.float32, architecture: 20, cacheDirectory: ""))
        { error in
            XCTAssertTrue("\(error)".contains("does not compile for sm_20"), "\(error)")
        }
    }

    // MARK: - On a GPU

    func testTheDeviceOpensWithCUBLASInFullPrecision() throws {
        let backend = try cudaBackendOrSkip()
        XCTAssertEqual(backend.deviceName, "cuda:0")
        XCTAssertTrue(backend.gemmEngine.hasPrefix("cuBLAS") && backend.gemmEngine.hasSuffix(
            "(fp32)"), backend.gemmEngine)
        XCTAssertTrue(backend.supportsFloat64)
        let stats = backend.cacheStatistics
        XCTAssertEqual(stats.loaded + stats.built, 2, "both programs, built or from the cache")
        let tf32 = try CUDABackend(device: 0, tf32: true)
        XCTAssertTrue(tf32.gemmEngine.hasSuffix("(tf32)"), tf32.gemmEngine)
        let kernels = try cudaBackendOrSkip(useCUBLAS: false)
        XCTAssertEqual(kernels.gemmEngine, "gemm.cl")
    }

    func testEveryDeviceIsAReplicaOfPlainCUDA() throws {
        guard let devices = try? CUDA.devices(), !devices.isEmpty else {
            throw XCTSkip("no CUDA device")
        }
        let (backends, _) = try Devices.open("cuda", threads: 1)
        XCTAssertEqual(backends.map(\.deviceName), devices.map { "cuda:\($0.index)" })
    }
}
