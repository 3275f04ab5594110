import EventHTTP
import GreetdClient
import Testing

// Server-sent events, and handlers cancelled when their client leaves or their deadline passes.

/// A cancellation reason in a word, for probe events.
func describe(_ reason: CancellationReason?) -> String {
    switch reason {
    case .clientGone?: "clientGone"
    case .deadlineExceeded?: "deadlineExceeded"
    case .shutdown(let words)?: "shutdown \(words)"
    case nil: "none"
    }
}

/// A route at `path` whose handler records `started`, sleeps on its loop for far longer than
/// any test waits, and records `cancelled <reason>` when its Task is cancelled.
func addSleeper(_ router: Router, _ path: String, probe: Probe, deadline: Duration? = nil) {
    router.get(path, deadline: deadline) { _, context -> String in
        probe.record("started \(path)")
        do {
            try await context.executor.sleep(for: .seconds(60))
        } catch {
            probe.record("cancelled \(path) \(describe(context.cancellationReason)) \(error is CancellationError)")
            throw error
        }
        return "slept"
    }
}

@Suite("FrontDoor streaming and cancellation")
struct FrontDoorStreamingTests {
    @Test("an event stream sends id, multi-line data, retry, comments and heartbeats; the handler reads Last-Event-ID")
    func serverSentEvents() async throws {
        let probe = Probe()
        let router = Router()
        router.get("/events") { request, _ in
            let resumedFrom = request.lastEventID ?? "none"
            return Response.eventStream(heartbeat: .milliseconds(20)) { sse in
                try await sse.send(ServerSentEvent(id: "42", data: "resumed after \(resumedFrom)"))
                try await sse.send(ServerSentEvent(event: "multi", id: "43", data: "line one\nline two", retry: .milliseconds(1500)))
                try await sse.comment("a comment")
                // Heartbeats flow while the handler waits for the test to have seen them.
                try await probe.wait(for: "heartbeats seen")
                try await sse.send(ServerSentEvent(data: "last"))
            }
        }
        try await withServer(router) { server in
            let connection = try server.connect()
            try connection.sendGet("/events", extraHeaders: "Last-Event-ID: 41\r\n")
            var text = try await read(connection, until: ": a comment\n\n")
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(text.lowercased().contains("content-type: text/event-stream"))
            #expect(text.lowercased().contains("cache-control: no-cache"))
            #expect(text.lowercased().contains("x-accel-buffering: no"))
            #expect(text.contains("id: 42\ndata: resumed after 41\n\n"))
            #expect(text.contains("event: multi\nid: 43\nretry: 1500\ndata: line one\ndata: line two\n\n"))
            // Two heartbeats after the comment: they keep coming while no event does.
            let afterComment = text.count
            text = try await read(connection, after: text) { text in
                text.dropFirst(afterComment).components(separatedBy: ": keep-alive\n\n").count >= 3
            }
            probe.record("heartbeats seen")
            text = try await read(connection, until: "data: last\n\n", after: text)
            // The stream ends with the handler: the chunked body's last chunk.
            text = try await read(connection, until: "\r\n0\r\n\r\n", after: text)
        }
    }

    @Test("a client that leaves mid-handler (FIN or RST) cancels it with clientGone", arguments: [ClientAbort.fin, .rst])
    func clientAbortCancels(style: ClientAbort) async throws {
        let probe = Probe()
        let router = Router()
        addSleeper(router, "/slow", probe: probe)
        try await withServer(router) { server in
            let connection = try server.connect()
            try connection.sendGet("/slow")
            try await probe.wait(for: "started /slow")
            connection.abort(style)
            try await probe.wait(for: "cancelled /slow clientGone true")
        }
    }

    @Test("a route's deadline cancels its handler with deadlineExceeded, and the client gets 503")
    func deadlineCancels() async throws {
        let probe = Probe()
        let router = Router()
        addSleeper(router, "/bounded", probe: probe, deadline: .milliseconds(50))
        try await withServer(router) { server in
            let reply = try await server.exchange("GET", "/bounded")
            #expect(reply.status == 503)
            #expect(reply.body.contains("deadline exceeded"))
            #expect(probe.count("cancelled /bounded deadlineExceeded true") == 1)
        }
    }
}
