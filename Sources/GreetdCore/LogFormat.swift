import GreetdRules
import EventHTTPSystem
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// greetd's log handler: one line per message, written to a descriptor as the event happens.
/// On a worker loop thread (one with a ``LogBatch``) the lines of one loop pass go out together,
/// in one `write(2)` at the end of the pass, before the loop waits again; on any other thread
/// each line is written at once. Either way a reader of the pipe sees a line before the loop that
/// logged it does anything else (which is how cancel latency is measured).
///
/// The line is GreetdRules' format (``formatLogLine(level:message:requestID:fields:at:journalPriority:)``):
/// `2026-11-25T10:48:50.123456Z info [request_id=17] Greetings are hard. Thinking...`, other
/// metadata after the message as `key=value`, sorted by key. When the descriptor is the stream
/// systemd connected to the journal (`JOURNAL_STREAM`), each line starts with its sd-daemon
/// priority (`<6>`), so `journalctl -p warning` can filter, and drops its own timestamp, which
/// journald adds. With ``LogOutputFormat/json`` each line is one JSON object instead
/// (GreetdRules' ``formatJSONLogLine(level:message:requestID:fields:at:)``), with no prefix.
///
/// Threading: a value; `log(event:)` may run on any thread (``LogBatch`` keeps each thread's
/// order, and lines of different threads never interleave). The descriptor is the caller's and
/// must outlive it.
public struct FileDescriptorLogHandler: LogHandler {
    /// Metadata every line of this handler carries (swift-log's contract).
    public var metadata: Logger.Metadata = [:]
    /// The least severe level logged (swift-log checks it before calling ``log(event:)``).
    public var logLevel: Logger.Level
    private let fd: Int32
    /// Whether text lines start with `<N>` (sd-daemon priorities) and leave out the timestamp.
    public let journalPriorities: Bool
    /// Text or JSON lines.
    public let format: LogOutputFormat
    /// Where greetd's access lines go (written whatever ``logLevel`` says); `nil`: they are
    /// ordinary `info` lines of this handler (tests, embedders).
    public let accessLog: AccessLog?

    /// A handler writing to `fd` (default: standard error) at `level` and above.
    /// - Parameters:
    ///   - journalStream: `JOURNAL_STREAM`'s value (default: this process's); text lines get
    ///     sd-daemon priorities and no timestamp when it names `fd` (see
    ///     ``isJournalStream(fd:journalStream:)``).
    ///   - format: `--log-format`.
    ///   - accessLog: `--access-log`'s destination, for ``RequestRecorder``.
    public init(fd: Int32 = 2, level: Logger.Level = .info, journalStream: String? = currentJournalStream(),
                format: LogOutputFormat = .text, accessLog: AccessLog? = nil) {
        self.fd = fd
        self.logLevel = level
        self.format = format
        self.accessLog = accessLog
        self.journalPriorities = format == .text && Self.isJournalStream(fd: fd, journalStream: journalStream)
    }

    /// swift-log's per-key metadata access.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes the event as one line, with the handler's metadata under the event's.
    public func log(event: LogEvent) {
        let all: Logger.Metadata
        if metadata.isEmpty {
            all = event.metadata ?? [:]
        } else {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            all = merged
        }
        var line: [UInt8]
        if format == .json {
            line = formatJSONLogLine(level: event.level, message: event.message.description, metadata: all)
        } else {
            line = formatLogLine(level: event.level, message: event.message.description, metadata: all,
                                 journalPriority: journalPriorities, timestamp: !journalPriorities)
        }
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { LogBatch.write($0, to: fd) }
    }

    /// One line about one request, as ``log(event:)`` would write it for a logger with this
    /// handler, no metadata of its own and `request_id` in the event's (the same bytes), without
    /// building swift-log's metadata dictionary and event: ``RequestRecorder`` calls it for the
    /// lines a greeting logs (an abort logs two).
    func log(level: Logger.Level, message: String, requestID: String, metadata: Logger.Metadata) {
        var line: [UInt8]
        if format == .json {
            var fields: [(key: String, value: LogValue)] = metadata.map { ($0.key, .string($0.value.description)) }
            if fields.count > 1 { fields.sort { $0.key < $1.key } }
            line = formatJSONLogLine(level: LogLevel(level), message: message, requestID: requestID, fields: fields, at: .now)
        } else {
            line = formatLogLine(level: LogLevel(level), message: message, requestID: requestID,
                                 fields: metadata.map { ($0.key, $0.value.description) }, at: .now,
                                 journalPriority: journalPriorities, timestamp: !journalPriorities)
        }
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { LogBatch.write($0, to: fd) }
    }

    /// Whether `fd` is the journal's stream: `journalStream` (`JOURNAL_STREAM`, `<device>:<inode>`,
    /// set by systemd for a service whose output goes to the journal) names the file `fd` is
    /// open on. Matching the inode, as `sd_journal_stream_fd(3)` advises, keeps the prefixes out
    /// of a file or pipe the output was redirected to under a unit that set the variable.
    public static func isJournalStream(fd: Int32, journalStream: String?) -> Bool {
        guard let journalStream, let colon = journalStream.firstIndex(of: ":"),
              let device = UInt64(journalStream[..<colon]),
              let inode = UInt64(journalStream[journalStream.index(after: colon)...]) else { return false }
        var status = stat()
        // A descriptor fstat cannot describe (EBADF: closed) is not the journal's stream.
        guard (try? SystemCalls.systemCall("fstat") { fstat(fd, &status) }) != nil else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}

/// `JOURNAL_STREAM` of this process, or `nil`.
public func currentJournalStream() -> String? {
    getenv("JOURNAL_STREAM").map { String(cString: $0) }
}

/// One log line from swift-log's values (without the newline): the request id from
/// ``requestIDKey``, every other metadata value by its `description`. Shared by every handler
/// and test, so all see the same text.
public func formatLogLine(level: Logger.Level, message: String, metadata: Logger.Metadata,
                          at time: LogTimestamp = .now, journalPriority: Bool = false, timestamp: Bool = true) -> [UInt8] {
    var requestID: String?
    var fields: [(key: String, value: String)] = []
    for (key, value) in metadata {
        if key == requestIDKey {
            requestID = value.description
        } else {
            fields.append((key, value.description))
        }
    }
    return formatLogLine(level: LogLevel(level), message: message, requestID: requestID, fields: fields,
                         at: time, journalPriority: journalPriority, timestamp: timestamp)
}

/// One JSON log line from swift-log's values (without the newline): `request_id` from
/// ``requestIDKey``, every other metadata value as a string field, sorted by key.
public func formatJSONLogLine(level: Logger.Level, message: String, metadata: Logger.Metadata,
                              at time: LogTimestamp = .now) -> [UInt8] {
    var requestID: String?
    var fields: [(key: String, value: LogValue)] = []
    for (key, value) in metadata {
        if key == requestIDKey {
            requestID = value.description
        } else {
            fields.append((key, .string(value.description)))
        }
    }
    if fields.count > 1 { fields.sort { $0.key < $1.key } }
    return formatJSONLogLine(level: LogLevel(level), message: message, requestID: requestID, fields: fields, at: time)
}

extension LogLevel {
    /// The same level as swift-log's.
    public init(_ level: Logger.Level) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}

extension LogTimestamp {
    /// The wall clock now (`CLOCK_REALTIME`).
    public static var now: LogTimestamp {
        let ts = SystemClock.realtime()
        return LogTimestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int32(ts.tv_nsec))
    }
}
