// BackendError.swift: the errors every backend throws.
//
// The C layer reports a status and a message naming the failing call, file and line; the
// bridge turns both into one of these cases, so callers can match on the kind of failure
// and show the message unchanged.

/// A failure in a backend operation or in opening a device.
public enum BackendError: Error, Equatable, CustomStringConvertible {
    /// Tensor shapes or element types that do not fit the operation.
    case shapeMismatch(String)
    /// A matrix handed to a Cholesky-based op is not symmetric positive definite.
    case notPositiveDefinite(batchIndex: Int, message: String)
    /// A device name that is not one of the accepted forms.
    case unknownDevice(String)
    /// A device kind that cannot be used on this machine, and why.
    case unavailable(device: String, reason: String)
    /// An argument outside its domain (a null pointer, a thread count out of range).
    case invalidArgument(String)
    case outOfMemory(String)
    /// A foreign library (BLAS, LAPACK, a GPU driver) reported a failure.
    case library(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let message): return "shape mismatch: \(message)"
        case .notPositiveDefinite(_, let message): return message
        case .unknownDevice(let message): return message
        case .unavailable(let device, let reason): return "\(device) not available: \(reason)"
        case .invalidArgument(let message): return "invalid argument: \(message)"
        case .outOfMemory(let message): return "out of memory: \(message)"
        case .library(let message): return message
        }
    }
}
