import GreetdCore
import Testing
import TestSupport

extension LiveServer {
    /// The seed's greeting, end to end over loopback, with short delays and ticks.
    @Suite("Greeting")
    struct GreetingTests {
        @Test("a full greeting answers Hello Gopher! after logging every tick")
        func fullGreeting() async throws {
            let harness = try Harness(delay: "100ms", tick: "20ms")
            let client = try harness.connect()
            try client.sendGet("/")
            let response = try await client.readResponse()
            #expect(response.status == 200)
            #expect(response.body == "Hello Gopher!\n")
            #expect(response.headers["content-type"] == "text/plain; charset=utf-8")
            let id = try #require(response.headers["x-request-id"])
            #expect(harness.logs.messages(request: id) == [
                "Handling greeting request",
                thinking, thinking, thinking, thinking, thinking,
                "Handled greeting request",
            ])
            #expect(harness.stats.completed.load(ordering: .relaxed) == 1)
            try await harness.expectNothingLeft()
        }

        @Test("?delay=0s answers at once, without a tick")
        func zeroDelay() async throws {
            let harness = try Harness(delay: "10s", tick: "1ms")
            let client = try harness.connect()
            let start = ContinuousClock.now
            try client.sendGet("/?delay=0s")
            let response = try await client.readResponse()
            #expect(response.status == 200)
            #expect(ContinuousClock.now - start < .seconds(2))
            let id = try #require(response.headers["x-request-id"])
            #expect(harness.logs.messages(request: id) == ["Handling greeting request", "Handled greeting request"])
            try await harness.expectNothingLeft()
        }

        @Test("?delay= above the server's maximum is capped to it")
        func delayCapped() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms") { $0.maxDelay = .milliseconds(50) }
            let client = try harness.connect()
            let start = ContinuousClock.now
            try client.sendGet("/?delay=1h")
            let response = try await client.readResponse(timeout: .seconds(5))
            #expect(response.status == 200)
            #expect(ContinuousClock.now - start < .seconds(3))
            try await harness.expectNothingLeft()
        }

        @Test("a sane client X-Request-Id labels the request's log lines; others are replaced")
        func clientRequestID() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.sendGet("/", extraHeaders: "X-Request-Id: abc-123.Z_9:x\r\n")
            let accepted = try await client.readResponse()
            #expect(accepted.headers["x-request-id"] == "abc-123.Z_9:x")
            #expect(harness.logs.messages(request: "abc-123.Z_9:x") == ["Handling greeting request", "Handled greeting request"])
            try client.sendGet("/", extraHeaders: "X-Request-Id: has space\r\n")
            let replaced = try await client.readResponse()
            // Generated ids: the process's random prefix, then the request's number.
            #expect(replaced.headers["x-request-id"]?.hasSuffix("-2") == true)
            try client.sendGet("/", extraHeaders: "X-Request-Id: \(String(repeating: "a", count: 65))\r\n")
            #expect(try await client.readResponse().headers["x-request-id"]?.hasSuffix("-3") == true)
        }

        @Test("HEAD / greets with headers only")
        func headRequest() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
            let response = try await client.readResponse(requestMethod: "HEAD")
            #expect(response.status == 200)
            #expect(response.headers["content-length"] == "14")
            // Nothing follows the headers: the next response on this connection parses cleanly.
            try client.sendGet("/nope")
            #expect(try await client.readResponse().status == 404)
        }

        @Test("keep-alive: two greetings on one connection, then a close, log no context error")
        func keepAlive() async throws {
            let harness = try Harness(delay: "40ms", tick: "10ms")
            let client = try harness.connect()
            for _ in 0..<2 {
                try client.sendGet("/")
                let response = try await client.readResponse()
                #expect(response.status == 200)
                #expect(response.body == "Hello Gopher!\n")
            }
            client.close()
            try await harness.expectNothingLeft(connectionsClosed: true)
            try await harness.barrier()  // a loop turn after the close
            #expect(harness.logs.count(contextCanceled) == 0)
            #expect(harness.stats.canceled.load(ordering: .relaxed) == 0)
            #expect(harness.stats.completed.load(ordering: .relaxed) == 2)
        }

        @Test("pipelined requests are answered in order", arguments: Backend.allCases)
        func pipelined(backend: Backend) async throws {
            let harness = try Harness(delay: "0s", tick: "10ms", backend: backend)
            let client = try harness.connect()
            try client.send(
                "GET /?delay=60ms HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "GET /?delay=0s HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
            let first = try await client.readResponse()
            let second = try await client.readResponse()
            let third = try await client.readResponse()
            #expect([first.status, second.status, third.status] == [200, 200, 404])
            let ids = [first, second, third].compactMap { $0.headers["x-request-id"]?.split(separator: "-").last.flatMap { Int($0) } }
            #expect(ids == ids.sorted() && ids.count == 3, "responses in request order: \(ids)")
            #expect(harness.logs.count(contextCanceled) == 0)
            try await harness.expectNothingLeft()
        }
    }
}
