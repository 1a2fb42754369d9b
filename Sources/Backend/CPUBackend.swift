// CPUBackend.swift: the Backend on the host, through CKernels' OpenBLAS path.
//
// Buffers are 64-byte aligned host allocations. Ops run synchronously on the calling thread
// (with OpenBLAS and CKernels threads inside them), so `synchronize` has nothing to wait
// for. The C context holds the reusable convolution workspace and is not safe to share
// between threads, so every op takes the backend's lock: one replica per backend instance
// is the intended use, and the lock only guards against misuse.

import CKernels
import Foundation

/// Host memory owned by a ``CPUBackend``.
final class CPUBuffer: DeviceBuffer, @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int
    let ownerID: ObjectIdentifier

    init(byteCount: Int, owner: ObjectIdentifier) throws {
        var memory: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&memory, 64, max(byteCount, 1)) == 0, let memory else {
            throw BackendError.outOfMemory("cannot allocate \(byteCount) bytes on the host")
        }
        self.pointer = memory
        self.byteCount = byteCount
        self.ownerID = owner
    }

    deinit { free(pointer) }
}

/// How the CPU backend computes convolutions.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd F(2x2, 3x3) for 3x3 stride-1 forward and backward-data passes with at least
    /// 16 channels in and out, im2col + GEMM for the rest.
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

    /// - Parameter threads: threads for OpenBLAS and the CKernels loops; 0 = every core.
    /// - Parameter convolution: the convolution algorithm (tests force each in turn).
    public init(threads: Int = 0, convolution: ConvolutionAlgorithm = .auto) throws {
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
            byteCount: shape.reduce(1, *) * dtype.size, owner: ObjectIdentifier(self))
        return Tensor(shape: shape, dtype: dtype, buffer: buffer)
    }

    public func upload(_ source: UnsafeRawBufferPointer, to tensor: Tensor) throws {
        try OpCheck.sameBackend(self, tensor)
        guard source.count == tensor.byteCount else {
            throw BackendError.shapeMismatch(
                "upload of \(source.count) bytes into \(tensor.summary) (\(tensor.byteCount) bytes)")
        }
        if let base = source.baseAddress { pointer(tensor).copyMemory(from: base, byteCount: source.count) }
    }

    public func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer)
        throws
    {
        try OpCheck.sameBackend(self, tensor)
        guard destination.count == tensor.byteCount else {
            throw BackendError.shapeMismatch(
                "download of \(tensor.summary) (\(tensor.byteCount) bytes) into \(destination.count) bytes")
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
        let (lda, ldb, ldc) = (Int32(a.shape[1]), Int32(b.shape[1]), Int32(c.shape[1]))
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

    private func floats(_ tensor: Tensor) -> UnsafeMutablePointer<Float> {
        pointer(tensor).assumingMemoryBound(to: Float.self)
    }

    private func doubles(_ tensor: Tensor) -> UnsafeMutablePointer<Double> {
        pointer(tensor).assumingMemoryBound(to: Double.self)
    }
}
