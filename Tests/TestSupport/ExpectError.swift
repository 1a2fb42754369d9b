// ExpectError.swift: asserting that a backend call throws the right BackendError case.
//
// Matching on the case (not the message text) keeps the tests stable when wording changes;
// the message is still returned so a test can check the parts that matter (a function name,
// a batch index, the list of accepted device names).

import Backend
import XCTest

/// Fails unless `body` throws a ``BackendError`` for which `matches` is true; returns it.
@discardableResult
public func assertThrowsBackendError<T>(
    _ label: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T, where matches: (BackendError) -> Bool
) -> BackendError? {
    do {
        _ = try body()
        XCTFail("\(label): expected a BackendError, nothing was thrown", file: file, line: line)
    } catch let error as BackendError {
        if matches(error) { return error }
        XCTFail("\(label): unexpected BackendError \(error)", file: file, line: line)
    } catch {
        XCTFail("\(label): expected a BackendError, got \(error)", file: file, line: line)
    }
    return nil
}

extension BackendError {
    public var isShapeMismatch: Bool {
        if case .shapeMismatch = self { return true }
        return false
    }

    public var isInvalidArgument: Bool {
        if case .invalidArgument = self { return true }
        return false
    }

    public var isUnknownDevice: Bool {
        if case .unknownDevice = self { return true }
        return false
    }

    public var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }

    /// The batch index of a ``BackendError/notPositiveDefinite(batchIndex:message:)``.
    public var notPositiveDefiniteIndex: Int? {
        if case .notPositiveDefinite(let index, _) = self { return index }
        return nil
    }
}
