// Reads back what `formatLogLine` writes: for tests and tools, never on the server's hot path.

/// One log line of greetd, parsed: `[<N>]<timestamp> <level> [[request_id=<id>] ]<message>`.
/// Under journald the timestamp is left out (`<6>info …`): a line with a priority prefix may
/// lack it, and then ``hasTimestamp`` is `false`.
///
/// The message is the rest of the line as written: control bytes stay escaped (`\x0a`), and the
/// fields after the message (` key=value`) stay part of it; ``field(_:)`` reads one. An access
/// line's message is `access method=GET target=/ status=200 duration=1.2ms bytes=14`.
public struct LogLine: Equatable, Sendable {
    /// The sd-daemon priority prefix (`<6>`), when the line had one (greetd under systemd).
    public var priority: Int?
    /// When the line was logged, to the microsecond; the epoch when the line had no timestamp
    /// (see ``hasTimestamp``).
    public var time: LogTimestamp
    /// Whether the line had its own timestamp (not under journald, which stamps lines itself).
    public var hasTimestamp: Bool
    /// The line's level.
    public var level: LogLevel
    /// The request the line is about: the `[request_id=…]` after the level.
    public var requestID: String?
    /// Everything after the level and the request id.
    public var message: String

    /// A line; `nil` unless it has greetd's shape (a valid timestamp, a known level). One
    /// trailing newline is ignored. Read byte by byte, never by `Character`: a combining mark
    /// after a space must not glue the two together.
    public init?(parsing line: String) {
        var bytes = Array(line.utf8)[...]
        if bytes.last == UInt8(ascii: "\n") { bytes = bytes.dropLast() }
        priority = nil
        if bytes.count >= 3, bytes.first == UInt8(ascii: "<"), bytes[bytes.startIndex + 2] == UInt8(ascii: ">"),
           case let digit = bytes[bytes.startIndex + 1], digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") {
            priority = Int(digit - UInt8(ascii: "0"))
            bytes = bytes.dropFirst(3)
        }
        if let time = parseTimestamp(bytes.prefix(27)) {
            self.time = time
            hasTimestamp = true
            bytes = bytes.dropFirst(27)
            guard bytes.first == UInt8(ascii: " ") else { return nil }
            bytes = bytes.dropFirst()
        } else {
            // Only a journald line (with its priority) goes without a timestamp.
            guard priority != nil else { return nil }
            time = LogTimestamp(seconds: 0, nanoseconds: 0)
            hasTimestamp = false
        }
        let word = bytes.prefix { $0 != UInt8(ascii: " ") }
        guard let level = LogLevel(rawValue: String(decoding: word, as: UTF8.self)) else { return nil }
        self.level = level
        bytes = bytes.dropFirst(word.count)
        guard bytes.first == UInt8(ascii: " ") else { return nil }
        bytes = bytes.dropFirst()
        requestID = nil
        let opening = Array("[\(requestIDKey)=".utf8)
        if bytes.starts(with: opening), let close = bytes.firstRange(of: [UInt8(ascii: "]"), UInt8(ascii: " ")]) {
            requestID = String(decoding: bytes[(bytes.startIndex + opening.count)..<close.lowerBound], as: UTF8.self)
            bytes = bytes[close.upperBound...]
        }
        message = String(decoding: bytes, as: UTF8.self)
    }

    /// The value of the first ` key=value` field of the message, or `nil`. A quoted value
    /// (``logField(_:)``'s `"…"`, in Go's quoting) is unquoted; a field inside a quoted value is
    /// not a field. `line.field("status")` on an access line gives `"200"`.
    public func field(_ key: String) -> String? {
        Self.field(key, inMessage: message)
    }

    /// ``field(_:)`` on a message alone (what a `LogHandler` gets, without the line around it):
    /// `LogLine.field("duration", inMessage: "access method=GET ... duration=1.2ms bytes=14")`
    /// gives `"1.2ms"`.
    public static func field(_ key: String, inMessage message: String) -> String? {
        let bytes = Array(message.utf8)
        let name = Array(key.utf8)
        var i = 0
        while i < bytes.count {
            while i < bytes.count, bytes[i] == UInt8(ascii: " ") { i += 1 }
            let start = i
            while i < bytes.count, bytes[i] != UInt8(ascii: " "), bytes[i] != UInt8(ascii: "=") { i += 1 }
            let isKey = i < bytes.count && bytes[i] == UInt8(ascii: "=") && bytes[start..<i].elementsEqual(name)
            guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { continue }
            i += 1
            var value: [UInt8] = []
            if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
                guard let (decoded, end) = unquoteLogField(bytes, from: i) else { return nil }
                value = decoded
                i = end
            }
            while i < bytes.count, bytes[i] != UInt8(ascii: " ") {
                value.append(bytes[i])
                i += 1
            }
            if isKey { return String(decoding: value, as: UTF8.self) }
        }
        return nil
    }
}

/// Undoes ``logField(_:)``'s quoting (Go's, `\"`, `\\`, `\xNN`) from the `"` at `start`: the
/// bytes and the index after the closing quote; `nil` when the quote never closes or an `\x`
/// escape is malformed. Lenient as a reader should be: any other `\c` gives `c`, and bytes the
/// quoting would have escaped are taken as they are. Pure; any thread.
public func unquoteLogField(_ bytes: [UInt8], from start: Int) -> (value: [UInt8], end: Int)? {
    var out: [UInt8] = []
    var i = start + 1
    while i < bytes.count {
        switch bytes[i] {
        case UInt8(ascii: "\""):
            return (out, i + 1)
        case UInt8(ascii: "\\"):
            guard i + 1 < bytes.count else { return nil }
            if bytes[i + 1] == UInt8(ascii: "x") {
                guard i + 3 < bytes.count, let high = hexValue(bytes[i + 2]), let low = hexValue(bytes[i + 3]) else { return nil }
                out.append(high << 4 | low)
                i += 4
            } else {
                out.append(bytes[i + 1])
                i += 2
            }
        default:
            out.append(bytes[i])
            i += 1
        }
    }
    return nil
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// `2026-11-25T10:48:50.123456Z` (exactly 27 characters) as an instant; `nil` if malformed or
/// not a real date.
private func parseTimestamp(_ text: ArraySlice<UInt8>) -> LogTimestamp? {
    let b = Array(text)
    guard b.count == 27, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
          b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[19] == UInt8(ascii: "."), b[26] == UInt8(ascii: "Z")
    else { return nil }
    func number(_ range: Range<Int>) -> Int64? {
        var value: Int64 = 0
        for byte in b[range] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }
    guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
          let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
          let micros = number(20..<26),
          (1...12).contains(month), day >= 1, hour < 24, minute < 60, second < 60
    else { return nil }
    let days = daysFromCivil(year: year, month: month, day: day)
    guard civilFromDays(days) == (year, month, day) else { return nil }  // 2026-02-30 and the like
    return LogTimestamp(seconds: days * 86_400 + hour * 3_600 + minute * 60 + second, nanoseconds: Int32(micros * 1_000))
}
