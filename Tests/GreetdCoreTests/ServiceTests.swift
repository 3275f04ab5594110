import Foundation
import GreetdCore
import Testing
import TestSupport

extension LiveServer {
    /// Deadlines, draining, health, metrics, access log, limits, workers: greetd as a service.
    @Suite("Service")
    struct ServiceTests {
        // MARK: Deadlines

        @Test("--timeout: past the deadline, 503 and context deadline exceeded, no tick after")
        func serverDeadline() async throws {
            let harness = try Harness(delay: "10s", tick: "10ms") { $0.timeout = .milliseconds(60) }
            let client = try harness.connect()
            try client.sendGet("/")
            let response = try await client.readResponse()
            #expect(response.status == 503)
            #expect(response.body == "greeting timed out after 60ms\n")
            let id = try #require(response.headers["x-request-id"])
            let access = try await harness.logs.waitForAccessLine(request: id)
            #expect(try accessDuration(access) >= .milliseconds(60), "never before the deadline: \(access)")
            let messages = harness.logs.messages(request: id)
            let index = try #require(messages.firstIndex(of: "Context Error: context deadline exceeded"))
            #expect(!messages[index...].contains(thinking))
            #expect(harness.stats.deadlineExceeded.load(ordering: .relaxed) == 1)
            #expect(harness.logs.accessLine(request: id)?.contains("status=503") == true)
            try await harness.expectNothingLeft()
        }

        @Test("?timeout= sets a deadline; it cannot exceed --timeout")
        func requestDeadline() async throws {
            let harness = try Harness(delay: "10s", tick: "10ms") { $0.timeout = .milliseconds(80) }
            let client = try harness.connect()
            try client.sendGet("/?timeout=20ms")
            let short = try await client.readResponse()
            #expect(short.status == 503 && short.body == "greeting timed out after 20ms\n")
            let shortAccess = try await harness.logs.waitForAccessLine(request: try #require(short.headers["x-request-id"]))
            #expect(try accessDuration(shortAccess) >= .milliseconds(20), "never before the deadline: \(shortAccess)")
            try client.sendGet("/?timeout=1h")
            let capped = try await client.readResponse()
            #expect(capped.status == 503 && capped.body == "greeting timed out after 80ms\n", "1h capped to --timeout")
            try client.sendGet("/?timeout=0s&delay=10ms")
            #expect(try await client.readResponse().status == 503, "a zero deadline is already past")
            try client.sendGet("/?timeout=1s&delay=10ms")
            #expect(try await client.readResponse().status == 200, "finishing before the deadline")
            try client.sendGet("/?timeout=-1s")
            let bad = try await client.readResponse()
            #expect(bad.status == 400 && bad.body.contains(#"invalid timeout "-1s""#))
        }

        // MARK: Draining

        @Test("drain: listeners close, greetings in flight finish with 200, then the service stops")
        func drainLetsGreetingsFinish() async throws {
            let harness = try Harness(delay: "150ms", tick: "20ms") { $0.shutdownTimeout = .seconds(5) }
            let client = try harness.connect()
            try client.sendGet("/")
            _ = try await harness.startedRequestID()
            harness.server.drain()
            try await eventually("listeners closed") { (try? harness.connect()) == nil }
            let response = try await client.readResponse()
            #expect(response.status == 200 && response.body == "Hello Gopher!\n")
            #expect(response.headers["connection"] == "close")
            try await eventually("service stopped") { harness.server.isStopped }
            #expect(harness.logs.count(contextCanceled) == 0)
            #expect(harness.logs.all.contains { $0.message.hasPrefix("Draining") })
        }

        @Test("drain past the budget: each greeting logs the shutdown cause and answers 503, Connection: close")
        func drainBudgetRunsOut() async throws {
            let harness = try Harness(delay: "30s", tick: "10ms") { $0.shutdownTimeout = .milliseconds(50) }
            let clients = try (0..<3).map { _ in try harness.connect() }
            for client in clients { try client.sendGet("/") }
            try await eventually("3 greetings thinking") { harness.stats.inFlight.load(ordering: .relaxed) == 3 }
            harness.server.drain()
            for client in clients {
                let response = try await client.readResponse()
                #expect(response.status == 503)
                #expect(response.headers["connection"] == "close")
                #expect(response.body == "server shutting down\n")
                #expect(await client.waitForClose(), "closed after the 503, not reset")
            }
            try await eventually("service stopped") { harness.server.isStopped }
            let cause = "Context Error: context canceled (cause: server shutting down)"
            #expect(harness.logs.count(cause) == 3)
            #expect(harness.stats.shutdown.load(ordering: .relaxed) == 3)
            for id in harness.logs.requestIDs(logging: cause) {
                let messages = harness.logs.messages(request: id)
                #expect(!messages[messages.firstIndex(of: cause)!...].contains(thinking))
            }
        }

        @Test("--workers 2: each shutdown step is logged once for the service, with the total in flight")
        func shutdownLinesOnce() async throws {
            let harness = try Harness(delay: "30s", tick: "10ms", workers: 2) { $0.shutdownTimeout = .milliseconds(50) }
            let clients = try (0..<4).map { _ in try harness.connect() }
            for client in clients { try client.sendGet("/") }
            try await eventually("4 greetings thinking") {
                harness.server.workers.map { $0.stats.inFlight.load(ordering: .relaxed) }.reduce(0, +) == 4
            }
            harness.server.drain()
            for client in clients { #expect(try await client.readResponse().status == 503) }
            try await eventually("service stopped") { harness.server.isStopped }
            let drains = harness.logs.all.filter { $0.message == "Draining: stopped accepting connections" }
            #expect(drains.count == 1)
            #expect(drains.first?.metadata["in_flight"] == "4")
            let cancels = harness.logs.all.filter { $0.message == "Cancelling greetings in flight" }
            #expect(cancels.count == 1)
            #expect(cancels.first?.metadata["in_flight"] == "4")
        }

        @Test("/healthz: 200 ok while serving, 503 once draining")
        func healthz() async throws {
            let harness = try Harness(delay: "30s", tick: "10ms") { $0.shutdownTimeout = .seconds(5) }
            let probe = try harness.connect()
            try probe.sendGet("/healthz")
            let ok = try await probe.readResponse()
            #expect(ok.status == 200 && ok.body == "ok\n")
            // Keep the server draining (a greeting in flight) and the probe's connection busy
            // (half a request sent), so that draining does not close it as idle.
            let greeting = try harness.connect()
            try greeting.sendGet("/")
            _ = try await harness.startedRequestID()
            try probe.send("GET /healthz HTTP/1.1\r\n")
            try await harness.barrier()  // the worker has read the probe's first line: not idle
            harness.server.drain()
            try await harness.logs.waitFor("Draining: stopped accepting connections")
            try probe.send("Host: t\r\n\r\n")
            let draining = try await probe.readResponse()
            #expect(draining.status == 503 && draining.body == "draining\n")
            #expect(draining.headers["connection"] == "close")
        }

        // MARK: Metrics and access log

        @Test("/metrics counts what happened, in Prometheus text")
        func metrics() async throws {
            let harness = try Harness(delay: "40ms", tick: "10ms") { $0.timeout = .seconds(5) }
            let client = try harness.connect()
            try client.sendGet("/")
            #expect(try await client.readResponse().status == 200)
            try client.sendGet("/?timeout=1ms&delay=1s")
            #expect(try await client.readResponse().status == 503)
            let aborted = try harness.connect()
            try aborted.sendGet("/?delay=10s")
            try await eventually("third greeting thinking") { harness.stats.inFlight.load(ordering: .relaxed) == 1 }
            aborted.abort(.rst)
            try await harness.logs.waitFor(contextCanceled)
            try await harness.expectNothingLeft()

            try client.sendGet("/metrics")
            let response = try await client.readResponse()
            #expect(response.status == 200)
            #expect(response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = response.body
            let samples = PrometheusText.samples(in: text)
            let ticks = Double(harness.stats.ticks.load(ordering: .relaxed))
            let outcome = { (value: String) in ["outcome": value] }
            for (name, labels, value) in [
                ("greetd_requests_total", outcome("completed"), 1),
                ("greetd_requests_total", outcome("deadline_exceeded"), 1),
                ("greetd_requests_total", outcome("canceled"), 1),
                ("greetd_requests_total", outcome("shutdown"), 0),
                ("greetd_requests_total", outcome("rejected"), 0),
                ("greetd_requests_in_flight", [:], 0),
                ("greetd_connections_open", [:], 1),
                ("greetd_timer_ticks_total", [:], ticks),
                ("greetd_request_duration_seconds_count", outcome("completed"), 1),
            ] as [(String, [String: String], Double)] {
                #expect(samples.value(of: name, labels: labels) == value, "\(name)\(labels) should be \(value) in:\n\(text)")
            }
            #expect(try #require(samples.value(of: "process_resident_memory_bytes")) > 1_000_000)
            #expect(try #require(samples.value(of: "process_open_fds")) > 3)
            for name in ["greetd_requests_total", "greetd_request_duration_seconds", "greetd_requests_in_flight",
                         "greetd_connections_open", "greetd_timer_ticks_total", "greetd_accept_errors_total",
                         "process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total",
                         "process_start_time_seconds", "greetd_build_info"] {
                #expect(text.hasPrefix("# HELP \(name) ") || text.contains("\n# HELP \(name) "), "no # HELP line for \(name)")
            }
            #expect(samples.value(of: "greetd_build_info", labels: ["version": GreetdMetrics.version]) == 1, "\(text)")
            // Never 0 (1970), whether or not /proc/stat can be read: a day's slack either way.
            let started = try #require(samples.value(of: "process_start_time_seconds"))
            let now = Date().timeIntervalSince1970
            #expect(started > now - 86_400 && started <= now + 1, "start time \(started)")
            #expect(try #require(samples.value(of: "process_cpu_seconds_total")) > 0)
        }

        @Test("access log: one line per request, 499 when the client went away")
        func accessLog() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms")
            let client = try harness.connect()
            try client.sendGet("/?delay=0s")
            let ok = try await client.readResponse()
            let okID = try #require(ok.headers["x-request-id"])
            let okLine = try #require(harness.logs.accessLine(request: okID))
            #expect(okLine.hasPrefix("access method=GET target=/?delay=0s status=200 duration="))
            #expect(okLine.contains(" bytes=14 "))
            try client.sendGet("/missing")
            let missing = try await client.readResponse()
            #expect(harness.logs.accessLine(request: missing.headers["x-request-id"]!)?.contains("status=404") == true)

            let gone = try harness.connect()
            try gone.sendGet("/?delay=10s")
            let id = try await harness.startedRequestID(2)
            gone.abort(.fin)
            try await harness.logs.waitFor(contextCanceled, request: id)
            #expect(harness.logs.accessLine(request: id)?.contains("status=499") == true)
            #expect(harness.logs.accessLine(request: id)?.contains(" bytes=0 ") == true)
        }

        // MARK: Limits

        @Test("--max-connections: past it, a fast 503 and a close; the others still work")
        func maxConnections() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms") { $0.http.maxConnections = 2 }
            let first = try harness.connect()
            let second = try harness.connect()
            try await eventually("two connections adopted") { harness.stats.libevent.liveConnections.load(ordering: .relaxed) == 2 }
            let third = try harness.connect()
            try third.sendGet("/")
            let refused = try await third.readResponse()
            #expect(refused.status == 503)
            #expect(refused.body == "server at connection limit\n")
            #expect(await third.waitForClose())
            #expect(harness.stats.libevent.rejectedConnections.load(ordering: .relaxed) == 1)
            for client in [first, second] {
                try client.sendGet("/")
                #expect(try await client.readResponse().status == 200)
            }
            let metrics = harness.server.metrics.render()
            #expect(metrics.contains(#"greetd_requests_total{outcome="rejected"} 1"#))
        }

        @Test("header timeout: a slowloris client is dropped while normal requests succeed")
        func slowloris() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms") { $0.http.headerTimeout = .milliseconds(150) }
            let slow = try harness.connect()
            let start = ContinuousClock.now
            try slow.send("GET / HTTP/1.1\r\n")
            var closedAt: ContinuousClock.Instant?
            // Dribble a header line every 20 ms for up to 4 s; the server should drop it after ~150 ms.
            for index in 0..<200 {
                try await Task.sleep(for: .milliseconds(20))  // the client's pace, not an ordering
                if (try? slow.send("X-Slow-\(index): a\r\n")) == nil { closedAt = .now; break }
                if index % 5 == 0 {
                    let normal = try harness.connect()
                    try normal.sendGet("/")
                    #expect(try await normal.readResponse().status == 200)
                }
            }
            #expect(await slow.waitForClose(timeout: .seconds(2)))
            let elapsed = (closedAt ?? .now) - start
            #expect(elapsed < .seconds(2), "slow client kept for \(elapsed)")  // ~10x the timeout and the two sends that see it
            #expect(harness.stats.libevent.timedOutConnections.load(ordering: .relaxed) >= 1)
        }

        @Test("idle timeout: a keep-alive connection idle too long is closed")
        func idleKeepAlive() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms") { $0.http.idleTimeout = .milliseconds(100) }
            let client = try harness.connect()
            try client.sendGet("/")
            #expect(try await client.readResponse().status == 200)
            let start = ContinuousClock.now
            #expect(await client.waitForClose(timeout: .seconds(3)))
            #expect(ContinuousClock.now - start < .seconds(2))
            try await harness.expectNothingLeft(connectionsClosed: true)
        }

        @Test("a body over --max-body-bytes gets 413")
        func bodyLimit() async throws {
            let harness = try Harness(delay: "0s", tick: "10ms") { $0.http.maxBodyBytes = 1024 }
            let client = try harness.connect()
            let body = String(repeating: "b", count: 4096)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(try await client.readResponse().status == 413)
            #expect(harness.stats.started.load(ordering: .relaxed) == 0)
        }

        // MARK: Workers

        @Test("--workers 2: both loops serve one port, metrics add up, shutdown drains both")
        func twoWorkers() async throws {
            let harness = try Harness(delay: "20ms", tick: "10ms", workers: 2)
            #expect(harness.server.workers.count == 2)
            for _ in 0..<24 {
                let client = try harness.connect()
                try client.sendGet("/")
                #expect(try await client.readResponse().status == 200)
            }
            let perWorker = harness.server.workers.map { $0.stats.completed.load(ordering: .relaxed) }
            #expect(perWorker.reduce(0, +) == 24)
            #expect(perWorker.allSatisfy { $0 > 0 }, "SO_REUSEPORT spread: \(perWorker)")
            #expect(harness.server.metrics.render().contains(#"greetd_requests_total{outcome="completed"} 24"#))
            let inFlight = try harness.connect()
            try inFlight.sendGet("/?delay=60ms")
            try await eventually("greeting started") { harness.logs.count("Handling greeting request") == 25 }
            harness.server.drain()
            #expect(try await inFlight.readResponse().status == 200)
            try await eventually("both workers stopped") { harness.server.isStopped }
        }
    }
}
