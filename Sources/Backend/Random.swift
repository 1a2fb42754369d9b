// Random.swift: a small seeded generator for reproducible test and benchmark data.
//
// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit state advanced by a Weyl constant and
// mixed by two multiply-xorshift rounds. Fast, passes BigCrush, and the same sequence on
// every platform, which Swift's SystemRandomNumberGenerator is not.

/// A seeded, reproducible random number generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double = 0, _ high: Double = 1) -> Double {
        low + (high - low) * Double(next() >> 11) * 0x1.0p-53
    }

    /// `count` values uniform in [low, high).
    public mutating func uniformArray<T: TensorScalar>(
        _ count: Int, _ low: Double = -1, _ high: Double = 1, as type: T.Type = T.self
    ) -> [T] {
        (0..<count).map { _ in T(uniform(low, high)) }
    }

    /// A random index in 0..<bound.
    public mutating func index(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
