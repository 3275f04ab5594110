import Foundation
import TestSupport
import Testing

/// The README's "Embedding" example is `Examples/HelloCancellable/main.swift`, which the package
/// compiles (target `hello-cancellable`, a dependency of this test target): the two must never
/// drift apart.
@Suite struct EmbeddingExampleTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The first ```` ```swift ```` block after the `## Embedding` heading, without its fences.
    static func readmeExample() throws -> String {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        guard let heading = readme.range(of: "\n## Embedding\n") else {
            throw TestFailure("README.md has no \"## Embedding\" section")
        }
        let section = readme[heading.upperBound...]
        let end = section.range(of: "\n## ")?.lowerBound ?? section.endIndex
        guard let open = section.range(of: "\n```swift\n", range: section.startIndex..<end),
              let close = section.range(of: "\n```\n", range: open.upperBound..<end) else {
            throw TestFailure("the Embedding section has no ```swift block")
        }
        return String(section[open.upperBound..<close.lowerBound]) + "\n"
    }

    @Test func theReadmeShowsTheExampleTargetVerbatim() throws {
        let example = try String(contentsOf: Self.root.appendingPathComponent("Examples/HelloCancellable/main.swift"),
                                 encoding: .utf8)
        let shown = try Self.readmeExample()
        #expect(shown == example, "README.md's Embedding block differs from Examples/HelloCancellable/main.swift")
        // "About 20 lines": a complete program, small enough to read at a glance.
        let lines = example.split(separator: "\n", omittingEmptySubsequences: false).count
        #expect(lines <= 30, "the example has \(lines) lines")
        #expect(example.contains("import EventHTTP") && example.contains("EventHTTPServer("))
    }

    /// The example was compiled along with the binaries under test.
    @Test func theExampleIsBuilt() {
        let binary = GreetdProcess.binary.deletingLastPathComponent().appendingPathComponent("hello-cancellable")
        #expect(FileManager.default.isExecutableFile(atPath: binary.path), "no \(binary.path)")
    }
}
