// EvalCommand.swift: `cim-train eval`, kNN or linear evaluation of a trained encoder.

import Backend
import Foundation
import Training

enum EvalCommand {
    static let specs: [OptionSpec] = [
        .option("checkpoint", "PATH", "checkpoint file or run folder (required)"),
        .option("protocol", "NAME", default: "knn",
                "knn (k-nearest neighbours) or linear (SPEC 6.1)"),
        .option("dataset", "NAME", "dataset to evaluate on (default: the run's)"),
        .option("data-dir", "DIR", "where the CIFAR .bin files are (default: the run's)"),
        .option("epochs", "N", default: "100", "linear: epochs"),
        .option("batch-size", "N", default: "256", "linear: batch size"),
        .option("lr", "LR", default: "0.2", "linear: base learning rate (cosine to 1% of it)"),
        .flag("no-augment",
              "linear: train on fixed test-transform features (fast, not the paper's protocol)"),
        .option("knn-k", "K", default: "200", "kNN: neighbours"),
        .option("devices", "NAME", default: "cpu", "device"),
        .option("threads", "N", default: "0", "CPU threads (0: every core)"),
        .option("workers", "N", default: "2", "data threads"),
        .option("json", "PATH",
                "where to write the result (default: eval-<protocol>.json beside the checkpoint)"),
    ]

    static func run(_ arguments: [String]) throws {
        let options = try ParsedOptions.parse(arguments, specs: specs, command: "eval")
        if options.has("help") {
            print(ParsedOptions.help(
                command: "eval", summary: "Evaluate a trained encoder (frozen, evaluation mode).",
                specs: specs))
            return
        }
        guard let given = options.string("checkpoint") else {
            throw UsageError("eval needs --checkpoint PATH (a checkpoint file or a run folder)")
        }
        let path = Checkpoint.resolve(given)
        guard FileManager.default.fileExists(atPath: path) else {
            throw UsageError("--checkpoint \(given): no checkpoint at \(path)")
        }
        let protocolName = options.string("protocol")!
        guard ["knn", "linear"].contains(protocolName) else {
            throw UsageError("--protocol must be knn or linear, got '\(protocolName)'")
        }
        let (file, info) = try Checkpoint.read(path)
        var config = info.config
        if let dataset = options.string("dataset") { try config.set("dataset", dataset) }
        if let dataDir = options.string("data-dir") { try config.set("data_dir", dataDir) }
        config.devices = options.string("devices")!
        config.threads = try options.int("threads", range: 0...256)!
        config.workers = try options.int("workers", range: 1...64)!
        let (encoder, projector) = try config.validate()
        let (backends, _) = try Devices.open(config.devices, threads: config.threads,
                                             tf32: config.tf32)
        let model = try CorInfoMaxModel(backends[0], encoder: encoder, projector: projector,
                                        seed: 0)
        try Checkpoint.restore(file, path: path, model: model, loss: nil)
        let (train, test, normalization) = try TrainRun.loadData(config)
        print("checkpoint: \(path) (epoch \(info.epoch), step \(info.step))")
        print("dataset: \(config.dataset), \(train.count) train, \(test.count) test images")

        var result: [String: Any] = ["checkpoint": path, "protocol": protocolName,
                                     "dataset": config.dataset, "epoch": info.epoch]
        if protocolName == "knn" {
            let k = try options.int("knn-k", range: 1...100000)!
            let bank = try Features.extract(model: model, dataset: train,
                                            normalization: normalization,
                                            size: config.imageSize, workers: config.workers)
            let queries = try Features.extract(model: model, dataset: test,
                                               normalization: normalization,
                                               size: config.imageSize, workers: config.workers)
            let top1 = try KNNClassifier.accuracy(
                trainFeatures: bank.features, trainLabels: bank.labels,
                testFeatures: queries.features, testLabels: queries.labels, classes: train.classes,
                k: k, temperature: config.knnTemperature, backend: model.backend)
            print(String(format: "kNN (k = %d, T = %.2f) top-1: %.2f%%",
                         k, config.knnTemperature, top1))
            result["k"] = k
            result["temperature"] = config.knnTemperature
            result["top1"] = top1
        } else {
            var linear = LinearEvaluationConfig()
            linear.epochs = try options.int("epochs", range: 1...100000)!
            linear.batchSize = try options.int("batch-size", range: 1...65536)!
            guard let lr = Double(options.string("lr")!), lr > 0 else {
                throw UsageError("--lr must be a positive number")
            }
            linear.lr = lr
            linear.minLr = lr / 100
            linear.augment = !options.has("no-augment")
            linear.workers = config.workers
            print("epoch        lr  train loss  test loss   top-1   top-5")
            let records = try LinearEvaluation.run(
                model: model, train: train, test: test, normalization: normalization,
                imageSize: config.imageSize, config: linear
            ) { r in
                print(String(format: "%5d  %8.2e  %10.4f %10.4f  %6.2f  %6.2f", r.epoch, r.lr,
                             r.trainLoss, r.testLoss, r.top1, r.top5))
                fflush(nil)
            }
            let last = records.last!
            let best = records.max { $0.top1 < $1.top1 }!
            print(String(
                format: "linear top-1 %.2f%%, top-5 %.2f%% (last epoch); "
                    + "best top-1 %.2f%% at epoch %d",
                last.top1, last.top5, best.top1, best.epoch))
            result["top1"] = last.top1
            result["top5"] = last.top5
            result["best_top1"] = best.top1
            result["best_epoch"] = best.epoch
            result["epochs"] = records.map {
                ["epoch": $0.epoch, "lr": $0.lr, "train_loss": $0.trainLoss,
                 "test_loss": $0.testLoss, "top1": $0.top1, "top5": $0.top5] as [String: Any]
            }
            result["augment"] = linear.augment
        }
        let output = options.string("json")
            ?? ((path as NSString).deletingLastPathComponent as NSString)
                .appendingPathComponent("eval-\(protocolName).json")
        let data = try JSONSerialization.data(withJSONObject: result,
                                              options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: output), options: .atomic)
        print("wrote \(output)")
    }
}
