// GPUStepTests.swift: whole CorInfoMax training steps on each GPU backend (OpenCL, CUDA)
// against the same steps on the CPU backend.
//
// A tiny CIFAR-stem ResNet (one basic block per stage, widths 4-8-8-8), projector 16-8 and
// the CIFAR-10 loss, batch 4 of 3 x 16 x 16. Both models hold the same weights (loaded from
// the CPU model's state, not just the same seed), take the same two batches, and after two
// SGD steps every loss term, parameter, running statistic and the loss's covariance state
// must agree to float32 rounding accumulated through the network: 1e-4 of each tensor's
// largest value. Every layer's forward and backward, the optimiser and the loss run, so
// this covers the wiring the op-by-op parity suite cannot. A second test runs two replicas
// on the GPU backend (synchronised batch norm, summed statistics and gradients) against one.
// CI runs them on OpenCL (PoCL on the CPU), scripts/gpu_check.sh on CUDA too; without any
// GPU backend they skip, saying why.

import Backend
import TestSupport
import Training
import XCTest

final class GPUStepTests: XCTestCase {
    static let encoder = ResNetConfig(block: .basic, stem: .cifar, blocks: [1, 1, 1, 1],
                                      widths: [4, 8, 8, 8])

    /// How to open each GPU backend kind, for the kinds that open here (a fresh backend per
    /// call, so replicas get one each); XCTSkip with every kind's reason when none does.
    private func gpuKinds() throws -> [(String, () throws -> Backend)] {
        let all: [(String, () throws -> Backend)] = [
            ("opencl", { try openCLBackendOrSkip() }),
            ("cuda", { try cudaBackendOrSkip() }),
        ]
        var kinds: [(String, () throws -> Backend)] = []
        var reasons: [String] = []
        for (label, open) in all {
            do {
                _ = try open()
                kinds.append((label, open))
            } catch let skip as XCTSkip {
                reasons.append("\(skip)")
            }
        }
        guard !kinds.isEmpty else {
            throw XCTSkip("no GPU backend: " + reasons.joined(separator: "; "))
        }
        return kinds
    }

    private func makeTrainer(_ backend: Backend) throws -> CorInfoMaxTrainer {
        let model = try CorInfoMaxModel(
            backend, encoder: Self.encoder, projector: .parse("16-8"), seed: 1)
        let loss = try CorInfoMaxLoss(.cifar10(dimension: 8), host: CPUBackend(threads: 1))
        return try CorInfoMaxTrainer(model: model, loss: loss, optimizer: SGD())
    }

    private func compare(_ label: String, _ actual: [Double], _ expected: [Double],
                         tolerance: Double, file: StaticString = #filePath, line: UInt = #line) {
        let scale = [Double](repeating: max(maxAbsolute(expected), 1e-30), count: expected.count)
        reportDifference(label, actual, expected, scale: scale)
        assertClose(actual, expected, scale: scale, rtol: tolerance, label, file: file, line: line)
    }

    func testTwoStepsMatchTheCPUBackend() throws {
        for (kind, open) in try gpuKinds() {
            try checkTwoSteps(kind, on: open())
        }
    }

    private func checkTwoSteps(_ kind: String, on gpu: Backend) throws {
        let cpu = try CPUBackend(threads: 2)
        let onCPU = try makeTrainer(cpu)
        let onGPU = try makeTrainer(gpu)
        try onGPU.model.loadState(onCPU.model.state().mapValues { $0.values })

        var random = SplitMix64(seed: 0x0C1_57E9)
        let shape = [4, 3, 16, 16]
        for step in 1...2 {
            let view1 = random.floats(shape.reduce(1, *))
            let view2 = random.floats(shape.reduce(1, *))
            let expected = try onCPU.step(
                view1: cpu.tensor(view1, shape: shape), view2: cpu.tensor(view2, shape: shape),
                learningRate: 0.05)
            let actual = try onGPU.step(
                view1: gpu.tensor(view1, shape: shape),
                view2: gpu.tensor(view2, shape: shape), learningRate: 0.05)
            let (a, e) = (actual.loss, expected.loss)
            let label = "\(kind) step\(step)"
            compare("\(label).loss", [a.total], [e.total], tolerance: 1e-4)
            compare("\(label).loss_inv", [a.invariance], [e.invariance], tolerance: 1e-4)
            compare("\(label).loss_cov", [a.covariance], [e.covariance], tolerance: 1e-4)
        }

        let expectedState = try onCPU.model.state()
        let actualState = try onGPU.model.state()
        XCTAssertEqual(Set(actualState.keys), Set(expectedState.keys), kind)
        for (name, expected) in expectedState.sorted(by: { $0.key < $1.key }) {
            guard let actual = actualState[name] else { continue }
            XCTAssertEqual(actual.shape, expected.shape, "\(kind) \(name)")
            compare("\(kind) final." + name, actual.values.map(Double.init),
                    expected.values.map(Double.init), tolerance: 1e-4)
        }
        for view in 0..<2 {
            compare("\(kind) final.R\(view + 1)", onGPU.loss.covarianceState[view],
                    onCPU.loss.covarianceState[view], tolerance: 1e-5)
            compare("\(kind) final.mu\(view + 1)", onGPU.loss.meanState[view],
                    onCPU.loss.meanState[view], tolerance: 1e-4)
        }
    }

    /// Two replicas on one GPU backend kind with the global batch split between them against
    /// one replica with the whole batch: loss, weights, BN statistics and loss state after
    /// two steps.
    func testTwoReplicasMatchOne() throws {
        for (kind, open) in try gpuKinds() {
            try checkTwoReplicas(kind, open: open)
        }
    }

    private func checkTwoReplicas(_ kind: String, open: () throws -> Backend) throws {
        let hyper = CorInfoMaxHyperparameters.cifar10(dimension: 8)
        func group(_ count: Int) throws -> ReplicaGroup {
            try ReplicaGroup(
                backends: (0..<count).map { _ in try open() },
                encoder: Self.encoder, projector: .parse("16-8"), hyper: hyper,
                optimizer: SGD(), seed: 3)
        }
        let one = try group(1)
        let two = try group(2)
        var random = SplitMix64(seed: 0x2EB_11CA)
        let (batch, size) = (8, 16)
        for step in 1...2 {
            let view1 = random.floats(batch * 3 * size * size)
            let view2 = random.floats(batch * 3 * size * size)
            let expected = try one.step(view1: view1, view2: view2, batch: batch,
                                        imageSize: size, learningRate: 0.05)
            let actual = try two.step(view1: view1, view2: view2, batch: batch,
                                      imageSize: size, learningRate: 0.05, checkReplicas: true)
            compare("\(kind) replicas step\(step).loss", [actual.loss.total],
                    [expected.loss.total], tolerance: 1e-5)
        }
        let expectedState = try one.primary.model.state()
        for (name, actual) in try two.primary.model.state().sorted(by: { $0.key < $1.key }) {
            compare("\(kind) replicas final." + name, actual.values.map(Double.init),
                    expectedState[name]!.values.map(Double.init), tolerance: 1e-4)
        }
        compare("\(kind) replicas final.R1", two.primary.loss.covarianceState[0],
                one.primary.loss.covarianceState[0], tolerance: 1e-5)
    }
}
