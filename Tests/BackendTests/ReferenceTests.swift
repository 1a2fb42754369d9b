// ReferenceTests.swift: the sampled checks in Backend's Reference, which `cim-train bench`
// runs before it times anything, and the TestSupport comparisons every suite relies on.
//
// An oracle that always says "fine" would let a wrong kernel post a time, and a tolerance
// helper that never fails would make every suite here pass vacuously. So each check is
// shown both ways: a correct result gives an error near float32 rounding, and the same
// result with one element changed (or a NaN) gives a large one.

import Backend
import TestSupport
import XCTest

final class ReferenceTests: XCTestCase {
    func testGemmErrorSeesAWrongElement() throws {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 601)
        let (m, n, k) = (9, 7, 11)
        let a = rng.floats(k * m), b = rng.floats(n * k), cIn = rng.floats(m * n)
        let tc = try backend.tensor(cIn, shape: [m, n])
        try backend.gemm(
            backend.tensor(a, shape: [k, m]), transposeA: true,
            backend.tensor(b, shape: [n, k]), transposeB: true, into: tc, alpha: 0.5, beta: 2)
        var c: [Float] = try backend.download(tc)
        let samples = (0..<m).flatMap { i in (0..<n).map { j in (i, j) } }
        func error() -> Double {
            Reference.gemmError(
                a: a, transposeA: true, b: b, transposeB: true, cIn: cIn, c: c, m: m, n: n,
                k: k, alpha: 0.5, beta: 2, samples: samples)
        }
        XCTAssertLessThan(error(), 1e-6)
        c[3 * n + 4] += 0.01
        XCTAssertGreaterThan(error(), 1e-4, "a changed element must show")
        c[3 * n + 4] = .nan
        XCTAssertEqual(error(), .infinity, "NaN is the worst error")
    }

    func testConvErrorsSeeAWrongElement() throws {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 602)
        let g = Conv2DGeometry(
            batch: 2, inChannels: 3, inHeight: 6, inWidth: 7, outChannels: 4, kernel: 3,
            stride: 2, padding: 1)
        let x = rng.floats(g.inputShape.reduce(1, *))
        let w = rng.floats(g.weightShape.reduce(1, *))
        let dy = rng.floats(g.outputShape.reduce(1, *))
        let (tx, tw) = (try backend.tensor(x, shape: g.inputShape),
                        try backend.tensor(w, shape: g.weightShape))
        let tdy = try backend.tensor(dy, shape: g.outputShape)
        let ty = try backend.allocate(.float32, g.outputShape)
        let tdx = try backend.allocate(.float32, g.inputShape)
        let tdw = try backend.allocate(.float32, g.weightShape)
        try backend.conv2dForward(input: tx, weight: tw, output: ty, geometry: g)
        try backend.conv2dBackwardData(
            outputGradient: tdy, weight: tw, inputGradient: tdx, geometry: g)
        try backend.conv2dBackwardFilter(
            input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g, accumulate: false)
        var y: [Float] = try backend.download(ty)
        var dx: [Float] = try backend.download(tdx)
        var dw: [Float] = try backend.download(tdw)

        // Every position of each tensor, in (n, k/c, p/h, q/w) order.
        func all(_ shape: [Int]) -> [[Int]] {
            shape.reduce([[]]) { prefixes, size in
                prefixes.flatMap { prefix in (0..<size).map { prefix + [$0] } }
            }
        }
        let (ys, dxs, dws) = (all(g.outputShape), all(g.inputShape), all(g.weightShape))
        XCTAssertLessThan(Reference.conv2dForwardError(g, x: x, w: w, y: y, samples: ys), 1e-6)
        XCTAssertLessThan(
            Reference.conv2dBackwardDataError(g, dy: dy, w: w, dx: dx, samples: dxs), 1e-6)
        XCTAssertLessThan(
            Reference.conv2dBackwardFilterError(g, x: x, dy: dy, dw: dw, samples: dws), 1e-6)

        // The last element of each: the index arithmetic must reach it.
        y[y.count - 1] += 0.05
        dx[dx.count - 1] += 0.05
        dw[dw.count - 1] += 0.05
        XCTAssertGreaterThan(
            Reference.conv2dForwardError(g, x: x, w: w, y: y, samples: ys), 1e-3)
        XCTAssertGreaterThan(
            Reference.conv2dBackwardDataError(g, dy: dy, w: w, dx: dx, samples: dxs), 1e-3)
        XCTAssertGreaterThan(
            Reference.conv2dBackwardFilterError(g, x: x, dy: dy, dw: dw, samples: dws), 1e-3)
    }

    func testRelativeError() {
        XCTAssertEqual(Reference.relativeError(1.5, 1, 2), 0.25, "scaled by the magnitude")
        XCTAssertEqual(Reference.relativeError(3, 4, 0.5), 0.25, "or by |expected| if larger")
        XCTAssertEqual(Reference.relativeError(.nan, 1, 1), .infinity)
        XCTAssertEqual(Reference.relativeError(0, 0, 0), 0)
    }

    // MARK: - TestSupport's comparisons

    func testDifferenceFindsFirstMismatchAndMaxima() {
        let expected: [Double] = [1, 2, 3, 4]
        let actual: [Double] = [1, 2.1, 3, 3.5]
        let diff = difference(actual, expected, rtol: 0.01)
        XCTAssertEqual(diff.firstMismatch, 1)
        XCTAssertEqual(diff.mismatches, 2)
        XCTAssertEqual(diff.maxAbsolute, 0.5, accuracy: 1e-15)
        XCTAssertEqual(diff.maxRelative, 0.125, accuracy: 1e-15)

        // The same error relative to a large magnitude passes.
        let scaled = difference(actual, expected, scale: [100, 100, 100, 100], rtol: 0.01)
        XCTAssertNil(scaled.firstMismatch)
        XCTAssertEqual(difference(actual, expected, rtol: 0, atol: 0.5).mismatches, 0)
    }

    func testDifferenceNeverAcceptsNaN() {
        let nanActual = difference([1, .nan], [1, 2], rtol: 1e9, atol: 1e9)
        XCTAssertEqual(nanActual.firstMismatch, 1)
        XCTAssertTrue(nanActual.maxAbsolute.isNaN)
        let nanExpected = difference([1, 2], [.nan, 2], rtol: 1e9, atol: 1e9)
        XCTAssertEqual(nanExpected.firstMismatch, 0)
        // Zero scale: only an exact match passes.
        XCTAssertEqual(difference([1e-30], [0], scale: [0], rtol: 1).mismatches, 1)
        XCTAssertEqual(difference([0], [0], scale: [0], rtol: 1).mismatches, 0)
    }

    func testSeededDataIsReproducible() {
        var first = SplitMix64(seed: 603), second = SplitMix64(seed: 603)
        XCTAssertEqual(first.floats(8), second.floats(8))
        var third = SplitMix64(seed: 604)
        XCTAssertNotEqual(first.doubles(8), third.doubles(8))
        let indices = first.distinctIndices(10, below: 10)
        XCTAssertEqual(indices.sorted(), Array(0..<10))
        let values = first.floats(1000, 2, 3)
        XCTAssertTrue(values.allSatisfy { $0 >= 2 && $0 <= 3 })
        // SplitMix64's first output for seed 0 (Steele, Lea and Flood's published vector).
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual(zero.next(), 0xE220_A839_7B1D_CDAF)
    }

    func testSPDMatrixIsSymmetricAndPositiveDefinite() throws {
        var rng = SplitMix64(seed: 605)
        let n = 6
        let a = rng.spdMatrix(n)
        for i in 0..<n {
            for j in 0..<n { XCTAssertEqual(a[i * n + j], a[j * n + i]) }
        }
        XCTAssertNoThrow(try Reference.choleskyLogdet(a, n: n))
    }
}
