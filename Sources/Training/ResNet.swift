// ResNet.swift: the ResNet encoders of SPEC 1.1, built like torchvision's so that parameter
// names match (`conv1.weight`, `layer2.0.downsample.1.running_var`, ...).
//
//   BasicBlock (ResNet-18):  relu(bn2(conv3x3(relu(bn1(conv3x3_s(x))))) + shortcut(x))
//   Bottleneck (ResNet-50):  relu(bn3(conv1x1(relu(bn2(conv3x3_s(relu(bn1(conv1x1(x))))))))
//                                 + shortcut(x)),  expansion 4, stride on the 3x3 (v1.5)
//   shortcut: identity, or conv1x1_s + BN when the stride or the width changes
//
// Stems: CIFAR (conv 3x3 stride 1, BN, ReLU, no max-pool) and ImageNet (conv 7x7 stride 2
// padding 3, BN, ReLU, max-pool 3x3 stride 2 padding 1). The head is a global average pool;
// `fc` is dropped (identity), so the output is [N, 8 w] (BasicBlock) or [N, 32 w]
// (Bottleneck) for stage widths (w, 2w, 4w, 8w).
//
// Initialisation (torchvision, zero_init_residual=True): Kaiming-normal fan-out convs, BN
// γ = 1 and β = 0 except γ = 0 in the last BN of each residual branch; the CIFAR stem conv
// is created after the constructor in the reference, so it has PyTorch's default init.

import Backend

/// Which encoder and at what width.
public struct ResNetConfig: Sendable, Equatable {
    public enum Block: String, Sendable { case basic, bottleneck }
    public enum Stem: String, Sendable { case cifar, imagenet }

    public var block: Block
    public var stem: Stem
    public var blocks: [Int]
    public var widths: [Int]

    public init(block: Block, stem: Stem, blocks: [Int], widths: [Int]) {
        self.block = block
        self.stem = stem
        self.blocks = blocks
        self.widths = widths
    }

    public static func resnet18(stem: Stem, width: Int = 64) -> ResNetConfig {
        ResNetConfig(block: .basic, stem: stem, blocks: [2, 2, 2, 2],
                     widths: [width, 2 * width, 4 * width, 8 * width])
    }

    public static func resnet50(stem: Stem, width: Int = 64) -> ResNetConfig {
        ResNetConfig(block: .bottleneck, stem: stem, blocks: [3, 4, 6, 3],
                     widths: [width, 2 * width, 4 * width, 8 * width])
    }

    /// Output features after pooling.
    public var features: Int { widths[3] * (block == .basic ? 1 : 4) }

    /// Parses `resnet18`, `resnet50`, `resnet18-cifar`, `resnet18-imagenet`, with an optional
    /// width suffix `@16` (stage widths 16, 32, 64, 128). The default stem is given.
    public static func parse(_ text: String, defaultStem: Stem) throws -> ResNetConfig {
        var name = text.lowercased()
        var width = 64
        if let at = name.firstIndex(of: "@") {
            let digits = name[name.index(after: at)...]
            guard digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                let value = Int(digits), value > 0, value <= 4096
            else {
                throw TrainingError.invalidConfiguration(
                    "model '\(text)': the width after '@' must be a positive integer")
            }
            width = value
            name = String(name[..<at])
        }
        var stem = defaultStem
        if name.hasSuffix("-cifar") {
            stem = .cifar
            name.removeLast(6)
        } else if name.hasSuffix("-imagenet") {
            stem = .imagenet
            name.removeLast(9)
        }
        switch name {
        case "resnet18": return .resnet18(stem: stem, width: width)
        case "resnet50": return .resnet50(stem: stem, width: width)
        default:
            throw TrainingError.invalidConfiguration(
                "unknown model '\(text)'; expected resnet18 or resnet50, optionally with "
                    + "-cifar or -imagenet and a width such as @16")
        }
    }
}

/// A residual block: a branch of conv-BN(-ReLU) steps plus a shortcut, then ReLU.
final class ResidualBlock: Layer {
    let backend: Backend
    /// (conv, bn) pairs of the branch; a ReLU follows every pair but the last.
    let convs: [Conv2d]
    let norms: [BatchNorm]
    let reluBetween: [ReLU]
    let downsample: (conv: Conv2d, norm: BatchNorm)?
    let reluOut: ReLU

    init(_ backend: Backend, convs: [Conv2d], norms: [BatchNorm],
         downsample: (Conv2d, BatchNorm)?) {
        self.backend = backend
        self.convs = convs
        self.norms = norms
        self.reluBetween = (0..<(convs.count - 1)).map { _ in ReLU(backend) }
        self.downsample = downsample
        self.reluOut = ReLU(backend)
    }

    func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        var x = input
        for i in convs.indices {
            x = try norms[i].forward(convs[i].forward(x, training: training), training: training)
            if i < reluBetween.count { x = try reluBetween[i].forward(x, training: training) }
        }
        var shortcut = input
        if let downsample {
            shortcut = try downsample.norm.forward(
                downsample.conv.forward(input, training: training), training: training)
        }
        // x + shortcut into the branch output (owned here), then ReLU in place
        try backend.add(x, shortcut, output: x)
        return try reluOut.forward(x, training: training)
    }

    func backward(_ outputGradient: Tensor) throws -> Tensor {
        let g = try reluOut.backward(outputGradient)
        var branch = g
        for i in convs.indices.reversed() {
            if i < reluBetween.count { branch = try reluBetween[i].backward(branch) }
            branch = try convs[i].backward(norms[i].backward(branch))
        }
        if let downsample {
            let shortcut = try downsample.conv.backward(downsample.norm.backward(g))
            try backend.axpy(1, shortcut, branch)
        } else {
            try backend.axpy(1, g, branch)
        }
        return branch
    }

    var sublayers: [Layer] {
        var layers: [Layer] = convs + norms + reluBetween + [reluOut]
        if let downsample { layers += [downsample.conv, downsample.norm] }
        return layers
    }

    func namedParameters(prefix: String) -> [(String, Parameter)] {
        var named: [(String, Parameter)] = []
        for i in convs.indices {
            named += convs[i].namedParameters(prefix: join(prefix, "conv\(i + 1)"))
            named += norms[i].namedParameters(prefix: join(prefix, "bn\(i + 1)"))
        }
        if let downsample {
            named += downsample.conv.namedParameters(prefix: join(prefix, "downsample.0"))
            named += downsample.norm.namedParameters(prefix: join(prefix, "downsample.1"))
        }
        return named
    }

    func namedBuffers(prefix: String) -> [(String, Tensor)] {
        var named: [(String, Tensor)] = []
        for i in norms.indices {
            named += norms[i].namedBuffers(prefix: join(prefix, "bn\(i + 1)"))
        }
        if let downsample {
            named += downsample.norm.namedBuffers(prefix: join(prefix, "downsample.1"))
        }
        return named
    }
}

/// A ResNet encoder without its classifier: images [N, 3, H, W] → features [N, F].
public final class ResNet: Layer {
    public let config: ResNetConfig
    let backend: Backend
    let stemConv: Conv2d
    let stemNorm: BatchNorm
    let stemReLU: ReLU
    let stemPool: MaxPool2d?
    let stages: [[ResidualBlock]]
    let pool: GlobalAveragePool

    public init(_ backend: Backend, config: ResNetConfig, initializer: inout WeightInitializer)
        throws
    {
        guard config.blocks.count == 4, config.widths.count == 4,
            config.blocks.allSatisfy({ $0 > 0 }), config.widths.allSatisfy({ $0 > 0 })
        else {
            throw TrainingError.invalidConfiguration(
                "a ResNet needs 4 stages with positive block counts and widths")
        }
        self.config = config
        self.backend = backend
        let stemWidth = config.widths[0]

        // torchvision builds (and initialises) conv1, bn1, then the stages; the CIFAR conv1
        // replaces its conv1 afterwards with PyTorch's default init.
        func kaiming(_ c: Int, _ k: Int, _ r: Int) -> [Float] {
            initializer.kaimingNormalFanOut([k, c, r, r])
        }
        switch config.stem {
        case .imagenet:
            stemConv = try Conv2d(backend, 3, stemWidth, kernel: 7, stride: 2, padding: 3,
                                  weights: kaiming(3, stemWidth, 7))
            stemPool = MaxPool2d(backend, kernel: 3, stride: 2, padding: 1)
        case .cifar:
            stemConv = try Conv2d(backend, 3, stemWidth, kernel: 3, stride: 1, padding: 1,
                                  weights: initializer.pytorchDefault([stemWidth, 3, 3, 3]))
            stemPool = nil
        }
        stemNorm = try BatchNorm(backend, stemWidth)
        stemReLU = ReLU(backend)

        var stages: [[ResidualBlock]] = []
        var inChannels = stemWidth
        for (stage, (count, width)) in zip(config.blocks, config.widths).enumerated() {
            var blocks: [ResidualBlock] = []
            for index in 0..<count {
                let stride = index == 0 && stage > 0 ? 2 : 1
                let block: ResidualBlock
                switch config.block {
                case .basic:
                    let out = width
                    var downsample: (Conv2d, BatchNorm)? = nil
                    let convs = [
                        try Conv2d(backend, inChannels, width, kernel: 3, stride: stride,
                                   padding: 1, weights: kaiming(inChannels, width, 3)),
                        try Conv2d(backend, width, width, kernel: 3, padding: 1,
                                   weights: kaiming(width, width, 3)),
                    ]
                    let norms = [try BatchNorm(backend, width),
                                 try BatchNorm(backend, width, gammaValue: 0)]
                    if stride != 1 || inChannels != out {
                        downsample = (
                            try Conv2d(backend, inChannels, out, kernel: 1, stride: stride,
                                       weights: kaiming(inChannels, out, 1)),
                            try BatchNorm(backend, out)
                        )
                    }
                    block = ResidualBlock(backend, convs: convs, norms: norms,
                                          downsample: downsample)
                    inChannels = out
                case .bottleneck:
                    let out = width * 4
                    var downsample: (Conv2d, BatchNorm)? = nil
                    let convs = [
                        try Conv2d(backend, inChannels, width, kernel: 1,
                                   weights: kaiming(inChannels, width, 1)),
                        try Conv2d(backend, width, width, kernel: 3, stride: stride, padding: 1,
                                   weights: kaiming(width, width, 3)),
                        try Conv2d(backend, width, out, kernel: 1, weights: kaiming(width, out, 1)),
                    ]
                    let norms = [try BatchNorm(backend, width), try BatchNorm(backend, width),
                                 try BatchNorm(backend, out, gammaValue: 0)]
                    if stride != 1 || inChannels != out {
                        downsample = (
                            try Conv2d(backend, inChannels, out, kernel: 1, stride: stride,
                                       weights: kaiming(inChannels, out, 1)),
                            try BatchNorm(backend, out)
                        )
                    }
                    block = ResidualBlock(backend, convs: convs, norms: norms,
                                          downsample: downsample)
                    inChannels = out
                }
                blocks.append(block)
            }
            stages.append(blocks)
        }
        self.stages = stages
        pool = GlobalAveragePool(backend)
    }

    public var outputFeatures: Int { config.features }

    public var sublayers: [Layer] {
        var layers: [Layer] = [stemConv, stemNorm, stemReLU]
        if let stemPool { layers.append(stemPool) }
        return layers + stages.flatMap { $0 } + [pool]
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.rank == 4, input.shape[1] == 3 else {
            throw BackendError.shapeMismatch(
                "ResNet expects images [N, 3, H, W], got \(input.shape)")
        }
        var x = try stemReLU.forward(
            stemNorm.forward(stemConv.forward(input, training: training), training: training),
            training: training)
        if let stemPool { x = try stemPool.forward(x, training: training) }
        for stage in stages {
            for block in stage { x = try block.forward(x, training: training) }
        }
        return try pool.forward(x, training: training)
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        var g = try pool.backward(outputGradient)
        for stage in stages.reversed() {
            for block in stage.reversed() { g = try block.backward(g) }
        }
        if let stemPool { g = try stemPool.backward(g) }
        return try stemConv.backward(stemNorm.backward(stemReLU.backward(g)))
    }

    public func namedParameters(prefix: String) -> [(String, Parameter)] {
        var named = stemConv.namedParameters(prefix: join(prefix, "conv1"))
            + stemNorm.namedParameters(prefix: join(prefix, "bn1"))
        for (s, stage) in stages.enumerated() {
            for (b, block) in stage.enumerated() {
                named += block.namedParameters(prefix: join(prefix, "layer\(s + 1).\(b)"))
            }
        }
        return named
    }

    public func namedBuffers(prefix: String) -> [(String, Tensor)] {
        var named = stemNorm.namedBuffers(prefix: join(prefix, "bn1"))
        for (s, stage) in stages.enumerated() {
            for (b, block) in stage.enumerated() {
                named += block.namedBuffers(prefix: join(prefix, "layer\(s + 1).\(b)"))
            }
        }
        return named
    }
}
