import CLibevent
import EventHTTPSystem

/// One client connection of an ``LoopHTTPServer``, from its adoption to its close.
///
/// ## States
/// `awaitingRequest` (reading a request, under a read deadline) → `handling` (a request was handed
/// to the responder) → optionally `streaming` (a streamed reply is under way, the abort watch
/// still armed; see `LoopRequest+Streaming.swift`) → `replying` (the reply, or the end of the
/// stream, is being written) → `awaitingRequest` again on keep-alive, or `closed`.
///
/// ## Ownership and the one retain
/// evhttp owns the `struct evhttp_connection`. This object installs the connection's close
/// callback when the server adopts the connection (right after evhttp accepted it, see
/// `LoopHTTPServer.adoptNewConnections`), with exactly one retain of itself as its argument. evhttp
/// calls that callback from `evhttp_connection_free`, however the connection ends (client gone,
/// error, timeout, server closed); ``closed(connectionFreed:)`` then releases the retain.
/// While `handling`, the connection holds its ``LoopRequest`` strongly (the request holds the
/// connection too); the pair parts when the request is answered or aborted.
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
/// ## Its one event, embedded
/// The read deadline (a timer, while `awaitingRequest`) and the abort watch (on the socket,
/// while a request is pending and watched) never run at the same time, so they share one
/// `struct event`, allocated once per connection and `event_assign`ed (a few field stores) with
/// an unretained pointer to the connection each time its role changes, always after an
/// `event_del`: no object or allocation per request. The deadline uses libevent's common
/// timeouts (``LoopHTTPServer`` sets them up once per server for the header and idle timeouts), so
/// arming and disarming it is O(1). The event is deleted in ``closed(connectionFreed:)``, before
/// the close callback's retain goes, so it cannot fire for a dead object; `deinit` deletes it
/// again (a no-op) and frees the bytes. It counts as one of ``LibeventCounters/liveEvents`` for
/// the object's life (tests compare that with one read deadline per connection).
///
/// Threading: loop-confined.
final class HTTPConnection {
    enum State {
        case awaitingRequest
        case handling(LoopRequest)
        case streaming(LoopRequest)
        case replying
        case closed
    }

    let raw: OpaquePointer
    let fd: Int32
    /// Unowned: the server frees its connections before it goes; its `deinit` detaches them first
    /// (``detachFromServer()``), and `closed` no longer reports back then.
    unowned let server: LoopHTTPServer
    private var serverAttached = true
    /// Kept apart from `server`: the last release may come after the server is gone.
    private let counters: LibeventCounters
    /// Every C callback of the connection counts itself in here (see `SafePoint`).
    let safePoint: SafePoint
    /// Holds the connection slot this connection took; released in `closed`.
    private let group: HTTPServerGroup
    var state: State = .awaitingRequest
    private var retain: Unmanaged<HTTPConnection>?
    /// Strong: the embedded event is deleted in `deinit`, which touches the base.
    private let base: EventBase
    /// The `struct event` (see the type's docs), owned: allocated in `init`, freed in `deinit`.
    private let event: OpaquePointer
    private static let eventSize = event_get_struct_event_size()
    /// `EV_READ|EV_PERSIST`, and `EV_CLOSED` where the backend reports it.
    private let watchFlags: Int16
    /// Whether the abort watch is armed.
    private var watching = false
    /// Why we freed the connection ourselves, for the close callback.
    private var endReason: ConnectionEnd?
    /// Requests handed over so far (evhttp dispatched them, in order): the position of the next.
    private(set) var requestCount = 0
    /// The libevent event that was running when evhttp finished the last reply (its request-
    /// complete callback). evhttp closes a `Connection: close` conversation right after that
    /// callback, inside the same event; a client's close comes in another. So a close callback
    /// running inside this event is evhttp's own, after the answer (`done`).
    private var replyEvent: OpaquePointer?
    /// When the connection last began waiting for a request (for the close reason).
    private var awaitingSince: ContinuousClock.Instant?
    /// The status of the last answer handed to evhttp (for the close reason).
    private var lastStatus = 0
    /// When the first byte of the request being read arrived: the start of a canned response's
    /// request. `nil` while no byte has arrived (the connection is idle, safe to close when
    /// draining, as Go's `Shutdown` does).
    private(set) var requestStarted: ContinuousClock.Instant?
    /// Our callback on the input buffer that sets `requestStarted`: installed at adoption, for
    /// the connection's life (bytes added while a request is handled only set a value that
    /// `awaitRequest` resets); removed in `closed`.
    private var inputCallback: OpaquePointer?
    /// The output-buffer watch (`HTTPConnection+Output.swift`).
    var output = OutputWatch()
    /// The peer as an access log shows it (`127.0.0.1:5555`), worked out once per connection.
    private(set) lazy var remoteDescription: String? = RequestHead.remote(of: raw)
    /// ``LoopRequest/connectionSlot``: the application's state for the request being served.
    var applicationSlot: AnyObject?
    /// Our drain callback on the output buffer while a reply streams (`LoopRequest+Streaming.swift`).
    var drainCallback: OpaquePointer?
    /// The strict-framing gate every received byte passes before evhttp parses it
    /// (`RequestFraming.swift`).
    var framer: RequestFramer
    /// Set while we rewrite the input buffer ourselves: our own additions are not received bytes.
    private var rewritingInput = false
    /// Bytes waiting behind the pending request, for the pipeline limit: what evhttp left in
    /// its input when it dispatched the request, plus what the framer holds, plus every byte
    /// read since (whether the framer passed, held or dropped it).
    private var pipelined = 0

    init(raw: OpaquePointer, fd: Int32, server: LoopHTTPServer) {
        self.raw = raw
        self.fd = fd
        self.server = server
        self.counters = server.base.counters
        self.safePoint = server.safePoint
        self.group = server.group
        self.base = server.base
        self.framer = RequestFramer(maxHeaderBytes: server.options.maxHeaderBytes)
        event = OpaquePointer(UnsafeMutableRawPointer.allocate(byteCount: Self.eventSize, alignment: 16))
        watchFlags = Int16(server.earlyClose ? EV_READ | EV_CLOSED | EV_PERSIST : EV_READ | EV_PERSIST)
        let retain = Unmanaged.passRetained(self)
        self.retain = retain
        // Assigned at once (no event_del: the bytes are not an event yet), so that every later
        // event_del is defined. Fails only for invalid flags; a pure timer has none.
        let assigned = event_assign(event, base.raw, -1, 0, deadlineTrampoline, Unmanaged.passUnretained(self).toOpaque())
        precondition(assigned == 0, "event_assign refused the connection's event")
        evhttp_connection_set_closecb(raw, connectionCloseTrampoline, retain.toOpaque())
        counters.liveConnections.bump()
        counters.liveEvents.bump()
        watchInput(true)
    }

    deinit {
        // Deleted in `closed` (which always runs before the last release); deleting a non-pending
        // event is a no-op. event_del fails only for an event without a base.
        _ = event_del(event)
        event_debug_unassign(event)
        UnsafeMutableRawPointer(event).deallocate()
        counters.liveEvents.bump(-1)
        counters.liveConnections.bump(-1)
    }

    /// Takes the event off the loop and gives it a new role. event_assign must never see a
    /// pending event, hence the event_del (a flag test when it is not pending; it fails only for
    /// an event without a base). event_assign fails only for invalid flag combinations, and
    /// both roles' flags are valid constants.
    private func assign(fd: Int32, flags: Int16, _ callback: event_callback_fn) {
        _ = event_del(event)
        let assigned = event_assign(event, base.raw, fd, flags, callback, Unmanaged.passUnretained(self).toOpaque())
        precondition(assigned == 0, "event_assign refused the connection's event")
    }

    /// Whether the connection waits for a request and has received no byte of it.
    var isIdle: Bool {
        guard case .awaitingRequest = state else { return false }
        return requestStarted == nil
    }

    /// The bufferevent evhttp reads and writes through; `nil` once it is freed.
    var bufferevent: OpaquePointer? { retain == nil ? nil : evhttp_connection_get_bufferevent(raw) }

    /// Adds or removes our input-buffer callback. Unretained: removed in `closed`, before the
    /// close callback's retain is released.
    private func watchInput(_ on: Bool) {
        guard let bufferevent else { return }
        let input = bufferevent_get_input(bufferevent)
        if on, inputCallback == nil {
            // NULL only out of memory: `requestStarted` is then not set (the connection looks
            // idle to a drain, and a canned response is timed from its end).
            inputCallback = evbuffer_add_cb(input, inputTrampoline, Unmanaged.passUnretained(self).toOpaque())
        } else if !on, let entry = inputCallback {
            // Always 0 in libevent 2.1 (it unlinks and frees the entry): nothing to check.
            _ = evbuffer_remove_cb_entry(input, entry)
            inputCallback = nil
        }
    }

    /// `added` bytes were appended to the input after its first `previous` bytes (by evhttp's
    /// read or the abort watch's): they pass the framer before evhttp may parse them. evbuffer
    /// callbacks run inside the read that added the bytes, before the bufferevent's read
    /// callback (evhttp's parser) runs, so evhttp has seen none of them yet.
    fileprivate func bytesArrived(_ input: OpaquePointer, previous: Int, added: Int) {
        guard !rewritingInput else { return }
        if requestStarted == nil { requestStarted = .now }
        // The new bytes sit at the buffer's end; most reads land in one segment.
        var position = evbuffer_ptr()
        guard evbuffer_ptr_set(input, &position, previous, EVBUFFER_PTR_SET) == 0 else { return dropInput() }
        var vectors = (iovec(), iovec())
        let segments = withUnsafeMutablePointer(to: &vectors) {
            $0.withMemoryRebound(to: iovec.self, capacity: 2) { evbuffer_peek(input, added, &position, $0, 2) }
        }
        let replacement: [UInt8]?
        if segments == 1, vectors.0.iov_len >= added, let start = vectors.0.iov_base {
            replacement = framer.feed(UnsafeBufferPointer(start: start.assumingMemoryBound(to: UInt8.self), count: added))
        } else {
            var bytes = [UInt8](repeating: 0, count: added)
            guard evbuffer_copyout_from(input, &position, &bytes, added) == added else { return dropInput() }
            replacement = bytes.withUnsafeBufferPointer { framer.feed($0) }
        }
        guard let replacement else { return }
        replaceInputTail(input, keeping: previous, with: replacement)
    }

    /// Puts `bytes` in place of everything after the input's first `keep` bytes (the unit the
    /// framer rewrote, held back or refused).
    private func replaceInputTail(_ input: OpaquePointer, keeping keep: Int, with bytes: [UInt8]) {
        rewritingInput = true
        defer { rewritingInput = false }
        // The input's start is never frozen, and its end is thawed during the read that called
        // us (bufferevent_sock.c and socketActivity both unfreeze around evbuffer_read). Drain,
        // add and remove fail only out of memory: then evhttp must not parse what is left.
        if keep == 0 {
            guard evbuffer_drain(input, evbuffer_get_length(input)) == 0 else { return dropInput() }
        } else {
            guard let front = evbuffer_new() else { return dropInput() }
            defer { evbuffer_free(front) }
            guard evbuffer_remove_buffer(input, front, keep) == keep,
                  evbuffer_drain(input, evbuffer_get_length(input)) == 0,
                  evbuffer_add_buffer(input, front) == 0 else { return dropInput() }
        }
        if !bytes.isEmpty, evbuffer_add(input, bytes, bytes.count) != 0 { dropInput() }
    }

    /// The framer could not look at the bytes (out of memory): close rather than let evhttp
    /// parse what was not checked.
    private func dropInput() {
        if let bufferevent {
            rewritingInput = true
            let input = bufferevent_get_input(bufferevent)
            _ = evbuffer_drain(input, evbuffer_get_length(input))
            rewritingInput = false
        }
        end(.serverClosed)
    }

    /// evhttp starts reading a request (the first, or the next on a keep-alive connection).
    /// The whole request must arrive within the header timeout (first) or the idle timeout
    /// (later ones, which includes the time the connection sits idle). A draining server
    /// closes the connection instead, unless bytes of the next request already wait.
    func awaitRequest() {
        var deadlineArmed = true
        if let limit = requestCount == 0 ? server.headerDeadline : server.idleDeadline {
            // A common timeout (see LoopHTTPServer): appended to its queue, O(1). Fails only out of
            // memory for the timer heap; without its deadline a slow client could hold the
            // connection for ever: close it below instead.
            assign(fd: -1, flags: 0, deadlineTrampoline)
            deadlineArmed = withUnsafePointer(to: limit) { event_add(event, $0) } == 0
        }
        state = .awaitingRequest
        awaitingSince = .now
        requestStarted = nil
        watchOutput(.cannedResponse)
        // Pipelined bytes may already wait in the buffer.
        if let bufferevent, evbuffer_get_length(bufferevent_get_input(bufferevent)) > 0 {
            requestStarted = .now
        }
        if !deadlineArmed || (server.isDraining && requestStarted == nil) { end(.serverClosed) }
    }

    /// A whole request arrived: the read deadline no longer applies.
    func beginHandling(_ request: LoopRequest) {
        requestCount += 1
        pipelined = framer.heldCount + (bufferevent.map { evbuffer_get_length(bufferevent_get_input($0)) } ?? 0)
        replyEvent = nil
        state = .handling(request)
        // event_del fails only for an event without a base.
        _ = event_del(event)
        watchOutput(.off)
    }

    /// evhttp wrote the reply (inside `evhttp_send_done`). On keep-alive it now reads the next
    /// request; with `Connection: close` the close callback follows at once.
    fileprivate func replyWritten() {
        guard case .replying = state else { return }
        replyEvent = event_base_get_running_event(base.raw)
        safePoint.callback { awaitRequest() }
    }

    /// The reply was handed to evhttp; the request is no longer the connection's.
    func beginReplying() {
        stopAbortWatch()
        stopDrainWatch()
        state = .replying
    }

    func startAbortWatch() throws(LibeventError) {
        assign(fd: fd, flags: watchFlags, abortWatchTrampoline)
        try check(event_add(event, nil), "event_add")
        watching = true
    }

    private func stopAbortWatch() {
        guard watching else { return }
        watching = false
        // event_del fails only for an event without a base.
        _ = event_del(event)
    }

    /// The read deadline passed.
    fileprivate func deadlinePassed() {
        end(.readTimeout)
    }

    /// The socket under a pending request became readable, or closed.
    fileprivate func socketActivity(_ fired: EventFlags) {
        if fired.contains(.closed) {
            end(.peerClosed)
            return
        }
        guard let bufferevent else { return }
        let input = bufferevent_get_input(bufferevent)
        // A socket bufferevent keeps the end of its input buffer frozen and thaws it only around
        // its own reads (bufferevent_sock.c); do the same, or evbuffer_read refuses with -1.
        // Freezing and thawing only set a flag: both always return 0 in libevent 2.1.
        _ = evbuffer_unfreeze(input, 0)
        // evbuffer_read is a `recv` into the buffer: -1 and errno on failure; EINTR is retried.
        let result = Result { () throws(SystemError) in try SystemCalls.nonBlockingSystemCall("recv") { evbuffer_read(input, fd, 16 * 1024) } }
        _ = evbuffer_freeze(input, 0)
        switch result {
        case .success(.wouldBlock): break  // nothing after all: wait for the next wakeup
        case .success(.processed(0)): end(.peerClosed)
        case .success(.processed(let count)):
            pipelined += Int(count)
            if pipelined > server.options.pipelineLimit { end(.pipelineLimitExceeded) }
        case .failure(let error): end(.socketError(errno: error.errno))
        }
    }

    /// Frees the connection at the next safe point (at once when no evhttp callback runs).
    func end(_ reason: ConnectionEnd) {
        safePoint.perform { [self] in endNow(reason) }
    }

    /// Frees the connection now; evhttp runs the close callback from inside. Only where no evhttp
    /// callback is on the stack (see `SafePoint`).
    func endNow(_ reason: ConnectionEnd) {
        guard retain != nil else { return }
        endReason = reason
        if reason == .readTimeout { counters.timedOutConnections.bump() }
        evhttp_connection_free(raw)
        // evhttp runs the close callback only for a connection it counts as connected, which a
        // server connection always is. Should that change, finish the job here, without
        // touching the (now freed) C connection.
        if retain != nil { closed(connectionFreed: true) }
    }

    /// Why evhttp freed a streaming connection itself (`evhttp_connection_fail_`, from its
    /// bufferevent's error callback): a failed write (`EPIPE`, `ECONNRESET`: errno is still the
    /// write's, as no system call between the write and the close callback fails) or its write
    /// timeout (then errno is stale, and the end counts as the server's).
    private static func evhttpFailure() -> ConnectionEnd {
        let code = Errno.current
        return code == .brokenPipe || code == .connectionReset ? .socketError(errno: code) : .serverClosed
    }

    /// The server is being destroyed and is about to free every connection: do not report back.
    func detachFromServer() {
        serverAttached = false
    }

    /// Reports a request's end to the responder, unless the server is going away.
    func report(_ head: RequestHead, _ end: RequestEnd) {
        if case .responded(let status, _) = end { lastStatus = status }
        if serverAttached { server.report(head, end) }
    }

    /// Why the connection is closing, from what we know in the close callback.
    private func closeReason(previous: State) -> ConnectionCloseReason {
        if let endReason {
            switch endReason {
            case .peerClosed, .socketError: return .client
            case .pipelineLimitExceeded: return .pipelineLimit
            case .readTimeout: return requestCount == 0 ? .headerTimeout : .idleTimeout
            case .serverClosed: return .shutdown
            }
        }
        if output.canned != nil { return .badRequest }
        if let replyEvent, replyEvent == event_base_get_running_event(base.raw) {
            switch lastStatus {
            case 400, 413, 417, 431, 501, 505: return .badRequest
            default: return .done
            }
        }
        switch previous {
        case .handling, .streaming, .replying:
            // evhttp failed the connection: a write error (the client's) or its write timeout.
            let code = Errno.current
            return code == .brokenPipe || code == .connectionReset ? .client : .idleTimeout
        case .awaitingRequest, .closed:
            if server.isDraining { return .shutdown }
            // evhttp's own read timeout (the idle timeout, `evhttp_set_timeout_tv`) can beat our
            // deadline of the same length (it was armed a moment before ours, as the reply
            // finished): a silent close that late is the timeout's, not the client's.
            if let idle = server.options.idleTimeout, let since = awaitingSince,
               ContinuousClock.now - since >= idle - min(idle / 10, .milliseconds(50)) {
                return requestCount == 0 ? .headerTimeout : .idleTimeout
            }
            return .client
        }
    }

    /// The close callback: the connection and any request on it are being freed.
    fileprivate func closed(connectionFreed: Bool = false) {
        guard let retain else { return }
        stopAbortWatch()
        if !connectionFreed {
            stopDrainWatch()
            watchInput(false)
            removeOutputWatch()
            evhttp_connection_set_closecb(raw, nil, nil)
        }
        // event_del fails only for an event without a base.
        _ = event_del(event)
        let previous = state
        state = .closed
        group.release()
        switch previous {
        case .handling(let request):
            request.connectionClosed(endReason ?? .serverClosed, requestValid: !connectionFreed)
        case .streaming(let request):
            request.connectionClosed(endReason ?? Self.evhttpFailure(), requestValid: !connectionFreed)
        default:
            break
        }
        let reason = closeReason(previous: previous)
        finishCannedResponse()
        applicationSlot = nil
        if serverAttached { server.connectionClosed(self, reason: reason) }
        self.retain = nil
        retain.release()  // balances init's passRetained
    }
}

/// The C close callback: captures nothing, finds the connection through `arg`.
private func connectionCloseTrampoline(_ connection: OpaquePointer?, _ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    // Unretained: closed() releases the callback's retain itself, exactly once; this local
    // reference keeps the object alive until it returns.
    let connection = Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue()
    connection.safePoint.callback { connection.closed() }
}

/// The C callback of the read deadline: captures nothing, finds the connection through `arg`.
/// Unretained: the event is deleted in `closed`, before the connection can go; the local
/// reference keeps it alive for the call.
private func deadlineTrampoline(_ fd: Int32, _ what: Int16, _ arg: UnsafeMutableRawPointer?) {
    Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().deadlinePassed()
}

/// The C callback of the abort watch (as `deadlineTrampoline`).
private func abortWatchTrampoline(_ fd: Int32, _ what: Int16, _ arg: UnsafeMutableRawPointer?) {
    Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().socketActivity(EventFlags(rawValue: what))
}

/// The C input-buffer callback: bytes were added to (or drained from) the connection's input.
private func inputTrampoline(_ buffer: OpaquePointer?, _ info: UnsafePointer<evbuffer_cb_info>?, _ arg: UnsafeMutableRawPointer?) {
    guard let buffer, let arg, let info, info.pointee.n_added > 0 else { return }
    Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue()
        .bytesArrived(buffer, previous: evbuffer_get_length(buffer) - info.pointee.n_added, added: info.pointee.n_added)
}

/// The C request-complete callback (inside `evhttp_send_done`): the reply was written; a
/// keep-alive connection now waits for its next request.
func requestCompleteTrampoline(_ request: UnsafeMutablePointer<evhttp_request>?, _ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue().replyWritten()
}
