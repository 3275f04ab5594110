import CLibevent
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a connection ended; what a watched request's abort handler receives.
public enum ConnectionEnd: Equatable, Sendable, CustomStringConvertible {
    /// The client closed its sending side: FIN, whether a full close or a half-close.
    case peerClosed
    /// Reading the socket failed, typically `ECONNRESET` after an RST.
    case socketError(errno: Int32)
    /// The client sent more than ``HTTPServerOptions/pipelineLimit`` bytes behind a pending request.
    case pipelineLimitExceeded
    /// The client did not send a whole request in time (header timeout, or idle keep-alive).
    case readTimeout
    /// The server freed the connection itself (shutdown, or an evhttp error).
    case serverClosed

    public var description: String {
        switch self {
        case .peerClosed: return "client closed the connection"
        case .socketError(let code): return "connection error: \(errnoDescription(code))"
        case .pipelineLimitExceeded: return "client sent too much data while the request was pending"
        case .readTimeout: return "client too slow to send its request"
        case .serverClosed: return "server closed the connection"
        }
    }
}

/// One client connection of an ``HTTPServer``, from its first request to its close.
///
/// ## States
/// `awaitingRequest` (reading a request, under a read deadline) → `handling` (a request was handed
/// to the handler) → `replying` (the reply is being written) → `awaitingRequest` again on
/// keep-alive, or `closed`.
///
/// ## Ownership and the one retain
/// evhttp owns the `struct evhttp_connection`. This object installs the connection's close
/// callback when the connection first shows up (`evhttp_set_newreqcb`), with exactly one retain
/// of itself as its argument. evhttp calls that callback from `evhttp_connection_free`, however
/// the connection ends (client gone, error, timeout, server freed); ``closed()`` then releases
/// the retain. Nothing else retains it, except a request it is handling.
///
/// ## Seeing the client go away while a request is pending
/// Stock evhttp (2.1.9 and later) disables reading while a request is pending, so it never sees
/// a client abort then; re-enabling reading crashes it on the next byte ("illegal connection
/// state 7"). ``startAbortWatch()`` arms an event of our own on the socket instead:
/// - `EV_CLOSED` where the backend reports it (epoll; poll on Linux), and always `EV_READ`,
///   because epoll reports an RST (`EPOLLERR`) as read|write only;
/// - readable bytes go into the connection's *own* input buffer (unfrozen for the read, as
///   `bufferevent_sock.c` does), where evhttp parses them after the reply: a pipelined request
///   is answered in order, and nothing spins on a level-triggered backend;
/// - end of stream (FIN, half-close) or a read error (RST) frees the connection, which runs the
///   close callback: the one place a pending request learns that its client is gone.
///
/// Threading: loop-confined.
final class HTTPConnection: EventTarget {
    private enum State {
        case awaitingRequest(deadline: Event?)
        case handling
        case replying
        case closed
    }

    let raw: OpaquePointer
    let fd: Int32
    /// Unowned: the server outlives its connections, except while its `deinit` frees them;
    /// ``detachFromServer()`` is called first then, and `closed()` no longer reports back.
    private unowned let server: HTTPServer
    private var serverAttached = true
    /// Kept apart from `server`: the last release may come after the server is gone.
    private let counters: LibeventCounters
    private var state: State = .awaitingRequest(deadline: nil)
    private var retain: Unmanaged<HTTPConnection>?
    /// The request being handled. Not retained, so that a handler that drops it unanswered gets
    /// it answered by `HTTPRequest.deinit`. It cannot dangle: a request is freed only once
    /// answered (its `respond` clears this through ``beginReplying()``, `deinit` answers a
    /// pending one) or aborted (``closed()`` clears it first). A weak reference would cost every
    /// request a side-table allocation.
    private unowned(unsafe) var request: HTTPRequest?
    /// The abort watch, while a request is pending and watched.
    private var watch: Event?
    /// Why we freed the connection ourselves, for the close callback.
    private var endReason: ConnectionEnd?
    private(set) var requestCount = 0
    /// Whether a byte of the next request has arrived since ``awaitRequest()`` (a draining
    /// server closes only connections that are truly idle, as Go's `Shutdown` does).
    private var requestStarted = false
    /// Our callback on the input buffer that sets `requestStarted`; removed in ``closed()``.
    private var inputCallback: OpaquePointer?

    init(raw: OpaquePointer, fd: Int32, server: HTTPServer) {
        self.raw = raw
        self.fd = fd
        self.server = server
        self.counters = server.base.counters
        let retain = Unmanaged.passRetained(self)
        self.retain = retain
        evhttp_connection_set_closecb(raw, connectionCloseTrampoline, retain.toOpaque())
        counters.liveConnections.bump()
    }

    deinit {
        counters.liveConnections.bump(-1)
    }

    /// Whether the connection waits for a request and has received no byte of it: safe to close
    /// when draining.
    var isIdle: Bool {
        guard case .awaitingRequest = state else { return false }
        return !requestStarted
    }

    /// Adds or removes our input-buffer callback. Only a connection waiting for a request needs
    /// it, so a pending greeting does not hold one. Unretained: removed in closed(), before the
    /// close callback's retain is released.
    private func watchInput(_ on: Bool) {
        guard let bufferevent = evhttp_connection_get_bufferevent(raw) else { return }
        let input = bufferevent_get_input(bufferevent)
        if on, inputCallback == nil {
            inputCallback = evbuffer_add_cb(input, inputTrampoline, Unmanaged.passUnretained(self).toOpaque())
        } else if !on, let entry = inputCallback {
            evbuffer_remove_cb_entry(input, entry)
            inputCallback = nil
        }
    }

    fileprivate func bytesArrived() {
        requestStarted = true
    }

    /// evhttp starts reading a request (the first, or the next on a keep-alive connection).
    /// The whole request must arrive within the header timeout (first) or the idle timeout
    /// (later ones, which includes the time the connection sits idle).
    func awaitRequest() {
        let limit = requestCount == 0 ? server.options.headerTimeout : server.options.idleTimeout
        var deadline: Event?
        if let limit {
            deadline = try? Event(base: server.base, target: self, tag: Self.readDeadlineTag)
            try? deadline?.add(timeout: limit)
        }
        state = .awaitingRequest(deadline: deadline)
        requestStarted = false
        watchInput(true)
        // Pipelined bytes may already wait in the buffer.
        if let bufferevent = evhttp_connection_get_bufferevent(raw), evbuffer_get_length(bufferevent_get_input(bufferevent)) > 0 {
            requestStarted = true
        }
    }

    /// A whole request arrived: the read deadline no longer applies.
    func beginHandling(_ request: HTTPRequest) {
        requestCount += 1
        self.request = request
        state = .handling  // drops the read deadline
        watchInput(false)
    }

    /// evhttp wrote the reply. On keep-alive it now reads the next request; with
    /// `Connection: close` the close callback follows at once.
    func replyWritten() {
        guard case .replying = state else { return }
        awaitRequest()
    }

    /// The reply was handed to evhttp.
    func beginReplying() {
        stopAbortWatch()
        request = nil
        state = .replying
    }

    func startAbortWatch() throws(LibeventError) {
        let flags: EventFlags = server.earlyClose ? [.read, .closed, .persist] : [.read, .persist]
        let watch = try Event(base: server.base, fd: fd, flags: flags, target: self, tag: Self.abortWatchTag)
        try watch.add()
        self.watch = watch
    }

    private func stopAbortWatch() {
        watch?.remove()
        watch = nil
    }

    private static let readDeadlineTag = 0, abortWatchTag = 1

    func eventFired(tag: Int, flags: EventFlags) {
        if tag == Self.readDeadlineTag { end(.readTimeout) } else { socketActivity(flags) }
    }

    /// The socket under a pending request became readable, or closed.
    private func socketActivity(_ fired: EventFlags) {
        if fired.contains(.closed) {
            end(.peerClosed)
            return
        }
        guard let bufferevent = evhttp_connection_get_bufferevent(raw) else { return }
        let input = bufferevent_get_input(bufferevent)
        // A socket bufferevent keeps the end of its input buffer frozen and thaws it only around
        // its own reads (bufferevent_sock.c); do the same, or evbuffer_read refuses with -1.
        evbuffer_unfreeze(input, 0)
        let count = evbuffer_read(input, fd, 16 * 1024)
        let code = errno
        evbuffer_freeze(input, 0)
        if count > 0 {
            if evbuffer_get_length(input) > server.options.pipelineLimit { end(.pipelineLimitExceeded) }
        } else if count == 0 {
            end(.peerClosed)
        } else if code != EAGAIN && code != EWOULDBLOCK && code != EINTR {
            end(.socketError(errno: code))
        }
    }

    /// Frees the connection now; evhttp runs the close callback from inside.
    func end(_ reason: ConnectionEnd) {
        guard retain != nil else { return }
        endReason = reason
        if reason == .readTimeout { server.base.counters.timedOutConnections.bump() }
        evhttp_connection_free(raw)
        // evhttp runs the close callback only for a connection it counts as connected, which a
        // server connection always is. Should that change, finish the job here, without
        // touching the (now freed) C connection.
        if retain != nil { closed(connectionFreed: true) }
    }

    /// The server is being destroyed and is about to free every connection: do not report back.
    func detachFromServer() {
        serverAttached = false
    }

    /// The close callback: the connection and any request on it are being freed.
    fileprivate func closed(connectionFreed: Bool = false) {
        guard let retain else { return }
        stopAbortWatch()
        if !connectionFreed {
            watchInput(false)
            evhttp_connection_set_closecb(raw, nil, nil)
        }
        state = .closed  // drops a read deadline
        let reason = endReason ?? .serverClosed
        let pending = request
        request = nil
        pending?.connectionClosed(reason)
        if serverAttached { server.connectionClosed(self) }
        self.retain = nil
        retain.release()  // balances init's passRetained
    }
}

/// The C close callback: captures nothing, finds the connection through `arg`.
private func connectionCloseTrampoline(_ connection: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    // Unretained: closed() releases the callback's retain itself, exactly once; this local
    // reference keeps the object alive until it returns.
    Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue().closed()
}

/// The C input-buffer callback: bytes were added to (or drained from) the connection's input.
private func inputTrampoline(_ buffer: OpaquePointer?, _ info: UnsafePointer<evbuffer_cb_info>?, _ arg: UnsafeMutableRawPointer?) {
    guard let arg, let info, info.pointee.n_added > 0 else { return }
    Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue().bytesArrived()
}
