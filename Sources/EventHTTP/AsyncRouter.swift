/// A ready-made `LoopResponder` of async routes: exact paths, one handler per method and path.
///
/// ```swift
/// let router = AsyncRouter(executor: executor)
/// router.get("/slow") { request, response in
///     try await request.executor.sleep(for: .seconds(5))  // cancelled if the client leaves
///     try response.respond(status: 200, body: "done\n")
/// }
/// let server = try LoopHTTPServer(base: base, responder: router)
/// ```
///
/// A `GET` route also answers `HEAD` (headers only). An unknown path gets `404`; a known path
/// with another method `405` with `Allow`. Requests are named by the client's `X-Request-Id` if
/// it sent one, else by their number. Every end goes to ``onRequestEnded`` (an access log: an
/// abort is `RequestEnd.aborted(_:)`, which greetd logs as status `499`).
///
/// Threading: loop-confined. Ownership: the server holds its responder unowned: keep the router
/// alive as long as the server.
public final class AsyncRouter: LoopResponder {
    private struct Route {
        let policy: ClientAbortPolicy
        let handler: AsyncHandler
    }

    /// Runs the handlers; set its watermarks and ``AsyncRequestRunner/onHandlerFailure`` here.
    public let runner: AsyncRequestRunner
    /// Called on the loop thread once per request as it ends (answered, canned or aborted).
    public var onRequestEnded: ((RequestHead, RequestEnd) -> Void)?
    private var routes: [String: [RequestMethod: Route]] = [:]

    /// A router with no routes, running handlers on `executor`. Loop thread only.
    public init(executor: LoopExecutor) {
        runner = AsyncRequestRunner(executor: executor)
    }

    /// Adds (or replaces) the handler of `GET` (and `HEAD`) `path`.
    public func get(_ path: String, onClientAbort: ClientAbortPolicy = .cancel, _ handler: @escaping AsyncHandler) {
        on(.get, path, onClientAbort: onClientAbort, handler)
    }

    /// Adds (or replaces) the handler of `POST` `path`.
    public func post(_ path: String, onClientAbort: ClientAbortPolicy = .cancel, _ handler: @escaping AsyncHandler) {
        on(.post, path, onClientAbort: onClientAbort, handler)
    }

    /// Adds (or replaces) the handler of `method` `path` (the path exactly, without the query).
    public func on(_ method: RequestMethod, _ path: String, onClientAbort: ClientAbortPolicy = .cancel,
                   _ handler: @escaping AsyncHandler) {
        runner.executor.thread.preconditionOnThread()
        routes[path, default: [:]][method] = Route(policy: onClientAbort, handler: handler)
    }

    // MARK: LoopResponder

    /// The client's `X-Request-Id`, else the request's number.
    public func requestID(number: UInt64, clientValue: String?) -> String {
        clientValue ?? "\(number)"
    }

    /// Finds the route and starts its handler, or answers `404`/`405`.
    public func handle(_ request: LoopRequest) {
        guard let methods = routes[request.path] else {
            request.respond(status: 404, body: "404 page not found\n")
            return
        }
        let method = request.method == .head && methods[.head] == nil ? .get : request.method
        guard let route = methods[method] else {
            var allowed = methods.keys.map(\.rawValue)
            if methods[.get] != nil && methods[.head] == nil { allowed.append("HEAD") }
            request.respond(status: 405, headers: [("Allow", allowed.sorted().joined(separator: ", "))],
                            body: "method not allowed\n")
            return
        }
        runner.run(request, onClientAbort: route.policy, handler: route.handler)
    }

    /// Cancels an aborted request's handler, then tells ``onRequestEnded``.
    public func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        runner.requestEnded(head, end)
        onRequestEnded?(head, end)
    }
}
