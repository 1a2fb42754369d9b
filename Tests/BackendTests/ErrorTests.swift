// ErrorTests.swift: the errors CPUBackend throws, by case, and the state it leaves behind.
//
// A matrix that is not positive definite (or holds a NaN or an infinity) must stop a batched
// log-determinant with notPositiveDefinite naming its batch index, and write no NaN
// anywhere. Shapes and element types that do not fit must throw shapeMismatch before any
// work, for GEMM, the three convolution passes and the log-determinant alike. Tensors of
// another CPUBackend instance are an invalidArgument, and uploads and downloads must move
// exactly the tensor's byte count.

import Backend
import TestSupport
import XCTest

final class ErrorTests: XCTestCase {
    // MARK: - Not positive definite

    /// Four 4x4 matrices; the one at `badIndex` replaced by `bad`.
    private func batchWithBadMatrix(_ bad: [Double], at badIndex: Int) -> [Double] {
        var rng = SplitMix64(seed: 401)
        return (0..<4).flatMap { b in b == badIndex ? bad : rng.spdMatrix(4) }
    }

    private func checkNotPositiveDefinite(
        _ bad: [Double], at badIndex: Int, _ label: String, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let backend = try CPUBackend(threads: 2)
        let a = try backend.tensor(batchWithBadMatrix(bad, at: badIndex), shape: [4, 4, 4])
        for withInverse in [true, false] {
            let logdet = try backend.zeros(.float64, [4])
            let inverse = withInverse ? try backend.zeros(.float64, [4, 4, 4]) : nil
            let error = assertThrowsBackendError(
                "\(label), inverse \(withInverse)", file: file, line: line,
                { try backend.logdetSPD(a, logdet: logdet, inverse: inverse) },
                where: { $0.notPositiveDefiniteIndex != nil })
            XCTAssertEqual(
                error?.notPositiveDefiniteIndex, badIndex, "\(label): batch index",
                file: file, line: line)
            XCTAssertTrue(
                error?.description.contains("matrix \(badIndex)") ?? false,
                "\(label): message \(error?.description ?? "none") names the matrix",
                file: file, line: line)
            assertNoNaN(try backend.download(logdet), "\(label): logdet", file: file, line: line)
            if let inverse {
                assertNoNaN(
                    try backend.download(inverse), "\(label): inverse", file: file, line: line)
            }
        }
    }

    func testIndefiniteMatrixNamesItsBatchIndex() throws {
        // The leading 2x2 minor is 1 - 4 < 0.
        let indefinite: [Double] = [1, 2, 0, 0, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        try checkNotPositiveDefinite(indefinite, at: 2, "indefinite")
        try checkNotPositiveDefinite(indefinite, at: 0, "indefinite first")
        try checkNotPositiveDefinite(indefinite, at: 3, "indefinite last")
    }

    func testSingularAndNegativeDefiniteMatrices() throws {
        // All ones: positive semi-definite with rank 1, so the second pivot is 0.
        try checkNotPositiveDefinite([Double](repeating: 1, count: 16), at: 2, "rank 1")
        var negative = [Double](repeating: 0, count: 16)
        for i in 0..<4 { negative[i * 4 + i] = -1 }
        try checkNotPositiveDefinite(negative, at: 1, "negative definite")
    }

    func testNonFiniteEntryIsNotPositiveDefinite() throws {
        var rng = SplitMix64(seed: 402)
        for value in [Double.nan, .infinity, -.infinity] {
            var bad = rng.spdMatrix(4)
            bad[3 * 4 + 1] = value  // strictly lower, so it is read
            try checkNotPositiveDefinite(bad, at: 2, "\(value) below the diagonal")
            bad = rng.spdMatrix(4)
            bad[2 * 4 + 2] = value
            try checkNotPositiveDefinite(bad, at: 1, "\(value) on the diagonal")
        }
    }

    func testFailingPivotPastTheFirstPanels() throws {
        // A diagonal matrix with one negative entry: positive definite up to that pivot, so
        // the failure is found only after earlier panels have been factored and their
        // updates applied. n = 20 and 390 run our blocked kernel (8-column panels: the
        // pivot at 13 sits in the second panel), n = 777 LAPACK's dpotrf; all name the order.
        let backend = try CPUBackend(threads: 2)
        for (n, bad) in [(20, 12), (390, 300), (777, 700)] {
            var rng = SplitMix64(seed: 403)
            let good = rng.spdMatrix(n, shift: 1)
            var matrix = [Double](repeating: 0, count: n * n)
            for i in 0..<n { matrix[i * n + i] = i == bad ? -1 : 2 }
            let a = try backend.tensor(good + matrix, shape: [2, n, n])
            let logdet = try backend.zeros(.float64, [2])
            let error = assertThrowsBackendError(
                "n = \(n)", { try backend.logdetSPD(a, logdet: logdet, inverse: nil) },
                where: { $0.notPositiveDefiniteIndex == 1 })
            XCTAssertTrue(
                error?.description.contains("order \(bad + 1)") ?? false,
                "n = \(n): message \(error?.description ?? "none") names the minor")
            assertNoNaN(try backend.download(logdet), "n = \(n): logdet")
        }
    }

    func testReferenceCholeskyRejectsIndefinite() {
        assertThrowsBackendError(
            "reference", { try Reference.choleskyLogdet([1, 2, 2, 1], n: 2) },
            where: { $0.notPositiveDefiniteIndex == 0 })
    }

    // MARK: - Shape and type mismatches

    func testGemmShapeMismatches() throws {
        let backend = try CPUBackend(threads: 2)
        let a = try backend.zeros(.float32, [3, 4])
        let b = try backend.zeros(.float32, [5, 2])  // k = 5, but a has k = 4
        let c = try backend.zeros(.float32, [3, 2])
        assertThrowsBackendError(
            "k mismatch",
            { try backend.gemm(a, transposeA: false, b, transposeB: false, into: c,
                               alpha: 1, beta: 0) },
            where: \.isShapeMismatch)
        let b4 = try backend.zeros(.float32, [4, 2])
        assertThrowsBackendError(
            "wrong c shape",
            { try backend.gemm(a, transposeA: false, b4, transposeB: false,
                               into: backend.zeros(.float32, [2, 3]), alpha: 1, beta: 0) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "transpose makes k mismatch",
            { try backend.gemm(a, transposeA: true, b4, transposeB: false, into: c,
                               alpha: 1, beta: 0) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "mixed dtypes",
            { try backend.gemm(a, transposeA: false, backend.zeros(.float64, [4, 2]),
                               transposeB: false, into: c, alpha: 1, beta: 0) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "float64 c",
            { try backend.gemm(a, transposeA: false, b4, transposeB: false,
                               into: backend.zeros(.float64, [3, 2]), alpha: 1, beta: 0) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "rank 3",
            { try backend.gemm(backend.zeros(.float32, [1, 3, 4]), transposeA: false, b4,
                               transposeB: false, into: c, alpha: 1, beta: 0) },
            where: \.isShapeMismatch)
        // The valid call succeeds, so the checks above are not rejecting everything.
        XCTAssertNoThrow(try backend.gemm(
            a, transposeA: false, b4, transposeB: false, into: c, alpha: 1, beta: 0))
    }

    func testConvShapeMismatches() throws {
        let backend = try CPUBackend(threads: 2)
        let g = Conv2DGeometry(
            batch: 2, inChannels: 3, inHeight: 6, inWidth: 5, outChannels: 4, kernel: 3,
            stride: 1, padding: 1)
        let x = try backend.zeros(.float32, g.inputShape)
        let w = try backend.zeros(.float32, g.weightShape)
        let y = try backend.zeros(.float32, g.outputShape)
        let badW = try backend.zeros(.float32, [4, 3, 3, 2])
        let x64 = try backend.zeros(.float64, g.inputShape)
        let badY = try backend.zeros(.float32, [2, 4, 5, 6])  // P and Q swapped

        for (label, input, weight, output) in [
            ("wrong weight shape", x, badW, y), ("float64 input", x64, w, y),
            ("wrong output shape", x, w, badY),
        ] {
            assertThrowsBackendError(
                "forward, \(label)",
                { try backend.conv2dForward(input: input, weight: weight, output: output,
                                            geometry: g) },
                where: \.isShapeMismatch)
            assertThrowsBackendError(
                "backward data, \(label)",
                { try backend.conv2dBackwardData(outputGradient: output, weight: weight,
                                                 inputGradient: input, geometry: g) },
                where: \.isShapeMismatch)
            assertThrowsBackendError(
                "backward filter, \(label)",
                { try backend.conv2dBackwardFilter(input: input, outputGradient: output,
                                                   weightGradient: weight, geometry: g,
                                                   accumulate: false) },
                where: \.isShapeMismatch)
        }

        // A 5x5 kernel over a 3x3 input padded by 0.
        let tooLarge = Conv2DGeometry(
            batch: 1, inChannels: 1, inHeight: 3, inWidth: 3, outChannels: 1, kernel: 5)
        let error = assertThrowsBackendError(
            "kernel larger than padded input",
            { try backend.conv2dForward(
                input: backend.zeros(.float32, tooLarge.inputShape),
                weight: backend.zeros(.float32, tooLarge.weightShape),
                output: backend.zeros(.float32, [1, 1, 1, 1]), geometry: tooLarge) },
            where: \.isShapeMismatch)
        XCTAssertTrue(error?.description.contains("larger than padded input") ?? false)

        XCTAssertNoThrow(try backend.conv2dForward(input: x, weight: w, output: y, geometry: g))
    }

    func testLogdetShapeMismatches() throws {
        let backend = try CPUBackend(threads: 2)
        let a = try backend.zeros(.float64, [2, 3, 3])
        let logdet = try backend.zeros(.float64, [2])
        let cases: [(String, Tensor, Tensor, Tensor?)] = [
            ("non-square", try backend.zeros(.float64, [2, 3, 4]), logdet, nil),
            ("rank 2", try backend.zeros(.float64, [3, 3]), try backend.zeros(.float64, [1]),
             nil),
            ("n = 0", try backend.zeros(.float64, [2, 0, 0]), logdet, nil),
            ("wrong logdet shape", a, try backend.zeros(.float64, [3]), nil),
            ("logdet [2, 1]", a, try backend.zeros(.float64, [2, 1]), nil),
            ("float32 matrices", try backend.zeros(.float32, [2, 3, 3]), logdet, nil),
            ("float32 logdet", a, try backend.zeros(.float32, [2]), nil),
            ("wrong inverse shape", a, logdet, try backend.zeros(.float64, [2, 3, 2])),
            ("float32 inverse", a, logdet, try backend.zeros(.float32, [2, 3, 3])),
        ]
        for (label, matrices, out, inverse) in cases {
            assertThrowsBackendError(
                label, { try backend.logdetSPD(matrices, logdet: out, inverse: inverse) },
                where: \.isShapeMismatch)
        }
    }

    // MARK: - Tensors of another backend, transfers

    func testTensorsOfAnotherBackendAreRejected() throws {
        let first = try CPUBackend(threads: 2)
        let second = try CPUBackend(threads: 2)
        let mine = try first.zeros(.float32, [2, 2])
        let theirs = try second.zeros(.float32, [2, 2])
        assertThrowsBackendError(
            "gemm",
            { try first.gemm(mine, transposeA: false, theirs, transposeB: false, into: mine,
                             alpha: 1, beta: 0) },
            where: \.isInvalidArgument)
        let g = Conv2DGeometry(
            batch: 1, inChannels: 1, inHeight: 2, inWidth: 2, outChannels: 1, kernel: 1)
        let x = try first.zeros(.float32, g.inputShape)
        let w = try second.zeros(.float32, g.weightShape)
        let y = try first.zeros(.float32, g.outputShape)
        assertThrowsBackendError(
            "conv forward",
            { try first.conv2dForward(input: x, weight: w, output: y, geometry: g) },
            where: \.isInvalidArgument)
        assertThrowsBackendError(
            "conv backward filter",
            { try first.conv2dBackwardFilter(
                input: x, outputGradient: y, weightGradient: w, geometry: g,
                accumulate: false) },
            where: \.isInvalidArgument)
        let spd = try second.tensor([Double](arrayLiteral: 2), shape: [1, 1, 1])
        assertThrowsBackendError(
            "logdet",
            { try first.logdetSPD(spd, logdet: first.zeros(.float64, [1]), inverse: nil) },
            where: \.isInvalidArgument)
        assertThrowsBackendError(
            "copy", { try first.copy(theirs, to: mine) }, where: \.isInvalidArgument)
        assertThrowsBackendError(
            "download", { try first.download(theirs, as: Float.self) },
            where: \.isInvalidArgument)
        assertThrowsBackendError(
            "upload",
            { try [Float](repeating: 1, count: 4).withUnsafeBytes {
                try first.upload($0, to: theirs) } },
            where: \.isInvalidArgument)
    }

    func testTransfersNeedExactByteCounts() throws {
        let backend = try CPUBackend(threads: 2)
        let t = try backend.tensor([Float](repeating: 7, count: 6), shape: [2, 3])
        for count in [5, 7, 0] {
            assertThrowsBackendError(
                "upload of \(count) floats",
                { try [Float](repeating: 1, count: count).withUnsafeBytes {
                    try backend.upload($0, to: t) } },
                where: \.isShapeMismatch)
        }
        // Same byte count, other element type: 3 doubles are 24 bytes, as are 6 floats.
        XCTAssertNoThrow(try [Double](repeating: 0, count: 3).withUnsafeBytes {
            try backend.upload($0, to: t)
        })
        try [Float](repeating: 7, count: 6).withUnsafeBytes { try backend.upload($0, to: t) }
        var short = [Float](repeating: 0, count: 5)
        assertThrowsBackendError(
            "download into 5 floats",
            { try short.withUnsafeMutableBytes { try backend.download(t, into: $0) } },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "download as Double", { try backend.download(t, as: Double.self) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "7 values for 6 elements",
            { try backend.tensor([Float](repeating: 0, count: 7), shape: [2, 3]) },
            where: \.isShapeMismatch)
        assertThrowsBackendError(
            "negative dimension", { try backend.allocate(.float32, [2, -1]) },
            where: \.isShapeMismatch)
        // The failed calls left the tensor as it was.
        XCTAssertEqual(try backend.download(t, as: Float.self), [Float](repeating: 7, count: 6))
    }
}
