import Libevent

/// Where a request goes, decided from its method and path alone.
enum Route: Equatable {
    /// `GET /`, `HEAD /`: a ``Greeting``.
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
    func route(_ method: HTTPMethod, _ path: String) -> Route {
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
    static func methodNotAllowedBody(_ method: HTTPMethod, path: String) -> String {
        method == .other ? "method not allowed on \(path); use GET\n"
            : "method \(method.rawValue) not allowed on \(path); use GET\n"
    }
}

/// A greeting's `?delay=` and `?timeout=`, checked against the configuration.
struct GreetingParameters {
    /// How long to think: `?delay=` (capped at `maxDelay`), else the configured delay.
    var delay: GoDuration
    /// The deadline: the shorter of `?timeout=` and the configured timeout; `nil`: none.
    var timeout: GoDuration?
    /// What the client asked for when `?delay=` was above `maxDelay` (and was capped to it).
    var cappedFrom: GoDuration?

    /// Reads the parameters of `request`.
    /// - Throws: ``QueryProblem`` for a malformed query, a bad duration or a negative one.
    init(_ request: HTTPRequest, configuration: GreetdConfiguration) throws(QueryProblem) {
        guard let items = request.queryItems() else { throw .malformedQuery(request.query ?? "") }
        delay = configuration.delay
        timeout = configuration.timeout
        if let text = items.first(where: { $0.name == "delay" })?.value {
            let asked = try Self.parse("delay", text)
            delay = min(asked, configuration.maxDelay)
            if asked > configuration.maxDelay { cappedFrom = asked }
        }
        if let text = items.first(where: { $0.name == "timeout" })?.value {
            let asked = try Self.parse("timeout", text)
            timeout = timeout.map { min($0, asked) } ?? asked
        }
    }

    private static func parse(_ name: String, _ text: String) throws(QueryProblem) -> GoDuration {
        let value: GoDuration
        do {
            value = try GoDuration(parsing: text)
        } catch {
            throw .badDuration(name, text, error)
        }
        if value.nanoseconds < 0 { throw .negative(name, text) }
        return value
    }
}
