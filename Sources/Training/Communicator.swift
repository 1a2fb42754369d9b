// Communicator.swift: collectives between model replicas (SPEC 3).
//
// The training code talks to a `Communicator` only: sum all-reduce of float32 and float64
// host buffers, broadcast, barrier. `InProcessGroup` connects replicas that are threads of
// one process (several devices of one machine, or `--devices cpu,cpu`); an MPI or NCCL
// communicator implements the same protocol for processes and GPUs.
//
// Determinism: the in-process sum adds the ranks' buffers in rank order, in double, and
// every rank receives the same bytes, so replicas that start equal stay bit-identical.

import Foundation

public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// Element-wise sum over every rank; every rank ends with the same result.
    func allReduceSum(_ values: inout [Double]) throws
    func allReduceSum(_ values: inout [Float]) throws
    /// Every rank ends with `root`'s values.
    func broadcast(_ values: inout [Float], root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Payload bytes this rank has handed to collectives so far (for `bench --ops reduce`).
    var bytesCommunicated: Int { get }
}

/// A group of ranks inside one process.
public final class InProcessGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var contributions: [[Double]?]
    private var result: [Double] = []
    private var failed: String? = nil

    public init(size: Int) {
        precondition(size >= 1, "a group needs at least one rank")
        self.size = size
        contributions = Array(repeating: nil, count: size)
    }

    /// The communicator of one rank.
    public func communicator(rank: Int) -> Communicator {
        precondition((0..<size).contains(rank), "rank \(rank) outside 0..<\(size)")
        return InProcessCommunicator(group: self, rank: rank)
    }

    /// Marks the group broken (a replica failed) so that ranks waiting in a collective
    /// return an error instead of waiting forever.
    public func abort(_ reason: String) {
        condition.lock()
        failed = reason
        condition.broadcast()
        condition.unlock()
    }

    /// Deposits `values`; when the last rank arrives, `combine` makes the result from all
    /// contributions in rank order. Every rank returns the result.
    func exchange(rank: Int, _ values: [Double], combine: ([[Double]]) throws -> [Double])
        throws -> [Double]
    {
        condition.lock()
        defer { condition.unlock() }
        if let failed { throw TrainingError.mismatch("replica group stopped: \(failed)") }
        let myGeneration = generation
        contributions[rank] = values
        arrived += 1
        if arrived == size {
            let all = contributions.map { $0! }
            guard all.allSatisfy({ $0.count == all[0].count }) else {
                failed = "ranks gave buffers of different sizes to one collective"
                condition.broadcast()
                throw TrainingError.mismatch(failed!)
            }
            result = try combine(all)
            contributions = Array(repeating: nil, count: size)
            arrived = 0
            generation += 1
            condition.broadcast()
            return result
        }
        while generation == myGeneration && failed == nil { condition.wait() }
        if let failed { throw TrainingError.mismatch("replica group stopped: \(failed)") }
        return result
    }
}

final class InProcessCommunicator: Communicator, @unchecked Sendable {
    let group: InProcessGroup
    let rank: Int
    private(set) var bytesCommunicated = 0
    var size: Int { group.size }

    init(group: InProcessGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    static func sum(_ all: [[Double]]) -> [Double] {
        var total = all[0]
        for other in all.dropFirst() { for i in total.indices { total[i] += other[i] } }
        return total
    }

    func allReduceSum(_ values: inout [Double]) throws {
        bytesCommunicated += values.count * 8
        if size == 1 { return }
        values = try group.exchange(rank: rank, values, combine: Self.sum)
    }

    func allReduceSum(_ values: inout [Float]) throws {
        bytesCommunicated += values.count * 4
        if size == 1 { return }
        values = try group.exchange(rank: rank, values.map(Double.init), combine: Self.sum)
            .map { Float($0) }
    }

    func broadcast(_ values: inout [Float], root: Int) throws {
        bytesCommunicated += rank == root ? values.count * 4 : 0
        if size == 1 { return }
        values = try group.exchange(rank: rank, values.map(Double.init)) { $0[root] }
            .map { Float($0) }
    }

    func barrier() throws {
        if size == 1 { return }
        _ = try group.exchange(rank: rank, []) { _ in [] }
    }
}
