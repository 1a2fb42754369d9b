// ImageDataset.swift: a labelled set of small RGB images held in memory, the form every
// dataset loader of cim-train returns (CIFAR-10/100 from their binary files, the built-in
// procedural shapes), and the dataset splits.
//
// Layout, the same as torchvision's `CIFAR10.data`: one UInt8 array of N images, each
// height x width x 3 (HWC), row-major, channels R, G, B interleaved:
//   pixels[((n * height + y) * width + x) * 3 + c]     n < N, y < height, x < width, c < 3
// The augmentations of SPEC section 4 work on 8-bit images, so the pixels stay UInt8 until
// the augmented view is converted to float and normalised.

/// A dataset split: the images to train on, or the held-out images to evaluate on.
public enum Split: String, Sendable, CaseIterable {
    case train, test
}

/// Images as uint8 HWC (height x width x 3, row-major), like torchvision's `CIFAR10.data`,
/// with one integer class label per image.
///
/// Image `n` occupies `pixels[n * imageByteCount ..< (n + 1) * imageByteCount]`; its byte
/// for row `y`, column `x` and channel `c` (0 = R, 1 = G, 2 = B) is at offset
/// `(y * width + x) * 3 + c` within that range.
public struct ImageDataset: Sendable {
    /// The dataset key: "cifar10", "cifar100" or "shapes" (the split is not part of it).
    public let name: String
    /// Image height in pixels.
    public let height: Int
    /// Image width in pixels.
    public let width: Int
    /// The number of classes; every label is in `0 ..< classes`.
    public let classes: Int
    /// `count * height * width * 3` bytes, image after image, each HWC.
    public let pixels: [UInt8]
    /// One label per image, in `0 ..< classes`.
    public let labels: [Int32]

    /// A dataset from its parts.
    ///
    /// - Precondition: `pixels.count == labels.count * height * width * 3`, and every label
    ///   is in `0 ..< classes`.
    public init(name: String, height: Int, width: Int, classes: Int, pixels: [UInt8],
                labels: [Int32]) {
        precondition(height > 0 && width > 0 && classes > 0,
                     "ImageDataset needs positive height, width and classes")
        precondition(pixels.count == labels.count * height * width * 3,
                     "ImageDataset: \(pixels.count) pixel bytes for \(labels.count) images of "
                        + "\(height)x\(width)x3")
        precondition(labels.allSatisfy { $0 >= 0 && Int($0) < classes },
                     "ImageDataset: a label is outside 0..<\(classes)")
        self.name = name
        self.height = height
        self.width = width
        self.classes = classes
        self.pixels = pixels
        self.labels = labels
    }

    /// The number of images.
    public var count: Int { labels.count }

    /// Bytes per image: `height * width * 3`.
    public var imageByteCount: Int { height * width * 3 }

    /// The `height * width * 3` bytes (HWC) of image `index`.
    public func image(_ index: Int) -> ArraySlice<UInt8> {
        precondition(index >= 0 && index < count, "image \(index) of a \(count)-image dataset")
        let size = imageByteCount
        return pixels[(index * size)..<((index + 1) * size)]
    }
}
