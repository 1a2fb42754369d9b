// DatasetDownload.swift: `cim-train data download`: fetch a CIFAR archive, check its MD5,
// and unpack it so that nothing unverified or half-unpacked is ever left in the target.
//
// Steps, each a point where a failure leaves the target directory DIR as it was:
//   1. Download the archive over HTTP(S) to a temporary file outside DIR (in the system
//      temporary directory); a non-2xx status or a transport error is downloadFailed.
//   2. Compute its MD5 (MD5.swift) and compare it with the expected one (the official sum,
//      or --md5); a mismatch is checksumMismatch and the file is deleted unread.
//   3. Unpack with `tar -xzf ARCHIVE -C DIR/.cim-train-unpack-<uuid> --no-same-owner` into
//      a staging folder inside DIR (the same file system, so step 5 is a rename); a tar
//      failure is unpackFailed, carrying tar's message.
//   4. Check the staging folder holds the variant's folder with every .bin file, each a
//      whole number of records (CIFAR.swift); if not, unexpectedArchive.
//   5. Rename the folder into place as DIR/<folderName>. An earlier copy there is first
//      renamed aside and deleted only once the new one is in place.
// The staging folder and the temporary archive are removed on every path out.
//
// Why URLSession (FoundationNetworking) rather than running `curl`: it ships with the Swift
// toolchain, so the package keeps its "nothing outside the toolchain" rule and needs no curl
// binary; it reports the byte count and the Content-Length as it goes, which the one-line
// progress display needs; and it returns the HTTP status and transport errors as values, not
// as an exit code and stderr to parse. On Linux it is libcurl underneath anyway (with the
// system's CA certificates). The delegate's callbacks run on URLSession's own queue; they
// only record counts under a lock, and the calling thread polls them ten times a second and
// calls `progress`, so the callback runs on the caller's thread and needs no Sendable.

import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Downloading and unpacking the CIFAR archives.
public enum DatasetDownload {
    /// Seconds without any data before a download is abandoned.
    public static let idleTimeout: TimeInterval = 60

    /// Downloads `variant`'s archive, verifies its MD5 and unpacks it into `directory`.
    ///
    /// ```swift
    /// let folder = try DatasetDownload.download(.cifar10, to: "data")
    /// // folder == "data/cifar-10-batches-bin"
    /// let train = try CIFAR.load(.cifar10, directory: "data", split: .train)
    /// ```
    ///
    /// The archive goes to a temporary file first and is unpacked only after its checksum
    /// matches; a failure at any step leaves `directory` without partial data (an earlier
    /// download stays as it was). A successful run replaces an earlier download.
    ///
    /// - Parameters:
    ///   - variant: which dataset.
    ///   - directory: where the variant's folder (``CIFARVariant/folderName``) is put;
    ///     created if needed.
    ///   - url: another address for the archive (a mirror); default ``CIFARVariant/archiveURL``.
    ///   - md5: the expected MD5, 32 hexadecimal digits; default ``CIFARVariant/archiveMD5``
    ///     (also for a mirror of the official file).
    ///   - progress: called on the calling thread with the bytes received so far and the
    ///     total when the server gave one, about ten times a second and once at the end of
    ///     a successful transfer (before the checksum and unpacking, which take a few
    ///     seconds for the real archives).
    /// - Returns: the folder holding the `.bin` files.
    /// - Throws: ``DatasetError`` naming the URL or path: `downloadFailed`,
    ///   `checksumMismatch`, `unpackFailed`, `unexpectedArchive`, `ioFailure` or
    ///   `invalidArgument`.
    public static func download(
        _ variant: CIFARVariant, to directory: String, url: String? = nil, md5: String? = nil,
        progress: ((Int64, Int64?) -> Void)? = nil
    ) throws -> String {
        let source = url ?? variant.archiveURL
        let expected = (md5 ?? variant.archiveMD5).lowercased()
        guard expected.count == 32, expected.allSatisfy({ $0.isHexDigit }) else {
            throw DatasetError.invalidArgument(
                "MD5 '\(md5 ?? "")' is not 32 hexadecimal digits")
        }
        guard let remote = URL(string: source),
              let scheme = remote.scheme?.lowercased(), ["http", "https"].contains(scheme)
        else {
            throw DatasetError.invalidArgument("'\(source)' is not an http or https URL")
        }
        let manager = FileManager.default
        do {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw DatasetError.ioFailure(path: directory, reason: "cannot create: \(error)")
        }

        // 1. Download to a temporary file outside the target.
        let archive = NSTemporaryDirectory() + "/cim-train-\(UUID().uuidString).tar.gz"
        defer { try? manager.removeItem(atPath: archive) }
        try fetch(remote, to: archive, progress: progress)

        // 2. Verify.
        let actual = try MD5.hexDigest(ofFile: archive)
        guard actual == expected else {
            throw DatasetError.checksumMismatch(url: source, expected: expected, actual: actual)
        }

        // 3. Unpack into a staging folder inside the target.
        let staging = directory + "/.cim-train-unpack-\(UUID().uuidString)"
        do {
            try manager.createDirectory(atPath: staging, withIntermediateDirectories: false)
        } catch {
            throw DatasetError.ioFailure(path: staging, reason: "cannot create: \(error)")
        }
        defer { try? manager.removeItem(atPath: staging) }
        try untar(archive, into: staging, source: source)

        // 4. Check what came out.
        let unpacked = staging + "/" + variant.folderName
        for name in variant.files(.train) + variant.files(.test) {
            let path = unpacked + "/" + name
            let attributes = try? manager.attributesOfItem(atPath: path)
            guard let size = (attributes?[.size] as? NSNumber)?.intValue,
                  attributes?[.type] as? FileAttributeType == .typeRegular
            else {
                throw DatasetError.unexpectedArchive(
                    url: source, detail: "the archive has no \(variant.folderName)/\(name)")
            }
            guard size >= variant.recordSize, size % variant.recordSize == 0 else {
                throw DatasetError.unexpectedArchive(
                    url: source,
                    detail: "\(variant.folderName)/\(name) in the archive has \(size) bytes, "
                        + "not a whole number of \(variant.recordSize)-byte "
                        + "\(variant.displayName) records")
            }
        }

        // 5. Move into place, replacing an earlier copy only once the new one is there.
        let target = directory + "/" + variant.folderName
        var aside: String? = nil
        if manager.fileExists(atPath: target) {
            let old = directory + "/.cim-train-old-\(UUID().uuidString)"
            do {
                try manager.moveItem(atPath: target, toPath: old)
            } catch {
                throw DatasetError.ioFailure(path: target, reason: "cannot replace: \(error)")
            }
            aside = old
        }
        do {
            try manager.moveItem(atPath: unpacked, toPath: target)
        } catch {
            if let aside { try? manager.moveItem(atPath: aside, toPath: target) }
            throw DatasetError.ioFailure(path: target, reason: "cannot move into place: \(error)")
        }
        if let aside { try? manager.removeItem(atPath: aside) }
        return target
    }

    // MARK: - HTTP

    /// Downloads `remote` to the file `destination`, reporting progress on this thread.
    private static func fetch(_ remote: URL, to destination: String,
                              progress: ((Int64, Int64?) -> Void)?) throws {
        let state = DownloadState(destination: destination)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = idleTimeout
        let session = URLSession(configuration: configuration, delegate: state,
                                 delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.downloadTask(with: remote).resume()

        var reported: Int64 = -1
        var finished = false
        while !finished {
            finished = state.done.wait(timeout: .now() + 0.1) == .success
            let (received, total) = state.counts()
            // No final report for a failed download (an HTTP error page, say).
            if let progress, received != reported || finished,
               !(finished && state.failure() != nil) {
                progress(received, total)
                reported = received
            }
        }
        if let failure = state.failure() {
            throw failure
        }
    }

    /// The URLSession delegate: counts bytes, checks the status, keeps the file.
    private final class DownloadState: NSObject, URLSessionDownloadDelegate,
        @unchecked Sendable
    {
        // @unchecked: every mutable field is guarded by `lock`.
        let destination: String
        let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var received: Int64 = 0
        private var total: Int64? = nil
        private var error: DatasetError? = nil
        private var kept = false

        init(destination: String) { self.destination = destination }

        func counts() -> (Int64, Int64?) {
            lock.lock()
            defer { lock.unlock() }
            return (received, total)
        }

        func failure() -> DatasetError? {
            lock.lock()
            defer { lock.unlock() }
            return error
        }

        private func fail(_ failure: DatasetError) {
            lock.lock()
            if error == nil { error = failure }
            lock.unlock()
        }

        /// The reason the response is not a success, or nil.
        private static func statusProblem(_ task: URLSessionTask) -> String? {
            guard let response = task.response as? HTTPURLResponse else { return nil }
            guard !(200..<300).contains(response.statusCode) else { return nil }
            return "HTTP status \(response.statusCode) "
                + HTTPURLResponse.localizedString(forStatusCode: response.statusCode)
        }

        private static func address(_ task: URLSessionTask) -> String {
            task.originalRequest?.url?.absoluteString ?? "?"
        }

        func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask,
                        didWriteData bytesWritten: Int64, totalBytesWritten: Int64,
                        totalBytesExpectedToWrite: Int64) {
            lock.lock()
            received = totalBytesWritten
            total = totalBytesExpectedToWrite > 0 ? totalBytesExpectedToWrite : nil
            lock.unlock()
        }

        func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask,
                        didFinishDownloadingTo location: URL) {
            // The file at `location` is deleted when this returns: move it now.
            if let problem = Self.statusProblem(downloadTask) {
                fail(.downloadFailed(url: Self.address(downloadTask), reason: problem))
                return
            }
            do {
                try? FileManager.default.removeItem(atPath: destination)
                try FileManager.default.moveItem(atPath: location.path, toPath: destination)
                lock.lock()
                kept = true
                lock.unlock()
            } catch {
                fail(.ioFailure(path: destination, reason: "cannot keep the download: \(error)"))
            }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask,
                        didCompleteWithError error: Error?) {
            if let error {
                fail(.downloadFailed(url: Self.address(task), reason: error.localizedDescription))
            } else if let problem = Self.statusProblem(task) {
                fail(.downloadFailed(url: Self.address(task), reason: problem))
            }
            lock.lock()
            let missing = !kept
            lock.unlock()
            if missing {
                fail(.downloadFailed(url: Self.address(task), reason: "no data was received"))
            }
            done.signal()
        }
    }

    // MARK: - tar

    /// Runs `tar -xzf archive -C folder`; a failure carries tar's own message.
    private static func untar(_ archive: String, into folder: String, source: String) throws {
        let manager = FileManager.default
        let tar = ["/bin/tar", "/usr/bin/tar"].first { manager.isExecutableFile(atPath: $0) }
        guard let tar else {
            throw DatasetError.unpackFailed(archive: source,
                                            reason: "no tar program at /bin/tar or /usr/bin/tar")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tar)
        process.arguments = ["-xzf", archive, "-C", folder, "--no-same-owner"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw DatasetError.unpackFailed(archive: source, reason: "cannot run \(tar): \(error)")
        }
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let text = String(decoding: message, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
                .split(separator: "\n").suffix(3).joined(separator: " / ")
            throw DatasetError.unpackFailed(
                archive: source,
                reason: "\(tar) exited with status \(process.terminationStatus)"
                    + (text.isEmpty ? "" : ": \(text)"))
        }
    }
}
