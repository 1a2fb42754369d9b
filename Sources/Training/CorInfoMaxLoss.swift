// CorInfoMaxLoss.swift: the CorInfoMax objective with its float64 moving statistics and
// analytic gradient (SPEC 2.1, 2.2, 3.3).
//
// For each view v, with rows z_{v,i} (i = 1..N, L2-normalised), old state R̄_v, μ̄_v:
//
//   m_v = (1/N) Σ_i z_{v,i}                  μ_v = λ_μ μ̄_v + (1 − λ_μ) m_v
//   C_v = (1/N) Σ_i (z_{v,i} − μ_v)(z_{v,i} − μ_v)ᵀ
//       = P_v/N − μ_v m_vᵀ − m_v μ_vᵀ + μ_v μ_vᵀ
//   R_v = λ_R R̄_v + (1 − λ_R) C_v            (then R̄_v ← R_v, μ̄_v ← μ_v)
//   L_cov = −(1/D) [log det(R_1 + εI) + log det(R_2 + εI)]
//   L_inv = (1/(N D)) Σ_i ‖z_{1,i} − z_{2,i}‖²
//   L = α L_inv + β L_cov
//
// Gradient, with G_v = (R_v + εI)⁻¹ and c_v = λ_μ (1 − λ_μ)(m_v − μ̄_v):
//
//   ∂L/∂z_{v,i} = (2/(N D)) [α (z_{v,i} − z_{other,i})
//                             − β (1 − λ_R) G_v (z_{v,i} − μ_v − c_v)]
//
// The batch enters only through the sufficient statistics s_v = Σ z, P_v = Σ z zᵀ (float64),
// e = Σ ‖z_1 − z_2‖² and N, which add across replicas; so the loss is computed in three
// steps: `statistics` of the local rows, `update` with the (summed) statistics, which
// advances the state and returns the loss, and `gradient` of the local rows. One replica
// calls all three through `callAsFunction`. P_v is formed as Zᵀ Z in float64 (not centred
// first): the state and every covariance quantity are float64, as in the reference.

import Backend

/// The hyper-parameters of SPEC 2.1.
public struct CorInfoMaxHyperparameters: Sendable, Equatable {
    public var alpha: Double        // weight of the invariance term (sim_loss_weight)
    public var beta: Double         // weight of the covariance term (cov_loss_weight)
    public var lambdaR: Double      // weight of the OLD covariance state
    public var lambdaMu: Double     // weight of the OLD mean state
    public var epsilon: Double      // added to the diagonal inside the log-det
    public var rInit: Double        // initial covariance state R_ini I
    public var dimension: Int       // D, the embedding width

    public init(alpha: Double, beta: Double = 1, lambdaR: Double, lambdaMu: Double,
                epsilon: Double = 1e-8, rInit: Double = 1, dimension: Int) {
        self.alpha = alpha
        self.beta = beta
        self.lambdaR = lambdaR
        self.lambdaMu = lambdaMu
        self.epsilon = epsilon
        self.rInit = rInit
        self.dimension = dimension
    }

    /// The CIFAR-10 run of the paper (SPEC 2.1 table).
    public static func cifar10(dimension: Int = 64) -> CorInfoMaxHyperparameters {
        CorInfoMaxHyperparameters(alpha: 250, lambdaR: 0.01, lambdaMu: 0.01, dimension: dimension)
    }

    func validate() throws {
        guard dimension > 0, (0...1).contains(lambdaR), (0...1).contains(lambdaMu),
            epsilon >= 0, rInit > 0, alpha.isFinite, beta.isFinite
        else {
            throw TrainingError.invalidConfiguration(
                "CorInfoMax hyper-parameters out of range: D=\(dimension) λ_R=\(lambdaR) "
                    + "λ_μ=\(lambdaMu) ε=\(epsilon) R_ini=\(rInit)")
        }
    }
}

/// Sums over rows that add across replicas (SPEC 3.3).
public struct LossStatistics: Sendable, Equatable {
    public var rows: Int
    /// Σ_i z_{v,i}, per view (D values).
    public var sums: [[Double]]
    /// Σ_i z_{v,i} z_{v,i}ᵀ, per view (D x D, row-major).
    public var outerProducts: [[Double]]
    /// Σ_i ‖z_{1,i} − z_{2,i}‖².
    public var invariance: Double

    public static func + (a: LossStatistics, b: LossStatistics) -> LossStatistics {
        var total = a
        total.rows += b.rows
        for v in 0..<2 {
            for i in total.sums[v].indices { total.sums[v][i] += b.sums[v][i] }
            for i in total.outerProducts[v].indices {
                total.outerProducts[v][i] += b.outerProducts[v][i]
            }
        }
        total.invariance += b.invariance
        return total
    }
}

/// Loss value and its two terms.
public struct LossValue: Sendable, Equatable {
    public var total: Double
    public var invariance: Double   // L_inv (before α)
    public var covariance: Double   // L_cov (before β)
}

/// What the gradient of local rows needs after `update`: per view μ_v + c_v and G_v.
public struct LossGradientContext: Sendable {
    public var rows: Int
    public var shift: [[Double]]        // μ_v + c_v, per view
    public var inverse: [[Double]]      // G_v, per view (D x D)
}

/// CorInfoMax with its moving state; see the file header for the math.
public final class CorInfoMaxLoss {
    public let hyper: CorInfoMaxHyperparameters
    /// R̄_v, per view (D x D, row-major, float64).
    public private(set) var covarianceState: [[Double]]
    /// μ̄_v, per view.
    public private(set) var meanState: [[Double]]
    let host: CPUBackend

    /// - Parameter host: a CPU backend for the float64 work (D x D matrices).
    public init(_ hyper: CorInfoMaxHyperparameters, host: CPUBackend) throws {
        try hyper.validate()
        self.hyper = hyper
        self.host = host
        let d = hyper.dimension
        let identity = (0..<(d * d)).map { $0 % (d + 1) == 0 ? hyper.rInit : 0 }
        covarianceState = [identity, identity]
        meanState = [[Double](repeating: 0, count: d), [Double](repeating: 0, count: d)]
    }

    /// Replaces the state (resuming from a checkpoint).
    public func setState(covariance: [[Double]], mean: [[Double]]) throws {
        let d = hyper.dimension
        guard covariance.count == 2, mean.count == 2,
            covariance.allSatisfy({ $0.count == d * d }), mean.allSatisfy({ $0.count == d })
        else { throw TrainingError.mismatch("loss state does not have D = \(d)") }
        covarianceState = covariance
        meanState = mean
    }

    // MARK: - Three steps

    /// Sufficient statistics of local rows (each [n, D] row-major float32).
    public func statistics(z1: [Float], z2: [Float]) throws -> LossStatistics {
        let d = hyper.dimension
        guard z1.count == z2.count, z1.count % d == 0, !z1.isEmpty else {
            throw BackendError.shapeMismatch(
                "CorInfoMax: views of \(z1.count) and \(z2.count) values for D = \(d)")
        }
        guard z1.allSatisfy({ $0.isFinite }), z2.allSatisfy({ $0.isFinite }) else {
            throw TrainingError.nonFiniteLoss(
                "the embeddings contain NaN or infinity; lower the learning rate or check the data")
        }
        let n = z1.count / d
        var sums: [[Double]] = []
        var outers: [[Double]] = []
        for z in [z1, z2] {
            let rows = z.map(Double.init)
            var sum = [Double](repeating: 0, count: d)
            for i in 0..<n { for j in 0..<d { sum[j] += rows[i * d + j] } }
            // P = Zᵀ Z in float64
            let tz = try host.tensor(rows, shape: [n, d])
            let tp = try host.allocate(.float64, [d, d])
            try host.gemm(tz, transposeA: true, tz, transposeB: false, into: tp, alpha: 1, beta: 0)
            sums.append(sum)
            outers.append(try host.download(tp))
        }
        var invariance = 0.0
        for i in z1.indices {
            let difference = Double(z1[i]) - Double(z2[i])
            invariance += difference * difference
        }
        return LossStatistics(rows: n, sums: sums, outerProducts: outers, invariance: invariance)
    }

    /// Advances the state with the statistics of the whole (global) batch and returns the
    /// loss and what `gradient` needs. The state is left unchanged if this throws.
    public func update(with stats: LossStatistics) throws -> (LossValue, LossGradientContext) {
        let d = hyper.dimension
        let n = Double(stats.rows)
        let (lr, lm) = (hyper.lambdaR, hyper.lambdaMu)
        var newCovariance: [[Double]] = []
        var newMean: [[Double]] = []
        var shifts: [[Double]] = []
        var shifted: [Double] = []   // R_v + εI for both views, [2, D, D]
        for v in 0..<2 {
            let m = stats.sums[v].map { $0 / n }
            let oldMean = meanState[v]
            let mu = (0..<d).map { lm * oldMean[$0] + (1 - lm) * m[$0] }
            let p = stats.outerProducts[v]
            var r = [Double](repeating: 0, count: d * d)
            for i in 0..<d {
                for j in 0..<d {
                    let c = p[i * d + j] / n - mu[i] * m[j] - m[i] * mu[j] + mu[i] * mu[j]
                    r[i * d + j] = lr * covarianceState[v][i * d + j] + (1 - lr) * c
                }
            }
            var a = r
            for i in 0..<d { a[i * d + i] += hyper.epsilon }
            shifted += a
            newCovariance.append(r)
            newMean.append(mu)
            shifts.append((0..<d).map { mu[$0] + lm * (1 - lm) * (m[$0] - oldMean[$0]) })
        }

        // log det and inverse of both R_v + εI by Cholesky
        let ta = try host.tensor(shifted, shape: [2, d, d])
        let tl = try host.allocate(.float64, [2])
        let tg = try host.allocate(.float64, [2, d, d])
        do {
            try host.logdetSPD(ta, logdet: tl, inverse: tg)
        } catch BackendError.notPositiveDefinite(let view, _) {
            throw TrainingError.nonFiniteLoss(
                "the covariance estimate of view \(view + 1) is not positive definite; "
                    + "the embeddings have collapsed or the learning rate is too high")
        }
        let logdets: [Double] = try host.download(tl)
        let inverses: [Double] = try host.download(tg)

        let covariance = -(logdets[0] + logdets[1]) / Double(d)
        let invariance = stats.invariance / (n * Double(d))
        let value = LossValue(
            total: hyper.alpha * invariance + hyper.beta * covariance, invariance: invariance,
            covariance: covariance)
        guard value.total.isFinite else {
            throw TrainingError.nonFiniteLoss("the loss is \(value.total); stopping")
        }
        covarianceState = newCovariance
        meanState = newMean
        let context = LossGradientContext(
            rows: stats.rows, shift: shifts,
            inverse: [Array(inverses[0..<(d * d)]), Array(inverses[(d * d)...])])
        return (value, context)
    }

    /// ∂L/∂z for local rows (float32, the shapes of z1 and z2).
    public func gradient(z1: [Float], z2: [Float], context: LossGradientContext) throws
        -> (dz1: [Float], dz2: [Float])
    {
        let d = hyper.dimension
        let n = z1.count / d
        let scale = 2.0 / (Double(context.rows) * Double(d))
        let covarianceWeight = hyper.beta * (1 - hyper.lambdaR)
        var gradients: [[Float]] = []
        for (v, (z, other)) in [(z1, z2), (z2, z1)].enumerated() {
            // Y = Z − 1 (μ_v + c_v)ᵀ, then Y G_v (G_v symmetric)
            var y = [Double](repeating: 0, count: n * d)
            for i in 0..<n {
                for j in 0..<d { y[i * d + j] = Double(z[i * d + j]) - context.shift[v][j] }
            }
            let ty = try host.tensor(y, shape: [n, d])
            let tg = try host.tensor(context.inverse[v], shape: [d, d])
            let tyg = try host.allocate(.float64, [n, d])
            try host.gemm(ty, transposeA: false, tg, transposeB: false, into: tyg,
                          alpha: 1, beta: 0)
            let yg: [Double] = try host.download(tyg)
            var g = [Float](repeating: 0, count: n * d)
            for k in 0..<(n * d) {
                let pull = hyper.alpha * (Double(z[k]) - Double(other[k]))
                g[k] = Float(scale * (pull - covarianceWeight * yg[k]))
            }
            gradients.append(g)
        }
        return (gradients[0], gradients[1])
    }

    /// One replica: statistics, update and gradient of the whole batch.
    public func callAsFunction(z1: [Float], z2: [Float]) throws
        -> (value: LossValue, dz1: [Float], dz2: [Float])
    {
        let (value, context) = try update(with: statistics(z1: z1, z2: z2))
        let (dz1, dz2) = try gradient(z1: z1, z2: z2, context: context)
        return (value, dz1, dz2)
    }

    /// Eigenvalues (ascending) of each view's covariance state R̄_v, for logging.
    public func stateEigenvalues() throws -> [[Double]] {
        try covarianceState.map { try host.symmetricEigenvalues($0, n: hyper.dimension) }
    }
}
