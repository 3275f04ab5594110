import GreetdCore
import Testing
import TestSupport

extension LiveServer {
    /// Responses the transport sends on its own still carry `X-Request-Id` and an access line;
    /// `--max-connections` holds for the whole process.
    @Suite("Transport")
    struct TransportTests {
        /// The access line of a canned response: its id from the response, its status.
        private func expectAccessLine(_ harness: Harness, _ response: HTTPReply, status: Int,
                                      sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let id = try #require(response.headers["x-request-id"], "no X-Request-Id on \(response.statusLine)",
                                  sourceLocation: sourceLocation)
            let line = try await harness.logs.waitForAccessLine(request: id)
            #expect(line.contains(" status=\(status) "), "\(line)", sourceLocation: sourceLocation)
        }

        @Test("headers over --max-header-bytes: evhttp's 400 carries X-Request-Id and gets an access line")
        func oversizedHeaders() async throws {
            let harness = try Harness(delay: "0s") { $0.http.maxHeaderBytes = 8 * 1024 }
            let client = try harness.connect()
            try client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 16 * 1024))\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 400)
            try await expectAccessLine(harness, response, status: 400)
            #expect(harness.stats.started.load(ordering: .relaxed) == 0)
        }

        @Test("a body over --max-body-bytes: the 413 carries X-Request-Id and gets an access line")
        func bodyTooLarge() async throws {
            let harness = try Harness(delay: "0s") { $0.http.maxBodyBytes = 1024 }
            let client = try harness.connect()
            let body = String(repeating: "b", count: 4096)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let response = try await client.readResponse()
            #expect(response.status == 413)
            try await expectAccessLine(harness, response, status: 413)
        }

        @Test("garbage: evhttp's 400 carries X-Request-Id, and its body is counted in the access line")
        func garbage() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("GARBAGE\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 400)
            let id = try #require(response.headers["x-request-id"])
            let line = try await harness.logs.waitForAccessLine(request: id)
            #expect(line.hasPrefix("access method=- target=- status=400 "), "\(line)")
            #expect(line.contains(" bytes=\(response.body.utf8.count) "), "\(line)")
        }

        @Test("the 503 at --max-connections carries X-Request-Id and gets an access line")
        func connectionLimit() async throws {
            let harness = try Harness(delay: "0s") { $0.http.maxConnections = 1 }
            let first = try harness.connect()
            try await eventually("first connection adopted") { harness.stats.libevent.liveConnections.load(ordering: .relaxed) == 1 }
            let second = try harness.connect()
            try second.sendGet("/?delay=0s")
            let refused = try await second.readResponse()
            #expect(refused.status == 503 && refused.body == "server at connection limit\n")
            let id = try #require(refused.headers["x-request-id"])
            let line = try await harness.logs.waitForAccessLine(request: id)
            #expect(line.hasPrefix("access method=- target=- status=503 "), "\(line)")
            #expect(line.contains(" bytes=\(refused.body.utf8.count) "), "\(line)")
            try first.sendGet("/?delay=0s")
            #expect(try await first.readResponse().status == 200)
        }

        @Test("--max-connections is process-wide: with 2 workers, every connection past it gets the fast 503")
        func connectionLimitAcrossWorkers() async throws {
            let harness = try Harness(delay: "0s", workers: 2) { $0.http.maxConnections = 2 }
            let held = try (0..<2).map { _ in try harness.connect() }
            try await eventually("two connections adopted") {
                harness.server.workers.map { $0.stats.libevent.liveConnections.load(ordering: .relaxed) }.reduce(0, +) == 2
            }
            // SO_REUSEPORT spreads new connections over both workers; each must refuse.
            for index in 0..<8 {
                let extra = try harness.connect()
                try extra.sendGet("/?delay=0s")
                let response = try await extra.readResponse()
                #expect(response.status == 503, "connection \(index): \(response.statusLine)")
                #expect(await extra.waitForClose())
            }
            let refused = harness.server.workers.map { $0.stats.libevent.rejectedConnections.load(ordering: .relaxed) }
            #expect(refused.reduce(0, +) == 8)
            for client in held {
                try client.sendGet("/?delay=0s")
                #expect(try await client.readResponse().status == 200)
            }
        }

        @Test("an unsupported version is answered in HTTP/1.1, with X-Request-Id and an access line")
        func unsupportedVersionStatusLine() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("GET /?delay=0s HTTP/1.10\r\nHost: t\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.statusLine == "HTTP/1.1 400 Bad Request")
            try await expectAccessLine(harness, response, status: 400)
        }

        @Test("?delay= above --max-delay is capped, and the answer says so in X-Delay-Capped")
        func delayCappedHeader() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms") { $0.maxDelay = .milliseconds(30) }
            let client = try harness.connect()
            try client.sendGet("/?delay=1h")
            let capped = try await client.readResponse()
            #expect(capped.status == 200)
            #expect(capped.headers[cappedDelayHeader.lowercased()] == "30ms")
            let id = try #require(capped.headers["x-request-id"])
            #expect(harness.logs.all.contains { $0.requestID == id && $0.level == .debug && $0.message == "Delay capped at --max-delay" })
            try client.sendGet("/?delay=20ms")
            #expect(try await client.readResponse().headers[cappedDelayHeader.lowercased()] == nil)
        }
    }
}
