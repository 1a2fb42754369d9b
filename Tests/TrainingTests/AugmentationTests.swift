// AugmentationTests.swift: the image operations and random views of
// Sources/Training/Data/Augmentation.swift against Pillow / torchvision.
//
// Every expected pixel below was produced by the reference's pinned Pillow 9.1.1, through the
// calls torchvision 0.12's PIL backend makes, on the same deterministic test images
// (testImage: a 31-bit LCG both sides compute). Regenerate the block between the GENERATED
// markers with (Python 3.10, `pip install pillow==9.1.1 numpy`; CI only reads the literals)
//     python scripts/make_augmentation_expectations.py \
//         --update Tests/TrainingTests/AugmentationTests.swift
// The ops are bit-exact ports, so the checks demand equal bytes. 32×32 outputs are checked
// through an FNV-1a hash plus their first row, which shows where a mismatch starts. (Pillow
// 13 differs from 9.1.1 only in some two-axis resizes: it picks the order of the passes by
// cost, where 9.1.1 always resamples horizontally first, as torchvision 0.12 saw it.)
//
// The random parts are checked by their distributions: RandomResizedCrop bounds and fallback,
// and the frequency of every random choice over many draws, within 5 binomial standard
// deviations. testPillowParityFromFile is an opt-in, larger comparison (many random crops,
// factors and sigmas on images up to 96×128) that prints the match rate per operation:
//     python scripts/make_augmentation_expectations.py --parity /tmp/augparity
//     CIM_AUGMENTATION_PARITY=/tmp/augparity swift test --filter testPillowParityFromFile

import Backend
import Foundation
import Training
import XCTest

// MARK: - Helpers

/// The generator script's test image: byte i of H×W×3 is (s_i >> 16) & 255 with
/// s_i = (s_{i−1}·1103515245 + 12345) mod 2^31, s_0 = seed. Image A (5×7, seed 1) gets a
/// first row of black, white, red, green, blue, grey 128 and yellow.
private func testImage(height: Int, width: Int, seed: UInt64) -> RGBImage {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: height * width * 3)
    for i in bytes.indices {
        state = (state &* 1_103_515_245 &+ 12345) & 0x7FFF_FFFF
        bytes[i] = UInt8((state >> 16) & 0xFF)
    }
    if height == 5 && width == 7 && seed == 1 {
        let row: [UInt8] = [0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255,
                            128, 128, 128, 255, 255, 0]
        bytes.replaceSubrange(0..<21, with: row)
    }
    return RGBImage(height: height, width: width, pixels: bytes)
}

private func hexBytes(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

private func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes {
        hash ^= UInt64(b)
        hash = hash &* 0x0000_0100_0000_01B3
    }
    return hash
}

/// Bytes equal, or a message with the number of differing bytes, the first one and the
/// largest difference.
private func assertPixels(_ actual: RGBImage, _ expected: [UInt8], height: Int, width: Int,
                  _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.height, height, "\(label): height", file: file, line: line)
    XCTAssertEqual(actual.width, width, "\(label): width", file: file, line: line)
    guard actual.pixels.count == expected.count else {
        XCTFail("\(label): \(actual.pixels.count) bytes, expected \(expected.count)",
                file: file, line: line)
        return
    }
    let differing = zip(actual.pixels, expected).enumerated()
        .filter { $0.element.0 != $0.element.1 }
    if let first = differing.first {
        let largest = differing.map { abs(Int($0.element.0) - Int($0.element.1)) }.max()!
        XCTFail("\(label): \(differing.count) of \(expected.count) bytes differ (largest "
                + "\(largest)); first at \(first.offset): \(first.element.0) vs "
                + "\(first.element.1)", file: file, line: line)
    }
}

private func assertHash(_ actual: RGBImage, _ hash: UInt64, firstRow: [UInt8], _ label: String,
                file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Array(actual.pixels.prefix(firstRow.count)), firstRow,
                   "\(label): first row", file: file, line: line)
    XCTAssertEqual(fnv1a(actual.pixels), hash, "\(label): FNV-1a of all bytes",
                   file: file, line: line)
}

/// Passes when `count` successes of `trials` lie within 5 standard deviations of p.
private func assertFrequency(_ count: Int, of trials: Int, is p: Double, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
    let observed = Double(count) / Double(trials)
    let sigma = (p * (1 - p) / Double(trials)).squareRoot()
    if p == 0 || p == 1 {
        XCTAssertEqual(observed, p, "\(label)", file: file, line: line)
    } else {
        XCTAssertLessThanOrEqual(abs(observed - p), 5 * sigma,
                                 "\(label): \(observed) over \(trials) draws, expected \(p)",
                                 file: file, line: line)
    }
}

final class AugmentationTests: XCTestCase {
    let imageA = testImage(height: 5, width: 7, seed: 1)
    let imageB = testImage(height: 32, width: 32, seed: 2)
    let imageC = testImage(height: 16, width: 16, seed: 3)
    let imageD = testImage(height: 10, width: 14, seed: 4)

    // MARK: - Geometry

    func testCropAndFlip() {
        assertPixels(imageA.cropped(CropBox(top: 1, left: 2, height: 3, width: 4)),
                     Expected.cropA, height: 3, width: 4, "crop")
        var flipped = imageA
        flipped.flipHorizontally()
        assertPixels(flipped, Expected.flipA, height: 5, width: 7, "flip")
        flipped.flipHorizontally()
        XCTAssertEqual(flipped, imageA, "flipping twice")
    }

    func testBicubicResizeMatchesPillow() {
        assertPixels(imageA.resizedBicubic(height: 3, width: 4), Expected.resizeDownA,
                     height: 3, width: 4, "5x7 -> 3x4")
        assertPixels(imageA.resizedBicubic(height: 9, width: 11), Expected.resizeUpA,
                     height: 9, width: 11, "5x7 -> 9x11")
        assertPixels(imageB.resizedBicubic(height: 7, width: 5), Expected.resizeDownB,
                     height: 7, width: 5, "32x32 -> 7x5 (support widened 4.6x, 6.4x)")
        assertPixels(imageA.resizedBicubic(height: 5, width: 4), Expected.resizeWidthOnlyA,
                     height: 5, width: 4, "width only")
        assertPixels(imageA.resizedBicubic(height: 8, width: 7), Expected.resizeHeightOnlyA,
                     height: 8, width: 7, "height only")
        XCTAssertEqual(imageA.resizedBicubic(height: 5, width: 7), imageA, "same size")
    }

    func testResizedCropMatchesPillow() {
        assertPixels(imageB.resizedBicubic(region: CropBox(top: 3, left: 5, height: 20,
                                                           width: 13), height: 8, width: 8),
                     Expected.resizedCropB, height: 8, width: 8, "crop 20x13 -> 8x8")
        assertPixels(imageB.resizedBicubic(region: CropBox(top: 10, left: 2, height: 6,
                                                           width: 9), height: 12, width: 12),
                     Expected.resizedCropUpB, height: 12, width: 12, "crop 6x9 -> 12x12")
        let box = CropBox(top: 3, left: 5, height: 20, width: 13)
        XCTAssertEqual(imageB.resizedBicubic(region: box, height: 8, width: 8),
                       imageB.cropped(box).resizedBicubic(height: 8, width: 8),
                       "fused crop + resize equals crop then resize")
    }

    // MARK: - Colour

    func testBrightnessContrastSaturationMatchPillow() {
        let cases: [(String, (inout RGBImage) -> Void, [UInt8])] = [
            ("brightness 0.7", { $0.adjustBrightness(0.7) }, Expected.brightness07A),
            ("brightness 1.3", { $0.adjustBrightness(1.3) }, Expected.brightness13A),
            ("contrast 0.6", { $0.adjustContrast(0.6) }, Expected.contrast06A),
            ("contrast 1.4", { $0.adjustContrast(1.4) }, Expected.contrast14A),
            ("saturation 0.8", { $0.adjustSaturation(0.8) }, Expected.saturation08A),
            ("saturation 1.2", { $0.adjustSaturation(1.2) }, Expected.saturation12A),
        ]
        for (label, operation, expected) in cases {
            var image = imageA
            operation(&image)
            assertPixels(image, expected, height: 5, width: 7, label)
        }
    }

    func testHueMatchesPillow() {
        let cases: [(Double, [UInt8])] = [
            (-0.1, Expected.hueMinus10A), (-0.03, Expected.hueMinus03A),
            (0.07, Expected.huePlus07A), (0.1, Expected.huePlus10A),
            (0.001, Expected.huePlus001A),
        ]
        for (factor, expected) in cases {
            var image = imageA
            image.adjustHue(factor)
            assertPixels(image, expected, height: 5, width: 7, "hue \(factor)")
        }
    }

    func testGrayscaleAndSolarizeMatchPillow() {
        var gray = imageA
        gray.convertToGrayscale()
        assertPixels(gray, Expected.grayscaleA, height: 5, width: 7, "grayscale")
        XCTAssertEqual(RGBImage.luma(255, 255, 255), 255)
        XCTAssertEqual(RGBImage.luma(255, 0, 0), 76)
        var solarized = imageA
        solarized.solarize()
        assertPixels(solarized, Expected.solarizeA, height: 5, width: 7, "solarize")
    }

    // MARK: - Blur

    func testGaussianBlurMatchesPillow() {
        for (sigma, expected) in [(0.1, Expected.blur01A), (1.0, Expected.blur1A),
                                  (2.0, Expected.blur2A)] {
            var image = imageA
            image.gaussianBlur(sigma: sigma)
            assertPixels(image, expected, height: 5, width: 7, "blur sigma \(sigma)")
        }
        var image = imageC
        image.gaussianBlur(sigma: 1.5)
        assertPixels(image, Expected.blur15C, height: 16, width: 16, "16x16 blur sigma 1.5")
    }

    func testBlurRadiusAndImpulse() {
        // SPEC 4.4: σ = 1 reaches ±3 pixels, σ = 2 ±5 pixels, and σ = 0.1 still moves an
        // impulse: 255 -> 252 along one axis, 249 after both (checked with Pillow 13)
        XCTAssertEqual(RGBImage.pillowBoxRadius(sigma: 1, passes: 3), 0.25, accuracy: 1e-6)
        XCTAssertEqual(RGBImage.pillowBoxRadius(sigma: 2, passes: 3), 1.375, accuracy: 1e-6)
        for (sigma, reach, centre) in [(0.1, 0, UInt8(249)), (1.0, 3, nil), (2.0, 5, nil)] {
            var impulse = RGBImage(height: 15, width: 15, red: 0, green: 0, blue: 0)
            impulse.pixels[(7 * 15 + 7) * 3] = 255
            impulse.gaussianBlur(sigma: sigma)
            let lit = (0..<15).filter { impulse[7, $0, 0] > 0 }
            XCTAssertEqual(lit.first, 7 - reach, "sigma \(sigma)")
            XCTAssertEqual(lit.last, 7 + reach, "sigma \(sigma)")
            if let centre { XCTAssertEqual(impulse[7, 7, 0], centre) }
            XCTAssertEqual(impulse[7, 7, 1], 0, "channels stay separate")
        }
    }

    // MARK: - Tensors and evaluation transforms

    func testNormalizationMatchesTorch() {
        let small = imageA.cropped(CropBox(top: 0, left: 0, height: 2, width: 3))
        for (normalization, expected) in [(Normalization.cifar10, Expected.normalizedCifar10),
                                          (Normalization.imagenet, Expected.normalizedImagenet)] {
            let tensor = normalization.tensor(small)
            XCTAssertEqual(tensor, expected.map { Float($0) }, "\(normalization.mean)")
        }
        XCTAssertEqual(Normalization.cifar100.mean, [0.5071, 0.4865, 0.4409])
        XCTAssertEqual(Normalization.cifar100.std, [0.2673, 0.2564, 0.2762])
    }

    func testEvaluationTransformsMatchTorchvision() {
        XCTAssertEqual([32, 64, 224].map { EvalTransform.testResizeSide(size: $0) },
                       [36, 73, 256])
        var random = SplitMix64(seed: 0)
        // 10x14 -> 9x12 -> centre crop 8 at top round(0.5) = 0 (half to even), left 2
        assertPixels(EvalTransform.test(size: 8).apply(to: imageD, random: &random),
                     Expected.testTransformD, height: 8, width: 8, "test transform 10x14")
        assertHash(EvalTransform.test(size: 32).apply(to: imageB, random: &random),
                   Expected.testTransformBHash, firstRow: Expected.testTransformBFirstRow,
                   "CIFAR test transform 32 -> 36 -> 32")
        let train = EvalTransform.linearTrain(size: 32)
        XCTAssertTrue(train.isRandom)
        XCTAssertEqual(train.apply(to: imageD, random: &random).height, 32)
    }

    // MARK: - Whole views

    func testFixedViewsMatchTorchvision() {
        let view = ViewAugmentation.pretraining(view: 2, size: 32)
        let draws: [(ViewDraw, UInt64, [UInt8])] = [
            (ViewDraw(crop: CropBox(top: 4, left: 6, height: 22, width: 19), flip: true,
                      jitter: ColorJitterDraw(order: [.hue, .contrast, .brightness, .saturation],
                                              brightness: 1.23, contrast: 0.71,
                                              saturation: 1.15, hue: -0.062),
                      grayscale: false, blurSigma: 1.37, solarize: true),
             Expected.viewB1Hash, Expected.viewB1FirstRow),
            (ViewDraw(crop: CropBox(top: 0, left: 0, height: 32, width: 32), flip: false,
                      jitter: ColorJitterDraw(order: [.saturation, .brightness, .hue, .contrast],
                                              brightness: 0.64, contrast: 1.38,
                                              saturation: 0.83, hue: 0.094),
                      grayscale: true, blurSigma: 0.35, solarize: false),
             Expected.viewB2Hash, Expected.viewB2FirstRow),
            (ViewDraw(crop: CropBox(top: 9, left: 1, height: 5, width: 7), flip: false,
                      jitter: nil, grayscale: false, blurSigma: 1.99, solarize: false),
             Expected.viewB3Hash, Expected.viewB3FirstRow),
        ]
        for (i, (draw, hash, firstRow)) in draws.enumerated() {
            assertHash(view.apply(draw, to: imageB), hash, firstRow: firstRow, "view \(i + 1)")
        }
    }

    // MARK: - Random parameters

    func testResizedCropSamplingStaysInBounds() {
        for (height, width) in [(32, 32), (37, 53), (64, 20)] {
            var random = SplitMix64(seed: UInt64(height * 1000 + width))
            var tops = Set<Int>()
            var fallbacks = 0
            for _ in 0..<4000 {
                let box = ViewAugmentation.sampleCrop(height: height, width: width,
                                                      scale: 0.08...1.0,
                                                      ratio: (3.0 / 4)...(4.0 / 3),
                                                      random: &random)
                XCTAssertTrue(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0)
                XCTAssertLessThanOrEqual(box.top + box.height, height)
                XCTAssertLessThanOrEqual(box.left + box.width, width)
                // rounding w and h to integers moves area and ratio by at most half a pixel
                let (h, w) = (Double(box.height), Double(box.width))
                let area = Double(height * width)
                XCTAssertGreaterThanOrEqual((w + 0.5) * (h + 0.5), 0.08 * area)
                XCTAssertLessThanOrEqual((w - 0.5) * (h - 0.5), area)
                XCTAssertGreaterThanOrEqual((w + 0.5) / (h - 0.5), 0.75, "\(box)")
                XCTAssertLessThanOrEqual((w - 0.5) / (h + 0.5), 4.0 / 3, "\(box)")
                if box.height == height && box.width == width { fallbacks += 1 }
                tops.insert(box.top)
            }
            XCTAssertTrue(tops.contains(0), "top 0 reachable in \(height)x\(width)")
            XCTAssertLessThan(fallbacks, 400, "whole-image crops in \(height)x\(width)")
        }
    }

    func testResizedCropFallback() {
        var random = SplitMix64(seed: 3)
        let ratio = (3.0 / 4)...(4.0 / 3)
        // no crop of a 1-pixel-high image has an aspect inside [3/4, 4/3] at 8% of its area
        XCTAssertEqual(ViewAugmentation.sampleCrop(height: 1, width: 100, scale: 0.08...1.0,
                                                   ratio: ratio, random: &random),
                       CropBox(top: 0, left: 49, height: 1, width: 1))
        XCTAssertEqual(ViewAugmentation.sampleCrop(height: 100, width: 1, scale: 0.08...1.0,
                                                   ratio: ratio, random: &random),
                       CropBox(top: 49, left: 0, height: 1, width: 1))
        // an impossible scale: the whole image when its ratio is allowed ...
        XCTAssertEqual(ViewAugmentation.sampleCrop(height: 10, width: 10, scale: 2...3,
                                                   ratio: ratio, random: &random),
                       CropBox(top: 0, left: 0, height: 10, width: 10))
        // ... else the largest centred crop at the nearest bound: w = round(10·4/3) = 13
        XCTAssertEqual(ViewAugmentation.sampleCrop(height: 10, width: 20, scale: 2...3,
                                                   ratio: ratio, random: &random),
                       CropBox(top: 0, left: 3, height: 10, width: 13))
        XCTAssertEqual(ViewAugmentation.sampleCrop(height: 20, width: 10, scale: 2...3,
                                                   ratio: ratio, random: &random),
                       CropBox(top: 3, left: 0, height: 13, width: 10))
    }

    func testPretrainingProbabilities() {
        let one = ViewAugmentation.pretraining(view: 1, size: 32)
        let two = ViewAugmentation.pretraining(view: 2, size: 32)
        XCTAssertEqual([one.blurProbability, two.blurProbability], [1.0, 0.1])
        XCTAssertEqual([one.solarizeProbability, two.solarizeProbability], [0.0, 0.2])
        for view in [one, two] {
            XCTAssertEqual(view.flipProbability, 0.5)
            XCTAssertEqual(view.jitterProbability, 0.8)
            XCTAssertEqual(view.grayscaleProbability, 0.2)
            XCTAssertEqual(view.cropScale, 0.08...1.0)
            XCTAssertEqual(view.cropRatio, 0.75...(4.0 / 3))
            XCTAssertEqual([view.brightness, view.contrast, view.saturation, view.hue],
                           [0.4, 0.4, 0.2, 0.1])
        }
    }

    func testRandomChoiceFrequencies() {
        let trials = 20000
        for viewNumber in [1, 2] {
            let view = ViewAugmentation.pretraining(view: viewNumber, size: 32)
            var flips = 0, jitters = 0, grays = 0, blurs = 0, solarizes = 0
            var orders = Set<[ColorOperation]>()
            for sample in 0..<trials {
                var random = DataRandom.generator(seed: 5, epoch: 1, sample: sample,
                                                  view: viewNumber)
                let draw = view.sample(height: 32, width: 32, random: &random)
                if draw.flip { flips += 1 }
                if draw.grayscale { grays += 1 }
                if draw.solarize { solarizes += 1 }
                if let sigma = draw.blurSigma {
                    blurs += 1
                    XCTAssertTrue(sigma >= 0.1 && sigma < 2.0, "sigma \(sigma)")
                }
                if let jitter = draw.jitter {
                    jitters += 1
                    orders.insert(jitter.order)
                    XCTAssertEqual(Set(jitter.order).count, 4)
                    XCTAssertTrue((0.6..<1.4).contains(jitter.brightness!))
                    XCTAssertTrue((0.6..<1.4).contains(jitter.contrast!))
                    XCTAssertTrue((0.8..<1.2).contains(jitter.saturation!))
                    XCTAssertTrue((-0.1..<0.1).contains(jitter.hue!))
                }
            }
            let label = "view \(viewNumber)"
            assertFrequency(flips, of: trials, is: 0.5, "\(label) flip")
            assertFrequency(jitters, of: trials, is: 0.8, "\(label) jitter")
            assertFrequency(grays, of: trials, is: 0.2, "\(label) grayscale")
            assertFrequency(blurs, of: trials, is: viewNumber == 1 ? 1.0 : 0.1, "\(label) blur")
            assertFrequency(solarizes, of: trials, is: viewNumber == 1 ? 0.0 : 0.2,
                            "\(label) solarize")
            XCTAssertEqual(orders.count, 24, "\(label): every jitter order appears")
        }
    }

    func testDrawsDependOnlyOnTheirKey() {
        let view = ViewAugmentation.pretraining(view: 2, size: 32)
        func draw(_ seed: UInt64, _ epoch: Int, _ sample: Int, _ v: Int) -> ViewDraw {
            var random = DataRandom.generator(seed: seed, epoch: epoch, sample: sample, view: v)
            return view.sample(height: 32, width: 32, random: &random)
        }
        XCTAssertEqual(draw(1, 2, 3, 1), draw(1, 2, 3, 1))
        XCTAssertNotEqual(draw(1, 2, 3, 1), draw(1, 2, 3, 2))
        XCTAssertNotEqual(draw(1, 2, 3, 1), draw(1, 2, 4, 1))
        XCTAssertNotEqual(draw(1, 2, 3, 1), draw(1, 3, 3, 1))
        XCTAssertNotEqual(draw(1, 2, 3, 1), draw(2, 2, 3, 1))
        var random = DataRandom.generator(seed: 9, epoch: 0, sample: 0, view: 1)
        let out = view(imageB, random: &random)
        XCTAssertEqual([out.height, out.width], [32, 32])
    }

    func testLinearTrainViewOnlyCropsAndFlips() {
        let view = ViewAugmentation.linearTrain(size: 32)
        var flips = 0
        for sample in 0..<2000 {
            var random = DataRandom.generator(seed: 1, epoch: 0, sample: sample, view: 0)
            let draw = view.sample(height: 32, width: 32, random: &random)
            XCTAssertNil(draw.jitter)
            XCTAssertNil(draw.blurSigma)
            XCTAssertFalse(draw.grayscale || draw.solarize)
            if draw.flip { flips += 1 }
        }
        assertFrequency(flips, of: 2000, is: 0.5, "linear-train flip")
    }

    // MARK: - Opt-in parity against many Pillow outputs

    func testPillowParityFromFile() throws {
        guard let folder = ProcessInfo.processInfo.environment["CIM_AUGMENTATION_PARITY"] else {
            throw XCTSkip("set CIM_AUGMENTATION_PARITY to a folder written by "
                          + "scripts/make_augmentation_expectations.py --parity")
        }
        let manifest = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json")))
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder + "/data.bin")))
        let cases = (manifest as! [String: Any])["cases"] as! [[String: Any]]
        // op -> (bytes, differing bytes, bytes off by more than 1)
        var tally: [String: (Int, Int, Int)] = [:]
        for entry in cases {
            let int = { (key: String) in (entry[key] as! NSNumber).intValue }
            let double = { (key: String) in (entry[key] as! NSNumber).doubleValue }
            let (h, w) = (int("height"), int("width"))
            let input = RGBImage(height: h, width: w,
                                 pixels: data[int("input")..<(int("input") + h * w * 3)])
            let outCount = int("outHeight") * int("outWidth") * 3
            let expected = Array(data[int("output")..<(int("output") + outCount)])
            let op = entry["op"] as! String
            var image = input
            switch op {
            case "resizedCrop":
                let box = CropBox(top: int("top"), left: int("left"),
                                  height: int("cropHeight"), width: int("cropWidth"))
                image = input.resizedBicubic(region: box, height: int("size"),
                                             width: int("size"))
            case "brightness": image.adjustBrightness(double("factor"))
            case "contrast": image.adjustContrast(double("factor"))
            case "saturation": image.adjustSaturation(double("factor"))
            case "hue": image.adjustHue(double("factor"))
            case "grayscale": image.convertToGrayscale()
            case "blur": image.gaussianBlur(sigma: double("sigma"))
            case "solarize": image.solarize()
            case "testTransform":
                var random = SplitMix64(seed: 0)
                image = EvalTransform.test(size: int("size")).apply(to: input, random: &random)
            case "view":
                var jitter: ColorJitterDraw? = nil
                if let values = entry["jitter"] as? [Any] {
                    let order = (values[0] as! [NSNumber]).map {
                        ColorOperation(rawValue: $0.intValue)!
                    }
                    let f = values[1...].map { ($0 as! NSNumber).doubleValue }
                    jitter = ColorJitterDraw(order: order, brightness: f[0], contrast: f[1],
                                             saturation: f[2], hue: f[3])
                }
                let draw = ViewDraw(
                    crop: CropBox(top: int("top"), left: int("left"), height: int("cropHeight"),
                                  width: int("cropWidth")),
                    flip: (entry["flip"] as! NSNumber).boolValue, jitter: jitter,
                    grayscale: (entry["grayscale"] as! NSNumber).boolValue,
                    blurSigma: (entry["sigma"] as? NSNumber)?.doubleValue,
                    solarize: (entry["solarize"] as! NSNumber).boolValue)
                image = ViewAugmentation.pretraining(view: 2, size: int("size"))
                    .apply(draw, to: input)
            default: XCTFail("unknown op \(op)")
            }
            XCTAssertEqual(image.pixels.count, outCount, op)
            var t = tally[op] ?? (0, 0, 0)
            for (a, b) in zip(image.pixels, expected) where a != b {
                t.1 += 1
                if abs(Int(a) - Int(b)) > 1 { t.2 += 1 }
            }
            t.0 += outCount
            tally[op] = t
        }
        for (op, (bytes, differing, large)) in tally.sorted(by: { $0.key < $1.key }) {
            let rate = 100 * Double(bytes - differing) / Double(bytes)
            print("parity \(op): \(String(format: "%.4f", rate)) % of \(bytes) bytes equal, "
                  + "\(differing) differ, \(large) by more than 1")
            XCTAssertEqual(large, 0, "\(op): bytes off by more than 1")
            XCTAssertLessThanOrEqual(differing, bytes / 1000, "\(op): more than 0.1 % differ")
        }
    }
}

// MARK: - Expected values

private enum Expected {
    // BEGIN GENERATED
    // Generated by scripts/make_augmentation_expectations.py with Pillow 9.1.1; do not edit.
    static let cropA: [UInt8] = [
        89, 170, 136, 60, 89, 234, 86, 19, 123, 210, 133, 161, 218, 2, 121, 152, 204, 227, 26, 118,
        142, 95, 217, 153, 250, 190, 166, 218, 228, 134, 142, 220, 41, 109, 78, 255,
    ]
    static let flipA: [UInt8] = [
        255, 255, 0, 128, 128, 128, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 0, 0, 0, 216,
        60, 84, 210, 133, 161, 86, 19, 123, 60, 89, 234, 89, 170, 136, 103, 102, 135, 114, 15, 71,
        143, 31, 63, 95, 217, 153, 26, 118, 142, 152, 204, 227, 218, 2, 121, 174, 101, 91, 85, 47,
        55, 86, 225, 112, 109, 78, 255, 142, 220, 41, 218, 228, 134, 250, 190, 166, 120, 77, 13,
        54, 238, 67, 82, 157, 6, 153, 82, 211, 170, 59, 72, 220, 83, 205, 144, 197, 9, 177, 88, 5,
        32, 251, 143,
    ]
    static let resizeDownA: [UInt8] = [
        119, 83, 110, 140, 133, 98, 43, 74, 166, 210, 147, 85, 113, 81, 66, 177, 114, 157, 97, 157,
        159, 133, 115, 124, 89, 177, 59, 202, 159, 86, 177, 124, 130, 100, 139, 129,
    ]
    static let resizeUpA: [UInt8] = [
        0, 0, 0, 106, 125, 121, 255, 255, 255, 255, 38, 60, 178, 71, 0, 0, 255, 0, 0, 91, 182, 19,
        4, 255, 109, 114, 139, 208, 218, 40, 255, 255, 0, 33, 1, 19, 107, 98, 114, 210, 211, 220,
        206, 84, 84, 140, 100, 48, 13, 205, 65, 19, 66, 174, 54, 13, 214, 144, 116, 147, 215, 177,
        66, 247, 201, 23, 108, 7, 62, 109, 52, 101, 110, 120, 148, 101, 161, 126, 79, 149, 160, 51,
        97, 216, 62, 29, 162, 113, 35, 135, 201, 124, 160, 223, 104, 113, 222, 72, 74, 109, 13, 64,
        117, 50, 85, 128, 95, 115, 135, 97, 123, 123, 111, 180, 100, 126, 252, 63, 72, 172, 80, 84,
        127, 159, 176, 155, 183, 93, 111, 187, 13, 72, 79, 43, 52, 120, 75, 68, 180, 97, 94, 215,
        11, 107, 205, 65, 162, 152, 204, 227, 60, 148, 174, 31, 139, 141, 89, 218, 155, 127, 113,
        101, 146, 18, 57, 62, 162, 56, 94, 127, 45, 152, 84, 51, 232, 84, 129, 244, 146, 173, 194,
        234, 169, 120, 216, 103, 80, 178, 110, 92, 145, 210, 102, 140, 153, 107, 145, 88, 46, 255,
        78, 75, 170, 39, 132, 77, 15, 219, 165, 123, 248, 214, 164, 221, 218, 135, 175, 225, 54,
        137, 175, 86, 115, 75, 249, 94, 156, 180, 81, 239, 96, 28, 255, 131, 87, 178, 71, 164, 85,
        3, 171, 176, 37, 194, 185, 105, 222, 124, 182, 188, 111, 94, 158, 95, 95, 144, 74, 224,
        105, 136, 124, 77, 190, 30, 20, 255, 160, 96, 179, 89, 184, 90, 0, 144, 178, 0, 162, 164,
        73, 220, 71, 211, 193, 46, 119, 167, 50, 101, 160, 78, 207, 112, 125, 91, 76, 156, 0,
    ]
    static let resizeDownB: [UInt8] = [
        103, 146, 120, 123, 136, 144, 125, 122, 132, 134, 130, 145, 136, 127, 131, 146, 120, 136,
        130, 121, 116, 130, 129, 119, 142, 136, 139, 128, 116, 127, 130, 127, 139, 113, 138, 121,
        139, 137, 126, 143, 112, 127, 145, 128, 125, 116, 151, 126, 138, 142, 126, 119, 135, 141,
        133, 120, 142, 159, 111, 125, 128, 129, 139, 118, 140, 133, 121, 132, 121, 137, 127, 127,
        122, 132, 136, 132, 134, 135, 133, 128, 135, 118, 116, 122, 123, 129, 129, 117, 140, 115,
        122, 110, 140, 106, 124, 122, 128, 108, 122, 137, 136, 132, 114, 140, 103,
    ]
    static let resizedCropB: [UInt8] = [
        97, 128, 109, 158, 142, 129, 111, 165, 157, 126, 85, 176, 152, 131, 114, 136, 117, 115, 78,
        104, 145, 133, 170, 168, 114, 84, 84, 173, 110, 108, 148, 122, 78, 110, 125, 133, 107, 146,
        103, 136, 84, 93, 110, 97, 112, 93, 178, 109, 153, 98, 127, 61, 69, 140, 119, 134, 96, 129,
        207, 126, 154, 89, 137, 138, 129, 141, 158, 146, 118, 137, 143, 98, 106, 122, 103, 40, 107,
        147, 109, 125, 113, 150, 191, 103, 133, 136, 147, 90, 121, 134, 146, 150, 65, 152, 143,
        164, 148, 141, 79, 69, 172, 126, 111, 160, 106, 178, 156, 130, 144, 117, 126, 113, 127,
        139, 98, 157, 144, 120, 158, 140, 121, 186, 146, 168, 118, 99, 147, 103, 151, 194, 143,
        117, 115, 161, 151, 76, 93, 144, 116, 126, 124, 137, 100, 141, 82, 123, 148, 139, 126, 126,
        125, 191, 109, 138, 114, 112, 85, 115, 164, 95, 147, 143, 133, 179, 95, 152, 122, 141, 135,
        119, 189, 125, 145, 131, 133, 159, 70, 89, 114, 123, 75, 176, 158, 96, 190, 144, 99, 99,
        109, 131, 99, 63,
    ]
    static let resizedCropUpB = hexBytes(
        "870ff5b66ed0a1869945578123b1d82c5a661e03080d1b0f74df54b9db28c8bd00b4c0009848c2be74b3" +
        "ad74a35a58a219bac23a627b320d460a1a4966a759a0bd49bbbf38bfcc34bcc254ce8275c54db9885be8" +
        "04cb945775a65b21ca0218c54832666d7d8ea0c4b2d5e7abdfd04cb8937fb15bc7b95bdd38ac5c7d719d" +
        "6b4ced0057f042238359519c799ec99fd4dcff69b27ca5d66fa1cbea587cb7591faa555b5e8ea601d5c3" +
        "5682b2683c6d464d751a92bce965b767c4df4ac9b5c4643cf36107a356283ca26709ff9a6ac697715053" +
        "49454a20927c9fc45a79f19b43d38646811eeec21666720304883017ff777df132748b5081844ab0d41b" +
        "9aeb2e77f06638d26f25a338c6b6216c8921218e4c22ce7474ea2167bd558fa860e3bb2fdada3260c042" +
        "28c66f60ca8a7d3d28b69a8393b3ba2b6c9150b1634be56475b18ab948b6c9a8406ea5593fb78361b59a" +
        "72325db1b1979ec7b4475499457a9d5ecc6e8db58cb550e16d59579b9fa579a6a92c6b6ba390b963cd61" +
        "49ca4174848b5148cb9c7973d4b466d5cbb2423461b19dc9959ebb144855bbbce53ed94720cc0b8a9b84" +
        "5630e1b95276f5b455e5ff9b")
    static let resizeWidthOnlyA: [UInt8] = [
        124, 107, 117, 191, 130, 45, 7, 92, 162, 199, 190, 66, 110, 56, 96, 79, 140, 169, 98, 59,
        167, 216, 91, 115, 127, 65, 67, 199, 78, 150, 69, 171, 176, 117, 112, 100, 83, 163, 42,
        226, 179, 128, 160, 197, 110, 93, 157, 175, 94, 181, 74, 178, 142, 59, 186, 65, 148, 112,
        123, 94,
    ]
    static let resizeHeightOnlyA: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 122, 128, 126, 255, 255, 0, 46, 4,
        29, 191, 195, 210, 183, 76, 54, 19, 184, 93, 37, 3, 202, 166, 126, 141, 243, 179, 34, 116,
        16, 72, 102, 98, 130, 89, 168, 139, 65, 89, 240, 86, 23, 120, 208, 136, 161, 212, 53, 85,
        99, 25, 61, 154, 98, 105, 175, 40, 126, 124, 165, 244, 37, 84, 140, 128, 205, 149, 166, 18,
        68, 75, 101, 55, 163, 94, 67, 240, 41, 137, 177, 224, 199, 52, 158, 115, 89, 185, 182, 122,
        84, 78, 56, 231, 64, 121, 78, 16, 252, 183, 169, 216, 231, 135, 137, 221, 44, 107, 83, 252,
        88, 220, 113, 39, 255, 114, 152, 82, 4, 187, 204, 73, 223, 141, 172, 165, 128, 55, 136, 73,
        234, 81, 194, 50, 30, 252, 148, 181, 89, 4, 136, 198, 0, 220, 73, 210, 172, 47, 74, 156,
        82, 208, 82, 152, 0,
    ]
    static let brightness07A: [UInt8] = [
        0, 0, 0, 178, 178, 178, 178, 0, 0, 0, 178, 0, 0, 0, 178, 89, 89, 89, 178, 178, 0, 79, 10,
        49, 72, 71, 94, 62, 119, 95, 42, 62, 163, 60, 13, 86, 147, 93, 112, 151, 42, 58, 59, 32,
        38, 121, 70, 63, 152, 1, 84, 106, 142, 158, 18, 82, 99, 66, 151, 107, 100, 21, 44, 37, 166,
        46, 84, 53, 9, 175, 133, 116, 152, 159, 93, 99, 154, 28, 76, 54, 178, 60, 157, 78, 22, 175,
        100, 123, 61, 3, 100, 137, 6, 154, 58, 143, 119, 41, 50, 107, 57, 147, 57, 109, 4,
    ]
    static let brightness13A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 166, 166, 166, 255, 255, 0, 148,
        19, 92, 133, 132, 175, 115, 220, 176, 78, 115, 255, 111, 24, 159, 255, 172, 209, 255, 78,
        109, 110, 61, 71, 226, 131, 118, 255, 2, 157, 197, 255, 255, 33, 153, 184, 123, 255, 198,
        185, 40, 81, 70, 255, 87, 156, 100, 16, 255, 246, 215, 255, 255, 174, 184, 255, 53, 141,
        101, 255, 111, 255, 145, 41, 255, 185, 230, 114, 6, 187, 255, 11, 255, 107, 255, 220, 76,
        93, 198, 106, 255, 106, 204, 7,
    ]
    static let contrast06A: [UInt8] = [
        50, 50, 50, 203, 203, 203, 203, 50, 50, 50, 203, 50, 50, 50, 203, 126, 126, 126, 203, 203,
        50, 118, 59, 92, 111, 111, 131, 103, 152, 131, 86, 103, 190, 101, 61, 123, 176, 129, 146,
        179, 86, 100, 101, 78, 83, 154, 110, 104, 180, 51, 122, 141, 172, 186, 65, 120, 135, 107,
        180, 141, 135, 68, 87, 82, 192, 90, 122, 96, 57, 200, 164, 149, 180, 186, 130, 135, 182,
        74, 115, 96, 203, 101, 185, 117, 69, 200, 135, 156, 102, 53, 136, 168, 55, 182, 99, 173,
        152, 85, 93, 141, 99, 176, 99, 144, 53,
    ]
    static let contrast14A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 129, 129, 129, 255, 255, 0, 109,
        0, 49, 94, 92, 139, 74, 188, 140, 34, 74, 255, 70, 0, 122, 244, 136, 175, 252, 34, 67, 69,
        15, 27, 193, 91, 77, 255, 0, 119, 162, 235, 255, 0, 115, 148, 83, 253, 164, 150, 0, 38, 25,
        255, 43, 118, 57, 0, 255, 216, 182, 255, 255, 137, 148, 255, 7, 102, 59, 255, 70, 255, 106,
        0, 255, 150, 197, 73, 0, 151, 225, 0, 255, 66, 237, 188, 32, 50, 164, 64, 245, 64, 169, 0,
    ]
    static let saturation08A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 219, 15, 15, 30, 234, 30, 5, 5, 209, 128, 128, 128, 249, 249, 45,
        101, 22, 67, 103, 102, 129, 99, 164, 137, 67, 90, 206, 79, 25, 108, 199, 138, 160, 194, 69,
        89, 79, 49, 55, 163, 105, 97, 190, 17, 112, 159, 201, 219, 39, 113, 132, 110, 208, 157,
        128, 38, 64, 75, 223, 86, 112, 78, 27, 241, 193, 173, 217, 225, 150, 148, 211, 68, 108, 83,
        225, 103, 214, 123, 60, 235, 149, 162, 91, 25, 147, 189, 39, 203, 94, 191, 154, 66, 76,
        146, 89, 192, 89, 149, 28,
    ]
    static let saturation12A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128, 255, 255, 0, 126,
        7, 75, 102, 101, 140, 78, 175, 134, 52, 87, 255, 93, 12, 137, 220, 127, 161, 237, 50, 79,
        90, 44, 54, 184, 96, 84, 245, 0, 129, 144, 206, 234, 12, 123, 151, 79, 225, 149, 158, 23,
        62, 32, 253, 47, 127, 75, 0, 255, 187, 158, 218, 230, 118, 135, 228, 14, 109, 72, 255, 68,
        235, 100, 3, 255, 137, 191, 84, 0, 140, 204, 0, 236, 72, 218, 185, 52, 67, 160, 74, 229,
        75, 165, 0,
    ]
    static let hueMinus10A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 144, 150, 255, 0, 0, 150, 255, 128, 128, 128, 255, 102, 0,
        97, 15, 114, 102, 121, 135, 91, 170, 89, 61, 195, 234, 24, 19, 123, 210, 133, 207, 216, 60,
        177, 85, 47, 77, 174, 91, 128, 185, 3, 218, 152, 227, 205, 26, 142, 97, 110, 217, 95, 143,
        31, 131, 149, 238, 54, 120, 13, 13, 250, 167, 190, 228, 183, 134, 220, 193, 41, 78, 153,
        255, 145, 225, 86, 53, 251, 32, 177, 6, 22, 197, 137, 9, 154, 84, 220, 170, 59, 137, 83,
        89, 211, 157, 141, 6,
    ]
    static let hueMinus03A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 36, 42, 255, 0, 0, 42, 255, 128, 128, 128, 255, 210, 0,
        114, 15, 90, 102, 107, 135, 89, 170, 122, 61, 122, 234, 68, 19, 123, 210, 133, 175, 216,
        60, 111, 85, 47, 61, 174, 91, 93, 218, 3, 160, 152, 217, 227, 26, 138, 142, 95, 217, 133,
        143, 31, 84, 71, 238, 54, 120, 58, 13, 250, 176, 167, 228, 222, 134, 172, 220, 41, 78, 78,
        255, 86, 225, 86, 32, 251, 104, 177, 58, 6, 177, 197, 9, 212, 84, 220, 170, 59, 91, 131,
        83, 211, 109, 157, 6,
    ]
    static let huePlus07A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 102, 0, 0, 255, 102, 102, 0, 255, 128, 128, 128, 156, 255, 0,
        114, 15, 34, 116, 102, 135, 89, 170, 167, 97, 61, 234, 123, 19, 119, 210, 133, 133, 216,
        93, 60, 85, 53, 47, 174, 134, 91, 218, 3, 38, 152, 175, 227, 26, 73, 142, 95, 217, 201,
        143, 39, 31, 54, 238, 141, 120, 119, 13, 250, 224, 167, 181, 228, 134, 71, 220, 41, 178,
        78, 255, 86, 225, 165, 32, 251, 228, 177, 155, 6, 71, 197, 9, 220, 84, 151, 170, 88, 59,
        203, 83, 211, 24, 157, 6,
    ]
    static let huePlus10A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 150, 0, 0, 255, 150, 150, 0, 255, 128, 128, 128, 108, 255, 0,
        114, 15, 15, 122, 102, 135, 89, 158, 170, 130, 61, 234, 123, 19, 100, 210, 148, 133, 216,
        122, 60, 85, 60, 47, 174, 150, 91, 218, 3, 3, 152, 161, 227, 26, 51, 142, 95, 210, 217,
        143, 60, 31, 54, 238, 175, 101, 120, 13, 250, 239, 167, 163, 228, 134, 41, 220, 46, 211,
        78, 255, 86, 225, 191, 32, 233, 251, 167, 177, 6, 36, 197, 9, 220, 84, 125, 170, 109, 59,
        211, 83, 194, 6, 157, 17,
    ]
    static let huePlus001A: [UInt8] = [
        0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128, 255, 252, 0, 114,
        15, 73, 103, 102, 135, 89, 170, 135, 61, 93, 234, 85, 19, 123, 210, 133, 162, 216, 60, 86,
        85, 47, 55, 174, 101, 91, 218, 3, 124, 152, 205, 227, 26, 119, 142, 95, 217, 153, 143, 31,
        66, 54, 238, 67, 120, 76, 13, 250, 190, 167, 218, 228, 134, 142, 220, 41, 107, 78, 255, 86,
        225, 109, 32, 251, 140, 177, 86, 6, 146, 197, 9, 220, 84, 206, 170, 59, 72, 152, 83, 211,
        84, 157, 6,
    ]
    static let grayscaleA: [UInt8] = [
        0, 0, 0, 255, 255, 255, 76, 76, 76, 150, 150, 150, 29, 29, 29, 128, 128, 128, 226, 226,
        226, 51, 51, 51, 106, 106, 106, 142, 142, 142, 97, 97, 97, 51, 51, 51, 159, 159, 159, 109,
        109, 109, 59, 59, 59, 122, 122, 122, 80, 80, 80, 191, 191, 191, 93, 93, 93, 173, 173, 173,
        68, 68, 68, 163, 163, 163, 83, 83, 83, 205, 205, 205, 214, 214, 214, 176, 176, 176, 107,
        107, 107, 171, 171, 171, 173, 173, 173, 105, 105, 105, 160, 160, 160, 138, 138, 138, 94,
        94, 94, 118, 118, 118, 117, 117, 117,
    ]
    static let blur01A: [UInt8] = [
        0, 0, 0, 255, 252, 252, 255, 3, 0, 0, 252, 0, 0, 3, 252, 128, 128, 128, 255, 255, 0, 114,
        15, 71, 103, 102, 135, 89, 167, 136, 60, 89, 234, 86, 19, 123, 210, 133, 161, 216, 60, 84,
        85, 47, 55, 174, 101, 91, 218, 6, 121, 152, 204, 227, 26, 118, 142, 95, 217, 153, 143, 31,
        63, 54, 238, 67, 120, 77, 13, 250, 190, 166, 218, 228, 134, 142, 220, 44, 109, 78, 252, 86,
        225, 112, 32, 251, 143, 177, 88, 5, 144, 197, 9, 220, 83, 202, 170, 59, 72, 153, 82, 208,
        82, 157, 6,
    ]
    static let blur1A: [UInt8] = [
        96, 67, 80, 145, 107, 110, 142, 118, 101, 86, 117, 113, 79, 99, 142, 139, 123, 119, 197,
        159, 72, 104, 68, 81, 134, 98, 108, 136, 113, 123, 102, 118, 142, 96, 107, 148, 138, 116,
        127, 178, 123, 91, 105, 97, 74, 137, 103, 94, 156, 119, 126, 137, 136, 150, 115, 133, 146,
        124, 128, 134, 140, 118, 107, 94, 153, 73, 137, 134, 75, 174, 139, 105, 171, 149, 133, 141,
        141, 134, 121, 133, 136, 112, 139, 111, 85, 187, 82, 132, 155, 64, 173, 146, 83, 183, 134,
        120, 160, 117, 128, 131, 120, 128, 105, 141, 95,
    ]
    static let blur2A: [UInt8] = [
        115, 94, 89, 118, 99, 97, 120, 109, 108, 124, 117, 114, 131, 124, 115, 139, 130, 110, 147,
        133, 104, 116, 104, 90, 120, 108, 97, 124, 114, 108, 128, 120, 115, 133, 125, 116, 138,
        129, 112, 143, 132, 106, 117, 119, 89, 123, 120, 97, 129, 123, 107, 133, 125, 114, 135,
        127, 116, 137, 129, 113, 137, 130, 108, 118, 135, 89, 125, 133, 96, 134, 131, 106, 139,
        130, 113, 138, 129, 115, 136, 129, 113, 132, 130, 109, 118, 147, 88, 127, 143, 94, 138,
        138, 104, 143, 133, 111, 140, 131, 114, 135, 130, 112, 129, 130, 109,
    ]
    static let blur15C = hexBytes(
        "6c9c63679669648e7269867d72828579878b7b948b7da0897ea3827f9a7f7c8a7d767d7d6d74806b6e84" +
        "71648e7a5d966b9562679168678c716e867b7782837d86897e8f8b7f998a7f9b868194848289837f7f82" +
        "78788275728479698b806292698d64688b676b886e7484747c807d80828581878a818d8b829089868d88" +
        "8b89888c8289897d88847787837089866c8c64846b66866a6b856c74816d7a7b777e7b80807d8984828b" +
        "8785888d868695878899828c997f8f927a8e8d768b8c738961826b6285686686656d826472796c777578" +
        "7c74848478878c7d849480819d8285a17f8ca07c93987a92927a8d8f7a8863826761876461896064855f" +
        "6879656d7070766c7c836f808f747e9b787da37981a47889a17690997890947c8a9180856e8660688a60" +
        "628a5f608660627b64686f6b726873806a798f71799c767ca276809f75879874898f78858c807d8a8678" +
        "7d86657488666a876762836861796a656e6e6f68717d6b768c737897787d9b78839677878e7782877c78" +
        "84846c848b6688866f7e8371717f72657a746276746571767070777c7579887d7a8f83808e8285897f87" +
        "837e7e7f826e7f875f7f8c5789887880817b75797c67747d63727d67757f74788080808088867d8a8b7f" +
        "8589827f87827d86797e8869828a5b848b54858f7b7e857f7679836c71856b71857078857c7e85868783" +
        "8b8c7f88907c808e7b778d7a758c737a8b6883885e88855a8295797e8c7f7b7f867777887873887b7986" +
        "847f868a89838e8d7e8a9078808f7574917370916f758d68808663877f62839074828b7b828383827d86" +
        "847885847b83867f848889828a8d8089907c8390797792766e92746e8d6f75856c7a7d6a85826b858170" +
        "868077877e7a877c7c857e7d8281827f8985808d86839083858f827d917f73937d6a9279678d74668770" +
        "85705e857261857666847a69837c6e8180767b8581748c8974908c7c908b868e8b878f8a7b9588699983" +
        "5a9c7c529d75846553836855836e587f755b7e7b657c81727687816e8e8b6b928f76918e868c8f8c8d8f" +
        "80978e68a18853aa8046b077")
    static let solarizeA: [UInt8] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 127, 127, 0, 0, 0, 114, 15, 71, 103, 102,
        120, 89, 85, 119, 60, 89, 21, 86, 19, 123, 45, 122, 94, 39, 60, 84, 85, 47, 55, 81, 101,
        91, 37, 2, 121, 103, 51, 28, 26, 118, 113, 95, 38, 102, 112, 31, 63, 54, 17, 67, 120, 77,
        13, 5, 65, 89, 37, 27, 121, 113, 35, 41, 109, 78, 0, 86, 30, 112, 32, 4, 112, 78, 88, 5,
        111, 58, 9, 35, 83, 50, 85, 59, 72, 102, 82, 44, 82, 98, 6,
    ]
    static let testTransformD: [UInt8] = [
        113, 121, 91, 116, 44, 101, 205, 135, 143, 145, 149, 52, 176, 213, 13, 103, 85, 79, 151,
        175, 215, 236, 235, 119, 200, 106, 120, 151, 202, 14, 55, 103, 162, 159, 170, 63, 68, 205,
        52, 92, 165, 204, 149, 134, 115, 92, 107, 71, 145, 100, 96, 151, 130, 76, 64, 145, 61, 163,
        173, 113, 150, 162, 40, 100, 120, 53, 70, 128, 96, 145, 199, 82, 91, 87, 155, 93, 35, 92,
        102, 159, 101, 49, 238, 46, 133, 51, 143, 104, 171, 71, 128, 161, 62, 154, 182, 93, 111,
        160, 193, 134, 38, 109, 75, 126, 112, 17, 209, 115, 166, 152, 108, 166, 169, 71, 167, 219,
        132, 136, 108, 226, 118, 116, 214, 109, 68, 143, 144, 135, 156, 117, 232, 235, 141, 163,
        61, 227, 131, 81, 107, 182, 86, 102, 61, 198, 128, 128, 180, 133, 96, 126, 108, 195, 104,
        107, 135, 82, 177, 64, 212, 138, 185, 148, 145, 195, 63, 70, 78, 163, 129, 199, 188, 139,
        188, 187, 175, 207, 145, 203, 89, 93, 96, 123, 237, 166, 208, 147, 147, 170, 53, 93, 127,
        191,
    ]
    static let normalizedCifar10: [Double] = [
        -1.9894737005233765, 2.0591094493865967, 2.0591094493865967, -0.1795189380645752,
        -0.35416367650032043, -0.576438844203949, -1.9843621253967285, 2.130864143371582,
        -1.9843621253967285, -1.7422900199890137, -0.3382715582847595, 0.7591221928596497,
        -1.7107279300689697, 2.120689630508423, -1.7107279300689697, -0.6439410448074341,
        0.31766968965530396, 0.3326948583126068,
    ]
    static let normalizedImagenet: [Double] = [
        -2.1179039478302, 2.248908281326294, 2.248908281326294, -0.16568204760551453,
        -0.35405433177948, -0.5938008427619934, -2.0357141494750977, 2.4285714626312256,
        -2.0357141494750977, -1.7731091976165771, -0.2499999701976776, 0.9404762387275696,
        -1.804444432258606, 2.640000104904175, -1.804444432258606, -0.5669716000556946,
        0.5484969019889832, 0.5659261345863342,
    ]
    static let testTransformBHash: UInt64 = 0x6155C2C288065B66
    static let testTransformBFirstRow: [UInt8] = [
        34, 138, 91, 63, 211, 120, 63, 231, 77, 58, 203, 46, 61, 180, 99, 11, 145, 141, 108, 232,
        70, 132, 162, 199, 182, 111, 152, 183, 198, 112, 190, 185, 155, 225, 169, 164, 147, 195,
        149, 40, 170, 159, 162, 101, 129, 152, 131, 84, 186, 16, 208, 216, 71, 127, 224, 119, 45,
        122, 176, 178, 123, 196, 132, 192, 163, 56, 178, 133, 189, 149, 164, 218, 171, 207, 155,
        134, 134, 149, 91, 249, 96, 10, 217, 212, 85, 100, 199, 145, 61, 138, 150, 69, 152, 136,
        41, 149,
    ]
    static let viewB1Hash: UInt64 = 0xF337AE1A241C6F73
    static let viewB1FirstRow: [UInt8] = [
        125, 115, 91, 118, 100, 77, 109, 85, 63, 100, 81, 60, 95, 87, 69, 93, 90, 79, 95, 86, 88,
        100, 86, 98, 103, 92, 102, 99, 96, 92, 86, 89, 69, 76, 75, 54, 82, 63, 60, 102, 65, 76,
        124, 83, 85, 119, 107, 89, 123, 121, 98, 118, 117, 112, 104, 105, 122, 96, 96, 118, 96, 98,
        100, 97, 107, 78, 98, 119, 58, 101, 124, 45, 104, 114, 43, 96, 93, 52, 78, 74, 66, 56, 67,
        81, 41, 74, 94, 36, 87, 99, 36, 102, 95, 37, 112, 90,
    ]
    static let viewB2Hash: UInt64 = 0xE33C53349AA9E0D4
    static let viewB2FirstRow: [UInt8] = [
        78, 78, 78, 119, 119, 119, 100, 100, 100, 64, 64, 64, 61, 61, 61, 143, 143, 143, 154, 154,
        154, 59, 59, 59, 67, 67, 67, 33, 33, 33, 71, 71, 71, 61, 61, 61, 67, 67, 67, 62, 62, 62,
        64, 64, 64, 53, 53, 53, 51, 51, 51, 42, 42, 42, 98, 98, 98, 29, 29, 29, 32, 32, 32, 103,
        103, 103, 60, 60, 60, 77, 77, 77, 61, 61, 61, 74, 74, 74, 88, 88, 88, 132, 132, 132, 131,
        131, 131, 125, 125, 125, 120, 120, 120, 126, 126, 126,
    ]
    static let viewB3Hash: UInt64 = 0x9E80A05445FF75B1
    static let viewB3FirstRow: [UInt8] = [
        240, 97, 198, 239, 107, 187, 239, 122, 166, 238, 147, 139, 234, 172, 108, 229, 196, 81,
        222, 213, 62, 210, 221, 57, 197, 217, 66, 184, 204, 84, 171, 187, 104, 163, 166, 124, 160,
        148, 138, 163, 130, 147, 167, 115, 152, 177, 103, 154, 186, 94, 154, 197, 90, 153, 207, 88,
        150, 213, 86, 146, 214, 85, 137, 208, 84, 125, 197, 81, 111, 178, 77, 102, 155, 74, 100,
        129, 70, 106, 101, 65, 123, 73, 61, 145, 49, 57, 170, 30, 55, 192, 16, 53, 208, 8, 52, 218,
    ]
    // END GENERATED
}
