/// Why a duration flag did not parse; the texts follow Go's `time.ParseDuration` errors.
enum DurationSyntaxError: Error, CustomStringConvertible {
    case invalid(String)
    case missingUnit(String)
    case unknownUnit(unit: String, input: String)
    case negative(String)
    case badRange(String, reason: String)

    var description: String {
        switch self {
        case .invalid(let input): return "time: invalid duration \"\(input)\""
        case .missingUnit(let input): return "time: missing unit in duration \"\(input)\""
        case .unknownUnit(let unit, let input): return "time: unknown unit \"\(unit)\" in duration \"\(input)\""
        case .negative(let input): return "duration \"\(input)\" must not be negative"
        case .badRange(let input, let reason): return "invalid range \"\(input)\": \(reason)"
        }
    }
}

private let nanosecondsPerUnit: [String: Double] = [
    "ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9,
]

/// Parses a non-negative duration in Go's syntax: `0`, `250ms`, `1.5s`, `2m`, `1h30m`.
///
/// greetd's own parser lives in GreetdCore, which this tool does not link (it talks to any
/// server over the wire); this one accepts the same texts for the spans a load run uses.
func parseGoDuration(_ text: String) throws(DurationSyntaxError) -> Duration {
    var rest = Substring(text)
    if rest.first == "+" { rest = rest.dropFirst() }
    if rest.first == "-" { throw .negative(text) }
    if rest == "0" { return .zero }
    if rest.isEmpty { throw .invalid(text) }
    func isNumeric(_ c: Character) -> Bool { c == "." || ("0"..."9").contains(c) }
    var nanoseconds = 0.0
    while !rest.isEmpty {
        let number = rest.prefix(while: isNumeric)
        guard number.contains(where: { $0 != "." }), number.filter({ $0 == "." }).count <= 1,
              let value = Double(number.hasSuffix(".") ? number + "0" : number) else { throw .invalid(text) }
        rest = rest.dropFirst(number.count)
        let unit = rest.prefix { !isNumeric($0) }
        guard !unit.isEmpty else { throw .missingUnit(text) }
        guard let scale = nanosecondsPerUnit[String(unit)] else { throw .unknownUnit(unit: String(unit), input: text) }
        rest = rest.dropFirst(unit.count)
        nanoseconds += value * scale
    }
    guard nanoseconds < 9.2e18 else { throw .invalid(text) }
    return .nanoseconds(Int64(nanoseconds))
}

/// A duration the way Go prints it, shortened for a report: `0s`, `750µs`, `20ms`, `1.5s`, `2m30s`.
func formatDuration(_ duration: Duration) -> String {
    let nanoseconds = duration.nanoseconds
    if nanoseconds == 0 { return "0s" }
    func trimmed(_ value: Double) -> String {
        var text = String(format3: value)
        while text.contains("."), text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
    if nanoseconds < 1_000_000 { return trimmed(Double(nanoseconds) / 1e3) + "µs" }
    if nanoseconds < 1_000_000_000 { return trimmed(Double(nanoseconds) / 1e6) + "ms" }
    let seconds = Double(nanoseconds) / 1e9
    if seconds < 60 { return trimmed(seconds) + "s" }
    let minutes = Int(seconds / 60)
    let rest = seconds - Double(minutes * 60)
    let hours = minutes / 60
    return (hours > 0 ? "\(hours)h" : "") + "\(minutes % 60)m" + trimmed(rest) + "s"
}

extension Duration {
    /// The whole span in nanoseconds (saturating at about 292 years, far beyond any run).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue + attoseconds / 1_000_000_000
    }

    /// The span in seconds, as a `Double`.
    var seconds: Double { Double(nanoseconds) / 1e9 }
}

extension String {
    /// `value` with exactly three decimals, without Foundation's `String(format:)`.
    init(format3 value: Double) {
        let thousandths = Int((value * 1000).rounded())
        let whole = thousandths / 1000
        let fraction = thousandths % 1000
        self = "\(whole)." + String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0) + "\(fraction)"
    }
}

/// The spread of abort times, `--abort-after`: `50ms-500ms`, or one value such as `200ms`.
struct AbortWindow: Sendable, CustomStringConvertible {
    let lower: Duration
    let upper: Duration

    /// Parses `LOW-HIGH` or a single duration (then low and high are equal).
    init(parsing text: String) throws(DurationSyntaxError) {
        // The separator is a '-' after the first character (a leading '-' is a sign, refused).
        let body = text.dropFirst()
        if let dash = body.firstIndex(of: "-") {
            lower = try parseGoDuration(String(text[..<dash]))
            upper = try parseGoDuration(String(text[text.index(after: dash)...]))
            guard lower <= upper else { throw .badRange(text, reason: "the low end is above the high end") }
        } else {
            lower = try parseGoDuration(text)
            upper = lower
        }
    }

    /// A time drawn uniformly from the window.
    func random(using generator: inout some RandomNumberGenerator) -> Duration {
        let low = lower.nanoseconds, high = upper.nanoseconds
        return .nanoseconds(low == high ? low : Int64.random(in: low...high, using: &generator))
    }

    var description: String { lower == upper ? formatDuration(lower) : "\(formatDuration(lower))-\(formatDuration(upper))" }
}
