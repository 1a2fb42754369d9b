// MD5.swift: the MD5 message digest (RFC 1321), used only to check downloaded archives
// against the checksums their publishers give (the CIFAR pages list MD5 sums).
//
// MD5 is broken as a defence against a forger, but it is what the CIFAR archives are
// published with, and it still catches what this check is for: a truncated or damaged
// download, or a mirror serving another file. The package takes no dependencies and
// Foundation on Linux has no digest API, so the algorithm is written out here.
//
// The algorithm (RFC 1321 section 3):
//   1. Pad the message with one 0x80 byte, then zero bytes until its length is 56 mod 64,
//      then append the message length in bits as a little-endian UInt64.
//   2. Start from A = 0x67452301, B = 0xefcdab89, C = 0x98badcfe, D = 0x10325476.
//   3. For each 64-byte block, read 16 little-endian words M[0...15] and run 64 steps
//      i = 0 ..< 64 in four rounds of 16:
//          round 0:  F = (B & C) | (~B & D)   g = i
//          round 1:  F = (D & B) | (~D & C)   g = (5i + 1) mod 16
//          round 2:  F = B ^ C ^ D            g = (3i + 5) mod 16
//          round 3:  F = C ^ (B | ~D)         g = 7i mod 16
//          (A, B, C, D) <- (D, B + rotl(A + F + K[i] + M[g], s[i]), B, C)
//      with K[i] = floor(2^32 |sin(i + 1)|) and the shift table s below, then add the
//      block's result to the state (mod 2^32).
//   4. The digest is A, B, C, D written little-endian: 16 bytes, usually shown as 32
//      lower-case hexadecimal digits.

import Foundation

/// A streaming MD5 digest (RFC 1321): feed bytes with ``update(_:)-(UnsafeRawBufferPointer)``
/// in pieces of any size, then read ``digest()`` or ``hexDigest``.
///
/// ```swift
/// var md5 = MD5()
/// md5.update(Array("abc".utf8))
/// md5.hexDigest  // "900150983cd24fb0d6963f7d28e17f72"
/// ```
///
/// - Note: MD5 detects accidental damage, not deliberate tampering; it is here because the
///   CIFAR archives are published with MD5 sums.
///
/// ### References
/// - R. Rivest, "The MD5 Message-Digest Algorithm", RFC 1321, 1992.
///   <https://www.rfc-editor.org/rfc/rfc1321>
public struct MD5: Sendable {
    private var a: UInt32 = 0x6745_2301
    private var b: UInt32 = 0xefcd_ab89
    private var c: UInt32 = 0x98ba_dcfe
    private var d: UInt32 = 0x1032_5476
    /// Bytes waiting for a full 64-byte block (always fewer than 64).
    private var pending: [UInt8] = []
    /// The message length so far, in bytes.
    private var length: UInt64 = 0

    public init() {}

    /// Adds `bytes` to the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length &+= UInt64(bytes.count)
        var offset = 0
        if !pending.isEmpty {
            let take = min(64 - pending.count, bytes.count)
            pending.append(contentsOf: bytes[0..<take])
            offset = take
            guard pending.count == 64 else { return }
            let block = pending  // a copy: compress(blocks:) mutates self
            block.withUnsafeBytes { compress(blocks: $0) }
            pending.removeAll(keepingCapacity: true)
        }
        let whole = (bytes.count - offset) / 64 * 64
        if whole > 0 {
            compress(blocks: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + whole)]))
        }
        pending.append(contentsOf: bytes[(offset + whole)...])
    }

    /// Adds `bytes` to the message.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 16-byte digest of the message so far (the state itself is left as it was, so
    /// more bytes may still be added).
    public func digest() -> [UInt8] {
        var copy = self
        // Step 1: 0x80, zeros to 56 mod 64, the length in bits (little-endian).
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        tail += [UInt8](repeating: 0, count: (55 - Int(length % 64) + 64) % 64)
        tail += (0..<8).map { UInt8(truncatingIfNeeded: bitLength >> (8 * $0)) }
        tail.withUnsafeBytes { copy.update($0) }
        precondition(copy.pending.isEmpty, "MD5 padding must end on a block boundary")
        return [copy.a, copy.b, copy.c, copy.d].flatMap { word in
            (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) }
        }
    }

    /// The digest as 32 lower-case hexadecimal digits.
    public var hexDigest: String { hexString(digest()) }

    /// The MD5 of a file's contents as 32 lower-case hexadecimal digits, read in 1 MiB
    /// pieces so a large archive is never held in memory.
    ///
    /// - Throws: ``DatasetError/ioFailure(path:reason:)`` when the file cannot be read.
    public static func hexDigest(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DatasetError.ioFailure(path: path, reason: "cannot open the file for reading")
        }
        defer { try? handle.close() }
        var md5 = MD5()
        do {
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                chunk.withUnsafeBytes { md5.update($0) }
            }
        } catch {
            throw DatasetError.ioFailure(path: path, reason: "read failed: \(error)")
        }
        return md5.hexDigest
    }

    // MARK: - Compression function

    /// Per-step left-rotation amounts s[i], four per round repeated four times.
    private static let shifts: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]

    /// K[i] = floor(2^32 |sin(i + 1)|), as tabulated in RFC 1321 section 3.4.
    private static let constants: [UInt32] = [
        0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee, 0xf57c_0faf, 0x4787_c62a,
        0xa830_4613, 0xfd46_9501, 0x6980_98d8, 0x8b44_f7af, 0xffff_5bb1, 0x895c_d7be,
        0x6b90_1122, 0xfd98_7193, 0xa679_438e, 0x49b4_0821, 0xf61e_2562, 0xc040_b340,
        0x265e_5a51, 0xe9b6_c7aa, 0xd62f_105d, 0x0244_1453, 0xd8a1_e681, 0xe7d3_fbc8,
        0x21e1_cde6, 0xc337_07d6, 0xf4d5_0d87, 0x455a_14ed, 0xa9e3_e905, 0xfcef_a3f8,
        0x676f_02d9, 0x8d2a_4c8a, 0xfffa_3942, 0x8771_f681, 0x6d9d_6122, 0xfde5_380c,
        0xa4be_ea44, 0x4bde_cfa9, 0xf6bb_4b60, 0xbebf_bc70, 0x289b_7ec6, 0xeaa1_27fa,
        0xd4ef_3085, 0x0488_1d05, 0xd9d4_d039, 0xe6db_99e5, 0x1fa2_7cf8, 0xc4ac_5665,
        0xf429_2244, 0x432a_ff97, 0xab94_23a7, 0xfc93_a039, 0x655b_59c3, 0x8f0c_cc92,
        0xffef_f47d, 0x8584_5dd1, 0x6fa8_7e4f, 0xfe2c_e6e0, 0xa301_4314, 0x4e08_11a1,
        0xf753_7e82, 0xbd3a_f235, 0x2ad7_d2bb, 0xeb86_d391,
    ]

    /// Runs step 3 over every 64-byte block of `blocks` (whose size is a multiple of 64).
    private mutating func compress(blocks: UnsafeRawBufferPointer) {
        var words = [UInt32](repeating: 0, count: 16)
        Self.shifts.withUnsafeBufferPointer { s in
            Self.constants.withUnsafeBufferPointer { k in
                words.withUnsafeMutableBufferPointer { m in
                    for start in stride(from: 0, to: blocks.count, by: 64) {
                        for j in 0..<16 {
                            m[j] = UInt32(littleEndian: blocks.loadUnaligned(
                                fromByteOffset: start + 4 * j, as: UInt32.self))
                        }
                        var (aa, bb, cc, dd) = (a, b, c, d)
                        for i in 0..<64 {
                            let f: UInt32
                            let g: Int
                            switch i >> 4 {
                            case 0: f = (bb & cc) | (~bb & dd); g = i
                            case 1: f = (dd & bb) | (~dd & cc); g = (5 &* i &+ 1) & 15
                            case 2: f = bb ^ cc ^ dd; g = (3 &* i &+ 5) & 15
                            default: f = cc ^ (bb | ~dd); g = (7 &* i) & 15
                            }
                            let sum = aa &+ f &+ k[i] &+ m[g]
                            let rotated = (sum << s[i]) | (sum >> (32 - s[i]))
                            (aa, bb, cc, dd) = (dd, bb &+ rotated, bb, cc)
                        }
                        a &+= aa
                        b &+= bb
                        c &+= cc
                        d &+= dd
                    }
                }
            }
        }
    }
}

/// The MD5 digest of `bytes` (RFC 1321) as 32 lower-case hexadecimal digits.
///
/// ```swift
/// md5Hex(Array("abc".utf8))  // "900150983cd24fb0d6963f7d28e17f72"
/// ```
public func md5Hex(_ bytes: [UInt8]) -> String {
    var md5 = MD5()
    md5.update(bytes)
    return md5.hexDigest
}

/// Lower-case hexadecimal, two digits per byte.
func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
