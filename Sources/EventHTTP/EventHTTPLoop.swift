public import EventHTTPCore
public import EventHTTPSystem
import HTTPTypes
public import Logging

/// What an application keeps per loop and wants to hear from it: every request's end (an
/// access log), the shutdown's steps, and the transport's connection events. Every method has
/// a default that does nothing. Called on the loop's thread.
///
/// ``LoopExchange/observer`` hands it back to the loop's callback-style routes, so they can
/// reach per-loop state without a lock.
public protocol LoopObserver: AnyObject {
    /// A request ended: answered (by a handler, the router, or canned by the transport) or
    /// aborted. Once per request.
    func requestEnded(_ head: RequestHead, _ end: RequestEnd)
    /// The graceful shutdown began on this loop: listeners are closed.
    func drainStarted()
    /// The grace period ended (or ``EventHTTPLoop/cancelRemaining()`` was called): the async
    /// handlers are being cancelled with `reason`; cancel the loop routes' work too.
    func cancelling(reason: String)
    /// The loop stopped serving and freed its connections.
    func stopped()
    /// The number of open connections changed.
    func connectionsChanged(to count: Int)
    /// `accept` failed (`EMFILE`, ...), and accepting pauses for `pause`.
    func acceptFailed(_ error: Errno, pause: Duration)
    /// A client connection closed, for `reason` (once per connection, refused ones included).
    func connectionClosed(_ reason: ConnectionCloseReason)
}

extension LoopObserver {
    public func requestEnded(_ head: RequestHead, _ end: RequestEnd) {}
    public func drainStarted() {}
    public func cancelling(reason: String) {}
    public func stopped() {}
    public func connectionsChanged(to count: Int) {}
    public func acceptFailed(_ error: Errno, pause: Duration) {}
    public func connectionClosed(_ reason: ConnectionCloseReason) {}
}

/// One event loop's share of the front door: the transport on one `event_base`, the router's
/// dispatch, the async handlers' runner, and the loop's graceful shutdown.
///
/// ``EventHTTPServer`` runs one per thread. An application that runs its own loops (greetd
/// does, to own its threads, signals and logs) makes one per loop on that loop's thread.
///
/// ## Shutdown
/// `serving` → ``beginDrain()`` → `draining` (listeners closed, idle connections closed,
/// requests in flight go on; a new async request gets `503` with `Connection: close`, a
/// callback-style route still runs and decides) → after ``EventHTTPServer/Configuration/shutdownGrace``,
/// or ``cancelRemaining()`` → `cancelling` (async handlers cancelled with
/// ``CancellationReason/shutdown(_:)``, ``LoopObserver/cancelling(reason:)``) → `stopped` once no
/// handler and no connection is left, or after ``EventHTTPServer/Configuration/cancellationGrace``.
///
/// Ownership: owns its transport (listeners, connections), executor and timers; the base is the
/// caller's. After `stopped`, and once the loop has returned, call ``shutdownExecutor()``.
///
/// `@unchecked Sendable`: created on its loop's thread, and every member but ``executor`` is
/// touched on that thread only (checked with `preconditionOnThread`); other threads reach it
/// only through `executor.execute`.
public final class EventHTTPLoop: LoopResponder, @unchecked Sendable {
    /// A loop's phase.
    public enum Phase: Int, Comparable, Sendable {
        /// Accepting and serving.
        case serving
        /// Listeners closed; requests in flight finishing.
        case draining
        /// Handlers cancelled; waiting for them and their connections.
        case cancelling
        /// Everything freed.
        case stopped
        public static func < (a: Phase, b: Phase) -> Bool { a.rawValue < b.rawValue }
    }

    /// The loop as an executor: the async handlers run on it.
    public let executor: LoopExecutor
    /// Its number among the server's loops, from 0.
    public let index: Int
    private let base: EventBase
    private let configuration: EventHTTPServer.Configuration
    private let router: any HTTPRouting
    private let logger: Logger
    private let exitsBase: Bool
    private var http: LoopHTTPServer?
    private let runner: AsyncRequestRunner
    private let chainMiddleware: [any Middleware]
    /// Unowned: the application owns its observer (and the observer usually owns this loop),
    /// and must keep it until the loop has stopped. Not weak: a weak reference would put every
    /// retain and release of the observer on the runtime's slow path (a side table), per request.
    private unowned let observer: (any LoopObserver)?
    private var timer: Event?
    /// The loop's phase.
    public private(set) var phase = Phase.serving

    /// A loop on `base`, which must be the calling thread's.
    /// - Parameters:
    ///   - base: the loop's `event_base`, the calling thread's.
    ///   - index: its number among the application's loops (``LoopExchange/loopIndex``).
    ///   - configuration: the server's configuration (errors, request ids, shutdown bounds).
    ///   - transport: the transport's limits; `reusePort` when several loops share a port.
    ///   - group: what the loops of one server share (the connection limit, request numbers).
    ///   - router: the routes.
    ///   - logger: the loop's logger; each request's adds `request_id`.
    ///   - observer: told of request ends and shutdown steps; held unowned: the application owns
    ///     it, and keeps it at least until the loop has stopped.
    ///   - exitsBase: end `base`'s loop when the loop stops (the server's own loops do; an
    ///     application that runs more on the base ends it itself, from ``LoopObserver/stopped()``).
    public init(base: EventBase, index: Int = 0, configuration: EventHTTPServer.Configuration, transport: HTTPServerOptions,
                group: HTTPServerGroup = HTTPServerGroup(), router: any HTTPRouting, logger: Logger,
                observer: (any LoopObserver)? = nil, exitsBase: Bool = true) throws {
        base.thread.preconditionOnThread()
        self.base = base
        self.index = index
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.exitsBase = exitsBase
        self.observer = observer
        executor = try LoopExecutor(base: base)
        runner = AsyncRequestRunner(executor: executor)
        chainMiddleware = router.middleware
        do {
            http = try LoopHTTPServer(base: base, options: transport, group: group, responder: self)
        } catch {
            executor.shutdown()
            throw error
        }
        runner.onIdle = { [unowned self] in self.finishIfDone() }
        runner.onHandlerFailure = { [unowned self] head, failure in
            var logger = self.logger
            logger[metadataKey: "request_id"] = .string(head.id)
            logger.error("handler failed: \(failure)")
        }
        http?.onConnectionCountChange = { [unowned self] count in
            self.observer?.connectionsChanged(to: count)
            self.finishIfDone()
        }
        http?.onAcceptError = { [unowned self] error, pause in self.observer?.acceptFailed(error, pause: pause) }
    }

    /// The observer given at `init`, if any.
    var loopObserver: (any LoopObserver)? { observer }

    /// Where it listens, with real ports; empty once stopped.
    public var addresses: [IPEndpoint] { http?.addresses ?? [] }

    /// Open client connections.
    public var connectionCount: Int { http?.connectionCount ?? 0 }

    /// Async handlers running.
    public var runningHandlers: Int { runner.runningCount }

    /// Listens on `host`:`port` (`0`: a free port, see ``addresses``).
    /// - Throws: `LibeventError` (the address, and why).
    public func listen(host: String, port: UInt16) throws(LibeventError) {
        base.thread.preconditionOnThread()
        guard let http else { throw .callFailed(function: "listen (loop stopped)", errno: nil) }
        try http.bind(host: host, port: port)
    }

    /// Runs the base's loop until the loop stops, then frees the transport and ends the
    /// executor (for loops that own their thread, as ``EventHTTPServer``'s do).
    func runLoop() {
        do { try base.run() } catch { logger.error("event loop failed: \(error)") }
        forceStop()
        // Released here, on the loop thread: its events may not be freed from the thread that
        // drops the last reference to the loop (EventHTTPServer.serve, off the loop).
        http = nil
        executor.shutdown()
    }

    /// Ends the executor: runs the jobs still queued (the last steps of cancelled handlers) and
    /// frees its events. Call it on the loop's thread once the base's loop has returned.
    public func shutdownExecutor() {
        executor.shutdown()
    }

    // MARK: - Shutdown

    /// Begins the graceful shutdown (see the type's documentation). Idempotent.
    public func beginDrain() {
        base.thread.preconditionOnThread()
        guard phase == .serving else { return }
        phase = .draining
        http?.beginDraining()
        observer?.drainStarted()
        arm(after: configuration.shutdownGrace) { [unowned self] in self.cancelRemaining() }
        finishIfDone()
    }

    /// Cancels what is still running now, and stops once it has ended or after
    /// ``EventHTTPServer/Configuration/cancellationGrace``. Idempotent.
    public func cancelRemaining() {
        base.thread.preconditionOnThread()
        guard phase < .cancelling else { return }
        if phase == .serving {
            http?.beginDraining()
            observer?.drainStarted()
        }
        phase = .cancelling
        observer?.cancelling(reason: configuration.shutdownMessage)
        runner.cancelAll(reason: configuration.shutdownMessage)
        arm(after: configuration.cancellationGrace) { [unowned self] in self.finish() }
        finishIfDone()
    }

    /// Frees everything now: listeners, connections (their requests are reported aborted,
    /// `serverClosed`), timers. Safe to call twice.
    public func forceStop() {
        base.thread.preconditionOnThread()
        finish()
    }

    private func arm(after delay: Duration, _ action: @escaping () -> Void) {
        do {
            let event = try Event(base: base) { _ in action() }
            try event.add(timeout: delay)
            timer = event
        } catch {
            timer = nil
            logger.error("cannot arm the shutdown timer; skipping the wait", metadata: ["error": "\(error)"])
            action()  // without a timer the wait could never end: skip it
        }
    }

    private func finishIfDone() {
        guard phase > .serving, phase != .stopped, runner.runningCount == 0, connectionCount == 0 else { return }
        finish()
    }

    private func finish() {
        guard phase != .stopped else { return }
        phase = .stopped
        timer = nil
        // Frees at once, or at the transport's next safe point.
        http?.close()
        observer?.stopped()
        if exitsBase { base.exit() }
    }

    // MARK: - LoopResponder

    public func requestID(number: UInt64, clientValue: String?) -> String {
        configuration.requestIDs.id(number: number, clientValue: clientValue)
    }

    public func renderError(status: Int, head: RequestHead) -> RenderedError? {
        guard configuration.rendersTransportErrors else { return nil }
        let status = Self.status(status)
        let answer = ErrorAnswer(status: status, message: status.reasonPhrase, requestID: head.id, kind: nil, origin: .transport,
                                 method: head.method, target: head.target)
        let (contentType, body) = configuration.errorRenderer.render(answer)
        return RenderedError(contentType: contentType, body: body)
    }

    /// The status with its standard reason phrase (`HTTPResponse.Status(code:)` has none).
    static func status(_ code: Int) -> HTTPResponse.Status {
        switch code {
        case 400: .badRequest
        case 404: .notFound
        case 405: .methodNotAllowed
        case 408: .requestTimeout
        case 413: .contentTooLarge
        case 417: .expectationFailed
        case 431: .requestHeaderFieldsTooLarge
        case 500: .internalServerError
        case 501: .notImplemented
        case 503: .serviceUnavailable
        case 505: HTTPResponse.Status(code: 505, reasonPhrase: "HTTP Version Not Supported")
        default: HTTPResponse.Status(code: code)
        }
    }

    public func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        runner.requestEnded(head, end)
        observer?.requestEnded(head, end)
    }

    public func connectionClosed(_ reason: ConnectionCloseReason) {
        observer?.connectionClosed(reason)
    }

    public func handle(_ request: LoopRequest) {
        let method = request.method.httpMethod
        let match = router.match(method: method, path: request.path)
        switch match {
        case .found(let route, let parameters):
            switch route.handler {
            case .loop(let handler):
                handler(LoopExchange(request: request, parameters: parameters, route: route.pattern, loop: self))
            case .async(let responder):
                guard phase == .serving else {
                    answer(request, HTTPError(.serviceUnavailable, message: configuration.shutdownMessage), origin: .shutdown)
                    return
                }
                start(request, method: method, route: route, parameters: parameters, responder: responder)
            }
        case .notFound, .methodNotAllowed:
            if chainMiddleware.isEmpty || phase != .serving {
                answer(request, Self.routingError(match), origin: .router)
            } else {
                let error = Self.routingError(match)
                start(request, method: method, route: nil, parameters: Parameters(), responder: { _, _ in throw error })
            }
        }
    }

    static func routingError(_ match: RouteMatch) -> HTTPError {
        switch match {
        case .methodNotAllowed(let allowed):
            var headers = HTTPFields()
            headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            return HTTPError(.methodNotAllowed, message: "method not allowed", headers: headers)
        default:
            return HTTPError(.notFound, message: "not found")
        }
    }

    /// Answers `request` with `error` through the renderer, on the loop, now.
    private func answer(_ request: LoopRequest, _ error: HTTPError, origin: ErrorAnswer.Origin) {
        let (headers, body) = rendered(error, id: request.id, origin: origin, method: request.head.method, target: request.uri)
        request.respond(status: error.status.code, headers: headers, body: body)
    }

    private func rendered(_ error: HTTPError, id: String, origin: ErrorAnswer.Origin, method: String,
                          target: String) -> ([(String, String)], String) {
        let answer = ErrorAnswer(status: error.status, message: error.body, requestID: id, kind: error.kind, origin: origin,
                                 method: method, target: target)
        let (contentType, body) = configuration.errorRenderer.render(answer)
        var headers = error.headers.map { ($0.name.rawName, $0.value) }
        headers.append(("Content-Type", contentType))
        if phase != .serving { headers.append(("Connection", "close")) }
        return (headers, body)
    }

    // MARK: - Async handlers

    /// Runs `body` as the request's handler Task, on this loop, cancelled when the client leaves
    /// (the low-level form of an async route, for ``LoopExchange/runTask(onClientAbort:_:)``).
    func runTask(_ request: LoopRequest, onClientAbort: ClientAbortPolicy, _ body: @escaping AsyncHandler) {
        runner.run(request, onClientAbort: onClientAbort, handler: body)
    }

    private func start(_ http: LoopRequest, method: HTTPRequest.Method, route: Route?, parameters: Parameters,
                       responder: @escaping Responder) {
        let list = http.headerList
        var fields = HTTPFields()
        fields.reserveCapacity(list.count)
        // The first Host, as evhttp_find_header finds it (ASCII case-insensitively), taken from
        // the list rather than looked up again.
        var host: String?
        for (name, value) in list {
            guard let name = HTTPField.Name(name) else { continue }
            if host == nil && name.canonicalName == "host" { host = value }
            fields.append(HTTPField(name: name, value: value))
        }
        let head = HTTPRequest(method: method, scheme: nil, authority: host, path: http.uri, headerFields: fields)
        let request = Request(head: head, path: http.path, query: http.query, body: RequestBody(bytes: http.bodyBytes),
                              id: http.id, isHTTP10: http.isHTTP10)
        let pattern = route?.pattern ?? ""
        let deadline = route?.deadline
        let chain = chainMiddleware.isEmpty ? responder : MiddlewareChain.wrap(responder, in: chainMiddleware)
        let number = http.head.number
        let target = http.uri
        runner.run(http, onClientAbort: route?.onClientAbort ?? .cancel) { [unowned self] state, response in
            let context = RequestContext(loopLogger: self.logger, parameters: parameters, route: pattern, requestID: request.id,
                                         executor: state.executor, state: state)
            var deadlineTimer: Event?
            if let deadline {
                deadlineTimer = try? Event(base: self.base) { [unowned self] _ in self.runner.cancelForDeadline(number) }
                try? deadlineTimer?.add(timeout: deadline)
            }
            defer { deadlineTimer = nil }
            try await self.execute(request, context, chain, response, target: target)
        }
    }

    private func execute(_ request: Request, _ context: RequestContext, _ chain: Responder, _ response: AsyncResponse,
                         target: String) async throws {
        let answer: Response
        do {
            answer = try await chain(request, context)
        } catch {
            try fail(error, request, context, response, target: target)
            return
        }
        do {
            try await send(answer, response)
        } catch {
            try fail(error, request, context, response, target: target)
        }
    }

    private func send(_ answer: Response, _ response: AsyncResponse) async throws {
        var headers = answer.headers.map { ($0.name.rawName, $0.value) }
        if phase != .serving { headers.append(("Connection", "close")) }
        switch answer.body.storage {
        case .bytes(let bytes):
            try response.respond(status: answer.status.code, headers: headers, bytes: bytes)
        case .stream(let write):
            let stream = try response.startStream(status: answer.status.code, headers: headers)
            try await write(ResponseBodyWriter(stream: stream))
            try await stream.finish()
        }
    }

    /// Answers a handler's error, or hands it to the runner when nothing can be answered.
    private func fail(_ error: any Error, _ request: Request, _ context: RequestContext, _ response: AsyncResponse,
                      target: String) throws {
        if !context.isClientConnected || response.isAnswered { throw error }
        let httpError: HTTPError
        if let error = error as? HTTPError {
            httpError = error
        } else if error is CancellationError, let reason = context.cancellationReason {
            switch reason {
            case .deadlineExceeded: httpError = HTTPError(.serviceUnavailable, message: "deadline exceeded")
            case .shutdown(let words): httpError = HTTPError(.serviceUnavailable, message: words)
            case .clientGone: throw error
            }
        } else {
            httpError = configuration.mapError(error)
            context.logger.error("handler failed: \(error)", metadata: ["status": "\(httpError.status.code)"])
        }
        let (headers, body) = rendered(httpError, id: context.requestID, origin: .handler, method: request.method.rawValue,
                                       target: target)
        try response.respond(status: httpError.status.code, headers: headers, body: body)
    }
}

extension RequestMethod {
    /// The method in swift-http-types' vocabulary, without parsing its text.
    var httpMethod: HTTPRequest.Method {
        switch self {
        case .get: .get
        case .post: .post
        case .head: .head
        case .put: .put
        case .delete: .delete
        case .options: .options
        case .trace: .trace
        case .connect: .connect
        case .patch: .patch
        case .other: Self.otherMethod
        }
    }

    /// A method evhttp does not know (`FOO`): matches no route, so the router answers `405`.
    private static let otherMethod = HTTPRequest.Method("OTHER")!
}

extension RequestIDPolicy {
    /// The process's random prefix for generated ids: unique across restarts.
    static let processPrefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(UInt32.random(in: .min ... .max, using: &generator), radix: 16)
    }()

    func id(number: UInt64, clientValue: String?) -> String {
        switch self {
        case .generate:
            return "\(Self.processPrefix)-\(number)"
        case .trustClient:
            if let value = clientValue, Self.acceptable(value) { return value }
            return "\(Self.processPrefix)-\(number)"
        case .custom(let name):
            return name(number, clientValue)
        }
    }

    static func acceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        return (1...128).contains(utf8.count) && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }
}
