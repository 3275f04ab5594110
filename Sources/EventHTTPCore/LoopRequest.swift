import CLibevent

/// An HTTP method, as evhttp parsed it.
public enum RequestMethod: String, Sendable {
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

/// One request received by an ``LoopHTTPServer``, from the moment evhttp hands it over until it is
/// answered or its connection goes away.
///
/// evhttp owns the `struct evhttp_request`. It stays valid until ``respond(status:reason:headers:body:)``
/// (evhttp frees it once the reply is written) or until the connection is freed. This object
/// forgets the pointer at both moments, so no call here can touch freed memory; after either,
/// ``respond(status:reason:headers:body:)`` returns `false`.
///
/// To keep a request pending (the greeting thinks), call ``watchForAbort()``: the connection then
/// watches its socket (see `HTTPConnection`), and if the client goes away first the server
/// reports ``RequestEnd/aborted(_:)`` to its responder.
///
/// Ownership: the request and its connection hold each other strongly while the request is
/// pending; the pair parts when it is answered or aborted. A responder may keep the request as
/// long as it likes.
///
/// Threading: loop-confined.
public final class LoopRequest {
    enum State {
        /// Handed to the responder, not answered.
        case pending(request: UnsafeMutablePointer<evhttp_request>)
        /// A streamed reply is under way (`LoopRequest+Streaming.swift`): its status and the body
        /// bytes handed to evhttp so far. The C request is still evhttp's, attached to the
        /// connection, until the stream ends or the connection goes.
        case streaming(request: UnsafeMutablePointer<evhttp_request>, status: Int, bytes: Int)
        /// The reply was handed to evhttp; the C request is evhttp's to free.
        case responded
        /// The connection went away before a reply.
        case aborted(ConnectionEnd)
    }

    var state: State
    let connection: HTTPConnection
    let thread: LoopThread
    private let counters: LibeventCounters
    /// Whether ``watchForAbort()`` was called.
    public internal(set) var isWatched = false

    /// Its name, method, target and arrival, as the access log sees them.
    public let head: RequestHead
    /// The request method.
    public let method: RequestMethod
    /// The path component of the target, undecoded, e.g. `/`.
    public let path: String
    /// The raw query string, without `?`, if any.
    public let query: String?
    /// The request target as sent, e.g. `/?delay=2s`.
    public var uri: String { head.target }
    /// The request's name: the `X-Request-Id` its response carries.
    public var id: String { head.id }
    /// Whether the request line said `HTTP/1.0` (else `HTTP/1.1`): a streamed reply to it is
    /// close-delimited rather than chunked.
    public let isHTTP10: Bool
    /// Called once, on the loop thread, when the output drains to the watermark given to
    /// ``notifyWhenDrained(lowWatermark:_:)``, or when the stream ends or its connection goes.
    var drainWaiter: (() -> Void)?
    var drainWatermark = 0

    init(raw: UnsafeMutablePointer<evhttp_request>, head: RequestHead, connection: HTTPConnection) {
        self.state = .pending(request: raw)
        self.connection = connection
        self.thread = connection.server.base.thread
        self.counters = connection.server.base.counters
        self.head = head
        self.method = RequestMethod(evhttp_request_get_command(raw))
        // The second read of `http_struct.h` (see `hasSupportedVersion`): no accessor in 2.1.
        self.isHTTP10 = raw.pointee.major == 1 && raw.pointee.minor == 0
        let parsed = evhttp_request_get_evhttp_uri(raw)
        self.path = parsed.flatMap { evhttp_uri_get_path($0) }.map { String(cString: $0) } ?? ""
        self.query = parsed.flatMap { evhttp_uri_get_query($0) }.map { String(cString: $0) }
        counters.liveRequests.bump()
        connection.beginHandling(self)
    }

    deinit {
        counters.liveRequests.bump(-1)
    }

    /// Whether the request line said HTTP/1.0 or HTTP/1.1 (evhttp 2.1 accepts `HTTP/-1.1`,
    /// `HTTP/1.10`, ... and would echo them in the status line).
    ///
    /// The one use of `http_struct.h`: evhttp 2.1 has no accessor for the version. Read only.
    static func hasSupportedVersion(_ raw: UnsafeMutablePointer<evhttp_request>) -> Bool {
        raw.pointee.major == 1 && (raw.pointee.minor == 0 || raw.pointee.minor == 1)
    }

    /// Whether the request still waits for a reply.
    public var isPending: Bool {
        if case .pending = state { return true }
        return false
    }

    /// Why the connection ended before the reply (or before the end of a streamed reply);
    /// `nil` while the request is pending or streaming, and once it was answered.
    public var abortReason: ConnectionEnd? {
        if case .aborted(let reason) = state { return reason }
        return nil
    }

    /// The value of the first request header called `name` (case-insensitive).
    /// Available while the request is pending or streaming; `nil` afterwards.
    public func header(_ name: String) -> String? {
        guard let raw = liveRequest else { return nil }
        return evhttp_find_header(evhttp_request_get_input_headers(raw), name).map { String(cString: $0) }
    }

    /// The query's `name=value` pairs, decoded (`%xx`, `+`), in order; `nil` if the query is malformed.
    public func queryItems() -> [(name: String, value: String)]? {
        guard let query else { return [] }
        var list = evkeyvalq()
        // withCString, not the implicit String-to-pointer conversion, which copies the string
        // to a new heap array every call (a short query is copied to the stack instead).
        guard query.withCString({ evhttp_parse_query_str($0, &list) }) == 0 else { return nil }
        defer { evhttp_clear_headers(&list) }
        var items: [(name: String, value: String)] = []
        var cursor = list.tqh_first
        while let entry = cursor {
            items.append((String(cString: entry.pointee.key), String(cString: entry.pointee.value)))
            cursor = entry.pointee.next.tqe_next
        }
        return items
    }

    /// The client's address, `host:port`, while the request is pending.
    public var peer: String? {
        guard liveRequest != nil else { return nil }
        var address: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(connection.raw, &address, &port)
        guard let address else { return nil }
        return "\(String(cString: address)):\(port)"
    }

    /// Sends the reply, with `X-Request-Id` (the transport's: one in `headers` is dropped), and
    /// reports ``RequestEnd/responded(status:bytes:)`` to the responder before returning.
    /// The status line's reason defaults to the standard phrase; the content type to
    /// `text/plain; charset=utf-8`.
    ///
    /// Stops the abort watch first, so a client that closes once it has its answer (a
    /// keep-alive connection ending, say) is never taken for an abort. A `HEAD` request gets the
    /// headers only. A `Connection: close` header closes the connection after the reply.
    /// - Returns: `false` if the request was already answered or its client had gone.
    @discardableResult
    public func respond(status: Int, reason: String? = nil, headers: [(String, String)] = [], body: String = "") -> Bool {
        thread.preconditionOnThread()
        guard case .pending(let request) = state else { return false }
        state = .responded
        connection.beginReplying()
        let output = addHeaders(headers, to: request)
        var bytes = 0
        if method == .head {
            // evhttp neither drops the body of a HEAD reply nor sets its length: do both here.
            // A decimal number is a valid value: fails only out of memory, and then the headers
            // lack the length (or get evhttp's own `0`); there is no body to frame either way.
            _ = addHeader(output, "Content-Length", String(body.utf8.count))
        } else {
            var body = body
            let added = body.withUTF8 { evbuffer_add(evhttp_request_get_output_buffer(request), $0.baseAddress, $0.count) }
            // evbuffer_add fails (-1, nothing added) only out of memory: the reply then goes out
            // with an empty body (evhttp sets Content-Length from the buffer), reported as such.
            if added == 0 { bytes = body.utf8.count }
        }
        // evhttp takes the request from here; it frees it once the reply is written or fails.
        evhttp_send_reply(request, Int32(status), reason, nil)
        connection.report(head, .responded(status: status, bytes: bytes))
        return true
    }

    /// Keeps the request pending and watches its connection: if the client goes away (or the
    /// server closes) before ``respond(status:reason:headers:body:)``, the responder is told
    /// ``RequestEnd/aborted(_:)``. Call it at most once, while pending.
    public func watchForAbort() throws(LibeventError) {
        thread.preconditionOnThread()
        guard case .pending = state, !isWatched else {
            preconditionFailure("watchForAbort called on a request that is not pending or is already watched")
        }
        try connection.startAbortWatch()
        isWatched = true
    }

    /// The C request while it is pending or streaming.
    var liveRequest: UnsafeMutablePointer<evhttp_request>? {
        switch state {
        case .pending(let raw), .streaming(let raw, _, _): return raw
        case .responded, .aborted: return nil
        }
    }

    /// Adds `headers` (but not `X-Request-Id`: the transport's own is added), a default
    /// `Content-Type` and, unless `headers` has one, `Date` (``HTTPDateCache``), to the reply's
    /// headers; returns them.
    /// `evhttp_add_header` with each string passed through `withCString`. Most header names and
    /// values are small strings (up to 15 UTF-8 bytes, kept inline): `withCString` copies one to
    /// the stack, where passing it straight as a `char *` argument copies it into a new heap array
    /// (one allocation per header field, and its release).
    @inline(__always)
    func addHeader(_ headers: UnsafeMutablePointer<evkeyvalq>, _ name: String, _ value: String) -> Int32 {
        name.withCString { name in value.withCString { value in evhttp_add_header(headers, name, value) } }
    }

    func addHeaders(_ headers: [(String, String)], to request: UnsafeMutablePointer<evhttp_request>,
                    dropping dropped: Set<String> = []) -> UnsafeMutablePointer<evkeyvalq> {
        let output = evhttp_request_get_output_headers(request)!
        var hasDate = false
        for (name, value) in headers {
            let lowered = name.lowercased()
            guard lowered != "x-request-id", !dropped.contains(lowered) else { continue }
            if lowered == "date" { hasDate = true }
            // evhttp_add_header refuses (-1) a name or value with CR/LF, so header injection is
            // dropped; its only other failure is out of memory, which also just drops the header.
            _ = addHeader(output, name, value)
        }
        // Refused only for an id with CR/LF (the responder's choice: the reply then goes without
        // it, as the canned responses do) or out of memory.
        _ = addHeader(output, "X-Request-Id", head.id)
        if evhttp_find_header(output, "Content-Type") == nil {
            // A constant valid value: fails only out of memory, and the reply goes without it.
            _ = evhttp_add_header(output, "Content-Type", "text/plain; charset=utf-8")
        }
        if !hasDate {
            // Where evhttp would add its own (which it then skips), from the per-second cache.
            // Fails only out of memory; evhttp then adds its own.
            let server = connection.server
            _ = server.date.withValue(at: server.base.now) { evhttp_add_header(output, "Date", $0) }
        }
        return output
    }

    /// The connection is being freed with this request unanswered (or its stream unfinished).
    /// - Parameter requestValid: whether the C request may still be touched: `false` when the
    ///   connection was freed before its close callback ran (then evhttp freed the request too).
    func connectionClosed(_ reason: ConnectionEnd, requestValid: Bool = true) {
        switch state {
        case .pending:
            break
        case .streaming(let raw, _, _):
            // evhttp_connection_free runs the close callback first, then frees the requests
            // still queued on the connection: an attached stream's request is evhttp's to free.
            // But when evhttp itself saw the connection fail (a write error or timeout while
            // streaming, in evhttp_connection_fail_), evhttp_connection_incoming_fail detached
            // the unfinished request (`userdone == 0`: `evcon = NULL`) before freeing the
            // connection, and leaves it to the user: free it ourselves, once, after evhttp's
            // callback has returned.
            if requestValid, evhttp_request_get_connection(raw) == nil {
                connection.safePoint.perform { evhttp_request_free(raw) }
            }
        case .responded, .aborted:
            return
        }
        var ended = head
        if case .streaming(_, let status, let bytes) = state { ended.streamed = (status, bytes) }
        state = .aborted(reason)
        isWatched = false
        connection.report(ended, .aborted(reason))
        fireDrainWaiter()
    }
}
