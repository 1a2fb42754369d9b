// CKernels+Bridge.swift: glue between Swift and the C API, kept in one place.
//
// Every C call goes through `cimCheck`, which turns a non-zero status and the thread-local
// message into a thrown BackendError.

import CKernels

@inline(__always)
func cimCheck(_ status: cim_status, failedIndex: Int32 = -1) throws {
    if status == CIM_OK { return }
    let message = String(cString: cim_last_error())
    switch status {
    case CIM_ERROR_SHAPE: throw BackendError.shapeMismatch(message)
    case CIM_ERROR_NOT_POSITIVE_DEFINITE:
        throw BackendError.notPositiveDefinite(batchIndex: Int(failedIndex), message: message)
    case CIM_ERROR_OUT_OF_MEMORY: throw BackendError.outOfMemory(message)
    case CIM_ERROR_UNAVAILABLE: throw BackendError.unavailable(device: "library", reason: message)
    case CIM_ERROR_INVALID_ARGUMENT: throw BackendError.invalidArgument(message)
    default: throw BackendError.library(message)
    }
}

extension cim_conv2d_shape {
    init(_ g: Conv2DGeometry) {
        self.init(
            batch: Int32(g.batch), in_channels: Int32(g.inChannels),
            in_height: Int32(g.inHeight), in_width: Int32(g.inWidth),
            out_channels: Int32(g.outChannels), kernel_height: Int32(g.kernelHeight),
            kernel_width: Int32(g.kernelWidth), stride_height: Int32(g.strideHeight),
            stride_width: Int32(g.strideWidth), pad_height: Int32(g.padHeight),
            pad_width: Int32(g.padWidth))
    }
}

extension cim_pool2d_shape {
    init(_ g: Pool2DGeometry) {
        self.init(
            batch: Int32(g.batch), channels: Int32(g.channels), in_height: Int32(g.inHeight),
            in_width: Int32(g.inWidth), kernel_height: Int32(g.kernel),
            kernel_width: Int32(g.kernel), stride_height: Int32(g.stride),
            stride_width: Int32(g.stride), pad_height: Int32(g.padding),
            pad_width: Int32(g.padding))
    }
}

/// Whether the dynamic loader can open one of `names`; on failure, every name with the
/// loader's reason.
func probeLibrary(_ names: [String]) -> Result<String, BackendError> {
    let cStrings = names.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
    pointers.append(nil)
    var loaded: UnsafePointer<CChar>? = nil
    let status = pointers.withUnsafeBufferPointer { cim_probe_library($0.baseAddress, &loaded) }
    if status == CIM_OK, let loaded { return .success(String(cString: loaded)) }
    return .failure(.unavailable(device: "library", reason: String(cString: cim_last_error())))
}

#if canImport(Glibc)
import Glibc
#endif
