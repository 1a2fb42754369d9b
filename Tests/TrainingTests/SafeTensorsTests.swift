// SafeTensorsTests.swift: the safetensors reader and writer (Sources/Training/SafeTensors.swift).
//
// Round trips through a real file, the layout written by the reference `safetensors` Python
// package (bytes captured from safetensors 0.8.0 and torch 2.x), the committed PyTorch fixture,
// and one test per way a damaged file can fail, each checking the error case and that its
// message names the file and says what to do.

import Foundation
import Training
import XCTest

final class SafeTensorsTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "safetensors-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// One tensor of every supported dtype, a scalar and an empty tensor.
    private func sampleFile() throws -> SafeTensorsFile {
        var file = SafeTensorsFile(metadata: ["format": "test"])
        file.tensors["weight"] = SafeTensorsEntry([1, -2.5, 3e-8, .infinity, 0, -0] as [Float],
                                                  shape: [2, 3])
        file.tensors["state.R"] = SafeTensorsEntry([1, 0.1, 0.1, 1] as [Double], shape: [2, 2])
        file.tensors["scalar"] = SafeTensorsEntry([42] as [Double], shape: [])
        file.tensors["empty"] = SafeTensorsEntry([] as [Float], shape: [0, 3])
        file.tensors["count"] = try SafeTensorsEntry(
            dtype: "I64", shape: [1], bytes: [7, 0, 0, 0, 0, 0, 0, 0])
        file.tensors["index"] = try SafeTensorsEntry(
            dtype: "I32", shape: [2], bytes: [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
        file.tensors["mask"] = try SafeTensorsEntry(dtype: "U8", shape: [3], bytes: [0, 1, 255])
        return file
    }

    /// The bytes of a file written by `write(to:)`, after checking it parses.
    private func writtenBytes(_ file: SafeTensorsFile, name: String = "t.safetensors") throws
        -> [UInt8]
    {
        try file.write(to: path(name))
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    /// Writes raw bytes (a damaged file) and returns the path.
    private func damaged(_ bytes: [UInt8]) throws -> String {
        let target = path("damaged.safetensors")
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    /// Reads `file`, which must fail with an error matching `matches`; returns its message.
    @discardableResult
    private func expectReadError(
        _ file: String, line: UInt = #line, where matches: (SafeTensorsError) -> Bool
    ) -> String {
        do {
            _ = try SafeTensorsFile.read(file)
            XCTFail("reading \(file) should fail", line: line)
        } catch let error as SafeTensorsError {
            XCTAssertTrue(matches(error), "unexpected error \(error)", line: line)
            XCTAssertTrue(error.description.contains(file), "message lacks the path", line: line)
            return error.description
        } catch {
            XCTFail("expected a SafeTensorsError, got \(error)", line: line)
        }
        return ""
    }

    /// A header-length field followed by `header` and `data`.
    private func rawFile(header: String, data: [UInt8] = []) -> [UInt8] {
        let text = Array(header.utf8)
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: text.count >> (8 * $0)) }
        bytes += text
        return bytes + data
    }

    // MARK: - Round trips

    func testRoundTripKeepsEveryTensorBitForBit() throws {
        let file = try sampleFile()
        try file.write(to: path("t.safetensors"))
        let read = try SafeTensorsFile.read(path("t.safetensors"))
        XCTAssertEqual(read, file)

        let weight = try read.floats("weight")
        XCTAssertEqual(weight.map(\.bitPattern),
                       ([1, -2.5, 3e-8, .infinity, 0, -0] as [Float]).map(\.bitPattern))
        XCTAssertEqual(try read.doubles("state.R"), [1, 0.1, 0.1, 1])
        XCTAssertEqual(try read.doubles("scalar"), [42])
        XCTAssertEqual(try read.entry("scalar").elementCount, 1)
        XCTAssertEqual(try read.floats("empty"), [])
        XCTAssertEqual(try read.entry("mask").bytes, [0, 1, 255])
        XCTAssertEqual(try read.entry("weight").backendDType, .float32)
        XCTAssertEqual(try read.entry("count").backendDType, nil)
    }

    func testLayoutMatchesTheReferenceWriter() throws {
        let bytes = try writtenBytes(try sampleFile())
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        XCTAssertEqual((8 + length) % 8, 0, "data must start 8-byte aligned")
        let header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix(
            "{\"__metadata__\":{\"format\":\"test\"},\"count\":{\"dtype\":\"I64\",\"shape\":[1],"))
        XCTAssertEqual(header.trimmingCharacters(in: .whitespaces).last, "}")

        // Keys in sorted order.
        let names = ["count", "empty", "index", "mask", "scalar", "state.R", "weight"]
        let positions = names.map { header.range(of: "\"\($0)\":")!.lowerBound }
        XCTAssertEqual(positions, positions.sorted())

        // Data by element size, so each tensor is aligned to its element size.
        let parsed = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)]))
        let entries = try XCTUnwrap(parsed as? [String: Any])
        for name in names {
            let entry = try XCTUnwrap(entries[name] as? [String: Any])
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
            let size = SafeTensorsEntry.elementSizes[entry["dtype"] as! String]!
            XCTAssertEqual(offsets[0] % size, 0, "\(name) is not aligned")
        }
        XCTAssertEqual(bytes.count, 8 + length + 6 * 4 + 4 * 8 + 8 + 8 + 2 * 4 + 3)
    }

    func testMetadataRoundTripsAwkwardStrings() throws {
        let metadata = [
            "format": "cim-train-checkpoint",
            "quote\"back\\slash": "line\nbreak\ttab\r\u{01}\u{1f}",
            "unicode": "λ_R = 0.1, µ, 日本, 🙂",
            "json": "{\"width\": 6, \"blocks\": [2, 2, 2, 2]}",
            "": "empty key",
        ]
        let file = SafeTensorsFile(
            tensors: ["x": SafeTensorsEntry([1] as [Float], shape: [1])], metadata: metadata)
        try file.write(to: path("m.safetensors"))
        XCTAssertEqual(try SafeTensorsFile.read(path("m.safetensors")).metadata, metadata)

        // Empty metadata is left out of the header altogether, as the reference does.
        let bare = try writtenBytes(SafeTensorsFile(tensors: file.tensors), name: "b")
        XCTAssertFalse(String(decoding: bare, as: UTF8.self).contains("__metadata__"))
        XCTAssertEqual(try SafeTensorsFile.read(path("b")).metadata, [:])
    }

    func testWriteReplacesAtomicallyAndLeavesNoTemporaryFiles() throws {
        let target = path("checkpoint.safetensors")
        try SafeTensorsFile(tensors: ["a": SafeTensorsEntry([1, 2] as [Float], shape: [2])])
            .write(to: target)
        let second = SafeTensorsFile(
            tensors: ["b": SafeTensorsEntry([3] as [Double], shape: [1])], metadata: ["k": "v"])
        try second.write(to: target)
        XCTAssertEqual(try SafeTensorsFile.read(target), second)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory),
                       ["checkpoint.safetensors"])
    }

    func testWriteIntoAMissingDirectoryFailsCleanly() {
        let target = path("no/such/dir/x.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile().write(to: target)) { error in
            guard case .ioFailure(let failedPath, _)? = error as? SafeTensorsError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(failedPath, target)
        }
    }

    func testATensorCannotTakeTheMetadataKey() {
        let file = SafeTensorsFile(
            tensors: ["__metadata__": SafeTensorsEntry([1] as [Float], shape: [1])])
        XCTAssertThrowsError(try file.encoded()) { error in
            guard case .invalidEntry? = error as? SafeTensorsError else {
                return XCTFail("unexpected error \(error)")
            }
        }
    }

    // MARK: - Files from PyTorch

    /// The exact bytes `safetensors.torch.save_file` (0.8.0) wrote for five small tensors: data
    /// ordered by dtype, metadata keys in hash order, header padded with spaces.
    func testReadsTheReferenceWritersLayout() throws {
        let header = "{\"__metadata__\":{\"note\":\"x\\\"y\",\"format\":\"pt\"},"
            + "\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
            + "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]},"
            + "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[32,56]},"
            + "\"e\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[56,64]},"
            + "\"d\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[64,67]}}       "
        let data: [UInt8] = [
            0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // c = [7, -1] (I64)
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,  // b = [1.5, -2.25] (F64)
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc0,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f,  // a = arange(6), [2, 3] (F32)
            0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40,
            0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40,
            0xfd, 0xff, 0xff, 0xff, 0x04, 0x00, 0x00, 0x00,  // e = [-3, 4] (I32)
            0x01, 0x02, 0xff,  // d = [1, 2, 255] (U8)
        ]
        let bytes = rawFile(header: header, data: data)
        XCTAssertEqual(Array(bytes[0..<8]), [0x48, 0x01, 0, 0, 0, 0, 0, 0])  // 328, as written
        let file = try SafeTensorsFile.read(try damaged(bytes))

        XCTAssertEqual(file.metadata, ["note": "x\"y", "format": "pt"])
        XCTAssertEqual(Set(file.tensors.keys), ["a", "b", "c", "d", "e"])
        XCTAssertEqual(try file.floats("a"), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(try file.entry("a").shape, [2, 3])
        XCTAssertEqual(try file.doubles("b"), [1.5, -2.25])
        XCTAssertEqual(try file.entry("c").bytes, [7, 0, 0, 0, 0, 0, 0, 0] + [UInt8](
            repeating: 0xff, count: 8))
        XCTAssertEqual(try file.entry("d").bytes, [1, 2, 255])
        XCTAssertEqual(try file.entry("e").dtype, "I32")
    }

    /// The fixture written by scripts/make_fixture.py loads and holds what the script says.
    func testCommittedFixtureLoads() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(
                "Fixtures/corinfomax-tiny-v1.safetensors").path
        let file = try SafeTensorsFile.read(fixture)
        XCTAssertEqual(file.metadata["format"], "cim-train-fixture")
        XCTAssertEqual(file.metadata["version"], "1")
        XCTAssertEqual(try file.entry("init.backbone.conv1.weight").shape, [6, 3, 3, 3])
        XCTAssertEqual(try file.entry("step1.x1").shape, [8, 3, 16, 16])
        XCTAssertEqual(try file.entry("step1.z1").shape, [8, 16])
        XCTAssertEqual(try file.entry("final.R1").shape, [16, 16])
        for step in 1...3 {
            let loss = try file.doubles("step\(step).loss")
            XCTAssertEqual(loss.count, 1)
            XCTAssertTrue(loss[0].isFinite)
        }
        // The embeddings are L2-normalised rows.
        let z1 = try file.floats("step1.z1")
        for row in 0..<8 {
            let norm = z1[(16 * row)..<(16 * row + 16)].reduce(0) { $0 + Double($1 * $1) }
            XCTAssertEqual(norm, 1, accuracy: 1e-6)
        }
    }

    // MARK: - Damaged files

    func testMissingFile() {
        let message = expectReadError(path("absent.safetensors")) { error in
            if case .fileMissing = error { return true }
            return false
        }
        XCTAssertTrue(message.contains("no such file"))
    }

    func testTruncatedFiles() throws {
        let bytes = try writtenBytes(try sampleFile())
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        // Inside the length field, inside the header, inside the data, one byte short.
        for cut in [0, 5, 8, 8 + length / 2, 8 + length + 10, bytes.count - 1] {
            let message = expectReadError(try damaged(Array(bytes[0..<cut]))) { error in
                if case .truncated = error { return true }
                return false
            }
            XCTAssertTrue(message.contains("restore it from an earlier checkpoint"), message)
        }
    }

    func testCorruptHeaders() throws {
        let entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        let four: [UInt8] = [0, 0, 128, 63]
        let cases: [(String, String)] = [
            ("{\"x\":\(entry)", "not valid JSON"),
            ("[\(entry)]", "not a JSON object"),
            ("", "not valid JSON"),
            ("{\"x\":[1]}", "not an object"),
            ("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\""),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "\"shape\""),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "\"shape\""),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", "\"shape\""),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets"),
            ("{\"__metadata__\":[],\"x\":\(entry)}", "__metadata__"),
            ("{\"__metadata__\":{\"k\":1},\"x\":\(entry)}", "not a string"),
        ]
        for (header, expected) in cases {
            let message = expectReadError(try damaged(rawFile(header: header, data: four))) {
                if case .invalidHeader = $0 { return true }
                return false
            }
            XCTAssertTrue(message.contains(expected), "\(header): \(message)")
        }
    }

    func testAbsurdHeaderLength() throws {
        var bytes = try writtenBytes(try sampleFile())
        bytes.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 1, 0, 0])  // 2^40
        let message = expectReadError(try damaged(bytes)) { error in
            if case .headerLengthAbsurd(_, let length, _) = error { return length == 1 << 40 }
            return false
        }
        XCTAssertTrue(message.contains("not a safetensors file"), message)

        // Plain text read as a safetensors file gives the same answer.
        expectReadError(try damaged(Array("hello, this is not a tensor file\n".utf8))) {
            if case .headerLengthAbsurd = $0 { return true }
            return false
        }
    }

    func testUnknownDtype() throws {
        let header = "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}"
        let message = expectReadError(try damaged(rawFile(header: header, data: [0, 0, 0, 0]))) {
            if case .unknownDtype(_, "x", "BF16") = $0 { return true }
            return false
        }
        XCTAssertTrue(message.contains("F32"), message)
    }

    func testOffsetsInconsistentWithShape() throws {
        let data = [UInt8](repeating: 0, count: 32)
        for offsets in ["[0,8]", "[8,4]", "[0,0]"] {
            let header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":\(offsets)}}"
            expectReadError(try damaged(rawFile(header: header, data: data))) {
                if case .badOffsets(_, "x", _) = $0 { return true }
                return false
            }
        }
        let huge = "{\"x\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904,4],"
            + "\"data_offsets\":[0,8]}}"
        expectReadError(try damaged(rawFile(header: huge, data: data))) {
            if case .badOffsets = $0 { return true }
            return false
        }
    }

    func testOffsetsBeyondTheDataAreTruncation() throws {
        let header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}"
        expectReadError(try damaged(rawFile(header: header, data: [UInt8](repeating: 0,
                                                                         count: 12)))) {
            if case .truncated = $0 { return true }
            return false
        }
    }

    func testUnsortedAndOverlappingOffsetsAreAccepted() throws {
        let header = "{\"late\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
            + "\"early\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        let data: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]  // 1.0, 2.0
        let file = try SafeTensorsFile.read(try damaged(rawFile(header: header, data: data)))
        XCTAssertEqual(try file.floats("early"), [1, 2])
        XCTAssertEqual(try file.floats("late"), [2])
    }

    // MARK: - Access

    func testWrongDtypeAccess() throws {
        let file = try sampleFile()
        XCTAssertThrowsError(try file.floats("state.R")) { error in
            guard case .wrongDtype("state.R", "F32", "F64")? = error as? SafeTensorsError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue("\(error)".contains("doubles()"), "\(error)")
        }
        XCTAssertThrowsError(try file.entry("weight").doubles()) { error in
            guard case .wrongDtype(nil, "F64", "F32")? = error as? SafeTensorsError else {
                return XCTFail("unexpected error \(error)")
            }
        }
        XCTAssertThrowsError(try file.entry("count").floats())
        XCTAssertThrowsError(try file.floats("absent")) { error in
            guard case .missingTensor("absent", 7)? = error as? SafeTensorsError else {
                return XCTFail("unexpected error \(error)")
            }
        }
    }

    func testCheckedInitialiserRejectsBadEntries() {
        XCTAssertThrowsError(try SafeTensorsEntry(dtype: "F16", shape: [1], bytes: [0, 0]))
        XCTAssertThrowsError(try SafeTensorsEntry(dtype: "F32", shape: [2], bytes: [0, 0, 0, 0]))
        XCTAssertThrowsError(try SafeTensorsEntry(dtype: "U8", shape: [-1], bytes: []))
        XCTAssertThrowsError(
            try SafeTensorsEntry(dtype: "F64", shape: [Int.max, 2], bytes: []))
        XCTAssertNoThrow(try SafeTensorsEntry(dtype: "U8", shape: [0], bytes: []))
    }
}
