// Loader.swift: batches of augmented images for one epoch, built on worker threads ahead of
// the training loop, in an order and with draws that depend only on the seed.
//
// Order: the epoch visits DataRandom.epochOrder(count, seed, epoch), a Fisher–Yates shuffle
// (EvalLoader without shuffling visits 0..<count). Batch k holds order[k·B ..< (k+1)·B];
// TwoViewLoader drops the last partial batch (SPEC 5.3: drop_last=True), EvalLoader keeps it
// unless asked not to.
//
// Draws: sample i's view v (1, 2; 0 for the evaluation transforms) uses
// DataRandom.generator(seed, epoch, sample: i, view: v), so a batch's bytes depend on
// (seed, epoch) only, never on the number of workers or on which worker built it.
//
// Threads: `workers` Foundation threads claim whole batches in increasing order and build
// them; at most `prefetch` batches are claimed and not yet handed out, so the queue stays
// bounded while the consumer can take a ready batch without waiting. `next()` blocks until
// the next batch in order is ready; the call after the last batch returns nil once every
// worker has returned. `cancel()` (also run by deinit) stops the workers between samples and
// waits until every thread has returned. `workers: 0` builds each batch on the caller's thread
// inside `next()`. One NSCondition guards all shared state. Workers are named cim-data-N.
//
// Layout of a batch: images B×3×S×S float32, normalised (Normalization); labels and dataset
// indices in batch order.

import Backend
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Batches

/// One batch of the pretraining loader: two augmented views of the same B images.
public struct TwoViewBatch: Sendable {
    /// Position of the batch in the epoch (0-based).
    public var index: Int
    /// Side S of the views.
    public var imageSize: Int
    /// View 1 of every sample, B×3×S×S, normalised.
    public var view1: [Float]
    /// View 2 of every sample, B×3×S×S, normalised.
    public var view2: [Float]
    public var labels: [Int32]
    /// Dataset index of every sample.
    public var indices: [Int]

    public var count: Int { indices.count }
}

/// One batch of the evaluation loader.
public struct EvalBatch: Sendable {
    /// Position of the batch in the epoch (0-based).
    public var index: Int
    /// Side S of the images.
    public var imageSize: Int
    /// B×3×S×S, normalised.
    public var images: [Float]
    public var labels: [Int32]
    /// Dataset index of every sample.
    public var indices: [Int]

    public var count: Int { indices.count }
}

// MARK: - TwoViewLoader

/// The pretraining batches of one epoch: every image of a batch augmented twice
/// (SPEC 4.1), shuffled from (seed, epoch), global batch with drop-last.
///
/// ```swift
/// let loader = TwoViewLoader(dataset: train, batchSize: 256, epoch: 3, seed: 10,
///                            normalization: .cifar10)
/// for batch in loader { ... }          // loader.batchCount batches
/// ```
/// The result is the same for any `workers`; the loader stops its threads when cancelled
/// or released.
public final class TwoViewLoader: Sequence, IteratorProtocol {
    public let batchSize: Int
    public let epoch: Int
    public let seed: UInt64
    /// Full batches in the epoch: ⌊count / batchSize⌋.
    public let batchCount: Int
    public let imageSize: Int
    public let workers: Int
    private let pipeline: PrefetchPipeline<TwoViewBatch>

    /// - Parameters:
    ///   - views: the two view transforms; by default ``ViewAugmentation/pretraining(view:size:)``
    ///     1 and 2 at the dataset's height.
    ///   - workers: augmentation threads (0 builds batches on the caller's thread).
    ///   - prefetch: batches claimed ahead of the consumer, at least 1.
    public init(dataset: ImageDataset, batchSize: Int, epoch: Int, seed: UInt64,
                normalization: Normalization,
                views: (ViewAugmentation, ViewAugmentation)? = nil,
                workers: Int = 2, prefetch: Int = 4) {
        precondition(batchSize > 0, "batch size \(batchSize) must be positive")
        let views = views ?? (.pretraining(view: 1, size: dataset.height),
                              .pretraining(view: 2, size: dataset.height))
        precondition(views.0.size == views.1.size,
                     "the two views have sizes \(views.0.size) and \(views.1.size)")
        self.batchSize = batchSize
        self.epoch = epoch
        self.seed = seed
        self.batchCount = dataset.count / batchSize
        self.imageSize = views.0.size
        self.workers = workers
        let order = DataRandom.epochOrder(count: dataset.count, seed: seed, epoch: epoch)
        let (view1, view2) = views
        let size = views.0.size
        pipeline = PrefetchPipeline(count: batchCount, workers: workers, prefetch: prefetch) {
            k, stop in
            let indices = Array(order[(k * batchSize)..<((k + 1) * batchSize)])
            let plane = 3 * size * size
            var images1 = [Float](repeating: 0, count: batchSize * plane)
            var images2 = [Float](repeating: 0, count: batchSize * plane)
            let finished = images1.withUnsafeMutableBufferPointer { out1 in
                images2.withUnsafeMutableBufferPointer { out2 in
                    for (j, sample) in indices.enumerated() {
                        if stop() { return false }
                        let image = dataset.rgbImage(sample)
                        var random1 = DataRandom.generator(seed: seed, epoch: epoch,
                                                           sample: sample, view: 1)
                        normalization.write(view1(image, random: &random1),
                                            to: out1.baseAddress! + j * plane)
                        var random2 = DataRandom.generator(seed: seed, epoch: epoch,
                                                           sample: sample, view: 2)
                        normalization.write(view2(image, random: &random2),
                                            to: out2.baseAddress! + j * plane)
                    }
                    return true
                }
            }
            guard finished else { return nil }
            return TwoViewBatch(index: k, imageSize: size, view1: images1, view2: images2,
                                labels: indices.map { dataset.labels[$0] }, indices: indices)
        }
    }

    deinit { pipeline.cancel() }

    /// The next batch in order, waiting for it if needed; nil after the last batch or once
    /// cancelled.
    public func next() -> TwoViewBatch? { pipeline.next() }

    /// Stops the workers and waits until they have returned; later `next()` calls give nil.
    public func cancel() { pipeline.cancel() }

    /// Worker threads still running (0 after `cancel()` or the last batch).
    public var runningWorkers: Int { pipeline.runningWorkers }
}

// MARK: - EvalLoader

/// Batches for evaluation (SPEC 4.3): the deterministic test transform for kNN / linear
/// evaluation features, or the linear-probe training transform.
///
/// By default the test transform visits the dataset in order and keeps the last partial
/// batch; the linear-train transform shuffles from (seed, epoch) and also keeps it (the
/// single-GPU reference has no drop_last).
public final class EvalLoader: Sequence, IteratorProtocol {
    public let batchSize: Int
    public let epoch: Int
    public let seed: UInt64
    public let batchCount: Int
    public let imageSize: Int
    public let transform: EvalTransform
    private let pipeline: PrefetchPipeline<EvalBatch>

    /// - Parameters:
    ///   - shuffle: visit a (seed, epoch) permutation instead of 0..<count; defaults to
    ///     `transform.isRandom`.
    ///   - dropLast: leave out the last partial batch.
    public init(dataset: ImageDataset, transform: EvalTransform, batchSize: Int,
                normalization: Normalization, epoch: Int = 0, seed: UInt64 = 0,
                shuffle: Bool? = nil, dropLast: Bool = false, workers: Int = 2,
                prefetch: Int = 4) {
        precondition(batchSize > 0, "batch size \(batchSize) must be positive")
        let count = dataset.count
        self.batchSize = batchSize
        self.epoch = epoch
        self.seed = seed
        self.transform = transform
        self.imageSize = transform.size
        self.batchCount = dropLast ? count / batchSize : (count + batchSize - 1) / batchSize
        let order = (shuffle ?? transform.isRandom)
            ? DataRandom.epochOrder(count: count, seed: seed, epoch: epoch) : Array(0..<count)
        let size = transform.size
        pipeline = PrefetchPipeline(count: batchCount, workers: workers, prefetch: prefetch) {
            k, stop in
            let indices = Array(order[(k * batchSize)..<Swift.min((k + 1) * batchSize, count)])
            let plane = 3 * size * size
            var images = [Float](repeating: 0, count: indices.count * plane)
            let finished = images.withUnsafeMutableBufferPointer { out in
                for (j, sample) in indices.enumerated() {
                    if stop() { return false }
                    var random = DataRandom.generator(seed: seed, epoch: epoch, sample: sample,
                                                      view: 0)
                    let view = transform.apply(to: dataset.rgbImage(sample), random: &random)
                    normalization.write(view, to: out.baseAddress! + j * plane)
                }
                return true
            }
            guard finished else { return nil }
            return EvalBatch(index: k, imageSize: size, images: images,
                             labels: indices.map { dataset.labels[$0] }, indices: indices)
        }
    }

    deinit { pipeline.cancel() }

    /// The next batch in order, waiting for it if needed; nil after the last batch or once
    /// cancelled.
    public func next() -> EvalBatch? { pipeline.next() }

    /// Stops the workers and waits until they have returned.
    public func cancel() { pipeline.cancel() }

    /// Worker threads still running.
    public var runningWorkers: Int { pipeline.runningWorkers }
}

// MARK: - Internals

extension ImageDataset {
    /// Image `index` as an RGBImage (a copy of its bytes).
    func rgbImage(_ index: Int) -> RGBImage {
        RGBImage(height: height, width: width, pixels: image(index))
    }
}

/// Builds `count` batches with `workers` threads, at most `prefetch` ahead of the consumer,
/// and hands them out in order. `produce(k, stop)` builds batch k; it returns nil when
/// `stop()` turned true part-way (the pipeline was cancelled).
final class PrefetchPipeline<Batch: Sendable>: @unchecked Sendable {
    // all mutable state below is guarded by `condition`
    private let condition = NSCondition()
    private var ready: [Int: Batch] = [:]
    private var nextClaim = 0
    private var nextDelivery = 0
    private var cancelled = false
    private var running = 0
    // read without the lock by producers between samples
    private let stopFlag = Atomic<Bool>(false)

    private let count: Int
    private let prefetch: Int
    private let synchronous: Bool
    private let produce: @Sendable (Int, () -> Bool) -> Batch?

    init(count: Int, workers: Int, prefetch: Int,
         produce: @escaping @Sendable (Int, () -> Bool) -> Batch?) {
        precondition(workers >= 0, "workers \(workers) must be 0 or more")
        precondition(prefetch >= 1, "prefetch \(prefetch) must be at least 1")
        self.count = count
        self.prefetch = prefetch
        self.produce = produce
        let threads = min(workers, count)
        synchronous = threads == 0
        running = threads
        for i in 0..<threads {
            let thread = Thread { [self] in work(name: "cim-data-\(i)") }
            thread.start()
        }
    }

    var runningWorkers: Int {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    private func work(name: String) {
        nameCurrentThread(name)
        let stop = { self.stopFlag.load(ordering: .relaxed) }
        condition.lock()
        while true {
            while !cancelled && nextClaim < count && nextClaim >= nextDelivery + prefetch {
                condition.wait()
            }
            if cancelled || nextClaim >= count { break }
            let k = nextClaim
            nextClaim += 1
            condition.unlock()
            let batch = produce(k, stop)
            condition.lock()
            if let batch, !cancelled { ready[k] = batch }
            condition.broadcast()
        }
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    func next() -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        if cancelled { return nil }
        guard nextDelivery < count else {
            // the end: the workers are returning; wait so none outlives the epoch's last call
            while running > 0 { condition.wait() }
            return nil
        }
        if synchronous {
            // no worker threads: build it here
            let k = nextDelivery
            nextClaim += 1
            nextDelivery += 1
            condition.unlock()
            let batch = produce(k) { false }
            condition.lock()
            return batch
        }
        while ready[nextDelivery] == nil && !cancelled { condition.wait() }
        guard let batch = ready.removeValue(forKey: nextDelivery) else { return nil }
        nextDelivery += 1
        condition.broadcast()
        return batch
    }

    func cancel() {
        condition.lock()
        cancelled = true
        stopFlag.store(true, ordering: .relaxed)
        ready.removeAll()
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }
}

/// Names the calling thread for top, gdb and /proc/self/task/*/comm (15 bytes at most).
///
/// Foundation's `Thread.name` reaches the kernel on Linux only when the thread's handle is
/// already recorded, which races with the thread's start; glibc's pthread_setname_np is not
/// visible to Swift without _GNU_SOURCE, so it is looked up at run time.
private func nameCurrentThread(_ name: String) {
    #if canImport(Glibc)
        typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
        if let symbol = dlsym(nil, "pthread_setname_np") {
            _ = unsafeBitCast(symbol, to: SetName.self)(pthread_self(), name)
            return
        }
    #endif
    Thread.current.name = name
}
