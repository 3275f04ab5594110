// libFuzzer target: Go durations (`?delay=`, `?timeout=`, every duration flag of greetd and
// greet-stress): GreetdRules' one parser, `GoDuration(parsing:)`, and its one formatter.
//
// Built by scripts/fuzz.sh against the GreetdRules module (Sources/GreetdRules, compiled with the
// fuzzer's instrumentation).
//
// Properties checked on every input (any violation traps, and libFuzzer keeps the input):
// - parsing never traps;
// - a parsed value prints (Go's `Duration.String`) as text that parses back to the same value;
// - a leading `+` changes nothing; a leading `-` negates (the one asymmetry being 2^63 ns,
//   which only fits negated, exactly as in Go);
// - an error's description is non-empty, starts with `time: `, and is printable ASCII (it goes
//   verbatim into a 400 body and log lines: no control bytes, no CR/LF, no raw non-ASCII).
//
// With GREETD_FUZZ_PRINT=1 in the environment, prints one line per input
// (`<hex of input> ok <ns>` or `<hex of input> err <description>`): scripts/fuzz.sh replays the
// corpus that way and compares it with Go's own time.ParseDuration (Fuzz/duration/goref).

import EventHTTPDuration
import GreetdRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventHTTPSystem

private let printResults = getenv("GREETD_FUZZ_PRINT").map { String(cString: $0) == "1" } ?? false

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("duration property violated: \(message())") }
}

private func parse(_ text: String) -> Result<Int64, DurationParseError> {
    do {
        return .success(try GoDuration(parsing: text).nanoseconds)
    } catch {
        return .failure(error)
    }
}

private func isOutOfRange(_ r: Result<Int64, DurationParseError>) -> Bool {
    if case .failure(.outOfRange) = r { return true }
    return false
}

private func hex(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
    let digits = Array("0123456789abcdef")
    var out = ""
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xf)])
    }
    return out.isEmpty ? "-" : out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // Query values and flags reach the parser as Swift strings: invalid UTF-8 has already been
    // repaired (U+FFFD) by then, so decoding lossily is what greetd does too.
    let text = String(decoding: bytes, as: UTF8.self)

    let result = parse(text)

    switch result {
    case .success(let ns):
        // Go's round trip: Duration.String parses back to the same value.
        let printed = GoDuration(nanoseconds: ns).description
        check(!printed.isEmpty, "empty description for \(ns)ns")
        switch parse(printed) {
        case .success(let back):
            check(back == ns, "round trip: \(GoDuration.quote(text)) = \(ns)ns prints as \(GoDuration.quote(printed)), which parses as \(back)ns")
        case .failure(let error):
            check(false, "round trip: \(GoDuration.quote(text)) = \(ns)ns prints as \(GoDuration.quote(printed)), which fails: \(error)")
        }
        // Swift's Duration and back: the one conversion loses nothing within Go's range.
        check(GoDuration(GoDuration(nanoseconds: ns).duration).nanoseconds == ns, "Duration round trip of \(ns)ns")
    case .failure(let error):
        check(parse(text) == result, "parsing \(GoDuration.quote(text)) twice fails differently")
        let message = error.description
        check(!message.isEmpty, "empty error description for \(GoDuration.quote(text))")
        check(message.hasPrefix("time: "), "error description without Go's prefix: \(message)")
        check(message.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x80 },
              "error description with control or non-ASCII bytes for input \(hex(bytes))")
    }

    // Signs: "+x" is "x"; "-x" is the negation of "x" (2^63 ns only fits negated).
    if let first = text.utf8.first, first != UInt8(ascii: "+"), first != UInt8(ascii: "-") {
        let plus = parse("+" + text)
        let minus = parse("-" + text)
        switch (result, plus) {
        case (.success(let a), .success(let b)): check(a == b, "\"+\" changes the value of \(GoDuration.quote(text))")
        case (.failure, .failure): break
        default: check(false, "\"+\" changes whether \(GoDuration.quote(text)) parses")
        }
        switch (result, minus) {
        case (.success(let a), .success(let b)):
            check(b == 0 - a, "\"-\" does not negate \(GoDuration.quote(text)): \(a) vs \(b)")
        case (.failure, .failure): break
        case (.failure, .success(let b)):
            check(b == Int64.min && isOutOfRange(result), "only \"-\" + \(GoDuration.quote(text)) parses (\(b)ns)")
        case (.success, .failure):
            check(false, "\(GoDuration.quote(text)) parses but \"-\" + it does not")
        }
    }

    if printResults {
        switch result {
        case .success(let ns): print("\(hex(bytes)) ok \(ns)")
        case .failure(let error): print("\(hex(bytes)) err \(error)")
        }
    }
    return 0
}
