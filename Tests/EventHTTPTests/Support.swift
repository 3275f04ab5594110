import EventHTTP
import Foundation
import EventHTTPSystem
import Logging
import Synchronization
@_exported import TestSupport

/// Events recorded by handlers (on the loop) and waited for by tests (anywhere): the tests
/// order themselves on these, never on time. Each wait has a deadline, so a broken test fails.
final class Probe: Sendable {
    private struct Waiter {
        let id: Int
        let event: String
        let count: Int
        let continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var events: [String] = []
        var waiters: [Waiter] = []
        var nextID = 0
    }
    private let state = Lock(State())

    func record(_ event: String) {
        let due: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            state.events.append(event)
            let counts = state.events.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            let (ready, rest) = (state.waiters.filter { counts[$0.event, default: 0] >= $0.count },
                                 state.waiters.filter { counts[$0.event, default: 0] < $0.count })
            state.waiters = rest
            return ready.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    func count(_ event: String) -> Int { state.withLock { $0.events.filter { $0 == event }.count } }
    func events(prefix: String) -> [String] { state.withLock { $0.events.filter { $0.hasPrefix(prefix) } } }

    /// Waits until `event` has been recorded `count` times.
    func wait(for event: String, count: Int = 1, timeout: Duration = .seconds(20)) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let id: Int? = state.withLock { state in
                if state.events.filter({ $0 == event }).count >= count { return nil }
                state.nextID += 1
                state.waiters.append(Waiter(id: state.nextID, event: event, count: count, continuation: continuation))
                return state.nextID
            }
            guard let id else { return continuation.resume() }
            Task {
                try? await Task.sleep(for: timeout)
                let expired = self.state.withLock { state -> Waiter? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                expired?.continuation.resume(throwing: TestFailure("no \(event.debugDescription) x\(count) within \(timeout)"))
            }
        }
    }
}

/// One ``EventHTTPLoop`` (the per-loop half of the front door) on its own thread, serving a
/// ``Router`` on 127.0.0.1 port 0, for tests that look inside a loop: its access log (every
/// request end is recorded as `end <id> <end>`), its handler failures (recorded as
/// `failure <id> <failure>` from the loop's log), its counters and its executor.
///
/// Requests are named by the client's `X-Request-Id` (`.trustClient`), so tests can find them.
final class LiveLoop: Sendable {
    let port: UInt16
    let executor: LoopExecutor
    let counters: LibeventCounters
    let probe: Probe
    private let finished = Lock<CheckedContinuation<Void, Never>?>(nil)
    private let stopped = Atomic<Bool>(false)
    /// Run on the loop thread: begins the loop's graceful shutdown.
    private let stopRequest: @Sendable () -> Void

    private init(port: UInt16, executor: LoopExecutor, counters: LibeventCounters, probe: Probe, stop: @escaping @Sendable () -> Void) {
        self.port = port
        self.executor = executor
        self.counters = counters
        self.probe = probe
        self.stopRequest = stop
    }

    /// Starts the loop; `configure` adds routes (before the router is frozen).
    static func start(transport: HTTPServerOptions = .init(),
                      configure: @escaping @Sendable (Router, Probe) -> Void) async throws -> LiveLoop {
        let probe = Probe()
        let router = Router()
        configure(router, probe)
        router.freeze()
        let configuration = {
            var configuration = EventHTTPServer.Configuration.frontDoorTest
            configuration.requestIDs = .trustClient
            return configuration
        }()
        let done = Lock<LiveLoop?>(nil)
        // ThreadSanitizer does not see the happens-before a continuation's resume gives (the
        // concurrency runtime is not instrumented): hand the object over under a pthread lock it
        // does see, taken by the loop thread before the resume and by this task after it.
        let handoff = Lock<Int>(0)
        let startedLiveLoop: LiveLoop = try await withCheckedThrowingContinuation { (started: CheckedContinuation<LiveLoop, any Error>) in
            Thread.detachNewThread {
                do {
                    let base = try EventBase()
                    // The observer is held weakly by the loop: this thread keeps it.
                    let observer = EndRecorder(probe: probe)
                    let logger = Logger(label: "LiveLoop") { _ in recordFailures(into: probe) }
                    let loop = try EventHTTPLoop(base: base, configuration: configuration, transport: transport,
                                                 router: router, logger: logger, observer: observer)
                    let held = Held(loop: loop, base: base)
                    do {
                        try loop.listen(host: "127.0.0.1", port: 0)
                    } catch {
                        held.finish()
                        throw error
                    }
                    let live = LiveLoop(port: loop.addresses[0].port, executor: loop.executor, counters: base.counters,
                                        probe: probe) { held.beginDrain() }
                    done.withLock { $0 = live }
                    handoff.withLock { _ in }
                    started.resume(returning: live)
                    try base.run()
                    held.finish()
                    withExtendedLifetime(observer) {}
                } catch {
                    if done.withLock({ $0 }) == nil { started.resume(throwing: error) }
                    probe.record("loop threw \(error)")
                }
                if let loop = done.withLock({ $0 }) {
                    loop.stopped.store(true, ordering: .releasing)
                    loop.finished.withLock { $0 }?.resume()
                }
            }
        }
        handoff.withLock { _ in }
        return startedLiveLoop
    }

    /// Runs `body` on the loop thread and returns its result.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            executor.execute { continuation.resume(returning: body()) }
        }
    }

    /// Begins the loop's graceful shutdown (listeners and idle connections closed, handlers in
    /// flight go on within the grace), and waits until the loop has stopped and its thread freed
    /// everything.
    func stop() async {
        executor.execute(stopRequest)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let already = finished.withLock { slot -> Bool in
                if stopped.load(ordering: .acquiring) { return true }
                slot = continuation
                return false
            }
            if already { continuation.resume() }
        }
    }
}

/// Records every request end in the probe, as `end <id> aborted <why>` or `end <id> <status> <bytes>`.
private final class EndRecorder: LoopObserver {
    let probe: Probe
    init(probe: Probe) { self.probe = probe }

    func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        switch end {
        case .aborted(let reason): probe.record("end \(head.id) aborted \(reason)")
        case .responded(let status, let bytes): probe.record("end \(head.id) \(status) \(bytes)")
        }
        probe.record("end")
    }
}

/// Records the loop's `handler failed: ...` lines as `failure <id> <what>`: that log line is how
/// the loop reports a handler's failure.
private func recordFailures(into probe: Probe) -> CapturingLogHandler {
    CapturingLogHandler { record in
        guard record.message.hasPrefix("handler failed: ") else { return }
        let id = record.metadata["request_id"].map { "\($0)" } ?? "-"
        probe.record("failure \(id) \(record.message.dropFirst("handler failed: ".count))")
    }
}

/// The loop's objects, reachable from the stop request and released on the loop thread.
/// `@unchecked Sendable`: touched only on the loop thread (the stop request runs there through
/// `executor.execute`; `finish` after the base's loop returned), checked by preconditions.
private final class Held: @unchecked Sendable {
    private var loop: EventHTTPLoop?
    private var base: EventBase?
    private let thread: LoopThread

    init(loop: EventHTTPLoop, base: EventBase) {
        self.thread = base.thread
        self.loop = loop
        self.base = base
    }

    func beginDrain() {
        thread.preconditionOnThread()
        loop?.beginDrain()
    }

    /// After the base's loop returned: frees the transport, ends the executor, then drops the
    /// loop and last the base, all on the loop's own thread (their events must be freed there).
    func finish() {
        thread.preconditionOnThread()
        loop?.forceStop()
        loop?.shutdownExecutor()
        loop = nil
        base = nil
    }
}

/// Reads `connection` until its bytes contain `needle`; returns everything read so far.
func read(_ connection: LoopbackConnection, until needle: String, after previous: String = "",
          timeout: Duration = .seconds(10)) async throws -> String {
    let fd = connection.fd
    return try await offCooperativePool {
        var text = previous
        let deadline = ContinuousClock.now + timeout
        while !text.contains(needle) {
            switch receive(fd, until: deadline) {
            case .success(let bytes): text += String(decoding: bytes, as: UTF8.self)
            case .failure(let end): throw TestFailure("\(end) before \(needle.debugDescription); got \(text.debugDescription)")
            }
        }
        return text
    }
}
