// ProfilingBackend.swift: a Backend that forwards every call to another and records how
// long each op took, keyed by op and shape, so `cim-train bench --ops step --profile` can
// say where a training step spends its time.
//
// Each op synchronizes the inner backend before stopping its clock (on an asynchronous GPU
// backend the time would otherwise land on whichever later call waits). Memory calls are
// forwarded untimed.

import Foundation

/// Time spent in one op at one shape.
public struct ProfileEntry: Sendable {
    public var op: String
    public var shape: String
    public var calls: Int
    public var seconds: Double
}

public final class ProfilingBackend: Backend, @unchecked Sendable {
    public let inner: Backend
    private var entries: [String: ProfileEntry] = [:]
    private let lock = NSLock()

    public init(_ inner: Backend) { self.inner = inner }

    public var deviceName: String { inner.deviceName }
    public var deviceDetail: String { inner.deviceDetail }

    /// Recorded entries, most time first.
    public var profile: [ProfileEntry] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.sorted { $0.seconds > $1.seconds }
    }

    public func reset() {
        lock.lock()
        entries = [:]
        lock.unlock()
    }

    private func timed(_ op: String, _ shape: @autoclosure () -> String, _ body: () throws -> Void)
        rethrows
    {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        try? inner.synchronize()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let key = op + " " + shape()
        lock.lock()
        var entry = entries[key] ?? ProfileEntry(op: op, shape: shape(), calls: 0, seconds: 0)
        entry.calls += 1
        entry.seconds += seconds
        entries[key] = entry
        lock.unlock()
    }

    // MARK: Memory (forwarded)

    public func allocate(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
        try inner.allocate(dtype, shape)
    }
    public func upload(_ source: UnsafeRawBufferPointer, to tensor: Tensor) throws {
        try inner.upload(source, to: tensor)
    }
    public func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer) throws {
        try inner.download(tensor, into: destination)
    }
    public func copy(_ source: Tensor, to destination: Tensor) throws {
        try inner.copy(source, to: destination)
    }
    public func synchronize() throws { try inner.synchronize() }

    // MARK: Ops (timed)

    public func gemm(_ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, into c: Tensor,
                     alpha: Double, beta: Double) throws {
        try timed("gemm", "\(a.shape)\(transposeA ? "T" : "")x\(b.shape)\(transposeB ? "T" : "")") {
            try inner.gemm(a, transposeA: transposeA, b, transposeB: transposeB, into: c,
                           alpha: alpha, beta: beta)
        }
    }
    public func conv2dForward(input: Tensor, weight: Tensor, output: Tensor,
                              geometry: Conv2DGeometry) throws {
        try timed("conv fwd", "\(geometry)") {
            try inner.conv2dForward(input: input, weight: weight, output: output,
                                    geometry: geometry)
        }
    }
    public func conv2dBackwardData(outputGradient: Tensor, weight: Tensor, inputGradient: Tensor,
                                   geometry: Conv2DGeometry) throws {
        try timed("conv bwd data", "\(geometry)") {
            try inner.conv2dBackwardData(outputGradient: outputGradient, weight: weight,
                                         inputGradient: inputGradient, geometry: geometry)
        }
    }
    public func conv2dBackwardFilter(input: Tensor, outputGradient: Tensor, weightGradient: Tensor,
                                     geometry: Conv2DGeometry, accumulate: Bool) throws {
        try timed("conv bwd filter", "\(geometry)") {
            try inner.conv2dBackwardFilter(input: input, outputGradient: outputGradient,
                                           weightGradient: weightGradient, geometry: geometry,
                                           accumulate: accumulate)
        }
    }
    public func logdetSPD(_ matrices: Tensor, logdet: Tensor, inverse: Tensor?) throws {
        try timed("logdet", "\(matrices.shape)") {
            try inner.logdetSPD(matrices, logdet: logdet, inverse: inverse)
        }
    }
    public func batchNormForward(input: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor,
                                 runningVar: Tensor, output: Tensor, savedMean: Tensor?,
                                 savedInvStd: Tensor?, training: Bool, momentum: Double,
                                 epsilon: Double) throws {
        try timed("batchnorm fwd", "\(input.shape)") {
            try inner.batchNormForward(input: input, gamma: gamma, beta: beta,
                                       runningMean: runningMean, runningVar: runningVar,
                                       output: output, savedMean: savedMean,
                                       savedInvStd: savedInvStd, training: training,
                                       momentum: momentum, epsilon: epsilon)
        }
    }
    public func batchNormBackward(outputGradient: Tensor, input: Tensor, gamma: Tensor,
                                  savedMean: Tensor, savedInvStd: Tensor, inputGradient: Tensor,
                                  gammaGradient: Tensor, betaGradient: Tensor,
                                  accumulate: Bool) throws {
        try timed("batchnorm bwd", "\(input.shape)") {
            try inner.batchNormBackward(outputGradient: outputGradient, input: input, gamma: gamma,
                                        savedMean: savedMean, savedInvStd: savedInvStd,
                                        inputGradient: inputGradient, gammaGradient: gammaGradient,
                                        betaGradient: betaGradient, accumulate: accumulate)
        }
    }
    public func channelSums(input: Tensor, center: Tensor?, sums: Tensor) throws {
        try timed("bn sums", "\(input.shape)") {
            try inner.channelSums(input: input, center: center, sums: sums)
        }
    }
    public func channelAffine(input: Tensor, scale: Tensor, shift: Tensor, output: Tensor) throws {
        try timed("bn affine", "\(input.shape)") {
            try inner.channelAffine(input: input, scale: scale, shift: shift, output: output)
        }
    }
    public func batchNormBackwardSums(outputGradient: Tensor, input: Tensor, mean: Tensor,
                                      sums: Tensor) throws {
        try timed("bn bwd sums", "\(input.shape)") {
            try inner.batchNormBackwardSums(outputGradient: outputGradient, input: input,
                                            mean: mean, sums: sums)
        }
    }
    public func batchNormBackwardApply(outputGradient: Tensor, input: Tensor, mean: Tensor,
                                       coefficients: Tensor, inputGradient: Tensor) throws {
        try timed("bn bwd apply", "\(input.shape)") {
            try inner.batchNormBackwardApply(outputGradient: outputGradient, input: input,
                                             mean: mean, coefficients: coefficients,
                                             inputGradient: inputGradient)
        }
    }
    public func relu(_ input: Tensor, output: Tensor) throws {
        try timed("relu fwd", "\(input.shape)") { try inner.relu(input, output: output) }
    }
    public func reluBackward(outputGradient: Tensor, output: Tensor, inputGradient: Tensor) throws {
        try timed("relu bwd", "\(output.shape)") {
            try inner.reluBackward(outputGradient: outputGradient, output: output,
                                   inputGradient: inputGradient)
        }
    }
    public func add(_ a: Tensor, _ b: Tensor, output: Tensor) throws {
        try timed("add", "\(a.shape)") { try inner.add(a, b, output: output) }
    }
    public func axpy(_ alpha: Double, _ x: Tensor, _ y: Tensor) throws {
        try timed("axpy", "\(x.shape)") { try inner.axpy(alpha, x, y) }
    }
    public func scale(_ tensor: Tensor, by alpha: Double) throws {
        try timed("scale", "\(tensor.shape)") { try inner.scale(tensor, by: alpha) }
    }
    public func fill(_ tensor: Tensor, value: Double) throws {
        try timed("fill", "\(tensor.shape)") { try inner.fill(tensor, value: value) }
    }
    public func addBias(_ bias: Tensor, to rows: Tensor) throws {
        try timed("bias add", "\(rows.shape)") { try inner.addBias(bias, to: rows) }
    }
    public func columnSum(_ rows: Tensor, into sums: Tensor, accumulate: Bool) throws {
        try timed("column sum", "\(rows.shape)") {
            try inner.columnSum(rows, into: sums, accumulate: accumulate)
        }
    }
    public func globalAveragePool(input: Tensor, output: Tensor) throws {
        try timed("avgpool fwd", "\(input.shape)") {
            try inner.globalAveragePool(input: input, output: output)
        }
    }
    public func globalAveragePoolBackward(outputGradient: Tensor, inputGradient: Tensor) throws {
        try timed("avgpool bwd", "\(inputGradient.shape)") {
            try inner.globalAveragePoolBackward(outputGradient: outputGradient,
                                                inputGradient: inputGradient)
        }
    }
    public func maxPool2dForward(input: Tensor, output: Tensor, argmax: Tensor,
                                 geometry: Pool2DGeometry) throws {
        try timed("maxpool fwd", "\(input.shape)") {
            try inner.maxPool2dForward(input: input, output: output, argmax: argmax,
                                       geometry: geometry)
        }
    }
    public func maxPool2dBackward(outputGradient: Tensor, argmax: Tensor, inputGradient: Tensor,
                                  geometry: Pool2DGeometry) throws {
        try timed("maxpool bwd", "\(inputGradient.shape)") {
            try inner.maxPool2dBackward(outputGradient: outputGradient, argmax: argmax,
                                        inputGradient: inputGradient, geometry: geometry)
        }
    }
    public func l2NormalizeRows(input: Tensor, output: Tensor, norms: Tensor, epsilon: Double)
        throws
    {
        try timed("l2norm fwd", "\(input.shape)") {
            try inner.l2NormalizeRows(input: input, output: output, norms: norms, epsilon: epsilon)
        }
    }
    public func l2NormalizeRowsBackward(outputGradient: Tensor, output: Tensor, norms: Tensor,
                                        inputGradient: Tensor, epsilon: Double) throws {
        try timed("l2norm bwd", "\(output.shape)") {
            try inner.l2NormalizeRowsBackward(outputGradient: outputGradient, output: output,
                                              norms: norms, inputGradient: inputGradient,
                                              epsilon: epsilon)
        }
    }
    public func sgdUpdate(parameter: Tensor, gradient: Tensor, momentumBuffer: Tensor,
                          learningRate: Double, momentum: Double, weightDecay: Double) throws {
        try timed("sgd", "all parameters") {
            try inner.sgdUpdate(parameter: parameter, gradient: gradient,
                                momentumBuffer: momentumBuffer, learningRate: learningRate,
                                momentum: momentum, weightDecay: weightDecay)
        }
    }
}
