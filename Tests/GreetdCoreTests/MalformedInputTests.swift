import GreetdClient
import GreetdCore
import Testing
import TestSupport

extension LiveServer {
    /// Bad requests get a 4xx (or a close), never a crash, and the server keeps serving.
    @Suite("Malformed input")
    struct MalformedInputTests {
        static let badDelays: [(query: String, fragment: String)] = [
            ("delay=abc", #"invalid delay "abc": time: invalid duration "abc""#),
            ("delay=5", #"time: missing unit in duration "5""#),
            ("delay=5x", #"time: unknown unit "x" in duration "5x""#),
            ("delay=-1s", #"invalid delay "-1s": must not be negative"#),
            ("delay=99999999999h", "out of range"),
            ("delay=", #"invalid delay "": time: invalid duration """#),
        ]

        @Test("a bad ?delay= gets 400 saying what is wrong with delay", arguments: badDelays)
        func badDelay(query: String, fragment: String) async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.sendGet("/?\(query)")
            let response = try await client.readResponse()
            #expect(response.status == 400)
            #expect(response.body.contains(fragment), "body: \(response.body)")
            #expect(harness.stats.started.load(ordering: .relaxed) == 0)
            try await harness.expectNothingLeft()
        }

        @Test("unknown paths get 404, other methods on / get 405 with Allow")
        func routing() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.sendGet("/nope")
            #expect(try await client.readResponse().status == 404)
            for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
                try client.send("\(method) / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
                let response = try await client.readResponse()
                #expect(response.status == 405, "\(method)")
                #expect(response.headers["allow"] == "GET, HEAD")
            }
        }

        static let garbage: [String] = [
            "GARBAGE\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/9.9\r\n\r\n",
            "FOO / HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /\0 HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "\u{1}\u{2}\u{3}\u{ff}\r\n\r\n",
        ]

        @Test("garbage gets a 4xx or a close, and the server keeps serving", arguments: garbage)
        func garbageRequest(_ text: String) async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send(text)
            if let response = try? await client.readResponse(timeout: .seconds(2)) {
                // 4xx, or 505 for a major version above 1 (RFC 9110).
                #expect((400..<500).contains(response.status) || response.status == 505,
                        "status \(response.status) for \(text.debugDescription)")
            }
            let probe = try harness.connect()
            try probe.sendGet("/?delay=0s")
            #expect(try await probe.readResponse().status == 200)
            try await harness.expectNothingLeft()
        }

        @Test("a malformed version gets 400, answered in HTTP/1.1; a major version above 1 gets 505 (fuzz regression)",
              arguments: ["HTTP/-1.1", "HTTP/1.10", "HTTP/0.0", "HTTP/2.0"])
        func unsupportedVersion(version: String) async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("GET /?delay=0s \(version)\r\nHost: t\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.statusLine.hasPrefix("HTTP/1.1 "))
            if version == "HTTP/2.0" {
                #expect(response.status == 505)
            } else {
                #expect(response.status == 400)
                #expect(response.body == "unsupported HTTP version; use HTTP/1.1\n")
            }
            #expect(harness.stats.started.load(ordering: .relaxed) == 0)
        }

        @Test("a request target with spaces cannot forge access-log fields (fuzz regression)")
        func forgedAccessFields() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("GET /x status=200 duration=1s bytes=14 HTTP/1.1\r\nHost: t\r\n\r\n")
            let response = try await client.readResponse()
            let id = try #require(response.headers["x-request-id"])
            let line = try #require(harness.logs.accessLine(request: id))
            #expect(line.hasPrefix(#"access method=GET target="/x status=200 duration=1s bytes=14" status=\#(response.status) "#), "\(line)")
        }

        @Test("an unknown method reaches greetd: 405 on /, 404 elsewhere, never libevent's bare 501 (fuzz regression)")
        func unknownMethod() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("FOO / HTTP/1.1\r\nHost: t\r\n\r\n")
            let onRoot = try await client.readResponse()
            #expect(onRoot.status == 405)
            #expect(onRoot.headers["allow"] == "GET, HEAD")
            #expect(onRoot.headers["x-request-id"] != nil)
            try client.send("BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse().status == 404)
        }

        @Test("request headers over the limit are refused with a 4xx")
        func oversizedHeaders() async throws {
            let harness = try Harness(delay: "0s") { $0.http.maxHeaderBytes = 8 * 1024 }
            let client = try harness.connect()
            let big = String(repeating: "a", count: 16 * 1024)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(big)\r\n\r\n")
            let response = try await client.readResponse()
            #expect((400..<500).contains(response.status))
            #expect(harness.stats.started.load(ordering: .relaxed) == 0)
            let probe = try harness.connect()
            try probe.sendGet("/?delay=0s")
            #expect(try await probe.readResponse().status == 200)
        }

        @Test("a client that disconnects mid-request starts nothing", arguments: ClientAbort.allCases)
        func midRequestDisconnect(style: ClientAbort) async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("GET /?delay=10s HTTP/1.1\r\nHost: t\r\nX-Half: ")
            try await harness.barrier()  // the worker has read the partial request
            client.abort(style)
            try await harness.barrier()  // ... and seen the client go
            #expect(harness.stats.started.load(ordering: .relaxed) == 0)
            let probe = try harness.connect()
            try probe.sendGet("/?delay=0s")
            #expect(try await probe.readResponse().status == 200)
            try await harness.expectNothingLeft()
        }
    }
}
