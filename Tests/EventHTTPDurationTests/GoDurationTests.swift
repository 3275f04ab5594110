import Testing
@testable import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `GoDuration` is a port of Go's `time.ParseDuration` and `Duration.String`; the expected values
/// here are what Go (go/src/time/format.go, time.go) gives for the same input.
@Suite struct GoDurationTests {
    /// The error a parse throws, or `nil` if it parsed.
    private func parseError(_ text: String) -> DurationParseError? {
        do {
            _ = try GoDuration(parsing: text)
            return nil
        } catch {
            return error
        }
    }

    // MARK: - Parsing: good inputs

    @Test(arguments: [
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("0s", 0),
        ("5s", 5_000_000_000),
        ("+5s", 5_000_000_000),
        ("250ms", 250_000_000),
        ("1.5s", 1_500_000_000),
        ("2m", 120_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("1h2m3.5s", 3_723_500_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("3us", 3_000),
        ("3\u{00B5}s", 3_000),  // micro sign
        ("3\u{03BC}s", 3_000),  // Greek small letter mu
        ("10ns", 10),
        ("-3s", -3_000_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("0.1ms", 100_000),
        ("1.0000000001s", 1_000_000_000),  // digits past nanoseconds are dropped
        ("0.9999999999s", 999_999_999),  // ... truncated, not rounded
        ("0.3333333333333333333h", 1_200_000_000_000),  // Go: 20 * Minute
        ("0.830103483285477580700h", 2_988_372_539_827),  // Go: 49m48.372539827s
        ("1h1m1s1ms1us1ns", 3_661_001_001_001),
        ("9223372036s854ms775us807ns", Int64.max),
        ("9223372036854775807ns", Int64.max),
        ("-9223372036854775808ns", Int64.min),
        ("2562047h47m16.854775807s", Int64.max),
        ("-2562047h47m16.854775808s", Int64.min),
    ] as [(String, Int64)])
    func parsesGoodInput(_ text: String, nanoseconds: Int64) throws {
        let parsed = try GoDuration(parsing: text)
        #expect(parsed.nanoseconds == nanoseconds)
        #expect(parsed == GoDuration(nanoseconds: nanoseconds))
    }

    // MARK: - Parsing: bad inputs

    @Test(arguments: ["", "abc", ".", "-", "+", "s", ".s", "-.s", "--1s", "+-1s", " 1s"])
    func rejectsInvalidInput(_ text: String) {
        let error = parseError(text)
        #expect(error == .invalid(text))
        #expect(error?.description == "time: invalid duration \"\(text)\"")
    }

    /// "1.2.3s" is not `.invalid` in Go: after "1.2" the unit scan stops at the second ".", so Go
    /// reports `time: missing unit in duration "1.2.3s"`. The port does the same.
    @Test(arguments: ["5", "1.5", "00", "1.2.3s", "1s2"])
    func rejectsMissingUnit(_ text: String) {
        let error = parseError(text)
        #expect(error == .missingUnit(text))
        #expect(error?.description == "time: missing unit in duration \"\(text)\"")
    }

    @Test(arguments: [
        ("5x", "x"),
        ("5sec", "sec"),
        ("5S", "S"),
        ("5Ms", "Ms"),
        ("1s5min", "min"),
        ("3u", "u"),
        ("1s ", "s "),  // the unit runs to the next digit or dot
    ] as [(String, String)])
    func rejectsUnknownUnit(_ text: String, unit: String) {
        let error = parseError(text)
        #expect(error == .unknownUnit(unit: unit, input: text))
        #expect(error?.description == "time: unknown unit \"\(unit)\" in duration \"\(text)\"")
    }

    @Test(arguments: [
        "9223372036854775808ns",  // Int64.max + 1
        "2562048h",
        "2562047h47m16.854775808s",  // Int64.max + 1 via the fraction
        "99999999999999999999s",  // the integer itself overflows
        "-9223372036854775809ns",
        "9223372036854775807ns1ns",  // the sum overflows
        "2562047h47m16.9s",
    ])
    func rejectsOutOfRange(_ text: String) {
        let error = parseError(text)
        #expect(error == .outOfRange(text))
        #expect(
            error?.description
                == "time: duration \"\(text)\" is out of range (max 2562047h47m16.854775807s)")
    }

    @Test func errorTextQuotesQuoteAndBackslashLikeGo() {
        #expect(parseError("1\"")?.description == #"time: unknown unit "\"" in duration "1\"""#)
        #expect(parseError("1\\")?.description == #"time: unknown unit "\\" in duration "1\\""#)
        #expect(GoDuration.quote(#"a"b\c"#) == #""a\"b\\c""#)
    }

    /// Go's `quote` writes every byte of a non-ASCII or control character as `\xNN` (two hex
    /// digits) and passes DEL through.
    @Test func errorTextEscapesLikeGoForNonASCIIAndControlCharacters() {
        #expect(
            parseError("3\u{00B5}x")?.description
                == #"time: unknown unit "\xc2\xb5x" in duration "3\xc2\xb5x""#)
        #expect(GoDuration.quote("a\nb") == #""a\x0ab""#)
        #expect(GoDuration.quote("\t") == #""\x09""#)
        #expect(GoDuration.quote("\u{01}") == #""\x01""#)
        #expect(GoDuration.quote("\u{7F}") == "\"\u{7F}\"")
    }

    /// Two terms of exactly 2^63 ns each used to overflow the running total and trap (Go's
    /// uint64 wraps instead). Reachable from `?delay=` on the server.
    @Test
    func twoTermsOfTwoToTheSixtyThreeAreOutOfRange() {
        let text = "9223372036854775808ns9223372036854775808ns"
        #expect(parseError(text) == .outOfRange(text))
    }

    // MARK: - Formatting (Go's Duration.String)

    @Test(arguments: [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_000, "1\u{00B5}s"),
        (1_100, "1.1\u{00B5}s"),
        (2_200_000, "2.2ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (1_000_000_001, "1.000000001s"),
        (60_000_000_000, "1m0s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-1, "-1ns"),
        (-1_100, "-1.1\u{00B5}s"),
        (-1_500_000_000, "-1.5s"),
        (Int64.max, "2562047h47m16.854775807s"),
        (Int64.min, "-2562047h47m16.854775808s"),
    ] as [(Int64, String)])
    func formatsLikeGo(_ nanoseconds: Int64, text: String) {
        #expect(GoDuration(nanoseconds: nanoseconds).description == text)
        #expect("\(GoDuration(nanoseconds: nanoseconds))" == text)
    }

    @Test(arguments: [
        0, 1, 999, 1_000, 1_100, 123_456, 2_200_000, 999_999_999, 1_000_000_000, 1_500_000_000,
        90_000_000_000, 3_600_000_000_000, 3_723_500_000_000, -1, -1_500_000_000, -3_723_500_000_000,
        Int64.max, Int64.min,
    ] as [Int64])
    func roundTripsThroughDescription(_ nanoseconds: Int64) throws {
        let value = GoDuration(nanoseconds: nanoseconds)
        #expect(try GoDuration(parsing: value.description) == value)
    }

    // MARK: - The rest of the API

    @Test func helpersAndComparison() {
        #expect(GoDuration.seconds(2).nanoseconds == 2_000_000_000)
        #expect(GoDuration.milliseconds(250).nanoseconds == 250_000_000)
        #expect(GoDuration.zero.nanoseconds == 0)
        #expect(GoDuration.milliseconds(999) < .seconds(1))
        #expect(GoDuration(nanoseconds: -1) < .zero)
        #expect(GoDuration.seconds(3).duration == .seconds(3))
        #expect(GoDuration(nanoseconds: 1_500).duration == .nanoseconds(1_500))
    }
}
