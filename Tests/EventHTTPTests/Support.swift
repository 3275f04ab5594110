import EventHTTP
import Foundation
import EventHTTPSystem
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

/// A loop thread running an ``AsyncRouter`` behind an ``LoopHTTPServer`` on 127.0.0.1, for async tests.
final class LiveLoop: Sendable {
    let port: UInt16
    let executor: LoopExecutor
    let counters: LibeventCounters
    let probe: Probe
    private let finished = Lock<CheckedContinuation<Void, Never>?>(nil)
    private let stopped = Atomic<Bool>(false)
    /// Set on the loop thread: asks the loop to close and exit.
    private let stopRequest: @Sendable () -> Void

    private init(port: UInt16, executor: LoopExecutor, counters: LibeventCounters, probe: Probe, stop: @escaping @Sendable () -> Void) {
        self.port = port
        self.executor = executor
        self.counters = counters
        self.probe = probe
        self.stopRequest = stop
    }

    /// Starts the loop; `configure` adds routes on the loop thread. Every request end is
    /// recorded as `end <id> <end>`, every handler failure as `failure <id> <failure>`.
    static func start(avoiding: [String] = [], options: HTTPServerOptions = .init(),
                      configure: @escaping @Sendable (AsyncRouter, Probe) -> Void) async throws -> LiveLoop {
        let probe = Probe()
        let done = Lock<LiveLoop?>(nil)
        // ThreadSanitizer does not see the happens-before a continuation's resume gives (the
        // concurrency runtime is not instrumented): hand the object over under a pthread lock it
        // does see, taken by the loop thread before the resume and by this task after it.
        let handoff = Lock<Int>(0)
        let startedLiveLoop: LiveLoop = try await withCheckedThrowingContinuation { (started: CheckedContinuation<LiveLoop, any Error>) in
            Thread.detachNewThread {
                do {
                    let base = try EventBase(avoiding: avoiding)
                    let executor = try LoopExecutor(base: base)
                    let router = AsyncRouter(executor: executor)
                    router.onRequestEnded = { head, end in
                        switch end {
                        case .aborted(let reason): probe.record("end \(head.id) aborted \(reason)")
                        case .responded(let status, let bytes): probe.record("end \(head.id) \(status) \(bytes)")
                        }
                        probe.record("end")
                    }
                    router.runner.onHandlerFailure = { head, failure in probe.record("failure \(head.id) \(failure)") }
                    configure(router, probe)
                    let server = try LoopHTTPServer(base: base, options: options, responder: router)
                    let port = try server.bind(host: "127.0.0.1", port: 0)[0].port
                    let held = Held(server: server, router: router, base: base)
                    let loop = LiveLoop(port: port, executor: executor, counters: base.counters, probe: probe) {
                        held.stop()
                    }
                    done.withLock { $0 = loop }
                    handoff.withLock { _ in }
                    started.resume(returning: loop)
                    try base.run()
                    held.release()
                    executor.shutdown()
                    held.releaseBase()
                } catch {
                    started.resume(throwing: error)
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

    /// Closes the server (aborting what is pending), waits for the handlers to end, stops the
    /// loop, and waits for its thread to finish.
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

/// The loop's objects, reachable from the stop request and released on the loop thread.
/// `@unchecked Sendable`: touched only on the loop thread (the stop request runs there through
/// `executor.execute`; `release` after the loop returns), checked by preconditions.
private final class Held: @unchecked Sendable {
    var server: LoopHTTPServer?
    var router: AsyncRouter?
    private var base: EventBase?
    private let thread: LoopThread

    init(server: LoopHTTPServer, router: AsyncRouter, base: EventBase) {
        self.thread = base.thread
        self.server = server
        self.router = router
        self.base = base
    }

    func stop() {
        thread.preconditionOnThread()
        server?.close()
        let exit: () -> Void = { [base] in base?.exit() }
        if let runner = router?.runner, runner.runningCount > 0 { runner.onIdle = exit } else { exit() }
    }

    func release() {
        thread.preconditionOnThread()
        server = nil
        router = nil
    }

    /// Last, after the executor's shutdown: the base goes on its own thread.
    func releaseBase() {
        thread.preconditionOnThread()
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
