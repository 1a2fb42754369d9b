// KernelBenchmarks.swift: the kernel cases behind `cim-train bench`, checked then timed.
//
// Every case first runs once and is compared against the plain reference (Reference.swift)
// at sampled output positions; a result outside the tolerance throws, so a fast wrong
// kernel can never post a time. Then it is warmed up and timed over several repetitions,
// each timed on its own, and the median is reported (the machines we run on are shared and
// noisy; the median ignores the odd descheduled run).
//
// FLOPs: GEMM 2 m n k; convolution 2 N K C R S P Q per pass (fwd+bwd counts three passes);
// Cholesky n^3 / 3 per matrix, plus 2 n^3 / 3 for the inverse.

/// One timed case.
public struct BenchmarkResult: Sendable {
    public var op: String
    public var caseName: String
    /// "fwd", "fwd+bwd" or "" where passes do not apply.
    public var pass: String
    public var medianSeconds: Double
    /// nil where FLOPs are not defined for the case.
    public var gflops: Double?
    public var maxRelativeError: Double
    /// Further measurements by name (images per second, bytes), for ops that have them.
    public var extra: [String: Double] = [:]

    public init(op: String, caseName: String, pass: String, medianSeconds: Double,
                gflops: Double?, maxRelativeError: Double, extra: [String: Double] = [:]) {
        self.op = op
        self.caseName = caseName
        self.pass = pass
        self.medianSeconds = medianSeconds
        self.gflops = gflops
        self.maxRelativeError = maxRelativeError
        self.extra = extra
    }
}

/// A case whose result disagreed with the reference.
public struct BenchmarkVerificationError: Error, CustomStringConvertible {
    public let op: String
    public let caseName: String
    public let error: Double
    public let tolerance: Double
    public init(op: String, caseName: String, error: Double, tolerance: Double) {
        self.op = op
        self.caseName = caseName
        self.error = error
        self.tolerance = tolerance
    }

    public var description: String {
        "bench \(op) \(caseName): result differs from the reference (max relative error "
            + "\(error), tolerance \(tolerance)); the kernel is wrong, not slow"
    }
}

public struct BenchmarkOptions: Sendable {
    public var warmup = 2
    public var repeats = 5
    /// Output elements compared with the reference per checked tensor.
    public var samples = 384
    public var seed: UInt64 = 20_261_203
    /// Relative error a float32 case may have against the float64 reference: 1e-4, or 5e-3
    /// for TF32 (10-bit mantissas: about 5e-4 per product, more over long sums).
    public var float32Tolerance = 1e-4
    /// Sizes of the square float32 GEMM cases.
    public var gemmSizes = [512, 1024, 2048]
    public init() {}
}

/// Runs `body` `warmup` times untimed and then `repeats` times timed; the median seconds.
public func medianTime(warmup: Int, repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    let clock = ContinuousClock()
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let elapsed = try clock.measure { try body() }
        times.append(Double(elapsed.components.seconds)
            + Double(elapsed.components.attoseconds) * 1e-18)
    }
    times.sort()
    let middle = times.count / 2
    return times.count % 2 == 1 ? times[middle] : 0.5 * (times[middle - 1] + times[middle])
}

public enum KernelBenchmarks {
    /// Op families `cim-train bench --ops` accepts for kernels.
    public static let ops = ["matmul", "conv", "logdet"]

    static let float64Tolerance = 1e-10

    /// Runs every case of `op`, calling `report` after each.
    public static func run(
        op: String, on backend: Backend, options: BenchmarkOptions = BenchmarkOptions(),
        report: (BenchmarkResult) -> Void
    ) throws {
        var random = SplitMix64(seed: options.seed)
        switch op {
        case "matmul":
            for size in options.gemmSizes {
                report(try matmul(size, backend, options, &random))
            }
        case "conv":
            for geometry in resnet18Convolutions {
                for result in try conv(geometry, backend, options, &random) { report(result) }
            }
        case "logdet":
            for n in [64, 128, 512, 2048] {
                for withInverse in [false, true] {
                    report(try logdet(batch: 2, n: n, withInverse, backend, options, &random))
                }
            }
        default:
            throw BackendError.invalidArgument(
                "unknown kernel benchmark '\(op)'; expected one of \(ops.joined(separator: ", "))")
        }
    }

    /// The 3x3 convolutions of a CIFAR-stem ResNet-18 at batch 128.
    public static let resnet18Convolutions: [Conv2DGeometry] = [
        Conv2DGeometry(batch: 128, inChannels: 64, inHeight: 32, inWidth: 32, outChannels: 64,
                       kernel: 3, stride: 1, padding: 1),
        Conv2DGeometry(batch: 128, inChannels: 128, inHeight: 16, inWidth: 16, outChannels: 128,
                       kernel: 3, stride: 1, padding: 1),
        Conv2DGeometry(batch: 128, inChannels: 256, inHeight: 8, inWidth: 8, outChannels: 256,
                       kernel: 3, stride: 1, padding: 1),
        Conv2DGeometry(batch: 128, inChannels: 512, inHeight: 4, inWidth: 4, outChannels: 512,
                       kernel: 3, stride: 1, padding: 1),
        Conv2DGeometry(batch: 128, inChannels: 64, inHeight: 32, inWidth: 32, outChannels: 128,
                       kernel: 3, stride: 2, padding: 1),
    ]

    /// "64->64 32x32 s1": the name the comparison script uses too.
    public static func convCaseName(_ g: Conv2DGeometry) -> String {
        "\(g.inChannels)->\(g.outChannels) \(g.inHeight)x\(g.inWidth) s\(g.strideHeight)"
    }

    // MARK: - Cases

    static func verify(_ op: String, _ name: String, _ error: Double, _ tolerance: Double) throws {
        guard error <= tolerance else {
            throw BenchmarkVerificationError(
                op: op, caseName: name, error: error, tolerance: tolerance)
        }
    }

    static func matmul(
        _ size: Int, _ backend: Backend, _ options: BenchmarkOptions, _ random: inout SplitMix64
    ) throws -> BenchmarkResult {
        let name = "\(size)x\(size)x\(size) f32"
        let a: [Float] = random.uniformArray(size * size)
        let b: [Float] = random.uniformArray(size * size)
        let ta = try backend.tensor(a, shape: [size, size])
        let tb = try backend.tensor(b, shape: [size, size])
        let tc = try backend.zeros(.float32, [size, size])
        let run = {
            try backend.gemm(ta, transposeA: false, tb, transposeB: false, into: tc,
                             alpha: 1, beta: 0)
        }
        try run()
        try backend.synchronize()
        let c: [Float] = try backend.download(tc)
        let samples = (0..<options.samples).map { _ in (random.index(size), random.index(size)) }
        let error = Reference.gemmError(
            a: a, transposeA: false, b: b, transposeB: false, cIn: c, c: c, m: size, n: size,
            k: size, alpha: 1, beta: 0, samples: samples)
        try verify("matmul", name, error, options.float32Tolerance)
        let seconds = try medianTime(warmup: options.warmup, repeats: options.repeats) {
            try run()
            try backend.synchronize()
        }
        return BenchmarkResult(
            op: "matmul", caseName: name, pass: "", medianSeconds: seconds,
            gflops: 2 * pow3(size) / seconds / 1e9, maxRelativeError: error)
    }

    static func conv(
        _ g: Conv2DGeometry, _ backend: Backend, _ options: BenchmarkOptions,
        _ random: inout SplitMix64
    ) throws -> [BenchmarkResult] {
        let name = convCaseName(g)
        let count = { (shape: [Int]) in shape.reduce(1, *) }
        let x: [Float] = random.uniformArray(count(g.inputShape))
        let w: [Float] = random.uniformArray(count(g.weightShape))
        let dy: [Float] = random.uniformArray(count(g.outputShape))
        let tx = try backend.tensor(x, shape: g.inputShape)
        let tw = try backend.tensor(w, shape: g.weightShape)
        let tdy = try backend.tensor(dy, shape: g.outputShape)
        let ty = try backend.allocate(.float32, g.outputShape)
        let tdx = try backend.allocate(.float32, g.inputShape)
        let tdw = try backend.allocate(.float32, g.weightShape)

        let forward = { try backend.conv2dForward(input: tx, weight: tw, output: ty, geometry: g) }
        let backward = {
            try backend.conv2dBackwardData(
                outputGradient: tdy, weight: tw, inputGradient: tdx, geometry: g)
            try backend.conv2dBackwardFilter(
                input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
                accumulate: false)
        }

        // check all three passes
        try forward()
        try backward()
        try backend.synchronize()
        let y: [Float] = try backend.download(ty)
        let dx: [Float] = try backend.download(tdx)
        let dw: [Float] = try backend.download(tdw)
        func sample(_ shape: [Int]) -> [[Int]] {
            (0..<options.samples).map { _ in shape.map { random.index($0) } }
        }
        let forwardError = Reference.conv2dForwardError(
            g, x: x, w: w, y: y, samples: sample(g.outputShape))
        let dataError = Reference.conv2dBackwardDataError(
            g, dy: dy, w: w, dx: dx, samples: sample(g.inputShape))
        let filterError = Reference.conv2dBackwardFilterError(
            g, x: x, dy: dy, dw: dw, samples: sample(g.weightShape).prefix(64).map { $0 })
        try verify("conv", name + " fwd", forwardError, options.float32Tolerance)
        try verify("conv", name + " bwd data", dataError, options.float32Tolerance)
        try verify("conv", name + " bwd filter", filterError, options.float32Tolerance)

        let forwardSeconds = try medianTime(warmup: options.warmup, repeats: options.repeats) {
            try forward()
            try backend.synchronize()
        }
        let bothSeconds = try medianTime(warmup: options.warmup, repeats: options.repeats) {
            try forward()
            try backward()
            try backend.synchronize()
        }
        // each backward pass alone, so a profile can say where fwd+bwd spends its time
        let dataSeconds = try medianTime(warmup: 1, repeats: options.repeats) {
            try backend.conv2dBackwardData(
                outputGradient: tdy, weight: tw, inputGradient: tdx, geometry: g)
            try backend.synchronize()
        }
        let filterSeconds = try medianTime(warmup: 1, repeats: options.repeats) {
            try backend.conv2dBackwardFilter(
                input: tx, outputGradient: tdy, weightGradient: tdw, geometry: g,
                accumulate: false)
            try backend.synchronize()
        }
        return [
            BenchmarkResult(
                op: "conv", caseName: name, pass: "fwd", medianSeconds: forwardSeconds,
                gflops: g.flops / forwardSeconds / 1e9, maxRelativeError: forwardError),
            BenchmarkResult(
                op: "conv", caseName: name, pass: "fwd+bwd", medianSeconds: bothSeconds,
                gflops: 3 * g.flops / bothSeconds / 1e9,
                maxRelativeError: max(forwardError, dataError, filterError),
                extra: ["bwd_data_s": dataSeconds, "bwd_filter_s": filterSeconds]),
        ]
    }

    /// A well-conditioned SPD matrix: M M^T / n + I/2 with M uniform in [-1, 1).
    static func spdMatrix(_ n: Int, _ backend: Backend, _ random: inout SplitMix64)
        throws -> [Double]
    {
        let m: [Double] = random.uniformArray(n * n)
        let tm = try backend.tensor(m, shape: [n, n])
        let identity = (0..<(n * n)).map { $0 % (n + 1) == 0 ? 0.5 : 0.0 }
        let ta = try backend.tensor(identity, shape: [n, n])
        try backend.gemm(tm, transposeA: false, tm, transposeB: true, into: ta,
                         alpha: 1.0 / Double(n), beta: 1)
        return try backend.download(ta)
    }

    static func logdet(
        batch: Int, n: Int, _ withInverse: Bool, _ backend: Backend, _ options: BenchmarkOptions,
        _ random: inout SplitMix64
    ) throws -> BenchmarkResult {
        let name = "B\(batch) D\(n)" + (withInverse ? " +inverse" : "")
        var matrices: [Double] = []
        for _ in 0..<batch { matrices += try spdMatrix(n, backend, &random) }
        let ta = try backend.tensor(matrices, shape: [batch, n, n])
        let tl = try backend.allocate(.float64, [batch])
        let tinv = withInverse ? try backend.allocate(.float64, [batch, n, n]) : nil
        let run = { try backend.logdetSPD(ta, logdet: tl, inverse: tinv) }
        try run()
        try backend.synchronize()

        // log-determinants against the textbook Cholesky, inverses through A X = I at
        // sampled entries
        let logdets: [Double] = try backend.download(tl)
        var error = 0.0
        for b in 0..<batch {
            let matrix = Array(matrices[(b * n * n)..<((b + 1) * n * n)])
            let expected = try Reference.choleskyLogdet(matrix, n: n).logdet
            error = max(error, abs(logdets[b] - expected) / max(abs(expected), Double(n)))
        }
        if let tinv {
            let inverse: [Double] = try backend.download(tinv)
            for _ in 0..<options.samples {
                let (b, i, j) = (random.index(batch), random.index(n), random.index(n))
                var sum = 0.0, magnitude = 0.0
                for p in 0..<n {
                    let term = matrices[b * n * n + i * n + p] * inverse[b * n * n + p * n + j]
                    sum += term
                    magnitude += abs(term)
                }
                error = max(error, abs(sum - (i == j ? 1 : 0)) / magnitude)
            }
        }
        try verify("logdet", name, error, float64Tolerance)
        let seconds = try medianTime(warmup: options.warmup, repeats: options.repeats) {
            try run()
            try backend.synchronize()
        }
        let flops = Double(batch) * pow3(n) * (withInverse ? 1.0 : 1.0 / 3.0)
        return BenchmarkResult(
            op: "logdet", caseName: name, pass: "", medianSeconds: seconds,
            gflops: flops / seconds / 1e9, maxRelativeError: error)
    }

    private static func pow3(_ n: Int) -> Double { Double(n) * Double(n) * Double(n) }
}
