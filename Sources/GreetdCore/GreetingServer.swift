import GoContext
import Libevent
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cause every greeting still running gets when the shutdown budget runs out.
public struct ShutdownCause: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "server shutting down" }
}

/// Request ids, unique across every worker loop of a service.
public final class RequestIDs: Sendable {
    private let last = Atomic<UInt64>(0)
    public init() {}
    func next() -> UInt64 { last.wrappingAdd(1, ordering: .relaxed).newValue }
}

/// One worker: the greeting server of the seed, on one libevent loop.
///
/// Routes:
/// - `GET /`, `HEAD /`: a ``Greeting``; other methods `405`.
/// - `GET /healthz`: `200 ok` while serving, `503` once draining.
/// - `GET /metrics`: Prometheus text, from the registry every worker shares.
/// - anything else: `404`.
/// Each request gets an id, carried by every log line about it and by `X-Request-Id`, and one
/// access-log line when it ends.
///
/// ## Lifecycle
/// `serving` → ``beginDrain()`` → `draining` (listeners closed, idle connections closed,
/// greetings in flight go on, new requests get `503`) → budget spent or ``cancelRemaining()`` →
/// `canceling` (the root context is cancelled with ``ShutdownCause``; each greeting answers
/// `503`, `Connection: close`) → `stopped` once no connection is left, or after the grace period.
///
/// Ownership: the server owns its ``HTTPServer`` (and through it every listener and connection),
/// its root context and every in-flight ``Greeting``. The ``EventBase`` is the caller's; stop
/// the server (``forceStop()``) before the base goes.
///
/// Threading: loop-confined.
public final class GreetingServer {
    public enum Phase: Equatable, Sendable {
        case serving, draining, canceling, stopped
    }

    /// The loop everything runs on.
    public let base: EventBase
    /// Counters of this worker, readable from any thread (tests).
    public let stats: GreetdStats
    let metrics: GreetdMetrics
    let configuration: GreetdConfiguration
    let logger: Logger
    private let requestIDs: RequestIDs
    private var http: HTTPServer?
    private var inFlight: [UInt64: Greeting] = [:]
    /// Parent of every request's context; cancelled with ``ShutdownCause`` when the budget ends.
    let root = Context()
    public private(set) var phase: Phase = .serving
    private var shutdownTimer: Event?
    /// Runs ``forceStop()`` on the next turn of the loop (see ``checkStopped()``).
    private var stopEvent: Event?
    /// Fires a second after the last greeting ended, to hand freed memory back to the system.
    private var trimTimer: Event?
    /// While draining: closes connections that have turned idle since (every 100 ms).
    private var idleSweep: Event?
    /// Called once, on the loop thread, when the server has stopped.
    public var onStopped: (() -> Void)?

    /// Binds `configuration.host` on `port` and starts accepting on `base`.
    ///
    /// Ignores `SIGPIPE` for the whole process: libevent writes with `writev`, and a client that
    /// has gone would otherwise kill the process on the next reply.
    /// - Throws: ``ConfigurationError`` for inconsistent values, ``LibeventError`` when an address
    ///   cannot be bound (the message names it and the reason).
    /// - Parameter stats: counters to write; they must share `base.counters`' instance (or be new).
    public init(configuration: GreetdConfiguration, logger: Logger, base: EventBase, metrics: GreetdMetrics,
                stats: GreetdStats? = nil, requestIDs: RequestIDs = RequestIDs(), port: UInt16? = nil) throws {
        try configuration.validate()
        signal(SIGPIPE, SIG_IGN)
        self.base = base
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.requestIDs = requestIDs
        self.stats = stats ?? GreetdStats(libevent: base.counters)
        precondition(self.stats.libevent === base.counters, "stats must count this base's handles")
        var options = configuration.http
        options.reusePort = configuration.workers > 1
        let http = try HTTPServer(base: base, options: options) { [unowned self] request in
            self.route(request)
        }
        do {
            try http.bind(host: configuration.host, port: port ?? configuration.port)
        } catch {
            http.close()
            throw error
        }
        var open = 0
        http.onConnectionCountChange = { [unowned self] count in
            self.metrics.connectionsOpen.increment(by: Double(count - open))
            open = count
            self.checkStopped()
        }
        var refusals = RateLimitedCount()
        http.onConnectionRejected = { [unowned self] in
            self.metrics.rejected()
            refusals.record { count in
                self.logger.warning("Connections refused at --max-connections", metadata: [
                    "limit": "\(self.configuration.http.maxConnections)", "refused": "\(count)",
                ])
            }
        }
        var acceptErrors = RateLimitedCount()
        http.onAcceptError = { [unowned self] code, pause in
            self.metrics.acceptErrors.increment()
            acceptErrors.record { count in
                self.logger.error("Cannot accept connections: \(errnoDescription(code)); pausing the listener", metadata: [
                    "pause": "\(GoDuration(pause))", "errors": "\(count)",
                ])
            }
        }
        self.http = http
        #if canImport(Glibc)
        trimTimer = try Event(base: base) { [unowned self] _ in
            if self.inFlight.isEmpty { _ = mallocTrim?(0) }
        }
        #endif
    }

    deinit {
        precondition(http == nil, "GreetingServer dropped without forceStop()")
    }

    /// Where the server listens, with real ports.
    public var addresses: [SocketAddress] { http?.addresses ?? [] }

    // MARK: - Shutdown

    /// Stops accepting, closes idle connections, and lets greetings in flight finish for up to
    /// `shutdownTimeout`; then ``cancelRemaining()``. Idempotent.
    public func beginDrain() {
        base.thread.preconditionOnThread()
        guard phase == .serving, let http else { return }
        phase = .draining
        http.closeListeners()
        http.closeIdleConnections()
        logger.notice("Draining: stopped accepting connections", metadata: [
            "in_flight": "\(inFlight.count)", "budget": "\(configuration.shutdownTimeout)",
        ])
        armShutdownTimer(after: configuration.shutdownTimeout) { [unowned self] in self.cancelRemaining() }
        // A keep-alive connection still writing a reply now turns idle later: sweep idle
        // connections every 100 ms while draining (Go's Shutdown polls the same way). From a
        // timer, never from evhttp's own callbacks, which still use the connection afterwards.
        idleSweep = try? Event(base: base, flags: .persist) { [unowned self] _ in
            self.http?.closeIdleConnections()
            self.checkStopped()
        }
        try? idleSweep?.add(timeout: .milliseconds(100))
        checkStopped()
    }

    /// Cancels every greeting still running with cause `server shutting down`: each answers
    /// `503` with `Connection: close`. The server stops when their connections have closed, or
    /// after `shutdownGrace`. Idempotent.
    public func cancelRemaining() {
        base.thread.preconditionOnThread()
        guard phase == .serving || phase == .draining, let http else { return }
        if phase == .serving {
            http.closeListeners()
            http.closeIdleConnections()
        }
        phase = .canceling
        logger.notice("Cancelling greetings in flight", metadata: ["in_flight": "\(inFlight.count)"])
        root.cancel(.canceled, cause: ShutdownCause())
        armShutdownTimer(after: configuration.shutdownGrace) { [unowned self] in self.forceStop() }
        checkStopped()
    }

    /// Frees everything now: listeners, connections (greetings still thinking are cancelled
    /// and log their context error), timers. Safe to call twice.
    public func forceStop() {
        base.thread.preconditionOnThread()
        guard let http else { return }
        if phase == .serving || phase == .draining { root.cancel(.canceled, cause: ShutdownCause()) }
        self.http = nil
        phase = .stopped
        shutdownTimer = nil
        stopEvent = nil
        trimTimer = nil
        idleSweep = nil
        http.close()
        precondition(inFlight.isEmpty, "greetings left after stop")
        onStopped?()
    }

    private func armShutdownTimer(after budget: GoDuration, _ action: @escaping () -> Void) {
        shutdownTimer = try? Event(base: base) { _ in action() }
        try? shutdownTimer?.add(timeout: budget.duration)
    }

    /// Once draining or cancelling, stops as soon as nothing is left to wait for: on the next turn
    /// of the loop, never from inside the callback that noticed. That callback may be evhttp's own
    /// (a connection's close callback, inside `evhttp_connection_free`), and `evhttp_free` there
    /// would free that connection a second time.
    private func checkStopped() {
        guard phase == .draining || phase == .canceling, let http else { return }
        if inFlight.isEmpty && http.connectionCount == 0 {
            if stopEvent == nil { stopEvent = try? Event(base: base) { [unowned self] _ in self.forceStop() } }
            stopEvent?.activate()
        }
    }

    // MARK: - Requests

    private func route(_ request: HTTPRequest) {
        let start = ContinuousClock.now
        let id = requestIDs.next()
        let label = request.header("X-Request-Id").flatMap(acceptableRequestID) ?? "\(id)"
        let exchange = Exchange(id: id, label: label, request: request, start: start)
        guard request.hasSupportedVersion else {
            respond(exchange, status: 400, headers: [("Connection", "close")], body: "unsupported HTTP version; use HTTP/1.1\n")
            return
        }
        switch request.path {
        case "/":
            guard request.method == .get || request.method == .head else {
                respond(exchange, status: 405, headers: [("Allow", "GET, HEAD")],
                        body: request.method == .other ? "method not allowed on /; use GET\n"
                            : "method \(request.method.rawValue) not allowed on /; use GET\n")
                return
            }
            guard phase == .serving else {
                respond(exchange, status: 503, headers: [("Retry-After", "1")], body: "server shutting down\n")
                metrics.finished(.rejected, after: .now - start)
                return
            }
            startGreeting(exchange)
        case "/healthz":
            if phase == .serving {
                respond(exchange, status: 200, body: "ok\n")
            } else {
                respond(exchange, status: 503, body: "draining\n")
            }
        case "/metrics":
            respond(exchange, status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: metrics.render())
        default:
            respond(exchange, status: 404, body: "404 page not found\n")
        }
    }

    private func startGreeting(_ exchange: Exchange) {
        let delay: GoDuration
        let timeout: GoDuration?
        do {
            (delay, timeout) = try greetingParameters(exchange.request)
        } catch {
            respond(exchange, status: 400, body: "\(error)\n")
            return
        }
        let greeting = Greeting(exchange: exchange, delay: delay, timeout: timeout, server: self)
        inFlight[exchange.id] = greeting
        stats.started.bump()
        stats.inFlight.bump()
        metrics.inFlight.increment()
        greeting.start()
    }

    /// `?delay=` (capped at `maxDelay`; default `delay`) and `?timeout=` (capped at `timeout`).
    private func greetingParameters(_ request: HTTPRequest) throws(QueryProblem) -> (GoDuration, GoDuration?) {
        guard let items = request.queryItems() else { throw .malformedQuery(request.query ?? "") }
        var delay = configuration.delay
        if let text = items.first(where: { $0.name == "delay" })?.value {
            delay = min(try parseParameter("delay", text, allowZero: true), configuration.maxDelay)
        }
        var timeout = configuration.timeout
        if let text = items.first(where: { $0.name == "timeout" })?.value {
            let asked = try parseParameter("timeout", text, allowZero: true)
            timeout = timeout.map { min($0, asked) } ?? asked
        }
        return (delay, timeout)
    }

    private func parseParameter(_ name: String, _ text: String, allowZero: Bool) throws(QueryProblem) -> GoDuration {
        let value: GoDuration
        do {
            value = try GoDuration(parsing: text)
        } catch {
            throw .badDuration(name, text, error)
        }
        if value.nanoseconds < 0 { throw .negative(name, text) }
        return value
    }

    /// Answers a request with the headers every answer carries, and writes its access-log line.
    func respond(_ exchange: Exchange, status: Int, headers: [(String, String)] = [], body: String) {
        let (status, bytes) = send(exchange, status: status, headers: headers, body: body)
        logAccess(exchange, status: status, bytes: bytes)
    }

    /// Answers a request with the headers every answer carries (`X-Request-Id`; `Connection:
    /// close` once stopping).
    /// - Returns: the status and body size for the access log: 499 and 0 if the client had gone.
    func send(_ exchange: Exchange, status: Int, headers: [(String, String)] = [], body: String) -> (status: Int, bytes: Int) {
        var headers = headers
        headers.append(("X-Request-Id", exchange.label))
        if phase != .serving { headers.append(("Connection", "close")) }
        guard exchange.request.respond(status: status, headers: headers, body: body) else { return (499, 0) }
        return (status, exchange.request.method == .head ? 0 : body.utf8.count)
    }

    /// One line per finished request: method, target, status (499: the client went away first),
    /// duration and body bytes.
    func logAccess(_ exchange: Exchange, status: Int, bytes: Int) {
        let elapsed = GoDuration(ContinuousClock.now - exchange.start)
        log(.info, exchange, "access method=\(exchange.request.method.rawValue) target=\(logField(exchange.request.uri)) status=\(status) duration=\(elapsed) bytes=\(bytes)")
    }

    /// Logs a line about one request, with `request_id` set to its label. The metadata is
    /// built per line, and only if the level is enabled, so a pending request holds none.
    func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, _ exchange: Exchange,
             metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logger.logLevel <= level else { return }
        var all = metadata()
        all[requestIDKey] = .string(exchange.label)
        logger.log(level: level, message(), metadata: all)
    }

    private func log(_ level: Logger.Level, _ exchange: Exchange, _ message: @autoclosure () -> Logger.Message) {
        log(level, message(), exchange)
    }

    /// After a burst, glibc keeps the freed memory of thousands of connections in its heap, and
    /// RSS stays at the peak. A second after the last greeting ends (and only if none started
    /// since), `malloc_trim` returns it. At most once a second per worker, never under load.
    private func scheduleMemoryTrim() {
        if let trimTimer, !trimTimer.isPending { try? trimTimer.add(timeout: .seconds(1)) }
    }

    // MARK: - Called by greetings

    func tickLogged() {
        stats.ticks.bump()
        metrics.ticks.increment()
    }

    func greetingFinished(_ greeting: Greeting, outcome: RequestOutcome) {
        inFlight[greeting.id] = nil
        stats.inFlight.bump(-1)
        metrics.inFlight.decrement()
        switch outcome {
        case .completed: stats.completed.bump()
        case .canceled: stats.canceled.bump()
        case .deadlineExceeded: stats.deadlineExceeded.bump()
        case .shutdown: stats.shutdown.bump()
        case .rejected: break
        }
        metrics.finished(outcome, after: .now - greeting.exchange.start)
        if inFlight.isEmpty { scheduleMemoryTrim() }
        checkStopped()
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

/// One request's identity for its whole life.
struct Exchange {
    /// Key in the in-flight table; unique in the process.
    let id: UInt64
    /// The request's name in logs and `X-Request-Id`: the client's `X-Request-Id` when it sent a
    /// sane one (so a client or a proxy can follow its request through the log), else `id`.
    let label: String
    let request: HTTPRequest
    let start: ContinuousClock.Instant
}

#if canImport(Glibc)
/// glibc's `malloc_trim`, looked up at run time: `<malloc.h>` is not part of Swift's Glibc module.
/// `nil` on a libc without it (musl).
private let mallocTrim: (@convention(c) (Int) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
}()
#endif
