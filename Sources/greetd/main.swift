import ArgumentParser
import GreetdCore
import Libevent
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Log levels as `--log-level` spells them.
enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

func parseDuration(_ text: String) throws -> GoDuration {
    do {
        return try GoDuration(parsing: text)
    } catch {
        throw ValidationError("\(error)")
    }
}

@main
struct Greetd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "greetd",
        abstract: "A greeting server that stops work the moment its client gives up.",
        discussion: """
            GET / logs "Handling greeting request", thinks for --delay (logging \
            "Greetings are hard. Thinking..." every --tick), then answers "Hello Gopher!". \
            If the client goes away first (Ctrl+C on curl: FIN, RST or half-close), the work \
            stops at once and "Context Error: context canceled" is logged.

            GET /?delay=DURATION overrides --delay for one request (capped at --max-delay). \
            Durations use Go's syntax: 0, 250ms, 1.5s, 2m, 1h30m.

            Logs go to standard error, one line per event, unbuffered, each with its request id. \
            The event backend is libevent's choice; EVENT_NOEPOLL=1 EVENT_NOPOLL=1 force select.
            """
    )

    @Option(help: "Host to listen on. 'localhost' listens on every loopback address it resolves to (127.0.0.1 and ::1).")
    var host = "localhost"

    @Option(help: "TCP port to listen on (0 picks a free one).")
    var port: UInt16 = 8080

    @Option(help: "How long a greeting thinks before it answers. (default: 5s)", transform: parseDuration)
    var delay: GoDuration = .seconds(5)

    @Option(help: "How often a thinking greeting logs 'Greetings are hard. Thinking...'. (default: 1s)", transform: parseDuration)
    var tick: GoDuration = .seconds(1)

    @Option(help: "The largest ?delay= a client may ask for; larger values are capped to it. (default: 1m0s)", transform: parseDuration)
    var maxDelay: GoDuration = .seconds(60)

    @Option(help: "Largest request line plus headers, in bytes; larger requests get 413.")
    var maxHeaderBytes: Int = 64 * 1024

    @Option(help: "Bytes a client may pipeline behind a pending request before it is dropped.")
    var pipelineLimit: Int = 64 * 1024

    @Option(help: "Least severe level to log. 'notice' hides the per-request lines but keeps context errors; 'warning' keeps problems only.")
    var logLevel: LogLevelOption = .info

    func validate() throws {
        guard maxHeaderBytes >= 256 else { throw ValidationError("--max-header-bytes must be at least 256") }
        guard pipelineLimit > 0 else { throw ValidationError("--pipeline-limit must be positive") }
    }

    func run() throws {
        let level = logLevel.level
        var logger = Logger(label: "greetd") { _ in FileDescriptorLogHandler(fd: 2, level: level) }
        logger.logLevel = level

        var configuration = GreetdConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.delay = delay
        configuration.tick = tick
        configuration.maxDelay = maxDelay
        configuration.http.maxHeaderBytes = maxHeaderBytes
        configuration.http.pipelineLimit = pipelineLimit
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        do {
            try runGreetd(configuration: configuration, logger: logger, control: ServerControl(), ownsProcess: true) { _, _ in }
        } catch let error as LibeventError {
            printError("greetd: error: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
