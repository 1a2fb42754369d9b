// LossGradientTests.swift: the CorInfoMax loss (SPEC 2.1, 2.2, 3.3).
//
// - CorInfoMaxLoss (the fast path: sufficient statistics, BLAS, float32 gradients) against
//   ReferenceCorInfoMax (centred rows, textbook Cholesky, float64) over five consecutive
//   steps, with λ_R = 0.1, λ_μ = 0.3 and with the CIFAR-10 values 0.01 / 0.01: loss value,
//   both terms, both views' gradients and the moving state after every step.
// - Both against a value worked out by hand with 2 x 2 determinants, over two steps, so the
//   semantics (centring on the smoothed mean, divisor N, −log det / D, λ weighting the old
//   state, mean squared error over N·D) do not rest on the reference alone.
// - The reference gradient against float64 central differences of the reference loss (step
//   1e-6; the state update happens inside the forward, so every evaluation starts from a
//   fresh copy of the same state). The fast path's gradient is checked against the same
//   differences.
// - The mean-path correction c_v of SPEC 2.2: a gradient written in the test from the
//   formula matches the differences with c_v and misses them by far more than the
//   tolerance without it.
// - Sufficient statistics: three shards of unequal size, statistics summed, one update,
//   gradients per shard, equal to one replica with the whole batch (SPEC 3.3).
// - Errors: non-finite embeddings, a covariance that is not positive definite, views of
//   different sizes and out-of-range settings throw, and leave the state as it was.

import Backend
import Foundation
import TestSupport
@testable import Training
import XCTest

final class LossGradientTests: XCTestCase {
    private var host: CPUBackend!

    override func setUpWithError() throws {
        host = try CPUBackend(threads: 1)
    }

    // MARK: - Data

    /// N L2-normalised float32 rows of width D per view; the second view is a noisy copy of
    /// the first, and the rows share an offset, so the batch mean is far from zero.
    private func views(n: Int, d: Int, random: inout SplitMix64) -> ([Float], [Float]) {
        let offset = random.doubles(d, -0.5, 0.5)
        func normalized(_ rows: [Double]) -> [Float] {
            var out = [Float](repeating: 0, count: rows.count)
            for i in 0..<n {
                let row = rows[(i * d)..<((i + 1) * d)]
                let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                for j in 0..<d { out[i * d + j] = Float(rows[i * d + j] / norm) }
            }
            return out
        }
        let u = (0..<(n * d)).map { random.uniform(-1, 1) + offset[$0 % d] }
        let v = u.map { $0 + random.uniform(-0.4, 0.4) }
        return (normalized(u), normalized(v))
    }

    /// A random prior state: SPD covariances and means of size ~0.2, per view.
    private func priorState(_ d: Int, random: inout SplitMix64)
        -> (covariance: [[Double]], mean: [[Double]])
    {
        let covariance = (0..<2).map { _ in random.spdMatrix(d, shift: 0.2).map { $0 * 0.5 } }
        return (covariance, [random.doubles(d, -0.2, 0.2), random.doubles(d, -0.2, 0.2)])
    }

    private func assertRows(
        _ label: String, _ actual: [Double], _ expected: [Double], rtol: Double,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let scale = [Double](repeating: max(maxAbsolute(expected), 1e-300), count: expected.count)
        reportDifference(label, actual, expected, scale: scale)
        assertClose(actual, expected, scale: scale, rtol: rtol, label, file: file, line: line)
    }

    private func assertState(
        _ label: String, _ loss: CorInfoMaxLoss, _ covariance: [[Double]], _ mean: [[Double]],
        rtol: Double = 1e-12, file: StaticString = #filePath, line: UInt = #line
    ) {
        for v in 0..<2 {
            assertRows("\(label) R\(v + 1)", loss.covarianceState[v], covariance[v], rtol: rtol,
                       file: file, line: line)
            assertRows("\(label) mu\(v + 1)", loss.meanState[v], mean[v], rtol: rtol,
                       file: file, line: line)
        }
    }

    // MARK: - Fast path against the reference

    private func compareWithReference(_ hyper: CorInfoMaxHyperparameters, seed: UInt64) throws {
        let loss = try CorInfoMaxLoss(hyper, host: host)
        var reference = ReferenceCorInfoMax(hyper)
        var random = SplitMix64(seed: seed)
        let label = "λR \(hyper.lambdaR) λμ \(hyper.lambdaMu)"
        var previous = reference.covarianceState
        for step in 1...5 {
            let (z1, z2) = views(n: 16, d: hyper.dimension, random: &random)
            let fast = try loss(z1: z1, z2: z2)
            let slow = try reference.step(z1: z1.map(Double.init), z2: z2.map(Double.init))
            let tag = "\(label) step \(step)"
            assertClose(
                [fast.value.total, fast.value.invariance, fast.value.covariance],
                [slow.value.total, slow.value.invariance, slow.value.covariance],
                rtol: 1e-12, atol: 1e-14, "\(tag) loss, L_inv, L_cov")
            XCTAssertEqual(slow.value.total,
                           hyper.alpha * slow.value.invariance + hyper.beta * slow.value.covariance,
                           accuracy: 1e-12 * abs(slow.value.total))
            // float32 gradients: each element within rounding of the float64 value
            for (name, actual, expected) in [("dz1", fast.dz1, slow.dz1),
                                             ("dz2", fast.dz2, slow.dz2)] {
                reportDifference("\(tag) \(name)", actual.map(Double.init), expected)
                assertClose(actual.map(Double.init), expected, rtol: 2.5e-7,
                            atol: 1e-9 * maxAbsolute(expected), "\(tag) \(name)")
            }
            assertState(tag, loss, reference.covarianceState, reference.meanState)
            XCTAssertGreaterThan(maxAbsoluteDifference(reference.covarianceState[0], previous[0]),
                                 1e-3, "\(tag): the state did not move")
            previous = reference.covarianceState
        }
    }

    func testMatchesReferenceOverFiveSteps() throws {
        try compareWithReference(
            CorInfoMaxHyperparameters(alpha: 250, lambdaR: 0.1, lambdaMu: 0.3, dimension: 8),
            seed: 1)
    }

    func testMatchesReferenceOverFiveStepsCIFARSettings() throws {
        try compareWithReference(.cifar10(dimension: 8), seed: 2)
    }

    // MARK: - A value worked out by hand

    /// log det of a 2 x 2 [a b; c d].
    private func logdet2(_ m: [Double]) -> Double { Foundation.log(m[0] * m[3] - m[1] * m[2]) }

    func testTwoByTwoValueWorkedOutByHand() throws {
        let hyper = CorInfoMaxHyperparameters(
            alpha: 2, beta: 0.5, lambdaR: 0.25, lambdaMu: 0.5, epsilon: 1e-3, rInit: 2,
            dimension: 2)
        let loss = try CorInfoMaxLoss(hyper, host: host)
        var reference = ReferenceCorInfoMax(hyper)
        var oldR = [[2.0, 0, 0, 2], [2.0, 0, 0, 2]]
        var oldMu = [[0.0, 0], [0.0, 0]]
        let batches: [([Float], [Float])] = [
            ([0.6, 0.8, 1, 0], [0.8, 0.6, 0, 1]),
            ([0, 1, -0.6, 0.8], [0.28, 0.96, -1, 0]),
        ]
        for (step, (z1, z2)) in batches.enumerated() {
            var logdets: [Double] = []
            var newR: [[Double]] = [], newMu: [[Double]] = []
            for (v, z) in [z1, z2].map({ $0.map(Double.init) }).enumerated() {
                let m = [(z[0] + z[2]) / 2, (z[1] + z[3]) / 2]
                let mu = [0.5 * oldMu[v][0] + 0.5 * m[0], 0.5 * oldMu[v][1] + 0.5 * m[1]]
                let rows = [[z[0] - mu[0], z[1] - mu[1]], [z[2] - mu[0], z[3] - mu[1]]]
                var r = [Double](repeating: 0, count: 4)
                for a in 0..<2 {
                    for b in 0..<2 {
                        let c = (rows[0][a] * rows[0][b] + rows[1][a] * rows[1][b]) / 2
                        r[a * 2 + b] = 0.25 * oldR[v][a * 2 + b] + 0.75 * c
                    }
                }
                logdets.append(logdet2([r[0] + 1e-3, r[1], r[2], r[3] + 1e-3]))
                newR.append(r)
                newMu.append(mu)
            }
            var squares = 0.0
            for k in 0..<4 { squares += pow(Double(z1[k]) - Double(z2[k]), 2) }
            let invariance = squares / 4
            let covariance = -(logdets[0] + logdets[1]) / 2
            let expected = [2 * invariance + 0.5 * covariance, invariance, covariance]

            let fast = try loss(z1: z1, z2: z2)
            let slow = try reference.step(z1: z1.map(Double.init), z2: z2.map(Double.init))
            let tag = "2x2 step \(step + 1)"
            assertClose([fast.value.total, fast.value.invariance, fast.value.covariance],
                        expected, rtol: 1e-12, "\(tag) fast path")
            assertClose([slow.value.total, slow.value.invariance, slow.value.covariance],
                        expected, rtol: 1e-12, "\(tag) reference")
            assertState(tag, loss, newR, newMu)
            (oldR, oldMu) = (newR, newMu)
        }
    }

    // MARK: - Finite differences

    /// Fixture of the gradient checks: hyper-parameters of SPEC 2.3, a random prior state and
    /// float32-representable rows (so the fast path sees the same numbers).
    private struct Problem {
        var hyper: CorInfoMaxHyperparameters
        var reference: ReferenceCorInfoMax
        var z1: [Float], z2: [Float]
        var n: Int { z1.count / hyper.dimension }

        /// The loss of one step from the prior state; `z` holds both views, z1 first.
        func loss(_ z: [Double]) throws -> Double {
            var fresh = reference   // a copy: the step advances only the copy's state
            let half = z.count / 2
            return try fresh.step(z1: Array(z[..<half]), z2: Array(z[half...])).value.total
        }
    }

    private func problem(lambdaMu: Double, seed: UInt64) -> Problem {
        var random = SplitMix64(seed: seed)
        let hyper = CorInfoMaxHyperparameters(
            alpha: 250, beta: 1, lambdaR: 0.1, lambdaMu: lambdaMu, epsilon: 1e-8, dimension: 8)
        var reference = ReferenceCorInfoMax(hyper)
        let (covariance, mean) = priorState(8, random: &random)
        reference.covarianceState = covariance
        reference.meanState = mean
        let (z1, z2) = views(n: 16, d: 8, random: &random)
        return Problem(hyper: hyper, reference: reference, z1: z1, z2: z2)
    }

    /// Central differences of the loss with respect to every entry of both views.
    private func differences(_ p: Problem) throws -> [Double] {
        let z = (p.z1 + p.z2).map(Double.init)
        return try finiteDifferences(z, at: Array(z.indices), step: 1e-6, float32: false) {
            try p.loss($0)
        }.map(\.central)
    }

    func testGradientMatchesFiniteDifferences() throws {
        for lambdaMu in [0.3, 0.01] {
            let p = problem(lambdaMu: lambdaMu, seed: 7)
            let fd = try differences(p)
            var reference = p.reference
            let slow = try reference.step(z1: p.z1.map(Double.init), z2: p.z2.map(Double.init))
            assertRows("λμ \(lambdaMu) reference gradient vs differences", slow.dz1 + slow.dz2,
                       fd, rtol: 1e-6)

            let loss = try CorInfoMaxLoss(p.hyper, host: host)
            try loss.setState(covariance: p.reference.covarianceState,
                              mean: p.reference.meanState)
            let fast = try loss(z1: p.z1, z2: p.z2)
            assertRows("λμ \(lambdaMu) fast gradient vs differences",
                       (fast.dz1 + fast.dz2).map(Double.init), fd, rtol: 1e-6)
        }
    }

    /// SPEC 2.2 written out in the test, with or without the mean-path correction c_v.
    private func formulaGradient(_ p: Problem, correction: Bool) throws -> [Double] {
        let (d, n, h) = (p.hyper.dimension, p.n, p.hyper)
        let views = [p.z1.map(Double.init), p.z2.map(Double.init)]
        var gradient: [Double] = []
        for v in 0..<2 {
            let z = views[v], other = views[1 - v]
            let oldMean = p.reference.meanState[v]
            let m = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + z[$1 * d + j] } / Double(n) }
            let mu = (0..<d).map { h.lambdaMu * oldMean[$0] + (1 - h.lambdaMu) * m[$0] }
            var r = p.reference.covarianceState[v].map { $0 * h.lambdaR }
            for i in 0..<n {
                for a in 0..<d {
                    for b in 0..<d {
                        r[a * d + b] += (1 - h.lambdaR) / Double(n)
                            * (z[i * d + a] - mu[a]) * (z[i * d + b] - mu[b])
                    }
                }
            }
            for a in 0..<d { r[a * d + a] += h.epsilon }
            let (_, inverse) = try ReferenceCorInfoMax.choleskyLogdetInverse(r, d)
            let c = (0..<d).map {
                correction ? h.lambdaMu * (1 - h.lambdaMu) * (m[$0] - oldMean[$0]) : 0
            }
            let scale = 2 / Double(n * d)
            for i in 0..<n {
                for a in 0..<d {
                    var pull = 0.0
                    for b in 0..<d { pull += inverse[a * d + b] * (z[i * d + b] - mu[b] - c[b]) }
                    gradient.append(scale * (h.alpha * (z[i * d + a] - other[i * d + a])
                        - h.beta * (1 - h.lambdaR) * pull))
                }
            }
        }
        return gradient
    }

    func testMeanPathCorrectionMatters() throws {
        let p = problem(lambdaMu: 0.3, seed: 8)
        let fd = try differences(p)
        let scale = [Double](repeating: maxAbsolute(fd), count: fd.count)
        let with = try formulaGradient(p, correction: true)
        assertRows("formula with c_v vs differences", with, fd, rtol: 1e-6)
        let without = try formulaGradient(p, correction: false)
        let miss = maxRelativeDifference(without, fd, scale: scale)
        print("tensor formula without c_v vs differences max rel diff \(scientific(miss))")
        XCTAssertGreaterThan(miss, 1e-4, "dropping c_v should change the gradient visibly")
    }

    // MARK: - Sufficient statistics

    func testShardedStatisticsMatchOneReplica() throws {
        let hyper = CorInfoMaxHyperparameters(alpha: 250, lambdaR: 0.1, lambdaMu: 0.3,
                                              dimension: 8)
        let whole = try CorInfoMaxLoss(hyper, host: host)
        let sharded = try CorInfoMaxLoss(hyper, host: host)
        let shards = [3, 5, 9]
        var random = SplitMix64(seed: 9)
        for step in 1...2 {
            let (z1, z2) = views(n: 17, d: 8, random: &random)
            let expected = try whole(z1: z1, z2: z2)

            var ranges: [Range<Int>] = []
            var start = 0
            for rows in shards {
                ranges.append((start * 8)..<((start + rows) * 8))
                start += rows
            }
            let parts = try ranges.map {
                try sharded.statistics(z1: Array(z1[$0]), z2: Array(z2[$0]))
            }
            let total = parts.dropFirst().reduce(parts[0], +)
            XCTAssertEqual(total.rows, 17)
            let oneShard = try CorInfoMaxLoss(hyper, host: host)
            try oneShard.setState(covariance: sharded.covarianceState, mean: sharded.meanState)
            let partial = try oneShard.update(with: parts[2]).0.total

            let (value, context) = try sharded.update(with: total)
            var dz1: [Float] = [], dz2: [Float] = []
            for range in ranges {
                let g = try sharded.gradient(z1: Array(z1[range]), z2: Array(z2[range]),
                                             context: context)
                dz1 += g.dz1
                dz2 += g.dz2
            }
            let tag = "3 shards step \(step)"
            assertClose([value.total, value.invariance, value.covariance],
                        [expected.value.total, expected.value.invariance,
                         expected.value.covariance], rtol: 1e-12, "\(tag) loss")
            XCTAssertGreaterThan(abs(partial - expected.value.total), 1e-3,
                                 "one shard alone should give another loss")
            assertRows("\(tag) dz1", dz1.map(Double.init), expected.dz1.map(Double.init),
                       rtol: 1e-12)
            assertRows("\(tag) dz2", dz2.map(Double.init), expected.dz2.map(Double.init),
                       rtol: 1e-12)
            assertState(tag, sharded, whole.covarianceState, whole.meanState)
        }
    }

    // MARK: - Errors

    private func snapshot(_ loss: CorInfoMaxLoss) -> [[Double]] {
        loss.covarianceState + loss.meanState
    }

    func testNonFiniteEmbeddingsThrowAndKeepTheState() throws {
        let loss = try CorInfoMaxLoss(.cifar10(dimension: 8), host: host)
        var random = SplitMix64(seed: 10)
        let (z1, z2) = views(n: 16, d: 8, random: &random)
        _ = try loss(z1: z1, z2: z2)
        let before = snapshot(loss)
        for (label, bad) in [("NaN", Float.nan), ("infinity", Float.infinity)] {
            var broken = z2
            broken[37] = bad
            XCTAssertThrowsError(try loss(z1: z1, z2: broken), label) { error in
                guard case TrainingError.nonFiniteLoss = error else {
                    return XCTFail("\(label): expected nonFiniteLoss, got \(error)")
                }
            }
            XCTAssertThrowsError(try loss(z1: broken, z2: z1), label)
            XCTAssertEqual(snapshot(loss), before, "\(label) changed the state")
        }
        // the next good step proceeds from the unchanged state
        var reference = ReferenceCorInfoMax(.cifar10(dimension: 8))
        reference.covarianceState = loss.covarianceState
        reference.meanState = loss.meanState
        let (y1, y2) = views(n: 16, d: 8, random: &random)
        let value = try loss(z1: y1, z2: y2).value.total
        let expected = try reference.step(z1: y1.map(Double.init), z2: y2.map(Double.init))
        XCTAssertEqual(value, expected.value.total, accuracy: 1e-12 * abs(value))
    }

    func testCovarianceNotPositiveDefiniteThrowsAndKeepsTheState() throws {
        let loss = try CorInfoMaxLoss(.cifar10(dimension: 4), host: host)
        let negative = (0..<16).map { $0 % 5 == 0 ? -10.0 : 0 }
        try loss.setState(covariance: [negative, negative], mean: [[0, 0, 0, 0], [0, 0, 0, 0]])
        let before = snapshot(loss)
        var random = SplitMix64(seed: 11)
        let (z1, z2) = views(n: 8, d: 4, random: &random)
        XCTAssertThrowsError(try loss(z1: z1, z2: z2)) { error in
            guard case TrainingError.nonFiniteLoss = error else {
                return XCTFail("expected nonFiniteLoss, got \(error)")
            }
        }
        XCTAssertEqual(snapshot(loss), before)
    }

    func testMismatchedViewsThrow() throws {
        let loss = try CorInfoMaxLoss(.cifar10(dimension: 8), host: host)
        var random = SplitMix64(seed: 12)
        let (z1, z2) = views(n: 16, d: 8, random: &random)
        let before = snapshot(loss)
        let cases: [(String, [Float], [Float])] = [
            ("15 rows against 16", z1, Array(z2[..<120])),
            ("not a multiple of D", Array(z1[..<100]), Array(z2[..<100])),
            ("empty views", [], []),
        ]
        for (label, a, b) in cases {
            assertThrowsBackendError(label, { try loss(z1: a, z2: b) }, where: \.isShapeMismatch)
        }
        XCTAssertEqual(snapshot(loss), before)
    }

    func testInvalidSettingsAreRejected() throws {
        let good = CorInfoMaxHyperparameters.cifar10(dimension: 8)
        var bad: [(String, CorInfoMaxHyperparameters)] = []
        var h = good; h.lambdaR = 1.5; bad.append(("λ_R above 1", h))
        h = good; h.lambdaMu = -0.1; bad.append(("λ_μ below 0", h))
        h = good; h.dimension = 0; bad.append(("D = 0", h))
        h = good; h.epsilon = -1e-8; bad.append(("negative ε", h))
        h = good; h.rInit = 0; bad.append(("R_ini = 0", h))
        h = good; h.alpha = .nan; bad.append(("α NaN", h))
        for (label, hyper) in bad {
            XCTAssertThrowsError(try CorInfoMaxLoss(hyper, host: host), label) { error in
                guard case TrainingError.invalidConfiguration = error else {
                    return XCTFail("\(label): expected invalidConfiguration, got \(error)")
                }
            }
        }
        let loss = try CorInfoMaxLoss(good, host: host)
        let identity = (0..<64).map { $0 % 9 == 0 ? 1.0 : 0 }
        XCTAssertThrowsError(try loss.setState(covariance: [identity], mean: [[], []]))
        XCTAssertThrowsError(
            try loss.setState(covariance: [identity, Array(identity.dropLast())],
                              mean: [[Double](repeating: 0, count: 8),
                                     [Double](repeating: 0, count: 8)])) { error in
            guard case TrainingError.mismatch = error else {
                return XCTFail("expected mismatch, got \(error)")
            }
        }
    }
}
