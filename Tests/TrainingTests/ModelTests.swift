// ModelTests.swift: the encoders, projector, model state and optimiser against what
// torchvision and PyTorch define (SPEC 1, 5.1).
//
// - Names: ResNet-18 (CIFAR stem) and ResNet-50 (ImageNet stem) at width 64 name their
//   parameters and buffers exactly as torchvision's resnet18 / resnet50 state_dict without
//   `fc` and without `num_batches_tracked`, in the same order. The expected lists are built
//   from torchvision's module structure and pinned by counts and entries read from
//   torchvision 0.29 itself (resnet18 with the 3x3 CIFAR stem: 60 parameters, 40 buffers,
//   11,168,832 weights; resnet50: 159, 106, 23,508,032).
// - Forward: the features of small encoders in evaluation mode against a float64 forward
//   written here from torchvision's BasicBlock / Bottleneck definitions (stride on the
//   bottleneck's 3x3, v1.5; shortcut added before the last ReLU), reading the weights by
//   name; feature widths 512 and 2048 at width 64.
// - Initialisation: Kaiming-normal fan-out convolutions (standard deviation within a few
//   percent, fan-out distinguished from fan-in), the CIFAR stem's PyTorch-default uniform
//   bound 1/√27, γ = 0 in the last BN of every residual branch and 1 elsewhere, linear
//   weights and biases within 1/√fan_in.
// - Configuration strings: projector and encoder parsing, with the names and layer types
//   of the batch-norm projector, and bad strings rejected as invalidConfiguration.
// - State: state() / loadState round trip, and each way loadState refuses a state.
// - SGD against its formula over three steps; evaluation-mode features are deterministic
//   and leave the running statistics alone; two training steps of a tiny model change every
//   parameter and keep the loss finite.

import Backend
import TestSupport
@testable import Training
import XCTest

final class ModelTests: XCTestCase {
    private var backend: CPUBackend!

    override func setUpWithError() throws {
        backend = try CPUBackend(threads: 2)
    }

    /// The width-64 encoders take a few seconds to initialise in a debug build: built once.
    nonisolated(unsafe) private static var resnet18: (CPUBackend, ResNet)?
    nonisolated(unsafe) private static var resnet50: (CPUBackend, ResNet)?

    private func cachedResNet18() throws -> (CPUBackend, ResNet) {
        if let cached = Self.resnet18 { return cached }
        let backend = try CPUBackend(threads: 2)
        var initializer = WeightInitializer(seed: 18)
        let model = try ResNet(backend, config: .resnet18(stem: .cifar), initializer: &initializer)
        Self.resnet18 = (backend, model)
        return (backend, model)
    }

    private func cachedResNet50() throws -> (CPUBackend, ResNet) {
        if let cached = Self.resnet50 { return cached }
        let backend = try CPUBackend(threads: 2)
        var initializer = WeightInitializer(seed: 50)
        let model = try ResNet(backend, config: .resnet50(stem: .imagenet),
                               initializer: &initializer)
        Self.resnet50 = (backend, model)
        return (backend, model)
    }

    private static let tinyConfig = ResNetConfig(block: .basic, stem: .cifar,
                                                 blocks: [1, 1, 1, 1], widths: [2, 3, 4, 5])

    // MARK: - Names

    /// torchvision's parameter and buffer names (state_dict order) for the given blocks.
    static func torchvisionNames(bottleneck: Bool, blocks: [Int])
        -> (parameters: [String], buffers: [String])
    {
        var parameters: [String] = [], buffers: [String] = []
        func norm(_ prefix: String) {
            parameters += [prefix + ".weight", prefix + ".bias"]
            buffers += [prefix + ".running_mean", prefix + ".running_var"]
        }
        parameters.append("conv1.weight")
        norm("bn1")
        for (stage, count) in blocks.enumerated() {
            for block in 0..<count {
                let prefix = "layer\(stage + 1).\(block)"
                for i in 1...(bottleneck ? 3 : 2) {
                    parameters.append("\(prefix).conv\(i).weight")
                    norm("\(prefix).bn\(i)")
                }
                // stride 2 from layer2 on, or a width change (the bottleneck's layer1.0)
                if block == 0 && (stage > 0 || bottleneck) {
                    parameters.append("\(prefix).downsample.0.weight")
                    norm("\(prefix).downsample.1")
                }
            }
        }
        return (parameters, buffers)
    }

    private func checkNames(
        _ resnet: ResNet, bottleneck: Bool, blocks: [Int], counts: (Int, Int, Int, Int),
        samples: [(Int, String, [Int])], bufferSamples: [(Int, String, [Int])]
    ) {
        let expected = Self.torchvisionNames(bottleneck: bottleneck, blocks: blocks)
        let parameters = resnet.namedParameters(prefix: "")
        let buffers = resnet.namedBuffers(prefix: "")
        XCTAssertEqual(parameters.map(\.0), expected.parameters)
        XCTAssertEqual(buffers.map(\.0), expected.buffers)
        // pinned to torchvision itself
        XCTAssertEqual(expected.parameters.count, counts.0)
        XCTAssertEqual(expected.buffers.count, counts.1)
        XCTAssertEqual(parameters.reduce(0) { $0 + $1.1.value.count }, counts.2)
        XCTAssertEqual(buffers.reduce(0) { $0 + $1.1.count }, counts.3)
        for (index, name, shape) in samples {
            XCTAssertEqual(parameters[index].0, name)
            XCTAssertEqual(parameters[index].1.value.shape, shape, name)
        }
        for (index, name, shape) in bufferSamples {
            XCTAssertEqual(buffers[index].0, name)
            XCTAssertEqual(buffers[index].1.shape, shape, name)
        }
    }

    func testResNet18NamesMatchTorchvision() throws {
        let (_, resnet) = try cachedResNet18()
        checkNames(
            resnet, bottleneck: false, blocks: [2, 2, 2, 2],
            counts: (60, 40, 11_168_832, 9_600),
            samples: [
                (0, "conv1.weight", [64, 3, 3, 3]), (1, "bn1.weight", [64]),
                (3, "layer1.0.conv1.weight", [64, 64, 3, 3]), (10, "layer1.1.bn1.weight", [64]),
                (17, "layer2.0.bn1.bias", [128]), (20, "layer2.0.bn2.bias", [128]),
                (21, "layer2.0.downsample.0.weight", [128, 64, 1, 1]),
                (22, "layer2.0.downsample.1.weight", [128]),
                (23, "layer2.0.downsample.1.bias", [128]),
                (59, "layer4.1.bn2.bias", [512]),
            ],
            bufferSamples: [
                (0, "bn1.running_mean", [64]), (1, "bn1.running_var", [64]),
                (2, "layer1.0.bn1.running_mean", [64]), (10, "layer2.0.bn1.running_mean", [128]),
                (14, "layer2.0.downsample.1.running_mean", [128]),
                (15, "layer2.0.downsample.1.running_var", [128]),
                (39, "layer4.1.bn2.running_var", [512]),
            ])
        XCTAssertEqual(resnet.outputFeatures, 512)
    }

    func testResNet50NamesMatchTorchvision() throws {
        let (_, resnet) = try cachedResNet50()
        checkNames(
            resnet, bottleneck: true, blocks: [3, 4, 6, 3],
            counts: (159, 106, 23_508_032, 53_120),
            samples: [
                (0, "conv1.weight", [64, 3, 7, 7]), (3, "layer1.0.conv1.weight", [64, 64, 1, 1]),
                (9, "layer1.0.conv3.weight", [256, 64, 1, 1]), (10, "layer1.0.bn3.weight", [256]),
                (12, "layer1.0.downsample.0.weight", [256, 64, 1, 1]),
                (17, "layer1.1.bn1.bias", [64]), (20, "layer1.1.bn2.bias", [64]),
                (158, "layer4.2.bn3.bias", [2048]),
            ],
            bufferSamples: [
                (0, "bn1.running_mean", [64]), (2, "layer1.0.bn1.running_mean", [64]),
                (10, "layer1.1.bn1.running_mean", [64]),
                (105, "layer4.2.bn3.running_var", [2048]),
            ])
        XCTAssertEqual(resnet.outputFeatures, 2048)
        // v1.5: the stride sits on the 3x3 conv of the first bottleneck of layers 2-4
        for stage in 1..<4 {
            let block = resnet.stages[stage][0]
            XCTAssertEqual(block.convs.map(\.stride), [1, 2, 1], "layer\(stage + 1).0")
            XCTAssertEqual(block.downsample?.conv.stride, 2, "layer\(stage + 1).0.downsample")
        }
    }

    func testModelNamesCarryTheReferencePrefixes() throws {
        let model = try CorInfoMaxModel(backend, encoder: Self.tinyConfig,
                                        projector: .parse("6-5-4+bn"), seed: 1)
        let names = model.namedParameters().map(\.0)
        let buffers = model.namedBuffers().map(\.0)
        XCTAssertEqual(names.first, "backbone.conv1.weight")
        XCTAssertTrue(names.contains("backbone.layer2.0.downsample.1.weight"))
        XCTAssertEqual(names.filter { $0.hasPrefix("projector.") }, [
            "projector.0.weight", "projector.0.bias", "projector.1.weight", "projector.1.bias",
            "projector.3.weight", "projector.3.bias", "projector.4.weight", "projector.4.bias",
            "projector.6.weight",
        ])
        XCTAssertEqual(buffers.filter { $0.hasPrefix("projector.") }, [
            "projector.1.running_mean", "projector.1.running_var",
            "projector.4.running_mean", "projector.4.running_var",
        ])
        XCTAssertEqual(Set(try model.state().keys), Set(names + buffers))
        XCTAssertEqual(names.count + buffers.count, try model.state().count)
    }

    // MARK: - Forward against torchvision's definition

    /// Evaluation-mode features in float64, following torchvision's ResNet forward and
    /// reading every weight by its state_dict name.
    private func torchvisionForward(_ state: [String: (shape: [Int], values: [Float])],
                                    config: ResNetConfig, _ input: [Double], _ shape: [Int])
        -> [Double]
    {
        func weights(_ name: String) -> [Double] { state[name]!.values.map(Double.init) }
        func conv(_ x: ([Double], [Int]), _ name: String, stride: Int) -> ([Double], [Int]) {
            let w = state[name + ".weight"]!
            let (values, outShape) = LayerReference.conv2d(
                x.0, x.1, w.values.map(Double.init), outChannels: w.shape[0],
                kernel: w.shape[2], stride: stride, padding: w.shape[2] / 2)
            return (values, outShape)
        }
        func bn(_ x: ([Double], [Int]), _ name: String) -> ([Double], [Int]) {
            let c = x.1[1]
            return (LayerReference.normalize(
                x.0, n: x.1[0], c: c, l: x.1[2] * x.1[3], mean: weights(name + ".running_mean"),
                variance: weights(name + ".running_var"), gamma: weights(name + ".weight"),
                beta: weights(name + ".bias"), epsilon: 1e-5), x.1)
        }
        func relu(_ x: ([Double], [Int])) -> ([Double], [Int]) { (LayerReference.relu(x.0), x.1) }

        var x = relu(bn(conv((input, shape), "conv1",
                             stride: config.stem == .imagenet ? 2 : 1), "bn1"))
        if config.stem == .imagenet {
            x = LayerReference.maxPool2d(x.0, x.1, kernel: 3, stride: 2, padding: 1)
        }
        for (stage, count) in config.blocks.enumerated() {
            for block in 0..<count {
                let p = "layer\(stage + 1).\(block)"
                let stride = block == 0 && stage > 0 ? 2 : 1
                var out: ([Double], [Int])
                if config.block == .basic {
                    out = relu(bn(conv(x, p + ".conv1", stride: stride), p + ".bn1"))
                    out = bn(conv(out, p + ".conv2", stride: 1), p + ".bn2")
                } else {
                    out = relu(bn(conv(x, p + ".conv1", stride: 1), p + ".bn1"))
                    out = relu(bn(conv(out, p + ".conv2", stride: stride), p + ".bn2"))
                    out = bn(conv(out, p + ".conv3", stride: 1), p + ".bn3")
                }
                var identity = x
                if state[p + ".downsample.0.weight"] != nil {
                    identity = bn(conv(x, p + ".downsample.0", stride: stride),
                                  p + ".downsample.1")
                }
                x = relu((zip(out.0, identity.0).map { $0 + $1 }, out.1))
            }
        }
        return LayerReference.globalAveragePool(x.0, planes: x.1[0] * x.1[1])
    }

    /// Random γ, β and running statistics everywhere, so every branch and buffer matters.
    private func randomizeNormalization(_ layer: Layer, seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        for case let norm as BatchNorm in leafLayers(layer) {
            try backend.setValues(norm.gamma.value, random.floats(norm.channels, 0.5, 1.5))
            try backend.setValues(norm.beta.value, random.floats(norm.channels, -0.2, 0.4))
            try backend.setValues(norm.runningMean, random.floats(norm.channels, -0.3, 0.3))
            try backend.setValues(norm.runningVar, random.floats(norm.channels, 0.5, 2))
        }
    }

    func testEncoderForwardMatchesTorchvisionDefinition() throws {
        let cases: [(ResNetConfig, [Int])] = [
            (ResNetConfig(block: .basic, stem: .cifar, blocks: [2, 1, 1, 1],
                          widths: [3, 4, 5, 6]), [2, 3, 12, 12]),
            (ResNetConfig(block: .bottleneck, stem: .imagenet, blocks: [2, 1, 1, 1],
                          widths: [2, 3, 4, 5]), [2, 3, 40, 40]),
        ]
        for (index, (config, shape)) in cases.enumerated() {
            var initializer = WeightInitializer(seed: UInt64(index + 1))
            let resnet = try ResNet(backend, config: config, initializer: &initializer)
            try randomizeNormalization(resnet, seed: UInt64(index + 10))
            var state: [String: (shape: [Int], values: [Float])] = [:]
            for (name, parameter) in resnet.namedParameters(prefix: "") {
                state[name] = (parameter.value.shape, try backend.download(parameter.value))
            }
            for (name, buffer) in resnet.namedBuffers(prefix: "") {
                state[name] = (buffer.shape, try backend.download(buffer))
            }
            var random = SplitMix64(seed: UInt64(index + 20))
            let x = random.floats(shape.reduce(1, *))
            let features = try resnet.forward(backend.tensor(x, shape: shape), training: false)
            XCTAssertEqual(features.shape, [shape[0], config.features])
            let expected = torchvisionForward(state, config: config, x.map(Double.init), shape)
            let actual = try backend.hostDoubles(features)
            let scale = [Double](repeating: maxAbsolute(expected), count: expected.count)
            reportDifference("\(config.block) encoder features", actual, expected, scale: scale)
            assertClose(actual, expected, scale: scale, rtol: 1e-5, "\(config.block) features")
        }
    }

    func testFeatureWidthsAtFullSize() throws {
        var random = SplitMix64(seed: 3)
        let (backend18, resnet18) = try cachedResNet18()
        let f18 = try resnet18.forward(
            backend18.tensor(random.floats(2 * 3 * 16 * 16), shape: [2, 3, 16, 16]),
            training: false)
        XCTAssertEqual(f18.shape, [2, 512])
        let (backend50, resnet50) = try cachedResNet50()
        let f50 = try resnet50.forward(
            backend50.tensor(random.floats(2 * 3 * 64 * 64), shape: [2, 3, 64, 64]),
            training: false)
        XCTAssertEqual(f50.shape, [2, 2048])
        XCTAssertTrue(try backend50.hostDoubles(f50).allSatisfy(\.isFinite))
        XCTAssertGreaterThan(maxAbsolute(try backend50.hostDoubles(f50)), 0)
    }

    // MARK: - Initialisation

    private func statistics(_ values: [Float]) -> (mean: Double, std: Double, maxAbs: Double) {
        let n = Double(values.count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return (mean, variance.squareRoot(), values.reduce(0.0) { max($0, Double(abs($1))) })
    }

    private func values(_ resnet: ResNet, _ backend: Backend, _ name: String) throws -> [Float] {
        let parameter = resnet.namedParameters(prefix: "").first { $0.0 == name }!.1
        return try backend.download(parameter.value)
    }

    func testResNet18Initialisation() throws {
        let (backend, resnet) = try cachedResNet18()
        // Kaiming normal, fan_out = K·R·S (the fan-in would give √2 times these)
        for (name, fanOut) in [("layer4.0.conv1.weight", 512 * 9),
                               ("layer4.0.downsample.0.weight", 512),
                               ("layer1.0.conv2.weight", 64 * 9)] {
            let s = statistics(try values(resnet, backend, name))
            let expected = (2.0 / Double(fanOut)).squareRoot()
            XCTAssertEqual(s.std / expected, 1, accuracy: 0.03, "\(name) std \(s.std)")
            XCTAssertEqual(s.mean / expected, 0, accuracy: 0.03, name)
            XCTAssertGreaterThan(s.maxAbs, 3.5 * expected, "\(name) is not normal-tailed")
        }
        // the CIFAR stem: PyTorch's default U(−1/√27, 1/√27)
        let stem = try values(resnet, backend, "conv1.weight")
        let bound = 1 / 27.0.squareRoot()
        let s = statistics(stem)
        XCTAssertLessThanOrEqual(s.maxAbs, bound)
        XCTAssertGreaterThan(s.maxAbs, 0.97 * bound)
        XCTAssertEqual(s.std / (bound / 3.0.squareRoot()), 1, accuracy: 0.06)
        let inner = Double(stem.filter { Double(abs($0)) < bound / 2 }.count) / Double(stem.count)
        XCTAssertEqual(inner, 0.5, accuracy: 0.06, "uniform: half the values within bound/2")

        try checkNormalizationInit(resnet, backend, zeroGamma: "bn2")
    }

    func testResNet50Initialisation() throws {
        let (backend, resnet) = try cachedResNet50()
        let stem = statistics(try values(resnet, backend, "conv1.weight"))
        let expected = (2.0 / Double(64 * 49)).squareRoot()
        XCTAssertEqual(stem.std / expected, 1, accuracy: 0.05, "7x7 stem std \(stem.std)")
        let wide = statistics(try values(resnet, backend, "layer3.0.conv3.weight"))
        XCTAssertEqual(wide.std / (2.0 / 1024).squareRoot(), 1, accuracy: 0.03)
        try checkNormalizationInit(resnet, backend, zeroGamma: "bn3")
    }

    /// γ = 0 in `layerX.Y.<zeroGamma>` (the last BN of each branch), 1 elsewhere; β = 0,
    /// running mean 0 and variance 1 everywhere.
    private func checkNormalizationInit(_ resnet: ResNet, _ backend: Backend,
                                        zeroGamma: String) throws {
        var zeroed = 0
        for (name, parameter) in resnet.namedParameters(prefix: "") {
            let v: [Float] = try backend.download(parameter.value)
            if name.hasSuffix(".bias") {
                XCTAssertTrue(v.allSatisfy { $0 == 0 }, "\(name) should be 0")
            } else if name.hasSuffix("\(zeroGamma).weight") && name.hasPrefix("layer") {
                XCTAssertTrue(v.allSatisfy { $0 == 0 }, "\(name) should be 0")
                zeroed += 1
            } else if parameter.value.rank == 1 {
                XCTAssertTrue(v.allSatisfy { $0 == 1 }, "\(name) should be 1")
            }
        }
        XCTAssertEqual(zeroed, resnet.config.blocks.reduce(0, +), "one zero γ per block")
        for (name, buffer) in resnet.namedBuffers(prefix: "") {
            let v: [Float] = try backend.download(buffer)
            let expected: Float = name.hasSuffix("running_var") ? 1 : 0
            XCTAssertTrue(v.allSatisfy { $0 == expected }, "\(name) should be \(expected)")
        }
    }

    func testProjectorInitialisation() throws {
        var initializer = WeightInitializer(seed: 4)
        let projector = try makeProjector(
            backend, inputFeatures: 512, config: .parse("256-128-64"), initializer: &initializer)
        let linears = projector.layers.compactMap { $0 as? Linear }
        XCTAssertEqual(linears.map(\.inFeatures), [512, 256, 128])
        XCTAssertEqual(linears.map { $0.bias != nil }, [true, true, false])
        for linear in linears {
            let bound = 1 / Double(linear.inFeatures).squareRoot()
            let weights = statistics(try backend.download(linear.weight.value))
            XCTAssertLessThanOrEqual(weights.maxAbs, bound, "weights of \(linear.inFeatures)")
            XCTAssertGreaterThan(weights.maxAbs, 0.99 * bound)
            XCTAssertEqual(weights.std / (bound / 3.0.squareRoot()), 1, accuracy: 0.03)
            if let bias = linear.bias {
                let b = statistics(try backend.download(bias.value))
                XCTAssertLessThanOrEqual(b.maxAbs, bound, "bias of \(linear.inFeatures)")
                XCTAssertGreaterThan(b.maxAbs, 0.9 * bound)
            }
        }
    }

    // MARK: - Configuration strings

    func testProjectorParsing() throws {
        XCTAssertEqual(try ProjectorConfig.parse("2048-2048-64"),
                       ProjectorConfig(widths: [2048, 2048, 64], batchNorm: false))
        let bn = try ProjectorConfig.parse("8192-8192-512+bn")
        XCTAssertEqual(bn, ProjectorConfig(widths: [8192, 8192, 512], batchNorm: true))
        XCTAssertEqual(bn.outputWidth, 512)
        XCTAssertEqual(bn.description, "8192-8192-512+bn")

        var initializer = WeightInitializer(seed: 5)
        let plain = try makeProjector(backend, inputFeatures: 8, config: .parse("6-5-4"),
                                      initializer: &initializer)
        XCTAssertEqual(plain.layers.map { "\(type(of: $0))" },
                       ["Linear", "ReLU", "Linear", "ReLU", "Linear"])
        XCTAssertEqual(plain.namedParameters(prefix: "projector").map(\.0), [
            "projector.0.weight", "projector.0.bias", "projector.2.weight", "projector.2.bias",
            "projector.4.weight",
        ])
        let withBN = try makeProjector(backend, inputFeatures: 8, config: .parse("6-5-4+bn"),
                                       initializer: &initializer)
        XCTAssertEqual(withBN.layers.map { "\(type(of: $0))" },
                       ["Linear", "BatchNorm", "ReLU", "Linear", "BatchNorm", "ReLU", "Linear"])
        XCTAssertEqual(withBN.namedBuffers(prefix: "projector").map(\.0), [
            "projector.1.running_mean", "projector.1.running_var",
            "projector.4.running_mean", "projector.4.running_var",
        ])

        for text in ["", "+bn", "2048--64", "2048-0-64", "-64", "64-", "a-b", "2048-64+BN",
                     "2048-64 ", "2048,64", "3.5-2", "2048-64+bn+bn"] {
            XCTAssertThrowsError(try ProjectorConfig.parse(text), "'\(text)'") { error in
                guard case TrainingError.invalidConfiguration = error else {
                    return XCTFail("'\(text)': expected invalidConfiguration, got \(error)")
                }
            }
        }
    }

    func testResNetConfigParsing() throws {
        XCTAssertEqual(try ResNetConfig.parse("resnet18", defaultStem: .cifar),
                       .resnet18(stem: .cifar))
        XCTAssertEqual(try ResNetConfig.parse("resnet18", defaultStem: .imagenet),
                       .resnet18(stem: .imagenet))
        let r50 = try ResNetConfig.parse("resnet50-imagenet", defaultStem: .cifar)
        XCTAssertEqual(r50, ResNetConfig(block: .bottleneck, stem: .imagenet,
                                         blocks: [3, 4, 6, 3], widths: [64, 128, 256, 512]))
        XCTAssertEqual(r50.features, 2048)
        let narrow = try ResNetConfig.parse("resnet18@16", defaultStem: .cifar)
        XCTAssertEqual(narrow.widths, [16, 32, 64, 128])
        XCTAssertEqual(narrow.blocks, [2, 2, 2, 2])
        XCTAssertEqual(narrow.features, 128)
        XCTAssertEqual(try ResNetConfig.parse("ResNet50-CIFAR@8", defaultStem: .imagenet),
                       .resnet50(stem: .cifar, width: 8))
        XCTAssertEqual(try ResNetConfig.parse("resnet50@8", defaultStem: .cifar).features, 256)

        for text in ["", "resnet34", "resnet", "resnet18@0", "resnet18@", "resnet18@x",
                     "resnet18@-4", "resnet18@8-cifar", "resnet18-foo", "resnet18@5000",
                     "vgg16"] {
            XCTAssertThrowsError(try ResNetConfig.parse(text, defaultStem: .cifar),
                                 "'\(text)'") { error in
                guard case TrainingError.invalidConfiguration = error else {
                    return XCTFail("'\(text)': expected invalidConfiguration, got \(error)")
                }
            }
        }
        var initializer = WeightInitializer(seed: 6)
        XCTAssertThrowsError(try ResNet(
            backend, config: ResNetConfig(block: .basic, stem: .cifar, blocks: [1, 1, 1],
                                          widths: [2, 3, 4]), initializer: &initializer))
        XCTAssertThrowsError(try ResNet(
            backend, config: ResNetConfig(block: .basic, stem: .cifar, blocks: [1, 0, 1, 1],
                                          widths: [2, 3, 4, 5]), initializer: &initializer))
    }

    // MARK: - State

    private func tinyModel(seed: UInt64) throws -> CorInfoMaxModel {
        try CorInfoMaxModel(backend, encoder: Self.tinyConfig, projector: .parse("6-4+bn"),
                            seed: seed)
    }

    private func hostState(_ model: CorInfoMaxModel) throws -> [String: [Float]] {
        try model.state().mapValues(\.values)
    }

    /// Runs one training-mode pass (moving the running statistics) and drops its state.
    private func exercise(_ model: CorInfoMaxModel, _ x: Tensor) throws {
        let z = try model.embed(x, training: true)
        try model.backward(backend.zeros(.float32, z.shape))
    }

    func testStateRoundTrip() throws {
        var random = SplitMix64(seed: 7)
        let x = try backend.tensor(random.floats(4 * 3 * 8 * 8), shape: [4, 3, 8, 8])
        let source = try tinyModel(seed: 1)
        try exercise(source, x)
        let target = try tinyModel(seed: 2)
        XCTAssertNotEqual(try backend.hostDoubles(source.features(x)),
                          try backend.hostDoubles(target.features(x)))

        try target.loadState(hostState(source))
        XCTAssertEqual(try hostState(target), try hostState(source))
        XCTAssertEqual(try backend.hostDoubles(target.features(x)),
                       try backend.hostDoubles(source.features(x)))
        XCTAssertEqual(try backend.hostDoubles(target.embed(x, training: false)),
                       try backend.hostDoubles(source.embed(x, training: false)))

        // with a prefix: other keys are ignored
        let third = try tinyModel(seed: 3)
        var prefixed: [String: [Float]] = ["other.thing": [1, 2]]
        for (name, values) in try hostState(source) { prefixed["init." + name] = values }
        try third.loadState(prefixed, prefix: "init.")
        XCTAssertEqual(try hostState(third), try hostState(source))
    }

    private func expectMismatch(_ model: CorInfoMaxModel, _ values: [String: [Float]],
                                prefix: String = "", mentioning text: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try model.loadState(values, prefix: prefix), file: file,
                             line: line) { error in
            guard case TrainingError.mismatch(let message) = error else {
                return XCTFail("expected mismatch, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(message.contains(text), "'\(message)' should mention '\(text)'",
                          file: file, line: line)
        }
    }

    func testLoadStateRejectsMismatches() throws {
        let source = try hostState(tinyModel(seed: 1))
        let model = try tinyModel(seed: 2)

        var missing = source
        missing["backbone.layer1.0.conv1.weight"] = nil
        expectMismatch(model, missing, mentioning: "missing backbone.layer1.0.conv1.weight")

        var wrongSize = source
        wrongSize["projector.0.bias"]!.removeLast()
        expectMismatch(model, wrongSize, mentioning: "projector.0.bias")

        var buffer = source
        buffer["backbone.bn1.running_var"]!.append(1)
        expectMismatch(model, buffer, mentioning: "backbone.bn1.running_var")

        var unexpected = source
        unexpected["backbone.fc.weight"] = [0]
        expectMismatch(model, unexpected, mentioning: "unexpected backbone.fc.weight")

        var prefixed: [String: [Float]] = [:]
        for (name, values) in source { prefixed["init." + name] = values }
        prefixed["init.extra"] = [1]
        expectMismatch(model, prefixed, prefix: "init.", mentioning: "unexpected init.extra")
    }

    func testFailedLoadLeavesTheModelUntouched() throws {
        // Model.loadState: "a checkpoint of another architecture cannot load half-way"
        let source = try hostState(tinyModel(seed: 1))
        let model = try tinyModel(seed: 2)
        let before = try hostState(model)
        var missing = source
        missing["projector.3.weight"] = nil
        XCTAssertThrowsError(try model.loadState(missing))
        let after = try hostState(model)
        let changed = after.keys.filter { after[$0]! != before[$0]! }.sorted()
        XCTAssertEqual(changed, [], "a refused state was partly loaded")
    }

    // MARK: - Optimiser

    func testSGDMatchesTheFormulaOverThreeSteps() throws {
        XCTAssertEqual(SGD().momentum, 0.9)
        XCTAssertEqual(SGD().weightDecay, 1e-4)
        var random = SplitMix64(seed: 8)
        let sgd = SGD(momentum: 0.9, weightDecay: 0.05)
        let learningRates = [0.5, 0.3, 0.1]
        let initial = [random.floats(6), random.floats(3)]
        let parameters = try initial.map {
            try Parameter($0, shape: [$0.count], on: backend)
        }
        var theta = initial.map { $0.map(Double.init) }
        var buffer = initial.map { [Double](repeating: 0, count: $0.count) }
        for (step, lr) in learningRates.enumerated() {
            for (index, parameter) in parameters.enumerated() {
                let g = random.floats(parameter.value.count)
                try backend.setValues(parameter.gradient, g)
                for i in g.indices {
                    let d = Double(g[i]) + 0.05 * theta[index][i]
                    buffer[index][i] = step == 0 ? d : 0.9 * buffer[index][i] + d
                    theta[index][i] -= lr * buffer[index][i]
                }
            }
            try sgd.step(parameters, learningRate: lr, on: backend)
            for (index, parameter) in parameters.enumerated() {
                let label = "step \(step + 1) parameter \(index)"
                assertClose(try backend.hostDoubles(parameter.value), theta[index], rtol: 1e-6,
                            atol: 1e-7, "\(label) value")
                assertClose(try backend.hostDoubles(parameter.momentum), buffer[index],
                            rtol: 1e-6, atol: 1e-7, "\(label) momentum buffer")
            }
        }
    }

    // MARK: - Evaluation and training

    func testEvaluationFeaturesAreDeterministicAndKeepRunningStatistics() throws {
        var random = SplitMix64(seed: 9)
        let model = try tinyModel(seed: 1)
        let x = try backend.tensor(random.floats(4 * 3 * 8 * 8), shape: [4, 3, 8, 8])
        try exercise(model, x)   // running statistics away from their initial values
        let buffers = try model.namedBuffers().map { try backend.hostDoubles($0.1) }
        let first = try backend.hostDoubles(model.features(x))
        let second = try backend.hostDoubles(model.features(x))
        XCTAssertEqual(first, second)
        XCTAssertEqual(try model.namedBuffers().map { try backend.hostDoubles($0.1) }, buffers)
        try assertNoSavedState(model.encoder, "features", backend: backend)

        // training mode normalises with the batch statistics instead
        let training = try backend.hostDoubles(model.encoder.forward(x, training: true))
        _ = try model.encoder.backward(backend.zeros(.float32, [4, 5]))
        XCTAssertGreaterThan(maxAbsoluteDifference(training, first), 1e-4)
        XCTAssertNotEqual(try model.namedBuffers().map { try backend.hostDoubles($0.1) },
                          buffers, "a training forward should move the running statistics")
    }

    func testTwoTrainingStepsOfATinyModel() throws {
        var random = SplitMix64(seed: 10)
        let model = try CorInfoMaxModel(backend, encoder: Self.tinyConfig,
                                        projector: .parse("8-4"), seed: 1)
        let loss = try CorInfoMaxLoss(.cifar10(dimension: 4), host: CPUBackend(threads: 1))
        let trainer = try CorInfoMaxTrainer(model: model, loss: loss, optimizer: SGD())
        let before = try hostState(model)
        let initialR = loss.covarianceState
        var losses: [Double] = []
        for _ in 0..<2 {
            let view1 = try backend.tensor(random.floats(8 * 3 * 8 * 8), shape: [8, 3, 8, 8])
            let view2 = try backend.tensor(random.floats(8 * 3 * 8 * 8), shape: [8, 3, 8, 8])
            let result = try trainer.step(view1: view1, view2: view2, learningRate: 0.05)
            XCTAssertTrue(result.loss.total.isFinite)
            XCTAssertTrue(result.loss.invariance.isFinite && result.loss.covariance.isFinite)
            losses.append(result.loss.total)
        }
        XCTAssertNotEqual(losses[0], losses[1])
        let after = try hostState(model)
        for (name, values) in before {
            XCTAssertNotEqual(after[name]!, values, "\(name) did not change")
            XCTAssertTrue(after[name]!.allSatisfy(\.isFinite), "\(name) is not finite")
        }
        XCTAssertNotEqual(loss.covarianceState, initialR)
        for layer in [model.encoder as Layer, model.projector, model.normalize] {
            try assertNoSavedState(layer, "after training", backend: backend)
        }

        let mismatched = try CorInfoMaxLoss(.cifar10(dimension: 8), host: CPUBackend(threads: 1))
        XCTAssertThrowsError(try CorInfoMaxTrainer(model: model, loss: mismatched,
                                                   optimizer: SGD())) { error in
            guard case TrainingError.invalidConfiguration = error else {
                return XCTFail("expected invalidConfiguration, got \(error)")
            }
        }
    }
}
