import GreetdRules
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The spread of abort times, `--abort-after`: `50ms-500ms`, or one value such as `200ms`.
/// Durations are Go's syntax, parsed by GreetdRules' ``GoDuration``.
struct AbortWindow: Sendable, CustomStringConvertible {
    let lower: Duration
    let upper: Duration

    /// Parses `LOW-HIGH` or a single duration (then low and high are equal).
    init(parsing text: String) throws(AbortWindowError) {
        // The separator is a '-' after the first character (a leading '-' is a sign, refused).
        let body = text.dropFirst()
        if let dash = body.firstIndex(of: "-") {
            lower = try Self.bound(String(text[..<dash]))
            upper = try Self.bound(String(text[text.index(after: dash)...]))
            guard lower <= upper else { throw .badRange(text, reason: "the low end is above the high end") }
        } else {
            lower = try Self.bound(text)
            upper = lower
        }
    }

    /// One end: a Go duration, not negative.
    private static func bound(_ text: String) throws(AbortWindowError) -> Duration {
        let value: GoDuration
        do {
            value = try GoDuration(parsing: text)
        } catch {
            throw .syntax(error)
        }
        guard value >= .zero else { throw .negative(text) }
        return value.duration
    }

    /// A time drawn uniformly from the window.
    func random(using generator: inout some RandomNumberGenerator) -> Duration {
        let low = lower.wholeNanoseconds, high = upper.wholeNanoseconds
        return .nanoseconds(low == high ? low : Int64.random(in: low...high, using: &generator))
    }

    /// `50ms-500ms`, or `200ms` when both ends are equal (Go's duration text).
    var description: String {
        lower == upper ? "\(GoDuration(lower))" : "\(GoDuration(lower))-\(GoDuration(upper))"
    }
}

/// Why `--abort-after` did not parse.
enum AbortWindowError: Error, CustomStringConvertible {
    /// Not a Go duration (Go's error text).
    case syntax(DurationParseError)
    /// An end below zero.
    case negative(String)
    /// The ends in the wrong order.
    case badRange(String, reason: String)

    var description: String {
        switch self {
        case .syntax(let error): return "\(error)"
        case .negative(let input): return "duration \(GoDuration.quote(input)) must not be negative"
        case .badRange(let input, let reason): return "invalid range \(GoDuration.quote(input)): \(reason)"
        }
    }
}
