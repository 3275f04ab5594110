import EventHTTP
import GreetdClient
import EventHTTPSystem
import Testing

/// The server as a whole: a handler's awaits come back to its loop, `cancel()` ends every
/// handler with `.shutdown` while their last answers still reach their clients, and a repeated
/// `shutdown()`/`cancel()` changes nothing. (An in-flight request finishing within the grace,
/// a stream cancelled past it, and a client abort cancelling a handler are
/// FrontDoorServerTests' and FrontDoorStreamingTests'.)
@Suite struct AsyncHTTPServerTests {
    /// A handler that awaits slow work on the global executor, then on the loop's timer, answers;
    /// it runs on the loop thread before and after each await. The answer carries the client's
    /// `X-Request-Id`, and the access log has it once.
    @Test func answersAfterSlowWork() async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/slow") { _, context -> String in
                probe.record("on loop: \(context.executor.thread.isCurrent)")
                try await Task.sleep(for: .milliseconds(20))
                probe.record("on loop after global await: \(context.executor.thread.isCurrent)")
                try await context.executor.sleep(for: .milliseconds(20))
                probe.record("on loop after loop sleep: \(context.executor.thread.isCurrent)")
                return "done\n"
            }
        }
        #expect(loop.port != 0)
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/slow", extraHeaders: "X-Request-Id: n1\r\n")
        let reply = try await client.readResponse()
        #expect(reply.status == 200)
        #expect(reply.body == "done\n")
        #expect(reply.header("X-Request-Id") == "n1")
        #expect(loop.probe.count("on loop: true") == 1)
        #expect(loop.probe.count("on loop after global await: true") == 1)
        #expect(loop.probe.count("on loop after loop sleep: true") == 1)
        try await loop.probe.wait(for: "end n1 200 5")
        await loop.stop()
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        #expect(loop.probe.events(prefix: "loop threw").isEmpty)
    }

    /// `cancel()` with two handlers pending (one on a loop timer, one on the global executor):
    /// both are cancelled at once (no grace) and read `.shutdown(message)`, each one's `503`
    /// with the message reaches its client before its connection closes, `run()` returns, and
    /// the listener is gone.
    @Test func cancelEndsEveryHandlerAndReturnsFromRun() async throws {
        let probe = Probe()
        let router = Router()
        router.get("/loop") { _, context in
            defer { probe.record("defer loop") }
            probe.record("started")
            do {
                try await context.executor.sleep(for: .seconds(60))
            } catch is CancellationError {
                probe.record("loop cancelled: \(describe(context.cancellationReason))")
            }
            return Response(status: .serviceUnavailable, body: ResponseBody(string: "\(context.cancellationReason?.description ?? "?")\n"))
        }
        router.get("/global") { _, context in
            defer { probe.record("defer global") }
            probe.record("started")
            do {
                try await Task.sleep(for: .seconds(60))
            } catch is CancellationError {
                probe.record("global cancelled: \(describe(context.cancellationReason))")
            }
            return Response(status: .serviceUnavailable, body: ResponseBody(string: "\(context.cancellationReason?.description ?? "?")\n"))
        }
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.shutdownMessage = "test over"
        // A grace far longer than the test waits: only cancel() can end the handlers in time.
        configuration.shutdownGrace = .seconds(600)
        let server = try await FrontDoorServer.start(router, configuration: configuration)
        let first = try server.connect()
        try first.sendGet("/loop")
        let second = try server.connect()
        try second.sendGet("/global")
        try await probe.wait(for: "started", count: 2)
        server.server.cancel()
        try await server.task.value
        #expect(probe.count("loop cancelled: shutdown test over") == 1)
        #expect(probe.count("global cancelled: shutdown test over") == 1)
        #expect(probe.count("defer loop") == 1)
        #expect(probe.count("defer global") == 1)
        // A last message reaches a client that is still there: the connection closes only
        // once its answer is written.
        for client in [first, second] {
            let (text, end) = await client.readToEnd()
            #expect(end == .closed || end == .reset)
            #expect(text.hasPrefix("HTTP/1.1 503 ") && text.hasSuffix("\r\n\r\ntest over\n"), "\(text.debugDescription)")
            #expect(text.lowercased().contains("connection: close"))
        }
        // The listener is gone.
        #expect(connectErrno(port: server.port) == .connectionRefused)
    }

    /// A second `shutdown()` while the first is under way, and a second `cancel()`, change
    /// nothing: the handler is cancelled once, with the configured message, and `run()` returns
    /// once, normally.
    @Test func shutdownAndCancelTwiceAreHarmless() async throws {
        let probe = Probe()
        let router = Router()
        router.get("/loop") { _, context in
            probe.record("started")
            try? await context.executor.sleep(for: .seconds(60))
            probe.record("reason: \(describe(context.cancellationReason))")
            return Response(status: .serviceUnavailable, body: ResponseBody(string: "bye\n"))
        }
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.shutdownMessage = "first"
        configuration.shutdownGrace = .seconds(600)
        let server = try await FrontDoorServer.start(router, configuration: configuration)
        let client = try server.connect()
        try client.sendGet("/loop")
        try await probe.wait(for: "started")
        server.server.shutdown()
        server.server.shutdown()
        server.server.cancel()
        server.server.cancel()
        try await server.task.value
        #expect(probe.events(prefix: "reason: ") == ["reason: shutdown first"])
        let reply = try await client.readResponse()
        #expect(reply.status == 503 && reply.body == "bye\n")
    }
}
