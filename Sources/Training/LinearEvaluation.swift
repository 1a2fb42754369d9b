// LinearEvaluation.swift: the linear-probe protocol of SPEC 6.1 on a trained encoder.
//
// The encoder is frozen and in evaluation mode (running BN statistics); only a Linear(F, C)
// classifier with bias is trained, with softmax cross-entropy, SGD momentum 0.9 and weight
// decay 0, the learning rate following cosine annealing per epoch (0.2 to 2e-3 over 100
// epochs by default). Training images use the linear-train transform (RandomResizedCrop +
// flip, fresh draws every epoch); the test set uses the test transform, whose features are
// computed once (the encoder does not change). The test split is evaluated after every
// epoch; top-1 and top-5 are reported in percent, for the last epoch and the best one.
//
// With `augment = false` the training features are also computed once with the test
// transform: much faster on a CPU, and the usual "frozen features" shortcut, but not the
// paper's protocol.

import Backend
import Foundation

public struct LinearEvaluationConfig: Sendable {
    public var epochs = 100
    public var batchSize = 256
    public var lr = 0.2
    public var minLr = 2e-3
    public var momentum = 0.9
    public var augment = true
    public var seed: UInt64 = 0
    public var workers = 2
    public init() {}
}

public struct LinearEpochRecord: Sendable {
    public var epoch: Int
    public var lr: Double
    public var trainLoss: Double
    public var testLoss: Double
    public var top1: Double
    public var top5: Double
}

public enum LinearEvaluation {
    public static func run(
        model: CorInfoMaxModel, train: ImageDataset, test: ImageDataset,
        normalization: Normalization, imageSize: Int, config: LinearEvaluationConfig,
        report: (LinearEpochRecord) -> Void
    ) throws -> [LinearEpochRecord] {
        let backend = model.backend
        let features = model.encoder.outputFeatures
        let classes = train.classes
        var initializer = WeightInitializer(seed: config.seed &+ 77)
        let classifier = try Linear(
            backend, features, classes,
            weights: initializer.uniformBound([classes, features], fanIn: features),
            bias: initializer.uniformBound([classes], fanIn: features))
        let optimizer = SGD(momentum: config.momentum, weightDecay: 0)
        let schedule = LearningRateSchedule.cosine(base: config.lr, minimum: config.minLr,
                                                   epochs: config.epochs)
        let testSet = try Features.extract(model: model, dataset: test,
                                           normalization: normalization,
                                           size: imageSize, workers: config.workers)
        let fixedTrain = config.augment ? nil : try Features.extract(
            model: model, dataset: train, normalization: normalization, size: imageSize,
            workers: config.workers)

        var records: [LinearEpochRecord] = []
        for epoch in 0..<config.epochs {
            let lr = schedule.rate(epoch: epoch)
            var lossSum = 0.0
            var seen = 0

            // one pass over the training set
            func trainBatch(_ x: Tensor, _ labels: [Int32]) throws {
                for parameter in classifier.parameters {
                    try backend.fill(parameter.gradient, value: 0)
                }
                let logits = try classifier.forward(x, training: true)
                let result = SoftmaxCrossEntropy.evaluate(
                    logits: try backend.download(logits), labels: labels, classes: classes)
                _ = try classifier.backward(backend.tensor(result.gradient, shape: logits.shape))
                try optimizer.step(classifier.parameters, learningRate: lr, on: backend)
                lossSum += result.loss * Double(labels.count)
                seen += labels.count
            }
            if let fixedTrain {
                var order = Array(0..<fixedTrain.labels.count)
                var random = SplitMix64(seed: config.seed &+ UInt64(epoch) &* 0x9E37_79B9)
                order.shuffle(using: &random)
                for start in stride(from: 0, to: order.count, by: config.batchSize) {
                    let rows = Array(order[start..<min(start + config.batchSize, order.count)])
                    var x = [Float]()
                    x.reserveCapacity(rows.count * features)
                    for r in rows {
                        x += fixedTrain.features[(r * features)..<((r + 1) * features)]
                    }
                    try trainBatch(backend.tensor(x, shape: [rows.count, features]),
                                   rows.map { fixedTrain.labels[$0] })
                }
            } else {
                let loader = EvalLoader(
                    dataset: train, transform: .linearTrain(size: imageSize),
                    batchSize: config.batchSize, normalization: normalization, epoch: epoch,
                    seed: config.seed, workers: config.workers)
                defer { loader.cancel() }
                for batch in loader {
                    let images = try backend.tensor(
                        batch.images, shape: [batch.count, 3, batch.imageSize, batch.imageSize])
                    try trainBatch(model.features(images), batch.labels)
                }
            }

            // the test split
            let logits = try classifier.forward(
                backend.tensor(testSet.features, shape: [testSet.labels.count, features]),
                training: false)
            let result = SoftmaxCrossEntropy.evaluate(
                logits: try backend.download(logits), labels: testSet.labels, classes: classes)
            let count = Double(testSet.labels.count)
            let record = LinearEpochRecord(
                epoch: epoch + 1, lr: lr, trainLoss: lossSum / Double(max(seen, 1)),
                testLoss: result.loss, top1: 100 * Double(result.top1) / count,
                top5: 100 * Double(result.top5) / count)
            records.append(record)
            report(record)
        }
        return records
    }
}
