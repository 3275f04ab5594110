import CLibevent

/// The connection's watch on its output buffer: how the adapter owns the two kinds of response
/// it does not write itself.
///
/// - `cannedResponse` (while waiting for a request): evhttp answers a request it cannot parse
///   on its own (`evhttp_send_error`: `400`, or `413` for a body over the limit) and never calls
///   us. The watch sees its status line arrive, names the request
///   (``LoopHTTPServer/cannedHead(method:target:start:origin:)``), adds `X-Request-Id` right after
///   the status line, and counts the body; the connection reports the end when it closes, which
///   a canned response always does (evhttp sends it with `Connection: close`).
/// - `answerInHTTP11` (our `400` to an unsupported version such as `HTTP/1.10`): evhttp writes
///   the status line with the client's version; the watch replaces it with `HTTP/1.1`, so no
///   field of `struct evhttp_request` is ever written.
///
/// Both rely on evhttp 2.1 writing a response's status line with one `evbuffer_add_printf` into
/// an empty output buffer (`evhttp_make_header_response`): output callbacks run at once, after
/// each addition. When a chunk does not look like that, the watch leaves the bytes alone (the
/// canned response is still reported, without the header).
struct OutputWatch {
    /// `swallow`: a canned response is being replaced by the responder's rendering
    /// (``LoopResponder/renderError(status:head:)``): evhttp's headers and page are dropped as
    /// they arrive, and ours is written at the next safe point, before the socket is written.
    enum Mode { case off, cannedResponse, answerInHTTP11, swallow }

    /// A canned response being written. A class: rare (error answers only), it would otherwise
    /// take 176 B inline in every connection.
    final class Canned {
        let head: RequestHead
        let status: Int
        /// The first bytes (up to 8 KiB), enough to find where the headers end.
        var prefix: [UInt8]
        var total: Int

        init(head: RequestHead, status: Int, prefix: [UInt8], total: Int) {
            self.head = head
            self.status = status
            self.prefix = prefix
            self.total = total
        }

        /// Body bytes: everything after the blank line that ends the headers.
        var bodyBytes: Int {
            guard let range = prefix.firstRange(of: [13, 10, 13, 10]) else { return 0 }
            return total - range.upperBound
        }
    }

    var mode: Mode = .off
    /// Our `evbuffer_cb_entry` on the output buffer, while installed.
    var entry: OpaquePointer?
    var canned: Canned?
}

extension HTTPConnection {
    /// Sets what the output watch does. Its callback is installed the first time and then stays
    /// for the connection's life, enabled or disabled (`evbuffer_cb_set_flags`, no allocation),
    /// so that a reply's writes (mode `off`) do not call it. Unretained: the callback is removed
    /// in `closed` (``removeOutputWatch()``), before the close callback's retain is released.
    func watchOutput(_ mode: OutputWatch.Mode) {
        output.mode = mode
        guard let bufferevent else { return }
        let buffer = bufferevent_get_output(bufferevent)
        if mode != .off, output.entry == nil {
            // NULL only out of memory: the watch stays off (a canned response then goes without
            // its header and its report), and the next call tries again.
            output.entry = evbuffer_add_cb(buffer, outputTrampoline, Unmanaged.passUnretained(self).toOpaque())
        } else if let entry = output.entry {
            // Both only set or clear a bit of the entry: always 0.
            if mode == .off {
                _ = evbuffer_cb_clear_flags(buffer, entry, UInt32(EVBUFFER_CB_ENABLED))
            } else {
                _ = evbuffer_cb_set_flags(buffer, entry, UInt32(EVBUFFER_CB_ENABLED))
            }
        }
    }

    /// Removes the output watch's callback (from `closed`).
    func removeOutputWatch() {
        output.mode = .off
        guard let entry = output.entry, let bufferevent else { return }
        // Always 0 in libevent 2.1 (it unlinks and frees the entry): nothing to check.
        _ = evbuffer_remove_cb_entry(bufferevent_get_output(bufferevent), entry)
        output.entry = nil
    }

    /// The reply about to be sent must say `HTTP/1.1`, whatever version the client claimed.
    func answerInHTTP11() {
        watchOutput(.answerInHTTP11)
    }

    /// Reports the canned response written on this connection, if any (from `closed`).
    func finishCannedResponse() {
        guard let canned = output.canned else { return }
        output.canned = nil
        report(canned.head, .responded(status: canned.status, bytes: canned.bodyBytes))
    }

    /// `added` bytes were just appended to `buffer`, the connection's output.
    fileprivate func outputAdded(_ buffer: OpaquePointer, added: Int) {
        switch output.mode {
        case .off:
            return
        case .cannedResponse:
            let chunk = Self.tail(of: buffer, count: min(added, 8 * 1024))
            if let canned = output.canned {
                if canned.prefix.count < 8 * 1024 { canned.prefix += chunk }
                canned.total += added
                return
            }
            // 100 Continue is not the response; anything that is not a status line is not ours.
            guard let status = Self.statusCode(chunk), status >= 200 else { return }
            let head = server.cannedHead(start: requestStarted ?? .now, origin: .parser)
            output.canned = OutputWatch.Canned(head: head, status: status, prefix: chunk, total: added)
            let alone = chunk.count == added && evbuffer_get_length(buffer) == added && chunk.firstIndex(of: 10) == added - 1
            let clean = !head.id.utf8.contains { $0 == 10 || $0 == 13 }
            if alone && clean, let rendered = server.renderCannedError(status: status, head: head) {
                replaceCanned(buffer, statusLine: chunk, status: status, head: head, rendered: rendered)
            } else if alone && clean {
                // Re-enters this callback, which counts the header as part of the response.
                // Fails (-1, nothing added) only out of memory: the response then goes without
                // the header, as when the chunk is not alone, and is still reported.
                let header = Array("X-Request-Id: \(head.id)\r\n".utf8)
                _ = evbuffer_add(buffer, header, header.count)
            }
        case .swallow:
            // evhttp's headers and page, after its status line: never sent.
            _ = evbuffer_unfreeze(buffer, 1)
            _ = evbuffer_drain(buffer, evbuffer_get_length(buffer))
            _ = evbuffer_freeze(buffer, 1)
        case .answerInHTTP11:
            output.mode = .off  // the additions below come back here: leave them alone
            let line = Self.tail(of: buffer, count: min(added, 1024))
            guard line.count == added, evbuffer_get_length(buffer) == added, line.firstIndex(of: 10) == added - 1,
                  line.starts(with: Array("HTTP/".utf8)), let space = line.firstIndex(of: 32) else { return }
            let fixed = Array("HTTP/1.1".utf8) + line[space...]
            // A socket bufferevent keeps the start of its output frozen except while it writes
            // (bufferevent_sock.c); thaw it for this one drain, as it does. Freezing and thawing
            // only set a flag: both always return 0 in libevent 2.1.
            _ = evbuffer_unfreeze(buffer, 1)
            let drained = evbuffer_drain(buffer, added)
            _ = evbuffer_freeze(buffer, 1)
            // A failed drain leaves the client's version in place (still a valid status line).
            guard drained == 0 else { return }
            if evbuffer_add(buffer, fixed, fixed.count) != 0 {
                // Out of memory with the status line gone: headers without it would be garbage,
                // so close the connection instead (at the safe point: evhttp is writing).
                end(.serverClosed)
            }
        }
    }

    /// Drops evhttp's canned status line (alone in `buffer`) and what follows it, and writes the
    /// responder's answer instead at the safe point: evhttp writes the whole canned response
    /// inside one call (`evhttp_send_error`), and the socket is written on a later turn.
    private func replaceCanned(_ buffer: OpaquePointer, statusLine: [UInt8], status: Int, head: RequestHead, rendered: RenderedError) {
        var text = String(decoding: statusLine, as: UTF8.self)
        text += "Content-Type: \(rendered.contentType)\r\n"
        text += "Content-Length: \(rendered.body.utf8.count)\r\n"
        text += "Connection: close\r\nX-Request-Id: \(head.id)\r\n"
        let date = server.date.withValue(at: server.base.now) { String(cString: $0) }
        text += "Date: \(date)\r\n\r\n"
        let bytes = Array(text.utf8) + Array(rendered.body.utf8)
        _ = evbuffer_unfreeze(buffer, 1)
        let drained = evbuffer_drain(buffer, evbuffer_get_length(buffer))
        _ = evbuffer_freeze(buffer, 1)
        guard drained == 0 else { return }  // evhttp's response stays, as it was
        output.mode = .swallow
        output.canned = OutputWatch.Canned(head: head, status: status, prefix: Array(bytes.prefix(8 * 1024)), total: bytes.count)
        safePoint.perform { [self] in
            guard output.mode == .swallow, let bufferevent else { return }
            output.mode = .off
            // Fails only out of memory: the client then gets no answer, and the connection
            // closes as evhttp planned.
            _ = evbuffer_add(bufferevent_get_output(bufferevent), bytes, bytes.count)
        }
    }

    /// The last `count` bytes of `buffer` (empty if they cannot be copied).
    private static func tail(of buffer: OpaquePointer, count: Int) -> [UInt8] {
        let length = evbuffer_get_length(buffer)
        guard count > 0, count <= length else { return [] }
        var position = evbuffer_ptr()
        guard evbuffer_ptr_set(buffer, &position, length - count, EVBUFFER_PTR_SET) == 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let copied = evbuffer_copyout_from(buffer, &position, &bytes, count)
        return copied == count ? bytes : []
    }

    /// The status of a status line (`HTTP/1.1 400 Bad Request`), if `bytes` begin with one.
    private static func statusCode(_ bytes: [UInt8]) -> Int? {
        guard bytes.starts(with: Array("HTTP/".utf8)), let space = bytes.firstIndex(of: 32), bytes.count >= space + 4 else { return nil }
        let digits = bytes[(space + 1)..<(space + 4)]
        guard digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - 48) }
    }
}

/// The C output-buffer callback: bytes were added to (or drained from) the connection's output.
private func outputTrampoline(_ buffer: OpaquePointer?, _ info: UnsafePointer<evbuffer_cb_info>?, _ arg: UnsafeMutableRawPointer?) {
    guard let buffer, let arg, let info, info.pointee.n_added > 0 else { return }
    let connection = Unmanaged<HTTPConnection>.fromOpaque(arg).takeUnretainedValue()
    connection.safePoint.callback { connection.outputAdded(buffer, added: info.pointee.n_added) }
}
