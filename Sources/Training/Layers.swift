// Layers.swift: convolution, batch norm, ReLU, linear, pooling and L2 normalisation, each
// with its forward and hand-written backward on a Backend (the math is in the CKernels file
// of each op).
//
// What each keeps for backward (released when backward pops it):
//   Conv2d       its input                 dW needs x; dx needs only W
//   BatchNorm    its input, mean, 1/std    dx, dγ, dβ (SPEC: eps 1e-5, momentum 0.1)
//   ReLU         its output (in place)     dx = dy [y > 0]; the input is overwritten
//   Linear       its input                 dW = dYᵀ X, db = Σ dY, dX = dY W
//   MaxPool2d    the winners' indices
//   AvgPool      the input shape

import Backend

/// 2-D convolution without bias (NCHW), as torch.nn.Conv2d(bias=False).
public final class Conv2d: Layer {
    public let backend: Backend
    public let weight: Parameter
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    private var saved = SavedStack<Tensor>()

    public init(_ backend: Backend, _ inChannels: Int, _ outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Int = 0, weights: [Float]) throws {
        self.backend = backend
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        weight = try Parameter(weights, shape: [outChannels, inChannels, kernel, kernel],
                               on: backend)
    }

    func geometry(_ input: Tensor) throws -> Conv2DGeometry {
        guard input.rank == 4, input.shape[1] == inChannels else {
            throw BackendError.shapeMismatch(
                "Conv2d(\(inChannels)->\(outChannels)) got input \(input.shape)")
        }
        return Conv2DGeometry(
            batch: input.shape[0], inChannels: inChannels, inHeight: input.shape[2],
            inWidth: input.shape[3], outChannels: outChannels, kernel: kernel, stride: stride,
            padding: padding)
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let g = try geometry(input)
        let output = try backend.allocate(.float32, g.outputShape)
        try backend.conv2dForward(input: input, weight: weight.value, output: output, geometry: g)
        if training { saved.push(input) }
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let input = try saved.pop("Conv2d")
        let g = try geometry(input)
        try backend.conv2dBackwardFilter(
            input: input, outputGradient: outputGradient, weightGradient: weight.gradient,
            geometry: g, accumulate: true)
        let inputGradient = try backend.allocate(.float32, g.inputShape)
        try backend.conv2dBackwardData(
            outputGradient: outputGradient, weight: weight.value, inputGradient: inputGradient,
            geometry: g)
        return inputGradient
    }

    public func namedParameters(prefix: String) -> [(String, Parameter)] {
        [(join(prefix, "weight"), weight)]
    }
}

/// Batch normalisation over dimension 1 of [N, C] or [N, C, H, W]: BatchNorm1d / 2d.
///
/// With a `communicator` of more than one rank it is synchronised batch norm (SPEC 3.2): the
/// batch statistics and the backward sums are all-reduced across replicas, so K replicas
/// normalise with the statistics of the whole global batch, as one device would.
public final class BatchNorm: Layer {
    public let backend: Backend
    public let channels: Int
    public let gamma: Parameter, beta: Parameter
    public let runningMean: Tensor, runningVar: Tensor
    public let momentum: Double, epsilon: Double
    /// Replicas to synchronise with; nil (or one rank) normalises with local statistics.
    public var communicator: Communicator?
    private var saved = SavedStack<(input: Tensor, mean: Tensor, invStd: Tensor, count: Double)>()

    /// γ = `gammaValue` (1, or 0 for the last BN of a residual branch), β = 0, running mean
    /// 0 and variance 1, as PyTorch initialises them.
    public init(_ backend: Backend, _ channels: Int, gammaValue: Float = 1,
                momentum: Double = 0.1, epsilon: Double = 1e-5) throws {
        self.backend = backend
        self.channels = channels
        self.momentum = momentum
        self.epsilon = epsilon
        gamma = try Parameter([Float](repeating: gammaValue, count: channels), shape: [channels],
                              on: backend)
        beta = try Parameter([Float](repeating: 0, count: channels), shape: [channels], on: backend)
        runningMean = try backend.zeros(.float32, [channels])
        runningVar = try backend.tensor([Float](repeating: 1, count: channels), shape: [channels])
    }

    var synchronised: Bool { (communicator?.size ?? 1) > 1 }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let output = try backend.allocate(.float32, input.shape)
        if training && synchronised {
            try synchronisedForward(input, output)
        } else if training {
            let mean = try backend.allocate(.float32, [channels])
            let invStd = try backend.allocate(.float32, [channels])
            try backend.batchNormForward(
                input: input, gamma: gamma.value, beta: beta.value, runningMean: runningMean,
                runningVar: runningVar, output: output, savedMean: mean, savedInvStd: invStd,
                training: true, momentum: momentum, epsilon: epsilon)
            saved.push((input, mean, invStd, 0))
        } else {
            try backend.batchNormForward(
                input: input, gamma: gamma.value, beta: beta.value, runningMean: runningMean,
                runningVar: runningVar, output: output, savedMean: nil, savedInvStd: nil,
                training: false, momentum: momentum, epsilon: epsilon)
        }
        return output
    }

    /// Global mean, then the global sum of squared deviations about it (two reductions, so
    /// no E[x²] − E[x]² cancellation), then y = γ (x − mean) / std + β.
    private func synchronisedForward(_ input: Tensor, _ output: Tensor) throws {
        let communicator = communicator!
        let c = channels
        let sums = try backend.allocate(.float64, [c])
        try backend.channelSums(input: input, center: nil, sums: sums)
        var first: [Double] = try backend.download(sums)
        first.append(Double(input.count / c))   // this replica's values per channel
        try communicator.allReduceSum(&first)
        let count = first[c]
        guard count >= 2 else {
            throw BackendError.shapeMismatch("batch norm needs more than one value per channel")
        }
        let meanDouble = first[0..<c].map { $0 / count }
        let meanFloat = meanDouble.map { Float($0) }
        let mean = try backend.tensor(meanFloat, shape: [c])
        try backend.channelSums(input: input, center: mean, sums: sums)
        var squares: [Double] = try backend.download(sums)
        try communicator.allReduceSum(&squares)
        // deviations were taken about the float mean; shift them to the exact one
        let variance = (0..<c).map { i -> Double in
            let offset = Double(meanFloat[i]) - meanDouble[i]
            return max(squares[i] / count - offset * offset, 0)
        }
        let invStd = variance.map { 1 / ($0 + epsilon).squareRoot() }

        // running statistics, as PyTorch (unbiased variance with the global count)
        var runningM: [Float] = try backend.download(runningMean)
        var runningV: [Float] = try backend.download(runningVar)
        for i in 0..<c {
            runningM[i] = Float((1 - momentum) * Double(runningM[i]) + momentum * meanDouble[i])
            runningV[i] = Float((1 - momentum) * Double(runningV[i])
                                + momentum * variance[i] * count / (count - 1))
        }
        try runningM.withUnsafeBytes { try backend.upload($0, to: runningMean) }
        try runningV.withUnsafeBytes { try backend.upload($0, to: runningVar) }

        let g: [Float] = try backend.download(gamma.value)
        let b: [Float] = try backend.download(beta.value)
        let scale = (0..<c).map { Float(Double(g[$0]) * invStd[$0]) }
        let shift = (0..<c).map {
            Float(Double(b[$0]) - Double(g[$0]) * invStd[$0] * meanDouble[$0])
        }
        try backend.channelAffine(input: input, scale: backend.tensor(scale, shape: [c]),
                                  shift: backend.tensor(shift, shape: [c]), output: output)
        saved.push((input, mean, try backend.tensor(invStd.map { Float($0) }, shape: [c]), count))
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let (input, mean, invStd, count) = try saved.pop("BatchNorm")
        let inputGradient = try backend.allocate(.float32, input.shape)
        if count > 0 {
            try synchronisedBackward(outputGradient, input, mean, invStd, count, inputGradient)
            return inputGradient
        }
        try backend.batchNormBackward(
            outputGradient: outputGradient, input: input, gamma: gamma.value, savedMean: mean,
            savedInvStd: invStd, inputGradient: inputGradient, gammaGradient: gamma.gradient,
            betaGradient: beta.gradient, accumulate: true)
        return inputGradient
    }

    /// dx from the global sums Σ dy and Σ dy (x − mean); dγ and dβ from the local ones (the
    /// parameter gradients are summed across replicas afterwards).
    private func synchronisedBackward(
        _ outputGradient: Tensor, _ input: Tensor, _ mean: Tensor, _ invStdTensor: Tensor,
        _ count: Double, _ inputGradient: Tensor
    ) throws {
        let c = channels
        let sumsTensor = try backend.allocate(.float64, [2, c])
        try backend.batchNormBackwardSums(
            outputGradient: outputGradient, input: input, mean: mean, sums: sumsTensor)
        let local: [Double] = try backend.download(sumsTensor)
        var global = local
        try communicator!.allReduceSum(&global)
        let invStd: [Float] = try backend.download(invStdTensor)
        let g: [Float] = try backend.download(gamma.value)
        var coefficients = [Float](repeating: 0, count: 3 * c)
        for i in 0..<c {
            let inv = Double(invStd[i])
            let k = Double(g[i]) * inv / count
            let sumGXhat = global[c + i] * inv
            coefficients[i] = Float(k * count)
            coefficients[c + i] = Float(-k * inv * sumGXhat)
            coefficients[2 * c + i] = Float(-k * global[i])
        }
        try backend.batchNormBackwardApply(
            outputGradient: outputGradient, input: input, mean: mean,
            coefficients: backend.tensor(coefficients, shape: [3, c]), inputGradient: inputGradient)
        let dGamma = (0..<c).map { Float(local[c + $0] * Double(invStd[$0])) }
        let dBeta = (0..<c).map { Float(local[$0]) }
        try backend.axpy(1, backend.tensor(dGamma, shape: [c]), gamma.gradient)
        try backend.axpy(1, backend.tensor(dBeta, shape: [c]), beta.gradient)
    }

    public func namedParameters(prefix: String) -> [(String, Parameter)] {
        [(join(prefix, "weight"), gamma), (join(prefix, "bias"), beta)]
    }

    public func namedBuffers(prefix: String) -> [(String, Tensor)] {
        [(join(prefix, "running_mean"), runningMean), (join(prefix, "running_var"), runningVar)]
    }
}

/// max(x, 0), in place like torchvision's ReLU(inplace=True): the input tensor is
/// overwritten and becomes the output.
public final class ReLU: Layer {
    public let backend: Backend
    private var saved = SavedStack<Tensor>()

    public init(_ backend: Backend) { self.backend = backend }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        try backend.relu(input, output: input)
        if training { saved.push(input) }
        return input
    }

    /// Writes the input gradient over `outputGradient`, which callers hand over.
    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let output = try saved.pop("ReLU")
        try backend.reluBackward(
            outputGradient: outputGradient, output: output, inputGradient: outputGradient)
        return outputGradient
    }
}

/// y = x Wᵀ + b on [N, in] rows, as torch.nn.Linear.
public final class Linear: Layer {
    public let backend: Backend
    public let weight: Parameter
    public let bias: Parameter?
    public let inFeatures: Int, outFeatures: Int
    private var saved = SavedStack<Tensor>()

    public init(_ backend: Backend, _ inFeatures: Int, _ outFeatures: Int, weights: [Float],
                bias: [Float]?) throws {
        self.backend = backend
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = try Parameter(weights, shape: [outFeatures, inFeatures], on: backend)
        self.bias = try bias.map { try Parameter($0, shape: [outFeatures], on: backend) }
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.rank == 2, input.shape[1] == inFeatures else {
            throw BackendError.shapeMismatch(
                "Linear(\(inFeatures)->\(outFeatures)) got input \(input.shape)")
        }
        let output = try backend.allocate(.float32, [input.shape[0], outFeatures])
        try backend.gemm(input, transposeA: false, weight.value, transposeB: true, into: output,
                         alpha: 1, beta: 0)
        if let bias { try backend.addBias(bias.value, to: output) }
        if training { saved.push(input) }
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let input = try saved.pop("Linear")
        // dW += dYᵀ X, db += Σ_n dY, dX = dY W
        try backend.gemm(outputGradient, transposeA: true, input, transposeB: false,
                         into: weight.gradient, alpha: 1, beta: 1)
        if let bias { try backend.columnSum(outputGradient, into: bias.gradient, accumulate: true) }
        let inputGradient = try backend.allocate(.float32, input.shape)
        try backend.gemm(outputGradient, transposeA: false, weight.value, transposeB: false,
                         into: inputGradient, alpha: 1, beta: 0)
        return inputGradient
    }

    public func namedParameters(prefix: String) -> [(String, Parameter)] {
        var named = [(join(prefix, "weight"), weight)]
        if let bias { named.append((join(prefix, "bias"), bias)) }
        return named
    }
}

/// Mean over each feature map: [N, C, H, W] → [N, C].
public final class GlobalAveragePool: Layer {
    public let backend: Backend
    private var saved = SavedStack<[Int]>()

    public init(_ backend: Backend) { self.backend = backend }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let output = try backend.allocate(.float32, Array(input.shape.prefix(2)))
        try backend.globalAveragePool(input: input, output: output)
        if training { saved.push(input.shape) }
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let shape = try saved.pop("GlobalAveragePool")
        let inputGradient = try backend.allocate(.float32, shape)
        try backend.globalAveragePoolBackward(
            outputGradient: outputGradient, inputGradient: inputGradient)
        return inputGradient
    }
}

/// Max pooling (the ImageNet stem's 3x3, stride 2, padding 1).
public final class MaxPool2d: Layer {
    public let backend: Backend
    public let kernel: Int, stride: Int, padding: Int
    private var saved = SavedStack<(argmax: Tensor, geometry: Pool2DGeometry)>()

    public init(_ backend: Backend, kernel: Int, stride: Int, padding: Int) {
        self.backend = backend
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.rank == 4 else {
            throw BackendError.shapeMismatch("MaxPool2d needs [N, C, H, W], got \(input.shape)")
        }
        let g = Pool2DGeometry(
            batch: input.shape[0], channels: input.shape[1], inHeight: input.shape[2],
            inWidth: input.shape[3], kernel: kernel, stride: stride, padding: padding)
        let output = try backend.allocate(.float32, g.outputShape)
        let argmax = try backend.allocate(.int32, g.outputShape)
        try backend.maxPool2dForward(input: input, output: output, argmax: argmax, geometry: g)
        if training { saved.push((argmax, g)) }
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let (argmax, g) = try saved.pop("MaxPool2d")
        let inputGradient = try backend.allocate(.float32, g.inputShape)
        try backend.maxPool2dBackward(
            outputGradient: outputGradient, argmax: argmax, inputGradient: inputGradient,
            geometry: g)
        return inputGradient
    }
}

/// Rows divided by their L2 norm, clamped below at `epsilon` (SPEC 1.3).
public final class L2Normalize: Layer {
    public let backend: Backend
    public let epsilon: Double
    private var saved = SavedStack<(output: Tensor, norms: Tensor)>()

    public init(_ backend: Backend, epsilon: Double = 1e-12) {
        self.backend = backend
        self.epsilon = epsilon
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let output = try backend.allocate(.float32, input.shape)
        let norms = try backend.allocate(.float32, [input.shape.first ?? 0])
        try backend.l2NormalizeRows(input: input, output: output, norms: norms, epsilon: epsilon)
        if training { saved.push((output, norms)) }
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        let (output, norms) = try saved.pop("L2Normalize")
        let inputGradient = try backend.allocate(.float32, output.shape)
        try backend.l2NormalizeRowsBackward(
            outputGradient: outputGradient, output: output, norms: norms,
            inputGradient: inputGradient, epsilon: epsilon)
        return inputGradient
    }
}
