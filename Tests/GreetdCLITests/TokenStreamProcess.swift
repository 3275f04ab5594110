import EventHTTPSystem
import Foundation
import GreetdClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `token-stream` example binary, built next to greetd, run on port 0 through the same
/// launcher as greetd (stderr collected line by line).
enum TokenStreamProcess {
    static var binary: URL { GreetdProcess.binary.deletingLastPathComponent().appendingPathComponent("token-stream") }

    /// Starts it with `arguments` (port 0 and one loop unless given) and waits for its port.
    static func start(_ arguments: [String]) throws -> (process: GreetdProcess, port: UInt16) {
        var arguments = arguments
        if !arguments.contains("--port") { arguments += ["--port", "0"] }
        if !arguments.contains("--workers") { arguments += ["--workers", "2"] }
        let process = try GreetdProcess(arguments, executable: binary)
        let line = try process.waitForLine(containing: "listening on http://")
        guard let port = line.text.split(separator: ":").last.flatMap({ UInt16($0.trimmingCharacters(in: .whitespaces)) }) else {
            throw TestFailure("no port in: \(line.text)")
        }
        return (process, port)
    }
}

/// One blocking loopback connection: send requests, read whole responses or a stream's bytes,
/// then end it with a FIN or a RST.
final class TokenClient {
    let fd: Int32
    private var buffered: [UInt8] = []
    private(set) var ended: StreamEnd?

    init(port: UInt16) throws {
        fd = try connectLoopback(port: port)
    }

    deinit { close() }

    private var closed = false

    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }

    /// Closes with a RST: `SO_LINGER` zero, then close.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    func send(_ text: String) throws { try sendAll(fd, text) }

    /// A request with a JSON body.
    static func post(_ path: String = "/v1/completions", json: String, contentType: String? = "application/json",
                     extra: [String] = []) -> String {
        var lines = ["POST \(path) HTTP/1.1", "Host: test", "Content-Length: \(json.utf8.count)"]
        if let contentType { lines.append("Content-Type: \(contentType)") }
        lines += extra
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + json
    }

    static func get(_ path: String, method: String = "GET") -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: test\r\n\r\n"
    }

    /// Reads one whole response (keep-alive safe: bytes after it stay buffered).
    func response(method: String = "GET", timeout: Duration = .seconds(10)) throws -> HTTPReply {
        let deadline = ContinuousClock.now + timeout
        while true {
            var buffer = HTTPResponseBuffer(requestMethod: method)
            buffer.append(contentsOf: buffered)
            if ended != nil { buffer.markEndOfStream() }
            if let length = buffer.messageLength {
                buffered.removeFirst(length)
                return try HTTPReply(buffer)
            }
            if let ended { throw TestFailure("connection \(ended) before a whole response: \(text)") }
            try fill(until: deadline)
        }
    }

    /// Everything read so far, as text.
    var text: String { String(decoding: buffered, as: UTF8.self) }

    /// Reads until the bytes read so far contain `fragment`.
    func read(until fragment: String, timeout: Duration = .seconds(10)) throws {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(fragment) {
            if let ended { throw TestFailure("connection \(ended) before \(fragment.debugDescription): \(text)") }
            try fill(until: deadline)
        }
    }

    /// Reads until the server ends the connection.
    func readToEnd(timeout: Duration = .seconds(10)) throws {
        let deadline = ContinuousClock.now + timeout
        while ended == nil { try fill(until: deadline) }
    }

    private func fill(until deadline: ContinuousClock.Instant) throws {
        switch receive(fd, until: deadline) {
        case .success(let bytes): buffered += bytes
        case .failure(.timedOut): throw TestFailure("nothing more within the deadline; got: \(text)")
        case .failure(let end): ended = end
        }
    }
}

/// A response body's server-sent events, parsed.
func events(in body: String) -> [GreetdClient.ServerSentEvent] {
    var parser = ServerSentEventParser()
    return parser.append(contentsOf: Array(body.utf8))
}

/// One request on its own connection.
func exchange(_ port: UInt16, _ request: String, method: String = "GET") throws -> HTTPReply {
    let client = try TokenClient(port: port)
    try client.send(request)
    return try client.response(method: method)
}

/// The value of Prometheus series `series` (`name{labels}` as printed).
func metric(_ port: UInt16, _ series: String) throws -> Double? {
    let reply = try exchange(port, TokenClient.get("/metrics"))
    for line in reply.body.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

/// Waits until `series` reads `value` (the counters move after the answer is sent).
func waitForMetric(_ port: UInt16, _ series: String, _ value: Double, timeout: TimeInterval = 10) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var last: Double?
    while Date() < deadline {
        last = try metric(port, series)
        if last == value { return }
        Thread.sleep(forTimeInterval: 0.01)
    }
    throw TestFailure("\(series) is \(String(describing: last)), expected \(value)")
}

/// The JSON object in `text`.
func jsonObject(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(text)")
    }
    return object
}

/// `error.type` and `error.message` of an error body.
func errorType(_ reply: HTTPReply) throws -> String? {
    ((try jsonObject(reply.body))["error"] as? [String: Any])?["type"] as? String
}
