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
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var line = formatLogLine(level: event.level, message: "\(event.message)", metadata: merged)
        line.append("\n")
        line.withUTF8 { bytes in
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

/// Formats one log line (without the newline); shared by every handler so tests see the same text.
public func formatLogLine(level: Logger.Level, message: String, metadata: Logger.Metadata, at time: timespec = .now) -> String {
    var line = utcTimestamp(time)
    line += " "
    line += level.rawValue
    if let id = metadata[requestIDKey] {
        line += " [\(requestIDKey)=\(id)]"
    }
    line += " "
    line += message
    for key in metadata.keys.sorted() where key != requestIDKey {
        line += " \(key)=\(metadata[key]!)"
    }
    return line
}

extension timespec {
    /// The wall clock now (`CLOCK_REALTIME`).
    public static var now: timespec {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts
    }
}

/// `2026-11-25T10:48:50.123456Z`.
func utcTimestamp(_ time: timespec) -> String {
    var seconds = time_t(time.tv_sec)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    return pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-" + pad(Int(parts.tm_mday), 2)
        + "T" + pad(Int(parts.tm_hour), 2) + ":" + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2)
        + "." + pad(Int(time.tv_nsec) / 1000, 6) + "Z"
}
