// Backend.swift: the protocol every compute device implements, and the shape checks that
// all of them share.
//
// The protocol is small on purpose: memory (allocate, upload, download, copy, synchronize)
// and one entry point per op family. Ops take tensors that live on the same backend and
// check their shapes before any work, throwing BackendError.shapeMismatch with the shapes
// they got; a backend then only has to run the math.

import CKernels

/// Geometry of a 2-D convolution over NCHW tensors (no bias, no dilation), as PyTorch's
/// `conv2d(x, w, stride=(sh, sw), padding=(ph, pw))`.
///
/// ```
/// P = (H + 2 ph - R) / sh + 1,   Q = (W + 2 pw - S) / sw + 1
/// y[n,k,p,q] = Σ_{c,r,s} w[k,c,r,s] · x[n, c, p·sh − ph + r, q·sw − pw + s]
/// ```
public struct Conv2DGeometry: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int, inChannels: Int, inHeight: Int, inWidth: Int
    public var outChannels: Int, kernelHeight: Int, kernelWidth: Int
    public var strideHeight: Int, strideWidth: Int, padHeight: Int, padWidth: Int

    public init(
        batch: Int, inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int,
        kernel: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0)
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.outChannels = outChannels
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (padHeight, padWidth) = padding
    }

    /// Square kernel, stride and padding.
    public init(
        batch: Int, inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int,
        kernel: Int, stride: Int = 1, padding: Int = 0
    ) {
        self.init(
            batch: batch, inChannels: inChannels, inHeight: inHeight, inWidth: inWidth,
            outChannels: outChannels, kernel: (kernel, kernel), stride: (stride, stride),
            padding: (padding, padding))
    }

    public var outHeight: Int { (inHeight + 2 * padHeight - kernelHeight) / strideHeight + 1 }
    public var outWidth: Int { (inWidth + 2 * padWidth - kernelWidth) / strideWidth + 1 }

    public var inputShape: [Int] { [batch, inChannels, inHeight, inWidth] }
    public var weightShape: [Int] { [outChannels, inChannels, kernelHeight, kernelWidth] }
    public var outputShape: [Int] { [batch, outChannels, outHeight, outWidth] }

    /// Multiply-adds times two for one pass (forward, backward data or backward filter).
    public var flops: Double {
        2.0 * Double(batch * outChannels * outHeight * outWidth)
            * Double(inChannels * kernelHeight * kernelWidth)
    }

    public var description: String {
        "N\(batch) C\(inChannels) \(inHeight)x\(inWidth) -> K\(outChannels) "
            + "kernel \(kernelHeight)x\(kernelWidth) stride \(strideHeight)x\(strideWidth) "
            + "pad \(padHeight)x\(padWidth)"
    }

    /// Throws when sizes are not positive or the kernel does not fit the padded input.
    public func validate() throws {
        let sizes = [batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth]
        guard sizes.allSatisfy({ $0 > 0 }), strideHeight > 0, strideWidth > 0,
            padHeight >= 0, padWidth >= 0
        else { throw BackendError.shapeMismatch("invalid convolution geometry \(self)") }
        guard inHeight + 2 * padHeight >= kernelHeight, inWidth + 2 * padWidth >= kernelWidth
        else {
            throw BackendError.shapeMismatch(
                "kernel \(kernelHeight)x\(kernelWidth) larger than padded input in \(self)")
        }
    }
}

/// Geometry of a 2-D max pooling over NCHW tensors, as PyTorch's
/// `max_pool2d(x, kernel, stride, padding)` (padding never wins: it acts as −∞).
public struct Pool2DGeometry: Sendable, Equatable {
    public var batch: Int, channels: Int, inHeight: Int, inWidth: Int
    public var kernel: Int, stride: Int, padding: Int

    public init(batch: Int, channels: Int, inHeight: Int, inWidth: Int, kernel: Int,
                stride: Int, padding: Int) {
        self.batch = batch
        self.channels = channels
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    public var outHeight: Int { (inHeight + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (inWidth + 2 * padding - kernel) / stride + 1 }
    public var inputShape: [Int] { [batch, channels, inHeight, inWidth] }
    public var outputShape: [Int] { [batch, channels, outHeight, outWidth] }
}

/// A compute device: memory plus one entry point per op family.
public protocol Backend: AnyObject, Sendable {
    /// The device as the command line names it ("cpu", "cuda:0", "opencl:1").
    var deviceName: String { get }
    /// A one-line description (model, threads, library versions).
    var deviceDetail: String { get }

    // MARK: Memory

    /// A tensor of the given type and shape; contents undefined.
    func allocate(_ dtype: DType, _ shape: [Int]) throws -> Tensor
    /// Copies `source.count` bytes from host memory into the tensor.
    func upload(_ source: UnsafeRawBufferPointer, to tensor: Tensor) throws
    /// Copies the tensor into host memory (`destination.count` must equal its byte count).
    func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer) throws
    /// Copies one tensor into another of the same type and element count.
    func copy(_ source: Tensor, to destination: Tensor) throws
    /// Waits until every queued operation has finished.
    func synchronize() throws

    // MARK: Ops

    /// `c = alpha · op(a) · op(b) + beta · c` on 2-D tensors, float32 or float64.
    func gemm(
        _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor,
        alpha: Double, beta: Double) throws

    /// `output = conv(input, weight)` (overwrites output).
    func conv2dForward(
        input: Tensor, weight: Tensor, output: Tensor, geometry: Conv2DGeometry) throws

    /// `inputGradient = ∂L/∂input` from `outputGradient` (overwrites).
    func conv2dBackwardData(
        outputGradient: Tensor, weight: Tensor, inputGradient: Tensor,
        geometry: Conv2DGeometry) throws

    /// `weightGradient (+)= ∂L/∂weight` from the input and `outputGradient`.
    func conv2dBackwardFilter(
        input: Tensor, outputGradient: Tensor, weightGradient: Tensor,
        geometry: Conv2DGeometry, accumulate: Bool) throws

    /// Log-determinants (and optionally inverses) of a batch of SPD float64 matrices
    /// `[B, n, n]` by Cholesky. A matrix that is not positive definite throws
    /// ``BackendError/notPositiveDefinite(batchIndex:message:)`` naming its index.
    func logdetSPD(_ matrices: Tensor, logdet: Tensor, inverse: Tensor?) throws

    // MARK: Layers (float32; tensors are [N, C] or [N, C, ...] where channels apply)

    /// Batch normalisation over dimension 1. Training mode uses the batch statistics,
    /// updates the running ones (`new = (1 − momentum) old + momentum batch`, unbiased
    /// variance) and fills `savedMean` and `savedInvStd` for the backward pass; evaluation
    /// mode uses the running statistics.
    func batchNormForward(
        input: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
        output: Tensor, savedMean: Tensor?, savedInvStd: Tensor?, training: Bool,
        momentum: Double, epsilon: Double) throws

    /// Backward of training-mode batch norm; parameter gradients written or accumulated.
    func batchNormBackward(
        outputGradient: Tensor, input: Tensor, gamma: Tensor, savedMean: Tensor,
        savedInvStd: Tensor, inputGradient: Tensor, gammaGradient: Tensor,
        betaGradient: Tensor, accumulate: Bool) throws

    // Synchronised batch norm in pieces, with a cross-replica reduction between them
    // (SPEC 3.2); sums are float64 [C].

    /// `sums[c] = Σ input[:, c]`, or `Σ (input[:, c] − center[c])²` when `center` is given.
    func channelSums(input: Tensor, center: Tensor?, sums: Tensor) throws
    /// `output[:, c] = scale[c] · input[:, c] + shift[c]`.
    func channelAffine(input: Tensor, scale: Tensor, shift: Tensor, output: Tensor) throws
    /// `sums[0, c] = Σ dy[:, c]`, `sums[1, c] = Σ dy[:, c] (input[:, c] − mean[c])` (float64).
    func batchNormBackwardSums(
        outputGradient: Tensor, input: Tensor, mean: Tensor, sums: Tensor) throws
    /// `inputGradient = a[c] dy + b[c] (input − mean[c]) + d[c]`,
    /// `coefficients` [3, C] = a, b, d.
    func batchNormBackwardApply(
        outputGradient: Tensor, input: Tensor, mean: Tensor, coefficients: Tensor,
        inputGradient: Tensor) throws

    /// `output = max(input, 0)`.
    func relu(_ input: Tensor, output: Tensor) throws
    /// `inputGradient = outputGradient · [output > 0]` (may alias `outputGradient`).
    func reluBackward(outputGradient: Tensor, output: Tensor, inputGradient: Tensor) throws
    /// `output = a + b`.
    func add(_ a: Tensor, _ b: Tensor, output: Tensor) throws
    /// `y = alpha · x + y`.
    func axpy(_ alpha: Double, _ x: Tensor, _ y: Tensor) throws
    /// `tensor = alpha · tensor`.
    func scale(_ tensor: Tensor, by alpha: Double) throws
    /// Every element set to `value`.
    func fill(_ tensor: Tensor, value: Double) throws
    /// `rows[n, j] += bias[j]` for `rows` of shape [N, F].
    func addBias(_ bias: Tensor, to rows: Tensor) throws
    /// `sums[j] (+)= Σ_n rows[n, j]`.
    func columnSum(_ rows: Tensor, into sums: Tensor, accumulate: Bool) throws

    /// `output[n, c] = mean of input[n, c, ...]`, and its backward.
    func globalAveragePool(input: Tensor, output: Tensor) throws
    func globalAveragePoolBackward(outputGradient: Tensor, inputGradient: Tensor) throws

    /// Max pooling; `argmax` (int32, the output's shape) records each window's winner.
    func maxPool2dForward(
        input: Tensor, output: Tensor, argmax: Tensor, geometry: Pool2DGeometry) throws
    func maxPool2dBackward(
        outputGradient: Tensor, argmax: Tensor, inputGradient: Tensor,
        geometry: Pool2DGeometry) throws

    /// Rows divided by `max(‖row‖₂, epsilon)`; `norms` [N] keeps the norms.
    func l2NormalizeRows(input: Tensor, output: Tensor, norms: Tensor, epsilon: Double) throws
    func l2NormalizeRowsBackward(
        outputGradient: Tensor, output: Tensor, norms: Tensor, inputGradient: Tensor,
        epsilon: Double) throws

    /// SGD step: `d = g + wd·θ; buf = momentum·buf + d; θ −= lr·buf`.
    func sgdUpdate(
        parameter: Tensor, gradient: Tensor, momentumBuffer: Tensor, learningRate: Double,
        momentum: Double, weightDecay: Double) throws
}

// MARK: - Conveniences built on the protocol

extension Backend {
    /// A tensor holding `values`.
    public func tensor<T: TensorScalar>(_ values: [T], shape: [Int]) throws -> Tensor {
        guard values.count == shape.reduce(1, *) else {
            throw BackendError.shapeMismatch("\(values.count) values for shape \(shape)")
        }
        let tensor = try allocate(T.dtype, shape)
        try values.withUnsafeBytes { try upload($0, to: tensor) }
        return tensor
    }

    /// The tensor's elements in host memory.
    public func download<T: TensorScalar>(_ tensor: Tensor, as type: T.Type = T.self) throws
        -> [T]
    {
        guard tensor.dtype == T.dtype else {
            throw BackendError.shapeMismatch("downloading \(tensor.summary) as \(T.self)")
        }
        var values = [T](repeating: 0, count: tensor.count)
        try values.withUnsafeMutableBytes { try download(tensor, into: $0) }
        return values
    }

    /// Zero-filled tensor.
    public func zeros(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
        let tensor = try allocate(dtype, shape)
        try fill(tensor, value: 0)
        return tensor
    }
}

// MARK: - Shape checks shared by every backend

/// Argument checks every backend runs before an op; a backend that passes them only has to
/// do the arithmetic.
public enum OpCheck {
    public static func sameBackend(_ backend: Backend, _ tensors: Tensor?...) throws {
        let id = ObjectIdentifier(backend)
        for case let tensor? in tensors where tensor.buffer.ownerID != id {
            throw BackendError.invalidArgument(
                "tensor \(tensor.summary) lives on another device than \(backend.deviceName)")
        }
    }

    /// Returns (m, n, k) of a GEMM after checking ranks, types and sizes.
    public static func gemm(
        _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, _ c: Tensor
    ) throws -> (m: Int, n: Int, k: Int) {
        guard a.rank == 2, b.rank == 2, c.rank == 2 else {
            throw BackendError.shapeMismatch(
                "gemm needs 2-D tensors, got \(a.shape), \(b.shape), \(c.shape)")
        }
        guard a.dtype == b.dtype, b.dtype == c.dtype, a.dtype != .int32 else {
            throw BackendError.shapeMismatch(
                "gemm element types differ: \(a.dtype), \(b.dtype), \(c.dtype)")
        }
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb, c.shape == [m, n] else {
            throw BackendError.shapeMismatch(
                "gemm op(a) \(m)x\(k) times op(b) \(kb)x\(n) into c \(c.shape)")
        }
        guard max(m, n, k) <= Int(Int32.max) else {
            throw BackendError.shapeMismatch("gemm dimension above 2^31")
        }
        return (m, n, k)
    }

    /// Checks the three tensors of a convolution pass against the geometry.
    public static func conv2d(
        _ geometry: Conv2DGeometry, input: Tensor, weight: Tensor, output: Tensor
    ) throws {
        try geometry.validate()
        let expected = [
            ("input", input, geometry.inputShape), ("weight", weight, geometry.weightShape),
            ("output", output, geometry.outputShape),
        ]
        for (name, tensor, shape) in expected {
            guard tensor.dtype == .float32 else {
                throw BackendError.shapeMismatch("conv2d \(name) is \(tensor.dtype), not float32")
            }
            guard tensor.shape == shape else {
                throw BackendError.shapeMismatch(
                    "conv2d \(name) has shape \(tensor.shape), expected \(shape) for \(geometry)")
            }
        }
    }

    /// Checks that every tensor is float32 with the shape of the first.
    public static func sameShape(_ op: String, _ tensors: Tensor...) throws {
        guard let first = tensors.first else { return }
        for tensor in tensors {
            guard tensor.dtype == .float32 else {
                throw BackendError.shapeMismatch("\(op): \(tensor.summary) is not float32")
            }
            guard tensor.shape == first.shape else {
                throw BackendError.shapeMismatch(
                    "\(op): shapes differ, \(first.shape) and \(tensor.shape)")
            }
        }
    }

    /// Checks a float32 tensor's shape.
    public static func shape(_ op: String, _ name: String, _ tensor: Tensor, _ expected: [Int])
        throws
    {
        guard tensor.dtype == .float32, tensor.shape == expected else {
            throw BackendError.shapeMismatch(
                "\(op): \(name) is \(tensor.summary), expected float32 \(expected)")
        }
    }

    /// (N, C, L) of a batch-norm or pooling input [N, C, ...], L the product of the rest.
    public static func channels(_ op: String, _ tensor: Tensor) throws -> (Int, Int, Int) {
        guard tensor.rank >= 2, tensor.dtype == .float32 else {
            throw BackendError.shapeMismatch(
                "\(op): input must be float32 [N, C, ...], got \(tensor.summary)")
        }
        return (tensor.shape[0], tensor.shape[1], tensor.shape.dropFirst(2).reduce(1, *))
    }

    /// (N, C, L) of a batch-norm forward: `parameters` are γ, β, running mean and variance
    /// ([C] each), `saved` the mean and 1/std a training pass fills.
    public static func batchNormForward(
        input: Tensor, parameters: [Tensor], output: Tensor, saved: [Tensor?], training: Bool
    ) throws -> (Int, Int, Int) {
        let op = "batchNormForward"
        let (n, c, l) = try channels(op, input)
        try sameShape(op, input, output)
        for (name, tensor) in zip(["gamma", "beta", "runningMean", "runningVar"], parameters) {
            try shape(op, name, tensor, [c])
        }
        if training {
            guard saved.count == 2, let savedMean = saved[0], let savedInvStd = saved[1] else {
                throw BackendError.invalidArgument("batch norm training needs saved statistics")
            }
            try shape(op, "savedMean", savedMean, [c])
            try shape(op, "savedInvStd", savedInvStd, [c])
        }
        return (n, c, l)
    }

    /// (N, C, L) of a batch-norm backward: `gradients` are dy and dx (the input's shape),
    /// `perChannel` γ, saved mean and 1/std, dγ and dβ ([C] each).
    public static func batchNormBackward(input: Tensor, gradients: [Tensor], perChannel: [Tensor])
        throws -> (Int, Int, Int)
    {
        let op = "batchNormBackward"
        let (n, c, l) = try channels(op, input)
        for gradient in gradients { try sameShape(op, input, gradient) }
        let names = ["gamma", "savedMean", "savedInvStd", "gammaGradient", "betaGradient"]
        for (name, tensor) in zip(names, perChannel) { try shape(op, name, tensor, [c]) }
        return (n, c, l)
    }

    /// (N, C, L) of `channelSums`; `sums` is float64 [C].
    public static func channelSums(input: Tensor, center: Tensor?, sums: Tensor) throws
        -> (Int, Int, Int)
    {
        let (n, c, l) = try channels("channelSums", input)
        if let center { try shape("channelSums", "center", center, [c]) }
        guard sums.dtype == .float64, sums.shape == [c] else {
            throw BackendError.shapeMismatch("channelSums: sums must be float64 [\(c)]")
        }
        return (n, c, l)
    }

    /// (N, C, L) of `channelAffine`.
    public static func channelAffine(input: Tensor, scale: Tensor, shift: Tensor, output: Tensor)
        throws -> (Int, Int, Int)
    {
        let (n, c, l) = try channels("channelAffine", input)
        try sameShape("channelAffine", input, output)
        try shape("channelAffine", "scale", scale, [c])
        try shape("channelAffine", "shift", shift, [c])
        return (n, c, l)
    }

    /// (N, C, L) of `batchNormBackwardSums`; `sums` is float64 [2, C].
    public static func batchNormBackwardSums(
        outputGradient: Tensor, input: Tensor, mean: Tensor, sums: Tensor
    ) throws -> (Int, Int, Int) {
        let op = "batchNormBackwardSums"
        let (n, c, l) = try channels(op, input)
        try sameShape(op, input, outputGradient)
        try shape(op, "mean", mean, [c])
        guard sums.dtype == .float64, sums.shape == [2, c] else {
            throw BackendError.shapeMismatch("\(op): sums must be float64 [2, \(c)]")
        }
        return (n, c, l)
    }

    /// (N, C, L) of `batchNormBackwardApply`; `coefficients` is [3, C].
    public static func batchNormBackwardApply(
        outputGradient: Tensor, input: Tensor, mean: Tensor, coefficients: Tensor,
        inputGradient: Tensor
    ) throws -> (Int, Int, Int) {
        let op = "batchNormBackwardApply"
        let (n, c, l) = try channels(op, input)
        try sameShape(op, input, outputGradient, inputGradient)
        try shape(op, "mean", mean, [c])
        try shape(op, "coefficients", coefficients, [3, c])
        return (n, c, l)
    }

    /// Checks a max-pooling geometry (CKernels' rules, as PyTorch's) and its three tensors.
    public static func maxPool2d(_ op: String, _ g: Pool2DGeometry, input: Tensor,
                                 output: Tensor, argmax: Tensor) throws {
        var shape = cim_pool2d_shape(g)
        try cimCheck(cim_pool2d_output_size(&shape, nil, nil))
        try self.shape(op, "input", input, g.inputShape)
        try self.shape(op, "output", output, g.outputShape)
        guard argmax.dtype == .int32, argmax.shape == g.outputShape else {
            throw BackendError.shapeMismatch(
                "\(op): argmax is \(argmax.summary), expected int32 \(g.outputShape)")
        }
    }

    /// Returns (batch, n) of a batched SPD log-determinant after checking shapes.
    public static func logdet(_ matrices: Tensor, logdet: Tensor, inverse: Tensor?) throws
        -> (batch: Int, n: Int)
    {
        guard matrices.rank == 3, matrices.shape[1] == matrices.shape[2], matrices.shape[1] > 0
        else {
            throw BackendError.shapeMismatch(
                "logdet needs [B, n, n] with n > 0, got \(matrices.shape)")
        }
        let (batch, n) = (matrices.shape[0], matrices.shape[1])
        guard matrices.dtype == .float64, logdet.dtype == .float64,
            inverse.map({ $0.dtype == .float64 }) ?? true
        else { throw BackendError.shapeMismatch("logdet works in float64 only") }
        guard logdet.shape == [batch] else {
            throw BackendError.shapeMismatch(
                "logdet output has shape \(logdet.shape), expected [\(batch)]")
        }
        if let inverse, inverse.shape != matrices.shape {
            throw BackendError.shapeMismatch(
                "inverse has shape \(inverse.shape), expected \(matrices.shape)")
        }
        return (batch, n)
    }
}
