import Libevent

/// Everything that shapes one greetd server. The defaults are the seed's: port 8080, a five-second
/// greeting that thinks once a second.
public struct GreetdConfiguration: Sendable {
    /// Host to listen on. `localhost` means every loopback address it resolves to (`127.0.0.1`
    /// and `::1`), so `curl localhost:8080` works whichever one curl tries first.
    public var host = "localhost"
    /// TCP port; `0` picks a free one (tests).
    public var port: UInt16 = 8080
    /// How long a greeting thinks before it answers.
    public var delay: GoDuration = .seconds(5)
    /// How often it logs `Greetings are hard. Thinking...` while it thinks.
    public var tick: GoDuration = .seconds(1)
    /// The most a client may ask for with `?delay=`; larger values are capped to it.
    public var maxDelay: GoDuration = .seconds(60)
    /// evhttp limits (header size, body size, pipelined bytes, backlog).
    public var http = HTTPServerOptions()
    /// libevent backends to skip, e.g. `["epoll", "poll"]` for `select`. The environment
    /// (`EVENT_NOEPOLL=1`, ...) is honoured as well.
    public var avoidBackends: [String] = []

    public init() {}

    /// Checks the values against each other.
    public func validate() throws(ConfigurationError) {
        guard tick.nanoseconds > 0 else { throw .invalid("tick must be positive, got \(tick)") }
        guard tick.nanoseconds >= 1_000 else { throw .invalid("tick must be at least 1µs (libevent timers have microsecond resolution), got \(tick)") }
        guard delay.nanoseconds >= 0 else { throw .invalid("delay must not be negative, got \(delay)") }
        guard maxDelay.nanoseconds >= 0 else { throw .invalid("max-delay must not be negative, got \(maxDelay)") }
        guard delay <= maxDelay else { throw .invalid("delay \(delay) is above max-delay \(maxDelay)") }
        guard http.maxHeaderBytes >= 256 else { throw .invalid("max-header-bytes must be at least 256, got \(http.maxHeaderBytes)") }
    }
}

/// A configuration that cannot work, with a message naming the values at fault.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): return message
        }
    }
}
