import EventHTTP
import Testing

// The router on its own: no sockets, only `match(method:path:)`.

/// The pattern `match` found for `method` on `path`, or "404" / "405 <Allow>".
private func matched(_ router: Router, _ path: String) -> String { matched(router, .get, path) }

/// The pattern `match` found for `method` on `path`, or "404" / "405 <Allow>".
private func matched(_ router: Router, _ method: HTTPRequest.Method, _ path: String) -> String {
    switch router.match(method: method, path: path) {
    case .found(let route, _): return route.pattern
    case .methodNotAllowed(let allowed): return "405 " + allowed.map(\.rawValue).joined(separator: ", ")
    case .notFound: return "404"
    }
}

/// The captures `match` found for `method` on `path`.
private func captures(_ router: Router, _ path: String) -> Parameters? {
    if case .found(_, let parameters) = router.match(method: .get, path: path) { return parameters }
    return nil
}

@Suite("FrontDoor router")
struct FrontDoorRouterTests {
    /// A router with one route of every kind of segment at the same depth.
    private func precedenceRouter() -> Router {
        let router = Router()
        router.get("/files/latest") { _, _ in "literal" }
        router.get("/files/{id}") { _, _ in "capture" }
        router.get("/files/{name}.zip") { _, _ in "affixed" }
        router.get("/files/*") { _, _ in "wildcard" }
        router.get("/files/**") { _, _ in "catch-all" }
        return router
    }

    @Test("a literal segment beats an affixed capture, which beats a plain capture")
    func literalBeatsCaptures() {
        let router = precedenceRouter()
        #expect(matched(router, "/files/latest") == "/files/latest")
        #expect(matched(router, "/files/report.zip") == "/files/{name}.zip")
        #expect(captures(router, "/files/report.zip")?["name"] == "report")
        #expect(matched(router, "/files/42") == "/files/{id}")
        #expect(captures(router, "/files/42")?["id"] == "42")
    }

    @Test("a capture beats `*`, and `*` beats `**`")
    func wildcardOrder() {
        let router = Router()
        router.get("/a/{id}/x") { _, _ in "capture" }
        router.get("/a/*/y") { _, _ in "wildcard" }
        router.get("/a/**") { _, _ in "catch-all" }
        #expect(matched(router, "/a/1/x") == "/a/{id}/x")
        // The capture's branch has no `y`: the router backtracks to `*`.
        #expect(matched(router, "/a/1/y") == "/a/*/y")
        // Neither branch has `z`: `**` takes the rest.
        #expect(matched(router, "/a/1/z/w") == "/a/**")
        #expect(captures(router, "/a/1/z/w")?.catchAll == "1/z/w")
    }

    @Test("`:id` captures like `{id}`")
    func colonCapture() {
        let router = Router()
        router.get("/users/:id/posts") { _, _ in "colon" }
        #expect(matched(router, "/users/7/posts") == "/users/:id/posts")
        #expect(captures(router, "/users/7/posts")?["id"] == "7")
        #expect(matched(router, "/users/7") == "404")
    }

    @Test("captures are percent-decoded per segment: %2D is '-', %2F stays inside its segment")
    func percentDecoding() {
        let router = Router()
        router.get("/models/{id}") { _, _ in "model" }
        #expect(captures(router, "/models/tiny%2D1")?["id"] == "tiny-1")
        // An encoded slash is data, not a separator: one segment, so the one-segment route matches.
        #expect(matched(router, "/models/a%2Fb") == "/models/{id}")
        #expect(captures(router, "/models/a%2Fb")?["id"] == "a/b")
        // A real slash is a separator: two segments, no route.
        #expect(matched(router, "/models/a/b") == "404")
    }

    @Test("a GET route answers HEAD")
    func headIsGet() {
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        #expect(matched(router, .head, "/health") == "/health")
    }

    @Test("a known path with another method is 405 with the allowed methods, sorted, HEAD included")
    func methodNotAllowed() {
        let router = Router()
        router.get("/items") { _, _ in "list" }
        #expect(matched(router, .post, "/items") == "405 GET, HEAD")
        router.post("/items") { _, _ in "create" }
        #expect(matched(router, .delete, "/items") == "405 GET, HEAD, POST")
    }

    @Test("an unknown path is 404")
    func notFound() {
        let router = Router()
        router.get("/items") { _, _ in "list" }
        #expect(matched(router, "/nothing") == "404")
        #expect(matched(router, "/items/1") == "404")
        #expect(matched(router, "/") == "404")
    }

    @Test("a group's routes carry its prefix; nested groups join prefixes")
    func groups() {
        let router = Router()
        let v1 = router.group("/v1")
        v1.get("/models/{id}") { _, _ in "model" }
        v1.group("admin/").post("users") { _, _ in "user" }
        #expect(matched(router, "/v1/models/x") == "/v1/models/{id}")
        #expect(matched(router, .post, "/v1/admin/users") == "/v1/admin/users")
        #expect(matched(router, "/models/x") == "404")
    }

    @Test("require(_:as:) converts a capture, and throws HTTPError 400 when it is not one")
    func typedParameters() throws {
        let router = Router()
        router.get("/page/{n}") { _, _ in "page" }
        let good = try #require(captures(router, "/page/12"))
        #expect(try good.require("n", as: Int.self) == 12)
        let bad = try #require(captures(router, "/page/twelve"))
        let error = #expect(throws: HTTPError.self) { try bad.require("n", as: Int.self) }
        #expect(error?.status == .badRequest)
        let missing = #expect(throws: HTTPError.self) { try good.require("m") }
        #expect(missing?.status == .badRequest)
    }
}
