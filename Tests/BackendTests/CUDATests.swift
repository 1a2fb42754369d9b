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
// - cuBLAS calls: every GEMM shape gpu_ops.c asks for (either operand transposed, offsets,
//   padded leading dimensions, strided batches, the NCHW store of the convolution) is
//   mapped to a column-major cuBLAS call; the call is run on the CPU with cuBLAS's
//   semantics and must give exactly what the row-major request means.
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

    // MARK: - The cuBLAS calls

    /// C of a row-major request, computed as the request says (float64, summed in order).
    private func rowMajor(_ g: cim_gemm_layout, a: [Double], b: [Double], c: [Double],
                          alpha: Double, beta: Double) -> [Double] {
        var out = c
        for z in 0..<Int(g.batch) {
            for i in 0..<Int(g.m) {
                for j in 0..<Int(g.n) {
                    var sum = 0.0
                    for l in 0..<Int(g.k) {
                        let ai = Int(g.a_offset) + z * Int(g.a_stride)
                            + (g.trans_a != 0 ? l * Int(g.lda) + i : i * Int(g.lda) + l)
                        let bi = Int(g.b_offset) + z * Int(g.b_stride)
                            + (g.trans_b != 0 ? j * Int(g.ldb) + l : l * Int(g.ldb) + j)
                        sum += a[ai] * b[bi]
                    }
                    let L = Int(g.out_plane)
                    let ci = Int(g.c_offset) + z * Int(g.c_stride)
                        + (L > 0 ? (j / L) * Int(g.m) * L + i * L + j % L : i * Int(g.ldc) + j)
                    out[ci] = alpha * sum + (beta == 0 ? 0 : beta * c[ci])
                }
            }
        }
        return out
    }

    /// The cuBLAS call run as cuBLAS defines it: column-major, op(X)[r][c] = X[r + c ld] or
    /// X[c + r ld], matrix z at offset + z stride.
    private func columnMajor(_ call: cim_cublas_call, first: [Double], second: [Double],
                             c: [Double], alpha: Double, beta: Double) -> [Double] {
        var out = c
        func element(_ x: [Double], _ offset: Int, _ ld: Int, _ op: Int32, _ r: Int, _ col: Int)
            -> Double
        {
            x[offset + (op == 0 ? r + col * ld : col + r * ld)]
        }
        for z in 0..<Int(call.batch) {
            for r in 0..<Int(call.m) {
                for col in 0..<Int(call.n) {
                    var sum = 0.0
                    for l in 0..<Int(call.k) {
                        sum += element(first, Int(call.first_offset) + z * Int(call.stride_first),
                                       Int(call.ld_first), call.op_first, r, l)
                            * element(second,
                                      Int(call.second_offset) + z * Int(call.stride_second),
                                      Int(call.ld_second), call.op_second, l, col)
                    }
                    let ci = Int(call.c_offset) + z * Int(call.stride_c) + r + col * Int(call.ldc)
                    out[ci] = alpha * sum + (beta == 0 ? 0 : beta * c[ci])
                }
            }
        }
        return out
    }

    func testEveryGemmShapeMapsToACUBLASCallWithTheSameResult() throws {
        var random = SplitMix64(seed: 11)
        var checked = 0
        for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            for (m, n, k) in [(5, 7, 3), (1, 9, 4), (6, 1, 1), (4, 4, 0)] {
                for (batch, padded) in [(1, false), (3, true)] {
                    let pad = padded ? 2 : 0
                    var g = cim_gemm_layout()
                    (g.trans_a, g.trans_b) = (Int32(ta), Int32(tb))
                    (g.m, g.n, g.k) = (Int32(m), Int32(n), Int32(k))
                    g.lda = Int32((ta != 0 ? m : k) + pad)
                    g.ldb = Int32((tb != 0 ? k : n) + pad)
                    g.ldc = Int32(n + pad)
                    g.a_offset = padded ? 3 : 0
                    g.b_offset = padded ? 1 : 0
                    g.c_offset = padded ? 2 : 0
                    let aSize = Int(g.lda) * max(ta != 0 ? k : m, 1)
                    let bSize = Int(g.ldb) * max(tb != 0 ? n : k, 1)
                    let cSize = Int(g.ldc) * m
                    (g.a_stride, g.b_stride, g.c_stride) = (Int64(aSize + 1), Int64(bSize),
                                                            Int64(cSize + 5))
                    g.batch = Int32(batch)
                    try checkPlan(g, &random, "ta\(ta) tb\(tb) m\(m) n\(n) k\(k) batch\(batch)")
                    checked += 1
                }
            }
        }
        // the convolution's NCHW store: K x (images P Q) written as images of K x P Q
        for (ta, images, planeSize) in [(0, 3, 4), (1, 2, 5), (0, 1, 9)] {
            var g = cim_gemm_layout()
            let (m, k) = (3, 4)
            (g.trans_a, g.m, g.n, g.k) = (Int32(ta), Int32(m), Int32(images * planeSize),
                                          Int32(k))
            g.lda = Int32(ta != 0 ? m : k)
            g.ldb = Int32(images * planeSize)
            g.c_offset = Int64(m * planeSize)   // a later group of images
            (g.batch, g.out_plane) = (1, Int32(planeSize))
            try checkPlan(g, &random, "NCHW store ta\(ta) images \(images) L \(planeSize)")
            checked += 1
        }
        XCTAssertEqual(checked, 35)
    }

    private func checkPlan(_ g: cim_gemm_layout, _ random: inout SplitMix64, _ label: String)
        throws
    {
        var call = cim_cublas_call()
        var layout = g
        XCTAssertEqual(cim_cuda_gemm_plan(&layout, &call), CIM_OK, label)
        // buffers large enough for every matrix of the batch, filled with small integers
        // (exact sums, so the two orders of summation must agree to the last bit)
        let span = { (offset: Int64, stride: Int64, size: Int) in
            Int(offset) + Int(stride) * Int(g.batch) + size + 64 }
        let aCount = span(g.a_offset, g.a_stride, Int(max(g.lda, 1)) * Int(max(g.m, g.k)))
        let bCount = span(g.b_offset, g.b_stride, Int(max(g.ldb, 1)) * Int(max(g.n, g.k)))
        let cCount = span(g.c_offset, g.c_stride, Int(max(g.ldc, 1)) * Int(g.m) + Int(g.m * g.n))
        func integers(_ count: Int) -> [Double] {
            (0..<count).map { _ in Double(random.index(9)) - 4 }
        }
        let (a, b, c) = (integers(aCount), integers(bCount), integers(cCount))
        for (alpha, beta) in [(1.0, 0.0), (-2.0, 1.0)] {
            let expected = rowMajor(g, a: a, b: b, c: c, alpha: alpha, beta: beta)
            let actual = columnMajor(call, first: b, second: a, c: c, alpha: alpha, beta: beta)
            XCTAssertEqual(actual, expected, "\(label) alpha \(alpha) beta \(beta)")
        }
    }

    func testAnNCHWStoreCUBLASCannotExpressIsRefused() {
        var g = cim_gemm_layout()
        (g.m, g.n, g.k, g.lda, g.ldb, g.batch, g.out_plane) = (2, 10, 3, 3, 10, 1, 4)
        var call = cim_cublas_call()
        XCTAssertEqual(cim_cuda_gemm_plan(&g, &call), CIM_ERROR_INTERNAL)
        XCTAssertTrue(String(cString: cim_last_error()).contains("n 10, plane 4"))
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
