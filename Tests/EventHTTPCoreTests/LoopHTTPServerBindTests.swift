import EventHTTPSystem
import EventHTTPCore
import Testing

@Suite("LoopHTTPServer.bind")
struct HTTPServerBindTests {
    /// A server that answers everything with 500; these tests never connect.
    static func server(on base: EventBase) throws -> LoopHTTPServer {
        try LoopHTTPServer(base: base) { request in _ = request.respond(status: 500) }
    }

    @Test func bindsIPv4LoopbackOnAnEphemeralPort() throws {
        try withBase { base in
            let server = try Self.server(on: base)
            let bound = try server.bind(host: "127.0.0.1", port: 0)
            try #require(bound.count == 1)
            #expect(bound[0].host == "127.0.0.1")
            #expect(bound[0].port != 0)
            #expect(server.addresses == bound)
            server.close()
        }
    }

    @Test func bindingAPortInUseThrowsBindError() throws {
        try withBase { base in
            let first = try Self.server(on: base)
            let second = try Self.server(on: base)
            let port = try #require(try first.bind(host: "127.0.0.1", port: 0).first).port
            let error = #expect(throws: LibeventError.self) {
                try second.bind(host: "127.0.0.1", port: port)
            }
            #expect(error == .bind(address: "127.0.0.1:\(port)", errno: .addressInUse))
            #expect(error?.description == "cannot listen on 127.0.0.1:\(port): Address already in use (EADDRINUSE)")
            #expect(second.addresses.isEmpty)
            second.close()
            first.close()
        }
    }

    @Test func localhostBindsBothLoopbacksOnOnePort() throws {
        try withBase { base in
            let server = try Self.server(on: base)
            let bound = try server.bind(host: "localhost", port: 0)
            #expect(Set(bound.map(\.host)) == ["127.0.0.1", "::1"], "\(bound)")
            #expect(bound.count == 2)
            let ports = Set(bound.map(\.port))
            #expect(ports.count == 1)
            #expect(!ports.contains(0))
            #expect(server.addresses == bound)
            server.close()
        }
    }

    @Test func failedBindLeavesNothingBound() throws {
        try withBase { base in
            let holder = try Self.server(on: base)
            let port = try #require(try holder.bind(host: "::1", port: 0).first).port
            // localhost: 127.0.0.1:port binds first, then [::1]:port fails; the first is undone.
            let server = try Self.server(on: base)
            let error = #expect(throws: LibeventError.self) {
                try server.bind(host: "localhost", port: port)
            }
            #expect(error == .bind(address: "[::1]:\(port)", errno: .addressInUse))
            #expect(server.addresses.isEmpty)
            // The IPv4 listener was closed: another server can take 127.0.0.1:port now.
            let third = try Self.server(on: base)
            let bound = try third.bind(host: "127.0.0.1", port: port)
            #expect(bound.map(\.description) == ["127.0.0.1:\(port)"])
            third.close()
            server.close()
            holder.close()
        }
    }

    @Test func closeListenersFreesThePort() throws {
        try withBase { base in
            let first = try Self.server(on: base)
            let port = try #require(try first.bind(host: "127.0.0.1", port: 0).first).port
            first.closeListeners()
            let second = try Self.server(on: base)
            let bound = try second.bind(host: "127.0.0.1", port: port)
            #expect(bound.first?.port == port)
            second.close()
            first.close()
        }
    }

    @Test func closeTwiceIsSafeAndBindAfterCloseThrows() throws {
        try withBase { base in
            let server = try Self.server(on: base)
            server.close()
            server.close()
            let error = #expect(throws: LibeventError.self) {
                try server.bind(host: "127.0.0.1", port: 0)
            }
            #expect(error == .callFailed(function: "evhttp_bind_listener (server closed)", errno: nil))
        }
    }

    @Test func unresolvableHostThrowsAddressResolution() throws {
        try withBase { base in
            let server = try Self.server(on: base)
            let error = #expect(throws: LibeventError.self) {
                try server.bind(host: "no-such-host.invalid", port: 0)
            }
            if case .addressResolution(let host, _)? = error {
                #expect(host == "no-such-host.invalid")
            } else {
                Issue.record("expected .addressResolution, got \(String(describing: error))")
            }
            server.close()
        }
    }
}
