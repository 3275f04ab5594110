import EventHTTP
import EventHTTPOpenAPI
import GreetdClient
import HTTPTypes
@_spi(Generated) import OpenAPIRuntime
import Synchronization
import Testing
import TestSupport

// The OpenAPI transport as generated code uses it: `registerHandlers(on: router)` calls
// `register(_:method:path:)` once per operation; the operations are driven here over real
// loopback HTTP against an EventHTTPServer.

/// Events recorded by handlers and waited for by tests, each wait bounded.
final class Signals: Sendable {
    private let state = Mutex<(seen: [String], waiters: [(String, CheckedContinuation<Void, any Error>)])>(([], []))

    func record(_ event: String) {
        let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.seen.append(event)
            let due = state.waiters.filter { $0.0 == event }.map(\.1)
            state.waiters.removeAll { $0.0 == event }
            return due
        }
        for continuation in due { continuation.resume() }
    }

    /// Waits until `event` was recorded; fails after `timeout`.
    func wait(for event: String, timeout: Duration = .seconds(10)) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let seen = self.state.withLock { state -> Bool in
                        if state.seen.contains(event) { return true }
                        state.waiters.append((event, continuation))
                        return false
                    }
                    if seen { continuation.resume() }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestFailure("no \(event.debugDescription) within \(timeout)")
            }
            defer { group.cancelAll() }
            try await group.next()
            // The losing waiter, if it was the timeout's, is left registered: resume it now.
            let stale = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
                defer { state.waiters.removeAll { $0.0 == event } }
                return state.waiters.filter { $0.0 == event }.map(\.1)
            }
            for continuation in stale { continuation.resume(throwing: CancellationError()) }
        }
    }
}

/// Runs `body` against an EventHTTPServer (127.0.0.1, port 0, one loop) serving `router`,
/// then shuts it down gracefully and waits for `run()` to return.
func withOpenAPIServer(_ router: Router, _ body: (UInt16) async throws -> Void) async throws {
    let (ports, continuation) = AsyncStream<UInt16>.makeStream()
    let server = EventHTTPServer(configuration: .init(host: "127.0.0.1", port: 0, loops: 1, shutdownGrace: .seconds(5),
                                                      cancellationGrace: .seconds(2)),
                                 router: router) { addresses in
        continuation.yield(addresses.first?.port ?? 0)
        continuation.finish()
    }
    let task = Task {
        defer { continuation.finish() }
        try await server.run()
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next(), port != 0 else {
        try await task.value
        throw TestFailure("the server stopped before it listened")
    }
    do {
        try await body(port)
    } catch {
        server.cancel()
        _ = try? await task.value
        throw error
    }
    server.shutdown()
    try await task.value
}

/// One request on a fresh connection, its whole response.
func exchange(_ port: UInt16, _ method: String, _ target: String, body: String? = nil) async throws -> HTTPReply {
    let connection = try LoopbackConnection(port: port, timeout: .seconds(10))
    var text = "\(method) \(target) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
    if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
    text += "\r\n" + (body ?? "")
    try connection.send(text)
    return try await connection.readResponse(requestMethod: method)
}

@Suite("EventHTTPOpenAPITests")
struct OpenAPITransportTests {
    @Test("a path parameter arrives in ServerRequestMetadata, and generated code decodes it once")
    func pathParameter() async throws {
        let router = Router()
        try router.register({ request, body, metadata in
            let raw = String(metadata.pathParameters["petId"] ?? "-")
            // What generated code does with it.
            let decoded = try Converter(configuration: .init()).getPathParameterAsURI(
                in: metadata.pathParameters, name: "petId", as: String.self)
            let text = "\(request.method) \(request.path ?? "-") raw=\(raw) decoded=\(decoded) body=\(body == nil ? "nil" : "some")"
            return (HTTPResponse(status: .ok, headerFields: [.contentType: "text/plain"]), HTTPBody(text))
        }, method: .get, path: "/pets/{petId}")
        try await withOpenAPIServer(router) { port in
            let plain = try await exchange(port, "GET", "/pets/7?verbose=1")
            #expect(plain.status == 200)
            #expect(plain.body == "GET /pets/7?verbose=1 raw=7 decoded=7 body=nil")
            #expect(plain.header("Content-Length") == String(plain.bodyBytes.count))
            let encoded = try await exchange(port, "GET", "/pets/tiny%2D1")
            #expect(encoded.body.contains("decoded=tiny-1 "))
            // An encoded slash and an encoded percent sign stay data, decoded exactly once.
            let slash = try await exchange(port, "GET", "/pets/a%2Fb%25")
            #expect(slash.body.contains("raw=a%2Fb%25 decoded=a/b% "))
        }
    }

    @Test("the request body arrives as an HTTPBody")
    func requestBody() async throws {
        let router = Router()
        try router.register({ request, body, _ in
            guard let body else { return (HTTPResponse(status: .badRequest), HTTPBody("no body")) }
            let text = try await String(collecting: body, upTo: 1 << 20)
            return (HTTPResponse(status: .created, headerFields: [.contentType: "application/json"]),
                    HTTPBody("{\"received\":\(text),\"type\":\"\(request.headerFields[.contentType] ?? "-")\"}"))
        }, method: .post, path: "/pets")
        try await withOpenAPIServer(router) { port in
            let reply = try await exchange(port, "POST", "/pets", body: #"{"name":"Rex"}"#)
            #expect(reply.status == 201)
            #expect(reply.header("Content-Type") == "application/json")
            #expect(reply.body == #"{"received":{"name":"Rex"},"type":"application/json"}"#)
        }
    }

    @Test("a response body of unknown length is streamed chunk by chunk as the handler yields it")
    func streamedResponse() async throws {
        let signals = Signals()
        let router = Router()
        try router.register({ _, _, _ in
            let (stream, continuation) = AsyncThrowingStream<HTTPBody.ByteChunk, any Error>.makeStream()
            Task {
                continuation.yield(ArraySlice("first\n".utf8))
                // The second chunk only after the client has read the first: it was sent alone.
                try await signals.wait(for: "first read")
                continuation.yield(ArraySlice("second\n".utf8))
                continuation.finish()
            }
            return (HTTPResponse(status: .ok, headerFields: [.contentType: "text/plain"]), HTTPBody(stream, length: .unknown))
        }, method: .get, path: "/pets/stream")
        try await withOpenAPIServer(router) { port in
            let connection = try LoopbackConnection(port: port, timeout: .seconds(10))
            try connection.send("GET /pets/stream HTTP/1.1\r\nHost: test\r\n\r\n")
            let head = try await readUntil(connection, "first\n")
            #expect(head.hasPrefix("HTTP/1.1 200"))
            #expect(head.lowercased().contains("transfer-encoding: chunked"))
            #expect(!head.contains("second"))
            signals.record("first read")
            _ = try await readUntil(connection, "0\r\n\r\n", after: head)
        }
    }

    @Test("an unknown path is 404 and a known path with another method 405")
    func unknownPath() async throws {
        let router = Router()
        try router.register({ _, _, _ in (HTTPResponse(status: .ok), nil) }, method: .get, path: "/pets")
        try await withOpenAPIServer(router) { port in
            let missing = try await exchange(port, "GET", "/owners")
            #expect(missing.status == 404)
            let wrong = try await exchange(port, "DELETE", "/pets")
            #expect(wrong.status == 405)
            #expect(wrong.header("Allow") == "GET, HEAD")
            let ok = try await exchange(port, "GET", "/pets")
            #expect(ok.status == 200)
            #expect(ok.bodyBytes.isEmpty)
        }
    }

    @Test("a client that leaves cancels the generated handler")
    func abortCancels() async throws {
        let signals = Signals()
        let router = Router()
        try router.register({ _, _, _ in
            signals.record("started")
            do {
                try await Task.sleep(for: .seconds(60))
            } catch is CancellationError {
                signals.record("cancelled")
                throw CancellationError()
            }
            return (HTTPResponse(status: .ok), HTTPBody("too late"))
        }, method: .get, path: "/pets/{petId}/slow")
        try await withOpenAPIServer(router) { port in
            let connection = try LoopbackConnection(port: port, timeout: .seconds(10))
            try connection.send("GET /pets/1/slow HTTP/1.1\r\nHost: test\r\n\r\n")
            try await signals.wait(for: "started")
            connection.abort(.fin)
            try await signals.wait(for: "cancelled")
        }
    }

    @Test("an HTTPError wrapped in generated code's ServerError keeps its status; other errors are 500")
    func wrappedErrors() async throws {
        let router = Router()
        try router.register({ request, body, metadata in
            struct StoreDown: Error {}
            let wrapped: any Error = metadata.pathParameters["petId"] == "0" ? HTTPError(.notFound, message: "no pet 0") : StoreDown()
            throw ServerError(operationID: "getPet", request: request, requestBody: body, requestMetadata: metadata,
                              causeDescription: "handler failed", underlyingError: wrapped)
        }, method: .get, path: "/pets/{petId}")
        try await withOpenAPIServer(router) { port in
            let missing = try await exchange(port, "GET", "/pets/0")
            #expect(missing.status == 404)
            #expect(missing.body == "no pet 0\n")
            let failed = try await exchange(port, "GET", "/pets/1")
            #expect(failed.status == 500)
        }
    }

    @Test("a group is a ServerTransport too: its prefix applies")
    func groupTransport() async throws {
        let router = Router()
        let transport: any ServerTransport = router.group("/api/v1")
        try transport.register({ _, _, metadata in
            (HTTPResponse(status: .ok), HTTPBody("owner \(metadata.pathParameters["ownerId"] ?? "-")"))
        }, method: .get, path: "/owners/{ownerId}")
        try await withOpenAPIServer(router) { port in
            let reply = try await exchange(port, "GET", "/api/v1/owners/9")
            #expect(reply.body == "owner 9")
        }
    }
}

/// Reads `connection` until what was read (after `previous`) contains `needle`.
func readUntil(_ connection: LoopbackConnection, _ needle: String, after previous: String = "",
               timeout: Duration = .seconds(10)) async throws -> String {
    let fd = connection.fd
    return try await offCooperativePool {
        var text = previous
        let deadline = ContinuousClock.now + timeout
        while !text.dropFirst(previous.count).contains(needle) {
            switch receive(fd, until: deadline) {
            case .success(let bytes): text += String(decoding: bytes, as: UTF8.self)
            case .failure(let end): throw TestFailure("\(end) before \(needle.debugDescription); got \(text.debugDescription)")
            }
        }
        return text
    }
}
