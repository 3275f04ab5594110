// libFuzzer target: `acceptableRequestID`, the filter on a client's `X-Request-Id` (the value
// goes into every log line about the request and back out in the response's `X-Request-Id`).
//
// Built by scripts/fuzz.sh against the GreetdRules module, where the server's own
// `acceptableRequestID` lives.
//
// Properties checked on every input:
// - never traps;
// - an accepted value equals the input, is 1 to 64 bytes, and each byte is one of
//   `A-Z a-z 0-9 . _ : -` (so it is safe in a header and a log line: no CR, LF, space, `]`);
// - a rejected value really breaks that rule (the filter does not refuse good ids).

import GreetdRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("request id property violated: \(message())") }
}

private func allowed(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"),
         UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
        return true
    default:
        return false
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // greetd gets the header as `String(cString: evhttp_find_header(...))`: the value ends at the
    // first NUL, and invalid UTF-8 is repaired. Do the same.
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
    let value = String(decoding: bytes[..<end], as: UTF8.self)
    let utf8 = Array(value.utf8)

    let specAccepts = (1...64).contains(utf8.count) && utf8.allSatisfy(allowed)

    if let accepted = acceptableRequestID(value) {
        let out = Array(accepted.utf8)
        check(out == utf8, "accepted id differs from the input")
        check((1...64).contains(out.count), "accepted id of \(out.count) bytes")
        check(out.allSatisfy(allowed), "accepted id with a byte outside [A-Za-z0-9._:-]: \(out)")
    } else {
        check(!specAccepts, "a valid id was refused: \(value)")
    }
    return 0
}
