import CLibevent
public import EventHTTPSystem

/// An HTTP/1.1 server: the owner of one `struct evhttp` and, through it, of its listeners
/// (`evhttp_bound_socket` → `evconnlistener` → socket) and its connections; the adapter between
/// evhttp and one ``LoopResponder``.
///
/// It owns evhttp's rules so that the responder never learns them:
/// - nothing is freed from inside an evhttp callback (``close()``, connection closes and drains
///   wait for a safe point, see `SafePoint`);
/// - every response carries `X-Request-Id`, and every request's end is reported once through
///   ``LoopResponder/requestEnded(_:_:)``, including evhttp's canned `400`/`413`, the `503` at
///   ``HTTPServerOptions/maxConnections`` and the `400` for an unsupported HTTP version;
/// - `SIGPIPE` is ignored (once per process): evhttp writes with `writev`, and a client that has
///   gone would otherwise kill the process on the next reply.
///
/// Ownership: ``close()`` (or `deinit`) frees every connection first (a pending request is
/// reported aborted, ``ConnectionEnd/serverClosed``), then the `evhttp` with its listeners:
/// `evhttp_free` is only supported with no request in progress. The server keeps its
/// ``EventBase`` alive. The responder is held `unowned`: it must outlive the server (it owns it),
/// except for the closure form of ``init(base:options:group:handler:)``, which owns its closure.
///
/// Threading: loop-confined to its base. The responder is called on the loop thread.
public final class LoopHTTPServer {
    var raw: OpaquePointer?
    /// Strong: the base must outlive the server (see ``EventBase``).
    let base: EventBase
    let options: HTTPServerOptions
    /// Shared with the other servers of the process: the connection count and request numbers.
    let group: HTTPServerGroup
    /// Cached `EV_FEATURE_EARLY_CLOSE` of the base, read by every abort watch.
    let earlyClose: Bool
    /// ``HTTPServerOptions/headerTimeout`` and ``HTTPServerOptions/idleTimeout`` as libevent
    /// common timeouts of the base (`event_base_init_common_timeout`): every connection's read
    /// deadline is armed with one of them, an O(1) queue append instead of a heap insertion.
    let headerDeadline: timeval?, idleDeadline: timeval?
    /// The `Date` value replies carry, formatted once per second (see ``HTTPDateCache``).
    var date = HTTPDateCache()
    let safePoint: SafePoint
    private unowned let responder: any LoopResponder
    /// Keeps a ``ClosureResponder`` alive; `nil` when the responder owns the server.
    private let ownedResponder: (any LoopResponder)?
    /// Off while `deinit` frees the connections: nobody is left to tell.
    private var reportsToResponder = true
    var listeners: [OpaquePointer] = []
    /// Every adopted connection, by its evhttp handle.
    var connections: [OpaquePointer: HTTPConnection] = [:]
    /// Bufferevents of connections evhttp accepted in the current callback, to adopt next.
    var newBufferevents: [OpaquePointer] = []
    /// Fires right after evhttp's accept callback to adopt `newBufferevents`.
    var adoptEvent: Event?
    /// Listeners paused after an accept error, and the timer that resumes them.
    var pausedListeners: [OpaquePointer] = []
    var resumeTimer: Event?
    var acceptBackoff: Duration = .zero
    var lastAcceptError: ContinuousClock.Instant?
    /// Set by ``beginDraining()``: connections are closed as soon as they turn idle.
    private(set) var isDraining = false

    /// Called on the loop thread after a connection opens or closes, with this server's open count.
    public var onConnectionCountChange: ((Int) -> Void)?
    /// Called on the loop thread when `accept` fails (`EMFILE`, `ENFILE`, `ENOBUFS`, ...), with the
    /// error and how long accepting now pauses.
    public var onAcceptError: ((Errno, Duration) -> Void)?
    /// Called once on the loop thread when ``close()`` has freed everything (at a safe point).
    public var onClosed: (() -> Void)?

    /// The responder's body for a canned error answer (see ``LoopResponder/renderError(status:head:)``).
    func renderCannedError(status: Int, head: RequestHead) -> RenderedError? {
        reportsToResponder ? responder.renderError(status: status, head: head) : nil
    }

    /// Open client connections of this server.
    public var connectionCount: Int { connections.count }
    /// Whether ``close()`` has completed.
    public var isClosed: Bool { raw == nil }

    /// The addresses the server listens on: filled by ``bind(host:port:)``, emptied by
    /// ``closeListeners()`` and ``close()``.
    public internal(set) var addresses: [IPEndpoint] = []

    /// Ignores `SIGPIPE` for the whole process, the first time a server is made.
    private static let ignoreBrokenPipes: Void = ProcessSignals.ignoreBrokenPipe()

    /// Creates a server on `base` that hands every request, whatever its path, to `responder`.
    /// - Parameter group: what this server shares with the others of the process (the
    ///   connection limit and request numbers); a new group makes the server stand alone.
    public convenience init(base: EventBase, options: HTTPServerOptions = .init(), group: HTTPServerGroup = HTTPServerGroup(),
                responder: any LoopResponder) throws(LibeventError) {
        try self.init(base: base, options: options, group: group, responder: responder, owning: nil)
    }

    /// Creates a server whose every request goes to `handler`; requests are named by number, and
    /// their ends are not reported.
    public convenience init(base: EventBase, options: HTTPServerOptions = .init(), group: HTTPServerGroup = HTTPServerGroup(),
                            handler: @escaping (LoopRequest) -> Void) throws(LibeventError) {
        let responder = ClosureResponder(handler)
        try self.init(base: base, options: options, group: group, responder: responder, owning: responder)
    }

    private init(base: EventBase, options: HTTPServerOptions, group: HTTPServerGroup,
                 responder: any LoopResponder, owning: (any LoopResponder)?) throws(LibeventError) {
        base.thread.preconditionOnThread()
        Self.ignoreBrokenPipes
        self.base = base
        self.options = options
        self.group = group
        self.responder = responder
        self.ownedResponder = owning
        self.earlyClose = base.supportsEarlyClose
        self.headerDeadline = options.headerTimeout.map { Self.commonTimeout($0, on: base) }
        self.idleDeadline = options.idleTimeout.map { Self.commonTimeout($0, on: base) }
        self.safePoint = try SafePoint(base: base)
        let http = try nonNull(evhttp_new(base.raw), "evhttp_new")
        raw = http
        evhttp_set_max_headers_size(http, options.maxHeaderBytes)
        evhttp_set_max_body_size(http, options.maxBodyBytes)
        if let idle = options.idleTimeout {
            var tv = timeval(duration: idle)
            evhttp_set_timeout_tv(http, &tv)
        }
        // Every method reaches the responder, so that it, not libevent (a bare 501 page), answers:
        // all bits set, including evhttp's internal EVHTTP_REQ_UNKNOWN_ (1 << 15), which marks
        // a method it does not know (`FOO`); those arrive as `RequestMethod.other`.
        evhttp_set_allowed_methods(http, UInt16.max)
        // No default: evhttp keeps the pointer it is given, not a copy. respond() sets the type.
        evhttp_set_default_content_type(http, nil)
        // Unretained: evhttp is freed in close()/deinit, so the callback cannot outlive self.
        evhttp_set_gencb(http, requestTrampoline, Unmanaged.passUnretained(self).toOpaque())
        evhttp_set_bevcb(http, bufferEventTrampoline, Unmanaged.passUnretained(self).toOpaque())
        adoptEvent = try Event(base: base) { [unowned self] _ in self.adoptNewConnections() }
        resumeTimer = try Event(base: base) { [unowned self] _ in self.resumeAccepting() }
        // The listeners' error callback gets evhttp's pointer as its argument (evhttp set it as
        // the listener's user data): map it back to this object. Unretained: removed in close().
        LoopRegistry.current.servers[UnsafeMutableRawPointer(http)] = Unmanaged.passUnretained(self)
    }

    /// The common-timeout value for `duration` on `base`; the plain one when libevent cannot make
    /// one (out of memory, or its 256 per base used up): then arming costs a heap insertion.
    private static func commonTimeout(_ duration: Duration, on base: EventBase) -> timeval {
        var plain = timeval(duration: duration)
        return event_base_init_common_timeout(base.raw, &plain)?.pointee ?? plain
    }

    deinit {
        // Freeing the connections runs their close callbacks, which would report back to this
        // object while it is being destroyed, and to a responder that may be gone.
        reportsToResponder = false
        for connection in connections.values { connection.detachFromServer() }
        guard let raw else { return }
        LoopRegistry.current.servers[UnsafeMutableRawPointer(raw)] = nil
        let open = Array(connections.values), pending = newBufferevents
        let free = { Self.free(raw, connections: open, pendingAccepts: pending) }
        if safePoint.isSafe {
            free()
        } else {
            // Dropped from inside an evhttp callback: free at the safe point, which the closure
            // keeps alive until then.
            let safePoint = self.safePoint
            safePoint.perform { withExtendedLifetime(safePoint) { free() } }
        }
    }

    /// Stops accepting: closes every listener. Connections already open carry on.
    public func closeListeners() {
        base.thread.preconditionOnThread()
        guard let raw else { return }
        for socket in listeners { evhttp_del_accept_socket(raw, socket) }
        listeners = []
        addresses = []
        pausedListeners = []
        resumeTimer?.remove()
    }

    /// Drains: closes the listeners and every idle connection (one waiting for a request with no
    /// byte of it received), and from now on each connection as soon as it turns idle. Requests
    /// in progress carry on; keep-alive clients reconnect elsewhere, as with Go's `Shutdown`.
    public func beginDraining() {
        base.thread.preconditionOnThread()
        guard raw != nil, !isDraining else { return }
        isDraining = true
        closeListeners()
        for connection in connections.values where connection.isIdle {
            connection.end(.serverClosed)
        }
    }

    /// Frees every connection (each pending request is reported aborted with
    /// ``ConnectionEnd/serverClosed``), then the `evhttp` and its listeners; ``onClosed`` runs.
    /// From inside a responder call this happens at the next safe point, not at once.
    /// Safe to call twice.
    public func close() {
        base.thread.preconditionOnThread()
        guard raw != nil else { return }
        guard safePoint.isSafe else {
            closeListeners()
            safePoint.perform { [self] in close() }
            return
        }
        let http = raw!
        closeListeners()
        // Requests first: evhttp_free is unsupported while requests are in progress.
        for connection in Array(connections.values) { connection.endNow(.serverClosed) }
        LoopRegistry.current.servers[UnsafeMutableRawPointer(http)] = nil
        raw = nil
        Self.free(http, connections: [], pendingAccepts: newBufferevents)
        newBufferevents = []
        adoptEvent = nil
        resumeTimer = nil
        onClosed?()
    }

    /// Frees what is left in order: connections, accepted-but-not-adopted connections, evhttp.
    private static func free(_ http: OpaquePointer, connections: [HTTPConnection], pendingAccepts: [OpaquePointer]) {
        for connection in connections { connection.endNow(.serverClosed) }
        for bufferevent in pendingAccepts {
            // A bufferevent evhttp already freed has its callbacks cleared (see adoption).
            var arg: UnsafeMutableRawPointer?
            bufferevent_getcb(bufferevent, nil, nil, nil, &arg)
            if let arg { evhttp_connection_free(OpaquePointer(arg)) }
            // Returns 1 when this was the last reference (it freed the bufferevent), else 0.
            _ = bufferevent_decref(bufferevent)
        }
        evhttp_free(http)
    }

    // MARK: - Requests

    fileprivate func handle(_ request: UnsafeMutablePointer<evhttp_request>) {
        guard let raw = evhttp_request_get_connection(request), let connection = connections[raw] else {
            // Not adopted (cannot happen with evhttp 2.1): answer without tracking.
            evhttp_send_error(request, 500, nil)
            return
        }
        // Unretained: the connection lives until its close callback, after the request is gone.
        evhttp_request_set_on_complete_cb(request, requestCompleteTrampoline, Unmanaged.passUnretained(connection).toOpaque())
        if let rejection = connection.framer.rejection, rejection.index == connection.requestCount {
            refuse(request, rejection, on: connection)
            return
        }
        let clientID = evhttp_find_header(evhttp_request_get_input_headers(request), "X-Request-Id").map { String(cString: $0) }
        let supported = LoopRequest.hasSupportedVersion(request)
        let number = group.nextRequestNumber()
        var head = RequestHead(
            number: number, id: responder.requestID(number: number, clientValue: clientID),
            method: RequestMethod(evhttp_request_get_command(request)).rawValue,
            target: evhttp_request_get_uri(request).map { String(cString: $0) } ?? "",
            start: .now, origin: supported ? .application : .unsupportedVersion)
        if options.recordsClient { head.describeClient(request, connection: connection) }
        let wrapped = LoopRequest(raw: request, head: head, connection: connection)
        guard supported else {
            // evhttp would echo the version in the status line; the connection rewrites it.
            connection.answerInHTTP11()
            wrapped.respond(status: 400, headers: [("Connection", "close")], body: "unsupported HTTP version; use HTTP/1.1\n")
            return
        }
        responder.handle(wrapped)
        if wrapped.isPending && !wrapped.isWatched {
            assertionFailure("LoopRequest neither answered nor watched: \(head.method) \(head.target)")
            wrapped.respond(status: 500, body: "internal error: request dropped\n")
        }
    }

    /// Answers the stand-in request the framer put in place of a refused one
    /// (`RequestFraming.swift`): its status, plain text, `Connection: close`; the responder
    /// sees only the end (``ResponseOrigin/parser``), named after the refused request line.
    private func refuse(_ request: UnsafeMutablePointer<evhttp_request>, _ rejection: RequestFramer.Rejection,
                        on connection: HTTPConnection) {
        let number = group.nextRequestNumber()
        let head = RequestHead(
            number: number, id: responder.requestID(number: number, clientValue: nil),
            method: rejection.method, target: rejection.target,
            start: connection.requestStarted ?? .now, origin: .parser)
        let wrapped = LoopRequest(raw: request, head: head, connection: connection)
        wrapped.respond(status: rejection.status, headers: [("Connection", "close")], body: rejection.reason + "\n")
    }

    /// Names a request the transport answers itself (no headers were read).
    func cannedHead(method: String = "-", target: String = "-", start: ContinuousClock.Instant,
                    origin: ResponseOrigin) -> RequestHead {
        let number = group.nextRequestNumber()
        return RequestHead(number: number, id: responder.requestID(number: number, clientValue: nil),
                               method: method, target: target, start: start, origin: origin)
    }

    /// Tells the responder a request ended (once per request; the callers make sure of it).
    func report(_ head: RequestHead, _ end: RequestEnd) {
        guard reportsToResponder else { return }
        responder.requestEnded(head, end)
    }

    func connectionClosed(_ connection: HTTPConnection, reason: ConnectionCloseReason) {
        connections[connection.raw] = nil
        if reportsToResponder { responder.connectionClosed(reason) }
        onConnectionCountChange?(connections.count)
    }

    /// A connection refused at the limit (never adopted) closed.
    func refusedConnectionClosed() {
        if reportsToResponder { responder.connectionClosed(.maxConnections) }
    }
}

/// The C request callback: captures nothing, finds the server through `arg`.
private func requestTrampoline(_ request: UnsafeMutablePointer<evhttp_request>?, _ arg: UnsafeMutableRawPointer?) {
    guard let request, let arg else { return }
    let server = Unmanaged<LoopHTTPServer>.fromOpaque(arg).takeUnretainedValue()
    server.safePoint.callback { server.handle(request) }
}
