// LogdetTests.swift: CPUBackend.logdetSPD (batched Cholesky log-determinant and inverse)
// against closed forms and the textbook Cholesky in Reference.choleskyLogdet.
//
// Closed forms need no reference at all: a diagonal matrix (sum of logs), a 2x2 matrix
// (log(ac - b^2)) and a scaled identity (n log s). Random well-conditioned SPD matrices of
// sizes 1, 2, 5, 13, 64, 130 and 390 (our blocked kernel, 8 columns a panel, with full and
// partial last panels; from 384 the batch's matrices on separate threads) are checked
// against the reference factor, whose own consistency (2 sum log L_ii and L L^T = A) is
// checked too. Tridiagonal matrices, whose log-determinants have a closed form, reach the
// largest sizes of our kernel and LAPACK's dpotrf above it (777 and 1030). The inverse
// must satisfy A A^-1 = I and be exactly symmetric. The API reads only the lower triangle,
// so garbage, 1e30 and NaN, in the strictly upper part must change nothing.

import Backend
import Foundation
import TestSupport
import XCTest

final class LogdetTests: XCTestCase {
    static let sizes = [1, 2, 5, 13, 64, 130, 390]

    /// Log-determinants and inverses of `batch` n x n matrices stored one after another.
    private func run(
        _ backend: CPUBackend, _ matrices: [Double], batch: Int, n: Int, inverse: Bool = true
    ) throws -> (logdet: [Double], inverse: [Double]?) {
        let a = try backend.tensor(matrices, shape: [batch, n, n])
        let logdet = try backend.zeros(.float64, [batch])
        let inv = inverse ? try backend.zeros(.float64, [batch, n, n]) : nil
        try backend.logdetSPD(a, logdet: logdet, inverse: inv)
        return (try backend.download(logdet), try inv.map { try backend.download($0) })
    }

    /// max |A A^-1 - I| for one n x n matrix, by a plain triple loop.
    private func identityError(_ a: ArraySlice<Double>, _ inv: ArraySlice<Double>, n: Int)
        -> Double
    {
        let (a0, i0) = (a.startIndex, inv.startIndex)
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<n { sum += a[a0 + i * n + p] * inv[i0 + p * n + j] }
                worst = max(worst, abs(sum - (i == j ? 1 : 0)))
            }
        }
        return worst
    }

    private func assertSymmetric(
        _ m: ArraySlice<Double>, n: Int, _ label: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let m0 = m.startIndex
        for i in 0..<n {
            for j in 0..<i where m[m0 + i * n + j] != m[m0 + j * n + i] {
                XCTFail(
                    "\(label): inverse not symmetric at (\(i), \(j)): \(m[m0 + i * n + j]) vs "
                        + "\(m[m0 + j * n + i])", file: file, line: line)
                return
            }
        }
    }

    // MARK: - Closed forms

    func testDiagonalIsSumOfLogs() throws {
        let backend = try CPUBackend(threads: 2)
        let d = [0.5, 2, 3, 7.25, 1e-3, 1e4]
        let n = d.count
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { a[i * n + i] = d[i] }
        let (logdet, inverse) = try run(backend, a, batch: 1, n: n)
        assertClose(logdet[0], d.map { Foundation.log($0) }.reduce(0, +), rtol: 1e-14,
                    "diagonal logdet")
        var expectedInverse = [Double](repeating: 0, count: n * n)
        for i in 0..<n { expectedInverse[i * n + i] = 1 / d[i] }
        assertClose(inverse!, expectedInverse, rtol: 1e-14, "diagonal inverse")
    }

    func testTwoByTwo() throws {
        let backend = try CPUBackend(threads: 2)
        let cases: [(a: Double, b: Double, c: Double)] = [
            (4, 1.5, 2), (1, -0.9, 1), (3, 0, 0.25), (1e-3, 1e-4, 2e-3),
        ]
        let matrices = cases.flatMap { [$0.a, $0.b, $0.b, $0.c] }
        let (logdet, inverse) = try run(backend, matrices, batch: cases.count, n: 2)
        for (index, (a, b, c)) in cases.enumerated() {
            let det = a * c - b * b
            assertClose(logdet[index], Foundation.log(det), rtol: 1e-13, atol: 1e-14,
                        "log(ac - b^2) for a \(a) b \(b) c \(c)")
            assertClose(
                Array(inverse![(4 * index)..<(4 * index + 4)]),
                [c / det, -b / det, -b / det, a / det], rtol: 1e-12,
                "2x2 inverse for a \(a) b \(b) c \(c)")
        }
    }

    func testScaledIdentity() throws {
        let backend = try CPUBackend(threads: 2)
        for n in Self.sizes {
            for s in [0.25, 2.5] {
                var a = [Double](repeating: 0, count: n * n)
                for i in 0..<n { a[i * n + i] = s }
                let (logdet, inverse) = try run(backend, a, batch: 1, n: n)
                assertClose(logdet[0], Double(n) * Foundation.log(s), rtol: 1e-14,
                            "logdet of \(s) I, n = \(n)")
                let expected = a.map { $0 == 0 ? 0 : 1 / s }
                assertClose(inverse!, expected, rtol: 1e-14, "inverse of \(s) I, n = \(n)")
            }
        }
    }

    func testTridiagonalClosedFormAtLargeSizes() throws {
        // T = tridiag(-1, 2 + s, -1) has eigenvalues 2 + s - 2 cos(k pi / (n + 1)), so
        // log det T = sum_k log(2 + s - 2 cos(k pi / (n + 1))); T T^-1 = I is cheap to check
        // because T has three diagonals. 770 is the largest size of our own kernel (768 + 2,
        // a partial last panel), 777 and 1030 go to LAPACK's dpotrf.
        let backend = try CPUBackend(threads: 2)
        for n in [770, 777, 1030] {
            let shifts = [0.5, 0.01]
            var matrices = [Double](repeating: 0, count: shifts.count * n * n)
            for (b, s) in shifts.enumerated() {
                for i in 0..<n {
                    matrices[b * n * n + i * n + i] = 2 + s
                    if i > 0 {
                        matrices[b * n * n + i * n + i - 1] = -1
                        matrices[b * n * n + (i - 1) * n + i] = -1
                    }
                }
            }
            let (logdet, inverse) = try run(backend, matrices, batch: shifts.count, n: n)
            for (b, s) in shifts.enumerated() {
                let label = "tridiagonal n = \(n), shift \(s)"
                let expected = (1...n).reduce(0.0) { sum, k in
                    sum + Foundation.log(2 + s - 2 * cos(Double(k) * .pi / Double(n + 1)))
                }
                assertClose(logdet[b], expected, rtol: 1e-12, atol: 1e-12, label)
                let inv = inverse![(b * n * n)..<((b + 1) * n * n)]
                var worst = 0.0
                for i in 0..<n {
                    for j in 0..<n {
                        var sum = (2 + s) * inv[b * n * n + i * n + j]
                        if i > 0 { sum -= inv[b * n * n + (i - 1) * n + j] }
                        if i + 1 < n { sum -= inv[b * n * n + (i + 1) * n + j] }
                        worst = max(worst, abs(sum - (i == j ? 1 : 0)))
                    }
                }
                // T^-1 grows to about 1 / s along the diagonal: the bound scales with it.
                XCTAssertLessThan(worst, 1e-12 / s, "max |T T^-1 - I|, \(label)")
                print("tensor logdet \(label) T*inv max abs diff from I \(scientific(worst))")
            }
        }
    }

    // MARK: - Random SPD matrices against the textbook Cholesky

    func testRandomSPDAgainstReferenceCholesky() throws {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 301)
        for n in Self.sizes {
            let batch = 3
            let matrices = (0..<batch).map { b in rng.spdMatrix(n, shift: 0.5 + Double(b)) }
            let flat = matrices.flatMap { $0 }
            let (logdet, inverse) = try run(backend, flat, batch: batch, n: n)
            let (logdetOnly, _) = try run(backend, flat, batch: batch, n: n, inverse: false)

            for b in 0..<batch {
                let label = "n = \(n), matrix \(b)"
                let reference = try Reference.choleskyLogdet(matrices[b], n: n)
                // The reference factor itself: 2 sum log L_ii is its logdet, L L^T = A.
                let diagonalSum = (0..<n).reduce(0.0) {
                    $0 + 2 * Foundation.log(reference.factor[$1 * n + $1])
                }
                assertClose(diagonalSum, reference.logdet, rtol: 1e-13, atol: 1e-13,
                            "2 sum log L_ii vs reference logdet, \(label)")
                var product = [Double](repeating: 0, count: n * n)
                for i in 0..<n {
                    for j in 0...i {
                        var sum = 0.0
                        for p in 0...j {
                            sum += reference.factor[i * n + p] * reference.factor[j * n + p]
                        }
                        product[i * n + j] = sum
                        product[j * n + i] = sum
                    }
                }
                assertClose(product, matrices[b], rtol: 0, atol: 1e-13, "L L^T = A, \(label)")

                // The backend against the reference, with and without an inverse.
                assertClose(logdet[b], reference.logdet, rtol: 1e-12, atol: 1e-12,
                            "logdet vs reference, \(label)")
                assertClose(logdetOnly[b], logdet[b], rtol: 1e-15, atol: 1e-15,
                            "logdet without inverse, \(label)")
                let inv = inverse![(b * n * n)..<((b + 1) * n * n)]
                assertSymmetric(inv, n: n, label)
                let error = identityError(matrices[b][...], inv, n: n)
                XCTAssertLessThan(error, 1e-12, "max |A A^-1 - I|, \(label)")
                print("tensor logdet n=\(n) b=\(b) A*inv max abs diff from I \(scientific(error))")
            }
        }
    }

    func testUpperTriangleIsIgnored() throws {
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 302)
        for n in [2, 5, 64] {
            let batch = 2
            let clean = (0..<batch).flatMap { _ in rng.spdMatrix(n) }
            let (logdet, inverse) = try run(backend, clean, batch: batch, n: n)
            for garbage in [1e30, -1e30, Double.nan] {
                var dirty = clean
                for b in 0..<batch {
                    for i in 0..<n {
                        for j in (i + 1)..<n { dirty[(b * n + i) * n + j] = garbage }
                    }
                }
                let (dirtyLogdet, dirtyInverse) = try run(backend, dirty, batch: batch, n: n)
                XCTAssertEqual(dirtyLogdet, logdet, "logdet with \(garbage) above, n = \(n)")
                XCTAssertEqual(dirtyInverse!, inverse!,
                               "inverse with \(garbage) above, n = \(n)")
            }
        }
    }

    func testBatchOfDifferentMatrices() throws {
        // Each matrix of a batch gets its own answer, in its own slot.
        let backend = try CPUBackend(threads: 2)
        var rng = SplitMix64(seed: 303)
        let n = 5
        let matrices = (0..<4).map { b in rng.spdMatrix(n, shift: pow(10, Double(b) - 1)) }
        let (logdet, inverse) = try run(backend, matrices.flatMap { $0 }, batch: 4, n: n)
        for b in 0..<4 {
            let (single, singleInverse) = try run(backend, matrices[b], batch: 1, n: n)
            XCTAssertEqual(logdet[b], single[0], "matrix \(b) alone vs in the batch")
            XCTAssertEqual(Array(inverse![(b * n * n)..<((b + 1) * n * n)]), singleInverse!)
        }
        XCTAssertEqual(Set(logdet).count, 4, "four different matrices, four logdets")
    }

    func testEmptyBatch() throws {
        let backend = try CPUBackend(threads: 2)
        let (logdet, inverse) = try run(backend, [], batch: 0, n: 3)
        XCTAssertEqual(logdet, [])
        XCTAssertEqual(inverse, [])
    }
}
