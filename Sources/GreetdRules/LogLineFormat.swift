// greetd's log-line format, as a pure function: the handler in GreetdCore writes what this
// returns, and `LogLine(parsing:)` (LogLineParser.swift) reads it back for tests and tools.
//
//     2026-11-25T10:48:50.123456Z info [request_id=17] Greetings are hard. Thinking...
//
// UTC with microseconds, the level, the request id when there is one, the message, then other
// fields as ` key=value`, sorted by key. Under systemd the line starts with its sd-daemon
// priority (`<6>2026-…`), which journald strips and files the line under; there the line drops
// its own timestamp (`<6>info [request_id=17] …`), because journald stamps every line itself.
// `--log-format json` writes one JSON object per line instead (LogLineJSON.swift).

/// How severe a log line is; the names and order are swift-log's `Logger.Level`.
public enum LogLevel: String, CaseIterable, Comparable, Sendable {
    /// The levels, least severe first; each shows in a line as its raw value (`notice`).
    case trace, debug, info, notice, warning, error, critical

    /// The sd-daemon priority (`<sd-daemon.h>`, syslog's numbers): `trace` and `debug` 7
    /// (`SD_DEBUG`), `info` 6, `notice` 5, `warning` 4, `error` 3, `critical` 2 (`SD_CRIT`).
    public var journalPriority: Int {
        switch self {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Less severe first: `trace < debug < … < critical`.
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A wall-clock instant in UTC: seconds since 1970-01-01T00:00:00Z and the nanoseconds after
/// them (`0..<1_000_000_000`), as `clock_gettime(CLOCK_REALTIME)` gives it. The line shows
/// microseconds.
public struct LogTimestamp: Hashable, Comparable, Sendable {
    /// Whole seconds since the epoch (negative before 1970).
    public var seconds: Int64
    /// Nanoseconds after ``seconds``, `0..<1_000_000_000`.
    public var nanoseconds: Int32

    /// An instant; `nanoseconds` must be in `0..<1_000_000_000`.
    public init(seconds: Int64, nanoseconds: Int32) {
        precondition((0..<1_000_000_000).contains(nanoseconds), "nanoseconds out of range: \(nanoseconds)")
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// The earlier instant is the smaller.
    public static func < (lhs: LogTimestamp, rhs: LogTimestamp) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    /// The time from `rhs` to `lhs`.
    public static func - (lhs: LogTimestamp, rhs: LogTimestamp) -> Duration {
        .seconds(lhs.seconds - rhs.seconds) + .nanoseconds(Int64(lhs.nanoseconds) - Int64(rhs.nanoseconds))
    }
}

/// Formats one log line (without the newline), as UTF-8 bytes.
///
/// Control bytes (below 0x20, and 0x7f) anywhere in the message, the request id or the fields
/// are written as `\xNN`: one event is always one line, and no terminal escape or carriage
/// return reaches the reader.
///
/// Logging sits on the hot path (a greeting logs a line a tick, and an abort three), so the
/// line is built as bytes in one buffer, with the timestamp's digits written by hand.
/// - Parameters:
///   - requestID: shown as `[request_id=…]` after the level.
///   - fields: other metadata, written after the message as ` key=value`, sorted by key.
///   - journalPriority: start the line with `<N>`, the level's ``LogLevel/journalPriority``.
///   - timestamp: write `time` after the priority; `false` under journald, which stamps each
///     line itself (two timestamps per line would disagree and waste the width).
public func formatLogLine(level: LogLevel, message: String, requestID: String? = nil,
                          fields: [(key: String, value: String)] = [], at time: LogTimestamp,
                          journalPriority: Bool = false, timestamp: Bool = true) -> [UInt8] {
    var line: [UInt8] = []
    line.reserveCapacity(64 + message.utf8.count)
    if journalPriority {
        line.append(contentsOf: [UInt8(ascii: "<"), UInt8(ascii: "0") + UInt8(level.journalPriority), UInt8(ascii: ">")])
    }
    if timestamp {
        appendUTCTimestamp(time, to: &line)
        line.append(UInt8(ascii: " "))
    }
    line.append(contentsOf: level.rawValue.utf8)
    if let requestID {
        line.append(contentsOf: " [\(requestIDKey)=".utf8)
        appendEscaped(requestID, to: &line)
        line.append(UInt8(ascii: "]"))
    }
    line.append(UInt8(ascii: " "))
    appendEscaped(message, to: &line)
    for (key, value) in fields.count > 1 ? fields.sorted(by: { $0.key < $1.key }) : fields {
        line.append(UInt8(ascii: " "))
        appendEscaped(key, to: &line)
        line.append(UInt8(ascii: "="))
        appendEscaped(value, to: &line)
    }
    return line
}

/// Appends `text` with control bytes written as `\xNN`.
private func appendEscaped(_ text: String, to line: inout [UInt8]) {
    // Most text has no control byte: it is copied in one go. `withUTF8` needs a `var` (it may
    // make a bridged string native); a native or small string is read in place.
    var text = text
    text.withUTF8 { bytes in
        if !bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
            line.append(contentsOf: bytes)
            return
        }
        for byte in bytes {
            if byte < 0x20 || byte == 0x7f {
                line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xf)]])
            } else {
                line.append(byte)
            }
        }
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// Appends `2026-11-25T10:48:50.123456Z`: the civil date from days since 1970 by Howard
/// Hinnant's `civil_from_days`, and every digit by hand, into a 27-byte buffer appended at once
/// (a log line's hottest part: per-byte appends each check the array's uniqueness and room). A
/// year outside 0…9999 shows the last four digits of its magnitude (no clock greetd runs under
/// gets there).
func appendUTCTimestamp(_ time: LogTimestamp, to line: inout [UInt8]) {
    let seconds = time.seconds
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = Int(seconds - days * 86_400)
    let (year, month, day) = civilFromDays(days)
    let micros = Int(time.nanoseconds) / 1_000
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 27) { out in
        @inline(__always) func two(_ value: Int, at index: Int) {
            out[index] = 0x30 &+ UInt8(truncatingIfNeeded: value / 10)
            out[index + 1] = 0x30 &+ UInt8(truncatingIfNeeded: value % 10)
        }
        let y = Int(year.magnitude % 10_000)
        two(y / 100, at: 0)
        two(y % 100, at: 2)
        out[4] = UInt8(ascii: "-")
        two(Int(month), at: 5)
        out[7] = UInt8(ascii: "-")
        two(Int(day), at: 8)
        out[10] = UInt8(ascii: "T")
        two(secondOfDay / 3_600, at: 11)
        out[13] = UInt8(ascii: ":")
        two(secondOfDay / 60 % 60, at: 14)
        out[16] = UInt8(ascii: ":")
        two(secondOfDay % 60, at: 17)
        out[19] = UInt8(ascii: ".")
        two(micros / 10_000 % 100, at: 20)
        two(micros / 100 % 100, at: 22)
        two(micros % 100, at: 24)
        out[26] = UInt8(ascii: "Z")
        line.append(contentsOf: UnsafeBufferPointer(out))
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month 1…12, day 1…31) of a day counted from 1970-01-01.
func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

/// Howard Hinnant's `days_from_civil`: the day counted from 1970-01-01 of a civil date.
func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}
