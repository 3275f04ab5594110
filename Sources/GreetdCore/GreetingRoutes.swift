import EventHTTPCore

/// greetd's words for the router's answers (the routes themselves are on the library's
/// `Router`, in ``GreetingServer``).
enum GreetingRoutes {
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
