// Projector.swift: the projector MLP of SPEC 1.2, built from a string such as
// "2048-2048-64".
//
//   plain  (CIFAR, Tiny ImageNet, ImageNet-100):
//          Linear(F, h1) + bias, ReLU, Linear(h1, h2) + bias, ReLU, ..., Linear(hk, D), no bias
//   batch-norm (the ImageNet-1K script):
//          Linear + bias, BatchNorm1d, ReLU for every hidden layer, then Linear, no bias
//
// No activation after the last layer. Parameter names are those of the reference's
// nn.Sequential (`0.weight`, `0.bias`, `2.weight`, ... for the plain layout; with batch norm
// the indices step by three). Linear layers use PyTorch's default init.

import Backend

public struct ProjectorConfig: Sendable, Equatable {
    /// Widths of the hidden layers and, last, the output width D.
    public var widths: [Int]
    /// BatchNorm1d after each hidden Linear (the ImageNet-1K variant).
    public var batchNorm: Bool

    public init(widths: [Int], batchNorm: Bool = false) {
        self.widths = widths
        self.batchNorm = batchNorm
    }

    /// Parses "2048-2048-64"; a trailing "+bn" (as in "8192-8192-512+bn") selects batch norm.
    public static func parse(_ text: String) throws -> ProjectorConfig {
        var body = text
        var batchNorm = false
        if body.hasSuffix("+bn") {
            batchNorm = true
            body.removeLast(3)
        }
        let widths = body.split(separator: "-", omittingEmptySubsequences: false).map { part in
            part.allSatisfy { $0.isASCII && $0.isNumber } ? Int(part) : nil
        }
        guard !widths.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw TrainingError.invalidConfiguration(
                "projector '\(text)': expected positive widths joined by '-', such as "
                    + "2048-2048-64 (add +bn for batch norm after hidden layers)")
        }
        return ProjectorConfig(widths: widths.map { $0! }, batchNorm: batchNorm)
    }

    /// The output width D.
    public var outputWidth: Int { widths.last! }

    public var description: String {
        widths.map(String.init).joined(separator: "-") + (batchNorm ? "+bn" : "")
    }
}

/// Builds the projector as a Sequential named like the reference's.
public func makeProjector(
    _ backend: Backend, inputFeatures: Int, config: ProjectorConfig,
    initializer: inout WeightInitializer
) throws -> Sequential {
    var layers: [Layer] = []
    var width = inputFeatures
    for (index, out) in config.widths.enumerated() {
        let last = index == config.widths.count - 1
        let weights = initializer.uniformBound([out, width], fanIn: width)
        let bias = last ? nil : initializer.uniformBound([out], fanIn: width)
        layers.append(try Linear(backend, width, out, weights: weights, bias: bias))
        if !last {
            if config.batchNorm { layers.append(try BatchNorm(backend, out)) }
            layers.append(ReLU(backend))
        }
        width = out
    }
    return Sequential(layers)
}
