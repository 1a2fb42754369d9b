// DeviceTests.swift: device names as `--device` takes them, and opening them on a machine
// with no GPU.
//
// The parser accepts auto, cpu, cuda[:N], opencl[:N] and comma lists, case- and
// space-insensitively, and rejects everything else with unknownDevice; for a name it does
// not know, the message lists the accepted forms. Opening "cpu" gives one CPU backend,
// "auto" falls back to the CPU with a note for each kind it skipped (an OpenCL CPU device
// such as PoCL's is skipped too), and an explicit GPU kind that is not there throws
// unavailable with the reason (OpenCLDeviceTests opens OpenCL devices). These tests must
// pass on machines without a GPU; the ones that assume none skip, with a message, where the
// survey finds one usable.

import Backend
import Foundation
import TestSupport
import XCTest

final class DeviceTests: XCTestCase {
    func testParseAcceptedForms() throws {
        let cases: [(String, [DeviceRequest])] = [
            ("auto", [.auto]),
            ("cpu", [.cpu]),
            ("cuda", [.cuda(nil)]),
            ("cuda:0", [.cuda(0)]),
            ("opencl", [.opencl(nil)]),
            ("opencl:1", [.opencl(1)]),
            ("cuda:0,cuda:1", [.cuda(0), .cuda(1)]),
            (" CPU ", [.cpu]),
            ("Cuda:3, opencl", [.cuda(3), .opencl(nil)]),
            ("cpu,cpu", [.cpu, .cpu]),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try DeviceRequest.parseList(text), expected, "parsing '\(text)'")
        }
    }

    func testDescriptionsParseBack() throws {
        for request: DeviceRequest in [.auto, .cpu, .cuda(nil), .cuda(2), .opencl(nil),
                                       .opencl(0)] {
            XCTAssertEqual(try DeviceRequest(parsing: request.description), request)
        }
        XCTAssertEqual(DeviceRequest.cuda(1).description, "cuda:1")
    }

    func testParseRejectedForms() {
        for text in ["gpu", "cuda:x", "cuda:-1", "", "cpu,,cpu", "auto,cpu", "cpu:0:1",
                     "cpu:0", "auto:1", "cuda:", ",", "cpu,"] {
            assertThrowsBackendError(
                "parsing '\(text)'", { try DeviceRequest.parseList(text) },
                where: \.isUnknownDevice)
        }
    }

    func testUnknownNameListsAcceptedForms() {
        let error = assertThrowsBackendError(
            "gpu", { try DeviceRequest.parseList("gpu") }, where: \.isUnknownDevice)
        let message = error?.description ?? ""
        XCTAssertTrue(message.contains("'gpu'"), message)
        for form in ["auto", "cpu", "cuda:N", "opencl:N", "cuda:0,cuda:1"] {
            XCTAssertTrue(message.contains(form), "'\(form)' missing from: \(message)")
        }
        let badIndex = assertThrowsBackendError(
            "cuda:-1", { try DeviceRequest.parseList("cuda:-1") }, where: \.isUnknownDevice)
        XCTAssertTrue(badIndex?.description.contains(">= 0") ?? false)
    }

    func testOpenCPU() throws {
        let (backends, notes) = try Devices.open("cpu", threads: 2)
        XCTAssertEqual(backends.count, 1)
        XCTAssertEqual(backends.first?.deviceName, "cpu")
        XCTAssertTrue(backends.first is CPUBackend)
        XCTAssertEqual((backends.first as? CPUBackend)?.threads, 2)
        XCTAssertEqual(notes, [], "an explicit cpu needs no explanation")
    }

    func testOpenCPUListGivesSeparateBackends() throws {
        let (backends, _) = try Devices.open("cpu,cpu", threads: 1)
        XCTAssertEqual(backends.count, 2)
        XCTAssertFalse(backends[0] === backends[1], "one backend per list entry")
    }

    /// Device kinds the survey reports usable here.
    private func availableKinds() -> Set<String> {
        Set(Devices.survey(threads: 1).filter(\.available).map(\.kind))
    }

    func testAutoFallsBackToCPUWithReasons() throws {
        // OpenCL CPU devices (PoCL) may be available; auto skips them, so only a kind auto
        // would select stops the fallback
        let selectable = Devices.survey(threads: 1).filter { $0.kind != "cpu" && $0.autoSelectable }
        guard selectable.isEmpty else {
            throw XCTSkip("auto has a GPU to choose here (\(selectable.map(\.kind))); no fallback")
        }
        let (backends, notes) = try Devices.open("auto", threads: 2)
        XCTAssertEqual(backends.map(\.deviceName), ["cpu"])
        let joined = notes.joined(separator: "\n")
        let cuda = notes.first { $0.hasPrefix("auto: cuda skipped: ") }
        let opencl = notes.first { $0.hasPrefix("auto: opencl skipped: ") }
        XCTAssertNotNil(cuda, joined)
        XCTAssertNotNil(opencl, joined)
        // Each skip gives a reason, not just the prefix.
        XCTAssertGreaterThan(cuda?.count ?? 0, "auto: cuda skipped: ".count + 10, joined)
        XCTAssertGreaterThan(opencl?.count ?? 0, "auto: opencl skipped: ".count + 10, joined)
        XCTAssertTrue(notes.last?.hasPrefix("auto: using cpu") ?? false, joined)
    }

    func testExplicitGPUKindsAreUnavailable() throws {
        let kinds = availableKinds()
        let cases = [("cuda", "cuda"), ("cuda:0", "cuda"), ("opencl:1", "opencl")]
        let unusable = cases.filter { !kinds.contains($0.1) }
        guard !unusable.isEmpty else { throw XCTSkip("CUDA and OpenCL are both usable here") }
        for (text, _) in unusable {
            let error = assertThrowsBackendError(
                text, { try Devices.open(text, threads: 2) }, where: \.isUnavailable)
            if case .unavailable(let name, let reason)? = error {
                XCTAssertEqual(name, text, "the device as requested")
                XCTAssertFalse(reason.isEmpty)
            }
        }
    }

    func testCUDAPathOverrideIsReported() throws {
        // CIM_CUDA_PATH replaces the default library names; a missing file must show up in
        // the reason, with the variable named as the fix. A driver is opened once per
        // process, so where one is open already the override no longer applies.
        if (try? CUDA.load(.driver)) != nil {
            throw XCTSkip("a CUDA driver is open in this process; the override comes too late")
        }
        let path = "/nonexistent/cim-test/libcuda.so.1"
        let previous = ProcessInfo.processInfo.environment["CIM_CUDA_PATH"]
        setenv("CIM_CUDA_PATH", path, 1)
        defer {
            if let previous { setenv("CIM_CUDA_PATH", previous, 1) } else {
                unsetenv("CIM_CUDA_PATH")
            }
        }
        let error = assertThrowsBackendError(
            "cuda with a bad path", { try Devices.open("cuda", threads: 1) },
            where: \.isUnavailable)
        let message = error?.description ?? ""
        XCTAssertTrue(message.contains(path), message)
        XCTAssertTrue(message.contains("CIM_CUDA_PATH"), message)
    }

    func testSurveyListsEveryKind() {
        let survey = Devices.survey(threads: 1)
        XCTAssertEqual(survey.map(\.kind), ["cuda", "opencl", "cpu"])
        XCTAssertEqual(survey.last?.available, true, "the CPU is always usable")
        for status in survey {
            XCTAssertFalse(status.detail.isEmpty, "\(status.kind) says nothing about itself")
        }
    }
}
