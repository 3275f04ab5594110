import ArgumentParser
import Foundation
import GreetdCore
import GreetdRules
import EventHTTPCore
import Logging
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

            GET /?delay=DURATION overrides --delay for one request (capped at --max-delay); \
            GET /?timeout=DURATION gives it a deadline (capped at --timeout). Durations use Go's \
            syntax: 0, 250ms, 1.5s, 2m, 1h30m. GET /healthz answers 200 while serving and 503 \
            while draining; GET /metrics is Prometheus text.

            GET / with "Accept: text/event-stream" (or ?stream=1) streams the same greeting as \
            server-sent events: "event: thinking" at each tick, then "event: greeting" (or \
            "event: error" with the deadline's or the shutdown's words). Try \
            curl -N -H 'Accept: text/event-stream' localhost:8080. GET /?async=1 is the plain \
            greeting run as an async handler on loop timers (for benchmarks).

            A zero timeout means opposite things in the two places, as in Go: --timeout 0 (the \
            default) means no deadline, while ?timeout=0 is a deadline that has already passed \
            (Go's context.WithTimeout(ctx, 0)): that greeting ends at once with 503 and \
            "context deadline exceeded".

            SIGTERM or SIGINT: stop accepting, let greetings finish for --shutdown-timeout, \
            then cancel the rest (503, "context canceled (cause: server shutting down)"); a \
            second signal cancels at once. Under systemd (Type=notify), READY=1 and STOPPING=1 \
            go to $NOTIFY_SOCKET.

            Logs go to standard error, one line per event, each with its request id (the \
            client's X-Request-Id if sane, else a random per-process prefix and a number, \
            e.g. 7f3a9c21-42). A worker writes its lines at the end of each loop pass, in one \
            write, before it waits again; other threads write each line at once. \
            --log-format json writes one JSON object per line (time, level, msg, request_id). \
            Under systemd's journal (JOURNAL_STREAM naming standard error), text lines start \
            with their priority (<6>) and carry no timestamp of their own: journald stamps them.

            Access log: one line per request (method, target, status, bytes, duration, remote, \
            proto, user_agent; a target over 2 KB is cut), whatever --log-level says: to \
            standard error, to a file (--access-log PATH: appended to, created 0640), or \
            nowhere (--access-log off). SIGHUP reopens the file (for logrotate) and logs a \
            notice; it never stops greetd.

            The event backend is libevent's choice; EVENT_NOEPOLL=1 EVENT_NOPOLL=1 force select.

            Exit status: 0 after a clean shutdown (SIGTERM or SIGINT); 1 on a runtime error, such \
            as a port in use or a host that does not resolve; 64 on a usage error (a bad flag or \
            value; the message names it).
            """,
        version: greetdVersion
    )

    @Option(help: "Host to listen on; give it again to listen on more (every worker listens on all). 'localhost' listens on every loopback address it resolves to (127.0.0.1 and ::1); every interface must be asked for: 0.0.0.0, or :: (IPv6 and IPv4). A bracketed [::1] is accepted. (default: localhost)")
    var host: [String] = []

    @Option(parsing: .unconditional, help: "TCP port to listen on, 0 to 65535 (0 picks a free one). (default: 8080)", transform: parseInteger)
    var port: Int = 8080

    @Option(parsing: .unconditional, help: "How long a greeting thinks before it answers. (default: 5s)", transform: parseDuration)
    var delay: GoDuration = .seconds(5)

    @Option(parsing: .unconditional, help: "How often a thinking greeting logs 'Greetings are hard. Thinking...'. (default: 1s)", transform: parseDuration)
    var tick: GoDuration = .seconds(1)

    @Option(parsing: .unconditional, help: "The largest ?delay= a client may ask for; larger values are capped to it. (default: 1m0s)", transform: parseDuration)
    var maxDelay: GoDuration = .seconds(60)

    @Option(parsing: .unconditional, help: "Deadline for every greeting: past it, 503 and 'context deadline exceeded'. 0 means no deadline (unlike ?timeout=0, which expires at once). (default: 0)", transform: parseDuration)
    var timeout: GoDuration = .zero

    @Option(parsing: .unconditional, help: "On SIGTERM/SIGINT, how long greetings in flight may finish before they are cancelled. (default: 10s)", transform: parseDuration)
    var shutdownTimeout: GoDuration = .seconds(10)

    @Option(parsing: .unconditional, help: "Event loops (threads) sharing the port through SO_REUSEPORT, 1 to 256. (default: the number of CPUs greetd may run on: its affinity mask, capped by its cgroup's cpu.max quota)", transform: parseInteger)
    var workers: Int?

    @Option(parsing: .unconditional, help: "Most open client connections for the whole process, whichever worker accepts them; past it, new ones get a fast 503 and are closed. (default: 10000)", transform: parseInteger)
    var maxConnections: Int = 10_000

    @Option(parsing: .unconditional, help: "Time a new connection has to send a whole request; slower clients (slowloris) are dropped. 0 means none. (default: 10s)", transform: parseDuration)
    var headerTimeout: GoDuration = .seconds(10)

    @Option(parsing: .unconditional, help: "Time a keep-alive connection may idle and then send its next request; also the limit on a stalled read or write. 0 means none. (default: 1m0s)", transform: parseDuration)
    var idleTimeout: GoDuration = .seconds(60)

    @Option(parsing: .unconditional, help: "Largest request line plus headers, in bytes, at least 256; larger requests are refused (400) and closed. (default: 65536)", transform: parseInteger)
    var maxHeaderBytes: Int = 64 * 1024

    @Option(parsing: .unconditional, help: "Largest request body, in bytes; larger bodies get 413. (default: 1048576)", transform: parseInteger)
    var maxBodyBytes: Int = 1024 * 1024

    @Option(parsing: .unconditional, help: "Bytes a client may pipeline behind a pending request before it is dropped. (default: 65536)", transform: parseInteger)
    var pipelineLimit: Int = 64 * 1024

    @Option(help: "Least severe level to log: trace, debug, info, notice, warning (or warn), error, critical, in any case. 'notice' keeps lifecycle lines (listening, ready, draining, stopped) and context errors but not the per-request lines; 'warning' keeps problems only. Access lines do not depend on it (see --access-log).")
    var logLevel: LogLevelOption = .info

    @Option(help: "Log line format: 'text' (timestamp level [request_id=…] message key=value) or 'json' (one object per line: time, level, msg, request_id, and typed fields; access lines have msg \"access\").")
    var logFormat: LogFormatOption = .text

    @Option(help: "Where access lines go, one per request, whatever --log-level says: 'stderr', 'off', or a file's path (appended to, created 0640; SIGHUP reopens it, for logrotate). (default: stderr)", transform: parseAccessLog)
    var accessLog: AccessLogDestination = .stderr

    func validate() throws {
        for name in host.isEmpty ? ["localhost"] : host {
            try validateCommandLine(host: name, port: port, headerTimeout: headerTimeout, idleTimeout: idleTimeout)
        }
    }

    func run() throws {
        // First thing: SIGHUP's default action kills the process (exit 129), and a logrotate
        // or an operator's habit may send it while greetd is still starting (opening the access
        // log, binding). The Supervisor then installs the handler that reopens the logs.
        _ = signal(SIGHUP, SIG_IGN)
        let level = logLevel.level
        let format = logFormat.format
        let accessLogFile: AccessLog
        do {
            accessLogFile = try AccessLog(destination: accessLog, format: format)
        } catch {
            printError("greetd: error: cannot open the access log: \(error)")
            throw ExitCode(1)
        }
        var logger = Logger(label: "greetd") { _ in
            FileDescriptorLogHandler(fd: 2, level: level, format: format, accessLog: accessLogFile)
        }
        logger.logLevel = level

        var configuration = GreetdConfiguration()
        configuration.hosts = host.isEmpty ? ["localhost"] : host
        configuration.port = UInt16(port)
        configuration.delay = delay
        configuration.tick = tick
        configuration.maxDelay = maxDelay
        configuration.timeout = timeout.nanoseconds == 0 ? nil : timeout
        configuration.shutdownTimeout = shutdownTimeout
        // Without --workers: the CPUs greetd may run on (affinity, cgroup quota); logged as workers_from=.
        let workerCount = WorkerCount.detect(flag: workers)
        configuration.workers = workerCount.count
        configuration.workersFrom = workerCount.source
        configuration.http.maxConnections = maxConnections
        configuration.http.headerTimeout = headerTimeout.nanoseconds == 0 ? nil : headerTimeout.duration
        configuration.http.idleTimeout = idleTimeout.nanoseconds == 0 ? nil : idleTimeout.duration
        configuration.http.maxHeaderBytes = maxHeaderBytes
        configuration.http.maxBodyBytes = maxBodyBytes
        // Who sent each request is only for the access line: skip it when there is none.
        if case .off = accessLog { configuration.http.recordsClient = false }
        configuration.http.pipelineLimit = pipelineLimit
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        do {
            try Supervisor(configuration: configuration, logger: logger, accessLog: accessLogFile).run()
        } catch let error as LibeventError {
            printError("greetd: error: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
