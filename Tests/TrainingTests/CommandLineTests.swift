// CommandLineTests.swift: the built `cim-train` executable run as a subprocess with bad
// flags and values: each mistake ends with a non-zero exit status (2 for the mistakes the
// argument parser catches) and one message on standard error that names the flag, the value
// or the folder and says what to do; `devices` succeeds; `train --help` lists every flag
// with its default.
//
// The executable is looked for next to the test bundle (the products folder SwiftPM builds
// both into), then in this package's .build folder; CIM_TRAIN_EXECUTABLE overrides both.
// The tests are skipped when it is not found (a test-only build). Train invocations that
// should fail carry flags that would make the run tiny, so that a mistake the program fails
// to catch ends in seconds instead of training the demo; every process also has a time
// limit. Each runs in a fresh temporary folder, so nothing is written into the package.

import Foundation
import Training
import XCTest

final class CommandLineTests: XCTestCase {
    struct Outcome {
        var status: Int32
        var exitedNormally: Bool
        var stdout: String
        var stderr: String
    }

    nonisolated(unsafe) static var located: URL??

    /// The cim-train executable of this build, or nil.
    static func executable() -> URL? {
        if let located { return located }
        let fm = FileManager.default
        var candidates: [URL] = []
        if let path = ProcessInfo.processInfo.environment["CIM_TRAIN_EXECUTABLE"] {
            candidates.append(URL(fileURLWithPath: path))
        }
        var folders: [URL] = []
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            folders.append(bundle.bundleURL.deletingLastPathComponent())
        }
        if let main = Bundle.main.executableURL {
            folders.append(main.deletingLastPathComponent())
        }
        folders.append(Bundle.main.bundleURL)
        folders.append(Bundle.main.bundleURL.deletingLastPathComponent())
        if let first = CommandLine.arguments.first {
            folders.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        folders += ["debug", "release"].map {
            package.appendingPathComponent(".build").appendingPathComponent($0)
        }
        candidates += folders.map { $0.appendingPathComponent("cim-train") }
        let found = candidates.first { url in
            var isDirectory: ObjCBool = false
            return fm.fileExists(atPath: url.path, isDirectory: &isDirectory)
                && !isDirectory.boolValue && fm.isExecutableFile(atPath: url.path)
        }
        if let found { print("cim-train under test: \(found.path)") }
        located = .some(found)
        return found
    }

    var folder: URL!

    override func setUpWithError() throws {
        guard Self.executable() != nil else {
            throw XCTSkip("the cim-train executable was not found next to the test bundle "
                          + "or in .build; build the package (swift build) first")
        }
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("cim-train-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    /// Runs cim-train with `arguments` in the temporary folder; kills it after `timeout` s.
    func run(_ arguments: [String], timeout: Double = 60, file: StaticString = #filePath,
             line: UInt = #line) throws -> Outcome {
        let process = Process()
        process.executableURL = Self.executable()!
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // read both pipes while the process runs, so a full pipe cannot block it
        let errorText = PipeReader(err.fileHandleForReading)
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer.cancel()
        let outcome = Outcome(
            status: process.terminationStatus,
            exitedNormally: process.terminationReason == .exit,
            stdout: String(decoding: output, as: UTF8.self), stderr: errorText.wait())
        XCTAssertTrue(outcome.exitedNormally,
                      "cim-train \(arguments.joined(separator: " ")) was killed by signal "
                          + "\(outcome.status) (a crash, or over the \(timeout) s limit); "
                          + "stderr: \(outcome.stderr)", file: file, line: line)
        return outcome
    }

    /// Flags that keep a run that should have been refused down to a second or two.
    var tiny: [String] {
        ["--max-steps", "1", "--knn-every", "0", "--model", "resnet18-cifar@4",
         "--projector", "32-16", "--image-size", "16",
         "--out", folder.appendingPathComponent("run").path]
    }

    /// Fails unless the run failed with `status` (or any non-zero status when nil) and one
    /// `error:` message on stderr holding every string of `mentions`.
    func assertFails(_ arguments: [String], status: Int32? = nil, mentions: [String],
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let outcome = try run(arguments, file: file, line: line)
        let command = "cim-train " + arguments.joined(separator: " ")
        print("\(command) -> \(outcome.status): \(outcome.stderr)")
        if let status {
            XCTAssertEqual(outcome.status, status, "\(command): exit status", file: file,
                           line: line)
        } else {
            XCTAssertTrue([1, 2].contains(outcome.status),
                          "\(command): exit status \(outcome.status), expected 1 or 2",
                          file: file, line: line)
        }
        XCTAssertTrue(outcome.stderr.hasPrefix("error: "),
                      "\(command): stderr should start with 'error: ': \(outcome.stderr)",
                      file: file, line: line)
        for text in mentions {
            XCTAssertTrue(outcome.stderr.contains(text),
                          "\(command): '\(text)' is not in the message: \(outcome.stderr)",
                          file: file, line: line)
        }
        XCTAssertFalse(outcome.stderr.contains("DecodingError"),
                       "\(command): the message shows a Swift decoding error instead of "
                           + "saying what is wrong: \(outcome.stderr)", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(
            atPath: folder.appendingPathComponent("run/checkpoint.safetensors").path),
                       "\(command): a run was trained", file: file, line: line)
    }

    // MARK: - Mistakes the argument parser catches: exit status 2

    func testUnknownOptionAndCommand() throws {
        try assertFails(["train", "--bogus"], status: 2, mentions: ["--bogus", "--epochs"])
        try assertFails(["train", "--epochs"], status: 2, mentions: ["--epochs", "needs a value"])
        try assertFails(["train", "--lr", "0.1", "--lr", "0.2"] + tiny, status: 2,
                        mentions: ["--lr", "twice"])
        try assertFails(["frobnicate"], status: 2, mentions: ["frobnicate", "usage"])
    }

    func testEvalNeedsAnExistingCheckpoint() throws {
        try assertFails(["eval"], status: 2, mentions: ["--checkpoint"])
        try assertFails(["eval", "--checkpoint", "/nonexistent"], status: 2,
                        mentions: ["/nonexistent"])
    }

    func testBenchRefusesUnknownOps() throws {
        try assertFails(["bench", "--ops", "nope"], status: 2, mentions: ["nope", "matmul"])
    }

    // MARK: - Bad values: a non-zero status and a message that names them

    func testBadTrainingValues() throws {
        try assertFails(["train", "--epochs", "-1"] + tiny, mentions: ["epochs", "-1"])
        try assertFails(["train", "--dataset", "nope"] + tiny, mentions: ["nope", "builtin"])
        try assertFails(["train", "--batch-size", "1"] + tiny, mentions: ["batch", "got 1"])
    }

    /// A value of the wrong type is reported with the flag and the value as given, not as
    /// a decoding error of the config.
    func testValueOfTheWrongTypeIsNamedPlainly() throws {
        try assertFails(["train", "--lr", "abc"] + tiny, mentions: ["--lr", "abc"])
        try assertFails(["train", "--epochs", "1.5"] + tiny, mentions: ["--epochs", "1.5"])
    }

    func testUnknownDevice() throws {
        try assertFails(["train", "--devices", "gpu"] + tiny, mentions: ["gpu", "cpu", "cuda"])
    }

    func testMissingCIFARFolderSaysHowToDownload() throws {
        try assertFails(["train", "--dataset", "cifar10", "--data-dir", "/nonexistent"] + tiny,
                        mentions: ["/nonexistent", "cim-train data download cifar10"])
    }

    // MARK: - Commands that succeed

    func testDevicesListsTheCPU() throws {
        let outcome = try run(["devices"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(outcome.stderr, "")
        let cpu = outcome.stdout.split(separator: "\n").first { $0.hasPrefix("cpu") }
        XCTAssertNotNil(cpu, "no cpu line in: \(outcome.stdout)")
        XCTAssertTrue(cpu?.contains("available") == true, String(cpu ?? ""))
        for kind in ["cuda", "opencl"] {
            XCTAssertTrue(outcome.stdout.contains(kind), "\(kind) is not listed")
        }
    }

    func testTrainHelpListsEveryFlagWithItsDefault() throws {
        let outcome = try run(["train", "--help"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let help = outcome.stdout
        let lines = help.split(separator: "\n").map(String.init)
        /// The help line of `--flag`.
        func entry(_ flag: String) -> String? {
            lines.first { $0.hasPrefix("  --\(flag) ") || $0 == "  --\(flag)" }
        }
        // every option the parser accepts (it lists them for an unknown one) has a line
        let refused = try run(["train", "--no-such-flag"])
        let known = refused.stderr.components(separatedBy: "known options: ").last?
            .trimmingCharacters(in: .whitespacesAndNewlines)
            .components(separatedBy: ", ").map { String($0.dropFirst(2)) } ?? []
        XCTAssertGreaterThan(known.count, 25, "could not read the option list: \(refused.stderr)")
        // and every setting of a run can be given as a flag
        let settable = ["dataset", "data-dir", "model", "projector", "epochs", "max-steps",
                        "batch-size", "lr", "min-lr", "warmup-epochs", "warmup-start-lr",
                        "weight-decay", "momentum", "alpha", "beta", "lambda-r", "lambda-mu",
                        "epsilon", "image-size", "seed", "devices", "sync-bn",
                        "check-replicas", "threads", "workers", "out", "log-every", "knn-every",
                        "checkpoint-every"]
        for flag in Set(known + settable + ["preset", "config", "resume", "help"]).sorted() {
            XCTAssertNotNil(entry(flag), "--\(flag) is not in train --help")
        }
        for flag in settable {
            XCTAssertTrue(known.contains(flag), "--\(flag) is not accepted by train")
        }
        // defaults: shown as plain values, those of the demo preset
        XCTAssertFalse(help.contains("Optional("), "defaults printed as Swift optionals")
        XCTAssertFalse(help.contains("(default: nil)"), "a default printed as nil")
        let demo = try RunConfig.preset("demo")
        let expected: [(String, String)] = [
            ("preset", "demo"), ("dataset", demo.dataset), ("model", demo.model),
            ("projector", demo.projector), ("epochs", String(demo.epochs)),
            ("batch-size", String(demo.batchSize)), ("lr", "\(demo.lr)"),
            ("seed", String(demo.seed)), ("devices", demo.devices),
            ("workers", String(demo.workers)), ("knn-every", String(demo.knnEvery)),
            ("sync-bn", "\(demo.syncBatchNorm)"),
        ]
        for (flag, value) in expected {
            let line = entry(flag) ?? ""
            XCTAssertTrue(line.contains("(default: \(value))"),
                          "--\(flag) should show '(default: \(value))': \(line)")
        }
        for flag in settable where flag != "out" {
            XCTAssertTrue(entry(flag)?.contains("(default: ") == true,
                          "--\(flag) shows no default: \(entry(flag) ?? "")")
        }
    }
}

/// Reads a pipe to its end on a background thread.
private final class PipeReader: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }.start()
    }

    func wait() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
