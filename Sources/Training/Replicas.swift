// Replicas.swift: one model replica per device, and a training step on the global batch
// that gives the result one device would give with the whole batch (SPEC 3).
//
// The global batch of B images is cut into K contiguous shards of B/K rows, both views of
// an image on the same replica. Each replica runs on its own thread:
//   forward of both views     batch norm statistics all-reduced per BN call (sync BN)
//   loss                       sufficient statistics all-reduced (one float64 buffer), then
//                              every replica computes the same state, loss and G_v, and the
//                              gradient of its own rows (no embedding gather)
//   backward                   batch norm backward sums all-reduced; parameter gradients
//                              summed across replicas (each holds its rows' exact share)
//   update                     the same SGD step everywhere
// so replicas stay identical without a broadcast; `checkReplicas` verifies it by comparing
// parameter fingerprints. A global batch that does not split evenly is refused.

import Backend
import Foundation

public final class ReplicaGroup: @unchecked Sendable {
    public let trainers: [CorInfoMaxTrainer]
    let group: InProcessGroup

    /// Builds K identical replicas (same seed) on `backends`, each with its own loss state.
    /// - Parameter synchronizeBatchNorm: all-reduce batch statistics (the default with more
    ///   than one replica, as the reference does); false keeps per-replica statistics.
    public init(backends: [Backend], encoder: ResNetConfig, projector: ProjectorConfig,
                hyper: CorInfoMaxHyperparameters, optimizer: SGD, seed: UInt64,
                hostThreads: Int = 1, synchronizeBatchNorm: Bool = true) throws {
        guard !backends.isEmpty else {
            throw TrainingError.invalidConfiguration("no device to train on")
        }
        group = InProcessGroup(size: backends.count)
        var trainers: [CorInfoMaxTrainer] = []
        for (rank, backend) in backends.enumerated() {
            let communicator = group.communicator(rank: rank)
            let model = try CorInfoMaxModel(backend, encoder: encoder, projector: projector,
                                            seed: seed)
            if synchronizeBatchNorm { model.synchronizeBatchNorm(with: communicator) }
            let loss = try CorInfoMaxLoss(hyper, host: CPUBackend(threads: hostThreads))
            trainers.append(try CorInfoMaxTrainer(model: model, loss: loss, optimizer: optimizer,
                                                  communicator: communicator))
        }
        self.trainers = trainers
    }

    public var count: Int { trainers.count }
    /// Replica 0, whose weights are saved and evaluated.
    public var primary: CorInfoMaxTrainer { trainers[0] }

    /// Runs `body(rank)` on one thread per replica and waits; the first error is rethrown
    /// after the group is aborted, so replicas waiting in a collective stop too.
    func onEveryReplica<T>(_ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        if count == 1 { return [try body(0)] }
        let results = ResultBox<T>(count: count)
        let done = DispatchGroup()
        for rank in 0..<count {
            done.enter()
            let thread = Thread { [group] in
                do {
                    results.set(rank, .success(try body(rank)))
                } catch {
                    group.abort("replica \(rank): \(error)")
                    results.set(rank, .failure(error))
                }
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        return try results.values()
    }

    /// Loss and gradients of the global batch (views are [B, 3, S, S] row-major floats),
    /// without the update; for tests and `step`.
    public func computeGradients(view1: [Float], view2: [Float], batch: Int, imageSize: Int)
        throws -> LossValue
    {
        let shards = try shardRows(batch)
        let plane = 3 * imageSize * imageSize
        let values = try onEveryReplica { rank -> LossValue in
            let rows = shards[rank]
            let trainer = self.trainers[rank]
            let backend = trainer.model.backend
            let shape = [rows.count, 3, imageSize, imageSize]
            let v1 = try backend.tensor(
                Array(view1[(rows.lowerBound * plane)..<(rows.upperBound * plane)]),
                shape: shape)
            let v2 = try backend.tensor(
                Array(view2[(rows.lowerBound * plane)..<(rows.upperBound * plane)]),
                shape: shape)
            return try trainer.computeGradients(view1: v1, view2: v2)
        }
        return values[0]
    }

    /// One training step of the global batch.
    public func step(view1: [Float], view2: [Float], batch: Int, imageSize: Int,
                     learningRate: Double, checkReplicas: Bool = false) throws -> StepResult {
        let value = try computeGradients(view1: view1, view2: view2, batch: batch,
                                         imageSize: imageSize)
        _ = try onEveryReplica { rank in
            let trainer = self.trainers[rank]
            try trainer.optimizer.step(trainer.model.parameters, learningRate: learningRate,
                                       on: trainer.model.backend)
        }
        if checkReplicas { try verifyIdentical() }
        return StepResult(loss: value)
    }

    /// Throws unless every replica holds the same parameters and buffers, bit for bit.
    public func verifyIdentical() throws {
        let fingerprints = try trainers.map { try $0.parameterFingerprint() }
        guard Set(fingerprints).count == 1 else {
            throw TrainingError.mismatch(
                "replicas hold different weights (fingerprints "
                    + "\(fingerprints.map { String($0, radix: 16) })); a reduction is missing "
                    + "or not deterministic")
        }
    }

    func shardRows(_ batch: Int) throws -> [Range<Int>] {
        guard batch % count == 0, batch / count >= 1 else {
            throw TrainingError.invalidConfiguration(
                "a global batch of \(batch) does not split evenly over \(count) replicas; "
                    + "choose a batch size that is a multiple of \(count)")
        }
        let shard = batch / count
        return (0..<count).map { ($0 * shard)..<(($0 + 1) * shard) }
    }
}

/// Results written by several threads, each to its own slot.
final class ResultBox<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<T, Error>) {
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    /// The values in rank order. On failure, the error of a replica that failed in its own
    /// right is preferred over those of replicas stopped because the group was aborted.
    func values() throws -> [T] {
        lock.lock()
        defer { lock.unlock() }
        var errors: [Error] = []
        var values: [T] = []
        for slot in slots {
            switch slot {
            case .success(let value)?: values.append(value)
            case .failure(let error)?: errors.append(error)
            case nil: errors.append(TrainingError.mismatch("a replica did not finish"))
            }
        }
        func aborted(_ error: Error) -> Bool {
            if case .mismatch(let message)? = error as? TrainingError {
                return message.hasPrefix("replica group stopped")
            }
            return false
        }
        if let error = errors.first(where: { !aborted($0) }) ?? errors.first { throw error }
        return values
    }
}
