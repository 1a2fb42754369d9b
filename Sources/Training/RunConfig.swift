// RunConfig.swift: every setting of a training run, the presets named after the paper's
// runs (SPEC 2.1 table and 5.3), and how a preset, a JSON config file and command-line flags
// combine (later wins: preset < --config file < flags).
//
// JSON keys are the snake_case names of the fields below ("batch_size", "lambda_r", ...);
// `cim-train train --help` lists each with its default.

import Foundation

/// The settings of one `cim-train train` run.
///
/// The defaults are the `demo` preset: the built-in 32x32 dataset on a ResNet-18 of stage
/// widths 8-16-32-64, sized to finish in a few minutes on two CPU cores and still show the
/// encoder learning. Measured on the built-in data (kNN top-1 after 3 epochs, from 20% at
/// initialisation): lr 0.3 or 0.5 stayed near 22%, lr 0.05 reached 37%; crops down to 8% of
/// a 32-pixel image and the always-on blur of view 1 erase most of a small shape, so the
/// demo crops to at least 30% and does not blur. The paper presets keep SPEC 4.1 exactly.
public struct RunConfig: Codable, Sendable, Equatable {
    // data
    public var dataset = "builtin"          // builtin, cifar10, cifar100
    public var dataDir = "data"
    public var imageSize = 32
    public var workers = 2
    // augmentation (SPEC 4.1 by default; solo-learn exposes the same knobs)
    public var cropMinScale = 0.3           // RandomResizedCrop scale (min, 1); SPEC: 0.08
    public var blurProbability1 = 0.0       // view 1; SPEC: 1.0 (the reference always blurs)
    public var blurProbability2 = 0.0       // SPEC: 0.1
    public var solarizeProbability1 = 0.0
    public var solarizeProbability2 = 0.2
    // model
    public var model = "resnet18-cifar@8"
    public var projector = "256-256-64"
    // loss (SPEC 2.1)
    public var alpha = 250.0
    public var beta = 1.0
    public var lambdaR = 0.01
    public var lambdaMu = 0.01
    public var epsilon = 1e-8
    public var rInit = 1.0
    // optimisation (SPEC 5)
    public var epochs = 10
    public var maxSteps = 0                 // 0: no limit
    public var batchSize = 64
    public var lr = 0.05
    public var minLr = 1e-6
    public var warmupEpochs = 1
    public var warmupStartLr = 3e-3
    public var weightDecay = 1e-4
    public var momentum = 0.9
    // run
    public var seed: UInt64 = 0
    public var devices = "cpu"
    public var syncBatchNorm = true         // with several devices (SPEC 3.2)
    public var checkReplicas = false        // compare replica weights after every step
    public var tf32 = false                 // CUDA: float32 GEMMs and convolutions in TF32
    public var threads = 0
    public var out = ""                     // "" = runs/<time>
    public var logEvery = 10                // steps between progress records
    public var knnEvery = 1                 // epochs between kNN evaluations (0 = never)
    public var knnK = 200
    public var knnTemperature = 0.1
    public var checkpointEvery = 1          // epochs between checkpoints

    public init() {}

    enum CodingKeys: String, CodingKey {
        case dataset, dataDir = "data_dir", imageSize = "image_size", workers, model, projector
        case cropMinScale = "crop_min_scale", blurProbability1 = "blur_probability_1"
        case blurProbability2 = "blur_probability_2"
        case solarizeProbability1 = "solarize_probability_1"
        case solarizeProbability2 = "solarize_probability_2"
        case alpha, beta, lambdaR = "lambda_r", lambdaMu = "lambda_mu", epsilon, rInit = "r_init"
        case epochs, maxSteps = "max_steps", batchSize = "batch_size", lr, minLr = "min_lr"
        case warmupEpochs = "warmup_epochs", warmupStartLr = "warmup_start_lr"
        case weightDecay = "weight_decay", momentum, seed, devices, threads, out
        case syncBatchNorm = "sync_batch_norm", checkReplicas = "check_replicas", tf32
        case logEvery = "log_every", knnEvery = "knn_every", knnK = "knn_k"
        case knnTemperature = "knn_temperature", checkpointEvery = "checkpoint_every"
    }

    /// The names of the presets.
    public static let presetNames = ["demo", "cifar10", "cifar100", "tiny-imagenet",
                                     "imagenet100", "imagenet1k"]

    /// A preset: `demo` (the default, the built-in dataset on a small model) or one of the
    /// paper's runs with the values of SPEC sections 2 and 5.
    public static func preset(_ name: String) throws -> RunConfig {
        var c = RunConfig()
        switch name {
        case "demo":
            break
        default:
            // the paper's runs: SPEC 4.1 augmentation exactly
            (c.cropMinScale, c.blurProbability1, c.blurProbability2) = (0.08, 1.0, 0.1)
            (c.solarizeProbability1, c.solarizeProbability2) = (0.0, 0.2)
            (c.warmupEpochs, c.warmupStartLr) = (10, 3e-3)
        }
        switch name {
        case "demo":
            break
        case "cifar10", "cifar100":
            c.dataset = name
            c.model = "resnet18-cifar"
            c.projector = name == "cifar10" ? "2048-2048-64" : "4096-4096-128"
            c.alpha = name == "cifar10" ? 250 : 1000
            (c.lambdaR, c.lambdaMu) = (0.01, 0.01)
            (c.batchSize, c.epochs, c.lr, c.minLr, c.warmupEpochs) = (512, 1000, 0.5, 1e-6, 10)
            c.knnEvery = 10
            c.checkpointEvery = 10
        case "tiny-imagenet":
            c.dataset = name
            c.model = "resnet50-imagenet"
            c.projector = "4096-4096-128"
            c.imageSize = 64
            c.alpha = 500
            (c.lambdaR, c.lambdaMu) = (0.1, 0.1)
            (c.batchSize, c.epochs, c.lr, c.minLr, c.warmupEpochs) = (1024, 800, 0.5, 1e-6, 10)
            c.knnEvery = 10
            c.checkpointEvery = 10
        case "imagenet100":
            c.dataset = name
            c.model = "resnet18-imagenet"
            c.projector = "4096-4096-128"
            c.imageSize = 224
            c.alpha = 500
            (c.lambdaR, c.lambdaMu) = (0.01, 0.01)
            (c.batchSize, c.epochs, c.lr, c.minLr, c.warmupEpochs) = (1024, 400, 1.0, 5e-3, 10)
            c.knnEvery = 10
            c.checkpointEvery = 10
        case "imagenet1k":
            c.dataset = name
            c.model = "resnet50-imagenet"
            c.projector = "8192-8192-512+bn"
            c.imageSize = 224
            c.alpha = 2000
            (c.lambdaR, c.lambdaMu) = (0.1, 0.1)
            (c.batchSize, c.epochs, c.lr, c.minLr, c.warmupEpochs) = (1536, 100, 0.2, 1e-6, 10)
            c.knnEvery = 5
            c.checkpointEvery = 5
        default:
            throw TrainingError.invalidConfiguration(
                "unknown preset '\(name)'; expected one of \(presetNames.joined(separator: ", "))")
        }
        return c
    }

    /// Overlays the keys present in a JSON object (a --config file) on this config.
    public func merging(json data: Data, source: String) throws -> RunConfig {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainingError.invalidConfiguration("\(source) is not a JSON object")
        }
        let known = Set(RunConfig.fieldNames)
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw TrainingError.invalidConfiguration(
                "\(source): unknown key '\(unknown)'; known keys: "
                    + RunConfig.fieldNames.joined(separator: ", "))
        }
        // encode self, overlay the given keys, decode: types are checked by the decoder
        var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self))
            as! [String: Any]
        for (key, value) in object { merged[key] = value }
        do {
            return try JSONDecoder().decode(
                RunConfig.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch {
            throw TrainingError.invalidConfiguration(
                "\(source): a value has the wrong type (\(error))")
        }
    }

    /// Sets one field from its textual value (a command-line flag), by JSON key.
    /// - Parameter flag: the option's name for messages (default: the key with dashes).
    public mutating func set(_ key: String, _ text: String, flag: String? = nil) throws {
        let flag = flag ?? "--" + key.replacingOccurrences(of: "_", with: "-")
        guard let current = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self))
            as? [String: Any], let kind = current[key]
        else {
            throw TrainingError.invalidConfiguration("unknown setting \(flag)")
        }
        // the field's type decides how the text reads (booleans by name: on Linux a JSON
        // number also casts to Bool)
        let value: Any
        if kind is String {
            value = text
        } else if ["sync_batch_norm", "check_replicas", "tf32"].contains(key) {
            guard let flagValue = ["true": true, "false": false, "1": true, "0": false][text]
            else {
                throw TrainingError.invalidConfiguration(
                    "\(flag) expects true or false, got '\(text)'")
            }
            value = flagValue
        } else if ["epochs", "max_steps", "batch_size", "warmup_epochs", "seed", "threads",
                   "workers", "image_size", "log_every", "knn_every", "knn_k",
                   "checkpoint_every"].contains(key) {
            guard let integer = Int(text), integer >= 0 else {
                throw TrainingError.invalidConfiguration(
                    "\(flag) expects a whole number >= 0, got '\(text)'")
            }
            value = integer
        } else {
            guard let number = Double(text), number.isFinite else {
                throw TrainingError.invalidConfiguration("\(flag) expects a number, got '\(text)'")
            }
            value = number
        }
        let data = try JSONSerialization.data(withJSONObject: [key: value])
        self = try merging(json: data, source: flag)
    }

    public static var fieldNames: [String] {
        let object = try! JSONSerialization.jsonObject(with: JSONEncoder().encode(RunConfig()))
        return (object as! [String: Any]).keys.sorted()
    }

    /// The config as pretty JSON (written to the run folder).
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Checks ranges and parses the model and projector strings.
    public func validate() throws -> (ResNetConfig, ProjectorConfig) {
        func check(_ condition: Bool, _ message: String) throws {
            if !condition { throw TrainingError.invalidConfiguration(message) }
        }
        try check(["builtin", "cifar10", "cifar100"].contains(dataset)
                  || ["tiny-imagenet", "imagenet100", "imagenet1k"].contains(dataset),
                  "unknown dataset '\(dataset)'; expected builtin, cifar10 or cifar100")
        try check(epochs >= 1, "epochs must be >= 1, got \(epochs)")
        try check(maxSteps >= 0, "max_steps must be >= 0 (0 = no limit), got \(maxSteps)")
        try check(batchSize >= 2,
                  "batch_size must be >= 2 (batch norm needs two images), got \(batchSize)")
        try check(lr > 0 && lr.isFinite, "lr must be a positive number, got \(lr)")
        try check(minLr >= 0 && warmupStartLr >= 0, "min_lr and warmup_start_lr must be >= 0")
        try check(warmupEpochs >= 0, "warmup_epochs must be >= 0")
        try check(weightDecay >= 0 && momentum >= 0 && momentum < 1,
                  "weight_decay must be >= 0 and momentum in [0, 1)")
        try check(imageSize >= 8, "image_size must be >= 8")
        try check(cropMinScale > 0 && cropMinScale <= 1, "crop_min_scale must be in (0, 1]")
        try check([blurProbability1, blurProbability2, solarizeProbability1, solarizeProbability2]
                    .allSatisfy { (0...1).contains($0) }, "probabilities must be in [0, 1]")
        try check(workers >= 1 && workers <= 64, "workers must be in 1...64")
        try check(logEvery >= 1 && knnEvery >= 0 && checkpointEvery >= 1,
                  "log_every and checkpoint_every must be >= 1, knn_every >= 0")
        try check(knnK >= 1 && knnTemperature > 0, "knn_k must be >= 1 and knn_temperature > 0")
        let encoder = try ResNetConfig.parse(model, defaultStem: .cifar)
        let head = try ProjectorConfig.parse(projector)
        let hyper = hyperparameters(dimension: head.outputWidth)
        try hyper.validate()
        return (encoder, head)
    }

    public func hyperparameters(dimension: Int) -> CorInfoMaxHyperparameters {
        CorInfoMaxHyperparameters(alpha: alpha, beta: beta, lambdaR: lambdaR, lambdaMu: lambdaMu,
                                  epsilon: epsilon, rInit: rInit, dimension: dimension)
    }

    /// The two views' augmentations: SPEC 4.1 with this config's knobs.
    public var views: (ViewAugmentation, ViewAugmentation) {
        var first = ViewAugmentation.pretraining(view: 1, size: imageSize)
        var second = ViewAugmentation.pretraining(view: 2, size: imageSize)
        first.cropScale = cropMinScale...1.0
        second.cropScale = cropMinScale...1.0
        first.blurProbability = blurProbability1
        second.blurProbability = blurProbability2
        first.solarizeProbability = solarizeProbability1
        second.solarizeProbability = solarizeProbability2
        return (first, second)
    }

    public var schedule: LearningRateSchedule {
        .warmupCosine(base: lr, warmupStart: warmupStartLr, warmupEpochs: warmupEpochs,
                      minimum: minLr, epochs: epochs)
    }
}
