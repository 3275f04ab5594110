import EventHTTPCore

/// Where a request goes, decided from its method and path alone.
enum Route: Equatable {
    /// `GET /`, `HEAD /`: a greeting (`GreetingKind` says which).
    case greeting
    /// `GET /healthz`, `HEAD /healthz`: `200 ok` while serving, `503` once draining.
    case health
    /// `GET /metrics`, `HEAD /metrics`: Prometheus text.
    case metrics
    /// A known path with another method: `405` with `Allow`.
    case methodNotAllowed(path: String, allow: String)
    /// Any other path: `404`.
    case notFound
}

/// greetd's routes: three paths, each answering `GET` and `HEAD` only.
///
/// A value with no state; the server asks it once per request.
struct Router {
    /// The methods every route allows, as the `Allow` header lists them.
    static let allowed = "GET, HEAD"

    /// The route for `method` on `path`.
    func route(_ method: RequestMethod, _ path: String) -> Route {
        let route: Route
        switch path {
        case "/": route = .greeting
        case "/healthz": route = .health
        case "/metrics": route = .metrics
        default: return .notFound
        }
        guard method == .get || method == .head else {
            return .methodNotAllowed(path: path, allow: Self.allowed)
        }
        return route
    }

    /// The body of a `405`, as Go's reference server words it for `/`.
    static func methodNotAllowedBody(_ method: RequestMethod, path: String) -> String {
        method == .other ? "method not allowed on \(path); use GET\n"
            : "method \(method.rawValue) not allowed on \(path); use GET\n"
    }
}

extension RawGreetingQuery {
    /// Resolves a greeting's `?delay=` and `?timeout=` with `configuration`'s defaults and caps:
    /// the fast path over the raw query (``RawGreetingQuery``), whose results and errors are
    /// those of ``GreetingQuery/resolve(_:delay:maxDelay:timeout:)`` on evhttp's split (the
    /// query fuzzer compares the two).
    /// - Throws: ``QueryProblem`` for a bad duration or a negative one.
    func resolve(_ configuration: GreetdConfiguration) throws(QueryProblem) -> GreetingQuery {
        try resolve(delay: configuration.delay, maxDelay: configuration.maxDelay, timeout: configuration.timeout)
    }
}
