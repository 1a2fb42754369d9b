// OpenCLSmokeTests.swift: the OpenCL half of the C API, called directly.
//
// Loads libOpenCL.so.1, opens the first device, runs a GEMM small enough to be exact, and
// checks the error conventions of ckernels.h on the OpenCL path: a bad device index names
// the function and file, and a failing OpenCL call is reported by CK_CL with the call's
// text, the OpenCL error name and its code. Skips where no OpenCL device is installed.

import CKernels
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class OpenCLSmokeTests: XCTestCase {
    private func contextOrSkip() throws -> OpaquePointer {
        // CIM_OPENCL_PATH replaces the default names, as in the Backend module
        let override = ProcessInfo.processInfo.environment["CIM_OPENCL_PATH"] ?? ""
        let first = strdup(override.isEmpty ? "libOpenCL.so.1" : override)
        let second = override.isEmpty ? strdup("libOpenCL.so") : nil
        defer {
            free(first)
            free(second)
        }
        let pointers: [UnsafePointer<CChar>?] = [
            UnsafePointer(first), second.map { UnsafePointer($0) }, nil,
        ]
        guard pointers.withUnsafeBufferPointer({ cim_opencl_load($0.baseAddress, nil) }) == CIM_OK
        else { throw XCTSkip("no OpenCL loader: \(String(cString: cim_last_error()))") }
        var count: Int32 = 0
        XCTAssertEqual(cim_opencl_device_count(&count), CIM_OK)
        guard count > 0 else { throw XCTSkip("no OpenCL device") }
        var context: OpaquePointer? = nil
        let status = cim_opencl_context_create(0, nil, 0, &context)
        XCTAssertEqual(status, CIM_OK, String(cString: cim_last_error()))
        return try XCTUnwrap(context)
    }

    func testTinyGemmIsExact() throws {
        let context = try contextOrSkip()
        defer { cim_opencl_context_destroy(context) }
        let gpu = cim_opencl_context_gpu(context)
        // [1 2 3; 4 5 6] times [1 0; 0 1; 1 1], small integers: exact in fp32
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [1, 0, 0, 1, 1, 1]
        var c: [Float] = [10, 20, 30, 40]
        var buffers: [OpaquePointer?] = [nil, nil, nil]
        for i in 0..<3 {
            XCTAssertEqual(cim_gpu_buffer_create(gpu, 24, &buffers[i]), CIM_OK)
        }
        defer { buffers.forEach { cim_gpu_buffer_destroy(gpu, $0) } }
        XCTAssertEqual(cim_gpu_write(gpu, buffers[0], a, 24), CIM_OK)
        XCTAssertEqual(cim_gpu_write(gpu, buffers[1], b, 24), CIM_OK)
        XCTAssertEqual(cim_gpu_write(gpu, buffers[2], c, 16), CIM_OK)
        XCTAssertEqual(cim_gpu_gemm_f32(
            gpu, CIM_NO_TRANSPOSE, CIM_NO_TRANSPOSE, 2, 2, 3, 1, buffers[0], 3, buffers[1], 2,
            1, buffers[2], 2), CIM_OK, String(cString: cim_last_error()))
        XCTAssertEqual(cim_gpu_read(gpu, buffers[2], &c, 16), CIM_OK)
        XCTAssertEqual(c, [14, 25, 40, 51])
    }

    func testErrorsNameTheFailingCall() throws {
        let context = try contextOrSkip()
        defer { cim_opencl_context_destroy(context) }
        let gpu = cim_opencl_context_gpu(context)

        var other: OpaquePointer? = nil
        XCTAssertEqual(cim_opencl_context_create(9999, nil, 0, &other), CIM_ERROR_UNAVAILABLE)
        XCTAssertNil(other)
        let missing = String(cString: cim_last_error())
        XCTAssertTrue(missing.contains("opencl_context.c") && missing.contains("9999"), missing)

        // reading more than the buffer holds: the driver refuses, CK_CL reports it
        var buffer: OpaquePointer? = nil
        XCTAssertEqual(cim_gpu_buffer_create(gpu, 16, &buffer), CIM_OK)
        defer { cim_gpu_buffer_destroy(gpu, buffer) }
        var host = [Float](repeating: 0, count: 64)
        XCTAssertEqual(cim_gpu_read(gpu, buffer, &host, 256), CIM_ERROR_INTERNAL)
        let message = String(cString: cim_last_error())
        XCTAssertTrue(message.contains("clEnqueueReadBuffer("), message)
        XCTAssertTrue(message.contains("CL_INVALID_VALUE (-30)"), message)
        XCTAssertTrue(message.contains("opencl_context.c:"), message)
    }
}
