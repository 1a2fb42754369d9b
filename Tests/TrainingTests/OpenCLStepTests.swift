// OpenCLStepTests.swift: whole CorInfoMax training steps on OpenCL against the same steps on
// the CPU backend.
//
// A tiny CIFAR-stem ResNet (one basic block per stage, widths 4-8-8-8), projector 16-8 and
// the CIFAR-10 loss, batch 4 of 3 x 16 x 16. Both models hold the same weights (loaded from
// the CPU model's state, not just the same seed), take the same two batches, and after two
// SGD steps every loss term, parameter, running statistic and the loss's covariance state
// must agree to float32 rounding accumulated through the network: 1e-4 of each tensor's
// largest value. Every layer's forward and backward, the optimiser and the loss run, so
// this covers the wiring the op-by-op parity suite cannot. A second test runs two replicas
// on OpenCL (synchronised batch norm, summed statistics and gradients) against one.
// Skips without an OpenCL device.

import Backend
import TestSupport
import Training
import XCTest

final class OpenCLStepTests: XCTestCase {
    static let encoder = ResNetConfig(block: .basic, stem: .cifar, blocks: [1, 1, 1, 1],
                                      widths: [4, 8, 8, 8])

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
        let opencl = try openCLBackendOrSkip()
        let cpu = try CPUBackend(threads: 2)
        let onCPU = try makeTrainer(cpu)
        let onOpenCL = try makeTrainer(opencl)
        try onOpenCL.model.loadState(onCPU.model.state().mapValues { $0.values })

        var random = SplitMix64(seed: 0x0C1_57E9)
        let shape = [4, 3, 16, 16]
        for step in 1...2 {
            let view1 = random.floats(shape.reduce(1, *))
            let view2 = random.floats(shape.reduce(1, *))
            let expected = try onCPU.step(
                view1: cpu.tensor(view1, shape: shape), view2: cpu.tensor(view2, shape: shape),
                learningRate: 0.05)
            let actual = try onOpenCL.step(
                view1: opencl.tensor(view1, shape: shape),
                view2: opencl.tensor(view2, shape: shape), learningRate: 0.05)
            let (a, e) = (actual.loss, expected.loss)
            compare("step\(step).loss", [a.total], [e.total], tolerance: 1e-4)
            compare("step\(step).loss_inv", [a.invariance], [e.invariance], tolerance: 1e-4)
            compare("step\(step).loss_cov", [a.covariance], [e.covariance], tolerance: 1e-4)
        }

        let expectedState = try onCPU.model.state()
        let actualState = try onOpenCL.model.state()
        XCTAssertEqual(Set(actualState.keys), Set(expectedState.keys))
        for (name, expected) in expectedState.sorted(by: { $0.key < $1.key }) {
            guard let actual = actualState[name] else { continue }
            XCTAssertEqual(actual.shape, expected.shape, name)
            compare("final." + name, actual.values.map(Double.init),
                    expected.values.map(Double.init), tolerance: 1e-4)
        }
        for view in 0..<2 {
            compare("final.R\(view + 1)", onOpenCL.loss.covarianceState[view],
                    onCPU.loss.covarianceState[view], tolerance: 1e-5)
            compare("final.mu\(view + 1)", onOpenCL.loss.meanState[view],
                    onCPU.loss.meanState[view], tolerance: 1e-4)
        }
    }

    /// Two OpenCL replicas with the global batch split between them against one replica
    /// with the whole batch: loss, weights, BN statistics and loss state after two steps.
    func testTwoReplicasMatchOne() throws {
        _ = try openCLBackendOrSkip()
        let hyper = CorInfoMaxHyperparameters.cifar10(dimension: 8)
        func group(_ count: Int) throws -> ReplicaGroup {
            try ReplicaGroup(
                backends: (0..<count).map { _ in try openCLBackendOrSkip() },
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
            compare("replicas step\(step).loss", [actual.loss.total], [expected.loss.total],
                    tolerance: 1e-5)
        }
        let expectedState = try one.primary.model.state()
        for (name, actual) in try two.primary.model.state().sorted(by: { $0.key < $1.key }) {
            compare("replicas final." + name, actual.values.map(Double.init),
                    expectedState[name]!.values.map(Double.init), tolerance: 1e-4)
        }
        compare("replicas final.R1", two.primary.loss.covarianceState[0],
                one.primary.loss.covarianceState[0], tolerance: 1e-5)
    }
}
