import EventHTTP
import Testing

// The server's own behaviour: request ids, graceful shutdown, several loops, startup failures.

@Suite("FrontDoor server")
struct FrontDoorServerTests {
    /// A router whose `/id` answers the request id the handler saw.
    private func idRouter() -> Router {
        let router = Router()
        router.get("/id") { request, context in "\(request.id) \(context.requestID)" }
        return router
    }

    @Test("requestIDs: .trustClient answers with the client's X-Request-Id, and the handler sees it")
    func trustClientIDs() async throws {
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.requestIDs = .trustClient
        try await withServer(idRouter(), configuration: configuration) { server in
            let reply = try await server.exchange("GET", "/id", headers: ["X-Request-Id: trace-abc-123"])
            #expect(reply.header("X-Request-Id") == "trace-abc-123")
            #expect(reply.body == "trace-abc-123 trace-abc-123")
            // A value that is not 1-128 visible characters is replaced by a generated one.
            let spaced = try await server.exchange("GET", "/id", headers: ["X-Request-Id: has space"])
            #expect(spaced.header("X-Request-Id") != "has space")
            #expect(spaced.header("X-Request-Id")?.isEmpty == false)
        }
    }

    @Test("requestIDs: .generate ignores the client's X-Request-Id and names each request differently")
    func generatedIDs() async throws {
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.requestIDs = .generate
        try await withServer(idRouter(), configuration: configuration) { server in
            let first = try await server.exchange("GET", "/id", headers: ["X-Request-Id: trace-abc-123"])
            let second = try await server.exchange("GET", "/id", headers: ["X-Request-Id: trace-abc-123"])
            let firstID = try #require(first.header("X-Request-Id"))
            let secondID = try #require(second.header("X-Request-Id"))
            #expect(firstID != "trace-abc-123")
            #expect(firstID != secondID)
            #expect(first.body == "\(firstID) \(firstID)")
            // `<hex prefix>-<counter>`: the same process prefix for both.
            #expect(firstID.split(separator: "-").first == secondID.split(separator: "-").first)
        }
    }

    @Test("graceful shutdown: a request in flight finishes within the grace, then run() returns")
    func inFlightFinishes() async throws {
        let probe = Probe()
        let router = Router()
        router.get("/work") { _, context in
            probe.record("started")
            try await probe.wait(for: "shutdown called")
            // Work that goes on after the shutdown began: still within the grace.
            try await context.executor.sleep(for: .milliseconds(20))
            return "finished \(describe(context.cancellationReason))"
        }
        let server = try await FrontDoorServer.start(router)
        let connection = try server.connect()
        try connection.sendGet("/work")
        try await probe.wait(for: "started")
        server.server.shutdown()
        probe.record("shutdown called")
        let reply = try await connection.readResponse()
        #expect(reply.status == 200)
        #expect(reply.body == "finished none")
        #expect(reply.header("Connection")?.lowercased() == "close")
        try await server.task.value
        // run() returned: nothing listens any more.
        #expect(connectErrno(port: server.port) == .connectionRefused)
    }

    @Test("graceful shutdown: a stream past the grace is cancelled with .shutdown and can send a last event")
    func streamGetsShutdown() async throws {
        let probe = Probe()
        let router = Router()
        router.get("/stream") { _, context in
            Response.eventStream { sse in
                try await sse.send(ServerSentEvent(id: "0", data: "hello"))
                do {
                    try await context.executor.sleep(for: .seconds(60))
                } catch {
                    let reason = describe(context.cancellationReason)
                    probe.record("cancelled \(reason)")
                    try await sse.send(ServerSentEvent(event: "bye", data: reason))
                }
            }
        }
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.shutdownGrace = .milliseconds(50)
        configuration.cancellationGrace = .seconds(5)
        configuration.shutdownMessage = "going away"
        let server = try await FrontDoorServer.start(router, configuration: configuration)
        let connection = try server.connect()
        try connection.sendGet("/stream")
        let start = try await read(connection, until: "data: hello\n\n")
        server.server.shutdown()
        try await probe.wait(for: "cancelled shutdown going away")
        let text = try await read(connection, until: "event: bye\ndata: shutdown going away\n\n", after: start)
        #expect(text.hasPrefix("HTTP/1.1 200"))
        try await server.task.value
        #expect(await connection.waitForClose())
    }

    @Test("loops: 2 serves requests")
    func twoLoops() async throws {
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.loops = 2
        let router = Router()
        router.get("/hi/{name}") { _, context in "hi \(try context.parameters.require("name"))" }
        try await withServer(router, configuration: configuration) { server in
            #expect(server.server.addresses.count >= 1)
            for index in 0..<8 {
                let reply = try await server.exchange("GET", "/hi/\(index)")
                #expect(reply.status == 200)
                #expect(reply.body == "hi \(index)")
            }
        }
    }

    @Test("a second server on a port in use fails with kind .addressInUse")
    func addressInUse() async throws {
        let router = Router()
        router.get("/") { _, _ in "first" }
        try await withServer(router) { first in
            var configuration = EventHTTPServer.Configuration.frontDoorTest
            configuration.port = first.port
            let error = await #expect(throws: EventHTTPServerError.self) {
                _ = try await FrontDoorServer.start(Router(), configuration: configuration)
            }
            #expect(error?.kind == .addressInUse)
            #expect(error?.address.hasSuffix(":\(first.port)") == true)
            // The first one still serves.
            let reply = try await first.exchange("GET", "/")
            #expect(reply.body == "first")
        }
    }
}
