// Initialization.swift: the weight initialisations PyTorch and torchvision use, drawn from
// a seeded generator so a run is reproducible (SPEC 1.1).
//
//   Kaiming normal, fan_out, ReLU gain:  w ~ N(0, 2 / fan_out),  fan_out = K R S
//   PyTorch default conv / linear:       w ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),  fan_in = C R S
//                                        (kaiming_uniform with a = sqrt(5) reduces to this)
//   linear bias:                         b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//
// The values differ from PyTorch's draws (another generator), the distributions do not.

import Backend

/// A seeded source of initial weights.
public struct WeightInitializer {
    public var random: SplitMix64

    public init(seed: UInt64) { random = SplitMix64(seed: seed) }

    /// Standard normal by Box-Muller (both halves used).
    private var spare: Double? = nil

    public mutating func normal() -> Double {
        if let value = spare {
            spare = nil
            return value
        }
        var u1 = random.uniform()
        while u1 <= Double.leastNormalMagnitude { u1 = random.uniform() }
        let u2 = random.uniform()
        let radius = (-2 * _log(u1)).squareRoot()
        spare = radius * _sin(2 * Double.pi * u2)
        return radius * _cos(2 * Double.pi * u2)
    }

    /// N(0, 2 / fan_out): torchvision's ResNet convolutions.
    public mutating func kaimingNormalFanOut(_ shape: [Int]) -> [Float] {
        let fanOut = shape[0] * shape.dropFirst(2).reduce(1, *)
        let std = (2.0 / Double(fanOut)).squareRoot()
        return (0..<shape.reduce(1, *)).map { _ in Float(std * normal()) }
    }

    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = the product of shape[1...]: PyTorch's
    /// default for Conv2d and Linear weights.
    public mutating func pytorchDefault(_ shape: [Int]) -> [Float] {
        uniformBound(shape, fanIn: shape.dropFirst().reduce(1, *))
    }

    /// U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
    public mutating func uniformBound(_ shape: [Int], fanIn: Int) -> [Float] {
        let bound = 1.0 / Double(fanIn).squareRoot()
        return (0..<shape.reduce(1, *)).map { _ in Float(random.uniform(-bound, bound)) }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Glibc.sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Foundation
@inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Foundation.sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
