// libFuzzer target: `formatLogLine`, the one place every log line of greetd is built.
//
// Built by scripts/fuzz.sh with Sources/GreetdCore/LogFormat.swift and swift-log's `Logging`
// module (compiled from its checkout into .build-fuzz/deps): `formatLogLine` takes
// `Logger.Level` and `Logger.Metadata`, so swift-log is the one dependency it cannot do without.
//
// Input layout (the seed corpus follows it):
//   byte 0      control: level = b % 7 (trace…critical); 0x08 a `request_id` segment follows the
//               message; 0x10 values as .stringConvertible; 0x20 the last value is an array of
//               the remaining segments; 0x40 … a dictionary of them
//   bytes 1…8   the clock: little-endian, folded into 0001-01-01 … 9999-12-31 (seconds) and
//               0 … 999_999_999 (nanoseconds), the range `appendUTCTimestamp` is written for
//   the rest    segments split at 0xFF (a byte UTF-8 never uses): message, [request_id],
//               then key, value, key, value, …  Invalid UTF-8 is repaired, as Swift strings are.
//
// Properties:
// - never traps;
// - the output is valid UTF-8 (the inputs, being Swift strings, are);
// - one line: the output holds no raw `\n` unless the message had one; and, LogFormat.swift's
//   documented contract, no raw control byte (below 0x20, 0x7f) at all. Keys, values and the
//   request id count too, unless GREETD_FUZZ_LOGLINE_TRUSTED_METADATA=1 (then inputs whose
//   metadata holds such bytes are not checked: the variant for "metadata never carries client
//   bytes");
// - the line starts `<timestamp> <level> ` with the timestamp gmtime_r gives; when no input holds
//   a control character it is exactly `<timestamp> <level>[ [request_id=<id>]] <message>[ key=value…]`,
//   keys sorted, as LogFormat.swift documents.

import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let trustedMetadata =
    getenv("GREETD_FUZZ_LOGLINE_TRUSTED_METADATA").map { String(cString: $0) == "1" } ?? false

private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("log line property violated: \(message())") }
}

private let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
private let firstSecond = -62_135_596_800
private let lastSecond = 253_402_300_799

private func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The timestamp by the C library, as the line should start.
private func expectedTimestamp(_ time: timespec) -> String {
    var t = time.tv_sec
    var tm = tm()
    check(gmtime_r(&t, &tm) != nil, "gmtime_r failed for \(time.tv_sec)")
    return pad(Int(tm.tm_year) + 1900, 4) + "-" + pad(Int(tm.tm_mon) + 1, 2) + "-" + pad(Int(tm.tm_mday), 2)
        + "T" + pad(Int(tm.tm_hour), 2) + ":" + pad(Int(tm.tm_min), 2) + ":" + pad(Int(tm.tm_sec), 2)
        + "." + pad(Int(time.tv_nsec) / 1_000, 6) + "Z"
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let control = size > 0 ? bytes[0] : 0
    var clock: UInt64 = 0
    for i in 0..<8 where 1 + i < size { clock |= UInt64(bytes[1 + i]) << (8 * UInt64(i)) }
    let span = UInt64(lastSecond - firstSecond + 1)
    let time = timespec(tv_sec: firstSecond + Int(clock % span), tv_nsec: Int(clock.byteSwapped % 1_000_000_000))

    var segments: [String] = []
    if size > 9 {
        segments = bytes[9...].split(separator: 0xFF, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
    }
    let level = levels[Int(control % 7)]
    let message = segments.first ?? ""
    var rest = segments.dropFirst()
    var requestID: String?
    if control & 0x08 != 0, let id = rest.first {
        requestID = id
        rest = rest.dropFirst()
    }

    var metadata: Logger.Metadata = [:]
    var metadataText: [String] = []  // every key and value, for the newline property
    if let requestID {
        metadata[requestIDKey] = .string(requestID)
        metadataText.append(requestID)
    }
    var pairs = Array(rest)
    var collection: [String] = []
    if control & 0x60 != 0, pairs.count >= 2 {
        // The last value gathers the remaining segments.
        collection = Array(pairs[1...])
        pairs = [pairs[0]]
    }
    var i = 0
    while i < pairs.count {
        let key = pairs[i]
        let text = i + 1 < pairs.count ? pairs[i + 1] : ""
        let value: Logger.MetadataValue
        if !collection.isEmpty && i + 1 >= pairs.count {
            if control & 0x20 != 0 {
                value = .array(collection.map { .string($0) })
            } else {
                var dict: Logger.Metadata = [:]
                var j = 0
                while j < collection.count {
                    dict[collection[j]] = .string(j + 1 < collection.count ? collection[j + 1] : "")
                    j += 2
                }
                value = .dictionary(dict)
            }
            metadataText.append(contentsOf: collection)
        } else {
            value = control & 0x10 != 0 ? .stringConvertible(text) : .string(text)
            metadataText.append(text)
        }
        metadata[key] = value
        metadataText.append(key)
        i += 2
    }

    let line = formatLogLine(level: level, message: message, metadata: metadata, at: time)

    // Valid UTF-8.
    check(String(validating: line, as: UTF8.self) != nil, "output is not valid UTF-8: \(line)")

    // One line.
    let newline = UInt8(ascii: "\n")
    let isControl: (UInt8) -> Bool = { $0 < 0x20 || $0 == 0x7f }
    let messageHasNewline = message.utf8.contains(newline)
    let metadataHasNewline = metadataText.contains { $0.utf8.contains(newline) }
    if !messageHasNewline && !(trustedMetadata && metadataHasNewline) {
        check(!line.contains(newline),
              "raw newline in the log line, though the message has none (from metadata: \(metadataHasNewline)): \(String(decoding: line, as: UTF8.self).debugDescription)")
    }
    // LogFormat.swift's own contract (since 8912d7f): control bytes anywhere in the message or the
    // metadata are written as `\xNN`, so the line holds none at all.
    if !(trustedMetadata && metadataText.contains(where: { $0.utf8.contains(where: isControl) })) {
        check(!line.contains(where: isControl),
              "raw control byte in the log line: \(String(decoding: line, as: UTF8.self).debugDescription)")
    }

    // The documented shape: the timestamp and level always; the whole line exactly when no input
    // holds a control character (whatever escaping greetd adopts for those, this stays true).
    let prefix = Array((expectedTimestamp(time) + " " + level.rawValue + " ").utf8)
    check(line.starts(with: prefix),
          "line \(String(decoding: line, as: UTF8.self).debugDescription) does not start with \(String(decoding: prefix, as: UTF8.self).debugDescription)")
    guard !message.utf8.contains(where: isControl), !metadataText.contains(where: { $0.utf8.contains(where: isControl) }) else {
        return 0
    }
    var expected = expectedTimestamp(time) + " " + level.rawValue
    if let id = metadata[requestIDKey] { expected += " [request_id=\(id.description)]" }
    expected += " " + message
    for key in metadata.keys.sorted() where key != requestIDKey {
        expected += " " + key + "=" + metadata[key]!.description
    }
    check(line == Array(expected.utf8),
          "line \(String(decoding: line, as: UTF8.self).debugDescription) differs from \(expected.debugDescription)")
    return 0
}
