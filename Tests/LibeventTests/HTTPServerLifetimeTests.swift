#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Libevent
import Testing

/// An `HTTPServer` dropped while clients are connected frees them without reporting back to the
/// object being destroyed (review finding: `deinit` used to trap on an `unowned` reference).
@Suite struct HTTPServerLifetimeTests {
    /// A responder that keeps every request pending, and closes the server from inside
    /// `handle`: inside evhttp's request callback, where freeing is not allowed.
    final class ClosingResponder: HTTPResponder {
        var server: HTTPServer?
        var ends: [(HTTPRequestHead, HTTPRequestEnd)] = []
        var held: [HTTPRequest] = []

        func requestID(number: UInt64, clientValue: String?) -> String { "r\(number)" }

        func handle(_ request: HTTPRequest) {
            try? request.watchForAbort()
            held.append(request)
            server?.close()
            #expect(server?.isClosed == false, "close() from inside a callback waits for the safe point")
        }

        func requestEnded(_ head: HTTPRequestHead, _ end: HTTPRequestEnd) {
            ends.append((head, end))
        }
    }

    @Test func closeFromInsideAHandlerWaitsForTheSafePointAndAbortsThePendingRequestOnce() throws {
        try withBase { base in
            let responder = ClosingResponder()
            let server = try HTTPServer(base: base, responder: responder)
            responder.server = server
            var closed = false
            server.onClosed = { closed = true; base.exit() }
            let port = try #require(server.bind(host: "127.0.0.1", port: 0).first?.port)
            let fd = try connectedClient(port: port)
            defer { close(fd) }
            let request = "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"
            #expect(request.withCString { send(fd, $0, strlen($0), 0) } == request.utf8.count)
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

    /// A blocking client socket connected to 127.0.0.1:`port`.
    func connectedClient(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        return fd
    }

    @Test func droppingAServerWithOpenConnectionsClosesThemCleanly() throws {
        try withBase { base in
            var server: HTTPServer? = try HTTPServer(base: base) { request in
                request.respond(status: 200, body: "ok\n")
            }
            let port = try #require(server?.bind(host: "127.0.0.1", port: 0).first?.port)
            // Two idle clients, connected but silent: evhttp accepts and greetd's layer adopts them.
            var clients: [Int32] = []
            defer { for fd in clients { close(fd) } }
            for _ in 0..<2 { clients.append(try connectedClient(port: port)) }
            do {
                let stop = try Event(base: base) { _ in base.exit() }
                try stop.add(timeout: .milliseconds(100))
                try base.run()
            }
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 2)
            server = nil  // no close(): deinit frees evhttp and with it both connections
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 0)
            // The clients see the server close their connections.
            for fd in clients {
                var byte: UInt8 = 0
                #expect(recv(fd, &byte, 1, 0) == 0)
            }
        }
    }
}
