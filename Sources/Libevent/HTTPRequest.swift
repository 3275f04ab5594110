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

/// An object told when a watched request's client goes away: no closure, so no capture context
/// per request.
public protocol AbortObserver: AnyObject {
    /// Called once, on the loop thread, when the connection under `request` ends before a reply.
    func requestAborted(_ request: HTTPRequest, reason: ConnectionEnd)
}

/// One request received by an ``HTTPServer``, from the moment evhttp hands it over until it is
/// answered or its connection goes away.
///
/// evhttp owns the `struct evhttp_request`. It stays valid until ``respond(status:reason:headers:body:)``
/// (evhttp frees it once the reply is written) or until the connection is freed. This object
/// forgets the pointer at both moments, so no call here can touch freed memory; after either,
/// ``respond(status:reason:headers:body:)`` returns `false`.
///
/// To keep a request pending (the greeting thinks), call ``watchForAbort(observer:)``: the connection
/// then watches its socket (see `HTTPConnection`) and calls the handler once if the client goes.
///
/// Threading: loop-confined.
public final class HTTPRequest {
    /// Why a watched request ended without a reply.
    public typealias AbortReason = ConnectionEnd

    private enum State {
        /// Handed to the handler, not answered.
        case pending(request: UnsafeMutablePointer<evhttp_request>)
        /// The reply was handed to evhttp; the C request is evhttp's to free.
        case responded
        /// The connection went away before a reply.
        case aborted(ConnectionEnd)
    }

    private var state: State
    private let connection: HTTPConnection
    /// For thread checks; strong, since an abort observer may call `respond` while the server is
    /// being freed (its connections close from inside `evhttp_free`).
    private let base: EventBase
    private let counters: LibeventCounters
    /// Who to tell if the client goes away; held unowned (the observer owns the request).
    private unowned(unsafe) var abortObserver: (any AbortObserver)?
    private var isWatched = false

    /// The request method.
    public let method: HTTPMethod
    /// The request target as sent, e.g. `/?delay=2s`.
    public let uri: String
    /// The path component of the target, undecoded, e.g. `/`.
    public let path: String
    /// The raw query string, without `?`, if any.
    public let query: String?
    /// Whether the request line said HTTP/1.0 or HTTP/1.1 (evhttp 2.1 accepts `HTTP/-1.1`,
    /// `HTTP/1.10`, ... and would echo them in the status line).
    public let hasSupportedVersion: Bool

    /// Whether this is the first request on its connection.
    public var isFirstOnConnection: Bool { connection.requestCount == 1 }

    init(raw: UnsafeMutablePointer<evhttp_request>, connection: HTTPConnection, server: HTTPServer) {
        self.state = .pending(request: raw)
        self.connection = connection
        self.base = server.base
        self.counters = server.base.counters
        self.method = HTTPMethod(evhttp_request_get_command(raw))
        self.uri = evhttp_request_get_uri(raw).map { String(cString: $0) } ?? ""
        let parsed = evhttp_request_get_evhttp_uri(raw)
        self.path = parsed.flatMap { evhttp_uri_get_path($0) }.map { String(cString: $0) } ?? ""
        self.query = parsed.flatMap { evhttp_uri_get_query($0) }.map { String(cString: $0) }
        // The fields of `struct evhttp_request` (http_struct.h) are the only way to the version.
        self.hasSupportedVersion = raw.pointee.major == 1 && (raw.pointee.minor == 0 || raw.pointee.minor == 1)
        if !hasSupportedVersion {
            // Answer in HTTP/1.1 whatever the client claimed, and close.
            raw.pointee.major = 1
            raw.pointee.minor = 1
        }
        counters.liveRequests.bump()
        connection.beginHandling(self)
    }

    deinit {
        if case .pending = state {
            // A handler dropped the request without answering. Answer rather than leave the
            // client hanging; in debug builds, say so loudly.
            assertionFailure("HTTPRequest dropped without a reply: \(method.rawValue) \(uri)")
            _ = respond(status: 500, body: "internal error: request dropped\n")
        }
        counters.liveRequests.bump(-1)
    }

    /// Whether the request still waits for a reply.
    public var isPending: Bool {
        if case .pending = state { return true }
        return false
    }

    /// The value of the first request header called `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        guard case .pending(let raw) = state else { return nil }
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
        guard case .pending = state else { return nil }
        var address: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(connection.raw, &address, &port)
        guard let address else { return nil }
        return "\(String(cString: address)):\(port)"
    }

    /// Sends the reply. The status line's reason defaults to the standard phrase; the content
    /// type to `text/plain; charset=utf-8`.
    ///
    /// Stops the abort watch first, so a client that closes once it has its answer (a
    /// keep-alive connection ending, say) is never taken for an abort. A `HEAD` request gets the
    /// headers only. A `Connection: close` header closes the connection after the reply.
    /// - Returns: `false` if the request was already answered or its client had gone.
    @discardableResult
    public func respond(status: Int, reason: String? = nil, headers: [(String, String)] = [], body: String = "") -> Bool {
        base.thread.preconditionOnThread()
        guard case .pending(let request) = state else { return false }
        state = .responded
        isWatched = false
        abortObserver = nil
        connection.beginReplying()
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
        return true
    }

    /// Keeps the request pending and tells `observer` once, on the loop thread, if the client
    /// goes away (or the server frees the connection) before ``respond(status:reason:headers:body:)``.
    /// The observer is held unowned: it must own this request. Call it at most once, while pending.
    public func watchForAbort(observer: any AbortObserver) throws(LibeventError) {
        base.thread.preconditionOnThread()
        guard case .pending = state, !isWatched else {
            preconditionFailure("watchForAbort called on a request that is not pending or is already watched")
        }
        try connection.startAbortWatch()
        abortObserver = observer
        isWatched = true
    }

    /// The connection is being freed with this request unanswered.
    func connectionClosed(_ reason: ConnectionEnd) {
        guard case .pending = state else { return }
        state = .aborted(reason)
        let observer = isWatched ? abortObserver : nil
        abortObserver = nil
        isWatched = false
        observer?.requestAborted(self, reason: reason)
    }
}

