import GreetdCore
import Logging
import Synchronization
import TestSupport
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Collects a server's log lines in memory, in order, with the time each arrived.
final class LogRecorder: Sendable {
    struct Entry: Sendable {
        let time: ContinuousClock.Instant
        let level: Logger.Level
        let message: String
        let requestID: String?
        /// The line's metadata (handler's and event's), rendered as text.
        var metadata: [String: String] = [:]
    }

    private let entries = Mutex<[Entry]>([])

    /// A logger that records here (at trace level, so nothing is filtered).
    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in RecordingHandler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    var all: [Entry] { entries.withLock { $0 } }

    /// Messages about one request, in order (without its access-log line).
    func messages(request id: String) -> [String] {
        all.filter { $0.requestID == id && !$0.message.hasPrefix("access ") }.map(\.message)
    }

    /// The access-log line of one request.
    func accessLine(request id: String) -> String? {
        all.first { $0.requestID == id && $0.message.hasPrefix("access ") }?.message
    }

    /// Waits until the access-log line of `id` has been logged; returns it.
    func waitForAccessLine(request id: String, timeout: Duration = .seconds(5)) async throws -> String {
        try await eventually(timeout: timeout, "access line for request \(id)") { accessLine(request: id) != nil }
        return accessLine(request: id)!
    }

    /// Request ids that logged `message`.
    func requestIDs(logging message: String) -> [String] { all.filter { $0.message == message }.compactMap(\.requestID) }

    func count(_ message: String) -> Int { all.filter { $0.message == message }.count }

    /// Waits until `message` has been logged (for `request`, if given); returns its entry.
    @discardableResult
    func waitFor(_ message: String, request id: String? = nil, timeout: Duration = .seconds(5)) async throws -> Entry {
        var found: Entry?
        try await eventually(timeout: timeout, "log line \"\(message)\"\(id.map { " for request \($0)" } ?? "")") {
            found = all.first { $0.message == message && (id == nil || $0.requestID == id) }
            return found != nil
        }
        return found!
    }
}

struct RecordingHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let id = (event.metadata?[requestIDKey] ?? metadata[requestIDKey]).map { "\($0)" }
        let all = metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
        recorder.append(.init(time: .now, level: event.level, message: "\(event.message)", requestID: id, metadata: all))
    }
}

/// The `duration=` field of an access-log line.
func accessDuration(_ line: String) throws -> Duration {
    guard let field = LogLine.field("duration", inMessage: line) else { throw TestFailure("no duration in \(line)") }
    return try GoDuration(parsing: field).duration
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ what: String, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for: \(what)") }
        try await Task.sleep(for: .milliseconds(2))
    }
}
