// LayerGradientTests.swift: every layer's forward against a float64 reference and its
// hand-written backward against finite differences.
//
// Forward: each layer's float32 output is compared with LayerReference (plain float64 Swift
// written from the PyTorch definitions): Conv2d, BatchNorm in training mode (batch statistics,
// running statistics updated with momentum 0.1 and the unbiased variance) and in evaluation
// mode, ReLU, Linear, the two pools and L2 normalisation with its eps clamp.
//
// Backward: for L = Σ output · R with a fixed random R, the input and parameter gradients of
// one training-mode forward + backward are compared with central differences of L taken on
// the float32 layer itself. The step is 1e-2, or 1e-3 in the composite networks, whose many
// ReLUs put kinks closer together. Every perturbed forward runs in training mode, so batch
// norm's dependence on the batch statistics is included, and its saved state is released
// by a backward of zeros, which adds nothing to the gradients. Piecewise-linear maps (conv,
// linear, ReLU, pools) are held to 1e-3 of the gradient's largest magnitude, the others to
// 1e-2: float32 differences with these steps are good to about that. A Linear bias in front
// of batch norm has a zero gradient and is checked to vanish instead. Batch norm and L2
// normalisation are also checked against differences of the float64 reference (step 1e-5,
// tolerance 1e-4), which resolves errors of order 1/M (a wrong M − 1) that the float32
// differences cannot. Composite networks (a tiny ResNet of basic blocks with the CIFAR stem,
// one of bottlenecks with the ImageNet stem and max-pool, the projector) leave out the few
// entries whose step straddles a kink (at most a fifth of those probed).
//
// Each layer keeps its saved forward state on a stack: after forward + backward the stacks
// of the layer and of every leaf inside it must be empty (another backward throws
// TrainingError.backwardWithoutForward), two forwards must be undone by two backwards in
// reverse order, evaluation-mode forwards must save nothing, and backward must add to the
// parameter gradients.

import Backend
import TestSupport
@testable import Training
import XCTest

final class LayerGradientTests: XCTestCase {
    private var backend: CPUBackend!

    override func setUpWithError() throws {
        backend = try CPUBackend(threads: 1)
    }

    // MARK: - Driver

    /// Checks the input and parameter gradients of `layer` at `input` against float32 central
    /// differences (see the file header); returns the analytic input gradient.
    @discardableResult
    private func checkGradients(
        _ label: String, layer: Layer, input: [Float], shape: [Int], step: Double = 1e-2,
        tolerance: Double, inputSamples: Int = 48, parameterSamples: Int = 24,
        skipKinks: Bool = false, vanishing: Set<String> = [], seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> [Double] {
        var random = SplitMix64(seed: seed)
        try layer.zeroGradients(on: backend)
        let output = try layer.forward(backend.tensor(input, shape: shape), training: true)
        let weights = random.floats(output.count)
        let r = weights.map(Double.init)
        let inputGradient = try backend.hostDoubles(
            layer.backward(backend.tensor(weights, shape: output.shape)))
        XCTAssertEqual(inputGradient.count, input.count, label, file: file, line: line)
        let named = layer.namedParameters(prefix: "")
        let parameterGradients = try named.map { try backend.hostDoubles($0.1.gradient) }

        // the saved state is gone: another backward has nothing to pop
        assertBackwardWithoutForward("\(label) second backward", file: file, line: line) {
            _ = try layer.backward(self.backend.tensor(weights, shape: output.shape))
        }
        try assertNoSavedState(layer, label, backend: backend, file: file, line: line)

        // L = Σ y·R of a training-mode forward; the saved state is released at once
        func loss(_ values: [Float]) throws -> Double {
            let y = try layer.forward(backend.tensor(values, shape: shape), training: true)
            let result = innerProduct(try backend.hostDoubles(y), r)
            _ = try layer.backward(backend.zeros(.float32, y.shape))
            return result
        }

        let inputIndices = sampleIndices(input.count, limit: inputSamples, random: &random)
        let inputDifferences = try finiteDifferences(
            input.map(Double.init), at: inputIndices, step: step, float32: true
        ) { try loss($0.map(Float.init)) }
        var (skipped, probed) = assertGradientMatches(
            "\(label) d/dinput", analytic: inputGradient, indices: inputIndices,
            differences: inputDifferences, tolerance: tolerance, skipKinks: skipKinks,
            file: file, line: line)
        probed += skipped
        let layerScale = ([inputGradient] + parameterGradients).map(maxAbsolute).max()!

        for ((name, parameter), analytic) in zip(named, parameterGradients) {
            let original: [Float] = try backend.download(parameter.value)
            let indices = sampleIndices(original.count, limit: parameterSamples, random: &random)
            let differences = try finiteDifferences(
                original.map(Double.init), at: indices, step: step, float32: true
            ) { values in
                try backend.setValues(parameter.value, values.map(Float.init))
                return try loss(input)
            }
            try backend.setValues(parameter.value, original)
            if vanishing.contains(name) {
                // zero in exact arithmetic (a bias in front of batch norm): only noise is left
                XCTAssertLessThan(maxAbsolute(analytic), 1e-5 * layerScale,
                                  "\(label) d/d\(name) should vanish", file: file, line: line)
                XCTAssertLessThan(maxAbsolute(differences.map(\.central)), tolerance * layerScale,
                                  "\(label) d/d\(name) differences", file: file, line: line)
                continue
            }
            let (skips, compared) = assertGradientMatches(
                "\(label) d/d\(name)", analytic: analytic, indices: indices,
                differences: differences, tolerance: tolerance, skipKinks: skipKinks,
                file: file, line: line)
            skipped += skips
            probed += skips + compared
        }
        // entries across a kink may be left out, but only a few of them
        XCTAssert(skipped * 5 <= probed,
                  "\(label): \(skipped) of \(probed) entries straddle a kink",
                  file: file, line: line)
        print("\(label): \(skipped) of \(probed) probed entries straddle a kink")

        // the probing forwards left nothing behind and added nothing to the gradients
        try assertNoSavedState(layer, "\(label) after probing", backend: backend,
                               file: file, line: line)
        for ((name, parameter), analytic) in zip(named, parameterGradients) {
            XCTAssertEqual(try backend.hostDoubles(parameter.gradient), analytic,
                           "\(label) gradient of \(name) changed while probing",
                           file: file, line: line)
        }
        return inputGradient
    }

    /// Compares a float32 output with a float64 reference, relative to its largest magnitude.
    private func assertForward(
        _ label: String, _ actual: Tensor, _ expected: [Double], shape: [Int]? = nil,
        tolerance: Double, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        if let shape { XCTAssertEqual(actual.shape, shape, label, file: file, line: line) }
        let values = try backend.hostDoubles(actual)
        let scale = [Double](repeating: max(maxAbsolute(expected), 1e-30), count: expected.count)
        reportDifference(label, values, expected, scale: scale)
        assertClose(values, expected, scale: scale, rtol: tolerance, label, file: file, line: line)
    }

    /// The input gradient of one training-mode forward + backward with output gradient
    /// `weights`, after zeroing the parameter gradients (which then hold this pass's).
    private func analyticGradient(_ layer: Layer, _ x: [Float], shape: [Int],
                                  _ weights: [Float]) throws -> [Double] {
        try layer.zeroGradients(on: backend)
        let y = try layer.forward(backend.tensor(x, shape: shape), training: true)
        return try backend.hostDoubles(layer.backward(backend.tensor(weights, shape: y.shape)))
    }

    /// Random γ in [0.5, 1.5) and β in [−0.2, 0.4) for every batch norm inside `layer`, so
    /// that no residual branch is switched off by a zero γ.
    private func randomizeNormalization(_ layer: Layer, random: inout SplitMix64) throws {
        for case let norm as BatchNorm in leafLayers(layer) {
            try backend.setValues(norm.gamma.value, random.floats(norm.channels, 0.5, 1.5))
            try backend.setValues(norm.beta.value, random.floats(norm.channels, -0.2, 0.4))
        }
    }

    // MARK: - Convolution

    func testConv2dForwardAndGradients() throws {
        // (batch, channels, height, width, out channels, kernel, stride, padding)
        let geometries = [
            (2, 3, 6, 5, 4, 3, 1, 1),   // 3x3 stride 1 (Winograd-eligible), non-square map
            (2, 3, 7, 7, 4, 3, 2, 1),   // 3x3 stride 2, the first conv of a downsampling block
            (2, 4, 5, 5, 3, 1, 1, 0),   // 1x1, the bottleneck's reductions
            (2, 4, 6, 6, 5, 1, 2, 0),   // 1x1 stride 2, the downsample shortcut
        ]
        var random = SplitMix64(seed: 11)
        for (n, c, h, w, k, r, s, p) in geometries {
            let label = "conv \(c)->\(k) \(r)x\(r) s\(s) p\(p) on \(h)x\(w)"
            let weights = random.floats(k * c * r * r, -0.5, 0.5)
            let conv = try Conv2d(backend, c, k, kernel: r, stride: s, padding: p,
                                  weights: weights)
            let x = random.floats(n * c * h * w)
            let expected = LayerReference.conv2d(
                x.map(Double.init), [n, c, h, w], weights.map(Double.init), outChannels: k,
                kernel: r, stride: s, padding: p)
            try assertForward(
                "\(label) forward",
                conv.forward(backend.tensor(x, shape: [n, c, h, w]), training: false),
                expected.values, shape: expected.shape, tolerance: 1e-5)
            try checkGradients(label, layer: conv, input: x, shape: [n, c, h, w],
                               tolerance: 1e-3, seed: random.next())
        }
    }

    // MARK: - Batch norm

    /// Input with a different mean and spread per channel, so centring and scaling matter.
    private func channelData(_ n: Int, _ c: Int, _ l: Int, random: inout SplitMix64) -> [Float] {
        var x = random.floats(n * c * l)
        for b in 0..<n {
            for ch in 0..<c {
                for i in 0..<l { x[(b * c + ch) * l + i] = x[(b * c + ch) * l + i]
                    * Float(1 + ch) * 0.7 + Float(ch) - 0.5 }
            }
        }
        return x
    }

    private func checkBatchNorm(_ shape: [Int], seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let (n, c) = (shape[0], shape[1])
        let l = shape.dropFirst(2).reduce(1, *)
        let label = "batchnorm \(shape)"
        let norm = try BatchNorm(backend, c)
        let gamma = random.floats(c, 0.5, 1.5), beta = random.floats(c, -0.5, 0.5)
        try backend.setValues(norm.gamma.value, gamma)
        try backend.setValues(norm.beta.value, beta)
        let runningMean = random.floats(c, -0.3, 0.3), runningVar = random.floats(c, 0.5, 2)
        try backend.setValues(norm.runningMean, runningMean)
        try backend.setValues(norm.runningVar, runningVar)
        let x = channelData(n, c, l, random: &random)
        let xd = x.map(Double.init)
        let (gd, bd) = (gamma.map(Double.init), beta.map(Double.init))

        // evaluation mode: running statistics, which it leaves alone
        let eval = LayerReference.normalize(
            xd, n: n, c: c, l: l, mean: runningMean.map(Double.init),
            variance: runningVar.map(Double.init), gamma: gd, beta: bd, epsilon: 1e-5)
        try assertForward("\(label) eval forward",
                          norm.forward(backend.tensor(x, shape: shape), training: false),
                          eval, shape: shape, tolerance: 1e-6)
        XCTAssertEqual(try backend.download(norm.runningMean) as [Float], runningMean)
        XCTAssertEqual(try backend.download(norm.runningVar) as [Float], runningVar)

        // training mode: batch statistics, then the running-statistics update
        let train = LayerReference.batchNormTrain(
            xd, n: n, c: c, l: l, gamma: gd, beta: bd, runningMean: runningMean.map(Double.init),
            runningVar: runningVar.map(Double.init))
        let y = try norm.forward(backend.tensor(x, shape: shape), training: true)
        try assertForward("\(label) train forward", y, train.output, shape: shape,
                          tolerance: 1e-6)
        try assertForward("\(label) running mean", norm.runningMean, train.runningMean,
                          tolerance: 1e-6)
        try assertForward("\(label) running var", norm.runningVar, train.runningVar,
                          tolerance: 1e-6)
        _ = try norm.backward(backend.zeros(.float32, shape))

        try checkGradients(label, layer: norm, input: x, shape: shape, tolerance: 1e-2,
                           seed: random.next())

        // the same gradients against differences of the float64 reference, to 1e-4
        var probe = SplitMix64(seed: seed ^ 0x5eed)
        let weights = probe.floats(x.count)
        let r = weights.map(Double.init)
        let dx = try analyticGradient(norm, x, shape: shape, weights)
        let dgamma = try backend.hostDoubles(norm.gamma.gradient)
        let dbeta = try backend.hostDoubles(norm.beta.gradient)
        func referenceLoss(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
            innerProduct(LayerReference.batchNormTrain(
                x, n: n, c: c, l: l, gamma: gamma, beta: beta,
                runningMean: [Double](repeating: 0, count: c),
                runningVar: [Double](repeating: 1, count: c)).output, r)
        }
        let indices = sampleIndices(x.count, limit: 64, random: &probe)
        assertGradientMatches(
            "\(label) d/dinput vs float64", analytic: dx, indices: indices,
            differences: finiteDifferences(xd, at: indices, step: 1e-5, float32: false) {
                referenceLoss($0, gd, bd)
            }, tolerance: 1e-4)
        let all = Array(0..<c)
        assertGradientMatches(
            "\(label) d/dgamma vs float64", analytic: dgamma, indices: all,
            differences: finiteDifferences(gd, at: all, step: 1e-5, float32: false) {
                referenceLoss(xd, $0, bd)
            }, tolerance: 1e-4)
        assertGradientMatches(
            "\(label) d/dbeta vs float64", analytic: dbeta, indices: all,
            differences: finiteDifferences(bd, at: all, step: 1e-5, float32: false) {
                referenceLoss(xd, gd, $0)
            }, tolerance: 1e-4)
    }

    func testBatchNorm4DForwardAndGradients() throws {
        try checkBatchNorm([2, 3, 4, 4], seed: 21)
    }

    func testBatchNorm2DForwardAndGradients() throws {
        try checkBatchNorm([6, 4], seed: 22)
    }

    // MARK: - Element-wise, linear, pools, normalisation

    func testReLUForwardAndGradients() throws {
        var random = SplitMix64(seed: 31)
        let shape = [2, 3, 4, 4]
        // at least 0.05 away from the kink at 0, which the step of 1e-2 cannot reach
        let x: [Float] = (0..<shape.reduce(1, *)).map { _ in
            Float(random.uniform(0.05, 1)) * (random.uniform() < 0.5 ? -1 : 1)
        }
        let relu = ReLU(backend)
        try assertForward("relu forward",
                          relu.forward(backend.tensor(x, shape: shape), training: false),
                          LayerReference.relu(x.map(Double.init)), shape: shape, tolerance: 0)
        let dx = try checkGradients("relu", layer: relu, input: x, shape: shape,
                                    tolerance: 1e-3, seed: 32)
        XCTAssertEqual(zip(dx, x).filter { $1 < 0 && $0 != 0 }.count, 0,
                       "relu passes gradient to negative inputs")
    }

    func testLinearForwardAndGradients() throws {
        var random = SplitMix64(seed: 41)
        let (rows, inFeatures, outFeatures) = (3, 5, 4)
        for withBias in [true, false] {
            let label = "linear \(withBias ? "with" : "without") bias"
            let weights = random.floats(outFeatures * inFeatures)
            let bias = withBias ? random.floats(outFeatures) : nil
            let linear = try Linear(backend, inFeatures, outFeatures, weights: weights,
                                    bias: bias)
            XCTAssertEqual(linear.namedParameters(prefix: "p").map(\.0),
                           withBias ? ["p.weight", "p.bias"] : ["p.weight"], label)
            let x = random.floats(rows * inFeatures)
            try assertForward(
                "\(label) forward",
                linear.forward(backend.tensor(x, shape: [rows, inFeatures]), training: false),
                LayerReference.linear(
                    x.map(Double.init), rows: rows, weights.map(Double.init),
                    outFeatures: outFeatures, bias: bias?.map(Double.init)),
                shape: [rows, outFeatures], tolerance: 1e-6)
            try checkGradients(label, layer: linear, input: x, shape: [rows, inFeatures],
                               tolerance: 1e-3, seed: random.next())
        }
    }

    func testGlobalAveragePoolForwardAndGradients() throws {
        var random = SplitMix64(seed: 51)
        let shape = [2, 3, 4, 5]
        let x = random.floats(shape.reduce(1, *))
        let pool = GlobalAveragePool(backend)
        try assertForward("avgpool forward",
                          pool.forward(backend.tensor(x, shape: shape), training: false),
                          LayerReference.globalAveragePool(x.map(Double.init), planes: 6),
                          shape: [2, 3], tolerance: 1e-6)
        try checkGradients("avgpool", layer: pool, input: x, shape: shape, tolerance: 1e-3,
                           seed: 52)
    }

    func testMaxPoolForwardAndGradients() throws {
        var random = SplitMix64(seed: 61)
        let shape = [2, 2, 7, 7]
        let count = shape.reduce(1, *)
        // distinct values 0.05 apart (no ties, no winner change within a step of 1e-2);
        // the first plane entirely negative, so a padding that acted as 0 would win there
        var order = Array(0..<count)
        order.shuffle(using: &random)
        var x = order.map { Float($0 - count / 2) * 0.05 }
        for i in 0..<49 { x[i] -= 30 }
        XCTAssertEqual(Set(x).count, count)
        let pool = MaxPool2d(backend, kernel: 3, stride: 2, padding: 1)
        let expected = LayerReference.maxPool2d(x.map(Double.init), shape, kernel: 3,
                                                stride: 2, padding: 1)
        XCTAssertEqual(expected.shape, [2, 2, 4, 4])
        try assertForward("maxpool forward",
                          pool.forward(backend.tensor(x, shape: shape), training: false),
                          expected.values, shape: expected.shape, tolerance: 0)
        try checkGradients("maxpool", layer: pool, input: x, shape: shape, tolerance: 1e-3,
                           inputSamples: count, seed: 62)
    }

    func testL2NormalizeForwardAndGradients() throws {
        var random = SplitMix64(seed: 71)
        let (rows, columns) = (5, 6)
        let x = random.floats(rows * columns)
        let normalize = L2Normalize(backend)
        let xd = x.map(Double.init)
        try assertForward("l2 forward",
                          normalize.forward(backend.tensor(x, shape: [rows, columns]),
                                            training: false),
                          LayerReference.l2Normalize(xd, rows: rows), shape: [rows, columns],
                          tolerance: 1e-6)
        try checkGradients("l2", layer: normalize, input: x, shape: [rows, columns],
                           tolerance: 1e-2, seed: 72)

        // against differences of the float64 reference, to 1e-4
        let weights = random.floats(rows * columns)
        let r = weights.map(Double.init)
        let dx = try analyticGradient(normalize, x, shape: [rows, columns], weights)
        let all = Array(0..<x.count)
        assertGradientMatches(
            "l2 d/dinput vs float64", analytic: dx, indices: all,
            differences: finiteDifferences(xd, at: all, step: 1e-5, float32: false) {
                innerProduct(LayerReference.l2Normalize($0, rows: rows), r)
            }, tolerance: 1e-4)
    }

    func testL2NormalizeClampsTinyNorms() throws {
        // a normal row, a zero row and a row of norm 2e-13 < eps = 1e-12: z = u / max(‖u‖, eps)
        let columns = 4
        let x: [Float] = [0.3, -1.2, 0.5, 2.0, 0, 0, 0, 0, 1e-13, -1e-13, 1e-13, 1e-13]
        let normalize = L2Normalize(backend)
        let z = try normalize.forward(backend.tensor(x, shape: [3, columns]), training: true)
        let expected = LayerReference.l2Normalize(x.map(Double.init), rows: 3)
        XCTAssertEqual(expected[8], 0.1, accuracy: 1e-7)   // clamped: 1e-13 / 1e-12
        try assertForward("l2 clamp forward", z, expected, tolerance: 1e-6)

        let g: [Float] = [0.7, -0.1, 0.4, 0.2, 1, -2, 3, -4, 0.5, 0.25, -0.5, 1]
        let du = try backend.hostDoubles(normalize.backward(backend.tensor(g, shape: [3, columns])))
        let gd = g.map(Double.init), zd = expected
        let norm = x[0..<4].reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        let projection = innerProduct(Array(zd[0..<4]), Array(gd[0..<4]))
        var reference = (0..<4).map { (gd[$0] - projection * zd[$0]) / norm }
        reference += gd[4...].map { $0 / 1e-12 }   // clamped rows: z = u / eps is linear
        assertClose(Array(du[0..<4]), Array(reference[0..<4]), rtol: 1e-5, atol: 1e-7,
                    "l2 backward, normal row")
        assertClose(Array(du[4...]), Array(reference[4...]), rtol: 1e-6,
                    "l2 backward, clamped rows")
        XCTAssertTrue(du.allSatisfy(\.isFinite))
    }

    // MARK: - Composite layers

    func testResNetBasicBlocksGradients() throws {
        var random = SplitMix64(seed: 81)
        var initializer = WeightInitializer(seed: 82)
        let config = ResNetConfig(block: .basic, stem: .cifar, blocks: [1, 1, 1, 1],
                                  widths: [2, 3, 4, 5])
        let resnet = try ResNet(backend, config: config, initializer: &initializer)
        try randomizeNormalization(resnet, random: &random)
        // 16x16 keeps 2x2 maps in layer4, so its batch norms see 8 values, not 2
        let shape = [2, 3, 16, 16]
        try checkGradients("resnet basic", layer: resnet, input: random.floats(768 * 2),
                           shape: shape, step: 1e-3, tolerance: 1e-2, inputSamples: 32,
                           parameterSamples: 4, skipKinks: true, seed: 83)
    }

    func testResNetBottleneckImageNetStemGradients() throws {
        var random = SplitMix64(seed: 91)
        var initializer = WeightInitializer(seed: 92)
        let config = ResNetConfig(block: .bottleneck, stem: .imagenet, blocks: [1, 1, 1, 1],
                                  widths: [2, 3, 4, 5])
        let resnet = try ResNet(backend, config: config, initializer: &initializer)
        XCTAssertNotNil(resnet.stemPool)
        try randomizeNormalization(resnet, random: &random)
        // 32x32: the stem conv and max-pool leave 8x8, layer4 1x1; a batch of 4 gives
        // layer4's batch norms 4 values per channel (with 2 they saturate at ±1 and pass
        // almost no gradient)
        let shape = [4, 3, 32, 32]
        try checkGradients("resnet bottleneck", layer: resnet,
                           input: random.floats(shape.reduce(1, *)), shape: shape,
                           step: 1e-3, tolerance: 1e-2, inputSamples: 32,
                           parameterSamples: 3, skipKinks: true, seed: 93)
    }

    func testProjectorGradients() throws {
        for text in ["6-5-4", "6-5-4+bn"] {
            var random = SplitMix64(seed: 101)
            var initializer = WeightInitializer(seed: 102)
            let projector = try makeProjector(
                backend, inputFeatures: 7, config: ProjectorConfig.parse(text),
                initializer: &initializer)
            try randomizeNormalization(projector, random: &random)
            try checkGradients("projector \(text)", layer: projector,
                               input: random.floats(6 * 7), shape: [6, 7], step: 1e-3,
                               tolerance: 1e-2, inputSamples: 42, skipKinks: true,
                               vanishing: text.hasSuffix("+bn") ? ["0.bias", "3.bias"] : [],
                               seed: 103)
        }
    }

    // MARK: - Saved state

    func testTwoForwardsAreUndoneInReverseOrder() throws {
        // CorInfoMax runs both views forward before either backward (SPEC 1.1)
        var random = SplitMix64(seed: 111)
        var initializer = WeightInitializer(seed: 112)
        let config = ResNetConfig(block: .basic, stem: .cifar, blocks: [1, 1, 1, 1],
                                  widths: [2, 3, 4, 5])
        let resnet = try ResNet(backend, config: config, initializer: &initializer)
        try randomizeNormalization(resnet, random: &random)
        let shape = [2, 3, 16, 16]
        let x1 = random.floats(1536), x2 = random.floats(1536, -0.5, 1.5)
        let g1 = random.floats(10), g2 = random.floats(10)

        // each view alone
        func single(_ x: [Float], _ g: [Float]) throws -> (input: [Double], params: [[Double]]) {
            try resnet.zeroGradients(on: backend)
            _ = try resnet.forward(backend.tensor(x, shape: shape), training: true)
            let dx = try backend.hostDoubles(resnet.backward(backend.tensor(g, shape: [2, 5])))
            return (dx, try resnet.parameters.map { try backend.hostDoubles($0.gradient) })
        }
        let (dx1, p1) = try single(x1, g1)
        let (dx2, p2) = try single(x2, g2)
        XCTAssertGreaterThan(maxAbsoluteDifference(dx1, dx2), 1e-3, "views too alike to tell")

        // both forwards, then the backwards last-in first-out
        try resnet.zeroGradients(on: backend)
        _ = try resnet.forward(backend.tensor(x1, shape: shape), training: true)
        _ = try resnet.forward(backend.tensor(x2, shape: shape), training: true)
        let back2 = try backend.hostDoubles(resnet.backward(backend.tensor(g2, shape: [2, 5])))
        let back1 = try backend.hostDoubles(resnet.backward(backend.tensor(g1, shape: [2, 5])))
        assertClose(back2, dx2, scale: [Double](repeating: maxAbsolute(dx2), count: dx2.count),
                    rtol: 1e-6, "second view's input gradient")
        assertClose(back1, dx1, scale: [Double](repeating: maxAbsolute(dx1), count: dx1.count),
                    rtol: 1e-6, "first view's input gradient")
        for (index, parameter) in resnet.parameters.enumerated() {
            let sum = zip(p1[index], p2[index]).map { $0 + $1 }
            let scale = max(maxAbsolute(sum), 1e-30)
            assertClose(try backend.hostDoubles(parameter.gradient), sum,
                        scale: [Double](repeating: scale, count: sum.count), rtol: 1e-6,
                        "parameter \(index): the two views' gradients add")
        }
        try assertNoSavedState(resnet, "after two backwards", backend: backend)
    }

    func testBackwardAddsToParameterGradients() throws {
        // two views pass through the same layers and their gradients must sum (Layer.swift)
        var random = SplitMix64(seed: 121)
        let conv = try Conv2d(backend, 2, 3, kernel: 3, padding: 1, weights: random.floats(54))
        let norm = try BatchNorm(backend, 3)
        try backend.setValues(norm.gamma.value, random.floats(3, 0.5, 1.5))
        let linear = try Linear(backend, 4, 3, weights: random.floats(12),
                                bias: random.floats(3))
        let cases: [(String, Layer, [Int])] = [
            ("conv", conv, [2, 2, 4, 4]), ("batchnorm", norm, [4, 3, 2, 2]),
            ("linear", linear, [5, 4]),
        ]
        for (label, layer, shape) in cases {
            let x1 = random.floats(shape.reduce(1, *)), x2 = random.floats(shape.reduce(1, *))
            let outputCount = try layer.forward(backend.tensor(x1, shape: shape),
                                                training: false).count
            let r1 = random.floats(outputCount), r2 = random.floats(outputCount)
            _ = try analyticGradient(layer, x1, shape: shape, r1)
            let once1 = try layer.parameters.map { try backend.hostDoubles($0.gradient) }
            _ = try analyticGradient(layer, x2, shape: shape, r2)
            let once2 = try layer.parameters.map { try backend.hostDoubles($0.gradient) }

            // both passes without zeroing in between
            _ = try analyticGradient(layer, x1, shape: shape, r1)
            let y = try layer.forward(backend.tensor(x2, shape: shape), training: true)
            _ = try layer.backward(backend.tensor(r2, shape: y.shape))
            for (index, parameter) in layer.parameters.enumerated() {
                let sum = zip(once1[index], once2[index]).map { $0 + $1 }
                XCTAssertGreaterThan(maxAbsoluteDifference(sum, once2[index]), 1e-3, label)
                assertClose(try backend.hostDoubles(parameter.gradient), sum,
                            scale: [Double](repeating: maxAbsolute(sum), count: sum.count),
                            rtol: 1e-6, "\(label) parameter \(index) accumulates")
            }
            try layer.zeroGradients(on: backend)
            for parameter in layer.parameters {
                XCTAssertTrue(try backend.hostDoubles(parameter.gradient).allSatisfy { $0 == 0 },
                              "\(label) zeroGradients")
            }
        }
    }

    func testEvaluationForwardSavesNothing() throws {
        var random = SplitMix64(seed: 131)
        var initializer = WeightInitializer(seed: 132)
        let resnet = try ResNet(
            backend, config: ResNetConfig(block: .bottleneck, stem: .imagenet,
                                          blocks: [1, 1, 1, 1], widths: [2, 3, 4, 5]),
            initializer: &initializer)
        let buffers = try resnet.namedBuffers(prefix: "").map { try backend.hostDoubles($0.1) }
        let x = try backend.tensor(random.floats(2 * 3 * 32 * 32), shape: [2, 3, 32, 32])
        let first = try backend.hostDoubles(resnet.forward(x, training: false))
        let second = try backend.hostDoubles(resnet.forward(x, training: false))
        XCTAssertEqual(first, second, "evaluation forward is not deterministic")
        try assertNoSavedState(resnet, "evaluation forward", backend: backend)
        let after = try resnet.namedBuffers(prefix: "").map { try backend.hostDoubles($0.1) }
        XCTAssertEqual(after, buffers, "evaluation forward changed running statistics")
        for (label, layer) in [("linear", try Linear(backend, 3, 2, weights: random.floats(6),
                                                     bias: nil) as Layer),
                               ("l2", L2Normalize(backend))] {
            _ = try layer.forward(backend.tensor(random.floats(6), shape: [2, 3]),
                                  training: false)
            try assertNoSavedState(layer, label, backend: backend)
        }
    }
}
