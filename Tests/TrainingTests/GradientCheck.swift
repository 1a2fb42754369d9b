// GradientCheck.swift: helpers the Training tests share: host <-> tensor shortcuts, the
// leaf layers of a composite layer, the check that no saved forward state is left behind,
// and central finite differences of a scalar loss.
//
// Finite differences are taken of L(v) = Σ output · R for a fixed random R, so that every
// output element takes part. Layers compute in float32: the perturbed values are rounded to
// float32 and the divisor is the distance between the rounded points, and the loss is summed
// in double. Besides the central difference the spread of the one-sided quotients (steps h
// and h/2) is kept: where it is large, a kink (ReLU, max) lies within the step and the
// central difference says nothing about the derivative there, so composite networks may
// leave such entries out (counted by the caller, so a check cannot silently skip everything).

import Backend
import TestSupport
@testable import Training
import XCTest

extension Backend {
    /// Overwrites a float32 tensor with host values.
    func setValues(_ tensor: Tensor, _ values: [Float]) throws {
        precondition(values.count == tensor.count, "\(values.count) values for \(tensor.shape)")
        try values.withUnsafeBytes { try upload($0, to: tensor) }
    }

    /// The tensor's float32 values as doubles.
    func hostDoubles(_ tensor: Tensor) throws -> [Double] {
        try (download(tensor) as [Float]).map(Double.init)
    }
}

/// The layers without sublayers inside `layer`, in forward order.
func leafLayers(_ layer: Layer) -> [Layer] {
    switch layer {
    case let sequential as Sequential:
        return sequential.layers.flatMap(leafLayers)
    case let block as ResidualBlock:
        var leaves: [Layer] = []
        for i in block.convs.indices {
            leaves += [block.convs[i], block.norms[i]]
            if i < block.reluBetween.count { leaves.append(block.reluBetween[i]) }
        }
        if let downsample = block.downsample { leaves += [downsample.conv, downsample.norm] }
        return leaves + [block.reluOut]
    case let resnet as ResNet:
        var leaves: [Layer] = [resnet.stemConv, resnet.stemNorm, resnet.stemReLU]
        if let pool = resnet.stemPool { leaves.append(pool) }
        for stage in resnet.stages { leaves += stage.flatMap(leafLayers) }
        return leaves + [resnet.pool]
    default:
        return [layer]
    }
}

/// Fails unless `body` throws TrainingError.backwardWithoutForward.
func assertBackwardWithoutForward(
    _ label: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> Void
) {
    do {
        try body()
        XCTFail("\(label): backward ran without a saved forward", file: file, line: line)
    } catch TrainingError.backwardWithoutForward {
    } catch {
        XCTFail("\(label): expected backwardWithoutForward, got \(error)", file: file, line: line)
    }
}

/// Fails unless `layer` and every leaf inside it hold no saved forward state: a backward on
/// each must throw TrainingError.backwardWithoutForward before touching its argument.
func assertNoSavedState(
    _ layer: Layer, _ label: String, backend: Backend, file: StaticString = #filePath,
    line: UInt = #line
) throws {
    let dummy = try backend.zeros(.float32, [1, 1])
    for (index, leaf) in leafLayers(layer).enumerated() {
        assertBackwardWithoutForward(
            "\(label) leaf \(index) (\(type(of: leaf)))", file: file, line: line) {
            _ = try leaf.backward(dummy)
        }
    }
}

/// Difference quotients of a loss at one entry: the central one with step h, and the spread
/// (largest minus smallest) of the one-sided quotients with steps h and h/2, which is of
/// order h·|f''| where the loss is smooth and jumps where a kink lies within the step.
struct FiniteDifference {
    var central: Double
    var spread: Double
}

/// Difference quotients of `loss` with respect to the entries `indices` of `values`.
/// With `float32`, perturbed values are rounded to float32 and the quotients use the actual
/// (rounded) distances. `loss` receives the perturbed copy of `values`.
func finiteDifferences(
    _ values: [Double], at indices: [Int], step: Double, float32: Bool,
    loss: ([Double]) throws -> Double
) rethrows -> [FiniteDifference] {
    let round: (Double) -> Double = float32 ? { Double(Float($0)) } : { $0 }
    let center = try loss(values)
    var results: [FiniteDifference] = []
    for index in indices {
        var perturbed = values
        let x = values[index]
        func at(_ offset: Double) throws -> (point: Double, loss: Double) {
            perturbed[index] = round(x + offset)
            return (perturbed[index], try loss(perturbed))
        }
        let (plus, minus) = (try at(step), try at(-step))
        let (halfPlus, halfMinus) = (try at(step / 2), try at(-step / 2))
        let oneSided = [
            (plus.loss - center) / (plus.point - x), (center - minus.loss) / (x - minus.point),
            (halfPlus.loss - center) / (halfPlus.point - x),
            (center - halfMinus.loss) / (x - halfMinus.point),
        ]
        results.append(FiniteDifference(
            central: (plus.loss - minus.loss) / (plus.point - minus.point),
            spread: oneSided.max()! - oneSided.min()!))
    }
    return results
}

/// Compares analytic gradient entries with finite differences:
/// |fd − g| <= tolerance · scale, with scale the largest |g| over the whole analytic tensor
/// (or the largest |fd| if that is larger). With `skipKinks`, entries whose one-sided
/// quotients spread by more than tolerance · scale straddle a kink and are left out; the
/// caller bounds how many (returned). `minimumScale` guards against comparing zeros.
@discardableResult
func assertGradientMatches(
    _ label: String, analytic: [Double], indices: [Int], differences: [FiniteDifference],
    tolerance: Double, skipKinks: Bool = false, minimumScale: Double = 1e-6,
    file: StaticString = #filePath, line: UInt = #line
) -> (skipped: Int, compared: Int) {
    precondition(indices.count == differences.count)
    let scale = max(maxAbsolute(analytic), maxAbsolute(differences.map(\.central)))
    XCTAssertGreaterThan(scale, minimumScale, "\(label): gradient is (nearly) zero",
                         file: file, line: line)
    var actual: [Double] = [], expected: [Double] = []
    var skipped = 0
    for (index, fd) in zip(indices, differences) {
        if skipKinks, fd.spread > tolerance * scale {
            skipped += 1
            continue
        }
        actual.append(analytic[index])
        expected.append(fd.central)
    }
    let scales = [Double](repeating: scale, count: expected.count)
    reportDifference(label, actual, expected, scale: scales)
    assertClose(actual, expected, scale: scales, rtol: tolerance, label, file: file, line: line)
    return (skipped, expected.count)
}

/// All indices below `count` when there are at most `limit`, else `limit` distinct ones.
func sampleIndices(_ count: Int, limit: Int, random: inout SplitMix64) -> [Int] {
    count <= limit ? Array(0..<count) : random.distinctIndices(limit, below: count)
}

/// Σ a·b in double.
func innerProduct(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var sum = 0.0
    for i in a.indices { sum += a[i] * b[i] }
    return sum
}
