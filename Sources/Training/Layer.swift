// Layer.swift: parameters, the layer protocol and the forward/backward bookkeeping every
// layer shares.
//
// Forward and backward are written by hand. A training-mode forward pushes what its
// backward needs onto the layer's own stack and the backward pops it, so one layer can run
// forward twice before any backward (CorInfoMax passes its two views through the encoder in
// separate calls, SPEC 1.1) and the saved activations are released as soon as their
// backward has run. Backward passes ADD to the parameter gradients: the two views'
// gradients sum, and `zeroGradients()` clears them before a step.

import Backend

/// A learnable tensor with its gradient and its SGD momentum buffer, all on one backend.
public final class Parameter {
    public let value: Tensor
    public let gradient: Tensor
    public let momentum: Tensor

    init(_ value: Tensor, on backend: Backend) throws {
        self.value = value
        self.gradient = try backend.zeros(.float32, value.shape)
        self.momentum = try backend.zeros(.float32, value.shape)
    }

    /// A parameter initialised from host values.
    convenience init(_ values: [Float], shape: [Int], on backend: Backend) throws {
        try self.init(backend.tensor(values, shape: shape), on: backend)
    }
}

/// A piece of a network with a hand-written backward pass.
public protocol Layer: AnyObject {
    /// The output for `input`. In training mode the layer keeps what its backward needs.
    func forward(_ input: Tensor, training: Bool) throws -> Tensor
    /// The input gradient for the most recent training-mode forward not yet backpropagated;
    /// parameter gradients are added to.
    func backward(_ outputGradient: Tensor) throws -> Tensor
    /// Learnable tensors under PyTorch-style names ("conv1.weight", "layer1.0.bn1.bias").
    func namedParameters(prefix: String) -> [(String, Parameter)]
    /// Non-learnable state under PyTorch-style names ("bn1.running_mean").
    func namedBuffers(prefix: String) -> [(String, Tensor)]
    /// The layers this one is made of (for walks such as "every batch norm").
    var sublayers: [Layer] { get }
}

extension Layer {
    public func namedParameters(prefix: String) -> [(String, Parameter)] { [] }
    public func namedBuffers(prefix: String) -> [(String, Tensor)] { [] }
    public var sublayers: [Layer] { [] }

    /// This layer and every layer inside it, depth first.
    public var allLayers: [Layer] { [self] + sublayers.flatMap(\.allLayers) }

    /// Every parameter, in a fixed order.
    public var parameters: [Parameter] { namedParameters(prefix: "").map(\.1) }

    /// Sets every parameter gradient to zero.
    public func zeroGradients(on backend: Backend) throws {
        for parameter in parameters { try backend.fill(parameter.gradient, value: 0) }
    }
}

/// Joins a prefix and a name with a dot, PyTorch style.
func join(_ prefix: String, _ name: String) -> String {
    prefix.isEmpty ? name : prefix + "." + name
}

/// Saved forward state, last in first out.
struct SavedStack<Element> {
    private var items: [Element] = []

    mutating func push(_ item: Element) { items.append(item) }

    mutating func pop(_ layer: String) throws -> Element {
        guard let item = items.popLast() else {
            throw TrainingError.backwardWithoutForward(layer)
        }
        return item
    }

    var isEmpty: Bool { items.isEmpty }
}

/// Layers run one after another; backward runs them in reverse.
public final class Sequential: Layer {
    public let layers: [Layer]
    /// PyTorch index names of the layers ("0", "1", ...), as nn.Sequential numbers them.
    public init(_ layers: [Layer]) { self.layers = layers }

    public var sublayers: [Layer] { layers }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        var x = input
        for layer in layers { x = try layer.forward(x, training: training) }
        return x
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        var g = outputGradient
        for layer in layers.reversed() { g = try layer.backward(g) }
        return g
    }

    public func namedParameters(prefix: String) -> [(String, Parameter)] {
        layers.enumerated().flatMap { $1.namedParameters(prefix: join(prefix, "\($0)")) }
    }

    public func namedBuffers(prefix: String) -> [(String, Tensor)] {
        layers.enumerated().flatMap { $1.namedBuffers(prefix: join(prefix, "\($0)")) }
    }
}
