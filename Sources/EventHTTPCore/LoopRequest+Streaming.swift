import CLibevent

/// A streamed reply: the status line and headers now, the body in chunks as they come, then the
/// end (`evhttp_send_reply_start`, `evhttp_send_reply_chunk`, `evhttp_send_reply_end`).
///
/// ## Framing
/// - HTTP/1.1: `Transfer-Encoding: chunked`, ended by the zero-length chunk; the connection stays
///   open for the next request unless the request or the reply said `Connection: close`.
/// - HTTP/1.0: close-delimited. The reply says `Connection: close` and the connection closes once
///   the last byte is written (a `Connection: keep-alive` from the client is ignored: evhttp would
///   otherwise add `Content-Length: 0` to the headers and keep the connection).
/// - `HEAD` (and `204`/`304`): the headers only; chunks are dropped.
///
/// ## Seeing the client go while streaming
/// The abort watch (`HTTPConnection.startAbortWatch`) stays armed for the whole stream and is the
/// connection's one reader. `evhttp_send_reply_start` and `_chunk` end in `evhttp_write_buffer`,
/// which re-enables `EV_READ` on the bufferevent (with no read callback, for close detection):
/// two readers of one socket, and evhttp's read timeout (the idle timeout) would cut a quiet
/// stream. So each call here disables `EV_READ` again before returning, before the loop can
/// poll. A FIN, RST or half-close is then seen by the watch, which frees the connection: the
/// close callback reports ``RequestEnd/aborted(_:)`` and evhttp frees the request.
/// evhttp still sees *write* errors (`EPIPE`, `ECONNRESET`) and the write timeout itself: it then
/// detaches the unfinished request from the connection before freeing the connection, and the
/// close callback frees the request (see `connectionClosed`). Either way the end is reported
/// once and the C request is freed once.
///
/// ## Backpressure
/// ``queuedOutputBytes`` is what evhttp holds for the socket (headers, chunk framing and body
/// bytes not yet written); ``notifyWhenDrained(lowWatermark:_:)`` is a one-shot wake-up when it
/// falls to a watermark. A writer that waits whenever more than a high watermark is queued
/// keeps the server's memory for a client that stops reading at one high watermark plus one
/// chunk (the kernel's socket buffers come on top).
extension LoopRequest {
    /// Whether a streamed reply is under way (started, not ended, client still there).
    public var isStreaming: Bool {
        if case .streaming = state { return true }
        return false
    }

    /// Body bytes handed to evhttp so far by ``writeChunk(_:)`` (0 for `HEAD`).
    public var streamedBytes: Int {
        if case .streaming(_, _, let bytes) = state { return bytes }
        return 0
    }

    /// Sends the status line and headers of a streamed reply (with `X-Request-Id`; the content
    /// type defaults to `text/plain; charset=utf-8`; a `Content-Length` or `Transfer-Encoding`
    /// in `headers` is dropped) and keeps the request open for ``writeChunk(_:)``. Starts the
    /// abort watch if ``watchForAbort()`` was not called.
    /// - Returns: `false` if the request was already answered, is streaming, or its client had
    ///   gone, or if the abort watch could not be armed (then nothing was sent).
    @discardableResult
    public func startStream(status: Int, reason: String? = nil, headers: [(String, String)] = []) -> Bool {
        thread.preconditionOnThread()
        guard case .pending(let request) = state else { return false }
        if !isWatched {
            do { try watchForAbort() } catch { return false }
        }
        state = .streaming(request: request, status: status, bytes: 0)
        connection.beginStreaming(self)
        let output = addHeaders(headers, to: request, dropping: ["content-length", "transfer-encoding"])
        if isHTTP10 {
            // Close-delimited: evhttp closes an HTTP/1.0 connection after the reply unless the
            // client asked for keep-alive; forget that it did.
            // evhttp_remove_header's -1 means "no such header": nothing to remove, also fine.
            _ = evhttp_remove_header(evhttp_request_get_input_headers(request), "Connection")
            _ = evhttp_remove_header(output, "Connection")
            // A constant valid value: fails only out of memory, and evhttp closes this HTTP/1.0
            // connection anyway, now that the client's keep-alive is gone.
            _ = evhttp_add_header(output, "Connection", "close")
        }
        evhttp_send_reply_start(request, Int32(status), reason)
        connection.stopEvhttpReading()
        return true
    }

    /// Queues `bytes` as the next chunk (raw bytes for HTTP/1.0). It is written as the socket
    /// allows; an empty chunk sends nothing (it would end a chunked body).
    /// - Returns: `false` if no stream is under way (not started, ended, or the client left).
    @discardableResult
    public func writeChunk(_ bytes: UnsafeRawBufferPointer) -> Bool {
        thread.preconditionOnThread()
        guard case .streaming(let request, let status, let sent) = state else { return false }
        guard bytes.count > 0, method != .head else { return true }
        guard let buffer = evbuffer_new() else { return false }
        defer { evbuffer_free(buffer) }
        guard evbuffer_add(buffer, bytes.baseAddress, bytes.count) == 0 else { return false }
        // Moves the buffer's chains into the connection's output: no copy.
        evhttp_send_reply_chunk(request, buffer)
        connection.stopEvhttpReading()
        state = .streaming(request: request, status: status, bytes: sent + bytes.count)
        return true
    }

    /// ``writeChunk(_:)`` for UTF-8 text.
    @discardableResult
    public func writeChunk(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { writeChunk(UnsafeRawBufferPointer($0)) }
    }

    /// Ends the stream (the zero-length chunk for HTTP/1.1; the close for HTTP/1.0) and reports
    /// ``RequestEnd/responded(status:bytes:)`` with the body bytes streamed, before returning.
    /// The abort watch stops: a client that closes once it has everything is not an abort.
    /// - Returns: `false` if no stream is under way.
    @discardableResult
    public func endStream() -> Bool {
        thread.preconditionOnThread()
        guard case .streaming(let request, let status, let bytes) = state else { return false }
        state = .responded
        isWatched = false
        connection.beginReplying()
        fireDrainWaiter()
        // evhttp frees the request once the end is written; for HTTP/1.0 it frees the connection.
        evhttp_send_reply_end(request)
        connection.report(head, .responded(status: status, bytes: bytes))
        return true
    }

    /// Bytes in the connection's output buffer, not yet written to the socket; 0 once the
    /// connection is gone.
    public var queuedOutputBytes: Int {
        thread.preconditionOnThread()
        guard let bufferevent = connection.bufferevent else { return 0 }
        return evbuffer_get_length(bufferevent_get_output(bufferevent))
    }

    /// Calls `body` once, on the loop thread, when ``queuedOutputBytes`` falls to `lowWatermark`
    /// or below, or when the stream ends or its client goes (check ``isStreaming``). At once
    /// (before returning) if no stream is under way or the output is already that low. A second
    /// call before the first fired replaces the waiter, calling the first one now.
    ///
    /// `body` runs inside libevent's write callback: it must not call evhttp (resume a
    /// continuation, or schedule work, instead).
    public func notifyWhenDrained(lowWatermark: Int, _ body: @escaping () -> Void) {
        thread.preconditionOnThread()
        fireDrainWaiter()
        // Without the drain callback (out of memory in beginStreaming) nothing would ever call
        // the waiter: wake it at once, so the writer is never stuck (it just loses backpressure).
        guard isStreaming, connection.drainCallback != nil, queuedOutputBytes > lowWatermark else {
            body()
            return
        }
        drainWatermark = lowWatermark
        drainWaiter = body
    }

    /// The output buffer lost bytes (the connection's drain callback).
    func outputDrained(remaining: Int) {
        guard drainWaiter != nil, remaining <= drainWatermark else { return }
        fireDrainWaiter()
    }

    /// Calls the drain waiter, if any, once.
    func fireDrainWaiter() {
        guard let waiter = drainWaiter else { return }
        drainWaiter = nil
        waiter()
    }
}

extension HTTPConnection {
    /// A streamed reply starts: the connection keeps its abort watch, and watches its output
    /// drain for the request's waiter.
    func beginStreaming(_ request: LoopRequest) {
        state = .streaming(request)
        guard let bufferevent, drainCallback == nil else { return }
        // Unretained: removed in `beginReplying` or `closed`, before the close callback's
        // retain is released. NULL only out of memory: see `notifyWhenDrained`.
        drainCallback = evbuffer_add_cb(bufferevent_get_output(bufferevent), drainTrampoline,
                                        Unmanaged.passUnretained(self).toOpaque())
    }

    /// Removes the drain callback (the stream ended, or the connection is closing).
    func stopDrainWatch() {
        guard let entry = drainCallback else { return }
        drainCallback = nil
        guard let bufferevent else { return }
        // Always 0 in libevent 2.1 (it unlinks and frees the entry): nothing to check.
        _ = evbuffer_remove_cb_entry(bufferevent_get_output(bufferevent), entry)
    }

    /// Undoes the `EV_READ` that `evhttp_write_buffer` just enabled: while streaming, the abort
    /// watch is the connection's one reader (see `LoopRequest+Streaming.swift`).
    func stopEvhttpReading() {
        guard let bufferevent else { return }
        // Fails only for a bufferevent type without an enable/disable function; sockets have one.
        _ = bufferevent_disable(bufferevent, Int16(EV_READ))
    }

    fileprivate func outputDrained(remaining: Int) {
        guard case .streaming(let request) = state else { return }
        request.outputDrained(remaining: remaining)
    }
}

/// The C output-buffer callback while streaming: bytes left the buffer (written to the socket).
private func drainTrampoline(_ buffer: OpaquePointer?, _ info: UnsafePointer<evbuffer_cb_info>?, _ arg: UnsafeMutableRawPointer?) {
    guard let buffer, let arg, let info, info.pointee.n_deleted > 0 else { return }
    let connection = Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue()
    connection.safePoint.callback { connection.outputDrained(remaining: evbuffer_get_length(buffer)) }
}
