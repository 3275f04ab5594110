import GreetdCore
import EventHTTPCore
import Logging
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    /// getaddrinfo() would read an empty host as every interface: a library user who builds the
    /// configuration in code is refused as the command line is, with the same message.
    @Test("an empty host is refused, with the CLI's message; all interfaces must be asked for")
    func emptyHostIsRefused() throws {
        var configuration = GreetdConfiguration()
        configuration.host = ""
        #expect(throws: ConfigurationError.invalid(GreetdConfiguration.emptyHostMessage)) { try configuration.validate() }
        #expect(GreetdConfiguration.emptyHostMessage.hasPrefix("--host is empty; to listen on every interface, ask for it: --host 0.0.0.0"))
        for host in ["0.0.0.0", "::", "127.0.0.1", "localhost"] {
            configuration.host = host
            #expect(throws: Never.self, "host \(host)") { try configuration.validate() }
        }
    }

    @Test("a server with an empty host is never made, so it never listens")
    func serverRefusesAnEmptyHost() throws {
        var configuration = GreetdConfiguration()
        configuration.host = ""
        let base = try EventBase()
        #expect(throws: ConfigurationError.invalid(GreetdConfiguration.emptyHostMessage)) {
            _ = try GreetingServer(configuration: configuration, logger: Logger(label: "test"), base: base,
                                   metrics: GreetdMetrics(), port: 0)
        }
    }
}
