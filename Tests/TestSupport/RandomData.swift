// RandomData.swift: seeded test data on Backend's SplitMix64, so every run of every test
// sees the same numbers on every platform and a failure reproduces from its seed alone.

import Backend

extension SplitMix64 {
    /// `count` floats uniform in [low, high).
    public mutating func floats(_ count: Int, _ low: Double = -1, _ high: Double = 1)
        -> [Float]
    {
        uniformArray(count, low, high, as: Float.self)
    }

    /// `count` doubles uniform in [low, high).
    public mutating func doubles(_ count: Int, _ low: Double = -1, _ high: Double = 1)
        -> [Double]
    {
        uniformArray(count, low, high, as: Double.self)
    }

    /// `count` distinct indices in 0..<bound, in the order drawn.
    public mutating func distinctIndices(_ count: Int, below bound: Int) -> [Int] {
        precondition(count <= bound, "cannot draw \(count) distinct indices below \(bound)")
        var chosen: [Int] = []
        var seen = Set<Int>()
        while chosen.count < count {
            let index = self.index(bound)
            if seen.insert(index).inserted { chosen.append(index) }
        }
        return chosen
    }

    /// A well-conditioned symmetric positive-definite n x n matrix, row-major:
    /// `M M^T / n + shift I` with M uniform in [-1, 1). Its eigenvalues lie in about
    /// [shift, shift + 4/3], so its condition number stays small for shift = 1.
    public mutating func spdMatrix(_ n: Int, shift: Double = 1) -> [Double] {
        let m = doubles(n * n)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = 0.0
                for p in 0..<n { sum += m[i * n + p] * m[j * n + p] }
                a[i * n + j] = sum / Double(n)
                a[j * n + i] = a[i * n + j]
            }
            a[i * n + i] += shift
        }
        return a
    }
}
