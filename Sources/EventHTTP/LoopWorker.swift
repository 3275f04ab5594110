import EventHTTPCore
import EventHTTPSystem
import HTTPTypes
import Logging

/// One of the server's loops: its `event_base`, executor, transport and handlers, and the
/// ``LoopResponder`` that routes its requests.
///
/// `@unchecked Sendable`: created on its loop's thread, and every member but ``executor`` is
/// touched on that thread only (checked with `preconditionOnThread`); other threads reach it
/// only through `executor.execute`.
final class LoopWorker: LoopResponder, @unchecked Sendable {
    struct Settings: Sendable {
        let index: Int
        let configuration: EventHTTPServer.Configuration
        let transport: HTTPServerOptions
        let group: HTTPServerGroup
        let router: any HTTPRouting
        let logger: Logger
    }

    private enum Phase: Int, Comparable {
        case serving, draining, canceling, stopped
        static func < (a: Phase, b: Phase) -> Bool { a.rawValue < b.rawValue }
    }

    let executor: LoopExecutor
    private let base: EventBase
    private let settings: Settings
    private var http: LoopHTTPServer!
    private let runner: AsyncRequestRunner
    private let chainMiddleware: [any Middleware]
    private var phase = Phase.serving
    private var timer: Event?

    init(_ settings: Settings) throws {
        self.settings = settings
        base = try EventBase()
        executor = try LoopExecutor(base: base)
        runner = AsyncRequestRunner(executor: executor)
        chainMiddleware = settings.router.middleware
        do {
            http = try LoopHTTPServer(base: base, options: settings.transport, group: settings.group, responder: self)
        } catch {
            executor.shutdown()
            throw error
        }
        runner.onIdle = { [unowned self] in self.finishIfDone() }
        runner.onHandlerFailure = { [unowned self] head, failure in
            var logger = self.settings.logger
            logger[metadataKey: "request_id"] = .string(head.id)
            logger.error("handler failed: \(failure)")
        }
        http.onConnectionCountChange = { [unowned self] _ in self.finishIfDone() }
    }

    var addresses: [IPEndpoint] { http.addresses }

    func listen(host: String, port: UInt16) throws(LibeventError) {
        do {
            try http.bind(host: host, port: port)
        } catch {
            http.close()
            executor.shutdown()
            throw error
        }
    }

    /// Runs the loop until the worker stops, then ends the executor (on the loop's thread).
    func runLoop() {
        do { try base.run() } catch { settings.logger.error("event loop failed: \(error)") }
        http.close()
        executor.shutdown()
    }

    // MARK: - Shutdown

    func beginDrain() {
        base.thread.preconditionOnThread()
        guard phase == .serving else { return }
        phase = .draining
        http.beginDraining()
        arm(after: settings.configuration.shutdownGrace) { [unowned self] in self.cancelRemaining() }
        finishIfDone()
    }

    func cancelRemaining() {
        base.thread.preconditionOnThread()
        guard phase < .canceling else { return }
        if phase == .serving { http.beginDraining() }
        phase = .canceling
        runner.cancelAll(reason: settings.configuration.shutdownMessage)
        arm(after: settings.configuration.cancellationGrace) { [unowned self] in self.finish() }
        finishIfDone()
    }

    private func arm(after delay: Duration, _ action: @escaping () -> Void) {
        do {
            let event = try Event(base: base) { _ in action() }
            try event.add(timeout: delay)
            timer = event
        } catch {
            timer = nil
            action()  // without a timer the wait could never end: skip it
        }
    }

    private func finishIfDone() {
        guard phase > .serving, phase != .stopped, runner.runningCount == 0, http.connectionCount == 0 else { return }
        finish()
    }

    private func finish() {
        guard phase != .stopped else { return }
        phase = .stopped
        timer = nil
        http.close()
        base.exit()
    }

    // MARK: - LoopResponder

    /// The process's random prefix for generated ids: unique across restarts.
    private static let idPrefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(UInt32.random(in: .min ... .max, using: &generator), radix: 16)
    }()

    func requestID(number: UInt64, clientValue: String?) -> String {
        if case .trustClient = settings.configuration.requestIDs, let value = clientValue, Self.acceptable(value) {
            return value
        }
        return "\(Self.idPrefix)-\(number)"
    }

    static func acceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        return (1...128).contains(utf8.count) && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    func renderError(status: Int, head: RequestHead) -> RenderedError? {
        let answer = ErrorAnswer(status: HTTPResponse.Status(code: status), message: HTTPResponse.Status(code: status).reasonPhrase,
                                 requestID: head.id, kind: nil, origin: .transport)
        let (contentType, body) = settings.configuration.errorRenderer.render(answer)
        return RenderedError(contentType: contentType, body: body)
    }

    func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        runner.requestEnded(head, end)
    }

    func handle(_ request: LoopRequest) {
        guard phase == .serving else {
            answer(request, HTTPError(.serviceUnavailable, message: settings.configuration.shutdownMessage), origin: .shutdown)
            return
        }
        let method = HTTPRequest.Method(request.method.rawValue) ?? .get
        let match = settings.router.match(method: method, path: request.path)
        switch match {
        case .found(let route, let parameters):
            switch route.handler {
            case .loop(let handler):
                handler(LoopExchange(request: request, parameters: parameters, route: route.pattern, executor: executor,
                                     loopIndex: settings.index))
            case .async(let responder):
                start(request, method: method, route: route, parameters: parameters, responder: responder)
            }
        case .notFound, .methodNotAllowed:
            if chainMiddleware.isEmpty {
                answer(request, Self.routingError(match, path: request.path), origin: .router)
            } else {
                let error = Self.routingError(match, path: request.path)
                start(request, method: method, route: nil, parameters: Parameters(), responder: { _, _ in throw error })
            }
        }
    }

    static func routingError(_ match: RouteMatch, path: String) -> HTTPError {
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
        let (headers, body) = rendered(error, id: request.id, origin: origin)
        request.respond(status: error.status.code, headers: headers, body: body)
    }

    private func rendered(_ error: HTTPError, id: String, origin: ErrorAnswer.Origin) -> ([(String, String)], String) {
        let answer = ErrorAnswer(status: error.status, message: error.body, requestID: id, kind: error.kind, origin: origin)
        let (contentType, body) = settings.configuration.errorRenderer.render(answer)
        var headers = error.headers.map { ($0.name.rawName, $0.value) }
        headers.append(("Content-Type", contentType))
        if phase != .serving { headers.append(("Connection", "close")) }
        return (headers, body)
    }

    // MARK: - Async handlers

    private func start(_ http: LoopRequest, method: HTTPRequest.Method, route: Route?, parameters: Parameters,
                       responder: @escaping Responder) {
        var fields = HTTPFields()
        for (name, value) in http.headerList {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        let head = HTTPRequest(method: method, scheme: nil, authority: http.header("Host"), path: http.uri, headerFields: fields)
        let request = Request(head: head, path: http.path, query: http.query, body: RequestBody(bytes: http.bodyBytes),
                              id: http.id, isHTTP10: http.isHTTP10)
        let logger = { var logger = settings.logger; logger[metadataKey: "request_id"] = .string(http.id); return logger }()
        let pattern = route?.pattern ?? ""
        let deadline = route?.deadline
        let chain = chainMiddleware.isEmpty ? responder : MiddlewareChain.wrap(responder, in: chainMiddleware)
        let number = http.head.number
        runner.run(http, onClientAbort: route?.onClientAbort ?? .cancel) { [unowned self] state, response in
            let context = RequestContext(logger: logger, parameters: parameters, route: pattern, requestID: request.id,
                                         executor: state.executor, state: state)
            var deadlineTimer: Event?
            if let deadline {
                deadlineTimer = try? Event(base: self.base) { [unowned self] _ in self.runner.cancelForDeadline(number) }
                try? deadlineTimer?.add(timeout: deadline)
            }
            defer { deadlineTimer = nil }
            try await self.execute(request, context, chain, response)
        }
    }

    private func execute(_ request: Request, _ context: RequestContext, _ chain: Responder, _ response: AsyncResponse) async throws {
        let answer: Response
        do {
            answer = try await chain(request, context)
        } catch {
            try fail(error, context, response)
            return
        }
        do {
            try await send(answer, response)
        } catch {
            try fail(error, context, response)
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
    private func fail(_ error: any Error, _ context: RequestContext, _ response: AsyncResponse) throws {
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
            httpError = settings.configuration.mapError(error)
            context.logger.error("handler failed: \(error)", metadata: ["status": "\(httpError.status.code)"])
        }
        let (headers, body) = rendered(httpError, id: context.requestID, origin: .handler)
        try response.respond(status: httpError.status.code, headers: headers, body: body)
    }
}
