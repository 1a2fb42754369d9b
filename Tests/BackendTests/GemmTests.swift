// GemmTests.swift: CPUBackend.gemm in float32 and float64 against a naive fp64 triple loop.
//
// Every case runs all four transpose combinations and three (alpha, beta) pairs: the plain
// product with C full of NaN (beta = 0 must not read C, as BLAS promises), and two with a
// nonzero C and beta != 0. Sizes are awkward on purpose: 1x1x1, odd primes, a single row,
// a single column, k = 1, and one size past the usual 64-wide blocking. The error of each
// element is measured against |alpha| sum |a b| + |beta c|, the scale rounding grows with:
// 1e-5 of it for float32 and 1e-13 for float64.

import Backend
import TestSupport
import XCTest

final class GemmTests: XCTestCase {
    /// (m, n, k) of op(A) m x k times op(B) k x n.
    static let sizes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (7, 13, 5), (33, 1, 17), (64, 31, 129), (1, 40, 9), (23, 1, 11),
        (12, 17, 1),
    ]
    /// alpha and beta exactly representable in float32, so both paths see the same values.
    static let scalings: [(alpha: Double, beta: Double)] = [(1, 0), (1.5, -0.75), (-0.5, 1)]
    /// Set once CPUBackend.gemm accepts empty dimensions (see testEmptyDimensions).

    /// Runs every size, transpose pair and scaling; returns the worst error seen.
    private func checkAllCases<T: TensorScalar>(
        _ type: T.Type, seed: UInt64, rtol: Double, file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> Double {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: seed)
        var worst = 0.0
        for (m, n, k) in Self.sizes {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    for (alpha, beta) in Self.scalings {
                        let a: [T] = rng.uniformArray(m * k)
                        let b: [T] = rng.uniformArray(k * n)
                        let cIn: [T] = beta == 0
                            ? [T](repeating: .nan, count: m * n) : rng.uniformArray(m * n)
                        let ta = try backend.tensor(a, shape: transposeA ? [k, m] : [m, k])
                        let tb = try backend.tensor(b, shape: transposeB ? [n, k] : [k, n])
                        let tc = try backend.tensor(cIn, shape: [m, n])
                        try backend.gemm(
                            ta, transposeA: transposeA, tb, transposeB: transposeB, into: tc,
                            alpha: alpha, beta: beta)
                        let c: [T] = try backend.download(tc)

                        let expected = Naive.gemm(
                            a.map(Double.init), transposeA: transposeA, b.map(Double.init),
                            transposeB: transposeB, c: cIn.map(Double.init), m: m, n: n, k: k,
                            alpha: alpha, beta: beta)
                        let label = "\(T.self) gemm m\(m) n\(n) k\(k) "
                            + "\(transposeA ? "T" : "N")\(transposeB ? "T" : "N") "
                            + "alpha \(alpha) beta \(beta)"
                        let actual = c.map(Double.init)
                        assertClose(
                            actual, expected.values, scale: expected.magnitudes, rtol: rtol,
                            label, file: file, line: line)
                        worst = max(
                            worst,
                            maxRelativeDifference(
                                actual, expected.values, scale: expected.magnitudes))
                    }
                }
            }
        }
        print("tensor \(T.self) gemm (all cases) max rel diff \(scientific(worst))")
        return worst
    }

    func testFloat32MatchesNaiveDouble() throws {
        _ = try checkAllCases(Float.self, seed: 0x6E33_F32, rtol: 1e-5)
    }

    func testFloat64MatchesNaiveDouble() throws {
        // 1e-13 also proves float64 work never went through float32 on the way.
        _ = try checkAllCases(Double.self, seed: 0x6E33_F64, rtol: 1e-13)
    }

    /// Small integers make every product and sum exact, so the answer is known without a
    /// reference; the transposed operands are written out by hand.
    func testExactSmallIntegerProduct() throws {
        let backend = try CPUBackend(threads: 2)
        // A = [1 2; 3 4; 5 6] (3x2), B = [1 -1 2; 0 3 1] (2x3); A B = [1 5 4; 3 9 10; 5 13 16]
        let a = try backend.tensor([Float](arrayLiteral: 1, 2, 3, 4, 5, 6), shape: [3, 2])
        let bT = try backend.tensor([Float](arrayLiteral: 1, 0, -1, 3, 2, 1), shape: [3, 2])
        let c = try backend.tensor([Float](repeating: 1, count: 9), shape: [3, 3])
        try backend.gemm(a, transposeA: false, bT, transposeB: true, into: c, alpha: 2, beta: 3)
        let result: [Float] = try backend.download(c)
        XCTAssertEqual(result, [5, 13, 11, 9, 21, 23, 13, 29, 35])
    }

    /// Empty dimensions: k = 0 leaves C = beta C, and m = 0 or n = 0 has nothing to write.
    func testEmptyDimensions() throws {
        // An empty dimension makes shape[1] zero; BLAS (and cim_gemm_check) want leading
        // dimensions of at least 1, which CPUBackend.gemm has to supply.
        let backend = try CPUBackend(threads: 2)
        for (m, n, k) in [(2, 3, 0), (0, 3, 2), (2, 0, 3)] {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    let a = try backend.zeros(.float32, transposeA ? [k, m] : [m, k])
                    let b = try backend.zeros(.float32, transposeB ? [n, k] : [k, n])
                    let c = try backend.tensor(
                        [Float](repeating: 2, count: m * n), shape: [m, n])
                    try backend.gemm(
                        a, transposeA: transposeA, b, transposeB: transposeB, into: c,
                        alpha: 1, beta: 0.5)
                    XCTAssertEqual(
                        try backend.download(c, as: Float.self),
                        [Float](repeating: 1, count: m * n), "m \(m) n \(n) k \(k)")
                }
            }
        }
    }
}
