import EventHTTP
import Foundation
import GreetdClient
import EventHTTPSystem
import Synchronization
import Testing

/// ``AsyncHTTPServer``, the one-object server the README's "Embedding" example uses: it answers,
/// an abort cancels the handler's Task, and `stop(reason:)` ends every handler and returns from
/// `run()`.
@Suite struct AsyncHTTPServerTests {
    static let styles: [ClientAbort] = [.fin, .rst, .half]

    /// A handler that awaits slow work on the global executor, then on the loop's timer, answers;
    /// it runs on the loop thread before and after each await.
    @Test func answersAfterSlowWork() async throws {
        let running = try await RunningServer.start { router, probe in
            router.get("/slow") { request, response in
                probe.record("on loop: \(request.executor.thread.isCurrent)")
                try await Task.sleep(for: .milliseconds(20))
                probe.record("on loop after global await: \(request.executor.thread.isCurrent)")
                try await request.executor.sleep(for: .milliseconds(20))
                try response.respond(status: 200, body: "done\n")
            }
        }
        #expect(running.port != 0)
        let client = try LoopbackConnection(port: running.port)
        try client.sendGet("/slow", extraHeaders: "X-Request-Id: n1\r\n")
        let reply = try await client.readResponse()
        #expect(reply.status == 200)
        #expect(reply.body == "done\n")
        #expect(reply.header("X-Request-Id") == "n1")
        #expect(running.probe.count("on loop: true") == 1)
        #expect(running.probe.count("on loop after global await: true") == 1)
        try await running.probe.wait(for: "end n1 200 5")
        try await running.stop()
        #expect(running.probe.events(prefix: "failure").isEmpty)
    }

    /// The client leaves (FIN, RST, half-close) while the handler sleeps on a loop timer: the
    /// Task is cancelled once, the sleep throws `CancellationError`, `defer` runs, and the end is
    /// reported once, as aborted.
    @Test(arguments: styles)
    func anAbortCancelsTheHandler(style: ClientAbort) async throws {
        let running = try await RunningServer.start { router, probe in
            router.get("/slow") { request, response in
                defer { probe.record("defer") }
                probe.record("started")
                await withTaskCancellationHandler {
                    do {
                        try await request.executor.sleep(for: .seconds(60))
                        probe.record("slept")
                    } catch {
                        probe.record("sleep threw \(type(of: error))")
                    }
                } onCancel: {
                    probe.record("cancel")
                }
                probe.record("clientEnd set: \(request.clientEnd != nil)")
            }
        }
        let client = try LoopbackConnection(port: running.port)
        try client.sendGet("/slow", extraHeaders: "X-Request-Id: a1\r\n")
        try await running.probe.wait(for: "started")
        client.abort(style)
        try await running.probe.wait(for: "defer")
        #expect(running.probe.count("cancel") == 1)
        #expect(running.probe.count("sleep threw CancellationError") == 1)
        #expect(running.probe.count("clientEnd set: true") == 1)
        let ends = running.probe.events(prefix: "end a1")
        #expect(ends.count == 1 && ends.first?.contains("aborted") == true, "\(ends)")
        #expect(running.probe.events(prefix: "failure").isEmpty)
        try await running.stop()
    }

    /// `stop(reason:)` with two handlers pending (one on a loop timer, one on the global
    /// executor): both are cancelled and read the reason, the listener closes, the connections
    /// close, and `run()` returns on the loop thread.
    @Test func stopEndsEveryHandlerAndReturnsFromRun() async throws {
        let running = try await RunningServer.start { router, probe in
            router.get("/loop") { request, response in
                defer { probe.record("defer loop") }
                probe.record("started")
                do {
                    try await request.executor.sleep(for: .seconds(60))
                } catch is CancellationError {
                    probe.record("loop cancelled: \(request.shutdownReason ?? "no reason")")
                }
                try response.respond(status: 503, body: "\(request.shutdownReason ?? "?")\n")
            }
            router.get("/global") { request, response in
                defer { probe.record("defer global") }
                probe.record("started")
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch is CancellationError {
                    probe.record("global cancelled: \(request.shutdownReason ?? "no reason")")
                }
                try response.respond(status: 503, body: "\(request.shutdownReason ?? "?")\n")
            }
        }
        let first = try LoopbackConnection(port: running.port)
        try first.sendGet("/loop")
        let second = try LoopbackConnection(port: running.port)
        try second.sendGet("/global")
        try await running.probe.wait(for: "started", count: 2)
        try await running.stop(reason: "test over")
        #expect(running.probe.count("loop cancelled: test over") == 1)
        #expect(running.probe.count("global cancelled: test over") == 1)
        #expect(running.probe.count("defer loop") == 1)
        #expect(running.probe.count("defer global") == 1)
        #expect(running.probe.count("run returned on loop: true") == 1)
        // Each handler's last answer was handed to its connection, and the connection closes.
        #expect(running.probe.events(prefix: "end ").filter { $0.hasSuffix(" 503 10") }.count == 2)
        #expect(running.probe.events(prefix: "failure").isEmpty)
        var received: [String] = []
        for client in [first, second] {
            let (text, end) = await client.readToEnd()
            #expect(end == .closed || end == .reset)
            received.append(text)
        }
        // What `shutdownReason` promises: a last message reaches a client that is still there,
        // because stop() closes a connection only once its answer is written.
        for text in received {
            #expect(text.hasPrefix("HTTP/1.1 503 ") && text.hasSuffix("\r\n\r\ntest over\n"), "\(text.debugDescription)")
        }
        // The listener is gone.
        #expect(throws: (any Error).self) { _ = try LoopbackConnection(port: running.port) }
    }

    /// A second `stop` while the first is under way changes nothing; `run()` returns once.
    @Test func stopTwiceIsHarmless() async throws {
        let running = try await RunningServer.start { router, probe in
            router.get("/loop") { request, response in
                probe.record("started")
                try? await request.executor.sleep(for: .seconds(60))
                probe.record("reason: \(request.shutdownReason ?? "none")")
                try response.respond(status: 503, body: "bye\n")
            }
        }
        let client = try LoopbackConnection(port: running.port)
        try client.sendGet("/loop")
        try await running.probe.wait(for: "started")
        try await running.stop(reason: "first", times: 2, secondReason: "second")
        #expect(running.probe.count("reason: first") == 1)
        #expect(running.probe.count("run returned on loop: true") == 1)
    }
}

/// An ``AsyncHTTPServer`` on port 0 of 127.0.0.1, run on a thread of its own. Every request end
/// is recorded as `end <id> <end>`, every handler failure as `failure <id> <failure>`, and the
/// return from `run()` as `run returned on loop: <bool>`.
private final class RunningServer: Sendable {
    let port: UInt16
    let probe: Probe
    private let executor: LoopExecutor
    private let box: ServerBox
    private let finished = Lock<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    private init(port: UInt16, probe: Probe, executor: LoopExecutor, box: ServerBox) {
        self.port = port
        self.probe = probe
        self.executor = executor
        self.box = box
    }

    /// Creates the server on a new thread, lets `configure` add routes there, and runs it.
    static func start(configure: @escaping @Sendable (AsyncRouter, Probe) -> Void) async throws -> RunningServer {
        let probe = Probe()
        let slot = Lock<RunningServer?>(nil)
        // ThreadSanitizer does not see the happens-before a continuation's resume gives (the
        // concurrency runtime is not instrumented): hand the object over under a pthread lock it
        // does see, taken by the loop thread before the resume and by this task after it.
        let handoff = Lock<Int>(0)
        let startedRunningServer: RunningServer = try await withCheckedThrowingContinuation { (started: CheckedContinuation<RunningServer, any Error>) in
            Thread.detachNewThread {
                do {
                    let server = try AsyncHTTPServer(host: "127.0.0.1", port: 0)
                    server.router.onRequestEnded = { head, end in
                        switch end {
                        case .aborted(let reason): probe.record("end \(head.id) aborted \(reason)")
                        case .responded(let status, let bytes): probe.record("end \(head.id) \(status) \(bytes)")
                        }
                    }
                    server.router.runner.onHandlerFailure = { head, failure in
                        probe.record("failure \(head.id) \(failure)")
                    }
                    configure(server.router, probe)
                    let box = ServerBox(server)
                    let running = RunningServer(port: server.addresses[0].port, probe: probe,
                                                executor: server.executor, box: box)
                    slot.withLock { $0 = running }
                    handoff.withLock { _ in }
                    started.resume(returning: running)
                    defer { box.release() }
                    try server.run()
                    probe.record("run returned on loop: \(server.executor.thread.isCurrent)")
                    #expect(server.executor.isShutDown)
                    #expect(server.base.counters.liveRequests.load(ordering: .relaxed) == 0)
                } catch {
                    if slot.withLock({ $0 }) == nil {
                        started.resume(throwing: error)
                    } else {
                        probe.record("run threw \(error)")
                    }
                }
                if let running = slot.withLock({ $0 }) {
                    let waiter = running.finished.withLock { state in
                        state.done = true
                        return state.waiter
                    }
                    waiter?.resume()
                }
            }
        }
        handoff.withLock { _ in }
        return startedRunningServer
    }

    /// Calls `stop(reason:)` on the loop thread (`times` times, the later ones with
    /// `secondReason`), then waits until `run()` has returned and its thread is done.
    func stop(reason: String = "test over", times: Int = 1, secondReason: String = "again") async throws {
        let box = self.box
        executor.execute {
            box.stop(reason: reason)
            for _ in 1..<times { box.stop(reason: secondReason) }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = finished.withLock { state -> Bool in
                if state.done { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
        if probe.count("run returned on loop: true") != 1 {
            throw TestFailure("run() did not return normally: \(probe.events(prefix: "run"))")
        }
    }
}

/// Holds the server for the stop request. `@unchecked Sendable`: `server` is read and cleared on
/// the loop thread only (the stop request runs there through `executor.execute`; `release` after
/// `run()` returned), checked by a precondition.
private final class ServerBox: @unchecked Sendable {
    private var server: AsyncHTTPServer?
    private let thread: LoopThread

    init(_ server: AsyncHTTPServer) {
        self.server = server
        self.thread = server.executor.thread
        thread.preconditionOnThread()
    }

    /// The server's `stop(reason:)`, if it has not been released. Loop thread.
    func stop(reason: String) {
        thread.preconditionOnThread()
        server?.stop(reason: reason)
    }

    func release() {
        thread.preconditionOnThread()
        server = nil
    }
}
