// OpenCLSupport.swift: opening an OpenCL backend in a test, or skipping the test with the
// reason there is none (no loader, no platform, a device that cannot run our kernels).
//
// CI runs OpenCL on the CPU through PoCL; on a machine without it the OpenCL suites skip,
// and XCTest lists each skip with this message.

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
