import Foundation
import TestSupport
import Testing

/// The documentation files against what they describe: the README stays a front page whose links
/// resolve, the operations guide and the internals name every signal greetd handles and every
/// metric it exports, the man page is the help text of the binary under test, and BENCHMARKS.md
/// is laid out by figure.
@Suite("docs match the code")
struct DocsTests {
    /// The repository root, from this file's path (Tests/GreetdCLITests/DocsTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The Markdown files whose links must resolve.
    static let markdownFiles = ["README.md", "docs/OPERATIONS.md", "docs/INTERNALS.md", "docs/PERFORMANCE.md", "BENCHMARKS.md"]

    /// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().compactMap { character -> Character? in
            if character == " " { return "-" }
            if character == "-" || character == "_" || character.isLetter || character.isNumber { return character }
            return nil
        })
    }

    /// A repository-relative path with `.` and `..` resolved (`docs/../README.md` is `README.md`).
    static func normalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == "..", !parts.isEmpty, parts.last != ".." { parts.removeLast() } else { parts.append(part) }
        }
        return parts.joined(separator: "/")
    }

    /// The anchors of a Markdown file's headings (outside code blocks).
    static func anchors(of markdown: String) -> Set<String> {
        var inCode = false
        var result: Set<String> = []
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inCode.toggle(); continue }
            guard !inCode, let match = line.firstMatch(of: /^#{1,6} (.+)$/) else { continue }
            result.insert(anchor(String(match.output.1).replacingOccurrences(of: "`", with: "")))
        }
        return result
    }

    @Test("README.md is a front page: at most 250 lines, with the test command .ci/run runs")
    func readmeIsShort() throws {
        let readme = try Self.read("README.md")
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).count - 1
        #expect(lines <= 250, "README.md has \(lines) lines")
        #expect(readme.contains("```sh\nswift test\n```"), "README.md lost its test command")
        #expect(try Self.read(".ci/run").contains("\nswift test\n"), ".ci/run no longer runs the README's test command")
        for section in ["## Quick start", "## The seed's walk-through", "## Flags", "## Embedding"] {
            #expect(readme.contains("\n\(section)\n"), "README.md lacks \(section)")
        }
        for seedLine in ["Greetings are hard. Thinking...", "Hello Gopher!", "Context Error: context canceled"] {
            #expect(readme.contains(seedLine), "README.md's walk-through lacks \(seedLine)")
        }
        for guide in ["docs/OPERATIONS.md", "docs/INTERNALS.md"] {
            #expect(readme.contains("](\(guide))"), "README.md does not link \(guide)")
        }
    }

    @Test("every relative link in the Markdown docs names a file that exists, and a heading there")
    func linksResolve() throws {
        var checked = 0
        for file in Self.markdownFiles {
            let text = try Self.read(file)
            let directory = file.contains("/") ? String(file[..<file.lastIndex(of: "/")!]) : "."
            for match in text.matches(of: /\]\(([^)\s]+)\)/) {
                let target = String(match.output.1)
                if target.hasPrefix("http://") || target.hasPrefix("https://") || target.hasPrefix("mailto:") { continue }
                let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
                let path = String(parts[0])
                let resolved = path.isEmpty ? file : Self.normalized(directory == "." ? path : "\(directory)/\(path)")
                let url = Self.root.appendingPathComponent(resolved)
                #expect(FileManager.default.fileExists(atPath: url.path), "\(file): link \(target) names no file (\(resolved))")
                if parts.count == 2, resolved.hasSuffix(".md"), let linked = try? Self.read(resolved) {
                    #expect(Self.anchors(of: linked).contains(String(parts[1])), "\(file): link \(target) names no heading of \(resolved)")
                }
                checked += 1
            }
        }
        #expect(checked >= 10, "only \(checked) links checked")
    }

    /// The metric series names in Sources/GreetdRules/MetricNames.swift (labels left out).
    static func metricNames() throws -> [String] {
        let source = try read("Sources/GreetdRules/MetricNames.swift")
        return source.matches(of: /public static let (\w+) = "([a-z_]+)"/)
            .filter { !$0.output.1.hasSuffix("Label") }
            .map { String($0.output.2) }
    }

    /// The signals greetd's supervisor handles or ignores, from its source.
    static func signalNames() throws -> [String] {
        let source = try read("Sources/greetd/Supervisor.swift")
        return Set(source.matches(of: /\bSIG[A-Z]+\b/).map { String($0.output) })
            .subtracting(["SIG_IGN", "SIG_DFL"]).sorted()
    }

    @Test("docs/OPERATIONS.md and docs/INTERNALS.md exist and name every signal and every metric series",
          arguments: ["docs/OPERATIONS.md", "docs/INTERNALS.md"])
    func guidesNameSignalsAndMetrics(file: String) throws {
        let guide = try Self.read(file)
        let metrics = try Self.metricNames()
        let signals = try Self.signalNames()
        #expect(metrics.count >= 13, "metric names found: \(metrics)")
        #expect(signals.contains("SIGHUP") && signals.contains("SIGTERM") && signals.contains("SIGINT"), "signals found: \(signals)")
        for name in metrics + signals {
            #expect(guide.contains(name), "\(file) does not mention \(name)")
        }
    }

    @Test("docs/OPERATIONS.md lists each label value: outcomes and connection close reasons")
    func operationsListsLabelValues() throws {
        let guide = try Self.read("docs/OPERATIONS.md")
        let names = try Self.read("Sources/GreetdRules/MetricNames.swift")
        let outcomes = names.matches(of: /case (\w+)(?: = "(\w+)")?\n/).map { String($0.output.2 ?? $0.output.1) }
        #expect(outcomes.count >= 6, "outcomes found: \(outcomes)")
        let reasons = ["client", "done", "header_timeout", "idle_timeout", "pipeline_limit", "max_connections", "bad_request", "shutdown"]
        for value in outcomes + reasons {
            #expect(guide.contains("| `\(value)` |"), "docs/OPERATIONS.md has no table row for `\(value)`")
        }
    }

    /// The help text's paragraphs and options, unwrapped: what `--help` says, in the words the
    /// man page must carry.
    static func helpText() throws -> (paragraphs: [String], options: [(name: String, help: String)]) {
        let help = try GreetdProcess(["--help"])
        #expect(try help.waitForExit() == 0)
        let text = help.stdoutText
        guard let overview = text.range(of: "OVERVIEW: "), let usage = text.range(of: "\nUSAGE: "),
              let optionsStart = text.range(of: "\nOPTIONS:\n") else {
            throw TestFailure("--help has no OVERVIEW, USAGE or OPTIONS:\n\(text)")
        }
        let paragraphs = text[overview.upperBound..<usage.lowerBound]
            .components(separatedBy: "\n\n")
            .map { $0.split(separator: "\n").joined(separator: " ").trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        var options: [(name: String, help: String)] = []
        for line in text[optionsStart.upperBound...].split(separator: "\n") {
            if let start = line.firstMatch(of: /^  (?:-h, )?(--[a-z-]+)(?: <[a-z-]+>)?(?: +(.*))?$/) {
                options.append((String(start.output.1), start.output.2.map(String.init) ?? ""))
            } else if !options.isEmpty {
                let more = line.trimmingCharacters(in: .whitespaces)
                options[options.count - 1].help += options[options.count - 1].help.isEmpty ? more : " " + more
            }
        }
        return (paragraphs, options)
    }

    @Test("the man page carries --help's every paragraph and every option with its whole help")
    func manPageMatchesHelp() throws {
        let page = try Self.read("docs/greetd.1")
        let lines = Set(page.split(separator: "\n").map { $0.replacingOccurrences(of: "\\e", with: "\\") })
        let (paragraphs, options) = try Self.helpText()
        // The overview (the abstract), the streaming paragraph, the logs and exit-status ones...
        #expect(paragraphs.count >= 8, "paragraphs in --help: \(paragraphs)")
        #expect(lines.contains(".Nd \(paragraphs[0])"), "docs/greetd.1's NAME is not --help's overview; run scripts/man.sh")
        for paragraph in paragraphs.dropFirst() {
            #expect(lines.contains(paragraph), "docs/greetd.1 lacks the paragraph \"\(paragraph.prefix(60))…\"; run scripts/man.sh")
        }
        #expect(options.count >= 19, "options in --help: \(options.map(\.name))")
        for (name, help) in options {
            #expect(page.contains("Fl \(name.dropFirst())"), "docs/greetd.1 lacks \(name); run scripts/man.sh")
            #expect(lines.contains(help), "docs/greetd.1's \(name) is not --help's: \(help); run scripts/man.sh")
        }
        // The points the issue found missing, named outright.
        #expect(page.contains("text/event-stream"))
        #expect(page.contains("(default: localhost)"))
        #expect(page.contains("trace, debug, info, notice, warning"))
    }

    @Test("docs/greetd.1 is what scripts/man.sh generates from the binary under test (the date aside)")
    func manPageIsFresh() throws {
        let script = Self.root.appendingPathComponent("scripts/man.sh").path
        let run = try GreetdProcess([script, "--stdout"], environment: ["GREETD_BINARY": GreetdProcess.binary.path],
                                    executable: URL(fileURLWithPath: "/bin/bash"))
        #expect(try run.waitForExit(timeout: 60) == 0, "scripts/man.sh failed: \(run.stderrText)")
        let undated = { (page: String) in page.split(separator: "\n").filter { !$0.hasPrefix(".Dd ") } }
        let fresh = undated(run.stdoutText)
        #expect(fresh.count > 40, "scripts/man.sh wrote \(fresh.count) lines")
        #expect(undated(try Self.read("docs/greetd.1")) == fresh, "docs/greetd.1 is stale; run scripts/man.sh")
    }

    @Test("BENCHMARKS.md is organised by figure, keeps the library's section, and says what tick lateness is measured against")
    func benchmarksByFigure() throws {
        let benchmarks = try Self.read("BENCHMARKS.md")
        let headings = benchmarks.split(separator: "\n").filter { $0.hasPrefix("## ") }
        #expect(!headings.contains { $0.hasPrefix("## Issue") }, "sections by issue number: \(headings)")
        for figure in ["## Fast path", "## Memory per pending request", "## Cancel latency", "## RSS after",
                       "## Capacity and tick lateness", "## Streams", "## Executor"] {
            #expect(headings.contains { $0.hasPrefix(figure) }, "BENCHMARKS.md has no \(figure) section: \(headings)")
        }
        #expect(benchmarks.contains("<!-- library:begin -->") && benchmarks.contains("<!-- library:end -->"))
        #expect(benchmarks.contains("request's arrival"), "BENCHMARKS.md does not say how tick lateness relates to the request's arrival")
        #expect(!benchmarks.contains("(not early)"), "BENCHMARKS.md still calls ticks \"not early\" against the Handling line")
    }
}
