import EventHTTP
import EventHTTPContext
import EventHTTPCore
import Logging
import EventHTTPDuration
import EventHTTPSystem
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

/// One worker: the greeting server of the seed, on one libevent loop, built on the EventHTTP
/// library's front door like any adopter: an ``EventHTTPLoop`` (the library's per-loop server:
/// transport, router dispatch, async runner and graceful drain) with greetd's routes on a
/// library ``Router``, and this object as the loop's ``LoopObserver`` (the access log, the
/// shutdown lines, greetings in flight).
///
/// Routes (callback-style `onLoop` routes, so the plain greeting stays a repeating loop timer
/// cancelled by the connection's close callback): `/` greets, `/healthz` answers `200 ok`
/// while serving and `503` once draining, `/metrics` renders the shared registry. `/` with
/// `Accept: text/event-stream` (or `?stream=1`) streams the greeting as server-sent events, on
/// the same timer as the plain greeting; `/?async=1` is either greeting as an async handler
/// (`AsyncGreeting`, handed to the library's async runner with
/// ``LoopExchange/runTask(onClientAbort:_:)``: the library's path, for the benchmarks); those three answer
/// `GET` and `HEAD` (else `405` with `Allow`, through greetd's ``ErrorRenderer``); any other
/// path gets `404`. Each request is named by ``RequestIDPolicy/custom(_:)`` (the client's sane
/// `X-Request-Id`, else its number) and gets one access-log line.
///
/// ## Lifecycle
/// The library's drain: `serving` → ``beginDrain()`` → `draining` (listeners closed, idle
/// connections closed, greetings in flight go on, new greetings get `503`) → after
/// `shutdownTimeout` or ``cancelRemaining()`` → `canceling` (the root context is cancelled with
/// ``ShutdownCause`` and the async greetings' Tasks too; each greeting answers `503`,
/// `Connection: close`, and each stream ends with `event: error`) → `stopped` once no connection
/// and no handler Task is left, or after `shutdownGrace`.
///
/// Ownership: the server owns its ``EventHTTPLoop`` (and through it every listener and
/// connection, and the executor), its root context and every in-flight greeting. The
/// ``EventBase`` is the caller's; stop the server (``forceStop()``), then, once the loop has
/// returned, ``shutdownExecutor()``, before the base goes.
///
/// Threading: loop-confined.
public final class GreetingServer: LoopObserver {
    /// The loop everything runs on.
    public let base: EventBase
    /// Counters of this worker, readable from any thread (tests).
    public let stats: GreetdStats
    let metrics: GreetdMetrics
    let configuration: GreetdConfiguration
    let logger: Logger
    let recorder: RequestRecorder
    private let group: WorkerGroup
    /// The library's server on this loop.
    private var loop: EventHTTPLoop!
    /// Greetings thinking, by request number.
    private var inFlight: [UInt64: any InFlightGreeting] = [:]
    /// Outcomes of answers sent without a greeting (a refusal while draining), by request number.
    private var outcomes: [UInt64: RequestOutcome] = [:]
    /// Parent of every request's context; cancelled with ``ShutdownCause`` when the budget ends.
    let root = Context()
    /// The shutdown phases this worker entered (and announced to the group).
    private var announced: Set<ShutdownPhase> = []
    private var memoryTrim: MemoryTrim?
    /// Called once, on the loop thread, when the server has stopped and freed its connections.
    public var onStopped: (() -> Void)?

    /// The loop as a Swift executor: the async greetings' Tasks run on it.
    public var executor: LoopExecutor { loop.executor }

    /// The worker's phase.
    public var phase: ShutdownPhase {
        switch loop.phase {
        case .serving: .serving
        case .draining: .draining
        case .cancelling: .canceling
        case .stopped: .stopped
        }
    }

    /// Binds `configuration.host` on `port` and starts accepting on `base`.
    /// - Throws: ``ConfigurationError`` for inconsistent values, ``LibeventError`` when an address
    ///   cannot be bound (the message names it and the reason).
    /// - Parameters:
    ///   - stats: counters to write; they must share `base.counters`' instance (or be new).
    ///   - group: what the service's workers share (connection limit, request numbers, the
    ///     once-per-service shutdown lines); a new one makes this worker stand alone.
    public init(configuration: GreetdConfiguration, logger: Logger, base: EventBase, metrics: GreetdMetrics,
                stats: GreetdStats? = nil, group: WorkerGroup = WorkerGroup(workers: 1), port: UInt16? = nil) throws {
        try configuration.validate()
        self.base = base
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.group = group
        let stats = stats ?? GreetdStats(libevent: base.counters)
        precondition(stats.libevent === base.counters, "stats must count this base's handles")
        self.stats = stats
        recorder = RequestRecorder(logger: logger, stats: stats, metrics: metrics, maxConnections: configuration.http.maxConnections)
        var transport = configuration.http
        transport.reusePort = configuration.workers > 1
        let loop = try EventHTTPLoop(base: base, configuration: Self.frontDoor(configuration), transport: transport,
                                     group: group.http, router: Self.routes(), logger: logger, observer: self, exitsBase: false)
        self.loop = loop
        do {
            // Every --host on one port: the first picks it when it is 0, the others reuse it.
            var chosen = port ?? configuration.port
            for host in configuration.hosts {
                try loop.listen(host: host, port: chosen)
                chosen = loop.addresses.first?.port ?? chosen
            }
        } catch {
            loop.forceStop()
            loop.shutdownExecutor()
            throw error
        }
        memoryTrim = try MemoryTrim(base: base) { [unowned self] in self.inFlight.isEmpty }
    }

    deinit {
        precondition(loop == nil || loop.phase == .stopped, "GreetingServer dropped without forceStop()")
        precondition(loop == nil || loop.executor.isShutDown, "GreetingServer dropped without shutdownExecutor()")
    }

    /// The library configuration of greetd's loop: its request ids, its error bodies (Go's
    /// words; the transport's canned answers as plain text, `400 Bad Request`), and its shutdown
    /// budget and grace.
    private static func frontDoor(_ configuration: GreetdConfiguration) -> EventHTTPServer.Configuration {
        let frontDoor = EventHTTPServer.Configuration(
            host: configuration.host, port: configuration.port, loops: 1, transport: configuration.http,
            requestIDs: .custom { number, clientValue in clientValue.flatMap(acceptableRequestID) ?? GeneratedRequestID.make(number) },
            errorRenderer: ErrorRenderer { answer in
                switch answer.status {
                case .notFound:
                    return ("text/plain; charset=utf-8", "404 page not found\n")
                case .methodNotAllowed:
                    let path = String(answer.target.prefix { $0 != "?" })
                    return ("text/plain; charset=utf-8", GreetingRoutes.methodNotAllowedBody(RequestMethod(rawValue: answer.method) ?? .other, path: path))
                default:
                    // The transport's canned answers (400, 413, 417, ...): Go's `http.Error` shape.
                    return ("text/plain; charset=utf-8", "\(answer.status.code) \(answer.message)\n")
                }
            },
            shutdownGrace: configuration.shutdownTimeout.duration, cancellationGrace: configuration.shutdownGrace.duration,
            shutdownMessage: "\(ShutdownCause())")
        return frontDoor
    }

    /// greetd's three routes on the library's router. Each reaches this loop's server through
    /// the exchange's observer (the loop holds it weakly; the service holds it).
    private static func routes() -> Router {
        let router = Router()
        router.onLoop(.get, "/") { exchange in exchange.observer(as: GreetingServer.self).greet(exchange) }
        router.onLoop(.get, "/healthz") { exchange in exchange.observer(as: GreetingServer.self).health(exchange.request) }
        router.onLoop(.get, "/metrics") { exchange in exchange.observer(as: GreetingServer.self).renderMetrics(exchange.request) }
        return router
    }

    /// Where the server listens, with real ports.
    public var addresses: [IPEndpoint] { loop.addresses }

    // MARK: - Shutdown (the library's drain)

    /// Stops accepting, closes idle connections, and lets greetings in flight finish for up to
    /// `shutdownTimeout`; then ``cancelRemaining()``. Idempotent.
    public func beginDrain() { loop.beginDrain() }

    /// Cancels every greeting still running with cause `server shutting down`: each answers
    /// `503` with `Connection: close`. The server stops when their connections have closed, or
    /// after `shutdownGrace`. Idempotent.
    public func cancelRemaining() { loop.cancelRemaining() }

    /// Frees everything now: listeners, connections (greetings still thinking are cancelled
    /// and log their context error), timers. Safe to call twice, and from anywhere on the loop.
    public func forceStop() {
        base.thread.preconditionOnThread()
        if loop.phase != .stopped { cancelGreetings() }
        loop.forceStop()
    }

    /// Ends the async greetings' executor: runs the jobs still queued (the last steps of Tasks
    /// cancelled by ``forceStop()``) and frees its events. Call it on the loop thread once
    /// ``EventBase/run()`` has returned, after ``forceStop()``. Idempotent.
    public func shutdownExecutor() {
        loop.shutdownExecutor()
    }

    /// Cancels the root context and hands its end to each greeting in flight (a greeting does
    /// not register with the root: that would cost a table entry per pending greeting).
    private func cancelGreetings() {
        root.cancel(.canceled, cause: ShutdownCause())
        guard let error = root.err else { return }
        // A copy: each greeting answers, and its request's end removes it from the table.
        for greeting in inFlight.values {
            greeting.contextDone(root, error: error)
        }
    }

    /// This worker entered `phase`: it counts toward the line the service logs once every worker
    /// is past it, with the total in flight.
    private func announce(_ phase: ShutdownPhase) {
        guard announced.insert(phase).inserted else { return }
        guard let total = group.workerPassed(phase, acted: true, inFlight: inFlight.count) else { return }
        if phase == .draining {
            logger.notice("Draining: stopped accepting connections", metadata: [
                "in_flight": "\(total)", "budget": "\(configuration.shutdownTimeout)",
            ])
        } else {
            logger.notice("Cancelling greetings in flight", metadata: ["in_flight": "\(total)"])
        }
    }

    /// This worker stopped without entering `phase`: it still counts toward the service's line.
    private func pass(_ phase: ShutdownPhase) {
        guard announced.insert(phase).inserted else { return }
        guard let total = group.workerPassed(phase, acted: false, inFlight: 0) else { return }
        if phase == .draining {
            logger.notice("Draining: stopped accepting connections", metadata: [
                "in_flight": "\(total)", "budget": "\(configuration.shutdownTimeout)",
            ])
        } else {
            logger.notice("Cancelling greetings in flight", metadata: ["in_flight": "\(total)"])
        }
    }

    // MARK: - LoopObserver

    public func drainStarted() { announce(.draining) }

    public func cancelling(reason: String) {
        announce(.canceling)
        cancelGreetings()
    }

    public func stopped() {
        pass(.draining)
        pass(.canceling)
        memoryTrim = nil
        onStopped?()
    }

    public func connectionsChanged(to count: Int) { recorder.connectionsChanged(to: count) }

    public func connectionClosed(_ reason: ConnectionCloseReason) { recorder.connectionClosed(reason) }

    /// The answer in OpenTelemetry's histogram, with the route that gave it: one of greetd's
    /// three paths when a route answered, empty for the router's `404`/`405` and canned answers.
    private func recordHTTP(_ head: RequestHead, _ end: RequestEnd) {
        let status: Int
        switch end {
        case .responded(let code, _): status = code
        case .aborted(let reason): status = reason.isClientSide ? 499 : 444
        }
        var route = ""
        if head.origin == .application && status != 404 && status != 405 {
            route = String(head.target.prefix { $0 != "?" })
        }
        recorder.recordHTTP(head, status: status, route: route, elapsed: ContinuousClock.now - head.start)
    }

    public func acceptFailed(_ error: Errno, pause: Duration) { recorder.acceptFailed(error, pause: pause) }

    /// A request ended: its greeting (if any) learns why and leaves the in-flight table, and the
    /// recorder writes the access line and counts it.
    public func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        var outcome = outcomes.isEmpty ? nil : outcomes.removeValue(forKey: head.number)  // no hashing when empty
        if let greeting = inFlight.removeValue(forKey: head.number) {
            if case .aborted(let reason) = end {
                if reason.isClientSide {
                    greeting.clientWentAway(reason)
                } else {
                    greeting.serverDropped(reason, shuttingDown: phase != .serving)
                }
            }
            outcome = greeting.outcome ?? .canceled
        }
        recorder.requestEnded(head, end, outcome: outcome)
        recordHTTP(head, end)
        if inFlight.isEmpty { memoryTrim?.schedule() }
    }

    // MARK: - Routes

    /// `GET /`: a greeting, or `503` once the server is stopping.
    private func greet(_ exchange: LoopExchange) {
        let request = exchange.request
        guard phase == .serving else {
            send(request, status: 503, headers: [GreetingScript.retryAfter, varyAccept], body: GreetingScript.shutdownAnswer, outcome: .rejected)
            return
        }
        startGreeting(exchange)
    }

    /// `GET /healthz`.
    private func health(_ request: LoopRequest) {
        if phase == .serving {
            send(request, status: 200, body: "ok\n")
        } else {
            send(request, status: 503, body: "draining\n")
        }
    }

    /// `GET /metrics`.
    private func renderMetrics(_ request: LoopRequest) {
        send(request, status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: metrics.render())
    }

    private func startGreeting(_ exchange: LoopExchange) {
        let request = exchange.request
        let query: RawGreetingQuery
        let parameters: GreetingQuery
        do {
            query = try RawGreetingQuery(request.query)
            parameters = try query.resolve(configuration)
        } catch {
            send(request, status: 400, body: "\(error)\n")
            return
        }
        let kind = GreetingKind(request, query: query)
        if kind == .events && request.method == .head {
            // The headers only, at once: there is no body to think about.
            var headers = eventStreamHeaders
            if parameters.delayWasCapped { headers.append((cappedDelayHeader, "\(parameters.delay)")) }
            request.startStream(status: 200, headers: headers)
            request.endStream()
            return
        }
        // The timer greeting, and the stream on the same timer; `?async=1` asks for either as an
        // async handler on the library's runner (the stream then as `Response`-less SSE writes).
        guard kind == .async || (kind == .events && query.asksForAsync) else {
            let greeting = Greeting(request: request, parameters: parameters, server: self, streams: kind == .events)
            inFlight[request.head.number] = greeting
            recorder.greetingStarted()
            greeting.start()
            return
        }
        do {
            try request.watchForAbort()
        } catch {
            logger.log(.error, request: request.id, "Cannot watch the connection: \(error)")
            send(request, status: 500, body: "internal error: \(error)\n")
            return
        }
        let greeting = AsyncGreeting(head: request.head, mode: kind == .events ? .events : .plain,
                                     parameters: parameters, server: self)
        inFlight[request.head.number] = greeting
        recorder.greetingStarted()
        greeting.start()
        exchange.runTask { [greeting] request, response in await greeting.run(request, response) }
    }

    /// Answers a request, adding `Connection: close` once the server is stopping.
    /// - Parameter outcome: how to count it, for answers that are not a greeting's.
    func send(_ request: LoopRequest, status: Int, headers: [(String, String)] = [], body: String,
              outcome: RequestOutcome? = nil) {
        var headers = headers
        if phase != .serving { headers.append(("Connection", "close")) }
        if let outcome { outcomes[request.head.number] = outcome }
        if !request.respond(status: status, headers: headers, body: body) { outcomes[request.head.number] = nil }
    }
}
