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

    static let accepted = "auto, cpu, cuda, cuda:N, opencl, opencl:N, or a comma list such as cuda:0,cuda:1"

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
        guard !entries.isEmpty, entries.allSatisfy({ !$0.trimmingCharacters(in: .whitespaces).isEmpty })
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
}

/// Opens backends for device requests.
public enum Devices {
    static let cudaLibraries = ["libcuda.so.1", "libcuda.so"]
    static let openCLLibraries = ["libOpenCL.so.1", "libOpenCL.so"]

    private static func libraryNames(_ defaults: [String], override variable: String) -> [String]
    {
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty {
            return [path]
        }
        return defaults
    }

    /// Why CUDA cannot be used here. The CUDA backend is a later piece of work; until it
    /// lands this reports whether a driver is present, so `devices` says what the machine
    /// has.
    static func cudaUnavailableReason() -> String {
        let names = libraryNames(cudaLibraries, override: "CIM_CUDA_PATH")
        switch probeLibrary(names) {
        case .success(let loaded):
            return "the driver (\(loaded)) loads, but this build has no CUDA backend yet"
        case .failure(let error):
            let reason = error.description.replacingOccurrences(
                of: "library not available: ", with: "")
            return "no CUDA driver: \(reason) (set CIM_CUDA_PATH to the driver library)"
        }
    }

    static func openCLUnavailableReason() -> String {
        let names = libraryNames(openCLLibraries, override: "CIM_OPENCL_PATH")
        switch probeLibrary(names) {
        case .success(let loaded):
            return "the loader (\(loaded)) loads, but this build has no OpenCL backend yet"
        case .failure(let error):
            let reason = error.description.replacingOccurrences(
                of: "library not available: ", with: "")
            return "no OpenCL loader: \(reason) (set CIM_OPENCL_PATH to libOpenCL.so.1)"
        }
    }

    /// The state of every device kind, for `cim-train devices`.
    public static func survey(threads: Int = 0) -> [DeviceStatus] {
        var statuses: [DeviceStatus] = []
        statuses.append(DeviceStatus(kind: "cuda", available: false, detail: cudaUnavailableReason()))
        statuses.append(
            DeviceStatus(kind: "opencl", available: false, detail: openCLUnavailableReason()))
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
    public static func open(_ requests: [DeviceRequest], threads: Int = 0) throws
        -> (backends: [Backend], notes: [String])
    {
        var backends: [Backend] = []
        var notes: [String] = []
        for request in requests {
            switch request {
            case .cpu:
                backends.append(try CPUBackend(threads: threads))
            case .cuda:
                throw BackendError.unavailable(device: request.description, reason: cudaUnavailableReason())
            case .opencl:
                throw BackendError.unavailable(
                    device: request.description, reason: openCLUnavailableReason())
            case .auto:
                notes.append("auto: cuda skipped: \(cudaUnavailableReason())")
                notes.append("auto: opencl skipped: \(openCLUnavailableReason())")
                let cpu = try CPUBackend(threads: threads)
                notes.append("auto: using cpu (\(cpu.deviceDetail))")
                backends.append(cpu)
            }
        }
        return (backends, notes)
    }

    /// Parses a `--device` string and opens it.
    public static func open(_ text: String, threads: Int = 0) throws
        -> (backends: [Backend], notes: [String])
    {
        try open(DeviceRequest.parseList(text), threads: threads)
    }
}
