import GreetdClient
import EventHTTPSystem
import EventHTTPCore
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Each test runs a client socket on a loop against a tiny listener made here with plain socket
// calls; the server side is driven synchronously from the client's delegate callbacks, so no test
// needs a second thread. Every wait is bounded by a watchdog.

@Suite("Client socket")
struct ClientSocketTests {
    @Test("connects, sends a request and reads a response with Content-Length")
    func requestAndResponse() throws {
        try withBase { base in
            let listener = try LoopbackListener()
            var server: Int32 = -1
            defer { if server >= 0 { try? SystemCalls.closeDescriptor(server) } }  // teardown: a failure here changes nothing
            var requestSeen = ""
            let recorder = Recorder(base) { socket, event in
                switch event {
                case .connected:
                    server = try listener.accept()
                    let sentAtOnce = try socket.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                    #expect(sentAtOnce)
                    requestSeen = readSome(server)
                    try SystemCalls.writeAll(server, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
                case .received where !socket.response.isComplete:
                    try SystemCalls.writeAll(server, "lo")  // the rest of the body, in a second segment
                case .received:
                    return true
                default: break
                }
                return false
            }
            try recorder.run(connectingTo: listener.address)
            #expect(requestSeen == "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(recorder.socket?.response)
            #expect(response.isComplete)
            #expect(response.status == 200)
            #expect(String(decoding: response.body, as: UTF8.self) == "hello")
            #expect(recorder.events.first == .connected)
            recorder.closeSocket()
            #expect(readSome(server) == "", "the server sees the client's FIN")
        }
    }

    @Test("a refused connect is an ECONNREFUSED failure, reported or thrown, and nothing stays open")
    func refused() throws {
        try withBase { base in
            let address = try LoopbackListener().address  // closed again: nothing listens there now
            let recorder = Recorder(base) { _, _ in true }
            do {
                try recorder.run(connectingTo: address)
                #expect(recorder.events == [.failed(.callFailed(function: "connect", errno: .connectionRefused))])
            } catch let error as LibeventError {
                #expect(error == .callFailed(function: "connect", errno: .connectionRefused))
            }
            #expect(recorder.socket?.state ?? .closed == .closed)
        }
    }

    @Test("abort(.fin): the server reads end of stream")
    func finAbort() throws {
        let (end, state) = try serverView(of: .fin)
        #expect(end == 0)
        #expect(state == .closed)
    }

    @Test("abort(.rst): the server's read fails with ECONNRESET")
    func rstAbort() throws {
        let (end, state) = try serverView(of: .rst)
        #expect(end == -ECONNRESET)
        #expect(state == .closed)
    }

    @Test("abort(.half): the server reads end of stream, may still answer, and its close ends the socket")
    func halfAbort() throws {
        try withBase { base in
            let listener = try LoopbackListener()
            var server: Int32 = -1
            defer { if server >= 0 { try? SystemCalls.closeDescriptor(server) } }  // teardown: a failure here changes nothing
            var serverRead: [String] = []
            var stateAfterAbort: ClientSocket.State?
            let recorder = Recorder(base) { socket, event in
                switch event {
                case .connected:
                    server = try listener.accept()
                    try socket.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
                    socket.abort(.half)
                    stateAfterAbort = socket.state
                    serverRead.append(readSome(server))
                    serverRead.append(readSome(server))  // end of stream: the half-close
                    try SystemCalls.writeAll(server, "HTTP/1.1 499 Gone\r\n\r\nbye")
                    try SystemCalls.closeDescriptor(server)
                    server = -1
                case .closedByPeer:
                    return true
                default: break
                }
                return false
            }
            try recorder.run(connectingTo: listener.address)
            #expect(stateAfterAbort == .halfClosed)
            #expect(serverRead == ["GET / HTTP/1.1\r\n\r\n", ""])
            #expect(recorder.events == [.connected, .received, .closedByPeer])
            let socket = try #require(recorder.socket)
            #expect(socket.state == .closed)
            #expect(socket.response.isComplete, "no Content-Length: the body ends with the stream")
            #expect(socket.response.status == 499)
            #expect(String(decoding: socket.response.body, as: UTF8.self) == "bye")
        }
    }

    @Test("a server that closes before answering: closedByPeer with no bytes")
    func serverClosesFirst() throws {
        try withBase { base in
            let listener = try LoopbackListener()
            let recorder = Recorder(base) { socket, event in
                if event == .connected {
                    try socket.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
                    let server = try listener.accept()
                    _ = readSome(server)  // closing with the request unread would send an RST
                    try SystemCalls.closeDescriptor(server)
                }
                return event == .closedByPeer
            }
            try recorder.run(connectingTo: listener.address)
            #expect(recorder.events == [.connected, .closedByPeer])
            #expect(recorder.socket?.response.isEmpty == true)
            #expect(recorder.socket?.state == .closed)
        }
    }

    @Test("connects over IPv6 loopback")
    func ipv6() throws {
        guard let listener = try? LoopbackListener(ipv6: true) else { return }  // no ::1 on this machine
        try withBase { base in
            var server: Int32 = -1
            defer { if server >= 0 { try? SystemCalls.closeDescriptor(server) } }  // teardown: a failure here changes nothing
            let recorder = Recorder(base) { _, event in
                if event == .connected { server = try listener.accept() }
                return true
            }
            try recorder.run(connectingTo: listener.address)
            #expect(recorder.events == [.connected])
            #expect(server >= 0)
            #expect(recorder.socket?.remote.description == "[::1]:\(listener.address.port)")
            recorder.closeSocket()
        }
    }

    @Test("a connect that gets no answer times out with ETIMEDOUT")
    func connectTimeout() throws {
        try withBase { base in
            // Backlog 0 and never accepting: the first connection fills the accept queue, and
            // the kernel drops the next one's SYN, so its connect hangs.
            let listener = try LoopbackListener(backlog: 0)
            let first = Recorder(base) { _, _ in true }
            try first.run(connectingTo: listener.address)
            #expect(first.events == [.connected])
            let second = Recorder(base) { _, _ in true }
            try second.run(connectingTo: listener.address, timeout: .milliseconds(100))
            #expect(second.events == [.failed(.callFailed(function: "connect", errno: .timedOut))])
            #expect(second.socket?.state == .closed)
            first.closeSocket()
        }
    }

    @Test("send before the connect finishes throws ENOTCONN")
    func sendWhileConnecting() throws {
        try withBase { base in
            let listener = try LoopbackListener()
            let socket = try ClientSocket(connectingTo: listener.address, base: base, delegate: nil)
            #expect(socket.state == .connecting)
            #expect(throws: LibeventError.callFailed(function: "send", errno: .notConnected)) { try socket.send([1]) }
            socket.close()
            socket.close()  // twice is fine
            #expect(socket.state == .closed)
        }
    }
}

/// Connects, aborts with `style` once connected, and returns what the server's next read saw
/// (0: end of stream, `-errno`: an error) and the socket's state after the abort.
private func serverView(of style: ClientAbort) throws -> (Int, ClientSocket.State?) {
    var result = 1
    var state: ClientSocket.State?
    try withBase { base in
        let listener = try LoopbackListener()
        let recorder = Recorder(base) { socket, event in
            guard event == .connected else { return false }
            let server = try listener.accept()
            defer { try? SystemCalls.closeDescriptor(server) }  // teardown: a failure here changes nothing
            socket.abort(style)
            state = socket.state
            var byte: UInt8 = 0
            switch SystemCalls.valueOrErrno({ recv(server, &byte, 1, 0) }) {
            case .success(let count): result = count
            case .failure(let code): result = -Int(code.rawValue)
            }
            return true
        }
        try recorder.run(connectingTo: listener.address)
    }
    return (result, state)
}

/// A client socket's delegate that records every event and runs a step for each; the loop stops
/// when the step returns `true`. Owns the socket and closes it before it goes.
private final class Recorder: ClientSocketDelegate {
    private let base: EventBase
    private let step: (ClientSocket, ClientSocketEvent) throws -> Bool
    private(set) var socket: ClientSocket?
    private(set) var events: [ClientSocketEvent] = []

    init(_ base: EventBase, step: @escaping (ClientSocket, ClientSocketEvent) throws -> Bool) {
        self.base = base
        self.step = step
    }

    deinit { socket?.close() }

    /// Connects and runs the loop until the step says stop (or two seconds pass).
    func run(connectingTo address: IPEndpoint, timeout: Duration? = nil,
             sourceLocation: SourceLocation = #_sourceLocation) throws {
        socket = try ClientSocket(connectingTo: address, base: base, timeout: timeout, delegate: self)
        let watchdog = try Watchdog(base)
        try base.run()
        #expect(!watchdog.expired, "the loop did not stop; events: \(events)", sourceLocation: sourceLocation)
    }

    func closeSocket() { socket?.close() }

    func clientSocket(_ socket: ClientSocket, didReport event: ClientSocketEvent) {
        events.append(event)
        do {
            if try step(socket, event) { base.exit() }
        } catch {
            Issue.record(error)
            base.exit()
        }
    }
}

/// One read of what has arrived (waiting at most a second), as text; "" at end of stream.
private func readSome(_ fd: Int32) -> String {
    let bytes = (try? receive(fd, until: .now + .seconds(1)).get()) ?? []
    return String(decoding: bytes, as: UTF8.self)
}

private func writeAll(_ fd: Int32, _ text: String) throws {
    try sendAll(fd, text)
}
