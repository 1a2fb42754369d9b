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
        for (name, tensor) in targets {
            guard let data = values[prefix + name] else {
                problems.append("missing \(prefix + name)")
                continue
            }
            unused.remove(prefix + name)
            guard data.count == tensor.count else {
                problems.append("\(prefix + name) has \(data.count) values, the model \(tensor.shape)")
                continue
            }
            try data.withUnsafeBytes { try backend.upload($0, to: tensor) }
        }
        problems += unused.sorted().map { "unexpected \($0)" }
        guard problems.isEmpty else {
            throw TrainingError.mismatch(
                "state does not match the model: " + problems.prefix(5).joined(separator: "; ")
                    + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""))
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

    public init(model: CorInfoMaxModel, loss: CorInfoMaxLoss, optimizer: SGD) throws {
        guard model.projector.layers.last.map({ ($0 as? Linear)?.outFeatures }) == loss.hyper.dimension
        else {
            throw TrainingError.invalidConfiguration(
                "projector output width differs from the loss dimension D = \(loss.hyper.dimension)")
        }
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
    }

    /// Computes the loss and parameter gradients without updating the weights.
    public func computeGradients(view1: Tensor, view2: Tensor) throws -> LossValue {
        let backend = model.backend
        try model.zeroGradients()
        let z1 = try model.embed(view1, training: true)
        let z2 = try model.embed(view2, training: true)
        let (value, dz1, dz2) = try loss(z1: backend.download(z1), z2: backend.download(z2))
        // backward in reverse order of the forwards (each layer's saved state is a stack)
        try model.backward(backend.tensor(dz2, shape: z2.shape))
        try model.backward(backend.tensor(dz1, shape: z1.shape))
        return value
    }

    /// One full step at `learningRate`.
    public func step(view1: Tensor, view2: Tensor, learningRate: Double) throws -> StepResult {
        let value = try computeGradients(view1: view1, view2: view2)
        try optimizer.step(model.parameters, learningRate: learningRate, on: model.backend)
        return StepResult(loss: value)
    }
}
