import EventHTTP
import HTTPTypes
import Testing

// What an adopter writes: `import EventHTTP` next to `import HTTPTypes`, and swift-http-types'
// names unqualified. If EventHTTP (or a module it re-exports) declared its own `HTTPRequest`,
// `HTTPResponse` or `HTTPFields`, this file would not compile (an ambiguous type name).

@Suite("FrontDoor consumer")
struct FrontDoorConsumerTests {
    @Test("HTTPRequest, HTTPResponse and HTTPFields are swift-http-types' and work with the router")
    func namesAreUnambiguous() throws {
        let fields: HTTPFields = [.contentType: "application/json"]
        let head = HTTPRequest(method: .get, scheme: "http", authority: "example", path: "/v1/models/tiny", headerFields: fields)
        let status: HTTPResponse.Status = .ok
        let answer = HTTPResponse(status: status, headerFields: fields)
        let router = Router()
        router.get("/v1/models/{id}") { _, _ in answer.status }
        guard case .found(let route, let parameters) = router.match(method: head.method, path: head.path ?? "") else {
            Issue.record("no route for \(head.path ?? "-")")
            return
        }
        #expect(route.pattern == "/v1/models/{id}")
        #expect(try parameters.require("id") == "tiny")
        #expect(answer.headerFields[.contentType] == "application/json")
    }
}
