// Conv2DGradientCheckTests.swift: the convolution backward passes against finite
// differences of the forward pass.
//
// With L = sum(y * g) for a fixed random g, dL/dx = backward data(g, w) and
// dL/dw = backward filter(x, g). Two independent checks of each gradient, at a handful of
// random elements:
//   - central differences of the test's own fp64 forward (NaiveReference.swift) with
//     h = 1e-3. L is linear in each element, so the difference is exact up to fp64
//     rounding and the float32 gradient must agree to ~1e-6 of the gradient's scale.
//     This ties the backward passes to the forward definition rather than to the naive
//     backward loops.
//   - central differences of the fast float32 forward with h ~ 1e-2, which agree only to
//     ~1e-2 (float32 rounding over 2h), but check that the fast forward and the fast
//     backward passes describe the same function, with Winograd forced on and off.

import Backend
import TestSupport
import XCTest

final class Conv2DGradientCheckTests: XCTestCase {
    /// A geometry, its random data and the gradients the backend computes for it.
    private struct Problem {
        let geometry: Conv2DGeometry
        let x: [Float], w: [Float], g: [Float]
        let dx: [Double], dw: [Double]
    }

    private func makeProblem(_ geometry: Conv2DGeometry, seed: UInt64, backend: CPUBackend)
        throws -> Problem
    {
        var rng = SplitMix64(seed: seed)
        let x = rng.floats(geometry.inputShape.reduce(1, *))
        let w = rng.floats(geometry.weightShape.reduce(1, *))
        let g = rng.floats(geometry.outputShape.reduce(1, *))
        let tx = try backend.tensor(x, shape: geometry.inputShape)
        let tw = try backend.tensor(w, shape: geometry.weightShape)
        let tg = try backend.tensor(g, shape: geometry.outputShape)
        let tdx = try backend.allocate(.float32, geometry.inputShape)
        let tdw = try backend.allocate(.float32, geometry.weightShape)
        try backend.conv2dBackwardData(
            outputGradient: tg, weight: tw, inputGradient: tdx, geometry: geometry)
        try backend.conv2dBackwardFilter(
            input: tx, outputGradient: tg, weightGradient: tdw, geometry: geometry,
            accumulate: false)
        let dx: [Float] = try backend.download(tdx)
        let dw: [Float] = try backend.download(tdw)
        return Problem(
            geometry: geometry, x: x, w: w, g: g, dx: dx.map(Double.init),
            dw: dw.map(Double.init))
    }

    /// L = sum(y * g) with y from the naive fp64 forward.
    private func lossReference(_ p: Problem, x: [Double], w: [Double]) -> Double {
        let y = Naive.conv2dForward(p.geometry, x: x, w: w).values
        return zip(y, p.g).reduce(0) { $0 + $1.0 * Double($1.1) }
    }

    /// L = sum(y * g) with y from the backend's float32 forward, summed in double.
    private func lossFast(_ p: Problem, x: [Float], w: [Float], backend: CPUBackend) throws
        -> Double
    {
        let ty = try backend.allocate(.float32, p.geometry.outputShape)
        try backend.conv2dForward(
            input: backend.tensor(x, shape: p.geometry.inputShape),
            weight: backend.tensor(w, shape: p.geometry.weightShape), output: ty,
            geometry: p.geometry)
        let y: [Float] = try backend.download(ty)
        return zip(y, p.g).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Checks `samples` random elements of dx and of dw against both kinds of differences.
    private func checkGradients(
        _ geometry: Conv2DGeometry, seed: UInt64, samples: Int,
        algorithm: ConvolutionAlgorithm = .auto, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let backend = try CPUBackend(threads: 2, convolution: algorithm)
        let p = try makeProblem(geometry, seed: seed, backend: backend)
        var rng = SplitMix64(seed: seed ^ 0xFD)
        let xd = p.x.map(Double.init), wd = p.w.map(Double.init)
        let h = 1e-3, hFast: Float = 1e-2
        // Gradients are compared on the scale of their largest element.
        let dxScale = maxAbsolute(p.dx), dwScale = maxAbsolute(p.dw)
        XCTAssertGreaterThan(dxScale, 0, file: file, line: line)
        XCTAssertGreaterThan(dwScale, 0, file: file, line: line)

        var exact: [(label: String, analytic: Double, numeric: Double, scale: Double)] = []
        var loose = exact
        for i in rng.distinctIndices(samples, below: p.x.count) {
            var plus = xd, minus = xd
            plus[i] += h
            minus[i] -= h
            let numeric = (lossReference(p, x: plus, w: wd) - lossReference(p, x: minus, w: wd))
                / (2 * h)
            exact.append(("dx[\(i)]", p.dx[i], numeric, dxScale))

            var plusF = p.x, minusF = p.x
            plusF[i] += hFast
            minusF[i] -= hFast
            let step = Double(plusF[i]) - Double(minusF[i])
            let numericFast = try (lossFast(p, x: plusF, w: p.w, backend: backend)
                - lossFast(p, x: minusF, w: p.w, backend: backend)) / step
            loose.append(("dx[\(i)]", p.dx[i], numericFast, dxScale))
        }
        for i in rng.distinctIndices(samples, below: p.w.count) {
            var plus = wd, minus = wd
            plus[i] += h
            minus[i] -= h
            let numeric = (lossReference(p, x: xd, w: plus) - lossReference(p, x: xd, w: minus))
                / (2 * h)
            exact.append(("dw[\(i)]", p.dw[i], numeric, dwScale))

            var plusF = p.w, minusF = p.w
            plusF[i] += hFast
            minusF[i] -= hFast
            let step = Double(plusF[i]) - Double(minusF[i])
            let numericFast = try (lossFast(p, x: p.x, w: plusF, backend: backend)
                - lossFast(p, x: p.x, w: minusF, backend: backend)) / step
            loose.append(("dw[\(i)]", p.dw[i], numericFast, dwScale))
        }

        for (label, analytic, numeric, scale) in exact {
            assertClose(
                [analytic], [numeric], scale: [scale], rtol: 1e-6,
                "\(label) vs fp64 central difference, \(geometry) \(algorithm)",
                file: file, line: line)
        }
        for (label, analytic, numeric, scale) in loose {
            assertClose(
                [analytic], [numeric], scale: [scale], rtol: 1e-2,
                "\(label) vs float32 central difference, \(geometry) \(algorithm)",
                file: file, line: line)
        }
        let worstExact = exact.map { abs($0.analytic - $0.numeric) / $0.scale }.max() ?? 0
        let worstLoose = loose.map { abs($0.analytic - $0.numeric) / $0.scale }.max() ?? 0
        let label = "[\(geometry)] \(algorithm)"
        print("tensor dx,dw vs fp64 FD \(label) max rel diff \(scientific(worstExact))")
        print("tensor dx,dw vs fp32 FD \(label) max rel diff \(scientific(worstLoose))")
    }

    func testStride2Padded3x3GroupedImages() throws {
        // 4x5 outputs: both images go through one GEMM.
        try checkGradients(
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 4, kernel: 3,
                stride: 2, padding: 1),
            seed: 201, samples: 6)
    }

    func testKernel7x7Pad3SingleImage() throws {
        try checkGradients(
            Conv2DGeometry(
                batch: 1, inChannels: 2, inHeight: 7, inWidth: 9, outChannels: 3, kernel: 7,
                stride: 1, padding: 3),
            seed: 202, samples: 6)
    }

    func testWinograd3x3Stride1() throws {
        // Forward and backward data both through Winograd F(2x2, 3x3), odd output sizes.
        for algorithm in [ConvolutionAlgorithm.winograd, .im2col] {
            try checkGradients(
                Conv2DGeometry(
                    batch: 2, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 4,
                    kernel: 3, stride: 1, padding: 1),
                seed: 204, samples: 6, algorithm: algorithm)
        }
    }

    func testPointwiseStride2NonSquare() throws {
        try checkGradients(
            Conv2DGeometry(
                batch: 3, inChannels: 4, inHeight: 5, inWidth: 8, outChannels: 3,
                kernel: (1, 1), stride: (2, 2), padding: (0, 0)),
            seed: 203, samples: 6)
    }
}
