// Model.swift: encoder + projector + L2 normalisation, the network CorInfoMax trains
// (SPEC 1), and the SGD optimiser of SPEC 5.1.
//
// Parameter names follow the reference's CovModel: `backbone.<torchvision name>` and
// `projector.<index>.<name>`.

import Backend

/// The encoder, its projector and the row normalisation of the embeddings.
public final class CorInfoMaxModel {
    public let backend: Backend
    public let encoder: ResNet
    public let projector: Sequential
    let normalize: L2Normalize

    public init(_ backend: Backend, encoder: ResNetConfig, projector: ProjectorConfig,
                seed: UInt64) throws {
        self.backend = backend
        var initializer = WeightInitializer(seed: seed)
        self.encoder = try ResNet(backend, config: encoder, initializer: &initializer)
        self.projector = try makeProjector(
            backend, inputFeatures: encoder.features, config: projector,
            initializer: &initializer)
        normalize = L2Normalize(backend)
    }

    /// z = normalize(projector(encoder(images))), [N, D].
    public func embed(_ images: Tensor, training: Bool) throws -> Tensor {
        let features = try encoder.forward(images, training: training)
        return try normalize.forward(projector.forward(features, training: training),
                                     training: training)
    }

    /// Backpropagates ∂L/∂z of the most recent training-mode `embed` not yet backpropagated,
    /// adding to every parameter gradient.
    public func backward(_ embeddingGradient: Tensor) throws {
        _ = try encoder.backward(projector.backward(normalize.backward(embeddingGradient)))
    }

    /// Encoder features [N, F] in evaluation mode (running BN statistics), for kNN and linear
    /// evaluation.
    public func features(_ images: Tensor) throws -> Tensor {
        try encoder.forward(images, training: false)
    }

    public func namedParameters() -> [(String, Parameter)] {
        encoder.namedParameters(prefix: "backbone") + projector.namedParameters(prefix: "projector")
    }

    public func namedBuffers() -> [(String, Tensor)] {
        encoder.namedBuffers(prefix: "backbone") + projector.namedBuffers(prefix: "projector")
    }

    public var parameters: [Parameter] { namedParameters().map(\.1) }

    /// Every batch-norm layer of encoder and projector.
    public var batchNorms: [BatchNorm] {
        (encoder.allLayers + projector.allLayers).compactMap { $0 as? BatchNorm }
    }

    /// Synchronises every batch norm with the other replicas (nil: local statistics).
    public func synchronizeBatchNorm(with communicator: Communicator?) {
        for norm in batchNorms { norm.communicator = communicator }
    }

    /// Every parameter and buffer by name, downloaded to the host.
    public func state() throws -> [String: (shape: [Int], values: [Float])] {
        var state: [String: (shape: [Int], values: [Float])] = [:]
        for (name, parameter) in namedParameters() {
            state[name] = (parameter.value.shape, try backend.download(parameter.value))
        }
        for (name, buffer) in namedBuffers() {
            state[name] = (buffer.shape, try backend.download(buffer))
        }
        return state
    }

    /// Overwrites parameters and buffers from `values` by name. Every name of the model must
    /// be present with the right number of values; names the model does not have are
    /// refused too, so a checkpoint of another architecture cannot load half-way.
    public func loadState(_ values: [String: [Float]], prefix: String = "") throws {
        let targets = namedParameters().map { ($0.0, $0.1.value) } + namedBuffers()
        var unused = Set(values.keys.filter { $0.hasPrefix(prefix) })
        var problems: [String] = []
        var uploads: [(Tensor, [Float])] = []
        for (name, tensor) in targets {
            guard let data = values[prefix + name] else {
                problems.append("missing \(prefix + name)")
                continue
            }
            unused.remove(prefix + name)
            guard data.count == tensor.count else {
                problems.append(
                    "\(prefix + name) has \(data.count) values, the model \(tensor.shape)")
                continue
            }
            uploads.append((tensor, data))
        }
        problems += unused.sorted().map { "unexpected \($0)" }
        guard problems.isEmpty else {
            throw TrainingError.mismatch(
                "state does not match the model: " + problems.prefix(5).joined(separator: "; ")
                    + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""))
        }
        // only once everything matched: a refused state changes nothing
        for (tensor, data) in uploads {
            try data.withUnsafeBytes { try backend.upload($0, to: tensor) }
        }
    }

    public func zeroGradients() throws {
        for parameter in parameters { try backend.fill(parameter.gradient, value: 0) }
    }
}

/// SGD with momentum and weight decay on every parameter, biases and BN included
/// (SPEC 5.1): d = g + wd θ; buf = μ buf + d; θ −= lr buf.
public struct SGD: Sendable {
    public var momentum: Double
    public var weightDecay: Double

    public init(momentum: Double = 0.9, weightDecay: Double = 1e-4) {
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter], learningRate: Double, on backend: Backend)
        throws
    {
        for parameter in parameters {
            try backend.sgdUpdate(
                parameter: parameter.value, gradient: parameter.gradient,
                momentumBuffer: parameter.momentum, learningRate: learningRate,
                momentum: momentum, weightDecay: weightDecay)
        }
    }
}

/// The result of one training step.
public struct StepResult: Sendable {
    public var loss: LossValue
}

/// One replica's training step: both views through the network in separate passes (batch
/// statistics per view), the loss, the backward pass and the SGD update.
public final class CorInfoMaxTrainer {
    public let model: CorInfoMaxModel
    public let loss: CorInfoMaxLoss
    public var optimizer: SGD
    /// The other replicas: loss statistics and parameter gradients are summed across them.
    /// nil for a single device.
    public let communicator: Communicator?

    public init(model: CorInfoMaxModel, loss: CorInfoMaxLoss, optimizer: SGD,
                communicator: Communicator? = nil) throws {
        self.communicator = communicator
        guard model.projector.layers.last.map({ ($0 as? Linear)?.outFeatures })
            == loss.hyper.dimension
        else {
            throw TrainingError.invalidConfiguration(
                "projector output width differs from the loss dimension "
                    + "D = \(loss.hyper.dimension)")
        }
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
    }

    /// Computes the loss and parameter gradients without updating the weights. With
    /// replicas, `view1` and `view2` are this replica's rows of the global batch, and the
    /// loss and gradients come out as those of the whole batch (SPEC 3.3).
    public func computeGradients(view1: Tensor, view2: Tensor) throws -> LossValue {
        let backend = model.backend
        try model.zeroGradients()
        let z1 = try model.embed(view1, training: true)
        let z2 = try model.embed(view2, training: true)
        let (rows1, rows2): ([Float], [Float]) = (
            try backend.download(z1), try backend.download(z2))
        var statistics = try loss.statistics(z1: rows1, z2: rows2)
        if let communicator, communicator.size > 1 {
            statistics = try Self.allReduce(statistics, communicator)
        }
        let (value, context) = try loss.update(with: statistics)
        let (dz1, dz2) = try loss.gradient(z1: rows1, z2: rows2, context: context)
        // backward in reverse order of the forwards (each layer's saved state is a stack)
        try model.backward(backend.tensor(dz2, shape: z2.shape))
        try model.backward(backend.tensor(dz1, shape: z1.shape))
        if let communicator, communicator.size > 1 { try sumGradients(communicator) }
        return value
    }

    /// Sums the sufficient statistics over replicas: rows, invariance, Σz and the packed
    /// lower triangle of Σzzᵀ per view, in one float64 all-reduce.
    static func allReduce(_ local: LossStatistics, _ communicator: Communicator) throws
        -> LossStatistics
    {
        let d = local.sums[0].count
        var packed = [Double(local.rows), local.invariance]
        for v in 0..<2 {
            packed += local.sums[v]
            for i in 0..<d { packed += local.outerProducts[v][(i * d)...(i * d + i)] }
        }
        try communicator.allReduceSum(&packed)
        var global = local
        global.rows = Int(packed[0].rounded())
        global.invariance = packed[1]
        var offset = 2
        for v in 0..<2 {
            global.sums[v] = Array(packed[offset..<(offset + d)])
            offset += d
            for i in 0..<d {
                for j in 0...i {
                    global.outerProducts[v][i * d + j] = packed[offset]
                    global.outerProducts[v][j * d + i] = packed[offset]
                    offset += 1
                }
            }
        }
        return global
    }

    /// Adds every replica's parameter gradients (each holds its rows' exact share).
    func sumGradients(_ communicator: Communicator) throws {
        let backend = model.backend
        let parameters = model.parameters
        var flat: [Float] = []
        flat.reserveCapacity(parameters.reduce(0) { $0 + $1.gradient.count })
        for parameter in parameters { flat += try backend.download(parameter.gradient) as [Float] }
        try communicator.allReduceSum(&flat)
        var offset = 0
        for parameter in parameters {
            let count = parameter.gradient.count
            try flat[offset..<(offset + count)].withUnsafeBytes {
                try backend.upload($0, to: parameter.gradient)
            }
            offset += count
        }
    }

    /// A fingerprint of every parameter and buffer (FNV-1a over the bytes), to check that
    /// replicas hold identical weights.
    public func parameterFingerprint() throws -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let tensors = model.namedParameters().map { $0.1.value } + model.namedBuffers().map(\.1)
        for tensor in tensors {
            let values: [Float] = try model.backend.download(tensor)
            values.withUnsafeBytes { bytes in
                for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            }
        }
        return hash
    }

    /// One full step at `learningRate`.
    public func step(view1: Tensor, view2: Tensor, learningRate: Double) throws -> StepResult {
        let value = try computeGradients(view1: view1, view2: view2)
        try optimizer.step(model.parameters, learningRate: learningRate, on: model.backend)
        return StepResult(loss: value)
    }
}
