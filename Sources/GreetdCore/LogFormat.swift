import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The metadata key every request's log lines carry.
public let requestIDKey = "request_id"

/// greetd's log handler: one line per message, written to a descriptor with a single `write(2)`
/// the moment it is logged. Nothing is buffered, so a line is visible to a reader of the pipe as
/// soon as the event it reports has happened (which is how cancel latency is measured).
///
/// Line format (UTC, microseconds):
/// `2026-11-25T10:48:50.123456Z info [request_id=17] Greetings are hard. Thinking...`
/// Other metadata follows the message as `key=value`, sorted by key.
///
/// Logging sits on the hot path (a greeting logs a line a tick, and an abort three), so the line
/// is built as bytes in one buffer, with the timestamp's digits written by hand: no string
/// interpolation, no `DateFormatter`, no dictionary when there is no extra metadata.
public struct FileDescriptorLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let fd: Int32

    /// A handler writing to `fd` (default: standard error) at `level` and above.
    public init(fd: Int32 = 2, level: Logger.Level = .info) {
        self.fd = fd
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all: Logger.Metadata
        if metadata.isEmpty {
            all = event.metadata ?? [:]
        } else {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            all = merged
        }
        var line = formatLogLine(level: event.level, message: event.message.description, metadata: all)
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // stderr gone: nothing sensible to do with a log line
                }
                offset += n
            }
        }
    }
}

/// Formats one log line (without the newline), as UTF-8 bytes; shared by every handler so tests
/// see the same text. Control bytes (below 0x20, and 0x7f) anywhere in the message or the
/// metadata are written as `\xNN`: one event is always one line, and no terminal escape or
/// carriage return reaches the reader.
public func formatLogLine(level: Logger.Level, message: String, metadata: Logger.Metadata, at time: timespec = .now) -> [UInt8] {
    var line: [UInt8] = []
    line.reserveCapacity(64 + message.utf8.count)
    appendUTCTimestamp(time, to: &line)
    line.append(UInt8(ascii: " "))
    line.append(contentsOf: level.rawValue.utf8)
    if let id = metadata[requestIDKey] {
        line.append(contentsOf: " [request_id=".utf8)
        appendEscaped(id.description, to: &line)
        line.append(UInt8(ascii: "]"))
    }
    line.append(UInt8(ascii: " "))
    appendEscaped(message, to: &line)
    if metadata.count > (metadata[requestIDKey] == nil ? 0 : 1) {
        for key in metadata.keys.sorted() where key != requestIDKey {
            line.append(UInt8(ascii: " "))
            appendEscaped(key, to: &line)
            line.append(UInt8(ascii: "="))
            appendEscaped(metadata[key]!.description, to: &line)
        }
    }
    return line
}

/// Appends `text` with control bytes written as `\xNN`.
private func appendEscaped(_ text: String, to line: inout [UInt8]) {
    let hex: [UInt8] = Array("0123456789abcdef".utf8)
    for byte in text.utf8 {
        if byte < 0x20 || byte == 0x7f {
            line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
        } else {
            line.append(byte)
        }
    }
}

extension timespec {
    /// The wall clock now (`CLOCK_REALTIME`).
    public static var now: timespec {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts
    }
}

/// Appends `2026-11-25T10:48:50.123456Z`: the civil date from days since 1970 by Howard
/// Hinnant's `civil_from_days`, and every digit by hand.
func appendUTCTimestamp(_ time: timespec, to line: inout [UInt8]) {
    let seconds = Int(time.tv_sec)
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)

    func digits(_ value: Int, _ width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value
        while divisor > 0 {
            line.append(UInt8(ascii: "0") + UInt8(v / divisor % 10))
            v %= divisor
            divisor /= 10
        }
    }
    digits(year, 4)
    line.append(UInt8(ascii: "-"))
    digits(month, 2)
    line.append(UInt8(ascii: "-"))
    digits(day, 2)
    line.append(UInt8(ascii: "T"))
    digits(secondOfDay / 3_600, 2)
    line.append(UInt8(ascii: ":"))
    digits(secondOfDay / 60 % 60, 2)
    line.append(UInt8(ascii: ":"))
    digits(secondOfDay % 60, 2)
    line.append(UInt8(ascii: "."))
    digits(Int(time.tv_nsec) / 1_000, 6)
    line.append(UInt8(ascii: "Z"))
}
