// OpenCLBackend.swift: the Backend on an OpenCL device: opening it (the memory and the ops
// are GPUBackend's, shared with CUDA).
//
// libOpenCL.so.1 (the ICD loader) is opened at run time (CIM_OPENCL_PATH overrides the
// name), so the package builds and runs without OpenCL; the kernels are the files of
// kernels/, embedded in the binary and built for the device when a backend opens, with the
// built programs cached on disk (CIM_OPENCL_CACHE: a directory, or "off").

import CKernels
import Foundation

/// One OpenCL device, as `cim-train devices` lists it.
public struct OpenCLDeviceInfo: Sendable, Equatable, CustomStringConvertible {
    /// The N of `opencl:N`: the position in the platform-major list of every device.
    public var index: Int
    public var platformIndex: Int
    public var platformName: String
    public var platformVersion: String
    public var name: String
    public var vendor: String
    public var driverVersion: String
    /// "OpenCL 3.0 ...", as the device reports it.
    public var version: String
    public var isGPU: Bool
    public var isCPU: Bool
    /// Whether the device computes in double precision (cl_khr_fp64).
    public var supportsFloat64: Bool
    public var computeUnits: Int
    public var globalMemoryBytes: Int

    init(_ info: cim_opencl_device_info) {
        var info = info
        func text<T>(_ field: inout T) -> String {
            withUnsafeBytes(of: &field) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
        }
        index = Int(info.index)
        platformIndex = Int(info.platform_index)
        platformName = text(&info.platform_name)
        platformVersion = text(&info.platform_version)
        name = text(&info.name)
        vendor = text(&info.vendor)
        driverVersion = text(&info.driver_version)
        version = text(&info.version)
        isGPU = info.is_gpu != 0
        isCPU = info.is_cpu != 0
        supportsFloat64 = info.has_fp64 != 0
        computeUnits = Int(info.compute_units)
        globalMemoryBytes = Int(info.global_memory_bytes)
    }

    /// "GPU", "CPU" or "accelerator".
    public var kind: String { isGPU ? "GPU" : isCPU ? "CPU" : "accelerator" }

    /// "pthread-skylake (Portable Computing Language, CPU, fp64 yes, 2 compute units,
    /// 7.6 GiB, OpenCL 3.0 PoCL, driver 3.1)".
    public var description: String {
        let gib = String(format: "%.1f", Double(globalMemoryBytes) / Double(1 << 30))
        return "\(name) (\(platformName), \(kind), fp64 \(supportsFloat64 ? "yes" : "no"), "
            + "\(computeUnits) compute units, \(gib) GiB, \(version), driver \(driverVersion))"
    }
}

/// The OpenCL library and its devices.
public enum OpenCL {
    static let defaultLibraries = ["libOpenCL.so.1", "libOpenCL.so"]

    /// Library names to try: CIM_OPENCL_PATH alone when it is set, else the defaults.
    static var libraryNames: [String] {
        if let path = ProcessInfo.processInfo.environment["CIM_OPENCL_PATH"], !path.isEmpty {
            return [path]
        }
        return defaultLibraries
    }

    /// Opens the OpenCL loader (once per process); returns the name that loaded.
    ///
    /// - Throws: ``BackendError/unavailable(device:reason:)`` naming every library tried.
    @discardableResult
    public static func loadLibrary() throws -> String {
        let names = libraryNames
        let cStrings = names.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        pointers.append(nil)
        var loaded: UnsafePointer<CChar>? = nil
        let status = pointers.withUnsafeBufferPointer { cim_opencl_load($0.baseAddress, &loaded) }
        guard status == CIM_OK, let loaded else {
            throw BackendError.unavailable(
                device: "opencl",
                reason: "no OpenCL loader: \(String(cString: cim_last_error())) "
                    + "(set CIM_OPENCL_PATH to libOpenCL.so.1)")
        }
        return String(cString: loaded)
    }

    /// Every device of every platform, in `opencl:N` order (empty when the loader finds no
    /// platform).
    public static func devices() throws -> [OpenCLDeviceInfo] {
        try loadLibrary()
        var count: Int32 = 0
        try cimCheck(cim_opencl_device_count(&count))
        return try (0..<count).map { index in
            var info = cim_opencl_device_info()
            try cimCheck(cim_opencl_device_info_get(index, &info))
            return OpenCLDeviceInfo(info)
        }
    }

    /// The device `opencl` without an index opens: the first GPU, else the first device.
    public static func defaultDevice(among devices: [OpenCLDeviceInfo]) -> OpenCLDeviceInfo? {
        devices.first(where: \.isGPU) ?? devices.first
    }

    /// CIM_OPENCL_CACHE: nil (the default folder), "" (no cache, for "off") or a folder.
    static var cacheDirectoryFromEnvironment: String? {
        guard let value = ProcessInfo.processInfo.environment["CIM_OPENCL_CACHE"] else {
            return nil
        }
        return ["off", "0", "none"].contains(value.lowercased()) ? "" : value
    }
}

/// Which GEMM kernels the OpenCL backend runs (convolution and log-det included).
public enum OpenCLGemmKernels: String, Sendable, CaseIterable {
    /// The CPU kernels on a CPU device, the tiled kernel elsewhere.
    case auto
    /// The portable tiled kernel shared with CUDA (shared-memory tiles: the GPU kernel).
    case tiled
    /// The OpenCL fast path for CPU devices (vector types, a block per work-item).
    case cpu
}

/// What a program cache did when a backend opened.
public struct ProgramCacheStatistics: Sendable, Equatable {
    public var loaded: Int, built: Int, corrupt: Int, saved: Int
    /// "" when caching is off.
    public var directory: String

    init(_ stats: cim_program_cache_stats) {
        var stats = stats
        directory = withUnsafeBytes(of: &stats.directory) {
            String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
        }
        (loaded, built, corrupt, saved) = (Int(stats.loaded), Int(stats.built),
                                           Int(stats.corrupt), Int(stats.saved))
    }
}

/// The OpenCL backend: our own kernels (kernels/) on one OpenCL device.
public final class OpenCLBackend: GPUBackend, @unchecked Sendable {
    public let device: OpenCLDeviceInfo
    private let context: OpaquePointer
    /// What the program cache did when this backend opened.
    public let cacheStatistics: ProgramCacheStatistics

    /// Opens an OpenCL device and builds its kernels (seconds the first time, then taken
    /// from the program cache).
    ///
    /// - Parameters:
    ///   - index: the N of `opencl:N`; nil takes the first GPU, else the first device.
    ///   - cacheDirectory: where built programs are kept; nil for CIM_OPENCL_CACHE or the
    ///     default (`$XDG_CACHE_HOME` or `~/.cache`, then `cim-train/opencl`), "" for none.
    ///   - cacheLimitBytes: freed device memory kept for reuse.
    ///   - gemmKernels: which GEMM kernels run (tests force each in turn).
    ///   - ignoreFloat64: behave as a device without fp64 (tests of the fallbacks).
    /// - Throws: ``BackendError/unavailable(device:reason:)`` when there is no such device
    ///   or it cannot run the kernels; ``BackendError/library(_:)`` with the driver's build
    ///   log when a kernel does not compile.
    public init(device index: Int? = nil, cacheDirectory: String? = nil,
                cacheLimitBytes: Int = 4 << 30, gemmKernels: OpenCLGemmKernels = .auto,
                ignoreFloat64: Bool = false) throws {
        let devices = try OpenCL.devices()
        let requested = index.map { "opencl:\($0)" } ?? "opencl"
        guard let chosen = index ?? OpenCL.defaultDevice(among: devices)?.index else {
            throw BackendError.unavailable(
                device: requested,
                reason: "the OpenCL loader finds no platform or device (install a driver; "
                    + "pocl-opencl-icd runs OpenCL on the CPU)")
        }
        var created: OpaquePointer? = nil
        let directory = cacheDirectory ?? OpenCL.cacheDirectoryFromEnvironment
        let flags = ignoreFloat64 ? Int32(CIM_OPENCL_IGNORE_FP64) : 0
        let status = cim_opencl_context_create(Int32(chosen), directory, flags, &created)
        if status == CIM_ERROR_UNAVAILABLE {
            throw BackendError.unavailable(
                device: requested, reason: String(cString: cim_last_error()))
        }
        try cimCheck(status)
        let context = created!
        self.context = context
        self.device = OpenCLDeviceInfo(cim_opencl_context_device(context)!.pointee)
        var stats = cim_program_cache_stats()
        cim_opencl_context_cache_stats(context, &stats)
        self.cacheStatistics = ProgramCacheStatistics(stats)
        let choice: cim_opencl_gemm
        switch gemmKernels {
        case .auto: choice = CIM_OPENCL_GEMM_AUTO
        case .tiled: choice = CIM_OPENCL_GEMM_TILED
        case .cpu: choice = CIM_OPENCL_GEMM_CPU
        }
        try cimCheck(cim_opencl_context_set_gemm(context, choice))
        let owner = GPUContext(gpu: cim_opencl_context_gpu(context)) {
            cim_opencl_context_destroy(context)
        }
        super.init(context: owner, deviceName: "opencl:\(chosen)",
                   cacheLimitBytes: cacheLimitBytes)
    }

    public override var deviceDetail: String { device.description }

    /// Compiles `source` (after the prelude and common.cl) and discards it: the build-error
    /// path, for tests. Throws ``BackendError/library(_:)`` carrying the build log.
    public func checkKernelSource(_ source: String, name: String = "check.cl",
                                  options: String = "") throws {
        try locked { try check(cim_opencl_build_check(context, name, source, options)) }
    }
}
