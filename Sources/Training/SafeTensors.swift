// SafeTensors.swift: reading and writing the safetensors format, the container of cim-train's
// checkpoints and of the PyTorch reference fixtures the tests compare against.
//
// Layout (the format of the `safetensors` Python/Rust package):
//   bytes 0 ..< 8          N, the header length, a little-endian UInt64
//   bytes 8 ..< 8+N        a JSON object: tensor name -> {"dtype", "shape", "data_offsets"},
//                          plus an optional "__metadata__" object of string -> string
//   bytes 8+N ..< end      the data buffer; "data_offsets": [begin, end) count from its start;
//                          elements are little-endian, row-major
//
// The package depends on nothing outside the toolchain, so the format is implemented here.
// Reading validates everything a damaged or foreign file can get wrong and throws a
// SafeTensorsError naming the file, the tensor and what to do about it. Offsets may come in
// any order and may overlap (harmless to a reader), but never reach past the data buffer.
// Writing follows the reference writer: header keys sorted, data ordered by element size
// (largest first) and then name so every tensor is aligned to its element size, and the header
// padded with spaces so the data starts at a multiple of 8. Writing is atomic (temporary file
// in the same directory, fsync, rename over the target), so a crash while saving a checkpoint
// leaves the previous file intact.

import Backend
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Errors

/// A safetensors file that cannot be read or written, or a tensor read with the wrong type.
///
/// Every message names the file (where there is one) and says what to do.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible {
    /// No file at the path.
    case fileMissing(path: String)
    /// The operating system refused a read, write, fsync or rename.
    case ioFailure(path: String, reason: String)
    /// The file ends before its length field, its header (the length field promises more
    /// bytes than follow) or a tensor's data does.
    case truncated(path: String, detail: String)
    /// The header-length field is over ``SafeTensorsFile/maxHeaderLength``.
    case headerLengthAbsurd(path: String, length: UInt64, fileSize: Int)
    /// The header is not a JSON object of the expected form.
    case invalidHeader(path: String, detail: String)
    /// A tensor's dtype is not one of ``SafeTensorsEntry/elementSizes``.
    case unknownDtype(path: String, tensor: String, dtype: String)
    /// A tensor's data offsets disagree with its shape and dtype, or begin after they end.
    case badOffsets(path: String, tensor: String, detail: String)
    /// ``SafeTensorsFile/entry(_:)`` was asked for a name the file does not hold.
    case missingTensor(name: String, available: Int)
    /// ``SafeTensorsEntry/floats()`` or ``SafeTensorsEntry/doubles()`` on another dtype.
    case wrongDtype(tensor: String?, expected: String, actual: String)
    /// An entry or file that cannot be represented (bytes that do not fit the shape, a tensor
    /// named "__metadata__").
    case invalidEntry(String)

    private static let restore =
        "the file is truncated or corrupt; re-create it or restore it from an earlier checkpoint"

    public var description: String {
        switch self {
        case .fileMissing(let path):
            return "\(path): no such file; check the path, or re-create the file"
        case .ioFailure(let path, let reason):
            return "\(path): \(reason)"
        case .truncated(let path, let detail):
            return "\(path): \(detail); \(Self.restore)"
        case .headerLengthAbsurd(let path, let length, let fileSize):
            return "\(path): header length \(length) bytes is over the "
                + "\(SafeTensorsFile.maxHeaderLength)-byte limit (the file has \(fileSize) "
                + "bytes); it is not a safetensors file, or \(Self.restore)"
        case .invalidHeader(let path, let detail):
            return "\(path): invalid header: \(detail); it is not a safetensors file, or "
                + Self.restore
        case .unknownDtype(let path, let tensor, let dtype):
            let known = SafeTensorsEntry.elementSizes.keys.sorted().joined(separator: ", ")
            return "\(path): tensor '\(tensor)' has dtype '\(dtype)', which cim-train does not "
                + "read (supported: \(known)); convert it before saving, e.g. with "
                + ".float() in PyTorch"
        case .badOffsets(let path, let tensor, let detail):
            return "\(path): tensor '\(tensor)': \(detail); \(Self.restore)"
        case .missingTensor(let name, let available):
            return "no tensor named '\(name)' among the file's \(available); it was written "
                + "by another program or version: re-create it"
        case .wrongDtype(let tensor, let expected, let actual):
            let reader = actual == "F64" ? "doubles()" : actual == "F32" ? "floats()" : nil
            return "tensor \(tensor.map { "'\($0)' " } ?? "")holds \(actual) values, not "
                + "\(expected)" + (reader.map { "; read it with \($0)" } ?? "")
        case .invalidEntry(let message):
            return "invalid safetensors entry: \(message)"
        }
    }
}

// MARK: - One tensor

/// One tensor of a safetensors file: its dtype name, shape and raw little-endian bytes.
///
/// The bytes always match the shape: `bytes.count == elementCount * elementSize(dtype)`.
public struct SafeTensorsEntry: Equatable, Sendable {
    /// The dtype names this reader and writer support and their element sizes in bytes.
    public static let elementSizes: [String: Int] = [
        "F64": 8, "F32": 4, "I64": 8, "I32": 4, "U8": 1,
    ]

    /// "F32", "F64", "I64", "I32" or "U8".
    public let dtype: String
    /// Row-major dimensions; `[]` is a scalar.
    public let shape: [Int]
    /// The elements, little-endian, row-major.
    public let bytes: [UInt8]

    /// An entry from raw bytes.
    ///
    /// - Throws: ``SafeTensorsError/invalidEntry(_:)`` when the dtype is unsupported, a
    ///   dimension is negative, or the byte count does not equal the element count times the
    ///   element size.
    public init(dtype: String, shape: [Int], bytes: [UInt8]) throws {
        guard let size = Self.elementSizes[dtype] else {
            throw SafeTensorsError.invalidEntry("unsupported dtype '\(dtype)'")
        }
        let count = Self.elementCount(shape)
        let needed = count.map { $0.multipliedReportingOverflow(by: size) }
        guard let needed, !needed.overflow, needed.partialValue == bytes.count else {
            throw SafeTensorsError.invalidEntry(
                "\(bytes.count) bytes do not hold a \(dtype) tensor of shape \(shape)")
        }
        self.init(unchecked: dtype, shape: shape, bytes: bytes)
    }

    /// An F32 entry. `values.count` must equal the product of `shape`.
    public init(_ values: [Float], shape: [Int]) {
        precondition(Self.elementCount(shape) == values.count,
                     "\(values.count) values do not fill shape \(shape)")
        let bytes = values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
        self.init(unchecked: "F32", shape: shape, bytes: bytes)
    }

    /// An F64 entry. `values.count` must equal the product of `shape`.
    public init(_ values: [Double], shape: [Int]) {
        precondition(Self.elementCount(shape) == values.count,
                     "\(values.count) values do not fill shape \(shape)")
        let bytes = values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
        self.init(unchecked: "F64", shape: shape, bytes: bytes)
    }

    init(unchecked dtype: String, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// The number of elements, the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The Backend element type of an F32 or F64 entry; nil for the integer dtypes.
    public var backendDType: DType? {
        switch dtype {
        case "F32": return .float32
        case "F64": return .float64
        default: return nil
        }
    }

    /// The elements of an F32 entry.
    ///
    /// - Throws: ``SafeTensorsError/wrongDtype(tensor:expected:actual:)`` for another dtype.
    public func floats() throws -> [Float] {
        try floats(named: nil)
    }

    /// The elements of an F64 entry.
    ///
    /// - Throws: ``SafeTensorsError/wrongDtype(tensor:expected:actual:)`` for another dtype.
    public func doubles() throws -> [Double] {
        try doubles(named: nil)
    }

    func floats(named name: String?) throws -> [Float] {
        guard dtype == "F32" else {
            throw SafeTensorsError.wrongDtype(tensor: name, expected: "F32", actual: dtype)
        }
        return words(UInt32.self).map { Float(bitPattern: UInt32(littleEndian: $0)) }
    }

    func doubles(named name: String?) throws -> [Double] {
        guard dtype == "F64" else {
            throw SafeTensorsError.wrongDtype(tensor: name, expected: "F64", actual: dtype)
        }
        return words(UInt64.self).map { Double(bitPattern: UInt64(littleEndian: $0)) }
    }

    /// The bytes reinterpreted as words of type T, still in file (little-endian) order.
    private func words<T: FixedWidthInteger>(_: T.Type) -> [T] {
        var result = [T](repeating: 0, count: bytes.count / MemoryLayout<T>.size)
        result.withUnsafeMutableBytes { destination in
            bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
        }
        return result
    }

    /// The product of the dimensions, or nil when one is negative or the product overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }
}

// MARK: - A file

/// The contents of a safetensors file: named tensors and string metadata.
///
/// ```swift
/// var file = SafeTensorsFile(metadata: ["format": "cim-train-checkpoint"])
/// file.tensors["w"] = SafeTensorsEntry([1, 2, 3, 4] as [Float], shape: [2, 2])
/// try file.write(to: "run/checkpoint.safetensors")
/// let w = try SafeTensorsFile.read("run/checkpoint.safetensors").floats("w")
/// ```
public struct SafeTensorsFile: Equatable, Sendable {
    /// The largest header accepted, in bytes (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    /// The header key reserved for the metadata; no tensor may have this name.
    public static let metadataKey = "__metadata__"

    /// The tensors by name.
    public var tensors: [String: SafeTensorsEntry]
    /// Free-form string pairs stored under "__metadata__" (omitted from the file when empty).
    public var metadata: [String: String]

    public init(tensors: [String: SafeTensorsEntry] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`.
    ///
    /// - Throws: ``SafeTensorsError/missingTensor(name:available:)`` when there is none.
    public func entry(_ name: String) throws -> SafeTensorsEntry {
        guard let entry = tensors[name] else {
            throw SafeTensorsError.missingTensor(name: name, available: tensors.count)
        }
        return entry
    }

    /// The elements of the F32 tensor called `name`.
    public func floats(_ name: String) throws -> [Float] {
        try entry(name).floats(named: name)
    }

    /// The elements of the F64 tensor called `name`.
    public func doubles(_ name: String) throws -> [Double] {
        try entry(name).doubles(named: name)
    }

    // MARK: Reading

    /// Reads and validates the file at `path`.
    ///
    /// - Throws: a ``SafeTensorsError`` naming the file and the problem: missing, unreadable,
    ///   truncated, an absurd header length, a header that is not the expected JSON, an
    ///   unsupported dtype, or data offsets that disagree with a shape.
    public static func read(_ path: String) throws -> SafeTensorsFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SafeTensorsError.fileMissing(path: path)
        }
        if isDirectory.boolValue {
            throw SafeTensorsError.ioFailure(path: path, reason: "is a directory, not a file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SafeTensorsError.ioFailure(path: path, reason: "cannot read: \(error)")
        }
        return try decode([UInt8](data), path: path)
    }

    /// Parses the bytes of a whole safetensors file; `path` only labels the errors.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws
        -> SafeTensorsFile
    {
        // Header length.
        guard bytes.count >= 8 else {
            throw SafeTensorsError.truncated(
                path: path, detail: "\(bytes.count) bytes, fewer than the 8 of the length field")
        }
        var length: UInt64 = 0
        for index in (0..<8).reversed() { length = length << 8 | UInt64(bytes[index]) }
        guard length <= UInt64(maxHeaderLength) else {
            throw SafeTensorsError.headerLengthAbsurd(
                path: path, length: length, fileSize: bytes.count)
        }
        let dataStart = 8 + Int(length)
        guard dataStart <= bytes.count else {
            throw SafeTensorsError.truncated(
                path: path, detail: "the header should be \(length) bytes but the file ends "
                    + "\(bytes.count - 8) bytes after the length field")
        }

        // Header JSON.
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        } catch {
            throw SafeTensorsError.invalidHeader(path: path, detail: "not valid JSON")
        }
        guard let header = parsed as? [String: Any] else {
            throw SafeTensorsError.invalidHeader(path: path, detail: "not a JSON object")
        }

        var file = SafeTensorsFile()
        if let rawMetadata = header[metadataKey] {
            guard let metadata = rawMetadata as? [String: Any] else {
                throw SafeTensorsError.invalidHeader(
                    path: path, detail: "\"\(metadataKey)\" is not an object")
            }
            for (key, value) in metadata {
                guard let string = value as? String else {
                    throw SafeTensorsError.invalidHeader(
                        path: path, detail: "metadata value of '\(key)' is not a string")
                }
                file.metadata[key] = string
            }
        }

        // Tensors, in name order so the first problem reported does not vary between runs.
        let dataSize = bytes.count - dataStart
        for name in header.keys.sorted() where name != metadataKey {
            let (dtype, shape, begin, end) = try describe(header[name]!, name: name, path: path)
            guard let size = SafeTensorsEntry.elementSizes[dtype] else {
                throw SafeTensorsError.unknownDtype(path: path, tensor: name, dtype: dtype)
            }
            guard begin <= end else {
                throw SafeTensorsError.badOffsets(
                    path: path, tensor: name, detail: "data_offsets [\(begin), \(end)] "
                        + "begin after they end")
            }
            let count = SafeTensorsEntry.elementCount(shape)
            let needed = count.flatMap { count -> Int? in
                let (product, overflow) = count.multipliedReportingOverflow(by: size)
                return overflow ? nil : product
            }
            guard needed == end - begin else {
                throw SafeTensorsError.badOffsets(
                    path: path, tensor: name, detail: "shape \(shape) of \(dtype) needs "
                        + "\(needed.map(String.init) ?? "too many") bytes but data_offsets "
                        + "[\(begin), \(end)] hold \(end - begin)")
            }
            guard end <= dataSize else {
                throw SafeTensorsError.truncated(
                    path: path, detail: "tensor '\(name)' ends at byte \(end) of the data but "
                        + "the file holds only \(dataSize) bytes of data")
            }
            let slice = Array(bytes[(dataStart + begin)..<(dataStart + end)])
            file.tensors[name] = SafeTensorsEntry(unchecked: dtype, shape: shape, bytes: slice)
        }
        return file
    }

    /// The dtype, shape and offsets of one header entry, checked for form only.
    private static func describe(_ value: Any, name: String, path: String) throws
        -> (dtype: String, shape: [Int], begin: Int, end: Int)
    {
        func invalid(_ detail: String) -> SafeTensorsError {
            .invalidHeader(path: path, detail: "tensor '\(name)': \(detail)")
        }
        guard let object = value as? [String: Any] else { throw invalid("not an object") }
        guard let dtype = object["dtype"] as? String else {
            throw invalid("\"dtype\" missing or not a string")
        }
        guard let rawShape = object["shape"] as? [Any],
            let shape = naturals(rawShape)
        else { throw invalid("\"shape\" missing or not a list of non-negative integers") }
        guard let rawOffsets = object["data_offsets"] as? [Any],
            let offsets = naturals(rawOffsets), offsets.count == 2
        else { throw invalid("\"data_offsets\" missing or not two non-negative integers") }
        return (dtype, shape, offsets[0], offsets[1])
    }

    /// The values as Ints when every one is a non-negative integer (not a Bool, not 2.5).
    private static func naturals(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        for value in values {
            // JSON true/false arrive as NSNumber too, with the C type "c" (char).
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                let integer = value as? Int, integer >= 0
            else { return nil }
            result.append(integer)
        }
        return result
    }
}

// MARK: - Writing

extension SafeTensorsFile {
    /// The bytes of the file ``write(to:)`` writes.
    ///
    /// Header keys are sorted ("__metadata__" first, left out when the metadata is empty), the
    /// JSON is compact, and spaces pad it to a multiple of 8 bytes. The data is laid out by
    /// element size, largest first, then by name, as the reference writer does, so each tensor
    /// starts at a multiple of its element size.
    ///
    /// - Throws: ``SafeTensorsError/invalidEntry(_:)`` for a tensor named "__metadata__".
    public func encoded() throws -> [UInt8] {
        if tensors[Self.metadataKey] != nil {
            throw SafeTensorsError.invalidEntry(
                "a tensor cannot be named \"\(Self.metadataKey)\", the metadata's key")
        }
        let size = { (entry: SafeTensorsEntry) in SafeTensorsEntry.elementSizes[entry.dtype]! }
        let dataOrder = tensors.keys.sorted { a, b in
            let (sizeA, sizeB) = (size(tensors[a]!), size(tensors[b]!))
            return sizeA != sizeB ? sizeA > sizeB : a < b
        }
        var offsets: [String: (Int, Int)] = [:]
        var dataSize = 0
        for name in dataOrder {
            offsets[name] = (dataSize, dataSize + tensors[name]!.bytes.count)
            dataSize += tensors[name]!.bytes.count
        }

        // Header.
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { key in
                "\(jsonString(key)):\(jsonString(metadata[key]!))"
            }
            fields.append("\(jsonString(Self.metadataKey)):{\(pairs.joined(separator: ","))}")
        }
        for name in tensors.keys.sorted() {
            let entry = tensors[name]!
            let (begin, end) = offsets[name]!
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(name)):{\"dtype\":\(jsonString(entry.dtype)),"
                + "\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(end)]}")
        }
        var header = Array("{\(fields.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }

        // Length, header, data.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + header.count + dataSize)
        for index in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: header.count >> (8 * index))) }
        bytes += header
        for name in dataOrder { bytes += tensors[name]!.bytes }
        return bytes
    }

    /// Writes the file atomically: to a temporary file in the same directory, flushed to disk
    /// with fsync, then renamed over `path`. Readers see either the old file or the new one,
    /// never a partial one.
    ///
    /// - Throws: ``SafeTensorsError/ioFailure(path:reason:)`` when the directory is missing or
    ///   not writable, the disk is full, or the rename fails (the temporary file is removed);
    ///   ``SafeTensorsError/invalidEntry(_:)`` as ``encoded()`` does.
    public func write(to path: String) throws {
        try writeAtomically(encoded(), to: path)
    }
}

/// `value` as a JSON string literal: quotes, backslashes and control characters escaped, any
/// other character kept as UTF-8.
private func jsonString(_ value: String) -> String {
    var result = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

/// Writes `bytes` to a fresh temporary file next to `path`, fsyncs it, renames it over `path`
/// and fsyncs the directory. A free function so the POSIX `write` is not shadowed by
/// ``SafeTensorsFile/write(to:)``.
private func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    func failure(_ what: String) -> SafeTensorsError {
        .ioFailure(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let url = URL(fileURLWithPath: path)
    let directory = url.deletingLastPathComponent().path
    let temporary = directory + "/." + url.lastPathComponent
        + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw failure("cannot create \(temporary)") }
    var renamed = false
    defer { if !renamed { unlink(temporary) } }

    var written = 0
    while written < bytes.count {
        let result = bytes.withUnsafeBytes { raw in
            write(descriptor, raw.baseAddress! + written, raw.count - written)
        }
        if result < 0 && errno == EINTR { continue }
        guard result > 0 else {
            let error = failure("cannot write \(temporary)")
            close(descriptor)
            throw error
        }
        written += result
    }
    guard fsync(descriptor) == 0 else {
        let error = failure("cannot flush \(temporary) to disk")
        close(descriptor)
        throw error
    }
    guard close(descriptor) == 0 else { throw failure("cannot close \(temporary)") }
    guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary)") }
    renamed = true

    // Make the rename itself durable; a failure here leaves a complete file, so it is ignored.
    let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directoryDescriptor >= 0 {
        _ = fsync(directoryDescriptor)
        close(directoryDescriptor)
    }
}
