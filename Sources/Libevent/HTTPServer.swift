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

    public init() {}
}

/// An HTTP/1.1 server: the owner of one `struct evhttp` and, through it, of its listeners
/// (`evhttp_bound_socket` → `evconnlistener` → socket) and its connections.
///
/// Ownership: ``close()`` (or `deinit`) calls `evhttp_free`, which closes the listeners and frees
/// every connection; a connection with a pending watched request runs its close callback, so the
/// request's abort handler runs then. The server holds its ``EventBase`` `unowned`: free the
/// server first.
///
/// Threading: loop-confined to its base. Handlers run on the loop thread.
public final class HTTPServer {
    private var raw: OpaquePointer?
    unowned let base: EventBase
    let options: HTTPServerOptions
    /// Cached `EV_FEATURE_EARLY_CLOSE` of the base, read by every abort watch.
    let earlyClose: Bool
    private let handler: (HTTPRequest) -> Void
    private var listeners: [OpaquePointer] = []

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
        // Every method reaches our handler, so that it, not libevent (501), answers 405.
        let all: UInt32 = EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_POST.rawValue | EVHTTP_REQ_HEAD.rawValue
            | EVHTTP_REQ_PUT.rawValue | EVHTTP_REQ_DELETE.rawValue | EVHTTP_REQ_OPTIONS.rawValue
            | EVHTTP_REQ_TRACE.rawValue | EVHTTP_REQ_CONNECT.rawValue | EVHTTP_REQ_PATCH.rawValue
        evhttp_set_allowed_methods(http, UInt16(all))
        // No default: evhttp keeps the pointer it is given, not a copy. respond() sets the type.
        evhttp_set_default_content_type(http, nil)
        // Unretained: evhttp is freed in close()/deinit, so the callback cannot outlive self.
        evhttp_set_gencb(http, requestTrampoline, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
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

    private func bindAll(_ resolved: [SocketAddress], optional: [SocketAddress], port: UInt16) throws(LibeventError) -> [SocketAddress] {
        guard let raw else { throw .callFailed(function: "evhttp_bind_listener (server closed)", errno: nil) }
        var bound: [(OpaquePointer, SocketAddress)] = []
        var chosenPort = port
        do {
            for var address in resolved {
                address.port = chosenPort
                var flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE
                if address.isIPv6 { flags |= LEV_OPT_BIND_IPV6ONLY }
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
        evhttp_free(raw)
    }

    fileprivate func handle(_ request: OpaquePointer) {
        handler(HTTPRequest(raw: request, server: self))
    }
}

/// The C request callback: captures nothing, finds the server through `arg`.
private func requestTrampoline(_ request: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) {
    guard let request, let arg else { return }
    Unmanaged<HTTPServer>.fromOpaque(arg).takeUnretainedValue().handle(request)
}
