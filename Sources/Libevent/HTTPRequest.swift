import CLibevent
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP method, as evhttp parsed it.
public enum HTTPMethod: String, Sendable {
    case get = "GET", post = "POST", head = "HEAD", put = "PUT", delete = "DELETE"
    case options = "OPTIONS", trace = "TRACE", connect = "CONNECT", patch = "PATCH"
    case other = "OTHER"

    init(_ command: evhttp_cmd_type) {
        switch command {
        case EVHTTP_REQ_GET: self = .get
        case EVHTTP_REQ_POST: self = .post
        case EVHTTP_REQ_HEAD: self = .head
        case EVHTTP_REQ_PUT: self = .put
        case EVHTTP_REQ_DELETE: self = .delete
        case EVHTTP_REQ_OPTIONS: self = .options
        case EVHTTP_REQ_TRACE: self = .trace
        case EVHTTP_REQ_CONNECT: self = .connect
        case EVHTTP_REQ_PATCH: self = .patch
        default: self = .other
        }
    }
}

/// One request received by an ``HTTPServer``, from the moment evhttp hands it over until it is
/// answered or its connection goes away.
///
/// ## Lifetime of the C request
/// evhttp owns the `struct evhttp_request`. It stays valid until ``respond(status:reason:headers:body:)``
/// (evhttp frees it once the reply is written) or until the connection is freed. This object forgets
/// the pointer at both moments, so no call here can touch freed memory; after either, ``respond(status:reason:headers:body:)``
/// returns `false`.
///
/// ## Seeing the client go away while the request is pending
/// Stock evhttp (2.1.9 and later) disables reading on the connection before it calls the handler,
/// so it never notices a client abort while a request is pending. Re-enabling reading is not an
/// option: any byte then arriving kills the process in `evhttp_read_cb` ("illegal connection
/// state 7"). ``watchForAbort(_:)`` instead arms an event of our own on the socket:
/// - with `EV_CLOSED` where the backend reports it (epoll; poll on Linux), and always `EV_READ`,
///   because epoll reports an RST (`EPOLLERR`) as read|write only;
/// - on readability it reads into the connection's *own* input buffer (`evbuffer_read` into
///   `bufferevent_get_input`). Data are kept for evhttp, which parses them after the reply, so a
///   pipelined request is answered in order and nothing spins on a level-triggered backend.
///   End of stream (FIN, or a half-close) or a read error (RST) is an abort;
/// - on an abort it frees the evhttp connection. evhttp then runs the connection's close
///   callback, the single place that ends the request as aborted and calls the abort handler.
///
/// ## Retains
/// While the close callback is installed, it holds exactly one retain of this object (taken in
/// ``watchForAbort(_:)``). It is released exactly once: when the reply is sent (the callback is
/// removed first), or in the close callback.
///
/// Threading: loop-confined.
public final class HTTPRequest {
    /// Why a watched request ended without a reply.
    public enum AbortReason: Equatable, Sendable, CustomStringConvertible {
        /// The client closed its sending side: FIN, whether a full close or a half-close.
        case peerClosed
        /// Reading the socket failed, typically `ECONNRESET` after an RST.
        case socketError(errno: Int32)
        /// The client sent more than ``HTTPServerOptions/pipelineLimit`` bytes while waiting.
        case pipelineLimitExceeded
        /// The server freed the connection itself (shutdown, or an evhttp error).
        case serverClosed

        public var description: String {
            switch self {
            case .peerClosed: return "client closed the connection"
            case .socketError(let code): return "connection error: \(errnoDescription(code))"
            case .pipelineLimitExceeded: return "client sent too much data while the request was pending"
            case .serverClosed: return "server closed the connection"
            }
        }
    }

    private enum State {
        /// Handed to the handler; no close callback yet.
        case pending(request: OpaquePointer)
        /// Close callback installed (holding `retain`), socket watch armed.
        case watching(request: OpaquePointer, connection: OpaquePointer, watch: Event, retain: Unmanaged<HTTPRequest>)
        /// The reply was handed to evhttp; the C request is evhttp's to free.
        case responded
        /// The connection went away before a reply.
        case aborted(AbortReason)
    }

    private var state: State
    private unowned let server: HTTPServer
    private var onAbort: ((AbortReason) -> Void)?
    /// Set just before we free the connection ourselves, so the close callback can report why.
    private var abortReason: AbortReason?

    /// The request method.
    public let method: HTTPMethod
    /// The request target as sent, e.g. `/?delay=2s`.
    public let uri: String
    /// The decoded-by-nothing path component of the target, e.g. `/`.
    public let path: String
    /// The raw query string, without `?`, if any.
    public let query: String?

    init(raw: OpaquePointer, server: HTTPServer) {
        self.state = .pending(request: raw)
        self.server = server
        self.method = HTTPMethod(evhttp_request_get_command(raw))
        self.uri = evhttp_request_get_uri(raw).map { String(cString: $0) } ?? ""
        let parsed = evhttp_request_get_evhttp_uri(raw)
        self.path = parsed.flatMap { evhttp_uri_get_path($0) }.map { String(cString: $0) } ?? ""
        self.query = parsed.flatMap { evhttp_uri_get_query($0) }.map { String(cString: $0) }
        server.base.counters.liveRequests.bump()
    }

    deinit {
        if case .pending = state {
            // A handler dropped the request without answering. Answer rather than leak the
            // connection forever; in debug builds, say so loudly.
            assertionFailure("HTTPRequest dropped without a reply or an abort watch: \(method.rawValue) \(uri)")
            _ = respond(status: 500, body: "internal error: request dropped\n")
        }
        server.base.counters.liveRequests.bump(-1)
    }

    /// Whether the request still waits for a reply.
    public var isPending: Bool {
        switch state {
        case .pending, .watching: return true
        case .responded, .aborted: return false
        }
    }

    /// The value of the first request header called `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        guard let raw = cRequest else { return nil }
        return evhttp_find_header(evhttp_request_get_input_headers(raw), name).map { String(cString: $0) }
    }

    /// The query's `name=value` pairs, decoded (`%xx`, `+`), in order; `nil` if the query is malformed.
    public func queryItems() -> [(name: String, value: String)]? {
        guard let query else { return [] }
        var list = evkeyvalq()
        guard evhttp_parse_query_str(query, &list) == 0 else { return nil }
        defer { evhttp_clear_headers(&list) }
        var items: [(name: String, value: String)] = []
        var cursor = list.tqh_first
        while let entry = cursor {
            items.append((String(cString: entry.pointee.key), String(cString: entry.pointee.value)))
            cursor = entry.pointee.next.tqe_next
        }
        return items
    }

    /// The client's address, `host:port`, while the connection is open.
    public var peer: String? {
        guard let raw = cRequest, let connection = evhttp_request_get_connection(raw) else { return nil }
        var address: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(connection, &address, &port)
        guard let address else { return nil }
        return "\(String(cString: address)):\(port)"
    }

    private var cRequest: OpaquePointer? {
        switch state {
        case .pending(let request), .watching(let request, _, _, _): return request
        case .responded, .aborted: return nil
        }
    }

    /// Sends the reply. The status line's reason defaults to the standard phrase.
    ///
    /// Removes the abort watch first, so a client that closes once it has its answer (a
    /// keep-alive connection ending, say) is never taken for an abort. A `HEAD` request gets the
    /// headers only.
    /// - Returns: `false` if the request was already answered or its client had gone.
    @discardableResult
    public func respond(status: Int, reason: String? = nil, headers: [(String, String)] = [], body: String = "") -> Bool {
        server.base.thread.preconditionOnThread()
        let request: OpaquePointer
        var retain: Unmanaged<HTTPRequest>?
        switch state {
        case .pending(let r):
            request = r
        case .watching(let r, let connection, let watch, let token):
            request = r
            watch.remove()
            evhttp_connection_set_closecb(connection, nil, nil)
            server.base.counters.closeWatches.bump(-1)
            retain = token
        case .responded, .aborted:
            return false
        }
        state = .responded
        onAbort = nil
        let output = evhttp_request_get_output_headers(request)
        for (name, value) in headers {
            // evhttp_add_header refuses values with CR/LF (-1): header injection is dropped.
            _ = evhttp_add_header(output, name, value)
        }
        if evhttp_find_header(output, "Content-Type") == nil {
            _ = evhttp_add_header(output, "Content-Type", "text/plain; charset=utf-8")
        }
        if method == .head {
            // evhttp neither drops the body of a HEAD reply nor sets its length: do both here.
            _ = evhttp_add_header(output, "Content-Length", String(body.utf8.count))
        } else {
            var body = body
            body.withUTF8 { bytes in
                _ = evbuffer_add(evhttp_request_get_output_buffer(request), bytes.baseAddress, bytes.count)
            }
        }
        // evhttp takes the request from here; it frees it once the reply is written or fails.
        evhttp_send_reply(request, Int32(status), reason, nil)
        retain?.release()  // balances watchForAbort's passRetained; may free self, so last.
        return true
    }

    /// Keeps the request pending and calls `onAbort` once, on the loop thread, if the client goes
    /// away before ``respond(status:reason:headers:body:)``. Call it at most once, from the handler
    /// or later while the request is pending.
    public func watchForAbort(_ onAbort: @escaping (AbortReason) -> Void) throws(LibeventError) {
        server.base.thread.preconditionOnThread()
        guard case .pending(let request) = state else {
            preconditionFailure("watchForAbort called on a request that is not pending or is already watched")
        }
        guard let connection = evhttp_request_get_connection(request),
              let bufferevent = evhttp_connection_get_bufferevent(connection)
        else { throw .callFailed(function: "evhttp_request_get_connection", errno: nil) }
        let fd = bufferevent_getfd(bufferevent)
        let flags: EventFlags = server.earlyClose ? [.read, .closed, .persist] : [.read, .persist]
        let watch = try Event(base: server.base, fd: fd, flags: flags) { [unowned self] fired in
            self.socketActivity(fired)
        }
        try watch.add()
        let retain = Unmanaged.passRetained(self)
        evhttp_connection_set_closecb(connection, closeTrampoline, retain.toOpaque())
        server.base.counters.closeWatches.bump()
        self.onAbort = onAbort
        state = .watching(request: request, connection: connection, watch: watch, retain: retain)
    }

    /// The socket under a pending request became readable, or closed.
    private func socketActivity(_ fired: EventFlags) {
        guard case .watching(_, let connection, _, _) = state else { return }
        if fired.contains(.closed) {
            abort(connection, .peerClosed)
            return
        }
        guard let bufferevent = evhttp_connection_get_bufferevent(connection) else { return }
        let input = bufferevent_get_input(bufferevent)
        // A socket bufferevent keeps the end of its input buffer frozen and thaws it only around
        // its own reads (bufferevent_sock.c); do the same, or evbuffer_read refuses with -1.
        evbuffer_unfreeze(input, 0)
        let count = evbuffer_read(input, bufferevent_getfd(bufferevent), 16 * 1024)
        let code = errno
        evbuffer_freeze(input, 0)
        if count > 0 {
            if evbuffer_get_length(input) > server.options.pipelineLimit {
                abort(connection, .pipelineLimitExceeded)
            }
            return
        }
        if count == 0 {
            abort(connection, .peerClosed)
            return
        }
        if code == EAGAIN || code == EWOULDBLOCK || code == EINTR { return }
        abort(connection, .socketError(errno: code))
    }

    /// Frees the connection; evhttp runs our close callback from inside `evhttp_connection_free`.
    private func abort(_ connection: OpaquePointer, _ reason: AbortReason) {
        abortReason = reason
        evhttp_connection_free(connection)
        // evhttp calls the close callback only for a connection it counts as connected; a
        // pending server request always is. Should that ever change, end the request here so
        // that nothing is left behind.
        if case .watching = state { connectionClosed() }
    }

    /// The close callback: the connection is being freed, and the C request with it.
    fileprivate func connectionClosed() {
        guard case .watching(_, let connection, let watch, let retain) = state else { return }
        watch.remove()  // before bufferevent_free closes the descriptor it watches
        evhttp_connection_set_closecb(connection, nil, nil)
        server.base.counters.closeWatches.bump(-1)
        let reason = abortReason ?? .serverClosed
        state = .aborted(reason)
        let handler = onAbort
        onAbort = nil
        handler?(reason)
        retain.release()  // balances watchForAbort's passRetained
    }
}

/// The C close callback: captures nothing, finds the request through `arg`.
private func closeTrampoline(_ connection: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    // Unretained: connectionClosed() releases the callback's retain itself, exactly once; our
    // local reference keeps the object alive until it returns.
    Unmanaged<HTTPRequest>.fromOpaque(arg).takeUnretainedValue().connectionClosed()
}
