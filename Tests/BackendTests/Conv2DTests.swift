// Conv2DTests.swift: CPUBackend's three convolution passes against the naive fp64 7-loop
// references in NaiveReference.swift, under every convolution algorithm.
//
// Each geometry runs with ConvolutionAlgorithm .auto, .im2col and .winograd, so both the
// im2col + GEMM path and Winograd F(2x2, 3x3) (all three passes of 3x3 stride-1
// convolutions) are checked on the same data. The geometries reach the paths of the
// implementation: one image per GEMM with and without im2col (the 1x1 stride-1 unpadded
// "direct" case), several images per GEMM with a short last group (batch 37 is prime, so
// any group size leaves one), Winograd tiles cut off by odd output sizes and several
// Winograd image groups, strides that do not divide the input, padding wider than a 1x1
// kernel needs, 7x7 kernels with padding 3, and non-square images and kernels, so a
// height/width mix-up shows. Output tensors start full of NaN, so a pass that leaves any
// element unwritten fails. Errors are measured against the sum of |terms| of each element
// (1e-5 of it in float32).

import Backend
import TestSupport
import XCTest

final class Conv2DTests: XCTestCase {
    static let rtol = 1e-5

    private func nanTensor(_ backend: CPUBackend, _ shape: [Int]) throws -> Tensor {
        try backend.tensor([Float](repeating: .nan, count: shape.reduce(1, *)), shape: shape)
    }

    /// Runs forward, backward data and backward filter on random data under each algorithm
    /// and thread count, and compares each result with the naive reference.
    private func checkPasses(
        _ g: Conv2DGeometry, seed: UInt64,
        algorithms: [ConvolutionAlgorithm] = ConvolutionAlgorithm.allCases,
        threads: [Int] = [2], backend shared: CPUBackend? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var rng = SplitMix64(seed: seed)
        let x = rng.floats(g.inputShape.reduce(1, *))
        let w = rng.floats(g.weightShape.reduce(1, *))
        let dy = rng.floats(g.outputShape.reduce(1, *))
        let (xd, wd, dyd) = (x.map(Double.init), w.map(Double.init), dy.map(Double.init))
        let yRef = Naive.conv2dForward(g, x: xd, w: wd)
        let dxRef = Naive.conv2dBackwardData(g, dy: dyd, w: wd)
        let dwRef = Naive.conv2dBackwardFilter(g, x: xd, dy: dyd)

        for algorithm in algorithms {
            for threadCount in threads {
                let backend =
                    try shared ?? CPUBackend(threads: threadCount, convolution: algorithm)
                let label = "[\(g)] \(algorithm) \(backend.threads) threads"
                let tx = try backend.tensor(x, shape: g.inputShape)
                let tw = try backend.tensor(w, shape: g.weightShape)
                let tdy = try backend.tensor(dy, shape: g.outputShape)

                // forward
                let ty = try nanTensor(backend, g.outputShape)
                try backend.conv2dForward(input: tx, weight: tw, output: ty, geometry: g)
                let y = try backend.download(ty, as: Float.self).map(Double.init)
                assertClose(
                    y, yRef.values, scale: yRef.magnitudes, rtol: Self.rtol,
                    "forward \(label)", file: file, line: line)
                reportDifference("y \(label)", y, yRef.values, scale: yRef.magnitudes)

                // backward data
                let tdx = try nanTensor(backend, g.inputShape)
                try backend.conv2dBackwardData(
                    outputGradient: tdy, weight: tw, inputGradient: tdx, geometry: g)
                let dx = try backend.download(tdx, as: Float.self).map(Double.init)
                assertClose(
                    dx, dxRef.values, scale: dxRef.magnitudes, rtol: Self.rtol,
                    "backward data \(label)", file: file, line: line)
                reportDifference("dx \(label)", dx, dxRef.values, scale: dxRef.magnitudes)

                // backward filter, overwriting
                let tdw = try nanTensor(backend, g.weightShape)
                try backend.conv2dBackwardFilter(
                    input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
                    accumulate: false)
                let dw = try backend.download(tdw, as: Float.self).map(Double.init)
                assertClose(
                    dw, dwRef.values, scale: dwRef.magnitudes, rtol: Self.rtol,
                    "backward filter \(label)", file: file, line: line)
                reportDifference("dw \(label)", dw, dwRef.values, scale: dwRef.magnitudes)
            }
        }
    }

    // MARK: - Geometries

    func testOddSizes3x3Stride1Pad1() throws {
        try checkPasses(
            Conv2DGeometry(
                batch: 1, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 3,
                stride: 1, padding: 1),
            seed: 101)
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 3,
                stride: 1, padding: 1),
            seed: 102)
    }

    func testUnpaddedNonSquare() throws {
        // P = 4, Q = 9: the output is smaller than the input and not square.
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 2, inHeight: 6, inWidth: 11, outChannels: 5, kernel: 3),
            seed: 103)
    }

    func testStride2() throws {
        // (7 + 2 - 3) / 2 + 1 = 4 rows, (9 + 2 - 3) / 2 + 1 = 5 columns.
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 3,
                stride: 2, padding: 1),
            seed: 104)
        // Unpadded stride 2 over 7x8: the last row and column of the input are never read,
        // so backward data must write zeros there.
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 7, inWidth: 8, outChannels: 4, kernel: 3,
                stride: 2, padding: 0),
            seed: 105)
    }

    func testKernel7x7Pad3() throws {
        try checkPasses(
            Conv2DGeometry(
                batch: 1, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 7,
                stride: 1, padding: 3),
            seed: 106)
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 7,
                stride: 2, padding: 3),
            seed: 107)
    }

    func testPointwiseDirectPath() throws {
        // 1x1, stride 1, unpadded, one image per GEMM: col is the image itself. Batch 1
        // gives one group; 16x17 outputs (272 columns) keep G = 1 with several images.
        try checkPasses(
            Conv2DGeometry(
                batch: 1, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 1),
            seed: 108)
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 16, inWidth: 17, outChannels: 5, kernel: 1),
            seed: 109)
    }

    func testPointwiseStride2AndPadded() throws {
        // 1x1 stride 2: every other input pixel is skipped (and gets a zero gradient).
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 1,
                stride: 2),
            seed: 110)
        // 1x1 with padding 1: the output border sees only padding and must be exactly 0.
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 5, inWidth: 6, outChannels: 4, kernel: 1,
                stride: 1, padding: 1),
            seed: 111)
    }

    func testGroupedImagesWithShortLastGroup() throws {
        // 4x4 outputs give 16 GEMM columns per image, so images are grouped; batch 37 is
        // prime, so the last group is short whatever the group size. Thread counts 1, 2 and
        // 3 split the groups differently (and backward filter sums per-thread partials).
        try checkPasses(
            Conv2DGeometry(
                batch: 37, inChannels: 3, inHeight: 8, inWidth: 8, outChannels: 4, kernel: 3,
                stride: 2, padding: 1),
            seed: 112, threads: [1, 2, 3])
        // Grouped 1x1 stride 1 (not direct, since a group holds several images).
        try checkPasses(
            Conv2DGeometry(
                batch: 19, inChannels: 3, inHeight: 4, inWidth: 5, outChannels: 6, kernel: 1),
            seed: 113, threads: [1, 2, 3])
    }

    func testOneImagePerGemmWithIm2col() throws {
        // 16x16 outputs and batch 2 on 2 threads: one image per GEMM, but 3x3 padding still
        // needs im2col.
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 2, inHeight: 16, inWidth: 16, outChannels: 3, kernel: 3,
                stride: 1, padding: 1),
            seed: 114)
    }

    func testAsymmetricKernelStrideAndPadding() throws {
        // Every height parameter differs from its width twin.
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 2, inHeight: 9, inWidth: 6, outChannels: 3,
                kernel: (3, 2), stride: (2, 1), padding: (1, 0)),
            seed: 115)
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 5, inWidth: 10, outChannels: 2,
                kernel: (1, 5), stride: (1, 3), padding: (0, 2)),
            seed: 116)
        // 3x3 stride 1 with padding only in height: Winograd with pad_h != pad_w.
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 5, inWidth: 8, outChannels: 4,
                kernel: (3, 3), stride: (1, 1), padding: (2, 0)),
            seed: 121)
    }

    // MARK: - Winograd

    func testWinogradChannelCountsThatAutoPicks() throws {
        // 16 channels in and out: .auto takes Winograd here, not only .winograd. 7x5
        // outputs end in half-used 2x2 tiles in both directions, whose unused outputs
        // must get no gradient in the Winograd backward filter.
        try checkPasses(
            Conv2DGeometry(
                batch: 2, inChannels: 16, inHeight: 7, inWidth: 5, outChannels: 16, kernel: 3,
                stride: 1, padding: 1),
            seed: 122)
    }

    func testWinogradPadding2() throws {
        // Padding 2 grows the output (7x8 from 5x6); backward data then runs Winograd with
        // padding 0.
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 3, inHeight: 5, inWidth: 6, outChannels: 4, kernel: 3,
                stride: 1, padding: 2),
            seed: 123)
    }

    func testWinogradSeveralImageGroups() throws {
        // 128x128 images hold 4096 tiles each, enough that a Winograd group takes only a
        // couple of images: batch 5 gives several groups, the last one short, spread over
        // the threads.
        try checkPasses(
            Conv2DGeometry(
                batch: 5, inChannels: 2, inHeight: 128, inWidth: 128, outChannels: 2,
                kernel: 3, stride: 1, padding: 1),
            seed: 124, algorithms: [.winograd, .im2col], threads: [2, 3])
    }

    func testWorkspaceReuseAcrossGeometries() throws {
        // One backend runs a large geometry and then smaller ones: the scratch memory it
        // keeps holds stale patches and tiles from the earlier calls, which must not leak
        // into later results.
        for algorithm in ConvolutionAlgorithm.allCases {
            let backend = try CPUBackend(threads: 2, convolution: algorithm)
            try checkPasses(
                Conv2DGeometry(
                    batch: 4, inChannels: 4, inHeight: 12, inWidth: 12, outChannels: 3,
                    kernel: 3, stride: 1, padding: 1),
                seed: 117, algorithms: [algorithm], backend: backend)
            let large = backend.workspaceBytes
            XCTAssertGreaterThan(large, 0, "an im2col or Winograd pass uses scratch memory")
            try checkPasses(
                Conv2DGeometry(
                    batch: 3, inChannels: 2, inHeight: 5, inWidth: 7, outChannels: 3,
                    kernel: 3, stride: 2, padding: 1),
                seed: 118, algorithms: [algorithm], backend: backend)
            try checkPasses(
                Conv2DGeometry(
                    batch: 2, inChannels: 2, inHeight: 5, inWidth: 7, outChannels: 3,
                    kernel: 3, stride: 1, padding: 1),
                seed: 119, algorithms: [algorithm], backend: backend)
            XCTAssertGreaterThanOrEqual(
                backend.workspaceBytes, large, "scratch memory grows, never shrinks")
        }
    }

    // MARK: - Random small geometries

    func testRandomSmallGeometries() throws {
        // Seeded random geometries down to 1x1 images, so the edge cases nobody listed (a
        // kernel as large as the padded input, a single output row, padding larger than the
        // image) are reached too. A third of them are 3x3 stride 1 for Winograd.
        var rng = SplitMix64(seed: 130)
        for index in 0..<40 {
            let winogradShaped = index % 3 == 0
            let kernel = winogradShaped ? (3, 3) : (1 + rng.index(4), 1 + rng.index(4))
            let stride = winogradShaped ? (1, 1) : (1 + rng.index(3), 1 + rng.index(3))
            let padding = (rng.index(3), rng.index(3))
            // Smallest input the kernel fits once padded, plus a little.
            let height = max(1, kernel.0 - 2 * padding.0) + rng.index(6)
            let width = max(1, kernel.1 - 2 * padding.1) + rng.index(6)
            let g = Conv2DGeometry(
                batch: 1 + rng.index(5), inChannels: 1 + rng.index(4), inHeight: height,
                inWidth: width, outChannels: 1 + rng.index(4), kernel: kernel, stride: stride,
                padding: padding)
            try checkPasses(g, seed: 1000 + UInt64(index), threads: [1 + rng.index(3)])
        }
    }

    // MARK: - Accumulation

    /// Backward filter with accumulate adds to what dw holds, across every image group and
    /// with the per-thread partial sums of 1, 2 and 3 threads.
    func testBackwardFilterAccumulates() throws {
        for threads in [1, 2, 3] {
            try checkAccumulation(backend: CPUBackend(threads: threads))
        }
    }

    private func checkAccumulation(backend: CPUBackend) throws {
        let geometries = [
            Conv2DGeometry(
                batch: 37, inChannels: 3, inHeight: 8, inWidth: 8, outChannels: 4, kernel: 3,
                stride: 2, padding: 1),
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 3,
                stride: 1, padding: 1),
            Conv2DGeometry(
                batch: 1, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 1),
            // 8 channels in and out: .auto takes Winograd, whose filter gradient is summed
            // in the transformed domain and added to dw only at the end.
            Conv2DGeometry(
                batch: 5, inChannels: 8, inHeight: 6, inWidth: 7, outChannels: 8, kernel: 3,
                stride: 1, padding: 1),
        ]
        var rng = SplitMix64(seed: 120)
        for g in geometries {
            let x = rng.floats(g.inputShape.reduce(1, *))
            let dy = rng.floats(g.outputShape.reduce(1, *))
            let dw0 = rng.floats(g.weightShape.reduce(1, *), 5, 10)
            let tx = try backend.tensor(x, shape: g.inputShape)
            let tdy = try backend.tensor(dy, shape: g.outputShape)
            let tdw = try backend.tensor(dw0, shape: g.weightShape)
            try backend.conv2dBackwardFilter(
                input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
                accumulate: true)
            let dw: [Float] = try backend.download(tdw)

            let reference = Naive.conv2dBackwardFilter(
                g, x: x.map(Double.init), dy: dy.map(Double.init))
            let expected = zip(dw0, reference.values).map { Double($0) + $1 }
            let scale = zip(dw0, reference.magnitudes).map { abs(Double($0)) + $1 }
            assertClose(
                dw.map(Double.init), expected, scale: scale, rtol: Self.rtol,
                "accumulated backward filter \(g), \(backend.threads) threads")

            // A second accumulating call adds the same gradient again.
            try backend.conv2dBackwardFilter(
                input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
                accumulate: true)
            let twice: [Float] = try backend.download(tdw)
            let expectedTwice = zip(dw0, reference.values).map { Double($0) + 2 * $1 }
            let scaleTwice = zip(dw0, reference.magnitudes).map { abs(Double($0)) + 2 * $1 }
            assertClose(
                twice.map(Double.init), expectedTwice, scale: scaleTwice, rtol: Self.rtol,
                "twice accumulated backward filter \(g), \(backend.threads) threads")
        }
    }

    // MARK: - Geometry arithmetic

    func testGeometryOutputSizeAndShapes() throws {
        let g = Conv2DGeometry(
            batch: 2, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5,
            kernel: (3, 1), stride: (2, 3), padding: (1, 0))
        XCTAssertEqual(g.outHeight, 4, "(7 + 2 - 3) / 2 + 1")
        XCTAssertEqual(g.outWidth, 3, "(9 - 1) / 3 + 1")
        XCTAssertEqual(g.inputShape, [2, 3, 7, 9])
        XCTAssertEqual(g.weightShape, [5, 3, 3, 1])
        XCTAssertEqual(g.outputShape, [2, 5, 4, 3])
        XCTAssertEqual(g.flops, 2.0 * Double(2 * 5 * 4 * 3) * Double(3 * 3 * 1))
        XCTAssertNoThrow(try g.validate())

        var bad = g
        bad.strideWidth = 0
        assertThrowsBackendError("stride 0", { try bad.validate() }, where: \.isShapeMismatch)
        bad = g
        bad.padHeight = -1
        assertThrowsBackendError("negative pad", { try bad.validate() }, where: \.isShapeMismatch)
        bad = g
        bad.batch = 0
        assertThrowsBackendError("batch 0", { try bad.validate() }, where: \.isShapeMismatch)
    }
}
