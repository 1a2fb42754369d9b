// ReduceBenchmark.swift: `cim-train bench --ops reduce`, what the exact covariance reduction
// costs per step against the embedding gather of the reference (SPEC 3.4).
//
// Per step, both views, with K devices sharing a global batch of N rows of width D:
//   sufficient statistics  2 (D + D(D+1)/2) + 2 float64 values (packed triangle; the full
//                          D x D matrix would be 2 (D + D²) + 2)
//   reference gather       2 N D float32 values gathered in the forward pass, and the same
//                          again all-reduced in the backward pass
// The statistics do not grow with the batch. The time is that of the all-reduce itself,
// between `ranks` threads of this process (InProcessGroup), median over repetitions.

import Backend
import Foundation

public struct ReduceCase: Sendable {
    public var name: String
    public var dimension: Int
    public var batch: Int
}

public enum ReduceBenchmark {
    /// The paper's (D, global batch) pairs.
    public static let cases = [
        ReduceCase(name: "CIFAR-10", dimension: 64, batch: 512),
        ReduceCase(name: "CIFAR-100", dimension: 128, batch: 512),
        ReduceCase(name: "ImageNet-100", dimension: 128, batch: 1024),
        ReduceCase(name: "ImageNet-1K", dimension: 512, batch: 1536),
    ]

    public static func statisticsValues(_ d: Int) -> Int { 2 * (d + d * (d + 1) / 2) + 2 }
    public static func fullStatisticsValues(_ d: Int) -> Int { 2 * (d + d * d) + 2 }

    public static func run(_ c: ReduceCase, ranks: Int, options: BenchmarkOptions) throws
        -> BenchmarkResult
    {
        let values = statisticsValues(c.dimension)
        let group = InProcessGroup(size: ranks)
        let communicators = (0..<ranks).map { group.communicator(rank: $0) }
        var random = SplitMix64(seed: options.seed)
        let buffers = (0..<ranks).map { _ in random.uniformArray(values, as: Double.self) }

        // check: every rank ends with the sum
        var expected = buffers[0]
        for b in buffers.dropFirst() { for i in expected.indices { expected[i] += b[i] } }
        let reduced = try allReduce(communicators, buffers)
        var error = 0.0
        for r in reduced {
            for i in r.indices {
                error = max(error, abs(r[i] - expected[i]) / max(abs(expected[i]), 1e-300))
            }
        }
        guard error <= 1e-15 else {
            throw BenchmarkVerificationError(op: "reduce", caseName: c.name, error: error,
                                             tolerance: 1e-15)
        }
        let seconds = try medianTime(warmup: options.warmup, repeats: max(options.repeats, 20)) {
            _ = try allReduce(communicators, buffers)
        }
        return BenchmarkResult(
            op: "reduce", caseName: "\(c.name) D\(c.dimension) N\(c.batch)", pass: "",
            medianSeconds: seconds, gflops: nil, maxRelativeError: error,
            extra: ["stats_bytes": Double(values * 8),
                    "stats_full_bytes": Double(fullStatisticsValues(c.dimension) * 8),
                    "gather_bytes_forward": Double(2 * c.batch * c.dimension * 4),
                    "gather_bytes_total": Double(4 * c.batch * c.dimension * 4),
                    "ranks": Double(ranks)])
    }

    /// One all-reduce of `buffers[r]` on rank r, every rank on its own thread.
    static func allReduce(_ communicators: [Communicator], _ buffers: [[Double]]) throws
        -> [[Double]]
    {
        let box = ResultBox<[Double]>(count: communicators.count)
        let done = DispatchGroup()
        for (rank, communicator) in communicators.enumerated() {
            done.enter()
            let buffer = buffers[rank]
            Thread {
                var values = buffer
                do {
                    try communicator.allReduceSum(&values)
                    box.set(rank, .success(values))
                } catch {
                    box.set(rank, .failure(error))
                }
                done.leave()
            }.start()
        }
        done.wait()
        return try box.values()
    }
}
