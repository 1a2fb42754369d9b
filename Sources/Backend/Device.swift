// Device.swift: device names as the command line takes them, and opening them.
//
// Accepted forms: `auto`, `cpu`, `cuda`, `cuda:N`, `opencl`, `opencl:N`, and comma lists of
// these (`cuda:0,cuda:1`). `auto` takes the first kind that initialises of CUDA, an OpenCL
// GPU and the CPU, and reports why it skipped the others. GPU libraries are probed at run
// time, never linked; their paths can be overridden with CIM_CUDA_PATH and CIM_OPENCL_PATH.

import Foundation

/// One entry of a `--device` / `--devices` list.
public enum DeviceRequest: Equatable, Sendable, CustomStringConvertible {
    case auto
    case cpu
    /// A CUDA device; `nil` means the first one (or every one, where a list is wanted).
    case cuda(Int?)
    /// An OpenCL device in the platform-major enumeration order; `nil` means the first GPU.
    case opencl(Int?)

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .cpu: return "cpu"
        case .cuda(let index): return index.map { "cuda:\($0)" } ?? "cuda"
        case .opencl(let index): return index.map { "opencl:\($0)" } ?? "opencl"
        }
    }

    static let accepted = "auto, cpu, cuda, cuda:N, opencl, opencl:N, "
        + "or a comma list such as cuda:0,cuda:1"

    /// Parses one device name.
    public init(parsing text: String) throws {
        let name = text.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        func index() throws -> Int? {
            guard parts.count == 2 else { return nil }
            // digits only: no sign, no leading zero (cuda:+1 and cuda:01 are typos)
            let digits = parts[1]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                digits == "0" || !digits.hasPrefix("0"), let value = Int(digits)
            else {
                throw BackendError.unknownDevice(
                    "unknown device '\(text)': the index after ':' must be a number >= 0")
            }
            return value
        }
        guard parts.count <= 2 else {
            throw BackendError.unknownDevice("unknown device '\(text)'; expected \(Self.accepted)")
        }
        switch parts[0] {
        case "auto" where parts.count == 1: self = .auto
        case "cpu" where parts.count == 1: self = .cpu
        case "cuda": self = .cuda(try index())
        case "opencl": self = .opencl(try index())
        default:
            throw BackendError.unknownDevice(
                "unknown device '\(text)'; expected \(Self.accepted)")
        }
    }

    /// Parses a comma list; `auto` may only stand alone.
    public static func parseList(_ text: String) throws -> [DeviceRequest] {
        let entries = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !entries.isEmpty,
            entries.allSatisfy({ !$0.trimmingCharacters(in: .whitespaces).isEmpty })
        else {
            throw BackendError.unknownDevice(
                "empty device name in '\(text)'; expected \(accepted)")
        }
        let requests = try entries.map { try DeviceRequest(parsing: $0) }
        if requests.count > 1, requests.contains(.auto) {
            throw BackendError.unknownDevice("'auto' cannot be part of a list ('\(text)')")
        }
        return requests
    }
}

/// What opening a device kind gave: its backends or the reason it is unusable.
public struct DeviceStatus: Sendable {
    public let kind: String
    public let available: Bool
    public let detail: String
    /// Whether `auto` would choose this kind here (CUDA, an OpenCL GPU, or the CPU).
    public let autoSelectable: Bool
    /// One line per device of the kind (OpenCL: every device of every platform).
    public let devices: [String]

    public init(kind: String, available: Bool, detail: String, autoSelectable: Bool? = nil,
                devices: [String] = []) {
        self.kind = kind
        self.available = available
        self.detail = detail
        self.autoSelectable = autoSelectable ?? available
        self.devices = devices
    }
}

/// Opens backends for device requests.
public enum Devices {
    /// The CUDA devices here with the libraries that loaded, or why CUDA cannot be used (a
    /// library missing, or a driver that finds no GPU).
    static func cudaDevices() -> Result<(devices: [CUDADeviceInfo], libraries: String),
                                        BackendError> {
        do {
            let driver = try CUDA.load(.driver)
            let devices = try CUDA.devices()
            guard !devices.isEmpty else {
                return .failure(.unavailable(
                    device: "cuda", reason: "the driver (\(driver)) finds no CUDA GPU"))
            }
            let nvrtc = try CUDA.load(.nvrtc)
            let cublas = try CUDA.load(.cublas)
            return .success((devices, "driver \(driver), NVRTC \(try CUDA.nvrtcVersion()) "
                                 + "(\(nvrtc)), cuBLAS \(cublas)"))
        } catch let error as BackendError {
            return .failure(error)
        } catch {
            return .failure(.library("\(error)"))
        }
    }

    /// The reason inside an `unavailable` error, or the error's text.
    private static func reason(_ error: BackendError) -> String {
        if case .unavailable(_, let why) = error { return why }
        return "\(error)"
    }

    /// The OpenCL devices here, or why there are none (no loader, or no platform).
    static func openCLDevices() -> Result<[OpenCLDeviceInfo], BackendError> {
        do {
            let devices = try OpenCL.devices()
            guard !devices.isEmpty else {
                return .failure(.unavailable(
                    device: "opencl",
                    reason: "the loader (\(try OpenCL.loadLibrary())) finds no OpenCL platform "
                        + "or device (install a driver; pocl-opencl-icd runs OpenCL on the CPU)"))
            }
            return .success(devices)
        } catch let error as BackendError {
            return .failure(error)
        } catch {
            return .failure(.library("\(error)"))
        }
    }

    /// "opencl:0  <name> (<platform>, CPU, fp64 yes, ...)" for every OpenCL device.
    static func openCLDeviceLines(_ devices: [OpenCLDeviceInfo]) -> [String] {
        devices.map { "opencl:\($0.index)  \($0.description)" }
    }

    /// The state of every device kind, for `cim-train devices`.
    public static func survey(threads: Int = 0) -> [DeviceStatus] {
        var statuses: [DeviceStatus] = []
        switch cudaDevices() {
        case .success(let found):
            let count = found.devices.count
            statuses.append(DeviceStatus(
                kind: "cuda", available: true,
                detail: "\(count) device\(count == 1 ? "" : "s"); \(found.libraries)",
                devices: found.devices.map { "cuda:\($0.index)  \($0.description)" }))
        case .failure(let error):
            statuses.append(DeviceStatus(kind: "cuda", available: false, detail: reason(error)))
        }
        switch openCLDevices() {
        case .success(let devices):
            let gpus = devices.filter(\.isGPU).count
            let platforms = Set(devices.map(\.platformIndex)).count
            let detail = "\(devices.count) device\(devices.count == 1 ? "" : "s") on \(platforms) "
                + "platform\(platforms == 1 ? "" : "s"), \(gpus) GPU\(gpus == 1 ? "" : "s")"
                + (gpus == 0 ? " (auto skips CPU devices; choose one with --device opencl:N)" : "")
            statuses.append(DeviceStatus(
                kind: "opencl", available: true, detail: detail, autoSelectable: gpus > 0,
                devices: openCLDeviceLines(devices)))
        case .failure(let error):
            let reason: String
            if case .unavailable(_, let why) = error { reason = why } else { reason = "\(error)" }
            statuses.append(DeviceStatus(kind: "opencl", available: false, detail: reason))
        }
        do {
            let cpu = try CPUBackend(threads: threads)
            statuses.append(DeviceStatus(kind: "cpu", available: true, detail: cpu.deviceDetail))
        } catch {
            statuses.append(DeviceStatus(kind: "cpu", available: false, detail: "\(error)"))
        }
        return statuses
    }

    /// Opens one backend per request. Notes say what `auto` chose and why.
    ///
    /// - Throws: ``BackendError/unavailable(device:reason:)`` for a kind that cannot be used.
    ///
    /// - Parameters:
    ///   - threads: CPU backend threads (0: every core).
    ///   - tf32: CUDA float32 GEMMs and convolutions in TF32 on tensor cores.
    public static func open(_ requests: [DeviceRequest], threads: Int = 0, tf32: Bool = false)
        throws -> (backends: [Backend], notes: [String])
    {
        var backends: [Backend] = []
        var notes: [String] = []
        for request in requests {
            switch request {
            case .cpu:
                backends.append(try CPUBackend(threads: threads))
            case .cuda(let index):
                // `cuda` alone is every GPU: one replica each
                let found: [CUDADeviceInfo]
                switch cudaDevices() {
                case .success(let result): found = result.devices
                case .failure(let error):
                    throw BackendError.unavailable(device: request.description,
                                                   reason: reason(error))
                }
                for device in index.map({ [$0] }) ?? found.map(\.index) {
                    backends.append(try CUDABackend(device: device, tf32: tf32))
                }
            case .opencl(let index):
                if case .failure(let error) = openCLDevices() {
                    if case .unavailable(_, let reason) = error {
                        throw BackendError.unavailable(device: request.description, reason: reason)
                    }
                    throw error
                }
                backends.append(try OpenCLBackend(device: index))
            case .auto:
                switch cudaDevices() {
                case .success:
                    do {
                        let gpu = try CUDABackend(device: 0, tf32: tf32)
                        notes.append("auto: using cuda:0 (\(gpu.deviceDetail))")
                        backends.append(gpu)
                        continue
                    } catch {
                        notes.append("auto: cuda:0 did not open: \(error)")
                    }
                case .failure(let error):
                    notes.append("auto: cuda skipped: \(reason(error))")
                }
                if let gpu = try autoOpenCL(&notes) {
                    backends.append(gpu)
                    continue
                }
                let cpu = try CPUBackend(threads: threads)
                notes.append("auto: using cpu (\(cpu.deviceDetail))")
                backends.append(cpu)
            }
        }
        return (backends, notes)
    }

    /// The first OpenCL GPU that opens, or nil with a note saying why none was taken. CPU
    /// devices (PoCL) are never chosen by `auto`: the CPU backend is faster on the same
    /// cores; they are there to be chosen by name.
    private static func autoOpenCL(_ notes: inout [String]) throws -> Backend? {
        let devices: [OpenCLDeviceInfo]
        switch openCLDevices() {
        case .success(let found): devices = found
        case .failure(let error):
            let reason: String
            if case .unavailable(_, let why) = error { reason = why } else { reason = "\(error)" }
            notes.append("auto: opencl skipped: \(reason)")
            return nil
        }
        var skipped: [String] = []
        for device in devices where device.isGPU {
            do {
                let backend = try OpenCLBackend(device: device.index)
                notes.append("auto: using opencl:\(device.index) (\(backend.deviceDetail))")
                return backend
            } catch {
                skipped.append("opencl:\(device.index) did not open: \(error)")
            }
        }
        let others = devices.filter { !$0.isGPU }.map {
            "opencl:\($0.index) is a \($0.kind) device (\($0.name))"
        }
        let why = skipped + (skipped.isEmpty ? ["no OpenCL GPU"] : []) + others
        notes.append("auto: opencl skipped: " + why.joined(separator: "; ")
                     + (others.isEmpty ? "" : "; choose it with --device opencl:N"))
        return nil
    }

    /// Parses a `--device` string and opens it.
    public static func open(_ text: String, threads: Int = 0, tf32: Bool = false) throws
        -> (backends: [Backend], notes: [String])
    {
        try open(DeviceRequest.parseList(text), threads: threads, tf32: tf32)
    }
}
