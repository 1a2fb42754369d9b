// StepBenchmark.swift: the training-step case of `cim-train bench --ops step`.
//
// One full CorInfoMax step (two views through encoder and projector, the loss, the backward
// pass, the SGD update) on random inputs, default ResNet-18 with the CIFAR stem, projector
// 2048-2048-64, batch 128. Before timing, the loss and its gradient on the model's own
// embeddings are compared with ReferenceCorInfoMax. Reports images per second (an image is
// one pair of views) and the process's peak resident memory over the timed steps.

import Backend
import Foundation

public struct StepBenchmarkConfig: Sendable {
    public var encoder = ResNetConfig.resnet18(stem: .cifar)
    public var projector = ProjectorConfig(widths: [2048, 2048, 64])
    public var batch = 128
    public var imageSize = 32
    public var learningRate = 0.1
    public init() {}

    public var caseName: String {
        let model = encoder.block == .basic ? "resnet18" : "resnet50"
        return "\(model)-\(encoder.stem.rawValue) \(projector.description) B\(batch)"
    }
}

public enum StepBenchmark {
    /// Runs the case; `backend` may be a ProfilingBackend (the profile then covers the timed
    /// steps only).
    public static func run(on backend: Backend, host: CPUBackend, config: StepBenchmarkConfig,
                           options: BenchmarkOptions) throws -> BenchmarkResult {
        let d = config.projector.outputWidth
        let hyper = CorInfoMaxHyperparameters(alpha: 250, lambdaR: 0.01, lambdaMu: 0.01,
                                              dimension: d)
        let model = try CorInfoMaxModel(backend, encoder: config.encoder,
                                        projector: config.projector, seed: options.seed)
        let trainer = try CorInfoMaxTrainer(
            model: model, loss: CorInfoMaxLoss(hyper, host: host), optimizer: SGD())
        var random = SplitMix64(seed: options.seed)
        let shape = [config.batch, 3, config.imageSize, config.imageSize]
        let count = shape.reduce(1, *)
        let view1 = try backend.tensor(random.uniformArray(count, -2, 2, as: Float.self),
                                       shape: shape)
        let view2 = try backend.tensor(random.uniformArray(count, -2, 2, as: Float.self),
                                       shape: shape)

        // check the loss and its gradient against the plain reference
        let z1: [Float] = try backend.download(model.embed(view1, training: false))
        let z2: [Float] = try backend.download(model.embed(view2, training: false))
        let (fast, dz1, dz2) = try CorInfoMaxLoss(hyper, host: host)(z1: z1, z2: z2)
        var reference = ReferenceCorInfoMax(hyper)
        let expected = try reference.step(z1: z1.map(Double.init), z2: z2.map(Double.init))
        var error = abs(fast.total - expected.value.total) / max(abs(expected.value.total), 1e-30)
        let gradientScale = (expected.dz1 + expected.dz2).map(abs).max() ?? 1
        for (a, b) in zip(dz1 + dz2, expected.dz1 + expected.dz2) {
            error = max(error, abs(Double(a) - b) / gradientScale)
        }
        guard error <= 1e-5 else {
            throw BenchmarkVerificationError(op: "step", caseName: config.caseName, error: error,
                                             tolerance: 1e-5)
        }

        // warm up, then time whole steps; peak memory over the timed steps
        (backend as? ProfilingBackend)?.reset()
        for _ in 0..<options.warmup {
            _ = try trainer.step(view1: view1, view2: view2, learningRate: config.learningRate)
        }
        (backend as? ProfilingBackend)?.reset()
        resetPeakResidentMemory()
        let seconds = try medianTime(warmup: 0, repeats: options.repeats) {
            _ = try trainer.step(view1: view1, view2: view2, learningRate: config.learningRate)
            try backend.synchronize()
        }
        return BenchmarkResult(
            op: "step", caseName: config.caseName, pass: "fwd+bwd", medianSeconds: seconds,
            gflops: nil, maxRelativeError: error,
            extra: ["images_per_s": Double(config.batch) / seconds,
                    "peak_rss_bytes": Double(peakResidentMemory())])
    }
}

/// Linux: forget the peak resident set size so far (writing 5 to /proc/self/clear_refs).
public func resetPeakResidentMemory() {
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
}

/// Linux: the peak resident set size (VmHWM) in bytes, 0 where unknown.
public func peakResidentMemory() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
        return 0
    }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kilobytes * 1024
    }
    return 0
}
