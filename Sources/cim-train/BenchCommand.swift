// BenchCommand.swift: `cim-train bench` checks each kernel case against the reference, times
// it, prints a table and optionally writes JSON for scripts (scripts/compare_torch.py reads
// the same case names).

import Backend
import Foundation
import Training

enum BenchCommand {
    static let allOps = KernelBenchmarks.ops + ["step", "data", "reduce"]

    static let specs: [OptionSpec] = [
        .option("ops", "LIST", default: "matmul,conv,logdet",
                "comma list of: \(allOps.joined(separator: ", ")) (step: one ResNet-18 "
                    + "training step, batch 128; data: augmented CIFAR-size view pairs per "
                    + "second on --workers threads; reduce: bytes and time of the covariance "
                    + "reduction against an embedding gather)"),
        .option("workers", "N", default: "2", "data: augmentation threads"),
        .option("batch", "N", default: "128", "batch size of the step benchmark"),
        .flag("profile", "step: print the time per op and shape over the timed steps"),
        .option("device", "NAME", default: "cpu", "device to run on (auto, cpu, cuda:N, opencl:N)"),
        .flag("tf32", "CUDA: float32 GEMMs and convolutions in TF32 on tensor cores (checked "
                  + "against the reference at TF32's precision)"),
        .option("gemm-sizes", "LIST", default: "512,1024,2048",
                "matmul: sizes of the square float32 GEMM cases (a GPU needs 4096 and up)"),
        .option("threads", "N", default: "0", "CPU threads (0 = every core)"),
        .option("warmup", "N", default: "2", "untimed runs before timing each case"),
        .option("repeat", "N", default: "5", "timed runs per case; the median is reported"),
        .option("json", "PATH", "also write the results as JSON to PATH"),
    ]

    static func run(_ arguments: [String]) throws {
        let options = try ParsedOptions.parse(arguments, specs: specs, command: "bench")
        if options.has("help") {
            print(ParsedOptions.help(
                command: "bench",
                summary: "Benchmark kernels: each case is checked against the plain reference, "
                    + "then timed; the median time and GFLOP/s are printed.",
                specs: specs))
            return
        }
        let ops = options.string("ops")!.split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        for op in ops where !allOps.contains(op) {
            throw UsageError(
                "unknown op '\(op)' in --ops; expected any of \(allOps.joined(separator: ","))")
        }
        var benchOptions = BenchmarkOptions()
        benchOptions.warmup = try options.int("warmup", range: 0...1000)!
        benchOptions.repeats = try options.int("repeat", range: 1...1000)!
        let threads = try options.int("threads", range: 0...256)!
        if options.has("tf32") { benchOptions.float32Tolerance = 5e-3 }
        benchOptions.gemmSizes = try options.string("gemm-sizes")!.split(separator: ",").map {
            let text = $0.trimmingCharacters(in: .whitespaces)
            guard let size = Int(text), (1...32768).contains(size) else {
                throw UsageError("--gemm-sizes expects sizes from 1 to 32768, got '\(text)'")
            }
            return size
        }

        let (backends, notes) = try Devices.open(options.string("device")!, threads: threads,
                                                 tf32: options.has("tf32"))
        guard backends.count == 1 else {
            throw UsageError("bench runs on one device; got \(backends.count)")
        }
        let backend = backends[0]
        for note in notes { print(note) }
        print("device: \(backend.deviceName) (\(backend.deviceDetail))")
        print("")
        print(pad("op", 8) + pad("case", 24) + pad("pass", 9) + padLeft("median ms", 11)
              + padLeft("GFLOP/s", 10) + padLeft("max rel err", 13))

        var results: [BenchmarkResult] = []
        for op in ops {
            if op == "reduce" {
                for c in ReduceBenchmark.cases {
                    let result = try ReduceBenchmark.run(c, ranks: 2, options: benchOptions)
                    results.append(result)
                    printRow(result)
                    let e = result.extra
                    print(String(format: "        per step: statistics %@ (full matrix %@), "
                                 + "embedding gather %@ forward + %@ backward",
                                 bytes(e["stats_bytes"]!), bytes(e["stats_full_bytes"]!),
                                 bytes(e["gather_bytes_forward"]!),
                                 bytes(e["gather_bytes_total"]! - e["gather_bytes_forward"]!)))
                }
                continue
            }
            if op == "data" {
                // CIFAR-size images from the procedural generator (no download needed); the
                // augmentation cost does not depend on the content
                let (images, _) = ProceduralShapes.make(seed: benchOptions.seed, trainCount: 5000,
                                                        testCount: 10)
                let workers = try options.int("workers", range: 1...64)!
                let batch = 256
                // check first: the threaded loader must hand out exactly the batch that one
                // thread builds (augmentation draws depend on seed, epoch and sample only)
                func firstBatch(_ threads: Int) -> TwoViewBatch? {
                    let loader = TwoViewLoader(dataset: images, batchSize: batch, epoch: 0,
                                               seed: benchOptions.seed, normalization: .cifar10,
                                               workers: threads)
                    defer { loader.cancel() }
                    return loader.next()
                }
                guard let serial = firstBatch(0), let threaded = firstBatch(workers),
                    serial.view1 == threaded.view1, serial.view2 == threaded.view2
                else {
                    throw BenchmarkVerificationError(
                        op: "data", caseName: "cifar32 pairs", error: 1, tolerance: 0)
                }
                let result = DataBenchmark.run(dataset: images, batch: batch, workers: workers,
                                               batches: 19 * max(benchOptions.repeats, 1) / 5 + 2,
                                               seed: benchOptions.seed)
                let entry = BenchmarkResult(
                    op: "data", caseName: "cifar32 pairs B\(batch) w\(workers)", pass: "",
                    medianSeconds: Double(batch) / result.pairsPerSecond, gflops: nil,
                    maxRelativeError: 0,
                    extra: ["pairs_per_s": result.pairsPerSecond,
                            "pairs_per_s_with_startup": result.pairsPerSecondIncludingStartup])
                results.append(entry)
                printRow(entry)
                print(String(format: "        %.0f view pairs/s (%.0f counting start-up)",
                             result.pairsPerSecond, result.pairsPerSecondIncludingStartup))
                continue
            }
            if op == "step" {
                var config = StepBenchmarkConfig()
                config.batch = try options.int("batch", range: 2...65536)!
                let profiler = options.has("profile") ? ProfilingBackend(backend) : nil
                let result = try StepBenchmark.run(
                    on: profiler ?? backend, host: CPUBackend(threads: threads), config: config,
                    options: benchOptions)
                results.append(result)
                printRow(result)
                print(String(format: "        %.1f images/s, peak resident memory %.0f MiB",
                             result.extra["images_per_s"] ?? 0,
                             (result.extra["peak_rss_bytes"] ?? 0) / 1048576))
                if let profiler { printProfile(profiler.profile, steps: benchOptions.repeats) }
                continue
            }
            try KernelBenchmarks.run(op: op, on: backend, options: benchOptions) { result in
                results.append(result)
                printRow(result)
            }
        }
        if let path = options.string("json") {
            try writeJSON(results, backend: backend, threads: threads, to: path)
            print("\nwrote \(path)")
        }
    }

    /// "66,576 B (65.0 KiB)".
    static func bytes(_ value: Double) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        let grouped = formatter.string(from: NSNumber(value: Int(value))) ?? "\(Int(value))"
        return value >= 1_048_576 ? String(format: "%@ B (%.1f MiB)", grouped, value / 1048576)
            : String(format: "%@ B (%.1f KiB)", grouped, value / 1024)
    }

    static func printRow(_ result: BenchmarkResult) {
        let gflops = result.gflops.map { String(format: "%.1f", $0) } ?? "-"
        print(pad(result.op, 8) + pad(result.caseName, 24) + pad(result.pass, 9)
              + padLeft(String(format: "%.3f", result.medianSeconds * 1e3), 11)
              + padLeft(gflops, 10)
              + padLeft(String(format: "%.2e", result.maxRelativeError), 13))
        fflush(nil)  // all streams: show each case as it finishes
    }

    /// Time per op family, then the costliest (op, shape) pairs, per step.
    static func printProfile(_ profile: [ProfileEntry], steps: Int) {
        let total = profile.reduce(0) { $0 + $1.seconds }
        guard total > 0 else { return }
        var byOp: [String: Double] = [:]
        for entry in profile { byOp[entry.op, default: 0] += entry.seconds }
        print("\nprofile per step (ms), by op:")
        for (op, seconds) in byOp.sorted(by: { $0.value > $1.value }) {
            print("  " + pad(op, 18)
                  + padLeft(String(format: "%.1f", seconds * 1e3 / Double(steps)), 9)
                  + padLeft(String(format: "%.1f%%", 100 * seconds / total), 8))
        }
        print("by op and shape (top 25):")
        for entry in profile.prefix(25) {
            print("  " + pad(entry.op, 16) + pad(entry.shape, 64)
                  + padLeft(String(format: "%.1f", entry.seconds * 1e3 / Double(steps)), 9))
        }
    }

    static func writeJSON(_ results: [BenchmarkResult], backend: Backend, threads: Int,
                          to path: String) throws {
        let entries: [[String: Any]] = results.map { result in
            var entry: [String: Any] = [
                "op": result.op, "case": result.caseName, "pass": result.pass,
                "median_s": result.medianSeconds,
                "gflops": result.gflops.map { $0 as Any } ?? NSNull(),
                "max_rel_err": result.maxRelativeError,
            ]
            for (key, value) in result.extra { entry[key] = value }
            return entry
        }
        let document: [String: Any] = [
            "device": backend.deviceName, "device_detail": backend.deviceDetail,
            "threads": threads, "results": entries,
        ]
        let data = try JSONSerialization.data(
            withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw UsageError("cannot write --json \(path): \(error.localizedDescription)")
        }
    }
}
