// NaiveReference.swift: the tests' own oracles, in plain fp64 loops straight from the
// definitions, independent of the C references in CKernels.
//
// GEMM is the textbook triple loop. Convolution is one 7-deep loop over
// (n, k, p, q, c, r, s) for all three passes: forward gathers y[n,k,p,q], backward data
// scatters w * dy into dx, backward filter scatters x * dy into dw, so the backward
// references are not derived from the forward one by the same index algebra as the C code.
// Each also returns the per-element magnitude (sum of |terms|) that rounding errors scale
// with. Swift test code is built without optimisation, so callers keep sizes small.

import Backend

/// The result of a reference computation and the sum of |terms| behind each element.
struct ReferenceResult {
    var values: [Double]
    var magnitudes: [Double]
}

enum Naive {
    /// `alpha op(a) op(b) + beta c` for row-major, tightly packed a, b and c.
    static func gemm(
        _ a: [Double], transposeA: Bool, _ b: [Double], transposeB: Bool, c: [Double],
        m: Int, n: Int, k: Int, alpha: Double, beta: Double
    ) -> ReferenceResult {
        var values = [Double](repeating: 0, count: m * n)
        var magnitudes = values
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let aip = transposeA ? a[p * m + i] : a[i * k + p]
                    let bpj = transposeB ? b[j * k + p] : b[p * n + j]
                    sum += aip * bpj
                    magnitude += abs(aip * bpj)
                }
                values[i * n + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * n + j])
                magnitudes[i * n + j] =
                    abs(alpha) * magnitude + (beta == 0 ? 0 : abs(beta * c[i * n + j]))
            }
        }
        return ReferenceResult(values: values, magnitudes: magnitudes)
    }

    /// Visits every (n, k, p, q, c, r, s) whose input tap lies inside the image, with the
    /// flat indices of x, w and y.
    private static func forEachTap(
        _ g: Conv2DGeometry, _ body: (_ xi: Int, _ wi: Int, _ yi: Int) -> Void
    ) {
        let (P, Q) = (g.outHeight, g.outWidth)
        for n in 0..<g.batch {
            for k in 0..<g.outChannels {
                for p in 0..<P {
                    for q in 0..<Q {
                        let yi = ((n * g.outChannels + k) * P + p) * Q + q
                        for c in 0..<g.inChannels {
                            for r in 0..<g.kernelHeight {
                                let h = p * g.strideHeight - g.padHeight + r
                                if h < 0 || h >= g.inHeight { continue }
                                for s in 0..<g.kernelWidth {
                                    let v = q * g.strideWidth - g.padWidth + s
                                    if v < 0 || v >= g.inWidth { continue }
                                    let xi = ((n * g.inChannels + c) * g.inHeight + h)
                                        * g.inWidth + v
                                    let wi = ((k * g.inChannels + c) * g.kernelHeight + r)
                                        * g.kernelWidth + s
                                    body(xi, wi, yi)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    static func conv2dForward(_ g: Conv2DGeometry, x: [Double], w: [Double])
        -> ReferenceResult
    {
        var y = [Double](repeating: 0, count: g.outputShape.reduce(1, *))
        var magnitudes = y
        forEachTap(g) { xi, wi, yi in
            let term = x[xi] * w[wi]
            y[yi] += term
            magnitudes[yi] += abs(term)
        }
        return ReferenceResult(values: y, magnitudes: magnitudes)
    }

    static func conv2dBackwardData(_ g: Conv2DGeometry, dy: [Double], w: [Double])
        -> ReferenceResult
    {
        var dx = [Double](repeating: 0, count: g.inputShape.reduce(1, *))
        var magnitudes = dx
        forEachTap(g) { xi, wi, yi in
            let term = w[wi] * dy[yi]
            dx[xi] += term
            magnitudes[xi] += abs(term)
        }
        return ReferenceResult(values: dx, magnitudes: magnitudes)
    }

    static func conv2dBackwardFilter(_ g: Conv2DGeometry, x: [Double], dy: [Double])
        -> ReferenceResult
    {
        var dw = [Double](repeating: 0, count: g.weightShape.reduce(1, *))
        var magnitudes = dw
        forEachTap(g) { xi, wi, yi in
            let term = x[xi] * dy[yi]
            dw[wi] += term
            magnitudes[wi] += abs(term)
        }
        return ReferenceResult(values: dw, magnitudes: magnitudes)
    }
}
