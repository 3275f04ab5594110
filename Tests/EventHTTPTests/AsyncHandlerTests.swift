import EventHTTP
import GreetdClient
import EventHTTPSystem
import Testing

/// Async handlers: cancelled when the client leaves (FIN, RST, half-close), `.continue` routes
/// run on, failures answered 500 and reported.
@Suite struct AsyncHandlerTests {
    static let styles: [ClientAbort] = [.fin, .rst, .half]

    /// A handler awaiting `Task.sleep` on the global executor is cancelled by the abort: exactly
    /// one cancellation, `defer` runs, the end is reported once as aborted.
    @Test(arguments: styles)
    func abortCancelsAHandlerSleepingOnTheGlobalExecutor(style: ClientAbort) async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/slow") { request, response in
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
                request.executor.thread.preconditionOnThread()  // back on the loop after the global executor
                probe.record(Task.isCancelled ? "isCancelled" : "not cancelled")
                probe.record("clientEnd set: \(request.clientEnd != nil)")
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/slow", extraHeaders: "X-Request-Id: a1\r\n")
        try await loop.probe.wait(for: "started")
        client.abort(style)
        try await loop.probe.wait(for: "defer")
        #expect(loop.probe.count("cancel") == 1)
        #expect(loop.probe.count("sleep threw CancellationError") == 1)
        #expect(loop.probe.count("isCancelled") == 1)
        #expect(loop.probe.count("clientEnd set: true") == 1)
        let ends = loop.probe.events(prefix: "end a1")
        #expect(ends.count == 1 && ends.first?.contains("aborted") == true, "\(ends)")
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
        #expect(loop.counters.liveRequests.load(ordering: .relaxed) == 0)
    }

    /// The same with a libevent timer (`LoopExecutor.sleep`): the Task ends at once.
    @Test(arguments: styles)
    func abortCancelsALoopTimerSleep(style: ClientAbort) async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/slow") { request, response in
                defer { probe.record("defer") }
                probe.record("started")
                do {
                    try await request.executor.sleep(for: .seconds(60))
                } catch is CancellationError {
                    probe.record("cancelled")
                }
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/slow")
        try await loop.probe.wait(for: "started")
        client.abort(style)
        try await loop.probe.wait(for: "defer")
        #expect(loop.probe.count("cancelled") == 1)
        await loop.stop()
    }

    /// A `.continue` route runs to its end after the abort; its answer then throws clientGone.
    @Test func continueRoutesRunToTheEnd() async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/keep", onClientAbort: .continue) { request, response in
                defer { probe.record("defer") }
                probe.record("started")
                try await probe.wait(for: "go")
                probe.record(Task.isCancelled ? "cancelled" : "not cancelled")
                do {
                    try response.respond(status: 200, body: "late\n")
                } catch {
                    probe.record("respond: \(error)")
                }
                probe.record("ran to the end")
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/keep", extraHeaders: "X-Request-Id: k1\r\n")
        try await loop.probe.wait(for: "started")
        client.abort(.fin)
        try await loop.probe.wait(for: "end k1 aborted client closed the connection")
        loop.probe.record("go")
        try await loop.probe.wait(for: "defer")
        #expect(loop.probe.count("not cancelled") == 1)
        #expect(loop.probe.count("respond: client gone: client closed the connection") == 1)
        #expect(loop.probe.count("ran to the end") == 1)
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
    }

    struct Boom: Error {}

    @Test func aThrowingHandlerGetsA500AndAReportedFailure() async throws {
        let loop = try await LiveLoop.start { router, _ in
            router.get("/throw") { _, _ in throw Boom() }
            router.get("/silent") { _, _ in }
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
        #expect(loop.probe.count("end t1 500 22") == 1)
        await loop.stop()
    }

    @Test func answersAtOnceAndRoutes404And405() async throws {
        let loop = try await LiveLoop.start { router, _ in
            router.get("/") { request, response in
                try response.respond(status: 200, body: "hello \(request.isHTTP10 ? "1.0" : "1.1")\n")
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/")
        let reply = try await client.readResponse()
        #expect(reply.status == 200 && reply.body == "hello 1.1\n")
        try client.sendGet("/nope")
        #expect(try await client.readResponse().status == 404)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        #expect(try await client.readResponse().status == 405)
        await loop.stop()
    }
}
