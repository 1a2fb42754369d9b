// DownloadTests.swift: MD5 (RFC 1321 test vectors) and `DatasetDownload` end to end against
// a local HTTP server.
//
// There is no internet on CI, so each test builds small fake CIFAR archives with /bin/tar,
// serves them with `python3 -m http.server` bound to 127.0.0.1 on a free port (skipped, with
// a message, when python3 is not installed), and downloads them: a good archive unpacks and
// loads; a corrupted one fails its checksum and leaves the target directory as it was (empty,
// or holding an earlier good download); a missing URL (404), a dead server, an archive tar
// cannot read and an archive of the wrong dataset each fail with a clear error and leave no
// staging folder behind.

import Foundation
import Training
import XCTest

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - MD5

final class MD5Tests: XCTestCase {
    /// RFC 1321, appendix A.5.
    func testRFC1321Vectors() {
        let vectors = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
             "d174ab98d277d9f5a5611c2c9f419d9f"),
            ("1234567890123456789012345678901234567890"
                + "1234567890123456789012345678901234567890",
             "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for (message, digest) in vectors {
            XCTAssertEqual(md5Hex(Array(message.utf8)), digest, "MD5(\"\(message)\")")
        }
        // The widely published one-million-'a' vector.
        XCTAssertEqual(md5Hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "7707d6ae4e027c70eea2a935c2296f21")
    }

    /// Feeding the same bytes in pieces of any size gives the same digest, also across the
    /// padding boundaries (55, 56 and 64 bytes mod 64).
    func testStreamingMatchesOneShot() throws {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 7) }
        for length in [55, 56, 57, 63, 64, 65, 119, 120, 128, 1000] {
            let whole = md5Hex(Array(bytes.prefix(length)))
            for piece in [1, 3, 17, 64, 100] {
                var md5 = MD5()
                var start = 0
                while start < length {
                    let end = min(start + piece, length)
                    md5.update(Array(bytes[start..<end]))
                    start = end
                }
                XCTAssertEqual(md5.hexDigest, whole, "length \(length) in pieces of \(piece)")
            }
        }
        let path = NSTemporaryDirectory() + "md5-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(Array("message digest".utf8)).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try MD5.hexDigest(ofFile: path), "f96b697d7cb7938d525a2f31aaf161d0")
        XCTAssertThrowsError(try MD5.hexDigest(ofFile: path + "-missing"))
    }
}

// MARK: - Download round trips

final class DownloadTests: XCTestCase {
    private var root = ""
    private var served = ""
    private var target = ""
    private var server: Process?
    private var base = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "download-tests-\(UUID().uuidString)"
        served = root + "/served"
        target = root + "/data"
        try FileManager.default.createDirectory(atPath: served,
                                                withIntermediateDirectories: true)
        guard let python = Self.findExecutable("python3") else {
            throw XCTSkip("python3 not found on PATH: the download tests need "
                          + "`python3 -m http.server` as a local HTTP server")
        }
        let port = try Self.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "http.server", "--bind", "127.0.0.1", String(port),
                             "--directory", served]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        server = process
        base = "http://127.0.0.1:\(port)"
        try Self.waitUntilListening(port: port, process: process)
    }

    override func tearDownWithError() throws {
        if let server, server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        server = nil
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: Helpers

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A TCP port nobody listens on: bind port 0 on 127.0.0.1, read what the kernel chose.
    private static func freePort() throws -> Int {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw XCTSkip("cannot create a socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0
                    && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw XCTSkip("cannot bind a socket on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Polls until something accepts connections on the port (the server is up), for at
    /// most 10 s.
    private static func waitUntilListening(port: Int, process: Process) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            guard process.isRunning else {
                throw XCTSkip("python3 -m http.server exited at once (status "
                              + "\(process.terminationStatus)); cannot run the download tests")
            }
            #if canImport(Glibc)
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
                let fd = socket(AF_INET, SOCK_STREAM, 0)
            #endif
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(fd)
            if connected { return }
            usleep(50_000)
        }
        XCTFail("the local HTTP server did not start listening on port \(port) within 10 s")
    }

    /// Builds `name` in the served folder: the variant's folder of fake files, tarred and
    /// gzipped by /bin/tar; returns the archive's bytes.
    @discardableResult
    private func makeArchive(_ variant: CIFARVariant, name: String) throws -> [UInt8] {
        let staging = root + "/staging-\(UUID().uuidString)"
        try FakeCIFAR.write(variant, into: staging)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-czf", served + "/" + name, "-C", staging, variant.folderName]
        try tar.run()
        tar.waitUntilExit()
        XCTAssertEqual(tar.terminationStatus, 0, "tar -czf failed")
        try FileManager.default.removeItem(atPath: staging)
        return Array(try Data(contentsOf: URL(fileURLWithPath: served + "/" + name)))
    }

    private func serve(_ bytes: [UInt8], as name: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: served + "/" + name))
    }

    private func contents(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    // MARK: Tests

    func testGoodArchiveUnpacksAndLoads() throws {
        let archive = try makeArchive(.cifar10, name: "cifar-10-binary.tar.gz")
        var reports: [(Int64, Int64?)] = []
        let folder = try DatasetDownload.download(
            .cifar10, to: target, url: base + "/cifar-10-binary.tar.gz",
            md5: md5Hex(archive).uppercased()
        ) { reports.append(($0, $1)) }
        XCTAssertEqual(folder, target + "/cifar-10-batches-bin")
        XCTAssertEqual(contents(target), ["cifar-10-batches-bin"], "no staging folder left")
        XCTAssertEqual(contents(folder), ["data_batch_1.bin", "data_batch_2.bin",
                                          "data_batch_3.bin", "data_batch_4.bin",
                                          "data_batch_5.bin", "test_batch.bin"])
        XCTAssertEqual(reports.last?.0, Int64(archive.count), "the last report is the total")
        XCTAssertEqual(reports.last?.1, Int64(archive.count), "the server sends its length")

        let train = try CIFAR.load(.cifar10, directory: target, split: .train)
        XCTAssertEqual(train.count, 20)
        XCTAssertEqual(Array(train.image(3).prefix(3)),
                       (0..<3).map { FakeCIFAR.value(record: 3, channel: $0, position: 0) })
        XCTAssertEqual(try CIFAR.load(.cifar10, directory: folder, split: .test).count, 7)

        // Downloading again replaces the folder in full.
        try "stale".write(toFile: folder + "/stale.txt", atomically: true, encoding: .utf8)
        _ = try DatasetDownload.download(.cifar10, to: target,
                                         url: base + "/cifar-10-binary.tar.gz",
                                         md5: md5Hex(archive))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/stale.txt"))
        XCTAssertEqual(contents(target), ["cifar-10-batches-bin"])
    }

    func testCIFAR100ArchiveUnpacksAndLoads() throws {
        let archive = try makeArchive(.cifar100, name: "cifar-100-binary.tar.gz")
        let folder = try DatasetDownload.download(
            .cifar100, to: target, url: base + "/cifar-100-binary.tar.gz", md5: md5Hex(archive))
        XCTAssertEqual(folder, target + "/cifar-100-binary")
        let test = try CIFAR.load(.cifar100, directory: target, split: .test)
        XCTAssertEqual(test.count, 7)
        XCTAssertEqual(test.classes, 100)
    }

    func testCorruptedArchiveFailsItsChecksumAndLeavesNothing() throws {
        let archive = try makeArchive(.cifar10, name: "good.tar.gz")
        var corrupted = archive
        corrupted[corrupted.count / 2] ^= 0x40
        try serve(corrupted, as: "corrupted.tar.gz")
        let expected = md5Hex(archive)

        let error = assertThrowsDatasetError("corrupted archive", {
            try DatasetDownload.download(.cifar10, to: target,
                                         url: base + "/corrupted.tar.gz", md5: expected)
        }, where: {
            if case .checksumMismatch(_, expected, md5Hex(corrupted)) = $0 { return true }
            return false
        })
        let message = error?.description ?? ""
        XCTAssert(message.contains(base + "/corrupted.tar.gz"), message)
        XCTAssert(message.contains("nothing was unpacked"), message)
        XCTAssertEqual(contents(target), [], "no partial data in the target directory")

        // An earlier good download survives a failed one untouched.
        _ = try DatasetDownload.download(.cifar10, to: target, url: base + "/good.tar.gz",
                                         md5: expected)
        assertThrowsDatasetError("corrupted archive over a good copy", {
            try DatasetDownload.download(.cifar10, to: target,
                                         url: base + "/corrupted.tar.gz", md5: expected)
        }, where: {
            if case .checksumMismatch = $0 { return true }
            return false
        })
        XCTAssertEqual(contents(target), ["cifar-10-batches-bin"])
        XCTAssertEqual(try CIFAR.load(.cifar10, directory: target, split: .train).count, 20)

        // Without --md5 the official sum applies, which a fake archive cannot match.
        assertThrowsDatasetError("official checksum", {
            try DatasetDownload.download(.cifar10, to: target, url: base + "/good.tar.gz")
        }, where: {
            if case .checksumMismatch(_, CIFARVariant.cifar10.archiveMD5, _) = $0 { return true }
            return false
        })
    }

    func testMissingURLAndDeadServerAreClearErrors() throws {
        let url = base + "/no-such-archive.tar.gz"
        let error = assertThrowsDatasetError("404", {
            try DatasetDownload.download(.cifar10, to: target, url: url,
                                         md5: String(repeating: "0", count: 32))
        }, where: {
            if case .downloadFailed(url, _) = $0 { return true }
            return false
        })
        let message = error?.description ?? ""
        XCTAssert(message.contains("404"), message)
        XCTAssert(message.contains(url), message)
        XCTAssertEqual(contents(target), [])

        let deadURL = "http://127.0.0.1:\(try Self.freePort())/cifar-10-binary.tar.gz"
        assertThrowsDatasetError("no server", {
            try DatasetDownload.download(.cifar10, to: target, url: deadURL,
                                         md5: String(repeating: "0", count: 32))
        }, where: {
            if case .downloadFailed(deadURL, _) = $0 { return true }
            return false
        })
        XCTAssertEqual(contents(target), [])

        assertThrowsDatasetError("bad md5 option", {
            try DatasetDownload.download(.cifar10, to: target, url: url, md5: "abc")
        }, where: {
            if case .invalidArgument = $0 { return true }
            return false
        })
        assertThrowsDatasetError("not http", {
            try DatasetDownload.download(.cifar10, to: target, url: "ftp://example.com/a.tgz")
        }, where: {
            if case .invalidArgument = $0 { return true }
            return false
        })
    }

    func testUnreadableOrWrongArchiveLeavesNothing() throws {
        // Not a gzip file, but with a matching checksum: tar fails.
        let garbage = Array("this is not a tar.gz archive\n".utf8)
        try serve(garbage, as: "garbage.tar.gz")
        let error = assertThrowsDatasetError("tar failure", {
            try DatasetDownload.download(.cifar10, to: target, url: base + "/garbage.tar.gz",
                                         md5: md5Hex(garbage))
        }, where: {
            if case .unpackFailed = $0 { return true }
            return false
        })
        XCTAssert(error?.description.contains("tar exited with status") ?? false,
                  error?.description ?? "")
        XCTAssertEqual(contents(target), [])

        // A valid archive of the other dataset.
        let cifar100 = try makeArchive(.cifar100, name: "cifar-100-binary.tar.gz")
        let wrong = assertThrowsDatasetError("wrong dataset", {
            try DatasetDownload.download(.cifar10, to: target,
                                         url: base + "/cifar-100-binary.tar.gz",
                                         md5: md5Hex(cifar100))
        }, where: {
            if case .unexpectedArchive = $0 { return true }
            return false
        })
        XCTAssert(wrong?.description.contains("cifar-10-batches-bin/data_batch_1.bin") ?? false,
                  wrong?.description ?? "")
        XCTAssertEqual(contents(target), [])
    }
}
