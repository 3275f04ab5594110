import GreetdClient
import TestSupport
import Testing

/// Feeds `pieces` one at a time, as separate reads would deliver them.
private func parse(_ pieces: [String], method: String = "GET", endOfStream: Bool = false) -> HTTPResponseBuffer {
    var buffer = HTTPResponseBuffer(requestMethod: method)
    for piece in pieces { buffer.append(contentsOf: Array(piece.utf8)) }
    if endOfStream { buffer.markEndOfStream() }
    return buffer
}

/// Every split of `text` into two reads, and one read per byte.
private func splits(of text: String) -> [[String]] {
    let bytes = Array(text.utf8)
    var result = (0...bytes.count).map { cut in
        [String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)]
    }
    result.append(bytes.map { String(decoding: [$0], as: UTF8.self) })
    return result
}

@Suite("HTTP response parser")
struct HTTPResponseBufferTests {
    @Test("Content-Length: complete after exactly that many bytes; what follows is the next response")
    func contentLength() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: 7\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        for pieces in splits(of: text) {
            let buffer = parse(pieces)
            #expect(buffer.isComplete, "\(pieces)")
            #expect(buffer.status == 200 && buffer.reason == "OK")
            #expect(buffer.contentLength == 5)
            #expect(String(decoding: buffer.body, as: UTF8.self) == "hello")
            #expect(buffer.headers["x-request-id"] == "7" && buffer.header("CONTENT-LENGTH") == "5")
            guard buffer.isComplete else { continue }
            let next = buffer.nextResponse()
            #expect(next.isComplete && next.status == 404 && next.body.isEmpty, "\(pieces)")
        }
        let short = parse(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"], endOfStream: true)
        #expect(!short.isComplete, "a body cut short by the end of the stream is not complete")
        #expect(String(decoding: short.body, as: UTF8.self) == "hel")
    }

    @Test("a head split anywhere, with spaces around values; a malformed status line is status 0")
    func headAcrossReads() {
        let buffer = parse(["HTTP/1.0 404 Not", " Found\r\ncontent-length:  3 \r", "\n", "\r", "\nabcdef"])
        #expect(buffer.status == 404 && buffer.reason == "Not Found")
        #expect(buffer.contentLength == 3)
        #expect(buffer.isComplete)
        #expect(String(decoding: buffer.body, as: UTF8.self) == "abc")

        var garbage = parse(["SSH-2.0\r\n\r\n"])
        #expect(garbage.status == 0)
        #expect(!garbage.isComplete)
        garbage.markEndOfStream()
        #expect(garbage.isComplete)
    }

    @Test("chunked: decoded across any split, extensions and trailers skipped, then the next response")
    func chunked() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
            + "5;name=value\r\nHello\r\n1b\r\n, world of chunked bodies!!\r\n0\r\nTrailer: x\r\n\r\n"
            + "HTTP/1.1 204 No Content\r\n\r\n"
        for pieces in splits(of: text) {
            let buffer = parse(pieces)
            #expect(buffer.isChunked)
            #expect(buffer.isComplete, "\(pieces)")
            #expect(String(decoding: buffer.body, as: UTF8.self) == "Hello, world of chunked bodies!!", "\(pieces)")
            guard buffer.isComplete else { continue }
            #expect(buffer.nextResponse().status == 204 && buffer.nextResponse().isComplete)
        }
        let unfinished = parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n"], endOfStream: true)
        #expect(!unfinished.isComplete, "no last chunk: not complete, even at the end of the stream")
        #expect(String(decoding: unfinished.body, as: UTF8.self) == "Hello")
    }

    @Test("Transfer-Encoding chunked wins over Content-Length")
    func chunkedOverLength() {
        let buffer = parse(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"])
        #expect(buffer.isComplete && buffer.contentLength == nil)
        #expect(String(decoding: buffer.body, as: UTF8.self) == "ok")
    }

    @Test("bad framing is malformed and never complete", arguments: [
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
    ])
    func malformed(text: String) {
        let buffer = parse([text], endOfStream: true)
        #expect(buffer.isMalformed, "\(buffer.malformation ?? "")")
        #expect(buffer.malformation != nil)
        #expect(!buffer.isComplete)
    }

    @Test("close-delimited: no length, no chunking; complete only at the end of the stream")
    func closeDelimited() {
        var buffer = parse(["HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome ", "bytes"])
        #expect(buffer.status == 200)
        #expect(!buffer.isComplete)
        buffer.markEndOfStream()
        #expect(buffer.isComplete)
        #expect(String(decoding: buffer.body, as: UTF8.self) == "some bytes")
        let otherCoding = parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzip"], endOfStream: true)
        #expect(otherCoding.isComplete && !otherCoding.isChunked && otherCoding.body.count == 3)
    }

    @Test("no body: HEAD, 204, 304 and interim 1xx responses", arguments: [
        ("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n", 200),
        ("GET", "HTTP/1.1 204 No Content\r\n\r\n", 204),
        ("GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 14\r\n\r\n", 304),
        ("GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204),
    ])
    func noBody(method: String, text: String, status: Int) {
        for pieces in splits(of: text + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") {
            let buffer = parse(pieces, method: method)
            #expect(buffer.isComplete, "\(pieces)")
            #expect(buffer.status == status)
            #expect(buffer.body.isEmpty)
            #expect(!buffer.headers.contains("Link"), "interim headers are not the response's")
            guard buffer.isComplete else { continue }
            let next = buffer.nextResponse()
            #expect(next.isComplete && next.status == 200, "the next response follows at once: \(pieces)")
        }
        #expect(!parse([text], method: method).isEmpty)
    }

    @Test("headers keep order, case and repeats; lookup ignores case")
    func headers() {
        let buffer = parse(["HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Empty:\r\n\r\n"], endOfStream: true)
        #expect(buffer.headers.map(\.name) == ["Set-Cookie", "set-cookie", "X-Empty"])
        #expect(buffer.headers.values(of: "SET-COOKIE") == ["a=1", "b=2"])
        #expect(buffer.headers["x-empty"] == "")
        #expect(buffer.headers["missing"] == nil)
    }

    @Test("HTTPReply: the test-side view of one whole response")
    func reply() throws {
        let reply = try HTTPReply(parsing: "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 5\r\n\r\nbusy\n")
        #expect(reply.status == 503 && reply.reason == "Service Unavailable")
        #expect(reply.header("connection") == "close" && reply.contentLength == 5)
        #expect(reply.body == "busy\n")
        #expect(throws: TestFailure.self) { try HTTPReply(parsing: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort") }
        #expect(throws: TestFailure.self) { try HTTPReply(parsing: "SSH-2.0\r\n\r\n") }
    }
}
