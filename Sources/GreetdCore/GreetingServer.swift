import GoContext
import Libevent
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The greeting server of the seed, on one libevent loop.
///
/// Routes: `GET /` and `HEAD /` greet (see ``Greeting``); other methods on `/` get `405`; other
/// paths `404`. Each request gets an id, carried by every log line about it.
///
/// Ownership: the server owns its ``HTTPServer`` (and through it every listener and connection)
/// and every in-flight ``Greeting``. ``shutdown()`` frees them; it must run before the
/// ``EventBase`` goes. The base is the caller's.
///
/// Threading: loop-confined. Create it on the loop thread; ``RunningServer`` does all that on a
/// thread of its own.
public final class GreetingServer {
    /// The loop everything runs on.
    public let base: EventBase
    /// Counters for tests and metrics, readable from any thread.
    public let stats: GreetdStats
    let configuration: GreetdConfiguration
    let logger: Logger
    private var http: HTTPServer?
    private var inFlight: [UInt64: Greeting] = [:]
    private var nextRequestID: UInt64 = 0

    /// Binds every address of `configuration.host` and starts accepting on `base`.
    ///
    /// Ignores `SIGPIPE` for the whole process: libevent writes with `writev`, and a client that
    /// has gone would otherwise kill the process on the next reply.
    /// - Throws: ``ConfigurationError`` for inconsistent values, ``LibeventError`` when an address
    ///   cannot be bound (the message names it and the reason).
    public init(configuration: GreetdConfiguration, logger: Logger, base: EventBase) throws {
        try configuration.validate()
        signal(SIGPIPE, SIG_IGN)
        self.base = base
        self.configuration = configuration
        self.logger = logger
        self.stats = GreetdStats(libevent: base.counters)
        let http = try HTTPServer(base: base, options: configuration.http) { [unowned self] request in
            self.route(request)
        }
        do {
            try http.bind(host: configuration.host, port: configuration.port)
        } catch {
            http.close()
            throw error
        }
        self.http = http
    }

    deinit {
        precondition(http == nil, "GreetingServer dropped without shutdown()")
    }

    /// Where the server listens, with real ports.
    public var addresses: [SocketAddress] { http?.addresses ?? [] }

    /// Frees the HTTP server: listeners close, connections close, and every greeting still
    /// thinking is cancelled (it logs its context error). Safe to call twice.
    public func shutdown() {
        base.thread.preconditionOnThread()
        guard let http else { return }
        self.http = nil
        http.close()
        // Greetings whose connection evhttp freed ended through their close callback; any that
        // were not watched yet (none in practice) end here.
        for greeting in inFlight.values { greeting.cancel() }
        precondition(inFlight.isEmpty, "greetings left after shutdown")
    }

    // MARK: - Requests

    private func route(_ request: HTTPRequest) {
        nextRequestID &+= 1
        let id = nextRequestID
        var logger = self.logger
        logger[metadataKey: requestIDKey] = "\(id)"
        switch request.path {
        case "/":
            guard request.method == .get || request.method == .head else {
                request.respond(status: 405, headers: [("Allow", "GET, HEAD"), requestIDHeader(id)],
                                body: "method \(request.method.rawValue) not allowed on /; use GET\n")
                return
            }
            startGreeting(request, id: id, logger: logger)
        default:
            request.respond(status: 404, headers: [requestIDHeader(id)], body: "404 page not found\n")
        }
    }

    private func startGreeting(_ request: HTTPRequest, id: UInt64, logger: Logger) {
        let delay: GoDuration
        switch greetingDelay(request) {
        case .success(let value): delay = value
        case .failure(let problem):
            logger.debug("Bad request", metadata: ["problem": "\(problem)"])
            request.respond(status: 400, headers: [requestIDHeader(id)], body: "\(problem)\n")
            return
        }
        let greeting = Greeting(id: id, request: request, delay: delay, server: self, logger: logger)
        inFlight[id] = greeting
        greeting.start()
    }

    /// The delay asked for with `?delay=`, capped at the server's maximum; the default without one.
    private func greetingDelay(_ request: HTTPRequest) -> Result<GoDuration, QueryProblem> {
        guard let items = request.queryItems() else {
            return .failure(.malformedQuery(request.query ?? ""))
        }
        guard let text = items.first(where: { $0.name == "delay" })?.value else {
            return .success(configuration.delay)
        }
        let value: GoDuration
        do {
            value = try GoDuration(parsing: text)
        } catch {
            return .failure(.badDelay(text, error))
        }
        if value.nanoseconds < 0 { return .failure(.negativeDelay(text)) }
        return .success(min(value, configuration.maxDelay))
    }

    // MARK: - Called by greetings

    var greetingLogger: Logger { logger }

    func greetingStarted() {
        stats.started.bump()
        stats.inFlight.bump()
    }

    func greetingFinished(_ greeting: Greeting, outcome: Greeting.Outcome) {
        inFlight[greeting.id] = nil
        stats.inFlight.bump(-1)
        switch outcome {
        case .completed: stats.completed.bump()
        case .canceled: stats.canceled.bump()
        case .failed: break
        }
    }
}

/// `X-Request-Id`, the id every log line about the request carries.
func requestIDHeader(_ id: UInt64) -> (String, String) { ("X-Request-Id", "\(id)") }

/// What is wrong with a request's query, in words for the `400` body.
enum QueryProblem: Error, CustomStringConvertible {
    case malformedQuery(String)
    case badDelay(String, DurationParseError)
    case negativeDelay(String)

    var description: String {
        switch self {
        case .malformedQuery(let query):
            return "invalid query string \(goQuote(query))"
        case .badDelay(let text, let error):
            return "invalid delay \(goQuote(text)): \(error)"
        case .negativeDelay(let text):
            return "invalid delay \(goQuote(text)): must not be negative"
        }
    }
}
