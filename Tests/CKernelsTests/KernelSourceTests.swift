// KernelSourceTests.swift: the kernel sources compiled into the library are the files of
// kernels/, all of them, byte for byte.
//
// kernel_sources.c embeds each file with C23 #embed, and the compiler's dependency output
// makes SwiftPM rebuild it whenever a kernel changes, so the embedded bytes cannot go
// stale; what can go wrong is a new file that nobody added to the table, which this test
// catches. It also checks that the two preludes define the same macro names, so a kernel
// body that builds on OpenCL uses nothing the CUDA prelude lacks.

import CKernels
import Foundation
import XCTest

final class KernelSourceTests: XCTestCase {
    static let kernelsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../kernels").standardized

    private func embedded() -> [String: Data] {
        var count: Int32 = 0
        let table = cim_kernel_sources(&count)!
        var sources: [String: Data] = [:]
        for i in 0..<Int(count) {
            let entry = table[i]
            sources[String(cString: entry.name)] = Data(bytes: entry.text, count: entry.size)
        }
        return sources
    }

    func testEveryKernelFileIsEmbeddedUnchanged() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.kernelsFolder.path)
            .filter { $0.hasSuffix(".cl") || $0.hasSuffix(".h") || $0.hasSuffix(".cu") }
        XCTAssertFalse(files.isEmpty, "no kernel files in \(Self.kernelsFolder.path)")
        let sources = embedded()
        for file in files {
            let onDisk = try Data(contentsOf: Self.kernelsFolder.appendingPathComponent(file))
            guard let inBinary = sources[file] else {
                XCTFail("kernels/\(file) is not in kernel_sources.c's table")
                continue
            }
            XCTAssertEqual(inBinary, onDisk, "kernels/\(file) differs from its embedded copy")
        }
        XCTAssertEqual(Set(sources.keys), Set(files), "the table lists files kernels/ lacks")
        XCTAssertNil(cim_kernel_source_named("no-such-file.cl"))
        XCTAssertEqual(cim_kernel_source_named("gemm.cl").map { $0.pointee.size },
                       sources["gemm.cl"].map { $0.count })
    }

    func testThePreludesDefineTheSameNames() throws {
        func macros(_ name: String) throws -> Set<String> {
            let source = try XCTUnwrap(cim_kernel_source_named(name), name)
            let text = String(cString: source.pointee.text)
            return Set(text.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("#define ") else { return nil }
                return String(line.dropFirst(8).prefix { $0 != " " && $0 != "(" })
            })
        }
        // names ending in "_" are a prelude's private helpers
        let opencl = try macros("prelude_opencl.h").subtracting(["CIM_OPENCL"])
            .filter { !$0.hasSuffix("_") }
        let cuda = try macros("prelude_cuda.h").subtracting(["CIM_CUDA"])
            .filter { !$0.hasSuffix("_") }
        XCTAssertEqual(opencl.subtracting(cuda), [], "defined for OpenCL only")
        XCTAssertEqual(cuda.subtracting(opencl), [], "defined for CUDA only")
        XCTAssertTrue(opencl.isSuperset(of: ["KERNEL", "GLOBAL", "LOCAL", "GLOBAL_ID",
                                             "BARRIER_LOCAL"]))
    }
}
