import Foundation
import Testing

/// The shipped deploy files: the image's health check tests `/healthz`'s status code, and the
/// systemd unit orders itself after network.target without pulling it in.
@Suite struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private func read(_ path: String) throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test("Dockerfile: HEALTHCHECK asks /healthz and compares the status code with 200, not '200' anywhere")
    func healthCheck() throws {
        let lines = try read("deploy/Dockerfile").split(separator: "\n")
        let check = try #require(lines.first { $0.hasPrefix("HEALTHCHECK") }.map(String.init))
        #expect(check.contains("/healthz"))
        #expect(check.contains("%{http_code}") && check.contains("grep -qx 200"), "\(check)")
        #expect(!check.contains("grep -q '200'"), "\(check)")
        // curl must be in the runtime image (the stage after the last FROM).
        let runtime = try read("deploy/Dockerfile").components(separatedBy: "\nFROM ").last ?? ""
        #expect(runtime.contains("curl"), "the runtime stage installs no curl")
    }

    @Test("greetd-http.service: After=network.target, and no Wants=/Requires= of it")
    func unitOrdering() throws {
        let directives = try read("deploy/greetd-http.service").split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(directives.contains("After=network.target"))
        for directive in directives where directive.hasPrefix("Wants=") || directive.hasPrefix("Requires=") || directive.hasPrefix("BindsTo=") {
            #expect(!directive.contains("network.target"), "\(directive)")
        }
    }
}
