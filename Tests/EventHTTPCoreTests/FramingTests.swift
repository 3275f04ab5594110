import EventHTTPSystem
@testable import EventHTTPCore
import Foundation
import Testing

/// Strict HTTP/1.1 framing (RFC 9112) in the transport: each shape is sent as raw bytes over
/// loopback to a real `LoopHTTPServer`, followed by a smuggled `GET /smuggled` that must never
/// be answered or reach the responder.
@Suite struct FramingTests {
    /// A responder that answers `200 ok` and records what reached it and every request's end.
    final class Recorder: LoopResponder {
        var targets: [String] = []
        var ends: [(RequestHead, RequestEnd)] = []
        func requestID(number: UInt64, clientValue: String?) -> String { "f\(number)" }
        func handle(_ request: LoopRequest) {
            targets.append(request.head.target)
            request.respond(status: 200, body: "ok\n")
        }
        func requestEnded(_ head: RequestHead, _ end: RequestEnd) { ends.append((head, end)) }
    }

    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

    /// Sends `bytes` on one connection, reads until the server closes, and returns the text and
    /// what the responder saw.
    func exchange(_ bytes: String) throws -> (text: String, recorder: Recorder) {
        let recorder = Recorder()
        var text = ""
        try withBase { base in
            let server = try LoopHTTPServer(base: base, responder: recorder)
            let port = try #require(server.bind(host: "127.0.0.1", port: 0).first?.port)
            let result = Shared<String?>(nil)
            Thread.detachNewThread {
                let reply = (try? rawExchange(port: port, bytes, timeout: .seconds(10))) ?? "<no close>"
                result.set(reply)
            }
            var poll: Event?
            poll = try Event(base: base) { _ in
                if result.value != nil { base.exit() } else { try? poll?.add(timeout: .milliseconds(5)) }
            }
            try poll?.add(timeout: .milliseconds(5))
            let watchdog = try Watchdog(base, after: .seconds(20))
            try base.run()
            #expect(!watchdog.expired)
            poll = nil
            server.close()
            text = result.value ?? ""
        }
        return (text, recorder)
    }

    /// Checks one refused shape: `status`, plain text, `Connection: close`, `X-Request-Id`, one
    /// answer only (the smuggled request never answered), the end reported, nothing reached
    /// the responder after `allowed` requests.
    func expectRefused(_ bytes: String, status: Int, allowed: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (text, recorder) = try exchange(bytes)
        // Status lines: `HTTP/1.1 ddd ` wherever they start (a body may end without a newline).
        let statusLines = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
            .filter { $0.count > 4 && $0.prefix(3).allSatisfy(\.isNumber) && $0.dropFirst(3).first == " " }
            .map { "HTTP/1.1 " + $0 }
        #expect(statusLines.last?.hasPrefix("HTTP/1.1 \(status) ") == true, "\(text.debugDescription)", sourceLocation: sourceLocation)
        #expect(statusLines.count == allowed.count + 1, "\(text.debugDescription)", sourceLocation: sourceLocation)
        let refusal = text.components(separatedBy: "HTTP/1.1 \(status) ").last ?? ""
        #expect(refusal.contains("Content-Type: text/plain; charset=utf-8\r\n"), sourceLocation: sourceLocation)
        #expect(refusal.contains("Connection: close\r\n"), sourceLocation: sourceLocation)
        #expect(refusal.contains("X-Request-Id: f"), sourceLocation: sourceLocation)
        #expect(!text.contains("smuggled"), sourceLocation: sourceLocation)
        #expect(recorder.targets == allowed, sourceLocation: sourceLocation)
        #expect(recorder.ends.last?.1 == .responded(status: status, bytes: refusal.split(separator: "\r\n\r\n", maxSplits: 1).last.map { $0.utf8.count } ?? -1),
                sourceLocation: sourceLocation)
    }

    @Test func twoContentLengthsThatDiffer() throws {
        try expectRefused("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n\r\n" + Self.smuggled, status: 400)
    }

    @Test func identicalContentLengthsAreOne() throws {
        let (text, recorder) = try exchange("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\ncontent-length: 3\r\nConnection: close\r\n\r\nabc")
        #expect(text.hasPrefix("HTTP/1.1 200 "))
        #expect(recorder.targets == ["/a"])
    }

    @Test func transferEncodingWithContentLength() throws {
        try expectRefused("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + Self.smuggled, status: 400)
    }

    @Test func transferEncodingOtherThanChunkedIs501() throws {
        try expectRefused("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + Self.smuggled, status: 501)
    }

    @Test(arguments: ["HEAD", "TRACE", "BREW"])
    func bodyOnABodilessMethod(method: String) throws {
        try expectRefused("\(method) / HTTP/1.1\r\nHost: t\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n\r\n" + Self.smuggled, status: 400)
    }

    @Test func whitespaceBeforeAColon() throws {
        try expectRefused("POST / HTTP/1.1\r\nHost: t\r\nContent-Length : \(Self.smuggled.utf8.count)\r\n\r\n" + Self.smuggled, status: 400)
    }

    @Test(arguments: ["0x3", "+3", " 3", "3 ", "ffffffffffffffff"])
    func chunkSizeNotHex(size: String) throws {
        try expectRefused("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\nabc\r\n0\r\n\r\n" + Self.smuggled, status: 400)
    }

    @Test func chunkDataNotFollowedByCRLF() throws {
        try expectRefused("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc" + Self.smuggled, status: 400)
    }

    @Test func chunkExtensionIsAccepted() throws {
        let (text, recorder) = try exchange("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 "), "\(text.debugDescription)")
        #expect(recorder.targets == ["/c"])
    }

    @Test(arguments: ["", "Host: a\r\nHost: b\r\n"])
    func http11WithoutExactlyOneHost(hosts: String) throws {
        try expectRefused("GET / HTTP/1.1\r\n\(hosts)\r\n" + Self.smuggled, status: 400)
    }

    @Test(arguments: ["GET /\r\n", "GET / FOO/1.1\r\nHost: t\r\n\r\n", "\u{16}\u{03}\u{01}\r\n\r\n"])
    func notAnHTTPRequestLine(line: String) throws {
        try expectRefused(line + Self.smuggled, status: 400)
    }

    @Test(arguments: ["HTTP/2.0", "HTTP/3.0"])
    func unsupportedMajorVersionIs505(version: String) throws {
        try expectRefused("GET / \(version)\r\nHost: t\r\n\r\n" + Self.smuggled, status: 505)
    }

    @Test func http12IsServedAs11() throws {
        let (text, recorder) = try exchange("GET /v HTTP/1.2\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 "), "\(text.debugDescription)")
        #expect(recorder.targets == ["/v"])
    }

    @Test func emptyLineBeforeTheRequestLineIsIgnored() throws {
        let (text, recorder) = try exchange("\r\n\r\nGET /e HTTP/1.1\r\nHost: t\r\n\r\n\r\nGET /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(text.components(separatedBy: "HTTP/1.1 200 ").count == 3, "\(text.debugDescription)")
        #expect(recorder.targets == ["/e", "/f"])
    }

    @Test func aValidPipelinedRequestBeforeARefusedOneIsAnswered() throws {
        try expectRefused("GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/2.0\r\nHost: t\r\n\r\n" + Self.smuggled, status: 505, allowed: ["/ok"])
    }

    @Test func aHeadArrivingByteByByteIsStillChecked() throws {
        // The framer holds an incomplete head back from evhttp: fed one byte at a time, evhttp
        // never sees any of the refused request.
        var framer = RequestFramer(maxHeaderBytes: 1024)
        let bytes = Array(("POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\n" + Self.smuggled).utf8)
        var passed: [UInt8] = []
        for byte in bytes {
            let out = [byte].withUnsafeBufferPointer { framer.feed($0) }
            passed += out ?? [byte]
        }
        #expect(framer.rejection?.status == 400)
        #expect(!String(decoding: passed, as: UTF8.self).contains("smuggled"))
        #expect(!String(decoding: passed, as: UTF8.self).contains("POST"))
    }
}
