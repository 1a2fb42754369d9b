// Augmentation.swift: the image operations of the pretraining and evaluation views (SPEC.md
// section 4), ported from what torchvision 0.12 does on 8-bit PIL images with the reference's
// pinned Pillow 9.1.1.
//
// Images are 8-bit RGB, H×W×3 (rows top to bottom, channels interleaved), as PIL stores them.
// Every operation re-quantises to UInt8 the way Pillow does, so the outputs are the same
// bytes, not approximations: against Pillow 9.1.1 every byte matched in 4,000 random cases
// (crops, resizes, views, factors and sigmas; scripts/make_augmentation_expectations.py
// --parity) and over all 2^24 colours for the colour operations. Pillow ≥ 10 differs only in
// some resizes that change both sides: it orders the two passes by cost, where 9.1.1 always
// resamples horizontally first (with Pillow 13, 0.12 % of the bytes of random resized crops
// differ, almost all by 1).
//
//   crop        rows top..<top+h, columns left..<left+w.
//   resize      PIL BICUBIC (ImagingResample): separable, horizontal pass first into an 8-bit
//               intermediate, then vertical. For output index i of n over m input pixels:
//                 scale = m/n, fs = max(scale, 1), support = 2·fs, c = (i + 0.5)·scale,
//                 taps j in [trunc(c − support + 0.5), trunc(c + support + 0.5))
//                 clamped to [0, m),
//                 w_j = K((j − c + 0.5)/fs) / Σ_j K(..), K the a = −0.5 cubic kernel
//                 (K(x) = 1.5|x|³ − 2.5|x|² + 1 below 1,
//                  −0.5|x|³ + 2.5|x|² − 4|x| + 2 below 2);
//               weights to 22-bit fixed point rounded half away from zero, then
//                 out = clip((2^21 + Σ_j w_j·x_j) >> 22, 0, 255)   (arithmetic shift).
//               Shrinking widens the support by fs (antialiasing); the crop and the resize of
//               RandomResizedCrop are fused (the crop is read in place, never copied). The
//               horizontal pass runs on the transposed region, so both passes combine whole
//               rows of contiguous bytes (the integer sums are the same in any order).
//   flip        mirror left-right.
//   blend       PIL Image.blend(degenerate, image, α) with α = Float(factor):
//                 t = Float(d) + α·Float(x − d) in single precision (no FMA),
//                 out = 0 if t ≤ 0, 255 if t ≥ 255, else trunc(t).
//               brightness: d = 0; contrast: d = trunc(mean(L) + 0.5) over the image's luma;
//               saturation: d = L of the same pixel.
//   luma        L = (19595 R + 38470 G + 7471 B + 32768) >> 16 (ITU-R 601-2, rounded).
//   hue         RGB → PIL HSV bytes (Convert.c rgb2hsv, float/double mix reproduced exactly),
//               h += UInt8(truncatingIfNeeded: Int32(255·factor)) (mod 256), HSV → RGB. The
//               round trip is lossy, so it runs even when the shift is 0.
//   grayscale   L replicated to three channels.
//   blur        Pillow GaussianBlur(radius = σ): NOT a sampled Gaussian. Three box passes
//               along rows, then three along columns, each with the fractional radius
//                 q = σ²/3, L = √(12q + 1), l = ⌊(L − 1)/2⌋,
//                 r = l + (2l + 1)(l(l + 1) − 3q) / (6(q − (l + 1)²))        (Float, as C)
//               and, with ri = trunc(r), ww = UInt32(2^24 / (2r + 1)),
//               fw = (2^24 − (2ri + 1)·ww) / 2, edge pixels replicated:
//                 out[x] = (ww·Σ_{|k|≤ri} in[x+k] + fw·(in[x−ri−1] + in[x+ri+1])
//                           + 2^23) >> 24
//               every pass rounded to 8 bits.
//   solarize    v ≥ threshold (128) → 255 − v.
//   to tensor   CHW Float, (Float(v)/255 − mean_c)/std_c in float32 (torch's ToTensor and
//               Normalize, op for op; a 256-entry table per channel).
//
// Randomness (SPEC 4.1/4.4 distributions, not torch's generator stream): every draw for one
// sample's view comes from its own SplitMix64 seeded by a hash of (seed, epoch, sample index,
// view) (``DataRandom``), so the result does not depend on which thread augments the sample or
// in which order. RandomApply(p) applies when u ≤ p with u ~ U[0, 1) (53-bit): p = 1 always;
// p = 0 never (no number is drawn for it then). Flip and grayscale apply when u < p, as
// torchvision's RandomHorizontalFlip and RandomGrayscale do.

import Backend
import Foundation

// MARK: - Images

/// An 8-bit RGB image laid out H×W×3 (row-major, channels R, G, B interleaved), the layout
/// of a PIL "RGB" image and of the dataset arrays.
public struct RGBImage: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// `height·width·3` bytes.
    public var pixels: [UInt8]

    public init(height: Int, width: Int, pixels: [UInt8]) {
        precondition(height > 0 && width > 0, "image size \(height)x\(width) must be positive")
        precondition(pixels.count == height * width * 3,
                     "\(pixels.count) bytes for a \(height)x\(width) RGB image")
        self.height = height
        self.width = width
        self.pixels = pixels
    }

    public init(height: Int, width: Int, pixels: ArraySlice<UInt8>) {
        self.init(height: height, width: width, pixels: Array(pixels))
    }

    /// A uniform image.
    public init(height: Int, width: Int, red: UInt8, green: UInt8, blue: UInt8) {
        var bytes = [UInt8](repeating: 0, count: height * width * 3)
        for i in 0..<(height * width) {
            bytes[3 * i] = red
            bytes[3 * i + 1] = green
            bytes[3 * i + 2] = blue
        }
        self.init(height: height, width: width, pixels: bytes)
    }

    /// Channel `channel` (0 R, 1 G, 2 B) of the pixel in row `y`, column `x`.
    public subscript(y: Int, x: Int, channel: Int) -> UInt8 {
        pixels[(y * width + x) * 3 + channel]
    }
}

/// A rectangle of an image in pixels (PIL box (left, top, left + width, top + height)).
public struct CropBox: Sendable, Equatable, CustomStringConvertible {
    public var top: Int
    public var left: Int
    public var height: Int
    public var width: Int

    public init(top: Int, left: Int, height: Int, width: Int) {
        self.top = top
        self.left = left
        self.height = height
        self.width = width
    }

    public var description: String { "(top \(top), left \(left), \(height)x\(width))" }
}

// MARK: - Geometry

extension RGBImage {
    /// The pixels inside `box`, which must lie inside the image (PIL `crop`).
    public func cropped(_ box: CropBox) -> RGBImage {
        checkInside(box)
        var out = [UInt8](repeating: 0, count: box.height * box.width * 3)
        let rowBytes = box.width * 3
        pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                for y in 0..<box.height {
                    let from = source.baseAddress! + ((box.top + y) * width + box.left) * 3
                    (target.baseAddress! + y * rowBytes).update(from: from, count: rowBytes)
                }
            }
        }
        return RGBImage(height: box.height, width: box.width, pixels: out)
    }

    /// Mirrors the image left-right in place (PIL `transpose(FLIP_LEFT_RIGHT)`).
    public mutating func flipHorizontally() {
        let w = width
        pixels.withUnsafeMutableBufferPointer { p in
            for y in 0..<height {
                var a = y * w * 3
                var b = a + (w - 1) * 3
                while a < b {
                    p.swapAt(a, b)
                    p.swapAt(a + 1, b + 1)
                    p.swapAt(a + 2, b + 2)
                    a += 3
                    b -= 3
                }
            }
        }
    }

    /// PIL `resize((width, height), BICUBIC)`: see the file header for the exact arithmetic.
    public func resizedBicubic(height outHeight: Int, width outWidth: Int) -> RGBImage {
        resizedBicubic(region: CropBox(top: 0, left: 0, height: height, width: width),
                       height: outHeight, width: outWidth)
    }

    /// PIL `crop(box).resize((width, height), BICUBIC)` (torchvision `resized_crop`) without
    /// copying the crop first. An unchanged size returns the crop, as PIL does.
    public func resizedBicubic(region box: CropBox, height outHeight: Int, width outWidth: Int)
        -> RGBImage
    {
        checkInside(box)
        precondition(outHeight > 0 && outWidth > 0, "resize to \(outHeight)x\(outWidth)")
        let horizontal = outWidth != box.width
        let vertical = outHeight != box.height
        if !horizontal && !vertical { return cropped(box) }

        // rows of the region the vertical pass reads (all of them when it does not run)
        let kernelV = BicubicKernel(inSize: box.height, outSize: outHeight)
        let firstRow = vertical ? kernelV.bounds[0] : 0
        let lastRow = vertical
            ? kernelV.bounds[2 * outHeight - 2] + kernelV.bounds[2 * outHeight - 1] : box.height
        let rows = lastRow - firstRow
        var out = [UInt8](repeating: 0, count: outHeight * outWidth * 3)
        pixels.withUnsafeBufferPointer { source in
            let origin = source.baseAddress! + ((box.top + firstRow) * width + box.left) * 3
            guard horizontal else {
                // vertical only: resample the region's rows in place
                out.withUnsafeMutableBufferPointer { target in
                    kernelV.resample(origin, stride: width * 3, lanes: box.width * 3,
                                     into: target.baseAddress!, shift: firstRow)
                }
                return
            }
            // horizontal pass as a pass over the rows of the transposed region:
            // columns[x][y·3 + c] = region[y][x][c]
            let kernelH = BicubicKernel(inSize: box.width, outSize: outWidth)
            var columns = [UInt8](repeating: 0, count: box.width * rows * 3)
            var resampled = [UInt8](repeating: 0, count: outWidth * rows * 3)
            columns.withUnsafeMutableBufferPointer { columns in
                resampled.withUnsafeMutableBufferPointer { resampled in
                    Self.transpose(origin, rows: rows, columns: box.width, stride: width,
                                   into: columns.baseAddress!)
                    kernelH.resample(columns.baseAddress!, stride: rows * 3, lanes: rows * 3,
                                     into: resampled.baseAddress!, shift: 0)
                }
            }
            out.withUnsafeMutableBufferPointer { target in
                resampled.withUnsafeBufferPointer { resampled in
                    guard vertical else {
                        Self.transpose(resampled.baseAddress!, rows: outWidth, columns: rows,
                                       stride: rows, into: target.baseAddress!)
                        return
                    }
                    // back to rows, then the vertical pass (its bounds start at firstRow)
                    var staged = [UInt8](repeating: 0, count: rows * outWidth * 3)
                    staged.withUnsafeMutableBufferPointer { staged in
                        Self.transpose(resampled.baseAddress!, rows: outWidth, columns: rows,
                                       stride: rows, into: staged.baseAddress!)
                        kernelV.resample(staged.baseAddress!, stride: outWidth * 3,
                                         lanes: outWidth * 3, into: target.baseAddress!,
                                         shift: firstRow)
                    }
                }
            }
        }
        return RGBImage(height: outHeight, width: outWidth, pixels: out)
    }

    /// target[x][y] = source[y][x] for 3-byte pixels; `stride` is the source row length in
    /// pixels, the target rows are `rows` pixels long.
    static func transpose(_ source: UnsafePointer<UInt8>, rows: Int, columns: Int, stride: Int,
                          into target: UnsafeMutablePointer<UInt8>) {
        for y in 0..<rows {
            var from = source + y * stride * 3
            var to = target + y * 3
            for _ in 0..<columns {
                to[0] = from[0]
                to[1] = from[1]
                to[2] = from[2]
                from += 3
                to += rows * 3
            }
        }
    }

    private func checkInside(_ box: CropBox) {
        precondition(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0
                     && box.top + box.height <= height && box.left + box.width <= width,
                     "crop \(box) outside a \(height)x\(width) image")
    }
}

/// The coefficients of one resampling direction (Pillow `precompute_coeffs` followed by
/// `normalize_coeffs_8bpc`): for output i, taps bounds[2i] ..< bounds[2i] + bounds[2i+1] with
/// 22-bit fixed-point weights weights[i·taps ..< i·taps + bounds[2i+1]].
struct BicubicKernel {
    static let precisionBits: Int32 = 22
    let outSize: Int
    let taps: Int
    let bounds: [Int]
    let weights: [Int32]

    init(inSize: Int, outSize: Int) {
        // Pillow computes in double from float box edges; integer edges convert exactly
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = 2.0 * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var bounds = [Int](repeating: 0, count: 2 * outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        let inverse = 1.0 / filterScale
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale
            let first = max(Int(center - support + 0.5), 0)
            let count = min(Int(center + support + 0.5), inSize) - first
            var sum = 0.0
            for x in 0..<count {
                let w = Self.cubic((Double(x + first) - center + 0.5) * inverse)
                k[x] = w
                sum += w
            }
            for x in 0..<count {
                let w = sum != 0 ? k[x] / sum : k[x]
                let fixed = w * Double(1 << Self.precisionBits)
                weights[i * taps + x] = w < 0 ? Int32(-0.5 + fixed) : Int32(0.5 + fixed)
            }
            bounds[2 * i] = first
            bounds[2 * i + 1] = count
        }
        self.outSize = outSize
        self.taps = taps
        self.bounds = bounds
        self.weights = weights
    }

    /// Pillow's bicubic_filter, a = −0.5, evaluated in the same order.
    @inline(__always)
    static func cubic(_ value: Double) -> Double {
        let a = -0.5
        let x = abs(value)
        if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
        if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0.0
    }

    /// Output row i = Σ_t w_i[t] · source row (bounds[2i] + t − shift), `lanes` bytes per
    /// row, rows `stride` bytes apart; target rows are `lanes` bytes, outSize of them. The
    /// sums are Pillow's 32-bit integers (they cannot overflow by construction), so wrapping
    /// arithmetic is exact and lets the lane loop vectorise.
    func resample(_ source: UnsafePointer<UInt8>, stride: Int, lanes: Int,
                  into target: UnsafeMutablePointer<UInt8>, shift: Int) {
        let half: Int32 = 1 << (Self.precisionBits - 1)
        let accumulator = UnsafeMutablePointer<Int32>.allocate(capacity: lanes)
        defer { accumulator.deallocate() }
        bounds.withUnsafeBufferPointer { bounds in
            weights.withUnsafeBufferPointer { weights in
                for i in 0..<outSize {
                    accumulator.update(repeating: half, count: lanes)
                    let first = bounds[2 * i] - shift
                    for t in 0..<bounds[2 * i + 1] {
                        let w = weights[i * taps + t]
                        let row = source + (first + t) * stride
                        for l in 0..<lanes { accumulator[l] &+= Int32(row[l]) &* w }
                    }
                    let out = target + i * lanes
                    for l in 0..<lanes {
                        let v = accumulator[l] >> Self.precisionBits
                        out[l] = UInt8(truncatingIfNeeded: min(max(v, 0), 255))
                    }
                }
            }
        }
    }
}

// MARK: - Colour

extension RGBImage {
    /// PIL luma of one pixel: (19595 R + 38470 G + 7471 B + 32768) >> 16.
    @inline(__always)
    public static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: (19595 * Int(r) + 38470 * Int(g) + 7471 * Int(b) + 32768) >> 16)
    }

    /// PIL Image.blend(degenerate, image, α) for one byte (see the file header).
    @inline(__always)
    static func blend(_ degenerate: UInt8, _ value: UInt8, _ alpha: Float) -> UInt8 {
        let t = Float(Int(degenerate)) + alpha * Float(Int(value) - Int(degenerate))
        if t <= 0 { return 0 }
        if t >= 255 { return 255 }
        return UInt8(t)
    }

    /// Blends every byte with the constant `degenerate`, through a 256-entry table.
    private mutating func blendAll(with degenerate: UInt8, _ alpha: Float) {
        var table = [UInt8](repeating: 0, count: 256)
        for v in 0..<256 { table[v] = Self.blend(degenerate, UInt8(v), alpha) }
        table.withUnsafeBufferPointer { table in
            pixels.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = table[Int(p[i])] }
            }
        }
    }

    /// torchvision `adjust_brightness` (PIL ImageEnhance.Brightness): blend with black.
    public mutating func adjustBrightness(_ factor: Double) {
        blendAll(with: 0, Float(factor))
    }

    /// torchvision `adjust_contrast` (PIL ImageEnhance.Contrast): blend with a grey image at
    /// the rounded mean luma.
    public mutating func adjustContrast(_ factor: Double) {
        let alpha = Float(factor)
        var sum = 0
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<(height * width) {
                sum += Int(Self.luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]))
            }
        }
        blendAll(with: UInt8(Int(Double(sum) / Double(height * width) + 0.5)), alpha)
    }

    /// torchvision `adjust_saturation` (PIL ImageEnhance.Color): blend with the luma image.
    public mutating func adjustSaturation(_ factor: Double) {
        let alpha = Float(factor)
        pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(height * width) {
                let l = Self.luma(p[3 * i], p[3 * i + 1], p[3 * i + 2])
                p[3 * i] = Self.blend(l, p[3 * i], alpha)
                p[3 * i + 1] = Self.blend(l, p[3 * i + 1], alpha)
                p[3 * i + 2] = Self.blend(l, p[3 * i + 2], alpha)
            }
        }
    }

    /// torchvision `adjust_hue` on a PIL image: a shift of the 8-bit PIL HSV hue by
    /// trunc(255·factor) with wrap-around, `factor` in [−0.5, 0.5].
    public mutating func adjustHue(_ factor: Double) {
        precondition(abs(factor) <= 0.5, "hue factor \(factor) is not in [-0.5, 0.5]")
        let shift = UInt8(truncatingIfNeeded: Int32(factor * 255))
        let tables = HSVTables.shared
        pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(height * width) {
                let (h, s, v) = Self.pillowHSV(p[3 * i], p[3 * i + 1], p[3 * i + 2])
                let (r, g, b) = Self.pillowRGB(h &+ shift, s, v, tables)
                p[3 * i] = r
                p[3 * i + 1] = g
                p[3 * i + 2] = b
            }
        }
    }

    /// Pillow rgb2hsv_row: C's float and double steps kept as written (a double literal
    /// promotes the whole expression). Only the two channel ratios the hue needs are
    /// computed.
    @inline(__always)
    static func pillowHSV(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
        let maxc = max(max(r, g), b)
        let minc = min(min(r, g), b)
        if maxc == minc { return (0, 0, maxc) }
        let cr = Float(maxc - minc)
        let s = cr / Float(maxc)
        var h: Float
        if r == maxc {
            h = Float(maxc - b) / cr - Float(maxc - g) / cr
        } else if g == maxc {
            h = Float(2.0 + Double(Float(maxc - r) / cr) - Double(Float(maxc - b) / cr))
        } else {
            h = Float(4.0 + Double(Float(maxc - g) / cr) - Double(Float(maxc - r) / cr))
        }
        // fmod(h/6 + 1, 1): h is in [−1, 5), so the argument is in [5/6, 11/6) and the
        // subtraction is exact
        let turns = Double(h) / 6.0 + 1.0
        h = Float(turns >= 1.0 ? turns - 1.0 : turns)
        return (clip8(Int(Double(h) * 255.0)), clip8(Int(Double(s) * 255.0)), maxc)
    }

    /// Pillow hsv2rgb. C's `floor` and `round` (half away from zero) are taken on values
    /// in [0, 256), where truncation and the fraction test below are exact; the terms that
    /// depend on one byte come from `tables`.
    @inline(__always)
    static func pillowRGB(_ h: UInt8, _ s: UInt8, _ v: UInt8, _ tables: HSVTables)
        -> (UInt8, UInt8, UInt8)
    {
        if s == 0 { return (v, v, v) }
        let sector = tables.sector[Int(h)]
        let f = tables.fraction[Int(h)]
        let fs = tables.saturation[Int(s)]
        let fv = Double(Float(v))
        let p = roundHalfUp(fv * (1.0 - Double(fs)))
        let q = roundHalfUp(fv * (1.0 - Double(fs * f)))
        let t = roundHalfUp(fv * (1.0 - Double(fs) * (1.0 - Double(f))))
        switch sector {
        case 0: return (v, t, p)
        case 1: return (q, v, p)
        case 2: return (p, v, t)
        case 3: return (p, q, v)
        case 4: return (t, p, v)
        default: return (v, p, q)
        }
    }

    /// C `round` then CLIP8 for x in [0, 256): x − trunc(x) is exact there.
    @inline(__always)
    static func roundHalfUp(_ x: Double) -> UInt8 {
        let whole = Int(x)
        return clip8(x - Double(whole) >= 0.5 ? whole + 1 : whole)
    }

    @inline(__always)
    static func clip8(_ v: Int) -> UInt8 { v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(v)) }

    /// torchvision `rgb_to_grayscale(img, 3)`: PIL luma replicated to the three channels.
    public mutating func convertToGrayscale() {
        pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(height * width) {
                let l = Self.luma(p[3 * i], p[3 * i + 1], p[3 * i + 2])
                p[3 * i] = l
                p[3 * i + 1] = l
                p[3 * i + 2] = l
            }
        }
    }

    /// PIL ImageOps.solarize: every value ≥ threshold becomes 255 − value.
    public mutating func solarize(threshold: UInt8 = 128) {
        for i in pixels.indices where pixels[i] >= threshold { pixels[i] = 255 - pixels[i] }
    }
}

/// The per-byte terms of Pillow's hsv2rgb: for hue byte h, i = floor(h·6.0/255.0) (as
/// `sector`, i mod 6) and f = Float(h·6.0/255.0 − i); for saturation byte s,
/// Float(s/255.0).
struct HSVTables: Sendable {
    let sector: [Int]
    let fraction: [Float]
    let saturation: [Float]

    static let shared = HSVTables()

    private init() {
        var sector = [Int](repeating: 0, count: 256)
        var fraction = [Float](repeating: 0, count: 256)
        var saturation = [Float](repeating: 0, count: 256)
        for byte in 0..<256 {
            let h6 = Double(Float(byte)) * 6.0 / 255.0
            let i = Int(h6.rounded(.down))
            sector[byte] = i % 6
            fraction[byte] = Float(h6 - Double(Float(i)))
            saturation[byte] = Float(Double(Float(byte)) / 255.0)
        }
        self.sector = sector
        self.fraction = fraction
        self.saturation = saturation
    }
}

// MARK: - Blur

extension RGBImage {
    /// Pillow `ImageFilter.GaussianBlur(radius: sigma)`: three fractional box passes per axis.
    public mutating func gaussianBlur(sigma: Double) {
        boxBlur(radius: Self.pillowBoxRadius(sigma: Float(sigma), passes: 3), passes: 3)
    }

    /// Pillow `_gaussian_blur_radius`: the box radius whose `passes`-fold repetition has
    /// variance σ², in Pillow's float/double steps.
    public static func pillowBoxRadius(sigma: Float, passes: Int) -> Float {
        let sigma2 = sigma * sigma / Float(passes)
        let length = Float((12.0 * Double(sigma2) + 1.0).squareRoot())
        let l = Float(((Double(length) - 1.0) / 2.0).rounded(.down))
        var a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2)
        a /= 6 * (sigma2 - (l + 1) * (l + 1))
        return l + a
    }

    /// Pillow `ImagingBoxBlur`: `passes` box passes along rows, then `passes` along columns,
    /// each rounded to 8 bits (see the file header). Like Pillow, the row passes run on the
    /// transposed image, so every pass walks whole rows of contiguous lanes.
    public mutating func boxBlur(radius: Float, passes: Int) {
        precondition(radius >= 0 && passes >= 1, "box blur radius \(radius), passes \(passes)")
        if radius == 0 { return }
        let r = Int(radius)
        let ww = UInt32(Float(1 << 24) / (radius * 2 + 1))
        let fw = ((1 << 24) - UInt32(2 * r + 1) * ww) / 2
        let (h, w) = (height, width)
        let count = h * w * 3
        let a = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        let b = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        let sums = UnsafeMutablePointer<UInt32>.allocate(capacity: max(h, w) * 3)
        defer {
            a.deallocate()
            b.deallocate()
            sums.deallocate()
        }
        pixels.withUnsafeMutableBufferPointer { p in
            // transposed: a[x][y·3 + c]; the row passes become passes along its columns
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 { a[(x * h + y) * 3 + c] = UInt32(p[(y * w + x) * 3 + c]) }
                }
            }
            var (source, target) = (a, b)
            for _ in 0..<passes {
                Self.boxPass(source, into: target, count: w, lanes: h * 3, radius: r, ww: ww,
                             fw: fw, sums: sums)
                swap(&source, &target)
            }
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 { target[(y * w + x) * 3 + c] = source[(x * h + y) * 3 + c] }
                }
            }
            swap(&source, &target)
            for _ in 0..<passes {
                Self.boxPass(source, into: target, count: h, lanes: w * 3, radius: r, ww: ww,
                             fw: fw, sums: sums)
                swap(&source, &target)
            }
            for i in 0..<count { p[i] = UInt8(truncatingIfNeeded: source[i]) }
        }
    }

    /// One box pass along `count` rows of `lanes` values, rows outside the image replicating
    /// the edge rows. Row x of the target, with S the sum of source rows x−ri … x+ri:
    ///   (ww·S + fw·(row x−ri−1 + row x+ri+1) + 2^23) >> 24
    /// S slides by one row per step. Every value stays below 2^32 (ww·(2ri+1) + 2fw = 2^24),
    /// so wrapping UInt32 arithmetic is exact, as in Pillow.
    @inline(__always)
    private static func boxPass(_ source: UnsafeMutablePointer<UInt32>,
                                into target: UnsafeMutablePointer<UInt32>, count n: Int,
                                lanes: Int, radius r: Int, ww: UInt32, fw: UInt32,
                                sums: UnsafeMutablePointer<UInt32>) {
        func row(_ i: Int) -> UnsafeMutablePointer<UInt32> {
            source + min(max(i, 0), n - 1) * lanes
        }
        // the window of row −1: rows −r−1 … r−1
        sums.update(repeating: 0, count: lanes)
        for i in (-r - 1)...(r - 1) {
            let p = row(i)
            for l in 0..<lanes { sums[l] &+= p[l] }
        }
        for x in 0..<n {
            let leaving = row(x - r - 1)
            let entering = row(x + r)
            let far = row(x + r + 1)
            let out = target + x * lanes
            for l in 0..<lanes {
                let sum = sums[l] &+ entering[l] &- leaving[l]
                sums[l] = sum
                out[l] = (sum &* ww &+ (leaving[l] &+ far[l]) &* fw &+ (1 << 23)) >> 24
            }
        }
    }
}

// MARK: - To tensor

/// Per-channel normalisation constants (SPEC 4.2) and the ToTensor + Normalize step.
///
/// ```
/// out[c, y, x] = (Float(image[y, x, c]) / 255 − mean[c]) / std[c]     (float32)
/// ```
public struct Normalization: Sendable, Equatable {
    /// R, G, B means, as float32 (torch converts the Python doubles the same way).
    public let mean: [Float]
    /// R, G, B standard deviations, as float32.
    public let std: [Float]
    /// The 256 outputs of each channel, channel-major.
    private let table: [Float]

    public init(mean: [Double], std: [Double]) {
        precondition(mean.count == 3 && std.count == 3, "normalisation needs 3 means and stds")
        self.mean = mean.map { Float($0) }
        self.std = std.map { Float($0) }
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            for v in 0..<256 {
                table[c * 256 + v] = (Float(v) / 255 - self.mean[c]) / self.std[c]
            }
        }
        self.table = table
    }

    public static let cifar10 = Normalization(mean: [0.4914, 0.4822, 0.4465],
                                              std: [0.247, 0.243, 0.261])
    public static let cifar100 = Normalization(mean: [0.5071, 0.4865, 0.4409],
                                               std: [0.2673, 0.2564, 0.2762])
    /// Tiny ImageNet, ImageNet-100 and ImageNet-1K.
    public static let imagenet = Normalization(mean: [0.485, 0.456, 0.406],
                                               std: [0.229, 0.224, 0.225])

    /// Writes the image as 3×H×W floats starting at `target`.
    public func write(_ image: RGBImage, to target: UnsafeMutablePointer<Float>) {
        let plane = image.height * image.width
        table.withUnsafeBufferPointer { table in
            image.pixels.withUnsafeBufferPointer { p in
                for i in 0..<plane {
                    target[i] = table[Int(p[3 * i])]
                    target[plane + i] = table[256 + Int(p[3 * i + 1])]
                    target[2 * plane + i] = table[512 + Int(p[3 * i + 2])]
                }
            }
        }
    }

    /// The image as 3×H×W floats.
    public func tensor(_ image: RGBImage) -> [Float] {
        let count = 3 * image.height * image.width
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            write(image, to: buffer.baseAddress!)
            initialized = count
        }
    }
}

// MARK: - Random streams

/// Where every random draw of the data pipeline comes from.
///
/// A sample's view is augmented with `SplitMix64(seed: key)`, where
/// ```
/// key = m(m(m(m(seed ⊕ 0x6A09E667F3BCC909) ⊕ epoch) ⊕ sample) ⊕ view)
/// ```
/// and m is the SplitMix64 output mix (a bijection of UInt64), so the draws for
/// (seed, epoch, sample index, view) are the same whichever thread handles the sample, and in
/// whatever order. The epoch's shuffle uses sample = −1, view = −1.
public enum DataRandom {
    /// The generator of one view of one sample in one epoch.
    public static func generator(seed: UInt64, epoch: Int, sample: Int, view: Int)
        -> SplitMix64
    {
        var h = mix(seed ^ 0x6A09_E667_F3BC_C909)
        h = mix(h ^ UInt64(bitPattern: Int64(epoch)))
        h = mix(h ^ UInt64(bitPattern: Int64(sample)))
        h = mix(h ^ UInt64(bitPattern: Int64(view)))
        return SplitMix64(seed: h)
    }

    /// The generator of an epoch's shuffle.
    public static func shuffleGenerator(seed: UInt64, epoch: Int) -> SplitMix64 {
        generator(seed: seed, epoch: epoch, sample: -1, view: -1)
    }

    /// The visiting order of an epoch: a Fisher–Yates shuffle of 0..<count.
    public static func epochOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<count)
        var random = shuffleGenerator(seed: seed, epoch: epoch)
        var i = count - 1
        while i > 0 {
            order.swapAt(i, random.index(i + 1))
            i -= 1
        }
        return order
    }

    /// SplitMix64's finaliser (Stafford's mix 13).
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    /// RandomApply(p): true (apply) when u ≤ p, u ~ U[0, 1); false without a draw when
    /// p = 0.
    @inline(__always)
    mutating func randomApply(_ probability: Double) -> Bool {
        probability > 0 && uniform() <= probability
    }
}

// MARK: - Random views

/// The four ColorJitter operations, in torchvision's numbering.
public enum ColorOperation: Int, Sendable, CaseIterable {
    case brightness = 0, contrast, saturation, hue
}

/// One ColorJitter draw: the order of the operations and their factors.
public struct ColorJitterDraw: Sendable, Equatable {
    /// A permutation of the four operations.
    public var order: [ColorOperation]
    /// Nil where the jitter strength is 0 (the operation is skipped).
    public var brightness: Double?
    public var contrast: Double?
    public var saturation: Double?
    public var hue: Double?

    public init(order: [ColorOperation], brightness: Double?, contrast: Double?,
                saturation: Double?, hue: Double?) {
        self.order = order
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
    }

    /// Applies the operations in `order`.
    public func apply(to image: inout RGBImage) {
        for operation in order {
            switch operation {
            case .brightness: if let f = brightness { image.adjustBrightness(f) }
            case .contrast: if let f = contrast { image.adjustContrast(f) }
            case .saturation: if let f = saturation { image.adjustSaturation(f) }
            case .hue: if let f = hue { image.adjustHue(f) }
            }
        }
    }
}

/// Every random choice of one augmented view, drawn before any pixel is touched.
public struct ViewDraw: Sendable, Equatable {
    public var crop: CropBox
    public var flip: Bool
    /// Nil when the RandomApply around ColorJitter skipped it.
    public var jitter: ColorJitterDraw?
    public var grayscale: Bool
    /// Nil when the blur is skipped.
    public var blurSigma: Double?
    public var solarize: Bool

    public init(crop: CropBox, flip: Bool, jitter: ColorJitterDraw?, grayscale: Bool,
                blurSigma: Double?, solarize: Bool) {
        self.crop = crop
        self.flip = flip
        self.jitter = jitter
        self.grayscale = grayscale
        self.blurSigma = blurSigma
        self.solarize = solarize
    }
}

/// The random transform of one view (SPEC 4.1), applied in torchvision's Compose order:
/// RandomResizedCrop (bicubic) → horizontal flip → RandomApply(ColorJitter) → RandomGrayscale
/// → RandomApply(GaussianBlur) → RandomApply(Solarization).
///
/// ```swift
/// let view = ViewAugmentation.pretraining(view: 2, size: 32)
/// var random = DataRandom.generator(seed: 1, epoch: 0, sample: 17, view: 2)
/// let out = view(image, random: &random)          // 32×32 RGBImage
/// ```
public struct ViewAugmentation: Sendable, Equatable {
    /// Output side S.
    public var size: Int
    /// Crop area as a fraction of the image, drawn uniformly.
    public var cropScale: ClosedRange<Double> = 0.08...1.0
    /// Crop aspect ratio w/h, drawn log-uniformly.
    public var cropRatio: ClosedRange<Double> = (3.0 / 4.0)...(4.0 / 3.0)
    public var flipProbability = 0.5
    public var jitterProbability = 0.8
    /// ColorJitter strengths: factors U(1 − b, 1 + b) (clamped at 0), hue U(−h, h).
    public var brightness = 0.4
    public var contrast = 0.4
    public var saturation = 0.2
    public var hue = 0.1
    public var grayscaleProbability = 0.2
    public var blurProbability: Double
    /// σ of the Gaussian blur, drawn uniformly.
    public var blurSigma: ClosedRange<Double> = 0.1...2.0
    public var solarizeProbability: Double
    public var solarizeThreshold: UInt8 = 128

    public init(size: Int, blurProbability: Double, solarizeProbability: Double) {
        precondition(size > 0, "view size \(size) must be positive")
        self.size = size
        self.blurProbability = blurProbability
        self.solarizeProbability = solarizeProbability
    }

    /// SPEC 4.1: view 1 always blurs and never solarizes; view 2 blurs with p = 0.1 and
    /// solarizes with p = 0.2. Everything else is shared.
    public static func pretraining(view: Int, size: Int) -> ViewAugmentation {
        precondition(view == 1 || view == 2, "pretraining view must be 1 or 2, not \(view)")
        return view == 1
            ? ViewAugmentation(size: size, blurProbability: 1.0, solarizeProbability: 0.0)
            : ViewAugmentation(size: size, blurProbability: 0.1, solarizeProbability: 0.2)
    }

    /// SPEC 4.3 linear-probe training: RandomResizedCrop (default scale and ratio, bicubic)
    /// and the flip only.
    public static func linearTrain(size: Int) -> ViewAugmentation {
        var view = ViewAugmentation(size: size, blurProbability: 0, solarizeProbability: 0)
        view.jitterProbability = 0
        view.grayscaleProbability = 0
        return view
    }

    /// Draws every random choice for an image of the given size, in the order the
    /// transforms run.
    public func sample(height: Int, width: Int, random: inout SplitMix64) -> ViewDraw {
        let crop = Self.sampleCrop(height: height, width: width, scale: cropScale,
                                   ratio: cropRatio, random: &random)
        let flip = random.uniform() < flipProbability
        var jitter: ColorJitterDraw? = nil
        if random.randomApply(jitterProbability) {
            var order = ColorOperation.allCases
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, random.index(i + 1))
            }
            func factor(_ strength: Double) -> Double? {
                strength > 0 ? random.uniform(max(0, 1 - strength), 1 + strength) : nil
            }
            let b = factor(brightness)
            let c = factor(contrast)
            let s = factor(saturation)
            let h: Double? = hue > 0 ? random.uniform(-hue, hue) : nil
            jitter = ColorJitterDraw(order: order, brightness: b, contrast: c, saturation: s,
                                     hue: h)
        }
        let grayscale = random.uniform() < grayscaleProbability
        var sigma: Double? = nil
        if random.randomApply(blurProbability) {
            sigma = random.uniform(blurSigma.lowerBound, blurSigma.upperBound)
        }
        let solarize = random.randomApply(solarizeProbability)
        return ViewDraw(crop: crop, flip: flip, jitter: jitter, grayscale: grayscale,
                        blurSigma: sigma, solarize: solarize)
    }

    /// Applies drawn choices: the output is size × size.
    public func apply(_ draw: ViewDraw, to image: RGBImage) -> RGBImage {
        var out = image.resizedBicubic(region: draw.crop, height: size, width: size)
        if draw.flip { out.flipHorizontally() }
        draw.jitter?.apply(to: &out)
        if draw.grayscale { out.convertToGrayscale() }
        if let sigma = draw.blurSigma { out.gaussianBlur(sigma: sigma) }
        if draw.solarize { out.solarize(threshold: solarizeThreshold) }
        return out
    }

    /// Draws and applies.
    public func callAsFunction(_ image: RGBImage, random: inout SplitMix64) -> RGBImage {
        apply(sample(height: image.height, width: image.width, random: &random), to: image)
    }

    /// torchvision RandomResizedCrop.get_params: up to 10 tries of area fraction
    /// U(scale) and log-uniform aspect w/h; w = round(√(area·aspect)),
    /// h = round(√(area/aspect)) (half to even, as Python's round); accepted when
    /// 0 < w ≤ width and 0 < h ≤ height, at top ~ U{0..height−h}, left ~ U{0..width−w}.
    /// Otherwise the whole image if its aspect is inside `ratio`, else the largest centred
    /// crop at the nearest bound aspect.
    public static func sampleCrop(height: Int, width: Int, scale: ClosedRange<Double>,
                                  ratio: ClosedRange<Double>, random: inout SplitMix64)
        -> CropBox
    {
        let area = Double(height * width)
        let logLow = log(ratio.lowerBound)
        let logHigh = log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * random.uniform(scale.lowerBound, scale.upperBound)
            let aspect = exp(random.uniform(logLow, logHigh))
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = random.index(height - h + 1)
                let left = random.index(width - w + 1)
                return CropBox(top: top, left: left, height: h, width: w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var (h, w) = (height, width)
        if inRatio < ratio.lowerBound {
            h = Int((Double(w) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > ratio.upperBound {
            w = Int((Double(h) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        return CropBox(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w)
    }
}

// MARK: - Evaluation transforms

/// The evaluation transforms of SPEC 4.3 (before ToTensor + Normalize).
public enum EvalTransform: Sendable, Equatable {
    /// Resize the shorter side to trunc(S·8/7) (bicubic), then centre-crop S×S.
    case test(size: Int)
    /// RandomResizedCrop(S) with the default scale (0.08, 1) and ratio (3/4, 4/3), bicubic,
    /// then a horizontal flip with p = 0.5.
    case linearTrain(size: Int)

    public var size: Int {
        switch self {
        case .test(let size), .linearTrain(let size): return size
        }
    }

    /// Whether the transform draws random numbers.
    public var isRandom: Bool {
        if case .linearTrain = self { return true }
        return false
    }

    /// The test transform's resize target, Python's int(S·(8/7)): 32 → 36, 64 → 73,
    /// 224 → 256.
    public static func testResizeSide(size: Int) -> Int { Int(Double(size) * (8.0 / 7.0)) }

    public func apply(to image: RGBImage, random: inout SplitMix64) -> RGBImage {
        switch self {
        case .test(let size):
            let resized = Self.resizeShorterSide(image, to: Self.testResizeSide(size: size))
            return Self.centerCrop(resized, size: size)
        case .linearTrain(let size):
            return ViewAugmentation.linearTrain(size: size)(image, random: &random)
        }
    }

    /// torchvision Resize(int) on a PIL image: the shorter side becomes `side`, the longer
    /// trunc(side·long/short); bicubic.
    public static func resizeShorterSide(_ image: RGBImage, to side: Int) -> RGBImage {
        let (h, w) = (image.height, image.width)
        let (short, long) = w <= h ? (w, h) : (h, w)
        if short == side { return image }
        let newLong = Int(Double(side * long) / Double(short))
        let (newH, newW) = w <= h ? (newLong, side) : (side, newLong)
        return image.resizedBicubic(height: newH, width: newW)
    }

    /// torchvision CenterCrop: top = round((H − S)/2), left = round((W − S)/2), rounding half
    /// to even (Python's round); the image must be at least S×S.
    public static func centerCrop(_ image: RGBImage, size: Int) -> RGBImage {
        precondition(image.height >= size && image.width >= size,
                     "centre crop \(size) of a \(image.height)x\(image.width) image")
        let top = Int((Double(image.height - size) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(image.width - size) / 2).rounded(.toNearestOrEven))
        return image.cropped(CropBox(top: top, left: left, height: size, width: size))
    }
}
