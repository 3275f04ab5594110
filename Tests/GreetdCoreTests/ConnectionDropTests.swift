import GreetdCore
import Testing
import TestSupport

extension LiveServer {
    /// A connection the server drops is never reported as a client abort: each close is counted
    /// in `greetd_connections_closed_total{reason}`, server drops are logged in words, and every
    /// answer lands in OpenTelemetry's `http_server_request_duration_seconds`.
    @Suite("Connection drops and HTTP metrics")
    struct ConnectionDropTests {
        private func closed(_ harness: Harness, _ reason: String) -> Double {
            PrometheusText.value(of: MetricName.connectionsClosed, labels: [MetricName.reasonLabel: reason],
                                 in: harness.server.metrics.render()) ?? -1
        }

        private func waitForClosed(_ harness: Harness, _ reason: String, count: Double = 1) async throws {
            try await eventually("greetd_connections_closed_total{reason=\"\(reason)\"} reaches \(count)") {
                closed(harness, reason) >= count
            }
        }

        @Test("every reason's series is there from the start, at 0")
        func seriesFromTheStart() throws {
            let harness = try Harness(delay: "0s")
            for reason in ["client", "done", "header_timeout", "idle_timeout", "pipeline_limit", "max_connections", "bad_request", "shutdown"] {
                #expect(closed(harness, reason) == 0, "\(reason)")
            }
        }

        @Test("the pipeline limit: 444 in the access line, outcome dropped, a warning, never the client's abort")
        func pipelineLimit() async throws {
            let harness = try Harness(delay: "10s") { $0.http.pipelineLimit = 1024 }
            let client = try harness.connect()
            try client.sendGet("/")
            let id = try await harness.startedRequestID()
            try client.send(String(repeating: "x", count: 4096))
            let line = try await harness.logs.waitForAccessLine(request: id)
            #expect(line.contains(" status=444 "), "\(line)")
            #expect(harness.logs.messages(request: id).contains("Context Error: context canceled (cause: pipeline limit)"))
            #expect(!harness.logs.messages(request: id).contains(contextCanceled))
            try await waitForClosed(harness, "pipeline_limit")
            let text = harness.server.metrics.render()
            #expect(PrometheusText.value(of: MetricName.requests, labels: [MetricName.outcomeLabel: "dropped"], in: text) == 1)
            #expect(PrometheusText.value(of: MetricName.requests, labels: [MetricName.outcomeLabel: "canceled"], in: text) == 0)
            let warning = try await harness.logs.waitFor("Connection dropped: pipeline limit")
            #expect(warning.level == .warning)
            #expect(closed(harness, "client") == 0)
        }

        @Test("a client that leaves is still the client's abort: 499, canceled, reason client")
        func clientAbort() async throws {
            let harness = try Harness(delay: "10s")
            let client = try harness.connect()
            try client.sendGet("/")
            let id = try await harness.startedRequestID()
            client.abort(.fin)
            let line = try await harness.logs.waitForAccessLine(request: id)
            #expect(line.contains(" status=499 "), "\(line)")
            try await waitForClosed(harness, "client")
        }

        @Test("header and idle timeouts are counted and logged as drops")
        func timeouts() async throws {
            let harness = try Harness(delay: "0s") {
                $0.http.headerTimeout = .milliseconds(100)
                $0.http.idleTimeout = .milliseconds(300)
            }
            let silent = try harness.connect()
            #expect(await silent.waitForClose())
            try await waitForClosed(harness, "header_timeout")
            let entry = try await harness.logs.waitFor("Connection dropped: header timeout")
            #expect(entry.level == .info)
            let idle = try harness.connect()
            try idle.sendGet("/healthz")
            #expect(try await idle.readResponse().status == 200)
            #expect(await idle.waitForClose())
            try await waitForClosed(harness, "idle_timeout")
        }

        @Test("done: the server closes after an answer that asked for it (Connection: close, HTTP/1.0)")
        func done() async throws {
            let harness = try Harness(delay: "0s")
            let closing = try harness.connect()
            try closing.sendGet("/healthz", extraHeaders: "Connection: close\r\n")
            #expect(try await closing.readResponse().status == 200)
            #expect(await closing.waitForClose())
            let old = try harness.connect()
            try old.send("GET /healthz HTTP/1.0\r\n\r\n")
            _ = await old.readToEnd()
            try await waitForClosed(harness, "done", count: 2)
            #expect(closed(harness, "client") == 0)
        }

        @Test("bad requests: evhttp's canned 400 closes with reason bad_request")
        func badRequest() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            try client.send("GARBAGE\r\n\r\n")
            #expect(try await client.readResponse().status == 400)
            try await waitForClosed(harness, "bad_request")
        }

        @Test("the connection limit and the shutdown have their reasons")
        func limitAndShutdown() async throws {
            let harness = try Harness(delay: "0s") { $0.http.maxConnections = 1 }
            let held = try harness.connect()
            try held.sendGet("/healthz")
            #expect(try await held.readResponse().status == 200)
            let refused = try harness.connect()
            try refused.sendGet("/healthz")
            #expect(try await refused.readResponse().status == 503)
            try await waitForClosed(harness, "max_connections")
            harness.server.drain()
            #expect(await held.waitForClose())
            harness.server.waitUntilStopped()
            #expect(closed(harness, "shutdown") == 1)
        }

        @Test("the transport's canned answers are greetd's plain text, with X-Request-Id", arguments: [
            ("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 70_000))\r\n\r\n", 400, "request header fields too large\n"),
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n", 413, "413 Content Too Large\n"),
        ])
        func cannedAnswersArePlainText(request: String, status: Int, body: String) async throws {
            let harness = try Harness(delay: "0s") { $0.http.maxBodyBytes = 1024 }
            let client = try harness.connect()
            try client.send(request)
            let response = try await client.readResponse()
            #expect(response.status == status)
            #expect(response.headers["content-type"] == "text/plain; charset=utf-8")
            #expect(response.body == body)
            #expect(response.headers["x-request-id"] != nil)
        }

        @Test("http_server_request_duration_seconds: every answer, by method, status and route")
        func httpHistogram() async throws {
            let harness = try Harness(delay: "0s")
            let client = try harness.connect()
            for (request, status) in [("GET / HTTP/1.1", 200), ("GET /healthz HTTP/1.1", 200), ("GET /nope HTTP/1.1", 404),
                                      ("POST / HTTP/1.1", 405), ("FOO / HTTP/1.1", 405)] {
                try client.send("\(request)\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
                #expect(try await client.readResponse().status == status, "\(request)")
            }
            let garbage = try harness.connect()
            try garbage.send("GARBAGE\r\n\r\n")
            #expect(try await garbage.readResponse().status == 400)
            try await eventually("the 400 recorded") {
                harness.server.metrics.render().contains("\(MetricName.httpResponseStatusCodeSample)\"400\"")
            }
            let samples = PrometheusText.samples(in: harness.server.metrics.render())
                .filter { $0.name == MetricName.httpRequestDuration + "_count" }
            func count(_ method: String, _ status: String, _ route: String) -> Double? {
                samples.first {
                    $0.labels == [MetricName.httpMethodLabel: method, MetricName.httpStatusLabel: status, MetricName.httpRouteLabel: route]
                }?.value
            }
            #expect(count("GET", "200", "/") == 1)
            #expect(count("GET", "200", "/healthz") == 1)
            #expect(count("GET", "404", "") == 1)
            #expect(count("POST", "405", "") == 1)
            #expect(count("_OTHER", "405", "") == 1)
            #expect(count("_OTHER", "400", "") == 1)
        }
    }
}

extension MetricName {
    /// The status label as it appears in the exposition, for a quick text check.
    static let httpResponseStatusCodeSample = "\(httpStatusLabel)="
}
