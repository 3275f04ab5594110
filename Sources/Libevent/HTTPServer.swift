import CLibevent
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Limits and socket options for an ``HTTPServer``.
public struct HTTPServerOptions: Sendable {
    /// Largest request line plus headers, in bytes (`evhttp_set_max_headers_size`). Larger
    /// requests get `413` from libevent and the connection is closed.
    public var maxHeaderBytes: Int = 64 * 1024
    /// Largest request body, in bytes (`evhttp_set_max_body_size`).
    public var maxBodyBytes: Int = 1024 * 1024
    /// Bytes a client may send behind a pending request (pipelined requests) before it is
    /// dropped. They are kept for evhttp to read after the reply.
    public var pipelineLimit: Int = 64 * 1024
    /// `listen(2)` backlog for each listener.
    public var backlog: Int32 = 4096
    /// Most client connections open at once. Past it, a new connection gets a canned `503` and
    /// is closed before evhttp reads from it.
    public var maxConnections: Int = 10_000
    /// Time a new connection has to send its first whole request (request line, headers, body):
    /// slowloris clients are dropped after it. `nil`: no limit.
    public var headerTimeout: Duration? = .seconds(10)
    /// Time a keep-alive connection may sit idle and then send its next whole request; also the
    /// limit on any single stalled read or write (`evhttp_set_timeout_tv`). `nil`: no limit.
    public var idleTimeout: Duration? = .seconds(60)
    /// Let several sockets (one per worker loop) share a port (`SO_REUSEPORT`).
    public var reusePort = false

    public init() {}
}

/// An HTTP/1.1 server: the owner of one `struct evhttp` and, through it, of its listeners
/// (`evhttp_bound_socket` → `evconnlistener` → socket) and its connections.
///
/// Ownership: ``close()`` (or `deinit`) calls `evhttp_free`, which closes the listeners and frees
/// every connection; a connection with a pending watched request runs its close callback, so the
/// request's abort handler runs then. The server keeps its ``EventBase`` alive.
///
/// Threading: loop-confined to its base. Handlers run on the loop thread.
public final class HTTPServer {
    private var raw: OpaquePointer?
    /// Strong: the base must outlive the server (see ``EventBase``).
    let base: EventBase
    let options: HTTPServerOptions
    /// Cached `EV_FEATURE_EARLY_CLOSE` of the base, read by every abort watch.
    let earlyClose: Bool
    private let handler: (HTTPRequest) -> Void
    private var listeners: [OpaquePointer] = []
    /// Every open connection, by its evhttp handle.
    private var connections: [OpaquePointer: HTTPConnection] = [:]
    /// Bufferevents of connections evhttp accepted in the current callback, to adopt next.
    private var newBufferevents: [OpaquePointer] = []
    /// Fires right after evhttp's accept callback to adopt `newBufferevents`.
    private var adoptEvent: Event?

    /// Called on the loop thread after a connection opens or closes, with the open count.
    public var onConnectionCountChange: ((Int) -> Void)?
    /// Called on the loop thread after a connection was refused at ``HTTPServerOptions/maxConnections``.
    public var onConnectionRejected: (() -> Void)?
    /// Called on the loop thread when `accept` fails (`EMFILE`, `ENFILE`, `ENOBUFS`, ...), with the
    /// error and how long accepting now pauses.
    public var onAcceptError: ((Int32, Duration) -> Void)?

    /// Listeners paused after an accept error, and the timer that resumes them.
    private var pausedListeners: [OpaquePointer] = []
    private var resumeTimer: Event?
    private var acceptBackoff: Duration = .zero
    private var lastAcceptError: ContinuousClock.Instant?

    /// Open client connections.
    public var connectionCount: Int { connections.count }

    /// The addresses the server listens on: filled by ``bind(host:port:)``, emptied by
    /// ``closeListeners()`` and ``close()``.
    public private(set) var addresses: [SocketAddress] = []

    /// Creates a server on `base` whose every request, whatever its path, goes to `handler`.
    ///
    /// The handler must, before it returns, either answer with ``HTTPRequest/respond(status:reason:headers:body:)``
    /// or keep the request and call ``HTTPRequest/watchForAbort(_:)``.
    public init(base: EventBase, options: HTTPServerOptions = .init(), handler: @escaping (HTTPRequest) -> Void) throws(LibeventError) {
        base.thread.preconditionOnThread()
        self.base = base
        self.options = options
        self.handler = handler
        self.earlyClose = base.supportsEarlyClose
        let http = try nonNull(evhttp_new(base.raw), "evhttp_new")
        raw = http
        evhttp_set_max_headers_size(http, options.maxHeaderBytes)
        evhttp_set_max_body_size(http, options.maxBodyBytes)
        if let idle = options.idleTimeout {
            var tv = timeval(duration: idle)
            evhttp_set_timeout_tv(http, &tv)
        }
        // Every method reaches our handler, so that it, not libevent (a bare 501 page), answers:
        // all bits set, including evhttp's internal EVHTTP_REQ_UNKNOWN_ (1 << 15), which marks
        // a method it does not know (`FOO`); those arrive as `HTTPMethod.other`.
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

    deinit {
        // Freeing evhttp runs every connection's close callback, which would report back to this
        // object while it is being destroyed.
        for connection in connections.values { connection.detachFromServer() }
        close()
    }

    /// Listens on every address `host` resolves to, all on one port.
    ///
    /// `localhost` always means both loopback addresses, `127.0.0.1` and `::1`, even where the
    /// resolver (an `/etc/hosts` without `::1 localhost`) lists only one; the one it does not list
    /// is skipped if the machine lacks it (no IPv6).
    ///
    /// `port` 0 picks a free port on the first address and reuses it for the others. Sockets get
    /// `SO_REUSEADDR`, IPv6 ones `IPV6_V6ONLY` (so `::` and `0.0.0.0` can both be bound).
    /// - Returns: the bound addresses, with real ports.
    /// - Throws: ``LibeventError/bind(address:errno:)`` naming the address that failed; nothing
    ///   stays bound after a throw.
    @discardableResult
    public func bind(host: String, port: UInt16) throws(LibeventError) -> [SocketAddress] {
        base.thread.preconditionOnThread()
        let (resolved, optional) = try Self.listenAddresses(host: host, port: port)
        // With port 0 the first address picks the port; another process may hold it on the next
        // address. Try a few ports before giving up.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try bindAll(resolved, optional: optional, port: port)
            } catch let error {
                if case .bind(_, let code) = error, code == EADDRINUSE, port == 0, resolved.count > 1, attempt < 8 {
                    continue
                }
                throw error
            }
        }
    }

    /// The addresses `host` means, and which of them may be skipped if the machine lacks them
    /// (the loopback that `localhost` adds beyond what the resolver says).
    static func listenAddresses(host: String, port: UInt16) throws(LibeventError) -> (all: [SocketAddress], optional: [SocketAddress]) {
        var resolved = try SocketAddress.resolve(host: host, port: port)
        var optional: [SocketAddress] = []
        if host.lowercased() == "localhost" {
            for ipv6 in [false, true] {
                let loopback = SocketAddress.loopback(ipv6: ipv6, port: port)
                if !resolved.contains(loopback) {
                    resolved.append(loopback)
                    optional.append(loopback)
                }
            }
        }
        return (resolved, optional)
    }

    /// Checks that nothing listens on `host`:`port` yet, by binding (and closing) plain sockets,
    /// without `SO_REUSEPORT`. Sockets that set it could otherwise share the port with another
    /// process without a word.
    /// - Throws: ``LibeventError/bind(address:errno:)`` naming the address in use.
    public static func checkPortIsFree(host: String, port: UInt16) throws(LibeventError) {
        let (addresses, optional) = try listenAddresses(host: host, port: port)
        for address in addresses {
            let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw .callFailed(function: "socket", errno: errno) }
            defer { Glibc.close(fd) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if address.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
            let result = address.withSockAddr { Glibc.bind(fd, $0, $1) }
            if result != 0 {
                let code = errno
                if optional.contains(address), code == EADDRNOTAVAIL || code == EAFNOSUPPORT { continue }
                throw .bind(address: address.description, errno: code)
            }
        }
    }

    private func bindAll(_ resolved: [SocketAddress], optional: [SocketAddress], port: UInt16) throws(LibeventError) -> [SocketAddress] {
        guard let raw else { throw .callFailed(function: "evhttp_bind_listener (server closed)", errno: nil) }
        var bound: [(OpaquePointer, SocketAddress)] = []
        var chosenPort = port
        do {
            for var address in resolved {
                address.port = chosenPort
                var flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE
                if address.isIPv6 { flags |= LEV_OPT_BIND_IPV6ONLY }
                if options.reusePort { flags |= LEV_OPT_REUSEABLE_PORT }
                let listener = address.withSockAddr { sa, length in
                    evconnlistener_new_bind(base.raw, nil, nil, flags, options.backlog, sa, Int32(length))
                }
                guard let listener else {
                    let code = errno
                    var template = address
                    template.port = port
                    if optional.contains(template), code == EADDRNOTAVAIL || code == EAFNOSUPPORT { continue }
                    throw LibeventError.bind(address: address.description, errno: code)
                }
                // evhttp takes ownership of the listener here (and frees it in evhttp_free).
                guard let socket = evhttp_bind_listener(raw, listener) else {
                    evconnlistener_free(listener)
                    throw LibeventError.allocationFailed(function: "evhttp_bind_listener")
                }
                // Without an error callback, a failing accept (EMFILE) leaves the listener armed
                // and level-triggered: the loop would spin at 100% CPU.
                evconnlistener_set_error_cb(listener, acceptErrorTrampoline)
                bound.append((socket, address))
                let local = try SocketAddress.local(of: evconnlistener_get_fd(listener))
                bound[bound.count - 1].1 = local
                chosenPort = local.port
            }
        } catch let error as LibeventError {
            for (socket, _) in bound { evhttp_del_accept_socket(raw, socket) }
            throw error
        } catch {
            fatalError("unreachable: \(error)")
        }
        listeners += bound.map(\.0)
        addresses += bound.map(\.1)
        return bound.map(\.1)
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

    /// Closes every connection that waits for a request and has not started sending one (draining:
    /// keep-alive clients reconnect elsewhere). Connections with a request in progress stay.
    public func closeIdleConnections() {
        base.thread.preconditionOnThread()
        for connection in connections.values where connection.isIdle {
            connection.end(.serverClosed)
        }
    }

    /// Frees the evhttp: listeners close, and every connection is freed at once. Requests being
    /// watched see their abort handler run with ``HTTPRequest/AbortReason/serverClosed``.
    /// Safe to call twice.
    public func close() {
        base.thread.preconditionOnThread()
        guard let raw else { return }
        self.raw = nil
        listeners = []
        addresses = []
        pausedListeners = []
        resumeTimer = nil
        LoopRegistry.current.servers[UnsafeMutableRawPointer(raw)] = nil
        evhttp_free(raw)
        adoptEvent = nil
        for bufferevent in newBufferevents { bufferevent_decref(bufferevent) }
        newBufferevents = []
    }

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
    /// ``HTTPServerOptions/maxConnections``, tracks the others (close callback, read deadline).
    private func adoptNewConnections() {
        let pending = newBufferevents
        newBufferevents = []
        for bufferevent in pending {
            defer { bufferevent_decref(bufferevent) }  // balances makeBufferevent's incref
            // evhttp_start_read_ made the connection the bufferevent's callback argument; a
            // bufferevent evhttp already freed has its callbacks cleared.
            var arg: UnsafeMutableRawPointer?
            bufferevent_getcb(bufferevent, nil, nil, nil, &arg)
            guard let arg else { continue }
            let raw = OpaquePointer(arg)
            let fd = bufferevent_getfd(bufferevent)
            if connections.count >= options.maxConnections {
                refuse(fd)
                base.counters.rejectedConnections.bump()
                evhttp_connection_free(raw)
                onConnectionRejected?()
                continue
            }
            let connection = HTTPConnection(raw: raw, fd: fd, server: self)
            connections[raw] = connection
            connection.awaitRequest()
            onConnectionCountChange?(connections.count)
        }
    }

    /// `accept` failed on `listener` with `code` (out of descriptors, most often): pause that
    /// listener and try again later, 50 ms at first, doubling while errors keep coming, at most
    /// 1 s. Connections wait in the kernel's backlog meanwhile and are served once descriptors
    /// free up.
    fileprivate func acceptFailed(_ listener: OpaquePointer, _ code: Int32) {
        let now = ContinuousClock.now
        if let last = lastAcceptError, now - last < .seconds(2), acceptBackoff > .zero {
            acceptBackoff = min(acceptBackoff * 2, .seconds(1))
        } else {
            acceptBackoff = .milliseconds(50)
        }
        lastAcceptError = now
        evconnlistener_disable(listener)
        if !pausedListeners.contains(listener) { pausedListeners.append(listener) }
        if let resumeTimer, !resumeTimer.isPending { try? resumeTimer.add(timeout: acceptBackoff) }
        onAcceptError?(code, acceptBackoff)
    }

    private func resumeAccepting() {
        let paused = pausedListeners
        pausedListeners = []
        for listener in paused { evconnlistener_enable(listener) }
    }

    /// Answers a connection we will not serve with a canned `503`, straight on the socket (evhttp
    /// has not read from it), and reads what the client already sent so that the close that
    /// follows is a FIN, not a reset that could destroy the answer.
    private func refuse(_ fd: Int32) {
        let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: 27\r\nConnection: close\r\nRetry-After: 1\r\n\r\nserver at connection limit\n"
        var sink = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<4 where recv(fd, &sink, sink.count, Int32(MSG_DONTWAIT)) > 0 {}
        _ = answer.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    fileprivate func handle(_ request: UnsafeMutablePointer<evhttp_request>) {
        guard let raw = evhttp_request_get_connection(request), let connection = connections[raw] else {
            // Not seen by newRequest (cannot happen with evhttp 2.1): answer without tracking.
            evhttp_send_error(request, 500, nil)
            return
        }
        // Unretained: the connection lives until its close callback, after the request is gone.
        evhttp_request_set_on_complete_cb(request, requestCompleteTrampoline, Unmanaged.passUnretained(connection).toOpaque())
        handler(HTTPRequest(raw: request, connection: connection, server: self))
    }

    func connectionClosed(_ connection: HTTPConnection) {
        connections[connection.raw] = nil
        onConnectionCountChange?(connections.count)
    }
}

/// The C bufferevent callback: captures nothing, finds the server through `arg`.
private func bufferEventTrampoline(_ base: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) -> OpaquePointer? {
    guard let arg else { return nil }
    return Unmanaged<HTTPServer>.fromOpaque(arg).takeUnretainedValue().makeBufferevent()
}

/// The C request-complete callback: the reply was written; a keep-alive connection now waits
/// for its next request.
private func requestCompleteTrampoline(_ request: UnsafeMutablePointer<evhttp_request>?, _ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue().replyWritten()
}

/// The C request callback: captures nothing, finds the server through `arg`.
private func requestTrampoline(_ request: UnsafeMutablePointer<evhttp_request>?, _ arg: UnsafeMutableRawPointer?) {
    guard let request, let arg else { return }
    Unmanaged<HTTPServer>.fromOpaque(arg).takeUnretainedValue().handle(request)
}

/// HTTP servers by their `evhttp` pointer, for the listener error callback (its argument is the
/// `evhttp`). One table per thread: a server registers on its loop thread, and the callback runs
/// on that same thread, so no table is ever touched by two threads and none needs a lock.
final class LoopRegistry {
    var servers: [UnsafeMutableRawPointer: Unmanaged<HTTPServer>] = [:]

    /// The calling thread's table, made on first use and released when the thread exits.
    static var current: LoopRegistry {
        if let existing = pthread_getspecific(loopRegistryKey) {
            return Unmanaged<LoopRegistry>.fromOpaque(existing).takeUnretainedValue()
        }
        let made = LoopRegistry()
        // The thread-specific slot holds one retain, released by the key's destructor.
        pthread_setspecific(loopRegistryKey, Unmanaged.passRetained(made).toOpaque())
        return made
    }
}

private let loopRegistryKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key) { pointer in
        if let pointer { Unmanaged<LoopRegistry>.fromOpaque(pointer).release() }
    }
    precondition(status == 0, "pthread_key_create failed")
    return key
}()

/// The C listener error callback: `accept` failed with something other than EAGAIN/EINTR.
private func acceptErrorTrampoline(_ listener: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) {
    let code = errno
    guard let listener, let arg, let server = LoopRegistry.current.servers[arg] else { return }
    server.takeUnretainedValue().acceptFailed(listener, code)
}
