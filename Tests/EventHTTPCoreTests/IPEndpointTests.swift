import EventHTTPCore
import Testing

@Suite("IPEndpoint")
struct SocketAddressTests {
    @Test func resolvesIPv4Literal() throws {
        let addresses = try IPEndpoint.resolve(host: "127.0.0.1", port: 80)
        try #require(addresses.count == 1)
        #expect(addresses[0].description == "127.0.0.1:80")
        #expect(addresses[0].host == "127.0.0.1")
        #expect(addresses[0].port == 80)
        #expect(!addresses[0].isIPv6)
    }

    @Test func resolvesIPv6Literal() throws {
        let addresses = try IPEndpoint.resolve(host: "::1", port: 80)
        try #require(addresses.count == 1)
        #expect(addresses[0].description == "[::1]:80")
        #expect(addresses[0].host == "::1")
        #expect(addresses[0].port == 80)
        #expect(addresses[0].isIPv6)
    }

    @Test func emptyHostMeansTheWildcardAddresses() throws {
        let addresses = try IPEndpoint.resolve(host: "", port: 8080)
        #expect(!addresses.isEmpty)
        #expect(Set(addresses.map(\.description)).isSubset(of: ["0.0.0.0:8080", "[::]:8080"]))
        #expect(Set(addresses).count == addresses.count, "no duplicates")
    }

    @Test func unknownHostThrowsAddressResolution() throws {
        let error = #expect(throws: LibeventError.self) {
            try IPEndpoint.resolve(host: "no-such-host.invalid", port: 1)
        }
        let thrown = try #require(error)
        guard case .addressResolution(let host, let message) = thrown else {
            Issue.record("expected .addressResolution, got \(thrown)")
            return
        }
        #expect(host == "no-such-host.invalid")
        #expect(!message.isEmpty)
        #expect(thrown.description.hasPrefix("cannot resolve host \"no-such-host.invalid\""), "\(thrown)")
        #expect(thrown.description == "cannot resolve host \"no-such-host.invalid\": \(message)")
    }

    @Test func loopbackDescriptions() {
        #expect(IPEndpoint.loopback(ipv6: false, port: 8080).description == "127.0.0.1:8080")
        #expect(IPEndpoint.loopback(ipv6: true, port: 8080).description == "[::1]:8080")
        #expect(IPEndpoint.loopback(ipv6: false, port: 0).description == "127.0.0.1:0")
        #expect(IPEndpoint.loopback(ipv6: true, port: 65535).description == "[::1]:65535")
        #expect(IPEndpoint.loopback(ipv6: true, port: 1).isIPv6)
        #expect(!IPEndpoint.loopback(ipv6: false, port: 1).isIPv6)
    }

    @Test func loopbackEqualsResolvedLiteral() throws {
        // LoopHTTPServer.bind relies on this to tell whether `localhost` already listed a loopback.
        let v4 = try IPEndpoint.resolve(host: "127.0.0.1", port: 443)
        let v6 = try IPEndpoint.resolve(host: "::1", port: 443)
        #expect(v4 == [IPEndpoint.loopback(ipv6: false, port: 443)])
        #expect(v6 == [IPEndpoint.loopback(ipv6: true, port: 443)])
        #expect(Set(v4 + [IPEndpoint.loopback(ipv6: false, port: 443)]).count == 1)
        #expect(IPEndpoint.loopback(ipv6: false, port: 443) != IPEndpoint.loopback(ipv6: false, port: 444))
        #expect(IPEndpoint.loopback(ipv6: false, port: 443) != IPEndpoint.loopback(ipv6: true, port: 443))
    }
}
