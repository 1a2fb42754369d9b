// CIFAR.swift: CIFAR-10 and CIFAR-100 read from the binary files their authors distribute
// (https://www.cs.toronto.edu/~kriz/cifar.html), validated on load.
//
// Files (each split is the concatenation of its files, in this order):
//   CIFAR-10, folder cifar-10-batches-bin/:
//     train = data_batch_1.bin ... data_batch_5.bin (10,000 images each), test = test_batch.bin
//   CIFAR-100, folder cifar-100-binary/:
//     train = train.bin (50,000 images), test = test.bin (10,000 images)
//
// Record layout (no header; a file is records back to back):
//   CIFAR-10:  [label: 1 byte, 0...9] [image: 3072 bytes]                    3073 bytes
//   CIFAR-100: [coarse label: 1 byte, 0...19] [fine label: 1 byte, 0...99]
//              [image: 3072 bytes]                                            3074 bytes
// The image is channel-major (CHW): 1024 red bytes, then 1024 green, then 1024 blue, each
// plane the 32x32 image row-major. Loading reorders it to HWC (ImageDataset.swift):
//   hwc[(y * 32 + x) * 3 + c] = chw[c * 1024 + y * 32 + x]
// CIFAR-100 uses the fine labels (100 classes), as torchvision's CIFAR100 does.
//
// Validation: a missing file, a file shorter than one record, a size that is not a whole
// number of records and a label out of range each throw a DatasetError naming the file and
// the download command. The number of records is not checked against the official counts,
// so subsets (and the tests' few-record files) load too.
//
// The --data-dir of the command line may name the folder holding the .bin files or its
// parent (where `cim-train data download` unpacks the archive): locate(_:directory:)
// accepts both.

import Foundation

/// The two CIFAR datasets: what their files are called and where the archives come from.
public enum CIFARVariant: String, Sendable, CaseIterable {
    /// 10 classes, 50,000 training and 10,000 test images.
    case cifar10
    /// 100 (fine) classes, 50,000 training and 10,000 test images.
    case cifar100

    /// "CIFAR-10" or "CIFAR-100".
    public var displayName: String { self == .cifar10 ? "CIFAR-10" : "CIFAR-100" }

    /// The number of classes: 10, or 100 (CIFAR-100's fine labels).
    public var classes: Int { self == .cifar10 ? 10 : 100 }

    /// The folder the official archive unpacks to.
    public var folderName: String {
        self == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary"
    }

    /// The files of a split, in the order their records are concatenated.
    public func files(_ split: Split) -> [String] {
        split == .train ? trainFiles : testFiles
    }

    var trainFiles: [String] {
        self == .cifar10 ? (1...5).map { "data_batch_\($0).bin" } : ["train.bin"]
    }

    var testFiles: [String] { self == .cifar10 ? ["test_batch.bin"] : ["test.bin"] }

    /// Label bytes before each image: 1 (CIFAR-10), or 2 (CIFAR-100: coarse, then fine).
    public var labelBytes: Int { self == .cifar10 ? 1 : 2 }

    /// Bytes per record: the label bytes and the 3072-byte image.
    public var recordSize: Int { labelBytes + 3 * 32 * 32 }

    /// The official archive of the binary version.
    public var archiveURL: String {
        self == .cifar10
            ? "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
            : "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
    }

    /// The MD5 of ``archiveURL`` published on the CIFAR page (and used by torchvision).
    public var archiveMD5: String {
        self == .cifar10 ? "c32a1d4ab5d03f1284b67883e8d87530" : "03b5dce01913d631647c71ecec9e9cb8"
    }

    /// What to run to get the files, for error messages.
    var downloadHint: String {
        "run `cim-train data download \(rawValue) --to DIR` and pass DIR as --data-dir"
    }
}

/// Loading CIFAR-10 and CIFAR-100 from their binary distribution.
public enum CIFAR {
    /// The side of every CIFAR image, in pixels.
    public static let imageSide = 32

    /// The folder holding `variant`'s `.bin` files: `directory` itself when a file of the
    /// variant is in it, else `directory/<folderName>` when that folder exists.
    ///
    /// - Throws: ``DatasetError/dataNotFound(directory:variant:)`` when neither holds the
    ///   data.
    public static func locate(_ variant: CIFARVariant, directory: String) throws -> String {
        let manager = FileManager.default
        let base = directory.count > 1 && directory.hasSuffix("/")
            ? String(directory.dropLast()) : directory
        let names = variant.trainFiles + variant.testFiles
        if names.contains(where: { manager.fileExists(atPath: base + "/" + $0) }) {
            return base
        }
        let folder = base + "/" + variant.folderName
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue {
            return folder
        }
        throw DatasetError.dataNotFound(directory: base, variant: variant)
    }

    /// One split of CIFAR-10 or CIFAR-100, every file validated.
    ///
    /// ```swift
    /// let train = try CIFAR.load(.cifar10, directory: "data", split: .train)
    /// train.count    // 50000
    /// train.classes  // 10
    /// ```
    ///
    /// - Parameters:
    ///   - variant: ``CIFARVariant/cifar10`` or ``CIFARVariant/cifar100`` (fine labels).
    ///   - directory: the folder holding the `.bin` files, or its parent.
    ///   - split: ``Split/train`` (all training files, concatenated) or ``Split/test``.
    /// - Returns: the images as HWC bytes, named "cifar10" or "cifar100".
    /// - Throws: ``DatasetError`` naming the file when the data is not found, a file is
    ///   missing, shorter than one record, not a whole number of records, or holds a label
    ///   out of range.
    public static func load(_ variant: CIFARVariant, directory: String, split: Split) throws
        -> ImageDataset
    {
        let folder = try locate(variant, directory: directory)
        let paths = variant.files(split).map { folder + "/" + $0 }
        let recordSize = variant.recordSize

        // Check every file's size before reading any, so a bad last file fails at once.
        var recordCounts: [Int] = []
        for path in paths {
            let size = try fileSize(path, variant: variant)
            try checkSize(size, path: path, variant: variant)
            recordCounts.append(size / recordSize)
        }

        let total = recordCounts.reduce(0, +)
        let imageBytes = 3 * imageSide * imageSide
        var pixels = [UInt8](repeating: 0, count: total * imageBytes)
        var labels = [Int32](repeating: 0, count: total)
        var first = 0
        for (path, records) in zip(paths, recordCounts) {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw DatasetError.ioFailure(path: path, reason: "cannot read: \(error)")
            }
            // The file may have changed since its size was taken.
            try checkSize(data.count, path: path, variant: variant)
            guard data.count == records * recordSize else {
                throw DatasetError.ioFailure(path: path, reason: "the file changed while read")
            }
            try data.withUnsafeBytes { raw in
                try pixels.withUnsafeMutableBufferPointer { pixelBuffer in
                    try labels.withUnsafeMutableBufferPointer { labelBuffer in
                        try decode(raw, path: path, variant: variant,
                                   pixels: pixelBuffer, labels: labelBuffer, first: first)
                    }
                }
            }
            first += records
        }
        return ImageDataset(name: variant.rawValue, height: imageSide, width: imageSide,
                            classes: variant.classes, pixels: pixels, labels: labels)
    }

    // MARK: - Internals

    private static func fileSize(_ path: String, variant: CIFARVariant) throws -> Int {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
              !isDirectory.boolValue
        else {
            throw DatasetError.fileMissing(path: path, variant: variant)
        }
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            guard let size = (attributes[.size] as? NSNumber)?.intValue else {
                throw DatasetError.ioFailure(path: path, reason: "the file has no size")
            }
            return size
        } catch let error as DatasetError {
            throw error
        } catch {
            throw DatasetError.ioFailure(path: path, reason: "cannot read: \(error)")
        }
    }

    /// At least one record, and a whole number of them.
    static func checkSize(_ size: Int, path: String, variant: CIFARVariant) throws {
        let recordSize = variant.recordSize
        if size < recordSize {
            throw DatasetError.truncated(path: path, variant: variant, size: size,
                                         recordSize: recordSize)
        }
        if size % recordSize != 0 {
            throw DatasetError.partialRecord(path: path, variant: variant, size: size,
                                             recordSize: recordSize)
        }
    }

    /// Decodes the records of one file into images `first ..< first + records`: the last
    /// label byte (the fine label for CIFAR-100) checked and stored, the CHW image
    /// transposed to HWC.
    private static func decode(
        _ raw: UnsafeRawBufferPointer, path: String, variant: CIFARVariant,
        pixels: UnsafeMutableBufferPointer<UInt8>, labels: UnsafeMutableBufferPointer<Int32>,
        first: Int
    ) throws {
        let recordSize = variant.recordSize
        let plane = imageSide * imageSide
        let records = raw.count / recordSize
        for record in 0..<records {
            let start = record * recordSize
            let label = Int(raw[start + variant.labelBytes - 1])
            guard label < variant.classes else {
                throw DatasetError.labelOutOfRange(path: path, variant: variant, record: record,
                                                   label: label, classes: variant.classes)
            }
            labels[first + record] = Int32(label)
            let chw = start + variant.labelBytes
            let hwc = (first + record) * 3 * plane
            for p in 0..<plane {
                pixels[hwc + 3 * p] = raw[chw + p]
                pixels[hwc + 3 * p + 1] = raw[chw + plane + p]
                pixels[hwc + 3 * p + 2] = raw[chw + 2 * plane + p]
            }
        }
    }
}
