import CLibevent
import EventHTTPSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Accepting connections: making each one's bufferevent, then admitting it against the group's
// connection limit (or refusing it with the canned 503) and adopting it.
extension LoopHTTPServer {
    /// evhttp accepted a connection and asks for its bufferevent (`evhttp_set_bevcb`). libevent
    /// 2.1 has no new-connection hook, so we make the bufferevent evhttp would have made, note it,
    /// and adopt the connection once evhttp's accept callback returns, before any byte is read.
    fileprivate func makeBufferevent() -> OpaquePointer? {
        let bufferevent = bufferevent_socket_new(base.raw, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))
        if let bufferevent {
            // evhttp reads on while it writes a reply (evhttp_write_buffer), with no limit: a
            // client that pipelines without reading would fill our memory. Stop reading past
            // what one request plus the pipelining allowance can need.
            let most = options.maxHeaderBytes + options.maxBodyBytes + options.pipelineLimit
            bufferevent_setwatermark(bufferevent, Int16(EV_READ), 0, most)
            // Held until adopted: evhttp frees the bufferevent itself if setting up the
            // connection fails, and adoption must then find it emptied, not freed.
            bufferevent_incref(bufferevent)
            newBufferevents.append(bufferevent)
            adoptEvent?.activate()
        }
        return bufferevent
    }

    /// Takes charge of connections accepted since the last call: refuses those over
    /// ``HTTPServerOptions/maxConnections`` (counted across the ``HTTPServerGroup``), tracks the
    /// others (close callback, read deadline). Runs from our own event: a safe point.
    func adoptNewConnections() {
        let pending = newBufferevents
        newBufferevents = []
        for bufferevent in pending {
            // Balances makeBufferevent's incref; the result only says whether it freed (1) or not.
            defer { _ = bufferevent_decref(bufferevent) }
            // evhttp_start_read_ made the connection the bufferevent's callback argument; a
            // bufferevent evhttp already freed has its callbacks cleared.
            var arg: UnsafeMutableRawPointer?
            bufferevent_getcb(bufferevent, nil, nil, nil, &arg)
            guard let arg else { continue }
            let raw = OpaquePointer(arg)
            let fd = bufferevent_getfd(bufferevent)
            guard group.admit(limit: options.maxConnections) else {
                let start = ContinuousClock.now
                let (head, bytes) = refuse(fd, start: start)
                base.counters.rejectedConnections.bump()
                evhttp_connection_free(raw)
                report(head, .responded(status: 503, bytes: bytes))
                refusedConnectionClosed()
                continue
            }
            // The connection owns the slot from here and gives it back when it closes.
            let connection = HTTPConnection(raw: raw, fd: fd, server: self)
            connections[raw] = connection
            connection.awaitRequest()
            onConnectionCountChange?(connections.count)
        }
    }

    /// Answers a connection we will not serve with a canned `503` carrying `X-Request-Id`,
    /// straight on the socket (evhttp has not read from it), after reading what the client
    /// already sent, so that the close that follows is a FIN, not a reset that could destroy the
    /// answer. Its access line has neither method nor target (`-`): the request is not read.
    /// - Returns: the request's head, and the body size.
    private func refuse(_ fd: Int32, start: ContinuousClock.Instant) -> (RequestHead, Int) {
        var sink = [UInt8](repeating: 0, count: 4096)
        let capacity = sink.count
        // At most 16 KiB, without waiting: an error (EAGAIN once the socket is empty, ECONNRESET)
        // or the end of the stream ends the read, and the 503 goes out regardless.
        for _ in 0..<4 {
            guard case .success(let count) = SystemCalls.valueOrErrno({ recv(fd, &sink, capacity, SendFlags.dontWait) }), count > 0 else { break }
        }
        let head = cannedHead(start: start, origin: .connectionLimit)
        let body = "server at connection limit\n"
        // The id comes from the responder; a header value must not carry a line break.
        let idHeader = head.id.utf8.contains { $0 == 10 || $0 == 13 } ? "" : "X-Request-Id: \(head.id)\r\n"
        let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\nRetry-After: 1\r\n\(idHeader)\r\n\(body)"
        // Best effort, one non-blocking send into an empty socket buffer: a failure (EPIPE,
        // ECONNRESET from a client already gone) leaves nobody to answer, and the connection is
        // freed right after either way.
        _ = answer.withCString { text in SystemCalls.valueOrErrno { send(fd, text, strlen(text), SendFlags.noSignal | SendFlags.dontWait) } }
        return (head, body.utf8.count)
    }
}

/// The C bufferevent callback: captures nothing, finds the server through `arg`.
func bufferEventTrampoline(_ base: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) -> OpaquePointer? {
    guard let arg else { return nil }
    let server = Unmanaged<LoopHTTPServer>.fromOpaque(arg).takeUnretainedValue()
    return server.safePoint.callback { server.makeBufferevent() }
}
