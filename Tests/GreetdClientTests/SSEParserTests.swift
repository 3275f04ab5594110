import GreetdClient
import Testing

/// Feeds `pieces` one at a time, as separate reads would deliver them; returns every event.
private func events(_ pieces: [[UInt8]], parser: inout ServerSentEventParser) -> [ServerSentEvent] {
    pieces.flatMap { parser.append(contentsOf: $0) }
}

private func events(_ pieces: [[UInt8]]) -> [ServerSentEvent] {
    var parser = ServerSentEventParser()
    return events(pieces, parser: &parser)
}

/// Every split of `text` into two reads, every split into three at a few places, and one
/// read per byte.
private func splits(of text: String) -> [[[UInt8]]] {
    let bytes = Array(text.utf8)
    var result = (0...bytes.count).map { cut in [Array(bytes[..<cut]), Array(bytes[cut...])] }
    for first in stride(from: 0, through: bytes.count, by: 3) {
        for second in stride(from: first, through: bytes.count, by: 5) {
            result.append([Array(bytes[..<first]), Array(bytes[first..<second]), Array(bytes[second...])])
        }
    }
    result.append(bytes.map { [$0] })
    return result
}

/// The streaming greeting's events, as greetd writes them.
private let greeting = "event: thinking\ndata: Greetings are hard. Thinking...\n\n"
    + "event: thinking\ndata: Greetings are hard. Thinking...\n\n"
    + "event: greeting\ndata: Hello Gopher!\n\n"

private let greetingEvents = [
    ServerSentEvent(type: "thinking", data: "Greetings are hard. Thinking..."),
    ServerSentEvent(type: "thinking", data: "Greetings are hard. Thinking..."),
    ServerSentEvent(type: "greeting", data: "Hello Gopher!"),
]

@Suite("Server-sent event parser")
struct SSEParserTests {
    @Test("the streaming greeting, split across reads at every byte: the same three events")
    func splitAcrossReads() {
        for pieces in splits(of: greeting) {
            #expect(events(pieces) == greetingEvents, "\(pieces.map(\.count))")
        }
    }

    @Test("CRLF, LF and CR line ends give the same events, also with a CRLF split between reads")
    func lineEnds() {
        for ending in ["\r\n", "\n", "\r"] {
            let text = greeting.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: ending)
            for pieces in splits(of: text) {
                #expect(events(pieces) == greetingEvents, "ending \(ending.debugDescription), pieces \(pieces.map(\.count))")
            }
        }
        // Mixed line ends in one stream.
        #expect(events([Array("event: a\r\ndata: 1\r\rdata: 2\n\r\n".utf8)])
                == [ServerSentEvent(type: "a", data: "1"), ServerSentEvent(data: "2")])
    }

    @Test("an event is dispatched only at its blank line, not before")
    func dispatchAtBlankLine() {
        var parser = ServerSentEventParser()
        #expect(parser.append(contentsOf: Array("event: greeting\ndata: Hello Gopher!\n".utf8)).isEmpty)
        #expect(parser.hasIncompleteEvent)
        #expect(parser.append(contentsOf: Array("\n".utf8)) == [ServerSentEvent(type: "greeting", data: "Hello Gopher!")])
        #expect(!parser.hasIncompleteEvent)
        #expect(parser.dispatched == 1)
    }

    @Test("comments are counted and skipped, also between the fields of one event")
    func comments() {
        var parser = ServerSentEventParser()
        let text = ": keep-alive\n\nevent: thinking\n:inside\ndata: x\n\n:\n"
        #expect(events(splits(of: text)[4], parser: &parser) == [ServerSentEvent(type: "thinking", data: "x")])
        #expect(parser.comments == 3)
        #expect(!parser.hasIncompleteEvent)
    }

    @Test("several data lines join with newlines; an empty data line counts; one leading space is dropped")
    func multiLineData() {
        #expect(events([Array("data: first\ndata:second\ndata:  two spaces\ndata\ndata:\n\n".utf8)])
                == [ServerSentEvent(data: "first\nsecond\n two spaces\n\n")])
        #expect(events([Array("data\n\n".utf8)]) == [ServerSentEvent(data: "")])
        #expect(events([Array("data: a:b: c\n\n".utf8)]) == [ServerSentEvent(data: "a:b: c")])
    }

    @Test("no data, no event: a blank line after only `event:` dispatches nothing and resets the type")
    func noDataNoEvent() {
        #expect(events([Array("event: thinking\n\ndata: x\n\n".utf8)]) == [ServerSentEvent(data: "x")])
        #expect(events([Array("\n\n\n".utf8)]).isEmpty)
    }

    @Test("id carries over to later events (unless it contains NUL); retry takes digits only; unknown fields are ignored")
    func idRetryAndUnknownFields() {
        var parser = ServerSentEventParser()
        let got = events([Array("id: 7\nretry: 1500\nfoo: bar\ndata: a\n\ndata: b\n\nid: x\0y\nretry: 2s\ndata: c\n\n".utf8)], parser: &parser)
        #expect(got == [ServerSentEvent(data: "a", lastEventID: "7"), ServerSentEvent(data: "b", lastEventID: "7"),
                        ServerSentEvent(data: "c", lastEventID: "7")])
        #expect(parser.retry == 1500)
    }

    @Test("a UTF-8 byte order mark at the start is skipped, also split across reads; elsewhere it is content")
    func byteOrderMark() {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let text = bom + Array("data: x\n\n".utf8)
        #expect(events([text]) == [ServerSentEvent(data: "x")])
        #expect(events(text.map { [$0] }) == [ServerSentEvent(data: "x")])
        #expect(events([Array("data: ".utf8) + bom + Array("x\n\n".utf8)]) == [ServerSentEvent(data: "\u{FEFF}x")])
        // Half a mark, then something else: the bytes are kept (as U+FFFD after decoding).
        #expect(events([[0xEF, 0xBB] + Array("data: y\n\n".utf8)]).count == 0)  // the line's field is "\u{FFFD}data"
    }

    @Test("the end of the stream inside an event: the event is not dispatched, and hasIncompleteEvent says so")
    func incompleteAtEnd() {
        var parser = ServerSentEventParser()
        #expect(parser.append(contentsOf: Array("event: greeting\ndata: Hello".utf8)).isEmpty)
        #expect(parser.hasIncompleteEvent)
    }
}
