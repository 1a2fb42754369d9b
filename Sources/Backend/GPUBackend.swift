// GPUBackend.swift: the Backend on a GPU API: memory and every op through CKernels'
// cim_gpu_* functions, which OpenCLBackend and CUDABackend share (gpu_ops.c holds the ops
// once for both APIs; only opening a device differs).
//
// Ops are queued on the device's one in-order queue (stream) and return at once;
// `synchronize` waits for them, and `download` waits for what precedes it. Buffers freed by
// Swift go back to a pool keyed by size, so a warm training step allocates no device memory
// (the queue's order makes reuse safe: a later op on a recycled buffer runs after every
// earlier one). The C context (kernels, scratch memory) is not thread-safe, so every call
// takes the backend's lock.
//
// A device without fp64 runs every float32 op; float64 GEMM and the log-determinant throw
// ``BackendError/unavailable(device:reason:)`` saying so, and the float64 sums of
// synchronised batch norm run on the host (a CPUBackend) as a fallback.

import CKernels
import Foundation

/// A C GPU context (OpenCL or CUDA) and its destructor; the last owner destroys it. Buffers
/// keep it alive through their pool, since CUDA frees memory through its context.
final class GPUContext: @unchecked Sendable {
    /// The cim_gpu side of the context.
    let gpu: OpaquePointer
    private let destroy: () -> Void

    init(gpu: OpaquePointer, destroy: @escaping () -> Void) {
        self.gpu = gpu
        self.destroy = destroy
    }

    deinit { destroy() }
}

/// Freed device buffers kept for reuse, by exact size (see HostMemoryPool).
final class GPUMemoryPool: @unchecked Sendable {
    private var free: [Int: [OpaquePointer]] = [:]
    private var cachedBytes = 0
    private let lock = NSLock()
    let limitBytes: Int
    let context: GPUContext

    init(limitBytes: Int, context: GPUContext) {
        self.limitBytes = limitBytes
        self.context = context
    }

    func take(_ byteCount: Int) -> OpaquePointer? {
        lock.lock()
        defer { lock.unlock() }
        guard let buffer = free[byteCount]?.popLast() else { return nil }
        cachedBytes -= byteCount
        return buffer
    }

    func give(_ buffer: OpaquePointer, _ byteCount: Int) {
        lock.lock()
        defer { lock.unlock() }
        if cachedBytes + byteCount <= limitBytes {
            free[byteCount, default: []].append(buffer)
            cachedBytes += byteCount
        } else {
            cim_gpu_buffer_destroy(context.gpu, buffer)
        }
    }

    /// Releases every cached buffer.
    func trim() {
        lock.lock()
        defer { lock.unlock() }
        for buffers in free.values { buffers.forEach { cim_gpu_buffer_destroy(context.gpu, $0) } }
        free = [:]
        cachedBytes = 0
    }

    deinit { trim() }
}

/// Device memory owned by a ``GPUBackend``.
final class GPUBuffer: DeviceBuffer, @unchecked Sendable {
    let handle: OpaquePointer
    let byteCount: Int
    let ownerID: ObjectIdentifier
    private let pool: GPUMemoryPool

    init(handle: OpaquePointer, byteCount: Int, owner: ObjectIdentifier, pool: GPUMemoryPool) {
        self.handle = handle
        self.byteCount = byteCount
        self.ownerID = owner
        self.pool = pool
    }

    deinit { pool.give(handle, byteCount) }
}

/// What OpenCLBackend and CUDABackend share: everything but opening the device.
public class GPUBackend: Backend, @unchecked Sendable {
    public let deviceName: String
    /// Whether float64 GEMM and the log-determinant run on this device.
    public let supportsFloat64: Bool
    private let context: GPUContext
    private let gpu: OpaquePointer
    private let lock = NSLock()
    private let pool: GPUMemoryPool
    /// The host backend of the fp64 fallbacks, made on first use.
    private var hostBackend: CPUBackend?

    init(context: GPUContext, deviceName: String, cacheLimitBytes: Int) {
        self.context = context
        self.gpu = context.gpu
        self.deviceName = deviceName
        self.supportsFloat64 = cim_gpu_has_fp64(context.gpu) != 0
        self.pool = GPUMemoryPool(limitBytes: cacheLimitBytes, context: context)
    }

    deinit { pool.trim() }

    /// Overridden by each API with the device's description.
    public var deviceDetail: String { String(cString: cim_gpu_device_name(gpu)) }

    /// Limits the scratch memory of one convolution pass (default 128 MiB); a lower limit
    /// takes fewer images per pass (at least one). Tests use it to make several passes.
    public func setConvolutionScratchLimit(bytes: Int) throws {
        try locked { try check(cim_gpu_set_conv_scratch_limit(gpu, max(0, bytes))) }
    }

    /// Bytes of scratch device memory held now (it grows to the largest op seen).
    public var workspaceBytes: Int { locked { Int(cim_gpu_workspace_bytes(gpu)) } }

    /// Releases the freed device memory this backend keeps for reuse.
    public func releaseCachedMemory() { pool.trim() }

    private func buffer(_ tensor: Tensor) -> OpaquePointer {
        (tensor.buffer as! GPUBuffer).handle
    }

    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// cimCheck, with this device named in ``BackendError/unavailable(device:reason:)``.
    func check(_ status: cim_status, failedIndex: Int32 = -1) throws {
        if status == CIM_ERROR_UNAVAILABLE {
            throw BackendError.unavailable(
                device: deviceName, reason: String(cString: cim_last_error()))
        }
        try cimCheck(status, failedIndex: failedIndex)
    }

    // MARK: Memory

    public func allocate(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw BackendError.shapeMismatch("negative dimension in \(shape)")
        }
        let byteCount = shape.reduce(1, *) * dtype.size
        let handle = try pool.take(byteCount) ?? locked {
            var handle: OpaquePointer? = nil
            var status = cim_gpu_buffer_create(gpu, byteCount, &handle)
            if status == CIM_ERROR_OUT_OF_MEMORY {
                pool.trim()   // freed buffers may be what is missing
                status = cim_gpu_buffer_create(gpu, byteCount, &handle)
            }
            try check(status)
            return handle!
        }
        let buffer = GPUBuffer(
            handle: handle, byteCount: byteCount, owner: ObjectIdentifier(self), pool: pool)
        return Tensor(shape: shape, dtype: dtype, buffer: buffer)
    }

    public func upload(_ source: UnsafeRawBufferPointer, to tensor: Tensor) throws {
        try OpCheck.sameBackend(self, tensor)
        guard source.count == tensor.byteCount else {
            throw BackendError.shapeMismatch(
                "upload of \(source.count) bytes into \(tensor.summary) "
                    + "(\(tensor.byteCount) bytes)")
        }
        try locked {
            try check(cim_gpu_write(gpu, buffer(tensor), source.baseAddress, source.count))
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
        try locked {
            try check(cim_gpu_read(
                gpu, buffer(tensor), destination.baseAddress, destination.count))
        }
    }

    public func copy(_ source: Tensor, to destination: Tensor) throws {
        try OpCheck.sameBackend(self, source, destination)
        guard source.dtype == destination.dtype, source.count == destination.count else {
            throw BackendError.shapeMismatch("copy \(source.summary) to \(destination.summary)")
        }
        try locked {
            try check(cim_gpu_copy(
                gpu, buffer(source), buffer(destination), source.byteCount))
        }
    }

    public func synchronize() throws {
        try locked { try check(cim_gpu_finish(gpu)) }
    }

    // MARK: Ops

    public func gemm(
        _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor,
        alpha: Double, beta: Double
    ) throws {
        try OpCheck.sameBackend(self, a, b, c)
        let (m, n, k) = try OpCheck.gemm(a, transposeA: transposeA, b, transposeB: transposeB, c)
        let ta = transposeA ? CIM_TRANSPOSE : CIM_NO_TRANSPOSE
        let tb = transposeB ? CIM_TRANSPOSE : CIM_NO_TRANSPOSE
        let (lda, ldb, ldc) = (Int32(max(1, a.shape[1])), Int32(max(1, b.shape[1])),
                               Int32(max(1, c.shape[1])))
        try locked {
            switch a.dtype {
            case .float32:
                try check(cim_gpu_gemm_f32(
                    gpu, ta, tb, Int32(m), Int32(n), Int32(k), Float(alpha), buffer(a),
                    lda, buffer(b), ldb, Float(beta), buffer(c), ldc))
            case .float64:
                try check(cim_gpu_gemm_f64(
                    gpu, ta, tb, Int32(m), Int32(n), Int32(k), alpha, buffer(a), lda,
                    buffer(b), ldb, beta, buffer(c), ldc))
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
            try check(cim_gpu_conv2d_forward(
                gpu, &shape, buffer(input), buffer(weight), buffer(output)))
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
            try check(cim_gpu_conv2d_backward_data(
                gpu, &shape, buffer(outputGradient), buffer(weight), buffer(inputGradient)))
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
            try check(cim_gpu_conv2d_backward_filter(
                gpu, &shape, buffer(input), buffer(outputGradient), buffer(weightGradient),
                accumulate ? 1 : 0))
        }
    }

    public func logdetSPD(_ matrices: Tensor, logdet: Tensor, inverse: Tensor?) throws {
        try OpCheck.sameBackend(self, matrices, logdet, inverse)
        let (batch, n) = try OpCheck.logdet(matrices, logdet: logdet, inverse: inverse)
        try locked {
            var failed: Int32 = -1
            let status = cim_gpu_logdet_spd_f64(
                gpu, Int32(batch), Int32(n), buffer(matrices), buffer(logdet),
                inverse.map { buffer($0) }, &failed)
            try check(status, failedIndex: failed)
        }
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
            try check(cim_gpu_batchnorm_forward(
                gpu, Int32(n), Int32(c), Int32(l), buffer(input), buffer(gamma),
                buffer(beta), buffer(runningMean), buffer(runningVar), buffer(output),
                savedMean.map { buffer($0) }, savedInvStd.map { buffer($0) }, training ? 1 : 0,
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
            try check(cim_gpu_batchnorm_backward(
                gpu, Int32(n), Int32(c), Int32(l), buffer(outputGradient), buffer(input),
                buffer(gamma), buffer(savedMean), buffer(savedInvStd), buffer(inputGradient),
                buffer(gammaGradient), buffer(betaGradient), accumulate ? 1 : 0))
        }
    }

    public func channelSums(input: Tensor, center: Tensor?, sums: Tensor) throws {
        try OpCheck.sameBackend(self, input, center, sums)
        let (n, c, l) = try OpCheck.channelSums(input: input, center: center, sums: sums)
        guard supportsFloat64 else {
            return try onHost(inputs: [input, center], output: sums) { host, t in
                try host.channelSums(input: t[0]!, center: t[1], sums: t[2]!)
            }
        }
        try locked {
            try check(cim_gpu_channel_sums(
                gpu, Int32(n), Int32(c), Int32(l), buffer(input), center.map { buffer($0) },
                buffer(sums)))
        }
    }

    public func channelAffine(input: Tensor, scale: Tensor, shift: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, input, scale, shift, output)
        let (n, c, l) = try OpCheck.channelAffine(
            input: input, scale: scale, shift: shift, output: output)
        try locked {
            try check(cim_gpu_channel_affine(
                gpu, Int32(n), Int32(c), Int32(l), buffer(input), buffer(scale),
                buffer(shift), buffer(output)))
        }
    }

    public func batchNormBackwardSums(
        outputGradient: Tensor, input: Tensor, mean: Tensor, sums: Tensor
    ) throws {
        try OpCheck.sameBackend(self, outputGradient, input, mean, sums)
        let (n, c, l) = try OpCheck.batchNormBackwardSums(
            outputGradient: outputGradient, input: input, mean: mean, sums: sums)
        guard supportsFloat64 else {
            return try onHost(inputs: [outputGradient, input, mean], output: sums) { host, t in
                try host.batchNormBackwardSums(
                    outputGradient: t[0]!, input: t[1]!, mean: t[2]!, sums: t[3]!)
            }
        }
        try locked {
            try check(cim_gpu_batchnorm_backward_sums(
                gpu, Int32(n), Int32(c), Int32(l), buffer(outputGradient), buffer(input),
                buffer(mean), buffer(sums)))
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
            try check(cim_gpu_batchnorm_backward_apply(
                gpu, Int32(n), Int32(c), Int32(l), buffer(outputGradient), buffer(input),
                buffer(mean), buffer(coefficients), buffer(inputGradient)))
        }
    }

    /// Runs a host op on copies of `inputs` (nil entries stay nil) and uploads its result
    /// into `output`: the fallback for float64 sums on a device without fp64. The body gets
    /// the host tensors, inputs then output.
    private func onHost(inputs: [Tensor?], output: Tensor,
                        _ body: (CPUBackend, [Tensor?]) throws -> Void) throws {
        let host = try locked {
            if let hostBackend { return hostBackend }
            let made = try CPUBackend(threads: 0)
            hostBackend = made
            return made
        }
        func hostCopy(_ tensor: Tensor) throws -> Tensor {
            let copy = try host.allocate(tensor.dtype, tensor.shape)
            var bytes = [UInt8](repeating: 0, count: tensor.byteCount)
            try bytes.withUnsafeMutableBytes { try download(tensor, into: $0) }
            try bytes.withUnsafeBytes { try host.upload($0, to: copy) }
            return copy
        }
        let hostInputs = try inputs.map { try $0.map(hostCopy) }
        let hostOutput = try host.allocate(output.dtype, output.shape)
        try body(host, hostInputs + [hostOutput])
        var bytes = [UInt8](repeating: 0, count: output.byteCount)
        try bytes.withUnsafeMutableBytes { try host.download(hostOutput, into: $0) }
        try bytes.withUnsafeBytes { try upload($0, to: output) }
    }

    public func relu(_ input: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, input, output)
        try OpCheck.sameShape("relu", input, output)
        try locked {
            try check(cim_gpu_relu_forward(gpu, input.count, buffer(input), buffer(output)))
        }
    }

    public func reluBackward(outputGradient: Tensor, output: Tensor, inputGradient: Tensor)
        throws
    {
        try OpCheck.sameBackend(self, outputGradient, output, inputGradient)
        try OpCheck.sameShape("reluBackward", outputGradient, output, inputGradient)
        try locked {
            try check(cim_gpu_relu_backward(
                gpu, output.count, buffer(outputGradient), buffer(output),
                buffer(inputGradient)))
        }
    }

    public func add(_ a: Tensor, _ b: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, a, b, output)
        try OpCheck.sameShape("add", a, b, output)
        try locked {
            try check(cim_gpu_add(gpu, a.count, buffer(a), buffer(b), buffer(output)))
        }
    }

    public func axpy(_ alpha: Double, _ x: Tensor, _ y: Tensor) throws {
        try OpCheck.sameBackend(self, x, y)
        try OpCheck.sameShape("axpy", x, y)
        try locked {
            try check(cim_gpu_axpy(gpu, x.count, Float(alpha), buffer(x), buffer(y)))
        }
    }

    public func scale(_ tensor: Tensor, by alpha: Double) throws {
        try OpCheck.sameBackend(self, tensor)
        try OpCheck.sameShape("scale", tensor)
        try locked {
            try check(cim_gpu_scale(gpu, tensor.count, Float(alpha), buffer(tensor)))
        }
    }

    public func fill(_ tensor: Tensor, value: Double) throws {
        try OpCheck.sameBackend(self, tensor)
        try locked {
            switch tensor.dtype {
            case .float32:
                var pattern = Float(value)
                try check(cim_gpu_fill(gpu, buffer(tensor), &pattern, 4, tensor.byteCount))
            case .float64:
                var pattern = value
                try check(cim_gpu_fill(gpu, buffer(tensor), &pattern, 8, tensor.byteCount))
            case .int32:
                var pattern = Int32(value)
                try check(cim_gpu_fill(gpu, buffer(tensor), &pattern, 4, tensor.byteCount))
            }
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
            try check(cim_gpu_bias_add(
                gpu, Int32(rows.shape[0]), Int32(rows.shape[1]), buffer(bias), buffer(rows)))
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
            try check(cim_gpu_column_sum(
                gpu, Int32(rows.shape[0]), Int32(rows.shape[1]), buffer(rows), buffer(sums),
                accumulate ? 1 : 0))
        }
    }

    public func globalAveragePool(input: Tensor, output: Tensor) throws {
        try OpCheck.sameBackend(self, input, output)
        let (n, c, l) = try OpCheck.channels("globalAveragePool", input)
        try OpCheck.shape("globalAveragePool", "output", output, [n, c])
        try locked {
            try check(cim_gpu_global_avg_pool_forward(
                gpu, Int32(n), Int32(c), Int32(l), buffer(input), buffer(output)))
        }
    }

    public func globalAveragePoolBackward(outputGradient: Tensor, inputGradient: Tensor) throws {
        try OpCheck.sameBackend(self, outputGradient, inputGradient)
        let (n, c, l) = try OpCheck.channels("globalAveragePoolBackward", inputGradient)
        try OpCheck.shape("globalAveragePoolBackward", "outputGradient", outputGradient, [n, c])
        try locked {
            try check(cim_gpu_global_avg_pool_backward(
                gpu, Int32(n), Int32(c), Int32(l), buffer(outputGradient),
                buffer(inputGradient)))
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
            try check(cim_gpu_max_pool2d_forward(
                gpu, &shape, buffer(input), buffer(output), buffer(argmax)))
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
            try check(cim_gpu_max_pool2d_backward(
                gpu, &shape, buffer(outputGradient), buffer(argmax), buffer(inputGradient)))
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
            try check(cim_gpu_l2_normalize_forward(
                gpu, Int32(input.shape[0]), Int32(input.shape[1]), Float(epsilon),
                buffer(input), buffer(output), buffer(norms)))
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
            try check(cim_gpu_l2_normalize_backward(
                gpu, Int32(output.shape[0]), Int32(output.shape[1]), Float(epsilon),
                buffer(outputGradient), buffer(output), buffer(norms), buffer(inputGradient)))
        }
    }

    public func sgdUpdate(
        parameter: Tensor, gradient: Tensor, momentumBuffer: Tensor, learningRate: Double,
        momentum: Double, weightDecay: Double
    ) throws {
        try OpCheck.sameBackend(self, parameter, gradient, momentumBuffer)
        try OpCheck.sameShape("sgdUpdate", parameter, gradient, momentumBuffer)
        try locked {
            try check(cim_gpu_sgd_update(
                gpu, parameter.count, Float(learningRate), Float(momentum),
                Float(weightDecay), buffer(parameter), buffer(gradient), buffer(momentumBuffer)))
        }
    }
}
