// Reference.swift: the plain CKernels references, over host arrays, for tests and
// `cim-train bench`.
//
// Each check computes chosen output elements again in double, straight from the definition,
// and reports the worst error relative to the element's magnitude (the sum of the absolute
// values of its products, the scale rounding errors grow with). Large outputs are checked
// at sampled positions, so that a bench case at GEMM 2048 is verified in milliseconds.

import CKernels

/// Plain implementations used as the oracle for every fast path.
public enum Reference {
    /// Worst |fast − reference| / max(magnitude, tiny) over the sampled elements of a GEMM
    /// `c = alpha op(a) op(b) + beta cIn`, all row-major and tightly packed.
    public static func gemmError<T: TensorScalar>(
        a: [T], transposeA: Bool, b: [T], transposeB: Bool, cIn: [T], c: [T],
        m: Int, n: Int, k: Int, alpha: Double, beta: Double, samples: [(Int, Int)]
    ) -> Double {
        let ta = transposeA ? CIM_TRANSPOSE : CIM_NO_TRANSPOSE
        let tb = transposeB ? CIM_TRANSPOSE : CIM_NO_TRANSPOSE
        let lda = Int32(transposeA ? m : k), ldb = Int32(transposeB ? k : n)
        var worst = 0.0
        for (i, j) in samples {
            var magnitude = 0.0
            let expected: Double
            if let a = a as? [Float], let b = b as? [Float], let cIn = cIn as? [Float] {
                expected = cim_reference_gemm_f32_element(
                    ta, tb, Int32(k), Float(alpha), a, lda, b, ldb, Float(beta), cIn,
                    Int32(n), Int32(i), Int32(j), &magnitude)
            } else {
                expected = cim_reference_gemm_f64_element(
                    ta, tb, Int32(k), alpha, a as! [Double], lda, b as! [Double], ldb, beta,
                    cIn as! [Double], Int32(n), Int32(i), Int32(j), &magnitude)
            }
            worst = max(worst, relativeError(Double(c[i * n + j]), expected, magnitude))
        }
        return worst
    }

    /// Worst relative error of a convolution forward output at the sampled (n, k, p, q).
    public static func conv2dForwardError(
        _ g: Conv2DGeometry, x: [Float], w: [Float], y: [Float], samples: [[Int]]
    ) -> Double {
        var shape = cim_conv2d_shape(g)
        var worst = 0.0
        for s in samples {
            var magnitude = 0.0
            let expected = cim_reference_conv2d_forward_element(
                &shape, x, w, Int32(s[0]), Int32(s[1]), Int32(s[2]), Int32(s[3]), &magnitude)
            let index = ((s[0] * g.outChannels + s[1]) * g.outHeight + s[2]) * g.outWidth + s[3]
            worst = max(worst, relativeError(Double(y[index]), expected, magnitude))
        }
        return worst
    }

    /// Worst relative error of a backward-data result at the sampled (n, c, h, w).
    public static func conv2dBackwardDataError(
        _ g: Conv2DGeometry, dy: [Float], w: [Float], dx: [Float], samples: [[Int]]
    ) -> Double {
        var shape = cim_conv2d_shape(g)
        var worst = 0.0
        for s in samples {
            var magnitude = 0.0
            let expected = cim_reference_conv2d_backward_data_element(
                &shape, dy, w, Int32(s[0]), Int32(s[1]), Int32(s[2]), Int32(s[3]), &magnitude)
            let index = ((s[0] * g.inChannels + s[1]) * g.inHeight + s[2]) * g.inWidth + s[3]
            worst = max(worst, relativeError(Double(dx[index]), expected, magnitude))
        }
        return worst
    }

    /// Worst relative error of a backward-filter result at the sampled (k, c, r, s).
    public static func conv2dBackwardFilterError(
        _ g: Conv2DGeometry, x: [Float], dy: [Float], dw: [Float], samples: [[Int]]
    ) -> Double {
        var shape = cim_conv2d_shape(g)
        var worst = 0.0
        for s in samples {
            var magnitude = 0.0
            let expected = cim_reference_conv2d_backward_filter_element(
                &shape, x, dy, Int32(s[0]), Int32(s[1]), Int32(s[2]), Int32(s[3]), &magnitude)
            let index =
                ((s[0] * g.inChannels + s[1]) * g.kernelHeight + s[2]) * g.kernelWidth + s[3]
            worst = max(worst, relativeError(Double(dw[index]), expected, magnitude))
        }
        return worst
    }

    /// Log-determinant of one SPD matrix by textbook Cholesky, and its factor L (row-major,
    /// lower). Throws ``BackendError/notPositiveDefinite(batchIndex:message:)`` (index 0).
    public static func choleskyLogdet(_ a: [Double], n: Int)
        throws -> (logdet: Double, factor: [Double])
    {
        precondition(a.count == n * n, "expected \(n * n) values")
        var factor = [Double](repeating: 0, count: n * n)
        var logdet = 0.0
        try cimCheck(cim_reference_cholesky_logdet_f64(Int32(n), a, &factor, &logdet),
                     failedIndex: 0)
        return (logdet, factor)
    }

    /// `|value − expected| / max(magnitude, |expected|, tiny)`.
    public static func relativeError(_ value: Double, _ expected: Double, _ magnitude: Double)
        -> Double
    {
        let scale = max(magnitude, abs(expected), Double.leastNormalMagnitude)
        if value.isNaN || expected.isNaN { return .infinity }
        return abs(value - expected) / scale
    }
}
