/// Strict HTTP/1.1 request framing (RFC 9112) in front of evhttp's parser.
///
/// ## Why a gate, not a check after parsing
/// evhttp 2.1 is lenient where a lenient parser lets a second request hide in the first: it reads
/// chunk sizes with `strtoll` (`0x3`, `+3`, ` 3` are 3), skips the CRLF after chunk data without
/// looking at it, ignores a header whose name ends in a space, takes the first of two
/// `Content-Length`s, and reads no body for `HEAD`, `TRACE` or an unknown method whatever the
/// head declares. A check in the request callback comes too late for those: by then evhttp has
/// consumed the bytes as a body, or will parse them as the next request. So every byte the
/// socket delivers passes through this framer (from the connection's input-buffer callback,
/// which sees evhttp's own reads and the abort watch's alike) before evhttp may parse it.
///
/// The framer frames the byte stream exactly as evhttp will, and lets evhttp see only:
/// - whole heads (request line and fields up to the empty line) that passed every rule;
/// - body bytes (`Content-Length` bytes, or chunk data) as they come;
/// - whole chunk-size lines, chunk-data CRLFs and trailer sections that passed.
/// An incomplete head or line is held back here until its end arrives, so evhttp never consumed
/// any part of a unit the framer rejects.
///
/// ## A rejection
/// The bad unit and everything after it never reach evhttp. In their place evhttp gets bytes
/// that complete a request at once: a minimal head (`GET / HTTP/1.1`, one `Host`) when the
/// head was bad, or the last chunk (`0`, an empty trailer section) when the body was. evhttp
/// dispatches that request; ``LoopHTTPServer`` recognises it by its position on the connection
/// (``Rejection/index``) and answers with the rejection's status and `Connection: close`,
/// before the responder sees anything. Later bytes are dropped as they arrive.
///
/// ## Rewrites evhttp needs
/// - empty lines before a request line are dropped (RFC 9112 §2.2 says ignore them; evhttp
///   answers `400`);
/// - `HTTP/1.x` with x ≥ 2 is passed as `HTTP/1.1` (RFC 9110 §6.2: serve it as 1.1);
/// - the first byte after a chunk size's digits, when an extension follows, becomes a space,
///   the one terminator evhttp's `strtoll` check accepts (it refuses `3;x=y`).
///
/// Threading: a value owned by one connection.
struct RequestFramer {
    /// Why and where the framer refused a request.
    struct Rejection: Equatable {
        /// The request's position on the connection (0 for the first): evhttp dispatches the
        /// stand-in request at that position.
        let index: Int
        let status: Int
        /// The reason, sent as the plain-text body.
        let reason: String
        /// From the request line when it could be read, else `-`.
        let method: String
        let target: String
    }

    private enum State {
        /// Before a request line: empty lines are dropped here.
        case start
        /// Reading a head, a trailer section (`trailer`), a chunk-size line or a chunk's CRLF;
        /// `unitStart` is where the unit began in the current chunk (0 when it began in an
        /// earlier one and is held).
        case head, trailer, chunkSize, chunkEnd
        case body(remaining: Int)
        case chunkData(remaining: Int)
        /// Rejected: nothing more reaches evhttp.
        case rejected
    }

    private var state = State.start
    /// Bytes of the current unit from earlier chunks, not yet given to evhttp.
    private var held: [UInt8] = []
    /// Whether the current line of a section has had a byte other than CR.
    private var lineHasContent = false
    /// Heads passed to evhttp so far; the request being framed is `passed - 1` once its head
    /// has passed, `passed` before.
    private var passed = 0
    private let maxHeaderBytes: Int
    /// The request line of the chunked request being read, for the log if its body is refused.
    private var bodyLine: RequestLine? {
        get { bodyLineStore.first }
        set { bodyLineStore = newValue.map { [$0] } ?? [] }
    }
    /// Set when a request is refused; stays set.
    private(set) var rejection: Rejection? {
        get { rejectionStore.first }
        set { rejectionStore = newValue.map { [$0] } ?? [] }
    }
    /// ``bodyLine`` and ``rejection``, rare, as arrays of at most one element: 8 B each in the
    /// framer every connection keeps for its life, where the optionals would take 33 and 65.
    private var bodyLineStore: [RequestLine] = []
    private var rejectionStore: [Rejection] = []

    /// Longest chunk-size line (extension included) accepted.
    static let maxChunkLine = 4096
    /// What evhttp gets in place of a refused head: a request it dispatches at once.
    static let standIn: [UInt8] = Array("GET / HTTP/1.1\r\nHost: -\r\n\r\n".utf8)
    /// What evhttp gets in place of a refused chunk line: the last chunk and no trailer.
    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// Bytes held back from evhttp (an incomplete unit).
    var heldCount: Int { held.count }

    init(maxHeaderBytes: Int) {
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// Frames `chunk`, the bytes just added to evhttp's input. Returns `nil` when evhttp may
    /// see them as they are (the common case: nothing held, nothing rewritten), else the bytes
    /// evhttp must see instead (possibly none).
    mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        if case .rejected = state { return [] }
        // `out` stays nil while evhttp may see chunk[0..<emitted] unchanged.
        var out: [UInt8]? = held.isEmpty ? nil : []
        var emitted = 0  // chunk[..<emitted] is accounted for (passed, held or dropped)
        var unitStart = 0
        var i = 0
        let count = chunk.count

        /// Makes the output explicit from here on.
        func materialize(_ out: inout [UInt8]?, _ emitted: Int) {
            if out == nil { out = Array(chunk[0..<emitted]) }
        }

        while i < count {
            switch state {
            case .rejected:
                i = count
            case .start:
                let byte = chunk[i]
                if byte == 13 || byte == 10 {
                    // Dropped: pass what came before, skip this byte.
                    materialize(&out, emitted)
                    out! += chunk[emitted..<i]
                    i += 1
                    emitted = i
                } else {
                    unitStart = i
                    lineHasContent = true
                    state = .head
                    i += 1
                }
            case .head, .trailer:
                // Find the empty line that ends the section.
                var end: Int? = nil
                while i < count {
                    let byte = chunk[i]
                    i += 1
                    if byte == 10 {
                        if !lineHasContent { end = i; break }
                        lineHasContent = false
                    } else if byte != 13 {
                        lineHasContent = true
                    }
                }
                let isHead: Bool
                if case .head = state { isHead = true } else { isHead = false }
                let size = held.count + (i - unitStart)
                if end == nil {
                    // The request line alone, once whole: HTTP/0.9 sends nothing after it.
                    if isHead {
                        let unit = held + chunk[unitStart..<count]
                        if let lf = unit.firstIndex(of: 10) {
                            let verdict = unit[...lf].withUnsafeBufferPointer { Self.judgeHead($0, lineOnly: true) }
                            if let status = verdict.status {
                                reject(status: status, reason: verdict.reason, head: verdict.line, isHead: true,
                                       &out, chunk, &emitted, unitStart)
                                return out
                            }
                        }
                    }
                    if size > maxHeaderBytes {
                        reject(status: 400, reason: "request header fields too large", head: nil, isHead: isHead,
                               &out, chunk, &emitted, unitStart)
                        return out
                    }
                    hold(&out, chunk, &emitted, unitStart, count)
                    return out
                }
                let verdict: HeadVerdict
                let unitIsContiguous = held.isEmpty
                if unitIsContiguous {
                    verdict = UnsafeBufferPointer(rebasing: chunk[unitStart..<i]).withMemoryRebound(to: UInt8.self) {
                        isHead ? Self.judgeHead($0) : Self.judgeTrailer($0)
                    }
                } else {
                    let unit = held + chunk[unitStart..<i]
                    verdict = unit.withUnsafeBufferPointer { isHead ? Self.judgeHead($0) : Self.judgeTrailer($0) }
                }
                if size > maxHeaderBytes {
                    reject(status: 400, reason: "request header fields too large", head: verdict.line, isHead: isHead,
                           &out, chunk, &emitted, unitStart)
                    return out
                }
                if let status = verdict.status {
                    reject(status: status, reason: verdict.reason, head: verdict.line, isHead: isHead,
                           &out, chunk, &emitted, unitStart)
                    return out
                }
                // Passes: the held part first, then this chunk's part (with a version patch).
                if !held.isEmpty || verdict.versionPatch != nil {
                    materialize(&out, emitted)
                    out! += chunk[emitted..<unitStart]
                    let base = out!.count
                    out! += held
                    out! += chunk[unitStart..<i]
                    if let patch = verdict.versionPatch { out![base + patch] = UInt8(ascii: "1") }
                    held = []
                    emitted = i
                }
                if isHead {
                    passed += 1
                    switch verdict.body {
                    case .none: state = .start
                    case .length(let n): state = .body(remaining: n)
                    case .chunked: state = .chunkSize; lineHasContent = false; bodyLine = verdict.line
                    }
                } else {
                    state = .start
                }
                unitStart = i
            case .body(let remaining):
                let take = min(remaining, count - i)
                i += take
                state = remaining == take ? .start : .body(remaining: remaining - take)
            case .chunkData(let remaining):
                let take = min(remaining, count - i)
                i += take
                if remaining == take {
                    state = .chunkEnd
                    unitStart = i
                } else {
                    state = .chunkData(remaining: remaining - take)
                }
            case .chunkEnd:
                // Exactly CR LF after the data.
                let seen = held.count + (i - unitStart)
                let byte = chunk[i]
                if (seen == 0 && byte == 13) || (seen == 1 && byte == 10) {
                    i += 1
                    if seen == 0 && i == count {
                        hold(&out, chunk, &emitted, unitStart, count)
                        return out
                    }
                    if seen == 1 {
                        releaseHeld(&out, chunk, &emitted, unitStart, i)
                        state = .chunkSize
                        unitStart = i
                    }
                } else {
                    reject(status: 400, reason: "chunk data not followed by CRLF", head: nil, isHead: false,
                           &out, chunk, &emitted, unitStart)
                    return out
                }
            case .chunkSize:
                var end: Int? = nil
                while i < count {
                    let byte = chunk[i]
                    i += 1
                    if byte == 10 { end = i; break }
                }
                let size = held.count + (i - unitStart)
                guard let end else {
                    if size > Self.maxChunkLine {
                        reject(status: 400, reason: "chunk size line too long", head: nil, isHead: false,
                               &out, chunk, &emitted, unitStart)
                        return out
                    }
                    hold(&out, chunk, &emitted, unitStart, count)
                    return out
                }
                let line = held + chunk[unitStart..<end]
                guard size <= Self.maxChunkLine, let (chunkSize, patch) = Self.judgeChunkLine(line) else {
                    reject(status: 400, reason: "invalid chunk size line", head: nil, isHead: false,
                           &out, chunk, &emitted, unitStart)
                    return out
                }
                if !held.isEmpty || patch != nil {
                    materialize(&out, emitted)
                    out! += chunk[emitted..<unitStart]
                    var fixed = line
                    if let patch { fixed[patch] = 32 }
                    out! += fixed
                    held = []
                    emitted = end
                }
                if chunkSize == 0 {
                    state = .trailer
                    lineHasContent = false
                } else {
                    state = .chunkData(remaining: chunkSize)
                }
                unitStart = i
            }
        }
        if out != nil { out! += chunk[emitted..<count] }
        return out
    }

    /// Keeps chunk[unitStart...] back until the unit's end arrives.
    private mutating func hold(_ out: inout [UInt8]?, _ chunk: UnsafeBufferPointer<UInt8>, _ emitted: inout Int,
                               _ unitStart: Int, _ count: Int) {
        if out == nil { out = Array(chunk[0..<emitted]) }
        out! += chunk[emitted..<unitStart]
        held += chunk[unitStart..<count]
        emitted = count
    }

    /// Passes a unit that began in an earlier chunk (held) and ends at `end`.
    private mutating func releaseHeld(_ out: inout [UInt8]?, _ chunk: UnsafeBufferPointer<UInt8>, _ emitted: inout Int,
                                      _ unitStart: Int, _ end: Int) {
        guard !held.isEmpty else { return }
        if out == nil { out = Array(chunk[0..<emitted]) }
        out! += chunk[emitted..<unitStart]
        out! += held
        out! += chunk[unitStart..<end]
        held = []
        emitted = end
    }

    /// Refuses the request being framed: evhttp gets what came before the bad unit, then a
    /// stand-in that completes a request at once; nothing after.
    private mutating func reject(status: Int, reason: String, head: RequestLine?, isHead: Bool,
                                 _ out: inout [UInt8]?, _ chunk: UnsafeBufferPointer<UInt8>, _ emitted: inout Int,
                                 _ unitStart: Int) {
        if out == nil { out = Array(chunk[0..<emitted]) }
        out! += chunk[emitted..<unitStart]
        let index: Int
        if case .head = state {
            index = passed
            out! += Self.standIn
        } else if case .trailer = state {
            index = passed - 1
            out! += [13, 10]
        } else {
            index = passed - 1
            out! += Self.lastChunk
        }
        _ = isHead
        held = []
        emitted = chunk.count
        state = .rejected
        let line = head ?? (index == passed ? nil : bodyLine)
        rejection = Rejection(index: index, status: status, reason: reason,
                              method: line?.method ?? "-", target: line?.target ?? "-")
    }
}

