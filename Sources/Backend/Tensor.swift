// Tensor.swift: element types, opaque device buffers and the Tensor that pairs them with a
// shape.
//
// A buffer belongs to one backend and may live in memory the host cannot address (a GPU),
// so training code never reaches into it: data moves only through the backend's upload,
// download and copy.

/// Element types the backends compute with.
public enum DType: String, Sendable, CaseIterable {
    case float32
    case float64
    /// Indices (max-pooling winners).
    case int32

    /// Bytes per element.
    public var size: Int { self == .float64 ? 8 : 4 }
}

/// A Swift scalar type that maps onto a ``DType``.
public protocol TensorScalar: BinaryFloatingPoint, Sendable {
    static var dtype: DType { get }
}

extension Float: TensorScalar { public static var dtype: DType { .float32 } }
extension Double: TensorScalar { public static var dtype: DType { .float64 } }

/// Memory owned by a backend. Opaque outside the backend that made it.
public protocol DeviceBuffer: AnyObject, Sendable {
    /// Size in bytes.
    var byteCount: Int { get }
    /// The backend instance that allocated it (for checks that tensors are not mixed).
    var ownerID: ObjectIdentifier { get }
}

/// A shape, an element type and a buffer on one backend. Contiguous, row-major (NCHW for
/// images), like a contiguous PyTorch tensor.
public struct Tensor: Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let buffer: any DeviceBuffer

    public init(shape: [Int], dtype: DType, buffer: any DeviceBuffer) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(
            shape.reduce(1, *) * dtype.size <= buffer.byteCount,
            "buffer of \(buffer.byteCount) bytes is too small for \(dtype) \(shape)")
        self.shape = shape
        self.dtype = dtype
        self.buffer = buffer
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.size }
    public var rank: Int { shape.count }

    /// "float32 [128, 64, 32, 32]", for error messages.
    public var summary: String { "\(dtype) \(shape)" }
}
