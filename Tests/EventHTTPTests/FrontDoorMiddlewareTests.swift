import EventHTTP
import EventHTTPSystem
import Logging
import Metrics
import Testing

// Middleware over real loopback requests: order, the request logger, metrics.

@Suite("FrontDoor middleware")
struct FrontDoorMiddlewareTests {
    @Test("router-level middleware runs outside group-level middleware, in the order added")
    func order() async throws {
        let trace = Lock<[String]>([])
        let router = Router()
        router.add(middleware: TraceMiddleware(name: "router1", trace: trace))
        router.add(middleware: TraceMiddleware(name: "router2", trace: trace))
        let api = router.group("/api").add(middleware: TraceMiddleware(name: "group1", trace: trace))
            .add(middleware: TraceMiddleware(name: "group2", trace: trace))
        api.get("/thing") { _, _ in
            trace.withLock { $0.append("handler") }
            return "thing"
        }
        router.get("/plain") { _, _ in "plain" }
        try await withServer(router) { server in
            let reply = try await server.exchange("GET", "/api/thing")
            #expect(reply.status == 200)
            #expect(trace.withLock { $0 } == ["router1>", "router2>", "group1>", "group2>", "handler", "<group2", "<group1",
                                             "<router2", "<router1"])
            trace.withLock { $0 = [] }
            // A route outside the group: only the router's middleware.
            _ = try await server.exchange("GET", "/plain")
            #expect(trace.withLock { $0 } == ["router1>", "router2>", "<router2", "<router1"])
            trace.withLock { $0 = [] }
            // A 404 still passes through the router's middleware (which sees the error, not a response).
            let missing = try await server.exchange("GET", "/api/none")
            #expect(missing.status == 404)
            #expect(trace.withLock { $0 } == ["router1>", "router2>"])
        }
    }

    @Test("RequestLoggerMiddleware logs the answer with request_id metadata equal to X-Request-Id")
    func requestLogger() async throws {
        let store = LogStore()
        let logger = Logger(label: "FrontDoorLog") { _ in CapturingLogHandler(store: store) }
        let router = Router()
        router.add(middleware: RequestLoggerMiddleware(level: .notice))
        router.get("/logged/{id}") { _, context in
            context.logger.info("inside handler")
            return "logged"
        }
        try await withServer(router, logger: logger) { server in
            let reply = try await server.exchange("GET", "/logged/5")
            #expect(reply.status == 200)
            let id = try #require(reply.header("X-Request-Id"))
            let answered = try #require(store.all.first { $0.message == "answered" })
            #expect(answered.level == .notice)
            #expect(answered.metadata["request_id"] == .string(id))
            #expect(answered.metadata["status"] == .string("200"))
            #expect(answered.metadata["path"] == .string("/logged/5"))
            // The handler's own lines carry the id as well.
            let inside = try #require(store.all.first { $0.message == "inside handler" })
            #expect(inside.metadata["request_id"] == .string(id))

            let missing = try await server.exchange("GET", "/nothing")
            let missingID = try #require(missing.header("X-Request-Id"))
            let failed = try #require(store.all.first { $0.message == "failed" })
            #expect(failed.metadata["request_id"] == .string(missingID))
            #expect(failed.metadata["status"] == .string("404"))
        }
    }

    @Test("MetricsMiddleware records the duration timer and the request counter with method, route and status")
    func metrics() async throws {
        // No MetricsSystem.bootstrap (once per process): swift-metrics' task-local factory,
        // bound by an outer middleware around MetricsMiddleware, in the handler's own Task.
        let factory = CapturingMetricsFactory()
        let router = Router()
        router.add(middleware: MetricsFactoryMiddleware(factory: factory))
        router.add(middleware: MetricsMiddleware())
        router.get("/models/{id}") { _, _ in "model" }
        router.get("/gone") { _, _ -> String in throw HTTPError(.gone) }
        try await withServer(router) { server in
            let found = try await server.exchange("GET", "/models/x")
            #expect(found.status == 200)
            let gone = try await server.exchange("GET", "/gone")
            #expect(gone.status == 410)
        }
        let timers = factory.metrics.filter { $0.label == "http_server_request_duration" }
        let counters = factory.metrics.filter { $0.label == "http_server_requests_total" }
        let ok = try #require(timers.first { $0.dimension("http_response_status_code") == "200" })
        #expect(ok.dimension("http_request_method") == "GET")
        #expect(ok.dimension("http_route") == "/models/{id}")
        #expect(ok.recorded.count == 1 && ok.recorded[0] >= 0)
        let gone = try #require(counters.first { $0.dimension("http_response_status_code") == "410" })
        #expect(gone.dimension("http_route") == "/gone")
        #expect(gone.recorded == [1])
        #expect(counters.count == 2)
    }
}
