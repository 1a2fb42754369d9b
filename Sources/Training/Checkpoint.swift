// Checkpoint.swift: everything needed to continue a run exactly, in one safetensors file.
//
// Tensors (float32 unless said):
//   <torchvision name>                  the encoder: conv1.weight, layer1.0.bn1.running_mean,
//                                        ... and <bn>.num_batches_tracked (int64), so that
//                                        torchvision's resnet18()/resnet50() with fc removed
//                                        loads them with load_state_dict
//   projector.<i>.<name>                the projector
//   optimizer.momentum.<name>           SGD momentum of every parameter above
//   loss.R1, loss.R2, loss.mu1, loss.mu2  the CorInfoMax state (float64; the reference loses it)
// Metadata: format "cim-train-checkpoint", version "1", epoch (epochs completed), step (steps
// taken), step_in_epoch (steps of the current epoch already taken), the run config as JSON.
// The data order needs no saved random state: shuffles and augmentations are functions of
// (seed, epoch, sample), so (config.seed, epoch, step_in_epoch) is the generator state.
//
// Files are written atomically (SafeTensorsFile.write: temporary file, fsync, rename), so an
// interrupted write leaves the previous checkpoint intact.

import Backend
import Foundation

public struct CheckpointInfo: Sendable, Equatable {
    public var epoch: Int
    public var step: Int
    public var stepInEpoch: Int
    public var config: RunConfig
}

public enum Checkpoint {
    public static let format = "cim-train-checkpoint"
    public static let version = "1"
    public static let fileName = "checkpoint.safetensors"

    /// Encoder names lose the model's "backbone." prefix so they read as torchvision's.
    static func fileName(forModelName name: String) -> String {
        name.hasPrefix("backbone.") ? String(name.dropFirst("backbone.".count)) : name
    }

    /// Writes model, optimiser and loss state atomically to `path`.
    public static func save(
        to path: String, model: CorInfoMaxModel, loss: CorInfoMaxLoss, info: CheckpointInfo
    ) throws {
        let backend = model.backend
        var file = SafeTensorsFile()
        for (name, parameter) in model.namedParameters() {
            let key = fileName(forModelName: name)
            file.tensors[key] = SafeTensorsEntry(
                try backend.download(parameter.value) as [Float], shape: parameter.value.shape)
            file.tensors["optimizer.momentum." + key] = SafeTensorsEntry(
                try backend.download(parameter.momentum) as [Float],
                shape: parameter.momentum.shape)
        }
        for (name, buffer) in model.namedBuffers() {
            let key = fileName(forModelName: name)
            file.tensors[key] = SafeTensorsEntry(try backend.download(buffer) as [Float],
                                                 shape: buffer.shape)
            if key.hasSuffix(".running_mean") {
                // two training-mode passes (one per view) per step, as PyTorch counts them
                let tracked = key.replacingOccurrences(
                    of: ".running_mean", with: ".num_batches_tracked")
                var count = Int64(2 * info.step)
                file.tensors[tracked] = try SafeTensorsEntry(
                    dtype: "I64", shape: [], bytes: withUnsafeBytes(of: &count) { Array($0) })
            }
        }
        let d = loss.hyper.dimension
        for v in 0..<2 {
            file.tensors["loss.R\(v + 1)"] = SafeTensorsEntry(
                loss.covarianceState[v], shape: [d, d])
            file.tensors["loss.mu\(v + 1)"] = SafeTensorsEntry(loss.meanState[v], shape: [d])
        }
        file.metadata = [
            "format": format, "version": version, "epoch": String(info.epoch),
            "step": String(info.step), "step_in_epoch": String(info.stepInEpoch),
            "config": String(decoding: try info.config.json(), as: UTF8.self),
        ]
        try file.write(to: path)
    }

    /// Reads the metadata of a checkpoint (a file, or a run folder holding checkpoint.safetensors).
    public static func resolve(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
            isDirectory.boolValue
        {
            return (path as NSString).appendingPathComponent(fileName)
        }
        return path
    }

    /// Loads and checks a checkpoint file; returns it with its parsed info.
    public static func read(_ path: String) throws -> (SafeTensorsFile, CheckpointInfo) {
        let file = try SafeTensorsFile.read(path)
        guard file.metadata["format"] == format else {
            throw TrainingError.mismatch(
                "\(path) is not a cim-train checkpoint "
                    + "(format '\(file.metadata["format"] ?? "none")')")
        }
        guard file.metadata["version"] == version else {
            throw TrainingError.mismatch(
                "\(path) is checkpoint version \(file.metadata["version"] ?? "?"), "
                    + "this build reads version \(version)")
        }
        guard let epoch = file.metadata["epoch"].flatMap(Int.init),
            let step = file.metadata["step"].flatMap(Int.init),
            let stepInEpoch = file.metadata["step_in_epoch"].flatMap(Int.init),
            let configText = file.metadata["config"]
        else { throw TrainingError.mismatch("\(path): checkpoint metadata incomplete") }
        let config = try RunConfig().merging(json: Data(configText.utf8), source: "\(path) config")
        return (file, CheckpointInfo(epoch: epoch, step: step, stepInEpoch: stepInEpoch,
                                     config: config))
    }

    /// Restores model parameters, buffers, momentum and loss state. Everything is checked
    /// before anything is written, so a checkpoint that does not match leaves the model as
    /// it was.
    public static func restore(_ file: SafeTensorsFile, path: String, model: CorInfoMaxModel,
                               loss: CorInfoMaxLoss?) throws {
        var targets: [(String, Tensor)] = []
        for (name, parameter) in model.namedParameters() {
            let key = fileName(forModelName: name)
            targets.append((key, parameter.value))
            targets.append(("optimizer.momentum." + key, parameter.momentum))
        }
        for (name, buffer) in model.namedBuffers() {
            targets.append((fileName(forModelName: name), buffer))
        }
        var uploads: [(Tensor, [Float])] = []
        for (key, tensor) in targets {
            guard let entry = file.tensors[key] else {
                throw TrainingError.mismatch(
                    "\(path) has no tensor '\(key)': it was written for another model; check "
                        + "--model and --projector")
            }
            guard entry.shape == tensor.shape else {
                throw TrainingError.mismatch(
                    "\(path): '\(key)' has shape \(entry.shape), the model needs \(tensor.shape); "
                        + "check --model and --projector")
            }
            uploads.append((tensor, try entry.floats()))
        }
        var covariance: [[Double]] = []
        var mean: [[Double]] = []
        if let loss {
            let d = loss.hyper.dimension
            for v in 1...2 {
                let r = try file.entry("loss.R\(v)"), mu = try file.entry("loss.mu\(v)")
                guard r.shape == [d, d], mu.shape == [d] else {
                    throw TrainingError.mismatch(
                        "\(path): loss state has D = \(mu.shape.first ?? 0), the run has D = \(d)")
                }
                covariance.append(try r.doubles())
                mean.append(try mu.doubles())
            }
        }
        for (tensor, values) in uploads {
            try values.withUnsafeBytes { try model.backend.upload($0, to: tensor) }
        }
        if let loss { try loss.setState(covariance: covariance, mean: mean) }
    }
}
