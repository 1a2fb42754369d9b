// CKernelsSmokeTests.swift: calls the C API directly, with no Swift layer in between.
//
// Checks the conventions ckernels.h promises to every caller: a context is created and
// destroyed, a status is returned and the thread-local message names the failing function
// and its file, status names are fixed strings, a tiny GEMM and a tiny convolution (under
// each algorithm) give the exact answer, and the convolution shape check rejects a kernel
// larger than the padded input. The numerical
// suites live in BackendTests; this file only proves the C surface is wired up.

import CKernels
import Foundation
import XCTest

final class CKernelsSmokeTests: XCTestCase {
    private func makeContext(threads: Int32 = 2) throws -> OpaquePointer {
        var context: OpaquePointer? = nil
        let status = cim_cpu_context_create(threads, &context)
        XCTAssertEqual(status, CIM_OK, String(cString: cim_last_error()))
        return try XCTUnwrap(context)
    }

    func testContextCreateAndDestroy() throws {
        let context = try makeContext(threads: 2)
        defer { cim_cpu_context_destroy(context) }
        XCTAssertEqual(cim_cpu_context_threads(context), 2)
        XCTAssertEqual(cim_cpu_context_workspace_bytes(context), 0, "no scratch before use")
        XCTAssertEqual(cim_cpu_context_set_threads(context, 1), CIM_OK)
        XCTAssertEqual(cim_cpu_context_threads(context), 1)
        // 0 means every online core, which is at least one.
        XCTAssertEqual(cim_cpu_context_set_threads(context, 0), CIM_OK)
        XCTAssertGreaterThanOrEqual(cim_cpu_context_threads(context), 1)
        XCTAssertFalse(String(cString: cim_cpu_blas_info()).isEmpty)
        // Destroying NULL is a no-op, as free() is.
        cim_cpu_context_destroy(nil)
    }

    func testContextRejectsTooManyThreads() {
        var context: OpaquePointer? = nil
        XCTAssertEqual(cim_cpu_context_create(100_000, &context), CIM_ERROR_INVALID_ARGUMENT)
        XCTAssertNil(context, "a failed create leaves no handle behind")
        XCTAssertTrue(String(cString: cim_last_error()).contains("threads"))
    }

    func testTinyGemmIsExact() throws {
        let context = try makeContext()
        defer { cim_cpu_context_destroy(context) }
        // [1 2 3; 4 5 6] (2x3) times [1 0; 0 1; 1 1] (3x2), small integers: exact in fp32.
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let b: [Float] = [1, 0, 0, 1, 1, 1]
        var c: [Float] = [10, 20, 30, 40]
        // c = 2 a b - c
        let status = cim_cpu_gemm_f32(
            context, CIM_NO_TRANSPOSE, CIM_NO_TRANSPOSE, 2, 2, 3, 2, a, 3, b, 2, -1, &c, 2)
        XCTAssertEqual(status, CIM_OK, String(cString: cim_last_error()))
        // 2 [4 5; 10 11] - [10 20; 30 40]
        XCTAssertEqual(c, [-2, -10, -10, -18])

        // The same product in fp64 with A transposed: A^T stored as 3x2.
        let at: [Double] = [1, 4, 2, 5, 3, 6]
        let bd: [Double] = [1, 0, 0, 1, 1, 1]
        var cd = [Double](repeating: .nan, count: 4)  // beta = 0 must not read C
        XCTAssertEqual(
            cim_cpu_gemm_f64(
                context, CIM_TRANSPOSE, CIM_NO_TRANSPOSE, 2, 2, 3, 1, at, 2, bd, 2, 0, &cd, 2),
            CIM_OK)
        XCTAssertEqual(cd, [4, 5, 10, 11])

        var magnitude = 0.0
        let element = cim_reference_gemm_f64_element(
            CIM_TRANSPOSE, CIM_NO_TRANSPOSE, 3, 1, at, 2, bd, 2, 0, cd, 2, 1, 1, &magnitude)
        XCTAssertEqual(element, 11)
        XCTAssertEqual(magnitude, 11, "all products are non-negative here")
    }

    func testLastErrorNamesFunctionAndFile() throws {
        let context = try makeContext()
        defer { cim_cpu_context_destroy(context) }
        cim_clear_error()
        XCTAssertEqual(String(cString: cim_last_error()), "")
        var c: [Float] = [0]
        let one: [Float] = [1]
        let status = cim_cpu_gemm_f32(
            context, CIM_NO_TRANSPOSE, CIM_NO_TRANSPOSE, -1, 1, 1, 1, one, 1, one, 1, 0, &c, 1)
        XCTAssertEqual(status, CIM_ERROR_SHAPE)
        let message = String(cString: cim_last_error())
        // The innermost check writes the message: "cim_gemm_check (gemm.c:NN): ...".
        XCTAssertTrue(message.contains("cim_gemm_check"), message)
        XCTAssertTrue(message.contains("gemm.c:"), message)
        XCTAssertTrue(message.contains("m=-1"), message)
        XCTAssertEqual(c, [0], "a failed call leaves its output alone")

        cim_clear_error()
        XCTAssertEqual(String(cString: cim_last_error()), "")

        XCTAssertEqual(
            cim_cpu_gemm_f32(
                nil, CIM_NO_TRANSPOSE, CIM_NO_TRANSPOSE, 1, 1, 1, 1, one, 1, one, 1, 0, &c, 1),
            CIM_ERROR_INVALID_ARGUMENT)
        XCTAssertTrue(String(cString: cim_last_error()).contains("context is NULL"))
    }

    func testStatusNames() {
        let expected: [(cim_status, String)] = [
            (CIM_OK, "CIM_OK"),
            (CIM_ERROR_INVALID_ARGUMENT, "CIM_ERROR_INVALID_ARGUMENT"),
            (CIM_ERROR_SHAPE, "CIM_ERROR_SHAPE"),
            (CIM_ERROR_NOT_POSITIVE_DEFINITE, "CIM_ERROR_NOT_POSITIVE_DEFINITE"),
            (CIM_ERROR_OUT_OF_MEMORY, "CIM_ERROR_OUT_OF_MEMORY"),
            (CIM_ERROR_UNAVAILABLE, "CIM_ERROR_UNAVAILABLE"),
            (CIM_ERROR_INTERNAL, "CIM_ERROR_INTERNAL"),
        ]
        for (status, name) in expected {
            XCTAssertEqual(String(cString: cim_status_name(status)), name)
        }
        XCTAssertEqual(String(cString: cim_status_name(cim_status(99))), "CIM_ERROR_UNKNOWN")
    }

    func testConvOutputSizeValidation() {
        var shape = cim_conv2d_shape(
            batch: 2, in_channels: 3, in_height: 7, in_width: 9, out_channels: 4,
            kernel_height: 3, kernel_width: 3, stride_height: 2, stride_width: 1,
            pad_height: 1, pad_width: 0)
        var p: Int32 = -1, q: Int32 = -1
        XCTAssertEqual(cim_conv2d_output_size(&shape, &p, &q), CIM_OK)
        XCTAssertEqual(p, 4, "(7 + 2 - 3) / 2 + 1")
        XCTAssertEqual(q, 7, "(9 + 0 - 3) / 1 + 1")

        // A 5x5 kernel does not fit a 3x3 input padded by 0.
        shape.in_height = 3
        shape.in_width = 3
        shape.kernel_height = 5
        shape.kernel_width = 5
        shape.pad_height = 0
        p = -1
        XCTAssertEqual(cim_conv2d_output_size(&shape, &p, &q), CIM_ERROR_SHAPE)
        XCTAssertEqual(p, -1, "outputs untouched on failure")
        let message = String(cString: cim_last_error())
        XCTAssertTrue(message.contains("cim_conv2d_output_size"), message)
        XCTAssertTrue(message.contains("conv2d.c:"), message)
        XCTAssertTrue(message.contains("larger than the padded input 3x3"), message)

        // Padding 1 makes it fit: (3 + 2 - 5) / 1 + 1 = 1.
        shape.pad_height = 1
        shape.pad_width = 1
        XCTAssertEqual(cim_conv2d_output_size(&shape, &p, &q), CIM_OK)
        XCTAssertEqual([p, q], [1, 1])

        shape.stride_width = 0
        XCTAssertEqual(cim_conv2d_output_size(&shape, &p, &q), CIM_ERROR_SHAPE)
        XCTAssertEqual(cim_conv2d_output_size(nil, &p, &q), CIM_ERROR_INVALID_ARGUMENT)
    }

    func testTinyConvolutionUnderEachAlgorithm() throws {
        let context = try makeContext()
        defer { cim_cpu_context_destroy(context) }
        // One 3x3 image, one 3x3 filter, no padding: a single dot product. Small integers
        // keep it exact through Winograd's halves as well.
        var shape = cim_conv2d_shape(
            batch: 1, in_channels: 1, in_height: 3, in_width: 3, out_channels: 1,
            kernel_height: 3, kernel_width: 3, stride_height: 1, stride_width: 1,
            pad_height: 0, pad_width: 0)
        let x: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        let w: [Float] = [1, 0, -1, 2, 1, 0, 0, 1, 1]
        for algorithm in [CIM_CONV_AUTO, CIM_CONV_IM2COL, CIM_CONV_WINOGRAD] {
            XCTAssertEqual(cim_cpu_context_set_conv_algorithm(context, algorithm), CIM_OK)
            var y: [Float] = [.nan]
            XCTAssertEqual(cim_cpu_conv2d_forward(context, &shape, x, w, &y), CIM_OK)
            XCTAssertEqual(y, [28], "algorithm \(algorithm.rawValue)")
        }
        var magnitude = 0.0
        XCTAssertEqual(
            cim_reference_conv2d_forward_element(&shape, x, w, 0, 0, 0, 0, &magnitude), 28)
        XCTAssertEqual(magnitude, 34, "sum of |products|: 28 + 2 * 3")

        XCTAssertEqual(
            cim_cpu_context_set_conv_algorithm(context, cim_conv_algorithm(7)),
            CIM_ERROR_INVALID_ARGUMENT)
        XCTAssertTrue(String(cString: cim_last_error()).contains("algorithm 7"))
    }

    func testProbeOfMissingLibraryListsNames() {
        let names = ["libcim-no-such-library.so.7", "libcim-also-missing.so"]
        let cStrings = names.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        pointers.append(nil)
        var loaded: UnsafePointer<CChar>? = nil
        let status = pointers.withUnsafeBufferPointer {
            cim_probe_library($0.baseAddress, &loaded)
        }
        XCTAssertEqual(status, CIM_ERROR_UNAVAILABLE)
        let message = String(cString: cim_last_error())
        for name in names { XCTAssertTrue(message.contains(name), message) }
    }
}
