#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Libevent
import Testing

/// An `HTTPServer` dropped while clients are connected frees them without reporting back to the
/// object being destroyed (review finding: `deinit` used to trap on an `unowned` reference).
@Suite struct HTTPServerLifetimeTests {
    @Test func droppingAServerWithOpenConnectionsClosesThemCleanly() throws {
        try withBase { base in
            var server: HTTPServer? = try HTTPServer(base: base) { request in
                request.respond(status: 200, body: "ok\n")
            }
            let port = try #require(server?.bind(host: "127.0.0.1", port: 0).first?.port)
            // Two idle clients, connected but silent: evhttp accepts and greetd's layer adopts them.
            var clients: [Int32] = []
            defer { for fd in clients { close(fd) } }
            for _ in 0..<2 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                try #require(connected == 0)
                clients.append(fd)
            }
            do {
                let stop = try Event(base: base) { _ in base.exit() }
                try stop.add(timeout: .milliseconds(100))
                try base.run()
            }
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 2)
            server = nil  // no close(): deinit frees evhttp and with it both connections
            #expect(base.counters.liveConnections.load(ordering: .relaxed) == 0)
            // The clients see the server close their connections.
            for fd in clients {
                var byte: UInt8 = 0
                #expect(recv(fd, &byte, 1, 0) == 0)
            }
        }
    }
}
