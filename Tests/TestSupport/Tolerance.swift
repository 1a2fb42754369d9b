// Tolerance.swift: the comparisons every test bundle shares, written once.
//
// A check passes element by element when |actual - expected| <= atol + rtol * scale, where
// the scale is |expected| by default or a caller-supplied magnitude per element (for a sum,
// the sum of the absolute values of its terms: the size rounding errors grow with, so a
// result that cancels to near zero is not held to an impossible relative bound). A NaN on
// either side always fails. On failure the message gives how many elements failed, the first
// one with both values, and the largest absolute and relative differences, and it is
// reported at the caller's file and line.

import Backend
import Foundation
import XCTest

/// How far `actual` is from `expected`, element by element.
public struct Difference: Sendable, CustomStringConvertible {
    /// Largest |actual - expected|.
    public var maxAbsolute: Double = 0
    /// Largest |actual - expected| / scale (scale = |expected| or the given magnitude).
    public var maxRelative: Double = 0
    /// Index of the first element outside the tolerance, if any.
    public var firstMismatch: Int? = nil
    /// Number of elements outside the tolerance.
    public var mismatches = 0

    public var description: String {
        "max abs diff \(scientific(maxAbsolute)), max rel diff \(scientific(maxRelative))"
    }
}

/// `value` as "1.2e-07", the form the diagnostics print.
public func scientific(_ value: Double) -> String {
    String(format: "%.1e", value)
}

/// Compares two arrays; `scale` replaces |expected| as the denominator of the relative test.
public func difference(
    _ actual: [Double], _ expected: [Double], scale: [Double]? = nil, rtol: Double = 0,
    atol: Double = 0
) -> Difference {
    precondition(actual.count == expected.count, "difference of arrays of unequal length")
    precondition(scale.map { $0.count == expected.count } ?? true, "scale of wrong length")
    var result = Difference()
    for i in actual.indices {
        let error = abs(actual[i] - expected[i])
        let denominator = scale?[i] ?? abs(expected[i])
        let relative = error == 0 ? 0 : error / max(denominator, Double.leastNormalMagnitude)
        // NaN makes every comparison false, so NaN is caught by the negated tests below.
        if !(error <= result.maxAbsolute) { result.maxAbsolute = error.isNaN ? .nan : error }
        if !(relative <= result.maxRelative) {
            result.maxRelative = relative.isNaN ? .nan : relative
        }
        if !(error <= atol + rtol * denominator) {
            result.mismatches += 1
            if result.firstMismatch == nil { result.firstMismatch = i }
        }
    }
    return result
}

/// Largest |actual - expected| / scale over the arrays (scale = |expected| by default).
public func maxRelativeDifference(
    _ actual: [Double], _ expected: [Double], scale: [Double]? = nil
) -> Double {
    difference(actual, expected, scale: scale).maxRelative
}

/// Largest |actual - expected| over the arrays.
public func maxAbsoluteDifference(_ actual: [Double], _ expected: [Double]) -> Double {
    difference(actual, expected).maxAbsolute
}

/// Largest |value| of an array (0 for an empty one).
public func maxAbsolute(_ values: [Double]) -> Double {
    values.reduce(0) { max($0, abs($1)) }
}

/// Fails unless every element satisfies |actual - expected| <= atol + rtol * scale, where
/// scale is `scale[i]` when given and |expected[i]| otherwise.
public func assertClose(
    _ actual: [Double], _ expected: [Double], scale: [Double]? = nil, rtol: Double,
    atol: Double = 0, _ label: String, file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(label): \(actual.count) values, expected \(expected.count)",
                file: file, line: line)
        return
    }
    if let scale, scale.count != expected.count {
        XCTFail("\(label): \(scale.count) scales for \(expected.count) values",
                file: file, line: line)
        return
    }
    let diff = difference(actual, expected, scale: scale, rtol: rtol, atol: atol)
    guard let first = diff.firstMismatch else { return }
    let scaleNote = scale.map { ", scale \($0[first])" } ?? ""
    XCTFail(
        "\(label): \(diff.mismatches) of \(expected.count) elements outside rtol "
            + "\(scientific(rtol)) atol \(scientific(atol)); first at index \(first): actual "
            + "\(actual[first]), expected \(expected[first])\(scaleNote); \(diff)",
        file: file, line: line)
}

/// ``assertClose(_:_:scale:rtol:atol:_:file:line:)`` for float arrays, compared in double.
public func assertClose<T: TensorScalar, U: TensorScalar>(
    _ actual: [T], _ expected: [U], scale: [Double]? = nil, rtol: Double, atol: Double = 0,
    _ label: String, file: StaticString = #filePath, line: UInt = #line
) {
    assertClose(
        actual.map(Double.init), expected.map(Double.init), scale: scale, rtol: rtol,
        atol: atol, label, file: file, line: line)
}

/// One scalar: |actual - expected| <= atol + rtol * |expected|.
public func assertClose(
    _ actual: Double, _ expected: Double, rtol: Double, atol: Double = 0, _ label: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    assertClose([actual], [expected], rtol: rtol, atol: atol, label, file: file, line: line)
}

/// Prints `tensor <label> max rel diff 1.2e-07` (relative to `scale` when given), the one
/// diagnostic line per compared tensor, and returns the difference.
@discardableResult
public func reportDifference(
    _ label: String, _ actual: [Double], _ expected: [Double], scale: [Double]? = nil
) -> Double {
    let relative = maxRelativeDifference(actual, expected, scale: scale)
    print("tensor \(label) max rel diff \(scientific(relative))")
    return relative
}

/// Fails unless no element is NaN.
public func assertNoNaN(
    _ values: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line
) {
    if let index = values.firstIndex(where: \.isNaN) {
        XCTFail("\(label): NaN at index \(index) of \(values.count)", file: file, line: line)
    }
}
