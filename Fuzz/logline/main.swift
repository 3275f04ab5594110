// libFuzzer target: `formatLogLine`, the one place every log line of greetd is built, and
// `LogLine(parsing:)`, which reads lines back for tests and tools.
//
// Built by scripts/fuzz.sh against the GreetdRules module: the format is a pure function of
// strings there (GreetdCore turns swift-log's level and metadata into those strings).
//
// Input layout (the seed corpus follows it):
//   byte 0      control: level = b % 7 (trace…critical); 0x08 a `request_id` segment follows the
//               message; 0x10 the line starts with its sd-daemon priority (`<6>`, as under
//               systemd); 0x20 and 0x40 are ignored (they chose swift-log array and dictionary
//               values when the target built swift-log's metadata)
//   bytes 1…8   the clock: little-endian, folded into 0001-01-01 … 9999-12-31 (seconds) and
//               0 … 999_999_999 (nanoseconds), the range `appendUTCTimestamp` is written for
//   the rest    segments split at 0xFF (a byte UTF-8 never uses): message, [request_id],
//               then key, value, key, value, …  (a repeated key: the last value, as in swift-log's
//               metadata). Invalid UTF-8 is repaired, as Swift strings are.
//
// Properties:
// - never traps;
// - the output is valid UTF-8 (the inputs, being Swift strings, are);
// - one line: the output holds no raw `\n` unless the message had one; and, the format's
//   documented contract, no raw control byte (below 0x20, 0x7f) at all. Fields and the request
//   id count too, unless GREETD_FUZZ_LOGLINE_TRUSTED_METADATA=1 (then inputs whose fields hold
//   such bytes are not checked: the variant for "metadata never carries client bytes");
// - the line starts `[<N>]<timestamp> <level> ` with the timestamp gmtime_r gives; when no input
//   holds a control character it is exactly
//   `[<N>]<timestamp> <level>[ [request_id=<id>]] <message>[ key=value…]`, keys sorted;
// - `LogLine(parsing:)` reads every line back: the priority, the time to the microsecond, the
//   level; the request id and the message too, unless the id holds `]` (the reader's delimiter)
//   or, without an id, the message itself starts like one.

import GreetdRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EventHTTPSystem

private let trustedMetadata =
    getenv("GREETD_FUZZ_LOGLINE_TRUSTED_METADATA").map { String(cString: $0) == "1" } ?? false

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("log line property violated: \(message())") }
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
private let firstSecond = -62_135_596_800
private let lastSecond = 253_402_300_799

private func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The timestamp by the C library, as the line should show it.
private func expectedTimestamp(_ time: LogTimestamp) -> String {
    var t = time_t(time.seconds)
    var tm = tm()
    check(gmtime_r(&t, &tm) != nil, "gmtime_r failed for \(time.seconds)")
    return pad(Int(tm.tm_year) + 1900, 4) + "-" + pad(Int(tm.tm_mon) + 1, 2) + "-" + pad(Int(tm.tm_mday), 2)
        + "T" + pad(Int(tm.tm_hour), 2) + ":" + pad(Int(tm.tm_min), 2) + ":" + pad(Int(tm.tm_sec), 2)
        + "." + pad(Int(time.nanoseconds) / 1_000, 6) + "Z"
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let control = size > 0 ? bytes[0] : 0
    var clock: UInt64 = 0
    for i in 0..<8 where 1 + i < size { clock |= UInt64(bytes[1 + i]) << (8 * UInt64(i)) }
    let span = UInt64(lastSecond - firstSecond + 1)
    let time = LogTimestamp(seconds: Int64(firstSecond) + Int64(clock % span), nanoseconds: Int32(clock.byteSwapped % 1_000_000_000))

    var segments: [String] = []
    if size > 9 {
        segments = bytes[9...].split(separator: 0xFF, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
    }
    let level = LogLevel.allCases[Int(control % 7)]
    let priority = control & 0x10 != 0
    let message = segments.first ?? ""
    var rest = segments.dropFirst()
    var requestID: String?
    if control & 0x08 != 0, let id = rest.first {
        requestID = id
        rest = rest.dropFirst()
    }
    var metadata: [String: String] = [:]
    let pairs = Array(rest)
    var i = 0
    while i < pairs.count {
        metadata[pairs[i]] = i + 1 < pairs.count ? pairs[i + 1] : ""
        i += 2
    }
    var metadataText = Array(metadata.keys) + Array(metadata.values)  // for the one-line properties
    if let requestID { metadataText.append(requestID) }

    let bytesOut = formatLogLine(level: level, message: message, requestID: requestID,
                                 fields: metadata.map { (key: $0.key, value: $0.value) }, at: time, journalPriority: priority)
    let text = String(decoding: bytesOut, as: UTF8.self)

    // Valid UTF-8.
    check(String(validating: bytesOut, as: UTF8.self) != nil, "output is not valid UTF-8: \(bytesOut)")

    // One line.
    let newline = UInt8(ascii: "\n")
    let isControl: (UInt8) -> Bool = { $0 < 0x20 || $0 == 0x7f }
    let messageHasNewline = message.utf8.contains(newline)
    let metadataHasNewline = metadataText.contains { $0.utf8.contains(newline) }
    if !messageHasNewline && !(trustedMetadata && metadataHasNewline) {
        check(!bytesOut.contains(newline),
              "raw newline in the log line, though the message has none (from metadata: \(metadataHasNewline)): \(text.debugDescription)")
    }
    // The format's own contract: control bytes anywhere are written as `\xNN`, so the line holds none.
    if !(trustedMetadata && metadataText.contains(where: { $0.utf8.contains(where: isControl) })) {
        check(!bytesOut.contains(where: isControl), "raw control byte in the log line: \(text.debugDescription)")
    }

    // The documented shape: the priority, timestamp and level always; the whole line exactly when
    // no input holds a control character.
    let head = (priority ? "<\(level.journalPriority)>" : "") + expectedTimestamp(time) + " " + level.rawValue
    check(bytesOut.starts(with: Array((head + " ").utf8)), "line \(text.debugDescription) does not start with \(head.debugDescription)")

    // Read back.
    guard let parsed = LogLine(parsing: text) else {
        check(false, "LogLine(parsing:) refuses \(text.debugDescription)")
        return 0
    }
    check(parsed.priority == (priority ? level.journalPriority : nil), "priority read back as \(String(describing: parsed.priority))")
    check(parsed.level == level, "level read back as \(parsed.level)")
    check(parsed.time == LogTimestamp(seconds: time.seconds, nanoseconds: time.nanoseconds / 1_000 * 1_000),
          "time read back as \(parsed.time) from \(time)")
    let ambiguous = requestID.map { $0.contains("]") } ?? message.hasPrefix("[\(requestIDKey)=")

    guard !message.utf8.contains(where: isControl), !metadataText.contains(where: { $0.utf8.contains(where: isControl) }) else {
        return 0
    }
    var tail = message
    for key in metadata.keys.sorted() { tail += " " + key + "=" + metadata[key]! }
    var expected = head
    if let requestID { expected += " [\(requestIDKey)=\(requestID)]" }
    expected += " " + tail
    check(bytesOut == Array(expected.utf8), "line \(text.debugDescription) differs from \(expected.debugDescription)")
    if !ambiguous {
        check(parsed.requestID.map { Array($0.utf8) } == requestID.map { Array($0.utf8) }, "request id read back as \(String(describing: parsed.requestID))")
        check(parsed.message.utf8.elementsEqual(tail.utf8), "message read back as \(parsed.message.debugDescription), not \(tail.debugDescription)")
    }
    return 0
}
