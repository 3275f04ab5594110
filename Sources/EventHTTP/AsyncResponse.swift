/// The answer to one ``AsyncRequest``: either ``respond(status:headers:body:)`` once, or
/// ``startStream(status:headers:)`` and then the stream's writes and ``ResponseStream/finish()``.
///
/// Threading: loop-confined, `Sendable` only to enter the handler's Task (see ``AsyncRequest``).
public final class AsyncResponse: @unchecked Sendable {
    // @unchecked Sendable: `answered` is touched on the loop thread only (checked in each member).
    let request: AsyncRequest
    /// The runner's watermarks when the handler started, shared by the requests started with
    /// the same ones (two `Int`s here would make this object a 64 B malloc chunk, not 48).
    let watermarks: StreamWatermarks
    var answered = false

    init(request: AsyncRequest, watermarks: StreamWatermarks) {
        self.request = request
        self.watermarks = watermarks
    }

    /// Whether the request was answered or its stream started (even if the client left since).
    public var isAnswered: Bool {
        request.executor.thread.preconditionOnThread()
        return answered
    }

    /// Sends the whole reply (with `X-Request-Id`; content type by default
    /// `text/plain; charset=utf-8`; headers only for `HEAD`).
    /// - Throws: ``ResponseError/clientGone(_:)`` if the client left first,
    ///   ``ResponseError/alreadyAnswered`` on a second answer.
    public func respond(status: Int, headers: [(String, String)] = [], body: String = "") throws(ResponseError) {
        request.executor.thread.preconditionOnThread()
        guard request.http.respond(status: status, headers: headers, body: body) else { throw notPending() }
        answered = true
    }

    /// Sends the whole reply with a byte body; otherwise as ``respond(status:headers:body:)``.
    public func respond(status: Int, headers: [(String, String)], bytes: [UInt8]) throws(ResponseError) {
        request.executor.thread.preconditionOnThread()
        guard request.http.respond(status: status, headers: headers, bytes: bytes) else { throw notPending() }
        answered = true
    }

    /// Sends the status line and headers and returns the stream to write the body with:
    /// chunked for HTTP/1.1, close-delimited for HTTP/1.0 (see ``AsyncRequest/isHTTP10``).
    /// - Throws: as ``respond(status:headers:body:)``.
    public func startStream(status: Int = 200, headers: [(String, String)] = []) throws(ResponseError) -> ResponseStream {
        request.executor.thread.preconditionOnThread()
        guard request.http.startStream(status: status, headers: headers) else { throw notPending() }
        let stream = ResponseStream(request: request, highWatermark: watermarks.high, lowWatermark: watermarks.low)
        answered = true
        return stream
    }

    /// The error for an answer that cannot be given.
    func notPending() -> ResponseError {
        if let end = request.http.abortReason { return .clientGone(end) }
        if request.http.isPending {
            // Only when the abort watch could not be armed for a stream.
            return .clientGone(.serverClosed)
        }
        return .alreadyAnswered
    }
}

/// A runner's ``AsyncRequestRunner/highWatermark`` and ``AsyncRequestRunner/lowWatermark``,
/// as a response keeps them: immutable, one object for every response started while they held.
final class StreamWatermarks: Sendable {
    let high: Int
    let low: Int

    init(high: Int, low: Int) {
        self.high = high
        self.low = low
    }
}

/// A streamed response body. Each ``write(_:)-(String)`` hands its bytes to the connection as one
/// chunk, sent as soon as the socket takes it (nothing is held back to batch).
///
/// Backpressure: after queuing a chunk, a write waits while the connection holds more than the
/// runner's high watermark (``AsyncRequestRunner/highWatermark``, 64 KiB by default), until it
/// drains to the low watermark (16 KiB). So a client that stops reading holds at most one high
/// watermark plus one chunk (plus framing) of server memory for this stream; the writer stays
/// suspended meanwhile.
///
/// Threading: loop-confined, `Sendable` only to travel with the handler's Task.
public final class ResponseStream: @unchecked Sendable {
    // @unchecked Sendable: the mutable fields are touched on the loop thread only (checked in
    // each member).
    /// Not the response: it holds this stream, and a cycle would keep the connection alive.
    let request: AsyncRequest
    let highWatermark: Int
    let lowWatermark: Int
    private var finished = false
    private var waiting = false
    private var waits = 0

    init(request: AsyncRequest, highWatermark: Int, lowWatermark: Int) {
        self.request = request
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
    }

    private var http: LoopRequest { request.http }

    /// Bytes this stream's connection holds, not yet written to the socket.
    public var queuedBytes: Int {
        request.executor.thread.preconditionOnThread()
        return http.queuedOutputBytes
    }

    /// Writes `text` (UTF-8) as one chunk; see ``write(_:)-([UInt8])``.
    public func write(_ text: String) async throws(ResponseError) {
        var text = text
        let queued = text.withUTF8 { http.writeChunk(UnsafeRawBufferPointer($0)) }
        try await afterWrite(queued)
    }

    /// Writes `bytes` as one chunk, then waits while the connection's queue is over the high
    /// watermark. Ignores Task cancellation: a cancelled handler may still write its last words.
    /// - Throws: ``ResponseError/clientGone(_:)`` once the client has left (also if it leaves
    ///   while the write waits); ``ResponseError/alreadyAnswered`` after ``finish()``.
    public func write(_ bytes: [UInt8]) async throws(ResponseError) {
        let queued = bytes.withUnsafeBytes { http.writeChunk($0) }
        try await afterWrite(queued)
    }

    private func afterWrite(_ queued: Bool) async throws(ResponseError) {
        request.executor.thread.preconditionOnThread()
        guard queued else { throw failure() }
        let high = highWatermark, low = lowWatermark
        while http.isStreaming && http.queuedOutputBytes > high {
            waiting = true
            waits += 1
            defer { waiting = false }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                http.notifyWhenDrained(lowWatermark: low) { continuation.resume() }
            }
        }
        guard http.isStreaming else { throw failure() }
    }

    /// Ends the body (the last chunk) and reports the request answered, with the bytes streamed.
    /// The runner finishes a stream its handler left open.
    /// - Throws: ``ResponseError/clientGone(_:)`` if the client left first;
    ///   ``ResponseError/alreadyAnswered`` on a second call.
    public func finish() async throws(ResponseError) {
        request.executor.thread.preconditionOnThread()
        guard http.endStream() else { throw failure() }
        finished = true
    }

    /// Whether a write is suspended, waiting for the connection to drain (a statistic).
    public var isWaitingForDrain: Bool {
        request.executor.thread.preconditionOnThread()
        return waiting
    }

    /// How many times writes suspended for backpressure so far (a statistic).
    public var drainWaits: Int {
        request.executor.thread.preconditionOnThread()
        return waits
    }

    /// Whether ``finish()`` ran.
    public var isFinished: Bool {
        request.executor.thread.preconditionOnThread()
        return finished
    }

    private func failure() -> ResponseError {
        if let end = request.http.abortReason { return .clientGone(end) }
        return .alreadyAnswered
    }
}
