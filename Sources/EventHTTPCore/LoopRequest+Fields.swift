import CLibevent

/// What a front door needs from a request beyond its line: every header as received, the
/// buffered body, a reply with a byte body, and the connection's application slot.
extension LoopRequest {
    /// Every request header, in the order received, names as sent (evhttp keeps each line,
    /// duplicates included). Empty once the request is answered or aborted.
    public var headerList: [(name: String, value: String)] {
        guard let raw = liveRequest, let headers = evhttp_request_get_input_headers(raw) else { return [] }
        var list: [(name: String, value: String)] = []
        var cursor = headers.pointee.tqh_first
        while let entry = cursor {
            list.append((String(cString: entry.pointee.key), String(cString: entry.pointee.value)))
            cursor = entry.pointee.next.tqe_next
        }
        return list
    }

    /// The request body, whole: evhttp reads it (up to ``HTTPServerOptions/maxBodyBytes``, past
    /// which the client gets `413` and no handler runs) before it hands the request over, so a
    /// body the client cut short never reaches here. Empty once answered or aborted.
    public var bodyBytes: [UInt8] {
        guard let raw = liveRequest, let input = evhttp_request_get_input_buffer(raw) else { return [] }
        let count = evbuffer_get_length(input)
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            // Copies without draining: -1 only for a negative length, never here.
            let copied = evbuffer_copyout(input, buffer.baseAddress, count)
            initialized = max(0, copied)
        }
    }

    /// The client's address and port while the request is pending or streaming.
    public var peerAddress: (host: String, port: UInt16)? {
        guard liveRequest != nil else { return nil }
        var address: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(connection.raw, &address, &port)
        guard let address else { return nil }
        return (String(cString: address), port)
    }

    /// Sends the whole reply with a byte body; otherwise as
    /// ``respond(status:reason:headers:body:)`` (`X-Request-Id` added, `HEAD` gets the headers
    /// only, the end reported before returning).
    /// - Returns: `false` if the request was already answered or its client had gone.
    @discardableResult
    public func respond(status: Int, reason: String? = nil, headers: [(String, String)] = [], bytes: [UInt8]) -> Bool {
        thread.preconditionOnThread()
        guard case .pending(let request) = state else { return false }
        state = .responded
        connection.beginReplying()
        let output = addHeaders(headers, to: request)
        var sent = 0
        if method == .head {
            // As in respond(status:reason:headers:body:): evhttp sets no length for HEAD.
            _ = addHeader(output, "Content-Length", String(bytes.count))
        } else if !bytes.isEmpty {
            let added = bytes.withUnsafeBytes { evbuffer_add(evhttp_request_get_output_buffer(request), $0.baseAddress, $0.count) }
            if added == 0 { sent = bytes.count }
        }
        evhttp_send_reply(request, Int32(status), reason, nil)
        connection.report(head, .responded(status: status, bytes: sent))
        return true
    }

    /// The application's slot on this request's connection: state it keeps for the request
    /// being served (greetd keeps its greeting here), instead of a table keyed by request.
    /// The connection holds it strongly until it closes, or until it is set to `nil`; one
    /// request at a time uses a connection, so one slot is enough. Loop thread.
    public var connectionSlot: AnyObject? {
        get { thread.preconditionOnThread(); return connection.applicationSlot }
        set { thread.preconditionOnThread(); connection.applicationSlot = newValue }
    }
}

/// The body and content type a responder gives a canned error answer (``LoopResponder/renderError(status:head:)``).
public struct RenderedError: Sendable {
    /// The `Content-Type` value.
    public var contentType: String
    /// The body, sent as UTF-8.
    public var body: String
    /// - Parameters:
    ///   - contentType: e.g. `application/json`.
    ///   - body: the whole body.
    public init(contentType: String, body: String) {
        self.contentType = contentType
        self.body = body
    }
}

extension LoopResponder {
    /// Default: evhttp's own page, with `X-Request-Id` added.
    public func renderError(status: Int, head: RequestHead) -> RenderedError? { nil }

    /// Default: nothing.
    public func connectionClosed(_ reason: ConnectionCloseReason) {}
}
