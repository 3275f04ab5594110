import EventHTTP
import EventHTTPSystem
import Logging
import Testing

// RequestContext.logger is made when read (issue 15): it must still carry `request_id`, and
// a logger a middleware sets (more metadata, another level) must reach the handler as set.

/// Adds `user` metadata and lowers the level to `.warning` on the context's logger.
private struct TagLogger: Middleware {
    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) async throws -> Response) async throws -> Response {
        var context = context
        context.logger[metadataKey: "user"] = "ada"
        context.logger.logLevel = .warning
        return try await next(request, context)
    }
}

@Suite("RequestContext logger")
struct RequestContextLoggerTests {
    @Test("the handler's logger carries request_id, in its metadata and on every line")
    func requestID() async throws {
        let store = LogStore()
        let logger = Logger(label: "ContextLogger") { _ in CapturingLogHandler(store: store) }
        let router = Router()
        let seen = Lock<[String]>([])
        router.get("/plain") { _, context in
            seen.withLock { $0.append("\(context.logger[metadataKey: "request_id"].map { "\($0)" } ?? "none")") }
            seen.withLock { $0.append(context.requestID) }
            context.logger.info("one")
            context.logger.info("two")
            return "plain"
        }
        try await withServer(router, logger: logger) { server in
            let reply = try await server.exchange("GET", "/plain")
            #expect(reply.status == 200)
            let id = try #require(reply.header("X-Request-Id"))
            #expect(seen.withLock { $0 } == [id, id])
            let lines = store.all.filter { $0.message == "one" || $0.message == "two" }
            #expect(lines.count == 2)
            #expect(lines.allSatisfy { $0.metadata["request_id"] == .string(id) })
        }
    }

    @Test("a logger set by middleware reaches the handler with its metadata and level, request_id kept")
    func setByMiddleware() async throws {
        let store = LogStore()
        let logger = Logger(label: "ContextLogger") { _ in CapturingLogHandler(store: store) }
        let router = Router()
        router.add(middleware: TagLogger())
        router.get("/tagged") { _, context in
            #expect(context.logger.logLevel == .warning)
            context.logger.info("filtered")
            context.logger.warning("kept")
            return "tagged"
        }
        try await withServer(router, logger: logger) { server in
            let reply = try await server.exchange("GET", "/tagged")
            #expect(reply.status == 200)
            let id = try #require(reply.header("X-Request-Id"))
            #expect(!store.all.contains { $0.message == "filtered" })
            let kept = try #require(store.all.first { $0.message == "kept" })
            #expect(kept.metadata["request_id"] == .string(id))
            #expect(kept.metadata["user"] == .string("ada"))
        }
    }
}
