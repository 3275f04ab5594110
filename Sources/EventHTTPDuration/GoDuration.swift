/// Why a duration string did not parse. The descriptions are Go's `time.ParseDuration` errors,
/// except ``outOfRange``, which Go folds into "invalid duration" and we name.
public enum DurationParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not a duration at all: `abc`, `.s`, `--1s`, empty.
    case invalid(String)
    /// A number without a unit: `5` (only `0` may go without one).
    case missingUnit(String)
    /// A unit Go does not know: `5x`, `5sec`.
    case unknownUnit(unit: String, input: String)
    /// More than about 292 years (2^63 - 1 nanoseconds).
    case outOfRange(String)

    /// Go's error text: `time: invalid duration "abc"`.
    public var description: String {
        switch self {
        case .invalid(let input): return "time: invalid duration \(GoDuration.quote(input))"
        case .missingUnit(let input): return "time: missing unit in duration \(GoDuration.quote(input))"
        case .unknownUnit(let unit, let input): return "time: unknown unit \(GoDuration.quote(unit)) in duration \(GoDuration.quote(input))"
        case .outOfRange(let input): return "time: duration \(GoDuration.quote(input)) is out of range (max 2562047h47m16.854775807s)"
        }
    }
}

/// A span of time in Go's syntax: `0`, `250ms`, `1.5s`, `2m`, `1h30m`, `-3us`.
///
/// Parsing follows Go's `time.ParseDuration` exactly (units `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`,
/// `h`; an optional sign; decimal fractions; several units in a row) and ``description`` follows
/// Go's `Duration.String`, so a value reads back as it would in Go.
public struct GoDuration: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The span in nanoseconds, as Go stores it.
    public var nanoseconds: Int64

    /// A span of `nanoseconds`.
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// Parses Go's syntax (negative values included; callers that refuse them say so).
    public init(parsing text: String) throws(DurationParseError) {
        nanoseconds = try parseGoDuration(text)
    }

    /// The same span as a Swift `Duration`, truncated toward zero to whole nanoseconds and clamped
    /// to Go's range (about ±292 years): ``Swift/Duration/wholeNanoseconds``.
    public init(_ duration: Duration) {
        nanoseconds = duration.wholeNanoseconds
    }

    /// `s` whole seconds. Traps past Go's range, as any integer overflow does.
    public static func seconds(_ s: Int64) -> GoDuration { GoDuration(nanoseconds: s * 1_000_000_000) }
    /// `ms` whole milliseconds. Traps past Go's range.
    public static func milliseconds(_ ms: Int64) -> GoDuration { GoDuration(nanoseconds: ms * 1_000_000) }
    /// No time at all (`0s`).
    public static let zero = GoDuration(nanoseconds: 0)

    /// The same span as a Swift `Duration`.
    public var duration: Duration { .nanoseconds(nanoseconds) }

    /// The shorter span is the smaller (negative spans are below zero).
    public static func < (lhs: GoDuration, rhs: GoDuration) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// Go's `Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
    public var description: String {
        let negative = nanoseconds < 0
        var u = nanoseconds.magnitude
        var out = ""
        if u < 1_000_000_000 {
            if u == 0 { return "0s" }
            let (prec, unit): (Int, String) =
                u < 1_000 ? (0, "ns") : u < 1_000_000 ? (3, "µs") : (6, "ms")
            let (frac, rest) = formatFraction(u, precision: prec)
            out = String(rest) + frac + unit
        } else {
            let (frac, seconds) = formatFraction(u, precision: 9)
            u = seconds
            out = "\(u % 60)" + frac + "s"
            u /= 60
            if u > 0 {
                out = "\(u % 60)m" + out
                u /= 60
                if u > 0 { out = "\(u)h" + out }
            }
        }
        return negative ? "-" + out : out
    }
}

/// Go's `fmtFrac`: the fraction of `value / 10^precision` as `.123` (no trailing zeros, nothing
/// at all when zero), and the integer part.
private func formatFraction(_ value: UInt64, precision: Int) -> (String, UInt64) {
    var v = value
    var digits: [Character] = []
    var printed = false
    for _ in 0..<precision {
        let digit = v % 10
        printed = printed || digit != 0
        if printed { digits.append(Character(String(digit))) }
        v /= 10
    }
    if !printed { return ("", v) }
    return ("." + String(digits.reversed()), v)
}

/// Go's `time.quote`: double quotes, `"` and `\\` escaped, and every byte of a control or
/// non-ASCII character written as `\\xNN`. The result is ASCII with no byte below 0x20 whatever
/// the input (DEL passes through, as in Go), so it is one line in a `400` body or a log line.
/// Pure; any thread.
extension GoDuration {
public static func quote(_ s: String) -> String {
    let hex = Array("0123456789abcdef")
    var out = "\""
    for byte in s.utf8 {
        if byte >= 0x80 || byte < 0x20 {
            out += "\\x"
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xf)])
        } else {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out += "\\" }
            out.unicodeScalars.append(Unicode.Scalar(byte))
        }
    }
    return out + "\""
}
}

/// Why ``parseGoDuration(_:)`` refused its bytes; the caller adds the input text.
public enum DurationBytesFailure: Error, Sendable {
    case invalid, missingUnit, outOfRange
    /// The unit's bytes: `range` in the input.
    case unknownUnit(Range<Int>)
}

/// Nanoseconds per unit for the unit's UTF-8 bytes (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`);
/// `nil` for any other. A switch, not a dictionary: no hashing, no String.
@inline(__always)
private func unitNanoseconds(_ u: UnsafeBufferPointer<UInt8>) -> UInt64? {
    switch u.count {
    case 1:
        switch u[0] {
        case UInt8(ascii: "s"): return 1_000_000_000
        case UInt8(ascii: "m"): return 60_000_000_000
        case UInt8(ascii: "h"): return 3_600_000_000_000
        default: return nil
        }
    case 2:
        guard u[1] == UInt8(ascii: "s") else { return nil }
        switch u[0] {
        case UInt8(ascii: "n"): return 1
        case UInt8(ascii: "u"): return 1_000
        case UInt8(ascii: "m"): return 1_000_000
        default: return nil
        }
    case 3:
        // µ (U+00B5 MICRO SIGN) and μ (U+03BC GREEK SMALL LETTER MU), then `s`.
        guard u[2] == UInt8(ascii: "s") else { return nil }
        return (u[0] == 0xC2 && u[1] == 0xB5) || (u[0] == 0xCE && u[1] == 0xBC) ? 1_000 : nil
    default:
        return nil
    }
}

/// A port of Go's `time.ParseDuration` (go/src/time/format.go). The one duration parser: every
/// flag, query value and tool goes through ``GoDuration/init(parsing:)`` or
/// ``GoDuration/parse(utf8:)``, which call this.
private func parseGoDuration(_ original: String) throws(DurationParseError) -> Int64 {
    let result = original.utf8.withContiguousStorageIfAvailable { parseGoDuration($0) }
        ?? Array(original.utf8).withUnsafeBufferPointer { parseGoDuration($0) }
    switch result {
    case .success(let value):
        return value
    case .failure(let failure):
        throw DurationParseError(failure, input: original)
    }
}

extension DurationParseError {
    /// The error for `failure` on `input` (whose UTF-8 the failure's ranges index).
    public init(_ failure: DurationBytesFailure, input: String) {
        switch failure {
        case .invalid: self = .invalid(input)
        case .missingUnit: self = .missingUnit(input)
        case .outOfRange: self = .outOfRange(input)
        case .unknownUnit(let range):
            let utf8 = input.utf8
            let unit = utf8[utf8.index(utf8.startIndex, offsetBy: range.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: range.upperBound)]
            self = .unknownUnit(unit: String(decoding: unit, as: UTF8.self), input: input)
        }
    }
}

/// Go's `time.ParseDuration` over UTF-8 bytes: no allocation on any path.
extension GoDuration {
    /// Go's `time.ParseDuration` over UTF-8 bytes, in nanoseconds, allocating nothing (the fast
    /// path of a query parser). ``init(parsing:)`` gives the same results with error texts.
    public static func nanoseconds(parsing utf8: UnsafeBufferPointer<UInt8>) -> Result<Int64, DurationBytesFailure> {
        parseGoDuration(utf8)
    }
}

/// Go's `time.ParseDuration` over UTF-8 bytes: no allocation on any path.
func parseGoDuration(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Int64, DurationBytesFailure> {
    var i = 0
    let end = bytes.count
    var total: UInt64 = 0
    var negative = false
    let limit: UInt64 = 1 << 63

    if end > 0, bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
        negative = bytes[0] == UInt8(ascii: "-")
        i = 1
    }
    if end - i == 1 && bytes[i] == UInt8(ascii: "0") { return .success(0) }
    if i == end { return .failure(.invalid) }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    while i < end {
        var value: UInt64 = 0
        var fraction: UInt64 = 0
        var scale: Double = 1
        guard bytes[i] == UInt8(ascii: ".") || isDigit(bytes[i]) else { return .failure(.invalid) }

        // Integer part (Go's leadingInt: overflow is an error).
        let beforeInt = i
        var overflow = false
        while i < end, isDigit(bytes[i]) {
            if value > (limit - 1) / 10 { overflow = true }
            value = value &* 10 &+ UInt64(bytes[i] - UInt8(ascii: "0"))
            if value > limit { overflow = true }
            i += 1
        }
        if overflow { return .failure(.outOfRange) }
        let hadInt = i != beforeInt

        // Fraction (Go's leadingFraction: digits past the precision are dropped, not an error).
        var hadFraction = false
        if i < end, bytes[i] == UInt8(ascii: ".") {
            i += 1
            let beforeFraction = i
            var fractionOverflow = false
            while i < end, isDigit(bytes[i]) {
                if !fractionOverflow {
                    if fraction > (limit - 1) / 10 {
                        fractionOverflow = true
                    } else {
                        let next = fraction * 10 + UInt64(bytes[i] - UInt8(ascii: "0"))
                        if next > limit { fractionOverflow = true } else { fraction = next; scale *= 10 }
                    }
                }
                i += 1
            }
            hadFraction = i != beforeFraction
        }
        if !hadInt && !hadFraction { return .failure(.invalid) }

        // Unit: everything up to the next digit or dot.
        let unitStart = i
        while i < end, bytes[i] != UInt8(ascii: "."), !isDigit(bytes[i]) { i += 1 }
        if i == unitStart { return .failure(.missingUnit) }
        guard let unit = unitNanoseconds(UnsafeBufferPointer(rebasing: bytes[unitStart..<i])) else {
            return .failure(.unknownUnit(unitStart..<i))
        }

        if value > limit / unit { return .failure(.outOfRange) }
        value *= unit
        if fraction > 0 {
            value += UInt64(Double(fraction) * (Double(unit) / scale))
            if value > limit { return .failure(.outOfRange) }
        }
        if value > limit - total { return .failure(.outOfRange) }
        total += value
    }
    if negative { return .success(total == limit ? Int64.min : -Int64(total)) }
    if total > limit - 1 { return .failure(.outOfRange) }
    return .success(Int64(total))
}
