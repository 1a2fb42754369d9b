// OpenCLDeviceTests.swift: finding and opening OpenCL devices, the program cache, build
// errors and the messages of a device without fp64.
//
// `opencl` opens the first GPU, else the first device; `opencl:N` the N-th of the
// platform-major list; `auto` never takes a CPU device (PoCL), only a GPU. Built programs
// are cached on disk under a key of device, driver, options and source: a second open loads
// them, and a damaged entry is rebuilt and rewritten. A kernel that does not compile throws
// with the driver's build log. Without an OpenCL device these tests skip, saying why.

import Backend
import Foundation
import TestSupport
import XCTest

final class OpenCLDeviceTests: XCTestCase {
    private func devicesOrSkip() throws -> [OpenCLDeviceInfo] {
        let devices: [OpenCLDeviceInfo]
        do {
            devices = try OpenCL.devices()
        } catch BackendError.unavailable(_, let reason) {
            throw XCTSkip(reason)
        }
        guard !devices.isEmpty else { throw XCTSkip("no OpenCL platform or device here") }
        return devices
    }

    /// A fresh folder for a program cache, removed after the test.
    private func temporaryCache() throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("cim-opencl-cache-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testDevicesAreListedWithTheirProperties() throws {
        let devices = try devicesOrSkip()
        for (position, device) in devices.enumerated() {
            XCTAssertEqual(device.index, position, "opencl:N is the position in the list")
            XCTAssertFalse(device.name.isEmpty)
            XCTAssertFalse(device.platformName.isEmpty)
            let fp64 = "fp64 \(device.supportsFloat64 ? "yes" : "no")"
            XCTAssertTrue(device.description.contains(fp64), device.description)
        }
        let survey = Devices.survey(threads: 1)
        let opencl = try XCTUnwrap(survey.first { $0.kind == "opencl" })
        XCTAssertTrue(opencl.available)
        XCTAssertEqual(opencl.devices.count, devices.count, "one line per device")
        XCTAssertTrue(opencl.devices.allSatisfy { $0.contains("fp64") }, "\(opencl.devices)")
        XCTAssertEqual(opencl.autoSelectable, devices.contains(where: \.isGPU))
    }

    func testPlainOpenCLTakesTheFirstGPUElseTheFirstDevice() throws {
        let devices = try devicesOrSkip()
        let (backends, notes) = try Devices.open("opencl")
        let expected = devices.first(where: \.isGPU) ?? devices[0]
        XCTAssertEqual(backends.map(\.deviceName), ["opencl:\(expected.index)"])
        XCTAssertEqual(notes, [])
        let (indexed, _) = try Devices.open("opencl:\(devices.count - 1)")
        XCTAssertEqual(indexed.first?.deviceName, "opencl:\(devices.count - 1)")
    }

    func testIndexPastTheLastDeviceIsUnavailable() throws {
        let devices = try devicesOrSkip()
        let name = "opencl:\(devices.count)"
        let error = assertThrowsBackendError(
            name, { try Devices.open(name) }, where: \.isUnavailable)
        if case .unavailable(let device, let reason)? = error {
            XCTAssertEqual(device, name)
            XCTAssertTrue(reason.contains("has \(devices.count)"), reason)
        }
    }

    func testAutoNeverTakesAnOpenCLCPUDevice() throws {
        let devices = try devicesOrSkip()
        guard !devices.contains(where: \.isGPU) else {
            throw XCTSkip("an OpenCL GPU is present; auto takes it")
        }
        let (backends, notes) = try Devices.open("auto", threads: 1)
        XCTAssertEqual(backends.map(\.deviceName), ["cpu"])
        let skip = try XCTUnwrap(notes.first { $0.hasPrefix("auto: opencl skipped: ") })
        XCTAssertTrue(skip.contains("no OpenCL GPU"), skip)
        XCTAssertTrue(skip.contains("opencl:0"), "the CPU device is named: \(skip)")
    }

    // MARK: - Program cache

    private func cacheFiles(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".bin") }.sorted()
    }

    func testBuiltProgramsAreCachedAndReused() throws {
        let directory = try temporaryCache()
        let first = try openCLBackendOrSkip(cacheDirectory: directory)
        let programs = first.supportsFloat64 ? 2 : 1
        let stats = first.cacheStatistics
        XCTAssertEqual(stats.directory, directory)
        XCTAssertEqual(stats.built, programs)
        XCTAssertEqual(stats.loaded, 0)
        XCTAssertEqual(stats.saved, programs)
        XCTAssertEqual(try cacheFiles(directory).count, programs)

        let second = try OpenCLBackend(cacheDirectory: directory)
        XCTAssertEqual(second.cacheStatistics.loaded, programs)
        XCTAssertEqual(second.cacheStatistics.built, 0)
        // and the cached programs compute
        let x = try second.tensor([Float](repeating: -1, count: 5), shape: [5])
        try second.relu(x, output: x)
        XCTAssertEqual(try second.download(x) as [Float], [0, 0, 0, 0, 0])
    }

    func testCorruptCacheEntriesAreRebuilt() throws {
        let directory = try temporaryCache()
        let first = try openCLBackendOrSkip(cacheDirectory: directory)
        let programs = first.supportsFloat64 ? 2 : 1
        let files = try cacheFiles(directory)
        XCTAssertEqual(files.count, programs)

        // one entry cut short, the other (when there are two) with a flipped byte inside
        let firstPath = directory + "/" + files[0]
        let data = try Data(contentsOf: URL(fileURLWithPath: firstPath))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: firstPath))
        if files.count > 1 {
            let path = directory + "/" + files[1]
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count - 10] ^= 0xFF
            try bytes.write(to: URL(fileURLWithPath: path))
        }
        let second = try OpenCLBackend(cacheDirectory: directory)
        XCTAssertEqual(second.cacheStatistics.corrupt, programs)
        XCTAssertEqual(second.cacheStatistics.built, programs)
        XCTAssertEqual(second.cacheStatistics.saved, programs)

        // rewritten: a third open loads them again
        let third = try OpenCLBackend(cacheDirectory: directory)
        XCTAssertEqual(third.cacheStatistics.loaded, programs)
        XCTAssertEqual(third.cacheStatistics.corrupt, 0)

        // garbage with the right name is rejected by its header
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: firstPath))
        let fourth = try OpenCLBackend(cacheDirectory: directory)
        XCTAssertEqual(fourth.cacheStatistics.corrupt, 1)
        XCTAssertEqual(fourth.cacheStatistics.loaded, programs - 1)
    }

    func testNoCacheWhenTheDirectoryIsEmpty() throws {
        let backend = try openCLBackendOrSkip(cacheDirectory: "")
        XCTAssertEqual(backend.cacheStatistics.directory, "")
        XCTAssertEqual(backend.cacheStatistics.saved, 0)
        XCTAssertEqual(backend.cacheStatistics.loaded, 0)
    }

    // MARK: - Errors

    func testBuildFailureCarriesTheBuildLog() throws {
        let backend = try openCLBackendOrSkip()
        let source = """
            KERNEL void broken_kernel(GLOBAL float *x) {
                x[GLOBAL_ID(0)] = no_such_variable;
            }
            """
        do {
            try backend.checkKernelSource(source, name: "broken.cl")
            XCTFail("a kernel with an undeclared name compiled")
        } catch BackendError.library(let message) {
            XCTAssertTrue(message.contains("clBuildProgram"), message)
            XCTAssertTrue(message.contains("build log"), message)
            XCTAssertTrue(message.contains("no_such_variable"), "the driver's log: \(message)")
            XCTAssertTrue(message.contains("broken.cl"), "the file is named: \(message)")
        }
        // the prelude's macros are what a kernel body is written in
        try backend.checkKernelSource(
            "KERNEL void fine_kernel(GLOBAL float *x) { x[GLOBAL_ID(0)] = 1.0f; }")
    }

    func testFloat64OpsSayTheDeviceHasNoFP64() throws {
        let backend = try openCLBackendOrSkip(ignoreFloat64: true)
        let a = try backend.zeros(.float64, [2, 2])
        let gemm = assertThrowsBackendError(
            "float64 gemm", { try backend.gemm(a, transposeA: false, a, transposeB: false,
                                               into: a, alpha: 1, beta: 0) },
            where: \.isUnavailable)
        XCTAssertTrue(gemm?.description.contains("fp64") ?? false, "\(String(describing: gemm))")
        let matrices = try backend.tensor([2.0, 0, 0, 2], shape: [1, 2, 2])
        let logdet = try backend.zeros(.float64, [1])
        let error = assertThrowsBackendError(
            "logdet", { try backend.logdetSPD(matrices, logdet: logdet, inverse: nil) },
            where: \.isUnavailable)
        let message = error?.description ?? ""
        XCTAssertTrue(message.contains("fp64") && message.contains("CPU backend"), message)
        // float32 work is unaffected, and float64 tensors still move
        XCTAssertEqual(try backend.download(matrices) as [Double], [2, 0, 0, 2])
    }
}
