// LoaderTests.swift: TwoViewLoader, EvalLoader and the prefetch pipeline behind them
// (Sources/Training/Data/Loader.swift).
//
// Checked: the same bytes for 0, 1 and 2 workers; drop-last batch counts; a shuffle that is a
// permutation, repeats for an epoch and changes between epochs; labels that belong to the
// indices; views that are the augmentation of their dataset image; the prefetch bound; that
// cancel() and releasing the loader end the worker threads; the evaluation loaders' order,
// last partial batch and transform; and a DataBenchmark smoke run. Images are small (12×12,
// views 8×8) so the suite stays fast in a debug build.

import Backend
import Foundation
@testable import Training
import XCTest

/// `count` random 12×12 images; label of image i is i mod classes.
private func smallDataset(count: Int, side: Int = 12, classes: Int = 7, seed: UInt64 = 1)
    -> ImageDataset
{
    var random = SplitMix64(seed: seed)
    let pixels = (0..<(count * side * side * 3)).map { _ in
        UInt8(truncatingIfNeeded: random.next())
    }
    return ImageDataset(name: "test", height: side, width: side, classes: classes,
                        pixels: pixels, labels: (0..<count).map { Int32($0 % classes) })
}

/// Thread ids of this process's loader workers (named cim-data-N), from Linux /proc; a
/// listing can fail while some thread exits, so it is retried. Empty where /proc is missing.
private func loaderThreads() -> Set<String> {
    for _ in 0..<20 {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        else { continue }
        return Set(tasks.filter { task in
            let name = try? String(contentsOfFile: "/proc/self/task/\(task)/comm",
                                   encoding: .utf8)
            return name?.hasPrefix("cim-data") ?? false
        })
    }
    return []
}

/// Waits up to 5 s for the threads to end; returns those still running.
private func waitForExit(_ threads: Set<String>) -> Set<String> {
    for _ in 0..<500 {
        if loaderThreads().isDisjoint(with: threads) { return [] }
        usleep(10_000)
    }
    return loaderThreads().intersection(threads)
}

final class LoaderTests: XCTestCase {
    let dataset = smallDataset(count: 23)
    let views = (ViewAugmentation.pretraining(view: 1, size: 8),
                 ViewAugmentation.pretraining(view: 2, size: 8))

    func loader(workers: Int, epoch: Int = 0, seed: UInt64 = 42, prefetch: Int = 4)
        -> TwoViewLoader
    {
        TwoViewLoader(dataset: dataset, batchSize: 5, epoch: epoch, seed: seed,
                      normalization: .cifar10, views: views, workers: workers,
                      prefetch: prefetch)
    }

    // MARK: - TwoViewLoader

    func testSameBatchesForAnyWorkerCount() {
        let reference = Array(loader(workers: 0))
        XCTAssertEqual(reference.count, 4, "23 samples, batch 5, drop-last")
        for workers in [1, 2, 3] {
            let batches = Array(loader(workers: workers))
            XCTAssertEqual(batches.count, reference.count, "\(workers) workers")
            for (a, b) in zip(batches, reference) {
                XCTAssertEqual(a.index, b.index)
                XCTAssertEqual(a.indices, b.indices, "\(workers) workers, batch \(a.index)")
                XCTAssertEqual(a.labels, b.labels)
                XCTAssertEqual(a.view1, b.view1, "\(workers) workers, batch \(a.index) view 1")
                XCTAssertEqual(a.view2, b.view2, "\(workers) workers, batch \(a.index) view 2")
            }
        }
    }

    func testDropLastOrderAndLabels() {
        let batches = Array(loader(workers: 2))
        XCTAssertEqual(batches.map(\.index), [0, 1, 2, 3])
        let visited = batches.flatMap(\.indices)
        XCTAssertEqual(visited.count, 20)
        XCTAssertEqual(Set(visited).count, 20, "no sample twice")
        let order = DataRandom.epochOrder(count: 23, seed: 42, epoch: 0)
        XCTAssertEqual(visited, Array(order.prefix(20)), "batches follow the epoch order")
        XCTAssertEqual(Set(order), Set(0..<23), "the order is a permutation")
        for batch in batches {
            XCTAssertEqual(batch.count, 5)
            XCTAssertEqual(batch.view1.count, 5 * 3 * 8 * 8)
            XCTAssertEqual(batch.view2.count, 5 * 3 * 8 * 8)
            XCTAssertEqual(batch.labels, batch.indices.map { Int32($0 % 7) })
        }
        XCTAssertEqual(TwoViewLoader(dataset: dataset, batchSize: 23, epoch: 0, seed: 1,
                                     normalization: .cifar10, views: views).batchCount, 1)
        XCTAssertEqual(TwoViewLoader(dataset: dataset, batchSize: 24, epoch: 0, seed: 1,
                                     normalization: .cifar10, views: views).batchCount, 0)
    }

    func testShuffleRepeatsWithinAnEpochAndChangesAcrossEpochs() {
        let order = DataRandom.epochOrder(count: 1000, seed: 3, epoch: 0)
        XCTAssertEqual(order, DataRandom.epochOrder(count: 1000, seed: 3, epoch: 0))
        XCTAssertNotEqual(order, DataRandom.epochOrder(count: 1000, seed: 3, epoch: 1))
        XCTAssertNotEqual(order, DataRandom.epochOrder(count: 1000, seed: 4, epoch: 0))
        XCTAssertNotEqual(order, Array(0..<1000))
        XCTAssertEqual(order.sorted(), Array(0..<1000))
        let first = Array(loader(workers: 1, epoch: 0)).flatMap(\.indices)
        let second = Array(loader(workers: 1, epoch: 1)).flatMap(\.indices)
        XCTAssertNotEqual(first, second)
    }

    func testViewsAreTheAugmentedDatasetImages() {
        guard let batch = loader(workers: 2, epoch: 5).next() else {
            return XCTFail("no batch")
        }
        let plane = 3 * 8 * 8
        for (j, sample) in batch.indices.enumerated() {
            let image = RGBImage(height: 12, width: 12, pixels: dataset.image(sample))
            for (v, (view, images)) in [(views.0, batch.view1), (views.1, batch.view2)]
                .enumerated() {
                var random = DataRandom.generator(seed: 42, epoch: 5, sample: sample,
                                                  view: v + 1)
                let expected = Normalization.cifar10.tensor(view(image, random: &random))
                XCTAssertEqual(Array(images[(j * plane)..<((j + 1) * plane)]), expected,
                               "sample \(sample) view \(v + 1)")
            }
        }
        XCTAssertNotEqual(batch.view1, batch.view2, "the two views differ")
    }

    func testCancelStopsWorkerThreads() {
        let before = loaderThreads()
        let big = smallDataset(count: 400)
        let loader = TwoViewLoader(dataset: big, batchSize: 4, epoch: 0, seed: 1,
                                   normalization: .cifar10, views: views, workers: 2)
        XCTAssertNotNil(loader.next())
        XCTAssertEqual(loader.runningWorkers, 2)
        var workers = Set<String>()
        for _ in 0..<500 where workers.count < 2 {
            workers = loaderThreads().subtracting(before)
            usleep(10_000)
        }
        loader.cancel()
        XCTAssertEqual(loader.runningWorkers, 0)
        XCTAssertNil(loader.next(), "nothing after cancel")
        loader.cancel()  // a second cancel is harmless
        XCTAssertEqual(waitForExit(workers), [], "the worker threads have ended")
    }

    func testReleasingTheLoaderStopsWorkerThreads() {
        let before = loaderThreads()
        let big = smallDataset(count: 400)
        var workers = Set<String>()
        do {
            let loader = TwoViewLoader(dataset: big, batchSize: 4, epoch: 0, seed: 1,
                                       normalization: .cifar10, views: views, workers: 2)
            XCTAssertNotNil(loader.next())
            // both threads name themselves as they start
            for _ in 0..<500 where workers.count < 2 {
                workers = loaderThreads().subtracting(before)
                usleep(10_000)
            }
        }
        #if os(Linux)
            XCTAssertEqual(workers.count, 2, "two named worker threads while the loader lives")
        #endif
        XCTAssertEqual(waitForExit(workers), [], "deinit ends the worker threads")
    }

    func testWorkersExitAfterTheLastBatch() {
        let loader = self.loader(workers: 2)
        XCTAssertEqual(Array(loader).count, 4)
        XCTAssertNil(loader.next())
        XCTAssertEqual(loader.runningWorkers, 0)
    }

    // MARK: - Prefetch bound

    func testPrefetchKeepsAtMostThatManyBatchesAhead() {
        final class Probe: @unchecked Sendable {
            let lock = NSLock()
            var claimed = 0
            var delivered = 0
            var largestLead = 0
        }
        let probe = Probe()
        let pipeline = PrefetchPipeline<Int>(count: 30, workers: 3, prefetch: 2) { k, _ in
            probe.lock.lock()
            probe.claimed += 1
            probe.largestLead = max(probe.largestLead, probe.claimed - probe.delivered)
            probe.lock.unlock()
            usleep(200)
            return k
        }
        var received: [Int] = []
        while let k = pipeline.next() {
            received.append(k)
            probe.lock.lock()
            probe.delivered += 1
            probe.lock.unlock()
            usleep(500)
        }
        XCTAssertEqual(received, Array(0..<30), "in order")
        XCTAssertLessThanOrEqual(probe.largestLead, 3,
                                 "at most prefetch (2) claimed ahead, +1 for the probe's lag")
        XCTAssertEqual(pipeline.runningWorkers, 0)
    }

    // MARK: - EvalLoader

    func testEvalLoaderTestTransform() {
        let loaders = [0, 2].map {
            EvalLoader(dataset: dataset, transform: .test(size: 10), batchSize: 5,
                       normalization: .imagenet, workers: $0)
        }
        let batches = loaders.map { Array($0) }
        XCTAssertEqual(loaders[0].batchCount, 5, "the last partial batch is kept")
        XCTAssertEqual(batches[0].map(\.count), [5, 5, 5, 5, 3])
        XCTAssertEqual(batches[0].flatMap(\.indices), Array(0..<23), "in dataset order")
        for (a, b) in zip(batches[0], batches[1]) {
            XCTAssertEqual(a.images, b.images)
            XCTAssertEqual(a.labels, b.labels)
        }
        var random = SplitMix64(seed: 0)
        let image = RGBImage(height: 12, width: 12, pixels: dataset.image(21))
        let expected = Normalization.imagenet.tensor(
            EvalTransform.test(size: 10).apply(to: image, random: &random))
        let last = batches[0][4]
        XCTAssertEqual(Array(last.images[(300)..<(600)]), expected, "sample 21")
        XCTAssertEqual(last.labels, [20, 21, 22].map { Int32($0 % 7) })
    }

    func testEvalLoaderLinearTrainTransform() {
        func run(_ workers: Int, epoch: Int) -> [EvalBatch] {
            Array(EvalLoader(dataset: dataset, transform: .linearTrain(size: 8), batchSize: 4,
                             normalization: .cifar10, epoch: epoch, seed: 9, dropLast: true,
                             workers: workers))
        }
        let a = run(0, epoch: 1)
        let b = run(2, epoch: 1)
        XCTAssertEqual(a.count, 5, "23 / 4 with drop-last")
        XCTAssertEqual(a.map(\.images), b.map(\.images))
        XCTAssertEqual(a.flatMap(\.indices),
                       Array(DataRandom.epochOrder(count: 23, seed: 9, epoch: 1).prefix(20)))
        XCTAssertNotEqual(a.flatMap(\.indices), run(0, epoch: 2).flatMap(\.indices))
    }

    // MARK: - Benchmark

    func testDataBenchmarkRuns() {
        let result = DataBenchmark.run(dataset: smallDataset(count: 10, side: 32), batch: 4,
                                       workers: 2, batches: 4, seed: 1)
        XCTAssertEqual(result.batches, 4)
        XCTAssertEqual(result.imageSize, 32)
        XCTAssertGreaterThan(result.pairsPerSecond, 0)
        XCTAssertGreaterThan(result.pairsPerSecondIncludingStartup, 0)
    }
}
