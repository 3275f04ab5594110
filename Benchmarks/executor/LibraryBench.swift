// The library's per-request paths, one operation at a time, through EventHTTP's public API:
//
//     swift run -c release executor-bench --scenario routing[,body,async,...|all] [--ops N] [--repeats 5]
//
// Each scenario is one row: its operation, `ops` times, best of `repeats` runs. With
// `--repeats 1` the process does (startup) + ops operations and nothing else, so two runs at N
// and 2N ops under valgrind give the per-operation instructions and allocations as their
// difference divided by N (Benchmarks/micro-cost.py).
import Dispatch
import Foundation
import EventHTTP

/// One library scenario: a name for `--scenario`, a label for the table, a default count, and
/// its body, which does `ops` operations and returns once they have all ended.
struct LibraryScenario: Sendable {
    let name: String
    let label: String
    let defaultOps: Int
    /// Set up once per process (outside the timed runs); returns the timed body.
    let prepare: @Sendable (BenchContext) throws -> @Sendable (Int) -> Void
}

/// What the scenarios share: the loop (started only if a scenario needs it).
final class BenchContext: Sendable {
    private let loopBox = LoopBox()
    var loop: BenchLoop {
        get throws { try loopBox.get() }
    }
    func stop() { loopBox.stopIfStarted() }
}

/// Starts the loop thread on first use.
final class LoopBox: @unchecked Sendable {
    // @unchecked Sendable: `loop` is read and written under `lock`.
    private let lock = NSLock()
    private var loop: BenchLoop?

    func get() throws -> BenchLoop {
        lock.lock()
        defer { lock.unlock() }
        if let loop { return loop }
        let started = try BenchLoop.start()
        loop = started
        return started
    }

    func stopIfStarted() {
        lock.lock()
        let started = loop
        loop = nil
        lock.unlock()
        started?.stop()
    }
}

enum LibraryBench {
    static let scenarios: [LibraryScenario] = [
        LibraryScenario(name: "routing", label: "routing: Router.match, mix of 13 requests",
                        defaultOps: 1_000_000, prepare: { _ in routing(RoutingMix.requests) }),
        LibraryScenario(name: "routing-static", label: "routing: GET /v1/models (literals)",
                        defaultOps: 1_000_000, prepare: { _ in routing([(.get, "/v1/models")]) }),
        LibraryScenario(name: "routing-params", label: "routing: GET /users/42/posts/7 (2 captures)",
                        defaultOps: 1_000_000, prepare: { _ in routing([(.get, "/users/42/posts/7")]) }),
        LibraryScenario(name: "body", label: "body: decode(as:) + text, 101-byte JSON",
                        defaultOps: 200_000, prepare: { _ in body(decoder: nil) }),
        LibraryScenario(name: "body-shared-decoder", label: "body: same, one JSONDecoder reused",
                        defaultOps: 200_000, prepare: { _ in body(decoder: JSONDecoder()) }),
        LibraryScenario(name: "async", label: "async answer: Request + Task on the loop",
                        defaultOps: 200_000, prepare: { context in try asyncAnswer(context.loop, bare: false) }),
        LibraryScenario(name: "async-task", label: "async: bare Task on the loop (the hop)",
                        defaultOps: 200_000, prepare: { context in try asyncAnswer(context.loop, bare: true) }),
        LibraryScenario(name: "async-server", label: "async route, live server, 1 keep-alive conn",
                        defaultOps: 50_000, prepare: { _ in try asyncServer() }),
    ]

    static func run(names: String, ops: Int?, repeats: Int) throws {
        var selected: [LibraryScenario] = []
        for name in names.split(separator: ",").map(String.init) {
            if name == "all" {
                selected += scenarios
            } else if let scenario = scenarios.first(where: { $0.name == name }) {
                selected.append(scenario)
            } else {
                let known = (scenarios.map(\.name) + ["all"]).joined(separator: ", ")
                FileHandle.standardError.write(Data("executor-bench: unknown scenario \(name); known: \(known)\n".utf8))
                exit(2)
            }
        }
        let opsText = ops.map { "\($0) ops" } ?? "default ops"
        print("executor-bench: \(selected.map(\.name).joined(separator: ", ")); \(opsText), best of \(repeats); \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        print("")
        print(pad("scenario", 48) + pad("throughput", 22) + "ops")
        let context = BenchContext()
        for scenario in selected {
            let count = ops ?? scenario.defaultOps
            let body = try scenario.prepare(context)
            let rate = best(repeats, count) { body(count) }
            print(pad(scenario.label, 48) + pad("\(millions(rate)) M/s (\(Int((1e9 / rate).rounded())) ns)", 22) + "\(count)")
        }
        context.stop()
    }
}

// MARK: Routing

/// A realistic router: 20 routes (literals, captures, a capture inside a segment, `*`, `**`, a
/// group with a prefix and middleware), and the requests the mix resolves.
enum RoutingMix {
    static func router() -> Router {
        let router = Router()
        router.get("/") { _, _ in "root" }
        router.get("/healthz") { _, _ in "ok" }
        router.get("/metrics") { _, _ in "" }
        router.get("/v1/models") { _, _ in "[]" }
        router.get("/v1/models/{id}") { _, context in context.parameters["id"] ?? "" }
        router.delete("/v1/models/{id}") { _, _ in HTTPResponse.Status.noContent }
        router.post("/v1/chat/completions") { _, _ in "{}" }
        router.post("/v1/completions") { _, _ in "{}" }
        router.get("/v1/files/{name}.zip") { _, context in context.parameters["name"] ?? "" }
        router.get("/users/{id}") { _, _ in "user" }
        router.get("/users/{id}/posts") { _, _ in "posts" }
        router.get("/users/{id}/posts/{post}") { _, _ in "post" }
        router.put("/users/{id}/posts/{post}") { _, _ in "post" }
        router.get("/static/**") { _, context in context.parameters.catchAll ?? "" }
        router.get("/debug/*/vars") { _, _ in "vars" }
        let api = router.group("/api/v2").add(middleware: PassThrough())
        api.get("orders") { _, _ in "[]" }
        api.post("orders") { _, _ in HTTPResponse.Status.created }
        api.get("orders/{id}") { _, _ in "order" }
        api.patch("orders/{id}") { _, _ in "order" }
        api.get("orders/{id}/items/{item}") { _, _ in "item" }
        router.freeze()
        return router
    }

    /// The mix: mostly hits, one of each miss (`404`, `405`), one percent-escape.
    static let requests: [(HTTPRequest.Method, String)] = [
        (.get, "/"),
        (.get, "/healthz"),
        (.get, "/v1/models"),
        (.get, "/v1/models/tiny%2D1"),
        (.post, "/v1/chat/completions"),
        (.get, "/v1/files/weights.zip"),
        (.get, "/users/42/posts/7"),
        (.get, "/static/css/site.css"),
        (.get, "/api/v2/orders/1234"),
        (.get, "/api/v2/orders/1234/items/5"),
        (.head, "/metrics"),
        (.get, "/nothing/here"),
        (.post, "/healthz"),
    ]
}

/// Group middleware that only forwards: routing cost does not depend on what it does.
struct PassThrough: Middleware {
    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) async throws -> Response) async throws -> Response {
        try await next(request, context)
    }
}

/// Resolves `requests` in turn, as `EventHTTPLoop.handle` does per request: `match(method:path:)`
/// with the undecoded path; the captures are read as a handler would.
func routing(_ requests: [(HTTPRequest.Method, String)]) -> @Sendable (Int) -> Void {
    let router = RoutingMix.router()
    return { ops in
        var found = 0
        var captured = 0
        var index = 0
        for _ in 0..<ops {
            let (method, path) = requests[index]
            index = index + 1 == requests.count ? 0 : index + 1
            switch router.match(method: method, path: path) {
            case .found(let route, let parameters):
                found += route.pattern.utf8.count > 0 ? 1 : 0
                captured += parameters.all.count
            case .methodNotAllowed(let allowed):
                captured += allowed.count
            case .notFound:
                break
            }
        }
        // Use the results, so that the optimiser keeps the matches.
        blackHole(found &+ captured)
    }
}

// MARK: Body

/// A chat-completions request, as a handler decodes it.
struct CompletionRequest: Codable, Sendable {
    let model: String
    let prompt: String
    let maxTokens: Int
    let stream: Bool
    let temperature: Double

    enum CodingKeys: String, CodingKey {
        case model, prompt, stream, temperature
        case maxTokens = "max_tokens"
    }
}

let completionJSON = #"{"model":"tiny-1","prompt":"Say hello to the world","max_tokens":64,"stream":false,"temperature":0.7}"#

/// Per operation: a `RequestBody` over the request's bytes (as the server builds it), the JSON
/// decoded into a small `Codable` struct with `decode(as:)`, and the body read as `text`.
/// `decoder` nil: `decode(as:)`'s default, a new `JSONDecoder` per call.
func body(decoder: JSONDecoder?) -> @Sendable (Int) -> Void {
    let bytes = Array(completionJSON.utf8)
    precondition(bytes.count == 101, "body scenario: the label says 101 bytes")
    let shared = decoder
    return { ops in
        var tokens = 0
        var length = 0
        do {
            for _ in 0..<ops {
                let body = RequestBody(bytes: bytes)
                let value: CompletionRequest = if let shared {
                    try body.decode(as: CompletionRequest.self, using: shared)
                } else {
                    try body.decode(as: CompletionRequest.self)
                }
                tokens &+= value.maxTokens
                length &+= body.text.utf8.count
            }
        } catch {
            fatalError("body scenario: \(error)")
        }
        precondition(ops == 0 || tokens == 64 * ops && length == 101 * ops)
        blackHole(tokens &+ length)
    }
}

// MARK: Async answer

/// The per-request async hop, as `AsyncRequestRunner.run` makes it: on the loop thread, a
/// `Task(executorPreference: executor)` per request, whose handler answers at once. `Request`
/// is built as `EventHTTPLoop` builds it (an `HTTPRequest` with the header fields, path, query,
/// body, id); the handler returns a `Response`, whose header fields are then listed for the
/// transport, as `EventHTTPLoop.send` does. 16 requests in flight (16 keep-alive connections);
/// each one's end starts the next. `bare`: the Task alone, nothing built or answered.
///
/// The rest of the server's path needs a live connection (`LoopRequest`, `AsyncRequest`,
/// `RequestContext` have no public initialiser), so it is not here: the request's abort
/// watch, the runner's table of running Tasks, the logger copy, and evhttp's answer.
func asyncAnswer(_ loop: BenchLoop, bare: Bool) -> @Sendable (Int) -> Void {
    let executor = loop.executor
    let handler: @Sendable (Request) async throws -> Response = { request in
        Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: ResponseBody(string: request.path == "/" ? "hello\n" : "other\n"))
    }
    return { ops in
        guard ops > 0 else { return }
        let done = DispatchSemaphore(value: 0)
        let state = AsyncState(ops: ops, executor: executor, handler: handler, bare: bare, done: done)
        executor.execute {
            for _ in 0..<min(16, ops) { state.startOne() }
        }
        done.wait()
        precondition(state.answered == ops)
        blackHole(state.bytes)
    }
}

/// The async scenario's counters: touched on the loop thread only (the Tasks prefer the loop
/// and have no `await` on another executor).
final class AsyncState: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched on the loop thread only (checked).
    let ops: Int
    let executor: LoopExecutor
    let handler: @Sendable (Request) async throws -> Response
    let bare: Bool
    let done: DispatchSemaphore
    var started = 0
    var answered = 0
    var bytes = 0

    init(ops: Int, executor: LoopExecutor, handler: @escaping @Sendable (Request) async throws -> Response, bare: Bool,
         done: DispatchSemaphore) {
        self.ops = ops
        self.executor = executor
        self.handler = handler
        self.bare = bare
        self.done = done
    }

    func startOne() {
        executor.thread.preconditionOnThread()
        guard started < ops else { return }
        started += 1
        if bare {
            Task(executorPreference: executor) { self.ended(0) }
            return
        }
        var fields = HTTPFields()
        fields.append(HTTPField(name: HTTPField.Name("Host")!, value: "127.0.0.1:8080"))
        fields.append(HTTPField(name: HTTPField.Name("User-Agent")!, value: "bench/1.0"))
        fields.append(HTTPField(name: HTTPField.Name("Accept")!, value: "*/*"))
        let head = HTTPRequest(method: .get, scheme: nil, authority: "127.0.0.1:8080", path: "/?delay=0s", headerFields: fields)
        let request = Request(head: head, path: "/", query: "delay=0s", body: RequestBody(bytes: []), id: "bench-\(started)")
        Task(executorPreference: executor) {
            let size: Int
            do {
                let answer = try await self.handler(request)
                let headers = answer.headers.map { ($0.name.rawName, $0.value) }
                size = headers.count + answer.status.code
            } catch {
                fatalError("async scenario: \(error)")
            }
            self.ended(size)
        }
    }

    private func ended(_ size: Int) {
        executor.thread.preconditionOnThread()
        answered += 1
        bytes &+= size
        if answered == ops { done.signal() } else { startOne() }
    }
}

/// Keeps `value` alive to the optimiser.
@inline(never)
func blackHole(_ value: Int) {
    if value == .min { print("") }
}

// MARK: Async answer through a live server

/// The whole async route over loopback, for comparison with the in-process hop: an
/// `EventHTTPServer` with one loop on 127.0.0.1 (a free port) and `GET /` answered by an async
/// handler at once; this thread is the client, one keep-alive connection, one request at a time.
/// An operation is a request written and its response read: evhttp's parsing and answer, the
/// request's abort watch, `Request` and `RequestContext`, the handler's Task, and this client's
/// two system calls and its reading of the response (a few hundred instructions of the total).
func asyncServer() throws -> @Sendable (Int) -> Void {
    let router = Router()
    router.get("/") { _, _ in "hello\n" }
    let running = DispatchSemaphore(value: 0)
    let bound = BoundPort()
    let server = EventHTTPServer(configuration: .init(host: "127.0.0.1", port: 0, loops: 1), router: router) { addresses in
        bound.set(addresses.first?.port ?? 0)
        running.signal()
    }
    Task.detached {
        do {
            try await server.run()
        } catch {
            fatalError("async-server scenario: \(error)")
        }
    }
    running.wait()
    let client = try KeepAliveClient(port: bound.get())
    return { ops in
        var bytes = 0
        for _ in 0..<ops { bytes &+= client.get() }
        precondition(ops == 0 || bytes > 0)
        blackHole(bytes)
    }
}

/// The port `onServerRunning` reported.
final class BoundPort: @unchecked Sendable {
    // @unchecked Sendable: written once before a semaphore's signal, read after its wait.
    private var port: UInt16 = 0
    func set(_ value: UInt16) { port = value }
    func get() -> UInt16 { port }
}

/// A blocking HTTP/1.1 client on one keep-alive connection: `GET /`, then the response's head
/// and its `Content-Length` body.
final class KeepAliveClient: @unchecked Sendable {
    // @unchecked Sendable: used by one thread at a time (a scenario's runs follow each other).
    private let fd: Int32
    private let request = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    private var pending: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 4096)

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(port: UInt16) throws {
        #if canImport(Glibc)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw Failure(description: "connect to 127.0.0.1:\(port): errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// One request and its response; returns the response's size.
    func get() -> Int {
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        precondition(sent == request.count, "async-server scenario: send failed (errno \(errno))")
        while true {
            if let size = responseSize() {
                pending.removeFirst(size)
                return size
            }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            precondition(count > 0, "async-server scenario: the server closed the connection (errno \(errno))")
            pending.append(contentsOf: chunk[..<count])
        }
    }

    /// The size of the whole response at the front of `pending`, once it is all there. Reads
    /// bytes, not strings: the client allocates nothing per response once its buffers have grown.
    private func responseSize() -> Int? {
        pending.withUnsafeBufferPointer { bytes -> Int? in
            guard bytes.count >= 4 else { return nil }
            var headEnd: Int?
            for index in 3..<bytes.count
            where bytes[index] == 10 && bytes[index - 1] == 13 && bytes[index - 2] == 10 && bytes[index - 3] == 13 {
                headEnd = index + 1
                break
            }
            guard let headEnd else { return nil }
            precondition(bytes.starts(with: Self.ok), "async-server scenario: unexpected response \(String(decoding: bytes[..<headEnd], as: UTF8.self))")
            var length = 0
            let name = Self.contentLength
            var index = 0
            while index + name.count < headEnd {
                if zip(name, bytes[index..<(index + name.count)]).allSatisfy({ $0 == $1 | 0x20 || $0 == $1 }) {
                    var digit = index + name.count
                    while bytes[digit] == 32 { digit += 1 }
                    while bytes[digit] >= 48 && bytes[digit] <= 57 {
                        length = length * 10 + Int(bytes[digit] - 48)
                        digit += 1
                    }
                    break
                }
                index += 1
            }
            let total = headEnd + length
            return bytes.count >= total ? total : nil
        }
    }

    private static let ok = Array("HTTP/1.1 200".utf8)
    private static let contentLength = Array("content-length:".utf8)
}
