// cim-train: train CorInfoMax self-supervised image encoders on CUDA, OpenCL or the CPU.
//
// The only module that writes to the terminal. Every failure ends here: its message goes to
// standard error and the exit status is non-zero: 2 for mistakes on the command line (unknown
// options, values out of range, device names that do not parse), 1 for everything else.

import Backend
import Foundation
import Training

let usage = """
    usage: cim-train <command> [options]

    commands:
      train      pretrain an encoder with CorInfoMax (no options: the built-in demo)
      eval       evaluate a trained encoder: kNN or linear probe
      bench      benchmark kernels, each checked against a plain reference first
      devices    list the compute devices and why any are unavailable
      data       download CIFAR-10/100: data download cifar10|cifar100 --to DIR

    Run 'cim-train <command> --help' for the options of a command.
    """

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(("error: " + message + "\n").data(using: .utf8)!)
    exit(status)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    print(usage)
    exit(2)
}
let rest = Array(arguments.dropFirst())

do {
    switch command {
    case "bench": try BenchCommand.run(rest)
    case "devices": try DevicesCommand.run(rest)
    case "data": try DataCommand.run(rest)
    case "train": try TrainCommand.run(rest)
    case "eval": try EvalCommand.run(rest)
    case "--help", "-h", "help": print(usage)
    case "--version": print("cim-train \(TrainingLibrary.version)")
    default: fail("unknown command '\(command)'\n\n" + usage, status: 2)
    }
} catch let error as UsageError {
    fail(error.description, status: 2)
} catch let error as BackendError {
    // a device name that does not parse is a mistake on the command line
    if case .unknownDevice = error { fail(error.description, status: 2) }
    fail(error.description, status: 1)
} catch TrainingError.invalidConfiguration(let message) {
    fail("invalid configuration: " + message, status: 2)
} catch let error as CustomStringConvertible {
    fail(error.description, status: 1)
} catch {
    fail("\(error)", status: 1)
}
