import EventHTTP
import EventHTTPSystem
import Testing

// The Request an async handler gets (issue 15: its head is built from one pass over the
// headers): every field in the order received with its name as sent, the Host's value as the
// authority, the target as the path.

@Suite("Request head")
struct RequestHeadTests {
    @Test("fields in order, names as sent; authority is the Host; path is the target")
    func head() async throws {
        let seen = Lock<[String]>([])
        let router = Router()
        router.get("/head/{id}") { request, _ in
            var lines = request.head.headerFields.map { "\($0.name.rawName): \($0.value)" }
            lines.append("authority \(request.head.authority ?? "nil")")
            lines.append("path \(request.head.path ?? "nil")")
            lines.append("scheme \(request.head.scheme ?? "nil")")
            seen.withLock { $0 = lines }
            return "ok"
        }
        try await withServer(router) { server in
            let reply = try await server.exchange("GET", "/head/1?x=2", headers: ["x-Lower: a", "X-Twice: 1", "X-Twice: 2"])
            #expect(reply.status == 200)
            #expect(seen.withLock { $0 } == [
                "Host: test", "Connection: close", "x-Lower: a", "X-Twice: 1", "X-Twice: 2",
                "authority test", "path /head/1?x=2", "scheme nil",
            ])
        }
    }
}
