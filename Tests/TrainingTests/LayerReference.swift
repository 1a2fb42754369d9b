// LayerReference.swift: plain float64 forwards of every layer, written from the PyTorch
// definitions (SPEC 1) without looking at the kernels, as the oracle for the layers'
// forward passes and as a float64 function to differentiate numerically.
//
// Tensors are row-major arrays with NCHW (or [N, C]) layout.

import Foundation

enum LayerReference {
    /// torch.nn.functional.conv2d without bias: x [N, C, H, W], w [K, C, R, R].
    static func conv2d(
        _ x: [Double], _ shape: [Int], _ w: [Double], outChannels k: Int, kernel r: Int,
        stride: Int, padding: Int
    ) -> (values: [Double], shape: [Int]) {
        let (n, c, h, wd) = (shape[0], shape[1], shape[2], shape[3])
        let p = (h + 2 * padding - r) / stride + 1
        let q = (wd + 2 * padding - r) / stride + 1
        var y = [Double](repeating: 0, count: n * k * p * q)
        for b in 0..<n {
            for o in 0..<k {
                for i in 0..<p {
                    for j in 0..<q {
                        var sum = 0.0
                        for ci in 0..<c {
                            for u in 0..<r {
                                let row = i * stride - padding + u
                                if row < 0 || row >= h { continue }
                                for v in 0..<r {
                                    let col = j * stride - padding + v
                                    if col < 0 || col >= wd { continue }
                                    sum += w[((o * c + ci) * r + u) * r + v]
                                        * x[((b * c + ci) * h + row) * wd + col]
                                }
                            }
                        }
                        y[((b * k + o) * p + i) * q + j] = sum
                    }
                }
            }
        }
        return (y, [n, k, p, q])
    }

    /// Batch norm over dimension 1 of [N, C, L...] with given mean and variance per channel.
    static func normalize(
        _ x: [Double], n: Int, c: Int, l: Int, mean: [Double], variance: [Double],
        gamma: [Double], beta: [Double], epsilon: Double
    ) -> [Double] {
        var y = x
        for b in 0..<n {
            for ch in 0..<c {
                let inv = 1 / (variance[ch] + epsilon).squareRoot()
                for i in 0..<l {
                    let k = (b * c + ch) * l + i
                    y[k] = gamma[ch] * (x[k] - mean[ch]) * inv + beta[ch]
                }
            }
        }
        return y
    }

    /// Per-channel batch mean and biased variance of [N, C, L...].
    static func channelStatistics(_ x: [Double], n: Int, c: Int, l: Int)
        -> (mean: [Double], variance: [Double])
    {
        let m = Double(n * l)
        var mean = [Double](repeating: 0, count: c)
        var variance = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            for b in 0..<n { for i in 0..<l { mean[ch] += x[(b * c + ch) * l + i] } }
            mean[ch] /= m
            for b in 0..<n {
                for i in 0..<l {
                    let d = x[(b * c + ch) * l + i] - mean[ch]
                    variance[ch] += d * d
                }
            }
            variance[ch] /= m
        }
        return (mean, variance)
    }

    /// Training-mode batch norm: the output and the running statistics after the update
    /// (PyTorch: new = (1 − momentum) old + momentum batch, with the unbiased variance).
    static func batchNormTrain(
        _ x: [Double], n: Int, c: Int, l: Int, gamma: [Double], beta: [Double],
        runningMean: [Double], runningVar: [Double], momentum: Double = 0.1,
        epsilon: Double = 1e-5
    ) -> (output: [Double], runningMean: [Double], runningVar: [Double]) {
        let (mean, variance) = channelStatistics(x, n: n, c: c, l: l)
        let m = Double(n * l)
        let y = normalize(x, n: n, c: c, l: l, mean: mean, variance: variance, gamma: gamma,
                          beta: beta, epsilon: epsilon)
        let newMean = (0..<c).map { (1 - momentum) * runningMean[$0] + momentum * mean[$0] }
        let newVar = (0..<c).map {
            (1 - momentum) * runningVar[$0] + momentum * variance[$0] * m / (m - 1)
        }
        return (y, newMean, newVar)
    }

    static func relu(_ x: [Double]) -> [Double] { x.map { max($0, 0) } }

    /// x [N, in] Wᵀ + b, W [out, in].
    static func linear(_ x: [Double], rows: Int, _ w: [Double], outFeatures: Int,
                       bias: [Double]?) -> [Double] {
        let inFeatures = x.count / rows
        var y = [Double](repeating: 0, count: rows * outFeatures)
        for i in 0..<rows {
            for o in 0..<outFeatures {
                var sum = bias?[o] ?? 0
                for k in 0..<inFeatures { sum += x[i * inFeatures + k] * w[o * inFeatures + k] }
                y[i * outFeatures + o] = sum
            }
        }
        return y
    }

    /// Mean over each plane: [N, C, L] -> [N, C].
    static func globalAveragePool(_ x: [Double], planes: Int) -> [Double] {
        let l = x.count / planes
        return (0..<planes).map { p in x[(p * l)..<((p + 1) * l)].reduce(0, +) / Double(l) }
    }

    /// Max pooling with −∞ padding: [N, C, H, W] -> [N, C, P, Q].
    static func maxPool2d(_ x: [Double], _ shape: [Int], kernel: Int, stride: Int,
                          padding: Int) -> (values: [Double], shape: [Int]) {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let p = (h + 2 * padding - kernel) / stride + 1
        let q = (w + 2 * padding - kernel) / stride + 1
        var y = [Double](repeating: 0, count: n * c * p * q)
        for plane in 0..<(n * c) {
            for i in 0..<p {
                for j in 0..<q {
                    var best = -Double.infinity
                    for u in 0..<kernel {
                        for v in 0..<kernel {
                            let row = i * stride - padding + u, col = j * stride - padding + v
                            if row < 0 || row >= h || col < 0 || col >= w { continue }
                            best = max(best, x[(plane * h + row) * w + col])
                        }
                    }
                    y[(plane * p + i) * q + j] = best
                }
            }
        }
        return (y, [n, c, p, q])
    }

    /// Rows divided by max(‖row‖, epsilon), as torch.nn.functional.normalize.
    static func l2Normalize(_ x: [Double], rows: Int, epsilon: Double = 1e-12) -> [Double] {
        let d = x.count / rows
        var y = x
        for i in 0..<rows {
            let row = x[(i * d)..<((i + 1) * d)]
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for j in 0..<d { y[i * d + j] = x[i * d + j] / max(norm, epsilon) }
        }
        return y
    }
}
