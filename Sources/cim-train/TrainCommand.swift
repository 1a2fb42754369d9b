// TrainCommand.swift: `cim-train train`, pretraining with CorInfoMax.
//
// Settings combine as preset < --config FILE < flags. Prints a settings table, one progress
// line per logging interval, one line per epoch, and at the end the kNN top-1 of the
// trained encoder next to that of the same encoder at initialisation.

import Backend
import Foundation
import Training

enum TrainCommand {
    /// (flag, JSON key, value name, help); defaults come from the demo preset.
    static let settable: [(String, String, String, String)] = [
        ("dataset", "dataset", "NAME", "builtin (procedural shapes), cifar10 or cifar100"),
        ("data-dir", "data_dir", "DIR", "where the CIFAR .bin files are (see cim-train data)"),
        ("model", "model", "NAME", "resnet18 or resnet50, -cifar/-imagenet stem, @W for width W"),
        ("projector", "projector", "WIDTHS",
         "projector widths, such as 2048-2048-64 (+bn: batch norm)"),
        ("epochs", "epochs", "N", "epochs of pretraining"),
        ("max-steps", "max_steps", "N", "stop after N steps in all (0: no limit)"),
        ("batch-size", "batch_size", "N", "global batch size (drop-last)"),
        ("lr", "lr", "LR", "base learning rate after warmup"),
        ("min-lr", "min_lr", "LR", "learning rate at the end of the cosine"),
        ("warmup-epochs", "warmup_epochs", "N", "linear warmup epochs"),
        ("warmup-start-lr", "warmup_start_lr", "LR", "learning rate of the first epoch"),
        ("weight-decay", "weight_decay", "WD", "SGD weight decay (all parameters)"),
        ("momentum", "momentum", "M", "SGD momentum"),
        ("alpha", "alpha", "A", "weight of the invariance term"),
        ("beta", "beta", "B", "weight of the covariance term"),
        ("lambda-r", "lambda_r", "L", "weight of the old covariance state"),
        ("lambda-mu", "lambda_mu", "L", "weight of the old mean state"),
        ("epsilon", "epsilon", "E", "added to the covariance diagonal inside the log-det"),
        ("image-size", "image_size", "S", "side of the augmented views"),
        ("crop-min-scale", "crop_min_scale", "S",
         "smallest crop area fraction of RandomResizedCrop"),
        ("blur-probability-1", "blur_probability_1", "P", "Gaussian blur probability, view 1"),
        ("blur-probability-2", "blur_probability_2", "P", "Gaussian blur probability, view 2"),
        ("solarize-probability-1", "solarize_probability_1", "P",
         "solarisation probability, view 1"),
        ("solarize-probability-2", "solarize_probability_2", "P",
         "solarisation probability, view 2"),
        ("seed", "seed", "N", "seed of initialisation, shuffling and augmentation"),
        ("devices", "devices", "LIST",
         "devices, one replica each: cpu, cuda:N, opencl:N, auto, or a list such as cpu,cpu"),
        ("sync-bn", "sync_batch_norm", "BOOL", "with several devices, synchronise batch norm"),
        ("check-replicas", "check_replicas", "BOOL", "verify after every step that replicas agree"),
        ("tf32", "tf32", "BOOL",
         "CUDA: float32 GEMMs and convolutions in TF32 on tensor cores (faster; not the CPU's "
             + "result)"),
        ("threads", "threads", "N", "CPU threads (0: every core)"),
        ("workers", "workers", "N", "data-augmentation threads"),
        ("out", "out", "DIR", "run folder (default runs/<date-time>)"),
        ("log-every", "log_every", "N", "steps between progress lines"),
        ("knn-every", "knn_every", "N", "epochs between kNN evaluations (0: never)"),
        ("checkpoint-every", "checkpoint_every", "N", "epochs between checkpoints"),
        ("r-init", "r_init", "R", "initial covariance state R_ini I"),
        ("knn-k", "knn_k", "K", "neighbours of the kNN monitor"),
        ("knn-temperature", "knn_temperature", "T", "temperature of the kNN votes"),
    ]

    static var specs: [OptionSpec] {
        let demo = try! RunConfig.preset("demo")
        let defaults = try! JSONSerialization.jsonObject(with: demo.json()) as! [String: Any]
        return [
            .option("preset", "NAME", default: "demo",
                    "settings of a paper run: \(RunConfig.presetNames.joined(separator: ", "))"),
            .option("config", "FILE", "JSON file of settings (keys as in config.json of a run)"),
            .option("resume", "PATH", "continue the run in this folder or checkpoint file"),
        ] + settable.map { flag, key, value, help in
            let shown: String? = defaults[key].flatMap { value in
                let text = ["sync_batch_norm", "check_replicas", "tf32"].contains(key)
                    ? ((value as? Bool) ?? false ? "true" : "false") : "\(value)"
                return text.isEmpty ? nil : text
            }
            return .option(flag, value, default: nil,
                           help + (shown.map { " (default: \($0))" } ?? ""))
        }
    }

    static func run(_ arguments: [String]) throws {
        let options = try ParsedOptions.parse(arguments, specs: specs, command: "train")
        if options.has("help") {
            print(ParsedOptions.help(
                command: "train",
                summary: "Pretrain an encoder with CorInfoMax. With no options: the demo, a small "
                    + "ResNet-18 on the built-in dataset, a few minutes on a CPU. Defaults below "
                    + "are the demo's; a --preset changes them.",
                specs: specs))
            return
        }
        var config = try RunConfig.preset(options.string("preset") ?? "demo")
        if let path = options.string("config") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("--config \(path): cannot read the file")
            }
            config = try config.merging(json: data, source: path)
        }
        var overrides: [String: String] = [:]
        for (flag, key, _, _) in settable {
            if let value = options.string(flag) {
                try config.set(key, value, flag: "--" + flag)
                overrides[key] = value
            }
        }
        let run = try TrainRun(config: config, resume: options.string("resume"),
                               overrides: overrides)
        let interactive = isatty(1) != 0
        let summary = try run.run { event in
            switch event {
            case .settings(let rows): printSettings(rows)
            case .note(let text): print(text)
            case .progress(let p):
                let line = String(
                    format: "epoch %3d/%d step %4d/%d | loss %10.4f | inv %.5f | cov %9.4f "
                        + "| lr %.2e | %7.1f img/s | eta %@",
                    p.epoch, p.epochs, p.step, p.stepsInEpoch, p.loss.total, p.loss.invariance,
                    p.loss.covariance, p.lr, p.imagesPerSecond, duration(p.etaSeconds))
                if interactive {
                    print("\r" + line, terminator: "")
                } else {
                    print(line)
                }
                fflush(nil)
            case .epoch(let e):
                if interactive { print("") }
                let knn = e.knnTop1.map { String(format: " | kNN top-1 %.2f%%", $0) } ?? ""
                print(String(
                    format: "epoch %3d done | loss %10.4f | inv %.5f | cov %9.4f "
                        + "| %.1f img/s | %.1f s",
                    e.epoch, e.loss.total, e.loss.invariance, e.loss.covariance,
                    e.imagesPerSecond, e.seconds) + knn)
            case .checkpoint(let path): print("checkpoint: \(path)")
            }
        }
        print("")
        print("run folder: \(summary.outputDirectory)")
        if let trained = summary.knnTop1 {
            var line = String(format: "kNN top-1 (k = %d): trained encoder %.2f%%",
                              config.knnK, trained)
            if let initial = summary.knnTop1AtInitialisation {
                line += String(format: ", same encoder at initialisation %.2f%%", initial)
            }
            print(line)
        }
    }

    static func printSettings(_ rows: [(String, String)]) {
        let left = max(rows.map(\.0.count).max() ?? 0, 8)
        let right = min(max(rows.map(\.1.count).max() ?? 0, 8), 90)
        let rule = "+" + String(repeating: "-", count: left + 2) + "+"
            + String(repeating: "-", count: right + 2) + "+"
        print(rule)
        for (name, value) in rows {
            let cell = pad(String(value.prefix(right)), right).prefix(right)
            print("| " + pad(name, left).prefix(left) + " | " + cell + " |")
        }
        print(rule)
    }
}

/// "4m12s", "1h03m", "12s".
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}
