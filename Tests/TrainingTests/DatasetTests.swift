// DatasetTests.swift: the CIFAR binary loader and the procedural shapes dataset
// (Sources/Training/Data/).
//
// CIFAR: small fake files in the real record layout (label bytes, then a CHW image whose
// bytes encode record, channel and position) are written by the test, loaded, and checked
// pixel by pixel against the HWC order; then one test per way a file can be wrong, each
// checking the error case and that the message names the file and the download command.
// Shapes: determinism, balance, and a nearest-class-mean classifier on colour-blind
// gradient features, which must beat chance (10 %) by a wide margin on the test split.

import Foundation
import Training
import XCTest

/// Writing CIFAR-format files and asserting on DatasetError, shared with DownloadTests.
enum FakeCIFAR {
    /// The CHW image byte of `record` at channel `c`, plane position `p`: distinct per
    /// channel and position, and shifted per record.
    static func value(record: Int, channel c: Int, position p: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: record &* 37 &+ c &* 85 &+ p &* 7 &+ p / 256)
    }

    /// Records `first ..< first + labels.count` of a file; for CIFAR-100 the coarse label
    /// is `fine / 5`.
    static func records(_ variant: CIFARVariant, labels: [Int], first: Int = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        for (offset, label) in labels.enumerated() {
            if variant == .cifar100 { bytes.append(UInt8(label / 5)) }
            bytes.append(UInt8(label))
            for c in 0..<3 {
                for p in 0..<1024 {
                    bytes.append(value(record: first + offset, channel: c, position: p))
                }
            }
        }
        return bytes
    }

    /// Labels of the fake files: file `f` of the split gets `f + 2` records.
    static func labels(_ variant: CIFARVariant, file: Int) -> [Int] {
        (0..<(file + 2)).map { (file * 3 + $0 * 7) % variant.classes }
    }

    /// Writes every file of `variant` into `directory/<folderName>`; returns the labels
    /// of each split in order.
    @discardableResult
    static func write(_ variant: CIFARVariant, into directory: String) throws
        -> [Split: [Int]]
    {
        let folder = directory + "/" + variant.folderName
        try FileManager.default.createDirectory(atPath: folder,
                                                withIntermediateDirectories: true)
        var result: [Split: [Int]] = [:]
        for split in Split.allCases {
            var all: [Int] = []
            for (index, name) in variant.files(split).enumerated() {
                let labels = labels(variant, file: index + (split == .test ? 5 : 0))
                let bytes = records(variant, labels: labels, first: all.count)
                try Data(bytes).write(to: URL(fileURLWithPath: folder + "/" + name))
                all += labels
            }
            result[split] = all
        }
        return result
    }
}

/// Fails unless `body` throws a DatasetError for which `matches` is true; returns it.
@discardableResult
func assertThrowsDatasetError<T>(
    _ label: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T, where matches: (DatasetError) -> Bool
) -> DatasetError? {
    do {
        _ = try body()
        XCTFail("\(label): expected a DatasetError, nothing was thrown", file: file, line: line)
    } catch let error as DatasetError {
        if matches(error) { return error }
        XCTFail("\(label): unexpected DatasetError \(error)", file: file, line: line)
    } catch {
        XCTFail("\(label): expected a DatasetError, got \(error)", file: file, line: line)
    }
    return nil
}

final class DatasetTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "dataset-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - CIFAR

    /// Every pixel of `dataset` is the CHW record's byte moved to HWC order.
    private func assertPixels(_ dataset: ImageDataset, file: StaticString = #filePath,
                              line: UInt = #line) {
        for record in 0..<dataset.count {
            let image = Array(dataset.image(record))
            XCTAssertEqual(image.count, 32 * 32 * 3, file: file, line: line)
            var mismatches = 0
            for y in 0..<32 {
                for x in 0..<32 {
                    for c in 0..<3 {
                        let expected = FakeCIFAR.value(record: record, channel: c,
                                                       position: y * 32 + x)
                        if image[(y * 32 + x) * 3 + c] != expected { mismatches += 1 }
                    }
                }
            }
            XCTAssertEqual(mismatches, 0, "image \(record): bytes not in HWC order",
                           file: file, line: line)
        }
    }

    func testCIFAR10LoadsFromTheFolderOrItsParent() throws {
        let labels = try FakeCIFAR.write(.cifar10, into: directory)
        let folder = directory + "/cifar-10-batches-bin"
        for given in [directory, folder, folder + "/"] {
            let train = try CIFAR.load(.cifar10, directory: given, split: .train)
            XCTAssertEqual(train.name, "cifar10")
            XCTAssertEqual(train.classes, 10)
            XCTAssertEqual([train.height, train.width], [32, 32])
            XCTAssertEqual(train.count, 2 + 3 + 4 + 5 + 6, "five files, concatenated in order")
            XCTAssertEqual(train.labels.map(Int.init), labels[.train])
            assertPixels(train)
        }
        let test = try CIFAR.load(.cifar10, directory: directory, split: .test)
        XCTAssertEqual(test.count, 7)
        XCTAssertEqual(test.labels.map(Int.init), labels[.test])
        assertPixels(test)
        XCTAssertEqual(try CIFAR.locate(.cifar10, directory: directory), folder)
    }

    func testCIFAR100UsesTheFineLabels() throws {
        let labels = try FakeCIFAR.write(.cifar100, into: directory)
        let train = try CIFAR.load(.cifar100, directory: directory, split: .train)
        XCTAssertEqual(train.name, "cifar100")
        XCTAssertEqual(train.classes, 100)
        XCTAssertEqual(train.count, 2)
        XCTAssertEqual(train.labels.map(Int.init), labels[.train])
        assertPixels(train)

        // Coarse and fine labels that differ, fine label 99 (the largest allowed).
        var bytes = FakeCIFAR.records(.cifar100, labels: [99, 42, 0])
        bytes[0] = 19
        bytes[3074] = 8
        let folder = directory + "/cifar-100-binary"
        try Data(bytes).write(to: URL(fileURLWithPath: folder + "/test.bin"))
        let test = try CIFAR.load(.cifar100, directory: folder, split: .test)
        XCTAssertEqual(test.labels, [99, 42, 0])
        assertPixels(test)
    }

    func testTruncatedFileIsAnErrorNamingTheFile() throws {
        try FakeCIFAR.write(.cifar10, into: directory)
        let path = directory + "/cifar-10-batches-bin/data_batch_3.bin"
        for size in [0, 100, 3072] {
            let bytes = FakeCIFAR.records(.cifar10, labels: [1])
            try Data(bytes.prefix(size)).write(to: URL(fileURLWithPath: path))
            let error = assertThrowsDatasetError("\(size) bytes", {
                try CIFAR.load(.cifar10, directory: directory, split: .train)
            }, where: {
                if case .truncated(path, .cifar10, size, 3073) = $0 { return true }
                return false
            })
            let message = error?.description ?? ""
            XCTAssert(message.contains(path), message)
            XCTAssert(message.contains("truncated"), message)
            XCTAssert(message.contains("cim-train data download cifar10 --to DIR"), message)
        }
    }

    func testSizeNotAWholeNumberOfRecordsIsAnError() throws {
        try FakeCIFAR.write(.cifar100, into: directory)
        let path = directory + "/cifar-100-binary/test.bin"
        let bytes = FakeCIFAR.records(.cifar100, labels: [1, 2]) + [0, 0, 0, 0, 0]
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = assertThrowsDatasetError("2 records + 5 bytes", {
            try CIFAR.load(.cifar100, directory: directory, split: .test)
        }, where: {
            if case .partialRecord(path, .cifar100, 2 * 3074 + 5, 3074) = $0 { return true }
            return false
        })
        let message = error?.description ?? ""
        XCTAssert(message.contains(path), message)
        XCTAssert(message.contains("2 records and 5 bytes over"), message)
        XCTAssert(message.contains("cim-train data download cifar100"), message)
        // The training split does not read test.bin.
        XCTAssertEqual(try CIFAR.load(.cifar100, directory: directory, split: .train).count, 2)
    }

    func testLabelOutOfRangeIsAnErrorNamingFileAndRecord() throws {
        try FakeCIFAR.write(.cifar10, into: directory)
        let path10 = directory + "/cifar-10-batches-bin/test_batch.bin"
        try Data(FakeCIFAR.records(.cifar10, labels: [9, 10, 3]))
            .write(to: URL(fileURLWithPath: path10))
        let error10 = assertThrowsDatasetError("CIFAR-10 label 10", {
            try CIFAR.load(.cifar10, directory: directory, split: .test)
        }, where: {
            if case .labelOutOfRange(path10, .cifar10, 1, 10, 10) = $0 { return true }
            return false
        })
        XCTAssert(error10?.description.contains(path10) ?? false)
        XCTAssert(error10?.description.contains("record 1 has label 10") ?? false)

        try FakeCIFAR.write(.cifar100, into: directory)
        let path100 = directory + "/cifar-100-binary/train.bin"
        // Coarse label 25 is out of range too, but only the fine label is checked.
        var bytes = FakeCIFAR.records(.cifar100, labels: [5, 100])
        bytes[0] = 25
        try Data(bytes).write(to: URL(fileURLWithPath: path100))
        let error100 = assertThrowsDatasetError("CIFAR-100 fine label 100", {
            try CIFAR.load(.cifar100, directory: directory, split: .train)
        }, where: {
            if case .labelOutOfRange(path100, .cifar100, 1, 100, 100) = $0 { return true }
            return false
        })
        XCTAssert(error100?.description.contains("fine label 100, outside 0...99") ?? false,
                  error100?.description ?? "")
    }

    func testMissingFileOrFolderIsAnError() throws {
        let nothing = assertThrowsDatasetError("empty directory", {
            try CIFAR.load(.cifar10, directory: directory, split: .train)
        }, where: {
            if case .dataNotFound(directory, .cifar10) = $0 { return true }
            return false
        })
        let message = nothing?.description ?? ""
        XCTAssert(message.contains(directory + "/cifar-10-batches-bin"), message)
        XCTAssert(message.contains("cim-train data download cifar10 --to DIR"), message)

        try FakeCIFAR.write(.cifar10, into: directory)
        let path = directory + "/cifar-10-batches-bin/data_batch_4.bin"
        try FileManager.default.removeItem(atPath: path)
        let missing = assertThrowsDatasetError("data_batch_4.bin removed", {
            try CIFAR.load(.cifar10, directory: directory, split: .train)
        }, where: {
            if case .fileMissing(path, .cifar10) = $0 { return true }
            return false
        })
        XCTAssert(missing?.description.contains(path) ?? false)
        XCTAssertEqual(try CIFAR.load(.cifar10, directory: directory, split: .test).count, 7)

        // A CIFAR-10 folder is not CIFAR-100 data.
        assertThrowsDatasetError("cifar100 in a cifar10 directory", {
            try CIFAR.load(.cifar100, directory: directory, split: .test)
        }, where: {
            if case .dataNotFound = $0 { return true }
            return false
        })
    }

    // MARK: - Procedural shapes

    func testShapesAreDeterministicPerSeed() {
        let a = ProceduralShapes.make(seed: 7, trainCount: 60, testCount: 30)
        let b = ProceduralShapes.make(seed: 7, trainCount: 60, testCount: 30)
        let c = ProceduralShapes.make(seed: 8, trainCount: 60, testCount: 30)
        XCTAssertEqual(a.train.pixels, b.train.pixels)
        XCTAssertEqual(a.train.labels, b.train.labels)
        XCTAssertEqual(a.test.pixels, b.test.pixels)
        XCTAssertEqual(a.test.labels, b.test.labels)
        XCTAssertNotEqual(a.train.pixels, c.train.pixels)
        XCTAssertNotEqual(a.test.pixels, c.test.pixels)
        XCTAssertNotEqual(a.train.pixels, a.test.pixels.prefix(a.train.pixels.count).map { $0 })

        // The test split does not depend on the size of the training split.
        let d = ProceduralShapes.make(seed: 7, trainCount: 10, testCount: 30)
        XCTAssertEqual(a.test.pixels, d.test.pixels)
        XCTAssertEqual(a.test.labels, d.test.labels)

        let empty = ProceduralShapes.make(seed: 7, trainCount: 0, testCount: 0)
        XCTAssertEqual(empty.train.count + empty.test.count, 0)
    }

    func testShapesAreBalancedAndVaried() {
        let (train, test) = ProceduralShapes.make(seed: 3, trainCount: 205, testCount: 100)
        XCTAssertEqual(ProceduralShapes.classNames.count, 10)
        for (dataset, count) in [(train, 205), (test, 100)] {
            XCTAssertEqual(dataset.name, "shapes")
            XCTAssertEqual(dataset.count, count)
            XCTAssertEqual(dataset.classes, 10)
            XCTAssertEqual(dataset.pixels.count, count * 32 * 32 * 3)
            var perClass = [Int](repeating: 0, count: 10)
            for label in dataset.labels { perClass[Int(label)] += 1 }
            XCTAssert(perClass.allSatisfy { $0 >= count / 10 && $0 <= count / 10 + 1 },
                      "class counts \(perClass)")
            XCTAssertNotEqual(Array(dataset.labels.prefix(10)).map(Int.init), Array(0..<10),
                              "labels are shuffled")
            for index in 0..<dataset.count {
                let image = dataset.image(index)
                XCTAssertGreaterThan(Set(image).count, 20, "image \(index) is nearly constant")
                // Foreground and background both present: a spread of luma values.
                let luma = lumaImage(image)
                let spread = luma.max()! - luma.min()!
                XCTAssertGreaterThan(spread, 50, "image \(index) has no contrast")
            }
        }
    }

    /// A nearest-class-mean classifier on colour-blind features must beat chance (10 %)
    /// by far on the test split: the classes are told apart by shape and texture.
    func testShapesClassesAreDistinguishable() {
        let (train, test) = ProceduralShapes.make(seed: 11, trainCount: 1000, testCount: 500)
        let trainFeatures = (0..<train.count).map { features(train.image($0)) }
        let testFeatures = (0..<test.count).map { features(test.image($0)) }
        let dimension = trainFeatures[0].count

        // Standardise each feature with the training statistics.
        var mean = [Double](repeating: 0, count: dimension)
        var scale = [Double](repeating: 0, count: dimension)
        for f in trainFeatures { for k in 0..<dimension { mean[k] += f[k] / 1000 } }
        for f in trainFeatures {
            for k in 0..<dimension { scale[k] += (f[k] - mean[k]) * (f[k] - mean[k]) / 1000 }
        }
        scale = scale.map { max($0.squareRoot(), 1e-9) }
        func standard(_ f: [Double]) -> [Double] {
            (0..<dimension).map { (f[$0] - mean[$0]) / scale[$0] }
        }

        var centroids = [[Double]](repeating: [Double](repeating: 0, count: dimension),
                                   count: 10)
        var counts = [Double](repeating: 0, count: 10)
        for (f, label) in zip(trainFeatures, train.labels) {
            let z = standard(f)
            counts[Int(label)] += 1
            for k in 0..<dimension { centroids[Int(label)][k] += z[k] }
        }
        for c in 0..<10 { centroids[c] = centroids[c].map { $0 / counts[c] } }

        var correct = 0
        var perClass = [Int](repeating: 0, count: 10)
        for (f, label) in zip(testFeatures, test.labels) {
            let z = standard(f)
            let distances = centroids.map { centroid in
                zip(z, centroid).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            }
            let guess = distances.indices.min { distances[$0] < distances[$1] }!
            if guess == Int(label) {
                correct += 1
                perClass[guess] += 1
            }
        }
        let accuracy = Double(correct) / Double(test.count)
        print("shapes: nearest-class-mean accuracy \(accuracy), correct per class \(perClass)")
        XCTAssertGreaterThan(accuracy, 0.5, "correct per class: \(perClass)")
    }

    /// Luma per pixel (ITU-R 601 weights).
    private func lumaImage(_ image: ArraySlice<UInt8>) -> [Double] {
        let bytes = Array(image)
        return (0..<(bytes.count / 3)).map { (p: Int) -> Double in
            let red = 0.299 * Double(bytes[3 * p])
            let green = 0.587 * Double(bytes[3 * p + 1])
            return red + green + 0.114 * Double(bytes[3 * p + 2])
        }
    }

    /// Colour-blind features of one image: an 8-bin histogram of gradient orientation (mod
    /// 180 degrees, weighted by magnitude), the same sorted (rotation-blind), the fraction
    /// of strong edges, and the share of edge energy in the central 16x16 pixels.
    private func features(_ image: ArraySlice<UInt8>) -> [Double] {
        let luma = lumaImage(image)
        var histogram = [Double](repeating: 0, count: 8)
        var magnitudes: [Double] = []
        var centre = 0.0
        for y in 0..<31 {
            for x in 0..<31 {
                let gx = luma[y * 32 + x + 1] - luma[y * 32 + x]
                let gy = luma[(y + 1) * 32 + x] - luma[y * 32 + x]
                let magnitude = (gx * gx + gy * gy).squareRoot()
                var angle = atan2(gy, gx)
                if angle < 0 { angle += .pi }
                histogram[min(Int(angle / .pi * 8), 7)] += magnitude
                magnitudes.append(magnitude)
                if (8..<24).contains(x) && (8..<24).contains(y) { centre += magnitude }
            }
        }
        let total = max(magnitudes.reduce(0, +), 1e-9)
        histogram = histogram.map { $0 / total }
        let threshold = 0.25 * magnitudes.max()!
        let strong = Double(magnitudes.filter { $0 > threshold }.count)
            / Double(magnitudes.count)
        return histogram + histogram.sorted(by: >) + [strong, centre / total]
    }
}
