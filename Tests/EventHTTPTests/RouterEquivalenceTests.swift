import EventHTTP
import GreetdClient
import Testing

// Router.match compares bytes where it can (issue 15); these tests hold it to the answers of the
// String-based router it replaced, kept here as `ReferenceRouter`, on paths that probe where
// bytes and Characters differ: non-ASCII text (canonical equivalence: "\u{212A}" == "K",
// "café" == "cafe\u{301}"), a combining mark after `/`, CR LF, escapes good and bad.

/// The router as it was before byte matching: the path split as Characters, each segment
/// percent-decoded to a String, a trie keyed by String.
private final class ReferenceRouter {
    enum Segment {
        case literal(String)
        case capture(prefix: String, name: String, suffix: String)
        case wildcard
        case catchAll
    }

    final class Node {
        var literals: [String: Node] = [:]
        var captures: [(prefix: String, name: String, suffix: String, node: Node)] = []
        var wildcard: Node?
        var catchAll: Node?
        var methods: [(method: HTTPRequest.Method, pattern: String)] = []

        func insert(_ segments: ArraySlice<Segment>, method: HTTPRequest.Method, pattern: String) {
            guard let first = segments.first else {
                methods.removeAll { $0.method == method }
                methods.append((method, pattern))
                return
            }
            let rest = segments.dropFirst()
            switch first {
            case .literal(let text):
                let node = literals[text] ?? Node()
                literals[text] = node
                node.insert(rest, method: method, pattern: pattern)
            case .capture(let prefix, let name, let suffix):
                if let existing = captures.first(where: { $0.prefix == prefix && $0.name == name && $0.suffix == suffix }) {
                    existing.node.insert(rest, method: method, pattern: pattern)
                } else {
                    let node = Node()
                    captures.append((prefix, name, suffix, node))
                    captures.sort { ($0.prefix.count + $0.suffix.count) > ($1.prefix.count + $1.suffix.count) }
                    node.insert(rest, method: method, pattern: pattern)
                }
            case .wildcard:
                let node = wildcard ?? Node()
                wildcard = node
                node.insert(rest, method: method, pattern: pattern)
            case .catchAll:
                let node = catchAll ?? Node()
                catchAll = node
                node.insert([][...], method: method, pattern: pattern)
            }
        }

        func find(_ segments: ArraySlice<String>, _ parameters: inout [(String, String)]) -> Node? {
            guard let segment = segments.first else {
                if !methods.isEmpty { return self }
                if let catchAll, !catchAll.methods.isEmpty {
                    parameters.append(("**", ""))
                    return catchAll
                }
                return nil
            }
            let rest = segments.dropFirst()
            if let node = literals[segment], let found = node.find(rest, &parameters) { return found }
            for capture in captures where segment.count >= capture.prefix.count + capture.suffix.count + 1
                && segment.hasPrefix(capture.prefix) && segment.hasSuffix(capture.suffix) {
                let value = String(segment.dropFirst(capture.prefix.count).dropLast(capture.suffix.count))
                let saved = parameters
                parameters.append((capture.name, value))
                if let found = capture.node.find(rest, &parameters) { return found }
                parameters = saved
            }
            if let wildcard, let found = wildcard.find(rest, &parameters) { return found }
            if let catchAll, !catchAll.methods.isEmpty {
                parameters.append(("**", segments.joined(separator: "/")))
                return catchAll
            }
            return nil
        }
    }

    let root = Node()

    func add(_ method: HTTPRequest.Method, _ path: String) {
        let pattern = "/" + path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: true).map { part -> Segment in
            if part == "**" { return .catchAll }
            if part == "*" { return .wildcard }
            if part.hasPrefix(":") { return .capture(prefix: "", name: String(part.dropFirst()), suffix: "") }
            if let open = part.firstIndex(of: "{"), let close = part[open...].firstIndex(of: "}") {
                return .capture(prefix: String(part[..<open]), name: String(part[part.index(after: open)..<close]),
                                suffix: String(part[part.index(after: close)...]))
            }
            return .literal(Self.decode(part) ?? String(part))
        }
        root.insert(segments[...], method: method, pattern: pattern)
    }

    /// The answer, in `describe`'s words.
    func match(_ method: HTTPRequest.Method, _ path: String) -> String {
        var segments: [String] = []
        if path != "/" {
            for raw in path.split(separator: "/", omittingEmptySubsequences: true) {
                guard let decoded = Self.decode(raw) else { return "404" }
                segments.append(decoded)
            }
        }
        var parameters: [(String, String)] = []
        guard let node = root.find(segments[...], &parameters) else { return "404" }
        if let entry = node.methods.first(where: { $0.method == method }) { return describe(entry.pattern, parameters) }
        if method == .head, let entry = node.methods.first(where: { $0.method == .get }) {
            return describe(entry.pattern, parameters)
        }
        var allowed = Set(node.methods.map(\.method))
        if allowed.contains(.get) { allowed.insert(.head) }
        return "405 " + allowed.sorted { $0.rawValue < $1.rawValue }.map(\.rawValue).joined(separator: ",")
    }

    static func decode(_ text: Substring) -> String? {
        let utf8 = text.utf8
        guard utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        var bytes: [UInt8] = []
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let first = utf8.index(after: index)
                guard first != utf8.endIndex else { return nil }
                let second = utf8.index(after: first)
                guard second != utf8.endIndex, let high = hex(utf8[first]), let low = hex(utf8[second]) else { return nil }
                bytes.append(high << 4 | low)
                index = utf8.index(after: second)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A found route and its captures, the captures as UTF-8 bytes (so that canonically equivalent
/// but different text tells apart).
private func describe(_ pattern: String, _ parameters: [(String, String)]) -> String {
    let captures = parameters.map { name, value in "\(name)=\(Array(value.utf8))" }
    return "\(Array(pattern.utf8)) \(captures.joined(separator: " "))"
}

private func answer(_ router: Router, _ method: HTTPRequest.Method, _ path: String) -> String {
    switch router.match(method: method, path: path) {
    case .found(let route, let parameters): return describe(route.pattern, parameters.all)
    case .methodNotAllowed(let allowed): return "405 " + allowed.map(\.rawValue).joined(separator: ",")
    case .notFound: return "404"
    }
}

@Suite("Router matches as the String-based router did")
struct RouterEquivalenceTests {
    static let routes: [(HTTPRequest.Method, String)] = [
        (.get, "/"), (.get, "/healthz"), (.post, "/healthz"), (.get, "/v1/models"), (.get, "/v1/models/{id}"),
        (.delete, "/v1/models/{id}"), (.get, "/v1/files/{name}.zip"), (.get, "/v1/files/v{n}"),
        (.get, "/users/{id}/posts/{post}"), (.put, "/users/{id}/posts/{post}"), (.get, "/users/:id"),
        (.get, "/static/**"), (.get, "/debug/*/vars"), (.get, "/debug/*"), (.get, "/any/**"),
        // Non-ASCII literals and affixes; canonically equivalent spellings; CR from an escape.
        (.get, "/café/menu"), (.get, "/K/kelvin"), (.get, "/\u{212A}/sign"), (.get, "/names/{n}é"),
        (.get, "/names/é{n}"), (.get, "/cr/a%0D"), (.get, "/cr/{x}\r"), (.get, "/slash/a%2Fb"),
        (.get, "/ohm/\u{212A}"), (.get, "/crlf/{x}\n"), (.get, "/crlf/\r{x}"),
        (.get, "/files/latest"), (.get, "/files/{id}"), (.get, "/files/{name}.zip"), (.get, "/files/*"),
        (.get, "/files/**"),
        // More literals at one node than a scan handles: the hash table.
        (.get, "/many/alpha"), (.get, "/many/beta"), (.get, "/many/gamma"), (.get, "/many/delta"),
        (.get, "/many/epsilon"), (.get, "/many/zeta"), (.get, "/many/eta"), (.get, "/many/theta"),
        (.get, "/many/iota"), (.get, "/many/kappa"), (.get, "/many/lambda"), (.get, "/many/mu"),
        (.get, "/many/{other}"), (.post, "/many/alpha"),
    ]

    static let pieces: [String] = [
        "", "a", "b", "K", "\u{212A}", "café", "cafe\u{301}", "caf%C3%A9", "cafe%CC%81", "%2F", "%2D", "%", "%z", "%zz",
        "%FF", "%C3", "x.zip", "é.zip", ".zip", "\r", "%0D", "%0D%0A", "a%0D", "a\r", "\r\n", "\n", "files", "latest",
        "users", "42", "posts", "7", "\u{301}", "%CC%81", "v1", "models", "tiny%2D1", "static", "css", "debug", "vars",
        "any", "names", "bobé", "ébob", "bob", "e\u{301}", "cr", "slash", "a%2Fb", "many", "alpha", "kappa", "mu", "nu",
        "healthz", "menu", "kelvin", "sign", "v2", "v", "%7E", "%2e%2E", "🙂", "%F0%9F%99%82", "é", "ohm", "crlf", "%0A", "a%0A", "%0Ab",
    ]

    static let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete]

    private func routers() -> (Router, ReferenceRouter) {
        let router = Router()
        let reference = ReferenceRouter()
        for (method, path) in Self.routes {
            router.on(method, path) { _, _ in "" }
            reference.add(method, path)
        }
        router.freeze()
        return (router, reference)
    }

    @Test("hand-picked paths")
    func handPicked() {
        let (router, reference) = routers()
        let paths = [
            "/", "", "//", "/healthz", "/healthz/", "//healthz//", "/v1/models/tiny%2D1", "/v1/files/weights.zip",
            "/v1/files/.zip", "/v1/files/v", "/v1/files/v2", "/users/42/posts/7", "/users/42", "/static/css//site.css/",
            "/static", "/debug/x/vars", "/debug/x", "/café/menu", "/cafe\u{301}/menu", "/caf%C3%A9/menu", "/K/kelvin",
            "/\u{212A}/kelvin", "/K/sign", "/%E2%84%AA/sign", "/names/bobé", "/names/bobe\u{301}", "/names/é",
            "/names/ébob", "/cr/a%0D", "/cr/a\r", "/cr/b%0D", "/cr/b%0D%0A", "/slash/a%2Fb", "/slash/a/b",
            "/files/latest", "/files/x.zip", "/files/x", "/files/x/y", "/many/kappa", "/many/nu", "/many/alpha",
            "/a/\u{301}b", "/ohm/K", "/ohm/%E2%84%AA", "/crlf/a%0D%0A", "/crlf/%0D%0Ab", "/crlf/%0Ab", "/crlf/a%0A", "/healthz/\u{301}", "/%zz", "/v1/models/%FF", "/v1/models/%C3", "/🙂", "/any/🙂/%F0%9F%99%82",
        ]
        for path in paths {
            for method in Self.methods {
                #expect(answer(router, method, path) == reference.match(method, path), "\(method) \(Array(path.utf8))")
            }
        }
    }

    @Test("20,000 generated paths")
    func generated() {
        let (router, reference) = routers()
        var generator = SplitMix64(seed: 15)
        var mismatches = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...5, using: &generator)
            var path = Bool.random(using: &generator) ? "/" : ""
            for index in 0..<count {
                if index > 0 { path += Int.random(in: 0..<6, using: &generator) == 0 ? "//" : "/" }
                path += Self.pieces.randomElement(using: &generator)!
                if Int.random(in: 0..<8, using: &generator) == 0 { path += Self.pieces.randomElement(using: &generator)! }
            }
            if Int.random(in: 0..<8, using: &generator) == 0 { path += "/" }
            // Mostly paths that go somewhere: a route's own prefix, then pieces.
            if Bool.random(using: &generator), let route = Self.routes.randomElement(using: &generator) {
                path = String(route.1.filter { $0 != "{" && $0 != "}" }) + path
            }
            let method = Self.methods.randomElement(using: &generator)!
            let expected = reference.match(method, path)
            let actual = answer(router, method, path)
            if actual != expected {
                mismatches += 1
                if mismatches <= 20 { Issue.record("\(method) \(Array(path.utf8)): \(actual), expected \(expected)") }
            }
        }
        #expect(mismatches == 0)
    }
}
