import EventHTTPSystem
import EventHTTPCore
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that shapes a greetd service. The defaults are the seed's (port 8080, a five-second
/// greeting that thinks once a second) plus production limits.
public struct GreetdConfiguration: Sendable {
    /// Host to listen on. `localhost` means every loopback address it resolves to (`127.0.0.1`
    /// and `::1`), so `curl localhost:8080` works whichever one curl tries first.
    public var host = "localhost"
    /// More hosts to listen on, each as ``host`` is read (`--host` given again): every worker
    /// listens on all of them, on the same port.
    public var additionalHosts: [String] = []
    /// TCP port; `0` picks a free one (tests).
    public var port: UInt16 = 8080
    /// How long a greeting thinks before it answers.
    public var delay: GoDuration = .seconds(5)
    /// How often it logs `Greetings are hard. Thinking...` while it thinks.
    public var tick: GoDuration = .seconds(1)
    /// The most a client may ask for with `?delay=`; larger values are capped to it.
    public var maxDelay: GoDuration = .seconds(60)
    /// Deadline for every greeting (`context deadline exceeded`, `503`); `nil`: none. A client's
    /// `?timeout=` may shorten it, never lengthen it.
    public var timeout: GoDuration?
    /// On `SIGTERM`, how long greetings in flight may go on before they are cancelled.
    public var shutdownTimeout: GoDuration = .seconds(10)
    /// After the shutdown budget, how long the `503`s have to reach their clients before the
    /// remaining connections are dropped.
    public var shutdownGrace: GoDuration = .seconds(2)
    /// Event loops (threads), each with its own `event_base` and `evhttp`, sharing the port
    /// through `SO_REUSEPORT`.
    public var workers: Int = GreetdConfiguration.coreCount
    /// Which limit chose ``workers`` (the start line's `workers_from=`): ``WorkerCount/detect(flag:)``'s.
    public var workersFrom: WorkerCount.Source = .flag
    /// evhttp limits: header and body size, pipelined bytes, backlog, connections, read timeouts.
    public var http = HTTPServerOptions()
    /// libevent backends to skip, e.g. `["epoll", "poll"]` for `select`. The environment
    /// (`EVENT_NOEPOLL=1`, ...) is honoured as well.
    public var avoidBackends: [String] = []

    /// The defaults described on each property.
    public init() {}

    /// Online processors, at least 1.
    public static var coreCount: Int { ProcessResources.onlineProcessorCount }

    /// Every host to listen on: ``host``, then ``additionalHosts``, each once. Setting it sets
    /// both (an empty list leaves ``host`` as it is).
    public var hosts: [String] {
        get {
            var all: [String] = []
            for name in [host] + additionalHosts where !all.contains(name) { all.append(name) }
            return all
        }
        set {
            guard let first = newValue.first else { return }
            host = first
            additionalHosts = Array(newValue.dropFirst())
        }
    }

    /// The largest `--max-header-bytes`: 16 MiB, far above any real request head.
    public static let maxHeaderBytesLimit = 16 * 1024 * 1024
    /// The largest `--max-body-bytes`: 1 GiB (a greeting reads no body; the limit guards memory).
    public static let maxBodyBytesLimit = 1024 * 1024 * 1024
    /// The largest `--pipeline-limit`: 16 MiB of pipelined bytes per connection.
    public static let pipelineLimitLimit = 16 * 1024 * 1024
    /// The largest `--max-connections`: 1,000,000.
    public static let maxConnectionsLimit = 1_000_000

    /// Why an empty ``host`` is refused, and how to ask for every interface: what
    /// ``validate()`` throws and the `greetd` command line prints.
    public static let emptyHostMessage = "--host is empty; to listen on every interface, ask for it: --host 0.0.0.0 (every IPv4 interface) or --host :: (every IPv6 interface)"

    /// Checks the values against each other.
    public func validate() throws(ConfigurationError) {
        // getaddrinfo() reads an empty host as "every interface" (AI_PASSIVE): a typo or an unset
        // variable must not expose the server, whether the value came from the CLI or from code.
        guard hosts.allSatisfy({ !$0.isEmpty }) else { throw .invalid(Self.emptyHostMessage) }
        guard tick.nanoseconds > 0 else { throw .invalid("tick must be positive, got \(tick)") }
        guard tick.nanoseconds >= 1_000 else { throw .invalid("tick must be at least 1µs (libevent timers have microsecond resolution), got \(tick)") }
        guard delay.nanoseconds >= 0 else { throw .invalid("delay must not be negative, got \(delay)") }
        guard maxDelay.nanoseconds >= 0 else { throw .invalid("max-delay must not be negative, got \(maxDelay)") }
        guard delay <= maxDelay else { throw .invalid("delay \(delay) is above max-delay \(maxDelay)") }
        if let timeout, timeout.nanoseconds <= 0 { throw .invalid("timeout must be positive (or 0 for none), got \(timeout)") }
        guard shutdownTimeout.nanoseconds >= 0 else { throw .invalid("shutdown-timeout must not be negative, got \(shutdownTimeout)") }
        guard (1...256).contains(workers) else { throw .invalid("workers must be between 1 and 256, got \(workers)") }
        guard http.maxHeaderBytes >= 256 else { throw .invalid("max-header-bytes must be at least 256, got \(http.maxHeaderBytes)") }
        guard http.maxBodyBytes >= 0 else { throw .invalid("max-body-bytes must not be negative, got \(http.maxBodyBytes)") }
        guard http.maxConnections >= 1 else { throw .invalid("max-connections must be at least 1, got \(http.maxConnections)") }
        guard http.pipelineLimit >= 1 else { throw .invalid("pipeline-limit must be positive, got \(http.pipelineLimit)") }
        // Upper bounds: a typo (`--max-header-bytes 1000000000000`) must not pass for a limit.
        guard http.maxHeaderBytes <= Self.maxHeaderBytesLimit else {
            throw .invalid("max-header-bytes must be at most \(Self.maxHeaderBytesLimit) (16 MiB), got \(http.maxHeaderBytes)")
        }
        guard http.maxBodyBytes <= Self.maxBodyBytesLimit else {
            throw .invalid("max-body-bytes must be at most \(Self.maxBodyBytesLimit) (1 GiB), got \(http.maxBodyBytes)")
        }
        guard http.pipelineLimit <= Self.pipelineLimitLimit else {
            throw .invalid("pipeline-limit must be at most \(Self.pipelineLimitLimit) (16 MiB), got \(http.pipelineLimit)")
        }
        guard http.maxConnections <= Self.maxConnectionsLimit else {
            throw .invalid("max-connections must be at most \(Self.maxConnectionsLimit) (1,000,000), got \(http.maxConnections)")
        }
    }
}

/// A configuration that cannot work, with a message naming the values at fault.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A value, or a combination of values, greetd cannot run with; the message names them.
    case invalid(String)

    /// The message alone, as the CLI prints it.
    public var description: String {
        switch self {
        case .invalid(let message): return message
        }
    }
}
