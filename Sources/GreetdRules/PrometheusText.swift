// Reads back what `/metrics` serves (Prometheus text exposition format 0.0.4): for tests and
// tools (greet-stress checks its counts against the server's), never on the server's hot path.

/// One sample line of a Prometheus text exposition: `name{label="value",...} value [timestamp]`.
public struct PrometheusSample: Equatable, Sendable {
    /// The series name, suffix included (`greetd_request_duration_seconds_count`).
    public var name: String
    /// The labels, unescaped (`\"`, `\\` and `\n` undone); empty for an unlabelled series.
    public var labels: [String: String]
    /// The value; `+Inf`, `-Inf` and `NaN` are read as Swift's infinities and NaN.
    public var value: Double

    /// A sample with these parts.
    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

/// A reader of the Prometheus text exposition format. Pure; any thread.
public enum PrometheusText {
    /// Every sample line of `text`, in order. Comments (`# HELP`, `# TYPE`), blank lines and lines
    /// that are not well-formed samples are skipped; a trailing timestamp is ignored.
    public static func samples(in text: String) -> [PrometheusSample] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).compactMap { sample(Array($0.utf8)) }
    }

    /// The value of the sample named `name` whose labels are exactly `labels`, or `nil`.
    ///
    /// `value(of: "greetd_requests_total", labels: ["outcome": "completed"], in: text)`.
    public static func value(of name: String, labels: [String: String] = [:], in text: String) -> Double? {
        samples(in: text).value(of: name, labels: labels)
    }

    /// One sample line as bytes; `nil` for a comment, a blank or a malformed line.
    private static func sample(_ line: [UInt8]) -> PrometheusSample? {
        var i = 0
        func skipSpaces() { while i < line.count, line[i] == UInt8(ascii: " ") || line[i] == UInt8(ascii: "\t") { i += 1 } }
        skipSpaces()
        guard i < line.count, line[i] != UInt8(ascii: "#") else { return nil }
        let nameStart = i
        while i < line.count, isNameByte(line[i]) { i += 1 }
        guard i > nameStart else { return nil }
        let name = String(decoding: line[nameStart..<i], as: UTF8.self)
        var labels: [String: String] = [:]
        if i < line.count, line[i] == UInt8(ascii: "{") {
            i += 1
            while true {
                skipSpaces()
                guard i < line.count else { return nil }
                if line[i] == UInt8(ascii: "}") { i += 1; break }
                let keyStart = i
                while i < line.count, isNameByte(line[i]) { i += 1 }
                guard i > keyStart, i + 1 < line.count, line[i] == UInt8(ascii: "="), line[i + 1] == UInt8(ascii: "\"") else { return nil }
                let key = String(decoding: line[keyStart..<i], as: UTF8.self)
                i += 2
                var value: [UInt8] = []
                while true {
                    guard i < line.count else { return nil }  // the quote never closes
                    let byte = line[i]
                    if byte == UInt8(ascii: "\"") { i += 1; break }
                    if byte == UInt8(ascii: "\\") {
                        guard i + 1 < line.count else { return nil }
                        value.append(line[i + 1] == UInt8(ascii: "n") ? UInt8(ascii: "\n") : line[i + 1])
                        i += 2
                    } else {
                        value.append(byte)
                        i += 1
                    }
                }
                labels[key] = String(decoding: value, as: UTF8.self)
                skipSpaces()
                if i < line.count, line[i] == UInt8(ascii: ",") { i += 1 }
            }
        }
        guard i < line.count, line[i] == UInt8(ascii: " ") || line[i] == UInt8(ascii: "\t") else { return nil }
        skipSpaces()
        let valueStart = i
        while i < line.count, line[i] != UInt8(ascii: " "), line[i] != UInt8(ascii: "\t") { i += 1 }
        guard let value = number(String(decoding: line[valueStart..<i], as: UTF8.self)) else { return nil }
        skipSpaces()
        if i < line.count {
            // Only a timestamp (integer milliseconds) may follow.
            let rest = line[i...]
            guard Int64(String(decoding: rest, as: UTF8.self)) != nil else { return nil }
        }
        return PrometheusSample(name: name, labels: labels, value: value)
    }

    /// A sample value: a Go float (`1`, `1.5e-05`) or `+Inf`, `-Inf`, `NaN`.
    private static func number(_ text: String) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            // Double(_:) would also take `inf`, `nan` and hex floats, which the format does not have.
            guard let first = text.utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+")
                    || first == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
                  !text.contains("x"), !text.contains("X") else { return nil }
            return Double(text)
        }
    }

    /// `[a-zA-Z0-9_:]`: the bytes of metric and label names.
    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: ":"): return true
        default: return false
        }
    }
}

extension Array where Element == PrometheusSample {
    /// The value of the first sample named `name` whose labels are exactly `labels`
    /// (`[:]`: an unlabelled series), or `nil`.
    public func value(of name: String, labels: [String: String] = [:]) -> Double? {
        first { $0.name == name && $0.labels == labels }?.value
    }
}
