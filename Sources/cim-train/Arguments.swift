// Arguments.swift: a small command-line parser (the package takes no dependencies, so no
// swift-argument-parser).
//
// Each subcommand declares its options once; the same declarations drive parsing, the
// checks on unknown or repeated options, and the --help text with every default.

/// A user mistake on the command line: the message says what and how to fix it.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// One `--name VALUE` option, or a `--name` flag when `valueName` is nil.
struct OptionSpec {
    let name: String
    let valueName: String?
    let help: String
    let defaultValue: String?

    static func option(_ name: String, _ valueName: String, default value: String? = nil,
                       _ help: String) -> OptionSpec {
        OptionSpec(name: name, valueName: valueName, help: help, defaultValue: value)
    }

    static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, valueName: nil, help: help, defaultValue: nil)
    }
}

/// Options as given, with defaults filled in.
struct ParsedOptions {
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []

    func string(_ name: String) -> String? { values[name] }
    func has(_ name: String) -> Bool { flags.contains(name) }

    func int(_ name: String, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError(
                "--\(name) expects an integer in \(range.lowerBound)...\(range.upperBound), "
                    + "got '\(text)'")
        }
        return value
    }

    /// Parses `arguments` against `specs`; `--help` sets the "help" flag.
    static func parse(_ arguments: [String], specs: [OptionSpec], command: String) throws
        -> ParsedOptions
    {
        var parsed = ParsedOptions()
        for spec in specs { if let value = spec.defaultValue { parsed.values[spec.name] = value } }
        var given: Set<String> = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--help" || argument == "-h" {
                parsed.flags.insert("help")
                continue
            }
            guard argument.hasPrefix("--") else {
                throw UsageError(
                    "unexpected argument '\(argument)' for '\(command)'; see cim-train "
                        + "\(command) --help")
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String? = nil
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let spec = specs.first(where: { $0.name == name }) else {
                let known = specs.map { "--" + $0.name }.joined(separator: ", ")
                throw UsageError(
                    "unknown option '--\(name)' for '\(command)'; known options: \(known)")
            }
            guard given.insert(name).inserted else {
                throw UsageError("option --\(name) given twice")
            }
            if spec.valueName == nil {
                guard inlineValue == nil else { throw UsageError("--\(name) takes no value") }
                parsed.flags.insert(name)
                continue
            }
            if let inlineValue {
                parsed.values[name] = inlineValue
            } else {
                guard index < arguments.count, !arguments[index].hasPrefix("--") else {
                    throw UsageError("--\(name) needs a value (\(spec.valueName!))")
                }
                parsed.values[name] = arguments[index]
                index += 1
            }
        }
        return parsed
    }

    /// The help text: usage line, summary and one entry per option with its default.
    static func help(command: String, summary: String, specs: [OptionSpec]) -> String {
        var lines = ["usage: cim-train \(command) [options]", "", summary, "", "options:"]
        for spec in specs {
            let left = "  --\(spec.name)" + (spec.valueName.map { " \($0)" } ?? "")
            let padded = left.count < 26
                ? left + String(repeating: " ", count: 26 - left.count) : left + "  "
            var text = spec.help
            if let value = spec.defaultValue { text += " (default: \(value))" }
            lines.append(padded + text)
        }
        lines.append("  --help                  show this help")
        return lines.joined(separator: "\n")
    }
}
