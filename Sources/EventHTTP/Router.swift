public import EventHTTPCore
public import HTTPTypes
import EventHTTPSystem
import Synchronization

/// An async handler after its result became a ``Response``.
public typealias Responder = @Sendable (Request, RequestContext) async throws -> Response

/// A callback-style handler: runs on the loop thread as the request arrives, with the
/// transport's `LoopRequest`, and answers it (now or later, from a timer) itself. For work
/// that is not `async`: greetd's greeting is a repeating loop timer that the connection's close
/// callback cancels. Middleware does not run for it.
public typealias LoopHandler = @Sendable (LoopExchange) -> Void

/// What a ``LoopHandler`` gets.
public struct LoopExchange {
    /// The request, pending: answer it with `LoopRequest.respond(status:reason:headers:body:)`
    /// or keep it with `LoopRequest.watchForAbort()` and answer later.
    public let request: LoopRequest
    /// The route's captures.
    public let parameters: Parameters
    /// The matched pattern.
    public let route: String
    /// The loop's executor (its thread is the request's).
    public var executor: LoopExecutor { loop.executor }
    /// The loop's number among the server's loops, from 0.
    public var loopIndex: Int { loop.index }
    /// The loop's ``LoopObserver``, if the application gave one: its per-loop state.
    public var observer: (any LoopObserver)? { loop.loopObserver }

    /// The loop's observer as the application's own type, without a dynamic cast on the hot
    /// path (checked in debug builds). The observer must exist and be a `T`.
    public func observer<T: LoopObserver>(as type: T.Type) -> T {
        assert(observer is T, "LoopExchange.observer(as:): the loop's observer is not a \(T.self)")
        return unsafeDowncast(observer.unsafelyUnwrapped as AnyObject, to: T.self)
    }
    unowned let loop: EventHTTPLoop

    /// Hands the request to an async handler: `body` runs as a Task on this loop, cancelled when
    /// the client leaves (unless `onClientAbort` is `.continue`), and answers through the
    /// `AsyncResponse` (whole or streamed). A handler that returns without answering gets `500`.
    public func runTask(onClientAbort: ClientAbortPolicy = .cancel, _ body: @escaping AsyncHandler) {
        loop.runTask(request, onClientAbort: onClientAbort, body)
    }

    /// The loop's phase: a callback-style route decides what to answer while the server drains.
    public var phase: EventHTTPLoop.Phase { loop.phase }
}

/// What a route does: an async responder, or a callback on the loop.
public enum RouteHandler: Sendable {
    /// An async handler, run as a Task on the request's loop, cancelled when the client leaves.
    case async(Responder)
    /// A callback on the loop thread.
    case loop(LoopHandler)
}

/// One route: its pattern, method, handler and options.
///
/// A class, not a struct: a match hands out a reference, with no copy of its fields per request.
public final class Route: Sendable {
    /// The pattern as registered (with its group's prefix).
    public let pattern: String
    /// The method.
    public let method: HTTPRequest.Method
    /// The handler (with its group's middleware already wrapped around an async one).
    public let handler: RouteHandler
    /// Per-route deadline: the handler's Task is cancelled with
    /// ``CancellationReason/deadlineExceeded`` once it has run this long.
    public let deadline: Duration?
    /// What happens when the client leaves mid-handler.
    public let onClientAbort: ClientAbortPolicy

    /// A route; ``Router/add(_:)`` places it.
    public init(pattern: String, method: HTTPRequest.Method, handler: RouteHandler, deadline: Duration? = nil,
                onClientAbort: ClientAbortPolicy = .cancel) {
        self.pattern = pattern
        self.method = method
        self.handler = handler
        self.deadline = deadline
        self.onClientAbort = onClientAbort
    }
}

/// A router's answer for a method and path.
public enum RouteMatch: Sendable {
    /// The route and its captures.
    case found(Route, Parameters)
    /// The path has routes, none for this method: `405` with `Allow` listing these.
    case methodNotAllowed(allowed: [HTTPRequest.Method])
    /// No route has this path: `404`.
    case notFound
}

/// Anything that maps a method and a path to a route: the server is not tied to ``Router``.
public protocol HTTPRouting: Sendable {
    /// The route for `method` on `path` (undecoded, as sent, without the query).
    func match(method: HTTPRequest.Method, path: String) -> RouteMatch
    /// Middleware run around every async request, matched or not (logging, metrics). Default: none.
    var middleware: [any Middleware] { get }
}

extension HTTPRouting {
    public var middleware: [any Middleware] { [] }
}

/// The router: path patterns in a trie, parsed once.
///
/// - Literal segments (`/v1/models`), captures (`{id}` or `:id`), captures inside a segment
///   (`{name}.zip`, as OpenAPI paths write them), `*` for any one segment, `**` for the rest.
///   Captures are percent-decoded per segment (`tiny%2D1` is `tiny-1`; `%2F` stays inside its
///   segment). A literal beats a capture, a capture beats `*`, `*` beats `**`.
/// - A `GET` route answers `HEAD` too (headers only). A path with routes for other methods
///   answers `405` with `Allow`; an unknown path `404`.
/// - ``group(_:)`` gives a prefix and middleware of its own; ``add(middleware:)`` runs around
///   every request.
///
/// Threading: register routes before the server starts (any one thread at a time); the server
/// freezes the router when it starts, and matching is then lock-free from every loop.
///
/// `@unchecked Sendable`: the trie is mutated only before ``freeze()``, under `lock`, and only
/// read after it (checked: registering after the freeze is a precondition failure).
public final class Router: HTTPRouting, RouterMethods, @unchecked Sendable {
    private let lock = Lock(())
    private let frozen = Atomic<Bool>(false)
    private let root = RouteNode()
    private var globalMiddleware: [any Middleware] = []

    /// An empty router.
    public init() {}

    /// Adds middleware that runs around every async request (routes registered before and
    /// after, `404`s and `405`s too), outermost first.
    @discardableResult
    public func add(middleware: any Middleware) -> Router {
        mutate { globalMiddleware.append(middleware) }
        return self
    }

    public var middleware: [any Middleware] { globalMiddleware }

    /// A group of routes under `prefix` with middleware of its own.
    public func group(_ prefix: String = "") -> RouterGroup {
        RouterGroup(router: self, prefix: prefix, middleware: [])
    }

    /// Adds (or replaces) the route for `method` on `pattern`.
    public func add(_ route: Route) {
        let segments = RoutePattern.parse(route.pattern)
        mutate { root.insert(segments[...], route: route) }
    }

    /// Registers `handler` for `method` on `path` (``RouterMethods`` builds the conveniences on this).
    public func register(_ method: HTTPRequest.Method, _ path: String, handler: RouteHandler,
                         deadline: Duration?, onClientAbort: ClientAbortPolicy) {
        add(Route(pattern: RoutePattern.normalize(path), method: method, handler: handler, deadline: deadline,
                  onClientAbort: onClientAbort))
    }

    /// Ends registration: the server calls this as it starts.
    public func freeze() {
        frozen.store(true, ordering: .releasing)
    }

    public func match(method: HTTPRequest.Method, path: String) -> RouteMatch {
        // Bytes, not Characters: the path is split and compared as UTF-8 (PathSegments), and a
        // String is made only for a captured value.
        var parameters = Parameters()
        var path = path
        let found = path.withUTF8 { raw in
            PathSegments.withSegments(of: raw) { root.find($0, 0, &parameters) }
        }
        guard let node = found else { return .notFound }
        if let route = node.route(for: method) { return .found(route, parameters) }
        if method == .head, let route = node.route(for: .get) { return .found(route, parameters) }
        var allowed = Set(node.methods.map(\.method))
        if allowed.contains(.get) { allowed.insert(.head) }
        return .methodNotAllowed(allowed: allowed.sorted { $0.rawValue < $1.rawValue })
    }

    private func mutate(_ body: () -> Void) {
        precondition(!frozen.load(ordering: .acquiring), "Router: routes and middleware must be added before the server starts")
        lock.withLock { _ in body() }
    }
}

/// Routes under a prefix, with middleware that runs around those routes only.
public struct RouterGroup: RouterMethods, Sendable {
    let router: Router
    let prefix: String
    let middleware: [any Middleware]

    /// A sub-group: the prefixes are joined, the middleware appended (outer group first).
    public func group(_ prefix: String) -> RouterGroup {
        RouterGroup(router: router, prefix: RoutePattern.join(self.prefix, prefix), middleware: middleware)
    }

    /// This group with `middleware` added (innermost last).
    public func add(middleware: any Middleware) -> RouterGroup {
        RouterGroup(router: router, prefix: prefix, middleware: self.middleware + [middleware])
    }

    public func register(_ method: HTTPRequest.Method, _ path: String, handler: RouteHandler,
                         deadline: Duration?, onClientAbort: ClientAbortPolicy) {
        var handler = handler
        if case .async(let responder) = handler, !middleware.isEmpty {
            handler = .async(MiddlewareChain.wrap(responder, in: middleware))
        }
        router.register(method, RoutePattern.join(prefix, path), handler: handler, deadline: deadline, onClientAbort: onClientAbort)
    }
}

/// The registration methods a ``Router`` and a ``RouterGroup`` share.
public protocol RouterMethods {
    /// Registers `handler` for `method` on `path`.
    func register(_ method: HTTPRequest.Method, _ path: String, handler: RouteHandler, deadline: Duration?,
                  onClientAbort: ClientAbortPolicy)
}

extension RouterMethods {
    /// Registers an async handler for `method` on `path`; its result becomes the response.
    /// - Parameters:
    ///   - method: the method (`GET` routes answer `HEAD` too).
    ///   - path: the pattern (literals, `{id}` or `:id`, `{name}.zip`, `*`, `**`).
    ///   - deadline: cancel the handler after this long (``CancellationReason/deadlineExceeded``).
    ///   - onClientAbort: cancel the handler when its client leaves (the default), or let it run.
    ///   - handler: the handler; what it returns (a ``ResponseGenerator``) becomes the response.
    public func on<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method, _ path: String, deadline: Duration? = nil, onClientAbort: ClientAbortPolicy = .cancel,
        _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Output
    ) {
        register(method, path, handler: .async { request, context in
            try await handler(request, context).response(from: request, context: context)
        }, deadline: deadline, onClientAbort: onClientAbort)
    }

    /// `GET` (and `HEAD`) `path`.
    public func get<Output: ResponseGenerator>(_ path: String, deadline: Duration? = nil, onClientAbort: ClientAbortPolicy = .cancel,
                                               _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Output) {
        on(.get, path, deadline: deadline, onClientAbort: onClientAbort, handler)
    }

    /// `POST` `path`.
    public func post<Output: ResponseGenerator>(_ path: String, deadline: Duration? = nil, onClientAbort: ClientAbortPolicy = .cancel,
                                                _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Output) {
        on(.post, path, deadline: deadline, onClientAbort: onClientAbort, handler)
    }

    /// `PUT` `path`.
    public func put<Output: ResponseGenerator>(_ path: String, deadline: Duration? = nil, onClientAbort: ClientAbortPolicy = .cancel,
                                               _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Output) {
        on(.put, path, deadline: deadline, onClientAbort: onClientAbort, handler)
    }

    /// `PATCH` `path`.
    public func patch<Output: ResponseGenerator>(_ path: String, deadline: Duration? = nil, onClientAbort: ClientAbortPolicy = .cancel,
                                                 _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Output) {
        on(.patch, path, deadline: deadline, onClientAbort: onClientAbort, handler)
    }

    /// `DELETE` `path`.
    public func delete<Output: ResponseGenerator>(_ path: String, deadline: Duration? = nil, onClientAbort: ClientAbortPolicy = .cancel,
                                                  _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Output) {
        on(.delete, path, deadline: deadline, onClientAbort: onClientAbort, handler)
    }

    /// A callback-style route on the loop (see ``LoopHandler``) for `method` on `path`.
    public func onLoop(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping LoopHandler) {
        register(method, path, handler: .loop(handler), deadline: nil, onClientAbort: .cancel)
    }
}

/// Path patterns: parsing, joining.
enum RoutePattern {
    enum Segment {
        case literal(String)
        /// `{name}`, `:name`, or `prefix{name}suffix`.
        case capture(prefix: String, name: String, suffix: String)
        case wildcard
        case catchAll
    }

    static func normalize(_ path: String) -> String {
        "/" + path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }

    static func join(_ prefix: String, _ path: String) -> String {
        normalize(prefix + "/" + path)
    }

    static func parse(_ pattern: String) -> [Segment] {
        pattern.split(separator: "/", omittingEmptySubsequences: true).map { part -> Segment in
            if part == "**" { return .catchAll }
            if part == "*" { return .wildcard }
            if part.hasPrefix(":") { return .capture(prefix: "", name: String(part.dropFirst()), suffix: "") }
            if let open = part.firstIndex(of: "{"), let close = part[open...].firstIndex(of: "}") {
                return .capture(prefix: String(part[..<open]), name: String(part[part.index(after: open)..<close]),
                                suffix: String(part[part.index(after: close)...]))
            }
            return .literal(PercentDecoding.decode(part) ?? String(part))
        }
    }
}

