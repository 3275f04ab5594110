import GreetdClient
import EventHTTPSystem
import EventHTTPCore
import Testing

/// The abort watch under every backend, with the epoll changelist that every base now uses
/// (`EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST`): each abort style, with and without pipelined bytes
/// behind the pending request, is reported once and with the right reason; pipelined requests
/// behind a watched one are answered in order.
@Suite("Abort watch (changelist)")
struct AbortWatchTests {
    /// Keeps every request pending under the abort watch and stops the loop at each event the
    /// test waits for: a request handed over, or a request's end.
    final class HoldingResponder: LoopResponder {
        let base: EventBase
        var held: [LoopRequest] = []
        var ends: [(RequestHead, RequestEnd)] = []
        /// Answer requests at once instead of holding them (pipelining test, after the first).
        var answerAtOnce = false

        init(base: EventBase) { self.base = base }

        func requestID(number: UInt64, clientValue: String?) -> String { "r\(number)" }

        func handle(_ request: LoopRequest) {
            if answerAtOnce {
                request.respond(status: 200, body: "\(request.path)\n")
                return
            }
            do {
                try request.watchForAbort()
            } catch {
                Issue.record("watchForAbort: \(error)")
            }
            held.append(request)
            base.exit()
        }

        func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
            ends.append((head, end))
            if case .aborted = end { base.exit() }
        }
    }

    /// `[]` is the environment's default (epoll unless ruled out); then poll, then select.
    static let backends: [[String]] = [[], ["epoll"], ["epoll", "poll"]]

    @Test("an abort of a pending request is reported once",
          arguments: backends, [ClientAbort.fin, .rst, .half])
    func abortIsReportedOnce(avoiding: [String], style: ClientAbort) throws {
        for pipelined in [false, true] {
            try withBase(avoiding: avoiding) { base in
                let responder = HoldingResponder(base: base)
                let server = try LoopHTTPServer(base: base, responder: responder)
                let port = try #require(server.bind(host: "127.0.0.1", port: 0).first?.port)
                let client = try LoopbackConnection(port: port)
                let next = pipelined ? "GET /next HTTP/1.1\r\nHost: t\r\n\r\n" : ""
                try client.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n" + next)
                let watchdog = try Watchdog(base, after: .seconds(10))
                try base.run()  // until the request is held
                #expect(responder.held.count == 1)
                client.abort(style)
                try base.run()  // until the abort is reported
                #expect(!watchdog.expired, "\(base.method) \(style) pipelined: \(pipelined)")
                #expect(responder.ends.count == 1)
                let end = try #require(responder.ends.first)
                #expect(end.0.target == "/hold")
                switch end.1 {
                case .aborted(.peerClosed), .aborted(.socketError): break
                default: Issue.record("\(base.method) \(style) pipelined: \(pipelined): \(end.1)")
                }
                #expect(responder.held.first?.isPending == false)
                #expect(responder.held.first?.respond(status: 200) == false)
                responder.held = []
                server.close()
                #expect(base.counters.liveConnections.load(ordering: .relaxed) == 0)
            }
        }
    }

    @Test("pipelined requests behind a watched one are answered in order", arguments: backends)
    func pipelinedAnsweredInOrder(avoiding: [String]) throws {
        try withBase(avoiding: avoiding) { base in
            let responder = HoldingResponder(base: base)
            let server = try LoopHTTPServer(base: base, responder: responder)
            let port = try #require(server.bind(host: "127.0.0.1", port: 0).first?.port)
            let client = try LoopbackConnection(port: port)
            try client.send("GET /first HTTP/1.1\r\nHost: t\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n\r\n"
                            + "GET /third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let watchdog = try Watchdog(base, after: .seconds(10))
            try base.run()  // until /first is held
            responder.answerAtOnce = true
            // Answered outside a loop callback: evhttp then parses /second from the bytes the
            // abort watch read, when the loop runs again.
            #expect(try #require(responder.held.first).respond(status: 200, body: "/first\n"))
            responder.held = []  // a request holds its connection's object
            // Until the connection closes after /third (Connection: close): every reply is written.
            let closed = try Event(base: base, flags: .persist) { _ in
                if base.counters.liveConnections.load(ordering: .relaxed) == 0 { base.exit() }
            }
            try closed.add(timeout: .milliseconds(1))
            try base.run()
            var bodies: [String] = []
            for _ in 0..<3 { bodies.append(String(decoding: try client.readResponse().bodyBytes, as: UTF8.self)) }
            #expect(!watchdog.expired)
            #expect(bodies == ["/first\n", "/second\n", "/third\n"])
            #expect(responder.ends.allSatisfy { if case .responded(status: 200, _) = $0.1 { true } else { false } })
            server.close()
        }
    }
}
