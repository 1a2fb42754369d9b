// Backend.swift: the protocol every compute device implements, and the shape checks that
// all of them share.
//
// The protocol is small on purpose: memory (allocate, upload, download, copy, synchronize)
// and one entry point per op family. Ops take tensors that live on the same backend and
// check their shapes before any work, throwing BackendError.shapeMismatch with the shapes
// they got; a backend then only has to run the math.

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
        switch dtype {
        case .float32: return try tensor([Float](repeating: 0, count: shape.reduce(1, *)),
                                         shape: shape)
        case .float64: return try tensor([Double](repeating: 0, count: shape.reduce(1, *)),
                                         shape: shape)
        }
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
        guard a.dtype == b.dtype, b.dtype == c.dtype else {
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
