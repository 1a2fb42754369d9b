// DataCommand.swift: `cim-train data download cifar10|cifar100 --to DIR`: fetch a CIFAR
// archive, check its MD5 and unpack it (Training's DatasetDownload does the work; this file
// parses the command line and shows progress).
//
// Progress is one line rewritten in place with a carriage return:
//   downloading https://…/cifar-10-binary.tar.gz: 81.3 MiB / 162.6 MiB (50%)
// then the folder to pass as --data-dir is printed.

import Foundation
import Training

enum DataCommand {
    static let downloadSpecs: [OptionSpec] = [
        .option("to", "DIR", "directory to unpack into (created if needed); the data lands in "
                    + "DIR/cifar-10-batches-bin or DIR/cifar-100-binary (required)"),
        .option("url", "URL", "download from this address instead of the official one "
                    + "(a mirror, or a local server in tests)"),
        .option("md5", "HEX", "expected MD5 of the archive; default: the official archive's "
                    + "sum, which also holds for a mirror of it"),
    ]

    static let usage = """
        usage: cim-train data download cifar10|cifar100 --to DIR [--url URL] [--md5 HEX]

        Download the binary version of CIFAR-10 or CIFAR-100, verify its MD5 and unpack it.
        Nothing is unpacked into DIR unless the archive's MD5 matches, and nothing is left
        there unless it unpacked completely.

        Run 'cim-train data download --help' for the options.
        """

    static func run(_ arguments: [String]) throws {
        guard let action = arguments.first else { throw UsageError(usage) }
        switch action {
        case "--help", "-h", "help": print(usage)
        case "download": try download(Array(arguments.dropFirst()))
        default:
            throw UsageError("unknown data command '\(action)'; expected 'download'\n\n" + usage)
        }
    }

    static func download(_ arguments: [String]) throws {
        // The dataset is the one positional argument; the rest are options.
        let names = CIFARVariant.allCases.map(\.rawValue)
        var rest = arguments
        var variant: CIFARVariant? = nil
        if let first = rest.first, !first.hasPrefix("-") {
            guard let parsed = CIFARVariant(rawValue: first) else {
                throw UsageError("unknown dataset '\(first)'; expected one of "
                                 + names.joined(separator: ", "))
            }
            variant = parsed
            rest.removeFirst()
        }
        let options = try ParsedOptions.parse(rest, specs: downloadSpecs,
                                              command: "data download")
        if options.has("help") {
            print(ParsedOptions.help(
                command: "data download \(names.joined(separator: "|"))",
                summary: "Download the binary version of a CIFAR dataset, verify its MD5 and "
                    + "unpack it into DIR. The archive is checked before anything is unpacked "
                    + "into DIR, and an earlier download there is replaced only by a complete "
                    + "one.",
                specs: downloadSpecs))
            return
        }
        guard let variant else {
            throw UsageError("which dataset? cim-train data download "
                             + names.joined(separator: "|") + " --to DIR")
        }
        guard let directory = options.string("to") else {
            throw UsageError("--to DIR is required: where to unpack \(variant.displayName)")
        }

        let source = options.string("url") ?? variant.archiveURL
        var lastLine = ""
        let folder: String
        do {
            folder = try DatasetDownload.download(
                variant, to: directory, url: options.string("url"), md5: options.string("md5")
            ) { received, total in
                var line = "downloading \(source): " + size(received)
                if let total {
                    line += " / \(size(total)) (\(received * 100 / max(total, 1))%)"
                }
                guard line != lastLine else { return }
                // Pad with spaces so a shorter line fully covers the previous one.
                let padding = String(repeating: " ", count: max(0, lastLine.count - line.count))
                print("\r" + line + padding, terminator: "")
                fflush(nil)
                lastLine = line
            }
        } catch {
            // End the progress line so the error message starts on a line of its own.
            if !lastLine.isEmpty {
                print("")
                fflush(nil)
            }
            throw error
        }
        if !lastLine.isEmpty { print("") }
        print("MD5 verified; \(variant.displayName) unpacked in \(folder)")
        print("train with --data-dir \(directory)")
    }

    /// Bytes as KiB below 1 MiB, else MiB, one decimal.
    private static func size(_ bytes: Int64) -> String {
        bytes < 1_048_576
            ? String(format: "%.1f KiB", Double(bytes) / 1024)
            : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}
