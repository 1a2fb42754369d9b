// RunPlot.swift: plot.svg of a run, three panels over epochs: the total loss, the two loss
// terms (L_inv and L_cov, each on its own scale), and the kNN top-1 accuracy. Plain SVG, so
// any browser shows it and nothing outside the toolchain is needed.

import Foundation

public enum RunPlot {
    public struct Point: Sendable {
        public var epoch: Int
        public var loss: Double?
        public var invariance: Double?
        public var covariance: Double?
        public var knn: Double?
    }

    /// The epoch records of a metrics.jsonl file (to keep plotting after a resume).
    public static func readHistory(_ url: URL) -> [Point] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        var points: [Point] = []
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
                as? [String: Any], object["type"] as? String == "epoch",
                let epoch = object["epoch"] as? Int
            else { continue }
            points.append(Point(epoch: epoch, loss: object["loss"] as? Double,
                                invariance: object["loss_inv"] as? Double,
                                covariance: object["loss_cov"] as? Double,
                                knn: object["knn_top1"] as? Double))
        }
        return points
    }

    /// The SVG document.
    public static func svg(_ points: [Point]) -> String {
        let width = 960.0, height = 300.0, panel = width / 3
        var body = ""
        let panels: [(String, [(String, String, [(Int, Double)])])] = [
            ("loss", [("L", "#1f77b4", points.compactMap { p in p.loss.map { (p.epoch, $0) } })]),
            ("loss terms (each scaled to its range)", [
                ("L_inv", "#2ca02c", points.compactMap { p in p.invariance.map { (p.epoch, $0) } }),
                ("L_cov", "#d62728", points.compactMap { p in p.covariance.map { (p.epoch, $0) } }),
            ]),
            ("kNN top-1 (%)", [
                ("kNN", "#9467bd", points.compactMap { p in p.knn.map { (p.epoch, $0) } }),
            ]),
        ]
        let maxEpoch = max(points.map(\.epoch).max() ?? 1, 1)
        for (index, (title, series)) in panels.enumerated() {
            let x0 = Double(index) * panel + 50, y0 = 40.0
            let w = panel - 70, h = height - 90
            body += "<text x=\"\(x0)\" y=\"24\" font-size=\"14\">\(title)</text>\n"
            body += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(w)\" height=\"\(h)\" "
                + "fill=\"none\" stroke=\"#999\"/>\n"
            body += "<text x=\"\(x0 + w / 2 - 15)\" y=\"\(y0 + h + 32)\" "
                + "font-size=\"11\">epoch</text>\n"
            body += "<text x=\"\(x0)\" y=\"\(y0 + h + 16)\" font-size=\"10\">0</text>\n"
            body += "<text x=\"\(x0 + w - 20)\" y=\"\(y0 + h + 16)\" "
                + "font-size=\"10\">\(maxEpoch)</text>\n"
            for (number, (name, color, values)) in series.enumerated() where !values.isEmpty {
                let low = values.map(\.1).min()!, high = values.map(\.1).max()!
                let span = high - low > 0 ? high - low : 1
                let coordinates = values.map { (epoch, value) -> String in
                    let x = x0 + w * Double(epoch) / Double(maxEpoch)
                    let y = y0 + h - h * (value - low) / span
                    return String(format: "%.1f,%.1f", x, y)
                }
                body += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" "
                    + "points=\"\(coordinates.joined(separator: " "))\"/>\n"
                let label = String(format: "%@ %.4g … %.4g", name, low, high)
                let y = y0 + 14 + 14 * Double(number)
                body += "<text x=\"\(x0 + 4)\" y=\"\(y)\" font-size=\"10\" "
                    + "fill=\"\(color)\">\(label)</text>\n"
            }
        }
        let size = "width=\"\(Int(width))\" height=\"\(Int(height))\""
        return """
            <svg xmlns="http://www.w3.org/2000/svg" \(size) font-family="sans-serif">
            <rect width="100%" height="100%" fill="white"/>
            \(body)</svg>

            """
    }
}
