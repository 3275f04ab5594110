import EventHTTPSystem
import EventHTTPCore
import TestSupport
import Testing

/// TestSupport's blocking loopback helpers, which every test target relies on.
@Suite("Loopback helpers")
struct LoopbackTests {
    @Test("connectErrno: nil when something listens, ECONNREFUSED once nothing does")
    func connectErrnoNamesTheRefusal() throws {
        var listener: LoopbackListener? = try LoopbackListener()
        let port = try #require(listener?.address.port)
        #expect(connectErrno(port: port) == nil)
        listener = nil  // closed: nothing listens on the port now
        #expect(connectErrno(port: port) == .connectionRefused)
    }

    @Test("connectLoopback throws the connect's errno as LibeventError.callFailed")
    func connectLoopbackThrowsTheErrno() throws {
        let port = try freeLoopbackPort()
        #expect(throws: LibeventError.callFailed(function: "connect", errno: .connectionRefused)) {
            try connectLoopback(port: port)
        }
    }

    @Test("receive: bytes, then closed at the peer's FIN; a read error is named by the C library")
    func receiveSeesBytesThenTheEnd() throws {
        let listener = try LoopbackListener()
        let client = try connectLoopback(port: listener.address.port)
        defer { try? SystemCalls.closeDescriptor(client) }  // teardown: a failure here changes nothing
        let server = try listener.accept()
        try sendAll(server, "hi")
        try SystemCalls.closeDescriptor(server)
        #expect(try receive(client, until: .now + .seconds(10)).get() == Array("hi".utf8))
        #expect(receive(client, until: .now + .seconds(10)) == .failure(.closed))
        #expect(StreamEnd.failed(.badFileDescriptor).description == "recv failed: \(Errno.badFileDescriptor)")
    }
}
