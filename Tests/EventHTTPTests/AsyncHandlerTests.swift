import EventHTTP
import GreetdClient
import EventHTTPSystem
import Testing

/// Async handlers on one loop: cancelled when the client leaves (FIN, RST, half-close),
/// `.continue` routes run on, and `LoopExchange.runTask` handlers that fail are answered 500 and
/// reported. (FIN and RST cancelling a loop-timer sleep with `clientGone`, and a throwing
/// `Router` handler's 500, are FrontDoorStreamingTests' and FrontDoorBodyTests'.)
@Suite struct AsyncHandlerTests {
    static let styles: [ClientAbort] = [.fin, .rst, .half]

    /// A handler awaiting `Task.sleep` on the global executor is cancelled by the abort: exactly
    /// one cancellation, it is back on the loop after the await, `defer` runs, the reason is
    /// `clientGone`, the end is reported once as aborted, and nothing is reported as a failure.
    @Test(arguments: styles)
    func abortCancelsAHandlerSleepingOnTheGlobalExecutor(style: ClientAbort) async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/slow") { _, context -> String in
                defer { probe.record("defer") }
                probe.record("started")
                await withTaskCancellationHandler {
                    do {
                        try await Task.sleep(for: .seconds(60))
                        probe.record("slept")
                    } catch {
                        probe.record("sleep threw \(type(of: error))")
                    }
                } onCancel: {
                    probe.record("cancel")
                }
                probe.record("on loop after global await: \(context.executor.thread.isCurrent)")
                probe.record(Task.isCancelled ? "isCancelled" : "not cancelled")
                probe.record("reason: \(describe(context.cancellationReason))")
                probe.record("connected: \(context.isClientConnected)")
                return "too late\n"
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/slow", extraHeaders: "X-Request-Id: a1\r\n")
        try await loop.probe.wait(for: "started")
        client.abort(style)
        try await loop.probe.wait(for: "defer")
        #expect(loop.probe.count("cancel") == 1)
        #expect(loop.probe.count("sleep threw CancellationError") == 1)
        #expect(loop.probe.count("on loop after global await: true") == 1)
        #expect(loop.probe.count("isCancelled") == 1)
        #expect(loop.probe.count("reason: clientGone") == 1)
        #expect(loop.probe.count("connected: false") == 1)
        try await loop.probe.wait(for: "end")
        let ends = loop.probe.events(prefix: "end a1")
        #expect(ends.count == 1 && ends.first?.contains("aborted") == true, "\(ends)")
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
        #expect(loop.counters.liveRequests.load(ordering: .relaxed) == 0)
    }

    /// A half-close (the client shuts its write side and waits) cancels a libevent timer sleep
    /// (`context.executor.sleep`) at once, once, and the end is reported once as aborted.
    @Test func halfCloseCancelsALoopTimerSleep() async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/slow") { _, context -> String in
                defer { probe.record("defer") }
                probe.record("started")
                try await withTaskCancellationHandler {
                    do {
                        try await context.executor.sleep(for: .seconds(60))
                    } catch is CancellationError {
                        probe.record("cancelled \(describe(context.cancellationReason))")
                        throw CancellationError()
                    }
                } onCancel: {
                    probe.record("cancel")
                }
                return "slept\n"
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/slow", extraHeaders: "X-Request-Id: h1\r\n")
        try await loop.probe.wait(for: "started")
        client.abort(.half)
        try await loop.probe.wait(for: "defer")
        #expect(loop.probe.count("cancel") == 1)
        #expect(loop.probe.count("cancelled clientGone") == 1)
        try await loop.probe.wait(for: "end")
        let ends = loop.probe.events(prefix: "end h1")
        #expect(ends.count == 1 && ends.first?.contains("aborted") == true, "\(ends)")
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
    }

    /// A `.continue` route runs to its end after the abort, not cancelled, and sees the client
    /// gone; nothing is reported as the handler's failure. Through the `Router` (`/keep`: its
    /// answer is dropped) and through `LoopExchange.runTask` (`/keep-task`: its answer throws
    /// `clientGone`, which the handler sees).
    @Test(arguments: ["/keep", "/keep-task"])
    func continueRoutesRunToTheEnd(path: String) async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/keep", onClientAbort: .continue) { _, context -> String in
                defer { probe.record("defer") }
                probe.record("started")
                try await probe.wait(for: "go")
                probe.record(Task.isCancelled ? "cancelled" : "not cancelled")
                probe.record("connected: \(context.isClientConnected), reason: \(describe(context.cancellationReason))")
                probe.record("ran to the end")
                return "late\n"
            }
            router.onLoop(.get, "/keep-task") { exchange in
                exchange.runTask(onClientAbort: .continue) { request, response in
                    defer { probe.record("defer") }
                    probe.record("started")
                    try await probe.wait(for: "go")
                    probe.record(Task.isCancelled ? "cancelled" : "not cancelled")
                    probe.record("connected: \(request.clientEnd == nil), reason: clientGone")
                    do {
                        try response.respond(status: 200, body: "late\n")
                    } catch {
                        probe.record("respond: \(error)")
                    }
                    probe.record("ran to the end")
                }
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet(path, extraHeaders: "X-Request-Id: k1\r\n")
        try await loop.probe.wait(for: "started")
        client.abort(.fin)
        try await loop.probe.wait(for: "end k1 aborted client closed the connection")
        loop.probe.record("go")
        try await loop.probe.wait(for: "defer")
        #expect(loop.probe.count("not cancelled") == 1)
        #expect(loop.probe.count("connected: false, reason: clientGone") == 1)
        if path == "/keep-task" {
            #expect(loop.probe.count("respond: client gone: client closed the connection") == 1)
        }
        #expect(loop.probe.count("ran to the end") == 1)
        #expect(loop.probe.events(prefix: "end k1").count == 1)
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
    }

    struct Boom: Error {}

    /// `LoopExchange.runTask` handlers: one that throws and one that returns without answering
    /// both get `500` (the connection stays usable), and each failure is reported once, by the
    /// loop's log, with the request's id.
    @Test func aFailingRunTaskHandlerGetsA500AndAReportedFailure() async throws {
        let loop = try await LiveLoop.start { router, _ in
            router.onLoop(.get, "/throw") { exchange in exchange.runTask { _, _ in throw Boom() } }
            router.onLoop(.get, "/silent") { exchange in exchange.runTask { _, _ in } }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/throw", extraHeaders: "X-Request-Id: t1\r\n")
        let reply = try await client.readResponse()
        #expect(reply.status == 500)
        try client.sendGet("/silent", extraHeaders: "X-Request-Id: s1\r\n")
        let silent = try await client.readResponse()
        #expect(silent.status == 500)
        try await loop.probe.wait(for: "failure s1 handler returned without answering")
        #expect(loop.probe.events(prefix: "failure t1 handler threw: Boom").count == 1)
        #expect(loop.probe.events(prefix: "failure").count == 2)
        #expect(loop.probe.count("end t1 500 22") == 1)
        await loop.stop()
    }
}
