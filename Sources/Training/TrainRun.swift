// TrainRun.swift: the pretraining loop behind `cim-train train` (SPEC 4 to 6).
//
// Per epoch: a (seed, epoch)-shuffled pass over the training set in global batches with
// drop-last, two augmented views per image from worker threads, one CorInfoMax step per
// batch at the epoch's learning rate (warmup-cosine, stepped per epoch), a kNN evaluation
// every `knn_every` epochs, a checkpoint every `checkpoint_every` epochs and at the end.
//
// The run folder holds config.json (the resolved settings), metrics.jsonl (one record per
// logging interval and one per epoch), eigenvalues.jsonl (the spectrum of each view's
// covariance state, a row for R_ini I and one per epoch), plot.svg (loss terms and kNN
// accuracy, rewritten every epoch) and checkpoint.safetensors. A NaN or infinite loss stops
// the run with an error before anything is written, so the last checkpoint stays the last
// good state. The library reports through the `report` callback and never prints.

import Backend
import Foundation

/// What the run tells its caller as it goes.
public enum TrainEvent {
    /// The resolved settings, in display order, before the first step.
    case settings([(String, String)])
    /// A line of information (dataset loaded, resumed from, ...).
    case note(String)
    /// One logging interval.
    case progress(ProgressRecord)
    /// One finished epoch.
    case epoch(EpochRecord)
    case checkpoint(String)
}

public struct ProgressRecord: Sendable {
    public var epoch: Int, epochs: Int, step: Int, stepsInEpoch: Int, globalStep: Int
    public var loss: LossValue
    public var lr: Double
    public var imagesPerSecond: Double
    public var etaSeconds: Double
}

public struct EpochRecord: Sendable {
    public var epoch: Int
    public var loss: LossValue
    public var lr: Double
    public var imagesPerSecond: Double
    public var knnTop1: Double?
    public var seconds: Double
}

public struct TrainSummary: Sendable {
    public var outputDirectory: String
    public var epochs: Int
    public var steps: Int
    public var finalLoss: LossValue?
    public var knnTop1: Double?
    /// kNN top-1 of the same encoder at its random initialisation (a fresh run only).
    public var knnTop1AtInitialisation: Double?
    public var stoppedEarly: Bool
}

public final class TrainRun {
    public let config: RunConfig
    public let outputDirectory: String
    let backend: Backend
    let replicas: ReplicaGroup
    var model: CorInfoMaxModel { replicas.primary.model }
    var trainer: CorInfoMaxTrainer { replicas.primary }
    let train: ImageDataset
    let test: ImageDataset
    let normalization: Normalization
    var startEpoch = 0
    var startStepInEpoch = 0
    var globalStep = 0
    let resumedFrom: String?

    /// Builds the run: data, model, loss, optimiser; restores a checkpoint when `resume` is
    /// given (its config is used, with `overrides` applied on top).
    public init(config: RunConfig, resume: String? = nil, overrides: [String: String] = [:])
        throws
    {
        var config = config
        var checkpoint: (SafeTensorsFile, CheckpointInfo, String)? = nil
        if let resume {
            let path = Checkpoint.resolve(resume)
            guard FileManager.default.fileExists(atPath: path) else {
                throw TrainingError.mismatch(
                    "--resume \(resume): no checkpoint at \(path); give a run folder or a "
                        + "checkpoint.safetensors file")
            }
            let (file, info) = try Checkpoint.read(path)
            config = info.config
            for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
                try config.set(key, value)
            }
            if overrides["out"] == nil {
                config.out = (path as NSString).deletingLastPathComponent
            }
            checkpoint = (file, info, path)
        }
        let (encoderConfig, projectorConfig) = try config.validate()
        if config.out.isEmpty {
            let formatter = DateFormatter()
            formatter.dateFormat = "yyyyMMdd-HHmmss"
            config.out = "runs/" + formatter.string(from: Date())
        }
        self.config = config
        self.outputDirectory = config.out
        self.resumedFrom = checkpoint?.2

        // devices: one replica each; the cores are shared out between CPU replicas
        let requests = try DeviceRequest.parseList(config.devices)
        let cores = config.threads > 0
            ? config.threads : ProcessInfo.processInfo.activeProcessorCount
        let threadsEach = max(1, cores / requests.count)
        let (backends, _) = try Devices.open(requests, threads: threadsEach, tf32: config.tf32)
        backend = backends[0]
        guard config.batchSize % backends.count == 0 else {
            throw TrainingError.invalidConfiguration(
                "a global batch of \(config.batchSize) does not split evenly over "
                    + "\(backends.count) devices; choose a multiple of \(backends.count)")
        }

        // replicas: model, loss and optimiser on every device
        replicas = try ReplicaGroup(
            backends: backends, encoder: encoderConfig, projector: projectorConfig,
            hyper: config.hyperparameters(dimension: projectorConfig.outputWidth),
            optimizer: SGD(momentum: config.momentum, weightDecay: config.weightDecay),
            seed: config.seed, hostThreads: threadsEach,
            synchronizeBatchNorm: config.syncBatchNorm)
        if let (file, info, path) = checkpoint {
            for replica in replicas.trainers {
                try Checkpoint.restore(file, path: path, model: replica.model, loss: replica.loss)
            }
            startEpoch = info.epoch
            startStepInEpoch = info.stepInEpoch
            globalStep = info.step
        }

        // data last, so that a checkpoint that does not fit fails before it is generated
        (train, test, normalization) = try TrainRun.loadData(config)
    }

    public static func loadData(_ config: RunConfig) throws
        -> (ImageDataset, ImageDataset, Normalization)
    {
        switch config.dataset {
        case "builtin":
            let (train, test) = ProceduralShapes.make(seed: 1234)
            return (train, test, .cifar10)
        case "cifar10", "cifar100":
            let variant: CIFARVariant = config.dataset == "cifar10" ? .cifar10 : .cifar100
            let train = try CIFAR.load(variant, directory: config.dataDir, split: .train)
            let test = try CIFAR.load(variant, directory: config.dataDir, split: .test)
            return (train, test, variant == .cifar10 ? .cifar10 : .cifar100)
        default:
            throw TrainingError.invalidConfiguration(
                "dataset '\(config.dataset)' needs image-folder loading, which this build does not "
                    + "have yet; use builtin, cifar10 or cifar100")
        }
    }

    /// Images per epoch step count (drop-last).
    public var stepsPerEpoch: Int { train.count / config.batchSize }

    // MARK: - Running

    public func run(report: (TrainEvent) -> Void) throws -> TrainSummary {
        let fm = FileManager.default
        try fm.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        try config.json().write(to: url("config.json"), options: .atomic)
        guard stepsPerEpoch > 0 else {
            throw TrainingError.invalidConfiguration(
                "batch size \(config.batchSize) is larger than the \(train.count) training images")
        }
        report(.settings(settings()))
        if let resumedFrom {
            report(.note(
                "resumed from \(resumedFrom) at epoch \(startEpoch + 1), step \(globalStep)"))
        }
        let metrics = try JSONLines(url("metrics.jsonl"), append: resumedFrom != nil)
        let eigenvalues = try JSONLines(url("eigenvalues.jsonl"), append: resumedFrom != nil)
        var history = resumedFrom != nil ? RunPlot.readHistory(url("metrics.jsonl")) : []

        // the encoder before any training, as the baseline the kNN accuracy must beat
        var baseline: Double? = nil
        if resumedFrom == nil {
            if config.knnEvery > 0 {
                baseline = try knn()
                try metrics.write(["type": "epoch", "epoch": 0, "knn_top1": baseline!])
                history.append(RunPlot.Point(epoch: 0, loss: nil, invariance: nil, covariance: nil,
                                             knn: baseline))
            }
            try eigenvalues.write(["epoch": 0, "view1": try trainer.loss.stateEigenvalues()[0],
                                   "view2": try trainer.loss.stateEigenvalues()[1]])
        }

        var lastLoss: LossValue? = nil
        var lastKNN: Double? = nil
        var stoppedEarly = false
        let totalSteps = config.maxSteps > 0
            ? min(config.maxSteps, config.epochs * stepsPerEpoch) : config.epochs * stepsPerEpoch
        let runStart = Date()
        let stepsAtStart = globalStep

        epochs: for epoch in startEpoch..<config.epochs {
            let lr = config.schedule.rate(epoch: epoch)
            let loader = TwoViewLoader(
                dataset: train, batchSize: config.batchSize, epoch: epoch, seed: config.seed,
                normalization: normalization,
                views: config.views,
                workers: config.workers)
            defer { loader.cancel() }
            let skip = epoch == startEpoch ? startStepInEpoch : 0
            var sums = (loss: 0.0, invariance: 0.0, covariance: 0.0, steps: 0)
            var interval = (images: 0, start: Date())
            let epochStart = Date()
            var stepInEpoch = 0
            for batch in loader {
                stepInEpoch = batch.index + 1
                if batch.index < skip { continue }   // resumed mid-epoch: same order, skip done
                let result = try replicas.step(
                    view1: batch.view1, view2: batch.view2, batch: batch.count,
                    imageSize: batch.imageSize, learningRate: lr,
                    checkReplicas: config.checkReplicas)
                globalStep += 1
                lastLoss = result.loss
                sums.loss += result.loss.total
                sums.invariance += result.loss.invariance
                sums.covariance += result.loss.covariance
                sums.steps += 1
                interval.images += batch.count

                if globalStep % config.logEvery == 0 || stepInEpoch == stepsPerEpoch {
                    let seconds = Date().timeIntervalSince(interval.start)
                    let rate = Double(interval.images) / max(seconds, 1e-9)
                    let elapsed = Date().timeIntervalSince(runStart)
                    let done = globalStep - stepsAtStart
                    let eta = elapsed / Double(max(done, 1))
                        * Double(max(totalSteps - globalStep, 0))
                    let record = ProgressRecord(
                        epoch: epoch + 1, epochs: config.epochs, step: stepInEpoch,
                        stepsInEpoch: stepsPerEpoch, globalStep: globalStep, loss: result.loss,
                        lr: lr, imagesPerSecond: rate, etaSeconds: eta)
                    try metrics.write([
                        "type": "step", "epoch": epoch + 1, "step": globalStep,
                        "loss": result.loss.total, "loss_inv": result.loss.invariance,
                        "loss_cov": result.loss.covariance, "lr": lr, "images_per_s": rate,
                    ])
                    report(.progress(record))
                    interval = (0, Date())
                }
                if config.maxSteps > 0, globalStep >= config.maxSteps {
                    stoppedEarly = stepInEpoch < stepsPerEpoch || epoch + 1 < config.epochs
                    if stepInEpoch < stepsPerEpoch {
                        // stop mid-epoch: checkpoint the exact position and leave
                        try saveCheckpoint(epoch: epoch, stepInEpoch: stepInEpoch, report: report)
                        break epochs
                    }
                    break
                }
            }

            // end of the epoch
            let epochSeconds = Date().timeIntervalSince(epochStart)
            let steps = max(sums.steps, 1)
            let epochLoss = LossValue(total: sums.loss / Double(steps),
                                      invariance: sums.invariance / Double(steps),
                                      covariance: sums.covariance / Double(steps))
            let isLast = epoch + 1 == config.epochs || stoppedEarly
            var knnTop1: Double? = nil
            if config.knnEvery > 0, (epoch + 1) % config.knnEvery == 0 || isLast {
                knnTop1 = try knn()
                lastKNN = knnTop1
            }
            let record = EpochRecord(
                epoch: epoch + 1, loss: epochLoss, lr: lr,
                imagesPerSecond: Double(sums.steps * config.batchSize) / max(epochSeconds, 1e-9),
                knnTop1: knnTop1, seconds: epochSeconds)
            var fields: [String: Any] = [
                "type": "epoch", "epoch": epoch + 1, "loss": epochLoss.total,
                "loss_inv": epochLoss.invariance, "loss_cov": epochLoss.covariance, "lr": lr,
                "images_per_s": record.imagesPerSecond, "seconds": epochSeconds,
            ]
            if let knnTop1 { fields["knn_top1"] = knnTop1 }
            try metrics.write(fields)
            let spectrum = try trainer.loss.stateEigenvalues()
            try eigenvalues.write(["epoch": epoch + 1, "view1": spectrum[0], "view2": spectrum[1]])
            history.append(RunPlot.Point(epoch: epoch + 1, loss: epochLoss.total,
                                         invariance: epochLoss.invariance,
                                         covariance: epochLoss.covariance, knn: knnTop1))
            try RunPlot.svg(history).write(to: url("plot.svg"), atomically: true, encoding: .utf8)
            report(.epoch(record))
            if (epoch + 1) % config.checkpointEvery == 0 || isLast {
                try saveCheckpoint(epoch: epoch + 1, stepInEpoch: 0, report: report)
            }
            if stoppedEarly { break }
        }
        return TrainSummary(
            outputDirectory: outputDirectory, epochs: config.epochs, steps: globalStep,
            finalLoss: lastLoss, knnTop1: lastKNN, knnTop1AtInitialisation: baseline,
            stoppedEarly: stoppedEarly)
    }

    func saveCheckpoint(epoch: Int, stepInEpoch: Int, report: (TrainEvent) -> Void) throws {
        let path = url(Checkpoint.fileName).path
        try Checkpoint.save(
            to: path, model: model, loss: trainer.loss,
            info: CheckpointInfo(epoch: epoch, step: globalStep, stepInEpoch: stepInEpoch,
                                 config: config))
        report(.checkpoint(path))
    }

    /// kNN top-1 on the test split, train split as the memory bank (test transform).
    public func knn() throws -> Double {
        let bank = try Features.extract(model: model, dataset: train, normalization: normalization,
                                        size: config.imageSize, workers: config.workers)
        let queries = try Features.extract(model: model, dataset: test,
                                           normalization: normalization,
                                           size: config.imageSize, workers: config.workers)
        return try KNNClassifier.accuracy(
            trainFeatures: bank.features, trainLabels: bank.labels, testFeatures: queries.features,
            testLabels: queries.labels, classes: train.classes, k: config.knnK,
            temperature: config.knnTemperature, backend: backend)
    }

    func settings() -> [(String, String)] {
        [
            ("dataset", "\(config.dataset) (\(train.count) train, \(test.count) test, "
                + "\(train.classes) classes)"),
            ("model", config.model), ("projector", config.projector),
            ("parameters", String(model.parameters.reduce(0) { $0 + $1.value.count })),
            ("devices", replicas.trainers.map { $0.model.backend.deviceName }.joined(separator: ",")
                + " (\(backend.deviceDetail))"
                + (replicas.count > 1
                    ? ", \(config.batchSize / replicas.count) images per replica, "
                        + (config.syncBatchNorm ? "synchronised" : "per-replica")
                        + " batch norm"
                    : "")),
            ("epochs", String(config.epochs)
                + (config.maxSteps > 0 ? ", at most \(config.maxSteps) steps" : "")),
            ("batch size", "\(config.batchSize) (\(stepsPerEpoch) steps per epoch)"),
            ("learning rate", "\(config.lr), warmup \(config.warmupEpochs) epochs from "
                + "\(config.warmupStartLr), cosine to \(config.minLr)"),
            ("SGD", "momentum \(config.momentum), weight decay \(config.weightDecay)"),
            ("loss", "α \(config.alpha), β \(config.beta), λ_R \(config.lambdaR), "
                + "λ_μ \(config.lambdaMu), ε \(config.epsilon)"),
            ("kNN", config.knnEvery > 0
                ? "k \(config.knnK), T \(config.knnTemperature), every \(config.knnEvery) epochs"
                : "off"),
            ("augmentation", "crop scale (\(config.cropMinScale), 1), blur p "
                + "\(config.blurProbability1)/\(config.blurProbability2), solarize p "
                + "\(config.solarizeProbability1)/\(config.solarizeProbability2)"),
            ("seed", String(config.seed)), ("workers", String(config.workers)),
            ("output", outputDirectory),
        ]
    }

    func url(_ name: String) -> URL {
        URL(fileURLWithPath: outputDirectory).appendingPathComponent(name)
    }
}

/// Encoder features of a whole dataset in evaluation mode (test transform, SPEC 4.3).
public enum Features {
    public static func extract(model: CorInfoMaxModel, dataset: ImageDataset,
                               normalization: Normalization, size: Int, workers: Int,
                               batchSize: Int = 256)
        throws -> (features: [Float], labels: [Int32])
    {
        let loader = EvalLoader(dataset: dataset, transform: .test(size: size),
                                batchSize: batchSize,
                                normalization: normalization, workers: workers)
        defer { loader.cancel() }
        var features: [Float] = []
        var labels: [Int32] = []
        features.reserveCapacity(dataset.count * model.encoder.outputFeatures)
        for batch in loader {
            let images = try model.backend.tensor(
                batch.images, shape: [batch.count, 3, batch.imageSize, batch.imageSize])
            features += try model.backend.download(model.features(images)) as [Float]
            labels += batch.labels
        }
        return (features, labels)
    }
}

/// Appends one JSON object per line to a file.
final class JSONLines {
    let handle: FileHandle

    init(_ url: URL, append: Bool) throws {
        if !append || !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw TrainingError.mismatch(
                    "cannot create \(url.path); check that the run folder is writable")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    func write(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    deinit { try? handle.close() }
}
