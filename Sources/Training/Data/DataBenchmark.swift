// DataBenchmark.swift: the data case of `cim-train bench --ops data`.
//
// Throughput of the pretraining input pipeline alone: TwoViewLoader batches (both SPEC 4.1
// views, normalised to float) consumed as fast as they arrive, with nothing else running.
// Reports view pairs per second in the steady state (from the first batch handed out to the
// last, so thread start-up and the first fill of the prefetch queue are excluded) and over
// the whole run. An epoch shorter than the requested batches continues into the next epoch.
// scripts/bench_torch_data.py measures the same pipeline in torchvision for comparison.

import Backend
import Foundation

/// What one data-pipeline benchmark measured.
public struct DataBenchmarkResult: Sendable {
    /// View pairs (samples) per second after the first batch.
    public var pairsPerSecond: Double
    /// View pairs per second including start-up and the first batch.
    public var pairsPerSecondIncludingStartup: Double
    /// Seconds until the first batch was handed out.
    public var firstBatchSeconds: Double
    /// Seconds for the whole run.
    public var totalSeconds: Double
    public var batches: Int
    public var batchSize: Int
    public var workers: Int
    public var imageSize: Int
}

public enum DataBenchmark {
    /// Runs `batches` batches of `batch` samples through a TwoViewLoader.
    ///
    /// - Parameters:
    ///   - dataset: the images (CIFAR-size for the reference numbers); needs at least `batch`
    ///     samples.
    ///   - workers: augmentation threads of the loader.
    public static func run(dataset: ImageDataset, batch: Int, workers: Int = 2,
                           batches: Int, seed: UInt64,
                           normalization: Normalization = .cifar10) -> DataBenchmarkResult {
        precondition(batches >= 2, "the benchmark needs at least 2 batches, not \(batches)")
        precondition(dataset.count >= batch,
                     "\(dataset.count) samples cannot fill a batch of \(batch)")
        let clock = ContinuousClock()
        let start = clock.now
        var firstBatch = start
        var received = 0
        var epoch = 0
        var imageSize = 0
        while received < batches {
            let loader = TwoViewLoader(dataset: dataset, batchSize: batch, epoch: epoch,
                                       seed: seed, normalization: normalization,
                                       workers: workers)
            imageSize = loader.imageSize
            while received < batches, let next = loader.next() {
                precondition(next.count == batch)
                if received == 0 { firstBatch = clock.now }
                received += 1
            }
            loader.cancel()
            epoch += 1
        }
        let end = clock.now
        let total = seconds(end - start)
        let steady = seconds(end - firstBatch)
        return DataBenchmarkResult(
            pairsPerSecond: Double((batches - 1) * batch) / steady,
            pairsPerSecondIncludingStartup: Double(batches * batch) / total,
            firstBatchSeconds: seconds(firstBatch - start), totalSeconds: total,
            batches: batches, batchSize: batch, workers: workers, imageSize: imageSize)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (s, attoseconds) = duration.components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
