// DevicesCommand.swift: `cim-train devices` lists every device kind, what initialised and
// why the rest did not, and under a kind its devices (each OpenCL device of each platform
// with its type and fp64 support).

import Backend

enum DevicesCommand {
    static let specs: [OptionSpec] = [
        .option("threads", "N", default: "0", "CPU threads (0 = every core)"),
    ]

    static func run(_ arguments: [String]) throws {
        let options = try ParsedOptions.parse(arguments, specs: specs, command: "devices")
        if options.has("help") {
            print(ParsedOptions.help(
                command: "devices",
                summary: "List the compute devices cim-train can use here, "
                    + "and why others are unavailable.",
                specs: specs))
            return
        }
        let threads = try options.int("threads", range: 0...256) ?? 0
        print("kind    status       detail")
        for status in Devices.survey(threads: threads) {
            let state = status.available ? "available" : "unavailable"
            print(pad(status.kind, 8) + pad(state, 13) + status.detail)
            for device in status.devices { print("  " + device) }
        }
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

func padLeft(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}
