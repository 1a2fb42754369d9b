// TensorTests.swift: moving data in and out of CPUBackend tensors.
//
// Upload then download must give back every bit (signed zeros, infinities, subnormals and
// NaN payloads included), copy must duplicate without aliasing, and zeros must really be
// zero. These are the only ways training code touches device memory, so a mistake here
// would corrupt every other test's inputs.

import Backend
import TestSupport
import XCTest

final class TensorTests: XCTestCase {
    func testRoundTripIsBitExact() throws {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 501)
        var floats = rng.floats(24, -1e3, 1e3)
        floats[0...5] = [-0.0, .infinity, -.infinity, .leastNonzeroMagnitude,
                         Float(nan: 0x1234, signaling: false), .greatestFiniteMagnitude]
        let tf = try backend.tensor(floats, shape: [2, 3, 4])
        XCTAssertEqual(tf.dtype, .float32)
        XCTAssertEqual(tf.shape, [2, 3, 4])
        let backFloats: [Float] = try backend.download(tf)
        XCTAssertEqual(backFloats.map(\.bitPattern), floats.map(\.bitPattern))

        var doubles = rng.doubles(30, -1e300, 1e300)
        doubles[0...4] = [-0.0, .leastNonzeroMagnitude, Double(nan: 0x5678, signaling: false),
                          .infinity, 1 / 3]
        let td = try backend.tensor(doubles, shape: [5, 6])
        XCTAssertEqual(td.byteCount, 240)
        let backDoubles: [Double] = try backend.download(td)
        XCTAssertEqual(backDoubles.map(\.bitPattern), doubles.map(\.bitPattern))

        // Uploading again replaces the contents.
        let replacement = rng.floats(24)
        try replacement.withUnsafeBytes { try backend.upload($0, to: tf) }
        XCTAssertEqual(try backend.download(tf, as: Float.self), replacement)
    }

    func testCopyDuplicatesWithoutAliasing() throws {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 502)
        let values = rng.doubles(12)
        let source = try backend.tensor(values, shape: [3, 4])
        // Same element count, other shape: copy is by elements, not by shape.
        let destination = try backend.zeros(.float64, [2, 6])
        try backend.copy(source, to: destination)
        XCTAssertEqual(try backend.download(destination, as: Double.self), values)

        // Changing the source afterwards leaves the copy alone.
        try [Double](repeating: -1, count: 12).withUnsafeBytes {
            try backend.upload($0, to: source)
        }
        XCTAssertEqual(try backend.download(destination, as: Double.self), values)

        assertThrowsBackendError(
            "dtype mismatch",
            { try backend.copy(source, to: backend.zeros(.float32, [3, 4])) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "count mismatch",
            { try backend.copy(source, to: backend.zeros(.float64, [13])) },
            where: \.isShapeMismatch)
        XCTAssertNoThrow(try backend.synchronize())
    }

    func testZerosAreZero() throws {
        let backend = try CPUBackend(threads: 2)
        // Fill and free a buffer first, so fresh memory is less likely to be zero already.
        do {
            let junk = try backend.tensor([Float](repeating: .nan, count: 4096), shape: [4096])
            _ = junk
        }
        let zf = try backend.zeros(.float32, [64, 64])
        let floats: [Float] = try backend.download(zf)
        XCTAssertEqual(floats.count, 4096)
        XCTAssertTrue(floats.allSatisfy { $0.bitPattern == 0 }, "float32 zeros")
        let zd = try backend.zeros(.float64, [3, 5, 7])
        XCTAssertEqual(zd.shape, [3, 5, 7])
        let doubles: [Double] = try backend.download(zd)
        XCTAssertEqual(doubles.count, 105)
        XCTAssertTrue(doubles.allSatisfy { $0.bitPattern == 0 }, "float64 zeros")
    }

    func testTensorMetadata() throws {
        let backend = try CPUBackend(threads: 2)
        let t = try backend.allocate(.float32, [2, 3, 5])
        XCTAssertEqual(t.count, 30)
        XCTAssertEqual(t.byteCount, 120)
        XCTAssertEqual(t.rank, 3)
        XCTAssertEqual(t.summary, "float32 [2, 3, 5]")
        XCTAssertGreaterThanOrEqual(t.buffer.byteCount, 120)
        XCTAssertEqual(DType.float32.size, 4)
        XCTAssertEqual(DType.float64.size, 8)

        let empty = try backend.tensor([Double](), shape: [0, 4])
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(try backend.download(empty, as: Double.self), [])
        XCTAssertEqual(backend.threads, 2)
        XCTAssertEqual(backend.deviceName, "cpu")
        XCTAssertTrue(backend.deviceDetail.hasPrefix("2 threads"), backend.deviceDetail)
    }
}
