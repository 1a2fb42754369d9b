// swift-tools-version:6.0
//
// cim-train: CorInfoMax self-supervised training in Swift on CUDA, OpenCL and the CPU.
//
// Layers, each importing only those below it (DESIGN.md):
//   CKernels (C)  ->  Backend  ->  Training  ->  cim-train
// The package has no dependencies outside the toolchain. The CPU path links OpenBLAS
// (Debian: libopenblas-dev); GPU libraries are opened at run time, never linked.

import PackageDescription

// The C kernels are hot loops: optimise them in every configuration, debug builds and
// `swift test` included, so tests and benchmarks exercise the code that trains.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
    name: "cim-train",
    products: [
        .executable(name: "cim-train", targets: ["cim-train"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    targets: [
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            cSettings: kernelFlags,
            linkerSettings: [
                .linkedLibrary("openblas"),
                .linkedLibrary("dl"),
                .linkedLibrary("pthread"),
                .linkedLibrary("m"),
            ]
        ),
        .target(name: "Backend", dependencies: ["CKernels"]),
        .target(name: "Training", dependencies: ["Backend"]),
        .executableTarget(name: "cim-train", dependencies: ["Backend", "Training"]),

        // Helpers shared by the test bundles (tolerances, random data); not a test itself.
        .target(name: "TestSupport", dependencies: ["Backend"], path: "Tests/TestSupport"),
        .testTarget(name: "CKernelsTests", dependencies: ["CKernels"]),
        .testTarget(name: "BackendTests", dependencies: ["Backend", "TestSupport"]),
        // Fixtures (Tests/Fixtures) are read from the source tree by path.
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Backend", "TestSupport"]),
    ]
)
