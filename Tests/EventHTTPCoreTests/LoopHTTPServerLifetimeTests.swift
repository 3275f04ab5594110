import EventHTTPSystem
import EventHTTPCore
import Testing

/// An `LoopHTTPServer` dropped while clients are connected frees them without reporting back to the
/// object being destroyed (review finding: `deinit` used to trap on an `unowned` reference).
@Suite struct HTTPServerLifetimeTests {
    /// A responder that keeps every request pending, and closes the server from inside
    /// `handle`: inside evhttp's request callback, where freeing is not allowed.
    final class ClosingResponder: LoopResponder {
        var server: LoopHTTPServer?
        var ends: [(RequestHead, RequestEnd)] = []
        var held: [LoopRequest] = []

        func requestID(number: UInt64, clientValue: String?) -> String { "r\(number)" }

        func handle(_ request: LoopRequest) {
            try? request.watchForAbort()
            held.append(request)
            server?.close()
            #expect(server?.isClosed == false, "close() from inside a callback waits for the safe point")
        }

        func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
            ends.append((head, end))
        }
    }

    @Test func closeFromInsideAHandlerWaitsForTheSafePointAndAbortsThePendingRequestOnce() throws {
        try withBase { base in
            let responder = ClosingResponder()
            let server = try LoopHTTPServer(base: base, responder: responder)
            responder.server = server
            var closed = false
            server.onClosed = { closed = true; base.exit() }
            let port = try #require(server.bind(host: "127.0.0.1", port: 0).first?.port)
            let fd = try connectLoopback(port: port)
            defer { try? SystemCalls.closeDescriptor(fd) }  // only EBADF could fail, and fd is ours
            try sendAll(fd, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
            let watchdog = try Watchdog(base)
            try base.run()
            #expect(!watchdog.expired)
            #expect(closed && server.isClosed)
            #expect(responder.ends.count == 1)
            #expect(responder.ends.first?.0.id == "r1" && responder.ends.first?.0.target == "/hold")
            #expect(responder.ends.first?.1 == .aborted(.serverClosed))
            #expect(responder.held.first?.isPending == false)
            responder.held = []  // a request keeps its (freed) connection's object until it goes
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 0)
            #expect(base.counters.liveRequests.load(ordering: .relaxed) == 0)
        }
    }

    @Test func droppingAServerWithOpenConnectionsClosesThemCleanly() throws {
        try withBase { base in
            var server: LoopHTTPServer? = try LoopHTTPServer(base: base) { request in
                request.respond(status: 200, body: "ok\n")
            }
            let port = try #require(server?.bind(host: "127.0.0.1", port: 0).first?.port)
            // Two idle clients, connected but silent: evhttp accepts and greetd's layer adopts them.
            var clients: [Int32] = []
            defer { for fd in clients { try? SystemCalls.closeDescriptor(fd) } }  // only EBADF could fail
            for _ in 0..<2 { clients.append(try connectLoopback(port: port)) }
            do {
                // Run the loop until both are adopted (no sleep: a check each millisecond).
                let adopted = try Event(base: base, flags: .persist) { _ in
                    if base.counters.liveConnections.load(ordering: .relaxed) == 2 { base.exit() }
                }
                try adopted.add(timeout: .milliseconds(1))
                let watchdog = try Watchdog(base)
                try base.run()
                #expect(!watchdog.expired)
            }
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 2)
            server = nil  // no close(): deinit frees evhttp and with it both connections
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 0)
            // The clients see the server close their connections.
            for fd in clients {
                #expect(receive(fd, until: .now + .seconds(10)) == .failure(.closed))
            }
        }
    }
}
