import EventHTTPSystem
import EventHTTPCore
import Logging
import EventHTTPDuration
import GreetdRules

/// The one place that turns what happens to requests into the access log, the worker's
/// ``GreetdStats`` and the shared ``GreetdMetrics`` (middleware in Hummingbird's sense: the
/// router and the greeting never count anything themselves).
///
/// Ownership: owned by its ``GreetingServer``; it holds the logger, the stats and the metrics.
///
/// Threading: loop-confined (called from the server's responder methods and greetings).
final class RequestRecorder {
    let logger: Logger
    let stats: GreetdStats
    let metrics: GreetdMetrics
    private let maxConnections: Int
    private var refusals = RateLimitedCount()
    private var acceptErrors = RateLimitedCount()
    /// Connections dropped at the pipeline limit, logged at most once a second.
    var pipelineDrops = RateLimitedCount()
    private var openConnections = 0
    /// This worker's series of `greetd_request_duration_seconds`, at ``GreetdMetrics/slot(_:)``.
    private let outcomeDurations: [WorkerHistogram]
    /// This worker's series of `http_server_request_duration_seconds`, by the key
    /// ``recordHTTP(_:status:route:elapsed:)`` packs.
    var httpDurations: [Int: WorkerHistogram] = [:]

    /// `logger.logLevel`, read once: a `Logger` is a value (its level changes only through this
    /// copy, which is a `let`), greetd's handlers are values too, and asking the handler (an
    /// existential) per line costs more than the check it guards.
    let logLevel: Logger.Level
    /// `--access-log`: greetd's handler carries it (access lines go out whatever the level);
    /// under any other handler (tests, embedders) access lines are `info` lines of the logger.
    private let accessLog: AccessLog?
    /// greetd's handler, when the logger adds nothing to what it writes (no metadata of its own,
    /// no metadata provider): request lines then go to it directly
    /// (``FileDescriptorLogHandler/log(level:message:requestID:metadata:)``, the same bytes).
    private let lineHandler: FileDescriptorLogHandler?

    init(logger: Logger, stats: GreetdStats, metrics: GreetdMetrics, maxConnections: Int) {
        self.logger = logger
        self.logLevel = logger.logLevel
        let handler = logger.handler as? FileDescriptorLogHandler
        self.accessLog = handler?.accessLog
        self.lineHandler = handler.flatMap { $0.metadata.isEmpty && logger.metadataProvider == nil ? $0 : nil }
        self.stats = stats
        self.metrics = metrics
        self.maxConnections = maxConnections
        outcomeDurations = metrics.makeOutcomeHistograms()
    }

    /// A greeting began thinking.
    func greetingStarted() {
        stats.started.bump()
        stats.inFlight.bump()
        metrics.inFlight.increment()
    }

    /// A greeting logged `Greetings are hard. Thinking...`.
    func ticked() {
        stats.ticks.bump()
        metrics.ticks.increment()
    }

    /// A request ended: one access-log line (status `499` when the client went away first), and
    /// its outcome counted. `outcome` is `nil` for requests that are neither greetings nor
    /// refusals (health, metrics, 4xx).
    func requestEnded(_ head: RequestHead, _ end: RequestEnd, outcome: RequestOutcome?) {
        let elapsed = ContinuousClock.now - head.start
        let (status, bytes): (Int, Int)
        switch end {
        case .responded(let code, let size): (status, bytes) = (code, size)
        // 499 (nginx's "client closed request") when the client left; 444 ("no response")
        // when the server dropped the connection: a limit or a timeout is never the client's abort.
        case .aborted(let end): (status, bytes) = (end.isClientSide ? 499 : 444, 0)
        }
        writeAccessLine(head, status: head.streamed?.status ?? status, bytes: head.streamed?.bytes ?? bytes, elapsed: elapsed)
        if head.origin == .connectionLimit {
            metrics.rejected()
            refusals.record { count in
                logger.warning("Connections refused at --max-connections", metadata: [
                    "limit": "\(maxConnections)", "refused": "\(count)",
                ])
            }
            return
        }
        guard let outcome else { return }
        if outcome != .rejected {
            stats.inFlight.bump(-1)
            metrics.inFlight.decrement()
            switch outcome {
            case .completed: stats.completed.bump()
            case .canceled: stats.canceled.bump()
            case .deadlineExceeded: stats.deadlineExceeded.bump()
            case .shutdown: stats.shutdown.bump()
            case .rejected, .dropped: break
            }
        }
        metrics.finished(outcome)
        outcomeDurations[GreetdMetrics.slot(outcome)].record(elapsed)
    }

    /// The access line: to ``accessLog`` whatever the level (nothing is built when it is `off`),
    /// else as an `info` line of the logger. A stream cut short shows what it had sent
    /// (``RequestHead/streamed``), not `499`: the client did get a 200 and some bytes.
    private func writeAccessLine(_ head: RequestHead, status: Int, bytes: Int, elapsed: Duration) {
        if let accessLog {
            guard accessLog.isEnabled else { return }
            accessLog.write(accessRecord(head, status: status, bytes: bytes, elapsed: elapsed), requestID: head.id)
        } else {
            log(.info, request: head.id, "\(accessRecord(head, status: status, bytes: bytes, elapsed: elapsed).textMessage)")
        }
    }

    private func accessRecord(_ head: RequestHead, status: Int, bytes: Int, elapsed: Duration) -> AccessRecord {
        AccessRecord(method: head.method, target: head.target, status: status, bytes: bytes, duration: elapsed,
                     remote: head.remote ?? "-", proto: head.proto ?? "-", userAgent: head.userAgent ?? "")
    }

    /// Logs a line about one request at `level`, if ``logLevel`` lets it through: nothing at all
    /// is built (message, metadata, the access line's fields) when it does not.
    @inline(__always)
    func log(_ level: Logger.Level, request id: String, _ message: @autoclosure () -> Logger.Message,
             metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logLevel <= level else { return }
        if let lineHandler {
            lineHandler.log(level: level, message: message().description, requestID: id, metadata: metadata())
        } else {
            logger.log(level, request: id, message(), metadata: metadata())
        }
    }

    /// The worker's open connections changed to `count`.
    func connectionsChanged(to count: Int) {
        metrics.connectionsOpen.increment(by: Double(count - openConnections))
        openConnections = count
    }

    /// `accept` failed with `code`; the listener pauses for `pause`. Logged at most once a second.
    func acceptFailed(_ code: Errno, pause: Duration) {
        metrics.acceptErrors.increment()
        acceptErrors.record { count in
            logger.error("Cannot accept connections: \(code); pausing the listener", metadata: [
                "pause": "\(GoDuration(pause))", "errors": "\(count)",
            ])
        }
    }
}

extension Logger {
    /// Logs a line about one request, with `request_id` set to its id. The metadata is built
    /// per line, and only if the level is enabled, so a pending request holds none.
    func log(_ level: Logger.Level, request id: String, _ message: @autoclosure () -> Logger.Message,
             metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logLevel <= level else { return }
        var all = metadata()
        all[requestIDKey] = .string(id)
        log(level: level, message(), metadata: all)
    }
}

/// Counts occurrences of a condition and reports them at most once a second, however fast they
/// come (refused connections, failed accepts): the log must not become the next problem.
struct RateLimitedCount {
    private var sinceReport = 0
    private var lastReport: ContinuousClock.Instant?

    /// Counts one occurrence; calls `report` with the count since the last report when a second
    /// has passed since then (or on the first occurrence).
    mutating func record(_ report: (Int) -> Void) {
        sinceReport += 1
        let now = ContinuousClock.now
        if let lastReport, now - lastReport < .seconds(1) { return }
        report(sinceReport)
        sinceReport = 0
        lastReport = now
    }
}
