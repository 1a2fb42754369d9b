// CUDABackend.swift: the Backend on an NVIDIA GPU: opening it (the memory and the ops are
// GPUBackend's, shared with OpenCL).
//
// Three libraries are opened at run time, never linked, so one binary runs on machines with
// and without CUDA: the driver (libcuda.so.1; CIM_CUDA_PATH overrides), NVRTC, which compiles
// the kernels of kernels/ for the device (libnvrtc.so.12 or .13; CIM_NVRTC_PATH), and cuBLAS
// for the GEMMs (libcublas.so.12 or .13; CIM_CUBLAS_PATH). Compiled kernels are cached on
// disk by architecture, NVRTC version, options and source (CIM_CUDA_CACHE: a folder, or
// "off"). GEMMs, and so convolutions, run in full FP32 unless the backend is opened with
// `tf32: true` (`--tf32`).

import CKernels
import Foundation

/// One CUDA device, as `cim-train devices` lists it.
public struct CUDADeviceInfo: Sendable, Equatable, CustomStringConvertible {
    /// The N of `cuda:N`.
    public var index: Int
    public var name: String
    /// Compute capability: (9, 0) for sm_90.
    public var major: Int, minor: Int
    public var multiprocessors: Int
    public var memoryBytes: Int
    /// 12040 for CUDA 12.4.
    public var driverVersion: Int

    init(_ info: cim_cuda_device_info) {
        var info = info
        index = Int(info.index)
        name = withUnsafeBytes(of: &info.name) {
            String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
        }
        major = Int(info.major)
        minor = Int(info.minor)
        multiprocessors = Int(info.multiprocessors)
        memoryBytes = Int(info.memory_bytes)
        driverVersion = Int(info.driver_version)
    }

    /// "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB, driver 12.4)".
    public var description: String {
        let gib = String(format: "%.1f", Double(memoryBytes) / Double(1 << 30))
        return "\(name) (sm_\(major)\(minor), \(multiprocessors) SMs, \(gib) GiB, driver "
            + "\(driverVersion / 1000).\(driverVersion % 1000 / 10))"
    }
}

/// The CUDA libraries and devices.
public enum CUDA {
    /// A library cim-train opens, the names it tries and the variable that overrides them.
    public enum Library: CaseIterable, Sendable {
        case driver, nvrtc, cublas

        var defaultNames: [String] {
            switch self {
            case .driver: return ["libcuda.so.1", "libcuda.so"]
            case .nvrtc: return ["libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so"]
            case .cublas: return ["libcublas.so.12", "libcublas.so.13", "libcublas.so"]
            }
        }

        public var variable: String {
            switch self {
            case .driver: return "CIM_CUDA_PATH"
            case .nvrtc: return "CIM_NVRTC_PATH"
            case .cublas: return "CIM_CUBLAS_PATH"
            }
        }

        var what: String {
            switch self {
            case .driver: return "CUDA driver"
            case .nvrtc: return "NVRTC"
            case .cublas: return "cuBLAS"
            }
        }

        var cValue: cim_cuda_library {
            switch self {
            case .driver: return CIM_CUDA_LIBRARY_DRIVER
            case .nvrtc: return CIM_CUDA_LIBRARY_NVRTC
            case .cublas: return CIM_CUDA_LIBRARY_CUBLAS
            }
        }

        /// The variable's value alone when it is set, else the default names.
        var names: [String] {
            if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty {
                return [path]
            }
            return defaultNames
        }
    }

    /// Opens `library` (once per process); returns the name that loaded.
    ///
    /// - Throws: ``BackendError/unavailable(device:reason:)`` naming every library tried
    ///   and the variable to set.
    @discardableResult
    public static func load(_ library: Library) throws -> String {
        let cStrings = library.names.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        pointers.append(nil)
        var loaded: UnsafePointer<CChar>? = nil
        let status = pointers.withUnsafeBufferPointer {
            cim_cuda_load(library.cValue, $0.baseAddress, &loaded)
        }
        guard status == CIM_OK, let loaded else {
            throw BackendError.unavailable(
                device: "cuda",
                reason: "no \(library.what): \(String(cString: cim_last_error())) "
                    + "(set \(library.variable) to its path)")
        }
        return String(cString: loaded)
    }

    /// Every device the driver reports, in `cuda:N` order (empty when it finds no GPU).
    public static func devices() throws -> [CUDADeviceInfo] {
        try load(.driver)
        var count: Int32 = 0
        try cimCheck(cim_cuda_device_count(&count))
        return try (0..<count).map { index in
            var info = cim_cuda_device_info()
            try cimCheck(cim_cuda_device_info_get(index, &info))
            return CUDADeviceInfo(info)
        }
    }

    /// NVRTC's version, "12.9".
    public static func nvrtcVersion() throws -> String {
        try load(.nvrtc)
        var (major, minor): (Int32, Int32) = (0, 0)
        try cimCheck(cim_nvrtc_version(&major, &minor))
        return "\(major).\(minor)"
    }

    /// Which program of kernels/ to compile.
    public enum Program: Int32, CaseIterable, Sendable {
        case float32 = 0, float64 = 1
    }

    /// Compiles a program with NVRTC for compute capability `architecture` (80 for sm_80)
    /// through the kernel cache and discards the image. Needs NVRTC only, no GPU: CI
    /// compiles every kernel this way.
    ///
    /// - Returns: whether the image came from the cache, and its size in bytes.
    /// - Throws: ``BackendError/library(_:)`` carrying NVRTC's log when a kernel does not
    ///   compile.
    public static func compile(_ program: Program, architecture: Int,
                               cacheDirectory: String? = nil) throws
        -> (fromCache: Bool, bytes: Int)
    {
        try load(.nvrtc)
        var fromCache: Int32 = 0
        var bytes = 0
        let directory = cacheDirectory ?? cacheDirectoryFromEnvironment
        try cimCheck(cim_nvrtc_build_program(
            program.rawValue, Int32(architecture), directory, &fromCache, &bytes))
        return (fromCache != 0, bytes)
    }

    /// CIM_CUDA_CACHE: nil (the default folder), "" (no cache, for "off") or a folder.
    static var cacheDirectoryFromEnvironment: String? {
        guard let value = ProcessInfo.processInfo.environment["CIM_CUDA_CACHE"] else {
            return nil
        }
        return ["off", "0", "none"].contains(value.lowercased()) ? "" : value
    }
}

/// The CUDA backend: cuBLAS for GEMMs, our kernels (kernels/, compiled by NVRTC) for the
/// rest, on one NVIDIA GPU.
public final class CUDABackend: GPUBackend, @unchecked Sendable {
    public let device: CUDADeviceInfo
    /// What the kernel cache did when this backend opened.
    public let cacheStatistics: ProgramCacheStatistics
    /// "cuBLAS 12.4.5 (fp32)", "cuBLAS ... (tf32)" or "gemm.cl".
    public let gemmEngine: String

    /// Opens a CUDA device: loads the libraries, compiles (or takes from the cache) the
    /// kernels for its architecture and makes a stream and a cuBLAS handle.
    ///
    /// - Parameters:
    ///   - index: the N of `cuda:N`.
    ///   - tf32: float32 GEMMs and convolutions on tensor cores with TF32 inputs (faster
    ///     on sm_80 and later; about 1e-3 relative error instead of the CPU's result).
    ///   - useCUBLAS: false runs GEMMs in gemm.cl's kernel (tests of that kernel on CUDA).
    ///   - cacheDirectory: where compiled kernels are kept; nil for CIM_CUDA_CACHE or the
    ///     default (`$XDG_CACHE_HOME` or `~/.cache`, then `cim-train/cuda`), "" for none.
    ///   - cacheLimitBytes: freed device memory kept for reuse.
    /// - Throws: ``BackendError/unavailable(device:reason:)`` when a library or the device
    ///   is missing; ``BackendError/library(_:)`` with NVRTC's log when a kernel does not
    ///   compile.
    public init(device index: Int = 0, tf32: Bool = false, useCUBLAS: Bool = true,
                cacheDirectory: String? = nil, cacheLimitBytes: Int = 16 << 30) throws {
        let name = "cuda:\(index)"
        do {
            try CUDA.load(.driver)
            try CUDA.load(.nvrtc)
            if useCUBLAS { try CUDA.load(.cublas) }
        } catch BackendError.unavailable(_, let reason) {
            throw BackendError.unavailable(device: name, reason: reason)
        }
        var created: OpaquePointer? = nil
        let flags = (tf32 ? Int32(CIM_CUDA_TF32) : 0) | (useCUBLAS ? 0 : Int32(CIM_CUDA_NO_CUBLAS))
        let status = cim_cuda_context_create(
            Int32(index), cacheDirectory ?? CUDA.cacheDirectoryFromEnvironment, flags,
            &created)
        if status == CIM_ERROR_UNAVAILABLE {
            throw BackendError.unavailable(device: name, reason: String(cString: cim_last_error()))
        }
        try cimCheck(status)
        let context = created!
        device = CUDADeviceInfo(cim_cuda_context_device(context)!.pointee)
        var stats = cim_program_cache_stats()
        cim_cuda_context_cache_stats(context, &stats)
        cacheStatistics = ProgramCacheStatistics(stats)
        gemmEngine = String(cString: cim_cuda_context_gemm_engine(context))
        let owner = GPUContext(gpu: cim_cuda_context_gpu(context)) {
            cim_cuda_context_destroy(context)
        }
        super.init(context: owner, deviceName: name, cacheLimitBytes: cacheLimitBytes)
    }

    public override var deviceDetail: String { "\(device.description), GEMM \(gemmEngine)" }
}
