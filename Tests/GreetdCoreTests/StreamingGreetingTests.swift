@testable import GreetdCore
import GreetdClient
import EventHTTPSystem
import Testing
import TestSupport

let thinkingEvent = "event: thinking\ndata: Greetings are hard. Thinking...\n\n"
let greetingEvent = "event: greeting\ndata: Hello Gopher!\n\n"
let streamAccept = "Accept: text/event-stream\r\n"

/// What a client has read of one response so far, read off the cooperative pool.
final class StreamReading: @unchecked Sendable {
    // @unchecked Sendable: used by one test task at a time (each read awaits the previous).
    let connection: LoopbackConnection
    private(set) var text = ""
    private(set) var end: StreamEnd?

    init(_ connection: LoopbackConnection) { self.connection = connection }

    /// Reads until the text holds `needle` `count` times.
    func read(until needle: String, count: Int = 1, timeout: Duration = .seconds(10)) async throws {
        let fd = connection.fd, previous = text
        text = try await offCooperativePool {
            var text = previous
            let deadline = ContinuousClock.now + timeout
            while text.occurrences(of: needle) < count {
                switch receive(fd, until: deadline) {
                case .success(let bytes): text += String(decoding: bytes, as: UTF8.self)
                case .failure(let end): throw TestFailure("\(end) before \(count)× \(needle.debugDescription); got \(text.debugDescription)")
                }
            }
            return text
        }
    }

    /// Reads until the server closes (or resets) the connection, or `timeout` passes.
    func readToEnd(timeout: Duration = .seconds(10)) async throws {
        let fd = connection.fd, previous = text
        let (text, end) = try await offCooperativePool {
            var text = previous
            let deadline = ContinuousClock.now + timeout
            while true {
                switch receive(fd, until: deadline) {
                case .success(let bytes): text += String(decoding: bytes, as: UTF8.self)
                case .failure(let end): return (text, end)
                }
            }
        }
        self.text = text
        self.end = end
    }

    /// The response read so far, parsed (framing removed).
    func reply(method: String = "GET") throws -> HTTPReply { try HTTPReply(parsing: text, requestMethod: method) }

    /// The events of the body read so far.
    func events() throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        return parser.append(contentsOf: try reply().bodyBytes)
    }
}

extension String {
    func occurrences(of needle: String) -> Int {
        guard !needle.isEmpty else { return 0 }
        var count = 0, rest = self[...]
        while let range = rest.range(of: needle) {
            count += 1
            rest = rest[range.upperBound...]
        }
        return count
    }
}

/// Which greeting streams: the timer greeting's stream mode (`GET /`), or the async handler on
/// the library's runner (`?async=1`). Both speak the same script.
enum StreamPath: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case timer, async

    /// `target` with `async=1` added to its query for ``async``.
    func target(_ target: String = "/") -> String {
        self == .timer ? target : target + (target.contains("?") ? "&" : "?") + "async=1"
    }

    var testDescription: String { rawValue }
}

extension Harness {
    /// Opens a connection and asks for the streaming greeting at `target`.
    func startStream(_ target: String = "/", extraHeaders: String = streamAccept) throws -> StreamReading {
        let client = try connect()
        try client.sendGet(target, extraHeaders: extraHeaders)
        return StreamReading(client)
    }
}

extension LiveServer {
    /// The streaming (SSE) greeting: the seed's loop on loop timers, written as it is logged.
    @Suite("Streaming greeting")
    struct StreamingGreetingTests {
        @Test("each event arrives when its line is logged, not buffered; then the greeting and the end",
              arguments: StreamPath.allCases)
        func eventsArriveWhenLogged(path: StreamPath) async throws {
            // Ticks 300 ms apart: event N is read long before tick N+1 is due.
            let harness = try Harness(delay: "900ms", tick: "300ms")
            let stream = try harness.startStream(path.target())
            try await stream.read(until: "\r\n\r\n")
            let head = try HTTPReply(parsing: stream.text + "0\r\n\r\n")
            #expect(head.status == 200)
            #expect(head.headers["content-type"] == "text/event-stream")
            #expect(head.headers["cache-control"] == "no-cache")
            #expect(head.headers["transfer-encoding"] == "chunked")
            let id = try #require(head.headers["x-request-id"])
            for n in 1...3 {
                try await stream.read(until: thinkingEvent, count: n)
                #expect(harness.logs.messages(request: id).filter { $0 == thinking }.count == n,
                        "event \(n) read while the log has \(n) ticks")
            }
            try await stream.read(until: "\r\n0\r\n\r\n")
            #expect(try stream.reply().body == String(repeating: thinkingEvent, count: 3) + greetingEvent)
            _ = try await harness.logs.waitForAccessLine(request: id)
            #expect(harness.logs.messages(request: id) == ["Handling greeting request", thinking, thinking, thinking, "Handled greeting request"])
            #expect(harness.logs.accessLine(request: id)?.contains("status=200") == true)
            #expect(harness.stats.completed.load(ordering: .relaxed) == 1)
            // Keep-alive: the connection serves the next request.
            try stream.connection.sendGet("/healthz")
            try await stream.read(until: "ok\n")
            try await harness.expectNothingLeft()
        }

        @Test("ticks follow the plain greeting's rule: one per tick due by the delay",
              arguments: [("200ms", 5), ("210ms", 5), ("190ms", 4), ("30ms", 0)])
        func tickCount(delay: String, ticks: Int) async throws {
            let harness = try Harness(delay: delay, tick: "40ms")
            let stream = try harness.startStream()
            try await stream.read(until: "\r\n0\r\n\r\n")
            let events = try stream.events()
            #expect(events.map(\.type) == Array(repeating: "thinking", count: ticks) + ["greeting"])
            #expect(events.last?.data == "Hello Gopher!")
            // The timer greeting with the same delay logs as many ticks.
            let plain = try harness.connect()
            try plain.sendGet("/")
            let answer = try await plain.readResponse()
            #expect(answer.body == "Hello Gopher!\n")
            let plainID = try #require(answer.headers["x-request-id"])
            _ = try await harness.logs.waitForAccessLine(request: plainID)
            #expect(harness.logs.messages(request: plainID).filter { $0 == thinking }.count == ticks)
        }

        @Test("a client leaving mid-stream: one context error at once, no tick after, 499, counted canceled",
              arguments: ClientAbort.allCases, Backend.allCases)
        func abortMidStream(style: ClientAbort, backend: Backend) async throws {
            try await abortMidStream(style: style, backend: backend, path: .timer)
        }

        @Test("the async handler's stream (?async=1): the same, for each way a client leaves",
              arguments: ClientAbort.allCases)
        func abortMidAsyncStream(style: ClientAbort) async throws {
            try await abortMidStream(style: style, backend: Backend.allCases[0], path: .async)
        }

        private func abortMidStream(style: ClientAbort, backend: Backend, path: StreamPath) async throws {
            let harness = try Harness(delay: "30s", tick: "10ms", backend: backend)
            let stream = try harness.startStream(path.target())
            try await stream.read(until: thinkingEvent, count: 2)
            let id = try #require(try HTTPReply(parsing: stream.text + "0\r\n\r\n").headers["x-request-id"])
            stream.connection.abort(style)
            try await harness.logs.waitFor(contextCanceled, request: id)
            let access = try await harness.logs.waitForAccessLine(request: id)
            // The access line shows what the stream sent (its 200 and two events); the outcome
            // (below) is still the client's `canceled`.
            let sent = access.split(separator: " ").first { $0.hasPrefix("bytes=") }.flatMap { Int($0.dropFirst(6)) } ?? 0
            #expect(access.contains("status=200") && sent > 0, "\(access)")
            try await harness.expectNothingLeft(connectionsClosed: true)
            #expect(harness.stats.canceled.load(ordering: .relaxed) == 1)
            #expect(harness.stats.completed.load(ordering: .relaxed) == 0)
            #expect(harness.server.metrics.render().contains(#"outcome="canceled"} 1"#))
            try await harness.loopRunsTimers(forMilliseconds: 50)  // five more ticks' worth
            harness.expectNoTickAfterCancel(id)
            let messages = harness.logs.messages(request: id).filter { $0 != "Client went away" }
            #expect(messages.last == "Handled greeting request" && messages.dropLast().last == contextCanceled, "\(messages)")
        }

        @Test("the deadline (?timeout= and --timeout): an error event with Go's words, then the end",
              arguments: StreamPath.allCases)
        func deadline(path: StreamPath) async throws {
            let harness = try Harness(delay: "10s", tick: "30ms") { $0.timeout = .milliseconds(200) }
            for (target, budget) in [("/?timeout=100ms", Duration.milliseconds(100)), ("/", .milliseconds(200))] {
                let stream = try harness.startStream(path.target(target))
                try await stream.read(until: "\r\n0\r\n\r\n")
                let reply = try stream.reply()
                #expect(reply.status == 200)
                let events = try stream.events()
                #expect(events.last == ServerSentEvent(type: "error", data: "context deadline exceeded"))
                #expect(events.dropLast().allSatisfy { $0.type == "thinking" } && events.count > 1, "\(events)")
                let id = try #require(reply.headers["x-request-id"])
                let access = try await harness.logs.waitForAccessLine(request: id)
                #expect(try accessDuration(access) >= budget, "never before the deadline: \(access)")
                let messages = harness.logs.messages(request: id)
                #expect(messages.suffix(2) == ["Context Error: context deadline exceeded", "Handled greeting request"])
                #expect(messages.filter { $0 == thinking }.count == events.count - 1, "one event per tick line")
            }
            #expect(harness.stats.deadlineExceeded.load(ordering: .relaxed) == 2)
            try await harness.expectNothingLeft()
        }

        @Test("shutdown past its budget: each stream gets an error event and its end, the connection closes, the service stops",
              arguments: StreamPath.allCases)
        func shutdownWithStreamsInFlight(path: StreamPath) async throws {
            let harness = try Harness(delay: "30s", tick: "10ms") { $0.shutdownTimeout = .milliseconds(50) }
            let streams = try (0..<3).map { _ in try harness.startStream(path.target()) }
            for stream in streams { try await stream.read(until: thinkingEvent) }
            harness.server.drain()
            for stream in streams {
                try await stream.readToEnd()
                #expect(stream.end == .closed, "the server closes the connection after the end")
                let reply = try stream.reply()
                #expect(reply.status == 200)
                #expect(stream.text.hasSuffix("\r\n0\r\n\r\n"), "the stream ends with its last chunk")
                #expect(try stream.events().last == ServerSentEvent(type: "error", data: "server shutting down"))
                let id = try #require(reply.headers["x-request-id"])
                #expect(harness.logs.messages(request: id).suffix(2)
                        == ["Context Error: context canceled (cause: server shutting down)", "Handled greeting request"])
            }
            try await eventually("service stopped") { harness.server.isStopped }
            #expect(harness.stats.shutdown.load(ordering: .relaxed) == 3)
            #expect(harness.stats.inFlight.load(ordering: .relaxed) == 0)
            #expect(harness.stats.liveGreetings.load(ordering: .relaxed) == 0)
        }

        @Test("drain within the budget: a stream in flight finishes with its greeting, then its connection closes",
              arguments: StreamPath.allCases)
        func drainLetsAStreamFinish(path: StreamPath) async throws {
            let harness = try Harness(delay: "300ms", tick: "100ms") { $0.shutdownTimeout = .seconds(5) }
            let stream = try harness.startStream(path.target())
            try await stream.read(until: "\r\n\r\n")
            harness.server.drain()
            try await stream.readToEnd()
            #expect(stream.end == .closed)
            #expect(try stream.events().map(\.type) == ["thinking", "thinking", "thinking", "greeting"])
            try await eventually("service stopped") { harness.server.isStopped }
            #expect(harness.stats.completed.load(ordering: .relaxed) == 1)
        }

        @Test("HTTP/1.0: a close-delimited stream")
        func http10() async throws {
            let harness = try Harness(delay: "100ms", tick: "40ms")
            let stream = StreamReading(try harness.connect())
            try stream.connection.send("GET / HTTP/1.0\r\nHost: t\r\n\(streamAccept)\r\n")
            try await stream.readToEnd()
            #expect(stream.end == .closed)
            #expect(stream.text.hasPrefix("HTTP/1.0 200") || stream.text.hasPrefix("HTTP/1.1 200"), "\(stream.text)")
            let (head, body) = try #require(stream.text.split(separator: "\r\n\r\n", maxSplits: 1).map(String.init).pairs)
            #expect(!head.lowercased().contains("transfer-encoding"))
            #expect(head.lowercased().contains("connection: close"))
            #expect(body == thinkingEvent + thinkingEvent + greetingEvent)
            try await harness.expectNothingLeft(connectionsClosed: true)
        }

        @Test("HEAD with the same Accept: the stream's headers only, at once; the connection stays usable")
        func head() async throws {
            let harness = try Harness(delay: "30s", tick: "10ms")
            let client = try harness.connect()
            try client.send("HEAD / HTTP/1.1\r\nHost: t\r\n\(streamAccept)\r\n")
            let reply = try await client.readResponse(requestMethod: "HEAD")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "text/event-stream")
            #expect(reply.headers["cache-control"] == "no-cache")
            #expect(reply.body.isEmpty)
            try client.sendGet("/healthz")
            #expect(try await client.readResponse().body == "ok\n")
            #expect(harness.logs.count(thinking) == 0)
        }

        @Test("?delay= above --max-delay is capped, and the stream's headers say so")
        func cappedDelay() async throws {
            let harness = try Harness(delay: "30s", tick: "40ms") { $0.maxDelay = .milliseconds(100) ; $0.delay = .milliseconds(50) }
            let stream = try harness.startStream("/?stream=1&delay=1h", extraHeaders: "")
            try await stream.read(until: "\r\n0\r\n\r\n")
            #expect(try stream.reply().headers["x-delay-capped"] == "100ms")
            #expect(try stream.events().map(\.type) == ["thinking", "thinking", "greeting"])
        }

        @Test("who asks for the stream: Accept with media ranges and weights, ?stream=1")
        func acceptParsing() {
            for yes in ["text/event-stream", "text/event-stream;q=0.9, */*", "TEXT/Event-Stream ; q=1",
                        "application/json, text/event-stream", "text/event-stream;charset=utf-8",
                        "text/event-stream;q=0.001", "text/html;q=0, text/event-stream", "text/event-stream;q=x"] {
                #expect(acceptsEventStream(yes), "\(yes)")
            }
            for no in ["*/*", "text/*", "text/html", "text/event-stream;q=0", "text/event-stream; q=0.0, text/html",
                       "text/event-streams", "", "text/event-stream;q=0, */*"] {
                #expect(!acceptsEventStream(no), "\(no)")
            }
        }

        @Test("live: q=0 and */* get the plain greeting; ?stream=1 the stream")
        func acceptLive() async throws {
            let harness = try Harness(delay: "0s", tick: "40ms")
            for accept in ["Accept: */*\r\n", "Accept: text/event-stream;q=0\r\n"] {
                let client = try harness.connect()
                try client.sendGet("/", extraHeaders: accept)
                let reply = try await client.readResponse()
                #expect(reply.body == "Hello Gopher!\n" && reply.headers["content-type"]?.hasPrefix("text/plain") == true)
            }
            for (target, accept) in [("/?stream=1", ""), ("/", "Accept: text/event-stream;q=0.9, */*\r\n")] {
                let stream = try harness.startStream(target, extraHeaders: accept)
                try await stream.read(until: "\r\n0\r\n\r\n")
                #expect(try stream.events() == [ServerSentEvent(type: "greeting", data: "Hello Gopher!")])
            }
        }

        /// In batches of 250 in flight at once: a `select` server (`EVENT_NOEPOLL=1 EVENT_NOPOLL=1`)
        /// cannot hold 1,000 descriptors (`FD_SETSIZE`).
        @Test("1,000 streams aborted at random: exactly one cancel each, nothing left, counters back")
        func thousandAborts() async throws {
            try raiseOpenFileLimit()
            let batch = 250, batches = 4
            let harness = try Harness(delay: "60s", tick: "20ms")
            var generator = SystemRandomNumberGenerator()
            for round in 1...batches {
                var streams: [StreamReading] = []
                for _ in 0..<batch {
                    let client = try harness.connect()
                    client.moveAboveSelectRange()
                    try client.sendGet("/?stream=1")
                    streams.append(StreamReading(client))
                }
                for stream in streams { try await stream.read(until: "\r\n\r\n") }  // every stream started
                for stream in streams.shuffled(using: &generator) {
                    stream.connection.abort(ClientAbort.allCases.randomElement(using: &generator)!)
                    if Int.random(in: 0..<20, using: &generator) == 0 {
                        try await Task.sleep(for: .milliseconds(Int.random(in: 1...6, using: &generator)))
                    }
                }
                try await eventually(timeout: .seconds(30), "\(batch * round) cancelled") {
                    harness.stats.canceled.load(ordering: .relaxed) == batch * round
                }
                try await harness.expectNothingLeft(connectionsClosed: true)
                withExtendedLifetime(streams) {}
            }
            let count = batch * batches
            try await harness.loopRunsTimers(forMilliseconds: 60)  // three more ticks' worth
            #expect(harness.logs.count(contextCanceled) == count)
            let started = harness.logs.requestIDs(logging: "Handling greeting request")
            #expect(started.count == count + 1)
            for id in started.prefix(count) { harness.expectNoTickAfterCancel(id) }
            #expect(harness.stats.canceled.load(ordering: .relaxed) == count)
            #expect(harness.stats.completed.load(ordering: .relaxed) == 1)  // the probe
            #expect(harness.server.metrics.render().contains(#"outcome="canceled"} \#(count)"#))
        }
    }

    /// `?async=1`: the plain greeting as an async handler on loop timers (the benchmarks' route).
    @Suite("Async greeting")
    struct AsyncGreetingTests {
        @Test("?async=1&delay=0s answers at once; with a delay it ticks like the timer greeting")
        func answers() async throws {
            let harness = try Harness(delay: "100ms", tick: "40ms")
            let client = try harness.connect()
            for (target, ticks) in [("/?async=1&delay=0s", 0), ("/?async=1", 2)] {
                try client.sendGet(target)
                let reply = try await client.readResponse()
                #expect(reply.status == 200 && reply.body == "Hello Gopher!\n")
                let id = try #require(reply.headers["x-request-id"])
                _ = try await harness.logs.waitForAccessLine(request: id)
                #expect(harness.logs.messages(request: id)
                        == ["Handling greeting request"] + Array(repeating: thinking, count: ticks) + ["Handled greeting request"])
            }
            try client.sendGet("/?async=1&timeout=20ms&delay=1s")
            let late = try await client.readResponse()
            #expect(late.status == 503 && late.body == "greeting timed out after 20ms\n")
            #expect(harness.stats.completed.load(ordering: .relaxed) == 2)
            #expect(harness.stats.deadlineExceeded.load(ordering: .relaxed) == 1)
            try await harness.expectNothingLeft()
        }

        @Test("an abort cancels the handler's Task: one context error, 499, no tick after, nothing left",
              arguments: ClientAbort.allCases)
        func abort(style: ClientAbort) async throws {
            let harness = try Harness(delay: "30s", tick: "10ms")
            let client = try harness.connect()
            try client.sendGet("/?async=1")
            let id = try await harness.startedRequestID()
            try await harness.logs.waitFor(thinking, request: id)
            client.abort(style)
            try await harness.logs.waitFor(contextCanceled, request: id)
            #expect(try await harness.logs.waitForAccessLine(request: id).contains("status=499"))
            try await harness.expectNothingLeft(connectionsClosed: true)
            #expect(harness.stats.canceled.load(ordering: .relaxed) == 1)
            try await harness.loopRunsTimers(forMilliseconds: 50)
            harness.expectNoTickAfterCancel(id)
        }

        @Test("shutdown past its budget: 503 server shutting down, Connection: close")
        func shutdown() async throws {
            let harness = try Harness(delay: "30s", tick: "10ms") { $0.shutdownTimeout = .milliseconds(30) }
            let client = try harness.connect()
            try client.sendGet("/?async=1")
            _ = try await harness.startedRequestID()
            harness.server.drain()
            let reply = try await client.readResponse()
            #expect(reply.status == 503 && reply.body == "server shutting down\n")
            #expect(reply.headers["connection"] == "close")
            try await eventually("service stopped") { harness.server.isStopped }
            #expect(harness.stats.shutdown.load(ordering: .relaxed) == 1)
        }
    }
}

extension Array where Element == String {
    /// The two elements of a two-element array.
    fileprivate var pairs: (String, String)? { count == 2 ? (self[0], self[1]) : nil }
}
