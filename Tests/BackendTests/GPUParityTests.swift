// GPUParityTests.swift: every op of the Backend protocol on each GPU backend here (OpenCL,
// CUDA) against the CPU backend, on seeded random inputs of awkward sizes.
//
// Sizes are chosen to miss every blocking: 1s, primes, a size one past a 64-wide tile,
// single rows and columns, k = 1 and k = 0 (C = beta C), batch-norm planes of one element,
// a log-det that crosses the 64-wide Cholesky blocks. GEMM-shaped work (GEMM, convolution,
// log-det) runs under every GEMM engine: on OpenCL the tiled kernel shared with CUDA and the
// CPU fast path, on CUDA cuBLAS and the tiled kernel; convolution also with a scratch limit
// that forces one image per pass.
//
// Tolerances: sums (GEMM, convolution) 1e-5 of the magnitude |alpha| sum |a b| + |beta c|,
// or of the tensor's largest value where no magnitude is at hand; float64 1e-12; reductions
// the kernels compute in another order 2e-6 of the tensor's largest value, batch norm 1e-5
// (float statistics against the CPU's double ones); element-wise ops 1e-6; max pooling and
// ReLU exactly, argmax included. Each comparison prints one "tensor ... max
// rel diff" line. CI runs them on PoCL (OpenCL on the CPU); scripts/gpu_check.sh runs them
// on an NVIDIA GPU. Without any GPU backend every test skips, saying why.

import Backend
import TestSupport
import XCTest

final class GPUParityTests: XCTestCase {
    private var cpu: CPUBackend!

    override func setUpWithError() throws {
        cpu = try CPUBackend(threads: 2)
    }

    /// Every GEMM engine of every GPU backend here.
    private func backends() throws -> [(String, GPUBackend)] {
        try gpuBackendsOrSkip(everyGemmEngine: true)
    }

    // MARK: - Helpers

    /// Compares two tensors element by element against |expected| max over the tensor.
    private func compare<T: TensorScalar>(
        _ label: String, _ actual: [T], _ expected: [T], rtol: Double,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let a = actual.map(Double.init), e = expected.map(Double.init)
        let scale = [Double](repeating: max(maxAbsolute(e), 1e-30), count: e.count)
        reportDifference(label, a, e, scale: scale)
        assertClose(a, e, scale: scale, rtol: rtol, label, file: file, line: line)
    }

    /// The same values on both backends.
    private func pair<T: TensorScalar>(_ values: [T], _ shape: [Int], _ backend: Backend)
        throws -> (Tensor, Tensor)
    {
        (try cpu.tensor(values, shape: shape), try backend.tensor(values, shape: shape))
    }

    /// Uninitialised tensors of one shape on both backends.
    private func allocatePair(_ dtype: DType, _ shape: [Int], _ backend: Backend) throws
        -> (Tensor, Tensor)
    {
        (try cpu.allocate(dtype, shape), try backend.allocate(dtype, shape))
    }

    private func floats(_ tensor: Tensor, _ backend: Backend) throws -> [Float] {
        try backend.download(tensor)
    }

    // MARK: - Memory

    func testMemoryRoundTripCopyAndFill() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            var rng = SplitMix64(seed: 0x0C1_0001)
            let values = rng.floats(1001)
            let a = try backend.tensor(values, shape: [7, 11, 13])
            XCTAssertEqual(try backend.download(a) as [Float], values)
            let doubles = rng.doubles(37)
            let d = try backend.tensor(doubles, shape: [37])
            XCTAssertEqual(try backend.download(d) as [Double], doubles)

            let b = try backend.allocate(.float32, [1001])
            try backend.copy(a, to: b)
            XCTAssertEqual(try backend.download(b) as [Float], values)

            try backend.fill(b, value: -2.5)
            XCTAssertEqual(try backend.download(b) as [Float],
                           [Float](repeating: -2.5, count: 1001))
            try backend.fill(d, value: 0.1)
            XCTAssertEqual(try backend.download(d) as [Double], [Double](repeating: 0.1, count: 37))
            let indices = try backend.allocate(.int32, [5])
            try backend.fill(indices, value: 7)
            var raw = [Int32](repeating: 0, count: 5)
            try raw.withUnsafeMutableBytes { try backend.download(indices, into: $0) }
            XCTAssertEqual(raw, [7, 7, 7, 7, 7])

            // empty tensors move nothing and run nothing
            let empty = try backend.zeros(.float32, [0, 3])
            XCTAssertEqual(try backend.download(empty) as [Float], [])
            try backend.relu(empty, output: empty)
            try backend.synchronize()
        }
    }

    func testRecycledBuffersKeepQueueOrder() throws {
        // a freed buffer is reused at once for the next tensor of its size; the queue's
        // order must keep the old and the new contents apart
        for (_, backend) in try gpuBackendsOrSkip() {
            var results: [[Float]] = []
            for round in 0..<20 {
                let x = try backend.tensor([Float](repeating: Float(round), count: 4096),
                                           shape: [4096])
                let y = try backend.allocate(.float32, [4096])
                try backend.scale(x, by: 2)
                try backend.add(x, x, output: y)
                results.append(try backend.download(y))
            }
            for (round, values) in results.enumerated() {
                XCTAssertEqual(values, [Float](repeating: Float(4 * round), count: 4096),
                               "round \(round)")
            }
        }
    }

    // MARK: - GEMM

    static let gemmSizes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (7, 13, 5), (33, 1, 17), (64, 31, 129), (65, 67, 70), (1, 40, 9),
        (12, 17, 1), (100, 37, 300), (5, 7, 0), (0, 3, 4),
    ]
    static let scalings: [(alpha: Double, beta: Double)] = [(1, 0), (1.5, -0.75), (-0.5, 1)]

    private func checkGemm<T: TensorScalar>(_ type: T.Type, seed: UInt64, rtol: Double) throws {
        for (name, backend) in try backends() {
            if T.self == Double.self && !backend.supportsFloat64 { continue }
            var rng = SplitMix64(seed: seed)
            var worst = 0.0
            for (m, n, k) in Self.gemmSizes {
                for (transposeA, transposeB) in [(false, false), (false, true), (true, false),
                                                 (true, true)] {
                    for (alpha, beta) in Self.scalings {
                        let a: [T] = rng.uniformArray(m * k)
                        let b: [T] = rng.uniformArray(k * n)
                        let cIn: [T] = beta == 0
                            ? [T](repeating: .nan, count: m * n) : rng.uniformArray(m * n)
                        let shapeA = transposeA ? [k, m] : [m, k]
                        let shapeB = transposeB ? [n, k] : [k, n]
                        let (ca, ga) = try pair(a, shapeA, backend)
                        let (cb, gb) = try pair(b, shapeB, backend)
                        let (cc, gc) = try pair(cIn, [m, n], backend)
                        try cpu.gemm(ca, transposeA: transposeA, cb, transposeB: transposeB,
                                     into: cc, alpha: alpha, beta: beta)
                        try backend.gemm(ga, transposeA: transposeA, gb, transposeB: transposeB,
                                         into: gc, alpha: alpha, beta: beta)
                        let expected: [T] = try cpu.download(cc)
                        let actual: [T] = try backend.download(gc)
                        let magnitude = Naive.gemm(
                            a.map(Double.init), transposeA: transposeA, b.map(Double.init),
                            transposeB: transposeB, c: cIn.map(Double.init), m: m, n: n, k: k,
                            alpha: alpha, beta: beta).magnitudes
                        let label = "\(name) \(T.self) gemm m\(m) n\(n) k\(k) "
                            + "\(transposeA ? "T" : "N")\(transposeB ? "T" : "N") "
                            + "alpha \(alpha) beta \(beta)"
                        assertClose(actual.map(Double.init), expected.map(Double.init),
                                    scale: magnitude, rtol: rtol, label)
                        worst = max(worst, maxRelativeDifference(
                            actual.map(Double.init), expected.map(Double.init), scale: magnitude))
                    }
                }
            }
            print("tensor opencl \(name) \(T.self) gemm (all cases) max rel diff "
                  + scientific(worst))
        }
    }

    func testGemmFloat32MatchesCPU() throws {
        try checkGemm(Float.self, seed: 0x0C1_6E33, rtol: 1e-5)
    }

    func testGemmFloat64MatchesCPU() throws {
        try checkGemm(Double.self, seed: 0x0C1_6E64, rtol: 1e-12)
    }

    // MARK: - Convolution

    static let geometries: [Conv2DGeometry] = [
        Conv2DGeometry(batch: 2, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5,
                       kernel: 3, stride: 1, padding: 1),
        Conv2DGeometry(batch: 3, inChannels: 4, inHeight: 8, inWidth: 8, outChannels: 6,
                       kernel: 3, stride: 2, padding: 1),
        Conv2DGeometry(batch: 2, inChannels: 5, inHeight: 6, inWidth: 5, outChannels: 4,
                       kernel: 1, stride: 1, padding: 0),
        Conv2DGeometry(batch: 3, inChannels: 6, inHeight: 7, inWidth: 7, outChannels: 8,
                       kernel: 1, stride: 2, padding: 0),
        Conv2DGeometry(batch: 2, inChannels: 3, inHeight: 9, inWidth: 7, outChannels: 2,
                       kernel: (3, 2), stride: (2, 1), padding: (0, 1)),
        Conv2DGeometry(batch: 1, inChannels: 2, inHeight: 5, inWidth: 5, outChannels: 3,
                       kernel: 5, stride: 1, padding: 2),
        Conv2DGeometry(batch: 2, inChannels: 3, inHeight: 15, inWidth: 13, outChannels: 4,
                       kernel: 7, stride: 2, padding: 3),
        Conv2DGeometry(batch: 5, inChannels: 17, inHeight: 4, inWidth: 4, outChannels: 66,
                       kernel: 3, stride: 1, padding: 1),
    ]

    func testConvolutionMatchesCPU() throws {
        var rng = SplitMix64(seed: 0x0C1_C0F)
        for (name, backend) in try backends() {
            for onePerPass in [false, true] {
                // one image per pass makes several passes through the scratch matrices
                try backend.setConvolutionScratchLimit(bytes: onePerPass ? 1 : 128 << 20)
                for g in Self.geometries {
                    let label = "\(name)\(onePerPass ? " 1/pass" : "") conv \(g)"
                    let x = rng.floats(g.inputShape.reduce(1, *))
                    let w = rng.floats(g.weightShape.reduce(1, *))
                    let dy = rng.floats(g.outputShape.reduce(1, *))
                    let dwIn = rng.floats(w.count)
                    let (cx, gx) = try pair(x, g.inputShape, backend)
                    let (cw, gw) = try pair(w, g.weightShape, backend)
                    let (cdy, gdy) = try pair(dy, g.outputShape, backend)

                    let (cy, gy) = try allocatePair(.float32, g.outputShape, backend)
                    try cpu.conv2dForward(input: cx, weight: cw, output: cy, geometry: g)
                    try backend.conv2dForward(input: gx, weight: gw, output: gy, geometry: g)
                    compare(label + " fwd", try floats(gy, backend), try floats(cy, cpu),
                            rtol: 1e-5)

                    let (cdx, gdx) = try allocatePair(.float32, g.inputShape, backend)
                    try cpu.conv2dBackwardData(
                        outputGradient: cdy, weight: cw, inputGradient: cdx, geometry: g)
                    try backend.conv2dBackwardData(
                        outputGradient: gdy, weight: gw, inputGradient: gdx, geometry: g)
                    compare(label + " bwd data", try floats(gdx, backend), try floats(cdx, cpu),
                            rtol: 1e-5)

                    for accumulate in [false, true] {
                        let (cdw, gdw) = try pair(dwIn, g.weightShape, backend)
                        try cpu.conv2dBackwardFilter(
                            input: cx, outputGradient: cdy, weightGradient: cdw, geometry: g,
                            accumulate: accumulate)
                        try backend.conv2dBackwardFilter(
                            input: gx, outputGradient: gdy, weightGradient: gdw, geometry: g,
                            accumulate: accumulate)
                        compare(label + " bwd filter\(accumulate ? " +=" : "")",
                                try floats(gdw, backend), try floats(cdw, cpu), rtol: 1e-5)
                    }
                }
            }
        }
    }

    // MARK: - Log-determinant

    func testLogdetMatchesCPU() throws {
        var rng = SplitMix64(seed: 0x0C1_10D)
        for (name, backend) in try backends() {
            guard backend.supportsFloat64 else { continue }
            for n in [1, 3, 64, 65, 130] {
                let batch = 3
                let matrices = (0..<batch).flatMap { _ in rng.spdMatrix(n) }
                let (ca, ga) = try pair(matrices, [batch, n, n], backend)
                for withInverse in [false, true] {
                    let (cl, gl) = try allocatePair(.float64, [batch], backend)
                    let ci = withInverse ? try cpu.allocate(.float64, [batch, n, n]) : nil
                    let gi = withInverse ? try backend.allocate(.float64, [batch, n, n]) : nil
                    try cpu.logdetSPD(ca, logdet: cl, inverse: ci)
                    try backend.logdetSPD(ga, logdet: gl, inverse: gi)
                    let label = "\(name) logdet B\(batch) n\(n)"
                    compare(label, try backend.download(gl) as [Double],
                            try cpu.download(cl) as [Double], rtol: 1e-12)
                    if let ci, let gi {
                        let inverse: [Double] = try backend.download(gi)
                        compare(label + " inverse", inverse, try cpu.download(ci) as [Double],
                                rtol: 1e-11)
                        // exactly symmetric, as the CPU's mirrored triangle is
                        for b in 0..<batch {
                            for i in 0..<n {
                                for j in 0..<i where inverse[b * n * n + i * n + j]
                                    != inverse[b * n * n + j * n + i] {
                                    XCTFail("\(label): inverse not symmetric at (\(i), \(j))")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func testLogdetNamesTheMatrixThatIsNotPositiveDefinite() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            guard backend.supportsFloat64 else { throw XCTSkip("the device has no fp64") }
            var rng = SplitMix64(seed: 0x0C1_BAD)
            let n = 70   // the failure sits in the second Cholesky block for two of the cases
            var notPD = rng.spdMatrix(n)
            notPD[66 * n + 66] = -1
            var withNaN = rng.spdMatrix(n)
            withNaN[68 * n + 3] = .nan
            var withInfinity = rng.spdMatrix(n)
            withInfinity[5 * n + 2] = .infinity
            let cases = [("negative pivot", notPD), ("NaN", withNaN), ("infinity", withInfinity)]
            for (label, bad) in cases {
                for badIndex in [0, 2] {
                    let matrices = (0..<3).flatMap { $0 == badIndex ? bad : rng.spdMatrix(n) }
                    let a = try backend.tensor(matrices, shape: [3, n, n])
                    let logdet = try backend.tensor([Double](repeating: 7, count: 3), shape: [3])
                    let inverse = try backend.tensor(
                        [Double](repeating: 7, count: 3 * n * n), shape: [3, n, n])
                    let error = assertThrowsBackendError(
                        "\(backend.deviceName) logdet, \(label) in matrix \(badIndex)",
                        { try backend.logdetSPD(a, logdet: logdet, inverse: inverse) },
                        where: { $0.notPositiveDefiniteIndex != nil })
                    XCTAssertEqual(error?.notPositiveDefiniteIndex, badIndex, label)
                    XCTAssertTrue(error?.description.contains("matrix \(badIndex)") ?? false,
                                  error?.description ?? "")
                    // nothing written: no NaN, no partial result
                    XCTAssertEqual(try backend.download(logdet) as [Double], [7, 7, 7], label)
                    let inverseValues = try backend.download(inverse) as [Double]
                    XCTAssertTrue(inverseValues.allSatisfy { $0 == 7 }, label)
                }
            }
        }
    }

    // MARK: - Batch norm

    /// [N, C, ...] shapes: planes of one element, a batch of one, a BatchNorm1d.
    static let batchNormShapes: [[Int]] = [[3, 5, 7, 3], [2, 3], [1, 4, 5, 5], [5, 2, 1, 1],
                                           [2, 70, 3], [9, 1, 17]]

    func testBatchNormMatchesCPU() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            var rng = SplitMix64(seed: 0x0C1_B4)
            for shape in Self.batchNormShapes {
                let c = shape[1], count = shape.reduce(1, *)
                let x = rng.floats(count, -2, 3)
                let gamma = rng.floats(c, 0.5, 1.5), beta = rng.floats(c)
                let mean0 = rng.floats(c), var0 = rng.floats(c, 0.5, 2)
                let (cx, gx) = try pair(x, shape, backend)
                let (cg, gg) = try pair(gamma, [c], backend)
                let (cb, gb) = try pair(beta, [c], backend)
                for training in [true, false] {
                    let label = "\(backend.deviceName) batchnorm \(shape) "
                        + (training ? "train" : "eval")
                    let (cm, gm) = try pair(mean0, [c], backend)
                    let (cv, gv) = try pair(var0, [c], backend)
                    let (cy, gy) = try allocatePair(.float32, shape, backend)
                    let (csm, gsm) = try allocatePair(.float32, [c], backend)
                    let (csi, gsi) = try allocatePair(.float32, [c], backend)
                    try cpu.batchNormForward(
                        input: cx, gamma: cg, beta: cb, runningMean: cm, runningVar: cv, output: cy,
                        savedMean: csm, savedInvStd: csi, training: training, momentum: 0.1,
                        epsilon: 1e-5)
                    try backend.batchNormForward(
                        input: gx, gamma: gg, beta: gb, runningMean: gm, runningVar: gv, output: gy,
                        savedMean: gsm, savedInvStd: gsi, training: training, momentum: 0.1,
                        epsilon: 1e-5)
                    // float statistics against the CPU's double ones: a channel of two close
                    // values loses digits in x - mean, hence 1e-5
                    compare(label + " y", try floats(gy, backend), try floats(cy, cpu), rtol: 1e-5)
                    compare(label + " running mean", try floats(gm, backend), try floats(cm, cpu),
                            rtol: 1e-5)
                    compare(label + " running var", try floats(gv, backend), try floats(cv, cpu),
                            rtol: 1e-5)
                    guard training else { continue }
                    compare(label + " saved mean", try floats(gsm, backend), try floats(csm, cpu),
                            rtol: 1e-5)
                    compare(label + " saved inv std", try floats(gsi, backend),
                            try floats(csi, cpu), rtol: 1e-5)

                    // backward from the same saved statistics on both
                    let dy = rng.floats(count)
                    let (cdy, gdy) = try pair(dy, shape, backend)
                    let saved = try floats(csm, cpu), savedInv = try floats(csi, cpu)
                    let (csm2, gsm2) = try pair(saved, [c], backend)
                    let (csi2, gsi2) = try pair(savedInv, [c], backend)
                    for accumulate in [false, true] {
                        let start = rng.floats(c)
                        let (cdg, gdg) = try pair(start, [c], backend)
                        let (cdb, gdb) = try pair(start, [c], backend)
                        let (cdx, gdx) = try allocatePair(.float32, shape, backend)
                        try cpu.batchNormBackward(
                            outputGradient: cdy, input: cx, gamma: cg, savedMean: csm2,
                            savedInvStd: csi2, inputGradient: cdx, gammaGradient: cdg,
                            betaGradient: cdb, accumulate: accumulate)
                        try backend.batchNormBackward(
                            outputGradient: gdy, input: gx, gamma: gg, savedMean: gsm2,
                            savedInvStd: gsi2, inputGradient: gdx, gammaGradient: gdg,
                            betaGradient: gdb, accumulate: accumulate)
                        let suffix = accumulate ? " (accumulate)" : ""
                        // dx cancels to rounding noise where a channel has two values (x^ = ±1),
                        // so it is measured against its terms' size, gamma inv_std |dy|
                        let terms = zip(gamma, savedInv).map { Double(abs($0 * $1)) }.max()!
                            * maxAbsolute(dy.map(Double.init))
                        let dxScale = [Double](repeating: terms, count: count)
                        let (dxActual, dxExpected) = (try floats(gdx, backend),
                                                      try floats(cdx, cpu))
                        reportDifference(label + " dx" + suffix, dxActual.map(Double.init),
                                         dxExpected.map(Double.init), scale: dxScale)
                        assertClose(dxActual.map(Double.init), dxExpected.map(Double.init),
                                    scale: dxScale, rtol: 1e-5, label + " dx" + suffix)
                        compare(label + " dgamma" + suffix, try floats(gdg, backend),
                                try floats(cdg, cpu), rtol: 1e-5)
                        compare(label + " dbeta" + suffix, try floats(gdb, backend),
                                try floats(cdb, cpu), rtol: 1e-5)
                    }
                }
            }
        }
    }

    /// The pieces of synchronised batch norm, on the device and through the host fallback of
    /// a device without fp64.
    func testSynchronisedBatchNormPiecesMatchCPU() throws {
        let withFP64 = try openCLBackendOrSkip()
        let withoutFP64 = try openCLBackendOrSkip(ignoreFloat64: true)
        XCTAssertFalse(withoutFP64.supportsFloat64)
        var rng = SplitMix64(seed: 0x0C1_5B)
        for (name, backend) in [("fp64", withFP64), ("no-fp64 fallback", withoutFP64)] {
            for shape in Self.batchNormShapes {
                let c = shape[1], count = shape.reduce(1, *)
                let label = "\(name) sync-bn \(shape)"
                let (cx, gx) = try pair(rng.floats(count, -2, 3), shape, backend)
                let (cdy, gdy) = try pair(rng.floats(count), shape, backend)
                let (cm, gm) = try pair(rng.floats(c), [c], backend)

                for centered in [false, true] {
                    let (cs, gs) = try allocatePair(.float64, [c], backend)
                    try cpu.channelSums(input: cx, center: centered ? cm : nil, sums: cs)
                    try backend.channelSums(input: gx, center: centered ? gm : nil, sums: gs)
                    compare(label + (centered ? " centred squares" : " sums"),
                            try backend.download(gs) as [Double], try cpu.download(cs) as [Double],
                            rtol: 1e-12)
                }

                let (cs2, gs2) = try allocatePair(.float64, [2, c], backend)
                try cpu.batchNormBackwardSums(outputGradient: cdy, input: cx, mean: cm, sums: cs2)
                try backend.batchNormBackwardSums(
                    outputGradient: gdy, input: gx, mean: gm, sums: gs2)
                compare(label + " backward sums", try backend.download(gs2) as [Double],
                        try cpu.download(cs2) as [Double], rtol: 1e-12)

                let (cscale, gscale) = try pair(rng.floats(c), [c], backend)
                let (cshift, gshift) = try pair(rng.floats(c), [c], backend)
                let (cy, gy) = try allocatePair(.float32, shape, backend)
                try cpu.channelAffine(input: cx, scale: cscale, shift: cshift, output: cy)
                try backend.channelAffine(input: gx, scale: gscale, shift: gshift, output: gy)
                compare(label + " affine", try floats(gy, backend), try floats(cy, cpu), rtol: 1e-6)

                let (ck, gk) = try pair(rng.floats(3 * c), [3, c], backend)
                let (cdx, gdx) = try allocatePair(.float32, shape, backend)
                try cpu.batchNormBackwardApply(
                    outputGradient: cdy, input: cx, mean: cm, coefficients: ck, inputGradient: cdx)
                try backend.batchNormBackwardApply(
                    outputGradient: gdy, input: gx, mean: gm, coefficients: gk, inputGradient: gdx)
                compare(label + " backward apply", try floats(gdx, backend), try floats(cdx, cpu),
                        rtol: 1e-6)
            }
        }
    }

    // MARK: - Element-wise, rows and columns

    func testElementwiseOpsMatchCPU() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            var rng = SplitMix64(seed: 0x0C1_E1E)
            for count in [1, 255, 257, 4099] {
                let shape = [count]
                let label = "\(backend.deviceName) n\(count)"
                var xs = rng.floats(count)
                if count > 3 { xs[1] = 0; xs[2] = .nan }   // relu(0) = relu(NaN) = 0 on the CPU
                let (cx, gx) = try pair(xs, shape, backend)
                let (cb, gb) = try pair(rng.floats(count), shape, backend)

                let (cy, gy) = try allocatePair(.float32, shape, backend)
                try cpu.relu(cx, output: cy)
                try backend.relu(gx, output: gy)
                XCTAssertEqual(try floats(gy, backend), try floats(cy, cpu), label + " relu")

                // backward in place: dx aliases dy
                let dy = rng.floats(count)
                let (cdy, gdy) = try pair(dy, shape, backend)
                try cpu.reluBackward(outputGradient: cdy, output: cy, inputGradient: cdy)
                try backend.reluBackward(outputGradient: gdy, output: gy, inputGradient: gdy)
                XCTAssertEqual(try floats(gdy, backend), try floats(cdy, cpu),
                               label + " relu backward")

                try cpu.add(cb, cy, output: cy)
                try backend.add(gb, gy, output: gy)
                compare(label + " add", try floats(gy, backend), try floats(cy, cpu), rtol: 1e-6)

                try cpu.axpy(-0.75, cb, cy)
                try backend.axpy(-0.75, gb, gy)
                compare(label + " axpy", try floats(gy, backend), try floats(cy, cpu), rtol: 1e-6)

                try cpu.scale(cy, by: 1.25)
                try backend.scale(gy, by: 1.25)
                compare(label + " scale", try floats(gy, backend), try floats(cy, cpu), rtol: 1e-6)

                let (cg, gg) = try pair(rng.floats(count), shape, backend)
                let (cm, gm) = try pair(rng.floats(count), shape, backend)
                for _ in 0..<2 {
                    try cpu.sgdUpdate(parameter: cy, gradient: cg, momentumBuffer: cm,
                                      learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4)
                    try backend.sgdUpdate(parameter: gy, gradient: gg, momentumBuffer: gm,
                                          learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4)
                }
                compare(label + " sgd parameter", try floats(gy, backend), try floats(cy, cpu),
                        rtol: 1e-6)
                compare(label + " sgd momentum", try floats(gm, backend), try floats(cm, cpu),
                        rtol: 1e-6)
            }

            for (rows, columns) in [(1, 1), (3, 17), (129, 5), (2, 300)] {
                let label = "\(backend.deviceName) rows \(rows)x\(columns)"
                let (cr, gr) = try pair(rng.floats(rows * columns), [rows, columns], backend)
                let (cbias, gbias) = try pair(rng.floats(columns), [columns], backend)
                try cpu.addBias(cbias, to: cr)
                try backend.addBias(gbias, to: gr)
                compare(label + " bias add", try floats(gr, backend), try floats(cr, cpu),
                        rtol: 1e-6)
                for accumulate in [false, true] {
                    let start = rng.floats(columns)
                    let (cs, gs) = try pair(start, [columns], backend)
                    try cpu.columnSum(cr, into: cs, accumulate: accumulate)
                    try backend.columnSum(gr, into: gs, accumulate: accumulate)
                    compare(label + " column sum\(accumulate ? " +=" : "")",
                            try floats(gs, backend), try floats(cs, cpu), rtol: 2e-6)
                }
            }
        }
    }

    // MARK: - Pooling and normalisation

    func testPoolingMatchesCPU() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            var rng = SplitMix64(seed: 0x0C1_9001)
            for shape in [[2, 3, 5, 7], [1, 1, 1, 1], [3, 70, 4, 4]] {
                let label = "\(backend.deviceName) pool \(shape)"
                let (n, c) = (shape[0], shape[1])
                let (cx, gx) = try pair(rng.floats(shape.reduce(1, *)), shape, backend)
                let (cy, gy) = try allocatePair(.float32, [n, c], backend)
                try cpu.globalAveragePool(input: cx, output: cy)
                try backend.globalAveragePool(input: gx, output: gy)
                compare(label + " global average", try floats(gy, backend), try floats(cy, cpu),
                        rtol: 2e-6)
                let (cdy, gdy) = try pair(rng.floats(n * c), [n, c], backend)
                let (cdx, gdx) = try allocatePair(.float32, shape, backend)
                try cpu.globalAveragePoolBackward(outputGradient: cdy, inputGradient: cdx)
                try backend.globalAveragePoolBackward(outputGradient: gdy, inputGradient: gdx)
                XCTAssertEqual(try floats(gdx, backend), try floats(cdx, cpu),
                               label + " global average backward")
            }

            let geometries = [
                Pool2DGeometry(batch: 2, channels: 3, inHeight: 9, inWidth: 11,
                               kernel: 3, stride: 2, padding: 1),
                Pool2DGeometry(batch: 1, channels: 2, inHeight: 6, inWidth: 6,
                               kernel: 2, stride: 2, padding: 0),
                Pool2DGeometry(batch: 2, channels: 2, inHeight: 5, inWidth: 4,
                               kernel: 3, stride: 1, padding: 1),
                Pool2DGeometry(batch: 1, channels: 1, inHeight: 1, inWidth: 1,
                               kernel: 1, stride: 1, padding: 0),
            ]
            for g in geometries {
                let label = "\(backend.deviceName) max pool \(g.inputShape) k\(g.kernel) "
                    + "s\(g.stride) p\(g.padding)"
                // a few levels only, so windows hold ties; and one NaN
                var x = rng.floats(g.inputShape.reduce(1, *)).map { ($0 * 3).rounded() }
                if x.count > 8 { x[7] = .nan }
                let (cx, gx) = try pair(x, g.inputShape, backend)
                let (cy, gy) = try allocatePair(.float32, g.outputShape, backend)
                let (ca, ga) = try allocatePair(.int32, g.outputShape, backend)
                try cpu.maxPool2dForward(input: cx, output: cy, argmax: ca, geometry: g)
                try backend.maxPool2dForward(input: gx, output: gy, argmax: ga, geometry: g)
                let (yc, yg) = (try floats(cy, cpu), try floats(gy, backend))
                XCTAssertEqual(yg.map { $0.isNaN ? 1e30 : $0 }, yc.map { $0.isNaN ? 1e30 : $0 },
                               label + " y")
                XCTAssertEqual(try int32s(ga, backend), try int32s(ca, cpu), label + " argmax")

                let dy = rng.floats(g.outputShape.reduce(1, *))
                let (cdy, gdy) = try pair(dy, g.outputShape, backend)
                let (cdx, gdx) = try allocatePair(.float32, g.inputShape, backend)
                try cpu.maxPool2dBackward(outputGradient: cdy, argmax: ca, inputGradient: cdx,
                                          geometry: g)
                try backend.maxPool2dBackward(outputGradient: gdy, argmax: ga, inputGradient: gdx,
                                              geometry: g)
                // the same additions in the same order: equal, not just close
                XCTAssertEqual(try floats(gdx, backend), try floats(cdx, cpu), label + " backward")
            }
        }
    }

    private func int32s(_ tensor: Tensor, _ backend: Backend) throws -> [Int32] {
        var values = [Int32](repeating: 0, count: tensor.count)
        try values.withUnsafeMutableBytes { try backend.download(tensor, into: $0) }
        return values
    }

    func testL2NormalizeMatchesCPU() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            var rng = SplitMix64(seed: 0x0C1_12)
            for (rows, columns) in [(1, 1), (4, 7), (3, 65), (5, 1000)] {
                let label = "\(backend.deviceName) l2 \(rows)x\(columns)"
                var u = rng.floats(rows * columns)
                for j in 0..<columns { u[j] = 0 }   // row 0 has norm 0: clamped to eps
                let (cu, gu) = try pair(u, [rows, columns], backend)
                let (cz, gz) = try allocatePair(.float32, [rows, columns], backend)
                let (cn, gn) = try allocatePair(.float32, [rows], backend)
                try cpu.l2NormalizeRows(input: cu, output: cz, norms: cn, epsilon: 1e-12)
                try backend.l2NormalizeRows(input: gu, output: gz, norms: gn, epsilon: 1e-12)
                compare(label + " z", try floats(gz, backend), try floats(cz, cpu), rtol: 2e-6)
                compare(label + " norms", try floats(gn, backend), try floats(cn, cpu), rtol: 2e-6)

                let (cdz, gdz) = try pair(rng.floats(rows * columns), [rows, columns], backend)
                let (cdu, gdu) = try allocatePair(.float32, [rows, columns], backend)
                try cpu.l2NormalizeRowsBackward(
                    outputGradient: cdz, output: cz, norms: cn, inputGradient: cdu, epsilon: 1e-12)
                try backend.l2NormalizeRowsBackward(
                    outputGradient: gdz, output: gz, norms: gn, inputGradient: gdu, epsilon: 1e-12)
                // row by row: the clamped row is g / eps, 12 orders above the others
                let (actual, expected) = (try floats(gdu, backend), try floats(cdu, cpu))
                for row in 0..<rows {
                    let slice = (row * columns)..<((row + 1) * columns)
                    compare(label + " du row \(row)", Array(actual[slice]), Array(expected[slice]),
                            rtol: 1e-5)
                }
            }
        }
    }

    // MARK: - Argument checks

    func testShapesAndDevicesAreCheckedBeforeWork() throws {
        for (_, backend) in try gpuBackendsOrSkip() {
            let a = try backend.zeros(.float32, [3, 4])
            let b = try backend.zeros(.float32, [5, 6])
            assertThrowsBackendError(
                "gemm 3x4 by 5x6", { try backend.gemm(a, transposeA: false, b, transposeB: false,
                                                      into: a, alpha: 1, beta: 0) },
                where: \.isShapeMismatch)
            let host = try cpu.zeros(.float32, [3, 4])
            assertThrowsBackendError(
                "a CPU tensor on OpenCL", { try backend.add(a, host, output: a) },
                where: \.isInvalidArgument)
            let g = Conv2DGeometry(batch: 1, inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 3,
                                   kernel: 3, padding: 1)
            let x = try backend.zeros(.float32, g.inputShape)
            let badWeight = try backend.zeros(.float32, [3, 2, 2, 2])
            let y = try backend.zeros(.float32, g.outputShape)
            assertThrowsBackendError(
                "conv weight shape", { try backend.conv2dForward(input: x, weight: badWeight,
                                                                 output: y, geometry: g) },
                where: \.isShapeMismatch)
        }
    }
}
