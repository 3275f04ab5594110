import GreetdCore
import EventHTTPCore
import Testing
import TestSupport
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which libevent backend a test runs under.
enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// libevent's choice: epoll here, with EV_CLOSED.
    case automatic
    /// select: no early-close support, the fallback path.
    case select

    var avoid: [String] { self == .select ? ["epoll", "poll"] : [] }
    var description: String { rawValue }
}

let contextCanceled = "Context Error: context canceled"
let thinking = "Greetings are hard. Thinking..."

/// A real greetd server on its own loop thread, on 127.0.0.1 and an ephemeral port, logging
/// into memory.
final class Harness {
    let server: GreetdService
    let logs = LogRecorder()
    let baselineEvents: Int

    init(delay: String = "100ms", tick: String = "20ms", backend: Backend = .automatic, workers: Int = 1,
         configure: (inout GreetdConfiguration) -> Void = { _ in }) throws {
        var configuration = GreetdConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.delay = try GoDuration(parsing: delay)
        configuration.tick = try GoDuration(parsing: tick)
        configuration.avoidBackends = backend.avoid
        configuration.workers = workers
        configure(&configuration)
        server = try GreetdService.start(configuration: configuration, logger: logs.logger())
        baselineEvents = server.workers[0].stats.libevent.liveEvents.load(ordering: .relaxed)
    }

    /// The first worker's counters (tests run one worker unless they say otherwise).
    var stats: GreetdStats { server.workers[0].stats }
    var port: UInt16 { server.port }

    func connect() throws -> LoopbackConnection { try LoopbackConnection(port: port) }

    /// Returns once the (first) worker has run a full loop turn after this call: a request on a
    /// new connection is answered. Bytes sent earlier on other connections have been read by
    /// then (the loop handles every ready socket in a turn), so tests need no sleep to order them.
    func barrier() async throws {
        let client = try connect()
        try client.sendGet("/healthz")
        _ = try await client.readResponse()
    }

    /// Returns once the (first) worker's loop has run its timers for at least `milliseconds`
    /// after this call: a greeting of that delay, on a new connection, has been answered. A test
    /// that checks that something does *not* happen (a tick after a cancel) gives it this long,
    /// measured by the loop itself: a sleep proves nothing on a loaded machine, where the loop
    /// thread may not run during it. Adds one completed greeting to the stats and the log.
    func loopRunsTimers(forMilliseconds milliseconds: Int) async throws {
        let client = try connect()
        try client.sendGet("/?delay=\(milliseconds)ms")
        let response = try await client.readResponse()
        guard response.status == 200 else { throw TestFailure("probe greeting got \(response.statusLine)") }
    }

    /// Request id of the `n`-th greeting started (1-based), once it has logged.
    func startedRequestID(_ n: Int = 1) async throws -> String {
        try await eventually("greeting \(n) started") { logs.requestIDs(logging: "Handling greeting request").count >= n }
        return logs.requestIDs(logging: "Handling greeting request")[n - 1]
    }

    /// Everything a request held is gone: no greeting thinking, no request object, no event
    /// beyond the server's own and one read deadline per connection still open (idle).
    /// With `connectionsClosed`, every connection must be gone too.
    func expectNothingLeft(connectionsClosed: Bool = false) async throws {
        try await eventually("in-flight back to zero and every handle freed") {
            let connections = stats.libevent.liveConnections.load(ordering: .relaxed)
            return stats.inFlight.load(ordering: .relaxed) == 0
                && stats.liveGreetings.load(ordering: .relaxed) == 0
                && stats.libevent.liveRequests.load(ordering: .relaxed) == 0
                && stats.libevent.liveEvents.load(ordering: .relaxed) == baselineEvents + connections
                && (!connectionsClosed || connections == 0)
        }
    }

    /// No thinking line for `id` after its context error.
    func expectNoTickAfterCancel(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let messages = logs.messages(request: id)
        guard let cancelIndex = messages.firstIndex(of: contextCanceled) else {
            Issue.record("request \(id) logged no context error", sourceLocation: sourceLocation)
            return
        }
        #expect(!messages[cancelIndex...].contains(thinking), "tick after cancel for \(id): \(messages)", sourceLocation: sourceLocation)
        #expect(messages.filter { $0 == contextCanceled }.count == 1, "one context error for \(id)", sourceLocation: sourceLocation)
    }

    deinit {
        server.stop()
    }
}
