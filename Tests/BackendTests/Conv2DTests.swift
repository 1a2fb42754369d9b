// Conv2DTests.swift: CPUBackend's three convolution passes against the naive fp64 7-loop
// references in NaiveReference.swift.
//
// The geometries are picked to reach every path of the im2col implementation in conv2d.c:
// one image per GEMM with and without im2col (the 1x1 stride-1 unpadded "direct" case),
// several images grouped into one GEMM with a short last group (small outputs, batch 37),
// strides that do not divide the input, padding wider than a 1x1 kernel needs, 7x7 kernels
// with padding 3, and non-square images and kernels, so a height/width mix-up shows. Output
// tensors start full of NaN, so a pass that leaves any element unwritten fails. Errors are
// measured against the sum of |terms| of each element (1e-5 of it in float32).

import Backend
import TestSupport
import XCTest

final class Conv2DTests: XCTestCase {
    static let rtol = 1e-5

    private func nanTensor(_ backend: CPUBackend, _ shape: [Int]) throws -> Tensor {
        try backend.tensor([Float](repeating: .nan, count: shape.reduce(1, *)), shape: shape)
    }

    /// Runs forward, backward data and backward filter on random data and compares each
    /// with the naive reference.
    private func checkPasses(
        _ g: Conv2DGeometry, seed: UInt64, backend: CPUBackend? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let backend = try backend ?? CPUBackend(threads: 2)
        var rng = SplitMix64(seed: seed)
        let x = rng.floats(g.inputShape.reduce(1, *))
        let w = rng.floats(g.weightShape.reduce(1, *))
        let dy = rng.floats(g.outputShape.reduce(1, *))
        let (xd, wd, dyd) = (x.map(Double.init), w.map(Double.init), dy.map(Double.init))
        let tx = try backend.tensor(x, shape: g.inputShape)
        let tw = try backend.tensor(w, shape: g.weightShape)
        let tdy = try backend.tensor(dy, shape: g.outputShape)

        // forward
        let ty = try nanTensor(backend, g.outputShape)
        try backend.conv2dForward(input: tx, weight: tw, output: ty, geometry: g)
        let y: [Float] = try backend.download(ty)
        let yRef = Naive.conv2dForward(g, x: xd, w: wd)
        assertClose(
            y.map(Double.init), yRef.values, scale: yRef.magnitudes, rtol: Self.rtol,
            "forward \(g)", file: file, line: line)
        reportDifference("y [\(g)]", y.map(Double.init), yRef.values, scale: yRef.magnitudes)

        // backward data
        let tdx = try nanTensor(backend, g.inputShape)
        try backend.conv2dBackwardData(
            outputGradient: tdy, weight: tw, inputGradient: tdx, geometry: g)
        let dx: [Float] = try backend.download(tdx)
        let dxRef = Naive.conv2dBackwardData(g, dy: dyd, w: wd)
        assertClose(
            dx.map(Double.init), dxRef.values, scale: dxRef.magnitudes, rtol: Self.rtol,
            "backward data \(g)", file: file, line: line)
        reportDifference(
            "dx [\(g)]", dx.map(Double.init), dxRef.values, scale: dxRef.magnitudes)

        // backward filter, overwriting
        let tdw = try nanTensor(backend, g.weightShape)
        try backend.conv2dBackwardFilter(
            input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
            accumulate: false)
        let dw: [Float] = try backend.download(tdw)
        let dwRef = Naive.conv2dBackwardFilter(g, x: xd, dy: dyd)
        assertClose(
            dw.map(Double.init), dwRef.values, scale: dwRef.magnitudes, rtol: Self.rtol,
            "backward filter \(g)", file: file, line: line)
        reportDifference(
            "dw [\(g)]", dw.map(Double.init), dwRef.values, scale: dwRef.magnitudes)
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
        // 4x4 outputs: 16 columns per image, so images are grouped 16 at a time to fill a
        // GEMM; batch 37 = 16 + 16 + 5 leaves a short last group.
        try checkPasses(
            Conv2DGeometry(
                batch: 37, inChannels: 3, inHeight: 8, inWidth: 8, outChannels: 4, kernel: 3,
                stride: 2, padding: 1),
            seed: 112)
        // Grouped 1x1 stride 1 (not direct, since G > 1).
        try checkPasses(
            Conv2DGeometry(
                batch: 19, inChannels: 3, inHeight: 4, inWidth: 5, outChannels: 6, kernel: 1),
            seed: 113)
    }

    func testOneImagePerGemmWithIm2col() throws {
        // 16x16 outputs fill a GEMM alone (G = 1) but 3x3 padding still needs im2col.
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
    }

    func testWorkspaceReuseAcrossGeometries() throws {
        // One backend runs a large geometry and then smaller ones: the scratch memory it
        // keeps holds stale patches from the earlier call, which must not leak into later
        // results.
        let backend = try CPUBackend(threads: 2)
        try checkPasses(
            Conv2DGeometry(
                batch: 4, inChannels: 4, inHeight: 12, inWidth: 12, outChannels: 3,
                kernel: 3, stride: 1, padding: 1),
            seed: 117, backend: backend)
        let large = backend.workspaceBytes
        XCTAssertGreaterThan(large, 0, "an im2col pass uses scratch memory")
        try checkPasses(
            Conv2DGeometry(
                batch: 3, inChannels: 2, inHeight: 5, inWidth: 7, outChannels: 3, kernel: 3,
                stride: 2, padding: 1),
            seed: 118, backend: backend)
        try checkPasses(
            Conv2DGeometry(
                batch: 1, inChannels: 2, inHeight: 5, inWidth: 7, outChannels: 3, kernel: 1),
            seed: 119, backend: backend)
        XCTAssertEqual(backend.workspaceBytes, large, "scratch memory grows, never shrinks")
    }

    // MARK: - Accumulation

    /// Backward filter with accumulate adds to what dw holds, across every image group.
    func testBackwardFilterAccumulates() throws {
        let backend = try CPUBackend(threads: 2)
        let geometries = [
            Conv2DGeometry(
                batch: 37, inChannels: 3, inHeight: 8, inWidth: 8, outChannels: 4, kernel: 3,
                stride: 2, padding: 1),
            Conv2DGeometry(
                batch: 2, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 3,
                stride: 1, padding: 1),
            Conv2DGeometry(
                batch: 1, inChannels: 3, inHeight: 7, inWidth: 9, outChannels: 5, kernel: 1),
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
                "accumulated backward filter \(g)")

            // A second accumulating call adds the same gradient again.
            try backend.conv2dBackwardFilter(
                input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
                accumulate: true)
            let twice: [Float] = try backend.download(tdw)
            let expectedTwice = zip(dw0, reference.values).map { Double($0) + 2 * $1 }
            let scaleTwice = zip(dw0, reference.magnitudes).map { abs(Double($0)) + 2 * $1 }
            assertClose(
                twice.map(Double.init), expectedTwice, scale: scaleTwice, rtol: Self.rtol,
                "twice accumulated backward filter \(g)")
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
