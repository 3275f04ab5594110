import EventHTTP
import Foundation
import Testing

// Request bodies and error answers, over real loopback connections to an EventHTTPServer.

private struct Order: Codable, Sendable, ResponseEncodable {
    let item: String
    let quantity: Int
}

@Suite("FrontDoor bodies and errors")
struct FrontDoorBodyTests {
    /// A router with a JSON route, a chunk-counting route, a conflict and a plain failure.
    private func router() -> Router {
        let router = Router()
        router.post("/orders") { request, _ in
            let order = try request.body.decode(as: Order.self)
            return Order(item: order.item.uppercased(), quantity: order.quantity * 2)
        }
        router.post("/chunks") { request, _ in
            var chunks = 0
            var total = 0
            for await chunk in request.body {
                chunks += 1
                total += chunk.count
            }
            return "\(chunks) \(total)"
        }
        router.put("/orders/{id}") { _, context -> String in
            throw HTTPError(.conflict, message: "order \(try context.parameters.require("id")) changed meanwhile", kind: "conflict")
        }
        router.get("/broken") { _, _ -> String in
            struct Broken: Error {}
            throw Broken()
        }
        return router
    }

    private var configuration: EventHTTPServer.Configuration {
        var configuration = EventHTTPServer.Configuration.frontDoorTest
        configuration.errorRenderer = jsonErrorRenderer
        configuration.maxBodyBytes = 64 * 1024
        return configuration
    }

    @Test("a JSON body is decoded with request.body.decode(as:)")
    func jsonBody() async throws {
        try await withServer(router(), configuration: configuration) { server in
            let reply = try await server.exchange("POST", "/orders", headers: ["Content-Type: application/json"],
                                                  body: #"{"item":"tea","quantity":3}"#)
            #expect(reply.status == 200)
            #expect(reply.header("Content-Type") == "application/json")
            let order = try JSONDecoder().decode(Order.self, from: Data(reply.bodyBytes))
            #expect(order.item == "TEA" && order.quantity == 6)
        }
    }

    @Test("malformed JSON is 400, through the renderer")
    func malformedJSON() async throws {
        try await withServer(router(), configuration: configuration) { server in
            let reply = try await server.exchange("POST", "/orders", body: #"{"item": "tea", "quantity": "#)
            #expect(reply.status == 400)
            #expect(reply.header("Content-Type") == "application/json")
            #expect(reply.body.contains("invalid JSON body"))
            #expect(reply.body.contains(#""origin":"handler""#))
        }
    }

    @Test("a body over maxBodyBytes is 413 in the renderer's shape, with X-Request-Id, and no handler runs")
    func bodyTooLarge() async throws {
        let ran = Probe()
        let router = router()
        router.post("/upload") { _, _ in
            ran.record("handler")
            return "stored"
        }
        try await withServer(router, configuration: configuration) { server in
            let reply = try await server.exchange("POST", "/upload", body: String(repeating: "x", count: 64 * 1024 + 1))
            #expect(reply.status == 413)
            // evhttp's canned page, rewritten by the transport with the renderer's output.
            #expect(reply.header("Content-Type") == "application/json")
            #expect(reply.body.hasPrefix(#"{"error":{"#))
            #expect(reply.body.contains(#""status":413"#))
            #expect(reply.body.contains(#""origin":"transport""#))
            let id = try #require(reply.header("X-Request-Id"))
            #expect(reply.body.contains(#""request_id":"\#(id)""#))
            #expect(!reply.body.contains("<html"))
            #expect(ran.count("handler") == 0)
        }
    }

    @Test("the body is an AsyncSequence of chunks of at most RequestBody.chunkSize")
    func bodyAsAsyncSequence() async throws {
        try await withServer(router(), configuration: configuration) { server in
            let size = RequestBody.chunkSize * 2 + 5
            let reply = try await server.exchange("POST", "/chunks", body: String(repeating: "a", count: size))
            #expect(reply.status == 200)
            #expect(reply.body == "3 \(size)")
        }
    }

    @Test("a handler throwing HTTPError(.conflict) answers 409 with the renderer's body")
    func httpErrorStatus() async throws {
        try await withServer(router(), configuration: configuration) { server in
            let reply = try await server.exchange("PUT", "/orders/17", body: "{}")
            #expect(reply.status == 409)
            #expect(reply.header("Content-Type") == "application/json")
            #expect(reply.body.contains(#""message":"order 17 changed meanwhile""#))
            #expect(reply.body.contains(#""kind":"conflict""#))
            let id = try #require(reply.header("X-Request-Id"))
            #expect(reply.body.contains(id))
        }
    }

    @Test("a plain error goes through mapError: the default is 500")
    func plainErrorIs500() async throws {
        try await withServer(router(), configuration: configuration) { server in
            let reply = try await server.exchange("GET", "/broken")
            #expect(reply.status == 500)
            #expect(reply.body.contains(#""message":"internal server error""#))
        }
    }

    @Test("a plain error goes through a custom mapError")
    func customMapError() async throws {
        var configuration = configuration
        configuration.mapError = { error in HTTPError(.badGateway, message: "upstream: \(type(of: error))") }
        try await withServer(router(), configuration: configuration) { server in
            let reply = try await server.exchange("GET", "/broken")
            #expect(reply.status == 502)
            #expect(reply.body.contains(#""message":"upstream: Broken""#))
        }
    }

    @Test("the router's 404 and 405 go through the renderer; 405 carries Allow")
    func routerErrorsRendered() async throws {
        try await withServer(router(), configuration: configuration) { server in
            let missing = try await server.exchange("GET", "/nowhere")
            #expect(missing.status == 404)
            #expect(missing.header("Content-Type") == "application/json")
            #expect(missing.body.contains(#""origin":"router""#))
            let wrong = try await server.exchange("DELETE", "/orders")
            #expect(wrong.status == 405)
            #expect(wrong.header("Allow") == "POST")
            #expect(wrong.body.contains(#""status":405"#))
        }
    }
}
