// libFuzzer target: `logField`, which turns a client's bytes (the request target) into one
// `key=value` field of the access-log line.
//
// Built by scripts/fuzz.sh against the GreetdRules module, where the server's own `logField`
// lives. Also checks that GreetdRules' readers, `unquoteLogField` and `LogLine.field(_:)`
// (what tools and tests use), give the input back, alone and from an access line.
//
// Properties checked on every input:
// - never traps;
// - a value left as is equals the input and is non-empty printable ASCII without space or `"`;
// - a quoted value starts and ends with `"`, holds no raw `"`, control byte (below 0x20) or
//   non-ASCII byte, and its escapes (`\"`, `\\`, `\xNN`) decode back to the input's bytes:
//   whatever the client sends, the field is one token that a reader can split on spaces and undo.

import GreetdRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("log field property violated: \(message())") }
}

/// Whether a quoted field is one token in the shape `goQuote` writes: `"` at both ends, no raw
/// `"`, control byte (below 0x20) or non-ASCII byte between them, and no escape but `\"`, `\\` and `\xNN`
/// (lowercase hex). What the escapes decode to is `unquoteLogField`'s business, checked below.
private func isWellFormedQuote(_ quoted: [UInt8]) -> Bool {
    guard quoted.count >= 2, quoted.first == UInt8(ascii: "\""), quoted.last == UInt8(ascii: "\"") else { return false }
    let isLowerHex = { (c: UInt8) in (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(c) }
    var i = 1
    let end = quoted.count - 1
    while i < end {
        let c = quoted[i]
        if c == UInt8(ascii: "\"") || c < 0x20 || c >= 0x80 { return false }
        guard c == UInt8(ascii: "\\") else { i += 1; continue }
        guard i + 1 < end else { return false }
        switch quoted[i + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): i += 2
        case UInt8(ascii: "x"):
            guard i + 3 < end, isLowerHex(quoted[i + 2]), isLowerHex(quoted[i + 3]) else { return false }
            i += 4
        default: return false
        }
    }
    return true
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // greetd has the target as `String(cString: evhttp_request_get_uri(...))`: up to the first
    // NUL, invalid UTF-8 repaired.
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
    let value = String(decoding: bytes[..<end], as: UTF8.self)
    let input = Array(value.utf8)

    let field = Array(logField(value).utf8)
    if field == input {
        check(!field.isEmpty, "an empty value left as is")
        check(field.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") },
              "a value left as is with a space, quote, control or non-ASCII byte: \(field)")
    } else {
        // The reader tools and tests use, GreetdRules' unquoteLogField, takes the whole field back.
        guard isWellFormedQuote(field), let (decoded, consumed) = unquoteLogField(field, from: 0), consumed == field.count else {
            check(false, "not a well-formed quoted field: \(String(decoding: field, as: UTF8.self).debugDescription)")
            return 0
        }
        check(decoded == input, "the quoted field does not decode to the input: \(String(decoding: field, as: UTF8.self).debugDescription)")
    }
    // Read back from a log line, the field is the input, and the fields after it are intact.
    let message = "access method=GET target=\(logField(value)) status=200"
    let line = formatLogLine(level: .info, message: message, requestID: "1", at: LogTimestamp(seconds: 0, nanoseconds: 0))
    if let parsed = LogLine(parsing: String(decoding: line, as: UTF8.self)) {
        check(parsed.field("target") == value, "LogLine.field(\"target\") does not give the input back: \(value.debugDescription)")
        check(parsed.field("status") == "200", "a target hides the fields after it: \(value.debugDescription)")
    } else {
        check(false, "an access line does not parse: \(String(decoding: line, as: UTF8.self).debugDescription)")
    }
    return 0
}
