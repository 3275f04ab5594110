import Libevent
import Testing

@Suite("SocketAddress")
struct SocketAddressTests {
    @Test func resolvesIPv4Literal() throws {
        let addresses = try SocketAddress.resolve(host: "127.0.0.1", port: 80)
        try #require(addresses.count == 1)
        #expect(addresses[0].description == "127.0.0.1:80")
        #expect(addresses[0].host == "127.0.0.1")
        #expect(addresses[0].port == 80)
        #expect(!addresses[0].isIPv6)
    }

    @Test func resolvesIPv6Literal() throws {
        let addresses = try SocketAddress.resolve(host: "::1", port: 80)
        try #require(addresses.count == 1)
        #expect(addresses[0].description == "[::1]:80")
        #expect(addresses[0].host == "::1")
        #expect(addresses[0].port == 80)
        #expect(addresses[0].isIPv6)
    }

    @Test func emptyHostMeansTheWildcardAddresses() throws {
        let addresses = try SocketAddress.resolve(host: "", port: 8080)
        #expect(!addresses.isEmpty)
        #expect(Set(addresses.map(\.description)).isSubset(of: ["0.0.0.0:8080", "[::]:8080"]))
        #expect(Set(addresses).count == addresses.count, "no duplicates")
    }

    @Test func unknownHostThrowsAddressResolution() throws {
        let error = #expect(throws: LibeventError.self) {
            try SocketAddress.resolve(host: "no-such-host.invalid", port: 1)
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
        #expect(SocketAddress.loopback(ipv6: false, port: 8080).description == "127.0.0.1:8080")
        #expect(SocketAddress.loopback(ipv6: true, port: 8080).description == "[::1]:8080")
        #expect(SocketAddress.loopback(ipv6: false, port: 0).description == "127.0.0.1:0")
        #expect(SocketAddress.loopback(ipv6: true, port: 65535).description == "[::1]:65535")
        #expect(SocketAddress.loopback(ipv6: true, port: 1).isIPv6)
        #expect(!SocketAddress.loopback(ipv6: false, port: 1).isIPv6)
    }

    @Test func loopbackEqualsResolvedLiteral() throws {
        // HTTPServer.bind relies on this to tell whether `localhost` already listed a loopback.
        let v4 = try SocketAddress.resolve(host: "127.0.0.1", port: 443)
        let v6 = try SocketAddress.resolve(host: "::1", port: 443)
        #expect(v4 == [SocketAddress.loopback(ipv6: false, port: 443)])
        #expect(v6 == [SocketAddress.loopback(ipv6: true, port: 443)])
        #expect(Set(v4 + [SocketAddress.loopback(ipv6: false, port: 443)]).count == 1)
        #expect(SocketAddress.loopback(ipv6: false, port: 443) != SocketAddress.loopback(ipv6: false, port: 444))
        #expect(SocketAddress.loopback(ipv6: false, port: 443) != SocketAddress.loopback(ipv6: true, port: 443))
    }
}
