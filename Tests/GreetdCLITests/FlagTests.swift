import Foundation
import TestSupport
import Testing

/// What a new user trips over on the command line: negative values, an empty host, the help
/// text, `--version`, the man page, and the lifecycle lines at `--log-level notice`.
@Suite("greetd flags a new user tries")
struct FlagTests {
    /// The repository root, from this file's path (Tests/GreetdCLITests/FlagTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("a value beginning with '-' reaches validation: exit 64 and the rule it breaks, never 'Missing value'", arguments: [
        (["--delay", "-1s"], "delay must not be negative, got -1s"),
        (["--tick", "-1s"], "tick must be positive, got -1s"),
        (["--max-delay", "-1s"], "max-delay must not be negative, got -1s"),
        (["--timeout", "-1s"], "timeout must be positive (or 0 for none), got -1s"),
        (["--shutdown-timeout", "-1s"], "shutdown-timeout must not be negative, got -1s"),
        (["--header-timeout", "-1s"], "header-timeout must not be negative (0 means none), got -1s"),
        (["--idle-timeout", "-1s"], "idle-timeout must not be negative (0 means none), got -1s"),
        (["--port", "-1"], "--port must be between 0 and 65535 (0 picks a free one), got -1"),
        (["--workers", "-1"], "workers must be between 1 and 256, got -1"),
        (["--max-connections", "-1"], "max-connections must be at least 1, got -1"),
        (["--max-header-bytes", "-1"], "max-header-bytes must be at least 256, got -1"),
        (["--max-body-bytes", "-1"], "max-body-bytes must not be negative, got -1"),
        (["--pipeline-limit", "-1"], "pipeline-limit must be positive, got -1"),
    ])
    func negativeValues(arguments: [String], message: String) throws {
        // Port 0 as well: should validation let the value through, greetd listens on a free port
        // (and the wait for its exit fails) rather than on 8080.
        let greetd = try GreetdProcess(arguments[0] == "--port" ? arguments : arguments + ["--port", "0"])
        #expect(try greetd.waitForExit() == 64)
        #expect(greetd.stderrText.contains("Error: \(message)"), "stderr: \(greetd.stderrText)")
        #expect(!greetd.stderrText.contains("Missing value"), "stderr: \(greetd.stderrText)")
    }

    @Test("an option where a value belongs says the value is missing")
    func optionInsteadOfValue() throws {
        let greetd = try GreetdProcess(["--delay", "--tick", "1s"])
        #expect(try greetd.waitForExit() == 64)
        #expect(greetd.stderrText.contains("the value is missing ('--tick' is the next option)"), "stderr: \(greetd.stderrText)")
    }

    @Test("an empty --host is refused (exit 64), naming 0.0.0.0 and :: for every interface")
    func emptyHost() throws {
        let greetd = try GreetdProcess(["--host", "", "--port", "0"])
        #expect(try greetd.waitForExit() == 64)
        let text = greetd.stderrText
        #expect(text.contains("--host is empty"), "stderr: \(text)")
        #expect(text.contains("--host 0.0.0.0") && text.contains("--host ::"), "stderr: \(text)")
        #expect(!text.contains("Server listening"), "stderr: \(text)")
    }

    @Test("--help: the two zero timeouts, one --workers default and its range, the exit codes")
    func helpText() throws {
        let greetd = try GreetdProcess(["--help"])
        #expect(try greetd.waitForExit() == 0)
        let text = greetd.stdoutText
        let flat = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for fragment in ["--timeout 0 (the default) means no deadline", "?timeout=0 is a deadline that has already passed",
                         "0 means no deadline (unlike ?timeout=0, which expires at once)",
                         "SO_REUSEPORT, 1 to 256. (default: the number of CPUs greetd may run on",
                         "Exit status: 0 after a clean shutdown", "1 on a runtime error", "64 on a usage error",
                         "--version"] {
            #expect(flat.contains(fragment), "help lacks \(fragment)")
        }
        let workers = try #require(text.range(of: "  --workers <workers>"))
        let next = try #require(text.range(of: "\n  --", range: workers.upperBound..<text.endIndex))
        let paragraph = text[workers.lowerBound..<next.lowerBound]
        #expect(paragraph.components(separatedBy: "(default:").count == 2, "--workers help: \(paragraph)")
    }

    @Test("--version prints Version.swift's constant and exits 0")
    func version() throws {
        let greetd = try GreetdProcess(["--version"])
        #expect(try greetd.waitForExit() == 0)
        let printed = greetd.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let source = try String(contentsOf: Self.root.appendingPathComponent("Sources/GreetdRules/Version.swift"), encoding: .utf8)
        #expect(printed.range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression) != nil, "\(printed)")
        #expect(source.contains("let greetdVersion = \"\(printed)\""), "--version says \(printed)")
    }

    @Test("the checked-in man page (docs/greetd.1) is of this version and names every option --help lists")
    func manPage() throws {
        let page = try String(contentsOf: Self.root.appendingPathComponent("docs/greetd.1"), encoding: .utf8)
        let help = try GreetdProcess(["--help"])
        #expect(try help.waitForExit() == 0)
        let options = help.stdoutText.split(separator: "\n")
            .compactMap { $0.firstMatch(of: /^  (?:-h, )?(--[a-z-]+)/)?.output.1 }
        #expect(options.count >= 17, "options in --help: \(options)")
        for option in options {
            // mdoc spells --host as `Fl -host`.
            #expect(page.contains("Fl \(option.dropFirst())"), "docs/greetd.1 lacks \(option); run scripts/man.sh")
        }
        let version = try GreetdProcess(["--version"])
        #expect(try version.waitForExit() == 0)
        let number = version.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(page.contains("\n.Os greetd \(number)\n"), "docs/greetd.1 is not of version \(number); run scripts/man.sh")
    }

    @Test("--log-level notice keeps the lifecycle lines (backend in words, listening, ready) and hides per-request ones",
          arguments: [[:], ["EVENT_NOEPOLL": "1", "EVENT_NOPOLL": "1"]])
    func noticeShowsLifecycle(environment: [String: String]) throws {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--delay", "0s", "--workers", "1",
                                        "--log-level", "notice"], environment: environment,
                                        unsetting: environment.isEmpty ? ["EVENT_NOEPOLL", "EVENT_NOPOLL"] : [])
        let backend = try greetd.waitForLine(containing: "Event backend: ")
        if environment.isEmpty {
            #expect(backend.text.contains("notice Event backend: epoll, which tells greetd at once when a client hangs up"), "\(backend.text)")
        } else {
            #expect(backend.text.contains("notice Event backend: select, which has no hang-up notice of its own"), "\(backend.text)")
        }
        let port = try greetd.listeningPort()
        try greetd.waitForLine(containing: "notice Server listening on http://127.0.0.1:\(port)")
        try greetd.waitForLine(containing: "notice Ready: 1 worker serving")
        #expect(try rawExchange(port: port, "GET / HTTP/1.0\r\n\r\n").contains("Hello Gopher!"))
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
        #expect(greetd.stderrText.contains("notice Stopped"))
        #expect(!greetd.stderrText.contains("Handling greeting request"), "\(greetd.stderrText)")
        // Access lines are written whatever the level (--access-log); no other info line is.
        let infoLines = greetd.stderrText.split(separator: "\n").filter { $0.contains(" info ") && !$0.contains("] access method=") }
        #expect(infoLines.isEmpty, "\(greetd.stderrText)")
    }
}
