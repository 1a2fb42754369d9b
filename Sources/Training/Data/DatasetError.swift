// DatasetError.swift: what can go wrong finding, reading or downloading a dataset, each
// with a message that names the file (or URL) and says what to do about it.

/// A dataset that cannot be found, read, downloaded or unpacked.
///
/// Every message names the file, folder or URL involved and says what to do, usually which
/// `cim-train data download` command to run.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// Neither the directory nor the variant's folder inside it (``CIFARVariant/folderName``)
    /// holds the variant's `.bin` files.
    case dataNotFound(directory: String, variant: CIFARVariant)
    /// The data folder was found, but one of the files a split needs is not in it.
    case fileMissing(path: String, variant: CIFARVariant)
    /// The file holds less than one record (it is empty, or was cut off early).
    case truncated(path: String, variant: CIFARVariant, size: Int, recordSize: Int)
    /// The file's size is not a whole number of records: it ends part-way through one.
    case partialRecord(path: String, variant: CIFARVariant, size: Int, recordSize: Int)
    /// A record's label byte is not below the number of classes (the fine label for
    /// CIFAR-100); `record` counts from 0.
    case labelOutOfRange(path: String, variant: CIFARVariant, record: Int, label: Int,
                         classes: Int)
    /// The operating system refused to read, write, create or rename something.
    case ioFailure(path: String, reason: String)
    /// The HTTP request failed: no connection, a timeout, or a status other than 2xx.
    case downloadFailed(url: String, reason: String)
    /// The downloaded archive's MD5 is not the expected one; nothing was unpacked.
    case checksumMismatch(url: String, expected: String, actual: String)
    /// `tar` could not unpack the (checksum-verified) archive; `reason` has tar's message.
    case unpackFailed(archive: String, reason: String)
    /// The archive unpacked, but does not hold the variant's folder and files.
    case unexpectedArchive(url: String, detail: String)
    /// An argument out of its domain (a negative image count, an MD5 that is not 32
    /// hexadecimal digits).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .dataNotFound(let directory, let variant):
            return "\(directory): no \(variant.displayName) data here: expected "
                + "\(variant.trainFiles[0]) in it or in \(directory)/\(variant.folderName); "
                + variant.downloadHint
        case .fileMissing(let path, let variant):
            return "\(path): no such file; the \(variant.displayName) folder is incomplete: "
                + variant.downloadHint
        case .truncated(let path, let variant, let size, let recordSize):
            return "\(path): the file is truncated: \(size) bytes is less than one "
                + "\(recordSize)-byte \(variant.displayName) record; " + variant.downloadHint
        case .partialRecord(let path, let variant, let size, let recordSize):
            return "\(path): \(size) bytes is not a whole number of \(recordSize)-byte "
                + "\(variant.displayName) records (\(size / recordSize) records and "
                + "\(size % recordSize) bytes over); the file is truncated or is not a "
                + "\(variant.displayName) binary file: " + variant.downloadHint
        case .labelOutOfRange(let path, let variant, let record, let label, let classes):
            let which = variant == .cifar100 ? "fine label" : "label"
            return "\(path): record \(record) has \(which) \(label), outside 0...\(classes - 1); "
                + "the file is corrupt or is not a \(variant.displayName) binary file: "
                + variant.downloadHint
        case .ioFailure(let path, let reason):
            return "\(path): \(reason)"
        case .downloadFailed(let url, let reason):
            return "download of \(url) failed: \(reason); check the network and the URL, "
                + "or download the archive elsewhere and unpack it yourself"
        case .checksumMismatch(let url, let expected, let actual):
            return "\(url): the downloaded archive has MD5 \(actual), expected \(expected); "
                + "it is damaged or is not the expected archive, so nothing was unpacked: "
                + "download again, or use another mirror (--url, and --md5 if that mirror "
                + "serves a different file)"
        case .unpackFailed(let archive, let reason):
            return "cannot unpack \(archive): \(reason); nothing was left in the target "
                + "directory: check free disk space and that tar is installed"
        case .unexpectedArchive(let url, let detail):
            return "\(url): \(detail); nothing was left in the target directory: check "
                + "that --url points at the right archive"
        case .invalidArgument(let message):
            return "invalid argument: \(message)"
        }
    }
}
