// ReferenceLoss.swift: CorInfoMax written the plain way, straight from SPEC 2.1 and 2.2, as
// the oracle for CorInfoMaxLoss (tests, and `cim-train bench --ops step` before it times).
//
// Differences from the fast path, on purpose: rows are centred first and the outer
// products summed afterwards (as the reference PyTorch code does), the log-determinant
// and the inverse come from a textbook Cholesky and column-by-column triangular solves in
// Swift, and nothing calls BLAS. O(N D² + D³) with small constants; meant for D up to a few
// hundred.

/// The loss and gradient of one step, computed without shortcuts.
public struct ReferenceCorInfoMax {
    public var hyper: CorInfoMaxHyperparameters
    public var covarianceState: [[Double]]
    public var meanState: [[Double]]

    public init(_ hyper: CorInfoMaxHyperparameters) {
        self.hyper = hyper
        let d = hyper.dimension
        let identity = (0..<(d * d)).map { $0 % (d + 1) == 0 ? hyper.rInit : 0 }
        covarianceState = [identity, identity]
        meanState = [[Double](repeating: 0, count: d), [Double](repeating: 0, count: d)]
    }

    /// Loss value and ∂L/∂z for both views (rows [N, D], row-major); advances the state.
    public mutating func step(z1: [Double], z2: [Double]) throws
        -> (value: LossValue, dz1: [Double], dz2: [Double])
    {
        let d = hyper.dimension
        let n = z1.count / d
        let views = [z1, z2]
        var logdets = [0.0, 0.0]
        var gradients: [[Double]] = []
        var covariancePart: [[Double]] = []
        for v in 0..<2 {
            let z = views[v]
            // m, μ, centred rows
            var m = [Double](repeating: 0, count: d)
            for i in 0..<n { for j in 0..<d { m[j] += z[i * d + j] / Double(n) } }
            let mu = (0..<d).map {
                hyper.lambdaMu * meanState[v][$0] + (1 - hyper.lambdaMu) * m[$0]
            }
            // R = λ_R R̄ + (1 − λ_R) (1/N) Σ ẑ ẑᵀ,
            // plus ε on the diagonal for the log-det
            var r = covarianceState[v].map { $0 * hyper.lambdaR }
            for i in 0..<n {
                for a in 0..<d {
                    for b in 0..<d {
                        r[a * d + b] += (1 - hyper.lambdaR) * (z[i * d + a] - mu[a])
                            * (z[i * d + b] - mu[b]) / Double(n)
                    }
                }
            }
            var shifted = r
            for a in 0..<d { shifted[a * d + a] += hyper.epsilon }
            let (logdet, inverse) = try Self.choleskyLogdetInverse(shifted, d)
            logdets[v] = logdet
            // gradient of the covariance term: −β(1−λ_R)(2/(ND)) G (ẑ − c)
            let c = (0..<d).map {
                hyper.lambdaMu * (1 - hyper.lambdaMu) * (m[$0] - meanState[v][$0])
            }
            var g = [Double](repeating: 0, count: n * d)
            for i in 0..<n {
                for a in 0..<d {
                    var sum = 0.0
                    for b in 0..<d { sum += inverse[a * d + b] * (z[i * d + b] - mu[b] - c[b]) }
                    g[i * d + a] = -hyper.beta * (1 - hyper.lambdaR) * 2 / Double(n * d) * sum
                }
            }
            covariancePart.append(g)
            covarianceState[v] = r
            meanState[v] = mu
        }
        var invariance = 0.0
        for k in z1.indices { invariance += (z1[k] - z2[k]) * (z1[k] - z2[k]) }
        invariance /= Double(n * d)
        let covariance = -(logdets[0] + logdets[1]) / Double(d)
        for v in 0..<2 {
            let (z, other) = (views[v], views[1 - v])
            gradients.append(z.indices.map {
                covariancePart[v][$0] + hyper.alpha * 2 / Double(n * d) * (z[$0] - other[$0])
            })
        }
        let value = LossValue(total: hyper.alpha * invariance + hyper.beta * covariance,
                              invariance: invariance, covariance: covariance)
        return (value, gradients[0], gradients[1])
    }

    /// log det A and A⁻¹ of an SPD matrix by textbook Cholesky and triangular solves.
    public static func choleskyLogdetInverse(_ a: [Double], _ d: Int) throws
        -> (Double, [Double])
    {
        var l = [Double](repeating: 0, count: d * d)
        var logdet = 0.0
        for i in 0..<d {
            for j in 0...i {
                var sum = a[i * d + j]
                for p in 0..<j { sum -= l[i * d + p] * l[j * d + p] }
                if i == j {
                    guard sum > 0 else {
                        throw TrainingError.nonFiniteLoss(
                            "reference Cholesky: pivot \(i) is \(sum)")
                    }
                    l[i * d + i] = sum.squareRoot()
                    logdet += 2 * _log(l[i * d + i])
                } else {
                    l[i * d + j] = sum / l[j * d + j]
                }
            }
        }
        // column k of A⁻¹: solve L y = e_k, then Lᵀ x = y
        var inverse = [Double](repeating: 0, count: d * d)
        for k in 0..<d {
            var y = [Double](repeating: 0, count: d)
            for i in 0..<d {
                var sum = i == k ? 1.0 : 0.0
                for p in 0..<i { sum -= l[i * d + p] * y[p] }
                y[i] = sum / l[i * d + i]
            }
            for i in stride(from: d - 1, through: 0, by: -1) {
                var sum = y[i]
                for p in (i + 1)..<d { sum -= l[p * d + i] * inverse[p * d + k] }
                inverse[i * d + k] = sum / l[i * d + i]
            }
        }
        return (logdet, inverse)
    }
}
