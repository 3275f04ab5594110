import EventHTTP
import GreetdClient
import EventHTTPSystem
import Synchronization
import Testing

/// Streamed responses (`ResponseBody.stream`): chunks sent as written, aborts mid-stream,
/// backpressure, HTTP/1.0, HEAD. (Server-sent events are FrontDoorStreamingTests'.)
@Suite struct StreamingTests {
    /// Each chunk reaches the client before the next is written (the handler waits for the
    /// test to have read it): nothing is held back. The connection then serves the next request.
    @Test func eachChunkArrivesWhenWritten() async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/events") { _, _ in
                Response(headers: [.contentType: "text/event-stream"], body: .stream { writer in
                    for tick in 0..<3 {
                        try await writer.write("event: thinking\ndata: \(tick)\n\n")
                        try await probe.wait(for: "read \(tick)")
                    }
                })
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/events", extraHeaders: "X-Request-Id: e1\r\n")
        var text = ""
        for tick in 0..<3 {
            text = try await read(client, until: "data: \(tick)\n\n", after: text)
            loop.probe.record("read \(tick)")
        }
        text = try await read(client, until: "\r\n0\r\n\r\n", after: text)
        let reply = try HTTPReply(parsing: text)
        #expect(reply.status == 200)
        #expect(reply.headers["Transfer-Encoding"] == "chunked")
        #expect(reply.headers["Content-Type"] == "text/event-stream")
        #expect(reply.headers["X-Request-Id"] == "e1")
        #expect(reply.body == (0..<3).map { "event: thinking\ndata: \($0)\n\n" }.joined())
        try await loop.probe.wait(for: "end e1 200 \(reply.bodyBytes.count)")
        // Keep-alive: the connection serves the next request.
        try client.sendGet("/nope")
        #expect(try await client.readResponse().status == 404)
        await loop.stop()
    }

    /// A client leaving mid-stream cancels the handler once; the end is reported once, aborted.
    @Test(arguments: [ClientAbort.fin, .rst, .half])
    func abortMidStreamCancelsOnce(style: ClientAbort) async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/events") { _, context in
                Response(body: .stream { writer in
                    defer { probe.record("defer") }
                    try await withTaskCancellationHandler {
                        while true {
                            try await writer.write("data: tick\n\n")
                            try await context.executor.sleep(for: .milliseconds(5))
                        }
                    } onCancel: {
                        probe.record("cancel")
                    }
                })
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/events", extraHeaders: "X-Request-Id: m1\r\n")
        _ = try await read(client, until: "data: tick\n\n")
        client.abort(style)
        try await loop.probe.wait(for: "defer")
        try await loop.probe.wait(for: "end")
        #expect(loop.probe.count("cancel") == 1)
        let ends = loop.probe.events(prefix: "end m1")
        #expect(ends.count == 1 && ends.first?.contains("aborted") == true, "\(ends)")
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
        #expect(loop.counters.liveRequests.load(ordering: .relaxed) == 0)
        #expect(loop.counters.liveConnections.load(ordering: .relaxed) == 0)
    }

    /// 50 MB to a client that does not read: the writer suspends with the server's queue
    /// under one high watermark (64 KiB) plus one chunk; then the client reads it all.
    @Test func aNonReadingClientStaysBounded() async throws {
        let chunk = [UInt8](repeating: 0x61, count: 64 * 1024), total = 50 * 1024 * 1024
        let stash = WriterBox()
        let loop = try await LiveLoop.start { router, probe in
            router.get("/big") { _, _ in
                Response(headers: [.contentType: "application/octet-stream"], body: .stream { writer in
                    stash.writer.withLock { $0 = writer }
                    defer { stash.writer.withLock { $0 = nil } }
                    var written = 0
                    while written < total {
                        try await stash.write(chunk, with: writer)
                        written += chunk.count
                    }
                    probe.record("wrote all")
                })
            }
        }
        let bound = 64 * 1024 + chunk.count + 64
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/big")
        let suspended = try await stash.waitUntilSuspended(on: loop)
        #expect(suspended.queued <= bound, "queued \(suspended.queued)")
        // Now read everything: the writer resumes; the queue never passed the bound.
        let fd = client.fd
        let received = try await offCooperativePool { () throws -> Int in
            var count = 0
            let end = ContinuousClock.now + .seconds(60)
            while true {
                switch receive(fd, until: end) {
                case .success(let bytes):
                    count += bytes.count
                    if bytes.suffix(5) == Array("0\r\n\r\n".utf8) { return count }
                case .failure(let why): throw TestFailure("\(why) after \(count) bytes")
                }
            }
        }
        #expect(received > total)
        try await loop.probe.wait(for: "wrote all")
        #expect(stash.maxQueued.load(ordering: .relaxed) <= bound, "max queued \(stash.maxQueued.load(ordering: .relaxed))")
        await loop.stop()
    }

    /// A client that leaves while the writer is suspended for backpressure: the write wakes and
    /// throws clientGone, the Task is cancelled once, the request (which evhttp may have
    /// detached on a failed write) is freed once.
    @Test(arguments: [ClientAbort.fin, .rst, .half])
    func abortWhileTheWriterIsSuspended(style: ClientAbort) async throws {
        let chunk = [UInt8](repeating: 0x62, count: 256 * 1024)
        let stash = WriterBox()
        let loop = try await LiveLoop.start { router, probe in
            router.get("/big") { _, _ in
                Response(body: .stream { writer in
                    defer { probe.record("defer") }
                    stash.writer.withLock { $0 = writer }
                    defer { stash.writer.withLock { $0 = nil } }
                    await withTaskCancellationHandler {
                        do {
                            while true { try await stash.write(chunk, with: writer) }
                        } catch {
                            probe.record("write threw \(error)")
                        }
                    } onCancel: {
                        probe.record("cancel")
                    }
                })
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.sendGet("/big", extraHeaders: "X-Request-Id: w1\r\n")
        _ = try await stash.waitUntilSuspended(on: loop)
        client.abort(style)
        try await loop.probe.wait(for: "defer")
        try await loop.probe.wait(for: "end")
        #expect(loop.probe.count("cancel") == 1)
        #expect(loop.probe.events(prefix: "write threw client gone").count == 1, "\(loop.probe.events(prefix: "write"))")
        #expect(loop.probe.events(prefix: "end w1 aborted").count == 1)
        #expect(loop.probe.events(prefix: "failure").isEmpty)
        await loop.stop()
        #expect(loop.counters.liveRequests.load(ordering: .relaxed) == 0)
        #expect(loop.counters.liveConnections.load(ordering: .relaxed) == 0)
    }

    /// HTTP/1.0 gets a close-delimited stream, keep-alive asked or not, and the handler sees
    /// `request.isHTTP10`.
    @Test(arguments: ["", "Connection: keep-alive\r\n"])
    func http10GetsACloseDelimitedStream(extra: String) async throws {
        let loop = try await LiveLoop.start { router, _ in
            router.get("/events") { request, _ in
                Response(headers: [HTTPField.Name("X-HTTP10")!: "\(request.isHTTP10)"], body: .stream { writer in
                    for tick in 0..<3 { try await writer.write("data: \(tick)\n\n") }
                })
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.send("GET /events HTTP/1.0\r\nX-Request-Id: h1\r\n\(extra)\r\n")
        let (text, end) = await client.readToEnd()
        #expect(end == .closed)
        let parts = text.components(separatedBy: "\r\n\r\n")
        #expect(parts.first?.hasPrefix("HTTP/1.0 200") == true, "\(text)")
        #expect(parts.first?.contains("Connection: close") == true)
        #expect(parts.first?.contains("X-HTTP10: true") == true)
        #expect(parts.first?.contains("Transfer-Encoding") == false)
        #expect(parts.first?.contains("Content-Length") == false)
        #expect(parts.dropFirst().joined(separator: "\r\n\r\n") == "data: 0\n\ndata: 1\n\ndata: 2\n\n")
        try await loop.probe.wait(for: "end h1 200 27")
        await loop.stop()
    }

    /// `HEAD` on a `GET` route, whole and streamed: the head only, no body bytes, and the
    /// connection serves the next request.
    @Test func headGetsTheHeadOnly() async throws {
        let loop = try await LiveLoop.start { router, probe in
            router.get("/whole") { _, _ in "hello\n" }
            router.get("/stream") { _, _ in
                Response(body: .stream { writer in
                    try await writer.write("data: 0\n\n")
                    probe.record("stream handler ran")
                })
            }
        }
        let client = try LoopbackConnection(port: loop.port)
        try client.send("HEAD /whole HTTP/1.1\r\nHost: t\r\nX-Request-Id: w1\r\n\r\n")
        let whole = try await client.readResponse(requestMethod: "HEAD")
        #expect(whole.status == 200)
        #expect(whole.contentLength == 6)
        #expect(whole.bodyBytes.isEmpty)
        try client.send("HEAD /stream HTTP/1.1\r\nHost: t\r\nX-Request-Id: s1\r\n\r\n")
        let streamed = try await client.readResponse(requestMethod: "HEAD")
        #expect(streamed.status == 200)
        #expect(streamed.bodyBytes.isEmpty)
        // The next answer on the connection starts cleanly: no stray body bytes before it.
        try client.sendGet("/whole")
        let next = try await client.readResponse()
        #expect(next.status == 200 && next.body == "hello\n")
        await loop.stop()
    }

    /// 1,000 streams, aborted at random (style and order), in batches of 200: one cancel each,
    /// one aborted end each, and nothing left behind.
    @Test func aThousandStreamsAbortedAtRandom() async throws {
        try raiseOpenFileLimit()
        let loop = try await LiveLoop.start { router, probe in
            router.get("/events") { _, context in
                Response(body: .stream { writer in
                    defer { probe.record("done") }
                    try await withTaskCancellationHandler {
                        try await writer.write("data: hi\n\n")
                        try await context.executor.sleep(for: .seconds(60))
                    } onCancel: {
                        probe.record("cancel \(context.requestID)")
                    }
                })
            }
        }
        var generator = SystemRandomNumberGenerator()
        for batch in 0..<5 {
            var clients: [(String, LoopbackConnection)] = []
            for index in 0..<200 {
                let id = "r\(batch)-\(index)"
                let client = try LoopbackConnection(port: loop.port)
                client.moveAboveSelectRange()
                try client.sendGet("/events", extraHeaders: "X-Request-Id: \(id)\r\n")
                clients.append((id, client))
            }
            for (_, client) in clients { _ = try await read(client, until: "data: hi\n\n") }
            clients.shuffle(using: &generator)
            for (_, client) in clients { client.abort([ClientAbort.fin, .rst, .half].randomElement(using: &generator)!) }
            try await loop.probe.wait(for: "done", count: 200 * (batch + 1), timeout: .seconds(60))
            try await loop.probe.wait(for: "end", count: 200 * (batch + 1), timeout: .seconds(60))
            for (id, _) in clients {
                #expect(loop.probe.count("cancel \(id)") == 1, "\(id)")
                #expect(loop.probe.events(prefix: "end \(id) ").count == 1, "\(id)")
            }
            withExtendedLifetime(clients) {}
        }
        #expect(loop.probe.events(prefix: "end ").allSatisfy { $0.contains("aborted") })
        #expect(await loop.onLoop { loop.executor.pendingSleeps } == 0)
        await loop.stop()
        #expect(loop.counters.liveRequests.load(ordering: .relaxed) == 0)
        #expect(loop.counters.liveConnections.load(ordering: .relaxed) == 0)
        #expect(loop.counters.liveEvents.load(ordering: .relaxed) == 0)
    }
}

/// Hands a stream's writer to the test, and tells whether a write is suspended. The writer's
/// members are read only on the loop thread (through `LiveLoop.onLoop`).
final class WriterBox: Sendable {
    let writer = Lock<ResponseBodyWriter?>(nil)
    let maxQueued = Atomic<Int>(0)
    private let inWrite = Atomic<Bool>(false)

    /// Writes `bytes`, marking the write as under way, and keeps the largest queue seen after one.
    /// Loop thread (the handler's Task).
    func write(_ bytes: [UInt8], with writer: ResponseBodyWriter) async throws(ResponseError) {
        inWrite.store(true, ordering: .relaxed)
        defer { inWrite.store(false, ordering: .relaxed) }
        try await writer.write(bytes)
        let queued = writer.queuedBytes
        if queued > maxQueued.load(ordering: .relaxed) { maxQueued.store(queued, ordering: .relaxed) }
    }

    /// Waits (checking on the loop, each 10 ms) until a write is suspended for backpressure:
    /// the writer's Task runs on the loop thread, and a write only suspends to wait for the
    /// connection to drain, so a write under way seen from another loop job is one waiting.
    /// Returns the bytes queued then.
    func waitUntilSuspended(on loop: LiveLoop) async throws -> (waiting: Bool, queued: Int) {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            let state: (waiting: Bool, queued: Int) = await loop.onLoop {
                guard let writer = self.writer.withLock({ $0 }), self.inWrite.load(ordering: .relaxed) else { return (false, 0) }
                return (true, writer.queuedBytes)
            }
            if state.waiting { return state }
        }
        throw TestFailure("the writer never suspended")
    }
}
