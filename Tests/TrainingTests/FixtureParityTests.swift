// FixtureParityTests.swift: the model, loss and optimiser against PyTorch.
//
// scripts/make_fixture.py ran a reduced-width CIFAR ResNet-18 (stage widths 6-12-24-48),
// projector 64-64-16, the CorInfoMax loss of SPEC 2.1 with autograd and 3 SGD steps in
// PyTorch, and saved the initial weights, the inputs, the step-1 embeddings, loss terms and
// every parameter gradient, the losses of steps 2 and 3, and the weights, BN statistics and
// loss state after step 3 (Tests/Fixtures/corinfomax-tiny-v1.safetensors). This test loads
// the same initial weights, runs the same steps with our hand-written backward, and
// compares every tensor, printing its largest difference relative to the tensor's largest
// magnitude. The tolerances are those of float32 arithmetic through a few dozen layers.

import Backend
import Foundation
import TestSupport
import Training
import XCTest

final class FixtureParityTests: XCTestCase {
    static let fixturePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/corinfomax-tiny-v1.safetensors").path

    /// Largest |a − b| over the tensor's largest |b|.
    func compare(_ label: String, _ actual: [Float], _ expected: [Float], tolerance: Double,
                 file: StaticString = #filePath, line: UInt = #line) {
        compare(label, actual.map(Double.init), expected.map(Double.init), tolerance: tolerance,
                file: file, line: line)
    }

    func compare(_ label: String, _ actual: [Double], _ expected: [Double], tolerance: Double,
                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, label, file: file, line: line)
        let magnitude = max(maxAbsolute(expected), 1e-30)
        let scale = [Double](repeating: magnitude, count: expected.count)
        reportDifference(label, actual, expected, scale: scale)
        assertClose(actual, expected, scale: scale, rtol: tolerance, label, file: file, line: line)
    }

    func testThreeStepsMatchPyTorch() throws {
        let fixture = try SafeTensorsFile.read(Self.fixturePath)
        XCTAssertEqual(fixture.metadata["format"], "cim-train-fixture")
        XCTAssertEqual(fixture.metadata["version"], "1")
        let config = try JSONSerialization.jsonObject(
            with: Data(fixture.metadata["config"]!.utf8)) as! [String: Any]
        let width = config["width"] as! Int
        let loss = config["loss"] as! [String: Any]
        let hyper = CorInfoMaxHyperparameters(
            alpha: loss["alpha"] as! Double, beta: loss["beta"] as! Double,
            lambdaR: loss["la_R"] as! Double, lambdaMu: loss["la_mu"] as! Double,
            epsilon: loss["eps"] as! Double, rInit: loss["R_ini"] as! Double,
            dimension: loss["D"] as! Int)
        let learningRate = config["lr"] as! Double

        let backend = try CPUBackend(threads: 2)
        let model = try CorInfoMaxModel(
            backend, encoder: .resnet18(stem: .cifar, width: width),
            projector: try .parse(config["projector"] as! String), seed: 1)
        var initial: [String: [Float]] = [:]
        for (name, entry) in fixture.tensors where name.hasPrefix("init.") {
            initial[name] = try entry.floats()
        }
        try model.loadState(initial, prefix: "init.")
        let trainer = try CorInfoMaxTrainer(
            model: model, loss: CorInfoMaxLoss(hyper, host: CPUBackend(threads: 1)),
            optimizer: SGD(momentum: config["momentum"] as! Double,
                           weightDecay: config["weight_decay"] as! Double))

        for step in 1...3 {
            let x1 = try fixture.entry("step\(step).x1"), x2 = try fixture.entry("step\(step).x2")
            let view1 = try backend.tensor(x1.floats(), shape: x1.shape)
            let view2 = try backend.tensor(x2.floats(), shape: x2.shape)
            if step == 1 {
                // the step spelled out, to compare the embeddings and the gradients
                try model.zeroGradients()
                let z1 = try model.embed(view1, training: true)
                let z2 = try model.embed(view2, training: true)
                let z1Host: [Float] = try backend.download(z1)
                let z2Host: [Float] = try backend.download(z2)
                compare("step1.z1", z1Host, try fixture.floats("step1.z1"), tolerance: 2e-5)
                compare("step1.z2", z2Host, try fixture.floats("step1.z2"), tolerance: 2e-5)
                let (value, dz1, dz2) = try trainer.loss(z1: z1Host, z2: z2Host)
                compare("step1.loss", [value.total], try fixture.doubles("step1.loss"),
                        tolerance: 1e-5)
                compare("step1.loss_inv", [value.invariance], try fixture.doubles("step1.loss_inv"),
                        tolerance: 1e-4)
                compare("step1.loss_cov", [value.covariance], try fixture.doubles("step1.loss_cov"),
                        tolerance: 1e-5)
                try model.backward(backend.tensor(dz2, shape: z2.shape))
                try model.backward(backend.tensor(dz1, shape: z1.shape))
                for (name, parameter) in model.namedParameters() {
                    let expected = try fixture.floats("step1.grad." + name)
                    let actual: [Float] = try backend.download(parameter.gradient)
                    if expected.allSatisfy({ $0 == 0 }) {
                        // zero-γ residual branches: exactly zero in both
                        XCTAssertTrue(actual.allSatisfy { $0 == 0 }, "grad \(name) should be 0")
                    } else {
                        compare("step1.grad." + name, actual, expected, tolerance: 1e-4)
                    }
                }
                try trainer.optimizer.step(model.parameters, learningRate: learningRate,
                                           on: backend)
            } else {
                let result = try trainer.step(view1: view1, view2: view2,
                                              learningRate: learningRate)
                compare("step\(step).loss", [result.loss.total],
                        try fixture.doubles("step\(step).loss"), tolerance: 1e-4)
            }
        }

        // weights, BN statistics and the loss state after three steps
        for (name, (_, values)) in try model.state() {
            compare("final." + name, values, try fixture.floats("final." + name), tolerance: 1e-4)
        }
        for v in 0..<2 {
            compare("final.R\(v + 1)", trainer.loss.covarianceState[v],
                    try fixture.doubles("final.R\(v + 1)"), tolerance: 1e-5)
            compare("final.mu\(v + 1)", trainer.loss.meanState[v],
                    try fixture.doubles("final.mu\(v + 1)"), tolerance: 1e-5)
        }
    }
}
