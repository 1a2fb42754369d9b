// CPUBackend.swift: the Backend on the host, through CKernels' OpenBLAS path.
//
// Buffers are 64-byte aligned host allocations. Ops run synchronously on the calling thread
// (with OpenBLAS and CKernels threads inside them), so `synchronize` has nothing to wait
// for. The C context holds the reusable convolution workspace and is not safe to share
// between threads, so every op takes the backend's lock: one replica per backend instance
// is the intended use, and the lock only guards against misuse.

import CKernels
import Foundation

/// Freed host blocks kept for reuse, by exact size.
///
/// A training step allocates and frees the same set of activation sizes every time. Large
/// blocks come from mmap, and the first touch of each fresh page is a page fault that the
/// kernel answers by zeroing it: measured at about a sixth of a CPU ResNet-18 step before
/// this cache. Keeping freed blocks (up to `limitBytes` in all) makes a warm step allocate
/// nothing, like a GPU caching allocator.
final class HostMemoryPool: @unchecked Sendable {
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cachedBytes = 0
    private let lock = NSLock()
    let limitBytes: Int

    init(limitBytes: Int) { self.limitBytes = limitBytes }

    func take(_ byteCount: Int) throws -> UnsafeMutableRawPointer {
        lock.lock()
        if let pointer = free[byteCount]?.popLast() {
            cachedBytes -= byteCount
            lock.unlock()
            return pointer
        }
        lock.unlock()
        var memory: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&memory, 64, max(byteCount, 1)) == 0, let memory else {
            throw BackendError.outOfMemory("cannot allocate \(byteCount) bytes on the host")
        }
        return memory
    }

    func give(_ pointer: UnsafeMutableRawPointer, _ byteCount: Int) {
        lock.lock()
        defer { lock.unlock() }
        if cachedBytes + byteCount <= limitBytes {
            free[byteCount, default: []].append(pointer)
            cachedBytes += byteCount
        } else {
            Glibc.free(pointer)
        }
    }

    /// Returns every cached block to the system.
    func trim() {
        lock.lock()
        defer { lock.unlock() }
        for blocks in free.values { blocks.forEach { Glibc.free($0) } }
        free = [:]
        cachedBytes = 0
    }

    deinit { trim() }
}

/// Host memory owned by a ``CPUBackend``.
final class CPUBuffer: DeviceBuffer, @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int
    let ownerID: ObjectIdentifier
    private let pool: HostMemoryPool

    init(byteCount: Int, owner: ObjectIdentifier, pool: HostMemoryPool) throws {
        self.pointer = try pool.take(byteCount)
        self.byteCount = byteCount
        self.ownerID = owner
        self.pool = pool
    }

    deinit { pool.give(pointer, byteCount) }
}

/// How the CPU backend computes convolutions.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd F(2x2, 3x3) for all three passes of 3x3 stride-1 convolutions with at least
    /// 8 channels in and out, im2col + GEMM for the rest.
    case auto
    /// im2col + GEMM everywhere.
    case im2col
    /// Winograd wherever it applies (3x3, stride 1, padding <= 2), im2col elsewhere.
    case winograd
}

/// The CPU backend: OpenBLAS GEMM, im2col and Winograd convolution, LAPACK Cholesky.
public final class CPUBackend: Backend, @unchecked Sendable {
    public let deviceName = "cpu"
    private let context: OpaquePointer
    private let lock = NSLock()
    private let pool: HostMemoryPool

    /// - Parameter threads: threads for OpenBLAS and the CKernels loops; 0 = every core.
    /// - Parameter convolution: the convolution algorithm (tests force each in turn).
    /// - Parameter cacheLimitBytes: freed memory kept for reuse (see HostMemoryPool).
    public init(threads: Int = 0, convolution: ConvolutionAlgorithm = .auto,
                cacheLimitBytes: Int = 8 << 30) throws {
        pool = HostMemoryPool(limitBytes: cacheLimitBytes)
        var context: OpaquePointer? = nil
        try cimCheck(cim_cpu_context_create(Int32(threads), &context))
        self.context = context!
        let algorithm: cim_conv_algorithm
        switch convolution {
        case .auto: algorithm = CIM_CONV_AUTO
        case .im2col: algorithm = CIM_CONV_IM2COL
        case .winograd: algorithm = CIM_CONV_WINOGRAD
        }
        try cimCheck(cim_cpu_context_set_conv_algorithm(self.context, algorithm))
    }

    deinit { cim_cpu_context_destroy(context) }

    public var threads: Int { Int(cim_cpu_context_threads(context)) }

    /// Returns the freed memory this backend keeps for reuse to the system.
    public func releaseCachedMemory() { pool.trim() }

    /// Bytes of convolution scratch memory held now (it grows to the largest layer seen).
    public var workspaceBytes: Int { Int(cim_cpu_context_workspace_bytes(context)) }

    public var deviceDetail: String {
        "\(threads) threads, \(String(cString: cim_cpu_blas_info()))"
    }

    private func pointer(_ tensor: Tensor) -> UnsafeMutableRawPointer {
        (tensor.buffer as! CPUBuffer).pointer
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: Memory

    public func allocate(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw BackendError.shapeMismatch("negative dimension in \(shape)")
        }
        let buffer = try CPUBuffer(
            byteCount: shape.reduce(1, *) * dtype.size, owner: ObjectIdentifier(self), pool: pool)
        return Tensor(shape: shape, dtype: dtype, buffer: buffer)
    }

    public func upload(_ source: UnsafeRawBufferPointer, to tensor: Tensor) throws {
        try OpCheck.sameBackend(self, tensor)
        guard source.count == tensor.byteCount else {
            throw BackendError.shapeMismatch(
                "upload of \(source.count) bytes into \(tensor.summary) "
                    + "(\(tensor.byteCount) bytes)")
        }
        if let base = source.baseAddress {
            pointer(tensor).copyMemory(from: base, byteCount: source.count)
        }
    }

    public func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer)
        throws
    {
        try OpCheck.sameBackend(self, tensor)
        guard destination.count == tensor.byteCount else {
            throw BackendError.shapeMismatch(
                "download of \(tensor.summary) (\(tensor.byteCount) bytes) into "
                    + "\(destination.count) bytes")
        }
        if let base = destination.baseAddress {
            base.copyMemory(from: pointer(tensor), byteCount: destination.count)
        }
    }

    public func copy(_ source: Tensor, to destination: Tensor) throws {
        try OpCheck.sameBackend(self, source, destination)
        guard source.dtype == destination.dtype, source.count == destination.count else {
            throw BackendError.shapeMismatch("copy \(source.summary) to \(destination.summary)")
        }
        pointer(destination).copyMemory(from: pointer(source), byteCount: source.byteCount)
    }

    public func synchronize() throws {}

    // MARK: Ops

    public func gemm(
        _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor,
        alpha: Double, beta: Double
    ) throws {
        try OpCheck.sameBackend(self, a, b, c)
        let (m, n, k) = try OpCheck.gemm(a, transposeA: transposeA, b, transposeB: transposeB, c)
        let ta = transposeA ? CIM_TRANSPOSE : CIM_NO_TRANSPOSE
        let tb = transposeB ? CIM_TRANSPOSE : CIM_NO_TRANSPOSE
        // BLAS wants leading dimensions of at least 1, also for empty matrices
        let (lda, ldb, ldc) = (Int32(max(1, a.shape[1])), Int32(max(1, b.shape[1])),
                               Int32(max(1, c.shape[1])))
        try locked {
            switch a.dtype {
            case .float32:
                try cimCheck(cim_cpu_gemm_f32(
                    context, ta, tb, Int32(m), Int32(n), Int32(k), Float(alpha),
                    pointer(a).assumingMemoryBound(to: Float.self), lda,
                    pointer(b).assumingMemoryBound(to: Float.self), ldb, Float(beta),
                    pointer(c).assumingMemoryBound(to: Float.self), ldc))
            case .float64:
                try cimCheck(cim_cpu_gemm_f64(
                    context, ta, tb, Int32(m), Int32(n), Int32(k), alpha,
                    pointer(a).assumingMemoryBound(to: Double.self), lda,
                    pointer(b).assumingMemoryBound(to: Double.self), ldb, beta,
                    pointer(c).assumingMemoryBound(to: Double.self), ldc))
            case .int32:
                throw BackendError.shapeMismatch("gemm on int32 tensors")
            }
        }
    }

    public func conv2dForward(
        input: Tensor, weight: Tensor, output: Tensor, geometry: Conv2DGeometry
    ) throws {
        try OpCheck.sameBackend(self, input, weight, output)
        try OpCheck.conv2d(geometry, input: input, weight: weight, output: output)
        var shape = cim_conv2d_shape(geometry)
        try locked {
            try cimCheck(cim_cpu_conv2d_forward(
                context, &shape, floats(input), floats(weight), floats(output)))
        }
    }

    public func conv2dBackwardData(
        outputGradient: Tensor, weight: Tensor, inputGradient: Tensor,
        geometry: Conv2DGeometry
    ) throws {
        try OpCheck.sameBackend(self, outputGradient, weight, inputGradient)
        try OpCheck.conv2d(
            geometry, input: inputGradient, weight: weight, output: outputGradient)
        var shape = cim_conv2d_shape(geometry)
        try locked {
            try cimCheck(cim_cpu_conv2d_backward_data(
                context, &shape, floats(outputGradient), floats(weight), floats(inputGradient)))
        }
    }

    public func conv2dBackwardFilter(
        input: Tensor, outputGradient: Tensor, weightGradient: Tensor,
        geometry: Conv2DGeometry, accumulate: Bool
    ) throws {
        try OpCheck.sameBackend(self, input, outputGradient, weightGradient)
        try OpCheck.conv2d(
            geometry, input: input, weight: weightGradient, output: outputGradient)
        var shape = cim_conv2d_shape(geometry)
        try locked {
            try cimCheck(cim_cpu_conv2d_backward_filter(
                context, &shape, floats(input), floats(outputGradient), floats(weightGradient),
                accumulate ? 1 : 0))
        }
    }

    public func logdetSPD(_ matrices: Tensor, logdet: Tensor, inverse: Tensor?) throws {
        try OpCheck.sameBackend(self, matrices, logdet, inverse)
        let (batch, n) = try OpCheck.logdet(matrices, logdet: logdet, inverse: inverse)
        try locked {
            var failed: Int32 = -1
            let status = cim_cpu_logdet_spd_f64(
                context, Int32(batch), Int32(n), doubles(matrices), doubles(logdet),
                inverse.map { doubles($0) }, &failed)
            try cimCheck(status, failedIndex: failed)
        }
    }

    /// Eigenvalues, ascending, of a symmetric n x n float64 matrix held on the host (only
    /// its lower triangle is read). A host-side utility for monitoring, not a device op.
    public func symmetricEigenvalues(_ matrix: [Double], n: Int) throws -> [Double] {
        guard n > 0, matrix.count == n * n else {
            throw BackendError.shapeMismatch("eigenvalues of \(matrix.count) values as \(n) x \(n)")
        }
        var values = [Double](repeating: 0, count: n)
        try locked {
            try cimCheck(cim_cpu_symmetric_eigenvalues_f64(context, Int32(n), matrix, &values))
        }
        return values
    }

    // MARK: Layers

    public func batchNormForward(
        input: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
        output: Tensor, savedMean: Tensor?, savedInvStd: Tensor?, training: Bool,
        momentum: Double, epsilon: Double
    ) throws {
        try OpCheck.sameBackend(
            self, input, gamma, beta, runningMean, runningVar, output, savedMean, savedInvStd)
        let (n, c, l) = try OpCheck.batchNormForward(
            input: input, parameters: [gamma, beta, runningMean, runningVar], output: output,
            saved: [savedMean, savedInvStd], training: training)
        try locked {
            try cimCheck(cim_cpu_batchnorm_forward(
                context, Int32(n), Int32(c), Int32(l), floats(input), floats(gamma),
                floats(beta), floats(runningMean), floats(runningVar), floats(output),
                savedMean.map { floats($0) }, savedInvStd.map { floats($0) }, training ? 1 : 0,
                Float(momentum), Float(epsilon)))
        }
    }

    public func batchNormBackward(
        outputGradient: Tensor, input: Tensor, gamma: Tensor, savedMean: Tensor,
        savedInvStd: Tensor, inputGradient: Tensor, gammaGradient: Tensor,
        betaGradient: Tensor, accumulate: Bool
    ) throws {
        try OpCheck.sameBackend(
            self, outputGradient, input, gamma, savedMean, savedInvStd, inputGradient,
            gammaGradient, betaGradient)
        let (n, c, l) = try OpCheck.batchNormBackward(
            input: input, gradients: [outputGradient, inputGradient],
            perChannel: [gamma, savedMean, savedInvStd, gammaGradient, betaGradient])
        try locked {
            try cimCheck(cim_cpu_batchnorm_backward(
                context, Int32(n), Int32(c), Int32(l), floats(outputGradient), floats(input),
                floats(gamma), floats(savedMean), floats(savedInvStd), floats(inputGradient),
                floats(gammaGradient), floats(betaGradient), accumulate ? 1 : 0))
        }
    }

    public func channelSums(input: Tensor, center: Tensor?, sums: Tensor) throws {
        try OpCheck.sameBackend(self, input, center, sums)
        let (n, c, l) = try OpCheck.channelSums(input: input, center: center, sums: sums)
        try locked {
            try cimCheck(cim_cpu_channel_sums(
                context, Int32(n), Int32(c), Int32(l), floats(input), center.map { floats($0) },
                doubles(sums)))
        }
    }

    public func channelAffine(input: Tensor, scale: Tensor, shift: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, input, scale, shift, output)
        let (n, c, l) = try OpCheck.channelAffine(
            input: input, scale: scale, shift: shift, output: output)
        try locked {
            try cimCheck(cim_cpu_channel_affine(
                context, Int32(n), Int32(c), Int32(l), floats(input), floats(scale), floats(shift),
                floats(output)))
        }
    }

    public func batchNormBackwardSums(
        outputGradient: Tensor, input: Tensor, mean: Tensor, sums: Tensor
    ) throws {
        try OpCheck.sameBackend(self, outputGradient, input, mean, sums)
        let (n, c, l) = try OpCheck.batchNormBackwardSums(
            outputGradient: outputGradient, input: input, mean: mean, sums: sums)
        try locked {
            let base = doubles(sums)
            try cimCheck(cim_cpu_batchnorm_backward_sums(
                context, Int32(n), Int32(c), Int32(l), floats(outputGradient), floats(input),
                floats(mean), base, base + c))
        }
    }

    public func batchNormBackwardApply(
        outputGradient: Tensor, input: Tensor, mean: Tensor, coefficients: Tensor,
        inputGradient: Tensor
    ) throws {
        try OpCheck.sameBackend(self, outputGradient, input, mean, coefficients, inputGradient)
        let (n, c, l) = try OpCheck.batchNormBackwardApply(
            outputGradient: outputGradient, input: input, mean: mean,
            coefficients: coefficients, inputGradient: inputGradient)
        try locked {
            let k = floats(coefficients)
            try cimCheck(cim_cpu_batchnorm_backward_apply(
                context, Int32(n), Int32(c), Int32(l), floats(outputGradient), floats(input),
                floats(mean), k, k + c, k + 2 * c, floats(inputGradient)))
        }
    }

    public func relu(_ input: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, input, output)
        try OpCheck.sameShape("relu", input, output)
        try locked {
            try cimCheck(cim_cpu_relu_forward(context, input.count, floats(input), floats(output)))
        }
    }

    public func reluBackward(outputGradient: Tensor, output: Tensor, inputGradient: Tensor)
        throws
    {
        try OpCheck.sameBackend(self, outputGradient, output, inputGradient)
        try OpCheck.sameShape("reluBackward", outputGradient, output, inputGradient)
        try locked {
            try cimCheck(cim_cpu_relu_backward(
                context, output.count, floats(outputGradient), floats(output),
                floats(inputGradient)))
        }
    }

    public func add(_ a: Tensor, _ b: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, a, b, output)
        try OpCheck.sameShape("add", a, b, output)
        try locked {
            try cimCheck(cim_cpu_add(context, a.count, floats(a), floats(b), floats(output)))
        }
    }

    public func axpy(_ alpha: Double, _ x: Tensor, _ y: Tensor) throws {
        try OpCheck.sameBackend(self, x, y)
        try OpCheck.sameShape("axpy", x, y)
        try locked {
            try cimCheck(cim_cpu_axpy(context, x.count, Float(alpha), floats(x), floats(y)))
        }
    }

    public func scale(_ tensor: Tensor, by alpha: Double) throws {
        try OpCheck.sameBackend(self, tensor)
        try OpCheck.sameShape("scale", tensor)
        try locked {
            try cimCheck(cim_cpu_scale(context, tensor.count, Float(alpha), floats(tensor)))
        }
    }

    public func fill(_ tensor: Tensor, value: Double) throws {
        try OpCheck.sameBackend(self, tensor)
        switch tensor.dtype {
        case .float32:
            try locked {
                try cimCheck(cim_cpu_fill(context, tensor.count, Float(value), floats(tensor)))
            }
        case .float64:
            let pointer = doubles(tensor)
            for i in 0..<tensor.count { pointer[i] = value }
        case .int32:
            let pointer = self.pointer(tensor).assumingMemoryBound(to: Int32.self)
            for i in 0..<tensor.count { pointer[i] = Int32(value) }
        }
    }

    public func addBias(_ bias: Tensor, to rows: Tensor) throws {
        try OpCheck.sameBackend(self, bias, rows)
        guard rows.rank == 2 else {
            throw BackendError.shapeMismatch("addBias: rows must be [N, F]")
        }
        try OpCheck.shape("addBias", "bias", bias, [rows.shape[1]])
        try OpCheck.sameShape("addBias", rows)
        try locked {
            try cimCheck(cim_cpu_bias_add(
                context, Int32(rows.shape[0]), Int32(rows.shape[1]), floats(bias), floats(rows)))
        }
    }

    public func columnSum(_ rows: Tensor, into sums: Tensor, accumulate: Bool) throws {
        try OpCheck.sameBackend(self, rows, sums)
        guard rows.rank == 2 else {
            throw BackendError.shapeMismatch("columnSum: rows must be [N, F]")
        }
        try OpCheck.sameShape("columnSum", rows)
        try OpCheck.shape("columnSum", "sums", sums, [rows.shape[1]])
        try locked {
            try cimCheck(cim_cpu_column_sum(
                context, Int32(rows.shape[0]), Int32(rows.shape[1]), floats(rows), floats(sums),
                accumulate ? 1 : 0))
        }
    }

    public func globalAveragePool(input: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, input, output)
        let (n, c, l) = try OpCheck.channels("globalAveragePool", input)
        try OpCheck.shape("globalAveragePool", "output", output, [n, c])
        try locked {
            try cimCheck(cim_cpu_global_avg_pool_forward(
                context, Int32(n), Int32(c), Int32(l), floats(input), floats(output)))
        }
    }

    public func globalAveragePoolBackward(outputGradient: Tensor, inputGradient: Tensor) throws {
        try OpCheck.sameBackend(self, outputGradient, inputGradient)
        let (n, c, l) = try OpCheck.channels("globalAveragePoolBackward", inputGradient)
        try OpCheck.shape("globalAveragePoolBackward", "outputGradient", outputGradient, [n, c])
        try locked {
            try cimCheck(cim_cpu_global_avg_pool_backward(
                context, Int32(n), Int32(c), Int32(l), floats(outputGradient),
                floats(inputGradient)))
        }
    }

    public func maxPool2dForward(
        input: Tensor, output: Tensor, argmax: Tensor, geometry: Pool2DGeometry
    ) throws {
        try OpCheck.sameBackend(self, input, output, argmax)
        try OpCheck.maxPool2d(
            "maxPool2dForward", geometry, input: input, output: output, argmax: argmax)
        var shape = cim_pool2d_shape(geometry)
        try locked {
            try cimCheck(cim_cpu_max_pool2d_forward(
                context, &shape, floats(input), floats(output),
                pointer(argmax).assumingMemoryBound(to: Int32.self)))
        }
    }

    public func maxPool2dBackward(
        outputGradient: Tensor, argmax: Tensor, inputGradient: Tensor, geometry: Pool2DGeometry
    ) throws {
        try OpCheck.sameBackend(self, outputGradient, argmax, inputGradient)
        try OpCheck.maxPool2d(
            "maxPool2dBackward", geometry, input: inputGradient, output: outputGradient,
            argmax: argmax)
        var shape = cim_pool2d_shape(geometry)
        try locked {
            try cimCheck(cim_cpu_max_pool2d_backward(
                context, &shape, floats(outputGradient),
                pointer(argmax).assumingMemoryBound(to: Int32.self), floats(inputGradient)))
        }
    }

    public func l2NormalizeRows(input: Tensor, output: Tensor, norms: Tensor, epsilon: Double)
        throws
    {
        try OpCheck.sameBackend(self, input, output, norms)
        guard input.rank == 2 else {
            throw BackendError.shapeMismatch("l2NormalizeRows: input must be [N, D]")
        }
        try OpCheck.sameShape("l2NormalizeRows", input, output)
        try OpCheck.shape("l2NormalizeRows", "norms", norms, [input.shape[0]])
        try locked {
            try cimCheck(cim_cpu_l2_normalize_forward(
                context, Int32(input.shape[0]), Int32(input.shape[1]), Float(epsilon),
                floats(input), floats(output), floats(norms)))
        }
    }

    public func l2NormalizeRowsBackward(
        outputGradient: Tensor, output: Tensor, norms: Tensor, inputGradient: Tensor,
        epsilon: Double
    ) throws {
        try OpCheck.sameBackend(self, outputGradient, output, norms, inputGradient)
        guard output.rank == 2 else {
            throw BackendError.shapeMismatch("l2NormalizeRowsBackward: [N, D] expected")
        }
        try OpCheck.sameShape("l2NormalizeRowsBackward", outputGradient, output, inputGradient)
        try OpCheck.shape("l2NormalizeRowsBackward", "norms", norms, [output.shape[0]])
        try locked {
            try cimCheck(cim_cpu_l2_normalize_backward(
                context, Int32(output.shape[0]), Int32(output.shape[1]), Float(epsilon),
                floats(outputGradient), floats(output), floats(norms), floats(inputGradient)))
        }
    }

    public func sgdUpdate(
        parameter: Tensor, gradient: Tensor, momentumBuffer: Tensor, learningRate: Double,
        momentum: Double, weightDecay: Double
    ) throws {
        try OpCheck.sameBackend(self, parameter, gradient, momentumBuffer)
        try OpCheck.sameShape("sgdUpdate", parameter, gradient, momentumBuffer)
        try locked {
            try cimCheck(cim_cpu_sgd_update(
                context, parameter.count, Float(learningRate), Float(momentum),
                Float(weightDecay), floats(parameter), floats(gradient), floats(momentumBuffer)))
        }
    }

    private func floats(_ tensor: Tensor) -> UnsafeMutablePointer<Float> {
        pointer(tensor).assumingMemoryBound(to: Float.self)
    }

    private func doubles(_ tensor: Tensor) -> UnsafeMutablePointer<Double> {
        pointer(tensor).assumingMemoryBound(to: Double.self)
    }
}
